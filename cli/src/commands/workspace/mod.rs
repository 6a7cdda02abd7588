//! `pyro workspace ...`: persistent workspaces.
//!
//! - `lifecycle`: create, list, status, update, stop, start, delete, and the
//!   summary block they print.
//! - `exec`: exec (streamed, exit code passed through) and logs.
//! - `files`: sync push, export, file list/read/write, patch apply.
//! - `snapshots`: diff, snapshot create/list/delete, reset.
//! - `disk`: disk export/list/read (stopped workspaces).
//! - `shell`: shell open/read/write/signal/resize/list/close (PTY sessions).
//! - `service`: service start/list/status/logs/stop (background processes).
//!
//! Secrets: `--secret`/`--secret-file` (create) and `--secret-env` (exec,
//! shell open, service start) are parsed here. A secret's value is never
//! printed, in errors or in debug output.
//!
//! Every subcommand builds and checks its request before it connects, so bad
//! input fails with a clear message and nothing is sent (nor a supervisor
//! started). Human output is rendered by functions that return lines, which
//! the tests check against the first-run transcript.

mod disk;
mod exec;
mod files;
mod lifecycle;
mod service;
mod shell;
mod snapshots;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::path::Path;

use clap::Subcommand;
use pyro_sdk::api::session::SecretSpec;
use pyro_sdk::api::workspace::MAX_TEXT_BYTES;
use pyro_sdk::Client;

use crate::output::{CliError, Outcome};

pub use disk::DiskCommand;
pub use exec::ExecArgs;
pub use files::{ExportArgs, FileCommand, PatchCommand, SyncCommand};
pub use lifecycle::{CreateArgs, UpdateArgs};
pub use service::ServiceCommand;
pub use shell::ShellCommand;
pub use snapshots::{DiffArgs, ResetArgs, SnapshotCommand};

/// The `pyro workspace --help` epilogue: the first-run workflow.
pub const EXAMPLES: &str = "Examples:
  pyro workspace create debian:12 --seed-path ./repo
  pyro workspace sync push WORKSPACE_ID ./changes --dest src
  pyro workspace exec WORKSPACE_ID -- cat src/note.txt
  pyro workspace diff WORKSPACE_ID
  pyro workspace snapshot create WORKSPACE_ID checkpoint
  pyro workspace reset WORKSPACE_ID --snapshot checkpoint
  pyro workspace export WORKSPACE_ID src/note.txt --output ./note.txt
  pyro workspace create debian:12 --secret API_TOKEN=expected --secret-file PIP_TOKEN=./token.txt
  pyro workspace exec WORKSPACE_ID --secret-env API_TOKEN -- sh -lc 'test \"$API_TOKEN\" = \"expected\"'
  pyro workspace shell open WORKSPACE_ID --secret-env API_TOKEN
  pyro workspace service start WORKSPACE_ID web --ready-file .web-ready -- ./serve.sh
  pyro workspace delete WORKSPACE_ID

Every subcommand takes --json (one JSON document on stdout, sorted keys).";

/// Workspace subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace (a VM with its own disk and a /workspace tree) and start it.
    Create(CreateArgs),
    /// List workspaces, most recently active first.
    #[command(after_help = "Examples:\n  pyro workspace list\n  pyro workspace list --json")]
    List(JsonArgs),
    /// Show one workspace.
    #[command(after_help = "Example:\n  pyro workspace status WORKSPACE_ID")]
    Status(IdArgs),
    /// Rename, relabel or extend a workspace.
    Update(UpdateArgs),
    /// Show the commands run in a workspace (since create or the last reset), with their output.
    #[command(after_help = "Example:\n  pyro workspace logs WORKSPACE_ID

Each command shows as `#SEQ exit_code=N duration_ms=N cwd=...`, then
`$ COMMAND`, then its stdout (on stdout) and stderr (on stderr).")]
    Logs(IdArgs),
    /// Run one command in a started workspace.
    Exec(ExecArgs),
    /// Copy host files into a started workspace.
    #[command(
        after_help = "Example:\n  pyro workspace sync push WORKSPACE_ID ./changes --dest src"
    )]
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Copy a file, directory or symlink out of a workspace to the host.
    Export(ExportArgs),
    /// Show what changed in /workspace since the baseline (or a snapshot).
    Diff(DiffArgs),
    /// List, read and write files in a started workspace.
    #[command(after_help = "Examples:
  pyro workspace file list WORKSPACE_ID src --recursive
  pyro workspace file read WORKSPACE_ID src/note.txt
  pyro workspace file write WORKSPACE_ID src/note.txt --text 'hello'")]
    File {
        #[command(subcommand)]
        command: FileCommand,
    },
    /// Apply a unified diff to a started workspace.
    #[command(
        after_help = "Example:\n  pyro workspace patch apply WORKSPACE_ID --patch-file ./fix.patch"
    )]
    Patch {
        #[command(subcommand)]
        command: PatchCommand,
    },
    /// Create, list and delete named snapshots of /workspace.
    #[command(after_help = "Examples:
  pyro workspace snapshot create WORKSPACE_ID checkpoint
  pyro workspace snapshot list WORKSPACE_ID
  pyro workspace snapshot delete WORKSPACE_ID checkpoint")]
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Recreate the disk and restore the baseline (or a named snapshot).
    Reset(ResetArgs),
    /// Power a workspace off, keeping its disk.
    #[command(after_help = "Example:\n  pyro workspace stop WORKSPACE_ID

A stopped workspace keeps its disk and snapshots; inspect it offline with
`pyro workspace disk ...` and boot it again with `pyro workspace start`.")]
    Stop(IdArgs),
    /// Boot a stopped workspace on its disk.
    #[command(after_help = "Example:\n  pyro workspace start WORKSPACE_ID")]
    Start(IdArgs),
    /// Delete a workspace: its VM, disk, snapshots and history.
    #[command(after_help = "Example:\n  pyro workspace delete WORKSPACE_ID")]
    Delete(IdArgs),
    /// Inspect or export a stopped workspace's disk without booting it.
    #[command(after_help = "Examples:
  pyro workspace disk list WORKSPACE_ID --recursive
  pyro workspace disk read WORKSPACE_ID src/note.txt
  pyro workspace disk export WORKSPACE_ID --output ./workspace.ext4")]
    Disk {
        #[command(subcommand)]
        command: DiskCommand,
    },
    /// Interactive shells (PTYs) in a started workspace: open, read, write, signal, resize, close.
    #[command(after_help = "Examples:
  SHELL_ID=$(pyro workspace shell open WORKSPACE_ID --id-only)
  pyro workspace shell write WORKSPACE_ID SHELL_ID --input 'pwd'
  pyro workspace shell read WORKSPACE_ID SHELL_ID --wait-for-idle-ms 300
  pyro workspace shell signal WORKSPACE_ID SHELL_ID --signal INT
  pyro workspace shell close WORKSPACE_ID SHELL_ID

A shell keeps running between calls; read its output from a cursor (the
[workspace-shell-read] line on stderr gives next_cursor).")]
    Shell {
        #[command(subcommand)]
        command: ShellCommand,
    },
    /// Background services with readiness checks: start, list, status, logs, stop.
    #[command(after_help = "Examples:
  pyro workspace service start WORKSPACE_ID web --ready-file .web-ready -- ./serve.sh
  pyro workspace service list WORKSPACE_ID
  pyro workspace service status WORKSPACE_ID web
  pyro workspace service logs WORKSPACE_ID web --tail-lines 50
  pyro workspace service stop WORKSPACE_ID web

Service state and logs live outside /workspace: they never show up in diff,
export or snapshots.")]
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
}

impl WorkspaceCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Create(args) => args.json,
            Self::List(args) => args.json,
            Self::Status(args)
            | Self::Logs(args)
            | Self::Stop(args)
            | Self::Start(args)
            | Self::Delete(args) => args.json,
            Self::Update(args) => args.json,
            Self::Exec(args) => args.json,
            Self::Sync { command } => command.json(),
            Self::Export(args) => args.json,
            Self::Diff(args) => args.json,
            Self::File { command } => command.json(),
            Self::Patch { command } => command.json(),
            Self::Snapshot { command } => command.json(),
            Self::Reset(args) => args.json,
            Self::Disk { command } => command.json(),
            Self::Shell { command } => command.json(),
            Self::Service { command } => command.json(),
        }
    }
}

/// Arguments of commands that only take `--json`.
#[derive(Debug, clap::Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of commands that take a workspace id.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The workspace id (see `pyro workspace list`).
    pub workspace_id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a workspace subcommand. `connect` is awaited only once the input
/// has been checked.
pub async fn run(
    command: WorkspaceCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        WorkspaceCommand::Create(args) => lifecycle::create(args, connect).await,
        WorkspaceCommand::List(args) => lifecycle::list(&args, connect).await,
        WorkspaceCommand::Status(args) => lifecycle::status(&args, connect).await,
        WorkspaceCommand::Update(args) => lifecycle::update(args, connect).await,
        WorkspaceCommand::Stop(args) => lifecycle::stop(&args, connect).await,
        WorkspaceCommand::Start(args) => lifecycle::start(&args, connect).await,
        WorkspaceCommand::Delete(args) => lifecycle::delete(&args, connect).await,
        WorkspaceCommand::Logs(args) => exec::logs(&args, connect).await,
        WorkspaceCommand::Exec(args) => exec::exec(args, connect).await,
        WorkspaceCommand::Sync { command } => files::sync(command, connect).await,
        WorkspaceCommand::Export(args) => files::export(args, connect).await,
        WorkspaceCommand::File { command } => files::file(command, connect).await,
        WorkspaceCommand::Patch { command } => files::patch(command, connect).await,
        WorkspaceCommand::Diff(args) => snapshots::diff(args, connect).await,
        WorkspaceCommand::Snapshot { command } => snapshots::snapshot(command, connect).await,
        WorkspaceCommand::Reset(args) => snapshots::reset(args, connect).await,
        WorkspaceCommand::Disk { command } => disk::disk(command, connect).await,
        WorkspaceCommand::Shell { command } => shell::shell(command, connect).await,
        WorkspaceCommand::Service { command } => service::service(command, connect).await,
    }
}

/// Parses a `--label K=V`: both parts are trimmed and must be non-empty.
pub fn parse_label(value: &str) -> Result<(String, String), String> {
    let (key, val) = split_pair(value)?;
    let (key, val) = (key.trim(), val.trim());
    if key.is_empty() || val.is_empty() {
        return Err(format!(
            "{value:?} needs a non-empty key and value, as KEY=VALUE"
        ));
    }
    Ok((key.to_owned(), val.to_owned()))
}

/// Parses an `--env K=V`: a non-empty name and a non-empty value (kept as
/// given: spaces in values matter).
pub fn parse_env(value: &str) -> Result<(String, String), String> {
    let (key, val) = split_pair(value)?;
    if key.trim().is_empty() || val.is_empty() {
        return Err(format!(
            "{value:?} needs a non-empty name and value, as NAME=VALUE"
        ));
    }
    Ok((key.trim().to_owned(), val.to_owned()))
}

/// A `--secret NAME=VALUE` as given. It is kept raw until
/// [`secret_specs`] checks it, because clap prints the offending text of a
/// value it cannot parse, and that text holds the value; its `Debug` shows
/// nothing of it either.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(String);

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0.split_once('=').map_or("?", |(name, _)| name.trim());
        write!(f, "SecretArg({name}=[redacted])")
    }
}

/// Takes a `--secret` as given (never fails: see [`SecretArg`]).
pub fn secret_arg(value: &str) -> Result<SecretArg, std::convert::Infallible> {
    Ok(SecretArg(value.to_owned()))
}

/// Parses a `--secret-file NAME=PATH`: a non-empty name (trimmed) and path.
pub fn parse_secret_file(value: &str) -> Result<(String, String), String> {
    let (name, path) = split_pair(value)?;
    if name.trim().is_empty() || path.is_empty() {
        return Err(format!(
            "{value:?} needs a non-empty name and path, as NAME=PATH"
        ));
    }
    Ok((name.trim().to_owned(), path.to_owned()))
}

/// The secrets of `--secret` and `--secret-file`, checked: `NAME=VALUE` is
/// split at the first `=` (the value may hold more), the name is trimmed,
/// the value kept as given; file paths are made absolute (the supervisor
/// reads the file). Errors name the secret, never its value.
pub fn secret_specs(
    literals: Vec<SecretArg>,
    files: Vec<(String, String)>,
) -> Result<Vec<SecretSpec>, CliError> {
    let mut specs = Vec::with_capacity(literals.len() + files.len());
    for SecretArg(raw) in literals {
        let Some((name, value)) = raw.split_once('=') else {
            return Err(CliError::invalid(
                "a --secret is not NAME=VALUE (no `=`); its text is not shown",
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::invalid(
                "a --secret has an empty name; give NAME=VALUE",
            ));
        }
        if value.is_empty() {
            return Err(CliError::invalid(format!(
                "--secret {name} has an empty value"
            )));
        }
        specs.push(SecretSpec {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            file_path: None,
        });
    }
    for (name, path) in files {
        let absolute = std::path::absolute(&path)
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .unwrap_or(path);
        specs.push(SecretSpec {
            name,
            value: None,
            file_path: Some(absolute),
        });
    }
    Ok(specs)
}

/// Parses a `--secret-env SECRET[=ENV_VAR]`; the variable defaults to the
/// secret's name.
pub fn parse_secret_env(value: &str) -> Result<(String, String), String> {
    let (secret, env) = match value.split_once('=') {
        Some((secret, env)) => (secret.trim(), env.trim()),
        None => (value.trim(), value.trim()),
    };
    if secret.is_empty() || env.is_empty() {
        return Err(format!(
            "{value:?} needs a secret name and, if given, a variable name, as SECRET[=ENV_VAR]"
        ));
    }
    Ok((secret.to_owned(), env.to_owned()))
}

/// Collects `--secret-env` pairs into the request's map, refusing a secret
/// given twice and two secrets for one variable.
pub fn secret_env_map(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>, CliError> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (secret, env) in pairs {
        if map.contains_key(&secret) {
            return Err(CliError::invalid(format!(
                "--secret-env {secret} is given twice"
            )));
        }
        if let Some((other, _)) = map.iter().find(|(_, e)| **e == env) {
            return Err(CliError::invalid(format!(
                "--secret-env {other} and {secret} both set {env}"
            )));
        }
        map.insert(secret, env);
    }
    Ok(map)
}

fn split_pair(value: &str) -> Result<(&str, &str), String> {
    value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not KEY=VALUE (no `=`)"))
}

/// Collects `flag` pairs into a map, refusing a key given twice.
pub fn pair_map(
    pairs: Vec<(String, String)>,
    flag: &str,
) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.contains_key(&key) {
            return Err(CliError::invalid(format!("{flag} {key} is given twice")));
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// The text of a `--text`/`--text-file` style pair of flags: exactly one
/// must be given; a file is read as UTF-8 (`-` reads stdin). At most
/// [`MAX_TEXT_BYTES`].
pub fn text_input(
    text: Option<String>,
    file: Option<&Path>,
    text_flag: &str,
    file_flag: &str,
) -> Result<String, CliError> {
    let text = match (text, file) {
        (Some(text), None) => text,
        (None, Some(path)) => read_text_file(path, file_flag)?,
        (Some(_), Some(_)) => {
            return Err(CliError::invalid(format!(
                "give either {text_flag} or {file_flag}, not both"
            )))
        }
        (None, None) => {
            return Err(CliError::invalid(format!(
                "give {text_flag} TEXT or {file_flag} PATH"
            )))
        }
    };
    if text.len() > MAX_TEXT_BYTES {
        return Err(CliError::invalid(format!(
            "the text is {} bytes; at most {MAX_TEXT_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(text)
}

fn read_text_file(path: &Path, flag: &str) -> Result<String, CliError> {
    let result = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|err| {
        let reason = if err.kind() == std::io::ErrorKind::InvalidData {
            "it is not UTF-8 text".to_owned()
        } else {
            err.to_string()
        };
        CliError::invalid(format!("cannot read {flag} {}: {reason}", path.display()))
    })
}

/// A value for a `key=value` line: as is when it is one plain word,
/// shell-quoted otherwise (spaces, quotes, control characters, empty).
pub fn field(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\'));
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(
            shlex::try_quote(value)
                .map_or_else(|_| value.escape_default().to_string(), Cow::into_owned),
        )
    }
}

/// Text printed so that it ends with a newline (nothing for empty text).
pub fn terminated(text: &str) -> Cow<'_, str> {
    if text.is_empty() || text.ends_with('\n') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text}\n"))
    }
}

/// Writes raw bytes and flushes (output streamed as it arrives).
pub fn write_raw(out: &mut impl std::io::Write, bytes: &[u8]) {
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    /// `pyro workspace ...` parsed as the CLI would.
    #[derive(Debug, Parser)]
    #[command(name = "pyro")]
    pub(crate) enum Harness {
        Workspace {
            #[command(subcommand)]
            command: WorkspaceCommand,
        },
    }

    pub(crate) fn parse(args: &[&str]) -> Result<WorkspaceCommand, clap::Error> {
        let words = std::iter::once("pyro").chain(args.iter().copied());
        let matches = Harness::command().try_get_matches_from(words)?;
        let Harness::Workspace { command } = Harness::from_arg_matches(&matches)?;
        Ok(command)
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Harness::command().debug_assert();
    }

    #[test]
    fn every_command_has_examples() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let examples = sub
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("pyro workspace"));
                if !examples {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let root = Harness::command();
        let workspace = root.find_subcommand("workspace").unwrap();
        let mut missing = Vec::new();
        walk(workspace, "workspace", &mut missing);
        assert!(missing.is_empty(), "no examples: {missing:?}");
    }

    #[test]
    fn labels_are_trimmed_and_need_both_parts() {
        assert_eq!(
            parse_label(" team = infra "),
            Ok(("team".into(), "infra".into()))
        );
        assert_eq!(parse_label("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_label("team").unwrap_err().contains("no `=`"));
        assert!(parse_label("=infra").is_err());
        assert!(parse_label("team=").is_err());
        assert!(parse_label("team=  ").is_err());
    }

    #[test]
    fn env_values_are_kept_as_given() {
        assert_eq!(
            parse_env("GREETING= hi there"),
            Ok(("GREETING".into(), " hi there".into()))
        );
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("A=").is_err());
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A").is_err());
    }

    #[test]
    fn secrets_split_at_the_first_equals_sign() {
        let specs = secret_specs(
            vec![
                secret_arg("API_TOKEN=expected").unwrap(),
                secret_arg(" DSN =postgres://u:p@h/db?sslmode=require&x==y").unwrap(),
                secret_arg("SPACED= keep me ").unwrap(),
            ],
            vec![parse_secret_file("PIP_TOKEN=./token.txt").unwrap()],
        )
        .unwrap();
        let literal = |spec: &SecretSpec| (spec.name.clone(), spec.value.clone());
        assert_eq!(
            literal(&specs[0]),
            ("API_TOKEN".into(), Some("expected".into()))
        );
        assert_eq!(
            literal(&specs[1]),
            (
                "DSN".into(),
                Some("postgres://u:p@h/db?sslmode=require&x==y".into())
            )
        );
        assert_eq!(literal(&specs[2]).1.as_deref(), Some(" keep me "));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(specs[3].name, "PIP_TOKEN");
        assert_eq!(specs[3].value, None);
        assert_eq!(
            specs[3].file_path.as_deref(),
            cwd.join("token.txt").to_str()
        );
        let absolute = secret_specs(vec![], vec![("K".into(), "/etc/k=v".into())]).unwrap();
        assert_eq!(absolute[0].file_path.as_deref(), Some("/etc/k=v"));
    }

    #[test]
    fn secret_errors_never_show_the_value() {
        let refused = |raw: &str| {
            secret_specs(vec![secret_arg(raw).unwrap()], vec![])
                .unwrap_err()
                .0
                .message
        };
        for (raw, expected) in [
            (
                "hunter2",
                "a --secret is not NAME=VALUE (no `=`); its text is not shown",
            ),
            ("=hunter2", "a --secret has an empty name; give NAME=VALUE"),
            (
                "  =hunter2",
                "a --secret has an empty name; give NAME=VALUE",
            ),
            ("API_TOKEN=", "--secret API_TOKEN has an empty value"),
        ] {
            assert_eq!(refused(raw), expected);
        }
        // Clap never sees a --secret it could refuse (and so print).
        let parsed = tests::parse(&["workspace", "create", "debian:12", "--secret", "=hunter2"]);
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_eq!(
            format!("{:?}", secret_arg("API_TOKEN=hunter2").unwrap()),
            "SecretArg(API_TOKEN=[redacted])"
        );
        assert!(parse_secret_file("PIP_TOKEN").is_err());
        assert!(parse_secret_file("=./token.txt").is_err());
        assert!(parse_secret_file("PIP_TOKEN=").is_err());
    }

    #[test]
    fn secret_env_defaults_to_the_secret_name() {
        assert_eq!(
            parse_secret_env("API_TOKEN"),
            Ok(("API_TOKEN".into(), "API_TOKEN".into()))
        );
        assert_eq!(
            parse_secret_env("API_TOKEN=GITHUB_TOKEN"),
            Ok(("API_TOKEN".into(), "GITHUB_TOKEN".into()))
        );
        assert!(parse_secret_env("").is_err());
        assert!(parse_secret_env("=ENV").is_err());
        assert!(parse_secret_env("API_TOKEN=").is_err());

        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        let map = secret_env_map(pairs(&[("A", "A"), ("B", "X")])).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["B"], "X");
        assert_eq!(
            secret_env_map(pairs(&[("A", "A"), ("A", "Y")]))
                .unwrap_err()
                .0
                .message,
            "--secret-env A is given twice"
        );
        assert_eq!(
            secret_env_map(pairs(&[("A", "X"), ("B", "X")]))
                .unwrap_err()
                .0
                .message,
            "--secret-env A and B both set X"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let pairs = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        assert_eq!(pair_map(pairs, "--label").unwrap().len(), 2);
        let twice = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        let err = pair_map(twice, "--label").unwrap_err();
        assert_eq!(err.0.message, "--label a is given twice");
    }

    #[test]
    fn text_input_needs_exactly_one_readable_source() {
        assert_eq!(
            text_input(Some("x".into()), None, "--text", "--text-file").unwrap(),
            "x"
        );
        let both = text_input(
            Some("x".into()),
            Some(Path::new("f")),
            "--text",
            "--text-file",
        );
        assert_eq!(
            both.unwrap_err().0.message,
            "give either --text or --text-file, not both"
        );
        let neither = text_input(None, None, "--text", "--text-file");
        assert_eq!(
            neither.unwrap_err().0.message,
            "give --text TEXT or --text-file PATH"
        );

        let dir = tempdir();
        let missing = dir.join("missing.txt");
        let err = text_input(None, Some(&missing), "--text", "--text-file").unwrap_err();
        assert!(err
            .0
            .message
            .starts_with(&format!("cannot read --text-file {}: ", missing.display())));
        assert!(err.0.message.contains("No such file"), "{}", err.0.message);

        let err = text_input(None, Some(&dir), "--patch", "--patch-file").unwrap_err();
        assert!(err.0.message.contains("directory"), "{}", err.0.message);

        let binary = dir.join("bin");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = text_input(None, Some(&binary), "--text", "--text-file").unwrap_err();
        assert!(
            err.0.message.ends_with("it is not UTF-8 text"),
            "{}",
            err.0.message
        );

        let good = dir.join("good.txt");
        std::fs::write(&good, "hello\n").unwrap();
        assert_eq!(
            text_input(None, Some(&good), "--text", "--text-file").unwrap(),
            "hello\n"
        );

        let big = "x".repeat(MAX_TEXT_BYTES + 1);
        assert!(text_input(Some(big), None, "--text", "--text-file").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pyro-cli-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("/workspace/src/note.txt"), "/workspace/src/note.txt");
        assert_eq!(field("team=infra,env=dev"), "team=infra,env=dev");
        assert_eq!(field("my repo"), "'my repo'");
        assert_eq!(field(""), "''");
    }

    #[test]
    fn terminated_adds_a_missing_newline() {
        assert_eq!(terminated("a"), "a\n");
        assert_eq!(terminated("a\n"), "a\n");
        assert_eq!(terminated(""), "");
    }

    #[test]
    fn json_is_seen_on_every_subcommand() {
        for args in [
            &["workspace", "list", "--json"][..],
            &["workspace", "status", "w", "--json"],
            &["workspace", "sync", "push", "w", "src", "--json"],
            &["workspace", "file", "list", "w", "--json"],
            &["workspace", "patch", "apply", "w", "--patch", "p", "--json"],
            &["workspace", "snapshot", "list", "w", "--json"],
            &["workspace", "disk", "read", "w", "f", "--json"],
            &["workspace", "exec", "w", "--json", "--", "true"],
            &["workspace", "shell", "list", "w", "--json"],
            &["workspace", "service", "list", "w", "--json"],
        ] {
            assert!(parse(args).unwrap().json(), "{args:?}");
        }
        assert!(!parse(&["workspace", "list"]).unwrap().json());
    }
}

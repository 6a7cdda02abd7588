//! `pyro workspace ...`: persistent workspaces.
//!
//! - `lifecycle`: create, list, status, update, stop, start, delete, and the
//!   summary block they print.
//! - `exec`: exec (streamed, exit code passed through) and logs.
//! - `files`: sync push, export, file list/read/write, patch apply.
//! - `snapshots`: diff, snapshot create/list/delete, reset.
//! - `disk`: disk export/list/read (stopped workspaces).
//!
//! Every subcommand builds and checks its request before it connects, so bad
//! input fails with a clear message and nothing is sent (nor a supervisor
//! started). Human output is rendered by functions that return lines, which
//! the tests check against the first-run transcript.

mod disk;
mod exec;
mod files;
mod lifecycle;
mod snapshots;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::path::Path;

use clap::Subcommand;
use pyro_sdk::api::workspace::MAX_TEXT_BYTES;
use pyro_sdk::Client;

use crate::output::{CliError, Outcome};

pub use disk::DiskCommand;
pub use exec::ExecArgs;
pub use files::{ExportArgs, FileCommand, PatchCommand, SyncCommand};
pub use lifecycle::{CreateArgs, UpdateArgs};
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
        ] {
            assert!(parse(args).unwrap().json(), "{args:?}");
        }
        assert!(!parse(&["workspace", "list"]).unwrap().json());
    }
}

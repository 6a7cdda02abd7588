//! `pyro workspace shell open|read|write|signal|resize|list|close`:
//! interactive shells (PTYs) that keep running in a started workspace
//! between calls.
//!
//! Every subcommand but `list` prints its `[workspace-shell-*]` line on
//! stderr, so that `shell read` leaves the shell's output alone on stdout.
//! The read line spells its boolean as `True`/`False`, as the first-run
//! transcript does.

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use pyro_sdk::api::session::{
    ShellInfo, ShellList, ShellOpenRequest, ShellReadRequest, ShellReadResult, ShellResizeRequest,
    ShellSignalName, ShellSignalRequest, ShellWriteRequest, MAX_WAIT_FOR_IDLE_MS,
};
use pyro_sdk::Client;

use super::{field, parse_secret_env, secret_env_map, write_raw, IdArgs};
use crate::output::{err, out, print_json, CliError, Outcome};

/// `pyro workspace shell ...`.
#[derive(Debug, Subcommand)]
pub enum ShellCommand {
    /// Open an interactive shell (bash on a PTY) in a started workspace.
    #[command(after_help = "Examples:
  pyro workspace shell open WORKSPACE_ID
  pyro workspace shell open WORKSPACE_ID --secret-env API_TOKEN
  SHELL_ID=$(pyro workspace shell open WORKSPACE_ID --cwd src --cols 200 --rows 50 --id-only)

The [workspace-shell-open] line (with the shell id) goes to stderr; --id-only
prints the bare id on stdout.")]
    Open(OpenArgs),
    /// Print a shell's output from a cursor.
    #[command(after_help = "Examples:
  pyro workspace shell read WORKSPACE_ID SHELL_ID
  pyro workspace shell read WORKSPACE_ID SHELL_ID --cursor 120 --plain --wait-for-idle-ms 500

The output goes to stdout exactly as the terminal produced it (--plain
renders escapes and carriage returns to text); the [workspace-shell-read]
line on stderr gives next_cursor, where the next read should start.
truncated=True means older output had left the shell's buffer; more=True
that output is waiting after next_cursor.")]
    Read(ReadArgs),
    /// Type into a shell (Enter is pressed afterwards unless --no-newline).
    #[command(after_help = "Examples:
  pyro workspace shell write WORKSPACE_ID SHELL_ID --input 'pwd'
  pyro workspace shell write WORKSPACE_ID SHELL_ID --input 'y' --no-newline")]
    Write(WriteArgs),
    /// Send a signal to a shell's foreground job (INT is Ctrl-C).
    #[command(after_help = "Examples:
  pyro workspace shell signal WORKSPACE_ID SHELL_ID
  pyro workspace shell signal WORKSPACE_ID SHELL_ID --signal TERM")]
    Signal(SignalArgs),
    /// Change a shell's terminal size.
    #[command(after_help = "Example:
  pyro workspace shell resize WORKSPACE_ID SHELL_ID --cols 200 --rows 50")]
    Resize(ResizeArgs),
    /// List a workspace's shells.
    #[command(after_help = "Examples:
  pyro workspace shell list WORKSPACE_ID
  pyro workspace shell list WORKSPACE_ID --json")]
    List(IdArgs),
    /// Close a shell (hang-up, then kill).
    #[command(after_help = "Example:
  pyro workspace shell close WORKSPACE_ID SHELL_ID")]
    Close(ShellIdArgs),
}

impl ShellCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Open(args) => args.json,
            Self::Read(args) => args.json,
            Self::Write(args) => args.json,
            Self::Signal(args) => args.json,
            Self::Resize(args) => args.json,
            Self::List(args) => args.json,
            Self::Close(args) => args.json,
        }
    }
}

/// `shell open` arguments.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// Working directory (default /workspace; relative paths are under it).
    #[arg(long, value_name = "PATH")]
    pub cwd: Option<String>,
    /// Terminal width (10-1000).
    #[arg(long, default_value_t = 120)]
    pub cols: u16,
    /// Terminal height (5-1000).
    #[arg(long, default_value_t = 30)]
    pub rows: u16,
    /// Put a workspace secret in the shell's environment, as ENV_VAR (default: the secret's name; repeatable).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV_VAR]", value_parser = parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
    /// Print JSON.
    #[arg(long, conflicts_with = "id_only")]
    pub json: bool,
    /// Print only the shell id.
    #[arg(long)]
    pub id_only: bool,
}

/// `shell read` arguments.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id (see `pyro workspace shell list`).
    pub shell_id: String,
    /// Where to start: 0 is the shell's first output; give the last read's next_cursor.
    #[arg(long, default_value_t = 0)]
    pub cursor: u64,
    /// Return at most this much output (1-16777216).
    #[arg(long, default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_chars: u64,
    /// Render terminal escapes, carriage returns and backspaces to plain text.
    #[arg(long)]
    pub plain: bool,
    /// First wait until no output came for this many milliseconds (1-10000).
    #[arg(long, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_FOR_IDLE_MS))]
    pub wait_for_idle_ms: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `shell write` arguments.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// What to type.
    #[arg(long, allow_hyphen_values = true)]
    pub input: String,
    /// Do not press Enter after the input.
    #[arg(long)]
    pub no_newline: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `shell signal` arguments.
#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// The signal.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SignalArg::Int)]
    pub signal: SignalArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalArg {
    /// Hang up.
    #[value(name = "HUP")]
    Hup,
    /// Interrupt (Ctrl-C).
    #[value(name = "INT")]
    Int,
    /// Terminate.
    #[value(name = "TERM")]
    Term,
    /// Kill.
    #[value(name = "KILL")]
    Kill,
}

impl From<SignalArg> for ShellSignalName {
    fn from(value: SignalArg) -> Self {
        match value {
            SignalArg::Hup => Self::Hup,
            SignalArg::Int => Self::Int,
            SignalArg::Term => Self::Term,
            SignalArg::Kill => Self::Kill,
        }
    }
}

impl SignalArg {
    /// The name as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hup => "HUP",
            Self::Int => "INT",
            Self::Term => "TERM",
            Self::Kill => "KILL",
        }
    }
}

/// `shell resize` arguments.
#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// New width (10-1000).
    #[arg(long)]
    pub cols: u16,
    /// New height (5-1000).
    #[arg(long)]
    pub rows: u16,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of shell commands that take a workspace and a shell id.
#[derive(Debug, Args)]
pub struct ShellIdArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The open request, checked.
pub fn open_request(args: &OpenArgs) -> Result<ShellOpenRequest, CliError> {
    let request = ShellOpenRequest {
        cwd: args.cwd.clone(),
        cols: args.cols,
        rows: args.rows,
        secret_env: secret_env_map(args.secret_env.clone())?,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok(request)
}

/// The read request, checked.
pub fn read_request(args: &ReadArgs) -> Result<ShellReadRequest, CliError> {
    let request = ShellReadRequest {
        cursor: args.cursor,
        max_chars: args.max_chars,
        plain: args.plain,
        wait_for_idle_ms: args.wait_for_idle_ms,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok(request)
}

/// The resize request, checked.
pub fn resize_request(args: &ResizeArgs) -> Result<ShellResizeRequest, CliError> {
    let request = ShellResizeRequest {
        cols: args.cols,
        rows: args.rows,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok(request)
}

/// Runs `pyro workspace shell ...`.
pub async fn shell(
    command: ShellCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        ShellCommand::Open(args) => {
            let request = open_request(&args)?;
            let info = connect
                .await?
                .open_shell(&args.workspace_id, &request)
                .await?;
            if args.json {
                print_json(&info);
            } else if args.id_only {
                out(&info.shell_id);
            } else {
                err(&shell_line("workspace-shell-open", &info));
            }
        }
        ShellCommand::Read(args) => {
            let request = read_request(&args)?;
            let result = connect
                .await?
                .read_shell(&args.workspace_id, &args.shell_id, &request)
                .await?;
            if args.json {
                print_json(&result);
            } else {
                write_raw(&mut std::io::stdout().lock(), result.output.as_bytes());
                // Keep the summary on a line of its own when both streams
                // share a terminal; stdout itself stays exactly the output.
                if !result.output.is_empty()
                    && !result.output.ends_with('\n')
                    && std::io::stdout().is_terminal()
                {
                    write_raw(&mut std::io::stderr().lock(), b"\n");
                }
                err(&read_footer(&result));
            }
        }
        ShellCommand::Write(args) => {
            let request = ShellWriteRequest {
                input: args.input,
                append_newline: !args.no_newline,
            };
            let info = connect
                .await?
                .write_shell(&args.workspace_id, &args.shell_id, &request)
                .await?;
            show(&info, "workspace-shell-write", args.json);
        }
        ShellCommand::Signal(args) => {
            let request = ShellSignalRequest {
                signal: args.signal.into(),
            };
            let info = connect
                .await?
                .signal_shell(&args.workspace_id, &args.shell_id, &request)
                .await?;
            if args.json {
                print_json(&info);
            } else {
                err(&signal_line(&info, args.signal));
            }
        }
        ShellCommand::Resize(args) => {
            let request = resize_request(&args)?;
            let info = connect
                .await?
                .resize_shell(&args.workspace_id, &args.shell_id, &request)
                .await?;
            show(&info, "workspace-shell-resize", args.json);
        }
        ShellCommand::List(args) => {
            let list = connect.await?.list_shells(&args.workspace_id).await?;
            if args.json {
                print_json(&list);
            } else {
                for line in list_lines(&list) {
                    out(&line);
                }
            }
        }
        ShellCommand::Close(args) => {
            let info = connect
                .await?
                .close_shell(&args.workspace_id, &args.shell_id)
                .await?;
            show(&info, "workspace-shell-close", args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(info: &ShellInfo, prefix: &str, json: bool) {
    if json {
        print_json(info);
    } else {
        err(&shell_line(prefix, info));
    }
}

/// `True` or `False`: the first-run transcript's spelling in the read line.
pub fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// `[PREFIX] workspace_id=... shell_id=... state=... cwd=... cols=... rows=... execution_mode=...`.
pub fn shell_line(prefix: &str, info: &ShellInfo) -> String {
    let mut line = format!(
        "[{prefix}] workspace_id={} shell_id={} state={} cwd={} cols={} rows={} execution_mode={}",
        info.workspace_id,
        info.shell_id,
        info.state,
        field(&info.cwd),
        info.cols,
        info.rows,
        info.execution_mode,
    );
    if let Some(code) = info.exit_code {
        line.push_str(&format!(" exit_code={code}"));
    }
    line
}

/// The shell line with ` signal=NAME` after it.
pub fn signal_line(info: &ShellInfo, signal: SignalArg) -> String {
    format!(
        "{} signal={}",
        shell_line("workspace-shell-signal", info),
        signal.as_str()
    )
}

/// `[workspace-shell-read] workspace_id=... shell_id=... state=... cursor=... next_cursor=... truncated=True|False execution_mode=...`
/// (and ` more=True` when output is waiting after `next_cursor`).
pub fn read_footer(result: &ShellReadResult) -> String {
    let more = if result.more { " more=True" } else { "" };
    format!(
        "[workspace-shell-read] workspace_id={} shell_id={} state={} cursor={} next_cursor={} truncated={} execution_mode={}{more}",
        result.shell.workspace_id,
        result.shell.shell_id,
        result.shell.state,
        result.cursor,
        result.next_cursor,
        py_bool(result.truncated),
        result.shell.execution_mode,
    )
}

/// `Workspace: ID`, `Shells: N total, R running`, then
/// `- SHELL_ID [state] cwd=... cols=... rows=...` per shell.
pub fn list_lines(list: &ShellList) -> Vec<String> {
    let running = list.shells.iter().filter(|s| s.state == "running").count();
    let mut lines = vec![
        format!("Workspace: {}", list.workspace_id),
        format!("Shells: {} total, {running} running", list.count),
    ];
    for shell in &list.shells {
        let mut line = format!(
            "- {} [{}] cwd={} cols={} rows={}",
            shell.shell_id,
            shell.state,
            field(&shell.cwd),
            shell.cols,
            shell.rows
        );
        if let Some(code) = shell.exit_code {
            line.push_str(&format!(" exit_code={code}"));
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;

    fn shell_command(args: &[&str]) -> Result<ShellCommand, clap::Error> {
        let mut words = vec!["workspace", "shell"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::Shell { command } => Ok(command),
            other => panic!("{other:?}"),
        }
    }

    pub(crate) fn info(state: &str) -> ShellInfo {
        ShellInfo {
            workspace_id: "0123456789ab".into(),
            shell_id: "3f2a9c1b7d4e".into(),
            cwd: "/workspace".into(),
            cols: 120,
            rows: 30,
            state: state.into(),
            started_at: "2026-01-02T03:04:05.000Z".into(),
            ended_at: None,
            exit_code: None,
            output_end: 17,
            execution_mode: "guest_vsock".into(),
        }
    }

    #[test]
    fn open_and_write_lines_match_the_transcript() {
        assert_eq!(
            shell_line("workspace-shell-open", &info("running")),
            "[workspace-shell-open] workspace_id=0123456789ab shell_id=3f2a9c1b7d4e state=running cwd=/workspace cols=120 rows=30 execution_mode=guest_vsock"
        );
        assert_eq!(
            shell_line("workspace-shell-write", &info("running")),
            "[workspace-shell-write] workspace_id=0123456789ab shell_id=3f2a9c1b7d4e state=running cwd=/workspace cols=120 rows=30 execution_mode=guest_vsock"
        );
        let mut closed = info("stopped");
        closed.exit_code = Some(129);
        assert_eq!(
            shell_line("workspace-shell-close", &closed),
            "[workspace-shell-close] workspace_id=0123456789ab shell_id=3f2a9c1b7d4e state=stopped cwd=/workspace cols=120 rows=30 execution_mode=guest_vsock exit_code=129"
        );
        assert!(signal_line(&info("running"), SignalArg::Int).ends_with(" signal=INT"));
    }

    #[test]
    fn read_footer_matches_the_transcript() {
        let mut result = ShellReadResult {
            shell: info("running"),
            cursor: 0,
            next_cursor: 17,
            output: "pwd\r\n/workspace\r\n".into(),
            truncated: false,
            more: false,
            plain: false,
            wait_for_idle_ms: None,
        };
        assert_eq!(
            read_footer(&result),
            "[workspace-shell-read] workspace_id=0123456789ab shell_id=3f2a9c1b7d4e state=running cursor=0 next_cursor=17 truncated=False execution_mode=guest_vsock"
        );
        result.truncated = true;
        result.more = true;
        result.cursor = 5;
        assert_eq!(
            read_footer(&result),
            "[workspace-shell-read] workspace_id=0123456789ab shell_id=3f2a9c1b7d4e state=running cursor=5 next_cursor=17 truncated=True execution_mode=guest_vsock more=True"
        );
    }

    #[test]
    fn list_block() {
        let mut stopped = info("stopped");
        stopped.shell_id = "aaaaaaaaaaaa".into();
        stopped.cwd = "/workspace/my dir".into();
        stopped.exit_code = Some(0);
        let list = ShellList {
            workspace_id: "0123456789ab".into(),
            count: 2,
            shells: vec![info("running"), stopped],
        };
        assert_eq!(
            list_lines(&list),
            [
                "Workspace: 0123456789ab",
                "Shells: 2 total, 1 running",
                "- 3f2a9c1b7d4e [running] cwd=/workspace cols=120 rows=30",
                "- aaaaaaaaaaaa [stopped] cwd='/workspace/my dir' cols=120 rows=30 exit_code=0",
            ]
        );
        let empty = ShellList {
            workspace_id: "0123456789ab".into(),
            count: 0,
            shells: vec![],
        };
        assert_eq!(
            list_lines(&empty),
            ["Workspace: 0123456789ab", "Shells: 0 total, 0 running"]
        );
    }

    #[test]
    fn open_builds_the_request() {
        let ShellCommand::Open(args) = shell_command(&[
            "open",
            "0123456789ab",
            "--secret-env",
            "API_TOKEN",
            "--secret-env",
            "PIP_TOKEN=PIP_INDEX_TOKEN",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(!args.json && !args.id_only);
        let request = open_request(&args).unwrap();
        assert_eq!(request.cols, 120);
        assert_eq!(request.rows, 30);
        assert_eq!(request.cwd, None);
        assert_eq!(request.secret_env["API_TOKEN"], "API_TOKEN");
        assert_eq!(request.secret_env["PIP_TOKEN"], "PIP_INDEX_TOKEN");

        let ShellCommand::Open(args) = shell_command(&[
            "open",
            "w",
            "--cwd",
            "src",
            "--cols",
            "200",
            "--rows",
            "50",
            "--id-only",
        ])
        .unwrap() else {
            panic!()
        };
        let request = open_request(&args).unwrap();
        assert_eq!(
            (request.cwd.as_deref(), request.cols, request.rows),
            (Some("src"), 200, 50)
        );
        assert!(args.id_only);
    }

    #[test]
    fn open_refuses_bad_input() {
        let err = shell_command(&["open", "w", "--json", "--id-only"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let ShellCommand::Open(tiny) = shell_command(&["open", "w", "--cols", "2"]).unwrap() else {
            panic!()
        };
        assert!(open_request(&tiny)
            .unwrap_err()
            .0
            .message
            .contains("terminal size"));
        let ShellCommand::Open(twice) =
            shell_command(&["open", "w", "--secret-env", "A", "--secret-env", "A=B"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            open_request(&twice).unwrap_err().0.message,
            "--secret-env A is given twice"
        );
        let ShellCommand::Open(bad) =
            shell_command(&["open", "w", "--secret-env", "A=1BAD"]).unwrap()
        else {
            panic!()
        };
        assert!(open_request(&bad).is_err());
    }

    #[test]
    fn read_flags() {
        let ShellCommand::Read(args) = shell_command(&["read", "w", "s"]).unwrap() else {
            panic!()
        };
        assert_eq!(read_request(&args).unwrap(), ShellReadRequest::default());
        let ShellCommand::Read(args) = shell_command(&[
            "read",
            "w",
            "s",
            "--cursor",
            "42",
            "--max-chars",
            "100",
            "--plain",
            "--wait-for-idle-ms",
            "500",
            "--json",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(args.json);
        let request = read_request(&args).unwrap();
        assert_eq!(
            request,
            ShellReadRequest {
                cursor: 42,
                max_chars: 100,
                plain: true,
                wait_for_idle_ms: Some(500),
            }
        );
        for bad in [
            &["read", "w", "s", "--wait-for-idle-ms", "0"][..],
            &["read", "w", "s", "--wait-for-idle-ms", "10001"],
            &["read", "w", "s", "--max-chars", "0"],
            &["read", "w", "s", "--cursor", "-1"],
        ] {
            let err = shell_command(bad).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::ValueValidation
                        | clap::error::ErrorKind::UnknownArgument
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn write_signal_and_resize_flags() {
        let ShellCommand::Write(args) =
            shell_command(&["write", "w", "s", "--input", "pwd"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((args.input.as_str(), args.no_newline), ("pwd", false));
        let ShellCommand::Write(args) =
            shell_command(&["write", "w", "s", "--input", "-n", "--no-newline"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((args.input.as_str(), args.no_newline), ("-n", true));
        let err = shell_command(&["write", "w", "s"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);

        let ShellCommand::Signal(args) = shell_command(&["signal", "w", "s"]).unwrap() else {
            panic!()
        };
        assert_eq!(args.signal, SignalArg::Int);
        for (given, expected) in [
            ("HUP", ShellSignalName::Hup),
            ("INT", ShellSignalName::Int),
            ("TERM", ShellSignalName::Term),
            ("KILL", ShellSignalName::Kill),
            ("term", ShellSignalName::Term),
        ] {
            let ShellCommand::Signal(args) =
                shell_command(&["signal", "w", "s", "--signal", given]).unwrap()
            else {
                panic!()
            };
            assert_eq!(ShellSignalName::from(args.signal), expected);
        }
        for bad in ["STOP", "9", "SIGINT", ""] {
            let err = shell_command(&["signal", "w", "s", "--signal", bad]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad}");
        }

        let ShellCommand::Resize(args) =
            shell_command(&["resize", "w", "s", "--cols", "200", "--rows", "50"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            resize_request(&args).unwrap(),
            ShellResizeRequest {
                cols: 200,
                rows: 50
            }
        );
        let err = shell_command(&["resize", "w", "s", "--cols", "200"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let ShellCommand::Resize(small) =
            shell_command(&["resize", "w", "s", "--cols", "200", "--rows", "1"]).unwrap()
        else {
            panic!()
        };
        assert!(resize_request(&small).is_err());
    }

    #[test]
    fn json_is_seen_on_every_shell_command() {
        for args in [
            &["open", "w", "--json"][..],
            &["read", "w", "s", "--json"],
            &["write", "w", "s", "--input", "x", "--json"],
            &["signal", "w", "s", "--json"],
            &["resize", "w", "s", "--cols", "80", "--rows", "24", "--json"],
            &["list", "w", "--json"],
            &["close", "w", "s", "--json"],
        ] {
            assert!(shell_command(args).unwrap().json(), "{args:?}");
        }
        assert!(!shell_command(&["list", "w"]).unwrap().json());
    }
}

//! `pyro workspace exec` (output streamed live, exit code passed through)
//! and `pyro workspace logs`.

use std::future::Future;
use std::process::ExitCode;

use clap::Args;
use pyro_sdk::api::limits;
use pyro_sdk::api::workspace::{ExecEvent, ExecRequest, ExecSummary, LogEntry};
use pyro_sdk::api::StreamName;
use pyro_sdk::{Client, SdkError};
use serde::Serialize;

use super::{pair_map, parse_env, terminated, write_raw, IdArgs};
use crate::commands::run::command_spec;
use crate::output::{err, exit_code, out, print_json, CliError, Outcome};

/// `pyro workspace exec` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace exec WORKSPACE_ID -- cat src/note.txt
  pyro workspace exec WORKSPACE_ID --cwd src --env CI=1 -- make test
  pyro workspace exec WORKSPACE_ID --secret-env API_TOKEN -- sh -lc 'test \"$API_TOKEN\" = \"expected\"'
  pyro workspace exec WORKSPACE_ID --timeout-seconds 600 --json -- sh -c 'cargo build 2>&1'

The words after `--` are joined into one shell line and run with `sh -lc` in
/workspace (or --cwd). Output streams to your stdout and stderr as it
arrives; the [workspace-exec] summary goes to stderr. pyro exits with the
command's exit code (124 when the timeout killed it).")]
pub struct ExecArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// Seconds before the command's whole process group is killed (exit 124).
    #[arg(long, default_value_t = limits::DEFAULT_TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Working directory (default /workspace; relative paths are under it).
    #[arg(long, value_name = "PATH")]
    pub cwd: Option<String>,
    /// An environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Put a workspace secret in the command's environment, as ENV_VAR (default: the secret's name; repeatable).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV_VAR]", value_parser = super::parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
    /// Print one JSON result (with the output) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The `--json` result of an exec: the summary plus the output.
#[derive(Debug, Serialize)]
pub struct ExecJson {
    #[serde(flatten)]
    summary: ExecSummary,
    stdout: String,
    stderr: String,
}

/// The exec request, checked.
pub fn exec_request(args: ExecArgs) -> Result<(String, ExecRequest), CliError> {
    let request = ExecRequest {
        command: command_spec(&args.command)?,
        timeout_seconds: args.timeout_seconds,
        cwd: args.cwd,
        env: pair_map(args.env, "--env")?,
        secret_env: super::secret_env_map(args.secret_env)?,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok((args.workspace_id, request))
}

/// Runs `pyro workspace exec`.
pub async fn exec(
    args: ExecArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let json = args.json;
    let (workspace_id, request) = exec_request(args)?;
    let client = connect.await?;
    let mut events = client.exec_workspace(&workspace_id, &request).await?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted => {
                err(&format!(
                    "[workspace-exec] interrupted; no longer following the command (see `pyro workspace logs {workspace_id}`)"
                ));
                return Ok(ExitCode::from(130));
            }
        };
        let Some(event) = event else {
            return Err(SdkError::StreamEnded {
                path: events.path().to_owned(),
            }
            .into());
        };
        match event? {
            ExecEvent::Output(chunk) => {
                let bytes = chunk
                    .bytes()
                    .map_err(|e| CliError::invalid(format!("bad output chunk: {e}")))?;
                match (json, chunk.stream) {
                    (true, StreamName::Stdout) => stdout.extend_from_slice(&bytes),
                    (true, StreamName::Stderr) => stderr.extend_from_slice(&bytes),
                    (false, StreamName::Stdout) => write_raw(&mut std::io::stdout().lock(), &bytes),
                    (false, StreamName::Stderr) => write_raw(&mut std::io::stderr().lock(), &bytes),
                }
            }
            ExecEvent::Result(summary) => {
                let code = summary.exit_code;
                if json {
                    print_json(&ExecJson {
                        summary,
                        stdout: String::from_utf8_lossy(&stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    });
                } else {
                    err(&exec_footer(&summary));
                }
                return Ok(exit_code(code));
            }
            ExecEvent::Error(body) => return Err(CliError(body)),
        }
    }
}

/// `[workspace-exec] workspace_id=... sequence=... cwd=... execution_mode=... exit_code=... duration_ms=...`
/// (and ` timed_out=yes` when the timeout killed the command).
pub fn exec_footer(summary: &ExecSummary) -> String {
    let timed_out = if summary.timed_out {
        " timed_out=yes"
    } else {
        ""
    };
    format!(
        "[workspace-exec] workspace_id={} sequence={} cwd={} execution_mode={} exit_code={} duration_ms={}{timed_out}",
        summary.workspace_id,
        summary.sequence,
        super::field(&summary.cwd),
        summary.execution_mode,
        summary.exit_code,
        summary.duration_ms,
    )
}

/// Runs `pyro workspace logs`.
pub async fn logs(
    args: &IdArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let list = connect.await?.workspace_logs(&args.workspace_id).await?;
    if args.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    if list.entries.is_empty() {
        out("No workspace logs found.");
    }
    for entry in &list.entries {
        for line in log_header(entry) {
            out(&line);
        }
        write_raw(
            &mut std::io::stdout().lock(),
            terminated(&entry.stdout).as_bytes(),
        );
        write_raw(
            &mut std::io::stderr().lock(),
            terminated(&entry.stderr).as_bytes(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `#SEQ exit_code=N duration_ms=N cwd=... recorded_at=...` and `$ COMMAND`.
pub fn log_header(entry: &LogEntry) -> [String; 2] {
    let mut first = format!(
        "#{} exit_code={} duration_ms={} cwd={} recorded_at={}",
        entry.sequence,
        entry.exit_code,
        entry.duration_ms,
        super::field(&entry.cwd),
        entry.recorded_at
    );
    if entry.timed_out {
        first.push_str(" timed_out=yes");
    }
    if entry.output_truncated {
        first.push_str(" output_truncated=yes");
    }
    [first, format!("$ {}", entry.command)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;
    use pyro_sdk::api::CommandSpec;

    fn exec_args(args: &[&str]) -> Result<ExecArgs, clap::Error> {
        let mut words = vec!["workspace", "exec"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::Exec(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    fn summary() -> ExecSummary {
        ExecSummary {
            workspace_id: "0123456789ab".into(),
            environment: "debian:12".into(),
            environment_version: "0.1.0".into(),
            sequence: 1,
            command: "cat src/note.txt".into(),
            cwd: "/workspace".into(),
            exit_code: 0,
            duration_ms: 17,
            timed_out: false,
            execution_mode: "guest_vsock".into(),
        }
    }

    #[test]
    fn footer_matches_the_transcript() {
        assert_eq!(
            exec_footer(&summary()),
            "[workspace-exec] workspace_id=0123456789ab sequence=1 cwd=/workspace execution_mode=guest_vsock exit_code=0 duration_ms=17"
        );
        let mut timed_out = summary();
        timed_out.exit_code = 124;
        timed_out.timed_out = true;
        assert!(exec_footer(&timed_out).ends_with(" exit_code=124 duration_ms=17 timed_out=yes"));
    }

    #[test]
    fn json_flattens_the_summary() {
        let json = serde_json::to_value(ExecJson {
            summary: summary(),
            stdout: "hello\n".into(),
            stderr: String::new(),
        })
        .unwrap();
        assert_eq!(json["sequence"], 1);
        assert_eq!(json["stdout"], "hello\n");
        assert_eq!(json["exit_code"], 0);
    }

    #[test]
    fn words_after_the_dashes_become_one_shell_line() {
        let args = exec_args(&[
            "0123456789ab",
            "--cwd",
            "src",
            "--env",
            "CI=1",
            "--env",
            "MSG=a b",
            "--",
            "sh",
            "-lc",
            "test \"$CI\" = 1",
        ])
        .unwrap();
        let (id, request) = exec_request(args).unwrap();
        assert_eq!(id, "0123456789ab");
        assert_eq!(
            request.command,
            CommandSpec::Shell("sh -lc 'test \"$CI\" = 1'".into())
        );
        assert_eq!(request.cwd.as_deref(), Some("src"));
        assert_eq!(request.env["MSG"], "a b");
        assert_eq!(request.timeout_seconds, 30);
    }

    #[test]
    fn transcript_secret_exec_builds_the_request() {
        let args = exec_args(&[
            "0123456789ab",
            "--secret-env",
            "API_TOKEN",
            "--secret-env",
            "PIP_TOKEN=PIP_INDEX_TOKEN",
            "--",
            "sh",
            "-lc",
            "test \"$API_TOKEN\" = \"expected\"",
        ])
        .unwrap();
        let (_, request) = exec_request(args).unwrap();
        assert_eq!(
            request.command,
            CommandSpec::Shell("sh -lc 'test \"$API_TOKEN\" = \"expected\"'".into())
        );
        assert_eq!(request.secret_env.len(), 2);
        assert_eq!(request.secret_env["API_TOKEN"], "API_TOKEN");
        assert_eq!(request.secret_env["PIP_TOKEN"], "PIP_INDEX_TOKEN");
        let twice = exec_args(&[
            "w",
            "--secret-env",
            "API_TOKEN",
            "--secret-env",
            "API_TOKEN=OTHER",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(
            exec_request(twice).unwrap_err().0.message,
            "--secret-env API_TOKEN is given twice"
        );
        let bad = exec_args(&["w", "--secret-env", "API-TOKEN", "--", "true"]).unwrap();
        assert!(exec_request(bad).is_err());
        let err = exec_args(&["w", "--secret-env", "A=", "--", "true"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn exec_refuses_bad_input() {
        let err = exec_args(&["w"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err = exec_args(&["w", "cat", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let err = exec_args(&["w", "--env", "NOVALUE", "--", "true"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let err = exec_args(&["w", "--env", "A=", "--", "true"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let empty = exec_args(&["w", "--", ""]).unwrap();
        assert!(exec_request(empty)
            .unwrap_err()
            .0
            .message
            .contains("after `--`"));
        let bad_name = exec_args(&["w", "--env", "1X=a", "--", "true"]).unwrap();
        assert!(exec_request(bad_name).is_err());
        let twice = exec_args(&["w", "--env", "A=1", "--env", "A=2", "--", "true"]).unwrap();
        assert_eq!(
            exec_request(twice).unwrap_err().0.message,
            "--env A is given twice"
        );
        let zero = exec_args(&["w", "--timeout-seconds", "0", "--", "true"]).unwrap();
        assert!(exec_request(zero)
            .unwrap_err()
            .0
            .message
            .starts_with("timeout_seconds"));
    }

    #[test]
    fn log_headers() {
        let mut entry = LogEntry {
            sequence: 2,
            command: "make test".into(),
            cwd: "/workspace".into(),
            exit_code: 2,
            duration_ms: 1500,
            timed_out: false,
            recorded_at: "2026-01-02T03:04:05.000Z".into(),
            stdout: "ok".into(),
            stderr: String::new(),
            output_truncated: false,
        };
        assert_eq!(
            log_header(&entry),
            [
                "#2 exit_code=2 duration_ms=1500 cwd=/workspace recorded_at=2026-01-02T03:04:05.000Z",
                "$ make test",
            ]
        );
        entry.timed_out = true;
        entry.output_truncated = true;
        assert!(log_header(&entry)[0].ends_with(" timed_out=yes output_truncated=yes"));
    }
}

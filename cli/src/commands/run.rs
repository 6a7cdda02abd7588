//! `pyro run` and `pyro demo`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use pyro_sdk::api::{limits, CommandSpec, RunEvent, RunRequest, RunSummary, StreamName};
use pyro_sdk::{Client, SdkError};
use serde::Serialize;

use super::env::pull_line;
use crate::output::{err, exit_code, print_json, CliError, Outcome};

/// `pyro run` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro run debian:12 -- git --version
  pyro run debian:12-build --mem-mib 2048 -- sh -c 'cc --version && make --version'
  pyro run debian:12-base --timeout-seconds 5 --json -- sleep 60

The command after `--` runs as `sh -lc '<command>'` in a fresh VM that is
deleted afterwards. Its stdout and stderr stream to yours as they arrive;
pyro's own [run] lines go to stderr. pyro exits with the command's exit code
(124 when the timeout killed it).")]
pub struct RunArgs {
    /// Environment name, e.g. debian:12 (see `pyro env list`).
    pub environment: String,
    /// vCPUs for the VM (1-8).
    #[arg(long, default_value_t = limits::DEFAULT_VCPU)]
    pub vcpu_count: u8,
    /// Guest memory in MiB (256-32768).
    #[arg(long, default_value_t = limits::DEFAULT_MEM_MIB)]
    pub mem_mib: u32,
    /// Seconds before the command's whole process group is killed (exit 124).
    #[arg(long, default_value_t = limits::DEFAULT_TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Upper bound on the VM's life in seconds, whatever happens.
    #[arg(long, default_value_t = limits::DEFAULT_TTL_SECONDS)]
    pub ttl_seconds: u64,
    /// Print one JSON result instead of streaming output.
    #[arg(long)]
    pub json: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The `--json` result of a run.
#[derive(Debug, Serialize)]
pub struct RunJson {
    vm_id: String,
    environment: String,
    environment_version: String,
    command: String,
    stdout: String,
    stderr: String,
    exit_code: i32,
    duration_ms: u64,
    timed_out: bool,
    boot_ms: u64,
    execution_mode: String,
    cleanup: pyro_sdk::api::Cleanup,
}

impl RunJson {
    fn new(summary: RunSummary, stdout: &[u8], stderr: &[u8]) -> Self {
        Self {
            vm_id: summary.vm_id,
            environment: summary.environment,
            environment_version: summary.environment_version,
            command: summary.command,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            exit_code: summary.exit_code,
            duration_ms: summary.duration_ms,
            timed_out: summary.timed_out,
            boot_ms: summary.boot_ms,
            execution_mode: summary.execution_mode,
            cleanup: summary.cleanup,
        }
    }
}

/// Joins the words after `--` into one shell line, as the reference does.
pub fn command_spec(words: &[String]) -> Result<CommandSpec, CliError> {
    if words.is_empty() || words.iter().all(|w| w.is_empty()) {
        return Err(CliError::invalid("a command is required after `--`"));
    }
    let line = shlex::try_join(words.iter().map(String::as_str))
        .map_err(|_| CliError::invalid("the command contains a NUL byte"))?;
    Ok(CommandSpec::Shell(line))
}

/// Runs `pyro run`.
pub async fn run(client: &Client, args: RunArgs) -> Outcome {
    let request = RunRequest {
        environment: args.environment,
        command: command_spec(&args.command)?,
        vcpu_count: args.vcpu_count,
        mem_mib: args.mem_mib,
        timeout_seconds: args.timeout_seconds,
        ttl_seconds: args.ttl_seconds,
    };
    request.validate().map_err(CliError::invalid)?;
    execute(client, &request, args.json).await
}

/// Runs `pyro demo`: `git --version` on debian:12, printed as JSON.
pub async fn demo(client: &Client) -> Outcome {
    let request = RunRequest::new("debian:12", CommandSpec::Shell("git --version".to_owned()));
    execute(client, &request, true).await
}

async fn execute(client: &Client, request: &RunRequest, json: bool) -> Outcome {
    let mut events = client.run(request).await?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted => {
                err("[run] interrupted: the command is abandoned and its VM deleted");
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
            RunEvent::Phase(phase) => {
                if !json {
                    let subject = match &phase.vm_id {
                        Some(vm_id) => format!("vm_id={vm_id}"),
                        None => format!("environment={}", phase.environment),
                    };
                    err(&format!("[run] phase={} {subject}", phase.phase.as_str()));
                }
            }
            RunEvent::Pull(progress) => {
                if !json {
                    err(&pull_line(&progress));
                }
            }
            RunEvent::Output(chunk) => {
                let bytes = chunk
                    .bytes()
                    .map_err(|e| CliError::invalid(format!("bad output chunk: {e}")))?;
                match (json, chunk.stream) {
                    (true, StreamName::Stdout) => stdout.extend_from_slice(&bytes),
                    (true, StreamName::Stderr) => stderr.extend_from_slice(&bytes),
                    (false, StreamName::Stdout) => write_all(&mut std::io::stdout().lock(), &bytes),
                    (false, StreamName::Stderr) => write_all(&mut std::io::stderr().lock(), &bytes),
                }
            }
            RunEvent::Result(summary) => {
                let code = summary.exit_code;
                if json {
                    print_json(&RunJson::new(summary, &stdout, &stderr));
                } else {
                    let timed_out = if summary.timed_out {
                        " timed_out=yes"
                    } else {
                        ""
                    };
                    err(&format!(
                        "[run] environment={} execution_mode={} exit_code={} duration_ms={}{timed_out}",
                        summary.environment, summary.execution_mode, summary.exit_code, summary.duration_ms
                    ));
                }
                return Ok(exit_code(code));
            }
            RunEvent::Error(body) => return Err(CliError(body)),
        }
    }
}

fn write_all(out: &mut impl Write, bytes: &[u8]) {
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

//! `pyro supervisor run|status|stop`.
//!
//! `stop` returns once the supervisor process has exited, having stopped
//! every VM and removed its socket and pid file, so the next command starts
//! a fresh supervisor instead of racing the old one. While that takes long
//! it says so on stderr; if the supervisor does not exit within
//! [`STOP_WAIT`] it fails, naming the process and its log.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use pyro_sdk::{Client, PyroPaths};

use crate::output::{err, out, print_json, CliError, Outcome};

/// How long `stop` waits for the supervisor to exit. Its own shutdown is
/// bounded (about 30 s when a VM will not power off), so this is a margin.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Supervisor subcommands.
#[derive(Debug, Subcommand)]
pub enum SupervisorCommand {
    /// Run the supervisor in the foreground (for services and debugging).
    Run,
    /// Show whether the supervisor runs, and its version.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the supervisor; it stops every VM first.
    Stop {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a supervisor subcommand.
pub async fn run(command: SupervisorCommand) -> Outcome {
    let paths = PyroPaths::from_env().map_err(|e| CliError::from(pyro_sdk::SdkError::from(e)))?;
    match command {
        SupervisorCommand::Run => {
            let binary = which_supervisor()?;
            let err = std::process::Command::new(&binary).arg("run").exec();
            Err(CliError::invalid(format!(
                "cannot run {}: {err}",
                binary.display()
            )))
        }
        SupervisorCommand::Status { json } => {
            let health = match Client::existing(&paths).await {
                Some(client) => Some(client.health().await?),
                None => None,
            };
            if json {
                print_json(&serde_json::json!({"running": health.is_some(), "health": health}));
            } else {
                match &health {
                    Some(h) => out(&format!(
                        "Supervisor: running (version {}, pid {}, {} VMs) at {}",
                        h.version, h.pid, h.running_vms, h.socket
                    )),
                    None => out(&format!(
                        "Supervisor: not running (socket {})",
                        paths.socket().display()
                    )),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SupervisorCommand::Stop { json } => {
            let waiting = |pid: u32, waited: Duration| {
                err(&format!(
                    "[supervisor] waiting for pid {pid} to stop its VMs and exit ({}s)",
                    waited.as_secs()
                ));
            };
            let stopped = match Client::existing(&paths).await {
                Some(client) => Some(client.stop_supervisor(STOP_WAIT, waiting).await?),
                // One may be shutting down already (its socket is gone first).
                None => Client::await_stopping_supervisor(&paths, STOP_WAIT, waiting).await?,
            };
            if json {
                print_json(&serde_json::json!({
                    "stopped": stopped.is_some(),
                    "pid": stopped.map(|s| s.pid),
                    "waited_ms": stopped.map(|s| u64::try_from(s.waited.as_millis()).unwrap_or(u64::MAX)),
                }));
            } else if let Some(stopped) = stopped {
                out(&format!(
                    "Supervisor stopped (pid {}, {:.1}s).",
                    stopped.pid,
                    stopped.waited.as_secs_f64()
                ));
            } else {
                out("Supervisor was not running.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn which_supervisor() -> Result<std::path::PathBuf, CliError> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PYRO_SUPERVISOR_BIN") {
        candidates.push(std::path::PathBuf::from(path));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(std::path::Path::to_owned))
    {
        candidates.push(dir.join("pyro-supervisor"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("pyro-supervisor")));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| CliError::invalid("pyro-supervisor was not found; run scripts/setup"))
}

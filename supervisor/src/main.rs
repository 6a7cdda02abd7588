//! `pyro-supervisor`: the daemon. `pyro` starts it on first use; run it in
//! the foreground with `pyro-supervisor run` (or `pyro supervisor run`).

#![allow(clippy::disallowed_macros)] // The binary edge talks to the terminal.

use std::process::ExitCode;

use pyro_supervisor::config::Settings;
use pyro_supervisor::error::SupervisorError;

const USAGE: &str = "usage: pyro-supervisor run

Runs the pyro supervisor in the foreground: it owns every pyro VM and serves
the pyro API on a Unix socket. `pyro` starts it by itself when needed.

State directories come from PYRO_HOME, PYRO_CACHE_DIR and PYRO_RUNTIME_DIR
(see `pyro --help`); the log is <data dir>/logs/supervisor.log.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("run") => {}
        Some("--version" | "-V") => {
            println!("pyro-supervisor {}", pyro_sdk::VERSION);
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("[error] unknown argument {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let paths = match pyro_sdk::PyroPaths::from_env() {
        Ok(paths) => paths,
        Err(err) => {
            eprintln!("[error] {err}");
            return ExitCode::FAILURE;
        }
    };
    let _log_guard = match pyro_supervisor::observability::init(&paths.supervisor_log()) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!(
                "[error] cannot open the log {}: {err}",
                paths.supervisor_log().display()
            );
            return ExitCode::FAILURE;
        }
    };
    let settings = Settings::from_env(paths);
    let system = actix_rt::System::new();
    match system.block_on(pyro_supervisor::serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(SupervisorError::AlreadyRunning { socket }) => {
            // Another client won the race to start it; that is fine.
            eprintln!("pyro-supervisor: already running at {}", socket.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "supervisor failed");
            let mut line = format!("[error] {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

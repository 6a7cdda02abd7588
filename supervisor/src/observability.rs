//! Logging: `tracing` to a file in the data directory.
//!
//! Level policy: `info` for lifecycle events (VM ready, stopped, environment
//! installed), `warn` for failures the supervisor recovers from, `error` for
//! failures a user will see, `debug` for everything else. `PYRO_LOG` (an
//! `EnvFilter` directive) overrides the default `info`. Request bodies are
//! never logged: they can carry secrets.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Starts logging to `log_file`; keep the guard alive to flush on exit.
pub fn init(log_file: &Path) -> std::io::Result<WorkerGuard> {
    let dir = log_file.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_env("PYRO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    if installed.is_err() {
        // A subscriber already exists (tests); keep it.
    }
    Ok(guard)
}

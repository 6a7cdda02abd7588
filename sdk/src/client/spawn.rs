//! Starting the supervisor on first use.
//!
//! When the socket does not answer, the client starts `pyro-supervisor` in a
//! new session (so a Ctrl-C in the terminal does not reach it), with its
//! stderr in a startup log, and waits until the socket answers. Two clients
//! racing to start it are harmless: the supervisor takes an exclusive lock
//! and a second instance exits at once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::SdkError;
use crate::paths::PyroPaths;

/// How long a freshly started supervisor has to answer.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the supervisor binary: `explicit`, `$PYRO_SUPERVISOR_BIN`, next to
/// the current executable, then on `PATH`.
pub(crate) fn find_supervisor(explicit: Option<&Path>) -> Result<PathBuf, SdkError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = explicit {
        candidates.push(path.to_owned());
    }
    if let Some(path) = std::env::var_os("PYRO_SUPERVISOR_BIN").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(path));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        candidates.push(dir.join("pyro-supervisor"));
        // `cargo test` runs test binaries from target/<profile>/deps.
        if dir.ends_with("deps") {
            if let Some(parent) = dir.parent() {
                candidates.push(parent.join("pyro-supervisor"));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("pyro-supervisor")));
    }
    for candidate in candidates {
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(SdkError::SupervisorNotFound {
        looked: looked.join(", "),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Starts the supervisor detached and waits until its socket answers.
pub(crate) async fn start(paths: &PyroPaths, binary: &Path) -> Result<(), SdkError> {
    let log_dir = paths.data_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|source| SdkError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;
    let startup_log = log_dir.join("supervisor-startup.log");
    let stderr = std::fs::File::create(&startup_log).map_err(|source| SdkError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;
    let mut command = Command::new(binary);
    command
        .arg("run")
        .env("PYRO_HOME", &paths.data_dir)
        .env("PYRO_CACHE_DIR", &paths.cache_dir)
        .env("PYRO_RUNTIME_DIR", &paths.runtime_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            nix_setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| SdkError::Spawn {
        binary: binary.to_owned(),
        source,
    })?;

    let deadline = Instant::now() + START_TIMEOUT;
    let socket = paths.socket();
    loop {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another client may have won the race: its supervisor holds the
            // lock and ours exited. Give the winner until the deadline.
            if status.success() && wait_for_socket(&socket, deadline).await {
                return Ok(());
            }
            return Err(SdkError::StartFailed {
                reason: format!("it exited with {status}: {}", tail(&startup_log)),
                log: startup_log,
            });
        }
        if Instant::now() >= deadline {
            return Err(SdkError::StartFailed {
                reason: format!(
                    "its socket {} did not answer within {}s",
                    socket.display(),
                    START_TIMEOUT.as_secs()
                ),
                log: paths.supervisor_log(),
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_for_socket(socket: &Path, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

fn nix_setsid() {
    // SAFETY: setsid has no preconditions; failure (already a group leader)
    // is harmless here.
    unsafe {
        libc::setsid();
    }
}

/// The last few lines of a log, on one line.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "no output".to_owned()
    } else {
        joined
    }
}

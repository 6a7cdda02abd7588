//! Starting the supervisor on first use.
//!
//! When the socket does not answer, the client starts `pyro-supervisor` in a
//! new session (so a Ctrl-C in the terminal does not reach it), with its
//! stderr in a startup log, and waits until the socket answers. Two clients
//! racing to start it are harmless: the supervisor takes an exclusive lock
//! and a second instance exits at once (successfully), leaving the winner
//! to answer.
//!
//! A supervisor that is shutting down has removed its socket but still
//! holds the lock while it stops its VMs. A new one started then waits for
//! it to exit (see the supervisor's pid file, [`crate::SupervisorPidFile`]),
//! and if ours exits anyway because it looked too early, it is started
//! again once the old one is gone.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::SdkError;
use crate::paths::PyroPaths;
use crate::pidfile::{SupervisorPhase, SupervisorPidFile};

/// How long a freshly started supervisor has to answer.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer we wait while a previous supervisor is still stopping.
pub(crate) const PREDECESSOR_WAIT: Duration = Duration::from_secs(60);

/// How often we start a supervisor that found another one holding the lock.
const START_ATTEMPTS: u32 = 5;

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
    let mut deadline = Deadline::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut child = spawn(paths, binary, &startup_log)?;
        let status = match wait_for_child(paths, &mut child, &mut deadline).await {
            ChildOutcome::Answered => return Ok(()),
            ChildOutcome::Exited(status) => status,
            ChildOutcome::TimedOut => return Err(silent(paths, &deadline)),
        };
        if !status.success() {
            return Err(SdkError::StartFailed {
                reason: format!("it exited with {status}: {}", tail(&startup_log)),
                log: startup_log,
            });
        }
        // It found another supervisor holding the lock: a client that won
        // the race (its supervisor answers soon), or one shutting down.
        match wait_for_holder(paths, &mut deadline).await {
            HolderOutcome::Answered => return Ok(()),
            HolderOutcome::Gone if attempt < START_ATTEMPTS => {
                tracing::debug!(
                    attempt,
                    "the supervisor holding the state is going away; starting one again"
                );
            }
            HolderOutcome::Gone => {
                return Err(SdkError::StartFailed {
                    reason: format!(
                        "it found another supervisor holding the state {attempt} times: {}",
                        tail(&startup_log)
                    ),
                    log: startup_log,
                })
            }
            HolderOutcome::TimedOut => return Err(silent(paths, &deadline)),
        }
    }
}

/// The start deadline: [`START_TIMEOUT`], stretched (up to
/// [`PREDECESSOR_WAIT`] more) while a previous supervisor is stopping.
#[derive(Debug)]
struct Deadline {
    started: Instant,
    at: Instant,
    latest: Instant,
}

impl Deadline {
    fn new() -> Self {
        let started = Instant::now();
        Self {
            started,
            at: started + START_TIMEOUT,
            latest: started + START_TIMEOUT + PREDECESSOR_WAIT,
        }
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// A previous supervisor is stopping: the new one gets its full start
    /// time once that one is gone.
    fn predecessor_stopping(&mut self) {
        self.at = self.at.max(Instant::now() + START_TIMEOUT).min(self.latest);
    }

    fn seconds(&self) -> u64 {
        self.at.saturating_duration_since(self.started).as_secs()
    }
}

enum ChildOutcome {
    Answered,
    Exited(std::process::ExitStatus),
    TimedOut,
}

enum HolderOutcome {
    Answered,
    Gone,
    TimedOut,
}

fn spawn(
    paths: &PyroPaths,
    binary: &Path,
    startup_log: &Path,
) -> Result<std::process::Child, SdkError> {
    let stderr = std::fs::File::create(startup_log).map_err(|source| SdkError::Spawn {
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
    command.spawn().map_err(|source| SdkError::Spawn {
        binary: binary.to_owned(),
        source,
    })
}

/// Waits until the socket answers or the child exits.
async fn wait_for_child(
    paths: &PyroPaths,
    child: &mut std::process::Child,
    deadline: &mut Deadline,
) -> ChildOutcome {
    let socket = paths.socket();
    loop {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return ChildOutcome::Answered;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return ChildOutcome::Exited(status);
        }
        // Ours may be waiting for a previous supervisor to finish stopping.
        if SupervisorPidFile::read(&paths.supervisor_pid_file())
            .is_some_and(|holder| holder.pid != child.id() && stopping(&holder))
        {
            deadline.predecessor_stopping();
        }
        if deadline.passed() {
            return ChildOutcome::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// After our supervisor found the lock held: waits until the holder's socket
/// answers, or the holder turns out to be stopping or gone (then ours should
/// be started again).
async fn wait_for_holder(paths: &PyroPaths, deadline: &mut Deadline) -> HolderOutcome {
    let socket = paths.socket();
    loop {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return HolderOutcome::Answered;
        }
        match SupervisorPidFile::read(&paths.supervisor_pid_file()) {
            Some(holder) if stopping(&holder) => {
                deadline.predecessor_stopping();
                return HolderOutcome::Gone;
            }
            Some(holder) if holder.process_exists() => {}
            // No holder, or a dead one: the lock is free (or about to be).
            _ => return HolderOutcome::Gone,
        }
        if deadline.passed() {
            return HolderOutcome::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether the holder is a live supervisor shutting down.
fn stopping(holder: &SupervisorPidFile) -> bool {
    holder.phase == SupervisorPhase::Stopping && holder.process_exists()
}

fn silent(paths: &PyroPaths, deadline: &Deadline) -> SdkError {
    SdkError::StartFailed {
        reason: format!(
            "its socket {} did not answer within {}s",
            paths.socket().display(),
            deadline.seconds()
        ),
        log: paths.supervisor_log(),
    }
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

//! Stopping the supervisor, and waiting until its process is gone.
//!
//! `POST /v1/shutdown` answers at once; the supervisor then stops its VMs
//! and exits. [`super::Client::stop_supervisor`] watches the process (by
//! pidfd, opened while it still runs, so a recycled pid cannot fool it) and
//! returns once it has exited. A supervisor that exits cleanly has removed
//! its socket and pid file by then, so the next command starts a new one
//! without meeting the old one.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::SdkError;
use crate::paths::PyroPaths;
use crate::pidfile::process_exists;

/// When the first progress report comes, and how often the next ones.
pub(crate) const PROGRESS_FIRST: Duration = Duration::from_secs(2);
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often the process is checked.
const POLL: Duration = Duration::from_millis(20);

/// A supervisor that has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Its process id.
    pub pid: u32,
    /// How long it took to exit after being asked.
    pub waited: Duration,
}

/// Watches one process for its exit.
#[derive(Debug)]
pub(crate) struct ProcessWatch {
    pid: u32,
    /// `None` when pidfds are unavailable; then the pid is checked.
    pidfd: Option<OwnedFd>,
}

impl ProcessWatch {
    /// Starts watching `pid` (call it while the process surely runs).
    pub(crate) fn open(pid: u32) -> Self {
        let pidfd = libc::pid_t::try_from(pid).ok().and_then(|raw| {
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd
            // or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
            // SAFETY: a non-negative result is a new descriptor we now own.
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        });
        Self { pid, pidfd }
    }

    /// Whether the process has exited.
    pub(crate) fn exited(&self) -> bool {
        match &self.pidfd {
            Some(pidfd) => {
                let mut fds = [libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: one valid pollfd, zero timeout.
                let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
                rc > 0 && fds[0].revents & libc::POLLIN != 0
            }
            None => !process_exists(self.pid),
        }
    }

    /// Waits until the process exits or `within` passes; calls `waiting`
    /// with the time waited after [`PROGRESS_FIRST`], then every
    /// [`PROGRESS_EVERY`]. Returns whether it exited.
    pub(crate) async fn wait(&self, within: Duration, mut waiting: impl FnMut(Duration)) -> bool {
        let started = Instant::now();
        let mut next_report = PROGRESS_FIRST;
        loop {
            if self.exited() {
                return true;
            }
            let waited = started.elapsed();
            if waited >= within {
                return false;
            }
            if waited >= next_report {
                waiting(waited);
                next_report += PROGRESS_EVERY;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits for the watched supervisor `pid` to exit; a timeout is an error
/// naming it and its log.
pub(crate) async fn wait_for_exit(
    watch: &ProcessWatch,
    pid: u32,
    started: Instant,
    within: Duration,
    paths: &PyroPaths,
    mut waiting: impl FnMut(u32, Duration),
) -> Result<Stopped, SdkError> {
    let left = within.saturating_sub(started.elapsed());
    if watch.wait(left, |_| waiting(pid, started.elapsed())).await {
        Ok(Stopped {
            pid,
            waited: started.elapsed(),
        })
    } else {
        Err(SdkError::StopTimeout {
            pid,
            seconds: within.as_secs(),
            log: paths.supervisor_log(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sees_an_exit_and_gives_up_on_a_process_that_stays() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = ProcessWatch::open(child.id());
        assert!(watch.pidfd.is_some());
        assert!(!watch.exited());
        let mut reports = Vec::new();
        assert!(
            !watch
                .wait(Duration::from_millis(100), |waited| reports.push(waited))
                .await
        );
        assert!(reports.is_empty(), "no progress before {PROGRESS_FIRST:?}");
        child.kill().unwrap();
        // The pidfd reports the exit before (and without) anyone reaping it.
        assert!(watch.wait(Duration::from_secs(10), |_| {}).await);
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn reports_progress_while_it_waits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = ProcessWatch::open(child.id());
        let mut reports = Vec::new();
        assert!(
            !watch
                .wait(PROGRESS_FIRST + Duration::from_millis(200), |waited| {
                    reports.push(waited);
                })
                .await
        );
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0] >= PROGRESS_FIRST);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn without_a_pidfd_the_pid_is_checked() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let watch = ProcessWatch {
            pid: child.id(),
            pidfd: None,
        };
        child.wait().unwrap();
        assert!(watch.exited());
    }
}

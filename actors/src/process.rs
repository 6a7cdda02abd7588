//! Child processes tracked by pidfd.
//!
//! A pidfd names one process for its whole life: signalling it can never hit
//! a recycled PID, and it becomes readable when the process exits, so exits
//! are awaited on the runtime instead of blocking a thread in `waitpid`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;

/// How a tracked process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It ended, but it was not our child, so its status is unknown.
    Unknown,
}

impl std::fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal(signal) => write!(f, "signal {signal}"),
            Self::Unknown => f.write_str("unknown status"),
        }
    }
}

/// A process we started (or adopted), named by a pidfd.
#[derive(Debug)]
pub struct TrackedProcess {
    pid: u32,
    pidfd: OwnedFd,
    name: &'static str,
}

impl TrackedProcess {
    /// Spawns `command` and opens its pidfd before anyone can reap it.
    pub fn spawn(name: &'static str, command: &mut Command) -> io::Result<Self> {
        let child: Child = command.spawn()?;
        let pid = child.id();
        // Dropping `Child` neither kills nor reaps; we reap through waitpid.
        drop(child);
        match Self::open(name, pid) {
            Ok(process) => Ok(process),
            Err(err) => {
                // SAFETY: the child is ours and unreaped, so the PID is still
                // its own.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
                let _ = waitpid(Pid::from_raw(pid as i32), None);
                Err(err)
            }
        }
    }

    /// Opens a pidfd for a running process.
    pub fn open(name: &'static str, pid: u32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new descriptor that we now own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { pid, pidfd, name })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The kernel's start time of this process (clock ticks since boot),
    /// which tells it apart from a later process that reuses its PID.
    pub fn start_time(&self) -> Option<u64> {
        start_time_of(self.pid)
    }

    /// What this process is, for logs (`qemu`, `vhost-device-vsock`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sends a signal; a process that already ended is not an error.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no
        // siginfo and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// SIGKILL, ignoring a process that is already gone.
    pub fn kill(&self) {
        if let Err(err) = self.signal(libc::SIGKILL) {
            tracing::warn!(pid = self.pid, process = self.name, %err, "kill failed");
        }
    }

    /// Reaps the process if it has exited; `None` while it runs.
    pub fn try_reap(&self) -> Option<ProcessExit> {
        match waitpid(Pid::from_raw(self.pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(ProcessExit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => Some(ProcessExit::Signal(signal as i32)),
            Ok(_) => None,
            // Not our child (adopted after a restart): the pidfd is the truth.
            Err(nix::errno::Errno::ECHILD) => self.is_exited().then_some(ProcessExit::Unknown),
            Err(_) => None,
        }
    }

    /// Whether the pidfd reports the process as exited (non-blocking).
    fn is_exited(&self) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, zero timeout.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        rc > 0 && fds[0].revents & libc::POLLIN != 0
    }

    /// Waits until the process exits and reaps it.
    pub async fn wait(&self) -> io::Result<ProcessExit> {
        let fd = self.pidfd.try_clone()?;
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open
        // and names the same pidfd for the AsyncFd's whole life.
        let async_fd =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?;
        loop {
            if let Some(exit) = self.try_reap() {
                return Ok(exit);
            }
            let mut guard = async_fd.readable().await?;
            if let Some(exit) = self.try_reap() {
                return Ok(exit);
            }
            guard.clear_ready();
        }
    }
}

/// The start time (clock ticks since boot) of process `pid`, if it exists.
pub fn start_time_of(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|stat| stat.starttime)
}

/// One line of a VM's process ledger: `<name> <pid> <start time>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// What the process is.
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// Its start time, to guard against PID reuse.
    pub start_time: u64,
}

impl LedgerEntry {
    /// Renders the entry as one line.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.name, self.pid, self.start_time)
    }

    /// Parses a line written by [`LedgerEntry::line`].
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let entry = Self {
            name: parts.next()?.to_owned(),
            pid: parts.next()?.parse().ok()?,
            start_time: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(entry)
    }

    /// Whether this exact process (same PID and start time) still runs.
    pub fn is_alive(&self) -> bool {
        start_time_of(self.pid) == Some(self.start_time)
    }

    /// Kills the process if it is still the one recorded.
    pub fn kill_if_alive(&self) -> bool {
        if !self.is_alive() {
            return false;
        }
        match TrackedProcess::open("ledger", self.pid) {
            // Re-check after opening the pidfd: from here on the pidfd pins it.
            Ok(process) if start_time_of(self.pid) == Some(self.start_time) => {
                process.kill();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_exit_and_reports_the_code() {
        let process =
            TrackedProcess::spawn("sh", Command::new("sh").args(["-c", "exit 7"])).unwrap();
        assert_eq!(process.wait().await.unwrap(), ProcessExit::Code(7));
        // Signalling an exited, reaped process is not an error.
        process.signal(libc::SIGTERM).unwrap();
    }

    #[tokio::test]
    async fn ledger_entries_only_match_the_same_process() {
        let process = TrackedProcess::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        let entry = LedgerEntry {
            name: "sleep".into(),
            pid: process.pid(),
            start_time: process.start_time().unwrap(),
        };
        assert_eq!(LedgerEntry::parse(&entry.line()), Some(entry.clone()));
        let stale = LedgerEntry {
            start_time: entry.start_time + 1,
            ..entry.clone()
        };
        assert!(
            !stale.is_alive(),
            "a different start time is a different process"
        );
        assert!(!stale.kill_if_alive());
        assert!(entry.kill_if_alive());
        assert_eq!(
            process.wait().await.unwrap(),
            ProcessExit::Signal(libc::SIGKILL)
        );
        assert!(!entry.is_alive());
    }

    #[tokio::test]
    async fn kill_ends_a_running_process() {
        let process = TrackedProcess::spawn("sleep", Command::new("sleep").arg("30")).unwrap();
        assert_eq!(process.try_reap(), None);
        process.kill();
        assert_eq!(
            process.wait().await.unwrap(),
            ProcessExit::Signal(libc::SIGKILL)
        );
    }
}

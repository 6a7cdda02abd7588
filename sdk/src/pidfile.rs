//! The supervisor's pid file: which process holds the state, and what it is
//! doing.
//!
//! The running supervisor holds an exclusive lock on `supervisor.lock`; that
//! lock decides who owns the state. Next to it, `supervisor.pid` says which
//! process holds the lock and whether it is starting, running or stopping,
//! one line: `<pid> <phase>`. The supervisor writes it (atomically, by
//! rename) right after taking the lock, updates it as it goes, and removes
//! it just before it exits. Readers use it to tell "a supervisor is
//! shutting down; wait for it to exit" from "a supervisor runs", and
//! `pyro supervisor stop` to know which process to wait for. It is only
//! advice while nobody holds the lock (a killed supervisor leaves it
//! behind), so readers also check that the process exists.

use std::io;
use std::path::Path;

/// What the supervisor holding the state is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorPhase {
    /// It holds the lock and is getting ready; its socket may not answer yet.
    Starting,
    /// It serves the API.
    Running,
    /// It is stopping its VMs and will exit; its socket is gone.
    Stopping,
}

impl SupervisorPhase {
    /// The phase's name in the file.
    ///
    /// ```
    /// assert_eq!(pyro_sdk::SupervisorPhase::Stopping.as_str(), "stopping");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "starting" => Some(Self::Starting),
            "running" => Some(Self::Running),
            "stopping" => Some(Self::Stopping),
            _ => None,
        }
    }
}

/// The contents of `supervisor.pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorPidFile {
    /// The supervisor's process id.
    pub pid: u32,
    /// What it is doing.
    pub phase: SupervisorPhase,
}

impl SupervisorPidFile {
    /// The file's text.
    ///
    /// ```
    /// use pyro_sdk::{SupervisorPhase, SupervisorPidFile};
    /// let file = SupervisorPidFile { pid: 42, phase: SupervisorPhase::Stopping };
    /// assert_eq!(file.render(), "42 stopping\n");
    /// assert_eq!(SupervisorPidFile::parse(&file.render()), Some(file));
    /// ```
    pub fn render(&self) -> String {
        format!("{} {}\n", self.pid, self.phase.as_str())
    }

    /// Parses the file's text; `None` if it is not a pid file.
    ///
    /// ```
    /// use pyro_sdk::{SupervisorPhase, SupervisorPidFile};
    /// let file = SupervisorPidFile::parse("7 running\n");
    /// assert_eq!(file, Some(SupervisorPidFile { pid: 7, phase: SupervisorPhase::Running }));
    /// assert_eq!(SupervisorPidFile::parse("7 sleeping"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok().filter(|pid| *pid > 0)?;
        let phase = SupervisorPhase::parse(words.next()?)?;
        words.next().is_none().then_some(Self { pid, phase })
    }

    /// Reads `path`; `None` if it is missing or not a pid file.
    ///
    /// ```no_run
    /// let paths = pyro_sdk::PyroPaths::from_env()?;
    /// match pyro_sdk::SupervisorPidFile::read(&paths.supervisor_pid_file()) {
    ///     Some(file) => println!("supervisor {} is {}", file.pid, file.phase.as_str()),
    ///     None => println!("no supervisor"),
    /// }
    /// # Ok::<(), pyro_sdk::SdkError>(())
    /// ```
    pub fn read(path: &Path) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Writes `path` atomically (a reader sees the old or the new file).
    ///
    /// ```
    /// use pyro_sdk::{SupervisorPhase, SupervisorPidFile};
    /// let dir = std::env::temp_dir().join(format!("pidfile-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let file = SupervisorPidFile { pid: std::process::id(), phase: SupervisorPhase::Running };
    /// file.write(&dir.join("supervisor.pid"))?;
    /// assert_eq!(SupervisorPidFile::read(&dir.join("supervisor.pid")), Some(file));
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut staged = path.as_os_str().to_owned();
        staged.push(".new");
        std::fs::write(&staged, self.render())?;
        std::fs::rename(&staged, path)
    }

    /// Whether the process it names exists (it may be a zombie; a pid can
    /// be reused after a crash, so this is advice, not proof).
    ///
    /// ```
    /// use pyro_sdk::{SupervisorPhase, SupervisorPidFile};
    /// let me = SupervisorPidFile { pid: std::process::id(), phase: SupervisorPhase::Running };
    /// assert!(me.process_exists());
    /// ```
    pub fn process_exists(&self) -> bool {
        process_exists(self.pid)
    }
}

/// Whether a process with this pid exists.
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        for phase in [
            SupervisorPhase::Starting,
            SupervisorPhase::Running,
            SupervisorPhase::Stopping,
        ] {
            let file = SupervisorPidFile { pid: 7, phase };
            assert_eq!(SupervisorPidFile::parse(&file.render()), Some(file));
        }
        for bad in [
            "",
            "7",
            "x running",
            "0 running",
            "7 dancing",
            "7 running extra",
        ] {
            assert_eq!(SupervisorPidFile::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervisor.pid");
        assert_eq!(SupervisorPidFile::read(&path), None);
        let file = SupervisorPidFile {
            pid: std::process::id(),
            phase: SupervisorPhase::Running,
        };
        file.write(&path).unwrap();
        assert_eq!(SupervisorPidFile::read(&path), Some(file));
        assert!(file.process_exists(), "this test's own process exists");
        let stopping = SupervisorPidFile {
            phase: SupervisorPhase::Stopping,
            ..file
        };
        stopping.write(&path).unwrap();
        assert_eq!(SupervisorPidFile::read(&path), Some(stopping));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["supervisor.pid"], "no staging file is left");
    }

    #[test]
    fn a_reaped_child_does_not_exist() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_exists(pid));
    }
}

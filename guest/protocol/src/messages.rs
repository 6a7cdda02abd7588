//! Requests, responses and notices exchanged with the guest agent.
//!
//! bincode is not self-describing: a variant is encoded by its index and a
//! struct by its field order. So enums here are append-only, fields are never
//! reordered or removed, and any change is a new protocol version. The golden
//! fixtures in `tests/golden.rs` fail on an accidental change.

use serde::{Deserialize, Serialize};

/// One operation, sent by the host after the handshake. One per connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness check; answered with [`Response::Pong`].
    Ping,
    /// Runs a command; answered with [`Response::ExecStarted`], any number of
    /// [`Response::Output`], then [`Response::ExecExited`].
    Exec(ExecRequest),
    /// Syncs filesystems and powers the VM off; answered with
    /// [`Response::Done`] just before the power-off.
    PowerOff,
}

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The program, as an argument vector or a shell string.
    pub command: CommandLine,
    /// Working directory; `None` means `/`.
    pub cwd: Option<String>,
    /// Variables added to (or replacing those in) the agent's environment.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit in milliseconds; `None` means no limit. On expiry the
    /// whole process group is killed and the exit code is 124.
    pub timeout_ms: Option<u64>,
}

/// A command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandLine {
    /// Executed directly: `argv[0]` is looked up on `PATH`.
    Argv(Vec<String>),
    /// Run as `/bin/sh -lc <string>`.
    Shell(String),
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputStream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// Frames sent by the agent in answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong {
        /// The agent's version.
        agent_version: String,
        /// Milliseconds since the guest kernel booted.
        uptime_ms: u64,
    },
    /// The command was spawned.
    ExecStarted {
        /// Its process id in the guest (also its process group id).
        pid: u32,
    },
    /// A chunk of output, at most [`crate::CHUNK_BYTES`] long, sent as soon as
    /// it was read.
    Output {
        /// The stream it came from.
        stream: OutputStream,
        /// The raw bytes; not necessarily UTF-8.
        data: Vec<u8>,
    },
    /// The command ended; the last frame of an exec.
    ExecExited(ExitStatus),
    /// The operation failed; the last frame of any operation.
    Error(GuestError),
    /// The operation succeeded and has nothing more to say.
    Done,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code: the process's own, `128 + signal` when a signal killed
    /// it, or 124 on timeout.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Whether the timeout expired and the process group was killed.
    pub timed_out: bool,
    /// Wall-clock time from spawn to exit, in milliseconds.
    pub duration_ms: u64,
}

/// A failure reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    /// What kind of failure it was.
    pub kind: GuestErrorKind,
    /// A lowercase, one-line description for people.
    pub message: String,
}

/// Machine-readable kinds of guest failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestErrorKind {
    /// The request was malformed or asked for something impossible.
    InvalidRequest,
    /// A path named in the request does not exist.
    NotFound,
    /// The program could not be started.
    SpawnFailed,
    /// An I/O error inside the guest.
    Io,
    /// Anything else inside the agent.
    Internal,
}

/// What the guest says, unasked, on [`crate::READY_PORT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestNotice {
    /// The agent is listening and ready for connections.
    Ready(ReadyNotice),
    /// `pyro-init` hit a fatal error; the VM powers off next.
    BootFailed(BootFailure),
}

/// Sent by the agent once it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyNotice {
    /// Always [`crate::MAGIC`].
    pub magic: [u8; 4],
    /// The newest protocol version the agent speaks.
    pub protocol_version: u32,
    /// The agent's version.
    pub agent_version: String,
    /// Milliseconds since the guest kernel booted.
    pub uptime_ms: u64,
}

/// A fatal error during guest boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFailure {
    /// The step that failed, for example `mount_root` or `load_modules`.
    pub stage: String,
    /// The OS error number, when there was one.
    pub errno: Option<i32>,
    /// A one-line description.
    pub message: String,
}

impl BootFailure {
    /// The prefix of the console line that carries a boot failure as JSON-ish
    /// `key=value` text, for hosts that only have the console.
    pub const CONSOLE_PREFIX: &'static str = "PYRO_BOOT_ERROR";

    /// Renders the console line: `PYRO_BOOT_ERROR stage=<s> errno=<n> message=<m>`.
    pub fn console_line(&self) -> String {
        let errno = self
            .errno
            .map_or_else(|| "none".to_owned(), |e| e.to_string());
        format!(
            "{} stage={} errno={} message={}",
            Self::CONSOLE_PREFIX,
            self.stage,
            errno,
            self.message.replace('\n', " ")
        )
    }

    /// Parses a console line written by [`BootFailure::console_line`].
    pub fn parse_console_line(line: &str) -> Option<Self> {
        let rest = line.trim_end().split_once(Self::CONSOLE_PREFIX)?.1;
        let rest = rest.strip_prefix(" stage=")?;
        let (stage, rest) = rest.split_once(" errno=")?;
        let (errno, message) = rest.split_once(" message=")?;
        Some(Self {
            stage: stage.to_owned(),
            errno: errno.parse().ok(),
            message: message.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_failure_console_line_round_trips() {
        let failure = BootFailure {
            stage: "mount_root".into(),
            errno: Some(2),
            message: "mounting /dev/vda on /mnt/root failed: no such file\nor directory".into(),
        };
        let line = format!("[    1.234] {}\r", failure.console_line());
        let back = BootFailure::parse_console_line(&line).unwrap();
        assert_eq!(back.stage, "mount_root");
        assert_eq!(back.errno, Some(2));
        assert_eq!(
            back.message,
            "mounting /dev/vda on /mnt/root failed: no such file or directory"
        );
        let none = BootFailure {
            errno: None,
            ..failure
        };
        assert_eq!(
            BootFailure::parse_console_line(&none.console_line())
                .unwrap()
                .errno,
            None
        );
        assert!(BootFailure::parse_console_line("random kernel line").is_none());
    }
}

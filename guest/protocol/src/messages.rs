//! Requests, responses and notices exchanged with the guest agent.
//!
//! bincode is not self-describing: a variant is encoded by its index and a
//! struct by its field order. So enums here are append-only, fields are never
//! reordered or removed, and any change is a new protocol version. The golden
//! fixtures in `tests/golden.rs` fail on an accidental change.
//!
//! # Workspace operations (protocol version 2)
//!
//! Each runs on its own connection. Paths in requests are absolute guest
//! paths; the agent resolves them without following any symlink.
//!
//! | Request | Host sends after it | Agent answers |
//! |---|---|---|
//! | [`Request::PutArchive`] | [`Upload`] chunks, then [`Upload::End`] | [`Response::ArchiveDone`] |
//! | [`Request::GetArchive`] | nothing | [`Response::ArchiveStarted`], [`Response::Data`]..., [`Response::ArchiveDone`] |
//! | [`Request::Manifest`] | nothing | [`Response::ManifestBatch`]..., [`Response::ManifestDone`] |
//! | [`Request::ListPath`] | nothing | [`Response::PathEntries`]..., [`Response::ListDone`] |
//! | [`Request::ReadFile`] | nothing | [`Response::Data`]..., [`Response::FileDone`] |
//! | [`Request::ApplyChanges`] | [`Upload`] chunks, then [`Upload::End`] | [`Response::ChangesApplied`] |
//! | [`Request::Sync`] | nothing | [`Response::Done`] |
//!
//! Any of them may instead end with [`Response::Error`], the terminal frame
//! of every failed operation. The agent reads an upload to its end even when
//! it fails early, so the host never writes into a closed connection; a host
//! that cannot finish its upload closes the connection instead of sending
//! [`Upload::End`], and nothing is changed.
//!
//! # Shells and services (protocol version 3)
//!
//! The agent owns each shell's PTY and a bounded ring buffer of its output
//! (the host keeps the authoritative copy), and each service's process and
//! log. Offsets in shell frames are absolute byte offsets since the shell
//! started. The long-lived answers end when the host closes the connection.
//!
//! | Request | Agent answers |
//! |---|---|
//! | [`Request::ShellOpen`] | [`Response::ShellOpened`] |
//! | [`Request::ShellAttach`] | [`Response::ShellAttached`], then [`Response::ShellOutputLost`] (when the offset fell out of the buffer) and [`Response::ShellOutput`] frames as output arrives, then [`Response::ShellExited`] |
//! | [`Request::ShellWrite`], [`Request::ShellSignal`], [`Request::ShellResize`], [`Request::ShellClose`] | [`Response::Done`] |
//! | [`Request::ShellList`] | [`Response::Shells`] |
//! | [`Request::ServiceStart`] | [`Response::ServiceStarted`], once ready, failed or timed out |
//! | [`Request::ServiceWatch`] | [`Response::ServiceExited`], when the process ends |
//! | [`Request::ServiceStop`] | [`Response::ServiceStopped`] |
//! | [`Request::ServiceStatus`] | [`Response::ServiceStatus`] |
//! | [`Request::ServiceList`] | [`Response::Services`] |
//! | [`Request::ServiceLogs`] | [`Response::Output`] records, then [`Response::ServiceLogsDone`] |
//! | [`Request::ServiceRemove`] | [`Response::Done`] |
//!
//! Any of them may instead end with [`Response::Error`].

use serde::{Deserialize, Serialize};

use crate::tree::{EntryKind, ManifestEntry};

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
    /// Extracts the tar archive uploaded after this request into a
    /// directory, as one atomic merge; answered with
    /// [`Response::ArchiveDone`].
    PutArchive(PutArchiveRequest),
    /// Streams a tar archive of a file, a directory or a symlink; answered
    /// with [`Response::ArchiveStarted`], [`Response::Data`] chunks, then
    /// [`Response::ArchiveDone`].
    GetArchive(GetArchiveRequest),
    /// Lists a tree with content hashes; answered with
    /// [`Response::ManifestBatch`] frames, then [`Response::ManifestDone`].
    Manifest(ManifestRequest),
    /// Describes a path, or a directory's children; answered with
    /// [`Response::PathEntries`] frames, then [`Response::ListDone`].
    ListPath(ListPathRequest),
    /// Reads the start of a regular file; answered with [`Response::Data`]
    /// chunks, then [`Response::FileDone`].
    ReadFile(ReadFileRequest),
    /// Writes the files of the tar archive uploaded after this request and
    /// deletes others, all or nothing; answered with
    /// [`Response::ChangesApplied`].
    ApplyChanges(ApplyChangesRequest),
    /// Flushes every filesystem (`sync(2)`); answered with [`Response::Done`].
    Sync,
    /// Starts an interactive shell on a new PTY; answered with
    /// [`Response::ShellOpened`].
    ShellOpen(ShellOpenRequest),
    /// Streams a shell's output from `from_offset`: answered with
    /// [`Response::ShellAttached`], then output frames as the shell writes,
    /// then [`Response::ShellExited`] when it ends.
    ShellAttach {
        /// The shell.
        shell_id: String,
        /// The first output byte wanted, counted since the shell started.
        from_offset: u64,
    },
    /// Writes input to a shell's terminal; answered with [`Response::Done`].
    ShellWrite {
        /// The shell.
        shell_id: String,
        /// The bytes, as typed; at most [`SHELL_WRITE_MAX_BYTES`].
        data: Vec<u8>,
    },
    /// Signals the PTY's foreground process group (as a terminal would);
    /// answered with [`Response::Done`].
    ShellSignal {
        /// The shell.
        shell_id: String,
        /// The signal.
        signal: ShellSignal,
    },
    /// Changes a shell's window size (the kernel sends `SIGWINCH`);
    /// answered with [`Response::Done`].
    ShellResize {
        /// The shell.
        shell_id: String,
        /// Columns, at least 1.
        cols: u16,
        /// Rows, at least 1.
        rows: u16,
    },
    /// Hangs a shell up (`SIGHUP`, then `SIGKILL` after 5 s) and forgets
    /// it; answered with [`Response::Done`] once it has exited.
    ShellClose {
        /// The shell.
        shell_id: String,
    },
    /// Lists the shells the agent knows; answered with [`Response::Shells`].
    ShellList,
    /// Starts a service and waits for its readiness; answered with
    /// [`Response::ServiceStarted`].
    ServiceStart(ServiceStartRequest),
    /// Waits for a service's process to end; answered with
    /// [`Response::ServiceExited`] (at once when it already has).
    ServiceWatch {
        /// The service.
        name: String,
    },
    /// Stops a service: `SIGTERM` to its process group, then `SIGKILL`
    /// after `grace_ms`; answered with [`Response::ServiceStopped`].
    ServiceStop {
        /// The service.
        name: String,
        /// How long to wait after `SIGTERM` (at most a week is honoured).
        grace_ms: u64,
    },
    /// Describes a service; answered with [`Response::ServiceStatus`].
    ServiceStatus {
        /// The service.
        name: String,
    },
    /// Describes every service the agent knows; answered with
    /// [`Response::Services`].
    ServiceList,
    /// Streams a service's log records as [`Response::Output`] frames, then
    /// [`Response::ServiceLogsDone`].
    ServiceLogs {
        /// The service.
        name: String,
        /// Start this many lines from the end of the combined log; `None`
        /// starts at the beginning of what is kept.
        tail_lines: Option<u64>,
        /// Keep streaming new records until the service ends.
        follow: bool,
    },
    /// Stops a service if needed and deletes its logs; answered with
    /// [`Response::Done`].
    ServiceRemove {
        /// The service.
        name: String,
    },
}

/// The largest [`Request::ShellWrite`] payload.
pub const SHELL_WRITE_MAX_BYTES: usize = 256 * 1024;

/// How to start a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOpenRequest {
    /// A new id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub shell_id: String,
    /// The working directory; must exist.
    pub cwd: String,
    /// Columns, at least 1.
    pub cols: u16,
    /// Rows, at least 1.
    pub rows: u16,
    /// Variables added to (or replacing those in) the agent's environment,
    /// after `TERM=xterm-256color` and a plain `PS1`.
    pub env: Vec<(String, String)>,
}

/// A signal for [`Request::ShellSignal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShellSignal {
    /// `SIGHUP`.
    Hup,
    /// `SIGINT`, as Ctrl-C.
    Int,
    /// `SIGTERM`.
    Term,
    /// `SIGKILL`.
    Kill,
}

/// How to start a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStartRequest {
    /// A name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
    pub name: String,
    /// The program.
    pub command: CommandLine,
    /// The working directory; must exist.
    pub cwd: String,
    /// Variables added to (or replacing those in) the agent's environment.
    pub env: Vec<(String, String)>,
    /// When the service counts as ready; `None` means at once.
    pub readiness: Option<Readiness>,
    /// How long readiness may take (at most a week is honoured). The
    /// agent answers when it is reached, so the host waits at least this
    /// long.
    pub ready_timeout_ms: u64,
    /// How often readiness is checked (at least every 10 ms).
    pub ready_interval_ms: u64,
}

/// A readiness check, run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Readiness {
    /// The path exists (relative paths are taken from the service's cwd).
    File(String),
    /// A TCP connection to the address succeeds within 1 s.
    Tcp {
        /// An IP address, `localhost`, or a name in the guest's
        /// `/etc/hosts` (there is no DNS lookup).
        host: String,
        /// The port.
        port: u16,
    },
    /// A GET of this `http://` URL answers 2xx or 3xx within 2 s (its host
    /// resolved as for [`Readiness::Tcp`]).
    Http(String),
    /// The command exits 0 within 10 s, run with the service's cwd and env.
    Command(CommandLine),
}

/// Where [`Request::PutArchive`] extracts its archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutArchiveRequest {
    /// The directory to merge into; created (with its missing parents) when
    /// absent. Existing files are overwritten, nothing is deleted.
    pub destination: String,
}

/// What [`Request::GetArchive`] archives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetArchiveRequest {
    /// A file (archived under its own name), a directory (its children,
    /// named relative to it) or a symlink (the link itself).
    pub path: String,
    /// With a directory: only these regular files, `/`-separated and
    /// relative to it, in this order.
    pub only: Option<Vec<String>>,
}

/// The tree [`Request::Manifest`] describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRequest {
    /// A directory; every entry under it is listed, the root itself not.
    pub root: String,
}

/// What [`Request::ListPath`] lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPathRequest {
    /// The path; a directory lists its children, anything else itself.
    pub path: String,
    /// Whether to descend into subdirectories (never through symlinks).
    pub recursive: bool,
}

/// What [`Request::ReadFile`] reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileRequest {
    /// A regular file; a symlink is refused, never followed.
    pub path: String,
    /// The most bytes to send; the rest is reported as truncated.
    pub max_bytes: u64,
}

/// The changes [`Request::ApplyChanges`] makes.
///
/// The uploaded archive holds the new contents as regular-file members
/// named relative to `root`. A member's mode is used for a new file (and for
/// an existing one unless `keep_existing_modes`), its mtime when non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyChangesRequest {
    /// The directory every path is relative to.
    pub root: String,
    /// Files or symlinks to delete, relative to `root`; each must exist.
    pub deletes: Vec<String>,
    /// Whether a file that already exists keeps its mode (and the new
    /// contents are otherwise taken as they are).
    pub keep_existing_modes: bool,
}

/// Bulk data the host streams after [`Request::PutArchive`] or
/// [`Request::ApplyChanges`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Upload {
    /// The next bytes, at most [`crate::CHUNK_BYTES`].
    Chunk(Vec<u8>),
    /// The upload is complete; the agent may now commit it.
    End,
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
    /// The first frame of a [`Request::GetArchive`] stream.
    ArchiveStarted {
        /// What the requested path is: a file, a directory or a symlink.
        kind: EntryKind,
    },
    /// A chunk of bulk data (tar bytes, file bytes), at most
    /// [`crate::CHUNK_BYTES`] long.
    Data(Vec<u8>),
    /// An archive was extracted or sent completely; the last frame of
    /// [`Request::PutArchive`] and [`Request::GetArchive`].
    ArchiveDone(ArchiveSummary),
    /// The next entries of a manifest, in walk order (each directory before
    /// its contents, siblings by name).
    ManifestBatch(Vec<ManifestEntry>),
    /// The manifest is complete; its last frame.
    ManifestDone(ManifestSummary),
    /// The next entries of a listing.
    PathEntries(Vec<PathEntry>),
    /// The listing is complete; its last frame.
    ListDone(ListSummary),
    /// The file was read; the last frame of [`Request::ReadFile`].
    FileDone(FileSummary),
    /// The changes were applied; the last frame of
    /// [`Request::ApplyChanges`].
    ChangesApplied(ApplySummary),
    /// The shell was started.
    ShellOpened {
        /// Its process id (also its session and process group id).
        pid: u32,
    },
    /// The first frame of a [`Request::ShellAttach`] stream: the shell as
    /// it is now.
    ShellAttached(ShellInfo),
    /// Shell output, at most [`crate::CHUNK_BYTES`] long.
    ShellOutput {
        /// The offset of `data[0]`, counted since the shell started.
        offset: u64,
        /// The raw terminal bytes.
        data: Vec<u8>,
    },
    /// Output the agent no longer holds: `lost_bytes` bytes from `offset`.
    /// The next [`Response::ShellOutput`] starts at `offset + lost_bytes`.
    ShellOutputLost {
        /// The first byte lost.
        offset: u64,
        /// How many bytes were lost.
        lost_bytes: u64,
    },
    /// The shell ended; the last frame of an attach.
    ShellExited(Termination),
    /// Answer to [`Request::ShellList`].
    Shells(Vec<ShellInfo>),
    /// Answer to [`Request::ServiceStart`].
    ServiceStarted(ServiceStarted),
    /// The service's process ended.
    ServiceExited(Termination),
    /// Answer to [`Request::ServiceStop`].
    ServiceStopped {
        /// How the process ended.
        exit: Termination,
        /// Whether `SIGKILL` was needed.
        killed: bool,
    },
    /// Answer to [`Request::ServiceStatus`].
    ServiceStatus(ServiceInfo),
    /// Answer to [`Request::ServiceList`].
    Services(Vec<ServiceInfo>),
    /// The last frame of [`Request::ServiceLogs`].
    ServiceLogsDone(ServiceLogsSummary),
}

impl Response {
    /// A short lowercase name of the frame's variant, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pong { .. } => "pong",
            Self::ExecStarted { .. } => "exec-started",
            Self::Output { .. } => "output",
            Self::ExecExited(_) => "exec-exited",
            Self::Error(_) => "error",
            Self::Done => "done",
            Self::ArchiveStarted { .. } => "archive-started",
            Self::Data(_) => "data",
            Self::ArchiveDone(_) => "archive-done",
            Self::ManifestBatch(_) => "manifest-batch",
            Self::ManifestDone(_) => "manifest-done",
            Self::PathEntries(_) => "path-entries",
            Self::ListDone(_) => "list-done",
            Self::FileDone(_) => "file-done",
            Self::ChangesApplied(_) => "changes-applied",
            Self::ShellOpened { .. } => "shell-opened",
            Self::ShellAttached(_) => "shell-attached",
            Self::ShellOutput { .. } => "shell-output",
            Self::ShellOutputLost { .. } => "shell-output-lost",
            Self::ShellExited(_) => "shell-exited",
            Self::Shells(_) => "shells",
            Self::ServiceStarted(_) => "service-started",
            Self::ServiceExited(_) => "service-exited",
            Self::ServiceStopped { .. } => "service-stopped",
            Self::ServiceStatus(_) => "service-status",
            Self::Services(_) => "services",
            Self::ServiceLogsDone(_) => "service-logs-done",
        }
    }
}

/// The totals of an archive transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSummary {
    /// Members: files, directories and symlinks.
    pub entry_count: u64,
    /// Bytes of regular-file contents.
    pub content_bytes: u64,
    /// Bytes of the tar stream itself.
    pub archive_bytes: u64,
}

/// The totals of a manifest, including how much the hash cache saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSummary {
    /// Entries sent.
    pub entry_count: u64,
    /// Regular files whose contents were read and hashed.
    pub hashed_files: u64,
    /// Bytes read to hash them.
    pub hashed_bytes: u64,
    /// Regular files whose hash came from the cache.
    pub cached_files: u64,
}

/// One entry of a [`Request::ListPath`] answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    /// The absolute guest path.
    pub path: String,
    /// Its type (never followed: a symlink is a symlink).
    pub kind: EntryKind,
    /// Size in bytes (files and symlinks; 0 for directories).
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The link target (symlinks only).
    pub link_target: Option<String>,
}

/// The end of a [`Request::ListPath`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSummary {
    /// What the requested path is.
    pub kind: EntryKind,
    /// Entries sent.
    pub entry_count: u64,
}

/// The end of a [`Request::ReadFile`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The file's size when it was opened.
    pub size_bytes: u64,
    /// Bytes sent in [`Response::Data`] frames.
    pub bytes_sent: u64,
    /// Whether the file holds more than was sent.
    pub truncated: bool,
}

/// The totals of a [`Request::ApplyChanges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplySummary {
    /// Files written (created or replaced).
    pub files_written: u64,
    /// Files or symlinks deleted.
    pub files_deleted: u64,
    /// Missing parent directories created.
    pub dirs_created: u64,
    /// Bytes of file contents written.
    pub bytes_written: u64,
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

/// How a shell or service process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// The exit code: the process's own, or `128 + signal` when a signal
    /// killed it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

/// A shell, as [`Request::ShellList`] and [`Request::ShellAttach`] see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellInfo {
    /// Its id.
    pub shell_id: String,
    /// Its process id.
    pub pid: u32,
    /// Whether it is still running.
    pub alive: bool,
    /// How it ended, once it has.
    pub exit: Option<Termination>,
    /// Window columns.
    pub cols: u16,
    /// Window rows.
    pub rows: u16,
    /// The oldest output offset still buffered in the agent.
    pub start_offset: u64,
    /// The offset just past the newest output byte.
    pub end_offset: u64,
}

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceState {
    /// Started; readiness not reached yet.
    Starting,
    /// Ready (or started without a readiness check) and running.
    Running,
    /// Never became ready; see the stop reason.
    Failed,
    /// Ended by itself after it was ready.
    Exited,
    /// Ended by [`Request::ServiceStop`] or [`Request::ServiceRemove`].
    Stopped,
}

/// Why a service is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceStopReason {
    /// The process ended before its readiness check passed.
    ProcessExitedBeforeReady,
    /// The readiness check did not pass in time; the group was killed.
    ReadinessTimeout,
    /// The host asked for it to stop.
    StopRequested,
}

/// The answer to [`Request::ServiceStart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStarted {
    /// The process id (also its session and process group id).
    pub pid: u32,
    /// [`ServiceState::Running`] or [`ServiceState::Failed`] (or
    /// [`ServiceState::Stopped`] when a stop raced the start).
    pub state: ServiceState,
    /// Why it failed, when it did.
    pub stop_reason: Option<ServiceStopReason>,
    /// Milliseconds from spawn to readiness (or to the failure).
    pub ready_after_ms: u64,
}

/// A service, as [`Request::ServiceStatus`] and [`Request::ServiceList`]
/// see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Its name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Whether the process is still running.
    pub alive: bool,
    /// Where it is in its life.
    pub state: ServiceState,
    /// Why it is not running, when known.
    pub stop_reason: Option<ServiceStopReason>,
    /// How the process ended, once it has.
    pub exit: Option<Termination>,
    /// When it was started, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// When it ended, milliseconds since the Unix epoch.
    pub ended_at_ms: Option<u64>,
    /// Milliseconds from spawn to readiness, once ready.
    pub ready_after_ms: Option<u64>,
    /// Bytes written to stdout since the start.
    pub stdout_bytes: u64,
    /// Bytes written to stderr since the start.
    pub stderr_bytes: u64,
    /// Bytes its log files take now (at most two files of 4 MiB).
    pub log_bytes: u64,
}

/// The end of a [`Request::ServiceLogs`] stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLogsSummary {
    /// Records sent.
    pub records: u64,
    /// Output bytes sent.
    pub bytes: u64,
    /// Whether older output exists that was not sent (cut by `tail_lines`,
    /// or rotated away).
    pub truncated: bool,
    /// How the service ended, when it has.
    pub exit: Option<Termination>,
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
    /// Refused for safety: a path that escapes its root or passes through a
    /// symlink, an archive member that is a device, fifo or socket, a hard
    /// link to outside the archive.
    Refused,
    /// A path exists with a type the operation cannot use (a directory
    /// where a file is needed, a symlink where a regular file is read).
    WrongType,
    /// A change failed and could not be fully undone; the message names
    /// what is left.
    PartiallyApplied,
    /// The guest filesystem is full (or over quota).
    NoSpace,
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
    fn response_names_are_distinct() {
        let summary = ArchiveSummary {
            entry_count: 0,
            content_bytes: 0,
            archive_bytes: 0,
        };
        let exit = Termination {
            exit_code: 0,
            signal: None,
        };
        let shell = ShellInfo {
            shell_id: "s".into(),
            pid: 1,
            alive: true,
            exit: None,
            cols: 80,
            rows: 24,
            start_offset: 0,
            end_offset: 0,
        };
        let service = ServiceInfo {
            name: "web".into(),
            pid: 1,
            alive: true,
            state: ServiceState::Running,
            stop_reason: None,
            exit: None,
            started_at_ms: 0,
            ended_at_ms: None,
            ready_after_ms: Some(0),
            stdout_bytes: 0,
            stderr_bytes: 0,
            log_bytes: 0,
        };
        let responses = [
            Response::Pong {
                agent_version: String::new(),
                uptime_ms: 0,
            },
            Response::ExecStarted { pid: 1 },
            Response::Output {
                stream: OutputStream::Stdout,
                data: Vec::new(),
            },
            Response::ExecExited(ExitStatus {
                exit_code: 0,
                signal: None,
                timed_out: false,
                duration_ms: 0,
            }),
            Response::Error(GuestError {
                kind: GuestErrorKind::Io,
                message: String::new(),
            }),
            Response::Done,
            Response::ArchiveStarted {
                kind: EntryKind::File,
            },
            Response::Data(Vec::new()),
            Response::ArchiveDone(summary),
            Response::ManifestBatch(Vec::new()),
            Response::ManifestDone(ManifestSummary {
                entry_count: 0,
                hashed_files: 0,
                hashed_bytes: 0,
                cached_files: 0,
            }),
            Response::PathEntries(Vec::new()),
            Response::ListDone(ListSummary {
                kind: EntryKind::Directory,
                entry_count: 0,
            }),
            Response::FileDone(FileSummary {
                size_bytes: 0,
                bytes_sent: 0,
                truncated: false,
            }),
            Response::ChangesApplied(ApplySummary {
                files_written: 0,
                files_deleted: 0,
                dirs_created: 0,
                bytes_written: 0,
            }),
            Response::ShellOpened { pid: 1 },
            Response::ShellAttached(shell.clone()),
            Response::ShellOutput {
                offset: 0,
                data: Vec::new(),
            },
            Response::ShellOutputLost {
                offset: 0,
                lost_bytes: 1,
            },
            Response::ShellExited(exit),
            Response::Shells(vec![shell]),
            Response::ServiceStarted(ServiceStarted {
                pid: 1,
                state: ServiceState::Running,
                stop_reason: None,
                ready_after_ms: 0,
            }),
            Response::ServiceExited(exit),
            Response::ServiceStopped {
                exit,
                killed: false,
            },
            Response::ServiceStatus(service.clone()),
            Response::Services(vec![service]),
            Response::ServiceLogsDone(ServiceLogsSummary {
                records: 0,
                bytes: 0,
                truncated: false,
                exit: None,
            }),
        ];
        let mut names: Vec<&str> = responses.iter().map(Response::name).collect();
        assert!(names.iter().all(|n| *n == n.to_lowercase()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), responses.len());
    }

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

//! The actors crate's error type.
//!
//! Variants carry what caused them (VM id, path, program, state). Messages
//! are lowercase, say what failed, and never repeat their `#[source]`: the
//! caller prints the chain. Guest console tails ride in their own field so
//! callers can show them apart from the message.

use std::path::PathBuf;

use pyro_guest_protocol::{GuestErrorKind, ProtocolError};

use crate::process::ProcessExit;
use crate::vm::VmState;

/// Everything the actors and their drivers can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// A host program pyro needs is missing.
    #[error(
        "{program} was not found on this host; install it with `{install}` (or run scripts/setup)"
    )]
    MissingProgram {
        /// The program.
        program: String,
        /// The command that installs it.
        install: &'static str,
    },
    /// A host file or directory operation failed.
    #[error("{action} {} failed", path.display())]
    HostIo {
        /// What was being done, such as `creating`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host program could not be started.
    #[error("starting {program} failed")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host program ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    HostCommand {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The vsock sidecar never offered its socket.
    #[error("the vsock sidecar (vhost-device-vsock) did not start: {detail}")]
    SidecarNotReady {
        /// What was seen, with the sidecar's log tail.
        detail: String,
    },
    /// The VMM process ended before the guest was ready.
    #[error("vm {vm_id}: the VMM exited during boot ({exit})")]
    ExitedDuringBoot {
        /// The VM.
        vm_id: String,
        /// How the VMM ended.
        exit: ProcessExit,
        /// The last lines of the guest console.
        console: String,
    },
    /// pyro-init reported a fatal boot error.
    #[error("vm {vm_id}: the guest failed to boot at stage {stage}: {message}")]
    GuestBootFailed {
        /// The VM.
        vm_id: String,
        /// The stage, such as `mount_root`.
        stage: String,
        /// The OS error number, if any.
        errno: Option<i32>,
        /// What failed.
        message: String,
        /// The last lines of the guest console.
        console: String,
    },
    /// The guest did not say it was ready in time.
    #[error("vm {vm_id}: the guest agent did not become ready within {seconds}s")]
    BootTimeout {
        /// The VM.
        vm_id: String,
        /// The limit.
        seconds: u64,
        /// The last lines of the guest console.
        console: String,
    },
    /// A VM left by a previous supervisor cannot be taken over.
    #[error("the VM in {} cannot be adopted: {detail}", run_dir.display())]
    NotAdoptable {
        /// Its run directory.
        run_dir: PathBuf,
        /// Why.
        detail: String,
    },
    /// An operation needs a running VM.
    #[error("vm {vm_id} is {state}, not running")]
    NotRunning {
        /// The VM.
        vm_id: String,
        /// Its state.
        state: VmState,
    },
    /// The VM died while an operation was in flight.
    #[error("vm {vm_id} stopped unexpectedly ({exit})")]
    VmDied {
        /// The VM.
        vm_id: String,
        /// How the VMM ended.
        exit: String,
        /// The last lines of the guest console.
        console: String,
    },
    /// Connecting to the VM's vsock socket failed.
    #[error("connecting to the guest through {} failed", socket.display())]
    ChannelConnect {
        /// The hybrid-vsock Unix socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hybrid-vsock handshake (`CONNECT`/`OK`) failed.
    #[error("the guest did not accept the connection on vsock port {port}: {detail}")]
    ChannelRefused {
        /// The guest port.
        port: u32,
        /// What came back instead of `OK`.
        detail: String,
    },
    /// A guest channel read or write did not complete in time.
    #[error("the guest did not answer within {seconds}s while {during}")]
    ChannelTimeout {
        /// What was awaited.
        during: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// The guest channel broke or carried a bad frame.
    #[error("the guest channel failed")]
    Channel(#[source] ProtocolError),
    /// The agent answered with something that does not fit the request.
    #[error("the guest agent answered {got} while {during}")]
    UnexpectedFrame {
        /// What was awaited.
        during: &'static str,
        /// What arrived.
        got: String,
    },
    /// The guest agent reported a failure.
    #[error("{message}")]
    Guest {
        /// Its kind.
        kind: GuestErrorKind,
        /// Its message.
        message: String,
    },
    /// The actor that owns this object is gone (the supervisor is stopping).
    #[error("{what} is shutting down")]
    ActorGone {
        /// What.
        what: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ActorError>;

impl ActorError {
    /// The guest console tail this error carries, if any.
    pub fn console(&self) -> Option<&str> {
        match self {
            Self::ExitedDuringBoot { console, .. }
            | Self::GuestBootFailed { console, .. }
            | Self::BootTimeout { console, .. }
            | Self::VmDied { console, .. } => Some(console.as_str()).filter(|c| !c.is_empty()),
            _ => None,
        }
    }

    /// A wrapper for host I/O failures.
    pub fn host_io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::HostIo {
            action,
            path: path.into(),
            source,
        }
    }
}

//! Messages to and from the VM actor.

use actix::prelude::*;

use super::core::VmInfo;
use crate::error::Result;
use crate::vsock::GuestConnection;

/// Boot the VM; answers once the guest agent is ready (or the boot failed).
#[derive(Debug, Message)]
#[rtype(result = "Result<VmReady>")]
pub struct StartVm;

/// Take over the running VM a previous supervisor launched in the spec's run
/// directory, instead of booting one.
#[derive(Debug, Message)]
#[rtype(result = "Result<VmReady>")]
pub struct AdoptVm;

/// What a successful boot reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmReady {
    /// Milliseconds from launch to a ready, answering agent.
    pub boot_ms: u64,
    /// The agent's version.
    pub agent_version: String,
}

/// Open a handshaken connection to the guest agent (VM must be running).
#[derive(Debug, Message)]
#[rtype(result = "Result<GuestConnection>")]
pub struct OpenGuest;

/// Power the VM off (killing it if it does not go), clean up, and end the
/// actor. A boot under way is cancelled first. Answers once the VM's
/// processes are gone (another stop under way is waited for).
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct StopVm;

/// Wait, at most `within`, for the VMM to exit. Answers how it ended and the
/// console's last lines if it did, `None` if it is still running.
///
/// Used after a guest channel breaks, to tell "the VM died" from a network
/// hiccup.
#[derive(Debug, Message)]
#[rtype(result = "Option<VmExitReport>")]
pub struct AwaitExit {
    /// How long to wait.
    pub within: std::time::Duration,
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmExitReport {
    /// How the VMM process ended.
    pub exit: String,
    /// The last console lines.
    pub console: String,
}

/// The VM's status.
#[derive(Debug, Message)]
#[rtype(result = "VmInfo")]
pub struct GetVmInfo;

/// What the VM actor tells its owner, unasked.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct VmEvent {
    /// The VM.
    pub vm_id: String,
    /// What happened.
    pub kind: VmEventKind,
}

/// Kinds of [`VmEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEventKind {
    /// The VMM exited without being asked to.
    ExitedUnexpectedly {
        /// How it ended.
        exit: String,
        /// The last console lines.
        console: String,
    },
    /// The guest agent stopped answering health pings.
    AgentUnresponsive {
        /// The last ping failure.
        last_error: String,
    },
}

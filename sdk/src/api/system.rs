//! The supervisor itself: health and the doctor report.

use serde::{Deserialize, Serialize};

use super::EnvironmentInfo;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The supervisor's version.
    pub version: String,
    /// The supervisor's process id.
    pub pid: u32,
    /// The Unix socket it serves on.
    pub socket: String,
    /// VMs currently alive (booting or running).
    pub running_vms: usize,
}

/// `GET /v1/doctor`: can this host run pyro guests, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// `linux-x86_64`.
    pub platform: String,
    /// Whether a guest can be booted here.
    pub runtime_ok: bool,
    /// `/dev/kvm` and whether it can run a stock guest kernel.
    pub kvm: KvmStatus,
    /// The backend `auto` picks, and why.
    pub backend: BackendChoice,
    /// Host programs pyro uses.
    pub tools: Vec<ToolStatus>,
    /// The environment cache directory.
    pub cache_dir: String,
    /// The data directory (records, logs).
    pub data_dir: String,
    /// Every catalog environment and whether it is installed.
    pub environments: Vec<EnvironmentInfo>,
    /// What guests can do here.
    pub capabilities: Capabilities,
    /// Host networking prerequisites (for network policies other than off).
    pub networking: Networking,
    /// Problems, each with its fix.
    pub issues: Vec<DoctorIssue>,
}

/// What guests can do on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// A guest can boot.
    pub vm_boot: bool,
    /// Commands can run in a guest.
    pub guest_exec: bool,
    /// Guests can reach the network (not offered by this version).
    pub guest_network: bool,
}

/// Host networking prerequisites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Networking {
    /// `/dev/net/tun` exists.
    pub tun: bool,
    /// `net.ipv4.ip_forward` is 1.
    pub ip_forward: bool,
}

/// What the host's KVM device allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmStatus {
    /// `/dev/kvm` exists.
    pub exists: bool,
    /// It can be opened for reading.
    pub readable: bool,
    /// It can be opened for writing.
    pub writable: bool,
    /// A bounded probe shows it can run a stock guest kernel.
    pub usable: bool,
    /// Why it is (not) usable.
    pub reason: String,
}

/// The backend and acceleration `auto` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendChoice {
    /// `qemu`.
    pub backend: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Why.
    pub reason: String,
}

/// A host program and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolStatus {
    /// Program name.
    pub name: String,
    /// What pyro needs it for.
    pub purpose: String,
    /// Whether it was found.
    pub found: bool,
    /// Its resolved path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The first line of its version output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether pyro cannot boot guests without it.
    pub required: bool,
}

/// A problem and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorIssue {
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

//! The VMM seam: what a backend is given, and what it hands back.
//!
//! A backend ([`Vmm`]) turns a [`VmSpec`] into running processes
//! ([`LaunchedVm`]). Everything after that (readiness, the guest channel,
//! stopping) is backend-independent, because every backend offers the same
//! Firecracker-style hybrid-vsock socket at [`VmSpec::vsock_socket`]. QEMU
//! and a fake for tests live beside this; Firecracker can be added the same
//! way without touching callers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use pyro_guest_protocol::READY_PORT;

use crate::error::Result;
use crate::process::ProcessExit;

/// Everything needed to boot one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The VM's id (12 hex characters).
    pub vm_id: String,
    /// vCPUs.
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// The kernel (an uncompressed ELF vmlinux, booted with PVH).
    pub kernel: PathBuf,
    /// The initramfs (modules plus pyro-init and the agent).
    pub initramfs: PathBuf,
    /// The environment's root filesystem, attached read-only.
    pub root_disk: PathBuf,
    /// This VM's writable disk.
    pub data_disk: PathBuf,
    /// A private directory for sockets, logs and the console.
    pub run_dir: PathBuf,
    /// The guest's hostname.
    pub hostname: String,
}

/// The virtio serial of the root disk, matched by pyro-init.
pub const ROOT_DISK_SERIAL: &str = "pyro-root";
/// The virtio serial of the writable disk, matched by pyro-init.
pub const DATA_DISK_SERIAL: &str = "pyro-data";

impl VmSpec {
    /// The hybrid-vsock Unix socket the host connects to.
    pub fn vsock_socket(&self) -> PathBuf {
        self.run_dir.join("v.sock")
    }

    /// Where the host listens for the guest's ready notice.
    pub fn ready_socket(&self) -> PathBuf {
        ready_socket_for(&self.vsock_socket())
    }

    /// The guest's serial console, captured to a file.
    pub fn console_log(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }

    /// The `pyro.*` and tuning parameters for the guest kernel.
    pub fn kernel_args(&self, tsc_khz: Option<u64>) -> String {
        let mut args = vec![
            "console=ttyS0".to_owned(),
            "panic=-1".to_owned(),
            "quiet".to_owned(),
            "loglevel=0".to_owned(),
            "tsc=reliable".to_owned(),
            "no_timer_check".to_owned(),
            "i8042.noaux".to_owned(),
            "i8042.nokbd".to_owned(),
            "cryptomgr.notests".to_owned(),
        ];
        if let Some(khz) = tsc_khz {
            args.push(format!("tsc_early_khz={khz}"));
        }
        args.push(format!("pyro.hostname={}", self.hostname));
        args.push(format!("pyro.root_serial={ROOT_DISK_SERIAL}"));
        args.push(format!("pyro.data_serial={DATA_DISK_SERIAL}"));
        args.join(" ")
    }
}

/// The ready socket that goes with a hybrid-vsock socket.
pub fn ready_socket_for(vsock_socket: &Path) -> PathBuf {
    let mut name = vsock_socket.as_os_str().to_owned();
    name.push(format!("_{READY_PORT}"));
    PathBuf::from(name)
}

/// A future that resolves once, when the VMM exits.
pub type ExitFuture<'a> = Pin<Box<dyn Future<Output = ProcessExit> + Send + 'a>>;

/// A VMM backend.
pub trait Vmm: Send + Sync + std::fmt::Debug {
    /// Short name, such as `qemu`.
    fn name(&self) -> &'static str;

    /// Starts the VM's processes and returns once they run (not once the
    /// guest is ready). It blocks (spawning, waiting for sockets), so callers
    /// run it on a blocking thread.
    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>>;

    /// Takes over the processes of a VM a previous supervisor launched in
    /// `spec.run_dir`, if they still run (checked by PID and start time).
    fn adopt(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>>;
}

/// The running processes of one VM.
pub trait LaunchedVm: Send + Sync + std::fmt::Debug {
    /// The process ids (VMM first), for the resource ledger.
    fn pids(&self) -> Vec<u32>;

    /// Resolves when the VMM process has exited. Call it once.
    fn wait_exit(&self) -> ExitFuture<'_>;

    /// Kills every process of the VM at once.
    fn kill(&self);

    /// After the VMM exited: stops helper processes and removes sockets.
    fn cleanup(&self);

    /// The last `lines` lines of the guest console, for error reports.
    fn console_tail(&self, lines: usize) -> String;
}

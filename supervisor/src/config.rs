//! Supervisor settings, read once at start from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PYRO_BOOT_TIMEOUT_SECONDS` | how long a guest has to become ready | 90 |
//! | `PYRO_MAX_RUNNING_VMS` | VMs allowed to run at once | host memory / 1.5 GiB, at least 2 |
//! | `PYRO_ACCEL` | force `kvm` or `tcg` | probe |
//! | `PYRO_GUEST_DIR` | where pyro-init and pyro-guest-agent are | see `guest_bundle` |
//! | `PYRO_QEMU`, `PYRO_VHOST_DEVICE_VSOCK` | program paths | `PATH` |

use std::path::PathBuf;
use std::time::Duration;

use pyro_sdk::PyroPaths;

/// Default guest boot timeout. TCG boots take 2-8 s; this bounds a hang.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Default size of a VM's writable disk (sparse; costs nothing until used).
pub const DEFAULT_DISK_MIB: u64 = 4096;

/// Memory budgeted per running VM when deriving the default VM limit.
const MIB_PER_VM_BUDGET: u64 = 1536;

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// State directories.
    pub paths: PyroPaths,
    /// Guest boot timeout.
    pub boot_timeout: Duration,
    /// VMs allowed to run at once.
    pub max_running_vms: usize,
    /// A forced acceleration (`kvm`/`tcg`), if any.
    pub accel_override: Option<String>,
    /// An explicit guest binary directory.
    pub guest_dir: Option<PathBuf>,
}

impl Settings {
    /// Settings from the process environment.
    pub fn from_env(paths: PyroPaths) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let boot_timeout = var("PYRO_BOOT_TIMEOUT_SECONDS")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_BOOT_TIMEOUT, Duration::from_secs);
        let max_running_vms = var("PYRO_MAX_RUNNING_VMS")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(default_vm_limit);
        Self {
            paths,
            boot_timeout,
            max_running_vms,
            accel_override: var("PYRO_ACCEL"),
            guest_dir: var("PYRO_GUEST_DIR").map(PathBuf::from),
        }
    }

    /// Where ephemeral VM disks live.
    pub fn vm_data_dir(&self) -> PathBuf {
        self.paths.data_dir.join("vms")
    }

    /// Where workspace secret values live (0700; one 0600 file each).
    pub fn secrets_dir(&self) -> PathBuf {
        self.paths.data_dir.join("secrets")
    }

    /// Where per-VM runtime files (sockets, console) live.
    pub fn vm_run_dir(&self) -> PathBuf {
        self.paths.runtime_dir.join("vms")
    }
}

fn default_vm_limit() -> usize {
    let total = crate::host::total_memory_mib().unwrap_or(4096);
    ((total / MIB_PER_VM_BUDGET) as usize).max(2)
}

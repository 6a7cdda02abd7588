//! What every request handler shares: settings, the host probe results, the
//! guest bundle, and the addresses of the long-lived actors.

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use pyro_actors::vm::qemu::{Accel, QemuConfig, QemuVmm};
use pyro_actors::vm::Vmm;
use pyro_sdk::api::{BackendChoice, ErrorBody};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::StoreActor;

use crate::config::Settings;
use crate::env_manager::EnvironmentManager;
use crate::environment::EnvironmentCache;
use crate::error::SupervisorError;
use crate::guest_bundle::GuestBundle;
use crate::host::{HostPrograms, KvmProbe};
use crate::root::RootSupervisor;

/// Shared state of a running supervisor.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Settings.
    pub settings: Arc<Settings>,
    /// The environment cache.
    pub cache: Arc<EnvironmentCache>,
    /// Host programs found at start.
    pub programs: Arc<HostPrograms>,
    /// What /dev/kvm allows.
    pub kvm: KvmProbe,
    /// The backend in use and why.
    pub backend: BackendChoice,
    /// Why no guest can boot, if that is so.
    pub unavailable: Option<ErrorBody>,
    /// The guest binaries, packed.
    pub bundle: Result<GuestBundle, ErrorBody>,
    /// `mkfs.ext4`, for data disks.
    pub mkfs: PathBuf,
    /// The supervision tree's root.
    pub root: Addr<RootSupervisor>,
    /// Installs environments.
    pub environments: Addr<EnvironmentManager>,
    /// The record database.
    pub store: Addr<StoreActor>,
    /// Boots VMs.
    pub vmm: Arc<dyn Vmm>,
    /// Slots of the running-VM limit, shared by runs and workspaces.
    pub vm_slots: Arc<Semaphore>,
}

impl Runtime {
    /// Takes a running-VM slot, or says the limit is reached.
    pub fn take_vm_slot(&self) -> Result<OwnedSemaphorePermit, SupervisorError> {
        Arc::clone(&self.vm_slots).try_acquire_owned().map_err(|_| {
            let limit = self.settings.max_running_vms;
            SupervisorError::LimitReached {
                limit,
                running: limit.saturating_sub(self.vm_slots.available_permits()),
            }
        })
    }
}

/// The VMM backend, or why there is none.
#[derive(Debug)]
pub struct BackendSetup {
    /// The backend (a QEMU whose programs may be missing).
    pub vmm: Arc<dyn Vmm>,
    /// Which acceleration and why.
    pub choice: BackendChoice,
    /// Why guests cannot boot, if that is so.
    pub unavailable: Option<ErrorBody>,
}

/// Chooses QEMU with KVM when the probe says it works, TCG otherwise.
pub fn select_backend(
    programs: &HostPrograms,
    kvm: &KvmProbe,
    accel_override: Option<&str>,
) -> BackendSetup {
    let (accel, reason) = match accel_override.map(str::trim) {
        Some("kvm") => (Accel::Kvm, "forced by PYRO_ACCEL=kvm".to_owned()),
        Some("tcg") => (Accel::Tcg, "forced by PYRO_ACCEL=tcg".to_owned()),
        _ if kvm.usable => (Accel::Kvm, format!("KVM is usable: {}", kvm.reason)),
        _ => (
            Accel::Tcg,
            format!(
                "KVM is not usable: {}; using software emulation (TCG)",
                kvm.reason
            ),
        ),
    };
    let missing: Vec<&str> = [&programs.qemu, &programs.sidecar, &programs.mkfs]
        .iter()
        .filter(|p| p.path.is_none())
        .map(|p| p.name)
        .collect();
    let unavailable = (!missing.is_empty()).then(|| {
        SupervisorError::BackendUnavailable {
            reason: format!("{} not found", missing.join(", ")),
        }
        .to_body()
    });
    let tsc_khz = match accel {
        Accel::Tcg => crate::host::measure_tsc_khz(),
        Accel::Kvm => None,
    };
    let vmm = QemuVmm::new(QemuConfig {
        qemu: programs
            .qemu
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(programs.qemu.name)),
        sidecar: programs
            .sidecar
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(programs.sidecar.name)),
        accel,
        tsc_khz,
    });
    BackendSetup {
        vmm: Arc::new(vmm),
        choice: BackendChoice {
            backend: "qemu".to_owned(),
            accel: accel.as_str().to_owned(),
            reason,
        },
        unavailable,
    }
}

//! A workspace's VM: booting it on the workspace's disk, and shutting it down.
//!
//! Each boot takes a slot of the running-VM limit (shared with one-shot
//! runs) and gives it back when the VM is gone; stopped workspaces hold none.
//! Every VM is registered with the root before it boots, so the health
//! report counts it and a supervisor shutdown stops it, even mid-boot.

use std::path::PathBuf;

use actix::prelude::*;
use pyro_actors::vm::{AdoptVm, OpenGuest, StartVm, StopVm, VmActor, VmEvent, VmSpec};
use pyro_actors::vsock::GuestConnection;
use tokio::sync::OwnedSemaphorePermit;

use super::files::WorkspaceDir;
use crate::env_manager::EnsureEnvironment;
use crate::environment::InstalledEnvironment;
use crate::error::SupervisorError;
use crate::root::TrackVm;
use crate::runner::blocking;
use crate::runtime::Runtime;
use crate::store::WorkspaceRecord;

/// A running workspace VM.
#[derive(Debug)]
pub struct WorkspaceVm {
    /// The VM actor.
    pub addr: Addr<VmActor>,
    /// The VM's id (new for every boot).
    pub vm_id: String,
    run_dir: PathBuf,
    _slot: OwnedSemaphorePermit,
}

/// Resolves the workspace's environment (installing it if a prune removed it).
pub async fn environment(
    runtime: &Runtime,
    name: &str,
) -> Result<InstalledEnvironment, SupervisorError> {
    runtime
        .environments
        .send(EnsureEnvironment {
            name: name.to_owned(),
            progress: None,
        })
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the environment manager".to_owned(),
        })?
        .map_err(|body| SupervisorError::EnvironmentUnavailable { body })
}

/// Boots a VM on the workspace's disk and waits until its agent answers.
pub async fn boot(
    runtime: &Runtime,
    record: &WorkspaceRecord,
    dir: &WorkspaceDir,
    owner: Recipient<VmEvent>,
) -> Result<WorkspaceVm, SupervisorError> {
    if let Some(unavailable) = &runtime.unavailable {
        return Err(SupervisorError::BackendUnavailable {
            reason: unavailable.message.clone(),
        });
    }
    let slot = runtime.take_vm_slot()?;
    let env = environment(runtime, &record.environment).await?;
    let bundle = runtime
        .bundle
        .clone()
        .map_err(|body| SupervisorError::BackendUnavailable {
            reason: body.message,
        })?;
    let env_for_bundle = env.clone();
    let initramfs = blocking(move || bundle.initramfs_for(&env_for_bundle)).await??;
    let vm_id = crate::ids::new_id();
    let run_dir = runtime.settings.vm_run_dir().join(&vm_id);
    let spec = VmSpec {
        vm_id: vm_id.clone(),
        vcpu_count: record.vcpu_count,
        mem_mib: record.mem_mib,
        kernel: env.vmlinux.clone(),
        initramfs,
        root_disk: env.rootfs.clone(),
        data_disk: dir.disk(),
        run_dir: run_dir.clone(),
        hostname: "pyro".to_owned(),
    };
    let addr = VmActor::new(spec, runtime.vmm.clone(), runtime.settings.boot_timeout)
        .with_owner(owner)
        .start();
    let vm = WorkspaceVm {
        addr,
        vm_id,
        run_dir,
        _slot: slot,
    };
    if let Err(err) = track(runtime, record, &vm).await {
        shut_down(vm).await;
        return Err(err);
    }
    match vm.addr.send(StartVm).await {
        Ok(Ok(_ready)) => Ok(vm),
        Ok(Err(err)) => {
            shut_down(vm).await;
            Err(err.into())
        }
        Err(_) => {
            shut_down(vm).await;
            Err(SupervisorError::ActorGone {
                what: "the vm actor".to_owned(),
            })
        }
    }
}

/// Takes over the workspace's VM `vm_id`, left running by a previous
/// supervisor, and checks its agent answers.
pub async fn adopt(
    runtime: &Runtime,
    record: &WorkspaceRecord,
    dir: &WorkspaceDir,
    owner: Recipient<VmEvent>,
    vm_id: &str,
) -> Result<WorkspaceVm, SupervisorError> {
    let slot = runtime.take_vm_slot()?;
    let run_dir = runtime.settings.vm_run_dir().join(vm_id);
    let spec = VmSpec {
        vm_id: vm_id.to_owned(),
        vcpu_count: record.vcpu_count,
        mem_mib: record.mem_mib,
        kernel: PathBuf::new(),
        initramfs: PathBuf::new(),
        root_disk: PathBuf::new(),
        data_disk: dir.disk(),
        run_dir: run_dir.clone(),
        hostname: "pyro".to_owned(),
    };
    let addr = VmActor::new(spec, runtime.vmm.clone(), runtime.settings.boot_timeout)
        .with_owner(owner)
        .start();
    let vm = WorkspaceVm {
        addr,
        vm_id: vm_id.to_owned(),
        run_dir,
        _slot: slot,
    };
    if let Err(err) = track(runtime, record, &vm).await {
        shut_down(vm).await;
        return Err(err);
    }
    match vm.addr.send(AdoptVm).await {
        Ok(Ok(_)) => Ok(vm),
        Ok(Err(err)) => {
            shut_down(vm).await;
            Err(err.into())
        }
        Err(_) => {
            shut_down(vm).await;
            Err(SupervisorError::ActorGone {
                what: "the vm actor".to_owned(),
            })
        }
    }
}

/// Registers the VM with the root; refused once the supervisor shuts down.
async fn track(
    runtime: &Runtime,
    record: &WorkspaceRecord,
    vm: &WorkspaceVm,
) -> Result<(), SupervisorError> {
    runtime
        .root
        .send(TrackVm {
            vm_id: vm.vm_id.clone(),
            addr: vm.addr.clone(),
            workspace_id: record.id.clone(),
        })
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the supervision tree".to_owned(),
        })?
}

/// Powers the VM off (killing it if needed), waits until its processes are
/// gone and removes its runtime files. The slot is freed when `vm` drops.
pub async fn shut_down(vm: WorkspaceVm) {
    let _ = vm.addr.send(StopVm).await;
    let run_dir = vm.run_dir.clone();
    let _ = blocking(move || std::fs::remove_dir_all(&run_dir)).await;
}

/// A connection to the workspace's guest agent.
pub async fn open(addr: &Addr<VmActor>) -> Result<GuestConnection, SupervisorError> {
    addr.send(OpenGuest)
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the vm actor".to_owned(),
        })?
        .map_err(SupervisorError::from)
}

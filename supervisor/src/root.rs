//! The root of the supervision tree: owns every VM actor.
//!
//! It enforces the running-VM limit, hears about VMs that die, and on
//! shutdown stops every VM before the system exits, so no VMM process, sidecar
//! or socket outlives the supervisor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use pyro_actors::vm::{StopVm, VmActor, VmEvent, VmEventKind, VmSpec, Vmm};

use crate::error::SupervisorError;

/// Start a VM actor for `spec` (not booted yet).
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<VmActor>, SupervisorError>")]
pub struct SpawnVm {
    /// What to boot.
    pub spec: VmSpec,
}

/// Forget a VM whose actor has stopped (or is stopping).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetVm {
    /// The VM.
    pub vm_id: String,
}

/// How many VMs are alive.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountVms;

/// Stop every VM; answers once they are all down.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopAllVms;

/// How long shutdown waits for all VMs to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// The supervision tree's root.
#[derive(Debug)]
pub struct RootSupervisor {
    vmm: Arc<dyn Vmm>,
    boot_timeout: Duration,
    max_running_vms: usize,
    vms: HashMap<String, Addr<VmActor>>,
}

impl RootSupervisor {
    /// A root that boots VMs with `vmm`.
    pub fn new(vmm: Arc<dyn Vmm>, boot_timeout: Duration, max_running_vms: usize) -> Self {
        Self {
            vmm,
            boot_timeout,
            max_running_vms,
            vms: HashMap::new(),
        }
    }

    fn prune_dead(&mut self) {
        self.vms.retain(|_, addr| addr.connected());
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;
}

impl Handler<SpawnVm> for RootSupervisor {
    type Result = Result<Addr<VmActor>, SupervisorError>;

    fn handle(&mut self, msg: SpawnVm, ctx: &mut Self::Context) -> Self::Result {
        self.prune_dead();
        if self.vms.len() >= self.max_running_vms {
            return Err(SupervisorError::LimitReached {
                limit: self.max_running_vms,
                running: self.vms.len(),
            });
        }
        let vm_id = msg.spec.vm_id.clone();
        let addr = VmActor::new(msg.spec, Arc::clone(&self.vmm), self.boot_timeout)
            .with_owner(ctx.address().recipient())
            .start();
        self.vms.insert(vm_id, addr.clone());
        Ok(addr)
    }
}

impl Handler<ForgetVm> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ForgetVm, _ctx: &mut Self::Context) {
        self.vms.remove(&msg.vm_id);
    }
}

impl Handler<CountVms> for RootSupervisor {
    type Result = usize;

    fn handle(&mut self, _msg: CountVms, _ctx: &mut Self::Context) -> usize {
        self.prune_dead();
        self.vms.len()
    }
}

impl Handler<VmEvent> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: VmEvent, _ctx: &mut Self::Context) {
        match msg.kind {
            VmEventKind::ExitedUnexpectedly { exit, .. } => {
                tracing::warn!(vm_id = %msg.vm_id, %exit, "vm exited unexpectedly");
            }
            VmEventKind::AgentUnresponsive { last_error } => {
                tracing::warn!(vm_id = %msg.vm_id, %last_error, "guest agent unresponsive");
            }
        }
    }
}

impl Handler<StopAllVms> for RootSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: StopAllVms, _ctx: &mut Self::Context) -> Self::Result {
        let vms: Vec<Addr<VmActor>> = self.vms.drain().map(|(_, addr)| addr).collect();
        Box::pin(async move {
            let stops = vms.iter().map(|vm| vm.send(StopVm));
            let _ =
                tokio::time::timeout(SHUTDOWN_WAIT, futures_util::future::join_all(stops)).await;
        })
    }
}

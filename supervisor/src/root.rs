//! The root of the supervision tree: owns every VM actor.
//!
//! It tracks one-shot VMs and workspace actors, hears about one-shot VMs
//! that die, and on shutdown stops every VM before the system exits, so no
//! VMM process, sidecar or socket outlives the supervisor. (The running-VM
//! limit is a semaphore in the runtime, shared by runs and workspaces.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use pyro_actors::vm::{StopVm, VmActor, VmEvent, VmEventKind, VmSpec, Vmm};

use crate::error::SupervisorError;
use crate::workspace::messages::Suspend;
use crate::workspace::WorkspaceActor;

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

/// Track a workspace actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RegisterWorkspace {
    /// The workspace.
    pub workspace_id: String,
    /// Its actor.
    pub addr: Addr<WorkspaceActor>,
}

/// Forget a deleted workspace.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetWorkspace {
    /// The workspace.
    pub workspace_id: String,
}

/// A workspace's actor, if it exists.
#[derive(Debug, Message)]
#[rtype(result = "Option<Addr<WorkspaceActor>>")]
pub struct GetWorkspace {
    /// The workspace.
    pub workspace_id: String,
}

/// Every workspace actor.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Addr<WorkspaceActor>>")]
pub struct AllWorkspaces;

/// How long shutdown waits for all VMs to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// The supervision tree's root.
#[derive(Debug)]
pub struct RootSupervisor {
    vmm: Arc<dyn Vmm>,
    boot_timeout: Duration,
    vms: HashMap<String, Addr<VmActor>>,
    workspaces: HashMap<String, Addr<WorkspaceActor>>,
}

impl RootSupervisor {
    /// A root that boots one-shot VMs with `vmm`.
    pub fn new(vmm: Arc<dyn Vmm>, boot_timeout: Duration) -> Self {
        Self {
            vmm,
            boot_timeout,
            vms: HashMap::new(),
            workspaces: HashMap::new(),
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
        let workspaces: Vec<Addr<WorkspaceActor>> = self.workspaces.values().cloned().collect();
        Box::pin(async move {
            let stops = vms.iter().map(|vm| vm.send(StopVm));
            let suspends = workspaces.iter().map(|ws| ws.send(Suspend));
            let all = futures_util::future::join(
                futures_util::future::join_all(stops),
                futures_util::future::join_all(suspends),
            );
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, all).await;
        })
    }
}

impl Handler<RegisterWorkspace> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RegisterWorkspace, _ctx: &mut Self::Context) {
        self.workspaces.insert(msg.workspace_id, msg.addr);
    }
}

impl Handler<ForgetWorkspace> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ForgetWorkspace, _ctx: &mut Self::Context) {
        self.workspaces.remove(&msg.workspace_id);
    }
}

impl Handler<GetWorkspace> for RootSupervisor {
    type Result = Option<Addr<WorkspaceActor>>;

    fn handle(&mut self, msg: GetWorkspace, _ctx: &mut Self::Context) -> Self::Result {
        self.workspaces
            .get(&msg.workspace_id)
            .filter(|addr| addr.connected())
            .cloned()
    }
}

impl Handler<AllWorkspaces> for RootSupervisor {
    type Result = Vec<Addr<WorkspaceActor>>;

    fn handle(&mut self, _msg: AllWorkspaces, _ctx: &mut Self::Context) -> Self::Result {
        self.workspaces.retain(|_, addr| addr.connected());
        self.workspaces.values().cloned().collect()
    }
}

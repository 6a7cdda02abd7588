//! The root of the supervision tree: tracks every VM actor and workspace.
//!
//! Every VM registers here before it boots: one-shot VMs are spawned here
//! ([`SpawnVm`]), workspace VMs announce themselves ([`TrackVm`]). So the
//! root can count them all for the health report and, on shutdown
//! ([`StopAllVms`]), stop every one of them, those still booting included,
//! before the system exits; no VMM process, sidecar or socket outlives the
//! supervisor. Once shutdown has begun, new VMs are refused. (The
//! running-VM limit is a semaphore in the runtime, shared by runs and
//! workspaces.)

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

/// Track a workspace VM that is about to boot (or be adopted). Refused once
/// shutdown has begun; the caller then stops the VM actor.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct TrackVm {
    /// The VM.
    pub vm_id: String,
    /// Its actor.
    pub addr: Addr<VmActor>,
    /// The workspace it runs.
    pub workspace_id: String,
}

/// Stop the VMs of one workspace (cancelling a boot under way); answers
/// once they are down.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopWorkspaceVms {
    /// The workspace.
    pub workspace_id: String,
}

/// Forget a VM whose actor has stopped (or is stopping).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetVm {
    /// The VM.
    pub vm_id: String,
}

/// How many VMs are alive (booting or running): one-shot runs and
/// workspaces.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountVms;

/// Shutdown: refuse new VMs, stop every VM (booting ones too) and suspend
/// every workspace; answers once they are all down (bounded by
/// [`SHUTDOWN_WAIT`]).
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
    vms: HashMap<String, TrackedVm>,
    workspaces: HashMap<String, Addr<WorkspaceActor>>,
    shutting_down: bool,
}

/// A VM actor the root knows about.
#[derive(Debug)]
struct TrackedVm {
    addr: Addr<VmActor>,
    /// The workspace it runs; `None` for one-shot runs.
    workspace_id: Option<String>,
}

fn shutting_down() -> SupervisorError {
    SupervisorError::ActorGone {
        what: "the supervisor".to_owned(),
    }
}

impl RootSupervisor {
    /// A root that boots one-shot VMs with `vmm`.
    pub fn new(vmm: Arc<dyn Vmm>, boot_timeout: Duration) -> Self {
        Self {
            vmm,
            boot_timeout,
            vms: HashMap::new(),
            workspaces: HashMap::new(),
            shutting_down: false,
        }
    }

    fn prune_dead(&mut self) {
        self.vms.retain(|_, vm| vm.addr.connected());
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;
}

impl Handler<SpawnVm> for RootSupervisor {
    type Result = Result<Addr<VmActor>, SupervisorError>;

    fn handle(&mut self, msg: SpawnVm, ctx: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return Err(shutting_down());
        }
        self.prune_dead();
        let vm_id = msg.spec.vm_id.clone();
        let addr = VmActor::new(msg.spec, Arc::clone(&self.vmm), self.boot_timeout)
            .with_owner(ctx.address().recipient())
            .start();
        self.vms.insert(
            vm_id,
            TrackedVm {
                addr: addr.clone(),
                workspace_id: None,
            },
        );
        Ok(addr)
    }
}

impl Handler<TrackVm> for RootSupervisor {
    type Result = Result<(), SupervisorError>;

    fn handle(&mut self, msg: TrackVm, _ctx: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return Err(shutting_down());
        }
        self.prune_dead();
        self.vms.insert(
            msg.vm_id,
            TrackedVm {
                addr: msg.addr,
                workspace_id: Some(msg.workspace_id),
            },
        );
        Ok(())
    }
}

impl Handler<StopWorkspaceVms> for RootSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: StopWorkspaceVms, _ctx: &mut Self::Context) -> Self::Result {
        self.prune_dead();
        let stops: Vec<_> = self
            .vms
            .values()
            .filter(|vm| vm.workspace_id.as_deref() == Some(msg.workspace_id.as_str()))
            .map(|vm| vm.addr.send(StopVm))
            .collect();
        Box::pin(async move {
            futures_util::future::join_all(stops).await;
        })
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
        self.shutting_down = true;
        let (workspace_vms, run_vms): (Vec<TrackedVm>, Vec<TrackedVm>) = self
            .vms
            .drain()
            .map(|(_, vm)| vm)
            .partition(|vm| vm.workspace_id.is_some());
        let workspaces: Vec<Addr<WorkspaceActor>> = self.workspaces.values().cloned().collect();
        tracing::info!(
            vms = workspace_vms.len() + run_vms.len(),
            workspaces = workspaces.len(),
            "stopping every VM"
        );
        let stop = |vms: Vec<TrackedVm>| {
            futures_util::future::join_all(vms.into_iter().map(|vm| vm.addr.send(StopVm)))
        };
        Box::pin(async move {
            let workspaces = async {
                // First every workspace powers its running VM off and notes
                // that it is suspended, so the boots cancelled next are not
                // recorded as failures...
                futures_util::future::join_all(workspaces.iter().map(|ws| ws.send(Suspend))).await;
                // ... then every workspace VM still there is stopped: boots
                // under way are cancelled.
                stop(workspace_vms).await;
            };
            let all = futures_util::future::join(workspaces, stop(run_vms));
            if tokio::time::timeout(SHUTDOWN_WAIT, all).await.is_err() {
                tracing::warn!(
                    seconds = SHUTDOWN_WAIT.as_secs(),
                    "some VMs did not stop in time"
                );
            }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use pyro_actors::vm::fake::{FakeBoot, FakeVmm};
    use pyro_actors::vm::StartVm;

    use super::*;

    fn spec(dir: &tempfile::TempDir, vm_id: &str) -> VmSpec {
        VmSpec {
            vm_id: vm_id.into(),
            vcpu_count: 1,
            mem_mib: 256,
            kernel: "/nonexistent/vmlinux".into(),
            initramfs: "/nonexistent/initramfs".into(),
            root_disk: "/nonexistent/rootfs.ext4".into(),
            data_disk: "/nonexistent/data.ext4".into(),
            run_dir: dir.path().join(vm_id),
            hostname: "pyro".into(),
        }
    }

    #[actix_rt::test]
    async fn counts_and_stops_every_vm_including_booting_workspace_vms() {
        let dir = tempfile::tempdir().unwrap();
        let runs = FakeVmm::new(FakeBoot::Ready);
        let root = RootSupervisor::new(Arc::new(runs.clone()), Duration::from_secs(5)).start();

        // A one-shot run, booted.
        let run = root
            .send(SpawnVm {
                spec: spec(&dir, "000000000001"),
            })
            .await
            .unwrap()
            .unwrap();
        run.send(StartVm).await.unwrap().unwrap();

        // Two workspace VMs: one running, one whose guest never answers
        // (a boot under way when the supervisor stops).
        let workspaces = FakeVmm::new(FakeBoot::Ready);
        let running = VmActor::new(
            spec(&dir, "000000000002"),
            Arc::new(workspaces.clone()),
            Duration::from_secs(5),
        )
        .start();
        let hanging = FakeVmm::new(FakeBoot::Silent);
        let booting = VmActor::new(
            spec(&dir, "000000000003"),
            Arc::new(hanging.clone()),
            Duration::from_secs(600),
        )
        .start();
        for (vm_id, addr) in [("000000000002", &running), ("000000000003", &booting)] {
            root.send(TrackVm {
                vm_id: vm_id.into(),
                addr: addr.clone(),
                workspace_id: "aaaaaaaaaaaa".into(),
            })
            .await
            .unwrap()
            .unwrap();
        }
        running.send(StartVm).await.unwrap().unwrap();
        let boot = booting.send(StartVm);
        while hanging.live_vms() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(root.send(CountVms).await.unwrap(), 3);

        let started = Instant::now();
        root.send(StopAllVms).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown waited for the boot timeout"
        );
        assert_eq!(runs.live_vms(), 0, "the run's VM outlived the shutdown");
        assert_eq!(
            workspaces.live_vms(),
            0,
            "a workspace VM outlived the shutdown"
        );
        assert_eq!(hanging.live_vms(), 0, "a booting VM outlived the shutdown");
        assert!(boot.await.unwrap().is_err(), "the boot was cancelled");
        assert_eq!(root.send(CountVms).await.unwrap(), 0);

        // Nothing new starts once shutdown has begun.
        let refused = root
            .send(SpawnVm {
                spec: spec(&dir, "000000000004"),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.to_string(), "the supervisor is shutting down");
        let late = VmActor::new(
            spec(&dir, "000000000005"),
            Arc::new(workspaces.clone()),
            Duration::from_secs(5),
        )
        .start();
        let refused = root
            .send(TrackVm {
                vm_id: "000000000005".into(),
                addr: late,
                workspace_id: "aaaaaaaaaaaa".into(),
            })
            .await
            .unwrap();
        assert!(refused.is_err());
    }

    #[actix_rt::test]
    async fn stops_the_vms_of_one_workspace_only() {
        let dir = tempfile::tempdir().unwrap();
        let vmm = FakeVmm::new(FakeBoot::Ready);
        let root = RootSupervisor::new(Arc::new(vmm.clone()), Duration::from_secs(5)).start();
        let mut addrs = Vec::new();
        for (vm_id, workspace_id) in [
            ("000000000001", "aaaaaaaaaaaa"),
            ("000000000002", "bbbbbbbbbbbb"),
        ] {
            let addr = VmActor::new(
                spec(&dir, vm_id),
                Arc::new(vmm.clone()),
                Duration::from_secs(5),
            )
            .start();
            root.send(TrackVm {
                vm_id: vm_id.into(),
                addr: addr.clone(),
                workspace_id: workspace_id.into(),
            })
            .await
            .unwrap()
            .unwrap();
            addr.send(StartVm).await.unwrap().unwrap();
            addrs.push(addr);
        }
        root.send(StopWorkspaceVms {
            workspace_id: "aaaaaaaaaaaa".into(),
        })
        .await
        .unwrap();
        assert_eq!(vmm.live_vms(), 1, "only the other workspace's VM runs");
        assert_eq!(root.send(CountVms).await.unwrap(), 1);
        root.send(StopAllVms).await.unwrap();
        assert_eq!(vmm.live_vms(), 0);
    }
}

//! The VM actor: one VMM process (and its helpers) from launch to exit.
//!
//! The actor is a thin shell: lifecycle decisions live in [`core::VmCore`],
//! the boot sequence in [`boot`], and everything host-specific behind the
//! [`Vmm`] trait ([`qemu::QemuVmm`], [`fake::FakeVmm`]). Once the guest is
//! ready the actor starts a [`VsockBridgeActor`] for connections and health
//! pings, and watches the VMM process; an exit it did not ask for is
//! reported to its owner as a [`VmEvent`] and the actor stays, in state
//! `stopped`, until the owner sends [`StopVm`].
//!
//! [`StopVm`] answers only once the VM's processes are gone, whatever the
//! state: during a boot it cancels the boot (which tears the processes
//! down) and then finishes the stop; while another stop runs it waits for
//! that one. So an owner that has its answer knows nothing is left running.
//!
//! # Layout
//!
//! - [`backend`]: the `Vmm` trait and the VM spec.
//! - [`boot`]: launch to ready.
//! - [`core`]: the lifecycle state machine.
//! - [`messages`]: the actor's messages and events.
//! - [`qemu`], [`fake`]: backends.
//! - [`disk`]: writable data disks. [`console`]: console tails.

pub mod backend;
pub mod boot;
pub mod console;
pub mod core;
pub mod disk;
pub mod fake;
pub mod messages;
pub mod qemu;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

pub use self::backend::{LaunchedVm, VmSpec, Vmm};
pub use self::core::{VmCore, VmInfo, VmState};
pub use self::messages::{
    AdoptVm, AwaitExit, GetVmInfo, OpenGuest, StartVm, StopVm, VmEvent, VmEventKind, VmExitReport,
    VmReady,
};

use self::boot::{tear_down, Booted, CONSOLE_LINES};
use self::core::{ExitDisposition, StopPlan};
use crate::error::{ActorError, Result};
use crate::process::ProcessExit;
use crate::vsock::{AgentUnresponsive, GuestConnection, OpenChannel, StopBridge, VsockBridgeActor};

/// How long the guest gets to power off before it is killed.
const POWER_OFF_GRACE: Duration = Duration::from_secs(10);

/// One VM.
#[derive(Debug)]
pub struct VmActor {
    core: VmCore,
    spec: VmSpec,
    vmm: Arc<dyn Vmm>,
    boot_timeout: Duration,
    owner: Option<Recipient<VmEvent>>,
    running: Option<RunningVm>,
    /// The boot under way (or done), so a stop can cancel and await it.
    boot: Option<BootControl>,
    /// Becomes `true` when a stop has finished (processes gone); every
    /// [`StopVm`] answers then.
    stop_done: watch::Sender<bool>,
}

/// Handles on a boot for stops that arrive while it runs.
#[derive(Debug)]
struct BootControl {
    /// Set to cancel the boot.
    cancel: watch::Sender<bool>,
    /// Becomes `true` once the boot has succeeded or failed.
    settled: watch::Sender<bool>,
}

#[derive(Debug)]
struct RunningVm {
    launched: Arc<dyn LaunchedVm>,
    exit_rx: watch::Receiver<Option<ProcessExit>>,
    bridge: Addr<VsockBridgeActor>,
    /// Becomes `true` once the processes are gone and sockets removed;
    /// `None` until the teardown has been started.
    torn_down: Option<watch::Receiver<bool>>,
}

impl VmActor {
    /// A VM to be booted from `spec` by `vmm`.
    pub fn new(spec: VmSpec, vmm: Arc<dyn Vmm>, boot_timeout: Duration) -> Self {
        Self {
            core: VmCore::new(spec.vm_id.clone()),
            spec,
            vmm,
            boot_timeout,
            owner: None,
            running: None,
            boot: None,
            stop_done: watch::channel(false).0,
        }
    }

    /// Records the start of a boot and returns its cancel signal.
    fn begin_boot_control(&mut self) -> watch::Receiver<bool> {
        let (cancel, cancel_rx) = watch::channel(false);
        self.boot = Some(BootControl {
            cancel,
            settled: watch::channel(false).0,
        });
        cancel_rx
    }

    /// Wakes the stops waiting for the boot to settle.
    fn boot_settled(&self) {
        if let Some(boot) = &self.boot {
            boot.settled.send_replace(true);
        }
    }

    /// Drives a stop to its end: `stop_done` turns `true` and the actor ends
    /// once the VM's processes are gone. Safe to call again while a stop
    /// runs.
    fn drive_stop(&mut self, ctx: &mut Context<Self>) {
        match self.core.begin_stop() {
            StopPlan::Deferred => {
                // Cancel the boot, wait until it has settled (a cancelled
                // boot tears its processes down), then stop what is left.
                let settled = self.boot.as_ref().map(|boot| {
                    boot.cancel.send_replace(true);
                    boot.settled.subscribe()
                });
                ctx.spawn(
                    async move {
                        if let Some(mut settled) = settled {
                            let _ = settled.wait_for(|settled| *settled).await;
                        }
                    }
                    .into_actor(self)
                    .map(|(), act, ctx| act.drive_stop(ctx)),
                );
            }
            StopPlan::InProgress => {}
            StopPlan::AlreadyStopped => {
                let finished = self.teardown_finished();
                ctx.spawn(finished.into_actor(self).map(finish_stop));
            }
            StopPlan::PowerOff => {
                let Some(running) = self.running.as_ref() else {
                    let finished = self.teardown_finished();
                    ctx.spawn(finished.into_actor(self).map(finish_stop));
                    return;
                };
                let socket = self.spec.vsock_socket();
                let mut exit_rx = running.exit_rx.clone();
                let vm_id = self.spec.vm_id.clone();
                let stop = async move {
                    let powered_off = async {
                        GuestConnection::connect(&socket).await?.power_off().await?;
                        exit_rx
                            .wait_for(Option::is_some)
                            .await
                            .map(|_| ())
                            .map_err(|_| ActorError::ActorGone {
                                what: format!("the exit watcher of vm {vm_id}"),
                            })
                    };
                    match tokio::time::timeout(POWER_OFF_GRACE, powered_off).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            tracing::debug!(%vm_id, error = %err, "graceful power-off failed; killing");
                        }
                        Err(_) => tracing::debug!(%vm_id, "power-off timed out; killing"),
                    }
                };
                let stop = stop
                    .into_actor(self)
                    .then(|(), act: &mut VmActor, _ctx| {
                        act.core.stop_finished();
                        act.teardown_finished().into_actor(act)
                    })
                    .map(finish_stop);
                ctx.spawn(stop);
            }
        }
    }

    /// Where unasked events go.
    #[must_use]
    pub fn with_owner(mut self, owner: Recipient<VmEvent>) -> Self {
        self.owner = Some(owner);
        self
    }

    fn notify_owner(&self, kind: VmEventKind) {
        if let Some(owner) = self.owner.clone() {
            let event = VmEvent {
                vm_id: self.core.vm_id().to_owned(),
                kind,
            };
            actix::spawn(async move {
                let _ = owner.send(event).await;
            });
        }
    }

    fn on_booted(&mut self, booted: Booted, ctx: &mut Context<Self>) -> VmReady {
        let Booted {
            launched,
            exit_rx,
            ready,
            boot_ms,
            agent_version,
        } = booted;
        let stop_requested = self.core.boot_succeeded(boot_ms, agent_version.clone());
        tracing::info!(vm_id = %self.spec.vm_id, boot_ms, "vm ready");

        let bridge = VsockBridgeActor::new(
            self.spec.vm_id.clone(),
            self.spec.vsock_socket(),
            ctx.address().recipient(),
        )
        .start();

        // Keep draining the ready socket: a restarted agent calls again.
        let vm_id = self.spec.vm_id.clone();
        ctx.spawn(
            async move {
                while let Ok(notice) = ready.next_notice().await {
                    tracing::info!(%vm_id, ?notice, "guest notice after boot (agent restarted)");
                }
            }
            .into_actor(self),
        );

        let mut watch_exit = exit_rx.clone();
        ctx.spawn(
            async move {
                match watch_exit.wait_for(Option::is_some).await {
                    Ok(exit) => exit.clone().unwrap_or(ProcessExit::Unknown),
                    Err(_) => ProcessExit::Unknown,
                }
            }
            .into_actor(self)
            .map(|exit, act, ctx| act.on_process_exit(&exit, ctx)),
        );

        self.running = Some(RunningVm {
            launched,
            exit_rx,
            bridge,
            torn_down: None,
        });
        if stop_requested {
            ctx.notify(StopVm);
        }
        VmReady {
            boot_ms,
            agent_version,
        }
    }

    fn on_process_exit(&mut self, exit: &ProcessExit, _ctx: &mut Context<Self>) {
        let console = self
            .running
            .as_ref()
            .map(|running| running.launched.console_tail(CONSOLE_LINES))
            .unwrap_or_default();
        match self.core.process_exited(exit, Some(console.clone())) {
            ExitDisposition::Unexpected => {
                tracing::warn!(vm_id = %self.spec.vm_id, %exit, "vm exited unexpectedly");
                self.start_teardown();
                self.notify_owner(VmEventKind::ExitedUnexpectedly {
                    exit: exit.to_string(),
                    console,
                });
            }
            ExitDisposition::Expected | ExitDisposition::DuringBoot => {}
        }
    }

    /// Starts the teardown (kill, wait, stop helpers, remove sockets) once,
    /// off the arbiter thread, and returns a receiver that turns `true` when
    /// it is done. `None` when nothing was ever launched.
    fn start_teardown(&mut self) -> Option<watch::Receiver<bool>> {
        let running = self.running.as_mut()?;
        if let Some(done) = &running.torn_down {
            return Some(done.clone());
        }
        let (done_tx, done_rx) = watch::channel(false);
        running.torn_down = Some(done_rx.clone());
        running.bridge.do_send(StopBridge);
        let launched = Arc::clone(&running.launched);
        let exit_rx = running.exit_rx.clone();
        actix::spawn(async move {
            tear_down(&launched, exit_rx).await;
            let _ = done_tx.send(true);
        });
        Some(done_rx)
    }

    /// A future that resolves when the teardown (started now if needed) is done.
    fn teardown_finished(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let done = self.start_teardown();
        async move {
            if let Some(mut done) = done {
                let _ = done.wait_for(|finished| *finished).await;
            }
        }
    }
}

impl Actor for VmActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // However the actor ends, nothing it started may outlive it.
        if let Some(running) = self.running.as_ref() {
            if running.torn_down.is_none() {
                tracing::debug!(vm_id = %self.spec.vm_id, "vm actor stopped; killing its processes");
                running.launched.kill();
            }
        }
        self.start_teardown();
    }
}

impl Handler<StartVm> for VmActor {
    type Result = ResponseActFuture<Self, Result<VmReady>>;

    fn handle(&mut self, _msg: StartVm, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(err) = self.core.begin_boot() {
            return Box::pin(actix::fut::ready(Err(err)));
        }
        let cancel = self.begin_boot_control();
        let boot = boot::boot(
            Arc::clone(&self.vmm),
            self.spec.clone(),
            self.boot_timeout,
            cancel,
        );
        Box::pin(boot.into_actor(self).map(|result, act, ctx| {
            let result = match result {
                Ok(booted) => Ok(act.on_booted(booted, ctx)),
                Err(err) => {
                    tracing::warn!(vm_id = %act.spec.vm_id, error = %err, "vm boot failed");
                    act.core.boot_failed(err.console().map(str::to_owned));
                    Err(err)
                }
            };
            act.boot_settled();
            result
        }))
    }
}

impl Handler<AdoptVm> for VmActor {
    type Result = ResponseActFuture<Self, Result<VmReady>>;

    fn handle(&mut self, _msg: AdoptVm, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(err) = self.core.begin_boot() {
            return Box::pin(actix::fut::ready(Err(err)));
        }
        let cancel = self.begin_boot_control();
        let adopt = boot::adopt(Arc::clone(&self.vmm), self.spec.clone(), cancel);
        Box::pin(adopt.into_actor(self).map(|result, act, ctx| {
            let result = match result {
                Ok(booted) => Ok(act.on_booted(booted, ctx)),
                Err(err) => {
                    act.core.boot_failed(None);
                    Err(err)
                }
            };
            act.boot_settled();
            result
        }))
    }
}

impl Handler<OpenGuest> for VmActor {
    type Result = ResponseFuture<Result<GuestConnection>>;

    fn handle(&mut self, _msg: OpenGuest, _ctx: &mut Self::Context) -> Self::Result {
        let ready = self.core.require_running().and_then(|()| {
            self.running
                .as_ref()
                .map(|r| r.bridge.clone())
                .ok_or_else(|| ActorError::NotRunning {
                    vm_id: self.spec.vm_id.clone(),
                    state: self.core.state(),
                })
        });
        let vm_id = self.spec.vm_id.clone();
        Box::pin(async move {
            let bridge = ready?;
            bridge
                .send(OpenChannel)
                .await
                .map_err(|_| ActorError::ActorGone {
                    what: format!("the vsock bridge of vm {vm_id}"),
                })?
        })
    }
}

impl Handler<StopVm> for VmActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, _msg: StopVm, ctx: &mut Self::Context) -> Self::Result {
        self.drive_stop(ctx);
        // Not an actor future: the answer must survive the actor's end.
        let mut done = self.stop_done.subscribe();
        Box::pin(async move {
            // A dropped sender means the actor is gone; its `stopped` hook
            // has killed what it ran.
            let _ = done.wait_for(|done| *done).await;
            Ok(())
        })
    }
}

/// The end of a stop: wakes every stop request and ends the actor.
fn finish_stop(_: (), act: &mut VmActor, ctx: &mut Context<VmActor>) {
    act.stop_done.send_replace(true);
    ctx.stop();
}

impl Handler<AwaitExit> for VmActor {
    type Result = ResponseFuture<Option<VmExitReport>>;

    fn handle(&mut self, msg: AwaitExit, _ctx: &mut Self::Context) -> Self::Result {
        let Some(running) = self.running.as_ref() else {
            return Box::pin(async { None });
        };
        let mut exit_rx = running.exit_rx.clone();
        let launched = Arc::clone(&running.launched);
        Box::pin(async move {
            let exit = tokio::time::timeout(msg.within, exit_rx.wait_for(Option::is_some))
                .await
                .ok()?
                .ok()?
                .clone()?;
            Some(VmExitReport {
                exit: exit.to_string(),
                console: launched.console_tail(CONSOLE_LINES),
            })
        })
    }
}

impl Handler<GetVmInfo> for VmActor {
    type Result = MessageResult<GetVmInfo>;

    fn handle(&mut self, _msg: GetVmInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.info())
    }
}

impl Handler<AgentUnresponsive> for VmActor {
    type Result = ();

    fn handle(&mut self, msg: AgentUnresponsive, _ctx: &mut Self::Context) {
        if self.core.state() == VmState::Running {
            self.notify_owner(VmEventKind::AgentUnresponsive {
                last_error: msg.last_error,
            });
        }
    }
}

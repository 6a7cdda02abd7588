//! Persistent workspaces: one actor per workspace, owning its record, its
//! files and its VM.
//!
//! The actor is a thin shell. The rules live in [`core`] (states, counters,
//! updates), the host files in [`files`] and [`snapshot`], the VM handling in
//! [`vm`], guest paths in [`paths`]; each operation's work is an async
//! function in `ops/` that the actor runs without blocking itself, so a long
//! exec never holds up a status call. Record changes are made synchronously
//! in the actor and persisted in order by [`writer`].
//!
//! This actor lives in the supervisor crate rather than `pyro-actors`
//! because it composes supervisor services (the record store, the
//! environment manager, the guest bundle); the VM, vsock and file libraries
//! it drives are in `pyro-actors`.
//!
//! When the VM dies unasked, the workspace's failure policy applies:
//! `restart` boots it again on the same disk, `reset` recreates the disk
//! from the baseline, `stop` marks it stopped with the error. Once the
//! workspace runs again, `last_error` is cleared (the failure stays in the
//! supervisor log).
//!
//! While a start, stop, reset or recovery runs, the API first sends
//! [`messages::AwaitSettled`]: the actor queues the caller (without
//! blocking itself) and answers when the operation ends, so an exec right
//! after a supervisor restart waits for the workspace's boot instead of
//! failing. A delete cancels a boot under way and then deletes.
//!
//! After a supervisor restart, a workspace that was running resumes as
//! soon as its actor starts (see [`resume_all`]); on shutdown the root
//! sends [`messages::Suspend`], after which failures (the root cancels
//! boots under way) are not recorded, so the next supervisor resumes it.

pub mod core;
pub mod create;
pub mod files;
pub mod messages;
mod ops;
pub mod paths;
pub mod secrets;
pub mod service;
mod sessions;
pub mod shell;
pub mod snapshot;
pub mod vm;
pub mod writer;

use std::collections::HashSet;

use actix::prelude::*;
use pyro_actors::vm::{VmEvent, VmEventKind};
use pyro_sdk::api::workspace::{
    is_simple_name, DeleteResult, DiffResult, DiskExportResult, ExecEvent, ExportResult,
    FailurePolicy, ListResult, LogEntry, LogList, PatchResult, ReadResult, ResetInfo, ResetResult,
    SnapshotDeleted, SnapshotInfo, SnapshotList, SyncPushResult, WorkspaceInfo, WorkspaceState,
    WriteResult,
};

use self::core::{rfc3339, Lifecycle, Plan, SettleWaiters, Settled, WorkspaceCore};
use self::files::WorkspaceDir;
use self::messages::*;
use self::secrets::{SecretStore, SecretStoreActor};
use self::vm::WorkspaceVm;
use self::writer::{RecordWriter, StoreWrite};
use crate::error::SupervisorError;
use crate::root::{ForgetWorkspace, StopWorkspaceVms};
use crate::runtime::Runtime;
use crate::store::{SnapshotKind, SnapshotRecord, WithStore, WorkspaceRecord};
use pyro_actors::secrets::redactor::Redactor;

/// One workspace.
#[derive(Debug)]
pub struct WorkspaceActor {
    core: WorkspaceCore,
    runtime: Runtime,
    dir: WorkspaceDir,
    writer: RecordWriter,
    vm: Option<WorkspaceVm>,
    pending_snapshots: HashSet<String>,
    secrets: Addr<SecretStoreActor>,
    redactor: Redactor,
    shells: std::collections::BTreeMap<String, Addr<shell::ShellActor>>,
    services: std::collections::BTreeMap<String, Addr<service::ServiceActor>>,
    service_states: std::collections::BTreeMap<String, &'static str>,
    /// Callers waiting for the lifecycle operation under way to end.
    waiters: SettleWaiters,
    /// Resume (adopt or boot) as soon as the actor starts.
    resume: bool,
    /// The supervisor is shutting down: failures are no longer recorded.
    suspended: bool,
    /// A delete cancelled the boot under way: its failure is no error.
    boot_cancelled: bool,
}

/// Time, beyond the boot timeout, that callers wait for a lifecycle
/// operation (stopping the old VM, restoring a snapshot, ...).
const SETTLE_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

impl WorkspaceActor {
    /// An actor for `record` with its secrets.
    pub fn new(record: WorkspaceRecord, runtime: Runtime, secrets: SecretStore) -> Self {
        let dir = WorkspaceDir::new(&runtime.settings.paths.data_dir, &record.id);
        let writer = RecordWriter::spawn(runtime.store.clone());
        let redactor = secrets.redactor().clone();
        Self {
            core: WorkspaceCore::new(record),
            runtime,
            dir,
            writer,
            vm: None,
            pending_snapshots: HashSet::new(),
            secrets: SecretStoreActor::new(secrets).start(),
            redactor,
            shells: Default::default(),
            services: Default::default(),
            service_states: Default::default(),
            waiters: SettleWaiters::default(),
            resume: false,
            suspended: false,
            boot_cancelled: false,
        }
    }

    /// Makes the actor resume the workspace as soon as it starts: take over
    /// the VM a previous supervisor left running, else boot it again. Until
    /// that ends, the workspace is `starting` and callers wait for it.
    #[must_use]
    pub fn resuming(mut self) -> Self {
        self.resume = true;
        self
    }

    /// Ends the lifecycle operation in `state`, saves, and tells the
    /// callers that waited for it how it went.
    fn finish(&mut self, state: WorkspaceState, error: Option<String>, outcome: &Settled) {
        self.core.finish(state, error);
        self.save();
        self.waiters.settle(outcome);
    }

    /// How long callers wait for a lifecycle operation to end.
    fn settle_bound(&self) -> std::time::Duration {
        self.runtime.settings.boot_timeout + SETTLE_MARGIN
    }

    fn save(&mut self) {
        self.sync_vm();
        self.writer
            .write(StoreWrite::Save(self.core.record().clone()));
    }

    /// Puts the running VM's id in the record.
    fn sync_vm(&mut self) {
        self.core
            .set_current_vm(self.vm.as_ref().map(|vm| vm.vm_id.clone()));
    }

    fn info(&self) -> WorkspaceInfo {
        let (running, total) = self.service_counts();
        self.core.info(running, total)
    }

    /// The running VM's address, if the workspace may run data operations.
    fn running_vm(
        &self,
        action: &'static str,
    ) -> Result<Addr<pyro_actors::vm::VmActor>, SupervisorError> {
        self.core.require_started(action)?;
        self.vm
            .as_ref()
            .map(|vm| vm.addr.clone())
            .ok_or_else(|| SupervisorError::WorkspaceState {
                workspace_id: self.core.id().to_owned(),
                state: self.core.state().as_str(),
                action,
                needs: "started",
            })
    }

    /// Runs a data operation against the running VM: checks the state,
    /// records the activity, and does the work without blocking the actor.
    fn data_op<T, Fut>(
        &mut self,
        action: &'static str,
        work: impl FnOnce(Addr<pyro_actors::vm::VmActor>) -> Fut,
    ) -> ResponseFuture<Result<T, SupervisorError>>
    where
        Fut: std::future::Future<Output = Result<T, SupervisorError>> + 'static,
        T: 'static,
    {
        match self.running_vm(action) {
            Err(err) => Box::pin(async move { Err(err) }),
            Ok(addr) => {
                self.core.touch();
                self.save();
                Box::pin(work(addr))
            }
        }
    }

    /// Boots the VM (and optionally restores a snapshot into a fresh disk),
    /// then settles the lifecycle operation.
    fn boot_then_finish(
        &mut self,
        ctx: &mut Context<Self>,
        restore: Option<ops::Restore>,
    ) -> ResponseActFuture<Self, Result<Option<ops::Restored>, SupervisorError>> {
        self.sessions_vm_gone(if restore.is_some() {
            sessions::VmGone::Removed
        } else {
            sessions::VmGone::Stopped
        });
        let old_vm = self.vm.take();
        let runtime = self.runtime.clone();
        let record = self.core.record().clone();
        let dir = self.dir.clone();
        let owner = ctx.address().recipient::<VmEvent>();
        let secrets = self.secrets.clone();
        let work = async move {
            if let Some(old) = old_vm {
                vm::shut_down(old).await;
            }
            if let Some(restore) = &restore {
                ops::recreate_disk(&runtime, &dir, record.disk_mib, restore).await?;
            }
            ops::bring_up(&runtime, &record, &dir, owner, &secrets, restore.as_ref()).await
        };
        Box::pin(work.into_actor(self).map(|result, act, _ctx| match result {
            Ok((booted, restored)) => {
                act.boot_cancelled = false;
                act.vm = Some(booted);
                act.sessions_vm_back();
                act.finish(WorkspaceState::Started, None, &Ok(()));
                Ok(restored)
            }
            Err(err) => {
                if act.suspended {
                    // The supervisor is shutting down and cancelled the
                    // boot: keep the record as it is, so the next supervisor
                    // resumes the workspace.
                    act.core.abandon();
                    act.waiters.settle(&Err(err.to_body()));
                } else if std::mem::take(&mut act.boot_cancelled) {
                    // A delete cancelled it: the delete, waiting among the
                    // waiters, goes on now that the workspace has settled.
                    act.core.finish(WorkspaceState::Stopped, None);
                    act.save();
                    act.waiters.settle(&Err(err.to_body()));
                } else {
                    let error = act.redactor.redact_str(&err.to_string());
                    act.finish(WorkspaceState::Stopped, Some(error), &Err(err.to_body()));
                }
                Err(err)
            }
        }))
    }

    /// Resumes the workspace after a supervisor restart: takes over the VM
    /// if it still runs (with its shells), else boots it again.
    fn resume(&mut self, ctx: &mut Context<Self>) {
        if let Err(err) = self.core.begin(Lifecycle::Start) {
            tracing::error!(workspace_id = %self.core.id(), error = %err, "cannot resume the workspace");
            return;
        }
        // Saved as it is, not through `save` (which records `self.vm`, still
        // empty here): the VM to take over stays in the record, so a crash
        // during the takeover leaves it adoptable rather than leftover.
        self.writer
            .write(StoreWrite::Save(self.core.record().clone()));
        let Some(vm_id) = self.core.record().current_vm.clone() else {
            self.restore_services(ctx, None, &[]);
            let boot = self.boot_then_finish(ctx, None);
            ctx.spawn(boot.map(|result, act, _ctx| act.resumed(result.map(|_| ()))));
            return;
        };
        let runtime = self.runtime.clone();
        let record = self.core.record().clone();
        let dir = self.dir.clone();
        let owner = ctx.address().recipient::<VmEvent>();
        let adopt = async move {
            let vm = vm::adopt(&runtime, &record, &dir, owner, &vm_id).await?;
            let shells = vm::open(&vm.addr)
                .await?
                .shell_list()
                .await
                .unwrap_or_default();
            let services = vm::open(&vm.addr)
                .await?
                .service_list()
                .await
                .unwrap_or_default();
            Ok::<_, SupervisorError>((vm, shells, services))
        };
        ctx.spawn(adopt.into_actor(self).then(|adopted, act, ctx| {
            match adopted {
                Ok((vm, shells, services)) => {
                    act.restore_services(ctx, Some(&vm.addr), &services);
                    tracing::info!(workspace_id = %act.core.id(), vm_id = %vm.vm_id, shells = shells.len(), "took over the running workspace VM");
                    for shell in shells.into_iter().filter(|s| s.alive) {
                        let actor = shell::ShellActor::new(
                            act.core.id().to_owned(),
                            shell.shell_id.clone(),
                            paths::ROOT.to_owned(),
                            shell.cols,
                            shell.rows,
                            vm.addr.clone(),
                            &act.redactor,
                        )
                        .start();
                        act.shells.insert(shell.shell_id, actor);
                    }
                    act.vm = Some(vm);
                    act.finish(WorkspaceState::Started, None, &Ok(()));
                    act.resumed(Ok(()));
                    Box::pin(actix::fut::ready(())) as ResponseActFuture<Self, ()>
                }
                Err(err) if act.suspended || act.boot_cancelled => {
                    // Shutdown or a delete stopped the VM being taken over.
                    tracing::info!(workspace_id = %act.core.id(), error = %act.redactor.redact_str(&err.to_string()), "taking over the workspace VM was cancelled");
                    if act.suspended {
                        act.core.abandon();
                        act.waiters.settle(&Err(err.to_body()));
                    } else {
                        act.boot_cancelled = false;
                        act.core.finish(WorkspaceState::Stopped, None);
                        act.save();
                        act.waiters.settle(&Err(err.to_body()));
                    }
                    Box::pin(actix::fut::ready(()))
                }
                Err(err) => {
                    tracing::info!(workspace_id = %act.core.id(), error = %act.redactor.redact_str(&err.to_string()), "the workspace VM cannot be taken over; booting it again");
                    act.restore_services(ctx, None, &[]);
                    Box::pin(
                        act.boot_then_finish(ctx, None)
                            .map(|result, act, _ctx| act.resumed(result.map(|_| ()))),
                    )
                }
            }
        }));
    }

    fn resumed(&self, result: Result<(), SupervisorError>) {
        if let Err(err) = result {
            // Boot errors carry host and guest text, never command output.
            tracing::error!(workspace_id = %self.core.id(), error = %err, "could not boot the workspace again");
        }
    }

    /// Deletes the workspace. A start, reset or recovery under way is
    /// cancelled (its VM stopped) and a stop waited for first.
    fn delete(
        &mut self,
        reason: &'static str,
    ) -> ResponseActFuture<Self, Result<DeleteResult, SupervisorError>> {
        let id = self.core.id().to_owned();
        if self.core.settling() {
            let cancel = self.core.booting().then(|| {
                self.boot_cancelled = true;
                self.runtime.root.send(StopWorkspaceVms {
                    workspace_id: id.clone(),
                })
            });
            let waiter = self.waiters.wait();
            let bound = self.settle_bound();
            let state = self.core.state().as_str();
            tracing::info!(workspace_id = %id, state, reason, "deleting a workspace whose start or stop is under way; waiting for it");
            let wait = async move {
                if let Some(cancel) = cancel {
                    let _ = cancel.await;
                }
                tokio::time::timeout(bound, waiter).await.is_ok()
            };
            return Box::pin(wait.into_actor(self).then(move |settled, act, _ctx| {
                if settled && !act.core.settling() {
                    act.delete(reason)
                } else {
                    Box::pin(actix::fut::ready(Err(SupervisorError::StillBusy {
                        workspace_id: act.core.id().to_owned(),
                        state: act.core.state().as_str(),
                        seconds: bound.as_secs(),
                    })))
                }
            }));
        }
        let answer = DeleteResult {
            workspace_id: id.clone(),
            deleted: true,
            reason: reason.to_owned(),
        };
        match self.core.begin(Lifecycle::Delete) {
            Err(err) => return Box::pin(actix::fut::ready(Err(err))),
            Ok(Plan::AlreadyDone) => return Box::pin(actix::fut::ready(Ok(answer))),
            Ok(Plan::Proceed) => {}
        }
        tracing::info!(workspace_id = %id, reason, "deleting workspace");
        self.sessions_vm_gone(sessions::VmGone::Removed);
        let vm = self.vm.take();
        let dir = self.dir.clone();
        let writer = self.writer.clone();
        let root = self.runtime.root.clone();
        let secrets_dir = self.runtime.settings.secrets_dir();
        let work = async move {
            if let Some(vm) = vm {
                vm::shut_down(vm).await;
            }
            let remove = dir.clone();
            crate::runner::blocking(move || remove.remove())
                .await?
                .map_err(|source| SupervisorError::io("removing", dir.root(), source))?;
            writer
                .write_and_wait(StoreWrite::Delete(id.clone()))
                .await?;
            SecretStore::remove(&secrets_dir, &id);
            let _ = root.send(ForgetWorkspace { workspace_id: id }).await;
            Ok(answer)
        };
        Box::pin(work.into_actor(self).map(|result, act, ctx| {
            if result.is_ok() {
                // Callers still waiting learn that the workspace is gone
                // when the actor ends.
                ctx.stop();
            } else {
                // Let them try; they will get the state's own error.
                act.waiters.settle(&Ok(()));
            }
            result
        }))
    }
}

impl Actor for WorkspaceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if std::mem::take(&mut self.resume) {
            self.resume(ctx);
        } else {
            // A stopped workspace from an earlier supervisor: its services
            // are known (stopped), and `always` ones come back on start.
            self.restore_services(ctx, None, &[]);
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(vm) = self.vm.take() {
            actix::spawn(vm::shut_down(vm));
        }
    }
}

impl Handler<GetInfo> for WorkspaceActor {
    type Result = MessageResult<GetInfo>;

    fn handle(&mut self, _msg: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<secrets::GetRedactor> for WorkspaceActor {
    type Result = MessageResult<secrets::GetRedactor>;

    fn handle(&mut self, _msg: secrets::GetRedactor, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.redactor.clone())
    }
}

impl Handler<GetRecord> for WorkspaceActor {
    type Result = MessageResult<GetRecord>;

    fn handle(&mut self, _msg: GetRecord, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.record().clone())
    }
}

impl Handler<AwaitSettled> for WorkspaceActor {
    type Result = ResponseFuture<Result<(), SupervisorError>>;

    fn handle(&mut self, _msg: AwaitSettled, _ctx: &mut Self::Context) -> Self::Result {
        if !self.core.settling() {
            return Box::pin(async { Ok(()) });
        }
        let waiter = self.waiters.wait();
        let workspace_id = self.core.id().to_owned();
        let state = self.core.state().as_str();
        let bound = self.settle_bound();
        Box::pin(async move {
            match tokio::time::timeout(bound, waiter).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(body))) => Err(SupervisorError::StartFailed {
                    workspace_id,
                    body: Box::new(body),
                }),
                // The actor ended: the workspace was deleted meanwhile.
                Ok(Err(_)) => Err(SupervisorError::UnknownWorkspace { workspace_id }),
                Err(_) => Err(SupervisorError::StillBusy {
                    workspace_id,
                    state,
                    seconds: bound.as_secs(),
                }),
            }
        })
    }
}

impl Handler<Boot> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<WorkspaceInfo, SupervisorError>>;

    fn handle(&mut self, _msg: Boot, ctx: &mut Self::Context) -> Self::Result {
        if self.core.state() != WorkspaceState::Creating {
            let info = self.info();
            return Box::pin(actix::fut::ready(Ok(info)));
        }
        let runtime = self.runtime.clone();
        let record = self.core.record().clone();
        let dir = self.dir.clone();
        let owner = ctx.address().recipient::<VmEvent>();
        let secrets = self.secrets.clone();
        let work = async move {
            let restore = ops::Restore::snapshot("baseline");
            let (booted, _) =
                ops::bring_up(&runtime, &record, &dir, owner, &secrets, Some(&restore)).await?;
            Ok::<_, SupervisorError>(booted)
        };
        Box::pin(work.into_actor(self).then(|result, act, _ctx| {
            let outcome = result.map(|booted| {
                act.vm = Some(booted);
                act.core.created();
                act.sync_vm();
            });
            let writer = act.writer.clone();
            let record = act.core.record().clone();
            let info = act.info();
            async move {
                outcome?;
                writer.write_and_wait(StoreWrite::Save(record)).await?;
                Ok(info)
            }
            .into_actor(act)
        }))
    }
}

impl Handler<Exec> for WorkspaceActor {
    type Result = ();

    fn handle(&mut self, msg: Exec, ctx: &mut Self::Context) {
        let events = msg.events.clone();
        let prepared = self
            .running_vm("exec")
            .and_then(|addr| ops::exec::prepare(&msg.request).map(|plan| (addr, plan)));
        let (addr, plan) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                actix::spawn(async move {
                    let _ = events.send(ExecEvent::Error(err.to_body())).await;
                });
                return;
            }
        };
        self.core.touch();
        let run = ops::exec::run(
            addr,
            plan,
            msg.events,
            self.secrets.clone(),
            self.redactor.clone(),
        );
        ctx.spawn(run.into_actor(self).then(|outcome, act, _ctx| {
            let finish = outcome.map(|finished| {
                let sequence = act.core.next_sequence();
                let (summary, command) = finished.record(act.core.id(), sequence);
                act.core.command_finished(summary);
                (finished, command, act.core.record().clone())
            });
            let dir = act.dir.clone();
            let writer = act.writer.clone();
            let base = act.info();
            async move {
                match finish {
                    Ok((finished, command, record)) => {
                        ops::exec::finish(finished, command, record, &base, &dir, &writer).await;
                    }
                    Err(abandoned) => abandoned.report().await,
                }
            }
            .into_actor(act)
        }));
    }
}

impl Handler<SyncPush> for WorkspaceActor {
    type Result = ResponseFuture<Result<SyncPushResult, SupervisorError>>;

    fn handle(&mut self, msg: SyncPush, _ctx: &mut Self::Context) -> Self::Result {
        let (dir, id) = (self.dir.clone(), self.core.id().to_owned());
        self.data_op("sync push", |vm| {
            ops::transfer::sync_push(vm, dir, id, msg.0)
        })
    }
}

impl Handler<Export> for WorkspaceActor {
    type Result = ResponseFuture<Result<ExportResult, SupervisorError>>;

    fn handle(&mut self, msg: Export, _ctx: &mut Self::Context) -> Self::Result {
        let (dir, id) = (self.dir.clone(), self.core.id().to_owned());
        self.data_op("export", |vm| ops::transfer::export(vm, dir, id, msg.0))
    }
}

impl Handler<ListFiles> for WorkspaceActor {
    type Result = ResponseFuture<Result<ListResult, SupervisorError>>;

    fn handle(&mut self, msg: ListFiles, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.data_op("file list", |vm| ops::inspect::list(vm, id, msg.0))
    }
}

impl Handler<ReadFile> for WorkspaceActor {
    type Result = ResponseFuture<Result<ReadResult, SupervisorError>>;

    fn handle(&mut self, msg: ReadFile, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.data_op("file read", |vm| ops::inspect::read(vm, id, msg.0))
    }
}

impl Handler<WriteFile> for WorkspaceActor {
    type Result = ResponseFuture<Result<WriteResult, SupervisorError>>;

    fn handle(&mut self, msg: WriteFile, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.data_op("file write", |vm| ops::modify::write(vm, id, msg.0))
    }
}

impl Handler<ApplyPatch> for WorkspaceActor {
    type Result = ResponseFuture<Result<PatchResult, SupervisorError>>;

    fn handle(&mut self, msg: ApplyPatch, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.data_op("patch apply", |vm| ops::modify::apply_patch(vm, id, msg.0))
    }
}

impl Handler<Diff> for WorkspaceActor {
    type Result = ResponseFuture<Result<DiffResult, SupervisorError>>;

    fn handle(&mut self, msg: Diff, _ctx: &mut Self::Context) -> Self::Result {
        let (dir, id) = (self.dir.clone(), self.core.id().to_owned());
        let against = msg.0.against.unwrap_or_else(|| "baseline".to_owned());
        let store = self.runtime.store.clone();
        self.data_op("diff", move |vm| async move {
            require_snapshot(&store, &id, &against).await?;
            ops::inspect::diff(vm, dir, id, against).await
        })
    }
}

impl Handler<CreateSnapshot> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<SnapshotInfo, SupervisorError>>;

    fn handle(&mut self, msg: CreateSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.0.name;
        let check = if name == "baseline" {
            Err(SupervisorError::BaselineReserved)
        } else if !is_simple_name(&name) {
            Err(SupervisorError::InvalidRequest {
                message: format!(
                    "snapshot name {name:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
                ),
            })
        } else if self.pending_snapshots.contains(&name) {
            Err(SupervisorError::SnapshotExists {
                workspace_id: self.core.id().to_owned(),
                name: name.clone(),
            })
        } else {
            self.running_vm("snapshot create")
        };
        let vm = match check {
            Ok(vm) => vm,
            Err(err) => return Box::pin(actix::fut::ready(Err(err))),
        };
        self.pending_snapshots.insert(name.clone());
        let (dir, id, store) = (
            self.dir.clone(),
            self.core.id().to_owned(),
            self.runtime.store.clone(),
        );
        let writer = self.writer.clone();
        let pending = name.clone();
        let work = async move {
            let lookup = (id.clone(), name.clone());
            let exists = store
                .send(WithStore::new(move |store| {
                    store.snapshot(&lookup.0, &lookup.1)
                }))
                .await
                .map_err(|_| store_gone())??;
            if exists.is_some() {
                return Err(SupervisorError::SnapshotExists {
                    workspace_id: id,
                    name,
                });
            }
            let totals = ops::inspect::snapshot(vm, dir, name.clone()).await?;
            let record = SnapshotRecord {
                workspace_id: id,
                name,
                kind: SnapshotKind::Named,
                created_at_ms: core::now_ms(),
                entry_count: totals.entry_count,
                bytes_total: totals.bytes_total,
                bytes_stored: totals.bytes_stored,
            };
            writer
                .write_and_wait(StoreWrite::InsertSnapshot(record.clone()))
                .await?;
            Ok(snapshot_info(&record))
        };
        Box::pin(work.into_actor(self).map(move |result, act, _ctx| {
            act.pending_snapshots.remove(&pending);
            result
        }))
    }
}

impl Handler<ListSnapshots> for WorkspaceActor {
    type Result = ResponseFuture<Result<SnapshotList, SupervisorError>>;

    fn handle(&mut self, _msg: ListSnapshots, _ctx: &mut Self::Context) -> Self::Result {
        let (store, id) = (self.runtime.store.clone(), self.core.id().to_owned());
        Box::pin(async move {
            let query = id.clone();
            let records = store
                .send(WithStore::new(move |store| store.snapshots(&query)))
                .await
                .map_err(|_| store_gone())??;
            let snapshots: Vec<SnapshotInfo> = records.iter().map(snapshot_info).collect();
            Ok(SnapshotList {
                workspace_id: id,
                count: snapshots.len(),
                snapshots,
            })
        })
    }
}

impl Handler<DeleteSnapshot> for WorkspaceActor {
    type Result = ResponseFuture<Result<SnapshotDeleted, SupervisorError>>;

    fn handle(&mut self, msg: DeleteSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.0;
        let (store, id, dir, writer) = (
            self.runtime.store.clone(),
            self.core.id().to_owned(),
            self.dir.clone(),
            self.writer.clone(),
        );
        Box::pin(async move {
            if name == "baseline" {
                return Err(SupervisorError::BaselineReserved);
            }
            require_snapshot(&store, &id, &name).await?;
            writer
                .write_and_wait(StoreWrite::DeleteSnapshot {
                    workspace_id: id.clone(),
                    name: name.clone(),
                })
                .await?;
            let query = id.clone();
            let remaining: Vec<String> = store
                .send(WithStore::new(move |store| store.snapshots(&query)))
                .await
                .map_err(|_| store_gone())??
                .into_iter()
                .map(|s| s.name)
                .collect();
            let gc_name = name.clone();
            crate::runner::blocking(move || dir.delete_manifest(&gc_name, &remaining))
                .await?
                .map_err(|source| {
                    SupervisorError::io("removing the files of snapshot", &name, source)
                })?;
            Ok(SnapshotDeleted {
                workspace_id: id,
                snapshot_name: name,
                deleted: true,
            })
        })
    }
}

impl Handler<Reset> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<ResetResult, SupervisorError>>;

    fn handle(&mut self, msg: Reset, _ctx: &mut Self::Context) -> Self::Result {
        let name = msg.0.snapshot.unwrap_or_else(|| "baseline".to_owned());
        let (store, id) = (self.runtime.store.clone(), self.core.id().to_owned());
        let lookup = name.clone();
        let check = async move { require_snapshot(&store, &id, &lookup).await };
        Box::pin(check.into_actor(self).then(move |found, act, ctx| {
            let started = found
                .and_then(|record| act.core.begin(Lifecycle::Reset).map(|plan| (record, plan)));
            let record = match started {
                Ok((record, _plan)) => record,
                Err(err) => {
                    return Box::pin(actix::fut::ready(Err(err))) as ResponseActFuture<Self, _>
                }
            };
            act.save();
            let restore = ops::Restore::snapshot(&name);
            Box::pin(
                act.boot_then_finish(ctx, Some(restore))
                    .then(move |booted, act, _ctx| {
                        let restored = booted.map(|restored| {
                            restored.unwrap_or(ops::Restored {
                                entry_count: 0,
                                bytes_written: 0,
                            })
                        });
                        if restored.is_ok() {
                            act.core.reset_done();
                        }
                        let writer = act.writer.clone();
                        let dir = act.dir.clone();
                        let core_record = act.core.record().clone();
                        let info = act.info();
                        async move {
                            let restored = restored?;
                            writer
                                .write_and_wait(StoreWrite::ClearCommands(core_record))
                                .await?;
                            let _ = crate::runner::blocking(move || dir.clear_outputs()).await;
                            Ok(ResetResult {
                                workspace: info,
                                workspace_reset: ResetInfo {
                                    snapshot_name: record.name.clone(),
                                    kind: record.kind.as_str().to_owned(),
                                    destination: paths::ROOT.to_owned(),
                                    entry_count: restored.entry_count,
                                    bytes_written: restored.bytes_written,
                                },
                            })
                        }
                        .into_actor(act)
                    }),
            )
        }))
    }
}

impl WorkspaceActor {
    /// Runs an offline operation on the stopped workspace's disks, on a
    /// blocking thread.
    fn offline_op<T: Send + 'static>(
        &mut self,
        action: &'static str,
        work: impl FnOnce(
                &WorkspaceDir,
                Option<pyro_actors::disk::OverlayDisks>,
            ) -> Result<T, SupervisorError>
            + Send
            + 'static,
        needs_environment: bool,
    ) -> ResponseFuture<Result<T, SupervisorError>> {
        if let Err(err) = self.core.require_stopped(action) {
            return Box::pin(async move { Err(err) });
        }
        let (dir, runtime) = (self.dir.clone(), self.runtime.clone());
        let environment = self.core.record().environment.clone();
        Box::pin(async move {
            let disks = if needs_environment {
                let env = vm::environment(&runtime, &environment).await?;
                Some(pyro_actors::disk::OverlayDisks {
                    upper_image: dir.disk(),
                    lower_image: env.rootfs,
                })
            } else {
                None
            };
            crate::runner::blocking(move || work(&dir, disks)).await?
        })
    }
}

impl Handler<DiskExport> for WorkspaceActor {
    type Result = ResponseFuture<Result<DiskExportResult, SupervisorError>>;

    fn handle(&mut self, msg: DiskExport, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.offline_op(
            "disk export",
            move |dir, _| ops::offline::export(dir, id, &msg.0),
            false,
        )
    }
}

impl Handler<DiskList> for WorkspaceActor {
    type Result = ResponseFuture<Result<ListResult, SupervisorError>>;

    fn handle(&mut self, msg: DiskList, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.offline_op(
            "disk list",
            move |_, disks| match disks {
                Some(disks) => ops::offline::list(&disks, id, &msg.0),
                None => Err(disks_missing()),
            },
            true,
        )
    }
}

impl Handler<DiskRead> for WorkspaceActor {
    type Result = ResponseFuture<Result<ReadResult, SupervisorError>>;

    fn handle(&mut self, msg: DiskRead, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        self.offline_op(
            "disk read",
            move |_, disks| match disks {
                Some(disks) => ops::offline::read(&disks, id, &msg.0),
                None => Err(disks_missing()),
            },
            true,
        )
    }
}

fn disks_missing() -> SupervisorError {
    SupervisorError::ActorGone {
        what: "the disk images".to_owned(),
    }
}

impl Handler<Update> for WorkspaceActor {
    type Result = ResponseFuture<Result<WorkspaceInfo, SupervisorError>>;

    fn handle(&mut self, msg: Update, _ctx: &mut Self::Context) -> Self::Result {
        let result = self.core.update(&msg.0);
        let writer = self.writer.clone();
        let record = self.core.record().clone();
        let info = self.info();
        Box::pin(async move {
            result?;
            writer.write_and_wait(StoreWrite::Save(record)).await?;
            Ok(info)
        })
    }
}

impl Handler<Logs> for WorkspaceActor {
    type Result = ResponseFuture<Result<LogList, SupervisorError>>;

    fn handle(&mut self, _msg: Logs, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.runtime.store.clone();
        let id = self.core.id().to_owned();
        let dir = self.dir.clone();
        Box::pin(async move {
            let query_id = id.clone();
            let commands = store
                .send(crate::store::WithStore::new(move |store| {
                    store.commands(&query_id)
                }))
                .await
                .map_err(|_| SupervisorError::ActorGone {
                    what: "the record store".to_owned(),
                })??;
            let entries = crate::runner::blocking(move || {
                commands
                    .into_iter()
                    .map(|command| {
                        let (stdout, stderr) = dir.read_output(command.sequence);
                        LogEntry {
                            sequence: command.sequence,
                            command: command.command,
                            cwd: command.cwd,
                            exit_code: command.exit_code,
                            duration_ms: command.duration_ms,
                            timed_out: command.timed_out,
                            recorded_at: rfc3339(command.recorded_at_ms),
                            stdout: String::from_utf8_lossy(&stdout).into_owned(),
                            stderr: String::from_utf8_lossy(&stderr).into_owned(),
                            output_truncated: command.output_truncated,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            Ok(LogList {
                workspace_id: id,
                count: entries.len(),
                entries,
            })
        })
    }
}

impl Handler<Stop> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<WorkspaceInfo, SupervisorError>>;

    fn handle(&mut self, _msg: Stop, _ctx: &mut Self::Context) -> Self::Result {
        match self.core.begin(Lifecycle::Stop) {
            Err(err) => Box::pin(actix::fut::ready(Err(err))),
            Ok(Plan::AlreadyDone) => {
                let info = self.info();
                Box::pin(actix::fut::ready(Ok(info)))
            }
            Ok(Plan::Proceed) => {
                self.sessions_vm_gone(sessions::VmGone::Stopped);
                let vm = self.vm.take();
                Box::pin(
                    async move {
                        if let Some(vm) = vm {
                            vm::shut_down(vm).await;
                        }
                    }
                    .into_actor(self)
                    .map(|(), act, _ctx| {
                        act.finish(WorkspaceState::Stopped, None, &Ok(()));
                        Ok(act.info())
                    }),
                )
            }
        }
    }
}

impl Handler<Start> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<WorkspaceInfo, SupervisorError>>;

    fn handle(&mut self, _msg: Start, ctx: &mut Self::Context) -> Self::Result {
        match self.core.begin(Lifecycle::Start) {
            Err(err) => Box::pin(actix::fut::ready(Err(err))),
            Ok(Plan::AlreadyDone) => {
                let info = self.info();
                Box::pin(actix::fut::ready(Ok(info)))
            }
            Ok(Plan::Proceed) => {
                self.save();
                Box::pin(
                    self.boot_then_finish(ctx, None)
                        .map(|result, act, _ctx| result.map(|_| act.info())),
                )
            }
        }
    }
}

impl Handler<Delete> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<DeleteResult, SupervisorError>>;

    fn handle(&mut self, msg: Delete, _ctx: &mut Self::Context) -> Self::Result {
        self.delete(msg.reason)
    }
}

impl Handler<Suspend> for WorkspaceActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Suspend, _ctx: &mut Self::Context) -> Self::Result {
        self.suspended = true;
        self.sessions_vm_gone(sessions::VmGone::Stopped);
        let vm = self.vm.take();
        Box::pin(async move {
            if let Some(vm) = vm {
                vm::shut_down(vm).await;
            }
        })
    }
}

impl Handler<VmEvent> for WorkspaceActor {
    type Result = ();

    fn handle(&mut self, msg: VmEvent, ctx: &mut Self::Context) {
        if self.suspended
            || self.vm.as_ref().map(|vm| vm.vm_id.as_str()) != Some(msg.vm_id.as_str())
        {
            return;
        }
        let error = match &msg.kind {
            VmEventKind::ExitedUnexpectedly { exit, .. } => {
                format!("the VM exited unexpectedly ({exit})")
            }
            VmEventKind::AgentUnresponsive { last_error } => {
                format!("the guest agent stopped answering ({last_error})")
            }
        };
        let policy = self.core.record().on_failure;
        tracing::warn!(workspace_id = %self.core.id(), %error, policy = policy.as_str(), "workspace VM failed");
        if !matches!(self.core.begin(Lifecycle::Recover), Ok(Plan::Proceed)) {
            // Another lifecycle operation is running; it owns the VM's fate.
            return;
        }
        if policy == FailurePolicy::Stop {
            self.sessions_vm_gone(sessions::VmGone::Stopped);
            let vm = self.vm.take();
            self.finish(WorkspaceState::Stopped, Some(error), &Ok(()));
            if let Some(vm) = vm {
                actix::spawn(vm::shut_down(vm));
            }
            return;
        }
        self.save();
        let reset = policy == FailurePolicy::Reset;
        let restore = reset.then(|| ops::Restore::snapshot("baseline"));
        let recovery = self.boot_then_finish(ctx, restore);
        ctx.spawn(recovery.map(move |result, act, _ctx| match result {
            Ok(_) => {
                if reset {
                    act.core.reset_done();
                    act.writer.write(StoreWrite::ClearCommands(act.core.record().clone()));
                    act.save();
                }
                // It is healthy again, so `last_error` was cleared; the
                // failure stays in the log.
                tracing::info!(workspace_id = %act.core.id(), policy = policy.as_str(), failure = %error, "workspace recovered");
            }
            Err(err) => {
                let error = act.redactor.redact_str(&err.to_string());
                tracing::error!(workspace_id = %act.core.id(), %error, "workspace recovery failed");
            }
        }));
    }
}

/// The API view of a snapshot record.
fn snapshot_info(record: &SnapshotRecord) -> SnapshotInfo {
    SnapshotInfo {
        workspace_id: record.workspace_id.clone(),
        snapshot_name: record.name.clone(),
        kind: record.kind.as_str().to_owned(),
        created_at: rfc3339(record.created_at_ms),
        entry_count: record.entry_count,
        bytes_written: record.bytes_total,
        bytes_stored: record.bytes_stored,
        deletable: record.kind == SnapshotKind::Named,
    }
}

fn store_gone() -> SupervisorError {
    SupervisorError::ActorGone {
        what: "the record store".to_owned(),
    }
}

/// The snapshot's record, or an error naming it.
async fn require_snapshot(
    store: &Addr<crate::store::StoreActor>,
    workspace_id: &str,
    name: &str,
) -> Result<SnapshotRecord, SupervisorError> {
    let (id, lookup) = (workspace_id.to_owned(), name.to_owned());
    store
        .send(WithStore::new(move |store| store.snapshot(&id, &lookup)))
        .await
        .map_err(|_| store_gone())??
        .ok_or_else(|| SupervisorError::UnknownSnapshot {
            workspace_id: workspace_id.to_owned(),
            name: name.to_owned(),
        })
}

/// Brings back every recorded workspace when the supervisor starts (see
/// [`core::at_start`]): workspaces that were running resume (their actor
/// takes over the VM if it survived, else boots it again, in the
/// background); stopped ones stay stopped; half-created or half-deleted
/// ones, and those whose time to live passed while no supervisor ran, are
/// removed without booting. `now_ms` must be the time the leftover VMs were
/// judged by, so an expired workspace's VM was killed, not kept to adopt.
pub async fn resume_all(runtime: &Runtime, now_ms: i64) -> Result<(), SupervisorError> {
    let records = runtime
        .store
        .send(crate::store::WithStore::new(|store| store.workspaces()))
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the record store".to_owned(),
        })??;
    for mut record in records {
        let id = record.id.clone();
        let was = record.state;
        let resume = match core::at_start(&record, now_ms) {
            core::AtStart::Remove(why) => {
                tracing::warn!(workspace_id = %id, state = was.as_str(), reason = why, "removing the workspace without booting it");
                remove_at_start(runtime, &id).await;
                continue;
            }
            core::AtStart::Resume => true,
            core::AtStart::Keep => false,
        };
        record.state = WorkspaceState::Stopped;
        let secrets = match SecretStore::load(&runtime.settings.secrets_dir(), &id) {
            Ok(secrets) => secrets,
            Err(err) => {
                tracing::error!(workspace_id = %id, error = %err, "cannot read the workspace's secrets; it comes back without them");
                SecretStore::default()
            }
        };
        let mut actor = WorkspaceActor::new(record, runtime.clone(), secrets);
        if resume {
            tracing::info!(workspace_id = %id, "resuming a workspace that was running");
            actor = actor.resuming();
        }
        let addr = actor.start();
        let _ = runtime
            .root
            .send(crate::root::RegisterWorkspace {
                workspace_id: id,
                addr,
            })
            .await;
    }
    Ok(())
}

/// Removes a workspace's files, record and secrets (no actor runs for it).
async fn remove_at_start(runtime: &Runtime, id: &str) {
    let dir = WorkspaceDir::new(&runtime.settings.paths.data_dir, id);
    let _ = crate::runner::blocking(move || dir.remove()).await;
    let remove = id.to_owned();
    let _ = runtime
        .store
        .send(crate::store::WithStore::new(move |store| {
            store.delete_workspace(&remove)
        }))
        .await;
    SecretStore::remove(&runtime.settings.secrets_dir(), id);
}

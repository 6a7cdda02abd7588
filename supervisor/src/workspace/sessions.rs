//! The workspace actor's shells and services: opening and starting them,
//! forwarding calls to their actors, and what happens to them when the
//! workspace's VM goes away (stop, failure, reset, delete) or comes back.

use std::collections::BTreeMap;

use actix::prelude::*;
use pyro_actors::vm::VmActor;
use pyro_guest_protocol::{ServiceInfo as GuestServiceInfo, ShellOpenRequest as GuestShellOpen};
use pyro_sdk::api::session::{
    ServiceInfo, ServiceList, ServiceLogs, ShellInfo, ShellList, ShellReadResult,
};
use tokio::sync::mpsc;

use super::messages::*;
use super::secrets::ResolveSecretEnv;
use super::service::{
    self, CollectLogs, FollowLogs, GetServiceInfo, LaunchService, RemoveService, ServiceActor,
    ServiceChanged, StopService, WorkspaceStarted, WorkspaceStopped,
};
use super::shell::{
    CloseShell, GetShellInfo, ReadShell, ResizeShell, ShellActor, SignalShell, WriteShell,
};
use super::{paths, vm, WorkspaceActor};
use crate::error::SupervisorError;
use crate::store::ServiceRecord;

/// What became of a workspace's sessions when its VM went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmGone {
    /// Stopped or died: services are kept (stopped) and may come back.
    Stopped,
    /// Reset or deleted: services are removed.
    Removed,
}

fn gone(what: &str) -> SupervisorError {
    SupervisorError::ActorGone {
        what: what.to_owned(),
    }
}

impl WorkspaceActor {
    /// Ends every shell and stops (or removes) every service.
    pub(super) fn sessions_vm_gone(&mut self, how: VmGone) {
        for (_, shell) in std::mem::take(&mut self.shells) {
            shell.do_send(super::shell::CloseShell);
        }
        match how {
            VmGone::Stopped => {
                for service in self.services.values() {
                    service.do_send(WorkspaceStopped);
                }
            }
            VmGone::Removed => {
                for (_, service) in std::mem::take(&mut self.services) {
                    service.do_send(RemoveService);
                }
                self.service_states.clear();
                self.core.forget_services();
            }
        }
    }

    /// Rebuilds the service actors of a workspace a previous supervisor
    /// ran, from the record's definitions: as `guest` (the guest's service
    /// list) reports them when the VM `vm` was taken over, else stopped
    /// until the workspace starts (then `always` ones come back).
    pub(super) fn restore_services(
        &mut self,
        ctx: &mut Context<Self>,
        vm: Option<&Addr<VmActor>>,
        guest: &[GuestServiceInfo],
    ) {
        let owner = ctx.address().recipient::<ServiceChanged>();
        for record in self.core.record().services.clone() {
            let name = record.request.name.clone();
            let reported = guest.iter().find(|s| s.name == name);
            match ServiceActor::restored(
                self.core.id().to_owned(),
                record,
                vm.cloned(),
                reported,
                owner.clone(),
                self.redactor.clone(),
            ) {
                Ok(actor) => {
                    self.service_states.insert(name.clone(), actor.state());
                    self.services.insert(name, actor.start());
                }
                Err(err) => {
                    tracing::warn!(workspace_id = %self.core.id(), service = %name, error = %err, "cannot restore the service");
                }
            }
        }
    }

    /// Tells the services the VM is back (`always` ones restart).
    pub(super) fn sessions_vm_back(&mut self) {
        if let Some(vm) = &self.vm {
            for service in self.services.values() {
                service.do_send(WorkspaceStarted(vm.addr.clone()));
            }
        }
    }

    /// Running and total service counts.
    pub(super) fn service_counts(&self) -> (u64, u64) {
        let running = self
            .service_states
            .values()
            .filter(|s| **s == "running")
            .count();
        (running as u64, self.service_states.len() as u64)
    }

    fn shell(&self, shell_id: &str) -> Result<Addr<ShellActor>, SupervisorError> {
        self.shells
            .get(shell_id)
            .filter(|addr| addr.connected())
            .cloned()
            .ok_or_else(|| SupervisorError::UnknownShell {
                workspace_id: self.core.id().to_owned(),
                shell_id: shell_id.to_owned(),
            })
    }

    fn service(&self, name: &str) -> Result<Addr<ServiceActor>, SupervisorError> {
        self.services
            .get(name)
            .filter(|addr| addr.connected())
            .cloned()
            .ok_or_else(|| SupervisorError::UnknownService {
                workspace_id: self.core.id().to_owned(),
                name: name.to_owned(),
            })
    }
}

impl Handler<OpenShell> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, msg: OpenShell, _ctx: &mut Self::Context) -> Self::Result {
        let request = msg.0;
        let prepared = request
            .validate()
            .map_err(|message| SupervisorError::InvalidRequest { message })
            .and_then(|()| self.running_vm("shell open"))
            .and_then(|vm| {
                Ok((
                    vm,
                    paths::resolve(request.cwd.as_deref().unwrap_or(paths::ROOT))?,
                ))
            });
        let (vm_addr, cwd) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => return Box::pin(actix::fut::ready(Err(err))),
        };
        self.core.touch();
        let secrets = self.secrets.clone();
        let shell_id = crate::ids::new_id();
        let (cols, rows) = (request.cols, request.rows);
        let open = {
            let (vm_addr, cwd, shell_id) = (vm_addr.clone(), cwd.clone(), shell_id.clone());
            async move {
                let env = secrets
                    .send(ResolveSecretEnv(request.secret_env))
                    .await
                    .map_err(|_| gone("the secret store"))??;
                vm::open(&vm_addr)
                    .await?
                    .shell_open(GuestShellOpen {
                        shell_id,
                        cwd,
                        cols,
                        rows,
                        env,
                    })
                    .await?;
                Ok::<(), SupervisorError>(())
            }
        };
        Box::pin(
            open.into_actor(self)
                .map(move |result, act, _ctx| {
                    result?;
                    let shell = ShellActor::new(
                        act.core.id().to_owned(),
                        shell_id.clone(),
                        cwd,
                        cols,
                        rows,
                        vm_addr,
                        &act.redactor,
                    )
                    .start();
                    act.shells.insert(shell_id, shell.clone());
                    Ok::<_, SupervisorError>(shell)
                })
                .then(|shell, act, _ctx| {
                    async move {
                        shell?
                            .send(GetShellInfo)
                            .await
                            .map_err(|_| gone("the shell"))
                    }
                    .into_actor(act)
                }),
        )
    }
}

impl Handler<ListShells> for WorkspaceActor {
    type Result = ResponseFuture<Result<ShellList, SupervisorError>>;

    fn handle(&mut self, _msg: ListShells, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        let shells: Vec<Addr<ShellActor>> = self.shells.values().cloned().collect();
        Box::pin(async move {
            let infos =
                futures_util::future::join_all(shells.iter().map(|s| s.send(GetShellInfo))).await;
            let mut shells: Vec<ShellInfo> = infos.into_iter().filter_map(Result::ok).collect();
            shells.sort_by(|a, b| a.started_at.cmp(&b.started_at));
            Ok(ShellList {
                workspace_id: id,
                count: shells.len(),
                shells,
            })
        })
    }
}

impl Handler<ReadShellOutput> for WorkspaceActor {
    type Result = ResponseFuture<Result<ShellReadResult, SupervisorError>>;

    fn handle(&mut self, msg: ReadShellOutput, _ctx: &mut Self::Context) -> Self::Result {
        let shell = self.shell(&msg.shell_id);
        Box::pin(async move {
            msg.request
                .validate()
                .map_err(|message| SupervisorError::InvalidRequest { message })?;
            shell?
                .send(ReadShell(msg.request))
                .await
                .map_err(|_| gone("the shell"))
        })
    }
}

impl Handler<ShellOp> for WorkspaceActor {
    type Result = ResponseFuture<Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, msg: ShellOp, _ctx: &mut Self::Context) -> Self::Result {
        let shell = self.shell(&msg.shell_id);
        if matches!(msg.command, ShellCommand::Close) {
            self.shells.remove(&msg.shell_id);
        }
        self.core.touch();
        Box::pin(async move {
            let shell = shell?;
            let answer = match msg.command {
                ShellCommand::Write(write) => {
                    let mut data = write.input.into_bytes();
                    if write.append_newline {
                        data.push(b'\n');
                    }
                    shell.send(WriteShell(data)).await
                }
                ShellCommand::Signal(signal) => shell.send(SignalShell(signal.signal)).await,
                ShellCommand::Resize(size) => {
                    size.validate()
                        .map_err(|message| SupervisorError::InvalidRequest { message })?;
                    shell
                        .send(ResizeShell {
                            cols: size.cols,
                            rows: size.rows,
                        })
                        .await
                }
                ShellCommand::Close => shell.send(CloseShell).await,
            };
            answer.map_err(|_| gone("the shell"))?
        })
    }
}

impl Handler<StartServiceCall> for WorkspaceActor {
    type Result = ResponseActFuture<Self, Result<ServiceInfo, SupervisorError>>;

    fn handle(&mut self, msg: StartServiceCall, ctx: &mut Self::Context) -> Self::Result {
        let request = msg.0;
        let name = request.name.clone();
        let checked = service::plan(&request).and_then(|planned| {
            let vm = self.running_vm("service start")?;
            if matches!(
                self.service_states.get(&name),
                Some(&"running" | &"starting")
            ) {
                return Err(SupervisorError::ServiceRunning {
                    workspace_id: self.core.id().to_owned(),
                    name: name.clone(),
                });
            }
            Ok((planned, vm))
        });
        let (planned, vm_addr) = match checked {
            Ok(checked) => checked,
            Err(err) => return Box::pin(actix::fut::ready(Err(err))),
        };
        self.core.touch();
        if let Some(old) = self.services.remove(&name) {
            // Not a removal: the guest's record and logs belong to the name,
            // and the new actor's launch takes them over (a removal racing
            // that launch could stop the new process).
            old.do_send(super::service::RetireService);
        }
        self.service_states.insert(name.clone(), "starting");
        let secrets = self.secrets.clone();
        let owner = ctx.address().recipient::<ServiceChanged>();
        let resolve = async move {
            let secret_env = secrets
                .send(ResolveSecretEnv(request.secret_env.clone()))
                .await
                .map_err(|_| gone("the secret store"))??;
            Ok::<_, SupervisorError>((request, secret_env))
        };
        Box::pin(resolve.into_actor(self).then(move |resolved, act, _ctx| {
            let started = resolved.map(|(request, secret_env)| {
                let mut env: Vec<(String, String)> = request
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                env.extend(secret_env);
                act.core.remember_service(ServiceRecord::of(&request));
                act.save();
                let actor = ServiceActor::new(
                    act.core.id().to_owned(),
                    request,
                    env,
                    planned,
                    Some(vm_addr),
                    owner,
                    act.redactor.clone(),
                )
                .start();
                act.services.insert(name.clone(), actor.clone());
                actor
            });
            if started.is_err() {
                act.service_states.remove(&name);
            }
            async move {
                started?
                    .send(LaunchService)
                    .await
                    .map_err(|_| gone("the service"))?
            }
            .into_actor(act)
        }))
    }
}

impl Handler<ServiceChanged> for WorkspaceActor {
    type Result = ();

    fn handle(&mut self, msg: ServiceChanged, _ctx: &mut Self::Context) {
        if self.services.contains_key(&msg.name) {
            self.service_states.insert(msg.name, msg.state);
        }
    }
}

impl Handler<ListServicesCall> for WorkspaceActor {
    type Result = ResponseFuture<Result<ServiceList, SupervisorError>>;

    fn handle(&mut self, _msg: ListServicesCall, _ctx: &mut Self::Context) -> Self::Result {
        let id = self.core.id().to_owned();
        let services: BTreeMap<String, Addr<ServiceActor>> = self.services.clone();
        Box::pin(async move {
            let infos =
                futures_util::future::join_all(services.values().map(|s| s.send(GetServiceInfo)))
                    .await;
            let services: Vec<ServiceInfo> = infos.into_iter().filter_map(Result::ok).collect();
            Ok(ServiceList {
                workspace_id: id,
                count: services.len(),
                running_count: services.iter().filter(|s| s.state == "running").count(),
                services,
            })
        })
    }
}

impl Handler<ServiceStatusCall> for WorkspaceActor {
    type Result = ResponseFuture<Result<ServiceInfo, SupervisorError>>;

    fn handle(&mut self, msg: ServiceStatusCall, _ctx: &mut Self::Context) -> Self::Result {
        let service = self.service(&msg.0);
        Box::pin(async move {
            service?
                .send(GetServiceInfo)
                .await
                .map_err(|_| gone("the service"))
        })
    }
}

impl Handler<StopServiceCall> for WorkspaceActor {
    type Result = ResponseFuture<Result<ServiceInfo, SupervisorError>>;

    fn handle(&mut self, msg: StopServiceCall, _ctx: &mut Self::Context) -> Self::Result {
        let service = self.service(&msg.0);
        Box::pin(async move {
            service?
                .send(StopService)
                .await
                .map_err(|_| gone("the service"))?
        })
    }
}

impl Handler<ServiceLogsCall> for WorkspaceActor {
    type Result = ResponseFuture<Result<ServiceLogs, SupervisorError>>;

    fn handle(&mut self, msg: ServiceLogsCall, _ctx: &mut Self::Context) -> Self::Result {
        let service = self.service(&msg.name);
        Box::pin(async move {
            service?
                .send(CollectLogs(msg.request))
                .await
                .map_err(|_| gone("the service"))?
        })
    }
}

impl Handler<FollowServiceLogsCall> for WorkspaceActor {
    type Result = ResponseFuture<Result<(), SupervisorError>>;

    fn handle(&mut self, msg: FollowServiceLogsCall, _ctx: &mut Self::Context) -> Self::Result {
        let service = self.service(&msg.name);
        let events: mpsc::Sender<_> = msg.events;
        Box::pin(async move {
            service?
                .send(FollowLogs {
                    request: msg.request,
                    events,
                })
                .await
                .map_err(|_| gone("the service"))
        })
    }
}

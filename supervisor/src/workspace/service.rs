//! One background service of a workspace.
//!
//! The guest agent runs the process, checks readiness and keeps the logs
//! (under `/run/pyro-services/`, outside `/workspace`). This actor holds the
//! definition (with its secret environment, in memory only), watches the
//! process over a long-lived connection, and applies the restart policy with
//! backoff. When the workspace stops, its services are `stopped` with
//! `workspace_stopped`; when it starts, `always` services come back.
//!
//! States: `starting` -> `running` -> `exited` (by itself), `stopped` (asked,
//! or the workspace stopped), `failed` (exited before ready, or readiness
//! timed out). An exit code is reported whenever the guest saw the process
//! end, `failed` ones included.
//!
//! Logs survive a restart: the guest keeps the previous run's log (its
//! last file, up to 4 MiB) ahead of the new run's, with a separator line on
//! stderr, so a crash loop still shows why the last run died. Removing the
//! service (workspace reset or delete) deletes them.
//!
//! Definitions outlive the supervisor: the workspace record keeps each
//! start request (without its secret environment mapping), and a new
//! supervisor rebuilds the actors with [`ServiceActor::restored`], taking
//! over the processes still running in an adopted VM. A restored service
//! that had a secret mapping is not launched again automatically.
//!
//! `logs --follow` ends when the guest's log stream does (the process
//! ended); its final status is sent once this actor has recorded how the
//! run ended (a stop's answer or a watch's exit arrives a little after the
//! log stream's end), waiting at most [`SETTLE_LIMIT`].

use std::time::{Duration, Instant};

use actix::prelude::*;
use pyro_actors::secrets::redactor::Redactor;
use pyro_actors::vm::VmActor;
use pyro_actors::vsock::session_ops::ServiceLogEvent as GuestLogEvent;
use pyro_guest_protocol::{
    CommandLine, OutputStream, Readiness, ServiceInfo as GuestServiceInfo,
    ServiceStartRequest as GuestStart, ServiceState, ServiceStopReason, Termination,
};
use pyro_sdk::api::session::{
    ReadinessInfo, RestartPolicy, ServiceInfo, ServiceLogEvent, ServiceLogs, ServiceLogsRequest,
    ServiceStartRequest,
};
use pyro_sdk::api::{CommandSpec, OutputChunk, StreamName, EXECUTION_MODE};
use tokio::sync::{mpsc, watch};

use super::core::{now_ms, rfc3339};
use super::{paths, vm};
use crate::error::SupervisorError;
use crate::store::ServiceRecord;

/// How long a stopped service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// First pause before a restart.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest pause before a restart.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How long a log follower waits for the end of the run to be recorded:
/// a stop's grace, the guest's wait after `SIGKILL`, and a margin.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// Which run a service is on, and where that run is, for log followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// Launches so far.
    run: u64,
    /// The state.
    state: &'static str,
}

impl Progress {
    /// Whether the run `followed`, seen `running` when a follower started,
    /// has come to rest: it ended (any state but running), or another run
    /// began.
    fn settled(self, followed: u64) -> bool {
        self.run != followed || self.state != "running"
    }
}

/// Told to the workspace whenever a service's state changes.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ServiceChanged {
    /// The service.
    pub name: String,
    /// Its state.
    pub state: &'static str,
}

/// One service.
#[derive(Debug)]
pub struct ServiceActor {
    workspace_id: String,
    request: ServiceStartRequest,
    env: Vec<(String, String)>,
    cwd: String,
    readiness: Option<Readiness>,
    readiness_info: Option<ReadinessInfo>,
    vm: Option<Addr<VmActor>>,
    owner: Recipient<ServiceChanged>,
    redactor: Redactor,
    state: &'static str,
    pid: Option<u32>,
    started_at_ms: Option<i64>,
    ready_at_ms: Option<i64>,
    ended_at_ms: Option<i64>,
    exit_code: Option<i32>,
    stop_reason: Option<String>,
    restart_count: u64,
    generation: u64,
    launched_at: Option<Instant>,
    backoff: Duration,
    pending_restart: Option<SpawnHandle>,
    progress: watch::Sender<Progress>,
    /// Whether it may be launched again (restart policy, workspace start):
    /// not when it was restored from a record and had a secret environment
    /// mapping, which records do not keep.
    relaunchable: bool,
}

/// Checks a start request and resolves its paths and readiness.
pub fn plan(
    request: &ServiceStartRequest,
) -> Result<(String, Option<Readiness>, Option<ReadinessInfo>), SupervisorError> {
    request
        .validate()
        .map_err(|message| SupervisorError::InvalidRequest { message })?;
    let cwd = paths::resolve(request.cwd.as_deref().unwrap_or(paths::ROOT))?;
    let readiness = match request.readiness() {
        None => None,
        Some(("file", target)) => Some(Readiness::File(paths::resolve(target)?)),
        Some(("tcp", target)) => {
            let (host, port) = target.rsplit_once(':').unwrap_or((target, "0"));
            Some(Readiness::Tcp {
                host: host.to_owned(),
                port: port.parse().unwrap_or(0),
            })
        }
        Some(("http", target)) => Some(Readiness::Http(target.to_owned())),
        Some((_, target)) => Some(Readiness::Command(CommandLine::Shell(target.to_owned()))),
    };
    let info = readiness.as_ref().map(|r| {
        let (kind, target) = match r {
            Readiness::File(path) => ("file", path.clone()),
            Readiness::Tcp { host, port } => ("tcp", format!("{host}:{port}")),
            Readiness::Http(url) => ("http", url.clone()),
            Readiness::Command(CommandLine::Shell(line)) => ("command", line.clone()),
            Readiness::Command(CommandLine::Argv(argv)) => ("command", argv.join(" ")),
        };
        ReadinessInfo {
            kind: kind.to_owned(),
            target,
        }
    });
    Ok((cwd, readiness, info))
}

impl ServiceActor {
    /// A service to be launched on `vm`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workspace_id: String,
        request: ServiceStartRequest,
        env: Vec<(String, String)>,
        planned: (String, Option<Readiness>, Option<ReadinessInfo>),
        vm: Option<Addr<VmActor>>,
        owner: Recipient<ServiceChanged>,
        redactor: Redactor,
    ) -> Self {
        let (cwd, readiness, readiness_info) = planned;
        Self {
            workspace_id,
            request,
            env,
            cwd,
            readiness,
            readiness_info,
            vm,
            owner,
            redactor,
            state: "starting",
            pid: None,
            started_at_ms: None,
            ready_at_ms: None,
            ended_at_ms: None,
            exit_code: None,
            stop_reason: None,
            restart_count: 0,
            generation: 0,
            launched_at: None,
            backoff: BACKOFF_MIN,
            pending_restart: None,
            progress: watch::Sender::new(Progress {
                run: 0,
                state: "starting",
            }),
            relaunchable: true,
        }
    }

    /// A service a previous supervisor started, rebuilt from its record:
    /// as the guest reports it (`guest`) when its VM was taken over
    /// (`vm`), else stopped until the workspace starts. A running one is
    /// watched again once the actor starts.
    pub fn restored(
        workspace_id: String,
        record: ServiceRecord,
        vm: Option<Addr<VmActor>>,
        guest: Option<&GuestServiceInfo>,
        owner: Recipient<ServiceChanged>,
        redactor: Redactor,
    ) -> Result<Self, SupervisorError> {
        let planned = plan(&record.request)?;
        let env = record
            .request
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let has_vm = vm.is_some();
        let mut actor = Self::new(
            workspace_id,
            record.request,
            env,
            planned,
            vm,
            owner,
            redactor,
        );
        actor.relaunchable = !record.used_secret_env;
        if record.used_secret_env && actor.request.restart != RestartPolicy::No {
            tracing::warn!(
                workspace_id = %actor.workspace_id,
                service = %actor.request.name,
                "the service maps secrets into its environment, a mapping no record keeps: \
                 it will not be restarted automatically; start it again to restart it"
            );
        }
        let state = match guest.filter(|_| has_vm) {
            Some(info) => {
                actor.pid = Some(info.pid);
                actor.started_at_ms = i64::try_from(info.started_at_ms).ok();
                actor.ready_at_ms = info
                    .ready_after_ms
                    .and_then(|ms| i64::try_from(info.started_at_ms.saturating_add(ms)).ok());
                actor.ended_at_ms = info.ended_at_ms.and_then(|ms| i64::try_from(ms).ok());
                actor.exit_code = info.exit.map(|e| e.exit_code);
                actor.stop_reason = info.stop_reason.map(reason_name);
                match info.state {
                    _ if info.alive && info.exit.is_none() => "running",
                    ServiceState::Failed => "failed",
                    ServiceState::Stopped => "stopped",
                    _ => "exited",
                }
            }
            None => {
                actor.vm = None;
                actor.stop_reason = Some("workspace_stopped".to_owned());
                "stopped"
            }
        };
        actor.state = state;
        actor.progress.send_modify(|p| p.state = state);
        Ok(actor)
    }

    /// Where it is in its life (`starting`, `running`, ...).
    pub fn state(&self) -> &'static str {
        self.state
    }

    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            workspace_id: self.workspace_id.clone(),
            service_name: self.request.name.clone(),
            state: self.state.to_owned(),
            command: self.redactor.redact_str(&self.request.command.display()),
            cwd: self.cwd.clone(),
            readiness: self.readiness_info.clone(),
            restart: self.request.restart,
            restart_count: self.restart_count,
            started_at: self.started_at_ms.map(rfc3339),
            ready_at: self.ready_at_ms.map(rfc3339),
            ended_at: self.ended_at_ms.map(rfc3339),
            exit_code: self.exit_code,
            pid: self.pid,
            stop_reason: self.stop_reason.clone(),
            execution_mode: EXECUTION_MODE.to_owned(),
        }
    }

    fn set_state(&mut self, state: &'static str) {
        self.state = state;
        self.progress.send_modify(|p| p.state = state);
        let owner = self.owner.clone();
        let message = ServiceChanged {
            name: self.request.name.clone(),
            state,
        };
        actix::spawn(async move {
            let _ = owner.send(message).await;
        });
    }

    fn guest_request(&self) -> GuestStart {
        GuestStart {
            name: self.request.name.clone(),
            command: match &self.request.command {
                CommandSpec::Argv(argv) => CommandLine::Argv(argv.clone()),
                CommandSpec::Shell(line) => CommandLine::Shell(line.clone()),
            },
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            readiness: self.readiness.clone(),
            ready_timeout_ms: self.request.ready_timeout_seconds.saturating_mul(1000),
            ready_interval_ms: self.request.ready_interval_ms,
        }
    }

    /// Starts the process; answers once it is ready, failed or timed out.
    fn launch(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ServiceInfo, SupervisorError>> {
        let Some(vm_addr) = self.vm.clone() else {
            return Box::pin(actix::fut::ready(Err(SupervisorError::WorkspaceState {
                workspace_id: self.workspace_id.clone(),
                state: "stopped",
                action: "service start",
                needs: "started",
            })));
        };
        self.pending_restart = None;
        self.generation += 1;
        let generation = self.generation;
        self.progress.send_modify(|p| p.run += 1);
        self.set_state("starting");
        self.pid = None;
        self.exit_code = None;
        self.stop_reason = None;
        self.ended_at_ms = None;
        self.ready_at_ms = None;
        self.started_at_ms = Some(now_ms());
        self.launched_at = Some(Instant::now());
        let request = self.guest_request();
        let name = request.name.clone();
        let work = async move {
            // What a previous run left behind (background children) is
            // stopped; the guest replaces its record and keeps its log.
            let _ = vm::open(&vm_addr)
                .await?
                .service_stop(&name, STOP_GRACE)
                .await;
            let started = vm::open(&vm_addr)
                .await?
                .service_start(request)
                .await
                .map_err(SupervisorError::from)?;
            // A run that never became ready has ended: how, the guest knows.
            let exit = match started.state {
                ServiceState::Running | ServiceState::Starting => None,
                _ => match vm::open(&vm_addr).await {
                    Ok(conn) => conn.service_status(&name).await.ok().and_then(|i| i.exit),
                    Err(_) => None,
                },
            };
            Ok::<_, SupervisorError>((started, exit))
        };
        let _ = ctx;
        Box::pin(work.into_actor(self).map(move |result, act, ctx| {
            if generation != act.generation {
                return Ok(act.info());
            }
            match result {
                Ok((started, exit)) => {
                    act.pid = Some(started.pid);
                    match started.state {
                        ServiceState::Running | ServiceState::Starting => {
                            act.ready_at_ms =
                                act.started_at_ms.map(|t| t + started.ready_after_ms as i64);
                            act.set_state("running");
                            act.watch(ctx, generation);
                        }
                        _ => {
                            act.stop_reason = started.stop_reason.map(reason_name);
                            act.exit_code = exit.map(|e| e.exit_code);
                            act.ended_at_ms = Some(now_ms());
                            act.set_state("failed");
                            act.maybe_restart(ctx, true);
                        }
                    }
                    Ok(act.info())
                }
                Err(err) => {
                    act.ended_at_ms = Some(now_ms());
                    act.set_state("failed");
                    Err(err)
                }
            }
        }))
    }

    fn watch(&mut self, ctx: &mut Context<Self>, generation: u64) {
        let Some(vm_addr) = self.vm.clone() else {
            return;
        };
        let name = self.request.name.clone();
        let watch = async move {
            vm::open(&vm_addr)
                .await?
                .service_watch(&name)
                .await
                .map_err(SupervisorError::from)
        };
        ctx.spawn(watch.into_actor(self).map(move |result, act, ctx| {
            if generation != act.generation || act.state != "running" {
                return;
            }
            match result {
                Ok(exit) => act.exited(ctx, exit),
                Err(err) => {
                    // The VM went away; the workspace tells us what happens next.
                    tracing::debug!(service = %act.request.name, error = %err, "service watch ended");
                }
            }
        }));
    }

    fn exited(&mut self, ctx: &mut Context<Self>, exit: Termination) {
        self.exit_code = Some(exit.exit_code);
        self.ended_at_ms = Some(now_ms());
        self.set_state("exited");
        let failed = exit.exit_code != 0 || exit.signal.is_some();
        self.maybe_restart(ctx, failed);
    }

    fn maybe_restart(&mut self, ctx: &mut Context<Self>, failed: bool) {
        let wanted = match self.request.restart {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Always => true,
        };
        if !wanted || !self.relaunchable || self.vm.is_none() {
            return;
        }
        if self.launched_at.is_some_and(|t| t.elapsed() >= HEALTHY_RUN) {
            self.backoff = BACKOFF_MIN;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        tracing::info!(service = %self.request.name, pause_ms = pause.as_millis() as u64, "restarting service");
        let handle = ctx.run_later(pause, |act, ctx| {
            act.pending_restart = None;
            act.restart_count += 1;
            let launch = act.launch(ctx);
            ctx.spawn(launch.map(|result, act, _ctx| {
                if let Err(err) = result {
                    let error = act.redactor.redact_str(&err.to_string());
                    tracing::warn!(service = %act.request.name, %error, "service restart failed");
                }
            }));
        });
        self.pending_restart = Some(handle);
    }

    fn cancel_restart(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.pending_restart.take() {
            ctx.cancel_future(handle);
        }
    }
}

fn reason_name(reason: ServiceStopReason) -> String {
    match reason {
        ServiceStopReason::ProcessExitedBeforeReady => "process_exited_before_ready",
        ServiceStopReason::ReadinessTimeout => "readiness_timeout",
        ServiceStopReason::StopRequested => "sigterm",
    }
    .to_owned()
}

impl Actor for ServiceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A restored service that still runs: watch for its end again.
        if self.state == "running" {
            self.watch(ctx, self.generation);
        }
    }
}

/// Launch the service (first start).
#[derive(Debug, Message)]
#[rtype(result = "Result<ServiceInfo, SupervisorError>")]
pub struct LaunchService;

/// The service's status.
#[derive(Debug, Message)]
#[rtype(result = "ServiceInfo")]
pub struct GetServiceInfo;

/// Stop it (TERM, then KILL after a grace period).
#[derive(Debug, Message)]
#[rtype(result = "Result<ServiceInfo, SupervisorError>")]
pub struct StopService;

/// The workspace's VM went away (stop, failure); the service is stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkspaceStopped;

/// The workspace runs again on `0`; `always` services come back.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkspaceStarted(pub Addr<VmActor>);

/// Remove the service and its logs, then end the actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveService;

/// A new actor takes over the name: end this one without touching the
/// guest (the newcomer's launch replaces the guest's record).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RetireService;

/// Collected logs.
#[derive(Debug, Message)]
#[rtype(result = "Result<ServiceLogs, SupervisorError>")]
pub struct CollectLogs(pub ServiceLogsRequest);

/// Followed logs, sent to a channel until the service ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FollowLogs {
    /// Which lines.
    pub request: ServiceLogsRequest,
    /// Where they go.
    pub events: mpsc::Sender<ServiceLogEvent>,
}

impl Handler<LaunchService> for ServiceActor {
    type Result = ResponseActFuture<Self, Result<ServiceInfo, SupervisorError>>;

    fn handle(&mut self, _msg: LaunchService, ctx: &mut Self::Context) -> Self::Result {
        self.launch(ctx)
    }
}

impl Handler<GetServiceInfo> for ServiceActor {
    type Result = MessageResult<GetServiceInfo>;

    fn handle(&mut self, _msg: GetServiceInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<StopService> for ServiceActor {
    type Result = ResponseActFuture<Self, Result<ServiceInfo, SupervisorError>>;

    fn handle(&mut self, _msg: StopService, ctx: &mut Self::Context) -> Self::Result {
        self.cancel_restart(ctx);
        self.generation += 1;
        let running = matches!(self.state, "running" | "starting");
        let (vm_addr, name) = (self.vm.clone(), self.request.name.clone());
        let work = async move {
            match (running, vm_addr) {
                (true, Some(vm_addr)) => vm::open(&vm_addr)
                    .await?
                    .service_stop(&name, STOP_GRACE)
                    .await
                    .map(Some)
                    .map_err(SupervisorError::from),
                _ => Ok(None),
            }
        };
        Box::pin(work.into_actor(self).map(|result, act, _ctx| {
            if let Some(stopped) = result? {
                act.exit_code = Some(stopped.exit.exit_code);
                act.stop_reason =
                    Some(if stopped.killed { "sigkill" } else { "sigterm" }.to_owned());
                act.ended_at_ms = Some(now_ms());
            }
            act.set_state("stopped");
            Ok(act.info())
        }))
    }
}

impl Handler<WorkspaceStopped> for ServiceActor {
    type Result = ();

    fn handle(&mut self, _msg: WorkspaceStopped, ctx: &mut Self::Context) {
        self.cancel_restart(ctx);
        self.generation += 1;
        self.vm = None;
        if matches!(self.state, "running" | "starting") {
            self.stop_reason = Some("workspace_stopped".to_owned());
            self.ended_at_ms = Some(now_ms());
            self.set_state("stopped");
        }
    }
}

impl Handler<WorkspaceStarted> for ServiceActor {
    type Result = ();

    fn handle(&mut self, msg: WorkspaceStarted, ctx: &mut Self::Context) {
        self.vm = Some(msg.0);
        if self.request.restart == RestartPolicy::Always && self.relaunchable {
            self.backoff = BACKOFF_MIN;
            let launch = self.launch(ctx);
            ctx.spawn(launch.map(|result, act, _ctx| {
                if let Err(err) = result {
                    let error = act.redactor.redact_str(&err.to_string());
                    tracing::warn!(service = %act.request.name, %error, "service did not come back");
                }
            }));
        }
    }
}

impl Handler<RemoveService> for ServiceActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: RemoveService, ctx: &mut Self::Context) -> Self::Result {
        self.cancel_restart(ctx);
        self.generation += 1;
        let (vm_addr, name) = (self.vm.clone(), self.request.name.clone());
        Box::pin(
            async move {
                if let Some(vm_addr) = vm_addr {
                    if let Ok(conn) = vm::open(&vm_addr).await {
                        let _ = conn.service_remove(&name).await;
                    }
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}

impl Handler<RetireService> for ServiceActor {
    type Result = ();

    fn handle(&mut self, _msg: RetireService, ctx: &mut Self::Context) {
        self.cancel_restart(ctx);
        self.generation += 1;
        ctx.stop();
    }
}

/// Reads log records into per-stream and combined text, redacted.
struct LogCollector {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    combined: Vec<u8>,
}

impl Handler<CollectLogs> for ServiceActor {
    type Result = ResponseActFuture<Self, Result<ServiceLogs, SupervisorError>>;

    fn handle(&mut self, msg: CollectLogs, _ctx: &mut Self::Context) -> Self::Result {
        let request = msg.0;
        let Some(vm_addr) = self.vm.clone() else {
            return Box::pin(actix::fut::ready(Err(SupervisorError::WorkspaceState {
                workspace_id: self.workspace_id.clone(),
                state: "stopped",
                action: "service logs",
                needs: "started",
            })));
        };
        let name = self.request.name.clone();
        let redactor = self.redactor.clone();
        let tail = (!request.all).then_some(request.tail_lines);
        let work = async move {
            let mut stream = vm::open(&vm_addr)
                .await?
                .service_logs(&name, tail, false)
                .await?;
            let mut out = redactor.stream();
            let mut err = redactor.stream();
            let mut logs = LogCollector {
                stdout: Vec::new(),
                stderr: Vec::new(),
                combined: Vec::new(),
            };
            let truncated = loop {
                match stream.next().await? {
                    GuestLogEvent::Record(OutputStream::Stdout, data) => {
                        let clean = out.push(&data).into_owned();
                        logs.stdout.extend_from_slice(&clean);
                        logs.combined.extend_from_slice(&clean);
                    }
                    GuestLogEvent::Record(OutputStream::Stderr, data) => {
                        let clean = err.push(&data).into_owned();
                        logs.stderr.extend_from_slice(&clean);
                        logs.combined.extend_from_slice(&clean);
                    }
                    GuestLogEvent::Done(summary) => break summary.truncated,
                }
            };
            let rest_out = out.finish();
            let rest_err = err.finish();
            logs.stdout.extend_from_slice(&rest_out);
            logs.stderr.extend_from_slice(&rest_err);
            logs.combined.extend_from_slice(&rest_out);
            logs.combined.extend_from_slice(&rest_err);
            Ok::<_, SupervisorError>((logs, truncated))
        };
        Box::pin(work.into_actor(self).map(move |result, act, _ctx| {
            let (logs, truncated) = result?;
            Ok(ServiceLogs {
                service: act.info(),
                stdout: String::from_utf8_lossy(&logs.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&logs.stderr).into_owned(),
                combined: String::from_utf8_lossy(&logs.combined).into_owned(),
                tail_lines: tail,
                truncated,
            })
        }))
    }
}

impl Handler<FollowLogs> for ServiceActor {
    type Result = ();

    fn handle(&mut self, msg: FollowLogs, ctx: &mut Self::Context) {
        let events = msg.events;
        let Some(vm_addr) = self.vm.clone() else {
            let error = SupervisorError::WorkspaceState {
                workspace_id: self.workspace_id.clone(),
                state: "stopped",
                action: "service logs",
                needs: "started",
            }
            .to_body();
            actix::spawn(async move {
                let _ = events.send(ServiceLogEvent::Error(error)).await;
            });
            return;
        };
        let name = self.request.name.clone();
        let redactor = self.redactor.clone();
        let tail = (!msg.request.all).then_some(msg.request.tail_lines);
        let sink = events.clone();
        // The run being followed, when it is one this actor saw become
        // ready: its end is worth waiting for.
        let followed = (self.state == "running").then(|| self.progress.borrow().run);
        let mut progress = self.progress.subscribe();
        let work = async move {
            let mut stream = vm::open(&vm_addr)
                .await?
                .service_logs(&name, tail, true)
                .await?;
            let mut out = redactor.stream();
            let mut err = redactor.stream();
            let ended = loop {
                let (which, clean) = match stream.next().await? {
                    GuestLogEvent::Record(OutputStream::Stdout, data) => {
                        (StreamName::Stdout, out.push(&data).into_owned())
                    }
                    GuestLogEvent::Record(OutputStream::Stderr, data) => {
                        (StreamName::Stderr, err.push(&data).into_owned())
                    }
                    GuestLogEvent::Done(summary) => break summary.exit.is_some(),
                };
                if !clean.is_empty()
                    && sink
                        .send(ServiceLogEvent::Output(OutputChunk::new(which, &clean)))
                        .await
                        .is_err()
                {
                    return Ok(false);
                }
            };
            for (which, rest) in [
                (StreamName::Stdout, out.finish()),
                (StreamName::Stderr, err.finish()),
            ] {
                if !rest.is_empty() {
                    let _ = sink
                        .send(ServiceLogEvent::Output(OutputChunk::new(which, &rest)))
                        .await;
                }
            }
            // The process ended; the stop or watch that records how may
            // still be on its way.
            if let (true, Some(run)) = (ended, followed) {
                let settled = progress.wait_for(|now| now.settled(run));
                let _ = tokio::time::timeout(SETTLE_LIMIT, settled).await;
            }
            Ok::<bool, SupervisorError>(true)
        };
        ctx.spawn(work.into_actor(self).then(move |result, act, _ctx| {
            let last = match result {
                Ok(true) => Some(ServiceLogEvent::Result(Box::new(act.info()))),
                Ok(false) => None,
                Err(err) => Some(ServiceLogEvent::Error(err.to_body())),
            };
            async move {
                if let Some(last) = last {
                    let _ = events.send(last).await;
                }
            }
            .into_actor(act)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_followed_run_settles_when_it_ends_or_another_begins() {
        let at = |run, state| Progress { run, state };
        assert!(!at(3, "running").settled(3), "still running");
        for state in ["stopped", "exited", "failed"] {
            assert!(at(3, state).settled(3), "{state}");
        }
        // Restarted since: the followed run is over, whatever the new one does.
        assert!(at(4, "starting").settled(3));
        assert!(at(4, "running").settled(3));
    }
}

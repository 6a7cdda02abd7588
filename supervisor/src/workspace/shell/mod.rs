//! One PTY shell of a workspace.
//!
//! The guest agent owns the PTY; this actor holds one long-lived attach
//! connection and receives output as the guest produces it (no polling per
//! read), passes it through the workspace's streaming redactor, and keeps it
//! in a bounded buffer ([`buffer::OutputBuffer`]) that reads address by
//! absolute cursor. The guest holds the shell back rather than drop output
//! this actor has not received yet; output it reports lost anyway (an
//! attach from an offset it no longer holds, a host that stalled) is
//! counted into the offsets as a gap, which readers crossing it see as
//! `truncated` ([`buffer::ShellOutput`]). A read may wait, server-side, until output has settled
//! (`wait_for_idle_ms`): it sleeps until a deadline that moves whenever
//! output arrives, and never polls.

pub mod buffer;

use std::time::{Duration, Instant};

use actix::prelude::*;
use pyro_actors::secrets::redactor::Redactor;
use pyro_actors::vm::VmActor;
use pyro_actors::vsock::session_ops::ShellEvent;
use pyro_actors::ActorError;
use pyro_guest_protocol::{ShellSignal, Termination};
use pyro_sdk::api::session::{ShellInfo, ShellReadRequest, ShellReadResult, ShellSignalName};
use pyro_sdk::api::EXECUTION_MODE;
use tokio::sync::watch;

use self::buffer::{render_plain, ShellOutput, SHELL_BUFFER_BYTES};
use super::core::{now_ms, rfc3339};
use super::vm;
use crate::error::SupervisorError;

/// The longest a read waits for output to settle, whatever it asked for.
const MAX_READ_WAIT: Duration = Duration::from_secs(60);

/// What waiting readers watch.
#[derive(Debug, Clone, Copy)]
struct Activity {
    last_output: Instant,
    exited: bool,
}

/// One shell.
#[derive(Debug)]
pub struct ShellActor {
    workspace_id: String,
    shell_id: String,
    cwd: String,
    cols: u16,
    rows: u16,
    vm: Addr<VmActor>,
    output: ShellOutput,
    exit: Option<Termination>,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    activity: watch::Sender<Activity>,
}

impl ShellActor {
    /// A shell the guest has just opened.
    pub fn new(
        workspace_id: String,
        shell_id: String,
        cwd: String,
        cols: u16,
        rows: u16,
        vm: Addr<VmActor>,
        redactor: &Redactor,
    ) -> Self {
        let (activity, _) = watch::channel(Activity {
            last_output: Instant::now(),
            exited: false,
        });
        Self {
            workspace_id,
            shell_id,
            cwd,
            cols,
            rows,
            vm,
            output: ShellOutput::new(SHELL_BUFFER_BYTES, redactor),
            exit: None,
            started_at_ms: now_ms(),
            ended_at_ms: None,
            activity,
        }
    }

    fn info(&self) -> ShellInfo {
        ShellInfo {
            workspace_id: self.workspace_id.clone(),
            shell_id: self.shell_id.clone(),
            cwd: self.cwd.clone(),
            cols: self.cols,
            rows: self.rows,
            state: if self.exit.is_some() {
                "stopped"
            } else {
                "running"
            }
            .to_owned(),
            started_at: rfc3339(self.started_at_ms),
            ended_at: self.ended_at_ms.map(rfc3339),
            exit_code: self.exit.map(|exit| exit.exit_code),
            output_end: self.output.buffer().end(),
            execution_mode: EXECUTION_MODE.to_owned(),
        }
    }

    /// Wakes readers waiting for output to settle, when it `changed`.
    fn output_changed(&mut self, changed: bool) {
        if changed {
            self.activity
                .send_modify(|a| a.last_output = Instant::now());
        }
    }

    fn mark_exited(&mut self, exit: Termination) {
        if self.exit.is_some() {
            return;
        }
        let changed = self.output.finish();
        self.output_changed(changed);
        self.exit = Some(exit);
        self.ended_at_ms = Some(now_ms());
        self.activity.send_modify(|a| a.exited = true);
    }

    fn read_now(&self, request: &ShellReadRequest) -> ShellReadResult {
        let max = usize::try_from(request.max_chars).unwrap_or(usize::MAX);
        let window = self.output.buffer().read(request.cursor, max);
        let next_cursor = window.start + window.bytes.len() as u64;
        let output = if request.plain {
            render_plain(&window.bytes, self.cols)
        } else {
            String::from_utf8_lossy(&window.bytes).into_owned()
        };
        ShellReadResult {
            shell: self.info(),
            cursor: window.start,
            next_cursor,
            output,
            truncated: window.truncated,
            more: window.more,
            plain: request.plain,
            wait_for_idle_ms: request.wait_for_idle_ms,
        }
    }

    fn require_running(&self) -> Result<(), SupervisorError> {
        if self.exit.is_some() {
            Err(SupervisorError::ShellNotRunning {
                shell_id: self.shell_id.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn guest_call<F, Fut>(
        &self,
        call: F,
    ) -> ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>
    where
        F: FnOnce(pyro_actors::vsock::GuestConnection) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), ActorError>> + 'static,
    {
        if let Err(err) = self.require_running() {
            return Box::pin(actix::fut::ready(Err(err)));
        }
        let vm = self.vm.clone();
        let work = async move {
            call(vm::open(&vm).await?)
                .await
                .map_err(SupervisorError::from)
        };
        Box::pin(
            work.into_actor(self)
                .map(|result, act, _ctx| result.map(|()| act.info())),
        )
    }
}

/// Attach events, or the attach breaking.
type AttachItem = Result<ShellEvent, ActorError>;

impl Actor for ShellActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let vm = self.vm.clone();
        let shell_id = self.shell_id.clone();
        let events = futures_util::stream::unfold(Some((vm, shell_id, None)), |state| async move {
            let (vm, shell_id, attachment) = state?;
            let mut attachment = match attachment {
                Some(attachment) => attachment,
                None => {
                    let conn = match vm::open(&vm).await {
                        Ok(conn) => conn,
                        Err(err) => {
                            return Some((
                                Err(ActorError::ActorGone {
                                    what: err.to_string(),
                                }),
                                None,
                            ));
                        }
                    };
                    match conn.shell_attach(&shell_id, 0).await {
                        Ok(attachment) => attachment,
                        Err(err) => return Some((Err(err), None)),
                    }
                }
            };
            match attachment.next().await {
                Ok(event @ ShellEvent::Exited(_)) => Some((Ok(event), None)),
                Ok(event) => Some((Ok(event), Some((vm, shell_id, Some(attachment))))),
                Err(err) => Some((Err(err), None)),
            }
        });
        ctx.add_stream(events);
    }
}

impl StreamHandler<AttachItem> for ShellActor {
    fn handle(&mut self, item: AttachItem, _ctx: &mut Self::Context) {
        match item {
            Ok(ShellEvent::Output { offset, data }) => {
                let changed = self.output.output(offset, &data);
                self.output_changed(changed);
            }
            Ok(ShellEvent::Lost { offset, lost_bytes }) => {
                let gap = self.output.lost(offset, lost_bytes);
                tracing::warn!(shell_id = %self.shell_id, offset, lost_bytes, gap, "shell output was lost before it reached the supervisor; readers crossing it are told truncated");
                self.output_changed(gap > 0);
            }
            Ok(ShellEvent::Exited(exit)) => self.mark_exited(exit),
            Err(err) => {
                tracing::debug!(shell_id = %self.shell_id, error = %err, "shell attach ended");
                self.mark_exited(Termination {
                    exit_code: -1,
                    signal: None,
                });
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        self.mark_exited(Termination {
            exit_code: -1,
            signal: None,
        });
    }
}

/// The shell's status.
#[derive(Debug, Message)]
#[rtype(result = "ShellInfo")]
pub struct GetShellInfo;

/// Read output from a cursor, optionally waiting for it to settle.
#[derive(Debug, Message)]
#[rtype(result = "ShellReadResult")]
pub struct ReadShell(pub ShellReadRequest);

/// Type into the shell.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShellInfo, SupervisorError>")]
pub struct WriteShell(pub Vec<u8>);

/// Signal the shell's foreground job.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShellInfo, SupervisorError>")]
pub struct SignalShell(pub ShellSignalName);

/// Change the terminal size.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShellInfo, SupervisorError>")]
pub struct ResizeShell {
    /// Width.
    pub cols: u16,
    /// Height.
    pub rows: u16,
}

/// Hang up the shell and end the actor.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShellInfo, SupervisorError>")]
pub struct CloseShell;

impl Handler<GetShellInfo> for ShellActor {
    type Result = MessageResult<GetShellInfo>;

    fn handle(&mut self, _msg: GetShellInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<ReadShell> for ShellActor {
    type Result = ResponseActFuture<Self, ShellReadResult>;

    fn handle(&mut self, msg: ReadShell, _ctx: &mut Self::Context) -> Self::Result {
        let request = msg.0;
        let Some(wait) = request.wait_for_idle_ms.map(Duration::from_millis) else {
            let result = self.read_now(&request);
            return Box::pin(actix::fut::ready(result));
        };
        let mut activity = self.activity.subscribe();
        let asked = Instant::now();
        let settle = async move {
            let give_up = asked + MAX_READ_WAIT;
            loop {
                let now = activity.borrow_and_update().to_owned();
                if now.exited {
                    return;
                }
                // At least `wait` from the read, and `wait` after the last output.
                let deadline = (now.last_output.max(asked) + wait).min(give_up);
                if Instant::now() >= deadline {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    changed = activity.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        Box::pin(
            settle
                .into_actor(self)
                .map(move |(), act, _ctx| act.read_now(&request)),
        )
    }
}

impl Handler<WriteShell> for ShellActor {
    type Result = ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, msg: WriteShell, _ctx: &mut Self::Context) -> Self::Result {
        let shell_id = self.shell_id.clone();
        self.guest_call(move |conn| async move { conn.shell_write(&shell_id, msg.0).await })
    }
}

impl Handler<SignalShell> for ShellActor {
    type Result = ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, msg: SignalShell, _ctx: &mut Self::Context) -> Self::Result {
        let shell_id = self.shell_id.clone();
        let signal = match msg.0 {
            ShellSignalName::Hup => ShellSignal::Hup,
            ShellSignalName::Int => ShellSignal::Int,
            ShellSignalName::Term => ShellSignal::Term,
            ShellSignalName::Kill => ShellSignal::Kill,
        };
        self.guest_call(move |conn| async move { conn.shell_signal(&shell_id, signal).await })
    }
}

impl Handler<ResizeShell> for ShellActor {
    type Result = ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, msg: ResizeShell, _ctx: &mut Self::Context) -> Self::Result {
        let shell_id = self.shell_id.clone();
        let (cols, rows) = (msg.cols, msg.rows);
        Box::pin(
            self.guest_call(
                move |conn| async move { conn.shell_resize(&shell_id, cols, rows).await },
            )
            .map(move |result, act, _ctx| {
                if result.is_ok() {
                    act.cols = cols;
                    act.rows = rows;
                }
                result.map(|_| act.info())
            }),
        )
    }
}

impl Handler<CloseShell> for ShellActor {
    type Result = ResponseActFuture<Self, Result<ShellInfo, SupervisorError>>;

    fn handle(&mut self, _msg: CloseShell, _ctx: &mut Self::Context) -> Self::Result {
        let vm = self.vm.clone();
        let shell_id = self.shell_id.clone();
        let running = self.exit.is_none();
        let work = async move {
            if running {
                vm::open(&vm).await?.shell_close(&shell_id).await?;
            }
            Ok::<(), SupervisorError>(())
        };
        Box::pin(work.into_actor(self).map(|result, act, ctx| {
            result?;
            act.mark_exited(Termination {
                exit_code: 129,
                signal: Some(1),
            });
            ctx.stop();
            Ok(act.info())
        }))
    }
}

//! `workspace exec`: a command in the running workspace, its output streamed
//! to the caller as it comes, its summary and output kept in the history.
//!
//! If the caller goes away mid-command, the guest connection is dropped,
//! which makes the agent kill the command's process group; the command is
//! still recorded, with exit code 130 (as for Ctrl-C).

use std::collections::BTreeMap;
use std::time::Instant;

use actix::Addr;
use pyro_actors::vm::VmActor;
use pyro_actors::vsock::ExecEvent as GuestEvent;
use pyro_guest_protocol::{CommandLine, ExecRequest as GuestExec, OutputStream};
use pyro_sdk::api::workspace::{
    CommandSummary, ExecEvent, ExecRequest, ExecSummary, WorkspaceInfo,
};
use pyro_sdk::api::{CommandSpec, ErrorBody, OutputChunk, StreamName, EXECUTION_MODE};
use tokio::sync::mpsc;

use super::super::core::now_ms;
use super::super::files::{WorkspaceDir, OUTPUT_KEEP_BYTES};
use super::super::paths;
use super::super::secrets::{ResolveSecretEnv, SecretStoreActor};
use super::super::vm;
use super::super::writer::{RecordWriter, StoreWrite};
use crate::error::SupervisorError;
use crate::store::{CommandRecord, WorkspaceRecord};
use pyro_actors::secrets::redactor::Redactor;

/// Exit code recorded when the caller abandoned the command.
const ABANDONED_EXIT_CODE: i32 = 130;

/// A validated exec.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    command: CommandSpec,
    cwd: String,
    env: BTreeMap<String, String>,
    secret_env: BTreeMap<String, String>,
    timeout_ms: u64,
}

/// Checks the request and resolves its working directory.
pub fn prepare(request: &ExecRequest) -> Result<ExecPlan, SupervisorError> {
    request
        .validate()
        .map_err(|message| SupervisorError::InvalidRequest { message })?;
    let cwd = paths::resolve(request.cwd.as_deref().unwrap_or(paths::ROOT))?;
    Ok(ExecPlan {
        command: request.command.clone(),
        cwd,
        env: request.env.clone(),
        secret_env: request.secret_env.clone(),
        timeout_ms: request.timeout_seconds.saturating_mul(1000),
    })
}

/// A command that ran (to the end, or until the caller left).
#[derive(Debug)]
pub struct Finished {
    plan: ExecPlan,
    exit_code: i32,
    timed_out: bool,
    duration_ms: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    events: mpsc::Sender<ExecEvent>,
    caller_left: bool,
    redactor: Redactor,
}

impl Finished {
    /// The history entry and summary, once a sequence number is assigned.
    pub fn record(&self, workspace_id: &str, sequence: u64) -> (CommandSummary, CommandRecord) {
        let command = self.redactor.redact_str(&self.plan.command.display());
        let summary = CommandSummary {
            sequence,
            command: command.clone(),
            cwd: self.plan.cwd.clone(),
            exit_code: self.exit_code,
            duration_ms: self.duration_ms,
        };
        let record = CommandRecord {
            workspace_id: workspace_id.to_owned(),
            sequence,
            command,
            cwd: self.plan.cwd.clone(),
            exit_code: self.exit_code,
            duration_ms: self.duration_ms,
            timed_out: self.timed_out,
            recorded_at_ms: now_ms(),
            output_truncated: self.stdout.len() > OUTPUT_KEEP_BYTES
                || self.stderr.len() > OUTPUT_KEEP_BYTES,
        };
        (summary, record)
    }
}

/// A command that could not run.
#[derive(Debug)]
pub struct NotRun {
    error: ErrorBody,
    events: mpsc::Sender<ExecEvent>,
}

impl NotRun {
    /// Tells the caller.
    pub async fn report(self) {
        let _ = self.events.send(ExecEvent::Error(self.error)).await;
    }
}

/// Runs the command, forwarding output as it arrives, each stream through
/// its own streaming redactor (so a secret split across chunks is caught).
pub async fn run(
    vm_addr: Addr<VmActor>,
    plan: ExecPlan,
    events: mpsc::Sender<ExecEvent>,
    secrets: Addr<SecretStoreActor>,
    redactor: Redactor,
) -> Result<Finished, NotRun> {
    let fail = |error: SupervisorError, events: &mpsc::Sender<ExecEvent>| NotRun {
        error: redact_body(&redactor, error.to_body()),
        events: events.clone(),
    };
    let secret_env = match secrets
        .send(ResolveSecretEnv(plan.secret_env.clone()))
        .await
    {
        Ok(Ok(env)) => env,
        Ok(Err(err)) => return Err(fail(err, &events)),
        Err(_) => {
            return Err(fail(
                SupervisorError::ActorGone {
                    what: "the secret store".to_owned(),
                },
                &events,
            ))
        }
    };
    let conn = vm::open(&vm_addr).await.map_err(|e| fail(e, &events))?;
    let mut env: Vec<(String, String)> = plan
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(secret_env);
    let request = GuestExec {
        command: match &plan.command {
            CommandSpec::Argv(argv) => CommandLine::Argv(argv.clone()),
            CommandSpec::Shell(line) => CommandLine::Shell(line.clone()),
        },
        cwd: Some(plan.cwd.clone()),
        env,
        timeout_ms: Some(plan.timeout_ms),
    };
    let started = Instant::now();
    let mut stream = conn
        .exec(request)
        .await
        .map_err(|e| fail(e.into(), &events))?;
    let mut redact_out = redactor.stream();
    let mut redact_err = redactor.stream();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let finished = |exit_code, timed_out, duration_ms, stdout, stderr, caller_left| Finished {
        plan: plan.clone(),
        exit_code,
        timed_out,
        duration_ms,
        stdout,
        stderr,
        events: events.clone(),
        caller_left,
        redactor: redactor.clone(),
    };
    let abandoned = |stdout, stderr| {
        let took = started.elapsed().as_millis() as u64;
        finished(ABANDONED_EXIT_CODE, false, took, stdout, stderr, true)
    };
    loop {
        // A silent command is abandoned as soon as the caller goes, not at
        // its next output: dropping the stream makes the agent kill the
        // command's process group.
        let next = tokio::select! {
            next = stream.next() => next,
            () = events.closed() => return Ok(abandoned(stdout, stderr)),
        };
        let (name, clean, done) = match next {
            Ok(GuestEvent::Output(OutputStream::Stdout, data)) => (
                StreamName::Stdout,
                redact_out.push(&data).into_owned(),
                None,
            ),
            Ok(GuestEvent::Output(OutputStream::Stderr, data)) => (
                StreamName::Stderr,
                redact_err.push(&data).into_owned(),
                None,
            ),
            Ok(GuestEvent::Exited(status)) => {
                (StreamName::Stdout, redact_out.finish(), Some(status))
            }
            Err(err) => return Err(fail(err.into(), &events)),
        };
        let mut chunks = vec![(name, clean)];
        if done.is_some() {
            chunks.push((StreamName::Stderr, redact_err.finish()));
        }
        for (name, clean) in chunks {
            if clean.is_empty() {
                continue;
            }
            let keep = match name {
                StreamName::Stdout => &mut stdout,
                StreamName::Stderr => &mut stderr,
            };
            let room = (OUTPUT_KEEP_BYTES + 1).saturating_sub(keep.len());
            keep.extend_from_slice(&clean[..clean.len().min(room)]);
            if events
                .send(ExecEvent::Output(OutputChunk::new(name, &clean)))
                .await
                .is_err()
            {
                // The caller left; dropping the stream makes the agent
                // kill the command's process group.
                return Ok(abandoned(stdout, stderr));
            }
        }
        if let Some(status) = done {
            return Ok(finished(
                status.exit_code,
                status.timed_out,
                status.duration_ms,
                stdout,
                stderr,
                false,
            ));
        }
    }
}

/// Passes an error body through the redactor.
pub fn redact_body(redactor: &Redactor, mut body: ErrorBody) -> ErrorBody {
    body.message = redactor.redact_str(&body.message);
    body.messages = body
        .messages
        .iter()
        .map(|m| redactor.redact_str(m))
        .collect();
    body.hint = body.hint.map(|h| redactor.redact_str(&h));
    body.detail = body.detail.map(|d| redactor.redact_str(&d));
    body
}

/// Runs a bookkeeping command of pyro's own (no output kept, no history).
pub async fn quiet(
    vm_addr: &Addr<VmActor>,
    argv: &[&str],
) -> Result<pyro_guest_protocol::ExitStatus, SupervisorError> {
    let mut stream = vm::open(vm_addr)
        .await?
        .exec(GuestExec {
            command: CommandLine::Argv(argv.iter().map(|a| (*a).to_owned()).collect()),
            cwd: None,
            env: Vec::new(),
            timeout_ms: Some(30_000),
        })
        .await?;
    loop {
        if let GuestEvent::Exited(status) = stream.next().await? {
            return Ok(status);
        }
    }
}

/// Stores the output, persists the history entry, and sends the summary.
pub async fn finish(
    finished: Finished,
    command: CommandRecord,
    record: WorkspaceRecord,
    info: &WorkspaceInfo,
    dir: &WorkspaceDir,
    writer: &RecordWriter,
) {
    let sequence = command.sequence;
    let store_dir = dir.clone();
    let (stdout, stderr) = (finished.stdout, finished.stderr);
    let stored =
        crate::runner::blocking(move || store_dir.write_output(sequence, &stdout, &stderr)).await;
    if let Ok(Err(err)) | Err(err) = stored.map_err(std::io::Error::other) {
        tracing::warn!(workspace_id = %info.workspace_id, sequence, %err, "storing command output failed");
    }
    let summary = ExecSummary {
        workspace_id: info.workspace_id.clone(),
        environment: info.environment.clone(),
        environment_version: info.environment_version.clone(),
        sequence,
        command: command.command.clone(),
        cwd: command.cwd.clone(),
        exit_code: command.exit_code,
        duration_ms: command.duration_ms,
        timed_out: command.timed_out,
        execution_mode: EXECUTION_MODE.to_owned(),
    };
    let persisted = writer
        .write_and_wait(StoreWrite::Command(record, command))
        .await;
    if finished.caller_left {
        return;
    }
    let last = match persisted {
        Ok(()) => ExecEvent::Result(summary),
        Err(err) => ExecEvent::Error(err.to_body()),
    };
    let _ = finished.events.send(last).await;
}

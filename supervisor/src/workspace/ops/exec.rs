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
use super::super::vm;
use super::super::writer::{RecordWriter, StoreWrite};
use crate::error::SupervisorError;
use crate::store::{CommandRecord, WorkspaceRecord};

/// Exit code recorded when the caller abandoned the command.
const ABANDONED_EXIT_CODE: i32 = 130;

/// A validated exec.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    command: CommandSpec,
    cwd: String,
    env: BTreeMap<String, String>,
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
}

impl Finished {
    /// The history entry and summary, once a sequence number is assigned.
    pub fn record(&self, workspace_id: &str, sequence: u64) -> (CommandSummary, CommandRecord) {
        let command = self.plan.command.display();
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

/// Runs the command, forwarding output as it arrives.
pub async fn run(
    vm_addr: Addr<VmActor>,
    plan: ExecPlan,
    events: mpsc::Sender<ExecEvent>,
) -> Result<Finished, NotRun> {
    let fail = |error: SupervisorError, events: &mpsc::Sender<ExecEvent>| NotRun {
        error: error.to_body(),
        events: events.clone(),
    };
    let conn = vm::open(&vm_addr).await.map_err(|e| fail(e, &events))?;
    let request = GuestExec {
        command: match &plan.command {
            CommandSpec::Argv(argv) => CommandLine::Argv(argv.clone()),
            CommandSpec::Shell(line) => CommandLine::Shell(line.clone()),
        },
        cwd: Some(plan.cwd.clone()),
        env: plan
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        timeout_ms: Some(plan.timeout_ms),
    };
    let started = Instant::now();
    let mut stream = conn
        .exec(request)
        .await
        .map_err(|e| fail(e.into(), &events))?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    loop {
        match stream.next().await {
            Ok(GuestEvent::Output(which, data)) => {
                let (name, keep) = match which {
                    OutputStream::Stdout => (StreamName::Stdout, &mut stdout),
                    OutputStream::Stderr => (StreamName::Stderr, &mut stderr),
                };
                let room = (OUTPUT_KEEP_BYTES + 1).saturating_sub(keep.len());
                keep.extend_from_slice(&data[..data.len().min(room)]);
                if events
                    .send(ExecEvent::Output(OutputChunk::new(name, &data)))
                    .await
                    .is_err()
                {
                    // The caller left; dropping the stream makes the agent
                    // kill the command's process group.
                    return Ok(Finished {
                        plan,
                        exit_code: ABANDONED_EXIT_CODE,
                        timed_out: false,
                        duration_ms: started.elapsed().as_millis() as u64,
                        stdout,
                        stderr,
                        events,
                        caller_left: true,
                    });
                }
            }
            Ok(GuestEvent::Exited(status)) => {
                return Ok(Finished {
                    plan,
                    exit_code: status.exit_code,
                    timed_out: status.timed_out,
                    duration_ms: status.duration_ms,
                    stdout,
                    stderr,
                    events,
                    caller_left: false,
                })
            }
            Err(err) => return Err(fail(err.into(), &events)),
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

//! A workspace's record and lifecycle rules, as plain synchronous code.
//!
//! ```text
//! creating --ready--> started --stop--> stopping --> stopped --start--> starting --> started
//!                      |   ^                            |
//!                      |   '------- (restart policy) ---'   any --delete--> deleting
//!                      '--reset--> resetting --> started
//! ```
//!
//! Only one lifecycle operation (start, stop, reset, delete, failure
//! recovery) runs at a time; data operations (exec, files, snapshots, ...)
//! need the workspace `started` with no lifecycle operation running.
//! Operations that arrive while one runs (say, an exec while the workspace
//! boots after a supervisor restart) wait for it in [`SettleWaiters`] and
//! learn how it ended.

use pyro_sdk::api::workspace::{
    CommandSummary, UpdateWorkspaceRequest, WorkspaceInfo, WorkspaceState, WORKSPACE_PATH,
};
use pyro_sdk::api::{ErrorBody, EXECUTION_MODE};
use tokio::sync::oneshot;

use crate::error::SupervisorError;
use crate::store::{ServiceRecord, WorkspaceRecord};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An epoch-milliseconds time as RFC 3339 UTC (`2026-11-28T19:30:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Lifecycle operations, which exclude each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Booting a stopped workspace.
    Start,
    /// Powering it off.
    Stop,
    /// Recreating the disk and restoring a snapshot.
    Reset,
    /// Removing it.
    Delete,
    /// Rebooting after the VM died (restart policy).
    Recover,
}

impl Lifecycle {
    fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reset => "reset",
            Self::Delete => "delete",
            Self::Recover => "recovery",
        }
    }

    fn transitional_state(self) -> WorkspaceState {
        match self {
            Self::Start | Self::Recover => WorkspaceState::Starting,
            Self::Stop => WorkspaceState::Stopping,
            Self::Reset => WorkspaceState::Resetting,
            Self::Delete => WorkspaceState::Deleting,
        }
    }
}

/// What a lifecycle request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Go ahead; the state now shows the operation.
    Proceed,
    /// Nothing to do (already in the asked-for state).
    AlreadyDone,
}

/// One workspace's record and rules.
#[derive(Debug, Clone)]
pub struct WorkspaceCore {
    record: WorkspaceRecord,
    busy: Option<Lifecycle>,
}

impl WorkspaceCore {
    /// Wraps a record.
    pub fn new(record: WorkspaceRecord) -> Self {
        Self { record, busy: None }
    }

    /// The record.
    pub fn record(&self) -> &WorkspaceRecord {
        &self.record
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The state.
    pub fn state(&self) -> WorkspaceState {
        self.record.state
    }

    /// The lifecycle operation running, if any.
    pub fn busy(&self) -> Option<Lifecycle> {
        self.busy
    }

    /// Checks that a data operation (`action`) may run now.
    pub fn require_started(&self, action: &'static str) -> Result<(), SupervisorError> {
        if self.record.state == WorkspaceState::Started && self.busy.is_none() {
            Ok(())
        } else {
            Err(self.state_error(action, "started"))
        }
    }

    /// Checks that an offline operation (`action`) may run now.
    pub fn require_stopped(&self, action: &'static str) -> Result<(), SupervisorError> {
        if self.record.state == WorkspaceState::Stopped && self.busy.is_none() {
            Ok(())
        } else {
            Err(self.state_error(action, "stopped"))
        }
    }

    fn state_error(&self, action: &'static str, needs: &'static str) -> SupervisorError {
        SupervisorError::WorkspaceState {
            workspace_id: self.record.id.clone(),
            state: self.record.state.as_str(),
            action,
            needs,
        }
    }

    /// Claims the lifecycle for `op`, or says why it cannot run.
    pub fn begin(&mut self, op: Lifecycle) -> Result<Plan, SupervisorError> {
        if let Some(running) = self.busy {
            if running == op && op == Lifecycle::Delete {
                return Ok(Plan::AlreadyDone);
            }
            return Err(SupervisorError::WorkspaceState {
                workspace_id: self.record.id.clone(),
                state: self.record.state.as_str(),
                action: op.name(),
                needs: match running {
                    Lifecycle::Delete => "not being deleted",
                    _ => "no other start, stop or reset running",
                },
            });
        }
        let state = self.record.state;
        let plan = match (op, state) {
            (Lifecycle::Start, WorkspaceState::Started)
            | (Lifecycle::Stop, WorkspaceState::Stopped) => Plan::AlreadyDone,
            (Lifecycle::Start, WorkspaceState::Stopped)
            | (Lifecycle::Stop, WorkspaceState::Started)
            | (Lifecycle::Reset, WorkspaceState::Started | WorkspaceState::Stopped)
            | (Lifecycle::Recover, WorkspaceState::Started)
            | (Lifecycle::Delete, _) => Plan::Proceed,
            (Lifecycle::Start, _) => return Err(self.state_error("start", "stopped")),
            (Lifecycle::Stop, _) | (Lifecycle::Recover, _) => {
                return Err(self.state_error(op.name(), "started"))
            }
            (Lifecycle::Reset, _) => return Err(self.state_error("reset", "started or stopped")),
        };
        if plan == Plan::Proceed {
            self.busy = Some(op);
            self.record.state = op.transitional_state();
        }
        Ok(plan)
    }

    /// Ends the lifecycle operation with the workspace in `state`.
    pub fn finish(&mut self, state: WorkspaceState, error: Option<String>) {
        self.busy = None;
        self.record.state = state;
        if error.is_some() {
            self.record.last_error = error;
        } else if state == WorkspaceState::Started {
            self.record.last_error = None;
        }
        self.touch();
    }

    /// Whether a lifecycle operation that others should wait for runs:
    /// start, stop, reset or recovery (a delete ends the workspace, so
    /// there is nothing to wait for).
    pub fn settling(&self) -> bool {
        matches!(self.busy, Some(op) if op != Lifecycle::Delete)
    }

    /// Whether the operation under way boots the VM (start, reset,
    /// recovery), so a delete may cancel it.
    pub fn booting(&self) -> bool {
        matches!(
            self.busy,
            Some(Lifecycle::Start | Lifecycle::Reset | Lifecycle::Recover)
        )
    }

    /// Ends the lifecycle operation without changing the state or the
    /// error (the supervisor is shutting down: the record keeps saying what
    /// to resume).
    pub fn abandon(&mut self) {
        self.busy = None;
    }

    /// Records a service's definition, replacing one of the same name.
    pub fn remember_service(&mut self, service: ServiceRecord) {
        let services = &mut self.record.services;
        services.retain(|s| s.request.name != service.request.name);
        services.push(service);
    }

    /// Forgets every service definition (reset, delete).
    pub fn forget_services(&mut self) {
        self.record.services.clear();
    }

    /// Records which VM runs the workspace (or none).
    pub fn set_current_vm(&mut self, vm_id: Option<String>) {
        self.record.current_vm = vm_id;
    }

    /// Marks the end of creation: the workspace runs.
    pub fn created(&mut self) {
        self.record.state = WorkspaceState::Started;
        self.touch();
    }

    /// Records activity now.
    pub fn touch(&mut self) {
        self.record.last_activity_at_ms = now_ms();
    }

    /// The sequence number the next command gets.
    pub fn next_sequence(&self) -> u64 {
        self.record.command_count + 1
    }

    /// Counts a finished command.
    pub fn command_finished(&mut self, summary: CommandSummary) {
        self.record.command_count = self.record.command_count.max(summary.sequence);
        self.record.last_command = Some(summary);
        self.touch();
    }

    /// Counts a reset: history restarts, the reset counter goes up.
    pub fn reset_done(&mut self) {
        self.record.command_count = 0;
        self.record.last_command = None;
        self.record.reset_count += 1;
        self.record.last_reset_at_ms = Some(now_ms());
    }

    /// Applies an update; errors when it changes nothing.
    pub fn update(&mut self, request: &UpdateWorkspaceRequest) -> Result<(), SupervisorError> {
        request
            .validate()
            .map_err(|message| SupervisorError::InvalidRequest { message })?;
        let before = self.record.clone();
        if request.clear_name {
            self.record.name = None;
        }
        if let Some(name) = &request.name {
            self.record.name = Some(name.trim().to_owned());
        }
        for key in &request.clear_labels {
            self.record.labels.remove(key);
        }
        for (key, value) in &request.labels {
            self.record
                .labels
                .insert(key.trim().to_owned(), value.trim().to_owned());
        }
        if let Some(ttl) = request.ttl_seconds {
            self.record.ttl_seconds = ttl;
            self.record.expires_at_ms = now_ms() + (ttl as i64) * 1000;
        }
        if self.record == before {
            return Err(SupervisorError::InvalidRequest {
                message: "the update changes nothing".to_owned(),
            });
        }
        self.touch();
        Ok(())
    }

    /// The record, as the API shows it.
    pub fn info(&self, running_services: u64, services: u64) -> WorkspaceInfo {
        let r = &self.record;
        WorkspaceInfo {
            workspace_id: r.id.clone(),
            name: r.name.clone(),
            labels: r.labels.clone(),
            environment: r.environment.clone(),
            environment_version: r.environment_version.clone(),
            state: r.state,
            vcpu_count: r.vcpu_count,
            mem_mib: r.mem_mib,
            disk_mib: r.disk_mib,
            ttl_seconds: r.ttl_seconds,
            on_failure: r.on_failure,
            created_at: rfc3339(r.created_at_ms),
            last_activity_at: rfc3339(r.last_activity_at_ms),
            expires_at: rfc3339(r.expires_at_ms),
            execution_mode: EXECUTION_MODE.to_owned(),
            workspace_path: WORKSPACE_PATH.to_owned(),
            network_policy: "off".to_owned(),
            workspace_seed: r.seed.clone(),
            secrets: r.secrets.clone(),
            command_count: r.command_count,
            last_command: r.last_command.clone(),
            reset_count: r.reset_count,
            last_reset_at: r.last_reset_at_ms.map(rfc3339),
            service_count: services,
            running_service_count: running_services,
            last_error: r.last_error.clone(),
        }
    }
}

/// What a starting supervisor does with a recorded workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtStart {
    /// Remove it without booting it: it was half created or half deleted,
    /// or its time to live passed while no supervisor ran.
    Remove(&'static str),
    /// It was running: take its VM over or boot it again.
    Resume,
    /// It was stopped and stays so.
    Keep,
}

/// Decides what a starting supervisor does with `record` at `now_ms`.
pub fn at_start(record: &WorkspaceRecord, now_ms: i64) -> AtStart {
    match record.state {
        WorkspaceState::Creating | WorkspaceState::Deleting => AtStart::Remove("unfinished"),
        _ if record.expires_at_ms <= now_ms => AtStart::Remove("ttl_expired"),
        WorkspaceState::Started | WorkspaceState::Starting | WorkspaceState::Resetting => {
            AtStart::Resume
        }
        WorkspaceState::Stopping | WorkspaceState::Stopped => AtStart::Keep,
    }
}

/// How a lifecycle operation ended, for those that waited for it: `Ok`
/// when the workspace may be used as asked, else the operation's error.
pub type Settled = Result<(), ErrorBody>;

/// Operations waiting for the lifecycle operation under way to end. The
/// actor queues them instead of blocking and wakes them all when it ends.
#[derive(Debug, Default)]
pub struct SettleWaiters {
    waiting: Vec<oneshot::Sender<Settled>>,
}

impl SettleWaiters {
    /// Queues a waiter; the receiver gets the outcome (or closes if the
    /// workspace goes away first).
    pub fn wait(&mut self) -> oneshot::Receiver<Settled> {
        let (tx, rx) = oneshot::channel();
        self.waiting.push(tx);
        rx
    }

    /// Wakes every waiter with `outcome`; returns how many there were.
    pub fn settle(&mut self, outcome: &Settled) -> usize {
        let waiting = std::mem::take(&mut self.waiting);
        let count = waiting.len();
        for waiter in waiting {
            let _ = waiter.send(outcome.clone());
        }
        count
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pyro_sdk::api::workspace::{FailurePolicy, SeedInfo};

    use super::*;

    fn core(state: WorkspaceState) -> WorkspaceCore {
        WorkspaceCore::new(WorkspaceRecord {
            id: "aaaaaaaaaaaa".into(),
            name: None,
            labels: BTreeMap::new(),
            environment: "debian:12".into(),
            environment_version: "1.0.0".into(),
            vcpu_count: 1,
            mem_mib: 1024,
            disk_mib: 4096,
            ttl_seconds: 600,
            on_failure: FailurePolicy::Restart,
            state,
            created_at_ms: 0,
            last_activity_at_ms: 0,
            expires_at_ms: 600_000,
            seed: SeedInfo {
                mode: "empty".into(),
                seed_path: None,
                destination: "/workspace".into(),
                entry_count: 0,
                bytes_written: 0,
            },
            secrets: vec![],
            command_count: 0,
            last_command: None,
            reset_count: 0,
            last_reset_at_ms: None,
            last_error: None,
            current_vm: None,
            services: Vec::new(),
        })
    }

    #[test]
    fn lifecycle_operations_exclude_each_other() {
        let mut ws = core(WorkspaceState::Started);
        assert_eq!(ws.begin(Lifecycle::Stop).unwrap(), Plan::Proceed);
        assert_eq!(ws.state(), WorkspaceState::Stopping);
        let err = ws.begin(Lifecycle::Reset).unwrap_err();
        assert!(
            err.to_string()
                .contains("no other start, stop or reset running"),
            "{err}"
        );
        assert!(ws.require_started("exec").is_err());
        ws.finish(WorkspaceState::Stopped, None);
        assert_eq!(ws.begin(Lifecycle::Stop).unwrap(), Plan::AlreadyDone);
        let err = ws.require_started("exec").unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace aaaaaaaaaaaa is stopped; exec needs it started"
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("start it with `pyro workspace start aaaaaaaaaaaa`")
        );
        ws.require_stopped("disk read").unwrap();
        assert_eq!(ws.begin(Lifecycle::Start).unwrap(), Plan::Proceed);
        ws.finish(WorkspaceState::Started, None);
        assert_eq!(ws.begin(Lifecycle::Start).unwrap(), Plan::AlreadyDone);
    }

    #[test]
    fn delete_wins_over_a_stopped_or_started_workspace_and_is_idempotent() {
        let mut ws = core(WorkspaceState::Stopped);
        assert_eq!(ws.begin(Lifecycle::Delete).unwrap(), Plan::Proceed);
        assert_eq!(ws.begin(Lifecycle::Delete).unwrap(), Plan::AlreadyDone);
        assert!(ws.begin(Lifecycle::Start).is_err());
    }

    #[test]
    fn failures_are_kept_until_a_successful_start() {
        let mut ws = core(WorkspaceState::Started);
        ws.begin(Lifecycle::Recover).unwrap();
        ws.finish(WorkspaceState::Stopped, Some("vm died".into()));
        assert_eq!(ws.record().last_error.as_deref(), Some("vm died"));
        ws.begin(Lifecycle::Start).unwrap();
        ws.finish(WorkspaceState::Started, None);
        assert_eq!(ws.record().last_error, None);
    }

    #[test]
    fn lifecycle_operations_other_than_delete_are_waited_for() {
        let mut ws = core(WorkspaceState::Started);
        assert!(!ws.settling());
        ws.begin(Lifecycle::Recover).unwrap();
        assert!(ws.settling() && ws.booting());
        ws.finish(WorkspaceState::Started, None);
        ws.begin(Lifecycle::Stop).unwrap();
        assert!(ws.settling() && !ws.booting());
        ws.finish(WorkspaceState::Stopped, None);
        ws.begin(Lifecycle::Delete).unwrap();
        assert!(!ws.settling(), "a delete ends the workspace; nobody waits");
    }

    #[test]
    fn an_abandoned_start_keeps_the_state_to_resume() {
        let mut ws = core(WorkspaceState::Stopped);
        ws.begin(Lifecycle::Start).unwrap();
        ws.abandon();
        assert_eq!(ws.state(), WorkspaceState::Starting);
        assert_eq!(ws.busy(), None);
        assert_eq!(ws.record().last_error, None);
    }

    #[test]
    fn waiters_all_learn_the_outcome_once() {
        let mut waiters = SettleWaiters::default();
        let mut first = waiters.wait();
        let mut second = waiters.wait();
        assert_eq!(waiters.len(), 2);
        let failed = ErrorBody::new(pyro_sdk::api::ErrorCode::VmBootFailed, "boot timed out");
        assert_eq!(waiters.settle(&Err(failed.clone())), 2);
        assert!(waiters.is_empty());
        assert_eq!(first.try_recv().unwrap(), Err(failed.clone()));
        assert_eq!(second.try_recv().unwrap(), Err(failed));
        assert_eq!(waiters.settle(&Ok(())), 0, "each waiter is woken once");
        let mut third = waiters.wait();
        drop(waiters);
        assert!(
            third.try_recv().is_err(),
            "a gone workspace closes the wait"
        );
    }

    #[test]
    fn a_starting_supervisor_reaps_expired_workspaces_instead_of_booting_them() {
        let mut ws = core(WorkspaceState::Started);
        let expires = ws.record().expires_at_ms;
        assert_eq!(at_start(ws.record(), expires - 1), AtStart::Resume);
        assert_eq!(
            at_start(ws.record(), expires),
            AtStart::Remove("ttl_expired")
        );
        ws.record.state = WorkspaceState::Stopped;
        assert_eq!(at_start(ws.record(), expires - 1), AtStart::Keep);
        assert_eq!(
            at_start(ws.record(), expires + 1),
            AtStart::Remove("ttl_expired")
        );
        for state in [WorkspaceState::Starting, WorkspaceState::Resetting] {
            ws.record.state = state;
            assert_eq!(at_start(ws.record(), 0), AtStart::Resume);
        }
        ws.record.state = WorkspaceState::Stopping;
        assert_eq!(at_start(ws.record(), 0), AtStart::Keep);
        ws.record.state = WorkspaceState::Creating;
        assert_eq!(at_start(ws.record(), 0), AtStart::Remove("unfinished"));
    }

    #[test]
    fn a_transitional_state_hints_at_waiting_not_at_starting() {
        let mut ws = core(WorkspaceState::Stopped);
        ws.begin(Lifecycle::Start).unwrap();
        let err = ws.require_started("exec").unwrap_err();
        assert_eq!(
            err.to_string(),
            "workspace aaaaaaaaaaaa is starting; exec needs it started"
        );
        let hint = err.hint().unwrap();
        assert!(hint.contains("wait"), "{hint}");
        assert!(!hint.contains("pyro workspace start"), "{hint}");
    }

    #[test]
    fn commands_and_resets_are_counted() {
        let mut ws = core(WorkspaceState::Started);
        assert_eq!(ws.next_sequence(), 1);
        ws.command_finished(CommandSummary {
            sequence: 1,
            command: "true".into(),
            cwd: "/workspace".into(),
            exit_code: 0,
            duration_ms: 3,
        });
        assert_eq!(ws.next_sequence(), 2);
        ws.reset_done();
        assert_eq!(ws.record().command_count, 0);
        assert_eq!(ws.record().reset_count, 1);
        assert!(ws.record().last_reset_at_ms.is_some());
        assert_eq!(ws.next_sequence(), 1);
    }

    #[test]
    fn updates_change_something_or_fail() {
        let mut ws = core(WorkspaceState::Started);
        let rename = UpdateWorkspaceRequest {
            name: Some(" api ".into()),
            labels: BTreeMap::from([("team".into(), "infra".into())]),
            ..Default::default()
        };
        ws.update(&rename).unwrap();
        assert_eq!(ws.record().name.as_deref(), Some("api"));
        assert!(
            ws.update(&rename).is_err(),
            "the same update again changes nothing"
        );
        let extend = UpdateWorkspaceRequest {
            ttl_seconds: Some(7200),
            ..Default::default()
        };
        let before = ws.record().expires_at_ms;
        ws.update(&extend).unwrap();
        assert!(ws.record().expires_at_ms > before);
        assert_eq!(ws.record().ttl_seconds, 7200);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}

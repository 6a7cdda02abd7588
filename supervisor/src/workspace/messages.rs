//! Messages to the workspace actor: one per verb.

use actix::prelude::*;
use pyro_sdk::api::session::{
    ServiceInfo, ServiceList, ServiceLogs, ServiceLogsRequest, ServiceStartRequest, ShellInfo,
    ShellList, ShellOpenRequest, ShellReadRequest, ShellReadResult, ShellResizeRequest,
    ShellSignalRequest, ShellWriteRequest,
};
use pyro_sdk::api::workspace::{
    DeleteResult, DiffRequest, DiffResult, DiskExportRequest, DiskExportResult, ExecEvent,
    ExecRequest, ExportRequest, ExportResult, ListRequest, ListResult, LogList, PatchRequest,
    PatchResult, ReadRequest, ReadResult, ResetRequest, ResetResult, SnapshotDeleted, SnapshotInfo,
    SnapshotList, SnapshotRequest, SyncPushRequest, SyncPushResult, UpdateWorkspaceRequest,
    WorkspaceInfo, WriteRequest, WriteResult,
};
use tokio::sync::mpsc;

use crate::error::SupervisorError;
use crate::store::WorkspaceRecord;

type Answer<T> = Result<T, SupervisorError>;

/// The workspace as the API shows it.
#[derive(Debug, Message)]
#[rtype(result = "WorkspaceInfo")]
pub struct GetInfo;

/// The record, for the reaper and listings.
#[derive(Debug, Message)]
#[rtype(result = "WorkspaceRecord")]
pub struct GetRecord;

/// Finish creating: boot the VM and restore the baseline into /workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<WorkspaceInfo>")]
pub struct Boot;

/// Run a command; events go to `events`, the last one a result or error.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Exec {
    /// What to run.
    pub request: ExecRequest,
    /// Where its output and result go.
    pub events: mpsc::Sender<ExecEvent>,
}

/// Change name, labels or TTL.
#[derive(Debug, Message)]
#[rtype(result = "Answer<WorkspaceInfo>")]
pub struct Update(pub UpdateWorkspaceRequest);

/// The command history.
#[derive(Debug, Message)]
#[rtype(result = "Answer<LogList>")]
pub struct Logs;

/// Copy a host directory or archive into the workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<SyncPushResult>")]
pub struct SyncPush(pub SyncPushRequest);

/// Copy a path out of the workspace to the host.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ExportResult>")]
pub struct Export(pub ExportRequest);

/// Compare /workspace with a snapshot.
#[derive(Debug, Message)]
#[rtype(result = "Answer<DiffResult>")]
pub struct Diff(pub DiffRequest);

/// List a path of the running workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ListResult>")]
pub struct ListFiles(pub ListRequest);

/// Read a file of the running workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ReadResult>")]
pub struct ReadFile(pub ReadRequest);

/// Write a file of the running workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<WriteResult>")]
pub struct WriteFile(pub WriteRequest);

/// Apply a unified diff, all files or none.
#[derive(Debug, Message)]
#[rtype(result = "Answer<PatchResult>")]
pub struct ApplyPatch(pub PatchRequest);

/// Take a named snapshot of /workspace.
#[derive(Debug, Message)]
#[rtype(result = "Answer<SnapshotInfo>")]
pub struct CreateSnapshot(pub SnapshotRequest);

/// The snapshots.
#[derive(Debug, Message)]
#[rtype(result = "Answer<SnapshotList>")]
pub struct ListSnapshots;

/// Remove a named snapshot.
#[derive(Debug, Message)]
#[rtype(result = "Answer<SnapshotDeleted>")]
pub struct DeleteSnapshot(pub String);

/// Recreate the disk and restore a snapshot.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ResetResult>")]
pub struct Reset(pub ResetRequest);

/// Power off; the disk is kept.
#[derive(Debug, Message)]
#[rtype(result = "Answer<WorkspaceInfo>")]
pub struct Stop;

/// Boot a stopped workspace on its disk.
#[derive(Debug, Message)]
#[rtype(result = "Answer<WorkspaceInfo>")]
pub struct Start;

/// Remove the workspace and everything it has.
#[derive(Debug, Message)]
#[rtype(result = "Answer<DeleteResult>")]
pub struct Delete {
    /// `explicit_delete` or `ttl_expired`.
    pub reason: &'static str,
}

/// Copy the stopped workspace's disk image out.
#[derive(Debug, Message)]
#[rtype(result = "Answer<DiskExportResult>")]
pub struct DiskExport(pub DiskExportRequest);

/// List a path of the stopped workspace's disks.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ListResult>")]
pub struct DiskList(pub ListRequest);

/// Read a file of the stopped workspace's disks.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ReadResult>")]
pub struct DiskRead(pub ReadRequest);

/// Supervisor shutdown: power the VM off and keep the state for the next
/// start. A boot under way is left to the root to cancel; its failure is
/// not recorded.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Suspend;

/// Open a PTY shell.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ShellInfo>")]
pub struct OpenShell(pub ShellOpenRequest);

/// The shells.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ShellList>")]
pub struct ListShells;

/// Read a shell's output.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ShellReadResult>")]
pub struct ReadShellOutput {
    /// The shell.
    pub shell_id: String,
    /// What to read.
    pub request: ShellReadRequest,
}

/// Operations on one shell that answer with its status.
#[derive(Debug)]
pub enum ShellCommand {
    /// Type input.
    Write(ShellWriteRequest),
    /// Send a signal.
    Signal(ShellSignalRequest),
    /// Change the size.
    Resize(ShellResizeRequest),
    /// Hang up and forget it.
    Close,
}

/// Run a [`ShellCommand`].
#[derive(Debug, Message)]
#[rtype(result = "Answer<ShellInfo>")]
pub struct ShellOp {
    /// The shell.
    pub shell_id: String,
    /// What to do.
    pub command: ShellCommand,
}

/// Start a service.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ServiceInfo>")]
pub struct StartServiceCall(pub ServiceStartRequest);

/// The services.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ServiceList>")]
pub struct ListServicesCall;

/// One service's status.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ServiceInfo>")]
pub struct ServiceStatusCall(pub String);

/// Stop a service.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ServiceInfo>")]
pub struct StopServiceCall(pub String);

/// A service's logs.
#[derive(Debug, Message)]
#[rtype(result = "Answer<ServiceLogs>")]
pub struct ServiceLogsCall {
    /// The service.
    pub name: String,
    /// Which lines.
    pub request: ServiceLogsRequest,
}

/// Follow a service's logs into `events`.
#[derive(Debug, Message)]
#[rtype(result = "Answer<()>")]
pub struct FollowServiceLogsCall {
    /// The service.
    pub name: String,
    /// Which lines.
    pub request: ServiceLogsRequest,
    /// Where they go.
    pub events: mpsc::Sender<pyro_sdk::api::session::ServiceLogEvent>,
}

/// Wait until no creation, start, stop, reset or recovery runs (answers at
/// once when none does). `Err` when the start, reset or recovery waited for
/// failed, or it did not end within the boot timeout (and a margin).
#[derive(Debug, Message)]
#[rtype(result = "Answer<()>")]
pub struct AwaitSettled;

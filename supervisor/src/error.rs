//! The supervisor's error type, and how each error reaches clients: a stable
//! code, the message chain, a hint, and (for guest failures) the console.

use std::path::PathBuf;

use pyro_actors::ActorError;
use pyro_sdk::api::{ErrorBody, ErrorCode};

use crate::environment::EnvironmentError;

/// Everything the supervisor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A host file operation failed.
    #[error("{action} {} failed", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A guest binary could not be read.
    #[error("reading the guest binary {} failed", path.display())]
    GuestBinary {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// pyro-init and pyro-guest-agent were not found.
    #[error(
        "the guest binaries (pyro-init, pyro-guest-agent) were not found (looked in {looked})"
    )]
    GuestBinariesMissing {
        /// Where we looked.
        looked: String,
    },
    /// An environment operation failed.
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// The environment manager could not provide an environment.
    #[error("{}", body.chain())]
    EnvironmentUnavailable {
        /// Its error, as the manager reported it.
        body: ErrorBody,
    },
    /// A VM operation failed.
    #[error(transparent)]
    Actor(#[from] ActorError),
    /// Another supervisor owns this state directory.
    #[error("another pyro supervisor is already running for {}", socket.display())]
    AlreadyRunning {
        /// Its socket.
        socket: PathBuf,
    },
    /// The API socket could not be bound.
    #[error("listening on {} failed", socket.display())]
    Bind {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A request field is invalid.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, naming the field.
        message: String,
    },
    /// The VM does not exist.
    #[error("vm '{vm_id}' does not exist")]
    UnknownVm {
        /// The id asked for.
        vm_id: String,
    },
    /// The running-VM limit was reached.
    #[error("{running} VMs are already running, the limit is {limit}")]
    LimitReached {
        /// The limit.
        limit: usize,
        /// How many run.
        running: usize,
    },
    /// The host cannot run guests.
    #[error("no VM backend can run here: {reason}")]
    BackendUnavailable {
        /// What is missing.
        reason: String,
    },
    /// A one-shot run outlived its time to live.
    #[error("vm {vm_id} outlived its time to live of {seconds}s and was deleted")]
    TtlExpired {
        /// The VM.
        vm_id: String,
        /// The TTL.
        seconds: u64,
    },
    /// The workspace does not exist.
    #[error("workspace '{workspace_id}' does not exist")]
    UnknownWorkspace {
        /// The id asked for.
        workspace_id: String,
    },
    /// The workspace's state does not allow the operation.
    #[error("workspace {workspace_id} is {state}; {action} needs it {needs}")]
    WorkspaceState {
        /// The workspace.
        workspace_id: String,
        /// Its state.
        state: &'static str,
        /// The operation.
        action: &'static str,
        /// The state it needs.
        needs: &'static str,
    },
    /// The workspace's start (or reset, or recovery) that an operation
    /// waited for failed.
    #[error("workspace {workspace_id} could not start: {}", body.chain())]
    StartFailed {
        /// The workspace.
        workspace_id: String,
        /// The start's error (boxed: it is large and this is rare).
        body: Box<ErrorBody>,
    },
    /// A lifecycle operation an operation waited for did not end in time.
    #[error("workspace {workspace_id} is still {state} after {seconds}s")]
    StillBusy {
        /// The workspace.
        workspace_id: String,
        /// Its state.
        state: &'static str,
        /// How long we waited.
        seconds: u64,
    },
    /// The snapshot does not exist.
    #[error("snapshot '{name}' does not exist in workspace {workspace_id}")]
    UnknownSnapshot {
        /// The workspace.
        workspace_id: String,
        /// The name asked for.
        name: String,
    },
    /// The snapshot name is taken.
    #[error("snapshot '{name}' already exists in workspace {workspace_id}")]
    SnapshotExists {
        /// The workspace.
        workspace_id: String,
        /// The name.
        name: String,
    },
    /// `baseline` cannot be created or deleted.
    #[error("the snapshot name 'baseline' is reserved for the create-time seed")]
    BaselineReserved,
    /// A guest path was refused.
    #[error(transparent)]
    Path(#[from] crate::workspace::paths::PathError),
    /// A host output path exists already.
    #[error("{} already exists; pyro never overwrites, choose a new output path", path.display())]
    OutputExists {
        /// The path.
        path: PathBuf,
    },
    /// A seed or export archive was refused or failed.
    #[error(transparent)]
    Archive(#[from] pyro_actors::archive::ArchiveError),
    /// Reading a stopped workspace's disk failed.
    #[error(transparent)]
    Disk(#[from] pyro_actors::disk::DiskError),
    /// The record database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The shell does not exist.
    #[error("shell '{shell_id}' does not exist in workspace {workspace_id}")]
    UnknownShell {
        /// The workspace.
        workspace_id: String,
        /// The shell asked for.
        shell_id: String,
    },
    /// The shell has ended.
    #[error("shell '{shell_id}' has ended; open a new one with `pyro workspace shell open`")]
    ShellNotRunning {
        /// The shell.
        shell_id: String,
    },
    /// The service does not exist.
    #[error("service '{name}' does not exist in workspace {workspace_id}")]
    UnknownService {
        /// The workspace.
        workspace_id: String,
        /// The name asked for.
        name: String,
    },
    /// A service of that name is running.
    #[error("service '{name}' is already running in workspace {workspace_id}; stop it first")]
    ServiceRunning {
        /// The workspace.
        workspace_id: String,
        /// The name.
        name: String,
    },
    /// A command pyro runs in the guest for its own bookkeeping failed.
    #[error("{what} failed in the guest (exit code {exit_code})")]
    GuestCommand {
        /// What it was for.
        what: String,
        /// Its exit code.
        exit_code: i32,
    },
    /// An actor the request needed is gone.
    #[error("{what} is shutting down")]
    ActorGone {
        /// What.
        what: String,
    },
}

impl SupervisorError {
    /// A wrapper for host I/O failures.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The stable code clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } | Self::GuestBinary { .. } | Self::Bind { .. } => ErrorCode::Internal,
            Self::GuestBinariesMissing { .. } | Self::BackendUnavailable { .. } => {
                ErrorCode::BackendUnavailable
            }
            Self::Environment(err) => environment_code(err),
            Self::EnvironmentUnavailable { body } => body.code,
            Self::Actor(err) => actor_code(err),
            Self::AlreadyRunning { .. } => ErrorCode::Conflict,
            Self::InvalidRequest { .. } => ErrorCode::InvalidArgument,
            Self::UnknownVm { .. } => ErrorCode::UnknownVm,
            Self::LimitReached { .. } => ErrorCode::LimitReached,
            Self::TtlExpired { .. } => ErrorCode::GuestUnavailable,
            Self::ActorGone { .. } => ErrorCode::SupervisorUnavailable,
            Self::UnknownWorkspace { .. } => ErrorCode::UnknownWorkspace,
            Self::WorkspaceState { .. }
            | Self::SnapshotExists { .. }
            | Self::OutputExists { .. } => ErrorCode::Conflict,
            Self::StartFailed { body, .. } => body.code,
            Self::StillBusy { .. } => ErrorCode::Conflict,
            Self::UnknownSnapshot { .. } => ErrorCode::NotFound,
            Self::BaselineReserved | Self::Path(_) => ErrorCode::InvalidArgument,
            Self::Store(_) => ErrorCode::Internal,
            Self::Archive(err) => archive_code(err),
            Self::Disk(_) => ErrorCode::NotFound,
            Self::GuestCommand { .. } => ErrorCode::GuestError,
            Self::UnknownShell { .. } | Self::UnknownService { .. } => ErrorCode::NotFound,
            Self::ShellNotRunning { .. } | Self::ServiceRunning { .. } => ErrorCode::Conflict,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::GuestBinariesMissing { .. } => Some(
                "run scripts/setup (it builds and installs pyro-init and pyro-guest-agent), or set PYRO_GUEST_DIR"
                    .to_owned(),
            ),
            Self::BackendUnavailable { .. } => Some("run `pyro doctor` to see what to install".to_owned()),
            Self::LimitReached { .. } => Some(
                "wait for a run to finish or delete a workspace; raise the limit with PYRO_MAX_RUNNING_VMS".to_owned(),
            ),
            Self::Environment(err) => environment_hint(err),
            Self::EnvironmentUnavailable { body } => body.hint.clone(),
            Self::UnknownWorkspace { .. } => Some("list workspaces with `pyro workspace list`".to_owned()),
            Self::WorkspaceState { workspace_id, state, .. } if is_transitional(state) => {
                Some(format!(
                    "it is {state}; wait for that to finish (see `pyro workspace status {workspace_id}`) and try again"
                ))
            }
            Self::StillBusy { workspace_id, .. } => Some(format!(
                "see `pyro workspace status {workspace_id}` and the supervisor log"
            )),
            Self::StartFailed { body, .. } => body.hint.clone(),
            Self::WorkspaceState { workspace_id, needs, .. } if *needs == "started" => {
                Some(format!("start it with `pyro workspace start {workspace_id}`"))
            }
            Self::WorkspaceState { workspace_id, needs, .. } if *needs == "stopped" => {
                Some(format!("stop it with `pyro workspace stop {workspace_id}`"))
            }
            Self::UnknownSnapshot { workspace_id, .. } => {
                Some(format!("list snapshots with `pyro workspace snapshot list {workspace_id}`"))
            }
            Self::Actor(err) => actor_hint(err),
            _ => None,
        }
    }

    /// The error as clients see it.
    pub fn to_body(&self) -> ErrorBody {
        let mut body = ErrorBody::from_error(self.code(), self);
        body.hint = self.hint();
        if let Self::Actor(err) = self {
            body.detail = err
                .console()
                .map(|console| format!("last guest console lines:\n{console}"));
        }
        if let Self::StartFailed { body: cause, .. } = self {
            body.detail.clone_from(&cause.detail);
        }
        body
    }
}

/// Whether a workspace state is on the way to another (it settles by itself).
fn is_transitional(state: &str) -> bool {
    matches!(
        state,
        "creating" | "starting" | "stopping" | "resetting" | "deleting"
    )
}

fn archive_code(err: &pyro_actors::archive::ArchiveError) -> ErrorCode {
    use pyro_actors::archive::ArchiveError;
    match err {
        ArchiveError::OutputExists { .. } => ErrorCode::Conflict,
        ArchiveError::Io { .. } => ErrorCode::Internal,
        _ => ErrorCode::InvalidArgument,
    }
}

fn environment_code(err: &EnvironmentError) -> ErrorCode {
    match err {
        EnvironmentError::UnknownEnvironment { .. } => ErrorCode::UnknownEnvironment,
        _ => ErrorCode::EnvironmentInstallFailed,
    }
}

fn environment_hint(err: &EnvironmentError) -> Option<String> {
    match err {
        EnvironmentError::UnknownEnvironment { .. } => Some("list them with `pyro env list`".to_owned()),
        _ => Some("see `pyro doctor`; building environments needs mmdebstrap and access to the Debian mirror".to_owned()),
    }
}

fn actor_code(err: &ActorError) -> ErrorCode {
    match err {
        ActorError::MissingProgram { .. } => ErrorCode::BackendUnavailable,
        ActorError::HostIo { .. } | ActorError::Spawn { .. } | ActorError::HostCommand { .. } => {
            ErrorCode::Internal
        }
        ActorError::SidecarNotReady { .. }
        | ActorError::ExitedDuringBoot { .. }
        | ActorError::GuestBootFailed { .. }
        | ActorError::BootTimeout { .. } => ErrorCode::VmBootFailed,
        ActorError::NotRunning { .. } => ErrorCode::Conflict,
        ActorError::NotAdoptable { .. } => ErrorCode::GuestUnavailable,
        ActorError::VmDied { .. }
        | ActorError::ChannelConnect { .. }
        | ActorError::ChannelRefused { .. }
        | ActorError::ChannelTimeout { .. }
        | ActorError::Channel(_)
        | ActorError::UnexpectedFrame { .. } => ErrorCode::GuestUnavailable,
        ActorError::Guest { .. } => ErrorCode::GuestError,
        ActorError::ActorGone { .. } => ErrorCode::SupervisorUnavailable,
    }
}

fn actor_hint(err: &ActorError) -> Option<String> {
    match err {
        ActorError::MissingProgram { .. } => Some("run `pyro doctor`".to_owned()),
        ActorError::SidecarNotReady { .. } => Some(format!(
            "check vhost-device-vsock with `pyro doctor`; reinstall it with `{}`",
            crate::host::SIDECAR_INSTALL
        )),
        ActorError::ExitedDuringBoot { .. }
        | ActorError::GuestBootFailed { .. }
        | ActorError::BootTimeout { .. } => Some(
            "the guest console above shows how far the boot got; `pyro doctor` checks the host"
                .to_owned(),
        ),
        ActorError::VmDied { .. } => {
            Some("the VM process was killed or crashed; run the command again".to_owned())
        }
        _ => None,
    }
}

//! Persistent workspaces: a VM with its own writable disk and a `/workspace`
//! tree that can be seeded, synced, diffed, patched, snapshotted, reset and
//! exported.
//!
//! # Endpoints (all under `/v1/workspaces`)
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /` | [`CreateWorkspaceRequest`] | stream of [`CreateEvent`] |
//! | `GET /` | | [`WorkspaceList`] |
//! | `GET /{id}` | | [`WorkspaceInfo`] |
//! | `POST /{id}/update` | [`UpdateWorkspaceRequest`] | [`WorkspaceInfo`] |
//! | `DELETE /{id}` | | [`DeleteResult`] |
//! | `GET /{id}/logs` | | [`LogList`] |
//! | `POST /{id}/exec` | [`ExecRequest`] | stream of [`ExecEvent`] |
//! | `POST /{id}/sync` | [`SyncPushRequest`] | [`SyncPushResult`] |
//! | `POST /{id}/export` | [`ExportRequest`] | [`ExportResult`] |
//! | `POST /{id}/diff` | [`DiffRequest`] | [`DiffResult`] |
//! | `POST /{id}/files/list` | [`ListRequest`] | [`ListResult`] |
//! | `POST /{id}/files/read` | [`ReadRequest`] | [`ReadResult`] |
//! | `POST /{id}/files/write` | [`WriteRequest`] | [`WriteResult`] |
//! | `POST /{id}/patch` | [`PatchRequest`] | [`PatchResult`] |
//! | `POST /{id}/snapshots` | [`SnapshotRequest`] | [`SnapshotInfo`] |
//! | `GET /{id}/snapshots` | | [`SnapshotList`] |
//! | `DELETE /{id}/snapshots/{name}` | | [`SnapshotDeleted`] |
//! | `POST /{id}/reset` | [`ResetRequest`] | [`ResetResult`] |
//! | `POST /{id}/stop` | | [`WorkspaceInfo`] |
//! | `POST /{id}/start` | | [`WorkspaceInfo`] |
//! | `POST /{id}/disk/export` | [`DiskExportRequest`] | [`DiskExportResult`] |
//! | `POST /{id}/disk/list` | [`ListRequest`] | [`ListResult`] |
//! | `POST /{id}/disk/read` | [`ReadRequest`] | [`ReadResult`] |
//!
//! Host paths (`seed_path`, `source_path`, `output_path`) are read and
//! written by the supervisor, which runs as the same user as its clients
//! (its socket is 0600).
//!
//! Times are RFC 3339 UTC strings. Paths inside the guest are absolute
//! (`/workspace/...`) in answers; requests accept paths relative to
//! `/workspace` too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::limits;
use super::{CommandSpec, ErrorBody, OutputChunk, PullProgress};

/// Where the workspace tree lives in the guest.
pub const WORKSPACE_PATH: &str = "/workspace";

/// Default writable disk size in MiB (sparse).
pub const DEFAULT_DISK_MIB: u64 = 4096;

/// Bounds of the writable disk size in MiB.
pub const DISK_MIB: std::ops::RangeInclusive<u64> = 512..=1_048_576;

/// Largest text accepted by `file write` and `patch apply`.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// Default and largest `max_bytes` of a file read.
pub const DEFAULT_READ_BYTES: u64 = 65_536;
/// Largest `max_bytes` of a file read.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

/// Where a workspace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceState {
    /// Being created (environment, disk, boot, seed).
    Creating,
    /// Booting (start, restart after a failure).
    Starting,
    /// Running: commands can run.
    Started,
    /// Powering off.
    Stopping,
    /// Not running; its disk is kept.
    Stopped,
    /// Being reset to a snapshot.
    Resetting,
    /// Being deleted.
    Deleting,
}

impl WorkspaceState {
    /// The snake_case name.
    ///
    /// ```
    /// assert_eq!(pyro_sdk::api::workspace::WorkspaceState::Started.as_str(), "started");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Starting => "starting",
            Self::Started => "started",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Resetting => "resetting",
            Self::Deleting => "deleting",
        }
    }
}

/// What happens when a workspace's VM dies without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Boot it again on the same disk.
    #[default]
    Restart,
    /// Recreate the disk and restore the baseline.
    Reset,
    /// Mark it stopped, with the error.
    Stop,
}

impl FailurePolicy {
    /// The snake_case name.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::FailurePolicy;
    /// assert_eq!(FailurePolicy::default().as_str(), "restart");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Reset => "reset",
            Self::Stop => "stop",
        }
    }
}

/// `POST /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// Catalog name of the environment.
    pub environment: String,
    /// A host directory or `.tar`/`.tar.gz`/`.tgz` to seed `/workspace` with.
    #[serde(default)]
    pub seed_path: Option<String>,
    /// A name for people (at most 120 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// vCPUs (1-8).
    #[serde(default = "default_vcpu")]
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    #[serde(default = "default_mem")]
    pub mem_mib: u32,
    /// Writable disk size in MiB.
    #[serde(default = "default_disk")]
    pub disk_mib: u64,
    /// Seconds until the workspace is deleted (extendable with update).
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    /// What to do when the VM dies.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Secrets, available to single commands through `secret_env` and as
    /// files under `/run/pyro-secrets/` in the guest.
    #[serde(default)]
    pub secrets: Vec<super::session::SecretSpec>,
}

fn default_vcpu() -> u8 {
    limits::DEFAULT_VCPU
}
fn default_mem() -> u32 {
    limits::DEFAULT_MEM_MIB
}
fn default_disk() -> u64 {
    DEFAULT_DISK_MIB
}
fn default_ttl() -> u64 {
    limits::DEFAULT_TTL_SECONDS
}

impl CreateWorkspaceRequest {
    /// A request with every default.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::{CreateWorkspaceRequest, DEFAULT_DISK_MIB};
    /// let mut request = CreateWorkspaceRequest::new("debian:12");
    /// request.seed_path = Some("./repo".into());
    /// assert_eq!(request.disk_mib, DEFAULT_DISK_MIB);
    /// assert!(request.secrets.is_empty());
    /// ```
    pub fn new(environment: impl Into<String>) -> Self {
        Self {
            environment: environment.into(),
            seed_path: None,
            name: None,
            labels: BTreeMap::new(),
            vcpu_count: default_vcpu(),
            mem_mib: default_mem(),
            disk_mib: default_disk(),
            ttl_seconds: default_ttl(),
            on_failure: FailurePolicy::default(),
            secrets: Vec::new(),
        }
    }

    /// Checks every field; the message names the bad one.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::CreateWorkspaceRequest;
    /// let mut request = CreateWorkspaceRequest::new("debian:12");
    /// request.labels.insert("team".into(), "infra".into());
    /// assert!(request.validate().is_ok());
    /// request.vcpu_count = 0;
    /// assert_eq!(request.validate().unwrap_err(), "vcpu_count must be between 1 and 8 (got 0)");
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if self.environment.trim().is_empty() {
            return Err("environment must not be empty".to_owned());
        }
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        for (key, value) in &self.labels {
            validate_label(key, value)?;
        }
        limits::check("vcpu_count", self.vcpu_count, &limits::VCPU)?;
        limits::check("mem_mib", self.mem_mib, &limits::MEM_MIB)?;
        limits::check("disk_mib", self.disk_mib, &DISK_MIB)?;
        limits::check("ttl_seconds", self.ttl_seconds, &limits::TTL_SECONDS)?;
        super::session::validate_secrets(&self.secrets)
    }
}

/// Checks a workspace name.
///
/// ```
/// use pyro_sdk::api::workspace::validate_name;
/// assert!(validate_name("fix the flaky test").is_ok());
/// assert!(validate_name("two\nlines").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("name must not be empty (use clear_name to remove it)".to_owned());
    }
    if trimmed.chars().count() > 120 || trimmed.contains(['\n', '\r']) {
        return Err("name must be one line of at most 120 characters".to_owned());
    }
    Ok(())
}

/// Checks a label key and value.
///
/// ```
/// use pyro_sdk::api::workspace::validate_label;
/// assert!(validate_label("team", "infra").is_ok());
/// assert!(validate_label("bad key", "infra").unwrap_err().contains("label key"));
/// ```
pub fn validate_label(key: &str, value: &str) -> Result<(), String> {
    if !is_simple_name(key) {
        return Err(format!(
            "label key {key:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
        ));
    }
    if value.trim().is_empty() || value.chars().count() > 120 || value.contains(['\n', '\r']) {
        return Err(format!(
            "label {key} needs a one-line value of 1 to 120 characters"
        ));
    }
    Ok(())
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`: label keys, snapshot and service names.
///
/// ```
/// use pyro_sdk::api::workspace::is_simple_name;
/// assert!(is_simple_name("checkpoint-1.a_b"));
/// assert!(!is_simple_name("-leading-dash"));
/// ```
pub fn is_simple_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 64
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// How `/workspace` was seeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedInfo {
    /// `empty`, `directory` or `tar_archive`.
    pub mode: String,
    /// The host path it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_path: Option<String>,
    /// `/workspace`.
    pub destination: String,
    /// Entries in the seed.
    pub entry_count: u64,
    /// Bytes of file content in the seed.
    pub bytes_written: u64,
}

/// A secret's safe metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// `literal` or `file`.
    pub source_kind: String,
    /// Its length in bytes.
    pub size_bytes: u64,
}

/// The last command of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSummary {
    /// Its sequence number (1, 2, ...).
    pub sequence: u64,
    /// The command line.
    pub command: String,
    /// Where it ran.
    pub cwd: String,
    /// Its exit code.
    pub exit_code: i32,
    /// How long it ran.
    pub duration_ms: u64,
}

/// A workspace, as status, create, update, stop, start and reset report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    /// Its id (12 hex characters).
    pub workspace_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Catalog name of the environment.
    pub environment: String,
    /// The environment's version.
    pub environment_version: String,
    /// Its state.
    pub state: WorkspaceState,
    /// vCPUs.
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// Writable disk size in MiB.
    pub disk_mib: u64,
    /// Time to live in seconds.
    pub ttl_seconds: u64,
    /// What happens when its VM dies.
    pub on_failure: FailurePolicy,
    /// When it was created.
    pub created_at: String,
    /// When it was last used.
    pub last_activity_at: String,
    /// When it will be deleted.
    pub expires_at: String,
    /// Always `guest_vsock`.
    pub execution_mode: String,
    /// `/workspace`.
    pub workspace_path: String,
    /// Always `off` in this version.
    pub network_policy: String,
    /// How it was seeded.
    pub workspace_seed: SeedInfo,
    /// Its secrets' metadata.
    pub secrets: Vec<SecretInfo>,
    /// Commands run since create or the last reset.
    pub command_count: u64,
    /// The last command.
    pub last_command: Option<CommandSummary>,
    /// Resets so far.
    pub reset_count: u64,
    /// When it was last reset.
    pub last_reset_at: Option<String>,
    /// Services defined.
    pub service_count: u64,
    /// Services running.
    pub running_service_count: u64,
    /// The last failure (a VM that died, a start that failed).
    pub last_error: Option<String>,
}

/// One line of the create stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CreateEvent {
    /// A step began: `environment`, `disk`, `boot`, `seed`.
    Phase {
        /// The step.
        phase: String,
        /// The workspace.
        workspace_id: String,
    },
    /// Environment install progress.
    Pull(PullProgress),
    /// The workspace is started; the last line.
    Result(Box<WorkspaceInfo>),
    /// Creating failed and nothing is left behind; the last line.
    Error(ErrorBody),
}

/// `GET /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceList {
    /// How many.
    pub count: usize,
    /// Most recently active first.
    pub workspaces: Vec<WorkspaceInfo>,
}

/// `POST /v1/workspaces/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspaceRequest {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// Remove the name.
    #[serde(default)]
    pub clear_name: bool,
    /// Labels to add or change.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default)]
    pub clear_labels: Vec<String>,
    /// A new time to live, counted from now.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

impl UpdateWorkspaceRequest {
    /// Checks every field, and that something is asked for.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::UpdateWorkspaceRequest;
    /// assert!(UpdateWorkspaceRequest::default().validate().unwrap_err().starts_with("nothing to update"));
    /// let request = UpdateWorkspaceRequest { ttl_seconds: Some(3600), ..Default::default() };
    /// assert!(request.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_none()
            && !self.clear_name
            && self.labels.is_empty()
            && self.clear_labels.is_empty()
            && self.ttl_seconds.is_none()
        {
            return Err("nothing to update: give --name, --clear-name, --label, --clear-label or --ttl-seconds".to_owned());
        }
        if self.name.is_some() && self.clear_name {
            return Err("give either a name or clear_name, not both".to_owned());
        }
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        for (key, value) in &self.labels {
            validate_label(key, value)?;
        }
        if let Some(ttl) = self.ttl_seconds {
            limits::check("ttl_seconds", ttl, &limits::TTL_SECONDS)?;
        }
        Ok(())
    }
}

/// `POST /v1/workspaces/{id}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// What to run.
    pub command: CommandSpec,
    /// Seconds before the command's process group is killed (exit 124).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Working directory (default `/workspace`; relative paths are under it).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets to put in this command's environment: secret name -> variable.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

fn default_timeout() -> u64 {
    limits::DEFAULT_TIMEOUT_SECONDS
}

impl ExecRequest {
    /// A request with every default.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::ExecRequest;
    /// use pyro_sdk::api::{limits, CommandSpec};
    /// let mut request = ExecRequest::new(CommandSpec::Shell("make test".into()));
    /// request.cwd = Some("src".into());
    /// assert_eq!(request.timeout_seconds, limits::DEFAULT_TIMEOUT_SECONDS);
    /// ```
    pub fn new(command: CommandSpec) -> Self {
        Self {
            command,
            timeout_seconds: default_timeout(),
            cwd: None,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
        }
    }

    /// Checks every field.
    ///
    /// ```
    /// use pyro_sdk::api::workspace::ExecRequest;
    /// use pyro_sdk::api::CommandSpec;
    /// let mut request = ExecRequest::new(CommandSpec::Argv(vec!["make".into(), "test".into()]));
    /// request.env.insert("RUST_LOG".into(), "debug".into());
    /// assert!(request.validate().is_ok());
    /// request.env.insert("NOT-A-NAME".into(), "x".into());
    /// assert!(request.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        self.command.validate()?;
        limits::check(
            "timeout_seconds",
            self.timeout_seconds,
            &limits::TIMEOUT_SECONDS,
        )?;
        for key in self.env.keys() {
            if !is_env_name(key) {
                return Err(format!(
                    "environment variable name {key:?} must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"
                ));
            }
        }
        super::session::validate_secret_env(&self.secret_env)
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`: environment variable and secret names.
///
/// ```
/// use pyro_sdk::api::workspace::is_env_name;
/// assert!(is_env_name("API_TOKEN"));
/// assert!(!is_env_name("1TOKEN"));
/// ```
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 64
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The end of a workspace exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSummary {
    /// The workspace.
    pub workspace_id: String,
    /// The environment.
    pub environment: String,
    /// The environment's version.
    pub environment_version: String,
    /// Its sequence number in the workspace's history.
    pub sequence: u64,
    /// The command line.
    pub command: String,
    /// Where it ran.
    pub cwd: String,
    /// Its exit code (124 on timeout).
    pub exit_code: i32,
    /// How long it ran.
    pub duration_ms: u64,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// One line of the exec stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    /// Output, as it arrives.
    Output(OutputChunk),
    /// The command ended; the last line.
    Result(ExecSummary),
    /// The command could not run; the last line.
    Error(ErrorBody),
}

/// `POST /v1/workspaces/{id}/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPushRequest {
    /// A host directory or `.tar`/`.tar.gz`/`.tgz`.
    pub source_path: String,
    /// Where in the guest (default `/workspace`; relative paths are under it).
    #[serde(default)]
    pub dest: Option<String>,
}

/// What a sync push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPushResult {
    /// The workspace.
    pub workspace_id: String,
    /// `directory` or `tar_archive`.
    pub mode: String,
    /// The host source.
    pub source_path: String,
    /// The guest destination.
    pub destination: String,
    /// Entries written.
    pub entry_count: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `POST /v1/workspaces/{id}/export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// A file, directory or symlink in the workspace.
    pub path: String,
    /// A host path that must not exist yet.
    pub output_path: String,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResult {
    /// The workspace.
    pub workspace_id: String,
    /// The exported guest path.
    pub workspace_path: String,
    /// The host path written.
    pub output_path: String,
    /// `file`, `directory` or `symlink`.
    pub artifact_type: String,
    /// Entries written.
    pub entry_count: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `POST /v1/workspaces/{id}/diff`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffRequest {
    /// The snapshot to compare with (default `baseline`).
    #[serde(default)]
    pub against: Option<String>,
}

/// Counts of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Changed paths.
    pub total: u64,
    /// New paths.
    pub added: u64,
    /// Paths whose content (or link target) changed.
    pub modified: u64,
    /// Removed paths.
    pub deleted: u64,
    /// Paths whose type changed.
    pub type_changed: u64,
    /// Paths whose only change is their mode.
    pub mode_changed: u64,
    /// Entries with a text patch.
    pub text_patched: u64,
    /// Changed entries without one (binary, or not files).
    pub non_text: u64,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// Path relative to `/workspace`.
    pub path: String,
    /// `added`, `modified`, `deleted`, `type_changed` or `mode_changed`.
    pub status: String,
    /// `file`, `directory`, `symlink` or `other` (the new type, or the old one if deleted).
    pub artifact_type: String,
    /// Old and new permission bits when they differ, as octal strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_change: Option<(String, String)>,
    /// The unified patch for text files.
    pub text_patch: Option<String>,
}

/// What changed in `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffResult {
    /// The workspace.
    pub workspace_id: String,
    /// The snapshot compared with.
    pub against: String,
    /// Whether anything changed.
    pub changed: bool,
    /// Counts.
    pub summary: DiffSummary,
    /// The changes, by path.
    pub entries: Vec<DiffEntry>,
    /// Every text patch, concatenated (feedable to `patch apply`).
    pub patch: String,
}

/// `POST /v1/workspaces/{id}/files/list` and `.../disk/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// A path (default `/workspace`).
    #[serde(default)]
    pub path: Option<String>,
    /// Descend into directories.
    #[serde(default)]
    pub recursive: bool,
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute guest path.
    pub path: String,
    /// `file`, `directory`, `symlink` or `other`.
    pub artifact_type: String,
    /// Size in bytes (0 for directories).
    pub size_bytes: u64,
    /// Permission bits as an octal string, such as `0755`.
    pub mode: String,
    /// Where a symlink points.
    pub link_target: Option<String>,
}

/// A listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    /// The workspace.
    pub workspace_id: String,
    /// The listed path.
    pub path: String,
    /// Whether it was recursive.
    pub recursive: bool,
    /// The entries, sorted by path.
    pub entries: Vec<FileEntry>,
}

/// `POST /v1/workspaces/{id}/files/read` and `.../disk/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// A regular file.
    pub path: String,
    /// At most this many bytes (default 65536).
    #[serde(default = "default_read_bytes")]
    pub max_bytes: u64,
}

fn default_read_bytes() -> u64 {
    DEFAULT_READ_BYTES
}

/// A file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResult {
    /// The workspace.
    pub workspace_id: String,
    /// Absolute guest path.
    pub path: String,
    /// The file's whole size.
    pub size_bytes: u64,
    /// The limit applied.
    pub max_bytes: u64,
    /// The contents read, as text (invalid UTF-8 replaced).
    pub content: String,
    /// The same bytes, exactly, in standard base64.
    pub content_base64: String,
    /// Whether the file is longer than what was read.
    pub truncated: bool,
}

/// `POST /v1/workspaces/{id}/files/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// The file (created with its parents if missing).
    pub path: String,
    /// Its new contents (UTF-8, at most 1 MiB).
    pub text: String,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The workspace.
    pub workspace_id: String,
    /// Absolute guest path.
    pub path: String,
    /// Bytes written.
    pub bytes_written: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `POST /v1/workspaces/{id}/patch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    /// A unified diff (`git diff` output works), at most 1 MiB.
    pub patch: String,
}

/// Counts of an applied patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSummary {
    /// Files touched.
    pub total: u64,
    /// Files created.
    pub added: u64,
    /// Files changed.
    pub modified: u64,
    /// Files removed.
    pub deleted: u64,
}

/// One patched file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchEntry {
    /// Path relative to `/workspace`.
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub status: String,
}

/// What a patch did (all of it, or nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchResult {
    /// The workspace.
    pub workspace_id: String,
    /// Whether anything changed.
    pub changed: bool,
    /// Counts.
    pub summary: PatchSummary,
    /// The files.
    pub entries: Vec<PatchEntry>,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `POST /v1/workspaces/{id}/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// The snapshot's name (`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, not `baseline`).
    pub name: String,
}

/// A snapshot of `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The workspace.
    pub workspace_id: String,
    /// Its name.
    pub snapshot_name: String,
    /// `baseline` or `named`.
    pub kind: String,
    /// When it was taken.
    pub created_at: String,
    /// Entries in it.
    pub entry_count: u64,
    /// Bytes of file content in it.
    pub bytes_written: u64,
    /// Bytes newly stored for it (content already stored is shared).
    pub bytes_stored: u64,
    /// Whether it can be deleted (`baseline` cannot).
    pub deletable: bool,
}

/// The snapshots of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotList {
    /// The workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// Baseline first, then named ones newest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// The answer to a snapshot delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDeleted {
    /// The workspace.
    pub workspace_id: String,
    /// The snapshot.
    pub snapshot_name: String,
    /// Always true.
    pub deleted: bool,
}

/// `POST /v1/workspaces/{id}/reset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The snapshot to restore (default `baseline`).
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// What a reset restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetInfo {
    /// The snapshot restored.
    pub snapshot_name: String,
    /// `baseline` or `named`.
    pub kind: String,
    /// `/workspace`.
    pub destination: String,
    /// Entries restored.
    pub entry_count: u64,
    /// Bytes of file content restored.
    pub bytes_written: u64,
}

/// The answer to a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetResult {
    /// The workspace after the reset.
    pub workspace: WorkspaceInfo,
    /// What was restored.
    pub workspace_reset: ResetInfo,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    /// The workspace.
    pub workspace_id: String,
    /// Always true.
    pub deleted: bool,
    /// `explicit_delete` or `ttl_expired`.
    pub reason: String,
}

/// `POST /v1/workspaces/{id}/disk/export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskExportRequest {
    /// A host path that must not exist yet.
    pub output_path: String,
}

/// What a disk export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskExportResult {
    /// The workspace.
    pub workspace_id: String,
    /// The host path written.
    pub output_path: String,
    /// `ext4`.
    pub disk_format: String,
    /// Bytes written (the image is sparse; this is its apparent size).
    pub bytes_written: u64,
}

/// One recorded command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its sequence number.
    pub sequence: u64,
    /// The command line.
    pub command: String,
    /// Where it ran.
    pub cwd: String,
    /// Its exit code.
    pub exit_code: i32,
    /// How long it ran.
    pub duration_ms: u64,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// When it finished.
    pub recorded_at: String,
    /// Its stdout (the first MiB).
    pub stdout: String,
    /// Its stderr (the first MiB).
    pub stderr: String,
    /// Whether stdout or stderr was longer than what was kept.
    pub output_truncated: bool,
}

/// `GET /v1/workspaces/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogList {
    /// The workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// Oldest first.
    pub entries: Vec<LogEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked() {
        assert!(is_simple_name("checkpoint-1.a_b"));
        assert!(!is_simple_name("-x"));
        assert!(!is_simple_name(""));
        assert!(!is_simple_name(&"a".repeat(65)));
        assert!(validate_label("team", "infra").is_ok());
        assert!(validate_label("bad key", "v").is_err());
        assert!(validate_label("k", " ").is_err());
        assert!(is_env_name("API_TOKEN"));
        assert!(!is_env_name("1X"));
    }

    #[test]
    fn create_defaults_and_validation() {
        let req: CreateWorkspaceRequest =
            serde_json::from_str(r#"{"environment":"debian:12"}"#).unwrap();
        assert_eq!(req, CreateWorkspaceRequest::new("debian:12"));
        assert_eq!(req.on_failure, FailurePolicy::Restart);
        assert!(req.validate().is_ok());
        let mut bad = req.clone();
        bad.disk_mib = 10;
        assert!(bad.validate().unwrap_err().starts_with("disk_mib"));
        assert!(serde_json::from_str::<CreateWorkspaceRequest>(
            r#"{"environment":"x","secret":1}"#
        )
        .is_err());
    }

    #[test]
    fn update_needs_something_to_do() {
        assert!(UpdateWorkspaceRequest::default().validate().is_err());
        let req = UpdateWorkspaceRequest {
            ttl_seconds: Some(3600),
            ..Default::default()
        };
        assert!(req.validate().is_ok());
    }
}

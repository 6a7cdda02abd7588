//! The record types kept in the database (as JSON columns, so adding an
//! optional field needs no schema migration).
//!
//! Times are milliseconds since the Unix epoch. Records hold only safe
//! secret metadata (name, source kind, size); values never reach them.

use std::collections::BTreeMap;

use pyro_sdk::api::session::ServiceStartRequest;
use pyro_sdk::api::workspace::{
    CommandSummary, FailurePolicy, SecretInfo, SeedInfo, WorkspaceState,
};
use serde::{Deserialize, Serialize};

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Catalog name of its environment.
    pub environment: String,
    /// The environment's version.
    pub environment_version: String,
    /// vCPUs.
    pub vcpu_count: u8,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Writable disk size in MiB.
    pub disk_mib: u64,
    /// Time to live in seconds.
    pub ttl_seconds: u64,
    /// What happens when its VM dies.
    pub on_failure: FailurePolicy,
    /// Its state.
    pub state: WorkspaceState,
    /// Creation time.
    pub created_at_ms: i64,
    /// Last use.
    pub last_activity_at_ms: i64,
    /// When the reaper deletes it.
    pub expires_at_ms: i64,
    /// How it was seeded.
    pub seed: SeedInfo,
    /// Its secrets' metadata.
    #[serde(default)]
    pub secrets: Vec<SecretInfo>,
    /// Commands since create or the last reset.
    pub command_count: u64,
    /// The last command.
    pub last_command: Option<CommandSummary>,
    /// Resets so far.
    pub reset_count: u64,
    /// The last reset.
    pub last_reset_at_ms: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// The VM running it, so a supervisor that restarts can adopt it.
    #[serde(default)]
    pub current_vm: Option<String>,
    /// Its services' definitions, so a supervisor that restarts takes them
    /// over (and brings `--restart always` ones back on start).
    #[serde(default)]
    pub services: Vec<ServiceRecord>,
}

/// A service's definition as the record keeps it: the start request
/// without its secret environment mapping (which lives only in the
/// service actor's memory, see the secrets issue), and whether it had one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The start request, `secret_env` emptied.
    pub request: ServiceStartRequest,
    /// Whether the request mapped secrets into the environment: such a
    /// service cannot be launched again from the record alone.
    pub used_secret_env: bool,
}

impl ServiceRecord {
    /// The record of `request`, without its secret environment mapping.
    pub fn of(request: &ServiceStartRequest) -> Self {
        let mut request = request.clone();
        let used_secret_env = !request.secret_env.is_empty();
        request.secret_env.clear();
        Self {
            request,
            used_secret_env,
        }
    }
}

/// Whether a snapshot is the immutable seed or one taken later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// The create-time seed; never deleted.
    Baseline,
    /// Taken with `snapshot create`.
    Named,
}

impl SnapshotKind {
    /// `baseline` or `named`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Named => "named",
        }
    }
}

/// A snapshot of `/workspace`: its manifest file and content blobs live in
/// the workspace's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The workspace.
    pub workspace_id: String,
    /// Its name.
    pub name: String,
    /// Baseline or named.
    pub kind: SnapshotKind,
    /// When it was taken.
    pub created_at_ms: i64,
    /// Entries in it.
    pub entry_count: u64,
    /// Bytes of file content in it.
    pub bytes_total: u64,
    /// Bytes newly stored for it.
    pub bytes_stored: u64,
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// The workspace.
    pub workspace_id: String,
    /// Its sequence number.
    pub sequence: u64,
    /// The command line (redacted).
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
    pub recorded_at_ms: i64,
    /// Whether stdout or stderr was cut when stored.
    pub output_truncated: bool,
}

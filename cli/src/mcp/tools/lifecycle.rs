//! Workspace lifecycle tools: create, list, update, status, logs, stop,
//! start, reset, delete.
//!
//! - `workspace_create` comes in two variants with the same name: the
//!   `workspace-core` one (reference: no `network_policy`, no `secrets`)
//!   and the `workspace-full` one (`network_policy`; `secrets` to come).
//!   Both take `seed_path`, confined to the allowed roots. Progress: each
//!   create phase (`environment`, `seed`, `disk`, `boot`) and each
//!   environment install step. Cancellation: the supervisor cannot abandon a
//!   boot half-way, so the create runs on and the workspace is deleted as
//!   soon as it exists (a background task follows the create to its end).
//! - `workspace_reset`, `workspace_start`, `workspace_stop`: progress is a
//!   heartbeat every 5 s; cancellation stops waiting, the operation itself
//!   completes in the supervisor.
//! - `workspace_list` leaves out the VMs of the `vm_*` tools (workspaces
//!   labelled `pyro.kind=vm`); `pyro workspace list` shows them.
//! - `workspace_reset` answers in the reference's shape: the workspace
//!   fields at the top level plus `workspace_reset`.

use std::collections::BTreeMap;

use pyro_sdk::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, FailurePolicy, ResetRequest, UpdateWorkspaceRequest,
    WorkspaceInfo, WorkspaceList,
};
use pyro_sdk::{Client, EventStream, SdkError};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    check_id, check_labels, default_disk, default_mem, default_snapshot, default_ttl, default_vcpu,
    pull_message, SecretArg, WorkspaceIdArgs, KIND_LABEL, KIND_VM,
};
use crate::mcp::errors::ToolError;
use crate::mcp::paths::AllowedRoots;
use crate::mcp::progress::{cancellable, with_heartbeat, Progress};
use crate::mcp::render::{add_missing, respond, to_value};
use crate::mcp::server::PyroMcp;

/// What happens when a workspace's VM dies on its own (inlined in schemas
/// as a plain string enum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum OnFailure {
    // Boot it again on the same disk.
    #[default]
    Restart,
    // Recreate the disk and restore the baseline.
    Reset,
    // Mark it stopped, with the error.
    Stop,
}

impl From<OnFailure> for FailurePolicy {
    fn from(value: OnFailure) -> Self {
        match value {
            OnFailure::Restart => Self::Restart,
            OnFailure::Reset => Self::Reset,
            OnFailure::Stop => Self::Stop,
        }
    }
}

/// A workspace network policy (only `off` is available in this version).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub enum NetworkPolicy {
    // No network.
    #[default]
    #[serde(rename = "off")]
    Off,
    // Outbound network (not available yet).
    #[serde(rename = "egress")]
    Egress,
    // Outbound network and published ports (not available yet).
    #[serde(rename = "egress+published-ports")]
    EgressPublishedPorts,
}

/// `workspace_create` arguments (`workspace-core` profile).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// Environment catalog name, such as `debian:12` (git), `debian:12-base` or `debian:12-build` (gcc, make, python3).
    pub environment: String,
    /// vCPUs, 1 to 8.
    #[serde(default = "default_vcpu")]
    #[schemars(range(min = 1, max = 8))]
    pub vcpu_count: u8,
    /// Guest memory in MiB, 256 to 32768.
    #[serde(default = "default_mem")]
    #[schemars(range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Seconds until the workspace is deleted, 60 to 604800 (extend it with workspace_update).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl_seconds: u64,
    /// Accepted for compatibility and ignored: pyro never runs commands on the host.
    #[serde(default, rename = "allow_host_compat")]
    pub _allow_host_compat: bool,
    /// A host directory or .tar/.tar.gz/.tgz to seed /workspace with; must be inside the server's allowed roots (relative paths are relative to the first one).
    #[serde(default)]
    pub seed_path: Option<String>,
    /// A name for people (one line, at most 120 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Labels (keys `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, one-line values).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Writable disk size in MiB (sparse), 512 to 1048576.
    #[serde(default = "default_disk")]
    #[schemars(range(min = 512, max = 1048576))]
    pub disk_mib: u64,
    /// What to do when the VM dies on its own: `restart` it on the same disk, `reset` it to the baseline, or `stop` it (the error is kept in last_error).
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// `workspace_create` arguments (`workspace-full` profile).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFullArgs {
    /// Environment catalog name, such as `debian:12` (git), `debian:12-base` or `debian:12-build` (gcc, make, python3).
    pub environment: String,
    /// vCPUs, 1 to 8.
    #[serde(default = "default_vcpu")]
    #[schemars(range(min = 1, max = 8))]
    pub vcpu_count: u8,
    /// Guest memory in MiB, 256 to 32768.
    #[serde(default = "default_mem")]
    #[schemars(range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Seconds until the workspace is deleted, 60 to 604800 (extend it with workspace_update).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl_seconds: u64,
    /// Network policy: `off`, `egress` or `egress+published-ports`; only `off` is available in this version.
    #[serde(default)]
    pub network_policy: NetworkPolicy,
    /// Accepted for compatibility and ignored: pyro never runs commands on the host.
    #[serde(default, rename = "allow_host_compat")]
    pub _allow_host_compat: bool,
    /// A host directory or .tar/.tar.gz/.tgz to seed /workspace with; must be inside the server's allowed roots (relative paths are relative to the first one).
    #[serde(default)]
    pub seed_path: Option<String>,
    /// A name for people (one line, at most 120 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// Labels (keys `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, one-line values).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Writable disk size in MiB (sparse), 512 to 1048576.
    #[serde(default = "default_disk")]
    #[schemars(range(min = 512, max = 1048576))]
    pub disk_mib: u64,
    /// What to do when the VM dies on its own: `restart` it on the same disk, `reset` it to the baseline, or `stop` it (the error is kept in last_error).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Secrets, [{name, value} or {name, file_path}]: files under /run/pyro-secrets/ in the guest (never on its disk), and environment variables of single commands through secret_env. Values are redacted from every answer.
    #[serde(default)]
    pub secrets: Option<Vec<SecretArg>>,
}

impl CreateFullArgs {
    /// The SDK request: the core arguments' request plus the full-only ones
    /// (`network_policy`; `secrets`, each `file_path` confined like
    /// `seed_path`).
    pub fn request(&self, roots: &AllowedRoots) -> Result<CreateWorkspaceRequest, ToolError> {
        if self.network_policy != NetworkPolicy::Off {
            return Err(ToolError::invalid_with_hint(
                "network_policy must be \"off\": pyro guests have no network in this version",
                "leave network_policy unset; copy files in with seed_path or workspace_sync_push",
            ));
        }
        let core = CreateArgs {
            environment: self.environment.clone(),
            vcpu_count: self.vcpu_count,
            mem_mib: self.mem_mib,
            ttl_seconds: self.ttl_seconds,
            _allow_host_compat: self._allow_host_compat,
            seed_path: self.seed_path.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            disk_mib: self.disk_mib,
            on_failure: self.on_failure,
        };
        let mut request = core.request(roots)?;
        request.secrets = self
            .secrets
            .iter()
            .flatten()
            .map(|secret| secret.spec(roots))
            .collect::<Result<_, _>>()?;
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

impl CreateArgs {
    /// The SDK request, validated, with the seed path confined to `roots`.
    pub fn request(&self, roots: &AllowedRoots) -> Result<CreateWorkspaceRequest, ToolError> {
        let labels = self.labels.clone().unwrap_or_default();
        check_labels(labels.keys())?;
        let mut request = CreateWorkspaceRequest::new(self.environment.clone());
        request.seed_path = self
            .seed_path
            .as_deref()
            .map(|path| roots.input("seed_path", path))
            .transpose()?;
        request.name = self.name.clone();
        request.labels = labels;
        request.vcpu_count = self.vcpu_count;
        request.mem_mib = self.mem_mib;
        request.ttl_seconds = self.ttl_seconds;
        request.disk_mib = self.disk_mib;
        request.on_failure = self.on_failure.into();
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// `workspace_update` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// Remove the name.
    #[serde(default)]
    pub clear_name: bool,
    /// Labels to add or change.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Label keys to remove.
    #[serde(default)]
    pub clear_labels: Option<Vec<String>>,
    /// A new time to live in seconds, counted from now (60 to 604800).
    #[serde(default)]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl_seconds: Option<u64>,
}

impl UpdateArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<UpdateWorkspaceRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        let request = UpdateWorkspaceRequest {
            name: self.name.clone(),
            clear_name: self.clear_name,
            labels: self.labels.clone().unwrap_or_default(),
            clear_labels: self.clear_labels.clone().unwrap_or_default(),
            ttl_seconds: self.ttl_seconds,
        };
        check_labels(request.labels.keys().chain(request.clear_labels.iter()))?;
        if request == UpdateWorkspaceRequest::default() {
            return Err(ToolError::invalid(
                "nothing to update: give name, clear_name, labels, clear_labels or ttl_seconds",
            ));
        }
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// `workspace_reset` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The snapshot to restore: `baseline` (the seed) or a name given to snapshot_create.
    #[serde(default = "default_snapshot")]
    pub snapshot: String,
}

/// Creates a workspace, reporting progress; if the call is cancelled, the
/// workspace is deleted once the supervisor has finished creating it.
pub async fn create(
    client: &Client,
    request: &CreateWorkspaceRequest,
    context: &RequestContext<RoleServer>,
) -> Result<WorkspaceInfo, ToolError> {
    let mut progress = Progress::new(context);
    let mut events = client.create_workspace(request).await?;
    loop {
        let event = tokio::select! {
            biased;
            () = context.ct.cancelled() => {
                tokio::spawn(delete_when_created(client.clone(), events));
                return Err(ToolError::cancelled("the create"));
            }
            event = events.next() => event,
        };
        match event {
            None => {
                return Err(SdkError::StreamEnded {
                    path: events.path().to_owned(),
                }
                .into())
            }
            Some(event) => match event? {
                CreateEvent::Phase {
                    phase,
                    workspace_id,
                } => {
                    progress
                        .report(format!("{phase} (workspace {workspace_id})"))
                        .await;
                }
                CreateEvent::Pull(step) => progress.report(pull_message(&step)).await,
                CreateEvent::Result(info) => {
                    progress.report("started").await;
                    return Ok(*info);
                }
                CreateEvent::Error(body) => return Err(body.into()),
            },
        }
    }
}

/// Follows an abandoned create to its end and deletes what it made.
async fn delete_when_created(client: Client, mut events: EventStream<CreateEvent>) {
    while let Some(Ok(event)) = events.next().await {
        if let CreateEvent::Result(info) = event {
            let _ = client.delete_workspace(&info.workspace_id).await;
            return;
        }
    }
}

/// Whether a workspace is a `vm_*` VM.
pub fn is_vm(info: &WorkspaceInfo) -> bool {
    info.labels.get(KIND_LABEL).map(String::as_str) == Some(KIND_VM)
}

/// The workspaces that are not `vm_*` VMs.
pub fn without_vms(list: WorkspaceList) -> WorkspaceList {
    let workspaces: Vec<WorkspaceInfo> =
        list.workspaces.into_iter().filter(|w| !is_vm(w)).collect();
    WorkspaceList {
        count: workspaces.len(),
        workspaces,
    }
}

impl PyroMcp {
    async fn create_tool(
        &self,
        request: Result<CreateWorkspaceRequest, ToolError>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            async {
                let request = request?;
                let client = self.client().await?;
                create(client, &request, context).await
            }
            .await,
        )
    }
}

#[tool_router(router = create_core, vis = "pub(crate)")]
impl PyroMcp {
    /// Create a persistent workspace (a VM with its own disk and a /workspace tree, optionally
    /// seeded from a host directory or archive) and start it. Returns the workspace
    /// {workspace_id, state, environment, workspace_seed, expires_at, ...}. Sends progress
    /// (create phases, environment install) when given a progress token.
    #[tool(name = "workspace_create")]
    async fn workspace_create_core(
        &self,
        Parameters(args): Parameters<CreateArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.create_tool(args.request(self.roots()), &context).await
    }
}

#[tool_router(router = create_full, vis = "pub(crate)")]
impl PyroMcp {
    /// Create a persistent workspace (a VM with its own disk and a /workspace tree, optionally
    /// seeded from a host directory or archive) and start it. Returns the workspace
    /// {workspace_id, state, environment, workspace_seed, expires_at, ...}. Sends progress
    /// (create phases, environment install) when given a progress token.
    #[tool(name = "workspace_create")]
    async fn workspace_create_full(
        &self,
        Parameters(args): Parameters<CreateFullArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.create_tool(args.request(self.roots()), &context).await
    }
}

#[tool_router(router = lifecycle_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// List workspaces, most recently active first: {count, workspaces:[{workspace_id, name,
    /// labels, environment, state, created_at, last_activity_at, expires_at, command_count,
    /// ...}]}.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_list(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_list", async {
                let list = self.client().await?.list_workspaces().await?;
                Ok(without_vms(list))
            })
            .await,
        )
    }

    /// Rename, relabel or extend a workspace (ttl_seconds counts from now). Returns the workspace.
    #[tool]
    async fn workspace_update(
        &self,
        Parameters(args): Parameters<UpdateArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_update", async {
                let request = args.request()?;
                let client = self.client().await?;
                Ok(client
                    .update_workspace(&args.workspace_id, &request)
                    .await?)
            })
            .await,
        )
    }

    /// Show one workspace: state, resources, seed, command_count, last_command, reset_count,
    /// expires_at, last_error, ...
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_status(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_status", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.workspace_status(&args.workspace_id).await?)
            })
            .await,
        )
    }

    /// The commands run in a workspace since create or the last reset, oldest first, with their
    /// output: {workspace_id, count, entries:[{sequence, command, cwd, exit_code, duration_ms,
    /// stdout, stderr, ...}]}.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_logs(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_logs", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.workspace_logs(&args.workspace_id).await?)
            })
            .await,
        )
    }

    /// Power a workspace off, keeping its disk and snapshots (inspect it with the
    /// workspace_disk_* tools, boot it again with workspace_start). Returns the workspace.
    #[tool]
    async fn workspace_stop(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_stop", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                let mut progress = Progress::new(&context);
                let stop = client.stop_workspace(&args.workspace_id);
                Ok(with_heartbeat(&mut progress, "stop", stop).await?)
            })
            .await,
        )
    }

    /// Boot a stopped workspace on its disk. Returns the workspace.
    #[tool]
    async fn workspace_start(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_start", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                let mut progress = Progress::new(&context);
                let start = client.start_workspace(&args.workspace_id);
                Ok(with_heartbeat(&mut progress, "start", start).await?)
            })
            .await,
        )
    }

    /// Recreate the workspace's disk and restore the baseline (or a named snapshot); command
    /// history starts over. Returns the workspace plus workspace_reset{snapshot_name, kind,
    /// entry_count, bytes_written}. Sends a progress heartbeat when given a progress token.
    #[tool]
    async fn workspace_reset(
        &self,
        Parameters(args): Parameters<ResetArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_reset", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                let request = ResetRequest {
                    snapshot: Some(args.snapshot.clone()),
                };
                let mut progress = Progress::new(&context);
                let reset = client.reset_workspace(&args.workspace_id, &request);
                let result = with_heartbeat(&mut progress, "reset", reset).await?;
                let workspace = to_value(&result.workspace)?;
                Ok::<Value, ToolError>(add_missing(
                    workspace,
                    [("workspace_reset", to_value(&result.workspace_reset)?)],
                ))
            })
            .await,
        )
    }

    /// Delete a workspace: its VM, disk, snapshots and history. Returns {workspace_id,
    /// deleted, reason}.
    #[tool(annotations(destructive_hint = true))]
    async fn workspace_delete(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_delete", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.delete_workspace(&args.workspace_id).await?)
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::PathBuf;

    use super::*;

    fn roots() -> (tempfile::TempDir, AllowedRoots) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("repo")).unwrap();
        let roots = AllowedRoots::new(&[], dir.path()).unwrap();
        (dir, roots)
    }

    #[test]
    fn create_defaults_follow_the_reference() {
        let (_dir, roots) = roots();
        let args: CreateArgs =
            serde_json::from_value(serde_json::json!({"environment": "debian:12"})).unwrap();
        let request = args.request(&roots).unwrap();
        assert_eq!(request, CreateWorkspaceRequest::new("debian:12"));
        assert_eq!(
            (request.vcpu_count, request.mem_mib, request.ttl_seconds),
            (1, 1024, 600)
        );
    }

    #[test]
    fn create_confines_and_resolves_the_seed_path() {
        let (dir, roots) = roots();
        let args: CreateArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "seed_path": "repo", "labels": {"team": "a"}}),
        )
        .unwrap();
        let request = args.request(&roots).unwrap();
        let expected: PathBuf = std::fs::canonicalize(dir.path()).unwrap().join("repo");
        assert_eq!(request.seed_path.as_deref(), expected.to_str());
        assert_eq!(request.labels.get("team").map(String::as_str), Some("a"));

        let outside: CreateArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "seed_path": "/etc"}),
        )
        .unwrap();
        let err = outside.request(&roots).unwrap_err();
        assert!(
            err.0.message.contains("is outside the allowed roots"),
            "{err:?}"
        );
    }

    #[test]
    fn create_validation_names_the_field() {
        let (_dir, roots) = roots();
        for (args, field) in [
            (
                serde_json::json!({"environment": "debian:12", "vcpu_count": 9}),
                "vcpu_count",
            ),
            (
                serde_json::json!({"environment": "debian:12", "mem_mib": 16}),
                "mem_mib",
            ),
            (
                serde_json::json!({"environment": "debian:12", "ttl_seconds": 5}),
                "ttl_seconds",
            ),
            (
                serde_json::json!({"environment": "debian:12", "disk_mib": 1}),
                "disk_mib",
            ),
            (serde_json::json!({"environment": " "}), "environment"),
            (
                serde_json::json!({"environment": "debian:12", "labels": {"pyro.kind": "vm"}}),
                "pyro.kind",
            ),
        ] {
            let args: CreateArgs = serde_json::from_value(args).unwrap();
            let err = args.request(&roots).unwrap_err();
            assert!(err.0.message.contains(field), "{field}: {err:?}");
        }
        // Unknown fields, including the full profile's, are refused by the core variant.
        assert!(serde_json::from_value::<CreateArgs>(
            serde_json::json!({"environment": "debian:12", "network_policy": "off"})
        )
        .is_err());
    }

    #[test]
    fn the_full_variant_only_takes_network_policy_off() {
        let (_dir, roots) = roots();
        let full: CreateFullArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "network_policy": "off", "on_failure": "stop", "seed_path": "repo"}),
        )
        .unwrap();
        let request = full.request(&roots).unwrap();
        assert_eq!(request.on_failure, FailurePolicy::Stop);
        assert!(request.seed_path.unwrap().ends_with("/repo"));
        let egress: CreateFullArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "network_policy": "egress+published-ports"}),
        )
        .unwrap();
        assert!(egress
            .request(&roots)
            .unwrap_err()
            .0
            .message
            .starts_with("network_policy"));
        assert!(serde_json::from_value::<CreateFullArgs>(
            serde_json::json!({"environment": "debian:12", "network_policy": "bogus"})
        )
        .is_err());
    }

    #[test]
    fn the_full_variant_takes_secrets_and_validates_them_without_values() {
        let (_dir, roots) = roots();
        let full: CreateFullArgs = serde_json::from_value(serde_json::json!({
            "environment": "debian:12",
            "secrets": [{"name": "API_TOKEN", "value": "hunter2"}]
        }))
        .unwrap();
        let request = full.request(&roots).unwrap();
        assert_eq!(request.secrets.len(), 1);
        assert_eq!(request.secrets[0].value.as_deref(), Some("hunter2"));
        assert!(!format!("{full:?}").contains("hunter2"));
        let twice: CreateFullArgs = serde_json::from_value(serde_json::json!({
            "environment": "debian:12",
            "secrets": [{"name": "A", "value": "hunter2"}, {"name": "A", "value": "hunter3"}]
        }))
        .unwrap();
        let err = twice.request(&roots).unwrap_err();
        assert!(err.0.message.contains("given twice") && !err.0.message.contains("hunter"));
        let neither: CreateFullArgs = serde_json::from_value(serde_json::json!({
            "environment": "debian:12", "secrets": [{"name": "A"}]
        }))
        .unwrap();
        assert!(neither.request(&roots).is_err());
        assert!(serde_json::from_value::<CreateArgs>(serde_json::json!({
            "environment": "debian:12", "secrets": []
        }))
        .is_err());
    }

    #[test]
    fn update_needs_something_and_keeps_the_vm_label() {
        let args: UpdateArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w"})).unwrap();
        let err = args.request().unwrap_err();
        assert_eq!(
            err.0.message,
            "nothing to update: give name, clear_name, labels, clear_labels or ttl_seconds"
        );
        let args: UpdateArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "clear_labels": ["pyro.kind"]}),
        )
        .unwrap();
        assert!(args.request().is_err());
        let args: UpdateArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "ttl_seconds": 3600, "clear_name": true}),
        )
        .unwrap();
        let request = args.request().unwrap();
        assert_eq!(request.ttl_seconds, Some(3600));
        assert!(request.clear_name);
    }

    #[test]
    fn reset_defaults_to_the_baseline() {
        let args: ResetArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w"})).unwrap();
        assert_eq!(args.snapshot, "baseline");
    }
}

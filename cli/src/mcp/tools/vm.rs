//! The `vm_*` tools of the reference, mapped onto pyro's API:
//!
//! - `vm_run` is a one-shot run (`POST /v1/run`): a fresh VM, one command,
//!   the VM deleted afterwards. Progress: the run phases (`create`, `start`,
//!   `execute`), environment install steps, then throttled output chunk
//!   counts. Cancellation drops the run stream: the supervisor kills the
//!   command and deletes the VM when it next forwards output (or when the
//!   command ends).
//! - A "VM" of `vm_create` is a workspace labelled `pyro.kind=vm` (created
//!   and started at once: there is no separate "created" state, so
//!   `vm_start` on a started VM just reports it). `vm_status`, `vm_stop`,
//!   `vm_start` and `vm_delete` act on that workspace, and refuse ids of
//!   ordinary workspaces (`unknown_vm`). The VM payload has the reference's
//!   keys (`vm_id`, `state`, `network_enabled: false`, `guest_ip: null`,
//!   ...); `metadata` holds no host paths.
//! - `vm_exec` runs one command and then deletes the VM, as the reference
//!   does (also when the command fails or the call is cancelled; the answer
//!   carries `cleanup{vm_id, deleted, reason: "post_exec_cleanup"}`; when
//!   the command failed and the delete did too, the error's `detail` says
//!   so).
//! - `vm_network_info` always reports networking off: guests have no
//!   network in this version (`network: true` is refused by `vm_run` and
//!   `vm_create`). `allow_host_compat` is accepted and ignored: nothing ever
//!   runs on the host.
//! - `vm_reap_expired` deletes now the VMs whose TTL has passed (the
//!   supervisor's reaper would, a little later) and lists them.
//! - `vm_list_environments` returns the catalog as the SDK does
//!   (`catalog_version`, `environments`) and, for the reference, the same
//!   list as `result`.

use pyro_sdk::api::workspace::{
    CreateWorkspaceRequest, ExecRequest, WorkspaceInfo, WorkspaceState,
};
use pyro_sdk::api::{CommandSpec, ErrorBody, ErrorCode, RunEvent, RunRequest};
use pyro_sdk::{Client, SdkError};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::exec::collect;
use super::lifecycle::{create, is_vm};
use super::{
    check_id, check_network, default_mem, default_timeout, default_ttl, default_vcpu, pull_message,
    VmIdArgs, KIND_LABEL, KIND_VM,
};
use crate::mcp::errors::ToolError;
use crate::mcp::progress::{cancellable, with_heartbeat, Progress};
use crate::mcp::render::{add_missing, respond, to_value, OutputCollector};
use crate::mcp::server::PyroMcp;

/// `vm_run` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// Environment catalog name, such as `debian:12` (git), `debian:12-base` or `debian:12-build` (gcc, make, python3).
    pub environment: String,
    /// The command line, run with `/bin/sh -lc` in the guest.
    pub command: String,
    /// vCPUs, 1 to 8.
    #[serde(default = "default_vcpu")]
    #[schemars(range(min = 1, max = 8))]
    pub vcpu_count: u8,
    /// Guest memory in MiB, 256 to 32768.
    #[serde(default = "default_mem")]
    #[schemars(range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Seconds before the command's process group is killed (exit code 124), 1 to 86400.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
    /// Upper bound on the VM's life in seconds, 60 to 604800.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl_seconds: u64,
    /// Outbound network; not available in this version, so only `false` is accepted.
    #[serde(default)]
    pub network: bool,
    /// Accepted for compatibility and ignored: pyro never runs commands on the host.
    #[serde(default, rename = "allow_host_compat")]
    pub _allow_host_compat: bool,
}

impl RunArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<RunRequest, ToolError> {
        check_network(self.network)?;
        let mut request = RunRequest::new(
            self.environment.clone(),
            CommandSpec::Shell(self.command.clone()),
        );
        request.vcpu_count = self.vcpu_count;
        request.mem_mib = self.mem_mib;
        request.timeout_seconds = self.timeout_seconds;
        request.ttl_seconds = self.ttl_seconds;
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// `vm_create` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVmArgs {
    /// Environment catalog name, such as `debian:12`.
    pub environment: String,
    /// vCPUs, 1 to 8.
    #[serde(default = "default_vcpu")]
    #[schemars(range(min = 1, max = 8))]
    pub vcpu_count: u8,
    /// Guest memory in MiB, 256 to 32768.
    #[serde(default = "default_mem")]
    #[schemars(range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Seconds until the VM is deleted, 60 to 604800.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 60, max = 604800))]
    pub ttl_seconds: u64,
    /// Outbound network; not available in this version, so only `false` is accepted.
    #[serde(default)]
    pub network: bool,
    /// Accepted for compatibility and ignored: pyro never runs commands on the host.
    #[serde(default, rename = "allow_host_compat")]
    pub _allow_host_compat: bool,
}

impl CreateVmArgs {
    /// The workspace request behind the VM, validated.
    pub fn request(&self) -> Result<CreateWorkspaceRequest, ToolError> {
        check_network(self.network)?;
        let mut request = CreateWorkspaceRequest::new(self.environment.clone());
        request.vcpu_count = self.vcpu_count;
        request.mem_mib = self.mem_mib;
        request.ttl_seconds = self.ttl_seconds;
        request
            .labels
            .insert(KIND_LABEL.to_owned(), KIND_VM.to_owned());
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// `vm_exec` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecVmArgs {
    /// The VM id (from vm_create). The VM is deleted after the command.
    pub vm_id: String,
    /// The command line, run with `/bin/sh -lc` in the guest.
    pub command: String,
    /// Seconds before the command's process group is killed (exit code 124), 1 to 86400.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
}

impl ExecVmArgs {
    /// The exec request, validated.
    pub fn request(&self) -> Result<ExecRequest, ToolError> {
        check_id("vm_id", &self.vm_id)?;
        let mut request = ExecRequest::new(CommandSpec::Shell(self.command.clone()));
        request.timeout_seconds = self.timeout_seconds;
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// The reference's VM payload for a `pyro.kind=vm` workspace.
pub fn vm_payload(info: &WorkspaceInfo) -> Value {
    json!({
        "vm_id": info.workspace_id,
        "environment": info.environment,
        "environment_version": info.environment_version,
        "vcpu_count": info.vcpu_count,
        "mem_mib": info.mem_mib,
        "ttl_seconds": info.ttl_seconds,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "state": info.state.as_str(),
        "network_enabled": false,
        "allow_host_compat": false,
        "guest_ip": null,
        "tap_name": null,
        "execution_mode": info.execution_mode,
        "last_error": info.last_error,
        "metadata": {
            "workspace_id": info.workspace_id,
            "network_policy": info.network_policy,
            "disk_mib": info.disk_mib.to_string(),
        },
    })
}

/// The `pyro.kind=vm` workspace `vm_id`, or `unknown_vm`.
async fn find_vm(client: &Client, vm_id: &str) -> Result<WorkspaceInfo, ToolError> {
    check_id("vm_id", vm_id)?;
    match client.workspace_status(vm_id).await {
        Ok(info) if is_vm(&info) => Ok(info),
        Ok(_) => Err(ToolError(
            ErrorBody::new(ErrorCode::UnknownVm, format!("{vm_id} is a workspace, not a VM"))
                .with_hint("use the workspace_* tools for workspaces"),
        )),
        Err(err) if err.code() == ErrorCode::UnknownWorkspace => Err(ToolError(
            ErrorBody::new(ErrorCode::UnknownVm, format!("vm {vm_id} does not exist")).with_hint(
                "create one with vm_create; VMs are deleted after vm_exec and when their TTL passes",
            ),
        )),
        Err(err) => Err(err.into()),
    }
}

/// Deletes a VM when dropped unless disarmed: `vm_exec`'s cleanup when the
/// call is cancelled (its future is dropped mid-command).
struct DeleteOnDrop {
    client: Client,
    vm_id: Option<String>,
}

impl DeleteOnDrop {
    fn disarm(&mut self) {
        self.vm_id = None;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let (Some(vm_id), Ok(runtime)) =
            (self.vm_id.take(), tokio::runtime::Handle::try_current())
        {
            let client = self.client.clone();
            runtime.spawn(async move {
                let _ = client.delete_workspace(&vm_id).await;
            });
        }
    }
}

/// Whether `info` expired at or before `now`.
fn expired(info: &WorkspaceInfo, now: time::OffsetDateTime) -> bool {
    time::OffsetDateTime::parse(
        &info.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .is_ok_and(|at| at <= now)
}

impl PyroMcp {
    async fn run_vm(
        &self,
        args: &RunArgs,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ToolError> {
        let request = args.request()?;
        let client = self.client().await?;
        let mut progress = Progress::new(context);
        let mut events = client.run(&request).await?;
        let mut output = OutputCollector::default();
        while let Some(event) = events.next().await {
            match event? {
                RunEvent::Phase(change) => {
                    let message = match &change.vm_id {
                        Some(vm_id) => format!("{} (vm {vm_id})", change.phase.as_str()),
                        None => change.phase.as_str().to_owned(),
                    };
                    progress.report(message).await;
                }
                RunEvent::Pull(step) => progress.report(pull_message(&step)).await,
                RunEvent::Output(chunk) => {
                    output.push(&chunk);
                    progress.throttled(|| output.describe()).await;
                }
                RunEvent::Result(summary) => return output.finish(&summary),
                RunEvent::Error(body) => return Err(body.into()),
            }
        }
        Err(SdkError::StreamEnded {
            path: events.path().to_owned(),
        }
        .into())
    }

    async fn exec_vm(
        &self,
        args: &ExecVmArgs,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ToolError> {
        let request = args.request()?;
        let client = self.client().await?;
        let info = find_vm(client, &args.vm_id).await?;
        let mut guard = DeleteOnDrop {
            client: client.clone(),
            vm_id: Some(info.workspace_id.clone()),
        };
        let mut progress = Progress::new(context);
        let result = async {
            let events = client.exec_workspace(&info.workspace_id, &request).await?;
            collect(events, &mut progress).await
        }
        .await;
        let deleted = client.delete_workspace(&info.workspace_id).await;
        // Disarmed only now, so a call cancelled during the delete still
        // deletes the VM.
        guard.disarm();
        let mut value = match (result, &deleted) {
            (Ok(value), _) => value,
            (Err(err), Ok(_)) => return Err(err),
            // The command's error comes first; the VM left behind must not
            // go unmentioned.
            (Err(ToolError(mut body)), Err(delete)) => {
                let note = format!(
                    "vm {} was not deleted: {}",
                    info.workspace_id,
                    delete.to_body().chain()
                );
                body.detail = Some(match body.detail.take() {
                    Some(detail) => format!("{detail}\n{note}"),
                    None => note,
                });
                return Err(ToolError(body));
            }
        };
        let mut cleanup = json!({
            "vm_id": info.workspace_id,
            "deleted": deleted.is_ok(),
            "reason": "post_exec_cleanup",
        });
        if let (Err(err), Value::Object(map)) = (&deleted, &mut cleanup) {
            map.insert("error".into(), Value::from(err.to_body().chain()));
        }
        if let Value::Object(map) = &mut value {
            map.remove("workspace_id");
            map.remove("sequence");
        }
        Ok(add_missing(
            value,
            [
                ("vm_id", Value::from(info.workspace_id.clone())),
                ("cleanup", cleanup),
            ],
        ))
    }

    async fn reap_vms(&self) -> Result<Value, ToolError> {
        let client = self.client().await?;
        let now = time::OffsetDateTime::now_utc();
        let mut deleted = Vec::new();
        for info in client.list_workspaces().await?.workspaces {
            if !is_vm(&info) || !expired(&info, now) {
                continue;
            }
            match client.delete_workspace(&info.workspace_id).await {
                Ok(_) => deleted.push(info.workspace_id),
                // The supervisor's reaper got there first.
                Err(err) if err.code() == ErrorCode::UnknownWorkspace => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(json!({"count": deleted.len(), "deleted_vm_ids": deleted}))
    }
}

#[tool_router(router = vm_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Run one shell command in a fresh VM that is deleted afterwards. Returns {vm_id,
    /// environment, environment_version, command, exit_code, duration_ms, timed_out, stdout,
    /// stderr, output_truncated, boot_ms, cleanup{...}}. Output is kept up to 1 MiB per stream.
    /// Sends progress (phases, output chunk counts) when given a progress token; cancelling
    /// kills the command and deletes the VM.
    #[tool]
    async fn vm_run(
        &self,
        Parameters(args): Parameters<RunArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(cancellable(&context, "vm_run", self.run_vm(&args, &context)).await)
    }

    /// The environments (guest images) VMs and workspaces can use, and whether each is
    /// installed (first use installs it): {catalog_version, environments[], result[]}.
    #[tool(annotations(read_only_hint = true))]
    async fn vm_list_environments(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        respond(
            cancellable(&context, "vm_list_environments", async {
                let list = self.client().await?.list_environments().await?;
                let environments = to_value(&list.environments)?;
                Ok::<Value, ToolError>(add_missing(to_value(&list)?, [("result", environments)]))
            })
            .await,
        )
    }

    /// Create and start a VM for vm_exec (one command, after which the VM is deleted). Returns
    /// the VM {vm_id, environment, state, vcpu_count, mem_mib, ttl_seconds, expires_at, ...}.
    /// Sends progress (create phases) when given a progress token.
    #[tool]
    async fn vm_create(
        &self,
        Parameters(args): Parameters<CreateVmArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            async {
                let request = args.request()?;
                let client = self.client().await?;
                let info = create(client, &request, &context).await?;
                Ok::<Value, ToolError>(vm_payload(&info))
            }
            .await,
        )
    }

    /// Start a stopped VM (a started one is just reported). Returns the VM.
    #[tool]
    async fn vm_start(
        &self,
        Parameters(args): Parameters<VmIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "vm_start", async {
                let client = self.client().await?;
                let info = find_vm(client, &args.vm_id).await?;
                if info.state == WorkspaceState::Started {
                    return Ok(vm_payload(&info));
                }
                let mut progress = Progress::new(&context);
                let start = client.start_workspace(&info.workspace_id);
                Ok(vm_payload(
                    &with_heartbeat(&mut progress, "start", start).await?,
                ))
            })
            .await,
        )
    }

    /// Run one shell command in a VM, then delete the VM (as the reference does). Returns
    /// {vm_id, command, exit_code, duration_ms, stdout, stderr, output_truncated, cleanup{vm_id,
    /// deleted, reason}}. Sends progress (output chunk counts) when given a progress token.
    #[tool]
    async fn vm_exec(
        &self,
        Parameters(args): Parameters<ExecVmArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(cancellable(&context, "vm_exec", self.exec_vm(&args, &context)).await)
    }

    /// Power a VM off, keeping its disk (a stopped one is just reported). Returns the VM.
    #[tool]
    async fn vm_stop(
        &self,
        Parameters(args): Parameters<VmIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "vm_stop", async {
                let client = self.client().await?;
                let info = find_vm(client, &args.vm_id).await?;
                if info.state == WorkspaceState::Stopped {
                    return Ok(vm_payload(&info));
                }
                let mut progress = Progress::new(&context);
                let stop = client.stop_workspace(&info.workspace_id);
                Ok(vm_payload(
                    &with_heartbeat(&mut progress, "stop", stop).await?,
                ))
            })
            .await,
        )
    }

    /// Delete a VM. Returns {vm_id, deleted, reason}.
    #[tool(annotations(destructive_hint = true))]
    async fn vm_delete(
        &self,
        Parameters(args): Parameters<VmIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "vm_delete", async {
                let client = self.client().await?;
                let info = find_vm(client, &args.vm_id).await?;
                let result = client.delete_workspace(&info.workspace_id).await?;
                Ok::<Value, ToolError>(json!({
                    "vm_id": result.workspace_id,
                    "deleted": result.deleted,
                    "reason": result.reason,
                }))
            })
            .await,
        )
    }

    /// Show a VM: {vm_id, environment, state, vcpu_count, mem_mib, created_at, expires_at,
    /// network_enabled, ...}.
    #[tool(annotations(read_only_hint = true))]
    async fn vm_status(
        &self,
        Parameters(args): Parameters<VmIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "vm_status", async {
                let client = self.client().await?;
                Ok::<Value, ToolError>(vm_payload(&find_vm(client, &args.vm_id).await?))
            })
            .await,
        )
    }

    /// A VM's network: always {network_enabled: false, outbound_connectivity_expected: false,
    /// reason} in this version (guests have no network).
    #[tool(annotations(read_only_hint = true))]
    async fn vm_network_info(
        &self,
        Parameters(args): Parameters<VmIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "vm_network_info", async {
                let client = self.client().await?;
                let info = find_vm(client, &args.vm_id).await?;
                Ok::<Value, ToolError>(json!({
                    "vm_id": info.workspace_id,
                    "network_enabled": false,
                    "outbound_connectivity_expected": false,
                    "reason": "pyro guests have no network in this version (network policy off)",
                }))
            })
            .await,
        )
    }

    /// Delete the VMs whose TTL has passed now. Returns {deleted_vm_ids[], count}.
    #[tool(annotations(destructive_hint = true))]
    async fn vm_reap_expired(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        respond(cancellable(&context, "vm_reap_expired", self.reap_vms()).await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use pyro_sdk::api::workspace::{FailurePolicy, SeedInfo};

    use super::*;

    fn info(labels: &[(&str, &str)], expires_at: &str) -> WorkspaceInfo {
        WorkspaceInfo {
            workspace_id: "0123456789ab".into(),
            name: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            environment: "debian:12".into(),
            environment_version: "1.0.0".into(),
            state: WorkspaceState::Started,
            vcpu_count: 1,
            mem_mib: 1024,
            disk_mib: 4096,
            ttl_seconds: 600,
            on_failure: FailurePolicy::Restart,
            created_at: "2026-11-28T19:30:00Z".into(),
            last_activity_at: "2026-11-28T19:30:00Z".into(),
            expires_at: expires_at.into(),
            execution_mode: "guest_vsock".into(),
            workspace_path: "/workspace".into(),
            network_policy: "off".into(),
            workspace_seed: SeedInfo {
                mode: "empty".into(),
                seed_path: None,
                destination: "/workspace".into(),
                entry_count: 0,
                bytes_written: 0,
            },
            secrets: Vec::new(),
            command_count: 0,
            last_command: None,
            reset_count: 0,
            last_reset_at: None,
            service_count: 0,
            running_service_count: 0,
            last_error: None,
        }
    }

    #[test]
    fn run_defaults_follow_the_reference() {
        let args: RunArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "command": "git --version"}),
        )
        .unwrap();
        let request = args.request().unwrap();
        assert_eq!(
            request,
            RunRequest::new("debian:12", CommandSpec::Shell("git --version".into()))
        );
        let net: RunArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "command": "x", "network": true}),
        )
        .unwrap();
        let err = net.request().unwrap_err();
        assert!(err.0.message.starts_with("network=true is not available"));
        assert!(err.0.hint.is_some());
        let compat: RunArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "command": "x", "allow_host_compat": true}),
        )
        .unwrap();
        assert!(compat.request().is_ok());
        let big: RunArgs = serde_json::from_value(
            serde_json::json!({"environment": "debian:12", "command": "x", "vcpu_count": 16}),
        )
        .unwrap();
        assert!(big
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("vcpu_count must be between 1 and 8"));
        assert!(serde_json::from_value::<RunArgs>(
            serde_json::json!({"environment": "debian:12", "command": "x", "vcpus": 2})
        )
        .is_err());
    }

    #[test]
    fn vms_are_labelled_workspaces() {
        let args: CreateVmArgs =
            serde_json::from_value(serde_json::json!({"environment": "debian:12", "mem_mib": 512}))
                .unwrap();
        let request = args.request().unwrap();
        assert_eq!(
            request.labels.get(KIND_LABEL).map(String::as_str),
            Some(KIND_VM)
        );
        assert_eq!(request.mem_mib, 512);
        assert_eq!(request.ttl_seconds, 600);
        let exec: ExecVmArgs =
            serde_json::from_value(serde_json::json!({"vm_id": "v", "command": "true"})).unwrap();
        assert_eq!(exec.request().unwrap().timeout_seconds, 30);
    }

    #[test]
    fn the_vm_payload_has_the_reference_keys_and_no_host_paths() {
        let payload = vm_payload(&info(&[(KIND_LABEL, KIND_VM)], "2026-11-28T19:40:00Z"));
        for key in [
            "vm_id",
            "environment",
            "environment_version",
            "vcpu_count",
            "mem_mib",
            "ttl_seconds",
            "created_at",
            "expires_at",
            "state",
            "network_enabled",
            "allow_host_compat",
            "guest_ip",
            "tap_name",
            "execution_mode",
            "metadata",
        ] {
            assert!(payload.get(key).is_some(), "{key}");
        }
        assert_eq!(payload["state"], "started");
        assert_eq!(payload["network_enabled"], false);
        assert!(!payload.to_string().contains("/home"));
    }

    #[test]
    fn expiry_compares_times_not_strings() {
        let now = time::OffsetDateTime::parse(
            "2026-11-28T19:40:00.5Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(expired(&info(&[], "2026-11-28T19:40:00.123Z"), now));
        assert!(!expired(&info(&[], "2026-11-28T19:40:01Z"), now));
        assert!(!expired(&info(&[], "garbage"), now));
        assert!(is_vm(&info(&[(KIND_LABEL, KIND_VM)], "x")));
        assert!(!is_vm(&info(&[("team", "vm")], "x")));
    }
}

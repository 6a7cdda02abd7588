//! Service tools (`workspace-full`): long-running background processes in a
//! started workspace, with an optional readiness check, a restart policy and
//! logs.
//!
//! - `service_start` answers once the service is ready, failed, or ran out
//!   of `ready_timeout_seconds`; meanwhile it sends a progress heartbeat.
//!   Cancelling it stops waiting; the service keeps starting (stop it with
//!   `service_stop`).
//! - At most one `ready_*` argument may be given (the reference silently
//!   picked one); `published_ports` is accepted for compatibility but must be
//!   empty, as guests have no network in this version.
//! - `service_logs` puts the service's fields at the top level beside
//!   `service`, as the reference's payload-plus-logs shape does. Logs have
//!   passed the workspace's secret redactor.

use std::collections::BTreeMap;

use pyro_sdk::api::session::{RestartPolicy, ServiceLogsRequest, ServiceStartRequest};
use pyro_sdk::api::CommandSpec;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{check_id, default_workspace_path, secret_env, WorkspaceIdArgs};
use crate::mcp::errors::ToolError;
use crate::mcp::progress::{cancellable, with_heartbeat, Progress};
use crate::mcp::render::{lift, respond, to_value};
use crate::mcp::server::PyroMcp;

fn default_ready_timeout() -> u64 {
    ServiceStartRequest::new("x", CommandSpec::Shell("x".into())).ready_timeout_seconds
}
fn default_ready_interval() -> u64 {
    ServiceStartRequest::new("x", CommandSpec::Shell("x".into())).ready_interval_ms
}
fn default_tail() -> u64 {
    ServiceLogsRequest::default().tail_lines
}

/// When a service is restarted after its process ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(inline)]
pub enum Restart {
    // Never.
    #[default]
    No,
    // When it exits with a non-zero code or a signal.
    OnFailure,
    // Whenever it ends (also after the workspace starts again).
    Always,
}

impl From<Restart> for RestartPolicy {
    fn from(value: Restart) -> Self {
        match value {
            Restart::No => Self::No,
            Restart::OnFailure => Self::OnFailure,
            Restart::Always => Self::Always,
        }
    }
}

/// A port to publish (the reference's argument; not available yet).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedPort {
    /// The port in the guest.
    pub guest_port: u16,
    /// The port on the host.
    #[serde(default)]
    pub host_port: Option<u16>,
}

/// `service_start` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name, `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    pub service_name: String,
    /// The command line, run with `/bin/sh -lc` in the guest.
    pub command: String,
    /// Working directory (relative paths are under /workspace).
    #[serde(default = "default_workspace_path")]
    pub cwd: String,
    /// Ready when this file exists (relative paths are under /workspace).
    #[serde(default)]
    pub ready_file: Option<String>,
    /// Ready when HOST:PORT in the guest accepts a connection.
    #[serde(default)]
    pub ready_tcp: Option<String>,
    /// Ready when this http:// URL in the guest answers 2xx or 3xx.
    #[serde(default)]
    pub ready_http: Option<String>,
    /// Ready when this shell command exits 0.
    #[serde(default)]
    pub ready_command: Option<String>,
    /// How long readiness may take, 1 to 3600 seconds.
    #[serde(default = "default_ready_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub ready_timeout_seconds: u64,
    /// How often readiness is checked, 10 to 60000 ms.
    #[serde(default = "default_ready_interval")]
    #[schemars(range(min = 10, max = 60000))]
    pub ready_interval_ms: u64,
    /// When to restart it: `no`, `on-failure` or `always`.
    #[serde(default)]
    pub restart: Restart,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Workspace secrets to put in its environment: {SECRET_NAME: ENV_VAR}.
    #[serde(default)]
    pub secret_env: Option<BTreeMap<String, String>>,
    /// Ports to publish on the host; not available in this version (must be empty).
    #[serde(default)]
    pub published_ports: Option<Vec<PublishedPort>>,
}

impl StartArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ServiceStartRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        if let Some(ports) = self.published_ports.as_ref().filter(|p| !p.is_empty()) {
            let ports: Vec<String> = ports
                .iter()
                .map(|p| match p.host_port {
                    Some(host) => format!("{host}->{}", p.guest_port),
                    None => p.guest_port.to_string(),
                })
                .collect();
            return Err(ToolError::invalid_with_hint(
                format!(
                    "published_ports ({}) is not available: pyro guests have no network in this version",
                    ports.join(", ")
                ),
                "leave published_ports unset; check the service from inside with workspace_exec",
            ));
        }
        let mut request = ServiceStartRequest::new(
            self.service_name.clone(),
            CommandSpec::Shell(self.command.clone()),
        );
        request.cwd = Some(self.cwd.clone());
        request.ready_file = self.ready_file.clone();
        request.ready_tcp = self.ready_tcp.clone();
        request.ready_http = self.ready_http.clone();
        request.ready_command = self.ready_command.clone();
        request.ready_timeout_seconds = self.ready_timeout_seconds;
        request.ready_interval_ms = self.ready_interval_ms;
        request.restart = self.restart.into();
        request.env = self.env.clone().unwrap_or_default();
        request.secret_env = secret_env(self.secret_env.as_ref())?;
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// Arguments naming one service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name.
    pub service_name: String,
}

/// `service_logs` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name.
    pub service_name: String,
    /// Lines from the end of each stream (ignored with all).
    #[serde(default = "default_tail")]
    pub tail_lines: u64,
    /// Everything kept, not just the tail.
    #[serde(default)]
    pub all: bool,
}

fn check_service(workspace_id: &str, service_name: &str) -> Result<(), ToolError> {
    check_id("workspace_id", workspace_id)?;
    check_id("service_name", service_name)
}

#[tool_router(router = service_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Start a background service in a started workspace and wait until it is ready (at most
    /// one ready_* check; none means started is ready). Returns the service {service_name,
    /// state, command, cwd, readiness, ready_at, pid, restart, ...}. Sends a progress heartbeat
    /// while waiting when given a progress token.
    #[tool]
    async fn service_start(
        &self,
        Parameters(args): Parameters<StartArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "service_start", async {
                let request = args.request()?;
                let client = self.client().await?;
                let mut progress = Progress::new(&context);
                let start = client.start_service(&args.workspace_id, &request);
                Ok(with_heartbeat(&mut progress, "service start", start).await?)
            })
            .await,
        )
    }

    /// The services of a workspace: {workspace_id, count, running_count, services[]}.
    #[tool(annotations(read_only_hint = true))]
    async fn service_list(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "service_list", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.list_services(&args.workspace_id).await?)
            })
            .await,
        )
    }

    /// One service: {service_name, state, readiness, started_at, ready_at, ended_at,
    /// exit_code, pid, restart_count, stop_reason, ...}.
    #[tool(annotations(read_only_hint = true))]
    async fn service_status(
        &self,
        Parameters(args): Parameters<ServiceArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "service_status", async {
                check_service(&args.workspace_id, &args.service_name)?;
                let client = self.client().await?;
                Ok(client
                    .service_status(&args.workspace_id, &args.service_name)
                    .await?)
            })
            .await,
        )
    }

    /// A service's output: the service's fields plus {stdout, stderr, combined, tail_lines,
    /// truncated}; the last tail_lines (default 200) lines, or everything kept with all.
    #[tool(annotations(read_only_hint = true))]
    async fn service_logs(
        &self,
        Parameters(args): Parameters<LogsArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "service_logs", async {
                check_service(&args.workspace_id, &args.service_name)?;
                let client = self.client().await?;
                let request = ServiceLogsRequest {
                    tail_lines: args.tail_lines,
                    all: args.all,
                    follow: false,
                };
                let logs = client
                    .service_logs(&args.workspace_id, &args.service_name, &request)
                    .await?;
                Ok::<Value, ToolError>(lift(to_value(&logs)?, "service"))
            })
            .await,
        )
    }

    /// Stop a service (SIGTERM, then SIGKILL). Returns the service with its stop_reason.
    #[tool(annotations(destructive_hint = true))]
    async fn service_stop(
        &self,
        Parameters(args): Parameters<ServiceArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "service_stop", async {
                check_service(&args.workspace_id, &args.service_name)?;
                let client = self.client().await?;
                Ok(client
                    .stop_service(&args.workspace_id, &args.service_name)
                    .await?)
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn start(extra: serde_json::Value) -> StartArgs {
        let mut args = serde_json::json!({"workspace_id": "w", "service_name": "web", "command": "python3 -m http.server"});
        if let (Some(map), serde_json::Value::Object(extra)) = (args.as_object_mut(), extra) {
            map.extend(extra);
        }
        serde_json::from_value(args).unwrap()
    }

    #[test]
    fn defaults_follow_the_reference() {
        let request = start(serde_json::json!({})).request().unwrap();
        assert_eq!(request.cwd.as_deref(), Some("/workspace"));
        assert_eq!(
            (request.ready_timeout_seconds, request.ready_interval_ms),
            (30, 500)
        );
        assert_eq!(request.restart, RestartPolicy::No);
        assert_eq!(
            request.command,
            CommandSpec::Shell("python3 -m http.server".into())
        );
        let logs: LogsArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "service_name": "web"}))
                .unwrap();
        assert_eq!((logs.tail_lines, logs.all), (200, false));
    }

    #[test]
    fn one_readiness_check_and_no_published_ports() {
        let both =
            start(serde_json::json!({"ready_file": ".ready", "ready_tcp": "127.0.0.1:8000"}));
        assert!(both
            .request()
            .unwrap_err()
            .0
            .message
            .contains("at most one"));
        let ports = start(serde_json::json!({"published_ports": [{"guest_port": 8000}]}));
        assert!(ports
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("published_ports"));
        let empty = start(serde_json::json!({"published_ports": [], "restart": "on-failure"}));
        assert_eq!(empty.request().unwrap().restart, RestartPolicy::OnFailure);
        let bad_name: StartArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "service_name": "-x", "command": "true"}),
        )
        .unwrap();
        assert!(bad_name
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("service name"));
    }
}

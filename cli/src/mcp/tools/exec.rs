//! `workspace_exec`: one command in a started workspace, its output
//! streamed from the supervisor and collected into the result. The
//! `workspace-full` variant also takes `secret_env`.
//!
//! Progress: a notification when the command starts and then, throttled,
//! the count of output chunks and bytes received so far.
//!
//! Cancellation drops the exec stream; the supervisor then drops its guest
//! connection and the guest agent kills the command's process group. The
//! command stays in the workspace history with exit code 130. (The
//! supervisor notices the caller left when it next forwards output, so a
//! command that prints nothing runs on until it prints or times out.)

use std::collections::BTreeMap;

use pyro_sdk::api::workspace::{ExecEvent, ExecRequest};
use pyro_sdk::api::CommandSpec;
use pyro_sdk::{EventStream, SdkError};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{check_id, default_timeout, secret_env};
use crate::mcp::errors::ToolError;
use crate::mcp::progress::{cancellable, Progress};
use crate::mcp::render::{respond, OutputCollector};
use crate::mcp::server::PyroMcp;

/// `workspace_exec` arguments (`workspace-core` profile).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The command line, run with `/bin/sh -lc` in the guest.
    pub command: String,
    /// Seconds before the command's process group is killed (exit code 124); 1 to 86400.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
    /// Working directory in the guest (default /workspace; relative paths are under it).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables for the command.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
}

/// `workspace_exec` arguments (`workspace-full` profile).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecFullArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The command line, run with `/bin/sh -lc` in the guest.
    pub command: String,
    /// Seconds before the command's process group is killed (exit code 124); 1 to 86400.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
    /// Working directory in the guest (default /workspace; relative paths are under it).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Extra environment variables for the command.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Workspace secrets to put in the command's environment: {SECRET_NAME: ENV_VAR}.
    #[serde(default)]
    pub secret_env: Option<BTreeMap<String, String>>,
}

impl ExecArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ExecRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        let mut request = ExecRequest::new(CommandSpec::Shell(self.command.clone()));
        request.timeout_seconds = self.timeout_seconds;
        request.cwd = self.cwd.clone();
        request.env = self.env.clone().unwrap_or_default();
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

impl ExecFullArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ExecRequest, ToolError> {
        let core = ExecArgs {
            workspace_id: self.workspace_id.clone(),
            command: self.command.clone(),
            timeout_seconds: self.timeout_seconds,
            cwd: self.cwd.clone(),
            env: self.env.clone(),
        };
        let mut request = core.request()?;
        request.secret_env = secret_env(self.secret_env.as_ref())?;
        Ok(request)
    }
}

/// Collects an exec stream into `summary + stdout/stderr`, reporting
/// progress.
pub async fn collect(
    mut events: EventStream<ExecEvent>,
    progress: &mut Progress,
) -> Result<Value, ToolError> {
    progress.report("command started").await;
    let mut output = OutputCollector::default();
    while let Some(event) = events.next().await {
        match event? {
            ExecEvent::Output(chunk) => {
                output.push(&chunk);
                progress.throttled(|| output.describe()).await;
            }
            ExecEvent::Result(summary) => {
                progress
                    .report(format!(
                        "command exited with {} after {}",
                        summary.exit_code,
                        output.describe()
                    ))
                    .await;
                return output.finish(&summary);
            }
            ExecEvent::Error(body) => return Err(body.into()),
        }
    }
    Err(SdkError::StreamEnded {
        path: events.path().to_owned(),
    }
    .into())
}

impl PyroMcp {
    async fn exec_tool(
        &self,
        workspace_id: &str,
        request: Result<ExecRequest, ToolError>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(context, "workspace_exec", async {
                let request = request?;
                let client = self.client().await?;
                let mut progress = Progress::new(context);
                let events = client.exec_workspace(workspace_id, &request).await?;
                collect(events, &mut progress).await
            })
            .await,
        )
    }
}

#[tool_router(router = exec_core, vis = "pub(crate)")]
impl PyroMcp {
    /// Run one shell command in a started workspace (cwd /workspace by default) and return
    /// {workspace_id, sequence, command, cwd, exit_code, duration_ms, timed_out, stdout, stderr,
    /// output_truncated, ...}. Output is kept up to 1 MiB per stream. Sends progress (output
    /// chunk counts) when given a progress token; cancelling kills the command.
    #[tool(name = "workspace_exec")]
    async fn workspace_exec_core(
        &self,
        Parameters(args): Parameters<ExecArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.exec_tool(&args.workspace_id, args.request(), &context)
            .await
    }
}

#[tool_router(router = exec_full, vis = "pub(crate)")]
impl PyroMcp {
    /// Run one shell command in a started workspace (cwd /workspace by default), optionally
    /// with workspace secrets in its environment (secret_env), and return {workspace_id,
    /// sequence, command, cwd, exit_code, duration_ms, timed_out, stdout, stderr,
    /// output_truncated, ...}. Output is kept up to 1 MiB per stream (secret values redacted).
    /// Sends progress (output chunk counts) when given a progress token; cancelling kills the
    /// command.
    #[tool(name = "workspace_exec")]
    async fn workspace_exec_full(
        &self,
        Parameters(args): Parameters<ExecFullArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.exec_tool(&args.workspace_id, args.request(), &context)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn args(value: serde_json::Value) -> Result<ExecArgs, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn defaults_follow_the_reference() {
        let a = args(serde_json::json!({"workspace_id": "w", "command": "make"})).unwrap();
        let request = a.request().unwrap();
        assert_eq!(request.timeout_seconds, 30);
        assert_eq!(request.command, CommandSpec::Shell("make".into()));
        assert_eq!(request.cwd, None);
        assert!(request.env.is_empty());
    }

    #[test]
    fn bad_input_is_refused_with_the_field_named() {
        let a = args(serde_json::json!({"workspace_id": "w", "command": "  "})).unwrap();
        assert!(a
            .request()
            .unwrap_err()
            .0
            .message
            .contains("command is empty"));
        let a =
            args(serde_json::json!({"workspace_id": "w", "command": "x", "timeout_seconds": 0}))
                .unwrap();
        assert!(a
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("timeout_seconds"));
        let a = args(serde_json::json!({"workspace_id": "w", "command": "x", "env": {"1X": "v"}}))
            .unwrap();
        assert!(a.request().unwrap_err().0.message.contains("\"1X\""));
        assert!(
            args(serde_json::json!({"workspace_id": "w", "command": "x", "secret_env": {}}))
                .is_err()
        );
        let a = args(serde_json::json!({"workspace_id": "", "command": "x"})).unwrap();
        assert_eq!(
            a.request().unwrap_err().0.message,
            "workspace_id must not be empty"
        );
    }
}

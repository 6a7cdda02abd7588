//! Shell tools (`workspace-full`): interactive PTY shells that keep running
//! in a started workspace between calls. Open one, write input, read output
//! from a cursor (optionally waiting until it goes quiet, optionally
//! rendered to plain text), send signals, resize, close.
//!
//! Results are the SDK's, with the reference's keys added: `shell_read`
//! puts the shell's fields at the top level beside `shell` (as the
//! reference's payload-plus-output shape does), `shell_write` adds
//! `input_length` and `append_newline`, `shell_signal` adds `signal`,
//! `shell_close` adds `closed`. Output has passed the workspace's secret
//! redactor. `shell_read` with `wait_for_idle_ms` waits at most 10 s;
//! cancelling it stops waiting.

use std::collections::BTreeMap;

use pyro_sdk::api::session::{
    ShellOpenRequest, ShellReadRequest, ShellResizeRequest, ShellSignalName, ShellSignalRequest,
    ShellWriteRequest,
};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_id, default_workspace_path, secret_env, WorkspaceIdArgs};
use crate::mcp::errors::ToolError;
use crate::mcp::progress::cancellable;
use crate::mcp::render::{add_missing, lift, respond, to_value};
use crate::mcp::server::PyroMcp;

fn default_cols() -> u16 {
    ShellOpenRequest::default().cols
}
fn default_rows() -> u16 {
    ShellOpenRequest::default().rows
}
fn default_max_chars() -> u64 {
    ShellReadRequest::default().max_chars
}
fn default_true() -> bool {
    true
}

/// `shell_open` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// Where the shell starts (relative paths are under /workspace).
    #[serde(default = "default_workspace_path")]
    pub cwd: String,
    /// Terminal width, 10 to 1000.
    #[serde(default = "default_cols")]
    #[schemars(range(min = 10, max = 1000))]
    pub cols: u16,
    /// Terminal height, 5 to 1000.
    #[serde(default = "default_rows")]
    #[schemars(range(min = 5, max = 1000))]
    pub rows: u16,
    /// Workspace secrets to put in the shell's environment: {SECRET_NAME: ENV_VAR}.
    #[serde(default)]
    pub secret_env: Option<BTreeMap<String, String>>,
}

impl OpenArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ShellOpenRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        let request = ShellOpenRequest {
            cwd: Some(self.cwd.clone()),
            cols: self.cols,
            rows: self.rows,
            secret_env: secret_env(self.secret_env.as_ref())?,
        };
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// Arguments naming one shell.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellIdArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id (from shell_open).
    pub shell_id: String,
}

/// `shell_read` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// Byte offset to read from: 0 for the start, or the next_cursor of the previous read.
    #[serde(default)]
    pub cursor: u64,
    /// At most this many bytes of output, 1 to 16777216.
    #[serde(default = "default_max_chars")]
    #[schemars(range(min = 1, max = 16777216))]
    pub max_chars: u64,
    /// Render terminal escapes to plain text.
    #[serde(default)]
    pub plain: bool,
    /// First wait until no output arrived for this many milliseconds (1 to 10000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub wait_for_idle_ms: Option<u64>,
}

impl ReadArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ShellReadRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        check_id("shell_id", &self.shell_id)?;
        let request = ShellReadRequest {
            cursor: self.cursor,
            max_chars: self.max_chars,
            plain: self.plain,
            wait_for_idle_ms: self.wait_for_idle_ms,
        };
        request.validate().map_err(ToolError::invalid)?;
        Ok(request)
    }
}

/// `shell_write` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// What to type.
    pub input: String,
    /// Press Enter after the input.
    #[serde(default = "default_true")]
    pub append_newline: bool,
}

/// A signal for a shell's foreground job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schemars(inline)]
pub enum SignalName {
    // Hang up.
    Hup,
    // Interrupt (Ctrl-C).
    #[default]
    Int,
    // Terminate.
    Term,
    // Kill.
    Kill,
}

impl From<SignalName> for ShellSignalName {
    fn from(value: SignalName) -> Self {
        match value {
            SignalName::Hup => Self::Hup,
            SignalName::Int => Self::Int,
            SignalName::Term => Self::Term,
            SignalName::Kill => Self::Kill,
        }
    }
}

/// `shell_signal` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// The signal for the foreground job: HUP, INT (Ctrl-C), TERM or KILL.
    #[serde(default)]
    pub signal_name: SignalName,
}

/// `shell_resize` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The shell id.
    pub shell_id: String,
    /// New width, 10 to 1000.
    #[schemars(range(min = 10, max = 1000))]
    pub cols: u16,
    /// New height, 5 to 1000.
    #[schemars(range(min = 5, max = 1000))]
    pub rows: u16,
}

fn check_shell(args: &ShellIdArgs) -> Result<(), ToolError> {
    check_id("workspace_id", &args.workspace_id)?;
    check_id("shell_id", &args.shell_id)
}

#[tool_router(router = shell_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Open an interactive shell (bash on a PTY) in a started workspace; it keeps running
    /// between calls. Returns the shell {shell_id, cwd, cols, rows, state, started_at,
    /// output_end, ...}; then use shell_write and shell_read.
    #[tool]
    async fn shell_open(
        &self,
        Parameters(args): Parameters<OpenArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_open", async {
                let request = args.request()?;
                let client = self.client().await?;
                Ok(client.open_shell(&args.workspace_id, &request).await?)
            })
            .await,
        )
    }

    /// Read a shell's output from a cursor: the shell's fields plus {cursor, next_cursor,
    /// output, truncated, more, plain}. Pass next_cursor to the next read; wait_for_idle_ms
    /// first waits until the output goes quiet.
    #[tool(annotations(read_only_hint = true))]
    async fn shell_read(
        &self,
        Parameters(args): Parameters<ReadArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_read", async {
                let request = args.request()?;
                let client = self.client().await?;
                let read = client
                    .read_shell(&args.workspace_id, &args.shell_id, &request)
                    .await?;
                Ok::<Value, ToolError>(lift(to_value(&read)?, "shell"))
            })
            .await,
        )
    }

    /// Type input into a shell (Enter appended unless append_newline is false). Returns the
    /// shell plus {input_length, append_newline}.
    #[tool]
    async fn shell_write(
        &self,
        Parameters(args): Parameters<WriteArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_write", async {
                check_id("workspace_id", &args.workspace_id)?;
                check_id("shell_id", &args.shell_id)?;
                let client = self.client().await?;
                let request = ShellWriteRequest {
                    input: args.input.clone(),
                    append_newline: args.append_newline,
                };
                let shell = client
                    .write_shell(&args.workspace_id, &args.shell_id, &request)
                    .await?;
                Ok::<Value, ToolError>(add_missing(
                    to_value(&shell)?,
                    [
                        ("input_length", Value::from(args.input.chars().count())),
                        ("append_newline", Value::from(args.append_newline)),
                    ],
                ))
            })
            .await,
        )
    }

    /// Send a signal (default INT, like Ctrl-C) to a shell's foreground job. Returns the shell
    /// plus {signal}.
    #[tool]
    async fn shell_signal(
        &self,
        Parameters(args): Parameters<SignalArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_signal", async {
                check_id("workspace_id", &args.workspace_id)?;
                check_id("shell_id", &args.shell_id)?;
                let client = self.client().await?;
                let request = ShellSignalRequest {
                    signal: args.signal_name.into(),
                };
                let shell = client
                    .signal_shell(&args.workspace_id, &args.shell_id, &request)
                    .await?;
                Ok::<Value, ToolError>(add_missing(
                    to_value(&shell)?,
                    [("signal", to_value(&args.signal_name)?)],
                ))
            })
            .await,
        )
    }

    /// Resize a shell's terminal. Returns the shell.
    #[tool]
    async fn shell_resize(
        &self,
        Parameters(args): Parameters<ResizeArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_resize", async {
                check_id("workspace_id", &args.workspace_id)?;
                check_id("shell_id", &args.shell_id)?;
                let request = ShellResizeRequest {
                    cols: args.cols,
                    rows: args.rows,
                };
                request.validate().map_err(ToolError::invalid)?;
                let client = self.client().await?;
                Ok(client
                    .resize_shell(&args.workspace_id, &args.shell_id, &request)
                    .await?)
            })
            .await,
        )
    }

    /// The shells of a workspace, oldest first: {workspace_id, count, shells[]}.
    #[tool(annotations(read_only_hint = true))]
    async fn shell_list(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_list", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.list_shells(&args.workspace_id).await?)
            })
            .await,
        )
    }

    /// Close a shell (its processes are killed). Returns the shell (state stopped) plus
    /// {closed: true}.
    #[tool(annotations(destructive_hint = true))]
    async fn shell_close(
        &self,
        Parameters(args): Parameters<ShellIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "shell_close", async {
                check_shell(&args)?;
                let client = self.client().await?;
                let shell = client
                    .close_shell(&args.workspace_id, &args.shell_id)
                    .await?;
                Ok::<Value, ToolError>(add_missing(
                    to_value(&shell)?,
                    [("closed", Value::Bool(true))],
                ))
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn defaults_follow_the_reference() {
        let open: OpenArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w"})).unwrap();
        let request = open.request().unwrap();
        assert_eq!(
            (request.cwd.as_deref(), request.cols, request.rows),
            (Some("/workspace"), 120, 30)
        );
        let read: ReadArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "shell_id": "s"}))
                .unwrap();
        let request = read.request().unwrap();
        assert_eq!(
            (request.cursor, request.max_chars, request.plain),
            (0, 65536, false)
        );
        assert_eq!(request.wait_for_idle_ms, None);
        let write: WriteArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "shell_id": "s", "input": "ls"}),
        )
        .unwrap();
        assert!(write.append_newline);
        let signal: SignalArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "shell_id": "s"}))
                .unwrap();
        assert_eq!(
            ShellSignalName::from(signal.signal_name),
            ShellSignalName::Int
        );
        let kill: SignalArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "shell_id": "s", "signal_name": "KILL"}),
        )
        .unwrap();
        assert_eq!(
            ShellSignalName::from(kill.signal_name),
            ShellSignalName::Kill
        );
    }

    #[test]
    fn bad_sizes_and_waits_are_refused() {
        let open: OpenArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "cols": 5})).unwrap();
        assert!(open
            .request()
            .unwrap_err()
            .0
            .message
            .contains("terminal size"));
        let read: ReadArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "shell_id": "s", "wait_for_idle_ms": 20000}),
        )
        .unwrap();
        assert!(read
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("wait_for_idle_ms"));
        assert!(serde_json::from_value::<SignalArgs>(
            serde_json::json!({"workspace_id": "w", "shell_id": "s", "signal_name": "STOP"})
        )
        .is_err());
    }
}

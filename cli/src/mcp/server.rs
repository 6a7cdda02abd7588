//! The MCP server object: one [`PyroMcp`] per MCP session (one for stdio,
//! one per HTTP session), all sharing one lazily connected supervisor
//! client and the allowed roots.
//!
//! rmcp runs every request in its own task, so a long `workspace_exec`
//! never holds up a concurrent `workspace_file_read`; nothing here takes a
//! lock across an await (the client is connection-per-request).
//!
//! The supervisor is reached on the first tool call that needs it (started
//! if it is not running), not at startup: listing tools works without one,
//! and a failed connection is retried on the next call.

use std::sync::Arc;

use pyro_sdk::{Client, ConnectOptions};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool_handler, ErrorData, RoleServer, ServerHandler};

use super::errors::{self, ToolError};
use super::paths::AllowedRoots;
use super::profiles::Profile;

/// What every session of one `pyro mcp serve` shares.
#[derive(Debug)]
struct Shared {
    profile: Profile,
    roots: AllowedRoots,
    /// How to reach the supervisor; `None`: from the environment, at first
    /// use.
    connect: Option<ConnectOptions>,
    client: tokio::sync::OnceCell<Client>,
}

/// The pyro MCP server.
#[derive(Debug, Clone)]
pub struct PyroMcp {
    shared: Arc<Shared>,
    router: ToolRouter<PyroMcp>,
}

/// Server instructions, shown to the model by most clients.
const INSTRUCTIONS: &str = "pyro runs commands in Linux microVMs. \
vm_run runs one shell command in a fresh VM that is deleted afterwards. \
Workspaces are persistent VMs with a /workspace tree: workspace_create (optionally seeded \
from a host directory or archive), workspace_exec, workspace_file_read/write, \
workspace_patch_apply, workspace_diff (against the baseline), snapshots and workspace_reset, \
workspace_export, workspace_delete; with the workspace-full profile also shells, services and \
secrets. Host paths (seed_path, source_path, output_path, secret file_path) must lie inside the \
directories the server allows. Long calls report progress when given a progress \
token and stop when cancelled. Errors carry a stable code and a hint.";

impl PyroMcp {
    /// A server for `profile` with host paths confined to `roots`.
    pub fn new(profile: Profile, roots: AllowedRoots) -> Self {
        Self::with_connect(profile, roots, None)
    }

    /// A server that reaches the supervisor with `connect` (the tests' fake
    /// supervisor) instead of the environment's options.
    pub fn with_connect(
        profile: Profile,
        roots: AllowedRoots,
        connect: Option<ConnectOptions>,
    ) -> Self {
        Self {
            router: profile.router(),
            shared: Arc::new(Shared {
                profile,
                roots,
                connect,
                client: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Another session of the same server (same client and roots).
    pub fn session(&self) -> Self {
        self.clone()
    }

    /// The profile served.
    pub fn profile(&self) -> Profile {
        self.shared.profile
    }

    /// The allowed roots.
    pub fn roots(&self) -> &AllowedRoots {
        &self.shared.roots
    }

    /// The supervisor client, connecting (and starting it) on first use.
    pub async fn client(&self) -> Result<&Client, ToolError> {
        self.shared
            .client
            .get_or_try_init(|| async {
                let options = match &self.shared.connect {
                    Some(options) => options.clone(),
                    None => ConnectOptions::from_env()?,
                };
                Client::connect(options).await
            })
            .await
            .map_err(ToolError::from)
    }
}

#[tool_handler(router = self.router)]
impl ServerHandler for PyroMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pyro", pyro_sdk::VERSION))
            .with_instructions(INSTRUCTIONS.to_owned())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.clone();
        let call = ToolCallContext::new(self, request, context);
        match self.router.call(call).await? {
            CallToolResponse::Complete(result) => Ok(CallToolResponse::Complete(
                errors::from_argument_error(&name, result),
            )),
            other => Ok(other),
        }
    }
}

//! Snapshot tools: create, list and delete named snapshots of /workspace
//! (the `baseline` snapshot, the seed, always exists).
//!
//! `snapshot_create` answers with the SDK's snapshot plus the reference's
//! nested `snapshot{...}` and `execution_mode`.

use pyro_sdk::api::workspace::SnapshotRequest;
use pyro_sdk::api::EXECUTION_MODE;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{check_id, WorkspaceIdArgs};
use crate::mcp::errors::ToolError;
use crate::mcp::progress::cancellable;
use crate::mcp::render::{add_missing, respond, to_value};
use crate::mcp::server::PyroMcp;

/// `snapshot_create` and `snapshot_delete` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The snapshot name (`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`; `baseline` is the seed's).
    pub snapshot_name: String,
}

/// The reference's shape: ours plus `snapshot{...}` and `execution_mode`.
fn create_shape(snapshot: Value) -> Value {
    let nested = snapshot.clone();
    add_missing(
        snapshot,
        [
            ("snapshot", nested),
            ("execution_mode", Value::from(EXECUTION_MODE)),
        ],
    )
}

#[tool_router(router = snapshot_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Take a named snapshot of /workspace (to diff against or reset to later). Returns
    /// {workspace_id, snapshot_name, kind, created_at, entry_count, bytes_written, deletable,
    /// snapshot{...}}.
    #[tool]
    async fn snapshot_create(
        &self,
        Parameters(args): Parameters<SnapshotArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "snapshot_create", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                let request = SnapshotRequest {
                    name: args.snapshot_name.clone(),
                };
                let snapshot = client.create_snapshot(&args.workspace_id, &request).await?;
                Ok::<Value, ToolError>(create_shape(to_value(&snapshot)?))
            })
            .await,
        )
    }

    /// The snapshots of a workspace, baseline first: {workspace_id, count, snapshots[]}.
    #[tool(annotations(read_only_hint = true))]
    async fn snapshot_list(
        &self,
        Parameters(args): Parameters<WorkspaceIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "snapshot_list", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client.list_snapshots(&args.workspace_id).await?)
            })
            .await,
        )
    }

    /// Delete a named snapshot (the baseline cannot be deleted). Returns {workspace_id,
    /// snapshot_name, deleted}.
    #[tool(annotations(destructive_hint = true))]
    async fn snapshot_delete(
        &self,
        Parameters(args): Parameters<SnapshotArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "snapshot_delete", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                Ok(client
                    .delete_snapshot(&args.workspace_id, &args.snapshot_name)
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

    #[test]
    fn create_answers_in_both_shapes() {
        let shaped = create_shape(serde_json::json!({"workspace_id": "w", "snapshot_name": "c"}));
        assert_eq!(shaped["snapshot_name"], "c");
        assert_eq!(shaped["snapshot"]["snapshot_name"], "c");
        assert_eq!(shaped["execution_mode"], "guest_vsock");
        assert!(
            serde_json::from_value::<SnapshotArgs>(serde_json::json!({"workspace_id": "w"}))
                .is_err()
        );
    }
}

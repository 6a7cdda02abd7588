//! Offline disk tools of a stopped workspace: export the writable disk as
//! an ext4 image, list and read files on it without booting.
//!
//! `workspace_disk_export` writes a new host file (`output_path`, confined
//! to the allowed roots). Cancelling any of these stops waiting; the
//! supervisor finishes what it started.

use pyro_sdk::api::workspace::DiskExportRequest;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;

use super::check_id;
use super::files::{ListArgs, ReadArgs};
use crate::mcp::errors::ToolError;
use crate::mcp::paths::AllowedRoots;
use crate::mcp::progress::cancellable;
use crate::mcp::render::respond;
use crate::mcp::server::PyroMcp;

/// `workspace_disk_export` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskExportArgs {
    /// The workspace id (the workspace must be stopped).
    pub workspace_id: String,
    /// A host path that does not exist yet, inside the server's allowed roots (relative paths are relative to the first one).
    pub output_path: String,
}

impl DiskExportArgs {
    /// The SDK request, with the output confined to `roots`.
    pub fn request(&self, roots: &AllowedRoots) -> Result<DiskExportRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        Ok(DiskExportRequest {
            output_path: roots.output("output_path", &self.output_path)?,
        })
    }
}

#[tool_router(router = disk_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Copy a stopped workspace's writable disk to a new host file (a sparse ext4 image) inside
    /// the server's allowed roots. Returns {workspace_id, output_path, disk_format,
    /// bytes_written}.
    #[tool]
    async fn workspace_disk_export(
        &self,
        Parameters(args): Parameters<DiskExportArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_disk_export", async {
                let request = args.request(self.roots())?;
                let client = self.client().await?;
                Ok(client
                    .export_workspace_disk(&args.workspace_id, &request)
                    .await?)
            })
            .await,
        )
    }

    /// List a directory on a stopped workspace's disk without booting it: {path, recursive,
    /// entries:[{path, artifact_type, size_bytes, mode, link_target}]}.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_disk_list(
        &self,
        Parameters(args): Parameters<ListArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_disk_list", async {
                let request = args.request()?;
                let client = self.client().await?;
                Ok(client
                    .list_workspace_disk(&args.workspace_id, &request)
                    .await?)
            })
            .await,
        )
    }

    /// Read (the start of) a file on a stopped workspace's disk without booting it: {path,
    /// size_bytes, max_bytes, content, content_base64, truncated}.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_disk_read(
        &self,
        Parameters(args): Parameters<ReadArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_disk_read", async {
                let request = args.request()?;
                let client = self.client().await?;
                Ok(client
                    .read_workspace_disk(&args.workspace_id, &request)
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
    fn the_output_path_is_confined() {
        let dir = tempfile::tempdir().unwrap();
        let roots = AllowedRoots::new(&[], dir.path()).unwrap();
        let ok: DiskExportArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "output_path": "disk.ext4"}),
        )
        .unwrap();
        assert!(ok
            .request(&roots)
            .unwrap()
            .output_path
            .ends_with("/disk.ext4"));
        let bad: DiskExportArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "output_path": "/var/tmp/disk.ext4"}),
        )
        .unwrap();
        assert!(bad.request(&roots).is_err());
    }
}

//! File tools of a started workspace: sync push, export, diff, file
//! list/read/write, patch apply.
//!
//! - `workspace_sync_push` (`source_path`) and `workspace_export`
//!   (`output_path`) name host paths, confined to the allowed roots.
//! - `workspace_sync_push` sends a progress heartbeat; cancelling it stops
//!   waiting but the copy, once sent, completes in the supervisor (all or
//!   nothing, like every push).
//! - Results are the SDK's, with the reference's keys added where ours lack
//!   them: `workspace_sync{...}` on sync push, `execution_mode` on list and
//!   read, `size_bytes` on write.

use pyro_sdk::api::workspace::{
    DiffRequest, ExportRequest, ListRequest, PatchRequest, ReadRequest, SyncPushRequest,
    WriteRequest, MAX_READ_BYTES, MAX_TEXT_BYTES,
};
use pyro_sdk::api::EXECUTION_MODE;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{check_id, default_read_bytes, default_workspace_path};
use crate::mcp::errors::ToolError;
use crate::mcp::paths::AllowedRoots;
use crate::mcp::progress::{cancellable, with_heartbeat, Progress};
use crate::mcp::render::{add_missing, pick, respond, to_value};
use crate::mcp::server::PyroMcp;

/// `workspace_sync_push` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncPushArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A host directory or .tar/.tar.gz/.tgz inside the server's allowed roots (relative paths are relative to the first one).
    pub source_path: String,
    /// Where in the guest (relative paths are under /workspace).
    #[serde(default = "default_workspace_path")]
    pub dest: String,
}

impl SyncPushArgs {
    /// The SDK request, with the source confined to `roots`.
    pub fn request(&self, roots: &AllowedRoots) -> Result<SyncPushRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        Ok(SyncPushRequest {
            source_path: roots.input("source_path", &self.source_path)?,
            dest: Some(self.dest.clone()),
        })
    }
}

/// `workspace_export` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A file, directory or symlink in the workspace (relative paths are under /workspace).
    pub path: String,
    /// A host path that does not exist yet, inside the server's allowed roots (relative paths are relative to the first one).
    pub output_path: String,
}

impl ExportArgs {
    /// The SDK request, with the output confined to `roots`.
    pub fn request(&self, roots: &AllowedRoots) -> Result<ExportRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        Ok(ExportRequest {
            path: self.path.clone(),
            output_path: roots.output("output_path", &self.output_path)?,
        })
    }
}

/// `workspace_diff` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The snapshot to compare with (default `baseline`).
    #[serde(default)]
    pub against: Option<String>,
}

/// Listing arguments (`workspace_file_list`, `workspace_disk_list`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A directory (relative paths are under /workspace).
    #[serde(default = "default_workspace_path")]
    pub path: String,
    /// Descend into subdirectories.
    #[serde(default)]
    pub recursive: bool,
}

impl ListArgs {
    /// The SDK request.
    pub fn request(&self) -> Result<ListRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        Ok(ListRequest {
            path: Some(self.path.clone()),
            recursive: self.recursive,
        })
    }
}

/// Reading arguments (`workspace_file_read`, `workspace_disk_read`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A regular file (relative paths are under /workspace).
    pub path: String,
    /// Read at most this many bytes, 1 to 16777216.
    #[serde(default = "default_read_bytes")]
    #[schemars(range(min = 1, max = 16777216))]
    pub max_bytes: u64,
}

impl ReadArgs {
    /// The SDK request, validated.
    pub fn request(&self) -> Result<ReadRequest, ToolError> {
        check_id("workspace_id", &self.workspace_id)?;
        if self.max_bytes == 0 || self.max_bytes > MAX_READ_BYTES {
            return Err(ToolError::invalid(format!(
                "max_bytes must be between 1 and {MAX_READ_BYTES} (got {})",
                self.max_bytes
            )));
        }
        Ok(ReadRequest {
            path: self.path.clone(),
            max_bytes: self.max_bytes,
        })
    }
}

/// `workspace_file_write` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The file (relative paths are under /workspace); created with its parents if missing.
    pub path: String,
    /// Its new contents (UTF-8 text, at most 1 MiB).
    pub text: String,
}

/// `workspace_patch_apply` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A unified diff (`git diff` output works), at most 1 MiB; applied entirely or not at all.
    pub patch: String,
}

/// Refuses a text argument over 1 MiB before sending it.
fn check_text(argument: &str, text: &str) -> Result<(), ToolError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ToolError::invalid(format!(
            "{argument} is {} bytes; at most {MAX_TEXT_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(())
}

/// The reference's sync result keys, nested.
fn sync_shape(result: Value) -> Value {
    let nested = pick(
        &result,
        &[
            "mode",
            "source_path",
            "destination",
            "entry_count",
            "bytes_written",
        ],
    );
    add_missing(result, [("workspace_sync", nested)])
}

/// `execution_mode`, as the reference reports it.
fn execution_mode() -> (&'static str, Value) {
    ("execution_mode", Value::from(EXECUTION_MODE))
}

#[tool_router(router = file_tools, vis = "pub(crate)")]
impl PyroMcp {
    /// Copy a host directory or .tar/.tar.gz/.tgz (inside the server's allowed roots) into a
    /// started workspace, at dest (default /workspace). All or nothing: a push that fails changes nothing.
    /// Returns {workspace_id, mode, source_path, destination, entry_count, bytes_written,
    /// workspace_sync{...}}.
    #[tool]
    async fn workspace_sync_push(
        &self,
        Parameters(args): Parameters<SyncPushArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_sync_push", async {
                let request = args.request(self.roots())?;
                let client = self.client().await?;
                let mut progress = Progress::new(&context);
                let push = client.sync_push(&args.workspace_id, &request);
                let result = with_heartbeat(&mut progress, "sync push", push).await?;
                Ok::<Value, ToolError>(sync_shape(to_value(&result)?))
            })
            .await,
        )
    }

    /// Copy a file, directory or symlink out of a workspace to a new host path inside the
    /// server's allowed roots (never overwrites). Returns {workspace_id, workspace_path,
    /// output_path, artifact_type, entry_count, bytes_written}.
    #[tool]
    async fn workspace_export(
        &self,
        Parameters(args): Parameters<ExportArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_export", async {
                let request = args.request(self.roots())?;
                let client = self.client().await?;
                Ok(client
                    .export_workspace(&args.workspace_id, &request)
                    .await?)
            })
            .await,
        )
    }

    /// What changed in /workspace since the baseline (or a named snapshot): {changed,
    /// summary{total, added, modified, deleted, ...}, entries:[{path, status, artifact_type,
    /// text_patch}], patch}. Paths are relative to /workspace.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_diff(
        &self,
        Parameters(args): Parameters<DiffArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_diff", async {
                check_id("workspace_id", &args.workspace_id)?;
                let client = self.client().await?;
                let request = DiffRequest {
                    against: args.against.clone(),
                };
                Ok(client.diff_workspace(&args.workspace_id, &request).await?)
            })
            .await,
        )
    }

    /// List a directory of a started workspace: {path, recursive, entries:[{path,
    /// artifact_type, size_bytes, mode, link_target}]}, paths absolute.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_file_list(
        &self,
        Parameters(args): Parameters<ListArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_file_list", async {
                let request = args.request()?;
                let client = self.client().await?;
                let result = client
                    .list_workspace_files(&args.workspace_id, &request)
                    .await?;
                Ok::<Value, ToolError>(add_missing(to_value(&result)?, [execution_mode()]))
            })
            .await,
        )
    }

    /// Read (the start of) a file of a started workspace: {path, size_bytes, max_bytes, content,
    /// content_base64, truncated}. content is text (invalid UTF-8 replaced); content_base64 is
    /// exact.
    #[tool(annotations(read_only_hint = true))]
    async fn workspace_file_read(
        &self,
        Parameters(args): Parameters<ReadArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_file_read", async {
                let request = args.request()?;
                let client = self.client().await?;
                let result = client
                    .read_workspace_file(&args.workspace_id, &request)
                    .await?;
                Ok::<Value, ToolError>(add_missing(to_value(&result)?, [execution_mode()]))
            })
            .await,
        )
    }

    /// Write a text file in a started workspace, creating it and its parents if missing.
    /// Returns {path, bytes_written, size_bytes}.
    #[tool]
    async fn workspace_file_write(
        &self,
        Parameters(args): Parameters<WriteArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_file_write", async {
                check_id("workspace_id", &args.workspace_id)?;
                check_text("text", &args.text)?;
                let client = self.client().await?;
                let request = WriteRequest {
                    path: args.path.clone(),
                    text: args.text.clone(),
                };
                let result = client
                    .write_workspace_file(&args.workspace_id, &request)
                    .await?;
                let size = Value::from(result.bytes_written);
                Ok::<Value, ToolError>(add_missing(to_value(&result)?, [("size_bytes", size)]))
            })
            .await,
        )
    }

    /// Apply a unified diff to a started workspace, all of it or nothing. Returns {changed,
    /// summary{total, added, modified, deleted}, entries:[{path, status}]}.
    #[tool]
    async fn workspace_patch_apply(
        &self,
        Parameters(args): Parameters<PatchArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        respond(
            cancellable(&context, "workspace_patch_apply", async {
                check_id("workspace_id", &args.workspace_id)?;
                check_text("patch", &args.patch)?;
                let client = self.client().await?;
                let request = PatchRequest {
                    patch: args.patch.clone(),
                };
                Ok(client
                    .apply_workspace_patch(&args.workspace_id, &request)
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
    fn list_and_read_defaults_follow_the_reference() {
        let list: ListArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w"})).unwrap();
        let request = list.request().unwrap();
        assert_eq!(request.path.as_deref(), Some("/workspace"));
        assert!(!request.recursive);
        let read: ReadArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "path": "a.txt"}))
                .unwrap();
        assert_eq!(read.request().unwrap().max_bytes, 65536);
        let big: ReadArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "path": "a", "max_bytes": 0}),
        )
        .unwrap();
        assert!(big
            .request()
            .unwrap_err()
            .0
            .message
            .starts_with("max_bytes"));
        let sync: SyncPushArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "source_path": "x"}))
                .unwrap();
        assert_eq!(sync.dest, "/workspace");
    }

    #[test]
    fn host_paths_are_confined() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("changes")).unwrap();
        let roots = AllowedRoots::new(&[], dir.path()).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();

        let sync: SyncPushArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "source_path": "changes", "dest": "src"}),
        )
        .unwrap();
        let request = sync.request(&roots).unwrap();
        assert_eq!(request.source_path, base.join("changes").to_str().unwrap());
        assert_eq!(request.dest.as_deref(), Some("src"));
        let sync: SyncPushArgs =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "source_path": "/usr"}))
                .unwrap();
        assert!(sync.request(&roots).is_err());

        let export: ExportArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "path": "note.txt", "output_path": "out/note.txt"}),
        )
        .unwrap();
        assert_eq!(
            export.request(&roots).unwrap().output_path,
            base.join("out/note.txt").to_str().unwrap()
        );
        let export: ExportArgs = serde_json::from_value(
            serde_json::json!({"workspace_id": "w", "path": "n", "output_path": "../n"}),
        )
        .unwrap();
        assert!(export.request(&roots).is_err());
    }

    #[test]
    fn reference_shapes_are_added() {
        let result = serde_json::json!({
            "workspace_id": "w", "mode": "directory", "source_path": "/x", "destination": "/workspace",
            "entry_count": 2, "bytes_written": 10, "execution_mode": "guest_vsock"
        });
        let shaped = sync_shape(result);
        assert_eq!(shaped["workspace_sync"]["destination"], "/workspace");
        assert_eq!(shaped["workspace_sync"]["entry_count"], 2);
        assert!(shaped["workspace_sync"].get("workspace_id").is_none());
        assert_eq!(shaped["mode"], "directory");
        assert!(check_text("text", &"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
    }
}

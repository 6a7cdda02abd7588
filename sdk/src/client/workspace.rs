//! Workspace calls: one [`Client`] method per endpoint of
//! [`crate::api::workspace`], plus collecting variants of the two streaming
//! ones ([`Client::create_workspace_collect`], [`Client::exec_workspace_collect`]).
//!
//! Host paths in requests (`seed_path`, `secrets[].file_path`,
//! `source_path`, `output_path`) are read and written by the supervisor,
//! whose working directory is not the caller's (it refuses relative ones),
//! so relative ones are made absolute against this process's working
//! directory before they are sent, as the CLI does.
//!
//! Requests with a `validate` (create, update, exec) are checked before
//! anything is sent and refused with [`SdkError::InvalidRequest`]
//! (`invalid_argument`, the code the supervisor would answer with).

use std::path::Path;

use hyper::Method;

use super::transport::{self, EventStream};
use super::Client;
use crate::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, DeleteResult, DiffRequest, DiffResult, DiskExportRequest,
    DiskExportResult, ExecEvent, ExecRequest, ExecSummary, ExportRequest, ExportResult,
    ListRequest, ListResult, LogList, PatchRequest, PatchResult, ReadRequest, ReadResult,
    ResetRequest, ResetResult, SnapshotDeleted, SnapshotInfo, SnapshotList, SnapshotRequest,
    SyncPushRequest, SyncPushResult, UpdateWorkspaceRequest, WorkspaceInfo, WorkspaceList,
    WriteRequest, WriteResult,
};
use crate::api::StreamName;
use crate::error::SdkError;

/// The collection path.
const WORKSPACES: &str = "/v1/workspaces";

/// A finished workspace command with its whole output.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Sequence number, exit code, timing.
    pub summary: ExecSummary,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Client {
    /// Creates a workspace, streaming its phases (and the environment
    /// install, on first use of an environment); the last event is the
    /// started workspace or the error.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::{CreateEvent, CreateWorkspaceRequest};
    /// let mut request = CreateWorkspaceRequest::new("debian:12");
    /// request.seed_path = Some("./repo".into());
    /// let mut events = client.create_workspace(&request).await?;
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         CreateEvent::Phase { phase, .. } => println!("phase {phase}"),
    ///         CreateEvent::Pull(progress) => println!("pull {}", progress.phase),
    ///         CreateEvent::Result(info) => println!("created {}", info.workspace_id),
    ///         CreateEvent::Error(body) => println!("failed: {}", body.message),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn create_workspace(
        &self,
        request: &CreateWorkspaceRequest,
    ) -> Result<EventStream<CreateEvent>, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        transport::stream(&self.socket, WORKSPACES, &absolute_create(request)).await
    }

    /// Creates a workspace and waits until it is started (or failed),
    /// ignoring progress.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::CreateWorkspaceRequest;
    /// let info = client
    ///     .create_workspace_collect(&CreateWorkspaceRequest::new("debian:12"))
    ///     .await?;
    /// println!("{} is {}", info.workspace_id, info.state.as_str());
    /// # Ok(()) }
    /// ```
    pub async fn create_workspace_collect(
        &self,
        request: &CreateWorkspaceRequest,
    ) -> Result<WorkspaceInfo, SdkError> {
        let mut events = self.create_workspace(request).await?;
        while let Some(event) = events.next().await {
            match event? {
                CreateEvent::Result(info) => return Ok(*info),
                CreateEvent::Error(body) => return Err(SdkError::Api(body)),
                CreateEvent::Phase { .. } | CreateEvent::Pull(_) => {}
            }
        }
        Err(SdkError::StreamEnded {
            path: events.path().to_owned(),
        })
    }

    /// Every workspace, most recently active first.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// for ws in client.list_workspaces().await?.workspaces {
    ///     println!("{} {} {}", ws.workspace_id, ws.state.as_str(), ws.environment);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_workspaces(&self) -> Result<WorkspaceList, SdkError> {
        self.get(WORKSPACES).await
    }

    /// One workspace.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let info = client.workspace_status("0123456789ab").await?;
    /// println!("{} commands, {} resets", info.command_count, info.reset_count);
    /// # Ok(()) }
    /// ```
    pub async fn workspace_status(&self, workspace_id: &str) -> Result<WorkspaceInfo, SdkError> {
        self.get(&workspace_path(workspace_id, "")).await
    }

    /// Renames, relabels or extends a workspace.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::UpdateWorkspaceRequest;
    /// let mut request = UpdateWorkspaceRequest::default();
    /// request.labels.insert("team".into(), "infra".into());
    /// request.ttl_seconds = Some(3600);
    /// let info = client.update_workspace("0123456789ab", &request).await?;
    /// println!("expires at {}", info.expires_at);
    /// # Ok(()) }
    /// ```
    pub async fn update_workspace(
        &self,
        workspace_id: &str,
        request: &UpdateWorkspaceRequest,
    ) -> Result<WorkspaceInfo, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        self.post(&workspace_path(workspace_id, "/update"), request)
            .await
    }

    /// Deletes a workspace: its VM, disk, snapshots and records.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let result = client.delete_workspace("0123456789ab").await?;
    /// assert!(result.deleted);
    /// # Ok(()) }
    /// ```
    pub async fn delete_workspace(&self, workspace_id: &str) -> Result<DeleteResult, SdkError> {
        self.delete(&workspace_path(workspace_id, "")).await
    }

    /// The commands run in a workspace (since create or the last reset),
    /// oldest first, with their output.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// for entry in client.workspace_logs("0123456789ab").await?.entries {
    ///     println!("#{} {} -> {}", entry.sequence, entry.command, entry.exit_code);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workspace_logs(&self, workspace_id: &str) -> Result<LogList, SdkError> {
        self.get(&workspace_path(workspace_id, "/logs")).await
    }

    /// Runs a command in a started workspace, streaming its output; the last
    /// event is its summary or the error.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::{ExecEvent, ExecRequest};
    /// use pyro_sdk::api::CommandSpec;
    /// let request = ExecRequest::new(CommandSpec::Shell("make test".into()));
    /// let mut events = client.exec_workspace("0123456789ab", &request).await?;
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         ExecEvent::Output(chunk) => print!("{}", String::from_utf8_lossy(&chunk.bytes().unwrap_or_default())),
    ///         ExecEvent::Result(summary) => println!("exit code {}", summary.exit_code),
    ///         ExecEvent::Error(body) => println!("failed: {}", body.message),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn exec_workspace(
        &self,
        workspace_id: &str,
        request: &ExecRequest,
    ) -> Result<EventStream<ExecEvent>, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        transport::stream(
            &self.socket,
            &workspace_path(workspace_id, "/exec"),
            request,
        )
        .await
    }

    /// Runs a command in a started workspace and collects its output.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::ExecRequest;
    /// use pyro_sdk::api::CommandSpec;
    /// let output = client
    ///     .exec_workspace_collect("0123456789ab", &ExecRequest::new(CommandSpec::Shell("cat src/note.txt".into())))
    ///     .await?;
    /// println!("#{}: {}", output.summary.sequence, String::from_utf8_lossy(&output.stdout));
    /// # Ok(()) }
    /// ```
    pub async fn exec_workspace_collect(
        &self,
        workspace_id: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, SdkError> {
        let mut events = self.exec_workspace(workspace_id, request).await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(event) = events.next().await {
            match event? {
                ExecEvent::Output(chunk) => {
                    let bytes = chunk.bytes().unwrap_or_default();
                    match chunk.stream {
                        StreamName::Stdout => stdout.extend_from_slice(&bytes),
                        StreamName::Stderr => stderr.extend_from_slice(&bytes),
                    }
                }
                ExecEvent::Result(summary) => {
                    return Ok(ExecOutput {
                        summary,
                        stdout,
                        stderr,
                    })
                }
                ExecEvent::Error(body) => return Err(SdkError::Api(body)),
            }
        }
        Err(SdkError::StreamEnded {
            path: events.path().to_owned(),
        })
    }

    /// Copies a host directory or `.tar`/`.tar.gz`/`.tgz` into a started
    /// workspace (non-atomic: on failure, reset to recover).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::SyncPushRequest;
    /// let request = SyncPushRequest { source_path: "./changes".into(), dest: Some("src".into()) };
    /// let result = client.sync_push("0123456789ab", &request).await?;
    /// println!("{} entries to {}", result.entry_count, result.destination);
    /// # Ok(()) }
    /// ```
    pub async fn sync_push(
        &self,
        workspace_id: &str,
        request: &SyncPushRequest,
    ) -> Result<SyncPushResult, SdkError> {
        let mut request = request.clone();
        request.source_path = absolute_host_path(&request.source_path);
        self.post(&workspace_path(workspace_id, "/sync"), &request)
            .await
    }

    /// Copies a file, directory or symlink out of a workspace to a new host
    /// path.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::ExportRequest;
    /// let request = ExportRequest { path: "src/note.txt".into(), output_path: "./note.txt".into() };
    /// let result = client.export_workspace("0123456789ab", &request).await?;
    /// println!("{} bytes written to {}", result.bytes_written, result.output_path);
    /// # Ok(()) }
    /// ```
    pub async fn export_workspace(
        &self,
        workspace_id: &str,
        request: &ExportRequest,
    ) -> Result<ExportResult, SdkError> {
        let mut request = request.clone();
        request.output_path = absolute_host_path(&request.output_path);
        self.post(&workspace_path(workspace_id, "/export"), &request)
            .await
    }

    /// What changed in `/workspace` since the baseline (or a named snapshot).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::DiffRequest;
    /// let diff = client.diff_workspace("0123456789ab", &DiffRequest::default()).await?;
    /// println!("{} changed paths\n{}", diff.summary.total, diff.patch);
    /// # Ok(()) }
    /// ```
    pub async fn diff_workspace(
        &self,
        workspace_id: &str,
        request: &DiffRequest,
    ) -> Result<DiffResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/diff"), request)
            .await
    }

    /// Lists a directory of a started workspace.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::ListRequest;
    /// let request = ListRequest { path: Some("src".into()), recursive: true };
    /// for entry in client.list_workspace_files("0123456789ab", &request).await?.entries {
    ///     println!("{} {} {}", entry.path, entry.artifact_type, entry.size_bytes);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_workspace_files(
        &self,
        workspace_id: &str,
        request: &ListRequest,
    ) -> Result<ListResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/files/list"), request)
            .await
    }

    /// Reads (the start of) a file of a started workspace.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::{ReadRequest, DEFAULT_READ_BYTES};
    /// let request = ReadRequest { path: "src/note.txt".into(), max_bytes: DEFAULT_READ_BYTES };
    /// let file = client.read_workspace_file("0123456789ab", &request).await?;
    /// print!("{}", file.content);
    /// # Ok(()) }
    /// ```
    pub async fn read_workspace_file(
        &self,
        workspace_id: &str,
        request: &ReadRequest,
    ) -> Result<ReadResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/files/read"), request)
            .await
    }

    /// Writes a text file in a started workspace (creating its parents).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::WriteRequest;
    /// let request = WriteRequest { path: "src/note.txt".into(), text: "hello\n".into() };
    /// let result = client.write_workspace_file("0123456789ab", &request).await?;
    /// println!("{} bytes", result.bytes_written);
    /// # Ok(()) }
    /// ```
    pub async fn write_workspace_file(
        &self,
        workspace_id: &str,
        request: &WriteRequest,
    ) -> Result<WriteResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/files/write"), request)
            .await
    }

    /// Applies a unified diff to a started workspace, all of it or nothing.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::PatchRequest;
    /// let patch = "--- a/note.txt\n+++ b/note.txt\n@@ -1 +1 @@\n-old\n+new\n";
    /// let result = client
    ///     .apply_workspace_patch("0123456789ab", &PatchRequest { patch: patch.into() })
    ///     .await?;
    /// println!("{} files changed", result.summary.total);
    /// # Ok(()) }
    /// ```
    pub async fn apply_workspace_patch(
        &self,
        workspace_id: &str,
        request: &PatchRequest,
    ) -> Result<PatchResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/patch"), request)
            .await
    }

    /// Takes a named snapshot of `/workspace`.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::SnapshotRequest;
    /// let snapshot = client
    ///     .create_snapshot("0123456789ab", &SnapshotRequest { name: "checkpoint".into() })
    ///     .await?;
    /// println!("{} entries", snapshot.entry_count);
    /// # Ok(()) }
    /// ```
    pub async fn create_snapshot(
        &self,
        workspace_id: &str,
        request: &SnapshotRequest,
    ) -> Result<SnapshotInfo, SdkError> {
        self.post(&workspace_path(workspace_id, "/snapshots"), request)
            .await
    }

    /// The snapshots of a workspace: the baseline, then named ones newest
    /// first.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// for snapshot in client.list_snapshots("0123456789ab").await?.snapshots {
    ///     println!("{} [{}]", snapshot.snapshot_name, snapshot.kind);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_snapshots(&self, workspace_id: &str) -> Result<SnapshotList, SdkError> {
        self.get(&workspace_path(workspace_id, "/snapshots")).await
    }

    /// Deletes a named snapshot (the baseline cannot be deleted).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// client.delete_snapshot("0123456789ab", "checkpoint").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_snapshot(
        &self,
        workspace_id: &str,
        snapshot_name: &str,
    ) -> Result<SnapshotDeleted, SdkError> {
        let path = workspace_path(
            workspace_id,
            &format!("/snapshots/{}", transport::segment(snapshot_name)),
        );
        self.delete(&path).await
    }

    /// Recreates a workspace's disk and restores the baseline (or a named
    /// snapshot); command history starts over.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::ResetRequest;
    /// let request = ResetRequest { snapshot: Some("checkpoint".into()) };
    /// let result = client.reset_workspace("0123456789ab", &request).await?;
    /// println!("reset {} times", result.workspace.reset_count);
    /// # Ok(()) }
    /// ```
    pub async fn reset_workspace(
        &self,
        workspace_id: &str,
        request: &ResetRequest,
    ) -> Result<ResetResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/reset"), request)
            .await
    }

    /// Powers a workspace off, keeping its disk.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let info = client.stop_workspace("0123456789ab").await?;
    /// println!("{}", info.state.as_str());
    /// # Ok(()) }
    /// ```
    pub async fn stop_workspace(&self, workspace_id: &str) -> Result<WorkspaceInfo, SdkError> {
        self.post(
            &workspace_path(workspace_id, "/stop"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Boots a stopped workspace on its disk.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let info = client.start_workspace("0123456789ab").await?;
    /// println!("{}", info.state.as_str());
    /// # Ok(()) }
    /// ```
    pub async fn start_workspace(&self, workspace_id: &str) -> Result<WorkspaceInfo, SdkError> {
        self.post(
            &workspace_path(workspace_id, "/start"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Copies a stopped workspace's disk to a new host file (ext4 image).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::DiskExportRequest;
    /// let request = DiskExportRequest { output_path: "./workspace.ext4".into() };
    /// let result = client.export_workspace_disk("0123456789ab", &request).await?;
    /// println!("{} bytes of {}", result.bytes_written, result.disk_format);
    /// # Ok(()) }
    /// ```
    pub async fn export_workspace_disk(
        &self,
        workspace_id: &str,
        request: &DiskExportRequest,
    ) -> Result<DiskExportResult, SdkError> {
        let mut request = request.clone();
        request.output_path = absolute_host_path(&request.output_path);
        self.post(&workspace_path(workspace_id, "/disk/export"), &request)
            .await
    }

    /// Lists a directory on a stopped workspace's disk, without booting it.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::ListRequest;
    /// let request = ListRequest { path: None, recursive: false };
    /// for entry in client.list_workspace_disk("0123456789ab", &request).await?.entries {
    ///     println!("{}", entry.path);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_workspace_disk(
        &self,
        workspace_id: &str,
        request: &ListRequest,
    ) -> Result<ListResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/disk/list"), request)
            .await
    }

    /// Reads (the start of) a file on a stopped workspace's disk, without
    /// booting it.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::{ReadRequest, DEFAULT_READ_BYTES};
    /// let request = ReadRequest { path: "src/note.txt".into(), max_bytes: DEFAULT_READ_BYTES };
    /// let file = client.read_workspace_disk("0123456789ab", &request).await?;
    /// println!("{} of {} bytes", file.content.len(), file.size_bytes);
    /// # Ok(()) }
    /// ```
    pub async fn read_workspace_disk(
        &self,
        workspace_id: &str,
        request: &ReadRequest,
    ) -> Result<ReadResult, SdkError> {
        self.post(&workspace_path(workspace_id, "/disk/read"), request)
            .await
    }

    async fn delete<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SdkError> {
        transport::call::<(), T>(&self.socket, Method::DELETE, path, None).await
    }
}

/// `/v1/workspaces/{id}{suffix}`, with the id percent-encoded.
fn workspace_path(workspace_id: &str, suffix: &str) -> String {
    format!("{WORKSPACES}/{}{suffix}", transport::segment(workspace_id))
}

/// `request` with its host paths (seed, secret files) made absolute.
fn absolute_create(request: &CreateWorkspaceRequest) -> CreateWorkspaceRequest {
    let mut request = request.clone();
    request.seed_path = request.seed_path.as_deref().map(absolute_host_path);
    for secret in &mut request.secrets {
        secret.file_path = secret.file_path.as_deref().map(absolute_host_path);
    }
    request
}

/// `path` made absolute against this process's working directory (kept as
/// given when that is impossible, so the supervisor reports the problem).
/// Lexical only (`..` is kept, symlinks are not resolved), like
/// [`std::path::absolute`].
fn absolute_host_path(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    match std::path::absolute(Path::new(path)) {
        Ok(absolute) => absolute
            .to_str()
            .map_or_else(|| path.to_owned(), str::to_owned),
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_the_id() {
        assert_eq!(
            workspace_path("0123456789ab", ""),
            "/v1/workspaces/0123456789ab"
        );
        assert_eq!(
            workspace_path("0123456789ab", "/files/read"),
            "/v1/workspaces/0123456789ab/files/read"
        );
        assert_eq!(workspace_path("a/b", "/logs"), "/v1/workspaces/a%2Fb/logs");
    }

    #[test]
    fn host_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_host_path("./repo"),
            cwd.join("repo").to_str().unwrap()
        );
        assert_eq!(absolute_host_path("/tmp/x.tar"), "/tmp/x.tar");
        assert_eq!(absolute_host_path(""), "");
    }

    #[test]
    fn create_makes_seed_and_secret_files_absolute() {
        use crate::api::session::SecretSpec;
        let cwd = std::env::current_dir().unwrap();
        let mut request = CreateWorkspaceRequest::new("debian:12");
        request.seed_path = Some("repo.tar.gz".into());
        request.secrets = vec![
            SecretSpec {
                name: "PIP_TOKEN".into(),
                value: None,
                file_path: Some("secrets/pip-token".into()),
            },
            SecretSpec {
                name: "SSH_KEY".into(),
                value: None,
                file_path: Some("/home/u/.ssh/id_ed25519".into()),
            },
            SecretSpec {
                name: "API_TOKEN".into(),
                value: Some("relative/looking value".into()),
                file_path: None,
            },
        ];
        let sent = absolute_create(&request);
        assert_eq!(sent.seed_path.as_deref(), cwd.join("repo.tar.gz").to_str());
        assert_eq!(
            sent.secrets[0].file_path.as_deref(),
            cwd.join("secrets/pip-token").to_str()
        );
        assert_eq!(
            sent.secrets[1].file_path.as_deref(),
            Some("/home/u/.ssh/id_ed25519")
        );
        // A literal value is a value, never a path.
        assert_eq!(
            sent.secrets[2].value.as_deref(),
            Some("relative/looking value")
        );
        assert_eq!(sent.secrets[2].file_path, None);
        // Nothing else changes.
        assert_eq!(
            CreateWorkspaceRequest {
                seed_path: request.seed_path.clone(),
                secrets: request.secrets.clone(),
                ..sent
            },
            request
        );
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_sending() {
        use crate::api::session::SecretSpec;
        use crate::api::{CommandSpec, ErrorCode};

        let dir = tempfile::tempdir().unwrap();
        // Nothing listens: a request that were sent would fail to connect.
        let client = Client {
            socket: dir.path().join("api.sock"),
            paths: crate::PyroPaths::new(dir.path(), dir.path(), dir.path()),
        };
        let mut create = CreateWorkspaceRequest::new("debian:12");
        create.secrets = vec![SecretSpec {
            name: "PIP_TOKEN".into(),
            value: Some("x".into()),
            file_path: Some("./token".into()),
        }];
        let mut exec = ExecRequest::new(CommandSpec::Shell("true".into()));
        exec.timeout_seconds = 0;
        let results = [
            client.create_workspace(&create).await.map(|_| ()),
            client.create_workspace_collect(&create).await.map(|_| ()),
            client
                .update_workspace("ws1", &UpdateWorkspaceRequest::default())
                .await
                .map(|_| ()),
            client.exec_workspace("ws1", &exec).await.map(|_| ()),
            client
                .exec_workspace_collect("ws1", &exec)
                .await
                .map(|_| ()),
        ];
        let messages: Vec<String> = results
            .into_iter()
            .map(|result| match result {
                Err(err @ SdkError::InvalidRequest { .. }) => {
                    assert_eq!(err.code(), ErrorCode::InvalidArgument);
                    let body = err.to_body();
                    assert_eq!(body.code, ErrorCode::InvalidArgument);
                    assert!(body.hint.is_some());
                    body.message
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            messages[0],
            "secret PIP_TOKEN needs exactly one of a value or a file path"
        );
        assert_eq!(messages[1], messages[0]);
        assert!(messages[2].starts_with("nothing to update"));
        assert_eq!(
            messages[3],
            "timeout_seconds must be between 1 and 86400 (got 0)"
        );
        assert_eq!(messages[4], messages[3]);
    }

    /// One request as the fake supervisor saw it.
    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        body: serde_json::Value,
    }

    /// A fake supervisor on `socket` that answers each connection in turn
    /// with the next `(status, body)` and records what it was asked.
    fn fake_supervisor(
        socket: &Path,
        answers: Vec<(u16, String)>,
    ) -> tokio::task::JoinHandle<Vec<Seen>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let header_end = loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "client closed early");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break pos + 4;
                    }
                };
                let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < header_end + length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut words = head.split_whitespace();
                let (method, path) = (words.next().unwrap(), words.next().unwrap());
                let request_body = &buf[header_end..header_end + length];
                seen.push(Seen {
                    method: method.to_owned(),
                    path: path.trim_start_matches("http://pyro").to_owned(),
                    body: if request_body.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::from_slice(request_body).unwrap()
                    },
                });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
            seen
        })
    }

    #[tokio::test]
    async fn methods_reach_their_endpoints() {
        use crate::api::workspace::*;
        use crate::api::{CommandSpec, ErrorBody, ErrorCode, OutputChunk};

        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let client = Client {
            socket: socket.clone(),
            paths: crate::PyroPaths::new(dir.path(), dir.path(), dir.path()),
        };
        let sync = SyncPushResult {
            workspace_id: "ws1".into(),
            mode: "directory".into(),
            source_path: "/x/changes".into(),
            destination: "/workspace/src".into(),
            entry_count: 1,
            bytes_written: 5,
            execution_mode: "guest_vsock".into(),
        };
        let exec_events = [
            ExecEvent::Output(OutputChunk::new(StreamName::Stdout, b"hel")),
            ExecEvent::Output(OutputChunk::new(StreamName::Stderr, b"warn\n")),
            ExecEvent::Output(OutputChunk::new(StreamName::Stdout, b"lo\n")),
            ExecEvent::Result(ExecSummary {
                workspace_id: "ws1".into(),
                environment: "debian:12".into(),
                environment_version: "0.1.0".into(),
                sequence: 3,
                command: "echo hello".into(),
                cwd: "/workspace".into(),
                exit_code: 0,
                duration_ms: 5,
                timed_out: false,
                execution_mode: "guest_vsock".into(),
            }),
        ];
        let ndjson = |events: &[serde_json::Value]| {
            events.iter().map(|e| format!("{e}\n")).collect::<String>()
        };
        let exec_body = ndjson(
            &exec_events
                .iter()
                .map(|e| serde_json::to_value(e).unwrap())
                .collect::<Vec<_>>(),
        );
        let create_body = ndjson(&[
            serde_json::to_value(CreateEvent::Phase {
                phase: "boot".into(),
                workspace_id: "ws2".into(),
            })
            .unwrap(),
            serde_json::to_value(CreateEvent::Error(ErrorBody::new(
                ErrorCode::VmBootFailed,
                "the guest did not boot",
            )))
            .unwrap(),
        ]);
        let conflict = ErrorBody::new(ErrorCode::Conflict, "workspace ws1 is started");
        let answers = vec![
            (200, serde_json::to_string(&sync).unwrap()),
            (
                200,
                r#"{"workspace_id":"ws1","snapshot_name":"check point","deleted":true}"#.into(),
            ),
            (
                200,
                r#"{"workspace_id":"ws1","deleted":true,"reason":"explicit_delete"}"#.into(),
            ),
            (200, exec_body),
            (200, create_body),
            (409, serde_json::to_string(&conflict).unwrap()),
        ];
        let server = fake_supervisor(&socket, answers);

        let request = SyncPushRequest {
            source_path: "changes".into(),
            dest: Some("src".into()),
        };
        assert_eq!(client.sync_push("ws1", &request).await.unwrap(), sync);
        let deleted = client.delete_snapshot("ws1", "check point").await.unwrap();
        assert!(deleted.deleted);
        let gone = client.delete_workspace("ws1").await.unwrap();
        assert_eq!(gone.reason, "explicit_delete");
        let exec = ExecRequest::new(CommandSpec::Shell("echo hello".into()));
        let output = client.exec_workspace_collect("ws1", &exec).await.unwrap();
        assert_eq!(output.stdout, b"hello\n");
        assert_eq!(output.stderr, b"warn\n");
        assert_eq!(output.summary.sequence, 3);
        let mut create = CreateWorkspaceRequest::new("debian:12");
        create.seed_path = Some("./repo".into());
        create.secrets = vec![crate::api::session::SecretSpec {
            name: "PIP_TOKEN".into(),
            value: None,
            file_path: Some("token.txt".into()),
        }];
        match client.create_workspace_collect(&create).await {
            Err(SdkError::Api(body)) => assert_eq!(body.code, ErrorCode::VmBootFailed),
            other => panic!("{other:?}"),
        }
        let read = ReadRequest {
            path: "note.txt".into(),
            max_bytes: DEFAULT_READ_BYTES,
        };
        match client.read_workspace_disk("ws1", &read).await {
            Err(SdkError::Api(body)) => assert_eq!(body, conflict),
            other => panic!("{other:?}"),
        }

        let seen = server.await.unwrap();
        let cwd = std::env::current_dir().unwrap();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("POST", "/v1/workspaces/ws1/sync"),
                ("DELETE", "/v1/workspaces/ws1/snapshots/check%20point"),
                ("DELETE", "/v1/workspaces/ws1"),
                ("POST", "/v1/workspaces/ws1/exec"),
                ("POST", "/v1/workspaces"),
                ("POST", "/v1/workspaces/ws1/disk/read"),
            ]
        );
        assert_eq!(
            seen[0].body["source_path"],
            cwd.join("changes").to_str().unwrap()
        );
        assert_eq!(seen[0].body["dest"], "src");
        assert_eq!(seen[2].body, serde_json::Value::Null);
        assert_eq!(seen[3].body["command"]["shell"], "echo hello");
        assert_eq!(
            seen[4].body["seed_path"],
            cwd.join("repo").to_str().unwrap()
        );
        assert_eq!(
            seen[4].body["secrets"][0]["file_path"],
            cwd.join("token.txt").to_str().unwrap()
        );
        assert_eq!(seen[5].body["max_bytes"], DEFAULT_READ_BYTES);
    }
}

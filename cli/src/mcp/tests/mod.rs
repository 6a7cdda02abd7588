//! Tool tests the way an MCP client sees the server: an rmcp client talks to
//! [`PyroMcp`] over an in-process duplex pipe (initialize, `tools/list`,
//! `tools/call`, progress notifications, `notifications/cancelled`), and the
//! server's supervisor client talks to a scripted [`fake::Fake`] over a
//! real Unix socket with the real SDK transport.
//!
//! Each test checks both ends: what the tool sent to the supervisor (the
//! fake's request log) and what the MCP client got back (structured
//! content, text, `isError`, notifications). Nothing sleeps: tests wait on
//! the fake's request log and on channels; [`within`] only bounds a wait so
//! that a bug fails the test instead of hanging it.
//!
//! - `lifecycle`: workspace_create (seed path confinement, secrets in
//!   errors), workspace_list, argument errors, profiles.
//! - `exec`: workspace_exec output assembly, the output cap, errors,
//!   progress, cancellation, concurrency with shell_read.
//! - `vm`: the `vm_*` mapping onto labelled workspaces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod exec;
mod fake;
mod lifecycle;
mod vm;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use pyro_sdk::api::workspace::{
    ExecSummary, FailurePolicy, SeedInfo, WorkspaceInfo, WorkspaceState,
};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest,
    ProgressNotificationParam, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::mpsc;

use super::paths::AllowedRoots;
use super::profiles::Profile;
use super::server::PyroMcp;
use fake::Fake;

/// The longest any single wait may take before the test fails. Passing
/// tests never wait for it (the whole suite takes about a second); it only
/// turns a hang into a failure, so it is generous enough for a debug build
/// on a heavily loaded machine (the 1 MiB output test needs ~0.5 s alone).
const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The MCP client: forwards progress notifications to the test.
#[derive(Debug, Clone)]
struct TestClient {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for TestClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

/// A server with a fake supervisor and a connected MCP client.
struct Harness {
    fake: Fake,
    client: RunningService<RoleClient, TestClient>,
    progress: mpsc::UnboundedReceiver<ProgressNotificationParam>,
    /// The one allowed root; holds `repo/`.
    root: tempfile::TempDir,
}

impl Harness {
    /// Serves `profile` with the allowed root a new temporary directory.
    async fn start(profile: Profile) -> Self {
        let fake = Fake::start();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("repo")).unwrap();
        let roots = AllowedRoots::new(&[], root.path()).unwrap();
        let server = PyroMcp::with_connect(profile, roots, Some(fake.connect_options()));
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let client = within(
            "the MCP handshake",
            TestClient {
                progress: progress_tx,
            }
            .serve(client_io),
        )
        .await
        .unwrap();
        Self {
            fake,
            client,
            progress,
            root,
        }
    }

    /// The resolved allowed root.
    fn root(&self) -> std::path::PathBuf {
        std::fs::canonicalize(self.root.path()).unwrap()
    }

    /// Sends `tools/call` and returns the request's handle (for its
    /// progress token, or to cancel it).
    async fn send(&self, tool: &'static str, arguments: Value) -> RequestHandle<RoleClient> {
        let Value::Object(arguments) = arguments else {
            panic!("tool arguments must be an object");
        };
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(
            CallToolRequestParams::new(tool).with_arguments(arguments),
        ));
        self.client
            .peer()
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .unwrap()
    }

    /// Calls `tool` and returns its result.
    async fn call(&self, tool: &'static str, arguments: Value) -> CallToolResult {
        let handle = self.send(tool, arguments).await;
        result(within(tool, handle.await_response()).await.unwrap())
    }

    /// The next progress notification.
    async fn next_progress(&mut self) -> ProgressNotificationParam {
        within("a progress notification", self.progress.recv())
            .await
            .unwrap()
    }
}

/// The tool result in a `tools/call` answer.
fn result(answer: ServerResult) -> CallToolResult {
    match answer {
        ServerResult::CallToolResult(result) => result,
        other => panic!("not a tool result: {other:?}"),
    }
}

/// The structured content of a successful result.
fn ok(result: &CallToolResult) -> &Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    result.structured_content.as_ref().unwrap()
}

/// The `error` object of a tool error, after checking that the text and
/// the structured content agree.
fn tool_error(result: &CallToolResult) -> &Value {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let structured = result.structured_content.as_ref().unwrap();
    assert_eq!(structured["ok"], false);
    let error = &structured["error"];
    let text = text(result);
    let chain = error["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        text.starts_with(&format!(
            "error [{}]: {chain}",
            error["code"].as_str().unwrap()
        )),
        "{text}"
    );
    error
}

/// The first text content.
fn text(result: &CallToolResult) -> String {
    result.content[0].as_text().unwrap().text.clone()
}

/// A started workspace as the supervisor reports it.
fn workspace(id: &str, labels: &[(&str, &str)]) -> WorkspaceInfo {
    WorkspaceInfo {
        workspace_id: id.to_owned(),
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
        expires_at: "2026-11-28T19:40:00Z".into(),
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

/// The end of a command, as the supervisor reports it.
fn summary(workspace_id: &str, command: &str, exit_code: i32) -> ExecSummary {
    ExecSummary {
        workspace_id: workspace_id.to_owned(),
        environment: "debian:12".into(),
        environment_version: "1.0.0".into(),
        sequence: 3,
        command: command.to_owned(),
        cwd: "/workspace".into(),
        exit_code,
        duration_ms: 12,
        timed_out: false,
        execution_mode: "guest_vsock".into(),
    }
}

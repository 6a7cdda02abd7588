//! `workspace_create`, `workspace_list`, argument errors and profiles,
//! through an MCP client against the fake supervisor.

use hyper::{Method, StatusCode};
use pyro_sdk::api::workspace::{CreateEvent, WorkspaceList};
use pyro_sdk::api::{ErrorBody, ErrorCode};
use rmcp::ServiceError;
use serde_json::json;

use super::fake::Reply;
use super::{ok, text, tool_error, workspace, Harness};
use crate::mcp::profiles::Profile;
use crate::mcp::tools::{KIND_LABEL, KIND_VM};

#[tokio::test]
async fn create_sends_the_resolved_seed_path_and_reports_phases() {
    let mut h = Harness::start(Profile::WorkspaceCore).await;
    let mut seeded = workspace("0123456789ab", &[]);
    seeded.workspace_seed.mode = "directory".into();
    h.fake.reply(
        Method::POST,
        "/v1/workspaces",
        Reply::events(&[
            CreateEvent::Phase {
                phase: "boot".into(),
                workspace_id: "0123456789ab".into(),
            },
            CreateEvent::Result(Box::new(seeded)),
        ]),
    );

    let result = h
        .call(
            "workspace_create",
            json!({"environment": "debian:12", "seed_path": "repo", "labels": {"team": "a"}}),
        )
        .await;

    let value = ok(&result);
    assert_eq!(value["workspace_id"], "0123456789ab");
    assert_eq!(value["workspace_seed"]["mode"], "directory");
    let log = h.fake.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (&log[0].method, log[0].path.as_str()),
        (&Method::POST, "/v1/workspaces")
    );
    let expected_seed = h.root().join("repo");
    assert_eq!(log[0].body["seed_path"], expected_seed.to_str().unwrap());
    assert_eq!(log[0].body["environment"], "debian:12");
    assert_eq!(log[0].body["labels"], json!({"team": "a"}));
    assert_eq!(h.fake.health_checks(), 1);
    assert_eq!(
        h.next_progress().await.message.as_deref(),
        Some("boot (workspace 0123456789ab)")
    );
    assert_eq!(h.next_progress().await.message.as_deref(), Some("started"));
}

#[tokio::test]
async fn a_seed_path_outside_the_roots_never_reaches_the_supervisor() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    std::os::unix::fs::symlink("/etc", h.root.path().join("repo/etc")).unwrap();
    for seed in ["/etc", "../", "repo/etc"] {
        let result = h
            .call(
                "workspace_create",
                json!({"environment": "debian:12", "seed_path": seed}),
            )
            .await;
        let error = tool_error(&result);
        assert_eq!(error["code"], "invalid_argument", "{seed}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("is outside the allowed roots"),
            "{seed}: {error}"
        );
    }
    assert_eq!(h.fake.log(), []);
    assert_eq!(h.fake.health_checks(), 0, "not even connected");
}

#[tokio::test]
async fn a_failed_create_never_shows_secret_values() {
    const SECRET: &str = "hunter2-Zq8xv";
    let h = Harness::start(Profile::WorkspaceFull).await;
    let arguments = json!({
        "environment": "debian:12",
        "secrets": [{"name": "API_TOKEN", "value": SECRET}],
    });
    // The supervisor redacts its errors; the tool must pass them through
    // as they are and add nothing of the arguments. Once as the stream's
    // last event, once as an HTTP error.
    let mut in_stream = ErrorBody::new(
        ErrorCode::VmBootFailed,
        "workspace 0123456789ab did not boot",
    );
    in_stream
        .messages
        .push("the guest wrote API_TOKEN=[REDACTED] to its console".into());
    in_stream.detail = Some("console: API_TOKEN=[REDACTED]\nkernel panic".into());
    let in_stream = in_stream.with_hint("see the console in detail");
    h.fake.reply(
        Method::POST,
        "/v1/workspaces",
        Reply::events(&[
            CreateEvent::Phase {
                phase: "boot".into(),
                workspace_id: "0123456789ab".into(),
            },
            CreateEvent::Error(in_stream.clone()),
        ]),
    );
    let refused = ErrorBody::new(ErrorCode::LimitReached, "at most 4 workspaces may run")
        .with_hint("delete a workspace first");
    h.fake.reply(
        Method::POST,
        "/v1/workspaces",
        Reply::error(StatusCode::TOO_MANY_REQUESTS, &refused),
    );

    for expected in [&in_stream, &refused] {
        let result = h.call("workspace_create", arguments.clone()).await;
        let error = tool_error(&result);
        assert_eq!(error, &serde_json::to_value(expected).unwrap());
        let shown = serde_json::to_string(&result).unwrap();
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(text(&result).contains(&format!("\nhint: {}", expected.hint.as_deref().unwrap())));
    }
    // The value did go to the supervisor, which is where it belongs.
    let log = h.fake.log();
    assert_eq!(log.len(), 2);
    for request in &log {
        assert_eq!(
            request.body["secrets"],
            json!([{"name": "API_TOKEN", "value": SECRET}])
        );
    }
}

#[tokio::test]
async fn argument_errors_are_tool_errors_without_the_values() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    let result = h
        .call(
            "workspace_create",
            json!({"environment": "debian:12", "secrets": "hunter2-Zq8xv"}),
        )
        .await;
    let error = tool_error(&result);
    assert_eq!(error["code"], "invalid_argument");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid arguments for workspace_create: invalid type: string"),
        "{message}"
    );
    assert_eq!(
        error["hint"],
        "see the input schema of workspace_create in tools/list"
    );
    assert!(!serde_json::to_string(&result).unwrap().contains("hunter2"));

    let result = h
        .call(
            "workspace_exec",
            json!({"workspace_id": "0123456789ab", "command": "make", "timeout": 5}),
        )
        .await;
    let message = tool_error(&result)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("unknown field `timeout`"), "{message}");
    assert_eq!(h.fake.log(), []);
}

#[tokio::test]
async fn workspace_list_leaves_out_vms() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    let workspaces = vec![
        workspace("aaaaaaaaaaaa", &[]),
        workspace("bbbbbbbbbbbb", &[(KIND_LABEL, KIND_VM)]),
        workspace("cccccccccccc", &[("team", KIND_VM)]),
    ];
    h.fake.reply(
        Method::GET,
        "/v1/workspaces",
        Reply::ok(&WorkspaceList {
            count: 3,
            workspaces,
        }),
    );

    let result = h.call("workspace_list", json!({})).await;

    let value = ok(&result);
    assert_eq!(value["count"], 2);
    let ids: Vec<&str> = value["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workspace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["aaaaaaaaaaaa", "cccccccccccc"]);
    let log = h.fake.log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (&log[0].method, log[0].path.as_str()),
        (&Method::GET, "/v1/workspaces")
    );
}

#[tokio::test]
async fn tools_outside_the_profile_are_unknown_to_the_client() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    let names: Vec<String> = h
        .client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.into_owned())
        .collect();
    assert_eq!(names.len(), 16);
    assert!(names.iter().any(|n| n == "workspace_exec"));
    assert!(!names.iter().any(|n| n == "shell_read" || n == "vm_create"));

    let handle = h
        .send(
            "shell_read",
            json!({"workspace_id": "0123456789ab", "shell_id": "s"}),
        )
        .await;
    match handle.await_response().await {
        Err(ServiceError::McpError(error)) => {
            assert!(error.message.contains("tool not found"), "{error:?}");
        }
        other => panic!("shell_read answered in workspace-core: {other:?}"),
    }
    assert_eq!(h.fake.log(), []);
    assert_eq!(h.fake.health_checks(), 0);
}

//! The `vm_*` tools mapped onto workspaces labelled `pyro.kind=vm`, through
//! an MCP client against the fake supervisor.

use hyper::{Method, StatusCode};
use pyro_sdk::api::workspace::{CreateEvent, DeleteResult, ExecEvent};
use pyro_sdk::api::{ErrorBody, ErrorCode, OutputChunk, StreamName};
use serde_json::json;

use super::fake::{Recorded, Reply};
use super::{ok, summary, text, tool_error, within, workspace, Harness};
use crate::mcp::profiles::Profile;
use crate::mcp::tools::{KIND_LABEL, KIND_VM};

const VM: &str = "feedfacecafe";
const STATUS: &str = "/v1/workspaces/feedfacecafe";
const EXEC: &str = "/v1/workspaces/feedfacecafe/exec";

fn calls(log: &[Recorded]) -> Vec<(Method, &str)> {
    log.iter()
        .map(|r| (r.method.clone(), r.path.as_str()))
        .collect()
}

/// Scripts the status lookup of the VM and its deletion.
fn script_vm(h: &Harness) {
    h.fake.reply(
        Method::GET,
        STATUS,
        Reply::ok(&workspace(VM, &[(KIND_LABEL, KIND_VM)])),
    );
    h.fake.reply(
        Method::DELETE,
        STATUS,
        Reply::ok(&DeleteResult {
            workspace_id: VM.into(),
            deleted: true,
            reason: "explicit_delete".into(),
        }),
    );
}

#[tokio::test]
async fn vm_create_creates_a_labelled_workspace() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    h.fake.reply(
        Method::POST,
        "/v1/workspaces",
        Reply::events(&[CreateEvent::Result(Box::new(workspace(
            VM,
            &[(KIND_LABEL, KIND_VM)],
        )))]),
    );

    let result = h
        .call(
            "vm_create",
            json!({"environment": "debian:12", "mem_mib": 512}),
        )
        .await;

    let value = ok(&result);
    assert_eq!(value["vm_id"], VM);
    assert_eq!(value["state"], "started");
    assert_eq!(value["network_enabled"], false);
    let log = h.fake.log();
    assert_eq!(calls(&log), [(Method::POST, "/v1/workspaces")]);
    assert_eq!(log[0].body["labels"], json!({KIND_LABEL: KIND_VM}));
    assert_eq!(log[0].body["mem_mib"], 512);
    assert_eq!(log[0].body["environment"], "debian:12");
}

#[tokio::test]
async fn vm_exec_runs_the_command_then_deletes_the_vm() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    script_vm(&h);
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::events(&[
            ExecEvent::Output(OutputChunk::new(StreamName::Stdout, b"Linux\n")),
            ExecEvent::Result(summary(VM, "uname", 0)),
        ]),
    );

    let result = h
        .call("vm_exec", json!({"vm_id": VM, "command": "uname"}))
        .await;

    let value = ok(&result);
    assert_eq!(value["vm_id"], VM);
    assert_eq!(value["stdout"], "Linux\n");
    assert_eq!(value["exit_code"], 0);
    assert_eq!(
        value["cleanup"],
        json!({"vm_id": VM, "deleted": true, "reason": "post_exec_cleanup"})
    );
    assert!(value.get("workspace_id").is_none() && value.get("sequence").is_none());
    let log = h.fake.log();
    assert_eq!(
        calls(&log),
        [
            (Method::GET, STATUS),
            (Method::POST, EXEC),
            (Method::DELETE, STATUS)
        ]
    );
    assert_eq!(log[1].body["command"], json!({"shell": "uname"}));
}

#[tokio::test]
async fn vm_exec_deletes_the_vm_also_when_the_command_fails() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    script_vm(&h);
    let busy = ErrorBody::new(ErrorCode::Conflict, "workspace feedfacecafe is stopping");
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::error(StatusCode::CONFLICT, &busy),
    );

    let result = h
        .call("vm_exec", json!({"vm_id": VM, "command": "uname"}))
        .await;

    assert_eq!(tool_error(&result), &serde_json::to_value(&busy).unwrap());
    assert_eq!(
        calls(&h.fake.log()),
        [
            (Method::GET, STATUS),
            (Method::POST, EXEC),
            (Method::DELETE, STATUS)
        ]
    );
}

#[tokio::test]
async fn a_failed_delete_after_a_failed_command_is_reported() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    h.fake.reply(
        Method::GET,
        STATUS,
        Reply::ok(&workspace(VM, &[(KIND_LABEL, KIND_VM)])),
    );
    let died = ErrorBody::new(
        ErrorCode::GuestUnavailable,
        "the guest agent stopped answering",
    );
    h.fake
        .reply(Method::POST, EXEC, Reply::events(&[ExecEvent::Error(died)]));
    h.fake.reply(
        Method::DELETE,
        STATUS,
        Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &ErrorBody::new(ErrorCode::Internal, "removing the disk failed"),
        ),
    );

    let result = h
        .call("vm_exec", json!({"vm_id": VM, "command": "uname"}))
        .await;

    let error = tool_error(&result);
    assert_eq!(error["code"], "guest_unavailable");
    assert_eq!(
        error["detail"],
        "vm feedfacecafe was not deleted: removing the disk failed"
    );
    assert!(text(&result)
        .ends_with("\ndetail:\nvm feedfacecafe was not deleted: removing the disk failed"));
    assert_eq!(
        calls(&h.fake.log()),
        [
            (Method::GET, STATUS),
            (Method::POST, EXEC),
            (Method::DELETE, STATUS)
        ]
    );
}

#[tokio::test]
async fn cancelling_vm_exec_still_deletes_the_vm() {
    let mut h = Harness::start(Profile::WorkspaceFull).await;
    script_vm(&h);
    let live = h.fake.live(Method::POST, EXEC);
    let handle = h
        .send("vm_exec", json!({"vm_id": VM, "command": "sleep infinity"}))
        .await;
    assert_eq!(
        h.next_progress().await.message.as_deref(),
        Some("command started")
    );

    handle.cancel(None).await.unwrap();

    within("the exec stream to close", live.closed()).await;
    let delete = within(
        "the VM to be deleted",
        h.fake.wait_for(Method::DELETE, STATUS),
    )
    .await;
    assert_eq!(delete.body, serde_json::Value::Null);
}

#[tokio::test]
async fn vm_tools_refuse_ordinary_workspaces() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    h.fake.reply(
        Method::GET,
        STATUS,
        Reply::ok(&workspace(VM, &[("team", "a")])),
    );
    h.fake.reply(
        Method::GET,
        STATUS,
        Reply::error(
            StatusCode::NOT_FOUND,
            &ErrorBody::new(
                ErrorCode::UnknownWorkspace,
                "workspace feedfacecafe does not exist",
            ),
        ),
    );

    let result = h
        .call("vm_exec", json!({"vm_id": VM, "command": "uname"}))
        .await;
    let error = tool_error(&result);
    assert_eq!(error["code"], "unknown_vm");
    assert_eq!(error["message"], "feedfacecafe is a workspace, not a VM");

    let result = h.call("vm_delete", json!({"vm_id": VM})).await;
    let error = tool_error(&result);
    assert_eq!(error["code"], "unknown_vm");
    assert_eq!(error["message"], "vm feedfacecafe does not exist");

    assert_eq!(
        calls(&h.fake.log()),
        [(Method::GET, STATUS), (Method::GET, STATUS)],
        "nothing is run or deleted"
    );
}

//! `workspace_exec` through an MCP client against the fake supervisor:
//! output assembly and its cap, errors, progress, cancellation, and
//! concurrency with `shell_read`.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use pyro_sdk::api::session::{ShellInfo, ShellReadResult};
use pyro_sdk::api::workspace::{ExecEvent, ExecRequest, WorkspaceList};
use pyro_sdk::api::{CommandSpec, ErrorBody, ErrorCode, OutputChunk, StreamName};
use serde_json::json;

use super::fake::Reply;
use super::{ok, result, summary, text, tool_error, within, Harness};
use crate::mcp::profiles::Profile;
use crate::mcp::render::MAX_OUTPUT_BYTES;

const WS: &str = "0123456789ab";
const EXEC: &str = "/v1/workspaces/0123456789ab/exec";

fn out(data: &[u8]) -> ExecEvent {
    ExecEvent::Output(OutputChunk::new(StreamName::Stdout, data))
}

fn err(data: &[u8]) -> ExecEvent {
    ExecEvent::Output(OutputChunk::new(StreamName::Stderr, data))
}

#[tokio::test]
async fn streamed_output_is_assembled_into_the_result() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::events(&[
            out(b"hel"),
            err(b"warn\n"),
            out(b"lo\n"),
            ExecEvent::Result(summary(WS, "make test", 2)),
        ]),
    );

    let result = h
        .call(
            "workspace_exec",
            json!({"workspace_id": WS, "command": "make test", "cwd": "src",
                   "env": {"CI": "1"}, "timeout_seconds": 60}),
        )
        .await;

    let value = ok(&result);
    assert_eq!(value["stdout"], "hello\n");
    assert_eq!(value["stderr"], "warn\n");
    assert_eq!(value["exit_code"], 2);
    assert_eq!(value["output_truncated"], false);
    assert_eq!(value["sequence"], 3);
    assert_eq!(value["workspace_id"], WS);
    let as_text: serde_json::Value = serde_json::from_str(&text(&result)).unwrap();
    assert_eq!(&as_text, value);

    let mut expected = ExecRequest::new(CommandSpec::Shell("make test".into()));
    expected.timeout_seconds = 60;
    expected.cwd = Some("src".into());
    expected.env = BTreeMap::from([("CI".to_owned(), "1".to_owned())]);
    let log = h.fake.log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (&log[0].method, log[0].path.as_str()),
        (&Method::POST, EXEC)
    );
    assert_eq!(log[0].body, serde_json::to_value(&expected).unwrap());
}

#[tokio::test]
async fn output_over_the_cap_is_truncated() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    let half = vec![b'x'; MAX_OUTPUT_BYTES / 2 + 1];
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::events(&[
            out(&half),
            err(b"still here\n"),
            out(&half),
            out(b"dropped"),
            ExecEvent::Result(summary(WS, "yes", 0)),
        ]),
    );

    let result = h
        .call(
            "workspace_exec",
            json!({"workspace_id": WS, "command": "yes"}),
        )
        .await;

    let value = ok(&result);
    let stdout = value["stdout"].as_str().unwrap();
    assert_eq!(stdout.len(), MAX_OUTPUT_BYTES);
    assert!(stdout.bytes().all(|b| b == b'x'));
    assert_eq!(value["stderr"], "still here\n");
    assert_eq!(value["output_truncated"], true);
}

#[tokio::test]
async fn supervisor_errors_become_tool_errors() {
    let h = Harness::start(Profile::WorkspaceCore).await;
    // An HTTP error before the stream starts.
    let mut unknown = ErrorBody::new(
        ErrorCode::UnknownWorkspace,
        "workspace 0123456789ab does not exist",
    );
    unknown
        .messages
        .push("no record in the state directory".into());
    let unknown = unknown.with_hint("list workspaces with workspace_list");
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::error(StatusCode::NOT_FOUND, &unknown),
    );
    // An error as the stream's last event, after some output.
    let mut died = ErrorBody::new(
        ErrorCode::GuestUnavailable,
        "the guest agent stopped answering",
    );
    died.detail = Some("console: Out of memory: Killed process 1".into());
    h.fake.reply(
        Method::POST,
        EXEC,
        Reply::events(&[out(b"partial"), ExecEvent::Error(died.clone())]),
    );
    // A stream that ends without its result.
    h.fake
        .reply(Method::POST, EXEC, Reply::events(&[out(b"partial")]));
    let arguments = json!({"workspace_id": WS, "command": "make"});

    let result = h.call("workspace_exec", arguments.clone()).await;
    assert_eq!(
        tool_error(&result),
        &serde_json::to_value(&unknown).unwrap()
    );
    assert_eq!(
        text(&result),
        "error [unknown_workspace]: workspace 0123456789ab does not exist: no record in the state directory\nhint: list workspaces with workspace_list"
    );

    let result = h.call("workspace_exec", arguments.clone()).await;
    assert_eq!(tool_error(&result), &serde_json::to_value(&died).unwrap());
    assert!(text(&result).ends_with("\ndetail:\nconsole: Out of memory: Killed process 1"));

    let result = h.call("workspace_exec", arguments).await;
    let error = tool_error(&result);
    assert_eq!(error["code"], "supervisor_unavailable");
    assert_eq!(
        error["message"],
        format!("the pyro supervisor ended the stream for {EXEC} before its result")
    );
    assert_eq!(h.fake.log().len(), 3);
}

#[tokio::test]
async fn exec_reports_progress_while_it_runs() {
    let mut h = Harness::start(Profile::WorkspaceCore).await;
    let live = h.fake.live(Method::POST, EXEC);
    let handle = h
        .send(
            "workspace_exec",
            json!({"workspace_id": WS, "command": "make"}),
        )
        .await;
    let token = handle.progress_token.clone();

    // The first notification comes while the command runs, before any
    // output or result exists.
    let started = h.next_progress().await;
    assert_eq!(started.progress_token, token);
    assert_eq!(started.message.as_deref(), Some("command started"));
    assert!(live.send(&out(b"built\n")).await);
    assert!(live.send(&ExecEvent::Result(summary(WS, "make", 0))).await);
    drop(live);

    let result = result(within("the exec", handle.await_response()).await.unwrap());
    assert_eq!(ok(&result)["stdout"], "built\n");
    let mut last = started.progress;
    loop {
        let next = h.next_progress().await;
        assert_eq!(next.progress_token, token);
        assert!(next.progress > last, "progress must increase");
        last = next.progress;
        let message = next.message.unwrap_or_default();
        if message.starts_with("command exited") {
            assert_eq!(
                message,
                "command exited with 0 after 1 output chunks (6 bytes)"
            );
            break;
        }
        assert_eq!(message, "1 output chunks (6 bytes)");
    }
}

#[tokio::test]
async fn cancelling_an_exec_closes_its_supervisor_stream() {
    let mut h = Harness::start(Profile::WorkspaceCore).await;
    let live = h.fake.live(Method::POST, EXEC);
    h.fake.reply(
        Method::GET,
        "/v1/workspaces",
        Reply::ok(&WorkspaceList {
            count: 0,
            workspaces: Vec::new(),
        }),
    );
    let handle = h
        .send(
            "workspace_exec",
            json!({"workspace_id": WS, "command": "sleep infinity"}),
        )
        .await;
    // The stream is open and the tool is waiting on it.
    assert_eq!(
        h.next_progress().await.message.as_deref(),
        Some("command started")
    );
    assert!(!live.is_closed());

    handle
        .cancel(Some("the user gave up".into()))
        .await
        .unwrap();

    within("the supervisor stream to close", live.closed()).await;
    assert!(!live.send(&out(b"too late")).await);
    // The server is still serving.
    let list = h.call("workspace_list", json!({})).await;
    assert_eq!(ok(&list)["count"], 0);
    let paths: Vec<String> = h.fake.log().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [EXEC, "/v1/workspaces"]);
}

#[tokio::test]
async fn a_slow_exec_does_not_block_a_shell_read() {
    let h = Harness::start(Profile::WorkspaceFull).await;
    let live = h.fake.live(Method::POST, EXEC);
    let shell = ShellInfo {
        workspace_id: WS.into(),
        shell_id: "5e11".into(),
        cwd: "/workspace".into(),
        cols: 120,
        rows: 30,
        state: "running".into(),
        started_at: "2026-11-28T19:30:00Z".into(),
        ended_at: None,
        exit_code: None,
        output_end: 6,
        execution_mode: "guest_vsock".into(),
    };
    h.fake.reply(
        Method::POST,
        "/v1/workspaces/0123456789ab/shells/5e11/read",
        Reply::ok(&ShellReadResult {
            shell,
            cursor: 0,
            next_cursor: 6,
            output: "$ ls\r\n".into(),
            truncated: false,
            more: false,
            plain: false,
            wait_for_idle_ms: None,
        }),
    );
    let exec = h
        .send(
            "workspace_exec",
            json!({"workspace_id": WS, "command": "make"}),
        )
        .await;
    let exec = tokio::spawn(exec.await_response());
    within(
        "the exec to reach the supervisor",
        h.fake.wait_for(Method::POST, EXEC),
    )
    .await;

    let read = h
        .call(
            "shell_read",
            json!({"workspace_id": WS, "shell_id": "5e11"}),
        )
        .await;

    let value = ok(&read);
    assert_eq!(value["output"], "$ ls\r\n");
    assert_eq!(value["shell_id"], "5e11", "the shell's fields are lifted");
    assert_eq!(value["next_cursor"], 6);
    assert!(!exec.is_finished(), "the exec cannot end before its result");
    let read_request = &h.fake.log()[1];
    assert_eq!(
        read_request.body,
        json!({"cursor": 0, "max_chars": 65536, "plain": false, "wait_for_idle_ms": null})
    );

    assert!(live.send(&ExecEvent::Result(summary(WS, "make", 0))).await);
    let exec = result(within("the exec", exec).await.unwrap().unwrap());
    assert_eq!(ok(&exec)["exit_code"], 0);
}

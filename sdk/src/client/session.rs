//! Shell and service calls: one [`Client`] method per endpoint of
//! [`crate::api::session`], plus [`Client::follow_service_logs`], the
//! streaming form of the logs endpoint.
//!
//! Requests are checked with their `validate` before anything is sent (more
//! than one readiness check, a bad terminal size, a bad secret mapping...),
//! and refused with [`SdkError::InvalidRequest`], whose code is
//! `invalid_argument`, the one the supervisor would give.
//!
//! No call has a client-side timeout: [`Client::start_service`] answers only
//! once the service is ready, failed, or ran out of its
//! `ready_timeout_seconds`, and a followed log stream lasts as long as the
//! service runs.

use hyper::Method;

use super::transport::{self, EventStream};
use super::Client;
use crate::api::session::{
    ServiceInfo, ServiceList, ServiceLogEvent, ServiceLogs, ServiceLogsRequest,
    ServiceStartRequest, ShellInfo, ShellList, ShellOpenRequest, ShellReadRequest, ShellReadResult,
    ShellResizeRequest, ShellSignalRequest, ShellWriteRequest,
};
use crate::error::SdkError;

impl Client {
    /// Opens an interactive shell (a PTY) in a started workspace.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ShellOpenRequest;
    /// let mut request = ShellOpenRequest::default();
    /// request.secret_env.insert("API_TOKEN".into(), "API_TOKEN".into());
    /// let shell = client.open_shell("0123456789ab", &request).await?;
    /// println!("shell {} in {}", shell.shell_id, shell.cwd);
    /// # Ok(()) }
    /// ```
    pub async fn open_shell(
        &self,
        workspace_id: &str,
        request: &ShellOpenRequest,
    ) -> Result<ShellInfo, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        self.post(&session_path(workspace_id, "/shells"), request)
            .await
    }

    /// The shells of a workspace, oldest first.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// for shell in client.list_shells("0123456789ab").await?.shells {
    ///     println!("{} {} {}x{}", shell.shell_id, shell.state, shell.cols, shell.rows);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_shells(&self, workspace_id: &str) -> Result<ShellList, SdkError> {
        self.get(&session_path(workspace_id, "/shells")).await
    }

    /// Reads a shell's output from a cursor; pass the answer's `next_cursor`
    /// to the next read.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ShellReadRequest;
    /// let mut request = ShellReadRequest { plain: true, wait_for_idle_ms: Some(300), ..Default::default() };
    /// let read = client.read_shell("0123456789ab", "3f2a9c1b7d4e", &request).await?;
    /// print!("{}", read.output);
    /// request.cursor = read.next_cursor;
    /// # Ok(()) }
    /// ```
    pub async fn read_shell(
        &self,
        workspace_id: &str,
        shell_id: &str,
        request: &ShellReadRequest,
    ) -> Result<ShellReadResult, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        self.post(&shell_path(workspace_id, shell_id, "/read"), request)
            .await
    }

    /// Types into a shell (pressing Enter afterwards unless
    /// `append_newline` is false).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ShellWriteRequest;
    /// let request = ShellWriteRequest { input: "pwd".into(), append_newline: true };
    /// client.write_shell("0123456789ab", "3f2a9c1b7d4e", &request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_shell(
        &self,
        workspace_id: &str,
        shell_id: &str,
        request: &ShellWriteRequest,
    ) -> Result<ShellInfo, SdkError> {
        self.post(&shell_path(workspace_id, shell_id, "/write"), request)
            .await
    }

    /// Sends a signal to a shell's foreground job (INT is Ctrl-C).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::{ShellSignalName, ShellSignalRequest};
    /// let request = ShellSignalRequest { signal: ShellSignalName::Int };
    /// client.signal_shell("0123456789ab", "3f2a9c1b7d4e", &request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn signal_shell(
        &self,
        workspace_id: &str,
        shell_id: &str,
        request: &ShellSignalRequest,
    ) -> Result<ShellInfo, SdkError> {
        self.post(&shell_path(workspace_id, shell_id, "/signal"), request)
            .await
    }

    /// Changes a shell's terminal size (its programs get SIGWINCH).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ShellResizeRequest;
    /// let request = ShellResizeRequest { cols: 200, rows: 50 };
    /// let shell = client.resize_shell("0123456789ab", "3f2a9c1b7d4e", &request).await?;
    /// println!("{}x{}", shell.cols, shell.rows);
    /// # Ok(()) }
    /// ```
    pub async fn resize_shell(
        &self,
        workspace_id: &str,
        shell_id: &str,
        request: &ShellResizeRequest,
    ) -> Result<ShellInfo, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        self.post(&shell_path(workspace_id, shell_id, "/resize"), request)
            .await
    }

    /// Closes a shell (hang-up, then kill); the answer's state is `stopped`.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let shell = client.close_shell("0123456789ab", "3f2a9c1b7d4e").await?;
    /// assert_eq!(shell.state, "stopped");
    /// # Ok(()) }
    /// ```
    pub async fn close_shell(
        &self,
        workspace_id: &str,
        shell_id: &str,
    ) -> Result<ShellInfo, SdkError> {
        let path = shell_path(workspace_id, shell_id, "");
        transport::call::<(), _>(&self.socket, Method::DELETE, &path, None).await
    }

    /// Starts a background service and waits until it is ready, failed, or
    /// out of its readiness timeout (no client-side timeout cuts that
    /// wait short). A service that failed comes back with state `failed`
    /// and its `stop_reason`.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ServiceStartRequest;
    /// use pyro_sdk::api::CommandSpec;
    /// let mut request = ServiceStartRequest::new(
    ///     "web",
    ///     CommandSpec::Shell("touch .web-ready && while true; do sleep 60; done".into()),
    /// );
    /// request.ready_file = Some(".web-ready".into());
    /// request.secret_env.insert("API_TOKEN".into(), "API_TOKEN".into());
    /// let service = client.start_service("0123456789ab", &request).await?;
    /// println!("{} is {}", service.service_name, service.state);
    /// # Ok(()) }
    /// ```
    pub async fn start_service(
        &self,
        workspace_id: &str,
        request: &ServiceStartRequest,
    ) -> Result<ServiceInfo, SdkError> {
        request.validate().map_err(SdkError::invalid_request)?;
        self.post(&session_path(workspace_id, "/services"), request)
            .await
    }

    /// The services of a workspace, by name.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let list = client.list_services("0123456789ab").await?;
    /// println!("{} of {} running", list.running_count, list.count);
    /// # Ok(()) }
    /// ```
    pub async fn list_services(&self, workspace_id: &str) -> Result<ServiceList, SdkError> {
        self.get(&session_path(workspace_id, "/services")).await
    }

    /// One service.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let service = client.service_status("0123456789ab", "web").await?;
    /// println!("{} restarts={} {:?}", service.state, service.restart_count, service.stop_reason);
    /// # Ok(()) }
    /// ```
    pub async fn service_status(
        &self,
        workspace_id: &str,
        service_name: &str,
    ) -> Result<ServiceInfo, SdkError> {
        self.get(&service_path(workspace_id, service_name, ""))
            .await
    }

    /// A service's logs so far (the last `tail_lines`, or `all`). The
    /// request's `follow` is ignored: see
    /// [`Client::follow_service_logs`].
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::ServiceLogsRequest;
    /// let request = ServiceLogsRequest { tail_lines: 50, ..Default::default() };
    /// let logs = client.service_logs("0123456789ab", "web", &request).await?;
    /// print!("{}", logs.combined);
    /// # Ok(()) }
    /// ```
    pub async fn service_logs(
        &self,
        workspace_id: &str,
        service_name: &str,
        request: &ServiceLogsRequest,
    ) -> Result<ServiceLogs, SdkError> {
        let request = ServiceLogsRequest {
            follow: false,
            ..request.clone()
        };
        self.post(&service_path(workspace_id, service_name, "/logs"), &request)
            .await
    }

    /// A service's logs (the last `tail_lines`, or `all`), then its new
    /// output as it is written, until the service ends (the last event is
    /// its final state) or the stream is dropped. The request's `follow`
    /// is set.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::session::{ServiceLogEvent, ServiceLogsRequest};
    /// let mut events = client
    ///     .follow_service_logs("0123456789ab", "web", &ServiceLogsRequest::default())
    ///     .await?;
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         ServiceLogEvent::Output(chunk) => print!("{}", String::from_utf8_lossy(&chunk.bytes().unwrap_or_default())),
    ///         ServiceLogEvent::Result(service) => println!("ended: {}", service.state),
    ///         ServiceLogEvent::Error(body) => println!("failed: {}", body.message),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn follow_service_logs(
        &self,
        workspace_id: &str,
        service_name: &str,
        request: &ServiceLogsRequest,
    ) -> Result<EventStream<ServiceLogEvent>, SdkError> {
        let request = ServiceLogsRequest {
            follow: true,
            ..request.clone()
        };
        transport::stream(
            &self.socket,
            &service_path(workspace_id, service_name, "/logs"),
            &request,
        )
        .await
    }

    /// Stops a service: TERM to its process group, then KILL after a grace
    /// period. A restart policy does not bring it back.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let service = client.stop_service("0123456789ab", "web").await?;
    /// println!("{} ({:?})", service.state, service.stop_reason);
    /// # Ok(()) }
    /// ```
    pub async fn stop_service(
        &self,
        workspace_id: &str,
        service_name: &str,
    ) -> Result<ServiceInfo, SdkError> {
        self.post(
            &service_path(workspace_id, service_name, "/stop"),
            &serde_json::json!({}),
        )
        .await
    }
}

/// `/v1/workspaces/{id}{suffix}`, with the id percent-encoded.
fn session_path(workspace_id: &str, suffix: &str) -> String {
    format!(
        "/v1/workspaces/{}{suffix}",
        transport::segment(workspace_id)
    )
}

/// `/v1/workspaces/{id}/shells/{shell_id}{suffix}`.
fn shell_path(workspace_id: &str, shell_id: &str, suffix: &str) -> String {
    session_path(
        workspace_id,
        &format!("/shells/{}{suffix}", transport::segment(shell_id)),
    )
}

/// `/v1/workspaces/{id}/services/{name}{suffix}`.
fn service_path(workspace_id: &str, service_name: &str, suffix: &str) -> String {
    session_path(
        workspace_id,
        &format!("/services/{}{suffix}", transport::segment(service_name)),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};
    use tokio::sync::oneshot;

    use super::*;
    use crate::api::session::*;
    use crate::api::{CommandSpec, ErrorBody, ErrorCode, OutputChunk, StreamName};

    #[test]
    fn paths_encode_every_segment() {
        assert_eq!(
            session_path("0123456789ab", "/shells"),
            "/v1/workspaces/0123456789ab/shells"
        );
        assert_eq!(
            shell_path("ws1", "sh1", "/read"),
            "/v1/workspaces/ws1/shells/sh1/read"
        );
        assert_eq!(
            shell_path("ws1", "a/b", ""),
            "/v1/workspaces/ws1/shells/a%2Fb"
        );
        assert_eq!(
            service_path("ws1", "web.v2", "/logs"),
            "/v1/workspaces/ws1/services/web.v2/logs"
        );
        assert_eq!(
            service_path("ws 1", "we b", ""),
            "/v1/workspaces/ws%201/services/we%20b"
        );
    }

    /// One request as the fake supervisor saw it.
    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        body: serde_json::Value,
    }

    /// Reads one HTTP/1.1 request (head and content-length body).
    async fn read_request(stream: &mut UnixStream) -> Seen {
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
        let body = &buf[header_end..header_end + length];
        Seen {
            method: method.to_owned(),
            path: path.trim_start_matches("http://pyro").to_owned(),
            body: if body.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(body).unwrap()
            },
        }
    }

    /// A fake supervisor that answers each connection in turn with the next
    /// `(status, body)` and records what it was asked.
    fn fake_supervisor(
        socket: &Path,
        answers: Vec<(u16, String)>,
    ) -> tokio::task::JoinHandle<Vec<Seen>> {
        let listener = UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                seen.push(read_request(&mut stream).await);
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

    fn client_at(dir: &Path) -> (Client, std::path::PathBuf) {
        let socket = dir.join("api.sock");
        let client = Client {
            socket: socket.clone(),
            paths: crate::PyroPaths::new(dir, dir, dir),
        };
        (client, socket)
    }

    fn shell(state: &str) -> ShellInfo {
        ShellInfo {
            workspace_id: "ws1".into(),
            shell_id: "sh1".into(),
            cwd: "/workspace".into(),
            cols: 120,
            rows: 30,
            state: state.into(),
            started_at: "2026-01-02T03:04:05.000Z".into(),
            ended_at: None,
            exit_code: None,
            output_end: 11,
            execution_mode: "guest_vsock".into(),
        }
    }

    fn service(state: &str) -> ServiceInfo {
        ServiceInfo {
            workspace_id: "ws1".into(),
            service_name: "web".into(),
            state: state.into(),
            command: "sh -lc 'touch .web-ready && while true; do sleep 60; done'".into(),
            cwd: "/workspace".into(),
            readiness: Some(ReadinessInfo {
                kind: "file".into(),
                target: "/workspace/.web-ready".into(),
            }),
            restart: RestartPolicy::No,
            restart_count: 0,
            started_at: Some("2026-01-02T03:04:05.000Z".into()),
            ready_at: Some("2026-01-02T03:04:06.000Z".into()),
            ended_at: None,
            exit_code: None,
            pid: Some(42),
            stop_reason: None,
            execution_mode: "guest_vsock".into(),
        }
    }

    fn json<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[tokio::test]
    async fn shell_methods_reach_their_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (client, socket) = client_at(dir.path());
        let read = ShellReadResult {
            shell: shell("running"),
            cursor: 0,
            next_cursor: 11,
            output: "/workspace\n".into(),
            truncated: false,
            more: false,
            plain: true,
            wait_for_idle_ms: Some(200),
        };
        let list = ShellList {
            workspace_id: "ws1".into(),
            count: 1,
            shells: vec![shell("running")],
        };
        let missing = ErrorBody::new(ErrorCode::NotFound, "shell nope does not exist");
        let answers = vec![
            (200, json(&shell("running"))),
            (200, json(&list)),
            (200, json(&shell("running"))),
            (200, json(&read)),
            (200, json(&shell("running"))),
            (200, json(&shell("running"))),
            (200, json(&shell("stopped"))),
            (404, json(&missing)),
        ];
        let server = fake_supervisor(&socket, answers);

        let mut open = ShellOpenRequest::default();
        open.secret_env
            .insert("API_TOKEN".into(), "TOKEN_VAR".into());
        assert_eq!(
            client.open_shell("ws1", &open).await.unwrap().shell_id,
            "sh1"
        );
        assert_eq!(client.list_shells("ws1").await.unwrap(), list);
        let write = ShellWriteRequest {
            input: "pwd".into(),
            append_newline: false,
        };
        client.write_shell("ws1", "sh1", &write).await.unwrap();
        let request = ShellReadRequest {
            cursor: 3,
            plain: true,
            wait_for_idle_ms: Some(200),
            ..Default::default()
        };
        assert_eq!(
            client.read_shell("ws1", "sh1", &request).await.unwrap(),
            read
        );
        let signal = ShellSignalRequest {
            signal: ShellSignalName::Term,
        };
        client.signal_shell("ws1", "sh1", &signal).await.unwrap();
        let resize = ShellResizeRequest {
            cols: 200,
            rows: 50,
        };
        client.resize_shell("ws1", "sh1", &resize).await.unwrap();
        assert_eq!(
            client.close_shell("ws1", "sh1").await.unwrap().state,
            "stopped"
        );
        match client.close_shell("ws1", "nope").await {
            Err(SdkError::Api(body)) => assert_eq!(body, missing),
            other => panic!("{other:?}"),
        }

        let seen = server.await.unwrap();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("POST", "/v1/workspaces/ws1/shells"),
                ("GET", "/v1/workspaces/ws1/shells"),
                ("POST", "/v1/workspaces/ws1/shells/sh1/write"),
                ("POST", "/v1/workspaces/ws1/shells/sh1/read"),
                ("POST", "/v1/workspaces/ws1/shells/sh1/signal"),
                ("POST", "/v1/workspaces/ws1/shells/sh1/resize"),
                ("DELETE", "/v1/workspaces/ws1/shells/sh1"),
                ("DELETE", "/v1/workspaces/ws1/shells/nope"),
            ]
        );
        assert_eq!(
            seen[0].body,
            serde_json::json!({"cwd": null, "cols": 120, "rows": 30, "secret_env": {"API_TOKEN": "TOKEN_VAR"}})
        );
        assert_eq!(seen[1].body, serde_json::Value::Null);
        assert_eq!(
            seen[2].body,
            serde_json::json!({"input": "pwd", "append_newline": false})
        );
        assert_eq!(
            seen[3].body,
            serde_json::json!({"cursor": 3, "max_chars": 65536, "plain": true, "wait_for_idle_ms": 200})
        );
        assert_eq!(seen[4].body, serde_json::json!({"signal": "TERM"}));
        assert_eq!(seen[5].body, serde_json::json!({"cols": 200, "rows": 50}));
        assert_eq!(seen[6].body, serde_json::Value::Null);
    }

    #[tokio::test]
    async fn service_methods_reach_their_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (client, socket) = client_at(dir.path());
        let list = ServiceList {
            workspace_id: "ws1".into(),
            count: 1,
            running_count: 1,
            services: vec![service("running")],
        };
        let logs = ServiceLogs {
            service: service("running"),
            stdout: "listening\n".into(),
            stderr: "warn\n".into(),
            combined: "listening\nwarn\n".into(),
            tail_lines: Some(50),
            truncated: true,
        };
        let mut stopped = service("stopped");
        stopped.stop_reason = Some("sigterm".into());
        let running = ErrorBody::new(
            ErrorCode::Conflict,
            "service web is already running in workspace ws1",
        );
        let answers = vec![
            (200, json(&service("running"))),
            (200, json(&list)),
            (200, json(&service("running"))),
            (200, json(&logs)),
            (200, json(&stopped)),
            (409, json(&running)),
        ];
        let server = fake_supervisor(&socket, answers);

        let mut start = ServiceStartRequest::new(
            "web",
            CommandSpec::Shell("sh -lc 'touch .web-ready && while true; do sleep 60; done'".into()),
        );
        start.ready_file = Some(".web-ready".into());
        start.ready_timeout_seconds = 120;
        start.restart = RestartPolicy::OnFailure;
        start.env.insert("PORT".into(), "8080".into());
        start
            .secret_env
            .insert("API_TOKEN".into(), "API_TOKEN".into());
        assert_eq!(
            client.start_service("ws1", &start).await.unwrap(),
            service("running")
        );
        assert_eq!(client.list_services("ws1").await.unwrap(), list);
        assert_eq!(
            client.service_status("ws1", "web").await.unwrap().pid,
            Some(42)
        );
        let request = ServiceLogsRequest {
            tail_lines: 50,
            all: false,
            follow: true,
        };
        assert_eq!(
            client.service_logs("ws1", "web", &request).await.unwrap(),
            logs
        );
        let stop = client.stop_service("ws1", "web").await.unwrap();
        assert_eq!(stop.stop_reason.as_deref(), Some("sigterm"));
        match client.start_service("ws1", &start).await {
            Err(SdkError::Api(body)) => assert_eq!(body.code, ErrorCode::Conflict),
            other => panic!("{other:?}"),
        }

        let seen = server.await.unwrap();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("POST", "/v1/workspaces/ws1/services"),
                ("GET", "/v1/workspaces/ws1/services"),
                ("GET", "/v1/workspaces/ws1/services/web"),
                ("POST", "/v1/workspaces/ws1/services/web/logs"),
                ("POST", "/v1/workspaces/ws1/services/web/stop"),
                ("POST", "/v1/workspaces/ws1/services"),
            ]
        );
        let body = &seen[0].body;
        assert_eq!(body["name"], "web");
        assert_eq!(
            body["command"]["shell"],
            "sh -lc 'touch .web-ready && while true; do sleep 60; done'"
        );
        assert_eq!(body["ready_file"], ".web-ready");
        assert_eq!(body["ready_timeout_seconds"], 120);
        assert_eq!(body["restart"], "on-failure");
        assert_eq!(body["env"]["PORT"], "8080");
        assert_eq!(body["secret_env"]["API_TOKEN"], "API_TOKEN");
        // The request round-trips through the server's own parsing.
        let parsed: ServiceStartRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed, start);
        assert_eq!(
            seen[3].body,
            serde_json::json!({"tail_lines": 50, "all": false, "follow": false})
        );
        assert_eq!(seen[4].body, serde_json::json!({}));
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens: a request that were sent would fail to connect.
        let (client, _socket) = client_at(dir.path());
        let mut start = ServiceStartRequest::new("web", CommandSpec::Shell("sleep 60".into()));
        start.ready_file = Some(".ready".into());
        start.ready_tcp = Some("127.0.0.1:8080".into());
        let checks = [
            client.start_service("ws1", &start).await.map(|_| ()),
            client
                .open_shell(
                    "ws1",
                    &ShellOpenRequest {
                        cols: 2,
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ()),
            client
                .read_shell(
                    "ws1",
                    "sh1",
                    &ShellReadRequest {
                        wait_for_idle_ms: Some(10_001),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ()),
            client
                .resize_shell("ws1", "sh1", &ShellResizeRequest { cols: 80, rows: 0 })
                .await
                .map(|_| ()),
        ];
        for result in checks {
            match result {
                Err(err @ SdkError::InvalidRequest { .. }) => {
                    assert_eq!(err.code(), ErrorCode::InvalidArgument);
                    assert!(err.hint().is_some_and(|h| h.contains("not sent")));
                }
                other => panic!("{other:?}"),
            }
        }
        match client.start_service("ws1", &start).await {
            Err(err) => assert!(err.to_string().contains("at most one"), "{err}"),
            Ok(info) => panic!("{info:?}"),
        }
    }

    #[tokio::test]
    async fn followed_logs_arrive_as_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (client, socket) = client_at(dir.path());
        let listener = UnixListener::bind(&socket).unwrap();
        let (more_tx, more_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let seen = read_request(&mut stream).await;
            let line = |event: ServiceLogEvent| format!("{}\n", json(&event));
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            let first = line(ServiceLogEvent::Output(OutputChunk::new(
                StreamName::Stdout,
                b"listening\n",
            )));
            stream.write_all(first.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
            // The rest only once the client has seen the first line.
            more_rx.await.unwrap();
            let mut ended = service("exited");
            ended.exit_code = Some(0);
            let rest = line(ServiceLogEvent::Output(OutputChunk::new(
                StreamName::Stderr,
                b"bye\n",
            ))) + &line(ServiceLogEvent::Result(Box::new(ended)));
            // Split mid-line: the client must join partial lines.
            let (a, b) = rest.split_at(7);
            stream.write_all(a.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            stream.write_all(b.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            seen
        });

        let request = ServiceLogsRequest {
            all: true,
            ..Default::default()
        };
        let mut events = client
            .follow_service_logs("ws1", "web", &request)
            .await
            .unwrap();
        assert_eq!(events.path(), "/v1/workspaces/ws1/services/web/logs");
        match events.next().await {
            Some(Ok(ServiceLogEvent::Output(chunk))) => {
                assert_eq!(chunk.stream, StreamName::Stdout);
                assert_eq!(chunk.bytes().unwrap(), b"listening\n");
            }
            other => panic!("{other:?}"),
        }
        more_tx.send(()).unwrap();
        match events.next().await {
            Some(Ok(ServiceLogEvent::Output(chunk))) => {
                assert_eq!(chunk.stream, StreamName::Stderr);
                assert_eq!(chunk.bytes().unwrap(), b"bye\n");
            }
            other => panic!("{other:?}"),
        }
        match events.next().await {
            Some(Ok(ServiceLogEvent::Result(info))) => {
                assert_eq!(info.state, "exited");
                assert_eq!(info.exit_code, Some(0));
            }
            other => panic!("{other:?}"),
        }
        assert!(events.next().await.is_none());

        let seen = server.await.unwrap();
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.body,
            serde_json::json!({"tail_lines": 200, "all": true, "follow": true})
        );
    }

    #[tokio::test]
    async fn a_refused_follow_is_an_error_not_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (client, socket) = client_at(dir.path());
        let missing = ErrorBody::new(ErrorCode::NotFound, "service api does not exist");
        let server = fake_supervisor(&socket, vec![(404, json(&missing))]);
        match client
            .follow_service_logs("ws1", "api", &ServiceLogsRequest::default())
            .await
        {
            Err(SdkError::Api(body)) => assert_eq!(body, missing),
            other => panic!("{other:?}"),
        }
        server.await.unwrap();
    }
}

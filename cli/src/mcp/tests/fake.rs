//! A fake pyro supervisor for the tool tests: a hyper HTTP/1.1 server on a
//! Unix socket in a temporary directory, scripted per test.
//!
//! - `GET /v1/health` always answers with the SDK's version, so
//!   `Client::connect` accepts it; health checks are counted, not logged.
//! - Every other request is recorded (method, path, JSON body) before it is
//!   answered, and a [`watch`] channel publishes the log, so a test can wait
//!   for a request to arrive ([`Fake::wait_for`]) instead of sleeping.
//! - Answers are scripted per method and path ([`Fake::reply`]), each used
//!   once, in order: a JSON document with a status (an error is an
//!   [`ErrorBody`] with its status), a finished NDJSON stream, or a live
//!   stream ([`Fake::live`]) whose lines the test sends one by one and which
//!   tells the test when the client has gone ([`Live::closed`]). A request
//!   nothing was scripted for gets the real supervisor's `404 not_found`
//!   body naming it, so a test that forgot a reply fails with a clear
//!   message.
//!
//! Bodies are built from the SDK's API types with serde, as the supervisor
//! builds them.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pyro_sdk::api::{ErrorBody, ErrorCode, Health};
use pyro_sdk::{ConnectOptions, PyroPaths};
use serde::Serialize;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, `DELETE`.
    pub method: Method,
    /// The path, such as `/v1/workspaces/ws1/exec`.
    pub path: String,
    /// The JSON body (`Null` when there was none).
    pub body: Value,
}

/// A scripted answer.
#[derive(Debug)]
pub enum Reply {
    /// A JSON document with this status.
    Json(StatusCode, Value),
    /// An NDJSON stream of these lines, then the end.
    Lines(Vec<Value>),
    /// An NDJSON stream fed by a [`Live`] handle.
    Live(mpsc::Receiver<Bytes>),
}

impl Reply {
    /// `200` with `value`.
    pub fn ok(value: &impl Serialize) -> Self {
        Self::Json(StatusCode::OK, to_json(value))
    }

    /// An API error with `status`.
    pub fn error(status: StatusCode, body: &ErrorBody) -> Self {
        Self::Json(status, to_json(body))
    }

    /// A finished NDJSON stream of `events`.
    pub fn events<T: Serialize>(events: &[T]) -> Self {
        Self::Lines(events.iter().map(to_json).collect())
    }
}

/// The test's end of a live NDJSON stream.
#[derive(Debug)]
pub struct Live {
    lines: mpsc::Sender<Bytes>,
}

impl Live {
    /// Sends one event line; false when the client has gone.
    pub async fn send(&self, event: &impl Serialize) -> bool {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        self.lines.send(Bytes::from(line)).await.is_ok()
    }

    /// Resolves when the client has closed the connection (hyper drops the
    /// response body when it reads EOF from the client).
    pub async fn closed(&self) {
        self.lines.closed().await;
    }

    /// Whether the client has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.lines.is_closed()
    }
}

#[derive(Debug)]
struct State {
    replies: Mutex<HashMap<(Method, String), VecDeque<Reply>>>,
    log: watch::Sender<Vec<Recorded>>,
    health_checks: watch::Sender<usize>,
}

/// The fake supervisor; stops serving when dropped.
#[derive(Debug)]
pub struct Fake {
    dir: tempfile::TempDir,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fake {
    /// Starts a fake on `supervisor.sock` in a new temporary directory.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pyro-fake")
            .tempdir()
            .unwrap_or_else(|err| unreachable_setup("tempdir", &err));
        let socket = PyroPaths::new(dir.path(), dir.path(), dir.path()).socket();
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|err| unreachable_setup("bind the fake socket", &err));
        let state = Arc::new(State {
            replies: Mutex::new(HashMap::new()),
            log: watch::Sender::new(Vec::new()),
            health_checks: watch::Sender::new(0),
        });
        let serving = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    // A client that goes away mid-stream ends the connection
                    // with an error; that is what the cancellation tests
                    // look for, through `Live::closed`.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { dir, state, server }
    }

    /// Options that connect an SDK client to this fake (never starting a
    /// real supervisor).
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            paths: PyroPaths::new(self.dir.path(), self.dir.path(), self.dir.path()),
            autostart: false,
            supervisor_bin: None,
        }
    }

    /// Scripts the next answer to `method path`.
    pub fn reply(&self, method: Method, path: &str, reply: Reply) {
        self.state
            .replies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((method, path.to_owned()))
            .or_default()
            .push_back(reply);
    }

    /// Scripts a live NDJSON stream as the next answer to `method path`.
    pub fn live(&self, method: Method, path: &str) -> Live {
        let (lines, receiver) = mpsc::channel(16);
        self.reply(method, path, Reply::Live(receiver));
        Live { lines }
    }

    /// Every request so far except health checks, in arrival order.
    pub fn log(&self) -> Vec<Recorded> {
        self.state.log.borrow().clone()
    }

    /// How many health checks arrived.
    pub fn health_checks(&self) -> usize {
        *self.state.health_checks.borrow()
    }

    /// Waits until `method path` has been received.
    pub async fn wait_for(&self, method: Method, path: &str) -> Recorded {
        let mut log = self.state.log.subscribe();
        let found = log
            .wait_for(|log| log.iter().any(|r| r.method == method && r.path == path))
            .await
            .map(|log| {
                log.iter()
                    .find(|r| r.method == method && r.path == path)
                    .cloned()
            });
        match found {
            Ok(Some(recorded)) => recorded,
            _ => unreachable_setup("the request log", &"closed"),
        }
    }
}

/// Setup failures are test bugs; report them as panics.
#[allow(clippy::panic)]
fn unreachable_setup(what: &str, err: &dyn std::fmt::Display) -> ! {
    panic!("fake supervisor: {what}: {err}")
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_else(|err| unreachable_setup("serialize", &err))
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<FakeBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::GET && path == "/v1/health" {
        state.health_checks.send_modify(|n| *n += 1);
        return json_response(
            StatusCode::OK,
            &to_json(&Health {
                version: pyro_sdk::VERSION.to_owned(),
                pid: std::process::id(),
                socket: "fake".to_owned(),
                running_vms: 0,
            }),
        );
    }
    let bytes = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let reply = state
        .replies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_mut(&(method.clone(), path.clone()))
        .and_then(VecDeque::pop_front);
    state.log.send_modify(|log| {
        log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            body,
        });
    });
    match reply {
        Some(Reply::Json(status, value)) => json_response(status, &value),
        Some(Reply::Lines(lines)) => {
            let mut out = Vec::new();
            for line in lines {
                out.extend(serde_json::to_vec(&line).unwrap_or_default());
                out.push(b'\n');
            }
            ndjson_response(FakeBody {
                first: Some(Bytes::from(out)),
                rest: None,
            })
        }
        Some(Reply::Live(receiver)) => ndjson_response(FakeBody {
            first: None,
            rest: Some(receiver),
        }),
        None => json_response(
            StatusCode::NOT_FOUND,
            &to_json(&ErrorBody::new(
                ErrorCode::NotFound,
                format!("no such API endpoint: {method} {path} (nothing scripted)"),
            )),
        ),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<FakeBody> {
    let mut response = Response::new(FakeBody {
        first: Some(Bytes::from(serde_json::to_vec(value).unwrap_or_default())),
        rest: None,
    });
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn ndjson_response(body: FakeBody) -> Response<FakeBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A response body: some bytes, then (for live streams) whatever the test
/// sends, until it drops its [`Live`].
#[derive(Debug)]
pub struct FakeBody {
    first: Option<Bytes>,
    rest: Option<mpsc::Receiver<Bytes>>,
}

impl hyper::body::Body for FakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        match self.rest.as_mut() {
            None => Poll::Ready(None),
            Some(rest) => rest
                .poll_recv(cx)
                .map(|line| line.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_none()
    }
}

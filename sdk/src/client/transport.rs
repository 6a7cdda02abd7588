//! HTTP/1.1 over the supervisor's Unix socket, and NDJSON event streams.
//!
//! One connection per request: the socket is local, so a connection costs
//! microseconds, and a streaming request then never blocks another.

use std::path::Path;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;

use crate::api::ErrorBody;
use crate::error::SdkError;

/// Sends one request and returns the response, whatever its status.
pub(crate) async fn send(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Response<Incoming>, SdkError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| SdkError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SdkError::Http)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "supervisor connection ended");
        }
    });
    let has_body = body.is_some();
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://pyro{path}"))
        .header(hyper::header::HOST, "pyro");
    if has_body {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|source| SdkError::Request {
            path: path.to_owned(),
            source,
        })?;
    sender.send_request(request).await.map_err(SdkError::Http)
}

/// Sends a request with an optional JSON body and decodes a JSON answer.
pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<&B>,
) -> Result<T, SdkError> {
    let body = body.map(encode_body).transpose()?;
    let response = send(socket, method, path, body).await?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(SdkError::Http)?
        .to_bytes();
    decode(path, status, &bytes)
}

/// Sends a request whose answer is an NDJSON stream.
pub(crate) async fn stream<B: Serialize, T: DeserializeOwned>(
    socket: &Path,
    path: &str,
    body: &B,
) -> Result<EventStream<T>, SdkError> {
    let response = send(socket, Method::POST, path, Some(encode_body(body)?)).await?;
    let status = response.status();
    if !status.is_success() {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(SdkError::Http)?
            .to_bytes();
        return Err(decode::<ErrorBody>(path, status, &bytes).map_or_else(|e| e, SdkError::Api));
    }
    Ok(EventStream {
        path: path.to_owned(),
        body: response.into_body(),
        buffer: BytesMut::new(),
        finished: false,
        _marker: std::marker::PhantomData,
    })
}

fn encode_body<B: Serialize>(body: &B) -> Result<Vec<u8>, SdkError> {
    serde_json::to_vec(body).map_err(|source| SdkError::BadResponse {
        path: "(request body)".to_owned(),
        status: 0,
        source,
    })
}

fn decode<T: DeserializeOwned>(
    path: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, SdkError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|source| SdkError::BadResponse {
            path: path.to_owned(),
            status: status.as_u16(),
            source,
        });
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => Err(SdkError::Api(body)),
        Err(source) => Err(SdkError::BadResponse {
            path: path.to_owned(),
            status: status.as_u16(),
            source,
        }),
    }
}

/// A stream of events, one JSON document per line.
#[derive(Debug)]
pub struct EventStream<T> {
    path: String,
    body: Incoming,
    buffer: BytesMut,
    finished: bool,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> EventStream<T> {
    /// The next event, or `None` when the stream has ended. A line that
    /// does not parse is an error ([`SdkError::BadResponse`]) and the
    /// stream goes on with the next line; a broken connection is an error
    /// and then the end.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::workspace::{ExecEvent, ExecRequest};
    /// use pyro_sdk::api::CommandSpec;
    /// let request = ExecRequest::new(CommandSpec::Shell("for i in 1 2 3; do echo $i; sleep 1; done".into()));
    /// let mut events = client.exec_workspace("0123456789ab", &request).await?;
    /// while let Some(event) = events.next().await {
    ///     if let ExecEvent::Output(chunk) = event? {
    ///         print!("{}", String::from_utf8_lossy(&chunk.bytes().unwrap_or_default()));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<Result<T, SdkError>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.parse(line));
            }
            if self.finished {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let rest = self.buffer.split();
                return Some(self.parse(&rest));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buffer.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(err)) => {
                    self.finished = true;
                    self.buffer.clear();
                    return Some(Err(SdkError::Http(err)));
                }
                None => self.finished = true,
            }
        }
    }

    fn parse(&self, line: &[u8]) -> Result<T, SdkError> {
        serde_json::from_slice(line).map_err(|source| SdkError::BadResponse {
            path: self.path.clone(),
            status: 200,
            source,
        })
    }

    /// The API path this stream answers.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let events = client.pull_environment("debian:12").await?;
    /// assert_eq!(events.path(), "/v1/environments/pull");
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Percent-encodes one path segment (environment names contain `:`).
pub(crate) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("debian:12"), "debian:12");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}

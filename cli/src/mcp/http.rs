//! The streamable HTTP transport: rmcp's `StreamableHttpService` behind a
//! small hyper HTTP/1.1 server, at `http://ADDR:PORT/mcp`.
//!
//! - Loopback addresses only, unless `--allow-non-loopback`; a non-loopback
//!   listener also requires a bearer token (anyone who can reach it could
//!   otherwise run commands and read the allowed roots).
//! - With a token (`--bearer-token` or `PYRO_MCP_TOKEN`), every request must
//!   carry `Authorization: Bearer TOKEN` (compared in constant time) or gets
//!   `401` with `WWW-Authenticate: Bearer`.
//! - On loopback, rmcp's DNS-rebinding protection stays on (the `Host` header
//!   must name a loopback host).
//! - Ctrl-C or SIGTERM stops accepting, cancels the sessions and returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::server::PyroMcp;

/// The endpoint path.
pub const ENDPOINT: &str = "/mcp";

/// Whether the listener may use `addr`; `Err` says why not.
pub fn check_listen(
    addr: SocketAddr,
    allow_non_loopback: bool,
    token: Option<&str>,
) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !allow_non_loopback {
        return Err(format!(
            "--http {addr} is not a loopback address; pass --allow-non-loopback to listen there"
        ));
    }
    if token.is_none() {
        return Err(format!(
            "--http {addr} is reachable from other hosts: set --bearer-token or PYRO_MCP_TOKEN"
        ));
    }
    Ok(())
}

/// Whether an `Authorization` header value carries `token`.
pub fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some(given) = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Body = BoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves MCP over streamable HTTP on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: PyroMcp,
    token: Option<String>,
    open_hosts: bool,
) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    let stop = config.cancellation_token.clone();
    if open_hosts {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(server.session()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token: Option<Arc<str>> = token.map(Arc::from);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let service = service.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let service = service.clone();
                let token = token.clone();
                async move {
                    if request.uri().path() != ENDPOINT {
                        return Ok::<_, Infallible>(plain(
                            StatusCode::NOT_FOUND,
                            "not found: the MCP endpoint is /mcp\n",
                        ));
                    }
                    if let Some(token) = &token {
                        let header = request
                            .headers()
                            .get(hyper::header::AUTHORIZATION)
                            .map(|v| v.as_bytes());
                        if !authorized(header, token) {
                            let mut response = plain(
                                StatusCode::UNAUTHORIZED,
                                "unauthorized: send Authorization: Bearer TOKEN\n",
                            );
                            response.headers_mut().insert(
                                hyper::header::WWW_AUTHENTICATE,
                                hyper::header::HeaderValue::from_static("Bearer"),
                            );
                            return Ok(response);
                        }
                    }
                    Ok(service.handle(request).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
    stop.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn only_loopback_unless_allowed_and_then_only_with_a_token() {
        let local: SocketAddr = "127.0.0.1:7777".parse().unwrap();
        let local6: SocketAddr = "[::1]:7777".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:7777".parse().unwrap();
        assert!(check_listen(local, false, None).is_ok());
        assert!(check_listen(local6, false, None).is_ok());
        assert!(check_listen(public, false, Some("t"))
            .unwrap_err()
            .contains("--allow-non-loopback"));
        assert!(check_listen(public, true, None)
            .unwrap_err()
            .contains("PYRO_MCP_TOKEN"));
        assert!(check_listen(public, true, Some("t")).is_ok());
    }

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(authorized(Some(b"Bearer s3cret"), "s3cret"));
        assert!(authorized(Some(b"bearer s3cret"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some(b"Bearer s3cret2"), "s3cret"));
        assert!(!authorized(Some(b"Basic s3cret"), "s3cret"));
        assert!(!authorized(Some(b"s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}

//! The HTTP/1.1 + JSON API on the supervisor's Unix socket (mode 0600).
//!
//! The endpoint table and every body type are in `pyro_sdk::api`. Handlers
//! are thin: they validate, hand the work to an actor or a blocking thread,
//! and turn errors into the error body. Streaming endpoints answer with
//! newline-delimited JSON fed by a bounded channel, so a slow client slows
//! the producer instead of growing a buffer.
//!
//! # Layout
//!
//! - `routes`: the handlers.
//! - `ndjson`: streaming responses.
//! - `error`: errors as HTTP responses.

mod error;
mod ndjson;
mod routes;
mod workspaces;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use actix_web::{web, App, HttpServer};
use tokio::sync::mpsc;

pub use error::ApiError;

use crate::error::SupervisorError;
use crate::runtime::Runtime;

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// State handed to every handler.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The supervisor's shared state.
    pub runtime: Runtime,
    /// Asks the supervisor to shut down.
    pub shutdown: mpsc::Sender<()>,
}

/// Binds the API on `socket` (which must not exist) and returns the server.
pub fn bind(state: ApiState, socket: &Path) -> Result<actix_web::dev::Server, SupervisorError> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(|err, _req| {
                        ApiError::invalid(format!("invalid request body: {err}")).into()
                    }),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|err, _req| ApiError::invalid(err.to_string()).into()),
            )
            .service(workspaces::scope())
            .service(routes::scope())
            .default_service(web::to(routes::not_found))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .bind_uds(socket)
    .map_err(|source| SupervisorError::Bind {
        socket: socket.to_owned(),
        source,
    })?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| SupervisorError::io("restricting", socket, source))?;
    Ok(server.run())
}

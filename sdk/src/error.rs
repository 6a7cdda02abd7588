//! The SDK's error type: every failure carries a stable code, its message
//! chain and, where there is one, a hint.

use std::path::PathBuf;

use crate::api::{ErrorBody, ErrorCode};
use crate::paths::PathsError;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The supervisor answered with an error.
    #[error("{}", .0.message)]
    Api(ErrorBody),
    /// The supervisor's socket refused the connection.
    #[error("cannot reach the pyro supervisor at {}", socket.display())]
    Connect {
        /// The socket tried.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No supervisor binary was found to start.
    #[error("the pyro-supervisor program was not found (looked at {looked})")]
    SupervisorNotFound {
        /// Where we looked.
        looked: String,
    },
    /// Starting the supervisor failed.
    #[error("starting the pyro supervisor ({}) failed", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The supervisor exited or stayed silent after being started.
    #[error("the pyro supervisor did not come up: {reason}")]
    StartFailed {
        /// What happened, with the tail of its log.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The client and the supervisor are different builds.
    #[error("the running pyro supervisor is version {supervisor}, this client is {client}")]
    VersionMismatch {
        /// The client's version.
        client: String,
        /// The supervisor's version.
        supervisor: String,
    },
    /// The HTTP exchange failed.
    #[error("the request to the pyro supervisor failed")]
    Http(#[source] hyper::Error),
    /// A request could not be built (a bug).
    #[error("cannot build the request for {path}")]
    Request {
        /// The API path.
        path: String,
        /// Why.
        #[source]
        source: hyper::http::Error,
    },
    /// An answer did not parse.
    #[error("the pyro supervisor's answer to {path} (status {status}) is malformed")]
    BadResponse {
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A stream ended without its final event.
    #[error("the pyro supervisor ended the stream for {path} before its result")]
    StreamEnded {
        /// The API path.
        path: String,
    },
    /// The state directories could not be determined.
    #[error(transparent)]
    Paths(#[from] PathsError),
}

impl SdkError {
    /// The stable machine code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Api(body) => body.code,
            Self::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            Self::Connect { .. }
            | Self::SupervisorNotFound { .. }
            | Self::Spawn { .. }
            | Self::StartFailed { .. }
            | Self::Http(_)
            | Self::StreamEnded { .. }
            | Self::Paths(_) => ErrorCode::SupervisorUnavailable,
            Self::Request { .. } | Self::BadResponse { .. } => ErrorCode::Internal,
        }
    }

    /// What to do about it, if anything.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Api(body) => body.hint.clone(),
            Self::SupervisorNotFound { .. } => Some(
                "install pyro with scripts/setup, or set PYRO_SUPERVISOR_BIN to the pyro-supervisor binary"
                    .to_owned(),
            ),
            Self::StartFailed { log, .. } => Some(format!("see the supervisor log at {}", log.display())),
            Self::VersionMismatch { .. } => Some(
                "stop the old supervisor with `pyro supervisor stop` (this stops its VMs) and retry".to_owned(),
            ),
            Self::Connect { .. } | Self::Http(_) | Self::StreamEnded { .. } => Some(
                "check that the supervisor is running with `pyro supervisor status`; its log is in the pyro data directory"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// The error as the API's error body (code, chain, hint).
    pub fn to_body(&self) -> ErrorBody {
        match self {
            Self::Api(body) => body.clone(),
            other => {
                let mut body = ErrorBody::from_error(other.code(), other);
                body.hint = other.hint();
                body
            }
        }
    }
}

//! The SDK's error type: every failure carries a stable code, its message
//! chain and, where there is one, a hint.
//!
//! ```
//! use pyro_sdk::api::ErrorCode;
//! use pyro_sdk::SdkError;
//!
//! let err = SdkError::invalid_request("vcpu_count must be between 1 and 8 (got 9)");
//! assert_eq!(err.code(), ErrorCode::InvalidArgument);
//! assert_eq!(err.to_body().chain(), "vcpu_count must be between 1 and 8 (got 9)");
//! assert!(err.hint().is_some());
//! ```

use std::path::PathBuf;

use crate::api::{ErrorBody, ErrorCode};
use crate::paths::PathsError;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The supervisor answered with an error.
    #[error("{}", .0.message)]
    Api(ErrorBody),
    /// The request failed its `validate()` in the client and was not sent;
    /// the supervisor would have refused it the same way
    /// ([`ErrorCode::InvalidArgument`]).
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, naming the field.
        message: String,
    },
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
    /// The supervisor was asked to stop but has not exited.
    #[error(
        "the pyro supervisor (pid {pid}) is still running {seconds}s after it was asked to stop"
    )]
    StopTimeout {
        /// Its process id.
        pid: u32,
        /// How long we waited.
        seconds: u64,
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
    /// A request refused before it was sent, with what is wrong with it.
    ///
    /// ```
    /// let err = pyro_sdk::SdkError::invalid_request("the command is empty");
    /// assert_eq!(err.to_string(), "the command is empty");
    /// assert_eq!(err.code().as_str(), "invalid_argument");
    /// ```
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
        }
    }

    /// The stable machine code.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// use pyro_sdk::SdkError;
    /// let err = SdkError::Api(ErrorBody::new(ErrorCode::UnknownWorkspace, "workspace x does not exist"));
    /// assert_eq!(err.code(), ErrorCode::UnknownWorkspace);
    /// let err = SdkError::SupervisorNotFound { looked: "/usr/bin/pyro-supervisor".into() };
    /// assert_eq!(err.code(), ErrorCode::SupervisorUnavailable);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Api(body) => body.code,
            Self::InvalidRequest { .. } => ErrorCode::InvalidArgument,
            Self::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            Self::Connect { .. }
            | Self::SupervisorNotFound { .. }
            | Self::Spawn { .. }
            | Self::StartFailed { .. }
            | Self::StopTimeout { .. }
            | Self::Http(_)
            | Self::StreamEnded { .. }
            | Self::Paths(_) => ErrorCode::SupervisorUnavailable,
            Self::Request { .. } | Self::BadResponse { .. } => ErrorCode::Internal,
        }
    }

    /// What to do about it, if anything.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// use pyro_sdk::SdkError;
    /// let body = ErrorBody::new(ErrorCode::UnknownWorkspace, "workspace x does not exist")
    ///     .with_hint("list workspaces with `pyro workspace list`");
    /// assert_eq!(SdkError::Api(body).hint().as_deref(), Some("list workspaces with `pyro workspace list`"));
    /// let err = SdkError::StreamEnded { path: "/v1/run".into() };
    /// assert!(err.hint().unwrap_or_default().contains("pyro supervisor status"));
    /// ```
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Api(body) => body.hint.clone(),
            Self::InvalidRequest { .. } => Some(
                "the request was not sent: fix the field the message names (the request types in pyro_sdk::api document each field's limits)"
                    .to_owned(),
            ),
            Self::SupervisorNotFound { .. } => Some(
                "install pyro with scripts/setup, or set PYRO_SUPERVISOR_BIN to the pyro-supervisor binary"
                    .to_owned(),
            ),
            Self::StartFailed { log, .. } => Some(format!("see the supervisor log at {}", log.display())),
            Self::StopTimeout { pid, log, .. } => Some(format!(
                "it may be stuck stopping a VM; see its log at {}. `kill -9 {pid}` ends it at once (the next supervisor cleans up after it)",
                log.display()
            )),
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

    /// The error as the API's error body (code, chain, hint), as the CLI
    /// prints it with `--json`.
    ///
    /// ```
    /// use pyro_sdk::api::ErrorCode;
    /// use pyro_sdk::SdkError;
    /// let err = SdkError::Connect {
    ///     socket: "/run/user/1000/pyro/supervisor.sock".into(),
    ///     source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    /// };
    /// let body = err.to_body();
    /// assert_eq!(body.code, ErrorCode::SupervisorUnavailable);
    /// assert_eq!(body.messages.len(), 2);
    /// assert!(body.chain().starts_with("cannot reach the pyro supervisor at /run/user/1000/pyro/supervisor.sock: "));
    /// assert_eq!(body.hint, err.hint());
    /// ```
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

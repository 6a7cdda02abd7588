//! The error body every failed API call returns.

use serde::{Deserialize, Serialize};

/// Stable, machine-readable error codes. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A request field is out of range or malformed.
    InvalidArgument,
    /// The named environment is not in the catalog.
    UnknownEnvironment,
    /// The named VM does not exist.
    UnknownVm,
    /// The named workspace does not exist.
    UnknownWorkspace,
    /// The named object (snapshot, shell, service, path) does not exist.
    NotFound,
    /// The object already exists, or the operation conflicts with its state.
    Conflict,
    /// The environment could not be installed.
    EnvironmentInstallFailed,
    /// No backend can boot a guest on this host.
    BackendUnavailable,
    /// The VM did not boot.
    VmBootFailed,
    /// The VM or its agent stopped answering, or died.
    GuestUnavailable,
    /// The guest agent reported a failure.
    GuestError,
    /// A configured limit was reached.
    LimitReached,
    /// The supervisor could not be reached or started.
    SupervisorUnavailable,
    /// The client and the supervisor are different versions.
    VersionMismatch,
    /// A bug or an unexpected host failure.
    Internal,
}

impl ErrorCode {
    /// The snake_case name, as on the wire.
    ///
    /// ```
    /// use pyro_sdk::api::ErrorCode;
    /// assert_eq!(ErrorCode::UnknownWorkspace.as_str(), "unknown_workspace");
    /// assert_eq!(ErrorCode::InvalidArgument.to_string(), "invalid_argument");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::UnknownEnvironment => "unknown_environment",
            Self::UnknownVm => "unknown_vm",
            Self::UnknownWorkspace => "unknown_workspace",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::EnvironmentInstallFailed => "environment_install_failed",
            Self::BackendUnavailable => "backend_unavailable",
            Self::VmBootFailed => "vm_boot_failed",
            Self::GuestUnavailable => "guest_unavailable",
            Self::GuestError => "guest_error",
            Self::LimitReached => "limit_reached",
            Self::SupervisorUnavailable => "supervisor_unavailable",
            Self::VersionMismatch => "version_mismatch",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure, as the supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What kind of failure.
    pub code: ErrorCode,
    /// The outermost message; the same as `messages[0]`.
    pub message: String,
    /// The whole chain, outermost first (each cause once).
    pub messages: Vec<String>,
    /// What to do about it, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Multi-line context, such as the last lines of a guest console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ErrorBody {
    /// An error with a single message.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// let body = ErrorBody::new(ErrorCode::Conflict, "workspace 0123456789ab is stopped");
    /// assert_eq!(body.messages, [body.message.clone()]);
    /// assert!(body.hint.is_none());
    /// ```
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code,
            messages: vec![message.clone()],
            message,
            hint: None,
            detail: None,
        }
    }

    /// Adds a hint.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// let body = ErrorBody::new(ErrorCode::Conflict, "workspace 0123456789ab is stopped")
    ///     .with_hint("start it with `pyro workspace start 0123456789ab`");
    /// assert_eq!(body.hint.as_deref(), Some("start it with `pyro workspace start 0123456789ab`"));
    /// ```
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Builds the body from an error and its `source()` chain.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// let err = std::io::Error::new(std::io::ErrorKind::NotFound, "qemu-system-x86_64 not found");
    /// let body = ErrorBody::from_error(ErrorCode::BackendUnavailable, &err);
    /// assert_eq!(body.message, "qemu-system-x86_64 not found");
    /// assert_eq!(body.code.as_str(), "backend_unavailable");
    /// ```
    pub fn from_error(code: ErrorCode, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut messages = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            let text = e.to_string();
            if messages.last() != Some(&text) {
                messages.push(text);
            }
            current = e.source();
        }
        Self {
            code,
            message: messages.first().cloned().unwrap_or_default(),
            messages,
            hint: None,
            detail: None,
        }
    }

    /// The chain joined as one line: `outer: cause: root cause`.
    ///
    /// ```
    /// use pyro_sdk::api::{ErrorBody, ErrorCode};
    /// let mut body = ErrorBody::new(ErrorCode::VmBootFailed, "starting vm abc failed");
    /// body.messages.push("qemu exited with status 1".into());
    /// assert_eq!(body.chain(), "starting vm abc failed: qemu exited with status 1");
    /// ```
    pub fn chain(&self) -> String {
        self.messages.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("starting vm abc failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn walks_the_source_chain() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "qemu not found",
        ));
        let body = ErrorBody::from_error(ErrorCode::VmBootFailed, &err);
        assert_eq!(
            body.messages,
            vec!["starting vm abc failed", "qemu not found"]
        );
        assert_eq!(body.chain(), "starting vm abc failed: qemu not found");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["code"], "vm_boot_failed");
        assert!(json.get("hint").is_none());
    }
}

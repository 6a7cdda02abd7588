//! How the CLI talks to people and scripts.
//!
//! - Human mode: results on stdout; `[prefix] key=value` summaries and
//!   progress on stderr where stdout carries command output; errors as
//!   `[error] message`, then the hint and any detail, on stderr; exit 1.
//! - `--json`: one JSON document on stdout (pretty, sorted keys); errors as
//!   `{"ok": false, "error": {code, message, messages, hint}}`; exit 1.

use std::io::Write;
use std::process::ExitCode;

use pyro_sdk::api::{ErrorBody, ErrorCode};
use pyro_sdk::SdkError;
use serde::Serialize;

/// A failed command, ready to print.
#[derive(Debug)]
pub struct CliError(pub ErrorBody);

impl From<SdkError> for CliError {
    fn from(err: SdkError) -> Self {
        Self(err.to_body())
    }
}

impl CliError {
    /// A usage or input error found by the CLI itself.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(ErrorBody::new(ErrorCode::InvalidArgument, message))
    }

    /// Prints the error in the chosen mode.
    pub fn print(&self, json: bool) {
        if json {
            print_json(&serde_json::json!({"ok": false, "error": self.0}));
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[error] {}", self.0.chain());
        if let Some(detail) = &self.0.detail {
            for line in detail.lines() {
                let _ = writeln!(err, "  {line}");
            }
        }
        if let Some(hint) = &self.0.hint {
            let _ = writeln!(err, "  hint: {hint}");
        }
    }
}

/// What a command returns: an exit code, or an error to print.
pub type Outcome = Result<ExitCode, CliError>;

/// Prints `value` as pretty JSON with sorted keys.
pub fn print_json<T: Serialize>(value: &T) {
    // serde_json::Value's object map is sorted (no preserve_order feature).
    let sorted = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let text = serde_json::to_string_pretty(&sorted).unwrap_or_else(|_| "null".to_owned());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// A line on stdout.
pub fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A line on stderr.
pub fn err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The process exit code for a guest command's exit code.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

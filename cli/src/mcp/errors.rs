//! Tool errors: every failure of a tool call becomes an MCP tool error (a
//! result with `isError: true`), never a protocol error, so the model sees
//! what went wrong and can correct itself.
//!
//! The result carries the API's [`ErrorBody`] as structured content
//! (`{"ok": false, "error": {code, message, messages, hint, detail}}`, the
//! same document as the CLI's `--json` errors) and a text rendering: the
//! message chain with its stable code, then the hint and any detail.
//!
//! Messages never contain argument values other than paths, names and
//! numbers the caller gave; supervisor errors are redacted by the
//! supervisor. Argument-parsing errors from rmcp are rewritten by
//! [`from_argument_error`], which also drops the offending value that serde
//! quotes in "invalid type/value" messages (it could be a secret passed in
//! the wrong place).

use pyro_sdk::api::{ErrorBody, ErrorCode};
use pyro_sdk::SdkError;
use rmcp::model::{CallToolResult, ContentBlock};

/// A failed tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub ErrorBody);

impl From<SdkError> for ToolError {
    fn from(err: SdkError) -> Self {
        Self(err.to_body())
    }
}

impl From<ErrorBody> for ToolError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

impl ToolError {
    /// Bad input found by the MCP layer itself.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(ErrorBody::new(ErrorCode::InvalidArgument, message))
    }

    /// Bad input, with what to do about it.
    pub fn invalid_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self(ErrorBody::new(ErrorCode::InvalidArgument, message).with_hint(hint))
    }

    /// The client cancelled the call (the answer is normally not sent).
    pub fn cancelled(what: &str) -> Self {
        Self(ErrorBody::new(
            ErrorCode::Conflict,
            format!("{what} was cancelled by the client"),
        ))
    }

    /// The stable code.
    #[cfg(test)]
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The text rendering: `error [code]: chain`, then hint and detail.
    pub fn text(&self) -> String {
        let mut text = format!("error [{}]: {}", self.0.code, self.0.chain());
        if let Some(hint) = &self.0.hint {
            text.push_str("\nhint: ");
            text.push_str(hint);
        }
        if let Some(detail) = &self.0.detail {
            text.push_str("\ndetail:\n");
            text.push_str(detail);
        }
        text
    }

    /// The MCP tool error result.
    pub fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(self.text())]);
        result.structured_content = Some(serde_json::json!({"ok": false, "error": self.0}));
        result
    }
}

/// The prefix rmcp gives argument deserialization failures.
const ARGUMENT_ERROR_PREFIX: &str = "failed to deserialize parameters: ";

/// Rewrites rmcp's argument error result (plain text, no code) as one of
/// ours, if `result` is one; otherwise returns it unchanged.
pub fn from_argument_error(tool: &str, result: CallToolResult) -> CallToolResult {
    if result.is_error != Some(true) || result.structured_content.is_some() {
        return result;
    }
    let Some(text) = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
    else {
        return result;
    };
    let Some(detail) = text.strip_prefix(ARGUMENT_ERROR_PREFIX) else {
        return result;
    };
    ToolError::invalid_with_hint(
        format!("invalid arguments for {tool}: {}", without_values(detail)),
        format!("see the input schema of {tool} in tools/list"),
    )
    .into_result()
}

/// Drops the value serde quotes in `invalid type: string "...", expected`
/// and `invalid value: ...` messages, keeping its kind.
pub fn without_values(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        if let Some(start) = message.find(marker) {
            let after = start + marker.len();
            if let Some(end_rel) = message[after..].find(", expected") {
                let unexpected = &message[after..after + end_rel];
                // "string \"x\"", "integer `5`", "map", "sequence": keep the kind word.
                let kind = unexpected.split([' ', '`', '"']).next().unwrap_or("value");
                return format!(
                    "{}{marker}{kind}{}",
                    &message[..start],
                    &message[after + end_rel..]
                );
            }
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn api_errors_keep_code_chain_and_hint() {
        let mut body = ErrorBody::new(ErrorCode::UnknownWorkspace, "workspace abc does not exist");
        body.messages.push("no such record".into());
        let body = body.with_hint("list workspaces with workspace_list");
        let result = ToolError::from(SdkError::Api(body.clone())).into_result();
        assert_eq!(result.is_error, Some(true));
        let structured = result.structured_content.clone().unwrap();
        assert_eq!(structured["ok"], false);
        assert_eq!(structured["error"]["code"], "unknown_workspace");
        assert_eq!(
            structured["error"]["messages"],
            serde_json::json!(["workspace abc does not exist", "no such record"])
        );
        assert_eq!(
            structured["error"]["hint"],
            "list workspaces with workspace_list"
        );
        let text = &result.content[0].as_text().unwrap().text;
        assert_eq!(
            text,
            "error [unknown_workspace]: workspace abc does not exist: no such record\nhint: list workspaces with workspace_list"
        );
    }

    #[test]
    fn client_side_errors_get_their_code_and_hint() {
        let err = SdkError::Connect {
            socket: "/run/pyro/pyro.sock".into(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        let tool = ToolError::from(err);
        assert_eq!(tool.code(), ErrorCode::SupervisorUnavailable);
        assert_eq!(
            tool.0.messages,
            [
                "cannot reach the pyro supervisor at /run/pyro/pyro.sock",
                "refused"
            ]
        );
        assert!(tool
            .text()
            .contains("\nhint: check that the supervisor is running"));
    }

    #[test]
    fn argument_errors_become_invalid_argument_without_values() {
        let raw = CallToolResult::error(vec![ContentBlock::text(
            "failed to deserialize parameters: invalid type: string \"hunter2\", expected a map",
        )]);
        let result = from_argument_error("workspace_create", raw);
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["error"]["code"], "invalid_argument");
        let message = structured["error"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            "invalid arguments for workspace_create: invalid type: string, expected a map"
        );
        assert!(!message.contains("hunter2"));

        let missing = CallToolResult::error(vec![ContentBlock::text(
            "failed to deserialize parameters: missing field `environment`",
        )]);
        let result = from_argument_error("vm_run", missing);
        assert!(result.structured_content.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("missing field `environment`"));

        // Our own errors pass through untouched.
        let ours = ToolError::invalid("x").into_result();
        assert_eq!(from_argument_error("vm_run", ours.clone()), ours);
    }

    #[test]
    fn values_are_dropped_from_serde_messages() {
        assert_eq!(
            without_values("invalid value: integer `-3`, expected u8 at line 1"),
            "invalid value: integer, expected u8 at line 1"
        );
        assert_eq!(
            without_values("unknown field `vcpus`, expected one of `a`, `b`"),
            "unknown field `vcpus`, expected one of `a`, `b`"
        );
    }
}

//! Tool results: the SDK's JSON types as structured content, plus the same
//! JSON as text (what the MCP spec asks of tools with structured output, and
//! what clients that ignore `structuredContent` show the model).
//!
//! Where the reference's result has a key our type lacks (`execution_mode`
//! on file reads, `size_bytes` on writes, nested `workspace_sync` and
//! `snapshot` objects), [`add_missing`] adds it beside ours, so agents
//! written for the reference find what they look for.
//!
//! Command output ([`OutputCollector`]) is kept up to [`MAX_OUTPUT_BYTES`]
//! per stream and returned as text (invalid UTF-8 replaced);
//! `output_truncated` says when more was produced.

use pyro_sdk::api::{OutputChunk, StreamName};
use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::ToolError;

/// Output kept per stream in a tool result (the rest is counted, not kept).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// The result of a tool call, success or error.
pub fn respond<T: Serialize>(result: Result<T, ToolError>) -> CallToolResult {
    match result.and_then(|value| to_value(&value)) {
        Ok(value) => success(value),
        Err(err) => err.into_result(),
    }
}

/// A success result carrying `value`.
pub fn success(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// Serializes a result type.
pub fn to_value<T: Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|err| {
        ToolError(pyro_sdk::api::ErrorBody::new(
            pyro_sdk::api::ErrorCode::Internal,
            format!("the result could not be encoded: {err}"),
        ))
    })
}

/// Adds each `(key, value)` to the object `target` unless it is there.
pub fn add_missing(
    mut target: Value,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Value {
    if let Value::Object(map) = &mut target {
        for (key, value) in fields {
            map.entry(key).or_insert(value);
        }
    }
    target
}

/// The object `value` with only `keys` (for nested reference shapes).
pub fn pick(value: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for key in keys {
        if let Some(v) = value.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

/// `value` with the fields of its object `key` also at the top level (where
/// not already there): the reference's "payload plus extras" shapes.
pub fn lift(mut value: Value, key: &str) -> Value {
    let fields: Vec<(String, Value)> = match value.get(key) {
        Some(Value::Object(inner)) => inner.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    if let Value::Object(map) = &mut value {
        for (name, field) in fields {
            map.entry(name).or_insert(field);
        }
    }
    value
}

/// Collects a command's output for a tool result.
#[derive(Debug, Default)]
pub struct OutputCollector {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: bool,
    chunks: u64,
    bytes: u64,
}

impl OutputCollector {
    /// Adds one streamed chunk.
    pub fn push(&mut self, chunk: &OutputChunk) {
        let data = chunk.bytes().unwrap_or_default();
        self.chunks += 1;
        self.bytes += data.len() as u64;
        let keep = match chunk.stream {
            StreamName::Stdout => &mut self.stdout,
            StreamName::Stderr => &mut self.stderr,
        };
        let room = MAX_OUTPUT_BYTES.saturating_sub(keep.len());
        if data.len() > room {
            self.truncated = true;
        }
        keep.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// `N output chunks (B bytes)`, for progress messages.
    pub fn describe(&self) -> String {
        format!("{} output chunks ({} bytes)", self.chunks, self.bytes)
    }

    /// How many chunks arrived.
    #[cfg(test)]
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// `summary` with `stdout`, `stderr` and `output_truncated` added.
    pub fn finish<T: Serialize>(self, summary: &T) -> Result<Value, ToolError> {
        let value = to_value(summary)?;
        Ok(add_missing(
            value,
            [
                (
                    "stdout",
                    Value::String(String::from_utf8_lossy(&self.stdout).into_owned()),
                ),
                (
                    "stderr",
                    Value::String(String::from_utf8_lossy(&self.stderr).into_owned()),
                ),
                ("output_truncated", Value::Bool(self.truncated)),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn success_has_structured_content_and_the_same_json_as_text() {
        let result = respond::<Value>(Ok(serde_json::json!({"workspace_id": "ab", "count": 2})));
        assert_eq!(result.is_error, Some(false));
        let structured = result.structured_content.clone().unwrap();
        let text: Value = serde_json::from_str(&result.content[0].as_text().unwrap().text).unwrap();
        assert_eq!(text, structured);
        let failed = respond::<Value>(Err(ToolError::invalid("bad")));
        assert_eq!(failed.is_error, Some(true));
    }

    #[test]
    fn output_is_collected_per_stream_and_capped() {
        let mut out = OutputCollector::default();
        out.push(&OutputChunk::new(StreamName::Stdout, b"hel"));
        out.push(&OutputChunk::new(StreamName::Stderr, b"warn\n"));
        out.push(&OutputChunk::new(StreamName::Stdout, b"lo\n"));
        assert_eq!(out.chunks(), 3);
        assert_eq!(out.describe(), "3 output chunks (11 bytes)");
        let value = out.finish(&serde_json::json!({"exit_code": 0})).unwrap();
        assert_eq!(value["stdout"], "hello\n");
        assert_eq!(value["stderr"], "warn\n");
        assert_eq!(value["output_truncated"], false);
        assert_eq!(value["exit_code"], 0);

        let mut big = OutputCollector::default();
        let chunk = vec![b'x'; MAX_OUTPUT_BYTES / 2 + 1];
        for _ in 0..3 {
            big.push(&OutputChunk::new(StreamName::Stdout, &chunk));
        }
        let value = big.finish(&serde_json::json!({})).unwrap();
        assert_eq!(value["stdout"].as_str().unwrap().len(), MAX_OUTPUT_BYTES);
        assert_eq!(value["output_truncated"], true);
    }

    #[test]
    fn reference_keys_are_added_not_overwritten() {
        let value = add_missing(
            serde_json::json!({"a": 1}),
            [("a", Value::from(2)), ("b", Value::from(3))],
        );
        assert_eq!(value, serde_json::json!({"a": 1, "b": 3}));
        assert_eq!(pick(&value, &["b", "c"]), serde_json::json!({"b": 3}));
        let lifted = lift(
            serde_json::json!({"a": 0, "inner": {"a": 1, "b": 2}}),
            "inner",
        );
        assert_eq!(lifted["a"], 0);
        assert_eq!(lifted["b"], 2);
        assert_eq!(lifted["inner"]["a"], 1);
    }
}

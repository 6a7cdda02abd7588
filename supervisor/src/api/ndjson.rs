//! Streaming responses: one JSON document per line.
//!
//! The producer writes into a bounded channel; the response body reads it.
//! When the client disconnects, the body is dropped, the channel closes, and
//! the producer's next send fails, which is how producers notice.

use std::convert::Infallible;

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use pyro_actors::secrets::redactor::Redactor;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A streaming 200 response fed by `events`.
pub fn response<T: Serialize + 'static>(events: mpsc::Receiver<T>) -> HttpResponse {
    redacted_response(events, Redactor::default())
}

/// A streaming 200 response fed by `events`, each line passed through
/// `redactor` (raw output inside the events was redacted before it was
/// encoded; this catches every other field).
pub fn redacted_response<T: Serialize + 'static>(
    events: mpsc::Receiver<T>,
    redactor: Redactor,
) -> HttpResponse {
    let body = ReceiverStream::new(events).map(move |event| {
        let line = serde_json::to_vec(&event).unwrap_or_else(|err| {
            serde_json::to_vec(&serde_json::json!({
                "event": "error",
                "code": "internal",
                "message": format!("event could not be encoded: {err}"),
                "messages": [],
            }))
            .unwrap_or_default()
        });
        let mut line = redactor.redact(&line).into_owned();
        line.push(b'\n');
        Ok::<Bytes, Infallible>(Bytes::from(line))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

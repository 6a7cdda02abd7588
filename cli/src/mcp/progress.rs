//! Progress notifications and cancellation for long tool calls.
//!
//! - [`Progress`] sends `notifications/progress` when (and only when) the
//!   client put a progress token in the request's `_meta`. Each notification
//!   has a strictly increasing `progress` number and a short message (a
//!   create phase, an environment install step, an output chunk count, a
//!   heartbeat). Output-driven notifications are throttled to a few per
//!   second. Notifications are sent from the tool call's own task, which is
//!   how rmcp associates them with the request (over streamable HTTP they go
//!   out on that request's response stream).
//! - [`cancellable`] races a future against the request's cancellation
//!   token: on `notifications/cancelled` (or, over HTTP, the client dropping
//!   the request) the future is dropped, which closes its supervisor
//!   connection, and the call ends at once. rmcp does not send an answer to a
//!   cancelled request.
//! - [`with_heartbeat`] reports progress every few seconds while a call
//!   without its own progress (sync push, reset) runs, so clients that extend
//!   timeouts on progress keep waiting.

use std::future::Future;
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};

use super::errors::ToolError;

/// The least time between two output-driven notifications.
const OUTPUT_INTERVAL: Duration = Duration::from_millis(500);

/// How often a heartbeat is sent while a call without progress runs.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Where progress of one tool call goes.
#[derive(Debug)]
pub struct Progress {
    target: Option<(Peer<RoleServer>, ProgressToken)>,
    step: u64,
    last_sent: Option<Instant>,
    started: Instant,
}

impl Progress {
    /// Progress for the call `context` belongs to (silent without a token).
    pub fn new(context: &RequestContext<RoleServer>) -> Self {
        let target = context
            .meta
            .get_progress_token()
            .map(|token| (context.peer.clone(), token));
        Self::with_target(target)
    }

    /// Progress that goes nowhere.
    #[cfg(test)]
    pub fn silent() -> Self {
        Self::with_target(None)
    }

    fn with_target(target: Option<(Peer<RoleServer>, ProgressToken)>) -> Self {
        Self {
            target,
            step: 0,
            last_sent: None,
            started: Instant::now(),
        }
    }

    /// Whether the client asked for progress.
    pub fn wanted(&self) -> bool {
        self.target.is_some()
    }

    /// How many notifications have been sent (or would have been).
    #[cfg(test)]
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Seconds since the call started.
    pub fn elapsed_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Sends one notification.
    pub async fn report(&mut self, message: impl Into<String>) {
        self.step += 1;
        self.last_sent = Some(Instant::now());
        if let Some((peer, token)) = &self.target {
            let param = ProgressNotificationParam::new(token.clone(), self.step as f64)
                .with_message(message.into());
            // A client that went away is noticed by the call itself.
            let _ = peer.notify_progress(param).await;
        }
    }

    /// Sends a notification unless one went out very recently.
    pub async fn throttled(&mut self, message: impl FnOnce() -> String) {
        if !self.wanted() {
            return;
        }
        if self
            .last_sent
            .is_some_and(|last| last.elapsed() < OUTPUT_INTERVAL)
        {
            return;
        }
        self.report(message()).await;
    }
}

/// Runs `work` until it finishes or the call is cancelled.
pub async fn cancellable<T>(
    context: &RequestContext<RoleServer>,
    what: &str,
    work: impl Future<Output = Result<T, ToolError>>,
) -> Result<T, ToolError> {
    tokio::select! {
        biased;
        () = context.ct.cancelled() => Err(ToolError::cancelled(what)),
        result = work => result,
    }
}

/// Runs `work`, reporting `what: running (N s)` every [`HEARTBEAT`] while it
/// runs, and `what: done` at the end.
pub async fn with_heartbeat<T>(
    progress: &mut Progress,
    what: &str,
    work: impl Future<Output = T>,
) -> T {
    progress.report(format!("{what}: started")).await;
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.tick().await;
    loop {
        tokio::select! {
            result = &mut work => {
                progress.report(format!("{what}: done")).await;
                return result;
            }
            _ = ticker.tick() => {
                let secs = progress.elapsed_secs();
                progress.report(format!("{what}: running ({secs} s)")).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn silent_progress_counts_but_sends_nothing() {
        let mut progress = Progress::silent();
        assert!(!progress.wanted());
        progress.report("a").await;
        progress.throttled(unreachable_message).await;
        assert_eq!(progress.steps(), 1);
    }

    fn unreachable_message() -> String {
        panic!("a silent progress must not build messages")
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_run_while_the_work_runs() {
        let mut progress = Progress::silent();
        let value = with_heartbeat(&mut progress, "reset", async {
            tokio::time::sleep(HEARTBEAT * 3 + Duration::from_millis(10)).await;
            7
        })
        .await;
        assert_eq!(value, 7);
        // started, three heartbeats, done.
        assert_eq!(progress.steps(), 5);
    }
}

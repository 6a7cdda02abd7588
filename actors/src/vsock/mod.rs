//! The vsock bridge: channels to one VM's guest agent, and its health.
//!
//! [`VsockBridgeActor`] lives as long as its VM runs. It hands out
//! connections ([`OpenChannel`]) and pings the agent on an interval; after
//! [`health::UNRESPONSIVE_AFTER`] failed pings in a row it tells its owner
//! once with [`AgentUnresponsive`]. The decision itself lives in
//! [`health::HealthTracker`], plain code tested without actix.

pub mod client;
pub mod health;
pub mod ready;
pub mod session_ops;
pub mod workspace_ops;

use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;

pub use client::{ExecEvent, ExecStream, GuestConnection};
use health::{HealthTracker, HealthVerdict};

use crate::error::Result;

/// How often a running VM's agent is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Ask for a fresh, handshaken connection to the agent.
#[derive(Debug, Message)]
#[rtype(result = "Result<GuestConnection>")]
pub struct OpenChannel;

/// Ends the bridge (sent when its VM stops).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopBridge;

/// Sent to the owner when the agent stopped answering pings.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AgentUnresponsive {
    /// The VM.
    pub vm_id: String,
    /// Consecutive failed pings.
    pub failed_pings: u32,
    /// The last failure.
    pub last_error: String,
}

/// Channels to one VM's guest agent.
#[derive(Debug)]
pub struct VsockBridgeActor {
    vm_id: String,
    socket: PathBuf,
    owner: Recipient<AgentUnresponsive>,
    health: HealthTracker,
    ping_interval: Duration,
}

impl VsockBridgeActor {
    /// A bridge to the agent behind `socket` (the VM's hybrid-vsock socket).
    pub fn new(vm_id: String, socket: PathBuf, owner: Recipient<AgentUnresponsive>) -> Self {
        Self {
            vm_id,
            socket,
            owner,
            health: HealthTracker::default(),
            ping_interval: PING_INTERVAL,
        }
    }

    /// Overrides the ping interval (tests).
    #[must_use]
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    fn ping(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.clone();
        let ping = async move { GuestConnection::connect(&socket).await?.ping().await };
        ctx.spawn(ping.into_actor(self).map(|result, act, _ctx| {
            let verdict = match &result {
                Ok(_) => act.health.record_success(),
                Err(err) => act.health.record_failure(err.to_string()),
            };
            if let HealthVerdict::BecameUnresponsive { failed_pings, last_error } = verdict {
                tracing::warn!(vm_id = %act.vm_id, failed_pings, %last_error, "guest agent stopped answering");
                let owner = act.owner.clone();
                let message = AgentUnresponsive {
                    vm_id: act.vm_id.clone(),
                    failed_pings,
                    last_error,
                };
                actix::spawn(async move {
                    let _ = owner.send(message).await;
                });
            }
        }));
    }
}

impl Actor for VsockBridgeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.ping_interval, |act, ctx| act.ping(ctx));
    }
}

impl Handler<OpenChannel> for VsockBridgeActor {
    type Result = ResponseFuture<Result<GuestConnection>>;

    fn handle(&mut self, _msg: OpenChannel, _ctx: &mut Self::Context) -> Self::Result {
        let socket = self.socket.clone();
        Box::pin(async move { GuestConnection::connect(&socket).await })
    }
}

impl Handler<StopBridge> for VsockBridgeActor {
    type Result = ();

    fn handle(&mut self, _msg: StopBridge, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

//! Shells and services on the host end of a guest connection.
//!
//! Each method consumes a handshaken [`GuestConnection`] (one operation per
//! connection), like the workspace operations. A guest
//! [`Response::Error`] becomes [`ActorError::Guest`] with the guest's kind
//! and message.
//!
//! Waits are bounded by what the guest does: quick operations by
//! [`REPLY_TIMEOUT`]; [`GuestConnection::service_start`] by the request's
//! readiness timeout plus [`START_MARGIN`] (the guest answers when the
//! service is ready, failed, or ran out of time); a stop by its grace
//! period plus a margin. The long-lived streams
//! ([`ShellAttachment`], a following [`ServiceLogStream`]) and
//! [`GuestConnection::service_watch`] wait as long as it takes; dropping
//! them closes the connection, which the guest notices and stops.

use std::time::Duration;

use pyro_guest_protocol::{
    OutputStream, Request, Response, ServiceInfo, ServiceLogsSummary, ServiceStartRequest,
    ServiceStarted, ShellInfo, ShellOpenRequest, ShellSignal, Termination,
};

use super::client::GuestConnection;
use crate::error::{ActorError, Result};

/// The longest wait for the answer to a quick shell or service operation.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than the readiness timeout a start may take: the last
/// check, and killing the group on a timeout.
pub const START_MARGIN: Duration = Duration::from_secs(20);

/// The guest's own bound on a shell close: 5 s after `SIGHUP`, 5 s after
/// `SIGKILL`; the host allows this plus [`REPLY_TIMEOUT`].
const SHELL_CLOSE_BOUND: Duration = Duration::from_secs(10);

/// The guest's bound after `SIGKILL` when stopping a service.
const STOP_KILL_BOUND: Duration = Duration::from_secs(5);

/// What an attached shell produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Terminal output starting at `offset` (bytes since the shell
    /// started).
    Output {
        /// The offset of `data[0]`.
        offset: u64,
        /// The raw bytes.
        data: Vec<u8>,
    },
    /// The guest no longer held `lost_bytes` bytes from `offset`; output
    /// continues at `offset + lost_bytes`.
    Lost {
        /// The first byte lost.
        offset: u64,
        /// How many.
        lost_bytes: u64,
    },
    /// The shell ended; no more events follow.
    Exited(Termination),
}

/// A live view of one shell's output.
#[derive(Debug)]
pub struct ShellAttachment {
    conn: GuestConnection,
    info: ShellInfo,
}

impl ShellAttachment {
    /// The shell as it was when the attach started.
    pub fn info(&self) -> &ShellInfo {
        &self.info
    }

    /// The next event, as soon as the guest reads it; waits as long as it
    /// takes. After [`ShellEvent::Exited`] the attachment is done.
    pub async fn next(&mut self) -> Result<ShellEvent> {
        const DURING: &str = "reading shell output";
        match self.conn.recv::<Response>().await? {
            Response::ShellOutput { offset, data } => Ok(ShellEvent::Output { offset, data }),
            Response::ShellOutputLost { offset, lost_bytes } => {
                Ok(ShellEvent::Lost { offset, lost_bytes })
            }
            Response::ShellExited(exit) => Ok(ShellEvent::Exited(exit)),
            other => Err(refusal(DURING, other)),
        }
    }
}

/// What a service log stream produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLogEvent {
    /// One chunk as the service wrote it, in arrival order.
    Record(OutputStream, Vec<u8>),
    /// The end of the stream; no more events follow.
    Done(ServiceLogsSummary),
}

/// A service's log records, streamed.
#[derive(Debug)]
pub struct ServiceLogStream {
    conn: GuestConnection,
    follow: bool,
}

impl ServiceLogStream {
    /// The next record, or the end. Without follow each frame is awaited
    /// for at most [`REPLY_TIMEOUT`]; with follow, as long as the service
    /// runs. An unknown service is reported here, by the first call.
    pub async fn next(&mut self) -> Result<ServiceLogEvent> {
        const DURING: &str = "reading service logs";
        let frame = if self.follow {
            self.conn.recv::<Response>().await?
        } else {
            self.conn.recv_within(REPLY_TIMEOUT, DURING).await?
        };
        match frame {
            Response::Output { stream, data } => Ok(ServiceLogEvent::Record(stream, data)),
            Response::ServiceLogsDone(summary) => Ok(ServiceLogEvent::Done(summary)),
            other => Err(refusal(DURING, other)),
        }
    }
}

/// How a stopped service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceStop {
    /// Its exit.
    pub exit: Termination,
    /// Whether `SIGKILL` was needed after the grace period.
    pub killed: bool,
}

impl GuestConnection {
    /// Starts a shell; returns its process id.
    pub async fn shell_open(mut self, request: ShellOpenRequest) -> Result<u32> {
        const DURING: &str = "opening a shell";
        match self
            .session_ask(&Request::ShellOpen(request), REPLY_TIMEOUT, DURING)
            .await?
        {
            Response::ShellOpened { pid } => Ok(pid),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Attaches to a shell's output from `from_offset` (bytes since the
    /// shell started).
    pub async fn shell_attach(
        mut self,
        shell_id: &str,
        from_offset: u64,
    ) -> Result<ShellAttachment> {
        const DURING: &str = "attaching to a shell";
        let request = Request::ShellAttach {
            shell_id: shell_id.to_owned(),
            from_offset,
        };
        match self.session_ask(&request, REPLY_TIMEOUT, DURING).await? {
            Response::ShellAttached(info) => Ok(ShellAttachment { conn: self, info }),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Types `data` into a shell; at most
    /// [`pyro_guest_protocol::SHELL_WRITE_MAX_BYTES`] per call.
    pub async fn shell_write(mut self, shell_id: &str, data: Vec<u8>) -> Result<()> {
        let request = Request::ShellWrite {
            shell_id: shell_id.to_owned(),
            data,
        };
        self.session_done(&request, REPLY_TIMEOUT, "writing to a shell")
            .await
    }

    /// Signals the shell's foreground process group, as a terminal would.
    pub async fn shell_signal(mut self, shell_id: &str, signal: ShellSignal) -> Result<()> {
        let request = Request::ShellSignal {
            shell_id: shell_id.to_owned(),
            signal,
        };
        self.session_done(&request, REPLY_TIMEOUT, "signalling a shell")
            .await
    }

    /// Changes a shell's window size.
    pub async fn shell_resize(mut self, shell_id: &str, cols: u16, rows: u16) -> Result<()> {
        let request = Request::ShellResize {
            shell_id: shell_id.to_owned(),
            cols,
            rows,
        };
        self.session_done(&request, REPLY_TIMEOUT, "resizing a shell")
            .await
    }

    /// Hangs a shell up (killing it if it does not go) and has the guest
    /// forget it.
    pub async fn shell_close(mut self, shell_id: &str) -> Result<()> {
        let request = Request::ShellClose {
            shell_id: shell_id.to_owned(),
        };
        self.session_done(
            &request,
            SHELL_CLOSE_BOUND + REPLY_TIMEOUT,
            "closing a shell",
        )
        .await
    }

    /// The shells the guest knows, by id.
    pub async fn shell_list(mut self) -> Result<Vec<ShellInfo>> {
        const DURING: &str = "listing shells";
        match self
            .session_ask(&Request::ShellList, REPLY_TIMEOUT, DURING)
            .await?
        {
            Response::Shells(shells) => Ok(shells),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Starts a service and waits for the guest's verdict on its
    /// readiness: up to the request's readiness timeout plus
    /// [`START_MARGIN`].
    pub async fn service_start(mut self, request: ServiceStartRequest) -> Result<ServiceStarted> {
        const DURING: &str = "starting a service";
        let limit = Duration::from_millis(request.ready_timeout_ms) + START_MARGIN;
        match self
            .session_ask(&Request::ServiceStart(request), limit, DURING)
            .await?
        {
            Response::ServiceStarted(started) => Ok(started),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Waits, without a time limit, until the service's process ends.
    pub async fn service_watch(mut self, name: &str) -> Result<Termination> {
        const DURING: &str = "watching a service";
        self.send(&Request::ServiceWatch {
            name: name.to_owned(),
        })
        .await?;
        match self.recv::<Response>().await? {
            Response::ServiceExited(exit) => Ok(exit),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Stops a service: `SIGTERM` to its group, `SIGKILL` after `grace`.
    pub async fn service_stop(mut self, name: &str, grace: Duration) -> Result<ServiceStop> {
        const DURING: &str = "stopping a service";
        let request = Request::ServiceStop {
            name: name.to_owned(),
            grace_ms: grace.as_millis().try_into().unwrap_or(u64::MAX),
        };
        let limit = grace.saturating_add(STOP_KILL_BOUND + REPLY_TIMEOUT);
        match self.session_ask(&request, limit, DURING).await? {
            Response::ServiceStopped { exit, killed } => Ok(ServiceStop { exit, killed }),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Describes one service.
    pub async fn service_status(mut self, name: &str) -> Result<ServiceInfo> {
        const DURING: &str = "reading a service's status";
        let request = Request::ServiceStatus {
            name: name.to_owned(),
        };
        match self.session_ask(&request, REPLY_TIMEOUT, DURING).await? {
            Response::ServiceStatus(info) => Ok(info),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Describes every service the guest knows, by name.
    pub async fn service_list(mut self) -> Result<Vec<ServiceInfo>> {
        const DURING: &str = "listing services";
        match self
            .session_ask(&Request::ServiceList, REPLY_TIMEOUT, DURING)
            .await?
        {
            Response::Services(services) => Ok(services),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Streams a service's log records: from `tail_lines` lines before the
    /// end of the combined log (or from the start), and with `follow` on
    /// until the service ends.
    pub async fn service_logs(
        mut self,
        name: &str,
        tail_lines: Option<u64>,
        follow: bool,
    ) -> Result<ServiceLogStream> {
        let request = Request::ServiceLogs {
            name: name.to_owned(),
            tail_lines,
            follow,
        };
        self.session_send(&request, "requesting service logs")
            .await?;
        Ok(ServiceLogStream { conn: self, follow })
    }

    /// Stops a service if needed and deletes its logs.
    pub async fn service_remove(mut self, name: &str) -> Result<()> {
        let request = Request::ServiceRemove {
            name: name.to_owned(),
        };
        // The guest may wait out a stop: 5 s of grace, 5 s after SIGKILL.
        self.session_done(
            &request,
            Duration::from_secs(10) + REPLY_TIMEOUT,
            "removing a service",
        )
        .await
    }

    /// Sends `request` and reads the first answer frame within `limit`.
    async fn session_ask(
        &mut self,
        request: &Request,
        limit: Duration,
        during: &'static str,
    ) -> Result<Response> {
        self.session_send(request, during).await?;
        self.recv_within(limit, during).await
    }

    async fn session_done(
        &mut self,
        request: &Request,
        limit: Duration,
        during: &'static str,
    ) -> Result<()> {
        match self.session_ask(request, limit, during).await? {
            Response::Done => Ok(()),
            other => Err(refusal(during, other)),
        }
    }

    async fn session_send(&mut self, request: &Request, during: &'static str) -> Result<()> {
        tokio::time::timeout(REPLY_TIMEOUT, self.send(request))
            .await
            .map_err(|_| ActorError::ChannelTimeout {
                during,
                seconds: REPLY_TIMEOUT.as_secs(),
            })?
    }
}

/// The error for a frame that is not the expected answer: the guest's own
/// error, or an unexpected frame.
fn refusal(during: &'static str, got: Response) -> ActorError {
    match got {
        Response::Error(error) => ActorError::Guest {
            kind: error.kind,
            message: error.message,
        },
        other => ActorError::UnexpectedFrame {
            during,
            got: other.name().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests;

//! The host end of one guest connection.
//!
//! Steps, each with a timeout:
//!
//! 1. connect to the VM's hybrid-vsock Unix socket (the sidecar's, or
//!    Firecracker's);
//! 2. send `CONNECT <port>\n` and read `OK <port>\n` byte by byte, so no
//!    protocol byte is swallowed;
//! 3. exchange hellos (see `pyro_guest_protocol::handshake`);
//! 4. send one request and read its answer frames.

use std::path::Path;
use std::time::Duration;

use pyro_guest_protocol::{
    body_len, decode, encode, ClientHello, ExecRequest, ExitStatus, OutputStream, ProtocolError,
    Request, Response, ServerHello, AGENT_PORT, MAGIC,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{ActorError, Result};

/// Connecting to the Unix socket and getting `OK` back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Exchanging hellos.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request that should be answered at once (ping, power-off).
const QUICK_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `OK <port>` line we accept.
const MAX_CONNECT_REPLY: usize = 64;

/// A connected, handshaken channel to the guest agent.
#[derive(Debug)]
pub struct GuestConnection {
    stream: UnixStream,
    agent_version: String,
}

impl GuestConnection {
    /// Connects to the agent through the hybrid-vsock socket `socket`.
    pub async fn connect(socket: &Path) -> Result<Self> {
        Self::connect_port(socket, AGENT_PORT).await
    }

    /// Connects to `port` in the guest through `socket`.
    pub async fn connect_port(socket: &Path, port: u32) -> Result<Self> {
        let mut stream = within(CONNECT_TIMEOUT, "connecting", UnixStream::connect(socket))
            .await?
            .map_err(|source| ActorError::ChannelConnect {
                socket: socket.to_owned(),
                source,
            })?;
        within(
            CONNECT_TIMEOUT,
            "connecting",
            hybrid_connect(&mut stream, port),
        )
        .await??;
        let mut conn = Self {
            stream,
            agent_version: String::new(),
        };
        conn.send(&ClientHello::current()).await?;
        let hello: ServerHello = conn
            .recv_within(HANDSHAKE_TIMEOUT, "exchanging hellos")
            .await?;
        if hello.magic != MAGIC {
            return Err(ActorError::Channel(ProtocolError::BadMagic));
        }
        if hello.version == 0 {
            let ours = ClientHello::current();
            return Err(ActorError::Channel(ProtocolError::VersionMismatch {
                ours_min: ours.min_version,
                ours_max: ours.max_version,
                theirs_min: 0,
                theirs_max: 0,
            }));
        }
        conn.agent_version = hello.agent_version;
        Ok(conn)
    }

    /// The agent's version, from its hello.
    pub fn agent_version(&self) -> &str {
        &self.agent_version
    }

    /// Sends one frame.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<()> {
        let frame = encode(message).map_err(ActorError::Channel)?;
        self.stream
            .write_all(&frame)
            .await
            .map_err(|err| ActorError::Channel(ProtocolError::Io(err)))
    }

    /// Reads one frame, however long it takes.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ActorError::Channel(ProtocolError::Closed))
            }
            Err(err) => return Err(ActorError::Channel(ProtocolError::Io(err))),
        }
        let len = body_len(header).map_err(ActorError::Channel)?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.map_err(|err| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                ActorError::Channel(ProtocolError::Truncated {
                    read: 0,
                    expected: len,
                })
            } else {
                ActorError::Channel(ProtocolError::Io(err))
            }
        })?;
        decode(&body).map_err(ActorError::Channel)
    }

    /// Reads one frame within `limit`.
    pub async fn recv_within<T: DeserializeOwned>(
        &mut self,
        limit: Duration,
        during: &'static str,
    ) -> Result<T> {
        within(limit, during, self.recv()).await?
    }

    /// Checks the agent answers; returns its uptime in milliseconds.
    pub async fn ping(mut self) -> Result<u64> {
        self.send(&Request::Ping).await?;
        match self
            .recv_within(QUICK_REPLY_TIMEOUT, "waiting for a pong")
            .await?
        {
            Response::Pong { uptime_ms, .. } => Ok(uptime_ms),
            other => Err(unexpected("waiting for a pong", &other)),
        }
    }

    /// Asks the guest to sync and power off; returns once it acknowledged.
    pub async fn power_off(mut self) -> Result<()> {
        self.send(&Request::PowerOff).await?;
        match self
            .recv_within(QUICK_REPLY_TIMEOUT, "waiting for power-off")
            .await
        {
            Ok(Response::Done) | Err(ActorError::Channel(ProtocolError::Closed)) => Ok(()),
            Ok(other) => Err(unexpected("waiting for power-off", &other)),
            Err(err) => Err(err),
        }
    }

    /// Starts a command; its output is then read from the returned stream.
    pub async fn exec(mut self, request: ExecRequest) -> Result<ExecStream> {
        self.send(&Request::Exec(request)).await?;
        match self
            .recv_within(QUICK_REPLY_TIMEOUT, "starting the command")
            .await?
        {
            Response::ExecStarted { pid } => Ok(ExecStream { conn: self, pid }),
            Response::Error(err) => Err(ActorError::Guest {
                kind: err.kind,
                message: err.message,
            }),
            other => Err(unexpected("starting the command", &other)),
        }
    }
}

/// What a running command produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Output, as the guest read it.
    Output(OutputStream, Vec<u8>),
    /// The command ended; no more events follow.
    Exited(ExitStatus),
}

/// The output of a command running in the guest.
#[derive(Debug)]
pub struct ExecStream {
    conn: GuestConnection,
    pid: u32,
}

impl ExecStream {
    /// The command's process id in the guest.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next event. After [`ExecEvent::Exited`] the stream is done.
    pub async fn next(&mut self) -> Result<ExecEvent> {
        match self.conn.recv::<Response>().await? {
            Response::Output { stream, data } => Ok(ExecEvent::Output(stream, data)),
            Response::ExecExited(status) => Ok(ExecEvent::Exited(status)),
            Response::Error(err) => Err(ActorError::Guest {
                kind: err.kind,
                message: err.message,
            }),
            other => Err(unexpected("reading command output", &other)),
        }
    }
}

async fn hybrid_connect(stream: &mut UnixStream, port: u32) -> Result<()> {
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(|err| refused(port, &format!("writing CONNECT failed: {err}")))?;
    let mut line = Vec::with_capacity(16);
    loop {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(0) => {
                return Err(refused(
                    port,
                    "the connection was closed (the guest is not listening, or its vsock device is not up yet)",
                ))
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_CONNECT_REPLY {
                    return Err(refused(port, "the reply line is too long"));
                }
            }
            Err(err) => return Err(refused(port, &format!("reading the reply failed: {err}"))),
        }
    }
    let reply = String::from_utf8_lossy(&line);
    if reply.starts_with("OK ") {
        Ok(())
    } else {
        Err(refused(port, &format!("unexpected reply {reply:?}")))
    }
}

fn refused(port: u32, detail: &str) -> ActorError {
    ActorError::ChannelRefused {
        port,
        detail: detail.to_owned(),
    }
}

fn unexpected(during: &'static str, got: &Response) -> ActorError {
    let got = match got {
        Response::Pong { .. } => "pong",
        Response::ExecStarted { .. } => "exec-started",
        Response::Output { .. } => "output",
        Response::ExecExited(_) => "exec-exited",
        Response::Error(_) => "error",
        Response::Done => "done",
        _ => "a frame of another operation",
    };
    ActorError::UnexpectedFrame {
        during,
        got: got.to_owned(),
    }
}

async fn within<F: std::future::Future>(
    limit: Duration,
    during: &'static str,
    fut: F,
) -> Result<F::Output> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ActorError::ChannelTimeout {
            during,
            seconds: limit.as_secs(),
        })
}

//! The agent's server: accept, handshake, one request per connection.
//!
//! Each connection gets its own thread, so a long exec never blocks another
//! operation. Every read before the request has a timeout, so a host that
//! connects and says nothing cannot pin a thread forever.

use std::time::Duration;

use pyro_guest_protocol::{
    negotiate, read_frame, write_frame, ClientHello, GuestError, GuestErrorKind, ProtocolError,
    Request, Response, ServerHello, AGENT_VERSION, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

use crate::vsock::{VsockListener, VsockStream};

/// How long the host has to send its hello and its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One accepted connection, after the handshake.
#[derive(Debug)]
pub struct Connection {
    stream: VsockStream,
}

impl Connection {
    /// Sends one frame.
    pub fn send(&mut self, response: &Response) -> std::io::Result<()> {
        write_frame(&mut self.stream, response).map_err(into_io)
    }

    /// A second handle on the stream, for a thread that watches for the host
    /// hanging up.
    pub fn try_clone_stream(&self) -> std::io::Result<VsockStream> {
        self.stream.try_clone()
    }
}

fn into_io(err: ProtocolError) -> std::io::Error {
    match err {
        ProtocolError::Io(err) => err,
        other => std::io::Error::other(other),
    }
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: &VsockListener) -> ! {
    loop {
        match listener.accept() {
            Ok(stream) => {
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || handle(stream));
                if let Err(err) = spawned {
                    crate::log(&format!("cannot start a connection thread: {err}"));
                }
            }
            Err(err) => {
                crate::log(&format!("accept failed: {err}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn handle(stream: VsockStream) {
    let Some((mut conn, request)) = open(stream) else {
        return;
    };
    let result = match request {
        Request::Ping => conn.send(&Response::Pong {
            agent_version: AGENT_VERSION.to_owned(),
            uptime_ms: crate::uptime_ms(),
        }),
        Request::Exec(exec) => crate::exec::run(&mut conn, &exec),
        Request::PowerOff => {
            let _ = conn.send(&Response::Done);
            crate::power_off()
        }
    };
    if let Err(err) = result {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            crate::log(&format!("connection ended with an error: {err}"));
        }
    }
}

/// Handshake, then read the one request. `None` when the peer misbehaved
/// (it has then been told why, where possible).
fn open(mut stream: VsockStream) -> Option<(Connection, Request)> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    let hello: ClientHello = read_frame(&mut stream).ok()?;
    let version = match negotiate(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, &hello) {
        Ok(version) => version,
        Err(_) => {
            let _ = write_frame(
                &mut stream,
                &ServerHello {
                    magic: MAGIC,
                    version: 0,
                    agent_version: AGENT_VERSION.to_owned(),
                },
            );
            return None;
        }
    };
    write_frame(
        &mut stream,
        &ServerHello {
            magic: MAGIC,
            version,
            agent_version: AGENT_VERSION.to_owned(),
        },
    )
    .ok()?;
    let mut conn = Connection { stream };
    let request = match read_frame::<_, Request>(&mut conn.stream) {
        Ok(request) => request,
        Err(ProtocolError::Closed) => return None,
        Err(err) => {
            let _ = conn.send(&Response::Error(GuestError {
                kind: GuestErrorKind::InvalidRequest,
                message: format!("unreadable request: {err}"),
            }));
            return None;
        }
    };
    conn.stream.set_read_timeout(None).ok()?;
    Some((conn, request))
}

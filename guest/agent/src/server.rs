//! The agent's server: accept, handshake, one request per connection.
//!
//! Each connection gets its own thread, so a long exec never blocks another
//! operation. Every read before the request has a timeout, so a host that
//! connects and says nothing cannot pin a thread forever.
//!
//! The per-connection handler, [`serve_connection`], works on any
//! [`Channel`] (a vsock stream in the guest, a Unix socket in tests), so the
//! host client can be tested against the real handler in-process.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use pyro_guest_protocol::{
    negotiate, read_frame, write_frame, ClientHello, GuestError, GuestErrorKind, ProtocolError,
    Request, Response, ServerHello, AGENT_VERSION, MAGIC, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

use crate::vsock::{VsockListener, VsockStream};

/// How long the host has to send its hello and its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A byte stream to the host that the handler can serve.
pub trait Channel: Read + Write + Send + Sized + 'static {
    /// Sets (or clears, with `None`) the timeout of every blocking read.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// A second handle on the same stream, for a thread that watches for
    /// the host hanging up.
    fn try_clone(&self) -> io::Result<Self>;
}

impl Channel for VsockStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        VsockStream::set_read_timeout(self, timeout)
    }

    fn try_clone(&self) -> io::Result<Self> {
        VsockStream::try_clone(self)
    }
}

impl Channel for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
}

/// What a [`Request::PowerOff`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerControl {
    /// Syncs and powers the machine off (the agent inside a VM).
    PowerOff,
    /// Refuses with an error (the handler running on a host, in tests).
    Refuse,
}

/// One accepted connection, after the handshake.
#[derive(Debug)]
pub struct Connection<S = VsockStream> {
    stream: S,
}

impl<S: Channel> Connection<S> {
    /// Sends one frame.
    pub fn send(&mut self, response: &Response) -> io::Result<()> {
        write_frame(&mut self.stream, response).map_err(into_io)
    }

    /// A second handle on the stream, for a thread that watches for the host
    /// hanging up.
    pub fn try_clone_stream(&self) -> io::Result<S> {
        self.stream.try_clone()
    }

    /// The stream itself, for reading what the host uploads.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

fn into_io(err: ProtocolError) -> io::Error {
    match err {
        ProtocolError::Io(err) => err,
        other => io::Error::other(other),
    }
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: &VsockListener) -> ! {
    loop {
        match listener.accept() {
            Ok(stream) => {
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || serve_connection(stream, PowerControl::PowerOff));
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

/// Serves one connection: handshake, one request, its answer.
///
/// The stream must be past any transport preamble (the hybrid-vsock
/// `CONNECT`/`OK` exchange happens outside the guest).
pub fn serve_connection<S: Channel>(stream: S, power: PowerControl) {
    let Some((mut conn, request)) = open(stream) else {
        return;
    };
    let result = match request {
        Request::Ping => conn.send(&Response::Pong {
            agent_version: AGENT_VERSION.to_owned(),
            uptime_ms: crate::uptime_ms(),
        }),
        Request::Exec(exec) => crate::exec::run(&mut conn, &exec),
        Request::PowerOff => match power {
            PowerControl::PowerOff => {
                let _ = conn.send(&Response::Done);
                crate::power_off()
            }
            PowerControl::Refuse => conn.send(&Response::Error(GuestError {
                kind: GuestErrorKind::InvalidRequest,
                message: "power-off is disabled in this agent instance".to_owned(),
            })),
        },
        Request::PutArchive(_)
        | Request::GetArchive(_)
        | Request::Manifest(_)
        | Request::ListPath(_)
        | Request::ReadFile(_)
        | Request::ApplyChanges(_)
        | Request::Sync => crate::workspace::serve(&mut conn, request),
        Request::ShellOpen(_)
        | Request::ShellAttach { .. }
        | Request::ShellWrite { .. }
        | Request::ShellSignal { .. }
        | Request::ShellResize { .. }
        | Request::ShellClose { .. }
        | Request::ShellList => crate::shell::serve(&mut conn, request),
        Request::ServiceStart(_)
        | Request::ServiceWatch { .. }
        | Request::ServiceStop { .. }
        | Request::ServiceStatus { .. }
        | Request::ServiceList
        | Request::ServiceLogs { .. }
        | Request::ServiceRemove { .. } => crate::service::serve(&mut conn, request),
    };
    if let Err(err) = result {
        if err.kind() != io::ErrorKind::BrokenPipe {
            crate::log(&format!("connection ended with an error: {err}"));
        }
    }
}

/// Handshake, then read the one request. `None` when the peer misbehaved
/// (it has then been told why, where possible).
fn open<S: Channel>(mut stream: S) -> Option<(Connection<S>, Request)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_guest_protocol::{PutArchiveRequest, Upload, CHUNK_BYTES};

    fn connect(request: &Request) -> (UnixStream, std::thread::JoinHandle<()>) {
        let (mut host, guest) = UnixStream::pair().unwrap();
        let handler = std::thread::spawn(move || serve_connection(guest, PowerControl::Refuse));
        write_frame(&mut host, &ClientHello::current()).unwrap();
        let hello: ServerHello = read_frame(&mut host).unwrap();
        assert_eq!(hello.version, PROTOCOL_VERSION);
        write_frame(&mut host, request).unwrap();
        (host, handler)
    }

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, data).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn power_off_is_refused_when_disabled() {
        let (mut host, handler) = connect(&Request::PowerOff);
        let response: Response = read_frame(&mut host).unwrap();
        assert!(matches!(response, Response::Error(e) if e.message.contains("disabled")));
        handler.join().unwrap();
    }

    #[test]
    fn an_upload_is_read_to_its_end_before_an_early_error() {
        let (mut host, handler) = connect(&Request::PutArchive(PutArchiveRequest {
            destination: "not/absolute".into(),
        }));
        // The agent drains every chunk, so these writes never fail.
        for _ in 0..40 {
            write_frame(&mut host, &Upload::Chunk(vec![0u8; CHUNK_BYTES])).unwrap();
        }
        write_frame(&mut host, &Upload::End).unwrap();
        let response: Response = read_frame(&mut host).unwrap();
        match response {
            Response::Error(error) => {
                assert_eq!(error.kind, GuestErrorKind::InvalidRequest);
                assert!(error.message.contains("not absolute"), "{}", error.message);
            }
            other => panic!("{other:?}"),
        }
        handler.join().unwrap();
    }

    #[test]
    fn an_upload_cut_short_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("dest");
        let (mut host, handler) = connect(&Request::PutArchive(PutArchiveRequest {
            destination: destination.to_string_lossy().into_owned(),
        }));
        // A whole, valid archive, but no End: the host gave up.
        write_frame(&mut host, &Upload::Chunk(tar_of("a.txt", b"a"))).unwrap();
        host.shutdown(std::net::Shutdown::Write).unwrap();
        handler.join().unwrap();
        assert!(!destination.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_frame_that_is_not_an_upload_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, handler) = connect(&Request::PutArchive(PutArchiveRequest {
            destination: dir.path().to_string_lossy().into_owned(),
        }));
        write_frame(&mut host, &Request::Sync).unwrap();
        let response: Response = read_frame(&mut host).unwrap();
        assert!(matches!(response, Response::Error(e) if e.kind == GuestErrorKind::InvalidRequest));
        handler.join().unwrap();
    }
}

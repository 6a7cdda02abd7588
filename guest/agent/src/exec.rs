//! Running one command and streaming its output to the host.
//!
//! Threads, per exec:
//!
//! - two pipe readers (stdout, stderr) send chunks as soon as they are read;
//! - a waiter reaps the child;
//! - a watcher reads the connection and reports when the host goes away;
//! - the connection thread forwards chunks as frames and enforces the
//!   timeout.
//!
//! All of them feed one bounded channel, so a slow host slows the readers,
//! which slows the command (backpressure) instead of buffering without end.
//! The command runs in its own process group; on timeout, or when the host
//! disconnects, the whole group is killed.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use pyro_guest_protocol::{
    CommandLine, ExecRequest, ExitStatus, GuestError, GuestErrorKind, OutputStream, Response,
    CHUNK_BYTES,
};

use crate::server::{Channel, Connection};

/// Exit code reported when the timeout killed the command (as `timeout(1)`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// After the command exits, how long to keep reading output still held open
/// by its background children before finishing the exec anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Chunks buffered between the pipe readers and the connection.
const CHANNEL_DEPTH: usize = 16;

enum Event {
    Chunk(OutputStream, Vec<u8>),
    Eof,
    Exited(std::process::ExitStatus),
    HostGone,
}

/// Runs `request`, streaming its output over `conn`, and ends with
/// [`Response::ExecExited`] (or [`Response::Error`] when it cannot start).
pub fn run<S: Channel>(conn: &mut Connection<S>, request: &ExecRequest) -> std::io::Result<()> {
    let mut command = match build_command(request) {
        Ok(command) => command,
        Err(error) => return conn.send(&Response::Error(error)),
    };
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return conn.send(&Response::Error(GuestError {
                kind: if err.kind() == std::io::ErrorKind::NotFound {
                    GuestErrorKind::NotFound
                } else {
                    GuestErrorKind::SpawnFailed
                },
                message: format!("cannot start {}: {err}", describe(&request.command)),
            }))
        }
    };
    let pid = child.id();
    conn.send(&Response::ExecStarted { pid })?;

    let (tx, rx) = sync_channel::<Event>(CHANNEL_DEPTH);
    spawn_pipe_reader(child.stdout.take(), OutputStream::Stdout, tx.clone());
    spawn_pipe_reader(child.stderr.take(), OutputStream::Stderr, tx.clone());
    spawn_waiter(child, tx.clone());
    if let Ok(watch) = conn.try_clone_stream() {
        spawn_host_watcher(watch, tx);
    }

    let deadline = request
        .timeout_ms
        .map(|ms| started + Duration::from_millis(ms));
    let outcome = pump(conn, &rx, pid, deadline);
    let (status, timed_out) = match outcome {
        Pumped::Finished { status, timed_out } => (status, timed_out),
        Pumped::HostGone => {
            kill_group(pid);
            return Ok(());
        }
        Pumped::WriteFailed(err) => {
            kill_group(pid);
            return Err(err);
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let signal = status.signal();
    let exit_code = if timed_out {
        TIMEOUT_EXIT_CODE
    } else {
        status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0))
    };
    crate::flush_data_disk();
    conn.send(&Response::ExecExited(ExitStatus {
        exit_code,
        signal,
        timed_out,
        duration_ms,
    }))
}

enum Pumped {
    Finished {
        status: std::process::ExitStatus,
        timed_out: bool,
    },
    HostGone,
    WriteFailed(std::io::Error),
}

/// Forwards events until the command has exited and its output is drained.
fn pump<S: Channel>(
    conn: &mut Connection<S>,
    rx: &Receiver<Event>,
    pid: u32,
    deadline: Option<Instant>,
) -> Pumped {
    let mut open_streams = 2;
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut timed_out = false;
    loop {
        if let Some(status) = exited {
            if open_streams == 0 || drain_until.is_some_and(|t| Instant::now() >= t) {
                return Pumped::Finished { status, timed_out };
            }
        }
        let wake_at = match (exited, deadline, drain_until) {
            (Some(_), _, Some(drain)) => Some(drain),
            (None, Some(deadline), _) if !timed_out => Some(deadline),
            _ => None,
        };
        let event = match wake_at {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Chunk(stream, data)) => {
                if let Err(err) = conn.send(&Response::Output { stream, data }) {
                    return Pumped::WriteFailed(err);
                }
            }
            Ok(Event::Eof) => open_streams -= 1,
            Ok(Event::Exited(status)) => {
                exited = Some(status);
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            Ok(Event::HostGone) => return Pumped::HostGone,
            Err(RecvTimeoutError::Timeout) => {
                if exited.is_none() && !timed_out {
                    timed_out = true;
                    kill_group(pid);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Every sender is gone: the waiter has reported, the readers
                // are done. Finish with what we have.
                if let Some(status) = exited {
                    return Pumped::Finished { status, timed_out };
                }
                return Pumped::HostGone;
            }
        }
    }
}

fn build_command(request: &ExecRequest) -> Result<Command, GuestError> {
    let mut command = match &request.command {
        CommandLine::Argv(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(invalid("the command is empty"));
            };
            let mut command = Command::new(program);
            command.args(args);
            command
        }
        CommandLine::Shell(line) => {
            if line.trim().is_empty() {
                return Err(invalid("the command is empty"));
            }
            let mut command = Command::new("/bin/sh");
            command.arg("-lc").arg(line);
            command
        }
    };
    let cwd = request.cwd.as_deref().unwrap_or("/");
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(invalid(&format!(
                "working directory {cwd} is not a directory"
            )))
        }
        Err(_) => {
            return Err(GuestError {
                kind: GuestErrorKind::NotFound,
                message: format!("working directory {cwd} does not exist"),
            })
        }
    }
    command
        .current_dir(cwd)
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    Ok(command)
}

fn invalid(message: &str) -> GuestError {
    GuestError {
        kind: GuestErrorKind::InvalidRequest,
        message: message.to_owned(),
    }
}

fn describe(command: &CommandLine) -> String {
    match command {
        CommandLine::Argv(argv) => argv.first().cloned().unwrap_or_default(),
        CommandLine::Shell(_) => "/bin/sh".to_owned(),
    }
}

fn spawn_pipe_reader<R: Read + Send + 'static>(
    pipe: Option<R>,
    stream: OutputStream,
    tx: SyncSender<Event>,
) {
    let Some(mut pipe) = pipe else {
        let _ = tx.send(Event::Eof);
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("exec-pipe".into())
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK_BYTES];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(Event::Chunk(stream, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(Event::Eof);
        });
    if spawned.is_err() {
        crate::log(&format!("cannot start a reader thread for {stream:?}"));
    }
}

fn spawn_waiter(mut child: Child, tx: SyncSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("exec-wait".into())
        .spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(Event::Exited(status));
            }
        });
    if spawned.is_err() {
        crate::log("cannot start a waiter thread");
    }
}

/// The host sends nothing after an exec request, so any read that returns
/// means it closed the connection (or broke it).
fn spawn_host_watcher<S: Read + Send + 'static>(mut stream: S, tx: SyncSender<Event>) {
    let _ = std::thread::Builder::new()
        .name("exec-watch".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match stream.read(&mut byte) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = tx.send(Event::HostGone);
        });
}

fn kill_group(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

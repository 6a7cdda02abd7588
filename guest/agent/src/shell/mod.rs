//! Interactive shells on PTYs that the agent owns.
//!
//! Each shell is `/bin/bash --noprofile --norc -i` (or `/bin/sh -i`) in a new
//! session whose controlling terminal is a PTY. Per shell, threads:
//!
//! - a reader drains the PTY master into a 1 MiB [`ring::Ring`];
//! - a waiter reaps the shell (the agent is its parent) and records how it
//!   ended once its output is drained;
//! - every attach runs on its own connection thread with its own cursor
//!   into the ring, plus a watcher that notices the host hanging up.
//!
//! # Slow hosts: back-pressure
//!
//! Cursors are byte offsets of the terminal's output, so output must not
//! vanish between the terminal and an attached host. Each attach registers
//! its cursor with the ring, and the reader only takes from the PTY what
//! fits without overwriting bytes an attached host has not been sent yet.
//! When a host falls behind by the whole ring, the reader stops reading
//! the PTY: the kernel's terminal buffer fills and the shell's program
//! blocks in `write`, exactly as under a terminal that is not being read.
//! Input, signals, resizes and close still work meanwhile (they do not go
//! through the output path).
//!
//! Two bounds keep that from stalling a shell forever: with no host
//! attached the ring keeps the newest 1 MiB and the shell runs freely; and
//! an attached host that takes nothing for [`STALL_LIMIT`] while output
//! waits for it (one that stopped reading without hanging up) stops holding
//! the shell back. A host that missed output that way, or that attaches
//! from an offset the ring no longer holds (after a supervisor restart),
//! is sent [`Response::ShellOutputLost`] with the offset and the number of
//! bytes it missed, then continues from the oldest byte still held, so its
//! offsets stay true. The host keeps the authoritative buffer; the ring
//! bridges the way there.
//!
//! A shell is forgotten once its exit has been delivered to an attached
//! host, or when it is closed; until then [`Request::ShellList`] shows it
//! and a reattach gets its remaining output and its exit.

pub(crate) mod common;
mod pty;
mod ring;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{tcgetpgrp, Pid};
use pyro_guest_protocol::{
    GuestError, GuestErrorKind, Request, Response, ShellInfo, ShellOpenRequest, ShellSignal,
    Termination, CHUNK_BYTES, SHELL_WRITE_MAX_BYTES,
};

use crate::server::{Channel, Connection};
use common::{
    check_cwd, check_env, check_name, describe_io, error, invalid, lock, on_host_gone, termination,
    wait, wait_for,
};
use ring::{ReaderId, Ring};

/// Output kept per shell for reattaching hosts.
const RING_BYTES: usize = 1024 * 1024;
/// How long an attached host may take nothing while output waits for it
/// before the shell stops waiting for it (see the module docs).
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// The reader waits until at least this much fits in the ring, so it never
/// trickles in tiny reads behind a slow host.
const MIN_ROOM: usize = CHUNK_BYTES;
/// While waiting for room, how often the reader looks again (a stalled
/// host wakes nobody).
const ROOM_RECHECK: Duration = Duration::from_secs(1);
const _: () = assert!(RING_BYTES >= MIN_ROOM, "the reader could never find room");
/// How long a closed shell gets to exit after `SIGHUP`, and again after
/// `SIGKILL`.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a write waits for a shell that does not read its input.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the shell exits, how long to keep draining output still held by
/// its background jobs before reporting the exit: this long after the
/// last output (or the last wait for a host to make room), and at most
/// [`STALL_LIMIT`] in all.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// The prompt of every shell, unless the request sets its own `PS1`.
const PROMPT: &str = "pyro$ ";

/// One shell.
#[derive(Debug)]
struct Shell {
    id: String,
    pid: u32,
    master: File,
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Serializes writers, so two inputs never interleave.
    writing: Mutex<()>,
}

#[derive(Debug)]
struct Inner {
    ring: Ring,
    cols: u16,
    rows: u16,
    reader_done: bool,
    /// Whether the reader waits for an attached host to make room.
    held_back: bool,
    exit: Option<Termination>,
}

impl Shell {
    fn info(&self) -> ShellInfo {
        self.describe(&lock(&self.inner))
    }

    /// The shell as `inner` (its locked state) has it.
    fn describe(&self, inner: &Inner) -> ShellInfo {
        ShellInfo {
            shell_id: self.id.clone(),
            pid: self.pid,
            alive: inner.exit.is_none(),
            exit: inner.exit,
            cols: inner.cols,
            rows: inner.rows,
            start_offset: inner.ring.start(),
            end_offset: inner.ring.end(),
        }
    }

    fn has_exited(&self) -> bool {
        lock(&self.inner).exit.is_some()
    }

    /// Waits until the exit is recorded or `limit` passed.
    fn wait_exit(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut inner = lock(&self.inner);
        while inner.exit.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = wait_for(&self.changed, inner, deadline - now);
        }
        true
    }

    /// Sends `signal` to the terminal's foreground process group and to
    /// the shell's own.
    fn hang_up(&self, signal: Signal) {
        let shell = Pid::from_raw(self.pid as i32);
        if let Ok(group) = tcgetpgrp(&self.master) {
            if group.as_raw() > 0 && group != shell {
                let _ = killpg(group, signal);
            }
        }
        let _ = killpg(shell, signal);
    }
}

fn shells() -> &'static Mutex<HashMap<String, Arc<Shell>>> {
    static SHELLS: OnceLock<Mutex<HashMap<String, Arc<Shell>>>> = OnceLock::new();
    SHELLS.get_or_init(Mutex::default)
}

fn find(id: &str) -> Result<Arc<Shell>, GuestError> {
    lock(shells()).get(id).cloned().ok_or_else(|| {
        error(
            GuestErrorKind::NotFound,
            format!("shell {id} does not exist; open a new shell or list the open ones"),
        )
    })
}

/// Forgets `shell`, unless its id has been reused since.
fn forget(shell: &Arc<Shell>) {
    let mut registry = lock(shells());
    if registry
        .get(&shell.id)
        .is_some_and(|known| Arc::ptr_eq(known, shell))
    {
        registry.remove(&shell.id);
    }
}

fn exited(id: &str) -> GuestError {
    invalid(format!("shell {id} has exited; open a new shell"))
}

/// Runs one shell request on `conn` and sends its answer.
pub(crate) fn serve<S: Channel>(conn: &mut Connection<S>, request: Request) -> io::Result<()> {
    let outcome = match request {
        Request::ShellOpen(req) => open(&req).map(|pid| Response::ShellOpened { pid }),
        Request::ShellAttach {
            shell_id,
            from_offset,
        } => return attach(conn, &shell_id, from_offset),
        Request::ShellWrite { shell_id, data } => write(&shell_id, &data).map(|()| Response::Done),
        Request::ShellSignal { shell_id, signal } => {
            send_signal(&shell_id, signal).map(|()| Response::Done)
        }
        Request::ShellResize {
            shell_id,
            cols,
            rows,
        } => resize(&shell_id, cols, rows).map(|()| Response::Done),
        Request::ShellClose { shell_id } => close(&shell_id).map(|()| Response::Done),
        Request::ShellList => Ok(Response::Shells(list())),
        _ => Err(invalid("not a shell operation")),
    };
    match outcome {
        Ok(response) => conn.send(&response),
        Err(error) => conn.send(&Response::Error(error)),
    }
}

fn check_size(id: &str, cols: u16, rows: u16) -> Result<(), GuestError> {
    if cols == 0 || rows == 0 {
        return Err(invalid(format!(
            "shell {id} needs a window of at least 1x1, not {cols}x{rows}; pass real columns and rows"
        )));
    }
    Ok(())
}

fn open(req: &ShellOpenRequest) -> Result<u32, GuestError> {
    let id = req.shell_id.as_str();
    check_name("shell id", id)?;
    let owner = format!("shell {id}");
    check_cwd(&owner, &req.cwd)?;
    check_env(&owner, &req.env)?;
    check_size(id, req.cols, req.rows)?;

    let mut registry = lock(shells());
    if registry.contains_key(id) {
        return Err(invalid(format!(
            "shell {id} already exists; close it first or pick another id"
        )));
    }
    let pty = pty::open(req.cols, req.rows).map_err(|err| {
        error(
            GuestErrorKind::Io,
            format!(
                "cannot open a terminal for shell {id}: {}; check that devpts is mounted",
                describe_io(&err)
            ),
        )
    })?;
    let child = spawn(req, &pty.slave).map_err(|err| {
        error(
            GuestErrorKind::SpawnFailed,
            format!("cannot start shell {id}: {}", describe_io(&err)),
        )
    })?;
    drop(pty.slave);
    let pid = child.id();
    let shell = Arc::new(Shell {
        id: id.to_owned(),
        pid,
        master: pty.master,
        inner: Mutex::new(Inner {
            ring: Ring::new(RING_BYTES, STALL_LIMIT),
            cols: req.cols,
            rows: req.rows,
            reader_done: false,
            held_back: false,
            exit: None,
        }),
        changed: Condvar::new(),
        writing: Mutex::new(()),
    });
    if let Err(err) = start_threads(&shell, child) {
        shell.hang_up(Signal::SIGKILL);
        return Err(error(
            GuestErrorKind::Internal,
            format!("cannot watch shell {id}: {}", describe_io(&err)),
        ));
    }
    registry.insert(id.to_owned(), shell);
    Ok(pid)
}

fn spawn(req: &ShellOpenRequest, slave: &File) -> io::Result<Child> {
    let mut command = if std::path::Path::new("/bin/bash").exists() {
        let mut command = Command::new("/bin/bash");
        command.args(["--noprofile", "--norc", "-i"]);
        command
    } else {
        let mut command = Command::new("/bin/sh");
        command.arg("-i");
        command
    };
    command
        .current_dir(&req.cwd)
        .env("TERM", "xterm-256color")
        .env("PS1", PROMPT)
        .env("PROMPT_COMMAND", "")
        .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    // SAFETY: between fork and exec the closure only makes two system
    // calls (setsid, ioctl), both async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the slave.
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

fn start_threads(shell: &Arc<Shell>, mut child: Child) -> io::Result<()> {
    let reader = Arc::clone(shell);
    let spawned = std::thread::Builder::new()
        .name("shell-read".into())
        .spawn(move || read_output(&reader));
    if let Err(err) = spawned {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    let waiter = Arc::clone(shell);
    std::thread::Builder::new()
        .name("shell-wait".into())
        .spawn(move || reap(&waiter, child))
        .map(drop)
}

/// Drains the terminal into the ring until every process closed it,
/// taking only what fits without overwriting output an attached host still
/// needs (see the module docs).
fn read_output(shell: &Shell) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let room = wait_for_room(shell);
        match pty::read(&shell.master, &mut buf[..room.min(CHUNK_BYTES)]) {
            Ok(0) => break,
            Ok(n) => {
                lock(&shell.inner).ring.push(&buf[..n], Instant::now());
                shell.changed.notify_all();
            }
            Err(err) => {
                crate::log(&format!(
                    "reading the terminal of shell {} failed: {err}",
                    shell.id
                ));
                break;
            }
        }
    }
    lock(&shell.inner).reader_done = true;
    shell.changed.notify_all();
}

/// Waits until at least [`MIN_ROOM`] bytes fit in the ring; returns how
/// many do.
fn wait_for_room(shell: &Shell) -> usize {
    let mut inner = lock(&shell.inner);
    loop {
        let room = inner.ring.room(Instant::now());
        if room >= MIN_ROOM {
            inner.held_back = false;
            return room;
        }
        inner.held_back = true;
        inner = wait_for(&shell.changed, inner, ROOM_RECHECK);
    }
}

/// Reaps the shell, lets the reader catch up, then records the exit.
fn reap(shell: &Shell, mut child: Child) {
    let exit = match child.wait() {
        Ok(status) => termination(status),
        Err(err) => {
            crate::log(&format!("waiting for shell {} failed: {err}", shell.id));
            Termination {
                exit_code: 255,
                signal: None,
            }
        }
    };
    // Output still on its way to a host counts as progress: the exit is
    // reported after the output, not in the middle of it.
    let exited = Instant::now();
    let limit = exited + STALL_LIMIT;
    let mut deadline = exited + DRAIN_GRACE;
    let mut inner = lock(&shell.inner);
    let mut seen = inner.ring.end();
    while !inner.reader_done {
        let now = Instant::now();
        if inner.held_back || inner.ring.end() != seen {
            seen = inner.ring.end();
            deadline = (now + DRAIN_GRACE).min(limit);
        }
        if now >= deadline {
            break;
        }
        inner = wait_for(&shell.changed, inner, deadline - now);
    }
    inner.exit = Some(exit);
    drop(inner);
    shell.changed.notify_all();
}

enum Step {
    Output(ring::Slice),
    Exited(Termination),
    HostGone,
}

/// An attach's registration with the ring; dropping it (however the
/// attach ends) stops it holding the reader back.
struct Attached<'a> {
    shell: &'a Shell,
    reader: ReaderId,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        lock(&self.shell.inner).ring.detach(self.reader);
        self.shell.changed.notify_all();
    }
}

fn attach<S: Channel>(conn: &mut Connection<S>, id: &str, from_offset: u64) -> io::Result<()> {
    let shell = match find(id) {
        Ok(shell) => shell,
        Err(error) => return conn.send(&Response::Error(error)),
    };
    // Registered under the same lock the answer is described under, so
    // nothing written in between is lost to this host.
    let registered = {
        let mut inner = lock(&shell.inner);
        let info = shell.describe(&inner);
        if from_offset > info.end_offset {
            Err(info.end_offset)
        } else {
            let reader = inner.ring.attach(from_offset, Instant::now());
            Ok((info, reader))
        }
    };
    let (info, reader) = match registered {
        Ok(registered) => registered,
        Err(end_offset) => {
            return conn.send(&Response::Error(invalid(format!(
                "offset {from_offset} is past the end ({end_offset}) of shell {id}'s output; attach from an offset it has sent"
            ))))
        }
    };
    let attached = Attached {
        shell: &shell,
        reader,
    };
    conn.send(&Response::ShellAttached(info))?;

    let gone = Arc::new(AtomicBool::new(false));
    match conn.try_clone_stream() {
        Ok(stream) => {
            let watched = Arc::clone(&shell);
            let flag = Arc::clone(&gone);
            on_host_gone(stream, move || {
                let _inner = lock(&watched.inner);
                flag.store(true, Ordering::SeqCst);
                watched.changed.notify_all();
            });
        }
        Err(err) => crate::log(&format!(
            "cannot watch the host attached to shell {id}: {err}"
        )),
    }

    loop {
        let step = {
            let mut inner = lock(&shell.inner);
            loop {
                if gone.load(Ordering::SeqCst) {
                    break Step::HostGone;
                }
                if let Some(slice) = inner.ring.read_next(reader, CHUNK_BYTES, Instant::now()) {
                    // What was copied out no longer needs the ring: room
                    // for the reader.
                    shell.changed.notify_all();
                    break Step::Output(slice);
                }
                if let Some(exit) = inner.exit {
                    break Step::Exited(exit);
                }
                inner = wait(&shell.changed, inner);
            }
        };
        match step {
            Step::Output(slice) => {
                if slice.lost > 0 {
                    conn.send(&Response::ShellOutputLost {
                        offset: slice.offset - slice.lost,
                        lost_bytes: slice.lost,
                    })?;
                }
                if !slice.data.is_empty() {
                    conn.send(&Response::ShellOutput {
                        offset: slice.offset,
                        data: slice.data,
                    })?;
                }
            }
            Step::Exited(exit) => {
                conn.send(&Response::ShellExited(exit))?;
                drop(attached);
                forget(&shell);
                return Ok(());
            }
            Step::HostGone => return Ok(()),
        }
    }
}

fn write(id: &str, data: &[u8]) -> Result<(), GuestError> {
    if data.len() > SHELL_WRITE_MAX_BYTES {
        return Err(invalid(format!(
            "input of {} bytes for shell {id} is over the {SHELL_WRITE_MAX_BYTES} byte limit; send it in smaller writes",
            data.len()
        )));
    }
    let shell = find(id)?;
    if shell.has_exited() {
        return Err(exited(id));
    }
    let _writing = lock(&shell.writing);
    match pty::write(&shell.master, data, Instant::now() + WRITE_TIMEOUT) {
        Ok(written) if written == data.len() => Ok(()),
        Ok(written) => Err(error(
            GuestErrorKind::Io,
            format!(
                "shell {id} did not read its input for {}s ({written} of {} bytes written); interrupt what it runs and retry",
                WRITE_TIMEOUT.as_secs(),
                data.len()
            ),
        )),
        Err(err) if err.raw_os_error() == Some(libc::EIO) => Err(exited(id)),
        Err(err) => Err(error(
            GuestErrorKind::Io,
            format!("writing to shell {id} failed: {}", describe_io(&err)),
        )),
    }
}

fn send_signal(id: &str, signal: ShellSignal) -> Result<(), GuestError> {
    let shell = find(id)?;
    if shell.has_exited() {
        return Err(exited(id));
    }
    let signal = match signal {
        ShellSignal::Hup => Signal::SIGHUP,
        ShellSignal::Int => Signal::SIGINT,
        ShellSignal::Term => Signal::SIGTERM,
        ShellSignal::Kill => Signal::SIGKILL,
    };
    // The foreground process group, as the terminal driver would signal
    // it for Ctrl-C; the shell's own group when that cannot be read.
    let group = tcgetpgrp(&shell.master)
        .ok()
        .filter(|group| group.as_raw() > 0)
        .unwrap_or_else(|| Pid::from_raw(shell.pid as i32));
    match killpg(group, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(err) => Err(error(
            GuestErrorKind::Internal,
            format!(
                "signalling shell {id} failed: {}",
                err.desc().to_lowercase()
            ),
        )),
    }
}

fn resize(id: &str, cols: u16, rows: u16) -> Result<(), GuestError> {
    check_size(id, cols, rows)?;
    let shell = find(id)?;
    if shell.has_exited() {
        return Err(exited(id));
    }
    let mut inner = lock(&shell.inner);
    pty::set_size(&shell.master, cols, rows).map_err(|err| {
        error(
            GuestErrorKind::Io,
            format!("resizing shell {id} failed: {}", describe_io(&err)),
        )
    })?;
    inner.cols = cols;
    inner.rows = rows;
    Ok(())
}

fn close(id: &str) -> Result<(), GuestError> {
    let shell = find(id)?;
    if !shell.has_exited() {
        shell.hang_up(Signal::SIGHUP);
        if !shell.wait_exit(CLOSE_GRACE) {
            shell.hang_up(Signal::SIGKILL);
            if !shell.wait_exit(CLOSE_GRACE) {
                return Err(error(
                    GuestErrorKind::Internal,
                    format!(
                        "shell {id} (pid {}) did not exit after SIGKILL; it may be stuck in the kernel, retry the close",
                        shell.pid
                    ),
                ));
            }
        }
    }
    forget(&shell);
    Ok(())
}

fn list() -> Vec<ShellInfo> {
    let shells: Vec<Arc<Shell>> = lock(shells()).values().cloned().collect();
    let mut infos: Vec<ShellInfo> = shells.iter().map(|shell| shell.info()).collect();
    infos.sort_by(|a, b| a.shell_id.cmp(&b.shell_id));
    infos
}

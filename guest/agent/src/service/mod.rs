//! Services: long-running processes with readiness checks and logs.
//!
//! A service runs in its own session (so its own process group), with
//! stdin on `/dev/null` and stdout and stderr on pipes the agent reads.
//! Per service, threads:
//!
//! - an output pump polls both pipes and appends each chunk as a record to
//!   the service's log (see `log`) in arrival order;
//! - a waiter reaps the process (the agent is its parent) and records how
//!   it ended once the pump has drained the pipes (or after a short
//!   grace, when background children keep them open), so whoever learns
//!   of the exit finds the output in the log.
//!
//! [`Request::ServiceStart`] runs the readiness check on its own
//! connection thread (see `readiness`) and answers once the service is
//! ready, has failed, or ran out of time (then its group is killed). Logs
//! live under `/run/pyro-services/<name>/` (tmpfs, outside `/workspace`),
//! at most two files of 4 MiB.
//!
//! A service stays known after it ends (for status, logs and watches)
//! until it is removed or started again under the same name. Starting it
//! again keeps the previous run's last log file ahead of the new run's,
//! after a `[pyro] service NAME started again; ...` line on stderr (see
//! `log`); removing it deletes its logs.

mod log;
mod readiness;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use pyro_guest_protocol::{
    CommandLine, GuestError, GuestErrorKind, OutputStream, Request, Response, ServiceInfo,
    ServiceLogsSummary, ServiceStartRequest, ServiceStarted, ServiceState, ServiceStopReason,
    Termination, CHUNK_BYTES,
};

use crate::server::{Channel, Connection};
use crate::shell::common::{
    check_cwd, check_env, check_name, describe_io, error, invalid, lock, now_ms, on_host_gone,
    termination, wait, wait_for,
};
use log::{LineCounter, LineSkipper, LogWriter, RecordReader};
use readiness::Check;

/// Where service logs live unless [`set_log_root`] said otherwise.
const DEFAULT_LOG_ROOT: &str = "/run/pyro-services";
/// The shortest interval between readiness checks.
const MIN_READY_INTERVAL: Duration = Duration::from_millis(10);
/// How long a process gets to go after `SIGKILL`.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The longest readiness timeout, interval or stop grace honoured; longer
/// ones are cut to this (and could not overflow a clock).
const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long [`Request::ServiceRemove`] waits after `SIGTERM`.
const REMOVE_GRACE: Duration = Duration::from_secs(5);
/// After the process exits, how long to wait for its output pipes to
/// close (background children may hold them) before recording the exit.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

static LOG_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Puts service logs under `dir` instead of `/run/pyro-services`: for
/// hosts running the agent's handler (tests). Takes effect only before the
/// first service starts; returns whether `dir` is the root in use.
pub fn set_log_root(dir: &Path) -> bool {
    LOG_ROOT.get_or_init(|| dir.to_owned()) == dir
}

fn log_root() -> &'static Path {
    LOG_ROOT.get_or_init(|| PathBuf::from(DEFAULT_LOG_ROOT))
}

/// One service.
#[derive(Debug)]
struct Service {
    name: String,
    pid: u32,
    started: Instant,
    started_at_ms: u64,
    inner: Mutex<Inner>,
    changed: Condvar,
}

#[derive(Debug)]
struct Inner {
    state: ServiceState,
    stop_reason: Option<ServiceStopReason>,
    exit: Option<Termination>,
    ended_at_ms: Option<u64>,
    ready_after_ms: Option<u64>,
    stdout_bytes: u64,
    stderr_bytes: u64,
    output_closed: bool,
    log: LogWriter,
    /// Set when writing failed, or the files were deleted or replaced.
    log_closed: bool,
}

impl Service {
    fn group(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }

    fn info(&self) -> ServiceInfo {
        let inner = lock(&self.inner);
        ServiceInfo {
            name: self.name.clone(),
            pid: self.pid,
            alive: inner.exit.is_none(),
            state: inner.state,
            stop_reason: inner.stop_reason,
            exit: inner.exit,
            started_at_ms: self.started_at_ms,
            ended_at_ms: inner.ended_at_ms,
            ready_after_ms: inner.ready_after_ms,
            stdout_bytes: inner.stdout_bytes,
            stderr_bytes: inner.stderr_bytes,
            log_bytes: inner.log.size(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Waits until the exit is recorded or `limit` passed.
    fn wait_exit(&self, limit: Duration) -> Option<Termination> {
        let deadline = Instant::now() + limit;
        let mut inner = lock(&self.inner);
        loop {
            if let Some(exit) = inner.exit {
                return Some(exit);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inner = wait_for(&self.changed, inner, deadline - now);
        }
    }

    /// Whether any process of the group is left.
    fn group_alive(&self) -> bool {
        killpg(self.group(), None).is_ok()
    }

    /// `SIGTERM` to the group, `SIGKILL` after `grace` if anything of it
    /// is left; returns the exit and whether `SIGKILL` was needed. A
    /// process that already ended keeps its state, but what is left of its
    /// group (background children) is stopped all the same.
    fn stop(&self, grace: Duration) -> Result<(Termination, bool), GuestError> {
        let ended = {
            let mut inner = lock(&self.inner);
            if inner.exit.is_none() {
                inner.state = ServiceState::Stopped;
                inner.stop_reason = Some(ServiceStopReason::StopRequested);
            }
            inner.exit
        };
        if let Some(exit) = ended {
            if !self.group_alive() {
                return Ok((exit, false));
            }
        }
        let deadline = Instant::now() + grace;
        let _ = killpg(self.group(), Signal::SIGTERM);
        let mut exit = ended.or_else(|| self.wait_exit(grace));
        // The leader may be gone while others of its group linger.
        while exit.is_some() && self.group_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = exit.is_none() || self.group_alive();
        if killed {
            let _ = killpg(self.group(), Signal::SIGKILL);
            exit = exit.or_else(|| self.wait_exit(KILL_WAIT));
        }
        match exit {
            Some(exit) => Ok((exit, killed)),
            None => Err(error(
                GuestErrorKind::Internal,
                format!(
                    "service {} (pid {}) did not exit after SIGKILL; it may be stuck in the kernel, retry the stop",
                    self.name, self.pid
                ),
            )),
        }
    }
}

fn services() -> &'static Mutex<HashMap<String, Arc<Service>>> {
    static SERVICES: OnceLock<Mutex<HashMap<String, Arc<Service>>>> = OnceLock::new();
    SERVICES.get_or_init(Mutex::default)
}

fn find(name: &str) -> Result<Arc<Service>, GuestError> {
    lock(services()).get(name).cloned().ok_or_else(|| {
        error(
            GuestErrorKind::NotFound,
            format!("service {name} does not exist; start it first or list the known services"),
        )
    })
}

/// Runs one service request on `conn` and sends its answer.
pub(crate) fn serve<S: Channel>(conn: &mut Connection<S>, request: Request) -> io::Result<()> {
    let outcome = match request {
        Request::ServiceStart(req) => start(&req).map(Response::ServiceStarted),
        Request::ServiceWatch { name } => return watch(conn, &name),
        Request::ServiceStop { name, grace_ms } => find(&name)
            .and_then(|service| service.stop(Duration::from_millis(grace_ms).min(MAX_WAIT)))
            .map(|(exit, killed)| Response::ServiceStopped { exit, killed }),
        Request::ServiceStatus { name } => {
            find(&name).map(|service| Response::ServiceStatus(service.info()))
        }
        Request::ServiceList => Ok(Response::Services(list())),
        Request::ServiceLogs {
            name,
            tail_lines,
            follow,
        } => return logs(conn, &name, tail_lines, follow),
        Request::ServiceRemove { name } => remove(&name).map(|()| Response::Done),
        _ => Err(invalid("not a service operation")),
    };
    match outcome {
        Ok(response) => conn.send(&response),
        Err(error) => conn.send(&Response::Error(error)),
    }
}

/// A [`Command`] for `line`; `what` names it in errors.
fn command_for(line: &CommandLine, name: &str, what: &str) -> Result<Command, GuestError> {
    match line {
        CommandLine::Argv(argv) => match argv.split_first() {
            Some((program, args)) if !program.is_empty() => {
                let mut command = Command::new(program);
                command.args(args);
                Ok(command)
            }
            _ => Err(invalid(format!(
                "the {what} of service {name} is empty; give a program to run"
            ))),
        },
        CommandLine::Shell(line) if !line.trim().is_empty() => {
            let mut command = Command::new("/bin/sh");
            command.arg("-lc").arg(line);
            Ok(command)
        }
        CommandLine::Shell(_) => Err(invalid(format!(
            "the {what} of service {name} is empty; give a program to run"
        ))),
    }
}

fn start(req: &ServiceStartRequest) -> Result<ServiceStarted, GuestError> {
    let name = req.name.as_str();
    check_name("service name", name)?;
    let owner = format!("service {name}");
    check_cwd(&owner, &req.cwd)?;
    check_env(&owner, &req.env)?;
    let mut command = command_for(&req.command, name, "command")?;
    let check = req
        .readiness
        .as_ref()
        .map(|readiness| readiness::prepare(readiness, name, &req.cwd))
        .transpose()?;

    let service = {
        let mut registry = lock(services());
        let mut previous_exit = None;
        if let Some(old) = registry.get(name) {
            let mut old = lock(&old.inner);
            if old.exit.is_none() {
                return Err(invalid(format!(
                    "service {name} is already running; stop it first or pick another name"
                )));
            }
            // Whatever the old run's leftovers still print goes nowhere:
            // its log is about to become the older file of the new one.
            old.log_closed = true;
            previous_exit = old.exit;
        }
        let dir = log_root().join(name);
        let separator = run_separator(name, previous_exit);
        let log =
            LogWriter::create(&dir, log::ROTATE_BYTES, separator.as_bytes()).map_err(|err| {
                error(
                    GuestErrorKind::Io,
                    format!(
                        "cannot create the log of service {name} in {}: {}",
                        dir.display(),
                        describe_io(&err)
                    ),
                )
            })?;
        command
            .current_dir(&req.cwd)
            .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the closure makes one system call
        // (setsid), which is async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
        }
        let mut child = command.spawn().map_err(|err| {
            error(
                if err.kind() == io::ErrorKind::NotFound {
                    GuestErrorKind::NotFound
                } else {
                    GuestErrorKind::SpawnFailed
                },
                format!("cannot start service {name}: {}", describe_io(&err)),
            )
        })?;
        let service = Arc::new(Service {
            name: name.to_owned(),
            pid: child.id(),
            started: Instant::now(),
            started_at_ms: now_ms(),
            inner: Mutex::new(Inner {
                state: ServiceState::Starting,
                stop_reason: None,
                exit: None,
                ended_at_ms: None,
                ready_after_ms: None,
                stdout_bytes: 0,
                stderr_bytes: 0,
                output_closed: false,
                log,
                log_closed: false,
            }),
            changed: Condvar::new(),
        });
        let pipes = (child.stdout.take(), child.stderr.take());
        if let Err(err) = start_threads(&service, child, pipes) {
            let _ = killpg(service.group(), Signal::SIGKILL);
            return Err(error(
                GuestErrorKind::Internal,
                format!("cannot watch service {name}: {}", describe_io(&err)),
            ));
        }
        registry.insert(name.to_owned(), Arc::clone(&service));
        service
    };
    Ok(wait_ready(&service, check.as_ref(), req))
}

/// The line between a previous run's log and a new run's.
fn run_separator(name: &str, previous: Option<Termination>) -> String {
    let ended = match previous {
        Some(Termination {
            signal: Some(signal),
            ..
        }) => format!("was killed by signal {signal}"),
        Some(exit) => format!("exited with code {}", exit.exit_code),
        None => "ended".to_owned(),
    };
    format!("[pyro] service {name} started again; the lines above are from its previous run, which {ended}\n")
}

fn start_threads(
    service: &Arc<Service>,
    mut child: Child,
    pipes: (
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ),
) -> io::Result<()> {
    let pump = Arc::clone(service);
    let stdout = pipes
        .0
        .map(|pipe| File::from(std::os::fd::OwnedFd::from(pipe)));
    let stderr = pipes
        .1
        .map(|pipe| File::from(std::os::fd::OwnedFd::from(pipe)));
    let spawned = std::thread::Builder::new()
        .name("service-out".into())
        .spawn(move || pump_output(&pump, stdout, stderr));
    if let Err(err) = spawned {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    let waiter = Arc::clone(service);
    std::thread::Builder::new()
        .name("service-wait".into())
        .spawn(move || reap(&waiter, child))
        .map(drop)
}

/// Appends what the service writes to its log until both pipes close.
fn pump_output(service: &Service, stdout: Option<File>, stderr: Option<File>) {
    let mut pipes = [
        (OutputStream::Stdout, stdout),
        (OutputStream::Stderr, stderr),
    ];
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let mut ready = [false; 2];
        {
            let open: Vec<(usize, &File)> = pipes
                .iter()
                .enumerate()
                .filter_map(|(i, (_, pipe))| pipe.as_ref().map(|pipe| (i, pipe)))
                .collect();
            if open.is_empty() {
                break;
            }
            let mut fds: Vec<PollFd<'_>> = open
                .iter()
                .map(|(_, pipe)| PollFd::new(pipe.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    crate::log(&format!(
                        "polling the output of service {} failed: {err}",
                        service.name
                    ));
                    break;
                }
            }
            for ((i, _), fd) in open.iter().zip(&fds) {
                ready[*i] = fd.revents().is_some_and(|r| !r.is_empty());
            }
        }
        for (i, (stream, pipe)) in pipes.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            let Some(file) = pipe.as_mut() else { continue };
            match file.read(&mut buf) {
                Ok(0) => *pipe = None,
                Ok(n) => record(service, *stream, &buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => *pipe = None,
            }
        }
    }
    lock(&service.inner).output_closed = true;
    service.changed.notify_all();
}

fn record(service: &Service, stream: OutputStream, data: &[u8]) {
    let mut inner = lock(&service.inner);
    match stream {
        OutputStream::Stdout => inner.stdout_bytes += data.len() as u64,
        OutputStream::Stderr => inner.stderr_bytes += data.len() as u64,
    }
    if !inner.log_closed {
        if let Err(err) = inner.log.append(stream, data) {
            crate::log(&format!(
                "writing the log of service {} failed: {err}; its output is no longer logged",
                service.name
            ));
            inner.log_closed = true;
        }
    }
    drop(inner);
    service.changed.notify_all();
}

/// Reaps the process and records how it ended.
fn reap(service: &Service, mut child: Child) {
    let exit = match child.wait() {
        Ok(status) => termination(status),
        Err(err) => {
            crate::log(&format!(
                "waiting for service {} failed: {err}",
                service.name
            ));
            Termination {
                exit_code: 255,
                signal: None,
            }
        }
    };
    let ended_at_ms = now_ms();
    // Let the pump catch up first, so whoever learns of the exit finds
    // the output in the log.
    let deadline = Instant::now() + DRAIN_GRACE;
    let mut inner = lock(&service.inner);
    while !inner.output_closed {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        inner = wait_for(&service.changed, inner, deadline - now);
    }
    inner.exit = Some(exit);
    inner.ended_at_ms = Some(ended_at_ms);
    if inner.state == ServiceState::Running {
        inner.state = ServiceState::Exited;
    }
    drop(inner);
    service.changed.notify_all();
}

/// Checks readiness every interval until it passes, the process ends, or
/// the timeout expires (then the group is killed).
fn wait_ready(
    service: &Service,
    check: Option<&Check>,
    req: &ServiceStartRequest,
) -> ServiceStarted {
    let deadline = service.started + Duration::from_millis(req.ready_timeout_ms).min(MAX_WAIT);
    let interval = Duration::from_millis(req.ready_interval_ms).clamp(MIN_READY_INTERVAL, MAX_WAIT);
    loop {
        {
            let mut inner = lock(&service.inner);
            if inner.state != ServiceState::Starting {
                // Stopped while starting.
                return outcome(service, &inner);
            }
            if inner.exit.is_some() {
                inner.state = ServiceState::Failed;
                inner.stop_reason = Some(ServiceStopReason::ProcessExitedBeforeReady);
                return outcome(service, &inner);
            }
        }
        let next_check = Instant::now() + interval;
        let ready = match check {
            None => true,
            Some(check) => readiness::passes(
                check,
                &req.cwd,
                &req.env,
                deadline.saturating_duration_since(Instant::now()),
            ),
        };
        let mut inner = lock(&service.inner);
        if ready && inner.state == ServiceState::Starting {
            inner.ready_after_ms = Some(service.elapsed_ms());
            // Ready, and perhaps already gone again.
            inner.state = if inner.exit.is_some() {
                ServiceState::Exited
            } else {
                ServiceState::Running
            };
            return outcome(service, &inner);
        }
        let now = Instant::now();
        if now >= deadline && inner.state == ServiceState::Starting && inner.exit.is_none() {
            inner.state = ServiceState::Failed;
            inner.stop_reason = Some(ServiceStopReason::ReadinessTimeout);
            drop(inner);
            let _ = killpg(service.group(), Signal::SIGKILL);
            let _ = service.wait_exit(KILL_WAIT);
            return outcome(service, &lock(&service.inner));
        }
        // Until the next check (output wakes this up too, so re-wait),
        // unless the process ends or is stopped first.
        let until = next_check.min(deadline);
        while inner.exit.is_none() && inner.state == ServiceState::Starting {
            let now = Instant::now();
            if now >= until {
                break;
            }
            inner = wait_for(&service.changed, inner, until - now);
        }
    }
}

fn outcome(service: &Service, inner: &Inner) -> ServiceStarted {
    ServiceStarted {
        pid: service.pid,
        state: inner.state,
        stop_reason: inner.stop_reason,
        ready_after_ms: inner.ready_after_ms.unwrap_or_else(|| service.elapsed_ms()),
    }
}

fn watch<S: Channel>(conn: &mut Connection<S>, name: &str) -> io::Result<()> {
    let service = match find(name) {
        Ok(service) => service,
        Err(error) => return conn.send(&Response::Error(error)),
    };
    let gone = watch_host(conn, &service);
    let exit = {
        let mut inner = lock(&service.inner);
        loop {
            if let Some(exit) = inner.exit {
                break exit;
            }
            if gone.load(Ordering::SeqCst) {
                return Ok(());
            }
            inner = wait(&service.changed, inner);
        }
    };
    conn.send(&Response::ServiceExited(exit))
}

/// Starts a watcher that raises the returned flag (and wakes the
/// service's waiters) when the host hangs up.
fn watch_host<S: Channel>(conn: &Connection<S>, service: &Arc<Service>) -> Arc<AtomicBool> {
    let gone = Arc::new(AtomicBool::new(false));
    match conn.try_clone_stream() {
        Ok(stream) => {
            let watched = Arc::clone(service);
            let flag = Arc::clone(&gone);
            on_host_gone(stream, move || {
                let _inner = lock(&watched.inner);
                flag.store(true, Ordering::SeqCst);
                watched.changed.notify_all();
            });
        }
        Err(err) => crate::log(&format!(
            "cannot watch the host of service {}: {err}",
            service.name
        )),
    }
    gone
}

fn list() -> Vec<ServiceInfo> {
    let services: Vec<Arc<Service>> = lock(services()).values().cloned().collect();
    let mut infos: Vec<ServiceInfo> = services.iter().map(|service| service.info()).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

fn remove(name: &str) -> Result<(), GuestError> {
    check_name("service name", name)?;
    let known = lock(services()).get(name).cloned();
    if let Some(service) = &known {
        service.stop(REMOVE_GRACE)?;
        lock(&service.inner).log_closed = true;
        let mut registry = lock(services());
        if registry
            .get(name)
            .is_some_and(|current| Arc::ptr_eq(current, service))
        {
            registry.remove(name);
        }
    }
    let dir = log_root().join(name);
    let had_logs = match std::fs::remove_dir_all(&dir) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => {
            return Err(error(
                GuestErrorKind::Io,
                format!(
                    "deleting the logs of service {name} in {} failed: {}",
                    dir.display(),
                    describe_io(&err)
                ),
            ))
        }
    };
    if known.is_none() && !had_logs {
        return Err(error(
            GuestErrorKind::NotFound,
            format!("service {name} does not exist; nothing to remove"),
        ));
    }
    Ok(())
}

/// Counts records sent, for the summary.
#[derive(Debug, Default)]
struct Sent {
    records: u64,
    bytes: u64,
}

impl Sent {
    fn send<S: Channel>(
        &mut self,
        conn: &mut Connection<S>,
        stream: OutputStream,
        data: &[u8],
    ) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.records += 1;
        self.bytes += data.len() as u64;
        conn.send(&Response::Output {
            stream,
            data: data.to_vec(),
        })
    }
}

fn logs<S: Channel>(
    conn: &mut Connection<S>,
    name: &str,
    tail_lines: Option<u64>,
    follow: bool,
) -> io::Result<()> {
    let service = match find(name) {
        Ok(service) => service,
        Err(error) => return conn.send(&Response::Error(error)),
    };
    match stream_logs(conn, &service, tail_lines, follow) {
        Ok(Streamed::Done(summary)) => conn.send(&Response::ServiceLogsDone(summary)),
        Ok(Streamed::HostGone) => Ok(()),
        Err(Failure::File(err)) => conn.send(&Response::Error(error(
            GuestErrorKind::Io,
            format!(
                "reading the log of service {name} failed: {}; retry, or restart the service",
                describe_io(&err)
            ),
        ))),
        Err(Failure::Channel(err)) => Err(err),
    }
}

enum Streamed {
    Done(ServiceLogsSummary),
    HostGone,
}

/// Why streaming logs stopped early.
enum Failure {
    /// A log file could not be read; reported to the host.
    File(io::Error),
    /// The connection broke.
    Channel(io::Error),
}

fn stream_logs<S: Channel>(
    conn: &mut Connection<S>,
    service: &Arc<Service>,
    tail_lines: Option<u64>,
    follow: bool,
) -> Result<Streamed, Failure> {
    // What is there now: the older file (whole) and the current one up to
    // its last whole record. Opened under the lock the writer rotates
    // under, so the generations are right.
    let (files, generation, current_len, discarded) = {
        let inner = lock(&service.inner);
        let log = &inner.log;
        let mut files = Vec::new();
        for generation in log.oldest()..=log.generation() {
            if let Some(file) = log.open(generation).map_err(Failure::File)? {
                files.push(file);
            }
        }
        (files, log.generation(), log.current_len(), log.discarded())
    };
    let last = files.len().saturating_sub(1);
    let limit_of = |i: usize| (i == last).then_some(current_len);

    let mut skip = 0;
    if let Some(tail) = tail_lines {
        let mut counter = LineCounter::default();
        for (i, file) in files.iter().enumerate() {
            let mut reader = RecordReader::new(file.try_clone().map_err(Failure::File)?);
            while let Some((_, data)) = reader.next(limit_of(i)).map_err(Failure::File)? {
                counter.add(&data);
            }
        }
        skip = counter.lines().saturating_sub(tail);
    }

    let mut sent = Sent::default();
    let mut skipper = LineSkipper::new(skip);
    let mut truncated = discarded || skip > 0;
    let mut current = None;
    for (i, mut file) in files.into_iter().enumerate() {
        // The counting pass moved the (shared) offset.
        file.seek(SeekFrom::Start(0)).map_err(Failure::File)?;
        let mut reader = RecordReader::new(file);
        while let Some((stream, data)) = reader.next(limit_of(i)).map_err(Failure::File)? {
            let kept = skipper.keep(&data);
            sent.send(conn, stream, kept).map_err(Failure::Channel)?;
        }
        current = Some(reader);
    }

    if follow {
        if let Some(reader) = current {
            let gone = watch_host(conn, service);
            match follow_log(conn, service, &gone, reader, generation, &mut sent)? {
                Some(lost) => truncated |= lost,
                None => return Ok(Streamed::HostGone),
            }
        }
    }
    let exit = lock(&service.inner).exit;
    Ok(Streamed::Done(ServiceLogsSummary {
        records: sent.records,
        bytes: sent.bytes,
        truncated,
        exit,
    }))
}

/// Streams new records as they are written, across rotations, until the
/// service's output is finished (`Some(whether output was lost)`) or the
/// host hangs up (`None`).
fn follow_log<S: Channel>(
    conn: &mut Connection<S>,
    service: &Service,
    gone: &AtomicBool,
    mut reader: RecordReader,
    mut generation: u64,
    sent: &mut Sent,
) -> Result<Option<bool>, Failure> {
    let mut lost = false;
    loop {
        // Under the lock: how far the current file may be read, or that
        // ours was rotated away (then it is complete and read to its end).
        let limit = {
            let mut inner = lock(&service.inner);
            loop {
                if gone.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let log = &inner.log;
                if generation != log.generation() {
                    break None;
                }
                if reader.pos() < log.current_len() {
                    break Some(log.current_len());
                }
                // The exit is recorded once the output is drained.
                if inner.exit.is_some() {
                    return Ok(Some(lost));
                }
                inner = wait(&service.changed, inner);
            }
        };
        while let Some((stream, data)) = reader.next(limit).map_err(Failure::File)? {
            sent.send(conn, stream, &data).map_err(Failure::Channel)?;
        }
        if limit.is_none() {
            // On to the next generation still kept.
            let inner = lock(&service.inner);
            let log = &inner.log;
            let next = (generation + 1).max(log.oldest());
            lost |= next > generation + 1;
            match log.open(next).map_err(Failure::File)? {
                Some(file) => {
                    reader = RecordReader::new(file);
                    generation = next;
                }
                None => return Ok(Some(true)),
            }
        }
    }
}

//! A fake VMM for testing actor logic in milliseconds, without a guest.
//!
//! "Launching" starts a thread that plays the guest side of the real wire:
//! it listens on the VM's hybrid-vsock socket, answers `CONNECT` with `OK`,
//! does the version handshake, and serves pings, power-off, and a toy exec
//! (`exit N` exits with N; anything else is echoed to stdout). It sends the
//! ready notice to the host's ready socket like the real agent does, or a
//! boot failure, or nothing, as configured.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyro_guest_protocol::{
    read_frame, write_frame, BootFailure, ClientHello, CommandLine, ExitStatus, GuestNotice,
    OutputStream, ReadyNotice, Request, Response, ServerHello, AGENT_VERSION, MAGIC,
    PROTOCOL_VERSION,
};
use tokio::sync::watch;

use super::backend::{ExitFuture, LaunchedVm, VmSpec, Vmm};
use crate::error::{ActorError, Result};
use crate::process::ProcessExit;

/// How the fake guest behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FakeBoot {
    /// Boots and says it is ready.
    #[default]
    Ready,
    /// Reports a boot failure at this stage, then "powers off".
    Fails(String),
    /// Never says anything (to test boot timeouts).
    Silent,
    /// The VMM process "exits" right after launch.
    Crashes,
}

/// A VMM whose guests are threads.
#[derive(Debug, Clone, Default)]
pub struct FakeVmm {
    boot: FakeBoot,
    launches: Arc<AtomicU32>,
    running: Arc<Mutex<Vec<Arc<FakeVmState>>>>,
}

impl FakeVmm {
    /// A fake whose guests boot as `boot` says.
    pub fn new(boot: FakeBoot) -> Self {
        Self {
            boot,
            ..Self::default()
        }
    }

    /// How many VMs were launched.
    pub fn launches(&self) -> u32 {
        self.launches.load(Ordering::SeqCst)
    }

    /// Simulates the VMM process dying (like `kill -9 qemu`) for every VM.
    pub fn crash_all(&self) {
        if let Ok(running) = self.running.lock() {
            for vm in running.iter() {
                vm.exit(ProcessExit::Signal(libc::SIGKILL));
            }
        }
    }

    /// VMs whose process has not exited.
    pub fn live_vms(&self) -> usize {
        self.running
            .lock()
            .map(|running| running.iter().filter(|vm| !vm.exited()).count())
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct FakeVmState {
    socket: PathBuf,
    stop: AtomicBool,
    exit_tx: watch::Sender<Option<ProcessExit>>,
}

impl FakeVmState {
    fn exit(&self, exit: ProcessExit) {
        self.stop.store(true, Ordering::SeqCst);
        self.exit_tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(exit);
                true
            } else {
                false
            }
        });
        // Wake the accept loop so the thread ends.
        let _ = UnixStream::connect(&self.socket);
    }

    fn exited(&self) -> bool {
        self.exit_tx.borrow().is_some()
    }
}

impl Vmm for FakeVmm {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn adopt(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>> {
        Err(ActorError::NotAdoptable {
            run_dir: spec.run_dir.clone(),
            detail: "the fake backend does not adopt".to_owned(),
        })
    }

    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        std::fs::create_dir_all(&spec.run_dir)
            .map_err(|err| ActorError::host_io("creating", &spec.run_dir, err))?;
        let socket = spec.vsock_socket();
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|err| ActorError::host_io("listening on", &socket, err))?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let state = Arc::new(FakeVmState {
            socket: socket.clone(),
            stop: AtomicBool::new(false),
            exit_tx,
        });
        if let Ok(mut running) = self.running.lock() {
            running.push(Arc::clone(&state));
        }
        let boot = self.boot.clone();
        let ready_socket = spec.ready_socket();
        let thread_state = Arc::clone(&state);
        std::thread::spawn(move || fake_guest(&listener, &ready_socket, &boot, &thread_state));
        if self.boot == FakeBoot::Crashes {
            state.exit(ProcessExit::Code(1));
        }
        Ok(Box::new(FakeVm {
            state,
            exit_rx,
            console: format!("fake console of {}", spec.vm_id),
        }))
    }
}

fn fake_guest(
    listener: &UnixListener,
    ready_socket: &std::path::Path,
    boot: &FakeBoot,
    state: &Arc<FakeVmState>,
) {
    let notice = match boot {
        FakeBoot::Ready => Some(GuestNotice::Ready(ReadyNotice {
            magic: MAGIC,
            protocol_version: PROTOCOL_VERSION,
            agent_version: AGENT_VERSION.to_owned(),
            uptime_ms: 1,
        })),
        FakeBoot::Fails(stage) => Some(GuestNotice::BootFailed(BootFailure {
            stage: stage.clone(),
            errno: Some(2),
            message: "no such file or directory".to_owned(),
        })),
        FakeBoot::Silent | FakeBoot::Crashes => None,
    };
    if let Some(notice) = notice {
        std::thread::sleep(Duration::from_millis(5));
        if let Ok(mut stream) = UnixStream::connect(ready_socket) {
            let _ = write_frame(&mut stream, &notice);
        }
    }
    if matches!(boot, FakeBoot::Fails(_)) {
        state.exit(ProcessExit::Code(0));
        return;
    }
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(state);
        std::thread::spawn(move || serve(stream, &state));
    }
}

fn serve(stream: UnixStream, state: &FakeVmState) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || !line.starts_with("CONNECT ") {
        return;
    }
    let port = line.trim_start_matches("CONNECT ").trim().to_owned();
    if writeln!(writer, "OK {port}").is_err() {
        return;
    }
    let Ok(hello) = read_frame::<_, ClientHello>(&mut reader) else {
        return;
    };
    let reply = ServerHello {
        magic: MAGIC,
        version: hello.max_version.min(PROTOCOL_VERSION),
        agent_version: AGENT_VERSION.to_owned(),
    };
    if write_frame(&mut writer, &reply).is_err() {
        return;
    }
    let Ok(request) = read_frame::<_, Request>(&mut reader) else {
        return;
    };
    let _ = match request {
        Request::Ping => write_frame(
            &mut writer,
            &Response::Pong {
                agent_version: AGENT_VERSION.to_owned(),
                uptime_ms: 2,
            },
        ),
        Request::PowerOff => {
            let sent = write_frame(&mut writer, &Response::Done);
            state.exit(ProcessExit::Code(0));
            sent
        }
        Request::Exec(exec) => {
            let line = match exec.command {
                CommandLine::Shell(line) => line,
                CommandLine::Argv(argv) => argv.join(" "),
            };
            let exit_code = line
                .strip_prefix("exit ")
                .and_then(|code| code.trim().parse().ok())
                .unwrap_or(0);
            let _ = write_frame(&mut writer, &Response::ExecStarted { pid: 100 });
            if exit_code == 0 {
                let _ = write_frame(
                    &mut writer,
                    &Response::Output {
                        stream: OutputStream::Stdout,
                        data: format!("{line}\n").into_bytes(),
                    },
                );
            }
            write_frame(
                &mut writer,
                &Response::ExecExited(ExitStatus {
                    exit_code,
                    signal: None,
                    timed_out: false,
                    duration_ms: 1,
                }),
            )
        }
        _ => write_frame(
            &mut writer,
            &Response::Error(pyro_guest_protocol::GuestError {
                kind: pyro_guest_protocol::GuestErrorKind::InvalidRequest,
                message: "the fake guest only serves ping, exec and power-off".to_owned(),
            }),
        ),
    };
}

#[derive(Debug)]
struct FakeVm {
    state: Arc<FakeVmState>,
    exit_rx: watch::Receiver<Option<ProcessExit>>,
    console: String,
}

impl LaunchedVm for FakeVm {
    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }

    fn wait_exit(&self) -> ExitFuture<'_> {
        let mut rx = self.exit_rx.clone();
        Box::pin(async move {
            match rx.wait_for(Option::is_some).await {
                Ok(exit) => exit.clone().unwrap_or(ProcessExit::Unknown),
                Err(_) => ProcessExit::Unknown,
            }
        })
    }

    fn kill(&self) {
        self.state.exit(ProcessExit::Signal(libc::SIGKILL));
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.state.socket);
    }

    fn console_tail(&self, _lines: usize) -> String {
        self.console.clone()
    }
}

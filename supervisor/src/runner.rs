//! One-shot runs: an ephemeral VM that lives for one command.
//!
//! The run is a task of its own, not tied to the HTTP response: if the client
//! goes away (Ctrl-C), the command is abandoned (closing the guest connection
//! kills its process group) and the VM is still deleted. The whole run is
//! bounded by its TTL.
//!
//! Events, in order: `phase=create` (with install progress when the
//! environment is missing), `phase=start`, `phase=execute`, output chunks,
//! then one `result` or `error`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::Addr;
use pyro_actors::vm::disk::create_data_disk;
use pyro_actors::vm::{AwaitExit, OpenGuest, StartVm, StopVm, VmActor, VmSpec};
use pyro_actors::vsock::ExecEvent;
use pyro_guest_protocol::{CommandLine, ExecRequest, OutputStream};
use pyro_sdk::api::{
    Cleanup, CommandSpec, ErrorBody, OutputChunk, PhaseChange, RunEvent, RunPhase, RunRequest,
    RunSummary, StreamName, EXECUTION_MODE,
};
use tokio::sync::mpsc;

use crate::config::DEFAULT_DISK_MIB;
use crate::env_manager::EnsureEnvironment;
use crate::error::SupervisorError;
use crate::ids::new_id;
use crate::root::{ForgetVm, SpawnVm};
use crate::runtime::Runtime;

/// Events buffered between a run and its client.
pub const EVENT_BUFFER: usize = 64;

/// Starts a run; its events arrive on the returned receiver.
pub fn start(runtime: Runtime, request: RunRequest) -> mpsc::Receiver<RunEvent> {
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    actix::spawn(async move {
        let events = Events { tx };
        if let Err(message) = request.validate() {
            events
                .send(RunEvent::Error(
                    SupervisorError::InvalidRequest { message }.to_body(),
                ))
                .await;
            return;
        }
        let final_event = match run(&runtime, &request, &events).await {
            Ok(summary) => RunEvent::Result(summary),
            Err(body) => RunEvent::Error(body),
        };
        events.send(final_event).await;
    });
    rx
}

/// The run's event sink; remembers whether the client is still there.
struct Events {
    tx: mpsc::Sender<RunEvent>,
}

impl Events {
    /// Sends an event; `false` once the client has gone.
    async fn send(&self, event: RunEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    /// Resolves once the client has gone.
    async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// A VM created for the run, cleaned up whatever happens.
struct EphemeralVm {
    vm_id: String,
    addr: Addr<VmActor>,
    disk_dir: PathBuf,
    run_dir: PathBuf,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

async fn run(
    runtime: &Runtime,
    request: &RunRequest,
    events: &Events,
) -> Result<RunSummary, ErrorBody> {
    if let Some(unavailable) = &runtime.unavailable {
        return Err(unavailable.clone());
    }
    let bundle = runtime.bundle.clone()?;
    events
        .send(RunEvent::Phase(PhaseChange {
            phase: RunPhase::Create,
            environment: request.environment.clone(),
            vm_id: None,
        }))
        .await;

    let env = ensure_environment(runtime, &request.environment, events).await?;
    let slot = runtime.take_vm_slot().map_err(|err| err.to_body())?;
    let vm_id = new_id();
    let disk_dir = runtime.settings.vm_data_dir().join(&vm_id);
    let spec = {
        let env = env.clone();
        let mkfs = runtime.mkfs.clone();
        let disk_dir = disk_dir.clone();
        let run_dir = runtime.settings.vm_run_dir().join(&vm_id);
        let vm_id = vm_id.clone();
        let request = request.clone();
        blocking(move || -> Result<VmSpec, SupervisorError> {
            std::fs::create_dir_all(&disk_dir)
                .map_err(|source| SupervisorError::io("creating", &disk_dir, source))?;
            let data_disk = disk_dir.join("data.ext4");
            create_data_disk(&mkfs, &data_disk, DEFAULT_DISK_MIB)?;
            let initramfs = bundle.initramfs_for(&env)?;
            Ok(VmSpec {
                vm_id: vm_id.clone(),
                vcpu_count: request.vcpu_count,
                mem_mib: request.mem_mib,
                kernel: env.vmlinux.clone(),
                initramfs,
                root_disk: env.rootfs.clone(),
                data_disk,
                run_dir,
                hostname: "pyro".to_owned(),
            })
        })
        .await
        .and_then(|spec| spec)
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(err) => {
            remove_dir(disk_dir).await;
            return Err(err.to_body());
        }
    };
    let addr = match runtime.root.send(SpawnVm { spec }).await {
        Ok(Ok(addr)) => addr,
        Ok(Err(err)) => {
            remove_dir(disk_dir).await;
            return Err(err.to_body());
        }
        Err(_) => {
            remove_dir(disk_dir).await;
            return Err(gone("the supervision tree"));
        }
    };
    let vm = EphemeralVm {
        vm_id: vm_id.clone(),
        addr,
        disk_dir,
        run_dir: runtime.settings.vm_run_dir().join(&vm_id),
        _slot: slot,
    };

    let ttl = Duration::from_secs(request.ttl_seconds);
    let outcome = tokio::time::timeout(ttl, boot_and_execute(&vm, request, events)).await;
    let deleted = delete_vm(runtime, &vm).await;
    let (exit, boot_ms) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(body)) => return Err(body),
        Err(_) => {
            return Err(SupervisorError::TtlExpired {
                vm_id: vm.vm_id.clone(),
                seconds: request.ttl_seconds,
            }
            .to_body())
        }
    };
    Ok(RunSummary {
        vm_id: vm.vm_id.clone(),
        environment: request.environment.clone(),
        environment_version: env.manifest.version.clone(),
        command: request.command.display(),
        exit_code: exit.exit_code,
        duration_ms: exit.duration_ms,
        timed_out: exit.timed_out,
        execution_mode: EXECUTION_MODE.to_owned(),
        boot_ms,
        cleanup: Cleanup {
            vm_id: vm.vm_id.clone(),
            deleted,
            reason: "post_exec_cleanup".to_owned(),
        },
    })
}

async fn ensure_environment(
    runtime: &Runtime,
    name: &str,
    events: &Events,
) -> Result<crate::environment::InstalledEnvironment, ErrorBody> {
    let (progress_tx, mut progress_rx) = mpsc::channel(32);
    let ensure = runtime.environments.send(EnsureEnvironment {
        name: name.to_owned(),
        progress: Some(progress_tx),
    });
    tokio::pin!(ensure);
    loop {
        tokio::select! {
            result = &mut ensure => {
                while let Ok(progress) = progress_rx.try_recv() {
                    events.send(RunEvent::Pull(progress)).await;
                }
                return result.map_err(|_| gone("the environment manager"))?;
            }
            Some(progress) = progress_rx.recv() => {
                events.send(RunEvent::Pull(progress)).await;
            }
        }
    }
}

async fn boot_and_execute(
    vm: &EphemeralVm,
    request: &RunRequest,
    events: &Events,
) -> Result<(pyro_guest_protocol::ExitStatus, u64), ErrorBody> {
    events
        .send(RunEvent::Phase(PhaseChange {
            phase: RunPhase::Start,
            environment: request.environment.clone(),
            vm_id: Some(vm.vm_id.clone()),
        }))
        .await;
    let ready = vm
        .addr
        .send(StartVm)
        .await
        .map_err(|_| gone("the vm actor"))?
        .map_err(|err| SupervisorError::from(err).to_body())?;
    events
        .send(RunEvent::Phase(PhaseChange {
            phase: RunPhase::Execute,
            environment: request.environment.clone(),
            vm_id: Some(vm.vm_id.clone()),
        }))
        .await;
    let conn = vm
        .addr
        .send(OpenGuest)
        .await
        .map_err(|_| gone("the vm actor"))?
        .map_err(|err| SupervisorError::from(err).to_body())?;
    let exec = ExecRequest {
        command: match &request.command {
            CommandSpec::Argv(argv) => CommandLine::Argv(argv.clone()),
            CommandSpec::Shell(line) => CommandLine::Shell(line.clone()),
        },
        cwd: None,
        env: Vec::new(),
        timeout_ms: Some(request.timeout_seconds.saturating_mul(1000)),
    };
    let mut stream = match conn.exec(exec).await {
        Ok(stream) => stream,
        Err(err) => return Err(vm_error(vm, err).await),
    };
    let abandoned = || {
        ErrorBody::new(
            pyro_sdk::api::ErrorCode::Conflict,
            "the client disconnected; the command was abandoned",
        )
    };
    loop {
        // A silent command is abandoned as soon as the client goes, not at
        // its next output.
        let next = tokio::select! {
            next = stream.next() => next,
            () = events.closed() => return Err(abandoned()),
        };
        match next {
            Ok(ExecEvent::Output(stream_name, data)) => {
                let stream_name = match stream_name {
                    OutputStream::Stdout => StreamName::Stdout,
                    OutputStream::Stderr => StreamName::Stderr,
                };
                if !events
                    .send(RunEvent::Output(OutputChunk::new(stream_name, &data)))
                    .await
                {
                    // The client left: dropping the stream closes the guest
                    // connection, and the agent kills the command's group.
                    return Err(abandoned());
                }
            }
            Ok(ExecEvent::Exited(status)) => return Ok((status, ready.boot_ms)),
            Err(err) => return Err(vm_error(vm, err).await),
        }
    }
}

/// How long a broken guest channel waits to learn whether the VM died.
const EXIT_CHECK: Duration = Duration::from_secs(2);

/// Turns a channel error into "the VM died" when that is what happened.
async fn vm_error(vm: &EphemeralVm, err: pyro_actors::ActorError) -> ErrorBody {
    if matches!(err, pyro_actors::ActorError::Guest { .. }) {
        return SupervisorError::from(err).to_body();
    }
    match vm.addr.send(AwaitExit { within: EXIT_CHECK }).await {
        Ok(Some(report)) => SupervisorError::from(pyro_actors::ActorError::VmDied {
            vm_id: vm.vm_id.clone(),
            exit: report.exit,
            console: report.console,
        })
        .to_body(),
        _ => SupervisorError::from(err).to_body(),
    }
}

/// Stops the VM (which waits for its processes to be gone), forgets it,
/// and removes its disk and runtime files. Returns whether all went well.
async fn delete_vm(runtime: &Runtime, vm: &EphemeralVm) -> bool {
    let stopped = matches!(vm.addr.send(StopVm).await, Ok(Ok(())));
    let _ = runtime
        .root
        .send(ForgetVm {
            vm_id: vm.vm_id.clone(),
        })
        .await;
    remove_dir(vm.disk_dir.clone()).await;
    remove_dir(vm.run_dir.clone()).await;
    stopped
}

async fn remove_dir(dir: PathBuf) {
    let _ = blocking(move || std::fs::remove_dir_all(&dir)).await;
}

/// Runs blocking work off the arbiter thread.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SupervisorError> {
    let started = Instant::now();
    tokio::task::spawn_blocking(work).await.map_err(|join| {
        // A panic on the blocking pool is a bug; it is logged and reported.
        tracing::error!(error = %join, elapsed_ms = started.elapsed().as_millis() as u64, "blocking task failed");
        SupervisorError::ActorGone {
            what: format!("a background task ({join})"),
        }
    })
}

fn gone(what: &str) -> ErrorBody {
    SupervisorError::ActorGone {
        what: what.to_owned(),
    }
    .to_body()
}

//! The pyro supervisor: the daemon that owns every VM.
//!
//! [`serve`] runs it: take the state lock, clean up what a previous
//! supervisor left behind, probe the host, start the actor tree, and serve
//! the API on a Unix socket until asked to stop (SIGINT, SIGTERM or
//! `POST /v1/shutdown`).
//!
//! Shutting down: mark the pid file `stopping` and remove the socket (new
//! clients start a new supervisor, which waits for this one to exit), stop
//! every VM (boots under way included) through the root, kill whatever VM
//! process is still listed in a run directory's ledger, stop the API, and
//! remove the pid file; the state lock goes with the process. So once the
//! process is gone, so is everything it ran.
//!
//! # Layout
//!
//! - [`api`]: the HTTP API.
//! - [`root`], [`env_manager`]: the long-lived actors.
//! - [`runner`]: one-shot runs.
//! - [`environment`]: catalog, cache and local builds of environments.
//! - [`guest_bundle`]: the init and agent shipped in every initramfs.
//! - [`host`], [`doctor`]: host probing and the doctor report.
//! - [`config`], [`runtime`], [`observability`], [`ids`], [`error`].

pub mod api;
pub mod config;
pub mod doctor;
pub mod env_manager;
pub mod environment;
pub mod error;
pub mod guest_bundle;
pub mod host;
pub mod ids;
pub mod observability;
pub mod reaper;
pub mod root;
pub mod runner;
pub mod runtime;
pub mod store;
pub mod workspace;

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use nix::fcntl::{Flock, FlockArg};
use pyro_actors::process::LedgerEntry;
use pyro_actors::vm::qemu::LEDGER_FILE;
use pyro_sdk::{PyroPaths, SupervisorPhase, SupervisorPidFile};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::api::ApiState;
use crate::config::Settings;
use crate::env_manager::EnvironmentManager;
use crate::environment::EnvironmentCache;
use crate::error::SupervisorError;
use crate::guest_bundle::GuestBundle;
use crate::host::{probe_kvm, HostPrograms};
use crate::root::{RootSupervisor, StopAllVms};
use crate::runtime::{select_backend, Runtime};

/// Runs the supervisor until it is asked to stop.
pub async fn serve(settings: Settings) -> Result<(), SupervisorError> {
    let paths = settings.paths.clone();
    make_private_dir(&paths.runtime_dir)?;
    std::fs::create_dir_all(&paths.data_dir)
        .map_err(|source| SupervisorError::io("creating", &paths.data_dir, source))?;
    let _lock = take_state_lock(&paths).await?;
    set_phase(&paths, SupervisorPhase::Starting);
    tracing::info!(
        version = pyro_sdk::VERSION,
        pid = std::process::id(),
        "supervisor starting"
    );
    let served = serve_locked(settings).await;
    let _ = std::fs::remove_file(paths.supervisor_pid_file());
    served
}

/// [`serve`], once the state lock is held.
async fn serve_locked(settings: Settings) -> Result<(), SupervisorError> {
    let paths = settings.paths.clone();
    let store = start_store(&paths.data_dir.join("pyro.db"))?;
    // One "now" for both: a workspace whose VM is not adopted because its
    // time to live passed is also removed rather than booted.
    let now = workspace::core::now_ms();
    let adoptable = adoptable_vms(&store, now).await?;
    reconcile_leftovers(&settings, &adoptable);

    let programs = HostPrograms::discover();
    let kvm = probe_kvm();
    let backend = select_backend(&programs, &kvm, settings.accel_override.as_deref());
    tracing::info!(accel = %backend.choice.accel, reason = %backend.choice.reason, "backend selected");
    let bundle = GuestBundle::prepare(settings.guest_dir.as_deref(), &paths.cache_dir)
        .map_err(|err| err.to_body());
    if let Err(body) = &bundle {
        tracing::error!(error = %body.chain(), "guest binaries unavailable");
    }
    let cache = Arc::new(EnvironmentCache::new(&paths.cache_dir));
    let environments = EnvironmentManager::new(Arc::clone(&cache)).start();
    let root = RootSupervisor::new(Arc::clone(&backend.vmm), settings.boot_timeout).start();
    let vm_slots = Arc::new(tokio::sync::Semaphore::new(settings.max_running_vms));
    let runtime = Runtime {
        mkfs: programs
            .mkfs
            .path
            .clone()
            .unwrap_or_else(|| "mkfs.ext4".into()),
        settings: Arc::new(settings),
        cache,
        programs: Arc::new(programs),
        kvm,
        backend: backend.choice,
        unavailable: backend.unavailable,
        bundle,
        root: root.clone(),
        environments,
        store,
        vmm: Arc::clone(&backend.vmm),
        vm_slots,
    };
    let vm_run_dir = runtime.settings.vm_run_dir();
    workspace::resume_all(&runtime, now).await?;
    let _reaper = reaper::Reaper::new(runtime.clone()).start();

    let socket = paths.socket();
    let _ = std::fs::remove_file(&socket);
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel(1);
    let server = api::bind(
        ApiState {
            runtime,
            shutdown: shutdown_tx,
        },
        &socket,
    )?;
    let handle = server.handle();
    let server_task = actix::spawn(server);
    set_phase(&paths, SupervisorPhase::Running);
    tracing::info!(socket = %socket.display(), "supervisor listening");

    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| {
        SupervisorError::io("installing a SIGTERM handler for", "the supervisor", source)
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| {
        SupervisorError::io("installing a SIGINT handler for", "the supervisor", source)
    })?;
    tokio::select! {
        _ = shutdown_rx.recv() => tracing::info!("shutdown requested over the API"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received"),
        _ = sigint.recv() => tracing::info!("SIGINT received"),
    }

    set_phase(&paths, SupervisorPhase::Stopping);
    let _ = std::fs::remove_file(&socket);
    let _ = root.send(StopAllVms).await;
    let killed = runner::blocking(move || kill_vm_processes(&vm_run_dir))
        .await
        .unwrap_or_default();
    if killed > 0 {
        tracing::warn!(
            killed,
            "killed VM processes that were still running at shutdown"
        );
    }
    handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("supervisor stopped");
    Ok(())
}

/// Records what this supervisor is doing in its pid file.
fn set_phase(paths: &PyroPaths, phase: SupervisorPhase) {
    let file = SupervisorPidFile {
        pid: std::process::id(),
        phase,
    };
    if let Err(err) = file.write(&paths.supervisor_pid_file()) {
        tracing::warn!(path = %paths.supervisor_pid_file().display(), %err, "cannot write the pid file");
    }
}

/// Opens the record database and runs it on its own thread.
fn start_store(path: &Path) -> Result<actix::Addr<store::StoreActor>, SupervisorError> {
    let opened = std::sync::Mutex::new(Some(store::Store::open(path)?));
    let path = path.to_owned();
    Ok(actix::SyncArbiter::start(1, move || {
        let store = opened.lock().ok().and_then(|mut slot| slot.take());
        store::StoreActor::new(store, &path)
    }))
}

fn make_private_dir(dir: &Path) -> Result<(), SupervisorError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SupervisorError::io("creating", dir, source))
}

/// How long a new supervisor waits for one that is shutting down.
const PREDECESSOR_WAIT: Duration = Duration::from_secs(60);

/// Holds the state directory for this process; a second supervisor for the
/// same state fails here, unless the first is shutting down: then this one
/// waits (bounded) for it to exit and takes over.
async fn take_state_lock(paths: &PyroPaths) -> Result<Flock<File>, SupervisorError> {
    let path = paths.supervisor_lock();
    let mut file =
        File::create(&path).map_err(|source| SupervisorError::io("creating", &path, source))?;
    let deadline = Instant::now() + PREDECESSOR_WAIT;
    let mut waiting_for = None;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((returned, nix::errno::Errno::EWOULDBLOCK)) => file = returned,
            Err((_, errno)) => {
                return Err(SupervisorError::io(
                    "locking",
                    &path,
                    std::io::Error::from(errno),
                ))
            }
        }
        let holder = SupervisorPidFile::read(&paths.supervisor_pid_file());
        let stopping = holder
            .filter(|holder| holder.phase == SupervisorPhase::Stopping && holder.process_exists());
        match stopping {
            Some(holder) if Instant::now() < deadline => {
                if waiting_for != Some(holder.pid) {
                    waiting_for = Some(holder.pid);
                    tracing::info!(
                        pid = holder.pid,
                        "the previous supervisor is stopping; waiting for it to exit"
                    );
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            _ => {
                return Err(SupervisorError::AlreadyRunning {
                    socket: paths.socket(),
                })
            }
        }
    }
}

/// VMs of workspaces that were running when the last supervisor ended;
/// if their processes still run, they are adopted rather than killed.
async fn adoptable_vms(
    store: &actix::Addr<store::StoreActor>,
    now_ms: i64,
) -> Result<std::collections::HashSet<String>, SupervisorError> {
    let records = store
        .send(store::WithStore::new(|store| store.workspaces()))
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the record store".to_owned(),
        })??;
    Ok(records
        .into_iter()
        .filter(|record| {
            workspace::core::at_start(record, now_ms) == workspace::core::AtStart::Resume
        })
        .filter_map(|record| record.current_vm)
        .collect())
}

/// Kills VM processes a previous supervisor left running (except workspace
/// VMs that will be adopted) and removes their runtime files and one-shot
/// disks. We hold the state lock, so every other VM directory found here
/// belongs to a supervisor that is gone.
fn reconcile_leftovers(settings: &Settings, adoptable: &std::collections::HashSet<String>) {
    let run_root = settings.vm_run_dir();
    if let Ok(entries) = std::fs::read_dir(&run_root) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if adoptable.contains(entry.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            let ledger = std::fs::read_to_string(dir.join(LEDGER_FILE)).unwrap_or_default();
            for process in ledger.lines().filter_map(LedgerEntry::parse) {
                if process.kill_if_alive() {
                    tracing::warn!(vm_dir = %dir.display(), name = %process.name, pid = process.pid, "killed a leftover VM process");
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(settings.vm_data_dir());
}

/// Kills every VM process still named in a run directory's ledger and waits
/// (bounded) until they are dead; returns how many it killed. At shutdown,
/// after the root stopped every VM, this normally finds nothing: it is the
/// guarantee that no VM outlives the supervisor.
fn kill_vm_processes(run_root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(run_root) else {
        return 0;
    };
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let ledger = std::fs::read_to_string(entry.path().join(LEDGER_FILE)).unwrap_or_default();
        for process in ledger.lines().filter_map(LedgerEntry::parse) {
            if process.kill_if_alive() {
                tracing::warn!(vm_dir = %entry.path().display(), name = %process.name, pid = process.pid, "killed a VM process at shutdown");
                killed.push(process);
            }
        }
    }
    let deadline = Instant::now() + KILL_WAIT;
    while killed.iter().any(still_running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

/// How long shutdown waits for killed VM processes to die.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Whether the process runs (a zombie, killed and waiting to be reaped by
/// us or, once we exit, by init, does not).
fn still_running(process: &LedgerEntry) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", process.pid))
        .ok()
        .and_then(|stat| state_and_start_time(&stat))
        .is_some_and(|(state, start_time)| state != 'Z' && start_time == process.start_time)
}

/// The state and start time fields of a `/proc/<pid>/stat` line (the
/// command name may hold spaces and parentheses, so fields are counted
/// from its closing parenthesis).
fn state_and_start_time(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 of the line is the 20th after the state (field 3).
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_start_time_even_from_odd_command_names() {
        let line = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 987654 1000 10 18446744073709551615";
        assert_eq!(state_and_start_time(line), Some(('S', 987_654)));
        assert_eq!(state_and_start_time("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (state, start) = state_and_start_time(&own).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert_eq!(
            Some(start),
            pyro_actors::process::start_time_of(std::process::id())
        );
    }

    #[test]
    fn kills_the_processes_of_a_ledger_and_waits_for_them() {
        let run_root = tempfile::tempdir().unwrap();
        let vm_dir = run_root.path().join("0123456789ab");
        std::fs::create_dir_all(&vm_dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let entry = LedgerEntry {
            name: "qemu".to_owned(),
            pid: child.id(),
            start_time: pyro_actors::process::start_time_of(child.id()).unwrap(),
        };
        std::fs::write(vm_dir.join(LEDGER_FILE), entry.line() + "\n").unwrap();
        assert!(still_running(&entry));
        assert_eq!(kill_vm_processes(run_root.path()), 1);
        assert!(
            !still_running(&entry),
            "a killed process is at most a zombie"
        );
        child.wait().unwrap();
        assert_eq!(
            kill_vm_processes(run_root.path()),
            0,
            "nothing runs any more"
        );
    }
}

//! The pyro supervisor: the daemon that owns every VM.
//!
//! [`serve`] runs it: take the state lock, clean up what a previous
//! supervisor left behind, probe the host, start the actor tree, and serve
//! the API on a Unix socket until asked to stop (SIGINT, SIGTERM or
//! `POST /v1/shutdown`). Shutting down stops every VM first.
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

use actix::Actor;
use nix::fcntl::{Flock, FlockArg};
use pyro_actors::process::LedgerEntry;
use pyro_actors::vm::qemu::LEDGER_FILE;
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
    let _lock = take_state_lock(&paths.supervisor_lock(), &paths.socket())?;
    tracing::info!(
        version = pyro_sdk::VERSION,
        pid = std::process::id(),
        "supervisor starting"
    );

    let store = start_store(&paths.data_dir.join("pyro.db"))?;
    let adoptable = adoptable_vms(&store).await?;
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
    workspace::resume_all(&runtime).await?;
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

    let _ = std::fs::remove_file(&socket);
    let _ = root.send(StopAllVms).await;
    handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("supervisor stopped");
    Ok(())
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

/// Holds the state directory for this process; a second supervisor for the
/// same state fails here.
fn take_state_lock(path: &Path, socket: &Path) -> Result<Flock<File>, SupervisorError> {
    let file =
        File::create(path).map_err(|source| SupervisorError::io("creating", path, source))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            SupervisorError::AlreadyRunning {
                socket: socket.to_owned(),
            }
        } else {
            SupervisorError::io("locking", path, std::io::Error::from(errno))
        }
    })
}

/// VMs of workspaces that were running when the last supervisor ended;
/// if their processes still run, they are adopted rather than killed.
async fn adoptable_vms(
    store: &actix::Addr<store::StoreActor>,
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
            use pyro_sdk::api::workspace::WorkspaceState;
            matches!(
                record.state,
                WorkspaceState::Started | WorkspaceState::Starting | WorkspaceState::Resetting
            )
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

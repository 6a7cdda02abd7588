//! Creating a workspace, step by step, streaming progress:
//!
//! 1. `environment`: resolve (installing on first use) the environment;
//! 2. `seed`: read and validate the seed (nothing is written to the
//!    workspace before the whole archive passed), store it as the immutable
//!    baseline snapshot (manifest plus content blobs);
//! 3. `disk`: make the writable disk (sparse ext4);
//! 4. `boot`: start the workspace actor, boot the VM and restore the
//!    baseline into `/workspace`.
//!
//! A failure at any step removes everything created so far: files, record,
//! actor and VM.

use std::path::Path;

use pyro_actors::archive::{SeedSource, ValidatedArchive};
use pyro_actors::vm::disk::create_data_disk;
use pyro_sdk::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, SeedInfo, WorkspaceInfo, WorkspaceState, WORKSPACE_PATH,
};
use pyro_sdk::api::{ErrorBody, PullProgress};
use tokio::sync::mpsc;

use actix::Actor;

use super::core::now_ms;
use super::files::WorkspaceDir;
use super::messages::{Boot, Delete};
use super::secrets::SecretStore;
use super::snapshot::manifest_from_tar;
use super::WorkspaceActor;
use crate::env_manager::EnsureEnvironment;
use crate::error::SupervisorError;
use crate::ids::new_id;
use crate::root::RegisterWorkspace;
use crate::runner::blocking;
use crate::runtime::Runtime;
use crate::store::{SnapshotKind, SnapshotRecord, WithStore, WorkspaceRecord};

/// Starts creating; events arrive on the returned receiver.
pub fn start(runtime: Runtime, request: CreateWorkspaceRequest) -> mpsc::Receiver<CreateEvent> {
    let (tx, rx) = mpsc::channel(64);
    actix::spawn(async move {
        let id = new_id();
        let last = match create(&runtime, &request, &id, &tx).await {
            Ok(info) => CreateEvent::Result(Box::new(info)),
            Err(body) => CreateEvent::Error(body),
        };
        let _ = tx.send(last).await;
    });
    rx
}

async fn phase(events: &mpsc::Sender<CreateEvent>, phase: &str, id: &str) {
    let _ = events
        .send(CreateEvent::Phase {
            phase: phase.to_owned(),
            workspace_id: id.to_owned(),
        })
        .await;
}

async fn create(
    runtime: &Runtime,
    request: &CreateWorkspaceRequest,
    id: &str,
    events: &mpsc::Sender<CreateEvent>,
) -> Result<WorkspaceInfo, ErrorBody> {
    request
        .validate()
        .map_err(|message| SupervisorError::InvalidRequest { message }.to_body())?;
    if let Some(seed) = &request.seed_path {
        if !Path::new(seed).is_absolute() {
            return Err(SupervisorError::InvalidRequest {
                message: format!(
                    "seed_path {seed:?} must be absolute (the CLI and SDK make it so)"
                ),
            }
            .to_body());
        }
    }
    if let Some(unavailable) = &runtime.unavailable {
        return Err(unavailable.clone());
    }
    // Secrets are read first: a missing or unreadable secret file is
    // refused before anything exists.
    let specs = request.secrets.clone();
    let secrets = blocking(move || SecretStore::from_specs(&specs))
        .await
        .and_then(|secrets| secrets)
        .map_err(|err| err.to_body())?;

    phase(events, "environment", id).await;
    let env = ensure_environment(runtime, &request.environment, events).await?;

    let dir = WorkspaceDir::new(&runtime.settings.paths.data_dir, id);
    let prepared = prepare_files(
        runtime,
        request,
        id,
        &dir,
        &env.manifest.version,
        &secrets,
        events,
    )
    .await;
    let record = match prepared {
        Ok(record) => record,
        Err(err) => {
            let remove = dir.clone();
            let _ = blocking(move || remove.remove()).await;
            SecretStore::remove(&runtime.settings.secrets_dir(), id);
            return Err(err.to_body());
        }
    };

    phase(events, "boot", id).await;
    let actor = WorkspaceActor::new(record, runtime.clone(), secrets).start();
    let _ = runtime
        .root
        .send(RegisterWorkspace {
            workspace_id: id.to_owned(),
            addr: actor.clone(),
        })
        .await;
    match actor.send(Boot).await {
        Ok(Ok(info)) => {
            tracing::info!(workspace_id = %id, "workspace created");
            Ok(info)
        }
        Ok(Err(err)) => {
            let _ = actor
                .send(Delete {
                    reason: "create_failed",
                })
                .await;
            Err(err.to_body())
        }
        Err(_) => Err(SupervisorError::ActorGone {
            what: format!("workspace {id}"),
        }
        .to_body()),
    }
}

/// Directory, baseline, disk and record; everything before the VM.
async fn prepare_files(
    runtime: &Runtime,
    request: &CreateWorkspaceRequest,
    id: &str,
    dir: &WorkspaceDir,
    environment_version: &str,
    secrets: &SecretStore,
    events: &mpsc::Sender<CreateEvent>,
) -> Result<WorkspaceRecord, SupervisorError> {
    let created = dir.clone();
    blocking(move || created.create())
        .await?
        .map_err(|source| SupervisorError::io("creating", dir.root(), source))?;

    phase(events, "seed", id).await;
    let seed_dir = dir.clone();
    let seed_path = request.seed_path.clone();
    let (seed, baseline) =
        blocking(move || store_baseline(seed_path.as_deref(), &seed_dir)).await??;

    phase(events, "disk", id).await;
    let mkfs = runtime.mkfs.clone();
    let disk = dir.disk();
    let disk_mib = request.disk_mib;
    blocking(move || create_data_disk(&mkfs, &disk, disk_mib)).await??;

    let now = now_ms();
    let record = WorkspaceRecord {
        id: id.to_owned(),
        name: request.name.as_ref().map(|n| n.trim().to_owned()),
        labels: request
            .labels
            .iter()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
        environment: request.environment.clone(),
        environment_version: environment_version.to_owned(),
        vcpu_count: request.vcpu_count,
        mem_mib: request.mem_mib,
        disk_mib: request.disk_mib,
        ttl_seconds: request.ttl_seconds,
        on_failure: request.on_failure,
        state: WorkspaceState::Creating,
        created_at_ms: now,
        last_activity_at_ms: now,
        expires_at_ms: now + (request.ttl_seconds as i64) * 1000,
        seed,
        secrets: secrets.info().to_vec(),
        command_count: 0,
        last_command: None,
        reset_count: 0,
        last_reset_at_ms: None,
        last_error: None,
        current_vm: None,
        services: Vec::new(),
    };
    let to_save = secrets.clone();
    let secrets_dir = runtime.settings.secrets_dir();
    let save_id = id.to_owned();
    blocking(move || to_save.save(&secrets_dir, &save_id)).await??;
    let insert = record.clone();
    let snapshot = SnapshotRecord {
        workspace_id: id.to_owned(),
        name: "baseline".to_owned(),
        kind: SnapshotKind::Baseline,
        created_at_ms: now,
        entry_count: baseline.entry_count,
        bytes_total: baseline.bytes_total,
        bytes_stored: baseline.bytes_stored,
    };
    runtime
        .store
        .send(WithStore::new(move |store| {
            store.insert_workspace(&insert)?;
            store.insert_snapshot(&snapshot)
        }))
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the record store".to_owned(),
        })??;
    Ok(record)
}

/// Reads and validates the seed, then stores it as the baseline snapshot.
fn store_baseline(
    seed_path: Option<&str>,
    dir: &WorkspaceDir,
) -> Result<(SeedInfo, super::snapshot::SnapshotTotals), SupervisorError> {
    let (archive, mode) = match seed_path {
        None => (ValidatedArchive::empty(), "empty"),
        Some(path) => {
            let source = SeedSource::detect(Path::new(path))?;
            let archive = ValidatedArchive::from_seed(&source, &dir.tmp())?;
            let mode = match source {
                SeedSource::Directory(_) => "directory",
                SeedSource::TarArchive(_) => "tar_archive",
            };
            (archive, mode)
        }
    };
    let staged = dir.staging_file("seed.tar");
    let result = (|| -> Result<_, SupervisorError> {
        let file = std::fs::File::create(&staged)
            .map_err(|source| SupervisorError::io("creating", &staged, source))?;
        let mut writer = archive.write_tar(std::io::BufWriter::new(file))?;
        std::io::Write::flush(&mut writer)
            .map_err(|source| SupervisorError::io("writing", &staged, source))?;
        drop(writer);
        let file = std::fs::File::open(&staged)
            .map_err(|source| SupervisorError::io("opening", &staged, source))?;
        let (manifest, totals) = manifest_from_tar(std::io::BufReader::new(file), dir)
            .map_err(|source| SupervisorError::io("storing the baseline from", &staged, source))?;
        dir.write_manifest("baseline", &manifest)
            .map_err(|source| {
                SupervisorError::io("writing the baseline manifest in", dir.root(), source)
            })?;
        Ok(totals)
    })();
    let _ = std::fs::remove_file(&staged);
    let totals = result?;
    Ok((
        SeedInfo {
            mode: mode.to_owned(),
            seed_path: seed_path.map(str::to_owned),
            destination: WORKSPACE_PATH.to_owned(),
            entry_count: totals.entry_count,
            bytes_written: totals.bytes_total,
        },
        totals,
    ))
}

async fn ensure_environment(
    runtime: &Runtime,
    name: &str,
    events: &mpsc::Sender<CreateEvent>,
) -> Result<crate::environment::InstalledEnvironment, ErrorBody> {
    let (progress_tx, mut progress_rx) = mpsc::channel::<PullProgress>(32);
    let ensure = runtime.environments.send(EnsureEnvironment {
        name: name.to_owned(),
        progress: Some(progress_tx),
    });
    tokio::pin!(ensure);
    loop {
        tokio::select! {
            result = &mut ensure => {
                while let Ok(progress) = progress_rx.try_recv() {
                    let _ = events.send(CreateEvent::Pull(progress)).await;
                }
                return result.map_err(|_| SupervisorError::ActorGone { what: "the environment manager".to_owned() }.to_body())?;
            }
            Some(progress) = progress_rx.recv() => {
                let _ = events.send(CreateEvent::Pull(progress)).await;
            }
        }
    }
}

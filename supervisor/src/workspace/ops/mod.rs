//! The work behind each workspace operation, as async functions the actor
//! runs without blocking itself. Host file work goes to blocking threads;
//! guest work goes through one connection per operation.
//!
//! - `exec`: commands, with live output and history.
//! - `transfer`: sync push and export.
//! - `inspect`: list, read, diff, snapshots.
//! - `modify`: file write and patch apply.
//! - `offline`: disk export, list and read of stopped workspaces.
//! - restore (here): a snapshot into /workspace on a fresh disk.

pub mod exec;
pub mod inspect;
pub mod modify;
pub mod offline;
pub mod transfer;

use pyro_actors::vm::disk::create_data_disk;
use pyro_guest_protocol::PutArchiveRequest;

use super::files::WorkspaceDir;
use super::paths::ROOT;
use super::secrets::{GuestSecretArchive, SecretStoreActor, GUEST_SECRET_DIR};
use super::snapshot::{tar_from_manifest, totals};
use super::vm::{self, WorkspaceVm};
use crate::error::SupervisorError;
use crate::runner::blocking;
use crate::runtime::Runtime;

/// A snapshot to restore into `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// Its name (`baseline` or a named snapshot).
    pub snapshot: String,
}

impl Restore {
    /// Restore `name`.
    pub fn snapshot(name: &str) -> Self {
        Self {
            snapshot: name.to_owned(),
        }
    }
}

/// What a restore put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Entries restored.
    pub entry_count: u64,
    /// Bytes of file content restored.
    pub bytes_written: u64,
}

/// Boots the workspace's VM, writes its secrets into the guest, and
/// restores a snapshot if asked; on any failure the VM is shut down.
pub async fn bring_up(
    runtime: &Runtime,
    record: &crate::store::WorkspaceRecord,
    dir: &WorkspaceDir,
    owner: actix::Recipient<pyro_actors::vm::VmEvent>,
    secrets: &actix::Addr<SecretStoreActor>,
    restore: Option<&Restore>,
) -> Result<(WorkspaceVm, Option<Restored>), SupervisorError> {
    let booted = vm::boot(runtime, record, dir, owner).await?;
    let settled = async {
        materialize_secrets(&booted, secrets).await?;
        match restore {
            Some(restore) => self::restore(&booted, dir, restore).await.map(Some),
            None => Ok(None),
        }
    }
    .await;
    match settled {
        Ok(restored) => Ok((booted, restored)),
        Err(err) => {
            vm::shut_down(booted).await;
            Err(err)
        }
    }
}

/// Writes the secret files into the guest's tmpfs (`/run/pyro-secrets`,
/// directory 0700, files 0400).
async fn materialize_secrets(
    booted: &WorkspaceVm,
    secrets: &actix::Addr<SecretStoreActor>,
) -> Result<(), SupervisorError> {
    let archive =
        secrets
            .send(GuestSecretArchive)
            .await
            .map_err(|_| SupervisorError::ActorGone {
                what: "the secret store".to_owned(),
            })??;
    let Some(archive) = archive else {
        return Ok(());
    };
    vm::open(&booted.addr)
        .await?
        .put_archive(
            PutArchiveRequest {
                destination: GUEST_SECRET_DIR.to_owned(),
            },
            archive.as_slice(),
        )
        .await?;
    let status = exec::quiet(&booted.addr, &["chmod", "0700", GUEST_SECRET_DIR]).await?;
    if status.exit_code != 0 {
        return Err(SupervisorError::GuestCommand {
            what: format!("restricting {GUEST_SECRET_DIR}"),
            exit_code: status.exit_code,
        });
    }
    Ok(())
}

/// Replaces the workspace's writable disk with an empty one (the VM must be
/// down). The system outside /workspace thereby returns to the
/// environment's state.
pub async fn recreate_disk(
    runtime: &Runtime,
    dir: &WorkspaceDir,
    disk_mib: u64,
    _restore: &Restore,
) -> Result<(), SupervisorError> {
    let mkfs = runtime.mkfs.clone();
    let disk = dir.disk();
    blocking(move || {
        match std::fs::remove_file(&disk) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(SupervisorError::io("removing", &disk, err)),
        }
        create_data_disk(&mkfs, &disk, disk_mib).map_err(SupervisorError::from)
    })
    .await?
}

/// Restores a snapshot into the running VM's `/workspace`.
pub async fn restore(
    booted: &WorkspaceVm,
    dir: &WorkspaceDir,
    restore: &Restore,
) -> Result<Restored, SupervisorError> {
    let manifest_dir = dir.clone();
    let name = restore.snapshot.clone();
    let staged = dir.staging_file("restore.tar");
    let tar_path = staged.clone();
    let counts = blocking(move || -> Result<_, SupervisorError> {
        let manifest = manifest_dir.read_manifest(&name).map_err(|source| {
            SupervisorError::io("reading the manifest of snapshot", &name, source)
        })?;
        let counts = totals(&manifest);
        if manifest.is_empty() {
            return Ok(counts);
        }
        let file = std::fs::File::create(&tar_path)
            .map_err(|source| SupervisorError::io("creating", &tar_path, source))?;
        tar_from_manifest(&manifest, &manifest_dir, std::io::BufWriter::new(file)).map_err(
            |source| SupervisorError::io("building the archive of snapshot", &name, source),
        )?;
        Ok(counts)
    })
    .await??;
    if counts.entry_count == 0 {
        return Ok(Restored {
            entry_count: 0,
            bytes_written: 0,
        });
    }
    let result = async {
        let file = tokio::fs::File::open(&staged)
            .await
            .map_err(|source| SupervisorError::io("opening", &staged, source))?;
        let conn = vm::open(&booted.addr).await?;
        conn.put_archive(
            PutArchiveRequest {
                destination: ROOT.to_owned(),
            },
            file,
        )
        .await
        .map_err(SupervisorError::from)
    }
    .await;
    let _ = tokio::fs::remove_file(&staged).await;
    let summary = result?;
    Ok(Restored {
        entry_count: summary.entry_count,
        bytes_written: summary.content_bytes,
    })
}

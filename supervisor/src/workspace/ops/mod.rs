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

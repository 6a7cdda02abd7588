//! `sync push` (host to guest) and `export` (guest to host).
//!
//! Both move a canonical tar through a staging file. A push is validated
//! completely before the guest sees a byte, and the guest applies it
//! atomically (staged, then renamed into place with rollback). An export
//! comes from the guest, which is untrusted: it is extracted by the
//! hardened extractor, which never writes outside the output path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use actix::Addr;
use pyro_actors::archive::{extract_export, ArtifactType, SeedSource, ValidatedArchive};
use pyro_actors::vm::VmActor;
use pyro_guest_protocol::{EntryKind, GetArchiveRequest, ListPathRequest, PutArchiveRequest};
use pyro_sdk::api::workspace::{ExportRequest, ExportResult, SyncPushRequest, SyncPushResult};
use pyro_sdk::api::EXECUTION_MODE;

use super::super::files::WorkspaceDir;
use super::super::{paths, vm};
use crate::error::SupervisorError;
use crate::runner::blocking;

/// Refuses relative host paths: the supervisor's working directory is not
/// the caller's, so clients send absolute paths.
pub fn absolute_host_path(field: &str, path: &str) -> Result<PathBuf, SupervisorError> {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(SupervisorError::InvalidRequest {
            message: format!("{field} {} must be an absolute host path", path.display()),
        })
    }
}

/// Pushes a host directory or archive into the workspace.
pub async fn sync_push(
    vm_addr: Addr<VmActor>,
    dir: WorkspaceDir,
    workspace_id: String,
    request: SyncPushRequest,
) -> Result<SyncPushResult, SupervisorError> {
    let source = absolute_host_path("source_path", &request.source_path)?;
    let destination = paths::resolve(request.dest.as_deref().unwrap_or(paths::ROOT))?;
    let staged = dir.staging_file("sync.tar");
    let tar_path = staged.clone();
    let spool = dir.tmp();
    let mode = blocking(move || -> Result<&'static str, SupervisorError> {
        let seed = SeedSource::detect(&source)?;
        let archive = ValidatedArchive::from_seed(&seed, &spool)?;
        archive.store(&tar_path)?;
        Ok(match seed {
            SeedSource::Directory(_) => "directory",
            SeedSource::TarArchive(_) => "tar_archive",
        })
    })
    .await??;
    let pushed = async {
        let file = tokio::fs::File::open(&staged)
            .await
            .map_err(|source| SupervisorError::io("opening", &staged, source))?;
        let conn = vm::open(&vm_addr).await?;
        conn.put_archive(
            PutArchiveRequest {
                destination: destination.clone(),
            },
            file,
        )
        .await
        .map_err(SupervisorError::from)
    }
    .await;
    let _ = tokio::fs::remove_file(&staged).await;
    let summary = pushed?;
    Ok(SyncPushResult {
        workspace_id,
        mode: mode.to_owned(),
        source_path: request.source_path,
        destination,
        entry_count: summary.entry_count,
        bytes_written: summary.content_bytes,
        execution_mode: EXECUTION_MODE.to_owned(),
    })
}

/// Copies a workspace path out to a new host path.
pub async fn export(
    vm_addr: Addr<VmActor>,
    dir: WorkspaceDir,
    workspace_id: String,
    request: ExportRequest,
) -> Result<ExportResult, SupervisorError> {
    let path = paths::resolve(&request.path)?;
    let output = absolute_host_path("output_path", &request.output_path)?;
    if exists(&output) {
        return Err(SupervisorError::OutputExists { path: output });
    }
    let staged = dir.staging_file("export.tar");
    let fetched = async {
        let file = tokio::fs::File::create(&staged)
            .await
            .map_err(|source| SupervisorError::io("creating", &staged, source))?;
        let conn = vm::open(&vm_addr).await?;
        conn.get_archive(
            GetArchiveRequest {
                path: path.clone(),
                only: None,
            },
            file,
        )
        .await
        .map_err(SupervisorError::from)
    }
    .await;
    let export = match fetched {
        Ok(export) => export,
        Err(err) => {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(err);
        }
    };
    let artifact = match export.kind {
        EntryKind::File => ArtifactType::File,
        EntryKind::Directory => ArtifactType::Directory,
        EntryKind::Symlink => ArtifactType::Symlink,
        EntryKind::Other => {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(SupervisorError::InvalidRequest {
                message: format!(
                    "{path} is not a file, directory or symlink and cannot be exported"
                ),
            });
        }
    };
    let root_mode = match artifact {
        ArtifactType::Directory => directory_mode(&vm_addr, &path).await,
        _ => None,
    };
    let tar_path = staged.clone();
    let target = output.clone();
    let extracted = blocking(move || {
        let file = std::fs::File::open(&tar_path)
            .map_err(|source| SupervisorError::io("opening", &tar_path, source))?;
        let stats = extract_export(std::io::BufReader::new(file), &target, artifact)?;
        if let Some(mode) = root_mode {
            // The archive holds the directory's children; its own mode
            // comes from the listing. The extractor created it, so it is a
            // real directory, not a link.
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|source| SupervisorError::io("setting the mode of", &target, source))?;
        }
        Ok::<_, SupervisorError>(stats)
    })
    .await;
    let _ = tokio::fs::remove_file(&staged).await;
    let stats = extracted??;
    Ok(ExportResult {
        workspace_id,
        workspace_path: path,
        output_path: output.display().to_string(),
        artifact_type: artifact.as_str().to_owned(),
        entry_count: stats.entry_count,
        bytes_written: stats.total_bytes,
        execution_mode: EXECUTION_MODE.to_owned(),
    })
}

/// The permission bits of the guest directory at `path`, from a listing of
/// its parent (`None` when they cannot be read: the export keeps the
/// extractor's private default).
async fn directory_mode(vm_addr: &Addr<VmActor>, path: &str) -> Option<u32> {
    let parent = match Path::new(path).parent() {
        Some(parent) => parent.to_str()?.to_owned(),
        None => return None,
    };
    let conn = vm::open(vm_addr).await.ok()?;
    let listing = conn
        .list_path(ListPathRequest {
            path: parent,
            recursive: false,
        })
        .await
        .ok()?;
    listing
        .entries
        .into_iter()
        .find(|entry| entry.path == path && entry.kind == EntryKind::Directory)
        .map(|entry| entry.mode)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

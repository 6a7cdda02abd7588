//! Looking at the running workspace: `file list`, `file read`, `diff`, and
//! taking snapshots.
//!
//! Diffs and snapshots never move the whole tree: the guest sends a
//! manifest (paths, modes, content hashes, cached between calls), the host
//! compares it with the stored one, and only the changed files' contents
//! cross the channel.

use std::collections::HashMap;
use std::io::Read;

use actix::Addr;
use base64::Engine;
use pyro_actors::diff::{build_report, compare, Side, MAX_TEXT_PATCH_BYTES};
use pyro_actors::vm::VmActor;
use pyro_guest_protocol::{
    EntryKind, GetArchiveRequest, ListPathRequest, ManifestEntry, ManifestRequest, ReadFileRequest,
};
use pyro_sdk::api::workspace::{
    DiffEntry, DiffResult, DiffSummary, FileEntry, ListRequest, ListResult, ReadRequest,
    ReadResult, MAX_READ_BYTES,
};

use super::super::files::WorkspaceDir;
use super::super::snapshot::{missing_blobs, store_fetched, SnapshotTotals};
use super::super::{paths, vm};
use crate::error::SupervisorError;
use crate::runner::blocking;

/// Formats permission bits as users read them.
pub fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Lists a path of the running workspace.
pub async fn list(
    vm_addr: Addr<VmActor>,
    workspace_id: String,
    request: ListRequest,
) -> Result<ListResult, SupervisorError> {
    let path = paths::resolve(request.path.as_deref().unwrap_or(paths::ROOT))?;
    let listing = vm::open(&vm_addr)
        .await?
        .list_path(ListPathRequest {
            path: path.clone(),
            recursive: request.recursive,
        })
        .await?;
    let mut entries: Vec<FileEntry> = listing
        .entries
        .into_iter()
        .map(|entry| FileEntry {
            path: entry.path,
            artifact_type: entry.kind.as_str().to_owned(),
            size_bytes: if entry.kind == EntryKind::Directory {
                0
            } else {
                entry.size
            },
            mode: octal(entry.mode),
            link_target: entry.link_target,
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ListResult {
        workspace_id,
        path,
        recursive: request.recursive,
        entries,
    })
}

/// Checks `max_bytes` of a read.
pub fn check_max_bytes(max_bytes: u64) -> Result<(), SupervisorError> {
    if (1..=MAX_READ_BYTES).contains(&max_bytes) {
        Ok(())
    } else {
        Err(SupervisorError::InvalidRequest {
            message: format!("max_bytes must be between 1 and {MAX_READ_BYTES} (got {max_bytes})"),
        })
    }
}

/// The read answer for `bytes` of a `size`-byte file.
pub fn read_result(
    workspace_id: String,
    path: String,
    size: u64,
    max_bytes: u64,
    bytes: &[u8],
    truncated: bool,
) -> ReadResult {
    ReadResult {
        workspace_id,
        path,
        size_bytes: size,
        max_bytes,
        content: String::from_utf8_lossy(bytes).into_owned(),
        content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        truncated,
    }
}

/// Reads a file of the running workspace.
pub async fn read(
    vm_addr: Addr<VmActor>,
    workspace_id: String,
    request: ReadRequest,
) -> Result<ReadResult, SupervisorError> {
    check_max_bytes(request.max_bytes)?;
    let path = paths::resolve(&request.path)?;
    let content = vm::open(&vm_addr)
        .await?
        .read_file(ReadFileRequest {
            path: path.clone(),
            max_bytes: request.max_bytes,
        })
        .await?;
    Ok(read_result(
        workspace_id,
        path,
        content.size_bytes,
        request.max_bytes,
        &content.data,
        content.truncated,
    ))
}

/// The live `/workspace` manifest.
async fn live_manifest(vm_addr: &Addr<VmActor>) -> Result<Vec<ManifestEntry>, SupervisorError> {
    Ok(vm::open(vm_addr)
        .await?
        .manifest(ManifestRequest {
            root: paths::ROOT.to_owned(),
        })
        .await?
        .entries)
}

/// Fetches the listed regular files of `/workspace` into a staging tar and
/// returns its path (the caller removes it).
async fn fetch_files(
    vm_addr: &Addr<VmActor>,
    dir: &WorkspaceDir,
    only: Vec<String>,
) -> Result<std::path::PathBuf, SupervisorError> {
    let staged = dir.staging_file("fetch.tar");
    let fetched = async {
        let file = tokio::fs::File::create(&staged)
            .await
            .map_err(|source| SupervisorError::io("creating", &staged, source))?;
        vm::open(vm_addr)
            .await?
            .get_archive(
                GetArchiveRequest {
                    path: paths::ROOT.to_owned(),
                    only: Some(only),
                },
                file,
            )
            .await
            .map_err(SupervisorError::from)
    }
    .await;
    match fetched {
        Ok(_) => Ok(staged),
        Err(err) => {
            let _ = tokio::fs::remove_file(&staged).await;
            Err(err)
        }
    }
}

/// Compares `/workspace` with the snapshot `against`.
pub async fn diff(
    vm_addr: Addr<VmActor>,
    dir: WorkspaceDir,
    workspace_id: String,
    against: String,
) -> Result<DiffResult, SupervisorError> {
    let manifest_dir = dir.clone();
    let name = against.clone();
    let old = blocking(move || manifest_dir.read_manifest(&name))
        .await?
        .map_err(|source| {
            SupervisorError::io("reading the manifest of snapshot", &against, source)
        })?;
    let new = live_manifest(&vm_addr).await?;
    let changes = compare(&old, &new);
    let wanted: Vec<String> = changes
        .iter()
        .filter_map(|change| change.new.as_ref().filter(|_| change.content_changed()))
        .filter(|entry| entry.kind == EntryKind::File && entry.size <= MAX_TEXT_PATCH_BYTES)
        .map(|entry| entry.path.clone())
        .collect();
    let staged = if wanted.is_empty() {
        None
    } else {
        Some(fetch_files(&vm_addr, &dir, wanted).await?)
    };
    let report_dir = dir.clone();
    let tar_path = staged.clone();
    let report = blocking(move || -> Result<_, SupervisorError> {
        let fetched = match &tar_path {
            Some(path) => read_tar_files(path)?,
            None => HashMap::new(),
        };
        build_report(changes, |side, entry| -> Result<Vec<u8>, SupervisorError> {
            match side {
                Side::Old => {
                    let sha = entry.sha256.ok_or_else(|| missing_content(&entry.path))?;
                    std::fs::read(report_dir.blob_path(&sha)).map_err(|source| {
                        SupervisorError::io("reading the stored content of", &entry.path, source)
                    })
                }
                Side::New => fetched
                    .get(&entry.path)
                    .cloned()
                    .ok_or_else(|| missing_content(&entry.path)),
            }
        })
    })
    .await;
    if let Some(path) = staged {
        let _ = tokio::fs::remove_file(path).await;
    }
    let report = report??;
    let mut summary = DiffSummary {
        total: report.summary.total as u64,
        added: report.summary.added as u64,
        modified: report.summary.modified as u64,
        deleted: report.summary.deleted as u64,
        type_changed: report.summary.type_changed as u64,
        mode_changed: 0,
        text_patched: report.summary.text_patched as u64,
        non_text: report.summary.non_text as u64,
    };
    let entries: Vec<DiffEntry> = report
        .entries
        .into_iter()
        .map(|entry| {
            let change = entry.change;
            let mode_only = change.mode_changed() && !change.content_changed();
            if mode_only {
                summary.mode_changed += 1;
            }
            let mode_change = match (&change.old, &change.new) {
                (Some(old), Some(new)) if change.mode_changed() => {
                    Some((octal(old.mode), octal(new.mode)))
                }
                _ => None,
            };
            DiffEntry {
                artifact_type: change.artifact_type().as_str().to_owned(),
                status: if mode_only {
                    "mode_changed".to_owned()
                } else {
                    change.status.as_str().to_owned()
                },
                path: change.path,
                mode_change,
                text_patch: entry.text_patch,
            }
        })
        .collect();
    Ok(DiffResult {
        workspace_id,
        against,
        changed: !entries.is_empty(),
        summary,
        entries,
        patch: report.patch,
    })
}

fn missing_content(path: &str) -> SupervisorError {
    SupervisorError::InvalidRequest {
        message: format!(
            "the content of {path} changed while the diff was being computed; run the diff again"
        ),
    }
}

/// The regular files of a (trusted, host-made or validated) tar, by path.
fn read_tar_files(path: &std::path::Path) -> Result<HashMap<String, Vec<u8>>, SupervisorError> {
    let file =
        std::fs::File::open(path).map_err(|source| SupervisorError::io("opening", path, source))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut files = HashMap::new();
    let read = |err| SupervisorError::io("reading", path, err);
    for member in archive.entries().map_err(read)? {
        let mut member = member.map_err(read)?;
        if member.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = member
            .path()
            .map_err(read)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).map_err(read)?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// Snapshots `/workspace`: the manifest, plus the contents not stored yet.
pub async fn snapshot(
    vm_addr: Addr<VmActor>,
    dir: WorkspaceDir,
    name: String,
) -> Result<SnapshotTotals, SupervisorError> {
    let mut manifest = live_manifest(&vm_addr).await?;
    let missing_dir = dir.clone();
    let (manifest_back, missing) = blocking(move || {
        let missing = missing_blobs(&manifest, &missing_dir);
        (manifest, missing)
    })
    .await?;
    manifest = manifest_back;
    let staged = if missing.is_empty() {
        None
    } else {
        Some(fetch_files(&vm_addr, &dir, missing).await?)
    };
    let store_dir = dir.clone();
    let tar_path = staged.clone();
    let stored = blocking(move || -> Result<SnapshotTotals, SupervisorError> {
        let mut stored = 0;
        if let Some(path) = &tar_path {
            let file = std::fs::File::open(path)
                .map_err(|source| SupervisorError::io("opening", path, source))?;
            stored = store_fetched(std::io::BufReader::new(file), &mut manifest, &store_dir)
                .map_err(|source| {
                    SupervisorError::io("storing snapshot contents from", path, source)
                })?;
        }
        store_dir
            .write_manifest(&name, &manifest)
            .map_err(|source| {
                SupervisorError::io("writing the manifest of snapshot", &name, source)
            })?;
        let mut totals = super::super::snapshot::totals(&manifest);
        totals.bytes_stored = stored;
        Ok(totals)
    })
    .await;
    if let Some(path) = staged {
        let _ = tokio::fs::remove_file(path).await;
    }
    stored?
}

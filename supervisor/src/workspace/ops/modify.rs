//! Changing files of the running workspace: `file write` and `patch apply`.
//!
//! Both end in one transactional guest operation: the new contents travel
//! as a tar with the list of deletions, and the agent stages everything
//! before renaming anything, so a patch applies to all its files or none.

use std::collections::BTreeMap;

use actix::Addr;
use pyro_actors::patch::{FileState, Patch};
use pyro_actors::vm::VmActor;
use pyro_guest_protocol::{ApplyChangesRequest, EntryKind, ListPathRequest, ReadFileRequest};
use pyro_sdk::api::workspace::{
    PatchEntry, PatchRequest, PatchResult, PatchSummary, WriteRequest, WriteResult, MAX_TEXT_BYTES,
};
use pyro_sdk::api::EXECUTION_MODE;

use super::super::{paths, vm};
use crate::error::SupervisorError;

/// Largest file a patch may touch.
const MAX_PATCHED_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One file to write in an [`ApplyChangesRequest`].
struct NewFile {
    relative: String,
    content: Vec<u8>,
    mode: u32,
}

/// A tar of new file contents, paths relative to `/workspace`.
fn changes_tar(files: &[NewFile]) -> Result<Vec<u8>, SupervisorError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    let build = |err| SupervisorError::io("building the change archive for", "/workspace", err);
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(file.mode);
        header.set_mtime(now);
        header.set_size(file.content.len() as u64);
        builder
            .append_data(&mut header, &file.relative, file.content.as_slice())
            .map_err(build)?;
    }
    builder.into_inner().map_err(build)
}

fn too_big(what: &str, size: usize) -> SupervisorError {
    SupervisorError::InvalidRequest {
        message: format!("the {what} is {size} bytes; at most {MAX_TEXT_BYTES} are accepted"),
    }
}

/// Writes one text file (a new file gets mode 0644, an existing one keeps
/// its mode).
pub async fn write(
    vm_addr: Addr<VmActor>,
    workspace_id: String,
    request: WriteRequest,
) -> Result<WriteResult, SupervisorError> {
    if request.text.len() > MAX_TEXT_BYTES {
        return Err(too_big("text", request.text.len()));
    }
    let path = paths::resolve(&request.path)?;
    let relative = paths::relative(&path).to_owned();
    if relative.is_empty() {
        return Err(SupervisorError::InvalidRequest {
            message: "the path names /workspace itself; give a file path".to_owned(),
        });
    }
    let tar = changes_tar(&[NewFile {
        relative,
        content: request.text.into_bytes(),
        mode: 0o644,
    }])?;
    let summary = vm::open(&vm_addr)
        .await?
        .apply_changes(
            ApplyChangesRequest {
                root: paths::ROOT.to_owned(),
                deletes: Vec::new(),
                keep_existing_modes: true,
            },
            tar.as_slice(),
        )
        .await?;
    Ok(WriteResult {
        workspace_id,
        path,
        bytes_written: summary.bytes_written,
        execution_mode: EXECUTION_MODE.to_owned(),
    })
}

/// The current regular-file state of `/workspace/<relative>`, `None` when
/// nothing is there.
async fn current_state(
    vm_addr: &Addr<VmActor>,
    relative: &str,
) -> Result<Option<FileState>, SupervisorError> {
    let path = format!("{}/{relative}", paths::ROOT);
    let listing = vm::open(vm_addr)
        .await?
        .list_path(ListPathRequest {
            path: path.clone(),
            recursive: false,
        })
        .await;
    let listing = match listing {
        Ok(listing) => listing,
        Err(pyro_actors::ActorError::Guest {
            kind: pyro_guest_protocol::GuestErrorKind::NotFound,
            ..
        }) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if listing.kind != EntryKind::File {
        return Err(SupervisorError::InvalidRequest {
            message: format!(
                "{path} is a {}, not a regular file; the patch cannot change it",
                listing.kind.as_str()
            ),
        });
    }
    let mode = listing.entries.first().map_or(0o644, |entry| entry.mode);
    let content = vm::open(vm_addr)
        .await?
        .read_file(ReadFileRequest {
            path: path.clone(),
            max_bytes: MAX_PATCHED_FILE_BYTES,
        })
        .await?;
    if content.truncated {
        return Err(SupervisorError::InvalidRequest {
            message: format!(
                "{path} is larger than {MAX_PATCHED_FILE_BYTES} bytes; patch it with exec instead"
            ),
        });
    }
    Ok(Some(FileState {
        content: content.data,
        mode,
    }))
}

/// Applies a unified diff to `/workspace`: every file, or none.
pub async fn apply_patch(
    vm_addr: Addr<VmActor>,
    workspace_id: String,
    request: PatchRequest,
) -> Result<PatchResult, SupervisorError> {
    if request.patch.len() > MAX_TEXT_BYTES {
        return Err(too_big("patch", request.patch.len()));
    }
    let patch = Patch::parse(&request.patch).map_err(|err| SupervisorError::InvalidRequest {
        message: format!("the patch cannot be parsed: {err}"),
    })?;
    let mut current = BTreeMap::new();
    for file in patch.files() {
        // Resolving confines every target to /workspace.
        let path = paths::resolve(file.path())?;
        if let Some(state) = current_state(&vm_addr, paths::relative(&path)).await? {
            current.insert(file.path().to_owned(), state);
        }
    }
    let patched = patch
        .apply(&current)
        .map_err(|err| SupervisorError::InvalidRequest {
            message: format!("the patch does not apply, nothing was changed: {err}"),
        })?;
    let mut writes = Vec::new();
    let mut deletes = Vec::new();
    for file in &patched {
        match &file.result {
            Some(state) => writes.push(NewFile {
                relative: file.path.clone(),
                content: state.content.clone(),
                mode: state.mode,
            }),
            None => deletes.push(file.path.clone()),
        }
    }
    let tar = changes_tar(&writes)?;
    vm::open(&vm_addr)
        .await?
        .apply_changes(
            ApplyChangesRequest {
                root: paths::ROOT.to_owned(),
                deletes,
                keep_existing_modes: false,
            },
            tar.as_slice(),
        )
        .await?;
    let summary = pyro_actors::patch::PatchSummary::of(&patched);
    Ok(PatchResult {
        workspace_id,
        changed: !patched.is_empty(),
        summary: PatchSummary {
            total: summary.total as u64,
            added: summary.added as u64,
            modified: summary.modified as u64,
            deleted: summary.deleted as u64,
        },
        entries: patched
            .iter()
            .map(|file| PatchEntry {
                path: file.path.clone(),
                status: file.operation.as_str().to_owned(),
            })
            .collect(),
        execution_mode: EXECUTION_MODE.to_owned(),
    })
}

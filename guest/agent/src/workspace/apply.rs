//! `ApplyChanges`: writes several files and deletes others, all or nothing
//! (what `file write` and `patch apply` use).
//!
//! The uploaded tar carries the new contents as regular-file members named
//! relative to the root. Everything is staged first; then every target is
//! checked against the tree (no symlinked parent, a written path is a
//! regular file or missing, a deleted path exists and is not a directory);
//! only then do renames move things into place under the rollback journal.
//! Missing parent directories are created (0755).
//!
//! Modes: a new file gets its member's mode (0644 when the member says 0);
//! an existing file keeps its mode with `keep_existing_modes`, else takes
//! the member's. A replaced file keeps its owner. The member's mtime is
//! used when non-zero.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pyro_guest_protocol::{ApplyChangesRequest, ApplySummary, GuestErrorKind};

use super::files::{self, kind_of, Stamp};
use super::paths::{self, Resolved};
use super::transfer::UploadSource;
use super::txn::Transaction;
use super::{fail, invalid, io_failure, refused, wrong_type, Failure};

/// The mode of a new file whose member says 0.
const DEFAULT_MODE: u32 = 0o644;

/// Applies the upload and `request.deletes` under `request.root`.
pub fn apply_changes<U: UploadSource>(
    request: &ApplyChangesRequest,
    upload: &mut U,
) -> Result<ApplySummary, Failure> {
    let root = paths::absolute(&request.root, "root")?;
    paths::existing_dir(&root, "root")?;
    let mut deletes = Vec::with_capacity(request.deletes.len());
    let mut deleted = HashSet::new();
    for raw in &request.deletes {
        let rel = paths::relative_in_request(raw, "deleted path")?;
        if !deleted.insert(rel.clone()) {
            return Err(invalid(format!(
                "{raw} is deleted twice; name each path once"
            )));
        }
        deletes.push(rel);
    }
    Transaction::begin(&root)?.run(|txn| {
        let staged = stage_files(txn.stage(), &root, upload, &deleted)?;
        upload.finish()?;
        let plan = plan(&root, staged, &deletes, request.keep_existing_modes)?;
        plan.finalize_staged()?;
        plan.execute(txn)
    })
}

/// One staged file.
#[derive(Debug)]
struct Staged {
    rel: PathBuf,
    path: PathBuf,
    mode: u32,
    mtime: Option<Stamp>,
    size: u64,
}

fn stage_files<U: UploadSource>(
    stage: &Path,
    root: &Path,
    upload: &mut U,
    deleted: &HashSet<PathBuf>,
) -> Result<Vec<Staged>, Failure> {
    let files_dir = stage.join("files");
    std::fs::create_dir(&files_dir)
        .map_err(|err| io_failure(&format!("creating {}", files_dir.display()), &err))?;
    let mut archive = tar::Archive::new(upload);
    let mut staged = Vec::new();
    let mut written = HashSet::new();
    let mut buffer = vec![0u8; 256 * 1024];
    for entry in archive.entries().map_err(|err| malformed(&err))? {
        let mut entry = entry.map_err(|err| malformed(&err))?;
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            continue;
        }
        let raw = entry.path().map_err(|err| malformed(&err))?.into_owned();
        let shown = raw.display().to_string();
        let rel = match paths::relative(&raw) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Err(invalid(format!("member {shown:?} names the root itself"))),
            Err(err) => {
                return Err(refused(format!(
                    "member {shown:?} {}; only relative paths below the root are written",
                    err.reason()
                )))
            }
        };
        if !(entry_type.is_file() || entry_type.is_contiguous()) {
            return Err(invalid(format!(
                "member {shown} is not a regular file; changes carry file contents only"
            )));
        }
        if !written.insert(rel.clone()) {
            return Err(invalid(format!(
                "{shown} is written twice; name each path once"
            )));
        }
        if deleted.contains(&rel) {
            return Err(invalid(format!("{shown} is both written and deleted")));
        }
        let mode = entry.header().mode().map_err(|err| malformed(&err))? & 0o7777;
        let mtime = entry.header().mtime().map_err(|err| malformed(&err))?;
        let path = files_dir.join(staged.len().to_string());
        let target = root.join(&rel);
        let stage_error =
            |err: &io::Error| io_failure(&format!("staging {}", target.display()), err);
        let mut file = files::create_new(&path).map_err(|err| stage_error(&err))?;
        let mut size = 0u64;
        loop {
            let n = match entry.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(malformed(&err)),
            };
            file.write_all(&buffer[..n])
                .map_err(|err| stage_error(&err))?;
            size += n as u64;
        }
        staged.push(Staged {
            rel,
            path,
            mode: if mode == 0 { DEFAULT_MODE } else { mode },
            mtime: (mtime != 0).then(|| Stamp::from_secs(i64::try_from(mtime).unwrap_or(i64::MAX))),
            size,
        });
    }
    Ok(staged)
}

/// A file to write.
#[derive(Debug)]
struct FileWrite {
    staged: Staged,
    target: PathBuf,
    replaces: bool,
    mode: u32,
    owner: Option<(u32, u32)>,
}

/// Everything the change does, checked against the tree.
#[derive(Debug)]
struct Plan {
    create_dirs: BTreeSet<PathBuf>,
    writes: Vec<FileWrite>,
    deletes: Vec<PathBuf>,
}

fn plan(
    root: &Path,
    staged: Vec<Staged>,
    deletes: &[PathBuf],
    keep_existing_modes: bool,
) -> Result<Plan, Failure> {
    let mut plan = Plan {
        create_dirs: BTreeSet::new(),
        writes: Vec::with_capacity(staged.len()),
        deletes: Vec::with_capacity(deletes.len()),
    };
    for file in staged {
        let target = root.join(&file.rel);
        let (replaces, mode, owner) = match paths::resolve_below(root, &file.rel, &target)? {
            Resolved::Found(meta) if meta.is_file() => {
                let mode = if keep_existing_modes {
                    files::mode_of(&meta)
                } else {
                    file.mode
                };
                (true, mode, Some((meta.uid(), meta.gid())))
            }
            Resolved::Found(meta) if meta.file_type().is_symlink() => {
                return Err(wrong_type(format!(
                    "{} is a symlink; file writes neither follow nor replace symlinks, delete it first",
                    target.display()
                )))
            }
            Resolved::Found(meta) => {
                return Err(wrong_type(format!(
                    "{} is a {}, not a regular file; only regular files are written",
                    target.display(),
                    kind_of(&meta).as_str()
                )))
            }
            Resolved::Missing { existing } => {
                let mut dir = target.parent().unwrap_or(root).to_path_buf();
                while dir != existing && dir.starts_with(&existing) {
                    plan.create_dirs.insert(dir.clone());
                    if !dir.pop() {
                        break;
                    }
                }
                (false, file.mode, None)
            }
        };
        plan.writes.push(FileWrite {
            staged: file,
            target,
            replaces,
            mode,
            owner,
        });
    }
    for rel in deletes {
        let target = root.join(rel);
        match paths::resolve_below(root, rel, &target)? {
            Resolved::Found(meta) if meta.is_dir() => {
                return Err(wrong_type(format!(
                    "{} is a directory; only files and symlinks are deleted",
                    target.display()
                )))
            }
            Resolved::Found(_) => plan.deletes.push(target),
            Resolved::Missing { .. } => {
                return Err(fail(
                    GuestErrorKind::NotFound,
                    format!("cannot delete {}: it does not exist", target.display()),
                ))
            }
        }
    }
    Ok(plan)
}

impl Plan {
    /// Gives the staged files their final owner, mode and mtime.
    fn finalize_staged(&self) -> Result<(), Failure> {
        for write in &self.writes {
            let path = &write.staged.path;
            let mut done = Ok(());
            if let Some((uid, gid)) = write.owner {
                done = std::os::unix::fs::chown(path, Some(uid), Some(gid));
            }
            done.and_then(|()| files::set_mode(path, write.mode))
                .and_then(|()| {
                    write
                        .staged
                        .mtime
                        .map_or(Ok(()), |mtime| files::set_times(path, None, mtime))
                })
                .map_err(|err| io_failure(&format!("staging {}", write.target.display()), &err))?;
        }
        Ok(())
    }

    fn execute(self, txn: &mut Transaction) -> Result<ApplySummary, Failure> {
        let mut summary = ApplySummary {
            files_written: 0,
            files_deleted: 0,
            dirs_created: 0,
            bytes_written: 0,
        };
        for dir in &self.create_dirs {
            let parent = dir.parent().unwrap_or(dir);
            txn.touch_dir(parent)
                .and_then(|()| txn.create_dir(dir, 0o755))
                .map_err(|err| io_failure(&format!("creating {}", dir.display()), &err))?;
            summary.dirs_created += 1;
        }
        for write in &self.writes {
            let parent = write.target.parent().unwrap_or(&write.target);
            txn.touch_dir(parent)
                .and_then(|()| {
                    if write.replaces {
                        txn.move_aside(&write.target)?;
                    }
                    txn.install(&write.staged.path, &write.target)
                })
                .map_err(|err| io_failure(&format!("writing {}", write.target.display()), &err))?;
            summary.files_written += 1;
            summary.bytes_written += write.staged.size;
        }
        for target in &self.deletes {
            let parent = target.parent().unwrap_or(target);
            txn.touch_dir(parent)
                .and_then(|()| txn.move_aside(target))
                .map_err(|err| io_failure(&format!("deleting {}", target.display()), &err))?;
            summary.files_deleted += 1;
        }
        Ok(summary)
    }
}

fn malformed(err: &io::Error) -> Failure {
    invalid(format!(
        "the archive is malformed: {}",
        super::describe_io(err)
    ))
}

#[cfg(test)]
mod tests;

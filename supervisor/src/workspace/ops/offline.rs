//! Stopped workspaces, read straight from their disk images without booting:
//! `disk export`, `disk list`, `disk read`.
//!
//! The guest's `/` is an overlay of the workspace's writable disk (upper)
//! over the environment's image (lower); listing and reading follow the
//! overlay's rules (see `pyro_actors::disk`). Relative paths are under
//! `/workspace`; absolute paths may name any guest path (read-only), but
//! never with `..`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use pyro_actors::disk::OverlayDisks;
use pyro_sdk::api::workspace::{
    DiskExportRequest, DiskExportResult, FileEntry, ListRequest, ListResult, ReadRequest,
    ReadResult,
};

use super::super::files::WorkspaceDir;
use super::super::paths;
use super::inspect::{check_max_bytes, octal, read_result};
use super::transfer::absolute_host_path;
use crate::error::SupervisorError;

/// Resolves a disk path: relative under `/workspace`, absolute as given.
pub fn disk_path(input: &str) -> Result<String, SupervisorError> {
    if input.starts_with('/') && !input.starts_with(paths::ROOT) {
        if input.split('/').any(|part| part == "..") {
            return Err(paths::PathError {
                path: input.to_owned(),
                reason: "contains `..`",
            }
            .into());
        }
        let normalized: Vec<&str> = input
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        return Ok(format!("/{}", normalized.join("/")));
    }
    Ok(paths::resolve(input)?)
}

/// Copies the workspace's writable disk image to a new host path, keeping
/// it sparse (only data ranges are copied).
pub fn export(
    dir: &WorkspaceDir,
    workspace_id: String,
    request: &DiskExportRequest,
) -> Result<DiskExportResult, SupervisorError> {
    let output = absolute_host_path("output_path", &request.output_path)?;
    if std::fs::symlink_metadata(&output).is_ok() {
        return Err(SupervisorError::OutputExists { path: output });
    }
    let source = dir.disk();
    let bytes = sparse_copy(&source, &output).map_err(|err| {
        let _ = std::fs::remove_file(&output);
        SupervisorError::io("copying the disk image to", &output, err)
    })?;
    Ok(DiskExportResult {
        workspace_id,
        output_path: output.display().to_string(),
        disk_format: "ext4".to_owned(),
        bytes_written: bytes,
    })
}

/// Copies `from` to the new file `to`, skipping holes; returns the size.
fn sparse_copy(from: &Path, to: &Path) -> io::Result<u64> {
    let input = File::open(from)?;
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let len = input.metadata()?.len();
    output.set_len(len)?;
    let mut offset: i64 = 0;
    let end = i64::try_from(len).map_err(io::Error::other)?;
    while offset < end {
        // SAFETY: lseek on a valid fd; SEEK_DATA/SEEK_HOLE only move the offset.
        let data = unsafe { libc::lseek(input.as_raw_fd(), offset, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after offset
            }
            return Err(err);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(input.as_raw_fd(), data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        copy_range(&input, &output, data as u64, (hole - data) as u64)?;
        offset = hole;
    }
    output.sync_all()?;
    Ok(len)
}

fn copy_range(input: &File, output: &File, start: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let want = ((len - done) as usize).min(buf.len());
        let n = input.read_at(&mut buf[..want], start + done)?;
        if n == 0 {
            break;
        }
        output.write_all_at(&buf[..n], start + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Lists a path of the stopped workspace.
pub fn list(
    disks: &OverlayDisks,
    workspace_id: String,
    request: &ListRequest,
) -> Result<ListResult, SupervisorError> {
    let path = disk_path(request.path.as_deref().unwrap_or(paths::ROOT))?;
    let entries = disks
        .list(&path, request.recursive)?
        .into_iter()
        .map(|entry| FileEntry {
            path: entry.path,
            artifact_type: entry.kind.as_str().to_owned(),
            size_bytes: entry.size,
            mode: octal(entry.mode),
            link_target: entry.link_target,
        })
        .collect();
    Ok(ListResult {
        workspace_id,
        path,
        recursive: request.recursive,
        entries,
    })
}

/// Reads a file of the stopped workspace.
pub fn read(
    disks: &OverlayDisks,
    workspace_id: String,
    request: &ReadRequest,
) -> Result<ReadResult, SupervisorError> {
    check_max_bytes(request.max_bytes)?;
    let path = disk_path(&request.path)?;
    let read = disks.read(&path, request.max_bytes)?;
    Ok(read_result(
        workspace_id,
        path,
        read.size,
        request.max_bytes,
        &read.bytes,
        read.truncated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_paths_resolve_like_the_guest() {
        assert_eq!(disk_path("src/a").unwrap(), "/workspace/src/a");
        assert_eq!(disk_path("/etc//hostname").unwrap(), "/etc/hostname");
        assert!(disk_path("/etc/../root").is_err());
        assert!(disk_path("../x").is_err());
    }

    #[test]
    fn sparse_copies_keep_holes_and_bytes() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from.img");
        let file = File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(b"head", 0).unwrap();
        file.write_all_at(b"middle", 32 << 20).unwrap();
        drop(file);
        let to = dir.path().join("to.img");
        assert_eq!(sparse_copy(&from, &to).unwrap(), 64 << 20);
        let copy = std::fs::read(&to).unwrap();
        assert_eq!(&copy[..4], b"head");
        assert_eq!(&copy[32 << 20..(32 << 20) + 6], b"middle");
        assert!(
            std::fs::metadata(&to).unwrap().blocks() * 512 < 4 << 20,
            "the copy stays sparse"
        );
        assert!(sparse_copy(&from, &to).is_err(), "never overwrites");
    }
}

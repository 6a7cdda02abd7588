//! Snapshots as manifests plus content-addressed blobs, and the conversions
//! to and from tar streams.
//!
//! - A seed (already validated and normalized into a plain tar) becomes the
//!   baseline: one manifest entry per member, file contents stored as blobs.
//! - A snapshot of the live tree is the guest's manifest; only files whose
//!   hash is not stored yet are fetched (a tar of just those), so repeated
//!   snapshots and diffs move only what changed.
//! - Restoring builds a tar from a manifest and its blobs.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use pyro_guest_protocol::{EntryKind, ManifestEntry};

use super::files::WorkspaceDir;

/// Totals of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotTotals {
    /// Entries.
    pub entry_count: u64,
    /// Bytes of file content.
    pub bytes_total: u64,
    /// Bytes newly stored as blobs.
    pub bytes_stored: u64,
}

/// Totals of a manifest (nothing stored).
pub fn totals(entries: &[ManifestEntry]) -> SnapshotTotals {
    SnapshotTotals {
        entry_count: entries.len() as u64,
        bytes_total: entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum(),
        bytes_stored: 0,
    }
}

/// Reads a plain tar (validated beforehand), stores its files as blobs and
/// returns its manifest, sorted by path.
pub fn manifest_from_tar(
    tar: impl Read,
    dir: &WorkspaceDir,
) -> io::Result<(Vec<ManifestEntry>, SnapshotTotals)> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = Vec::new();
    let mut totals = SnapshotTotals::default();
    for member in archive.entries()? {
        let mut member = member?;
        let path = normalize(&member.path()?.to_string_lossy());
        if path.is_empty() {
            continue;
        }
        let header = member.header();
        let mode = header.mode()? & 0o7777;
        let mtime = i64::try_from(header.mtime()?).unwrap_or(0);
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Directory,
            tar::EntryType::Symlink => EntryKind::Symlink,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("archive member {path} has unsupported type {other:?}"),
                ))
            }
        };
        let link_target = match kind {
            EntryKind::Symlink => member
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned()),
            _ => None,
        };
        let (sha256, size) = match kind {
            EntryKind::File => {
                let size = member.size();
                let (sha, new) = dir.put_blob(&mut member, None)?;
                totals.bytes_total += size;
                if new {
                    totals.bytes_stored += size;
                }
                (Some(sha), size)
            }
            _ => (None, 0),
        };
        entries.push(ManifestEntry {
            path,
            kind,
            mode,
            size,
            mtime,
            sha256,
            link_target,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|later, earlier| later.path == earlier.path);
    totals.entry_count = entries.len() as u64;
    Ok((entries, totals))
}

/// Stores the files of a tar fetched from the guest (only the files missing
/// from the blob store) and updates `manifest` with what was actually read:
/// a file that changed between the manifest and the fetch is recorded as
/// fetched. Returns the bytes newly stored.
pub fn store_fetched(
    tar: impl Read,
    manifest: &mut [ManifestEntry],
    dir: &WorkspaceDir,
) -> io::Result<u64> {
    let index: HashMap<String, usize> = manifest
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    let mut archive = tar::Archive::new(tar);
    let mut stored = 0;
    for member in archive.entries()? {
        let mut member = member?;
        if member.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = normalize(&member.path()?.to_string_lossy());
        let size = member.size();
        let (sha, new) = dir.put_blob(&mut member, None)?;
        if new {
            stored += size;
        }
        if let Some(&i) = index.get(&path) {
            manifest[i].sha256 = Some(sha);
            manifest[i].size = size;
        }
    }
    Ok(stored)
}

/// The regular files of `manifest` whose content is not stored yet.
pub fn missing_blobs(manifest: &[ManifestEntry], dir: &WorkspaceDir) -> Vec<String> {
    manifest
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter(|e| e.sha256.is_none_or(|sha| !dir.has_blob(&sha)))
        .map(|e| e.path.clone())
        .collect()
}

/// Writes a tar of `manifest` (directories, files from blobs, symlinks) to
/// `out`, paths relative to the snapshot root.
pub fn tar_from_manifest(
    manifest: &[ManifestEntry],
    dir: &WorkspaceDir,
    out: impl Write,
) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    for entry in manifest {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_mtime(u64::try_from(entry.mtime).unwrap_or(0));
        header.set_uid(0);
        header.set_gid(0);
        match entry.kind {
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", entry.path), io::empty())?;
            }
            EntryKind::File => {
                let sha = entry.sha256.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} has no content hash", entry.path),
                    )
                })?;
                let blob = std::fs::File::open(dir.blob_path(&sha))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(blob.metadata()?.len());
                builder.append_data(&mut header, &entry.path, blob)?;
            }
            EntryKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = entry.link_target.as_deref().unwrap_or_default();
                builder.append_link(&mut header, &entry.path, target)?;
            }
            EntryKind::Other => {}
        }
    }
    builder.into_inner()?.flush()
}

/// `./a/b/` -> `a/b`.
fn normalize(path: &str) -> String {
    path.trim_start_matches("./").trim_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o750);
        dir.set_mtime(100);
        dir.set_size(0);
        builder.append_data(&mut dir, "src/", io::empty()).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_mode(0o755);
        file.set_mtime(200);
        file.set_size(6);
        builder
            .append_data(&mut file, "src/run.sh", &b"echo 1"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        builder
            .append_link(&mut link, "latest", "src/run.sh")
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_tar_round_trips_through_manifest_and_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::new(tmp.path(), "aaaaaaaaaaaa");
        dir.create().unwrap();
        let (manifest, totals) = manifest_from_tar(&sample_tar()[..], &dir).unwrap();
        assert_eq!(totals.entry_count, 3);
        assert_eq!(totals.bytes_total, 6);
        assert_eq!(totals.bytes_stored, 6);
        let paths: Vec<&str> = manifest.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["latest", "src", "src/run.sh"]);
        assert_eq!(manifest[1].mode, 0o750);
        assert_eq!(manifest[2].mode, 0o755);
        assert_eq!(manifest[2].mtime, 200);
        assert_eq!(manifest[0].link_target.as_deref(), Some("src/run.sh"));
        assert!(missing_blobs(&manifest, &dir).is_empty());

        let mut rebuilt = Vec::new();
        tar_from_manifest(&manifest, &dir, &mut rebuilt).unwrap();
        let other = tempfile::tempdir().unwrap();
        let again = WorkspaceDir::new(other.path(), "bbbbbbbbbbbb");
        again.create().unwrap();
        let (round_trip, _) = manifest_from_tar(&rebuilt[..], &again).unwrap();
        assert_eq!(round_trip, manifest);
    }

    #[test]
    fn fetched_files_update_the_manifest_with_what_was_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::new(tmp.path(), "aaaaaaaaaaaa");
        dir.create().unwrap();
        let mut manifest = vec![ManifestEntry {
            path: "a.txt".into(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 3,
            mtime: 0,
            sha256: Some([7; 32]),
            link_target: None,
        }];
        assert_eq!(missing_blobs(&manifest, &dir), vec!["a.txt".to_owned()]);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(5);
        builder
            .append_data(&mut header, "a.txt", &b"newer"[..])
            .unwrap();
        let stored =
            store_fetched(&builder.into_inner().unwrap()[..], &mut manifest, &dir).unwrap();
        assert_eq!(stored, 5);
        assert_eq!(manifest[0].size, 5);
        assert!(dir.has_blob(&manifest[0].sha256.unwrap()));
    }
}

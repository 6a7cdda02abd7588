//! A workspace's files on the host, under `<data>/workspaces/<id>/` (0700):
//!
//! ```text
//! disk.ext4              the writable disk (overlay upper layer), sparse
//! blobs/<sha256>         file contents of every snapshot, stored once
//! snapshots/<name>.json  a snapshot's manifest (entries, hashes, modes)
//! commands/<n>.out|.err  command output (the first MiB of each stream)
//! tmp/                   staging for archives built or received
//! ```
//!
//! Every file is written under a temporary name, fsynced and renamed, so a
//! crash never leaves a half-written blob, manifest or output behind.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use pyro_guest_protocol::ManifestEntry;
use sha2::{Digest, Sha256};

/// Command output kept per stream.
pub const OUTPUT_KEEP_BYTES: usize = 1024 * 1024;

/// The files of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceDir {
    root: PathBuf,
}

impl WorkspaceDir {
    /// The directory of workspace `id` under the data directory.
    pub fn new(data_dir: &Path, id: &str) -> Self {
        Self {
            root: data_dir.join("workspaces").join(id),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The writable disk image.
    pub fn disk(&self) -> PathBuf {
        self.root.join("disk.ext4")
    }

    /// Staging space for archives.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn commands(&self) -> PathBuf {
        self.root.join("commands")
    }

    /// Creates the directory tree (private to the user).
    pub fn create(&self) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in [
            self.root.clone(),
            self.blobs(),
            self.snapshots(),
            self.commands(),
            self.tmp(),
        ] {
            builder.create(dir)?;
        }
        Ok(())
    }

    /// Removes everything.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// A fresh staging path inside `tmp/`.
    pub fn staging_file(&self, label: &str) -> PathBuf {
        self.tmp().join(format!("{label}-{}", crate::ids::new_id()))
    }

    /// Where the blob with this hash lives.
    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.blobs().join(hex::encode(sha256))
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, sha256: &[u8; 32]) -> bool {
        self.blob_path(sha256).is_file()
    }

    /// Stores `reader`'s bytes as a blob, checking they hash to `expected`
    /// when given. Returns the hash and whether the blob was new.
    pub fn put_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<&[u8; 32]>,
    ) -> io::Result<([u8; 32], bool)> {
        let tmp = self.staging_file("blob");
        let result = (|| {
            let mut file = File::create(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
            }
            file.sync_all()?;
            let digest: [u8; 32] = hasher.finalize().into();
            if let Some(expected) = expected {
                if &digest != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "content hashes to {} instead of {}",
                            hex::encode(digest),
                            hex::encode(expected)
                        ),
                    ));
                }
            }
            Ok(digest)
        })();
        let digest = match result {
            Ok(digest) => digest,
            Err(err) => {
                let _ = fs::remove_file(&tmp);
                return Err(err);
            }
        };
        let target = self.blob_path(&digest);
        if target.is_file() {
            fs::remove_file(&tmp)?;
            return Ok((digest, false));
        }
        fs::rename(&tmp, &target)?;
        Ok((digest, true))
    }

    /// Writes a snapshot's manifest.
    pub fn write_manifest(&self, name: &str, entries: &[ManifestEntry]) -> io::Result<()> {
        let bytes = serde_json::to_vec(entries).map_err(io::Error::other)?;
        write_atomically(
            &self.snapshots().join(format!("{name}.json")),
            &bytes,
            &self.tmp(),
        )
    }

    /// Reads a snapshot's manifest.
    pub fn read_manifest(&self, name: &str) -> io::Result<Vec<ManifestEntry>> {
        let bytes = fs::read(self.snapshots().join(format!("{name}.json")))?;
        serde_json::from_slice(&bytes)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }

    /// Removes a snapshot's manifest, then every blob no remaining snapshot
    /// uses. Returns the bytes freed.
    pub fn delete_manifest(&self, name: &str, remaining: &[String]) -> io::Result<u64> {
        match fs::remove_file(self.snapshots().join(format!("{name}.json"))) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let mut live = HashSet::new();
        for other in remaining {
            for entry in self.read_manifest(other)? {
                if let Some(sha) = entry.sha256 {
                    live.insert(hex::encode(sha));
                }
            }
        }
        let mut freed = 0;
        for blob in fs::read_dir(self.blobs())? {
            let blob = blob?;
            if !live.contains(blob.file_name().to_string_lossy().as_ref()) {
                freed += blob.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(blob.path())?;
            }
        }
        Ok(freed)
    }

    /// Stores the first [`OUTPUT_KEEP_BYTES`] of a command's output; returns
    /// whether anything was cut.
    pub fn write_output(&self, sequence: u64, stdout: &[u8], stderr: &[u8]) -> io::Result<bool> {
        let keep = |bytes: &[u8]| bytes.len().min(OUTPUT_KEEP_BYTES);
        write_atomically(
            &self.commands().join(format!("{sequence}.out")),
            &stdout[..keep(stdout)],
            &self.tmp(),
        )?;
        write_atomically(
            &self.commands().join(format!("{sequence}.err")),
            &stderr[..keep(stderr)],
            &self.tmp(),
        )?;
        Ok(stdout.len() > OUTPUT_KEEP_BYTES || stderr.len() > OUTPUT_KEEP_BYTES)
    }

    /// A command's stored output (empty when missing).
    pub fn read_output(&self, sequence: u64) -> (Vec<u8>, Vec<u8>) {
        let read = |ext: &str| {
            fs::read(self.commands().join(format!("{sequence}.{ext}"))).unwrap_or_default()
        };
        (read("out"), read("err"))
    }

    /// Forgets all command output (reset).
    pub fn clear_outputs(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.commands())? {
            fs::remove_file(entry?.path())?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file in `tmp_dir`, fsynced
/// and renamed.
pub fn write_atomically(path: &Path, bytes: &[u8], tmp_dir: &Path) -> io::Result<()> {
    let tmp = tmp_dir.join(format!(".write-{}", crate::ids::new_id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_guest_protocol::EntryKind;

    fn dir() -> (tempfile::TempDir, WorkspaceDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::new(tmp.path(), "aaaaaaaaaaaa");
        dir.create().unwrap();
        (tmp, dir)
    }

    fn file_entry(path: &str, sha: [u8; 32]) -> ManifestEntry {
        ManifestEntry {
            path: path.to_owned(),
            kind: EntryKind::File,
            mode: 0o644,
            size: 1,
            mtime: 0,
            sha256: Some(sha),
            link_target: None,
        }
    }

    #[test]
    fn blobs_are_stored_once_and_checked() {
        let (_tmp, dir) = dir();
        let (sha, new) = dir.put_blob(&mut &b"hello"[..], None).unwrap();
        assert!(new);
        assert_eq!(hex::encode(sha), hex::encode(Sha256::digest(b"hello")));
        let (_, again) = dir.put_blob(&mut &b"hello"[..], Some(&sha)).unwrap();
        assert!(!again, "same content is stored once");
        let err = dir.put_blob(&mut &b"other"[..], Some(&sha)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            fs::read_dir(dir.tmp()).unwrap().count(),
            0,
            "no staging file is left"
        );
    }

    #[test]
    fn deleting_a_snapshot_frees_only_unshared_blobs() {
        let (_tmp, dir) = dir();
        let (shared, _) = dir.put_blob(&mut &b"shared"[..], None).unwrap();
        let (own, _) = dir.put_blob(&mut &b"own"[..], None).unwrap();
        dir.write_manifest("baseline", &[file_entry("a", shared)])
            .unwrap();
        dir.write_manifest("snap", &[file_entry("a", shared), file_entry("b", own)])
            .unwrap();
        assert_eq!(dir.read_manifest("snap").unwrap().len(), 2);
        let freed = dir
            .delete_manifest("snap", &["baseline".to_owned()])
            .unwrap();
        assert_eq!(freed, 3);
        assert!(dir.has_blob(&shared));
        assert!(!dir.has_blob(&own));
        assert!(dir.read_manifest("snap").is_err());
    }

    #[test]
    fn output_is_capped_and_cleared() {
        let (_tmp, dir) = dir();
        let big = vec![b'x'; OUTPUT_KEEP_BYTES + 10];
        assert!(dir.write_output(1, &big, b"err").unwrap());
        let (out, err) = dir.read_output(1);
        assert_eq!(out.len(), OUTPUT_KEEP_BYTES);
        assert_eq!(err, b"err");
        assert!(!dir.write_output(2, b"a", b"b").unwrap());
        dir.clear_outputs().unwrap();
        assert_eq!(dir.read_output(2), (Vec::new(), Vec::new()));
    }
}

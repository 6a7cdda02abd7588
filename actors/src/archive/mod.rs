//! Seeds in, exports out: tar archives between users, the host and guests.
//!
//! Seeds come from users and MCP clients, exports come from the (untrusted)
//! guest, so every archive is read completely and validated before anything
//! is written anywhere but an anonymous spool file:
//!
//! - names must be non-empty, relative, UTF-8 and free of `..`;
//! - only files, directories, symlinks and hard links to an earlier regular
//!   file are accepted (no devices, fifos, or other types);
//! - symlink targets must be relative and must not resolve outside the
//!   archive root, also when followed through other symlinks of the archive;
//! - no entry may sit below a symlink or a file entry (in any order), and a
//!   path may appear only once (a directory listed twice is merged).
//!
//! A validated archive is then written as a *canonical* plain tar: entries
//! sorted by path components (parents first, every parent listed), hard
//! links as copies, owner `0:0`, modes (`& 0o7777`) and mtimes kept. That is
//! the form the host stores as a workspace's immutable baseline and streams
//! to the guest; the same tree always gives the same bytes.
//!
//! [`extract_export`] writes an export below a new host path without ever
//! following a symlink.

mod error;
mod extract;
mod read;
mod tree;
mod write;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use pyro_guest_protocol::{EntryKind, ManifestEntry};
use sha2::{Digest, Sha256};

pub use error::{ArchiveError, EntryProblem};
pub use extract::extract_export;

use read::{looks_like_tar_header, read_head, sniff, StreamFormat};
use tree::{Member, MemberKind};

/// Where a workspace seed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSource {
    /// A host directory, archived as its children, recursively.
    Directory(PathBuf),
    /// A plain or gzip-compressed tar file.
    TarArchive(PathBuf),
}

impl SeedSource {
    /// Tells what `path` is by looking at it (a directory) or at its first
    /// bytes (a tar or gzip-compressed tar, whatever its extension).
    pub fn detect(path: &Path) -> Result<Self, ArchiveError> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ArchiveError::SeedNotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(error) => return Err(ArchiveError::io("inspecting", path, error)),
        };
        if meta.is_dir() {
            return Ok(Self::Directory(path.to_path_buf()));
        }
        let unsupported = || ArchiveError::UnsupportedSeed {
            path: path.to_path_buf(),
        };
        if !meta.is_file() {
            return Err(unsupported());
        }
        let open = || File::open(path).map_err(|e| ArchiveError::io("opening", path, e));
        let head = read_head(&mut open()?).map_err(|e| ArchiveError::io("reading", path, e))?;
        let tar_head = match sniff(&head) {
            Ok(StreamFormat::Tar) => head,
            Ok(StreamFormat::Gzip) => read_head(&mut MultiGzDecoder::new(open()?))
                .map_err(|source| ArchiveError::ReadTar { source })?,
            Err(ArchiveError::NotATar) => return Err(unsupported()),
            Err(other) => return Err(other),
        };
        if looks_like_tar_header(&tar_head) {
            Ok(Self::TarArchive(path.to_path_buf()))
        } else {
            Err(unsupported())
        }
    }

    /// `directory` or `tar_archive`, as users see it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Directory(_) => "directory",
            Self::TarArchive(_) => "tar_archive",
        }
    }

    /// The host path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Directory(path) | Self::TarArchive(path) => path,
        }
    }
}

/// What an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveStats {
    /// Entries, directories included.
    pub entry_count: u64,
    /// File bytes (hard links count as the copies they become).
    pub total_bytes: u64,
}

/// What a workspace export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactType {
    /// One regular file.
    File,
    /// A directory's children.
    Directory,
    /// One symlink.
    Symlink,
}

impl ArtifactType {
    /// `file`, `directory` or `symlink`, as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Symlink => "symlink",
        }
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An archive that passed validation, ready to be written in canonical form.
#[derive(Debug)]
pub struct ValidatedArchive {
    members: Vec<Member>,
    /// File contents read from a tar stream (none for directory sources).
    spool: Option<File>,
}

impl ValidatedArchive {
    /// An archive without entries (the baseline of an unseeded workspace).
    pub fn empty() -> Self {
        Self {
            members: Vec::new(),
            spool: None,
        }
    }

    /// Reads and validates a plain or gzip tar stream (told apart by its
    /// first bytes). File contents are copied into an anonymous spool file
    /// created in `spool_dir`; nothing else is written.
    pub fn from_tar(input: impl Read, spool_dir: &Path) -> Result<Self, ArchiveError> {
        let spool = tempfile::tempfile_in(spool_dir)
            .map_err(|e| ArchiveError::io("creating a spool file in", spool_dir, e))?;
        let members = read::read_tar(input, &spool)?;
        Ok(Self {
            members,
            spool: Some(spool),
        })
    }

    /// Walks and validates a host directory: its children recursively, not
    /// following symlinks; device nodes, fifos and sockets are refused;
    /// hard-linked files become copies. File contents are read (and checked
    /// to be unchanged in size) when the archive is written.
    pub fn from_directory(dir: &Path) -> Result<Self, ArchiveError> {
        Ok(Self {
            members: read::read_directory(dir)?,
            spool: None,
        })
    }

    /// Reads a seed; a tar seed is spooled in `spool_dir`.
    pub fn from_seed(seed: &SeedSource, spool_dir: &Path) -> Result<Self, ArchiveError> {
        match seed {
            SeedSource::Directory(dir) => Self::from_directory(dir),
            SeedSource::TarArchive(path) => {
                let file = File::open(path).map_err(|e| ArchiveError::io("opening", path, e))?;
                Self::from_tar(io::BufReader::new(file), spool_dir)
            }
        }
    }

    /// Entry count and file bytes.
    pub fn stats(&self) -> ArchiveStats {
        ArchiveStats {
            entry_count: self.members.len() as u64,
            total_bytes: self
                .members
                .iter()
                .map(|member| match &member.kind {
                    MemberKind::File(content) => content.len(),
                    _ => 0,
                })
                .sum(),
        }
    }

    /// Writes the canonical plain tar into `out` and returns `out`.
    pub fn write_tar<W: Write>(&self, out: W) -> Result<W, ArchiveError> {
        write::write_tar(&self.members, self.spool.as_ref(), out)
    }

    /// Stores the canonical tar at `dest` atomically (a synced temporary
    /// file in the same directory, renamed into place); `dest` must not
    /// exist.
    pub fn store(&self, dest: &Path) -> Result<ArchiveStats, ArchiveError> {
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".pyro-archive-")
            .tempfile_in(dir)
            .map_err(|e| ArchiveError::io("creating a temporary file in", dir, e))?;
        let written = self.write_tar(BufWriter::new(temp.as_file_mut()))?.flush();
        written.map_err(|e| ArchiveError::io("writing", temp.path(), e))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| ArchiveError::io("syncing", temp.path(), e))?;
        temp.persist_noclobber(dest).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                ArchiveError::OutputExists {
                    path: dest.to_path_buf(),
                }
            } else {
                ArchiveError::io("storing", dest, e.error)
            }
        })?;
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| ArchiveError::io("syncing", dir, e))?;
        Ok(self.stats())
    }

    /// The tree manifest of the archive, in canonical order, with SHA-256
    /// of every file.
    pub fn manifest(&self) -> Result<Vec<ManifestEntry>, ArchiveError> {
        self.members
            .iter()
            .map(|member| {
                let (kind, size, sha256, link_target) = match &member.kind {
                    MemberKind::Directory => (EntryKind::Directory, 0, None, None),
                    MemberKind::File(content) => {
                        let mut hasher = Sha256::new();
                        write::open_content(content, self.spool.as_ref())
                            .and_then(|mut reader| io::copy(&mut reader, &mut hasher))
                            .map_err(|source| ArchiveError::ReadEntry {
                                member: member.path.clone(),
                                source,
                            })?;
                        (
                            EntryKind::File,
                            content.len(),
                            Some(hasher.finalize().into()),
                            None,
                        )
                    }
                    MemberKind::Symlink { target } => {
                        (EntryKind::Symlink, 0, None, Some(target.clone()))
                    }
                };
                Ok(ManifestEntry {
                    path: member.path.clone(),
                    kind,
                    mode: member.mode,
                    size,
                    mtime: i64::try_from(member.mtime).unwrap_or(i64::MAX),
                    sha256,
                    link_target,
                })
            })
            .collect()
    }

    /// The contents of the regular file at `path` (as in the manifest), or
    /// `None` when the archive has no regular file there.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let found = self
            .members
            .binary_search_by(|member| tree::compare_paths(&member.path, path));
        let Some(MemberKind::File(content)) = found.ok().map(|at| &self.members[at].kind) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        write::open_content(content, self.spool.as_ref())
            .and_then(|mut reader| reader.read_to_end(&mut bytes))
            .map_err(|source| ArchiveError::ReadEntry {
                member: path.to_owned(),
                source,
            })?;
        Ok(Some(bytes))
    }
}

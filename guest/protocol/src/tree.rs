//! Tree manifests: what a directory tree holds, entry by entry.
//!
//! The guest produces a manifest of `/workspace` (hashing file contents, with
//! a cache so unchanged files are not re-read); the host keeps one per
//! snapshot. Comparing two manifests tells what changed without moving file
//! contents; only the changed files' bytes then cross the channel.

use serde::{Deserialize, Serialize};

/// The type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else (fifo, socket, device); listed, never transferred.
    Other,
}

impl EntryKind {
    /// `file`, `directory`, `symlink` or `other`, as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Symlink => "symlink",
            Self::Other => "other",
        }
    }
}

/// One entry of a tree manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The path relative to the tree's root, `/`-separated, without a
    /// leading `/` (for example `src/main.rs`).
    pub path: String,
    /// Its type.
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// SHA-256 of the contents (files only).
    pub sha256: Option<[u8; 32]>,
    /// The link target (symlinks only).
    pub link_target: Option<String>,
}

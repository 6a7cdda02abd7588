//! Reading a stopped workspace's files straight from its disk images,
//! without booting it and without mounting anything.
//!
//! A workspace's `/` is an overlayfs in the guest: the environment's root
//! image is the read-only lower layer and `/upper` on the workspace's own
//! disk is the upper layer. [`OverlayDisks`] shows the same merged tree from
//! the host, through `debugfs` (e2fsprogs) run read-only on both images:
//! upper entries shadow lower ones, directories merge, whiteouts (character
//! devices 0:0, or zero-size files with `trusted.overlay.whiteout`) hide
//! lower entries, and an upper directory with `trusted.overlay.opaque=y`
//! hides the lower directory's contents.
//!
//! Paths are absolute guest paths; `.` and repeated slashes are collapsed,
//! `..` is refused. Symlinks are never followed, as in the live file tools:
//! one at the end of a path is listed as itself and refused by
//! [`OverlayDisks::read`]; one in the middle of a path is an error that
//! names the path it points to, so the caller can ask for that instead.
//! Names are read as bytes (spaces, newlines and other odd characters are
//! fine); names that are not UTF-8 are listed with replacement characters.
//!
//! The images must not be in use by a running VM. debugfs does not replay
//! the ext4 journal: what the guest committed to its journal but had not
//! yet written in place is not seen (after a kill, or if the guest powers
//! off without flushing its data disk's journal).
//!
//! The calls are synchronous and spawn debugfs processes: run them on a
//! blocking thread.

mod debugfs;
mod error;
mod overlay;
mod parse;
mod path;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use error::DiskError;
pub use pyro_guest_protocol::EntryKind;

use debugfs::Image;
use overlay::{kind_name, Found, Node, View};
use path::GuestPath;

/// A stopped workspace's two disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDisks {
    /// The workspace's writable disk (ext4; the overlay upper layer is its
    /// `/upper`).
    pub upper_image: PathBuf,
    /// The environment's root image (ext4; the overlay lower layer).
    pub lower_image: PathBuf,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskEntry {
    /// The absolute guest path (under the path as it was asked for).
    pub path: String,
    /// Its type (a symlink is a symlink, never followed).
    pub kind: EntryKind,
    /// Size in bytes (files and symlinks; 0 for directories).
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The link target, for symlinks.
    pub link_target: Option<String>,
}

/// What [`OverlayDisks::read`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRead {
    /// The file's size in bytes.
    pub size: u64,
    /// Its first `min(size, max_bytes)` bytes.
    pub bytes: Vec<u8>,
    /// Whether the file holds more than `bytes`.
    pub truncated: bool,
}

impl OverlayDisks {
    /// Lists `path` in the merged view: the entry itself when it is not a
    /// directory (a symlink included), else its children, or with
    /// `recursive` everything below it (not descending into symlinks).
    /// Entries are sorted by path component by component, so a directory
    /// comes right before its contents.
    pub fn list(&self, path: &str, recursive: bool) -> Result<Vec<DiskEntry>, DiskError> {
        let path = GuestPath::parse(path)?;
        let view = self.view();
        let start = match view.resolve(&path)? {
            Found::Entry(node) => return Ok(vec![entry(path.display(), &node)]),
            Found::Dir(fetched) => fetched,
        };
        let mut entries = Vec::new();
        let mut parents = vec![path.display()];
        let mut children = view.finish(&[start], None)?;
        loop {
            let mut next_parents = Vec::new();
            let mut next_dirs = Vec::new();
            for (parent, nodes) in parents.iter().zip(children) {
                for node in nodes {
                    let child_path = path::child(parent, &String::from_utf8_lossy(&node.raw.name));
                    if let (true, Some(dir)) = (recursive, &node.dir) {
                        next_parents.push(child_path.clone());
                        next_dirs.push(dir.clone());
                    }
                    entries.push(entry(child_path, &node));
                }
            }
            if next_dirs.is_empty() {
                break;
            }
            children = view.read_dirs(&next_dirs)?;
            parents = next_parents;
        }
        entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        Ok(entries)
    }

    /// Reads up to `max_bytes` of the regular file at `path` in the merged
    /// view. Only that prefix is read from the image, however big the file.
    /// A symlink is refused (with its target), as are directories and
    /// special files.
    pub fn read(&self, path: &str, max_bytes: u64) -> Result<DiskRead, DiskError> {
        let path = GuestPath::parse(path)?;
        let view = self.view();
        let node = match view.resolve(&path)? {
            Found::Entry(node) => node,
            Found::Dir(_) => {
                return Err(DiskError::NotAFile {
                    path: path.display(),
                    kind: kind_name(EntryKind::Directory),
                })
            }
        };
        match node.kind() {
            EntryKind::File => {}
            EntryKind::Symlink => {
                let target = node.target_text();
                return Err(DiskError::IsSymlink {
                    path: path.display(),
                    suggestion: path::substitute(path.components(), &target, &[]),
                    target,
                });
            }
            kind => {
                return Err(DiskError::NotAFile {
                    path: path.display(),
                    kind: kind_name(kind),
                })
            }
        }
        let size = node.raw.size;
        let bytes = view.image(node.layer).cat_prefix(
            node.raw.ino,
            size.min(max_bytes),
            &path.display(),
        )?;
        Ok(DiskRead {
            size,
            bytes,
            truncated: size > max_bytes,
        })
    }

    fn view(&self) -> View<'_> {
        View {
            upper: Image {
                path: &self.upper_image,
                role: "workspace disk",
            },
            lower: Image {
                path: &self.lower_image,
                role: "environment image",
            },
        }
    }
}

fn entry(path: String, node: &Node) -> DiskEntry {
    let kind = node.kind();
    DiskEntry {
        path,
        kind,
        size: if kind == EntryKind::Directory {
            0
        } else {
            node.raw.size
        },
        mode: node.raw.mode & 0o7777,
        link_target: (kind == EntryKind::Symlink).then(|| node.target_text()),
    }
}

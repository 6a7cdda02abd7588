//! Tree walks: pre-order, siblings sorted by name (bytewise), symlinks
//! reported and never followed, with an explicit stack so deep trees do not
//! exhaust a connection thread's stack.
//!
//! Entries that vanish during the walk (a process deleting files meanwhile)
//! are skipped; any other error ends the walk with a message naming the
//! path.

use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::{io_failure, paths::is_missing, Failure};

/// One entry found by a [`Walker`].
#[derive(Debug)]
pub struct WalkEntry {
    /// The absolute path.
    pub path: PathBuf,
    /// The path relative to the walk's root.
    pub rel: PathBuf,
    /// Its own metadata (not followed).
    pub meta: Metadata,
}

/// A walk of everything below a directory.
#[derive(Debug)]
pub struct Walker {
    /// Entries still to visit, the next one last.
    pending: Vec<(PathBuf, PathBuf)>,
    recursive: bool,
}

impl Walker {
    /// Starts a walk below `root` (an existing directory); with `recursive`
    /// false, only its children.
    pub fn new(root: &Path, recursive: bool) -> Result<Self, Failure> {
        let mut walker = Self {
            pending: Vec::new(),
            recursive,
        };
        walker.push_children(root, Path::new(""))?;
        Ok(walker)
    }

    /// The next entry, or `None` when the walk is done.
    pub fn next_entry(&mut self) -> Result<Option<WalkEntry>, Failure> {
        while let Some((path, rel)) = self.pending.pop() {
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if is_missing(&err) => continue,
                Err(err) => return Err(io_failure(&format!("reading {}", path.display()), &err)),
            };
            if self.recursive && meta.is_dir() {
                self.push_children(&path, &rel)?;
            }
            return Ok(Some(WalkEntry { path, rel, meta }));
        }
        Ok(None)
    }

    fn push_children(&mut self, dir: &Path, rel: &Path) -> Result<(), Failure> {
        let reader = match std::fs::read_dir(dir) {
            Ok(reader) => reader,
            Err(err) if is_missing(&err) => return Ok(()),
            Err(err) => return Err(io_failure(&format!("listing {}", dir.display()), &err)),
        };
        let mut names: Vec<OsString> = Vec::new();
        for entry in reader {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(err) => return Err(io_failure(&format!("listing {}", dir.display()), &err)),
            }
        }
        names.sort();
        for name in names.into_iter().rev() {
            self.pending.push((dir.join(&name), rel.join(&name)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_sorted_preorder_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "1").unwrap();
        std::fs::write(root.join("a-c"), "2").unwrap();
        std::fs::write(root.join("Z"), "3").unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();

        let mut walker = Walker::new(root, true).unwrap();
        let mut seen = Vec::new();
        while let Some(entry) = walker.next_entry().unwrap() {
            seen.push(entry.rel.to_string_lossy().into_owned());
        }
        assert_eq!(seen, ["Z", "a", "a/b", "a/b/f", "a-c", "link"]);

        let mut walker = Walker::new(root, false).unwrap();
        let mut top = Vec::new();
        while let Some(entry) = walker.next_entry().unwrap() {
            top.push(entry.rel.to_string_lossy().into_owned());
        }
        assert_eq!(top, ["Z", "a", "a-c", "link"]);
    }
}

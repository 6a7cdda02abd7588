//! Test helpers: archives built member by member (hostile ones included)
//! and exact snapshots of a tree, to assert that a refused or rolled-back
//! change left it untouched.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pyro_guest_protocol::GuestErrorKind;

use super::files::{self, Stamp};
use super::Failure;

/// Builds a tar archive in memory.
pub struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Tar {
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(entry_type: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_mode(mode);
        header.set_mtime(mtime);
        header.set_size(size);
        header
    }

    pub fn file(mut self, name: &str, data: &[u8], mode: u32, mtime: u64) -> Self {
        let mut header = Self::header(tar::EntryType::Regular, mode, mtime, data.len() as u64);
        self.builder.append_data(&mut header, name, data).unwrap();
        self
    }

    pub fn dir(mut self, name: &str, mode: u32, mtime: u64) -> Self {
        let mut header = Self::header(tar::EntryType::Directory, mode, mtime, 0);
        self.builder
            .append_data(&mut header, name, std::io::empty())
            .unwrap();
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 1_600_000_000, 0);
        self.builder.append_link(&mut header, name, target).unwrap();
        self
    }

    pub fn hard_link(mut self, name: &str, target: &str) -> Self {
        let mut header = Self::header(tar::EntryType::Link, 0o644, 1_600_000_000, 0);
        self.builder.append_link(&mut header, name, target).unwrap();
        self
    }

    /// A member written byte for byte, without the builder's path checks.
    pub fn raw(
        mut self,
        name: &[u8],
        entry_type: tar::EntryType,
        link: &[u8],
        data: &[u8],
    ) -> Self {
        let mut header = Self::header(entry_type, 0o644, 1_600_000_000, data.len() as u64);
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    /// A PAX extended header for the next member.
    pub fn pax(mut self, key: &str, value: &str) -> Self {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        let record = format!("{len}{body}");
        let mut header = Self::header(tar::EntryType::XHeader, 0o644, 0, record.len() as u64);
        self.builder
            .append_data(&mut header, "PaxHeader", record.as_bytes())
            .unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// Everything observable about one entry (atime aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: (i64, i64),
    pub content: Vec<u8>,
    pub link: Option<String>,
    pub uid: u32,
}

/// An exact picture of the tree at `root`, the root's own entry included
/// under `.`.
pub fn snapshot(root: &Path) -> BTreeMap<String, Observed> {
    let mut out = BTreeMap::new();
    observe(root, ".", &mut out);
    out
}

fn observe(path: &Path, rel: &str, out: &mut BTreeMap<String, Observed>) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let kind = files::kind_of(&meta).as_str();
    let content = if meta.is_file() {
        std::fs::read(path).unwrap()
    } else {
        Vec::new()
    };
    let link = meta.file_type().is_symlink().then(|| {
        std::fs::read_link(path)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    });
    out.insert(
        rel.to_owned(),
        Observed {
            kind,
            mode: files::mode_of(&meta),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            content,
            link,
            uid: meta.uid(),
        },
    );
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = if rel == "." {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            observe(&path.join(&name), &child, out);
        }
    }
}

/// Sets a path's mtime to a fixed second (its ctime becomes now).
pub fn set_mtime(path: &Path, secs: i64) {
    files::set_times(path, None, Stamp::from_secs(secs)).unwrap();
}

/// The kind of a failure that must be reported.
pub fn kind(failure: &Failure) -> GuestErrorKind {
    match failure {
        Failure::Report(error) => error.kind,
        Failure::Channel(err) => panic!("channel failure: {err}"),
    }
}

/// The message of a failure that must be reported.
pub fn message(failure: &Failure) -> String {
    match failure {
        Failure::Report(error) => error.message.clone(),
        Failure::Channel(err) => panic!("channel failure: {err}"),
    }
}

/// A populated tree with old timestamps, to merge into.
pub fn populated(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    std::fs::write(root.join("keep.txt"), "keep\n").unwrap();
    std::fs::write(root.join("over.txt"), "old contents\n").unwrap();
    std::fs::write(root.join("sub/old.txt"), "old\n").unwrap();
    std::fs::write(root.join("sub/deep/x"), "x").unwrap();
    std::os::unix::fs::symlink("sub", root.join("link")).unwrap();
    std::os::unix::fs::symlink("keep.txt", root.join("alias")).unwrap();
    for rel in [
        "keep.txt",
        "over.txt",
        "sub/old.txt",
        "sub/deep/x",
        "link",
        "alias",
        "sub/deep",
        "sub",
        ".",
    ] {
        set_mtime(&root.join(rel), 1_500_000_000);
    }
}

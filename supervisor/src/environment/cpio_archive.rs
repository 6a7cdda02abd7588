//! A small writer for cpio "newc" archives (the Linux initramfs format).
//!
//! Environments use it for `modules.cpio`; the runtime reuses it for the archive
//! holding pyro-init and the guest agent, which the kernel unpacks after the
//! modules archive (concatenated archives are fine for the kernel). Entries are
//! owned by root, have mtime 0 and get consecutive inode numbers, so the same
//! input always gives the same bytes. Device nodes need no privileges here.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cpio::newc::{self, ModeFileType};
use cpio::NewcBuilder;

use super::error::EnvironmentError;

/// What an archive entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveContent {
    /// A directory.
    Directory,
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A regular file whose bytes are read from this host path while writing.
    HostFile(PathBuf),
    /// A character device node, e.g. `dev/console` is 5:1.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A symbolic link to this target.
    Symlink(String),
}

/// One entry of a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path inside the archive, relative, e.g. `lib/modules/virtio.ko`.
    pub name: String,
    /// Permission bits (e.g. `0o755`); the file type comes from `content`.
    pub permissions: u32,
    /// What the entry holds.
    pub content: ArchiveContent,
}

impl ArchiveEntry {
    /// A directory entry.
    pub fn directory(name: impl Into<String>, permissions: u32) -> Self {
        Self::new(name, permissions, ArchiveContent::Directory)
    }

    /// A regular file with the given bytes.
    pub fn file_from_bytes(name: impl Into<String>, permissions: u32, bytes: Vec<u8>) -> Self {
        Self::new(name, permissions, ArchiveContent::Bytes(bytes))
    }

    /// A regular file copied from a host file when the archive is written.
    pub fn file_from_path(
        name: impl Into<String>,
        permissions: u32,
        source: impl Into<PathBuf>,
    ) -> Self {
        Self::new(name, permissions, ArchiveContent::HostFile(source.into()))
    }

    /// A character device node.
    pub fn char_device(name: impl Into<String>, permissions: u32, major: u32, minor: u32) -> Self {
        Self::new(
            name,
            permissions,
            ArchiveContent::CharDevice { major, minor },
        )
    }

    /// A symbolic link (permissions 0777, as on Linux).
    pub fn symlink(name: impl Into<String>, target: impl Into<String>) -> Self {
        Self::new(name, 0o777, ArchiveContent::Symlink(target.into()))
    }

    fn new(name: impl Into<String>, permissions: u32, content: ArchiveContent) -> Self {
        Self {
            name: name.into(),
            permissions,
            content,
        }
    }

    fn file_type(&self) -> ModeFileType {
        match self.content {
            ArchiveContent::Directory => ModeFileType::Directory,
            ArchiveContent::Bytes(_) | ArchiveContent::HostFile(_) => ModeFileType::Regular,
            ArchiveContent::CharDevice { .. } => ModeFileType::Char,
            ArchiveContent::Symlink(_) => ModeFileType::Symlink,
        }
    }

    fn validate(&self) -> Result<(), EnvironmentError> {
        let invalid = |reason: &str| EnvironmentError::ArchiveEntryInvalid {
            name: self.name.clone(),
            reason: reason.to_owned(),
        };
        if self.name.is_empty() || self.name.starts_with('/') || self.name.contains('\0') {
            return Err(invalid(
                "names must be relative, non-empty and free of NUL bytes",
            ));
        }
        if self
            .name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(invalid(
                "names must not contain empty, '.' or '..' components",
            ));
        }
        if self.permissions & !0o7777 != 0 {
            return Err(invalid("permissions must fit in 0o7777"));
        }
        Ok(())
    }
}

/// Writes `entries` in order, then the trailer, and returns the writer.
///
/// Parents must come before their children (the kernel does not create missing
/// directories). Files larger than 4 GiB - 1 cannot be stored in newc.
pub fn write_newc_archive<W: Write>(
    entries: &[ArchiveEntry],
    mut output: W,
) -> Result<W, EnvironmentError> {
    for (index, entry) in entries.iter().enumerate() {
        entry.validate()?;
        let inode =
            u32::try_from(index + 1).map_err(|_| EnvironmentError::ArchiveEntryInvalid {
                name: entry.name.clone(),
                reason: "too many entries for one archive".to_owned(),
            })?;
        let nlink = if matches!(entry.content, ArchiveContent::Directory) {
            2
        } else {
            1
        };
        let mut header = NewcBuilder::new(&entry.name)
            .ino(inode)
            .uid(0)
            .gid(0)
            .mtime(0)
            .nlink(nlink)
            .mode(entry.permissions)
            .set_mode_file_type(entry.file_type());
        if let ArchiveContent::CharDevice { major, minor } = entry.content {
            header = header.rdev_major(major).rdev_minor(minor);
        }
        output = match &entry.content {
            ArchiveContent::Directory | ArchiveContent::CharDevice { .. } => {
                write_data(header, output, &entry.name, &[])?
            }
            ArchiveContent::Bytes(bytes) => write_data(header, output, &entry.name, bytes)?,
            ArchiveContent::Symlink(target) => {
                write_data(header, output, &entry.name, target.as_bytes())?
            }
            ArchiveContent::HostFile(source) => write_host_file(header, output, entry, source)?,
        };
    }
    newc::trailer(output).map_err(|source| EnvironmentError::ArchiveWrite {
        name: "TRAILER!!!".to_owned(),
        source,
    })
}

/// Writes the archive to a new file at `path` and fsyncs it.
pub fn write_newc_archive_file(
    entries: &[ArchiveEntry],
    path: &Path,
) -> Result<(), EnvironmentError> {
    let file = File::create(path).map_err(|source| EnvironmentError::io("create", path, source))?;
    let mut writer = write_newc_archive(entries, io::BufWriter::new(file))?;
    writer
        .flush()
        .map_err(|source| EnvironmentError::io("write", path, source))?;
    let file = writer
        .into_inner()
        .map_err(|err| EnvironmentError::io("write", path, err.into_error()))?;
    file.sync_all()
        .map_err(|source| EnvironmentError::io("fsync", path, source))
}

fn entry_size(name: &str, length: u64) -> Result<u32, EnvironmentError> {
    u32::try_from(length).map_err(|_| EnvironmentError::ArchiveEntryInvalid {
        name: name.to_owned(),
        reason: format!("{length} bytes is more than newc can store"),
    })
}

fn write_data<W: Write>(
    header: NewcBuilder,
    output: W,
    name: &str,
    data: &[u8],
) -> Result<W, EnvironmentError> {
    let size = entry_size(name, data.len() as u64)?;
    let write_error = |source| EnvironmentError::ArchiveWrite {
        name: name.to_owned(),
        source,
    };
    let mut writer = header.write(output, size);
    writer.write_all(data).map_err(write_error)?;
    writer.finish().map_err(write_error)
}

fn write_host_file<W: Write>(
    header: NewcBuilder,
    output: W,
    entry: &ArchiveEntry,
    source: &Path,
) -> Result<W, EnvironmentError> {
    let mut file = File::open(source).map_err(|err| EnvironmentError::io("open", source, err))?;
    let length = file
        .metadata()
        .map_err(|err| EnvironmentError::io("stat", source, err))?
        .len();
    let size = entry_size(&entry.name, length)?;
    let mut writer = header.write(output, size);
    // Reads exactly `size` bytes, so a file that grows meanwhile cannot overflow the entry.
    let copied = io::copy(&mut io::Read::take(&mut file, length), &mut writer)
        .map_err(|err| EnvironmentError::io("read", source, err))?;
    if copied != length {
        return Err(EnvironmentError::ArchiveEntryInvalid {
            name: entry.name.clone(),
            reason: format!(
                "{} shrank from {length} to {copied} bytes while being archived",
                source.display()
            ),
        });
    }
    writer
        .finish()
        .map_err(|err| EnvironmentError::ArchiveWrite {
            name: entry.name.clone(),
            source: err,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// One entry read back from an archive: name, mode, rdev, data.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct ReadBack {
        pub name: String,
        pub mode: u32,
        pub rdev: (u32, u32),
        pub uid_gid: (u32, u32),
        pub data: Vec<u8>,
    }

    /// Reads every entry (before the trailer) with the `cpio` crate's reader.
    pub(crate) fn read_archive(mut bytes: &[u8]) -> Vec<ReadBack> {
        let mut entries = Vec::new();
        loop {
            let mut reader = cpio::NewcReader::new(bytes).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let entry = reader.entry().clone();
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            entries.push(ReadBack {
                name: entry.name().to_owned(),
                mode: entry.mode(),
                rdev: (entry.rdev_major(), entry.rdev_minor()),
                uid_gid: (entry.uid(), entry.gid()),
                data,
            });
            bytes = reader.finish().unwrap();
        }
        entries
    }

    #[test]
    fn entries_read_back_with_names_modes_data_and_device_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let host_file = dir.path().join("agent");
        std::fs::write(&host_file, b"#!agent\n").unwrap();
        let entries = [
            ArchiveEntry::directory("dev", 0o755),
            ArchiveEntry::char_device("dev/console", 0o600, 5, 1),
            ArchiveEntry::directory("sbin", 0o755),
            ArchiveEntry::file_from_path("sbin/agent", 0o755, &host_file),
            ArchiveEntry::file_from_bytes("etc-order", 0o644, b"abc".to_vec()),
            ArchiveEntry::symlink("init", "sbin/agent"),
        ];
        let archive = write_newc_archive(&entries, Vec::new()).unwrap();
        let read = read_archive(&archive);
        type Summary<'a> = (&'a str, u32, (u32, u32), &'a [u8]);
        let summary: Vec<Summary> = read
            .iter()
            .map(|e| (e.name.as_str(), e.mode, e.rdev, e.data.as_slice()))
            .collect();
        assert_eq!(
            summary,
            [
                ("dev", 0o040755, (0, 0), &b""[..]),
                ("dev/console", 0o020600, (5, 1), &b""[..]),
                ("sbin", 0o040755, (0, 0), &b""[..]),
                ("sbin/agent", 0o100755, (0, 0), &b"#!agent\n"[..]),
                ("etc-order", 0o100644, (0, 0), &b"abc"[..]),
                ("init", 0o120777, (0, 0), &b"sbin/agent"[..]),
            ]
        );
        assert!(read.iter().all(|e| e.uid_gid == (0, 0)));
        assert_eq!(archive.len() % 4, 0, "newc pads to 4 bytes");
    }

    #[test]
    fn output_is_deterministic_and_written_to_files() {
        let entries = [
            ArchiveEntry::directory("lib", 0o755),
            ArchiveEntry::file_from_bytes("lib/x", 0o644, vec![7; 5]),
        ];
        let first = write_newc_archive(&entries, Vec::new()).unwrap();
        assert_eq!(first, write_newc_archive(&entries, Vec::new()).unwrap());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio");
        write_newc_archive_file(&entries, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }

    #[test]
    fn an_empty_entry_list_is_just_a_trailer() {
        let archive = write_newc_archive(&[], Vec::new()).unwrap();
        assert!(read_archive(&archive).is_empty());
    }

    #[test]
    fn bad_names_and_missing_host_files_are_errors() {
        for name in ["", "/abs", "a//b", "a/../b", "./a", "a/"] {
            let err = write_newc_archive(&[ArchiveEntry::directory(name, 0o755)], Vec::new())
                .unwrap_err();
            assert!(
                matches!(err, EnvironmentError::ArchiveEntryInvalid { .. }),
                "{name}: {err}"
            );
        }
        let err = write_newc_archive(&[ArchiveEntry::directory("d", 0o40755)], Vec::new());
        assert!(
            err.is_err(),
            "file type bits belong to the content, not the permissions"
        );

        let missing = ArchiveEntry::file_from_path("x", 0o644, "/nonexistent/pyro-test");
        let err = write_newc_archive(&[missing], Vec::new()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pyro-test"), "{err}");
    }
}

//! Small filesystem helpers: entry kinds, timestamps, modes, renames that
//! never replace, and opening files without following symlinks.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::RenameFlags;
use nix::sys::stat::UtimensatFlags;
use nix::sys::time::TimeSpec;
use pyro_guest_protocol::EntryKind;

/// A point in time as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Whole seconds (may be negative).
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: i64,
}

impl Stamp {
    /// A whole-second stamp.
    pub fn from_secs(secs: i64) -> Self {
        Self { secs, nanos: 0 }
    }

    fn timespec(self) -> TimeSpec {
        TimeSpec::new(self.secs, self.nanos)
    }
}

/// The kind of entry `meta` describes (not followed).
pub fn kind_of(meta: &Metadata) -> EntryKind {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

/// Permission bits of `meta`.
pub fn mode_of(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// Modification time of `meta`.
pub fn mtime_of(meta: &Metadata) -> Stamp {
    Stamp {
        secs: meta.mtime(),
        nanos: meta.mtime_nsec(),
    }
}

/// Access time of `meta`.
pub fn atime_of(meta: &Metadata) -> Stamp {
    Stamp {
        secs: meta.atime(),
        nanos: meta.atime_nsec(),
    }
}

/// Sets the modification time of `path` (a symlink itself, not its
/// target), leaving the access time alone unless `atime` is given.
pub fn set_times(path: &Path, atime: Option<Stamp>, mtime: Stamp) -> io::Result<()> {
    let atime = atime.map_or(TimeSpec::UTIME_OMIT, Stamp::timespec);
    nix::sys::stat::utimensat(
        None,
        path,
        &atime,
        &mtime.timespec(),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

/// Sets the permission bits of a directory or file at `path` (never a
/// symlink: the caller checked it is not one).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Renames `from` to `to`, failing when `to` exists instead of replacing it.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match nix::fcntl::renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        Err(nix::errno::Errno::EINVAL) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            std::fs::rename(from, to)
        }
        Err(err) => Err(err.into()),
    }
}

/// Opens an existing file for reading without following a symlink and
/// without blocking on a fifo swapped in after a check.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Creates a new file for writing (never an existing one, never through a
/// symlink), readable by its owner only until its mode is set.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

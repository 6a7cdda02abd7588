//! What reading a stopped workspace's disks can fail with.
//!
//! Messages are lowercase, name the guest path (or the host image, for
//! problems with an image itself) and say what to do; they never repeat
//! their `#[source]` (the caller prints the chain).

use std::io;
use std::path::PathBuf;

/// Everything the [`disk`](super) module can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// `debugfs` is not installed.
    #[error(
        "debugfs was not found on this host (looked in $PATH, /usr/sbin and /sbin); install e2fsprogs (`apt-get install e2fsprogs`)"
    )]
    DebugfsMissing,
    /// `debugfs` could not be started or talked to.
    #[error("running debugfs on {} failed", image.display())]
    Spawn {
        /// The image it was started on.
        image: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A disk image file does not exist.
    #[error(
        "the {role} {} does not exist; the workspace or its environment may have been deleted, check `pyro workspace status` and `pyro env list`",
        image.display()
    )]
    ImageMissing {
        /// `workspace disk` or `environment image`.
        role: &'static str,
        /// The host path.
        image: PathBuf,
    },
    /// debugfs could not open an image as ext4.
    #[error(
        "debugfs cannot open the {role} {}: {message}; check it is an ext4 image with `e2fsck -fn`",
        image.display()
    )]
    Open {
        /// `workspace disk` or `environment image`.
        role: &'static str,
        /// The host path.
        image: PathBuf,
        /// What debugfs said.
        message: String,
    },
    /// debugfs reported an error, or printed something this module cannot
    /// parse.
    #[error(
        "debugfs failed on the {role} {}: {message}; the image may be damaged, check it with `e2fsck -fn`",
        image.display()
    )]
    Debugfs {
        /// `workspace disk` or `environment image`.
        role: &'static str,
        /// The host path.
        image: PathBuf,
        /// What went wrong, with debugfs's own words where it gave any.
        message: String,
    },
    /// The requested path is not an acceptable absolute guest path.
    #[error("the path {path:?} {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why, ending with what to pass instead.
        reason: &'static str,
    },
    /// Nothing exists at the path in the merged view.
    #[error(
        "{missing} does not exist on the stopped workspace's disks; list its parent directory to see what is there"
    )]
    NotFound {
        /// The guest path asked for.
        path: String,
        /// Its first component that does not exist (the whole path, or a
        /// leading part of it).
        missing: String,
    },
    /// A component in the middle of the path is not a directory.
    #[error(
        "{prefix} is a {kind}, not a directory, so {path} cannot exist; list {prefix} to see it"
    )]
    NotADirectory {
        /// The guest path asked for.
        path: String,
        /// The leading part of it that is not a directory.
        prefix: String,
        /// What `prefix` is (`file`, `other`).
        kind: &'static str,
    },
    /// A component in the middle of the path is a symlink; those are not
    /// followed.
    #[error(
        "{prefix} is a symbolic link to {target:?}, and symbolic links inside a path are not followed; ask for {suggestion} instead"
    )]
    SymlinkInPath {
        /// The guest path asked for.
        path: String,
        /// The leading part of it that is a symlink.
        prefix: String,
        /// The link's target, as stored.
        target: String,
        /// The path with the link's target put in (resolved textually).
        suggestion: String,
    },
    /// The file to read is a symlink, which is never followed.
    #[error(
        "{path} is a symbolic link to {target:?} and is not followed; read {suggestion} instead"
    )]
    IsSymlink {
        /// The guest path.
        path: String,
        /// The link's target, as stored.
        target: String,
        /// The target as an absolute path (resolved textually).
        suggestion: String,
    },
    /// The path to read is not a regular file.
    #[error("{path} is a {kind}, not a regular file; only regular files can be read, list directories instead")]
    NotAFile {
        /// The guest path.
        path: String,
        /// What it is (`directory`, `other`).
        kind: &'static str,
    },
}

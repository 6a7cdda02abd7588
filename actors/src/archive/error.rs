//! What seeding, archiving and extracting can fail with.
//!
//! Messages are lowercase, name the path or archive entry, and say what to
//! do; they never repeat their `#[source]` (the caller prints the chain).

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::ArtifactType;

/// Everything the [`archive`](super) module can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A host file operation failed.
    #[error("{action} {} failed", path.display())]
    Io {
        /// What was being done, such as `reading`.
        action: &'static str,
        /// The host path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The seed path does not exist.
    #[error(
        "seed path {} does not exist; pass an existing directory or .tar/.tar.gz/.tgz file",
        path.display()
    )]
    SeedNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The seed path is neither a directory nor a tar archive.
    #[error(
        "{} is neither a directory nor a tar archive; pass a directory or a .tar, .tar.gz or .tgz file",
        path.display()
    )]
    UnsupportedSeed {
        /// The path given.
        path: PathBuf,
    },
    /// The archive is compressed with something other than gzip.
    #[error("the archive is compressed with {format}, which is not supported; repack it as .tar or .tar.gz")]
    UnsupportedCompression {
        /// `xz`, `bzip2` or `zstd`.
        format: &'static str,
    },
    /// The input does not start with a tar header.
    #[error("the input is not a tar archive; pass a .tar, .tar.gz or .tgz file")]
    NotATar,
    /// The tar stream is corrupt, truncated or could not be read.
    #[error("reading the tar archive failed; it may be corrupt or truncated")]
    ReadTar {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An archive entry breaks one of the safety rules.
    #[error("refusing archive entry `{member}`: {problem}")]
    UnsafeEntry {
        /// The entry's name as it appears in the archive (or, for a
        /// directory seed, its path relative to the directory).
        member: String,
        /// The rule it breaks.
        problem: EntryProblem,
    },
    /// A seed directory holds a device node, fifo or socket.
    #[error(
        "{} is a {kind}; a seed directory may hold only files, directories and symlinks: remove it and retry",
        path.display()
    )]
    SpecialFile {
        /// The host path.
        path: PathBuf,
        /// `fifo`, `socket`, `character device` or `block device`.
        kind: &'static str,
    },
    /// A name in a seed directory is not UTF-8.
    #[error("the name of {} is not valid UTF-8; rename it and retry", path.display())]
    NonUtf8Path {
        /// The host path.
        path: PathBuf,
    },
    /// Writing an entry of the canonical tar failed (or its source file
    /// changed while it was being archived).
    #[error("writing archive entry `{member}` failed")]
    WriteEntry {
        /// The entry.
        member: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading a file's bytes back from the archive failed.
    #[error("reading archive entry `{member}` failed")]
    ReadEntry {
        /// The entry.
        member: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The export output path already exists.
    #[error("output path already exists: {}; choose a path that does not exist", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The export output path has no final name (`/`, `..`).
    #[error("output path {} must name a new file or directory", path.display())]
    InvalidOutput {
        /// The output path.
        path: PathBuf,
    },
    /// The exported archive does not have the shape its artifact type needs.
    #[error("the exported archive should hold a single {expected} but holds {found}")]
    UnexpectedExport {
        /// What the caller asked for.
        expected: ArtifactType,
        /// What the archive holds, such as `3 entries`.
        found: String,
    },
    /// Writing an entry below the export output path failed.
    #[error("extracting archive entry `{member}` into {} failed", output.display())]
    Extract {
        /// The entry.
        member: String,
        /// The export output path.
        output: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(member: impl Into<String>, problem: EntryProblem) -> Self {
        Self::UnsafeEntry {
            member: member.into(),
            problem,
        }
    }
}

/// The safety rule an archive entry breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// Its name starts with `/`.
    AbsolutePath,
    /// Its name has a `..` component.
    ParentComponent,
    /// Its name is empty.
    EmptyName,
    /// Its name or link target is not UTF-8.
    NonUtf8Name,
    /// It names the archive root (`.`) but is not a directory.
    RootNotDirectory,
    /// It is a device node or fifo.
    Special {
        /// `fifo`, `character device` or `block device`.
        kind: &'static str,
    },
    /// It has a tar type pyro does not handle.
    UnsupportedType {
        /// The tar type flag.
        type_flag: u8,
    },
    /// It is a hard link whose target is not an earlier regular file entry.
    HardLinkTarget {
        /// The link target as written in the archive.
        target: String,
    },
    /// It is a symlink with an empty target.
    EmptyLinkTarget,
    /// It is a symlink with an absolute target.
    AbsoluteLinkTarget {
        /// The target.
        target: String,
    },
    /// It is a symlink whose target resolves outside the archive root.
    EscapingLinkTarget {
        /// The target.
        target: String,
    },
    /// Its path passes through a symlink entry.
    ThroughSymlink {
        /// The symlink entry.
        symlink: String,
    },
    /// Its path passes through a regular file entry.
    ThroughFile {
        /// The file entry.
        file: String,
    },
    /// Another entry has the same path.
    Duplicate,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AbsolutePath => f.write_str("its path is absolute; archive paths must be relative"),
            Self::ParentComponent => {
                f.write_str("its path contains `..`; archive paths must stay inside the archive")
            }
            Self::EmptyName => f.write_str("its name is empty"),
            Self::NonUtf8Name => f.write_str("its name or link target is not valid UTF-8"),
            Self::RootNotDirectory => {
                f.write_str("it names the archive root but is not a directory")
            }
            Self::Special { kind } => {
                write!(f, "it is a {kind}; archives may hold only files, directories and symlinks")
            }
            Self::UnsupportedType { type_flag } => write!(
                f,
                "its tar type `{}` is not supported; archives may hold only files, directories and symlinks",
                type_flag.escape_ascii()
            ),
            Self::HardLinkTarget { target } => write!(
                f,
                "it is a hard link to `{target}`, which is not an earlier regular file in the archive"
            ),
            Self::EmptyLinkTarget => f.write_str("it is a symlink with an empty target"),
            Self::AbsoluteLinkTarget { target } => write!(
                f,
                "it is a symlink to the absolute path `{target}`; symlink targets must be relative"
            ),
            Self::EscapingLinkTarget { target } => write!(
                f,
                "it is a symlink to `{target}`, which resolves outside the archive root"
            ),
            Self::ThroughSymlink { symlink } => {
                write!(f, "its path passes through the symlink `{symlink}`")
            }
            Self::ThroughFile { file } => {
                write!(f, "its path passes through `{file}`, which is a regular file")
            }
            Self::Duplicate => f.write_str("another entry has the same path"),
        }
    }
}

//! The one error type of the environment module.
//!
//! Messages are lowercase, one line, without a trailing period, and never repeat
//! the text of their `#[source]`: callers print the whole chain.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while looking up, inspecting, building or
/// pruning environments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvironmentError {
    /// The name is not in the catalog.
    #[error("unknown environment '{name}'; expected one of: {known}")]
    UnknownEnvironment {
        /// The name that was asked for.
        name: String,
        /// The catalog's names, comma separated.
        known: String,
    },

    /// A file system operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// `environment.json` is not valid JSON for a manifest.
    #[error("environment manifest {} is not valid", path.display())]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// `environment.json` parses but its content is not acceptable.
    #[error("environment manifest {} is not valid: {reason}", path.display())]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An installed artifact does not have the size recorded in the manifest.
    #[error("artifact {} has {actual} bytes but the manifest records {expected}", path.display())]
    ArtifactSizeMismatch {
        /// The artifact file.
        path: PathBuf,
        /// Size from the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },

    /// An installed artifact does not have the sha256 recorded in the manifest.
    #[error("artifact {} has sha256 {actual} but the manifest records {expected}", path.display())]
    ArtifactDigestMismatch {
        /// The artifact file.
        path: PathBuf,
        /// Digest from the manifest.
        expected: String,
        /// Digest of the file on disk.
        actual: String,
    },

    /// The per-environment build lock could not be taken.
    #[error("failed to lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Host tools needed for a local build are not installed.
    #[error(
        "missing tools needed to build environments: {}; install them with: apt-get install -y {}",
        tools.join(", "),
        packages.join(" ")
    )]
    MissingTools {
        /// The missing programs.
        tools: Vec<String>,
        /// The Debian packages that provide them.
        packages: Vec<String>,
    },

    /// A non-root build has no way to produce root-owned files.
    #[error("cannot build environment '{name}' as a non-root user: {reason}")]
    UnprivilegedBuildUnavailable {
        /// The environment being built.
        name: String,
        /// What is missing and how to fix it.
        reason: String,
    },

    /// A setting (environment variable) has an unusable value.
    #[error("invalid {name} '{value}': {reason}")]
    InvalidSetting {
        /// The setting, e.g. `PYRO_DEBIAN_MIRROR`.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A host program could not be started.
    #[error("failed to run {command}")]
    CommandSpawn {
        /// The program.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A host program ran and failed.
    #[error("{command} failed ({status}): {stderr_tail}; {hint}")]
    CommandFailed {
        /// The program and what it was doing.
        command: String,
        /// Its exit status, e.g. "exit status 1".
        status: String,
        /// The last lines of its stderr, joined with " | ".
        stderr_tail: String,
        /// What the user can do about it.
        hint: String,
    },

    /// The kernel package or image is not what the guest path needs.
    #[error("kernel {subject} is not usable: {reason}")]
    KernelUnusable {
        /// The package, file or version at fault.
        subject: String,
        /// Why.
        reason: String,
    },

    /// `modules.dep` could not be parsed.
    #[error("{}:{line_number}: malformed modules.dep line", path.display())]
    ModulesDepSyntax {
        /// The modules.dep file.
        path: PathBuf,
        /// 1-based line number.
        line_number: usize,
    },

    /// A module the guest needs is neither a loadable module nor built in.
    #[error("kernel {kernel_version} has no module '{module}' (needed by '{needed_by}')")]
    ModuleMissing {
        /// The module that is missing.
        module: String,
        /// The module that needs it, or "guest" for the required set itself.
        needed_by: String,
        /// The kernel version whose tree was searched.
        kernel_version: String,
    },

    /// `modules.dep` describes a dependency cycle.
    #[error("kernel module dependency cycle through '{module}'")]
    ModuleCycle {
        /// A module on the cycle.
        module: String,
    },

    /// An entry can not be written to a cpio newc archive.
    #[error("cannot archive '{name}': {reason}")]
    ArchiveEntryInvalid {
        /// The entry's name in the archive.
        name: String,
        /// Why.
        reason: String,
    },

    /// Writing a cpio archive failed.
    #[error("failed to write archive entry '{name}'")]
    ArchiveWrite {
        /// The entry being written.
        name: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The result of a build failed its final check.
    #[error("built environment '{name}' in {} is not complete: {reason}", dir.display())]
    BuildIncomplete {
        /// The environment.
        name: String,
        /// Its install directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl EnvironmentError {
    /// Shorthand for [`EnvironmentError::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

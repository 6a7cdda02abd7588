//! Environment payloads: list, inspect, pull progress, prune.

use serde::{Deserialize, Serialize};

use super::ErrorBody;

/// One environment, installed or not (`pyro env inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentInfo {
    /// Catalog name, such as `debian:12`.
    pub name: String,
    /// Recipe version, such as `1.0.0`.
    pub version: String,
    /// One line for people.
    pub description: String,
    /// Packages users can count on.
    pub default_packages: Vec<String>,
    /// `debian`.
    pub distribution: String,
    /// `12`.
    pub distribution_version: String,
    /// `linux-x86_64`.
    pub platform: String,
    /// Whether every artifact is present.
    pub installed: bool,
    /// The environment cache directory.
    pub cache_dir: String,
    /// Where this environment is (or would be) installed.
    pub install_dir: String,
    /// The manifest path, when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_manifest: Option<String>,
    /// The kernel image, when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_image: Option<String>,
    /// The root filesystem image, when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_image: Option<String>,
    /// The guest kernel version, when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// Where it came from (`local-build`), when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was built (RFC 3339), when installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_at: Option<String>,
}

/// `pyro env list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentList {
    /// The catalog's version (the pyro version).
    pub catalog_version: String,
    /// Every catalog entry.
    pub environments: Vec<EnvironmentInfo>,
}

/// A step of an environment install, streamed while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// `install`, `rootfs`, `kernel`, `modules`, `image`, `finalize`, `ready`.
    pub phase: String,
    /// The environment being installed.
    pub environment: String,
    /// A short note, such as a package count or a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One line of the `pull` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    /// Progress.
    Progress(PullProgress),
    /// The environment is installed; the last line.
    Result(Box<EnvironmentInfo>),
    /// The install failed; the last line.
    Error(ErrorBody),
}

/// `pyro env prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneResult {
    /// Removed directory names, sorted.
    pub deleted_environment_dirs: Vec<String>,
    /// How many.
    pub count: usize,
}

/// Request body naming an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRef {
    /// Catalog name.
    pub name: String,
}

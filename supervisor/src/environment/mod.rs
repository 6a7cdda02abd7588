//! Environments: the catalog, the on-disk cache, and local builds from Debian
//! packages (guest root file system, kernel, and kernel modules).
//!
//! - `catalog`: the environments pyro knows ([`catalog()`], [`lookup`])
//! - `cache`: install directories, status, prune, [`EnvironmentCache::ensure_installed`]
//! - `manifest`: `environment.json` ([`EnvironmentManifest`])
//! - `build`: mmdebstrap, the kernel package, module order, the ext4 image
//! - [`cpio_archive`]: a cpio newc writer shared with the runtime's initramfs
//! - `lock`: per-environment build locks
//! - `mounts`: removing build directories that may hold leftover mounts
//! - `error`: [`EnvironmentError`]
//!
//! A build is synchronous and takes tens of seconds to minutes: callers run
//! [`EnvironmentCache::ensure_installed`] on a blocking thread.

mod build;
mod cache;
mod catalog;
pub mod cpio_archive;
mod error;
mod lock;
mod manifest;
mod mounts;

pub use build::modules::REQUIRED_GUEST_MODULES;
pub use build::rootfs::{DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR, MIRROR_VAR, SECURITY_MIRROR_VAR};
pub use build::{BuildPhase, BuildProgress};
pub use cache::{EnvironmentCache, EnvironmentStatus, InstalledEnvironment};
pub use catalog::{catalog, lookup, CatalogEntry, DEBIAN_SUITE, PLATFORM};
pub use error::EnvironmentError;
pub use manifest::{
    ArtifactRecord, ArtifactRecords, EnvironmentManifest, LOCAL_BUILD_SOURCE, MANIFEST_FILE,
    MODULES_CPIO_FILE, ROOTFS_FILE, VMLINUX_FILE, VMLINUZ_FILE,
};

/// Checks that this host can build `entry` locally (tools installed, a
/// usable mmdebstrap mode for this user, valid mirror settings) without
/// building anything; `pyro doctor` reports the error as is.
pub fn check_build_prerequisites(entry: &'static CatalogEntry) -> Result<(), EnvironmentError> {
    build::BuildPlan::prepare(entry).map(|_| ())
}

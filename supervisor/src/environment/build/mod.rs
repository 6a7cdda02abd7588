//! Building an environment from Debian packages into a scratch directory.
//!
//! [`BuildPlan::prepare`] checks the host up front (tools, privileges,
//! mirror settings); [`BuildPlan::run`] then makes the artifacts in the given
//! directory, phase by phase, and returns the manifest it wrote. Locking,
//! the `.partial-*` directory and the final rename are the cache's job.
//!
//! - [`rootfs`]: mmdebstrap and guest customization
//! - [`kernel`]: the cloud kernel package and the PVH vmlinux
//! - [`modules`]: depmod, the module load order and `modules.cpio`
//! - [`image`]: mkfs.ext4 / resize2fs / e2fsck
//! - [`tools`]: finding and running host programs

pub(crate) mod image;
pub(crate) mod kernel;
pub(crate) mod modules;
pub(crate) mod rootfs;
pub(crate) mod tools;

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use self::rootfs::{BuildMode, Mirrors, RootfsTree};
use self::tools::{ToolPaths, ALWAYS_REQUIRED, UNPRIVILEGED_REQUIRED};
use super::catalog::{CatalogEntry, DEBIAN_SUITE, PLATFORM};
use super::error::EnvironmentError;
use super::manifest::{
    ArtifactRecord, ArtifactRecords, EnvironmentManifest, LOCAL_BUILD_SOURCE, MANIFEST_FILE,
    MODULES_CPIO_FILE, ROOTFS_FILE, VMLINUX_FILE, VMLINUZ_FILE,
};

/// The stage a build is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildPhase {
    /// Another process is building the same environment; waiting for its lock.
    Waiting,
    /// Making the root file system tree with mmdebstrap.
    Rootfs,
    /// Fetching the kernel package and extracting vmlinux.
    Kernel,
    /// Computing the module order and writing modules.cpio.
    Modules,
    /// Making the ext4 image.
    Image,
    /// Hashing, writing the manifest and moving the result into place.
    Finalize,
}

impl BuildPhase {
    /// The lowercase name used in progress lines (`phase=rootfs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Rootfs => "rootfs",
            Self::Kernel => "kernel",
            Self::Modules => "modules",
            Self::Image => "image",
            Self::Finalize => "finalize",
        }
    }
}

impl fmt::Display for BuildPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One progress report from a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildProgress {
    /// The phase the build is in.
    pub phase: BuildPhase,
    /// A short human-readable detail, e.g. "running mmdebstrap".
    pub detail: String,
}

/// A build whose prerequisites have been checked.
#[derive(Debug, Clone)]
pub(crate) struct BuildPlan {
    entry: &'static CatalogEntry,
    tools: ToolPaths,
    mode: BuildMode,
    mirrors: Mirrors,
}

impl BuildPlan {
    /// Checks tools, privileges and settings; fails before anything is written.
    pub(crate) fn prepare(entry: &'static CatalogEntry) -> Result<Self, EnvironmentError> {
        let mirrors = Mirrors::from_env()?;
        let mode = BuildMode::select(entry)?;
        let mut required: Vec<tools::Tool> = ALWAYS_REQUIRED.to_vec();
        if mode != BuildMode::Root {
            required.extend(UNPRIVILEGED_REQUIRED);
        }
        if mode == BuildMode::Unshare {
            required.push(tools::NEWUIDMAP);
        }
        let tools = ToolPaths::resolve(&required)?;
        Ok(Self {
            entry,
            tools,
            mode,
            mirrors,
        })
    }

    /// Builds every artifact and `environment.json` inside `dir` (which must
    /// exist and be empty); scratch files are removed again.
    pub(crate) fn run(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(BuildProgress),
    ) -> Result<EnvironmentManifest, EnvironmentError> {
        let started = Instant::now();
        let name = self.entry.name;
        let mut report = |phase: BuildPhase, detail: String| {
            tracing::info!(environment = name, %phase, %detail, "build progress");
            progress(BuildProgress { phase, detail });
        };

        report(
            BuildPhase::Rootfs,
            format!(
                "mmdebstrap {} minbase, mode {}, include {}",
                DEBIAN_SUITE,
                self.mode.as_mmdebstrap_mode(),
                display_list(self.entry.included_packages)
            ),
        );
        let tree = rootfs::build_rootfs(&self.tools, self.entry, &self.mirrors, self.mode, dir)?;
        tracing::info!(
            elapsed_s = started.elapsed().as_secs_f32(),
            "rootfs tree ready"
        );

        let kernel_scratch = dir.join("kernel-scratch");
        let kernel = kernel::fetch_kernel(&self.tools, &self.mirrors, &kernel_scratch, |detail| {
            report(BuildPhase::Kernel, detail);
        })?;
        let vmlinuz = dir.join(VMLINUZ_FILE);
        fs::copy(kernel.vmlinuz(), &vmlinuz)
            .map_err(|source| EnvironmentError::io("copy kernel to", &vmlinuz, source))?;
        report(
            BuildPhase::Kernel,
            format!("extracting vmlinux from {}", kernel.kernel_version),
        );
        kernel::extract_vmlinux(&self.tools, &vmlinuz, &dir.join(VMLINUX_FILE))?;

        report(
            BuildPhase::Modules,
            format!("depmod {}", kernel.kernel_version),
        );
        let ordered = modules::resolve_guest_modules(&self.tools, &kernel)?;
        let module_names = ordered.names();
        report(
            BuildPhase::Modules,
            format!("load order: {}", module_names.join(" ")),
        );
        modules::write_modules_archive(&ordered, &dir.join(MODULES_CPIO_FILE))?;
        remove_scratch(&kernel_scratch)?;

        let image_path = dir.join(ROOTFS_FILE);
        image::make_image(&self.tools, &tree, &image_path, |detail| {
            report(BuildPhase::Image, detail);
        })?;
        match &tree {
            RootfsTree::Directory(path) | RootfsTree::Tarball(path) => remove_scratch(path)?,
        }

        report(BuildPhase::Finalize, "hashing artifacts".to_owned());
        let artifacts = ArtifactRecords {
            vmlinux: record_artifact(&dir.join(VMLINUX_FILE))?,
            vmlinuz: record_artifact(&vmlinuz)?,
            rootfs: record_artifact(&image_path)?,
            modules_cpio: record_artifact(&dir.join(MODULES_CPIO_FILE))?,
        };
        let manifest = EnvironmentManifest {
            name: self.entry.name.to_owned(),
            version: self.entry.version.to_owned(),
            platform: PLATFORM.to_owned(),
            distribution: self.entry.distribution.to_owned(),
            distribution_version: self.entry.distribution_version.to_owned(),
            description: self.entry.description.to_owned(),
            default_packages: to_strings(self.entry.default_packages),
            included_packages: to_strings(self.entry.included_packages),
            kernel_package: kernel.package.clone(),
            kernel_version: kernel.kernel_version.clone(),
            modules: module_names,
            artifacts,
            source: LOCAL_BUILD_SOURCE.to_owned(),
            mirror: self.mirrors.main.clone(),
            built_at: now_rfc3339(),
            builder_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        manifest.write(&dir.join(MANIFEST_FILE))?;
        tracing::info!(
            environment = name,
            kernel_package = %kernel.package,
            kernel_package_version = %kernel.package_version,
            elapsed_s = started.elapsed().as_secs_f32(),
            "build complete"
        );
        Ok(manifest)
    }
}

fn display_list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(",")
    }
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn remove_scratch(path: &Path) -> Result<(), EnvironmentError> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(EnvironmentError::io("remove", path, err))
        }
        _ => Ok(()),
    }
}

/// Size and sha256 of a file.
pub(crate) fn record_artifact(path: &Path) -> Result<ArtifactRecord, EnvironmentError> {
    let mut file = File::open(path).map_err(|source| EnvironmentError::io("open", path, source))?;
    let mut hasher = Sha256::new();
    let size_bytes = io::copy(&mut file, &mut hasher)
        .map_err(|source| EnvironmentError::io("read", path, source))?;
    Ok(ArtifactRecord {
        sha256: hex::encode(hasher.finalize()),
        size_bytes,
    })
}

/// The current time as RFC 3339 UTC, to the second.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_print_lowercase() {
        let names: Vec<String> = [
            BuildPhase::Waiting,
            BuildPhase::Rootfs,
            BuildPhase::Kernel,
            BuildPhase::Modules,
            BuildPhase::Image,
            BuildPhase::Finalize,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            ["waiting", "rootfs", "kernel", "modules", "image", "finalize"]
        );
    }

    #[test]
    fn artifacts_are_recorded_with_size_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        fs::write(&path, b"abc").unwrap();
        let record = record_artifact(&path).unwrap();
        assert_eq!(record.size_bytes, 3);
        assert_eq!(
            record.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        let stamp = now_rfc3339();
        assert_eq!(stamp.len(), "2026-01-01T00:00:00Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'), "{stamp}");
    }
}

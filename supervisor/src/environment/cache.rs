//! The environment cache on disk: install directories, status, prune, and
//! `ensure_installed` (lock, re-check, build, rename into place).
//!
//! Layout under the pyro cache dir:
//!
//! ```text
//! environments/linux-x86_64/
//!     debian_12-1.0.0/                 installed: artifacts + environment.json
//!     .partial-debian_12-1.0.0-XXXXXXXX/   a build in progress (or an interrupted one)
//!     .lock-debian_12-1.0.0            flock(2) held for a whole build
//! ```

use std::error::Error;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::build::{record_artifact, BuildPhase, BuildPlan, BuildProgress};
use super::catalog::{catalog, lookup_by_dir_name, CatalogEntry, PLATFORM};
use super::error::EnvironmentError;
use super::lock::BuildLock;
use super::manifest::{
    EnvironmentManifest, MANIFEST_FILE, MODULES_CPIO_FILE, ROOTFS_FILE, VMLINUX_FILE, VMLINUZ_FILE,
};
use super::mounts::remove_tree;

/// Prefix of in-progress build directories.
const PARTIAL_PREFIX: &str = ".partial-";

/// An environment that passed the install check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledEnvironment {
    /// The install directory.
    pub dir: PathBuf,
    /// Its parsed `environment.json`.
    pub manifest: EnvironmentManifest,
    /// Uncompressed ELF kernel for PVH boot.
    pub vmlinux: PathBuf,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// The read-only ext4 root file system.
    pub rootfs: PathBuf,
    /// The modules initramfs archive.
    pub modules_cpio: PathBuf,
    /// `environment.json`.
    pub manifest_path: PathBuf,
}

impl InstalledEnvironment {
    fn new(dir: PathBuf, manifest: EnvironmentManifest) -> Self {
        Self {
            vmlinux: dir.join(VMLINUX_FILE),
            vmlinuz: dir.join(VMLINUZ_FILE),
            rootfs: dir.join(ROOTFS_FILE),
            modules_cpio: dir.join(MODULES_CPIO_FILE),
            manifest_path: dir.join(MANIFEST_FILE),
            manifest,
            dir,
        }
    }

    /// Hashes every artifact and compares it with the manifest (reads
    /// hundreds of MB; the install check only compares sizes).
    pub fn verify(&self) -> Result<(), EnvironmentError> {
        for (file_name, expected) in self.manifest.artifacts.iter() {
            let path = self.dir.join(file_name);
            let actual = record_artifact(&path)?;
            if actual.size_bytes != expected.size_bytes {
                return Err(EnvironmentError::ArtifactSizeMismatch {
                    path,
                    expected: expected.size_bytes,
                    actual: actual.size_bytes,
                });
            }
            if actual.sha256 != expected.sha256 {
                return Err(EnvironmentError::ArtifactDigestMismatch {
                    path,
                    expected: expected.sha256.clone(),
                    actual: actual.sha256,
                });
            }
        }
        Ok(())
    }
}

/// The install state of one catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentStatus {
    /// The catalog entry.
    pub entry: &'static CatalogEntry,
    /// Where it is (or would be) installed.
    pub install_dir: PathBuf,
    /// The installed environment, if the install check passes.
    pub installed: Option<InstalledEnvironment>,
    /// Why an existing install directory does not count as installed.
    pub problem: Option<String>,
}

/// Why an environment is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotInstalled {
    /// There is no install directory.
    Missing,
    /// There is one, but it fails the check for this reason.
    Incomplete(String),
}

/// The environments under one pyro cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentCache {
    cache_dir: PathBuf,
}

impl EnvironmentCache {
    /// A cache rooted at the pyro cache dir; environments live in
    /// `<cache_dir>/environments/linux-x86_64/`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    /// `<cache_dir>/environments/linux-x86_64`.
    pub fn platform_dir(&self) -> PathBuf {
        self.cache_dir.join("environments").join(PLATFORM)
    }

    /// Where `entry` is installed, e.g. `.../linux-x86_64/debian_12-1.0.0`.
    pub fn install_dir(&self, entry: &CatalogEntry) -> PathBuf {
        self.platform_dir().join(entry.dir_name())
    }

    /// The installed environment, when its manifest parses, names this entry
    /// and version, and every artifact exists with the recorded size.
    pub fn installed(&self, entry: &CatalogEntry) -> Option<InstalledEnvironment> {
        match self.check_install(entry) {
            Ok(installed) => Some(installed),
            Err(NotInstalled::Missing) => None,
            Err(NotInstalled::Incomplete(reason)) => {
                tracing::debug!(environment = entry.name, reason, "install is incomplete");
                None
            }
        }
    }

    /// The state of every catalog entry, in catalog order.
    pub fn status(&self) -> Vec<EnvironmentStatus> {
        catalog()
            .iter()
            .map(|entry| {
                let (installed, problem) = match self.check_install(entry) {
                    Ok(installed) => (Some(installed), None),
                    Err(NotInstalled::Missing) => (None, None),
                    Err(NotInstalled::Incomplete(reason)) => (None, Some(reason)),
                };
                EnvironmentStatus {
                    entry,
                    install_dir: self.install_dir(entry),
                    installed,
                    problem,
                }
            })
            .collect()
    }

    /// Removes `.partial-*` directories whose build is not running, directories
    /// of unknown names or versions, and incomplete installs (unless a build
    /// of them is running). Returns the removed directory names, sorted.
    pub fn prune(&self) -> Result<Vec<String>, EnvironmentError> {
        let platform_dir = self.platform_dir();
        let entries = match fs::read_dir(&platform_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(EnvironmentError::io("list", &platform_dir, source)),
        };
        let mut removed = Vec::new();
        for dir_entry in entries {
            let dir_entry =
                dir_entry.map_err(|source| EnvironmentError::io("list", &platform_dir, source))?;
            let is_dir = dir_entry.file_type().is_ok_and(|kind| kind.is_dir());
            if !is_dir {
                continue; // lock files and anything that is not ours to judge
            }
            let name = dir_entry.file_name().to_string_lossy().into_owned();
            let path = dir_entry.path();
            if let Some(owner) = partial_owner(&name) {
                if BuildLock::is_held(&BuildLock::path_for(&platform_dir, owner))? {
                    tracing::debug!(dir = name, "keeping the directory of a running build");
                    continue;
                }
            } else if let Some(entry) = lookup_by_dir_name(&name) {
                // Hold the lock while judging, so a build finishing meanwhile is not removed.
                let lock_path = BuildLock::path_for(&platform_dir, &name);
                let Some(_lock) = BuildLock::try_acquire(&lock_path)? else {
                    tracing::debug!(dir = name, "a build of this environment is running");
                    continue;
                };
                if self.check_install(entry).is_ok() {
                    continue;
                }
                if remove_tree(&path)? {
                    removed.push(name);
                }
                continue;
            }
            if remove_tree(&path)? {
                removed.push(name);
            }
        }
        removed.sort();
        if !removed.is_empty() {
            tracing::info!(removed = ?removed, "pruned the environment cache");
        }
        Ok(removed)
    }

    /// Returns the installed environment, building it first if needed.
    ///
    /// Blocks for the whole build (minutes): call it from a blocking thread.
    /// Builds of one environment are serialized across processes by a lock
    /// file; a caller that waited for another build gets that build's result.
    pub fn ensure_installed(
        &self,
        entry: &'static CatalogEntry,
        progress: &mut dyn FnMut(BuildProgress),
    ) -> Result<InstalledEnvironment, EnvironmentError> {
        if let Some(installed) = self.installed(entry) {
            return Ok(installed);
        }
        let platform_dir = self.platform_dir();
        fs::create_dir_all(&platform_dir)
            .map_err(|source| EnvironmentError::io("create directory", &platform_dir, source))?;
        let dir_name = entry.dir_name();
        let lock_path = BuildLock::path_for(&platform_dir, &dir_name);
        let lock = match BuildLock::try_acquire(&lock_path)? {
            Some(lock) => lock,
            None => {
                progress(BuildProgress {
                    phase: BuildPhase::Waiting,
                    detail: format!("another process is building {}; waiting for it", entry.name),
                });
                BuildLock::acquire(&lock_path)?
            }
        };
        tracing::debug!(lock = %lock.path().display(), "holding the build lock");
        if let Some(installed) = self.installed(entry) {
            return Ok(installed);
        }

        let plan = BuildPlan::prepare(entry)?;
        self.remove_stale_partials(&dir_name)?;
        let partial = tempfile::Builder::new()
            .prefix(&format!("{PARTIAL_PREFIX}{dir_name}-"))
            .rand_bytes(8)
            .tempdir_in(&platform_dir)
            .map_err(|source| {
                EnvironmentError::io("create a build directory in", &platform_dir, source)
            })?;
        plan.run(partial.path(), progress)?;

        progress(BuildProgress {
            phase: BuildPhase::Finalize,
            detail: format!("installing into {}", self.install_dir(entry).display()),
        });
        let install_dir = self.install_dir(entry);
        fs::set_permissions(partial.path(), fs::Permissions::from_mode(0o755))
            .map_err(|source| EnvironmentError::io("set permissions of", partial.path(), source))?;
        sync_dir(partial.path())?;
        if fs::symlink_metadata(&install_dir).is_ok() {
            // An incomplete install (the check above failed under the lock).
            remove_tree(&install_dir)?;
        }
        fs::rename(partial.path(), &install_dir)
            .map_err(|source| EnvironmentError::io("move the build into", &install_dir, source))?;
        let _moved = partial.keep();
        sync_dir(&platform_dir)?;

        let result =
            self.check_install(entry)
                .map_err(|problem| EnvironmentError::BuildIncomplete {
                    name: entry.name.to_owned(),
                    dir: install_dir,
                    reason: match problem {
                        NotInstalled::Missing => "the install directory vanished".to_owned(),
                        NotInstalled::Incomplete(reason) => reason,
                    },
                });
        drop(lock);
        result
    }

    /// Removes `.partial-<dir_name>-*` left by interrupted builds; the caller
    /// holds the lock of `dir_name`, so none of them belongs to a running build
    /// (an orphaned mmdebstrap of a dead build may still write there).
    fn remove_stale_partials(&self, dir_name: &str) -> Result<(), EnvironmentError> {
        let platform_dir = self.platform_dir();
        let entries = fs::read_dir(&platform_dir)
            .map_err(|source| EnvironmentError::io("list", &platform_dir, source))?;
        for dir_entry in entries {
            let dir_entry =
                dir_entry.map_err(|source| EnvironmentError::io("list", &platform_dir, source))?;
            let name = dir_entry.file_name().to_string_lossy().into_owned();
            if partial_owner(&name) == Some(dir_name) {
                tracing::info!(dir = name, "removing an interrupted build");
                // Not fatal: the new build uses a fresh directory, and prune retries.
                if let Err(err) = remove_tree(&dir_entry.path()) {
                    tracing::warn!(dir = name, error = %error_chain(&err), "cannot remove");
                }
            }
        }
        Ok(())
    }

    fn check_install(&self, entry: &CatalogEntry) -> Result<InstalledEnvironment, NotInstalled> {
        let dir = self.install_dir(entry);
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(NotInstalled::Incomplete("it is not a directory".to_owned())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(NotInstalled::Missing),
            Err(err) => {
                return Err(NotInstalled::Incomplete(format!(
                    "it cannot be read: {err}"
                )))
            }
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.exists() {
            return Err(NotInstalled::Incomplete(format!(
                "it has no {MANIFEST_FILE}"
            )));
        }
        let manifest = EnvironmentManifest::read(&manifest_path)
            .map_err(|err| NotInstalled::Incomplete(error_chain(&err)))?;
        manifest
            .describes(entry, PLATFORM)
            .map_err(|reason| NotInstalled::Incomplete(format!("{MANIFEST_FILE}: {reason}")))?;
        for (file_name, record) in manifest.artifacts.iter() {
            let path = dir.join(file_name);
            let size = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta.len(),
                Ok(_) => {
                    return Err(NotInstalled::Incomplete(format!(
                        "{file_name} is not a file"
                    )))
                }
                Err(_) => return Err(NotInstalled::Incomplete(format!("{file_name} is missing"))),
            };
            if size != record.size_bytes {
                return Err(NotInstalled::Incomplete(format!(
                    "{file_name} has {size} bytes, the manifest records {}",
                    record.size_bytes
                )));
            }
        }
        Ok(InstalledEnvironment::new(dir, manifest))
    }
}

/// For `.partial-<dir name>-<random>`, the environment directory name.
fn partial_owner(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PARTIAL_PREFIX)?;
    Some(rest.rsplit_once('-').map_or(rest, |(owner, _random)| owner))
}

fn sync_dir(path: &Path) -> Result<(), EnvironmentError> {
    fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| EnvironmentError::io("fsync", path, source))
}

/// An error and its sources as one line.
fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::catalog::lookup;
    use crate::environment::manifest::tests::sample_manifest;

    const ARTIFACT_SIZE: u64 = 16;

    /// Writes a complete fake install of `debian:12` and returns its dir.
    fn install_fake(cache: &EnvironmentCache) -> PathBuf {
        let dir = cache.install_dir(lookup("debian:12").unwrap());
        fs::create_dir_all(&dir).unwrap();
        for file in [VMLINUX_FILE, VMLINUZ_FILE, ROOTFS_FILE, MODULES_CPIO_FILE] {
            fs::write(dir.join(file), vec![0u8; ARTIFACT_SIZE as usize]).unwrap();
        }
        sample_manifest(ARTIFACT_SIZE)
            .write(&dir.join(MANIFEST_FILE))
            .unwrap();
        dir
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn paths_follow_the_cache_layout() {
        let cache = EnvironmentCache::new(Path::new("/c"));
        assert_eq!(
            cache.platform_dir(),
            Path::new("/c/environments/linux-x86_64")
        );
        assert_eq!(
            cache.install_dir(lookup("debian:12-build").unwrap()),
            Path::new("/c/environments/linux-x86_64/debian_12-build-1.0.0")
        );
    }

    #[test]
    fn a_complete_install_is_installed_with_its_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let dir = install_fake(&cache);
        let installed = cache.installed(lookup("debian:12").unwrap()).unwrap();
        assert_eq!(installed.dir, dir);
        assert_eq!(installed.vmlinux, dir.join("vmlinux"));
        assert_eq!(installed.rootfs, dir.join("rootfs.ext4"));
        assert_eq!(installed.modules_cpio, dir.join("modules.cpio"));
        assert_eq!(installed.manifest_path, dir.join("environment.json"));
        assert_eq!(installed.manifest.kernel_version, "6.1.0-56-cloud-amd64");
        assert!(cache.installed(lookup("debian:12-base").unwrap()).is_none());
    }

    #[test]
    fn missing_short_or_mismatched_installs_are_not_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let entry = lookup("debian:12").unwrap();
        assert!(cache.installed(entry).is_none(), "nothing there yet");

        let dir = install_fake(&cache);
        fs::write(dir.join(ROOTFS_FILE), vec![0u8; 8]).unwrap();
        assert!(cache.installed(entry).is_none(), "short artifact");
        let status = cache.status();
        assert!(status[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("rootfs.ext4 has 8 bytes"));

        install_fake(&cache);
        fs::remove_file(dir.join(VMLINUX_FILE)).unwrap();
        assert!(cache.installed(entry).is_none(), "missing artifact");

        install_fake(&cache);
        let mut other_version = sample_manifest(ARTIFACT_SIZE);
        other_version.version = "0.9.0".to_owned();
        other_version.write(&dir.join(MANIFEST_FILE)).unwrap();
        assert!(cache.installed(entry).is_none(), "version mismatch");

        install_fake(&cache);
        fs::write(dir.join(MANIFEST_FILE), b"{\"name\": \"debian:12\"}").unwrap();
        assert!(cache.installed(entry).is_none(), "unparsable manifest");

        install_fake(&cache);
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        assert!(cache.installed(entry).is_none(), "no manifest");
    }

    #[test]
    fn status_lists_every_catalog_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        install_fake(&cache);
        let status = cache.status();
        let summary: Vec<(&str, bool, bool)> = status
            .iter()
            .map(|s| (s.entry.name, s.installed.is_some(), s.problem.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("debian:12", true, false),
                ("debian:12-base", false, false),
                ("debian:12-build", false, false)
            ]
        );
        assert_eq!(
            status[1].install_dir,
            cache.install_dir(lookup("debian:12-base").unwrap())
        );
    }

    #[test]
    fn verify_detects_changed_bytes_of_the_same_size() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let dir = install_fake(&cache);
        let mut manifest = sample_manifest(ARTIFACT_SIZE);
        for (file, _) in sample_manifest(ARTIFACT_SIZE).artifacts.iter() {
            let record = record_artifact(&dir.join(file)).unwrap();
            match file {
                VMLINUX_FILE => manifest.artifacts.vmlinux = record,
                VMLINUZ_FILE => manifest.artifacts.vmlinuz = record,
                ROOTFS_FILE => manifest.artifacts.rootfs = record,
                _ => manifest.artifacts.modules_cpio = record,
            }
        }
        manifest.write(&dir.join(MANIFEST_FILE)).unwrap();
        let installed = cache.installed(lookup("debian:12").unwrap()).unwrap();
        installed.verify().unwrap();

        fs::write(dir.join(ROOTFS_FILE), vec![1u8; ARTIFACT_SIZE as usize]).unwrap();
        let err = installed.verify().unwrap_err();
        assert!(
            matches!(err, EnvironmentError::ArtifactDigestMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("rootfs.ext4"), "{err}");
    }

    #[test]
    fn prune_removes_partials_unknown_and_incomplete_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        assert!(cache.prune().unwrap().is_empty(), "no platform dir yet");

        install_fake(&cache);
        let platform = cache.platform_dir();
        for dir in [
            ".partial-debian_12-base-1.0.0-abcdefgh",
            "debian_12-0.9.0",
            "ubuntu_24.04-1.0.0",
            "debian_12-build-1.0.0",
        ] {
            fs::create_dir_all(platform.join(dir).join("sub")).unwrap();
        }
        fs::write(platform.join(".lock-debian_12-1.0.0"), b"").unwrap();
        fs::write(platform.join("stray-file"), b"").unwrap();

        let removed = cache.prune().unwrap();
        assert_eq!(
            removed,
            names(&[
                ".partial-debian_12-base-1.0.0-abcdefgh",
                "debian_12-0.9.0",
                "debian_12-build-1.0.0",
                "ubuntu_24.04-1.0.0",
            ])
        );
        assert!(cache.installed(lookup("debian:12").unwrap()).is_some());
        assert!(
            platform.join(".lock-debian_12-1.0.0").exists(),
            "lock files are kept"
        );
        assert!(
            platform.join("stray-file").exists(),
            "plain files are left alone"
        );
        assert!(cache.prune().unwrap().is_empty(), "prune is idempotent");
    }

    #[test]
    fn prune_keeps_partials_and_incomplete_installs_whose_build_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let platform = cache.platform_dir();
        let running = ".partial-debian_12-build-1.0.0-runnings";
        let stale = ".partial-debian_12-1.0.0-stale123";
        fs::create_dir_all(platform.join(running)).unwrap();
        fs::create_dir_all(platform.join(stale)).unwrap();
        fs::create_dir_all(platform.join("debian_12-build-1.0.0")).unwrap();
        let lock =
            BuildLock::acquire(&BuildLock::path_for(&platform, "debian_12-build-1.0.0")).unwrap();

        assert_eq!(cache.prune().unwrap(), names(&[stale]));
        assert!(platform.join(running).exists());
        assert!(platform.join("debian_12-build-1.0.0").exists());

        drop(lock);
        assert_eq!(
            cache.prune().unwrap(),
            names(&[running, "debian_12-build-1.0.0"])
        );
    }

    #[test]
    fn ensure_installed_returns_an_existing_install_without_building() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let dir = install_fake(&cache);
        let mut reports = Vec::new();
        let installed = cache
            .ensure_installed(lookup("debian:12").unwrap(), &mut |p| reports.push(p))
            .unwrap();
        assert_eq!(installed.dir, dir);
        assert!(reports.is_empty(), "no build, no progress: {reports:?}");
    }

    #[test]
    fn a_caller_waiting_on_the_lock_gets_the_install_made_meanwhile() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        fs::create_dir_all(cache.platform_dir()).unwrap();
        let lock_path = BuildLock::path_for(&cache.platform_dir(), "debian_12-1.0.0");
        let lock = BuildLock::acquire(&lock_path).unwrap();

        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut phases = Vec::new();
                let result = cache
                    .ensure_installed(lookup("debian:12").unwrap(), &mut |p| phases.push(p.phase));
                (result, phases)
            })
        };
        // The "other build" finishes while the waiter blocks on the lock.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let dir = install_fake(&cache);
        drop(lock);

        let (result, phases) = waiter.join().unwrap();
        assert_eq!(
            result.unwrap().dir,
            dir,
            "re-checked after taking the lock, not rebuilt"
        );
        assert_eq!(phases, [BuildPhase::Waiting]);
    }

    #[test]
    fn stale_partials_of_one_environment_are_found_by_exact_owner() {
        assert_eq!(
            partial_owner(".partial-debian_12-1.0.0-Ab12Cd34"),
            Some("debian_12-1.0.0")
        );
        assert_eq!(
            partial_owner(".partial-debian_12-base-1.0.0-Ab12Cd34"),
            Some("debian_12-base-1.0.0")
        );
        assert_eq!(partial_owner("debian_12-1.0.0"), None);

        let tmp = tempfile::tempdir().unwrap();
        let cache = EnvironmentCache::new(tmp.path());
        let platform = cache.platform_dir();
        for dir in [
            ".partial-debian_12-1.0.0-aaaa",
            ".partial-debian_12-base-1.0.0-bbbb",
        ] {
            fs::create_dir_all(platform.join(dir)).unwrap();
        }
        cache.remove_stale_partials("debian_12-1.0.0").unwrap();
        assert!(!platform.join(".partial-debian_12-1.0.0-aaaa").exists());
        assert!(platform.join(".partial-debian_12-base-1.0.0-bbbb").exists());
    }
}

//! The guest side pyro ships: `pyro-init` and `pyro-guest-agent`, packed as
//! an initramfs appended to each environment's modules archive.
//!
//! The kernel unpacks concatenated cpio archives in order, so a VM's
//! initramfs is `modules.cpio` (from the environment) followed by the
//! runtime archive built here. Every guest therefore runs this host's init
//! and agent, and images are never patched. Both results are cached under
//! `<cache>/initramfs/`, named by content hash, and written to a temporary
//! name and renamed, so concurrent supervisors never see half a file.
//!
//! The guest binaries are looked for in `$PYRO_GUEST_DIR`, then
//! `<exe dir>/../lib/pyro/guest` (installed layout), then the cargo target
//! layout next to the running binary (`target/x86_64-unknown-linux-gnu/guest`).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::environment::cpio_archive::{write_newc_archive_file, ArchiveEntry};
use crate::environment::InstalledEnvironment;
use crate::error::SupervisorError;

/// The init binary's file name.
pub const INIT_BINARY: &str = "pyro-init";
/// The agent binary's file name.
pub const AGENT_BINARY: &str = "pyro-guest-agent";

/// The guest binaries and the runtime archive made from them.
#[derive(Debug, Clone)]
pub struct GuestBundle {
    guest_dir: PathBuf,
    initramfs_dir: PathBuf,
    runtime_cpio: PathBuf,
    digest: String,
}

impl GuestBundle {
    /// Finds the guest binaries and writes (or reuses) the runtime archive.
    pub fn prepare(explicit_dir: Option<&Path>, cache_dir: &Path) -> Result<Self, SupervisorError> {
        let guest_dir = locate_guest_dir(explicit_dir)?;
        let init = read_binary(&guest_dir.join(INIT_BINARY))?;
        let agent = read_binary(&guest_dir.join(AGENT_BINARY))?;
        let mut hasher = Sha256::new();
        hasher.update(&init);
        hasher.update(&agent);
        let digest = hex::encode(hasher.finalize())[..16].to_owned();

        let initramfs_dir = cache_dir.join("initramfs");
        std::fs::create_dir_all(&initramfs_dir)
            .map_err(|source| SupervisorError::io("creating", &initramfs_dir, source))?;
        let runtime_cpio = initramfs_dir.join(format!("runtime-{digest}.cpio"));
        if !runtime_cpio.exists() {
            let entries = vec![
                ArchiveEntry::directory("dev", 0o755),
                ArchiveEntry::char_device("dev/console", 0o600, 5, 1),
                ArchiveEntry::directory("proc", 0o755),
                ArchiveEntry::directory("sys", 0o755),
                ArchiveEntry::directory("mnt", 0o755),
                ArchiveEntry::directory("newroot", 0o755),
                ArchiveEntry::directory("pyro", 0o755),
                ArchiveEntry::file_from_bytes("init", 0o755, init),
                ArchiveEntry::file_from_bytes("pyro/pyro-guest-agent", 0o755, agent),
            ];
            let tmp = temp_name(&runtime_cpio);
            write_newc_archive_file(&entries, &tmp).map_err(SupervisorError::Environment)?;
            rename(&tmp, &runtime_cpio)?;
        }
        Ok(Self {
            guest_dir,
            initramfs_dir,
            runtime_cpio,
            digest,
        })
    }

    /// Where the guest binaries were found.
    pub fn guest_dir(&self) -> &Path {
        &self.guest_dir
    }

    /// The content hash of init plus agent.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The whole initramfs for `env`: its modules, then init and agent.
    pub fn initramfs_for(&self, env: &InstalledEnvironment) -> Result<PathBuf, SupervisorError> {
        let modules_digest = &env.manifest.artifacts.modules_cpio.sha256;
        let name = format!(
            "{}-{}-{}.cpio",
            env.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            &modules_digest[..modules_digest.len().min(12)],
            self.digest
        );
        let target = self.initramfs_dir.join(name);
        if target.exists() {
            return Ok(target);
        }
        let tmp = temp_name(&target);
        let result = (|| {
            let mut out = std::fs::File::create(&tmp)
                .map_err(|source| SupervisorError::io("creating", &tmp, source))?;
            for part in [&env.modules_cpio, &self.runtime_cpio] {
                let bytes = std::fs::read(part)
                    .map_err(|source| SupervisorError::io("reading", part, source))?;
                out.write_all(&bytes)
                    .map_err(|source| SupervisorError::io("writing", &tmp, source))?;
            }
            out.sync_all()
                .map_err(|source| SupervisorError::io("syncing", &tmp, source))
        })();
        if let Err(err) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
        rename(&tmp, &target)?;
        Ok(target)
    }
}

fn temp_name(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(format!(".tmp-{}", crate::ids::new_id()));
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> Result<(), SupervisorError> {
    std::fs::rename(from, to).map_err(|source| {
        let _ = std::fs::remove_file(from);
        SupervisorError::io("renaming into", to, source)
    })
}

fn read_binary(path: &Path) -> Result<Vec<u8>, SupervisorError> {
    std::fs::read(path).map_err(|source| SupervisorError::GuestBinary {
        path: path.to_owned(),
        source,
    })
}

/// Candidate directories for the guest binaries, in order.
pub fn guest_dir_candidates(explicit_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = explicit_dir {
        candidates.push(dir.to_owned());
    }
    if let Some(dir) = std::env::var_os("PYRO_GUEST_DIR").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        candidates.push(exe_dir.join("../lib/pyro/guest"));
        // target/<profile>/pyro-supervisor -> target/x86_64-unknown-linux-gnu/guest
        candidates.push(exe_dir.join("../x86_64-unknown-linux-gnu/guest"));
        // target/<profile>/deps/<test binary>
        candidates.push(exe_dir.join("../../x86_64-unknown-linux-gnu/guest"));
    }
    candidates
}

fn locate_guest_dir(explicit_dir: Option<&Path>) -> Result<PathBuf, SupervisorError> {
    first_guest_dir(&guest_dir_candidates(explicit_dir))
}

fn first_guest_dir(candidates: &[PathBuf]) -> Result<PathBuf, SupervisorError> {
    candidates
        .iter()
        .find(|dir| dir.join(INIT_BINARY).is_file() && dir.join(AGENT_BINARY).is_file())
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.clone()))
        .ok_or_else(|| SupervisorError::GuestBinariesMissing {
            looked: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_runtime_archive_once_and_names_it_by_content() {
        let guest = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(guest.path().join(INIT_BINARY), b"init-binary").unwrap();
        std::fs::write(guest.path().join(AGENT_BINARY), b"agent-binary").unwrap();
        let bundle = GuestBundle::prepare(Some(guest.path()), cache.path()).unwrap();
        let archive = std::fs::read(&bundle.runtime_cpio).unwrap();
        let text = String::from_utf8_lossy(&archive);
        for name in [
            "dev/console",
            "init",
            "pyro/pyro-guest-agent",
            "newroot",
            "TRAILER!!!",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(text.contains("agent-binary"));
        let again = GuestBundle::prepare(Some(guest.path()), cache.path()).unwrap();
        assert_eq!(again.runtime_cpio, bundle.runtime_cpio);

        std::fs::write(guest.path().join(AGENT_BINARY), b"agent-binary-2").unwrap();
        let changed = GuestBundle::prepare(Some(guest.path()), cache.path()).unwrap();
        assert_ne!(changed.digest(), bundle.digest());
    }

    #[test]
    fn missing_binaries_say_where_they_were_looked_for() {
        let empty = tempfile::tempdir().unwrap();
        let err = first_guest_dir(&[empty.path().to_owned()]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&empty.path().display().to_string()),
            "{err}"
        );
    }
}

//! Each VM's writable disk: a sparse ext4 image made on the host.
//!
//! It is created empty; pyro-init makes the overlay's `upper/` and `work/`
//! on it. `lazy_itable_init` and `lazy_journal_init` keep the file sparse
//! (about 2 MiB allocated for 4 GiB), and the guest mounts it with
//! `noinit_itable` so it never zeroes inode tables in the background.

use std::path::Path;
use std::process::Command;

use crate::error::{ActorError, Result};

/// Creates a sparse ext4 image of `size_mib` at `path` (which must not exist).
pub fn create_data_disk(mkfs: &Path, path: &Path, size_mib: u64) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| ActorError::host_io("creating the data disk", path, err))?;
    file.set_len(size_mib * 1024 * 1024)
        .map_err(|err| ActorError::host_io("sizing the data disk", path, err))?;
    drop(file);
    let output = Command::new(mkfs)
        .args(["-q", "-F", "-b", "4096", "-T", "default", "-L", "pyro-data"])
        .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
        .arg(path)
        .output()
        .map_err(|source| ActorError::Spawn {
            program: mkfs.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(path);
        return Err(ActorError::HostCommand {
            program: "mkfs.ext4".to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn makes_a_sparse_ext4_image() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("data.ext4");
        create_data_disk(Path::new("mkfs.ext4"), &disk, 1024).unwrap();
        let meta = std::fs::metadata(&disk).unwrap();
        assert_eq!(meta.len(), 1024 * 1024 * 1024);
        assert!(
            meta.blocks() * 512 < 16 * 1024 * 1024,
            "allocated {} bytes",
            meta.blocks() * 512
        );
        // The ext4 superblock magic 0xEF53 at offset 1024 + 56.
        let mut magic = [0u8; 2];
        let file = std::fs::File::open(&disk).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut magic, 1024 + 56).unwrap();
        assert_eq!(magic, [0x53, 0xEF]);
        // Refuses to overwrite.
        assert!(create_data_disk(Path::new("mkfs.ext4"), &disk, 1024).is_err());
    }
}

//! Finding the VM's disks by virtio serial, not by probe order.
//!
//! The host gives each disk a serial (`pyro-root`, `pyro-data`); virtio-blk
//! exposes it as `/sys/block/vdX/serial`. Matching on it means the device
//! names never matter.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::failure::BootError;

/// How long to wait for the root disk after the virtio modules are loaded.
/// It is normally there at once; this only bounds a broken setup.
const DISK_WAIT: Duration = Duration::from_secs(5);

/// Looks for a block device whose serial is `serial`, under `sys_block`.
pub fn find_by_serial(sys_block: &Path, serial: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(sys_block).ok()?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("vd"))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let found = std::fs::read_to_string(sys_block.join(&name).join("serial")).ok()?;
        (found.trim() == serial).then(|| PathBuf::from("/dev").join(name))
    })
}

/// Waits (bounded) until the disk with `serial` shows up in `/sys/block`.
pub fn wait_for(serial: &str) -> Result<PathBuf, BootError> {
    let deadline = Instant::now() + DISK_WAIT;
    loop {
        if let Some(dev) = find_by_serial(Path::new("/sys/block"), serial) {
            if dev.exists() {
                return Ok(dev);
            }
        }
        if Instant::now() >= deadline {
            return Err(BootError::plain(
                "find_disk",
                format!(
                    "no disk with serial {serial} appeared within {}s",
                    DISK_WAIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_on_the_serial_file() {
        let dir = tempdir();
        for (name, serial) in [
            ("vda", "pyro-root\n"),
            ("vdb", "pyro-data"),
            ("loop0", "pyro-data"),
        ] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("serial"), serial).unwrap();
        }
        assert_eq!(
            find_by_serial(&dir, "pyro-root"),
            Some(PathBuf::from("/dev/vda"))
        );
        assert_eq!(
            find_by_serial(&dir, "pyro-data"),
            Some(PathBuf::from("/dev/vdb"))
        );
        assert_eq!(find_by_serial(&dir, "other"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyro-init-disks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

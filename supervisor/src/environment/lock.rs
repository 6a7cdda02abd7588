//! Per-environment build locks: `flock(2)` on `.lock-<dir name>` files.
//!
//! Several supervisors can share one cache. A build holds the exclusive lock of
//! its environment for its whole duration, and prune skips anything whose lock
//! is held. Lock files are never deleted: unlinking a lock file while another
//! process waits on it would let two builds hold "the" lock at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::EnvironmentError;

/// Prefix of lock file names in the platform directory.
pub(crate) const LOCK_PREFIX: &str = ".lock-";

/// An exclusive build lock; released when dropped.
#[derive(Debug)]
pub(crate) struct BuildLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl BuildLock {
    /// The lock file path for the environment directory named `dir_name`.
    pub(crate) fn path_for(platform_dir: &Path, dir_name: &str) -> PathBuf {
        platform_dir.join(format!("{LOCK_PREFIX}{dir_name}"))
    }

    /// Takes the lock without waiting; `Ok(None)` when another holder has it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>, EnvironmentError> {
        let file = open_lock_file(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Self {
                _lock: lock,
                path: path.to_path_buf(),
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(lock_error(path, errno)),
        }
    }

    /// Takes the lock, waiting as long as another holder has it.
    pub(crate) fn acquire(path: &Path) -> Result<Self, EnvironmentError> {
        let mut file = open_lock_file(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => {
                    return Ok(Self {
                        _lock: lock,
                        path: path.to_path_buf(),
                    })
                }
                Err((returned, Errno::EINTR)) => file = returned,
                Err((_, errno)) => return Err(lock_error(path, errno)),
            }
        }
    }

    /// Whether some holder currently has the lock at `path`, without creating it.
    pub(crate) fn is_held(path: &Path) -> Result<bool, EnvironmentError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(EnvironmentError::Lock {
                    path: path.into(),
                    source,
                })
            }
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_released_on_drop) => Ok(false),
            Err((_, Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, errno)) => Err(lock_error(path, errno)),
        }
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File, EnvironmentError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| EnvironmentError::Lock {
            path: path.to_path_buf(),
            source,
        })
}

fn lock_error(path: &Path, errno: Errno) -> EnvironmentError {
    EnvironmentError::Lock {
        path: path.to_path_buf(),
        source: io::Error::from(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = BuildLock::path_for(dir.path(), "debian_12-1.0.0");
        assert!(
            !BuildLock::is_held(&path).unwrap(),
            "a missing lock file is not held"
        );
        assert!(!path.exists(), "is_held must not create the lock file");

        let first = BuildLock::acquire(&path).unwrap();
        assert_eq!(first.path(), path);
        assert!(BuildLock::is_held(&path).unwrap());
        assert!(BuildLock::try_acquire(&path).unwrap().is_none());

        drop(first);
        assert!(!BuildLock::is_held(&path).unwrap());
        let second = BuildLock::try_acquire(&path).unwrap();
        assert!(second.is_some());
        assert!(path.exists(), "lock files stay in place");
    }
}

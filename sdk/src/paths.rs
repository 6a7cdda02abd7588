//! Where pyro keeps its state, shared by the client and the supervisor.
//!
//! | what | variable | default |
//! |---|---|---|
//! | records, logs, workspace disks | `PYRO_HOME` | `$XDG_DATA_HOME/pyro`, else `~/.local/share/pyro` |
//! | environments (images, kernels) | `PYRO_CACHE_DIR` | `$XDG_CACHE_HOME/pyro`, else `~/.cache/pyro` |
//! | sockets, per-VM runtime files | `PYRO_RUNTIME_DIR` | `$PYRO_HOME/run` when `PYRO_HOME` is set, else `$XDG_RUNTIME_DIR/pyro`, else `/tmp/pyro-<uid>` |
//!
//! Unix socket paths are limited to 107 bytes, so keep the runtime directory
//! short.

use std::path::{Path, PathBuf};

/// The three directories pyro uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyroPaths {
    /// Records, logs and workspace disks.
    pub data_dir: PathBuf,
    /// Environment images and kernels, shareable between users of one host.
    pub cache_dir: PathBuf,
    /// Sockets and per-VM runtime files.
    pub runtime_dir: PathBuf,
}

/// Why the directories could not be determined.
#[derive(Debug, thiserror::Error)]
#[error("cannot determine pyro's {what} directory: set {variable} (or HOME)")]
pub struct PathsError {
    what: &'static str,
    variable: &'static str,
}

impl PyroPaths {
    /// Resolves the directories from the process environment.
    ///
    /// ```
    /// let paths = pyro_sdk::PyroPaths::from_env()?;
    /// assert!(paths.socket().starts_with(&paths.runtime_dir));
    /// # Ok::<(), pyro_sdk::PathsError>(())
    /// ```
    pub fn from_env() -> Result<Self, PathsError> {
        Self::from_lookup(|name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Resolves the directories with `lookup` standing in for the environment.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    /// let paths = pyro_sdk::PyroPaths::from_lookup(|name| match name {
    ///     "HOME" => Some(PathBuf::from("/home/u")),
    ///     "PYRO_HOME" => Some(PathBuf::from("/srv/pyro")),
    ///     _ => None,
    /// })?;
    /// assert_eq!(paths.data_dir, Path::new("/srv/pyro"));
    /// assert_eq!(paths.cache_dir, Path::new("/home/u/.cache/pyro"));
    /// assert_eq!(paths.socket(), Path::new("/srv/pyro/run/supervisor.sock"));
    /// # Ok::<(), pyro_sdk::PathsError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<PathBuf>) -> Result<Self, PathsError> {
        let home = lookup("HOME");
        let pyro_home = lookup("PYRO_HOME");
        let data_dir = pyro_home
            .clone()
            .or_else(|| lookup("XDG_DATA_HOME").map(|d| d.join("pyro")))
            .or_else(|| home.as_ref().map(|h| h.join(".local/share/pyro")))
            .ok_or(PathsError {
                what: "data",
                variable: "PYRO_HOME",
            })?;
        let cache_dir = lookup("PYRO_CACHE_DIR")
            .or_else(|| lookup("XDG_CACHE_HOME").map(|d| d.join("pyro")))
            .or_else(|| home.as_ref().map(|h| h.join(".cache/pyro")))
            .ok_or(PathsError {
                what: "cache",
                variable: "PYRO_CACHE_DIR",
            })?;
        let runtime_dir = lookup("PYRO_RUNTIME_DIR")
            .or_else(|| pyro_home.map(|h| h.join("run")))
            .or_else(|| lookup("XDG_RUNTIME_DIR").map(|d| d.join("pyro")))
            .unwrap_or_else(|| {
                // SAFETY: getuid cannot fail.
                let uid = unsafe { libc::getuid() };
                PathBuf::from(format!("/tmp/pyro-{uid}"))
            });
        Ok(Self {
            data_dir,
            cache_dir,
            runtime_dir,
        })
    }

    /// Explicit directories (tests, embedding).
    ///
    /// ```
    /// use std::path::Path;
    /// let paths = pyro_sdk::PyroPaths::new(Path::new("/d"), Path::new("/c"), Path::new("/r"));
    /// assert_eq!(paths.cache_dir, Path::new("/c"));
    /// ```
    pub fn new(data_dir: &Path, cache_dir: &Path, runtime_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            cache_dir: cache_dir.to_owned(),
            runtime_dir: runtime_dir.to_owned(),
        }
    }

    /// The supervisor's API socket.
    ///
    /// ```
    /// use std::path::Path;
    /// let paths = pyro_sdk::PyroPaths::new(Path::new("/d"), Path::new("/c"), Path::new("/r"));
    /// assert_eq!(paths.socket(), Path::new("/r/supervisor.sock"));
    /// ```
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join("supervisor.sock")
    }

    /// The lock the running supervisor holds, so only one runs per state.
    ///
    /// ```
    /// use std::path::Path;
    /// let paths = pyro_sdk::PyroPaths::new(Path::new("/d"), Path::new("/c"), Path::new("/r"));
    /// assert_eq!(paths.supervisor_lock(), Path::new("/r/supervisor.lock"));
    /// ```
    pub fn supervisor_lock(&self) -> PathBuf {
        self.runtime_dir.join("supervisor.lock")
    }

    /// The running supervisor's pid file (see [`crate::SupervisorPidFile`]).
    ///
    /// ```
    /// use std::path::Path;
    /// let paths = pyro_sdk::PyroPaths::new(Path::new("/d"), Path::new("/c"), Path::new("/r"));
    /// assert_eq!(paths.supervisor_pid_file(), Path::new("/r/supervisor.pid"));
    /// ```
    pub fn supervisor_pid_file(&self) -> PathBuf {
        self.runtime_dir.join("supervisor.pid")
    }

    /// The supervisor's log file.
    ///
    /// ```
    /// use std::path::Path;
    /// let paths = pyro_sdk::PyroPaths::new(Path::new("/d"), Path::new("/c"), Path::new("/r"));
    /// assert_eq!(paths.supervisor_log(), Path::new("/d/logs/supervisor.log"));
    /// ```
    pub fn supervisor_log(&self) -> PathBuf {
        self.data_dir.join("logs").join("supervisor.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<PyroPaths, PathsError> {
        let map: HashMap<String, PathBuf> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), PathBuf::from(v)))
            .collect();
        PyroPaths::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn xdg_defaults() {
        let paths = resolve(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")]).unwrap();
        assert_eq!(paths.data_dir, PathBuf::from("/home/u/.local/share/pyro"));
        assert_eq!(paths.cache_dir, PathBuf::from("/home/u/.cache/pyro"));
        assert_eq!(
            paths.socket(),
            PathBuf::from("/run/user/1000/pyro/supervisor.sock")
        );
    }

    #[test]
    fn pyro_home_isolates_everything_but_the_cache() {
        let paths = resolve(&[
            ("HOME", "/home/u"),
            ("PYRO_HOME", "/tmp/t1"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
        ])
        .unwrap();
        assert_eq!(paths.data_dir, PathBuf::from("/tmp/t1"));
        assert_eq!(paths.runtime_dir, PathBuf::from("/tmp/t1/run"));
        assert_eq!(paths.cache_dir, PathBuf::from("/home/u/.cache/pyro"));
    }

    #[test]
    fn no_home_is_an_error_naming_the_variable() {
        let err = resolve(&[]).unwrap_err();
        assert!(err.to_string().contains("PYRO_HOME"));
    }
}

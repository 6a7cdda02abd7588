//! Step 1 of a build: the guest root file system tree, made by mmdebstrap.
//!
//! As root, mmdebstrap writes a directory (its `root` mode). As another user it
//! writes a tarball, using `--mode=unshare` when the user has subordinate ids
//! and `--mode=fakechroot` otherwise; the image step unpacks it under fakeroot
//! so owners stay right. The same customize hook runs in every mode: hostname
//! `pyro`, an empty resolv.conf (mmdebstrap copies the host's), /etc/hosts, and
//! an empty /workspace.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::tools::{self, FailureHint, ToolPaths, FAKECHROOT, MMDEBSTRAP, NEWUIDMAP};
use crate::environment::catalog::{CatalogEntry, DEBIAN_SUITE};
use crate::environment::error::EnvironmentError;

/// Default main Debian mirror.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Default Debian security mirror.
pub const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// Overrides [`DEFAULT_MIRROR`].
pub const MIRROR_VAR: &str = "PYRO_DEBIAN_MIRROR";
/// Overrides [`DEFAULT_SECURITY_MIRROR`].
pub const SECURITY_MIRROR_VAR: &str = "PYRO_DEBIAN_SECURITY_MIRROR";

/// The guest's host name.
const GUEST_HOSTNAME: &str = "pyro";

/// dpkg filters that keep documentation out of the image (copyright files stay).
const DPKG_PATH_FILTERS: [&str; 5] = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/info/*",
    "path-include=/usr/share/doc/*/copyright",
];

/// The customize hook; mmdebstrap runs it with `sh -c` and the target root as `$1`.
const CUSTOMIZE_HOOK: &str = concat!(
    "set -e; ",
    "printf 'pyro\\n' > \"$1/etc/hostname\"; ",
    "rm -f \"$1/etc/resolv.conf\"; : > \"$1/etc/resolv.conf\"; ",
    "printf '127.0.0.1 localhost\\n127.0.1.1 pyro\\n",
    "::1 localhost ip6-localhost ip6-loopback\\n' > \"$1/etc/hosts\"; ",
    "chmod 0644 \"$1/etc/hostname\" \"$1/etc/resolv.conf\" \"$1/etc/hosts\"; ",
    "mkdir -p \"$1/workspace\"; chmod 0755 \"$1/workspace\""
);

/// The Debian mirrors a build downloads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirrors {
    /// Mirror for `bookworm` and `bookworm-updates`.
    pub main: String,
    /// Mirror for `bookworm-security`.
    pub security: String,
}

impl Mirrors {
    /// Reads the mirrors from the environment, falling back to deb.debian.org.
    pub(crate) fn from_env() -> Result<Self, EnvironmentError> {
        Ok(Self {
            main: mirror_setting(MIRROR_VAR, std::env::var(MIRROR_VAR).ok(), DEFAULT_MIRROR)?,
            security: mirror_setting(
                SECURITY_MIRROR_VAR,
                std::env::var(SECURITY_MIRROR_VAR).ok(),
                DEFAULT_SECURITY_MIRROR,
            )?,
        })
    }

    /// The three one-line-style apt sources: main, updates and security.
    pub(crate) fn sources(&self) -> [String; 3] {
        [
            format!("deb {} {DEBIAN_SUITE} main", self.main),
            format!("deb {} {DEBIAN_SUITE}-updates main", self.main),
            format!("deb {} {DEBIAN_SUITE}-security main", self.security),
        ]
    }

    /// The failure hint for commands that download from these mirrors.
    pub(crate) fn hint(&self) -> FailureHint {
        FailureHint::Network {
            mirror: self.main.clone(),
            security_mirror: self.security.clone(),
        }
    }
}

fn mirror_setting(
    name: &str,
    value: Option<String>,
    default: &str,
) -> Result<String, EnvironmentError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(default.to_owned());
    };
    let invalid = |reason: &str| EnvironmentError::InvalidSetting {
        name: name.to_owned(),
        value: value.clone(),
        reason: reason.to_owned(),
    };
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.chars().any(char::is_whitespace) {
        return Err(invalid("a mirror URL cannot contain spaces"));
    }
    if !["http://", "https://", "file:/"]
        .iter()
        .any(|scheme| trimmed.starts_with(scheme))
    {
        return Err(invalid("expected an http://, https:// or file:/ URL"));
    }
    Ok(trimmed.to_owned())
}

/// How mmdebstrap gets root-owned files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildMode {
    /// Running as root: mmdebstrap's `root` mode, directory output.
    Root,
    /// Unprivileged with subordinate ids: `--mode=unshare`, tar output.
    Unshare,
    /// Unprivileged without them: `--mode=fakechroot`, tar output.
    Fakechroot,
}

impl BuildMode {
    /// mmdebstrap's name for the mode.
    pub(crate) fn as_mmdebstrap_mode(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Unshare => "unshare",
            Self::Fakechroot => "fakechroot",
        }
    }

    /// Picks the mode for the current user; fails with the fixes when a
    /// non-root user has neither subordinate ids nor fakechroot.
    pub(crate) fn select(entry: &CatalogEntry) -> Result<Self, EnvironmentError> {
        let euid = nix::unistd::geteuid();
        if euid.is_root() {
            return Ok(Self::Root);
        }
        let unshare_problem = unshare_problem(euid);
        match &unshare_problem {
            None => return Ok(Self::Unshare),
            Some(problem) => tracing::debug!(problem, "mmdebstrap --mode=unshare is unavailable"),
        }
        if tools::find_program(FAKECHROOT.name).is_some() {
            return Ok(Self::Fakechroot);
        }
        Err(EnvironmentError::UnprivilegedBuildUnavailable {
            name: entry.name.to_owned(),
            reason: format!(
                "mmdebstrap --mode=unshare cannot work ({}) and fakechroot is not installed; \
                 install it with: apt-get install -y fakechroot fakeroot, or add subordinate \
                 ids with: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \
                 <user>, or build as root",
                unshare_problem.unwrap_or_default()
            ),
        })
    }
}

/// Why `--mode=unshare` would not work for this user, if it would not.
fn unshare_problem(euid: nix::unistd::Uid) -> Option<String> {
    if tools::find_program(NEWUIDMAP.name).is_none() || tools::find_program("newgidmap").is_none() {
        return Some("newuidmap/newgidmap are missing (package uidmap)".to_owned());
    }
    if read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("unprivileged user namespaces are disabled".to_owned());
    }
    if read_trimmed("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user namespaces are disabled (max_user_namespaces is 0)".to_owned());
    }
    let user_name = nix::unistd::User::from_uid(euid)
        .ok()
        .flatten()
        .map(|user| user.name);
    let uid = euid.as_raw().to_string();
    for file in ["/etc/subuid", "/etc/subgid"] {
        let content = fs::read_to_string(file).unwrap_or_default();
        if !has_subordinate_range(&content, user_name.as_deref(), &uid) {
            return Some(format!("{file} has no range for uid {uid}"));
        }
    }
    None
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

/// Whether an /etc/subuid-style file has a non-empty range for the user.
fn has_subordinate_range(content: &str, user_name: Option<&str>, uid: &str) -> bool {
    content.lines().any(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next().unwrap_or_default();
        let count = fields
            .nth(1)
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        (owner == uid || Some(owner) == user_name) && count > 0
    })
}

/// What the rootfs step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootfsTree {
    /// A directory with correct owners (root builds).
    Directory(PathBuf),
    /// A tarball with correct owners (non-root builds).
    Tarball(PathBuf),
}

/// The mmdebstrap arguments for `entry` writing to `target`.
pub(crate) fn mmdebstrap_args(
    entry: &CatalogEntry,
    mirrors: &Mirrors,
    mode: BuildMode,
    target: &Path,
) -> Vec<String> {
    let format = if mode == BuildMode::Root {
        "directory"
    } else {
        "tar"
    };
    let mut args = vec![
        "--variant=minbase".to_owned(),
        format!("--mode={}", mode.as_mmdebstrap_mode()),
        format!("--format={format}"),
        "--architectures=amd64".to_owned(),
    ];
    if !entry.included_packages.is_empty() {
        args.push(format!("--include={}", entry.included_packages.join(",")));
    }
    args.extend(
        DPKG_PATH_FILTERS
            .iter()
            .map(|filter| format!("--dpkgopt={filter}")),
    );
    args.push(format!("--customize-hook={CUSTOMIZE_HOOK}"));
    args.push(DEBIAN_SUITE.to_owned());
    args.push(target.to_string_lossy().into_owned());
    args.extend(mirrors.sources());
    args
}

/// Runs mmdebstrap for `entry` into `work_dir` and returns the tree it made.
pub(crate) fn build_rootfs(
    tools: &ToolPaths,
    entry: &CatalogEntry,
    mirrors: &Mirrors,
    mode: BuildMode,
    work_dir: &Path,
) -> Result<RootfsTree, EnvironmentError> {
    let (target, tree) = if mode == BuildMode::Root {
        let dir = work_dir.join("rootfs");
        (dir.clone(), RootfsTree::Directory(dir))
    } else {
        let tarball = work_dir.join("rootfs.tar");
        (tarball.clone(), RootfsTree::Tarball(tarball))
    };
    let mut command = tools.command(MMDEBSTRAP);
    command.args(mmdebstrap_args(entry, mirrors, mode, &target));
    // Maintainer scripts in the chroot would warn about a host locale it lacks.
    command.env("LC_ALL", "C.UTF-8");
    tools::run("mmdebstrap", &mut command, &mirrors.hint())?;

    if let RootfsTree::Directory(dir) = &tree {
        // The tree's root becomes the image's root inode: it must be traversable.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|source| EnvironmentError::io("set permissions of", dir, source))?;
        check_customized(dir)?;
    }
    Ok(tree)
}

/// Confirms the customize hook ran (cheap, and catches a silently skipped hook).
fn check_customized(root: &Path) -> Result<(), EnvironmentError> {
    let hostname_path = root.join("etc/hostname");
    let hostname = fs::read_to_string(&hostname_path)
        .map_err(|source| EnvironmentError::io("read", &hostname_path, source))?;
    let resolv_path = root.join("etc/resolv.conf");
    let resolv_len = fs::metadata(&resolv_path)
        .map_err(|source| EnvironmentError::io("stat", &resolv_path, source))?
        .len();
    let workspace = root.join("workspace");
    if hostname.trim() != GUEST_HOSTNAME || resolv_len != 0 || !workspace.is_dir() {
        return Err(EnvironmentError::BuildIncomplete {
            name: "rootfs".to_owned(),
            dir: root.to_path_buf(),
            reason: "the customize hook did not take effect (hostname, resolv.conf, /workspace)"
                .to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::catalog::lookup;
    use std::process::Command;

    #[test]
    fn mirrors_default_and_validate() {
        assert_eq!(
            mirror_setting("M", None, DEFAULT_MIRROR).unwrap(),
            DEFAULT_MIRROR
        );
        assert_eq!(
            mirror_setting("M", Some(" ".into()), DEFAULT_MIRROR).unwrap(),
            DEFAULT_MIRROR
        );
        assert_eq!(
            mirror_setting("M", Some("http://mirror.example/debian/".into()), "x").unwrap(),
            "http://mirror.example/debian"
        );
        let err = mirror_setting("PYRO_DEBIAN_MIRROR", Some("mirror.example".into()), "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid PYRO_DEBIAN_MIRROR 'mirror.example'"),
            "{err}"
        );
        assert!(mirror_setting("M", Some("http://a b".into()), "x").is_err());
    }

    #[test]
    fn mmdebstrap_arguments_match_the_catalog_entry() {
        let mirrors = Mirrors {
            main: "http://m/debian".to_owned(),
            security: "http://m/debian-security".to_owned(),
        };
        let entry = lookup("debian:12").unwrap();
        let args = mmdebstrap_args(entry, &mirrors, BuildMode::Root, Path::new("/t/rootfs"));
        assert!(args.contains(&"--variant=minbase".to_owned()));
        assert!(args.contains(&"--mode=root".to_owned()));
        assert!(args.contains(&"--format=directory".to_owned()));
        assert!(args.contains(&"--include=git,ca-certificates,procps".to_owned()));
        assert!(args.contains(&"--dpkgopt=path-exclude=/usr/share/doc/*".to_owned()));
        let exclude = args
            .iter()
            .position(|a| a == "--dpkgopt=path-exclude=/usr/share/doc/*");
        let include = args
            .iter()
            .position(|a| a.starts_with("--dpkgopt=path-include="));
        assert!(exclude < include, "dpkg applies filters in order");
        let tail: Vec<&str> = args[args.len() - 5..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "bookworm",
                "/t/rootfs",
                "deb http://m/debian bookworm main",
                "deb http://m/debian bookworm-updates main",
                "deb http://m/debian-security bookworm-security main",
            ]
        );
        let unprivileged = mmdebstrap_args(
            entry,
            &mirrors,
            BuildMode::Fakechroot,
            Path::new("/t/r.tar"),
        );
        assert!(unprivileged.contains(&"--format=tar".to_owned()));
        assert!(unprivileged.contains(&"--mode=fakechroot".to_owned()));
    }

    #[test]
    fn customize_hook_writes_the_expected_files() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        let status = Command::new("sh")
            .args(["-c", CUSTOMIZE_HOOK, "hook"])
            .arg(root.path())
            .status()
            .unwrap();
        assert!(status.success());
        let read = |p: &str| fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("etc/hostname"), "pyro\n");
        assert_eq!(read("etc/resolv.conf"), "");
        assert!(read("etc/hosts").starts_with("127.0.0.1 localhost\n127.0.1.1 pyro\n"));
        let mode = fs::metadata(root.path().join("workspace"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        check_customized(root.path()).unwrap();
    }

    #[test]
    fn subordinate_ranges_match_by_name_or_uid() {
        let content = "alice:100000:65536\n1001:200000:65536\nbob:300000:0\n";
        assert!(has_subordinate_range(content, Some("alice"), "1000"));
        assert!(has_subordinate_range(content, Some("carol"), "1001"));
        assert!(
            !has_subordinate_range(content, Some("bob"), "1002"),
            "empty range"
        );
        assert!(!has_subordinate_range("", Some("alice"), "1000"));
    }
}

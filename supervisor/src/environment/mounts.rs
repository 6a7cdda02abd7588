//! Safe removal of build directories that may still contain mounts.
//!
//! mmdebstrap's root mode mounts proc, sysfs, devpts and a tmpfs inside the
//! tree it builds. If it dies without cleaning up (e.g. killed along with its
//! supervisor), those mounts stay inside a `.partial-*` directory. Deleting
//! through a mount point is never right, so removal first lazily unmounts
//! everything below the directory (possible as root, the only mode that makes
//! such mounts in our namespace), and refuses to delete if mounts remain.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::EnvironmentError;

/// Mount points at or below `dir`, deepest first, from `/proc/self/mountinfo`.
pub(crate) fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(canonical) = fs::canonicalize(dir) else {
        return Vec::new();
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = parse_mount_points(&mountinfo)
        .into_iter()
        .filter(|mount_point| mount_point.starts_with(&canonical))
        .collect();
    mounts.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.components().count()));
    mounts.dedup();
    mounts
}

/// The mount point column (5th) of each mountinfo line, unescaped.
fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

/// Undoes the kernel's `\ooo` escaping of spaces, tabs, newlines and backslashes.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 4)
            .filter(|digits| {
                bytes[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
            })
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes a directory tree (or a stray file) that no running build owns.
///
/// Returns `Ok(false)` when it was already gone or when mounts below it could
/// not be removed (it is then left in place, with a warning).
pub(crate) fn remove_tree(path: &Path) -> Result<bool, EnvironmentError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(EnvironmentError::io("stat", path, source)),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(EnvironmentError::io("remove", path, source)),
        };
    }
    for mount_point in mounts_below(path) {
        tracing::warn!(mount = %mount_point.display(), "unmounting a leftover build mount");
        if let Err(errno) = nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %mount_point.display(), %errno, "cannot unmount");
        }
    }
    let remaining = mounts_below(path);
    if !remaining.is_empty() {
        tracing::warn!(
            dir = %path.display(),
            mounts = ?remaining,
            "not removing a directory with mounts below it; unmount them first"
        );
        return Ok(false);
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(EnvironmentError::io("remove", path, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_parsed_and_unescaped() {
        let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
98 22 0:5 / /tmp/c/.partial-x/rootfs/proc rw - proc proc rw
99 22 0:6 / /tmp/with\\040space/dir\\134x rw - tmpfs tmpfs rw
";
        assert_eq!(
            parse_mount_points(mountinfo),
            [
                PathBuf::from("/"),
                PathBuf::from("/tmp/c/.partial-x/rootfs/proc"),
                PathBuf::from("/tmp/with space/dir\\x"),
            ]
        );
        assert_eq!(unescape_octal("a\\011b\\"), "a\tb\\");
    }

    #[test]
    fn plain_trees_and_files_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/file"), b"x").unwrap();
        assert!(mounts_below(&tree).is_empty());
        assert!(remove_tree(&tree).unwrap());
        assert!(!tree.exists());
        assert!(!remove_tree(&tree).unwrap(), "already gone");

        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(remove_tree(&file).unwrap());
    }

    #[test]
    fn the_root_mount_is_below_root_only() {
        let mounts = mounts_below(Path::new("/"));
        assert!(mounts.iter().any(|m| m == Path::new("/")), "{mounts:?}");
        assert!(
            mounts.last().is_some_and(|m| m == Path::new("/")),
            "deepest first"
        );
    }
}

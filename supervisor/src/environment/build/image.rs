//! Step 4 of a build: the read-only ext4 image, made without mounting anything.
//!
//! `mkfs.ext4 -d` copies the tree into a fresh file system sized at twice the
//! tree plus 64 MiB (4 KiB blocks and the `default` profile even for small
//! images, no journal since it is only ever mounted read-only), `resize2fs -M`
//! shrinks it to its minimum, and `e2fsck -fn` checks the result. Non-root
//! builds unpack the rootfs tarball and run mkfs in one fakeroot session, so
//! the image gets the tarball's owners.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::rootfs::RootfsTree;
use super::tools::{self, FailureHint, ToolPaths, E2FSCK, FAKEROOT, MKFS_EXT4, RESIZE2FS, SH, TAR};
use crate::environment::error::EnvironmentError;

const MIB: u64 = 1024 * 1024;

/// The ext4 volume label.
pub const ROOTFS_LABEL: &str = "rootfs";

/// The mkfs size in MiB for a tree of `tree_bytes`: twice the tree plus 64.
pub(crate) fn image_size_mib(tree_bytes: u64) -> u64 {
    tree_bytes.div_ceil(MIB) * 2 + 64
}

/// Disk usage of a directory tree in bytes (allocated blocks, hard links
/// counted once, symlinks not followed), like `du -s`.
pub(crate) fn tree_disk_usage(root: &Path) -> Result<u64, EnvironmentError> {
    let mut total = 0u64;
    let mut seen = HashSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path)
            .map_err(|source| EnvironmentError::io("stat", &path, source))?;
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            let entries = fs::read_dir(&path)
                .map_err(|source| EnvironmentError::io("list", &path, source))?;
            for entry in entries {
                let entry = entry.map_err(|source| EnvironmentError::io("list", &path, source))?;
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

fn mkfs_args(size_mib: u64) -> [String; 11] {
    [
        "-q".to_owned(),
        "-F".to_owned(),
        "-b".to_owned(),
        "4096".to_owned(),
        "-T".to_owned(),
        "default".to_owned(),
        "-O".to_owned(),
        "^has_journal".to_owned(),
        "-L".to_owned(),
        ROOTFS_LABEL.to_owned(),
        format!("{size_mib}M"),
    ]
}

/// Makes `image` from the rootfs tree and returns the image's final size.
pub(crate) fn make_image(
    tools: &ToolPaths,
    tree: &RootfsTree,
    image: &Path,
    mut report: impl FnMut(String),
) -> Result<u64, EnvironmentError> {
    let mkfs_hint = FailureHint::Text("check free space in the pyro cache directory");
    match tree {
        RootfsTree::Directory(dir) => {
            let size_mib = image_size_mib(tree_disk_usage(dir)?);
            report(format!("mkfs.ext4 -d ({size_mib} MiB before shrinking)"));
            let [options @ .., size] = mkfs_args(size_mib);
            tools::run(
                "mkfs.ext4",
                tools
                    .command(MKFS_EXT4)
                    .args(options)
                    .arg("-d")
                    .arg(dir)
                    .arg(image)
                    .arg(size),
                &mkfs_hint,
            )?;
        }
        RootfsTree::Tarball(tarball) => {
            let tar_bytes = fs::metadata(tarball)
                .map_err(|source| EnvironmentError::io("stat", tarball, source))?
                .len();
            let size_mib = image_size_mib(tar_bytes);
            let unpacked = tarball.with_extension("d");
            report(format!(
                "fakeroot tar + mkfs.ext4 -d ({size_mib} MiB before shrinking)"
            ));
            // $1 tar, $2 tarball, $3 unpack dir, $4 mkfs.ext4, $5 image, $6 size, then options.
            let script = "set -e; tar=$1; tarball=$2; dir=$3; mkfs=$4; image=$5; size=$6; \
                          shift 6; \
                          mkdir -p \"$dir\"; \"$tar\" --numeric-owner -xpf \"$tarball\" -C \"$dir\"; \
                          chmod 0755 \"$dir\"; \"$mkfs\" \"$@\" -d \"$dir\" \"$image\" \"$size\"";
            let [options @ .., size] = mkfs_args(size_mib);
            let result = tools::run(
                "fakeroot mkfs.ext4",
                tools
                    .command(FAKEROOT)
                    .arg("--")
                    .arg(tools.path(SH))
                    .arg("-c")
                    .arg(script)
                    .arg("sh")
                    .arg(tools.path(TAR))
                    .arg(tarball)
                    .arg(&unpacked)
                    .arg(tools.path(MKFS_EXT4))
                    .arg(image)
                    .arg(size)
                    .args(options),
                &mkfs_hint,
            );
            if unpacked.exists() {
                fs::remove_dir_all(&unpacked)
                    .map_err(|source| EnvironmentError::io("remove", &unpacked, source))?;
            }
            result?;
        }
    }

    report("resize2fs -M".to_owned());
    tools::run(
        "resize2fs -M",
        tools.command(RESIZE2FS).arg("-M").arg(image),
        &FailureHint::Text("the new image could not be shrunk; retry the build"),
    )?;
    tools::run(
        "e2fsck -fn",
        tools.command(E2FSCK).arg("-fn").arg(image),
        &FailureHint::Text("the new image failed its file system check; retry the build"),
    )?;
    let file =
        fs::File::open(image).map_err(|source| EnvironmentError::io("open", image, source))?;
    file.sync_all()
        .map_err(|source| EnvironmentError::io("fsync", image, source))?;
    let size = file
        .metadata()
        .map_err(|source| EnvironmentError::io("stat", image, source))?
        .len();
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_is_twice_the_tree_plus_64_mib() {
        assert_eq!(image_size_mib(0), 64);
        assert_eq!(image_size_mib(1), 66);
        assert_eq!(image_size_mib(100 * MIB), 264);
    }

    #[test]
    fn disk_usage_counts_hard_links_once_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/data"), vec![1u8; 256 * 1024]).unwrap();
        let single = tree_disk_usage(&root).unwrap();
        assert!(single >= 256 * 1024, "{single}");

        fs::hard_link(root.join("sub/data"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("/usr", root.join("usr")).unwrap();
        let linked = tree_disk_usage(&root).unwrap();
        assert!(linked < single + 64 * 1024, "{single} -> {linked}");
    }
}

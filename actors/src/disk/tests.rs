//! Tests against real ext4 images built with `mkfs.ext4 -d`: a lower
//! (environment) image and an upper (workspace) disk with overlayfs
//! whiteouts, an opaque directory, shadowed files, symlinks and odd names.
//!
//! Needs root (for `mknod` of whiteouts) and e2fsprogs; a test fails with a
//! clear message rather than skipping when either is missing.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A file of the big test file: byte `i` is `i % 251`.
const BIG_SIZE: usize = 3 * 1024 * 1024 + 17;

struct Fixture {
    _dir: tempfile::TempDir,
    disks: OverlayDisks,
}

fn run(program: &str, args: &[&str]) {
    let mut command = Command::new(program);
    command.args(args);
    let output = match command.output() {
        Ok(output) => output,
        Err(_) => Command::new(Path::new("/usr/sbin").join(program))
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("{program} could not run ({err}); install e2fsprogs")),
    };
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn require_root() {
    let uid = fs::metadata("/proc/self").map(|meta| meta.uid());
    assert_eq!(
        uid.ok(),
        Some(0),
        "these tests need root to mknod overlayfs whiteouts (char 0:0); run them as root"
    );
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn symlink(target: &str, path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

fn mkfs(dir: &Path, image: &Path) {
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-T",
            "default",
            "-d",
            dir.to_str().unwrap(),
            image.to_str().unwrap(),
            "64M",
        ],
    );
}

/// Runs debugfs write commands on an image and checks it said nothing.
fn debugfs_write(image: &Path, commands: &str) {
    let script = image.with_extension("cmds");
    fs::write(&script, commands).unwrap();
    let output = Command::new(super::debugfs::program().unwrap())
        .args(["-w", "-f"])
        .arg(&script)
        .arg(image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.starts_with("debugfs 1."))
        .collect();
    assert!(errors.is_empty(), "debugfs -w: {errors:?}");
}

fn big_contents() -> Vec<u8> {
    (0..BIG_SIZE).map(|i| (i % 251) as u8).collect()
}

/// The environment image.
fn build_lower(root: &Path) {
    fs::create_dir_all(root.join("workspace")).unwrap();
    write(&root.join("etc/os-release"), b"lower os\n", 0o644);
    write(&root.join("etc/shadowed.conf"), b"lower version\n", 0o644);
    write(&root.join("etc/gone.txt"), b"whited out\n", 0o644);
    write(&root.join("etc/xgone.txt"), b"whited out by xattr\n", 0o644);
    write(&root.join("etc/dir-to-file/inner"), b"hidden\n", 0o644);
    write(&root.join("etc/file-to-dir"), b"hidden too\n", 0o644);
    write(&root.join("etc/secret-ish"), b"0600\n", 0o600);
    write(&root.join("opt/tool/bin/run.sh"), b"#!/bin/sh\n", 0o755);
    write(&root.join("opt/tool/data.txt"), b"lower data\n", 0o644);
    write(&root.join("merge/lower-only.txt"), b"lower\n", 0o644);
    write(&root.join("merge/both/lower.txt"), b"lower\n", 0o644);
    write(&root.join("usr/lib/libfoo.so"), b"lib\n", 0o755);
    write(&root.join("usr/bin/sudo"), b"suid\n", 0o4755);
    write(&root.join("usr/share/big.bin"), &big_contents(), 0o644);
    symlink("usr/lib", &root.join("lib"));
    run("mkfifo", &[root.join("etc/fifo").to_str().unwrap()]);
}

/// The workspace disk: `upper/` and `work/`.
fn build_upper(root: &Path) {
    let upper = root.join("upper");
    fs::create_dir_all(root.join("work")).unwrap();
    let ws = upper.join("workspace");
    write(&ws.join("a b.txt"), b"hello upper\n", 0o754);
    write(&ws.join("src/main.rs"), b"fn main() {}\n", 0o644);
    write(&ws.join("src/nested/deep.txt"), b"deep\n", 0o640);
    write(&ws.join("new\nline"), b"newline name\n", 0o644);
    write(&ws.join("ünï cödé.txt"), "ünï\n".as_bytes(), 0o644);
    write(&ws.join("x\ndebugfs: ls -p <2>"), b"tricky\n", 0o644);
    write(&ws.join("empty"), b"", 0o644);
    fs::hard_link(ws.join("src/main.rs"), ws.join("hardlink.rs")).unwrap();
    symlink("src/main.rs", &ws.join("link"));
    symlink("/etc", &ws.join("abs"));
    symlink(&format!("{}/end", "d".repeat(70)), &ws.join("long-link"));
    symlink("../x\ny", &ws.join("odd-link"));
    run("mknod", &[ws.join("null").to_str().unwrap(), "c", "1", "3"]);
    write(
        &upper.join("etc/shadowed.conf"),
        b"upper version, longer\n",
        0o600,
    );
    run(
        "mknod",
        &[upper.join("etc/gone.txt").to_str().unwrap(), "c", "0", "0"],
    );
    write(&upper.join("etc/xgone.txt"), b"", 0o644);
    write(&upper.join("etc/dir-to-file"), b"now a file\n", 0o644);
    write(
        &upper.join("etc/file-to-dir/inner"),
        b"upper inner\n",
        0o644,
    );
    write(&upper.join("opt/tool/new.txt"), b"upper new\n", 0o644);
    write(&upper.join("merge/upper-only.txt"), b"upper\n", 0o644);
    write(&upper.join("merge/both/upper.txt"), b"upper\n", 0o644);
    write(
        &upper.join("srv/odd\ndir/in \"q\".txt"),
        b"odd dir\n",
        0o644,
    );
}

fn fixture() -> Fixture {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let lower_root = dir.path().join("lower");
    let upper_root = dir.path().join("upper-disk");
    build_lower(&lower_root);
    build_upper(&upper_root);
    let lower_image = dir.path().join("rootfs.ext4");
    let upper_image = dir.path().join("disk.ext4");
    mkfs(&lower_root, &lower_image);
    mkfs(&upper_root, &upper_image);
    debugfs_write(
        &upper_image,
        "ea_set /upper/opt/tool trusted.overlay.opaque y\n\
         ea_set /upper/etc/xgone.txt trusted.overlay.whiteout y\n\
         ea_set /upper/workspace/empty user.note y\n\
         ea_set /upper/merge trusted.overlay.opaque x\n",
    );
    Fixture {
        _dir: dir,
        disks: OverlayDisks {
            upper_image,
            lower_image,
        },
    }
}

fn paths(entries: &[DiskEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.path.as_str()).collect()
}

fn find<'a>(entries: &'a [DiskEntry], path: &str) -> &'a DiskEntry {
    entries
        .iter()
        .find(|entry| entry.path == path)
        .unwrap_or_else(|| panic!("{path} is not listed: {:?}", paths(entries)))
}

#[test]
fn lists_workspace_children_with_types_modes_sizes_and_targets() {
    let fx = fixture();
    let entries = fx.disks.list("/workspace", false).unwrap();
    assert_eq!(
        paths(&entries),
        [
            "/workspace/a b.txt",
            "/workspace/abs",
            "/workspace/empty",
            "/workspace/hardlink.rs",
            "/workspace/link",
            "/workspace/long-link",
            "/workspace/new\nline",
            "/workspace/null",
            "/workspace/odd-link",
            "/workspace/src",
            "/workspace/x\ndebugfs: ls -p <2>",
            "/workspace/ünï cödé.txt",
        ]
    );
    let a = find(&entries, "/workspace/a b.txt");
    assert_eq!(
        (a.kind, a.mode, a.size, a.link_target.as_deref()),
        (EntryKind::File, 0o754, 12, None)
    );
    let src = find(&entries, "/workspace/src");
    assert_eq!(
        (src.kind, src.mode, src.size),
        (EntryKind::Directory, 0o755, 0)
    );
    let link = find(&entries, "/workspace/link");
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("src/main.rs"));
    assert_eq!(link.size, 11);
    let long = find(&entries, "/workspace/long-link");
    assert_eq!(long.link_target, Some(format!("{}/end", "d".repeat(70))));
    let odd = find(&entries, "/workspace/odd-link");
    assert_eq!(odd.link_target.as_deref(), Some("../x\ny"));
    assert_eq!(find(&entries, "/workspace/null").kind, EntryKind::Other);
    let empty = find(&entries, "/workspace/empty");
    assert_eq!((empty.kind, empty.size), (EntryKind::File, 0));
    assert_eq!(find(&entries, "/workspace/hardlink.rs").size, 13);
}

#[test]
fn lists_recursively_in_tree_order() {
    let fx = fixture();
    let entries = fx.disks.list("/workspace/", true).unwrap();
    let listed = paths(&entries);
    let src = listed.iter().position(|p| *p == "/workspace/src").unwrap();
    assert_eq!(
        listed[src..src + 5],
        [
            "/workspace/src",
            "/workspace/src/main.rs",
            "/workspace/src/nested",
            "/workspace/src/nested/deep.txt",
            "/workspace/x\ndebugfs: ls -p <2>",
        ]
    );
    assert_eq!(listed.len(), 15);
    // Symlinked directories are listed, not entered.
    assert!(!listed.iter().any(|p| p.starts_with("/workspace/abs/")));
    let deep = find(&entries, "/workspace/src/nested/deep.txt");
    assert_eq!((deep.mode, deep.size), (0o640, 5));
}

#[test]
fn merges_layers_with_shadowing_whiteouts_and_opaque_directories() {
    let fx = fixture();
    let etc = fx.disks.list("/etc", false).unwrap();
    assert_eq!(
        paths(&etc),
        [
            "/etc/dir-to-file",
            "/etc/fifo",
            "/etc/file-to-dir",
            "/etc/os-release",
            "/etc/secret-ish",
            "/etc/shadowed.conf",
        ]
    );
    let shadowed = find(&etc, "/etc/shadowed.conf");
    assert_eq!((shadowed.mode, shadowed.size), (0o600, 22));
    assert_eq!(find(&etc, "/etc/dir-to-file").kind, EntryKind::File);
    assert_eq!(find(&etc, "/etc/file-to-dir").kind, EntryKind::Directory);
    assert_eq!(find(&etc, "/etc/fifo").kind, EntryKind::Other);
    assert_eq!(find(&etc, "/etc/os-release").size, 9);

    // An upper directory over a lower file is not merged with anything.
    let inner = fx.disks.list("/etc/file-to-dir", true).unwrap();
    assert_eq!(paths(&inner), ["/etc/file-to-dir/inner"]);

    // The opaque directory hides the lower one's contents.
    let tool = fx.disks.list("/opt", true).unwrap();
    assert_eq!(paths(&tool), ["/opt/tool", "/opt/tool/new.txt"]);

    // Directories merge, recursively; opaque=x is not opaque.
    let merge = fx.disks.list("/merge", true).unwrap();
    assert_eq!(
        paths(&merge),
        [
            "/merge/both",
            "/merge/both/lower.txt",
            "/merge/both/upper.txt",
            "/merge/lower-only.txt",
            "/merge/upper-only.txt",
        ]
    );

    let root = fx.disks.list("/", false).unwrap();
    assert_eq!(
        paths(&root),
        [
            "/etc",
            "/lib",
            "/lost+found",
            "/merge",
            "/opt",
            "/srv",
            "/usr",
            "/workspace"
        ]
    );
    assert_eq!(find(&root, "/lib").link_target.as_deref(), Some("usr/lib"));
    let usr = fx.disks.list("/usr/bin", false).unwrap();
    assert_eq!(usr[0].mode, 0o4755);
}

#[test]
fn a_non_directory_lists_itself() {
    let fx = fixture();
    let entries = fx.disks.list("/workspace/link", true).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path, "/workspace/link");
    assert_eq!(entries[0].kind, EntryKind::Symlink);
    let entries = fx.disks.list("//etc/./os-release", false).unwrap();
    assert_eq!(paths(&entries), ["/etc/os-release"]);
    assert_eq!(entries[0].kind, EntryKind::File);
}

#[test]
fn reads_upper_lower_and_shadowed_files() {
    let fx = fixture();
    let read = fx.disks.read("/workspace/a b.txt", 1 << 20).unwrap();
    assert_eq!(
        read,
        DiskRead {
            size: 12,
            bytes: b"hello upper\n".to_vec(),
            truncated: false
        }
    );
    assert_eq!(
        fx.disks.read("/etc/os-release", 100).unwrap().bytes,
        b"lower os\n"
    );
    assert_eq!(
        fx.disks.read("/etc/shadowed.conf", 100).unwrap().bytes,
        b"upper version, longer\n"
    );
    assert_eq!(
        fx.disks.read("/merge/both/lower.txt", 100).unwrap().bytes,
        b"lower\n"
    );
    assert_eq!(
        fx.disks.read("/etc/file-to-dir/inner", 100).unwrap().bytes,
        b"upper inner\n"
    );
    assert_eq!(
        fx.disks.read("/workspace/new\nline", 100).unwrap().bytes,
        b"newline name\n"
    );
    assert_eq!(
        fx.disks.read("/workspace/ünï cödé.txt", 100).unwrap().bytes,
        "ünï\n".as_bytes()
    );
    assert_eq!(
        fx.disks
            .read("/workspace/x\ndebugfs: ls -p <2>", 100)
            .unwrap()
            .bytes,
        b"tricky\n"
    );
    // Names debugfs cannot take in a command line are still found.
    assert_eq!(
        fx.disks
            .read("/srv/odd\ndir/in \"q\".txt", 100)
            .unwrap()
            .bytes,
        b"odd dir\n"
    );
    let odd = fx.disks.list("/srv/odd\ndir", false).unwrap();
    assert_eq!(paths(&odd), ["/srv/odd\ndir/in \"q\".txt"]);
    let empty = fx.disks.read("/workspace/empty", 100).unwrap();
    assert_eq!(
        (empty.size, empty.bytes.len(), empty.truncated),
        (0, 0, false)
    );
}

#[test]
fn whited_out_and_hidden_files_do_not_exist() {
    let fx = fixture();
    for path in [
        "/etc/gone.txt",
        "/etc/xgone.txt",
        "/opt/tool/data.txt",
        "/opt/tool/bin/run.sh",
        "/etc/dir-to-file/inner",
    ] {
        let err = fx.disks.read(path, 10).unwrap_err();
        match &err {
            DiskError::NotFound { path: asked, .. } => assert_eq!(asked, path),
            DiskError::NotADirectory { prefix, .. } => assert_eq!(prefix, "/etc/dir-to-file"),
            other => panic!("{path}: {other}"),
        }
    }
    let err = fx.disks.list("/opt/tool/bin", false).unwrap_err();
    assert!(matches!(err, DiskError::NotFound { ref missing, .. } if missing == "/opt/tool/bin"));
}

#[test]
fn reads_are_cut_at_max_bytes() {
    let fx = fixture();
    let big = big_contents();
    let read = fx.disks.read("/usr/share/big.bin", 1000).unwrap();
    assert_eq!(read.size, BIG_SIZE as u64);
    assert!(read.truncated);
    assert_eq!(read.bytes, big[..1000]);
    let read = fx.disks.read("/usr/share/big.bin", u64::MAX).unwrap();
    assert!(!read.truncated);
    assert_eq!(read.bytes, big);
    let read = fx
        .disks
        .read("/usr/share/big.bin", BIG_SIZE as u64)
        .unwrap();
    assert!(!read.truncated);
    assert_eq!(read.bytes.len(), BIG_SIZE);
    let read = fx.disks.read("/workspace/a b.txt", 0).unwrap();
    assert_eq!((read.size, read.bytes.len(), read.truncated), (12, 0, true));
    let read = fx.disks.read("/workspace/a b.txt", 5).unwrap();
    assert_eq!(read.bytes, b"hello");
}

#[test]
fn symlinks_are_never_followed() {
    let fx = fixture();
    let err = fx.disks.read("/workspace/link", 100).unwrap_err();
    assert!(
        matches!(&err, DiskError::IsSymlink { target, suggestion, .. }
            if target == "src/main.rs" && suggestion == "/workspace/src/main.rs"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "/workspace/link is a symbolic link to \"src/main.rs\" and is not followed; read /workspace/src/main.rs instead"
    );
    let err = fx.disks.read("/lib/libfoo.so", 100).unwrap_err();
    assert!(
        matches!(&err, DiskError::SymlinkInPath { prefix, suggestion, .. }
            if prefix == "/lib" && suggestion == "/usr/lib/libfoo.so"),
        "{err:?}"
    );
    let err = fx
        .disks
        .list("/workspace/abs/os-release", false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/workspace/abs is a symbolic link to \"/etc\", and symbolic links inside a path are not followed; ask for /etc/os-release instead"
    );
    assert_eq!(
        fx.disks.read("/usr/lib/libfoo.so", 100).unwrap().bytes,
        b"lib\n"
    );
}

#[test]
fn refuses_directories_special_files_missing_paths_and_dot_dot() {
    let fx = fixture();
    let err = fx.disks.read("/workspace", 10).unwrap_err();
    assert!(
        matches!(
            err,
            DiskError::NotAFile {
                kind: "directory",
                ..
            }
        ),
        "{err:?}"
    );
    let err = fx.disks.read("/", 10).unwrap_err();
    assert!(matches!(err, DiskError::NotAFile { .. }), "{err:?}");
    let err = fx.disks.read("/etc/fifo", 10).unwrap_err();
    assert!(matches!(err, DiskError::NotAFile { .. }), "{err:?}");
    let err = fx.disks.read("/workspace/null", 10).unwrap_err();
    assert!(matches!(err, DiskError::NotAFile { .. }), "{err:?}");

    let err = fx.disks.read("/workspace/nope.txt", 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/workspace/nope.txt does not exist on the stopped workspace's disks; list its parent directory to see what is there"
    );
    let err = fx.disks.list("/nope/deeper/x", true).unwrap_err();
    assert!(
        matches!(&err, DiskError::NotFound { path, missing } if path == "/nope/deeper/x" && missing == "/nope"),
        "{err:?}"
    );
    let err = fx.disks.read("/etc/os-release/x", 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/os-release is a regular file, not a directory, so /etc/os-release/x cannot exist; list /etc/os-release to see it"
    );
    for path in ["/workspace/../etc/os-release", "workspace/a", ""] {
        let err = fx.disks.read(path, 10).unwrap_err();
        assert!(
            matches!(err, DiskError::InvalidPath { .. }),
            "{path}: {err:?}"
        );
        let err = fx.disks.list(path, false).unwrap_err();
        assert!(
            matches!(err, DiskError::InvalidPath { .. }),
            "{path}: {err:?}"
        );
    }
}

#[test]
fn a_disk_without_upper_shows_the_environment() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let lower_root = dir.path().join("lower");
    build_lower(&lower_root);
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let disks = OverlayDisks {
        upper_image: dir.path().join("disk.ext4"),
        lower_image: dir.path().join("rootfs.ext4"),
    };
    mkfs(&lower_root, &disks.lower_image);
    mkfs(&empty, &disks.upper_image);
    assert!(disks.list("/workspace", true).unwrap().is_empty());
    assert_eq!(
        disks.read("/etc/gone.txt", 100).unwrap().bytes,
        b"whited out\n"
    );
    let opt = disks.list("/opt", true).unwrap();
    assert_eq!(
        paths(&opt),
        [
            "/opt/tool",
            "/opt/tool/bin",
            "/opt/tool/bin/run.sh",
            "/opt/tool/data.txt"
        ]
    );
    assert_eq!(opt[2].mode, 0o755);
}

#[test]
fn missing_and_broken_images_are_named() {
    let fx = fixture();
    let missing = OverlayDisks {
        upper_image: fx.disks.upper_image.with_file_name("nope.ext4"),
        lower_image: fx.disks.lower_image.clone(),
    };
    let err = missing.list("/workspace", false).unwrap_err();
    assert!(
        matches!(&err, DiskError::ImageMissing { role: "workspace disk", image } if image.ends_with("nope.ext4")),
        "{err:?}"
    );
    let junk: PathBuf = fx.disks.lower_image.with_file_name("junk.ext4");
    fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    let broken = OverlayDisks {
        upper_image: fx.disks.upper_image.clone(),
        lower_image: junk,
    };
    let err = broken.read("/etc/os-release", 10).unwrap_err();
    assert!(
        matches!(
            &err,
            DiskError::Open {
                role: "environment image",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("junk.ext4"), "{err}");
}

#[test]
fn large_directories_list_completely() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let lower_root = dir.path().join("lower");
    let upper_root = dir.path().join("upper-disk");
    fs::create_dir_all(lower_root.join("workspace")).unwrap();
    for i in 0..3000 {
        write(
            &upper_root.join(format!("upper/workspace/d{}/f {i:04}", i % 7)),
            b"x",
            0o644,
        );
    }
    let disks = OverlayDisks {
        upper_image: dir.path().join("disk.ext4"),
        lower_image: dir.path().join("rootfs.ext4"),
    };
    mkfs(&lower_root, &disks.lower_image);
    mkfs(&upper_root, &disks.upper_image);
    let entries = disks.list("/workspace", true).unwrap();
    assert_eq!(entries.len(), 3007);
    assert_eq!(entries[0].path, "/workspace/d0");
    assert_eq!(entries[1].path, "/workspace/d0/f 0000");
    assert_eq!(entries[2].path, "/workspace/d0/f 0007");
}

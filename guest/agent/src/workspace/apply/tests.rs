//! Tests of `ApplyChanges`: writes, deletes and created parents in one
//! transaction, mode and owner handling, every refusal (tree untouched),
//! and rollback after a failure at each step.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pyro_guest_protocol::{ApplyChangesRequest, ApplySummary, GuestErrorKind};

use super::apply_changes;
use crate::workspace::testutil::{kind, message, populated, snapshot, Tar};
use crate::workspace::txn::fault;
use crate::workspace::Failure;

fn apply(
    root: &Path,
    archive: &[u8],
    deletes: &[&str],
    keep: bool,
) -> Result<ApplySummary, Failure> {
    let mut upload = archive;
    apply_changes(
        &ApplyChangesRequest {
            root: root.to_string_lossy().into_owned(),
            deletes: deletes.iter().map(|d| (*d).to_owned()).collect(),
            keep_existing_modes: keep,
        },
        &mut upload,
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn writes_deletes_and_creates_parents_together() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    populated(root);
    chmod(&root.join("over.txt"), 0o755);
    std::os::unix::fs::chown(root.join("over.txt"), Some(1234), Some(4321)).unwrap();
    let before = snapshot(root);
    let archive = Tar::new()
        .file("over.txt", b"patched\n", 0o644, 0)
        .file("new/dir/c.txt", b"created\n", 0o640, 1_600_000_000)
        .file("sub/zero-mode", b"z", 0, 0)
        .finish();
    let summary = apply(root, &archive, &["keep.txt", "alias"], true).unwrap();
    assert_eq!(summary.files_written, 3);
    assert_eq!(summary.files_deleted, 2);
    assert_eq!(summary.dirs_created, 2);
    assert_eq!(summary.bytes_written, 8 + 8 + 1);

    let after = snapshot(root);
    assert_eq!(after["over.txt"].content, b"patched\n");
    // Kept its mode (with keep_existing_modes) and its owner.
    assert_eq!(after["over.txt"].mode, 0o755);
    assert_eq!(after["over.txt"].uid, 1234);
    assert_eq!(
        std::fs::metadata(root.join("over.txt")).unwrap().gid(),
        4321
    );
    assert_eq!(after["new/dir/c.txt"].mode, 0o640);
    assert_eq!(after["new/dir/c.txt"].mtime, (1_600_000_000, 0));
    assert_eq!(after["new/dir"].mode, 0o755);
    assert_eq!(after["sub/zero-mode"].mode, 0o644);
    assert!(!after.contains_key("keep.txt"));
    assert!(!after.contains_key("alias"));
    assert_eq!(after["sub/old.txt"], before["sub/old.txt"]);
    assert_eq!(after["link"], before["link"]);
    assert!(!after.keys().any(|k| k.contains(".pyro-stage")));
}

#[test]
fn without_keep_existing_modes_the_member_mode_wins() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    chmod(&dir.path().join("over.txt"), 0o755);
    let archive = Tar::new().file("over.txt", b"x", 0o600, 0).finish();
    apply(dir.path(), &archive, &[], false).unwrap();
    assert_eq!(mode(&dir.path().join("over.txt")), 0o600);
}

#[test]
fn every_refusal_leaves_the_tree_untouched() {
    let good = || Tar::new().file("fresh.txt", b"fresh", 0o644, 0);
    use tar::EntryType as T;
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, GuestErrorKind)> = vec![
        (
            "write through a symlinked parent",
            good().file("link/x", b"x", 0o644, 0).finish(),
            vec![],
            GuestErrorKind::Refused,
        ),
        (
            "write over a symlink",
            good().file("alias", b"x", 0o644, 0).finish(),
            vec![],
            GuestErrorKind::WrongType,
        ),
        (
            "write over a directory",
            good().file("sub", b"x", 0o644, 0).finish(),
            vec![],
            GuestErrorKind::WrongType,
        ),
        (
            "write below a file",
            good().file("keep.txt/x", b"x", 0o644, 0).finish(),
            vec![],
            GuestErrorKind::WrongType,
        ),
        (
            "delete a missing file",
            good().finish(),
            vec!["nope"],
            GuestErrorKind::NotFound,
        ),
        (
            "delete a directory",
            good().finish(),
            vec!["sub"],
            GuestErrorKind::WrongType,
        ),
        (
            "delete through a symlinked parent",
            good().finish(),
            vec!["link/old.txt"],
            GuestErrorKind::Refused,
        ),
        (
            "delete with dotdot",
            good().finish(),
            vec!["../x"],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "delete twice",
            good().finish(),
            vec!["keep.txt", "./keep.txt"],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "write twice",
            good().file("fresh.txt", b"again", 0o644, 0).finish(),
            vec![],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "write and delete",
            good().finish(),
            vec!["fresh.txt"],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "a symlink member",
            good().symlink("s", "keep.txt").finish(),
            vec![],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "a directory member",
            good().dir("d", 0o755, 0).finish(),
            vec![],
            GuestErrorKind::InvalidRequest,
        ),
        (
            "dotdot member",
            good().raw(b"../evil", T::Regular, b"", b"x").finish(),
            vec![],
            GuestErrorKind::Refused,
        ),
        (
            "absolute member",
            good().raw(b"/evil", T::Regular, b"", b"x").finish(),
            vec![],
            GuestErrorKind::Refused,
        ),
        (
            "garbage",
            vec![0x33; 1024],
            vec![],
            GuestErrorKind::InvalidRequest,
        ),
    ];
    for (name, archive, deletes, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        populated(&root);
        let before = snapshot(dir.path());
        let failure = apply(&root, &archive, &deletes, true).unwrap_err();
        assert_eq!(kind(&failure), expected, "{name}: {}", message(&failure));
        let text = message(&failure);
        assert!(!text.starts_with(char::is_uppercase), "{name}: {text}");
        assert_eq!(snapshot(dir.path()), before, "{name}: the tree changed");
    }
}

#[test]
fn the_root_must_be_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
    let archive = Tar::new().file("a", b"a", 0o644, 0).finish();
    for (name, expected) in [
        ("l", GuestErrorKind::Refused),
        ("nope", GuestErrorKind::NotFound),
    ] {
        let failure = apply(&dir.path().join(name), &archive, &[], true).unwrap_err();
        assert_eq!(kind(&failure), expected, "{name}");
    }
    assert!(std::fs::read_dir(dir.path().join("d"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_failure_at_any_step_restores_the_old_tree() {
    let archive = Tar::new()
        .file("over.txt", b"patched", 0o644, 0)
        .file("sub/new.txt", b"new", 0o644, 0)
        .file("a/b/c.txt", b"deep", 0o644, 0)
        .finish();
    let mut step = 1;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        populated(&root);
        let before = snapshot(dir.path());
        fault::fail_at_step(Some(step));
        let result = apply(&root, &archive, &["keep.txt", "sub/old.txt"], true);
        fault::fail_at_step(None);
        match result {
            Err(failure) => {
                assert_eq!(kind(&failure), GuestErrorKind::Io, "step {step}");
                assert_eq!(snapshot(dir.path()), before, "step {step}: not restored");
            }
            Ok(summary) => {
                // 2 directories, 3 writes (one replacing), 2 deletes.
                assert_eq!(step, 2 + 4 + 2 + 1);
                assert_eq!(summary.files_deleted, 2);
                break;
            }
        }
        step += 1;
    }
}

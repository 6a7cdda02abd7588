//! Tests of `PutArchive` on host temporary directories: extraction, merges,
//! preserved modes, mtimes and links, every refusal (tree untouched), and
//! rollback after a failure at each step of the commit.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pyro_guest_protocol::{ArchiveSummary, GuestErrorKind, PutArchiveRequest};

use super::put_archive;
use crate::workspace::testutil::{kind, message, populated, snapshot, Tar};
use crate::workspace::txn::fault;
use crate::workspace::Failure;

fn put(destination: &Path, archive: &[u8]) -> Result<ArchiveSummary, Failure> {
    let mut upload = archive;
    put_archive(
        &PutArchiveRequest {
            destination: destination.to_string_lossy().into_owned(),
        },
        &mut upload,
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn mtime(path: &Path) -> i64 {
    std::fs::symlink_metadata(path).unwrap().mtime()
}

#[test]
fn extracts_into_a_missing_destination_with_modes_mtimes_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("a/b/dest");
    let archive = Tar::new()
        .dir("src", 0o750, 1_600_000_100)
        .file("src/main.rs", b"fn main() {}\n", 0o644, 1_600_000_200)
        .file("run.sh", b"#!/bin/sh\necho hi\n", 0o755, 1_600_000_300)
        .file("secret", b"s", 0o600, 1_600_000_400)
        .file("deep/er/x.txt", b"implicit parents", 0o640, 1_600_000_500)
        .symlink("main", "src/main.rs")
        .symlink("up", "deep/..")
        .hard_link("run-again.sh", "run.sh")
        .finish();
    let summary = put(&destination, &archive).unwrap();
    assert_eq!(summary.entry_count, 8);
    assert_eq!(summary.content_bytes, 13 + 18 + 1 + 16);
    assert_eq!(summary.archive_bytes, archive.len() as u64);

    assert_eq!(
        std::fs::read(destination.join("run.sh")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode(&destination.join("run.sh")), 0o755);
    assert_eq!(mode(&destination.join("secret")), 0o600);
    assert_eq!(mode(&destination.join("deep/er/x.txt")), 0o640);
    assert_eq!(mode(&destination.join("src")), 0o750);
    assert_eq!(mode(&destination.join("deep")), 0o755);
    assert_eq!(mode(&destination), 0o755);
    assert_eq!(mtime(&destination.join("src/main.rs")), 1_600_000_200);
    assert_eq!(mtime(&destination.join("src")), 1_600_000_100);
    assert_eq!(mtime(&destination.join("run.sh")), 1_600_000_300);
    assert_eq!(
        std::fs::read_link(destination.join("main")).unwrap(),
        Path::new("src/main.rs")
    );
    assert_eq!(mtime(&destination.join("main")), 1_600_000_000);
    let ino = |p: &str| std::fs::metadata(destination.join(p)).unwrap().ino();
    assert_eq!(ino("run.sh"), ino("run-again.sh"));

    // Parents were created, and no staging directory is left anywhere.
    for level in [dir.path(), &dir.path().join("a"), &dir.path().join("a/b")] {
        let names: Vec<_> = std::fs::read_dir(level)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".pyro-stage")),
            "{names:?}"
        );
    }
}

#[test]
fn merges_into_an_existing_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    populated(root);
    let before = snapshot(root);
    let archive = Tar::new()
        .file("over.txt", b"new contents\n", 0o755, 1_600_000_000)
        .dir("sub", 0o700, 1_600_000_001)
        .file("sub/new.txt", b"new\n", 0o644, 1_600_000_002)
        // A symlink replaces a file, and a file replaces a symlink.
        .symlink("keep-link", "keep.txt")
        .file("alias", b"now a file", 0o644, 1_600_000_003)
        .finish();
    put(root, &archive).unwrap();
    let after = snapshot(root);

    assert_eq!(after["keep.txt"], before["keep.txt"]);
    assert_eq!(after["sub/old.txt"], before["sub/old.txt"]);
    assert_eq!(after["sub/deep/x"], before["sub/deep/x"]);
    assert_eq!(after["link"], before["link"]);
    assert_eq!(after["over.txt"].content, b"new contents\n");
    assert_eq!(after["over.txt"].mode, 0o755);
    assert_eq!(after["sub/new.txt"].content, b"new\n");
    assert_eq!(after["sub"].mode, 0o700);
    assert_eq!(after["sub"].mtime, (1_600_000_001, 0));
    assert_eq!(after["alias"].kind, "file");
    assert_eq!(after["keep-link"].link.as_deref(), Some("keep.txt"));
    assert!(!after.keys().any(|k| k.contains(".pyro-stage")));
}

#[test]
fn later_members_win_and_root_and_global_headers_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Tar::new()
        .raw(
            b"pax_global_header",
            tar::EntryType::XGlobalHeader,
            b"",
            b"20 comment=abcdefg\n\n",
        )
        .dir("./", 0o700, 1)
        .file("a", b"first", 0o644, 1_600_000_000)
        .file("./a", b"second", 0o600, 1_600_000_000)
        .finish();
    let summary = put(dir.path(), &archive).unwrap();
    assert_eq!(summary.entry_count, 2);
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"second");
    assert_eq!(mode(&dir.path().join("a")), 0o600);
    // The destination's own mode is left alone.
    assert_ne!(mode(dir.path()), 0o700);
}

#[test]
fn pax_mtimes_keep_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Tar::new()
        .pax("mtime", "1700000000.123456789")
        .file("precise", b"x", 0o644, 1_700_000_000)
        .finish();
    put(dir.path(), &archive).unwrap();
    let meta = std::fs::metadata(dir.path().join("precise")).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_700_000_000, 123_456_789)
    );
    assert_eq!(
        super::parse_pax_time("-1.25"),
        Some(crate::workspace::files::Stamp {
            secs: -2,
            nanos: 750_000_000
        })
    );
}

/// Archives that must be refused, each after a valid member (so staging
/// has started) and each against the same populated tree.
fn hostile_archives() -> Vec<(&'static str, Vec<u8>, GuestErrorKind)> {
    let good = || Tar::new().file("fresh.txt", b"fresh", 0o644, 1_600_000_000);
    use tar::EntryType as T;
    vec![
        (
            "absolute member",
            good().raw(b"/etc/evil", T::Regular, b"", b"x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "dotdot member",
            good().raw(b"../evil", T::Regular, b"", b"x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "inner dotdot",
            good()
                .raw(b"sub/../../evil", T::Regular, b"", b"x")
                .finish(),
            GuestErrorKind::Refused,
        ),
        (
            "empty name",
            good().raw(b"", T::Regular, b"", b"x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "char device",
            good().raw(b"null", T::Char, b"", b"").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "block device",
            good().raw(b"disk", T::Block, b"", b"").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "fifo",
            good().raw(b"pipe", T::Fifo, b"", b"").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "hard link outside",
            good().hard_link("h", "/etc/passwd").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "hard link to existing file",
            good().hard_link("h", "keep.txt").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "hard link forward",
            good()
                .hard_link("h", "later")
                .file("later", b"l", 0o644, 1)
                .finish(),
            GuestErrorKind::Refused,
        ),
        (
            "hard link to dotdot",
            good().hard_link("h", "../x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "absolute symlink",
            good().symlink("s", "/etc/passwd").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "escaping symlink",
            good().symlink("sub/s", "../../x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "symlink escaping through another symlink member",
            good()
                .symlink("sub/a", "..")
                .symlink("sub/b", "a/../x")
                .finish(),
            GuestErrorKind::Refused,
        ),
        (
            "symlink escaping through an existing absolute symlink",
            good().symlink("s", "out/x").finish(),
            GuestErrorKind::Refused,
        ),
        (
            "member through a symlink member",
            good()
                .symlink("l", "sub")
                .file("l/x", b"x", 0o644, 1)
                .finish(),
            GuestErrorKind::Refused,
        ),
        (
            "member through an existing symlink",
            good().file("link/x", b"x", 0o644, 1).finish(),
            GuestErrorKind::Refused,
        ),
        (
            "directory over a file",
            good().dir("keep.txt", 0o755, 1).finish(),
            GuestErrorKind::WrongType,
        ),
        (
            "file over a directory",
            good().file("sub", b"x", 0o644, 1).finish(),
            GuestErrorKind::WrongType,
        ),
        (
            "member below a file member",
            good()
                .file("f", b"x", 0o644, 1)
                .file("f/g", b"x", 0o644, 1)
                .finish(),
            GuestErrorKind::InvalidRequest,
        ),
        (
            "file and directory at one path",
            good().dir("d", 0o755, 1).file("d", b"x", 0o644, 1).finish(),
            GuestErrorKind::InvalidRequest,
        ),
        ("garbage", vec![0x55; 2048], GuestErrorKind::InvalidRequest),
        (
            "truncated",
            {
                let mut bytes = good().file("big", &vec![1u8; 10_000], 0o644, 1).finish();
                bytes.truncate(3000);
                bytes
            },
            GuestErrorKind::InvalidRequest,
        ),
    ]
}

#[test]
fn every_refusal_leaves_the_tree_untouched() {
    for (name, archive, expected) in hostile_archives() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        populated(&root);
        std::os::unix::fs::symlink("/tmp", root.join("out")).unwrap();
        crate::workspace::testutil::set_mtime(&root.join("out"), 1_500_000_000);
        crate::workspace::testutil::set_mtime(&root, 1_500_000_000);
        let before = snapshot(dir.path());
        let failure = put(&root, &archive).unwrap_err();
        assert_eq!(kind(&failure), expected, "{name}: {}", message(&failure));
        let text = message(&failure);
        assert!(!text.starts_with(char::is_uppercase), "{name}: {text}");
        assert!(!text.ends_with('.'), "{name}: {text}");
        assert_eq!(snapshot(dir.path()), before, "{name}: the tree changed");
    }
}

#[test]
fn bad_destinations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    let archive = Tar::new().file("a", b"a", 0o644, 1).finish();
    let cases = [
        (dir.path().join("link"), GuestErrorKind::Refused),
        (dir.path().join("link/sub"), GuestErrorKind::Refused),
        (dir.path().join("file"), GuestErrorKind::WrongType),
        (dir.path().join("file/sub"), GuestErrorKind::WrongType),
    ];
    for (destination, expected) in cases {
        let failure = put(&destination, &archive).unwrap_err();
        assert_eq!(kind(&failure), expected, "{}", destination.display());
    }
    let mut upload: &[u8] = &archive;
    let failure = put_archive(
        &PutArchiveRequest {
            destination: "relative/dir".into(),
        },
        &mut upload,
    )
    .unwrap_err();
    assert_eq!(kind(&failure), GuestErrorKind::InvalidRequest);
    assert!(message(&failure).contains("not absolute"));
    assert!(std::fs::read_dir(dir.path().join("real"))
        .unwrap()
        .next()
        .is_none());
}

fn merge_archive() -> Vec<u8> {
    Tar::new()
        .file("over.txt", b"replaced", 0o755, 1_600_000_000)
        .file("alias", b"file now", 0o644, 1_600_000_000)
        .dir("sub", 0o700, 1_600_000_001)
        .file("sub/new.txt", b"new", 0o644, 1_600_000_002)
        .dir("sub/deep", 0o711, 1_600_000_003)
        .file("sub/deep/x", b"replaced x", 0o644, 1_600_000_004)
        .file("brand/new/tree.txt", b"tree", 0o644, 1_600_000_005)
        .finish()
}

#[test]
fn a_failure_at_any_commit_step_restores_the_old_tree() {
    let mut step = 1;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir(&root).unwrap();
        populated(&root);
        let before = snapshot(dir.path());
        fault::fail_at_step(Some(step));
        let result = put(&root, &merge_archive());
        fault::fail_at_step(None);
        match result {
            Err(failure) => {
                assert_eq!(kind(&failure), GuestErrorKind::Io, "step {step}");
                assert!(message(&failure).contains("injected failure"));
                assert_eq!(snapshot(dir.path()), before, "step {step}: not restored");
            }
            Ok(_) => {
                // Past the last step: the change went through.
                assert!(step > 5, "only {step} steps");
                assert_eq!(
                    std::fs::read(root.join("sub/deep/x")).unwrap(),
                    b"replaced x"
                );
                break;
            }
        }
        step += 1;
    }
}

#[test]
fn a_failed_undo_is_reported_and_keeps_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir(&root).unwrap();
    populated(&root);
    // Steps: alias aside, alias in, brand in, over.txt aside, over.txt in.
    fault::fail_at_step(Some(5));
    fault::fail_undo(true);
    let result = put(&root, &merge_archive());
    fault::fail_at_step(None);
    fault::fail_undo(false);
    let failure = result.unwrap_err();
    assert_eq!(kind(&failure), GuestErrorKind::PartiallyApplied);
    let text = message(&failure);
    assert!(text.contains("injected failure"), "{text}");
    assert!(text.contains("replaced originals are kept in"), "{text}");
    // The replaced over.txt is still there, in the staging directory.
    let stage = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".pyro-stage")
        })
        .unwrap();
    let kept: Vec<Vec<u8>> = std::fs::read_dir(stage.join("aside"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(kept.contains(&b"old contents\n".to_vec()), "{kept:?}");
}

#[test]
fn long_names_and_link_targets_are_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("{}/{}", "..", long_name);
    let archive = Tar::new()
        .file(&long_name, b"long", 0o644, 1_600_000_000)
        .symlink(&format!("{long_dir}/l"), &long_target)
        .finish();
    put(dir.path(), &archive).unwrap();
    assert_eq!(std::fs::read(dir.path().join(&long_name)).unwrap(), b"long");
    assert_eq!(
        std::fs::read_link(dir.path().join(format!("{long_dir}/l"))).unwrap(),
        Path::new(&long_target)
    );
}

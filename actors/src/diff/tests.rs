//! Tests of the diff module: classification, counts, and the round trip
//! through `patch apply` (a property test) and through real `git apply`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::*;
use crate::patch::{FileState, Patch};

fn file(path: &str, content: &[u8], mode: u32) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        kind: EntryKind::File,
        mode,
        size: content.len() as u64,
        mtime: 0,
        sha256: Some(Sha256::digest(content).into()),
        link_target: None,
    }
}

fn dir(path: &str) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        kind: EntryKind::Directory,
        mode: 0o755,
        size: 0,
        mtime: 0,
        sha256: None,
        link_target: None,
    }
}

fn symlink(path: &str, target: &str) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        kind: EntryKind::Symlink,
        mode: 0o777,
        size: 0,
        mtime: 0,
        sha256: None,
        link_target: Some(target.to_owned()),
    }
}

type Tree = BTreeMap<String, FileState>;

/// The manifest of a tree of files, with the directories they imply.
fn manifest(tree: &Tree) -> Vec<ManifestEntry> {
    let mut entries: Vec<ManifestEntry> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, state) in tree {
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            prefix = parent;
        }
        entries.push(file(path, &state.content, state.mode));
    }
    entries.extend(dirs.iter().map(|path| dir(path)));
    entries
}

fn report_between(old: &Tree, new: &Tree) -> DiffReport {
    let changes = compare(&manifest(old), &manifest(new));
    build_report(changes, |side, entry| {
        let tree = match side {
            Side::Old => old,
            Side::New => new,
        };
        Ok::<_, Infallible>(tree[&entry.path].content.clone())
    })
    .unwrap()
}

fn apply(patch: &str, tree: &Tree) -> Tree {
    let mut result = tree.clone();
    if patch.is_empty() {
        return result;
    }
    let applied = Patch::parse(patch)
        .unwrap_or_else(|e| panic!("{e}\n{patch}"))
        .apply(tree)
        .unwrap_or_else(|e| panic!("{e}\n{patch}"));
    for file in applied {
        match file.result {
            Some(state) => result.insert(file.path, state),
            None => result.remove(&file.path),
        };
    }
    result
}

fn state(content: &str, mode: u32) -> FileState {
    FileState {
        content: content.as_bytes().to_vec(),
        mode,
    }
}

#[test]
fn every_kind_of_change_is_classified() {
    let old = vec![
        file("same.txt", b"same", 0o644),
        file("edited.txt", b"one", 0o644),
        file("chmod.sh", b"run", 0o644),
        file("removed.txt", b"bye", 0o644),
        symlink("link", "a"),
        symlink("retarget", "a"),
        file("became-dir", b"x", 0o644),
        dir("became-dir-leaf"),
        dir("full"),
        file("full/inner.txt", b"i", 0o644),
        dir("empty-old"),
        dir("locked"),
    ];
    let mut locked = dir("locked");
    locked.mode = 0o700;
    let new = vec![
        file("same.txt", b"same", 0o644),
        file("edited.txt", b"two", 0o644),
        file("chmod.sh", b"run", 0o755),
        symlink("link", "a"),
        symlink("retarget", "b"),
        dir("became-dir"),
        file("became-dir/child", b"c", 0o644),
        file("became-dir-leaf", b"", 0o644),
        dir("new-empty"),
        dir("new-full"),
        file("new-full/f", b"f", 0o644),
        locked,
    ];
    let changes = compare(&old, &new);
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("became-dir", "type_changed"),
            ("became-dir-leaf", "type_changed"),
            ("became-dir/child", "added"),
            ("chmod.sh", "modified"),
            ("edited.txt", "modified"),
            ("empty-old", "deleted"),
            ("full/inner.txt", "deleted"),
            ("locked", "modified"),
            ("new-empty", "added"),
            ("new-full/f", "added"),
            ("removed.txt", "deleted"),
            ("retarget", "modified"),
        ]
    );
    let chmod = &changes[3];
    assert!(chmod.mode_changed() && !chmod.content_changed());
    let edited = &changes[4];
    assert!(!edited.mode_changed() && edited.content_changed());
    assert_eq!(changes[0].artifact_type(), EntryKind::Directory);
    assert_eq!(changes[10].artifact_type(), EntryKind::File);
}

#[test]
fn summary_counts_text_binary_and_mode_only_changes() {
    let old = vec![
        file("text.txt", b"a\n", 0o644),
        file("blob.bin", b"\0\x01", 0o644),
        file("latin1.txt", b"caf\xe9\n", 0o644),
        file("exec.sh", b"echo\n", 0o644),
        file("big.log", b"", 0o644),
    ];
    let mut big = file("big.log", b"", 0o644);
    big.size = MAX_TEXT_PATCH_BYTES + 1;
    big.sha256 = Some([1; 32]);
    let new = vec![
        file("text.txt", b"b\n", 0o644),
        file("blob.bin", b"\0\x02", 0o644),
        file("latin1.txt", b"caf\xe8\n", 0o644),
        file("exec.sh", b"echo\n", 0o755),
        big,
        symlink("link", "text.txt"),
    ];
    let contents: BTreeMap<(bool, &str), &[u8]> = [
        ((false, "text.txt"), &b"a\n"[..]),
        ((true, "text.txt"), b"b\n"),
        ((false, "blob.bin"), b"\0\x01"),
        ((true, "blob.bin"), b"\0\x02"),
        ((false, "latin1.txt"), b"caf\xe9\n"),
        ((true, "latin1.txt"), b"caf\xe8\n"),
    ]
    .into();
    let mut reads = Vec::new();
    let report = build_report(compare(&old, &new), |side, entry| {
        reads.push((side, entry.path.clone()));
        let key = (side == Side::New, entry.path.as_str());
        contents
            .get(&key)
            .map(|bytes| bytes.to_vec())
            .ok_or_else(|| format!("unexpected read of {key:?}"))
    })
    .unwrap();
    assert_eq!(
        report.summary,
        DiffSummary {
            total: 6,
            added: 1,
            modified: 5,
            deleted: 0,
            type_changed: 0,
            text_patched: 2,
            non_text: 4,
        }
    );
    assert_eq!(
        reads.len(),
        6,
        "mode-only, symlink and oversized entries read nothing"
    );
    assert_eq!(
        report.patch,
        "diff --git a/exec.sh b/exec.sh\nold mode 100644\nnew mode 100755\n\
         diff --git a/text.txt b/text.txt\n--- a/text.txt\n+++ b/text.txt\n@@ -1 +1 @@\n-a\n+b\n"
    );
    let blob = report
        .entries
        .iter()
        .find(|e| e.change.path == "blob.bin")
        .unwrap();
    assert_eq!(blob.text_patch, None);
}

#[test]
fn read_errors_are_passed_through() {
    let old = vec![file("f", b"1\n", 0o644)];
    let new = vec![file("f", b"2\n", 0o644)];
    let result = build_report(compare(&old, &new), |_, entry| {
        Err(format!("guest lost {}", entry.path))
    });
    assert_eq!(result.unwrap_err(), "guest lost f");
}

#[test]
fn identical_trees_have_no_changes() {
    let tree: Tree = [("a/b.txt".to_owned(), state("x\n", 0o644))].into();
    let report = report_between(&tree, &tree);
    assert_eq!(report, DiffReport::default());
}

#[test]
fn our_patches_apply_with_real_git_too() {
    let old: Tree = [
        (
            "multi.txt".to_owned(),
            state(
                &(1..=40).map(|n| format!("{n}\n")).collect::<String>(),
                0o644,
            ),
        ),
        ("gone.txt".to_owned(), state("gone\n", 0o644)),
        ("no newline.txt".to_owned(), state("a\nb", 0o644)),
        ("say \"hi\".txt".to_owned(), state("hi\n", 0o644)),
        ("caf\u{e9}/menu.txt".to_owned(), state("tea\n", 0o644)),
        ("tool.sh".to_owned(), state("#!/bin/sh\n", 0o644)),
        ("emptied.txt".to_owned(), state("x\n", 0o644)),
    ]
    .into();
    let mut new = old.clone();
    new.insert(
        "multi.txt".into(),
        state(
            &(1..=40)
                .map(|n| match n {
                    2 => "two\n".to_owned(),
                    20 => "twenty\nand more\n".to_owned(),
                    39 => String::new(),
                    n => format!("{n}\n"),
                })
                .collect::<String>(),
            0o644,
        ),
    );
    new.remove("gone.txt");
    new.insert("no newline.txt".into(), state("a\nb\nc", 0o644));
    new.insert("say \"hi\".txt".into(), state("hello\n", 0o644));
    new.insert("caf\u{e9}/menu.txt".into(), state("coffee\n", 0o644));
    new.insert("tool.sh".into(), state("#!/bin/sh\n", 0o755));
    new.insert("emptied.txt".into(), state("", 0o644));
    new.insert("added/new.txt".into(), state("fresh\n", 0o755));
    new.insert("added/empty.txt".into(), state("", 0o644));
    let report = report_between(&old, &new);
    assert_eq!(apply(&report.patch, &old), new);

    let temp = TempDir::new().unwrap();
    let repo = temp.path();
    for (path, file) in &old {
        let full = repo.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, &file.content).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode)).unwrap();
    }
    fs::write(repo.join("our.patch"), &report.patch).unwrap();
    let output = Command::new("git")
        .args(["apply", "--verbose", "our.patch"])
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git apply refused our patch: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        report.patch
    );
    for (path, file) in &new {
        assert_eq!(fs::read(repo.join(path)).unwrap(), file.content, "{path}");
        let mode = fs::metadata(repo.join(path)).unwrap().permissions().mode() & 0o777;
        // git only knows 644 and 755.
        assert_eq!(mode & 0o100, file.mode & 0o100, "{path}");
    }
    assert!(!repo.join("gone.txt").exists());
}

/// File contents made of a few repeated lines (so diffs have ambiguous
/// context) with or without a final newline.
fn content() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["alpha", "beta", "gamma", "", " spaced", "\\ back"]),
            0..14,
        ),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline)| {
            let mut text = lines.join("\n");
            if final_newline && !lines.is_empty() {
                text.push('\n');
            }
            text
        })
}

fn tree() -> impl Strategy<Value = Tree> {
    let path = prop::sample::select(vec![
        "a.txt",
        "b",
        "d/c.txt",
        "d/e f.txt",
        "q\"uote",
        "caf\u{e9}",
        "d/g/h",
    ]);
    let mode = prop::sample::select(vec![0o644u32, 0o755, 0o600]);
    prop::collection::btree_map(path, (content(), mode), 0..6).prop_map(|files| {
        files
            .into_iter()
            .map(|(path, (text, mode))| (path.to_owned(), state(&text, mode)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn applying_the_diff_of_two_trees_gives_the_second(old in tree(), new in tree()) {
        let report = report_between(&old, &new);
        prop_assert_eq!(apply(&report.patch, &old), new.clone());
        let files_changed = report
            .entries
            .iter()
            .filter(|e| e.change.artifact_type() == EntryKind::File)
            .count();
        prop_assert_eq!(report.summary.text_patched, files_changed);
        prop_assert_eq!(report.summary.non_text, 0);
    }

    #[test]
    fn single_file_patches_round_trip(old in content(), new in content()) {
        let before: Tree = [("f".to_owned(), state(&old, 0o644))].into();
        let after: Tree = [("f".to_owned(), state(&new, 0o644))].into();
        let patch = unified_file_patch(
            "f",
            Some(FileSide { text: &old, mode: 0o644 }),
            Some(FileSide { text: &new, mode: 0o644 }),
        );
        prop_assert_eq!(apply(&patch, &before), after);
    }
}

#[test]
fn a_patch_of_plain_text_changes_has_no_git_headers() {
    let old = vec![file("a.txt", b"1\n", 0o644), file("b.txt", b"x\n", 0o644)];
    let new = vec![file("a.txt", b"2\n", 0o644), file("b.txt", b"y\n", 0o644)];
    let contents: BTreeMap<(bool, &str), &[u8]> = [
        ((false, "a.txt"), &b"1\n"[..]),
        ((true, "a.txt"), b"2\n"),
        ((false, "b.txt"), b"x\n"),
        ((true, "b.txt"), b"y\n"),
    ]
    .into();
    let report = build_report(compare(&old, &new), |side, entry| {
        let key = (side == Side::New, entry.path.as_str());
        contents
            .get(&key)
            .map(|bytes| bytes.to_vec())
            .ok_or_else(|| format!("unexpected read of {key:?}"))
    })
    .unwrap();
    assert_eq!(
        report.patch,
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-1\n+2\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-x\n+y\n"
    );
    assert_eq!(
        report.entries[0].text_patch.as_deref(),
        Some("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-1\n+2\n")
    );
}

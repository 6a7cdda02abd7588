//! Tests of `patch apply`: patches made by real `git diff` and `diff -u`
//! reproduce the changed trees exactly; failures apply nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=pyro",
            "-c",
            "user.email=pyro@example.invalid",
        ])
        .args(["-c", "core.autocrlf=false", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Every regular file below `root` (skipping `.git`), with its mode.
fn snapshot(root: &Path) -> BTreeMap<String, FileState> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                files.insert(
                    relative,
                    FileState {
                        content: fs::read(&path).unwrap(),
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    files
}

fn write(root: &Path, path: &str, content: &str, mode: u32) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Applies `patch` to `before` and returns the whole resulting tree.
fn apply_to_tree(
    patch: &str,
    before: &BTreeMap<String, FileState>,
) -> Result<BTreeMap<String, FileState>, PatchError> {
    let parsed = Patch::parse(patch)?;
    let mut after = before.clone();
    for file in parsed.apply(before)? {
        match file.result {
            Some(state) => after.insert(file.path, state),
            None => after.remove(&file.path),
        };
    }
    Ok(after)
}

fn numbered(count: usize) -> String {
    (1..=count).map(|n| format!("line {n}\n")).collect()
}

/// A repository whose working tree differs from its commit in every way
/// `git diff` can show for regular files; returns the tree before and after.
fn changed_repository(repo: &Path) -> (BTreeMap<String, FileState>, BTreeMap<String, FileState>) {
    git(repo, &["init", "-q"]);
    write(repo, "multi.txt", &numbered(60), 0o644);
    write(repo, "gone.txt", "this file\nwill be deleted\n", 0o644);
    write(repo, "script.sh", "#!/bin/sh\necho hi\n", 0o644);
    write(repo, "mode-only.sh", "#!/bin/sh\ntrue\n", 0o644);
    write(repo, "no-newline.txt", "a\nb\nc", 0o644);
    write(repo, "gains-newline.txt", "x\ny", 0o644);
    write(repo, "loses-newline.txt", "p\nq\n", 0o644);
    write(
        repo,
        "dir with space/caf\u{e9} file.txt",
        "one\ntwo\n",
        0o644,
    );
    write(repo, "becomes-empty.txt", "content\n", 0o644);
    write(repo, "crlf.txt", "one\r\ntwo\r\n", 0o644);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "before"]);
    let before = snapshot(repo);

    let mut multi: Vec<String> = numbered(60).lines().map(str::to_owned).collect();
    multi[2] = "line three, changed".into();
    multi.insert(20, "inserted after 20".into());
    multi.remove(45);
    multi[58] = "near the end".into();
    write(repo, "multi.txt", &(multi.join("\n") + "\n"), 0o644);
    fs::remove_file(repo.join("gone.txt")).unwrap();
    write(repo, "script.sh", "#!/bin/sh\necho hello\n", 0o755);
    fs::set_permissions(repo.join("mode-only.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(repo, "no-newline.txt", "a\nB\nc", 0o644);
    write(repo, "gains-newline.txt", "x\ny\n", 0o644);
    write(repo, "loses-newline.txt", "p\nq", 0o644);
    write(repo, "dir with space/caf\u{e9} file.txt", "one\n2\n", 0o644);
    write(repo, "becomes-empty.txt", "", 0o644);
    write(repo, "crlf.txt", "one\r\nTWO\r\n", 0o644);
    write(repo, "added.txt", "brand\nnew\n", 0o644);
    write(repo, "bin/added-exec.sh", "#!/bin/sh\nexit 0\n", 0o755);
    write(repo, "added-empty.txt", "", 0o644);
    git(repo, &["add", "-A"]);
    (before, snapshot(repo))
}

#[test]
fn real_git_diff_output_reproduces_the_changed_tree() {
    let temp = TempDir::new().unwrap();
    let (before, after) = changed_repository(temp.path());
    for flags in [
        &["diff", "--cached", "--no-renames"][..],
        &[
            "-c",
            "core.quotePath=false",
            "diff",
            "--cached",
            "--no-renames",
        ],
        &["diff", "--cached", "--no-renames", "--no-prefix"],
        &["diff", "--cached", "--no-renames", "-U1"],
        &["diff", "--cached", "--no-renames", "--full-index"],
        &["format-patch", "--stdout", "-1", "--no-renames"],
    ] {
        if flags[0] == "format-patch" {
            git(temp.path(), &["commit", "-q", "-m", "after"]);
        }
        let patch = git(temp.path(), flags);
        assert!(
            patch.contains("new file mode 100755"),
            "{flags:?}:\n{patch}"
        );
        assert!(patch.contains("deleted file mode 100644"));
        assert!(patch.contains("\\ No newline at end of file"));
        let applied = apply_to_tree(&patch, &before)
            .unwrap_or_else(|error| panic!("{flags:?}: {error}\n{patch}"));
        assert_eq!(applied, after, "{flags:?}");

        let summary = PatchSummary::of(&Patch::parse(&patch).unwrap().apply(&before).unwrap());
        assert_eq!(
            summary,
            PatchSummary {
                total: 13,
                added: 3,
                modified: 9,
                deleted: 1
            }
        );
    }
}

#[test]
fn plain_diff_u_output_applies() {
    let temp = TempDir::new().unwrap();
    let old = temp.path().join("old");
    let new = temp.path().join("new");
    write(&old, "src/lib.rs", &numbered(12), 0o755);
    write(&old, "README", "readme\n", 0o644);
    write(&old, "stale.txt", "old\n", 0o644);
    let mut changed = numbered(12).replace("line 6\n", "line six\n");
    changed.push_str("line 13");
    write(&new, "src/lib.rs", &changed, 0o755);
    write(&new, "README", "readme\n", 0o644);
    write(&new, "fresh.txt", "fresh\n", 0o644);
    let output = Command::new("diff")
        .args(["-ruN", "old", "new"])
        .current_dir(temp.path())
        .output()
        .unwrap();
    let patch = String::from_utf8(output.stdout).unwrap();
    assert!(
        patch.contains("diff -ruN old/src/lib.rs new/src/lib.rs"),
        "{patch}"
    );

    let before = snapshot(&old);
    let applied = apply_to_tree(&patch, &before).unwrap();
    let mut expected = snapshot(&new);
    // `diff -N` writes a deletion as emptying the file.
    expected.insert(
        "stale.txt".into(),
        FileState {
            content: Vec::new(),
            mode: 0o644,
        },
    );
    assert_eq!(applied, expected);

    // `diff -u` of two named files, then with /dev/null.
    let single = "--- a/README\t2024-01-01 00:00:00\n+++ b/README\t2024-01-02 00:00:00\n@@ -1 +1 @@\n-readme\n+README\n";
    let applied = apply_to_tree(single, &before).unwrap();
    assert_eq!(applied["README"].content, b"README\n");
    let removal = "--- a/README\n+++ /dev/null\n@@ -1 +0,0 @@\n-readme\n";
    assert!(!apply_to_tree(removal, &before)
        .unwrap()
        .contains_key("README"));
}

#[test]
fn a_failing_hunk_fails_the_whole_patch_and_names_it() {
    let before = BTreeMap::from([
        (
            "a.txt".to_owned(),
            FileState {
                content: numbered(10).into_bytes(),
                mode: 0o644,
            },
        ),
        (
            "b.txt".to_owned(),
            FileState {
                content: numbered(10).into_bytes(),
                mode: 0o644,
            },
        ),
    ]);
    let patch = "\
diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1,3 +1,3 @@
-line 1
+LINE 1
 line 2
 line 3
diff --git a/b.txt b/b.txt
--- a/b.txt
+++ b/b.txt
@@ -1,2 +1,2 @@
-line 1
+LINE 1
 line 2
@@ -7,3 +7,3 @@
 line 7
-line 8 (not what the file has)
+LINE 8
 line 9
";
    let error = Patch::parse(patch).unwrap().apply(&before).unwrap_err();
    assert_eq!(
        error,
        PatchError::HunkMismatch {
            path: "b.txt".into(),
            hunk: 2,
            header: "@@ -7,3 +7,3 @@".into(),
            line: 7
        }
    );
    assert!(error
        .to_string()
        .starts_with("`b.txt`: hunk 2 (`@@ -7,3 +7,3 @@`) does not apply"));
}

#[test]
fn targets_are_checked_before_anything_applies() {
    let existing = BTreeMap::from([(
        "here.txt".to_owned(),
        FileState {
            content: b"here\n".to_vec(),
            mode: 0o600,
        },
    )]);
    let add = "--- /dev/null\n+++ b/here.txt\n@@ -0,0 +1 @@\n+again\n";
    assert_eq!(
        Patch::parse(add).unwrap().apply(&existing).unwrap_err(),
        PatchError::AlreadyExists {
            path: "here.txt".into()
        }
    );
    let modify = "--- a/missing.txt\n+++ b/missing.txt\n@@ -1 +1 @@\n-x\n+y\n";
    assert_eq!(
        Patch::parse(modify).unwrap().apply(&existing).unwrap_err(),
        PatchError::Missing {
            path: "missing.txt".into(),
            operation: "modify"
        }
    );
    let partial_delete = "diff --git a/here.txt b/here.txt\ndeleted file mode 100644\n--- a/here.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-here\n";
    assert!(Patch::parse(partial_delete)
        .unwrap()
        .apply(&existing)
        .unwrap()
        .iter()
        .all(|f| f.result.is_none()));
    let longer = BTreeMap::from([(
        "here.txt".to_owned(),
        FileState {
            content: b"here\nmore\n".to_vec(),
            mode: 0o600,
        },
    )]);
    assert!(matches!(
        Patch::parse(partial_delete).unwrap().apply(&longer),
        Err(PatchError::HunkMismatch { .. } | PatchError::DeleteLeavesContent { .. })
    ));
    // A modification keeps the file's mode unless the patch sets one.
    let edit = "--- a/here.txt\n+++ b/here.txt\n@@ -1 +1 @@\n-here\n+there\n";
    let result = Patch::parse(edit).unwrap().apply(&existing).unwrap();
    assert_eq!(result[0].result.as_ref().unwrap().mode, 0o600);
}

#[test]
fn renames_copies_binaries_and_symlinks_are_refused_clearly() {
    let temp = TempDir::new().unwrap();
    let repo = temp.path();
    git(repo, &["init", "-q"]);
    write(repo, "original.txt", &numbered(30), 0o644);
    fs::write(repo.join("blob.bin"), [0u8, 1, 2, 255, 0]).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "before"]);
    git(repo, &["mv", "original.txt", "renamed.txt"]);
    let rename = git(repo, &["diff", "--cached", "-M"]);
    let error = Patch::parse(&rename).unwrap_err();
    assert!(matches!(error, PatchError::RenameOrCopy { .. }), "{error}");
    assert!(error.to_string().contains("--no-renames"), "{error}");

    git(repo, &["reset", "-q", "--hard"]);
    fs::write(repo.join("blob.bin"), [9u8, 0, 9]).unwrap();
    for flags in [&["diff"][..], &["diff", "--binary"]] {
        let error = Patch::parse(&git(repo, flags)).unwrap_err();
        assert!(
            matches!(error, PatchError::Binary { .. }),
            "{flags:?}: {error}"
        );
        assert!(error.to_string().contains("workspace sync push"), "{error}");
    }
    let plain_binary = "Binary files old/blob.bin and new/blob.bin differ\n";
    assert!(matches!(
        Patch::parse(plain_binary),
        Err(PatchError::Binary { line: 1, .. })
    ));

    let symlink = "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n";
    let error = Patch::parse(symlink).unwrap_err();
    assert_eq!(
        error,
        PatchError::UnsupportedFileType {
            line: 2,
            path: "l".into(),
            mode: 0o120000
        }
    );
}

#[test]
fn hunks_find_their_lines_after_the_file_shifted() {
    // The diff was made before ten lines were added at the top.
    let patch = "--- a/f\n+++ b/f\n@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE 5\n line 6\n@@ -20,2 +20,2 @@\n line 20\n-line 21\n+LINE 21\n";
    let mut content: String = (1..=10).map(|n| format!("new {n}\n")).collect();
    content.push_str(&numbered(25));
    let before = BTreeMap::from([(
        "f".to_owned(),
        FileState {
            content: content.into_bytes(),
            mode: 0o644,
        },
    )]);
    let after = apply_to_tree(patch, &before).unwrap();
    let text = String::from_utf8(after["f"].content.clone()).unwrap();
    assert!(text.contains("line 4\nLINE 5\nline 6\n"), "{text}");
    assert!(text.contains("line 20\nLINE 21\nline 22\n"), "{text}");
    assert!(text.starts_with("new 1\n"));

    // A hunk anchored at line 1 still applies once the file gained lines
    // above it, as with `git apply`.
    let top = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-line 1\n+LINE 1\n line 2\n";
    let after = apply_to_tree(top, &before).unwrap();
    assert!(String::from_utf8_lossy(&after["f"].content).contains("new 10\nLINE 1\nline 2\n"));
}

#[test]
fn malformed_patches_are_refused_with_the_line() {
    let short = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n line 1\n-line 2\n+LINE 2\n";
    assert!(matches!(
        Patch::parse(short),
        Err(PatchError::Malformed {
            problem: SyntaxProblem::HunkCountMismatch { .. },
            ..
        })
    ));
    let long = "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n-line 1\n+LINE 1\n+extra\n";
    assert!(matches!(
        Patch::parse(long),
        Err(PatchError::Malformed {
            line: 6,
            problem: SyntaxProblem::LineAfterHunk { .. }
        })
    ));
    let overrun = "--- a/f\n+++ b/f\n@@ -1,1 +1,2 @@\n-line 1\n-line 2\n+LINE\n";
    assert!(matches!(
        Patch::parse(overrun),
        Err(PatchError::Malformed {
            line: 5,
            problem: SyntaxProblem::HunkCountMismatch { .. }
        })
    ));
    let bad_header = "--- a/f\n+++ b/f\n@@ -one +1 @@\n";
    assert!(matches!(
        Patch::parse(bad_header),
        Err(PatchError::Malformed {
            line: 3,
            problem: SyntaxProblem::BadHunkHeader { .. }
        })
    ));
    let orphan = "@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(
        Patch::parse(orphan),
        Err(PatchError::Malformed {
            line: 1,
            problem: SyntaxProblem::HunkWithoutFile
        })
    ));
    let out_of_order = "--- a/f\n+++ b/f\n@@ -5 +5 @@\n-a\n+b\n@@ -2 +2 @@\n-c\n+d\n";
    assert!(matches!(
        Patch::parse(out_of_order),
        Err(PatchError::Malformed {
            line: 6,
            problem: SyntaxProblem::HunksOutOfOrder { .. }
        })
    ));
    let renamed = "--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(
        Patch::parse(renamed),
        Err(PatchError::Malformed {
            problem: SyntaxProblem::LabelsDiffer { .. },
            ..
        })
    ));
    let twice = format!("{0}{0}", "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n");
    assert_eq!(
        Patch::parse(&twice).unwrap_err(),
        PatchError::DuplicatePath { path: "f".into() }
    );
    let escaping = "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n";
    assert!(matches!(
        Patch::parse(escaping),
        Err(PatchError::UnsafePath { .. })
    ));
    assert_eq!(
        Patch::parse("just some text\n").unwrap_err(),
        PatchError::Empty
    );
    assert_eq!(Patch::parse("").unwrap_err(), PatchError::Empty);
}

#[test]
fn lenient_where_it_is_safe() {
    // No newline at the end of the patch text, and an empty context line
    // whose leading space an editor stripped.
    let patch = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-c\n+C";
    let before = BTreeMap::from([(
        "f".to_owned(),
        FileState {
            content: b"a\n\nc\n".to_vec(),
            mode: 0o644,
        },
    )]);
    assert_eq!(
        apply_to_tree(patch, &before).unwrap()["f"].content,
        b"a\n\nC\n"
    );
}

#[test]
fn no_newline_markers_are_honoured_on_each_side() {
    let before = BTreeMap::from([(
        "f".to_owned(),
        FileState {
            content: b"a\nb".to_vec(),
            mode: 0o644,
        },
    )]);
    let add_newline =
        "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n";
    assert_eq!(
        apply_to_tree(add_newline, &before).unwrap()["f"].content,
        b"a\nb\n"
    );
    // The same patch ignoring the marker would not match the file.
    let without_marker = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n";
    assert!(apply_to_tree(without_marker, &before).is_err());
    let append = "--- a/f\n+++ b/f\n@@ -2 +2,2 @@\n-b\n\\ No newline at end of file\n+b\n+c\n\\ No newline at end of file\n";
    assert_eq!(
        apply_to_tree(append, &before).unwrap()["f"].content,
        b"a\nb\nc"
    );
    let misplaced = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n\\ No newline at end of file\n-b\n+c\n";
    assert!(matches!(
        Patch::parse(misplaced),
        Err(PatchError::Malformed {
            problem: SyntaxProblem::MisplacedNoNewline,
            ..
        })
    ));
}

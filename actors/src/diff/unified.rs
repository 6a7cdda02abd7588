//! Git-compatible unified patches for one file.
//!
//! The output is what `git diff` writes for a regular file (minus the
//! optional `index` line): `diff --git a/P b/P`, mode lines, `---`/`+++`
//! labels (`/dev/null` for additions and deletions, a tab after names with
//! spaces, C-quoting for names with quotes, backslashes or control
//! characters), hunks with 3 lines of context and `\ No newline at end of
//! file` where a side lacks its final newline. Both `git apply` and this
//! crate's [`patch`](crate::patch) module accept it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use similar::{Algorithm, DiffTag};

/// Lines of context around each change.
const CONTEXT_LINES: usize = 3;

/// How long the line diff may search for a minimal result before it
/// settles for a correct but larger one.
const DIFF_DEADLINE: Duration = Duration::from_secs(5);

/// Git's file-type bits for a regular file.
const REGULAR_FILE: u32 = 0o100000;

/// One side of a text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSide<'a> {
    /// The file's text.
    pub text: &'a str,
    /// Its permission bits.
    pub mode: u32,
}

/// The unified patch turning `old` into `new` for the file at `path`
/// (`None` for a side where the file does not exist). A file whose text is
/// unchanged gets only its header (a mode change, an empty file added or
/// deleted); a file that did not change at all gets an empty string.
pub fn unified_file_patch(
    path: &str,
    old: Option<FileSide<'_>>,
    new: Option<FileSide<'_>>,
) -> String {
    if let (Some(old), Some(new)) = (old, new) {
        if old == new {
            return String::new();
        }
    }
    let a_name = quote(&format!("a/{path}"));
    let b_name = quote(&format!("b/{path}"));
    let mut out = format!("diff --git {a_name} {b_name}\n");
    match (old, new) {
        (None, Some(new)) => {
            let _ = writeln!(out, "new file mode {:06o}", REGULAR_FILE | new.mode);
        }
        (Some(old), None) => {
            let _ = writeln!(out, "deleted file mode {:06o}", REGULAR_FILE | old.mode);
        }
        (Some(old), Some(new)) if old.mode != new.mode => {
            let _ = writeln!(out, "old mode {:06o}", REGULAR_FILE | old.mode);
            let _ = writeln!(out, "new mode {:06o}", REGULAR_FILE | new.mode);
        }
        _ => {}
    }
    let old_text = old.map_or("", |side| side.text);
    let new_text = new.map_or("", |side| side.text);
    if old_text == new_text {
        return out;
    }
    let tab_if_spaced = |name: &str| {
        if path.contains(' ') {
            format!("{name}\t")
        } else {
            name.to_owned()
        }
    };
    let old_label = if old.is_some() {
        tab_if_spaced(&a_name)
    } else {
        "/dev/null".to_owned()
    };
    let new_label = if new.is_some() {
        tab_if_spaced(&b_name)
    } else {
        "/dev/null".to_owned()
    };
    let _ = writeln!(out, "--- {old_label}\n+++ {new_label}");
    write_hunks(&mut out, old_text, new_text);
    out
}

fn write_hunks(out: &mut String, old_text: &str, new_text: &str) {
    let old: Vec<&str> = old_text.split_inclusive('\n').collect();
    let new: Vec<&str> = new_text.split_inclusive('\n').collect();
    let deadline = Instant::now().checked_add(DIFF_DEADLINE);
    let ops = similar::capture_diff_slices_deadline(Algorithm::Myers, &old, &new, deadline);
    for group in similar::group_diff_ops(ops, CONTEXT_LINES) {
        if group.iter().all(|op| op.tag() == DiffTag::Equal) {
            continue;
        }
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let _ = writeln!(
            out,
            "@@ -{} +{} @@",
            hunk_range(old_range.start, old_range.len()),
            hunk_range(new_range.start, new_range.len())
        );
        for op in &group {
            let (tag, old_lines, new_lines) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => write_lines(out, ' ', &old[old_lines]),
                DiffTag::Delete => write_lines(out, '-', &old[old_lines]),
                DiffTag::Insert => write_lines(out, '+', &new[new_lines]),
                DiffTag::Replace => {
                    write_lines(out, '-', &old[old_lines]);
                    write_lines(out, '+', &new[new_lines]);
                }
            }
        }
    }
}

fn write_lines(out: &mut String, prefix: char, lines: &[&str]) {
    for line in lines {
        out.push(prefix);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// `START,COUNT` as diff writes it: 1-based; the count is left out when it
/// is 1; an empty range starts at the line before it.
fn hunk_range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

/// Quotes a name the way git does when it holds `"`, `\` or control
/// characters; other names (including non-ASCII ones) stay as they are.
fn quote(name: &str) -> String {
    if !name
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_ascii_control())
    {
        return name.to_owned();
    }
    let mut out = String::from("\"");
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_git_output_for_a_small_change() {
        let old = FileSide {
            text: "a\nb\nc\nd\ne\nf\ng\nh\n",
            mode: 0o644,
        };
        let new = FileSide {
            text: "a\nb\nc\nd\nE\nf\ng\nh\n",
            mode: 0o755,
        };
        assert_eq!(
            unified_file_patch("dir/f.txt", Some(old), Some(new)),
            "diff --git a/dir/f.txt b/dir/f.txt\nold mode 100644\nnew mode 100755\n--- a/dir/f.txt\n+++ b/dir/f.txt\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
    }

    #[test]
    fn additions_deletions_and_missing_newlines() {
        let added = unified_file_patch(
            "n",
            None,
            Some(FileSide {
                text: "x",
                mode: 0o644,
            }),
        );
        assert_eq!(
            added,
            "diff --git a/n b/n\nnew file mode 100644\n--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n"
        );
        let deleted = unified_file_patch(
            "d",
            Some(FileSide {
                text: "1\n2\n",
                mode: 0o600,
            }),
            None,
        );
        assert_eq!(
            deleted,
            "diff --git a/d b/d\ndeleted file mode 100600\n--- a/d\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-1\n-2\n"
        );
        let empty = unified_file_patch(
            "e",
            None,
            Some(FileSide {
                text: "",
                mode: 0o644,
            }),
        );
        assert_eq!(empty, "diff --git a/e b/e\nnew file mode 100644\n");
    }

    #[test]
    fn names_are_quoted_and_tabbed_like_git() {
        let side = |text| Some(FileSide { text, mode: 0o644 });
        let spaced = unified_file_patch("my file", side("a\n"), side("b\n"));
        assert!(
            spaced
                .starts_with("diff --git a/my file b/my file\n--- a/my file\t\n+++ b/my file\t\n"),
            "{spaced}"
        );
        let quoted = unified_file_patch("say \"hi\"", side("a\n"), side("b\n"));
        assert!(
            quoted.starts_with("diff --git \"a/say \\\"hi\\\"\" \"b/say \\\"hi\\\"\"\n"),
            "{quoted}"
        );
        assert_eq!(quote("tab\there\u{1}"), "\"tab\\there\\001\"");
    }
}

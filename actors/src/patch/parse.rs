//! Parsing unified diffs: `git diff` output (with its extended headers) and
//! plain `diff -u` output, one or many files.
//!
//! Text outside file sections (a commit message, `diff -r` command lines,
//! `Only in ...` notes) is skipped, like `patch` and `git apply` do. Within a
//! file section the hunks must add up to their headers' counts exactly.

use std::borrow::Cow;
use std::collections::HashSet;

use super::error::{PatchError, SyntaxProblem};
use super::{FileOperation, FilePatch, Hunk, HunkLine};

/// File-type bits of a git mode.
const TYPE_MASK: u32 = 0o170000;
const REGULAR_FILE: u32 = 0o100000;

/// Parses patch text into file sections (see the module docs).
pub(super) fn parse(text: &str) -> Result<Vec<FilePatch>, PatchError> {
    // A last line without its newline is still a line; `\ No newline at end
    // of file` is how a patch says a file lacks one.
    let text: Cow<'_, str> = if text.is_empty() || text.ends_with('\n') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text}\n"))
    };
    let mut parser = Parser {
        lines: text.split_inclusive('\n').collect(),
        at: 0,
    };
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    while let Some(line) = parser.peek() {
        let file = if line.starts_with("diff --git ") {
            parser.git_section()?
        } else if line.starts_with("--- ")
            && parser.peek_at(1).is_some_and(|l| l.starts_with("+++ "))
        {
            parser.plain_section()?
        } else if line.starts_with("@@ ") {
            return Err(parser.malformed(SyntaxProblem::HunkWithoutFile));
        } else if is_binary_notice(line) {
            return Err(PatchError::Binary {
                line: parser.at + 1,
                text: header_text(line).to_owned(),
            });
        } else {
            parser.at += 1;
            continue;
        };
        if !seen.insert(file.path.clone()) {
            return Err(PatchError::DuplicatePath { path: file.path });
        }
        files.push(file);
    }
    if files.is_empty() {
        return Err(PatchError::Empty);
    }
    Ok(files)
}

/// A `---`/`+++` name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    DevNull,
    Path(String),
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.at).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<&'a str> {
        self.lines.get(self.at + ahead).copied()
    }

    fn malformed(&self, problem: SyntaxProblem) -> PatchError {
        PatchError::Malformed {
            line: self.at + 1,
            problem,
        }
    }

    /// A section starting at `diff --git`.
    fn git_section(&mut self) -> Result<FilePatch, PatchError> {
        let header_line = self.at + 1;
        let header = self.peek().map(header_text).unwrap_or_default();
        let names = split_git_header(&header["diff --git ".len()..]);
        self.at += 1;
        let mut new_file_mode = None;
        let mut deleted_file_mode = None;
        let mut new_mode = None;
        let mut modes = Vec::new();
        while let Some(line) = self.peek() {
            let text = header_text(line);
            let mut mode_of = |prefix: &str| -> Result<Option<u32>, PatchError> {
                let Some(digits) = text.strip_prefix(prefix) else {
                    return Ok(None);
                };
                let mode = u32::from_str_radix(digits.trim(), 8).map_err(|_| {
                    self.malformed(SyntaxProblem::BadMode {
                        text: text.to_owned(),
                    })
                })?;
                modes.push((self.at + 1, mode));
                Ok(Some(mode))
            };
            if let Some(mode) = mode_of("new file mode ")? {
                new_file_mode = Some(mode);
            } else if let Some(mode) = mode_of("deleted file mode ")? {
                deleted_file_mode = Some(mode);
            } else if let Some(mode) = mode_of("new mode ")? {
                new_mode = Some(mode);
            } else if mode_of("old mode ")?.is_some()
                || text.starts_with("index ")
                || text.starts_with("similarity index ")
                || text.starts_with("dissimilarity index ")
            {
            } else if ["rename from ", "rename to ", "copy from ", "copy to "]
                .iter()
                .any(|prefix| text.starts_with(prefix))
            {
                return Err(PatchError::RenameOrCopy {
                    line: self.at + 1,
                    text: text.to_owned(),
                });
            } else if text == "GIT binary patch" || is_binary_notice(line) {
                return Err(PatchError::Binary {
                    line: self.at + 1,
                    text: text.to_owned(),
                });
            } else {
                break;
            }
            self.at += 1;
        }
        let labels = self.labels()?;
        let hunks = self.hunks()?;

        // Names: from `---`/`+++` when present, else from the header; with
        // prefixes (`a/`, `b/`, or any other) stripped when the header has them.
        let (header_names, prefixed) = match names {
            Some((old, new, prefixed)) => (Some((old, new)), prefixed),
            None => (None, true),
        };
        let strip = |label: Label| match label {
            Label::Path(path) if prefixed => Label::Path(
                path.split_once('/')
                    .map_or(path.clone(), |(_, rest)| rest.to_owned()),
            ),
            other => other,
        };
        let (old, new) = match (labels, header_names) {
            (Some((old, new)), _) => (strip(old), strip(new)),
            (None, Some((old, new))) => (Label::Path(old), Label::Path(new)),
            (None, None) => {
                return Err(PatchError::Malformed {
                    line: header_line,
                    problem: SyntaxProblem::MissingPath,
                })
            }
        };
        let operation = if new_file_mode.is_some() {
            FileOperation::Add
        } else if deleted_file_mode.is_some() {
            FileOperation::Delete
        } else {
            operation_of(&old, &new)
        };
        let path = path_of(operation, old, new).map_err(|problem| PatchError::Malformed {
            line: header_line,
            problem,
        })?;
        let path = normalize_target(&path)?;
        for (line, mode) in modes {
            if !matches!(mode & TYPE_MASK, REGULAR_FILE | 0) {
                return Err(PatchError::UnsupportedFileType { line, path, mode });
            }
        }
        Ok(FilePatch {
            path,
            operation,
            new_mode: new_file_mode.or(new_mode).map(|mode| mode & 0o7777),
            hunks,
            git: true,
        })
    }

    /// A section starting at `---` without a git header (`diff -u`).
    fn plain_section(&mut self) -> Result<FilePatch, PatchError> {
        let header_line = self.at + 1;
        let Some((old, new)) = self.labels()? else {
            return Err(self.malformed(SyntaxProblem::MissingPath));
        };
        let hunks = self.hunks()?;
        let (old, new) = match (old, new) {
            (Label::Path(old), Label::Path(new)) => {
                let (old, new) = strip_common_prefix(&old, &new)
                    .map(|(old, new, _)| (old, new))
                    .unwrap_or((old, new));
                (Label::Path(old), Label::Path(new))
            }
            (old, new) => {
                let strip = |label: Label, prefix: &str| match label {
                    Label::Path(path) => Label::Path(
                        path.strip_prefix(prefix)
                            .map_or(path.clone(), str::to_owned),
                    ),
                    other => other,
                };
                (strip(old, "a/"), strip(new, "b/"))
            }
        };
        let operation = operation_of(&old, &new);
        let path = path_of(operation, old, new).map_err(|problem| PatchError::Malformed {
            line: header_line,
            problem,
        })?;
        Ok(FilePatch {
            path: normalize_target(&path)?,
            operation,
            new_mode: None,
            hunks,
            git: false,
        })
    }

    /// The `---`/`+++` pair, if the next two lines are one.
    fn labels(&mut self) -> Result<Option<(Label, Label)>, PatchError> {
        let (Some(old), Some(new)) = (self.peek(), self.peek_at(1)) else {
            return Ok(None);
        };
        let (Some(old), Some(new)) = (old.strip_prefix("--- "), new.strip_prefix("+++ ")) else {
            return Ok(None);
        };
        let old = parse_label(old).ok_or_else(|| self.malformed(SyntaxProblem::MissingPath))?;
        self.at += 1;
        let new = parse_label(new).ok_or_else(|| self.malformed(SyntaxProblem::MissingPath))?;
        self.at += 1;
        Ok(Some((old, new)))
    }

    /// The hunks that follow, checked for order.
    fn hunks(&mut self) -> Result<Vec<Hunk>, PatchError> {
        let mut hunks: Vec<Hunk> = Vec::new();
        while self.peek().is_some_and(|line| line.starts_with("@@ ")) {
            let header_line = self.at + 1;
            let hunk = self.hunk()?;
            if let Some(previous) = hunks.last() {
                let previous_end = previous.old_begin() + previous.old_count;
                if hunk.old_begin() < previous_end || previous.lacks_final_newline() {
                    return Err(PatchError::Malformed {
                        line: header_line,
                        problem: SyntaxProblem::HunksOutOfOrder {
                            header: hunk.header,
                        },
                    });
                }
            }
            hunks.push(hunk);
        }
        if let (Some(line), Some(last)) = (self.peek(), hunks.last()) {
            let stray = (line.starts_with('+') || line.starts_with('-') || line.starts_with(' '))
                && !line.starts_with("--- ")
                && !line.starts_with("+++ ")
                && !matches!(header_text(line), "-- " | "--");
            if stray {
                return Err(self.malformed(SyntaxProblem::LineAfterHunk {
                    header: last.header.clone(),
                }));
            }
        }
        Ok(hunks)
    }

    /// One hunk: its header and exactly the lines it counts, plus `\ No
    /// newline at end of file` markers.
    fn hunk(&mut self) -> Result<Hunk, PatchError> {
        let header = self.peek().map(header_text).unwrap_or_default().to_owned();
        let (old_start, old_count, new_start, new_count) =
            parse_hunk_header(&header).ok_or_else(|| {
                self.malformed(SyntaxProblem::BadHunkHeader {
                    text: header.clone(),
                })
            })?;
        if (old_start == 0 && old_count != 0) || (new_start == 0 && new_count != 0) {
            return Err(self.malformed(SyntaxProblem::BadHunkHeader { text: header }));
        }
        self.at += 1;
        let mismatch = |parser: &Self| {
            parser.malformed(SyntaxProblem::HunkCountMismatch {
                header: header.clone(),
            })
        };
        let mut lines: Vec<HunkLine> = Vec::new();
        let (mut old_seen, mut new_seen) = (0, 0);
        loop {
            let complete = old_seen == old_count && new_seen == new_count;
            let Some(line) = self.peek() else {
                if complete {
                    break;
                }
                return Err(mismatch(self));
            };
            if line.starts_with('\\') {
                let Some(last) = lines.last_mut() else {
                    return Err(self.malformed(SyntaxProblem::MisplacedNoNewline));
                };
                if last.text_mut().pop() != Some('\n') {
                    return Err(self.malformed(SyntaxProblem::MisplacedNoNewline));
                }
                self.at += 1;
                continue;
            }
            if complete {
                break;
            }
            let hunk_line = match line.as_bytes().first() {
                Some(b' ') => HunkLine::Context(line[1..].to_owned()),
                Some(b'-') => HunkLine::Remove(line[1..].to_owned()),
                Some(b'+') => HunkLine::Add(line[1..].to_owned()),
                // An empty context line whose leading space was stripped.
                Some(b'\n') => HunkLine::Context("\n".to_owned()),
                _ => return Err(mismatch(self)),
            };
            match hunk_line {
                HunkLine::Context(_) => {
                    old_seen += 1;
                    new_seen += 1;
                }
                HunkLine::Remove(_) => old_seen += 1,
                HunkLine::Add(_) => new_seen += 1,
            }
            if old_seen > old_count || new_seen > new_count {
                return Err(mismatch(self));
            }
            lines.push(hunk_line);
            self.at += 1;
        }
        let hunk = Hunk {
            old_start,
            old_count,
            header,
            lines,
        };
        // Only the last line of a side may lack its newline.
        for side in [hunk.old_lines(), hunk.new_lines()] {
            let count = side.len();
            if side
                .iter()
                .take(count.saturating_sub(1))
                .any(|line| !line.ends_with('\n'))
            {
                return Err(self.malformed(SyntaxProblem::MisplacedNoNewline));
            }
        }
        Ok(hunk)
    }
}

/// A header line without its line ending.
fn header_text(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn is_binary_notice(line: &str) -> bool {
    let text = header_text(line);
    text.starts_with("Binary files ") && text.ends_with(" differ")
}

fn operation_of(old: &Label, new: &Label) -> FileOperation {
    match (old, new) {
        (Label::DevNull, _) => FileOperation::Add,
        (_, Label::DevNull) => FileOperation::Delete,
        _ => FileOperation::Modify,
    }
}

fn path_of(operation: FileOperation, old: Label, new: Label) -> Result<String, SyntaxProblem> {
    match (operation, old, new) {
        (_, Label::DevNull, Label::DevNull) => Err(SyntaxProblem::BothDevNull),
        (FileOperation::Add, _, Label::Path(path))
        | (FileOperation::Delete, Label::Path(path), _) => Ok(path),
        (_, Label::Path(old), Label::Path(new)) if old == new => Ok(new),
        (_, Label::Path(old), Label::Path(new)) => Err(SyntaxProblem::LabelsDiffer { old, new }),
        (_, Label::Path(path), Label::DevNull) | (_, Label::DevNull, Label::Path(path)) => Ok(path),
    }
}

/// Parses `@@ -A[,B] +C[,D] @@[ section]`.
fn parse_hunk_header(header: &str) -> Option<(usize, usize, usize, usize)> {
    let rest = header.strip_prefix("@@ -")?;
    let (ranges, _) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |text: &str| -> Option<(usize, usize)> {
        match text.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((text.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(old)?;
    let (new_start, new_count) = range(new)?;
    Some((old_start, old_count, new_start, new_count))
}

/// Parses a `---`/`+++` name: C-quoted, or up to a tab (timestamps).
fn parse_label(text: &str) -> Option<Label> {
    let text = header_text(text);
    let name = if text.starts_with('"') {
        unquote(text)?.0
    } else {
        text.split('\t').next().unwrap_or_default().to_owned()
    };
    if name.is_empty() {
        None
    } else if name == "/dev/null" {
        Some(Label::DevNull)
    } else {
        Some(Label::Path(name))
    }
}

/// Splits the rest of `diff --git A B` into the two names, without their
/// prefixes; also says whether they had prefixes. Unquoted names may hold
/// spaces, so the split is where both sides name the same file.
fn split_git_header(rest: &str) -> Option<(String, String, bool)> {
    let (old, new) = if rest.starts_with('"') {
        let (old, remainder) = unquote(rest)?;
        let new = remainder.strip_prefix(' ')?;
        (
            old,
            if new.starts_with('"') {
                unquote(new)?.0
            } else {
                new.to_owned()
            },
        )
    } else if let Some(at) = rest.find(" \"") {
        (rest[..at].to_owned(), unquote(&rest[at + 1..])?.0)
    } else {
        return rest
            .match_indices(' ')
            .find_map(|(at, _)| strip_common_prefix(&rest[..at], &rest[at + 1..]));
    };
    strip_common_prefix(&old, &new)
}

/// Two names of the same file: `(old, new, prefixed)` when they are equal,
/// or equal once each loses its first component (`a/x`, `b/x`).
fn strip_common_prefix(old: &str, new: &str) -> Option<(String, String, bool)> {
    if let (Some((_, old_rest)), Some((_, new_rest))) = (old.split_once('/'), new.split_once('/')) {
        if old_rest == new_rest && old != new {
            return Some((old_rest.to_owned(), new_rest.to_owned(), true));
        }
    }
    (old == new).then(|| (old.to_owned(), new.to_owned(), false))
}

/// Decodes a C-style quoted name as git writes it (`"a/caf\303\251"`),
/// returning it and the text after the closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 1;
    loop {
        match *bytes.get(at)? {
            b'"' => return Some((String::from_utf8(out).ok()?, &text[at + 1..])),
            b'\\' => {
                let escaped = *bytes.get(at + 1)?;
                at += 2;
                out.push(match escaped {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'0'..=b'7' => {
                        let digits = text.get(at - 1..at + 2)?;
                        at += 2;
                        u8::from_str_radix(digits, 8).ok()?
                    }
                    other => other,
                });
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
}

/// Checks a target path and normalizes it (no `.` or empty components).
fn normalize_target(path: &str) -> Result<String, PatchError> {
    let unsafe_path = |reason| PatchError::UnsafePath {
        path: path.to_owned(),
        reason,
    };
    if path.starts_with('/') {
        return Err(unsafe_path(
            "it is absolute; use paths relative to the workspace",
        ));
    }
    if path.contains('\0') {
        return Err(unsafe_path("it contains a NUL byte"));
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(unsafe_path("it contains `..`")),
            normal => components.push(normal),
        }
    }
    if components.is_empty() {
        return Err(unsafe_path("it names no file"));
    }
    Ok(components.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_headers_split_on_the_name_both_sides_share() {
        assert_eq!(
            split_git_header("a/my file.txt b/my file.txt"),
            Some(("my file.txt".into(), "my file.txt".into(), true))
        );
        assert_eq!(split_git_header("x y"), None);
        assert_eq!(
            split_git_header("src/x src/x"),
            Some(("src/x".into(), "src/x".into(), false))
        );
        assert_eq!(
            split_git_header(r#""a/caf\303\251 \"q\"" "b/caf\303\251 \"q\"""#),
            Some(("café \"q\"".into(), "café \"q\"".into(), true))
        );
    }

    #[test]
    fn labels_drop_timestamps_and_unquote() {
        assert_eq!(
            parse_label("a/x.c\t2024-01-01 10:00:00.000000000 +0000\n"),
            Some(Label::Path("a/x.c".into()))
        );
        assert_eq!(parse_label("/dev/null\n"), Some(Label::DevNull));
        assert_eq!(
            parse_label("\"b/tab\\there\"\n"),
            Some(Label::Path("b/tab\there".into()))
        );
    }

    #[test]
    fn hunk_headers_default_counts_to_one() {
        assert_eq!(
            parse_hunk_header("@@ -3 +3,2 @@ fn main"),
            Some((3, 1, 3, 2))
        );
        assert_eq!(parse_hunk_header("@@ -0,0 +1 @@"), Some((0, 0, 1, 1)));
        assert_eq!(parse_hunk_header("@@ -x +1 @@"), None);
        assert_eq!(parse_hunk_header("@@ -1 +1"), None);
    }

    #[test]
    fn targets_must_stay_relative() {
        assert_eq!(normalize_target("./src//main.rs").unwrap(), "src/main.rs");
        for bad in ["/etc/passwd", "a/../../x", ".", ""] {
            assert!(
                matches!(normalize_target(bad), Err(PatchError::UnsafePath { .. })),
                "{bad}"
            );
        }
    }
}

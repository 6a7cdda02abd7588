//! `patch apply`: unified diffs, as `git diff` and `diff -u` write them,
//! applied to in-memory file contents, all or nothing.
//!
//! # What is accepted
//!
//! - `git diff` output: `diff --git` headers, `index` lines, `new file
//!   mode`, `deleted file mode`, `old mode`/`new mode` (the new mode is
//!   applied; the old mode is not checked, as `git apply` only warns), names
//!   with or without prefixes (`a/`, `b/`, `--no-prefix`, mnemonic ones) and
//!   C-quoted names; sections without hunks (mode changes, empty files).
//! - Plain `diff -u` output: `---`/`+++` labels (timestamps after a tab are
//!   ignored), `/dev/null` for additions and deletions. The two labels must
//!   name the same file once a differing first component is dropped
//!   (`a/x`/`b/x`, `old/x`/`new/x`); `diff -N`'s creation of a missing file
//!   (`@@ -0,0 ...`) is an addition.
//! - `\ No newline at end of file` on either side; an empty line inside a
//!   hunk as an empty context line (editors strip the lone space); text
//!   around file sections (commit messages, `diff -r` lines) is skipped.
//!
//! Refused with a message that says what to do: renames and copies, binary
//! patches, symlink or submodule modes, paths that are absolute or contain
//! `..`, a file changed twice in one patch, and hunks whose lines do not add
//! up to their header's counts.
//!
//! # How hunks are placed
//!
//! Context and removed lines must match the file exactly (fuzz 0: no line
//! of context is ever dropped). A hunk is first tried where its header says,
//! shifted by the offset the previous hunk of the file needed; if the lines
//! are not there, the nearest position after the previous hunk where they
//! match exactly is used (an offset search, like `patch` and `git apply`).
//! This lets a patch apply to a file that gained or lost lines elsewhere
//! since the diff was made, which is common when agents edit in parallel,
//! while never changing lines other than the ones the hunk shows. As in
//! `git apply`, a hunk that starts at line 1 or has no trailing context is
//! first tried anchored at the start or end of the file. A hunk without any
//! context or removed lines is placed only where its header says.
//!
//! [`Patch::apply`] is pure: it returns every file's new state or the first
//! error, so the caller writes nothing unless the whole patch applies.

mod apply;
mod error;
mod parse;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use error::{PatchError, SyntaxProblem};

/// The mode of a file a patch adds without saying one (`diff -u`).
pub const DEFAULT_NEW_FILE_MODE: u32 = 0o644;

/// A parsed patch: one section per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    files: Vec<FilePatch>,
}

/// What a patch does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    path: String,
    operation: FileOperation,
    new_mode: Option<u32>,
    hunks: Vec<Hunk>,
    /// From a `diff --git` section (plain `diff -u` otherwise).
    git: bool,
}

/// Whether a file is added, modified or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOperation {
    /// The file must not exist.
    Add,
    /// The file must exist.
    Modify,
    /// The file must exist and the patch must remove all its content.
    Delete,
}

impl FileOperation {
    /// `added`, `modified` or `deleted`, as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "added",
            Self::Modify => "modified",
            Self::Delete => "deleted",
        }
    }
}

/// A regular file's content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// The bytes.
    pub content: Vec<u8>,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

/// The outcome for one file of an applied patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchedFile {
    /// The file, relative to the tree root.
    pub path: String,
    /// What happened to it.
    pub operation: FileOperation,
    /// Its new state; `None` when deleted.
    pub result: Option<FileState>,
}

/// Counts of an applied patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchSummary {
    /// Files changed.
    pub total: usize,
    /// Files added.
    pub added: usize,
    /// Files modified (content or mode).
    pub modified: usize,
    /// Files deleted.
    pub deleted: usize,
}

impl PatchSummary {
    /// Counts `files` by operation.
    pub fn of(files: &[PatchedFile]) -> Self {
        let count = |operation| files.iter().filter(|f| f.operation == operation).count();
        Self {
            total: files.len(),
            added: count(FileOperation::Add),
            modified: count(FileOperation::Modify),
            deleted: count(FileOperation::Delete),
        }
    }
}

impl Patch {
    /// Parses unified diff text (see the module docs for what is accepted).
    pub fn parse(text: &str) -> Result<Self, PatchError> {
        Ok(Self {
            files: parse::parse(text)?,
        })
    }

    /// The file sections, in patch order; their paths are the files the
    /// caller must look up before [`Patch::apply`].
    pub fn files(&self) -> &[FilePatch] {
        &self.files
    }

    /// Applies the patch to `current` (each target path's regular-file
    /// state; a missing key means the file does not exist). Returns the new
    /// state of every file in patch order, or the first failure: nothing is
    /// partially applied.
    pub fn apply(
        &self,
        current: &BTreeMap<String, FileState>,
    ) -> Result<Vec<PatchedFile>, PatchError> {
        self.files
            .iter()
            .map(|file| file.apply(current.get(&file.path)))
            .collect()
    }
}

impl FilePatch {
    /// The target file, relative, `/`-separated, without `.` or `..`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the file is added, modified or deleted.
    pub fn operation(&self) -> FileOperation {
        self.operation
    }

    /// The permission bits the patch sets, if it sets any.
    pub fn new_mode(&self) -> Option<u32> {
        self.new_mode
    }

    fn apply(&self, current: Option<&FileState>) -> Result<PatchedFile, PatchError> {
        let path = self.path.clone();
        let apply_to = |content: &[u8]| {
            apply::apply_hunks(content, &self.hunks).map_err(|failed| {
                let hunk = &self.hunks[failed];
                PatchError::HunkMismatch {
                    path: path.clone(),
                    hunk: failed + 1,
                    header: hunk.header.clone(),
                    line: hunk.old_start,
                }
            })
        };
        let (operation, result) = match (self.operation, current) {
            (FileOperation::Add, Some(_)) => return Err(PatchError::AlreadyExists { path }),
            (FileOperation::Add, None) => {
                let content = apply_to(b"")?;
                let mode = self.new_mode.unwrap_or(DEFAULT_NEW_FILE_MODE);
                (FileOperation::Add, Some(FileState { content, mode }))
            }
            (FileOperation::Modify, Some(state)) => {
                let content = apply_to(&state.content)?;
                let mode = self.new_mode.unwrap_or(state.mode);
                (FileOperation::Modify, Some(FileState { content, mode }))
            }
            (FileOperation::Modify, None) if self.creates_from_nothing() => {
                let content = apply_to(b"")?;
                let mode = DEFAULT_NEW_FILE_MODE;
                (FileOperation::Add, Some(FileState { content, mode }))
            }
            (FileOperation::Delete, Some(state)) => {
                if !apply_to(&state.content)?.is_empty() {
                    return Err(PatchError::DeleteLeavesContent { path });
                }
                (FileOperation::Delete, None)
            }
            (FileOperation::Modify, None) => {
                return Err(PatchError::Missing {
                    path,
                    operation: "modify",
                })
            }
            (FileOperation::Delete, None) => {
                return Err(PatchError::Missing {
                    path,
                    operation: "delete",
                })
            }
        };
        Ok(PatchedFile {
            path,
            operation,
            result,
        })
    }

    /// `diff -N` writes a new file as a modification of an empty one.
    fn creates_from_nothing(&self) -> bool {
        !self.git
            && matches!(self.hunks.as_slice(), [hunk] if hunk.old_start == 0 && hunk.old_count == 0)
    }
}

/// One `@@` hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    /// The old-side start line as written (0 for an empty old side).
    old_start: usize,
    old_count: usize,
    /// The `@@ ... @@` line, for messages.
    header: String,
    lines: Vec<HunkLine>,
}

/// One line of a hunk, with its newline unless the file lacks one there.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HunkLine {
    Context(String),
    Remove(String),
    Add(String),
}

impl HunkLine {
    fn text_mut(&mut self) -> &mut String {
        match self {
            Self::Context(text) | Self::Remove(text) | Self::Add(text) => text,
        }
    }
}

impl Hunk {
    /// The 0-based index of the first old line (or where lines are inserted).
    fn old_begin(&self) -> usize {
        if self.old_count == 0 {
            self.old_start
        } else {
            self.old_start.saturating_sub(1)
        }
    }

    /// The lines the file must have: context and removed lines.
    fn old_lines(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                HunkLine::Context(text) | HunkLine::Remove(text) => Some(text.as_str()),
                HunkLine::Add(_) => None,
            })
            .collect()
    }

    /// The lines the file gets: context and added lines.
    fn new_lines(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                HunkLine::Context(text) | HunkLine::Add(text) => Some(text.as_str()),
                HunkLine::Remove(_) => None,
            })
            .collect()
    }

    /// Whether either side ends without a newline (so the hunk ends the file).
    fn lacks_final_newline(&self) -> bool {
        [self.old_lines(), self.new_lines()]
            .iter()
            .any(|side| side.last().is_some_and(|line| !line.ends_with('\n')))
    }
}

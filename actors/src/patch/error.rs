//! What parsing and applying a patch can fail with.
//!
//! Messages are lowercase, name the file (and hunk or patch line), and say
//! what to do.

use std::fmt;

/// Everything the [`patch`](super) module can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The text holds no file section at all.
    #[error("the patch holds no file changes; pass unified diff text such as `git diff` output")]
    Empty,
    /// The text is not a well-formed unified diff.
    #[error("patch line {line}: {problem}")]
    Malformed {
        /// 1-based line of the patch text.
        line: usize,
        /// What is wrong there.
        problem: SyntaxProblem,
    },
    /// The patch renames or copies a file.
    #[error(
        "patch line {line}: renames and copies are not supported (`{text}`); regenerate the patch with `git diff --no-renames`"
    )]
    RenameOrCopy {
        /// 1-based line of the patch text.
        line: usize,
        /// The `rename from ...`/`copy to ...` line.
        text: String,
    },
    /// The patch carries a binary change.
    #[error(
        "patch line {line}: binary patches are not supported (`{text}`); transfer binary files with `workspace sync push`"
    )]
    Binary {
        /// 1-based line of the patch text.
        line: usize,
        /// The `Binary files ...` or `GIT binary patch` line.
        text: String,
    },
    /// The patch changes a symlink or submodule.
    #[error(
        "patch line {line}: `{path}` has mode {mode:06o}; patch apply changes only regular files"
    )]
    UnsupportedFileType {
        /// 1-based line of the patch text.
        line: usize,
        /// The file.
        path: String,
        /// The git mode, such as `120000` for a symlink.
        mode: u32,
    },
    /// A target path could leave the tree.
    #[error("patch path `{path}` is not allowed: {reason}")]
    UnsafePath {
        /// The path as the patch names it.
        path: String,
        /// Why, such as `it contains ..`.
        reason: &'static str,
    },
    /// Two sections change the same file.
    #[error("`{path}` appears more than once in the patch; combine its changes into one section")]
    DuplicatePath {
        /// The file.
        path: String,
    },
    /// The patch adds a file that exists.
    #[error("cannot add `{path}`: it already exists")]
    AlreadyExists {
        /// The file.
        path: String,
    },
    /// The patch modifies or deletes a file that does not exist.
    #[error("cannot {operation} `{path}`: it does not exist")]
    Missing {
        /// The file.
        path: String,
        /// `modify` or `delete`.
        operation: &'static str,
    },
    /// A hunk's context or removed lines are not in the file.
    #[error(
        "`{path}`: hunk {hunk} (`{header}`) does not apply: its context and removed lines do not match the file at line {line} or anywhere after the previous hunk"
    )]
    HunkMismatch {
        /// The file.
        path: String,
        /// 1-based hunk number within the file.
        hunk: usize,
        /// The hunk's `@@ ... @@` line.
        header: String,
        /// The old-side line the hunk states.
        line: usize,
    },
    /// A deletion would leave content behind.
    #[error("cannot delete `{path}`: the file has content the patch does not remove")]
    DeleteLeavesContent {
        /// The file.
        path: String,
    },
}

/// How a patch text is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxProblem {
    /// A `@@` line that does not parse.
    BadHunkHeader {
        /// The line.
        text: String,
    },
    /// A hunk whose lines do not add up to its header's counts.
    HunkCountMismatch {
        /// The hunk's `@@ ... @@` line.
        header: String,
    },
    /// A line that looks like part of a hunk after the hunk's counts were met.
    LineAfterHunk {
        /// The hunk's `@@ ... @@` line.
        header: String,
    },
    /// Hunks that overlap or go backwards.
    HunksOutOfOrder {
        /// The later hunk's `@@ ... @@` line.
        header: String,
    },
    /// A hunk before any `---`/`+++` file header.
    HunkWithoutFile,
    /// `\ No newline at end of file` somewhere other than after a last line.
    MisplacedNoNewline,
    /// A mode line whose mode is not octal.
    BadMode {
        /// The line.
        text: String,
    },
    /// A `diff --git` section whose file name cannot be told.
    MissingPath,
    /// `---` and `+++` name different files.
    LabelsDiffer {
        /// The old name.
        old: String,
        /// The new name.
        new: String,
    },
    /// `---` and `+++` are both `/dev/null`.
    BothDevNull,
}

impl fmt::Display for SyntaxProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHunkHeader { text } => write!(
                f,
                "malformed hunk header `{text}`; expected `@@ -START,COUNT +START,COUNT @@`"
            ),
            Self::HunkCountMismatch { header } => write!(
                f,
                "hunk `{header}` does not have the number of lines its header states; fix the counts or regenerate the patch"
            ),
            Self::LineAfterHunk { header } => write!(
                f,
                "this line follows hunk `{header}` after the lines its header counts; fix the counts or regenerate the patch"
            ),
            Self::HunksOutOfOrder { header } => {
                write!(f, "hunk `{header}` overlaps or precedes the previous hunk of its file")
            }
            Self::HunkWithoutFile => {
                f.write_str("hunk without a file header (`--- a/PATH` and `+++ b/PATH`)")
            }
            Self::MisplacedNoNewline => f.write_str(
                "`\\ No newline at end of file` may only follow the last line of a file",
            ),
            Self::BadMode { text } => write!(f, "malformed mode line `{text}`"),
            Self::MissingPath => f.write_str(
                "cannot tell the file name from this `diff --git` header; add `--- a/PATH` and `+++ b/PATH` lines",
            ),
            Self::LabelsDiffer { old, new } => write!(
                f,
                "the old and new file names differ (`{old}` and `{new}`); renames are not supported, so use the same name on both sides"
            ),
            Self::BothDevNull => f.write_str("both file names are /dev/null"),
        }
    }
}

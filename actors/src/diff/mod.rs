//! `workspace diff`: what changed between two tree manifests, and the
//! git-compatible patch of the text files that changed.
//!
//! # Classification ([`compare`])
//!
//! | Case | Status |
//! |---|---|
//! | only in the new tree | `added` |
//! | only in the old tree | `deleted` |
//! | in both, different types | `type_changed` |
//! | file content (SHA-256 or size) or symlink target differs | `modified` |
//! | only the permission bits differ (files, directories, others) | `modified`, with [`TreeChange::mode_changed`] and not [`TreeChange::content_changed`] |
//!
//! A mode-only change is a `modified` entry rather than a status of its own
//! because that is what git does: its patch is `old mode`/`new mode` lines
//! without hunks, which `patch apply` applies. Symlink modes are ignored
//! (they are always `0777` on Linux).
//!
//! Directories: an added or deleted directory is reported only when it is
//! an empty leaf on the side where it exists (as the reference tool does);
//! a non-empty one is implied by the entries below it, like in git. A
//! directory in both trees is reported only for a mode change.
//!
//! # Patches ([`build_report`])
//!
//! A file whose old and new contents are both text (no NUL byte, valid
//! UTF-8, at most [`MAX_TEXT_PATCH_BYTES`]) gets a unified patch with
//! `a/PATH`/`b/PATH` labels (`/dev/null` for additions and deletions), 3
//! lines of context and `\ No newline at end of file` markers, in the form
//! `git diff` writes, so the combined patch can be fed back to `patch
//! apply` (or `git apply`). A mode-only change gets a header-only patch.
//! When every section is a plain text change, the `diff --git` lines are
//! left out and the patch reads like `diff -u` output.
//!
//! `non_text` counts every changed entry without a text patch (binary or
//! large files, symlinks, directories, type changes), so `total` is always
//! `text_patched + non_text`.
//! Binary files, symlinks, directories and type changes get no patch.

mod unified;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use pyro_guest_protocol::{EntryKind, ManifestEntry};

pub use unified::{unified_file_patch, FileSide};

/// Files larger than this (on either side) get no text patch: they are
/// counted as `non_text` without their contents being read.
pub const MAX_TEXT_PATCH_BYTES: u64 = 8 << 20;

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeStatus {
    /// Only in the new tree.
    Added,
    /// In both, same type, different content, target or mode.
    Modified,
    /// Only in the old tree.
    Deleted,
    /// In both, with different types.
    TypeChanged,
}

impl ChangeStatus {
    /// `added`, `modified`, `deleted` or `type_changed`, as users see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
            Self::TypeChanged => "type_changed",
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    /// Relative, `/`-separated, without a leading `/`.
    pub path: String,
    /// How it changed.
    pub status: ChangeStatus,
    /// The old entry (`None` when added).
    pub old: Option<ManifestEntry>,
    /// The new entry (`None` when deleted).
    pub new: Option<ManifestEntry>,
}

impl TreeChange {
    /// The entry's type: the new one, or the old one when deleted.
    pub fn artifact_type(&self) -> EntryKind {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .map_or(EntryKind::Other, |entry| entry.kind)
    }

    /// Whether the content or link target changed (always for additions,
    /// deletions and type changes).
    pub fn content_changed(&self) -> bool {
        match (&self.old, &self.new) {
            (Some(old), Some(new)) if old.kind == new.kind => differs_in_content(old, new),
            _ => true,
        }
    }

    /// Whether the permission bits changed on an entry of the same type.
    pub fn mode_changed(&self) -> bool {
        match (&self.old, &self.new) {
            (Some(old), Some(new)) => {
                old.kind == new.kind && old.kind != EntryKind::Symlink && old.mode != new.mode
            }
            _ => false,
        }
    }
}

/// Classifies every path that differs between two manifests (see the module
/// docs), sorted by path.
pub fn compare(old: &[ManifestEntry], new: &[ManifestEntry]) -> Vec<TreeChange> {
    let old_entries: BTreeMap<&str, &ManifestEntry> = old
        .iter()
        .map(|entry| (entry.path.as_str(), entry))
        .collect();
    let new_entries: BTreeMap<&str, &ManifestEntry> = new
        .iter()
        .map(|entry| (entry.path.as_str(), entry))
        .collect();
    let old_parents = parents(old);
    let new_parents = parents(new);
    let paths: BTreeSet<&str> = old_entries
        .keys()
        .chain(new_entries.keys())
        .copied()
        .collect();
    let mut changes = Vec::new();
    for path in paths {
        let old = old_entries.get(path).copied();
        let new = new_entries.get(path).copied();
        let status = match (old, new) {
            (None, Some(new)) if is_leaf(new, &new_parents) => ChangeStatus::Added,
            (Some(old), None) if is_leaf(old, &old_parents) => ChangeStatus::Deleted,
            (Some(old), Some(new)) if old.kind != new.kind => ChangeStatus::TypeChanged,
            (Some(old), Some(new))
                if differs_in_content(old, new)
                    || (old.kind != EntryKind::Symlink && old.mode != new.mode) =>
            {
                ChangeStatus::Modified
            }
            _ => continue,
        };
        changes.push(TreeChange {
            path: path.to_owned(),
            status,
            old: old.cloned(),
            new: new.cloned(),
        });
    }
    changes
}

/// The paths that have at least one entry directly below them.
fn parents(entries: &[ManifestEntry]) -> HashSet<&str> {
    entries
        .iter()
        .filter_map(|entry| entry.path.rsplit_once('/').map(|(parent, _)| parent))
        .collect()
}

/// Whether an added or deleted entry is reported: everything but
/// directories that hold entries.
fn is_leaf(entry: &ManifestEntry, parents: &HashSet<&str>) -> bool {
    entry.kind != EntryKind::Directory || !parents.contains(entry.path.as_str())
}

fn differs_in_content(old: &ManifestEntry, new: &ManifestEntry) -> bool {
    match old.kind {
        EntryKind::File => old.sha256 != new.sha256 || old.size != new.size,
        EntryKind::Symlink => old.link_target != new.link_target,
        EntryKind::Directory | EntryKind::Other => false,
    }
}

/// Which tree a file's contents are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The old tree (for a workspace, its baseline).
    Old,
    /// The new tree (the live workspace).
    New,
}

/// One changed path with its patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// The change.
    pub change: TreeChange,
    /// Its unified patch, for text files and mode-only changes.
    pub text_patch: Option<String>,
}

/// Counts of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffSummary {
    /// Changed paths.
    pub total: usize,
    /// Paths added.
    pub added: usize,
    /// Paths modified (mode-only changes included).
    pub modified: usize,
    /// Paths deleted.
    pub deleted: usize,
    /// Paths whose type changed.
    pub type_changed: usize,
    /// Entries with a text patch.
    pub text_patched: usize,
    /// Files whose content changed but that get no text patch (binary, not
    /// UTF-8, or larger than [`MAX_TEXT_PATCH_BYTES`]).
    pub non_text: usize,
}

/// A diff: its entries, counts and combined patch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiffReport {
    /// One per changed path, sorted by path.
    pub entries: Vec<DiffEntry>,
    /// The counts.
    pub summary: DiffSummary,
    /// Every entry's text patch, concatenated (empty when there is none).
    pub patch: String,
}

/// Builds the report for `changes`, reading the contents of changed files
/// through `read` (only for files whose content changed, that are not too
/// large; a mode-only change reads nothing).
pub fn build_report<E>(
    changes: Vec<TreeChange>,
    mut read: impl FnMut(Side, &ManifestEntry) -> Result<Vec<u8>, E>,
) -> Result<DiffReport, E> {
    let mut report = DiffReport::default();
    for change in changes {
        let summary = &mut report.summary;
        summary.total += 1;
        match change.status {
            ChangeStatus::Added => summary.added += 1,
            ChangeStatus::Modified => summary.modified += 1,
            ChangeStatus::Deleted => summary.deleted += 1,
            ChangeStatus::TypeChanged => summary.type_changed += 1,
        }
        let text_patch = match (change.status, &change.old, &change.new) {
            (ChangeStatus::TypeChanged, ..) => None,
            (_, old, new) if change.artifact_type() == EntryKind::File => {
                file_patch(&change, old.as_ref(), new.as_ref(), &mut read)?
            }
            _ => None,
        };
        match &text_patch {
            Some(_) => summary.text_patched += 1,
            None => summary.non_text += 1,
        }
        report.entries.push(DiffEntry { change, text_patch });
    }
    drop_git_headers_if_plain(&mut report.entries);
    report.patch = report
        .entries
        .iter()
        .filter_map(|entry| entry.text_patch.as_deref())
        .collect();
    Ok(report)
}

/// When every section is a plain text change (no mode, no file added or
/// deleted), drops the `diff --git` lines so the patch reads like `diff -u`
/// output. With any extended section they all stay: a plain section after a
/// `diff --git` one would be read as part of it.
fn drop_git_headers_if_plain(entries: &mut [DiffEntry]) {
    let is_plain = |patch: &str| {
        patch.split_once('\n').is_some_and(|(first, rest)| {
            first.starts_with("diff --git ") && rest.starts_with("--- ")
        })
    };
    let patches = || {
        entries
            .iter()
            .filter_map(|entry| entry.text_patch.as_deref())
    };
    if !patches().all(is_plain) {
        return;
    }
    for patch in entries
        .iter_mut()
        .filter_map(|entry| entry.text_patch.as_mut())
    {
        if let Some((_, rest)) = patch.split_once('\n') {
            *patch = rest.to_owned();
        }
    }
}

/// The patch of a changed file, or `None` when a side is not text.
fn file_patch<E>(
    change: &TreeChange,
    old: Option<&ManifestEntry>,
    new: Option<&ManifestEntry>,
    read: &mut impl FnMut(Side, &ManifestEntry) -> Result<Vec<u8>, E>,
) -> Result<Option<String>, E> {
    if !change.content_changed() {
        let side = |entry: &ManifestEntry| FileSide {
            text: "",
            mode: entry.mode,
        };
        return Ok(Some(unified_file_patch(
            &change.path,
            old.map(side),
            new.map(side),
        )));
    }
    if [old, new]
        .iter()
        .flatten()
        .any(|entry| entry.size > MAX_TEXT_PATCH_BYTES)
    {
        return Ok(None);
    }
    let old_bytes = old.map(|entry| read(Side::Old, entry)).transpose()?;
    let new_bytes = new.map(|entry| read(Side::New, entry)).transpose()?;
    let (Some(old_side), Some(new_side)) = (
        text_side(old, old_bytes.as_deref()),
        text_side(new, new_bytes.as_deref()),
    ) else {
        return Ok(None);
    };
    Ok(Some(unified_file_patch(&change.path, old_side, new_side)))
}

/// One side of a file for its patch: `Some(None)` where the file does not
/// exist, `None` when its bytes are not text.
fn text_side<'a>(
    entry: Option<&ManifestEntry>,
    bytes: Option<&'a [u8]>,
) -> Option<Option<FileSide<'a>>> {
    match (entry, bytes) {
        (Some(entry), Some(bytes)) => Some(Some(FileSide {
            text: as_text(bytes)?,
            mode: entry.mode,
        })),
        _ => Some(None),
    }
}

/// The bytes as text, when they have no NUL byte and are valid UTF-8.
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

//! The validated tree an archive describes, and the rules that make it safe.
//!
//! [`TreeBuilder`] takes entries one by one (from a tar stream or a directory
//! walk), normalizes their names, refuses the unsafe ones and, once every
//! entry is known, checks what depends on the whole tree: no entry below a
//! symlink or a file, and no symlink that resolves outside the root (through
//! other symlinks too). Missing parent directories are added, so in the
//! finished tree every entry's parent precedes it.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use super::error::{ArchiveError, EntryProblem};

/// How many symlinks one resolution may follow, like the kernel's limit.
const MAX_SYMLINK_HOPS: usize = 40;

/// The mode of a parent directory the archive does not list.
const IMPLIED_DIRECTORY_MODE: u32 = 0o755;

/// One validated entry.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// `/`-separated, relative, without `.`, `..` or empty components.
    pub(crate) path: String,
    pub(crate) kind: MemberKind,
    /// Permission bits (`mode & 0o7777`).
    pub(crate) mode: u32,
    /// Seconds since the epoch.
    pub(crate) mtime: u64,
}

/// The type of a validated entry and what it needs to be written.
#[derive(Debug, Clone)]
pub(crate) enum MemberKind {
    Directory,
    File(Content),
    Symlink { target: String },
}

/// Where a file's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// In the archive's spool file.
    Spooled { offset: u64, len: u64 },
    /// In a host file (directory seeds), read when the tar is written.
    Host { path: PathBuf, len: u64 },
}

impl Content {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Spooled { len, .. } | Self::Host { len, .. } => *len,
        }
    }
}

/// An entry as read, before its name is checked.
#[derive(Debug)]
pub(crate) enum RawKind {
    Directory,
    File(Content),
    Symlink { target: Vec<u8> },
    HardLink { target: Vec<u8> },
}

/// Collects entries and validates the tree they form.
#[derive(Debug, Default)]
pub(crate) struct TreeBuilder {
    members: Vec<Member>,
    index: HashMap<String, usize>,
}

impl TreeBuilder {
    /// Adds one entry; `raw_name` is its name as the archive spells it.
    pub(crate) fn add(
        &mut self,
        raw_name: &[u8],
        kind: RawKind,
        mode: u32,
        mtime: u64,
    ) -> Result<(), ArchiveError> {
        let shown = String::from_utf8_lossy(raw_name).into_owned();
        let refuse = |problem| ArchiveError::unsafe_entry(shown.clone(), problem);
        let path = match normalize_name(raw_name).map_err(refuse)? {
            Some(path) => path,
            // The root itself (`.` or `./`): the destination already exists.
            None if matches!(kind, RawKind::Directory) => return Ok(()),
            None => return Err(refuse(EntryProblem::RootNotDirectory)),
        };
        let kind = match kind {
            RawKind::Directory => MemberKind::Directory,
            RawKind::File(content) => MemberKind::File(content),
            RawKind::Symlink { target } => {
                let target =
                    String::from_utf8(target).map_err(|_| refuse(EntryProblem::NonUtf8Name))?;
                if target.is_empty() {
                    return Err(refuse(EntryProblem::EmptyLinkTarget));
                }
                if target.starts_with('/') {
                    return Err(refuse(EntryProblem::AbsoluteLinkTarget { target }));
                }
                MemberKind::Symlink { target }
            }
            RawKind::HardLink { target } => {
                let shown_target = String::from_utf8_lossy(&target).into_owned();
                let not_a_file = || {
                    refuse(EntryProblem::HardLinkTarget {
                        target: shown_target.clone(),
                    })
                };
                let target = normalize_name(&target)
                    .ok()
                    .flatten()
                    .ok_or_else(not_a_file)?;
                match self.get(&target).map(|member| &member.kind) {
                    Some(MemberKind::File(content)) => MemberKind::File(content.clone()),
                    _ => return Err(not_a_file()),
                }
            }
        };
        let member = Member {
            path,
            kind,
            mode: mode & 0o7777,
            mtime,
        };
        match self.index.get(&member.path) {
            None => {
                self.index.insert(member.path.clone(), self.members.len());
                self.members.push(member);
            }
            Some(&at) => match (&self.members[at].kind, &member.kind) {
                // A directory listed twice: the later metadata wins.
                (MemberKind::Directory, MemberKind::Directory) => self.members[at] = member,
                _ => return Err(refuse(EntryProblem::Duplicate)),
            },
        }
        Ok(())
    }

    /// Checks the rules that need the whole tree, adds missing parent
    /// directories and returns the entries sorted by path components
    /// (parents before children).
    pub(crate) fn finish(mut self) -> Result<Vec<Member>, ArchiveError> {
        let mut implied = Vec::new();
        for member in &self.members {
            let mut prefix_end = 0;
            while let Some(slash) = member.path[prefix_end..].find('/') {
                let prefix = &member.path[..prefix_end + slash];
                prefix_end += slash + 1;
                let problem = match self.get(prefix).map(|parent| &parent.kind) {
                    Some(MemberKind::Directory) => continue,
                    Some(MemberKind::Symlink { .. }) => EntryProblem::ThroughSymlink {
                        symlink: prefix.to_owned(),
                    },
                    Some(MemberKind::File(_)) => EntryProblem::ThroughFile {
                        file: prefix.to_owned(),
                    },
                    None => {
                        implied.push(Member {
                            path: prefix.to_owned(),
                            kind: MemberKind::Directory,
                            mode: IMPLIED_DIRECTORY_MODE,
                            mtime: member.mtime,
                        });
                        continue;
                    }
                };
                return Err(ArchiveError::unsafe_entry(member.path.clone(), problem));
            }
        }
        for member in implied {
            if !self.index.contains_key(&member.path) {
                self.index.insert(member.path.clone(), self.members.len());
                self.members.push(member);
            }
        }
        for member in &self.members {
            if let MemberKind::Symlink { target } = &member.kind {
                let parent = member
                    .path
                    .rsplit_once('/')
                    .map_or("", |(parent, _)| parent);
                if self.escapes(parent, target) {
                    return Err(ArchiveError::unsafe_entry(
                        member.path.clone(),
                        EntryProblem::EscapingLinkTarget {
                            target: target.clone(),
                        },
                    ));
                }
            }
        }
        let mut members = self.members;
        members.sort_by(|a, b| compare_paths(&a.path, &b.path));
        Ok(members)
    }

    fn get(&self, path: &str) -> Option<&Member> {
        self.index.get(path).map(|&at| &self.members[at])
    }

    /// Whether `target`, read relative to the directory `parent`, resolves
    /// outside the root, following the tree's own symlinks on the way.
    /// Components the tree does not hold count as plain directories; a
    /// resolution that loops is harmless (the kernel refuses it).
    fn escapes(&self, parent: &str, target: &str) -> bool {
        let mut resolved: Vec<&str> = parent.split('/').filter(|c| !c.is_empty()).collect();
        let mut pending: VecDeque<&str> = target.split('/').collect();
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            match component {
                "" | "." => {}
                ".." => {
                    if resolved.pop().is_none() {
                        return true;
                    }
                }
                name => {
                    resolved.push(name);
                    let Some(MemberKind::Symlink { target }) =
                        self.get(&resolved.join("/")).map(|member| &member.kind)
                    else {
                        continue;
                    };
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return false;
                    }
                    if target.starts_with('/') {
                        return true;
                    }
                    resolved.pop();
                    for part in target.split('/').rev() {
                        pending.push_front(part);
                    }
                }
            }
        }
        false
    }
}

/// Normalizes an archive name: `None` for the root, an error for names that
/// are empty, absolute, not UTF-8 or contain `..`.
fn normalize_name(raw: &[u8]) -> Result<Option<String>, EntryProblem> {
    let name = std::str::from_utf8(raw).map_err(|_| EntryProblem::NonUtf8Name)?;
    if name.is_empty() {
        return Err(EntryProblem::EmptyName);
    }
    if name.starts_with('/') {
        return Err(EntryProblem::AbsolutePath);
    }
    let mut components = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(EntryProblem::ParentComponent),
            normal => components.push(normal),
        }
    }
    Ok((!components.is_empty()).then(|| components.join("/")))
}

/// Orders paths component by component, so a directory's entries follow it
/// directly (`a`, `a/b`, `a.txt`).
pub(crate) fn compare_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> RawKind {
        RawKind::File(Content::Spooled { offset: 0, len: 0 })
    }

    fn symlink(target: &str) -> RawKind {
        RawKind::Symlink {
            target: target.as_bytes().to_vec(),
        }
    }

    fn problem_of(result: Result<Vec<Member>, ArchiveError>) -> (String, EntryProblem) {
        match result {
            Err(ArchiveError::UnsafeEntry { member, problem }) => (member, problem),
            other => panic!("expected an unsafe entry, got {other:?}"),
        }
    }

    #[test]
    fn names_are_normalized_and_unsafe_ones_refused() {
        assert_eq!(normalize_name(b"./a//b/./c/"), Ok(Some("a/b/c".to_owned())));
        assert_eq!(normalize_name(b"./"), Ok(None));
        assert_eq!(normalize_name(b""), Err(EntryProblem::EmptyName));
        assert_eq!(
            normalize_name(b"/etc/passwd"),
            Err(EntryProblem::AbsolutePath)
        );
        assert_eq!(
            normalize_name(b"a/../../x"),
            Err(EntryProblem::ParentComponent)
        );
        assert_eq!(normalize_name(b"a/\xff"), Err(EntryProblem::NonUtf8Name));
    }

    #[test]
    fn parents_are_implied_and_sorted_first() {
        let mut tree = TreeBuilder::default();
        tree.add(b"a/b/c.txt", file(), 0o644, 7).unwrap();
        tree.add(b"a.txt", file(), 0o600, 1).unwrap();
        let members = tree.finish().unwrap();
        let paths: Vec<_> = members.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c.txt", "a.txt"]);
        assert_eq!(members[0].mode, IMPLIED_DIRECTORY_MODE);
        assert_eq!(members[0].mtime, 7);
    }

    #[test]
    fn symlinks_resolving_through_other_symlinks_are_checked() {
        // s/d -> .. is the root; s/e -> d/../x then resolves above the root,
        // although its target looks harmless lexically.
        let mut tree = TreeBuilder::default();
        tree.add(b"s/d", symlink(".."), 0o777, 0).unwrap();
        tree.add(b"s/e", symlink("d/../x"), 0o777, 0).unwrap();
        let (member, problem) = problem_of(tree.finish());
        assert_eq!(member, "s/e");
        assert_eq!(
            problem,
            EntryProblem::EscapingLinkTarget {
                target: "d/../x".to_owned()
            }
        );
    }

    #[test]
    fn inside_symlinks_chains_and_loops_are_accepted() {
        let mut tree = TreeBuilder::default();
        tree.add(b"lib/real/cli.js", file(), 0o644, 0).unwrap();
        tree.add(b"lib/link", symlink("real"), 0o777, 0).unwrap();
        tree.add(b"bin/cli", symlink("../lib/link/cli.js"), 0o777, 0)
            .unwrap();
        tree.add(b"loop/a", symlink("b"), 0o777, 0).unwrap();
        tree.add(b"loop/b", symlink("a"), 0o777, 0).unwrap();
        tree.add(b"dangling", symlink("not/there"), 0o777, 0)
            .unwrap();
        assert_eq!(tree.finish().unwrap().len(), 10);
    }

    #[test]
    fn entries_below_symlinks_or_files_are_refused_in_any_order() {
        let mut tree = TreeBuilder::default();
        tree.add(b"a/b", file(), 0o644, 0).unwrap();
        tree.add(b"a", symlink("elsewhere"), 0o777, 0).unwrap();
        let (member, problem) = problem_of(tree.finish());
        assert_eq!(member, "a/b");
        assert_eq!(
            problem,
            EntryProblem::ThroughSymlink {
                symlink: "a".to_owned()
            }
        );

        let mut tree = TreeBuilder::default();
        tree.add(b"f", file(), 0o644, 0).unwrap();
        tree.add(b"f/g", file(), 0o644, 0).unwrap();
        let (_, problem) = problem_of(tree.finish());
        assert_eq!(
            problem,
            EntryProblem::ThroughFile {
                file: "f".to_owned()
            }
        );
    }

    #[test]
    fn duplicates_are_refused_except_repeated_directories() {
        let mut tree = TreeBuilder::default();
        tree.add(b"d", RawKind::Directory, 0o700, 1).unwrap();
        tree.add(b"./d/", RawKind::Directory, 0o755, 2).unwrap();
        tree.add(b"f", file(), 0o644, 0).unwrap();
        let error = tree.add(b"./f", file(), 0o644, 0).unwrap_err();
        assert!(matches!(
            error,
            ArchiveError::UnsafeEntry {
                problem: EntryProblem::Duplicate,
                ..
            }
        ));
        let members = tree.finish().unwrap();
        assert_eq!(members[0].mode, 0o755);
    }

    #[test]
    fn hard_links_must_name_an_earlier_file() {
        let mut tree = TreeBuilder::default();
        let link = |target: &str| RawKind::HardLink {
            target: target.as_bytes().to_vec(),
        };
        let error = tree.add(b"early", link("later"), 0o644, 0).unwrap_err();
        assert!(
            error.to_string().contains("hard link to `later`"),
            "{error}"
        );
        tree.add(b"later", file(), 0o644, 0).unwrap();
        tree.add(b"copy", link("./later"), 0o644, 0).unwrap();
        assert!(tree
            .add(b"out", link("../../etc/shadow"), 0o644, 0)
            .is_err());
        assert!(tree.add(b"abs", link("/etc/shadow"), 0o644, 0).is_err());
    }
}

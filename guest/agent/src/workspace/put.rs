//! `PutArchive`: extracts an uploaded tar into a directory as one atomic
//! merge.
//!
//! 1. **Stage.** Every member is written into a staging directory next to
//!    the destination while the upload streams in. Refused here, before
//!    anything visible changes: absolute names, `..`, empty names, device,
//!    fifo, socket and sparse members, hard links to anything but an
//!    earlier file member, members below an earlier symlink member, and
//!    absolute symlink targets.
//! 2. **Check.** Once the upload ended properly: staged directories get
//!    their modes and mtimes; each symlink's target is resolved against the
//!    merged tree (staged entries over existing ones, following symlinks on
//!    the way) and refused if it leaves the destination; each member is
//!    compared with what exists (a directory merges into a directory, a
//!    file or symlink replaces a file or symlink; a directory against a
//!    non-directory is refused, and so is extracting through a symlink).
//! 3. **Commit.** Entries move into place by renames under the rollback
//!    journal of [`Transaction`]: a new subtree moves in with one rename, a
//!    replaced file is moved aside first. A failure restores the old tree.
//!
//! Modes (`& 0o7777`), mtimes (with nanoseconds from PAX headers) and
//! symlinks are preserved; owners are not (files belong to the agent's
//! user, root).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pyro_guest_protocol::{ArchiveSummary, PutArchiveRequest};

use super::files::{self, Stamp};
use super::paths::{self, is_missing, Resolved};
use super::transfer::UploadSource;
use super::txn::Transaction;
use super::{invalid, io_failure, refused, wrong_type, Failure};

/// How many symlinks a target may pass through before it counts as a loop.
const MAX_SYMLINK_HOPS: usize = 40;

/// Extracts the upload into `request.destination`.
pub fn put_archive<U: UploadSource>(
    request: &PutArchiveRequest,
    upload: &mut U,
) -> Result<ArchiveSummary, Failure> {
    let destination = paths::absolute(&request.destination, "destination")?;
    let (anchor, exists) = match paths::resolve(&destination)? {
        Resolved::Found(meta) if meta.is_dir() => (destination.clone(), true),
        Resolved::Found(meta) if meta.file_type().is_symlink() => {
            return Err(refused(format!(
                "the destination {} is a symlink; pyro does not extract through symlinks, use the directory it points to",
                destination.display()
            )))
        }
        Resolved::Found(_) => {
            return Err(wrong_type(format!(
                "the destination {} exists and is not a directory",
                destination.display()
            )))
        }
        Resolved::Missing { existing } => (existing, false),
    };
    Transaction::begin(&anchor)?.run(|txn| {
        let tree = txn.stage().join("tree");
        std::fs::create_dir(&tree)
            .map_err(|err| io_failure(&format!("creating {}", tree.display()), &err))?;
        let mut staging = Staging::new(tree, destination.clone());
        let mut counted = CountingReader {
            inner: &mut *upload,
            count: 0,
        };
        staging.read_archive(&mut counted)?;
        let consumed = counted.count;
        let trailing = upload.finish()?;
        staging.finalize_dirs()?;
        let plan = if exists {
            staging.plan_merge()?
        } else {
            Vec::new()
        };
        staging.check_symlinks(exists)?;
        if exists {
            staging.commit_merge(txn, &plan)?;
        } else {
            staging.commit_new(txn, &anchor)?;
        }
        Ok(ArchiveSummary {
            entry_count: staging.entry_count,
            content_bytes: staging.content_bytes,
            archive_bytes: consumed + trailing,
        })
    })
}

struct CountingReader<'a, R: Read> {
    inner: &'a mut R,
    count: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A staged entry.
#[derive(Debug)]
enum Staged {
    /// A directory: explicit ones carry the member's mode and mtime,
    /// implicit ones (parents of members) none.
    Dir(Option<(u32, Stamp)>),
    File,
    Symlink(PathBuf),
}

/// What committing does with one staged entry.
#[derive(Debug)]
enum Action {
    /// Nothing exists there: move the staged entry (a whole subtree for a
    /// directory) into place.
    Install(PathBuf),
    /// A file or symlink exists there: move it aside, then install.
    Replace(PathBuf),
    /// A directory exists there: merge into it.
    Merge(PathBuf),
}

struct Staging {
    tree: PathBuf,
    destination: PathBuf,
    entries: BTreeMap<PathBuf, Staged>,
    entry_count: u64,
    content_bytes: u64,
    buffer: Vec<u8>,
}

impl Staging {
    fn new(tree: PathBuf, destination: PathBuf) -> Self {
        Self {
            tree,
            destination,
            entries: BTreeMap::new(),
            entry_count: 0,
            content_bytes: 0,
            buffer: vec![0u8; 256 * 1024],
        }
    }

    fn read_archive<R: Read>(&mut self, reader: R) -> Result<(), Failure> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|err| malformed(&err))?;
        for entry in entries {
            let mut entry = entry.map_err(|err| malformed(&err))?;
            self.stage_entry(&mut entry)?;
        }
        Ok(())
    }

    fn stage_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Failure> {
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            // Global PAX headers (`git archive` writes one) carry no file.
            return Ok(());
        }
        let raw = entry.path().map_err(|err| malformed(&err))?.into_owned();
        let rel = match paths::relative(&raw) {
            Ok(Some(rel)) => rel,
            // `./`, the destination itself: its mode stays as it is.
            Ok(None) if entry_type.is_dir() => return Ok(()),
            Ok(None) => {
                return Err(refused(format!(
                    "archive member {:?} names the destination itself",
                    raw.display().to_string()
                )))
            }
            Err(err) => {
                return Err(refused(format!(
                "archive member {:?} {}; only relative paths inside the destination are extracted",
                raw.display().to_string(),
                err.reason()
            )))
            }
        };
        let shown = paths::slash_text(&rel);
        let kind = member_kind(entry_type, &shown)?;
        let mode = entry.header().mode().map_err(|err| malformed(&err))? & 0o7777;
        let mtime = member_mtime(entry)?;

        self.stage_parents(&rel, &shown)?;
        let staged_path = self.tree.join(&rel);
        match (self.entries.get(&rel), kind) {
            (Some(Staged::Dir(_)), MemberKind::Dir) => {
                self.entries.insert(rel, Staged::Dir(Some((mode, mtime))));
                self.entry_count += 1;
                return Ok(());
            }
            (Some(Staged::Dir(_)), _) | (Some(_), MemberKind::Dir) => {
                return Err(invalid(format!(
                    "archive member {shown} appears both as a directory and as a non-directory"
                )))
            }
            (Some(_), _) => {
                // A later member replaces an earlier one, as tar does.
                std::fs::remove_file(&staged_path).map_err(|err| self.stage_error(&rel, &err))?;
            }
            (None, _) => {}
        }

        let staged = match kind {
            MemberKind::Dir => {
                create_private_dir(&staged_path).map_err(|err| self.stage_error(&rel, &err))?;
                Staged::Dir(Some((mode, mtime)))
            }
            MemberKind::File => {
                self.stage_file(entry, &rel, &staged_path, mode, mtime)?;
                Staged::File
            }
            MemberKind::Symlink => {
                let target = link_target(entry, &shown)?;
                if target.has_root() {
                    return Err(refused(format!(
                        "symlink member {shown} points to the absolute path {}; only relative targets inside the destination are allowed",
                        target.display()
                    )));
                }
                std::os::unix::fs::symlink(&target, &staged_path)
                    .and_then(|()| files::set_times(&staged_path, None, mtime))
                    .map_err(|err| self.stage_error(&rel, &err))?;
                Staged::Symlink(target)
            }
            MemberKind::HardLink => {
                let target = link_target(entry, &shown)?;
                let target_rel = match paths::relative(&target) {
                    Ok(Some(target_rel)) => target_rel,
                    _ => return Err(bad_hard_link(&shown, &target)),
                };
                if !matches!(self.entries.get(&target_rel), Some(Staged::File)) {
                    return Err(bad_hard_link(&shown, &target));
                }
                std::fs::hard_link(self.tree.join(&target_rel), &staged_path)
                    .map_err(|err| self.stage_error(&rel, &err))?;
                Staged::File
            }
        };
        self.entries.insert(rel, staged);
        self.entry_count += 1;
        Ok(())
    }

    /// Makes sure every parent of `rel` is a staged directory, creating
    /// implicit ones, and refuses members below a symlink or a file.
    fn stage_parents(&mut self, rel: &Path, shown: &str) -> Result<(), Failure> {
        let mut parent = PathBuf::new();
        let names: Vec<&std::ffi::OsStr> = rel.iter().collect();
        for name in names.iter().take(names.len().saturating_sub(1)) {
            parent.push(name);
            match self.entries.get(&parent) {
                Some(Staged::Dir(_)) => {}
                Some(Staged::Symlink(_)) => {
                    return Err(refused(format!(
                        "archive member {shown} would pass through the symlink member {}",
                        paths::slash_text(&parent)
                    )))
                }
                Some(Staged::File) => {
                    return Err(invalid(format!(
                        "archive member {shown} is below {}, which the archive makes a file",
                        paths::slash_text(&parent)
                    )))
                }
                None => {
                    create_private_dir(&self.tree.join(&parent))
                        .map_err(|err| self.stage_error(&parent, &err))?;
                    self.entries.insert(parent.clone(), Staged::Dir(None));
                }
            }
        }
        Ok(())
    }

    fn stage_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        staged_path: &Path,
        mode: u32,
        mtime: Stamp,
    ) -> Result<(), Failure> {
        let mut file = files::create_new(staged_path).map_err(|err| self.stage_error(rel, &err))?;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(malformed(&err)),
            };
            file.write_all(&self.buffer[..n])
                .map_err(|err| self.stage_error(rel, &err))?;
            self.content_bytes += n as u64;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|err| self.stage_error(rel, &err))?;
        drop(file);
        files::set_times(staged_path, None, mtime).map_err(|err| self.stage_error(rel, &err))
    }

    fn stage_error(&self, rel: &Path, err: &io::Error) -> Failure {
        io_failure(
            &format!("staging {}", self.destination.join(rel).display()),
            err,
        )
    }

    /// Gives staged directories their modes and mtimes, deepest first (a
    /// directory's mtime changes while entries are added to it).
    fn finalize_dirs(&self) -> Result<(), Failure> {
        for (rel, staged) in self.entries.iter().rev() {
            if let Staged::Dir(attributes) = staged {
                let path = self.tree.join(rel);
                let (mode, mtime) = match attributes {
                    Some((mode, mtime)) => (*mode, Some(*mtime)),
                    None => (0o755, None),
                };
                files::set_mode(&path, mode)
                    .and_then(|()| mtime.map_or(Ok(()), |m| files::set_times(&path, None, m)))
                    .map_err(|err| self.stage_error(rel, &err))?;
            }
        }
        Ok(())
    }

    /// Compares every staged entry with what exists in the destination.
    fn plan_merge(&self) -> Result<Vec<Action>, Failure> {
        let mut actions = Vec::new();
        let mut installed: Option<&Path> = None;
        for (rel, staged) in &self.entries {
            if installed.is_some_and(|subtree| rel.starts_with(subtree)) {
                continue;
            }
            let target = self.destination.join(rel);
            let shown = paths::slash_text(rel);
            let existing = match std::fs::symlink_metadata(&target) {
                Ok(meta) => Some(meta),
                Err(err) if is_missing(&err) => None,
                Err(err) => return Err(io_failure(&format!("reading {}", target.display()), &err)),
            };
            match (staged, existing) {
                (_, None) => {
                    actions.push(Action::Install(rel.clone()));
                    installed = Some(rel);
                }
                (Staged::Dir(_), Some(meta)) if meta.is_dir() => {
                    actions.push(Action::Merge(rel.clone()));
                }
                (Staged::Dir(_), Some(meta)) if meta.file_type().is_symlink() => {
                    return Err(refused(format!(
                        "archive directory {shown} would be extracted through the symlink {}; remove the symlink first",
                        target.display()
                    )))
                }
                (Staged::Dir(_), Some(_)) => {
                    return Err(wrong_type(format!(
                        "archive directory {shown} conflicts with the existing file {}; delete the file first",
                        target.display()
                    )))
                }
                (_, Some(meta)) if meta.is_dir() => {
                    return Err(wrong_type(format!(
                        "archive member {shown} would replace the directory {}; delete the directory first",
                        target.display()
                    )))
                }
                (_, Some(_)) => actions.push(Action::Replace(rel.clone())),
            }
        }
        Ok(actions)
    }

    /// Refuses symlink members whose target, resolved in the merged tree,
    /// leaves the destination.
    fn check_symlinks(&self, exists: bool) -> Result<(), Failure> {
        for (rel, staged) in &self.entries {
            if let Staged::Symlink(target) = staged {
                let start = rel.parent().unwrap_or(Path::new(""));
                if self.escapes(start, target, exists) {
                    return Err(refused(format!(
                        "symlink member {} points to {}, outside the destination; only targets inside it are allowed",
                        paths::slash_text(rel),
                        target.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether `target`, seen from the directory `start` (relative to the
    /// destination), leaves the destination. Intermediate symlinks are
    /// followed (staged ones first, then existing ones); the last component
    /// is not, since a symlink there is checked on its own.
    fn escapes(&self, start: &Path, target: &Path, exists: bool) -> bool {
        let mut stack: Vec<OsString> = start.iter().map(OsString::from).collect();
        let mut queue: VecDeque<Step> = steps(target);
        let mut hops = 0;
        while let Some(step) = queue.pop_front() {
            match step {
                Step::Root => return true,
                Step::Up => {
                    if stack.pop().is_none() {
                        return true;
                    }
                }
                Step::Name(name) => {
                    stack.push(name);
                    if queue.is_empty() {
                        break;
                    }
                    let here: PathBuf = stack.iter().collect();
                    if let Some(link) = self.symlink_at(&here, exists) {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return true;
                        }
                        stack.pop();
                        let mut expanded = steps(&link);
                        expanded.extend(queue);
                        queue = expanded;
                    }
                }
            }
        }
        false
    }

    fn symlink_at(&self, rel: &Path, exists: bool) -> Option<PathBuf> {
        match self.entries.get(rel) {
            Some(Staged::Symlink(target)) => Some(target.clone()),
            Some(_) => None,
            None if exists => {
                let path = self.destination.join(rel);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(&path).ok(),
                    _ => None,
                }
            }
            None => None,
        }
    }

    /// Merges the staged tree into the existing destination.
    fn commit_merge(&self, txn: &mut Transaction, plan: &[Action]) -> Result<(), Failure> {
        let mut merged = Vec::new();
        for action in plan {
            match action {
                Action::Install(rel) | Action::Replace(rel) => {
                    let target = self.destination.join(rel);
                    let parent = target.parent().unwrap_or(&self.destination);
                    let moved = txn.touch_dir(parent).and_then(|()| {
                        if matches!(action, Action::Replace(_)) {
                            txn.move_aside(&target)?;
                        }
                        txn.install(&self.tree.join(rel), &target)
                    });
                    moved.map_err(|err| {
                        io_failure(&format!("moving {} into place", target.display()), &err)
                    })?;
                }
                Action::Merge(rel) => {
                    let target = self.destination.join(rel);
                    txn.touch_dir(&target).map_err(|err| {
                        io_failure(&format!("reading {}", target.display()), &err)
                    })?;
                    if let Some(Staged::Dir(Some(attributes))) = self.entries.get(rel) {
                        merged.push((target, *attributes));
                    }
                }
            }
        }
        for (target, (mode, mtime)) in merged.iter().rev() {
            txn.set_dir_attributes(target, *mode, *mtime)
                .map_err(|err| {
                    io_failure(&format!("setting the mode of {}", target.display()), &err)
                })?;
        }
        Ok(())
    }

    /// Creates the missing destination (and its missing parents) by moving
    /// the staged tree into place.
    fn commit_new(&self, txn: &mut Transaction, anchor: &Path) -> Result<(), Failure> {
        let missing = self
            .destination
            .strip_prefix(anchor)
            .unwrap_or(&self.destination);
        let names: Vec<&std::ffi::OsStr> = missing.iter().collect();
        let mut current = anchor.to_path_buf();
        for name in names.iter().take(names.len().saturating_sub(1)) {
            let parent = current.clone();
            current.push(name);
            txn.touch_dir(&parent)
                .and_then(|()| txn.create_dir(&current, 0o755))
                .map_err(|err| io_failure(&format!("creating {}", current.display()), &err))?;
        }
        files::set_mode(&self.tree, 0o755)
            .and_then(|()| txn.touch_dir(&current))
            .and_then(|()| txn.install(&self.tree, &self.destination))
            .map_err(|err| io_failure(&format!("creating {}", self.destination.display()), &err))
    }
}

#[derive(Debug, Clone, Copy)]
enum MemberKind {
    Dir,
    File,
    Symlink,
    HardLink,
}

fn member_kind(entry_type: tar::EntryType, shown: &str) -> Result<MemberKind, Failure> {
    if entry_type.is_file() || entry_type.is_contiguous() {
        return Ok(MemberKind::File);
    }
    if entry_type.is_dir() {
        return Ok(MemberKind::Dir);
    }
    if entry_type.is_symlink() {
        return Ok(MemberKind::Symlink);
    }
    if entry_type.is_hard_link() {
        return Ok(MemberKind::HardLink);
    }
    let what = if entry_type.is_character_special() {
        "a character device"
    } else if entry_type.is_block_special() {
        "a block device"
    } else if entry_type.is_fifo() {
        "a fifo"
    } else if entry_type.is_gnu_sparse() {
        "a sparse file"
    } else {
        "of an unsupported type"
    };
    Err(refused(format!(
        "archive member {shown} is {what}; only files, directories, symlinks and hard links are extracted"
    )))
}

/// The member's mtime: the PAX `mtime` record (with its fraction) when
/// present, else the header's whole seconds.
fn member_mtime<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Stamp, Failure> {
    if let Some(extensions) = entry.pax_extensions().map_err(|err| malformed(&err))? {
        for extension in extensions {
            let extension = extension.map_err(|err| malformed(&err))?;
            if extension.key() == Ok("mtime") {
                if let Some(stamp) = extension.value().ok().and_then(parse_pax_time) {
                    return Ok(stamp);
                }
            }
        }
    }
    let secs = entry.header().mtime().map_err(|err| malformed(&err))?;
    Ok(Stamp::from_secs(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// Parses a PAX time such as `1700000000.123456789` or `-1.5`.
fn parse_pax_time(text: &str) -> Option<Stamp> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: i64 = 0;
    for (index, digit) in fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .enumerate()
    {
        let value = i64::from(digit.to_digit(10)?);
        nanos += value * 10i64.pow(8 - index as u32);
    }
    if !negative {
        return Some(Stamp { secs, nanos });
    }
    if nanos == 0 {
        Some(Stamp { secs: -secs, nanos })
    } else {
        Some(Stamp {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        })
    }
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>, shown: &str) -> Result<PathBuf, Failure> {
    match entry.link_name().map_err(|err| malformed(&err))? {
        Some(target) if !target.as_os_str().is_empty() => Ok(target.into_owned()),
        _ => Err(invalid(format!("link member {shown} has no target"))),
    }
}

fn bad_hard_link(shown: &str, target: &Path) -> Failure {
    refused(format!(
        "hard link member {shown} points to {}, which is not an earlier file member of the archive",
        target.display()
    ))
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

fn malformed(err: &io::Error) -> Failure {
    invalid(format!(
        "the archive is malformed: {}",
        super::describe_io(err)
    ))
}

/// One step of resolving a symlink target.
#[derive(Debug)]
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(target: &Path) -> VecDeque<Step> {
    target
        .components()
        .filter_map(|component| match component {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::ParentDir => Some(Step::Up),
            Component::CurDir => None,
            Component::Normal(name) => Some(Step::Name(name.to_os_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! Transactions: a staging directory and a rollback journal.
//!
//! A change is built in a staging directory created next to its target, on
//! the same filesystem, before anything visible changes; a failure there
//! just removes the staging directory. The change is then moved into place
//! by renames, each journaled first: a replaced entry is moved aside into
//! the staging directory (never deleted), an installed entry remembers
//! where it came from, a created directory is removed again, and every
//! directory whose entries change has its mode and times recorded. On a
//! failure the journal is replayed backwards, which restores the old tree
//! exactly, timestamps included. Only after a full commit is the staging
//! directory (with the replaced entries) removed.
//!
//! If undoing fails too, the staging directory is kept, since it holds the
//! replaced originals, and the error says where.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pyro_guest_protocol::GuestErrorKind;

use super::files::{self, Stamp};
use super::{describe_io, fail, io_failure, Failure};

/// The prefix of staging directory names.
pub const STAGE_PREFIX: &str = ".pyro-stage-";

/// Distinguishes the staging directories of one agent process.
static NEXT_STAGE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
enum Undo {
    /// `at` was renamed from `from`; undo renames it back.
    Installed { from: PathBuf, at: PathBuf },
    /// `original` was moved to `aside`; undo moves it back.
    MovedAside { original: PathBuf, aside: PathBuf },
    /// The directory `path` was created; undo removes it (empty by then).
    CreatedDir(PathBuf),
    /// The directory `path` had these attributes; undo restores them.
    Attributes {
        path: PathBuf,
        mode: u32,
        atime: Stamp,
        mtime: Stamp,
    },
}

/// One transactional change under a directory.
#[derive(Debug)]
pub struct Transaction {
    stage: PathBuf,
    journal: Vec<Undo>,
    touched: HashSet<PathBuf>,
    asides: u64,
    steps: usize,
    finished: bool,
}

impl Transaction {
    /// Starts a transaction staged in a new directory inside `anchor` (an
    /// existing directory on the filesystem the change lands on). The
    /// anchor's own times are recorded first, so a failed change leaves
    /// even them as they were.
    pub fn begin(anchor: &Path) -> Result<Self, Failure> {
        let serial = NEXT_STAGE.fetch_add(1, Ordering::Relaxed);
        let stage = anchor.join(format!("{STAGE_PREFIX}{}-{serial}", std::process::id()));
        let mut txn = Self {
            stage,
            journal: Vec::new(),
            touched: HashSet::new(),
            asides: 0,
            steps: 0,
            finished: false,
        };
        txn.touch_dir(anchor)
            .map_err(|err| io_failure(&format!("reading {}", anchor.display()), &err))?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&txn.stage)
            .map_err(|err| {
                io_failure(
                    &format!("creating a staging directory in {}", anchor.display()),
                    &err,
                )
            })?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(txn.aside_dir())
            .map_err(|err| io_failure(&format!("creating {}", txn.aside_dir().display()), &err))?;
        Ok(txn)
    }

    /// The staging directory, for the caller's staged entries.
    pub fn stage(&self) -> &Path {
        &self.stage
    }

    fn aside_dir(&self) -> PathBuf {
        self.stage.join("aside")
    }

    /// Runs `change` and commits, or rolls back when it fails.
    pub fn run<T>(
        mut self,
        change: impl FnOnce(&mut Self) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        match change(&mut self) {
            Ok(value) => {
                self.commit();
                Ok(value)
            }
            Err(failure) => Err(self.rollback(failure)),
        }
    }

    /// Records the mode and times of the directory `dir` before its entries
    /// change (once per directory).
    pub fn touch_dir(&mut self, dir: &Path) -> io::Result<()> {
        if self.touched.contains(dir) {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(dir)?;
        self.journal.push(Undo::Attributes {
            path: dir.to_path_buf(),
            mode: files::mode_of(&meta),
            atime: files::atime_of(&meta),
            mtime: files::mtime_of(&meta),
        });
        self.touched.insert(dir.to_path_buf());
        Ok(())
    }

    /// Moves the staged entry `from` to `to`, which must not exist.
    pub fn install(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.checkpoint()?;
        files::rename_noreplace(from, to)?;
        self.journal.push(Undo::Installed {
            from: from.to_path_buf(),
            at: to.to_path_buf(),
        });
        Ok(())
    }

    /// Moves the existing entry `path` (a file or symlink) aside.
    pub fn move_aside(&mut self, path: &Path) -> io::Result<()> {
        self.checkpoint()?;
        self.asides += 1;
        let aside = self.aside_dir().join(self.asides.to_string());
        files::rename_noreplace(path, &aside)?;
        self.journal.push(Undo::MovedAside {
            original: path.to_path_buf(),
            aside,
        });
        Ok(())
    }

    /// Creates the directory `path` with `mode`.
    pub fn create_dir(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        self.checkpoint()?;
        std::fs::create_dir(path)?;
        self.journal.push(Undo::CreatedDir(path.to_path_buf()));
        files::set_mode(path, mode)
    }

    /// Sets the mode and mtime of a directory recorded with
    /// [`Transaction::touch_dir`].
    pub fn set_dir_attributes(&mut self, dir: &Path, mode: u32, mtime: Stamp) -> io::Result<()> {
        self.touch_dir(dir)?;
        self.checkpoint()?;
        files::set_mode(dir, mode)?;
        files::set_times(dir, None, mtime)
    }

    fn commit(mut self) {
        self.finished = true;
        if let Err(err) = std::fs::remove_dir_all(&self.stage) {
            crate::log(&format!(
                "removing the staging directory {} failed: {err}",
                self.stage.display()
            ));
        }
        // The staging directory's removal changed the anchor's times; the
        // change is committed, so they stay.
        self.journal.clear();
    }

    /// Undoes the journal; returns `failure`, or a partially-applied error
    /// when undoing failed too.
    fn rollback(mut self, failure: Failure) -> Failure {
        self.finished = true;
        let problems = self.undo_all();
        if problems.is_empty() {
            return failure;
        }
        let cause = match &failure {
            Failure::Report(error) => error.message.clone(),
            Failure::Channel(err) => format!("the host channel failed: {err}"),
        };
        fail(
            GuestErrorKind::PartiallyApplied,
            format!(
                "{cause}; undoing the change failed too ({}); replaced originals are kept in {}",
                problems.join("; "),
                self.aside_dir().display()
            ),
        )
    }

    fn undo_all(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut attributes = Vec::new();
        while let Some(undo) = self.journal.pop() {
            let result = match &undo {
                Undo::Installed { from, at } => {
                    undo_step().and_then(|()| std::fs::rename(at, from))
                }
                Undo::MovedAside { original, aside } => {
                    undo_step().and_then(|()| files::rename_noreplace(aside, original))
                }
                Undo::CreatedDir(path) => undo_step().and_then(|()| std::fs::remove_dir(path)),
                Undo::Attributes { .. } => {
                    // Restored last: undoing entries changes directory times.
                    attributes.push(undo);
                    continue;
                }
            };
            if let Err(err) = result {
                problems.push(describe_undo(&undo, &err));
            }
        }
        // The staging directory goes before the anchor's times are restored.
        if problems.is_empty() {
            if let Err(err) = std::fs::remove_dir_all(&self.stage) {
                problems.push(format!(
                    "removing {} failed: {}",
                    self.stage.display(),
                    describe_io(&err)
                ));
            }
        }
        // Deepest first, as recorded last first.
        for undo in attributes {
            if let Undo::Attributes {
                path,
                mode,
                atime,
                mtime,
            } = &undo
            {
                let restored = files::set_mode(path, *mode)
                    .and_then(|()| files::set_times(path, Some(*atime), *mtime));
                if let Err(err) = restored {
                    if !super::paths::is_missing(&err) {
                        problems.push(describe_undo(&undo, &err));
                    }
                }
            }
        }
        problems
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        self.steps += 1;
        #[cfg(test)]
        if fault::FAIL_AT_STEP.get() == Some(self.steps) {
            return Err(io::Error::other("injected failure"));
        }
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Only reached without `run` finishing (a panic): undo what we can.
        if !self.finished {
            let _ = self.undo_all();
        }
    }
}

fn undo_step() -> io::Result<()> {
    #[cfg(test)]
    if fault::FAIL_UNDO.get() {
        return Err(io::Error::other("injected undo failure"));
    }
    Ok(())
}

fn describe_undo(undo: &Undo, err: &io::Error) -> String {
    let err = describe_io(err);
    match undo {
        Undo::Installed { at, .. } => format!("removing the new {} failed: {err}", at.display()),
        Undo::MovedAside { original, .. } => {
            format!("restoring {} failed: {err}", original.display())
        }
        Undo::CreatedDir(path) => format!(
            "removing the new directory {} failed: {err}",
            path.display()
        ),
        Undo::Attributes { path, .. } => {
            format!(
                "restoring the mode and times of {} failed: {err}",
                path.display()
            )
        }
    }
}

/// Fault injection for tests: make the n-th journaled step of the
/// transactions on this thread fail, or every undo step.
#[cfg(test)]
pub mod fault {
    use std::cell::Cell;

    thread_local! {
        pub(super) static FAIL_AT_STEP: Cell<Option<usize>> = const { Cell::new(None) };
        pub(super) static FAIL_UNDO: Cell<bool> = const { Cell::new(false) };
    }

    /// Fails the `step`-th journaled step (1-based) of each transaction.
    pub fn fail_at_step(step: Option<usize>) {
        FAIL_AT_STEP.set(step);
    }

    /// Makes every undo step fail.
    pub fn fail_undo(fail: bool) {
        FAIL_UNDO.set(fail);
    }
}

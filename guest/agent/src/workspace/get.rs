//! `GetArchive`: streams a tar of a file, a directory or a symlink.
//!
//! A directory is archived as its children (recursively, paths relative to
//! it, each directory before its contents); a file under its own name; a
//! symlink as the link itself. Modes, mtimes (whole seconds) and symlinks
//! are kept; owners are written as 0 and fifos, sockets and devices are
//! left out. With `only`, just the listed regular files of a directory are
//! sent, in the order given.
//!
//! A file that shrinks while it is read is padded with zeros and one that
//! grows is cut at the size it had when opened, so the archive stays valid;
//! a directory entry that vanishes during the walk is skipped.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use pyro_guest_protocol::{ArchiveSummary, EntryKind, GetArchiveRequest, GuestErrorKind, Response};

use super::files::{self, kind_of};
use super::paths::{self, is_missing, Resolved};
use super::transfer::{DataWriter, Reply};
use super::walk::Walker;
use super::{fail, invalid, io_failure, refused, wrong_type, Failure};

/// Streams the archive of `request.path` on `reply`.
pub fn get_archive<R: Reply>(
    request: &GetArchiveRequest,
    reply: &mut R,
) -> Result<ArchiveSummary, Failure> {
    let path = paths::absolute(&request.path, "archive")?;
    let meta = match paths::resolve(&path)? {
        Resolved::Found(meta) => meta,
        Resolved::Missing { .. } => {
            return Err(fail(
                GuestErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ))
        }
    };
    let kind = kind_of(&meta);
    if kind == EntryKind::Other {
        return Err(wrong_type(format!(
            "{} is a fifo, socket or device; only files, directories and symlinks can be archived",
            path.display()
        )));
    }
    let only = match (&request.only, kind) {
        (Some(list), EntryKind::Directory) => Some(check_only(&path, list)?),
        (Some(_), _) => {
            return Err(invalid(format!(
                "`only` needs a directory, but {} is a {}",
                path.display(),
                kind.as_str()
            )))
        }
        (None, _) => None,
    };
    reply
        .send(&Response::ArchiveStarted { kind })
        .map_err(Failure::Channel)?;

    let mut writer = DataWriter::new(reply);
    let mut counts = Counts::default();
    let outcome = {
        let mut builder = tar::Builder::new(&mut writer);
        let appended = match (kind, only) {
            (EntryKind::Directory, Some(files)) => append_only(&mut builder, &files, &mut counts),
            (EntryKind::Directory, None) => append_tree(&mut builder, &path, &mut counts),
            _ => {
                let name = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
                append_entry(&mut builder, &path, &name, &meta, &mut counts).map(|_| ())
            }
        };
        let outcome = appended.and_then(|()| builder.finish().map_err(Problem::Archive));
        if outcome.is_err() {
            builder.get_mut().abandon();
        }
        outcome
    };
    if let Err(problem) = outcome {
        if let Some(err) = writer.take_channel_error() {
            return Err(Failure::Channel(err));
        }
        return Err(match problem {
            Problem::Content(path, err) => io_failure(&format!("reading {}", path.display()), &err),
            Problem::Archive(err) => io_failure("writing the archive", &err),
            Problem::Failure(failure) => failure,
        });
    }
    let archive_bytes = writer.finish()?;
    Ok(ArchiveSummary {
        entry_count: counts.entries,
        content_bytes: counts.content_bytes,
        archive_bytes,
    })
}

#[derive(Debug, Default)]
struct Counts {
    entries: u64,
    content_bytes: u64,
}

enum Problem {
    /// Reading a file (or link) in the tree failed.
    Content(PathBuf, io::Error),
    /// Writing the archive failed (the channel, or the tar encoder).
    Archive(io::Error),
    /// Already a reportable failure.
    Failure(Failure),
}

type Builder<'a, 'b, R> = tar::Builder<&'a mut DataWriter<'b, R>>;

/// Checks every `only` entry names an existing regular file below `dir`.
fn check_only(dir: &Path, list: &[String]) -> Result<Vec<(PathBuf, PathBuf)>, Failure> {
    let mut files = Vec::with_capacity(list.len());
    for raw in list {
        let rel = paths::relative_in_request(raw, "`only` entry")?;
        let path = dir.join(&rel);
        match paths::resolve_below(dir, &rel, &path)? {
            Resolved::Found(meta) if meta.is_file() => files.push((path, rel)),
            Resolved::Found(meta) if meta.file_type().is_symlink() => {
                return Err(wrong_type(format!(
                    "{} is a symlink; `only` takes regular files",
                    path.display()
                )))
            }
            Resolved::Found(meta) => {
                return Err(wrong_type(format!(
                    "{} is a {}; `only` takes regular files",
                    path.display(),
                    kind_of(&meta).as_str()
                )))
            }
            Resolved::Missing { .. } => {
                return Err(fail(
                    GuestErrorKind::NotFound,
                    format!("{} does not exist", path.display()),
                ))
            }
        }
    }
    Ok(files)
}

fn append_only<R: Reply>(
    builder: &mut Builder<'_, '_, R>,
    files: &[(PathBuf, PathBuf)],
    counts: &mut Counts,
) -> Result<(), Problem> {
    for (path, rel) in files {
        let meta = std::fs::symlink_metadata(path).map_err(|err| {
            Problem::Failure(io_failure(&format!("reading {}", path.display()), &err))
        })?;
        if !meta.is_file() {
            return Err(Problem::Failure(wrong_type(format!(
                "{} stopped being a regular file while it was archived",
                path.display()
            ))));
        }
        append_entry(builder, path, rel, &meta, counts)?;
    }
    Ok(())
}

fn append_tree<R: Reply>(
    builder: &mut Builder<'_, '_, R>,
    root: &Path,
    counts: &mut Counts,
) -> Result<(), Problem> {
    let mut walker = Walker::new(root, true).map_err(Problem::Failure)?;
    while let Some(entry) = walker.next_entry().map_err(Problem::Failure)? {
        match append_entry(builder, &entry.path, &entry.rel, &entry.meta, counts) {
            Ok(_) => {}
            // Deleted between the walk and the read: as if never seen.
            Err(Problem::Content(_, err)) if is_missing(&err) => {}
            Err(problem) => return Err(problem),
        }
    }
    Ok(())
}

/// Appends one entry; `Ok(false)` when its type is not archived.
fn append_entry<R: Reply>(
    builder: &mut Builder<'_, '_, R>,
    path: &Path,
    name: &Path,
    meta: &Metadata,
    counts: &mut Counts,
) -> Result<bool, Problem> {
    match kind_of(meta) {
        EntryKind::Directory => {
            let mut header = header(tar::EntryType::Directory, meta, 0);
            builder
                .append_data(&mut header, name, io::empty())
                .map_err(Problem::Archive)?;
        }
        EntryKind::Symlink => {
            let target =
                std::fs::read_link(path).map_err(|err| Problem::Content(path.to_owned(), err))?;
            let mut header = header(tar::EntryType::Symlink, meta, 0);
            builder
                .append_link(&mut header, name, &target)
                .map_err(Problem::Archive)?;
        }
        EntryKind::File => {
            let file =
                files::open_nofollow(path).map_err(|err| Problem::Content(path.to_owned(), err))?;
            let opened = file
                .metadata()
                .map_err(|err| Problem::Content(path.to_owned(), err))?;
            if !opened.is_file() {
                return Err(Problem::Failure(refused(format!(
                    "{} was replaced by a non-regular file while it was archived",
                    path.display()
                ))));
            }
            let size = opened.len();
            let mut header = header(tar::EntryType::Regular, &opened, size);
            let mut contents = ExactReader {
                file,
                remaining: size,
                error: None,
            };
            let appended = builder.append_data(&mut header, name, &mut contents);
            if let Some(err) = contents.error.take() {
                return Err(Problem::Content(path.to_owned(), err));
            }
            appended.map_err(Problem::Archive)?;
            counts.content_bytes += size;
        }
        EntryKind::Other => return Ok(false),
    }
    counts.entries += 1;
    Ok(true)
}

fn header(entry_type: tar::EntryType, meta: &Metadata, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(files::mode_of(meta));
    header.set_mtime(u64::try_from(files::mtime_of(meta).secs).unwrap_or(0));
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(size);
    header
}

/// Reads exactly `remaining` bytes of a file: zeros when it shrank, a cut
/// when it grew. Read errors are kept to tell them from channel errors.
struct ExactReader {
    file: File,
    remaining: u64,
    error: Option<io::Error>,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.file.read(&mut buf[..want]) {
                Ok(0) => {
                    buf[..want].fill(0);
                    break want;
                }
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let kind = err.kind();
                    self.error = Some(err);
                    return Err(io::Error::new(kind, "reading a file failed"));
                }
            }
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;

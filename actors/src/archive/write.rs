//! Writing a validated tree as a canonical tar, and reading its file bytes.
//!
//! Canonical means: entries sorted by path components (parents first), every
//! parent directory listed, hard links turned into copies, owners `0:0`
//! without names, GNU headers (long names and link targets through GNU
//! extensions), modes (`& 0o7777`) and whole-second mtimes kept. The same
//! tree always gives the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use tar::{EntryType, Header};

use super::error::ArchiveError;
use super::tree::{Content, Member, MemberKind};

/// Writes `members` as a canonical tar into `out`, returning `out`.
pub(crate) fn write_tar<W: Write>(
    members: &[Member],
    spool: Option<&File>,
    out: W,
) -> Result<W, ArchiveError> {
    let mut builder = tar::Builder::new(out);
    for member in members {
        let failed = |source| ArchiveError::WriteEntry {
            member: member.path.clone(),
            source,
        };
        let mut header = Header::new_gnu();
        header.set_mode(member.mode);
        header.set_mtime(member.mtime);
        header.set_uid(0);
        header.set_gid(0);
        match &member.kind {
            MemberKind::Directory => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", member.path), io::empty())
                    .map_err(failed)?;
            }
            MemberKind::File(content) => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(content.len());
                let reader = open_content(content, spool).map_err(failed)?;
                builder
                    .append_data(&mut header, &member.path, reader)
                    .map_err(failed)?;
            }
            MemberKind::Symlink { target } => {
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &member.path, target)
                    .map_err(failed)?;
            }
        }
    }
    builder
        .into_inner()
        .map_err(|source| ArchiveError::WriteEntry {
            member: "(end of archive)".to_owned(),
            source,
        })
}

/// A reader over a file's bytes that yields exactly their recorded length,
/// failing if the source turns out shorter (it changed since it was listed).
pub(crate) fn open_content<'a>(
    content: &Content,
    spool: Option<&'a File>,
) -> io::Result<ExactReader<'a>> {
    let source = match content {
        Content::Spooled { offset, .. } => {
            let spool = spool.ok_or_else(|| io::Error::other("the archive has no spool file"))?;
            Source::Spool {
                file: spool,
                position: *offset,
            }
        }
        Content::Host { path, .. } => {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            if !file.metadata()?.is_file() {
                return Err(io::Error::other(format!(
                    "{} is no longer a regular file",
                    path.display()
                )));
            }
            Source::Host(file)
        }
    };
    Ok(ExactReader {
        source,
        remaining: content.len(),
    })
}

#[derive(Debug)]
enum Source<'a> {
    Spool { file: &'a File, position: u64 },
    Host(File),
}

/// See [`open_content`].
#[derive(Debug)]
pub(crate) struct ExactReader<'a> {
    source: Source<'a>,
    remaining: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let got = match &mut self.source {
            Source::Spool { file, position } => {
                let got = file.read_at(&mut buf[..want], *position)?;
                *position += got as u64;
                got
            }
            Source::Host(file) => file.read(&mut buf[..want])?,
        };
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes early: it changed while it was being archived; retry",
                    self.remaining
                ),
            ));
        }
        self.remaining -= got as u64;
        Ok(got)
    }
}

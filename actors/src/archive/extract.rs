//! Safe extraction of an untrusted tar (a workspace export) to a host path.
//!
//! The whole archive is read and validated first (into a spool next to the
//! output), so a refused archive creates nothing but missing parents of the
//! output, which are removed again. Writing then goes through directory file
//! descriptors: every path component is opened with `O_NOFOLLOW |
//! O_DIRECTORY`, files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`,
//! directories and symlinks with `mkdirat`/`symlinkat` (which never follow a
//! final symlink). So even if validation missed something, the kernel refuses
//! to write through a symlink or outside the output path. Modes are kept
//! without setuid, setgid and sticky bits (`& 0o777`); mtimes are kept;
//! directory modes and mtimes are set last, deepest first.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::error::ArchiveError;
use super::tree::{Member, MemberKind};
use super::write::open_content;
use super::{ArchiveStats, ArtifactType, ValidatedArchive};

/// Extracts a workspace export to `output`, which must not exist.
///
/// `artifact` says what the archive holds: a directory's children (written
/// below a new directory at `output`), or one file or one symlink (written
/// at `output` itself, whatever its name in the archive). Missing parents of
/// `output` are created. On any error, everything this call created is
/// removed and the error names the archive entry.
pub fn extract_export(
    input: impl Read,
    output: &Path,
    artifact: ArtifactType,
) -> Result<ArchiveStats, ArchiveError> {
    let Some(name) = output.file_name() else {
        return Err(ArchiveError::InvalidOutput {
            path: output.to_path_buf(),
        });
    };
    match fs::symlink_metadata(output) {
        Ok(_) => {
            return Err(ArchiveError::OutputExists {
                path: output.to_path_buf(),
            })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(ArchiveError::io("inspecting", output, error)),
    }
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let created_parents = create_parents(parent)?;
    let result = ValidatedArchive::from_tar(input, parent).and_then(|archive| {
        check_shape(&archive.members, artifact)?;
        write_export(&archive, parent, name, output, artifact)?;
        Ok(archive.stats())
    });
    if result.is_err() {
        for dir in created_parents.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
    result
}

/// Creates the missing ancestors of `dir` (and `dir`), top down, returning
/// the ones this call created.
fn create_parents(dir: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut missing = Vec::new();
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() || fs::symlink_metadata(ancestor).is_ok() {
            break;
        }
        missing.push(ancestor.to_path_buf());
    }
    let mut created = Vec::new();
    for dir in missing.into_iter().rev() {
        match fs::create_dir(&dir) {
            Ok(()) => created.push(dir),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                for dir in created.iter().rev() {
                    let _ = fs::remove_dir(dir);
                }
                return Err(ArchiveError::io("creating", dir, error));
            }
        }
    }
    Ok(created)
}

fn check_shape(members: &[Member], artifact: ArtifactType) -> Result<(), ArchiveError> {
    let single = match (members, artifact) {
        (_, ArtifactType::Directory) => return Ok(()),
        ([single], _) => single,
        (members, expected) => {
            return Err(ArchiveError::UnexpectedExport {
                expected,
                found: format!("{} entries", members.len()),
            })
        }
    };
    let found = match single.kind {
        MemberKind::Directory => ArtifactType::Directory,
        MemberKind::File(_) => ArtifactType::File,
        MemberKind::Symlink { .. } => ArtifactType::Symlink,
    };
    if found == artifact {
        Ok(())
    } else {
        Err(ArchiveError::UnexpectedExport {
            expected: artifact,
            found: format!("a {found}"),
        })
    }
}

fn write_export(
    archive: &ValidatedArchive,
    parent: &Path,
    name: &OsStr,
    output: &Path,
    artifact: ArtifactType,
) -> Result<(), ArchiveError> {
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ArchiveError::io("opening", parent, e.into()))?;
    let spool = archive.spool.as_ref();
    let failed = |member: &str, source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists && member.is_empty() {
            ArchiveError::OutputExists {
                path: output.to_path_buf(),
            }
        } else {
            ArchiveError::Extract {
                member: member.to_owned(),
                output: output.to_path_buf(),
                source,
            }
        }
    };
    match artifact {
        ArtifactType::Directory => {
            rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700))
                .map_err(|e| failed("", e.into()))?;
            let written = rustix::fs::openat(
                &parent_fd,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| failed("", e.into()))
            .and_then(|root| {
                write_tree(&root, &archive.members, spool)
                    .map_err(|(member, source)| failed(member, source))
            });
            if written.is_err() {
                let _ = fs::remove_dir_all(output);
            }
            written
        }
        ArtifactType::File | ArtifactType::Symlink => {
            let Some(member) = archive.members.first() else {
                return Err(failed("", io::Error::other("the archive is empty")));
            };
            let written = create_member(&parent_fd, name, member, spool);
            match written {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    Err(failed("", error))
                }
                Err(error) => {
                    let _ = rustix::fs::unlinkat(&parent_fd, name, AtFlags::empty());
                    Err(failed(&member.path, error))
                }
                Ok(()) => Ok(()),
            }
        }
    }
}

/// Writes every member below `root`, then sets directory modes and mtimes
/// deepest first. An error carries the member it happened at.
fn write_tree<'m>(
    root: &OwnedFd,
    members: &'m [Member],
    spool: Option<&File>,
) -> Result<(), (&'m str, io::Error)> {
    let mut parent: Option<(&str, OwnedFd)> = None;
    for member in members {
        let at = |error: io::Error| (member.path.as_str(), error);
        let (parent_path, name) = member
            .path
            .rsplit_once('/')
            .unwrap_or(("", member.path.as_str()));
        let parent_fd = match parent.take() {
            Some((path, fd)) if path == parent_path => fd,
            _ => open_beneath(root, parent_path).map_err(at)?,
        };
        create_member(&parent_fd, OsStr::new(name), member, spool).map_err(at)?;
        parent = Some((parent_path, parent_fd));
    }
    drop(parent);
    for member in members.iter().rev() {
        if let MemberKind::Directory = member.kind {
            let at = |error: io::Error| (member.path.as_str(), error);
            let dir = open_beneath(root, &member.path).map_err(at)?;
            rustix::fs::fchmod(&dir, permissions(member.mode)).map_err(|e| at(e.into()))?;
            rustix::fs::futimens(&dir, &timestamps(member.mtime)).map_err(|e| at(e.into()))?;
        }
    }
    Ok(())
}

/// Opens the directory `path` below `root`, refusing any component that is
/// a symlink or not a directory.
pub(super) fn open_beneath(root: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
    let mut current = root.try_clone()?;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if component == ".." || component == "." {
            return Err(io::Error::other(
                "path component `..` or `.` below the output",
            ));
        }
        current = rustix::fs::openat(
            &current,
            component,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(current)
}

/// Creates one member named `name` in the directory `dir`; never follows or
/// replaces an existing entry. Directories get their mode later.
fn create_member(
    dir: &OwnedFd,
    name: &OsStr,
    member: &Member,
    spool: Option<&File>,
) -> io::Result<()> {
    match &member.kind {
        MemberKind::Directory => {
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
        }
        MemberKind::File(content) => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(fd);
            io::copy(&mut open_content(content, spool)?, &mut file)?;
            rustix::fs::fchmod(&file, permissions(member.mode))?;
            rustix::fs::futimens(&file, &timestamps(member.mtime))?;
        }
        MemberKind::Symlink { target } => {
            rustix::fs::symlinkat(target.as_str(), dir, name)?;
            rustix::fs::utimensat(
                dir,
                name,
                &timestamps(member.mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
    }
    Ok(())
}

fn permissions(mode: u32) -> Mode {
    Mode::from_raw_mode(mode & 0o777)
}

fn timestamps(mtime: u64) -> Timestamps {
    let time = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

//! Paths: absolute request paths, relative archive-member paths, and
//! resolution that never follows a symlink.
//!
//! Every path a request names is resolved component by component with
//! `lstat`: an existing component that is a symlink is refused, one that is
//! not a directory is the wrong type. The final component is returned as it
//! is (it may be a symlink), and each operation decides what to do with it.
//! A concurrent change between the check and the use is not guarded
//! against: processes in the guest run as root anyway.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{fail, invalid, io_failure, refused, wrong_type, Failure};
use pyro_guest_protocol::GuestErrorKind;

/// Parses an absolute guest path from a request, collapsing `.` and
/// repeated slashes; `..` is refused so the host's own path checks hold.
pub fn absolute(raw: &str, what: &str) -> Result<PathBuf, Failure> {
    if raw.is_empty() {
        return Err(invalid(format!(
            "the {what} path is empty; pass an absolute guest path"
        )));
    }
    if raw.contains('\0') {
        return Err(invalid(format!(
            "the {what} path {raw:?} contains a nul byte"
        )));
    }
    if !raw.starts_with('/') {
        return Err(invalid(format!(
            "the {what} path {raw} is not absolute; pass an absolute guest path"
        )));
    }
    let mut path = PathBuf::from("/");
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(format!(
                    "the {what} path {raw} contains `..`; pass a normalized absolute path"
                )))
            }
        }
    }
    Ok(path)
}

/// Why a relative path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeError {
    /// The path is absolute.
    Absolute,
    /// The path has a `..` component.
    ParentDir,
    /// The path is empty.
    Empty,
}

impl RelativeError {
    /// The reason, to follow a path in a message.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Absolute => "is absolute",
            Self::ParentDir => "contains `..`",
            Self::Empty => "has an empty name",
        }
    }
}

/// Parses a relative path (an archive member, an `only` entry, a delete).
///
/// `.` components and repeated or trailing slashes are dropped. Returns
/// `Ok(None)` for a path that names the root itself (`.` or `./`).
pub fn relative(raw: &Path) -> Result<Option<PathBuf>, RelativeError> {
    if raw.as_os_str().is_empty() {
        return Err(RelativeError::Empty);
    }
    let mut path = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(RelativeError::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(RelativeError::Absolute),
        }
    }
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

/// Parses a relative path from a request, where naming the root is an
/// error too.
pub fn relative_in_request(raw: &str, what: &str) -> Result<PathBuf, Failure> {
    match relative(Path::new(raw)) {
        Ok(Some(path)) => Ok(path),
        Ok(None) => Err(invalid(format!(
            "{what} {raw:?} names the root itself; name a path below it"
        ))),
        Err(err) => Err(invalid(format!(
            "{what} {raw:?} {}; pass a relative path below the root",
            err.reason()
        ))),
    }
}

/// What a path resolved to.
#[derive(Debug)]
pub enum Resolved {
    /// The path exists; its own metadata (not followed).
    Found(Metadata),
    /// The path does not exist; `existing` is its deepest existing ancestor,
    /// a directory reached without symlinks.
    Missing {
        /// The deepest existing ancestor.
        existing: PathBuf,
    },
}

/// Resolves an absolute path without following symlinks on the way.
pub fn resolve(path: &Path) -> Result<Resolved, Failure> {
    resolve_below(Path::new("/"), path.strip_prefix("/").unwrap_or(path), path)
}

/// Resolves `rel` below the directory `base` (itself trusted), without
/// following symlinks in `rel`. `shown` is the path used in messages.
pub fn resolve_below(base: &Path, rel: &Path, shown: &Path) -> Result<Resolved, Failure> {
    let names: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let mut current = base.to_path_buf();
    if names.is_empty() {
        return match std::fs::symlink_metadata(&current) {
            Ok(meta) => Ok(Resolved::Found(meta)),
            Err(err) => Err(io_failure(&format!("reading {}", current.display()), &err)),
        };
    }
    for (index, name) in names.iter().enumerate() {
        let next = current.join(name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(err) if is_missing(&err) => return Ok(Resolved::Missing { existing: current }),
            Err(err) => return Err(io_failure(&format!("reading {}", next.display()), &err)),
        };
        if index + 1 == names.len() {
            return Ok(Resolved::Found(meta));
        }
        if meta.file_type().is_symlink() {
            return Err(refused(format!(
                "{} passes through the symlink {}; pyro does not follow symlinks here, use the path it points to",
                shown.display(),
                next.display()
            )));
        }
        if !meta.is_dir() {
            return Err(wrong_type(format!(
                "{} is not a directory, so {} cannot exist",
                next.display(),
                shown.display()
            )));
        }
        current = next;
    }
    Ok(Resolved::Missing { existing: current })
}

/// Resolves `path`, which must be an existing directory (not a symlink).
pub fn existing_dir(path: &Path, what: &str) -> Result<Metadata, Failure> {
    match resolve(path)? {
        Resolved::Found(meta) if meta.is_dir() => Ok(meta),
        Resolved::Found(meta) if meta.file_type().is_symlink() => Err(refused(format!(
            "the {what} {} is a symlink; pyro does not follow symlinks, use the directory it points to",
            path.display()
        ))),
        Resolved::Found(_) => Err(wrong_type(format!(
            "the {what} {} is not a directory",
            path.display()
        ))),
        Resolved::Missing { .. } => Err(fail(
            GuestErrorKind::NotFound,
            format!("the {what} {} does not exist", path.display()),
        )),
    }
}

/// Whether an OS error means the path is not there.
pub fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// A relative path as `/`-separated text (lossy for non-UTF-8 names).
pub fn slash_text(rel: &Path) -> String {
    let mut text = String::new();
    for component in rel.components() {
        if let Component::Normal(name) = component {
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(&name.to_string_lossy());
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_normalized_and_checked() {
        assert_eq!(
            absolute("/workspace//src/./a", "x").unwrap(),
            PathBuf::from("/workspace/src/a")
        );
        assert_eq!(absolute("/", "x").unwrap(), PathBuf::from("/"));
        for bad in ["", "workspace", "/a/../b", "/a\0b"] {
            let err = absolute(bad, "source").unwrap_err();
            let error = err.guest_error().unwrap();
            assert_eq!(error.kind, GuestErrorKind::InvalidRequest, "{bad:?}");
            assert!(error.message.contains("source path"), "{}", error.message);
        }
    }

    #[test]
    fn relative_paths_refuse_escapes() {
        assert_eq!(
            relative(Path::new("./a//b/")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(relative(Path::new("./")).unwrap(), None);
        assert_eq!(
            relative(Path::new("/etc/passwd")),
            Err(RelativeError::Absolute)
        );
        assert_eq!(
            relative(Path::new("a/../../b")),
            Err(RelativeError::ParentDir)
        );
        assert_eq!(relative(Path::new("")), Err(RelativeError::Empty));
    }

    #[test]
    fn resolution_refuses_symlinked_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();

        assert!(matches!(
            resolve(&dir.path().join("real/f")).unwrap(),
            Resolved::Found(meta) if meta.is_file()
        ));
        // The last component may be a symlink: it is reported, not followed.
        assert!(matches!(
            resolve(&dir.path().join("link")).unwrap(),
            Resolved::Found(meta) if meta.file_type().is_symlink()
        ));
        let err = resolve(&dir.path().join("link/f")).unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::Refused);
        let err = resolve(&dir.path().join("real/f/g")).unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::WrongType);
        match resolve(&dir.path().join("real/new/deeper")).unwrap() {
            Resolved::Missing { existing } => assert_eq!(existing, dir.path().join("real")),
            other => panic!("{other:?}"),
        }
    }
}

//! `ListPath`: describes a path, or a directory's contents.
//!
//! A path that is not a directory (a symlink included, never followed) is
//! listed as itself. A directory lists its children, or with `recursive`
//! everything below it, sorted by path component by component (a directory
//! right before its contents). Paths are absolute; entries stream in
//! batches well under the frame limit.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pyro_guest_protocol::{
    EntryKind, GuestErrorKind, ListPathRequest, ListSummary, PathEntry, Response,
};

use super::files::{self, kind_of};
use super::paths::{self, is_missing, Resolved};
use super::transfer::Reply;
use super::walk::Walker;
use super::{fail, io_failure, Failure};

/// The estimated encoded size at which a batch is sent.
const BATCH_BYTES: usize = 256 * 1024;

/// Streams the listing of `request.path` on `reply`.
pub fn list_path<R: Reply>(
    request: &ListPathRequest,
    reply: &mut R,
) -> Result<ListSummary, Failure> {
    let path = paths::absolute(&request.path, "listed")?;
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
    if kind != EntryKind::Directory {
        let entry = describe(&path, &meta)?;
        reply
            .send(&Response::PathEntries(vec![entry]))
            .map_err(Failure::Channel)?;
        return Ok(ListSummary {
            kind,
            entry_count: 1,
        });
    }
    let mut walker = Walker::new(&path, request.recursive)?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut entry_count = 0;
    while let Some(found) = walker.next_entry()? {
        let entry = match describe(&found.path, &found.meta) {
            Ok(entry) => entry,
            Err(Failure::Report(error)) if error.kind == GuestErrorKind::NotFound => continue,
            Err(failure) => return Err(failure),
        };
        batch_bytes += 96 + entry.path.len() + entry.link_target.as_ref().map_or(0, String::len);
        batch.push(entry);
        entry_count += 1;
        if batch_bytes >= BATCH_BYTES {
            reply
                .send(&Response::PathEntries(std::mem::take(&mut batch)))
                .map_err(Failure::Channel)?;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        reply
            .send(&Response::PathEntries(batch))
            .map_err(Failure::Channel)?;
    }
    Ok(ListSummary { kind, entry_count })
}

fn describe(path: &Path, meta: &std::fs::Metadata) -> Result<PathEntry, Failure> {
    let kind = kind_of(meta);
    let link_target = if kind == EntryKind::Symlink {
        match std::fs::read_link(path) {
            Ok(target) => Some(target.to_string_lossy().into_owned()),
            Err(err) if is_missing(&err) => {
                return Err(fail(
                    GuestErrorKind::NotFound,
                    format!("{} vanished while it was listed", path.display()),
                ))
            }
            Err(err) => return Err(io_failure(&format!("reading {}", path.display()), &err)),
        }
    } else {
        None
    };
    Ok(PathEntry {
        path: path.to_string_lossy().into_owned(),
        kind,
        size: if kind == EntryKind::Directory {
            0
        } else {
            meta.size()
        },
        mode: files::mode_of(meta),
        mtime: meta.mtime(),
        link_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(path: &Path, recursive: bool) -> (Vec<PathEntry>, ListSummary) {
        let mut sent: Vec<Response> = Vec::new();
        let summary = list_path(
            &ListPathRequest {
                path: path.to_string_lossy().into_owned(),
                recursive,
            },
            &mut sent,
        )
        .unwrap();
        let entries = sent
            .into_iter()
            .flat_map(|r| match r {
                Response::PathEntries(entries) => entries,
                other => panic!("{other:?}"),
            })
            .collect();
        (entries, summary)
    }

    #[test]
    fn lists_children_sorted_and_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/sub")).unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(root.join("src/sub/x"), "").unwrap();
        std::fs::write(root.join("README"), "hi").unwrap();
        std::os::unix::fs::symlink("src", root.join("link")).unwrap();

        let (entries, summary) = list(root, false);
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let base = root.to_string_lossy();
        assert_eq!(
            names,
            [
                format!("{base}/README"),
                format!("{base}/link"),
                format!("{base}/src")
            ]
        );
        assert_eq!(summary.kind, EntryKind::Directory);
        assert_eq!(summary.entry_count, 3);
        assert_eq!(entries[0].size, 2);
        assert_eq!(entries[1].kind, EntryKind::Symlink);
        assert_eq!(entries[1].link_target.as_deref(), Some("src"));
        assert_eq!(entries[2].size, 0);

        let (entries, _) = list(root, true);
        let rels: Vec<String> = entries
            .iter()
            .map(|e| e.path.trim_start_matches(&*base).to_owned())
            .collect();
        assert_eq!(
            rels,
            [
                "/README",
                "/link",
                "/src",
                "/src/main.rs",
                "/src/sub",
                "/src/sub/x"
            ]
        );
    }

    #[test]
    fn a_file_or_symlink_lists_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "abc").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let (entries, summary) = list(&dir.path().join("l"), true);
        assert_eq!(summary.kind, EntryKind::Symlink);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].link_target.as_deref(), Some("f"));
        let (entries, summary) = list(&dir.path().join("f"), false);
        assert_eq!(summary.kind, EntryKind::File);
        assert_eq!(entries[0].size, 3);
    }

    #[test]
    fn missing_paths_and_symlinked_parents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
        let mut sent: Vec<Response> = Vec::new();
        let err = list_path(
            &ListPathRequest {
                path: format!("{}/nope", dir.path().display()),
                recursive: false,
            },
            &mut sent,
        )
        .unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::NotFound);
        let err = list_path(
            &ListPathRequest {
                path: format!("{}/l/x", dir.path().display()),
                recursive: false,
            },
            &mut sent,
        )
        .unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::Refused);
        assert!(sent.is_empty());
    }
}

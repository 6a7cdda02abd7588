//! Tests of `GetArchive`: what a directory, file or symlink archive holds,
//! `only` selections and their errors, and a round trip through
//! `PutArchive` that keeps modes, mtimes and links.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pyro_guest_protocol::{
    ArchiveSummary, EntryKind, GetArchiveRequest, GuestErrorKind, PutArchiveRequest, Response,
};

use super::get_archive;
use crate::workspace::put::put_archive;
use crate::workspace::testutil::{kind, populated, set_mtime, snapshot};
use crate::workspace::Failure;

struct Got {
    kind: EntryKind,
    tar: Vec<u8>,
    summary: ArchiveSummary,
}

fn get(path: &Path, only: Option<Vec<&str>>) -> Result<Got, (Failure, Vec<Response>)> {
    let mut sent: Vec<Response> = Vec::new();
    let result = get_archive(
        &GetArchiveRequest {
            path: path.to_string_lossy().into_owned(),
            only: only.map(|o| o.into_iter().map(str::to_owned).collect()),
        },
        &mut sent,
    );
    let summary = match result {
        Ok(summary) => summary,
        Err(failure) => return Err((failure, sent)),
    };
    let mut frames = sent.into_iter();
    let kind = match frames.next() {
        Some(Response::ArchiveStarted { kind }) => kind,
        other => panic!("first frame {other:?}"),
    };
    let tar = frames
        .flat_map(|r| match r {
            Response::Data(data) => data,
            other => panic!("{other:?}"),
        })
        .collect::<Vec<u8>>();
    assert_eq!(tar.len() as u64, summary.archive_bytes);
    Ok(Got { kind, tar, summary })
}

/// (name, type, mode, mtime, contents or link target) of every member.
fn members_of(tar: &[u8]) -> Vec<(String, char, u32, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => 'f',
            other => panic!("{other:?}"),
        };
        let mut data = Vec::new();
        if kind == 'l' {
            data = entry
                .link_name()
                .unwrap()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_bytes();
        } else {
            entry.read_to_end(&mut data).unwrap();
        }
        out.push((
            name.trim_end_matches('/').to_owned(),
            kind,
            header.mode().unwrap(),
            header.mtime().unwrap(),
            data,
        ));
    }
    out
}

#[test]
fn a_directory_is_archived_as_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    populated(root);
    std::fs::set_permissions(
        root.join("keep.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    set_mtime(&root.join("keep.txt"), 1_500_000_000);
    nix::unistd::mkfifo(
        &root.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();

    let got = get(root, None).unwrap();
    assert_eq!(got.kind, EntryKind::Directory);
    let members = members_of(&got.tar);
    let names: Vec<(&str, char)> = members.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(
        names,
        [
            ("alias", 'l'),
            ("keep.txt", 'f'),
            ("link", 'l'),
            ("over.txt", 'f'),
            ("sub", 'd'),
            ("sub/deep", 'd'),
            ("sub/deep/x", 'f'),
            ("sub/old.txt", 'f'),
        ]
    );
    let keep = &members[1];
    assert_eq!(
        (keep.2, keep.3, keep.4.as_slice()),
        (0o755, 1_500_000_000, &b"keep\n"[..])
    );
    assert_eq!(members[2].4, b"sub");
    assert_eq!(got.summary.entry_count, 8);
    assert_eq!(got.summary.content_bytes, 5 + 13 + 1 + 4);
}

#[test]
fn a_file_or_symlink_is_archived_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let got = get(&dir.path().join("sub/old.txt"), None).unwrap();
    assert_eq!(got.kind, EntryKind::File);
    let members = members_of(&got.tar);
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].0.as_str(), members[0].1), ("old.txt", 'f'));

    let got = get(&dir.path().join("link"), None).unwrap();
    assert_eq!(got.kind, EntryKind::Symlink);
    let members = members_of(&got.tar);
    assert_eq!(
        members,
        [(
            "link".to_owned(),
            'l',
            0o777,
            1_500_000_000,
            b"sub".to_vec()
        )]
    );
}

#[test]
fn only_selects_regular_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let got = get(dir.path(), Some(vec!["sub/old.txt", "./keep.txt"])).unwrap();
    let names: Vec<String> = members_of(&got.tar).into_iter().map(|m| m.0).collect();
    assert_eq!(names, ["sub/old.txt", "keep.txt"]);
    assert_eq!(got.summary.entry_count, 2);

    let cases = [
        (vec!["link"], GuestErrorKind::WrongType),
        (vec!["sub"], GuestErrorKind::WrongType),
        (vec!["keep.txt", "missing"], GuestErrorKind::NotFound),
        (vec!["../etc/passwd"], GuestErrorKind::InvalidRequest),
        (vec!["/etc/passwd"], GuestErrorKind::InvalidRequest),
        (vec!["link/old.txt"], GuestErrorKind::Refused),
    ];
    for (only, expected) in cases {
        let (failure, sent) = get(dir.path(), Some(only.clone())).err().unwrap();
        assert_eq!(kind(&failure), expected, "{only:?}");
        assert!(sent.is_empty(), "{only:?}: frames sent before the error");
    }
    let (failure, _) = get(&dir.path().join("keep.txt"), Some(vec!["x"]))
        .err()
        .unwrap();
    assert_eq!(kind(&failure), GuestErrorKind::InvalidRequest);
}

#[test]
fn missing_and_special_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (failure, _) = get(&dir.path().join("nope"), None).err().unwrap();
    assert_eq!(kind(&failure), GuestErrorKind::NotFound);
    nix::unistd::mkfifo(
        &dir.path().join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let (failure, _) = get(&dir.path().join("pipe"), None).err().unwrap();
    assert_eq!(kind(&failure), GuestErrorKind::WrongType);
}

#[test]
fn round_trips_through_put_archive() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    populated(&source);
    let long = "n".repeat(180);
    std::fs::create_dir(source.join("empty")).unwrap();
    std::fs::write(source.join(&long), vec![9u8; 300_000]).unwrap();
    std::os::unix::fs::symlink(format!("sub/../{long}"), source.join("long-link")).unwrap();
    std::fs::set_permissions(
        source.join("sub/deep"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    for rel in ["empty", long.as_str(), "long-link", "sub/deep", "."] {
        set_mtime(&source.join(rel), 1_400_000_000);
    }

    let got = get(&source, None).unwrap();
    let copy = dir.path().join("copy");
    let mut upload: &[u8] = &got.tar;
    let put = put_archive(
        &PutArchiveRequest {
            destination: copy.to_string_lossy().into_owned(),
        },
        &mut upload,
    )
    .unwrap();
    assert_eq!(put.entry_count, got.summary.entry_count);
    assert_eq!(put.content_bytes, got.summary.content_bytes);

    let mut want = snapshot(&source);
    let mut have = snapshot(&copy);
    // The roots themselves are not in the archive.
    want.remove(".");
    have.remove(".");
    assert_eq!(have, want);
    assert_eq!(
        std::fs::symlink_metadata(copy.join("sub/deep"))
            .unwrap()
            .mode()
            & 0o7777,
        0o700
    );
}

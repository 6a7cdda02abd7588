//! Tests of the archive module: detection, round trips keeping modes,
//! mtimes and symlinks, canonical form, and hostile archives crafted with
//! the tar crate's low-level header API.

use std::fs::{self, File, FileTimes};
use std::io::{Cursor, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use flate2::write::GzEncoder;
use tar::{EntryType, Header};
use tempfile::TempDir;

use super::*;

const MTIME: u64 = 1_700_000_000;

/// Appends an entry whose name and link target are written byte for byte
/// into the header, bypassing the checks of the tar crate's path setters.
fn raw_entry(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut header = Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(MTIME);
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

fn tar_of(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        raw_entry(
            &mut tar,
            name.as_bytes(),
            *kind,
            link.as_bytes(),
            data.as_bytes(),
        );
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn set_mtime(path: &Path, secs: u64) {
    let time = UNIX_EPOCH + Duration::from_secs(secs);
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(time).set_accessed(time))
        .unwrap();
}

fn mtime_of(path: &Path) -> i64 {
    fs::symlink_metadata(path).unwrap().mtime()
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Everything below `dir`, sorted (to prove nothing else was written).
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

fn unsafe_problem(result: Result<impl std::fmt::Debug, ArchiveError>) -> (String, EntryProblem) {
    match result {
        Err(ArchiveError::UnsafeEntry { member, problem }) => (member, problem),
        other => panic!("expected an unsafe entry error, got {other:?}"),
    }
}

/// A seed directory with an executable script, a private file, a nested
/// private directory, a relative symlink and a hard link.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("src/private")).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("src/private/key"), "secret-ish").unwrap();
    fs::set_permissions(
        root.join("src/private/key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::hard_link(root.join("run.sh"), root.join("src/run-copy.sh")).unwrap();
    std::os::unix::fs::symlink("../run.sh", root.join("src/run-link")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    set_mtime(&root.join("run.sh"), MTIME + 1);
    set_mtime(&root.join("src/private/key"), MTIME + 2);
    fs::set_permissions(root.join("src/private"), fs::Permissions::from_mode(0o700)).unwrap();
    set_mtime(&root.join("src/private"), MTIME + 3);
    set_mtime(&root.join("src"), MTIME + 4);
}

#[test]
fn seeds_are_detected_by_content() {
    let temp = TempDir::new().unwrap();
    let dir = temp.path().join("tree");
    fs::create_dir(&dir).unwrap();
    let tar = tar_of(&[("a.txt", EntryType::Regular, "", "a\n")]);
    fs::write(temp.path().join("seed.bin"), &tar).unwrap();
    fs::write(temp.path().join("seed.dat"), gzip(&tar)).unwrap();
    fs::write(temp.path().join("notes.tar"), "just text, not a tar\n").unwrap();
    fs::write(temp.path().join("text.gz"), gzip(b"plain text inside gzip")).unwrap();
    fs::write(temp.path().join("seed.tar.xz"), b"\xfd7zXZ\0\0\0").unwrap();

    assert_eq!(
        SeedSource::detect(&dir).unwrap(),
        SeedSource::Directory(dir.clone())
    );
    let tar_seed = SeedSource::detect(&temp.path().join("seed.bin")).unwrap();
    assert_eq!(tar_seed.kind(), "tar_archive");
    let gz_seed = SeedSource::detect(&temp.path().join("seed.dat")).unwrap();
    assert_eq!(
        gz_seed,
        SeedSource::TarArchive(temp.path().join("seed.dat"))
    );
    for refused in ["notes.tar", "text.gz"] {
        let error = SeedSource::detect(&temp.path().join(refused)).unwrap_err();
        assert!(
            matches!(error, ArchiveError::UnsupportedSeed { .. }),
            "{refused}: {error}"
        );
        assert!(error.to_string().contains(refused), "{error}");
    }
    assert!(matches!(
        SeedSource::detect(&temp.path().join("seed.tar.xz")),
        Err(ArchiveError::UnsupportedCompression { format: "xz" })
    ));
    assert!(matches!(
        SeedSource::detect(&temp.path().join("missing")),
        Err(ArchiveError::SeedNotFound { .. })
    ));

    let archive = ValidatedArchive::from_seed(&gz_seed, temp.path()).unwrap();
    assert_eq!(
        archive.stats(),
        ArchiveStats {
            entry_count: 1,
            total_bytes: 2
        }
    );
}

#[test]
fn directory_round_trip_keeps_modes_mtimes_and_symlinks() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    sample_tree(&seed);

    let archive = ValidatedArchive::from_directory(&seed).unwrap();
    let tar = archive.write_tar(Vec::new()).unwrap();
    assert_eq!(
        archive.stats(),
        ArchiveStats {
            entry_count: 7,
            total_bytes: 18 + 10 + 18
        }
    );

    let out = temp.path().join("out/nested/export");
    let stats = extract_export(Cursor::new(&tar), &out, ArtifactType::Directory).unwrap();
    assert_eq!(stats, archive.stats());
    assert_eq!(listing(&out), listing(&seed));
    assert_eq!(mode_of(&out.join("run.sh")), 0o755);
    assert_eq!(mode_of(&out.join("src/private/key")), 0o600);
    assert_eq!(mode_of(&out.join("src/private")), 0o700);
    assert_eq!(mtime_of(&out.join("run.sh")), (MTIME + 1) as i64);
    assert_eq!(mtime_of(&out.join("src/private/key")), (MTIME + 2) as i64);
    assert_eq!(mtime_of(&out.join("src/private")), (MTIME + 3) as i64);
    assert_eq!(mtime_of(&out.join("src")), (MTIME + 4) as i64);
    assert_eq!(
        fs::read_link(out.join("src/run-link")).unwrap(),
        Path::new("../run.sh")
    );
    assert_eq!(
        fs::read_to_string(out.join("src/run-link")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    // The hard link became an independent copy.
    let copy = fs::metadata(out.join("src/run-copy.sh")).unwrap();
    assert_eq!(copy.nlink(), 1);
    assert_eq!(
        fs::read(out.join("src/run-copy.sh")).unwrap(),
        fs::read(seed.join("run.sh")).unwrap()
    );
    assert!(out.join("empty").is_dir());
}

#[test]
fn canonical_tar_is_sorted_complete_and_deterministic() {
    let temp = TempDir::new().unwrap();
    let shuffled = tar_of(&[
        ("z.txt", EntryType::Regular, "", "z"),
        ("./a/b/c.txt", EntryType::Regular, "", "c"),
        ("a.txt", EntryType::Regular, "", "a"),
        ("a/link", EntryType::Symlink, "b/c.txt", ""),
        ("a/hard", EntryType::Link, "a/b/c.txt", ""),
    ]);
    let ordered = tar_of(&[
        ("a/b/c.txt", EntryType::Regular, "", "c"),
        ("a/link", EntryType::Symlink, "b/c.txt", ""),
        ("a/hard", EntryType::Link, "a/b/c.txt", ""),
        ("a.txt", EntryType::Regular, "", "a"),
        ("z.txt", EntryType::Regular, "", "z"),
    ]);
    let first = ValidatedArchive::from_tar(Cursor::new(shuffled), temp.path()).unwrap();
    let canonical = first.write_tar(Vec::new()).unwrap();

    let mut names = Vec::new();
    let mut reread = tar::Archive::new(Cursor::new(&canonical));
    for entry in reread.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_ne!(
            header.entry_type(),
            EntryType::Link,
            "hard links become copies"
        );
        names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    assert_eq!(
        names,
        [
            "a/",
            "a/b/",
            "a/b/c.txt",
            "a/hard",
            "a/link",
            "a.txt",
            "z.txt"
        ]
    );

    // The same tree in another order (and gzip-compressed) gives the same
    // bytes.
    let second = ValidatedArchive::from_tar(Cursor::new(gzip(&ordered)), temp.path()).unwrap();
    assert_eq!(second.write_tar(Vec::new()).unwrap(), canonical);
    assert_eq!(first.stats().entry_count, 7);
}

#[test]
fn long_names_and_link_targets_survive() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    fs::create_dir_all(seed.join("d".repeat(120))).unwrap();
    fs::write(seed.join(&deep), "deep").unwrap();
    std::os::unix::fs::symlink(&deep, seed.join("link")).unwrap();
    let tar = ValidatedArchive::from_directory(&seed)
        .unwrap()
        .write_tar(Vec::new())
        .unwrap();
    let out = temp.path().join("out");
    extract_export(Cursor::new(tar), &out, ArtifactType::Directory).unwrap();
    assert_eq!(fs::read_to_string(out.join("link")).unwrap(), "deep");
    assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new(&deep));
}

/// An entry of a crafted archive: name, type, link target, data.
type RawEntry<'a> = (&'a str, EntryType, &'a str, &'a str);

/// What a hostile archive tries, its entries, and the entry and problem
/// that must be reported.
type HostileCase<'a> = (&'a str, Vec<RawEntry<'a>>, &'a str, EntryProblem);

#[test]
fn hostile_archives_are_refused_before_anything_is_written() {
    use EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};
    let cases: Vec<HostileCase> = vec![
        (
            "absolute path",
            vec![("/etc/passwd", Regular, "", "x")],
            "/etc/passwd",
            EntryProblem::AbsolutePath,
        ),
        (
            "dot-dot",
            vec![("a/../../x", Regular, "", "x")],
            "a/../../x",
            EntryProblem::ParentComponent,
        ),
        (
            "empty name",
            vec![("", Regular, "", "x")],
            "",
            EntryProblem::EmptyName,
        ),
        (
            "escaping symlink",
            vec![("sub/l", Symlink, "../../victim", "")],
            "sub/l",
            EntryProblem::EscapingLinkTarget {
                target: "../../victim".into(),
            },
        ),
        (
            "absolute symlink",
            vec![("l", Symlink, "/etc", "")],
            "l",
            EntryProblem::AbsoluteLinkTarget {
                target: "/etc".into(),
            },
        ),
        (
            "symlink then write through it",
            vec![
                ("d", Directory, "", ""),
                ("l", Symlink, "d", ""),
                ("l/x", Regular, "", "x"),
            ],
            "l/x",
            EntryProblem::ThroughSymlink {
                symlink: "l".into(),
            },
        ),
        (
            "write through a symlink listed later",
            vec![("l/x", Regular, "", "x"), ("l", Symlink, "d", "")],
            "l/x",
            EntryProblem::ThroughSymlink {
                symlink: "l".into(),
            },
        ),
        (
            "symlink escaping through another symlink",
            vec![
                ("s/up", Symlink, "..", ""),
                ("s/out", Symlink, "up/../victim", ""),
            ],
            "s/out",
            EntryProblem::EscapingLinkTarget {
                target: "up/../victim".into(),
            },
        ),
        (
            "hard link to outside",
            vec![("h", Link, "../../etc/shadow", "")],
            "h",
            EntryProblem::HardLinkTarget {
                target: "../../etc/shadow".into(),
            },
        ),
        (
            "hard link to a later entry",
            vec![("h", Link, "later", ""), ("later", Regular, "", "x")],
            "h",
            EntryProblem::HardLinkTarget {
                target: "later".into(),
            },
        ),
        (
            "hard link to a directory",
            vec![("d", Directory, "", ""), ("h", Link, "d", "")],
            "h",
            EntryProblem::HardLinkTarget { target: "d".into() },
        ),
        (
            "character device",
            vec![("null", Char, "", "")],
            "null",
            EntryProblem::Special {
                kind: "character device",
            },
        ),
        (
            "block device",
            vec![("sda", Block, "", "")],
            "sda",
            EntryProblem::Special {
                kind: "block device",
            },
        ),
        (
            "fifo",
            vec![("pipe", Fifo, "", "")],
            "pipe",
            EntryProblem::Special { kind: "fifo" },
        ),
        (
            "duplicate file",
            vec![("f", Regular, "", "1"), ("./f", Regular, "", "2")],
            "./f",
            EntryProblem::Duplicate,
        ),
        (
            "root as a file",
            vec![("./", Regular, "", "x")],
            "./",
            EntryProblem::RootNotDirectory,
        ),
    ];
    for (what, entries, member, problem) in cases {
        let temp = TempDir::new().unwrap();
        let tar = tar_of(&entries);
        assert_eq!(
            unsafe_problem(ValidatedArchive::from_tar(Cursor::new(&tar), temp.path())),
            (member.to_owned(), problem.clone()),
            "{what}"
        );

        // Exports refuse it too, create nothing and remove the parents they
        // made; the sibling `victim` directory stays empty.
        fs::create_dir(temp.path().join("victim")).unwrap();
        let out = temp.path().join("parent/export");
        let error = extract_export(Cursor::new(&tar), &out, ArtifactType::Directory).unwrap_err();
        assert!(
            matches!(error, ArchiveError::UnsafeEntry { .. }),
            "{what}: {error}"
        );
        assert!(
            error.to_string().contains(&format!("`{member}`")),
            "{what}: {error}"
        );
        assert_eq!(listing(temp.path()), ["victim"], "{what}");
    }
}

#[test]
fn export_of_a_single_file_or_symlink() {
    let temp = TempDir::new().unwrap();
    let file_tar = tar_of(&[("report.txt", EntryType::Regular, "", "done\n")]);
    let out = temp.path().join("copy.txt");
    let stats = extract_export(Cursor::new(&file_tar), &out, ArtifactType::File).unwrap();
    assert_eq!(stats.total_bytes, 5);
    assert_eq!(fs::read_to_string(&out).unwrap(), "done\n");
    assert_eq!(mode_of(&out), 0o644);
    assert_eq!(mtime_of(&out), MTIME as i64);

    let error = extract_export(Cursor::new(&file_tar), &out, ArtifactType::File).unwrap_err();
    assert!(
        matches!(error, ArchiveError::OutputExists { .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("output path already exists"),
        "{error}"
    );

    let link_tar = tar_of(&[("current", EntryType::Symlink, "releases/v2", "")]);
    let link = temp.path().join("links/current");
    extract_export(Cursor::new(&link_tar), &link, ArtifactType::Symlink).unwrap();
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("releases/v2"));

    // The wrong shape is refused and leaves nothing behind.
    let error = extract_export(
        Cursor::new(&link_tar),
        &temp.path().join("x/y"),
        ArtifactType::File,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the exported archive should hold a single file but holds a symlink"
    );
    assert!(!temp.path().join("x").exists());
    let two = tar_of(&[
        ("a", EntryType::Regular, "", ""),
        ("b", EntryType::Regular, "", ""),
    ]);
    let error = extract_export(
        Cursor::new(two),
        &temp.path().join("two"),
        ArtifactType::File,
    )
    .unwrap_err();
    assert!(error.to_string().ends_with("holds 2 entries"), "{error}");
}

#[test]
fn setuid_bits_are_dropped_on_export() {
    let temp = TempDir::new().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o4755);
    header.set_size(1);
    tar.append_data(&mut header, "tool", &b"x"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let out = temp.path().join("out");
    extract_export(Cursor::new(tar), &out, ArtifactType::Directory).unwrap();
    assert_eq!(mode_of(&out.join("tool")), 0o755);
}

#[test]
fn garbage_and_truncated_streams_are_refused() {
    let temp = TempDir::new().unwrap();
    let error = ValidatedArchive::from_tar(Cursor::new(vec![b'x'; 2048]), temp.path()).unwrap_err();
    assert!(matches!(error, ArchiveError::NotATar), "{error}");

    let mut tar = tar_of(&[("big", EntryType::Regular, "", &"y".repeat(4000))]);
    tar.truncate(1500);
    let error = ValidatedArchive::from_tar(Cursor::new(tar), temp.path()).unwrap_err();
    assert!(matches!(error, ArchiveError::ReadTar { .. }), "{error}");
}

#[test]
fn special_files_in_seed_directories_are_named() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    fs::create_dir(&seed).unwrap();
    let socket_path = seed.join("agent.sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    match ValidatedArchive::from_directory(&seed) {
        Err(ArchiveError::SpecialFile { path, kind }) => {
            assert_eq!(path, socket_path);
            assert_eq!(kind, "socket");
        }
        other => panic!("expected a special file error, got {other:?}"),
    }
}

#[test]
fn escaping_symlinks_in_seed_directories_are_refused() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    fs::create_dir(&seed).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", seed.join("python")).unwrap();
    let (member, problem) = unsafe_problem(ValidatedArchive::from_directory(&seed));
    assert_eq!(member, "python");
    assert!(matches!(problem, EntryProblem::AbsoluteLinkTarget { .. }));
}

#[test]
fn store_is_atomic_and_never_overwrites() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    sample_tree(&seed);
    let archive = ValidatedArchive::from_directory(&seed).unwrap();
    let dest = temp.path().join("baseline.tar");
    let stats = archive.store(&dest).unwrap();
    assert_eq!(stats.entry_count, 7);
    assert_eq!(
        fs::read(&dest).unwrap(),
        archive.write_tar(Vec::new()).unwrap()
    );
    assert!(matches!(
        archive.store(&dest),
        Err(ArchiveError::OutputExists { .. })
    ));
    assert_eq!(
        listing(temp.path())
            .iter()
            .filter(|p| !p.starts_with("seed"))
            .count(),
        1
    );

    let empty = temp.path().join("empty.tar");
    ValidatedArchive::empty().store(&empty).unwrap();
    let reread = ValidatedArchive::from_tar(File::open(&empty).unwrap(), temp.path()).unwrap();
    assert_eq!(reread.stats(), ArchiveStats::default());
}

#[test]
fn manifest_and_file_contents_come_from_the_archive() {
    let temp = TempDir::new().unwrap();
    let tar = tar_of(&[
        ("src/main.rs", EntryType::Regular, "", "fn main() {}\n"),
        ("link", EntryType::Symlink, "src/main.rs", ""),
    ]);
    let archive = ValidatedArchive::from_tar(Cursor::new(tar), temp.path()).unwrap();
    let manifest = archive.manifest().unwrap();
    let paths: Vec<_> = manifest.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        paths,
        [
            ("link", EntryKind::Symlink),
            ("src", EntryKind::Directory),
            ("src/main.rs", EntryKind::File)
        ]
    );
    let file = &manifest[2];
    assert_eq!(file.size, 13);
    assert_eq!(file.mode, 0o644);
    assert_eq!(file.mtime, MTIME as i64);
    assert_eq!(file.sha256, Some(Sha256::digest(b"fn main() {}\n").into()));
    assert_eq!(manifest[0].link_target.as_deref(), Some("src/main.rs"));
    assert_eq!(
        archive.read_file("src/main.rs").unwrap().as_deref(),
        Some(&b"fn main() {}\n"[..])
    );
    assert_eq!(archive.read_file("link").unwrap(), None);
    assert_eq!(archive.read_file("nope").unwrap(), None);
}

#[test]
fn a_file_changing_while_archived_is_reported() {
    let temp = TempDir::new().unwrap();
    let seed = temp.path().join("seed");
    fs::create_dir(&seed).unwrap();
    fs::write(seed.join("log"), "0123456789").unwrap();
    let archive = ValidatedArchive::from_directory(&seed).unwrap();
    fs::write(seed.join("log"), "01").unwrap();
    let error = archive.write_tar(Vec::new()).unwrap_err();
    assert!(matches!(&error, ArchiveError::WriteEntry { member, .. } if member == "log"));
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        source.contains("changed while it was being archived"),
        "{source}"
    );
}

#[test]
fn extraction_refuses_to_walk_through_a_symlink() {
    // Defence in depth below validation: a symlink planted where a
    // directory is expected stops the walk instead of being followed.
    let temp = TempDir::new().unwrap();
    let root = temp.path().join("root");
    fs::create_dir_all(temp.path().join("outside")).unwrap();
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("d")).unwrap();
    let fd = rustix::fs::open(
        &root,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    assert!(extract::open_beneath(&fd, "d").is_err());
    assert!(extract::open_beneath(&fd, "").is_ok());
}

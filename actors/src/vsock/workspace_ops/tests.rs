//! The host client against the real agent handler, in-process: a Unix
//! socket plays the VM's hybrid-vsock socket (answering `CONNECT` with
//! `OK`), and each connection is served by
//! `pyro_guest_agent::server::serve_connection` on its own thread, on host
//! temporary directories.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use pyro_guest_agent::server::{serve_connection, PowerControl};
use pyro_guest_protocol::{
    ApplyChangesRequest, EntryKind, GetArchiveRequest, GuestErrorKind, ListPathRequest,
    ManifestRequest, PutArchiveRequest, ReadFileRequest,
};
use tokio::io::{AsyncRead, ReadBuf};

use super::*;

/// A fake VM: its "vsock" socket, served by the real agent handler.
struct Guest {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Guest {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vsock.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                std::thread::spawn(move || serve(stream));
            }
        });
        Self { _dir: dir, socket }
    }

    async fn connect(&self) -> GuestConnection {
        GuestConnection::connect(&self.socket).await.unwrap()
    }
}

/// Answers the hybrid-vsock `CONNECT <port>` line, then hands over.
fn serve(mut stream: UnixStream) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let port = String::from_utf8_lossy(&line).replace("CONNECT ", "");
    std::io::Write::write_all(&mut stream, format!("OK {port}\n").as_bytes()).unwrap();
    serve_connection(stream, PowerControl::Refuse);
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn guest_kind(err: &ActorError) -> GuestErrorKind {
    match err {
        ActorError::Guest { kind, .. } => *kind,
        other => panic!("not a guest error: {other:?}"),
    }
}

/// A tree of about 20 MiB: one big file, many small ones, modes, links.
fn big_tree(root: &Path) {
    std::fs::create_dir_all(root.join("src/nested")).unwrap();
    let big: Vec<u8> = (0..18 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("data.bin"), big).unwrap();
    for i in 0..200 {
        std::fs::write(
            root.join(format!("src/nested/f{i:03}.txt")),
            vec![b'a' + (i % 26) as u8; 10_000],
        )
        .unwrap();
    }
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/nested/f000.txt", root.join("first")).unwrap();
}

async fn manifest_of(guest: &Guest, root: &Path) -> TreeManifest {
    guest
        .connect()
        .await
        .manifest(ManifestRequest { root: text(root) })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_20_mib_tree_round_trips_through_get_and_put() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    big_tree(&source);

    let mut tar = Vec::new();
    let export = guest
        .connect()
        .await
        .get_archive(
            GetArchiveRequest {
                path: text(&source),
                only: None,
            },
            &mut tar,
        )
        .await
        .unwrap();
    assert_eq!(export.kind, EntryKind::Directory);
    assert_eq!(export.summary.archive_bytes, tar.len() as u64);
    assert!(tar.len() > 20 * 1024 * 1024, "{} bytes", tar.len());
    assert_eq!(export.summary.entry_count, 2 + 200 + 3);

    let copy = dir.path().join("copy");
    let put = guest
        .connect()
        .await
        .put_archive(
            PutArchiveRequest {
                destination: text(&copy),
            },
            tar.as_slice(),
        )
        .await
        .unwrap();
    assert_eq!(put.entry_count, export.summary.entry_count);
    assert_eq!(put.content_bytes, export.summary.content_bytes);
    assert_eq!(put.archive_bytes, tar.len() as u64);

    let want = manifest_of(&guest, &source).await;
    let have = manifest_of(&guest, &copy).await;
    assert_eq!(have.entries, want.entries);
    assert_eq!(have.summary.entry_count, 205);
    let run = have.entries.iter().find(|e| e.path == "run.sh").unwrap();
    assert_eq!(run.mode, 0o755);
    let first = have.entries.iter().find(|e| e.path == "first").unwrap();
    assert_eq!(first.link_target.as_deref(), Some("src/nested/f000.txt"));
}

#[tokio::test]
async fn list_read_apply_and_sync() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("README.md"), "hello world\n").unwrap();
    std::fs::write(root.join("old.txt"), "old\n").unwrap();
    std::os::unix::fs::symlink("README.md", root.join("readme")).unwrap();

    let listing = guest
        .connect()
        .await
        .list_path(ListPathRequest {
            path: text(&root),
            recursive: true,
        })
        .await
        .unwrap();
    assert_eq!(listing.kind, EntryKind::Directory);
    let paths: Vec<String> = listing.entries.iter().map(|e| e.path.clone()).collect();
    let base = text(&root);
    assert_eq!(
        paths,
        [
            format!("{base}/README.md"),
            format!("{base}/old.txt"),
            format!("{base}/readme"),
            format!("{base}/src")
        ]
    );

    let content = guest
        .connect()
        .await
        .read_file(ReadFileRequest {
            path: format!("{base}/README.md"),
            max_bytes: 5,
        })
        .await
        .unwrap();
    assert_eq!(content.data, b"hello");
    assert_eq!(content.size_bytes, 12);
    assert!(content.truncated);

    // New contents travel as a tar; build one with the agent itself.
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(scratch.join("src")).unwrap();
    std::fs::write(scratch.join("README.md"), "patched\n").unwrap();
    std::fs::write(scratch.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    let mut tar = Vec::new();
    guest
        .connect()
        .await
        .get_archive(
            GetArchiveRequest {
                path: text(&scratch),
                only: Some(vec!["README.md".into(), "src/lib.rs".into()]),
            },
            &mut tar,
        )
        .await
        .unwrap();
    let applied = guest
        .connect()
        .await
        .apply_changes(
            ApplyChangesRequest {
                root: base.clone(),
                deletes: vec!["old.txt".into()],
                keep_existing_modes: true,
            },
            tar.as_slice(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            applied.files_written,
            applied.files_deleted,
            applied.bytes_written
        ),
        (2, 1, 8 + 14)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "patched\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("src/lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
    assert!(!root.join("old.txt").exists());

    guest.connect().await.sync().await.unwrap();
}

#[tokio::test]
async fn guest_errors_carry_their_kind_and_message() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();

    let err = guest
        .connect()
        .await
        .read_file(ReadFileRequest {
            path: text(&dir.path().join("link")),
            max_bytes: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(guest_kind(&err), GuestErrorKind::WrongType);
    assert!(err.to_string().contains("is a symlink"), "{err}");

    let err = guest
        .connect()
        .await
        .manifest(ManifestRequest {
            root: text(&dir.path().join("missing")),
        })
        .await
        .unwrap_err();
    assert_eq!(guest_kind(&err), GuestErrorKind::NotFound);

    // Refused before the upload is read: the whole upload still goes
    // through, then the error arrives.
    let garbage = vec![0x42u8; 3 * 1024 * 1024];
    let err = guest
        .connect()
        .await
        .put_archive(
            PutArchiveRequest {
                destination: text(&dir.path().join("file")),
            },
            garbage.as_slice(),
        )
        .await
        .unwrap_err();
    assert_eq!(guest_kind(&err), GuestErrorKind::WrongType);

    let err = guest
        .connect()
        .await
        .put_archive(
            PutArchiveRequest {
                destination: text(&dir.path().join("new")),
            },
            garbage.as_slice(),
        )
        .await
        .unwrap_err();
    assert_eq!(guest_kind(&err), GuestErrorKind::InvalidRequest);
    assert!(!dir.path().join("new").exists());

    let err = guest
        .connect()
        .await
        .get_archive(
            GetArchiveRequest {
                path: "relative".into(),
                only: None,
            },
            Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(guest_kind(&err), GuestErrorKind::InvalidRequest);
}

/// Yields `good` bytes, then fails.
struct FailingSource {
    good: usize,
}

impl AsyncRead for FailingSource {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.good == 0 {
            return Poll::Ready(Err(std::io::Error::other("disk went away")));
        }
        let n = self.good.min(buf.remaining());
        buf.put_slice(&vec![0u8; n]);
        self.good -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_failing_upload_source_changes_nothing() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("dest");
    // Zeros are a valid (empty) tar, so only the missing end marker keeps
    // the guest from committing.
    let err = guest
        .connect()
        .await
        .put_archive(
            PutArchiveRequest {
                destination: text(&destination),
            },
            FailingSource { good: 100_000 },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ActorError::HostIo { .. }), "{err:?}");
    assert_eq!(err.to_string(), "reading the upload source failed");
    // The guest notices the closed connection and removes its staging.
    for _ in 0..100 {
        if std::fs::read_dir(dir.path()).unwrap().next().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

//! Tests of `Manifest`: entries and hashes, the cache skipping unchanged
//! files, invalidation when a file changes with the same size and mtime,
//! the racy window, and batches under the frame limit. Also a throughput
//! measurement, run on demand (`--ignored --nocapture`).

use std::path::Path;
use std::time::{Duration, Instant};

use pyro_guest_protocol::{
    encode, EntryKind, GuestErrorKind, ManifestEntry, ManifestRequest, ManifestSummary, Response,
    MAX_FRAME_BYTES,
};
use sha2::{Digest, Sha256};

use super::{manifest, HashCache, RACY_WINDOW_NS};
use crate::workspace::testutil::{kind, populated, set_mtime};
use crate::workspace::Failure;

fn run(
    root: &Path,
    cache: &HashCache,
) -> Result<(Vec<ManifestEntry>, ManifestSummary, Vec<Response>), Failure> {
    let mut sent: Vec<Response> = Vec::new();
    let summary = manifest(
        &ManifestRequest {
            root: root.to_string_lossy().into_owned(),
        },
        &mut sent,
        cache,
    )?;
    let entries = sent
        .iter()
        .flat_map(|r| match r {
            Response::ManifestBatch(entries) => entries.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    Ok((entries, summary, sent))
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A cache that trusts every stamp, so fresh test files are cached.
fn trusting_cache() -> HashCache {
    HashCache::new(-1, 1000)
}

#[test]
fn lists_every_entry_with_hashes_in_walk_order() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    nix::unistd::mkfifo(
        &dir.path().join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (entries, summary, _) = run(dir.path(), &trusting_cache()).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "alias",
            "keep.txt",
            "link",
            "over.txt",
            "pipe",
            "sub",
            "sub/deep",
            "sub/deep/x",
            "sub/old.txt"
        ]
    );
    let by_path = |p: &str| entries.iter().find(|e| e.path == p).unwrap();
    let keep = by_path("keep.txt");
    assert_eq!(keep.kind, EntryKind::File);
    assert_eq!(keep.size, 5);
    assert_eq!(keep.mtime, 1_500_000_000);
    assert_eq!(keep.sha256, Some(sha(b"keep\n")));
    assert_eq!(keep.link_target, None);
    let link = by_path("link");
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("sub"));
    assert_eq!((link.size, link.sha256), (0, None));
    assert_eq!(by_path("sub/deep").kind, EntryKind::Directory);
    assert_eq!(by_path("pipe").kind, EntryKind::Other);
    assert_eq!(by_path("pipe").mode, 0o600);
    assert_eq!(summary.entry_count, 9);
    assert_eq!(summary.hashed_files, 4);
    assert_eq!(summary.hashed_bytes, 5 + 13 + 1 + 4);
    assert_eq!(summary.cached_files, 0);
}

#[test]
fn unchanged_files_come_from_the_cache_and_changes_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let cache = trusting_cache();
    let (first, summary, _) = run(dir.path(), &cache).unwrap();
    assert_eq!((summary.hashed_files, summary.cached_files), (4, 0));

    let (second, summary, _) = run(dir.path(), &cache).unwrap();
    assert_eq!(second, first);
    assert_eq!(
        (
            summary.hashed_files,
            summary.cached_files,
            summary.hashed_bytes
        ),
        (0, 4, 0)
    );

    // Same size, same mtime, different bytes: only ctime tells.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(dir.path().join("keep.txt"), "KEEP\n").unwrap();
    set_mtime(&dir.path().join("keep.txt"), 1_500_000_000);
    let (third, summary, _) = run(dir.path(), &cache).unwrap();
    assert_eq!((summary.hashed_files, summary.cached_files), (1, 3));
    let keep = third.iter().find(|e| e.path == "keep.txt").unwrap();
    assert_eq!((keep.size, keep.mtime), (5, 1_500_000_000));
    assert_eq!(keep.sha256, Some(sha(b"KEEP\n")));

    // A new file in place of an old one (new inode) is hashed too.
    std::fs::remove_file(dir.path().join("over.txt")).unwrap();
    std::fs::write(dir.path().join("over.txt"), "other content\n").unwrap();
    let (fourth, summary, _) = run(dir.path(), &cache).unwrap();
    assert_eq!(summary.hashed_files, 1);
    let over = fourth.iter().find(|e| e.path == "over.txt").unwrap();
    assert_eq!(over.sha256, Some(sha(b"other content\n")));
}

#[test]
fn files_changed_within_the_racy_window_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fresh"), "just written").unwrap();
    let cache = HashCache::new(RACY_WINDOW_NS, 1000);
    run(dir.path(), &cache).unwrap();
    let (_, summary, _) = run(dir.path(), &cache).unwrap();
    assert_eq!((summary.hashed_files, summary.cached_files), (1, 0));
}

#[test]
fn a_full_cache_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(dir.path().join(format!("f{i}")), format!("{i}")).unwrap();
    }
    let cache = HashCache::new(-1, 4);
    run(dir.path(), &cache).unwrap();
    let remembered = cache.entries.lock().unwrap().len();
    assert!(remembered <= 4, "{remembered}");
    let (entries, _, _) = run(dir.path(), &cache).unwrap();
    assert_eq!(entries.len(), 10);
}

#[test]
fn batches_stay_under_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(200);
    for i in 0..3000 {
        std::fs::write(dir.path().join(format!("{long}{i:05}")), "").unwrap();
    }
    let (entries, summary, sent) = run(dir.path(), &trusting_cache()).unwrap();
    assert_eq!(entries.len(), 3000);
    assert_eq!(summary.entry_count, 3000);
    assert!(sent.len() >= 3, "{} batches", sent.len());
    for frame in &sent {
        assert!(encode(frame).unwrap().len() < MAX_FRAME_BYTES / 2);
    }
}

#[test]
fn the_root_must_be_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
    std::fs::write(dir.path().join("f"), "").unwrap();
    let cache = trusting_cache();
    for (name, expected) in [
        ("l", GuestErrorKind::Refused),
        ("f", GuestErrorKind::WrongType),
        ("nope", GuestErrorKind::NotFound),
    ] {
        let failure = run(&dir.path().join(name), &cache).err().unwrap();
        assert_eq!(kind(&failure), expected, "{name}");
    }
}

/// Hashing throughput, cold and cached. Run with
/// `cargo test -p pyro-guest-agent --lib manifest_speed -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check"]
fn manifest_speed() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0x5au8; 64 * 1024 * 1024];
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    for d in 0..20 {
        let sub = dir.path().join(format!("dir{d:02}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..250 {
            std::fs::write(sub.join(format!("file{f:03}.rs")), vec![b'a'; 4096]).unwrap();
        }
    }
    // Let the racy window pass, so the real cache (2 s) can be used.
    std::thread::sleep(Duration::from_millis(2100));
    let cache = HashCache::new(RACY_WINDOW_NS, 100_000);
    let started = Instant::now();
    let (_, cold, _) = run(dir.path(), &cache).unwrap();
    let cold_time = started.elapsed();
    let started = Instant::now();
    let (_, warm, _) = run(dir.path(), &cache).unwrap();
    let warm_time = started.elapsed();
    let mib = cold.hashed_bytes as f64 / (1024.0 * 1024.0);
    println!(
        "cold: {} entries, {} files hashed, {mib:.1} MiB in {cold_time:?} ({:.0} MiB/s overall)",
        cold.entry_count,
        cold.hashed_files,
        mib / cold_time.as_secs_f64()
    );
    println!(
        "warm: {} files from the cache, {} hashed, in {warm_time:?} ({:.1}x faster)",
        warm.cached_files,
        warm.hashed_files,
        cold_time.as_secs_f64() / warm_time.as_secs_f64()
    );
    let started = Instant::now();
    let digest = Sha256::digest(&big);
    let raw = started.elapsed();
    println!(
        "sha256 alone: 64 MiB in {raw:?} ({:.0} MiB/s) {:x}",
        64.0 / raw.as_secs_f64(),
        digest[0]
    );
}

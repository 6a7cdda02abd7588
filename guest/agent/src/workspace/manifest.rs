//! `Manifest`: every entry of a tree with its type, mode, size, mtime,
//! link target and, for regular files, the SHA-256 of its contents.
//!
//! Hashing is the expensive part, so a process-wide [`HashCache`] keyed by
//! (device, inode) remembers each file's hash with the (size, mtime, ctime)
//! it had, in nanoseconds; a file whose stamps are unchanged is not read
//! again. ctime moves on every write, chmod and rename and cannot be set
//! from user space, so an edit that restores size and mtime is still seen.
//! A hash is only cached when the file's stamps are older than
//! [`RACY_WINDOW_NS`] at hashing time: a write landing in the same clock
//! tick as the hash would otherwise go unnoticed (git's "racily clean"
//! problem).
//!
//! Entries stream in batches well under the frame limit, in walk order
//! (each directory before its contents, siblings sorted by name). Paths
//! are `/`-separated and relative to the root; non-UTF-8 names are
//! converted lossily.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use pyro_guest_protocol::{EntryKind, ManifestEntry, ManifestRequest, ManifestSummary, Response};
use sha2::{Digest, Sha256};

use super::files::{self, kind_of};
use super::paths::{self, is_missing};
use super::transfer::Reply;
use super::walk::Walker;
use super::{io_failure, Failure};

/// How recent (in nanoseconds) a file's mtime or ctime may be for its hash
/// to be cached.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// The most files the process-wide cache remembers; it starts over when
/// full (about 100 bytes each).
pub const CACHE_CAPACITY: usize = 200_000;

/// The estimated encoded size at which a batch is sent.
const BATCH_BYTES: usize = 256 * 1024;

/// Bytes read from a file at a time while hashing.
const READ_BYTES: usize = 256 * 1024;

/// What a cached hash is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamps {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamps {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// Remembered hashes by (device, inode).
type HashMapByInode = HashMap<(u64, u64), (Stamps, [u8; 32])>;

/// File hashes remembered across manifests.
#[derive(Debug)]
pub struct HashCache {
    entries: Mutex<HashMapByInode>,
    racy_window_ns: i128,
    capacity: usize,
}

/// How one file's hash was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hashed {
    Read(u64),
    Cached,
}

impl HashCache {
    /// An empty cache that trusts stamps older than `racy_window_ns`.
    pub fn new(racy_window_ns: i128, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            racy_window_ns,
            capacity,
        }
    }

    /// The agent's cache.
    pub fn global() -> &'static Self {
        static CACHE: OnceLock<HashCache> = OnceLock::new();
        CACHE.get_or_init(|| Self::new(RACY_WINDOW_NS, CACHE_CAPACITY))
    }

    /// Hashes the regular file at `path`, whose `lstat` metadata is
    /// `seen`; `None` when it vanished or is no longer a regular file.
    /// Returns the metadata the hash belongs to. A cache hit on `seen`
    /// does not even open the file.
    fn hash(
        &self,
        path: &Path,
        seen: std::fs::Metadata,
        buffer: &mut [u8],
    ) -> io::Result<Option<(std::fs::Metadata, [u8; 32], Hashed)>> {
        if let Some((cached, digest)) = self.lookup((seen.dev(), seen.ino())) {
            if cached == Stamps::of(&seen) {
                return Ok(Some((seen, digest, Hashed::Cached)));
            }
        }
        let mut file = match files::open_nofollow(path) {
            Ok(file) => file,
            Err(err) if is_missing(&err) || err.raw_os_error() == Some(libc::ELOOP) => {
                return Ok(None)
            }
            Err(err) => return Err(err),
        };
        let before = file.metadata()?;
        if !before.is_file() {
            return Ok(None);
        }
        let key = (before.dev(), before.ino());
        let stamps = Stamps::of(&before);
        if let Some((cached, digest)) = self.lookup(key) {
            if cached == stamps {
                return Ok(Some((before, digest, Hashed::Cached)));
            }
        }
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        loop {
            match file.read(buffer) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    read += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let after = file.metadata()?;
        let settled = Stamps::of(&after) == stamps
            && now_ns() - stamps.mtime_ns.max(stamps.ctime_ns) > self.racy_window_ns;
        if settled {
            self.remember(key, stamps, digest);
        }
        Ok(Some((after, digest, Hashed::Read(read))))
    }

    fn lookup(&self, key: (u64, u64)) -> Option<(Stamps, [u8; 32])> {
        self.entries.lock().ok()?.get(&key).copied()
    }

    fn remember(&self, key: (u64, u64), stamps: Stamps, digest: [u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.clear();
            }
            entries.insert(key, (stamps, digest));
        }
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Streams the manifest of `request.root` on `reply`.
pub fn manifest<R: Reply>(
    request: &ManifestRequest,
    reply: &mut R,
    cache: &HashCache,
) -> Result<ManifestSummary, Failure> {
    let root = paths::absolute(&request.root, "manifest root")?;
    paths::existing_dir(&root, "manifest root")?;
    let mut walker = Walker::new(&root, true)?;
    let mut summary = ManifestSummary {
        entry_count: 0,
        hashed_files: 0,
        hashed_bytes: 0,
        cached_files: 0,
    };
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let mut buffer = vec![0u8; READ_BYTES];
    while let Some(entry) = walker.next_entry()? {
        let mut meta = entry.meta;
        let kind = kind_of(&meta);
        let mut sha256 = None;
        let mut link_target = None;
        match kind {
            EntryKind::File => match cache.hash(&entry.path, meta.clone(), &mut buffer) {
                Ok(Some((opened, digest, how))) => {
                    meta = opened;
                    sha256 = Some(digest);
                    match how {
                        Hashed::Read(bytes) => {
                            summary.hashed_files += 1;
                            summary.hashed_bytes += bytes;
                        }
                        Hashed::Cached => summary.cached_files += 1,
                    }
                }
                // Gone, or replaced by something else, since the walk saw it.
                Ok(None) => continue,
                Err(err) => {
                    return Err(io_failure(
                        &format!("hashing {}", entry.path.display()),
                        &err,
                    ))
                }
            },
            EntryKind::Symlink => match std::fs::read_link(&entry.path) {
                Ok(target) => link_target = Some(target.to_string_lossy().into_owned()),
                Err(err) if is_missing(&err) => continue,
                Err(err) => {
                    return Err(io_failure(
                        &format!("reading {}", entry.path.display()),
                        &err,
                    ))
                }
            },
            EntryKind::Directory | EntryKind::Other => {}
        }
        let path = paths::slash_text(&entry.rel);
        batch_bytes += 128 + path.len() + link_target.as_ref().map_or(0, String::len);
        batch.push(ManifestEntry {
            path,
            kind,
            mode: files::mode_of(&meta),
            size: if kind == EntryKind::File {
                meta.size()
            } else {
                0
            },
            mtime: meta.mtime(),
            sha256,
            link_target,
        });
        summary.entry_count += 1;
        if batch_bytes >= BATCH_BYTES {
            reply
                .send(&Response::ManifestBatch(std::mem::take(&mut batch)))
                .map_err(Failure::Channel)?;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        reply
            .send(&Response::ManifestBatch(batch))
            .map_err(Failure::Channel)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;

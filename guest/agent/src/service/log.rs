//! Service logs: one file of records per service, rotated to one older
//! file.
//!
//! A record is a stream tag (1 stdout, 2 stderr), a u32 little-endian
//! length and that many bytes, appended in the order the agent read the
//! chunks, so either stream or both interleaved can be shown without loss.
//! The current file is `output.log`; past [`ROTATE_BYTES`] it becomes
//! `output.log.1` (replacing the one before) and a new one starts. Each
//! file is a *generation*: readers find theirs through [`LogWriter::open`],
//! which they call under the same lock the writer rotates under.
//!
//! A new run of a service rotates too: the previous run's last file (if it
//! holds anything) becomes the older file, and the new file starts with a
//! separator record, so the previous run's tail (why it crashed) is still
//! there after a restart, and is rotated away like any older output.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use pyro_guest_protocol::OutputStream;

/// Where a log rotates.
pub const ROTATE_BYTES: u64 = 4 * 1024 * 1024;

const CURRENT: &str = "output.log";
const PREVIOUS: &str = "output.log.1";
const HEADER_BYTES: u64 = 5;

/// The writing end of one service's log.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    limit: u64,
    generation: u64,
    current_len: u64,
    previous_len: Option<u64>,
    discarded: bool,
}

impl LogWriter {
    /// Starts the log of a new run in `dir` (created 0700 when missing),
    /// rotating past `limit` bytes. What the previous run left (its last
    /// non-empty file) is kept as the older generation, and then
    /// `separator` starts the new file as a stderr record; with nothing
    /// left, the log starts empty. The previous run's writer must not
    /// append any more.
    pub fn create(dir: &Path, limit: u64, separator: &[u8]) -> io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let (current, previous) = (dir.join(CURRENT), dir.join(PREVIOUS));
        // Renamed or unlinked, never truncated. The previous run's writer
        // must write no more (the caller closes it first): it still holds
        // the file that becomes the older generation.
        if file_len(&current)?.is_some_and(|len| len > 0) {
            std::fs::rename(&current, &previous)?;
        } else {
            remove_file(&current)?;
        }
        let previous_len = match file_len(&previous)? {
            Some(len) if len > 0 => Some(len),
            _ => {
                remove_file(&previous)?;
                None
            }
        };
        let file = create_file(&current)?;
        let mut log = Self {
            dir: dir.to_owned(),
            file,
            limit: limit.max(HEADER_BYTES + 1),
            generation: u64::from(previous_len.is_some()),
            current_len: 0,
            previous_len,
            discarded: false,
        };
        if previous_len.is_some() && !separator.is_empty() {
            log.append(OutputStream::Stderr, separator)?;
        }
        Ok(log)
    }

    /// Appends one record, rotating first when it would not fit.
    pub fn append(&mut self, stream: OutputStream, data: &[u8]) -> io::Result<()> {
        let len =
            u32::try_from(data.len()).map_err(|_| io::Error::from(ErrorKind::InvalidInput))?;
        let record_len = HEADER_BYTES + u64::from(len);
        if self.current_len > 0 && self.current_len + record_len > self.limit {
            self.rotate()?;
        }
        let mut record = Vec::with_capacity(record_len as usize);
        record.push(match stream {
            OutputStream::Stdout => 1,
            OutputStream::Stderr => 2,
        });
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(data);
        if let Err(err) = self.file.write_all(&record) {
            // Drop a partial record, so the file stays parseable.
            let _ = self.file.set_len(self.current_len);
            return Err(err);
        }
        self.current_len += record_len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(self.dir.join(CURRENT), self.dir.join(PREVIOUS))?;
        self.file = create_file(&self.dir.join(CURRENT))?;
        self.discarded |= self.previous_len.is_some();
        self.previous_len = Some(self.current_len);
        self.current_len = 0;
        self.generation += 1;
        Ok(())
    }

    /// The generation being written.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes in the current file, all of them whole records.
    pub fn current_len(&self) -> u64 {
        self.current_len
    }

    /// Bytes both files take.
    pub fn size(&self) -> u64 {
        self.current_len + self.previous_len.unwrap_or(0)
    }

    /// Whether a rotation has thrown output away.
    pub fn discarded(&self) -> bool {
        self.discarded
    }

    /// The oldest generation still kept.
    pub fn oldest(&self) -> u64 {
        if self.previous_len.is_some() {
            self.generation - 1
        } else {
            self.generation
        }
    }

    /// Opens the file of `generation`; `None` when it is no longer kept
    /// (or not written yet).
    pub fn open(&self, generation: u64) -> io::Result<Option<File>> {
        let name = if generation == self.generation {
            CURRENT
        } else if generation + 1 == self.generation && self.previous_len.is_some() {
            PREVIOUS
        } else {
            return Ok(None);
        };
        File::open(self.dir.join(name)).map(Some)
    }
}

/// The length of the file at `path`, `None` when there is none.
fn file_len(path: &Path) -> io::Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes the file at `path`, if there is one.
fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Reads records from one log file.
#[derive(Debug)]
pub struct RecordReader {
    reader: BufReader<File>,
    pos: u64,
}

impl RecordReader {
    /// Reads `file` from its start.
    pub fn new(file: File) -> Self {
        Self {
            reader: BufReader::new(file),
            pos: 0,
        }
    }

    /// How far records have been read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The next record, if one ends at or before `limit` (any whole record
    /// when `limit` is `None`). A torn or malformed tail reads as the end.
    pub fn next(&mut self, limit: Option<u64>) -> io::Result<Option<(OutputStream, Vec<u8>)>> {
        if limit.is_some_and(|limit| self.pos + HEADER_BYTES > limit) {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        if !read_exact_or_end(&mut self.reader, &mut header)? {
            return Ok(None);
        }
        let stream = match header[0] {
            1 => OutputStream::Stdout,
            2 => OutputStream::Stderr,
            _ => return Ok(None),
        };
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let mut data = vec![0u8; len as usize];
        if !read_exact_or_end(&mut self.reader, &mut data)? {
            return Ok(None);
        }
        self.pos += HEADER_BYTES + u64::from(len);
        Ok(Some((stream, data)))
    }
}

/// Fills `buf`; `false` when the file ended first.
fn read_exact_or_end(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

/// Counts the lines in records: newlines, plus one for an unterminated
/// last line.
#[derive(Debug, Default)]
pub struct LineCounter {
    newlines: u64,
    last: Option<u8>,
}

impl LineCounter {
    /// Counts `data`.
    pub fn add(&mut self, data: &[u8]) {
        self.newlines += data.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(&last) = data.last() {
            self.last = Some(last);
        }
    }

    /// Lines seen.
    pub fn lines(&self) -> u64 {
        match self.last {
            Some(b'\n') | None => self.newlines,
            Some(_) => self.newlines + 1,
        }
    }
}

/// Drops the first lines of a record stream.
#[derive(Debug)]
pub struct LineSkipper {
    /// Lines still to drop.
    remaining: u64,
}

impl LineSkipper {
    /// Drops `lines` lines.
    pub fn new(lines: u64) -> Self {
        Self { remaining: lines }
    }

    /// What is left of `data` once the lines still to drop are dropped.
    pub fn keep<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.remaining == 0 {
            return data;
        }
        for (i, _) in data.iter().enumerate().filter(|(_, &b)| b == b'\n') {
            self.remaining -= 1;
            if self.remaining == 0 {
                return &data[i + 1..];
            }
        }
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(file: File, limit: Option<u64>) -> Vec<(OutputStream, Vec<u8>)> {
        let mut reader = RecordReader::new(file);
        let mut out = Vec::new();
        while let Some(record) = reader.next(limit).unwrap() {
            out.push(record);
        }
        out
    }

    #[test]
    fn records_keep_stream_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::create(dir.path(), ROTATE_BYTES, b"").unwrap();
        log.append(OutputStream::Stdout, b"out1\n").unwrap();
        log.append(OutputStream::Stderr, b"err1\n").unwrap();
        log.append(OutputStream::Stdout, b"out2\n").unwrap();
        let file = log.open(log.generation()).unwrap().unwrap();
        let got = records(file, Some(log.current_len()));
        assert_eq!(
            got,
            vec![
                (OutputStream::Stdout, b"out1\n".to_vec()),
                (OutputStream::Stderr, b"err1\n".to_vec()),
                (OutputStream::Stdout, b"out2\n".to_vec()),
            ]
        );
        // A limit stops before a record that does not fit whole.
        let file = log.open(0).unwrap().unwrap();
        assert_eq!(records(file, Some(12)).len(), 1);
    }

    #[test]
    fn rotation_keeps_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::create(dir.path(), 40, b"").unwrap();
        for i in 0..10u8 {
            log.append(OutputStream::Stdout, &[b'0' + i; 10]).unwrap();
        }
        // 15-byte records, two per 40-byte file: generations 0..=4.
        assert_eq!(log.generation(), 4);
        assert_eq!(log.oldest(), 3);
        assert!(log.discarded());
        assert_eq!(log.size(), 60);
        assert!(log.open(2).unwrap().is_none());
        let previous = records(log.open(3).unwrap().unwrap(), None);
        assert_eq!(previous[0].1, vec![b'6'; 10]);
        let current = records(log.open(4).unwrap().unwrap(), Some(log.current_len()));
        assert_eq!(current.len(), 2);
        assert_eq!(current[1].1, vec![b'9'; 10]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_first_log_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogWriter::create(dir.path(), 20, b"sep\n").unwrap();
        assert_eq!((log.size(), log.generation(), log.oldest()), (0, 0, 0));
        assert!(!dir.path().join(PREVIOUS).exists());
        assert!(records(log.open(0).unwrap().unwrap(), None).is_empty());
    }

    #[test]
    fn a_new_run_keeps_the_previous_runs_last_file_after_a_separator() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = LogWriter::create(dir.path(), 40, b"").unwrap();
        for i in 0..5u8 {
            first.append(OutputStream::Stdout, &[b'a' + i; 10]).unwrap();
        }
        // 15-byte records, two per file: the first run ends in generation 2
        // with one record ("eee..."), after "ccc...", "ddd..." in the older file.
        assert_eq!(first.generation(), 2);

        let mut second = LogWriter::create(dir.path(), 40, b"sep\n").unwrap();
        assert_eq!((second.oldest(), second.generation()), (0, 1));
        assert!(!second.discarded());
        let previous = records(second.open(0).unwrap().unwrap(), None);
        assert_eq!(previous, vec![(OutputStream::Stdout, vec![b'e'; 10])]);
        second.append(OutputStream::Stdout, b"new\n").unwrap();
        let current = records(second.open(1).unwrap().unwrap(), Some(second.current_len()));
        assert_eq!(
            current,
            vec![
                (OutputStream::Stderr, b"sep\n".to_vec()),
                (OutputStream::Stdout, b"new\n".to_vec()),
            ]
        );
        drop(first);

        // The run after keeps only the second run's output.
        let third = LogWriter::create(dir.path(), 40, b"sep\n").unwrap();
        let previous = records(third.open(0).unwrap().unwrap(), None);
        assert_eq!(previous[1], (OutputStream::Stdout, b"new\n".to_vec()));
        // Rotating past the limit throws the previous run away like any
        // older output, and says so.
        let mut third = third;
        for _ in 0..3 {
            third.append(OutputStream::Stdout, &[b'x'; 10]).unwrap();
        }
        assert!(third.discarded());
    }

    #[test]
    fn a_run_that_wrote_nothing_leaves_nothing_to_keep() {
        let dir = tempfile::tempdir().unwrap();
        LogWriter::create(dir.path(), 40, b"").unwrap();
        let log = LogWriter::create(dir.path(), 40, b"sep\n").unwrap();
        assert_eq!((log.size(), log.generation()), (0, 0));
        assert!(!dir.path().join(PREVIOUS).exists());
    }

    #[test]
    fn lines_are_counted_and_skipped() {
        let mut counter = LineCounter::default();
        counter.add(b"a\nb");
        counter.add(b"\nc");
        assert_eq!(counter.lines(), 3);
        counter.add(b"\n");
        assert_eq!(counter.lines(), 3);

        let mut skipper = LineSkipper::new(2);
        assert_eq!(skipper.keep(b"a\nb"), b"");
        assert_eq!(skipper.keep(b"\nc\n"), b"c\n");
        assert_eq!(skipper.keep(b"d\n"), b"d\n");
    }
}

//! A bounded byte ring addressed by absolute offsets, and the readers
//! attached to it.
//!
//! A shell's output is numbered from 0 when the shell starts. The ring keeps
//! the newest `capacity` bytes; a reader asks for an offset and gets what is
//! still held from there, plus how many bytes it missed when the offset has
//! already been overwritten.
//!
//! # Back-pressure
//!
//! Attached readers are registered ([`Ring::attach`]) with their cursors,
//! and [`Ring::room`] tells the writer how much it may append without
//! overwriting a byte one of them has not read yet. A writer that waits for
//! room instead of pushing anyway loses nothing for the readers attached,
//! and throttles whoever produces the bytes to the pace of the slowest
//! reader, as a terminal nobody reads does.
//!
//! A reader that took nothing for `stall_limit` although output was waiting
//! for it (a host that stopped reading without hanging up, a transport that
//! wedged) no longer holds the writer back: the ring then wraps over it, and
//! its next read reports what it lost. So a wedged reader stalls the stream
//! for a bounded time, never forever. With no reader attached the ring just
//! keeps the newest bytes.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The newest bytes of a stream (at most its capacity), with their
/// absolute offsets, and the cursors of its attached readers.
#[derive(Debug)]
pub struct Ring {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// The offset just past the newest byte.
    end: u64,
    readers: BTreeMap<u64, Reader>,
    next_reader: u64,
    stall_limit: Duration,
}

/// One attached reader.
#[derive(Debug, Clone, Copy)]
struct Reader {
    /// The offset of the next byte it reads.
    cursor: u64,
    /// Since when it has been waiting for output or taking it: its last
    /// read, or the moment output arrived while it was caught up.
    since: Instant,
}

/// An attached reader, as [`Ring::attach`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderId(u64);

/// What [`Ring::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// Bytes between the asked-for offset and `offset` that are no longer
    /// held.
    pub lost: u64,
    /// The offset of `data[0]`.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Ring {
    /// An empty ring holding at most `capacity` bytes, whose readers hold
    /// the writer back for at most `stall_limit` without taking anything.
    pub fn new(capacity: usize, stall_limit: Duration) -> Self {
        Self {
            bytes: VecDeque::new(),
            capacity: capacity.max(1),
            end: 0,
            readers: BTreeMap::new(),
            next_reader: 0,
            stall_limit,
        }
    }

    /// The offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.end - self.bytes.len() as u64
    }

    /// The offset just past the newest byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends `data`, dropping the oldest bytes beyond the capacity (see
    /// [`Ring::room`] for how much fits without overwriting what an
    /// attached reader still needs).
    pub fn push(&mut self, data: &[u8], now: Instant) {
        // Readers that were caught up start waiting for this output now.
        for reader in self.readers.values_mut() {
            if reader.cursor >= self.end {
                reader.since = now;
            }
        }
        self.end += data.len() as u64;
        let keep = &data[data.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + keep.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(keep);
    }

    /// How many bytes can be pushed now without overwriting a byte that an
    /// attached reader has not read, leaving out readers stalled for longer
    /// than the stall limit. The whole capacity when no reader holds
    /// anything back.
    pub fn room(&self, now: Instant) -> usize {
        let start = self.start();
        let oldest_needed = self
            .readers
            .values()
            .filter(|reader| {
                reader.cursor >= self.end
                    || now.saturating_duration_since(reader.since) < self.stall_limit
            })
            .map(|reader| reader.cursor.clamp(start, self.end))
            .min();
        match oldest_needed {
            Some(cursor) => self.capacity - (self.end - cursor) as usize,
            None => self.capacity,
        }
    }

    /// Registers a reader starting at `offset`.
    pub fn attach(&mut self, offset: u64, now: Instant) -> ReaderId {
        let id = self.next_reader;
        self.next_reader += 1;
        self.readers.insert(
            id,
            Reader {
                cursor: offset,
                since: now,
            },
        );
        ReaderId(id)
    }

    /// Forgets a reader; it holds nothing back any more.
    pub fn detach(&mut self, id: ReaderId) {
        self.readers.remove(&id.0);
    }

    /// The next up to `max` bytes for reader `id`, advancing its cursor;
    /// `None` when it has read everything (or is not attached). A slice
    /// may carry only a loss, with no data.
    pub fn read_next(&mut self, id: ReaderId, max: usize, now: Instant) -> Option<Slice> {
        let cursor = self.readers.get(&id.0)?.cursor;
        if cursor >= self.end {
            return None;
        }
        let slice = self.read(cursor, max);
        if let Some(reader) = self.readers.get_mut(&id.0) {
            reader.cursor = slice.offset + slice.data.len() as u64;
            reader.since = now;
        }
        Some(slice)
    }

    /// Up to `max` bytes from `offset` (or from the oldest byte held, when
    /// `offset` is older). Empty at or past the end.
    pub fn read(&self, offset: u64, max: usize) -> Slice {
        let start = self.start();
        let from = offset.max(start);
        let lost = from - offset;
        if from >= self.end {
            return Slice {
                lost,
                offset: from,
                data: Vec::new(),
            };
        }
        let skip = (from - start) as usize;
        let take = max.min(self.bytes.len() - skip);
        let mut data = Vec::with_capacity(take);
        let (front, back) = self.bytes.as_slices();
        if skip < front.len() {
            let first = &front[skip..front.len().min(skip + take)];
            data.extend_from_slice(first);
            data.extend_from_slice(&back[..take - first.len()]);
        } else {
            let at = skip - front.len();
            data.extend_from_slice(&back[at..at + take]);
        }
        Slice {
            lost,
            offset: from,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(30);

    fn ring(capacity: usize) -> Ring {
        Ring::new(capacity, STALL)
    }

    #[test]
    fn reads_by_absolute_offset() {
        let now = Instant::now();
        let mut ring = ring(8);
        ring.push(b"hello", now);
        assert_eq!(ring.start(), 0);
        assert_eq!(ring.end(), 5);
        let slice = ring.read(1, 3);
        assert_eq!(slice.lost, 0);
        assert_eq!(slice.offset, 1);
        assert_eq!(slice.data, b"ell");
        assert!(ring.read(5, 10).data.is_empty());
    }

    #[test]
    fn wraps_and_reports_what_was_lost() {
        let now = Instant::now();
        let mut ring = ring(8);
        ring.push(b"0123456789", now);
        assert_eq!(ring.start(), 2);
        ring.push(b"ab", now);
        assert_eq!(ring.start(), 4);
        assert_eq!(ring.end(), 12);
        let slice = ring.read(1, 100);
        assert_eq!(slice.lost, 3);
        assert_eq!(slice.offset, 4);
        assert_eq!(slice.data, b"456789ab");
        let slice = ring.read(10, 100);
        assert_eq!(slice.lost, 0);
        assert_eq!(slice.data, b"ab");
    }

    #[test]
    fn reads_across_the_wrap_point_of_the_storage() {
        let now = Instant::now();
        let mut ring = ring(8);
        for chunk in [&b"abcde"[..], b"fgh", b"ijk", b"lm"] {
            ring.push(chunk, now);
        }
        assert_eq!(ring.start(), 5);
        for from in 5..13 {
            for max in 0..10 {
                let expected: Vec<u8> = b"abcdefghijklm"[from as usize..]
                    .iter()
                    .copied()
                    .take(max)
                    .collect();
                assert_eq!(ring.read(from, max).data, expected, "from {from} max {max}");
            }
        }
    }

    #[test]
    fn a_push_bigger_than_the_ring_keeps_its_tail() {
        let now = Instant::now();
        let mut ring = ring(4);
        ring.push(b"xy", now);
        ring.push(b"abcdefgh", now);
        assert_eq!(ring.start(), 6);
        assert_eq!(ring.read(0, 100).data, b"efgh");
    }

    #[test]
    fn without_readers_the_whole_ring_is_room() {
        let now = Instant::now();
        let mut ring = ring(8);
        assert_eq!(ring.room(now), 8);
        ring.push(b"0123456789", now);
        assert_eq!(ring.room(now), 8);
    }

    #[test]
    fn an_attached_reader_holds_the_writer_back_until_it_reads() {
        let now = Instant::now();
        let mut ring = ring(8);
        let reader = ring.attach(0, now);
        assert_eq!(ring.room(now), 8);
        ring.push(b"abcde", now);
        assert_eq!(ring.room(now), 3);
        ring.push(b"fgh", now);
        assert_eq!(ring.room(now), 0, "full of unread bytes");

        let slice = ring.read_next(reader, 3, now).unwrap();
        assert_eq!((slice.lost, slice.offset), (0, 0));
        assert_eq!(slice.data, b"abc");
        assert_eq!(ring.room(now), 3);
        ring.push(b"ijk", now);
        let slice = ring.read_next(reader, 100, now).unwrap();
        assert_eq!((slice.lost, slice.offset), (0, 3));
        assert_eq!(slice.data, b"defghijk");
        assert!(ring.read_next(reader, 100, now).is_none(), "caught up");
        assert_eq!(ring.room(now), 8);
    }

    #[test]
    fn a_writer_that_respects_the_room_loses_nothing_for_a_slow_reader() {
        let now = Instant::now();
        let mut ring = ring(16);
        let reader = ring.attach(0, now);
        let stream: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let (mut written, mut received) = (0, Vec::new());
        while received.len() < stream.len() {
            // The writer fills what room there is; the reader takes 3 at a time.
            let n = ring.room(now).min(stream.len() - written);
            ring.push(&stream[written..written + n], now);
            written += n;
            if let Some(slice) = ring.read_next(reader, 3, now) {
                assert_eq!(slice.lost, 0);
                assert_eq!(slice.offset, received.len() as u64);
                received.extend_from_slice(&slice.data);
            }
        }
        assert_eq!(received, stream);
    }

    #[test]
    fn the_slowest_of_several_readers_sets_the_room() {
        let now = Instant::now();
        let mut ring = ring(8);
        let fast = ring.attach(0, now);
        let slow = ring.attach(0, now);
        ring.push(b"abcdef", now);
        ring.read_next(fast, 100, now).unwrap();
        ring.read_next(slow, 2, now).unwrap();
        assert_eq!(ring.room(now), 4);
        ring.detach(slow);
        assert_eq!(ring.room(now), 8);
        ring.detach(fast);
        assert!(ring.read_next(fast, 1, now).is_none(), "detached");
    }

    #[test]
    fn a_late_reader_is_told_what_it_lost() {
        let now = Instant::now();
        let mut ring = ring(4);
        ring.push(b"abcdefgh", now);
        let reader = ring.attach(1, now);
        assert_eq!(ring.room(now), 0, "it still wants everything held");
        let slice = ring.read_next(reader, 2, now).unwrap();
        assert_eq!((slice.lost, slice.offset), (3, 4));
        assert_eq!(slice.data, b"ef");
        assert_eq!(ring.room(now), 2);
    }

    #[test]
    fn a_stalled_reader_stops_holding_the_writer_back_and_then_learns_its_loss() {
        let t0 = Instant::now();
        let mut ring = ring(8);
        let stuck = ring.attach(0, t0);
        ring.push(b"abcdefgh", t0);
        assert_eq!(ring.room(t0), 0);
        assert_eq!(ring.room(t0 + STALL - Duration::from_millis(1)), 0);
        let later = t0 + STALL;
        assert_eq!(ring.room(later), 8, "stalled for the whole limit");
        ring.push(b"ijkl", later);
        let slice = ring.read_next(stuck, 100, later).unwrap();
        assert_eq!((slice.lost, slice.offset), (4, 4));
        assert_eq!(slice.data, b"efghijkl");
        // Reading again makes it count once more.
        ring.push(b"mn", later);
        assert_eq!(ring.room(later + Duration::from_secs(1)), 6);
    }

    #[test]
    fn an_idle_caught_up_reader_is_not_stalled_when_output_resumes() {
        let t0 = Instant::now();
        let mut ring = ring(8);
        let reader = ring.attach(0, t0);
        ring.push(b"ab", t0);
        ring.read_next(reader, 100, t0).unwrap();
        // An hour of silence, then a burst: the reader is waiting, not stuck.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(ring.room(later), 8);
        ring.push(b"cdefghij", later);
        assert_eq!(ring.room(later + Duration::from_secs(1)), 0);
    }
}

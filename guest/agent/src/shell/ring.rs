//! A bounded byte ring addressed by absolute offsets.
//!
//! A shell's output is numbered from 0 when the shell starts. The ring keeps
//! the newest [`Ring::capacity`] bytes; a reader asks for an offset and gets
//! what is still held from there, plus how many bytes it missed when the
//! offset has already been overwritten.

use std::collections::VecDeque;

/// The newest bytes of a stream (at most its capacity), with their
/// absolute offsets.
#[derive(Debug)]
pub struct Ring {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// The offset just past the newest byte.
    end: u64,
}

/// What [`Ring::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Slice {
    /// Bytes between the requested offset and the oldest one held.
    pub lost: u64,
    /// The offset of `data[0]`.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Ring {
    /// An empty ring holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            capacity: capacity.max(1),
            end: 0,
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

    /// Appends `data`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, data: &[u8]) {
        self.end += data.len() as u64;
        let keep = &data[data.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + keep.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(keep);
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
        let data = self.bytes.range(skip..skip + take).copied().collect();
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

    #[test]
    fn reads_by_absolute_offset() {
        let mut ring = Ring::new(8);
        ring.push(b"hello");
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
        let mut ring = Ring::new(8);
        ring.push(b"0123456789");
        assert_eq!(ring.start(), 2);
        ring.push(b"ab");
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
    fn a_push_bigger_than_the_ring_keeps_its_tail() {
        let mut ring = Ring::new(4);
        ring.push(b"xy");
        ring.push(b"abcdefgh");
        assert_eq!(ring.start(), 6);
        assert_eq!(ring.read(0, 100).data, b"efgh");
    }
}

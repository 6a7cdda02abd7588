//! A shell's output: a bounded ring buffer addressed by absolute byte
//! offsets (cursors), the bookkeeping that keeps those offsets true when
//! the guest could not deliver some output, and rendering a window of it
//! as plain text.
//!
//! A cursor that has fallen out of the buffer is not an error: the read
//! starts at the oldest byte still held and says it was truncated.
//!
//! # Gaps
//!
//! Output the guest reports lost (or skips over) still takes its place in
//! the offsets, as a *gap*: the buffer holds no bytes for it, and later
//! output keeps the offsets it would have had. A window never spans a gap:
//! a read stops where one begins (with `more` set), and a read from a
//! cursor before the end of a gap starts after it, truncated. So
//! `truncated` means exactly "this read starts later than asked", whether
//! the bytes between were overwritten here or never arrived.

use std::collections::VecDeque;

use pyro_actors::secrets::redactor::{Redactor, StreamRedactor};

/// Bytes of output kept per shell.
pub const SHELL_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Lines a plain rendering keeps at most (the rest of the window is cut).
const PLAIN_MAX_LINES: usize = 20_000;

/// Gaps tracked at most; past that, the bytes before the oldest one are
/// dropped with it, so bookkeeping stays bounded whatever the guest sends.
const MAX_GAPS: usize = 64;

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Offset of the first returned byte.
    pub start: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether the asked-for cursor had left the buffer or fell in a gap
    /// (the window starts later than asked).
    pub truncated: bool,
    /// Whether more output follows the window.
    pub more: bool,
}

/// Offsets with no bytes: output lost before it reached the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    /// Its first offset.
    at: u64,
    /// How many offsets it covers.
    len: u64,
}

impl Gap {
    fn end(self) -> u64 {
        self.at + self.len
    }
}

/// The bounded output of one shell.
#[derive(Debug, Clone)]
pub struct OutputBuffer {
    /// The bytes held, gaps left out.
    data: VecDeque<u8>,
    /// Absolute offset of the oldest byte held (never the start of a gap).
    start: u64,
    /// The offset after the last byte or gap.
    end: u64,
    /// Gaps between `start` and `end`, in order, never adjacent.
    gaps: VecDeque<Gap>,
    capacity: usize,
}

impl OutputBuffer {
    /// An empty buffer holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: VecDeque::new(),
            start: 0,
            end: 0,
            gaps: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The offset after the last byte (the total output so far, counting
    /// what was lost).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends output, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes);
        self.end += bytes.len() as u64;
        self.trim();
    }

    /// Records that `len` bytes of output were lost here: the offsets move
    /// on, no bytes are held for them.
    pub fn skip(&mut self, len: u64) {
        if len == 0 {
            return;
        }
        match self.gaps.back_mut() {
            Some(last) if last.end() == self.end => last.len += len,
            _ => self.gaps.push_back(Gap { at: self.end, len }),
        }
        self.end += len;
        if self.gaps.len() > MAX_GAPS {
            self.drop_through_first_gap();
        }
        self.normalize();
    }

    /// Up to `max` bytes from `cursor`, never splitting a UTF-8 sequence at
    /// the end of the window (unless a gap follows, which no later bytes
    /// can complete), never spanning a gap.
    pub fn read(&self, cursor: u64, max: usize) -> Window {
        let mut from = cursor.clamp(self.start, self.end);
        if let Some(gap) = self.gaps.iter().find(|g| g.at <= from && from < g.end()) {
            from = gap.end();
        }
        let truncated = from > cursor;
        let next_gap = self.gaps.iter().find(|g| g.at > from).map(|g| g.at);
        let stop = next_gap.unwrap_or(self.end);
        let skip = self.index_of(from);
        let available = (stop - from) as usize;
        let take = available.min(max);
        let mut bytes: Vec<u8> = self.data.range(skip..skip + take).copied().collect();
        if take < available || next_gap.is_none() {
            bytes.truncate(utf8_safe_len(&bytes));
        }
        Window {
            start: from,
            more: from + (bytes.len() as u64) < self.end,
            bytes,
            truncated,
        }
    }

    /// Where the byte at `offset` (held, not in a gap) is in `data`.
    fn index_of(&self, offset: u64) -> usize {
        let skipped: u64 = self
            .gaps
            .iter()
            .take_while(|g| g.end() <= offset)
            .map(|g| g.len)
            .sum();
        (offset - self.start - skipped) as usize
    }

    /// Drops the oldest bytes (and the gaps they reach) beyond the capacity.
    fn trim(&mut self) {
        while self.data.len() > self.capacity {
            let excess = self.data.len() - self.capacity;
            let before_gap = self
                .gaps
                .front()
                .map_or(self.data.len(), |g| (g.at - self.start) as usize);
            let drop = excess.min(before_gap);
            self.data.drain(..drop);
            self.start += drop as u64;
            self.normalize();
        }
    }

    /// Drops the bytes before the oldest gap, and the gap.
    fn drop_through_first_gap(&mut self) {
        if let Some(first) = self.gaps.front() {
            let before = (first.at - self.start) as usize;
            self.data.drain(..before);
            self.start = first.at;
            self.normalize();
        }
    }

    /// Keeps `start` on a byte: a gap it reached is dropped.
    fn normalize(&mut self) {
        while let Some(first) = self.gaps.front().copied() {
            if first.at > self.start {
                break;
            }
            self.start = first.end();
            self.gaps.pop_front();
        }
    }
}

/// What the supervisor keeps of one shell's output stream: the guest's
/// bytes, redacted, in an [`OutputBuffer`], with whatever the guest did
/// not deliver (a lost-bytes report, or output that starts past where the
/// last ended) counted in as a gap, so cursors stay byte offsets of the
/// terminal's output.
///
/// At a gap the redactor's held-back tail (which may be the start of a
/// secret whose rest was lost) is dropped and counted into the gap rather
/// than shown: part of a secret must not leak because the stream broke.
#[derive(Debug)]
pub struct ShellOutput {
    buffer: OutputBuffer,
    redact: StreamRedactor,
    /// The guest's offset of the next byte expected.
    guest_next: u64,
}

impl ShellOutput {
    /// An empty stream, kept up to `capacity` bytes, redacted by
    /// `redactor`, whose guest offsets start at 0.
    pub fn new(capacity: usize, redactor: &Redactor) -> Self {
        Self {
            buffer: OutputBuffer::new(capacity),
            redact: redactor.stream(),
            guest_next: 0,
        }
    }

    /// What is kept.
    pub fn buffer(&self) -> &OutputBuffer {
        &self.buffer
    }

    /// Output the guest sent from its offset `offset`. Returns whether the
    /// buffer changed.
    pub fn output(&mut self, offset: u64, data: &[u8]) -> bool {
        let mut changed = self.catch_up(offset);
        // Bytes already had (a resend) are not taken twice.
        let seen = self.guest_next.saturating_sub(offset);
        let data = &data[usize::try_from(seen).unwrap_or(usize::MAX).min(data.len())..];
        self.guest_next += data.len() as u64;
        let clean = self.redact.push(data);
        if !clean.is_empty() {
            self.buffer.push(&clean);
            changed = true;
        }
        changed
    }

    /// The guest reported `lost_bytes` bytes from its offset `offset` as
    /// lost. Returns the gap recorded, in bytes (0 when nothing new was
    /// lost).
    pub fn lost(&mut self, offset: u64, lost_bytes: u64) -> u64 {
        let before = self.buffer.end();
        self.catch_up(offset.saturating_add(lost_bytes));
        self.buffer.end() - before
    }

    /// The stream ended: releases the redactor's held-back tail. Returns
    /// whether the buffer changed.
    pub fn finish(&mut self) -> bool {
        let rest = self.redact.finish();
        self.buffer.push(&rest);
        !rest.is_empty()
    }

    /// Records a gap when the guest's output continues past where it last
    /// ended. Returns whether it did.
    fn catch_up(&mut self, guest_offset: u64) -> bool {
        if guest_offset <= self.guest_next {
            return false;
        }
        let held = self.redact.finish().len() as u64;
        let gap = guest_offset - self.guest_next + held;
        self.guest_next = guest_offset;
        self.buffer.skip(gap);
        true
    }
}

/// The longest prefix of `bytes` that does not end inside a UTF-8 sequence
/// that continues past the window (invalid bytes are kept as they are).
fn utf8_safe_len(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Look at most 3 bytes back for the start of a multi-byte sequence.
    for back in 1..=3.min(len) {
        let byte = bytes[len - back];
        if byte & 0b1100_0000 != 0b1000_0000 {
            let needed = match byte {
                b if b & 0b1110_0000 == 0b1100_0000 => 2,
                b if b & 0b1111_0000 == 0b1110_0000 => 3,
                b if b & 0b1111_1000 == 0b1111_0000 => 4,
                _ => 1,
            };
            return if needed > back { len - back } else { len };
        }
    }
    len
}

/// Renders terminal output as the text a terminal `cols` wide would show,
/// with escapes, carriage returns and backspaces applied. The screen is
/// made tall enough for the whole window so nothing scrolls away.
pub fn render_plain(bytes: &[u8], cols: u16) -> String {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    let rows = lines.clamp(1, PLAIN_MAX_LINES) as u16;
    let rows = rows.max(1);
    let mut parser = vt100::Parser::new(rows, cols.max(10), 0);
    parser.process(bytes);
    let text = parser.screen().contents();
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_absolute_and_old_ones_are_truncated_not_errors() {
        let mut buffer = OutputBuffer::new(8);
        buffer.push(b"hello ");
        buffer.push(b"world!");
        assert_eq!(buffer.end(), 12);
        let window = buffer.read(0, 100);
        assert!(window.truncated);
        assert_eq!(window.start, 4);
        assert_eq!(window.bytes, b"o world!");
        let window = buffer.read(8, 2);
        assert!(!window.truncated);
        assert_eq!(window.bytes, b"rl");
        assert!(window.more);
        let window = buffer.read(50, 10);
        assert_eq!(
            (window.start, window.bytes.len(), window.more),
            (12, 0, false)
        );
    }

    #[test]
    fn a_window_never_ends_inside_a_utf8_character() {
        let mut buffer = OutputBuffer::new(64);
        buffer.push("aé€".as_bytes()); // 1 + 2 + 3 bytes
        assert_eq!(buffer.read(0, 2).bytes, b"a");
        assert_eq!(buffer.read(0, 3).bytes, "aé".as_bytes());
        assert_eq!(buffer.read(0, 5).bytes, "aé".as_bytes());
        assert_eq!(buffer.read(0, 6).bytes, "aé€".as_bytes());
        let mut invalid = OutputBuffer::new(8);
        invalid.push(&[b'x', 0xff]);
        assert_eq!(invalid.read(0, 8).bytes, vec![b'x', 0xff]);
    }

    #[test]
    fn ten_mib_through_a_four_mib_buffer_keeps_the_newest() {
        let mut buffer = OutputBuffer::new(SHELL_BUFFER_BYTES);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            buffer.push(&chunk);
        }
        buffer.push(b"END");
        assert_eq!(buffer.end(), 160 * 64 * 1024 + 3);
        let window = buffer.read(0, 16);
        assert!(window.truncated);
        assert_eq!(window.start, buffer.end() - SHELL_BUFFER_BYTES as u64);
        let tail = buffer.read(buffer.end() - 3, 16);
        assert_eq!(tail.bytes, b"END");
    }

    /// Reads from `cursor` until caught up, in windows of `max`; returns
    /// the bytes and the offsets at which reads were truncated.
    fn read_all(buffer: &OutputBuffer, mut cursor: u64, max: usize) -> (Vec<u8>, Vec<u64>) {
        let (mut bytes, mut truncated_at) = (Vec::new(), Vec::new());
        loop {
            let window = buffer.read(cursor, max);
            if window.truncated {
                truncated_at.push(cursor);
            }
            bytes.extend_from_slice(&window.bytes);
            cursor = window.start + window.bytes.len() as u64;
            if !window.more {
                return (bytes, truncated_at);
            }
        }
    }

    #[test]
    fn a_gap_moves_the_offsets_on_and_truncates_whoever_crosses_it() {
        let mut buffer = OutputBuffer::new(64);
        buffer.push(b"abc");
        buffer.skip(5);
        buffer.push(b"def");
        assert_eq!(buffer.end(), 11, "lost bytes count into the offsets");

        // Before the gap: up to it, not truncated, and more follows.
        let window = buffer.read(0, 100);
        assert_eq!(window.bytes, b"abc");
        assert!(!window.truncated && window.more);
        // At or inside it: after it, truncated.
        for cursor in 3..8 {
            let window = buffer.read(cursor, 100);
            assert_eq!((window.start, window.truncated), (8, true), "{cursor}");
            assert_eq!(window.bytes, b"def");
            assert!(!window.more);
        }
        // After it: as usual.
        let window = buffer.read(9, 100);
        assert_eq!((window.start, window.truncated), (9, false));
        assert_eq!(window.bytes, b"ef");
        // A reader following along is told once, where it crossed.
        assert_eq!(read_all(&buffer, 0, 2), (b"abcdef".to_vec(), vec![3]));
    }

    #[test]
    fn a_gap_at_the_end_is_seen_by_the_next_read() {
        let mut buffer = OutputBuffer::new(64);
        buffer.push(b"ab");
        buffer.skip(3);
        buffer.skip(2);
        assert_eq!(buffer.end(), 7);
        let window = buffer.read(0, 100);
        assert_eq!(window.bytes, b"ab");
        assert!(window.more, "the reader is not caught up yet");
        let window = buffer.read(2, 100);
        assert_eq!(
            (window.start, window.truncated, window.more),
            (7, true, false)
        );
        assert!(window.bytes.is_empty());
        // Only a gap, from the start (an attach told of output it missed).
        let mut fresh = OutputBuffer::new(64);
        fresh.skip(10);
        fresh.push(b"xy");
        assert_eq!(fresh.end(), 12);
        let window = fresh.read(0, 100);
        assert_eq!((window.start, window.truncated), (10, true));
        assert_eq!(window.bytes, b"xy");
    }

    #[test]
    fn wrapping_drops_old_bytes_and_the_gaps_among_them() {
        let mut buffer = OutputBuffer::new(4);
        buffer.push(b"ab");
        buffer.skip(2);
        buffer.push(b"cd");
        buffer.skip(1);
        buffer.push(b"ef");
        // 6 bytes for 4 places: "ab" goes, and the gap after it.
        assert_eq!(buffer.end(), 9);
        let (bytes, truncated_at) = read_all(&buffer, 0, 100);
        assert_eq!(bytes, b"cdef");
        assert_eq!(truncated_at, vec![0, 6]);
        assert_eq!(buffer.read(4, 1).bytes, b"c");
        assert_eq!(buffer.read(5, 10).bytes, b"d");
        assert_eq!(buffer.read(7, 10).bytes, b"ef");
    }

    #[test]
    fn gap_bookkeeping_stays_bounded() {
        let mut buffer = OutputBuffer::new(1024);
        for i in 0..1000u64 {
            buffer.push(&[b'a' + (i % 26) as u8]);
            buffer.skip(1);
        }
        buffer.push(b"END");
        assert_eq!(buffer.end(), 2003);
        assert!(buffer.gaps.len() <= MAX_GAPS);
        let (bytes, _) = read_all(&buffer, 0, 7);
        assert!(bytes.ends_with(b"END"));
        assert!(bytes.len() > MAX_GAPS / 2, "recent output is kept");
        assert_eq!(buffer.read(2000, 10).bytes, b"END");
    }

    #[test]
    fn a_broken_utf8_sequence_before_a_gap_is_returned_not_withheld() {
        let mut buffer = OutputBuffer::new(64);
        buffer.push(&[b'x', 0xe2, 0x82]); // "€" without its last byte
        buffer.skip(1);
        buffer.push(b"y");
        let window = buffer.read(0, 100);
        assert_eq!(window.bytes, vec![b'x', 0xe2, 0x82]);
        assert_eq!(buffer.read(0, 2).bytes, b"x", "a window cut short still is");
        assert_eq!(read_all(&buffer, 0, 100).0, vec![b'x', 0xe2, 0x82, b'y']);
    }

    fn redactor(secret: &str) -> Redactor {
        let value = pyro_actors::secrets::redactor::SecretValue::new(secret).unwrap();
        Redactor::new([&value]).unwrap()
    }

    #[test]
    fn guest_losses_become_gaps_in_the_offsets() {
        let mut output = ShellOutput::new(64, &Redactor::default());
        assert!(output.output(0, b"hello"));
        assert_eq!(output.lost(5, 10), 10);
        assert!(output.output(15, b"world"));
        assert_eq!(output.buffer().end(), 20);
        // Output that starts past where the last ended is a loss too.
        assert!(output.output(25, b"!"));
        assert_eq!(output.buffer().end(), 26);
        let (bytes, truncated_at) = read_all(output.buffer(), 0, 100);
        assert_eq!(bytes, b"helloworld!");
        assert_eq!(truncated_at, vec![5, 20]);
        // A loss already counted, or a resend, adds nothing.
        assert_eq!(output.lost(20, 5), 0);
        assert!(output.output(25, b"!?"));
        assert_eq!(output.buffer().end(), 27);
        assert_eq!(output.buffer().read(26, 10).bytes, b"?");
    }

    #[test]
    fn a_secret_cut_by_a_gap_does_not_leak_its_start() {
        let mut output = ShellOutput::new(256, &redactor("s3cr3t-value"));
        output.output(0, b"key=s3cr");
        output.lost(8, 4);
        output.output(12, b"-value\nkey=s3cr3t-value\n");
        output.finish();
        let (bytes, truncated_at) = read_all(output.buffer(), 0, 1000);
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("s3cr"), "{text}");
        assert_eq!(text, "key=-value\nkey=[REDACTED]\n");
        // The held-back "s3cr" counts into the gap, with the 4 lost bytes.
        assert_eq!(truncated_at, vec![4]);
        assert_eq!(output.buffer().read(4, 100).start, 12);
    }

    #[test]
    fn plain_rendering_applies_escapes() {
        let raw =
            b"\x1b[31mred\x1b[0m text\r\nloading 10%\rloading 100%\r\nab\x08c\r\n\x1b[2Kcleared?";
        let plain = render_plain(raw, 80);
        assert_eq!(plain, "red text\nloading 100%\nac\ncleared?");
    }
}

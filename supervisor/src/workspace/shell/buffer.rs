//! A shell's output: a bounded ring buffer addressed by absolute byte
//! offsets (cursors), and rendering a window of it as plain text.
//!
//! A cursor that has fallen out of the buffer is not an error: the read
//! starts at the oldest byte still held and says it was truncated.

use std::collections::VecDeque;

/// Bytes of output kept per shell.
pub const SHELL_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Lines a plain rendering keeps at most (the rest of the window is cut).
const PLAIN_MAX_LINES: usize = 20_000;

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Offset of the first returned byte.
    pub start: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether the asked-for cursor had left the buffer.
    pub truncated: bool,
    /// Whether more output follows the window.
    pub more: bool,
}

/// The bounded output of one shell.
#[derive(Debug, Clone)]
pub struct OutputBuffer {
    data: VecDeque<u8>,
    /// Absolute offset of `data[0]`.
    start: u64,
    capacity: usize,
}

impl OutputBuffer {
    /// An empty buffer holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: VecDeque::new(),
            start: 0,
            capacity: capacity.max(1),
        }
    }

    /// The offset after the last byte (the total output so far).
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// Appends output, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes);
        let excess = self.data.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.data.drain(..excess);
            self.start += excess as u64;
        }
    }

    /// Up to `max` bytes from `cursor`, never splitting a UTF-8 sequence at
    /// the end of the window.
    pub fn read(&self, cursor: u64, max: usize) -> Window {
        let truncated = cursor < self.start;
        let from = cursor.clamp(self.start, self.end());
        let skip = (from - self.start) as usize;
        let available = self.data.len() - skip;
        let mut take = available.min(max);
        let bytes: Vec<u8> = self.data.range(skip..skip + take).copied().collect();
        let cut = utf8_safe_len(&bytes);
        take = cut;
        let mut bytes = bytes;
        bytes.truncate(cut);
        Window {
            start: from,
            more: skip + take < self.data.len(),
            bytes,
            truncated,
        }
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

    #[test]
    fn plain_rendering_applies_escapes() {
        let raw =
            b"\x1b[31mred\x1b[0m text\r\nloading 10%\rloading 100%\r\nab\x08c\r\n\x1b[2Kcleared?";
        let plain = render_plain(raw, 80);
        assert_eq!(plain, "red text\nloading 100%\nac\ncleared?");
    }
}

//! The redactor: replaces secret values, and the encodings they commonly
//! travel in, with [`REDACTED`] in every byte that leaves a workspace.
//!
//! A [`Redactor`] is built once per workspace from its [`SecretValue`]s. Each
//! value expands to a set of patterns (the value, its lines, base64 at the
//! three byte alignments, percent- and JSON-escaped forms; see
//! [`patterns`]). One Aho-Corasick automaton holds them all, and a single
//! pass finds them with leftmost-longest semantics: the match that starts
//! first wins, and of those starting there the longest, so when one secret
//! is a prefix of another the longer one is replaced whole. Unmatched text
//! between matches never contains a pattern. The pass skips through text
//! that cannot hold a pattern ([`search`]) and confirms with the automaton.
//!
//! [`Redactor::redact`] handles a whole buffer; a [`StreamRedactor`] (one per
//! output stream, from [`Redactor::stream`]) handles a stream in chunks and
//! its concatenated output is exactly what [`Redactor::redact`] gives for the
//! concatenated input. It holds back only the longest tail that could still
//! grow into a match (at most the longest pattern minus one byte) and emits
//! everything else at once, so a secret split over chunks of any size is
//! still caught and interactive output is not delayed. It finds that tail
//! by walking the automaton over at most the longest pattern's length of
//! each chunk ([`matcher`]).
//!
//! With no secrets the redactor does nothing: no automaton, no allocation,
//! and [`Redactor::redact`] returns its input borrowed. With secrets, input
//! without a match is also returned borrowed, and a stream's chunk too when
//! nothing was held back before it.
//!
//! Secret bytes live in zeroizing buffers ([`SecretValue`], the derived
//! patterns while they are built, a stream's held-back tail). The
//! automata's transition tables also encode the patterns and are not
//! zeroized: `aho-corasick` offers no hook for that.

mod matcher;
mod nfa;
mod patterns;
mod search;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use aho_corasick::automaton::StateID;
use zeroize::{Zeroize, ZeroizeOnDrop};

use self::matcher::{Matcher, Sink};

/// What every match is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The most pattern bytes (a prefix shared by several patterns of a secret
/// counted once) a redactor takes. Each costs an automaton state: about 20
/// bytes of memory once built, some 60 while building, and half a
/// microsecond to build. Any single secret fits (a 64 KiB binary value
/// expands to about 2 MiB); a hundred 8 KiB ones do too.
const MAX_PATTERN_BYTES: usize = 4 * 1024 * 1024;

/// A chunk at least this long (and at least the longest pattern) is not
/// copied behind the held-back tail: the tail is settled on a window first.
const SPLIT_MIN_CHUNK: usize = 4096;

/// Why a secret value or a redactor was refused. Never carries secret bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedactorError {
    /// A secret value is empty.
    #[error("a secret value is empty")]
    EmptySecret,
    /// A secret value is longer than [`SecretValue::MAX_LEN`].
    #[error("a secret value is {len} bytes long, over the {max}-byte limit")]
    SecretTooLong {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The secrets expand to more pattern bytes than one redactor holds.
    #[error("the secrets expand to {bytes} bytes of patterns, over the {max}-byte limit")]
    TooManyPatterns {
        /// Pattern bytes the secrets expand to (so far), shared prefixes
        /// counted once.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The automaton could not be built (it would be too large).
    #[error("building the redaction automaton failed: {reason}")]
    Automaton {
        /// What `aho-corasick` reported.
        reason: String,
    },
}

/// A secret's value: non-empty, at most [`SecretValue::MAX_LEN`] bytes.
///
/// `Debug` prints `[redacted]` and the bytes are zeroized on drop.
#[derive(Clone)]
pub struct SecretValue {
    bytes: Vec<u8>,
}

impl SecretValue {
    /// The longest value accepted, in bytes.
    pub const MAX_LEN: usize = 64 * 1024;

    /// Wraps `value`, refusing an empty or too long one (and zeroizing it).
    pub fn new(value: impl Into<Vec<u8>>) -> Result<Self, RedactorError> {
        let mut bytes = value.into();
        let refusal = if bytes.is_empty() {
            Some(RedactorError::EmptySecret)
        } else if bytes.len() > Self::MAX_LEN {
            Some(RedactorError::SecretTooLong {
                len: bytes.len(),
                max: Self::MAX_LEN,
            })
        } else {
            None
        };
        match refusal {
            Some(error) => {
                bytes.zeroize();
                Err(error)
            }
            None => Ok(Self { bytes }),
        }
    }

    /// The value's bytes, for handing the secret to the guest.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for SecretValue {}

/// Sorts `patterns` and drops duplicates. Returns their size with shared
/// prefixes counted once: the number of trie nodes, automaton states.
fn sort_distinct(patterns: &mut Vec<patterns::Pattern>) -> usize {
    patterns.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
    patterns.dedup_by(|a, b| a.as_slice() == b.as_slice());
    let mut previous: &[u8] = &[];
    let mut nodes = 0;
    for pattern in patterns.iter() {
        let shared = pattern
            .iter()
            .zip(previous)
            .take_while(|(a, b)| a == b)
            .count();
        nodes += pattern.len() - shared;
        previous = pattern;
    }
    nodes
}

/// Replaces a workspace's secrets in output; cheap to clone (shared).
///
/// The default redactor has no secrets and returns everything unchanged.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<Matcher>>,
}

impl Redactor {
    /// Builds a redactor for `secrets` (none gives the no-op redactor).
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a SecretValue>,
    ) -> Result<Self, RedactorError> {
        let mut patterns = Vec::new();
        let mut count = 0;
        let mut bytes = 0;
        for secret in secrets {
            let mut own = Vec::new();
            patterns::expand(secret.expose(), &mut own);
            bytes += sort_distinct(&mut own);
            if bytes > MAX_PATTERN_BYTES {
                return Err(RedactorError::TooManyPatterns {
                    bytes,
                    max: MAX_PATTERN_BYTES,
                });
            }
            patterns.append(&mut own);
            count += 1;
        }
        if patterns.is_empty() {
            return Ok(Self::default());
        }
        sort_distinct(&mut patterns);
        let matcher = Matcher::new(&patterns, count)?;
        Ok(Self {
            matcher: Some(Arc::new(matcher)),
        })
    }

    /// Whether this redactor has no secrets (and so changes nothing).
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `input` with every match replaced by [`REDACTED`]; borrowed when
    /// nothing matched.
    pub fn redact<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        match self.matcher.as_deref() {
            Some(matcher) => matcher.redact(input),
            None => Cow::Borrowed(input),
        }
    }

    /// [`Redactor::redact`] for text, such as error messages and JSON fields.
    ///
    /// A secret that is not UTF-8 can match inside a character; what is left
    /// of such a character becomes U+FFFD.
    pub fn redact_str(&self, input: &str) -> String {
        match self.redact(input.as_bytes()) {
            Cow::Borrowed(_) => input.to_owned(),
            Cow::Owned(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
            },
        }
    }

    /// A redactor for one output stream, fed in chunks.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            state: StreamState {
                held: Vec::new(),
                // Unused without a matcher.
                sid: self.matcher.as_ref().map_or(StateID::ZERO, |m| m.nfa.start),
                scratch: Vec::new(),
            },
            matcher: self.matcher.clone(),
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Redactor");
        match &self.matcher {
            Some(m) => out
                .field("secrets", &m.secrets)
                .field("patterns", &m.patterns),
            None => out.field("secrets", &0),
        };
        out.finish()
    }
}

/// Redacts one output stream (stdout, a PTY, a log) fed in chunks.
///
/// Feed chunks to [`push`](Self::push) and call [`finish`](Self::finish) at
/// the end of the stream; the outputs, concatenated, are the one-shot
/// [`Redactor::redact`] of the concatenated chunks. After `finish` the
/// redactor starts a new stream. The held-back tail (which may be the start
/// of a secret) is zeroized when released and on drop.
pub struct StreamRedactor {
    matcher: Option<Arc<Matcher>>,
    state: StreamState,
}

/// A stream's position, apart from the automata.
struct StreamState {
    /// Received, not yet emitted: the longest tail of the stream (since the
    /// last match) that is a proper prefix of a pattern, or a whole pattern
    /// some longer pattern starts with.
    held: Vec<u8>,
    /// The automaton's state for `held`.
    sid: StateID,
    /// `held` plus (part of) the next chunk, when they are searched together.
    scratch: Vec<u8>,
}

impl StreamRedactor {
    /// Redacts the next chunk: returns the output that is settled, which
    /// borrows from `chunk` when nothing was held back before and nothing
    /// matched. Output may lag input by the held-back tail.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        match self.matcher.as_deref() {
            Some(matcher) => self.state.push(matcher, chunk),
            None => Cow::Borrowed(chunk),
        }
    }

    /// Ends the stream: returns the held-back tail, redacted, and resets
    /// the redactor for a new stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let Some(matcher) = self.matcher.as_deref() else {
            return Vec::new();
        };
        let out = matcher.redact(&self.state.held).into_owned();
        self.state.held.zeroize();
        self.state.sid = matcher.nfa.start;
        out
    }
}

impl StreamState {
    fn push<'a>(&mut self, matcher: &Matcher, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        if self.held.is_empty() {
            let mut sink = Sink::Borrowed { end: 0 };
            let sid = matcher.nfa.advance(matcher.nfa.start, chunk);
            let (hold, sid) = matcher.drain(chunk, sid, &mut sink);
            self.hold(&chunk[hold..], sid);
            return sink.into_cow(chunk);
        }
        if chunk.len() >= SPLIT_MIN_CHUNK.max(matcher.nfa.max_len) {
            return self.push_long(matcher, chunk);
        }
        let sid = matcher.nfa.advance(self.sid, chunk);
        let (depth, leaf) = matcher.nfa.depth(sid);
        if depth == self.held.len() + chunk.len() && !leaf {
            // Everything held plus the chunk may still become one match.
            extend_zeroizing(&mut self.held, chunk);
            self.sid = sid;
            return Cow::Borrowed(&[]);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        extend_zeroizing(&mut scratch, &self.held);
        extend_zeroizing(&mut scratch, chunk);
        let mut sink = Sink::Owned(Vec::with_capacity(scratch.len()));
        let (hold, sid) = matcher.drain(&scratch, sid, &mut sink);
        self.hold(&scratch[hold..], sid);
        clear_zeroizing(&mut scratch);
        self.scratch = scratch;
        sink.into_cow(&[])
    }

    /// [`push`](Self::push) for a chunk of at least the longest pattern's
    /// length after a held-back tail: the matches starting in the tail are
    /// settled on the tail plus the chunk's first `max_len - 1` bytes, and
    /// the rest of the chunk is searched in place.
    fn push_long<'a>(&mut self, matcher: &Matcher, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        let held = self.held.len();
        let mut window = std::mem::take(&mut self.scratch);
        extend_zeroizing(&mut window, &self.held);
        extend_zeroizing(&mut window, &chunk[..matcher.nfa.max_len - 1]);
        let mut out = Vec::with_capacity(held + chunk.len());
        // Every occurrence starting in the tail ends inside the window, so
        // its matches there are the ones the whole stream has.
        let pos = matcher.redact_head(&window, held, &mut out);
        clear_zeroizing(&mut window);
        self.scratch = window;
        let rest = &chunk[pos - held..];
        let mut sink = Sink::Owned(out);
        let (hold, sid) = matcher.drain(
            rest,
            matcher.nfa.advance(matcher.nfa.start, rest),
            &mut sink,
        );
        self.hold(&rest[hold..], sid);
        sink.into_cow(rest)
    }

    /// Replaces the held-back tail.
    fn hold(&mut self, tail: &[u8], sid: StateID) {
        clear_zeroizing(&mut self.held);
        extend_zeroizing(&mut self.held, tail);
        self.sid = sid;
    }
}

/// Empties `buf`, zeroizing what it held (the rest of its capacity is kept
/// zero by this and [`extend_zeroizing`]).
fn clear_zeroizing(buf: &mut Vec<u8>) {
    buf.as_mut_slice().zeroize();
    buf.clear();
}

/// Appends `bytes` to `buf`, zeroizing the old allocation when it moves.
fn extend_zeroizing(buf: &mut Vec<u8>, bytes: &[u8]) {
    if buf.capacity() - buf.len() < bytes.len() {
        let mut grown = Vec::with_capacity((buf.len() + bytes.len()).max(2 * buf.capacity()));
        grown.extend_from_slice(buf);
        buf.zeroize();
        *buf = grown;
    }
    buf.extend_from_slice(bytes);
}

impl fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("active", &self.matcher.is_some())
            .field("held", &self.state.held.len())
            .finish()
    }
}

impl Drop for StreamRedactor {
    fn drop(&mut self) {
        self.state.held.zeroize();
        self.state.scratch.zeroize();
    }
}

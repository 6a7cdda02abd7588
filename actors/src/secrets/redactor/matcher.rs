//! One set of patterns, compiled: the automaton and the search beside it,
//! and redaction of a buffer or of the settled part of a stream's buffer.

use std::borrow::Cow;
use std::ops::Range;

use aho_corasick::automaton::StateID;

use super::nfa::Nfa;
use super::patterns::Pattern;
use super::search::{Finder, Matches};
use super::{RedactorError, REDACTED};

/// The compiled patterns of one redactor.
pub(super) struct Matcher {
    pub(super) nfa: Nfa,
    finder: Finder,
    /// Number of secrets and of distinct patterns, for `Debug`.
    pub(super) secrets: usize,
    pub(super) patterns: usize,
}

impl Matcher {
    /// Compiles `patterns` (sorted, distinct), which come from `secrets`
    /// secrets.
    pub(super) fn new(patterns: &[Pattern], secrets: usize) -> Result<Self, RedactorError> {
        Ok(Self {
            nfa: Nfa::new(patterns)?,
            finder: Finder::new(patterns)?,
            secrets,
            patterns: patterns.len(),
        })
    }

    fn matches<'a>(&'a self, haystack: &'a [u8]) -> Matches<'a> {
        self.finder.matches(&self.nfa, haystack)
    }

    /// One-shot redaction.
    pub(super) fn redact<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        let mut sink = Sink::Borrowed { end: 0 };
        let mut pos = 0;
        let mut matches = self.matches(input);
        while let Some(found) = matches.next_from(pos) {
            sink.text(input, pos..found.start);
            sink.redacted(input);
            pos = found.end;
        }
        sink.text(input, pos..input.len());
        sink.into_cow(input)
    }

    /// Redacts the matches of `window` that start before `before` (every
    /// occurrence starting there must end inside `window`) into `out`.
    /// Returns where the search resumes, at least `before`.
    pub(super) fn redact_head(&self, window: &[u8], before: usize, out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        let mut matches = self.matches(window);
        while let Some(found) = matches.next_from(pos) {
            if found.start >= before {
                break;
            }
            out.extend_from_slice(&window[pos..found.start]);
            out.extend_from_slice(REDACTED.as_bytes());
            pos = found.end;
        }
        if pos < before {
            out.extend_from_slice(&window[pos..before]);
            pos = before;
        }
        pos
    }

    /// Emits to `sink` the part of `buf` that is settled, given that a
    /// search resumes at `buf[0]` and the automaton is in state `sid` after
    /// `buf`. Returns where the held-back tail starts and its state.
    ///
    /// A match is settled when no occurrence starting at or before it can
    /// run past the end of `buf`, that is when it starts before the tail
    /// (or at the tail, if the tail is a whole pattern nothing continues).
    pub(super) fn drain(&self, buf: &[u8], mut sid: StateID, sink: &mut Sink) -> (usize, StateID) {
        let len = buf.len();
        let mut pos = 0;
        let mut matches = self.matches(buf);
        loop {
            let (depth, leaf) = self.nfa.depth(sid);
            let hold = len - depth;
            let settled = if leaf { hold + 1 } else { hold };
            match matches.next_from(pos) {
                Some(found) if found.start < settled => {
                    sink.text(buf, pos..found.start);
                    sink.redacted(buf);
                    pos = found.end;
                    if pos > hold {
                        // The tail began inside the match: find the longest
                        // one that begins after it.
                        sid = self.nfa.advance(self.nfa.start, &buf[pos..]);
                    }
                }
                _ => {
                    sink.text(buf, pos..hold);
                    return (hold, sid);
                }
            }
        }
    }
}

/// Output under construction: a prefix of the input as long as nothing has
/// matched, then an owned buffer.
pub(super) enum Sink {
    Borrowed { end: usize },
    Owned(Vec<u8>),
}

impl Sink {
    /// Appends `input[range]`; while borrowed, ranges are contiguous from 0.
    fn text(&mut self, input: &[u8], range: Range<usize>) {
        match self {
            Self::Borrowed { end } => {
                debug_assert_eq!(*end, range.start);
                *end = range.end;
            }
            Self::Owned(out) => out.extend_from_slice(&input[range]),
        }
    }

    /// Appends [`REDACTED`].
    fn redacted(&mut self, input: &[u8]) {
        if let Self::Borrowed { end } = *self {
            let mut out = Vec::with_capacity(input.len() + REDACTED.len());
            out.extend_from_slice(&input[..end]);
            *self = Self::Owned(out);
        }
        if let Self::Owned(out) = self {
            out.extend_from_slice(REDACTED.as_bytes());
        }
    }

    /// The output, borrowing from `input` if nothing matched.
    pub(super) fn into_cow(self, input: &[u8]) -> Cow<'_, [u8]> {
        match self {
            Self::Borrowed { end } => Cow::Borrowed(&input[..end]),
            Self::Owned(out) => Cow::Owned(out),
        }
    }
}

//! The one automaton over all patterns, and what redaction asks of it.
//!
//! It is an `aho-corasick` contiguous NFA with standard semantics, whose
//! states are the nodes of the patterns' trie: after any input, its state
//! is the longest suffix of the input that is a prefix of a pattern. The
//! redactor walks it three ways:
//!
//! - anchored from a position, to find the longest pattern starting there
//!   ([`Nfa::longest_at`]), which confirms what the skip search proposes;
//! - unanchored over a stream's last bytes, whose state says how long a
//!   tail to hold back: its depth, from a sorted table built by walking every
//!   pattern once ([`Nfa::depth`]);
//! - unanchored from a position until the leftmost-longest match is settled
//!   ([`Nfa::walk_find`]), in linear time, for input on which the skip
//!   search's confirmations cost too much.

use std::ops::Range;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous;
use aho_corasick::{Anchored, MatchKind};

use super::patterns::Pattern;
use super::RedactorError;

/// Flags a state no pattern continues past (see [`Nfa::depth`]).
const LEAF: u32 = 1 << 31;

/// The automaton over all patterns.
pub(super) struct Nfa {
    nfa: contiguous::NFA,
    /// The unanchored start state: the empty prefix.
    pub(super) start: StateID,
    anchored_start: StateID,
    /// States, sorted, and beside them each state's depth (the length of
    /// the prefix it stands for), or'ed with [`LEAF`] when no pattern
    /// continues past it.
    state_ids: Vec<u32>,
    state_depths: Vec<u32>,
    /// The longest pattern's length.
    pub(super) max_len: usize,
}

impl Nfa {
    /// Compiles `patterns` (sorted, distinct).
    pub(super) fn new(patterns: &[Pattern]) -> Result<Self, RedactorError> {
        let error = |e: &dyn std::fmt::Display| RedactorError::Automaton {
            reason: e.to_string(),
        };
        let nfa = contiguous::NFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(patterns.iter().map(|p| p.as_slice()))
            .map_err(|e| error(&e))?;
        let start = nfa.start_state(Anchored::No).map_err(|e| error(&e))?;
        let anchored_start = nfa.start_state(Anchored::Yes).map_err(|e| error(&e))?;

        // Walking a pattern from the start state passes through the trie
        // node of each of its prefixes; that gives every state's depth.
        let mut nodes: Vec<(u32, u32)> = Vec::with_capacity(patterns.iter().map(|p| p.len()).sum());
        for pattern in patterns {
            let mut sid = start;
            for (depth, &byte) in (1..).zip(pattern.iter()) {
                sid = nfa.next_state(Anchored::No, sid, byte);
                let leaf = if depth as usize == pattern.len() {
                    LEAF
                } else {
                    0
                };
                nodes.push((sid.as_u32(), depth | leaf));
            }
        }
        nodes.sort_unstable();
        let mut state_ids = Vec::new();
        let mut state_depths: Vec<u32> = Vec::new();
        for (sid, depth) in nodes {
            if state_ids.last() == Some(&sid) {
                if let Some(last) = state_depths.last_mut() {
                    // A node is a leaf only if every pattern ends there.
                    *last &= depth | !LEAF;
                }
            } else {
                state_ids.push(sid);
                state_depths.push(depth);
            }
        }
        state_ids.shrink_to_fit();
        state_depths.shrink_to_fit();
        Ok(Self {
            max_len: nfa.max_pattern_len(),
            nfa,
            start,
            anchored_start,
            state_ids,
            state_depths,
        })
    }

    /// The state after `bytes` follow an input in state `sid`. Only the
    /// last `max_len` bytes can matter, so no more are walked.
    pub(super) fn advance(&self, sid: StateID, bytes: &[u8]) -> StateID {
        let (mut sid, bytes) = match bytes.len().checked_sub(self.max_len) {
            Some(skip) => (self.start, &bytes[skip..]),
            None => (sid, bytes),
        };
        for &byte in bytes {
            sid = self.nfa.next_state(Anchored::No, sid, byte);
        }
        sid
    }

    /// The length of the prefix state `sid` stands for, and whether no
    /// pattern continues past it.
    pub(super) fn depth(&self, sid: StateID) -> (usize, bool) {
        match self.state_ids.binary_search(&sid.as_u32()) {
            Ok(i) => {
                let depth = self.state_depths[i];
                ((depth & !LEAF) as usize, depth & LEAF != 0)
            }
            Err(_) => (0, false), // the start state
        }
    }

    /// The longest pattern occurrence starting at `pos`, and how many bytes
    /// were walked to find out.
    pub(super) fn longest_at(&self, haystack: &[u8], pos: usize) -> (Option<Range<usize>>, usize) {
        let mut sid = self.anchored_start;
        let mut end = None;
        let mut walked = 0;
        for (len, &byte) in (1..).zip(&haystack[pos..]) {
            walked = len;
            sid = self.nfa.next_state(Anchored::Yes, sid, byte);
            if self.nfa.is_dead(sid) {
                break;
            }
            if self.ends_pattern_of_len(sid, len) {
                end = Some(pos + len);
            }
        }
        (end.map(|end| pos..end), walked)
    }

    /// The leftmost-longest occurrence starting at or after `from`, walking
    /// the automaton from there until it is settled.
    pub(super) fn walk_find(&self, haystack: &[u8], from: usize) -> Option<Range<usize>> {
        let mut sid = self.start;
        let mut best: Option<Range<usize>> = None;
        for (end, &byte) in (from + 1..).zip(&haystack[from..]) {
            sid = self.nfa.next_state(Anchored::No, sid, byte);
            if self.nfa.is_match(sid) {
                for i in 0..self.nfa.match_len(sid) {
                    let start = end - self.nfa.pattern_len(self.nfa.match_pattern(sid, i));
                    if best.as_ref().is_none_or(|b| start < b.start) {
                        best = Some(start..end);
                    } else if let Some(b) = best.as_mut().filter(|b| b.start == start) {
                        b.end = end;
                    }
                }
            }
            if let Some(b) = &best {
                // Everything still in progress starts after the best match.
                if end - self.depth(sid).0 > b.start {
                    return best;
                }
            }
        }
        best
    }

    /// Whether a pattern of length `len` ends in state `sid`. (A state's
    /// matches also include the patterns that are suffixes of its prefix.)
    fn ends_pattern_of_len(&self, sid: StateID, len: usize) -> bool {
        self.nfa.is_match(sid)
            && (0..self.nfa.match_len(sid))
                .any(|i| self.nfa.pattern_len(self.nfa.match_pattern(sid, i)) == len)
    }
}

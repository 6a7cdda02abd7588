//! Finding the leftmost-longest pattern occurrence, fast.
//!
//! Walking the automaton ([`Nfa`]) byte by byte, or running `aho-corasick`'s
//! own DFA search, goes at about 0.5 GB/s here, and with hundreds of
//! high-entropy patterns no prefilter helps. So patterns of at least
//! [`LONG_MIN`] bytes are found with a Wu-Manber skip search: a window as
//! long as the shortest of them (up to [`WINDOW_MAX`]) slides over the input,
//! and the hash of the 4-byte block at its end says how far it can move
//! before a pattern could start in it. In ordinary text most blocks occur in
//! no pattern, so it moves nearly a window at a time. Where a pattern may
//! start, an anchored walk of the automaton finds the longest pattern
//! starting there. Shorter patterns, usually none, are found by a small
//! leftmost-longest `aho-corasick` search of their own; the earlier of the
//! two results wins.

use std::ops::Range;

use aho_corasick::{AhoCorasick, Input, MatchKind};

use super::nfa::Nfa;
use super::patterns::Pattern;
use super::RedactorError;

/// Patterns at least this long go to the skip search.
const LONG_MIN: usize = 8;

/// The skip search's window is at most this long.
const WINDOW_MAX: usize = 32;

/// Bytes hashed per block.
const BLOCK: usize = 4;

/// Below twice this many window starts, one scan instead of two in lockstep.
const LOCKSTEP_MIN: usize = 1024;

/// Bytes the confirmations of one skip search may walk, beyond twice the
/// bytes it has moved past, before the haystack's remaining searches walk
/// the automaton instead ([`Nfa::walk_find`]). Confirmations can cost up to
/// the longest pattern's length per position on input made of repeats of a
/// pattern's periodic stretch; the walk costs one step per byte.
const CONFIRM_ALLOWANCE: usize = 4096;

/// The search structures beside the automaton.
pub(super) struct Finder {
    skip: Option<SkipTables>,
    /// Leftmost-longest over the patterns shorter than [`LONG_MIN`].
    short: Option<AhoCorasick>,
}

/// The Wu-Manber tables for the patterns of at least [`LONG_MIN`] bytes.
struct SkipTables {
    /// The window length: the shortest long pattern, at most [`WINDOW_MAX`].
    window: usize,
    /// Hash bits of a block.
    bits: u32,
    /// For a block hash, how far the window may move when its last block
    /// has that hash: 0 where some pattern's window-long prefix ends in it.
    shifts: Box<[u8]>,
    /// Bit set of the 16-bit hashes of the long patterns' first blocks.
    starts: Box<[u64]>,
}

impl Finder {
    /// Builds the search structures for `patterns`.
    pub(super) fn new(patterns: &[Pattern]) -> Result<Self, RedactorError> {
        let long: Vec<&[u8]> = patterns
            .iter()
            .filter(|p| p.len() >= LONG_MIN)
            .map(|p| p.as_slice())
            .collect();
        let short: Vec<&[u8]> = patterns
            .iter()
            .filter(|p| p.len() < LONG_MIN)
            .map(|p| p.as_slice())
            .collect();
        let short = if short.is_empty() {
            None
        } else {
            let search = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(short)
                .map_err(|e| RedactorError::Automaton {
                    reason: e.to_string(),
                })?;
            Some(search)
        };
        Ok(Self {
            skip: SkipTables::new(&long),
            short,
        })
    }

    /// A search over `haystack`.
    pub(super) fn matches<'a>(&'a self, nfa: &'a Nfa, haystack: &'a [u8]) -> Matches<'a> {
        Matches {
            finder: self,
            nfa,
            haystack,
            skip: Next::Unknown,
            short: Next::Unknown,
            walk: false,
        }
    }
}

/// How a skip search ended.
enum Skip {
    /// The first occurrence at or after the start of a pattern of at least
    /// [`LONG_MIN`] bytes, or of a shorter one starting where a long one
    /// could; the longest there.
    Done(Option<Range<usize>>),
    /// Confirmations cost too much; nothing was found before this position.
    GaveUp(usize),
}

/// What a skip search spends on confirmations.
struct Budget {
    from: usize,
    walked: usize,
}

impl Budget {
    /// Records a confirmation's walk; false once the search should give up,
    /// having moved about as far as `reached`.
    fn spend(&mut self, walked: usize, reached: usize) -> bool {
        self.walked += walked;
        self.walked <= 2 * reached.saturating_sub(self.from) + CONFIRM_ALLOWANCE
    }
}

impl SkipTables {
    fn new(long: &[&[u8]]) -> Option<Self> {
        let window = long.iter().map(|p| p.len()).min()?.min(WINDOW_MAX);
        let entries = long.len() * (window - BLOCK + 1);
        // About four slots per entry keeps most slots at the full shift; 2^16
        // one-byte slots still fit a core's L2 cache.
        let bits = (usize::BITS - (4 * entries).leading_zeros()).clamp(10, 16);
        let full = (window - BLOCK + 1) as u8;
        let mut shifts = vec![full; 1 << bits].into_boxed_slice();
        let mut starts = vec![0u64; (1 << 16) / 64].into_boxed_slice();
        for pattern in long {
            for at in 0..=window - BLOCK {
                let slot = hash(read_block(pattern, at), bits);
                let shift = (window - BLOCK - at) as u8;
                shifts[slot] = shifts[slot].min(shift);
            }
            let start = hash(read_block(pattern, 0), 16);
            starts[start / 64] |= 1 << (start % 64);
        }
        Some(Self {
            window,
            bits,
            shifts,
            starts,
        })
    }

    /// How far a window starting at `pos` may move.
    fn shift_at(&self, haystack: &[u8], pos: usize) -> usize {
        usize::from(self.shifts[hash(read_block(haystack, pos + self.window - BLOCK), self.bits)])
    }

    /// Searches window starts from `from` on.
    ///
    /// Each step waits for the previous one's table lookup, so a long range
    /// is split in two halves scanned in lockstep, which lets the CPU overlap
    /// their lookups; a match in the first half wins.
    fn find(&self, nfa: &Nfa, haystack: &[u8], from: usize) -> Skip {
        let Some(end) = (haystack.len() + 1).checked_sub(self.window) else {
            return Skip::Done(None);
        };
        if end <= from {
            return Skip::Done(None);
        }
        let budget = &mut Budget { from, walked: 0 };
        if end - from < 2 * LOCKSTEP_MIN {
            return self.scan(nfa, haystack, from, end, budget);
        }
        let mid = from + (end - from) / 2;
        let (mut a, mut b) = (from, mid);
        while a < mid && b < end {
            let shift_a = self.shift_at(haystack, a);
            let shift_b = self.shift_at(haystack, b);
            if shift_a == 0 {
                let (found, walked) = self.confirm(nfa, haystack, a);
                if found.is_some() {
                    return Skip::Done(found);
                }
                if !budget.spend(walked, a) {
                    return Skip::GaveUp(a);
                }
                a += 1;
            } else {
                a += shift_a;
            }
            if shift_b == 0 {
                let (found, walked) = self.confirm(nfa, haystack, b);
                if found.is_some() {
                    return match self.scan(nfa, haystack, a, mid, budget) {
                        Skip::Done(None) => Skip::Done(found),
                        earlier => earlier,
                    };
                }
                if !budget.spend(walked, a.min(mid) + (b - mid)) {
                    return Skip::GaveUp(a);
                }
                b += 1;
            } else {
                b += shift_b;
            }
        }
        // `a` may have run past `mid` into `b`'s half, already scanned up to `b`.
        match self.scan(nfa, haystack, a, mid, budget) {
            Skip::Done(None) => self.scan(nfa, haystack, b.max(a), end, budget),
            earlier => earlier,
        }
    }

    /// [`find`](Self::find) over window starts in `from..end`, in one scan.
    fn scan(
        &self,
        nfa: &Nfa,
        haystack: &[u8],
        from: usize,
        end: usize,
        budget: &mut Budget,
    ) -> Skip {
        let mut pos = from;
        while pos < end {
            let shift = self.shift_at(haystack, pos);
            if shift > 0 {
                pos += shift;
                continue;
            }
            let (found, walked) = self.confirm(nfa, haystack, pos);
            if found.is_some() {
                return Skip::Done(found);
            }
            if !budget.spend(walked, pos) {
                return Skip::GaveUp(pos);
            }
            pos += 1;
        }
        Skip::Done(None)
    }

    /// The longest occurrence at `pos`, where a long pattern may start, and
    /// the bytes walked to find out.
    fn confirm(&self, nfa: &Nfa, haystack: &[u8], pos: usize) -> (Option<Range<usize>>, usize) {
        let start = hash(read_block(haystack, pos), 16);
        if self.starts[start / 64] & (1 << (start % 64)) == 0 {
            return (None, 0);
        }
        nfa.longest_at(haystack, pos)
    }
}

/// The next leftmost-longest matches in one haystack, asked for from
/// positions that only move forward; each part's last answer is kept while
/// it still holds.
pub(super) struct Matches<'a> {
    finder: &'a Finder,
    nfa: &'a Nfa,
    haystack: &'a [u8],
    skip: Next,
    short: Next,
    /// Whether the skip search gave up on this haystack: from then on the
    /// automaton is walked instead.
    walk: bool,
}

/// A part's answer for searches from some position on.
#[derive(Clone)]
enum Next {
    Unknown,
    Found(Range<usize>),
    /// Nothing at or after this position.
    Nothing(usize),
}

impl Next {
    /// The answer for a search from `from`, if the one kept still holds.
    fn get(&self, from: usize) -> Option<Option<Range<usize>>> {
        match self {
            Self::Found(found) if found.start >= from => Some(Some(found.clone())),
            Self::Nothing(after) if *after <= from => Some(None),
            _ => None,
        }
    }

    fn new(found: &Option<Range<usize>>, from: usize) -> Self {
        found.clone().map_or(Self::Nothing(from), Self::Found)
    }
}

impl Matches<'_> {
    /// Whether the skip search gave up on this haystack.
    #[cfg(test)]
    pub(super) fn walking(&self) -> bool {
        self.walk
    }

    /// The leftmost-longest match starting at or after `from`, which must
    /// not be before the previous call's `from`.
    pub(super) fn next_from(&mut self, from: usize) -> Option<Range<usize>> {
        let (nfa, haystack) = (self.nfa, self.haystack);
        let long = match (&self.finder.skip, self.skip.get(from)) {
            (None, _) => None,
            (Some(_), Some(kept)) => kept,
            (Some(skip), None) => {
                let found = if self.walk {
                    nfa.walk_find(haystack, from)
                } else {
                    match skip.find(nfa, haystack, from) {
                        Skip::Done(found) => found,
                        Skip::GaveUp(at) => {
                            self.walk = true;
                            nfa.walk_find(haystack, at)
                        }
                    }
                };
                self.skip = Next::new(&found, from);
                found
            }
        };
        let short = match (&self.finder.short, self.short.get(from)) {
            (None, _) => None,
            (Some(_), Some(kept)) => kept,
            (Some(short), None) => {
                let input = Input::new(haystack).span(from..haystack.len());
                let found = short.find(input).map(|m| m.range());
                self.short = Next::new(&found, from);
                found
            }
        };
        // The long part's match is the longest of all patterns at its start.
        // A short match that starts first has no long pattern at its start
        // (the skip search would have stopped there).
        match (long, short) {
            (Some(long), Some(short)) if short.start < long.start => Some(short),
            (Some(long), _) => Some(long),
            (None, short) => short,
        }
    }
}

fn hash(block: u32, bits: u32) -> usize {
    (block.wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
}

fn read_block(bytes: &[u8], at: usize) -> u32 {
    let b = &bytes[at..at + BLOCK];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

//! The byte strings one secret value expands to.
//!
//! Every value is a pattern as it is. The derived patterns are:
//!
//! - each line of a multi-line value, trimmed of ASCII whitespace, and the
//!   value with `\n` turned into `\r\n` (a PTY's `onlcr` does that);
//! - for the value and, when it differs, the value trimmed of ASCII
//!   whitespace (file secrets usually end in a newline the command never
//!   prints):
//!   - standard and URL-safe base64 at the three byte alignments: for a
//!     value starting at offset 0, 1 or 2 of a 3-byte group, the characters
//!     that only depend on the value, then the same followed by the last,
//!     partial group as it is encoded when the value ends the data, without
//!     and with `=` padding;
//!   - percent-encoding: RFC 3986 (only unreserved bytes kept) with upper- and
//!     lower-case hex and with space as `%20` or `+`, plus the upper-case
//!     forms of WHATWG form encoding, JavaScript's `encodeURIComponent` and
//!     Python's `quote` (which keeps `/`);
//!   - JSON string escaping, exactly as `serde_json` writes a string's body.
//!
//! Derived patterns shorter than [`MIN_DERIVED_LEN`] bytes are dropped; see
//! there. Patterns live in [`Zeroizing`] buffers sized up front, so building
//! them leaves no copies of a secret behind in freed memory.

use zeroize::Zeroizing;

/// A pattern: bytes that are replaced wherever they occur.
pub(super) type Pattern = Zeroizing<Vec<u8>>;

/// Derived patterns (lines and encodings) shorter than this are dropped.
///
/// One to three bytes are mostly structure (`}`, `},`, `  ]`, an indent,
/// `ab=`) and occur all over ordinary output: masking them mangles the
/// output (actions/runner#326 masked every `{` after a multi-line JSON secret
/// was registered line by line) while a fragment that short carries at most
/// 24 bits of the secret. From four bytes on a line or encoding is specific
/// enough to be worth masking and too short to be much structure. The value
/// itself is always a pattern, whatever its length.
pub(super) const MIN_DERIVED_LEN: usize = 4;

const BASE64_STANDARD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL_SAFE: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends `value` and every pattern derived from it to `out`.
pub(super) fn expand(value: &[u8], out: &mut Vec<Pattern>) {
    out.push(copy(value));
    let trimmed = value.trim_ascii();
    let sources: &[&[u8]] = if trimmed.len() != value.len() && trimmed.len() >= MIN_DERIVED_LEN {
        out.push(copy(trimmed));
        &[value, trimmed]
    } else {
        &[value]
    };
    if value.contains(&b'\n') {
        for line in value.split(|&b| b == b'\n') {
            push_derived(out, copy(line.trim_ascii()));
        }
        push_derived(out, crlf(value));
    }
    for source in sources {
        for alphabet in [BASE64_STANDARD, BASE64_URL_SAFE] {
            for offset in 0..3 {
                base64_at(source, offset, alphabet, out);
            }
        }
        for style in PERCENT_STYLES {
            push_derived(out, percent(source, style));
        }
        push_derived(out, json(source));
    }
}

fn push_derived(out: &mut Vec<Pattern>, pattern: Pattern) {
    if pattern.len() >= MIN_DERIVED_LEN {
        out.push(pattern);
    }
}

fn copy(bytes: &[u8]) -> Pattern {
    let mut pattern = Zeroizing::new(Vec::with_capacity(bytes.len()));
    pattern.extend_from_slice(bytes);
    pattern
}

/// `value` with every `\n` not already preceded by `\r` turned into `\r\n`.
fn crlf(value: &[u8]) -> Pattern {
    let newlines = value.iter().filter(|&&b| b == b'\n').count();
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + newlines));
    let mut previous = 0;
    for &b in value {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

/// Pushes the base64 forms of `value` when it starts at `offset` (0..3) of a
/// 3-byte group: the characters that depend on the value's bytes only, then
/// that plus the final partial group (value at the end of the data), bare
/// and `=`-padded. The three are equal when the data ends on a group.
fn base64_at(value: &[u8], offset: usize, alphabet: &[u8; 64], out: &mut Vec<Pattern>) {
    let bits = 8 * (offset + value.len());
    // Characters before `first` mix in bytes before the value; from
    // `stable_end` on they mix in bytes after it.
    let first = (8 * offset).div_ceil(6);
    let stable_end = bits / 6;
    let unpadded_end = bits.div_ceil(6);
    let padded_len = unpadded_end.div_ceil(4) * 4;

    let mut encoded = Zeroizing::new(Vec::with_capacity(padded_len - first));
    let mut acc: u32 = 0;
    let mut acc_bits = 0;
    let mut index = 0;
    let mut emit = |sextet: u32, encoded: &mut Vec<u8>| {
        if index >= first {
            encoded.push(alphabet[(sextet & 63) as usize]);
        }
        index += 1;
    };
    for &b in std::iter::repeat_n(&0u8, offset).chain(value) {
        acc = (acc << 8) | u32::from(b);
        acc_bits += 8;
        while acc_bits >= 6 {
            acc_bits -= 6;
            emit(acc >> acc_bits, &mut encoded);
        }
        acc &= (1 << acc_bits) - 1;
    }
    if acc_bits > 0 {
        emit(acc << (6 - acc_bits), &mut encoded);
    }

    push_derived(out, copy(&encoded[..stable_end - first]));
    if unpadded_end != stable_end {
        push_derived(out, copy(&encoded));
        encoded.resize(padded_len - first, b'=');
        push_derived(out, encoded);
    }
}

/// One way of percent-encoding.
#[derive(Clone, Copy)]
struct PercentStyle {
    /// Bytes besides ASCII letters and digits that stay as they are.
    keep: &'static [u8],
    /// Whether space becomes `+` rather than `%20`.
    plus_for_space: bool,
    /// Whether hex digits are upper-case.
    upper: bool,
}

const RFC3986_UNRESERVED: &[u8] = b"-._~";

const PERCENT_STYLES: [PercentStyle; 7] = [
    // RFC 3986, e.g. Python `quote(s, safe="")`, Go `url.PathEscape` of a segment.
    PercentStyle {
        keep: RFC3986_UNRESERVED,
        plus_for_space: false,
        upper: true,
    },
    PercentStyle {
        keep: RFC3986_UNRESERVED,
        plus_for_space: false,
        upper: false,
    },
    // Python `quote_plus`, Go `url.QueryEscape`.
    PercentStyle {
        keep: RFC3986_UNRESERVED,
        plus_for_space: true,
        upper: true,
    },
    PercentStyle {
        keep: RFC3986_UNRESERVED,
        plus_for_space: true,
        upper: false,
    },
    // WHATWG application/x-www-form-urlencoded (browsers, the `url` crate, Java).
    PercentStyle {
        keep: b"*-._",
        plus_for_space: true,
        upper: true,
    },
    // JavaScript `encodeURIComponent`.
    PercentStyle {
        keep: b"!'()*-._~",
        plus_for_space: false,
        upper: true,
    },
    // Python `quote(s)`, whose default keeps `/`.
    PercentStyle {
        keep: b"-._~/",
        plus_for_space: false,
        upper: true,
    },
];

fn percent(value: &[u8], style: PercentStyle) -> Pattern {
    let hex: &[u8; 16] = if style.upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Zeroizing::new(Vec::with_capacity(3 * value.len()));
    for &b in value {
        if b.is_ascii_alphanumeric() || style.keep.contains(&b) {
            out.push(b);
        } else if b == b' ' && style.plus_for_space {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// The body of the JSON string `serde_json` writes for `value`: `"` and `\`
/// backslash-escaped, `\b \f \n \r \t` short escapes, other control bytes
/// as `\u00xx` with lower-case hex, everything else (DEL, non-ASCII) as is.
fn json(value: &[u8]) -> Pattern {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(Vec::with_capacity(6 * value.len()));
    for &b in value {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            _ => out.push(b),
        }
    }
    out
}

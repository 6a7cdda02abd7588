//! Fuzzes the redactor with arbitrary secrets, output built from noise and
//! encoded secrets, and arbitrary chunking. Checks that streaming gives the
//! one-shot output whatever the chunks, and that no secret value, line or
//! encoding is left in the output.

#![no_main]

use std::borrow::Cow;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use pyro_actors::secrets::redactor::{Redactor, SecretValue, REDACTED};

/// Derived forms shorter than this are not patterns (the redactor's
/// threshold).
const MIN_DERIVED_LEN: usize = 4;

#[derive(Arbitrary, Debug)]
struct Case {
    secrets: Vec<Vec<u8>>,
    pieces: Vec<Piece>,
    chunks: Vec<u16>,
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Noise(Vec<u8>),
    /// Noise repeated, for inputs long enough to take the long-chunk path.
    Repeat(Vec<u8>, u16),
    Secret(u8, Form),
}

#[derive(Arbitrary, Debug)]
enum Form {
    Raw,
    Base64 {
        before: Vec<u8>,
        after: Vec<u8>,
        url: bool,
        pad: bool,
    },
    Percent {
        plus: bool,
        lower: bool,
    },
    Json,
    Line(u8),
}

fuzz_target!(|case: Case| {
    let values: Vec<Vec<u8>> = case
        .secrets
        .into_iter()
        .take(8)
        .map(|mut v| {
            v.truncate(64);
            v
        })
        .filter(|v| !v.is_empty())
        .collect();
    let secrets: Vec<SecretValue> = values
        .iter()
        .filter_map(|v| SecretValue::new(v.clone()).ok())
        .collect();
    let Ok(redactor) = Redactor::new(&secrets) else {
        return;
    };

    let (input, needles) = build(&values, &case.pieces);
    let output = redactor.redact(&input);
    if values.is_empty() {
        assert!(matches!(output, Cow::Borrowed(_)));
    }

    let sizes: Vec<usize> = case.chunks.iter().map(|&s| usize::from(s).max(1)).collect();
    assert_eq!(
        stream(&redactor, &input, &sizes),
        *output,
        "chunks {sizes:?}"
    );
    if input.len() <= 4096 {
        assert_eq!(stream(&redactor, &input, &[1]), *output, "1-byte chunks");
    }

    let pieces = pieces(&output);
    for needle in values.iter().chain(&needles) {
        // Without brackets a needle cannot straddle a marker.
        if needle.contains(&b'[') || needle.contains(&b']') {
            continue;
        }
        for piece in &pieces {
            assert!(
                !contains(piece, needle),
                "{needle:?} survives in {output:?}"
            );
        }
    }
});

/// The input, and the encoded forms in it that must not survive.
fn build(values: &[Vec<u8>], pieces: &[Piece]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut input = Vec::new();
    let mut needles = Vec::new();
    for piece in pieces.iter().take(64) {
        match piece {
            Piece::Noise(bytes) => input.extend_from_slice(bytes),
            Piece::Repeat(bytes, times) => {
                for _ in 0..(*times).min(8192 / bytes.len().max(1) as u16) {
                    input.extend_from_slice(bytes);
                }
            }
            Piece::Secret(index, form) => {
                if values.is_empty() {
                    continue;
                }
                let value = &values[usize::from(*index) % values.len()];
                let (encoded, needle) = encode(value, form);
                input.extend_from_slice(&encoded);
                if let Some(needle) = needle {
                    if needle.len() >= MIN_DERIVED_LEN {
                        needles.push(needle);
                    }
                }
            }
        }
    }
    (input, needles)
}

/// `value` in `form`, and the part of it that only depends on the value.
fn encode(value: &[u8], form: &Form) -> (Vec<u8>, Option<Vec<u8>>) {
    match form {
        Form::Raw => (value.to_vec(), None),
        Form::Base64 {
            before,
            after,
            url,
            pad,
        } => {
            let engine = match (url, pad) {
                (false, true) => &STANDARD,
                (false, false) => &STANDARD_NO_PAD,
                (true, true) => &URL_SAFE,
                (true, false) => &URL_SAFE_NO_PAD,
            };
            let before = &before[..before.len().min(5)];
            let after = &after[..after.len().min(5)];
            let encoded = engine.encode([before, value, after].concat());
            let first = (8 * before.len()).div_ceil(6);
            let end = 8 * (before.len() + value.len()) / 6;
            let core = encoded.as_bytes()[first..end].to_vec();
            (encoded.into_bytes(), Some(core))
        }
        Form::Percent { plus, lower } => {
            let mut out = Vec::new();
            for &b in value {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b);
                } else if b == b' ' && *plus {
                    out.push(b'+');
                } else if *lower {
                    out.extend_from_slice(format!("%{b:02x}").as_bytes());
                } else {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
            (out.clone(), Some(out))
        }
        Form::Json => match std::str::from_utf8(value) {
            Ok(text) => {
                let quoted = serde_json::to_string(text).unwrap_or_default();
                let body = quoted.as_bytes()[1..quoted.len() - 1].to_vec();
                (quoted.into_bytes(), Some(body))
            }
            Err(_) => (value.to_vec(), None),
        },
        Form::Line(index) => {
            let lines: Vec<&[u8]> = value.split(|&b| b == b'\n').collect();
            let line = lines[usize::from(*index) % lines.len()];
            (
                line.to_vec(),
                (lines.len() > 1).then(|| line.trim_ascii().to_vec()),
            )
        }
    }
}

fn stream(redactor: &Redactor, input: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut stream = redactor.stream();
    let mut out = Vec::new();
    let mut rest = input;
    let sizes = if sizes.is_empty() { &[97][..] } else { sizes };
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let size = sizes.next().map_or(1, |&s| s.min(rest.len()));
        let (chunk, tail) = rest.split_at(size);
        out.extend_from_slice(&stream.push(chunk));
        rest = tail;
    }
    out.extend_from_slice(&stream.finish());
    out
}

fn pieces(output: &[u8]) -> Vec<&[u8]> {
    let marker = REDACTED.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + marker.len() <= output.len() {
        if &output[i..i + marker.len()] == marker {
            out.push(&output[start..i]);
            i += marker.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&output[start..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

//! Tests for the redactor: each encoding at each alignment, multi-line,
//! overlapping and prefix secrets, streaming at every split, and property
//! tests checking streaming against one-shot output and that no secret (nor
//! an encoding of it) survives.

use std::borrow::Cow;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::prelude::*;

use super::nfa::Nfa;
use super::patterns::{self, MIN_DERIVED_LEN};
use super::search::Finder;
use super::{sort_distinct, Redactor, RedactorError, SecretValue, StreamRedactor, REDACTED};

fn secret(value: &[u8]) -> SecretValue {
    SecretValue::new(value.to_vec()).expect("valid secret")
}

fn redactor(values: &[&[u8]]) -> Redactor {
    let secrets: Vec<SecretValue> = values.iter().map(|v| secret(v)).collect();
    Redactor::new(&secrets).expect("redactor builds")
}

fn redact(r: &Redactor, input: &[u8]) -> Vec<u8> {
    r.redact(input).into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Feeds `input` in chunks of the given sizes (cycled), then finishes.
fn stream(r: &Redactor, input: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut s = r.stream();
    let mut out = Vec::new();
    let mut rest = input;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.extend_from_slice(&s.push(chunk));
        rest = tail;
    }
    out.extend_from_slice(&s.finish());
    out
}

/// The stretches of `output` between markers.
fn pieces(output: &[u8]) -> Vec<Vec<u8>> {
    let marker = REDACTED.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + marker.len() <= output.len() {
        if &output[i..i + marker.len()] == marker {
            out.push(output[start..i].to_vec());
            i += marker.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(output[start..].to_vec());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that no stretch of unredacted output contains `needle`.
fn assert_absent(output: &[u8], needle: &[u8]) {
    for piece in pieces(output) {
        assert!(
            !contains(&piece, needle),
            "{:?} survives in {:?}",
            text(needle),
            text(output)
        );
    }
}

/// All patterns of `values`.
fn all_patterns(values: &[&[u8]]) -> Vec<patterns::Pattern> {
    let mut all = Vec::new();
    for value in values {
        patterns::expand(value, &mut all);
    }
    all
}

/// The longest of `patterns` at `pos`, by brute force.
fn longest_at(patterns: &[patterns::Pattern], input: &[u8], pos: usize) -> Option<usize> {
    patterns
        .iter()
        .filter(|p| input[pos..].starts_with(p))
        .map(|p| p.len())
        .max()
}

/// Leftmost-longest replacement by brute force, over `values`' patterns.
fn reference(values: &[&[u8]], input: &[u8]) -> Vec<u8> {
    let all = all_patterns(values);
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match longest_at(&all, input, i) {
            Some(len) => {
                out.extend_from_slice(REDACTED.as_bytes());
                i += len;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

/// The characters of `encoded` (base64 of `prefix_len` bytes, the secret,
/// then more) that only depend on the secret's `len` bytes.
fn base64_core(encoded: &str, prefix_len: usize, len: usize) -> &str {
    let first = (8 * prefix_len).div_ceil(6);
    let end = 8 * (prefix_len + len) / 6;
    &encoded[first..end]
}

// ---- secret values and the empty redactor --------------------------------

#[test]
fn secret_values_are_checked_and_never_printed() {
    assert!(matches!(
        SecretValue::new(Vec::new()),
        Err(RedactorError::EmptySecret)
    ));
    let long = vec![b'a'; SecretValue::MAX_LEN + 1];
    assert!(matches!(
        SecretValue::new(long),
        Err(RedactorError::SecretTooLong { len, max }) if len == 65537 && max == 65536
    ));
    assert!(SecretValue::new(vec![b'a'; SecretValue::MAX_LEN]).is_ok());

    let value = secret(b"hunter2-hunter2");
    assert_eq!(format!("{value:?}"), "[redacted]");
    assert_eq!(value.expose(), b"hunter2-hunter2");
    let r = Redactor::new([&value]).unwrap();
    let shown = format!("{r:?} {:?}", r.stream());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("secrets: 1"), "{shown}");
}

#[test]
fn redactors_can_be_shared_and_streams_moved_across_threads() {
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<Redactor>();
    shared::<SecretValue>();
    sent::<StreamRedactor>();
}

#[test]
fn an_empty_redactor_borrows_everything() {
    for r in [Redactor::default(), Redactor::new([]).unwrap()] {
        assert!(r.is_empty());
        let input = b"nothing to hide".as_slice();
        assert!(matches!(r.redact(input), Cow::Borrowed(out) if out.as_ptr() == input.as_ptr()));
        let mut s = r.stream();
        assert!(matches!(s.push(input), Cow::Borrowed(out) if out == input));
        assert!(s.finish().is_empty());
        assert_eq!(r.redact_str("plain"), "plain");
    }
}

#[test]
fn output_without_a_match_is_borrowed() {
    let r = redactor(&[b"s3cr3t-value"]);
    assert!(!r.is_empty());
    let input = b"a line of ordinary output\n".as_slice();
    assert!(matches!(r.redact(input), Cow::Borrowed(out) if out == input));
    let mut s = r.stream();
    assert!(matches!(s.push(input), Cow::Borrowed(out) if out == input));
}

// ---- plain values ---------------------------------------------------------

#[test]
fn every_occurrence_of_a_value_is_replaced() {
    let r = redactor(&[b"s3cr3t-value"]);
    assert_eq!(
        redact(&r, b"s3cr3t-value and s3cr3t-value, s3cr3t-valu"),
        b"[REDACTED] and [REDACTED], s3cr3t-valu"
    );
}

#[test]
fn short_values_are_still_patterns() {
    let r = redactor(&[b"x7"]);
    assert_eq!(redact(&r, b"ax7bx7"), b"a[REDACTED]b[REDACTED]");
}

#[test]
fn redact_str_handles_text_and_broken_characters() {
    let r = redactor(&[b"token-123"]);
    assert_eq!(
        r.redact_str("auth failed for token-123"),
        "auth failed for [REDACTED]"
    );
    // A value that is not UTF-8 may cut a character in two.
    let r = redactor(&[b"\xa9 pass"]);
    assert_eq!(r.redact_str("caf\u{e9} pass"), "caf\u{fffd}[REDACTED]");
}

// ---- encodings -------------------------------------------------------------

const BASE64_SECRETS: [&[u8]; 4] = [
    b"hunter2!",
    b"sk-live-0123456789abcdef",
    b"p\xffq\x00r?>~",
    b"seven..",
];

#[test]
fn base64_is_caught_at_every_alignment_alphabet_and_padding() {
    for value in BASE64_SECRETS {
        let r = redactor(&[value]);
        for prefix_len in 0..6 {
            for suffix_len in 0..3 {
                let mut data = vec![0xa5; prefix_len];
                data.extend_from_slice(value);
                data.extend(std::iter::repeat_n(0x5a, suffix_len));
                for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                    let encoded = engine.encode(&data);
                    let input = format!("data: {encoded} end");
                    let output = redact(&r, input.as_bytes());
                    let core = base64_core(&encoded, prefix_len, value.len());
                    assert!(core.len() >= MIN_DERIVED_LEN);
                    assert_absent(&output, core.as_bytes());
                    assert!(output.starts_with(b"data: "), "{}", text(&output));
                    assert!(output.ends_with(b" end"), "{}", text(&output));
                }
            }
        }
    }
}

#[test]
fn base64_of_a_value_ending_the_data_is_replaced_with_its_padding() {
    // "hunter2!" at offset 1: "\0hunter2!" is AGh1bnRlcjIh; the first two
    // characters mix in the byte before.
    let r = redactor(&[b"hunter2!"]);
    assert_eq!(redact(&r, b"x=AGh1bnRlcjIh;"), b"x=AG[REDACTED];");
    // At offset 0 the data ends mid-group: aHVudGVyMiE= and aHVudGVyMiE.
    assert_eq!(redact(&r, b"x=aHVudGVyMiE=;"), b"x=[REDACTED];");
    assert_eq!(redact(&r, b"x=aHVudGVyMiE;"), b"x=[REDACTED];");
    // Followed by more data, the last character is not the value's alone.
    assert_eq!(redact(&r, b"x=aHVudGVyMiEK;"), b"x=[REDACTED]K;");
    // Offset 2, URL-safe and padded.
    let encoded = URL_SAFE.encode(b"\0\0hunter2!");
    assert_eq!(encoded, "AABodW50ZXIyIQ==");
    assert_eq!(
        redact(&r, format!("<{encoded}>").as_bytes()),
        b"<AAB[REDACTED]>"
    );
}

#[test]
fn percent_encoding_in_every_style() {
    let r = redactor(&[b"p@ss w/rd*~"]);
    for encoded in [
        "p%40ss%20w%2Frd%2A~", // RFC 3986, upper
        "p%40ss%20w%2frd%2a~", // RFC 3986, lower
        "p%40ss+w%2Frd%2A~",   // quote_plus
        "p%40ss+w%2frd%2a~",   // quote_plus, lower
        "p%40ss+w%2Frd*%7E",   // WHATWG form
        "p%40ss%20w%2Frd*~",   // encodeURIComponent
        "p%40ss%20w/rd%2A~",   // Python quote
    ] {
        let input = format!("GET /?pw={encoded}&x=1");
        assert_eq!(r.redact_str(&input), "GET /?pw=[REDACTED]&x=1", "{encoded}");
    }
}

#[test]
fn json_escaping_matches_serde_json() {
    let value = "q\"uo\\te\nline\ttab\u{1}ctl\u{7f}del caf\u{e9}/";
    let r = redactor(&[value.as_bytes()]);
    let json = serde_json::json!({ "password": value }).to_string();
    assert!(json.contains("\\u0001"), "{json}");
    assert_eq!(r.redact_str(&json), r#"{"password":"[REDACTED]"}"#);
    // Every control byte, the way serde_json writes it.
    let controls: String = (0u8..0x20).map(char::from).collect();
    let value = format!("ctl{controls}end");
    let r = redactor(&[value.as_bytes()]);
    let json = serde_json::to_string(&value).unwrap();
    assert_eq!(r.redact_str(&json), "\"[REDACTED]\"");
}

#[test]
fn each_encoding_is_its_own_pattern() {
    // Only the patterns a value expands to are replaced: a neighbour of an
    // encoding is not.
    let mut out = Vec::new();
    patterns::expand(b"a b", &mut out);
    let found: Vec<String> = out.iter().map(|p| text(p)).collect();
    for expected in ["a b", "a%20b", "YSBi"] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} in {found:?}"
        );
    }
    // "a+b" is too short to be a derived pattern; "YWIg" is "ab ", not "a b".
    for unexpected in ["a+b", "YWIg"] {
        assert!(
            !found.contains(&unexpected.to_owned()),
            "{unexpected} in {found:?}"
        );
    }
    // No derived pattern is shorter than the threshold.
    assert!(out.iter().skip(1).all(|p| p.len() >= MIN_DERIVED_LEN));
}

// ---- multi-line values -----------------------------------------------------

#[test]
fn each_line_of_a_multi_line_value_is_a_pattern() {
    let value = b"-----BEGIN KEY-----\n  MIIBOgIBAAJBAKj34\n}\nend-of-key\n";
    let r = redactor(&[value]);
    assert_eq!(redact(&r, value), b"[REDACTED]");
    // Lines printed on their own, reindented, or with CRLF endings.
    assert_eq!(
        redact(&r, b"key: MIIBOgIBAAJBAKj34 (end-of-key)"),
        b"key: [REDACTED] ([REDACTED])"
    );
    // Short lines are not patterns on their own.
    assert_eq!(redact(&r, b"{ } end"), b"{ } end");
    // A PTY turns \n into \r\n: the whole value still goes as one.
    assert_eq!(
        redact(
            &r,
            b"$ cat key\r\n-----BEGIN KEY-----\r\n  MIIBOgIBAAJBAKj34\r\n}\r\nend-of-key\r\n$ "
        ),
        b"$ cat key\r\n[REDACTED]$ "
    );
}

#[test]
fn a_trailing_newline_does_not_hide_the_value_or_its_encodings() {
    // Secrets read from files usually end in a newline.
    let r = redactor(&[b"ghp_token0123456789\n"]);
    assert_eq!(
        redact(&r, b"token=ghp_token0123456789;"),
        b"token=[REDACTED];"
    );
    let encoded = STANDARD.encode(b"ghp_token0123456789");
    assert_eq!(r.redact_str(&format!("b64={encoded};")), "b64=[REDACTED];");
}

// ---- overlaps and prefixes --------------------------------------------------

#[test]
fn overlapping_secrets_leftmost_wins_and_no_pattern_remains() {
    let r = redactor(&[b"abcdef", b"defghi"]);
    let output = redact(&r, b"xxabcdefghiyy");
    assert_eq!(output, b"xx[REDACTED]ghiyy");
    // The later secret starts first here.
    assert_eq!(redact(&r, b"xxdefghiabcdef"), b"xx[REDACTED][REDACTED]");
    let r = redactor(&[b"cdefgh", b"abcdef"]);
    assert_eq!(redact(&r, b"abcdefgh"), b"[REDACTED]gh");
    for value in [b"abcdef".as_slice(), b"cdefgh"] {
        assert_absent(&redact(&r, b"abcdefgh"), value);
    }
}

#[test]
fn of_secrets_that_are_prefixes_of_each_other_the_longest_goes() {
    let r = redactor(&[b"abc1234", b"abc1234567", b"abc12"]);
    assert_eq!(redact(&r, b"<abc1234567>"), b"<[REDACTED]>");
    assert_eq!(redact(&r, b"<abc123456>"), b"<[REDACTED]56>");
    assert_eq!(redact(&r, b"<abc123>"), b"<[REDACTED]3>");
    assert_eq!(stream(&r, b"<abc1234567>", &[1]), b"<[REDACTED]>");
    assert_eq!(stream(&r, b"<abc123456>", &[1]), b"<[REDACTED]56>");
}

#[test]
fn matches_are_found_whichever_half_of_a_long_input_is_slower() {
    // The skip search scans two halves in lockstep; here the first half
    // (no pattern bytes) is done long before the second (near misses).
    let value = b"abcdefghijklmnop";
    let r = redactor(&[value]);
    let mut input = vec![b'z'; 4000];
    input.extend(value[..8].repeat(500));
    let mut expected = input.clone();
    input.extend_from_slice(value);
    expected.extend_from_slice(REDACTED.as_bytes());
    assert_eq!(redact(&r, &input), expected);
    assert_eq!(stream(&r, &input, &[5000]), expected);
    // And the other way round: the second half is done first.
    let mut input = value[..8].repeat(500);
    input.extend_from_slice(value);
    input.extend(vec![b'z'; 4200]);
    let expected = [
        &value[..8].repeat(500),
        REDACTED.as_bytes(),
        &vec![b'z'; 4200],
    ]
    .concat();
    assert_eq!(redact(&r, &input), expected);
}

#[test]
fn periodic_input_falls_back_to_walking_the_automaton() {
    // Every other position of "abab..." starts a long walk along the
    // secret's periodic stretch: the skip search gives up and the rest of
    // the haystack is searched by walking the automaton, in linear time.
    let value = [b"ab".repeat(300), b"c".to_vec()].concat();
    let mut patterns = Vec::new();
    patterns::expand(&value, &mut patterns);
    sort_distinct(&mut patterns);
    let (nfa, finder) = (
        Nfa::new(&patterns).unwrap(),
        Finder::new(&patterns).unwrap(),
    );
    let filler = b"ab".repeat(20_000);
    let haystack = [&filler[..], &value, b"x", &value, b"abab"].concat();
    let mut matches = finder.matches(&nfa, &haystack);
    let first = 40_000..40_000 + value.len();
    assert_eq!(matches.next_from(0), Some(first.clone()));
    assert!(matches.walking());
    assert_eq!(
        matches.next_from(first.end),
        Some(first.end + 1..first.end + 1 + value.len())
    );
    assert_eq!(matches.next_from(first.end + 1 + value.len()), None);

    let r = redactor(&[&value]);
    let expected = [&filler[..], b"[REDACTED]x[REDACTED]abab"].concat();
    assert_eq!(redact(&r, &haystack), expected);
    assert_eq!(stream(&r, &haystack, &[4096, 1, 10_000]), expected);
}

#[test]
fn a_secret_containing_the_marker_is_replaced() {
    let r = redactor(&[b"x[REDACTED]y"]);
    assert_eq!(redact(&r, b"ax[REDACTED]yb"), b"a[REDACTED]b");
}

// ---- streaming ---------------------------------------------------------------

#[test]
fn a_secret_split_at_every_point_is_caught() {
    let r = redactor(&[b"s3cr3t-value", b"dGhlLXNlY3JldA"]);
    let input = b"pre s3cr3t-value mid aGVsbG8gczNjcjN0LXZhbHVlIQ== post";
    let expected = redact(&r, input);
    assert!(!contains(&expected, b"s3cr3t"));
    for split in 0..=input.len() {
        let mut s = r.stream();
        let mut out = s.push(&input[..split]).into_owned();
        out.extend_from_slice(&s.push(&input[split..]));
        out.extend_from_slice(&s.finish());
        assert_eq!(text(&out), text(&expected), "split at {split}");
    }
    for sizes in [[1usize].as_slice(), &[2], &[3], &[7, 1, 2], &[64]] {
        assert_eq!(
            text(&stream(&r, input, sizes)),
            text(&expected),
            "{sizes:?}"
        );
    }
}

#[test]
fn streaming_holds_back_only_what_can_still_match() {
    let r = redactor(&[b"secret!"]);
    let mut s = r.stream();
    // "sec" could start the secret; "hello " cannot.
    assert_eq!(&*s.push(b"hello sec"), b"hello ");
    assert_eq!(s.state.held, b"sec");
    // Once it cannot, it goes out at once.
    assert_eq!(&*s.push(b"ond"), b"second");
    assert!(s.state.held.is_empty());
    // A whole secret nothing longer continues goes out without waiting.
    assert_eq!(&*s.push(b"a secret"), b"a ");
    assert_eq!(&*s.push(b"!"), b"[REDACTED]");
    assert!(s.finish().is_empty());
    // At the end of the stream the tail is released, redacted.
    assert_eq!(&*s.push(b"x secre"), b"x ");
    assert_eq!(s.finish(), b"secre");
    assert!(s.finish().is_empty());
}

#[test]
fn streaming_waits_while_a_longer_secret_may_follow() {
    let r = redactor(&[b"abc1234", b"abc1234567"]);
    let mut s = r.stream();
    assert_eq!(&*s.push(b"key abc1234"), b"key ");
    assert_eq!(&*s.push(b"56"), b"");
    assert_eq!(&*s.push(b"7 ok"), b"[REDACTED] ok");
    assert_eq!(&*s.push(b"abc1234"), b"");
    assert_eq!(s.finish(), b"[REDACTED]");
}

#[test]
fn a_long_chunk_after_a_held_tail_is_searched_in_place() {
    let value = b"long-secret-value-0123456789";
    let r = redactor(&[value]);
    let mut input = b"start long-secret-".to_vec();
    let split = input.len();
    input.extend_from_slice(b"value-0123456789 ");
    for i in 0..2000 {
        input.extend_from_slice(format!("line {i} long-secret-value-0123456789\n").as_bytes());
    }
    input.extend_from_slice(b"end long-secret-value-012");
    let expected = redact(&r, &input);
    let mut s = r.stream();
    let mut out = s.push(&input[..split]).into_owned();
    assert_eq!(out, b"start ");
    out.extend_from_slice(&s.push(&input[split..]));
    out.extend_from_slice(&s.finish());
    assert_eq!(text(&out), text(&expected));
    assert_absent(&out, value);
}

#[test]
fn a_stream_can_be_reused_after_finish() {
    let r = redactor(&[b"s3cr3t-value"]);
    let mut s: StreamRedactor = r.stream();
    for _ in 0..3 {
        let mut out = s.push(b"a s3cr3t-").into_owned();
        out.extend_from_slice(&s.push(b"value b s3cr"));
        out.extend_from_slice(&s.finish());
        assert_eq!(out, b"a [REDACTED] b s3cr");
    }
}

// ---- sizes ---------------------------------------------------------------------

/// A deterministic token of `len` letters and digits.
fn token(seed: u64, len: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            CHARS[(state % CHARS.len() as u64) as usize]
        })
        .collect()
}

#[test]
fn a_hundred_secrets_and_a_maximal_one_work() {
    let mut values: Vec<Vec<u8>> = (0..100).map(|i| token(i, 20 + (i as usize % 40))).collect();
    values.push(token(1000, SecretValue::MAX_LEN));
    let secrets: Vec<SecretValue> = values.iter().map(|v| secret(v)).collect();
    let r = Redactor::new(&secrets).unwrap();
    let mut input = Vec::new();
    for (i, value) in values.iter().enumerate() {
        input.extend_from_slice(format!("{i}: ").as_bytes());
        input.extend_from_slice(value);
        input.extend_from_slice(b" ");
        input.extend_from_slice(STANDARD.encode(value).as_bytes());
        input.push(b'\n');
    }
    let output = redact(&r, &input);
    for value in &values[..100] {
        assert_absent(&output, value);
    }
    assert_eq!(pieces(&output).len(), 2 * values.len() + 1);
    assert_eq!(stream(&r, &input, &[4096, 1, 65536]), output);
}

#[test]
fn secrets_expanding_past_the_budget_are_refused() {
    // Binary values percent-encode to three bytes per byte in each style.
    let values: Vec<SecretValue> = (0..100u8)
        .map(|i| {
            secret(
                &(0..SecretValue::MAX_LEN)
                    .map(|j| (j as u8) ^ i)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    match Redactor::new(&values) {
        Err(error @ RedactorError::TooManyPatterns { .. }) => {
            assert!(error.to_string().contains("over the"), "{error}");
        }
        other => panic!("expected a budget error, got {other:?}"),
    }
}

// ---- properties --------------------------------------------------------------------

/// How a secret is embedded in generated output.
#[derive(Clone, Debug)]
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
}

#[derive(Clone, Debug)]
enum Segment {
    Noise(String),
    Secret(usize, Form),
}

/// Characters of secrets and noise: no `[`, `]` or upper-case letters, so a
/// stretch between markers can be searched for values without a value
/// straddling a marker; but the bytes every encoding escapes.
const ALPHABET: &str = "abcdefgh0123456789 /+=%\"\\\n\t:-_.~*\u{1}\u{e9}";

fn alphabet_string(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    let chars: Vec<char> = ALPHABET.chars().collect();
    prop::collection::vec(prop::sample::select(chars), len).prop_map(|c| c.into_iter().collect())
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Raw),
        (
            prop::collection::vec(any::<u8>(), 0..4),
            prop::collection::vec(any::<u8>(), 0..4),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(before, after, url, pad)| Form::Base64 {
                before,
                after,
                url,
                pad
            }),
        (any::<bool>(), any::<bool>()).prop_map(|(plus, lower)| Form::Percent { plus, lower }),
        Just(Form::Json),
    ]
}

fn segments(secrets: usize) -> impl Strategy<Value = Vec<Segment>> {
    let segment = prop_oneof![
        alphabet_string(0..12).prop_map(Segment::Noise),
        (0..secrets, form()).prop_map(|(i, f)| Segment::Secret(i, f)),
    ];
    prop::collection::vec(segment, 0..12)
}

/// A reference percent-encoder (RFC 3986 unreserved kept).
fn percent_reference(value: &str, plus: bool, lower: bool) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' if plus => out.push('+'),
            _ if lower => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds the input, and for each embedded secret the part of its form that
/// must not survive (when long enough to be a pattern).
fn embed(secrets: &[String], segments: &[Segment]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut input = Vec::new();
    let mut forbidden = Vec::new();
    for segment in segments {
        match segment {
            Segment::Noise(noise) => input.extend_from_slice(noise.as_bytes()),
            Segment::Secret(i, form) => {
                let value = &secrets[*i];
                let (encoded, core) = match form {
                    Form::Raw => (value.clone(), value.clone()),
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
                        let mut data = before.clone();
                        data.extend_from_slice(value.as_bytes());
                        data.extend_from_slice(after);
                        let encoded = engine.encode(&data);
                        let core = base64_core(&encoded, before.len(), value.len()).to_owned();
                        (encoded, core)
                    }
                    Form::Percent { plus, lower } => {
                        let encoded = percent_reference(value, *plus, *lower);
                        (encoded.clone(), encoded)
                    }
                    Form::Json => {
                        let quoted = serde_json::to_string(value).unwrap();
                        let body = quoted[1..quoted.len() - 1].to_owned();
                        (quoted, body)
                    }
                };
                input.extend_from_slice(encoded.as_bytes());
                if core == *value || core.len() >= MIN_DERIVED_LEN {
                    forbidden.push(core.into_bytes());
                }
            }
        }
    }
    (input, forbidden)
}

fn case() -> impl Strategy<Value = (Vec<String>, Vec<Segment>, Vec<usize>)> {
    prop::collection::vec(alphabet_string(1..24), 1..5).prop_flat_map(|secrets| {
        let n = secrets.len();
        (
            Just(secrets),
            segments(n),
            prop::collection::vec(1..40usize, 1..8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_secret_nor_encoding_survives_and_streams_match(
        (secrets, segments, sizes) in case()
    ) {
        let values: Vec<SecretValue> = secrets.iter().map(|s| secret(s.as_bytes())).collect();
        let r = Redactor::new(&values).unwrap();
        let (input, forbidden) = embed(&secrets, &segments);
        let output = redact(&r, &input);
        let values: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        prop_assert_eq!(&output, &reference(&values, &input));
        for value in &secrets {
            assert_absent(&output, value.as_bytes());
        }
        for core in &forbidden {
            assert_absent(&output, core);
        }
        prop_assert_eq!(&stream(&r, &input, &sizes), &output);
        prop_assert_eq!(&stream(&r, &input, &[1]), &output);
    }

    #[test]
    fn streaming_equals_one_shot_on_arbitrary_bytes(
        secrets in prop::collection::vec(prop::collection::vec(0u8..6, 1..10), 1..6),
        noise in prop::collection::vec((prop::collection::vec(0u8..6, 0..10), 0..6usize), 0..20),
        sizes in prop::collection::vec(1..20usize, 1..6),
    ) {
        // A tiny alphabet makes overlaps, prefixes and near-misses common.
        let values: Vec<SecretValue> = secrets.iter().map(|s| secret(s)).collect();
        let r = Redactor::new(&values).unwrap();
        let mut input = Vec::new();
        for (bytes, pick) in &noise {
            input.extend_from_slice(bytes);
            if let Some(value) = secrets.get(*pick) {
                input.extend_from_slice(value);
            }
        }
        let output = redact(&r, &input);
        let values: Vec<&[u8]> = secrets.iter().map(|s| s.as_slice()).collect();
        prop_assert_eq!(&output, &reference(&values, &input));
        prop_assert_eq!(&stream(&r, &input, &sizes), &output);
        prop_assert_eq!(&stream(&r, &input, &[1]), &output);
        // Nothing left unredacted contains a pattern: bytes 0..6 are not in
        // the marker, so no value straddles one.
        let mut all = Vec::new();
        for value in &secrets {
            patterns::expand(value, &mut all);
        }
        for pattern in all.iter().filter(|p| !p.iter().any(|b| REDACTED.as_bytes().contains(b))) {
            assert_absent(&output, pattern);
        }
    }

    #[test]
    fn long_inputs_match_the_reference(
        secrets in prop::collection::vec(prop::collection::vec(b'a'..b'e', 1..20), 1..5),
        seed in any::<u64>(),
        len in 2000..9000usize,
        sizes in prop::collection::vec(1..5000usize, 1..4),
    ) {
        // Long enough for the skip search to scan in lockstep halves, with
        // secrets at random places in noise of the same letters.
        let values: Vec<SecretValue> = secrets.iter().map(|s| secret(s)).collect();
        let r = Redactor::new(&values).unwrap();
        let mut noise = token(seed, len);
        for byte in &mut noise {
            *byte = b'a' + *byte % 6;
        }
        let mut input = Vec::new();
        for (i, piece) in noise.chunks(300).enumerate() {
            input.extend_from_slice(piece);
            input.extend_from_slice(&secrets[i % secrets.len()]);
        }
        let output = redact(&r, &input);
        let values: Vec<&[u8]> = secrets.iter().map(|s| s.as_slice()).collect();
        prop_assert_eq!(&output, &reference(&values, &input));
        prop_assert_eq!(&stream(&r, &input, &sizes), &output);
    }

    #[test]
    fn the_automaton_walks_find_what_brute_force_finds(
        secrets in prop::collection::vec(prop::collection::vec(b'a'..b'd', 1..12), 1..4),
        input in prop::collection::vec(b'a'..b'e', 0..120),
    ) {
        let values: Vec<&[u8]> = secrets.iter().map(|s| s.as_slice()).collect();
        let mut all = all_patterns(&values);
        sort_distinct(&mut all);
        let nfa = Nfa::new(&all).unwrap();
        for from in 0..input.len() {
            let (found, walked) = nfa.longest_at(&input, from);
            let expected = longest_at(&all, &input, from).map(|len| from..from + len);
            prop_assert_eq!(&found, &expected);
            prop_assert!(walked <= input.len() - from);
            let leftmost = (from..input.len())
                .find_map(|pos| longest_at(&all, &input, pos).map(|len| pos..pos + len));
            prop_assert_eq!(nfa.walk_find(&input, from), leftmost);
        }
    }

    #[test]
    fn the_held_tail_is_a_pattern_prefix(
        secrets in prop::collection::vec(prop::collection::vec(0u8..4, 1..8), 1..4),
        input in prop::collection::vec(0u8..4, 0..200),
        sizes in prop::collection::vec(1..9usize, 1..4),
    ) {
        let values: Vec<SecretValue> = secrets.iter().map(|s| secret(s)).collect();
        let r = Redactor::new(&values).unwrap();
        let mut all = Vec::new();
        for value in &secrets {
            patterns::expand(value, &mut all);
        }
        let max = all.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut s = r.stream();
        let mut rest = input.as_slice();
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            let _output = s.push(chunk);
            rest = tail;
            let held = &s.state.held;
            prop_assert!(held.len() < max);
            prop_assert!(held.is_empty() || all.iter().any(|p| p.len() > held.len() && p.starts_with(held)));
        }
    }
}

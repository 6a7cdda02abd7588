//! Redactor throughput over 100 MiB of log-like text with 1, 10 and 100
//! secrets, one-shot and streamed in 64 KiB chunks, beside two floors: a
//! plain `memchr::memmem` scan for one pattern, and copying the buffer into
//! a fresh one (what one-shot redaction does once anything matched).
//!
//! The text holds one of the secrets every 4 MiB, so one-shot redaction
//! builds a new 100 MiB buffer; `one_shot_no_match/100` uses 100 other
//! secrets, so it only searches and returns the input borrowed.
//!
//! Run with `cargo bench -p pyro-actors --bench redactor`; set
//! `PYRO_BENCH_MIB` to use another buffer size.

// A benchmark that cannot build its input has nothing to measure.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use pyro_actors::secrets::redactor::{Redactor, SecretValue};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chars(&mut self, alphabet: &[u8], len: usize, out: &mut Vec<u8>) {
        out.extend((0..len).map(|_| alphabet[self.below(alphabet.len())]));
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// 101 secrets in the shapes real ones have: API tokens, cloud keys,
/// passwords with punctuation, JWT-ish strings, a PEM-like multi-line key.
fn secrets() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_f00d_5ec2_e75a);
    let mut out = Vec::new();
    for i in 0..101 {
        let mut value = Vec::new();
        match i % 8 {
            0 => {
                value.extend_from_slice(b"ghp_");
                rng.chars(ALNUM, 36, &mut value);
            }
            1 => {
                value.extend_from_slice(b"sk-proj-");
                rng.chars(ALNUM, 48, &mut value);
            }
            2 => {
                value.extend_from_slice(b"AKIA");
                rng.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, &mut value);
            }
            3 => rng.chars(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
                40,
                &mut value,
            ),
            4 => {
                rng.chars(ALNUM, 10, &mut value);
                value.extend_from_slice(b" p@ss:w0rd!");
                rng.chars(ALNUM, 6, &mut value);
            }
            5 => {
                value.extend_from_slice(b"eyJhbGciOiJIUzI1NiJ9.");
                rng.chars(ALNUM, 40, &mut value);
                value.push(b'.');
                rng.chars(ALNUM, 43, &mut value);
            }
            6 => {
                value.extend_from_slice(b"-----BEGIN PRIVATE KEY-----\n");
                for _ in 0..4 {
                    rng.chars(ALNUM, 64, &mut value);
                    value.push(b'\n');
                }
                value.extend_from_slice(b"-----END PRIVATE KEY-----\n");
            }
            _ => rng.chars(HEX, 32, &mut value),
        }
        out.push(value);
    }
    out
}

/// `mib` MiB of log-like text: timestamps, levels, paths, words, ids, JSON,
/// URLs. Every 4 MiB or so one of the first secrets appears.
fn text(mib: usize, secrets: &[Vec<u8>]) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "request",
        "handled",
        "user",
        "session",
        "cache",
        "miss",
        "hit",
        "connection",
        "closed",
        "opened",
        "retrying",
        "after",
        "timeout",
        "the",
        "a",
        "of",
        "to",
        "in",
        "for",
        "with",
        "build",
        "compiling",
        "finished",
        "warning",
        "error",
        "value",
        "config",
        "loaded",
        "from",
        "file",
        "server",
        "listening",
        "on",
        "port",
        "worker",
        "started",
        "stopped",
        "queue",
        "depth",
        "bytes",
        "written",
        "read",
        "ok",
        "failed",
        "because",
        "missing",
        "field",
    ];
    const LEVELS: &[&str] = &["INFO", "DEBUG", "WARN", "ERROR", "TRACE"];
    const MODULES: &[&str] = &[
        "pyro::supervisor",
        "actix_server::worker",
        "hyper::proto",
        "app::db::pool",
        "tokio::net",
        "app::handlers::auth",
        "cargo::core::compiler",
    ];
    let size = mib * 1024 * 1024;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut out = Vec::with_capacity(size + 4096);
    let mut next_secret = 4 << 20;
    while out.len() < size {
        let t = rng.below(86_400_000);
        out.extend_from_slice(
            format!(
                "2026-11-28T{:02}:{:02}:{:02}.{:03}Z {:5} {}: ",
                t / 3_600_000,
                t / 60_000 % 60,
                t / 1000 % 60,
                t % 1000,
                rng.pick(LEVELS),
                rng.pick(MODULES)
            )
            .as_bytes(),
        );
        for _ in 0..3 + rng.below(10) {
            out.extend_from_slice(rng.pick(WORDS).as_bytes());
            out.push(b' ');
        }
        match rng.below(6) {
            0 => {
                out.extend_from_slice(b"id=");
                rng.chars(HEX, 16, &mut out);
            }
            1 => out.extend_from_slice(
                format!(
                    "{{\"status\":{},\"ms\":{}}}",
                    200 + rng.below(4) * 100,
                    rng.below(900)
                )
                .as_bytes(),
            ),
            2 => out.extend_from_slice(
                format!(
                    "GET /api/v1/items/{}?page={} HTTP/1.1",
                    rng.below(1 << 20),
                    rng.below(50)
                )
                .as_bytes(),
            ),
            3 => out.extend_from_slice(
                format!(
                    "/home/user/src/project/src/module_{}.rs:{}",
                    rng.below(40),
                    rng.below(900)
                )
                .as_bytes(),
            ),
            _ => out.extend_from_slice(
                format!("took {}.{:03}s", rng.below(10), rng.below(1000)).as_bytes(),
            ),
        }
        if out.len() >= next_secret {
            out.extend_from_slice(b" token=");
            out.extend_from_slice(&secrets[rng.below(secrets.len())]);
            next_secret += 4 << 20;
        }
        out.push(b'\n');
    }
    out.truncate(size);
    out
}

fn bench(c: &mut Criterion) {
    let mib = std::env::var("PYRO_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let all = secrets();
    let input = text(mib, &all[..1]);
    let mut group = c.benchmark_group("redactor");
    group
        .throughput(Throughput::Bytes(input.len() as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let finder = memchr::memmem::Finder::new(&all[0]);
    group.bench_function("memmem_floor", |b| {
        b.iter(|| black_box(finder.find_iter(black_box(&input)).count()));
    });
    group.bench_function("copy_floor", |b| {
        b.iter(|| black_box(black_box(&input).to_vec()).len());
    });

    let redactor = |secrets: &[Vec<u8>]| {
        let values: Vec<SecretValue> = secrets
            .iter()
            .map(|v| SecretValue::new(v.clone()).unwrap())
            .collect();
        Redactor::new(&values).unwrap()
    };
    let others = redactor(&all[1..]);
    group.bench_function("one_shot_no_match/100", |b| {
        b.iter(|| black_box(others.redact(black_box(&input)).len()));
    });
    for n in [1, 10, 100] {
        let redactor = redactor(&all[..n]);
        group.bench_function(format!("one_shot/{n}"), |b| {
            b.iter(|| black_box(redactor.redact(black_box(&input)).len()));
        });
        group.bench_function(format!("stream_64k/{n}"), |b| {
            b.iter(|| {
                let mut stream = redactor.stream();
                let mut len = 0;
                for chunk in black_box(&input).chunks(64 * 1024) {
                    len += stream.push(chunk).len();
                }
                len + stream.finish().len()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

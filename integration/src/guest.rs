//! Helpers for tests that drive a started workspace through the CLI: its
//! shells, its services, clear errors, and checks that a secret (or any of
//! the encodings it travels in) does not appear in some text.
//!
//! Everything here runs the real `pyro` binary of a [`Pyro`] installation;
//! every wait polls a condition with a deadline (no bare sleeps).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{stderr, stdout, Pyro};

/// How long a (re)boot may take under TCG on a loaded 2-core host.
pub const BOOT: Duration = Duration::from_secs(120);

/// A workspace, deleted (best effort) when dropped unless it was attached.
#[derive(Debug)]
pub struct Workspace<'a> {
    pyro: &'a Pyro,
    id: String,
    owned: bool,
}

impl<'a> Workspace<'a> {
    /// `pyro workspace create ENVIRONMENT --id-only EXTRA...`, which must work.
    pub fn create(pyro: &'a Pyro, environment: &str, extra: &[&str]) -> Self {
        Self::create_in(pyro, None, environment, extra)
    }

    /// Like [`Workspace::create`], run from `dir` (for relative paths such
    /// as `--secret-file NAME=./token.txt`).
    pub fn create_in(
        pyro: &'a Pyro,
        dir: Option<&Path>,
        environment: &str,
        extra: &[&str],
    ) -> Self {
        let mut args = vec!["workspace", "create", environment, "--id-only"];
        args.extend_from_slice(extra);
        let mut command = pyro.command(&args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let output = command.output().unwrap();
        assert_ok(&output, &args);
        let id = stdout(&output).trim().to_owned();
        assert!(
            id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "not a workspace id: {id:?}"
        );
        Self {
            pyro,
            id,
            owned: true,
        }
    }

    /// A handle on workspace `id`, deleted (best effort) on drop.
    pub fn adopt(pyro: &'a Pyro, id: &str) -> Self {
        Self {
            pyro,
            id: id.to_owned(),
            owned: true,
        }
    }

    /// A handle on an existing workspace that is not deleted on drop.
    pub fn attach(pyro: &'a Pyro, id: &str) -> Self {
        Self {
            pyro,
            id: id.to_owned(),
            owned: false,
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The installation it lives in.
    pub fn pyro(&self) -> &'a Pyro {
        self.pyro
    }

    /// The `pyro workspace SUB... ID REST...` command, not run yet.
    pub fn command(&self, sub: &[&str], rest: &[&str]) -> Command {
        self.pyro.command(&self.args(sub, rest))
    }

    fn args<'s>(&'s self, sub: &[&'s str], rest: &[&'s str]) -> Vec<&'s str> {
        let mut args = vec!["workspace"];
        args.extend_from_slice(sub);
        args.push(&self.id);
        args.extend_from_slice(rest);
        args
    }

    /// Runs `pyro workspace SUB... ID REST...`.
    pub fn run(&self, sub: &[&str], rest: &[&str]) -> Output {
        self.command(sub, rest).output().unwrap()
    }

    /// Like [`Workspace::run`], asserting success; returns the output.
    pub fn ok(&self, sub: &[&str], rest: &[&str]) -> Output {
        let output = self.run(sub, rest);
        assert_ok(&output, &self.args(sub, rest));
        output
    }

    /// Like [`Workspace::ok`] with `--json` (put before a `--`), parsed.
    pub fn json(&self, sub: &[&str], rest: &[&str]) -> Value {
        let mut rest = rest.to_vec();
        let at = rest.iter().position(|a| *a == "--").unwrap_or(rest.len());
        rest.insert(at, "--json");
        parse_json(&stdout(&self.ok(sub, &rest)))
    }

    /// Runs `sh -c SCRIPT` in the workspace.
    pub fn exec(&self, script: &str) -> Output {
        self.run(&["exec"], &["--", "sh", "-c", script])
    }

    /// Runs `sh -c SCRIPT` in the workspace; it must exit 0. Returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let output = self.exec(script);
        assert_ok(&output, &["exec", "--", "sh", "-c", script]);
        stdout(&output)
    }

    /// `workspace status --json`.
    pub fn status(&self) -> Value {
        self.json(&["status"], &[])
    }

    /// Waits until the workspace is `started`.
    pub fn wait_started(&self) {
        wait_for("the workspace to be started", BOOT, |last| {
            let state = self.status()["state"].as_str().unwrap().to_owned();
            *last = state.clone();
            (state == "started").then_some(())
        });
    }

    /// `service status NAME --json`.
    pub fn service(&self, name: &str) -> Value {
        self.json(&["service", "status"], &[name])
    }

    /// Polls `service status NAME` until `check` accepts it; returns it.
    pub fn wait_service(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(&format!("service {name}: {what}"), within, |last| {
            let info = self.service(name);
            *last = info.to_string();
            check(&info).then_some(info)
        })
    }

    /// Guest processes whose command line contains `needle`, as
    /// `PID ARGS` lines (read from /proc, so `ps` is not needed).
    pub fn processes(&self, needle: &str) -> Vec<String> {
        let listing = self.sh(
            "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null) && \
             [ -n \"$c\" ] && echo \"${p#/proc/} $c\"; done; true",
        );
        listing
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Workspace<'_> {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.pyro.run(&["workspace", "delete", &self.id]);
        }
    }
}

/// What one `shell read --json` returned.
#[derive(Debug, Clone)]
pub struct Read {
    /// The output.
    pub output: String,
    /// Where the output starts.
    pub cursor: u64,
    /// Where the next read should start.
    pub next_cursor: u64,
    /// Whether the asked-for cursor had left the buffer.
    pub truncated: bool,
    /// The whole answer.
    pub json: Value,
}

/// A shell of a workspace.
#[derive(Debug)]
pub struct Shell<'w, 'a> {
    ws: &'w Workspace<'a>,
    id: String,
}

impl<'w, 'a> Shell<'w, 'a> {
    /// `shell open ID --id-only EXTRA...`.
    pub fn open(ws: &'w Workspace<'a>, extra: &[&str]) -> Self {
        let mut rest = vec!["--id-only"];
        rest.extend_from_slice(extra);
        let id = stdout(&ws.ok(&["shell", "open"], &rest)).trim().to_owned();
        assert_eq!(id.len(), 12, "not a shell id: {id:?}");
        Self { ws, id }
    }

    /// A handle on shell `id`.
    pub fn attach(ws: &'w Workspace<'a>, id: &str) -> Self {
        Self {
            ws,
            id: id.to_owned(),
        }
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `shell SUB ID SHELL_ID REST...`.
    pub fn run(&self, sub: &str, rest: &[&str]) -> Output {
        let mut args = vec![self.id.as_str()];
        args.extend_from_slice(rest);
        self.ws.run(&["shell", sub], &args)
    }

    /// Like [`Shell::run`], asserting success.
    pub fn ok(&self, sub: &str, rest: &[&str]) -> Output {
        let output = self.run(sub, rest);
        assert_ok(&output, &["shell", sub, &self.id]);
        output
    }

    /// Types `input` and presses Enter.
    pub fn write(&self, input: &str) {
        self.ok("write", &["--input", input]);
    }

    /// `shell read --json` from `cursor` with `extra` flags.
    pub fn read(&self, cursor: u64, extra: &[&str]) -> Read {
        let cursor = cursor.to_string();
        let mut rest = vec!["--cursor", cursor.as_str(), "--json"];
        rest.extend_from_slice(extra);
        let json = parse_json(&stdout(&self.ok("read", &rest)));
        Read {
            output: json["output"].as_str().unwrap().to_owned(),
            cursor: json["cursor"].as_u64().unwrap(),
            next_cursor: json["next_cursor"].as_u64().unwrap(),
            truncated: json["truncated"].as_bool().unwrap(),
            json,
        }
    }

    /// Reads from `cursor` (raw, or `--plain` when `plain`) until the
    /// output gathered contains `needle`; returns that output and the
    /// cursor after it.
    pub fn read_until(
        &self,
        cursor: u64,
        needle: &str,
        plain: bool,
        within: Duration,
    ) -> (String, u64) {
        let mut gathered = String::new();
        let mut at = cursor;
        let mut extra = vec!["--wait-for-idle-ms", "300", "--max-chars", "16777216"];
        if plain {
            extra.push("--plain");
        }
        wait_for(
            &format!("{needle:?} in the output of shell {}", self.id),
            within,
            |last| {
                let read = self.read(at, &extra);
                gathered.push_str(&read.output);
                at = read.next_cursor;
                *last = format!("{gathered:?}");
                gathered.contains(needle).then_some(())
            },
        );
        (gathered, at)
    }

    /// Types `input`, then reads from `cursor` until `needle` shows.
    pub fn type_until(&self, cursor: u64, input: &str, needle: &str) -> (String, u64) {
        self.write(input);
        self.read_until(cursor, needle, false, Duration::from_secs(60))
    }

    /// The end of its output so far (the next read's cursor).
    pub fn end(&self) -> u64 {
        self.read(1 << 50, &[]).next_cursor
    }
}

/// Polls `check` every 100 ms until it returns `Some`, and returns that;
/// fails the test with `what` and the last observation (which `check`
/// writes into its argument) if `within` passes first.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Some(value) = check(&mut last) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that `output` succeeded, showing both streams otherwise.
pub fn assert_ok(output: &Output, what: &[&str]) {
    assert!(
        output.status.success(),
        "pyro {what:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Parses JSON, failing the test with the text otherwise.
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
}

/// Asserts one clear error: exit 1, `[error] MESSAGE` first on stderr,
/// only indented hint lines after it, nothing on stdout, no panic.
/// Returns the message.
pub fn clear_error(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{err}",
        stdout(output)
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let mut lines = err
        .lines()
        .filter(|l| !l.starts_with("[workspace-create] phase="));
    let first = lines.next().unwrap_or_default();
    let message = first
        .strip_prefix("[error] ")
        .unwrap_or_else(|| panic!("stderr does not start with `[error] `:\n{err}"));
    for line in lines {
        assert!(line.starts_with("  "), "more than one error line:\n{err}");
    }
    message.to_owned()
}

/// Asserts a usage error (exit 2, clap's message); returns stderr.
pub fn usage_error(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "expected exit 2:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Splits `[prefix] k=v k=v ...` and checks the keys are exactly `keys`, in
/// order; returns the values by key.
pub fn footer(line: &str, prefix: &str, keys: &[&str]) -> Vec<(String, String)> {
    let rest = line
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    let pairs: Vec<(String, String)> = rest
        .split(' ')
        .map(|word| {
            let (k, v) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("{word:?} in {line:?} is not key=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let got: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(got, keys, "keys of {line:?}");
    pairs
}

/// The value of `key` in a [`footer`].
pub fn field<'p>(pairs: &'p [(String, String)], key: &str) -> &'p str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {pairs:?}"))
}

/// The one line of `text` that starts with `prefix`.
pub fn one_line<'t>(text: &'t str, prefix: &str) -> &'t str {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one {prefix} line expected in:\n{text}");
    lines[0]
}

/// Waits for a spawned child, killing it if `within` passes first.
pub fn wait_child(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("child {} did not end within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A value unique to this run: `prefix` and 16 hex digits.
pub fn unique(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let digest = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .chain_update(count.to_le_bytes())
        .finalize();
    format!("{prefix}{}", hex::encode(&digest[..8]))
}

// ---------------------------------------------------------------------------
// Secret leak checks
// ---------------------------------------------------------------------------

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of `data` with `=` padding.
pub fn base64(data: &[u8]) -> String {
    base64_with(data, STANDARD)
}

fn base64_with(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 characters that depend only on `value` when it starts at
/// byte `offset` (0, 1 or 2) of a 3-byte group.
pub fn base64_core(value: &[u8], offset: usize, url_safe: bool) -> String {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(value);
    let encoded = base64_with(&data, if url_safe { URL_SAFE } else { STANDARD });
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + value.len()) / 6;
    encoded[first..end].to_owned()
}

/// Percent-encoding keeping only RFC 3986 unreserved bytes (Python's
/// `urllib.parse.quote(s, safe="")`).
pub fn url_encode(value: &[u8]) -> String {
    let mut out = String::new();
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The body of the JSON string for `value` (without the quotes).
pub fn json_body(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Every form of `secret` that must never be shown: the value (and, for a
/// value ending in a newline, the value without it), each line of a
/// multi-line value, base64 at the three alignments (standard and URL-safe
/// alphabets), percent-encoding and JSON escaping.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = Vec::new();
    for value in [secret, secret.trim_end()] {
        forms.push(value.to_owned());
        for offset in 0..3 {
            for url_safe in [false, true] {
                forms.push(base64_core(value.as_bytes(), offset, url_safe));
            }
        }
        forms.push(url_encode(value.as_bytes()));
        forms.push(json_body(value));
    }
    if secret.trim_end().contains('\n') {
        forms.extend(
            secret
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 8)
                .map(str::to_owned),
        );
    }
    forms.retain(|f| f.len() >= 8);
    forms.sort();
    forms.dedup();
    forms
}

/// Asserts that no form of `secret` ([`secret_forms`]), and no 16-byte run
/// of it, appears in `text`; `what` names the text in the failure.
pub fn assert_no_secret(text: &str, secret: &str, what: &str) {
    for form in secret_forms(secret) {
        if let Some(at) = text.find(&form) {
            let from = at.saturating_sub(40);
            let to = (at + form.len() + 40).min(text.len());
            panic!(
                "{what} shows the secret (as {form:?}) at byte {at}: ...{:?}...",
                String::from_utf8_lossy(&text.as_bytes()[from..to])
            );
        }
    }
    let bytes = secret.as_bytes();
    if bytes.len() > 16 {
        for window in bytes.windows(16) {
            let window = String::from_utf8_lossy(window);
            assert!(
                !text.contains(window.as_ref()),
                "{what} shows 16 bytes of the secret: {window:?}"
            );
        }
    }
}

/// Whether the file at `path` contains any of `needles` (ASCII), read
/// in chunks and skipping the holes of sparse files (disk images); returns
/// the needles found.
pub fn file_contains(path: &Path, needles: &[String]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::io::AsRawFd;
    const CHUNK: usize = 8 << 20;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let overlap = needles.iter().map(String::len).max().unwrap_or(1);
    let mut found: Vec<String> = Vec::new();
    let mut pos: u64 = 0;
    let mut buf = vec![0u8; CHUNK + overlap];
    while pos < len {
        // SAFETY: lseek(2) on an open descriptor; errors are checked.
        let data = unsafe { libc::lseek(file.as_raw_fd(), pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(file.as_raw_fd(), data, libc::SEEK_HOLE) };
        let (data, hole) = (data as u64, if hole < 0 { len } else { hole as u64 });
        let mut at = data;
        while at < hole {
            let want = ((hole - at) as usize).min(CHUNK + overlap);
            file.seek(SeekFrom::Start(at)).unwrap();
            let mut filled = 0;
            while filled < want {
                let n = file.read(&mut buf[filled..want]).unwrap();
                if n == 0 {
                    break;
                }
                filled += n;
            }
            // Invalid UTF-8 is replaced; runs of ASCII are kept as they are.
            let text = String::from_utf8_lossy(&buf[..filled]);
            for needle in needles {
                if !found.contains(needle) && text.contains(needle.as_str()) {
                    found.push(needle.clone());
                }
            }
            if filled < want || at + filled as u64 >= hole {
                break;
            }
            // The next chunk overlaps this one by `overlap` bytes.
            at += CHUNK as u64;
        }
        pos = hole.max(data + 1);
    }
    found
}

/// Every file under `dir` (recursively, symlinks not followed) that
/// contains any of `needles`, with the needles it contains.
pub fn files_containing(dir: &Path, needles: &[String]) -> Vec<(std::path::PathBuf, Vec<String>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let hits = file_contains(&path, needles);
                if !hits.is_empty() {
                    found.push((path, hits));
                }
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(base64(b"\xfb\xff"), "+/8=");
        assert_eq!(base64_with(b"\xfb\xff", URL_SAFE), "-_8=");
    }

    #[test]
    fn base64_core_keeps_only_the_characters_of_the_value() {
        // "\0Man" is "AE1hbg==": "AE" mixes in the byte before, "g" the
        // (missing) byte after.
        assert_eq!(base64_core(b"Man", 1, false), "1hb");
        assert_eq!(base64_core(b"Man", 0, false), "TWFu");
        // "\0\0Man" is "AABNYW4=".
        assert_eq!(base64_core(b"Man", 2, false), "NYW");
    }

    #[test]
    fn percent_and_json_forms() {
        assert_eq!(url_encode(b"a b/c~"), "a%20b%2Fc~");
        assert_eq!(json_body("a\"b\\c\n"), "a\\\"b\\\\c\\n");
        let forms = secret_forms("first-line-1234\nsecond-line-5678\n");
        assert!(forms.contains(&"first-line-1234".to_owned()));
        assert!(forms.contains(&"first-line-1234\\nsecond-line-5678\\n".to_owned()));
    }

    #[test]
    #[should_panic(expected = "shows the secret")]
    fn a_base64_leak_is_caught() {
        let secret = "pyro-secret-0123456789abcdef";
        let leak = format!("x{}", base64(format!("ab{secret}").as_bytes()));
        assert_no_secret(&leak, secret, "a test");
    }
}

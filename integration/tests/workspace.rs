//! `pyro workspace ...` end to end (issue 3): real guests booted by the real
//! supervisor, driven through the real CLI, human output checked against
//! the first-run transcript and `--json` parsed where results are needed.
//!
//! Cost control: one installation is shared by most tests, and the tests
//! that only read or add files under their own directory share one started
//! workspace ([`general`]). Tests that destroy state (reset, stop, failure
//! policies, delete, TTL, supervisor restarts, limits) get their own
//! workspace, and those that stop the supervisor or change its settings get
//! their own installation. Every wait polls a condition with a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use pyro_integration::guest::{footer, one_line};
use pyro_integration::{find_program, stderr, stdout, wait_for, Pyro};
use serde_json::Value;

/// How long a (re)boot may take under TCG on a loaded 2-core host.
const BOOT: Duration = Duration::from_secs(120);

fn pyro() -> &'static Pyro {
    pyro_integration::shared()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A workspace that is deleted (best effort) when the test ends.
struct Ws<'a> {
    pyro: &'a Pyro,
    id: String,
}

impl<'a> Ws<'a> {
    /// `pyro workspace create debian:12 --id-only EXTRA...`, which must work.
    fn create(pyro: &'a Pyro, extra: &[&str]) -> Self {
        let mut args = vec!["workspace", "create", "debian:12", "--id-only"];
        args.extend_from_slice(extra);
        let id = pyro.ok(&args).trim().to_owned();
        assert_is_id(&id);
        Self { pyro, id }
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// `pyro workspace SUB ID REST...`.
    fn run(&self, sub: &[&str], rest: &[&str]) -> Output {
        let mut args = vec!["workspace"];
        args.extend_from_slice(sub);
        args.push(&self.id);
        args.extend_from_slice(rest);
        self.pyro.run(&args)
    }

    /// Like [`Ws::run`], asserting success; returns stdout.
    fn ok(&self, sub: &[&str], rest: &[&str]) -> String {
        let output = self.run(sub, rest);
        assert_success(&output, sub);
        stdout(&output)
    }

    /// Like [`Ws::ok`] with `--json`, parsed.
    fn json(&self, sub: &[&str], rest: &[&str]) -> Value {
        let mut rest = rest.to_vec();
        // Before the `--` of an exec's command.
        let at = rest.iter().position(|a| *a == "--").unwrap_or(rest.len());
        rest.insert(at, "--json");
        parse_json(&self.ok(sub, &rest))
    }

    /// Runs `sh -c SCRIPT` in the workspace; it must exit 0. Returns stdout.
    fn sh(&self, script: &str) -> String {
        let output = self.exec(script);
        assert_success(&output, &["exec", script]);
        stdout(&output)
    }

    /// Runs `sh -c SCRIPT` in the workspace.
    fn exec(&self, script: &str) -> Output {
        self.run(&["exec"], &["--", "sh", "-c", script])
    }

    fn status(&self) -> Value {
        self.json(&["status"], &[])
    }

    fn state(&self) -> String {
        self.status()["state"].as_str().unwrap().to_owned()
    }

    /// The QEMU process of this workspace, if one runs.
    fn vmm_pid(&self) -> Option<u32> {
        vmm_pid(self.pyro, &self.id)
    }
}

impl Drop for Ws<'_> {
    fn drop(&mut self) {
        let _ = self.pyro.run(&["workspace", "delete", &self.id]);
    }
}

/// The QEMU process of workspace `id` in `pyro`, if one runs.
fn vmm_pid(pyro: &Pyro, id: &str) -> Option<u32> {
    let disk = format!("/workspaces/{id}/");
    pyro.own_processes()
        .into_iter()
        .find(|(_, cmdline)| cmdline.contains("qemu-system") && cmdline.contains(&disk))
        .map(|(pid, _)| pid)
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) on a pid this test found in its own installation.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// The one workspace shared by the tests that only add files under their
/// own directory of it (so they can run at the same time).
fn general() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let id = pyro()
            .ok(&[
                "workspace",
                "create",
                "debian:12",
                "--id-only",
                "--ttl-seconds",
                "3600",
                "--name",
                "general",
            ])
            .trim()
            .to_owned();
        assert_is_id(&id);
        id
    })
}

/// A handle on [`general`] that does not delete it.
fn general_ws() -> std::mem::ManuallyDrop<Ws<'static>> {
    std::mem::ManuallyDrop::new(Ws {
        pyro: pyro(),
        id: general().to_owned(),
    })
}

fn assert_is_id(id: &str) {
    assert!(
        id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "not a workspace id: {id:?}"
    );
}

fn assert_success(output: &Output, what: &[&str]) {
    assert!(
        output.status.success(),
        "pyro workspace {what:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"))
}

/// Asserts one clear error: exit 1, `[error] MESSAGE` first on stderr,
/// only indented hint lines after it, no panic. Returns the message.
fn clear_error(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{err}",
        stdout(output)
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
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    message.to_owned()
}

/// Asserts a usage error (exit 2, clap's message).
fn usage_error(output: &Output) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "expected exit 2:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Splits `[prefix] k=v k=v ...` and checks the keys are exactly `keys`, in
/// order (see [`footer`]); returns the values by key.
fn summary(line: &str, prefix: &str, keys: &[&str]) -> BTreeMap<String, String> {
    footer(line, prefix, keys).into_iter().collect()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

fn write_file(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(path: &Path, epoch: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))
        .unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Runs a host program, which must succeed; returns stdout.
fn host(program: &str, args: &[&str], dir: &Path) -> String {
    let path = find_program(program).unwrap_or_else(|| panic!("{program} is needed on the host"));
    let output = Command::new(path)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// The directories under the data dir's `workspaces/`.
fn workspace_dirs(pyro: &Pyro) -> Vec<String> {
    match std::fs::read_dir(pyro.data_dir().join("workspaces")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn listed_ids(pyro: &Pyro) -> Vec<String> {
    let list = pyro.json(&["workspace", "list", "--json"]);
    list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workspace_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A listing of a guest directory: type, mode, size, link target and
/// content hash of every entry, to compare a tree before and after.
fn fingerprint(ws: &Ws<'_>, dir: &str) -> String {
    ws.sh(&format!(
        "cd /workspace/{dir} && find . -printf '%p %y %m %s %l\\n' | LC_ALL=C sort && \
         find . -type f -exec md5sum {{}} + | LC_ALL=C sort"
    ))
}

// ---------------------------------------------------------------------------
// A minimal ustar writer, to craft the archives `tar` refuses to make.
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Member {
    name: String,
    kind: u8,
    mode: u32,
    mtime: u64,
    link: String,
    data: Vec<u8>,
}

fn file(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.to_owned(),
        kind: b'0',
        mode: 0o644,
        mtime: 1_600_000_000,
        link: String::new(),
        data: data.to_vec(),
    }
}

fn directory(name: &str) -> Member {
    Member {
        kind: b'5',
        mode: 0o755,
        ..file(name, b"")
    }
}

fn link(name: &str, kind: u8, target: &str) -> Member {
    Member {
        kind,
        mode: 0o777,
        link: target.to_owned(),
        ..file(name, b"")
    }
}

fn tar(members: &[Member]) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut out = Vec::new();
    for m in members {
        let mut h = [0u8; 512];
        h[..m.name.len()].copy_from_slice(m.name.as_bytes());
        octal(&mut h[100..108], u64::from(m.mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], m.data.len() as u64);
        octal(&mut h[136..148], m.mtime);
        h[156] = m.kind;
        h[157..157 + m.link.len()].copy_from_slice(m.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if m.kind == b'3' || m.kind == b'4' {
            octal(&mut h[329..337], 1);
            octal(&mut h[337..345], 3);
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(dir: &Path, name: &str) -> PathBuf {
    host("gzip", &["-kf", name], dir);
    dir.join(format!("{name}.gz"))
}

// ---------------------------------------------------------------------------
// The transcript
// ---------------------------------------------------------------------------

#[test]
fn transcript_workspace_steps() {
    let pyro = pyro();
    let host_dir = tempdir("pyro-transcript-");
    let here = host_dir.path();
    write_file(&here.join("repo/src/note.txt"), b"original note\n", 0o644);
    write_file(&here.join("repo/README.md"), b"# repo\n", 0o644);
    write_file(
        &here.join("changes/note.txt"),
        b"hello from synced workspace\n",
        0o644,
    );
    let in_here = |args: &[&str]| {
        let output = pyro.command(args).current_dir(here).output().unwrap();
        assert_success(&output, args);
        output
    };

    // $ pyro workspace create debian:12 --seed-path ./repo
    let output = in_here(&["workspace", "create", "debian:12", "--seed-path", "./repo"]);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let id = lines[0]
        .strip_prefix("Workspace ID: ")
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert_is_id(&id);
    let ws = Ws { pyro, id };
    let repo = here.join("repo").canonicalize().unwrap();
    assert_eq!(
        lines[1..],
        [
            "Environment: debian:12",
            "State: started",
            "Workspace: /workspace",
            &format!("Workspace seed: directory from {}", repo.display()),
            "Execution mode: guest_vsock",
            "Resources: 1 vCPU / 1024 MiB",
            "Command count: 0",
        ]
    );

    // $ pyro workspace sync push WORKSPACE_ID ./changes --dest src
    let output = in_here(&[
        "workspace",
        "sync",
        "push",
        ws.id(),
        "./changes",
        "--dest",
        "src",
    ]);
    let fields = summary(
        stdout(&output).trim_end(),
        "[workspace-sync]",
        &[
            "workspace_id",
            "mode",
            "source",
            "destination",
            "entry_count",
            "bytes_written",
            "execution_mode",
        ],
    );
    assert_eq!(fields["workspace_id"], ws.id());
    assert_eq!(fields["mode"], "directory");
    let changes = here.join("changes").canonicalize().unwrap();
    assert_eq!(fields["source"], changes.display().to_string());
    assert_eq!(fields["destination"], "/workspace/src");
    assert_eq!(fields["entry_count"], "1");
    assert_eq!(fields["bytes_written"], "28");
    assert_eq!(fields["execution_mode"], "guest_vsock");

    // $ pyro workspace exec WORKSPACE_ID -- cat src/note.txt
    let output = ws.run(&["exec"], &["--", "cat", "src/note.txt"]);
    assert_success(&output, &["exec"]);
    assert_eq!(stdout(&output), "hello from synced workspace\n");
    let footer = summary(
        stderr(&output).trim_end(),
        "[workspace-exec]",
        &[
            "workspace_id",
            "sequence",
            "cwd",
            "execution_mode",
            "exit_code",
            "duration_ms",
        ],
    );
    assert_eq!(footer["workspace_id"], ws.id());
    assert_eq!(footer["sequence"], "1");
    assert_eq!(footer["cwd"], "/workspace");
    assert_eq!(footer["execution_mode"], "guest_vsock");
    assert_eq!(footer["exit_code"], "0");
    footer["duration_ms"].parse::<u64>().unwrap();

    // $ pyro workspace diff WORKSPACE_ID
    let text = ws.ok(&["diff"], &[]);
    let mut lines = text.lines();
    let header = summary(
        lines.next().unwrap(),
        "[workspace-diff]",
        &[
            "workspace_id",
            "total",
            "added",
            "modified",
            "deleted",
            "type_changed",
            "text_patched",
            "non_text",
        ],
    );
    assert_eq!(header["workspace_id"], ws.id());
    for (key, value) in [
        ("total", "1"),
        ("added", "0"),
        ("modified", "1"),
        ("deleted", "0"),
        ("type_changed", "0"),
        ("text_patched", "1"),
        ("non_text", "0"),
    ] {
        assert_eq!(header[key], value, "{key} in:\n{text}");
    }
    // The transcript's patch lines, in order, right after the summary.
    let rest: Vec<&str> = lines.collect();
    assert_eq!(
        rest,
        [
            "--- a/src/note.txt",
            "+++ b/src/note.txt",
            "@@ -1 +1 @@",
            "-original note",
            "+hello from synced workspace",
        ],
        "{text}"
    );

    // $ pyro workspace snapshot create WORKSPACE_ID checkpoint
    let text = ws.ok(&["snapshot", "create"], &["checkpoint"]);
    let fields = summary(
        text.trim_end(),
        "[workspace-snapshot-create]",
        &["snapshot_name", "kind", "entry_count", "bytes_written"],
    );
    assert_eq!(fields["snapshot_name"], "checkpoint");
    assert_eq!(fields["kind"], "named");
    // src, src/note.txt, README.md: 28 + 7 bytes.
    assert_eq!(fields["entry_count"], "3");
    assert_eq!(fields["bytes_written"], "35");

    // Change things after the checkpoint, inside and outside /workspace.
    ws.sh("echo scribble > src/note.txt; echo extra > extra.txt; echo pkg > /usr/local/bin/pyro-tool; sync");

    // $ pyro workspace reset WORKSPACE_ID --snapshot checkpoint
    let text = ws.ok(&["reset"], &["--snapshot", "checkpoint"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(
        lines[0],
        "Workspace reset from snapshot: checkpoint (named)"
    );
    let fields = summary(
        lines[1],
        "[workspace-reset]",
        &["destination", "entry_count", "bytes_written"],
    );
    assert_eq!(fields["destination"], "/workspace");
    assert_eq!(fields["entry_count"], "3");
    assert_eq!(fields["bytes_written"], "35");
    assert_eq!(
        lines[2..],
        [
            &format!("Workspace ID: {}", ws.id()),
            "State: started",
            "Command count: 0",
            "Reset count: 1",
        ]
    );

    // $ pyro workspace export WORKSPACE_ID src/note.txt --output ./note.txt
    let output = in_here(&[
        "workspace",
        "export",
        ws.id(),
        "src/note.txt",
        "--output",
        "./note.txt",
    ]);
    let fields = summary(
        stdout(&output).trim_end(),
        "[workspace-export]",
        &[
            "workspace_id",
            "workspace_path",
            "output_path",
            "artifact_type",
            "entry_count",
            "bytes_written",
            "execution_mode",
        ],
    );
    assert_eq!(fields["workspace_id"], ws.id());
    assert_eq!(fields["workspace_path"], "/workspace/src/note.txt");
    let note = here.canonicalize().unwrap().join("note.txt");
    assert_eq!(fields["output_path"], note.display().to_string());
    assert_eq!(fields["artifact_type"], "file");
    assert_eq!(fields["entry_count"], "1");
    assert_eq!(fields["bytes_written"], "28");
    assert_eq!(fields["execution_mode"], "guest_vsock");
    assert_eq!(
        std::fs::read_to_string(&note).unwrap(),
        "hello from synced workspace\n"
    );

    // The reset undid everything after the checkpoint.
    let after = ws.sh("ls -A; test ! -e /usr/local/bin/pyro-tool && echo tool-gone");
    assert_eq!(after, "README.md\nsrc\ntool-gone\n");

    // $ pyro workspace delete WORKSPACE_ID
    let text = ws.ok(&["delete"], &[]);
    assert_eq!(text, format!("Deleted workspace: {}\n", ws.id()));
    assert!(!listed_ids(pyro).contains(&ws.id));
    assert!(!workspace_dirs(pyro).contains(&ws.id));
    wait_for("the deleted workspace's VMM to exit", BOOT, |last| {
        let pid = ws.vmm_pid();
        *last = format!("{pid:?}");
        pid.is_none().then_some(())
    });
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/// A tree with an executable script, a file with a known mode and mtime, a
/// symlink and an empty directory.
fn seed_tree(root: &Path) {
    write_file(&root.join("run.sh"), b"#!/bin/sh\necho \"ran $1\"\n", 0o755);
    set_mtime(&root.join("run.sh"), 1_500_000_000);
    write_file(&root.join("data/file.txt"), b"data\n", 0o640);
    set_mtime(&root.join("data/file.txt"), 1_600_000_000);
    symlink("data/file.txt", root.join("latest")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
}

#[test]
fn seeds_from_a_directory_and_each_archive_type_keep_modes_mtimes_and_symlinks() {
    let pyro = pyro();
    let host_dir = tempdir("pyro-seeds-");
    let tree = host_dir.path().join("tree");
    seed_tree(&tree);
    let members = ["run.sh", "data", "latest", "empty"];
    let mut tar_args = vec!["-cf", "../seed.tar"];
    tar_args.extend_from_slice(&members);
    host("tar", &tar_args, &tree);
    let mut tgz_args = vec!["-czf", "../seed.tgz"];
    tgz_args.extend_from_slice(&members);
    host("tar", &tgz_args, &tree);
    std::fs::copy(
        host_dir.path().join("seed.tgz"),
        host_dir.path().join("seed.tar.gz"),
    )
    .unwrap();

    for (seed, mode) in [
        ("tree", "directory"),
        ("seed.tar", "tar_archive"),
        ("seed.tar.gz", "tar_archive"),
        ("seed.tgz", "tar_archive"),
    ] {
        let path = host_dir.path().join(seed);
        let ws = Ws::create(pyro, &["--seed-path", path.to_str().unwrap()]);
        let status = ws.status();
        assert_eq!(status["workspace_seed"]["mode"], mode, "{seed}");
        assert_eq!(
            status["workspace_seed"]["seed_path"],
            path.to_str().unwrap(),
            "{seed}"
        );
        assert_eq!(status["workspace_seed"]["destination"], "/workspace");
        let out = ws.sh(
            "./run.sh x && stat -c '%a %Y %n' run.sh data/file.txt && readlink latest && \
             test -d empty && test -z \"$(ls -A empty)\" && echo empty-dir",
        );
        assert_eq!(
            out,
            "ran x\n755 1500000000 run.sh\n640 1600000000 data/file.txt\ndata/file.txt\nempty-dir\n",
            "seed {seed}"
        );
    }
}

#[test]
fn hostile_seeds_are_refused_and_nothing_is_created() {
    // Its own installation, so "nothing created" can be checked exactly.
    let pyro = Pyro::new();
    let host_dir = tempdir("pyro-hostile-");
    let dir = host_dir.path();
    let ok = file("ok.txt", b"fine\n");
    let cases: Vec<(&str, Vec<Member>, &str)> = vec![
        (
            "absolute.tar",
            vec![ok.clone(), file("/etc/evil", b"x")],
            "refusing archive entry `/etc/evil`: its path is absolute",
        ),
        (
            "dotdot.tar",
            vec![ok.clone(), file("a/../../evil", b"x")],
            "refusing archive entry `a/../../evil`: its path contains `..`",
        ),
        (
            "symlink-escape.tar",
            vec![ok.clone(), link("up", b'2', "../../etc")],
            "refusing archive entry `up`: it is a symlink to `../../etc`, which resolves outside",
        ),
        (
            "symlink-nested-escape.tar",
            vec![ok.clone(), directory("a"), link("a/up", b'2', "../../x")],
            "refusing archive entry `a/up`",
        ),
        (
            "symlink-absolute.tar",
            vec![ok.clone(), link("abs", b'2', "/etc/passwd")],
            "refusing archive entry `abs`",
        ),
        (
            "device.tar",
            vec![ok.clone(), link("null", b'3', "")],
            "refusing archive entry `null`: it is a character device",
        ),
        (
            "block-device.tar",
            vec![ok.clone(), link("disk", b'4', "")],
            "refusing archive entry `disk`",
        ),
        (
            "fifo.tar",
            vec![ok.clone(), link("pipe", b'6', "")],
            "refusing archive entry `pipe`",
        ),
        (
            "hardlink-outside.tar",
            vec![ok.clone(), link("h", b'1', "/etc/passwd")],
            "refusing archive entry `h`: it is a hard link to `/etc/passwd`",
        ),
        (
            "hardlink-missing.tar",
            vec![ok.clone(), link("h", b'1', "missing.txt")],
            "refusing archive entry `h`: it is a hard link to `missing.txt`",
        ),
        (
            "through-symlink.tar",
            vec![ok.clone(), link("l", b'2', "."), file("l/../../evil", b"x")],
            "refusing archive entry `l/../../evil`",
        ),
    ];
    for (name, members, _) in &cases {
        std::fs::write(dir.join(name), tar(members)).unwrap();
    }
    // One gzipped hostile archive of each extension.
    std::fs::write(dir.join("gz.tar"), tar(&cases[0].1)).unwrap();
    let gz = gzip(dir, "gz.tar");
    std::fs::copy(&gz, dir.join("gz.tgz")).unwrap();
    // A directory seed with a symlink that points out of it.
    std::fs::create_dir_all(dir.join("tree-escape")).unwrap();
    write_file(&dir.join("tree-escape/ok.txt"), b"fine\n", 0o644);
    symlink("/etc/passwd", dir.join("tree-escape/passwd")).unwrap();

    let mut all: Vec<(String, String)> = cases
        .iter()
        .map(|(name, _, expected)| ((*name).to_owned(), (*expected).to_owned()))
        .collect();
    all.push((
        "gz.tar.gz".into(),
        "refusing archive entry `/etc/evil`".into(),
    ));
    all.push(("gz.tgz".into(), "refusing archive entry `/etc/evil`".into()));
    all.push((
        "tree-escape".into(),
        "refusing archive entry `passwd`".into(),
    ));
    for (name, expected) in &all {
        let path = dir.join(name);
        let output = pyro.run(&[
            "workspace",
            "create",
            "debian:12",
            "--seed-path",
            path.to_str().unwrap(),
        ]);
        let message = clear_error(&output);
        assert!(
            message.starts_with(expected),
            "{name}: expected {expected:?}, got {message:?}"
        );
        let output = pyro.run(&[
            "workspace",
            "create",
            "debian:12",
            "--json",
            "--seed-path",
            path.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let value = parse_json(&stdout(&output));
        assert_eq!(value["ok"], false, "{name}");
    }
    assert_eq!(pyro.ok(&["workspace", "list"]), "No workspaces.\n");
    assert!(listed_ids(&pyro).is_empty());
    assert!(
        workspace_dirs(&pyro).is_empty(),
        "left behind: {:?}",
        workspace_dirs(&pyro)
    );
    assert!(
        pyro.own_processes().is_empty(),
        "{:?}",
        pyro.own_processes()
    );
    // The host outside the archives was not touched.
    assert!(!dir.join("evil").exists() && !Path::new("/etc/evil").exists());
}

// ---------------------------------------------------------------------------
// exec and logs
// ---------------------------------------------------------------------------

#[test]
fn exec_streams_passes_exit_codes_and_keeps_history() {
    let ws = general_ws();
    ws.sh("mkdir -p /workspace/exec-t/sub");

    // Streaming: the first line arrives while the command still runs (it
    // waits for a file that only a second exec creates).
    let mut child = ws
        .pyro
        .command(&[
            "workspace",
            "exec",
            ws.id(),
            "--",
            "sh",
            "-c",
            "echo first; i=0; while [ ! -e /tmp/exec-t-go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; echo second",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(BOOT).expect("no streamed output");
    assert_eq!(first, "first");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the output arrived only after the command ended"
    );
    ws.sh("touch /tmp/exec-t-go");
    let second = rx.recv_timeout(BOOT).expect("no second line");
    assert_eq!(second, "second");
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();

    // Exit codes pass through; streams stay separate.
    let output = ws.run(
        &["exec"],
        &["--", "sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(stdout(&output), "out\n");
    let err = stderr(&output);
    assert!(err.starts_with("err\n"), "{err}");
    let footer = one_line(&err, "[workspace-exec]");
    assert!(footer.contains(" exit_code=7 "), "{footer}");

    // --cwd (relative to /workspace) and --env.
    let output = ws.run(
        &["exec"],
        &[
            "--cwd",
            "exec-t/sub",
            "--env",
            "GREETING=hi there",
            "--env",
            "CI=1",
            "--",
            "sh",
            "-c",
            "pwd; echo \"$GREETING/$CI\"",
        ],
    );
    assert_success(&output, &["exec --cwd"]);
    assert_eq!(stdout(&output), "/workspace/exec-t/sub\nhi there/1\n");
    let footer = one_line(&stderr(&output), "[workspace-exec]").to_owned();
    assert!(footer.contains(" cwd=/workspace/exec-t/sub "), "{footer}");
    let cwd_json = ws.json(&["exec"], &["--cwd", "/workspace/exec-t", "--", "pwd"]);
    assert_eq!(cwd_json["stdout"], "/workspace/exec-t\n");
    assert_eq!(cwd_json["cwd"], "/workspace/exec-t");
    let message = clear_error(&ws.run(&["exec"], &["--cwd", "/etc", "--", "pwd"]));
    assert!(message.contains("outside /workspace"), "{message}");
    let message = clear_error(&ws.run(&["exec"], &["--cwd", "../etc", "--", "pwd"]));
    assert!(message.contains(".."), "{message}");

    // --timeout-seconds: exit 124, promptly.
    let started = Instant::now();
    let output = ws.run(&["exec"], &["--timeout-seconds", "2", "--", "sleep", "60"]);
    assert_eq!(output.status.code(), Some(124), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(45));
    let footer = one_line(&stderr(&output), "[workspace-exec]").to_owned();
    assert!(
        footer.contains(" exit_code=124 ") && footer.ends_with(" timed_out=yes"),
        "{footer}"
    );

    // History: each run above, with its output, as logs shows it.
    // `exec --json` exits with the command's code too.
    let exec_json = |args: &[&str], code: i32| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = ws.run(&["exec"], &all);
        assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
        parse_json(&stdout(&output))
    };
    let a = exec_json(
        &["--", "sh", "-c", "echo hist-out; echo hist-err >&2; exit 3"],
        3,
    );
    let b = exec_json(&["--cwd", "exec-t", "--", "echo", "hist-two"], 0);
    let t = exec_json(
        &[
            "--timeout-seconds",
            "5",
            "--",
            "sh",
            "-c",
            "echo before; sleep 60",
        ],
        124,
    );
    assert_eq!(a["exit_code"], 3);
    assert_eq!(a["stdout"], "hist-out\n");
    assert_eq!(a["stderr"], "hist-err\n");
    assert_eq!(t["exit_code"], 124);
    assert_eq!(t["timed_out"], true);
    let seq = |v: &Value| v["sequence"].as_u64().unwrap();
    assert!(seq(&a) < seq(&b) && seq(&b) < seq(&t));
    let logs = ws.json(&["logs"], &[]);
    let entries = logs["entries"].as_array().unwrap();
    assert_eq!(logs["count"].as_u64().unwrap() as usize, entries.len());
    let find = |s: u64| {
        entries
            .iter()
            .find(|e| e["sequence"] == s)
            .unwrap_or_else(|| panic!("sequence {s} missing from logs: {logs}"))
    };
    let ea = find(seq(&a));
    assert_eq!(
        ea["command"],
        "sh -c 'echo hist-out; echo hist-err >&2; exit 3'"
    );
    assert_eq!(ea["cwd"], "/workspace");
    assert_eq!(ea["exit_code"], 3);
    assert_eq!(ea["stdout"], "hist-out\n");
    assert_eq!(ea["stderr"], "hist-err\n");
    assert!(ea["duration_ms"].is_u64());
    let eb = find(seq(&b));
    assert_eq!(eb["command"], "echo hist-two");
    assert_eq!(eb["cwd"], "/workspace/exec-t");
    assert_eq!(eb["exit_code"], 0);
    assert_eq!(eb["stdout"], "hist-two\n");
    assert_eq!(eb["stderr"], "");
    let et = find(seq(&t));
    assert_eq!(et["exit_code"], 124);
    assert_eq!(et["timed_out"], true);
    assert_eq!(t["stdout"], "before\n");
    assert_eq!(
        et["stdout"], t["stdout"],
        "the history keeps a timed-out command's output"
    );
    let sequences: Vec<u64> = entries.iter().map(seq).collect();
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sequences, sorted, "logs are in sequence order, once each");

    // The human rendering.
    let output = ws.run(&["logs"], &[]);
    assert_success(&output, &["logs"]);
    let text = stdout(&output);
    let header = format!("#{} exit_code=3 duration_ms=", seq(&a));
    let at = text
        .lines()
        .position(|l| l.starts_with(&header))
        .unwrap_or_else(|| panic!("no {header} in:\n{text}"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[at].contains(" cwd=/workspace "), "{}", lines[at]);
    assert_eq!(
        lines[at + 1],
        "$ sh -c 'echo hist-out; echo hist-err >&2; exit 3'"
    );
    assert_eq!(lines[at + 2], "hist-out");
    assert!(stderr(&output).lines().any(|l| l == "hist-err"));

    // The status block shows the count and the last command.
    let status = ws.status();
    assert!(status["command_count"].as_u64().unwrap() >= seq(&t));
}

// ---------------------------------------------------------------------------
// sync push
// ---------------------------------------------------------------------------

#[test]
fn sync_push_is_atomic_keeps_modes_and_refuses_traversal() {
    let ws = general_ws();
    let host_dir = tempdir("pyro-sync-");
    let dir = host_dir.path();
    let src = dir.join("src");
    write_file(&src.join("tool.sh"), b"#!/bin/sh\necho tool ran\n", 0o755);
    write_file(&src.join("secret.txt"), b"private\n", 0o600);
    write_file(&src.join("note.txt"), b"old note\n", 0o644);
    write_file(&src.join("first.txt"), b"first v1\n", 0o644);
    symlink("note.txt", src.join("note-link")).unwrap();

    let output = ws.run(
        &["sync", "push"],
        &[src.to_str().unwrap(), "--dest", "sync-t"],
    );
    assert_success(&output, &["sync push"]);
    let fields = summary(
        stdout(&output).trim_end(),
        "[workspace-sync]",
        &[
            "workspace_id",
            "mode",
            "source",
            "destination",
            "entry_count",
            "bytes_written",
            "execution_mode",
        ],
    );
    assert_eq!(fields["destination"], "/workspace/sync-t");
    assert_eq!(fields["entry_count"], "5");
    assert_eq!(
        ws.sh("cd sync-t && ./tool.sh && stat -c '%a %n' tool.sh secret.txt note.txt && readlink note-link"),
        "tool ran\n755 tool.sh\n600 secret.txt\n644 note.txt\nnote.txt\n"
    );
    let before = fingerprint(&ws, "sync-t");

    // A tar whose second half holds a refused member: nothing is written.
    let refused = tar(&[
        file("first.txt", b"first v2\n"),
        file("aaa-new.txt", b"new\n"),
        file("../escape.txt", b"x"),
    ]);
    std::fs::write(dir.join("refused.tar"), refused).unwrap();
    let message = clear_error(&ws.run(
        &["sync", "push"],
        &[
            dir.join("refused.tar").to_str().unwrap(),
            "--dest",
            "sync-t",
        ],
    ));
    assert!(message.contains("`../escape.txt`"), "{message}");

    // A push that fails in the guest part-way: the first members are fine
    // (one overwrites a file), then a directory meets an existing file.
    let conflict = tar(&[
        file("aaa-new.txt", b"new\n"),
        file("first.txt", b"first v2\n"),
        directory("note.txt"),
        file("note.txt/inner", b"inner\n"),
        file("zzz-new.txt", b"new\n"),
    ]);
    std::fs::write(dir.join("conflict.tar"), conflict).unwrap();
    let message = clear_error(&ws.run(
        &["sync", "push"],
        &[
            dir.join("conflict.tar").to_str().unwrap(),
            "--dest",
            "sync-t",
        ],
    ));
    assert!(message.contains("note.txt"), "{message}");
    // The same as a directory source.
    let conflict_dir = dir.join("conflict-dir");
    write_file(&conflict_dir.join("aaa-new.txt"), b"new\n", 0o644);
    write_file(&conflict_dir.join("first.txt"), b"first v2\n", 0o644);
    write_file(&conflict_dir.join("note.txt/inner"), b"inner\n", 0o644);
    clear_error(&ws.run(
        &["sync", "push"],
        &[conflict_dir.to_str().unwrap(), "--dest", "sync-t"],
    ));

    // The destination is a file.
    let message = clear_error(&ws.run(
        &["sync", "push"],
        &[src.to_str().unwrap(), "--dest", "sync-t/note.txt"],
    ));
    assert!(message.contains("not a directory"), "{message}");

    // Traversal out of /workspace.
    for dest in ["../etc", "/etc", "sync-t/../../etc"] {
        let message =
            clear_error(&ws.run(&["sync", "push"], &[src.to_str().unwrap(), "--dest", dest]));
        assert!(message.contains("/workspace"), "{dest}: {message}");
    }
    // Through a symlink inside the workspace that points out of it.
    ws.sh("ln -sfn /etc /workspace/sync-t-etc-link");
    let output = ws.run(
        &["sync", "push"],
        &[src.to_str().unwrap(), "--dest", "sync-t-etc-link"],
    );
    let etc_has_tool = ws.run(&["exec"], &["--", "test", "-e", "/etc/tool.sh"]);
    assert_eq!(
        etc_has_tool.status.code(),
        Some(1),
        "a push through a symlink wrote into /etc"
    );
    clear_error(&output);
    ws.sh("rm /workspace/sync-t-etc-link");

    assert_eq!(
        fingerprint(&ws, "sync-t"),
        before,
        "a failed push changed the tree"
    );

    // A later good push of an archive merges over the tree, modes kept.
    let good = tar(&[
        Member {
            mode: 0o750,
            ..file("bin/run", b"#!/bin/sh\necho archived\n")
        },
        file("first.txt", b"first v2\n"),
    ]);
    std::fs::write(dir.join("good.tar"), good).unwrap();
    let gz = gzip(dir, "good.tar");
    let output = ws.run(
        &["sync", "push"],
        &[gz.to_str().unwrap(), "--dest", "/workspace/sync-t"],
    );
    assert_success(&output, &["sync push tar.gz"]);
    assert!(stdout(&output).contains(" mode=tar_archive "));
    assert_eq!(
        ws.sh("cd sync-t && bin/run && stat -c '%a' bin/run && cat first.txt note.txt"),
        "archived\n750\nfirst v2\nold note\n"
    );
}

// ---------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------

#[test]
fn export_copies_files_directories_and_symlinks_out_and_never_overwrites() {
    let ws = general_ws();
    ws.sh(
        "mkdir -p /workspace/export-t/tree/sub && cd /workspace/export-t && \
         printf '#!/bin/sh\\necho hi\\n' > tree/run.sh && chmod 755 tree/run.sh && \
         echo secret > tree/sub/private.txt && chmod 600 tree/sub/private.txt && \
         chmod 750 tree && chmod 711 tree/sub && \
         ln -s sub/private.txt tree/link && \
         mkdir -p escape && echo fine > escape/ok.txt && ln -s ../../../etc/passwd escape/outside",
    );
    let host_dir = tempdir("pyro-export-");
    let out = host_dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    // A file, mode kept.
    let text = ws.ok(
        &["export"],
        &[
            "export-t/tree/run.sh",
            "--output",
            out.join("run.sh").to_str().unwrap(),
        ],
    );
    let fields = summary(
        text.trim_end(),
        "[workspace-export]",
        &[
            "workspace_id",
            "workspace_path",
            "output_path",
            "artifact_type",
            "entry_count",
            "bytes_written",
            "execution_mode",
        ],
    );
    assert_eq!(fields["artifact_type"], "file");
    assert_eq!(
        std::fs::read_to_string(out.join("run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode_of(&out.join("run.sh")), 0o755);

    // A symlink, as a symlink.
    let result = ws.json(
        &["export"],
        &[
            "export-t/tree/link",
            "--output",
            out.join("link").to_str().unwrap(),
        ],
    );
    assert_eq!(result["artifact_type"], "symlink");
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("sub/private.txt")
    );

    // A directory, with its modes (its own included), contents and links.
    let result = ws.json(
        &["export"],
        &[
            "/workspace/export-t/tree",
            "--output",
            out.join("tree").to_str().unwrap(),
        ],
    );
    assert_eq!(result["artifact_type"], "directory");
    assert_eq!(result["workspace_path"], "/workspace/export-t/tree");
    let tree = out.join("tree");
    assert_eq!(
        std::fs::read_to_string(tree.join("sub/private.txt")).unwrap(),
        "secret\n"
    );
    assert_eq!(mode_of(&tree.join("run.sh")), 0o755);
    assert_eq!(mode_of(&tree.join("sub/private.txt")), 0o600);
    assert_eq!(mode_of(&tree.join("sub")), 0o711);
    assert_eq!(
        std::fs::read_link(tree.join("link")).unwrap(),
        Path::new("sub/private.txt")
    );
    // A directory with a link pointing out of it: refused, or the link is
    // exported as a link; never followed.
    let escape = out.join("escape");
    let output = ws.run(
        &["export"],
        &["export-t/escape", "--output", escape.to_str().unwrap()],
    );
    if output.status.success() {
        let meta = std::fs::symlink_metadata(escape.join("outside")).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "an exported link was followed"
        );
    } else {
        clear_error(&output);
        assert!(
            !escape.exists(),
            "a refused export left {}",
            escape.display()
        );
    }
    let outside = out.join("outside");
    let output = ws.run(
        &["export"],
        &[
            "export-t/escape/outside",
            "--output",
            outside.to_str().unwrap(),
        ],
    );
    if output.status.success() {
        let meta = std::fs::symlink_metadata(&outside).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "an exported link was followed"
        );
    } else {
        clear_error(&output);
    }

    // Nothing was written next to the outputs.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "escape" && name != "outside")
        .collect();
    names.sort();
    assert_eq!(names, ["link", "run.sh", "tree"]);

    // The output must not exist: nothing is overwritten.
    std::fs::write(out.join("taken"), "mine").unwrap();
    let message = clear_error(&ws.run(
        &["export"],
        &[
            "export-t/tree/run.sh",
            "--output",
            out.join("taken").to_str().unwrap(),
        ],
    ));
    assert!(message.contains("already exists"), "{message}");
    assert_eq!(std::fs::read_to_string(out.join("taken")).unwrap(), "mine");
    clear_error(&ws.run(
        &["export"],
        &[
            "export-t/tree",
            "--output",
            out.join("tree").to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(tree.join("run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );

    // Paths outside /workspace and missing paths are refused.
    for path in ["../etc/passwd", "/etc/passwd", "export-t/missing"] {
        let target = out.join("refused");
        clear_error(&ws.run(&["export"], &[path, "--output", target.to_str().unwrap()]));
        assert!(!target.exists(), "{path}");
    }

    // Last (it fails today): the exported directory keeps its own mode too.
    assert_eq!(
        format!("{:o}", mode_of(&tree)),
        "750",
        "the exported directory's own mode differs from the guest's"
    );
}

// ---------------------------------------------------------------------------
// diff, snapshots, reset, patch round trip (own workspace: it resets)
// ---------------------------------------------------------------------------

#[test]
fn diff_against_baseline_and_snapshot_then_reset_and_reapply_the_patch() {
    let pyro = pyro();
    let host_dir = tempdir("pyro-diff-");
    let seed = host_dir.path().join("seed");
    write_file(&seed.join("keep.txt"), b"keep\n", 0o644);
    write_file(&seed.join("mod.txt"), b"one\ntwo\nthree\n", 0o644);
    write_file(&seed.join("del.txt"), b"delete me\n", 0o644);
    write_file(&seed.join("run.sh"), b"#!/bin/sh\necho run\n", 0o644);
    write_file(&seed.join("d2f/inner.txt"), b"inner\n", 0o644);
    write_file(&seed.join("bin.dat"), &[0, 1, 2, 3, 255], 0o644);
    write_file(&seed.join("tail.txt"), b"no newline at end", 0o644);
    let ws = Ws::create(pyro, &["--seed-path", seed.to_str().unwrap()]);

    assert_eq!(ws.ok(&["diff"], &[]), "No workspace changes.\n");
    let unchanged = ws.json(&["diff"], &[]);
    assert_eq!(unchanged["changed"], false);
    assert_eq!(unchanged["against"], "baseline");
    assert_eq!(unchanged["patch"], "");

    let issue_before = ws.sh("cat /etc/issue");
    // A Debian package installed outside /workspace (built in the guest:
    // the guest has no network).
    assert_eq!(
        ws.sh(
            "mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/bin && \
             printf 'Package: pyro-test-pkg\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@t>\\nDescription: test\\n' \
               > /tmp/pkg/DEBIAN/control && \
             printf '#!/bin/sh\\necho pkg\\n' > /tmp/pkg/usr/bin/pyro-test-pkg && \
             chmod 755 /tmp/pkg/usr/bin/pyro-test-pkg && \
             dpkg-deb --build /tmp/pkg /tmp/pkg.deb >/dev/null && dpkg -i /tmp/pkg.deb >/dev/null && \
             dpkg-query -W -f '${Status}\\n' pyro-test-pkg && pyro-test-pkg"
        ),
        "install ok installed\npkg\n"
    );
    ws.sh(
        "printf 'one\\nTWO\\nthree\\n' > mod.txt && rm del.txt && printf 'brand new\\n' > new.txt && \
         printf 'changed tail' > tail.txt && chmod 755 run.sh && \
         rm -r d2f && printf 'now a file\\n' > d2f && \
         printf '\\000\\001\\002\\003\\376' > bin.dat && ln -s keep.txt link && mkdir emptydir && \
         echo tool > /usr/local/bin/pyro-test-tool && chmod 755 /usr/local/bin/pyro-test-tool && \
         echo 'pyro was here' >> /etc/issue",
    );

    let diff = ws.json(&["diff"], &[]);
    assert_eq!(diff["changed"], true);
    let entries = diff["entries"].as_array().unwrap();
    let got: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
                e["artifact_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |p: &str, s: &str, t: &str| (p.to_owned(), s.to_owned(), t.to_owned());
    assert_eq!(
        got,
        [
            expect("bin.dat", "modified", "file"),
            expect("d2f", "type_changed", "file"),
            expect("d2f/inner.txt", "deleted", "file"),
            expect("del.txt", "deleted", "file"),
            expect("emptydir", "added", "directory"),
            expect("link", "added", "symlink"),
            expect("mod.txt", "modified", "file"),
            expect("new.txt", "added", "file"),
            expect("run.sh", "mode_changed", "file"),
            expect("tail.txt", "modified", "file"),
        ],
        "{diff}"
    );
    let entry = |p: &str| entries.iter().find(|e| e["path"] == p).unwrap();
    assert_eq!(
        entry("run.sh")["mode_change"],
        serde_json::json!(["0644", "0755"])
    );
    assert!(
        entry("bin.dat")["text_patch"].is_null(),
        "binary files get no patch"
    );
    assert!(entry("link")["text_patch"].is_null());
    assert!(entry("emptydir")["text_patch"].is_null());
    let patch_of = |p: &str| entry(p)["text_patch"].as_str().unwrap().to_owned();
    assert!(patch_of("mod.txt")
        .contains("--- a/mod.txt\n+++ b/mod.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"));
    assert!(
        patch_of("del.txt").contains("deleted file mode 100644\n--- a/del.txt\n+++ /dev/null\n")
    );
    assert!(patch_of("new.txt").contains(
        "new file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+brand new\n"
    ));
    assert!(patch_of("tail.txt").contains(
        "-no newline at end\n\\ No newline at end of file\n+changed tail\n\\ No newline at end of file\n"
    ));
    assert!(patch_of("run.sh").contains("old mode 100644\nnew mode 100755\n"));
    let summary_json = &diff["summary"];
    assert_eq!(summary_json["total"], 10);
    assert_eq!(
        summary_json["modified"], 4,
        "mode-only changes count as modified"
    );
    assert_eq!(summary_json["added"], 3);
    assert_eq!(summary_json["deleted"], 2);
    assert_eq!(summary_json["type_changed"], 1);
    assert_eq!(summary_json["mode_changed"], 1);
    assert_eq!(summary_json["text_patched"], 6);
    assert!(summary_json["non_text"].as_u64().unwrap() >= 1, "bin.dat");
    let patched: String = entries
        .iter()
        .filter_map(|e| e["text_patch"].as_str())
        .collect();
    assert_eq!(diff["patch"].as_str().unwrap(), patched);
    // Nothing outside /workspace is part of the diff.
    assert!(!diff.to_string().contains("pyro-test-tool"));

    // The human form: summary, the non-text changes, then the patch.
    let text = ws.ok(&["diff"], &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "[workspace-diff] workspace_id={} total=10 added=3 modified=",
            ws.id()
        )) && lines[0].contains(" type_changed=1 text_patched=6 ")
            && lines[0].contains(" mode_changed=1"),
        "{}",
        lines[0]
    );
    for line in [
        "modified [file] bin.dat",
        "type_changed [file] d2f",
        "added [directory] emptydir",
        "added [symlink] link",
    ] {
        assert!(lines.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(text.contains(diff["patch"].as_str().unwrap()));

    // Against a named snapshot.
    ws.ok(&["snapshot", "create"], &["mid"]);
    assert_eq!(
        ws.ok(&["diff"], &["--against", "mid"]),
        "No workspace changes since snapshot mid.\n"
    );
    ws.sh("printf 'newer\\n' > new.txt");
    let since = ws.json(&["diff"], &["--against", "mid"]);
    assert_eq!(since["against"], "mid");
    let since_entries = since["entries"].as_array().unwrap();
    assert_eq!(since_entries.len(), 1, "{since}");
    assert_eq!(since_entries[0]["path"], "new.txt");
    assert_eq!(since_entries[0]["status"], "modified");
    assert!(since["patch"]
        .as_str()
        .unwrap()
        .contains("-brand new\n+newer\n"));
    let header = ws.ok(&["diff"], &["--against", "mid"]);
    assert!(
        header.lines().next().unwrap().ends_with(" against=mid"),
        "{header}"
    );
    clear_error(&ws.run(&["diff"], &["--against", "nope"]));

    // Reset to the baseline: a new disk, /workspace restored, counters.
    let reset_count_before = ws.status()["reset_count"].as_u64().unwrap();
    assert_eq!(reset_count_before, 0);
    clear_error(&ws.run(&["reset"], &["--snapshot", "nope"]));
    assert_eq!(
        ws.status()["reset_count"],
        0,
        "a refused reset changed nothing"
    );
    let text = ws.ok(&["reset"], &[]);
    assert!(
        text.starts_with("Workspace reset from snapshot: baseline (baseline)\n"),
        "{text}"
    );
    let status = ws.status();
    assert_eq!(status["state"], "started");
    assert_eq!(status["command_count"], 0);
    assert_eq!(status["reset_count"], 1);
    assert!(status["last_command"].is_null());
    assert!(status["last_reset_at"].is_string());
    assert_eq!(ws.ok(&["diff"], &[]), "No workspace changes.\n");
    assert_eq!(
        ws.ok(&["logs"], &[]),
        "No workspace logs found.\n",
        "history starts over"
    );
    assert_eq!(
        ws.sh(
            "test ! -e /usr/local/bin/pyro-test-tool && test ! -e /usr/bin/pyro-test-pkg && \
             ! dpkg-query -W pyro-test-pkg 2>/dev/null && echo gone"
        ),
        "gone\n",
        "a package or file installed outside /workspace survived the reset"
    );
    assert_eq!(
        ws.sh("cat /etc/issue"),
        issue_before,
        "/etc was not restored"
    );
    let snapshots = ws.json(&["snapshot", "list"], &[]);
    assert!(
        snapshots["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["snapshot_name"] == "mid"),
        "snapshots are kept across a reset: {snapshots}"
    );

    // The diff's patch, applied to the reset workspace, reproduces every
    // text change (and only those).
    let patch_file = host_dir.path().join("changes.patch");
    std::fs::write(&patch_file, diff["patch"].as_str().unwrap()).unwrap();
    let text = ws.ok(
        &["patch", "apply"],
        &["--patch-file", patch_file.to_str().unwrap()],
    );
    let fields = summary(
        text.trim_end(),
        "[workspace-patch]",
        &[
            "workspace_id",
            "total",
            "added",
            "modified",
            "deleted",
            "execution_mode",
        ],
    );
    assert_eq!(fields["total"], "6");
    assert_eq!(fields["added"], "1");
    assert_eq!(fields["deleted"], "2");
    assert_eq!(fields["modified"], "3");
    let again = ws.json(&["diff"], &[]);
    let with_patch: Vec<&Value> = entries
        .iter()
        .filter(|e| e["text_patch"].is_string())
        .collect();
    let again_entries: Vec<&Value> = again["entries"].as_array().unwrap().iter().collect();
    assert_eq!(again_entries, with_patch, "{again}");
    assert_eq!(ws.sh("./run.sh"), "run\n", "the mode change was applied");

    // Reset to the named snapshot.
    let text = ws.ok(&["reset"], &["--snapshot", "mid"]);
    assert!(
        text.starts_with("Workspace reset from snapshot: mid (named)\n"),
        "{text}"
    );
    assert!(
        text.ends_with("Command count: 0\nReset count: 2\n"),
        "{text}"
    );
    assert_eq!(
        ws.sh("cat new.txt; readlink link; cat d2f"),
        "brand new\nkeep.txt\nnow a file\n"
    );
}

// ---------------------------------------------------------------------------
// file list/read/write and patch apply
// ---------------------------------------------------------------------------

#[test]
fn file_tools_and_git_patches_apply_all_or_nothing() {
    let ws = general_ws();
    ws.sh("mkdir -p /workspace/files-t && cd /workspace/files-t && \
         printf '#!/bin/sh\\necho v1\\n' > tool.sh && chmod 755 tool.sh && \
         seq 1 1000 > big.txt && ln -s big.txt big-link && mkdir -p deep/er");

    // write: a new file is 0644 (parents created), an existing file keeps
    // its mode, the text is written exactly.
    let text = ws.ok(
        &["file", "write"],
        &["files-t/new/a/b.txt", "--text", "hello\n"],
    );
    let fields = summary(
        text.trim_end(),
        "[workspace-file-write]",
        &["workspace_id", "path", "bytes_written", "execution_mode"],
    );
    assert_eq!(fields["path"], "/workspace/files-t/new/a/b.txt");
    assert_eq!(fields["bytes_written"], "6");
    let host_dir = tempdir("pyro-files-");
    let script = host_dir.path().join("tool.sh");
    std::fs::write(&script, "#!/bin/sh\necho v2\n").unwrap();
    ws.ok(
        &["file", "write"],
        &["files-t/tool.sh", "--text-file", script.to_str().unwrap()],
    );
    assert_eq!(
        ws.sh(
            "cd files-t && stat -c '%a %s %n' new/a/b.txt tool.sh && ./tool.sh && cat new/a/b.txt"
        ),
        "644 6 new/a/b.txt\n755 18 tool.sh\nv2\nhello\n"
    );
    clear_error(&ws.run(&["file", "write"], &["../etc/evil", "--text", "x"]));
    clear_error(&ws.run(&["file", "write"], &["/etc/evil", "--text", "x"]));
    clear_error(&ws.run(&["file", "write"], &["files-t/deep", "--text", "x"]));

    // list: one level, or recursive; entries have type, size, mode, target.
    let listing = ws.json(&["file", "list"], &["files-t"]);
    assert_eq!(listing["path"], "/workspace/files-t");
    assert_eq!(listing["recursive"], false);
    let paths: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/workspace/files-t/big-link",
            "/workspace/files-t/big.txt",
            "/workspace/files-t/deep",
            "/workspace/files-t/new",
            "/workspace/files-t/tool.sh",
        ]
    );
    let text = ws.ok(&["file", "list"], &["files-t"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Workspace path: /workspace/files-t (recursive=no)"
    );
    assert!(
        lines.contains(&"/workspace/files-t/big-link [symlink] size=7 mode=0777 -> big.txt"),
        "{text}"
    );
    assert!(
        lines.contains(&"/workspace/files-t/tool.sh [file] size=18 mode=0755"),
        "{text}"
    );
    assert!(
        lines.contains(&"/workspace/files-t/deep [directory] size=0 mode=0755"),
        "{text}"
    );
    let recursive = ws.json(&["file", "list"], &["files-t", "--recursive"]);
    let all: Vec<&str> = recursive["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for path in [
        "/workspace/files-t/deep/er",
        "/workspace/files-t/new/a",
        "/workspace/files-t/new/a/b.txt",
    ] {
        assert!(all.contains(&path), "{path} missing: {all:?}");
    }
    let empty = ws.ok(&["file", "list"], &["files-t/deep/er"]);
    assert_eq!(
        empty,
        "Workspace path: /workspace/files-t/deep/er (recursive=no)\nNo workspace entries found.\n"
    );

    // read: content on stdout, summary on stderr; --max-bytes truncates.
    let output = ws.run(&["file", "read"], &["files-t/new/a/b.txt"]);
    assert_success(&output, &["file read"]);
    assert_eq!(stdout(&output), "hello\n");
    assert_eq!(
        stderr(&output).trim_end(),
        format!(
            "[workspace-file-read] workspace_id={} path=/workspace/files-t/new/a/b.txt size_bytes=6 truncated=no",
            ws.id()
        )
    );
    let read = ws.json(&["file", "read"], &["files-t/big.txt", "--max-bytes", "10"]);
    assert_eq!(read["content"], "1\n2\n3\n4\n5\n");
    assert_eq!(read["truncated"], true);
    assert_eq!(read["size_bytes"], 3893);
    let output = ws.run(
        &["file", "read"],
        &["files-t/big.txt", "--max-bytes", "4", "--content-only"],
    );
    assert_eq!(output.stdout, b"1\n2\n");
    let output = ws.run(&["file", "read"], &["files-t/big.txt", "--max-bytes", "4"]);
    assert!(stderr(&output).contains(" size_bytes=3893 truncated=yes"));
    clear_error(&ws.run(&["file", "read"], &["files-t/deep"]));
    clear_error(&ws.run(&["file", "read"], &["files-t/missing"]));
    clear_error(&ws.run(&["file", "read"], &["/etc/passwd"]));

    // patch apply with real `git diff` output: a modification, a new file,
    // a deleted file, and a file without a final newline.
    let repo = host_dir.path().join("repo");
    let base = repo.join("files-t/git");
    write_file(&base.join("mod.txt"), b"alpha\nbeta\ngamma\n", 0o644);
    write_file(&base.join("gone.txt"), b"remove me\n", 0o644);
    write_file(
        &base.join("nonl.txt"),
        b"first\nlast without newline",
        0o644,
    );
    write_file(&base.join("keep.txt"), b"untouched\n", 0o644);
    ws.ok(
        &["sync", "push"],
        &[base.to_str().unwrap(), "--dest", "files-t/git"],
    );
    host("git", &["init", "-q"], &repo);
    host("git", &["add", "-A"], &repo);
    host(
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "base",
        ],
        &repo,
    );
    std::fs::write(base.join("mod.txt"), "alpha\nBETA\ngamma\n").unwrap();
    std::fs::remove_file(base.join("gone.txt")).unwrap();
    std::fs::write(base.join("nonl.txt"), "first\nlast still without newline").unwrap();
    write_file(&base.join("sub/added.txt"), b"added line\n", 0o644);
    host("git", &["add", "-N", "files-t/git/sub/added.txt"], &repo);
    let patch = host("git", &["diff"], &repo);
    assert!(patch.contains("new file mode 100644") && patch.contains("deleted file mode 100644"));
    assert!(patch.contains("\\ No newline at end of file") && patch.contains("\nindex "));
    let patch_file = host_dir.path().join("git.patch");
    std::fs::write(&patch_file, &patch).unwrap();

    // All or nothing: the same changes plus one file whose context does
    // not match change nothing.
    let bad = format!(
        "{patch}diff --git a/files-t/git/keep.txt b/files-t/git/keep.txt\n\
         --- a/files-t/git/keep.txt\n+++ b/files-t/git/keep.txt\n@@ -1 +1 @@\n-not what is there\n+x\n"
    );
    let before = fingerprint(&ws, "files-t/git");
    let message = clear_error(&ws.run(&["patch", "apply"], &["--patch", &bad]));
    assert!(message.contains("keep.txt"), "{message}");
    assert_eq!(
        fingerprint(&ws, "files-t/git"),
        before,
        "a refused patch changed files"
    );
    // Two files, the second does not apply.
    let half = "--- a/files-t/git/mod.txt\n+++ b/files-t/git/mod.txt\n@@ -1,3 +1,3 @@\n alpha\n-beta\n+BETA\n gamma\n\
                --- a/files-t/git/keep.txt\n+++ b/files-t/git/keep.txt\n@@ -1 +1 @@\n-wrong\n+x\n";
    // (`--patch=` because the text starts with `---`.)
    clear_error(&ws.run(&["patch", "apply"], &[&format!("--patch={half}")]));
    assert_eq!(
        fingerprint(&ws, "files-t/git"),
        before,
        "a refused patch changed files"
    );
    clear_error(&ws.run(
        &["patch", "apply"],
        &["--patch=--- /dev/null\n+++ b/../etc/x\n@@ -0,0 +1 @@\n+x\n"],
    ));

    let text = ws.ok(
        &["patch", "apply"],
        &["--patch-file", patch_file.to_str().unwrap()],
    );
    let fields = summary(
        text.trim_end(),
        "[workspace-patch]",
        &[
            "workspace_id",
            "total",
            "added",
            "modified",
            "deleted",
            "execution_mode",
        ],
    );
    assert_eq!(
        (
            &*fields["total"],
            &*fields["added"],
            &*fields["modified"],
            &*fields["deleted"]
        ),
        ("4", "1", "2", "1")
    );
    for name in ["mod.txt", "nonl.txt", "keep.txt", "sub/added.txt"] {
        let read = ws.json(&["file", "read"], &[&format!("files-t/git/{name}")]);
        assert_eq!(
            read["content"].as_str().unwrap(),
            std::fs::read_to_string(base.join(name)).unwrap(),
            "{name}"
        );
    }
    assert_eq!(
        ws.sh("test ! -e files-t/git/gone.txt && stat -c %a files-t/git/sub/added.txt"),
        "644\n"
    );
    // Applying it twice is refused, and changes nothing.
    let after = fingerprint(&ws, "files-t/git");
    clear_error(&ws.run(
        &["patch", "apply"],
        &["--patch-file", patch_file.to_str().unwrap()],
    ));
    assert_eq!(fingerprint(&ws, "files-t/git"), after);
}

// ---------------------------------------------------------------------------
// snapshots
// ---------------------------------------------------------------------------

#[test]
fn snapshots_are_created_listed_and_deleted_and_baseline_is_reserved() {
    let ws = general_ws();
    ws.sh("mkdir -p /workspace/snap-t && echo one > /workspace/snap-t/one.txt");
    let created = ws.json(&["snapshot", "create"], &["snap-t1"]);
    assert_eq!(created["snapshot_name"], "snap-t1");
    assert_eq!(created["kind"], "named");
    assert_eq!(created["deletable"], true);

    let message = clear_error(&ws.run(&["snapshot", "create"], &["snap-t1"]));
    assert!(message.contains("already exists"), "{message}");
    let message = clear_error(&ws.run(&["snapshot", "create"], &["baseline"]));
    assert!(message.contains("baseline"), "{message}");
    for bad in [".dot", "has space", "a/b", &"x".repeat(65)] {
        clear_error(&ws.run(&["snapshot", "create"], &[bad]));
    }

    let list = ws.json(&["snapshot", "list"], &[]);
    let snapshots = list["snapshots"].as_array().unwrap();
    assert_eq!(snapshots[0]["snapshot_name"], "baseline");
    assert_eq!(snapshots[0]["kind"], "baseline");
    assert_eq!(snapshots[0]["deletable"], false);
    assert!(snapshots
        .iter()
        .any(|s| s["snapshot_name"] == "snap-t1" && s["kind"] == "named"));
    let text = ws.ok(&["snapshot", "list"], &[]);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("baseline [baseline] ") && first.ends_with(" deletable=no"),
        "{text}"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("snap-t1 [named] ") && l.ends_with(" deletable=yes")));

    let message = clear_error(&ws.run(&["snapshot", "delete"], &["baseline"]));
    assert!(message.contains("baseline"), "{message}");
    assert_eq!(
        ws.ok(&["snapshot", "delete"], &["snap-t1"]),
        "Deleted workspace snapshot: snap-t1\n"
    );
    let message = clear_error(&ws.run(&["snapshot", "delete"], &["snap-t1"]));
    assert!(message.contains("snap-t1"), "{message}");
    let list = ws.json(&["snapshot", "list"], &[]);
    assert!(!list.to_string().contains("snap-t1"));
    assert!(list.to_string().contains("\"baseline\""));
    // A deleted name can be used again.
    ws.ok(&["snapshot", "create"], &["snap-t1"]);
    ws.ok(&["snapshot", "delete"], &["snap-t1"]);
}

// ---------------------------------------------------------------------------
// stop, start, offline disk tools
// ---------------------------------------------------------------------------

#[test]
fn stop_start_and_offline_disk_tools() {
    let pyro = pyro();
    let host_dir = tempdir("pyro-disk-");
    write_file(
        &host_dir.path().join("seed/src/note.txt"),
        b"disk note\n",
        0o644,
    );
    let ws = Ws::create(
        pyro,
        &[
            "--seed-path",
            host_dir.path().join("seed").to_str().unwrap(),
        ],
    );
    ws.sh("seq 1 500 > /workspace/src/numbers.txt; ln -s note.txt /workspace/src/link; echo etc-change > /etc/pyro-disk-test");

    // Offline tools refuse a started workspace.
    let out_img = host_dir.path().join("disk.ext4");
    for (sub, rest) in [
        (&["disk", "list"][..], &[][..]),
        (&["disk", "read"], &["src/note.txt"]),
        (
            &["disk", "export"],
            &["--output", out_img.to_str().unwrap()],
        ),
    ] {
        let message = clear_error(&ws.run(sub, rest));
        assert!(message.contains("stopped"), "{sub:?}: {message}");
    }
    assert!(!out_img.exists());

    // stop.
    let text = ws.ok(&["stop"], &[]);
    assert!(
        text.starts_with(&format!("Stopped workspace ID: {}\n", ws.id())),
        "{text}"
    );
    assert!(text.contains("\nState: stopped\n"), "{text}");
    assert_eq!(ws.state(), "stopped");
    assert!(ws.vmm_pid().is_none(), "a stopped workspace has no VMM");

    // Live tools refuse a stopped workspace.
    let message = clear_error(&ws.exec("true"));
    assert!(message.contains("stopped"), "{message}");
    clear_error(&ws.run(&["file", "read"], &["src/note.txt"]));
    clear_error(&ws.run(
        &["sync", "push"],
        &[host_dir.path().join("seed").to_str().unwrap()],
    ));

    // disk list / read / export.
    let listing = ws.json(&["disk", "list"], &["--recursive"]);
    assert_eq!(listing["path"], "/workspace");
    let entries: BTreeMap<String, Value> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    assert_eq!(entries["/workspace/src"]["artifact_type"], "directory");
    assert_eq!(entries["/workspace/src/note.txt"]["size_bytes"], 10);
    assert_eq!(
        entries["/workspace/src/numbers.txt"]["artifact_type"],
        "file"
    );
    assert_eq!(entries["/workspace/src/link"]["link_target"], "note.txt");
    let text = ws.ok(&["disk", "list"], &["src"]);
    assert!(
        text.starts_with("Workspace disk path: /workspace/src (recursive=no)\n"),
        "{text}"
    );
    assert!(
        text.contains("/workspace/src/note.txt [file] size=10 mode=0644\n"),
        "{text}"
    );

    let output = ws.run(&["disk", "read"], &["src/note.txt"]);
    assert_success(&output, &["disk read"]);
    assert_eq!(stdout(&output), "disk note\n");
    assert_eq!(
        stderr(&output).trim_end(),
        format!(
            "[workspace-disk-read] workspace_id={} path=/workspace/src/note.txt size_bytes=10 truncated=no",
            ws.id()
        )
    );
    let read = ws.json(&["disk", "read"], &["src/numbers.txt", "--max-bytes", "6"]);
    assert_eq!(read["content"], "1\n2\n3\n");
    assert_eq!(read["truncated"], true);
    assert_eq!(read["size_bytes"], 1892);
    let read = ws.json(&["disk", "read"], &["/etc/pyro-disk-test"]);
    assert_eq!(read["content"], "etc-change\n");
    clear_error(&ws.run(&["disk", "read"], &["src/missing.txt"]));
    clear_error(&ws.run(&["disk", "read"], &["src"]));

    let text = ws.ok(
        &["disk", "export"],
        &["--output", out_img.to_str().unwrap()],
    );
    let fields = summary(
        text.trim_end(),
        "[workspace-disk-export]",
        &[
            "workspace_id",
            "output_path",
            "disk_format",
            "bytes_written",
        ],
    );
    assert_eq!(fields["disk_format"], "ext4");
    assert_eq!(
        fields["bytes_written"].parse::<u64>().unwrap(),
        std::fs::metadata(&out_img).unwrap().len()
    );
    let listing = host(
        "debugfs",
        &["-R", "ls -l /", out_img.to_str().unwrap()],
        host_dir.path(),
    );
    assert!(listing.contains("lost+found"), "{listing}");
    let message = clear_error(&ws.run(
        &["disk", "export"],
        &["--output", out_img.to_str().unwrap()],
    ));
    assert!(message.contains("already exists"), "{message}");

    // start: the same disk, files kept.
    let text = ws.ok(&["start"], &[]);
    assert!(
        text.starts_with(&format!("Started workspace ID: {}\n", ws.id())),
        "{text}"
    );
    assert!(text.contains("\nState: started\n"), "{text}");
    assert_eq!(
        ws.sh(
            "cat src/note.txt; wc -l < src/numbers.txt; readlink src/link; cat /etc/pyro-disk-test"
        ),
        "disk note\n500\nnote.txt\netc-change\n"
    );
    clear_error(&ws.run(&["disk", "list"], &[]));
}

// ---------------------------------------------------------------------------
// update, list, status
// ---------------------------------------------------------------------------

#[test]
fn update_list_and_status() {
    let ws = general_ws();
    let before = ws.status();
    assert_eq!(before["name"], "general");

    let text = ws.ok(
        &["update"],
        &[
            "--name",
            "api service",
            "--label",
            "team=infra",
            "--label",
            "env=dev",
        ],
    );
    assert!(text.contains("\nName: api service\n"), "{text}");
    assert!(text.contains("\nLabels: env=dev, team=infra\n"), "{text}");
    let listed = ws.pyro.ok(&["workspace", "list"]);
    let line = listed
        .lines()
        .find(|l| l.contains(&format!("workspace_id={} ", ws.id())))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains(" name='api service' "), "{line}");
    assert!(line.contains(" labels=env=dev,team=infra "), "{line}");
    assert!(
        line.contains(" state=started environment=debian:12 "),
        "{line}"
    );
    let list = ws.pyro.json(&["workspace", "list", "--json"]);
    let entry = list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workspace_id"] == ws.id())
        .unwrap()
        .clone();
    assert_eq!(
        entry["labels"],
        serde_json::json!({"env": "dev", "team": "infra"})
    );

    let updated = ws.json(&["update"], &["--clear-name", "--clear-label", "env"]);
    assert!(updated["name"].is_null());
    assert_eq!(updated["labels"], serde_json::json!({"team": "infra"}));

    // TTL extension counts from now.
    let old_expiry = ws.status()["expires_at"].as_str().unwrap().to_owned();
    let updated = ws.json(&["update"], &["--ttl-seconds", "7200"]);
    assert_eq!(updated["ttl_seconds"], 7200);
    let new_expiry = updated["expires_at"].as_str().unwrap();
    assert!(
        new_expiry > old_expiry.as_str(),
        "{old_expiry} -> {new_expiry}"
    );

    let message = clear_error(&ws.run(&["update"], &[]));
    assert!(message.contains("nothing to update"), "{message}");
    let message = clear_error(&ws.run(&["update"], &["--label", "bad key=1"]));
    assert!(message.contains("label key"), "{message}");
    usage_error(&ws.run(&["update"], &["--label", "novalue"]));
    clear_error(&ws.run(&["update"], &["--name", "two\nlines"]));

    let text = ws.ok(&["status"], &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("Workspace ID: {}", ws.id()));
    for expected in [
        "Labels: team=infra",
        "Environment: debian:12",
        "State: started",
        "Workspace: /workspace",
        "Network policy: off",
        "Workspace seed: empty",
        "Execution mode: guest_vsock",
        "Resources: 1 vCPU / 1024 MiB",
        "Disk: 4096 MiB",
        "On failure: restart",
    ] {
        assert!(lines.contains(&expected), "no {expected:?} in:\n{text}");
    }
    assert!(!text.contains("\nName: "), "{text}");
    ws.ok(&["update"], &["--name", "general"]);
}

// ---------------------------------------------------------------------------
// Failure policies (each kills its workspace's VMM)
// ---------------------------------------------------------------------------

/// Kills the workspace's VMM; returns the killed pid.
fn kill_vmm(ws: &Ws<'_>) -> u32 {
    let pid = ws.vmm_pid().expect("the workspace has a VMM");
    sigkill(pid);
    pid
}

/// Waits until the workspace is started on a VMM other than `old`.
fn wait_rebooted(ws: &Ws<'_>, old: u32) -> Value {
    wait_for("the workspace to run again on a new VMM", BOOT, |last| {
        let status = ws.status();
        let pid = ws.vmm_pid();
        *last = format!("state={} pid={pid:?}", status["state"]);
        (status["state"] == "started" && pid.is_some_and(|p| p != old)).then_some(status)
    })
}

#[test]
fn on_failure_restart_reboots_on_the_same_disk() {
    let ws = Ws::create(pyro(), &[]);
    assert_eq!(ws.status()["on_failure"], "restart", "the default policy");
    ws.sh("echo kept > /workspace/kept.txt; echo outside > /etc/pyro-kept; sync");
    let old = kill_vmm(&ws);
    let status = wait_rebooted(&ws, old);
    assert_eq!(status["reset_count"], 0);
    assert_eq!(ws.sh("cat kept.txt /etc/pyro-kept"), "kept\noutside\n");
    // It keeps working, and keeps its history.
    let logs = ws.json(&["logs"], &[]);
    assert_eq!(logs["count"], 2);
}

#[test]
fn on_failure_reset_restores_the_baseline() {
    let host_dir = tempdir("pyro-reset-policy-");
    write_file(&host_dir.path().join("seed/base.txt"), b"baseline\n", 0o644);
    let ws = Ws::create(
        pyro(),
        &[
            "--on-failure",
            "reset",
            "--seed-path",
            host_dir.path().join("seed").to_str().unwrap(),
        ],
    );
    ws.sh(
        "echo changed > base.txt; echo extra > extra.txt; echo pkg > /usr/local/bin/pyro-pkg; sync",
    );
    let old = kill_vmm(&ws);
    let status = wait_for("the reset after the VMM died", BOOT, |last| {
        let status = ws.status();
        let pid = ws.vmm_pid();
        *last = format!("{status} pid={pid:?}");
        (status["state"] == "started"
            && status["reset_count"] == 1
            && pid.is_some_and(|p| p != old))
        .then_some(status)
    });
    assert_eq!(status["command_count"], 0);
    assert_eq!(
        ws.sh("cat base.txt; ls; test ! -e /usr/local/bin/pyro-pkg && echo pkg-gone"),
        "baseline\nbase.txt\npkg-gone\n"
    );
}

#[test]
fn on_failure_stop_leaves_it_stopped_with_the_error() {
    let ws = Ws::create(pyro(), &["--on-failure", "stop"]);
    ws.sh("echo kept > kept.txt; sync");
    kill_vmm(&ws);
    let status = wait_for("the workspace to be marked stopped", BOOT, |last| {
        let status = ws.status();
        *last = status.to_string();
        (status["state"] == "stopped").then_some(status)
    });
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "no last_error: {status}");
    assert!(ws.vmm_pid().is_none(), "a stopped workspace has no VMM");
    let text = ws.ok(&["status"], &[]);
    assert!(text.contains(&format!("\nLast error: {error}")), "{text}");
    // Its disk is readable offline, and it starts again with its files.
    assert_eq!(
        ws.json(&["disk", "read"], &["kept.txt"])["content"],
        "kept\n"
    );
    ws.ok(&["start"], &[]);
    assert_eq!(ws.sh("cat kept.txt"), "kept\n");
}

#[test]
fn acknowledged_changes_survive_a_vmm_crash() {
    // Changes that pyro reported as done must be on the disk when the VMM
    // dies right after (no `sync` by the user).
    let host_dir = tempdir("pyro-durable-");
    write_file(&host_dir.path().join("push/pushed.txt"), b"pushed\n", 0o644);
    let ws = Ws::create(pyro(), &["--on-failure", "stop"]);
    ws.ok(&["file", "write"], &["written.txt", "--text", "written\n"]);
    ws.ok(
        &["sync", "push"],
        &[
            host_dir.path().join("push").to_str().unwrap(),
            "--dest",
            "pushed",
        ],
    );
    ws.ok(
        &["patch", "apply"],
        &["--patch=--- /dev/null\n+++ b/patched.txt\n@@ -0,0 +1 @@\n+patched\n"],
    );
    kill_vmm(&ws);
    wait_for("the workspace to be marked stopped", BOOT, |last| {
        let state = ws.state();
        *last = state.clone();
        (state == "stopped").then_some(())
    });
    let mut lost = Vec::new();
    for (path, content) in [
        ("written.txt", "written\n"),
        ("pushed/pushed.txt", "pushed\n"),
        ("patched.txt", "patched\n"),
    ] {
        let output = ws.run(&["disk", "read"], &[path, "--json"]);
        if !output.status.success() || parse_json(&stdout(&output))["content"] != content {
            lost.push(path);
        }
    }
    assert!(lost.is_empty(), "lost after the VMM died: {lost:?}");
}

// ---------------------------------------------------------------------------
// Limits, TTL reaper, supervisor restarts (own installation)
// ---------------------------------------------------------------------------

/// The live supervisor processes of this installation (found by the
/// runtime directory in their environment).
fn supervisor_processes(pyro: &Pyro) -> Vec<u32> {
    pyro.supervisor_processes()
}

fn supervisor_pid(pyro: &Pyro) -> u32 {
    let status = pyro.json(&["supervisor", "status", "--json"]);
    assert_eq!(status["running"], true, "{status}");
    let pid = status["health"]["pid"].as_u64().unwrap() as u32;
    // Make sure it is this installation's supervisor before killing it.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let needle = format!("PYRO_RUNTIME_DIR={}", pyro.runtime_dir().display());
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes()),
        "pid {pid} is not this installation's supervisor"
    );
    pid
}

fn wait_started(pyro: &Pyro, id: &str) {
    wait_for(&format!("workspace {id} to be started"), BOOT, |last| {
        let status = pyro.json(&["workspace", "status", id, "--json"]);
        *last = status["state"].to_string();
        (status["state"] == "started").then_some(())
    });
}

#[test]
fn vm_limit_ttl_reaper_and_supervisor_restarts() {
    let pyro = Pyro::with_env(&[("PYRO_MAX_RUNNING_VMS", "2")]);
    let create = |extra: &[&str]| {
        let mut args = vec!["workspace", "create", "debian:12", "--id-only"];
        args.extend_from_slice(extra);
        pyro.run(&args)
    };

    // A short-lived workspace, reaped at the end of this test.
    let ttl_created = Instant::now();
    let output = create(&["--ttl-seconds", "60"]);
    assert_success(&output, &["create --ttl-seconds 60"]);
    let short = stdout(&output).trim().to_owned();
    let output = create(&[]);
    assert_success(&output, &["create"]);
    let b = stdout(&output).trim().to_owned();

    // A third running workspace is refused, and nothing is left of it.
    let message = clear_error(&create(&[]));
    assert!(message.contains('2'), "the limit is named: {message}");
    let refused = pyro.run(&["workspace", "create", "debian:12", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let value = parse_json(&stdout(&refused));
    assert_eq!(value["error"]["code"], "limit_reached", "{value}");
    let mut listed = listed_ids(&pyro);
    listed.sort();
    let mut expected = vec![short.clone(), b.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let mut dirs = workspace_dirs(&pyro);
    dirs.sort();
    assert_eq!(dirs, expected, "a refused create left files");

    // A stopped workspace does not count.
    pyro.ok(&["workspace", "stop", &b]);
    let output = create(&[]);
    assert_success(&output, &["create after a stop"]);
    let c = stdout(&output).trim().to_owned();
    // The supervisor's health counts the two running VMs (checked at the end).
    let health = pyro.json(&["supervisor", "status", "--json"]);
    let reported_running = health["health"]["running_vms"].clone();
    // ... and cannot start while two others run.
    let message = clear_error(&pyro.run(&["workspace", "start", &b]));
    assert!(message.contains('2'), "{message}");
    assert_eq!(
        pyro.json(&["workspace", "status", &b, "--json"])["state"],
        "stopped"
    );

    // Supervisor stop, then any command: the workspace comes back with its
    // files (written without `sync`: a clean stop flushes them).
    let exec = |id: &str, script: &str| {
        let output = pyro.run(&["workspace", "exec", id, "--", "sh", "-c", script]);
        assert_success(&output, &["exec", script]);
        stdout(&output)
    };
    exec(&c, "echo before-stop > kept.txt");
    pyro.ok(&["supervisor", "stop"]);
    // `supervisor stop` should return once the supervisor is gone; note
    // whether it did (checked at the end), then let it finish so the rest
    // of the test does not depend on that race.
    let left_running = supervisor_processes(&pyro);
    wait_for("the stopped supervisor to exit", BOOT, |last| {
        let left = supervisor_processes(&pyro);
        *last = format!("{left:?}");
        left.is_empty().then_some(())
    });
    let status = pyro.json(&["workspace", "status", &c, "--json"]);
    assert_ne!(status["state"], "stopped", "{status}");
    wait_started(&pyro, &c);
    assert_eq!(exec(&c, "cat kept.txt"), "before-stop\n");
    assert_eq!(
        pyro.json(&["workspace", "status", &b, "--json"])["state"],
        "stopped",
        "a stopped workspace stays stopped"
    );

    // kill -9 of the supervisor: the VMs are still alive and are adopted.
    exec(&c, "echo before-kill > kept2.txt; sync");
    let vmm_before = vmm_pid(&pyro, &c).expect("c runs");
    sigkill(supervisor_pid(&pyro));
    // kill(2) returns before the process is gone; a command sent meanwhile
    // could reach the dying supervisor.
    wait_for("the killed supervisor to be gone", BOOT, |last| {
        let left = supervisor_processes(&pyro);
        *last = format!("{left:?}");
        left.is_empty().then_some(())
    });
    wait_started(&pyro, &c);
    assert_eq!(
        exec(&c, "cat kept.txt kept2.txt"),
        "before-stop\nbefore-kill\n"
    );
    let vmm_after = vmm_pid(&pyro, &c);

    // The reaper deletes the short-lived workspace in the background: wait
    // by looking at the host only (no API calls that could reap lazily).
    let reaped = wait_for(
        "the reaper to delete the expired workspace",
        Duration::from_secs(75).saturating_sub(ttl_created.elapsed()) + Duration::from_secs(5),
        |last| {
            let dirs = workspace_dirs(&pyro);
            let vmm = vmm_pid(&pyro, &short);
            *last = format!("dirs={dirs:?} vmm={vmm:?}");
            (!dirs.contains(&short) && vmm.is_none()).then_some(ttl_created.elapsed())
        },
    );
    assert!(
        reaped >= Duration::from_secs(59),
        "reaped too early: {reaped:?}"
    );
    assert!(!listed_ids(&pyro).contains(&short));
    let message = clear_error(&pyro.run(&["workspace", "status", &short]));
    assert!(message.contains(&short), "{message}");

    // Checked last, so the steps above run either way: `supervisor stop`
    // returns only once the supervisor is gone (else the next command races
    // it and fails), a VM that outlived a killed supervisor is adopted (not
    // booted again), and `supervisor status` counts workspace VMs.
    let mut defects = Vec::new();
    if !left_running.is_empty() {
        defects.push(format!(
            "`pyro supervisor stop` returned while the supervisor still ran: {left_running:?}"
        ));
    }
    if vmm_after != Some(vmm_before) {
        defects.push(format!(
            "the running VM was not adopted after the supervisor was killed: VMM {vmm_before} before, {vmm_after:?} after"
        ));
    }
    if reported_running != 2 {
        defects.push(format!(
            "`pyro supervisor status --json` reports health.running_vms={reported_running} with two workspaces running"
        ));
    }
    assert!(defects.is_empty(), "{defects:#?}");
}

#[test]
fn supervisor_stop_during_a_boot_leaves_no_vm_behind() {
    let pyro = Pyro::new();
    let id = pyro
        .ok(&["workspace", "create", "debian:12", "--id-only"])
        .trim()
        .to_owned();
    let wait_gone = |what: &str| {
        wait_for(what, BOOT, |last| {
            let left = supervisor_processes(&pyro);
            *last = format!("{left:?}");
            left.is_empty().then_some(())
        });
    };
    pyro.ok(&["supervisor", "stop"]);
    wait_gone("the supervisor to exit");
    // The next command starts a supervisor, which boots the workspace again;
    // stop that supervisor while the boot is under way.
    let status = pyro.json(&["workspace", "status", &id, "--json"]);
    assert_ne!(status["state"], "stopped", "{status}");
    pyro.ok(&["supervisor", "stop"]);
    wait_gone("the second supervisor to exit");
    // Checked at the end, so the rest runs either way (the next supervisor
    // kills leftovers, and so does the harness).
    let left = pyro.wait_for_no_vm_processes(Duration::from_secs(10));
    // The workspace comes back, on exactly one VM.
    wait_started(&pyro, &id);
    let vmms: Vec<(u32, String)> = pyro
        .own_processes()
        .into_iter()
        .filter(|(_, cmdline)| cmdline.contains("qemu-system"))
        .collect();
    assert_eq!(vmms.len(), 1, "{vmms:?}");
    assert!(
        left.is_empty(),
        "VM processes outlived `pyro supervisor stop` during a boot: {left:?}"
    );
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn bad_input_gives_one_clear_error() {
    let pyro = pyro();
    let unknown = "0123456789ab";
    for args in [
        &["workspace", "status", unknown][..],
        &["workspace", "exec", unknown, "--", "true"],
        &["workspace", "delete", unknown],
        &["workspace", "logs", unknown],
        &["workspace", "diff", unknown],
        &["workspace", "stop", unknown],
        &["workspace", "start", unknown],
        &["workspace", "reset", unknown],
        &["workspace", "snapshot", "list", unknown],
        &["workspace", "file", "list", unknown],
        &["workspace", "disk", "list", unknown],
        &["workspace", "update", unknown, "--name", "x"],
    ] {
        let message = clear_error(&pyro.run(args));
        assert_eq!(
            message,
            format!("workspace '{unknown}' does not exist"),
            "{args:?}"
        );
    }
    let output = pyro.run(&["workspace", "status", unknown, "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let value = parse_json(&stdout(&output));
    assert_eq!(value["ok"], false);
    assert_eq!(value["error"]["code"], "unknown_workspace");

    // Labels.
    usage_error(&pyro.run(&["workspace", "create", "debian:12", "--label", "bad"]));
    let message =
        clear_error(&pyro.run(&["workspace", "create", "debian:12", "--label", "bad key=1"]));
    assert!(message.contains("label key"), "{message}");
    let message = clear_error(&pyro.run(&[
        "workspace",
        "create",
        "debian:12",
        "--label",
        "a=1",
        "--label",
        "a=2",
    ]));
    assert!(message.contains("twice"), "{message}");
    // Other create arguments.
    let message = clear_error(&pyro.run(&["workspace", "create", "debian:99"]));
    assert!(message.contains("unknown environment"), "{message}");
    let message = clear_error(&pyro.run(&[
        "workspace",
        "create",
        "debian:12",
        "--seed-path",
        "/nonexistent/pyro-seed",
    ]));
    assert!(message.contains("/nonexistent/pyro-seed"), "{message}");
    for (flag, value) in [
        ("--ttl-seconds", "5"),
        ("--mem-mib", "16"),
        ("--vcpu-count", "99"),
        ("--disk-mib", "1"),
    ] {
        clear_error(&pyro.run(&["workspace", "create", "debian:12", flag, value]));
    }
    usage_error(&pyro.run(&[
        "workspace",
        "create",
        "debian:12",
        "--on-failure",
        "explode",
    ]));
    usage_error(&pyro.run(&["workspace", "create", "debian:12", "--json", "--id-only"]));

    // Flags of a live workspace's commands.
    let ws = general_ws();
    let host_dir = tempdir("pyro-bad-");
    let text_file = host_dir.path().join("t.txt");
    std::fs::write(&text_file, "x").unwrap();
    usage_error(&ws.run(
        &["file", "write"],
        &[
            "bad-t.txt",
            "--text",
            "x",
            "--text-file",
            text_file.to_str().unwrap(),
        ],
    ));
    usage_error(&ws.run(&["file", "write"], &["bad-t.txt"]));
    usage_error(&ws.run(&["patch", "apply"], &[]));
    usage_error(&ws.run(&["exec"], &["true"]));
    usage_error(&ws.run(&["exec"], &[]));
    let message = clear_error(&ws.run(&["patch", "apply"], &["--patch", "this is not a patch"]));
    assert!(!message.is_empty());
    let big = host_dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(1024 * 1024 + 1)).unwrap();
    clear_error(&ws.run(
        &["file", "write"],
        &["bad-t.txt", "--text-file", big.to_str().unwrap()],
    ));
    assert_eq!(
        ws.exec("test -e bad-t.txt").status.code(),
        Some(1),
        "a refused write wrote"
    );

    // Snapshots.
    let message = clear_error(&ws.run(&["snapshot", "delete"], &["no-such-snapshot"]));
    assert!(message.contains("no-such-snapshot"), "{message}");
    let message = clear_error(&ws.run(&["diff"], &["--against", "no-such-snapshot"]));
    assert!(message.contains("no-such-snapshot"), "{message}");
}

//! Harness for pyro's end-to-end tests: real guests, the real supervisor,
//! the real CLI.
//!
//! Each [`Pyro`] is an isolated installation: its own data directory and
//! runtime directory (so its own supervisor), sharing only the environment
//! cache (`PYRO_CACHE_DIR`, default `~/.cache/pyro`) so environments are
//! built once per machine. The binaries are the ones built next to the test
//! executable (`target/<profile>/pyro`, `pyro-supervisor`) and the guest
//! binaries in `target/x86_64-unknown-linux-gnu/guest`; `scripts/test`
//! builds all of them.
//!
//! Dropping a [`Pyro`] stops its supervisor and then checks that no process
//! started for it (QEMU, the vsock sidecar) is still running.
//!
//! Prerequisites are checked, never skipped: a missing one fails the test
//! with the command that installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod guest;

/// An isolated pyro installation for one test.
#[derive(Debug)]
pub struct Pyro {
    data: tempfile::TempDir,
    runtime: PathBuf,
    bin_dir: PathBuf,
    guest_dir: PathBuf,
    env: Vec<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Pyro {
    /// A fresh installation; fails the test if prerequisites are missing.
    pub fn new() -> Self {
        let bin_dir = bin_dir();
        for binary in ["pyro", "pyro-supervisor"] {
            assert!(
                bin_dir.join(binary).is_file(),
                "{} is missing: build it with `cargo build --release -p pyro-cli -p pyro-supervisor` (scripts/test does)",
                bin_dir.join(binary).display()
            );
        }
        let guest_dir = guest_dir();
        for binary in ["pyro-init", "pyro-guest-agent"] {
            assert!(
                guest_dir.join(binary).is_file(),
                "{} is missing: build it with scripts/setup",
                guest_dir.join(binary).display()
            );
        }
        for program in [
            "qemu-system-x86_64",
            "vhost-device-vsock",
            "mkfs.ext4",
            "mmdebstrap",
        ] {
            assert!(
                find_program(program).is_some(),
                "{program} is not installed: run scripts/setup"
            );
        }
        let data = tempfile::Builder::new()
            .prefix("pyro-it-")
            .tempdir()
            .unwrap();
        // Unix socket paths are short: keep the runtime dir near the root.
        let runtime = PathBuf::from(format!(
            "/tmp/pit-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&runtime);
        Self {
            data,
            runtime,
            bin_dir,
            guest_dir,
            env: Vec::new(),
        }
    }

    /// A fresh installation whose commands (and so the supervisor they
    /// start) also get `vars`, e.g. `[("PYRO_MAX_RUNNING_VMS", "2")]`.
    pub fn with_env(vars: &[(&str, &str)]) -> Self {
        let mut pyro = Self::new();
        pyro.env = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        pyro
    }

    /// The data directory (`PYRO_HOME`).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The runtime directory (`PYRO_RUNTIME_DIR`).
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime
    }

    /// A `pyro` command with this installation's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin_dir.join("pyro"));
        command
            .args(args)
            .env("PYRO_HOME", self.data.path())
            .env("PYRO_RUNTIME_DIR", &self.runtime)
            .env("PYRO_SUPERVISOR_BIN", self.bin_dir.join("pyro-supervisor"))
            .env("PYRO_GUEST_DIR", &self.guest_dir)
            .env("PATH", test_path())
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        command
    }

    /// Runs `pyro args...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `pyro args...` and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "pyro {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `pyro args... --json`-style commands and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("pyro {args:?} printed invalid JSON ({e}):\n{stdout}"))
    }

    /// PIDs of live processes whose command line mentions this installation.
    pub fn own_processes(&self) -> Vec<(u32, String)> {
        let needle = self.runtime.display().to_string();
        processes_mentioning(&needle)
            .into_iter()
            .filter(|(_, cmdline)| !cmdline.contains("pyro-supervisor"))
            .collect()
    }

    /// Waits (bounded) until no process of this installation but the
    /// supervisor runs; returns the ones left.
    pub fn wait_for_no_vm_processes(&self, within: Duration) -> Vec<(u32, String)> {
        let deadline = Instant::now() + within;
        loop {
            let left = self.own_processes();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One installation shared by every test of a test binary.
///
/// Statics are never dropped, so the shared installation is torn down by an
/// `atexit` hook when the test binary exits: its supervisor is stopped, and
/// a VM process that outlived it fails the run (exit code 1).
pub fn shared() -> &'static Pyro {
    static SHARED: OnceLock<Pyro> = OnceLock::new();
    SHARED.get_or_init(|| {
        extern "C" fn tear_down() {
            if let Some(pyro) = SHARED.get() {
                let leaked = pyro.shut_down();
                if !leaked.is_empty() {
                    eprintln!(
                        "pyro-integration: processes outlived the shared supervisor: {leaked:?}"
                    );
                    // SAFETY: _exit is the only way to set the status from an
                    // atexit handler.
                    unsafe { libc::_exit(1) };
                }
            }
        }
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(tear_down);
        }
        Pyro::new()
    })
}

impl Pyro {
    /// This installation's supervisor processes (found by the runtime
    /// directory in their environment).
    pub fn supervisor_processes(&self) -> Vec<u32> {
        let needle = format!("PYRO_RUNTIME_DIR={}", self.runtime_dir().display());
        processes_mentioning("pyro-supervisor")
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .unwrap_or_default()
                    .split(|&b| b == 0)
                    .any(|var| var == needle.as_bytes())
            })
            .collect()
    }

    /// Kills this installation's supervisor with SIGKILL (its VMs keep
    /// running) and waits until it is gone.
    pub fn kill_supervisor(&self) {
        let running = self.supervisor_processes();
        assert!(!running.is_empty(), "no supervisor runs to kill");
        for pid in running {
            // SAFETY: kill(2) on this installation's supervisor.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        wait_for(
            "the killed supervisor to be gone",
            Duration::from_secs(60),
            |last| {
                let left = self.supervisor_processes();
                *last = format!("{left:?}");
                left.is_empty().then_some(())
            },
        );
    }

    /// Prints the supervisor log's last lines (without debug lines) to
    /// stderr, for a failing test's report.
    fn print_supervisor_log(&self) {
        const LINES: usize = 80;
        let path = self.data_dir().join("logs/supervisor.log");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DEBUG ")).collect();
        eprintln!("--- last lines of {} ---", path.display());
        for line in &lines[lines.len().saturating_sub(LINES)..] {
            eprintln!("{line}");
        }
        eprintln!("--- end of the supervisor log ---");
    }

    /// Stops the supervisor, kills and returns any VM process left, and
    /// removes the runtime directory.
    fn shut_down(&self) -> Vec<(u32, String)> {
        let _ = self.command(&["supervisor", "stop"]).output();
        let leaked = self.wait_for_no_vm_processes(Duration::from_secs(10));
        for (pid, _) in &leaked {
            // SAFETY: kill(2) on a pid we just saw; at worst ESRCH.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.runtime);
        let _ = std::fs::remove_dir_all(self.data.path());
        leaked
    }
}

impl Default for Pyro {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pyro {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_supervisor_log();
        }
        let leaked = self.shut_down();
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!("processes outlived the supervisor: {leaked:?}");
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, and returns that;
/// fails the test with `what` and the last observation if `within` passes
/// first. `check` gets the observation to report as its argument.
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

/// Live processes whose command line contains `needle`, with that line.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() {
            found.push((pid, cmdline));
        }
    }
    found
}

/// The directory holding the pyro binaries of this build.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_owned()
}

/// The guest binaries built by scripts/setup.
fn guest_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PYRO_GUEST_DIR") {
        return PathBuf::from(dir);
    }
    bin_dir().join("../x86_64-unknown-linux-gnu/guest")
}

fn test_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin")
}

/// Finds a program the way the supervisor will.
pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&test_path())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

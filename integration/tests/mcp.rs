//! `pyro mcp serve` end to end, driven by a client that is not ours: the
//! official Python MCP SDK, running `integration/mcp/mcp_e2e.py` (stdio and
//! streamable HTTP, real guests; see the script for what it checks).
//!
//! The SDK is installed once into a virtualenv under the target directory
//! (`target/tmp/mcp-venv`), from the pinned `integration/mcp/requirements.txt`,
//! and reinstalled when that file changes. That needs `python3` (>= 3.10, with
//! the venv module; `PYRO_TEST_PYTHON` overrides it) and PyPI the first time;
//! without them the test fails saying so.
//!
//! The script runs with this test's isolated pyro state (the environment of
//! [`Pyro::command`]); afterwards no workspace may be left, and dropping the
//! installation checks that no VM process outlived it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pyro_integration::{stderr, stdout, Pyro};

/// How long the whole script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp")
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

/// The virtualenv's python, with the pinned MCP SDK installed.
fn venv_python() -> PathBuf {
    let requirements_path = mcp_dir().join("requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path).unwrap();
    let pinned: Vec<&str> = requirements
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".pyro-requirements");
    if python.is_file() && std::fs::read_to_string(&marker).ok().as_deref() == Some(&requirements) {
        return python;
    }
    let base = std::env::var("PYRO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let _ = std::fs::remove_dir_all(&venv);
    let created = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {base} ({e}): the MCP test needs Python >= 3.10 (set PYRO_TEST_PYTHON)"
            )
        });
    assert!(
        created.status.success(),
        "`{base} -m venv {}` failed (on Debian: apt-get install python3-venv):\n{}",
        venv.display(),
        describe(&created)
    );
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--timeout",
            "60",
            "-r",
        ])
        .arg(&requirements_path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "pip could not install the Python MCP SDK ({}) from PyPI into {}.\n\
         The MCP end-to-end test needs PyPI once to create this virtualenv; \
         check the network or a PIP_INDEX_URL mirror, then rerun.\n{}",
        pinned.join(" "),
        venv.display(),
        describe(&installed)
    );
    std::fs::write(&marker, &requirements).unwrap();
    python
}

/// Runs `command` to completion, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes on threads so a chatty child never blocks.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            eprintln!("the MCP script ran longer than {timeout:?} and was killed");
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap_or_default(),
        stderr: err.join().unwrap().unwrap_or_default(),
    }
}

#[test]
fn the_python_mcp_sdk_drives_pyro_over_stdio_and_http() {
    let python = venv_python();
    let pyro = Pyro::new();
    let template = pyro.command(&[]);
    let workdir = tempfile::Builder::new()
        .prefix("pyro-mcp-e2e-")
        .tempdir()
        .unwrap();

    let mut script = Command::new(&python);
    script
        .arg(mcp_dir().join("mcp_e2e.py"))
        .arg("--pyro")
        .arg(template.get_program())
        .arg("--workdir")
        .arg(workdir.path().join("work"));
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let started = Instant::now();
    let output = run_bounded(script, SCRIPT_TIMEOUT);
    assert!(
        output.status.success(),
        "the MCP end-to-end script failed after {:?}\n{}",
        started.elapsed(),
        describe(&output)
    );
    println!("{}", stdout(&output));

    let left = pyro.json(&["workspace", "list", "--json"]);
    assert_eq!(
        left["count"], 0,
        "the MCP session left workspaces behind: {left}"
    );
}

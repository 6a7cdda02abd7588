//! `pyro run`, `pyro demo`, `pyro doctor` and `pyro env` end to end: real
//! guests booted by the real supervisor through the real CLI.
//!
//! Every `pyro run` boots a fresh VM by design, so these tests share one
//! installation (one supervisor) and run sequentially inside one test where
//! that keeps the suite fast without weakening anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pyro_integration::{stderr, stdout, Pyro};
use sha2::{Digest, Sha256};

fn pyro() -> &'static Pyro {
    pyro_integration::shared()
}

#[test]
fn run_follows_the_first_run_transcript() {
    let output = pyro().run(&["run", "debian:12", "--", "git", "--version"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "stderr:\n{err}");
    assert!(
        stdout(&output).starts_with("git version "),
        "stdout: {}",
        stdout(&output)
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("[run]")).collect();
    assert_eq!(lines.len(), 4, "stderr:\n{err}");
    assert_eq!(lines[0], "[run] phase=create environment=debian:12");
    assert!(
        lines[1].starts_with("[run] phase=start vm_id="),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("[run] phase=execute vm_id="),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(
            "[run] environment=debian:12 execution_mode=guest_vsock exit_code=0 duration_ms="
        ),
        "{}",
        lines[3]
    );
}

#[test]
fn exit_codes_pass_through_and_streams_stay_separate() {
    for (script, code) in [
        ("true", 0),
        ("false", 1),
        ("echo out; echo err >&2; exit 42", 42),
    ] {
        let output = pyro().run(&["run", "debian:12-base", "--", "sh", "-c", script]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{script}: {}",
            stderr(&output)
        );
        if code == 42 {
            assert_eq!(stdout(&output), "out\n");
            let err = stderr(&output);
            assert!(err.lines().any(|l| l == "err"), "stderr:\n{err}");
            assert!(!stdout(&output).contains("[run]"));
            assert!(err.contains("exit_code=42"));
        }
    }
}

#[test]
fn json_result_has_the_reference_shape() {
    let output = pyro().run(&[
        "run",
        "debian:12-base",
        "--json",
        "--",
        "sh",
        "-c",
        "printf hi; printf oops >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["stdout"], "hi");
    assert_eq!(value["stderr"], "oops");
    assert_eq!(value["exit_code"], 3);
    assert_eq!(value["environment"], "debian:12-base");
    assert_eq!(value["environment_version"], "1.0.0");
    assert_eq!(value["execution_mode"], "guest_vsock");
    assert_eq!(
        value["command"],
        "sh -c 'printf hi; printf oops >&2; exit 3'"
    );
    assert_eq!(value["cleanup"]["deleted"], true);
    assert_eq!(value["cleanup"]["reason"], "post_exec_cleanup");
    assert_eq!(value["cleanup"]["vm_id"], value["vm_id"]);
    assert!(value["duration_ms"].as_u64().is_some());
    assert!(
        stderr(&output).is_empty(),
        "json mode prints nothing on stderr: {}",
        stderr(&output)
    );
}

#[test]
fn timeout_kills_the_whole_process_group_with_exit_124() {
    // The background sleep is in the command's process group; if the group
    // were not killed, its output pipe would stay open and `pyro run` would
    // print "survived" after 4 seconds (the agent drains output for 0.5 s
    // after the main process ends, then stops waiting).
    let started = Instant::now();
    let output = pyro().run(&[
        "run",
        "debian:12-base",
        "--timeout-seconds",
        "2",
        "--",
        "sh",
        "-c",
        "(sleep 4; echo survived) & sleep 60",
    ]);
    assert_eq!(
        output.status.code(),
        Some(124),
        "stderr: {}",
        stderr(&output)
    );
    assert!(!stdout(&output).contains("survived"));
    assert!(stderr(&output).contains("timed_out=yes"));
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn sixty_four_mib_of_output_arrive_intact() {
    let size = 64 * 1024 * 1024;
    let mut child = pyro()
        .command(&[
            "run",
            "debian:12-base",
            "--timeout-seconds",
            "300",
            "--",
            "sh",
            "-c",
            &format!("yes pyro | head -c {size}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n;
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(total, size);
    let expected: Vec<u8> = b"pyro\n".iter().copied().cycle().take(size).collect();
    assert_eq!(
        hex::encode(hasher.finalize()),
        hex::encode(Sha256::digest(&expected))
    );
}

#[test]
fn non_utf8_bytes_are_passed_through_unchanged() {
    let output = pyro().run(&[
        "run",
        "debian:12-base",
        "--",
        "printf",
        "\\377\\376abc\\200\\n",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"\xff\xfeabc\x80\n");
}

#[test]
fn two_runs_at_once_both_succeed() {
    let spawn = |word: &str| {
        pyro()
            .command(&[
                "run",
                "debian:12-base",
                "--",
                "sh",
                "-c",
                &format!("echo {word}; hostname"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("first");
    let second = spawn("second");
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&first), "first\npyro\n");
    assert_eq!(stdout(&second), "second\npyro\n");
}

#[test]
fn bad_input_gives_clear_errors() {
    let output = pyro().run(&["run", "debian:99", "--", "true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown environment 'debian:99'; expected one of: debian:12, debian:12-base, debian:12-build"),
        "{}",
        stderr(&output)
    );

    let output = pyro().run(&["run", "debian:12", "--json", "--", "true"]);
    assert!(output.status.success());

    let output = pyro().run(&["run", "debian:12"]);
    assert_eq!(output.status.code(), Some(2), "no command is a usage error");
    assert!(stderr(&output).contains("COMMAND"));

    let output = pyro().run(&["run", "debian:12", "--mem-mib", "64", "--", "true"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("mem_mib must be between 256 and 32768"),
        "{}",
        stderr(&output)
    );

    let output = pyro().run(&["run", "debian:99", "--json", "--", "true"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["ok"], false);
    assert_eq!(value["error"]["code"], "unknown_environment");
}

#[test]
fn a_killed_vmm_gives_a_clean_error_and_leaves_nothing_behind() {
    let pyro = Pyro::new();
    let mut child = pyro
        .command(&["run", "debian:12-base", "--", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let executing = line.starts_with("[run] phase=execute");
        seen.push(line);
        if executing {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("[run] phase=execute")),
        "{seen:?}"
    );
    // Give the command a moment to start inside the guest, then kill QEMU.
    std::thread::sleep(Duration::from_millis(500));
    let qemu: Vec<u32> = pyro
        .own_processes()
        .into_iter()
        .filter(|(_, cmdline)| cmdline.contains("qemu-system"))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(
        qemu.len(),
        1,
        "exactly one qemu: {:?}",
        pyro.own_processes()
    );
    // SAFETY: kill(2) on the qemu we just found.
    unsafe {
        libc::kill(qemu[0] as i32, libc::SIGKILL);
    }
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "stderr: {rest:?}");
    let text = rest.join("\n");
    assert!(text.contains("stopped unexpectedly"), "{text}");
    assert!(
        text.contains("last guest console lines") || text.contains("hint:"),
        "{text}"
    );
    let left = pyro.wait_for_no_vm_processes(Duration::from_secs(10));
    assert!(left.is_empty(), "leaked: {left:?}");
    let vm_dirs = std::fs::read_dir(pyro.runtime_dir().join("vms"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(vm_dirs, 0, "the VM's runtime directory is removed");
}

#[test]
fn demo_prints_the_run_json() {
    let value = pyro().json(&["demo"]);
    assert_eq!(value["environment"], "debian:12");
    assert_eq!(value["exit_code"], 0);
    assert!(value["stdout"].as_str().unwrap().starts_with("git version"));
}

#[test]
fn doctor_reports_the_host() {
    let output = pyro().run(&["doctor"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("Platform: linux-x86_64"));
    assert!(text.contains("Runtime: PASS"));
    assert!(text.lines().any(|l| l.starts_with("KVM: exists=")));
    assert!(text.contains("Capabilities: vm_boot=yes guest_exec=yes"));
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        assert!(
            text.contains("usable=no"),
            "PVM must be reported as not usable:\n{text}"
        );
        assert!(text.contains("accel=tcg"));
    }
    let report = pyro().json(&["doctor", "--json"]);
    assert_eq!(report["runtime_ok"], true);
    assert!(report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "vhost-device-vsock" && t["found"] == true));
}

#[test]
fn env_commands_show_the_catalog() {
    let list = pyro().ok(&["env", "list"]);
    assert!(list.starts_with("Catalog version: "));
    for name in ["debian:12 [", "debian:12-base [", "debian:12-build ["] {
        assert!(list.lines().any(|l| l.starts_with(name)), "{list}");
    }
    let inspect = pyro().ok(&["env", "inspect", "debian:12-base"]);
    assert!(inspect.contains("Environment: debian:12-base"));
    assert!(inspect.contains("Version: 1.0.0"));
    assert!(inspect.contains("Distribution: debian 12"));
    let pulled = pyro().run(&["env", "pull", "debian:12-base"]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert!(stdout(&pulled).contains("Pulled: debian:12-base"));
    assert!(stdout(&pulled).contains("Installed: yes"));
    assert!(stderr(&pulled).contains("[pull] phase=ready environment=debian:12-base"));
    let json = pyro().json(&["env", "inspect", "debian:12", "--json"]);
    assert_eq!(json["name"], "debian:12");
    let pruned = pyro().json(&["env", "prune", "--json"]);
    assert!(pruned["count"].is_number());
    let unknown = pyro().run(&["env", "inspect", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("unknown environment 'nope'"));
}

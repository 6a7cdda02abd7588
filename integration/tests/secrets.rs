//! Workspace secrets end to end (issue 5): create-time definitions,
//! per-call `--secret-env`, guest-only materialization under
//! `/run/pyro-secrets`, and redaction of every answer, on real guests
//! through the real CLI.
//!
//! - [`transcript_secret_lines`] runs the first-run transcript's secret
//!   lines verbatim and checks the guest files (mode, tmpfs), the per-call
//!   mapping, reset, unknown names and delete.
//! - [`bad_secrets_are_refused_and_nothing_is_created`] needs no guest.
//! - [`secrets_are_redacted_everywhere_and_stored_only_in_the_secret_file`]
//!   has an installation of its own, so that after leaking two distinctive
//!   secrets through every channel (and every encoding the redactor knows)
//!   it can grep the whole state directory and find them only in the 0600
//!   secret file; a stopped workspace's exported disk image is grepped too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pyro_integration::guest::{
    assert_no_secret, assert_ok, clear_error, field, file_contains, files_containing, footer,
    one_line, parse_json, secret_forms, unique, wait_child, wait_for, Shell, Workspace, BOOT,
};
use pyro_integration::{stderr, stdout, Pyro};

const MINUTE: Duration = Duration::from_secs(60);

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The QEMU process of workspace `id`, if one runs.
fn vmm_pid(pyro: &Pyro, id: &str) -> Option<u32> {
    let disk = format!("/workspaces/{id}/");
    pyro.own_processes()
        .into_iter()
        .find(|(_, cmdline)| cmdline.contains("qemu-system") && cmdline.contains(&disk))
        .map(|(pid, _)| pid)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The guest's view of `/run/pyro-secrets`: the directory's mode and
/// owner, each file's name, mode and owner, and the file system type.
fn guest_secret_files(ws: &Workspace<'_>) -> String {
    ws.sh(
        "cd /run/pyro-secrets && stat -c '%n %a %U' . * && stat -f -c 'fs=%T' . && \
         test -z \"$(find /run/pyro-secrets -mindepth 1 ! -type f)\" && echo only-files",
    )
}

// ---------------------------------------------------------------------------
// The transcript
// ---------------------------------------------------------------------------

#[test]
fn transcript_secret_lines() {
    let pyro = pyro_integration::shared();
    let dir = tempdir("pit-secrets-");
    std::fs::write(dir.path().join("token.txt"), "pip-token-from-file\n").unwrap();

    // $ pyro workspace create debian:12 --secret API_TOKEN=expected --secret-file PIP_TOKEN=./token.txt
    let args = [
        "workspace",
        "create",
        "debian:12",
        "--secret",
        "API_TOKEN=expected",
        "--secret-file",
        "PIP_TOKEN=./token.txt",
    ];
    let created = pyro
        .command(&args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ok(&created, &args);
    let summary = stdout(&created);
    let id = one_line(&summary, "Workspace ID: ")
        .strip_prefix("Workspace ID: ")
        .unwrap()
        .to_owned();
    let ws = Workspace::adopt(pyro, &id);
    assert!(summary.contains("\nState: started\n"), "{summary}");
    assert!(
        summary.contains("\nSecrets: API_TOKEN (literal), PIP_TOKEN (file)\n"),
        "{summary}"
    );
    let status = ws.status();
    assert_eq!(
        status["secrets"],
        serde_json::json!([
            {"name": "API_TOKEN", "source_kind": "literal", "size_bytes": 8},
            // The file's one trailing newline is not part of the value.
            {"name": "PIP_TOKEN", "source_kind": "file", "size_bytes": 19},
        ])
    );
    let human = stdout(&ws.ok(&["status"], &[]));
    assert!(
        human.contains("\nSecrets: API_TOKEN (literal), PIP_TOKEN (file)\n"),
        "{human}"
    );
    // On the host: one 0600 file in a 0700 directory.
    let store = pyro.data_dir().join("secrets");
    assert_eq!(mode_of(&store), 0o700);
    assert_eq!(mode_of(&store.join(format!("{id}.json"))), 0o600);

    // $ pyro workspace exec WORKSPACE_ID --secret-env API_TOKEN -- sh -lc 'test "$API_TOKEN" = "expected"'
    let exec = ws.run(
        &["exec"],
        &[
            "--secret-env",
            "API_TOKEN",
            "--",
            "sh",
            "-lc",
            r#"test "$API_TOKEN" = "expected""#,
        ],
    );
    assert_eq!(exec.status.code(), Some(0), "{}", stderr(&exec));
    let line = one_line(&stderr(&exec), "[workspace-exec]").to_owned();
    let pairs = footer(
        &line,
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
    assert_eq!(field(&pairs, "workspace_id"), id);
    assert_eq!(field(&pairs, "sequence"), "1");
    assert_eq!(field(&pairs, "cwd"), "/workspace");
    assert_eq!(field(&pairs, "execution_mode"), "guest_vsock");
    assert_eq!(field(&pairs, "exit_code"), "0");

    // The mapping is per call: not there without it, renamed with NAME=ENV.
    ws.sh(r#"test -z "$API_TOKEN" && test -z "$PIP_TOKEN""#);
    let renamed = ws.run(
        &["exec"],
        &[
            "--secret-env",
            "API_TOKEN=MY_TOKEN",
            "--secret-env",
            "PIP_TOKEN",
            "--",
            "sh",
            "-c",
            r#"test "$MY_TOKEN" = expected && test -z "$API_TOKEN" && test "$PIP_TOKEN" = "$(cat /run/pyro-secrets/PIP_TOKEN)""#,
        ],
    );
    assert_eq!(renamed.status.code(), Some(0), "{}", stderr(&renamed));

    // In the guest: tmpfs, directory 0700, files 0400, exact contents.
    let check_files = |when: &str| {
        let files = guest_secret_files(&ws);
        assert_eq!(
            files, ". 700 root\nAPI_TOKEN 400 root\nPIP_TOKEN 400 root\nfs=tmpfs\nonly-files\n",
            "{when}"
        );
        ws.sh("test \"$(cat /run/pyro-secrets/API_TOKEN)\" = expected && \
             printf 'pip-token-from-file' | cmp -s - /run/pyro-secrets/PIP_TOKEN");
    };
    check_files("after create");

    // $ pyro workspace shell open WORKSPACE_ID --secret-env API_TOKEN
    let opened = ws.ok(&["shell", "open"], &["--secret-env", "API_TOKEN"]);
    let line = one_line(&stderr(&opened), "[workspace-shell-open]").to_owned();
    assert!(
        line.contains(" state=running cwd=/workspace cols=120 rows=30 "),
        "{line}"
    );
    let shell_id = line
        .split(' ')
        .find_map(|w| w.strip_prefix("shell_id="))
        .unwrap()
        .to_owned();
    let shell = Shell::attach(&ws, &shell_id);
    shell.type_until(
        0,
        r#"test "$API_TOKEN" = "expected" && echo shell-secret-$((2+3))"#,
        "shell-secret-5\r\n",
    );

    // $ pyro workspace service start WORKSPACE_ID app --secret-env API_TOKEN --ready-file .ready -- sh -lc '...'
    let started = ws.ok(
        &["service", "start"],
        &[
            "app",
            "--secret-env",
            "API_TOKEN",
            "--ready-file",
            ".ready",
            "--",
            "sh",
            "-lc",
            "touch .ready && while true; do sleep 60; done",
        ],
    );
    assert_eq!(
        one_line(&stderr(&started), "[workspace-service-start]"),
        format!("[workspace-service-start] workspace_id={id} service=app state=running cwd=/workspace ready_type=file execution_mode=guest_vsock")
    );
    let pid = ws.service("app")["pid"].as_u64().unwrap();
    ws.sh(&format!(
        "tr '\\0' '\\n' < /proc/{pid}/environ | grep -qx 'API_TOKEN=expected'"
    ));

    // Reset: the secret files are back (from the stored material).
    ws.sh("rm -f /run/pyro-secrets/API_TOKEN 2>/dev/null; true");
    let reset = ws.ok(&["reset"], &[]);
    assert!(
        stdout(&reset).contains("State: started"),
        "{}",
        stdout(&reset)
    );
    check_files("after reset");
    let again = ws.run(
        &["exec"],
        &[
            "--secret-env",
            "API_TOKEN",
            "--",
            "sh",
            "-lc",
            r#"test "$API_TOKEN" = "expected""#,
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));

    // An unknown secret: one clear error, and nothing runs.
    let count = ws.status()["command_count"].clone();
    let message = clear_error(&ws.run(
        &["exec"],
        &[
            "--secret-env",
            "NOPE",
            "--",
            "sh",
            "-c",
            "touch /workspace/ran-nope",
        ],
    ));
    assert!(
        message.contains("'NOPE'") && message.contains("secret"),
        "{message}"
    );
    assert_eq!(ws.status()["command_count"], count, "no command was run");
    let shells = parse_json(&stdout(&ws.ok(&["shell", "list"], &["--json"])))["count"].clone();
    let message = clear_error(&ws.run(&["shell", "open"], &["--secret-env", "NOPE"]));
    assert!(message.contains("'NOPE'"), "{message}");
    let after = parse_json(&stdout(&ws.ok(&["shell", "list"], &["--json"])))["count"].clone();
    assert_eq!(after, shells, "no shell was opened");
    let message = clear_error(&ws.run(
        &["service", "start"],
        &[
            "nope-svc",
            "--secret-env",
            "NOPE",
            "--",
            "touch",
            "/workspace/ran-nope",
        ],
    ));
    assert!(message.contains("'NOPE'"), "{message}");
    assert!(clear_error(&ws.run(&["service", "status"], &["nope-svc"])).contains("does not exist"));
    ws.sh("test ! -e /workspace/ran-nope");

    // Stop and start: the secrets are written again after the boot.
    ws.ok(&["stop"], &[]);
    ws.ok(&["start"], &[]);
    ws.wait_started();
    check_files("after stop and start");

    // The VM dies (on-failure restart, the default): written again too.
    let vmm = vmm_pid(pyro, &id).expect("the workspace has a VMM");
    // SAFETY: kill(2) on the QEMU of this test's own workspace.
    assert_eq!(unsafe { libc::kill(vmm as i32, libc::SIGKILL) }, 0);
    wait_for("the workspace to run again on a new VMM", BOOT, |last| {
        let state = ws.status()["state"].as_str().unwrap().to_owned();
        let now = vmm_pid(pyro, &id);
        *last = format!("{state} {now:?}");
        (state == "started" && now.is_some_and(|p| p != vmm)).then_some(())
    });
    check_files("after the VM was restarted");

    // Delete removes the stored secrets.
    let deleted = pyro.run(&["workspace", "delete", &id]);
    assert_ok(&deleted, &["workspace", "delete", &id]);
    assert!(
        !store.join(format!("{id}.json")).exists(),
        "the secret file is removed with the workspace"
    );
}

// ---------------------------------------------------------------------------
// Bad definitions
// ---------------------------------------------------------------------------

#[test]
fn bad_secrets_are_refused_and_nothing_is_created() {
    let pyro = Pyro::new();
    let dir = tempdir("pit-secrets-bad-");
    std::fs::write(dir.path().join("big.txt"), vec![b'a'; 64 * 1024 + 1]).unwrap();
    let missing = dir.path().join("missing-token.txt");
    let missing_arg = format!("PIP_TOKEN={}", missing.display());

    let refuse = |args: &[&str], needle: &str| {
        let mut all = vec!["workspace", "create", "debian:12"];
        all.extend_from_slice(args);
        let output = pyro.command(&all).current_dir(dir.path()).output().unwrap();
        let message = clear_error(&output);
        assert!(message.contains(needle), "{args:?}: {message}");
        message
    };
    refuse(
        &["--secret-file", &missing_arg],
        &missing.display().to_string(),
    );
    let message = refuse(
        &["--secret-file", "PIP_TOKEN=./missing-token.txt"],
        "missing-token.txt",
    );
    assert!(message.contains("PIP_TOKEN"), "{message}");
    refuse(
        &["--secret", "A=x", "--secret-file", "B=./missing-token.txt"],
        "missing-token.txt",
    );
    refuse(&["--secret-file", "DIR=."], "DIR");
    refuse(&["--secret-file", "BIG=./big.txt"], "BIG");
    refuse(&["--secret", "A=1", "--secret", "A=2"], "A");
    refuse(&["--secret", "1BAD=x"], "1BAD");
    refuse(&["--secret", "EMPTY="], "EMPTY");

    // Nothing was created: no record, no directory, no secret file, no VM.
    let list = pyro.json(&["workspace", "list", "--json"]);
    assert_eq!(list["workspaces"].as_array().unwrap().len(), 0, "{list}");
    for sub in ["workspaces", "secrets"] {
        let entries: Vec<_> = std::fs::read_dir(pyro.data_dir().join(sub))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(entries.is_empty(), "{sub}: {entries:?}");
    }
    assert!(
        pyro.own_processes().is_empty(),
        "{:?}",
        pyro.own_processes()
    );
}

// ---------------------------------------------------------------------------
// Redaction everywhere, storage in one place
// ---------------------------------------------------------------------------

/// Leaks the secrets on stdout and stderr in every encoding the redactor
/// knows, and byte by byte (bash).
const LEAK_SCRIPT: &str = r#"
echo "$API_TOKEN"
echo "stderr:$API_TOKEN" >&2
printf %s "$API_TOKEN" | base64
printf a%s "$API_TOKEN" | base64
printf ab%s "$API_TOKEN" | base64
printf %s "$API_TOKEN" | base64 | tr '+/' '-_'
python3 -c 'import os, urllib.parse as u; t = os.environ["API_TOKEN"]; print(u.quote(t, safe="")); print(u.quote(t)); print(u.quote_plus(t))'
python3 -c 'import os, json; print(json.dumps(os.environ["API_TOKEN"])); print(json.dumps({"cert": os.environ["CERT"]}))'
S=$API_TOKEN
for ((i = 0; i < ${#S}; i++)); do printf %s "${S:i:1}"; sleep 0.01; done; echo
for ((i = 0; i < ${#S}; i++)); do printf %s "${S:i:1}" >&2; sleep 0.01; done; echo >&2
cat /run/pyro-secrets/CERT
echo ==; head -n1 /run/pyro-secrets/CERT; echo ==; tail -n1 /run/pyro-secrets/CERT; echo ==
printf %s "$CERT" | base64 -w0; echo
echo end-of-leaks
"#;

#[test]
fn secrets_are_redacted_everywhere_and_stored_only_in_the_secret_file() {
    let pyro = Pyro::new();
    let dir = tempdir("pit-secrets-leak-");
    // Distinctive, with bytes that URL and JSON encodings change.
    let token = format!("{}\"q\\/+=&% {}", unique("pyro-"), unique(""));
    let cert = format!(
        "{}\n{}\n",
        unique("cert-line-one-"),
        unique("cert-line-two-")
    );
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    let secret_arg = format!("API_TOKEN={token}");
    let defs = [
        "--secret",
        secret_arg.as_str(),
        "--secret-file",
        "CERT=./cert.pem",
        "--ttl-seconds",
        "3600",
    ];
    let check = |text: &str, what: &str| {
        assert_no_secret(text, &token, what);
        assert_no_secret(text, &cert, what);
    };
    let ws = Workspace::create_in(&pyro, Some(dir.path()), "debian:12-build", &defs);
    let id = ws.id().to_owned();

    // exec: stdout and stderr, every encoding, byte by byte.
    let exec = ws.run(
        &["exec"],
        &[
            "--secret-env",
            "API_TOKEN",
            "--secret-env",
            "CERT",
            "--",
            "bash",
            "-c",
            LEAK_SCRIPT,
        ],
    );
    let (out, err) = (stdout(&exec), stderr(&exec));
    assert_eq!(exec.status.code(), Some(0), "{err}");
    check(&out, "exec stdout");
    check(&err, "exec stderr");
    for line in out.lines() {
        assert!(
            matches!(line, "==" | "end-of-leaks") || line.contains("[REDACTED]"),
            "every leaking line shows [REDACTED]: {line:?}\n{out}"
        );
    }
    assert!(out.ends_with("end-of-leaks\n"), "{out}");
    assert!(err.contains("stderr:[REDACTED]\n"), "{err}");
    assert!(
        err.contains("\n[REDACTED]\n"),
        "byte by byte on stderr: {err}"
    );
    let json = ws.run(
        &["exec"],
        &[
            "--json",
            "--secret-env",
            "API_TOKEN",
            "--",
            "sh",
            "-c",
            r#"echo "$API_TOKEN"; echo "$API_TOKEN" >&2"#,
        ],
    );
    check(&stdout(&json), "exec --json");
    let value = parse_json(&stdout(&json));
    assert_eq!(value["stdout"], "[REDACTED]\n");
    assert_eq!(value["stderr"], "[REDACTED]\n");

    // A value given on the command line (the caller's own input) is not
    // kept as it is either: not in the history, a service's command or the
    // state directory (grepped at the end).
    let literal = format!("true # {token}");
    let output = ws.ok(&["exec"], &["--", "sh", "-c", &literal]);
    check(&stderr(&output), "exec of a literal");
    ws.ok(
        &["service", "start"],
        &[
            "literal",
            "--",
            "sh",
            "-c",
            &format!("exec sleep 3700 # {token}"),
        ],
    );
    let status = stdout(&ws.ok(&["service", "status"], &["literal"]));
    check(&status, "service status of a literal");
    assert!(status.contains("exec sleep 3700 # [REDACTED]"), "{status}");
    check(
        &stdout(&ws.ok(&["service", "list"], &["--json"])),
        "service list",
    );
    ws.ok(&["service", "stop"], &["literal"]);

    // The command history.
    let logs = ws.ok(&["logs"], &[]);
    check(&stdout(&logs), "workspace logs");
    check(&stderr(&logs), "workspace logs (stderr)");
    check(
        &stdout(&ws.ok(&["logs"], &["--json"])),
        "workspace logs --json",
    );
    check(&ws.status().to_string(), "workspace status");

    // A shell, raw and plain; narrow, so a plain rendering wraps lines.
    let shell = Shell::open(
        &ws,
        &[
            "--secret-env",
            "API_TOKEN",
            "--secret-env",
            "CERT",
            "--cols",
            "40",
        ],
    );
    let (raw, _) = shell.type_until(
        0,
        r#"echo "$API_TOKEN"; printf %s "$API_TOKEN" | base64; cat /run/pyro-secrets/CERT; S=$API_TOKEN; for ((i=0;i<${#S};i++)); do printf %s "${S:i:1}"; sleep 0.01; done; echo; echo shell-leaks-$((5*5))"#,
        "shell-leaks-25\r\n",
    );
    check(&raw, "shell read");
    assert!(raw.matches("[REDACTED]").count() >= 4, "{raw:?}");
    let all_raw = shell.ok("read", &["--max-chars", "1000000"]);
    check(&stdout(&all_raw), "shell read (human)");
    let plain = shell.read(0, &["--plain", "--max-chars", "1000000"]);
    check(&plain.output, "shell read --plain");
    assert!(plain.output.contains("[REDACTED]"), "{:?}", plain.output);
    shell.ok("close", &[]);

    // A service's logs, collected and followed, and its status.
    ws.ok(
        &["service", "start"],
        &[
            "leaker",
            "--secret-env",
            "API_TOKEN",
            "--ready-file",
            ".leaker-ready",
            "--",
            "bash",
            "-c",
            r#"echo "$API_TOKEN"; echo "err:$API_TOKEN" >&2; printf %s "$API_TOKEN" | base64; S=$API_TOKEN; for ((i=0;i<${#S};i++)); do printf %s "${S:i:1}"; sleep 0.01; done; echo; touch .leaker-ready; exec sleep 3600"#,
        ],
    );
    let logs = stdout(&ws.ok(&["service", "logs"], &["leaker", "--all"]));
    check(&logs, "service logs");
    assert_eq!(logs.matches("[REDACTED]").count(), 4, "{logs}");
    check(
        &stdout(&ws.ok(&["service", "logs"], &["leaker", "--all", "--json"])),
        "service logs --json",
    );
    check(&ws.service("leaker").to_string(), "service status");
    let mut follow = ws
        .command(&["service", "logs"], &["leaker", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut followed = String::new();
    let mut reader = follow.stdout.take().unwrap();
    let collector = std::thread::spawn(move || {
        reader.read_to_string(&mut followed).unwrap();
        followed
    });
    ws.ok(&["service", "stop"], &["leaker"]);
    let status = wait_child(&mut follow, MINUTE);
    let followed = collector.join().unwrap();
    assert!(status.success(), "service logs --follow: {status}");
    check(&followed, "service logs --follow");
    assert!(followed.contains("[REDACTED]"), "{followed}");

    // Error messages.
    let bad_cwd = format!("/workspace/nonexistent-{token}");
    for (sub, rest) in [
        ("exec", vec!["--cwd", bad_cwd.as_str(), "--", "true"]),
        (
            "exec",
            vec!["--cwd", bad_cwd.as_str(), "--json", "--", "true"],
        ),
        ("file read", vec![bad_cwd.as_str()]),
        ("shell open", vec!["--cwd", bad_cwd.as_str()]),
    ] {
        let sub: Vec<&str> = sub.split(' ').collect();
        let output = ws.run(&sub, &rest);
        assert!(!output.status.success(), "{sub:?} {rest:?}");
        let text = format!("{}{}", stdout(&output), stderr(&output));
        check(&text, &format!("the error of {sub:?}"));
        assert!(text.contains("[REDACTED]"), "{text}");
    }
    check(
        &stdout(&ws.ok(&["logs"], &[])),
        "workspace logs after errors",
    );

    // `file read` and `diff`, in a workspace whose disk gets the secrets
    // written to it (and which is deleted before the state dir is grepped).
    let disky = Workspace::create_in(&pyro, Some(dir.path()), "debian:12-base", &defs);
    disky.ok(
        &["exec"],
        &[
            "--secret-env",
            "API_TOKEN",
            "--",
            "sh",
            "-c",
            r#"printf '%s\n' "$API_TOKEN" > leak.txt && cp /run/pyro-secrets/CERT cert.txt && sync"#,
        ],
    );
    for path in ["leak.txt", "cert.txt"] {
        let read = disky.ok(&["file", "read"], &[path]);
        check(&stdout(&read), &format!("file read {path}"));
        assert!(stdout(&read).contains("[REDACTED]"), "{}", stdout(&read));
        check(
            &stdout(&disky.ok(&["file", "read"], &[path, "--json"])),
            &format!("file read {path} --json"),
        );
    }
    // A path named after a secret (a line of the certificate: the token
    // holds a `/`, and its first part would be listed as a directory).
    disky.sh(r#"mkdir -p "named-$(head -n1 /run/pyro-secrets/CERT)/inner""#);
    let listing = stdout(&disky.ok(&["file", "list"], &["--recursive"]));
    check(&listing, "file list");
    assert!(listing.contains("[REDACTED]"), "{listing}");
    check(
        &stdout(&disky.ok(&["file", "list"], &["--recursive", "--json"])),
        "file list --json",
    );

    // Typed into a shell: the terminal's echo of the input.
    let typed = Shell::open(&disky, &[]);
    let (echoed, _) = typed.type_until(
        0,
        &format!(": '{token}'; echo typed-$((4*4))"),
        "typed-16\r\n",
    );
    check(&echoed, "a shell's echo of typed input");
    assert!(echoed.contains("[REDACTED]"), "{echoed:?}");
    typed.ok("close", &[]);
    let diff = stdout(&disky.ok(&["diff"], &[]));
    check(&diff, "diff");
    assert!(
        diff.contains("+[REDACTED]") && diff.contains("leak.txt"),
        "{diff}"
    );
    check(&stdout(&disky.ok(&["diff"], &["--json"])), "diff --json");
    let disky_id = disky.id().to_owned();
    // A control for the greps below: the scan finds a secret on a disk.
    let on_disk = files_containing(
        &pyro.data_dir().join(format!("workspaces/{disky_id}")),
        std::slice::from_ref(&token),
    );
    assert!(
        !on_disk.is_empty(),
        "the scan finds leak.txt's bytes on the disk"
    );
    drop(disky);
    assert!(!pyro
        .data_dir()
        .join(format!("secrets/{disky_id}.json"))
        .exists());
    assert!(!pyro
        .data_dir()
        .join(format!("workspaces/{disky_id}"))
        .exists());

    // After stop, the exported disk image holds no secret.
    let mut forms = secret_forms(&token);
    forms.extend(secret_forms(&cert));
    let marker = unique("disk-marker-");
    ws.sh(&format!("echo {marker} > /workspace/marker.txt && sync"));
    ws.ok(&["stop"], &[]);
    let image = dir.path().join("disk.img");
    ws.ok(&["disk", "export"], &["--output", image.to_str().unwrap()]);
    assert!(std::fs::metadata(&image).unwrap().len() > 0);
    assert_eq!(
        file_contains(&image, std::slice::from_ref(&marker)).len(),
        1,
        "a control: the scan finds a file of the workspace in the image"
    );
    let found = file_contains(&image, &forms);
    assert!(
        found.is_empty(),
        "the exported disk image holds the secret as {found:?}"
    );

    // The whole state directory (database, logs, history, disks, ...) and
    // the runtime directory: the values only in the 0600 secret file.
    let store = pyro.data_dir().join("secrets");
    let secret_file = store.join(format!("{id}.json"));
    let mut hits = files_containing(pyro.data_dir(), &forms);
    hits.extend(files_containing(pyro.runtime_dir(), &forms));
    let places: Vec<_> = hits.iter().map(|(path, _)| path.clone()).collect();
    assert_eq!(
        places,
        std::slice::from_ref(&secret_file),
        "the secrets were found in {hits:?}"
    );
    assert_eq!(mode_of(&secret_file), 0o600);
    assert_eq!(mode_of(&store), 0o700);
    let stored = std::fs::read_to_string(&secret_file).unwrap();
    let stored: serde_json::Value = parse_json(&stored);
    let text = stored.to_string();
    assert!(
        text.contains(&serde_json::to_string(&token).unwrap()),
        "the store holds the value"
    );
    drop(ws);
    assert!(!secret_file.exists(), "delete removes the secret file");
}

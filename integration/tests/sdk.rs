//! The Rust SDK end to end (issue 6), on real guests.
//!
//! - [`the_tour_creates_execs_diffs_and_deletes`] runs the
//!   `sdk/examples/workspace_tour.rs` example against an isolated
//!   installation and checks what it prints and that it leaves no
//!   workspace; [`a_failing_step_still_deletes_the_workspace`] makes its
//!   command fail and checks the same; [`the_tour_reports_errors_with_code_and_hint`]
//!   needs no guest.
//! - [`the_sdk_streams_exec_output_and_types_its_errors`] uses `pyro_sdk`
//!   directly: relative host paths, streamed exec output, typed errors.
//!
//! How the example is found: Cargo tells integration tests where binaries
//! are (`CARGO_BIN_EXE_*`) but not examples, and a binary left over in
//! `target/` may be stale. So [`workspace_tour`] runs `cargo build -p
//! pyro-sdk --example workspace_tour` once per test binary, with the
//! profile and target directory this test binary was built with (read from
//! its own path, `target/<profile>/deps/sdk-<hash>`), and runs
//! `target/<profile>/examples/workspace_tour`. Cargo releases its build
//! lock before running tests, and the build is a no-op when the example is
//! up to date. (Cross builds, `--target <triple>`, are not supported.)
//!
//! Each test that boots a guest has its own installation ([`Pyro::new`]),
//! so "no workspace left" is checked on a list nobody else writes to. The
//! example gets that installation's environment (the one [`Pyro::command`]
//! gives `pyro`), so it reaches, or starts, that installation's supervisor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use pyro_integration::{stderr, stdout, Pyro};
use pyro_sdk::api::session::SecretSpec;
use pyro_sdk::api::workspace::{
    CreateWorkspaceRequest, DiffRequest, ExecEvent, ExecRequest, WriteRequest,
};
use pyro_sdk::api::{CommandSpec, ErrorCode, StreamName};
use pyro_sdk::{Client, ConnectOptions, PyroPaths, SdkError};

/// The example binary, built (or found up to date) by cargo once.
fn workspace_tour() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/sdk-<hash>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().and_then(OsStr::to_str).unwrap() {
            "debug" => "dev",
            other => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "pyro-sdk",
                "--example",
                "workspace_tour",
            ])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "building the workspace_tour example failed ({status})"
        );
        let binary = profile_dir.join("examples").join("workspace_tour");
        assert!(binary.is_file(), "{} is missing", binary.display());
        binary
    })
}

/// The example, with `pyro`'s environment for this installation.
fn tour_command(pyro: &Pyro, args: &[&str]) -> Command {
    let template = pyro.command(&[]);
    let mut command = Command::new(workspace_tour());
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.args(args).stdin(Stdio::null());
    command
}

/// `Output` as text for assertion messages.
fn shown(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

/// The value of `key=` on the first stdout line starting with `prefix`.
fn field_of(text: &str, prefix: &str, key: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"));
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .to_owned()
}

/// Asserts that the installation has no workspace left, by the CLI.
fn assert_no_workspaces(pyro: &Pyro) {
    let list = pyro.json(&["workspace", "list", "--json"]);
    assert_eq!(list["count"], 0, "a workspace was left behind: {list}");
    assert_eq!(pyro.ok(&["workspace", "list"]), "No workspaces.\n");
}

#[test]
fn the_tour_creates_execs_diffs_and_deletes() {
    let pyro = Pyro::new();
    let output = tour_command(&pyro, &[]).output().unwrap();
    assert!(output.status.success(), "{}", shown(&output));
    let out = stdout(&output);

    let id = field_of(&out, "[create] workspace_id=", "workspace_id");
    assert_eq!(
        field_of(&out, "[create] workspace_id=", "phase"),
        "environment",
        "phases are printed as they happen:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "[create] workspace_id={id} state=started environment=debian:12 seed_entries=1\n"
        )),
        "{out}"
    );
    // The streamed exec output: the seeded line and the one the guest added.
    assert!(
        out.contains("[exec] $ echo 'changed in the guest' >> hello.txt && cat hello.txt\nhello from the host\nchanged in the guest\n[exec] sequence=1 exit_code=0 "),
        "{out}"
    );
    assert!(
        out.contains(
            "[diff] against=baseline changed=true total=1 added=0 modified=1 deleted=0\n[diff] modified hello.txt\n"
        ),
        "{out}"
    );
    assert!(out.contains("--- a/hello.txt\n+++ b/hello.txt\n"), "{out}");
    assert!(
        out.contains("\n hello from the host\n+changed in the guest\n"),
        "{out}"
    );
    assert!(
        out.ends_with(&format!(
            "[delete] workspace_id={id} deleted=true reason=explicit_delete\n"
        )),
        "{out}"
    );
    assert!(!stderr(&output).contains("[error]"), "{}", shown(&output));
    assert_no_workspaces(&pyro);
}

#[test]
fn a_failing_step_still_deletes_the_workspace() {
    let pyro = Pyro::new();
    let output = tour_command(&pyro, &["echo about to fail; exit 3"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", shown(&output));
    let out = stdout(&output);
    let id = field_of(&out, "[create] workspace_id=", "workspace_id");
    assert!(
        out.contains("about to fail\n[exec] sequence=1 exit_code=3 "),
        "{out}"
    );
    assert!(
        !out.contains("[diff]"),
        "the tour stops at the failed step:\n{out}"
    );
    assert!(
        out.ends_with(&format!(
            "[delete] workspace_id={id} deleted=true reason=explicit_delete\n"
        )),
        "{out}"
    );
    assert_eq!(
        stderr(&output),
        "[error] the command exited with code 3\n",
        "{}",
        shown(&output)
    );
    assert_no_workspaces(&pyro);
}

#[test]
fn the_tour_reports_errors_with_code_and_hint() {
    // No supervisor binary anywhere: connecting fails before any guest.
    let home = tempfile::Builder::new()
        .prefix("pyro-it-")
        .tempdir()
        .unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let output = Command::new(workspace_tour())
        .env("PYRO_HOME", home.path())
        .env("PYRO_RUNTIME_DIR", home.path().join("run"))
        .env(
            "PYRO_SUPERVISOR_BIN",
            home.path().join("no-such-supervisor"),
        )
        .env("PATH", empty_path.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", shown(&output));
    assert_eq!(stdout(&output), "", "{}", shown(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(
            "[error] code=supervisor_unavailable the pyro-supervisor program was not found (looked at "
        ) && lines[0].contains("no-such-supervisor"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("[hint] install pyro with scripts/setup"),
        "{err}"
    );
}

/// Connect options for `pyro`'s installation: its directories, read from
/// the environment its commands get (then this process's, for the cache).
fn sdk_options(pyro: &Pyro) -> ConnectOptions {
    let template = pyro.command(&[]);
    let vars: HashMap<OsString, Option<OsString>> = template
        .get_envs()
        .map(|(name, value)| (name.to_owned(), value.map(OsStr::to_owned)))
        .collect();
    let paths = PyroPaths::from_lookup(|name| {
        match vars.get(OsStr::new(name)) {
            Some(value) => value.clone(),
            None => std::env::var_os(name),
        }
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    })
    .unwrap();
    let mut options = ConnectOptions::from_env().unwrap();
    options.paths = paths;
    // The CLI started the supervisor with the installation's environment.
    options.autostart = false;
    options
}

#[tokio::test]
async fn the_sdk_streams_exec_output_and_types_its_errors() {
    let pyro = Pyro::new();
    // Start the supervisor as a user would, through the CLI.
    assert_no_workspaces(&pyro);
    let client = Client::connect(sdk_options(&pyro)).await.unwrap();
    assert_eq!(client.socket(), pyro.runtime_dir().join("supervisor.sock"));

    // Relative host paths (seed and secret file) are resolved against this
    // process's working directory, as the CLI resolves them.
    let host = tempfile::Builder::new()
        .prefix(".sdk-it-")
        .tempdir_in(".")
        .unwrap();
    std::fs::create_dir(host.path().join("repo")).unwrap();
    std::fs::write(host.path().join("repo/hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(host.path().join("token"), "sdk-secret-5f1c").unwrap();
    let name = host.path().file_name().unwrap().to_str().unwrap();
    let mut create = CreateWorkspaceRequest::new("debian:12");
    create.seed_path = Some(format!("./{name}/repo"));
    create.secrets = vec![SecretSpec {
        name: "TOKEN".into(),
        value: None,
        file_path: Some(format!("{name}/token")),
    }];
    let info = client.create_workspace_collect(&create).await.unwrap();
    let id = info.workspace_id.clone();
    let repo = std::fs::canonicalize(host.path().join("repo")).unwrap();
    assert_eq!(info.workspace_seed.seed_path.as_deref(), repo.to_str());
    assert_eq!(info.workspace_seed.entry_count, 1);
    assert_eq!(info.secrets[0].source_kind, "file");
    assert_eq!(info.secrets[0].size_bytes, 15);

    // Streaming: the command prints, then waits for a file only this test
    // writes once it has seen that output; buffered output would never
    // arrive and the command would hit its timeout.
    let mut exec = ExecRequest::new(CommandSpec::Shell(
        "echo first; echo warn >&2; while [ ! -e go ]; do sleep 0.1; done; \
         cat hello.txt; cat /run/pyro-secrets/TOKEN; echo"
            .into(),
    ));
    exec.timeout_seconds = 300;
    let mut events = client.exec_workspace(&id, &exec).await.unwrap();
    let (mut out, mut err, mut released) = (Vec::new(), Vec::new(), false);
    let summary = loop {
        match events.next().await.expect("the exec stream ended early") {
            Ok(ExecEvent::Output(chunk)) => {
                let bytes = chunk.bytes().unwrap();
                match chunk.stream {
                    StreamName::Stdout => out.extend_from_slice(&bytes),
                    StreamName::Stderr => err.extend_from_slice(&bytes),
                }
                if !released && out.starts_with(b"first\n") {
                    released = true;
                    let go = WriteRequest {
                        path: "go".into(),
                        text: "go\n".into(),
                    };
                    client.write_workspace_file(&id, &go).await.unwrap();
                }
            }
            Ok(ExecEvent::Result(summary)) => break summary,
            Ok(ExecEvent::Error(body)) => panic!("exec failed: {body:?}"),
            Err(e) => panic!("exec stream: {e}"),
        }
    };
    assert!(released, "no output arrived before the command ended");
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert!(!summary.timed_out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "first\nhello from the host\n[REDACTED]\n"
    );
    assert_eq!(String::from_utf8_lossy(&err), "warn\n");

    let diff = client
        .diff_workspace(&id, &DiffRequest::default())
        .await
        .unwrap();
    assert_eq!(diff.summary.added, 1, "{diff:?}");
    assert_eq!(diff.entries[0].path, "go");

    // Typed errors: the supervisor's, with code and hint...
    let unknown = "000000000000";
    let errors = [
        client.workspace_status(unknown).await.map(|_| ()),
        client.exec_workspace(unknown, &exec).await.map(|_| ()),
    ];
    for error in errors {
        let error = error.unwrap_err();
        assert!(matches!(error, SdkError::Api(_)), "{error:?}");
        assert_eq!(error.code(), ErrorCode::UnknownWorkspace);
        assert_eq!(
            error.to_string(),
            format!("workspace '{unknown}' does not exist")
        );
        assert_eq!(
            error.hint().as_deref(),
            Some("list workspaces with `pyro workspace list`")
        );
    }
    // ...and the client's own, for a request that fails its validation.
    exec.timeout_seconds = 0;
    let refused = client
        .exec_workspace(&id, &exec)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(refused, SdkError::InvalidRequest { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.code(), ErrorCode::InvalidArgument);
    assert!(refused.hint().is_some());

    let deleted = client.delete_workspace(&id).await.unwrap();
    assert!(deleted.deleted);
    let gone = client.workspace_status(&id).await.unwrap_err();
    assert_eq!(gone.code(), ErrorCode::UnknownWorkspace);
    assert_no_workspaces(&pyro);
}

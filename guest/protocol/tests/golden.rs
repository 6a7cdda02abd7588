//! Golden frames: the exact bytes of one instance of every message.
//!
//! A failure here means the wire format changed. If that was intended, bump
//! `PROTOCOL_VERSION` and re-bless with `PYRO_BLESS=1 cargo test -p
//! pyro-guest-protocol --test golden`; otherwise undo the change. Fixture
//! files carry the protocol version (`v3_request_ping.hex`), so a bump writes
//! a new set and the old one can be deleted.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use pyro_guest_protocol::*;

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let exec = ExecRequest {
        command: CommandLine::Argv(vec!["git".into(), "--version".into()]),
        cwd: Some("/workspace".into()),
        env: vec![("LANG".into(), "C.UTF-8".into())],
        timeout_ms: Some(30_000),
    };
    vec![
        ("client_hello", encode(&ClientHello::current()).unwrap()),
        (
            "server_hello",
            encode(&ServerHello {
                magic: MAGIC,
                version: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
            })
            .unwrap(),
        ),
        ("request_ping", encode(&Request::Ping).unwrap()),
        ("request_exec", encode(&Request::Exec(exec)).unwrap()),
        (
            "request_exec_shell",
            encode(&Request::Exec(ExecRequest {
                command: CommandLine::Shell("echo hi >&2".into()),
                cwd: None,
                env: vec![],
                timeout_ms: None,
            }))
            .unwrap(),
        ),
        ("request_power_off", encode(&Request::PowerOff).unwrap()),
        (
            "request_put_archive",
            encode(&Request::PutArchive(PutArchiveRequest {
                destination: "/workspace/src".into(),
            }))
            .unwrap(),
        ),
        (
            "request_get_archive",
            encode(&Request::GetArchive(GetArchiveRequest {
                path: "/workspace".into(),
                only: None,
            }))
            .unwrap(),
        ),
        (
            "request_get_archive_only",
            encode(&Request::GetArchive(GetArchiveRequest {
                path: "/workspace".into(),
                only: Some(vec!["a.txt".into(), "src/main.rs".into()]),
            }))
            .unwrap(),
        ),
        (
            "request_manifest",
            encode(&Request::Manifest(ManifestRequest {
                root: "/workspace".into(),
            }))
            .unwrap(),
        ),
        (
            "request_list_path",
            encode(&Request::ListPath(ListPathRequest {
                path: "/workspace/src".into(),
                recursive: true,
            }))
            .unwrap(),
        ),
        (
            "request_read_file",
            encode(&Request::ReadFile(ReadFileRequest {
                path: "/workspace/README.md".into(),
                max_bytes: 65_536,
            }))
            .unwrap(),
        ),
        (
            "request_apply_changes",
            encode(&Request::ApplyChanges(ApplyChangesRequest {
                root: "/workspace".into(),
                deletes: vec!["old.txt".into()],
                keep_existing_modes: true,
            }))
            .unwrap(),
        ),
        ("request_sync", encode(&Request::Sync).unwrap()),
        (
            "upload_chunk",
            encode(&Upload::Chunk(vec![0x75, 0x73, 0x74, 0x61, 0x72])).unwrap(),
        ),
        ("upload_end", encode(&Upload::End).unwrap()),
        (
            "response_pong",
            encode(&Response::Pong {
                agent_version: "0.1.0".into(),
                uptime_ms: 1234,
            })
            .unwrap(),
        ),
        (
            "response_exec_started",
            encode(&Response::ExecStarted { pid: 42 }).unwrap(),
        ),
        (
            "response_output",
            encode(&Response::Output {
                stream: OutputStream::Stderr,
                data: vec![0xff, 0x00, b'a'],
            })
            .unwrap(),
        ),
        (
            "response_exec_exited",
            encode(&Response::ExecExited(ExitStatus {
                exit_code: 124,
                signal: Some(9),
                timed_out: true,
                duration_ms: 1000,
            }))
            .unwrap(),
        ),
        (
            "response_error",
            encode(&Response::Error(GuestError {
                kind: GuestErrorKind::NotFound,
                message: "no such directory: /nope".into(),
            }))
            .unwrap(),
        ),
        ("response_done", encode(&Response::Done).unwrap()),
        (
            "response_archive_started",
            encode(&Response::ArchiveStarted {
                kind: EntryKind::Directory,
            })
            .unwrap(),
        ),
        (
            "response_data",
            encode(&Response::Data(vec![0x00, 0xff, b'x'])).unwrap(),
        ),
        (
            "response_archive_done",
            encode(&Response::ArchiveDone(ArchiveSummary {
                entry_count: 3,
                content_bytes: 1_000,
                archive_bytes: 4_096,
            }))
            .unwrap(),
        ),
        (
            "response_manifest_batch",
            encode(&Response::ManifestBatch(vec![
                ManifestEntry {
                    path: "src".into(),
                    kind: EntryKind::Directory,
                    mode: 0o755,
                    size: 0,
                    mtime: 1_700_000_000,
                    sha256: None,
                    link_target: None,
                },
                ManifestEntry {
                    path: "src/main.rs".into(),
                    kind: EntryKind::File,
                    mode: 0o644,
                    size: 12,
                    mtime: 1_700_000_001,
                    sha256: Some([0xab; 32]),
                    link_target: None,
                },
                ManifestEntry {
                    path: "link".into(),
                    kind: EntryKind::Symlink,
                    mode: 0o777,
                    size: 3,
                    mtime: -1,
                    sha256: None,
                    link_target: Some("src".into()),
                },
            ]))
            .unwrap(),
        ),
        (
            "response_manifest_done",
            encode(&Response::ManifestDone(ManifestSummary {
                entry_count: 3,
                hashed_files: 1,
                hashed_bytes: 12,
                cached_files: 0,
            }))
            .unwrap(),
        ),
        (
            "response_path_entries",
            encode(&Response::PathEntries(vec![PathEntry {
                path: "/workspace/run.sh".into(),
                kind: EntryKind::File,
                size: 20,
                mode: 0o755,
                mtime: 1_700_000_002,
                link_target: None,
            }]))
            .unwrap(),
        ),
        (
            "response_list_done",
            encode(&Response::ListDone(ListSummary {
                kind: EntryKind::Directory,
                entry_count: 1,
            }))
            .unwrap(),
        ),
        (
            "response_file_done",
            encode(&Response::FileDone(FileSummary {
                size_bytes: 100,
                bytes_sent: 10,
                truncated: true,
            }))
            .unwrap(),
        ),
        (
            "response_changes_applied",
            encode(&Response::ChangesApplied(ApplySummary {
                files_written: 2,
                files_deleted: 1,
                dirs_created: 1,
                bytes_written: 300,
            }))
            .unwrap(),
        ),
        (
            "response_error_refused",
            encode(&Response::Error(GuestError {
                kind: GuestErrorKind::Refused,
                message: "archive member ../x escapes the destination".into(),
            }))
            .unwrap(),
        ),
        (
            "response_error_wrong_type",
            encode(&Response::Error(GuestError {
                kind: GuestErrorKind::WrongType,
                message: "/workspace/link is a symlink".into(),
            }))
            .unwrap(),
        ),
        (
            "response_error_partially_applied",
            encode(&Response::Error(GuestError {
                kind: GuestErrorKind::PartiallyApplied,
                message: "rollback failed".into(),
            }))
            .unwrap(),
        ),
        (
            "response_error_no_space",
            encode(&Response::Error(GuestError {
                kind: GuestErrorKind::NoSpace,
                message: "no space left".into(),
            }))
            .unwrap(),
        ),
        (
            "request_shell_open",
            encode(&Request::ShellOpen(ShellOpenRequest {
                shell_id: "sh-1".into(),
                cwd: "/workspace".into(),
                cols: 120,
                rows: 30,
                env: vec![("LANG".into(), "C.UTF-8".into())],
            }))
            .unwrap(),
        ),
        (
            "request_shell_attach",
            encode(&Request::ShellAttach {
                shell_id: "sh-1".into(),
                from_offset: 4096,
            })
            .unwrap(),
        ),
        (
            "request_shell_write",
            encode(&Request::ShellWrite {
                shell_id: "sh-1".into(),
                data: b"ls\n".to_vec(),
            })
            .unwrap(),
        ),
        (
            "request_shell_signal",
            encode(&Request::ShellSignal {
                shell_id: "sh-1".into(),
                signal: ShellSignal::Int,
            })
            .unwrap(),
        ),
        (
            "request_shell_resize",
            encode(&Request::ShellResize {
                shell_id: "sh-1".into(),
                cols: 100,
                rows: 40,
            })
            .unwrap(),
        ),
        (
            "request_shell_close",
            encode(&Request::ShellClose {
                shell_id: "sh-1".into(),
            })
            .unwrap(),
        ),
        ("request_shell_list", encode(&Request::ShellList).unwrap()),
        (
            "request_service_start",
            encode(&Request::ServiceStart(ServiceStartRequest {
                name: "web".into(),
                command: CommandLine::Shell("python3 -m http.server 8080".into()),
                cwd: "/workspace".into(),
                env: vec![("PORT".into(), "8080".into())],
                readiness: Some(Readiness::Http("http://127.0.0.1:8080/".into())),
                ready_timeout_ms: 30_000,
                ready_interval_ms: 500,
            }))
            .unwrap(),
        ),
        (
            "request_service_start_tcp",
            encode(&Request::ServiceStart(ServiceStartRequest {
                name: "db".into(),
                command: CommandLine::Argv(vec!["db".into()]),
                cwd: "/".into(),
                env: vec![],
                readiness: Some(Readiness::Tcp {
                    host: "127.0.0.1".into(),
                    port: 5432,
                }),
                ready_timeout_ms: 1_000,
                ready_interval_ms: 100,
            }))
            .unwrap(),
        ),
        (
            "request_service_start_file",
            encode(&Request::ServiceStart(ServiceStartRequest {
                name: "w".into(),
                command: CommandLine::Shell("touch ok".into()),
                cwd: "/".into(),
                env: vec![],
                readiness: Some(Readiness::File("ok".into())),
                ready_timeout_ms: 1_000,
                ready_interval_ms: 100,
            }))
            .unwrap(),
        ),
        (
            "request_service_start_command",
            encode(&Request::ServiceStart(ServiceStartRequest {
                name: "c".into(),
                command: CommandLine::Shell("serve".into()),
                cwd: "/".into(),
                env: vec![],
                readiness: Some(Readiness::Command(CommandLine::Shell("true".into()))),
                ready_timeout_ms: 1_000,
                ready_interval_ms: 100,
            }))
            .unwrap(),
        ),
        (
            "request_service_watch",
            encode(&Request::ServiceWatch { name: "web".into() }).unwrap(),
        ),
        (
            "request_service_stop",
            encode(&Request::ServiceStop {
                name: "web".into(),
                grace_ms: 5_000,
            })
            .unwrap(),
        ),
        (
            "request_service_status",
            encode(&Request::ServiceStatus { name: "web".into() }).unwrap(),
        ),
        (
            "request_service_list",
            encode(&Request::ServiceList).unwrap(),
        ),
        (
            "request_service_logs",
            encode(&Request::ServiceLogs {
                name: "web".into(),
                tail_lines: Some(200),
                follow: true,
            })
            .unwrap(),
        ),
        (
            "request_service_remove",
            encode(&Request::ServiceRemove { name: "web".into() }).unwrap(),
        ),
        (
            "response_shell_opened",
            encode(&Response::ShellOpened { pid: 77 }).unwrap(),
        ),
        (
            "response_shell_attached",
            encode(&Response::ShellAttached(shell_info())).unwrap(),
        ),
        (
            "response_shell_output",
            encode(&Response::ShellOutput {
                offset: 1 << 33,
                data: b"pyro$ ".to_vec(),
            })
            .unwrap(),
        ),
        (
            "response_shell_output_lost",
            encode(&Response::ShellOutputLost {
                offset: 10,
                lost_bytes: 9_000_000,
            })
            .unwrap(),
        ),
        (
            "response_shell_exited",
            encode(&Response::ShellExited(Termination {
                exit_code: 129,
                signal: Some(1),
            }))
            .unwrap(),
        ),
        (
            "response_shells",
            encode(&Response::Shells(vec![shell_info()])).unwrap(),
        ),
        (
            "response_service_started",
            encode(&Response::ServiceStarted(ServiceStarted {
                pid: 300,
                state: ServiceState::Failed,
                stop_reason: Some(ServiceStopReason::ReadinessTimeout),
                ready_after_ms: 30_001,
            }))
            .unwrap(),
        ),
        (
            "response_service_exited",
            encode(&Response::ServiceExited(Termination {
                exit_code: 3,
                signal: None,
            }))
            .unwrap(),
        ),
        (
            "response_service_stopped",
            encode(&Response::ServiceStopped {
                exit: Termination {
                    exit_code: 137,
                    signal: Some(9),
                },
                killed: true,
            })
            .unwrap(),
        ),
        (
            "response_service_status",
            encode(&Response::ServiceStatus(service_info())).unwrap(),
        ),
        (
            "response_services",
            encode(&Response::Services(vec![service_info()])).unwrap(),
        ),
        (
            "response_service_logs_done",
            encode(&Response::ServiceLogsDone(ServiceLogsSummary {
                records: 12,
                bytes: 345,
                truncated: true,
                exit: Some(Termination {
                    exit_code: 0,
                    signal: None,
                }),
            }))
            .unwrap(),
        ),
        (
            "notice_ready",
            encode(&GuestNotice::Ready(ReadyNotice {
                magic: MAGIC,
                protocol_version: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                uptime_ms: 1500,
            }))
            .unwrap(),
        ),
        (
            "notice_boot_failed",
            encode(&GuestNotice::BootFailed(BootFailure {
                stage: "mount_root".into(),
                errno: Some(2),
                message: "no root disk".into(),
            }))
            .unwrap(),
        ),
    ]
}

fn shell_info() -> ShellInfo {
    ShellInfo {
        shell_id: "sh-1".into(),
        pid: 77,
        alive: false,
        exit: Some(Termination {
            exit_code: 0,
            signal: None,
        }),
        cols: 120,
        rows: 30,
        start_offset: 1_000,
        end_offset: 2_049_576,
    }
}

fn service_info() -> ServiceInfo {
    ServiceInfo {
        name: "web".into(),
        pid: 300,
        alive: false,
        state: ServiceState::Stopped,
        stop_reason: Some(ServiceStopReason::StopRequested),
        exit: Some(Termination {
            exit_code: 143,
            signal: Some(15),
        }),
        started_at_ms: 1_700_000_000_000,
        ended_at_ms: Some(1_700_000_060_000),
        ready_after_ms: Some(250),
        stdout_bytes: 100,
        stderr_bytes: 20,
        log_bytes: 150,
    }
}

fn fixture_name(name: &str) -> String {
    format!("v{PROTOCOL_VERSION}_{name}.hex")
}

#[test]
fn frames_match_the_golden_fixtures() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bless = std::env::var_os("PYRO_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (name, frame) in fixtures() {
        let path = dir.join(fixture_name(name));
        let actual = hex::encode(&frame);
        if bless {
            std::fs::write(&path, format!("{actual}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("missing fixture {}: {err}", path.display()));
        if expected.trim() != actual {
            mismatches.push(format!(
                "{name}:\n  expected {}\n  actual   {actual}",
                expected.trim()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "wire format changed:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn golden_frames_decode_back() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bytes = hex::decode(
        std::fs::read_to_string(dir.join(fixture_name("request_exec")))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let request: Request = decode(&bytes[4..]).unwrap();
    match request {
        Request::Exec(exec) => {
            assert_eq!(
                exec.command,
                CommandLine::Argv(vec!["git".into(), "--version".into()])
            );
            assert_eq!(exec.timeout_ms, Some(30_000));
        }
        other => panic!("decoded {other:?}"),
    }
}

#[test]
fn every_fixture_file_is_current() {
    // A fixture with no message behind it is stale: a renamed message or an
    // older version's set that should have been deleted.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Vec<String> = fixtures().iter().map(|(n, _)| fixture_name(n)).collect();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "stale fixtures: {stale:?}");
}

#[test]
fn new_frames_decode_back() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| {
        hex::decode(
            std::fs::read_to_string(dir.join(fixture_name(name)))
                .unwrap()
                .trim(),
        )
        .unwrap()
    };
    let request: Request = decode(&read("request_apply_changes")[4..]).unwrap();
    assert_eq!(
        request,
        Request::ApplyChanges(ApplyChangesRequest {
            root: "/workspace".into(),
            deletes: vec!["old.txt".into()],
            keep_existing_modes: true,
        })
    );
    let upload: Upload = decode(&read("upload_end")[4..]).unwrap();
    assert_eq!(upload, Upload::End);
    let response: Response = decode(&read("response_manifest_batch")[4..]).unwrap();
    match response {
        Response::ManifestBatch(entries) => {
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[1].sha256, Some([0xab; 32]));
            assert_eq!(entries[2].link_target.as_deref(), Some("src"));
        }
        other => panic!("decoded {other:?}"),
    }
}

#[test]
fn shell_and_service_frames_decode_back() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| {
        hex::decode(
            std::fs::read_to_string(dir.join(fixture_name(name)))
                .unwrap()
                .trim(),
        )
        .unwrap()
    };
    let request: Request = decode(&read("request_shell_attach")[4..]).unwrap();
    assert_eq!(
        request,
        Request::ShellAttach {
            shell_id: "sh-1".into(),
            from_offset: 4096,
        }
    );
    let request: Request = decode(&read("request_service_logs")[4..]).unwrap();
    assert_eq!(
        request,
        Request::ServiceLogs {
            name: "web".into(),
            tail_lines: Some(200),
            follow: true,
        }
    );
    let response: Response = decode(&read("response_shells")[4..]).unwrap();
    assert_eq!(response, Response::Shells(vec![shell_info()]));
    let response: Response = decode(&read("response_service_status")[4..]).unwrap();
    assert_eq!(response, Response::ServiceStatus(service_info()));
}

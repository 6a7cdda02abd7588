//! Golden frames: the exact bytes of one instance of every message.
//!
//! A failure here means the wire format changed. If that was intended, bump
//! `PROTOCOL_VERSION` and re-bless with `PYRO_BLESS=1 cargo test -p
//! pyro-guest-protocol --test golden`; otherwise undo the change.

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
                version: 1,
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
            "notice_ready",
            encode(&GuestNotice::Ready(ReadyNotice {
                magic: MAGIC,
                protocol_version: 1,
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

#[test]
fn frames_match_the_golden_fixtures() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bless = std::env::var_os("PYRO_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (name, frame) in fixtures() {
        let path = dir.join(format!("v1_{name}.hex"));
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
        std::fs::read_to_string(dir.join("v1_request_exec.hex"))
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

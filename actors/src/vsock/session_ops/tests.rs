//! The shell and service client against the real agent handler,
//! in-process: a Unix socket plays the VM's hybrid-vsock socket (answering
//! `CONNECT` with `OK`), and each connection is served by
//! `pyro_guest_agent::server::serve_connection` on its own thread. Shells
//! and services are real processes on this host; every test uses its own
//! ids and names, since the agent's registries are process-wide. The tcp
//! and http readiness tests run Python services (`/usr/bin/python3`).

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyro_guest_agent::server::{serve_connection, PowerControl};
use pyro_guest_protocol::{
    CommandLine, GuestErrorKind, OutputStream, Readiness, ServiceStartRequest, ServiceState,
    ServiceStopReason, ShellOpenRequest, ShellSignal,
};

use super::*;

/// Where every test's services log (the agent's root is set once).
fn log_root() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir().unwrap()).path();
    assert!(pyro_guest_agent::service::set_log_root(root));
    root
}

/// A fake VM: its "vsock" socket, served by the real agent handler.
struct Guest {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Guest {
    fn start() -> Self {
        log_root();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vsock.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                std::thread::spawn(move || serve(stream));
            }
        });
        Self { _dir: dir, socket }
    }

    async fn connect(&self) -> GuestConnection {
        GuestConnection::connect(&self.socket).await.unwrap()
    }
}

/// Answers the hybrid-vsock `CONNECT <port>` line, then hands over.
fn serve(mut stream: UnixStream) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let port = String::from_utf8_lossy(&line).replace("CONNECT ", "");
    std::io::Write::write_all(&mut stream, format!("OK {port}\n").as_bytes()).unwrap();
    serve_connection(stream, PowerControl::Refuse);
}

fn guest_error(err: &ActorError) -> (GuestErrorKind, String) {
    match err {
        ActorError::Guest { kind, message } => (*kind, message.clone()),
        other => panic!("not a guest error: {other:?}"),
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most
/// `limit`.
async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(20);

// ---- shells ----

/// An attached shell, with the output read so far.
struct Term {
    attachment: ShellAttachment,
    /// Everything received, as text (lossy).
    text: String,
    /// The offset just past the last byte received.
    cursor: u64,
    exit: Option<Termination>,
}

impl Term {
    async fn attach(guest: &Guest, id: &str, from: u64) -> Self {
        let attachment = guest.connect().await.shell_attach(id, from).await.unwrap();
        Self {
            attachment,
            text: String::new(),
            cursor: from,
            exit: None,
        }
    }

    /// Reads until the output after byte `since` of `text` contains
    /// `needle`; returns the position just past it.
    async fn until(&mut self, since: usize, needle: &str) -> usize {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(at) = self.text[since..].find(needle) {
                    return since + at + needle.len();
                }
                self.step().await;
                assert!(self.exit.is_none(), "shell exited; output: {}", self.text);
            }
        })
        .await;
        match found {
            Ok(at) => at,
            Err(_) => panic!("no {needle:?} in shell output: {:?}", &self.text[since..]),
        }
    }

    async fn step(&mut self) {
        match self.attachment.next().await.unwrap() {
            ShellEvent::Output { offset, data } => {
                assert_eq!(offset, self.cursor, "output is contiguous");
                self.cursor += data.len() as u64;
                self.text.push_str(&String::from_utf8_lossy(&data));
            }
            ShellEvent::Lost { .. } => panic!("lost output in a small test"),
            ShellEvent::Exited(exit) => self.exit = Some(exit),
        }
    }
}

async fn open_shell(guest: &Guest, id: &str, cwd: &Path) -> u32 {
    guest
        .connect()
        .await
        .shell_open(ShellOpenRequest {
            shell_id: id.into(),
            cwd: cwd.to_string_lossy().into_owned(),
            cols: 120,
            rows: 30,
            // No history file on this host from test shells.
            env: vec![
                ("PYRO_TEST".into(), id.into()),
                ("HISTFILE".into(), "/dev/null".into()),
            ],
        })
        .await
        .unwrap()
}

async fn write(guest: &Guest, id: &str, input: &str) {
    guest
        .connect()
        .await
        .shell_write(id, input.as_bytes().to_vec())
        .await
        .unwrap();
}

async fn close(guest: &Guest, id: &str) {
    guest.connect().await.shell_close(id).await.unwrap();
}

const PROMPT: &str = "pyro$ ";

#[tokio::test]
async fn a_read_prompt_is_answered_through_write() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let pid = open_shell(&guest, "read-prompt", dir.path()).await;
    assert!(pid > 0);
    let mut term = Term::attach(&guest, "read-prompt", 0).await;
    let at = term.until(0, PROMPT).await;
    write(
        &guest,
        "read-prompt",
        "read -p 'name? ' n; echo \"hello $n from $PYRO_TEST in $PWD\"\n",
    )
    .await;
    let at = term.until(at, "name? ").await;
    write(&guest, "read-prompt", "pyro\n").await;
    let expected = format!("hello pyro from read-prompt in {}", dir.path().display());
    term.until(at, &expected).await;
    close(&guest, "read-prompt").await;
}

/// The foreground process group of `pid`'s terminal, from procfs.
fn foreground_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    fields.get(5)?.parse().ok()
}

/// Whether the foreground job of shell `pid` is `program`, already
/// executed (not a forked shell about to exec it, which would still
/// handle signals its own way).
fn running_in_foreground(pid: u32, program: &str) -> Option<i32> {
    let group = foreground_group(pid).filter(|g| *g > 0 && *g != pid as i32)?;
    let comm = std::fs::read_to_string(format!("/proc/{group}/comm")).ok()?;
    (comm.trim() == program).then_some(group)
}

#[tokio::test]
async fn int_interrupts_a_running_sleep_and_the_shell_survives() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let pid = open_shell(&guest, "int", dir.path()).await;
    let mut term = Term::attach(&guest, "int", 0).await;
    let at = term.until(0, PROMPT).await;
    write(&guest, "int", "sleep 30\n").await;
    // Wait until sleep is the terminal's foreground job.
    eventually(WAIT, "sleep in the foreground", || {
        running_in_foreground(pid, "sleep").is_some()
    })
    .await;
    let started = Instant::now();
    guest
        .connect()
        .await
        .shell_signal("int", ShellSignal::Int)
        .await
        .unwrap();
    let at = term.until(at, PROMPT).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    write(&guest, "int", "echo alive-$((40+2))\n").await;
    term.until(at, "alive-42").await;
    let shells = guest.connect().await.shell_list().await.unwrap();
    let shell = shells.iter().find(|s| s.shell_id == "int").unwrap();
    assert!(shell.alive);
    assert_eq!(shell.pid, pid);
    close(&guest, "int").await;
}

#[tokio::test]
async fn a_resize_is_seen_by_stty() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "resize", dir.path()).await;
    let mut term = Term::attach(&guest, "resize", 0).await;
    let at = term.until(0, PROMPT).await;
    write(&guest, "resize", "stty size\n").await;
    let at = term.until(at, "30 120").await;
    guest
        .connect()
        .await
        .shell_resize("resize", 100, 40)
        .await
        .unwrap();
    write(&guest, "resize", "stty size\n").await;
    term.until(at, "40 100").await;
    let shells = guest.connect().await.shell_list().await.unwrap();
    let shell = shells.iter().find(|s| s.shell_id == "resize").unwrap();
    assert_eq!((shell.cols, shell.rows), (100, 40));
    close(&guest, "resize").await;
}

#[tokio::test]
async fn output_arriving_while_nobody_is_attached_is_kept() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "detached", dir.path()).await;
    let mut term = Term::attach(&guest, "detached", 0).await;
    term.until(0, PROMPT).await;
    let offset = term.cursor;
    drop(term);

    let flag = dir.path().join("printed");
    write(
        &guest,
        "detached",
        &format!("echo late-$((3*3)); touch {}\n", flag.display()),
    )
    .await;
    eventually(WAIT, "the command to run", || flag.exists()).await;

    let mut term = Term::attach(&guest, "detached", offset).await;
    assert_eq!(term.attachment.info().start_offset, 0);
    term.until(0, "late-9").await;
    close(&guest, "detached").await;
}

#[tokio::test]
async fn ten_mib_of_output_wrap_the_ring_and_a_late_attach_is_told_what_it_lost() {
    const TOTAL: u64 = 10 * 1024 * 1024;
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "big", dir.path()).await;
    let mut live = guest.connect().await.shell_attach("big", 0).await.unwrap();
    write(
        &guest,
        "big",
        &format!("head -c {TOTAL} /dev/zero | tr '\\0' x; echo; echo big-$((1+1))-done\n"),
    )
    .await;

    // A live attach sees every byte: the shell waits for it (back-pressure)
    // instead of wrapping the ring over what it has not read.
    let mut cursor = 0u64;
    let mut received = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while !String::from_utf8_lossy(&tail).contains("big-2-done") {
            match live.next().await.unwrap() {
                ShellEvent::Output { offset, data } => {
                    assert_eq!(offset, cursor);
                    cursor += data.len() as u64;
                    received += data.len() as u64;
                    tail.extend_from_slice(&data);
                    let cut = tail.len().saturating_sub(64);
                    tail.drain(..cut);
                }
                ShellEvent::Lost { offset, lost_bytes } => {
                    panic!("a live attach lost {lost_bytes} bytes at {offset}")
                }
                ShellEvent::Exited(exit) => panic!("the shell exited: {exit:?}"),
            }
            // A slow host, now and then.
            if received % (1024 * 1024) < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await
    .unwrap();
    assert!(cursor > TOTAL, "{cursor} bytes");
    assert_eq!(received, cursor);
    drop(live);

    // A late attach from 0 gets the newest MiB, after a lost-bytes frame.
    let mut late = guest.connect().await.shell_attach("big", 0).await.unwrap();
    let info = late.info().clone();
    assert!(info.end_offset >= cursor);
    assert_eq!(info.end_offset - info.start_offset, 1024 * 1024);
    match late.next().await.unwrap() {
        ShellEvent::Lost { offset, lost_bytes } => {
            assert_eq!(offset, 0);
            assert_eq!(lost_bytes, info.start_offset);
        }
        other => panic!("expected a lost-bytes frame, got {other:?}"),
    }
    let mut data = Vec::new();
    let mut next = info.start_offset;
    while next < info.end_offset {
        match late.next().await.unwrap() {
            ShellEvent::Output {
                offset,
                data: chunk,
            } => {
                assert_eq!(offset, next);
                next += chunk.len() as u64;
                data.extend_from_slice(&chunk);
            }
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert!(data.len() as u64 >= info.end_offset - info.start_offset);
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("xxxx"), "{:?}", &text[..20]);
    assert!(text.contains("big-2-done"));
    close(&guest, "big").await;
}

/// The oldest and the next output offsets the agent holds for shell `id`.
async fn offsets(guest: &Guest, id: &str) -> (u64, u64) {
    let shells = guest.connect().await.shell_list().await.unwrap();
    let shell = shells.iter().find(|s| s.shell_id == id).unwrap();
    (shell.start_offset, shell.end_offset)
}

#[tokio::test]
async fn a_host_that_does_not_read_holds_the_shell_back_until_it_reads_or_hangs_up() {
    const TOTAL: u64 = 3 * 1024 * 1024;
    // The ring, plus what the connection's socket buffers take.
    const HELD_AT_MOST: u64 = 2 * 1024 * 1024;
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "held", dir.path()).await;
    let mut term = Term::attach(&guest, "held", 0).await;
    let at = term.until(0, PROMPT).await;
    let burst = |n: u32| {
        format!(
            "head -c {TOTAL} /dev/zero | tr '\\0' y; echo; touch {}/burst-{n}; echo burst-$(({n}*2))-done\n",
            dir.path().display()
        )
    };
    let done = |n: u32| dir.path().join(format!("burst-{n}"));

    // The attached host reads nothing for a while: the shell's output
    // stops at what fits, and the burst cannot end.
    write(&guest, "held", &burst(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !done(1).exists(),
        "the burst ran past a host that reads nothing"
    );
    let (_, end) = offsets(&guest, "held").await;
    assert!(end < HELD_AT_MOST, "{end}");
    // When it reads, it gets every byte (a lost-bytes frame would fail
    // the step) and the burst ends.
    term.until(at, "burst-2-done").await;
    assert!(term.cursor > TOTAL);
    assert!(done(1).exists());

    // Held back again; hanging up lets the shell run on.
    write(&guest, "held", &burst(2)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !done(2).exists(),
        "the burst ran past a host that reads nothing"
    );
    drop(term);
    eventually(WAIT, "the second burst to finish", || done(2).exists()).await;
    let (start, end) = offsets(&guest, "held").await;
    assert!(end > 2 * TOTAL && start > TOTAL, "{start}..{end}");
    close(&guest, "held").await;
}

#[tokio::test]
async fn output_held_back_by_a_slow_host_arrives_before_the_exit() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "slow-exit", dir.path()).await;
    let mut term = Term::attach(&guest, "slow-exit", 0).await;
    term.until(0, PROMPT).await;
    write(
        &guest,
        "slow-exit",
        "head -c 3145728 /dev/zero | tr '\\0' z; echo; echo tail-$((1+2)); exit 7\n",
    )
    .await;
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut steps = 0u32;
        while term.exit.is_none() {
            term.step().await;
            steps += 1;
            // Slower than the shell: most of its output waits in the agent
            // when it exits.
            if steps % 4 == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(term.exit.map(|e| e.exit_code), Some(7));
    assert!(term.cursor > 3 * 1024 * 1024);
    assert!(
        term.text.contains("tail-3"),
        "the tail arrived before the exit"
    );
}

#[tokio::test]
async fn two_shells_run_at_once() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "pair-a", dir.path()).await;
    open_shell(&guest, "pair-b", dir.path()).await;
    let mut a = Term::attach(&guest, "pair-a", 0).await;
    let mut b = Term::attach(&guest, "pair-b", 0).await;
    let at_a = a.until(0, PROMPT).await;
    let at_b = b.until(0, PROMPT).await;
    // a blocks on a read while b works; then a gets its answer.
    write(&guest, "pair-a", "read x; echo \"a-got-$x\"\n").await;
    write(&guest, "pair-b", "echo \"b-says-$((6*7))\"\n").await;
    b.until(at_b, "b-says-42").await;
    write(&guest, "pair-a", "ping\n").await;
    a.until(at_a, "a-got-ping").await;
    assert!(!a.text.contains("b-says"));
    assert!(!b.text.contains("a-got"));
    let ids: Vec<String> = guest
        .connect()
        .await
        .shell_list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.shell_id)
        .filter(|id| id.starts_with("pair-"))
        .collect();
    assert_eq!(ids, ["pair-a", "pair-b"]);
    close(&guest, "pair-a").await;
    close(&guest, "pair-b").await;
}

#[tokio::test]
async fn an_exit_is_reported_then_the_shell_is_forgotten() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "exits", dir.path()).await;
    let mut term = Term::attach(&guest, "exits", 0).await;
    term.until(0, PROMPT).await;
    write(&guest, "exits", "exit 3\n").await;
    tokio::time::timeout(WAIT, async {
        while term.exit.is_none() {
            term.step().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        term.exit,
        Some(Termination {
            exit_code: 3,
            signal: None
        })
    );
    let err = guest
        .connect()
        .await
        .shell_write("exits", b"echo\n".to_vec())
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::NotFound);
    let shells = guest.connect().await.shell_list().await.unwrap();
    assert!(shells.iter().all(|s| s.shell_id != "exits"));
}

#[tokio::test]
async fn an_exit_nobody_saw_is_kept_for_a_reattach() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "unseen", dir.path()).await;
    write(&guest, "unseen", "echo bye-$((1+1)); exit 4\n").await;
    let mut exited = false;
    for _ in 0..1000 {
        let shells = guest.connect().await.shell_list().await.unwrap();
        let shell = shells.iter().find(|s| s.shell_id == "unseen").unwrap();
        if !shell.alive {
            assert_eq!(shell.exit.map(|e| e.exit_code), Some(4));
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exited);
    // Writing to it is refused; attaching still gets the output and exit.
    let err = guest
        .connect()
        .await
        .shell_write("unseen", b"x".to_vec())
        .await
        .unwrap_err();
    let (kind, message) = guest_error(&err);
    assert_eq!(kind, GuestErrorKind::InvalidRequest);
    assert!(message.contains("shell unseen has exited"), "{message}");
    let mut term = Term::attach(&guest, "unseen", 0).await;
    term.until(0, "bye-2").await;
    while term.exit.is_none() {
        term.step().await;
    }
    assert_eq!(term.exit.map(|e| e.exit_code), Some(4));
}

#[tokio::test]
async fn close_hangs_up_a_busy_shell() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let pid = open_shell(&guest, "hangup", dir.path()).await;
    let mut term = Term::attach(&guest, "hangup", 0).await;
    term.until(0, PROMPT).await;
    write(&guest, "hangup", "sleep 60\n").await;
    eventually(WAIT, "sleep in the foreground", || {
        running_in_foreground(pid, "sleep").is_some()
    })
    .await;
    let sleep_group = running_in_foreground(pid, "sleep").unwrap();
    let started = Instant::now();
    close(&guest, "hangup").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "hung up at once"
    );
    // The attach sees the exit, by SIGHUP.
    tokio::time::timeout(WAIT, async {
        while term.exit.is_none() {
            term.step().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(term.exit.and_then(|e| e.signal), Some(libc::SIGHUP));
    // The foreground job got the hangup too.
    eventually(WAIT, "the sleep to go", || {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(sleep_group), None).is_err()
    })
    .await;
    let shells = guest.connect().await.shell_list().await.unwrap();
    assert!(shells.iter().all(|s| s.shell_id != "hangup"));
}

/// Descriptors above 2 that this test process itself inherited without
/// close-on-exec (from whatever started it); its children get them too,
/// and they are not the agent's to close.
fn inherited_fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            let fd: i32 = name.parse().ok()?;
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).ok()?;
            (fd > 2 && flags & libc::FD_CLOEXEC == 0).then_some(name)
        })
        .collect()
}

#[tokio::test]
async fn shells_and_services_inherit_no_agent_descriptor() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let pid = open_shell(&guest, "fds", dir.path()).await;
    let mut term = Term::attach(&guest, "fds", 0).await;
    term.until(0, PROMPT).await;
    // Idle at its prompt, bash holds its terminal on 0-2 and on 255.
    let mut fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let target = std::fs::read_link(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let inherited = inherited_fds();
    fds.retain(|(fd, _)| !inherited.contains(fd));
    fds.sort();
    let names: Vec<&str> = fds.iter().map(|(fd, _)| fd.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "255"], "{fds:?}");
    assert!(
        fds.iter()
            .all(|(_, target)| target.starts_with("/dev/pts/")),
        "{fds:?}"
    );
    close(&guest, "fds").await;

    start(
        &guest,
        start_request("svc-fds", dir.path(), "exec ls /proc/self/fd"),
    )
    .await;
    guest
        .connect()
        .await
        .service_watch("svc-fds")
        .await
        .unwrap();
    let mut stream = guest
        .connect()
        .await
        .service_logs("svc-fds", None, true)
        .await
        .unwrap();
    let mut records = Vec::new();
    while let ServiceLogEvent::Record(s, data) = stream.next().await.unwrap() {
        records.push((s, data));
    }
    // ls's own directory handle is fd 3.
    let inherited = inherited_fds();
    let fds: Vec<String> = text_of(&records)
        .lines()
        .map(str::to_owned)
        .filter(|fd| !inherited.contains(fd))
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3"]);
    remove(&guest, "svc-fds").await;
}

#[tokio::test]
async fn shell_requests_are_checked() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    open_shell(&guest, "checked", dir.path()).await;

    let open = |id: &str, cwd: &str| ShellOpenRequest {
        shell_id: id.into(),
        cwd: cwd.into(),
        cols: 80,
        rows: 24,
        env: vec![],
    };
    let err = guest
        .connect()
        .await
        .shell_open(open("checked", "/"))
        .await
        .unwrap_err();
    let (kind, message) = guest_error(&err);
    assert_eq!(kind, GuestErrorKind::InvalidRequest);
    assert!(
        message.contains("shell checked already exists"),
        "{message}"
    );

    let err = guest
        .connect()
        .await
        .shell_open(open("nowhere", "/no/such/dir"))
        .await
        .unwrap_err();
    let (kind, message) = guest_error(&err);
    assert_eq!(kind, GuestErrorKind::NotFound);
    assert!(message.contains("/no/such/dir"), "{message}");

    let err = guest
        .connect()
        .await
        .shell_open(open("bad/id", "/"))
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::InvalidRequest);

    for err in [
        guest
            .connect()
            .await
            .shell_attach("ghost", 0)
            .await
            .unwrap_err(),
        guest
            .connect()
            .await
            .shell_signal("ghost", ShellSignal::Term)
            .await
            .unwrap_err(),
        guest
            .connect()
            .await
            .shell_close("ghost")
            .await
            .unwrap_err(),
    ] {
        let (kind, message) = guest_error(&err);
        assert_eq!(kind, GuestErrorKind::NotFound);
        assert!(message.contains("shell ghost does not exist"), "{message}");
    }

    let err = guest
        .connect()
        .await
        .shell_attach("checked", u64::MAX)
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::InvalidRequest);
    let err = guest
        .connect()
        .await
        .shell_resize("checked", 0, 10)
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::InvalidRequest);
    let err = guest
        .connect()
        .await
        .shell_write(
            "checked",
            vec![b'x'; pyro_guest_protocol::SHELL_WRITE_MAX_BYTES + 1],
        )
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::InvalidRequest);
    close(&guest, "checked").await;
}

// ---- services ----

fn start_request(name: &str, cwd: &Path, command: &str) -> ServiceStartRequest {
    ServiceStartRequest {
        name: name.into(),
        command: CommandLine::Shell(command.into()),
        cwd: cwd.to_string_lossy().into_owned(),
        env: vec![],
        readiness: None,
        ready_timeout_ms: 10_000,
        ready_interval_ms: 50,
    }
}

async fn start(guest: &Guest, request: ServiceStartRequest) -> ServiceStarted {
    guest.connect().await.service_start(request).await.unwrap()
}

async fn status(guest: &Guest, name: &str) -> ServiceInfo {
    guest.connect().await.service_status(name).await.unwrap()
}

async fn remove(guest: &Guest, name: &str) {
    guest.connect().await.service_remove(name).await.unwrap();
    assert!(!log_root().join(name).exists());
}

/// Every record of a finished log stream, and its summary.
async fn all_logs(
    guest: &Guest,
    name: &str,
    tail: Option<u64>,
) -> (Vec<(OutputStream, Vec<u8>)>, ServiceLogsSummary) {
    let mut stream = guest
        .connect()
        .await
        .service_logs(name, tail, false)
        .await
        .unwrap();
    let mut records = Vec::new();
    loop {
        match stream.next().await.unwrap() {
            ServiceLogEvent::Record(s, data) => records.push((s, data)),
            ServiceLogEvent::Done(summary) => return (records, summary),
        }
    }
}

/// Joins adjacent records of the same stream.
fn merged(records: &[(OutputStream, Vec<u8>)]) -> Vec<(OutputStream, String)> {
    let mut out: Vec<(OutputStream, String)> = Vec::new();
    for (stream, data) in records {
        let text = String::from_utf8_lossy(data);
        match out.last_mut() {
            Some((last, joined)) if last == stream => joined.push_str(&text),
            _ => out.push((*stream, text.into_owned())),
        }
    }
    out
}

fn text_of(records: &[(OutputStream, Vec<u8>)]) -> String {
    records
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect()
}

/// The TCP and HTTP services are Python programs; a host without Python
/// fails those tests with this message rather than skipping them.
fn python3() -> &'static str {
    let python = "/usr/bin/python3";
    assert!(
        Path::new(python).exists(),
        "{python} is missing; install it (apt-get install python3) to run the tcp and http readiness tests"
    );
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `pid` is gone (or a zombie waiting for its reaper).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_file_readiness_waits_for_the_file() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request(
        "svc-file",
        dir.path(),
        "sleep 0.3; touch ready.flag; echo up; exec sleep 60",
    );
    request.readiness = Some(Readiness::File("ready.flag".into()));
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running, "{started:?}");
    assert_eq!(started.stop_reason, None);
    assert!(started.ready_after_ms >= 300, "{started:?}");
    assert!(dir.path().join("ready.flag").exists());
    let info = status(&guest, "svc-file").await;
    assert!(info.alive);
    assert_eq!(info.pid, started.pid);
    assert_eq!(info.state, ServiceState::Running);
    assert!(info.started_at_ms > 0);

    // A second start of a running name is refused.
    let err = guest
        .connect()
        .await
        .service_start(start_request("svc-file", dir.path(), "true"))
        .await
        .unwrap_err();
    let (kind, message) = guest_error(&err);
    assert_eq!(kind, GuestErrorKind::InvalidRequest);
    assert!(
        message.contains("service svc-file is already running"),
        "{message}"
    );

    remove(&guest, "svc-file").await;
    let err = guest
        .connect()
        .await
        .service_status("svc-file")
        .await
        .unwrap_err();
    assert_eq!(guest_error(&err).0, GuestErrorKind::NotFound);
    assert!(gone(started.pid as i32));
}

#[tokio::test]
async fn a_tcp_readiness_waits_for_a_listener() {
    let python = python3();
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut request = start_request(
        "svc-tcp",
        dir.path(),
        &format!(
            "exec {python} -c 'import socket, time\ntime.sleep(0.3)\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind((\"127.0.0.1\", {port}))\ns.listen()\ntime.sleep(60)'"
        ),
    );
    request.readiness = Some(Readiness::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running, "{started:?}");
    assert!(started.ready_after_ms >= 300, "{started:?}");
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();

    // Python dies of SIGTERM: no SIGKILL needed.
    let stop = guest
        .connect()
        .await
        .service_stop("svc-tcp", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!stop.killed);
    assert_eq!(stop.exit.signal, Some(libc::SIGTERM));
    let info = status(&guest, "svc-tcp").await;
    assert_eq!(info.state, ServiceState::Stopped);
    assert_eq!(info.stop_reason, Some(ServiceStopReason::StopRequested));
    assert!(!info.alive);
    assert!(info.ended_at_ms.is_some());
    remove(&guest, "svc-tcp").await;
}

#[tokio::test]
async fn an_http_readiness_waits_for_a_2xx() {
    let python = python3();
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let port = free_port();
    let mut request = start_request(
        "svc-http",
        dir.path(),
        &format!("exec {python} -m http.server {port} --bind 127.0.0.1"),
    );
    request.readiness = Some(Readiness::Http(format!("http://127.0.0.1:{port}/")));
    request.ready_timeout_ms = 30_000;
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running, "{started:?}");
    // The server logged the readiness GET on stderr.
    eventually(WAIT, "the access log line", || {
        std::fs::read(log_root().join("svc-http/output.log"))
            .is_ok_and(|log| String::from_utf8_lossy(&log).contains("\"GET / HTTP/1.0\" 200"))
    })
    .await;
    remove(&guest, "svc-http").await;
}

#[tokio::test]
async fn a_command_readiness_runs_with_the_service_cwd_and_env() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request(
        "svc-cmd",
        dir.path(),
        "sleep 0.2; echo \"$MARK\" > mark; exec sleep 60",
    );
    request.env = vec![("MARK".into(), "ready-now".into())];
    request.readiness = Some(Readiness::Command(CommandLine::Shell(
        "grep -qx \"$MARK\" mark".into(),
    )));
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running, "{started:?}");
    assert!(started.ready_after_ms >= 200, "{started:?}");
    remove(&guest, "svc-cmd").await;
}

#[tokio::test]
async fn a_service_that_exits_before_ready_fails() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request("svc-early", dir.path(), "echo bye; exit 3");
    request.readiness = Some(Readiness::File("never".into()));
    let clock = Instant::now();
    let started = start(&guest, request).await;
    assert!(clock.elapsed() < Duration::from_secs(5));
    assert_eq!(started.state, ServiceState::Failed);
    assert_eq!(
        started.stop_reason,
        Some(ServiceStopReason::ProcessExitedBeforeReady)
    );
    let info = status(&guest, "svc-early").await;
    assert_eq!(info.exit.map(|e| e.exit_code), Some(3));
    let (records, summary) = all_logs(&guest, "svc-early", None).await;
    assert_eq!(text_of(&records), "bye\n");
    assert_eq!(summary.exit.map(|e| e.exit_code), Some(3));
    assert!(!summary.truncated);

    // A name that is not running can be started again; the previous run's
    // output stays, after a separator on stderr.
    let started = start(&guest, start_request("svc-early", dir.path(), "echo again")).await;
    assert_eq!(started.state, ServiceState::Running);
    guest
        .connect()
        .await
        .service_watch("svc-early")
        .await
        .unwrap();
    let (records, summary) = all_logs(&guest, "svc-early", None).await;
    let separator = "[pyro] service svc-early started again; the lines above are from its \
                     previous run, which exited with code 3\n";
    assert_eq!(text_of(&records), format!("bye\n{separator}again\n"));
    assert_eq!(
        records[1],
        (OutputStream::Stderr, separator.as_bytes().to_vec())
    );
    assert!(!summary.truncated);
    let info = status(&guest, "svc-early").await;
    assert_eq!(
        (info.stdout_bytes, info.stderr_bytes),
        (6, 0),
        "this run's own"
    );
    let (records, _) = all_logs(&guest, "svc-early", Some(1)).await;
    assert_eq!(text_of(&records), "again\n");

    // Removing it deletes every run's logs.
    remove(&guest, "svc-early").await;
    start(&guest, start_request("svc-early", dir.path(), "echo third")).await;
    guest
        .connect()
        .await
        .service_watch("svc-early")
        .await
        .unwrap();
    let (records, _) = all_logs(&guest, "svc-early", None).await;
    assert_eq!(text_of(&records), "third\n");
    remove(&guest, "svc-early").await;
}

#[tokio::test]
async fn a_readiness_timeout_kills_the_process_group() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request(
        "svc-slow",
        dir.path(),
        "sleep 300 & echo $! > bg.pid; echo $$ > leader.pid; wait",
    );
    request.readiness = Some(Readiness::File("never".into()));
    request.ready_timeout_ms = 700;
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Failed);
    assert_eq!(
        started.stop_reason,
        Some(ServiceStopReason::ReadinessTimeout)
    );
    assert!(started.ready_after_ms >= 700, "{started:?}");
    let read_pid = |name: &str| -> i32 {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (leader, background) = (read_pid("leader.pid"), read_pid("bg.pid"));
    assert_eq!(leader, started.pid as i32);
    eventually(WAIT, "the whole group to die", || {
        gone(leader) && gone(background)
    })
    .await;
    let info = status(&guest, "svc-slow").await;
    assert!(!info.alive);
    assert_eq!(info.state, ServiceState::Failed);
    assert_eq!(info.exit.and_then(|e| e.signal), Some(libc::SIGKILL));
    remove(&guest, "svc-slow").await;
}

#[tokio::test]
async fn watch_reports_the_exit() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let started = start(
        &guest,
        start_request("svc-watch", dir.path(), "sleep 0.3; exit 7"),
    )
    .await;
    assert_eq!(started.state, ServiceState::Running);
    let watcher = guest.connect().await;
    let exit = tokio::time::timeout(WAIT, watcher.service_watch("svc-watch"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        exit,
        Termination {
            exit_code: 7,
            signal: None
        }
    );
    // Watching an ended service answers at once.
    let again = guest
        .connect()
        .await
        .service_watch("svc-watch")
        .await
        .unwrap();
    assert_eq!(again, exit);
    let info = status(&guest, "svc-watch").await;
    assert_eq!(info.state, ServiceState::Exited);
    // Stopping an ended service reports its exit.
    let stop = guest
        .connect()
        .await
        .service_stop("svc-watch", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((stop.exit, stop.killed), (exit, false));
    remove(&guest, "svc-watch").await;
}

#[tokio::test]
async fn stopping_an_ended_service_ends_what_it_left_behind() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    // The leader exits at once; its background child stays in the group.
    start(
        &guest,
        start_request(
            "svc-leftover",
            dir.path(),
            "sleep 300 >/dev/null 2>&1 & echo $! > bg.pid",
        ),
    )
    .await;
    let exit = guest
        .connect()
        .await
        .service_watch("svc-leftover")
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let background: i32 = std::fs::read_to_string(dir.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!gone(background));
    let stop = guest
        .connect()
        .await
        .service_stop("svc-leftover", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((stop.exit, stop.killed), (exit, false));
    eventually(WAIT, "the background child to go", || gone(background)).await;
    assert_eq!(
        status(&guest, "svc-leftover").await.state,
        ServiceState::Exited
    );
    remove(&guest, "svc-leftover").await;
}

#[tokio::test]
async fn stop_escalates_from_term_to_kill() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request(
        "svc-stubborn",
        dir.path(),
        "trap '' TERM; touch armed; while :; do sleep 0.05; done",
    );
    request.readiness = Some(Readiness::File("armed".into()));
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running);
    let clock = Instant::now();
    let stop = guest
        .connect()
        .await
        .service_stop("svc-stubborn", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(clock.elapsed() >= Duration::from_millis(300));
    assert!(stop.killed);
    assert_eq!(stop.exit.signal, Some(libc::SIGKILL));
    assert_eq!(stop.exit.exit_code, 128 + libc::SIGKILL);
    assert!(gone(started.pid as i32));
    remove(&guest, "svc-stubborn").await;
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    start(
        &guest,
        start_request(
            "svc-logs",
            dir.path(),
            "for i in 1 2 3 4 5; do echo line$i; done; while [ ! -f go ]; do sleep 0.05; done; echo after-go; echo err-after >&2",
        ),
    )
    .await;
    for _ in 0..1000 {
        if status(&guest, "svc-logs").await.stdout_bytes >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (records, summary) = all_logs(&guest, "svc-logs", Some(2)).await;
    assert_eq!(text_of(&records), "line4\nline5\n");
    assert!(summary.truncated);
    assert_eq!(summary.exit, None);
    let (records, summary) = all_logs(&guest, "svc-logs", None).await;
    assert_eq!(text_of(&records), "line1\nline2\nline3\nline4\nline5\n");
    assert!(!summary.truncated);
    let (records, _) = all_logs(&guest, "svc-logs", Some(0)).await;
    assert!(records.is_empty());

    let mut follow = guest
        .connect()
        .await
        .service_logs("svc-logs", Some(1), true)
        .await
        .unwrap();
    match follow.next().await.unwrap() {
        ServiceLogEvent::Record(OutputStream::Stdout, data) => assert_eq!(data, b"line5\n"),
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.path().join("go"), "").unwrap();
    let mut records = Vec::new();
    let summary = tokio::time::timeout(WAIT, async {
        loop {
            match follow.next().await.unwrap() {
                ServiceLogEvent::Record(stream, data) => records.push((stream, data)),
                ServiceLogEvent::Done(summary) => return summary,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        merged(&records),
        [
            (OutputStream::Stdout, "after-go\n".to_owned()),
            (OutputStream::Stderr, "err-after\n".to_owned())
        ]
    );
    assert_eq!(summary.exit.map(|e| e.exit_code), Some(0));
    assert_eq!(summary.records, 3);
    let info = status(&guest, "svc-logs").await;
    assert_eq!((info.stdout_bytes, info.stderr_bytes), (39, 10));
    assert!(info.log_bytes > 49);
    remove(&guest, "svc-logs").await;
}

#[tokio::test]
async fn interleaved_stdout_and_stderr_keep_their_order() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    start(
        &guest,
        start_request(
            "svc-order",
            dir.path(),
            "for i in 1 2 3; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done",
        ),
    )
    .await;
    guest
        .connect()
        .await
        .service_watch("svc-order")
        .await
        .unwrap();
    // The exit can come before the last read of the pipes; follow to the end.
    let mut stream = guest
        .connect()
        .await
        .service_logs("svc-order", None, true)
        .await
        .unwrap();
    let mut records = Vec::new();
    while let ServiceLogEvent::Record(s, data) = stream.next().await.unwrap() {
        records.push((s, data));
    }
    let expected: Vec<(OutputStream, String)> = (1..=3)
        .flat_map(|i| {
            [
                (OutputStream::Stdout, format!("out{i}\n")),
                (OutputStream::Stderr, format!("err{i}\n")),
            ]
        })
        .collect();
    assert_eq!(merged(&records), expected);
    let names: Vec<String> = guest
        .connect()
        .await
        .service_list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .filter(|n| n == "svc-order")
        .collect();
    assert_eq!(names, ["svc-order"]);
    remove(&guest, "svc-order").await;
}

#[tokio::test]
async fn huge_timeouts_are_cut_not_fatal() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let mut request = start_request("svc-huge", dir.path(), "touch up; exec sleep 60");
    request.readiness = Some(Readiness::File("up".into()));
    request.ready_timeout_ms = u64::MAX;
    request.ready_interval_ms = 20;
    let started = start(&guest, request).await;
    assert_eq!(started.state, ServiceState::Running);
    let stop = guest
        .connect()
        .await
        .service_stop("svc-huge", Duration::from_millis(u64::MAX))
        .await
        .unwrap();
    assert_eq!(stop.exit.signal, Some(libc::SIGTERM));
    remove(&guest, "svc-huge").await;
}

#[tokio::test]
async fn service_requests_are_checked() {
    let guest = Guest::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            start_request("bad/name", dir.path(), "true"),
            GuestErrorKind::InvalidRequest,
        ),
        (
            start_request("svc-nocwd", Path::new("/no/such/dir"), "true"),
            GuestErrorKind::NotFound,
        ),
        (
            start_request("svc-empty", dir.path(), "  "),
            GuestErrorKind::InvalidRequest,
        ),
        (
            ServiceStartRequest {
                readiness: Some(Readiness::Http("https://127.0.0.1/".into())),
                ..start_request("svc-https", dir.path(), "true")
            },
            GuestErrorKind::InvalidRequest,
        ),
        (
            ServiceStartRequest {
                command: CommandLine::Argv(vec!["/no/such/program".into()]),
                ..start_request("svc-missing", dir.path(), "true")
            },
            GuestErrorKind::NotFound,
        ),
    ];
    for (request, want) in cases {
        let name = request.name.clone();
        let err = guest
            .connect()
            .await
            .service_start(request)
            .await
            .unwrap_err();
        let (kind, message) = guest_error(&err);
        assert_eq!(kind, want, "{name}: {message}");
        assert!(message.contains(&name) || name.contains('/'), "{message}");
    }
    for err in [
        guest
            .connect()
            .await
            .service_status("svc-ghost")
            .await
            .unwrap_err(),
        guest
            .connect()
            .await
            .service_stop("svc-ghost", Duration::from_secs(1))
            .await
            .unwrap_err(),
        guest
            .connect()
            .await
            .service_watch("svc-ghost")
            .await
            .unwrap_err(),
        guest
            .connect()
            .await
            .service_remove("svc-ghost")
            .await
            .unwrap_err(),
    ] {
        let (kind, message) = guest_error(&err);
        assert_eq!(kind, GuestErrorKind::NotFound);
        assert!(
            message.contains("service svc-ghost does not exist"),
            "{message}"
        );
    }
    let mut logs = guest
        .connect()
        .await
        .service_logs("svc-ghost", None, false)
        .await
        .unwrap();
    assert_eq!(
        guest_error(&logs.next().await.unwrap_err()).0,
        GuestErrorKind::NotFound
    );
}

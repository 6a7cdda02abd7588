//! Readiness checks, run in the guest by the connection that started the
//! service.
//!
//! Each check is bounded by its own limit (1 s for TCP, 2 s for HTTP, 10 s
//! for a command) and by the time left before the readiness deadline, so
//! the answer never comes much later than the host expects it. Host names
//! are IP literals, `localhost` or names in `/etc/hosts`: there is no DNS.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use pyro_guest_protocol::{GuestError, Readiness};

use super::command_for;
use crate::shell::common::invalid;

const TCP_LIMIT: Duration = Duration::from_secs(1);
const HTTP_LIMIT: Duration = Duration::from_secs(2);
const COMMAND_LIMIT: Duration = Duration::from_secs(10);
/// Where host names are looked up (there is no DNS lookup).
const HOSTS_FILE: &str = "/etc/hosts";
/// The most of an HTTP answer read to find its status line.
const STATUS_LINE_MAX: usize = 1024;

/// A readiness check, validated and ready to run.
#[derive(Debug)]
pub enum Check {
    /// A path exists.
    File(PathBuf),
    /// A TCP connection succeeds.
    Tcp(String, u16),
    /// A GET answers 2xx or 3xx.
    Http(HttpTarget),
    /// A command exits 0.
    Command(pyro_guest_protocol::CommandLine),
}

/// What an `http://` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The host (without brackets for IPv6).
    pub host: String,
    /// The port (80 unless given).
    pub port: u16,
    /// The authority as written, for the `Host` header.
    pub authority: String,
    /// The path and query, at least `/`.
    pub path: String,
}

/// Validates `readiness` for service `name` running in `cwd`.
pub fn prepare(readiness: &Readiness, name: &str, cwd: &str) -> Result<Check, GuestError> {
    match readiness {
        Readiness::File(path) => {
            if path.is_empty() {
                return Err(invalid(format!(
                    "the readiness file of service {name} is empty; name a path"
                )));
            }
            Ok(Check::File(Path::new(cwd).join(path)))
        }
        Readiness::Tcp { host, port } => {
            if host.is_empty() || *port == 0 {
                return Err(invalid(format!(
                    "the readiness address of service {name} needs a host and a non-zero port"
                )));
            }
            Ok(Check::Tcp(host.clone(), *port))
        }
        Readiness::Http(url) => parse_http_url(url).map(Check::Http).map_err(|why| {
            invalid(format!(
                "the readiness url {url:?} of service {name} is not usable: {why}"
            ))
        }),
        Readiness::Command(command) => {
            command_for(command, name, "readiness command")?;
            Ok(Check::Command(command.clone()))
        }
    }
}

/// Parses `http://host[:port][/path]`.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("only plain http:// urls are supported".to_owned());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    if authority.contains('@') {
        return Err("user names in the url are not supported".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("an ipv6 address misses its closing ']'".to_owned());
        };
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the url has no host".to_owned());
    }
    let port = match port {
        None => 80,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port"))?,
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the path holds spaces or control characters".to_owned());
    }
    Ok(HttpTarget {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// Runs `check` once, giving it at most `left` (never less than 50 ms).
pub fn passes(check: &Check, cwd: &str, env: &[(String, String)], left: Duration) -> bool {
    let left = left.max(Duration::from_millis(50));
    match check {
        Check::File(path) => path.exists(),
        Check::Tcp(host, port) => connect(host, *port, TCP_LIMIT.min(left)).is_some(),
        Check::Http(target) => http_ok(target, HTTP_LIMIT.min(left)),
        Check::Command(command) => command_ok(command, cwd, env, COMMAND_LIMIT.min(left)),
    }
}

fn connect(host: &str, port: u16, limit: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + limit;
    let hosts = std::fs::read_to_string(HOSTS_FILE).unwrap_or_default();
    for addr in resolve(host, &hosts)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Ok(stream) = TcpStream::connect_timeout(&addr, left) {
            return Some(stream);
        }
    }
    None
}

/// The addresses of `host`: an IP literal, `localhost`, or a name in
/// `hosts` (the text of `/etc/hosts`).
///
/// No DNS: a service's readiness is checked from inside its own guest, and
/// resolving through glibc's NSS would put its resolver (and a dependency
/// on the guest's NSS modules) into the static agent.
fn resolve(host: &str, hosts: &str) -> Vec<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return vec![ip];
    }
    let mut found: Vec<IpAddr> = hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let ip = words.next()?.parse::<IpAddr>().ok()?;
            words
                .any(|name| name.eq_ignore_ascii_case(bare))
                .then_some(ip)
        })
        .collect();
    if found.is_empty() && bare.eq_ignore_ascii_case("localhost") {
        found = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    found
}

fn http_ok(target: &HttpTarget, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let Some(mut stream) = connect(&target.host, target.port, limit) else {
        return false;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero()
        || stream.set_read_timeout(Some(left)).is_err()
        || stream.set_write_timeout(Some(left)).is_err()
    {
        return false;
    }
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: pyro-guest-agent\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < STATUS_LINE_MAX {
        if Instant::now() >= deadline {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    status_ok(&head)
}

/// Whether an HTTP answer starts with a 2xx or 3xx status line.
fn status_ok(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let version_ok = words.next().is_some_and(|v| v.starts_with(b"HTTP/"));
    let code = words.next().unwrap_or_default();
    version_ok
        && code.len() == 3
        && matches!(code[0], b'2' | b'3')
        && code.iter().all(u8::is_ascii_digit)
}

fn command_ok(
    command: &pyro_guest_protocol::CommandLine,
    cwd: &str,
    env: &[(String, String)],
    limit: Duration,
) -> bool {
    let Ok(mut command) = command_for(command, "", "readiness command") else {
        return false;
    };
    command
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("ready-wait".into())
        .spawn(move || {
            let _ = tx.send(child.wait().map(|status| status.success()).unwrap_or(false));
        });
    if waiter.is_err() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        return false;
    }
    match rx.recv_timeout(limit) {
        Ok(success) => success,
        Err(_) => {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            // The waiter reaps it.
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_guest_protocol::CommandLine;

    #[test]
    fn http_urls_are_parsed() {
        let t = parse_http_url("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/health?x=1")
        );
        let t = parse_http_url("http://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = parse_http_url("http://[::1]:81?q").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.path.as_str(),
                t.authority.as_str()
            ),
            ("::1", 81, "/?q", "[::1]:81")
        );
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://:80/",
            "http://x:0/",
            "http://x:99999/",
            "http://u@x/",
            "http://x/a b",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_resolve_without_dns() {
        let hosts =
            "127.0.0.1 localhost\n# 10.0.0.9 db\n10.0.0.2 Db db.local # main\n::1 ip6-localhost\n";
        assert_eq!(
            resolve("10.1.2.3", hosts),
            ["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(resolve("[::1]", hosts), [IpAddr::from(Ipv6Addr::LOCALHOST)]);
        assert_eq!(
            resolve("db", hosts),
            ["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            resolve("localhost", hosts),
            [IpAddr::from(Ipv4Addr::LOCALHOST)]
        );
        assert_eq!(resolve("localhost", "").len(), 2);
        assert!(resolve("example.com", hosts).is_empty());
    }

    #[test]
    fn status_lines_are_judged() {
        assert!(status_ok(b"HTTP/1.0 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.1 302 Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!status_ok(b"SSH-2.0-OpenSSH\r\n"));
        assert!(!status_ok(b""));
    }

    #[test]
    fn file_and_command_checks_run_in_the_service_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().to_str().unwrap();
        let file = prepare(&Readiness::File("ready".into()), "web", cwd).unwrap();
        let command = prepare(
            &Readiness::Command(CommandLine::Shell(
                "test \"$FLAG\" = yes && test -f ready".into(),
            )),
            "web",
            cwd,
        )
        .unwrap();
        let env = [("FLAG".to_owned(), "yes".to_owned())];
        assert!(!passes(&file, cwd, &env, Duration::from_secs(1)));
        assert!(!passes(&command, cwd, &env, Duration::from_secs(5)));
        std::fs::write(dir.path().join("ready"), "").unwrap();
        assert!(passes(&file, cwd, &env, Duration::from_secs(1)));
        assert!(passes(&command, cwd, &env, Duration::from_secs(5)));
        assert!(!passes(&command, cwd, &[], Duration::from_secs(5)));
    }

    #[test]
    fn a_slow_command_check_is_cut_off() {
        let check = Check::Command(CommandLine::Shell("sleep 30".into()));
        let started = Instant::now();
        assert!(!passes(&check, "/", &[], Duration::from_millis(200)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn tcp_and_http_checks_talk_to_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = prepare(
            &Readiness::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            "db",
            "/",
        )
        .unwrap();
        assert!(passes(&tcp, "/", &[], Duration::from_secs(1)));
        drop(listener);
        assert!(!passes(&tcp, "/", &[], Duration::from_secs(1)));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.0 204 No Content\r\n\r\n",
                "HTTP/1.0 503 Busy\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 512];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    assert_ne!(n, 0);
                    request.extend_from_slice(&buf[..n]);
                }
                assert!(request.starts_with(b"GET /up HTTP/1.0\r\n"));
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let http = prepare(
            &Readiness::Http(format!("http://127.0.0.1:{port}/up")),
            "web",
            "/",
        )
        .unwrap();
        assert!(passes(&http, "/", &[], Duration::from_secs(2)));
        assert!(!passes(&http, "/", &[], Duration::from_secs(2)));
        server.join().unwrap();
    }
}

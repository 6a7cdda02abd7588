//! Helpers shared by shells and services: locks that shrug off poisoning,
//! error frames, exit statuses, request validation, and a thread that
//! notices when the host hangs up on a long-lived answer.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyro_guest_protocol::{GuestError, GuestErrorKind, Termination};

/// Locks `mutex`. A panicking holder cannot leave the agent's state half
/// updated in a way that matters here (and the guest build aborts on
/// panic), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `changed` until notified.
pub(crate) fn wait<'a, T>(changed: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    changed.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `changed` until notified or `limit` passed.
pub(crate) fn wait_for<'a, T>(
    changed: &Condvar,
    guard: MutexGuard<'a, T>,
    limit: Duration,
) -> MutexGuard<'a, T> {
    match changed.wait_timeout(guard, limit) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// A guest error of `kind`.
pub(crate) fn error(kind: GuestErrorKind, message: impl Into<String>) -> GuestError {
    GuestError {
        kind,
        message: message.into(),
    }
}

/// A malformed or impossible request.
pub(crate) fn invalid(message: impl Into<String>) -> GuestError {
    error(GuestErrorKind::InvalidRequest, message)
}

/// How a child ended, as the protocol reports it.
pub(crate) fn termination(status: std::process::ExitStatus) -> Termination {
    let signal = status.signal();
    Termination {
        exit_code: status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0)),
        signal,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks an id or name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with
/// a dot (names become directory names).
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), GuestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {name:?} is not a valid name; use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        )))
    }
}

/// Checks environment variables: names without `=` or NUL, values without
/// NUL.
pub(crate) fn check_env(owner: &str, env: &[(String, String)]) -> Result<(), GuestError> {
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(invalid(format!(
                "environment variable {key:?} for {owner} is invalid; names need no '=' and neither names nor values may hold NUL"
            )));
        }
    }
    Ok(())
}

/// Checks that `cwd` is an existing directory.
pub(crate) fn check_cwd(owner: &str, cwd: &str) -> Result<(), GuestError> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(error(
            GuestErrorKind::WrongType,
            format!("working directory {cwd} for {owner} is not a directory; pick a directory"),
        )),
        Err(_) => Err(error(
            GuestErrorKind::NotFound,
            format!("working directory {cwd} for {owner} does not exist; create it first"),
        )),
    }
}

/// Watches a connection on which the host sends nothing more: any read
/// that returns means it hung up, and then `on_gone` runs (on the watcher
/// thread). The thread ends with the connection.
pub(crate) fn on_host_gone<R: Read + Send + 'static>(
    mut stream: R,
    on_gone: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("host-watch".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match stream.read(&mut byte) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            on_gone();
        });
    if spawned.is_err() {
        crate::log("cannot start a host watcher thread");
    }
}

/// An OS error as lowercase text.
pub(crate) fn describe_io(err: &std::io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("shell", "sh-1.a_b").is_ok());
        for bad in ["", ".hidden", "a/b", "x y", &"n".repeat(65)] {
            let err = check_name("service", bad).unwrap_err();
            assert_eq!(err.kind, GuestErrorKind::InvalidRequest);
            assert!(err.message.starts_with("service "), "{}", err.message);
        }
    }

    #[test]
    fn env_and_cwd_are_checked() {
        assert!(check_env("shell a", &[("A".into(), "1".into())]).is_ok());
        assert!(check_env("shell a", &[("A=B".into(), "1".into())]).is_err());
        assert!(check_env("shell a", &[("A".into(), "\0".into())]).is_err());
        assert!(check_cwd("shell a", "/").is_ok());
        let err = check_cwd("shell a", "/no/such/dir").unwrap_err();
        assert_eq!(err.kind, GuestErrorKind::NotFound);
        assert!(err.message.contains("shell a"), "{}", err.message);
    }
}

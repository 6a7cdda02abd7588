//! After boot: keep the guest agent running and reap orphans.
//!
//! PID 1 inherits every orphaned process, so it waits on any child. When the
//! child it reaps is the agent, it starts a new one, backing off while the
//! agent keeps dying young so a broken agent cannot spin the CPU.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::boot::Booted;
use crate::failure::console_line;

/// The environment every guest process starts from.
pub const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("USER", "root"),
    ("LOGNAME", "root"),
    ("SHELL", "/bin/sh"),
];

/// First pause before restarting an agent that died young.
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between restarts.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// An agent that lived this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Runs the agent forever.
pub fn run(booted: &Booted) -> ! {
    let agent_path = format!("/proc/self/fd/{}", booted.agent.as_raw_fd());
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let started = Instant::now();
        match spawn_agent(&agent_path, booted.data_mount.as_raw_fd()) {
            Ok(pid) => {
                let status = reap_until(pid);
                console_line(&format!(
                    "pyro-init: guest agent ended ({status}); restarting"
                ));
            }
            Err(err) => console_line(&format!(
                "pyro-init: starting the guest agent failed: {err}"
            )),
        }
        backoff = if started.elapsed() >= HEALTHY_RUN {
            RESTART_BACKOFF_MIN
        } else {
            (backoff * 2).min(RESTART_BACKOFF_MAX)
        };
        std::thread::sleep(backoff);
    }
}

fn spawn_agent(path: &str, data_mount: RawFd) -> std::io::Result<Pid> {
    let mut command = Command::new(path);
    command
        .arg0("pyro-guest-agent")
        .env_clear()
        .envs(BASE_ENV.iter().copied())
        .env(pyro_guest_agent::DATA_FD_VAR, data_mount.to_string())
        .current_dir("/")
        .stdin(Stdio::null());
    // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec on
    // the data mount's descriptor so the agent inherits it.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(data_mount, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Reaps children until `agent` is among them; returns how it ended.
fn reap_until(agent: Pid) -> String {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == agent => {
                return format!("exit code {code}")
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == agent => {
                return format!("killed by {signal}")
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return "no child left".to_owned(),
            Err(err) => {
                console_line(&format!("pyro-init: waitpid failed: {}", err.desc()));
                std::thread::sleep(RESTART_BACKOFF_MIN);
            }
        }
    }
}

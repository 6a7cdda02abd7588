//! The pyro guest agent: serves the host over vsock from inside the VM.
//!
//! `pyro-init` starts it (and restarts it when it dies). It listens on
//! [`pyro_guest_protocol::AGENT_PORT`], tells the host it is ready on
//! [`pyro_guest_protocol::READY_PORT`], then serves each connection on its
//! own thread.
//!
//! # Layout
//!
//! - [`vsock`]: `AF_VSOCK` listener and streams.
//! - [`server`]: accept loop, handshake, request dispatch.
//! - [`exec`]: running commands with streamed output and timeouts.
//! - `workspace`: the workspace operations (archives, manifests, listings,
//!   file reads, transactional changes, sync), each on paths it is given.
//! - `shell`: interactive shells on PTYs the agent owns, with a bounded
//!   output ring for reattaching hosts.
//! - [`service`]: long-running processes with readiness checks and
//!   rotated logs.

pub mod exec;
pub mod server;
pub mod service;
mod shell;
pub mod vsock;
mod workspace;

use std::io::Write;
use std::time::Duration;

use pyro_guest_protocol::{
    GuestNotice, ReadyNotice, AGENT_VERSION, MAGIC, PROTOCOL_VERSION, READY_PORT,
};

/// How many times the agent tries to tell the host it is ready.
const READY_ATTEMPTS: u32 = 5;

/// Writes one diagnostic line to the console (the agent's stderr).
pub fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "pyro-guest-agent: {line}");
}

/// Milliseconds since the guest booted.
pub fn uptime_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|ts| std::time::Duration::from(ts).as_millis() as u64)
        .unwrap_or(0)
}

/// Tells the host the agent is listening. The host listens before the VM
/// boots, so one attempt normally suffices; a few retries cover a slow start.
pub fn notify_ready() -> bool {
    let notice = GuestNotice::Ready(ReadyNotice {
        magic: MAGIC,
        protocol_version: PROTOCOL_VERSION,
        agent_version: AGENT_VERSION.to_owned(),
        uptime_ms: uptime_ms(),
    });
    for attempt in 1..=READY_ATTEMPTS {
        let sent =
            vsock::connect_host(READY_PORT, Duration::from_secs(1)).and_then(|mut stream| {
                pyro_guest_protocol::write_frame(&mut stream, &notice)
                    .map_err(std::io::Error::other)
            });
        match sent {
            Ok(()) => return true,
            Err(err) => log(&format!("ready notice attempt {attempt} failed: {err}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The environment variable through which pyro-init passes the writable
/// disk's mount descriptor.
pub const DATA_FD_VAR: &str = "PYRO_DATA_FD";

/// The writable disk's mount, when pyro-init passed it.
static DATA_MOUNT: std::sync::OnceLock<std::os::fd::OwnedFd> = std::sync::OnceLock::new();

/// Takes the descriptor pyro-init passed (and keeps it from the commands the
/// agent runs).
pub fn adopt_data_mount() {
    use std::os::fd::FromRawFd;
    let Some(fd) = std::env::var(DATA_FD_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    std::env::remove_var(DATA_FD_VAR);
    // SAFETY: fcntl on a descriptor number; fails harmlessly if it is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return;
    }
    // SAFETY: pyro-init opened this descriptor for us and nothing else in
    // the agent uses it.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let _ = DATA_MOUNT.set(owned);
}

/// Writes the writable disk's dirty data through to the host, so a change
/// the agent has reported as done survives the VMM being killed.
pub fn flush_data_disk() {
    use std::os::fd::AsRawFd;
    match DATA_MOUNT.get() {
        Some(fd) => {
            if let Err(err) = nix::unistd::syncfs(fd.as_raw_fd()) {
                log(&format!("flushing the writable disk failed: {err}"));
            }
        }
        None => nix::unistd::sync(),
    }
}

/// `FIFREEZE`: flush a filesystem (for ext4, its journal) and freeze it.
const FIFREEZE: libc::c_ulong = 0xC004_5877;

/// Flushes filesystems and powers the VM off. The writable disk is frozen
/// first, so its journal is empty and the image is clean for offline reads.
pub fn power_off() -> ! {
    nix::unistd::sync();
    if let Some(fd) = DATA_MOUNT.get() {
        use std::os::fd::AsRawFd;
        // SAFETY: FIFREEZE takes no argument; the fd is a directory on the
        // filesystem to freeze.
        if unsafe { libc::ioctl(fd.as_raw_fd(), FIFREEZE, 0) } != 0 {
            log(&format!(
                "freezing the writable disk failed: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    std::process::exit(1)
}

//! Boot failures: what went wrong, and telling the host before powering off.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use pyro_guest_protocol::{BootFailure, GuestNotice, READY_PORT};

/// A failed boot stage.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct BootError {
    /// The stage that failed, such as `mount_root`.
    pub stage: &'static str,
    /// The OS error number, when there was one.
    pub errno: Option<i32>,
    /// What failed, in one line.
    pub message: String,
}

impl BootError {
    /// A failure caused by an OS error.
    pub fn os(stage: &'static str, err: nix::errno::Errno, what: impl std::fmt::Display) -> Self {
        Self {
            stage,
            errno: Some(err as i32),
            message: format!("{what}: {}", err.desc()),
        }
    }

    /// A failure caused by an I/O error.
    pub fn io(stage: &'static str, err: &std::io::Error, what: impl std::fmt::Display) -> Self {
        Self {
            stage,
            errno: err.raw_os_error(),
            message: format!("{what}: {err}"),
        }
    }

    /// A failure without an OS error behind it.
    pub fn plain(stage: &'static str, message: impl Into<String>) -> Self {
        Self {
            stage,
            errno: None,
            message: message.into(),
        }
    }

    fn to_wire(&self) -> BootFailure {
        BootFailure {
            stage: self.stage.to_owned(),
            errno: self.errno,
            message: self.message.clone(),
        }
    }
}

/// Prints the failure on the console, tells the host over vsock if it can,
/// and powers the VM off. Never returns.
pub fn report_and_power_off(failure: &BootError) -> ! {
    let wire = failure.to_wire();
    console_line(&wire.console_line());
    let _ = send_notice(&GuestNotice::BootFailed(wire));
    pyro_guest_agent::power_off()
}

/// Writes one line to the console, whatever state stdio is in.
pub fn console_line(line: &str) {
    let written = OpenOptions::new()
        .write(true)
        .open("/dev/console")
        .and_then(|mut console| writeln!(console, "{line}"));
    if written.is_err() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Sends one notice to the host's ready port. Fails quietly when vsock is not
/// loaded yet; the console line is the fallback.
pub fn send_notice(notice: &GuestNotice) -> Result<(), std::io::Error> {
    let mut stream = pyro_guest_agent::vsock::connect_host(READY_PORT, Duration::from_secs(1))?;
    pyro_guest_protocol::write_frame(&mut stream, notice).map_err(std::io::Error::other)
}

//! Pseudo-terminals: opening a pair, window sizes, and non-blocking I/O on
//! the master.
//!
//! Both ends are opened close-on-exec (the master through `/dev/ptmx` with
//! `O_CLOEXEC`, the slave through `TIOCGPTPEER`), so no other child of the
//! agent inherits them; the shell gets the slave as its stdio, which clears
//! the flag on fds 0-2 only. The master is non-blocking: a reader thread
//! and writers share it and wait with `poll`, so a writer facing a shell
//! that does not read can give up instead of hanging.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A new PTY pair.
#[derive(Debug)]
pub struct Pty {
    /// The agent's end.
    pub master: File,
    /// The shell's end (its controlling terminal).
    pub slave: File,
}

/// Opens a PTY pair sized `cols` x `rows`, the master non-blocking.
pub fn open(cols: u16, rows: u16) -> io::Result<Pty> {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one c_int from the pointer, which outlives
    // the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let slave = open_slave(&master)?;
    set_size(&master, cols, rows)?;
    fcntl(
        master.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::O_RDWR | OFlag::O_NONBLOCK),
    )?;
    Ok(Pty { master, slave })
}

fn open_slave(master: &File) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags as its argument and returns a
    // new descriptor (or -1).
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd >= 0 {
        // SAFETY: the ioctl returned a new descriptor that nothing else owns.
        return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    // Kernels before 4.13: open the slave by name.
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint through the pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } != 0 {
        return Err(io::Error::last_os_error());
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(format!("/dev/pts/{number}"))
}

/// Sets the window size; the kernel then sends `SIGWINCH` to the
/// foreground process group.
pub fn set_size(master: &File, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives
    // the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what the shell wrote, waiting as long as it takes. `Ok(0)` means
/// every process closed the terminal (Linux reports that as `EIO`).
pub fn read(master: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*master).read(buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait(master, PollFlags::POLLIN, None)?;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Writes all of `data` to the terminal unless `deadline` passes first;
/// returns how many bytes were written (all of them, or fewer on time out).
pub fn write(master: &File, data: &[u8], deadline: Instant) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match (&*master).write(&data[written..]) {
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(written);
                }
                wait(master, PollFlags::POLLOUT, Some(deadline - now))?;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

fn wait(master: &File, events: PollFlags, limit: Option<std::time::Duration>) -> io::Result<()> {
    let timeout = match limit {
        // Rounded up, so a short wait does not spin.
        Some(limit) => PollTimeout::try_from(limit.as_millis().saturating_add(1).min(60_000))
            .unwrap_or(PollTimeout::NONE),
        None => PollTimeout::NONE,
    };
    let mut fds = [PollFd::new(master.as_fd(), events)];
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_carries_bytes_and_sizes() {
        let pty = open(100, 40).unwrap();
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
        let rc = unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (100, 40));
        // Both ends are close-on-exec.
        for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
            let flags = fcntl(fd, FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
        (&pty.slave).write_all(b"hi").unwrap();
        let mut buf = [0u8; 16];
        let n = read(&pty.master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        drop(pty.slave);
        assert_eq!(read(&pty.master, &mut buf).unwrap(), 0);
    }
}

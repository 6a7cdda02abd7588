//! `AF_VSOCK` streams inside the guest: the agent's listener and the
//! connection to the host's ready port.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    accept4, bind, connect, listen, setsockopt, shutdown, socket, sockopt, AddressFamily, Backlog,
    Shutdown, SockFlag, SockType, VsockAddr,
};
use nix::sys::time::TimeVal;

/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (the original, `struct timeval` form).
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

/// A connected vsock stream with blocking `Read` and `Write`.
#[derive(Debug)]
pub struct VsockStream {
    file: File,
}

impl VsockStream {
    fn from_fd(fd: OwnedFd) -> Self {
        Self {
            file: File::from(fd),
        }
    }

    /// Sets (or clears, with `None`) the timeout of every blocking read.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let tv = TimeVal::from(libc::timeval {
            tv_sec: timeout.map_or(0, |t| t.as_secs() as libc::time_t),
            tv_usec: timeout.map_or(0, |t| t.subsec_micros() as libc::suseconds_t),
        });
        setsockopt(&self.file, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)
    }

    /// A second handle on the same connection, for a reader thread.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            file: self.file.try_clone()?,
        })
    }

    /// Shuts down both directions, waking any thread blocked on it.
    pub fn shutdown(&self) {
        let _ = shutdown(self.file.as_raw_fd(), Shutdown::Both);
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for VsockStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A listening vsock socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    /// Listens on `port` for connections from any CID.
    pub fn bind(port: u32) -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))?;
        listen(&fd, Backlog::new(64).map_err(io::Error::from)?)?;
        Ok(Self { fd })
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<VsockStream> {
        loop {
            match accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => {
                    // SAFETY: accept4 returned a new, owned descriptor.
                    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
                    return Ok(VsockStream::from_fd(fd));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Connects to the host (CID 2) on `port`, giving up after `timeout`.
pub fn connect_host(port: u32, timeout: Duration) -> io::Result<VsockStream> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: fd is a valid socket and tv outlives the call; the kernel copies
    // `size_of::<timeval>()` bytes from it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    connect(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_HOST, port))?;
    Ok(VsockStream::from_fd(fd))
}

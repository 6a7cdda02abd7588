//! Bringing up the loopback interface.
//!
//! The kernel creates `lo` down. Guests have no other network, but services
//! listen on 127.0.0.1 and their TCP and HTTP readiness checks connect there,
//! so `lo` must be up before the agent starts.

use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::failure::BootError;

/// Sets `IFF_UP` on `lo` (the kernel adds 127.0.0.1/8 itself).
pub fn bring_up() -> Result<(), BootError> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|err| BootError::os("loopback", err, "opening a socket to configure lo"))?;

    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags into the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } != 0 {
        return Err(BootError::os(
            "loopback",
            nix::errno::Errno::last(),
            "reading the flags of lo",
        ));
    }
    // SAFETY: the union member set by SIOCGIFFLAGS is ifru_flags.
    unsafe {
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } != 0 {
        return Err(BootError::os(
            "loopback",
            nix::errno::Errno::last(),
            "bringing lo up",
        ));
    }
    Ok(())
}

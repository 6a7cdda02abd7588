//! `pyro-init`: PID 1 of every pyro guest.
//!
//! It runs from the initramfs that the host assembles for each boot (the
//! environment's kernel modules plus this binary and the guest agent), and:
//!
//! 1. mounts devtmpfs, proc and sysfs;
//! 2. loads the virtio, vsock and overlay modules in dependency order;
//! 3. finds the read-only root disk and the writable data disk by their
//!    virtio serial numbers, and mounts them as one overlayfs root;
//! 4. switches into that root and mounts devpts, /dev/shm and /run;
//! 5. brings up loopback, sets the hostname and starts the guest agent, restarting it if it dies,
//!    while reaping every orphaned process.
//!
//! A fatal error in any step is printed on the console as one structured line
//! (see [`pyro_guest_protocol::BootFailure::console_line`]), sent to the host
//! over vsock when the transport is up, and the VM powers off. It never hangs.
//!
//! # Layout
//!
//! - `boot`: the boot stages, in order.
//! - `cmdline`: the `pyro.*` kernel command line parameters.
//! - `disks`: finding disks by serial.
//! - `modules`: loading kernel modules from the initramfs.
//! - `failure`: the boot error type and how it is reported.
//! - `loopback`: bringing up `lo`.
//! - `supervise`: the agent supervision and zombie-reaping loop.

mod boot;
mod cmdline;
mod disks;
mod failure;
mod loopback;
mod modules;
mod supervise;

use std::io::Write;

fn main() {
    if std::process::id() != 1 {
        let _ = writeln!(
            std::io::stderr(),
            "pyro-init: must run as PID 1 inside a pyro guest"
        );
        std::process::exit(2);
    }
    match boot::boot() {
        Ok(booted) => supervise::run(&booted),
        Err(failure) => failure::report_and_power_off(&failure),
    }
}

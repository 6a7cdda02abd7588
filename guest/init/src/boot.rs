//! The boot stages, from the initramfs to a running overlay root.
//!
//! Layout while booting (all in the initramfs):
//!
//! ```text
//! /mnt/root   the environment's rootfs, ext4, read-only (shared by many VMs)
//! /mnt/data   this VM's writable disk, ext4: upper/ and work/ for overlayfs
//! /newroot    overlayfs(lower=/mnt/root, upper=/mnt/data/upper)
//! ```
//!
//! `/newroot` then becomes `/` (MS_MOVE + chroot). The lower and data mounts
//! stay mounted underneath the overlay but out of the guest's sight.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::Path;
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use nix::unistd::{chdir, chroot, sethostname};

use crate::cmdline::Cmdline;
use crate::disks;
use crate::failure::BootError;
use crate::loopback;
use crate::modules;

/// Where the host puts the agent binary in the initramfs.
const AGENT_IN_INITRAMFS: &str = "/pyro/pyro-guest-agent";

/// Where boot stage timings are written, for `pyro` benchmarks and debugging.
pub const TIMINGS_PATH: &str = "/run/pyro/boot-timings";

/// What the boot hands to the supervision loop.
#[derive(Debug)]
pub struct Booted {
    /// The agent binary, opened before the switch so it stays reachable
    /// (as `/proc/self/fd/N`) after the initramfs is out of sight.
    pub agent: File,
    /// The writable disk's mount, handed to the agent so it can freeze the
    /// filesystem (flushing its journal) before powering off.
    pub data_mount: File,
}

/// Runs every stage; the first failure stops the boot.
pub fn boot() -> Result<Booted, BootError> {
    let mut timings = Timings::default();
    mount_early()?;
    timings.mark("early_mounts");

    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map(|line| Cmdline::parse(&line))
        .map_err(|err| BootError::io("read_cmdline", &err, "reading /proc/cmdline"))?;

    modules::load_all(Path::new(modules::MODULE_DIR))?;
    timings.mark("modules");

    let root_dev = disks::wait_for(&cmdline.root_serial)?;
    let data_dev = disks::wait_for(&cmdline.data_serial)?;
    timings.mark("disks");

    for dir in ["/mnt/root", "/mnt/data", "/newroot"] {
        make_dir(dir, 0o755, "prepare_mounts")?;
    }
    mount_fs(
        Some(&root_dev),
        "/mnt/root",
        "ext4",
        MsFlags::MS_RDONLY,
        None,
        "mount_root",
    )?;
    mount_fs(
        Some(&data_dev),
        "/mnt/data",
        "ext4",
        MsFlags::MS_NOATIME,
        Some("noinit_itable"),
        "mount_data",
    )?;
    for dir in ["/mnt/data/upper", "/mnt/data/work"] {
        make_dir(dir, 0o755, "mount_overlay")?;
    }
    mount_fs(
        Some(Path::new("overlay")),
        "/newroot",
        "overlay",
        MsFlags::empty(),
        Some("lowerdir=/mnt/root,upperdir=/mnt/data/upper,workdir=/mnt/data/work"),
        "mount_overlay",
    )?;
    timings.mark("root_mounted");

    let data_mount = File::open("/mnt/data")
        .map_err(|err| BootError::io("mount_data", &err, "opening /mnt/data"))?;
    let agent = File::open(AGENT_IN_INITRAMFS).map_err(|err| {
        BootError::io("open_agent", &err, format!("opening {AGENT_IN_INITRAMFS}"))
    })?;

    switch_root()?;
    mount_late()?;
    timings.mark("switched_root");

    sethostname(&cmdline.hostname).map_err(|err| {
        BootError::os(
            "set_hostname",
            err,
            format!("setting hostname {}", cmdline.hostname),
        )
    })?;
    loopback::bring_up()?;
    timings.mark("loopback");
    timings.write(Path::new(TIMINGS_PATH));
    Ok(Booted { agent, data_mount })
}

/// devtmpfs, proc and sysfs inside the initramfs.
fn mount_early() -> Result<(), BootError> {
    for dir in ["/dev", "/proc", "/sys"] {
        make_dir(dir, 0o755, "early_mounts")?;
    }
    mount_fs(
        Some(Path::new("devtmpfs")),
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
        "early_mounts",
    )?;
    mount_fs(
        Some(Path::new("proc")),
        "/proc",
        "proc",
        nosuid_nodev_noexec(),
        None,
        "early_mounts",
    )?;
    mount_fs(
        Some(Path::new("sysfs")),
        "/sys",
        "sysfs",
        nosuid_nodev_noexec(),
        None,
        "early_mounts",
    )
}

/// Moves the pseudo filesystems into /newroot and makes it `/`.
fn switch_root() -> Result<(), BootError> {
    for dir in ["/dev", "/proc", "/sys"] {
        let target = format!("/newroot{dir}");
        make_dir(&target, 0o755, "switch_root")?;
        mount(
            Some(dir),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|err| BootError::os("switch_root", err, format!("moving {dir} to {target}")))?;
    }
    chdir("/newroot").map_err(|err| BootError::os("switch_root", err, "entering /newroot"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|err| BootError::os("switch_root", err, "moving /newroot to /"))?;
    chroot(".").map_err(|err| BootError::os("switch_root", err, "chroot into the new root"))?;
    chdir("/").map_err(|err| BootError::os("switch_root", err, "entering the new root"))
}

/// devpts, /dev/shm, /run and the /dev symlinks programs expect.
fn mount_late() -> Result<(), BootError> {
    make_dir("/dev/pts", 0o755, "mount_devpts")?;
    mount_fs(
        Some(Path::new("devpts")),
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("ptmxmode=0666,mode=0620,gid=5,newinstance"),
        "mount_devpts",
    )?;
    make_dir("/dev/shm", 0o1777, "mount_shm")?;
    mount_fs(
        Some(Path::new("tmpfs")),
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
        "mount_shm",
    )?;
    make_dir("/run", 0o755, "mount_run")?;
    mount_fs(
        Some(Path::new("tmpfs")),
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
        "mount_run",
    )?;
    make_dir("/run/pyro", 0o755, "mount_run")?;
    // devtmpfs makes /dev/ptmx a node that resolves to the sibling devpts
    // instance; point it at ours explicitly so `newinstance` is honoured.
    let _ = std::fs::remove_file("/dev/ptmx");
    symlink("pts/ptmx", "/dev/ptmx")
        .map_err(|err| BootError::io("mount_devpts", &err, "linking /dev/ptmx"))?;
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        if std::fs::symlink_metadata(link).is_err() {
            symlink(target, link)
                .map_err(|err| BootError::io("dev_links", &err, format!("linking {link}")))?;
        }
    }
    Ok(())
}

fn nosuid_nodev_noexec() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

fn mount_fs(
    source: Option<&Path>,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
    stage: &'static str,
) -> Result<(), BootError> {
    mount(source, target, Some(fstype), flags, data).map_err(|err| {
        let source = source.map_or_else(|| "none".to_owned(), |s| s.display().to_string());
        BootError::os(
            stage,
            err,
            format!("mounting {source} ({fstype}) on {target}"),
        )
    })
}

fn make_dir(path: &str, mode: u32, stage: &'static str) -> Result<(), BootError> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(err) => Err(BootError::io(stage, &err, format!("creating {path}"))),
    }
}

/// Milliseconds since boot at the end of each stage.
#[derive(Debug, Default)]
struct Timings {
    marks: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn mark(&mut self, stage: &'static str) {
        if let Ok(now) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
            self.marks.push((stage, Duration::from(now)));
        }
    }

    /// Best effort: timings are diagnostics, never a reason to fail a boot.
    fn write(&self, path: &Path) {
        let Ok(mut file) = File::create(path) else {
            return;
        };
        for (stage, at) in &self.marks {
            let _ = writeln!(file, "{stage} {}", at.as_millis());
        }
    }
}

//! What this host offers: programs, the TSC rate, and whether KVM works.
//!
//! KVM is judged "usable" only when it can run a stock guest kernel. A
//! `/dev/kvm` that opens and answers ioctls is not enough: on this project's
//! machines it is a PVM hypervisor that software-emulates guest kernel code
//! and dies on the first `cmpxchg16b` (host-facts B7). So the checks are: the
//! device opens read-write, `KVM_CREATE_VM` works, no `kvm_pvm` module is
//! loaded, and the CPU exposes hardware virtualization (vmx or svm) with its
//! KVM module (kvm_intel or kvm_amd).

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Directories searched after `PATH` (sbin is often not on a user's PATH).
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
];

/// A host program pyro uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProgram {
    /// Its name, as looked up.
    pub name: &'static str,
    /// What pyro uses it for.
    pub purpose: &'static str,
    /// Whether guests cannot boot without it.
    pub required: bool,
    /// How to install it.
    pub install: &'static str,
    /// The environment variable that overrides its path.
    pub override_var: Option<&'static str>,
    /// Where it was found.
    pub path: Option<PathBuf>,
}

/// The programs pyro needs, found (or not) on this host.
#[derive(Debug, Clone)]
pub struct HostPrograms {
    /// `qemu-system-x86_64`.
    pub qemu: HostProgram,
    /// `vhost-device-vsock`.
    pub sidecar: HostProgram,
    /// `mkfs.ext4`.
    pub mkfs: HostProgram,
    /// Programs used to build environments.
    pub build: Vec<HostProgram>,
}

/// The apt line that installs the Debian packages pyro needs.
pub const APT_INSTALL: &str =
    "apt-get install -y qemu-system-x86 e2fsprogs mmdebstrap lz4 kmod cpio dpkg binutils";

/// The cargo line that installs the vsock sidecar.
pub const SIDECAR_INSTALL: &str =
    "cargo install vhost-device-vsock --locked --version 0.3.0 --root /usr/local";

impl HostPrograms {
    /// Looks every program up.
    pub fn discover() -> Self {
        let program = |name: &'static str,
                       purpose: &'static str,
                       required: bool,
                       install: &'static str,
                       override_var: Option<&'static str>| {
            let path = override_var
                .and_then(|var| {
                    std::env::var_os(var)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                })
                .or_else(|| find_program(name));
            HostProgram {
                name,
                purpose,
                required,
                install,
                override_var,
                path,
            }
        };
        Self {
            qemu: program(
                "qemu-system-x86_64",
                "runs guests",
                true,
                "apt-get install -y qemu-system-x86",
                Some("PYRO_QEMU"),
            ),
            sidecar: program(
                "vhost-device-vsock",
                "host side of the guest vsock channel",
                true,
                SIDECAR_INSTALL,
                Some("PYRO_VHOST_DEVICE_VSOCK"),
            ),
            mkfs: program(
                "mkfs.ext4",
                "makes disk images",
                true,
                "apt-get install -y e2fsprogs",
                None,
            ),
            build: vec![
                program(
                    "mmdebstrap",
                    "builds environments",
                    false,
                    "apt-get install -y mmdebstrap",
                    None,
                ),
                program(
                    "lz4",
                    "extracts guest kernels",
                    false,
                    "apt-get install -y lz4",
                    None,
                ),
                program(
                    "depmod",
                    "orders guest kernel modules",
                    false,
                    "apt-get install -y kmod",
                    None,
                ),
                program(
                    "resize2fs",
                    "shrinks environment images",
                    false,
                    "apt-get install -y e2fsprogs",
                    None,
                ),
                program(
                    "debugfs",
                    "reads stopped workspace disks",
                    false,
                    "apt-get install -y e2fsprogs",
                    None,
                ),
            ],
        }
    }

    /// Every program, the required ones first.
    pub fn all(&self) -> Vec<&HostProgram> {
        let mut all = vec![&self.qemu, &self.sidecar, &self.mkfs];
        all.extend(self.build.iter());
        all
    }
}

/// Finds `name` on `PATH`, then in the usual system directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The first line a program prints about its version (blocking; quick).
/// e2fsprogs tools take `-V`; everything else `--version`.
pub fn program_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let flag = if ["mkfs.ext4", "debugfs", "e2fsck"].contains(&name.as_ref()) {
        "-V"
    } else {
        "--version"
    };
    let output = Command::new(path).arg(flag).output().ok()?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

/// Measures the TSC rate in kHz against the monotonic clock (about 50 ms).
///
/// Under TCG the guest's TSC runs at the host's rate, and the microvm
/// machine has no second clock to calibrate against, so the guest is told
/// this number (`tsc_early_khz=`).
#[cfg(target_arch = "x86_64")]
pub fn measure_tsc_khz() -> Option<u64> {
    fn rdtsc() -> u64 {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    let mut best: Option<u64> = None;
    for _ in 0..3 {
        let start_clock = Instant::now();
        let start_tsc = rdtsc();
        std::thread::sleep(Duration::from_millis(15));
        let ticks = rdtsc().wrapping_sub(start_tsc);
        let nanos = start_clock.elapsed().as_nanos() as u64;
        if nanos == 0 {
            continue;
        }
        let khz = ticks.saturating_mul(1_000_000) / nanos;
        best = Some(best.map_or(khz, |b: u64| b.max(khz)));
    }
    best.filter(|khz| *khz > 100_000)
}

/// The TSC rate is only meaningful on x86_64.
#[cfg(not(target_arch = "x86_64"))]
pub fn measure_tsc_khz() -> Option<u64> {
    None
}

/// What `/dev/kvm` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    /// The device node exists.
    pub exists: bool,
    /// It opens for reading.
    pub readable: bool,
    /// It opens for writing.
    pub writable: bool,
    /// It can run a stock guest kernel.
    pub usable: bool,
    /// Why (not).
    pub reason: String,
}

/// `KVM_GET_API_VERSION`.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
/// `KVM_CREATE_VM`.
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
/// The only KVM API version there has ever been.
const KVM_API_VERSION: libc::c_int = 12;

/// Probes `/dev/kvm` (bounded: a few syscalls and file reads).
pub fn probe_kvm() -> KvmProbe {
    probe_kvm_at(
        Path::new("/dev/kvm"),
        Path::new("/sys/module"),
        Path::new("/proc/cpuinfo"),
    )
}

fn probe_kvm_at(device: &Path, modules: &Path, cpuinfo: &Path) -> KvmProbe {
    let exists = device.exists();
    let readable = OpenOptions::new().read(true).open(device).is_ok();
    let writable = OpenOptions::new().write(true).open(device).is_ok();
    let verdict = |usable: bool, reason: &str| KvmProbe {
        exists,
        readable,
        writable,
        usable,
        reason: reason.to_owned(),
    };
    if !exists {
        return verdict(
            false,
            "/dev/kvm does not exist (no hardware virtualization here)",
        );
    }
    if !(readable && writable) {
        return verdict(
            false,
            "no read/write access to /dev/kvm (add the user to the kvm group)",
        );
    }
    if modules.join("kvm_pvm").exists() {
        return verdict(
            false,
            "/dev/kvm is a PVM hypervisor (kvm_pvm) that cannot run stock guest kernels",
        );
    }
    let flags = std::fs::read_to_string(cpuinfo).unwrap_or_default();
    let has_vmx = cpu_flag(&flags, "vmx");
    let has_svm = cpu_flag(&flags, "svm");
    if !(has_vmx || has_svm) {
        return verdict(
            false,
            "the CPU exposes neither vmx nor svm, so KVM here is emulated",
        );
    }
    let vendor_module = if has_vmx { "kvm_intel" } else { "kvm_amd" };
    if !modules.join(vendor_module).exists() {
        return verdict(false, &format!("{vendor_module} is not loaded"));
    }
    match create_vm(device) {
        Ok(()) => verdict(
            true,
            &format!("hardware virtualization ({vendor_module}) answers KVM_CREATE_VM"),
        ),
        Err(err) => verdict(false, &format!("KVM_CREATE_VM failed: {err}")),
    }
}

fn cpu_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|word| word == flag))
}

fn create_vm(device: &Path) -> std::io::Result<()> {
    let kvm = OpenOptions::new().read(true).write(true).open(device)?;
    // SAFETY: KVM_GET_API_VERSION takes no argument.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if version != KVM_API_VERSION {
        return Err(std::io::Error::other(format!(
            "unexpected KVM API version {version}"
        )));
    }
    // SAFETY: KVM_CREATE_VM takes the machine type (0) and returns a new fd.
    let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0) };
    if vm < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `vm` is a descriptor we just received and own.
    unsafe {
        libc::close(vm);
    }
    Ok(())
}

/// Total host memory in MiB, from /proc/meminfo.
pub fn total_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_not_usable() {
        let dir = tempfile::tempdir().unwrap();
        let probe = probe_kvm_at(
            &dir.path().join("kvm"),
            dir.path(),
            &dir.path().join("cpuinfo"),
        );
        assert!(!probe.exists && !probe.usable);
    }

    #[test]
    fn pvm_is_reported_as_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        std::fs::create_dir(dir.path().join("kvm_pvm")).unwrap();
        let probe = probe_kvm_at(&device, dir.path(), &dir.path().join("cpuinfo"));
        assert!(probe.exists && probe.readable && probe.writable);
        assert!(!probe.usable);
        assert!(probe.reason.contains("PVM"), "{}", probe.reason);
    }

    #[test]
    fn no_vmx_means_emulated() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        let cpuinfo = dir.path().join("cpuinfo");
        std::fs::write(&cpuinfo, "flags\t\t: fpu sse2 hypervisor\n").unwrap();
        let probe = probe_kvm_at(&device, dir.path(), &cpuinfo);
        assert!(!probe.usable);
        assert!(probe.reason.contains("neither vmx nor svm"));
    }

    #[test]
    fn this_host_is_classified() {
        // On any host the probe answers without hanging and gives a reason.
        let probe = probe_kvm();
        assert!(!probe.reason.is_empty());
        if Path::new("/sys/module/kvm_pvm").exists() {
            assert!(!probe.usable, "PVM must never count as usable");
        }
    }

    #[test]
    fn tsc_rate_is_plausible() {
        if let Some(khz) = measure_tsc_khz() {
            assert!((100_000..10_000_000).contains(&khz), "{khz}");
        }
    }

    #[test]
    fn finds_sh() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-pyro").is_none());
    }
}

//! The QEMU backend: `qemu-system-x86_64` plus a `vhost-device-vsock` sidecar.
//!
//! Launch order matters (see host-facts §4): the sidecar must be listening
//! on its vhost-user socket before QEMU starts, and QEMU needs shared guest
//! RAM (a memfd backend) for vhost-user to work. The machine is `microvm`
//! booting the uncompressed kernel with PVH, the fastest measured TCG path;
//! under TCG the guest must be told the TSC rate (`tsc_early_khz=`) or early
//! calibration can hang.
//!
//! Run directory of one VM:
//!
//! ```text
//! vhost.sock      vhost-user socket between the sidecar and QEMU
//! v.sock          hybrid-vsock socket the host connects to
//! v.sock_1025     the host's ready listener (bound by the VM actor)
//! console.log     the guest serial console
//! qemu.log        QEMU's own stdout and stderr
//! sidecar.log     the sidecar's output
//! ```

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::backend::{ExitFuture, LaunchedVm, VmSpec, Vmm, DATA_DISK_SERIAL, ROOT_DISK_SERIAL};
use super::console;
use crate::error::{ActorError, Result};
use crate::process::{LedgerEntry, ProcessExit, TrackedProcess};

/// How long the sidecar has to create its vhost-user socket.
const SIDECAR_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The guest CID. Each VM has its own sidecar, so CIDs never meet.
const GUEST_CID: u32 = 3;

/// CPU acceleration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// Software emulation (TCG).
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Host programs and tuning for the QEMU backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// `vhost-device-vsock`.
    pub sidecar: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
    /// The host TSC rate in kHz, passed to the guest under TCG.
    pub tsc_khz: Option<u64>,
}

/// The QEMU backend.
#[derive(Debug, Clone)]
pub struct QemuVmm {
    config: QemuConfig,
}

impl QemuVmm {
    /// A backend with `config`.
    pub fn new(config: QemuConfig) -> Self {
        Self { config }
    }

    /// The QEMU arguments for `spec`.
    pub fn args(&self, spec: &VmSpec) -> Vec<String> {
        let mem = spec.mem_mib;
        let (accel, cpu) = match self.config.accel {
            Accel::Tcg => ("tcg", "max"),
            Accel::Kvm => ("kvm", "host"),
        };
        let tsc = match self.config.accel {
            Accel::Tcg => self.config.tsc_khz,
            Accel::Kvm => None,
        };
        let mut args: Vec<String> = vec![
            "-M".into(),
            "microvm,memory-backend=mem".into(),
            "-accel".into(),
            accel.into(),
            "-cpu".into(),
            cpu.into(),
            "-smp".into(),
            spec.vcpu_count.to_string(),
            "-m".into(),
            format!("{mem}M"),
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            format!("file:{}", spec.console_log().display()),
            "-kernel".into(),
            spec.kernel.display().to_string(),
            "-initrd".into(),
            spec.initramfs.display().to_string(),
            "-append".into(),
            spec.kernel_args(tsc),
        ];
        args.extend([
            "-drive".into(),
            format!(
                "file={},if=none,id=root,format=raw,readonly=on",
                escape(&spec.root_disk)
            ),
            "-device".into(),
            format!("virtio-blk-device,drive=root,serial={ROOT_DISK_SERIAL}"),
            "-drive".into(),
            format!(
                "file={},if=none,id=data,format=raw",
                escape(&spec.data_disk)
            ),
            "-device".into(),
            format!("virtio-blk-device,drive=data,serial={DATA_DISK_SERIAL}"),
            "-chardev".into(),
            format!("socket,id=vsock,path={}", escape(&vhost_socket(spec))),
            "-device".into(),
            "vhost-user-vsock-device,chardev=vsock".into(),
        ]);
        args
    }
}

/// QEMU option values separate with commas; a literal comma is doubled.
fn escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

fn vhost_socket(spec: &VmSpec) -> PathBuf {
    spec.run_dir.join("vhost.sock")
}

fn log_file(path: &Path) -> Result<File> {
    File::create(path).map_err(|err| ActorError::host_io("creating", path, err))
}

impl Vmm for QemuVmm {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn adopt(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>> {
        let (qemu, sidecar) = adopt_processes(&spec.run_dir)?;
        tracing::info!(vm_id = %spec.vm_id, qemu_pid = qemu.pid(), "adopted a running VM");
        Ok(Box::new(QemuVm {
            qemu,
            sidecar,
            run_dir: spec.run_dir.clone(),
            console: spec.console_log(),
            qemu_log: spec.run_dir.join("qemu.log"),
        }))
    }

    fn launch(&self, spec: &VmSpec) -> Result<Box<dyn LaunchedVm>> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&spec.run_dir)
            .map_err(|err| ActorError::host_io("creating", &spec.run_dir, err))?;
        let vhost = vhost_socket(spec);
        for stale in [&vhost, &spec.vsock_socket()] {
            let _ = std::fs::remove_file(stale);
        }

        let sidecar_log = spec.run_dir.join("sidecar.log");
        let sidecar = TrackedProcess::spawn(
            "vhost-device-vsock",
            Command::new(&self.config.sidecar)
                .arg("--vm")
                .arg(format!(
                    "guest-cid={GUEST_CID},socket={},uds-path={}",
                    vhost.display(),
                    spec.vsock_socket().display()
                ))
                .stdin(Stdio::null())
                .stdout(log_file(&sidecar_log)?)
                .stderr(log_file(&sidecar_log)?)
                .process_group(0),
        )
        .map_err(|source| ActorError::Spawn {
            program: self.config.sidecar.display().to_string(),
            source,
        })?;
        if let Err(err) = wait_for_socket(&vhost, &sidecar, &sidecar_log) {
            sidecar.kill();
            let _ = sidecar.try_reap();
            return Err(err);
        }

        let qemu_log = spec.run_dir.join("qemu.log");
        let qemu = TrackedProcess::spawn(
            "qemu",
            Command::new(&self.config.qemu)
                .args(self.args(spec))
                .stdin(Stdio::null())
                .stdout(log_file(&qemu_log)?)
                .stderr(log_file(&qemu_log)?)
                .process_group(0),
        );
        let qemu = match qemu {
            Ok(qemu) => qemu,
            Err(source) => {
                sidecar.kill();
                let _ = sidecar.try_reap();
                return Err(ActorError::Spawn {
                    program: self.config.qemu.display().to_string(),
                    source,
                });
            }
        };
        tracing::debug!(vm_id = %spec.vm_id, qemu_pid = qemu.pid(), sidecar_pid = sidecar.pid(), "qemu launched");
        write_ledger(&spec.run_dir, &[&qemu, &sidecar]);
        Ok(Box::new(QemuVm {
            qemu,
            sidecar,
            run_dir: spec.run_dir.clone(),
            console: spec.console_log(),
            qemu_log,
        }))
    }
}

/// The file in a VM's run directory naming its processes, so a supervisor
/// that restarts can find and stop what a dead one left running.
pub const LEDGER_FILE: &str = "processes";

fn write_ledger(run_dir: &Path, processes: &[&TrackedProcess]) {
    let lines: Vec<String> = processes
        .iter()
        .filter_map(|process| {
            Some(
                LedgerEntry {
                    name: process.name().to_owned(),
                    pid: process.pid(),
                    start_time: process.start_time()?,
                }
                .line(),
            )
        })
        .collect();
    let path = run_dir.join(LEDGER_FILE);
    if let Err(err) = std::fs::write(&path, lines.join("\n") + "\n") {
        tracing::warn!(path = %path.display(), %err, "cannot write the process ledger");
    }
}

/// Reopens the processes named in a run directory's ledger, refusing any
/// that is not the very process recorded (same PID and start time).
fn adopt_processes(run_dir: &Path) -> Result<(TrackedProcess, TrackedProcess)> {
    let ledger_path = run_dir.join(LEDGER_FILE);
    let ledger = std::fs::read_to_string(&ledger_path)
        .map_err(|err| ActorError::host_io("reading the process ledger", &ledger_path, err))?;
    let mut qemu = None;
    let mut sidecar = None;
    for entry in ledger.lines().filter_map(LedgerEntry::parse) {
        if !entry.is_alive() {
            continue;
        }
        let name: &'static str = match entry.name.as_str() {
            "qemu" => "qemu",
            "vhost-device-vsock" => "vhost-device-vsock",
            _ => continue,
        };
        let process =
            TrackedProcess::open(name, entry.pid).map_err(|source| ActorError::Spawn {
                program: format!("adopting {name} ({})", entry.pid),
                source,
            })?;
        // The pidfd now pins the process; check it is still the recorded one.
        if !entry.is_alive() {
            continue;
        }
        match name {
            "qemu" => qemu = Some(process),
            _ => sidecar = Some(process),
        }
    }
    match (qemu, sidecar) {
        (Some(qemu), Some(sidecar)) => Ok((qemu, sidecar)),
        (qemu, sidecar) => {
            // Half a VM is no VM: stop what is left.
            for process in [qemu, sidecar].into_iter().flatten() {
                process.kill();
            }
            Err(ActorError::NotAdoptable {
                run_dir: run_dir.to_owned(),
                detail: "its processes are no longer running".to_owned(),
            })
        }
    }
}

fn wait_for_socket(socket: &Path, sidecar: &TrackedProcess, log: &Path) -> Result<()> {
    let deadline = Instant::now() + SIDECAR_READY_TIMEOUT;
    loop {
        if socket.exists() {
            return Ok(());
        }
        if let Some(exit) = sidecar.try_reap() {
            return Err(ActorError::SidecarNotReady {
                detail: format!(
                    "it exited with {exit}: {}",
                    console::tail(log, 5).replace('\n', " | ")
                ),
            });
        }
        if Instant::now() >= deadline {
            return Err(ActorError::SidecarNotReady {
                detail: format!(
                    "{} did not appear within {}s: {}",
                    socket.display(),
                    SIDECAR_READY_TIMEOUT.as_secs(),
                    console::tail(log, 5).replace('\n', " | ")
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A running QEMU VM and its sidecar.
#[derive(Debug)]
struct QemuVm {
    qemu: TrackedProcess,
    sidecar: TrackedProcess,
    run_dir: PathBuf,
    console: PathBuf,
    qemu_log: PathBuf,
}

impl LaunchedVm for QemuVm {
    fn pids(&self) -> Vec<u32> {
        vec![self.qemu.pid(), self.sidecar.pid()]
    }

    fn wait_exit(&self) -> ExitFuture<'_> {
        Box::pin(async move { self.qemu.wait().await.unwrap_or(ProcessExit::Unknown) })
    }

    fn kill(&self) {
        self.qemu.kill();
        self.sidecar.kill();
    }

    fn cleanup(&self) {
        // The sidecar outlives QEMU by design (it re-creates its socket and
        // keeps running); it must be killed, and it leaves its sockets.
        self.sidecar.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.sidecar.try_reap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.qemu.try_reap();
        if let Ok(entries) = std::fs::read_dir(&self.run_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("v.sock") || name == "vhost.sock" {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    fn console_tail(&self, lines: usize) -> String {
        let console = console::tail(&self.console, lines);
        let qemu = console::tail(&self.qemu_log, 3);
        match (console.is_empty(), qemu.is_empty()) {
            (_, true) => console,
            (true, false) => format!("qemu: {qemu}"),
            (false, false) => format!("{console}\nqemu: {qemu}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            vm_id: "0123456789ab".into(),
            vcpu_count: 2,
            mem_mib: 512,
            kernel: "/c/vmlinux".into(),
            initramfs: "/c/initramfs".into(),
            root_disk: "/c/root,fs.ext4".into(),
            data_disk: "/d/data.ext4".into(),
            run_dir: "/r/vm".into(),
            hostname: "pyro".into(),
        }
    }

    #[test]
    fn tcg_arguments_follow_the_measured_fast_path() {
        let vmm = QemuVmm::new(QemuConfig {
            qemu: "qemu-system-x86_64".into(),
            sidecar: "vhost-device-vsock".into(),
            accel: Accel::Tcg,
            tsc_khz: Some(2_445_422),
        });
        let args = vmm.args(&spec()).join(" ");
        assert!(args.contains("-M microvm,memory-backend=mem -accel tcg -cpu max -smp 2 -m 512M"));
        assert!(args.contains("memory-backend-memfd,id=mem,size=512M,share=on"));
        assert!(args.contains("tsc_early_khz=2445422"));
        assert!(args.contains("file=/c/root,,fs.ext4,if=none,id=root,format=raw,readonly=on"));
        assert!(args.contains("virtio-blk-device,drive=data,serial=pyro-data"));
        assert!(args.contains("socket,id=vsock,path=/r/vm/vhost.sock"));
        assert!(args.contains("-serial file:/r/vm/console.log"));
    }

    #[test]
    fn kvm_drops_the_tsc_hint() {
        let vmm = QemuVmm::new(QemuConfig {
            qemu: "q".into(),
            sidecar: "s".into(),
            accel: Accel::Kvm,
            tsc_khz: Some(1),
        });
        let args = vmm.args(&spec()).join(" ");
        assert!(args.contains("-accel kvm -cpu host"));
        assert!(!args.contains("tsc_early_khz"));
    }
}

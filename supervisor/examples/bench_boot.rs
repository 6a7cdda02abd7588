//! Boot benchmark, run by `scripts/bench-boot`. Prints medians (and min/max)
//! over interleaved runs, all in one invocation:
//!
//! - floor: the environment's kernel under pyro's exact QEMU flags and
//!   devices (same `QemuVmm`, same sidecar), booting a trivial init that
//!   powers off at once; QEMU spawn to QEMU exit;
//! - boot-to-agent-ready: pyro's real boot path (`vm::boot::boot`): spawn to
//!   ready notice, hybrid-vsock connect, handshake and ping;
//! - `pyro run <env> -- true`: wall time through the CLI and a warm
//!   supervisor (skipped with `--no-cli`).
//!
//! ```text
//! cargo run --release -p pyro-supervisor --example bench_boot -- [--runs 7] [--environment debian:12-base] [--no-cli]
//! ```
#![allow(clippy::disallowed_macros)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pyro_actors::vm::boot::{boot, tear_down};
use pyro_actors::vm::disk::create_data_disk;
use pyro_actors::vm::{LaunchedVm, VmSpec, Vmm};
use pyro_supervisor::environment::cpio_archive::{write_newc_archive_file, ArchiveEntry};
use pyro_supervisor::environment::{lookup, EnvironmentCache};
use pyro_supervisor::guest_bundle::{guest_dir_candidates, GuestBundle};
use pyro_supervisor::host::{probe_kvm, HostPrograms};
use pyro_supervisor::runtime::select_backend;

struct Options {
    runs: usize,
    environment: String,
    cli: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 7,
        environment: "debian:12-base".to_owned(),
        cli: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => options.runs = args.next().context("--runs needs a number")?.parse()?,
            "--environment" => {
                options.environment = args.next().context("--environment needs a name")?;
            }
            "--no-cli" => options.cli = false,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let paths = pyro_sdk::PyroPaths::from_env()?;
    let entry = lookup(&options.environment)?;
    let cache = EnvironmentCache::new(&paths.cache_dir);
    let env = cache.installed(entry).with_context(|| {
        format!(
            "{} is not installed: run `pyro env pull {}` first",
            entry.name, entry.name
        )
    })?;
    let programs = HostPrograms::discover();
    let kvm = probe_kvm();
    let backend = select_backend(&programs, &kvm, None);
    if let Some(unavailable) = backend.unavailable {
        bail!("{}", unavailable.chain());
    }
    let bundle = GuestBundle::prepare(None, &paths.cache_dir)?;
    let initramfs = bundle.initramfs_for(&env)?;
    let work = tempfile::Builder::new()
        .prefix("pyro-bench-")
        .tempdir_in("/tmp")?;
    let floor_initramfs = work.path().join("floor.cpio");
    write_floor_initramfs(&floor_initramfs)?;
    let mkfs = programs.mkfs.path.clone().context("mkfs.ext4 not found")?;

    println!(
        "environment {} | backend qemu accel={} | {} runs each, interleaved",
        entry.name, backend.choice.accel, options.runs
    );
    let system = actix_rt::System::new();
    let vmm = backend.vmm;
    let mut floor = Vec::new();
    let mut ready = Vec::new();
    for run in 0..options.runs {
        let spec = |name: &str, initramfs: &Path| -> anyhow::Result<VmSpec> {
            let dir = work.path().join(format!("{name}-{run}"));
            std::fs::create_dir_all(&dir)?;
            let data_disk = dir.join("data.ext4");
            create_data_disk(&mkfs, &data_disk, 4096)?;
            Ok(VmSpec {
                vm_id: format!("bench{run:07}"),
                vcpu_count: 1,
                mem_mib: 1024,
                kernel: env.vmlinux.clone(),
                initramfs: initramfs.to_owned(),
                root_disk: env.rootfs.clone(),
                data_disk,
                run_dir: dir.join("run"),
                hostname: "pyro".to_owned(),
            })
        };
        let floor_spec = spec("floor", &floor_initramfs)?;
        let ready_spec = spec("ready", &initramfs)?;
        let vmm = Arc::clone(&vmm);
        let (floor_time, ready_time) = system.block_on(async move {
            let floor_time = time_floor(Arc::clone(&vmm), floor_spec).await?;
            let ready_time = time_ready(vmm, ready_spec).await?;
            anyhow::Ok((floor_time, ready_time))
        })?;
        println!(
            "run {}: floor {:.3}s  boot-to-agent-ready {:.3}s",
            run + 1,
            floor_time.as_secs_f64(),
            ready_time.as_secs_f64()
        );
        floor.push(floor_time);
        ready.push(ready_time);
    }

    let mut cli = Vec::new();
    if options.cli {
        let pyro = pyro_binary()?;
        // A warm-up run starts the supervisor and is not counted.
        run_cli(&pyro, entry.name)?;
        for run in 0..options.runs {
            let took = run_cli(&pyro, entry.name)?;
            println!(
                "run {}: pyro run -- true {:.3}s",
                run + 1,
                took.as_secs_f64()
            );
            cli.push(took);
        }
    }

    println!();
    report("floor (trivial init, same flags)", &floor);
    report("boot-to-agent-ready", &ready);
    if !cli.is_empty() {
        report(&format!("pyro run {} -- true", entry.name), &cli);
    }
    let ratio = median(&ready).as_secs_f64() / median(&floor).as_secs_f64();
    println!("ratio boot-to-agent-ready / floor (medians): {ratio:.3}x");
    Ok(())
}

async fn time_floor(vmm: Arc<dyn Vmm>, spec: VmSpec) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let launched: Arc<dyn LaunchedVm> = tokio::task::spawn_blocking(move || vmm.launch(&spec))
        .await??
        .into();
    let exit = tokio::time::timeout(Duration::from_secs(120), launched.wait_exit()).await;
    let took = started.elapsed();
    let cleanup = Arc::clone(&launched);
    tokio::task::spawn_blocking(move || cleanup.cleanup()).await?;
    match exit {
        Ok(_) => Ok(took),
        Err(_) => {
            launched.kill();
            bail!("the floor VM did not power off within 120s")
        }
    }
}

async fn time_ready(vmm: Arc<dyn Vmm>, spec: VmSpec) -> anyhow::Result<Duration> {
    let started = Instant::now();
    // Never cancelled: the sender lives until the boot has answered.
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let booted = boot(vmm, spec, Duration::from_secs(120), cancel_rx).await?;
    let took = started.elapsed();
    tear_down(&booted.launched, booted.exit_rx.clone()).await;
    Ok(took)
}

fn write_floor_initramfs(path: &Path) -> anyhow::Result<()> {
    let floor_init = guest_dir_candidates(None)
        .into_iter()
        .map(|dir| dir.join("pyro-floor-init"))
        .find(|candidate| candidate.is_file())
        .context(
            "pyro-floor-init not found: scripts/bench-boot builds it with the guest binaries",
        )?;
    let entries = vec![
        ArchiveEntry::directory("dev", 0o755),
        ArchiveEntry::char_device("dev/console", 0o600, 5, 1),
        ArchiveEntry::file_from_path("init", 0o755, floor_init),
    ];
    write_newc_archive_file(&entries, path)?;
    Ok(())
}

fn pyro_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/examples/bench_boot -> target/release/pyro
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("pyro"))
        .context("cannot locate the build directory")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        bail!(
            "{} not found: build it with `cargo build --release -p pyro-cli`",
            candidate.display()
        )
    }
}

fn run_cli(pyro: &Path, environment: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new(pyro)
        .args(["run", environment, "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let took = started.elapsed();
    if !status.success() {
        bail!("`pyro run {environment} -- true` failed with {status}");
    }
    Ok(took)
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2
    } else {
        sorted[mid]
    }
}

fn report(name: &str, samples: &[Duration]) {
    let min = samples.iter().min().copied().unwrap_or_default();
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "{name}: median {:.3}s [min {:.3}s, max {:.3}s] over {} runs",
        median(samples).as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64(),
        samples.len()
    );
}

//! Builds (or finds) one environment in a cache directory and prints progress.
//!
//! ```text
//! cargo run --release -p pyro-supervisor --example build_environment -- debian:12-base /tmp/pyro-env-cache
//! ```
//!
//! Also `build_environment --verify ENVIRONMENT CACHE_DIR` (build if needed,
//! then check every artifact's sha256) and `build_environment --prune CACHE_DIR`.
//! Set `RUST_LOG=debug` to see every command and its output.

#![allow(clippy::disallowed_macros)] // an example talks to its user on stdout/stderr

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use pyro_supervisor::environment::{lookup, EnvironmentCache};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["--prune", cache_dir] => prune(Path::new(cache_dir)),
        ["--verify", name, cache_dir] => run(name, Path::new(cache_dir), true),
        [name, cache_dir] if !name.starts_with('-') => run(name, Path::new(cache_dir), false),
        _ => {
            eprintln!(
                "usage: build_environment [--verify] ENVIRONMENT CACHE_DIR\n       \
                 build_environment --prune CACHE_DIR"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("[error] {message}");
            ExitCode::FAILURE
        }
    }
}

fn prune(cache_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let removed = EnvironmentCache::new(cache_dir).prune()?;
    println!(
        "Deleted {} cached environment entr{}.",
        removed.len(),
        if removed.len() == 1 { "y" } else { "ies" }
    );
    for name in removed {
        println!("- {name}");
    }
    Ok(())
}

fn run(name: &str, cache_dir: &Path, verify: bool) -> Result<(), Box<dyn std::error::Error>> {
    let entry = lookup(name)?;
    let cache = EnvironmentCache::new(cache_dir);
    let started = Instant::now();
    let mut phase_started = Instant::now();
    let installed = cache.ensure_installed(entry, &mut |progress| {
        eprintln!(
            "[pull] phase={} environment={} t={:.1}s (+{:.1}s) {}",
            progress.phase,
            entry.name,
            started.elapsed().as_secs_f64(),
            phase_started.elapsed().as_secs_f64(),
            progress.detail
        );
        phase_started = Instant::now();
    })?;
    eprintln!(
        "[pull] phase=ready environment={} t={:.1}s",
        entry.name,
        started.elapsed().as_secs_f64()
    );

    let manifest = &installed.manifest;
    println!("Environment: {}", manifest.name);
    println!("Version: {}", manifest.version);
    println!("Install dir: {}", installed.dir.display());
    println!(
        "Kernel: {} ({})",
        manifest.kernel_version, manifest.kernel_package
    );
    println!("Modules: {}", manifest.modules.join(" "));
    println!("Built at: {}", manifest.built_at);
    for (file, record) in manifest.artifacts.iter() {
        println!(
            "  {file:<13} {:>10.1} MiB  sha256 {}",
            record.size_bytes as f64 / (1024.0 * 1024.0),
            record.sha256
        );
    }
    if verify {
        let verify_started = Instant::now();
        installed.verify()?;
        println!(
            "Verified sha256 of all artifacts in {:.2}s",
            verify_started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

//! `pyro doctor`: can this host run guests, and what to fix if not.

use pyro_sdk::api::{Capabilities, DoctorIssue, DoctorReport, KvmStatus, Networking, ToolStatus};

use crate::env_manager::environment_info;
use crate::host::{program_version, APT_INSTALL};
use crate::runtime::Runtime;

/// Builds the report (blocking: runs `--version` of each program).
pub fn report(runtime: &Runtime) -> DoctorReport {
    let mut issues = Vec::new();
    let tools: Vec<ToolStatus> = runtime
        .programs
        .all()
        .into_iter()
        .map(|program| {
            if program.path.is_none() {
                let fix = match program.override_var {
                    Some(var) => format!(
                        "install it with `{}` (or set {var} to its path)",
                        program.install
                    ),
                    None => format!("install it with `{}`", program.install),
                };
                issues.push(DoctorIssue {
                    problem: format!("{} ({}) was not found", program.name, program.purpose),
                    fix,
                });
            }
            ToolStatus {
                name: program.name.to_owned(),
                purpose: program.purpose.to_owned(),
                found: program.path.is_some(),
                path: program.path.as_ref().map(|p| p.display().to_string()),
                version: program.path.as_deref().and_then(program_version),
                required: program.required,
            }
        })
        .collect();

    if let Err(body) = &runtime.bundle {
        issues.push(DoctorIssue {
            problem: body.message.clone(),
            fix: body
                .hint
                .clone()
                .unwrap_or_else(|| "run scripts/setup".to_owned()),
        });
    }
    let kvm = &runtime.kvm;
    if kvm.exists && !(kvm.readable && kvm.writable) {
        issues.push(DoctorIssue {
            problem: "/dev/kvm exists but is not readable and writable by this user".to_owned(),
            fix: "add the user to the kvm group (`usermod -aG kvm $USER`, then log in again); until then pyro uses slower software emulation".to_owned(),
        });
    }
    let environments: Vec<_> = runtime
        .cache
        .status()
        .iter()
        .map(|status| environment_info(status, &runtime.cache))
        .collect();
    if !environments.iter().any(|e| e.installed)
        && runtime.programs.build.iter().any(|p| p.path.is_none())
    {
        issues.push(DoctorIssue {
            problem: "no environment is installed and the tools to build one are missing"
                .to_owned(),
            fix: format!("install them with `{APT_INSTALL}`"),
        });
    }
    let runtime_ok = runtime.unavailable.is_none() && runtime.bundle.is_ok();
    DoctorReport {
        platform: crate::environment::PLATFORM.to_owned(),
        runtime_ok,
        kvm: KvmStatus {
            exists: kvm.exists,
            readable: kvm.readable,
            writable: kvm.writable,
            usable: kvm.usable,
            reason: kvm.reason.clone(),
        },
        backend: runtime.backend.clone(),
        tools,
        cache_dir: runtime.cache.platform_dir().display().to_string(),
        data_dir: runtime.settings.paths.data_dir.display().to_string(),
        environments,
        capabilities: Capabilities {
            vm_boot: runtime_ok,
            guest_exec: runtime_ok,
            guest_network: false,
        },
        networking: Networking {
            tun: std::path::Path::new("/dev/net/tun").exists(),
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|v| v.trim() == "1"),
        },
        issues,
    }
}

//! `pyro doctor`.

use std::process::ExitCode;

use pyro_sdk::api::{
    BackendChoice, Capabilities, DoctorIssue, DoctorReport, KvmStatus, Networking,
};
use pyro_sdk::{Client, ConnectOptions};

use crate::output::{out, print_json, yes_no, Outcome};

/// Runs the doctor. When the supervisor cannot be started, that is itself
/// the finding: the report says Runtime: FAIL and why, instead of crashing.
pub async fn run(json: bool) -> Outcome {
    let report = match connect_and_report().await {
        Ok(report) => report,
        Err(err) => unreachable_supervisor_report(&err),
    };
    if json {
        print_json(&report);
    } else {
        print_human(&report);
    }
    Ok(if report.runtime_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn connect_and_report() -> Result<DoctorReport, pyro_sdk::SdkError> {
    let client = Client::connect(ConnectOptions::from_env()?).await?;
    client.doctor().await
}

fn unreachable_supervisor_report(err: &pyro_sdk::SdkError) -> DoctorReport {
    let body = err.to_body();
    let paths = pyro_sdk::PyroPaths::from_env().ok();
    DoctorReport {
        platform: "linux-x86_64".to_owned(),
        runtime_ok: false,
        kvm: KvmStatus {
            exists: std::path::Path::new("/dev/kvm").exists(),
            readable: std::fs::File::open("/dev/kvm").is_ok(),
            writable: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kvm")
                .is_ok(),
            usable: false,
            reason: "unknown: the supervisor, which probes it, did not start".to_owned(),
        },
        backend: BackendChoice {
            backend: "none".to_owned(),
            accel: "none".to_owned(),
            reason: "the supervisor did not start".to_owned(),
        },
        tools: Vec::new(),
        cache_dir: paths
            .as_ref()
            .map(|p| p.cache_dir.display().to_string())
            .unwrap_or_default(),
        data_dir: paths
            .as_ref()
            .map(|p| p.data_dir.display().to_string())
            .unwrap_or_default(),
        environments: Vec::new(),
        capabilities: Capabilities {
            vm_boot: false,
            guest_exec: false,
            guest_network: false,
        },
        networking: Networking {
            tun: std::path::Path::new("/dev/net/tun").exists(),
            ip_forward: false,
        },
        issues: vec![DoctorIssue {
            problem: format!("the pyro supervisor is not available: {}", body.chain()),
            fix: body.hint.unwrap_or_else(|| "run scripts/setup".to_owned()),
        }],
    }
}

fn print_human(report: &DoctorReport) {
    let kvm = &report.kvm;
    out(&format!("Platform: {}", report.platform));
    out(&format!(
        "Runtime: {}",
        if report.runtime_ok { "PASS" } else { "FAIL" }
    ));
    out(&format!(
        "KVM: exists={} readable={} writable={} usable={} ({})",
        yes_no(kvm.exists),
        yes_no(kvm.readable),
        yes_no(kvm.writable),
        yes_no(kvm.usable),
        kvm.reason
    ));
    out(&format!(
        "Backend: {} accel={} ({})",
        report.backend.backend, report.backend.accel, report.backend.reason
    ));
    out(&format!("Environment cache: {}", report.cache_dir));
    out(&format!("Data dir: {}", report.data_dir));
    out(&format!(
        "Capabilities: vm_boot={} guest_exec={} guest_network={}",
        yes_no(report.capabilities.vm_boot),
        yes_no(report.capabilities.guest_exec),
        yes_no(report.capabilities.guest_network)
    ));
    out(&format!(
        "Networking: tun={} ip_forward={}",
        yes_no(report.networking.tun),
        yes_no(report.networking.ip_forward)
    ));
    if !report.tools.is_empty() {
        out("Tools:");
        for tool in &report.tools {
            let found = match (&tool.path, &tool.version) {
                (Some(path), Some(version)) => format!("{path} ({version})"),
                (Some(path), None) => path.clone(),
                (None, _) => "not found".to_owned(),
            };
            let required = if tool.required {
                "required"
            } else {
                "optional"
            };
            out(&format!("  {} [{required}]: {found}", tool.name));
        }
    }
    if !report.environments.is_empty() {
        let envs: Vec<String> = report
            .environments
            .iter()
            .map(|e| {
                format!(
                    "{} ({})",
                    e.name,
                    if e.installed {
                        "installed"
                    } else {
                        "not installed"
                    }
                )
            })
            .collect();
        out(&format!("Environments: {}", envs.join(", ")));
    }
    if !report.issues.is_empty() {
        out("Issues:");
        for issue in &report.issues {
            out(&format!("- {}", issue.problem));
            out(&format!("  fix: {}", issue.fix));
        }
    }
}

//! `pyro env list|inspect|pull|prune`.

use std::process::ExitCode;

use clap::Subcommand;
use pyro_sdk::api::{EnvironmentInfo, PullEvent, PullProgress};
use pyro_sdk::{Client, SdkError};

use crate::output::{err, out, print_json, yes_no, CliError, Outcome};

/// Environment subcommands.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the catalog and what is installed.
    #[command(after_help = "Example:\n  pyro env list")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one environment.
    #[command(after_help = "Example:\n  pyro env inspect debian:12")]
    Inspect {
        /// Environment name, e.g. debian:12.
        environment: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install an environment (built locally from Debian packages), with
    /// progress on stderr.
    #[command(
        alias = "build",
        after_help = "Examples:\n  pyro env pull debian:12\n  pyro env pull debian:12-build --json"
    )]
    Pull {
        /// Environment name, e.g. debian:12.
        environment: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove incomplete, stale and unknown environment installs.
    #[command(after_help = "Example:\n  pyro env prune")]
    Prune {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl EnvCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::List { json } | Self::Prune { json } => *json,
            Self::Inspect { json, .. } | Self::Pull { json, .. } => *json,
        }
    }
}

/// Runs an environment subcommand.
pub async fn run(client: &Client, command: EnvCommand) -> Outcome {
    match command {
        EnvCommand::List { json } => {
            let list = client.list_environments().await?;
            if json {
                print_json(&list);
            } else {
                out(&format!("Catalog version: {}", list.catalog_version));
                if list.environments.is_empty() {
                    out("No environments found.");
                }
                for env in &list.environments {
                    let state = if env.installed {
                        "installed"
                    } else {
                        "not installed"
                    };
                    out(&format!("{} [{state}] {}", env.name, env.description));
                }
            }
        }
        EnvCommand::Inspect { environment, json } => {
            let info = client.inspect_environment(&environment).await?;
            if json {
                print_json(&info);
            } else {
                print_detail("Environment", &info, true);
            }
        }
        EnvCommand::Pull { environment, json } => {
            let info = pull(client, &environment, !json).await?;
            if json {
                print_json(&info);
            } else {
                print_detail("Pulled", &info, false);
            }
        }
        EnvCommand::Prune { json } => {
            let result = client.prune_environments().await?;
            if json {
                print_json(&result);
            } else {
                let noun = if result.count == 1 {
                    "entry"
                } else {
                    "entries"
                };
                out(&format!(
                    "Deleted {} cached environment {noun}.",
                    result.count
                ));
                for dir in &result.deleted_environment_dirs {
                    out(&format!("- {dir}"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Installs `name`, printing progress lines on stderr when `progress` is set.
pub async fn pull(
    client: &Client,
    name: &str,
    progress: bool,
) -> Result<EnvironmentInfo, CliError> {
    let mut events = client.pull_environment(name).await?;
    while let Some(event) = events.next().await {
        match event? {
            PullEvent::Progress(line) => {
                if progress {
                    err(&pull_line(&line));
                }
            }
            PullEvent::Result(info) => {
                if progress {
                    err(&format!("[pull] phase=ready environment={}", info.name));
                }
                return Ok(*info);
            }
            PullEvent::Error(body) => return Err(CliError(body)),
        }
    }
    Err(SdkError::StreamEnded {
        path: events.path().to_owned(),
    }
    .into())
}

/// `[pull] phase=... environment=... [detail=...]`.
pub fn pull_line(progress: &PullProgress) -> String {
    let mut line = format!(
        "[pull] phase={} environment={}",
        progress.phase, progress.environment
    );
    if let Some(detail) = &progress.detail {
        line.push_str(&format!(
            " detail={}",
            shlex::try_quote(detail).unwrap_or_else(|_| detail.into())
        ));
    }
    line
}

fn print_detail(action: &str, info: &EnvironmentInfo, with_description: bool) {
    out(&format!("{action}: {}", info.name));
    out(&format!("Version: {}", info.version));
    out(&format!(
        "Distribution: {} {}",
        info.distribution, info.distribution_version
    ));
    out(&format!("Installed: {}", yes_no(info.installed)));
    out(&format!("Cache dir: {}", info.cache_dir));
    out(&format!(
        "Default packages: {}",
        info.default_packages.join(", ")
    ));
    if with_description {
        out(&format!("Description: {}", info.description));
    }
    if info.installed {
        out(&format!("Install dir: {}", info.install_dir));
    }
    if let Some(manifest) = &info.install_manifest {
        out(&format!("Install manifest: {manifest}"));
    }
    if let Some(kernel) = &info.kernel_image {
        out(&format!("Kernel image: {kernel}"));
    }
    if let Some(rootfs) = &info.rootfs_image {
        out(&format!("Rootfs image: {rootfs}"));
    }
    if let Some(version) = &info.kernel_version {
        out(&format!("Kernel version: {version}"));
    }
    if let Some(source) = &info.source {
        out(&format!("Source: {source}"));
    }
    if let Some(built_at) = &info.built_at {
        out(&format!("Built at: {built_at}"));
    }
}

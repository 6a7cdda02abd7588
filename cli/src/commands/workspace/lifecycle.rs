//! `pyro workspace create|list|status|update|stop|start|delete`, and the
//! summary block they print.

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use pyro_sdk::api::limits;
use pyro_sdk::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, FailurePolicy, UpdateWorkspaceRequest, WorkspaceInfo,
    DEFAULT_DISK_MIB,
};
use pyro_sdk::{Client, SdkError};

use super::{field, pair_map, parse_label, IdArgs, JsonArgs};
use crate::commands::env::pull_line;
use crate::output::{err, out, print_json, CliError, Outcome};

/// `pyro workspace create` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace create debian:12
  pyro workspace create debian:12 --seed-path ./repo --name api --label team=infra
  pyro workspace create debian:12-build --vcpu-count 2 --mem-mib 2048 --ttl-seconds 3600
  ID=$(pyro workspace create debian:12 --id-only)
  pyro workspace create debian:12 --secret API_TOKEN=expected --secret-file PIP_TOKEN=./token.txt

Progress ([workspace-create] and [pull] lines) goes to stderr; the summary
block (or the id, or JSON) to stdout. The workspace is deleted when its TTL
runs out; extend it with `pyro workspace update ID --ttl-seconds N`.

Secrets are fixed at creation. In the guest each one is the file
/run/pyro-secrets/NAME; `--secret-env NAME[=ENV_VAR]` on exec, shell open and
service start puts one in that one process's environment. Their values are
redacted from everything pyro shows. A --secret value is visible to other
local users in the process list while pyro runs: prefer --secret-file.")]
pub struct CreateArgs {
    /// Environment name, e.g. debian:12 (see `pyro env list`).
    pub environment: String,
    /// A host directory or .tar/.tar.gz/.tgz archive to seed /workspace with.
    #[arg(long, value_name = "PATH")]
    pub seed_path: Option<String>,
    /// A name for people (one line, at most 120 characters).
    #[arg(long)]
    pub name: Option<String>,
    /// A label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// vCPUs for the VM (1-8).
    #[arg(long, default_value_t = limits::DEFAULT_VCPU)]
    pub vcpu_count: u8,
    /// Guest memory in MiB (256-32768).
    #[arg(long, default_value_t = limits::DEFAULT_MEM_MIB)]
    pub mem_mib: u32,
    /// Writable disk size in MiB (sparse; 512-1048576).
    #[arg(long, default_value_t = DEFAULT_DISK_MIB)]
    pub disk_mib: u64,
    /// Seconds until the workspace is deleted (60-604800).
    #[arg(long, default_value_t = limits::DEFAULT_TTL_SECONDS)]
    pub ttl_seconds: u64,
    /// What to do when the VM dies without being asked to.
    #[arg(long, value_enum, default_value_t = OnFailure::Restart)]
    pub on_failure: OnFailure,
    /// A secret with a literal value (repeatable; split at the first `=`).
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = super::secret_arg)]
    pub secrets: Vec<super::SecretArg>,
    /// A secret read from a host file by the supervisor (repeatable); one
    /// trailing newline (`\n` or `\r\n`) is not part of the value.
    #[arg(long = "secret-file", value_name = "NAME=PATH", value_parser = super::parse_secret_file)]
    pub secret_files: Vec<(String, String)>,
    /// Print JSON.
    #[arg(long, conflicts_with = "id_only")]
    pub json: bool,
    /// Print only the workspace id.
    #[arg(long)]
    pub id_only: bool,
}

/// `--on-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Boot it again on the same disk.
    Restart,
    /// Recreate the disk and restore the baseline.
    Reset,
    /// Mark it stopped, with the error.
    Stop,
}

impl From<OnFailure> for FailurePolicy {
    fn from(value: OnFailure) -> Self {
        match value {
            OnFailure::Restart => Self::Restart,
            OnFailure::Reset => Self::Reset,
            OnFailure::Stop => Self::Stop,
        }
    }
}

/// `pyro workspace update` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace update WORKSPACE_ID --name api --label team=infra
  pyro workspace update WORKSPACE_ID --clear-name --clear-label team
  pyro workspace update WORKSPACE_ID --ttl-seconds 3600

--ttl-seconds counts from now. Asking for no change is an error.")]
pub struct UpdateArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A new name.
    #[arg(long, conflicts_with = "clear_name")]
    pub name: Option<String>,
    /// Remove the name.
    #[arg(long)]
    pub clear_name: bool,
    /// A label to add or change (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// A label to remove (repeatable).
    #[arg(long = "clear-label", value_name = "KEY")]
    pub clear_labels: Vec<String>,
    /// A new time to live in seconds, counted from now.
    #[arg(long)]
    pub ttl_seconds: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How much of a workspace the summary block shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// What `create` prints (the first-run transcript's lines).
    Brief,
    /// Everything (status, update, stop, start).
    Full,
}

/// The create request, checked.
pub fn create_request(args: CreateArgs) -> Result<CreateWorkspaceRequest, CliError> {
    let request = CreateWorkspaceRequest {
        environment: args.environment,
        seed_path: args.seed_path,
        name: args.name,
        labels: pair_map(args.labels, "--label")?,
        vcpu_count: args.vcpu_count,
        mem_mib: args.mem_mib,
        disk_mib: args.disk_mib,
        ttl_seconds: args.ttl_seconds,
        on_failure: args.on_failure.into(),
        secrets: super::secret_specs(args.secrets, args.secret_files)?,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok(request)
}

/// The update request, checked.
pub fn update_request(args: UpdateArgs) -> Result<UpdateWorkspaceRequest, CliError> {
    let request = UpdateWorkspaceRequest {
        name: args.name,
        clear_name: args.clear_name,
        labels: pair_map(args.labels, "--label")?,
        clear_labels: args.clear_labels,
        ttl_seconds: args.ttl_seconds,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok(request)
}

/// Runs `pyro workspace create`.
pub async fn create(
    args: CreateArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let (json, id_only) = (args.json, args.id_only);
    let request = create_request(args)?;
    let client = connect.await?;
    let progress = !json && !id_only;
    let mut events = client.create_workspace(&request).await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted => {
                err("[workspace-create] interrupted; `pyro workspace list` shows whether the workspace was created");
                return Ok(ExitCode::from(130));
            }
        };
        let Some(event) = event else {
            return Err(SdkError::StreamEnded {
                path: events.path().to_owned(),
            }
            .into());
        };
        match event? {
            CreateEvent::Phase {
                phase,
                workspace_id,
            } => {
                if progress {
                    err(&phase_line(&phase, &workspace_id));
                }
            }
            CreateEvent::Pull(line) => {
                if progress {
                    err(&pull_line(&line));
                }
            }
            CreateEvent::Result(info) => {
                if json {
                    print_json(&info);
                } else if id_only {
                    out(&info.workspace_id);
                } else {
                    print_lines(&summary_lines("Workspace", &info, Detail::Brief));
                }
                return Ok(ExitCode::SUCCESS);
            }
            CreateEvent::Error(body) => return Err(CliError(body)),
        }
    }
}

/// Runs `pyro workspace list`.
pub async fn list(
    args: &JsonArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let list = connect.await?.list_workspaces().await?;
    if args.json {
        print_json(&list);
    } else if list.workspaces.is_empty() {
        out("No workspaces.");
    } else {
        for info in &list.workspaces {
            out(&list_line(info));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace status`.
pub async fn status(
    args: &IdArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let info = connect.await?.workspace_status(&args.workspace_id).await?;
    show(&info, "Workspace", args.json);
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace update`.
pub async fn update(
    args: UpdateArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let json = args.json;
    let workspace_id = args.workspace_id.clone();
    let request = update_request(args)?;
    let info = connect
        .await?
        .update_workspace(&workspace_id, &request)
        .await?;
    show(&info, "Workspace", json);
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace stop`.
pub async fn stop(
    args: &IdArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let info = connect.await?.stop_workspace(&args.workspace_id).await?;
    show(&info, "Stopped workspace", args.json);
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace start`.
pub async fn start(
    args: &IdArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let info = connect.await?.start_workspace(&args.workspace_id).await?;
    show(&info, "Started workspace", args.json);
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace delete`.
pub async fn delete(
    args: &IdArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let result = connect.await?.delete_workspace(&args.workspace_id).await?;
    if args.json {
        print_json(&result);
    } else {
        out(&format!("Deleted workspace: {}", result.workspace_id));
    }
    Ok(ExitCode::SUCCESS)
}

fn show(info: &WorkspaceInfo, heading: &str, json: bool) {
    if json {
        print_json(info);
    } else {
        print_lines(&summary_lines(heading, info, Detail::Full));
    }
}

fn print_lines(lines: &[String]) {
    for line in lines {
        out(line);
    }
}

/// `[workspace-create] phase=... workspace_id=...`.
pub fn phase_line(phase: &str, workspace_id: &str) -> String {
    format!("[workspace-create] phase={phase} workspace_id={workspace_id}")
}

/// The summary block: `HEADING ID: ...`, then one `Key: value` line each.
pub fn summary_lines(heading: &str, info: &WorkspaceInfo, detail: Detail) -> Vec<String> {
    let full = detail == Detail::Full;
    let mut lines = vec![format!("{heading} ID: {}", info.workspace_id)];
    if let Some(name) = &info.name {
        lines.push(format!("Name: {name}"));
    }
    if !info.labels.is_empty() {
        let labels: Vec<String> = info
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(format!("Labels: {}", labels.join(", ")));
    }
    lines.push(format!("Environment: {}", info.environment));
    lines.push(format!("State: {}", info.state.as_str()));
    lines.push(format!("Workspace: {}", info.workspace_path));
    if full {
        lines.push(format!("Created at: {}", info.created_at));
        lines.push(format!("Last activity at: {}", info.last_activity_at));
        lines.push(format!("Expires at: {}", info.expires_at));
        lines.push(format!("Network policy: {}", info.network_policy));
    }
    let seed = &info.workspace_seed;
    match &seed.seed_path {
        Some(path) if seed.mode != "empty" => {
            lines.push(format!("Workspace seed: {} from {path}", seed.mode));
        }
        _ => lines.push(format!("Workspace seed: {}", seed.mode)),
    }
    if !info.secrets.is_empty() {
        let secrets: Vec<String> = info
            .secrets
            .iter()
            .map(|s| format!("{} ({})", s.name, s.source_kind))
            .collect();
        lines.push(format!("Secrets: {}", secrets.join(", ")));
    }
    lines.push(format!("Execution mode: {}", info.execution_mode));
    lines.push(format!(
        "Resources: {} vCPU / {} MiB",
        info.vcpu_count, info.mem_mib
    ));
    if full {
        lines.push(format!("Disk: {} MiB", info.disk_mib));
        lines.push(format!("On failure: {}", info.on_failure.as_str()));
    }
    lines.push(format!("Command count: {}", info.command_count));
    if full {
        lines.push(format!("Reset count: {}", info.reset_count));
        if let Some(at) = &info.last_reset_at {
            lines.push(format!("Last reset at: {at}"));
        }
        lines.push(format!(
            "Services: {}/{} running",
            info.running_service_count, info.service_count
        ));
        if let Some(last) = &info.last_command {
            lines.push(format!(
                "Last command: {} (exit_code={})",
                last.command, last.exit_code
            ));
        }
    }
    if let Some(error) = &info.last_error {
        lines.push(format!("Last error: {error}"));
    }
    lines
}

/// One `[workspace] ...` line of `pyro workspace list`.
pub fn list_line(info: &WorkspaceInfo) -> String {
    let labels: Vec<String> = info
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "[workspace] workspace_id={} name={} state={} environment={} labels={} last_activity_at={} expires_at={} commands={} services={}/{}",
        info.workspace_id,
        field(info.name.as_deref().unwrap_or_default()),
        info.state.as_str(),
        info.environment,
        field(&labels.join(",")),
        info.last_activity_at,
        info.expires_at,
        info.command_count,
        info.running_service_count,
        info.service_count,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;
    use pyro_sdk::api::workspace::{CommandSummary, SecretInfo, SeedInfo, WorkspaceState};

    /// A workspace as the transcript's `create --seed-path ./repo` shows it.
    pub(crate) fn sample_info() -> WorkspaceInfo {
        WorkspaceInfo {
            workspace_id: "0123456789ab".into(),
            name: None,
            labels: Default::default(),
            environment: "debian:12".into(),
            environment_version: "0.1.0".into(),
            state: WorkspaceState::Started,
            vcpu_count: 1,
            mem_mib: 1024,
            disk_mib: 4096,
            ttl_seconds: 600,
            on_failure: FailurePolicy::Restart,
            created_at: "2026-01-02T03:04:05.000Z".into(),
            last_activity_at: "2026-01-02T03:04:06.000Z".into(),
            expires_at: "2026-01-02T03:14:05.000Z".into(),
            execution_mode: "guest_vsock".into(),
            workspace_path: "/workspace".into(),
            network_policy: "off".into(),
            workspace_seed: SeedInfo {
                mode: "directory".into(),
                seed_path: Some("/home/you/repo".into()),
                destination: "/workspace".into(),
                entry_count: 3,
                bytes_written: 42,
            },
            secrets: vec![],
            command_count: 0,
            last_command: None,
            reset_count: 0,
            last_reset_at: None,
            service_count: 0,
            running_service_count: 0,
            last_error: None,
        }
    }

    fn create_args(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        let mut words = vec!["workspace", "create"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::Create(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_block_matches_the_transcript() {
        assert_eq!(
            summary_lines("Workspace", &sample_info(), Detail::Brief),
            [
                "Workspace ID: 0123456789ab",
                "Environment: debian:12",
                "State: started",
                "Workspace: /workspace",
                "Workspace seed: directory from /home/you/repo",
                "Execution mode: guest_vsock",
                "Resources: 1 vCPU / 1024 MiB",
                "Command count: 0",
            ]
        );
    }

    #[test]
    fn full_block_shows_everything_set() {
        let mut info = sample_info();
        info.name = Some("api".into());
        info.labels.insert("team".into(), "infra".into());
        info.labels.insert("env".into(), "dev".into());
        info.workspace_seed = SeedInfo {
            mode: "empty".into(),
            seed_path: None,
            destination: "/workspace".into(),
            entry_count: 0,
            bytes_written: 0,
        };
        info.secrets = vec![SecretInfo {
            name: "API_TOKEN".into(),
            source_kind: "literal".into(),
            size_bytes: 8,
        }];
        info.state = WorkspaceState::Stopped;
        info.command_count = 2;
        info.reset_count = 1;
        info.last_reset_at = Some("2026-01-02T03:05:00.000Z".into());
        info.service_count = 2;
        info.running_service_count = 1;
        info.last_command = Some(CommandSummary {
            sequence: 2,
            command: "make test".into(),
            cwd: "/workspace".into(),
            exit_code: 2,
            duration_ms: 10,
        });
        info.last_error = Some("the VM exited".into());
        assert_eq!(
            summary_lines("Stopped workspace", &info, Detail::Full),
            [
                "Stopped workspace ID: 0123456789ab",
                "Name: api",
                "Labels: env=dev, team=infra",
                "Environment: debian:12",
                "State: stopped",
                "Workspace: /workspace",
                "Created at: 2026-01-02T03:04:05.000Z",
                "Last activity at: 2026-01-02T03:04:06.000Z",
                "Expires at: 2026-01-02T03:14:05.000Z",
                "Network policy: off",
                "Workspace seed: empty",
                "Secrets: API_TOKEN (literal)",
                "Execution mode: guest_vsock",
                "Resources: 1 vCPU / 1024 MiB",
                "Disk: 4096 MiB",
                "On failure: restart",
                "Command count: 2",
                "Reset count: 1",
                "Last reset at: 2026-01-02T03:05:00.000Z",
                "Services: 1/2 running",
                "Last command: make test (exit_code=2)",
                "Last error: the VM exited",
            ]
        );
    }

    #[test]
    fn list_line_has_every_field() {
        let mut info = sample_info();
        assert_eq!(
            list_line(&info),
            "[workspace] workspace_id=0123456789ab name='' state=started environment=debian:12 labels='' \
             last_activity_at=2026-01-02T03:04:06.000Z expires_at=2026-01-02T03:14:05.000Z commands=0 services=0/0"
        );
        info.name = Some("my api".into());
        info.labels.insert("team".into(), "infra".into());
        info.labels.insert("env".into(), "dev".into());
        let line = list_line(&info);
        assert!(line.contains(" name='my api' "), "{line}");
        assert!(line.contains(" labels=env=dev,team=infra "), "{line}");
    }

    #[test]
    fn create_phase_line() {
        assert_eq!(
            phase_line("boot", "0123456789ab"),
            "[workspace-create] phase=boot workspace_id=0123456789ab"
        );
    }

    #[test]
    fn create_flags_build_the_request() {
        let args = create_args(&[
            "debian:12",
            "--seed-path",
            "./repo",
            "--name",
            "api",
            "--label",
            "team=infra",
            "--label",
            "env = dev",
            "--vcpu-count",
            "2",
            "--disk-mib",
            "8192",
            "--on-failure",
            "reset",
            "--id-only",
        ])
        .unwrap();
        assert!(args.id_only && !args.json);
        let request = create_request(args).unwrap();
        assert_eq!(request.seed_path.as_deref(), Some("./repo"));
        assert_eq!(request.labels.len(), 2);
        assert_eq!(request.labels["env"], "dev");
        assert_eq!(request.vcpu_count, 2);
        assert_eq!(request.mem_mib, 1024);
        assert_eq!(request.disk_mib, 8192);
        assert_eq!(request.ttl_seconds, 600);
        assert_eq!(request.on_failure, FailurePolicy::Reset);

        let defaults = create_request(create_args(&["debian:12"]).unwrap()).unwrap();
        assert_eq!(defaults, CreateWorkspaceRequest::new("debian:12"));
    }

    #[test]
    fn transcript_secrets_build_the_request() {
        let args = create_args(&[
            "debian:12",
            "--secret",
            "API_TOKEN=expected",
            "--secret-file",
            "PIP_TOKEN=./token.txt",
        ])
        .unwrap();
        let request = create_request(args).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(request.secrets.len(), 2);
        assert_eq!(request.secrets[0].name, "API_TOKEN");
        assert_eq!(request.secrets[0].value.as_deref(), Some("expected"));
        assert_eq!(request.secrets[1].name, "PIP_TOKEN");
        assert_eq!(
            request.secrets[1].file_path.as_deref(),
            cwd.join("token.txt").to_str()
        );

        let message = |args: &[&str]| {
            create_request(create_args(args).unwrap())
                .unwrap_err()
                .0
                .message
        };
        let twice = message(&[
            "debian:12",
            "--secret",
            "A=hunter2",
            "--secret-file",
            "A=./a",
        ]);
        assert_eq!(twice, "secret A is given twice");
        for text in [
            message(&["debian:12", "--secret", "1BAD=hunter2"]),
            message(&["debian:12", "--secret", "=hunter2"]),
            message(&["debian:12", "--secret", "hunter2"]),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        let err = create_args(&["debian:12", "--secret-file", "NOPATH"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn create_refuses_bad_input() {
        let err = create_args(&["debian:12", "--json", "--id-only"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = create_args(&["debian:12", "--label", "team"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("no `=`"), "{err}");
        assert!(create_args(&["debian:12", "--on-failure", "explode"]).is_err());
        let twice = create_args(&["debian:12", "--label", "a=1", "--label", "a=2"]).unwrap();
        assert!(create_request(twice).is_err());
        let bad_key = create_args(&["debian:12", "--label", "bad key=1"]).unwrap();
        assert!(create_request(bad_key)
            .unwrap_err()
            .0
            .message
            .contains("label key"));
        let small = create_args(&["debian:12", "--mem-mib", "16"]).unwrap();
        assert!(create_request(small)
            .unwrap_err()
            .0
            .message
            .starts_with("mem_mib"));
    }

    #[test]
    fn update_flags_build_the_request() {
        let parsed = parse(&[
            "workspace",
            "update",
            "w",
            "--label",
            "team=infra",
            "--clear-label",
            "old",
            "--clear-label",
            "older",
            "--ttl-seconds",
            "3600",
        ])
        .unwrap();
        let WorkspaceCommand::Update(args) = parsed else {
            panic!("{parsed:?}");
        };
        let request = update_request(args).unwrap();
        assert_eq!(request.clear_labels, ["old", "older"]);
        assert_eq!(request.labels["team"], "infra");
        assert_eq!(request.ttl_seconds, Some(3600));
        assert!(request.name.is_none() && !request.clear_name);

        let err = parse(&["workspace", "update", "w", "--name", "a", "--clear-name"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);

        let WorkspaceCommand::Update(nothing) = parse(&["workspace", "update", "w"]).unwrap()
        else {
            panic!()
        };
        assert!(update_request(nothing)
            .unwrap_err()
            .0
            .message
            .starts_with("nothing to update"));
    }
}

//! `pyro workspace service start|list|status|logs|stop`: long-running
//! background processes in a started workspace, with readiness checks and
//! restart policies.
//!
//! `start` and `stop` print their `[workspace-service-*]` line on stderr;
//! `list` and `status` print blocks on stdout; `logs` prints a short header
//! block and then the output on stdout (with `--follow`, live until the
//! service ends or Ctrl-C).

use std::future::Future;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use pyro_sdk::api::session::{
    RestartPolicy, ServiceInfo, ServiceList, ServiceLogEvent, ServiceLogs, ServiceLogsRequest,
    ServiceStartRequest,
};
use pyro_sdk::api::StreamName;
use pyro_sdk::{Client, SdkError};

use super::{
    field, pair_map, parse_env, parse_secret_env, secret_env_map, terminated, write_raw, IdArgs,
};
use crate::commands::run::command_spec;
use crate::output::{err, out, print_json, CliError, Outcome};

/// `pyro workspace service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Start a background service and wait until it is ready.
    #[command(after_help = "Examples:
  pyro workspace service start WORKSPACE_ID web --ready-file .web-ready -- ./serve.sh
  pyro workspace service start WORKSPACE_ID web --secret-env API_TOKEN -- ./serve.sh
  pyro workspace service start WORKSPACE_ID api --ready-tcp 127.0.0.1:8080 -- ./api --port 8080
  pyro workspace service start WORKSPACE_ID app --ready-http http://127.0.0.1:3000/ -- npm start
  pyro workspace service start WORKSPACE_ID job --restart on-failure --env JOBS=4 -- ./worker.sh
  pyro workspace service start WORKSPACE_ID db --ready-command pg_isready -- ./start-db.sh

The words after `--` are joined into one shell line and run with `sh -lc` in
/workspace (or --cwd). Give at most one --ready-* check; without one the
service counts as ready once started. pyro waits (up to
--ready-timeout-seconds) for the check to pass, then prints the
[workspace-service-start] line on stderr. A service that exits before it is
ready, or is not ready in time, is `failed` and pyro exits 1.")]
    Start(StartArgs),
    /// List a workspace's services.
    #[command(after_help = "Examples:
  pyro workspace service list WORKSPACE_ID
  pyro workspace service list WORKSPACE_ID --json")]
    List(IdArgs),
    /// Show one service: state, command, readiness, restarts.
    #[command(after_help = "Example:
  pyro workspace service status WORKSPACE_ID web")]
    Status(NameArgs),
    /// Print a service's output (the last lines, everything, or live).
    #[command(after_help = "Examples:
  pyro workspace service logs WORKSPACE_ID web --tail-lines 50
  pyro workspace service logs WORKSPACE_ID web --all --stream stderr
  pyro workspace service logs WORKSPACE_ID web --follow

A Workspace/Service/State header, then the output, go to stdout; with
--stream both (the default) stdout and stderr are interleaved in the order
they were written. --follow keeps printing new output until the service
ends (its final state goes to stderr) or Ctrl-C; with --json it prints one
JSON event per line.")]
    Logs(LogsArgs),
    /// Stop a service (TERM to its process group, then KILL after a grace period).
    #[command(after_help = "Example:
  pyro workspace service stop WORKSPACE_ID web

A stopped service is not restarted by its restart policy.")]
    Stop(NameArgs),
}

impl ServiceCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Start(args) => args.json,
            Self::List(args) => args.json,
            Self::Status(args) | Self::Stop(args) => args.json,
            Self::Logs(args) => args.json,
        }
    }
}

/// `service start` arguments.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("readiness")
        .multiple(false)
        .args(["ready_file", "ready_tcp", "ready_http", "ready_command"])
))]
pub struct StartArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name (letters, digits, `.`, `_`, `-`; at most 64).
    pub name: String,
    /// Working directory (default /workspace; relative paths are under it).
    #[arg(long, value_name = "PATH")]
    pub cwd: Option<String>,
    /// Ready when this file exists (relative paths are under /workspace).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<String>,
    /// Ready when HOST:PORT accepts a TCP connection.
    #[arg(long, value_name = "HOST:PORT")]
    pub ready_tcp: Option<String>,
    /// Ready when this http:// URL answers 2xx or 3xx.
    #[arg(long, value_name = "URL")]
    pub ready_http: Option<String>,
    /// Ready when this shell command exits 0.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub ready_command: Option<String>,
    /// How long the service may take to become ready (1-3600).
    #[arg(long, default_value_t = 30)]
    pub ready_timeout_seconds: u64,
    /// How often readiness is checked (10-60000).
    #[arg(long, default_value_t = 500)]
    pub ready_interval_ms: u64,
    /// When to restart the service after its process ends.
    #[arg(long, value_enum, default_value_t = RestartArg::No)]
    pub restart: RestartArg,
    /// An environment variable for the service (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Put a workspace secret in the service's environment, as ENV_VAR (default: the secret's name; repeatable).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV_VAR]", value_parser = parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `--restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartArg {
    /// Never.
    No,
    /// When it exits with a non-zero code or a signal.
    OnFailure,
    /// Whenever it ends (also after the workspace starts again).
    Always,
}

impl From<RestartArg> for RestartPolicy {
    fn from(value: RestartArg) -> Self {
        match value {
            RestartArg::No => Self::No,
            RestartArg::OnFailure => Self::OnFailure,
            RestartArg::Always => Self::Always,
        }
    }
}

/// Arguments of service commands that take a workspace id and a name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name (see `pyro workspace service list`).
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `service logs` arguments.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The service's name.
    pub name: String,
    /// How many lines from the end (with --follow, 0 shows only new output).
    #[arg(long, default_value_t = 200, conflicts_with = "all")]
    pub tail_lines: u64,
    /// Everything kept.
    #[arg(long)]
    pub all: bool,
    /// Keep printing new output until the service ends (or Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Which output to show.
    #[arg(long, value_enum, default_value_t = StreamArg::Both)]
    pub stream: StreamArg,
    /// Print JSON (with --follow: one event per line).
    #[arg(long)]
    pub json: bool,
}

/// `--stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    /// The service's stdout.
    Stdout,
    /// The service's stderr.
    Stderr,
    /// Both, in the order they were written.
    Both,
}

impl StreamArg {
    /// Whether output of `stream` is shown.
    pub fn shows(self, stream: StreamName) -> bool {
        matches!(
            (self, stream),
            (Self::Both, _)
                | (Self::Stdout, StreamName::Stdout)
                | (Self::Stderr, StreamName::Stderr)
        )
    }

    /// The text of `logs` this choice shows.
    pub fn pick(self, logs: &ServiceLogs) -> &str {
        match self {
            Self::Stdout => &logs.stdout,
            Self::Stderr => &logs.stderr,
            Self::Both => &logs.combined,
        }
    }
}

/// The start request, checked.
pub fn start_request(args: StartArgs) -> Result<(String, ServiceStartRequest), CliError> {
    let request = ServiceStartRequest {
        name: args.name,
        command: command_spec(&args.command)?,
        cwd: args.cwd,
        ready_file: args.ready_file,
        ready_tcp: args.ready_tcp,
        ready_http: args.ready_http,
        ready_command: args.ready_command,
        ready_timeout_seconds: args.ready_timeout_seconds,
        ready_interval_ms: args.ready_interval_ms,
        restart: args.restart.into(),
        env: pair_map(args.env, "--env")?,
        secret_env: secret_env_map(args.secret_env)?,
    };
    request.validate().map_err(CliError::invalid)?;
    Ok((args.workspace_id, request))
}

/// The logs request.
pub fn logs_request(args: &LogsArgs) -> ServiceLogsRequest {
    ServiceLogsRequest {
        tail_lines: args.tail_lines,
        all: args.all,
        follow: args.follow,
    }
}

/// Runs `pyro workspace service ...`.
pub async fn service(
    command: ServiceCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        ServiceCommand::Start(args) => {
            let json = args.json;
            let (workspace_id, request) = start_request(args)?;
            // Answers once the service is ready, failed or timed out; the
            // SDK sets no timeout of its own.
            let info = connect
                .await?
                .start_service(&workspace_id, &request)
                .await?;
            if json {
                print_json(&info);
            } else {
                err(&start_line(&info));
            }
            if info.state == "failed" {
                if !json {
                    err(&format!(
                        "[error] service {} failed to start; see `pyro workspace service logs {} {}`",
                        info.service_name, info.workspace_id, info.service_name
                    ));
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        ServiceCommand::List(args) => {
            let list = connect.await?.list_services(&args.workspace_id).await?;
            if args.json {
                print_json(&list);
            } else {
                print_lines(&list_lines(&list));
            }
        }
        ServiceCommand::Status(args) => {
            let info = connect
                .await?
                .service_status(&args.workspace_id, &args.name)
                .await?;
            if args.json {
                print_json(&info);
            } else {
                print_lines(&status_lines(&info));
            }
        }
        ServiceCommand::Logs(args) => return logs(&args, connect).await,
        ServiceCommand::Stop(args) => {
            let info = connect
                .await?
                .stop_service(&args.workspace_id, &args.name)
                .await?;
            if args.json {
                print_json(&info);
            } else {
                err(&stop_line(&info));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace service logs`.
async fn logs(args: &LogsArgs, connect: impl Future<Output = Result<Client, CliError>>) -> Outcome {
    let request = logs_request(args);
    let client = connect.await?;
    if !args.follow {
        let logs = client
            .service_logs(&args.workspace_id, &args.name, &request)
            .await?;
        if args.json {
            print_json(&logs);
        } else {
            print_lines(&logs_header(&logs.service));
            write_raw(
                &mut std::io::stdout().lock(),
                terminated(args.stream.pick(&logs)).as_bytes(),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    if !args.json {
        let info = client
            .service_status(&args.workspace_id, &args.name)
            .await?;
        print_lines(&logs_header(&info));
    }
    let mut events = client
        .follow_service_logs(&args.workspace_id, &args.name, &request)
        .await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted => return Ok(ExitCode::from(130)),
        };
        let Some(event) = event else {
            return Err(SdkError::StreamEnded {
                path: events.path().to_owned(),
            }
            .into());
        };
        let event = event?;
        match &event {
            ServiceLogEvent::Output(chunk) => {
                if !args.stream.shows(chunk.stream) {
                    continue;
                }
                if args.json {
                    json_line(&event);
                } else {
                    let bytes = chunk
                        .bytes()
                        .map_err(|e| CliError::invalid(format!("bad output chunk: {e}")))?;
                    write_raw(&mut std::io::stdout().lock(), &bytes);
                }
            }
            ServiceLogEvent::Result(info) => {
                if args.json {
                    json_line(&event);
                } else {
                    err(&follow_end_line(info));
                }
                return Ok(ExitCode::SUCCESS);
            }
            ServiceLogEvent::Error(body) => return Err(CliError(body.clone())),
        }
    }
}

/// One compact JSON document (sorted keys) on a line of its own, flushed.
fn json_line<T: serde::Serialize>(value: &T) {
    let sorted = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut line = sorted.to_string();
    line.push('\n');
    write_raw(&mut std::io::stdout().lock(), line.as_bytes());
}

fn print_lines(lines: &[String]) {
    for line in lines {
        out(line);
    }
}

/// `file`, `tcp`, `http`, `command` or `none`.
fn ready_type(info: &ServiceInfo) -> &str {
    info.readiness.as_ref().map_or("none", |r| r.kind.as_str())
}

/// ` stop_reason=...` and ` exit_code=...`, for those that are set.
fn ending(info: &ServiceInfo) -> String {
    let mut text = String::new();
    if let Some(reason) = &info.stop_reason {
        text.push_str(&format!(" stop_reason={}", field(reason)));
    }
    if let Some(code) = info.exit_code {
        text.push_str(&format!(" exit_code={code}"));
    }
    text
}

/// `[workspace-service-start] workspace_id=... service=... state=... cwd=... ready_type=... execution_mode=...`
/// (and ` stop_reason=... exit_code=...` when it did not start).
pub fn start_line(info: &ServiceInfo) -> String {
    format!(
        "[workspace-service-start] workspace_id={} service={} state={} cwd={} ready_type={} execution_mode={}{}",
        info.workspace_id,
        info.service_name,
        info.state,
        field(&info.cwd),
        ready_type(info),
        info.execution_mode,
        ending(info),
    )
}

/// `[workspace-service-stop] workspace_id=... service=... state=... execution_mode=...`.
pub fn stop_line(info: &ServiceInfo) -> String {
    format!(
        "[workspace-service-stop] workspace_id={} service={} state={} execution_mode={}",
        info.workspace_id, info.service_name, info.state, info.execution_mode,
    )
}

/// The last line of `logs --follow`: the service's final state.
pub fn follow_end_line(info: &ServiceInfo) -> String {
    format!(
        "[workspace-service-logs] workspace_id={} service={} state={} execution_mode={}{}",
        info.workspace_id,
        info.service_name,
        info.state,
        info.execution_mode,
        ending(info),
    )
}

/// `Workspace: ID`, `Services: N total, R running`, then
/// `- NAME [state] cwd=... readiness=...` per service.
pub fn list_lines(list: &ServiceList) -> Vec<String> {
    let mut lines = vec![
        format!("Workspace: {}", list.workspace_id),
        format!(
            "Services: {} total, {} running",
            list.count, list.running_count
        ),
    ];
    for info in &list.services {
        let mut line = format!(
            "- {} [{}] cwd={} readiness={}",
            info.service_name,
            info.state,
            field(&info.cwd),
            ready_type(info)
        );
        if info.restart_count > 0 {
            line.push_str(&format!(" restarts={}", info.restart_count));
        }
        line.push_str(&ending(info));
        lines.push(line);
    }
    lines
}

/// The `service status` block.
pub fn status_lines(info: &ServiceInfo) -> Vec<String> {
    let readiness = match &info.readiness {
        Some(r) => format!("{} {}", r.kind, r.target),
        None => "none".to_owned(),
    };
    let mut lines = vec![
        format!("Workspace: {}", info.workspace_id),
        format!("Service: {}", info.service_name),
        format!("State: {}", info.state),
        format!("Command: {}", info.command),
        format!("Cwd: {}", info.cwd),
        format!("Readiness: {readiness}"),
        format!("Execution mode: {}", info.execution_mode),
        format!("Restart: {}", info.restart.as_str()),
        format!("Restarts: {}", info.restart_count),
    ];
    if let Some(reason) = &info.stop_reason {
        lines.push(format!("Stop reason: {reason}"));
    }
    if let Some(code) = info.exit_code {
        lines.push(format!("Exit code: {code}"));
    }
    lines
}

/// The `service logs` header: `Workspace:`, `Service:`, `State:`.
pub fn logs_header(info: &ServiceInfo) -> [String; 3] {
    [
        format!("Workspace: {}", info.workspace_id),
        format!("Service: {}", info.service_name),
        format!("State: {}", info.state),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;
    use pyro_sdk::api::session::ReadinessInfo;
    use pyro_sdk::api::CommandSpec;

    fn service_command(args: &[&str]) -> Result<ServiceCommand, clap::Error> {
        let mut words = vec!["workspace", "service"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::Service { command } => Ok(command),
            other => panic!("{other:?}"),
        }
    }

    fn start_args(args: &[&str]) -> Result<StartArgs, clap::Error> {
        let mut words = vec!["start"];
        words.extend_from_slice(args);
        match service_command(&words)? {
            ServiceCommand::Start(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    /// `web` as the transcript shows it.
    fn web() -> ServiceInfo {
        ServiceInfo {
            workspace_id: "0123456789ab".into(),
            service_name: "web".into(),
            state: "running".into(),
            command: "sh -lc 'touch .web-ready && while true; do sleep 60; done'".into(),
            cwd: "/workspace".into(),
            readiness: Some(ReadinessInfo {
                kind: "file".into(),
                target: "/workspace/.web-ready".into(),
            }),
            restart: RestartPolicy::No,
            restart_count: 0,
            started_at: Some("2026-01-02T03:04:05.000Z".into()),
            ready_at: Some("2026-01-02T03:04:06.000Z".into()),
            ended_at: None,
            exit_code: None,
            pid: Some(42),
            stop_reason: None,
            execution_mode: "guest_vsock".into(),
        }
    }

    fn worker() -> ServiceInfo {
        ServiceInfo {
            service_name: "worker".into(),
            command: "sh -lc 'touch .worker-ready && while true; do sleep 60; done'".into(),
            readiness: Some(ReadinessInfo {
                kind: "file".into(),
                target: "/workspace/.worker-ready".into(),
            }),
            ..web()
        }
    }

    #[test]
    fn start_and_stop_lines_match_the_transcript() {
        assert_eq!(
            start_line(&web()),
            "[workspace-service-start] workspace_id=0123456789ab service=web state=running cwd=/workspace ready_type=file execution_mode=guest_vsock"
        );
        assert_eq!(
            start_line(&worker()),
            "[workspace-service-start] workspace_id=0123456789ab service=worker state=running cwd=/workspace ready_type=file execution_mode=guest_vsock"
        );
        let stopped = |info: ServiceInfo| ServiceInfo {
            state: "stopped".into(),
            stop_reason: Some("sigterm".into()),
            ..info
        };
        assert_eq!(
            stop_line(&stopped(web())),
            "[workspace-service-stop] workspace_id=0123456789ab service=web state=stopped execution_mode=guest_vsock"
        );
        assert_eq!(
            stop_line(&stopped(worker())),
            "[workspace-service-stop] workspace_id=0123456789ab service=worker state=stopped execution_mode=guest_vsock"
        );
    }

    #[test]
    fn a_failed_start_says_why() {
        let failed = ServiceInfo {
            state: "failed".into(),
            stop_reason: Some("process_exited_before_ready".into()),
            exit_code: Some(3),
            readiness: None,
            ..web()
        };
        assert_eq!(
            start_line(&failed),
            "[workspace-service-start] workspace_id=0123456789ab service=web state=failed cwd=/workspace ready_type=none execution_mode=guest_vsock stop_reason=process_exited_before_ready exit_code=3"
        );
        assert_eq!(
            follow_end_line(&failed),
            "[workspace-service-logs] workspace_id=0123456789ab service=web state=failed execution_mode=guest_vsock stop_reason=process_exited_before_ready exit_code=3"
        );
    }

    #[test]
    fn list_block_matches_the_transcript() {
        let list = ServiceList {
            workspace_id: "0123456789ab".into(),
            count: 2,
            running_count: 2,
            services: vec![web(), worker()],
        };
        assert_eq!(
            list_lines(&list),
            [
                "Workspace: 0123456789ab",
                "Services: 2 total, 2 running",
                "- web [running] cwd=/workspace readiness=file",
                "- worker [running] cwd=/workspace readiness=file",
            ]
        );
        let exited = ServiceInfo {
            state: "exited".into(),
            exit_code: Some(0),
            restart_count: 2,
            readiness: None,
            ..worker()
        };
        let list = ServiceList {
            workspace_id: "0123456789ab".into(),
            count: 1,
            running_count: 0,
            services: vec![exited],
        };
        assert_eq!(
            list_lines(&list)[1..],
            [
                "Services: 1 total, 0 running",
                "- worker [exited] cwd=/workspace readiness=none restarts=2 exit_code=0",
            ]
        );
    }

    #[test]
    fn status_block_matches_the_transcript() {
        assert_eq!(
            status_lines(&web()),
            [
                "Workspace: 0123456789ab",
                "Service: web",
                "State: running",
                "Command: sh -lc 'touch .web-ready && while true; do sleep 60; done'",
                "Cwd: /workspace",
                "Readiness: file /workspace/.web-ready",
                "Execution mode: guest_vsock",
                "Restart: no",
                "Restarts: 0",
            ]
        );
        let failed = ServiceInfo {
            state: "failed".into(),
            readiness: Some(ReadinessInfo {
                kind: "tcp".into(),
                target: "127.0.0.1:8080".into(),
            }),
            restart: RestartPolicy::OnFailure,
            restart_count: 3,
            stop_reason: Some("readiness_timeout".into()),
            exit_code: Some(137),
            ..web()
        };
        assert_eq!(
            status_lines(&failed)[5..],
            [
                "Readiness: tcp 127.0.0.1:8080",
                "Execution mode: guest_vsock",
                "Restart: on-failure",
                "Restarts: 3",
                "Stop reason: readiness_timeout",
                "Exit code: 137",
            ]
        );
    }

    #[test]
    fn logs_header_matches_the_transcript() {
        assert_eq!(
            logs_header(&web()),
            ["Workspace: 0123456789ab", "Service: web", "State: running"]
        );
    }

    #[test]
    fn the_stream_choice_picks_the_output() {
        let logs = ServiceLogs {
            service: web(),
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            combined: "out\nerr\n".into(),
            tail_lines: Some(200),
            truncated: false,
        };
        assert_eq!(StreamArg::Both.pick(&logs), "out\nerr\n");
        assert_eq!(StreamArg::Stdout.pick(&logs), "out\n");
        assert_eq!(StreamArg::Stderr.pick(&logs), "err\n");
        assert!(StreamArg::Both.shows(StreamName::Stderr));
        assert!(StreamArg::Stdout.shows(StreamName::Stdout));
        assert!(!StreamArg::Stdout.shows(StreamName::Stderr));
        assert!(!StreamArg::Stderr.shows(StreamName::Stdout));
    }

    #[test]
    fn transcript_start_builds_the_request() {
        let args = start_args(&[
            "0123456789ab",
            "web",
            "--secret-env",
            "API_TOKEN",
            "--ready-file",
            ".web-ready",
            "--",
            "sh",
            "-lc",
            "touch .web-ready && while true; do sleep 60; done",
        ])
        .unwrap();
        let (id, request) = start_request(args).unwrap();
        assert_eq!(id, "0123456789ab");
        let mut expected = ServiceStartRequest::new(
            "web",
            CommandSpec::Shell("sh -lc 'touch .web-ready && while true; do sleep 60; done'".into()),
        );
        expected.ready_file = Some(".web-ready".into());
        expected
            .secret_env
            .insert("API_TOKEN".into(), "API_TOKEN".into());
        assert_eq!(request, expected);
    }

    #[test]
    fn every_start_flag_reaches_the_request() {
        let args = start_args(&[
            "w",
            "api",
            "--cwd",
            "srv",
            "--ready-http",
            "http://127.0.0.1:8080/health",
            "--ready-timeout-seconds",
            "120",
            "--ready-interval-ms",
            "250",
            "--restart",
            "on-failure",
            "--env",
            "PORT=8080",
            "--env",
            "OPTS=a=b c",
            "--secret-env",
            "API_TOKEN=TOKEN",
            "--json",
            "--",
            "python3",
            "-m",
            "http.server",
            "8080",
        ])
        .unwrap();
        assert!(args.json);
        let (_, request) = start_request(args).unwrap();
        assert_eq!(request.cwd.as_deref(), Some("srv"));
        assert_eq!(
            request.readiness(),
            Some(("http", "http://127.0.0.1:8080/health"))
        );
        assert_eq!(request.ready_timeout_seconds, 120);
        assert_eq!(request.ready_interval_ms, 250);
        assert_eq!(request.restart, RestartPolicy::OnFailure);
        assert_eq!(request.env["OPTS"], "a=b c");
        assert_eq!(request.secret_env["API_TOKEN"], "TOKEN");
        assert_eq!(
            request.command,
            CommandSpec::Shell("python3 -m http.server 8080".into())
        );
        for (flag, kind) in [
            ("--ready-file", "file"),
            ("--ready-tcp", "tcp"),
            ("--ready-command", "command"),
        ] {
            let target = if kind == "tcp" { "127.0.0.1:80" } else { "x" };
            let args = start_args(&["w", "s", flag, target, "--", "true"]).unwrap();
            assert_eq!(
                start_request(args).unwrap().1.readiness(),
                Some((kind, target))
            );
        }
        let restart = start_args(&["w", "s", "--restart", "always", "--", "true"]).unwrap();
        assert_eq!(
            start_request(restart).unwrap().1.restart,
            RestartPolicy::Always
        );
    }

    #[test]
    fn one_readiness_check_at_most() {
        let flags = [
            ("--ready-file", ".ready"),
            ("--ready-tcp", "127.0.0.1:80"),
            ("--ready-http", "http://x/"),
            ("--ready-command", "true"),
        ];
        for (i, (a, va)) in flags.iter().enumerate() {
            for (b, vb) in &flags[i + 1..] {
                let err = start_args(&["w", "s", a, va, b, vb, "--", "true"]).unwrap_err();
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ArgumentConflict,
                    "{a} {b}"
                );
            }
        }
        let err = start_args(&[
            "w",
            "s",
            "--ready-file",
            "a",
            "--ready-file",
            "b",
            "--",
            "true",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn start_refuses_bad_input() {
        let err = start_args(&["w", "s"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err = start_args(&["w", "s", "sleep", "60"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let err = start_args(&["w", "s", "--restart", "sometimes", "--", "true"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        let err = start_args(&["w", "s", "--secret-env", "=X", "--", "true"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let message = |args: &[&str]| {
            start_request(start_args(args).unwrap())
                .unwrap_err()
                .0
                .message
        };
        assert!(message(&["w", "bad name", "--", "true"]).contains("service name"));
        assert!(message(&["w", "s", "--ready-tcp", "nope", "--", "true"]).contains("HOST:PORT"));
        assert!(message(&["w", "s", "--ready-http", "ftp://x", "--", "true"]).contains("http://"));
        assert!(
            message(&["w", "s", "--ready-timeout-seconds", "0", "--", "true"])
                .starts_with("ready_timeout_seconds")
        );
        assert_eq!(
            message(&["w", "s", "--env", "A=1", "--env", "A=2", "--", "true"]),
            "--env A is given twice"
        );
        assert_eq!(
            message(&[
                "w",
                "s",
                "--secret-env",
                "A",
                "--secret-env",
                "A=B",
                "--",
                "true"
            ]),
            "--secret-env A is given twice"
        );
        assert!(message(&["w", "s", "--", ""]).contains("after `--`"));
    }

    #[test]
    fn logs_flags() {
        let ServiceCommand::Logs(args) =
            service_command(&["logs", "w", "web", "--tail-lines", "50"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            logs_request(&args),
            ServiceLogsRequest {
                tail_lines: 50,
                all: false,
                follow: false
            }
        );
        assert_eq!(args.stream, StreamArg::Both);
        let ServiceCommand::Logs(args) = service_command(&[
            "logs", "w", "web", "--all", "--follow", "--stream", "stderr",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            logs_request(&args),
            ServiceLogsRequest {
                tail_lines: 200,
                all: true,
                follow: true
            }
        );
        assert_eq!(args.stream, StreamArg::Stderr);
        let err = service_command(&["logs", "w", "web", "--all", "--tail-lines", "5"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = service_command(&["logs", "w", "web", "--stream", "stdin"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn json_is_seen_on_every_service_command() {
        for args in [
            &["start", "w", "s", "--json", "--", "true"][..],
            &["list", "w", "--json"],
            &["status", "w", "s", "--json"],
            &["logs", "w", "s", "--json"],
            &["stop", "w", "s", "--json"],
        ] {
            assert!(service_command(args).unwrap().json(), "{args:?}");
        }
        assert!(!service_command(&["status", "w", "s"]).unwrap().json());
    }
}

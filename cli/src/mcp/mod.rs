//! `pyro mcp serve`: the pyro MCP server, for agents.
//!
//! Built on rmcp (the official Rust MCP SDK): tools are `#[tool]` methods of
//! [`server::PyroMcp`] grouped by `#[tool_router]`, their input schemas
//! derived from the argument types with schemars; results are the SDK's JSON
//! types as structured content plus the same JSON as text. A client written
//! for the reference server (same tool names, arguments and defaults) works
//! unchanged.
//!
//! # Layout
//!
//! - `server`: the server object, its lazily connected supervisor client,
//!   and the `ServerHandler` (argument errors become tool errors).
//! - `profiles`: `vm-run`, `workspace-core` (default), `workspace-full`.
//! - `tools/`: the tools, one module per area.
//! - `paths`: host path confinement (`--allow-path`).
//! - `progress`: progress notifications, cancellation, heartbeats.
//! - `render`, `errors`: results and tool errors.
//! - `http`: the streamable HTTP transport (stdio is rmcp's).
//! - `tests` (tests only): the tools driven by an MCP client against a
//!   scripted fake supervisor.
//!
//! # Mapping onto pyro's API
//!
//! - `vm_run` is a one-shot run. The other `vm_*` tools work on workspaces
//!   labelled `pyro.kind=vm`: `vm_create` creates and starts one, `vm_exec`
//!   runs one command and deletes it (as the reference does),
//!   `vm_network_info` reports networking off, `vm_reap_expired` deletes
//!   the expired ones now. `workspace_list` leaves them out.
//! - Guests have no network in this version: `network: true` and a
//!   `network_policy` other than `off` are refused with a clear error;
//!   `allow_host_compat` is accepted and ignored (nothing runs on the host).
//! - Commands are strings run with `/bin/sh -lc`, as in the reference.
//!   `workspace_exec` also takes `cwd` and `env`; `workspace_create` takes
//!   `disk_mib` and `on_failure`; `workspace_update` takes `ttl_seconds`;
//!   `workspace_diff` takes `against`. Command output in results is kept up
//!   to 1 MiB per stream (`output_truncated` says when more was produced).
//! - Where the reference's result nests or names things differently, its
//!   keys are added beside the SDK's (`workspace_sync`, `snapshot`,
//!   `execution_mode`, `size_bytes`, `result` of `vm_list_environments`,
//!   the shell's fields on `shell_read`, the service's on `service_logs`,
//!   `input_length`, `signal`, `closed`); `workspace_reset` answers with the
//!   workspace fields at the top level plus `workspace_reset`, as the
//!   reference does.
//! - Shells, services and secrets are `workspace-full` tools and arguments
//!   (`workspace_create.secrets`, `secret_env` of `workspace_exec`,
//!   `shell_open` and `service_start`), as in the reference; ours add
//!   `shell_resize` and `shell_list`. `service_start` refuses more than one
//!   `ready_*` check (the reference silently picked one) and a non-empty
//!   `published_ports` (no network).
//!
//! # Concurrency, progress and cancellation
//!
//! Every call runs in its own task and holds no lock, so a long
//! `workspace_exec` never stalls a concurrent `workspace_file_read`. With a
//! progress token in the request's `_meta`, long calls send
//! `notifications/progress`; on `notifications/cancelled` (over HTTP, also
//! when the client drops the request) the call is abandoned and its
//! supervisor connection closed:
//!
//! | tool | progress | cancellation |
//! |---|---|---|
//! | `vm_run` | run phases, install steps, output chunk counts | the supervisor kills the command and deletes the VM |
//! | `workspace_exec` | start, output chunk counts, exit | the guest kills the command's process group (history: exit 130) |
//! | `vm_exec` | as `workspace_exec` | as `workspace_exec`, then the VM is deleted |
//! | `workspace_create`, `vm_create` | create phases, install steps | the create finishes in the supervisor, then the workspace is deleted |
//! | `workspace_sync_push`, `workspace_reset`, `workspace_start`, `workspace_stop`, `vm_start`, `vm_stop`, `service_start` | heartbeat every 5 s | stops waiting; the operation completes in the supervisor |
//! | `shell_read` with `wait_for_idle_ms` | none (at most 10 s) | stops waiting |
//! | every other tool | none (they are short) | stops waiting |
//!
//! The supervisor notices an abandoned exec or run when it next forwards
//! output, so a command that prints nothing runs until it prints, ends or
//! times out.
//!
//! # Safety
//!
//! Host paths (`seed_path`, `source_path`, `output_path`, a secret's
//! `file_path`) must resolve inside `--allow-path` roots (default: the
//! current directory); see `paths`. Arguments are never logged. Secret values never appear in
//! results or errors: the supervisor redacts what it returns, and argument
//! errors drop the offending value.

mod errors;
mod http;
mod paths;
mod profiles;
mod progress;
mod render;
mod server;
#[cfg(test)]
mod tests;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::output::{self, CliError, Outcome};
use paths::AllowedRoots;
use profiles::Profile;
use server::PyroMcp;

/// The `pyro mcp --help` epilogue.
pub const EXAMPLES: &str = "Examples:
  pyro mcp serve                                   stdio, workspace-core profile
  pyro mcp serve --profile workspace-full --allow-path ~/src/project
  PYRO_MCP_TOKEN=s3cret pyro mcp serve --http 127.0.0.1:8765

Client configuration (stdio):
  {\"mcpServers\": {\"pyro\": {\"command\": \"pyro\", \"args\": [\"mcp\", \"serve\"]}}}";

const SERVE_HELP: &str = "Serve pyro's tools to MCP clients (agents), over stdio by default or \
streamable HTTP with --http.

Profiles: vm-run (vm_run only), workspace-core (the default: vm_run and 15 workspace tools), \
workspace-full (every tool, 45: VMs, disks, snapshots, shells, services, secrets). Host paths in tool arguments (seed_path, source_path, \
output_path) must be inside an --allow-path directory (default: the current directory).";

const SERVE_EXAMPLES: &str = "Examples:
  pyro mcp serve
  pyro mcp serve --profile workspace-full --allow-path ./repo --allow-path /tmp/exports
  pyro mcp serve --http 127.0.0.1:8765 --bearer-token s3cret
  PYRO_MCP_TOKEN=s3cret pyro mcp serve --http 0.0.0.0:8765 --allow-non-loopback

Over HTTP the endpoint is http://ADDR:PORT/mcp; a startup line on stderr gives the URL
(use port 0 to pick a free port).";

/// `pyro mcp` subcommands.
#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Serve pyro's tools over MCP (stdio by default).
    #[command(long_about = SERVE_HELP, after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

/// `pyro mcp serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which tools to offer: vm-run, workspace-core (default) or workspace-full.
    #[arg(long, value_enum, default_value = "workspace-core")]
    pub profile: Profile,
    /// Serve streamable HTTP on this address (loopback only unless --allow-non-loopback) instead of stdio.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// Allow --http on a non-loopback address (requires a bearer token).
    #[arg(long, requires = "http")]
    pub allow_non_loopback: bool,
    /// Require `Authorization: Bearer TOKEN` on HTTP requests (prefer PYRO_MCP_TOKEN: a token on the command line is visible to other local users).
    #[arg(
        long,
        env = "PYRO_MCP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub bearer_token: Option<String>,
    /// A host directory tool arguments may read from or write to (repeatable; default: the current directory).
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_paths: Vec<PathBuf>,
}

/// Runs `pyro mcp ...`.
pub async fn run(command: McpCommand) -> Outcome {
    match command {
        McpCommand::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> Outcome {
    let cwd = std::env::current_dir()
        .map_err(|err| CliError::invalid(format!("cannot read the current directory: {err}")))?;
    let roots = AllowedRoots::new(&args.allow_paths, &cwd).map_err(CliError::invalid)?;
    let token = args.bearer_token.filter(|t| !t.is_empty());
    let server = PyroMcp::new(args.profile, roots);
    let tools = server.profile().tools().len();
    let roots = server.roots().describe();
    let profile = server.profile().as_str();
    match args.http {
        None => {
            output::err(&format!(
                "[mcp] transport=stdio profile={profile} tools={tools} allowed_roots={roots}"
            ));
            serve_stdio(server).await
        }
        Some(addr) => {
            http::check_listen(addr, args.allow_non_loopback, token.as_deref())
                .map_err(CliError::invalid)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|err| CliError::invalid(format!("cannot listen on {addr}: {err}")))?;
            let bound = listener
                .local_addr()
                .map_err(|err| CliError::invalid(format!("cannot listen on {addr}: {err}")))?;
            let auth = if token.is_some() { "bearer" } else { "none" };
            output::err(&format!(
                "[mcp] transport=http url=http://{bound}{} profile={profile} tools={tools} auth={auth} allowed_roots={roots}",
                http::ENDPOINT
            ));
            http::serve(listener, server, token, !addr.ip().is_loopback())
                .await
                .map_err(|err| CliError::invalid(format!("the HTTP server failed: {err}")))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve_stdio(server: PyroMcp) -> Outcome {
    use rmcp::ServiceExt;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|err| CliError::invalid(format!("the MCP session did not start: {err}")))?;
    running
        .waiting()
        .await
        .map_err(|err| CliError::invalid(format!("the MCP session failed: {err}")))?;
    Ok(ExitCode::SUCCESS)
}

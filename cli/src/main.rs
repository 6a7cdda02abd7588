//! `pyro`: run commands in disposable Linux microVMs, and keep persistent
//! workspaces, from the command line.
//!
//! Every command is a client of the pyro supervisor (started on first use)
//! through the pyro SDK.
//!
//! # Layout
//!
//! - `commands/`: one module per command group.
//! - `mcp/`: `pyro mcp serve`, the MCP server.
//! - `output`: human and JSON output, errors and exit codes.

mod commands;
mod mcp;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pyro_sdk::{Client, ConnectOptions};

use commands::env::EnvCommand;
use commands::run::RunArgs;
use commands::supervisor::SupervisorCommand;
use commands::workspace::WorkspaceCommand;
use mcp::McpCommand;
use output::{CliError, Outcome};

const ABOUT: &str = "Run commands in disposable Linux microVMs, and keep persistent workspaces.";

const EXAMPLES: &str = "Examples:
  pyro doctor                          check that this host can run guests
  pyro env list                        the environments and what is installed
  pyro run debian:12 -- git --version  one command in a fresh VM
  pyro demo                            the same, printed as JSON
  pyro mcp serve                       serve the tools to an agent over MCP (stdio)

State lives in PYRO_HOME (default ~/.local/share/pyro), environments in
PYRO_CACHE_DIR (default ~/.cache/pyro), sockets in PYRO_RUNTIME_DIR.";

#[derive(Debug, Parser)]
#[command(name = "pyro", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that this host can run pyro guests, and say how to fix it if not.
    #[command(after_help = "Example:\n  pyro doctor --json")]
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage environments (guest images).
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Run one command in a fresh VM, deleted afterwards.
    Run(RunArgs),
    /// Run `git --version` in a debian:12 VM and print the result as JSON.
    #[command(after_help = "Example:\n  pyro demo")]
    Demo,
    /// Control the supervisor daemon.
    Supervisor {
        #[command(subcommand)]
        command: SupervisorCommand,
    },
    /// Persistent workspaces: create, exec, sync, diff, snapshot, reset, export, ...
    #[command(after_help = commands::workspace::EXAMPLES)]
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Serve pyro to agents over the Model Context Protocol.
    #[command(after_help = mcp::EXAMPLES)]
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
}

impl Command {
    fn json(&self) -> bool {
        match self {
            Self::Doctor { json } => *json,
            Self::Env { command } => command.json(),
            Self::Run(args) => args.json,
            Self::Demo => true,
            Self::Supervisor { command } => matches!(
                command,
                SupervisorCommand::Status { json: true } | SupervisorCommand::Stop { json: true }
            ),
            Self::Workspace { command } => command.json(),
            Self::Mcp { .. } => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.command.json();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            CliError::invalid(format!("cannot start the async runtime: {err}")).print(json);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            err.print(json);
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Doctor { json } => commands::doctor::run(json).await,
        Command::Supervisor { command } => commands::supervisor::run(command).await,
        Command::Env { command } => commands::env::run(&connect().await?, command).await,
        Command::Run(args) => commands::run::run(&connect().await?, args).await,
        Command::Demo => commands::run::demo(&connect().await?).await,
        Command::Workspace { command } => commands::workspace::run(command, connect()).await,
        Command::Mcp { command } => mcp::run(command).await,
    }
}

async fn connect() -> Result<Client, CliError> {
    Ok(Client::connect(ConnectOptions::from_env()?).await?)
}

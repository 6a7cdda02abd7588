//! The pyro SDK: the API types and an async client for the pyro supervisor.
//!
//! The supervisor is the daemon that owns every pyro VM. This crate holds the
//! wire contract ([`api`]) and a [`Client`] that reaches the supervisor over
//! its Unix socket, starting it when it is not running, exactly as the `pyro`
//! CLI does (the CLI is built on this crate).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pyro_sdk::SdkError> {
//! use pyro_sdk::api::{CommandSpec, RunRequest};
//! let client = pyro_sdk::Client::connect(pyro_sdk::ConnectOptions::from_env()?).await?;
//! let output = client
//!     .run_collect(&RunRequest::new("debian:12", CommandSpec::Argv(vec!["git".into(), "--version".into()])))
//!     .await?;
//! assert_eq!(output.summary.exit_code, 0);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`api`]: request, response and event types (the wire contract).
//! - [`Client`]: the client, in `client/` (transport and supervisor start).
//! - [`PyroPaths`]: where state lives; [`SupervisorPidFile`]: which
//!   supervisor holds it.
//! - [`SdkError`]: errors with stable codes.

pub mod api;
mod client;
mod error;
mod paths;
mod pidfile;

pub use client::{Client, ConnectOptions, EventStream, ExecOutput, RunOutput, Stopped};
pub use error::SdkError;
pub use paths::{PathsError, PyroPaths};
pub use pidfile::{SupervisorPhase, SupervisorPidFile};

/// This build's version; client and supervisor must match.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

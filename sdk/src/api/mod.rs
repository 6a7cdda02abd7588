//! The wire contract between clients (CLI, SDK users, MCP) and the supervisor.
//!
//! Every request and response body of the supervisor's HTTP API is one of
//! these types, serialized as JSON. Streaming endpoints answer with
//! newline-delimited JSON: one event per line, the last one a `result` or an
//! `error`. Request bodies reject unknown fields, so a typo is an error
//! rather than a silently ignored option.
//!
//! # Endpoints (all under `/v1`)
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /health` | | [`Health`] |
//! | `GET /doctor` | | [`DoctorReport`] |
//! | `GET /environments` | | [`EnvironmentList`] |
//! | `GET /environments/{name}` | | [`EnvironmentInfo`] |
//! | `POST /environments/pull` | [`EnvironmentRef`] | stream of [`PullEvent`] |
//! | `POST /environments/prune` | | [`PruneResult`] |
//! | `POST /run` | [`RunRequest`] | stream of [`RunEvent`] |
//! | `POST /shutdown` | | `{}` |
//!
//! Workspace endpoints are listed in [`workspace`].

mod command;
mod environment;
mod error;
mod run;
pub mod session;
mod system;
pub mod workspace;

pub use command::{limits, CommandSpec};
pub use environment::{
    EnvironmentInfo, EnvironmentList, EnvironmentRef, PruneResult, PullEvent, PullProgress,
};
pub use error::{ErrorBody, ErrorCode};
pub use run::{
    Cleanup, OutputChunk, PhaseChange, RunEvent, RunPhase, RunRequest, RunSummary, StreamName,
};
pub use system::{
    BackendChoice, Capabilities, DoctorIssue, DoctorReport, Health, KvmStatus, Networking,
    ToolStatus,
};

/// The API version prefix.
pub const API_PREFIX: &str = "/v1";

/// The `execution_mode` of everything pyro runs: always a real guest.
pub const EXECUTION_MODE: &str = "guest_vsock";

//! One-shot runs: create a VM, run one command, delete the VM.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::command::limits;
use super::{CommandSpec, ErrorBody, PullProgress};

/// `POST /v1/run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Catalog name of the environment.
    pub environment: String,
    /// What to run.
    pub command: CommandSpec,
    /// vCPUs (1-8).
    #[serde(default = "default_vcpu")]
    pub vcpu_count: u8,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "default_mem")]
    pub mem_mib: u32,
    /// Command timeout in seconds; on expiry the exit code is 124.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Upper bound on the VM's life, whatever happens to the caller.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
}

fn default_vcpu() -> u8 {
    limits::DEFAULT_VCPU
}
fn default_mem() -> u32 {
    limits::DEFAULT_MEM_MIB
}
fn default_timeout() -> u64 {
    limits::DEFAULT_TIMEOUT_SECONDS
}
fn default_ttl() -> u64 {
    limits::DEFAULT_TTL_SECONDS
}

impl RunRequest {
    /// A request with every default.
    ///
    /// ```
    /// use pyro_sdk::api::{limits, CommandSpec, RunRequest};
    /// let request = RunRequest::new("debian:12", CommandSpec::Shell("uname -a".into()));
    /// assert_eq!(request.timeout_seconds, limits::DEFAULT_TIMEOUT_SECONDS);
    /// assert_eq!(request.vcpu_count, limits::DEFAULT_VCPU);
    /// ```
    pub fn new(environment: impl Into<String>, command: CommandSpec) -> Self {
        Self {
            environment: environment.into(),
            command,
            vcpu_count: default_vcpu(),
            mem_mib: default_mem(),
            timeout_seconds: default_timeout(),
            ttl_seconds: default_ttl(),
        }
    }

    /// Checks every field; the message names the bad one.
    ///
    /// ```
    /// use pyro_sdk::api::{CommandSpec, RunRequest};
    /// let mut request = RunRequest::new("debian:12", CommandSpec::Shell("true".into()));
    /// assert!(request.validate().is_ok());
    /// request.mem_mib = 64;
    /// assert!(request.validate().unwrap_err().starts_with("mem_mib"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if self.environment.trim().is_empty() {
            return Err("environment must not be empty".to_owned());
        }
        self.command.validate()?;
        limits::check("vcpu_count", self.vcpu_count, &limits::VCPU)?;
        limits::check("mem_mib", self.mem_mib, &limits::MEM_MIB)?;
        limits::check(
            "timeout_seconds",
            self.timeout_seconds,
            &limits::TIMEOUT_SECONDS,
        )?;
        limits::check("ttl_seconds", self.ttl_seconds, &limits::TTL_SECONDS)
    }
}

/// The phases a run announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// Resolving (and if needed installing) the environment, creating the VM.
    Create,
    /// Booting the VM.
    Start,
    /// Running the command.
    Execute,
}

impl RunPhase {
    /// The lowercase name.
    ///
    /// ```
    /// assert_eq!(pyro_sdk::api::RunPhase::Execute.as_str(), "execute");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Execute => "execute",
        }
    }
}

/// Which stream output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of command output, base64-encoded (output need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Where it came from.
    pub stream: StreamName,
    /// The bytes, in standard base64.
    pub data_base64: String,
}

impl OutputChunk {
    /// Wraps raw bytes.
    ///
    /// ```
    /// use pyro_sdk::api::{OutputChunk, StreamName};
    /// let chunk = OutputChunk::new(StreamName::Stdout, b"hi\n");
    /// assert_eq!(chunk.data_base64, "aGkK");
    /// ```
    pub fn new(stream: StreamName, data: &[u8]) -> Self {
        Self {
            stream,
            data_base64: base64::engine::general_purpose::STANDARD.encode(data),
        }
    }

    /// The raw bytes.
    ///
    /// ```
    /// use pyro_sdk::api::{OutputChunk, StreamName};
    /// let chunk = OutputChunk::new(StreamName::Stderr, &[0xff, b'x']);
    /// assert_eq!(chunk.bytes()?, [0xff, b'x']);
    /// let bad = OutputChunk { stream: StreamName::Stdout, data_base64: "not base64!".into() };
    /// assert!(bad.bytes().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.data_base64)
    }
}

/// A phase change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseChange {
    /// The new phase.
    pub phase: RunPhase,
    /// The environment.
    pub environment: String,
    /// The VM, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
}

/// What happened to the VM after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// The VM.
    pub vm_id: String,
    /// Whether it is gone.
    pub deleted: bool,
    /// Why it was deleted: `post_exec_cleanup` or `run_vm_error_cleanup`.
    pub reason: String,
}

/// The summary of a finished run (output came before, as chunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The VM that ran it.
    pub vm_id: String,
    /// The environment.
    pub environment: String,
    /// The environment's version.
    pub environment_version: String,
    /// The command, as one line.
    pub command: String,
    /// The command's exit code (124 on timeout).
    pub exit_code: i32,
    /// How long the command ran, in milliseconds.
    pub duration_ms: u64,
    /// Whether the timeout killed it.
    pub timed_out: bool,
    /// Always `guest_vsock`: the command ran in a real guest.
    pub execution_mode: String,
    /// Milliseconds from VM creation to the guest agent being ready.
    pub boot_ms: u64,
    /// The VM's fate.
    pub cleanup: Cleanup,
}

/// One line of the `run` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A phase began.
    Phase(PhaseChange),
    /// Environment install progress (first use of an environment).
    Pull(PullProgress),
    /// Command output, as it arrives.
    Output(OutputChunk),
    /// The run finished; the last line.
    Result(RunSummary),
    /// The run failed; the last line. The VM has been deleted.
    Error(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_unknown_fields_are_refused() {
        let req: RunRequest = serde_json::from_value(serde_json::json!({
            "environment": "debian:12",
            "command": {"argv": ["git", "--version"]}
        }))
        .unwrap();
        assert_eq!(
            req,
            RunRequest::new(
                "debian:12",
                CommandSpec::Argv(vec!["git".into(), "--version".into()])
            )
        );
        assert!(req.validate().is_ok());
        let bad = serde_json::from_value::<RunRequest>(serde_json::json!({
            "environment": "debian:12",
            "command": {"shell": "true"},
            "vcpus": 2
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut req = RunRequest::new("debian:12", CommandSpec::Shell("true".into()));
        req.mem_mib = 64;
        assert!(req.validate().unwrap_err().starts_with("mem_mib"));
        req.mem_mib = 1024;
        req.timeout_seconds = 0;
        assert!(req.validate().unwrap_err().starts_with("timeout_seconds"));
    }

    #[test]
    fn events_are_tagged() {
        let event = RunEvent::Output(OutputChunk::new(StreamName::Stderr, &[0xff, b'x']));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "output");
        assert_eq!(json["stream"], "stderr");
        let back: RunEvent = serde_json::from_value(json).unwrap();
        match back {
            RunEvent::Output(chunk) => assert_eq!(chunk.bytes().unwrap(), vec![0xff, b'x']),
            other => panic!("{other:?}"),
        }
    }
}

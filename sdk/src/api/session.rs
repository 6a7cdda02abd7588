//! Shells (PTY sessions) and services (background processes with readiness)
//! inside a workspace, and the secrets a workspace can map into them.
//!
//! # Endpoints (all under `/v1/workspaces/{id}`)
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /shells` | [`ShellOpenRequest`] | [`ShellInfo`] |
//! | `GET /shells` | | [`ShellList`] |
//! | `POST /shells/{shell_id}/read` | [`ShellReadRequest`] | [`ShellReadResult`] |
//! | `POST /shells/{shell_id}/write` | [`ShellWriteRequest`] | [`ShellInfo`] |
//! | `POST /shells/{shell_id}/signal` | [`ShellSignalRequest`] | [`ShellInfo`] |
//! | `POST /shells/{shell_id}/resize` | [`ShellResizeRequest`] | [`ShellInfo`] |
//! | `DELETE /shells/{shell_id}` | | [`ShellInfo`] (state `stopped`) |
//! | `POST /services` | [`ServiceStartRequest`] | [`ServiceInfo`] |
//! | `GET /services` | | [`ServiceList`] |
//! | `GET /services/{name}` | | [`ServiceInfo`] |
//! | `POST /services/{name}/logs` | [`ServiceLogsRequest`] | [`ServiceLogs`], or with `follow` a stream of [`ServiceLogEvent`] |
//! | `POST /services/{name}/stop` | | [`ServiceInfo`] |
//!
//! Everything these return has passed the workspace's secret redactor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workspace::{is_env_name, is_simple_name};
use super::{CommandSpec, ErrorBody, OutputChunk};

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A secret given at workspace creation: a literal value or a host file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`.
    pub name: String,
    /// The value (exactly one of `value` and `file_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An absolute host path to read the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSpec")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("file_path", &self.file_path)
            .finish()
    }
}

/// Checks a list of secrets: names, one source each, sizes, no duplicates.
///
/// ```
/// use pyro_sdk::api::session::{validate_secrets, SecretSpec};
/// let token = SecretSpec { name: "API_TOKEN".into(), value: Some("s3cret".into()), file_path: None };
/// let key = SecretSpec { name: "SSH_KEY".into(), value: None, file_path: Some("./id_ed25519".into()) };
/// assert!(validate_secrets(&[token.clone(), key]).is_ok());
/// assert_eq!(validate_secrets(&[token.clone(), token]).unwrap_err(), "secret API_TOKEN is given twice");
/// ```
pub fn validate_secrets(secrets: &[SecretSpec]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for secret in secrets {
        if !is_env_name(&secret.name) {
            return Err(format!(
                "secret name {:?} must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$",
                secret.name
            ));
        }
        if !seen.insert(secret.name.as_str()) {
            return Err(format!("secret {} is given twice", secret.name));
        }
        match (&secret.value, &secret.file_path) {
            (Some(value), None) => {
                if value.is_empty() {
                    return Err(format!("secret {} has an empty value", secret.name));
                }
                if value.len() > MAX_SECRET_BYTES {
                    return Err(format!(
                        "secret {} is {} bytes; at most {MAX_SECRET_BYTES} are allowed",
                        secret.name,
                        value.len()
                    ));
                }
            }
            (None, Some(path)) if !path.is_empty() => {}
            _ => {
                return Err(format!(
                    "secret {} needs exactly one of a value or a file path",
                    secret.name
                ))
            }
        }
    }
    Ok(())
}

/// Checks a secret-to-environment mapping (names only; the supervisor checks
/// the secrets exist).
///
/// ```
/// use std::collections::BTreeMap;
/// use pyro_sdk::api::session::validate_secret_env;
/// let mut mapping = BTreeMap::from([("API_TOKEN".to_owned(), "TOKEN".to_owned())]);
/// assert!(validate_secret_env(&mapping).is_ok());
/// mapping.insert("API_TOKEN2".into(), "NOT-A-NAME".into());
/// assert!(validate_secret_env(&mapping).is_err());
/// ```
pub fn validate_secret_env(mapping: &BTreeMap<String, String>) -> Result<(), String> {
    for (secret, env) in mapping {
        if !is_env_name(secret) {
            return Err(format!("secret name {secret:?} is not a valid secret name"));
        }
        if !is_env_name(env) {
            return Err(format!(
                "environment variable name {env:?} must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"
            ));
        }
    }
    Ok(())
}

/// `POST .../shells`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellOpenRequest {
    /// Working directory (default `/workspace`).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Terminal width.
    #[serde(default = "default_cols")]
    pub cols: u16,
    /// Terminal height.
    #[serde(default = "default_rows")]
    pub rows: u16,
    /// Secrets to put in the shell's environment: secret name -> variable.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

fn default_cols() -> u16 {
    120
}
fn default_rows() -> u16 {
    30
}

impl Default for ShellOpenRequest {
    fn default() -> Self {
        Self {
            cwd: None,
            cols: default_cols(),
            rows: default_rows(),
            secret_env: BTreeMap::new(),
        }
    }
}

impl ShellOpenRequest {
    /// Checks every field.
    ///
    /// ```
    /// use pyro_sdk::api::session::ShellOpenRequest;
    /// assert!(ShellOpenRequest::default().validate().is_ok());
    /// let tiny = ShellOpenRequest { cols: 2, ..Default::default() };
    /// assert!(tiny.validate().unwrap_err().contains("out of range"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        check_size(self.cols, self.rows)?;
        validate_secret_env(&self.secret_env)
    }
}

fn check_size(cols: u16, rows: u16) -> Result<(), String> {
    if !(10..=1000).contains(&cols) || !(5..=1000).contains(&rows) {
        return Err(format!(
            "terminal size {cols}x{rows} is out of range (cols 10-1000, rows 5-1000)"
        ));
    }
    Ok(())
}

/// A shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellInfo {
    /// The workspace.
    pub workspace_id: String,
    /// The shell.
    pub shell_id: String,
    /// Where it started.
    pub cwd: String,
    /// Terminal width.
    pub cols: u16,
    /// Terminal height.
    pub rows: u16,
    /// `running` or `stopped`.
    pub state: String,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Its exit code, once ended.
    pub exit_code: Option<i32>,
    /// Output bytes produced so far (the next cursor of a full read).
    pub output_end: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `GET .../shells`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellList {
    /// The workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// Oldest first.
    pub shells: Vec<ShellInfo>,
}

/// Largest wait for output to settle.
pub const MAX_WAIT_FOR_IDLE_MS: u64 = 10_000;

/// `POST .../shells/{shell_id}/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellReadRequest {
    /// Byte offset to read from (0 = the start of the shell's output).
    #[serde(default)]
    pub cursor: u64,
    /// At most this many bytes of output.
    #[serde(default = "default_max_chars")]
    pub max_chars: u64,
    /// Render terminal escapes to plain text.
    #[serde(default)]
    pub plain: bool,
    /// Wait until no output arrived for this many milliseconds (1-10000).
    #[serde(default)]
    pub wait_for_idle_ms: Option<u64>,
}

fn default_max_chars() -> u64 {
    65_536
}

impl Default for ShellReadRequest {
    fn default() -> Self {
        Self {
            cursor: 0,
            max_chars: default_max_chars(),
            plain: false,
            wait_for_idle_ms: None,
        }
    }
}

impl ShellReadRequest {
    /// Checks every field.
    ///
    /// ```
    /// use pyro_sdk::api::session::ShellReadRequest;
    /// let request = ShellReadRequest { wait_for_idle_ms: Some(300), ..Default::default() };
    /// assert!(request.validate().is_ok());
    /// let request = ShellReadRequest { wait_for_idle_ms: Some(60_000), ..Default::default() };
    /// assert!(request.validate().unwrap_err().starts_with("wait_for_idle_ms"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=16 * 1024 * 1024).contains(&self.max_chars) {
            return Err("max_chars must be between 1 and 16777216".to_owned());
        }
        if let Some(wait) = self.wait_for_idle_ms {
            if !(1..=MAX_WAIT_FOR_IDLE_MS).contains(&wait) {
                return Err(format!(
                    "wait_for_idle_ms must be between 1 and {MAX_WAIT_FOR_IDLE_MS}"
                ));
            }
        }
        Ok(())
    }
}

/// Output read from a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellReadResult {
    /// The shell.
    pub shell: ShellInfo,
    /// Where the returned output starts (later than asked for when the
    /// asked-for bytes have left the buffer).
    pub cursor: u64,
    /// Where the next read should start.
    pub next_cursor: u64,
    /// The output (raw terminal bytes as text, or rendered with `plain`).
    pub output: String,
    /// Whether output was skipped because it left the bounded buffer.
    pub truncated: bool,
    /// Whether more output is waiting after `next_cursor`.
    pub more: bool,
    /// Whether escapes were rendered.
    pub plain: bool,
    /// The wait asked for.
    pub wait_for_idle_ms: Option<u64>,
}

/// `POST .../shells/{shell_id}/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellWriteRequest {
    /// What to type.
    pub input: String,
    /// Press Enter after it (default true).
    #[serde(default = "default_true")]
    pub append_newline: bool,
}

fn default_true() -> bool {
    true
}

/// A signal for a shell's foreground job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ShellSignalName {
    /// Hang up.
    Hup,
    /// Interrupt (Ctrl-C).
    Int,
    /// Terminate.
    Term,
    /// Kill.
    Kill,
}

/// `POST .../shells/{shell_id}/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellSignalRequest {
    /// The signal (default INT).
    #[serde(default = "default_signal")]
    pub signal: ShellSignalName,
}

fn default_signal() -> ShellSignalName {
    ShellSignalName::Int
}

/// `POST .../shells/{shell_id}/resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellResizeRequest {
    /// New width.
    pub cols: u16,
    /// New height.
    pub rows: u16,
}

impl ShellResizeRequest {
    /// Checks the size.
    ///
    /// ```
    /// use pyro_sdk::api::session::ShellResizeRequest;
    /// assert!(ShellResizeRequest { cols: 200, rows: 50 }.validate().is_ok());
    /// assert!(ShellResizeRequest { cols: 200, rows: 0 }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        check_size(self.cols, self.rows)
    }
}

/// When a service is restarted after its process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    #[default]
    No,
    /// When it exits with a non-zero code or a signal.
    OnFailure,
    /// Whenever it ends (also after the workspace starts again).
    Always,
}

impl RestartPolicy {
    /// The kebab-case name.
    ///
    /// ```
    /// assert_eq!(pyro_sdk::api::session::RestartPolicy::OnFailure.as_str(), "on-failure");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::OnFailure => "on-failure",
            Self::Always => "always",
        }
    }
}

/// `POST .../services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceStartRequest {
    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    pub name: String,
    /// What to run.
    pub command: CommandSpec,
    /// Working directory (default `/workspace`).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Ready when this file exists (relative to `/workspace`).
    #[serde(default)]
    pub ready_file: Option<String>,
    /// Ready when `HOST:PORT` accepts a connection.
    #[serde(default)]
    pub ready_tcp: Option<String>,
    /// Ready when this `http://` URL answers 2xx or 3xx.
    #[serde(default)]
    pub ready_http: Option<String>,
    /// Ready when this shell command exits 0.
    #[serde(default)]
    pub ready_command: Option<String>,
    /// How long readiness may take.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_seconds: u64,
    /// How often readiness is checked.
    #[serde(default = "default_ready_interval")]
    pub ready_interval_ms: u64,
    /// When to restart it.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets to put in its environment: secret name -> variable.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

fn default_ready_timeout() -> u64 {
    30
}
fn default_ready_interval() -> u64 {
    500
}

impl ServiceStartRequest {
    /// A request with every default.
    ///
    /// ```
    /// use pyro_sdk::api::session::{RestartPolicy, ServiceStartRequest};
    /// use pyro_sdk::api::CommandSpec;
    /// let request = ServiceStartRequest::new("web", CommandSpec::Shell("python3 -m http.server 8080".into()));
    /// assert_eq!(request.restart, RestartPolicy::No);
    /// assert!(request.readiness().is_none());
    /// ```
    pub fn new(name: impl Into<String>, command: CommandSpec) -> Self {
        Self {
            name: name.into(),
            command,
            cwd: None,
            ready_file: None,
            ready_tcp: None,
            ready_http: None,
            ready_command: None,
            ready_timeout_seconds: default_ready_timeout(),
            ready_interval_ms: default_ready_interval(),
            restart: RestartPolicy::No,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
        }
    }

    /// Checks every field; more than one readiness type is an error.
    ///
    /// ```
    /// use pyro_sdk::api::session::ServiceStartRequest;
    /// use pyro_sdk::api::CommandSpec;
    /// let mut request = ServiceStartRequest::new("web", CommandSpec::Shell("python3 -m http.server 8080".into()));
    /// request.ready_tcp = Some("127.0.0.1:8080".into());
    /// assert!(request.validate().is_ok());
    /// request.ready_file = Some(".ready".into());
    /// assert!(request.validate().unwrap_err().contains("at most one"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if !is_simple_name(&self.name) {
            return Err(format!(
                "service name {:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$",
                self.name
            ));
        }
        self.command.validate()?;
        let given = [
            &self.ready_file,
            &self.ready_tcp,
            &self.ready_http,
            &self.ready_command,
        ]
        .iter()
        .filter(|r| r.is_some())
        .count();
        if given > 1 {
            return Err(
                "choose at most one of ready_file, ready_tcp, ready_http or ready_command"
                    .to_owned(),
            );
        }
        if let Some(tcp) = &self.ready_tcp {
            let (host, port) = tcp
                .rsplit_once(':')
                .ok_or_else(|| format!("ready_tcp {tcp:?} must be HOST:PORT"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!(
                    "ready_tcp {tcp:?} must be HOST:PORT with a port from 1 to 65535"
                ));
            }
        }
        if let Some(url) = &self.ready_http {
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                return Err(format!("ready_http {url:?} must be an http:// URL"));
            }
        }
        if self
            .ready_command
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err("ready_command must not be empty".to_owned());
        }
        if self
            .ready_file
            .as_ref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err("ready_file must not be empty".to_owned());
        }
        if !(1..=3600).contains(&self.ready_timeout_seconds) {
            return Err("ready_timeout_seconds must be between 1 and 3600".to_owned());
        }
        if !(10..=60_000).contains(&self.ready_interval_ms) {
            return Err("ready_interval_ms must be between 10 and 60000".to_owned());
        }
        for key in self.env.keys() {
            if !is_env_name(key) {
                return Err(format!(
                    "environment variable name {key:?} must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"
                ));
            }
        }
        validate_secret_env(&self.secret_env)
    }

    /// The readiness check, as `(type, target)`.
    ///
    /// ```
    /// use pyro_sdk::api::session::ServiceStartRequest;
    /// use pyro_sdk::api::CommandSpec;
    /// let mut request = ServiceStartRequest::new("web", CommandSpec::Shell("python3 -m http.server 8080".into()));
    /// request.ready_http = Some("http://127.0.0.1:8080/".into());
    /// assert_eq!(request.readiness(), Some(("http", "http://127.0.0.1:8080/")));
    /// ```
    pub fn readiness(&self) -> Option<(&'static str, &str)> {
        [
            ("file", &self.ready_file),
            ("tcp", &self.ready_tcp),
            ("http", &self.ready_http),
            ("command", &self.ready_command),
        ]
        .into_iter()
        .find_map(|(kind, target)| target.as_deref().map(|t| (kind, t)))
    }
}

/// A service's readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessInfo {
    /// `file`, `tcp`, `http` or `command`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The file (absolute), address, URL or command.
    pub target: String,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The workspace.
    pub workspace_id: String,
    /// Its name.
    pub service_name: String,
    /// `starting`, `running`, `exited`, `stopped` or `failed`.
    pub state: String,
    /// The command line.
    pub command: String,
    /// Where it runs.
    pub cwd: String,
    /// Its readiness check.
    pub readiness: Option<ReadinessInfo>,
    /// Its restart policy.
    pub restart: RestartPolicy,
    /// How many times it was restarted.
    pub restart_count: u64,
    /// When its current process started.
    pub started_at: Option<String>,
    /// When it became ready.
    pub ready_at: Option<String>,
    /// When its process ended.
    pub ended_at: Option<String>,
    /// Its exit code, once ended.
    pub exit_code: Option<i32>,
    /// Its process id in the guest.
    pub pid: Option<u32>,
    /// Why it stopped: `sigterm`, `sigkill`, `workspace_stopped`,
    /// `process_exited_before_ready`, `readiness_timeout`.
    pub stop_reason: Option<String>,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `GET .../services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    /// The workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// How many run.
    pub running_count: usize,
    /// By name.
    pub services: Vec<ServiceInfo>,
}

/// `POST .../services/{name}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogsRequest {
    /// Lines from the end (default 200; ignored with `all`).
    #[serde(default = "default_tail")]
    pub tail_lines: u64,
    /// Everything kept.
    #[serde(default)]
    pub all: bool,
    /// Keep streaming new output until the service ends or the caller leaves.
    #[serde(default)]
    pub follow: bool,
}

fn default_tail() -> u64 {
    200
}

impl Default for ServiceLogsRequest {
    fn default() -> Self {
        Self {
            tail_lines: default_tail(),
            all: false,
            follow: false,
        }
    }
}

/// A service's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLogs {
    /// The service.
    pub service: ServiceInfo,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Both, in the order they were written.
    pub combined: String,
    /// The tail asked for (`None` with `all`).
    pub tail_lines: Option<u64>,
    /// Whether older output was left out.
    pub truncated: bool,
}

/// One line of a followed log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServiceLogEvent {
    /// Output, in the order it was written.
    Output(OutputChunk),
    /// The service ended (or the stream is done); the last line.
    Result(Box<ServiceInfo>),
    /// The stream failed; the last line.
    Error(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(name: &str, value: &str) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            value: Some(value.into()),
            file_path: None,
        }
    }

    #[test]
    fn secrets_are_validated_without_showing_values() {
        assert!(validate_secrets(&[literal("API_TOKEN", "x")]).is_ok());
        assert!(validate_secrets(&[literal("1BAD", "x")]).is_err());
        assert!(validate_secrets(&[literal("A", "")]).is_err());
        assert!(validate_secrets(&[literal("A", "x"), literal("A", "y")]).is_err());
        assert!(validate_secrets(&[literal("A", &"x".repeat(MAX_SECRET_BYTES + 1))]).is_err());
        let both = SecretSpec {
            file_path: Some("/f".into()),
            ..literal("A", "x")
        };
        assert!(validate_secrets(&[both]).is_err());
        let shown = format!("{:?}", literal("A", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn one_readiness_type_at_most() {
        let mut req = ServiceStartRequest::new("web", CommandSpec::Shell("sleep 60".into()));
        assert!(req.validate().is_ok());
        req.ready_file = Some(".ready".into());
        assert_eq!(req.readiness(), Some(("file", ".ready")));
        req.ready_tcp = Some("127.0.0.1:8080".into());
        assert!(req.validate().unwrap_err().contains("at most one"));
        req.ready_file = None;
        assert!(req.validate().is_ok());
        req.ready_tcp = Some("nope".into());
        assert!(req.validate().is_err());
    }

    #[test]
    fn reads_are_bounded() {
        let read = ShellReadRequest {
            wait_for_idle_ms: Some(0),
            ..Default::default()
        };
        assert!(read.validate().is_err());
        assert!(ShellReadRequest::default().validate().is_ok());
        let signal: ShellSignalRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(signal.signal, ShellSignalName::Int);
        let signal: ShellSignalRequest = serde_json::from_str(r#"{"signal":"KILL"}"#).unwrap();
        assert_eq!(signal.signal, ShellSignalName::Kill);
        assert!(serde_json::from_str::<ShellSignalRequest>(r#"{"signal":"STOP"}"#).is_err());
    }
}

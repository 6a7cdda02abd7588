//! The tools, one module per area, each an `impl PyroMcp` block whose
//! `#[tool_router]` makes one router group (combined per profile in
//! `profiles.rs`):
//!
//! - `vm`: `vm_*`, built on one-shot runs and on workspaces labelled
//!   `pyro.kind=vm`;
//! - `lifecycle`: workspace create (core and full variants), list, update,
//!   status, logs, stop, start, reset, delete;
//! - `exec`: `workspace_exec` (core and full variants), and the output
//!   collection `vm_exec` shares;
//! - `files`: sync push, export, diff, file list/read/write, patch apply;
//! - `disk`: offline disk export/list/read;
//! - `snapshots`: snapshot create/list/delete;
//! - `shells`: PTY shells (open, read, write, signal, resize, list, close);
//! - `services`: background services (start, list, status, logs, stop).
//!
//! Secrets: the `workspace-full` `workspace_create` takes `secrets`
//! ([`SecretArg`], whose `file_path` is confined like `seed_path`), and its
//! `workspace_exec`, `shell_open` and `service_start` take `secret_env`
//! (secret name -> variable). Secret values are never echoed: [`SecretArg`]
//! does not print its value, validation messages name secrets only, and
//! everything the supervisor returns has passed the workspace's redactor.
//!
//! Every tool function is a thin wrapper: it turns its arguments into an SDK
//! request (the `request` methods of the argument types, which apply the
//! reference's defaults, validate with the SDK's own checks and confine host
//! paths; unit-tested without a supervisor), runs the call under
//! [`cancellable`](super::progress::cancellable) and renders the result with
//! [`respond`](super::render::respond). Argument types reject unknown fields,
//! so a misspelt option is an error, not silently ignored.

mod disk;
mod exec;
mod files;
mod lifecycle;
mod services;
mod shells;
mod snapshots;
mod vm;

use std::collections::BTreeMap;

use pyro_sdk::api::limits;
use pyro_sdk::api::session::{validate_secret_env, SecretSpec};
use pyro_sdk::api::workspace::{DEFAULT_DISK_MIB, DEFAULT_READ_BYTES, WORKSPACE_PATH};
use schemars::JsonSchema;
use serde::Deserialize;

use super::errors::ToolError;
use super::paths::AllowedRoots;

/// The label that marks a workspace as a `vm_*` VM.
pub const KIND_LABEL: &str = "pyro.kind";
/// Its value.
pub const KIND_VM: &str = "vm";

/// Arguments naming one workspace.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceIdArgs {
    /// The workspace id (from workspace_create or workspace_list).
    pub workspace_id: String,
}

/// Arguments naming one VM.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmIdArgs {
    /// The VM id (from vm_create).
    pub vm_id: String,
}

/// A secret given to `workspace_create`: a literal value or a host file.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretArg {
    /// The secret's name, `^[A-Za-z_][A-Za-z0-9_]{0,63}$`.
    pub name: String,
    /// Its value (give either value or file_path).
    #[serde(default)]
    pub value: Option<String>,
    /// A host file holding the value, inside the server's allowed roots (relative paths are relative to the first one).
    #[serde(default)]
    pub file_path: Option<String>,
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretArg")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("file_path", &self.file_path)
            .finish()
    }
}

impl SecretArg {
    /// The SDK's secret, with `file_path` confined to `roots` and resolved.
    pub fn spec(&self, roots: &AllowedRoots) -> Result<SecretSpec, ToolError> {
        let file_path = self
            .file_path
            .as_deref()
            .map(|path| roots.input(&format!("secret {} file_path", self.name), path))
            .transpose()?;
        Ok(SecretSpec {
            name: self.name.clone(),
            value: self.value.clone(),
            file_path,
        })
    }
}

/// Checks a `secret_env` argument (secret name -> variable).
fn secret_env(
    mapping: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ToolError> {
    let mapping = mapping.cloned().unwrap_or_default();
    validate_secret_env(&mapping).map_err(ToolError::invalid)?;
    Ok(mapping)
}

fn default_vcpu() -> u8 {
    limits::DEFAULT_VCPU
}
fn default_mem() -> u32 {
    limits::DEFAULT_MEM_MIB
}
fn default_ttl() -> u64 {
    limits::DEFAULT_TTL_SECONDS
}
fn default_timeout() -> u64 {
    limits::DEFAULT_TIMEOUT_SECONDS
}
fn default_disk() -> u64 {
    DEFAULT_DISK_MIB
}
fn default_workspace_path() -> String {
    WORKSPACE_PATH.to_owned()
}
fn default_read_bytes() -> u64 {
    DEFAULT_READ_BYTES
}
fn default_snapshot() -> String {
    "baseline".to_owned()
}

/// Refuses `network: true`: guests have no network in this version.
fn check_network(network: bool) -> Result<(), ToolError> {
    if network {
        return Err(ToolError::invalid_with_hint(
            "network=true is not available: pyro guests have no network in this version",
            "leave network unset (false); copy files in with seed_path or workspace_sync_push",
        ));
    }
    Ok(())
}

/// Refuses the label reserved for `vm_*` VMs.
fn check_labels<'a>(mut keys: impl Iterator<Item = &'a String>) -> Result<(), ToolError> {
    if keys.any(|k| k == KIND_LABEL) {
        return Err(ToolError::invalid(format!(
            "label {KIND_LABEL} is reserved: it marks the VMs of the vm_* tools"
        )));
    }
    Ok(())
}

/// Rejects an empty id before it reaches the supervisor.
fn check_id(argument: &str, id: &str) -> Result<(), ToolError> {
    if id.trim().is_empty() {
        return Err(ToolError::invalid(format!("{argument} must not be empty")));
    }
    Ok(())
}

/// The message of an environment install step.
fn pull_message(progress: &pyro_sdk::api::PullProgress) -> String {
    match &progress.detail {
        Some(detail) => format!(
            "installing {}: {} ({detail})",
            progress.environment, progress.phase
        ),
        None => format!("installing {}: {}", progress.environment, progress.phase),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn secrets_never_show_their_value_and_files_are_confined() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.txt"), "t0k3n").unwrap();
        let roots = AllowedRoots::new(&[], dir.path()).unwrap();
        let literal: SecretArg =
            serde_json::from_value(serde_json::json!({"name": "API_TOKEN", "value": "hunter2"}))
                .unwrap();
        assert!(!format!("{literal:?}").contains("hunter2"));
        assert_eq!(
            literal.spec(&roots).unwrap().value.as_deref(),
            Some("hunter2")
        );
        let file: SecretArg =
            serde_json::from_value(serde_json::json!({"name": "PIP", "file_path": "token.txt"}))
                .unwrap();
        assert!(file
            .spec(&roots)
            .unwrap()
            .file_path
            .unwrap()
            .ends_with("/token.txt"));
        let outside: SecretArg =
            serde_json::from_value(serde_json::json!({"name": "X", "file_path": "/etc/hostname"}))
                .unwrap();
        let err = outside.spec(&roots).unwrap_err();
        assert!(err
            .0
            .message
            .starts_with("secret X file_path /etc/hostname is outside the allowed roots"));
        assert!(secret_env(None).unwrap().is_empty());
        let bad = BTreeMap::from([("API_TOKEN".to_owned(), "1BAD".to_owned())]);
        assert!(secret_env(Some(&bad)).is_err());
    }

    #[test]
    fn ids_and_reserved_labels_are_checked() {
        assert!(check_id("workspace_id", " ").is_err());
        assert!(check_id("workspace_id", "0123456789ab").is_ok());
        let keys = ["team".to_owned(), KIND_LABEL.to_owned()];
        assert!(check_labels(keys.iter()).is_err());
        assert!(check_labels(keys[..1].iter()).is_ok());
        assert!(check_network(true).is_err());
        assert!(check_network(false).is_ok());
    }
}

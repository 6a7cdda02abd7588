//! Workspace secrets: their values, where they live, and the redactor built
//! from them.
//!
//! - On the host the values live in one file per workspace,
//!   `<data>/secrets/<id>.json`, mode 0600 in a 0700 directory, and in the
//!   [`SecretStoreActor`]'s memory. Records keep only name, source kind and
//!   size; values never reach the database, a log line, an error message or
//!   a command history entry.
//! - In the guest they are files under `/run/pyro-secrets/` (tmpfs:
//!   directory 0700, files 0400), written after every boot, so they are never
//!   on a disk image, in a snapshot or in an export.
//! - Per call, `secret_env` maps a secret into one process's environment.
//! - Every byte that leaves the workspace passes the redactor.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use actix::prelude::*;
use pyro_actors::secrets::redactor::{Redactor, SecretValue};
use pyro_sdk::api::session::SecretSpec;
use pyro_sdk::api::workspace::SecretInfo;
use serde::{Deserialize, Serialize};

use crate::error::SupervisorError;

/// Where secrets are put in the guest.
pub const GUEST_SECRET_DIR: &str = "/run/pyro-secrets";

/// One stored secret (the file format).
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    name: String,
    source_kind: String,
    value: String,
}

/// The secrets of one workspace.
#[derive(Clone, Default)]
pub struct SecretStore {
    values: BTreeMap<String, SecretValue>,
    info: Vec<SecretInfo>,
    redactor: Redactor,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("secrets", &self.info)
            .finish()
    }
}

fn invalid(message: String) -> SupervisorError {
    SupervisorError::InvalidRequest { message }
}

impl SecretStore {
    /// Reads the secrets given at creation (file secrets from their files).
    /// Errors name the secret or the file, never a value.
    pub fn from_specs(specs: &[SecretSpec]) -> Result<Self, SupervisorError> {
        pyro_sdk::api::session::validate_secrets(specs).map_err(invalid)?;
        let mut stored = Vec::new();
        for spec in specs {
            let (value, kind) = match (&spec.value, &spec.file_path) {
                (Some(value), _) => (value.clone(), "literal"),
                (None, Some(path)) => (read_secret_file(&spec.name, Path::new(path))?, "file"),
                (None, None) => return Err(invalid(format!("secret {} has no value", spec.name))),
            };
            stored.push(StoredSecret {
                name: spec.name.clone(),
                source_kind: kind.to_owned(),
                value,
            });
        }
        Self::from_stored(stored)
    }

    fn from_stored(stored: Vec<StoredSecret>) -> Result<Self, SupervisorError> {
        let mut values = BTreeMap::new();
        let mut info = Vec::new();
        for secret in stored {
            info.push(SecretInfo {
                name: secret.name.clone(),
                source_kind: secret.source_kind,
                size_bytes: secret.value.len() as u64,
            });
            let value = SecretValue::new(secret.value.into_bytes())
                .map_err(|err| invalid(format!("secret {}: {err}", secret.name)))?;
            values.insert(secret.name, value);
        }
        let redactor = Redactor::new(values.values())
            .map_err(|err| invalid(format!("the secrets cannot be redacted: {err}")))?;
        Ok(Self {
            values,
            info,
            redactor,
        })
    }

    /// The safe metadata, for records.
    pub fn info(&self) -> &[SecretInfo] {
        &self.info
    }

    /// The redactor for everything that leaves the workspace.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Whether there are no secrets.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Resolves a `secret_env` mapping into environment variables.
    pub fn environment(
        &self,
        mapping: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, SupervisorError> {
        mapping
            .iter()
            .map(|(secret, variable)| {
                let value = self.values.get(secret).ok_or_else(|| {
                    invalid(format!(
                        "secret_env references unknown workspace secret '{secret}'"
                    ))
                })?;
                Ok((
                    variable.clone(),
                    String::from_utf8_lossy(value.expose()).into_owned(),
                ))
            })
            .collect()
    }

    /// A tar of the secret files (mode 0400), for `/run/pyro-secrets`.
    pub fn guest_archive(&self) -> Result<Vec<u8>, SupervisorError> {
        let mut builder = tar::Builder::new(Vec::new());
        let build =
            |err| SupervisorError::io("building the secrets archive for", GUEST_SECRET_DIR, err);
        for (name, value) in &self.values {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o400);
            header.set_size(value.expose().len() as u64);
            builder
                .append_data(&mut header, name, value.expose())
                .map_err(build)?;
        }
        builder.into_inner().map_err(build)
    }

    /// Writes the values to the workspace's secret file (0600, in a 0700
    /// directory), through a temporary file.
    pub fn save(&self, secrets_dir: &Path, workspace_id: &str) -> Result<(), SupervisorError> {
        if self.values.is_empty() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(secrets_dir)
            .map_err(|source| SupervisorError::io("creating", secrets_dir, source))?;
        let stored: Vec<StoredSecret> = self
            .info
            .iter()
            .filter_map(|info| {
                let value = self.values.get(&info.name)?;
                Some(StoredSecret {
                    name: info.name.clone(),
                    source_kind: info.source_kind.clone(),
                    value: String::from_utf8_lossy(value.expose()).into_owned(),
                })
            })
            .collect();
        let bytes = serde_json::to_vec(&stored).map_err(|err| {
            SupervisorError::io("encoding", secrets_dir, std::io::Error::other(err))
        })?;
        let path = secret_file(secrets_dir, workspace_id);
        let tmp = secrets_dir.join(format!(".{workspace_id}.tmp-{}", crate::ids::new_id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        written.map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SupervisorError::io("writing the secret file", &path, source)
        })
    }

    /// Reads a workspace's secret file (empty when it has none).
    pub fn load(secrets_dir: &Path, workspace_id: &str) -> Result<Self, SupervisorError> {
        let path = secret_file(secrets_dir, workspace_id);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: Vec<StoredSecret> = serde_json::from_slice(&bytes).map_err(|err| {
                    SupervisorError::io("reading", &path, std::io::Error::other(err))
                })?;
                Self::from_stored(stored)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SupervisorError::io("reading", &path, source)),
        }
    }

    /// Removes a workspace's secret file.
    pub fn remove(secrets_dir: &Path, workspace_id: &str) {
        let _ = std::fs::remove_file(secret_file(secrets_dir, workspace_id));
    }
}

fn secret_file(secrets_dir: &Path, workspace_id: &str) -> PathBuf {
    secrets_dir.join(format!("{workspace_id}.json"))
}

fn read_secret_file(name: &str, path: &Path) -> Result<String, SupervisorError> {
    if !path.is_absolute() {
        return Err(invalid(format!(
            "the file of secret {name} ({}) must be an absolute path",
            path.display()
        )));
    }
    let meta = std::fs::metadata(path).map_err(|err| {
        invalid(format!(
            "the file of secret {name} ({}) cannot be read: {err}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(invalid(format!(
            "the file of secret {name} ({}) is not a regular file",
            path.display()
        )));
    }
    if meta.len() > pyro_sdk::api::session::MAX_SECRET_BYTES as u64 + 1 {
        return Err(invalid(format!(
            "the file of secret {name} ({}) is larger than {} bytes",
            path.display(),
            pyro_sdk::api::session::MAX_SECRET_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|err| {
        invalid(format!(
            "the file of secret {name} ({}) cannot be read: {err}",
            path.display()
        ))
    })?;
    let mut value = String::from_utf8(bytes).map_err(|_| {
        invalid(format!(
            "the file of secret {name} ({}) is not UTF-8 text",
            path.display()
        ))
    })?;
    // Files usually end with a newline that is not part of the secret.
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty()
        || value.len() > pyro_sdk::api::session::MAX_SECRET_BYTES
        || value.contains('\0')
    {
        return Err(invalid(format!(
            "the file of secret {name} ({}) must hold 1 to {} bytes without NUL",
            path.display(),
            pyro_sdk::api::session::MAX_SECRET_BYTES
        )));
    }
    Ok(value)
}

/// Holds one workspace's secrets and answers for them.
#[derive(Debug)]
pub struct SecretStoreActor {
    store: SecretStore,
}

impl SecretStoreActor {
    /// An actor over `store`.
    pub fn new(store: SecretStore) -> Self {
        Self { store }
    }
}

impl Actor for SecretStoreActor {
    type Context = Context<Self>;
}

/// The redactor.
#[derive(Debug, Message)]
#[rtype(result = "Redactor")]
pub struct GetRedactor;

/// Resolve a `secret_env` mapping.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(String, String)>, SupervisorError>")]
pub struct ResolveSecretEnv(pub BTreeMap<String, String>);

/// The archive of secret files for the guest (`None` without secrets).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Vec<u8>>, SupervisorError>")]
pub struct GuestSecretArchive;

impl Handler<GetRedactor> for SecretStoreActor {
    type Result = MessageResult<GetRedactor>;

    fn handle(&mut self, _msg: GetRedactor, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.store.redactor().clone())
    }
}

impl Handler<ResolveSecretEnv> for SecretStoreActor {
    type Result = Result<Vec<(String, String)>, SupervisorError>;

    fn handle(&mut self, msg: ResolveSecretEnv, _ctx: &mut Self::Context) -> Self::Result {
        self.store.environment(&msg.0)
    }
}

impl Handler<GuestSecretArchive> for SecretStoreActor {
    type Result = Result<Option<Vec<u8>>, SupervisorError>;

    fn handle(&mut self, _msg: GuestSecretArchive, _ctx: &mut Self::Context) -> Self::Result {
        if self.store.is_empty() {
            Ok(None)
        } else {
            self.store.guest_archive().map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn literal(name: &str, value: &str) -> SecretSpec {
        SecretSpec {
            name: name.into(),
            value: Some(value.into()),
            file_path: None,
        }
    }

    #[test]
    fn secrets_map_into_env_and_redact() {
        let store = SecretStore::from_specs(&[literal("API_TOKEN", "expected-value")]).unwrap();
        let env = store
            .environment(&BTreeMap::from([(
                "API_TOKEN".to_owned(),
                "TOKEN".to_owned(),
            )]))
            .unwrap();
        assert_eq!(env, vec![("TOKEN".to_owned(), "expected-value".to_owned())]);
        let err = store
            .environment(&BTreeMap::from([("NOPE".to_owned(), "X".to_owned())]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret_env references unknown workspace secret 'NOPE'"
        );
        assert_eq!(
            store.redactor().redact_str("a expected-value b"),
            "a [REDACTED] b"
        );
        assert_eq!(store.info()[0].size_bytes, 14);
        assert!(!format!("{store:?}").contains("expected-value"));
    }

    #[test]
    fn file_secrets_are_read_and_trimmed_and_missing_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token.txt");
        std::fs::write(&token, "from-file\n").unwrap();
        let spec = SecretSpec {
            name: "PIP_TOKEN".into(),
            value: None,
            file_path: Some(token.display().to_string()),
        };
        let store = SecretStore::from_specs(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(store.info()[0].source_kind, "file");
        assert_eq!(store.info()[0].size_bytes, 9);
        let missing = SecretSpec {
            file_path: Some(dir.path().join("nope").display().to_string()),
            ..spec
        };
        let err = SecretStore::from_specs(&[missing]).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("PIP_TOKEN"), "{err}");
    }

    #[test]
    fn saved_secrets_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let secrets_dir = dir.path().join("secrets");
        let store = SecretStore::from_specs(&[literal("A_B", "v1"), literal("C", "v2")]).unwrap();
        store.save(&secrets_dir, "aaaaaaaaaaaa").unwrap();
        let dir_mode = std::fs::metadata(&secrets_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        let file_mode = std::fs::metadata(secrets_dir.join("aaaaaaaaaaaa.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!((dir_mode, file_mode), (0o700, 0o600));
        let loaded = SecretStore::load(&secrets_dir, "aaaaaaaaaaaa").unwrap();
        assert_eq!(loaded.info(), store.info());
        assert_eq!(
            loaded.redactor().redact_str("v1 v2"),
            "[REDACTED] [REDACTED]"
        );
        assert!(SecretStore::load(&secrets_dir, "bbbbbbbbbbbb")
            .unwrap()
            .is_empty());
        SecretStore::remove(&secrets_dir, "aaaaaaaaaaaa");
        assert!(SecretStore::load(&secrets_dir, "aaaaaaaaaaaa")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_guest_archive_holds_read_only_files() {
        let store = SecretStore::from_specs(&[literal("API_TOKEN", "expected")]).unwrap();
        let tar = store.guest_archive().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_string_lossy(), "API_TOKEN");
        assert_eq!(entry.header().mode().unwrap(), 0o400);
    }
}

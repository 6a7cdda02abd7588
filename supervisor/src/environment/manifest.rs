//! `environment.json`: the manifest written last into every installed environment.
//!
//! It records where the environment came from and the sha256 and size of each
//! artifact. Reading rejects unknown fields, so a manifest written by an
//! incompatible pyro is treated as "not installed" rather than half understood.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::catalog::CatalogEntry;
use super::error::EnvironmentError;

/// File name of the manifest inside an install directory.
pub const MANIFEST_FILE: &str = "environment.json";
/// Uncompressed ELF kernel (booted with PVH).
pub const VMLINUX_FILE: &str = "vmlinux";
/// The kernel bzImage as Debian ships it.
pub const VMLINUZ_FILE: &str = "vmlinuz";
/// The read-only ext4 root file system.
pub const ROOTFS_FILE: &str = "rootfs.ext4";
/// cpio newc archive with the kernel modules the guest loads.
pub const MODULES_CPIO_FILE: &str = "modules.cpio";

/// The `source` of environments built on this host.
pub const LOCAL_BUILD_SOURCE: &str = "local-build";

/// The manifest's largest accepted size; a real one is about 2 KiB.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Size and digest of one artifact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
}

/// The four artifacts of an environment, keyed by file name in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecords {
    /// See [`VMLINUX_FILE`].
    #[serde(rename = "vmlinux")]
    pub vmlinux: ArtifactRecord,
    /// See [`VMLINUZ_FILE`].
    #[serde(rename = "vmlinuz")]
    pub vmlinuz: ArtifactRecord,
    /// See [`ROOTFS_FILE`].
    #[serde(rename = "rootfs.ext4")]
    pub rootfs: ArtifactRecord,
    /// See [`MODULES_CPIO_FILE`].
    #[serde(rename = "modules.cpio")]
    pub modules_cpio: ArtifactRecord,
}

impl ArtifactRecords {
    /// `(file name, record)` for each artifact, in a fixed order.
    pub fn iter(&self) -> [(&'static str, &ArtifactRecord); 4] {
        [
            (VMLINUX_FILE, &self.vmlinux),
            (VMLINUZ_FILE, &self.vmlinuz),
            (ROOTFS_FILE, &self.rootfs),
            (MODULES_CPIO_FILE, &self.modules_cpio),
        ]
    }
}

/// The content of `environment.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentManifest {
    /// Catalog name, e.g. `debian:12`.
    pub name: String,
    /// Catalog version, e.g. `1.0.0`.
    pub version: String,
    /// e.g. `linux-x86_64`.
    pub platform: String,
    /// e.g. `debian`.
    pub distribution: String,
    /// e.g. `12`.
    pub distribution_version: String,
    /// The catalog description.
    pub description: String,
    /// Packages advertised to users.
    pub default_packages: Vec<String>,
    /// Packages passed to mmdebstrap `--include`.
    pub included_packages: Vec<String>,
    /// The versioned kernel package, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub kernel_package: String,
    /// The kernel release (`uname -r`), e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_version: String,
    /// Module names in load order (dependencies first), as in `modules.cpio`.
    pub modules: Vec<String>,
    /// Digest and size of every artifact.
    pub artifacts: ArtifactRecords,
    /// Where it came from: `local-build` for environments built here.
    pub source: String,
    /// The Debian mirror the packages came from.
    pub mirror: String,
    /// When the build finished, RFC 3339 UTC.
    pub built_at: String,
    /// Version of the pyro supervisor that built it.
    pub builder_version: String,
}

impl EnvironmentManifest {
    /// Reads and validates a manifest file.
    pub fn read(path: &Path) -> Result<Self, EnvironmentError> {
        let length = fs::metadata(path)
            .map_err(|source| EnvironmentError::io("read", path, source))?
            .len();
        if length > MAX_MANIFEST_BYTES {
            return Err(EnvironmentError::ManifestInvalid {
                path: path.to_path_buf(),
                reason: format!("{length} bytes is larger than a manifest can be"),
            });
        }
        let bytes = fs::read(path).map_err(|source| EnvironmentError::io("read", path, source))?;
        Self::parse(&bytes, path)
    }

    /// Parses and validates manifest bytes; `path` only names the source in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, EnvironmentError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|source| EnvironmentError::ManifestParse {
                path: path.to_path_buf(),
                source,
            })?;
        manifest
            .validate()
            .map_err(|reason| EnvironmentError::ManifestInvalid {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(manifest)
    }

    /// Checks that this manifest describes `entry` at its catalog version and platform.
    pub fn describes(&self, entry: &CatalogEntry, platform: &str) -> Result<(), String> {
        if self.name != entry.name {
            return Err(format!("it names '{}', not '{}'", self.name, entry.name));
        }
        if self.version != entry.version {
            return Err(format!(
                "it has version {}, the catalog has {}",
                self.version, entry.version
            ));
        }
        if self.platform != platform {
            return Err(format!(
                "it is for platform {}, not {platform}",
                self.platform
            ));
        }
        Ok(())
    }

    /// Writes the manifest as pretty JSON and fsyncs it.
    pub fn write(&self, path: &Path) -> Result<(), EnvironmentError> {
        let mut json = serde_json::to_vec_pretty(self)
            .map_err(|source| EnvironmentError::io("serialize", path, source.into()))?;
        json.push(b'\n');
        let mut file =
            File::create(path).map_err(|source| EnvironmentError::io("create", path, source))?;
        file.write_all(&json)
            .map_err(|source| EnvironmentError::io("write", path, source))?;
        file.sync_all()
            .map_err(|source| EnvironmentError::io("fsync", path, source))
    }

    fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("platform", &self.platform),
            ("kernel_version", &self.kernel_version),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{field} is empty"));
            }
        }
        if self.modules.is_empty() {
            return Err("modules is empty".to_owned());
        }
        for (file_name, record) in self.artifacts.iter() {
            if !is_sha256_hex(&record.sha256) {
                return Err(format!(
                    "artifact {file_name} has sha256 '{}', which is not 64 lowercase hex digits",
                    record.sha256
                ));
            }
            if record.size_bytes == 0 {
                return Err(format!("artifact {file_name} has size 0"));
            }
        }
        Ok(())
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::environment::catalog::{lookup, PLATFORM};

    /// A valid manifest for `debian:12` whose artifacts all have `size` bytes.
    pub(crate) fn sample_manifest(size: u64) -> EnvironmentManifest {
        let record = ArtifactRecord {
            sha256: "ab".repeat(32),
            size_bytes: size,
        };
        EnvironmentManifest {
            name: "debian:12".to_owned(),
            version: "1.0.0".to_owned(),
            platform: PLATFORM.to_owned(),
            distribution: "debian".to_owned(),
            distribution_version: "12".to_owned(),
            description: "test".to_owned(),
            default_packages: vec!["bash".to_owned()],
            included_packages: vec!["procps".to_owned()],
            kernel_package: "linux-image-6.1.0-56-cloud-amd64".to_owned(),
            kernel_version: "6.1.0-56-cloud-amd64".to_owned(),
            modules: vec!["virtio_ring".to_owned(), "virtio".to_owned()],
            artifacts: ArtifactRecords {
                vmlinux: record.clone(),
                vmlinuz: record.clone(),
                rootfs: record.clone(),
                modules_cpio: record,
            },
            source: LOCAL_BUILD_SOURCE.to_owned(),
            mirror: "http://deb.debian.org/debian".to_owned(),
            built_at: "2026-01-01T00:00:00Z".to_owned(),
            builder_version: "0.1.0".to_owned(),
        }
    }

    fn to_json_value(manifest: &EnvironmentManifest) -> serde_json::Value {
        serde_json::to_value(manifest).unwrap()
    }

    fn parse_value(value: &serde_json::Value) -> Result<EnvironmentManifest, EnvironmentError> {
        EnvironmentManifest::parse(&serde_json::to_vec(value).unwrap(), Path::new("m.json"))
    }

    #[test]
    fn manifest_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let manifest = sample_manifest(10);
        manifest.write(&path).unwrap();
        assert_eq!(EnvironmentManifest::read(&path).unwrap(), manifest);
    }

    #[test]
    fn artifacts_are_keyed_by_file_name_in_json() {
        let value = to_json_value(&sample_manifest(10));
        let keys: Vec<&String> = value["artifacts"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
        for key in [VMLINUX_FILE, VMLINUZ_FILE, ROOTFS_FILE, MODULES_CPIO_FILE] {
            assert_eq!(value["artifacts"][key]["size_bytes"], 10, "{key}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        let mut top = to_json_value(&sample_manifest(10));
        top["extra"] = serde_json::json!(1);
        assert!(matches!(
            parse_value(&top),
            Err(EnvironmentError::ManifestParse { .. })
        ));

        let mut artifact = to_json_value(&sample_manifest(10));
        artifact["artifacts"]["vmlinux"]["compressed"] = serde_json::json!(true);
        assert!(matches!(
            parse_value(&artifact),
            Err(EnvironmentError::ManifestParse { .. })
        ));

        let mut extra_artifact = to_json_value(&sample_manifest(10));
        extra_artifact["artifacts"]["initrd"] =
            serde_json::json!({"sha256": "ab".repeat(32), "size_bytes": 1});
        assert!(parse_value(&extra_artifact).is_err());
    }

    #[test]
    fn missing_fields_wrong_types_and_garbage_are_rejected() {
        let mut missing = to_json_value(&sample_manifest(10));
        missing.as_object_mut().unwrap().remove("kernel_version");
        assert!(parse_value(&missing).is_err());

        let mut missing_artifact = to_json_value(&sample_manifest(10));
        missing_artifact["artifacts"]
            .as_object_mut()
            .unwrap()
            .remove("rootfs.ext4");
        assert!(parse_value(&missing_artifact).is_err());

        let mut wrong_type = to_json_value(&sample_manifest(10));
        wrong_type["artifacts"]["vmlinux"]["size_bytes"] = serde_json::json!("10");
        assert!(parse_value(&wrong_type).is_err());

        assert!(EnvironmentManifest::parse(b"{", Path::new("m.json")).is_err());
        assert!(EnvironmentManifest::parse(b"", Path::new("m.json")).is_err());
    }

    #[test]
    fn semantically_bad_manifests_are_rejected_with_a_reason() {
        let mut bad_digest = sample_manifest(10);
        bad_digest.artifacts.rootfs.sha256 = "AB".repeat(32);
        let err = parse_value(&to_json_value(&bad_digest)).unwrap_err();
        assert!(matches!(err, EnvironmentError::ManifestInvalid { .. }));
        assert!(err.to_string().contains("rootfs.ext4"), "{err}");

        let mut no_modules = sample_manifest(10);
        no_modules.modules.clear();
        assert!(parse_value(&to_json_value(&no_modules)).is_err());

        assert!(parse_value(&to_json_value(&sample_manifest(0))).is_err());
    }

    #[test]
    fn describes_checks_name_version_and_platform() {
        let entry = lookup("debian:12").unwrap();
        let manifest = sample_manifest(10);
        assert!(manifest.describes(entry, PLATFORM).is_ok());
        assert!(manifest
            .describes(lookup("debian:12-base").unwrap(), PLATFORM)
            .is_err());
        assert!(manifest.describes(entry, "linux-aarch64").is_err());
        let mut old = manifest;
        old.version = "0.9.0".to_owned();
        assert!(old
            .describes(entry, PLATFORM)
            .unwrap_err()
            .contains("0.9.0"));
    }
}

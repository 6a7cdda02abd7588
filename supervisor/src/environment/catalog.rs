//! The environment catalog: the environments pyro knows how to build.

use super::error::EnvironmentError;

/// The platform every catalog entry targets (the cache's platform directory).
pub const PLATFORM: &str = "linux-x86_64";

/// The Debian suite the environments are built from.
pub const DEBIAN_SUITE: &str = "bookworm";

/// One environment pyro can build and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The name users type, e.g. `debian:12`.
    pub name: &'static str,
    /// The environment's version; a change means a new cache directory.
    pub version: &'static str,
    /// One-line description shown by `pyro env list`.
    pub description: &'static str,
    /// The distribution, e.g. `debian`.
    pub distribution: &'static str,
    /// The distribution's version, e.g. `12`.
    pub distribution_version: &'static str,
    /// Packages advertised to users as present.
    pub default_packages: &'static [&'static str],
    /// Packages passed to mmdebstrap `--include` on top of the minbase variant.
    pub included_packages: &'static [&'static str],
}

impl CatalogEntry {
    /// The cache directory name: the name with ':' replaced by '_', then `-<version>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name.replace(':', "_"), self.version)
    }
}

static CATALOG: [CatalogEntry; 3] = [
    CatalogEntry {
        name: "debian:12",
        version: "1.0.0",
        description: "Debian 12 environment with Git preinstalled for common agent workflows.",
        distribution: "debian",
        distribution_version: "12",
        default_packages: &["bash", "coreutils", "git"],
        included_packages: &["git", "ca-certificates", "procps"],
    },
    CatalogEntry {
        name: "debian:12-base",
        version: "1.0.0",
        description: "Minimal Debian 12 environment for shell and core Unix tooling.",
        distribution: "debian",
        distribution_version: "12",
        default_packages: &["bash", "coreutils"],
        included_packages: &["procps"],
    },
    CatalogEntry {
        name: "debian:12-build",
        version: "1.0.0",
        description: "Debian 12 environment with Git and common build tools preinstalled.",
        distribution: "debian",
        distribution_version: "12",
        default_packages: &[
            "bash",
            "coreutils",
            "git",
            "gcc",
            "make",
            "cmake",
            "python3",
        ],
        included_packages: &[
            "git",
            "ca-certificates",
            "procps",
            "gcc",
            "libc6-dev",
            "make",
            "cmake",
            "python3",
        ],
    },
];

/// Every environment in the catalog, in display order.
pub fn catalog() -> &'static [CatalogEntry] {
    &CATALOG
}

/// Finds a catalog entry by its exact name.
pub fn lookup(name: &str) -> Result<&'static CatalogEntry, EnvironmentError> {
    catalog()
        .iter()
        .find(|entry| entry.name == name)
        .ok_or_else(|| EnvironmentError::UnknownEnvironment {
            name: name.to_owned(),
            known: catalog()
                .iter()
                .map(|entry| entry.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Finds the catalog entry whose cache directory name is `dir_name`.
pub(crate) fn lookup_by_dir_name(dir_name: &str) -> Option<&'static CatalogEntry> {
    catalog().iter().find(|entry| entry.dir_name() == dir_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_catalog_entry() {
        for entry in catalog() {
            assert_eq!(lookup(entry.name).unwrap(), entry);
        }
        assert_eq!(
            lookup("debian:12").unwrap().default_packages,
            ["bash", "coreutils", "git"]
        );
    }

    #[test]
    fn unknown_name_lists_the_known_names() {
        let err = lookup("x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment 'x'; expected one of: debian:12, debian:12-base, debian:12-build"
        );
        assert!(lookup("debian:12 ").is_err(), "lookup must be exact");
    }

    #[test]
    fn dir_names_follow_the_cache_layout_and_are_unique() {
        let names: Vec<String> = catalog().iter().map(CatalogEntry::dir_name).collect();
        assert_eq!(
            names,
            [
                "debian_12-1.0.0",
                "debian_12-base-1.0.0",
                "debian_12-build-1.0.0"
            ]
        );
        for name in &names {
            assert_eq!(
                lookup_by_dir_name(name)
                    .map(CatalogEntry::dir_name)
                    .as_ref(),
                Some(name)
            );
        }
        assert!(lookup_by_dir_name("debian_12-0.9.0").is_none());
    }

    #[test]
    fn every_entry_is_a_debian_12_minbase_with_procps() {
        for entry in catalog() {
            assert_eq!(entry.version, "1.0.0");
            assert_eq!(
                (entry.distribution, entry.distribution_version),
                ("debian", "12")
            );
            assert!(entry.included_packages.contains(&"procps"));
            assert!(entry.default_packages.starts_with(&["bash", "coreutils"]));
        }
    }
}

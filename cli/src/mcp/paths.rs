//! Host path confinement: `seed_path`, `source_path`, `output_path` and
//! secret `file_path` arguments must resolve inside one of the allowed roots
//! (`--allow-path`, default the current directory).
//!
//! The supervisor reads and writes host paths as the user running pyro, so
//! an MCP client must not be able to name arbitrary ones (the reference let
//! a model pull any readable directory into a sandbox, or create files
//! anywhere). The rules:
//!
//! - Roots are resolved (symlinks, `..`) once, at startup; each must be an
//!   existing directory.
//! - A relative argument is taken relative to the first root.
//! - An input path (seed, sync source) must exist; it is resolved entirely
//!   (every symlink followed) and the result must lie under a root.
//! - An output path must not exist yet (not even as a dangling symlink). Its
//!   longest existing ancestor is resolved; the components after it must be
//!   plain names (no `..`, no dangling symlink), and the result must lie
//!   under a root. So `root/link-to-etc/x`, `root/../x` and
//!   `root/dangling-link` are all refused.
//! - The resolved path is what is sent to the supervisor, so a symlink
//!   checked here is not followed again there. (A path swapped for a
//!   symlink between the check and the supervisor's use is not caught; only
//!   someone who can already write inside a root can do that.)

use std::io;
use std::path::{Component, Path, PathBuf};

use super::errors::ToolError;

/// The directories host paths must stay in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRoots {
    roots: Vec<PathBuf>,
}

impl AllowedRoots {
    /// Resolves `dirs` (relative ones against `cwd`); `[cwd]` when empty.
    pub fn new(dirs: &[PathBuf], cwd: &Path) -> Result<Self, String> {
        let wanted: Vec<PathBuf> = if dirs.is_empty() {
            vec![cwd.to_owned()]
        } else {
            dirs.iter().map(|d| cwd.join(d)).collect()
        };
        let mut roots = Vec::with_capacity(wanted.len());
        for dir in wanted {
            let real = std::fs::canonicalize(&dir)
                .map_err(|err| format!("--allow-path {}: {err}", dir.display()))?;
            if !real.is_dir() {
                return Err(format!("--allow-path {} is not a directory", dir.display()));
            }
            if !roots.contains(&real) {
                roots.push(real);
            }
        }
        Ok(Self { roots })
    }

    /// The resolved roots.
    #[cfg(test)]
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The roots as one line, for messages.
    pub fn describe(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks an existing host path to read (`seed_path`, `source_path`);
    /// returns it resolved.
    pub fn input(&self, argument: &str, path: &str) -> Result<String, ToolError> {
        let wanted = self.absolute(argument, path)?;
        let real = std::fs::canonicalize(&wanted).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                ToolError::invalid(format!("{argument} {path} does not exist"))
            } else {
                ToolError::invalid(format!("{argument} {path} cannot be resolved: {err}"))
            }
        })?;
        self.inside(argument, path, real)
    }

    /// Checks a host path to create (`output_path`); returns it resolved.
    pub fn output(&self, argument: &str, path: &str) -> Result<String, ToolError> {
        let wanted = self.absolute(argument, path)?;
        if std::fs::symlink_metadata(&wanted).is_ok() {
            return Err(ToolError::invalid_with_hint(
                format!("{argument} {path} already exists"),
                "choose a path that does not exist yet; existing files are never overwritten",
            ));
        }
        let real = resolve_missing(&wanted)
            .map_err(|why| ToolError::invalid(format!("{argument} {path} {why}")))?;
        self.inside(argument, path, real)
    }

    fn absolute(&self, argument: &str, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::invalid(format!("{argument} must not be empty")));
        }
        if path.contains('\0') {
            return Err(ToolError::invalid(format!(
                "{argument} contains a NUL byte"
            )));
        }
        let base = self.roots.first().map_or(Path::new("/"), PathBuf::as_path);
        Ok(base.join(path))
    }

    fn inside(&self, argument: &str, path: &str, real: PathBuf) -> Result<String, ToolError> {
        if !self.roots.iter().any(|root| real.starts_with(root)) {
            let shown = if Path::new(path) == real {
                path.to_owned()
            } else {
                format!("{path} (resolved to {})", real.display())
            };
            return Err(ToolError::invalid_with_hint(
                format!(
                    "{argument} {shown} is outside the allowed roots ({})",
                    self.describe()
                ),
                "use a path inside an allowed root, or restart `pyro mcp serve` with --allow-path DIR",
            ));
        }
        real.into_os_string().into_string().map_err(|_| {
            ToolError::invalid(format!(
                "{argument} {path} is not valid UTF-8 once resolved"
            ))
        })
    }
}

/// Resolves a path that does not exist: its longest existing ancestor
/// fully, the rest as plain names.
fn resolve_missing(path: &Path) -> Result<PathBuf, String> {
    let components: Vec<Component<'_>> = path.components().collect();
    for split in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
        match std::fs::canonicalize(&prefix) {
            Ok(mut real) => {
                if !real.is_dir() {
                    return Err(format!(
                        "is under {}, which is not a directory",
                        prefix.display()
                    ));
                }
                for component in &components[split..] {
                    match component {
                        Component::Normal(name) => real.push(name),
                        Component::CurDir => {}
                        _ => {
                            return Err("uses `..` below a directory that does not exist".to_owned())
                        }
                    }
                }
                return Ok(real);
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                if err.kind() == io::ErrorKind::NotFound
                    && std::fs::symlink_metadata(&prefix).is_ok()
                {
                    return Err(format!(
                        "goes through {}, a symbolic link that points nowhere",
                        prefix.display()
                    ));
                }
            }
            Err(err) => return Err(format!("cannot be resolved: {err}")),
        }
    }
    Err("cannot be resolved".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::symlink;

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        base: PathBuf,
    }

    /// base/{root/{repo/file, link-out -> ../outside, link-in -> repo,
    /// dangling -> ../nowhere}, other/, outside/secret}
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["root/repo", "other", "outside"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("root/repo/file"), "x").unwrap();
        std::fs::write(base.join("outside/secret"), "s").unwrap();
        symlink("../outside", base.join("root/link-out")).unwrap();
        symlink("repo", base.join("root/link-in")).unwrap();
        symlink("../nowhere", base.join("root/dangling")).unwrap();
        Fixture { _dir: dir, base }
    }

    fn roots(f: &Fixture, dirs: &[&str]) -> AllowedRoots {
        let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
        AllowedRoots::new(&dirs, &f.base).unwrap()
    }

    fn message(err: ToolError) -> String {
        err.0.message
    }

    #[test]
    fn default_root_is_the_current_directory() {
        let f = fixture();
        let r = AllowedRoots::new(&[], &f.base.join("root")).unwrap();
        assert_eq!(r.roots(), [f.base.join("root")]);
        assert!(AllowedRoots::new(&["missing".into()], &f.base).is_err());
        let not_dir = AllowedRoots::new(&["root/repo/file".into()], &f.base).unwrap_err();
        assert!(not_dir.contains("is not a directory"), "{not_dir}");
    }

    #[test]
    fn inputs_inside_a_root_are_resolved() {
        let f = fixture();
        let r = roots(&f, &["root"]);
        let repo = f.base.join("root/repo").display().to_string();
        assert_eq!(r.input("seed_path", "repo").unwrap(), repo);
        assert_eq!(r.input("seed_path", &repo).unwrap(), repo);
        // A symlink inside the root to inside the root is fine.
        assert_eq!(r.input("seed_path", "link-in").unwrap(), repo);
        // `..` that comes back inside is fine too.
        assert_eq!(r.input("seed_path", "repo/../repo/.").unwrap(), repo);
    }

    #[test]
    fn inputs_escaping_by_dotdot_or_symlink_are_refused() {
        let f = fixture();
        let r = roots(&f, &["root"]);
        let err = message(r.input("seed_path", "../outside").unwrap_err());
        assert!(
            err.starts_with("seed_path ../outside (resolved to "),
            "{err}"
        );
        assert!(err.contains("is outside the allowed roots ("), "{err}");
        assert!(
            err.contains(&f.base.join("root").display().to_string()),
            "{err}"
        );
        let err = r.input("source_path", "link-out/secret").unwrap_err();
        assert!(message(err).contains("/outside/secret) is outside the allowed roots"));
        let err = r.input("seed_path", "/etc").unwrap_err();
        assert_eq!(err.0.code, pyro_sdk::api::ErrorCode::InvalidArgument);
        assert!(err.0.hint.unwrap().contains("--allow-path"));
        assert!(message(r.input("seed_path", "/etc").unwrap_err())
            .starts_with("seed_path /etc is outside the allowed roots"));
        let err = message(r.input("seed_path", "nope").unwrap_err());
        assert_eq!(err, "seed_path nope does not exist");
        // A prefix that is not a path component does not count.
        std::fs::create_dir_all(f.base.join("rootx")).unwrap();
        assert!(r
            .input("seed_path", f.base.join("rootx").to_str().unwrap())
            .is_err());
    }

    #[test]
    fn several_roots_are_all_allowed() {
        let f = fixture();
        let r = roots(&f, &["root", "other", "root"]);
        assert_eq!(r.roots().len(), 2);
        let other = f.base.join("other").display().to_string();
        assert_eq!(r.input("seed_path", &other).unwrap(), other);
        // Relative paths are relative to the first root.
        assert!(r.input("seed_path", "repo").is_ok());
        assert!(r.input("seed_path", "../outside").is_err());
        assert!(r.describe().contains(", "));
    }

    #[test]
    fn outputs_need_a_parent_inside_a_root() {
        let f = fixture();
        let r = roots(&f, &["root"]);
        let out = f.base.join("root/repo/out.tar").display().to_string();
        assert_eq!(r.output("output_path", "repo/out.tar").unwrap(), out);
        // Missing directories below an existing one are fine (plain names).
        assert_eq!(
            r.output("output_path", "repo/new/dir/x").unwrap(),
            f.base.join("root/repo/new/dir/x").display().to_string()
        );
        // Through a symlink to inside the root.
        assert_eq!(
            r.output("output_path", "link-in/y").unwrap(),
            f.base.join("root/repo/y").display().to_string()
        );
        // Through a symlink to outside, or `..` out.
        assert!(message(r.output("output_path", "link-out/x").unwrap_err())
            .contains("is outside the allowed roots"));
        assert!(
            message(r.output("output_path", "../outside/x").unwrap_err())
                .contains("is outside the allowed roots")
        );
        assert!(message(r.output("output_path", "/tmp/x.tar").unwrap_err())
            .contains("is outside the allowed roots"));
        // `..` below a missing directory cannot be judged.
        assert!(message(
            r.output("output_path", "repo/new/../../../outside/x")
                .unwrap_err()
        )
        .contains("uses `..` below a directory that does not exist"));
    }

    #[test]
    fn outputs_that_exist_or_hide_behind_dangling_links_are_refused() {
        let f = fixture();
        let r = roots(&f, &["root"]);
        assert!(
            message(r.output("output_path", "repo/file").unwrap_err()).ends_with("already exists")
        );
        // A dangling symlink would make the supervisor write where it points.
        assert!(
            message(r.output("output_path", "dangling").unwrap_err()).ends_with("already exists")
        );
        assert!(message(r.output("output_path", "dangling/x").unwrap_err())
            .contains("a symbolic link that points nowhere"));
        assert!(message(r.output("output_path", "repo/file/x").unwrap_err())
            .contains("which is not a directory"));
        assert!(message(r.output("output_path", "").unwrap_err()).contains("must not be empty"));
    }
}

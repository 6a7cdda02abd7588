//! Guest paths given by users, confined to `/workspace`.
//!
//! A path may be relative (to `/workspace`) or absolute under it. `.` and
//! repeated slashes are normalized away; `..` is refused outright rather
//! than collapsed, so nothing a caller writes can name a path outside the
//! tree. The result is absolute and has no trailing slash.

/// The workspace tree in the guest.
pub const ROOT: &str = "/workspace";

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "workspace path {path:?} {reason}; give a path relative to /workspace or absolute under it"
)]
pub struct PathError {
    /// The path given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Resolves `input` to an absolute path under `/workspace`.
pub fn resolve(input: &str) -> Result<String, PathError> {
    let refuse = |reason| PathError {
        path: input.to_owned(),
        reason,
    };
    if input.contains('\0') {
        return Err(refuse("contains a NUL byte"));
    }
    let (base, rest) = match input.strip_prefix('/') {
        Some(rest) => {
            let inside = rest == "workspace" || rest.starts_with("workspace/");
            if !inside {
                return Err(refuse("is outside /workspace"));
            }
            (ROOT, rest.strip_prefix("workspace").unwrap_or(rest))
        }
        None => (ROOT, input),
    };
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse("contains `..`")),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}/{}", parts.join("/")))
    }
}

/// The part of an absolute workspace path below `/workspace` (`""` for the
/// root itself).
pub fn relative(absolute: &str) -> &str {
    absolute
        .strip_prefix(ROOT)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_paths_resolve_under_the_root() {
        assert_eq!(resolve("").unwrap(), "/workspace");
        assert_eq!(resolve(".").unwrap(), "/workspace");
        assert_eq!(resolve("src/note.txt").unwrap(), "/workspace/src/note.txt");
        assert_eq!(resolve("./src//a/").unwrap(), "/workspace/src/a");
        assert_eq!(resolve("/workspace").unwrap(), "/workspace");
        assert_eq!(resolve("/workspace/").unwrap(), "/workspace");
        assert_eq!(resolve("/workspace/x/y").unwrap(), "/workspace/x/y");
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "/etc/passwd",
            "../etc",
            "a/../../b",
            "/workspacex/a",
            "/workspace/..",
            "a\0b",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
        let err = resolve("/etc").unwrap_err();
        assert!(err.to_string().contains("outside /workspace"));
    }

    #[test]
    fn relative_strips_the_root() {
        assert_eq!(relative("/workspace"), "");
        assert_eq!(relative("/workspace/a/b"), "a/b");
    }
}

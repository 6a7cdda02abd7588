//! Guest paths: parsing a requested path into components, printing paths,
//! and putting a symlink's target into a path textually (for suggestions in
//! error messages; symlinks are never followed when reading the disks).

use super::DiskError;

/// An absolute guest path, as components without `.`, `..` or empty names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GuestPath {
    components: Vec<String>,
}

impl GuestPath {
    /// Parses an absolute guest path, collapsing `.` and repeated or trailing
    /// slashes; `..`, relative paths and nul bytes are refused.
    pub(super) fn parse(raw: &str) -> Result<Self, DiskError> {
        let invalid = |reason| DiskError::InvalidPath {
            path: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Err(invalid(
                "is empty; pass an absolute guest path such as /workspace",
            ));
        }
        if raw.contains('\0') {
            return Err(invalid("contains a nul byte; pass an absolute guest path"));
        }
        if !raw.starts_with('/') {
            return Err(invalid(
                "is not absolute; pass an absolute guest path such as /workspace/src",
            ));
        }
        let mut components = Vec::new();
        for name in raw.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    return Err(invalid(
                        "contains `..`; pass a normalized absolute path without `..`",
                    ))
                }
                name => components.push(name.to_owned()),
            }
        }
        Ok(Self { components })
    }

    /// The components, outermost first.
    pub(super) fn components(&self) -> &[String] {
        &self.components
    }

    /// The normalized path (`/` for the root).
    pub(super) fn display(&self) -> String {
        display(&self.components)
    }

    /// The path of the first `count` components.
    pub(super) fn prefix(&self, count: usize) -> String {
        display(&self.components[..count.min(self.components.len())])
    }
}

/// Prints components as an absolute path.
fn display<S: AsRef<str>>(components: &[S]) -> String {
    if components.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for name in components {
        out.push('/');
        out.push_str(name.as_ref());
    }
    out
}

/// The path of `name` inside the directory `dir` (an absolute path).
pub(super) fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Where a symlink found at `link` (the first components of an absolute
/// path) points, with `rest` appended: the target is read relative to the
/// link's directory, `..` taken textually (the guest would do the same when
/// no further symlinks are involved).
pub(super) fn substitute(link: &[String], target: &str, rest: &[String]) -> String {
    let mut out: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link[..link.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .collect()
    };
    for name in target.split('/').chain(rest.iter().map(String::as_str)) {
        match name {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => out.push(name),
        }
    }
    display(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_collapses_dots_and_slashes() {
        let path = GuestPath::parse("//workspace/./a b//c/").unwrap();
        assert_eq!(path.components(), ["workspace", "a b", "c"]);
        assert_eq!(path.display(), "/workspace/a b/c");
        assert_eq!(path.prefix(1), "/workspace");
        assert_eq!(GuestPath::parse("/").unwrap().display(), "/");
        assert_eq!(GuestPath::parse("/.").unwrap().components().len(), 0);
    }

    #[test]
    fn parse_refuses_parent_relative_empty_and_nul() {
        for raw in ["/workspace/../etc", "/..", "workspace/a", "", "/a\0b"] {
            let err = GuestPath::parse(raw).unwrap_err();
            assert!(
                matches!(err, DiskError::InvalidPath { ref path, .. } if path == raw),
                "{raw:?}: {err}"
            );
        }
        let message = GuestPath::parse("/a/../b").unwrap_err().to_string();
        assert_eq!(
            message,
            "the path \"/a/../b\" contains `..`; pass a normalized absolute path without `..`"
        );
    }

    #[test]
    fn child_joins_under_root_and_below() {
        assert_eq!(child("/", "etc"), "/etc");
        assert_eq!(child("/etc", "a b"), "/etc/a b");
    }

    #[test]
    fn substitute_resolves_relative_and_absolute_targets() {
        let link = |s: &str| GuestPath::parse(s).unwrap().components().to_vec();
        let rest = vec!["x86_64-linux-gnu".to_owned(), "libc.so.6".to_owned()];
        assert_eq!(
            substitute(&link("/lib"), "usr/lib", &rest),
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(
            substitute(&link("/workspace/a/l"), "../../etc", &[]),
            "/etc"
        );
        assert_eq!(
            substitute(&link("/w/l"), "/opt/./x/", &rest[..1]),
            "/opt/x/x86_64-linux-gnu"
        );
        assert_eq!(substitute(&link("/l"), "../../..", &[]), "/");
    }
}

//! Host programs a build runs: finding them, checking for them up front, and
//! running them with errors that say what failed and what to do about it.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use crate::environment::error::EnvironmentError;

/// How many stderr lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 6;

/// Directories searched after `$PATH`: non-root users often lack the sbin
/// directories where mkfs.ext4, resize2fs and depmod live.
const EXTRA_SEARCH_DIRS: [&str; 4] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"];

/// A host program and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The program name.
    pub name: &'static str,
    /// The Debian package to install for it.
    pub package: &'static str,
}

pub(crate) const MMDEBSTRAP: Tool = Tool {
    name: "mmdebstrap",
    package: "mmdebstrap",
};
pub(crate) const APT_GET: Tool = Tool {
    name: "apt-get",
    package: "apt",
};
pub(crate) const APT_CACHE: Tool = Tool {
    name: "apt-cache",
    package: "apt",
};
pub(crate) const DPKG_DEB: Tool = Tool {
    name: "dpkg-deb",
    package: "dpkg",
};
pub(crate) const LZ4: Tool = Tool {
    name: "lz4",
    package: "lz4",
};
pub(crate) const DEPMOD: Tool = Tool {
    name: "depmod",
    package: "kmod",
};
pub(crate) const MKFS_EXT4: Tool = Tool {
    name: "mkfs.ext4",
    package: "e2fsprogs",
};
pub(crate) const RESIZE2FS: Tool = Tool {
    name: "resize2fs",
    package: "e2fsprogs",
};
pub(crate) const E2FSCK: Tool = Tool {
    name: "e2fsck",
    package: "e2fsprogs",
};
pub(crate) const FAKEROOT: Tool = Tool {
    name: "fakeroot",
    package: "fakeroot",
};
pub(crate) const FAKECHROOT: Tool = Tool {
    name: "fakechroot",
    package: "fakechroot",
};
pub(crate) const NEWUIDMAP: Tool = Tool {
    name: "newuidmap",
    package: "uidmap",
};
pub(crate) const TAR: Tool = Tool {
    name: "tar",
    package: "tar",
};
pub(crate) const SH: Tool = Tool {
    name: "sh",
    package: "dash",
};

/// Tools every build needs, root or not.
pub(crate) const ALWAYS_REQUIRED: [Tool; 9] = [
    MMDEBSTRAP, APT_GET, APT_CACHE, DPKG_DEB, LZ4, DEPMOD, MKFS_EXT4, RESIZE2FS, E2FSCK,
];

/// Extra tools a non-root build needs (plus fakechroot or newuidmap, see rootfs).
pub(crate) const UNPRIVILEGED_REQUIRED: [Tool; 3] = [FAKEROOT, TAR, SH];

/// Absolute paths of the tools a build uses, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct ToolPaths {
    found: Vec<(Tool, PathBuf)>,
}

impl ToolPaths {
    /// Resolves every tool, or fails listing all that are missing and the
    /// apt-get line that installs them.
    pub(crate) fn resolve(tools: &[Tool]) -> Result<Self, EnvironmentError> {
        let mut found = Vec::new();
        let mut missing: Vec<Tool> = Vec::new();
        for tool in tools {
            match find_program(tool.name) {
                Some(path) => found.push((*tool, path)),
                None if !missing.contains(tool) => missing.push(*tool),
                None => {}
            }
        }
        if missing.is_empty() {
            return Ok(Self { found });
        }
        let mut packages: Vec<String> = missing.iter().map(|t| t.package.to_owned()).collect();
        packages.sort();
        packages.dedup();
        Err(EnvironmentError::MissingTools {
            tools: missing.iter().map(|t| t.name.to_owned()).collect(),
            packages,
        })
    }

    /// The path of a resolved tool (its bare name if it was not resolved,
    /// which then fails at spawn time with a clear error).
    pub(crate) fn path(&self, tool: Tool) -> PathBuf {
        self.found
            .iter()
            .find(|(candidate, _)| *candidate == tool)
            .map_or_else(|| PathBuf::from(tool.name), |(_, path)| path.clone())
    }

    /// A command for a resolved tool.
    pub(crate) fn command(&self, tool: Tool) -> Command {
        Command::new(self.path(tool))
    }
}

/// Finds an executable by name in `$PATH` and then the sbin directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_SEARCH_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What to tell the user when a command fails.
#[derive(Debug, Clone)]
pub(crate) enum FailureHint {
    /// The command downloads from Debian mirrors.
    Network {
        /// The main mirror URL.
        mirror: String,
        /// The security mirror URL.
        security_mirror: String,
    },
    /// Any other advice.
    Text(&'static str),
}

impl FailureHint {
    fn render(&self, stderr: &str) -> String {
        match self {
            Self::Network {
                mirror,
                security_mirror,
            } => {
                if looks_like_network_failure(stderr) {
                    format!(
                        "the Debian mirrors look unreachable: check network access to {mirror} \
                         and {security_mirror}, or point PYRO_DEBIAN_MIRROR and \
                         PYRO_DEBIAN_SECURITY_MIRROR at reachable mirrors"
                    )
                } else {
                    format!(
                        "if downloads failed, check network access to {mirror} and \
                         {security_mirror} (PYRO_DEBIAN_MIRROR and PYRO_DEBIAN_SECURITY_MIRROR \
                         override them); run with RUST_LOG=debug for the full output"
                    )
                }
            }
            Self::Text(text) => (*text).to_owned(),
        }
    }
}

fn looks_like_network_failure(stderr: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "Temporary failure resolving",
        "Could not resolve",
        "Failed to fetch",
        "Unable to connect",
        "Connection failed",
        "Connection timed out",
        "Network is unreachable",
        "Could not connect",
        "No route to host",
    ];
    MARKERS.iter().any(|marker| stderr.contains(marker))
}

/// Describes how a process ended, e.g. "exit status 1" or "killed by signal 9".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown exit status".to_owned(),
    }
}

/// The last few non-empty lines of `stderr`, joined with " | ".
pub(crate) fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return "no error output".to_owned();
    }
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join(" | ")
}

/// The error for a command that ran and failed.
pub(crate) fn command_failed(
    label: &str,
    status: ExitStatus,
    stderr: &[u8],
    hint: &FailureHint,
) -> EnvironmentError {
    let stderr = String::from_utf8_lossy(stderr);
    EnvironmentError::CommandFailed {
        command: label.to_owned(),
        status: describe_status(status),
        stderr_tail: stderr_tail(&stderr),
        hint: hint.render(&stderr),
    }
}

/// Runs `command` to completion with stdin closed, capturing its output.
///
/// `label` names it in errors (e.g. "mmdebstrap"). A non-zero exit is an
/// error quoting the end of its stderr and `hint`. Its stderr is also logged
/// at debug level, since tools like mmdebstrap narrate their progress there.
///
/// Output goes to unlinked temporary files rather than pipes: if this process
/// dies mid-build, an orphaned mmdebstrap then finishes and cleans up its
/// mounts normally instead of dying of SIGPIPE with proc/sys still mounted
/// inside the build directory.
pub(crate) fn run(
    label: &str,
    command: &mut Command,
    hint: &FailureHint,
) -> Result<Output, EnvironmentError> {
    tracing::debug!(command = %display_command(command), "running");
    let started = std::time::Instant::now();
    let spawn_error = |source| EnvironmentError::CommandSpawn {
        command: label.to_owned(),
        source,
    };
    let mut stdout_file = tempfile::tempfile().map_err(spawn_error)?;
    let mut stderr_file = tempfile::tempfile().map_err(spawn_error)?;
    let status = command
        .stdin(Stdio::null())
        .stdout(stdout_file.try_clone().map_err(spawn_error)?)
        .stderr(stderr_file.try_clone().map_err(spawn_error)?)
        .status()
        .map_err(spawn_error)?;
    let output = Output {
        status,
        stdout: read_from_start(&mut stdout_file).map_err(spawn_error)?,
        stderr: read_from_start(&mut stderr_file).map_err(spawn_error)?,
    };
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        tracing::debug!(command = label, "{line}");
    }
    tracing::debug!(
        command = label,
        status = %describe_status(output.status),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "finished"
    );
    if output.status.success() {
        Ok(output)
    } else {
        Err(command_failed(label, output.status, &output.stderr, hint))
    }
}

fn read_from_start(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A shell-like rendering of a command for logs.
pub(crate) fn display_command(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_listed_with_their_packages() {
        let absent = Tool {
            name: "pyro-no-such-tool",
            package: "pyro-pkg",
        };
        let also_absent = Tool {
            name: "pyro-no-such-tool-2",
            package: "pyro-pkg",
        };
        let err = ToolPaths::resolve(&[SH, absent, also_absent, absent]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing tools needed to build environments: pyro-no-such-tool, pyro-no-such-tool-2; \
             install them with: apt-get install -y pyro-pkg"
        );
        let found = ToolPaths::resolve(&[SH]).unwrap();
        assert!(found.path(SH).is_absolute());
    }

    #[test]
    fn failures_name_the_command_status_stderr_tail_and_hint() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do echo line$i >&2; done; exit 3",
        ]);
        let err = run("demo", &mut command, &FailureHint::Text("try again")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "demo failed (exit status 3): line3 | line4 | line5 | line6 | line7 | line8; try again"
        );
    }

    #[test]
    fn network_failures_get_a_mirror_hint() {
        let hint = FailureHint::Network {
            mirror: "http://m.example/debian".to_owned(),
            security_mirror: "http://m.example/debian-security".to_owned(),
        };
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'W: Failed to fetch http://m.example/x  Temporary failure resolving' >&2; exit 1",
        ]);
        let err = run("apt-get update", &mut command, &hint)
            .unwrap_err()
            .to_string();
        assert!(err.contains("look unreachable"), "{err}");
        assert!(err.contains("PYRO_DEBIAN_MIRROR"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_naming_it() {
        let mut command = Command::new("/nonexistent/pyro-tool");
        let err = run("pyro-tool", &mut command, &FailureHint::Text("")).unwrap_err();
        assert_eq!(err.to_string(), "failed to run pyro-tool");
    }

    #[test]
    fn stderr_tail_handles_empty_output() {
        assert_eq!(stderr_tail("\n  \n"), "no error output");
        assert_eq!(stderr_tail("a\n\nb\n"), "a | b");
    }
}

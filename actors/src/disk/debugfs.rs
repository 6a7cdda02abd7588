//! Running `debugfs` read-only on one image: batches of commands on stdin
//! (`-f -`), and `cat` of one file cut short after a prefix.
//!
//! debugfs exits 0 even when a command fails, so failures are recognized
//! from what it prints: the open error on stderr, a missing listing on
//! stdout. It is always run with `-c` (catastrophic mode: read-only, the
//! allocation bitmaps are not loaded, which saves ~2 ms per run on a 4 GiB
//! disk) and `LC_ALL=C` so its messages are the ones matched here.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::parse::{parse_batch, Reply, Request};
use super::DiskError;

/// Where debugfs is looked for after `$PATH` (non-root users often lack the
/// sbin directories).
const EXTRA_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// One disk image and what it is to the workspace.
#[derive(Debug, Clone, Copy)]
pub(super) struct Image<'a> {
    /// The host path.
    pub path: &'a Path,
    /// `workspace disk` or `environment image`, for messages.
    pub role: &'static str,
}

/// The output of a batch.
#[derive(Debug)]
pub(super) struct Batch {
    /// One reply per request.
    pub replies: Vec<Reply>,
    /// Lines debugfs printed on stderr, without its version banner.
    pub errors: Vec<String>,
}

impl Image<'_> {
    /// Runs `requests` in one debugfs process.
    pub(super) fn batch(&self, requests: &[Request]) -> Result<Batch, DiskError> {
        if requests.is_empty() {
            return Ok(Batch {
                replies: Vec::new(),
                errors: Vec::new(),
            });
        }
        let mut script = String::new();
        for request in requests {
            script.push_str(&request.command());
            script.push('\n');
        }
        let mut child = self
            .command()?
            .args(["-f", "-"])
            .arg(self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let stdin = child.stdin.take();
        // Written from a second thread: debugfs answers while it reads, and
        // both pipes could fill up.
        let (written, output) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || match stdin {
                Some(mut stdin) => stdin.write_all(script.as_bytes()),
                None => Err(io::Error::other("no stdin pipe")),
            });
            let output = child.wait_with_output();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread failed")));
            (written, output)
        });
        let output = output.map_err(|source| self.spawn_error(source))?;
        let errors = self.errors(&output.stderr)?;
        written.map_err(|source| self.spawn_error(source))?;
        let replies =
            parse_batch(&output.stdout, requests).map_err(|message| DiskError::Debugfs {
                role: self.role,
                image: self.path.to_owned(),
                message: format!("unexpected output: {message}"),
            })?;
        Ok(Batch { replies, errors })
    }

    /// The first `want` bytes of the regular file at inode `ino`, streamed
    /// from `cat` and cut there (the rest is never read).
    pub(super) fn cat_prefix(&self, ino: u32, want: u64, path: &str) -> Result<Vec<u8>, DiskError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut child = self
            .command()?
            .arg("-R")
            .arg(format!("cat <{ino}>"))
            .arg(self.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.spawn_error(source))?;
        let mut bytes = Vec::with_capacity(usize::try_from(want.min(1 << 20)).unwrap_or(0));
        let read = match child.stdout.take() {
            Some(stdout) => stdout.take(want).read_to_end(&mut bytes),
            None => Err(io::Error::other("no stdout pipe")),
        };
        // The pipe is closed by now; stop debugfs if it is still writing.
        // It is this function's own child, waited for right after.
        let _ = child.kill();
        let mut stderr = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        child.wait().map_err(|source| self.spawn_error(source))?;
        read.map_err(|source| self.spawn_error(source))?;
        let errors = self.errors(&stderr)?;
        if (bytes.len() as u64) < want {
            return Err(DiskError::Debugfs {
                role: self.role,
                image: self.path.to_owned(),
                message: format!(
                    "reading {path} stopped after {} of {want} bytes ({})",
                    bytes.len(),
                    if errors.is_empty() {
                        "debugfs said nothing".to_owned()
                    } else {
                        errors.join("; ")
                    }
                ),
            });
        }
        Ok(bytes)
    }

    /// A debugfs command for this image, once the image is known to exist.
    fn command(&self) -> Result<Command, DiskError> {
        if !self.path.is_file() {
            return Err(DiskError::ImageMissing {
                role: self.role,
                image: self.path.to_owned(),
            });
        }
        let mut command = Command::new(program()?);
        command
            .arg("-c")
            .env("LC_ALL", "C")
            .env("DEBUGFS_PAGER", "__none__")
            .env("PAGER", "__none__");
        Ok(command)
    }

    /// stderr lines without the banner; an open failure is an error.
    fn errors(&self, stderr: &[u8]) -> Result<Vec<String>, DiskError> {
        let text = String::from_utf8_lossy(stderr);
        let lines: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !is_banner(line))
            .map(str::to_owned)
            .collect();
        if let Some(line) = lines.iter().find(|line| {
            line.contains("while trying to open") || line.contains("Filesystem not open")
        }) {
            let message = line
                .trim_start_matches("debugfs: ")
                .replace(&*self.path.to_string_lossy(), "")
                .replace(" while trying to open ", "")
                .trim()
                .to_owned();
            return Err(DiskError::Open {
                role: self.role,
                image: self.path.to_owned(),
                message,
            });
        }
        Ok(lines)
    }

    fn spawn_error(&self, source: io::Error) -> DiskError {
        DiskError::Spawn {
            image: self.path.to_owned(),
            source,
        }
    }
}

/// `debugfs 1.47.0 (5-Feb-2023)` and the catastrophic-mode notice.
fn is_banner(line: &str) -> bool {
    line.strip_prefix("debugfs ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        || line.starts_with("catastrophic mode")
}

/// The debugfs executable, found once.
pub(super) fn program() -> Result<&'static Path, DiskError> {
    static PROGRAM: OnceLock<Option<PathBuf>> = OnceLock::new();
    PROGRAM
        .get_or_init(find_program)
        .as_deref()
        .ok_or(DiskError::DebugfsMissing)
}

fn find_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("debugfs"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_lines_are_recognized() {
        assert!(is_banner("debugfs 1.47.0 (5-Feb-2023)"));
        assert!(is_banner(
            "catastrophic mode - not reading inode or group bitmaps"
        ));
        assert!(!is_banner("debugfs: Bad magic number in super-block"));
        assert!(!is_banner("/upper: File not found by ext2_lookup"));
    }

    #[test]
    fn open_failures_name_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.img");
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        let image = Image {
            path: &path,
            role: "environment image",
        };
        let err = image
            .batch(&[Request::List(super::super::parse::Spec::Ino(2))])
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, DiskError::Open { .. }), "{message}");
        assert!(message.contains("junk.img"), "{message}");
        assert!(message.contains("Bad magic number"), "{message}");

        let missing = dir.path().join("missing.img");
        let image = Image {
            path: &missing,
            role: "workspace disk",
        };
        let err = image.cat_prefix(12, 10, "/x").unwrap_err();
        assert!(matches!(err, DiskError::ImageMissing { .. }), "{err}");
        assert!(err.to_string().starts_with("the workspace disk "), "{err}");
    }
}

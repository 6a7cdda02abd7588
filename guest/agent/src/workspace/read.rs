//! `ReadFile`: streams the start of a regular file.
//!
//! Only regular files are read, and a symlink is refused rather than
//! followed (also when one is swapped in after the check: the file is
//! opened with `O_NOFOLLOW`). Up to `max_bytes` are sent in data chunks;
//! the summary gives the file's size and whether the rest was cut.

use std::io::{self, Read};

use pyro_guest_protocol::{FileSummary, GuestErrorKind, ReadFileRequest, CHUNK_BYTES};

use super::files::{self, kind_of};
use super::paths::{self, Resolved};
use super::transfer::{send_data, Reply};
use super::{fail, io_failure, wrong_type, Failure};

/// Streams up to `request.max_bytes` of `request.path` on `reply`.
pub fn read_file<R: Reply>(
    request: &ReadFileRequest,
    reply: &mut R,
) -> Result<FileSummary, Failure> {
    let path = paths::absolute(&request.path, "file")?;
    match paths::resolve(&path)? {
        Resolved::Found(meta) if meta.is_file() => {}
        Resolved::Found(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(&path)
                .map(|t| format!(" (to {})", t.display()))
                .unwrap_or_default();
            return Err(wrong_type(format!(
                "{} is a symlink{target}; file reads do not follow symlinks, read the target path instead",
                path.display()
            )));
        }
        Resolved::Found(meta) => {
            return Err(wrong_type(format!(
                "{} is a {}, not a regular file; list it instead",
                path.display(),
                kind_of(&meta).as_str()
            )))
        }
        Resolved::Missing { .. } => {
            return Err(fail(
                GuestErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ))
        }
    }
    let mut file = files::open_nofollow(&path)
        .map_err(|err| io_failure(&format!("opening {}", path.display()), &err))?;
    let opened = file
        .metadata()
        .map_err(|err| io_failure(&format!("reading {}", path.display()), &err))?;
    if !opened.is_file() {
        return Err(wrong_type(format!(
            "{} stopped being a regular file while it was opened",
            path.display()
        )));
    }
    let size_bytes = opened.len();
    let mut remaining = request.max_bytes;
    let mut bytes_sent = 0u64;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut at_end = false;
    while remaining > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match file.read(&mut buffer[..want]) {
            Ok(0) => {
                at_end = true;
                break;
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(io_failure(&format!("reading {}", path.display()), &err)),
        };
        send_data(reply, &buffer[..n])?;
        bytes_sent += n as u64;
        remaining -= n as u64;
    }
    // Cut when bytes are left: by the size at open, or (for a file that
    // grew meanwhile) by one more byte being there.
    let truncated = if at_end {
        false
    } else if bytes_sent < size_bytes {
        true
    } else {
        let mut probe = [0u8; 1];
        matches!(file.read(&mut probe), Ok(1))
    };
    Ok(FileSummary {
        size_bytes,
        bytes_sent,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_guest_protocol::Response;

    fn read(path: &std::path::Path, max_bytes: u64) -> Result<(Vec<u8>, FileSummary), Failure> {
        let mut sent: Vec<Response> = Vec::new();
        let summary = read_file(
            &ReadFileRequest {
                path: path.to_string_lossy().into_owned(),
                max_bytes,
            },
            &mut sent,
        )?;
        let data = sent
            .into_iter()
            .flat_map(|r| match r {
                Response::Data(data) => data,
                other => panic!("{other:?}"),
            })
            .collect();
        Ok((data, summary))
    }

    #[test]
    fn reads_whole_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();

        let (data, summary) = read(&path, 1 << 20).unwrap();
        assert_eq!(data, content);
        assert_eq!(summary.size_bytes, 200_000);
        assert_eq!(summary.bytes_sent, 200_000);
        assert!(!summary.truncated);

        let (data, summary) = read(&path, 100_000).unwrap();
        assert_eq!(data, &content[..100_000]);
        assert_eq!(summary.bytes_sent, 100_000);
        assert!(summary.truncated);

        // Exactly the size: not truncated.
        let (_, summary) = read(&path, 200_000).unwrap();
        assert!(!summary.truncated);

        let (data, summary) = read(&path, 0).unwrap();
        assert!(data.is_empty());
        assert!(summary.truncated);

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let (data, summary) = read(&empty, 10).unwrap();
        assert!(data.is_empty());
        assert!(!summary.truncated);
    }

    #[test]
    fn symlinks_directories_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("secret", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();

        let err = read(&dir.path().join("link"), 10).unwrap_err();
        let error = err.guest_error().unwrap();
        assert_eq!(error.kind, GuestErrorKind::WrongType);
        assert!(
            error.message.contains("is a symlink (to secret)"),
            "{}",
            error.message
        );
        assert!(error.message.contains("do not follow symlinks"));

        let err = read(&dir.path().join("sub"), 10).unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::WrongType);
        let err = read(&dir.path().join("nope"), 10).unwrap_err();
        assert_eq!(err.guest_error().unwrap().kind, GuestErrorKind::NotFound);
    }
}

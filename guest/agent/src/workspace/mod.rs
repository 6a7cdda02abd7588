//! Workspace operations: archives in and out, manifests, listings, file
//! reads, transactional changes and sync.
//!
//! Every operation works on the paths its request names, resolved without
//! following any symlink, so each is tested on host temporary directories.
//! The operations never see the connection: they read uploads through
//! [`transfer::UploadSource`] and send frames through [`transfer::Reply`];
//! [`serve`] wires them to a connection and turns their outcome into the
//! terminal frame.
//!
//! # Layout
//!
//! - [`paths`]: request and archive-member paths, symlink-free resolution.
//! - [`files`]: small filesystem helpers (kinds, times, renames).
//! - [`transfer`]: uploads in, data chunks out.
//! - [`txn`]: staging directories and the rollback journal.
//! - [`walk`]: sorted, symlink-free tree walks.
//! - one module per operation: [`put`], [`get`], [`manifest`], [`list`],
//!   [`read`], [`apply`].

pub mod apply;
pub mod files;
pub mod get;
pub mod list;
pub mod manifest;
pub mod paths;
pub mod put;
pub mod read;
#[cfg(test)]
mod testutil;
pub mod transfer;
pub mod txn;
pub mod walk;

use std::io;
use std::time::Duration;

use pyro_guest_protocol::{GuestError, GuestErrorKind, Request, Response};

use crate::server::{Channel, Connection};
use transfer::{UploadEnd, UploadReader};

/// How long the agent waits for the next upload frame before giving up.
const UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an operation did not complete.
#[derive(Debug)]
pub enum Failure {
    /// Reported to the host as [`Response::Error`].
    Report(GuestError),
    /// The connection broke; there is nobody to report to.
    Channel(io::Error),
}

impl From<GuestError> for Failure {
    fn from(error: GuestError) -> Self {
        Self::Report(error)
    }
}

#[cfg(test)]
impl Failure {
    /// The guest error, if this failure is one (tests and callers that
    /// want the kind).
    pub fn guest_error(&self) -> Option<&GuestError> {
        match self {
            Self::Report(error) => Some(error),
            Self::Channel(_) => None,
        }
    }
}

/// A failure of `kind` with `message`.
pub(crate) fn fail(kind: GuestErrorKind, message: impl Into<String>) -> Failure {
    Failure::Report(GuestError {
        kind,
        message: message.into(),
    })
}

/// A malformed request or archive.
pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    fail(GuestErrorKind::InvalidRequest, message)
}

/// A request refused for safety.
pub(crate) fn refused(message: impl Into<String>) -> Failure {
    fail(GuestErrorKind::Refused, message)
}

/// A path with the wrong type.
pub(crate) fn wrong_type(message: impl Into<String>) -> Failure {
    fail(GuestErrorKind::WrongType, message)
}

/// A filesystem error while `action` (for example `creating /a/b`), with the
/// kind taken from the OS error.
pub(crate) fn io_failure(action: &str, err: &io::Error) -> Failure {
    let kind = match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => GuestErrorKind::NoSpace,
        Some(libc::ENOENT) => GuestErrorKind::NotFound,
        _ => GuestErrorKind::Io,
    };
    fail(kind, format!("{action} failed: {}", describe_io(err)))
}

/// An OS error as lowercase text (`no such file or directory (os error 2)`).
pub(crate) fn describe_io(err: &io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Runs one workspace request on `conn` and sends its terminal frame.
pub(crate) fn serve<S: Channel>(conn: &mut Connection<S>, request: Request) -> io::Result<()> {
    let outcome = match request {
        Request::PutArchive(req) => {
            let done = with_upload(conn, |upload| put::put_archive(&req, upload));
            crate::flush_data_disk();
            done.map(Response::ArchiveDone)
        }
        Request::ApplyChanges(req) => {
            let done = with_upload(conn, |upload| apply::apply_changes(&req, upload));
            crate::flush_data_disk();
            done.map(Response::ChangesApplied)
        }
        Request::GetArchive(req) => get::get_archive(&req, conn).map(Response::ArchiveDone),
        Request::Manifest(req) => manifest::manifest(&req, conn, manifest::HashCache::global())
            .map(Response::ManifestDone),
        Request::ListPath(req) => list::list_path(&req, conn).map(Response::ListDone),
        Request::ReadFile(req) => read::read_file(&req, conn).map(Response::FileDone),
        Request::Sync => {
            nix::unistd::sync();
            Ok(Response::Done)
        }
        _ => Err(invalid("not a workspace operation")),
    };
    match outcome {
        Ok(terminal) => conn.send(&terminal),
        Err(Failure::Report(error)) => conn.send(&Response::Error(error)),
        Err(Failure::Channel(err)) => Err(err),
    }
}

/// Runs `op` on the upload that follows the request, then reads the upload
/// to its end (even when `op` failed early, so the host never writes into a
/// closed connection) and decides what to report.
fn with_upload<S: Channel, T>(
    conn: &mut Connection<S>,
    op: impl FnOnce(&mut UploadReader<'_, S>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let stream = conn.stream_mut();
    stream
        .set_read_timeout(Some(UPLOAD_IDLE_TIMEOUT))
        .map_err(Failure::Channel)?;
    let mut upload = UploadReader::new(stream);
    let result = op(&mut upload);
    let end = upload.drain();
    conn.stream_mut()
        .set_read_timeout(None)
        .map_err(Failure::Channel)?;
    match end {
        UploadEnd::Complete => result,
        UploadEnd::HostGone(err) => Err(Failure::Channel(err)),
        UploadEnd::Malformed(message) => Err(invalid(message)),
    }
}

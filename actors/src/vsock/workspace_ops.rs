//! Workspace operations on the host end of a guest connection.
//!
//! Each method consumes a handshaken [`GuestConnection`] (one operation per
//! connection), sends its request, streams any upload as
//! [`Upload::Chunk`] frames ending with [`Upload::End`], and reads the
//! answer up to its terminal frame. A guest [`Response::Error`] becomes
//! [`ActorError::Guest`] with the guest's kind and message.
//!
//! Every frame is awaited for at most [`IDLE_TIMEOUT`]; a whole operation
//! has no limit of its own (a big archive takes as long as it takes), so
//! callers that need one wrap the call in `tokio::time::timeout`. When the
//! upload source fails, the connection is dropped without
//! [`Upload::End`], and the guest changes nothing.

use std::time::Duration;

use pyro_guest_protocol::{
    ApplyChangesRequest, ApplySummary, ArchiveSummary, EntryKind, GetArchiveRequest,
    ListPathRequest, ManifestEntry, ManifestRequest, ManifestSummary, PathEntry, PutArchiveRequest,
    ReadFileRequest, Request, Response, Upload, CHUNK_BYTES,
};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::GuestConnection;
use crate::error::{ActorError, Result};

/// The longest wait for the next frame, in either direction.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A fetched archive: what the path was, and the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveExport {
    /// A file, a directory or a symlink.
    pub kind: EntryKind,
    /// Members and bytes.
    pub summary: ArchiveSummary,
}

/// A whole tree manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeManifest {
    /// Every entry below the root, in walk order.
    pub entries: Vec<ManifestEntry>,
    /// Totals, with how much the guest's hash cache saved.
    pub summary: ManifestSummary,
}

/// A listing of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathListing {
    /// What the listed path is.
    pub kind: EntryKind,
    /// The path itself, or a directory's contents.
    pub entries: Vec<PathEntry>,
}

/// The start of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// Up to `max_bytes` of it.
    pub data: Vec<u8>,
    /// Its size when the guest opened it.
    pub size_bytes: u64,
    /// Whether it holds more than `data`.
    pub truncated: bool,
}

impl GuestConnection {
    /// Uploads the tar archive read from `source` and has the guest merge
    /// it into `request.destination`, atomically.
    pub async fn put_archive<R: AsyncRead + Unpin>(
        mut self,
        request: PutArchiveRequest,
        source: R,
    ) -> Result<ArchiveSummary> {
        const DURING: &str = "extracting an archive";
        self.send_within(&Request::PutArchive(request), DURING)
            .await?;
        self.upload(source, DURING).await?;
        match self.recv_within(IDLE_TIMEOUT, DURING).await? {
            Response::ArchiveDone(summary) => Ok(summary),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Streams the tar archive of `request.path` into `sink`.
    pub async fn get_archive<W: AsyncWrite + Unpin>(
        mut self,
        request: GetArchiveRequest,
        mut sink: W,
    ) -> Result<ArchiveExport> {
        const DURING: &str = "fetching an archive";
        self.send_within(&Request::GetArchive(request), DURING)
            .await?;
        let kind = match self.recv_within(IDLE_TIMEOUT, DURING).await? {
            Response::ArchiveStarted { kind } => kind,
            other => return Err(refusal(DURING, other)),
        };
        let mut received = 0u64;
        loop {
            match self.recv_within(IDLE_TIMEOUT, DURING).await? {
                Response::Data(data) => {
                    sink.write_all(&data)
                        .await
                        .map_err(|err| ActorError::host_io("writing", "the archive sink", err))?;
                    received += data.len() as u64;
                }
                Response::ArchiveDone(summary) => {
                    sink.flush()
                        .await
                        .map_err(|err| ActorError::host_io("writing", "the archive sink", err))?;
                    if summary.archive_bytes != received {
                        return Err(ActorError::UnexpectedFrame {
                            during: DURING,
                            got: format!(
                                "the end of a {} byte archive after {received} bytes",
                                summary.archive_bytes
                            ),
                        });
                    }
                    return Ok(ArchiveExport { kind, summary });
                }
                other => return Err(refusal(DURING, other)),
            }
        }
    }

    /// Lists every entry below `request.root`, with content hashes.
    pub async fn manifest(mut self, request: ManifestRequest) -> Result<TreeManifest> {
        const DURING: &str = "reading a manifest";
        self.send_within(&Request::Manifest(request), DURING)
            .await?;
        let mut entries = Vec::new();
        loop {
            match self.recv_within(IDLE_TIMEOUT, DURING).await? {
                Response::ManifestBatch(batch) => entries.extend(batch),
                Response::ManifestDone(summary) => return Ok(TreeManifest { entries, summary }),
                other => return Err(refusal(DURING, other)),
            }
        }
    }

    /// Describes `request.path`, or lists a directory's contents.
    pub async fn list_path(mut self, request: ListPathRequest) -> Result<PathListing> {
        const DURING: &str = "listing a path";
        self.send_within(&Request::ListPath(request), DURING)
            .await?;
        let mut entries = Vec::new();
        loop {
            match self.recv_within(IDLE_TIMEOUT, DURING).await? {
                Response::PathEntries(batch) => entries.extend(batch),
                Response::ListDone(summary) => {
                    return Ok(PathListing {
                        kind: summary.kind,
                        entries,
                    })
                }
                other => return Err(refusal(DURING, other)),
            }
        }
    }

    /// Reads up to `request.max_bytes` of a regular file.
    pub async fn read_file(mut self, request: ReadFileRequest) -> Result<FileContent> {
        const DURING: &str = "reading a file";
        let max_bytes = request.max_bytes;
        self.send_within(&Request::ReadFile(request), DURING)
            .await?;
        let mut data = Vec::new();
        loop {
            match self.recv_within(IDLE_TIMEOUT, DURING).await? {
                Response::Data(chunk) => {
                    if (data.len() + chunk.len()) as u64 > max_bytes {
                        return Err(ActorError::UnexpectedFrame {
                            during: DURING,
                            got: format!("more than the {max_bytes} bytes asked for"),
                        });
                    }
                    data.extend_from_slice(&chunk);
                }
                Response::FileDone(summary) => {
                    return Ok(FileContent {
                        data,
                        size_bytes: summary.size_bytes,
                        truncated: summary.truncated,
                    })
                }
                other => return Err(refusal(DURING, other)),
            }
        }
    }

    /// Uploads the tar of new file contents read from `source` and has the
    /// guest write them and delete `request.deletes`, all or nothing.
    pub async fn apply_changes<R: AsyncRead + Unpin>(
        mut self,
        request: ApplyChangesRequest,
        source: R,
    ) -> Result<ApplySummary> {
        const DURING: &str = "applying changes";
        self.send_within(&Request::ApplyChanges(request), DURING)
            .await?;
        self.upload(source, DURING).await?;
        match self.recv_within(IDLE_TIMEOUT, DURING).await? {
            Response::ChangesApplied(summary) => Ok(summary),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Has the guest flush its filesystems.
    pub async fn sync(mut self) -> Result<()> {
        const DURING: &str = "syncing the guest";
        self.send_within(&Request::Sync, DURING).await?;
        match self.recv_within(IDLE_TIMEOUT, DURING).await? {
            Response::Done => Ok(()),
            other => Err(refusal(DURING, other)),
        }
    }

    /// Sends `source` as upload chunks, then the end marker. The guest reads
    /// an upload to its end even when it already failed, so a failed send
    /// means the connection broke; if the guest said why before it went, its
    /// error is returned instead.
    async fn upload<R: AsyncRead + Unpin>(
        &mut self,
        mut source: R,
        during: &'static str,
    ) -> Result<()> {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            let filled = fill(&mut source, &mut buffer)
                .await
                .map_err(|err| ActorError::host_io("reading", "the upload source", err))?;
            if filled > 0 {
                let chunk = Upload::Chunk(buffer[..filled].to_vec());
                if let Err(err) = self.send_within(&chunk, during).await {
                    return Err(self.reason_for(err).await);
                }
            }
            if filled < buffer.len() {
                break;
            }
        }
        match self.send_within(&Upload::End, during).await {
            Ok(()) => Ok(()),
            Err(err) => Err(self.reason_for(err).await),
        }
    }

    /// After a failed send: the guest's error frame if one is waiting,
    /// else `err`.
    async fn reason_for(&mut self, err: ActorError) -> ActorError {
        match self
            .recv_within::<Response>(Duration::from_millis(500), "reading the guest's error")
            .await
        {
            Ok(Response::Error(error)) => ActorError::Guest {
                kind: error.kind,
                message: error.message,
            },
            _ => err,
        }
    }

    async fn send_within<T: Serialize>(&mut self, message: &T, during: &'static str) -> Result<()> {
        tokio::time::timeout(IDLE_TIMEOUT, self.send(message))
            .await
            .map_err(|_| ActorError::ChannelTimeout {
                during,
                seconds: IDLE_TIMEOUT.as_secs(),
            })?
    }
}

/// Reads until `buffer` is full or `source` ends; returns the bytes read.
async fn fill<R: AsyncRead + Unpin>(source: &mut R, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// The error for a frame that is not the expected answer: the guest's
/// own error, or an unexpected frame.
fn refusal(during: &'static str, got: Response) -> ActorError {
    match got {
        Response::Error(error) => ActorError::Guest {
            kind: error.kind,
            message: error.message,
        },
        other => ActorError::UnexpectedFrame {
            during,
            got: other.name().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests;

//! The host side of the guest's "I am ready" call.
//!
//! The host listens on `<vsock socket>_<READY_PORT>` before the VM boots. The
//! sidecar forwards the guest's connection to CID 2 there, and the agent sends
//! one [`GuestNotice`]. Polling `CONNECT` from the host during boot instead
//! wedged the channel in 2 of 78 boots (see host-facts), so the host never
//! does that.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pyro_guest_protocol::{body_len, decode, GuestNotice};
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;

use crate::error::{ActorError, Result};

/// How long a connected guest has to send its notice.
const NOTICE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound ready socket.
#[derive(Debug)]
pub struct ReadyListener {
    listener: UnixListener,
    path: PathBuf,
}

impl ReadyListener {
    /// Binds `path` (replacing a stale socket) with mode 0600.
    pub fn bind(path: &Path) -> Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(ActorError::host_io("removing the stale socket", path, err)),
        }
        let listener = UnixListener::bind(path)
            .map_err(|err| ActorError::host_io("listening on", path, err))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| ActorError::host_io("restricting", path, err))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next well-formed notice; peers that send garbage or
    /// nothing are dropped and waiting goes on.
    pub async fn next_notice(&self) -> Result<GuestNotice> {
        loop {
            let (mut stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|err| ActorError::host_io("accepting on", &self.path, err))?;
            let read = tokio::time::timeout(NOTICE_READ_TIMEOUT, async {
                let mut header = [0u8; 4];
                stream.read_exact(&mut header).await.ok()?;
                let len = body_len(header).ok()?;
                let mut body = vec![0u8; len];
                stream.read_exact(&mut body).await.ok()?;
                decode::<GuestNotice>(&body).ok()
            })
            .await;
            match read {
                Ok(Some(notice)) => return Ok(notice),
                Ok(None) => {
                    tracing::warn!(socket = %self.path.display(), "dropped a malformed guest notice");
                }
                Err(_) => {
                    tracing::warn!(socket = %self.path.display(), "a guest notice connection stayed silent");
                }
            }
        }
    }
}

impl Drop for ReadyListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

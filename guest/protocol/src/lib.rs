//! The wire contract between the pyro host and the guest agent.
//!
//! Everything that crosses the VM boundary is defined here, and nothing here
//! depends on an async runtime, so the guest side (a small static binary) and
//! the host side (tokio) share one definition.
//!
//! # A connection, step by step
//!
//! 1. The host connects to the VM's hybrid-vsock Unix socket, writes
//!    `CONNECT <AGENT_PORT>\n` and reads `OK <port>\n` (host side, not here).
//! 2. The host sends a [`ClientHello`] frame; the agent answers with a
//!    [`ServerHello`] carrying the negotiated version (the highest both
//!    support), or version `0` and closes when there is none.
//! 3. The host sends exactly one [`Request`]. The agent answers with one or
//!    more [`Response`] frames; streamed operations end with a terminal frame
//!    (for exec, [`Response::ExecExited`]).
//!
//! Readiness goes the other way: once the agent listens, it connects to the
//! host on [`READY_PORT`] and sends one [`GuestNotice`]. A fatal boot error
//! in `pyro-init` is sent the same way when the vsock transport is up.
//!
//! # Layout
//!
//! - [`codec`]: frames (u32 little-endian length, then a bincode body) and
//!   the size limit, checked before allocating.
//! - [`messages`]: the request, response and notice enums.
//! - [`handshake`]: the version handshake structs and negotiation.
//! - [`tree`]: tree manifests (entries with content hashes).

pub mod codec;
pub mod handshake;
pub mod messages;
pub mod tree;

pub use codec::{
    body_len, decode, encode, read_frame, write_frame, ProtocolError, MAX_FRAME_BYTES,
};
pub use handshake::{negotiate, ClientHello, ServerHello, MAGIC};
pub use messages::*;
pub use tree::{EntryKind, ManifestEntry};

/// The vsock port the guest agent listens on.
pub const AGENT_PORT: u32 = 1024;

/// The vsock port on the host (CID 2) that the guest connects to when it is
/// ready, or when it fails to boot.
pub const READY_PORT: u32 = 1025;

/// The newest protocol version this crate speaks.
///
/// 1: ping, exec, power-off. 2: workspace operations (archives, manifests,
/// listings, file reads, transactional changes, sync). 3: shells (PTYs)
/// and services.
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest protocol version this crate still speaks. The host and the
/// agent always ship together (the agent rides in every initramfs), so
/// there is no older version to keep.
pub const MIN_PROTOCOL_VERSION: u32 = 3;

/// The largest payload carried in one [`Response::Output`] or data chunk.
///
/// Well under [`MAX_FRAME_BYTES`], so a chunk plus its framing always fits.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Version of the guest agent and init, as shipped with this host build.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

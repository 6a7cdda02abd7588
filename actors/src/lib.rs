//! The actors of the pyro supervisor, and what they drive.
//!
//! Actors are thin shells over plain cores that are tested without an actor
//! system; handlers never panic and return [`ActorError`]s; parents supervise
//! children explicitly through event messages.
//!
//! # Layout
//!
//! - [`vm`]: the VM actor, the `Vmm` backend trait, QEMU and fake backends.
//! - [`vsock`]: the guest channel (client, ready listener) and the bridge
//!   actor with health pings.
//! - [`process`]: child processes tracked by pidfd.
//! - [`error`]: the crate's error type.

pub mod archive;
pub mod diff;
pub mod disk;
pub mod error;
pub mod patch;
pub mod process;
pub mod secrets;
pub mod vm;
pub mod vsock;

pub use error::{ActorError, Result};

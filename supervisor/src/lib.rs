//! The pyro supervisor: the daemon that owns every VM.
//!
//! # Layout
//!
//! - [`environment`]: the environment catalog, the local cache, and building
//!   environments from Debian packages.

pub mod environment;

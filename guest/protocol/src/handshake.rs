//! The version handshake that opens every host-to-agent connection.
//!
//! These two structs are frozen: their layout must never change, because they
//! are what lets two different versions find out that they differ.

use serde::{Deserialize, Serialize};

use crate::codec::ProtocolError;
use crate::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Four bytes that open every hello, so a stray peer is recognised at once.
pub const MAGIC: [u8; 4] = *b"PYRO";

/// The host's opening frame: the versions it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The oldest version the host speaks.
    pub min_version: u32,
    /// The newest version the host speaks.
    pub max_version: u32,
}

impl ClientHello {
    /// The hello this build sends.
    pub fn current() -> Self {
        Self {
            magic: MAGIC,
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
        }
    }
}

/// The agent's answer: the version both will speak, `0` when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The negotiated version, or `0` for none (the agent then closes).
    pub version: u32,
    /// The agent's own version string.
    pub agent_version: String,
}

/// Picks the highest version both sides speak.
pub fn negotiate(ours_min: u32, ours_max: u32, hello: &ClientHello) -> Result<u32, ProtocolError> {
    if hello.magic != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    let version = ours_max.min(hello.max_version);
    if version < ours_min.max(hello.min_version) {
        return Err(ProtocolError::VersionMismatch {
            ours_min,
            ours_max,
            theirs_min: hello.min_version,
            theirs_max: hello.max_version,
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        let hello = ClientHello {
            magic: MAGIC,
            min_version: 1,
            max_version: 5,
        };
        assert_eq!(negotiate(2, 3, &hello).unwrap(), 3);
        assert_eq!(negotiate(1, 9, &hello).unwrap(), 5);
    }

    #[test]
    fn refuses_disjoint_ranges_and_bad_magic() {
        let hello = ClientHello {
            magic: MAGIC,
            min_version: 4,
            max_version: 5,
        };
        assert!(matches!(
            negotiate(1, 3, &hello),
            Err(ProtocolError::VersionMismatch { .. })
        ));
        let stranger = ClientHello {
            magic: *b"HTTP",
            ..ClientHello::current()
        };
        assert!(matches!(
            negotiate(1, 1, &stranger),
            Err(ProtocolError::BadMagic)
        ));
    }
}

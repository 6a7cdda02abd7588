//! Identifiers: 12 lowercase hex characters from the OS's CSPRNG.

use rand::rngs::OsRng;
use rand::RngCore;

/// Length of every pyro id.
pub const ID_LEN: usize = 12;

/// A fresh id, such as `3fa85f6457c1`.
pub fn new_id() -> String {
    let mut bytes = [0u8; ID_LEN / 2];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `id` has the shape of a pyro id.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| is_valid_id(id)));
        assert!(!is_valid_id("ABCDEF123456"));
        assert!(!is_valid_id("abc"));
        assert!(!is_valid_id("../../etc/pa"));
    }
}

//! Identity resolution: which contact a visitor id belongs to.
//!
//! An anonymous visitor's contact id is derived from the visitor id, so every copy of the same
//! event (retried beacon, redelivered queue message, racing consumers) resolves to the same
//! contact without a read-before-write and without a random number.

use sha2::{Digest, Sha256};

/// The contact id an anonymous visitor gets the first time it is seen.
pub fn anonymous_contact_id(workspace: &str, visitor_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"kindling/contact/visitor\0");
    h.update(workspace.as_bytes());
    h.update(b"\0");
    h.update(visitor_id.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(2 + 24);
    id.push_str("c_");
    for b in &digest[..12] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Contact ids as the api accepts them in paths.
pub fn is_valid_contact_id(id: &str) -> bool {
    id.len() == 26
        && id.starts_with("c_")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_visitor_always_maps_to_the_same_contact() {
        let a = anonymous_contact_id("default", "v_12345678");
        assert_eq!(a, anonymous_contact_id("default", "v_12345678"));
        assert!(is_valid_contact_id(&a), "{a}");
    }

    #[test]
    fn workspaces_and_visitors_do_not_collide() {
        let a = anonymous_contact_id("default", "v_12345678");
        assert_ne!(a, anonymous_contact_id("other", "v_12345678"));
        assert_ne!(a, anonymous_contact_id("default", "v_12345679"));
    }

    #[test]
    fn contact_ids_from_paths_are_checked() {
        assert!(!is_valid_contact_id("c_../../etc"));
        assert!(!is_valid_contact_id("' OR 1=1 --"));
    }
}

//! Signed tokens for email open pixels (`/o/{token}.gif`) and tracked links (`/c/{token}`).
//! A token names the message and contact (and, for a link, the destination) and carries an
//! HMAC-SHA256 tag, so a click redirects only where Kindling itself pointed it: no open redirect.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted; anything longer is refused before any decoding work.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// Tag length kept (bytes): 128 bits is plenty against forgery and keeps links short.
const TAG_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// Message id.
    pub m: String,
    /// Contact id.
    pub c: String,
    /// Destination, for click tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
}

// Each token kind signs under its own label, so a token of one kind never verifies as another.
const LINK_LABEL: &[u8] = b"kindling/link/v1\0";
const PREFERENCES_LABEL: &[u8] = b"kindling/preferences/v1\0";

fn tag(key: &[u8], payload: &[u8]) -> [u8; TAG_BYTES] {
    labelled_tag(LINK_LABEL, key, payload)
}

fn labelled_tag(label: &[u8], key: &[u8], payload: &[u8]) -> [u8; TAG_BYTES] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(payload);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
}

pub fn sign(claims: &LinkClaims, key: &[u8]) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag(key, &payload))
    )
}

/// Checks the tag (in constant time) and returns the claims; None for anything forged,
/// truncated or malformed.
pub fn verify(token: &str, key: &[u8]) -> Option<LinkClaims> {
    if token.len() > MAX_TOKEN_CHARS || key.is_empty() {
        return None;
    }
    let (payload, sig) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    if !crate::auth::constant_time_eq(&sig, &tag(key, &payload)) {
        return None;
    }
    let claims: LinkClaims = serde_json::from_slice(&payload).ok()?;
    let url_ok = claims.u.as_deref().is_none_or(|u| {
        let scheme = u.get(..8).unwrap_or(u).to_ascii_lowercase();
        (scheme.starts_with("https://") || scheme.starts_with("http://"))
            && !u.chars().any(char::is_control)
    });
    url_ok.then_some(claims)
}

/// The token of a contact's preference page (`/u/{token}`), carried by every marketing message
/// as its unsubscribe link. Per contact, not per message: one click unsubscribes the person.
pub fn sign_preferences(contact_id: &str, key: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(contact_id),
        URL_SAFE_NO_PAD.encode(labelled_tag(PREFERENCES_LABEL, key, contact_id.as_bytes()))
    )
}

/// The contact a preference token names; None for anything forged or malformed.
pub fn verify_preferences(token: &str, key: &[u8]) -> Option<String> {
    if token.len() > 256 || key.is_empty() {
        return None;
    }
    let (payload, sig) = token.split_once('.')?;
    let contact = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let expected = labelled_tag(PREFERENCES_LABEL, key, &contact);
    if !crate::auth::constant_time_eq(&sig, &expected) {
        return None;
    }
    let contact = String::from_utf8(contact).ok()?;
    crate::identity::is_valid_contact_id(&contact).then_some(contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"link-signing-key-for-tests";

    fn click() -> LinkClaims {
        LinkClaims {
            m: "msg_1".into(),
            c: "c_0123456789abcdef01234567".into(),
            u: Some("https://shop.example/cases/steel".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        assert_eq!(verify(&sign(&click(), KEY), KEY), Some(click()));
    }

    #[test]
    fn forged_or_tampered_tokens_do_not() {
        let t = sign(&click(), KEY);
        assert_eq!(verify(&t, b"another key"), None);
        let mut evil = click();
        evil.u = Some("https://evil.example/".into());
        let forged = format!(
            "{}.{}",
            sign(&evil, KEY).split('.').next().unwrap(),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(verify(&forged, KEY), None);
        for junk in ["", ".", "abc", "a.b.c", "%%%.$$$", &"A".repeat(5000)] {
            assert_eq!(verify(junk, KEY), None, "{junk}");
        }
    }

    #[test]
    fn signed_tokens_cannot_point_at_scripts() {
        let mut c = click();
        c.u = Some("javascript:alert(1)".into());
        assert_eq!(verify(&sign(&c, KEY), KEY), None);
    }

    #[test]
    fn preference_tokens_name_a_contact_and_are_not_link_tokens() {
        let c = "c_0123456789abcdef01234567";
        let t = sign_preferences(c, KEY);
        assert_eq!(verify_preferences(&t, KEY).as_deref(), Some(c));
        assert_eq!(verify_preferences(&t, b"another key"), None);
        assert_eq!(verify(&t, KEY), None);
        assert_eq!(verify_preferences(&sign(&click(), KEY), KEY), None);
        assert_eq!(verify_preferences("", KEY), None);
    }
}

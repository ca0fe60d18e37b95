//! Personal data at rest: sealed with AES-256-GCM and found again through a keyed blind index
//! (HMAC-SHA256), so no email, phone or name is ever stored, queued or logged in plaintext.
//!
//! One master secret per deployment (`KINDLING_PII_KEY`, 32 bytes, base64 or hex) yields two
//! independent keys; the key id travels with every ciphertext so keys can rotate.

use crate::error::Error;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The development key `make dev` and the tests use. A deployment refuses it.
pub const DEV_PII_KEY: &str = "ZGV2LW9ubHktcGlpLWtleS1ub3QtZm9yLXByb2R1Y3Q=";

/// Which kind of personal value a sealed value or index holds. Part of the index input, so an
/// email and a phone with the same text never share an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    Name,
    UserId,
}

impl PiiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Name => "name",
            PiiKind::UserId => "user_id",
        }
    }
}

/// A personal value as it may be stored and queued: ciphertext plus blind index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// `<key id>.<nonce>.<ciphertext>`, base64url.
    pub cipher: String,
    /// Hex HMAC of the normalised value; equal values have equal indexes.
    pub index: String,
}

pub struct PiiKeys {
    key_id: String,
    cipher: Aes256Gcm,
    index_key: [u8; 32],
}

impl PiiKeys {
    /// Builds the keys from the master secret. `allow_dev_key` only under `wrangler dev`.
    pub fn from_secret(secret: &str, key_id: &str, allow_dev_key: bool) -> Result<PiiKeys, Error> {
        let not_configured =
            || Error::NotConfigured("KINDLING_PII_KEY must be 32 bytes, base64 or hex".into());
        if secret == DEV_PII_KEY && !allow_dev_key {
            return Err(Error::NotConfigured(
                "KINDLING_PII_KEY is the development key".into(),
            ));
        }
        let raw = decode_key(secret.trim()).ok_or_else(not_configured)?;
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac =
                <HmacSha256 as Mac>::new_from_slice(&raw).expect("HMAC takes any key length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let enc = derive(b"kindling/pii/encryption/v1");
        Ok(PiiKeys {
            key_id: key_id.to_string(),
            cipher: Aes256Gcm::new_from_slice(&enc).map_err(|_| not_configured())?,
            index_key: derive(b"kindling/pii/blind-index/v1"),
        })
    }

    /// The blind index of an already normalised value.
    pub fn index(&self, kind: PiiKind, normalised: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes any key length");
        mac.update(kind.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(normalised.as_bytes());
        crate::hex(&mac.finalize().into_bytes())
    }

    /// Seals a value. The nonce must be fresh random bytes (the shell supplies them: the core
    /// has no randomness of its own). The kind is bound as associated data, so a phone
    /// ciphertext cannot be passed off as an email.
    pub fn seal(&self, kind: PiiKind, value: &str, normalised: &str, nonce: [u8; 12]) -> Sealed {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: kind.as_str().as_bytes(),
                },
            )
            .unwrap_or_default();
        Sealed {
            cipher: format!(
                "{}.{}.{}",
                self.key_id,
                URL_SAFE_NO_PAD.encode(nonce),
                URL_SAFE_NO_PAD.encode(ct)
            ),
            index: self.index(kind, normalised),
        }
    }

    /// Opens a sealed value written under this key id.
    pub fn open(&self, kind: PiiKind, cipher: &str) -> Result<String, Error> {
        let bad = || Error::Store("sealed value does not open with this key".into());
        let mut parts = cipher.splitn(3, '.');
        let (Some(id), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if id != self.key_id {
            return Err(Error::Store(format!(
                "sealed with key {id}, have {}",
                self.key_id
            )));
        }
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| bad())?;
        let ct = URL_SAFE_NO_PAD.decode(ct).map_err(|_| bad())?;
        if nonce.len() != 12 {
            return Err(bad());
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: kind.as_str().as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD.decode(s).ok()?
    };
    (bytes.len() == 32).then_some(bytes)
}

/// Emails as the index sees them: trimmed and lowercased, so `Zhang@Example.COM ` and
/// `zhang@example.com` find the same contact. Returns None when it is not an email at all.
pub fn normalise_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    ok.then_some(e)
}

/// Phones as the index sees them: digits only with a leading `+`; Chinese mobile numbers
/// (`1[3-9]` + 9 digits) get `+86`. Full-width digits and separators are cleaned.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let mut digits = String::new();
    let mut plus = false;
    for c in raw.trim().chars() {
        let c = match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32)?,
            '＋' => '+',
            c => c,
        };
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '(' | ')' | '.' | '\u{3000}' | '－' => {}
            _ => return None,
        }
    }
    let cn_mobile =
        |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    if plus {
        if let Some(rest) = digits.strip_prefix("86") {
            return cn_mobile(rest).then(|| format!("+{digits}"));
        }
        (8..=15)
            .contains(&digits.len())
            .then(|| format!("+{digits}"))
    } else if cn_mobile(&digits) {
        Some(format!("+86{digits}"))
    } else if let Some(rest) = digits
        .strip_prefix("0086")
        .or_else(|| digits.strip_prefix("86"))
    {
        cn_mobile(rest).then(|| format!("+86{rest}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PiiKeys {
        PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap()
    }

    #[test]
    fn sealed_values_open_and_hide_the_plaintext() {
        let k = keys();
        let s = k.seal(
            PiiKind::Email,
            "Zhang@Example.com",
            "zhang@example.com",
            [7; 12],
        );
        assert!(!s.cipher.contains("Zhang") && !s.cipher.to_lowercase().contains("example"));
        assert!(s.cipher.starts_with("k1."));
        assert_eq!(
            k.open(PiiKind::Email, &s.cipher).unwrap(),
            "Zhang@Example.com"
        );
    }

    #[test]
    fn the_kind_is_bound_to_the_ciphertext() {
        let k = keys();
        let s = k.seal(PiiKind::Phone, "+8613812345678", "+8613812345678", [1; 12]);
        assert!(k.open(PiiKind::Email, &s.cipher).is_err());
    }

    #[test]
    fn equal_values_share_an_index_and_kinds_do_not() {
        let k = keys();
        assert_eq!(
            k.index(PiiKind::Email, "a@b.cn"),
            k.index(PiiKind::Email, "a@b.cn")
        );
        assert_ne!(
            k.index(PiiKind::Email, "a@b.cn"),
            k.index(PiiKind::UserId, "a@b.cn")
        );
        assert_eq!(k.index(PiiKind::Email, "a@b.cn").len(), 64);
    }

    #[test]
    fn another_key_cannot_open_or_match() {
        let other = PiiKeys::from_secret(&"11".repeat(32), "k1", false).unwrap();
        let s = keys().seal(PiiKind::Name, "张伟", "张伟", [3; 12]);
        assert!(other.open(PiiKind::Name, &s.cipher).is_err());
        assert_ne!(other.index(PiiKind::Name, "张伟"), s.index);
    }

    #[test]
    fn bad_or_development_secrets_are_refused_in_production() {
        assert!(PiiKeys::from_secret("short", "k1", false).is_err());
        assert!(PiiKeys::from_secret(DEV_PII_KEY, "k1", false).is_err());
        assert!(PiiKeys::from_secret(&"ab".repeat(32), "k1", false).is_ok());
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalise_email(" Zhang@Example.COM ").as_deref(),
            Some("zhang@example.com")
        );
        for bad in [
            "",
            "no-at",
            "@x.cn",
            "a@nodot",
            "a b@x.cn",
            "a@x.cn@y.cn",
            "a@.cn",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn chinese_mobiles_become_e164() {
        for raw in [
            "13812345678",
            "+86 138 1234 5678",
            "138-1234-5678",
            "１３８１２３４５６７８",
            "008613812345678",
        ] {
            assert_eq!(
                normalise_phone(raw).as_deref(),
                Some("+8613812345678"),
                "{raw}"
            );
        }
        assert_eq!(
            normalise_phone("+1 415 555 0100").as_deref(),
            Some("+14155550100")
        );
        for bad in ["12812345678", "1381234567", "call me", "+86 12345"] {
            assert_eq!(normalise_phone(bad), None, "{bad}");
        }
    }
}

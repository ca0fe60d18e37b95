//! Admin API authentication: bearer tokens compared in constant time.

use crate::error::Error;

/// The token `make dev` uses when `KINDLING_ADMIN_TOKEN` is unset. A deployment whose secret
/// equals it is refused, so the development token can never guard production data.
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";

/// Shortest admin secret accepted on a deployment.
pub const MIN_SECRET_CHARS: usize = 16;

/// Checks an `Authorization` header against the configured secret.
///
/// `allow_dev_token` is true only when the function runs under `wrangler dev`
/// (`KINDLING_ENV=development`).
pub fn check_bearer(
    header: Option<&str>,
    secret: Option<&str>,
    allow_dev_token: bool,
) -> Result<(), Error> {
    let secret = match secret {
        Some(s) if s == DEV_ADMIN_TOKEN && allow_dev_token => s,
        Some(s) if s != DEV_ADMIN_TOKEN && s.chars().count() >= MIN_SECRET_CHARS => s,
        _ => {
            return Err(Error::NotConfigured(
                "the admin token secret KINDLING_ADMIN_TOKEN is missing or too weak".into(),
            ))
        }
    };
    let presented = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Error::Unauthorized("missing bearer token".into()))?;
    if constant_time_eq(presented.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Unauthorized("invalid token".into()))
    }
}

/// `Basic base64(key:)`, as Segment-style sources send their write key, rewritten as
/// `Bearer key`. None for any other header.
pub fn basic_as_bearer(header: &str) -> Option<String> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let key = text.split(':').next()?;
    Some(format!("Bearer {key}"))
}

/// What a token may do. The deployment's admin secret holds every scope; tokens created at
/// `/v1/tokens` hold the ones they were given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    /// Read configuration, contacts (personal data masked), reports.
    #[serde(rename = "read")]
    Read,
    /// Change configuration, ingest events, send messages.
    #[serde(rename = "write")]
    Write,
    /// See personal data in full and export it. Every such read is audited.
    #[serde(rename = "pii:read")]
    PiiRead,
    /// Erase a person's data.
    #[serde(rename = "pii:erase")]
    PiiErase,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::PiiRead, Scope::PiiErase];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::PiiRead => "pii:read",
            Scope::PiiErase => "pii:erase",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Who is calling, as the audit log names them, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `admin` for the deployment secret, the token id otherwise.
    pub actor: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn admin() -> Principal {
        Principal {
            actor: "admin".into(),
            scopes: Scope::ALL.to_vec(),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Ok when the scope is held; a 403 naming the missing scope otherwise.
    pub fn require(&self, scope: Scope) -> Result<(), Error> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            )))
        }
    }
}

/// Created tokens look like `kt_<16 hex id>_<32 hex secret>`; the id finds the row, the
/// secret is checked against its hash.
pub fn split_token(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("kt_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 32)).then_some((id, secret))
}

/// The stored form of a token secret.
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-long-production-secret";

    #[test]
    fn the_right_token_passes() {
        assert!(check_bearer(Some("Bearer a-long-production-secret"), Some(SECRET), false).is_ok());
    }

    #[test]
    fn missing_or_wrong_tokens_are_unauthorized() {
        let e = check_bearer(None, Some(SECRET), false).unwrap_err();
        assert_eq!(e.status(), 401);
        let e = check_bearer(Some("Bearer nope"), Some(SECRET), false).unwrap_err();
        assert_eq!(e.status(), 401);
        let e = check_bearer(Some("Basic a-long-production-secret"), Some(SECRET), false);
        assert_eq!(e.unwrap_err().status(), 401);
        // A prefix of the secret is not the secret.
        let e = check_bearer(Some("Bearer a-long-production"), Some(SECRET), false);
        assert_eq!(e.unwrap_err().status(), 401);
    }

    #[test]
    fn a_deployment_without_a_real_secret_refuses_to_serve() {
        for secret in [None, Some("short"), Some(DEV_ADMIN_TOKEN)] {
            let e = check_bearer(Some("Bearer dev-admin-token"), secret, false).unwrap_err();
            assert_eq!(e.status(), 503, "{secret:?}");
        }
    }

    #[test]
    fn segment_style_basic_auth_carries_the_key() {
        // base64("a-long-production-secret:")
        let h = basic_as_bearer("Basic YS1sb25nLXByb2R1Y3Rpb24tc2VjcmV0Og==").unwrap();
        assert!(check_bearer(Some(&h), Some(SECRET), false).is_ok());
        assert_eq!(basic_as_bearer("Bearer x"), None);
        assert_eq!(basic_as_bearer("Basic %%%"), None);
    }

    #[test]
    fn created_tokens_have_a_strict_shape_and_scopes_are_enforced() {
        let t = format!("kt_{}_{}", "a".repeat(16), "b".repeat(32));
        assert_eq!(
            split_token(&t),
            Some(("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"))
        );
        assert_eq!(split_token("kt_short_x"), None);
        assert_eq!(split_token(SECRET), None);
        let reader = Principal {
            actor: "t1".into(),
            scopes: vec![Scope::Read],
        };
        assert!(reader.require(Scope::Read).is_ok());
        let e = reader.require(Scope::PiiRead).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("pii:read"));
        assert!(Principal::admin().has(Scope::PiiErase));
        assert_eq!(Scope::parse("pii:read"), Some(Scope::PiiRead));
    }

    #[test]
    fn the_dev_token_works_only_in_development() {
        let h = Some("Bearer dev-admin-token");
        assert!(check_bearer(h, Some(DEV_ADMIN_TOKEN), true).is_ok());
    }
}

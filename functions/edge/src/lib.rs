//! The platform side every Kindling function shares: the D1 adapter of the core's store,
//! JSON answers in the one error shape, the request clock and random ids. Nothing here decides
//! anything about marketing; that is the core's job.

pub mod config;
pub mod d1;
pub mod http;
pub mod queue;

use kindling::Millis;

/// The request or invocation time. Shells read the clock once and hand it to the core.
pub fn now() -> Millis {
    Millis(worker::Date::now().as_millis() as i64)
}

/// A random identifier (`prefix` + 32 hex characters) from the platform's CSPRNG.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // The Workers runtime always provides crypto.getRandomValues; failing it is not an input
    // problem, so fall back to the clock rather than panic.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now().0.to_le_bytes());
    }
    format!("{prefix}{}", kindling::hex(&bytes))
}

/// Twelve fresh random bytes, the nonce for sealing one personal value.
pub fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    if getrandom::fill(&mut n).is_err() {
        // Unreachable on Workers; a repeated nonce would be worse than a failed seal, so make
        // this one unique by time and a counter instead.
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        n[..8].copy_from_slice(&now().0.to_le_bytes());
        n[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    n
}

/// The deployment's PII keys, or None when the secret is missing or unusable (logged).
pub fn pii_keys(env: &worker::Env) -> Option<kindling::pii::PiiKeys> {
    let secret = env.secret("KINDLING_PII_KEY").ok()?.to_string();
    let key_id = env
        .var("KINDLING_PII_KEY_ID")
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "k1".into());
    match kindling::pii::PiiKeys::from_secret(&secret, &key_id, is_development(env)) {
        Ok(k) => Some(k),
        Err(e) => {
            worker::console_error!("{e}");
            None
        }
    }
}

/// True only under `wrangler dev` (`KINDLING_ENV=development`).
pub fn is_development(env: &worker::Env) -> bool {
    env.var("KINDLING_ENV")
        .map(|v| v.to_string() == "development")
        .unwrap_or(false)
}

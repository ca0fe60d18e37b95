//! The platform side every Kindling function shares: the D1 adapter of the core's store,
//! JSON answers in the one error shape, the request clock and random ids. Nothing here decides
//! anything about marketing; that is the core's job.

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
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

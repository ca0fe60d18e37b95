//! Kindling's domain core. Everything here is platform-free: no Workers types, no clocks, no
//! network. The functions under `functions/` parse requests, call into this crate, perform the
//! I/O it asks for and answer. Time always arrives as a parameter (`Millis`).

pub mod auth;
pub mod beacon;
pub mod bot;
pub mod consent;
pub mod delivery;
pub mod error;
pub mod event;
pub mod form;
pub mod identity;
pub mod journey;
pub mod lifecycle;
pub mod link;
pub mod order;
pub mod pii;
pub mod pixel;
pub mod preferences;
pub mod privacy;
pub mod scoring;
pub mod segment;
pub mod site;
pub mod store;
pub mod tags;
pub mod template;
pub mod time;

pub use error::{Error, Result};

/// Lowercase hex of `bytes`, without a formatter per byte (it runs for every index and id).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Digits into bytes, then one check that they are text (they are: ASCII), instead of a
    // `String::push` per character.
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
    }
    String::from_utf8(out).unwrap_or_default()
}
pub use time::Millis;

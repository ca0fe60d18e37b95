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
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lowercase hex of `bytes` to `out`, so an id with a prefix is one allocation.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Digits into a buffer, then one check that they are text (they are: ASCII), instead of a
    // `String::push` per character.
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        // Byte by byte: a two-byte slice copy is a call to memcpy in the size-optimised build.
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out.push_str(std::str::from_utf8(&buf[..chunk.len() * 2]).unwrap_or_default());
    }
}
pub use time::Millis;

/// Deterministic numbers for tests that generate many inputs: `next(n)` is below `n`, and
/// every run draws the same sequence, so a failure names an input that reproduces.
#[cfg(test)]
pub(crate) fn test_numbers() -> impl FnMut(u64) -> u64 {
    let mut seed = 0x6b696e646c696e67u64;
    move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for n in [0, 1, 12, 31, 32, 33, 64, 100, bytes.len()] {
            let expected: String = bytes[..n].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(super::hex(&bytes[..n]), expected);
        }
    }
}

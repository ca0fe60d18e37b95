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
use std::borrow::Cow;

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
    /// Client IP addresses: only ever hashed (consent provenance, rate-limit keys).
    Ip,
}

impl PiiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Name => "name",
            PiiKind::UserId => "user_id",
            PiiKind::Ip => "ip",
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
    /// HMAC-SHA256 keyed with the blind-index key, before any input: each index clones it
    /// instead of hashing the key's two pads again.
    index_mac: HmacSha256,
    /// The index of an empty name. Names are sealed with nothing to index (a name finds no
    /// one), so every sealed name carries this same index: it is computed once per key.
    empty_name_index: String,
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
        let index_mac =
            <HmacSha256 as Mac>::new_from_slice(&derive(b"kindling/pii/blind-index/v1"))
                .expect("HMAC takes any key length");
        Ok(PiiKeys {
            key_id: key_id.to_string(),
            cipher: Aes256Gcm::new_from_slice(&enc).map_err(|_| not_configured())?,
            empty_name_index: blind_index(&index_mac, PiiKind::Name, ""),
            index_mac,
        })
    }

    /// The blind index of an already normalised value.
    pub fn index(&self, kind: PiiKind, normalised: &str) -> String {
        if kind == PiiKind::Name && normalised.is_empty() {
            return self.empty_name_index.clone();
        }
        blind_index(&self.index_mac, kind, normalised)
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
        // `<key id>.<nonce>.<ciphertext>`, encoded into one string (no formatter, no
        // intermediate strings).
        let encoded = 16 + (ct.len() * 4).div_ceil(3);
        let mut cipher = String::with_capacity(self.key_id.len() + 2 + encoded);
        cipher.push_str(&self.key_id);
        cipher.push('.');
        URL_SAFE_NO_PAD.encode_string(nonce, &mut cipher);
        cipher.push('.');
        URL_SAFE_NO_PAD.encode_string(&ct, &mut cipher);
        Sealed {
            cipher,
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

/// HMAC of the kind and the normalised value, `keyed` with the blind-index key.
fn blind_index(keyed: &HmacSha256, kind: PiiKind, normalised: &str) -> String {
    let mut mac = keyed.clone();
    mac.update(kind.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(normalised.as_bytes());
    crate::hex(&mac.finalize().into_bytes())
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
/// `zhang@example.com` find the same contact. Full-width forms (`ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ`,
/// as Chinese input methods type them) count as their ASCII letters, and an internationalised
/// domain is stored in its ASCII (`xn--`) form, so `zhang@例子.中国` and
/// `zhang@xn--fsqu00a.xn--fiqs8s` are one address. Returns None when it is not an email at all.
///
/// The domain is not put through the full IDNA mapping (no NFC, no disallowed-character
/// tables): an address typed in two Unicode normal forms may index apart. The local part is
/// kept as typed apart from case, so an internationalised mailbox (`张伟@例子.中国`) stays valid.
pub fn normalise_email(raw: &str) -> Option<String> {
    // Full-width forms are never ASCII: an ASCII address (nearly all) is used as it is.
    let folded: Cow<'_, str> = if raw.is_ascii() {
        raw.into()
    } else {
        raw.chars().map(fold_full_width).collect::<String>().into()
    };
    let e = folded.trim();
    // Every character yields at least one in the result, so a longer input cannot fit in 254
    // bytes; refusing it here also bounds the Punycode work below.
    if e.chars().count() > 254 {
        return None;
    }
    let mut e = e.to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control());
    if !local_ok {
        return None;
    }
    let domain_start = local.len() + 1;
    // An ASCII domain is kept as it is, so the lowercased text is the address (no copy); an
    // internationalised one is replaced by its ASCII form.
    let ascii = match ascii_domain(domain)? {
        Cow::Borrowed(_) => None,
        Cow::Owned(ascii) => Some(ascii),
    };
    if let Some(ascii) = ascii {
        e.truncate(domain_start);
        e.push_str(&ascii);
    }
    (e.len() <= 254).then_some(e)
}

/// Full-width ASCII forms (U+FF01..=U+FF5E) as their ASCII characters, and the ideographic
/// space as a space: both arrive from Chinese, Japanese and Korean input methods.
fn fold_full_width(c: char) -> char {
    match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c),
        '\u{3000}' => ' ',
        c => c,
    }
}

/// A (lowercased) domain as DNS carries it: each label with non-ASCII characters in Punycode
/// behind `xn--`, every label then 1-63 of `a-z 0-9 -` not starting or ending with `-`, at
/// least two labels, at most 253 bytes. The ideographic full stops separate labels too, as
/// they do in IDNA (`．` is already a `.` once full-width forms are folded).
///
/// An ASCII domain (nearly all) is its own ASCII form: it is checked and returned as it is.
fn ascii_domain(domain: &str) -> Option<Cow<'_, str>> {
    if domain.is_ascii() {
        // Only `.` separates ASCII labels (the ideographic full stops are not ASCII).
        let labels_ok = domain.split('.').all(is_dns_label);
        return (labels_ok && domain.contains('.') && domain.len() <= 253)
            .then_some(Cow::Borrowed(domain));
    }
    let mut out = String::with_capacity(domain.len());
    let mut labels = 0;
    for label in domain.split(['.', '\u{3002}', '\u{ff61}']) {
        if labels > 0 {
            out.push('.');
        }
        labels += 1;
        let start = out.len();
        if label.is_ascii() {
            out.push_str(label);
        } else {
            // Punycode writes at least one character per input character.
            if label.chars().count() > 63
                || label.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return None;
            }
            out.push_str("xn--");
            punycode::encode(label, &mut out)?;
        }
        if !is_dns_label(out.get(start..)?) {
            return None;
        }
    }
    (labels >= 2 && out.len() <= 253).then_some(Cow::Owned(out))
}

/// A DNS label: 1-63 of `a-z 0-9 -`, not starting or ending with `-`.
fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The Punycode encoder of RFC 3492 §6.3 (Bootstring with the parameters of §5). Arithmetic is
/// checked: an input that would overflow is refused rather than mis-encoded.
mod punycode {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    const INITIAL_BIAS: u32 = 72;
    const INITIAL_N: u32 = 128;

    /// Appends the encoding of `input` (without the `xn--` prefix) to `out`.
    pub(super) fn encode(input: &str, out: &mut String) -> Option<()> {
        let code_points: Vec<u32> = input.chars().map(u32::from).collect();
        let total = u32::try_from(code_points.len()).ok()?;
        let basic = input.chars().filter(char::is_ascii).count();
        out.extend(input.chars().filter(char::is_ascii));
        let basic = u32::try_from(basic).ok()?;
        if basic > 0 {
            out.push('-');
        }
        let mut n = INITIAL_N;
        let mut delta: u32 = 0;
        let mut bias = INITIAL_BIAS;
        let mut handled = basic;
        while handled < total {
            // The smallest code point not yet handled; there is one while handled < total.
            let m = code_points.iter().copied().filter(|&c| c >= n).min()?;
            delta = delta.checked_add((m - n).checked_mul(handled.checked_add(1)?)?)?;
            n = m;
            for &c in &code_points {
                if c < n {
                    delta = delta.checked_add(1)?;
                }
                if c == n {
                    let mut q = delta;
                    let mut k = BASE;
                    loop {
                        let t = if k <= bias {
                            TMIN
                        } else if k >= bias.saturating_add(TMAX) {
                            TMAX
                        } else {
                            k - bias
                        };
                        if q < t {
                            break;
                        }
                        out.push(digit(t + (q - t) % (BASE - t))?);
                        q = (q - t) / (BASE - t);
                        k = k.checked_add(BASE)?;
                    }
                    out.push(digit(q)?);
                    bias = adapt(delta, handled.checked_add(1)?, handled == basic);
                    delta = 0;
                    handled += 1;
                }
            }
            delta = delta.checked_add(1)?;
            n = n.checked_add(1)?;
        }
        Some(())
    }

    /// The bias adaptation of RFC 3492 §6.1.
    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / DAMP } else { delta / 2 };
        delta = delta.saturating_add(delta / points.max(1));
        let mut k = 0u32;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k = k.saturating_add(BASE);
        }
        k.saturating_add((BASE - TMIN + 1) * delta / (delta + SKEW))
    }

    /// 0-25 are `a`-`z`, 26-35 are `0`-`9`.
    fn digit(d: u32) -> Option<char> {
        match d {
            0..=25 => char::from_u32(u32::from(b'a') + d),
            26..=35 => char::from_u32(u32::from(b'0') + d - 26),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        fn encode(s: &str) -> Option<String> {
            let mut out = String::new();
            super::encode(s, &mut out).map(|()| out)
        }

        /// Sample strings of RFC 3492 §7.1, lowercased as domain labels are.
        #[test]
        fn rfc_3492_samples() {
            for (input, expected) in [
                ("他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
                ("他們爲什麽不說中文", "ihqwctvzc91f659drss3x8bo0yb"),
                (
                    "\u{644}\u{64a}\u{647}\u{645}\u{627}\u{628}\u{62a}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}\u{631}\u{628}\u{64a}\u{61f}",
                    "egbpdaj6bu4bxfgehfvwxn",
                ),
                ("3年b組金八先生", "3b-ww4c5e180e575a65lsy2b"),
                ("安室奈美恵-with-super-monkeys", "-with-super-monkeys-pc58ag80a8qai00g7n9n"),
                ("そのスピードで", "d9juau41awczczp"),
                ("例子", "fsqu00a"),
                ("中国", "fiqs8s"),
                ("bücher", "bcher-kva"),
                ("😀", "e28h"),
            ] {
                assert_eq!(encode(input).as_deref(), Some(expected), "{input}");
            }
        }
    }
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
    fn the_kept_empty_name_index_is_the_computed_one() {
        let k = keys();
        let computed = blind_index(&k.index_mac, PiiKind::Name, "");
        assert_eq!(k.index(PiiKind::Name, ""), computed);
        assert_eq!(k.seal(PiiKind::Name, "张伟", "", [3; 12]).index, computed);
        assert_ne!(k.index(PiiKind::Email, ""), computed);
        assert_ne!(k.index(PiiKind::Name, "张伟"), computed);
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
    fn full_width_forms_and_ideographic_spaces_fold_to_ascii() {
        for raw in [
            "Zhang@Ｅxample．ＣＯＭ",
            "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "\u{3000}Zhang@example.com\u{3000}",
            "zhang@example。com",
            "zhang@example｡com",
        ] {
            assert_eq!(
                normalise_email(raw).as_deref(),
                Some("zhang@example.com"),
                "{raw}"
            );
        }
        assert_eq!(normalise_email("zhang\u{3000}wei@example.com"), None);
    }

    #[test]
    fn internationalised_domains_take_their_ascii_form() {
        for raw in [
            "zhang@例子.中国",
            "Zhang@xn--fsqu00a.xn--fiqs8s",
            "ZHANG@例子。中国",
            "zhang＠例子．中国",
            "zhang@例子.XN--FIQS8S",
        ] {
            assert_eq!(
                normalise_email(raw).as_deref(),
                Some("zhang@xn--fsqu00a.xn--fiqs8s"),
                "{raw}"
            );
        }
        for raw in ["Kunde@bücher.de", "kunde@BÜCHER.DE", "KUNDE@Bücher.De"] {
            assert_eq!(
                normalise_email(raw).as_deref(),
                Some("kunde@xn--bcher-kva.de"),
                "{raw}"
            );
        }
        // An internationalised mailbox keeps its local part (lowercased).
        assert_eq!(
            normalise_email("张伟@例子.中国").as_deref(),
            Some("张伟@xn--fsqu00a.xn--fiqs8s")
        );
    }

    /// ASCII domains are checked in place: exactly as the label-by-label rebuild checked them.
    #[test]
    fn ascii_domains_are_checked_as_when_rebuilt() {
        fn rebuilt(domain: &str) -> Option<String> {
            let mut out = String::new();
            let mut labels = 0;
            for label in domain.split(['.', '\u{3002}', '\u{ff61}']) {
                if labels > 0 {
                    out.push('.');
                }
                labels += 1;
                let start = out.len();
                out.push_str(label);
                let written = &out[start..];
                let ok = (1..=63).contains(&written.len())
                    && written
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !written.starts_with('-')
                    && !written.ends_with('-');
                if !ok {
                    return None;
                }
            }
            (labels >= 2 && out.len() <= 253).then_some(out)
        }
        const PIECES: [&str; 9] = ["a", "b7", "-", ".", "_", " ", "x--y", "中", "z"];
        let mut next = crate::test_numbers();
        let mut domains: Vec<String> = (0..5000)
            .map(|_| {
                (0..next(12))
                    .map(|_| PIECES[next(PIECES.len() as u64) as usize])
                    .collect()
            })
            .filter(|d: &String| d.is_ascii())
            .collect();
        let label_63 = "a".repeat(63);
        domains.extend([
            format!("{label_63}.cn"),
            format!("{label_63}a.cn"),
            format!("{label_63}.{label_63}.{label_63}.{}.cn", "b".repeat(61)),
            format!("{label_63}.{label_63}.{label_63}.{}.cn", "b".repeat(62)),
        ]);
        for d in &domains {
            assert_eq!(ascii_domain(d).map(Cow::into_owned), rebuilt(d), "{d:?}");
        }
    }

    #[test]
    fn malformed_domains_are_refused() {
        let label_63 = "a".repeat(63);
        assert!(normalise_email(&format!("a@{label_63}.cn")).is_some());
        // 254 bytes in all: with the shortest local part, a 252-byte domain.
        let long_domain = format!("{label_63}.{label_63}.{label_63}.{}.cn", "b".repeat(57));
        assert_eq!(long_domain.len(), 252);
        assert!(normalise_email(&format!("a@{long_domain}")).is_some());
        for bad in [
            format!("a@{}.cn", "a".repeat(64)),
            format!("a@{}.cn", "中".repeat(64)),
            // 25 unrelated CJK characters are more than 63 bytes of Punycode.
            format!(
                "a@{}.cn",
                (0..25u32)
                    .filter_map(|i| char::from_u32(0x4e00 + i * 397))
                    .collect::<String>()
            ),
            format!("a@b{long_domain}"),
            "a@b..cn".into(),
            "a@b。。cn".into(),
            "a@-b.cn".into(),
            "a@b-.cn".into(),
            "a@b.cn.".into(),
            "a@b_c.cn".into(),
            "a@b c.cn".into(),
            "a@例\u{a0}子.cn".into(),
            "a@例子\u{0}.cn".into(),
            "a@例子@中国.cn".into(),
            "a@例子".into(),
        ] {
            assert_eq!(normalise_email(&bad), None, "{bad}");
        }
    }

    #[test]
    fn normalised_emails_normalise_to_themselves() {
        for raw in [
            " Zhang@Example.COM ",
            "ｚｈａｎｇ＠例子．中国",
            "Ünal@Bücher.de",
            "ΣΊΣΥΦΟΣ@example.gr",
        ] {
            let once = normalise_email(raw).unwrap();
            assert_eq!(
                normalise_email(&once).as_deref(),
                Some(once.as_str()),
                "{raw}"
            );
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

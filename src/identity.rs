//! Identity resolution: which contact a visitor id belongs to.
//!
//! An anonymous visitor's contact id is derived from the visitor id, so every copy of the same
//! event (retried beacon, redelivered queue message, racing consumers) resolves to the same
//! contact without a read-before-write and without a random number.

use crate::event::Claims;
use crate::pii::{normalise_email, normalise_phone, PiiKeys, PiiKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Trait names that carry personal data. They never reach properties or attributes in
/// plaintext: email, phone and name are sealed as claims, the rest are dropped.
pub const PERSONAL_TRAITS: [&str; 11] = [
    "email",
    "phone",
    "mobile",
    "name",
    "first_name",
    "last_name",
    "firstName",
    "lastName",
    "address",
    "birthday",
    "id_number",
];

/// Removes personal-data keys from event properties: an email or phone under `props` would
/// otherwise reach the queue and D1 in plaintext. Identifiers belong in identify calls, where
/// they are sealed.
/// `name` stays: on events it names a thing (a page, a webinar), not a person.
pub fn scrub_personal(properties: &mut Map<String, Value>) {
    // One walk over the (few) properties rather than a search per personal key; the map is
    // only rebuilt when it holds one (almost never).
    let keep = |k: &str| k == "name" || !is_personal(k);
    if !properties.keys().all(|k| keep(k)) {
        properties.retain(|k, _| keep(k));
    }
}

/// `PERSONAL_TRAITS.contains(&key)`, by first letter and then at most two comparisons: every
/// property of every event is checked, and most keys start with none of these letters.
fn is_personal(key: &str) -> bool {
    match key.as_bytes().first() {
        Some(b'e') => key == "email",
        Some(b'p') => key == "phone",
        Some(b'm') => key == "mobile",
        Some(b'n') => key == "name",
        Some(b'f') => key == "first_name" || key == "firstName",
        Some(b'l') => key == "last_name" || key == "lastName",
        Some(b'a') => key == "address",
        Some(b'b') => key == "birthday",
        Some(b'i') => key == "id_number",
        _ => false,
    }
}

/// A refusal naming the offending field.
pub type FieldError = (&'static str, String);

/// The personal identifiers an identify carries, before sealing.
pub struct ClaimInput<'a> {
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub traits: Map<String, Value>,
}

/// Validates, normalises and seals an identify's identifiers. Returns the claims and the
/// remaining (non-personal) traits; an error names the offending field.
pub fn claims_from(
    input: ClaimInput<'_>,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<(Claims, Map<String, Value>), FieldError> {
    let mut traits = input.traits;
    // Identifiers are read in place: only their normalised and sealed forms are kept.
    let trait_str = |k: &str| traits.get(k).and_then(Value::as_str);
    let email = input.email.or_else(|| trait_str("email"));
    let phone = input
        .phone
        .or_else(|| trait_str("phone"))
        .or_else(|| trait_str("mobile"));
    let name: Option<Cow<'_, str>> = trait_str("name").map(Cow::Borrowed).or_else(|| {
        let first = trait_str("first_name").or_else(|| trait_str("firstName"));
        let last = trait_str("last_name").or_else(|| trait_str("lastName"));
        match (first, last) {
            (None, None) => None,
            (f, l) => Some(Cow::Owned(
                format!("{} {}", f.unwrap_or_default(), l.unwrap_or_default())
                    .trim()
                    .to_string(),
            )),
        }
    });
    let user_id = input.user_id.map(str::trim).filter(|u| !u.is_empty());
    if user_id.is_none() && email.is_none() && phone.is_none() {
        return Err((
            "user_id",
            "identify needs a user_id, an email or a phone".into(),
        ));
    }
    if user_id.is_some_and(|u| u.chars().count() > 128 || u.chars().any(char::is_control)) {
        return Err(("user_id", "user ids are 1-128 characters".into()));
    }
    let email_n = match email {
        Some(e) => {
            Some(normalise_email(e).ok_or(("email", "not a valid email address".to_string()))?)
        }
        None => None,
    };
    let phone_n = match phone {
        Some(p) => {
            Some(normalise_phone(p).ok_or(("phone", "not a valid phone number".to_string()))?)
        }
        None => None,
    };
    let keys = keys.ok_or((
        "email",
        "personal data is not accepted: no PII key is configured".to_string(),
    ))?;
    let mut seal =
        |kind, value: &str, normalised: &str| Some(keys.seal(kind, value, normalised, nonce()));
    let claims = Claims {
        user_id: user_id.and_then(|u| seal(PiiKind::UserId, u, u)),
        email: match (&email, &email_n) {
            // The normalised address is what is kept (and later sent to): the spelling of the
            // latest form must not change how a known address is shown or used.
            (Some(_), Some(n)) => seal(PiiKind::Email, n, n),
            _ => None,
        },
        phone: match &phone_n {
            Some(n) => seal(PiiKind::Phone, n, n),
            None => None,
        },
        name: name
            .filter(|n| !n.is_empty())
            .and_then(|n| seal(PiiKind::Name, first_chars(&n, 200), "")),
    };
    // One walk over the traits, not a search per personal key.
    traits.retain(|k, _| !is_personal(k));
    Ok((claims, traits))
}

/// The first `max` characters of `s`, as `s.chars().take(max)` gives them, without a copy.
fn first_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The contact id a server-side user gets the first time it is seen, from its blind index.
pub fn user_contact_id(workspace: &str, user_index: &str) -> String {
    derived_id(b"kindling/contact/user\0", workspace, user_index)
}

/// The contact id an anonymous visitor gets the first time it is seen.
pub fn anonymous_contact_id(workspace: &str, visitor_id: &str) -> String {
    derived_id(b"kindling/contact/visitor\0", workspace, visitor_id)
}

fn derived_id(label: &[u8], workspace: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(label);
    h.update(workspace.as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(2 + 24);
    id.push_str("c_");
    crate::push_hex(&mut id, &digest[..12]);
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

    fn keys() -> PiiKeys {
        PiiKeys::from_secret(crate::pii::DEV_PII_KEY, "k1", true).unwrap()
    }

    fn input<'a>(email: Option<&'a str>, traits: serde_json::Value) -> ClaimInput<'a> {
        ClaimInput {
            user_id: None,
            email,
            phone: None,
            traits: traits.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn personal_traits_are_sealed_and_removed() {
        let traits = serde_json::json!({"first_name": "Wei", "last_name": "Zhang", "phone": "13812345678", "company": "Acme"});
        let (claims, rest) = claims_from(
            input(Some("Zhang@Example.com"), traits),
            Some(&keys()),
            &mut || [9; 12],
        )
        .unwrap();
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["company"]);
        let k = keys();
        assert_eq!(
            claims.email.as_ref().unwrap().index,
            k.index(PiiKind::Email, "zhang@example.com")
        );
        assert_eq!(
            k.open(PiiKind::Phone, &claims.phone.unwrap().cipher)
                .unwrap(),
            "+8613812345678"
        );
        assert_eq!(
            k.open(PiiKind::Name, &claims.name.unwrap().cipher).unwrap(),
            "Wei Zhang"
        );
    }

    #[test]
    fn event_properties_lose_personal_keys_but_keep_names_of_things() {
        let mut p = serde_json::json!({"email": "a@b.cn", "mobile": "13812345678", "name": "Launch webinar", "plan": "pro"})
            .as_object()
            .cloned()
            .unwrap();
        scrub_personal(&mut p);
        assert_eq!(
            serde_json::Value::Object(p),
            serde_json::json!({"name": "Launch webinar", "plan": "pro"})
        );
    }

    #[test]
    fn the_personal_key_match_is_the_personal_traits_list() {
        for k in PERSONAL_TRAITS {
            assert!(is_personal(k), "{k}");
        }
        let listed = |k: &str| PERSONAL_TRAITS.contains(&k);
        for k in [
            "url",
            "title",
            "plan",
            "Email",
            "names",
            "",
            "first",
            "id",
            "company",
            "e",
            "emails",
            "phones",
            "mobil",
            "nam",
            "first_names",
            "lastname",
            "Name",
            "address1",
            "birth",
            "id_numbers",
            "bday",
            "firstname",
            "last_Name",
        ] {
            assert_eq!(is_personal(k), listed(k), "{k}");
        }
    }

    #[test]
    fn identify_needs_a_valid_identifier_and_a_key() {
        let none = claims_from(
            input(None, serde_json::json!({})),
            Some(&keys()),
            &mut || [0; 12],
        );
        assert_eq!(none.unwrap_err().0, "user_id");
        let bad = claims_from(
            input(Some("not-an-email"), serde_json::json!({})),
            Some(&keys()),
            &mut || [0; 12],
        );
        assert_eq!(bad.unwrap_err().0, "email");
        let keyless = claims_from(
            input(Some("a@b.cn"), serde_json::json!({})),
            None,
            &mut || [0; 12],
        );
        assert!(keyless.unwrap_err().1.contains("PII key"));
    }

    #[test]
    fn contact_ids_from_paths_are_checked() {
        assert!(!is_valid_contact_id("c_../../etc"));
        assert!(!is_valid_contact_id("' OR 1=1 --"));
    }
}

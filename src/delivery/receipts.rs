//! Provider receipts: what happened to a message after the provider accepted it (delivered,
//! bounced, complained, unsubscribed, opened, clicked, failed), read from the webhooks the
//! providers post back.
//!
//! Authentication. Every receipt route is authenticated with Kindling's generic HMAC scheme
//! (`providers::verify_webhook`, here `authenticate`): the sender signs `{timestamp}.{body}`
//! with a shared secret and sends `X-Kindling-Timestamp` and `X-Kindling-Signature`, and a
//! request older than five minutes is refused. The providers' own schemes are accepted too:
//! SendGrid's Signed Event Webhook ([`sendgrid_signature_ok`]: ECDSA P-256 over timestamp +
//! body, with the verification key from SendGrid's settings) and Twilio's `X-Twilio-Signature`
//! ([`twilio_signature_ok`]: HMAC-SHA1 over the full callback URL and the sorted form fields,
//! keyed by the auth token), which Twilio's callbacks must carry besides the per-message token
//! in their URL when the auth token is configured.
//!
//! Receipts carry no personal data: SendGrid's events include the recipient's address, its
//! bounce `reason` quotes the receiving server (which often repeats the address), and click
//! events carry the URL; none of those is kept. `detail` holds only provider classifications
//! and codes.

use serde_json::Value;

use super::providers;

/// Largest receipt body read. SendGrid posts its event batches at 768 KB at most; anything
/// far beyond is not a provider's.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest message id accepted: ids are ours, so anything longer is not one of them.
const MAX_MESSAGE_ID_BYTES: usize = 128;
/// Longest `detail` kept from a generic receipt (in characters).
const MAX_DETAIL_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptKind {
    Delivered,
    Bounced,
    Complained,
    Unsubscribed,
    Opened,
    Clicked,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub message_id: String,
    pub kind: ReceiptKind,
    /// When it happened, by the provider's clock (unix seconds), when it says.
    pub at_unix: Option<i64>,
    /// A bounce classification or an error code; never an address or message text.
    pub detail: Option<String>,
}

/// Checks a receipt request's `X-Kindling-Timestamp` and `X-Kindling-Signature` headers (any
/// ASCII case) against `secret`, as `providers::verify_webhook` does.
pub fn authenticate(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_unix: i64,
) -> bool {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    match (get("X-Kindling-Timestamp"), get("X-Kindling-Signature")) {
        (Some(timestamp), Some(signature)) => {
            providers::verify_webhook(secret, timestamp, signature, body, now_unix)
        }
        _ => false,
    }
}

/// SendGrid's Event Webhook: a JSON array of events. Events without our
/// `kindling_message_id` (sent by something else on the account) and `processed`, `deferred`
/// or unknown events are skipped; anything that is not an array is an error.
pub fn parse_sendgrid(body: &[u8]) -> Result<Vec<Receipt>, String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let events: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| format!("a SendGrid event batch is a JSON array: {e}"))?;
    Ok(events.iter().filter_map(sendgrid_event).collect())
}

fn sendgrid_event(e: &Value) -> Option<Receipt> {
    let message_id = e.get("kindling_message_id")?.as_str()?;
    if !is_valid_message_id(message_id) {
        return None;
    }
    let text = |key: &str| e.get(key).and_then(Value::as_str);
    let (kind, detail) = match text("event")? {
        "delivered" => (ReceiptKind::Delivered, None),
        // A bounce's `type` says whether the receiver refused the address ("bounce") or the
        // sender ("blocked"); its classification (Invalid Address, Reputation, ...) is a
        // fixed SendGrid label. The free-text `reason` is the receiver's and is not kept.
        "bounce" => {
            let kind = label(text("type")).unwrap_or("bounce");
            let detail = match label(text("bounce_classification")) {
                Some(class) => format!("{kind}: {class}"),
                None => kind.to_string(),
            };
            (ReceiptKind::Bounced, Some(detail))
        }
        // SendGrid's drop reasons are its own labels ("Bounced Address", "Unsubscribed
        // Address", "Spam Reporting Address", "Invalid"); `label` refuses anything else.
        "dropped" => {
            let detail = match label(text("reason")) {
                Some(reason) => format!("dropped: {reason}"),
                None => "dropped".to_string(),
            };
            (ReceiptKind::Bounced, Some(detail))
        }
        "spamreport" => (ReceiptKind::Complained, None),
        "unsubscribe" => (ReceiptKind::Unsubscribed, None),
        "group_unsubscribe" => (ReceiptKind::Unsubscribed, Some("group".to_string())),
        // Apple Mail Privacy Protection fetches every image: SendGrid flags those opens.
        "open" if e.get("sg_machine_open").and_then(Value::as_bool) == Some(true) => {
            (ReceiptKind::Opened, Some("machine_open".to_string()))
        }
        "open" => (ReceiptKind::Opened, None),
        "click" => (ReceiptKind::Clicked, None),
        _ => return None,
    };
    Some(Receipt {
        message_id: message_id.to_string(),
        kind,
        at_unix: e.get("timestamp").and_then(unix_seconds),
        detail,
    })
}

/// A Twilio status callback (form-urlencoded). `message_id` is our `kindling_message_id`,
/// which the route reads from the callback URL's query (`providers::twilio` put it there).
/// Interim statuses (queued, sending, sent, accepted, scheduled, ...) give `Ok(None)`.
pub fn parse_twilio(form_body: &[u8], message_id: &str) -> Result<Option<Receipt>, String> {
    if form_body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if !is_valid_message_id(message_id) {
        return Err("a Twilio callback needs a valid kindling_message_id".to_string());
    }
    let mut status = None;
    let mut error_code = None;
    for (name, value) in form_urlencoded::parse(form_body) {
        match name.as_ref() {
            "MessageStatus" => status = Some(value.into_owned()),
            "ErrorCode" => error_code = Some(value.into_owned()),
            _ => {}
        }
    }
    let status = status.ok_or("a Twilio callback has a MessageStatus")?;
    // Error codes are numbers; anything else is not kept (it could be anything).
    let code =
        error_code.filter(|c| (1..=8).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()));
    let kind = match status.as_str() {
        "delivered" => ReceiptKind::Delivered,
        // 30003 unreachable handset, 30005 unknown number, 30006 landline or unreachable
        // carrier: the number cannot take SMS, which is a bounce, not a passing failure.
        "undelivered" | "failed" => match code.as_deref() {
            Some("30003" | "30005" | "30006") => ReceiptKind::Bounced,
            _ => ReceiptKind::Failed,
        },
        _ => return Ok(None),
    };
    let detail = match kind {
        ReceiptKind::Delivered => None,
        _ => code.map(|c| format!("twilio_{c}")),
    };
    Ok(Some(Receipt {
        message_id: message_id.to_string(),
        kind,
        at_unix: None,
        detail,
    }))
}

/// Kindling's own receipt shape, for providers not modelled here:
/// `{"message_id", "event": "delivered|bounced|complained|unsubscribed|failed", "at"?: unix
/// seconds, "detail"?: string}`. Unknown members are ignored; a known one of the wrong type is
/// an error, so a sender's bug shows instead of being half-read.
pub fn parse_generic(body: &[u8]) -> Result<Receipt, String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("a receipt is a JSON object: {e}"))?;
    let o = v.as_object().ok_or("a receipt is a JSON object")?;
    let message_id = o
        .get("message_id")
        .and_then(Value::as_str)
        .filter(|id| is_valid_message_id(id))
        .ok_or("message_id: a message id is required")?;
    let kind = match o.get("event").and_then(Value::as_str) {
        Some("delivered") => ReceiptKind::Delivered,
        Some("bounced") => ReceiptKind::Bounced,
        Some("complained") => ReceiptKind::Complained,
        Some("unsubscribed") => ReceiptKind::Unsubscribed,
        Some("failed") => ReceiptKind::Failed,
        _ => {
            return Err(
                "event: one of delivered, bounced, complained, unsubscribed, failed".to_string(),
            )
        }
    };
    let at_unix = match o.get("at") {
        None | Some(Value::Null) => None,
        Some(at) => Some(unix_seconds(at).ok_or("at: unix seconds")?),
    };
    let detail = match o.get("detail") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(clean_detail(d)).filter(|d| !d.is_empty()),
        Some(_) => return Err("detail: a string".to_string()),
    };
    Ok(Receipt {
        message_id: message_id.to_string(),
        kind,
        at_unix,
        detail,
    })
}

fn too_large() -> String {
    format!("a receipt body is at most {MAX_BODY_BYTES} bytes")
}

/// Whether `id` can be one of our message ids (`m_` + 32 hex today): 1 to 128 characters from
/// `A-Z a-z 0-9 _ - . :`. Checked loosely, since the store looks the id up anyway, but tightly
/// enough that a receipt cannot carry an address or markup in place of an id.
pub fn is_valid_message_id(id: &str) -> bool {
    (1..=MAX_MESSAGE_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// A provider's fixed label: short, printable ASCII, and no `@` (a label never holds an
/// address; a free-text value that does is dropped).
fn label(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| {
        (1..=64).contains(&s.len()) && s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'@')
    })
}

/// A timestamp in unix seconds: an integer, or a float (SendGrid has sent both), within the
/// years 1970 to 9999 so later arithmetic in milliseconds cannot overflow.
fn unix_seconds(v: &Value) -> Option<i64> {
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let seconds = match v.as_i64() {
        Some(s) => s,
        None => {
            let f = v.as_f64()?;
            if !(0.0..=MAX as f64).contains(&f) {
                return None;
            }
            f as i64
        }
    };
    (0..=MAX).contains(&seconds).then_some(seconds)
}

/// A generic receipt's detail, one line and bounded. Its sender promises no personal data;
/// this only keeps it from breaking logs or the store.
fn clean_detail(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars().take(MAX_DETAIL_CHARS) {
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_string()
}

/// The token a per-message callback URL carries (Twilio's StatusCallback cannot sign its
/// requests with Kindling's scheme): HMAC-SHA256 of the message id under the receipt secret,
/// hex, 32 characters. The receipt route recomputes it for the message the callback names.
pub fn callback_token(secret: &str, message_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(b"kindling/receipt-callback/v1\0");
    mac.update(message_id.as_bytes());
    crate::hex(&mac.finalize().into_bytes()[..16])
}

/// How far a provider's signed timestamp may be from now (seconds), as for our own scheme.
const MAX_SKEW_SECS: i64 = 300;

/// SendGrid's Signed Event Webhook: an ECDSA P-256 / SHA-256 signature (base64 DER, header
/// `X-Twilio-Email-Event-Webhook-Signature`) over the timestamp header
/// (`X-Twilio-Email-Event-Webhook-Timestamp`, unix seconds) followed by the raw body, checked
/// with the verification key SendGrid shows (base64 DER SubjectPublicKeyInfo). Stale
/// timestamps are refused, so a captured request cannot be replayed later.
pub fn sendgrid_signature_ok(
    public_key_b64: &str,
    signature_b64: &str,
    timestamp: &str,
    body: &[u8],
    now_unix: i64,
) -> bool {
    use base64::Engine as _;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (now_unix - t).abs() <= MAX_SKEW_SECS);
    let key = b64
        .decode(public_key_b64.trim())
        .ok()
        .and_then(|der| p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok());
    let signature = b64
        .decode(signature_b64.trim())
        .ok()
        .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok());
    let (Some(key), Some(signature)) = (key, signature) else {
        return false;
    };
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    fresh && key.verify(&signed, &signature).is_ok()
}

/// Twilio's request signature: base64 of HMAC-SHA1, keyed by the account's auth token, over
/// the full URL Twilio called followed by every form field's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, form_body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut fields: Vec<(String, String)> =
        form_urlencoded::parse(form_body).into_owned().collect();
    fields.sort();
    let Ok(mut mac) = <Hmac<sha1::Sha1> as Mac>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (k, v) in &fields {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `X-Twilio-Signature` in constant time.
pub fn twilio_signature_ok(auth_token: &str, url: &str, form_body: &[u8], signature: &str) -> bool {
    !auth_token.is_empty()
        && crate::auth::constant_time_eq(
            twilio_signature(auth_token, url, form_body).as_bytes(),
            signature.trim().as_bytes(),
        )
}

/// Checks a callback token in constant time.
pub fn callback_token_ok(secret: &str, message_id: &str, token: &str) -> bool {
    !secret.is_empty()
        && crate::auth::constant_time_eq(
            callback_token(secret, message_id).as_bytes(),
            token.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::providers::{webhook, WebhookConfig};

    const NOW: i64 = 1_781_740_800;

    #[test]
    fn twilio_signatures_follow_twilios_scheme() {
        let url = "https://hooks.example.com/r/twilio?kindling_message_id=m_1&t=abc";
        let body = b"To=%2B8613800138000&MessageStatus=delivered&MessageSid=SM123&ErrorCode=";
        // Computed by an independent implementation of Twilio's documented algorithm.
        let expected = "cK4WdcSPDrlLjBv3IFg7fcSph34=";
        assert_eq!(
            twilio_signature("twilio-auth-token-0123", url, body),
            expected
        );
        assert!(twilio_signature_ok(
            "twilio-auth-token-0123",
            url,
            body,
            expected
        ));
        assert!(!twilio_signature_ok("another-token", url, body, expected));
        let forged = b"To=%2B8613800138000&MessageStatus=failed&MessageSid=SM123&ErrorCode=";
        assert!(!twilio_signature_ok(
            "twilio-auth-token-0123",
            url,
            forged,
            expected
        ));
        assert!(!twilio_signature_ok("", url, body, ""));
    }

    #[test]
    fn sendgrid_signed_events_are_checked_with_the_accounts_key() {
        use base64::Engine as _;
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let b64 = base64::engine::general_purpose::STANDARD;
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der = |k: &p256::ecdsa::SigningKey| {
            let public = p256::PublicKey::from(k.verifying_key());
            b64.encode(public.to_public_key_der().unwrap().as_bytes())
        };
        let public = der(&signing);
        let body = br#"[{"event":"delivered","kindling_message_id":"m_1"}]"#;
        let ts = NOW.to_string();
        let sign = |ts: &str, body: &[u8]| {
            let mut m = ts.as_bytes().to_vec();
            m.extend_from_slice(body);
            let sig: p256::ecdsa::Signature = signing.sign(&m);
            b64.encode(sig.to_der().as_bytes())
        };
        let good = sign(&ts, body);
        assert!(sendgrid_signature_ok(&public, &good, &ts, body, NOW + 10));
        assert!(
            !sendgrid_signature_ok(&public, &good, &ts, b"[]", NOW),
            "another body"
        );
        assert!(
            !sendgrid_signature_ok(&public, &good, &ts, body, NOW + 301),
            "stale"
        );
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let other_key = der(&other);
        assert!(!sendgrid_signature_ok(&other_key, &good, &ts, body, NOW));
        for (key, sig) in [
            ("not base64!", good.as_str()),
            (public.as_str(), "AAAA"),
            ("", ""),
        ] {
            assert!(!sendgrid_signature_ok(key, sig, &ts, body, NOW));
        }
    }

    fn receipt(kind: ReceiptKind, at: Option<i64>, detail: Option<&str>) -> Receipt {
        Receipt {
            message_id: "msg_0001".into(),
            kind,
            at_unix: at,
            detail: detail.map(str::to_string),
        }
    }

    /// A batch as SendGrid posts it (abridged from its documentation's examples).
    const SENDGRID_BATCH: &str = r#"[
      {"email":"zhang.wei@example.com","timestamp":1781740800,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"processed","category":["marketing"],"sg_event_id":"rbtnWrG1DVDGGGFHFyun0A==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740801,"event":"deferred","response":"400 try again later","attempt":"5","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740802,"event":"delivered","response":"250 OK","sg_event_id":"a","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740803,"event":"open","sg_machine_open":false,"useragent":"Mozilla/5.0","ip":"203.0.113.9","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740804,"event":"open","sg_machine_open":true,"kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740805,"event":"click","url":"https://shop.example/cases?email=zhang.wei@example.com","url_offset":{"index":0,"type":"html"},"kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740806,"event":"bounce","reason":"550 5.1.1 The email account that you tried to reach does not exist: zhang.wei@example.com","status":"5.1.1","type":"bounce","bounce_classification":"Invalid Address","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740807,"event":"bounce","reason":"550 blocked by policy","type":"blocked","bounce_classification":"Reputation","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740808,"event":"dropped","reason":"Bounced Address","status":"5.0.0","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740809,"event":"spamreport","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740810,"event":"unsubscribe","kindling_message_id":"msg_0001"},
      {"email":"zhang.wei@example.com","timestamp":1781740811,"event":"group_unsubscribe","asm_group_id":10,"kindling_message_id":"msg_0001"},
      {"email":"other@example.com","timestamp":1781740812,"event":"delivered","sg_message_id":"not-ours"}
    ]"#;

    #[test]
    fn sendgrid_events_become_receipts() {
        use ReceiptKind::*;
        let got = parse_sendgrid(SENDGRID_BATCH.as_bytes()).unwrap();
        assert_eq!(
            got,
            vec![
                receipt(Delivered, Some(1781740802), None),
                receipt(Opened, Some(1781740803), None),
                receipt(Opened, Some(1781740804), Some("machine_open")),
                receipt(Clicked, Some(1781740805), None),
                receipt(Bounced, Some(1781740806), Some("bounce: Invalid Address")),
                receipt(Bounced, Some(1781740807), Some("blocked: Reputation")),
                receipt(Bounced, Some(1781740808), Some("dropped: Bounced Address")),
                receipt(Complained, Some(1781740809), None),
                receipt(Unsubscribed, Some(1781740810), None),
                receipt(Unsubscribed, Some(1781740811), Some("group")),
            ]
        );
        let text = format!("{got:?}");
        assert!(!text.contains('@'), "no address kept: {text}");
    }

    #[test]
    fn sendgrid_odd_entries_are_skipped_and_non_arrays_refused() {
        let body = br#"[
          1, null, "delivered", [],
          {"event":"delivered","kindling_message_id":7},
          {"event":"delivered","kindling_message_id":""},
          {"event":"delivered","kindling_message_id":"has space"},
          {"event":"delivered","kindling_message_id":"zhang.wei@example.com"},
          {"event":7,"kindling_message_id":"msg_0001"},
          {"event":"new_kind","kindling_message_id":"msg_0001"},
          {"event":"delivered","kindling_message_id":"msg_0001","timestamp":"1781740800"},
          {"event":"delivered","kindling_message_id":"msg_0001","timestamp":1781740800.75},
          {"event":"delivered","kindling_message_id":"msg_0001","timestamp":-5},
          {"event":"dropped","kindling_message_id":"msg_0001","reason":"Invalid recipient x@y.example"},
          {"event":"bounce","kindling_message_id":"msg_0001"}
        ]"#;
        use ReceiptKind::*;
        assert_eq!(
            parse_sendgrid(body).unwrap(),
            vec![
                receipt(Delivered, None, None),
                receipt(Delivered, Some(1781740800), None),
                receipt(Delivered, None, None),
                receipt(Bounced, None, Some("dropped")),
                receipt(Bounced, None, Some("bounce")),
            ]
        );
        assert_eq!(parse_sendgrid(b"[]").unwrap(), vec![]);
        for bad in [
            &b""[..],
            b"{}",
            b"{\"event\":\"delivered\"}",
            b"[",
            b"\xff",
            b"null",
        ] {
            assert!(parse_sendgrid(bad).is_err(), "{}", bad.escape_ascii());
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_sendgrid(deep.as_bytes()).is_err());
        let mut huge = b"[".to_vec();
        huge.resize(MAX_BODY_BYTES + 1, b' ');
        assert!(parse_sendgrid(&huge).is_err());
    }

    /// Callbacks as Twilio posts them.
    fn twilio_form(status: &str, error_code: Option<&str>) -> Vec<u8> {
        let mut f = form_urlencoded::Serializer::new(String::new());
        f.append_pair("SmsSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f");
        f.append_pair("SmsStatus", status);
        f.append_pair("MessageStatus", status);
        f.append_pair("To", "+8613800138000");
        f.append_pair("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f");
        f.append_pair("AccountSid", "AC0123456789abcdef0123456789abcdef");
        f.append_pair("From", "+15550100000");
        f.append_pair("ApiVersion", "2010-04-01");
        if let Some(code) = error_code {
            f.append_pair("ErrorCode", code);
        }
        f.finish().into_bytes()
    }

    #[test]
    fn twilio_callbacks_become_receipts() {
        use ReceiptKind::*;
        let parse = |status, code| parse_twilio(&twilio_form(status, code), "msg_0001");
        assert_eq!(
            parse("delivered", None),
            Ok(Some(receipt(Delivered, None, None)))
        );
        assert_eq!(
            parse("undelivered", Some("30007")),
            Ok(Some(receipt(Failed, None, Some("twilio_30007"))))
        );
        assert_eq!(parse("failed", None), Ok(Some(receipt(Failed, None, None))));
        for code in ["30003", "30005", "30006"] {
            let detail = format!("twilio_{code}");
            assert_eq!(
                parse("undelivered", Some(code)),
                Ok(Some(receipt(Bounced, None, Some(&detail))))
            );
        }
        assert_eq!(
            parse("failed", Some("30005 +86138")),
            Ok(Some(receipt(Failed, None, None))),
            "a code that is not a number is not kept"
        );
        for interim in [
            "queued",
            "sending",
            "sent",
            "accepted",
            "scheduled",
            "canceled",
            "",
        ] {
            assert_eq!(parse(interim, None), Ok(None), "{interim}");
        }
        assert!(parse_twilio(b"MessageSid=SM1&To=%2B1", "msg_0001").is_err());
        assert!(parse_twilio(&twilio_form("delivered", None), "").is_err());
        assert!(parse_twilio(&twilio_form("delivered", None), "msg 1").is_err());
        assert!(parse_twilio(b"\xff\xfe=%%%&&MessageStatus=delivered", "m").is_ok());
    }

    #[test]
    fn generic_receipts_are_read_strictly() {
        use ReceiptKind::*;
        assert_eq!(
            parse_generic(br#"{"message_id":"msg_0001","event":"bounced","at":1781740800,"detail":"mailbox full\r\n"}"#),
            Ok(receipt(Bounced, Some(1781740800), Some("mailbox full")))
        );
        assert_eq!(
            parse_generic(br#"{"message_id":"msg_0001","event":"delivered","at":null,"detail":"","extra":[1]}"#),
            Ok(receipt(Delivered, None, None))
        );
        for (event, kind) in [
            ("complained", Complained),
            ("unsubscribed", Unsubscribed),
            ("failed", Failed),
        ] {
            let body = format!(r#"{{"message_id":"msg_0001","event":"{event}"}}"#);
            assert_eq!(
                parse_generic(body.as_bytes()),
                Ok(receipt(kind, None, None))
            );
        }
        let long = format!(
            r#"{{"message_id":"msg_0001","event":"failed","detail":"{}"}}"#,
            "中".repeat(500)
        );
        let detail = parse_generic(long.as_bytes()).unwrap().detail.unwrap();
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS);

        for bad in [
            &br#"{"event":"delivered"}"#[..],
            br#"{"message_id":"","event":"delivered"}"#,
            br#"{"message_id":7,"event":"delivered"}"#,
            br#"{"message_id":"msg_0001"}"#,
            br#"{"message_id":"msg_0001","event":"opened"}"#,
            br#"{"message_id":"msg_0001","event":"Delivered"}"#,
            br#"{"message_id":"msg_0001","event":"delivered","at":"yesterday"}"#,
            br#"{"message_id":"msg_0001","event":"delivered","at":-1}"#,
            br#"{"message_id":"msg_0001","event":"delivered","at":1e300}"#,
            br#"{"message_id":"msg_0001","event":"delivered","detail":{"a":1}}"#,
            br#"[{"message_id":"msg_0001","event":"delivered"}]"#,
            b"",
            b"\xff",
        ] {
            let r = parse_generic(bad);
            assert!(r.is_err(), "{} gave {r:?}", bad.escape_ascii());
        }
    }

    #[test]
    fn receipt_routes_authenticate_with_the_webhook_signature() {
        let cfg = WebhookConfig {
            url: "https://k.shop.example/r/generic".into(),
            secret: "receipt-secret".into(),
        };
        let body = br#"{"message_id":"msg_0001","event":"delivered"}"#;
        let signed = webhook(&cfg, "r1", "receipt", body, NOW);
        assert!(authenticate("receipt-secret", &signed.headers, body, NOW));
        let lower: Vec<(String, String)> = signed
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        assert!(authenticate("receipt-secret", &lower, body, NOW + 60));
        assert!(!authenticate("receipt-secret", &signed.headers, b"{}", NOW));
        assert!(!authenticate("other", &signed.headers, body, NOW));
        assert!(!authenticate(
            "receipt-secret",
            &signed.headers,
            body,
            NOW + 301
        ));
        let unsigned: Vec<(String, String)> = signed
            .headers
            .iter()
            .filter(|(n, _)| n != "X-Kindling-Signature")
            .cloned()
            .collect();
        assert!(!authenticate("receipt-secret", &unsigned, body, NOW));
        assert!(!authenticate("receipt-secret", &[], body, NOW));
    }

    #[test]
    fn callback_tokens_bind_the_message() {
        let t = callback_token("receipt-secret-0123", "m_1");
        assert_eq!(t.len(), 32);
        assert!(callback_token_ok("receipt-secret-0123", "m_1", &t));
        assert!(!callback_token_ok("receipt-secret-0123", "m_2", &t));
        assert!(!callback_token_ok("other-secret-01234", "m_1", &t));
        assert!(!callback_token_ok("", "m_1", &t));
    }
}

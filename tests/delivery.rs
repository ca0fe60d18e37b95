//! Delivery on the running stack: the outbox (`POST /v1/messages`), deliver's decision
//! (consent, frequency cap, quiet hours, sales coordination), the providers as the local sink
//! records them (SendGrid, Twilio, WeCom, signed webhooks), tracking and unsubscribe links,
//! retries and dead letters, delivery receipts, template validation and A/B results.
//!
//! The sink (tests/sink/sink.mjs) is shared by every trial: requests are told apart by
//! something only this trial's message has (recipient, message id), never by the sink being
//! empty.

use crate::support::*;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use kindling::delivery::ab::{judge, Arm, Metric};
use kindling::delivery::providers::verify_webhook;
use kindling::link::{sign_preferences, verify, LinkClaims};
use kindling::Millis;
use libtest_mimic::Failed;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// scripts/stack.sh's development keys and provider credentials.
const LINK_KEY: &[u8] = b"dev-link-key";
const RECEIPT_KEY: &str = "dev-receipt-key-0123456789";
const WEBHOOK_SECRET: &str = "dev-webhook-secret";
const TWILIO_AUTH_TOKEN: &str = "dev-sms-token";
const MAIL: &str = "/v3/mail/send";
const TWILIO: &str = "/2010-04-01/Accounts/ACdev/Messages.json";

// ---------------------------------------------------------------------------------------------
// The stack's other addresses (support only names the first four functions).
// ---------------------------------------------------------------------------------------------

fn deliver(s: &Stack) -> String {
    format!("http://127.0.0.1:{}", s.base + 3)
}

fn sink(s: &Stack) -> String {
    format!("http://127.0.0.1:{}", s.base + 5)
}

/// The demo landing page's origin, which the demo form allows (scripts/stack.sh: base - 707).
fn landing(s: &Stack) -> String {
    format!("http://127.0.0.1:{}", s.base - 707)
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

fn counter() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A client address no other request of the run uses (the forms limit 20 a minute per IP).
fn client_ip() -> String {
    let n = counter();
    format!("10.203.{}.{}", n / 250 % 250, n % 250 + 1)
}

/// Epoch milliseconds of an RFC 3339 time in a JSON value.
fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {s}"))
        .timestamp_millis()
}

// ---------------------------------------------------------------------------------------------
// People.
// ---------------------------------------------------------------------------------------------

struct Person {
    id: String,
    email: String,
    mobile: String,
    /// The visitor id the landing page's snippet gave the form (`_kvid`).
    vid: String,
}

impl Person {
    fn e164(&self) -> String {
        format!("+86{}", self.mobile)
    }
}

fn find_by_email(s: &Stack, email: &str) -> Option<Value> {
    let q: String = form_urlencoded::byte_serialize(email.as_bytes()).collect();
    let a = admin_get(&format!("{}/v1/contacts?email={q}", s.api()));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()["contacts"].get(0).cloned()
}

fn contact(s: &Stack, id: &str) -> Value {
    let a = admin_get(&format!("{}/v1/contacts/{id}", s.api()));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()
}

fn consents(s: &Stack, id: &str) -> Value {
    let a = admin_get(&format!("{}/v1/contacts/{id}/consents", s.api()));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()
}

/// A lead from the demo form ("Wei Zhang"), email consent given, SMS consent when `sms`.
fn lead(s: &Stack, tag: &str, industry: &str, sms: bool) -> Person {
    let n = counter();
    let vid = fresh_visitor(tag).to_lowercase();
    let email = format!("{vid}@delivery.example");
    let mobile = format!("135{:04}{:04}", now_ms() / 1000 % 10_000, n % 10_000);
    let mut form = json!({
        "name": "Wei Zhang", "email": email, "phone": mobile, "company": "Acme",
        "industry": industry, "company_size": "200", "job_title": "Engineer",
        "consent_email": "on", "_kvid": vid,
    });
    if sms {
        form["consent_sms"] = "on".into();
    }
    let (ip, origin) = (client_ip(), landing(s));
    let a = request(
        "POST",
        &format!("{}/f/demo-signup", s.forms()),
        &[
            ("Content-Type", "application/json"),
            ("Origin", origin.as_str()),
            ("User-Agent", CHROME),
            ("CF-Connecting-IP", ip.as_str()),
        ],
        Some(form.to_string().as_bytes()),
    );
    assert_eq!(a.status, 200, "the demo form: {}", text(&a));
    let c = eventually(&format!("the contact of {email}"), || {
        find_by_email(s, &email).filter(|c| c["has_email"] == true)
    });
    Person {
        id: c["id"].as_str().unwrap_or_default().to_string(),
        email,
        mobile,
        vid,
    }
}

fn api_post(s: &Stack, path: &str, body: &Value) -> Answer {
    admin_send("POST", &format!("{}{path}", s.api()), body)
}

/// Sets attributes server-side (a Segment identify for the form's visitor, with the person's
/// email) and waits until the contact shows them. By the visitor rather than a `userId`: an
/// identify by a userId the stack has not seen yet makes a contact of its own and keeps the
/// traits there, even with the email of an existing contact.
fn identify(s: &Stack, p: &mut Person, traits: Value) {
    let mut all = traits.clone();
    all["email"] = p.email.clone().into();
    let body = json!({
        "messageId": format!("{}-identify-{}", p.vid, counter()),
        "anonymousId": p.vid, "traits": all,
    });
    let a = api_post(s, "/v1/identify", &body);
    assert_eq!(a.status, 200, "identify: {}", text(&a));
    let c = eventually(&format!("the traits of {}", p.email), || {
        find_by_email(s, &p.email).filter(|c| {
            traits
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| &c["attributes"][k] == v)
        })
    });
    p.id = c["id"].as_str().unwrap_or_default().to_string();
}

/// The UTC offset (`+HH:00`) at which the local time now is `hour` o'clock.
fn offset_for_local_hour(hour: i64) -> (String, i64) {
    let utc_hour = now_ms().div_euclid(Millis::HOUR) % 24;
    let mut off = hour - utc_hour;
    while off > 12 {
        off -= 24;
    }
    while off < -11 {
        off += 24;
    }
    let sign = if off < 0 { '-' } else { '+' };
    (format!("{sign}{:02}:00", off.abs()), off)
}

/// A person it is midday for, reading English: marketing goes out at once.
fn at_midday(s: &Stack, p: &mut Person, extra: Value) {
    let (tz, _) = offset_for_local_hour(12);
    let mut traits = json!({"timezone": tz, "language": "en"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        traits[k] = v.clone();
    }
    identify(s, p, traits);
}

// ---------------------------------------------------------------------------------------------
// The outbox.
// ---------------------------------------------------------------------------------------------

fn post_message(s: &Stack, body: &Value) -> Answer {
    api_post(s, "/v1/messages", body)
}

/// Queues a message that must be accepted as new; returns its id.
fn enqueue(s: &Stack, body: Value) -> String {
    let a = post_message(s, &body);
    assert_eq!(a.status, 202, "{body}: {}", text(&a));
    assert_eq!(a.json()["created"], true, "{}", text(&a));
    let id = a.json()["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("m_"), "{id}");
    id
}

fn message(s: &Stack, id: &str) -> Value {
    let a = admin_get(&format!("{}/v1/messages/{id}", s.api()));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()
}

/// The message once deliver has decided it (no longer queued or being sent).
fn settled(s: &Stack, id: &str) -> Value {
    eventually(&format!("a decision on {id}"), || {
        let m = message(s, id);
        (!matches!(m["state"].as_str(), Some("queued" | "sending"))).then_some(m)
    })
}

fn assert_state(m: &Value, state: &str, reason: Option<&str>) {
    assert_eq!(m["state"], state, "{m:#}");
    match reason {
        Some(r) => assert_eq!(m["reason"], r, "{m:#}"),
        None => assert!(m["reason"].is_null(), "{m:#}"),
    }
}

fn marketing_email(p: &Person) -> Value {
    json!({"contact_id": p.id, "channel": "email", "template": "whitepaper", "kind": "marketing"})
}

fn transactional_email(p: &Person) -> Value {
    json!({"contact_id": p.id, "channel": "email", "template": "whitepaper", "kind": "transactional"})
}

// ---------------------------------------------------------------------------------------------
// The provider sink.
// ---------------------------------------------------------------------------------------------

fn sink_requests(s: &Stack, prefix: &str) -> Vec<Value> {
    let q: String = form_urlencoded::byte_serialize(prefix.as_bytes()).collect();
    let a = get(&format!("{}/_sink/requests?path_prefix={q}", sink(s)));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json().as_array().cloned().unwrap_or_default()
}

fn sink_script(s: &Stack, prefix: &str, responses: Value) {
    let a = request(
        "POST",
        &format!("{}/_sink/script", sink(s)),
        &[("Content-Type", "application/json")],
        Some(
            json!({"path_prefix": prefix, "responses": responses})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
}

fn sink_reset(s: &Stack) {
    let a = request("POST", &format!("{}/_sink/reset", sink(s)), &[], None);
    assert_eq!(a.status, 200, "{}", text(&a));
}

fn body_json(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
}

/// SendGrid requests to `address`.
fn emails_to(s: &Stack, address: &str) -> Vec<Value> {
    sink_requests(s, MAIL)
        .into_iter()
        .filter(|r| body_json(r)["personalizations"][0]["to"][0]["email"] == address)
        .collect()
}

/// SendGrid requests for the message `id`.
fn emails_of(s: &Stack, id: &str) -> Vec<Value> {
    sink_requests(s, MAIL)
        .into_iter()
        .filter(|r| body_json(r)["custom_args"]["kindling_message_id"] == id)
        .collect()
}

fn form_field(r: &Value, name: &str) -> Option<String> {
    form_urlencoded::parse(r["body"].as_str().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Twilio requests to the number `to`.
fn sms_to(s: &Stack, to: &str) -> Vec<Value> {
    sink_requests(s, TWILIO)
        .into_iter()
        .filter(|r| form_field(r, "To").as_deref() == Some(to))
        .collect()
}

/// The values of every `attr="…"` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let open = format!("{attr}=\"");
    html.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &html[at + open.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// The HTML part of a recorded SendGrid request.
fn html_of(r: &Value) -> String {
    body_json(r)["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "text/html")
        .and_then(|c| c["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Every tracked link of an email's HTML: (the track URL, its verified claims).
fn tracked_links(s: &Stack, html: &str) -> Vec<(String, LinkClaims)> {
    let prefix = format!("{}/c/", s.track());
    attribute_values(html, "href")
        .into_iter()
        .filter_map(|href| {
            let token = href.strip_prefix(&prefix)?.to_string();
            let claims = verify(&token, LINK_KEY)
                .unwrap_or_else(|| panic!("a click token that does not verify: {href}"));
            Some((href, claims))
        })
        .collect()
}

fn timeline(s: &Stack, id: &str) -> Vec<Value> {
    let a = admin_get(&format!("{}/v1/contacts/{id}/timeline?limit=500", s.api()));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()["events"].as_array().cloned().unwrap_or_default()
}

/// A generic receipt, signed as deliver expects (`v1=` HMAC-SHA256 over "{ts}.{body}").
fn receipt(s: &Stack, body: &Value, key: &str, ts: i64) -> Answer {
    let bytes = body.to_string();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("a key");
    mac.update(format!("{ts}.{bytes}").as_bytes());
    let sig = format!("v1={}", kindling::hex(&mac.finalize().into_bytes()));
    let ts = ts.to_string();
    request(
        "POST",
        &format!("{}/r/generic", deliver(s)),
        &[
            ("Content-Type", "application/json"),
            ("X-Kindling-Timestamp", &ts),
            ("X-Kindling-Signature", &sig),
        ],
        Some(bytes.as_bytes()),
    )
}

fn now_unix() -> i64 {
    now_ms() / 1000
}

/// The whitepaper's English subject of a variant, for "Wei Zhang".
fn whitepaper_subject(variant: &str) -> &'static str {
    match variant {
        "b" => "Delivered: the 2026 roadmap for manufacturing, finance and retail",
        _ => "Wei, your 2026 digital transformation whitepaper",
    }
}

// ---------------------------------------------------------------------------------------------
// Trials.
// ---------------------------------------------------------------------------------------------

pub fn email_goes_out_through_the_provider_with_tracking_and_unsubscribe(
    s: &Stack,
) -> Result<(), Failed> {
    let mut p = lead(s, "mail", "manufacturing", false);
    at_midday(s, &mut p, json!({}));

    let id = enqueue(s, marketing_email(&p));
    let m = settled(s, &id);
    assert_state(&m, "sent", None);
    assert_eq!(m["attempts"], 1, "{m:#}");
    assert_eq!(m["contact_id"], p.id.as_str());
    assert!(m["sent_at"].is_string(), "{m:#}");
    let variant = m["variant"].as_str().unwrap_or_default().to_string();
    assert!(variant == "a" || variant == "b", "{m:#}");

    let mails = emails_to(s, &p.email);
    assert_eq!(mails.len(), 1, "one request to SendGrid: {mails:#?}");
    let r = &mails[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], MAIL);
    assert_eq!(r["headers"]["authorization"], "Bearer dev-email-key");
    assert!(r["headers"]["content-type"]
        .as_str()
        .unwrap_or_default()
        .starts_with("application/json"));
    assert_eq!(
        m["provider_id"],
        format!("sg-{}", r["seq"]),
        "the provider's X-Message-Id is kept"
    );
    let mail = body_json(r);
    assert_eq!(mail["from"]["email"], "hello@kindling.test", "{mail:#}");
    assert_eq!(mail["custom_args"]["kindling_message_id"], id.as_str());
    assert_eq!(mail["categories"], json!(["marketing"]));
    assert_eq!(mail["subject"], whitepaper_subject(&variant), "{mail:#}");
    let types: Vec<&str> = mail["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"], "{mail:#}");
    let plain = mail["content"][0]["value"].as_str().unwrap_or_default();
    assert!(
        plain.contains("Wei"),
        "the plain part is the message: {plain}"
    );
    let unsubscribe = format!(
        "{}/u/{}?channel=email",
        s.forms(),
        sign_preferences(&p.id, LINK_KEY)
    );
    assert_eq!(
        mail["headers"]["List-Unsubscribe"],
        format!("<{unsubscribe}>"),
        "{mail:#}"
    );
    assert_eq!(
        mail["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );

    // The content of the person's industry, every web link through track, an open pixel.
    let html = html_of(r);
    assert!(html.contains("Hi Wei,"), "{html}");
    assert!(html.contains("production-efficiency case"), "{html}");
    for other in ["data-security", "user-growth", "customer stories"] {
        assert!(
            !html.contains(other),
            "{other} in a manufacturing mail: {html}"
        );
    }
    for href in attribute_values(&html, "href") {
        assert!(
            href.starts_with(&format!("{}/c/", s.track())) || href == unsubscribe,
            "an untracked link {href} in {html}"
        );
    }
    let links = tracked_links(s, &html);
    let mut targets: Vec<String> = links
        .iter()
        .map(|(_, c)| c.u.clone().unwrap_or_default())
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "https://www.example.com/cases/production-efficiency",
            "https://www.example.com/whitepaper.pdf"
        ]
    );
    for (href, claims) in &links {
        assert_eq!(
            (claims.m.as_str(), claims.c.as_str()),
            (id.as_str(), p.id.as_str()),
            "{href}"
        );
    }
    let pixels: Vec<String> = attribute_values(&html, "src")
        .into_iter()
        .filter(|src| src.starts_with(&format!("{}/o/", s.track())))
        .collect();
    assert_eq!(pixels.len(), 1, "one open pixel: {html}");
    let open = pixels[0]
        .strip_prefix(&format!("{}/o/", s.track()))
        .and_then(|t| t.strip_suffix(".gif"))
        .unwrap_or_default();
    let claims = verify(open, LINK_KEY).ok_or("the open token does not verify")?;
    assert_eq!(
        (claims.m.as_str(), claims.c.as_str(), claims.u),
        (id.as_str(), p.id.as_str(), None)
    );

    // A person's click goes where the link pointed and lands on their timeline.
    let (case, _) = links
        .iter()
        .find(|(_, c)| {
            c.u.as_deref()
                .is_some_and(|u| u.ends_with("production-efficiency"))
        })
        .ok_or("no case link")?;
    let a = request("GET", case, &[("User-Agent", CHROME)], None);
    assert_eq!(a.status, 302, "{}", text(&a));
    assert_eq!(
        a.header("location"),
        Some("https://www.example.com/cases/production-efficiency")
    );
    let click = eventually("the click on the timeline", || {
        timeline(s, &p.id)
            .into_iter()
            .find(|e| e["name"] == "email_clicked")
    });
    assert_eq!(click["properties"]["message_id"], id.as_str(), "{click:#}");

    // The header's one-click unsubscribe works, and the next marketing mail is not sent.
    let a = request(
        "POST",
        &unsubscribe,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "User-Agent",
                "Mozilla/5.0 (compatible; mail provider one-click)",
            ),
        ],
        Some(b"List-Unsubscribe=One-Click"),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(consents(s, &p.id)["current"]["email"], false);
    let again = enqueue(s, marketing_email(&p));
    assert_state(&settled(s, &again), "suppressed", Some("withdrawn"));
    assert!(
        emails_of(s, &again).is_empty(),
        "a withdrawn person got mail"
    );
    assert_eq!(emails_to(s, &p.email).len(), 1);
    Ok(())
}

pub fn sms_and_wecom_and_signed_webhooks_reach_their_providers(s: &Stack) -> Result<(), Failed> {
    let mut p = lead(s, "channels", "retail", true);
    let wecom_user = format!("wu{}", now_ms() % 1_000_000_000_000);
    at_midday(s, &mut p, json!({"wecom_user_id": wecom_user}));

    // SMS through Twilio, with the coupon and a status callback that works.
    let coupon = format!("KD{}", now_ms() % 100_000_000);
    let id = enqueue(
        s,
        json!({"contact_id": p.id, "channel": "sms", "template": "welcome-sms",
               "kind": "marketing", "variables": {"coupon_code": coupon}}),
    );
    let m = settled(s, &id);
    assert_state(&m, "sent", None);
    let sent = sms_to(s, &p.e164());
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let r = &sent[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(
        m["provider_id"],
        format!("SM{}", r["seq"]),
        "Twilio's sid is kept"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("ACdev:dev-sms-token");
    assert_eq!(r["headers"]["authorization"], format!("Basic {basic}"));
    assert!(r["headers"]["content-type"]
        .as_str()
        .unwrap_or_default()
        .starts_with("application/x-www-form-urlencoded"));
    assert_eq!(form_field(r, "From").as_deref(), Some("+15550000000"));
    let body = form_field(r, "Body").unwrap_or_default();
    assert_eq!(
        body,
        format!("Hi Wei, welcome! Your 50-yuan coupon: {coupon}. The product guide is on the app's home page. Reply STOP to opt out")
    );
    let token = kindling::delivery::receipts::callback_token(RECEIPT_KEY, &id);
    let callback = format!("{}/r/twilio?t={token}&kindling_message_id={id}", deliver(s));
    assert_eq!(form_field(r, "StatusCallback"), Some(callback.clone()));
    // Signed as Twilio signs its callbacks, with the account's auth token (scripts/stack.sh).
    let body = format!("MessageSid=SM{}&MessageStatus=delivered", r["seq"]);
    let signed = |url: &str, signature: &str| {
        request(
            "POST",
            url,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", signature),
            ],
            Some(body.as_bytes()),
        )
    };
    let status = |url: &str| {
        let signature =
            kindling::delivery::receipts::twilio_signature(TWILIO_AUTH_TOKEN, url, body.as_bytes());
        signed(url, &signature)
    };
    let forged = format!(
        "{}/r/twilio?t={}&kindling_message_id={id}",
        deliver(s),
        "0".repeat(token.len())
    );
    assert_eq!(status(&forged).status, 401, "a forged callback token");
    assert_eq!(
        signed(&callback, "bm90IFR3aWxpbydzIHNpZ25hdHVyZQ==").status,
        401,
        "the right token without Twilio's signature"
    );
    assert_eq!(message(s, &id)["state"], "sent");
    let a = status(&callback);
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["applied"], 1, "{}", text(&a));
    assert_eq!(message(s, &id)["state"], "delivered");

    // WeCom: consent on the preference page, then a token and a text message to the member.
    let page = format!("{}/u/{}", s.forms(), sign_preferences(&p.id, LINK_KEY));
    let a = request(
        "POST",
        &page,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"_prefs=1&email=on&sms=on&wecom=on"),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(consents(s, &p.id)["current"]["wecom"], true);
    let id = enqueue(
        s,
        json!({"contact_id": p.id, "channel": "wecom", "template": "care-wecom", "kind": "marketing"}),
    );
    let m = settled(s, &id);
    assert_state(&m, "sent", None);
    let sent: Vec<Value> = sink_requests(s, "/cgi-bin/message/send")
        .into_iter()
        .filter(|r| body_json(r)["touser"] == wecom_user.as_str())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let r = &sent[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(m["provider_id"], format!("w{}", r["seq"]));
    let msg = body_json(r);
    assert_eq!(msg["msgtype"], "text", "{msg:#}");
    assert_eq!(msg["agentid"], 1_000_002, "{msg:#}");
    assert_eq!(
        msg["text"]["content"],
        "Hi Wei, we have missed you! A care package is waiting, and your dedicated service contact will reach out soon."
    );
    let path = r["path"].as_str().unwrap_or_default();
    let n: i64 = path
        .strip_prefix("/cgi-bin/message/send?access_token=tok-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("not a token from the sink: {path}"))?;
    let fetched = sink_requests(s, "/cgi-bin/gettoken")
        .into_iter()
        .find(|t| t["seq"] == n)
        .ok_or_else(|| format!("no gettoken answered tok-{n}"))?;
    assert_eq!(fetched["method"], "GET");
    assert_eq!(
        fetched["path"],
        "/cgi-bin/gettoken?corpid=devcorp&corpsecret=dev-wecom-secret"
    );

    // A signed webhook for systems: ids and facts, no personal data.
    let id = enqueue(
        s,
        json!({"contact_id": p.id, "channel": "webhook", "kind": "transactional",
               "variables": {"event": "crm.sync"}}),
    );
    assert_state(&settled(s, &id), "sent", None);
    let hooks: Vec<Value> = sink_requests(s, "/hooks/crm")
        .into_iter()
        .filter(|r| r["headers"]["x-kindling-delivery"] == id.as_str())
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    let r = &hooks[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["headers"]["x-kindling-event"], "crm.sync");
    let ts = r["headers"]["x-kindling-timestamp"]
        .as_str()
        .unwrap_or_default();
    let sig = r["headers"]["x-kindling-signature"]
        .as_str()
        .unwrap_or_default();
    let body = r["body"].as_str().unwrap_or_default();
    assert!(sig.starts_with("v1="), "{sig}");
    assert!(
        verify_webhook(WEBHOOK_SECRET, ts, sig, body.as_bytes(), now_unix()),
        "the signature does not verify: {r:#}"
    );
    assert!(!verify_webhook(
        WEBHOOK_SECRET,
        ts,
        sig,
        format!("{body} ").as_bytes(),
        now_unix()
    ));
    assert!(!verify_webhook(
        "another-secret",
        ts,
        sig,
        body.as_bytes(),
        now_unix()
    ));
    let hook = body_json(r);
    assert_eq!(hook["contact"]["id"], p.id.as_str(), "{hook:#}");
    assert_eq!(hook["message_id"], id.as_str());
    assert_eq!(hook["event"], "crm.sync");
    for personal in [p.email.as_str(), p.mobile.as_str(), "Wei Zhang"] {
        assert!(!body.contains(personal), "{personal} in a webhook: {body}");
    }
    Ok(())
}

pub fn the_decision_caps_defers_and_suppresses_with_reasons(s: &Stack) -> Result<(), Failed> {
    let mut p = lead(s, "decide", "finance", false);
    at_midday(s, &mut p, json!({}));

    // Bad orders are refused before anything is queued.
    let bad = [
        (
            json!({"contact_id": "c_1", "channel": "email", "template": "whitepaper", "kind": "marketing"}),
            "contact_id",
        ),
        (
            json!({"contact_id": p.id, "channel": "fax", "template": "whitepaper", "kind": "marketing"}),
            "channel",
        ),
        (
            json!({"contact_id": p.id, "channel": "email", "template": "whitepaper", "kind": "spam"}),
            "kind",
        ),
        (
            json!({"contact_id": p.id, "channel": "email", "template": "whitepaper", "kind": "marketing",
                "variables": {"email": "someone@else.example"}}),
            "variables.email",
        ),
    ];
    for (body, field) in bad {
        let a = post_message(s, &body);
        assert_eq!(
            (a.status, a.json()["field"].clone()),
            (400, json!(field)),
            "{body}: {}",
            text(&a)
        );
    }
    let a = post_message(
        s,
        &json!({"contact_id": "c_000000000000000000000000", "channel": "email",
                "template": "whitepaper", "kind": "marketing"}),
    );
    assert_eq!(a.status, 404, "{}", text(&a));

    // Two marketing mails a week on a channel; the third waits for the first to leave the week.
    let first = enqueue(s, marketing_email(&p));
    let m1 = settled(s, &first);
    assert_state(&m1, "sent", None);
    let second = enqueue(s, marketing_email(&p));
    assert_state(&settled(s, &second), "sent", None);
    let third = enqueue(s, marketing_email(&p));
    let m3 = settled(s, &third);
    assert_state(&m3, "deferred", Some("frequency_cap"));
    assert_eq!(
        ms(&m3["next_attempt_at"]),
        ms(&m1["sent_at"]) + 7 * Millis::DAY + 1,
        "the first send leaves the window: {m3:#}"
    );
    assert_eq!(m3["attempts"], 0);
    assert!(emails_of(s, &third).is_empty());

    // Transactional mail is exempt from the cap; an idempotency key makes a retry harmless.
    let key = format!("receipt-{}", fresh_visitor("idem"));
    let mut order = transactional_email(&p);
    order["idempotency_key"] = key.clone().into();
    let receipt_id = enqueue(s, order.clone());
    assert_state(&settled(s, &receipt_id), "sent", None);
    let a = post_message(s, &order);
    assert_eq!(a.status, 202, "{}", text(&a));
    assert_eq!(a.json(), json!({"id": receipt_id, "created": false}));
    std::thread::sleep(Duration::from_secs(2));
    let sent = emails_of(s, &receipt_id);
    assert_eq!(sent.len(), 1, "one send for one key: {sent:#?}");
    let mail = body_json(&sent[0]);
    assert_eq!(mail["categories"], json!(["transactional"]));
    assert!(
        mail.get("headers").is_none(),
        "no unsubscribe header on a transactional mail: {mail:#}"
    );
    assert_eq!(
        emails_to(s, &p.email).len(),
        3,
        "two marketing and one receipt"
    );

    // No SMS consent: marketing SMS is suppressed, a transactional one still goes.
    let sms = json!({"contact_id": p.id, "channel": "sms", "template": "welcome-sms",
                     "kind": "marketing", "variables": {"coupon_code": "NOPE"}});
    let refused = enqueue(s, sms.clone());
    assert_state(&settled(s, &refused), "suppressed", Some("no_consent"));
    let mut notice = sms;
    notice["kind"] = "transactional".into();
    notice["variables"]["coupon_code"] = "ORDER42".into();
    let notice = enqueue(s, notice);
    assert_state(&settled(s, &notice), "sent", None);
    let texts = sms_to(s, &p.e164());
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(form_field(&texts[0], "Body")
        .unwrap_or_default()
        .contains("ORDER42"));

    // Quiet hours: late evening locally defers to 08:00 local, and the cron then sends it.
    let mut night = lead(s, "night", "retail", false);
    let (tz, offset_h) = offset_for_local_hour(22);
    identify(s, &mut night, json!({"timezone": tz, "language": "en"}));
    let late = enqueue(s, marketing_email(&night));
    let m = settled(s, &late);
    assert_state(&m, "deferred", Some("quiet_hours"));
    let created = ms(&m["created_at"]);
    let local = created + offset_h * Millis::HOUR;
    let local_day = local.div_euclid(Millis::DAY) * Millis::DAY;
    let eight = if local - local_day < 8 * Millis::HOUR {
        local_day + 8 * Millis::HOUR
    } else {
        local_day + Millis::DAY + 8 * Millis::HOUR
    };
    let morning = eight - offset_h * Millis::HOUR;
    assert_eq!(
        ms(&m["next_attempt_at"]),
        morning,
        "08:00 at {tz} after {}: {m:#}",
        m["created_at"]
    );
    assert!(emails_to(s, &night.email).is_empty(), "mail in quiet hours");
    let a = run_cron(s, morning);
    assert_eq!(a.status, 200, "{}", text(&a));
    let m = eventually("the morning send", || {
        let m = message(s, &late);
        (m["state"] == "sent").then_some(m)
    });
    assert_eq!(
        ms(&m["sent_at"]),
        morning,
        "decided at the cron's time: {m:#}"
    );
    assert_eq!(m["attempts"], 1);
    let states: Vec<(String, String)> = m["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let f = |k: &str| h[k].as_str().unwrap_or_default().to_string();
            (f("state"), f("reason"))
        })
        .collect();
    assert_eq!(
        states,
        [
            ("deferred".into(), "quiet_hours".into()),
            ("sending".into(), String::new()),
            ("sent".into(), String::new())
        ],
        "{m:#}"
    );
    assert_eq!(emails_to(s, &night.email).len(), 1);

    // A salesperson's contact holds marketing for 48 hours.
    let mut called = lead(s, "sales", "manufacturing", false);
    at_midday(s, &mut called, json!({}));
    let track = json!({"messageId": format!("{}-sales", called.vid), "anonymousId": called.vid,
                       "event": "sales_contacted"});
    let a = api_post(s, "/v1/track", &track);
    assert_eq!(a.status, 200, "{}", text(&a));
    let touch = eventually("the sales contact on the timeline", || {
        timeline(s, &called.id)
            .into_iter()
            .find(|e| e["name"] == "sales_contacted")
    });
    let held = enqueue(s, marketing_email(&called));
    let m = settled(s, &held);
    assert_state(&m, "deferred", Some("sales_contact"));
    assert_eq!(
        ms(&m["next_attempt_at"]),
        ms(&touch["occurred_at"]) + 48 * Millis::HOUR,
        "{m:#} after {touch:#}"
    );
    assert!(emails_to(s, &called.email).is_empty());
    Ok(())
}

/// Drives a message through its retries with the cron at each `next_attempt_at` until it is
/// sent, failed or dead. Returns the final message and each retry seen: (attempts so far, the
/// next_attempt_at it set).
fn drive_retries(s: &Stack, id: &str) -> (Value, Vec<(i64, i64)>) {
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut seen: Vec<(i64, i64)> = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "{id} never settled: {:#}",
            message(s, id)
        );
        let m = message(s, id);
        match m["state"].as_str().unwrap_or_default() {
            "sent" | "failed" | "dead" => return (m, seen),
            "retry" => {
                let attempts = m["attempts"].as_i64().unwrap_or(0);
                let next = ms(&m["next_attempt_at"]);
                if !seen.iter().any(|(a, _)| *a == attempts) {
                    seen.push((attempts, next));
                }
                let a = run_cron(s, next);
                assert_eq!(a.status, 200, "{}", text(&a));
                eventually(&format!("attempt {} of {id}", attempts + 1), || {
                    let m = message(s, id);
                    (m["attempts"].as_i64().unwrap_or(0) > attempts && m["state"] != "sending")
                        .then_some(())
                });
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// (state, reason, attempt, at) of every history entry, in the api's order.
fn history(m: &Value) -> Vec<(String, String, i64, i64)> {
    m["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["state"].as_str().unwrap_or_default().to_string(),
                h["reason"].as_str().unwrap_or_default().to_string(),
                h["attempt"].as_i64().unwrap_or(-1),
                ms(&h["at"]),
            )
        })
        .collect()
}

/// (reason, attempt) of every retry, by attempt.
fn retries(m: &Value) -> Vec<(String, i64)> {
    let mut r: Vec<(String, i64)> = history(m)
        .into_iter()
        .filter(|h| h.0 == "retry")
        .map(|h| (h.1, h.2))
        .collect();
    r.sort_by_key(|x| x.1);
    r
}

/// The backoff as the history shows it: no try goes out sooner than a second after the one
/// before failed, nor before the time that failure set; each wait is full jitter under a
/// ceiling doubling from 30 s.
fn assert_backoff(m: &Value, seen: &[(i64, i64)]) {
    let h = history(m);
    let at = |state: &str, attempt: i64| {
        h.iter()
            .find(|x| x.0 == state && x.2 == attempt)
            .map(|x| x.3)
    };
    for k in 1..m["attempts"].as_i64().unwrap_or(0) {
        let (Some(failed), Some(tried)) = (at("retry", k), at("sending", k + 1)) else {
            panic!("attempts {k} and {} are not in the history: {m:#}", k + 1);
        };
        assert!(
            tried - failed >= 1_000,
            "attempt {} went out {} ms after attempt {k} failed, at {}: another order for the \
             same retry sent it without waiting for the backoff: {m:#}",
            k + 1,
            tried - failed,
            Millis(tried).rfc3339()
        );
    }
    for (attempt, next) in seen {
        let failed = at("retry", *attempt).unwrap_or_else(|| panic!("no retry {attempt}: {m:#}"));
        let wait = next - failed;
        let ceiling = 30_000_i64 << (attempt - 1);
        assert!(
            (1_000..=ceiling).contains(&wait),
            "attempt {attempt} waits {wait} ms: {m:#}"
        );
        if let Some(tried) = at("sending", attempt + 1) {
            assert!(
                tried >= *next,
                "attempt {} went out at {} although attempt {attempt} set the retry for {}: {m:#}",
                attempt + 1,
                Millis(tried).rfc3339(),
                Millis(*next).rfc3339()
            );
        }
    }
}

pub fn failures_are_retried_with_backoff_and_dead_lettered_without_double_sends(
    s: &Stack,
) -> Result<(), Failed> {
    // Scripts answer whatever mail comes next: start from a sink without leftovers.
    sink_reset(s);
    let p = lead(s, "retry", "manufacturing", false);

    // Passing failures are retried until the provider takes the message: sent once.
    sink_script(
        s,
        MAIL,
        json!([{"status": 500}, {"status": 429, "headers": {"Retry-After": "1"}}, {"close": true}]),
    );
    let flaky = enqueue(s, transactional_email(&p));
    let (m, seen) = drive_retries(s, &flaky);
    assert_state(&m, "sent", None);
    assert_eq!(m["attempts"], 4, "{m:#}");
    assert_eq!(
        retries(&m),
        [
            ("http_500".to_string(), 1),
            ("http_429".to_string(), 2),
            ("no_response".to_string(), 3)
        ],
        "{m:#}"
    );
    let requests = emails_of(s, &flaky);
    assert_eq!(requests.len(), 4, "{requests:#?}");
    let answered: Vec<Value> = requests
        .iter()
        .map(|r| r["answer"]["status"].clone())
        .collect();
    assert_eq!(
        answered,
        [json!(500), json!(429), Value::Null, json!(202)],
        "one success only"
    );
    assert_eq!(m["provider_id"], format!("sg-{}", requests[3]["seq"]));
    assert_backoff(&m, &seen);

    // A refusal is final: no retry.
    sink_script(
        s,
        MAIL,
        json!([{"status": 400, "body": {"errors": [{"message": "bad sender", "field": "from.email"}]}}]),
    );
    let refused = enqueue(s, transactional_email(&p));
    let m = settled(s, &refused);
    assert_state(&m, "failed", Some("http_400:from.email"));
    assert_eq!(m["attempts"], 1);
    assert!(m["next_attempt_at"].is_null(), "{m:#}");

    // A provider that keeps failing: five tries, then the dead letter with its reason.
    sink_script(s, MAIL, Value::Array(vec![json!({"status": 500}); 6]));
    let doomed = enqueue(s, transactional_email(&p));
    let (m, seen) = drive_retries(s, &doomed);
    assert_state(&m, "dead", Some("gave up after 5 tries: http_500"));
    assert_eq!(m["attempts"], 5, "{m:#}");
    let tries: Vec<i64> = retries(&m).iter().map(|r| r.1).collect();
    assert_eq!(tries, [1, 2, 3, 4], "{m:#}");
    assert!(m["next_attempt_at"].is_null(), "{m:#}");
    assert_eq!(emails_of(s, &doomed).len(), 5);
    assert_backoff(&m, &seen);

    // Nothing more goes out afterwards, even once the late re-queued orders arrive.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(run_cron(s, now_ms() + Millis::DAY).status, 200);
    std::thread::sleep(Duration::from_secs(3));
    let counts: Vec<usize> = [&flaky, &refused, &doomed]
        .iter()
        .map(|id| emails_of(s, id).len())
        .collect();
    assert_eq!(counts, [4, 1, 5], "flaky, refused, dead");
    assert_eq!(message(s, &doomed)["state"], "dead");
    assert_eq!(message(s, &flaky)["state"], "sent");

    // The dead message left one scripted answer unused.
    sink_reset(s);

    // A due retry ordered twice (overlapping cron ticks, or a tick and deliver's own delayed
    // re-queue) is tried once: the second order must not send it again without a backoff.
    sink_script(s, MAIL, Value::Array(vec![json!({"status": 503}); 3]));
    let twice = enqueue(s, transactional_email(&p));
    let m = settled(s, &twice);
    assert_state(&m, "retry", Some("http_503"));
    let next = ms(&m["next_attempt_at"]);
    assert_eq!(run_cron(s, next).status, 200);
    assert_eq!(run_cron(s, next).status, 200);
    eventually("the second attempt", || {
        let m = message(s, &twice);
        (m["attempts"].as_i64().unwrap_or(0) >= 2 && m["state"] != "sending").then_some(())
    });
    // Deliver re-queued the first retry itself too, delayed by its backoff: let that order
    // arrive before driving the rest.
    let order_due = next.max(now_ms()) + 3_000;
    while now_ms() < order_due {
        std::thread::sleep(Duration::from_millis(250));
    }
    let (m, mut seen) = drive_retries(s, &twice);
    seen.insert(0, (1, next));
    assert_backoff(&m, &seen);
    assert_state(&m, "sent", None);
    assert_eq!(m["attempts"], 4, "{m:#}");
    assert_eq!(emails_of(s, &twice).len(), 4, "one request a try");
    sink_reset(s);
    Ok(())
}

pub fn receipts_move_states_and_protect_the_person(s: &Stack) -> Result<(), Failed> {
    let mut p = lead(s, "receipts", "finance", false);
    at_midday(s, &mut p, json!({}));
    let first = enqueue(s, marketing_email(&p));
    assert_state(&settled(s, &first), "sent", None);

    // Only signed, fresh receipts count.
    let delivered = json!({"message_id": first, "event": "delivered"});
    let a = receipt(s, &delivered, "not-the-receipt-key-000", now_unix());
    assert_eq!(a.status, 401, "{}", text(&a));
    let a = receipt(s, &delivered, RECEIPT_KEY, now_unix() - 3600);
    assert_eq!(a.status, 401, "an hour-old signature: {}", text(&a));
    let a = request(
        "POST",
        &format!("{}/r/generic", deliver(s)),
        &[("Content-Type", "application/json")],
        Some(delivered.to_string().as_bytes()),
    );
    assert_eq!(a.status, 401, "{}", text(&a));
    assert_eq!(message(s, &first)["state"], "sent");

    let a = receipt(s, &delivered, RECEIPT_KEY, now_unix());
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["applied"], 1, "{}", text(&a));
    assert_eq!(message(s, &first)["state"], "delivered");
    let a = receipt(s, &delivered, RECEIPT_KEY, now_unix());
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["applied"], 0, "a repeated receipt moves nothing");

    // A complaint withdraws email consent in the ledger.
    let second = enqueue(s, marketing_email(&p));
    assert_state(&settled(s, &second), "sent", None);
    let a = receipt(
        s,
        &json!({"message_id": second, "event": "complained"}),
        RECEIPT_KEY,
        now_unix(),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(message(s, &second)["state"], "complained");
    let cs = consents(s, &p.id);
    assert_eq!(cs["current"]["email"], false, "{cs:#}");
    let withdrawal = cs["ledger"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["channel"] == "email" && r["granted"] == false)
        .cloned()
        .ok_or_else(|| format!("no withdrawal in {cs:#}"))?;
    assert_eq!(withdrawal["source"], "receipt", "{cs:#}");

    // A bounce marks the address unusable: nothing more is sent to it, not even receipts.
    let mut q = lead(s, "bounce", "retail", false);
    at_midday(s, &mut q, json!({}));
    let bounced = enqueue(s, marketing_email(&q));
    assert_state(&settled(s, &bounced), "sent", None);
    let a = receipt(
        s,
        &json!({"message_id": bounced, "event": "bounced", "detail": "mailbox does not exist"}),
        RECEIPT_KEY,
        now_unix(),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(message(s, &bounced)["state"], "bounced");
    assert_eq!(contact(s, &q.id)["email_status"], "bounced");
    for order in [marketing_email(&q), transactional_email(&q)] {
        let id = enqueue(s, order);
        assert_state(
            &settled(s, &id),
            "suppressed",
            Some("contact_point_unusable"),
        );
        assert!(emails_of(s, &id).is_empty());
    }
    assert_eq!(emails_to(s, &q.email).len(), 1);
    Ok(())
}

/// The A/B arms of the whitepaper, by variant.
fn arms(s: &Stack) -> (Vec<Arm>, Value) {
    let a = admin_get(&format!(
        "{}/v1/templates/whitepaper/results?metric=clicked&min_sample=1",
        s.api()
    ));
    assert_eq!(a.status, 200, "{}", text(&a));
    let v = a.json();
    let n = |x: &Value, k: &str| x[k].as_u64().unwrap_or(0);
    let arms = v["arms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| Arm {
            variant: x["variant"].as_str().unwrap_or_default().to_string(),
            sent: n(x, "sent"),
            delivered: n(x, "delivered"),
            opened: n(x, "opened"),
            clicked: n(x, "clicked"),
            converted: n(x, "converted"),
        })
        .collect();
    (arms, v)
}

fn arm(arms: &[Arm], variant: &str) -> Arm {
    arms.iter()
        .find(|a| a.variant == variant)
        .cloned()
        .unwrap_or(Arm {
            variant: variant.into(),
            ..Arm::default()
        })
}

pub fn templates_are_validated_previewed_and_ab_tested(s: &Stack) -> Result<(), Failed> {
    let put =
        |id: &str, body: &Value| admin_send("PUT", &format!("{}/v1/templates/{id}", s.api()), body);
    let before = admin_get(&format!("{}/v1/templates/whitepaper", s.api())).json();

    // Broken templates are refused with the field and the problem, and nothing is saved.
    let email = |html: &str| {
        json!({"name": "Broken", "channel": "email",
               "locales": {"en": {"subject": "Hi", "html": html}}})
    };
    let broken = [
        (
            email("<p>{{#if tag.industry == \"retail\"}}Shops</p>"),
            "locales.en.html",
            "unclosed {{#if}}",
        ),
        (
            email("<p>Your code: {{ coupon }}</p>"),
            "locales.en.html",
            "unknown variable \"coupon\"",
        ),
        (
            json!({"name": "Broken", "channel": "sms",
                   "locales": {"en": {"subject": "Hi", "text": "Hello"}}}),
            "locales.en.subject",
            "sms templates have text only",
        ),
    ];
    for (i, (body, field, problem)) in broken.iter().enumerate() {
        let id = format!("broken-{}-{i}", now_ms() % 1_000_000_000);
        let a = put(&id, body);
        assert_eq!(a.status, 400, "{body}: {}", text(&a));
        assert_eq!(a.json()["field"], *field, "{}", text(&a));
        let message = a.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(problem), "{message}");
        let saved = admin_get(&format!("{}/v1/templates/{id}", s.api()));
        assert_eq!(
            saved.status,
            404,
            "a refused template was saved: {}",
            text(&saved)
        );
    }
    let a = put("whitepaper", &email("{{#if x}}"));
    assert_eq!(a.status, 400, "{}", text(&a));
    let after = admin_get(&format!("{}/v1/templates/whitepaper", s.api())).json();
    assert_eq!(
        after["version"], before["version"],
        "the live template stays"
    );

    // Messages name a template of their channel with its variables.
    let mut p = lead(s, "ab", "finance", false);
    at_midday(s, &mut p, json!({}));
    let base = json!({"contact_id": p.id, "kind": "marketing"});
    let with = |extra: Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    for (order, field) in [
        (
            with(json!({"channel": "email", "template": "no-such-template"})),
            "template",
        ),
        (
            with(json!({"channel": "email", "template": "welcome-sms"})),
            "template",
        ),
        (
            with(json!({"channel": "sms", "template": "whitepaper"})),
            "template",
        ),
        (with(json!({"channel": "email"})), "template"),
        (
            with(json!({"channel": "sms", "template": "welcome-sms"})),
            "variables",
        ),
    ] {
        let a = post_message(s, &order);
        assert_eq!(
            (a.status, a.json()["field"].clone()),
            (400, json!(field)),
            "{order}: {}",
            text(&a)
        );
    }

    // Previews render without sending.
    let preview = |body: Value| {
        let a = api_post(s, "/v1/templates/whitepaper/preview", &body);
        assert_eq!(a.status, 200, "{body}: {}", text(&a));
        a.json()
    };
    let v = preview(json!({"variables": {}, "lang": "en"}));
    assert_eq!(
        v["subject"], "Hello, your 2026 digital transformation whitepaper",
        "{v:#}"
    );
    let html = v["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("Hi there,") && html.contains("customer stories"),
        "{html}"
    );
    assert!(!v["text"].as_str().unwrap_or_default().is_empty(), "{v:#}");
    let v = preview(json!({"variables": {}, "lang": "en", "variant": "b"}));
    assert_eq!(v["subject"], whitepaper_subject("b"), "{v:#}");
    let v = preview(json!({"contact_id": p.id, "lang": "en"}));
    let html = v["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("data-security case"),
        "the contact's industry: {html}"
    );

    // A/B: each person always gets the same variant; results count sends, opens and clicks.
    let (arms_before, _) = arms(s);
    let mut people = vec![p];
    let variant_of = |p: &Person| kindling::template::variant_for(&p.id, "whitepaper", &["a", "b"]);
    while !(people.iter().any(|p| variant_of(p) == "a")
        && people.iter().any(|p| variant_of(p) == "b"))
    {
        assert!(people.len() < 12, "twelve people and one variant only");
        let mut q = lead(s, "ab", "finance", false);
        at_midday(s, &mut q, json!({}));
        people.push(q);
    }
    let mut sent: Vec<(String, String)> = Vec::new();
    for p in &people {
        sent.push((enqueue(s, marketing_email(p)), variant_of(p).to_string()));
    }
    // A second message to the first person: the same variant again.
    sent.push((
        enqueue(s, marketing_email(&people[0])),
        variant_of(&people[0]).to_string(),
    ));
    for (id, variant) in &sent {
        let m = settled(s, id);
        assert_state(&m, "sent", None);
        assert_eq!(
            m["variant"],
            variant.as_str(),
            "the deterministic draw: {m:#}"
        );
        let mails = emails_of(s, id);
        assert_eq!(mails.len(), 1);
        assert_eq!(body_json(&mails[0])["subject"], whitepaper_subject(variant));
    }
    let count = |v: &str| sent.iter().filter(|(_, x)| x == v).count() as u64;
    let (a_id, _) = sent
        .iter()
        .find(|(_, v)| v == "a")
        .cloned()
        .unwrap_or_default();
    let (b_id, _) = sent
        .iter()
        .find(|(_, v)| v == "b")
        .cloned()
        .unwrap_or_default();
    // A person opens the a-mail and clicks in the b-mail.
    let a_html = html_of(&emails_of(s, &a_id)[0]);
    let pixel = attribute_values(&a_html, "src")
        .into_iter()
        .find(|src| src.starts_with(&format!("{}/o/", s.track())))
        .ok_or("no open pixel")?;
    assert_eq!(
        request("GET", &pixel, &[("User-Agent", CHROME)], None).status,
        200
    );
    let b_html = html_of(&emails_of(s, &b_id)[0]);
    let (link, _) = tracked_links(s, &b_html)
        .into_iter()
        .next()
        .ok_or("no tracked link")?;
    assert_eq!(
        request("GET", &link, &[("User-Agent", CHROME)], None).status,
        302
    );

    let (now, body) = eventually("the open and the click in the results", || {
        let (now, body) = arms(s);
        (arm(&now, "a").opened > arm(&arms_before, "a").opened
            && arm(&now, "b").clicked > arm(&arms_before, "b").clicked)
            .then_some((now, body))
    });
    for (v, n) in [("a", count("a")), ("b", count("b"))] {
        assert_eq!(
            arm(&now, v).sent,
            arm(&arms_before, v).sent + n,
            "{v}: {body:#}"
        );
    }
    assert_eq!(
        arm(&now, "a").opened,
        arm(&arms_before, "a").opened + 1,
        "{body:#}"
    );
    assert_eq!(
        arm(&now, "a").clicked,
        arm(&arms_before, "a").clicked,
        "{body:#}"
    );
    assert_eq!(
        arm(&now, "b").clicked,
        arm(&arms_before, "b").clicked + 1,
        "{body:#}"
    );
    // The verdict is the two-proportion test of the leader against the runner-up.
    let want = judge(&now, Metric::Clicked, 1, 0.05);
    let verdict = &body["verdict"];
    assert_eq!(verdict["leader"], json!(want.leader), "{body:#}");
    assert_eq!(verdict["significant"], want.significant, "{body:#}");
    assert_eq!(verdict["winner"], json!(want.winner), "{body:#}");
    match (verdict["p_value"].as_f64(), want.p_value) {
        (Some(got), Some(p)) => assert!((got - p).abs() < 1e-9, "{body:#}"),
        (None, None) => {}
        (got, p) => panic!("p-value {got:?}, expected {p:?}: {body:#}"),
    }
    let best = now
        .iter()
        .map(|a| a.rate(Metric::Clicked))
        .fold(0.0_f64, f64::max);
    let leader = arm(&now, verdict["leader"].as_str().unwrap_or_default());
    assert!(
        (leader.rate(Metric::Clicked) - best).abs() < 1e-12,
        "{body:#}"
    );
    Ok(())
}

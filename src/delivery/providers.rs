//! The providers of each channel, as pure functions: build the HTTP request that sends one
//! message, and read the provider's answer into sent / retry / fail. The `deliver` Worker
//! performs the fetch in between, so everything here runs (and is tested) without a network.
//!
//! Email goes through SendGrid, SMS through Twilio, WeCom through a group robot or an
//! application, and anything else through a signed generic webhook. Values that end up in a
//! header (of the HTTP request, or of the email SendGrid writes) are made single-line first: a
//! CR or LF in a subject or an address must never become a header of its own.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// WeCom robot markdown content limit (UTF-8 bytes); the robot refuses longer content.
pub const WECOM_ROBOT_MAX_BYTES: usize = 4096;
/// WeCom application text limit (UTF-8 bytes). WeCom cuts longer text itself, possibly inside
/// a character; cutting here keeps the text valid UTF-8.
pub const WECOM_APP_MAX_BYTES: usize = 2048;
/// How far a signed webhook's timestamp may be from the receiver's clock: bounds replays while
/// tolerating clock skew and queueing.
pub const SIGNATURE_TOLERANCE_S: u64 = 300;
/// Longest Retry-After honoured: a provider's (or a proxy's) absurd value must not park a
/// message for years.
pub const MAX_RETRY_AFTER_S: u32 = 86_400;

const BACKOFF_BASE_MS: i64 = 30_000;
const BACKOFF_CAP_MS: i64 = 3_600_000;
const BACKOFF_MIN_MS: i64 = 1_000;

/// An HTTP request to perform, exactly as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first header named `name`, in any ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// e.g. `https://api.sendgrid.com`
    pub endpoint: String,
    pub api_key: String,
    pub from_email: String,
    pub from_name: String,
    pub reply_to: Option<String>,
}

pub struct Email<'a> {
    pub message_id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub html: Option<&'a str>,
    pub text: &'a str,
    /// The one-click unsubscribe URL (RFC 8058).
    pub unsubscribe_url: Option<&'a str>,
    /// `marketing` or `transactional`.
    pub category: &'a str,
}

/// SendGrid v3 Mail Send: `POST {endpoint}/v3/mail/send` with the API key as a bearer token.
/// The message id travels as the custom arg `kindling_message_id`, which SendGrid echoes in
/// every event it posts back (see `receipts::parse_sendgrid`).
pub fn sendgrid(cfg: &EmailConfig, m: &Email) -> HttpRequest {
    let mut from = Map::new();
    from.insert("email".into(), one_line(&cfg.from_email).into());
    let from_name = one_line(&cfg.from_name);
    if !from_name.is_empty() {
        from.insert("name".into(), from_name.into());
    }

    // SendGrid refuses an empty content value, so an empty plain part is left out when there
    // is an HTML part (and kept otherwise, so the refusal names the real problem).
    let mut content = Vec::new();
    let html = m.html.filter(|h| !h.is_empty());
    if !m.text.is_empty() || html.is_none() {
        content.push(json!({"type": "text/plain", "value": m.text}));
    }
    if let Some(h) = html {
        content.push(json!({"type": "text/html", "value": h}));
    }

    let mut body = Map::new();
    body.insert(
        "personalizations".into(),
        json!([{ "to": [{ "email": one_line(m.to) }] }]),
    );
    body.insert("from".into(), Value::Object(from));
    if let Some(reply_to) = cfg.reply_to.as_deref().map(one_line) {
        if !reply_to.is_empty() {
            body.insert("reply_to".into(), json!({ "email": reply_to }));
        }
    }
    body.insert("subject".into(), one_line(m.subject).into());
    body.insert("content".into(), Value::Array(content));
    if let Some(url) = m.unsubscribe_url {
        // Angle brackets delimit the URL in the header; one inside would end it early.
        let url: String = one_line(url)
            .chars()
            .filter(|c| !"<>".contains(*c))
            .collect();
        if !url.is_empty() {
            body.insert(
                "headers".into(),
                json!({
                    "List-Unsubscribe": format!("<{url}>"),
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                }),
            );
        }
    }
    body.insert(
        "custom_args".into(),
        json!({ "kindling_message_id": one_line(m.message_id) }),
    );
    let category = one_line(m.category);
    if !category.is_empty() {
        body.insert("categories".into(), json!([category]));
    }

    HttpRequest {
        method: "POST",
        url: format!("{}/v3/mail/send", base(&cfg.endpoint)),
        headers: vec![
            header(
                "Authorization",
                &format!("Bearer {}", header_text(&cfg.api_key)),
            ),
            header("Content-Type", "application/json"),
        ],
        body: to_json(&Value::Object(body)),
    }
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// e.g. `https://api.twilio.com`
    pub endpoint: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
    /// Where Twilio posts status callbacks; `kindling_message_id` is added to its query.
    pub status_callback: Option<String>,
}

/// Twilio Programmable Messaging: `POST {endpoint}/2010-04-01/Accounts/{sid}/Messages.json`,
/// HTTP Basic `sid:token`, form-urlencoded `To`, `From`, `Body`, `StatusCallback`. Twilio's
/// callback carries no field of ours, so the message id rides in the callback URL's query.
pub fn twilio(cfg: &SmsConfig, message_id: &str, to_e164: &str, body: &str) -> HttpRequest {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &one_line(to_e164));
    form.append_pair("From", &one_line(&cfg.from));
    // The body keeps its line breaks: SMS text may have them, and form encoding makes them
    // inert.
    form.append_pair("Body", body);
    if let Some(callback) = cfg.status_callback.as_deref().filter(|c| !c.is_empty()) {
        let callback = with_query(callback, "kindling_message_id", &one_line(message_id));
        form.append_pair("StatusCallback", &callback);
    }
    let credentials = STANDARD.encode(format!("{}:{}", cfg.account_sid, cfg.auth_token));
    HttpRequest {
        method: "POST",
        url: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base(&cfg.endpoint),
            path_segment(&cfg.account_sid)
        ),
        headers: vec![
            header("Authorization", &format!("Basic {credentials}")),
            header("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body: form.finish().into_bytes(),
    }
}

#[derive(Debug, Clone)]
pub struct WecomRobotConfig {
    /// `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`: the key is the credential.
    pub webhook_url: String,
}

/// WeCom group robot: `POST webhook_url`, a markdown message of at most
/// `WECOM_ROBOT_MAX_BYTES` (cut on a character boundary).
pub fn wecom_robot(cfg: &WecomRobotConfig, content: &str) -> HttpRequest {
    let body = json!({
        "msgtype": "markdown",
        "markdown": { "content": truncate(content, WECOM_ROBOT_MAX_BYTES) },
    });
    HttpRequest {
        method: "POST",
        url: cfg.webhook_url.clone(),
        headers: vec![header("Content-Type", "application/json")],
        body: to_json(&body),
    }
}

#[derive(Debug, Clone)]
pub struct WecomAppConfig {
    /// e.g. `https://qyapi.weixin.qq.com`
    pub endpoint: String,
    pub agent_id: i64,
}

/// WeCom application text message to one member. WeCom's duplicate check (same content, same
/// recipient, 30 minutes) makes a retry after an ambiguous answer safe.
///
/// The access token is in the URL (WeCom's design): do not log this request's URL.
pub fn wecom_app(
    cfg: &WecomAppConfig,
    access_token: &str,
    to_user: &str,
    content: &str,
) -> HttpRequest {
    let body = json!({
        "touser": one_line(to_user),
        "msgtype": "text",
        "agentid": cfg.agent_id,
        "text": { "content": truncate(content, WECOM_APP_MAX_BYTES) },
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 1800,
    });
    HttpRequest {
        method: "POST",
        url: format!(
            "{}/cgi-bin/message/send?access_token={}",
            base(&cfg.endpoint),
            query_value(access_token)
        ),
        headers: vec![header("Content-Type", "application/json")],
        body: to_json(&body),
    }
}

/// WeCom `gettoken`. The corp secret is in the URL (WeCom's design): do not log it.
pub fn wecom_token_request(endpoint: &str, corp_id: &str, secret: &str) -> HttpRequest {
    HttpRequest {
        method: "GET",
        url: format!(
            "{}/cgi-bin/gettoken?corpid={}&corpsecret={}",
            base(endpoint),
            query_value(corp_id),
            query_value(secret)
        ),
        headers: vec![],
        body: vec![],
    }
}

/// Reads a `gettoken` answer: the token and its lifetime in seconds (as WeCom gave it; the
/// caller refreshes early). None for an error answer or anything malformed, including a token
/// that could not travel safely in a URL.
pub fn wecom_token(body: &[u8]) -> Option<(String, i64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if let Some(code) = v.get("errcode") {
        if code.as_i64() != Some(0) {
            return None;
        }
    }
    let token = v.get("access_token")?.as_str()?;
    let expires_in = v.get("expires_in")?.as_i64()?;
    (is_opaque_id(token, 1024) && expires_in > 0).then(|| (token.to_string(), expires_in))
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

/// A generic webhook, signed: `X-Kindling-Signature: v1=<hex HMAC-SHA256(secret,
/// "{timestamp}.{body}")>`. The timestamp is signed with the body so a captured request cannot
/// be replayed later (see `verify_webhook`).
pub fn webhook(
    cfg: &WebhookConfig,
    message_id: &str,
    event: &str,
    body: &[u8],
    unix_seconds: i64,
) -> HttpRequest {
    let timestamp = unix_seconds.to_string();
    let signature = signer(&cfg.secret, &timestamp, body)
        .map(|mac| crate::hex(&mac.finalize().into_bytes()))
        .unwrap_or_default();
    HttpRequest {
        method: "POST",
        url: cfg.url.clone(),
        headers: vec![
            header("Content-Type", "application/json"),
            header("X-Kindling-Event", &header_text(event)),
            header("X-Kindling-Delivery", &header_text(message_id)),
            header("X-Kindling-Timestamp", &timestamp),
            header("X-Kindling-Signature", &format!("v1={signature}")),
        ],
        body: body.to_vec(),
    }
}

/// Verifies a `webhook` signature: the right secret, this exact body and timestamp, and a
/// timestamp within `SIGNATURE_TOLERANCE_S` of `now_unix`. The tag is compared in constant
/// time. An empty secret verifies nothing (a misconfiguration must not accept everyone).
pub fn verify_webhook(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(sent_at) = parse_unix_seconds(timestamp) else {
        return false;
    };
    if now_unix.abs_diff(sent_at) > SIGNATURE_TOLERANCE_S {
        return false;
    }
    let Some(tag) = signature.strip_prefix("v1=").and_then(unhex) else {
        return false;
    };
    signer(secret, timestamp, body).is_some_and(|mac| mac.verify_slice(&tag).is_ok())
}

#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    SendGrid,
    Twilio,
    WecomRobot,
    WecomApp,
    Webhook,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted by the provider; its id for the message when it gave one (SendGrid: the
    /// X-Message-Id header; Twilio: `sid`; WeCom: `msgid`).
    Sent { provider_id: Option<String> },
    /// Try again later (see `backoff_ms`). Reason `token` means: refresh the WeCom access
    /// token first.
    Retry {
        reason: String,
        retry_after_s: Option<u32>,
    },
    /// Do not retry. `invalid_number` and `recipient_unsubscribed` are facts about the
    /// recipient (mark the point invalid / record the opt-out), the rest about the request.
    Fail { reason: String },
}

/// Reads a provider's answer. Status 0 means no answer (timeout, connection closed). Reasons
/// are short codes with no personal data: provider error messages (which quote addresses and
/// numbers) are never copied, only their numeric codes or field names.
pub fn classify(
    provider: &Provider,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Outcome {
    match status {
        0 => return retry("no_response", None),
        408 | 429 | 500..=599 => {
            return retry(&format!("http_{status}"), retry_after(headers));
        }
        _ => {}
    }
    match provider {
        Provider::SendGrid => sendgrid_answer(status, headers, body),
        Provider::Twilio => twilio_answer(status, body),
        Provider::WecomRobot => wecom_answer(false, status, body),
        Provider::WecomApp => wecom_answer(true, status, body),
        Provider::Webhook if is_success(status) => Outcome::Sent { provider_id: None },
        Provider::Webhook => http_failure(status),
    }
}

fn sendgrid_answer(status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
    if is_success(status) {
        let provider_id = find_header(headers, "X-Message-Id")
            .map(str::trim)
            .filter(|id| is_opaque_id(id, 128))
            .map(str::to_string);
        return Outcome::Sent { provider_id };
    }
    if !(400..=499).contains(&status) {
        return http_failure(status);
    }
    // SendGrid names the offending field ("from.email"), which says what to fix without
    // quoting the value.
    let field = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let field = v.get("errors")?.get(0)?.get("field")?.as_str()?.to_string();
        let safe = |c: char| c.is_ascii_alphanumeric() || "._[]-".contains(c);
        (field.len() <= 64 && !field.is_empty() && field.chars().all(safe)).then_some(field)
    });
    Outcome::Fail {
        reason: match field {
            Some(f) => format!("http_{status}:{f}"),
            None => format!("http_{status}"),
        },
    }
}

fn twilio_answer(status: u16, body: &[u8]) -> Outcome {
    let v = serde_json::from_slice::<Value>(body).ok();
    if is_success(status) {
        let provider_id = v
            .as_ref()
            .and_then(|v| v.get("sid")?.as_str())
            .filter(|sid| is_opaque_id(sid, 64))
            .map(str::to_string);
        return Outcome::Sent { provider_id };
    }
    if !(400..=499).contains(&status) {
        return http_failure(status);
    }
    match v.as_ref().and_then(|v| v.get("code")?.as_i64()) {
        // 21211: not a valid number; 21614: not a mobile number (a landline cannot get SMS).
        Some(21211 | 21614) => fail("invalid_number"),
        // 21610: the recipient replied STOP; Twilio refuses until they reply START.
        Some(21610) => fail("recipient_unsubscribed"),
        // 21611: the sender's queue is full, a passing condition.
        Some(21611) => retry("twilio_21611", None),
        Some(code) => fail(&format!("twilio_{code}")),
        None => http_failure(status),
    }
}

/// WeCom answers HTTP 200 with an `errcode`; only a 0 means sent.
fn wecom_answer(app: bool, status: u16, body: &[u8]) -> Outcome {
    if !is_success(status) {
        return http_failure(status);
    }
    // A 200 without a readable errcode (a proxy's page, a cut body) does not say whether the
    // message went: retrying is safe for the app (duplicate check) and at worst repeats a
    // robot post.
    let Some(v) = serde_json::from_slice::<Value>(body).ok() else {
        return retry("malformed_response", None);
    };
    let Some(code) = v.get("errcode").and_then(Value::as_i64) else {
        return retry("malformed_response", None);
    };
    match code {
        0 => {
            // Sending to a member outside the app's visibility still answers 0 and names them.
            let listed = |key: &str| {
                v.get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty())
            };
            if listed("invaliduser") {
                return fail("invalid_user");
            }
            if listed("unlicenseduser") {
                return fail("unlicensed_user");
            }
            let provider_id = v
                .get("msgid")
                .and_then(Value::as_str)
                .filter(|id| is_opaque_id(id, 256))
                .map(str::to_string);
            Outcome::Sent { provider_id }
        }
        // -1: system busy; 45009: call frequency limit; 45033: concurrency limit.
        -1 | 45009 | 45033 => retry(&format!("wecom_{code}"), None),
        // 40001: bad secret/token, 40014: invalid token, 42001: expired token. Only the app
        // uses a token; a robot's key is in its URL and no refresh would help it.
        40001 | 40014 | 42001 if app => retry("token", None),
        _ => fail(&format!("wecom_{code}")),
    }
}

/// Exponential backoff with full jitter: attempt 1 waits up to 30 s, each further attempt
/// doubles the ceiling, capped at one hour, and never less than one second. `jitter` in [0, 1)
/// comes from the caller (the core has no randomness); out-of-range or NaN jitter is clamped.
/// A provider's Retry-After (capped at `MAX_RETRY_AFTER_S`) wins when it is longer.
pub fn backoff_ms(attempt: u32, jitter: f64, retry_after_s: Option<u32>) -> i64 {
    let ceiling = backoff_ceiling_ms(attempt);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // f64 → i64 saturates, and the ceiling is far below 2^53, so this is exact enough.
    let delay = ((ceiling as f64) * jitter) as i64;
    let delay = delay.clamp(BACKOFF_MIN_MS, ceiling);
    let hinted = retry_after_s.map_or(0, |s| i64::from(s.min(MAX_RETRY_AFTER_S)) * 1000);
    delay.max(hinted)
}

/// The longest wait of an attempt before jitter. Attempt 0 counts as the first.
fn backoff_ceiling_ms(attempt: u32) -> i64 {
    // Past 7 doublings the cap has been reached; bounding the shift keeps it from overflowing.
    let doublings = attempt.saturating_sub(1).min(16);
    (BACKOFF_BASE_MS << doublings).min(BACKOFF_CAP_MS)
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

fn retry(reason: &str, retry_after_s: Option<u32>) -> Outcome {
    Outcome::Retry {
        reason: reason.to_string(),
        retry_after_s,
    }
}

fn fail(reason: &str) -> Outcome {
    Outcome::Fail {
        reason: reason.to_string(),
    }
}

fn is_success(status: u16) -> bool {
    (200..=299).contains(&status)
}

/// A non-success status not retried: another 4xx, or a 1xx/3xx/non-standard code, which from
/// an API endpoint means a misconfigured URL that retrying will not fix.
fn http_failure(status: u16) -> Outcome {
    fail(&format!("http_{status}"))
}

/// Retry-After in delta-seconds. The HTTP-date form needs a clock this crate does not have,
/// so it is ignored (the backoff still applies).
fn retry_after(headers: &[(String, String)]) -> Option<u32> {
    let v = find_header(headers, "Retry-After")?.trim();
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: u64 = v.parse().ok()?;
    Some(seconds.min(u64::from(MAX_RETRY_AFTER_S)) as u32)
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// Text for a place that must be one line (an email header SendGrid writes, a form field):
/// control characters and the Unicode line separators become a single space, and the ends are
/// trimmed. The line breaks of an injection attempt thus cannot start a header.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// An HTTP header value of ours from free text: printable ASCII kept, every other byte
/// (controls, non-ASCII, which fetch would refuse) percent-encoded, so it stays recoverable.
fn header_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token or id from a provider: 1..=max printable ASCII characters without spaces, so it is
/// safe to store, log and put in a URL or header.
fn is_opaque_id(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The endpoint without trailing slashes, so `https://x/` and `https://x` build the same URL.
fn base(endpoint: &str) -> &str {
    endpoint.trim_end_matches('/')
}

fn query_value(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One path segment: everything but RFC 3986 unreserved characters percent-encoded, so a
/// malformed account id cannot change the path.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with `name=value` added to its query (before any fragment).
fn with_query(url: &str, name: &str, value: &str) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (url, None),
    };
    let separator = if !head.contains('?') {
        "?"
    } else if head.ends_with('?') || head.ends_with('&') {
        ""
    } else {
        "&"
    };
    let mut out = format!(
        "{head}{separator}{}={}",
        query_value(name),
        query_value(value)
    );
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn to_json(v: &Value) -> Vec<u8> {
    // Serialising a Value cannot fail (its keys are strings); the default is unreachable.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Unix seconds as a signer writes them: optional minus, 1 to 19 digits.
fn parse_unix_seconds(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Lower- or upper-case hex of exactly one SHA-256 tag.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

/// The MAC of `{timestamp}.{body}` under `secret`, ready to finalise or verify.
fn signer(secret: &str, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_config() -> EmailConfig {
        EmailConfig {
            endpoint: "https://api.sendgrid.com/".into(),
            api_key: "SG.test-key".into(),
            from_email: "news@shop.example".into(),
            from_name: "Shop News".into(),
            reply_to: Some("help@shop.example".into()),
        }
    }

    fn email<'a>() -> Email<'a> {
        Email {
            message_id: "msg_0001",
            to: "zhang.wei@example.com",
            subject: "Steel cases are back",
            html: Some("<p>Back in stock</p>"),
            text: "Back in stock",
            unsubscribe_url: Some("https://k.shop.example/u/tok.abc?one_click=1"),
            category: "marketing",
        }
    }

    fn json_body(r: &HttpRequest) -> Value {
        serde_json::from_slice(&r.body).expect("the body is JSON")
    }

    fn no_line_breaks(v: &Value) -> bool {
        match v {
            Value::String(s) => !s.contains(['\r', '\n']),
            Value::Array(a) => a.iter().all(no_line_breaks),
            Value::Object(o) => o
                .iter()
                .all(|(k, v)| !k.contains('\n') && no_line_breaks(v)),
            _ => true,
        }
    }

    #[test]
    fn sendgrid_builds_the_mail_send_request() {
        let r = sendgrid(&email_config(), &email());
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://api.sendgrid.com/v3/mail/send");
        assert_eq!(
            r.headers,
            vec![
                header("Authorization", "Bearer SG.test-key"),
                header("Content-Type", "application/json"),
            ]
        );
        assert_eq!(
            json_body(&r),
            json!({
                "personalizations": [{ "to": [{ "email": "zhang.wei@example.com" }] }],
                "from": { "email": "news@shop.example", "name": "Shop News" },
                "reply_to": { "email": "help@shop.example" },
                "subject": "Steel cases are back",
                "content": [
                    { "type": "text/plain", "value": "Back in stock" },
                    { "type": "text/html", "value": "<p>Back in stock</p>" },
                ],
                "headers": {
                    "List-Unsubscribe": "<https://k.shop.example/u/tok.abc?one_click=1>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                "custom_args": { "kindling_message_id": "msg_0001" },
                "categories": ["marketing"],
            })
        );
    }

    #[test]
    fn sendgrid_leaves_out_what_is_not_given() {
        let cfg = EmailConfig {
            reply_to: None,
            from_name: String::new(),
            ..email_config()
        };
        let m = Email {
            html: None,
            unsubscribe_url: None,
            category: "transactional",
            ..email()
        };
        let body = json_body(&sendgrid(&cfg, &m));
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(!keys.contains(&"headers"), "{keys:?}");
        assert!(!keys.contains(&"reply_to"), "{keys:?}");
        assert_eq!(body["from"], json!({ "email": "news@shop.example" }));
        assert_eq!(
            body["content"],
            json!([{ "type": "text/plain", "value": "Back in stock" }])
        );
        assert_eq!(body["categories"], json!(["transactional"]));

        // An HTML-only message has no empty plain part (SendGrid refuses empty content).
        let m = Email {
            text: "",
            ..email()
        };
        let body = json_body(&sendgrid(&cfg, &m));
        assert_eq!(body["content"].as_array().unwrap().len(), 1);
        assert_eq!(body["content"][0]["type"], "text/html");
    }

    #[test]
    fn sendgrid_cannot_be_made_to_write_extra_headers() {
        let cfg = EmailConfig {
            api_key: "SG.key\r\nX-Injected: 1".into(),
            from_name: "Shop\r\nBcc: all@evil.example".into(),
            from_email: "news@shop.example\n".into(),
            reply_to: Some("help@shop.example\r\nCc: x@evil.example".into()),
            ..email_config()
        };
        let m = Email {
            message_id: "msg_1\r\nX-Evil: 1",
            to: "zhang.wei@example.com\r\nBcc: victim@example.com",
            subject: "Hello\r\nBcc: victim@example.com\u{2028}\u{85}\0",
            unsubscribe_url: Some("https://k.example/u/t>\r\nX-Evil: <1"),
            category: "marketing\r\n",
            ..email()
        };
        let r = sendgrid(&cfg, &m);
        assert_eq!(r.headers.len(), 2);
        for (name, value) in &r.headers {
            assert!(!value.contains(['\r', '\n', '\0']), "{name}: {value:?}");
        }
        let body = json_body(&r);
        // The plain and HTML text may hold line breaks; nothing else may.
        let mut header_fields = body.clone();
        header_fields.as_object_mut().unwrap().remove("content");
        assert!(no_line_breaks(&header_fields), "{header_fields}");
        assert_eq!(body["subject"], "Hello Bcc: victim@example.com");
        assert_eq!(
            body["personalizations"][0]["to"][0]["email"],
            "zhang.wei@example.com Bcc: victim@example.com"
        );
        assert_eq!(body["from"]["email"], "news@shop.example");
        let headers = body["headers"].as_object().unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(
            headers["List-Unsubscribe"],
            "<https://k.example/u/t X-Evil: 1>"
        );
        assert_eq!(
            body["custom_args"]["kindling_message_id"],
            "msg_1 X-Evil: 1"
        );
    }

    fn sms_config() -> SmsConfig {
        SmsConfig {
            endpoint: "https://api.twilio.com".into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: "twilio-token".into(),
            from: "+15550100000".into(),
            status_callback: Some("https://k.shop.example/r/twilio?site=demo".into()),
        }
    }

    fn form(r: &HttpRequest) -> Vec<(String, String)> {
        form_urlencoded::parse(&r.body).into_owned().collect()
    }

    #[test]
    fn twilio_builds_the_messages_request() {
        let r = twilio(
            &sms_config(),
            "msg_0002",
            "+8613800138000",
            "Your code: 1234\nReply STOP to opt out",
        );
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
        let basic = STANDARD.encode("AC0123456789abcdef0123456789abcdef:twilio-token");
        assert_eq!(
            r.headers,
            vec![
                header("Authorization", &format!("Basic {basic}")),
                header("Content-Type", "application/x-www-form-urlencoded"),
            ]
        );
        assert_eq!(
            form(&r),
            vec![
                ("To".into(), "+8613800138000".into()),
                ("From".into(), "+15550100000".into()),
                (
                    "Body".into(),
                    "Your code: 1234\nReply STOP to opt out".into()
                ),
                (
                    "StatusCallback".into(),
                    "https://k.shop.example/r/twilio?site=demo&kindling_message_id=msg_0002".into()
                ),
            ]
        );
    }

    #[test]
    fn twilio_without_a_callback_and_with_hostile_values() {
        let cfg = SmsConfig {
            status_callback: None,
            account_sid: "AC1/../../x?y".into(),
            ..sms_config()
        };
        let r = twilio(&cfg, "m", "+1555\r\nX: y", "hi");
        assert!(r
            .url
            .ends_with("/Accounts/AC1%2F..%2F..%2Fx%3Fy/Messages.json"));
        let fields = form(&r);
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert_eq!(fields[0], ("To".into(), "+1555 X: y".into()));

        let cfg = SmsConfig {
            status_callback: Some("https://k.example/r/twilio#frag".into()),
            ..sms_config()
        };
        let fields = form(&twilio(&cfg, "msg 1&x=y", "+1", "hi"));
        assert_eq!(
            fields[3].1,
            "https://k.example/r/twilio?kindling_message_id=msg+1%26x%3Dy#frag"
        );
    }

    #[test]
    fn wecom_robot_posts_markdown_cut_on_a_character_boundary() {
        let cfg = WecomRobotConfig {
            webhook_url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc".into(),
        };
        let r = wecom_robot(&cfg, "**新线索**\n> 张伟");
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, cfg.webhook_url);
        assert_eq!(r.headers, vec![header("Content-Type", "application/json")]);
        assert_eq!(
            json_body(&r),
            json!({"msgtype": "markdown", "markdown": {"content": "**新线索**\n> 张伟"}})
        );

        let long = "中".repeat(2000); // 6000 bytes
        let content = json_body(&wecom_robot(&cfg, &long))["markdown"]["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(content.len(), 4095);
        assert!(long.starts_with(&content));
        let exact = "a".repeat(4096);
        let content = json_body(&wecom_robot(&cfg, &exact))["markdown"]["content"].clone();
        assert_eq!(content.as_str().unwrap().len(), 4096);
    }

    #[test]
    fn wecom_app_sends_text_with_the_duplicate_check() {
        let cfg = WecomAppConfig {
            endpoint: "https://qyapi.weixin.qq.com".into(),
            agent_id: 1000002,
        };
        let r = wecom_app(&cfg, "tok+/=en", "ZhangWei", "您好");
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.url,
            "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=tok%2B%2F%3Den"
        );
        assert_eq!(r.headers, vec![header("Content-Type", "application/json")]);
        assert_eq!(
            json_body(&r),
            json!({
                "touser": "ZhangWei",
                "msgtype": "text",
                "agentid": 1000002,
                "text": { "content": "您好" },
                "enable_duplicate_check": 1,
                "duplicate_check_interval": 1800,
            })
        );
        let long = "é".repeat(1500); // 3000 bytes
        let body = json_body(&wecom_app(&cfg, "t", "u", &long));
        assert_eq!(body["text"]["content"].as_str().unwrap().len(), 2048);
    }

    #[test]
    fn wecom_token_request_and_answer() {
        let r = wecom_token_request("https://qyapi.weixin.qq.com/", "ww12345", "s3cr&t=x y");
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.url,
            "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww12345&corpsecret=s3cr%26t%3Dx+y"
        );
        assert!(r.headers.is_empty() && r.body.is_empty());

        let ok =
            br#"{"errcode":0,"errmsg":"ok","access_token":"accesstoken000001","expires_in":7200}"#;
        assert_eq!(
            wecom_token(ok),
            Some(("accesstoken000001".to_string(), 7200))
        );
        for bad in [
            &br#"{"errcode":40013,"errmsg":"invalid corpid"}"#[..],
            br#"{"errcode":0,"access_token":"","expires_in":7200}"#,
            br#"{"errcode":0,"access_token":"a b","expires_in":7200}"#,
            br#"{"errcode":0,"access_token":"t","expires_in":0}"#,
            br#"{"errcode":0,"access_token":"t"}"#,
            br#"{"errcode":"0","access_token":"t","expires_in":7200}"#,
            br#"{"errcode":0,"access_token":7,"expires_in":7200}"#,
            br#"[]"#,
            b"",
            b"<html>",
        ] {
            assert_eq!(wecom_token(bad), None, "{}", bad.escape_ascii());
        }
    }

    const NOW: i64 = 1_781_740_800;

    fn hook() -> WebhookConfig {
        WebhookConfig {
            url: "https://crm.example/hooks/kindling".into(),
            secret: "whsec_test".into(),
        }
    }

    #[test]
    fn webhook_is_signed_over_timestamp_and_body() {
        let body = br#"{"event":"lead.sales_ready","contact":"c_0123456789abcdef01234567"}"#;
        let r = webhook(&hook(), "msg_0003", "lead.sales_ready", body, NOW);
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://crm.example/hooks/kindling");
        assert_eq!(r.body, body);
        let mut mac = HmacSha256::new_from_slice(b"whsec_test").unwrap();
        mac.update(format!("{NOW}.").as_bytes());
        mac.update(body);
        let expected = format!("v1={}", crate::hex(&mac.finalize().into_bytes()));
        assert_eq!(
            r.headers,
            vec![
                header("Content-Type", "application/json"),
                header("X-Kindling-Event", "lead.sales_ready"),
                header("X-Kindling-Delivery", "msg_0003"),
                header("X-Kindling-Timestamp", "1781740800"),
                header("X-Kindling-Signature", &expected),
            ]
        );
        assert_eq!(r.header("x-kindling-signature"), Some(expected.as_str()));

        // Header values of ours stay one printable-ASCII line.
        let r = webhook(&hook(), "m\r\nX: 1", "线索\n", body, NOW);
        assert_eq!(r.header("X-Kindling-Delivery"), Some("m%0D%0AX: 1"));
        assert_eq!(r.header("X-Kindling-Event"), Some("%E7%BA%BF%E7%B4%A2%0A"));
    }

    #[test]
    fn verify_webhook_accepts_only_the_genuine_fresh_request() {
        let body = br#"{"a":1}"#;
        let r = webhook(&hook(), "m", "e", body, NOW);
        let ts = r.header("X-Kindling-Timestamp").unwrap();
        let sig = r.header("X-Kindling-Signature").unwrap();
        assert!(verify_webhook("whsec_test", ts, sig, body, NOW));
        assert!(verify_webhook("whsec_test", ts, sig, body, NOW + 300));
        assert!(verify_webhook("whsec_test", ts, sig, body, NOW - 300));
        assert!(verify_webhook(
            "whsec_test",
            ts,
            &sig.to_ascii_uppercase().replacen("V1=", "v1=", 1),
            body,
            NOW
        ));

        assert!(
            !verify_webhook("whsec_test", ts, sig, br#"{"a":2}"#, NOW),
            "tampered"
        );
        assert!(
            !verify_webhook("whsec_other", ts, sig, body, NOW),
            "wrong secret"
        );
        assert!(!verify_webhook("", ts, sig, body, NOW), "no secret");
        assert!(
            !verify_webhook("whsec_test", ts, sig, body, NOW + 301),
            "stale"
        );
        assert!(
            !verify_webhook("whsec_test", ts, sig, body, NOW - 301),
            "future"
        );
        assert!(
            !verify_webhook("whsec_test", "1781740801", sig, body, NOW),
            "another timestamp"
        );
        for bad_ts in [
            "",
            " 1781740800",
            "+1781740800",
            "1.7e9",
            "x",
            "99999999999999999999",
        ] {
            assert!(
                !verify_webhook("whsec_test", bad_ts, sig, body, NOW),
                "{bad_ts}"
            );
        }
        let hex = sig.strip_prefix("v1=").unwrap();
        for bad_sig in [
            "",
            hex,
            &format!("v0={hex}"),
            &format!("v1={}", &hex[..62]),
            &format!("v1={hex}00"),
            &format!("v1={}zz", &hex[..62]),
            &format!("v1={}é", &hex[..62]),
        ] {
            assert!(
                !verify_webhook("whsec_test", ts, bad_sig, body, NOW),
                "{bad_sig}"
            );
        }
        // Extreme clocks do not overflow.
        assert!(!verify_webhook("whsec_test", ts, sig, body, i64::MIN));
        assert!(!verify_webhook("whsec_test", ts, sig, body, i64::MAX));
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| header(n, v)).collect()
    }

    fn sent(id: Option<&str>) -> Outcome {
        Outcome::Sent {
            provider_id: id.map(str::to_string),
        }
    }

    fn again(reason: &str, after: Option<u32>) -> Outcome {
        retry(reason, after)
    }

    /// Provider, status, headers, body, expected outcome.
    type Case<'a> = (Provider, u16, &'a [(&'a str, &'a str)], &'a str, Outcome);

    #[test]
    fn classify_reads_each_providers_answers() {
        use Provider::*;
        let none: &[(&str, &str)] = &[];
        #[rustfmt::skip]
        let table: Vec<Case> = vec![
            // Transport and HTTP-level answers, the same for every provider.
            (SendGrid, 0, none, "", again("no_response", None)),
            (Twilio, 0, none, "", again("no_response", None)),
            (WecomApp, 408, none, "", again("http_408", None)),
            (SendGrid, 429, &[("retry-after", "7")], "", again("http_429", Some(7))),
            (Twilio, 429, &[("Retry-After", " 120 ")], r#"{"code":20429}"#, again("http_429", Some(120))),
            (SendGrid, 429, &[("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")], "", again("http_429", None)),
            (SendGrid, 429, &[("Retry-After", "99999999999")], "", again("http_429", Some(86_400))),
            (SendGrid, 429, &[("Retry-After", "-1")], "", again("http_429", None)),
            (Webhook, 503, &[("Retry-After", "30")], "", again("http_503", Some(30))),
            (SendGrid, 500, none, "", again("http_500", None)),
            (WecomRobot, 502, none, "<html>", again("http_502", None)),
            (Webhook, 599, none, "", again("http_599", None)),
            (Webhook, 301, none, "", fail("http_301")),
            (Webhook, 600, none, "", fail("http_600")),
            (Webhook, 101, none, "", fail("http_101")),
            // SendGrid.
            (SendGrid, 202, &[("X-Message-Id", "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0")], "",
                sent(Some("14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"))),
            (SendGrid, 202, &[("x-message-id", "abc")], "", sent(Some("abc"))),
            (SendGrid, 200, none, "", sent(None)),
            (SendGrid, 202, &[("X-Message-Id", "a b\u{7f}")], "", sent(None)),
            (SendGrid, 400, none,
                r#"{"errors":[{"message":"The from email does not contain a valid address.","field":"from.email","help":null}]}"#,
                fail("http_400:from.email")),
            (SendGrid, 400, none, r#"{"errors":[{"message":"x@y.example is bad","field":"x@y.example"}]}"#, fail("http_400")),
            (SendGrid, 401, none, r#"{"errors":[{"field":null,"message":"authorization required"}]}"#, fail("http_401")),
            (SendGrid, 413, none, "not json", fail("http_413")),
            // Twilio.
            (Twilio, 201, none, r#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued"}"#,
                sent(Some("SM1f0e8ae6ade43cb3c0ce4525424e404f"))),
            (Twilio, 201, none, "{}", sent(None)),
            (Twilio, 400, none,
                r#"{"code":21211,"message":"The 'To' number +15005550001 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
                fail("invalid_number")),
            (Twilio, 400, none, r#"{"code":21614,"message":"'To' number is not a valid mobile number","status":400}"#, fail("invalid_number")),
            (Twilio, 400, none,
                r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}"#,
                fail("recipient_unsubscribed")),
            (Twilio, 400, none, r#"{"code":21611,"status":400}"#, again("twilio_21611", None)),
            (Twilio, 401, none, r#"{"code":20003,"message":"Authenticate","status":401}"#, fail("twilio_20003")),
            (Twilio, 404, none, "", fail("http_404")),
            // WeCom robot.
            (WecomRobot, 200, none, r#"{"errcode":0,"errmsg":"ok"}"#, sent(None)),
            (WecomRobot, 200, none, r#"{"errcode":-1,"errmsg":"system busy"}"#, again("wecom_-1", None)),
            (WecomRobot, 200, none, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#, again("wecom_45009", None)),
            (WecomRobot, 200, none, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#, fail("wecom_93000")),
            (WecomRobot, 200, none, r#"{"errcode":40001,"errmsg":"invalid credential"}"#, fail("wecom_40001")),
            (WecomRobot, 200, none, "", again("malformed_response", None)),
            (WecomRobot, 200, none, r#"{"errmsg":"ok"}"#, again("malformed_response", None)),
            (WecomRobot, 404, none, "", fail("http_404")),
            // WeCom application.
            (WecomApp, 200, none, r#"{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"xPKCxsEPFpnfQqLmhY0o2hcxcAX"}"#,
                sent(Some("xPKCxsEPFpnfQqLmhY0o2hcxcAX"))),
            (WecomApp, 200, none, r#"{"errcode":0,"errmsg":"ok","invaliduser":"ZhangWei","msgid":"x"}"#, fail("invalid_user")),
            (WecomApp, 200, none, r#"{"errcode":0,"errmsg":"ok","unlicenseduser":"ZhangWei"}"#, fail("unlicensed_user")),
            (WecomApp, 200, none, r#"{"errcode":45033,"errmsg":"api concurrent out of limit"}"#, again("wecom_45033", None)),
            (WecomApp, 200, none, r#"{"errcode":40001,"errmsg":"invalid credential"}"#, again("token", None)),
            (WecomApp, 200, none, r#"{"errcode":40014,"errmsg":"invalid access_token"}"#, again("token", None)),
            (WecomApp, 200, none, r#"{"errcode":42001,"errmsg":"access_token expired"}"#, again("token", None)),
            (WecomApp, 200, none, r#"{"errcode":81013,"errmsg":"user & party & tag all invalid"}"#, fail("wecom_81013")),
            (WecomApp, 200, none, r#"{"errcode":"0"}"#, again("malformed_response", None)),
            // Generic webhook.
            (Webhook, 200, none, "", sent(None)),
            (Webhook, 204, none, "", sent(None)),
            (Webhook, 410, none, "", fail("http_410")),
            (Webhook, 400, none, "", fail("http_400")),
        ];
        for (provider, status, hdrs, body, expected) in table {
            let got = classify(&provider, status, &headers(hdrs), body.as_bytes());
            assert_eq!(got, expected, "{provider:?} {status} {body}");
        }
    }

    #[test]
    fn reasons_never_quote_provider_messages() {
        let body = br#"{"code":21408,"message":"Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +8613800138000.","status":400}"#;
        let Outcome::Fail { reason } = classify(&Provider::Twilio, 400, &[], body) else {
            panic!("a 400 is a failure");
        };
        assert_eq!(reason, "twilio_21408");
    }

    #[test]
    fn backoff_grows_to_an_hour_with_full_jitter() {
        let ceilings: Vec<i64> = (0..40)
            .map(|a| backoff_ms(a, 0.999_999_999, None))
            .collect();
        assert!((29_999..=30_000).contains(&ceilings[1]), "{}", ceilings[1]);
        assert!((59_999..=60_000).contains(&ceilings[2]));
        assert!((119_999..=120_000).contains(&ceilings[3]));
        assert_eq!(ceilings[0], ceilings[1], "attempt 0 counts as the first");
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]), "{ceilings:?}");
        assert!(ceilings.iter().all(|&c| c <= 3_600_000));
        assert!(ceilings[8] >= 3_599_990 && ceilings[39] >= 3_599_990);
        for attempt in [0, 1, 2, 5, 7, 8, 31, 32, 64, u32::MAX] {
            let ceiling = backoff_ceiling_ms(attempt);
            for jitter in [
                0.0,
                1e-12,
                0.25,
                0.5,
                0.999,
                1.0,
                7.0,
                -1.0,
                f64::NAN,
                f64::INFINITY,
            ] {
                let d = backoff_ms(attempt, jitter, None);
                assert!((1_000..=ceiling).contains(&d), "{attempt} {jitter}: {d}");
            }
        }
        assert_eq!(backoff_ms(1, 0.0, None), 1_000, "at least one second");
        assert_eq!(backoff_ms(1, 0.5, None), 15_000);
        assert_eq!(backoff_ms(u32::MAX, 0.5, None), 1_800_000);
        assert_eq!(backoff_ms(3, f64::NAN, None), 1_000);
    }

    #[test]
    fn a_longer_retry_after_wins() {
        assert_eq!(backoff_ms(1, 0.5, Some(120)), 120_000);
        assert_eq!(
            backoff_ms(1, 0.5, Some(1)),
            15_000,
            "a shorter one does not"
        );
        assert_eq!(backoff_ms(1, 0.0, Some(0)), 1_000);
        assert_eq!(backoff_ms(20, 0.99, Some(7_200)), 7_200_000);
        assert_eq!(
            backoff_ms(1, 0.5, Some(u32::MAX)),
            86_400_000,
            "capped at a day"
        );
    }

    #[test]
    fn helpers_cut_and_encode_safely() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("aé", 3), "aé");
        assert_eq!(truncate("", 0), "");
        assert_eq!(truncate("😀", 3), "");
        assert_eq!(one_line(" a\r\n\r\nb\t"), "a b");
        assert_eq!(with_query("https://x/cb?", "k", "v"), "https://x/cb?k=v");
        assert_eq!(
            with_query("https://x/cb?a=1&", "k", "v"),
            "https://x/cb?a=1&k=v"
        );
        assert_eq!(header_text("100% ok"), "100%25 ok");
    }
}

//! The event model: what ingress puts on the `events` queue and what engine writes to D1.
//! Event names and property names are a public contract (see README, "Events").

use crate::pii::{PiiKind, Sealed};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Workspaces keep tenants apart in every key; a single-tenant deployment uses this one.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Longest event name accepted.
pub const MAX_NAME_CHARS: usize = 128;
/// Largest serialized `properties` object accepted per event.
pub const MAX_PROPERTIES_BYTES: usize = 4 * 1024;

/// Whether `properties` serialised as JSON is longer than `MAX_PROPERTIES_BYTES`. Every
/// accepted event is checked, and almost all are far below the limit: an upper bound of the
/// length, taken without writing anything, settles those; only properties whose bound
/// exceeds the limit are measured exactly, by serialising them.
pub fn properties_too_large(properties: &Map<String, Value>) -> bool {
    object_len_bound(properties) > MAX_PROPERTIES_BYTES
        && json_len(properties) > MAX_PROPERTIES_BYTES
}

/// A JSON object of `entries`, exactly as `serde_json::to_string` writes the map they come
/// from: compact, with serde_json's escapes (numbers are written by serde_json itself). Every
/// event's properties are written into its insert statement; written directly they cost well
/// under the instructions of serde_json's general serializer, and the map is not cloned.
pub fn object_json<'a>(entries: impl IntoIterator<Item = (&'a String, &'a Value)>) -> String {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, entries);
    // Only whole characters and ASCII were written.
    String::from_utf8(out).unwrap_or_default()
}

/// `value` as JSON text, as `serde_json::to_string` writes it (see [`object_json`]).
pub fn value_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// A JSON object of text `entries`, as [`object_json`] writes the same entries as string
/// values: for small objects composed from borrowed text, without building a map to write.
pub fn text_object_json<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(&mut out, k);
        out.push(b':');
        write_string(&mut out, v);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

fn write_object<'a>(out: &mut Vec<u8>, entries: impl IntoIterator<Item = (&'a String, &'a Value)>) {
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Writing to memory cannot fail.
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// How serde_json escapes each byte of a string: 0 for as it is, `u` for `\u00xx`
/// (lowercase hex), otherwise the letter after the backslash. Only `"`, `\` and the controls
/// below U+0020 are escaped.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// A JSON string with serde_json's escapes ([`ESCAPE`]); runs between escapes are copied
/// whole.
fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        if escape == b'u' {
            let (hi, lo) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// The exact length of `value` as serde_json writes it, counted rather than kept.
fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// At least the length of `value` as JSON: a string byte is written as at most 6 (`\u001f`),
/// structure is counted exactly, numbers are measured.
fn json_len_bound(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(n) => json_len(n),
        Value::String(s) => string_len_bound(s),
        Value::Array(items) => items
            .iter()
            .fold(2 + items.len(), |n, v| n.saturating_add(json_len_bound(v))),
        Value::Object(map) => object_len_bound(map),
    }
}

fn object_len_bound(map: &Map<String, Value>) -> usize {
    // `{}`, and per entry its key, `:`, its value and a `,` (one more than written).
    map.iter().fold(2, |n, (k, v)| {
        n.saturating_add(string_len_bound(k) + 2)
            .saturating_add(json_len_bound(v))
    })
}

fn string_len_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// Session ids: the same alphabet and bounds as visitor ids.
pub fn is_valid_session_id(sid: &str) -> bool {
    is_valid_visitor_id(sid)
}

/// Client-generated event ids: 8-64 URL-safe characters.
pub fn is_valid_event_id(id: &str) -> bool {
    is_valid_visitor_id(id)
}

/// Who an event is about, as ingress knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Subject {
    /// A first-party visitor id from the snippet or a pixel.
    Visitor(SharedStr),
    /// A server-side user id, by its blind index (user ids may be emails in other systems).
    User(SharedStr),
    /// A known contact, from a signed email token.
    Contact(SharedStr),
}

impl Subject {
    /// The identities-table kind for subjects resolved through it.
    pub fn identity_kind(&self) -> Option<&'static str> {
        match self {
            Subject::Visitor(_) => Some("visitor"),
            Subject::User(_) => Some("user_id"),
            Subject::Contact(_) => None,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Subject::Visitor(v) | Subject::User(v) | Subject::Contact(v) => v,
        }
    }
}

/// Personal identifiers an `identify` (or a server-side event with a user id) claims for its
/// subject, sealed before they ever reach the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Sealed>,
}

impl Claims {
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self.email.is_none()
            && self.phone.is_none()
            && self.name.is_none()
    }

    /// The claims that identify a person (a name alone does not).
    pub fn identifiers(&self) -> impl Iterator<Item = (PiiKind, &Sealed)> {
        [
            (PiiKind::UserId, self.user_id.as_ref()),
            (PiiKind::Email, self.email.as_ref()),
            (PiiKind::Phone, self.phone.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
    }
}

/// Text that many events carry alike: their workspace and name, and a beacon's site, visitor
/// and session. The events of a beacon share one copy of each, and constants (the default
/// workspace, the `page` and `identify` names) need none, where a `String` per event and field
/// would cost an allocation (and a free) on every event. It reads, compares, serializes and
/// deserializes as the plain string it holds.
#[derive(Clone)]
pub struct SharedStr(SharedRepr);

#[derive(Clone)]
enum SharedRepr {
    Static(&'static str),
    /// Text as it came (read from a queue message, or given by a caller).
    Owned(String),
    /// One copy for many events; atomically counted, so events stay `Send`.
    Shared(std::sync::Arc<str>),
}

impl SharedStr {
    /// A constant, such as the default workspace: no allocation.
    pub const fn from_static(s: &'static str) -> SharedStr {
        SharedStr(SharedRepr::Static(s))
    }

    /// One allocation, which every clone shares.
    pub fn shared(s: &str) -> SharedStr {
        SharedStr(SharedRepr::Shared(s.into()))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            SharedRepr::Static(s) => s,
            SharedRepr::Owned(s) => s,
            SharedRepr::Shared(s) => s,
        }
    }
}

/// The empty text, as `String::default()`.
impl Default for SharedStr {
    fn default() -> Self {
        SharedStr::from_static("")
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(SharedRepr::Owned(s))
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(SharedRepr::Owned(s.to_string()))
    }
}

// Compared, ordered, hashed and shown as the text it holds, however it is stored.
impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &SharedStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &SharedStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for SharedStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        self == other.as_str()
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SharedStr::from)
    }
}

/// One thing a visitor or contact did, as ingress accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per workspace; assigned by the client or by ingress before the queue send, so a
    /// retried beacon or a redelivered message can never be counted twice.
    pub id: String,
    /// Shared by many events (see [`SharedStr`]).
    pub workspace: SharedStr,
    #[serde(default)]
    pub site: Option<SharedStr>,
    pub subject: Subject,
    #[serde(default)]
    pub session_id: Option<SharedStr>,
    pub name: SharedStr,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Claims::is_empty")]
    pub claims: Claims,
    /// Consent granted or withdrawn with this event (form boxes, unsubscribes); recorded in
    /// the consent ledger by the engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<crate::consent::ConsentChange>,
    pub occurred_at: Millis,
    pub received_at: Millis,
}

/// Why ingress refused an event. Refusals are counted, never silently lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    MissingSite,
    InvalidSite,
    UnknownSite,
    OriginNotAllowed,
    DoNotTrack,
    MissingVisitor,
    InvalidVisitor,
    InvalidUrl,
    InvalidName,
    InvalidEvent,
    PropertiesTooLarge,
    InvalidToken,
    BotCrawler,
    BotHeadless,
    BotPrefetch,
    BotMailProxy,
    FormHoneypot,
    FormTooFast,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MissingSite => "missing_site",
            DropReason::InvalidSite => "invalid_site",
            DropReason::UnknownSite => "unknown_site",
            DropReason::OriginNotAllowed => "origin_not_allowed",
            DropReason::DoNotTrack => "do_not_track",
            DropReason::MissingVisitor => "missing_visitor",
            DropReason::InvalidVisitor => "invalid_visitor",
            DropReason::InvalidUrl => "invalid_url",
            DropReason::InvalidName => "invalid_name",
            DropReason::InvalidEvent => "invalid_event",
            DropReason::PropertiesTooLarge => "properties_too_large",
            DropReason::InvalidToken => "invalid_token",
            DropReason::BotCrawler => "bot_crawler",
            DropReason::BotHeadless => "bot_headless",
            DropReason::BotPrefetch => "bot_prefetch",
            DropReason::BotMailProxy => "bot_mail_proxy",
            DropReason::FormHoneypot => "form_honeypot",
            DropReason::FormTooFast => "form_too_fast",
        }
    }
}

/// What travels on the `events` queue. Drops travel too, so they are counted in D1 without the
/// ingress path ever waiting on the database.
// Messages live only between parsing and serialisation, a few at a time: boxing the event
// would cost an allocation per event for no memory that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IngestMessage {
    Event(Event),
    Dropped {
        source: String,
        reason: DropReason,
        at: Millis,
    },
}

/// A visitor id: first-party, client-generated, opaque. Restricted to a URL-safe alphabet so it
/// can never carry markup or PII-shaped text into storage.
pub fn is_valid_visitor_id(vid: &str) -> bool {
    (8..=64).contains(&vid.len()) && vid.bytes().all(|b| URL_SAFE[usize::from(b)])
}

/// `A-Z a-z 0-9 - _`, by byte: every event id and visitor id is checked.
static URL_SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// Event names: 1-128 printable characters, no control characters.
pub fn is_valid_event_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_ids_are_url_safe_and_bounded() {
        assert!(is_valid_visitor_id("v_8f3a9c2e"));
        assert!(!is_valid_visitor_id("short"));
        assert!(!is_valid_visitor_id(&"a".repeat(65)));
        assert!(!is_valid_visitor_id("abc<script>"));
        assert!(!is_valid_visitor_id("zhang@example.com"));
    }

    #[test]
    fn event_names_refuse_control_characters_and_overlong_names() {
        assert!(is_valid_event_name("whitepaper_downloaded"));
        assert!(is_valid_event_name("下载白皮书"));
        assert!(!is_valid_event_name(""));
        assert!(!is_valid_event_name("a\u{0}b"));
        assert!(!is_valid_event_name(&"x".repeat(129)));
    }

    #[test]
    fn json_text_is_serde_jsons() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let fixed = serde_json::json!({
            "": "", "ascii": every_ascii, "zh": "下载白皮书 “引号” \u{2028}\u{7f}\u{80}\u{9f}",
            "emoji": "😀\"\\/", "n": [0, -1, 1.5, -0.0, 1e300, 5e-324, u64::MAX, i64::MIN, 0.1],
            "b": [true, false, null], "o": {"x": {"y": [[], {}]}}, "e": [], "m": {},
            "\u{1}key\n": "v"
        });
        let mut cases = vec![fixed];
        // And random documents: nested values, strings over a mix of escapes and characters.
        let mut next = crate::test_numbers();
        const CHARS: [char; 12] = [
            'a', 'Z', '0', ' ', '"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '中', '😀',
        ];
        fn random(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> Value {
            let text = |next: &mut dyn FnMut(u64) -> u64| -> String {
                (0..next(12)).map(|_| CHARS[next(12) as usize]).collect()
            };
            match if depth > 3 { next(4) } else { next(6) } {
                0 => Value::Null,
                1 => Value::Bool(next(2) == 0),
                2 => match next(3) {
                    0 => (next(1 << 40) as i64 - (1 << 39)).into(),
                    1 => (next(1 << 40) as f64 / 7.0).into(),
                    _ => next(u64::MAX).into(),
                },
                3 => Value::String(text(next)),
                4 => Value::Array((0..next(4)).map(|_| random(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next(5))
                        .map(|_| (text(next), random(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        for _ in 0..2000 {
            let mut doc = Map::new();
            for _ in 0..next(6) {
                let k: String = (0..next(8)).map(|_| CHARS[next(12) as usize]).collect();
                doc.insert(k, random(&mut next, 0));
            }
            cases.push(Value::Object(doc));
        }
        for v in &cases {
            let expected = serde_json::to_string(v).unwrap();
            assert_eq!(value_json(v), expected);
            if let Value::Object(m) = v {
                assert_eq!(object_json(m), expected);
                let some = m.iter().filter(|(k, _)| k.len() % 2 == 0);
                let filtered: Map<String, Value> =
                    some.clone().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(object_json(some), serde_json::to_string(&filtered).unwrap());
                assert!(object_len_bound(m) >= expected.len());
                assert_eq!(json_len(m), expected.len());
            }
        }
    }

    #[test]
    fn properties_are_measured_as_their_json_text() {
        let cases = [
            serde_json::json!({}),
            serde_json::json!({"url": "https://a.example/?q=\"x\"\\", "n": 1.5e-300, "i": -12, "t": "下载",
                "c": "\u{1}\u{8}\n\u{1f}\u{7f}", "a": [], "o": {"x": [null, true, false, {"y": "z"}]}}),
        ];
        for p in &cases {
            let p = p.as_object().unwrap();
            let exact = serde_json::to_string(p).unwrap().len();
            assert_eq!(json_len(p), exact);
            assert!(object_len_bound(p) >= exact, "{p:?}");
        }
        // The limit holds to the byte, whatever the bound says.
        for (fill, escaped) in [("a", false), ("\u{1}", true), ("é", false)] {
            for extra in [-1i64, 0, 1] {
                let body = MAX_PROPERTIES_BYTES as i64 - 8 + extra; // {"k":""} is 8 bytes
                let per = if escaped { 6 } else { fill.len() as i64 };
                let n = (body / per).max(0) as usize;
                let mut p = Map::new();
                p.insert("k".into(), fill.repeat(n).into());
                let exact = serde_json::to_string(&p).unwrap().len();
                assert_eq!(
                    properties_too_large(&p),
                    exact > MAX_PROPERTIES_BYTES,
                    "{exact}"
                );
            }
        }
    }

    #[test]
    fn shared_texts_compare_and_travel_as_the_strings_they_hold() {
        let texts = [
            SharedStr::from_static("v_12345678"),
            SharedStr::from("v_12345678"),
            SharedStr::shared("v_12345678"),
        ];
        for a in &texts {
            for b in &texts {
                assert_eq!(a, b);
                assert_eq!(a.cmp(b), std::cmp::Ordering::Equal);
            }
            assert_eq!(a, "v_12345678");
            assert_eq!(format!("{a:?}"), format!("{:?}", "v_12345678"));
            assert_eq!(serde_json::to_string(a).unwrap(), "\"v_12345678\"");
        }
        assert!(SharedStr::shared("a") < SharedStr::from_static("b"));
        assert_eq!(SharedStr::default(), "");

        // An event's queue message is what its fields wrote as `String`s.
        let site = SharedStr::shared("demo");
        let event = Event {
            id: "e_12345678".into(),
            workspace: SharedStr::from_static(DEFAULT_WORKSPACE),
            site: Some(site.clone()),
            subject: Subject::Visitor(SharedStr::shared("v_12345678")),
            session_id: Some(SharedStr::shared("s_12345678")),
            name: SharedStr::from_static("page"),
            properties: Map::new(),
            claims: Claims::default(),
            consents: Vec::new(),
            occurred_at: Millis(1),
            received_at: Millis(2),
        };
        let m = IngestMessage::Event(event);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"event","id":"e_12345678","workspace":"default","site":"demo","subject":{"kind":"visitor","value":"v_12345678"},"session_id":"s_12345678","name":"page","properties":{},"occurred_at":1,"received_at":2}"#
        );
        assert_eq!(serde_json::from_str::<IngestMessage>(&text).unwrap(), m);
    }

    #[test]
    fn queue_messages_round_trip_with_a_kind_tag() {
        let m = IngestMessage::Dropped {
            source: "pixel".into(),
            reason: DropReason::InvalidVisitor,
            at: Millis(5),
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "dropped");
        assert_eq!(json["reason"], "invalid_visitor");
        assert_eq!(serde_json::from_value::<IngestMessage>(json).unwrap(), m);
    }
}

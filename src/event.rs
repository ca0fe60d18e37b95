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
    Visitor(String),
    /// A server-side user id, by its blind index (user ids may be emails in other systems).
    User(String),
    /// A known contact, from a signed email token.
    Contact(String),
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

/// One thing a visitor or contact did, as ingress accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per workspace; assigned by the client or by ingress before the queue send, so a
    /// retried beacon or a redelivered message can never be counted twice.
    pub id: String,
    pub workspace: String,
    #[serde(default)]
    pub site: Option<String>,
    pub subject: Subject,
    #[serde(default)]
    pub session_id: Option<String>,
    pub name: String,
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
    (8..=64).contains(&vid.len())
        && vid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

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

//! The event model: what ingress puts on the `events` queue and what engine writes to D1.
//! Event names and property names are a public contract (see README, "Events").

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Workspaces keep tenants apart in every key; a single-tenant deployment uses this one.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Longest event name accepted.
pub const MAX_NAME_CHARS: usize = 128;
/// Largest serialized `properties` object accepted per event.
pub const MAX_PROPERTIES_BYTES: usize = 4 * 1024;

/// One thing a visitor or contact did, as ingress accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per workspace; assigned by the client or by ingress before the queue send, so a
    /// redelivered message can never be counted twice.
    pub id: String,
    pub workspace: String,
    pub site: String,
    pub visitor_id: String,
    pub name: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
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
    MissingVisitor,
    InvalidVisitor,
    InvalidUrl,
    InvalidName,
    PropertiesTooLarge,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MissingSite => "missing_site",
            DropReason::InvalidSite => "invalid_site",
            DropReason::UnknownSite => "unknown_site",
            DropReason::MissingVisitor => "missing_visitor",
            DropReason::InvalidVisitor => "invalid_visitor",
            DropReason::InvalidUrl => "invalid_url",
            DropReason::InvalidName => "invalid_name",
            DropReason::PropertiesTooLarge => "properties_too_large",
        }
    }
}

/// What travels on the `events` queue. Drops travel too, so they are counted in D1 without the
/// ingress path ever waiting on the database.
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

//! Consent: what a person agreed to, on which channel, and the one answer every sender asks
//! for — "may this contact receive marketing on this channel now?".
//!
//! Consent is never inferred. Only an explicit grant (a ticked box with its exact wording and
//! version) allows marketing; a withdrawal (unsubscribe, preference page, erasure, provider
//! complaint) stops it from the moment it is recorded. The latest entry per channel decides.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// The channels marketing can use, each consented separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Wecom,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Wecom];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Wecom => "wecom",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The only purpose recorded today; kept as a column so service or survey messages can get
/// their own consent later without a migration.
pub const MARKETING: &str = "marketing";

/// One grant or withdrawal as it travels on the queue with the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    /// Unique within the event (the form's consent item id, or the channel).
    pub item: String,
    pub channel: Channel,
    pub purpose: String,
    pub granted: bool,
    /// The version of the exact wording the person saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wording_version: Option<String>,
    /// `form`, `unsubscribe`, `preferences`, `erasure`, `receipt`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Keyed hash of the client IP: proves where consent came from without storing the IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// A ledger row as the decision reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub channel: Channel,
    pub purpose: String,
    pub granted: bool,
    pub recorded_at: Millis,
}

/// What the decision knows about the contact point (address or number) of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactPoint {
    Missing,
    Valid,
    /// Flagged by cleaning or a provider receipt (`invalid`, `bounced`).
    Unusable,
}

/// Why marketing is not allowed. Every refusal is recorded with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    NoConsent,
    Withdrawn,
    NoContactPoint,
    ContactPointUnusable,
    Erased,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoConsent => "no_consent",
            Refusal::Withdrawn => "withdrawn",
            Refusal::NoContactPoint => "no_contact_point",
            Refusal::ContactPointUnusable => "contact_point_unusable",
            Refusal::Erased => "erased",
        }
    }
}

/// May this contact receive marketing on `channel` at `now`? Entries recorded after `now` do
/// not count (time is a parameter: a replay in virtual time sees the ledger as it was).
/// Of entries recorded at the same instant, a withdrawal wins.
pub fn may_market(
    ledger: &[LedgerEntry],
    channel: Channel,
    point: ContactPoint,
    erased: bool,
    now: Millis,
) -> Result<(), Refusal> {
    if erased {
        return Err(Refusal::Erased);
    }
    let latest = ledger
        .iter()
        .filter(|e| e.channel == channel && e.purpose == MARKETING && e.recorded_at <= now)
        .max_by_key(|e| (e.recorded_at, !e.granted));
    match latest {
        None => return Err(Refusal::NoConsent),
        Some(e) if !e.granted => return Err(Refusal::Withdrawn),
        Some(_) => {}
    }
    match point {
        ContactPoint::Valid => Ok(()),
        ContactPoint::Missing => Err(Refusal::NoContactPoint),
        ContactPoint::Unusable => Err(Refusal::ContactPointUnusable),
    }
}

/// The current state per channel, for the preference page and the api.
pub fn current(ledger: &[LedgerEntry], now: Millis) -> Vec<(Channel, Option<bool>)> {
    Channel::ALL
        .into_iter()
        .map(|c| {
            let state = ledger
                .iter()
                .filter(|e| e.channel == c && e.purpose == MARKETING && e.recorded_at <= now)
                .max_by_key(|e| (e.recorded_at, !e.granted))
                .map(|e| e.granted);
            (c, state)
        })
        .collect()
}

/// The wording version of the consent the preference page itself asks for.
pub const PREFERENCES_WORDING_VERSION: &str = "preferences-1";

/// Who changed their preferences, and how, for [`preference_event`].
pub struct PreferenceChange<'a> {
    pub workspace: &'a str,
    pub contact_id: &'a str,
    pub event_id: &'a str,
    /// `unsubscribe` (one click) or `preferences` (the page's form).
    pub source: &'a str,
    pub changes: Vec<(Channel, bool)>,
    pub ip_hash: Option<String>,
    pub user_agent: Option<&'a str>,
    pub now: Millis,
}

/// The event recording a preference change: `unsubscribed` when everything changed is a
/// withdrawal, `preferences_updated` otherwise. It goes through the same ingest statements as
/// every other event, so the ledger row, the timeline and the merge rules are the same.
pub fn preference_event(p: PreferenceChange<'_>) -> crate::event::Event {
    let all_withdrawn = p.changes.iter().all(|(_, granted)| !granted);
    let consents = p
        .changes
        .iter()
        .map(|(channel, granted)| ConsentChange {
            item: channel.as_str().into(),
            channel: *channel,
            purpose: MARKETING.into(),
            granted: *granted,
            wording_version: granted.then(|| PREFERENCES_WORDING_VERSION.to_string()),
            source: p.source.into(),
            form_id: None,
            ip_hash: p.ip_hash.clone(),
            user_agent: p.user_agent.map(|ua| ua.chars().take(512).collect()),
        })
        .collect();
    let mut properties = serde_json::Map::new();
    properties.insert("source".into(), p.source.into());
    for (channel, granted) in &p.changes {
        properties.insert(channel.as_str().into(), (*granted).into());
    }
    crate::event::Event {
        id: p.event_id.into(),
        workspace: p.workspace.into(),
        site: None,
        subject: crate::event::Subject::Contact(p.contact_id.into()),
        session_id: None,
        name: if all_withdrawn {
            "unsubscribed"
        } else {
            "preferences_updated"
        }
        .into(),
        properties,
        claims: Default::default(),
        consents,
        occurred_at: p.now,
        received_at: p.now,
    }
}

/// A consent record brought from another system (a CRM, an offline sign-up sheet, a WeChat
/// official account): `POST /v1/contacts/{id}/consents`. The body names the channel, whether
/// consent was granted, the wording version the person saw, where it comes from and when it was
/// given; the time is honoured within the backfill bounds of server-side events, so a record
/// keeps its original date. Like every ledger entry it is appended, never edited.
pub fn imported_event(
    workspace: &str,
    contact_id: &str,
    event_id: &str,
    body: &serde_json::Value,
    now: Millis,
) -> Result<crate::event::Event, crate::Error> {
    use crate::Error;
    let channel = body["channel"]
        .as_str()
        .and_then(Channel::parse)
        .ok_or_else(|| Error::invalid("channel", "channel is email, sms or wecom"))?;
    let granted = body["granted"]
        .as_bool()
        .ok_or_else(|| Error::invalid("granted", "granted is true or false"))?;
    let text = |k: &str, max: usize| -> Result<Option<String>, Error> {
        match &body[k] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(s) if (1..=max).contains(&s.trim().len()) => {
                Ok(Some(s.trim().to_string()))
            }
            _ => Err(Error::invalid(
                k,
                format!("{k} is text of 1–{max} characters"),
            )),
        }
    };
    let wording_version = text("wording_version", 64)?;
    if granted && wording_version.is_none() {
        return Err(Error::invalid(
            "wording_version",
            "a grant names the version of the wording the person agreed to",
        ));
    }
    let source = text("source", 64)?.unwrap_or_else(|| "import".into());
    let at = match &body["recorded_at"] {
        serde_json::Value::Null => now,
        v => {
            let t = v
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| Millis(t.timestamp_millis()))
                .ok_or_else(|| Error::invalid("recorded_at", "an RFC 3339 time"))?;
            if t.0 < now.0 - crate::segment::BACKFILL_MS || t.0 > now.0 + crate::segment::FUTURE_MS
            {
                return Err(Error::invalid(
                    "recorded_at",
                    "within the last 90 days, and not in the future",
                ));
            }
            t
        }
    };
    let mut properties = serde_json::Map::new();
    properties.insert("source".into(), source.as_str().into());
    properties.insert(channel.as_str().into(), granted.into());
    Ok(crate::event::Event {
        id: event_id.into(),
        workspace: workspace.into(),
        site: None,
        subject: crate::event::Subject::Contact(contact_id.into()),
        session_id: None,
        name: "consent_imported".into(),
        properties,
        claims: Default::default(),
        consents: vec![ConsentChange {
            item: channel.as_str().into(),
            channel,
            purpose: MARKETING.into(),
            granted,
            wording_version,
            source,
            form_id: None,
            ip_hash: None,
            user_agent: None,
        }],
        occurred_at: at,
        received_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channel: Channel, granted: bool, at: i64) -> LedgerEntry {
        LedgerEntry {
            channel,
            purpose: MARKETING.into(),
            granted,
            recorded_at: Millis(at),
        }
    }

    #[test]
    fn nothing_recorded_means_no() {
        let r = may_market(&[], Channel::Email, ContactPoint::Valid, false, Millis(10));
        assert_eq!(r, Err(Refusal::NoConsent));
    }

    #[test]
    fn a_grant_allows_only_its_own_channel() {
        let l = [entry(Channel::Email, true, 5)];
        assert_eq!(
            may_market(&l, Channel::Email, ContactPoint::Valid, false, Millis(10)),
            Ok(())
        );
        assert_eq!(
            may_market(&l, Channel::Sms, ContactPoint::Valid, false, Millis(10)),
            Err(Refusal::NoConsent)
        );
    }

    #[test]
    fn the_latest_entry_decides_and_the_future_does_not_count() {
        let l = [
            entry(Channel::Email, true, 5),
            entry(Channel::Email, false, 8),
        ];
        let at = |t| may_market(&l, Channel::Email, ContactPoint::Valid, false, Millis(t));
        assert_eq!(at(6), Ok(()));
        assert_eq!(at(8), Err(Refusal::Withdrawn));
        assert_eq!(at(4), Err(Refusal::NoConsent));
        let regranted = [l[0].clone(), l[1].clone(), entry(Channel::Email, true, 9)];
        assert_eq!(
            may_market(
                &regranted,
                Channel::Email,
                ContactPoint::Valid,
                false,
                Millis(9)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_withdrawal_at_the_same_instant_wins() {
        let l = [entry(Channel::Sms, false, 5), entry(Channel::Sms, true, 5)];
        assert_eq!(
            may_market(&l, Channel::Sms, ContactPoint::Valid, false, Millis(5)),
            Err(Refusal::Withdrawn)
        );
    }

    #[test]
    fn consent_without_a_usable_address_or_after_erasure_is_not_enough() {
        let l = [entry(Channel::Email, true, 1)];
        let with = |p, erased| may_market(&l, Channel::Email, p, erased, Millis(2));
        assert_eq!(
            with(ContactPoint::Missing, false),
            Err(Refusal::NoContactPoint)
        );
        assert_eq!(
            with(ContactPoint::Unusable, false),
            Err(Refusal::ContactPointUnusable)
        );
        assert_eq!(with(ContactPoint::Valid, true), Err(Refusal::Erased));
    }

    #[test]
    fn current_state_lists_every_channel() {
        let l = [entry(Channel::Wecom, true, 1)];
        assert_eq!(
            current(&l, Millis(2)),
            vec![
                (Channel::Email, None),
                (Channel::Sms, None),
                (Channel::Wecom, Some(true))
            ]
        );
    }
}

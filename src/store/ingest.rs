//! Writing a queue batch of ingested events: one D1 round trip for the whole batch.
//!
//! The batch runs in this order, each step idempotent so a redelivered batch changes nothing:
//! 1. subjects: every visitor / server-side user gets its contact and identity (derived ids);
//! 2. claims: identify claims attach user ids, emails and phones to the subject's contact, or,
//!    when another contact already holds one, record a merge of the anonymous contact into it;
//! 3. merges: pending merges move identities and events to the surviving contact and are marked
//!    applied — history is moved, never deleted;
//! 4. events, inserted by id, resolved to their contact through the identities;
//! 5. contact touches (first/last seen, attribution);
//! 6. scoring: points, score, lead status, "sales ready" (`store::scoring`), and drop counters.

use super::{Statement, Value};
use crate::event::{Claims, DropReason, Event, IngestMessage, Subject};
use crate::identity::{anonymous_contact_id, user_contact_id};
use crate::scoring::Model;
use crate::time::Millis;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

const INSERT_CONTACT: &str = "INSERT OR IGNORE INTO contacts \
    (id, workspace, lead_status, first_seen_at, last_seen_at, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?4, ?4, ?4)";

const INSERT_SUBJECT_IDENTITY: &str = "INSERT OR IGNORE INTO identities \
    (workspace, kind, value, contact_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";

const CLAIM_IDENTITY: &str = "INSERT OR IGNORE INTO identities \
    (workspace, kind, value, contact_id, created_at) \
    SELECT ?1, ?4, ?5, contact_id, ?6 FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3";

// Another contact already holds the claimed identifier: the subject's contact merges into it,
// but only while it holds no email or phone of its own (an anonymous visitor, or a server-side
// user id seen for the first time). Two people with contact points are never merged
// automatically.
const RECORD_MERGE: &str = "INSERT OR IGNORE INTO merges \
    (workspace, from_contact, into_contact, cause, event_id, merged_at) \
    SELECT ?1, s.contact_id, c.contact_id, 'identify', ?6, ?7 \
    FROM identities s, identities c, contacts sc \
    WHERE s.workspace = ?1 AND s.kind = ?2 AND s.value = ?3 \
      AND c.workspace = ?1 AND c.kind = ?4 AND c.value = ?5 \
      AND s.contact_id <> c.contact_id \
      AND sc.id = s.contact_id AND sc.email_index IS NULL AND sc.phone_index IS NULL";

// A known contact's visitor identifying as someone else: the device now belongs to them;
// the history already recorded stays with whoever it was.
const MOVE_DEVICE: &str = "UPDATE identities SET contact_id = \
      (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?4 AND value = ?5) \
    WHERE workspace = ?1 AND kind = ?2 AND value = ?3 AND ?2 = 'visitor' \
      AND contact_id <> (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?4 AND value = ?5)";

const SET_EMAIL: &str = "UPDATE contacts SET email_cipher = ?4, email_index = ?5, \
    lead_status = CASE WHEN lead_status = 'anonymous' THEN 'known' ELSE lead_status END, updated_at = ?6 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)";
const SET_PHONE: &str = "UPDATE contacts SET phone_cipher = ?4, phone_index = ?5, \
    lead_status = CASE WHEN lead_status = 'anonymous' THEN 'known' ELSE lead_status END, updated_at = ?6 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)";
const SET_NAME: &str = "UPDATE contacts SET name_cipher = ?4, updated_at = ?6 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3) AND ?5 = ?5";
const SET_KNOWN: &str = "UPDATE contacts SET \
    lead_status = CASE WHEN lead_status = 'anonymous' THEN 'known' ELSE lead_status END, updated_at = ?4 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)";
const SET_ATTRIBUTES: &str = "UPDATE contacts SET attributes = json_patch(attributes, ?4), updated_at = ?5 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)";

// Applying pending merges. The surviving contact inherits the earliest first touch and the
// widest seen span; identities and events follow.
const MERGE_SPAN: &str = "UPDATE contacts SET \
    first_seen_at = min(first_seen_at, (SELECT min(f.first_seen_at) FROM merges m JOIN contacts f ON f.id = m.from_contact \
        WHERE m.applied = 0 AND m.into_contact = contacts.id)), \
    last_seen_at = max(last_seen_at, (SELECT max(f.last_seen_at) FROM merges m JOIN contacts f ON f.id = m.from_contact \
        WHERE m.applied = 0 AND m.into_contact = contacts.id)) \
    WHERE id IN (SELECT into_contact FROM merges WHERE applied = 0)";
const MERGE_FIRST_TOUCH: &str = "UPDATE contacts SET (first_touch, first_touch_at) = \
    (SELECT f.first_touch, f.first_touch_at FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.first_touch_at IS NOT NULL \
      ORDER BY f.first_touch_at LIMIT 1) \
    WHERE id IN (SELECT m.into_contact FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND f.first_touch_at IS NOT NULL \
        AND (contacts.first_touch_at IS NULL OR f.first_touch_at < contacts.first_touch_at))";
// Two known records of one person (found by monthly cleaning): the survivor keeps its own
// contact points and takes the ones it lacked.
const MERGE_CONTACT_POINTS: &str = "UPDATE contacts SET \
    email_cipher = COALESCE(email_cipher, (SELECT f.email_cipher FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.email_index IS NOT NULL ORDER BY f.id LIMIT 1)), \
    email_index = COALESCE(email_index, (SELECT f.email_index FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.email_index IS NOT NULL ORDER BY f.id LIMIT 1)), \
    phone_cipher = COALESCE(phone_cipher, (SELECT f.phone_cipher FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.phone_index IS NOT NULL ORDER BY f.id LIMIT 1)), \
    phone_index = COALESCE(phone_index, (SELECT f.phone_index FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.phone_index IS NOT NULL ORDER BY f.id LIMIT 1)), \
    name_cipher = COALESCE(name_cipher, (SELECT f.name_cipher FROM merges m JOIN contacts f ON f.id = m.from_contact \
      WHERE m.applied = 0 AND m.into_contact = contacts.id AND f.name_cipher IS NOT NULL ORDER BY f.id LIMIT 1)) \
    WHERE id IN (SELECT into_contact FROM merges WHERE applied = 0)";
// Points moved: the cached score follows.
const MERGE_SCORE: &str =
    "UPDATE contacts SET score = (SELECT COALESCE(sum(delta), 0) FROM points p \
    WHERE p.workspace = contacts.workspace AND p.contact_id = contacts.id) \
    WHERE id IN (SELECT into_contact FROM merges WHERE applied = 0)";
const MERGE_IDENTITIES: &str = "UPDATE identities SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = identities.workspace AND m.from_contact = identities.contact_id) \
    WHERE contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
const MERGE_EVENTS: &str = "UPDATE events SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = events.workspace AND m.from_contact = events.contact_id) \
    WHERE workspace = ?1 AND contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
const MERGE_MARK_CONTACTS: &str = "UPDATE contacts SET merged_into = \
    (SELECT into_contact FROM merges m WHERE m.from_contact = contacts.id) \
    WHERE id IN (SELECT from_contact FROM merges WHERE applied = 0)";
// Points and signals follow; a once-only award both contacts earned stays with the merged one
// (UPDATE OR IGNORE), so the survivor never holds it twice.
const MERGE_POINTS: &str = "UPDATE OR IGNORE points SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = points.workspace AND m.from_contact = points.contact_id) \
    WHERE workspace = ?1 AND contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
const MERGE_SIGNALS: &str = "UPDATE OR IGNORE signals SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = signals.workspace AND m.from_contact = signals.contact_id) \
    WHERE workspace = ?1 AND contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
const MERGE_CONSENTS: &str = "UPDATE consents SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = consents.workspace AND m.from_contact = consents.contact_id) \
    WHERE workspace = ?1 AND contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
const MERGE_ORDERS: &str = "UPDATE orders SET contact_id = \
    (SELECT into_contact FROM merges m WHERE m.workspace = orders.workspace AND m.from_contact = orders.contact_id) \
    WHERE workspace = ?1 AND contact_id IN (SELECT from_contact FROM merges WHERE applied = 0)";
// The survivor's facts changed: its tags are due at the next pass.
const MERGE_TAGS_DUE: &str = "UPDATE contacts SET tags_due_at = 0 \
    WHERE id IN (SELECT into_contact FROM merges WHERE applied = 0)";
const MERGE_DONE: &str = "UPDATE merges SET applied = 1 WHERE applied = 0";

// The contact comes from the identity table (or the token), not from a derived id: once a
// visitor has been merged, its later events land on the surviving contact.
const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events \
    (workspace, id, site, visitor_id, contact_id, name, properties, occurred_at, received_at, session_id) \
    VALUES (?1, ?4, ?5, ?6, \
      COALESCE(?7, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)), \
      ?8, ?9, ?10, ?11, ?12)";

const TOUCH_CONTACT: &str = "UPDATE contacts SET \
    first_seen_at = min(first_seen_at, ?4), \
    decay_level = CASE WHEN ?5 > last_seen_at THEN 0 ELSE decay_level END, \
    last_seen_at = max(last_seen_at, ?5) \
    WHERE id = COALESCE(?6, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3))";

const FIRST_TOUCH: &str = "UPDATE contacts SET first_touch = ?4, first_touch_at = ?5 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3) \
      AND (first_touch_at IS NULL OR first_touch_at > ?5)";
const LAST_TOUCH: &str = "UPDATE contacts SET last_touch = ?4, last_touch_at = ?5 \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3) \
      AND (last_touch_at IS NULL OR last_touch_at < ?5)";

// After the merges, so a grant lands on the contact that survives. Ids derive from the event,
// so a redelivered batch records nothing twice.
const RECORD_CONSENT: &str = "INSERT OR IGNORE INTO consents \
    (workspace, id, contact_id, channel, purpose, granted, wording_version, source, form_id, \
     event_id, ip_hash, user_agent, recorded_at) \
    SELECT ?1, ?4, c, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15 FROM \
      (SELECT COALESCE(?5, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)) AS c) \
    WHERE c IS NOT NULL";

const COUNT_DROPS: &str =
    "INSERT INTO ingest_drops (day, source, reason, count) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (day, source, reason) DO UPDATE SET count = count + excluded.count";

/// The statements that apply every pending merge: the surviving contact takes the history,
/// identities, points, signals, consent records and any contact point it lacked.
pub(super) fn apply_merges(workspace: &str) -> Vec<Statement> {
    let ws = || vec![Value::from(workspace)];
    vec![
        Statement::new(MERGE_SPAN, vec![]),
        Statement::new(MERGE_FIRST_TOUCH, vec![]),
        Statement::new(MERGE_CONTACT_POINTS, vec![]),
        Statement::new(MERGE_IDENTITIES, vec![]),
        Statement::new(MERGE_EVENTS, ws()),
        Statement::new(MERGE_POINTS, ws()),
        Statement::new(MERGE_SIGNALS, ws()),
        Statement::new(MERGE_CONSENTS, ws()),
        Statement::new(MERGE_ORDERS, ws()),
        Statement::new(MERGE_TAGS_DUE, vec![]),
        Statement::new(MERGE_SCORE, vec![]),
        Statement::new(MERGE_MARK_CONTACTS, vec![]),
        Statement::new(MERGE_DONE, vec![]),
    ]
}

/// How a statement finds the subject's contact: through the identities (kind, value), or
/// directly (a contact named by a signed token).
pub(super) fn subject_parts(subject: &Subject) -> (&'static str, &str, Value) {
    match subject {
        Subject::Contact(c) => ("", "", Value::Text(c.clone())),
        s => (
            s.identity_kind().unwrap_or_default(),
            s.value(),
            Value::Null,
        ),
    }
}

/// The first three parameters of every subject-resolving statement.
fn subject_params(workspace: &str, kind: &str, value: &str) -> Vec<Value> {
    vec![workspace.into(), kind.into(), value.into()]
}

/// The statements that record a batch of queue messages, scoring them with `model` when given.
pub fn batch_statements(messages: &[IngestMessage], model: Option<&Model>) -> Vec<Statement> {
    let mut subjects: BTreeMap<(&str, &Subject), (Millis, Millis)> = BTreeMap::new();
    let mut drops: BTreeMap<(String, &str, DropReason), i64> = BTreeMap::new();
    let mut events: Vec<&Event> = Vec::new();
    for m in messages {
        match m {
            IngestMessage::Event(e) => {
                let span = subjects
                    .entry((&e.workspace, &e.subject))
                    .or_insert((e.occurred_at, e.occurred_at));
                span.0 = span.0.min(e.occurred_at);
                span.1 = span.1.max(e.occurred_at);
                events.push(e);
            }
            IngestMessage::Dropped { source, reason, at } => {
                *drops.entry((at.utc_day(), source, *reason)).or_default() += 1;
            }
        }
    }

    let mut out = Vec::with_capacity(subjects.len() * 3 + events.len() * 2 + drops.len());
    for ((workspace, subject), (first, _)) in &subjects {
        let (contact, status) = match subject {
            Subject::Visitor(v) => (anonymous_contact_id(workspace, v), "anonymous"),
            Subject::User(u) => (user_contact_id(workspace, u), "known"),
            Subject::Contact(_) => continue,
        };
        out.push(Statement::new(
            INSERT_CONTACT,
            vec![
                contact.clone().into(),
                (*workspace).into(),
                status.into(),
                (*first).into(),
            ],
        ));
        let kind = subject.identity_kind().unwrap_or_default();
        out.push(Statement::new(
            INSERT_SUBJECT_IDENTITY,
            vec![
                (*workspace).into(),
                kind.into(),
                subject.value().into(),
                contact.into(),
                (*first).into(),
            ],
        ));
    }

    // Identify events are applied in time order, so the latest claim wins.
    let mut claimed: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| !e.claims.is_empty() && e.subject.identity_kind().is_some())
        .collect();
    claimed.sort_by_key(|e| e.occurred_at);
    for e in &claimed {
        claim_statements(e, &mut out);
    }
    if !claimed.is_empty() {
        out.extend(apply_merges(claimed[0].workspace.as_str()));
    }

    for e in &events {
        let (kind, value, contact) = subject_parts(&e.subject);
        let visitor = match &e.subject {
            Subject::Visitor(v) => Value::Text(v.clone()),
            _ => Value::Null,
        };
        let mut p = subject_params(&e.workspace, kind, value);
        p.extend([
            e.id.as_str().into(),
            e.site.clone().into(),
            visitor,
            contact,
            e.name.as_str().into(),
            Value::Text(Json::Object(e.properties.clone()).to_string()),
            e.occurred_at.into(),
            e.received_at.into(),
            e.session_id.clone().into(),
        ]);
        out.push(Statement::new(INSERT_EVENT, p));
    }
    for e in &events {
        consent_statements(e, &mut out);
    }
    for ((workspace, subject), (first, last)) in &subjects {
        let (kind, value, contact) = subject_parts(subject);
        let mut p = subject_params(workspace, kind, value);
        p.extend([(*first).into(), (*last).into(), contact]);
        out.push(Statement::new(TOUCH_CONTACT, p));
    }
    for e in &events {
        if let (Some(kind), Some(touch)) = (e.subject.identity_kind(), touch_of(e)) {
            for sql in [FIRST_TOUCH, LAST_TOUCH] {
                let mut p = subject_params(&e.workspace, kind, e.subject.value());
                p.extend([Value::Text(touch.to_string()), e.occurred_at.into()]);
                out.push(Statement::new(sql, p));
            }
        }
    }
    for e in events
        .iter()
        .filter(|e| super::lifecycle::STAGE_EVENTS.contains(&e.name.as_str()))
    {
        let (kind, value, contact) = subject_parts(&e.subject);
        let mut p = subject_params(&e.workspace, kind, value);
        p.extend([contact, e.occurred_at.into()]);
        out.push(Statement::new(super::lifecycle::MARK_DUE, p));
    }
    for e in &events {
        let (kind, value, contact) = subject_parts(&e.subject);
        if e.name == "order_completed" {
            let (order, amount, currency) = super::tags::order_of(e);
            let mut p = subject_params(&e.workspace, kind, value);
            p.extend([
                contact.clone(),
                e.occurred_at.into(),
                order.into(),
                Value::Real(amount),
                currency.into(),
                e.id.as_str().into(),
            ]);
            out.push(Statement::new(super::tags::RECORD_ORDER, p));
        }
        if super::tags::TAG_EVENTS.contains(&e.name.as_str()) {
            let mut p = subject_params(&e.workspace, kind, value);
            p.extend([contact, e.occurred_at.into()]);
            out.push(Statement::new(super::tags::MARK_DUE, p));
        }
    }
    if let Some(model) = model {
        out.extend(super::scoring::statements(model, &events));
    }
    for ((day, source, reason), n) in drops {
        out.push(Statement::new(
            COUNT_DROPS,
            vec![day.into(), source.into(), reason.as_str().into(), n.into()],
        ));
    }
    out
}

fn consent_statements(e: &Event, out: &mut Vec<Statement>) {
    for c in &e.consents {
        let (kind, value, contact) = subject_parts(&e.subject);
        let mut p = subject_params(&e.workspace, kind, value);
        p.extend([
            format!("{}:{}", e.id, c.item).into(),
            contact,
            c.channel.as_str().into(),
            c.purpose.as_str().into(),
            i64::from(c.granted).into(),
            c.wording_version.clone().into(),
            c.source.as_str().into(),
            c.form_id.clone().into(),
            e.id.as_str().into(),
            c.ip_hash.clone().into(),
            c.user_agent.clone().into(),
            e.occurred_at.into(),
        ]);
        out.push(Statement::new(RECORD_CONSENT, p));
    }
}

fn claim_statements(e: &Event, out: &mut Vec<Statement>) {
    let kind = e.subject.identity_kind().unwrap_or_default();
    let value = e.subject.value();
    let ws = e.workspace.as_str();
    let Claims {
        email, phone, name, ..
    } = &e.claims;
    for (pii, sealed) in e.claims.identifiers() {
        let id_kind = pii.as_str();
        // A user subject already is its own user_id identity.
        if kind == "user_id" && id_kind == "user_id" {
            continue;
        }
        let mut p = subject_params(ws, kind, value);
        p.extend([
            id_kind.into(),
            sealed.index.as_str().into(),
            e.occurred_at.into(),
        ]);
        out.push(Statement::new(CLAIM_IDENTITY, p));
        let mut p = subject_params(ws, kind, value);
        p.extend([
            id_kind.into(),
            sealed.index.as_str().into(),
            e.id.as_str().into(),
            e.occurred_at.into(),
        ]);
        out.push(Statement::new(RECORD_MERGE, p));
        let mut p = subject_params(ws, kind, value);
        p.extend([id_kind.into(), sealed.index.as_str().into()]);
        out.push(Statement::new(MOVE_DEVICE, p));
    }
    // Applied through the claimed identifier's identity, so they land on the surviving contact.
    let (via_kind, via_value) = match e
        .claims
        .identifiers()
        .find(|(k, _)| !(kind == "user_id" && k.as_str() == "user_id"))
    {
        Some((k, s)) => (k.as_str(), s.index.as_str()),
        None => (kind, value),
    };
    for (sql, sealed) in [(SET_EMAIL, email), (SET_PHONE, phone), (SET_NAME, name)] {
        if let Some(s) = sealed {
            let mut p = subject_params(ws, via_kind, via_value);
            p.extend([
                s.cipher.as_str().into(),
                s.index.as_str().into(),
                e.occurred_at.into(),
            ]);
            out.push(Statement::new(sql, p));
        }
    }
    let mut p = subject_params(ws, via_kind, via_value);
    p.push(e.occurred_at.into());
    out.push(Statement::new(SET_KNOWN, p));
    let attributes: Map<String, Json> = e
        .properties
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "url" | "referrer" | "title" | "form_id" | "form_version"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !attributes.is_empty() {
        let mut p = subject_params(ws, via_kind, via_value);
        p.extend([
            Json::Object(attributes).to_string().into(),
            e.occurred_at.into(),
        ]);
        out.push(Statement::new(SET_ATTRIBUTES, p));
    }
}

/// The attribution touch a page view carries: campaign parameters, or an external referrer.
/// Internal navigation is not a touch.
pub fn touch_of(e: &Event) -> Option<Json> {
    if e.name != "page" {
        return None;
    }
    let p = &e.properties;
    let get = |k: &str| p.get(k).and_then(Json::as_str);
    let url = get("url");
    let referrer = get("referrer");
    let same_site = match (url.and_then(host_of), referrer.and_then(host_of)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let source = get("utm_source").map(str::to_string).or_else(|| {
        referrer
            .filter(|_| !same_site)
            .and_then(host_of)
            .map(str::to_string)
    })?;
    let mut touch = Map::new();
    touch.insert("source".into(), source.into());
    for k in ["medium", "campaign", "term", "content"] {
        if let Some(v) = get(&format!("utm_{k}")) {
            touch.insert(k.into(), v.into());
        }
    }
    if !touch.contains_key("medium") && get("utm_source").is_none() {
        touch.insert("medium".into(), "referral".into());
    }
    if let Some(r) = referrer {
        touch.insert("referrer".into(), r.into());
    }
    if let Some(u) = url {
        touch.insert("landing_page".into(), u.into());
    }
    Some(Json::Object(touch))
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

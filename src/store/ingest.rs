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
    let ws = Value::text_shared(workspace);
    let ws = || vec![ws.clone()];
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

/// The four parameters that open most statements, saying how a statement finds the subject's
/// contact: ?1 workspace, then through the identities ?2 kind and ?3 value, or directly ?4 (a
/// contact named by a signed token; NULL otherwise). Built once per subject of a batch; its
/// texts are shared by every statement that binds them.
pub(super) fn subject_head(workspace: Value, subject: &Subject) -> [Value; 4] {
    match subject {
        Subject::Contact(c) => [
            workspace,
            Value::text_static(""),
            Value::text_static(""),
            Value::text_shared(c),
        ],
        s => [
            workspace,
            Value::text_static(s.identity_kind().unwrap_or_default()),
            Value::text_shared(s.value()),
            Value::Null,
        ],
    }
}

/// A statement's parameters: `head` (cloned, which shares its texts) followed by `tail`, in one
/// allocation of the exact size.
pub(super) fn params<const N: usize>(head: &[Value], tail: [Value; N]) -> Vec<Value> {
    let mut p = Vec::with_capacity(head.len() + N);
    p.extend_from_slice(head);
    p.extend(tail);
    p
}

/// Texts that many statements of a batch bind (workspaces, event names): each is allocated once
/// per batch and shared by every statement binding it. A batch has a handful, mostly of
/// different lengths, so they are found by a walk that compares lengths first (a text is only
/// compared with those of its length) rather than by a search comparing text at each step.
#[derive(Default)]
pub(super) struct Texts<'a>(Vec<(&'a str, Value)>);

impl<'a> Texts<'a> {
    pub(super) fn get(&mut self, s: &'a str) -> Value {
        if let Some((_, v)) = self.0.iter().find(|(t, _)| *t == s) {
            return v.clone();
        }
        let v = Value::text_shared(s);
        self.0.push((s, v.clone()));
        v
    }
}

/// The text last bound for one parameter: a beacon's events are consecutive and share their
/// site and session, so one comparison finds the text to share.
#[derive(Default)]
struct Recent<'a>(Option<(&'a str, Value)>);

impl<'a> Recent<'a> {
    fn get(&mut self, s: Option<&'a str>) -> Value {
        let Some(s) = s else { return Value::Null };
        match &self.0 {
            Some((last, v)) if *last == s => v.clone(),
            _ => self.0.insert((s, Value::text_shared(s))).1.clone(),
        }
    }
}

/// An event of the batch with the parameters its statements share.
pub(super) struct Ev<'a> {
    pub(super) event: &'a Event,
    /// `subject_head` of the event's subject.
    pub(super) subject: &'a [Value; 4],
    /// Which of the batch's distinct (workspace, subject) pairs the event is about.
    pub(super) slot: usize,
    /// The event id, which several statements bind.
    pub(super) id: Value,
}

/// A distinct (workspace, subject) of the batch: the span of its events' times and its
/// statements' leading parameters.
struct Slot<'a> {
    workspace: &'a str,
    subject: &'a Subject,
    first: Millis,
    last: Millis,
    head: [Value; 4],
}

/// A subject of a batch: its workspace and who it is.
type SubjectKey<'a> = (&'a str, &'a Subject);

/// Widens a subject's span of event times in `subjects` to take in a run's.
fn widen<'a>(
    subjects: &mut BTreeMap<SubjectKey<'a>, (Millis, Millis)>,
    (key, first, last): (SubjectKey<'a>, Millis, Millis),
) {
    let known = subjects.entry(key).or_insert((first, last));
    known.0 = known.0.min(first);
    known.1 = known.1.max(last);
}

/// The statements that record a batch of queue messages, scoring them with `model` when given.
pub fn batch_statements(messages: &[IngestMessage], model: Option<&Model>) -> Vec<Statement> {
    let mut subjects: BTreeMap<SubjectKey<'_>, (Millis, Millis)> = BTreeMap::new();
    let mut drops: BTreeMap<(String, &str, DropReason), i64> = BTreeMap::new();
    let mut events: Vec<&Event> = Vec::with_capacity(messages.len());
    // A beacon's events are consecutive and share their subject: they are taken a run at a
    // time, the map looked up once per run rather than once per event. `runs` holds where each
    // run starts in `events` and its subject; `run`, the one being read and its span of times.
    let mut runs: Vec<(usize, SubjectKey<'_>)> = Vec::new();
    let mut run: Option<(SubjectKey<'_>, Millis, Millis)> = None;
    for m in messages {
        match m {
            IngestMessage::Event(e) => {
                let key = (e.workspace.as_str(), &e.subject);
                let at = e.occurred_at;
                match &mut run {
                    Some((subject, first, last)) if *subject == key => {
                        *first = (*first).min(at);
                        *last = (*last).max(at);
                    }
                    _ => {
                        if let Some(ended) = run.replace((key, at, at)) {
                            widen(&mut subjects, ended);
                        }
                        runs.push((events.len(), key));
                    }
                }
                events.push(e);
            }
            IngestMessage::Dropped { source, reason, at } => {
                *drops.entry((at.utc_day(), source, *reason)).or_default() += 1;
            }
        }
    }
    if let Some(ended) = run {
        widen(&mut subjects, ended);
    }

    let mut texts = Texts::default();
    // In (workspace, subject) order, as the map kept them.
    let slots: Vec<Slot<'_>> = subjects
        .into_iter()
        .map(|((workspace, subject), (first, last))| Slot {
            workspace,
            subject,
            first,
            last,
            head: subject_head(texts.get(workspace), subject),
        })
        .collect();
    let mut batch: Vec<Ev<'_>> = Vec::with_capacity(events.len());
    for (i, (start, key)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(events.len(), |(next, _)| *next);
        let slot = slots
            .binary_search_by(|s| (s.workspace, s.subject).cmp(key))
            .expect("every event's subject has a slot");
        for e in &events[*start..end] {
            batch.push(Ev {
                event: e,
                subject: &slots[slot].head,
                slot,
                id: Value::text_shared(&e.id),
            });
        }
    }

    let scored = if model.is_some() {
        9 * slots.len() + 2 * batch.len()
    } else {
        0
    };
    let mut out = Vec::with_capacity(slots.len() * 3 + batch.len() * 2 + drops.len() + scored);
    for slot in &slots {
        let (contact, status) = match slot.subject {
            Subject::Visitor(v) => (anonymous_contact_id(slot.workspace, v), "anonymous"),
            Subject::User(u) => (user_contact_id(slot.workspace, u), "known"),
            Subject::Contact(_) => continue,
        };
        let contact = Value::from(contact);
        let [ws, kind, value, _] = &slot.head;
        out.push(Statement::new(
            INSERT_CONTACT,
            vec![
                contact.clone(),
                ws.clone(),
                Value::text_static(status),
                slot.first.into(),
            ],
        ));
        out.push(Statement::new(
            INSERT_SUBJECT_IDENTITY,
            vec![
                ws.clone(),
                kind.clone(),
                value.clone(),
                contact,
                slot.first.into(),
            ],
        ));
    }

    // Identify events are applied in time order, so the latest claim wins.
    let mut claimed: Vec<&Ev<'_>> = batch
        .iter()
        .filter(|ev| !ev.event.claims.is_empty() && ev.event.subject.identity_kind().is_some())
        .collect();
    claimed.sort_by_key(|ev| ev.event.occurred_at);
    for ev in &claimed {
        claim_statements(ev, &mut out);
    }
    if let Some(first) = claimed.first() {
        out.extend(apply_merges(first.event.workspace.as_str()));
    }

    let (mut site, mut session) = (Recent::default(), Recent::default());
    for ev in &batch {
        let e = ev.event;
        let [ws, kind, value, contact] = ev.subject;
        let visitor = match &e.subject {
            Subject::Visitor(_) => value.clone(),
            _ => Value::Null,
        };
        let properties = crate::event::object_json(&e.properties);
        out.push(Statement::new(
            INSERT_EVENT,
            vec![
                ws.clone(),
                kind.clone(),
                value.clone(),
                ev.id.clone(),
                site.get(e.site.as_deref()),
                visitor,
                contact.clone(),
                texts.get(&e.name),
                Value::from(properties),
                e.occurred_at.into(),
                e.received_at.into(),
                session.get(e.session_id.as_deref()),
            ],
        ));
    }
    for ev in &batch {
        consent_statements(ev, &mut out);
    }
    for slot in &slots {
        let [ws, kind, value, contact] = &slot.head;
        out.push(Statement::new(
            TOUCH_CONTACT,
            vec![
                ws.clone(),
                kind.clone(),
                value.clone(),
                slot.first.into(),
                slot.last.into(),
                contact.clone(),
            ],
        ));
    }
    for ev in &batch {
        let e = ev.event;
        if e.subject.identity_kind().is_none() {
            continue;
        }
        if let Some(touch) = touch_of(e) {
            // One text for both statements.
            let touch = Value::text_shared(&touch);
            for sql in [FIRST_TOUCH, LAST_TOUCH] {
                out.push(Statement::new(
                    sql,
                    params(&ev.subject[..3], [touch.clone(), e.occurred_at.into()]),
                ));
            }
        }
    }
    for ev in batch
        .iter()
        .filter(|ev| super::lifecycle::STAGE_EVENTS.contains(&ev.event.name.as_str()))
    {
        out.push(Statement::new(
            super::lifecycle::MARK_DUE,
            params(ev.subject, [ev.event.occurred_at.into()]),
        ));
    }
    for ev in &batch {
        let e = ev.event;
        if e.name == "order_completed" {
            let (order, amount, currency) = super::tags::order_of(e);
            out.push(Statement::new(
                super::tags::RECORD_ORDER,
                params(
                    ev.subject,
                    [
                        e.occurred_at.into(),
                        order.into(),
                        Value::Real(amount),
                        currency.into(),
                        ev.id.clone(),
                    ],
                ),
            ));
        }
        if super::tags::TAG_EVENTS.contains(&e.name.as_str()) {
            out.push(Statement::new(
                super::tags::MARK_DUE,
                params(ev.subject, [e.occurred_at.into()]),
            ));
        }
    }
    if let Some(model) = model {
        super::scoring::batch_statements(model, &batch, &mut out);
    }
    for ((day, source, reason), n) in drops {
        out.push(Statement::new(
            COUNT_DROPS,
            vec![
                day.into(),
                source.into(),
                Value::text_static(reason.as_str()),
                n.into(),
            ],
        ));
    }
    out
}

fn consent_statements(ev: &Ev<'_>, out: &mut Vec<Statement>) {
    let e = ev.event;
    let [ws, kind, value, contact] = ev.subject;
    for c in &e.consents {
        out.push(Statement::new(
            RECORD_CONSENT,
            vec![
                ws.clone(),
                kind.clone(),
                value.clone(),
                format!("{}:{}", e.id, c.item).into(),
                contact.clone(),
                Value::text_static(c.channel.as_str()),
                c.purpose.as_str().into(),
                i64::from(c.granted).into(),
                c.wording_version.clone().into(),
                c.source.as_str().into(),
                c.form_id.clone().into(),
                ev.id.clone(),
                c.ip_hash.clone().into(),
                c.user_agent.clone().into(),
                e.occurred_at.into(),
            ],
        ));
    }
}

/// The keys of an identify's properties that are not contact attributes.
fn is_attribute(key: &str) -> bool {
    !matches!(
        key,
        "url" | "referrer" | "title" | "form_id" | "form_version"
    )
}

fn claim_statements(ev: &Ev<'_>, out: &mut Vec<Statement>) {
    let e = ev.event;
    let kind = e.subject.identity_kind().unwrap_or_default();
    let subject = &ev.subject[..3];
    let Claims {
        email, phone, name, ..
    } = &e.claims;
    // Applied through the claimed identifier's identity, so they land on the surviving contact.
    let mut via: Option<[Value; 3]> = None;
    for (pii, sealed) in e.claims.identifiers() {
        let id_kind = pii.as_str();
        // A user subject already is its own user_id identity.
        if kind == "user_id" && id_kind == "user_id" {
            continue;
        }
        let id_kind = Value::text_static(id_kind);
        let index = Value::text_shared(&sealed.index);
        out.push(Statement::new(
            CLAIM_IDENTITY,
            params(
                subject,
                [id_kind.clone(), index.clone(), e.occurred_at.into()],
            ),
        ));
        out.push(Statement::new(
            RECORD_MERGE,
            params(
                subject,
                [
                    id_kind.clone(),
                    index.clone(),
                    ev.id.clone(),
                    e.occurred_at.into(),
                ],
            ),
        ));
        out.push(Statement::new(
            MOVE_DEVICE,
            params(subject, [id_kind.clone(), index.clone()]),
        ));
        via.get_or_insert_with(|| [subject[0].clone(), id_kind, index]);
    }
    let via: &[Value] = match &via {
        Some(v) => v,
        None => subject,
    };
    for (sql, sealed) in [(SET_EMAIL, email), (SET_PHONE, phone), (SET_NAME, name)] {
        if let Some(s) = sealed {
            out.push(Statement::new(
                sql,
                params(
                    via,
                    [
                        s.cipher.as_str().into(),
                        s.index.as_str().into(),
                        e.occurred_at.into(),
                    ],
                ),
            ));
        }
    }
    out.push(Statement::new(
        SET_KNOWN,
        params(via, [e.occurred_at.into()]),
    ));
    if e.properties.keys().any(|k| is_attribute(k)) {
        // Written from the event's properties: the text of the filtered map, without it.
        let attributes =
            crate::event::object_json(e.properties.iter().filter(|(k, _)| is_attribute(k)));
        out.push(Statement::new(
            SET_ATTRIBUTES,
            params(via, [attributes.into(), e.occurred_at.into()]),
        ));
    }
}

/// The attribution touch a page view carries, as the JSON text contacts keep: campaign
/// parameters, or an external referrer. Internal navigation is not a touch.
///
/// The object is written directly, its keys in the order a serde_json map writes them (sorted),
/// rather than built as a map of owned keys and values only to be written out.
pub fn touch_of(e: &Event) -> Option<String> {
    if e.name != "page" {
        return None;
    }
    // The text properties a touch is made of, found in one walk over the properties rather than
    // a search of the map per key.
    let [mut url, mut referrer, mut utm_source, mut utm_medium] = [None; 4];
    let [mut utm_campaign, mut utm_term, mut utm_content] = [None; 3];
    for (k, v) in &e.properties {
        let slot = match k.as_str() {
            "url" => &mut url,
            "referrer" => &mut referrer,
            "utm_source" => &mut utm_source,
            "utm_medium" => &mut utm_medium,
            "utm_campaign" => &mut utm_campaign,
            "utm_term" => &mut utm_term,
            "utm_content" => &mut utm_content,
            _ => continue,
        };
        *slot = v.as_str();
    }
    let same_site = match (url.and_then(host_of), referrer.and_then(host_of)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let source = utm_source.or_else(|| referrer.filter(|_| !same_site).and_then(host_of))?;
    // A referred visit without campaign parameters is a referral.
    let medium = utm_medium.or_else(|| utm_source.is_none().then_some("referral"));
    let touch = [
        ("campaign", utm_campaign),
        ("content", utm_content),
        ("landing_page", url),
        ("medium", medium),
        ("referrer", referrer),
        ("source", Some(source)),
        ("term", utm_term),
    ];
    Some(crate::event::text_object_json(
        touch.into_iter().filter_map(|(k, v)| Some((k, v?))),
    ))
}

fn host_of(url: &str) -> Option<&str> {
    // Searched as bytes (every page view asks): the separators are ASCII, so a match never
    // falls inside a character, and the pieces are those of `split_once` and `split`.
    let start = url.as_bytes().windows(3).position(|w| w == b"://")? + 3;
    let rest = &url[start..];
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty()).then_some(host)
}

//! Writing a queue batch of ingested events: one D1 round trip for the whole batch.

use super::{Statement, Value};
use crate::event::{DropReason, Event, IngestMessage};
use crate::identity::anonymous_contact_id;
use crate::time::Millis;
use std::collections::BTreeMap;

const INSERT_CONTACT: &str = "INSERT OR IGNORE INTO contacts \
    (id, workspace, lead_status, first_seen_at, last_seen_at, created_at, updated_at) \
    VALUES (?1, ?2, 'anonymous', ?3, ?3, ?3, ?3)";

const INSERT_VISITOR_IDENTITY: &str = "INSERT OR IGNORE INTO identities \
    (workspace, kind, value, contact_id, created_at) VALUES (?1, 'visitor', ?2, ?3, ?4)";

// The contact comes from the identity table, not from the derived id: once a visitor has been
// merged into a known contact, its later events land on that contact.
const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events \
    (workspace, id, site, visitor_id, contact_id, name, properties, occurred_at, received_at) \
    VALUES (?1, ?2, ?3, ?4, \
      (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = 'visitor' AND value = ?4), \
      ?5, ?6, ?7, ?8)";

const TOUCH_CONTACT: &str = "UPDATE contacts SET \
    first_seen_at = min(first_seen_at, ?3), last_seen_at = max(last_seen_at, ?4) \
    WHERE id = (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = 'visitor' AND value = ?2)";

const COUNT_DROPS: &str =
    "INSERT INTO ingest_drops (day, source, reason, count) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (day, source, reason) DO UPDATE SET count = count + excluded.count";

/// The statements that record a batch of queue messages. Visitors are created once per batch,
/// events are inserted by id (a redelivered event is ignored), drops are summed per reason.
pub fn batch_statements(messages: &[IngestMessage]) -> Vec<Statement> {
    let mut visitors: BTreeMap<(&str, &str), (Millis, Millis)> = BTreeMap::new();
    let mut drops: BTreeMap<(String, &str, DropReason), i64> = BTreeMap::new();
    let mut events: Vec<&Event> = Vec::new();
    for m in messages {
        match m {
            IngestMessage::Event(e) => {
                let span = visitors
                    .entry((&e.workspace, &e.visitor_id))
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

    let mut out = Vec::with_capacity(visitors.len() * 2 + events.len() * 2 + drops.len());
    for ((workspace, vid), (first, _)) in &visitors {
        let contact = anonymous_contact_id(workspace, vid);
        out.push(Statement::new(
            INSERT_CONTACT,
            vec![contact.clone().into(), (*workspace).into(), (*first).into()],
        ));
        out.push(Statement::new(
            INSERT_VISITOR_IDENTITY,
            vec![
                (*workspace).into(),
                (*vid).into(),
                contact.into(),
                (*first).into(),
            ],
        ));
    }
    for e in &events {
        out.push(Statement::new(
            INSERT_EVENT,
            vec![
                e.workspace.as_str().into(),
                e.id.as_str().into(),
                e.site.as_str().into(),
                e.visitor_id.as_str().into(),
                e.name.as_str().into(),
                Value::Text(serde_json::Value::Object(e.properties.clone()).to_string()),
                e.occurred_at.into(),
                e.received_at.into(),
            ],
        ));
    }
    for ((workspace, vid), (first, last)) in &visitors {
        out.push(Statement::new(
            TOUCH_CONTACT,
            vec![
                (*workspace).into(),
                (*vid).into(),
                (*first).into(),
                (*last).into(),
            ],
        ));
    }
    for ((day, source, reason), n) in drops {
        out.push(Statement::new(
            COUNT_DROPS,
            vec![
                day.into(),
                (*source).into(),
                reason.as_str().into(),
                n.into(),
            ],
        ));
    }
    out
}

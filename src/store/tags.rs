//! Tags and orders in D1. The ingest batch records orders and marks a contact's tags due when
//! an event changes their facts; the cron's tag pass recomputes due contacts' tags in pages,
//! writes the changes and announces each as an event, exactly once even when runs overlap.

use super::{id_list, Db, RowExt, Statement};
use crate::error::Error;
use crate::event::Event;
use crate::tags::{compute, diff, Facts};
use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// Events that change a contact's tag facts.
pub const TAG_EVENTS: [&str; 5] = [
    "identify",
    crate::form::submit::FORM_SUBMITTED,
    "login",
    "feature_used",
    "order_completed",
];

/// Marks the event's contact's tags due (subject layout: ?1 workspace, ?2 kind, ?3 value,
/// ?4 explicit contact, ?5 the event time).
pub const MARK_DUE: &str = "UPDATE contacts SET tags_due_at = min(COALESCE(tags_due_at, ?5), ?5) \
    WHERE id = COALESCE(?4, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3))";

/// An order reported twice (same order id) is recorded once, for the first contact reported.
pub const RECORD_ORDER: &str = "INSERT OR IGNORE INTO orders \
    (workspace, id, contact_id, amount, currency, ordered_at, event_id) \
    SELECT ?1, ?6, c, ?7, ?8, ?5, ?9 FROM \
      (SELECT COALESCE(?4, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3)) AS c) \
    WHERE c IS NOT NULL";

/// The order fields of an `order_completed` event: id (the event's when absent), amount,
/// currency (CNY when absent). Amounts that are not numbers count as 0, never as an error:
/// the event itself was already accepted.
pub fn order_of(e: &Event) -> (String, f64, String) {
    let p = &e.properties;
    let id = p
        .get("order_id")
        .and_then(|v| match v {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .unwrap_or_else(|| e.id.clone());
    let amount = match p.get("amount") {
        Some(Json::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Json::String(s)) => s.trim().replace(',', "").parse().unwrap_or(0.0),
        _ => 0.0,
    };
    let amount = if amount.is_finite() && amount >= 0.0 {
        amount
    } else {
        0.0
    };
    let currency = p
        .get("currency")
        .and_then(Json::as_str)
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map_or_else(|| "CNY".to_string(), str::to_ascii_uppercase);
    (id, amount, currency)
}

// Tags a journey set (kind `journey`) are the journey's to keep: the pass leaves them alone.
const DUE: &str = "SELECT c.id, c.attributes, \
    (SELECT max(occurred_at) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id \
       AND e.name = 'login' AND e.occurred_at <= ?2) AS last_login_at, \
    (SELECT json_extract(e.properties, '$.feature') AS f FROM events e WHERE e.workspace = c.workspace \
       AND e.contact_id = c.id AND e.name = 'feature_used' AND e.occurred_at > ?2 - ?4 AND e.occurred_at <= ?2 \
       AND f IS NOT NULL GROUP BY f ORDER BY count(*) DESC, f LIMIT 1) AS top_feature, \
    (SELECT max(ordered_at) FROM orders o WHERE o.workspace = c.workspace AND o.contact_id = c.id \
       AND o.ordered_at <= ?2) AS last_order_at, \
    (SELECT count(*) FROM orders o WHERE o.workspace = c.workspace AND o.contact_id = c.id \
       AND o.ordered_at > ?2 - ?5 AND o.ordered_at <= ?2) AS orders_365, \
    (SELECT min(ordered_at) FROM orders o WHERE o.workspace = c.workspace AND o.contact_id = c.id \
       AND o.ordered_at > ?2 - ?5 AND o.ordered_at <= ?2) AS oldest_365, \
    (SELECT COALESCE(sum(amount), 0) FROM orders o WHERE o.workspace = c.workspace AND o.contact_id = c.id \
       AND o.ordered_at > ?2 - ?5 AND o.ordered_at <= ?2) AS amount_365, \
    (SELECT json_group_object(tag, value) FROM tags t WHERE t.workspace = c.workspace AND t.contact_id = c.id \
       AND t.kind <> 'journey') AS current \
    FROM contacts c WHERE c.workspace = ?1 AND c.tags_due_at <= ?2 AND c.merged_into IS NULL \
      AND c.erased_at IS NULL ORDER BY c.tags_due_at LIMIT ?3";

// Set only when the value differs, so `changes()` tells the announcement whether this run made
// the change: of two overlapping runs, one announces.
const SET: &str = "INSERT INTO tags (workspace, contact_id, tag, kind, value, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (workspace, contact_id, tag) DO UPDATE SET \
    kind = excluded.kind, value = excluded.value, updated_at = excluded.updated_at \
    WHERE tags.value IS NOT excluded.value";
const REMOVE: &str =
    "DELETE FROM tags WHERE workspace = ?1 AND contact_id = ?2 AND tag = ?3 AND value = ?7";
const ANNOUNCE: &str = "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
    SELECT ?1, 'tag:' || ?2 || ':' || ?3 || ':' || ?6, ?2, ?8, \
      json_object('tag', ?3, 'kind', ?4, 'from', ?7, 'to', ?5), ?6, ?6 WHERE changes() = 1";
const RESCHEDULE: &str = "UPDATE contacts SET tags_due_at = ?3 WHERE workspace = ?1 AND id = ?2";

/// One bounded pass over contacts whose tags are due; returns how many it looked at.
pub async fn tag_pass(
    db: &impl Db,
    workspace: &str,
    now: Millis,
    limit: u32,
) -> Result<usize, Error> {
    let rows = super::due_page(
        db,
        DUE,
        workspace,
        now,
        limit,
        &[90 * Millis::DAY, 365 * Millis::DAY],
    )
    .await?;
    let mut stmts = Vec::new();
    for r in &rows {
        let Some(id) = r.text("id") else { continue };
        let json_obj = |c: &str| -> Map<String, Json> {
            r.text(c)
                .and_then(|t| serde_json::from_str::<Json>(&t).ok())
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
        };
        let facts = Facts {
            attributes: json_obj("attributes"),
            last_login_at: r.int("last_login_at").map(Millis),
            top_feature: r.text("top_feature"),
            last_order_at: r.int("last_order_at").map(Millis),
            orders_365: r
                .int("orders_365")
                .unwrap_or(0)
                .clamp(0, i64::from(u32::MAX)) as u32,
            oldest_order_365: r.int("oldest_365").map(Millis),
            amount_365: r.get("amount_365").and_then(Json::as_f64).unwrap_or(0.0),
        };
        let (tags, due) = compute(&facts, now);
        for change in diff(&json_obj("current"), &tags) {
            let p = vec![
                workspace.into(),
                id.as_str().into(),
                change.key.as_str().into(),
                change.kind.map(|k| k.as_str()).into(),
                change.to.clone().into(),
                now.into(),
                change.from.clone().into(),
                change.event_name().into(),
            ];
            // SET binds ?1-?6, REMOVE ?1-?7 (the old value), ANNOUNCE all eight.
            let (sql, n) = if change.to.is_some() {
                (SET, 6)
            } else {
                (REMOVE, 7)
            };
            stmts.push(Statement::new(sql, p[..n].to_vec()));
            stmts.push(Statement::new(ANNOUNCE, p));
        }
        stmts.push(Statement::new(
            RESCHEDULE,
            vec![workspace.into(), id.into(), due.into()],
        ));
    }
    if !stmts.is_empty() {
        db.batch(&stmts).await?;
    }
    Ok(rows.len())
}

/// A tag as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagView {
    pub tag: String,
    pub kind: String,
    pub value: String,
    pub updated_at: String,
}

// ?2: a JSON array of contact ids.
const OF_CONTACTS: &str = "SELECT contact_id, tag, kind, value, updated_at FROM tags \
    WHERE workspace = ?1 AND contact_id IN (SELECT value FROM json_each(?2)) ORDER BY contact_id, tag";

pub async fn of_contact(
    db: &impl Db,
    workspace: &str,
    contact: &str,
) -> Result<Vec<TagView>, Error> {
    let mut all = of_contacts(db, workspace, &[contact]).await?;
    Ok(all.remove(contact).unwrap_or_default())
}

/// The tags of several contacts (a queue batch's recipients) in one round trip, by contact.
pub async fn of_contacts<S: AsRef<str>>(
    db: &impl Db,
    workspace: &str,
    contacts: &[S],
) -> Result<HashMap<String, Vec<TagView>>, Error> {
    let mut by_contact: HashMap<String, Vec<TagView>> = HashMap::new();
    if contacts.is_empty() {
        return Ok(by_contact);
    }
    let rows = db
        .query(&Statement::new(
            OF_CONTACTS,
            vec![workspace.into(), id_list(contacts)],
        ))
        .await?;
    for r in &rows {
        by_contact
            .entry(r.text("contact_id").unwrap_or_default())
            .or_default()
            .push(TagView {
                tag: r.text("tag").unwrap_or_default(),
                kind: r.text("kind").unwrap_or_default(),
                value: r.text("value").unwrap_or_default(),
                updated_at: Millis(r.int("updated_at").unwrap_or(0)).rfc3339(),
            });
    }
    Ok(by_contact)
}

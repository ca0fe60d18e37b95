//! Life-cycle stages in SQL: events that can change a stage mark the contact due; the cron
//! pages through due contacts, decides each stage in the core (`crate::lifecycle`) and records
//! transitions with their internal events. A contact whose stage can change with time alone is
//! due again at that moment, so the cron never scans contacts with nothing to decide.

use super::{Db, RowExt, Statement, Value};
use crate::error::Error;
use crate::lifecycle::{stage, Facts, Stage};
use crate::time::Millis;

/// Event names that can move a stage.
pub const STAGE_EVENTS: [&str; 4] = ["signed_up", "login", "feature_used", "order_completed"];

/// Marks the event's contact due now (statement parameters follow the ingest subject layout:
/// ?1 workspace, ?2 kind, ?3 value, ?4 explicit contact, ?5 the event time).
pub const MARK_DUE: &str = "UPDATE contacts SET stage_due_at = min(COALESCE(stage_due_at, ?5), ?5) \
    WHERE id = COALESCE(?4, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3))";

const DUE: &str = "SELECT c.id, c.lifecycle_stage, \
    (SELECT min(occurred_at) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'signed_up' AND e.occurred_at <= ?2) AS signed_up_at, \
    (SELECT max(occurred_at) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'login' AND e.occurred_at <= ?2) AS last_login_at, \
    (SELECT max(occurred_at) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'feature_used' AND e.occurred_at <= ?2) AS last_feature_at, \
    (SELECT count(*) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'login' AND e.occurred_at > ?2 - ?4 AND e.occurred_at <= ?2) AS logins_30, \
    (SELECT count(*) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'order_completed' AND e.occurred_at <= ?2) AS orders, \
    (SELECT count(*) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.name = 'order_completed' AND e.occurred_at > ?2 - ?5 AND e.occurred_at <= ?2) AS orders_180 \
    FROM contacts c WHERE c.workspace = ?1 AND c.stage_due_at <= ?2 AND c.merged_into IS NULL \
    ORDER BY c.stage_due_at LIMIT ?3";

// The claim: only the run that still sees the old stage moves it. `changes()` then tells the
// next two statements whether this run made the transition, so overlapping cron runs record
// and announce it once.
const CLAIM: &str = "UPDATE contacts SET lifecycle_stage = ?3, updated_at = ?4 \
    WHERE workspace = ?1 AND id = ?2 AND lifecycle_stage IS ?5";
const RECORD: &str = "INSERT OR IGNORE INTO lifecycle_transitions (workspace, contact_id, to_stage, from_stage, at) \
    SELECT ?1, ?2, ?3, ?5, ?4 WHERE changes() = 1";
const ANNOUNCE: &str = "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
    SELECT ?1, ?6 || ':' || ?2 || ':' || ?4, ?2, ?6, json_object('from', ?5, 'to', ?3), ?4, ?4 \
    WHERE (SELECT count(*) FROM lifecycle_transitions WHERE workspace = ?1 AND contact_id = ?2 AND at = ?4 AND to_stage = ?3) = 1";
const RESCHEDULE: &str = "UPDATE contacts SET stage_due_at = ?3 WHERE workspace = ?1 AND id = ?2";

/// One bounded pass; returns how many due contacts it looked at.
pub async fn stage_pass(
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
        &[30 * Millis::DAY, 180 * Millis::DAY],
    )
    .await?;
    let mut stmts = Vec::new();
    for r in &rows {
        let Some(id) = r.text("id") else { continue };
        let t = |c: &str| r.int(c).map(Millis);
        let n = |c: &str| r.int(c).unwrap_or(0).clamp(0, u32::MAX as i64) as u32;
        let facts = Facts {
            signed_up_at: t("signed_up_at"),
            last_login_at: t("last_login_at"),
            last_feature_at: t("last_feature_at"),
            logins_last_30_days: n("logins_30"),
            orders: n("orders"),
            orders_last_180_days: n("orders_180"),
        };
        let current = r.text("lifecycle_stage");
        let (next_stage, due) = stage(&facts, now);
        if let Some(s) = next_stage.filter(|s| current.as_deref() != Some(s.as_str())) {
            let old: Value = current.clone().into();
            let p = vec![
                workspace.into(),
                id.as_str().into(),
                s.as_str().into(),
                now.into(),
                old,
                s.event_name().into(),
            ];
            stmts.push(Statement::new(CLAIM, p[..5].to_vec()));
            stmts.push(Statement::new(RECORD, p[..5].to_vec()));
            stmts.push(Statement::new(ANNOUNCE, p));
        }
        stmts.push(Statement::new(
            RESCHEDULE,
            vec![workspace.into(), id.into(), due.into()],
        ));
    }
    db.batch(&stmts).await?;
    Ok(rows.len())
}

/// For tests and reports: the stage a contact is in.
pub fn parse_stage(s: &str) -> Option<Stage> {
    serde_json::from_value(serde_json::Value::String(s.into())).ok()
}

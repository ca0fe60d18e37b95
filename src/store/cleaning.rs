//! Monthly data cleaning, on the engine's cron: duplicates that slipped in (two records with
//! the same email or phone) are merged — history kept — and contact points that no longer
//! pass validation are flagged `invalid`. Each month's run is one row in `cleaning_runs`,
//! claimed by the first tick of the month and advanced a page per tick, so an overlapping or
//! dying invocation neither repeats nor loses work.

use super::{Db, RowExt, Statement};
use crate::error::Error;
use crate::pii::{normalise_email, normalise_phone, PiiKeys, PiiKind};
use crate::time::Millis;
use serde::Serialize;

/// Contacts whose contact points are re-checked per step.
pub const PAGE: i64 = 200;

const CLAIM: &str =
    "INSERT OR IGNORE INTO cleaning_runs (workspace, month, started_at) VALUES (?1, ?2, ?3)";
const RUN: &str =
    "SELECT month, started_at, finished_at, merged, invalid_flagged, bounced, cursor \
    FROM cleaning_runs WHERE workspace = ?1 AND month = ?2";

// The oldest live record holding an index survives; every younger live holder merges into it.
// A contact already merging elsewhere in this run is neither a source nor a target again.
fn record_duplicates(index: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO merges (workspace, from_contact, into_contact, cause, merged_at) \
         SELECT c.workspace, c.id, \
           (SELECT k.id FROM contacts k WHERE k.workspace = c.workspace AND k.{index} = c.{index} \
              AND k.merged_into IS NULL AND k.erased_at IS NULL \
              AND NOT EXISTS (SELECT 1 FROM merges m WHERE m.workspace = k.workspace AND m.from_contact = k.id) \
            ORDER BY k.created_at, k.id LIMIT 1), 'cleaning', ?2 \
         FROM contacts c WHERE c.workspace = ?1 AND c.{index} IS NOT NULL \
           AND c.merged_into IS NULL AND c.erased_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM merges m WHERE m.workspace = c.workspace AND m.from_contact = c.id) \
           AND EXISTS (SELECT 1 FROM contacts k WHERE k.workspace = c.workspace AND k.{index} = c.{index} \
              AND k.merged_into IS NULL AND k.erased_at IS NULL \
              AND (k.created_at < c.created_at OR (k.created_at = c.created_at AND k.id < c.id)))"
    )
}
const DEDUPE_DONE: &str = "UPDATE cleaning_runs SET cursor = 'c_', \
    merged = (SELECT count(*) FROM merges WHERE workspace = ?1 AND cause = 'cleaning' AND merged_at >= started_at) \
    WHERE workspace = ?1 AND month = ?2 AND cursor = ''";

// `+workspace`: walk the primary key from the cursor, not the workspace's index and a sort.
const PAGE_OF_CONTACTS: &str = "SELECT id, email_cipher, phone_cipher, email_status, phone_status \
    FROM contacts WHERE +workspace = ?1 AND id > ?2 AND merged_into IS NULL AND erased_at IS NULL \
    AND (email_cipher IS NOT NULL OR phone_cipher IS NOT NULL) ORDER BY id LIMIT ?3";
// Compare-and-set on the cursor: of two overlapping ticks, only one counts the page.
const ADVANCE: &str =
    "UPDATE cleaning_runs SET cursor = ?4, invalid_flagged = invalid_flagged + ?5 \
    WHERE workspace = ?1 AND month = ?2 AND cursor = ?3";
const FLAG_EMAIL: &str =
    "UPDATE contacts SET email_status = 'invalid' WHERE workspace = ?1 AND id = ?2 AND email_status IS NULL";
const FLAG_PHONE: &str =
    "UPDATE contacts SET phone_status = 'invalid' WHERE workspace = ?1 AND id = ?2 AND phone_status IS NULL";
const FINISH: &str = "UPDATE cleaning_runs SET finished_at = ?3, \
    bounced = (SELECT count(*) FROM contacts WHERE workspace = ?1 AND merged_into IS NULL \
      AND (email_status = 'bounced' OR phone_status = 'bounced')) \
    WHERE workspace = ?1 AND month = ?2 AND finished_at IS NULL AND cursor = ?4";

/// A month's run as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub month: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub merged: i64,
    pub invalid_flagged: i64,
    /// Contact points marked bounced by provider receipts, counted when the run finished.
    pub bounced: i64,
}

/// The month a time falls in, in China Standard Time (the product's default time zone).
pub fn month_of(now: Millis) -> String {
    Millis(now.0 + 8 * Millis::HOUR).utc_day()[..7].to_string()
}

/// Does one step of this month's cleaning; returns the run (None when there is nothing to do
/// because the month's run already finished). Call again on later ticks until finished.
pub async fn step(
    db: &impl Db,
    workspace: &str,
    keys: Option<&PiiKeys>,
    now: Millis,
) -> Result<Option<Run>, Error> {
    let month = month_of(now);
    let key = || vec![workspace.into(), month.as_str().into()];
    let mut claim = key();
    claim.push(now.into());
    db.execute(&Statement::new(CLAIM, claim)).await?;
    let rows = db.query(&Statement::new(RUN, key())).await?;
    let Some(run) = rows.first() else {
        return Ok(None);
    };
    if run.int("finished_at").is_some() {
        return Ok(None);
    }
    let cursor = run.text("cursor").unwrap_or_default();
    if cursor.is_empty() {
        let mut stmts = Vec::new();
        for index in ["email_index", "phone_index"] {
            stmts.push(Statement::new(
                record_duplicates(index),
                vec![workspace.into(), now.into()],
            ));
            stmts.extend(super::ingest::apply_merges(workspace));
        }
        stmts.push(Statement::new(DEDUPE_DONE, key()));
        db.batch(&stmts).await?;
    } else if let Some(keys) = keys {
        let page = db
            .query(&Statement::new(
                PAGE_OF_CONTACTS,
                vec![workspace.into(), cursor.as_str().into(), PAGE.into()],
            ))
            .await?;
        let mut stmts = Vec::new();
        let mut flagged = 0i64;
        for c in &page {
            let id = c.text("id").unwrap_or_default();
            let bad = |cipher: &str, kind, status: &str, valid: fn(&str) -> bool| {
                c.text(status).is_none()
                    && c.text(cipher)
                        .and_then(|x| keys.open(kind, &x).ok())
                        .is_some_and(|plain| !valid(&plain))
            };
            for (sql, is_bad) in [
                (
                    FLAG_EMAIL,
                    bad("email_cipher", PiiKind::Email, "email_status", |p| {
                        normalise_email(p).is_some()
                    }),
                ),
                (
                    FLAG_PHONE,
                    bad("phone_cipher", PiiKind::Phone, "phone_status", |p| {
                        normalise_phone(p).is_some()
                    }),
                ),
            ] {
                if is_bad {
                    flagged += 1;
                    stmts.push(Statement::new(
                        sql,
                        vec![workspace.into(), id.as_str().into()],
                    ));
                }
            }
        }
        let next = page
            .last()
            .and_then(|r| r.text("id"))
            .unwrap_or_else(|| cursor.clone());
        let mut advance = key();
        advance.extend([cursor.as_str().into(), next.as_str().into(), flagged.into()]);
        // The cursor moves first: if another tick already took this page, the flags below
        // are idempotent and the counter was not bumped twice.
        stmts.insert(0, Statement::new(ADVANCE, advance));
        if (page.len() as i64) < PAGE {
            let mut finish = key();
            finish.extend([now.into(), next.as_str().into()]);
            stmts.push(Statement::new(FINISH, finish));
        }
        db.batch(&stmts).await?;
    } else {
        // Without the PII key contact points cannot be re-checked; finish with the merge done.
        let mut finish = key();
        finish.extend([now.into(), cursor.as_str().into()]);
        db.execute(&Statement::new(FINISH, finish)).await?;
    }
    let rows = db.query(&Statement::new(RUN, key())).await?;
    Ok(rows.first().map(run_view))
}

fn run_view(r: &super::Row) -> Run {
    Run {
        month: r.text("month").unwrap_or_default(),
        started_at: Millis(r.int("started_at").unwrap_or(0)).rfc3339(),
        finished_at: r.int("finished_at").map(|t| Millis(t).rfc3339()),
        merged: r.int("merged").unwrap_or(0),
        invalid_flagged: r.int("invalid_flagged").unwrap_or(0),
        bounced: r.int("bounced").unwrap_or(0),
    }
}

const LIST: &str = "SELECT month, started_at, finished_at, merged, invalid_flagged, bounced \
    FROM cleaning_runs WHERE workspace = ?1 ORDER BY month DESC LIMIT 24";

/// The last two years of runs, newest first.
pub async fn runs(db: &impl Db, workspace: &str) -> Result<Vec<Run>, Error> {
    let rows = db
        .query(&Statement::new(LIST, vec![workspace.into()]))
        .await?;
    Ok(rows.iter().map(run_view).collect())
}

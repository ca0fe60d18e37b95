//! Operational records: cron runs and ingest drop counters, shown by `/v1/system/status`.

use super::{Db, RowExt, Statement};
use crate::error::Error;
use crate::time::Millis;
use serde::Serialize;

const RECORD_RUN: &str = "INSERT OR IGNORE INTO cron_runs (cron, scheduled_at) VALUES (?1, ?2)";
const LAST_RUN: &str =
    "SELECT cron, scheduled_at FROM cron_runs ORDER BY scheduled_at DESC LIMIT 1";
const DROPS: &str = "SELECT source, reason, sum(count) AS count FROM ingest_drops \
    GROUP BY source, reason ORDER BY source, reason";
const RESCORING: &str = "SELECT model_version, contacts_done, started_at, finished_at \
    FROM scoring_recompute WHERE workspace = ?1";
const EVENT_COUNT: &str = "SELECT count(*) AS n, \
    (SELECT count(*) FROM contacts WHERE workspace = ?1 AND merged_into IS NULL AND erased_at IS NULL \
       AND (email_index IS NOT NULL OR phone_index IS NOT NULL)) AS known, \
    (SELECT count(*) FROM consents WHERE workspace = ?1) AS consents \
    FROM events WHERE workspace = ?1";

/// Records that the cron ran for `scheduled_at`. Returns false when that tick was already
/// recorded (an overlapping or repeated trigger for the same time).
pub async fn record_cron_run(
    db: &impl Db,
    cron: &str,
    scheduled_at: Millis,
) -> Result<bool, Error> {
    let changed = db
        .execute(&Statement::new(
            RECORD_RUN,
            vec![cron.into(), scheduled_at.into()],
        ))
        .await?;
    Ok(changed == 1)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropCount {
    pub source: String,
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemStatus {
    pub events: i64,
    /// Live contacts with an email or phone: people, after merges.
    pub known_contacts: i64,
    /// Rows in the consent ledger.
    pub consent_records: i64,
    pub last_cron: Option<String>,
    pub last_cron_at: Option<String>,
    pub dropped: Vec<DropCount>,
    /// The rescoring walk after the latest model change, while it runs and once it finished.
    pub rescoring: Option<Rescoring>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rescoring {
    pub model_version: i64,
    pub contacts_done: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
}

pub async fn status(db: &impl Db, workspace: &str) -> Result<SystemStatus, Error> {
    let last = db.query(&Statement::new(LAST_RUN, vec![])).await?;
    let drops = db.query(&Statement::new(DROPS, vec![])).await?;
    let events = db
        .query(&Statement::new(EVENT_COUNT, vec![workspace.into()]))
        .await?;
    let rescoring = db
        .query(&Statement::new(RESCORING, vec![workspace.into()]))
        .await?;
    Ok(SystemStatus {
        rescoring: rescoring.first().map(|r| Rescoring {
            model_version: r.int("model_version").unwrap_or(0),
            contacts_done: r.int("contacts_done").unwrap_or(0),
            started_at: Millis(r.int("started_at").unwrap_or(0)).rfc3339(),
            finished_at: r.int("finished_at").map(|t| Millis(t).rfc3339()),
        }),
        events: events.first().and_then(|r| r.int("n")).unwrap_or(0),
        known_contacts: events.first().and_then(|r| r.int("known")).unwrap_or(0),
        consent_records: events.first().and_then(|r| r.int("consents")).unwrap_or(0),
        last_cron: last.first().and_then(|r| r.text("cron")),
        last_cron_at: last
            .first()
            .and_then(|r| r.int("scheduled_at"))
            .map(|t| Millis(t).rfc3339()),
        dropped: drops
            .iter()
            .map(|r| DropCount {
                source: r.text("source").unwrap_or_default(),
                reason: r.text("reason").unwrap_or_default(),
                count: r.int("count").unwrap_or(0),
            })
            .collect(),
    })
}

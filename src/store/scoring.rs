//! Scoring in SQL: awarding points to the ledger inside engine's ingest batch (so scoring costs
//! no extra round trip), refreshing scores, promoting lead status at the thresholds, the
//! "sales ready" composite, decay, and reading the ledger back.
//!
//! Every statement resolves its contact the way the event insert did (token contact, or the
//! subject's identity), and every write is keyed so a redelivered batch awards nothing twice.

use super::ingest::{params, subject_head, Ev, Texts};
use super::{Db, RowExt, Statement, Value};
use crate::error::Error;
use crate::event::Event;
use crate::scoring::model::{Model, Repeat, Rule};
use crate::scoring::rules::{all_hold, attribute_rules, event_rules};
use crate::time::Millis;
use serde::Serialize;

/// Scoring days are counted in the workspace's time zone, China Standard Time by default.
pub const DAY_OFFSET_MS: i64 = 8 * Millis::HOUR;

/// The calendar day (UTC+8) an instant falls on, for "at most N per day" rules.
pub fn scoring_day(at: Millis) -> String {
    at.plus(DAY_OFFSET_MS).utc_day()
}

// ?1 workspace, ?2 subject kind, ?3 subject value, ?4 explicit contact (tokens) or NULL.
const CONTACT: &str =
    "COALESCE(?4, (SELECT contact_id FROM identities WHERE workspace = ?1 AND kind = ?2 AND value = ?3))";

fn award_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!(
        "INSERT OR IGNORE INTO points \
         (workspace, contact_id, rule_id, award_key, event_id, model_version, dimension, delta, day, awarded_at) \
         SELECT ?1, c.id, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 FROM (SELECT {CONTACT} AS id) c \
         WHERE c.id IS NOT NULL AND (?13 IS NULL OR (SELECT count(*) FROM points p \
           WHERE p.workspace = ?1 AND p.contact_id = c.id AND p.rule_id = ?5 AND p.day = ?11) < ?13)"
    ))
}

fn signal_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT OR IGNORE INTO signals (workspace, contact_id, signal, event_id, at) \
         SELECT ?1, c.id, ?5, ?6, ?7 FROM (SELECT {CONTACT} AS id) c WHERE c.id IS NOT NULL"
        )
    })
}

fn refresh_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE contacts SET score = (SELECT COALESCE(sum(delta), 0) FROM points p \
           WHERE p.workspace = contacts.workspace AND p.contact_id = contacts.id) \
         WHERE id = {CONTACT}"
        )
    })
}

/// Lead-status ranks: promotions only move up, so each threshold triggers once per contact.
const RANK: &str =
    "CASE lead_status WHEN 'anonymous' THEN 0 WHEN 'known' THEN 1 WHEN 'mql' THEN 2 \
    WHEN 'sql' THEN 3 WHEN 'opportunity' THEN 4 WHEN 'customer' THEN 5 ELSE 99 END";

/// The three statements of a promotion: the internal event, the history row, the status. The
/// SQL is the same for every threshold, so it is built once.
fn promotion_sql() -> &'static [String; 3] {
    static SQL: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let cond = format!("id = {CONTACT} AND score >= ?5 AND ({RANK}) < ?6");
        [
            format!(
                "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
                 SELECT workspace, 'lead.' || ?8 || ':' || id, id, 'lead.' || ?8, \
                   json_object('score', score, 'threshold', ?5, 'from', lead_status), ?7, ?7 \
                 FROM contacts WHERE {cond}"
            ),
            format!(
                "INSERT OR IGNORE INTO lead_transitions (workspace, contact_id, to_status, from_status, cause, score, at) \
                 SELECT workspace, id, ?8, lead_status, 'score', score, ?7 FROM contacts WHERE {cond}"
            ),
            format!("UPDATE contacts SET lead_status = ?8, updated_at = ?7 WHERE {cond}"),
        ]
    })
}

/// The statements that promote a contact to `status` (rank `rank`) when its score reaches
/// `threshold`.
fn promote(
    threshold: i64,
    status: &'static str,
    rank: i64,
    at: Millis,
    subject: &[Value],
    out: &mut Vec<Statement>,
) {
    let p = params(
        subject,
        [
            threshold.into(),
            rank.into(),
            at.into(),
            Value::text_static(status),
        ],
    );
    let [event, transition, update] = promotion_sql();
    out.push(Statement::new(event.as_str(), p.clone()));
    out.push(Statement::new(transition.as_str(), p.clone()));
    out.push(Statement::new(update.as_str(), p));
}

/// Everything scoring writes for a batch of accepted events (after they were inserted).
pub fn statements(model: &Model, events: &[&Event]) -> Vec<Statement> {
    let mut texts = Texts::default();
    let mut slots: std::collections::BTreeMap<(&str, &crate::event::Subject), usize> =
        Default::default();
    let heads: Vec<[Value; 4]> = events
        .iter()
        .map(|e| subject_head(texts.get(&e.workspace), &e.subject))
        .collect();
    let batch: Vec<Ev<'_>> = events
        .iter()
        .zip(&heads)
        .map(|(e, head)| {
            let next = slots.len();
            Ev {
                event: e,
                subject: head,
                slot: *slots.entry((&e.workspace, &e.subject)).or_insert(next),
                id: Value::text_shared(&e.id),
            }
        })
        .collect();
    let mut out = Vec::new();
    batch_statements(model, &batch, &mut out);
    out
}

/// `statements` for the events of an ingest batch, with the parameters they share.
pub(super) fn batch_statements(model: &Model, events: &[Ev<'_>], out: &mut Vec<Statement>) {
    let award = award_sql();
    let signal = signal_sql();
    let version = i64::from(model.version);
    // Built once per batch, not per event or contact.
    let signals: Vec<Value> = model.sales_ready.as_ref().map_or_else(Vec::new, |sr| {
        (0..sr.all.len())
            .map(|i| Value::from(format!("sales_ready.{i}")))
            .collect()
    });
    // Rule ids by the rule's place in the model (awards point into `model.rules`).
    let mut rule_ids: Vec<Option<Value>> = vec![None; model.rules.len()];
    let mut rule_id = |rule: &Rule| match model.rules.iter().position(|r| std::ptr::eq(r, rule)) {
        Some(i) => rule_ids[i]
            .get_or_insert_with(|| Value::text_shared(&rule.id))
            .clone(),
        None => Value::from(rule.id.as_str()),
    };
    let mut day: Option<(i64, Value)> = None;
    for ev in events {
        let e = ev.event;
        // Event rules, then (for events that carry traits) attribute rules, as `event_awards`
        // and `attribute_awards` list them; walked, not collected.
        let attribute = crate::scoring::rules::carries_traits(&e.name)
            .then(|| attribute_rules(model, &e.properties));
        let mut rules = event_rules(model, &e.name, &e.properties)
            .chain(attribute.into_iter().flatten())
            .peekable();
        if rules.peek().is_some() {
            // Events of a batch mostly fall on one scoring day: its text is made once, and
            // reused while the day number (which names the calendar day) stays the same.
            let n = e.occurred_at.plus(DAY_OFFSET_MS).0.div_euclid(Millis::DAY);
            let day = match &day {
                Some((d, text)) if *d == n => text.clone(),
                _ => {
                    let text = Value::text_shared(&scoring_day(e.occurred_at));
                    day.insert((n, text)).1.clone()
                }
            };
            for rule in rules {
                let (key, max) = match rule.repeat {
                    Repeat::Once => (Value::text_static("once"), Value::Null),
                    Repeat::Unlimited => (ev.id.clone(), Value::Null),
                    Repeat::MaxPerDay(n) => (ev.id.clone(), i64::from(n).into()),
                };
                out.push(Statement::new(
                    award,
                    params(
                        ev.subject,
                        [
                            rule_id(rule),
                            key,
                            ev.id.clone(),
                            version.into(),
                            Value::text_static(rule.dimension.as_str()),
                            rule.points.into(),
                            day.clone(),
                            e.occurred_at.into(),
                            max,
                        ],
                    ),
                ));
            }
        }
        if let Some(sr) = &model.sales_ready {
            for (i, req) in sr.all.iter().enumerate() {
                if req.event == e.name && all_hold(&req.conditions, &e.properties) {
                    out.push(Statement::new(
                        signal,
                        params(
                            ev.subject,
                            [signals[i].clone(), ev.id.clone(), e.occurred_at.into()],
                        ),
                    ));
                }
            }
        }
    }
    // Per contact touched, in the order of its first event: refresh the score, then promote and
    // check the composite. The score is judged at the subject's latest event.
    let slots = events.iter().map(|ev| ev.slot + 1).max().unwrap_or(0);
    let mut latest: Vec<Option<Millis>> = vec![None; slots];
    for ev in events {
        let l = &mut latest[ev.slot];
        *l = Some(l.map_or(ev.event.occurred_at, |t| t.max(ev.event.occurred_at)));
    }
    // A subject's latest event is looked for across workspaces, as it always was; with one
    // workspace (every real batch) that is its slot's.
    let one_workspace = events
        .iter()
        .all(|ev| ev.event.workspace == events[0].event.workspace);
    let sales_ready = model
        .sales_ready
        .as_ref()
        .map(|sr| (sr, sales_ready_sql(sr)));
    let mut seen = vec![false; slots];
    for ev in events {
        if std::mem::replace(&mut seen[ev.slot], true) {
            continue;
        }
        let e = ev.event;
        let at = if one_workspace {
            latest[ev.slot].unwrap_or(e.occurred_at)
        } else {
            events
                .iter()
                .filter(|x| x.event.subject == e.subject)
                .map(|x| x.event.occurred_at)
                .max()
                .unwrap_or(e.occurred_at)
        };
        let subject = &ev.subject[..];
        out.push(Statement::new(refresh_sql(), subject.to_vec()));
        promote(model.thresholds.mql, "mql", 2, at, subject, out);
        promote(model.thresholds.sql, "sql", 3, at, subject, out);
        if let Some((sr, sql)) = &sales_ready {
            let p = params(
                subject,
                [
                    at.plus(-(i64::from(sr.window_days) * Millis::DAY)).into(),
                    at.into(),
                ],
            );
            out.push(Statement::new(sql[0].clone(), p.clone()));
            out.push(Statement::new(sql[1].clone(), p));
        }
    }
}

/// "Sales ready": every requirement met within the window, in any order; recorded once, as the
/// internal event `lead.sales_ready`. The two statements' SQL (it depends on the model, so it is
/// composed per batch); their parameters are the subject's, the window's start and the time.
fn sales_ready_sql(sr: &crate::scoring::model::SalesReady) -> [String; 2] {
    let counts: Vec<String> = sr
        .all
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "(SELECT count(*) FROM signals s WHERE s.workspace = contacts.workspace AND s.contact_id = contacts.id \
                 AND s.signal = 'sales_ready.{i}' AND s.at >= ?5) >= {}",
                r.count
            )
        })
        .collect();
    let cond = format!(
        "id = {CONTACT} AND sales_ready_at IS NULL AND {}",
        counts.join(" AND ")
    );
    [
        format!(
            "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
             SELECT workspace, 'lead.sales_ready:' || id, id, 'lead.sales_ready', json_object('score', score), ?6, ?6 \
             FROM contacts WHERE {cond}"
        ),
        format!("UPDATE contacts SET sales_ready_at = ?6 WHERE {cond}"),
    ]
}

const DECAY_CANDIDATES: &str = "SELECT id, last_seen_at, decay_level FROM contacts \
    WHERE workspace = ?1 AND last_seen_at <= ?2 AND merged_into IS NULL \
      AND CAST((?3 - last_seen_at) / ?4 AS INTEGER) > decay_level \
    ORDER BY last_seen_at LIMIT ?5";

const DECAY: &str = "INSERT OR IGNORE INTO points \
    (workspace, contact_id, rule_id, award_key, event_id, model_version, dimension, delta, day, awarded_at) \
    SELECT ?1, ?2, 'decay', ?3, NULL, ?4, 'decay', \
      -CAST(COALESCE((SELECT sum(delta) FROM points p WHERE p.workspace = ?1 AND p.contact_id = ?2 \
        AND (instr(?5, ',' || p.dimension || ',') > 0 OR p.dimension = 'decay')), 0) * ?6 AS INTEGER), \
      ?7, ?8";

const DECAY_DONE: &str = "UPDATE contacts SET decay_level = ?3, \
    score = (SELECT COALESCE(sum(delta), 0) FROM points p WHERE p.workspace = ?1 AND p.contact_id = ?2) \
    WHERE workspace = ?1 AND id = ?2";

/// One bounded pass of decay: contacts whose last activity is at least one period old and who
/// have not been decayed for that period lose `1 - factor` of their decaying points (never the
/// attribute points). Returns how many contacts were decayed; the cron calls it until it
/// returns less than `limit` or the tick's budget is spent.
pub async fn decay_pass(
    db: &impl Db,
    model: &Model,
    workspace: &str,
    now: Millis,
    limit: u32,
) -> Result<usize, Error> {
    let Some(d) = &model.decay else { return Ok(0) };
    let period = i64::from(d.after_days) * Millis::DAY;
    let rows = db
        .query(&Statement::new(
            DECAY_CANDIDATES,
            vec![
                workspace.into(),
                now.plus(-period).into(),
                now.into(),
                period.into(),
                i64::from(limit).into(),
            ],
        ))
        .await?;
    // ",behaviour,engagement," — matched with instr(), which D1 and SQLite both have.
    let dims: String = d
        .dimensions
        .iter()
        .map(|d| format!(",{}", d.as_str()))
        .collect::<String>()
        + ",";
    let mut stmts = Vec::new();
    for r in &rows {
        let (Some(id), Some(last)) = (r.text("id"), r.int("last_seen_at")) else {
            continue;
        };
        let level = (now.0 - last) / period;
        let params = vec![
            workspace.into(),
            id.as_str().into(),
            format!("decay:{last}:{level}").into(),
            i64::from(model.version).into(),
            dims.as_str().into(),
            Value::Real(1.0 - d.factor),
            scoring_day(now).into(),
            now.into(),
        ];
        stmts.push(Statement::new(DECAY, params));
        stmts.push(Statement::new(
            DECAY_DONE,
            vec![workspace.into(), id.into(), level.into()],
        ));
    }
    db.batch(&stmts).await?;
    Ok(rows.len())
}

/// One ledger line, as `GET /v1/contacts/{id}/score` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub rule: String,
    pub dimension: String,
    pub delta: i64,
    pub event_id: Option<String>,
    pub model_version: i64,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreView {
    pub contact_id: String,
    pub score: i64,
    pub by_dimension: serde_json::Map<String, serde_json::Value>,
    pub ledger: Vec<LedgerEntry>,
}

const LEDGER: &str =
    "SELECT rule_id, dimension, delta, event_id, model_version, awarded_at FROM points \
    WHERE workspace = ?1 AND contact_id = ?2 ORDER BY awarded_at, rule_id LIMIT 1000";

pub async fn ledger(db: &impl Db, workspace: &str, contact_id: &str) -> Result<ScoreView, Error> {
    let rows = db
        .query(&Statement::new(
            LEDGER,
            vec![workspace.into(), contact_id.into()],
        ))
        .await?;
    let ledger: Vec<LedgerEntry> = rows
        .iter()
        .map(|r| LedgerEntry {
            rule: r.text("rule_id").unwrap_or_default(),
            dimension: r.text("dimension").unwrap_or_default(),
            delta: r.int("delta").unwrap_or(0),
            event_id: r.text("event_id"),
            model_version: r.int("model_version").unwrap_or(0),
            at: Millis(r.int("awarded_at").unwrap_or(0)).rfc3339(),
        })
        .collect();
    let mut by_dimension = serde_json::Map::new();
    for l in &ledger {
        let v = by_dimension.entry(l.dimension.clone()).or_insert(0.into());
        *v = (v.as_i64().unwrap_or(0) + l.delta).into();
    }
    Ok(ScoreView {
        contact_id: contact_id.to_string(),
        score: ledger.iter().map(|l| l.delta).sum(),
        by_dimension,
        ledger,
    })
}

const START_RECOMPUTE: &str =
    "INSERT INTO scoring_recompute (workspace, model_version, cursor, contacts_done, started_at) \
    VALUES (?1, (SELECT max(version) FROM scoring_models WHERE workspace = ?1), '', 0, ?2) \
    ON CONFLICT (workspace) DO UPDATE SET model_version = excluded.model_version, cursor = '', \
      contacts_done = 0, started_at = excluded.started_at, finished_at = NULL";
const RECOMPUTE_STATE: &str = "SELECT model_version, cursor FROM scoring_recompute \
    WHERE workspace = ?1 AND finished_at IS NULL";
// `+workspace`: walk the primary key from the cursor, not the workspace's index and a sort.
const RECOMPUTE_PAGE: &str = "SELECT id FROM contacts WHERE +workspace = ?1 AND id > ?2 \
    AND merged_into IS NULL ORDER BY id LIMIT ?3";
// Internal events (lead.*, lifecycle.*) are outcomes of scoring, not inputs to it.
const RECOMPUTE_EVENTS: &str = "SELECT contact_id, id, name, properties, occurred_at FROM events \
    WHERE workspace = ?1 AND contact_id IN (SELECT id FROM contacts WHERE +workspace = ?1 AND id > ?2 \
      AND merged_into IS NULL ORDER BY id LIMIT ?3) \
      AND name NOT LIKE 'lead.%' AND name NOT LIKE 'lifecycle.%' \
    ORDER BY contact_id, occurred_at, id";
// Decay lines stay: they record what inactivity took, under the model of their time.
const CLEAR_AWARDS: &str =
    "DELETE FROM points WHERE workspace = ?1 AND contact_id = ?2 AND rule_id <> 'decay'";
const WRITE_LINE: &str = "INSERT OR IGNORE INTO points \
    (workspace, contact_id, rule_id, award_key, event_id, model_version, dimension, delta, day, awarded_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const ADVANCE: &str =
    "UPDATE scoring_recompute SET cursor = max(cursor, ?2), contacts_done = contacts_done + ?3 \
    WHERE workspace = ?1 AND model_version = ?4";
const FINISH: &str = "UPDATE scoring_recompute SET finished_at = ?2 WHERE workspace = ?1 AND model_version = ?3 AND finished_at IS NULL";

/// An event as a recomputation replays it: contact, id, name, properties, time.
type HistoryRow = (
    String,
    String,
    String,
    serde_json::Map<String, serde_json::Value>,
    Millis,
);

/// One bounded page of the recomputation after a model change: for up to `limit` contacts,
/// the ledger's awards are replaced by what their history earns under `model` (no double
/// counting: the old awards go in the same batch), scores refreshed, thresholds applied.
/// Returns how many contacts it did; 0 when there is nothing to do.
pub async fn recompute_pass(
    db: &impl Db,
    model: &Model,
    workspace: &str,
    now: Millis,
    limit: u32,
) -> Result<usize, Error> {
    let state = db
        .query(&Statement::new(RECOMPUTE_STATE, vec![workspace.into()]))
        .await?;
    let Some(row) = state.first() else {
        return Ok(0);
    };
    // engine may still hold the previous model for a minute; the walk waits for it.
    if row.int("model_version") != Some(i64::from(model.version)) {
        return Ok(0);
    }
    let cursor = row.text("cursor").unwrap_or_default();
    let page = vec![
        workspace.into(),
        cursor.as_str().into(),
        i64::from(limit).into(),
    ];
    let ids: Vec<String> = db
        .query(&Statement::new(RECOMPUTE_PAGE, page.clone()))
        .await?
        .iter()
        .filter_map(|r| r.text("id"))
        .collect();
    let version = i64::from(model.version);
    if ids.is_empty() {
        db.execute(&Statement::new(
            FINISH,
            vec![workspace.into(), now.into(), version.into()],
        ))
        .await?;
        return Ok(0);
    }
    let events = db.query(&Statement::new(RECOMPUTE_EVENTS, page)).await?;
    let parsed: Vec<HistoryRow> = events
        .iter()
        .map(|r| {
            (
                r.text("contact_id").unwrap_or_default(),
                r.text("id").unwrap_or_default(),
                r.text("name").unwrap_or_default(),
                r.text("properties")
                    .and_then(|p| serde_json::from_str(&p).ok())
                    .unwrap_or_default(),
                Millis(r.int("occurred_at").unwrap_or(0)),
            )
        })
        .collect();
    let mut stmts = Vec::new();
    for id in &ids {
        let history = parsed
            .iter()
            .filter(|e| &e.0 == id)
            .map(|e| (e.1.as_str(), e.2.as_str(), &e.3, e.4));
        let lines = crate::scoring::rules::replay(model, history, scoring_day);
        stmts.push(Statement::new(
            CLEAR_AWARDS,
            vec![workspace.into(), id.as_str().into()],
        ));
        for l in lines {
            stmts.push(Statement::new(
                WRITE_LINE,
                vec![
                    workspace.into(),
                    id.as_str().into(),
                    l.rule_id.into(),
                    l.award_key.into(),
                    l.event_id.into(),
                    version.into(),
                    l.dimension.into(),
                    l.delta.into(),
                    l.day.into(),
                    l.at.into(),
                ],
            ));
        }
        let subject = vec![workspace.into(), "".into(), "".into(), id.as_str().into()];
        stmts.push(Statement::new(refresh_sql(), subject.clone()));
        promote(model.thresholds.mql, "mql", 2, now, &subject, &mut stmts);
        promote(model.thresholds.sql, "sql", 3, now, &subject, &mut stmts);
    }
    let last = ids.last().cloned().unwrap_or_default();
    stmts.push(Statement::new(
        ADVANCE,
        vec![
            workspace.into(),
            last.into(),
            (ids.len() as i64).into(),
            version.into(),
        ],
    ));
    db.batch(&stmts).await?;
    Ok(ids.len())
}

const SAVE_MODEL: &str = "INSERT INTO scoring_models (workspace, version, document, created_at) \
    VALUES (?1, (SELECT COALESCE(max(version), 0) + 1 FROM scoring_models WHERE workspace = ?1), ?2, ?3)";
const ACTIVE_MODEL: &str = "SELECT version, document FROM scoring_models WHERE workspace = ?1 \
    ORDER BY version DESC LIMIT 1";

/// Stores a validated model as the next version and returns it with its version set.
pub async fn save_model(
    db: &impl Db,
    workspace: &str,
    model: &Model,
    now: Millis,
) -> Result<Model, Error> {
    crate::scoring::validate(model)?;
    let doc = serde_json::to_string(model).map_err(|e| Error::Store(e.to_string()))?;
    db.execute(&Statement::new(
        SAVE_MODEL,
        vec![workspace.into(), doc.into(), now.into()],
    ))
    .await?;
    // Every contact's score is recomputed from history under the new version, page by page on
    // the cron (`recompute_pass`); a newer model restarts the walk.
    db.execute(&Statement::new(
        START_RECOMPUTE,
        vec![workspace.into(), now.into()],
    ))
    .await?;
    active_model(db, workspace)
        .await?
        .ok_or_else(|| Error::Store("the model just saved is missing".into()))
}

pub async fn active_model(db: &impl Db, workspace: &str) -> Result<Option<Model>, Error> {
    let rows = db
        .query(&Statement::new(ACTIVE_MODEL, vec![workspace.into()]))
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let mut m: Model = r
        .text("document")
        .and_then(|d| serde_json::from_str(&d).ok())
        .ok_or_else(|| Error::Store("stored scoring model does not parse".into()))?;
    m.version = r.int("version").unwrap_or(0) as u32;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::IngestMessage;
    use crate::pii::{PiiKeys, DEV_PII_KEY};

    #[test]
    fn statements_are_what_the_ingest_batch_scores() {
        let model = Model::parse(include_bytes!("../../config/scoring.json")).unwrap();
        let keys = PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap();
        let now = Millis(1_781_740_800_000);
        let mut messages = Vec::new();
        for (vid, events) in [
            (
                "v_scoring_1",
                r#"[{"id":"e_score_01","type":"page","url":"https://a.example/cases/x"},
                    {"id":"e_score_02","type":"track","name":"whitepaper_downloaded"},
                    {"id":"e_score_03","type":"identify","email":"a@b.cn","traits":{"company_size":900}}]"#,
            ),
            (
                "v_scoring_2",
                r#"[{"id":"e_score_04","type":"page","url":"https://a.example/","ts":1781654400000},
                    {"id":"e_score_05","type":"track","name":"webinar_attended"}]"#,
            ),
        ] {
            let body = format!(r#"{{"site":"demo","vid":"{vid}","events":{events}}}"#);
            let b =
                crate::beacon::parse(body.as_bytes(), now, Some(&keys), &mut || [7; 12]).unwrap();
            messages.extend(b.messages);
        }
        let events: Vec<&Event> = messages
            .iter()
            .filter_map(|m| match m {
                IngestMessage::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        let scored = super::super::ingest::batch_statements(&messages, Some(&model));
        let mut expected = super::super::ingest::batch_statements(&messages, None);
        let scoring = statements(&model, &events);
        assert!(scoring.len() > 5, "{scoring:?}");
        expected.extend(scoring);
        assert_eq!(scored, expected);
    }
}

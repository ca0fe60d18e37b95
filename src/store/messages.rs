//! The outbox: messages and their state machine in D1. Enqueueing is idempotent by key; every
//! state change is a compare-and-set on the current state, so a redelivered queue message, a
//! retried batch or an overlapping cron can never send one message twice.

use super::{Db, Row, RowExt, Statement};
use crate::consent::Channel;
use crate::delivery::decision::{utc_offset_min, Kind};
use crate::error::Error;
use crate::time::Millis;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

/// The channels a message can go out on: the consented marketing channels plus webhooks (to
/// systems, not people: no consent applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Person(Channel),
    Webhook,
}

impl Route {
    pub fn parse(s: &str) -> Option<Route> {
        match s {
            "webhook" => Some(Route::Webhook),
            other => Channel::parse(other).map(Route::Person),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Person(c) => c.as_str(),
            Route::Webhook => "webhook",
        }
    }
}

/// A message to put in the outbox.
pub struct NewMessage<'a> {
    pub workspace: &'a str,
    pub id: &'a str,
    pub idempotency_key: &'a str,
    pub contact_id: &'a str,
    pub route: Route,
    pub kind: Kind,
    pub template: Option<(&'a str, i64)>,
    pub journey_id: Option<&'a str>,
    pub variables: &'a Map<String, Json>,
    pub now: Millis,
}

const ENQUEUE: &str = "INSERT OR IGNORE INTO messages \
    (workspace, id, idempotency_key, contact_id, channel, kind, template_id, template_version, \
     journey_id, variables, state, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'queued', ?11, ?11)";
const BY_KEY: &str = "SELECT id, state FROM messages WHERE workspace = ?1 AND idempotency_key = ?2";

/// Puts a message in the outbox; returns its id and whether it is new (an existing message
/// with the same idempotency key is returned instead of a second one).
pub async fn enqueue(db: &impl Db, m: &NewMessage<'_>) -> Result<(String, bool), Error> {
    let changed = db
        .execute(&Statement::new(
            ENQUEUE,
            vec![
                m.workspace.into(),
                m.id.into(),
                m.idempotency_key.into(),
                m.contact_id.into(),
                m.route.as_str().into(),
                m.kind.as_str().into(),
                m.template.map(|t| t.0.to_string()).into(),
                m.template.map(|t| t.1).into(),
                m.journey_id.map(str::to_string).into(),
                Json::Object(m.variables.clone()).to_string().into(),
                m.now.into(),
            ],
        ))
        .await?;
    let rows = db
        .query(&Statement::new(
            BY_KEY,
            vec![m.workspace.into(), m.idempotency_key.into()],
        ))
        .await?;
    let id = rows
        .first()
        .and_then(|r| r.text("id"))
        .ok_or_else(|| Error::Store("enqueued message not found".into()))?;
    Ok((id, changed == 1))
}

/// A message as the deliver function and the api read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub kind: String,
    pub template_id: Option<String>,
    pub template_version: Option<i64>,
    pub variant: Option<String>,
    pub journey_id: Option<String>,
    /// The journey node that sent it (with `journey_id`).
    pub journey_node: Option<String>,
    pub variables: Json,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    #[serde(skip)]
    pub workspace: String,
}

const COLUMNS: &str = "workspace, id, contact_id, channel, kind, template_id, template_version, variant, \
    journey_id, journey_node, variables, state, reason, attempts, next_attempt_at, provider_id, created_at, sent_at";

fn message(r: &Row) -> Message {
    let at = |c: &str| r.int(c).map(|t| Millis(t).rfc3339());
    Message {
        workspace: r.text("workspace").unwrap_or_default(),
        id: r.text("id").unwrap_or_default(),
        contact_id: r.text("contact_id").unwrap_or_default(),
        channel: r.text("channel").unwrap_or_default(),
        kind: r.text("kind").unwrap_or_default(),
        template_id: r.text("template_id"),
        template_version: r.int("template_version"),
        variant: r.text("variant"),
        journey_id: r.text("journey_id"),
        journey_node: r.text("journey_node"),
        variables: r
            .text("variables")
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_else(|| json!({})),
        state: r.text("state").unwrap_or_default(),
        reason: r.text("reason"),
        attempts: r.int("attempts").unwrap_or(0),
        next_attempt_at: at("next_attempt_at"),
        provider_id: r.text("provider_id"),
        created_at: at("created_at").unwrap_or_default(),
        sent_at: at("sent_at"),
    }
}

pub async fn get(db: &impl Db, id: &str) -> Result<Option<Message>, Error> {
    let rows = db
        .query(&Statement::new(
            format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"),
            vec![id.into()],
        ))
        .await?;
    Ok(rows.first().map(message))
}

/// Several messages in one round trip (a queue batch's), by id.
pub async fn get_many(db: &impl Db, ids: &[String]) -> Result<Vec<Message>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = Json::from(ids.to_vec()).to_string();
    let rows = db
        .query(&Statement::new(
            format!("SELECT {COLUMNS} FROM messages WHERE id IN (SELECT value FROM json_each(?1))"),
            vec![list.into()],
        ))
        .await?;
    Ok(rows.iter().map(message).collect())
}

/// Filters for the api's list.
#[derive(Default)]
pub struct Filter<'a> {
    pub contact_id: Option<&'a str>,
    pub state: Option<&'a str>,
    pub template_id: Option<&'a str>,
    pub limit: u32,
}

pub async fn list(db: &impl Db, workspace: &str, f: &Filter<'_>) -> Result<Vec<Message>, Error> {
    let rows = db
        .query(&Statement::new(
            format!(
                "SELECT {COLUMNS} FROM messages WHERE workspace = ?1 AND (?2 IS NULL OR contact_id = ?2) \
                 AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR template_id = ?4) \
                 ORDER BY created_at DESC, id DESC LIMIT ?5"
            ),
            vec![
                workspace.into(),
                f.contact_id.map(str::to_string).into(),
                f.state.map(str::to_string).into(),
                f.template_id.map(str::to_string).into(),
                i64::from(f.limit.clamp(1, 1000)).into(),
            ],
        ))
        .await?;
    Ok(rows.iter().map(message).collect())
}

/// The states a message may be picked up from for a (new) decision and send.
pub const OPEN_STATES: &str = "('queued', 'deferred', 'retry')";

/// A state change, applied only if the message is still in one of `from` (a SQL list such as
/// [`OPEN_STATES`]): returns whether this caller made it.
pub struct Transition<'a> {
    pub id: &'a str,
    pub from: &'static str,
    pub to: &'a str,
    pub reason: Option<&'a str>,
    pub next_attempt_at: Option<Millis>,
    pub provider_id: Option<&'a str>,
    pub variant: Option<&'a str>,
    /// Counts as a try (the claim before a send).
    pub attempt: bool,
    pub now: Millis,
}

pub async fn transition(db: &impl Db, t: &Transition<'_>) -> Result<bool, Error> {
    let sql = format!(
        "UPDATE messages SET state = ?2, reason = ?3, next_attempt_at = ?4, \
         provider_id = COALESCE(?5, provider_id), variant = COALESCE(?6, variant), \
         attempts = attempts + ?7, updated_at = ?8, \
         sent_at = CASE WHEN ?2 = 'sending' THEN ?8 ELSE sent_at END \
         WHERE id = ?1 AND state IN {}",
        t.from
    );
    let changed = db
        .execute(&Statement::new(
            sql,
            vec![
                t.id.into(),
                t.to.into(),
                t.reason.map(str::to_string).into(),
                t.next_attempt_at.into(),
                t.provider_id.map(str::to_string).into(),
                t.variant.map(str::to_string).into(),
                i64::from(t.attempt).into(),
                t.now.into(),
            ],
        ))
        .await?;
    // The history row is written by a trigger, in the same statement. D1 counts the trigger's
    // insert among the changes (SQLite's own count does not): any change means ours.
    Ok(changed > 0)
}

/// The history of a message's states, oldest first.
pub async fn history(db: &impl Db, id: &str) -> Result<Vec<Json>, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT at, state, reason, attempt FROM message_history WHERE message_id = ?1 ORDER BY at, rowid",
            vec![id.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "at": r.int("at").map(|t| Millis(t).rfc3339()),
                "state": r.text("state"),
                "reason": r.text("reason"),
                "attempt": r.int("attempt"),
            })
        })
        .collect())
}

/// What the decision needs from storage, besides consent.
pub struct Facts {
    pub recent: Vec<Millis>,
    pub utc_offset_min: i32,
    pub last_sales_contact: Option<Millis>,
    /// The message's journey's own cap (max, window ms), if it has one, and the send times of
    /// that journey's marketing messages on the channel within its window.
    pub journey_cap: Option<(u32, i64)>,
    pub journey_recent: Vec<Millis>,
}

/// Messages due at `now` — queued by a journey step (which sets `next_attempt_at` so the order
/// survives an invocation that dies before its queue send), deferred, or waiting for a retry —
/// and sends claimed so long ago that their invocation must have died: handed to the queue.
// Handing a message back takes a lease on it (its next attempt moves a few minutes on), so the
// next tick does not queue it again while the first order is still on its way; deliver ignores
// the lease, and a lost order is re-queued when the lease ends.
const DUE: &str = "UPDATE messages SET next_attempt_at = ?1 + ?3 WHERE id IN \
    (SELECT id FROM messages WHERE state IN ('queued', 'deferred', 'retry') AND next_attempt_at <= ?1 \
     ORDER BY next_attempt_at LIMIT ?2) RETURNING id, attempts";
/// How long a re-queued message is left to its order before the cron queues it again.
pub const REQUEUE_LEASE_MS: i64 = 5 * Millis::MINUTE;
const STALE: &str =
    "UPDATE messages SET state = 'retry', reason = 'interrupted', next_attempt_at = ?1 \
    WHERE state = 'sending' AND updated_at < ?1 - ?2";
/// How long a claimed send may take before it counts as interrupted.
pub const STALE_SENDING_MS: i64 = 10 * Millis::MINUTE;

/// Returns (message id, tries so far) of each message handed back.
pub async fn due(db: &impl Db, now: Millis, limit: u32) -> Result<Vec<(String, i64)>, Error> {
    db.execute(&Statement::new(
        STALE,
        vec![now.into(), STALE_SENDING_MS.into()],
    ))
    .await?;
    let rows = db
        .query(&Statement::new(
            DUE,
            vec![now.into(), i64::from(limit).into(), REQUEUE_LEASE_MS.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.text("id")?, r.int("attempts").unwrap_or(0))))
        .collect())
}

/// Per-variant counts of a template's messages: sent, delivered, opened, clicked (human opens
/// and clicks recorded by track for the message), converted (`goal` event within 7 days).
pub async fn ab_arms(
    db: &impl Db,
    workspace: &str,
    template: &str,
    goal: &str,
) -> Result<Vec<crate::delivery::ab::Arm>, Error> {
    const ARMS: &str = "SELECT m.variant AS variant, \
        count(*) FILTER (WHERE m.state IN ('sent', 'delivered')) AS sent, \
        count(*) FILTER (WHERE m.state = 'delivered') AS delivered, \
        count(DISTINCT o.message) AS opened, count(DISTINCT k.message) AS clicked, \
        count(DISTINCT g.message) AS converted \
        FROM messages m \
        LEFT JOIN (SELECT json_extract(properties, '$.message_id') AS message FROM events \
          WHERE workspace = ?1 AND name = 'email_opened' AND json_extract(properties, '$.machine') IS NOT 1) o ON o.message = m.id \
        LEFT JOIN (SELECT json_extract(properties, '$.message_id') AS message FROM events \
          WHERE workspace = ?1 AND name = 'email_clicked' AND json_extract(properties, '$.machine') IS NOT 1) k ON k.message = m.id \
        LEFT JOIN (SELECT m2.id AS message FROM messages m2 JOIN events e ON e.workspace = m2.workspace \
          AND e.contact_id = m2.contact_id AND e.name = ?3 AND e.occurred_at >= m2.sent_at \
          AND e.occurred_at < m2.sent_at + 604800000 WHERE m2.workspace = ?1 AND m2.template_id = ?2) g ON g.message = m.id \
        WHERE m.workspace = ?1 AND m.template_id = ?2 AND m.variant IS NOT NULL \
        GROUP BY m.variant ORDER BY m.variant";
    let rows = db
        .query(&Statement::new(
            ARMS,
            vec![workspace.into(), template.into(), goal.into()],
        ))
        .await?;
    let n = |r: &Row, c: &str| r.int(c).unwrap_or(0).max(0) as u64;
    Ok(rows
        .iter()
        .map(|r| crate::delivery::ab::Arm {
            variant: r.text("variant").unwrap_or_default(),
            sent: n(r, "sent"),
            delivered: n(r, "delivered"),
            opened: n(r, "opened"),
            clicked: n(r, "clicked"),
            converted: n(r, "converted"),
        })
        .collect())
}

/// The declared winner of a template version's A/B test, if any.
pub async fn ab_winner(
    db: &impl Db,
    workspace: &str,
    template: &str,
    version: i64,
) -> Result<Option<String>, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT variant FROM ab_winners WHERE workspace = ?1 AND template_id = ?2 AND template_version = ?3",
            vec![workspace.into(), template.into(), version.into()],
        ))
        .await?;
    Ok(rows.first().and_then(|r| r.text("variant")))
}

pub async fn declare_winner(
    db: &impl Db,
    workspace: &str,
    template: &str,
    version: i64,
    variant: &str,
    now: Millis,
) -> Result<(), Error> {
    db.execute(&Statement::new(
        "INSERT OR IGNORE INTO ab_winners (workspace, template_id, template_version, variant, decided_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            workspace.into(),
            template.into(),
            version.into(),
            variant.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The cron's A/B step: for each template whose plan asks for automatic rollout and whose
/// current version has no winner yet, judge the arms and declare a winner once one is
/// significant with every variant at the sample. Returns the winners declared.
pub async fn auto_rollout(
    db: &impl Db,
    workspace: &str,
    now: Millis,
) -> Result<Vec<(String, String)>, Error> {
    let mut declared = Vec::new();
    let docs = super::documents::list(db, &super::documents::TEMPLATES, workspace).await?;
    for text in docs {
        let Ok(t) = serde_json::from_str::<crate::template::Template>(&text) else {
            continue;
        };
        let Some(plan) = t.ab.as_ref().filter(|p| p.auto_rollout) else {
            continue;
        };
        let version = i64::try_from(t.version).unwrap_or(i64::MAX);
        if ab_winner(db, workspace, &t.id, version).await?.is_some() {
            continue;
        }
        let arms = ab_arms(db, workspace, &t.id, &plan.goal).await?;
        let verdict = crate::delivery::ab::judge(&arms, plan.metric, plan.min_sample, 0.05);
        if let Some(w) = verdict.winner {
            declare_winner(db, workspace, &t.id, version, &w, now).await?;
            declared.push((t.id.clone(), w));
        }
    }
    Ok(declared)
}

// --- a queue batch at a time -------------------------------------------------------------------
// deliver decides, claims and records a whole queue batch with one statement per step instead
// of one per message: the same rules and the same compare-and-set as above, in a few round trips.

/// One decision's question for [`facts_many`]: about `message_id`, to `contact` on `channel`,
/// at `now`.
pub struct FactsAsk<'a> {
    pub contact: &'a str,
    pub channel: &'a str,
    pub message_id: &'a str,
    pub now: Millis,
}

// One row per ask (?2: a JSON array of [contact, channel, message id, now]), each with what
// `facts` reads for it: the contact's time zone, the last sales contact before now, and the
// channel's marketing sends in the cap window before now, other than the message itself.
const FACTS_MANY: &str = "SELECT a.key AS ask, json_extract(c.attributes, '$.timezone') AS tz, \
    (SELECT max(occurred_at) FROM events e WHERE e.workspace = c.workspace AND e.contact_id = c.id \
       AND e.name = 'sales_contacted' AND e.occurred_at <= a.at) AS sales, \
    (SELECT json_group_array(m.sent_at) FROM messages m WHERE m.workspace = ?1 \
       AND m.contact_id = a.contact AND m.channel = a.channel AND m.kind = 'marketing' \
       AND m.id <> a.message AND m.state IN ('sending', 'sent', 'delivered') \
       AND m.sent_at > a.at - ?3 AND m.sent_at <= a.at) AS recent, \
    (SELECT json_extract(j.definition, '$.frequency_cap') FROM journeys j \
       WHERE j.workspace = ?1 AND j.id = a.journey) AS journey_cap, \
    (SELECT json_group_array(m.sent_at) FROM messages m WHERE m.workspace = ?1 \
       AND m.contact_id = a.contact AND m.channel = a.channel AND m.kind = 'marketing' \
       AND m.id <> a.message AND m.state IN ('sending', 'sent', 'delivered') AND a.journey IS NOT NULL \
       AND m.journey_id = a.journey AND m.sent_at > a.at - ?4 AND m.sent_at <= a.at) AS journey_recent \
    FROM (SELECT key, json_extract(value, '$[0]') AS contact, json_extract(value, '$[1]') AS channel, \
            json_extract(value, '$[2]') AS message, json_extract(value, '$[3]') AS at, \
            (SELECT journey_id FROM messages WHERE id = json_extract(value, '$[2]')) AS journey \
          FROM json_each(?2)) a \
    LEFT JOIN contacts c ON c.id = a.contact AND +c.workspace = ?1";

/// [`facts`] for many decisions in one round trip; answers in the order asked.
pub async fn facts_many(
    db: &impl Db,
    workspace: &str,
    asks: &[FactsAsk<'_>],
    window_ms: i64,
) -> Result<Vec<Facts>, Error> {
    if asks.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<Json> = asks
        .iter()
        .map(|a| json!([a.contact, a.channel, a.message_id, a.now.0]))
        .collect();
    let rows = db
        .query(&Statement::new(
            FACTS_MANY,
            vec![
                workspace.into(),
                Json::from(list).to_string().into(),
                window_ms.into(),
                crate::journey::definition::MAX_CAP_WINDOW_MS.into(),
            ],
        ))
        .await?;
    let mut facts: Vec<Option<Facts>> = asks.iter().map(|_| None).collect();
    for r in &rows {
        let slot = r
            .int("ask")
            .and_then(|i| facts.get_mut(usize::try_from(i).ok()?));
        if let Some(slot) = slot {
            *slot = Some(Facts {
                recent: r
                    .text("recent")
                    .and_then(|t| serde_json::from_str::<Vec<i64>>(&t).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(Millis)
                    .collect(),
                utc_offset_min: utc_offset_min(r.text("tz").as_deref()),
                last_sales_contact: r.int("sales").map(Millis),
                // The definition was checked when saved; a cap that no longer reads is no cap.
                journey_cap: r
                    .text("journey_cap")
                    .and_then(|t| serde_json::from_str::<Json>(&t).ok())
                    .and_then(|c| crate::journey::definition::journey_cap(&c).ok()),
                journey_recent: r
                    .text("journey_recent")
                    .and_then(|t| serde_json::from_str::<Vec<i64>>(&t).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(Millis)
                    .collect(),
            });
        }
    }
    facts
        .into_iter()
        .map(|f| f.ok_or_else(|| Error::Store("facts_many: an ask without its row".into())))
        .collect()
}

/// The declared A/B winners of several template versions in one round trip, by (template,
/// version); versions without a winner are absent.
pub async fn ab_winners(
    db: &impl Db,
    workspace: &str,
    templates: &[(&str, i64)],
) -> Result<std::collections::HashMap<(String, i64), String>, Error> {
    if templates.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<&str> = templates.iter().map(|t| t.0).collect();
    let rows = db
        .query(&Statement::new(
            "SELECT template_id, template_version, variant FROM ab_winners \
             WHERE workspace = ?1 AND template_id IN (SELECT value FROM json_each(?2))",
            vec![workspace.into(), super::id_list(&ids)],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let key = (r.text("template_id")?, r.int("template_version")?);
            Some((key, r.text("variant")?))
        })
        .filter(|((id, version), _)| templates.contains(&(id.as_str(), *version)))
        .collect())
}

/// Many [`Transition`]s, one statement per distinct `from` (usually one): each applied only if
/// its message is still in its `from` states, exactly as [`transition`] applies one. Returns the
/// ids of the messages this call changed — the only ones it may go on with (a claim that is not
/// among them belongs to another delivery). A message named twice is changed at most once.
pub async fn transition_many(
    db: &impl Db,
    changes: &[Transition<'_>],
) -> Result<Vec<String>, Error> {
    let mut froms: Vec<&'static str> = changes.iter().map(|t| t.from).collect();
    froms.sort_unstable();
    froms.dedup();
    let mut changed = Vec::new();
    for from in froms {
        let list: Vec<Json> = changes
            .iter()
            .filter(|t| t.from == from)
            .map(|t| {
                json!({"id": t.id, "to": t.to, "reason": t.reason, "next": t.next_attempt_at.map(|m| m.0),
                       "provider": t.provider_id, "variant": t.variant, "attempt": i64::from(t.attempt),
                       "at": t.now.0})
            })
            .collect();
        // The RETURNING list, not the change count, says which rows this statement moved: D1's
        // count includes the history trigger's rows and is one number for the whole list. The
        // state test is written `+state` so SQLite walks the list and finds each message by its
        // key, rather than walking every open message (the state index) for each entry.
        let sql = format!(
            "UPDATE messages SET state = t.next_state, reason = t.next_reason, \
             next_attempt_at = t.next_attempt, provider_id = COALESCE(t.next_provider, provider_id), \
             variant = COALESCE(t.next_variant, variant), attempts = attempts + t.bump, \
             updated_at = t.at, sent_at = CASE WHEN t.next_state = 'sending' THEN t.at ELSE sent_at END \
             FROM (SELECT json_extract(value, '$.id') AS message, json_extract(value, '$.to') AS next_state, \
                     json_extract(value, '$.reason') AS next_reason, json_extract(value, '$.next') AS next_attempt, \
                     json_extract(value, '$.provider') AS next_provider, \
                     json_extract(value, '$.variant') AS next_variant, \
                     json_extract(value, '$.attempt') AS bump, json_extract(value, '$.at') AS at \
                   FROM json_each(?1)) AS t \
             WHERE messages.id = t.message AND +messages.state IN {from} RETURNING id"
        );
        let rows = db
            .query(&Statement::new(
                sql,
                vec![Json::from(list).to_string().into()],
            ))
            .await?;
        changed.extend(rows.iter().filter_map(|r| r.text("id")));
    }
    Ok(changed)
}

//! Journeys in D1: definitions and their triggers, the event pass that enrols, ends and wakes
//! enrollments, the advance pass that runs due steps, and scheduled entries.
//!
//! Exactly once, on at-least-once infrastructure: enrollments are unique per (journey, contact,
//! entry key); the advance pass claims due enrollments with a lease in one conditional UPDATE,
//! writes every effect under the key (enrollment, step) with INSERT OR IGNORE, and moves the
//! enrollment on only if its step counter is still the one it claimed. Two overlapping ticks
//! cannot claim the same enrollment; a tick that dies leaves a lease that runs out, and the
//! redo finds its effects already written.
//!
//! Bounded and batched: a page of enrollments costs three round trips (claim, facts, one write
//! batch of set-based statements over JSON arrays), whatever its size.

use super::documents::{self, JOURNEYS};
use super::{Db, Row, RowExt, Statement, Value};
use crate::error::Error;
use crate::journey::definition::{Cond, Entry, Journey, Node, Stored, Templates};
use crate::journey::run::{advance, Action, Facts, Next, Position};
use crate::journey::{clock, triggers};
use crate::time::Millis;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// How long a claimed enrollment is left to its claimer before another tick may take it.
pub const LEASE_MS: i64 = 5 * Millis::MINUTE;
/// Events looked at per event pass (by rowid), so a backlog is worked off in bounded steps.
pub const EVENT_WINDOW: i64 = 5_000;
/// A schedule's occurrence older than this is not run (a journey created on the 5th does not
/// send the 1st's message).
pub const SCHEDULE_GRACE_MS: i64 = Millis::DAY;

/// Validates and stores a journey as its next version, then points its triggers at that
/// version: new enrollments get it, running ones keep theirs.
pub async fn save(
    db: &impl Db,
    workspace: &str,
    id: &str,
    text: &str,
    templates: &impl Templates,
    now: Millis,
) -> Result<Journey, Error> {
    let mut checked = crate::journey::parse(id, 0, text, templates)?;
    let from = db
        .query(&Statement::new(
            "SELECT COALESCE((SELECT min(from_rowid) FROM journey_triggers WHERE workspace = ?1 \
               AND journey_id = ?2 AND role = 'entry'), (SELECT COALESCE(max(rowid), 0) FROM events)) AS from_rowid",
            vec![workspace.into(), id.into()],
        ))
        .await?
        .first()
        .and_then(|r| r.int("from_rowid"))
        .unwrap_or(0);
    let version =
        documents::save(db, &JOURNEYS, workspace, id, now, |_| Ok(text.to_string())).await?;
    checked.version = version;
    let mut stmts = vec![Statement::new(
        "DELETE FROM journey_triggers WHERE workspace = ?1 AND journey_id = ?2",
        vec![workspace.into(), id.into()],
    )];
    for t in triggers(&checked) {
        stmts.push(Statement::new(
            "INSERT INTO journey_triggers (workspace, journey_id, version, role, event, filter, \
             re_entry, at_property, at_offset, start_node, max_ms, from_rowid) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            vec![
                workspace.into(),
                id.into(),
                version.into(),
                t.role.into(),
                t.event.into(),
                Json::Object(t.filter).to_string().into(),
                t.re_entry.as_str().into(),
                t.at_property.into(),
                t.at_offset.into(),
                checked.start.clone().into(),
                checked.max_duration_ms.into(),
                from.into(),
            ],
        ));
    }
    db.batch(&stmts).await?;
    Ok(checked)
}

/// The current version of every journey.
pub async fn current(db: &impl Db, workspace: &str) -> Result<Vec<Journey>, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT id, version, definition FROM journeys WHERE workspace = ?1 ORDER BY id",
            vec![workspace.into()],
        ))
        .await?;
    Ok(rows.iter().filter_map(stored).collect())
}

fn stored(r: &Row) -> Option<Journey> {
    crate::journey::parse(
        &r.text("id")?,
        r.int("version")?,
        &r.text("definition")?,
        &Stored,
    )
    .ok()
}

/// The range of events an event pass looks at: past the cursor, at most [`EVENT_WINDOW`].
const RANGE: &str = "WITH cur AS (SELECT COALESCE((SELECT last_rowid FROM journey_cursor WHERE workspace = ?1), 0) AS lo), \
    r AS (SELECT lo, min(lo + ?3, (SELECT COALESCE(max(rowid), 0) FROM events)) AS hi FROM cur) ";

// The event pass's joins are written CROSS JOIN, which SQLite keeps in the order written: the
// events past the cursor (a rowid range) drive every lookup. Left to itself, without table
// statistics, SQLite chose to walk every waiting enrollment or every event of the workspace
// instead, which made a pass cost the size of the tables rather than the events it reads.

/// An event's properties carry every value of the trigger's filter.
const FILTER_MATCHES: &str = "NOT EXISTS (SELECT 1 FROM json_each(t.filter) f \
    WHERE json_extract(e.properties, '$.' || f.key) IS NOT f.value)";

fn wake_sql() -> String {
    // A contact doing what a wait waits for, before the wait's deadline: the enrollment is due
    // at the event's time, with the event's properties in its context.
    format!(
        "{RANGE}, w AS (SELECT x.id AS id, min(e.occurred_at) AS at, e.properties AS props \
           FROM r CROSS JOIN events e CROSS JOIN enrollments x \
           WHERE x.workspace = e.workspace AND x.contact_id = e.contact_id \
             AND x.wait_event = e.name AND x.state = 'waiting' \
             AND e.rowid > r.lo AND e.rowid <= r.hi AND +e.workspace = ?1 \
             AND e.occurred_at >= x.updated_at AND e.occurred_at <= x.next_run_at GROUP BY x.id) \
         UPDATE enrollments SET next_run_at = w.at, wait_event = NULL, updated_at = ?2, \
           context = json_set(enrollments.context, '$.woke', enrollments.wait_event, '$.event', json(w.props)) \
         FROM w WHERE enrollments.id = w.id"
    )
}

fn leave_sql(role: &str, state: &str) -> String {
    format!(
        "{RANGE} UPDATE enrollments SET state = '{state}', next_run_at = NULL, wait_event = NULL, \
           lease_until = NULL, updated_at = ?2 \
         WHERE id IN (SELECT x.id FROM r CROSS JOIN events e CROSS JOIN journey_triggers t \
             CROSS JOIN enrollments x \
           WHERE t.workspace = e.workspace AND t.event = e.name AND t.role = '{role}' \
             AND x.workspace = e.workspace AND x.contact_id = e.contact_id \
             AND x.journey_id = t.journey_id AND x.state IN ('active', 'waiting') \
             AND e.rowid > r.lo AND e.rowid <= r.hi AND +e.workspace = ?1 \
             AND e.occurred_at >= x.started_at AND {FILTER_MATCHES})"
    )
}

fn enrol_sql() -> String {
    // The entry key makes enrolment idempotent: '' for once per contact; the event id when
    // every event enrols; the count of ended enrollments for "again after the last one
    // ended" (two events in one pass count the same and collide, so one enrolment).
    let at = "json_extract(e.properties, '$.' || t.at_property)";
    format!(
        "{RANGE} INSERT OR IGNORE INTO enrollments (workspace, id, journey_id, version, contact_id, \
           entry_key, state, node, step, next_run_at, context, started_at, expires_at, updated_at) \
         SELECT e.workspace, 'en_' || lower(hex(randomblob(12))), t.journey_id, t.version, c.id, \
           CASE t.re_entry WHEN 'always' THEN e.id \
             WHEN 'after_exit' THEN 'n' || (SELECT count(*) FROM enrollments x WHERE x.workspace = e.workspace \
               AND x.journey_id = t.journey_id AND x.contact_id = c.id AND x.state NOT IN ('active', 'waiting')) \
             ELSE '' END, \
           'active', t.start_node, 0, \
           CASE WHEN t.at_property IS NULL THEN e.occurred_at \
             ELSE COALESCE(CASE json_type(e.properties, '$.' || t.at_property) \
               WHEN 'integer' THEN {at} \
               WHEN 'text' THEN CAST(strftime('%s', {at}) AS INTEGER) * 1000 END, e.occurred_at) + t.at_offset END, \
           e.properties, e.occurred_at, e.occurred_at + t.max_ms, ?2 \
         FROM r CROSS JOIN events e CROSS JOIN journey_triggers t CROSS JOIN contacts c \
         WHERE t.workspace = e.workspace AND t.event = e.name AND t.role = 'entry' AND c.id = e.contact_id \
           AND e.rowid > r.lo AND e.rowid <= r.hi AND +e.workspace = ?1 AND e.rowid > t.from_rowid \
           AND c.lead_status <> 'anonymous' AND c.erased_at IS NULL AND c.merged_into IS NULL \
           AND {FILTER_MATCHES} \
           AND (t.re_entry <> 'after_exit' OR NOT EXISTS (SELECT 1 FROM enrollments x \
             WHERE x.workspace = e.workspace AND x.journey_id = t.journey_id AND x.contact_id = c.id \
               AND x.state IN ('active', 'waiting')))"
    )
}

fn cursor_sql() -> String {
    format!(
        "{RANGE} INSERT INTO journey_cursor (workspace, last_rowid) SELECT ?1, hi FROM r WHERE true \
         ON CONFLICT (workspace) DO UPDATE SET last_rowid = max(last_rowid, excluded.last_rowid)"
    )
}

/// The statements of one event pass over the events past the cursor: wake waits, end
/// enrollments whose goal or exit came, enrol, move the cursor. The events queue consumer
/// appends them to its ingest batch, so behaviour triggers enrol in the same transaction that
/// records the event; the cron runs them for events written elsewhere (internal events).
pub fn event_pass(workspace: &str, now: Millis) -> Vec<Statement> {
    let p = || -> Vec<Value> { vec![workspace.into(), now.into(), EVENT_WINDOW.into()] };
    vec![
        Statement::new(wake_sql(), p()),
        Statement::new(leave_sql("goal", "goal"), p()),
        Statement::new(leave_sql("exit", "exited"), p()),
        Statement::new(enrol_sql(), p()),
        Statement::new(cursor_sql(), p()),
    ]
}

/// How many events are past the cursor.
pub async fn events_behind(db: &impl Db, workspace: &str) -> Result<i64, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT (SELECT COALESCE(max(rowid), 0) FROM events) - \
             COALESCE((SELECT last_rowid FROM journey_cursor WHERE workspace = ?1), 0) AS behind",
            vec![workspace.into()],
        ))
        .await?;
    Ok(rows.first().and_then(|r| r.int("behind")).unwrap_or(0))
}

/// Definitions by (id, version), read once per tick or batch.
#[derive(Default)]
pub struct Versions(BTreeMap<(String, i64), Option<Journey>>);

impl Versions {
    /// Reads the versions not yet known; returns how many queries that took (0 or 1).
    async fn load(
        &mut self,
        db: &impl Db,
        workspace: &str,
        wanted: &BTreeSet<(String, i64)>,
    ) -> Result<usize, Error> {
        let missing: Vec<String> = wanted
            .iter()
            .filter(|k| !self.0.contains_key(*k))
            .map(|(id, v)| format!("{id}:{v}"))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let rows = db
            .query(&Statement::new(
                "SELECT id, version, definition FROM journey_versions WHERE workspace = ?1 \
                 AND id || ':' || version IN (SELECT value FROM json_each(?2))",
                vec![workspace.into(), Json::from(missing).to_string().into()],
            ))
            .await?;
        for r in &rows {
            if let (Some(id), Some(v)) = (r.text("id"), r.int("version")) {
                self.0.insert((id, v), stored(r));
            }
        }
        for k in wanted {
            self.0.entry(k.clone()).or_insert(None);
        }
        Ok(1)
    }

    fn get(&self, id: &str, version: i64) -> Option<&Journey> {
        self.0
            .get(&(id.to_string(), version))
            .and_then(Option::as_ref)
    }
}

const CLAIM: &str = "UPDATE enrollments SET lease_until = ?2 + ?4 WHERE id IN \
    (SELECT id FROM enrollments WHERE state IN ('active', 'waiting') AND next_run_at <= ?2 \
       AND (lease_until IS NULL OR lease_until <= ?2) AND +workspace = ?1 \
     ORDER BY next_run_at LIMIT ?3) \
    RETURNING id, journey_id, version, contact_id, state, node, step, context, expires_at";

const FACTS: &str = "SELECT c.id, c.score, c.lifecycle_stage, c.lead_status, c.attributes, \
    c.merged_into, c.erased_at, json_extract(c.attributes, '$.timezone') AS tz, \
    (SELECT json_group_object(tag, value) FROM tags t WHERE t.workspace = c.workspace AND t.contact_id = c.id) AS tags, \
    (SELECT json_group_object(name, last) FROM (SELECT e.name AS name, max(e.occurred_at) AS last FROM events e \
       WHERE e.workspace = c.workspace AND e.contact_id = c.id AND e.occurred_at <= ?4 \
         AND e.name IN (SELECT value FROM json_each(?3)) GROUP BY e.name)) AS events \
    FROM contacts c WHERE c.id IN (SELECT value FROM json_each(?2)) AND +c.workspace = ?1";

/// What an advance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Advanced {
    pub enrollments: usize,
    pub steps: usize,
    pub messages: usize,
    /// D1 statements the pass ran (reads and writes): the batching target is at most two per
    /// step, amortised.
    pub statements: usize,
}

fn object(r: &Row, col: &str) -> Map<String, Json> {
    r.text(col)
        .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        .and_then(|v| match v {
            Json::Object(o) => Some(o),
            _ => None,
        })
        .unwrap_or_default()
}

fn event_names(j: &Journey, out: &mut BTreeSet<String>) {
    fn walk(c: &Cond, out: &mut BTreeSet<String>) {
        match c {
            Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| walk(c, out)),
            Cond::Not(c) => walk(c, out),
            Cond::Event { name, .. } => {
                out.insert(name.clone());
            }
            _ => {}
        }
    }
    for n in j.nodes.values() {
        match n {
            Node::Condition { cond, .. } => walk(cond, out),
            Node::AssignOwner { rules, .. } => rules.iter().for_each(|r| walk(&r.when, out)),
            _ => {}
        }
    }
}

fn facts_of(r: &Row) -> Facts {
    let attributes = object(r, "attributes");
    Facts {
        score: r.int("score").unwrap_or(0),
        stage: r.text("lifecycle_stage"),
        lead_status: r.text("lead_status").unwrap_or_default(),
        utc_offset_min: crate::delivery::decision::utc_offset_min(r.text("tz").as_deref()),
        tags: object(r, "tags"),
        last_events: object(r, "events")
            .into_iter()
            .filter_map(|(k, v)| v.as_i64().map(|t| (k, Millis(t))))
            .collect(),
        attributes,
    }
}

/// The writes of one page, gathered as JSON arrays so each kind is one statement.
#[derive(Default)]
struct Writes {
    steps: Vec<Json>,
    moves: Vec<Json>,
    sends: Vec<Json>,
    tasks: Vec<Json>,
    contact_updates: Vec<Statement>,
}

impl Writes {
    fn statements(self, workspace: &str, now: Millis) -> Vec<Statement> {
        let arr = |v: &Vec<Json>| Json::from(v.clone()).to_string();
        let mut out = Vec::new();
        if !self.steps.is_empty() {
            out.push(Statement::new(
                "INSERT OR IGNORE INTO journey_steps (workspace, enrollment_id, step, journey_id, version, node, outcome, at) \
                 SELECT ?1, s.value ->> '$.e', s.value ->> '$.s', s.value ->> '$.j', s.value ->> '$.v', \
                   s.value ->> '$.n', s.value ->> '$.o', ?2 FROM json_each(?3) s",
                vec![workspace.into(), now.into(), arr(&self.steps).into()],
            ));
        }
        if !self.sends.is_empty() {
            // Queued with `next_attempt_at = now`: the cron's re-queue (or the consumer right
            // after this batch) hands them to deliver, and would again if that send were lost.
            out.push(Statement::new(
                "INSERT OR IGNORE INTO messages (workspace, id, idempotency_key, contact_id, channel, kind, \
                   template_id, template_version, journey_id, journey_node, enrollment_id, variables, state, \
                   next_attempt_at, created_at, updated_at) \
                 SELECT ?1, 'm_' || lower(hex(randomblob(12))), 'journey:' || (s.value ->> '$.e') || ':' || (s.value ->> '$.s'), \
                   s.value ->> '$.c', s.value ->> '$.ch', s.value ->> '$.k', s.value ->> '$.t', \
                   (SELECT version FROM templates tp WHERE tp.workspace = ?1 AND tp.id = s.value ->> '$.t'), \
                   s.value ->> '$.j', s.value ->> '$.n', s.value ->> '$.e', s.value ->> '$.vars', 'queued', ?2, ?2, ?2 \
                 FROM json_each(?3) s",
                vec![workspace.into(), now.into(), arr(&self.sends).into()],
            ));
        }
        if !self.tasks.is_empty() {
            out.push(Statement::new(
                "INSERT OR IGNORE INTO tasks (workspace, id, contact_id, kind, title, team, journey_id, \
                   enrollment_id, due_at, created_at) \
                 SELECT ?1, 'task_' || (s.value ->> '$.e') || '_' || (s.value ->> '$.s'), s.value ->> '$.c', \
                   s.value ->> '$.k', s.value ->> '$.title', s.value ->> '$.team', s.value ->> '$.j', \
                   s.value ->> '$.e', s.value ->> '$.due', ?2 FROM json_each(?3) s",
                vec![workspace.into(), now.into(), arr(&self.tasks).into()],
            ));
        }
        out.extend(self.contact_updates);
        if !self.moves.is_empty() {
            // The compare-and-set: an enrollment moves on only from the step it was claimed at.
            out.push(Statement::new(
                "UPDATE enrollments SET state = m.value ->> '$.state', node = m.value ->> '$.node', \
                   step = m.value ->> '$.step', next_run_at = m.value ->> '$.next', \
                   wait_event = m.value ->> '$.wait', error = m.value ->> '$.error', \
                   context = CASE WHEN m.value ->> '$.waiting' THEN json_remove(context, '$.woke', '$.event') ELSE context END, \
                   lease_until = NULL, updated_at = ?1 \
                 FROM json_each(?2) m \
                 WHERE enrollments.id = m.value ->> '$.id' AND enrollments.step = m.value ->> '$.from'",
                vec![now.into(), arr(&self.moves).into()],
            ));
        }
        out
    }
}

/// The statements a contact-changing action needs; keyed by (enrollment, step) where they
/// announce an event.
fn contact_statements(
    workspace: &str,
    contact: &str,
    key: &str,
    action: &Action,
    now: Millis,
) -> Vec<Statement> {
    let base = |sql: &'static str, extra: Vec<Value>| {
        let mut p: Vec<Value> = vec![workspace.into(), contact.into(), now.into(), key.into()];
        p.extend(extra);
        Statement::new(sql, p)
    };
    match action {
        Action::Tag { tag, value: Some(v) } => vec![
            base(
                "INSERT INTO tags (workspace, contact_id, tag, kind, value, updated_at) \
                 SELECT ?1, ?2, ?5, 'journey', ?6, ?3 WHERE ?4 = ?4 ON CONFLICT (workspace, contact_id, tag) \
                 DO UPDATE SET kind = 'journey', value = excluded.value, updated_at = excluded.updated_at",
                vec![tag.as_str().into(), v.as_str().into()],
            ),
            base(
                "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
                 VALUES (?1, ?4, ?2, 'tag.added', json_object('tag', ?5, 'kind', 'journey', 'to', ?6), ?3, ?3)",
                vec![tag.as_str().into(), v.as_str().into()],
            ),
        ],
        Action::Tag { tag, value: None } => vec![base(
            "DELETE FROM tags WHERE workspace = ?1 AND contact_id = ?2 AND tag = ?5 AND ?4 = ?4 AND ?3 = ?3",
            vec![tag.as_str().into()],
        )],
        Action::SetField { field, value } => vec![base(
            "UPDATE contacts SET attributes = json_set(attributes, '$.' || ?5, json(?6)), updated_at = ?3 \
             WHERE workspace = ?1 AND id = ?2 AND ?4 = ?4",
            vec![field.as_str().into(), value.to_string().into()],
        )],
        Action::AssignOwner(owner) => vec![base(
            "UPDATE contacts SET owner = ?5, updated_at = ?3 WHERE workspace = ?1 AND id = ?2 AND ?4 = ?4",
            vec![owner.as_str().into()],
        )],
        // The stage's event is announced like the cron's own, so the next journey (wake-up
        // after nurturing) enrols from it.
        Action::SetStage(stage) => vec![
            base(
                "INSERT OR IGNORE INTO lifecycle_transitions (workspace, contact_id, to_stage, from_stage, at) \
                 SELECT ?1, ?2, ?5, lifecycle_stage, ?3 FROM contacts WHERE workspace = ?1 AND id = ?2 \
                   AND lifecycle_stage IS NOT ?5 AND ?4 = ?4",
                vec![stage.as_str().into()],
            ),
            base(
                "INSERT OR IGNORE INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
                 SELECT ?1, ?4, ?2, 'lifecycle.' || ?5, json_object('from', lifecycle_stage, 'cause', 'journey'), ?3, ?3 \
                 FROM contacts WHERE workspace = ?1 AND id = ?2 AND lifecycle_stage IS NOT ?5",
                vec![stage.as_str().into()],
            ),
            base(
                "UPDATE contacts SET lifecycle_stage = ?5, updated_at = ?3 WHERE workspace = ?1 AND id = ?2 AND ?4 = ?4",
                vec![stage.as_str().into()],
            ),
        ],
        Action::Send { .. } | Action::Task { .. } => vec![],
    }
}

/// One page of the advance pass: claims up to `limit` due enrollments, runs each in the core,
/// writes everything in one batch.
pub async fn advance_pass(
    db: &impl Db,
    workspace: &str,
    now: Millis,
    limit: u32,
    versions: &mut Versions,
) -> Result<Advanced, Error> {
    let claimed = db
        .query(&Statement::new(
            CLAIM,
            vec![
                workspace.into(),
                now.into(),
                i64::from(limit).into(),
                LEASE_MS.into(),
            ],
        ))
        .await?;
    if claimed.is_empty() {
        return Ok(Advanced::default());
    }
    let wanted: BTreeSet<(String, i64)> = claimed
        .iter()
        .filter_map(|r| Some((r.text("journey_id")?, r.int("version")?)))
        .collect();
    let version_reads = versions.load(db, workspace, &wanted).await?;
    let mut names = BTreeSet::new();
    for (id, v) in &wanted {
        if let Some(j) = versions.get(id, *v) {
            event_names(j, &mut names);
        }
    }
    let contacts: BTreeSet<String> = claimed
        .iter()
        .filter_map(|r| r.text("contact_id"))
        .collect();
    let fact_rows = db
        .query(&Statement::new(
            FACTS,
            vec![
                workspace.into(),
                Json::from(contacts.into_iter().collect::<Vec<_>>())
                    .to_string()
                    .into(),
                Json::from(names.into_iter().collect::<Vec<_>>())
                    .to_string()
                    .into(),
                now.into(),
            ],
        ))
        .await?;
    let facts: BTreeMap<String, &Row> = fact_rows
        .iter()
        .filter_map(|r| Some((r.text("id")?, r)))
        .collect();
    let mut w = Writes::default();
    let mut done = Advanced {
        enrollments: claimed.len(),
        // The claim, the definitions it needed, the facts.
        statements: 2 + version_reads,
        ..Advanced::default()
    };
    for e in &claimed {
        let (Some(id), Some(jid), Some(version), Some(contact), Some(node), Some(step)) = (
            e.text("id"),
            e.text("journey_id"),
            e.int("version"),
            e.text("contact_id"),
            e.text("node"),
            e.int("step"),
        ) else {
            continue;
        };
        let context = object(e, "context");
        let row = facts.get(&contact).copied();
        let gone =
            row.is_none_or(|r| r.int("erased_at").is_some() || r.text("merged_into").is_some());
        let result = match versions.get(&jid, version) {
            _ if gone => None,
            None => None,
            Some(j) => Some(advance(
                j,
                &Position {
                    node: &node,
                    step,
                    waiting: e.text("state").as_deref() == Some("waiting"),
                    context: &context,
                    expires_at: e.int("expires_at").map(Millis),
                },
                &row.map(facts_of).unwrap_or_default(),
                now,
            )),
        };
        let Some(a) = result else {
            let why = if gone {
                "the contact was erased or merged"
            } else {
                "the journey version is missing"
            };
            w.moves.push(
                json!({"id": id, "from": step, "state": if gone { "exited" } else { "failed" },
                "node": node, "step": step, "next": null, "wait": null, "error": why}),
            );
            continue;
        };
        done.steps += a.steps.len();
        for s in &a.steps {
            w.steps.push(
                json!({"e": id, "s": s.step, "j": jid, "v": version, "n": s.node, "o": s.outcome}),
            );
        }
        for fx in &a.effects {
            let key = format!("journey:{id}:{}", fx.step);
            match &fx.action {
                Action::Send {
                    route,
                    template,
                    kind,
                    variables,
                } => {
                    done.messages += 1;
                    w.sends.push(
                        json!({"e": id, "s": fx.step, "c": contact, "ch": route.as_str(),
                        "k": kind.as_str(), "t": template, "j": jid, "n": fx.node,
                        "vars": Json::Object(variables.clone()).to_string()}),
                    );
                }
                Action::Task {
                    kind,
                    title,
                    team,
                    due_at,
                } => w
                    .tasks
                    .push(json!({"e": id, "s": fx.step, "c": contact, "k": kind,
                    "title": title, "team": team, "j": jid, "due": due_at.0})),
                other => w
                    .contact_updates
                    .extend(contact_statements(workspace, &contact, &key, other, now)),
            }
        }
        let mv = match &a.next {
            Next::Wait { node, until, event } => json!({"id": id, "from": step, "state": "waiting",
                "node": node, "step": a.step, "next": until.0, "wait": event, "error": null, "waiting": true}),
            Next::Done(end) => json!({"id": id, "from": step, "state": end.state(), "node": node,
                "step": a.step, "next": null, "wait": null,
                "error": match end { crate::journey::run::End::Failed(m) => Some(m.clone()), _ => None }}),
        };
        w.moves.push(mv);
    }
    let writes = w.statements(workspace, now);
    done.statements += writes.len();
    db.batch(&writes).await?;
    Ok(done)
}

/// What one cron tick's journey work did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub event_passes: usize,
    pub pages: usize,
    pub advanced: Advanced,
}

/// The journey work due at `now`, in bounded steps: event passes until the cursor is caught up
/// (internal events written by the steps themselves — a stage set on expiry — are picked up in
/// the same tick), pages of due enrollments, until nothing is due, `max_pages` is spent or
/// `stop()` says the invocation is near its limit. Whatever is left, the next tick takes.
pub async fn run_due(
    db: &impl Db,
    workspace: &str,
    now: Millis,
    page: u32,
    max_pages: usize,
    versions: &mut Versions,
    stop: impl Fn() -> bool,
) -> Result<Tick, Error> {
    let mut t = Tick::default();
    loop {
        while events_behind(db, workspace).await? > 0 && t.event_passes < max_pages {
            db.batch(&event_pass(workspace, now)).await?;
            t.event_passes += 1;
        }
        let a = advance_pass(db, workspace, now, page, versions).await?;
        t.pages += 1;
        t.advanced.enrollments += a.enrollments;
        t.advanced.steps += a.steps;
        t.advanced.messages += a.messages;
        t.advanced.statements += a.statements;
        let idle = a.enrollments == 0 && events_behind(db, workspace).await? == 0;
        if idle || t.pages >= max_pages || stop() {
            return Ok(t);
        }
    }
}

/// Enrols one page of a scheduled journey's audience for its latest occurrence. Returns how
/// many contacts it looked at (0 when there is nothing to do).
pub async fn schedule_pass(
    db: &impl Db,
    workspace: &str,
    j: &Journey,
    now: Millis,
    limit: u32,
) -> Result<usize, Error> {
    let Entry::Schedule(s) = &j.entry else {
        return Ok(0);
    };
    let offset = crate::delivery::decision::utc_offset_min(None);
    let Some(occurrence) = clock::last_occurrence(now, offset, s.day_of_month, s.weekday, s.time)
    else {
        return Ok(0);
    };
    if now.0 - occurrence.0 > SCHEDULE_GRACE_MS {
        return Ok(0);
    }
    let run = db
        .query(&Statement::new(
            "INSERT INTO journey_runs (workspace, journey_id, occurrence) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO UPDATE SET occurrence = occurrence RETURNING cursor, done",
            vec![workspace.into(), j.id.as_str().into(), occurrence.into()],
        ))
        .await?;
    let Some(run) = run.first() else { return Ok(0) };
    if run.int("done") == Some(1) {
        return Ok(0);
    }
    let cursor = run.text("cursor").unwrap_or_default();
    let a = &s.audience;
    let (tag, tag_value) = match &a.tag {
        Some((t, v)) => (Some(t.clone()), v.clone()),
        None => (None, None),
    };
    let page = db
        .query(&Statement::new(
            "SELECT id FROM contacts c WHERE +workspace = ?1 AND id > ?2 AND merged_into IS NULL \
               AND erased_at IS NULL AND lead_status <> 'anonymous' \
               AND (?4 IS NULL OR lifecycle_stage = ?4) AND (?5 IS NULL OR lead_status = ?5) \
               AND (?6 IS NULL OR score >= ?6) AND (?7 IS NULL OR score <= ?7) \
               AND (?8 IS NULL OR EXISTS (SELECT 1 FROM tags t WHERE t.workspace = c.workspace \
                 AND t.contact_id = c.id AND t.tag = ?8 AND (?9 IS NULL OR t.value = ?9))) \
             ORDER BY id LIMIT ?3",
            vec![
                workspace.into(),
                cursor.into(),
                i64::from(limit).into(),
                a.stage.clone().into(),
                a.lead_status.clone().into(),
                a.min_score.into(),
                a.max_score.into(),
                tag.into(),
                tag_value.into(),
            ],
        ))
        .await?;
    let ids: Vec<String> = page.iter().filter_map(|r| r.text("id")).collect();
    let last = ids.last().cloned();
    let finished = ids.len() < limit as usize;
    let key = format!("at:{}", occurrence.0);
    db.batch(&[
        Statement::new(
            "INSERT OR IGNORE INTO enrollments (workspace, id, journey_id, version, contact_id, entry_key, \
               state, node, step, next_run_at, context, started_at, expires_at, updated_at) \
             SELECT ?1, 'en_' || lower(hex(randomblob(12))), ?2, ?3, c.value, ?4, 'active', ?5, 0, ?6, \
               json_object('occurrence', ?6), ?6, ?6 + ?7, ?8 FROM json_each(?9) c",
            vec![
                workspace.into(),
                j.id.as_str().into(),
                j.version.into(),
                key.into(),
                j.start.as_str().into(),
                occurrence.into(),
                j.max_duration_ms.into(),
                now.into(),
                Json::from(ids.clone()).to_string().into(),
            ],
        ),
        Statement::new(
            "UPDATE journey_runs SET cursor = COALESCE(?4, cursor), done = ?5, enrolled = enrolled + ?6 \
             WHERE workspace = ?1 AND journey_id = ?2 AND occurrence = ?3",
            vec![
                workspace.into(),
                j.id.as_str().into(),
                occurrence.into(),
                last.into(),
                i64::from(finished).into(),
                (ids.len() as i64).into(),
            ],
        ),
    ])
    .await?;
    Ok(ids.len())
}

/// An enrollment as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrollmentView {
    pub id: String,
    pub journey_id: String,
    pub version: i64,
    pub state: String,
    pub node: String,
    pub step: i64,
    pub next_run_at: Option<String>,
    pub waiting_for: Option<String>,
    pub started_at: String,
    pub expires_at: Option<String>,
    pub error: Option<String>,
}

pub async fn of_contact(
    db: &impl Db,
    workspace: &str,
    contact: &str,
) -> Result<Vec<EnrollmentView>, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT id, journey_id, version, state, node, step, next_run_at, wait_event, started_at, \
             expires_at, error FROM enrollments WHERE workspace = ?1 AND contact_id = ?2 \
             ORDER BY started_at, id",
            vec![workspace.into(), contact.into()],
        ))
        .await?;
    let at = |r: &Row, c: &str| r.int(c).map(|t| Millis(t).rfc3339());
    Ok(rows
        .iter()
        .map(|r| EnrollmentView {
            id: r.text("id").unwrap_or_default(),
            journey_id: r.text("journey_id").unwrap_or_default(),
            version: r.int("version").unwrap_or(0),
            state: r.text("state").unwrap_or_default(),
            node: r.text("node").unwrap_or_default(),
            step: r.int("step").unwrap_or(0),
            next_run_at: at(r, "next_run_at"),
            waiting_for: r.text("wait_event"),
            started_at: at(r, "started_at").unwrap_or_default(),
            expires_at: at(r, "expires_at"),
            error: r.text("error"),
        })
        .collect())
}

/// Per-node and per-state counts of a journey, and its conversion to goal.
pub async fn stats(db: &impl Db, workspace: &str, journey: &str) -> Result<Json, Error> {
    let nodes = db
        .query(&Statement::new(
            "SELECT node, outcome, count(*) AS n FROM journey_steps WHERE workspace = ?1 AND journey_id = ?2 \
             GROUP BY node, outcome ORDER BY node, outcome",
            vec![workspace.into(), journey.into()],
        ))
        .await?;
    let states = db
        .query(&Statement::new(
            "SELECT state, count(*) AS n FROM enrollments WHERE workspace = ?1 AND journey_id = ?2 GROUP BY state",
            vec![workspace.into(), journey.into()],
        ))
        .await?;
    let mut per_node: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    for r in &nodes {
        let (Some(node), Some(outcome)) = (r.text("node"), r.text("outcome")) else {
            continue;
        };
        let entry = per_node.entry(node).or_default();
        let n = r.int("n").unwrap_or(0);
        // A node is entered once per run of it; a wait is also left once (elapsed, event,
        // timeout), which is not a new entry.
        let leaving = matches!(outcome.as_str(), "elapsed" | "event" | "timeout");
        let key = if leaving { "left" } else { "entered" };
        let total = entry.get(key).and_then(Json::as_i64).unwrap_or(0) + n;
        entry.insert(key.into(), total.into());
        entry.insert(outcome, n.into());
    }
    let mut by_state = Map::new();
    let mut total = 0;
    for r in &states {
        let n = r.int("n").unwrap_or(0);
        total += n;
        by_state.insert(r.text("state").unwrap_or_default(), n.into());
    }
    let goal = by_state.get("goal").and_then(Json::as_i64).unwrap_or(0);
    let conversion = if total > 0 {
        goal as f64 / total as f64
    } else {
        0.0
    };
    Ok(json!({
        "journey_id": journey,
        "enrollments": total,
        "by_state": by_state,
        "conversion_to_goal": conversion,
        "nodes": per_node,
    }))
}

/// A task for a person, as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub id: String,
    pub contact_id: String,
    pub kind: String,
    pub title: String,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub journey_id: Option<String>,
    pub state: String,
    pub due_at: String,
    pub created_at: String,
}

pub async fn tasks(
    db: &impl Db,
    workspace: &str,
    contact: Option<&str>,
    state: Option<&str>,
) -> Result<Vec<TaskView>, Error> {
    let rows = db
        .query(&Statement::new(
            "SELECT t.id, t.contact_id, t.kind, t.title, t.team, COALESCE(t.assignee, c.owner) AS assignee, \
               t.journey_id, t.state, t.due_at, t.created_at \
             FROM tasks t LEFT JOIN contacts c ON c.id = t.contact_id \
             WHERE t.workspace = ?1 AND (?2 IS NULL OR t.contact_id = ?2) AND (?3 IS NULL OR t.state = ?3) \
             ORDER BY t.due_at, t.id LIMIT 500",
            vec![
                workspace.into(),
                contact.map(str::to_string).into(),
                state.map(str::to_string).into(),
            ],
        ))
        .await?;
    let at = |r: &Row, c: &str| Millis(r.int(c).unwrap_or(0)).rfc3339();
    Ok(rows
        .iter()
        .map(|r| TaskView {
            id: r.text("id").unwrap_or_default(),
            contact_id: r.text("contact_id").unwrap_or_default(),
            kind: r.text("kind").unwrap_or_default(),
            title: r.text("title").unwrap_or_default(),
            team: r.text("team"),
            assignee: r.text("assignee"),
            journey_id: r.text("journey_id"),
            state: r.text("state").unwrap_or_default(),
            due_at: at(r, "due_at"),
            created_at: at(r, "created_at"),
        })
        .collect())
}

/// Marks a task done (or reopened); returns whether it exists.
pub async fn set_task_state(
    db: &impl Db,
    workspace: &str,
    id: &str,
    state: &str,
) -> Result<bool, Error> {
    let n = db
        .execute(&Statement::new(
            "UPDATE tasks SET state = ?3 WHERE workspace = ?1 AND id = ?2",
            vec![workspace.into(), id.into(), state.into()],
        ))
        .await?;
    Ok(n > 0)
}

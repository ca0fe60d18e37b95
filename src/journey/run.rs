//! Moving one enrollment along: from where it stands, run nodes until it must wait or its
//! journey ends, and say what to do (the effects) and where it stands next. Pure: the facts
//! come in, the time comes in, the store turns the answer into SQL.

use super::clock::next_local;
use super::definition::{Cond, InstantSource, Journey, Node, Test, Until, Wait};
use crate::delivery::decision::Kind;
use crate::store::messages::Route;
use crate::time::Millis;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// Most nodes one run may take: a journey that passes validation waits long before this; the
/// bound only protects against instants already in the past inside a loop.
pub const MAX_STEPS_PER_RUN: usize = 64;

/// What a journey may know of a contact when it decides.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub score: i64,
    pub stage: Option<String>,
    pub lead_status: String,
    pub attributes: Map<String, Json>,
    pub tags: Map<String, Json>,
    /// The last time the contact did each event a condition of the journey asks about.
    pub last_events: BTreeMap<String, Millis>,
    pub utc_offset_min: i32,
}

/// Where an enrollment stands.
#[derive(Debug, Clone)]
pub struct Position<'a> {
    pub node: &'a str,
    /// Nodes run so far.
    pub step: i64,
    /// Whether `node` is a wait in progress (rather than the next node to run).
    pub waiting: bool,
    /// Entry event properties and, under `event`, those of the event that ended a wait;
    /// `woke` names that event.
    pub context: &'a Map<String, Json>,
    pub expires_at: Option<Millis>,
}

/// Something the store must do for a step. `step` numbers it within the enrollment, so
/// `(enrollment, step)` is its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub step: i64,
    pub node: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        route: Route,
        template: Option<String>,
        kind: Kind,
        variables: Map<String, Json>,
    },
    Tag {
        tag: String,
        value: Option<String>,
    },
    SetField {
        field: String,
        value: Json,
    },
    SetStage(String),
    AssignOwner(String),
    Task {
        kind: String,
        title: String,
        team: Option<String>,
        due_at: Millis,
    },
}

/// A node run, for the step log and analytics: `outcome` is what happened there (`sent`,
/// `waiting`, `yes`, `no`, `event`, `timeout`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: i64,
    pub node: String,
    pub outcome: &'static str,
}

/// How an enrollment ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Completed,
    Goal,
    Exited,
    Expired,
    Failed(String),
}

impl End {
    pub fn state(&self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Goal => "goal",
            End::Exited => "exited",
            End::Expired => "expired",
            End::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// In the wait at `node` until `until` or, with `event`, until the contact does it.
    Wait {
        node: String,
        until: Millis,
        event: Option<String>,
    },
    Done(End),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub steps: Vec<StepRecord>,
    pub effects: Vec<Effect>,
    pub next: Next,
    /// The step counter after this run.
    pub step: i64,
}

struct Runner<'a> {
    context: &'a Map<String, Json>,
    step: i64,
    steps: Vec<StepRecord>,
    effects: Vec<Effect>,
}

impl Runner<'_> {
    fn record(&mut self, node: &str, outcome: &'static str) -> i64 {
        self.step += 1;
        self.steps.push(StepRecord {
            step: self.step,
            node: node.into(),
            outcome,
        });
        self.step
    }

    fn effect(&mut self, node: &str, outcome: &'static str, action: Action) {
        let step = self.record(node, outcome);
        self.effects.push(Effect {
            step,
            node: node.into(),
            action,
        });
    }

    fn finish(self, next: Next) -> Advance {
        Advance {
            steps: self.steps,
            effects: self.effects,
            next,
            step: self.step,
        }
    }
}

/// Runs an enrollment from `at` at time `now`.
pub fn advance(journey: &Journey, at: &Position<'_>, facts: &Facts, now: Millis) -> Advance {
    let mut r = Runner {
        context: at.context,
        step: at.step,
        steps: Vec::new(),
        effects: Vec::new(),
    };
    if at.expires_at.is_some_and(|e| now >= e) {
        if let Some(stage) = &journey.on_expire.set_stage {
            r.effect("$expired", "expired", Action::SetStage(stage.clone()));
        }
        return r.finish(Next::Done(End::Expired));
    }
    let Some(node) = journey.nodes.get(at.node) else {
        return r.finish(Next::Done(End::Failed(format!(
            "node {} is not in version {} of the journey",
            at.node, journey.version
        ))));
    };
    let mut current: String = if at.waiting {
        match node {
            Node::Wait {
                wait: Wait::Event { on_timeout, .. },
                next,
            } => {
                if at.context.contains_key("woke") {
                    r.record(at.node, "event");
                    next.clone()
                } else {
                    r.record(at.node, "timeout");
                    on_timeout.clone()
                }
            }
            Node::Wait { next, .. } => {
                r.record(at.node, "elapsed");
                next.clone()
            }
            _ => at.node.to_string(),
        }
    } else {
        at.node.to_string()
    };
    for _ in 0..MAX_STEPS_PER_RUN {
        let Some(node) = journey.nodes.get(&current) else {
            return r.finish(Next::Done(End::Failed(format!("no node {current}"))));
        };
        let next = match node {
            Node::Send {
                route,
                template,
                kind,
                variables,
                next,
            } => {
                r.effect(
                    &current,
                    "queued",
                    Action::Send {
                        route: *route,
                        template: template.clone(),
                        kind: *kind,
                        variables: variables.clone(),
                    },
                );
                next.clone()
            }
            Node::Webhook { event, next } => {
                let mut variables = Map::new();
                variables.insert("event".into(), event.as_str().into());
                variables.insert("journey".into(), journey.id.as_str().into());
                variables.insert("node".into(), current.as_str().into());
                r.effect(
                    &current,
                    "queued",
                    Action::Send {
                        route: Route::Webhook,
                        template: None,
                        kind: Kind::Transactional,
                        variables,
                    },
                );
                next.clone()
            }
            Node::Wait { wait, next } => {
                let (until, event) = match wait {
                    Wait::For(ms) => (now.plus(*ms), None),
                    Wait::Until(u) => (until(u, r.context, facts, now), None),
                    Wait::Event {
                        event, timeout_ms, ..
                    } => (now.plus(*timeout_ms), Some(event.clone())),
                };
                if until <= now && event.is_none() {
                    // An instant already past (a live stream's reminder for a late booking):
                    // go straight on rather than wait for nothing.
                    r.record(&current, "passed");
                    Some(next.clone())
                } else {
                    r.record(&current, "waiting");
                    let until = at.expires_at.map_or(until, |e| until.min(e));
                    return r.finish(Next::Wait {
                        node: current,
                        until,
                        event,
                    });
                }
            }
            Node::Condition {
                cond,
                then,
                otherwise,
            } => {
                if holds(cond, facts, r.context, now) {
                    r.record(&current, "yes");
                    Some(then.clone())
                } else {
                    r.record(&current, "no");
                    Some(otherwise.clone())
                }
            }
            Node::Tag { tag, value, next } => {
                let outcome = if value.is_some() {
                    "tagged"
                } else {
                    "untagged"
                };
                r.effect(
                    &current,
                    outcome,
                    Action::Tag {
                        tag: tag.clone(),
                        value: value.clone(),
                    },
                );
                next.clone()
            }
            Node::SetField { field, value, next } => {
                r.effect(
                    &current,
                    "set",
                    Action::SetField {
                        field: field.clone(),
                        value: value.clone(),
                    },
                );
                next.clone()
            }
            Node::SetStage { stage, next } => {
                r.effect(&current, "set", Action::SetStage(stage.clone()));
                next.clone()
            }
            Node::AssignOwner {
                rules,
                default,
                next,
            } => {
                let owner = rules
                    .iter()
                    .find(|rule| holds(&rule.when, facts, r.context, now))
                    .map(|rule| rule.owner.clone())
                    .or_else(|| default.clone());
                match owner {
                    Some(o) => r.effect(&current, "assigned", Action::AssignOwner(o)),
                    None => {
                        r.record(&current, "unassigned");
                    }
                }
                next.clone()
            }
            Node::Task {
                kind,
                title,
                team,
                due_ms,
                next,
            } => {
                r.effect(
                    &current,
                    "created",
                    Action::Task {
                        kind: kind.clone(),
                        title: title.clone(),
                        team: team.clone(),
                        due_at: now.plus(*due_ms),
                    },
                );
                next.clone()
            }
            Node::Goal => {
                r.record(&current, "goal");
                return r.finish(Next::Done(End::Goal));
            }
            Node::Exit => {
                r.record(&current, "exit");
                return r.finish(Next::Done(End::Exited));
            }
        };
        match next {
            Some(n) => current = n,
            None => return r.finish(Next::Done(End::Completed)),
        }
    }
    r.finish(Next::Done(End::Failed(format!(
        "more than {MAX_STEPS_PER_RUN} nodes without a wait"
    ))))
}

fn until(u: &Until, context: &Map<String, Json>, facts: &Facts, now: Millis) -> Millis {
    match u {
        Until::Local { weekday, time } => next_local(now, facts.utc_offset_min, *weekday, *time),
        Until::Instant { at, offset_ms } => {
            let base = match at {
                InstantSource::Fixed(t) => Some(*t),
                InstantSource::Context(path) => lookup(context, path).and_then(instant_of),
            };
            // A context without the time: nothing to wait for.
            base.map_or(now, |t| t.plus(*offset_ms))
        }
    }
}

/// A time as events carry it: epoch milliseconds or RFC 3339.
pub fn instant_of(v: &Json) -> Option<Millis> {
    match v {
        Json::Number(n) => n.as_i64().map(Millis),
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Millis(t.timestamp_millis())),
        _ => None,
    }
}

fn lookup<'a>(obj: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.');
    let mut v = obj.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// Whether a condition holds for the contact now.
pub fn holds(c: &Cond, f: &Facts, context: &Map<String, Json>, now: Millis) -> bool {
    match c {
        Cond::All(cs) => cs.iter().all(|c| holds(c, f, context, now)),
        Cond::Any(cs) => cs.iter().any(|c| holds(c, f, context, now)),
        Cond::Not(c) => !holds(c, f, context, now),
        Cond::Attribute(name, t) => test(t, f.attributes.get(name)),
        Cond::Tag(name, t) => test(t, f.tags.get(name)),
        Cond::Score(t) => test(t, Some(&Json::from(f.score))),
        Cond::Stage(t) => test(t, f.stage.as_ref().map(|s| Json::from(s.as_str())).as_ref()),
        Cond::LeadStatus(t) => test(t, Some(&Json::from(f.lead_status.as_str()))),
        Cond::Event { name, within_ms } => f
            .last_events
            .get(name)
            .is_some_and(|at| *at <= now && at.0 > now.0 - within_ms),
        Cond::Context(path, t) => test(t, lookup(context, path)),
    }
}

fn number(v: &Json) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Strings compare as text, numbers as numbers; a number in a string ("500") counts as the
/// number, since forms send everything as text.
fn same(a: &Json, b: &Json) -> bool {
    a == b || matches!((number(a), number(b)), (Some(x), Some(y)) if x == y)
}

fn test(t: &Test, v: Option<&Json>) -> bool {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return false;
    };
    match t {
        Test::Exists => true,
        Test::Equals(want) => same(v, want),
        Test::In(list) => list.iter().any(|w| same(v, w)),
        Test::Range { gte, gt, lte, lt } => number(v).is_some_and(|x| {
            gte.is_none_or(|b| x >= b)
                && gt.is_none_or(|b| x > b)
                && lte.is_none_or(|b| x <= b)
                && lt.is_none_or(|b| x < b)
        }),
    }
}

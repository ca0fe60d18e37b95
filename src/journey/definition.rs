//! A journey as data: its entry, its nodes and the rules around them, parsed from JSON and
//! checked before it is saved, so a journey that could misbehave at run time is refused with an
//! error naming the offending part (`nodes.invite.next`, `entry.schedule.time`, …).

use super::clock::{parse_duration, parse_time_of_day, parse_weekday, TimeOfDay};
use crate::delivery::decision::Kind;
use crate::error::Error;
use crate::event::is_valid_event_name;
use crate::store::messages::Route;
use crate::time::Millis;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// Largest definition accepted (the api answers 413 above it).
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;
/// Most nodes in one journey.
pub const MAX_NODES: usize = 200;
/// The stages a journey may move a contact to.
pub const STAGES: [&str; 5] = ["new", "active", "dormant", "churn_risk", "loyal"];

/// Who may enrol again after a first enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReEntry {
    /// Once per contact, ever (the default: a welcome series is not sent twice).
    Never,
    /// Again once the previous enrollment has ended.
    AfterExit,
    /// Every matching event starts its own enrollment (bookings, orders).
    Always,
}

impl ReEntry {
    pub fn as_str(self) -> &'static str {
        match self {
            ReEntry::Never => "never",
            ReEntry::AfterExit => "after_exit",
            ReEntry::Always => "always",
        }
    }
}

/// An event with property values it must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMatch {
    pub event: String,
    pub filter: Map<String, Json>,
}

/// Who a scheduled journey enrols: contacts matching every given test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    pub stage: Option<String>,
    pub lead_status: Option<String>,
    pub min_score: Option<i64>,
    pub max_score: Option<i64>,
    /// A tag the contact carries, with the value it must have if given.
    pub tag: Option<(String, Option<String>)>,
}

/// When a scheduled journey runs: the day of the month or the weekday, at a local time.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub day_of_month: Option<u32>,
    pub weekday: Option<u32>,
    pub time: TimeOfDay,
    pub audience: Audience,
}

/// How contacts come into a journey. The sugar forms (`score_tier`, `stage`, `tag_added`) are
/// events the core already announces: `lead.known` / `lead.mql` / `lead.sql`,
/// `lifecycle.<stage>` and `tag.added`.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(EventMatch),
    /// An event carrying a time (`property`), enrolling the contact to start `offset_ms` from it:
    /// "3 days before the live stream", "registration + 7 days".
    Date {
        on: EventMatch,
        property: String,
        offset_ms: i64,
    },
    Schedule(Schedule),
}

/// A comparison of one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    Equals(Json),
    In(Vec<Json>),
    Range {
        gte: Option<f64>,
        gt: Option<f64>,
        lte: Option<f64>,
        lt: Option<f64>,
    },
}

/// What a condition node asks of a contact.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Attribute(String, Test),
    Tag(String, Test),
    Score(Test),
    Stage(Test),
    LeadStatus(Test),
    /// The contact did `event` within the last `within_ms`.
    Event {
        name: String,
        within_ms: i64,
    },
    /// A property of the entry event or of the event that ended a wait (`context.event.score`).
    Context(String, Test),
}

/// The end of a wait: a local weekday and time, or an instant (absolute or taken from the
/// enrollment's context) plus an offset.
#[derive(Debug, Clone, PartialEq)]
pub enum Until {
    Local {
        weekday: Option<u32>,
        time: TimeOfDay,
    },
    Instant {
        at: InstantSource,
        offset_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum InstantSource {
    Fixed(Millis),
    Context(String),
}

/// How long a wait lasts.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    For(i64),
    Until(Until),
    /// Until the contact does `event`, or `timeout_ms` passes (then `on_timeout`).
    Event {
        event: String,
        timeout_ms: i64,
        on_timeout: String,
    },
}

/// A rule choosing an owner: the first whose condition holds wins.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerRule {
    pub when: Cond,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Send {
        route: Route,
        template: Option<String>,
        kind: Kind,
        variables: Map<String, Json>,
        next: Option<String>,
    },
    Wait {
        wait: Wait,
        next: String,
    },
    Condition {
        cond: Cond,
        then: String,
        otherwise: String,
    },
    Tag {
        tag: String,
        /// `None` removes the tag.
        value: Option<String>,
        next: Option<String>,
    },
    SetField {
        field: String,
        value: Json,
        next: Option<String>,
    },
    SetStage {
        stage: String,
        next: Option<String>,
    },
    AssignOwner {
        rules: Vec<OwnerRule>,
        default: Option<String>,
        next: Option<String>,
    },
    /// Work for a person: a sales call, a call-back, a service contact.
    Task {
        kind: String,
        title: String,
        team: Option<String>,
        due_ms: i64,
        next: Option<String>,
    },
    /// A signed webhook to another system (the CRM), through the outbox.
    Webhook {
        event: String,
        next: Option<String>,
    },
    /// Reaching it is the journey's conversion: the enrollment ends as `goal`.
    Goal,
    Exit,
}

impl Node {
    /// The nodes this one can lead to.
    pub fn successors(&self) -> Vec<&str> {
        match self {
            Node::Send { next, .. }
            | Node::Tag { next, .. }
            | Node::SetField { next, .. }
            | Node::SetStage { next, .. }
            | Node::AssignOwner { next, .. }
            | Node::Task { next, .. }
            | Node::Webhook { next, .. } => next.as_deref().into_iter().collect(),
            Node::Wait { wait, next } => match wait {
                Wait::Event { on_timeout, .. } => vec![next, on_timeout],
                _ => vec![next],
            },
            Node::Condition {
                then, otherwise, ..
            } => vec![then, otherwise],
            Node::Goal | Node::Exit => vec![],
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Send { .. } => "send",
            Node::Wait { .. } => "wait",
            Node::Condition { .. } => "condition",
            Node::Tag { .. } => "tag",
            Node::SetField { .. } => "set_field",
            Node::SetStage { .. } => "set_stage",
            Node::AssignOwner { .. } => "assign_owner",
            Node::Task { .. } => "task",
            Node::Webhook { .. } => "webhook",
            Node::Goal => "goal",
            Node::Exit => "exit",
        }
    }
}

/// What happens when the maximum duration is reached: the contact may be moved to a stage
/// (whose `lifecycle.<stage>` event can enrol it in the next journey).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnExpire {
    pub set_stage: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub entry: Entry,
    pub re_entry: ReEntry,
    pub max_duration_ms: Option<i64>,
    pub on_expire: OnExpire,
    /// Leave (as `goal`) when this event comes, wherever the contact is.
    pub goal: Option<EventMatch>,
    /// Leave (as `exited`) when one of these comes. Default: `unsubscribed`.
    pub exit_on: Vec<EventMatch>,
    /// At most this many of this journey's marketing messages per channel per contact within
    /// the window (ms), on top of the global cap; enforced by the send decision.
    pub frequency_cap: Option<(u32, i64)>,
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

/// Answers "does this template exist, and for which channel" while a journey is checked.
pub trait Templates {
    fn channel_of(&self, template: &str) -> Option<String>;
    /// Whether the definition was checked when it was saved (a stored version being read back
    /// for a run): templates are not looked up again.
    fn trusted(&self) -> bool {
        false
    }
}

/// For definitions read back from storage, checked when they were saved.
pub struct Stored;

impl Templates for Stored {
    fn channel_of(&self, _: &str) -> Option<String> {
        None
    }

    fn trusted(&self) -> bool {
        true
    }
}

impl<F: Fn(&str) -> Option<String>> Templates for F {
    fn channel_of(&self, template: &str) -> Option<String> {
        self(template)
    }
}

/// Whether `id` can name a journey or a node: lowercase letters, digits, `-` and `_`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Parses and checks a journey definition.
pub fn parse(
    id: &str,
    version: i64,
    text: &str,
    templates: &impl Templates,
) -> Result<Journey, Error> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(Error::invalid(
            "body",
            format!("a journey is at most {MAX_DEFINITION_BYTES} bytes"),
        ));
    }
    if !is_valid_id(id) {
        return Err(Error::invalid(
            "id",
            "journey ids are 1–64 lowercase letters, digits, - or _",
        ));
    }
    let doc: Json =
        serde_json::from_str(text).map_err(|e| Error::invalid("body", format!("not JSON: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| Error::invalid("body", "a journey is a JSON object"))?;
    let known = [
        "name",
        "description",
        "entry",
        "re_entry",
        "max_duration",
        "on_expire",
        "goal",
        "exit_on",
        "frequency_cap",
        "start",
        "nodes",
    ];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::invalid(k.clone(), format!("unknown field {k}")));
    }
    let name = str_field(obj, "name", "name")?.to_string();
    if name.chars().count() > 200 {
        return Err(Error::invalid("name", "names are at most 200 characters"));
    }
    let entry = parse_entry(obj.get("entry").unwrap_or(&Json::Null))?;
    let re_entry = match obj.get("re_entry").and_then(Json::as_str) {
        None if obj.get("re_entry").is_none() => ReEntry::Never,
        Some("never") => ReEntry::Never,
        Some("after_exit") => ReEntry::AfterExit,
        Some("always") => ReEntry::Always,
        _ => {
            return Err(Error::invalid(
                "re_entry",
                "re_entry is never, after_exit or always",
            ))
        }
    };
    let max_duration_ms = match obj.get("max_duration") {
        None | Some(Json::Null) => None,
        Some(v) => Some(positive_duration(v, "max_duration")?),
    };
    let on_expire = match obj.get("on_expire") {
        None | Some(Json::Null) => OnExpire::default(),
        Some(Json::Object(o)) => OnExpire {
            set_stage: match o.get("set_stage") {
                None => None,
                Some(s) => Some(stage_name(s, "on_expire.set_stage")?),
            },
        },
        Some(_) => return Err(Error::invalid("on_expire", "on_expire is an object")),
    };
    let goal = match obj.get("goal") {
        None | Some(Json::Null) => None,
        Some(g) => Some(event_match(g, "goal")?),
    };
    let exit_on = match obj.get("exit_on") {
        None => vec![EventMatch {
            event: "unsubscribed".into(),
            filter: Map::new(),
        }],
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, e)| event_match(e, &format!("exit_on[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Error::invalid("exit_on", "exit_on is a list of events")),
    };
    let frequency_cap = match obj.get("frequency_cap") {
        None | Some(Json::Null) => None,
        Some(c) => Some(journey_cap(c)?),
    };
    let raw_nodes = obj
        .get("nodes")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::invalid("nodes", "nodes is an object of node id → node"))?;
    if raw_nodes.is_empty() || raw_nodes.len() > MAX_NODES {
        return Err(Error::invalid(
            "nodes",
            format!("a journey has 1–{MAX_NODES} nodes"),
        ));
    }
    let mut nodes = BTreeMap::new();
    for (nid, raw) in raw_nodes {
        let at = format!("nodes.{nid}");
        if !is_valid_id(nid) {
            return Err(Error::invalid(
                at,
                "node ids are 1–64 lowercase letters, digits, - or _",
            ));
        }
        nodes.insert(nid.clone(), parse_node(raw, &at, templates)?);
    }
    let start = str_field(obj, "start", "start")?.to_string();
    let journey = Journey {
        id: id.to_string(),
        version,
        name,
        entry,
        re_entry,
        max_duration_ms,
        on_expire,
        goal,
        exit_on,
        frequency_cap,
        start,
        nodes,
    };
    check_graph(&journey)?;
    Ok(journey)
}

/// Longest window a journey's own cap may have (deliver reads that far back for it).
pub const MAX_CAP_WINDOW_MS: i64 = 90 * Millis::DAY;

/// `{"max": 1, "per": "7d"}`, read back by deliver with [`journey_cap`] too.
pub fn journey_cap(v: &Json) -> Result<(u32, i64), Error> {
    let max = v["max"]
        .as_u64()
        .filter(|m| (1..=50).contains(m))
        .ok_or_else(|| Error::invalid("frequency_cap.max", "a whole number from 1 to 50"))?;
    let per = duration(&v["per"], "frequency_cap.per")?;
    if !(Millis::HOUR..=MAX_CAP_WINDOW_MS).contains(&per) {
        return Err(Error::invalid(
            "frequency_cap.per",
            "a window from 1h to 90d",
        ));
    }
    Ok((max as u32, per))
}

fn str_field<'a>(o: &'a Map<String, Json>, key: &str, at: &str) -> Result<&'a str, Error> {
    o.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid(at, format!("{key} is a non-empty string")))
}

fn opt_str(o: &Map<String, Json>, key: &str, at: &str) -> Result<Option<String>, Error> {
    match o.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(_) => Err(Error::invalid(
            format!("{at}.{key}"),
            format!("{key} is a non-empty string"),
        )),
    }
}

fn positive_duration(v: &Json, at: &str) -> Result<i64, Error> {
    let ms = duration(v, at)?;
    if ms < 0 {
        return Err(Error::invalid(at, "a duration here cannot be negative"));
    }
    Ok(ms)
}

fn duration(v: &Json, at: &str) -> Result<i64, Error> {
    v.as_str().and_then(parse_duration).ok_or_else(|| {
        Error::invalid(
            at,
            "durations look like 30m, 48h, 7d or 2w (-3d for before)",
        )
    })
}

fn event_name(v: &Json, at: &str) -> Result<String, Error> {
    v.as_str()
        .filter(|n| is_valid_event_name(n))
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(at, "an event name is 1–128 characters"))
}

fn stage_name(v: &Json, at: &str) -> Result<String, Error> {
    v.as_str()
        .filter(|s| STAGES.contains(s))
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(at, format!("stages are {}", STAGES.join(", "))))
}

/// `"login"` or `{"event": "login", "where": {"plan": "pro"}}`.
fn event_match(v: &Json, at: &str) -> Result<EventMatch, Error> {
    match v {
        Json::String(_) => Ok(EventMatch {
            event: event_name(v, at)?,
            filter: Map::new(),
        }),
        Json::Object(o) => Ok(EventMatch {
            event: event_name(
                o.get("event").unwrap_or(&Json::Null),
                &format!("{at}.event"),
            )?,
            filter: filter(o.get("where"), &format!("{at}.where"))?,
        }),
        _ => Err(Error::invalid(at, "an event name or {event, where}")),
    }
}

fn filter(v: Option<&Json>, at: &str) -> Result<Map<String, Json>, Error> {
    match v {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(o)) => {
            for (k, val) in o {
                if !(val.is_string() || val.is_number() || val.is_boolean()) {
                    return Err(Error::invalid(
                        format!("{at}.{k}"),
                        "filters compare strings, numbers or booleans",
                    ));
                }
                if k.is_empty() || k.contains(['"', '\\', '.', '[', '$']) {
                    return Err(Error::invalid(
                        format!("{at}.{k}"),
                        "a property name without quotes, dots, brackets or $",
                    ));
                }
            }
            Ok(o.clone())
        }
        Some(_) => Err(Error::invalid(at, "where is an object of property → value")),
    }
}

fn parse_entry(v: &Json) -> Result<Entry, Error> {
    let o = v.as_object().ok_or_else(|| {
        Error::invalid(
            "entry",
            "entry is an object: event, score_tier, stage, tag_added, date or schedule",
        )
    })?;
    let on = |event: &str| EventMatch {
        event: event.into(),
        filter: Map::new(),
    };
    if let Some(e) = o.get("event") {
        return Ok(Entry::Event(EventMatch {
            event: event_name(e, "entry.event")?,
            filter: filter(o.get("where"), "entry.where")?,
        }));
    }
    if let Some(t) = o.get("score_tier") {
        let event = match t.as_str() {
            Some("basic_awareness") => "lead.known",
            Some("interest_deepening") => "lead.mql",
            Some("conversion") => "lead.sql",
            _ => {
                return Err(Error::invalid(
                    "entry.score_tier",
                    "tiers are basic_awareness, interest_deepening and conversion",
                ))
            }
        };
        return Ok(Entry::Event(on(event)));
    }
    if let Some(s) = o.get("stage") {
        let stage = stage_name(s, "entry.stage")?;
        return Ok(Entry::Event(on(&format!("lifecycle.{stage}"))));
    }
    if let Some(t) = o.get("tag_added") {
        let tag = t
            .as_str()
            .filter(|t| !t.is_empty() && t.len() <= 64)
            .ok_or_else(|| Error::invalid("entry.tag_added", "the tag's name"))?;
        let mut f = Map::new();
        f.insert("tag".into(), tag.into());
        if let Some(v) = o.get("value") {
            let v = v
                .as_str()
                .ok_or_else(|| Error::invalid("entry.value", "a tag value is a string"))?;
            f.insert("to".into(), v.into());
        }
        return Ok(Entry::Event(EventMatch {
            event: "tag.added".into(),
            filter: f,
        }));
    }
    if let Some(d) = o.get("date") {
        let d = d
            .as_object()
            .ok_or_else(|| Error::invalid("entry.date", "{event, property, offset}"))?;
        let on = event_match(d.get("event").unwrap_or(&Json::Null), "entry.date.event")?;
        let property = str_field(d, "property", "entry.date.property")?.to_string();
        if property.contains(['"', '\\', '.', '[', '$']) {
            return Err(Error::invalid(
                "entry.date.property",
                "a property name without quotes, dots, brackets or $",
            ));
        }
        let offset_ms = match d.get("offset") {
            None => 0,
            Some(v) => duration(v, "entry.date.offset")?,
        };
        return Ok(Entry::Date {
            on,
            property,
            offset_ms,
        });
    }
    if let Some(s) = o.get("schedule") {
        return Ok(Entry::Schedule(parse_schedule(s, o.get("audience"))?));
    }
    Err(Error::invalid(
        "entry",
        "entry needs one of event, score_tier, stage, tag_added, date or schedule",
    ))
}

fn parse_schedule(s: &Json, audience: Option<&Json>) -> Result<Schedule, Error> {
    let at = "entry.schedule";
    let o = s
        .as_object()
        .ok_or_else(|| Error::invalid(at, "{day_of_month | weekday, time}"))?;
    let time = o
        .get("time")
        .and_then(Json::as_str)
        .and_then(parse_time_of_day)
        .ok_or_else(|| Error::invalid(format!("{at}.time"), "a local time, HH:MM"))?;
    let day_of_month = match o.get("day_of_month") {
        None => None,
        Some(d) => Some(d.as_u64().filter(|d| (1..=28).contains(d)).ok_or_else(|| {
            Error::invalid(
                format!("{at}.day_of_month"),
                "a day from 1 to 28 (every month has it)",
            )
        })? as u32),
    };
    let weekday = match o.get("weekday") {
        None => None,
        Some(w) => Some(
            w.as_str()
                .and_then(parse_weekday)
                .ok_or_else(|| Error::invalid(format!("{at}.weekday"), "mon … sun"))?,
        ),
    };
    if day_of_month.is_some() == weekday.is_some() {
        return Err(Error::invalid(
            at,
            "a schedule names either day_of_month or weekday",
        ));
    }
    Ok(Schedule {
        day_of_month,
        weekday,
        time,
        audience: parse_audience(audience)?,
    })
}

fn parse_audience(v: Option<&Json>) -> Result<Audience, Error> {
    let Some(v) = v else {
        return Ok(Audience::default());
    };
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid("entry.audience", "an object of tests"))?;
    let at = |k: &str| format!("entry.audience.{k}");
    let int = |k: &str| -> Result<Option<i64>, Error> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Error::invalid(at(k), "a whole number")),
        }
    };
    let tag = match o.get("tag") {
        None => None,
        Some(Json::String(t)) => Some((t.clone(), None)),
        Some(Json::Object(t)) => Some((
            str_field(t, "name", &at("tag.name"))?.to_string(),
            opt_str(t, "value", &at("tag"))?,
        )),
        Some(_) => return Err(Error::invalid(at("tag"), "a tag name or {name, value}")),
    };
    Ok(Audience {
        stage: match o.get("stage") {
            None => None,
            Some(s) => Some(stage_name(s, &at("stage"))?),
        },
        lead_status: opt_str(o, "lead_status", "entry.audience")?,
        min_score: int("min_score")?,
        max_score: int("max_score")?,
        tag,
    })
}

fn parse_node(v: &Json, at: &str, templates: &impl Templates) -> Result<Node, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid(at, "a node is an object with a type"))?;
    let next = || opt_str(o, "next", at);
    let required = |k: &str| -> Result<String, Error> {
        str_field(o, k, &format!("{at}.{k}")).map(str::to_string)
    };
    let node = match o.get("type").and_then(Json::as_str) {
        Some("send") => {
            let channel = required("channel")?;
            let route = Route::parse(&channel).ok_or_else(|| {
                Error::invalid(
                    format!("{at}.channel"),
                    "channels are email, sms, wecom and webhook",
                )
            })?;
            let template = opt_str(o, "template", at)?;
            match (&template, route) {
                (None, Route::Person(_)) => {
                    return Err(Error::invalid(
                        format!("{at}.template"),
                        "a send to a person names its template",
                    ))
                }
                (Some(_), _) if templates.trusted() => {}
                (Some(t), _) => match templates.channel_of(t) {
                    None => {
                        return Err(Error::invalid(
                            format!("{at}.template"),
                            format!("no template {t}"),
                        ))
                    }
                    Some(c) if c != route.as_str() => {
                        return Err(Error::invalid(
                            format!("{at}.template"),
                            format!("template {t} is for {c}, not {}", route.as_str()),
                        ))
                    }
                    Some(_) => {}
                },
                (None, _) => {}
            }
            let kind = match o.get("kind").and_then(Json::as_str) {
                None | Some("marketing") => Kind::Marketing,
                Some("transactional") => Kind::Transactional,
                Some(_) => {
                    return Err(Error::invalid(
                        format!("{at}.kind"),
                        "kind is marketing or transactional",
                    ))
                }
            };
            let variables = filter(o.get("variables"), &format!("{at}.variables"))?;
            Node::Send {
                route,
                template,
                kind,
                variables,
                next: next()?,
            }
        }
        Some("wait") => Node::Wait {
            wait: parse_wait(o, at)?,
            next: required("next")?,
        },
        Some("condition") => Node::Condition {
            cond: parse_cond(o.get("if").unwrap_or(&Json::Null), &format!("{at}.if"))?,
            then: required("then")?,
            otherwise: required("else")?,
        },
        Some("tag") => {
            let (tag, value) = match (opt_str(o, "add", at)?, opt_str(o, "remove", at)?) {
                (Some(t), None) => (t, Some(opt_str(o, "value", at)?.unwrap_or("yes".into()))),
                (None, Some(t)) => (t, None),
                _ => {
                    return Err(Error::invalid(
                        at,
                        "a tag node has either add (with an optional value) or remove",
                    ))
                }
            };
            Node::Tag {
                tag,
                value,
                next: next()?,
            }
        }
        Some("set_field") => {
            let field = required("field")?;
            if field.contains(['"', '\\', '.', '[', '$'])
                || crate::identity::PERSONAL_TRAITS.contains(&field.as_str())
            {
                return Err(Error::invalid(
                    format!("{at}.field"),
                    "a plain attribute name that is not personal data",
                ));
            }
            let value = o.get("value").cloned().unwrap_or(Json::Null);
            if !(value.is_string() || value.is_number() || value.is_boolean()) {
                return Err(Error::invalid(
                    format!("{at}.value"),
                    "a string, number or boolean",
                ));
            }
            Node::SetField {
                field,
                value,
                next: next()?,
            }
        }
        Some("set_stage") => Node::SetStage {
            stage: stage_name(o.get("stage").unwrap_or(&Json::Null), &format!("{at}.stage"))?,
            next: next()?,
        },
        Some("assign_owner") => {
            let rules = match o.get("rules") {
                None => Vec::new(),
                Some(Json::Array(rs)) => rs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let rat = format!("{at}.rules[{i}]");
                        let ro = r
                            .as_object()
                            .ok_or_else(|| Error::invalid(&rat, "{if, owner}"))?;
                        Ok(OwnerRule {
                            when: parse_cond(
                                ro.get("if").unwrap_or(&Json::Null),
                                &format!("{rat}.if"),
                            )?,
                            owner: str_field(ro, "owner", &format!("{rat}.owner"))?.to_string(),
                        })
                    })
                    .collect::<Result<_, Error>>()?,
                Some(_) => return Err(Error::invalid(format!("{at}.rules"), "a list")),
            };
            let default = opt_str(o, "owner", at)?;
            if rules.is_empty() && default.is_none() {
                return Err(Error::invalid(
                    at,
                    "assign_owner needs an owner, rules, or both",
                ));
            }
            Node::AssignOwner {
                rules,
                default,
                next: next()?,
            }
        }
        Some("task") => Node::Task {
            kind: required("kind")?,
            title: required("title")?,
            team: opt_str(o, "team", at)?,
            due_ms: positive_duration(
                o.get("due").unwrap_or(&Json::Null),
                &format!("{at}.due"),
            )?,
            next: next()?,
        },
        Some("webhook") => Node::Webhook {
            event: match o.get("event") {
                None => "contact.sync".into(),
                Some(e) => event_name(e, &format!("{at}.event"))?,
            },
            next: next()?,
        },
        Some("goal") => Node::Goal,
        Some("exit") => Node::Exit,
        _ => {
            return Err(Error::invalid(
                format!("{at}.type"),
                "type is send, wait, condition, tag, set_field, set_stage, assign_owner, task, webhook, goal or exit",
            ))
        }
    };
    Ok(node)
}

fn parse_wait(o: &Map<String, Json>, at: &str) -> Result<Wait, Error> {
    let given = ["duration", "until", "event"]
        .iter()
        .filter(|k| o.contains_key(**k))
        .count();
    if given != 1 {
        return Err(Error::invalid(
            at,
            "a wait has exactly one of duration, until or event",
        ));
    }
    if let Some(d) = o.get("duration") {
        let ms = duration(d, &format!("{at}.duration"))?;
        // Zero is refused too: a loop through a zero wait would run again at once.
        if ms <= 0 {
            return Err(Error::invalid(
                format!("{at}.duration"),
                "a wait lasts longer than zero",
            ));
        }
        return Ok(Wait::For(ms));
    }
    if let Some(e) = o.get("event") {
        let timeout_ms = positive_duration(
            o.get("timeout").unwrap_or(&Json::Null),
            &format!("{at}.timeout"),
        )?;
        return Ok(Wait::Event {
            event: event_name(e, &format!("{at}.event"))?,
            timeout_ms,
            on_timeout: str_field(o, "on_timeout", &format!("{at}.on_timeout"))?.to_string(),
        });
    }
    let uat = format!("{at}.until");
    let u = o
        .get("until")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::invalid(&uat, "{weekday?, time} or {at | context, offset?}"))?;
    if let Some(t) = u.get("time") {
        let time = t
            .as_str()
            .and_then(parse_time_of_day)
            .ok_or_else(|| Error::invalid(format!("{uat}.time"), "a local time, HH:MM"))?;
        let weekday = match u.get("weekday") {
            None => None,
            Some(w) => Some(
                w.as_str()
                    .and_then(parse_weekday)
                    .ok_or_else(|| Error::invalid(format!("{uat}.weekday"), "mon … sun"))?,
            ),
        };
        return Ok(Wait::Until(Until::Local { weekday, time }));
    }
    let source = if let Some(a) = u.get("at") {
        let t = a
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| {
                Error::invalid(
                    format!("{uat}.at"),
                    "an RFC 3339 time with its offset, e.g. 2027-01-15T19:00:00+08:00",
                )
            })?;
        InstantSource::Fixed(Millis(t.timestamp_millis()))
    } else if let Some(c) = u.get("context") {
        InstantSource::Context(
            c.as_str()
                .filter(|c| !c.is_empty() && !c.contains(['"', '\\', '[', '$']))
                .ok_or_else(|| Error::invalid(format!("{uat}.context"), "a property path"))?
                .to_string(),
        )
    } else {
        return Err(Error::invalid(&uat, "until needs time, at or context"));
    };
    let offset_ms = match u.get("offset") {
        None => 0,
        Some(v) => duration(v, &format!("{uat}.offset"))?,
    };
    Ok(Wait::Until(Until::Instant {
        at: source,
        offset_ms,
    }))
}

fn parse_test(o: &Map<String, Json>, at: &str) -> Result<Test, Error> {
    if let Some(v) = o.get("equals") {
        return Ok(Test::Equals(v.clone()));
    }
    if let Some(v) = o.get("in") {
        return v
            .as_array()
            .map(|a| Test::In(a.clone()))
            .ok_or_else(|| Error::invalid(format!("{at}.in"), "a list of values"));
    }
    let num = |k: &str| -> Result<Option<f64>, Error> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("{at}.{k}"), "a number")),
        }
    };
    let (gte, gt, lte, lt) = (num("gte")?, num("gt")?, num("lte")?, num("lt")?);
    if gte.or(gt).or(lte).or(lt).is_some() {
        return Ok(Test::Range { gte, gt, lte, lt });
    }
    Ok(Test::Exists)
}

/// A test given as the value itself (`"stage": "dormant"`) or as an object of comparisons
/// (`"score": {"gte": 40}`).
fn value_test(v: &Json, at: &str) -> Result<Test, Error> {
    match v {
        Json::Object(o) => parse_test(o, at),
        Json::String(_) | Json::Number(_) | Json::Bool(_) => Ok(Test::Equals(v.clone())),
        _ => Err(Error::invalid(at, "a value or {equals | in | gte | lte …}")),
    }
}

fn parse_cond(v: &Json, at: &str) -> Result<Cond, Error> {
    let o = v
        .as_object()
        .ok_or_else(|| Error::invalid(at, "a condition is an object"))?;
    let list = |k: &str| -> Result<Vec<Cond>, Error> {
        o[k].as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::invalid(format!("{at}.{k}"), "a non-empty list of conditions"))?
            .iter()
            .enumerate()
            .map(|(i, c)| parse_cond(c, &format!("{at}.{k}[{i}]")))
            .collect()
    };
    let name = |k: &str| -> Result<String, Error> {
        o[k].as_str()
            .filter(|s| !s.is_empty() && !s.contains(['"', '\\', '[', '$']))
            .map(str::to_string)
            .ok_or_else(|| Error::invalid(format!("{at}.{k}"), "a name"))
    };
    if o.contains_key("all") {
        return Ok(Cond::All(list("all")?));
    }
    if o.contains_key("any") {
        return Ok(Cond::Any(list("any")?));
    }
    if let Some(n) = o.get("not") {
        return Ok(Cond::Not(Box::new(parse_cond(n, &format!("{at}.not"))?)));
    }
    if o.contains_key("attribute") {
        return Ok(Cond::Attribute(name("attribute")?, parse_test(o, at)?));
    }
    if o.contains_key("tag") {
        return Ok(Cond::Tag(name("tag")?, parse_test(o, at)?));
    }
    if o.contains_key("context") {
        return Ok(Cond::Context(name("context")?, parse_test(o, at)?));
    }
    if let Some(v) = o.get("score") {
        return Ok(Cond::Score(value_test(v, &format!("{at}.score"))?));
    }
    if let Some(v) = o.get("stage") {
        return Ok(Cond::Stage(value_test(v, &format!("{at}.stage"))?));
    }
    if let Some(v) = o.get("lead_status") {
        return Ok(Cond::LeadStatus(value_test(
            v,
            &format!("{at}.lead_status"),
        )?));
    }
    if let Some(e) = o.get("event") {
        return Ok(Cond::Event {
            name: event_name(e, &format!("{at}.event"))?,
            within_ms: positive_duration(
                o.get("within").unwrap_or(&Json::Null),
                &format!("{at}.within"),
            )?,
        });
    }
    Err(Error::invalid(
        at,
        "a condition tests all, any, not, attribute, tag, score, stage, lead_status, event or context",
    ))
}

/// References, reachability and loops: every named node exists, every node can be reached
/// from `start`, and every cycle passes through a wait (a loop without one would run forever
/// in a single tick).
fn check_graph(j: &Journey) -> Result<(), Error> {
    if !j.nodes.contains_key(&j.start) {
        return Err(Error::invalid("start", format!("no node {}", j.start)));
    }
    for (id, node) in &j.nodes {
        for s in node.successors() {
            if !j.nodes.contains_key(s) {
                return Err(Error::invalid(
                    format!("nodes.{id}"),
                    format!("leads to {s}, which is not a node"),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut stack = vec![j.start.as_str()];
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(j.nodes[n].successors());
        }
    }
    if let Some(id) = j.nodes.keys().find(|k| !seen.contains(k.as_str())) {
        return Err(Error::invalid(
            format!("nodes.{id}"),
            format!("cannot be reached from start ({})", j.start),
        ));
    }
    // Depth-first search over the edges that do not leave a wait: any back edge is a loop
    // that would run without ever pausing.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for root in j.nodes.keys() {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        let mut path: Vec<(&str, Vec<&str>)> = vec![(root, instant_successors(&j.nodes[root]))];
        marks.insert(root, Mark::Open);
        while let Some((node, rest)) = path.last_mut() {
            let node = *node;
            match rest.pop() {
                Some(s) => match marks.get(s) {
                    Some(Mark::Open) => {
                        return Err(Error::invalid(
                            format!("nodes.{s}"),
                            format!("the loop through {node} and {s} has no wait"),
                        ))
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(s, Mark::Open);
                        path.push((s, instant_successors(&j.nodes[s])));
                    }
                },
                None => {
                    marks.insert(node, Mark::Done);
                    path.pop();
                }
            }
        }
    }
    Ok(())
}

fn instant_successors(n: &Node) -> Vec<&str> {
    match n {
        Node::Wait { .. } => vec![],
        other => other.successors(),
    }
}

use super::definition::{parse, Journey};
use super::run::{advance, Action, End, Facts, Next, Position};
use crate::time::Millis;
use serde_json::{json, Map, Value as Json};

/// Templates as the seeded catalogue has them (file name → channel).
fn catalogue(id: &str) -> Option<String> {
    let path = format!("{}/config/templates/{id}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).ok()?;
    let doc: Json = serde_json::from_str(&text).ok()?;
    doc["channel"].as_str().map(str::to_string)
}

fn seeded(id: &str) -> Journey {
    let path = format!("{}/config/journeys/{id}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    parse(id, 1, &text, &catalogue).unwrap_or_else(|e| panic!("{id}: {e:?}"))
}

fn refused(doc: Json) -> (String, String) {
    match parse("j", 1, &doc.to_string(), &catalogue) {
        Err(crate::Error::Invalid { field, message }) => (field, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn base(nodes: Json) -> Json {
    json!({"name": "t", "entry": {"event": "x"}, "start": "a", "nodes": nodes})
}

#[test]
fn every_seeded_journey_is_valid() {
    let dir = format!("{}/config/journeys", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        let id = path.file_stem().unwrap().to_str().unwrap().to_string();
        seeded(&id);
        n += 1;
    }
    assert!(n >= 10, "the ten journeys of REQUIREMENTS.md are seeded");
}

#[test]
fn invalid_journeys_are_refused_with_the_part_named() {
    let cases = [
        (
            base(
                json!({"a": {"type": "send", "channel": "email", "template": "whitepaper", "next": "b"}}),
            ),
            "nodes.a",
            "not a node",
        ),
        (
            base(json!({"a": {"type": "exit"}, "lonely": {"type": "exit"}})),
            "nodes.lonely",
            "cannot be reached",
        ),
        (
            base(json!({
                "a": {"type": "tag", "add": "x", "next": "b"},
                "b": {"type": "condition", "if": {"score": {"gte": 1}}, "then": "a", "else": "c"},
                "c": {"type": "exit"}
            })),
            "nodes.a",
            "no wait",
        ),
        (
            base(json!({"a": {"type": "send", "channel": "email", "template": "nope"}})),
            "nodes.a.template",
            "no template nope",
        ),
        (
            base(json!({"a": {"type": "send", "channel": "email", "template": "welcome-sms"}})),
            "nodes.a.template",
            "is for sms",
        ),
        (
            base(json!({"a": {"type": "send", "channel": "fax", "template": "whitepaper"}})),
            "nodes.a.channel",
            "channels are",
        ),
        (
            base(
                json!({"a": {"type": "wait", "duration": "-2d", "next": "b"}, "b": {"type": "exit"}}),
            ),
            "nodes.a.duration",
            "longer than zero",
        ),
        (
            base(
                json!({"a": {"type": "wait", "event": "login", "next": "b", "on_timeout": "b"}, "b": {"type": "exit"}}),
            ),
            "nodes.a.timeout",
            "durations",
        ),
        (
            base(json!({"a": {"type": "teleport"}})),
            "nodes.a.type",
            "type is",
        ),
        (
            json!({"name": "t", "entry": {"score_tier": "gold"}, "start": "a", "nodes": {"a": {"type": "exit"}}}),
            "entry.score_tier",
            "tiers",
        ),
        (
            json!({"name": "t", "entry": {"schedule": {"day_of_month": 31, "time": "10:00"}}, "start": "a", "nodes": {"a": {"type": "exit"}}}),
            "entry.schedule.day_of_month",
            "1 to 28",
        ),
        (
            json!({"name": "t", "entry": {"event": "x"}, "start": "zz", "nodes": {"a": {"type": "exit"}}}),
            "start",
            "no node zz",
        ),
        (
            base(json!({"a": {"type": "set_field", "field": "email", "value": "x"}})),
            "nodes.a.field",
            "personal data",
        ),
    ];
    for (doc, field, words) in cases {
        let (f, m) = refused(doc.clone());
        assert_eq!(f, field, "{doc}: {m}");
        assert!(m.contains(words), "{doc}: {m}");
    }
    // A 1 MB definition is refused before it is parsed.
    let huge = format!(
        "{{\"name\": \"{}\", \"entry\": {{\"event\": \"x\"}}}}",
        "a".repeat(1 << 20)
    );
    assert!(matches!(
        parse("j", 1, &huge, &catalogue),
        Err(crate::Error::Invalid { field, .. }) if field == "body"
    ));
}

fn start(j: &Journey) -> String {
    j.start.clone()
}

fn run(
    j: &Journey,
    node: &str,
    step: i64,
    waiting: bool,
    ctx: &Map<String, Json>,
    facts: &Facts,
    now: Millis,
) -> super::run::Advance {
    advance(
        j,
        &Position {
            node,
            step,
            waiting,
            context: ctx,
            expires_at: None,
        },
        facts,
        now,
    )
}

const T0: Millis = Millis(1_796_605_200_000);

#[test]
fn the_whitepaper_rule_sends_now_and_invites_two_days_later() {
    let j = seeded("whitepaper");
    let ctx = Map::new();
    let f = Facts::default();
    let a = run(&j, &start(&j), 0, false, &ctx, &f, T0);
    assert!(
        matches!(&a.effects[0].action, Action::Send { template: Some(t), .. } if t == "whitepaper")
    );
    assert_eq!(
        a.next,
        Next::Wait {
            node: "two-days".into(),
            until: T0.plus(2 * Millis::DAY),
            event: None
        }
    );
    assert_eq!(a.step, 2);
    let b = run(
        &j,
        "two-days",
        a.step,
        true,
        &ctx,
        &f,
        T0.plus(2 * Millis::DAY),
    );
    assert!(
        matches!(&b.effects[0].action, Action::Send { template: Some(t), .. } if t == "trial-invite")
    );
    assert_eq!(
        b.effects[0].step, 4,
        "steps keep counting: the keys never repeat"
    );
    assert_eq!(b.next, Next::Done(End::Completed));
}

#[test]
fn a_wait_for_an_event_branches_on_response_or_timeout() {
    let j = seeded("dormant-wakeup");
    let f = Facts::default();
    let quiet = Map::new();
    let first = run(&j, &start(&j), 0, false, &quiet, &f, T0);
    assert!(
        matches!(&first.effects[1].action, Action::Task { team: Some(t), .. } if t == "customer_success")
    );
    assert_eq!(
        first.next,
        Next::Wait {
            node: "response".into(),
            until: T0.plus(7 * Millis::DAY),
            event: Some("login".into())
        }
    );
    let timeout = run(
        &j,
        "response",
        first.step,
        true,
        &quiet,
        &f,
        T0.plus(7 * Millis::DAY),
    );
    assert!(
        matches!(&timeout.effects[0].action, Action::Send { template: Some(t), .. } if t == "customer-stories")
    );
    let mut woke = Map::new();
    woke.insert("woke".into(), json!("login"));
    let response = run(
        &j,
        "response",
        first.step,
        true,
        &woke,
        &f,
        T0.plus(Millis::DAY),
    );
    assert!(response.effects.is_empty());
    assert_eq!(response.next, Next::Done(End::Goal));
}

#[test]
fn conditions_read_the_event_that_ended_a_wait() {
    let j = seeded("nps");
    let f = Facts::default();
    let answered = |score: i64| {
        let mut ctx = Map::new();
        ctx.insert("woke".into(), json!("nps_submitted"));
        ctx.insert("event".into(), json!({ "score": score }));
        run(&j, "answer", 3, true, &ctx, &f, T0)
    };
    let low = answered(4);
    assert!(matches!(&low.effects[0].action, Action::Task { kind, .. } if kind == "call_back"));
    let high = answered(9);
    assert!(high.effects.is_empty());
    assert_eq!(high.next, Next::Done(End::Exited));
}

#[test]
fn the_conversion_tier_assigns_by_rule_and_syncs_the_crm() {
    let j = seeded("nurture-conversion");
    let mut f = Facts::default();
    f.tags.insert("industry".into(), json!("finance"));
    let a = run(&j, &start(&j), 0, false, &Map::new(), &f, T0);
    let actions: Vec<&Action> = a.effects.iter().map(|e| &e.action).collect();
    assert_eq!(actions[0], &Action::AssignOwner("sales-finance".into()));
    assert!(matches!(actions[1], Action::Task { due_at, .. } if *due_at == T0.plus(Millis::DAY)));
    assert!(matches!(actions[2], Action::Send { route, variables, .. }
        if route.as_str() == "webhook" && variables["event"] == "crm.lead_qualified"));
    let other = run(&j, &start(&j), 0, false, &Map::new(), &Facts::default(), T0);
    assert_eq!(
        other.effects[0].action,
        Action::AssignOwner("sales-team".into())
    );
}

#[test]
fn the_live_stream_waits_for_times_taken_from_the_booking() {
    let j = seeded("launch-live");
    let live = T0.plus(10 * Millis::DAY);
    let mut ctx = Map::new();
    ctx.insert("live_at".into(), json!(live.rfc3339()));
    let f = Facts::default();
    let a = run(&j, &start(&j), 0, false, &ctx, &f, T0);
    assert_eq!(
        a.next,
        Next::Wait {
            node: "three-days-before".into(),
            until: live.plus(-3 * Millis::DAY),
            event: None
        }
    );
    // Booked two hours before the start: the 3-day reminder's time has passed, so it is sent
    // at once and the journey waits for the hour-before notice.
    let late = run(
        &j,
        &start(&j),
        0,
        false,
        &ctx,
        &f,
        live.plus(-2 * Millis::HOUR),
    );
    assert!(
        matches!(&late.effects[0].action, Action::Send { template: Some(t), .. } if t == "live-reminder")
    );
    assert_eq!(
        late.next,
        Next::Wait {
            node: "hour-before".into(),
            until: live.plus(-Millis::HOUR),
            event: None
        }
    );
}

#[test]
fn the_maximum_duration_ends_nurturing_and_makes_the_lead_dormant() {
    let j = seeded("nurture-awareness");
    let ctx = Map::new();
    let at = Position {
        node: "week-1",
        step: 5,
        waiting: true,
        context: &ctx,
        expires_at: Some(T0.plus(90 * Millis::DAY)),
    };
    let a = advance(&j, &at, &Facts::default(), T0.plus(90 * Millis::DAY));
    assert_eq!(a.next, Next::Done(End::Expired));
    assert_eq!(a.effects[0].action, Action::SetStage("dormant".into()));
    // A wait never runs past the expiry.
    let first = advance(
        &j,
        &Position {
            node: "article",
            step: 0,
            waiting: false,
            context: &ctx,
            expires_at: Some(T0.plus(3 * Millis::DAY)),
        },
        &Facts::default(),
        T0,
    );
    assert!(matches!(first.next, Next::Wait { until, .. } if until == T0.plus(3 * Millis::DAY)));
}

#[test]
fn conditions_compare_numbers_in_text_and_events_in_windows() {
    use super::definition::{Cond, Test};
    use super::run::holds;
    let mut f = Facts::default();
    f.attributes.insert("company_size".into(), json!("500"));
    f.last_events
        .insert("login".into(), T0.plus(-2 * Millis::DAY));
    let ctx = Map::new();
    let big = Cond::Attribute(
        "company_size".into(),
        Test::Range {
            gte: Some(500.0),
            gt: None,
            lte: None,
            lt: None,
        },
    );
    assert!(holds(&big, &f, &ctx, T0));
    let recent = |days| Cond::Event {
        name: "login".into(),
        within_ms: days * Millis::DAY,
    };
    assert!(holds(&recent(3), &f, &ctx, T0));
    assert!(!holds(&recent(1), &f, &ctx, T0));
    assert!(!holds(&Cond::Tag("vip".into(), Test::Exists), &f, &ctx, T0));
}

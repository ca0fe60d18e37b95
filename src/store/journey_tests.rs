//! Store tests of journeys on real SQLite: enrolment from events in the ingest batch, steps in
//! virtual time, exactly once under overlapping or interrupted passes, goals, exits, waits for
//! events, scheduled audiences, and one broken enrollment not stopping the others.

use super::journeys::{self, Versions, LEASE_MS};
use super::sqlite::{block_on, Sqlite};
use super::*;
use crate::event::{Event, IngestMessage, Subject, DEFAULT_WORKSPACE as WS};
use crate::identity::user_contact_id;
use crate::time::Millis;
use serde_json::json;

// Monday 2026-12-07 10:00 in Shanghai.
const T0: Millis = Millis(1_796_608_800_000);
const DAY: i64 = Millis::DAY;

fn catalogue(id: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!(
        "{}/config/templates/{id}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["channel"].as_str().map(str::to_string)
}

fn with_journeys(ids: &[&str]) -> Sqlite {
    let db = Sqlite::open_with_project_schema().unwrap();
    for id in ids {
        let text = std::fs::read_to_string(format!(
            "{}/config/journeys/{id}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        block_on(journeys::save(&db, WS, id, &text, &catalogue, T0)).unwrap();
    }
    db
}

fn event(id: &str, user: &str, name: &str, at: Millis, props: serde_json::Value) -> IngestMessage {
    IngestMessage::Event(Event {
        id: id.into(),
        workspace: WS.into(),
        site: None,
        subject: Subject::User(user.into()),
        session_id: None,
        name: name.into(),
        properties: props.as_object().cloned().unwrap_or_default(),
        claims: Default::default(),
        consents: Vec::new(),
        occurred_at: at,
        received_at: at,
    })
}

/// Ingests like the events consumer: the batch and the event pass in one transaction.
fn ingest(db: &Sqlite, batch: &[IngestMessage], now: Millis) {
    let mut stmts = ingest::batch_statements(batch, None);
    stmts.extend(journeys::event_pass(WS, now));
    block_on(db.batch(&stmts)).unwrap();
}

/// `user` downloads the whitepaper at `at` (event `id`), ingested at that time.
fn download(db: &Sqlite, id: &str, user: &str, at: Millis) {
    ingest(
        db,
        &[event(id, user, "whitepaper_downloaded", at, json!({}))],
        at,
    );
}

fn tick(db: &Sqlite, now: Millis) -> journeys::Advanced {
    block_on(journeys::run_due(
        db,
        WS,
        now,
        100,
        50,
        &mut Versions::default(),
        || false,
    ))
    .unwrap()
    .advanced
}

fn rows(db: &Sqlite, sql: &str) -> Vec<Row> {
    block_on(db.query(&Statement::new(sql.to_string(), vec![]))).unwrap()
}

fn sent(db: &Sqlite, contact: &str) -> Vec<(String, String)> {
    rows(
        db,
        &format!(
            "SELECT template_id, journey_node FROM messages WHERE contact_id = '{contact}' \
             ORDER BY created_at, rowid"
        ),
    )
    .iter()
    .map(|r| {
        (
            r.text("template_id").unwrap_or_default(),
            r.text("journey_node").unwrap_or_default(),
        )
    })
    .collect()
}

fn enrollment(db: &Sqlite, contact: &str, journey: &str) -> journeys::EnrollmentView {
    block_on(journeys::of_contact(db, WS, contact))
        .unwrap()
        .into_iter()
        .find(|e| e.journey_id == journey)
        .unwrap_or_else(|| panic!("{contact} is not in {journey}"))
}

#[test]
fn a_download_enrols_at_once_and_the_invitation_follows_two_days_later() {
    let db = with_journeys(&["whitepaper"]);
    let c = user_contact_id(WS, "u1");
    download(&db, "e1", "u1", T0);
    let e = enrollment(&db, &c, "whitepaper");
    assert_eq!(
        (e.state.as_str(), e.node.as_str()),
        ("active", "whitepaper")
    );
    let a = tick(&db, T0);
    assert_eq!((a.enrollments, a.messages), (1, 1));
    assert_eq!(sent(&db, &c), [("whitepaper".into(), "whitepaper".into())]);
    let e = enrollment(&db, &c, "whitepaper");
    assert_eq!((e.state.as_str(), e.node.as_str()), ("waiting", "two-days"));
    assert_eq!(e.next_run_at, Some(T0.plus(2 * DAY).rfc3339()));
    // Nothing is due a day later; two days later the trial invitation goes.
    assert_eq!(tick(&db, T0.plus(DAY)).enrollments, 0);
    tick(&db, T0.plus(2 * DAY));
    assert_eq!(sent(&db, &c).len(), 2);
    assert_eq!(sent(&db, &c)[1].0, "trial-invite");
    assert_eq!(enrollment(&db, &c, "whitepaper").state, "completed");
    // The message is queued for deliver's cron hand-over, with its journey recorded.
    let m = rows(
        &db,
        "SELECT state, next_attempt_at, enrollment_id, journey_id, kind FROM messages",
    );
    assert!(m
        .iter()
        .all(|r| r.text("state").as_deref() == Some("queued")
            && r.int("next_attempt_at").is_some()
            && r.text("journey_id").as_deref() == Some("whitepaper")
            && r.text("kind").as_deref() == Some("marketing")));
    // A second download enrols no one (re-entry: never).
    download(&db, "e2", "u1", T0.plus(3 * DAY));
    assert_eq!(rows(&db, "SELECT id FROM enrollments").len(), 1);
}

#[test]
fn overlapping_and_interrupted_passes_run_each_step_once() {
    let db = with_journeys(&["whitepaper"]);
    for i in 0..30 {
        download(&db, &format!("e{i}"), &format!("u{i}"), T0);
    }
    // A pass that claims and then dies: its lease holds the enrollments from an overlapping
    // pass, which finds nothing to do.
    let claimed = rows(
        &db,
        &format!(
            "UPDATE enrollments SET lease_until = {} WHERE id IN (SELECT id FROM enrollments LIMIT 10) RETURNING id",
            T0.0 + LEASE_MS
        ),
    );
    assert_eq!(claimed.len(), 10);
    let overlapping = tick(&db, T0);
    assert_eq!(overlapping.enrollments, 20);
    assert_eq!(
        tick(&db, T0).enrollments,
        0,
        "the second of two overlapping ticks"
    );
    // When the lease runs out, the dead pass's work is done, once.
    let later = T0.plus(LEASE_MS);
    assert_eq!(tick(&db, later).enrollments, 10);
    let counts = rows(
        &db,
        "SELECT count(*) AS n, count(DISTINCT contact_id) AS people FROM messages",
    );
    assert_eq!(
        (counts[0].int("n"), counts[0].int("people")),
        (Some(30), Some(30))
    );
    let steps = rows(&db, "SELECT count(*) AS n FROM journey_steps");
    assert_eq!(steps[0].int("n"), Some(60), "send + wait for each of 30");
}

#[test]
fn a_step_whose_effects_landed_but_whose_move_did_not_is_not_sent_twice() {
    let db = with_journeys(&["whitepaper"]);
    let c = user_contact_id(WS, "u1");
    download(&db, "e1", "u1", T0);
    tick(&db, T0);
    // Put the enrollment back where it was before the step, as if the move had been lost:
    // the redo writes the same keys, which are ignored.
    rows(&db, "UPDATE enrollments SET state = 'active', node = 'whitepaper', step = 0, next_run_at = 0 RETURNING id");
    tick(&db, T0.plus(Millis::MINUTE));
    assert_eq!(sent(&db, &c).len(), 1);
}

#[test]
fn goals_and_unsubscribes_end_enrollments_wherever_they_are() {
    let db = with_journeys(&["whitepaper"]);
    let (a, b) = (user_contact_id(WS, "ua"), user_contact_id(WS, "ub"));
    ingest(
        &db,
        &[
            event("e1", "ua", "whitepaper_downloaded", T0, json!({})),
            event("e2", "ub", "whitepaper_downloaded", T0, json!({})),
        ],
        T0,
    );
    tick(&db, T0);
    ingest(
        &db,
        &[event("e3", "ua", "trial_started", T0.plus(DAY), json!({}))],
        T0.plus(DAY),
    );
    ingest(
        &db,
        &[event("e4", "ub", "unsubscribed", T0.plus(DAY), json!({}))],
        T0.plus(DAY),
    );
    assert_eq!(enrollment(&db, &a, "whitepaper").state, "goal");
    assert_eq!(enrollment(&db, &b, "whitepaper").state, "exited");
    tick(&db, T0.plus(3 * DAY));
    assert_eq!(sent(&db, &a).len(), 1, "no invitation after the goal");
    assert_eq!(sent(&db, &b).len(), 1, "no invitation after unsubscribing");
    let stats = block_on(journeys::stats(&db, WS, "whitepaper")).unwrap();
    assert_eq!(stats["enrollments"], 2);
    assert_eq!(stats["conversion_to_goal"], 0.5);
    assert_eq!(stats["nodes"]["whitepaper"]["entered"], 2);
}

#[test]
fn a_wait_for_a_response_takes_the_event_branch_or_times_out() {
    let db = with_journeys(&["dormant-wakeup"]);
    let (woke, silent) = (user_contact_id(WS, "uw"), user_contact_id(WS, "us"));
    for (id, u) in [("e1", "uw"), ("e2", "us")] {
        ingest(&db, &[event(id, u, "lifecycle.dormant", T0, json!({}))], T0);
    }
    tick(&db, T0);
    assert_eq!(
        enrollment(&db, &woke, "dormant-wakeup")
            .waiting_for
            .as_deref(),
        Some("login")
    );
    let tasks = block_on(journeys::tasks(&db, WS, Some(&woke), None)).unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].team.as_deref(), Some("customer_success"));
    // One logs in on day 3: the enrollment is due at the login and reaches its goal.
    ingest(
        &db,
        &[event("e3", "uw", "login", T0.plus(3 * DAY), json!({}))],
        T0.plus(3 * DAY),
    );
    tick(&db, T0.plus(3 * DAY));
    assert_eq!(enrollment(&db, &woke, "dormant-wakeup").state, "goal");
    // The other is silent: on day 7 the customer stories go.
    tick(&db, T0.plus(6 * DAY));
    assert_eq!(sent(&db, &silent).len(), 1);
    tick(&db, T0.plus(7 * DAY));
    assert_eq!(sent(&db, &silent)[1].0, "customer-stories");
    assert_eq!(sent(&db, &woke).len(), 1);
}

#[test]
fn nurture_ends_after_ninety_days_and_the_lead_enters_the_wake_up_journey() {
    let db = with_journeys(&["nurture-awareness", "dormant-wakeup"]);
    let c = user_contact_id(WS, "u1");
    // A user id makes the contact known: `lead.known` enrols it in the first tier.
    ingest(&db, &[event("e1", "u1", "identify", T0, json!({}))], T0);
    let mut t = T0;
    while t < T0.plus(91 * DAY) {
        tick(&db, t);
        t = t.plus(DAY);
    }
    let nurture = enrollment(&db, &c, "nurture-awareness");
    assert_eq!(nurture.state, "expired");
    let stage = rows(
        &db,
        &format!("SELECT lifecycle_stage FROM contacts WHERE id = '{c}'"),
    );
    assert_eq!(stage[0].text("lifecycle_stage").as_deref(), Some("dormant"));
    let wake = enrollment(&db, &c, "dormant-wakeup");
    assert_eq!(wake.started_at, T0.plus(90 * DAY).rfc3339());
    let templates: Vec<String> = sent(&db, &c).into_iter().map(|(t, _)| t).collect();
    let articles = templates.iter().filter(|t| *t == "insight-article").count();
    let videos = templates.iter().filter(|t| *t == "product-video").count();
    // Weekly for 90 days: 13 articles (days 0, 7, …, 84), a video every other week (6).
    assert_eq!((articles, videos), (13, 6));
    assert_eq!(templates.last().map(String::as_str), Some("welcome-back"));
}

#[test]
fn a_scheduled_journey_enrols_its_audience_once_per_occurrence_in_pages() {
    let db = with_journeys(&["active-monthly"]);
    for i in 0..7 {
        ingest(
            &db,
            &[event(
                &format!("e{i}"),
                &format!("u{i}"),
                "identify",
                T0,
                json!({}),
            )],
            T0,
        );
    }
    rows(&db, "UPDATE contacts SET lifecycle_stage = CASE WHEN rowid % 2 = 0 THEN 'active' ELSE 'new' END RETURNING id");
    let active = rows(
        &db,
        "SELECT count(*) AS n FROM contacts WHERE lifecycle_stage = 'active'",
    )[0]
    .int("n")
    .unwrap() as usize;
    let j = block_on(journeys::current(&db, WS)).unwrap().remove(0);
    // 2027-01-01 10:00 Shanghai, and an hour later.
    let first = Millis(1_798_768_800_000);
    assert_eq!(
        block_on(journeys::schedule_pass(
            &db,
            WS,
            &j,
            first.plus(-Millis::MINUTE),
            2
        ))
        .unwrap(),
        0,
        "not yet"
    );
    let mut looked = 0;
    for _ in 0..5 {
        looked += block_on(journeys::schedule_pass(
            &db,
            WS,
            &j,
            first.plus(Millis::HOUR),
            2,
        ))
        .unwrap();
    }
    assert_eq!(looked, active);
    assert_eq!(rows(&db, "SELECT id FROM enrollments").len(), active);
    tick(&db, first.plus(Millis::HOUR));
    assert_eq!(
        rows(
            &db,
            "SELECT id FROM messages WHERE template_id = 'monthly-benefits'"
        )
        .len(),
        active
    );
    // A month later, again.
    let second = first.plus(31 * DAY);
    while block_on(journeys::schedule_pass(&db, WS, &j, second, 2)).unwrap() > 0 {}
    assert_eq!(rows(&db, "SELECT id FROM enrollments").len(), 2 * active);
}

#[test]
fn one_broken_enrollment_records_its_error_and_the_others_go_on() {
    let db = with_journeys(&["whitepaper"]);
    for (id, u) in [("e1", "u1"), ("e2", "u2")] {
        download(&db, id, u, T0);
    }
    let broken = user_contact_id(WS, "u1");
    rows(
        &db,
        &format!("UPDATE enrollments SET version = 99 WHERE contact_id = '{broken}' RETURNING id"),
    );
    tick(&db, T0);
    let e = enrollment(&db, &broken, "whitepaper");
    assert_eq!(e.state, "failed");
    assert!(e.error.unwrap().contains("version"));
    assert_eq!(sent(&db, &user_contact_id(WS, "u2")).len(), 1);
}

#[test]
fn contacts_keep_their_version_when_the_journey_changes() {
    let db = with_journeys(&["whitepaper"]);
    let c = user_contact_id(WS, "u1");
    download(&db, "e1", "u1", T0);
    tick(&db, T0);
    // Version 2 drops the invitation.
    let v2 = json!({"name": "v2", "entry": {"event": "whitepaper_downloaded"}, "start": "whitepaper",
        "nodes": {"whitepaper": {"type": "send", "channel": "email", "template": "whitepaper"}}});
    let saved = block_on(journeys::save(
        &db,
        WS,
        "whitepaper",
        &v2.to_string(),
        &catalogue,
        T0,
    ))
    .unwrap();
    assert_eq!(saved.version, 2);
    tick(&db, T0.plus(2 * DAY));
    assert_eq!(sent(&db, &c)[1].0, "trial-invite", "version 1 goes on");
    download(&db, "e2", "u2", T0.plus(2 * DAY));
    assert_eq!(
        enrollment(&db, &user_contact_id(WS, "u2"), "whitepaper").version,
        2
    );
}

#[test]
fn a_new_journey_enrols_from_what_happens_after_it_not_from_history() {
    let db = Sqlite::open_with_project_schema().unwrap();
    download(&db, "e1", "u1", T0);
    let text = std::fs::read_to_string(format!(
        "{}/config/journeys/whitepaper.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    block_on(journeys::save(&db, WS, "whitepaper", &text, &catalogue, T0)).unwrap();
    download(&db, "e2", "u2", T0);
    // A new version keeps the journey's start: still no history.
    block_on(journeys::save(&db, WS, "whitepaper", &text, &catalogue, T0)).unwrap();
    download(&db, "e3", "u3", T0);
    let enrolled: Vec<String> = rows(
        &db,
        "SELECT contact_id FROM enrollments ORDER BY contact_id",
    )
    .iter()
    .filter_map(|r| r.text("contact_id"))
    .collect();
    let mut want = vec![user_contact_id(WS, "u2"), user_contact_id(WS, "u3")];
    want.sort();
    assert_eq!(enrolled, want);
}

#[test]
fn a_page_of_steps_costs_far_fewer_statements_than_steps() {
    let db = with_journeys(&["nurture-conversion"]);
    // Conversion: owner, task and webhook for each of 40 sales-qualified leads.
    for i in 0..40 {
        ingest(
            &db,
            &[event(
                &format!("e{i}"),
                &format!("u{i}"),
                "lead.sql",
                T0,
                json!({}),
            )],
            T0,
        );
    }
    let a = tick(&db, T0);
    assert_eq!(a.steps, 120);
    assert!(
        a.statements * 2 <= a.steps,
        "{} statements for {} steps",
        a.statements,
        a.steps
    );
}

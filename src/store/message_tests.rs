//! Store tests of the outbox on real SQLite: idempotent enqueueing, compare-and-set state
//! changes with their history, the cron's re-queue lease.

use super::messages::{self, NewMessage, Route, Transition, OPEN_STATES};
use super::sqlite::{block_on, Sqlite};
use crate::consent::Channel;
use crate::delivery::decision::Kind;
use crate::time::Millis;
use serde_json::Map;

const T0: Millis = Millis(1_800_000_000_000);

fn enqueue(db: &Sqlite, id: &str, key: &str) -> (String, bool) {
    block_on(messages::enqueue(
        db,
        &NewMessage {
            workspace: "default",
            id,
            idempotency_key: key,
            contact_id: "c_0123456789abcdef01234567",
            route: Route::Person(Channel::Email),
            kind: Kind::Marketing,
            template: Some(("whitepaper", 1)),
            journey_id: None,
            variables: &Map::new(),
            now: T0,
        },
    ))
    .unwrap()
}

fn to(db: &Sqlite, id: &str, from: &'static str, state: &str, next: Option<Millis>) -> bool {
    block_on(messages::transition(
        db,
        &Transition {
            id,
            from,
            to: state,
            reason: Some("because"),
            next_attempt_at: next,
            provider_id: None,
            variant: Some("a"),
            attempt: state == "sending",
            now: T0,
        },
    ))
    .unwrap()
}

#[test]
fn the_same_key_is_the_same_message() {
    let db = Sqlite::open_with_project_schema().unwrap();
    assert_eq!(enqueue(&db, "m_1", "k"), ("m_1".to_string(), true));
    assert_eq!(enqueue(&db, "m_2", "k"), ("m_1".to_string(), false));
}

#[test]
fn only_one_claim_wins_and_every_change_is_in_the_history() {
    let db = Sqlite::open_with_project_schema().unwrap();
    enqueue(&db, "m_1", "k");
    assert!(to(&db, "m_1", OPEN_STATES, "sending", None));
    assert!(
        !to(&db, "m_1", OPEN_STATES, "sending", None),
        "a second delivery"
    );
    assert!(to(&db, "m_1", "('sending')", "sent", None));
    let m = block_on(messages::get(&db, "m_1")).unwrap().unwrap();
    assert_eq!((m.state.as_str(), m.attempts), ("sent", 1));
    assert!(m.sent_at.is_some());
    let h = block_on(messages::history(&db, "m_1")).unwrap();
    let states: Vec<_> = h
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["sending", "sent"]);
}

#[test]
fn due_messages_are_handed_back_once_per_lease() {
    let db = Sqlite::open_with_project_schema().unwrap();
    enqueue(&db, "m_1", "k1");
    enqueue(&db, "m_2", "k2");
    assert!(to(&db, "m_1", OPEN_STATES, "deferred", Some(T0.plus(1000))));
    assert!(to(
        &db,
        "m_2",
        OPEN_STATES,
        "deferred",
        Some(T0.plus(Millis::HOUR))
    ));
    assert!(block_on(messages::due(&db, T0, 10)).unwrap().is_empty());
    assert_eq!(
        block_on(messages::due(&db, T0.plus(2000), 10)).unwrap(),
        [("m_1".to_string(), 0)]
    );
    assert!(
        block_on(messages::due(&db, T0.plus(3000), 10))
            .unwrap()
            .is_empty(),
        "leased"
    );
    let later = T0.plus(2000 + messages::REQUEUE_LEASE_MS);
    assert_eq!(
        block_on(messages::due(&db, later, 10)).unwrap(),
        [("m_1".to_string(), 0)]
    );
}

#[test]
fn a_significant_winner_is_rolled_out_once_when_the_plan_says_so() {
    use super::documents::{self, TEMPLATES};
    use super::{Db, Statement};
    let db = Sqlite::open_with_project_schema().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../../config/templates/whitepaper.json")).unwrap();
    doc["id"] = "whitepaper".into();
    doc["ab"] = serde_json::json!({"metric": "clicked", "min_sample": 10, "auto_rollout": true});
    let mut t = crate::template::parse(doc.to_string().as_bytes()).unwrap();
    block_on(documents::save(
        &db,
        &TEMPLATES,
        "default",
        "whitepaper",
        T0,
        |v| {
            t.version = v as u64;
            Ok(serde_json::to_string(&t).unwrap())
        },
    ))
    .unwrap();
    // 20 sends per variant; b is clicked 15 times, a twice.
    for i in 0..40 {
        let (variant, clicked) = if i < 20 { ("a", i < 2) } else { ("b", i < 35) };
        let id = format!("m_{i:03}");
        block_on(db.execute(&Statement::new(
            "INSERT INTO messages (workspace, id, idempotency_key, contact_id, channel, kind, \
             template_id, template_version, variant, state, created_at, updated_at, sent_at) \
             VALUES ('default', ?1, ?1, 'c_0123456789abcdef01234567', 'email', 'marketing', \
             'whitepaper', 1, ?2, 'sent', 1, 1, 1)",
            vec![id.as_str().into(), variant.into()],
        )))
        .unwrap();
        if clicked {
            block_on(db.execute(&Statement::new(
                "INSERT INTO events (workspace, id, contact_id, name, properties, occurred_at, received_at) \
                 VALUES ('default', 'k_' || ?1, 'c_0123456789abcdef01234567', 'email_clicked', \
                 json_object('message_id', ?1, 'machine', json('false')), 2, 2)",
                vec![id.as_str().into()],
            )))
            .unwrap();
        }
    }
    let declared = block_on(messages::auto_rollout(&db, "default", T0)).unwrap();
    assert_eq!(declared, [("whitepaper".to_string(), "b".to_string())]);
    assert_eq!(
        block_on(messages::ab_winner(&db, "default", "whitepaper", 1))
            .unwrap()
            .as_deref(),
        Some("b")
    );
    assert!(block_on(messages::auto_rollout(&db, "default", T0))
        .unwrap()
        .is_empty());
}

// --- a queue batch at a time ---------------------------------------------------------------------

/// Runs one SQL statement of test set-up.
fn exec(db: &Sqlite, sql: &'static str, params: Vec<super::Value>) {
    use super::{Db, Statement};
    block_on(db.execute(&Statement::new(sql, params))).unwrap();
}

/// A contact with an email address (and a phone when `phone_status` is given), attributes and
/// an optional email grant at `granted_at`.
fn contact(
    db: &Sqlite,
    id: &str,
    attributes: &str,
    granted_at: Option<i64>,
    phone_status: Option<&str>,
) {
    exec(
        db,
        "INSERT INTO contacts (id, workspace, first_seen_at, last_seen_at, created_at, updated_at, \
         attributes, email_index, phone_index, phone_status) \
         VALUES (?1, 'default', 1, 1, 1, 1, ?2, 'ix_' || ?1, CASE WHEN ?3 IS NULL THEN NULL ELSE 'px_' || ?1 END, ?4)",
        vec![
            id.into(),
            attributes.into(),
            phone_status.map(|_| 1).into(),
            phone_status.filter(|s| !s.is_empty()).into(),
        ],
    );
    if let Some(at) = granted_at {
        exec(
            db,
            "INSERT INTO consents (workspace, id, contact_id, channel, purpose, granted, source, recorded_at) \
             VALUES ('default', 'k_' || ?1, ?1, 'email', 'marketing', 1, 'form', ?2)",
            vec![id.into(), at.into()],
        );
    }
}

/// A marketing email to `to` claimed at `sent_at` in `state`.
fn sent_mail(db: &Sqlite, id: &str, to: &str, state: &str, sent_at: Millis) {
    exec(
        db,
        "INSERT INTO messages (workspace, id, idempotency_key, contact_id, channel, kind, state, \
         created_at, updated_at, sent_at) VALUES ('default', ?1, ?1, ?2, 'email', 'marketing', ?3, 1, 1, ?4)",
        vec![id.into(), to.into(), state.into(), sent_at.into()],
    );
}

#[test]
fn a_batch_of_decisions_reads_what_each_decision_would_read_alone() {
    use super::{consent, contacts, tags};
    let db = Sqlite::open_with_project_schema().unwrap();
    let week = 7 * Millis::DAY;
    contact(
        &db,
        "c_a",
        r#"{"timezone": "+02:00"}"#,
        Some(T0.0 - 10),
        Some(""),
    );
    contact(&db, "c_b", "{}", None, Some("invalid"));
    contact(&db, "c_c", "{}", Some(T0.0 + 10), None);
    sent_mail(&db, "m_old", "c_a", "sent", T0.plus(-week - 1));
    sent_mail(&db, "m_in", "c_a", "delivered", T0.plus(-Millis::HOUR));
    sent_mail(&db, "m_failed", "c_a", "failed", T0.plus(-Millis::HOUR));
    sent_mail(&db, "m_self", "c_a", "sending", T0.plus(-1));
    sent_mail(&db, "m_b", "c_b", "sent", T0.plus(-2));
    exec(
        &db,
        "INSERT INTO events (workspace, id, contact_id, name, occurred_at, received_at) \
         VALUES ('default', 'e_1', 'c_b', 'sales_contacted', ?1, ?1), ('default', 'e_2', 'c_b', 'sales_contacted', ?2, ?2)",
        vec![T0.plus(-Millis::DAY).into(), T0.plus(Millis::DAY).into()],
    );
    exec(
        &db,
        "INSERT INTO tags (workspace, contact_id, tag, kind, value, updated_at) VALUES \
         ('default', 'c_a', 'industry', 'static', 'finance', 1), ('default', 'c_a', 'rfm_r', 'value', '5', 1), \
         ('default', 'c_c', 'industry', 'static', 'retail', 1)",
        vec![],
    );
    exec(
        &db,
        "INSERT INTO consents (workspace, id, contact_id, channel, purpose, granted, source, recorded_at) \
         VALUES ('default', 'k_b_sms', 'c_b', 'sms', 'marketing', 1, 'form', 1)",
        vec![],
    );
    // (contact, channel, message, now): one twice, one unknown, one before its grant.
    let asks = [
        ("c_a", Channel::Email, "m_self", T0),
        ("c_a", Channel::Email, "m_new", T0),
        ("c_b", Channel::Email, "m_new2", T0),
        ("c_b", Channel::Sms, "m_new3", T0),
        ("c_c", Channel::Email, "m_new4", T0),
        ("c_c", Channel::Email, "m_new5", T0.plus(20)),
        ("c_x", Channel::Email, "m_new6", T0),
    ];
    let consent_asks: Vec<_> = asks.iter().map(|a| (a.0, a.1, a.3)).collect();
    let many = block_on(consent::may_market_many(&db, "default", &consent_asks)).unwrap();
    let alone: Vec<_> = asks
        .iter()
        .map(|a| block_on(consent::may_market(&db, "default", a.0, a.1, a.3)).unwrap())
        .collect();
    assert_eq!(many, alone);
    assert_eq!(many[0], Ok(()));
    assert_eq!(many[3], Err(crate::consent::Refusal::ContactPointUnusable));
    assert_ne!(many[4], many[5], "a grant counts from its time on");

    let fact_asks: Vec<_> = asks
        .iter()
        .map(|a| messages::FactsAsk {
            contact: a.0,
            channel: a.1.as_str(),
            message_id: a.2,
            now: a.3,
        })
        .collect();
    let many = block_on(messages::facts_many(&db, "default", &fact_asks, week)).unwrap();
    assert_eq!(many.len(), asks.len());
    assert_eq!(
        many[0].recent,
        [T0.plus(-Millis::HOUR)],
        "not itself, not failed, not old"
    );
    assert_eq!(many[1].recent.len(), 2);
    assert_eq!(many[0].utc_offset_min, 120);
    assert_eq!(many[2].last_sales_contact, Some(T0.plus(-Millis::DAY)));
    let unknown = &many[6];
    assert_eq!(
        (
            unknown.recent.len(),
            unknown.utc_offset_min,
            unknown.last_sales_contact
        ),
        (0, 480, None),
        "an unknown contact: nothing sent, China Standard Time"
    );

    let found = block_on(contacts::get_many(&db, "default", &["c_a", "c_c", "c_x"])).unwrap();
    let mut ids: Vec<_> = found.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["c_a", "c_c"]);
    let c_a = found.iter().find(|c| c.id == "c_a").unwrap();
    let mut one = block_on(contacts::get(&db, "default", "c_a"))
        .unwrap()
        .unwrap();
    one.visitor_ids.clear();
    assert_eq!(*c_a, one, "the same view, without visitor ids");

    let by_contact = block_on(tags::of_contacts(&db, "default", &["c_a", "c_b", "c_c"])).unwrap();
    for c in ["c_a", "c_b", "c_c"] {
        assert_eq!(
            by_contact.get(c).cloned().unwrap_or_default(),
            block_on(tags::of_contact(&db, "default", c)).unwrap(),
            "{c}"
        );
    }
    assert_eq!(by_contact["c_a"].len(), 2);
}

fn claim<'a>(id: &'a str, now: Millis, variant: &'a str) -> Transition<'a> {
    Transition {
        id,
        from: OPEN_STATES,
        to: "sending",
        reason: None,
        next_attempt_at: None,
        provider_id: None,
        variant: Some(variant),
        attempt: true,
        now,
    }
}

#[test]
fn a_batch_of_claims_wins_each_open_message_once_and_records_each_change() {
    let db = Sqlite::open_with_project_schema().unwrap();
    for id in ["m_1", "m_2", "m_3"] {
        enqueue(&db, id, id);
    }
    assert!(to(&db, "m_3", OPEN_STATES, "suppressed", None));
    let later = T0.plus(5);
    let changes = [
        claim("m_1", T0, "a"),
        claim("m_2", later, "b"),
        claim("m_3", T0, "a"),
        claim("m_1", T0, "a"),
        claim("m_unknown", T0, "a"),
    ];
    let mut won = block_on(messages::transition_many(&db, &changes)).unwrap();
    won.sort();
    assert_eq!(won, ["m_1", "m_2"], "open ones, each once");
    assert!(
        block_on(messages::transition_many(&db, &changes[..2]))
            .unwrap()
            .is_empty(),
        "a second delivery of the batch claims nothing"
    );
    let m2 = block_on(messages::get(&db, "m_2")).unwrap().unwrap();
    assert_eq!(
        (m2.state.as_str(), m2.attempts, m2.variant.as_deref()),
        ("sending", 1, Some("b"))
    );
    assert_eq!(
        m2.sent_at,
        Some(later.rfc3339()),
        "each message at its own time"
    );

    // Outcomes (from `sending`) and holds (from the open states) in one call.
    let outcomes = [
        Transition {
            provider_id: Some("sg-1"),
            variant: None,
            attempt: false,
            from: "('sending')",
            to: "sent",
            ..claim("m_1", T0.plus(10), "")
        },
        Transition {
            reason: Some("http_500"),
            next_attempt_at: Some(T0.plus(30_000)),
            variant: None,
            attempt: false,
            from: "('sending')",
            to: "retry",
            ..claim("m_2", T0.plus(10), "")
        },
        Transition {
            reason: Some("frequency_cap"),
            variant: None,
            attempt: false,
            to: "deferred",
            ..claim("m_3", T0.plus(10), "")
        },
    ];
    let mut moved = block_on(messages::transition_many(&db, &outcomes)).unwrap();
    moved.sort();
    assert_eq!(moved, ["m_1", "m_2"], "m_3 was no longer open");
    let m1 = block_on(messages::get(&db, "m_1")).unwrap().unwrap();
    assert_eq!(
        (
            m1.state.as_str(),
            m1.provider_id.as_deref(),
            m1.variant.as_deref()
        ),
        ("sent", Some("sg-1"), Some("a"))
    );
    assert_eq!(m1.sent_at, Some(T0.rfc3339()), "the claim's time stays");
    let m2 = block_on(messages::get(&db, "m_2")).unwrap().unwrap();
    assert_eq!(
        (m2.state.as_str(), m2.reason.as_deref(), m2.attempts),
        ("retry", Some("http_500"), 1)
    );
    assert_eq!(m2.next_attempt_at, Some(T0.plus(30_000).rfc3339()));
    let states = |id| -> Vec<(String, i64)> {
        block_on(messages::history(&db, id))
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["state"].as_str().unwrap().to_string(),
                    h["attempt"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(states("m_1"), [("sending".into(), 1), ("sent".into(), 1)]);
    assert_eq!(states("m_2"), [("sending".into(), 1), ("retry".into(), 1)]);
    assert_eq!(states("m_3"), [("suppressed".to_string(), 0)]);
    assert!(block_on(messages::transition_many(&db, &[]))
        .unwrap()
        .is_empty());
}

#[test]
fn a_batch_reads_the_winners_of_its_template_versions_only() {
    let db = Sqlite::open_with_project_schema().unwrap();
    block_on(messages::declare_winner(
        &db,
        "default",
        "whitepaper",
        1,
        "b",
        T0,
    ))
    .unwrap();
    block_on(messages::declare_winner(
        &db,
        "default",
        "whitepaper",
        2,
        "a",
        T0,
    ))
    .unwrap();
    block_on(messages::declare_winner(
        &db, "default", "other", 1, "b", T0,
    ))
    .unwrap();
    let winners = block_on(messages::ab_winners(
        &db,
        "default",
        &[("whitepaper", 1), ("welcome-sms", 1)],
    ))
    .unwrap();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[&("whitepaper".to_string(), 1)], "b");
}

#[test]
fn a_journeys_own_cap_and_its_recent_sends_reach_the_decision() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let journey = r#"{"name": "capped", "entry": {"event": "x"}, "frequency_cap": {"max": 1, "per": "14d"},
        "start": "a", "nodes": {"a": {"type": "send", "channel": "email", "template": "t"}}}"#;
    let templates = |_: &str| Some("email".to_string());
    block_on(super::journeys::save(
        &db, "default", "capped", journey, &templates, T0,
    ))
    .unwrap();
    for (id, journey_id, at) in [
        ("m_j_old", Some("capped"), T0.plus(-3 * Millis::DAY)),
        ("m_other", Some("another"), T0.plus(-Millis::DAY)),
        ("m_plain", None, T0.plus(-2 * Millis::DAY)),
    ] {
        sent_mail(&db, id, "c_a", "sent", at);
        exec(
            &db,
            "UPDATE messages SET journey_id = ?2 WHERE id = ?1",
            vec![id.into(), journey_id.map(str::to_string).into()],
        );
    }
    exec(
        &db,
        "INSERT INTO messages (workspace, id, idempotency_key, contact_id, channel, kind, journey_id, \
         state, created_at, updated_at) VALUES ('default', 'm_next', 'm_next', 'c_a', 'email', 'marketing', \
         'capped', 'queued', 1, 1)",
        vec![],
    );
    let ask = |message_id| messages::FactsAsk {
        contact: "c_a",
        channel: "email",
        message_id,
        now: T0,
    };
    let f = block_on(messages::facts_many(
        &db,
        "default",
        &[ask("m_next"), ask("m_plain")],
        7 * Millis::DAY,
    ))
    .unwrap();
    assert_eq!(f[0].journey_cap, Some((1, 14 * Millis::DAY)));
    assert_eq!(
        f[0].journey_recent,
        [T0.plus(-3 * Millis::DAY)],
        "only its journey's"
    );
    assert_eq!(
        f[0].recent.len(),
        3,
        "the global cap counts every journey's"
    );
    assert_eq!((f[1].journey_cap, f[1].journey_recent.len()), (None, 0));
}

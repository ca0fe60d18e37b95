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

//! Store tests of tags and orders on real SQLite: facts from events, the cron's tag pass in
//! virtual time, announcements exactly once.

use super::sqlite::{block_on, Sqlite};
use super::*;
use crate::event::{Event, IngestMessage, Subject, DEFAULT_WORKSPACE as WS};
use crate::identity::anonymous_contact_id;
use crate::time::Millis;
use serde_json::json;

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = Millis::DAY;
const VID: &str = "v_tagged_customer";

fn event(id: &str, name: &str, at: i64, props: serde_json::Value) -> IngestMessage {
    IngestMessage::Event(Event {
        id: id.into(),
        workspace: WS.into(),
        site: None,
        subject: Subject::Visitor(VID.into()),
        session_id: None,
        name: name.into(),
        properties: props.as_object().cloned().unwrap_or_default(),
        claims: Default::default(),
        consents: Vec::new(),
        occurred_at: Millis(at),
        received_at: Millis(at),
    })
}

fn ingest(db: &Sqlite, batch: &[IngestMessage]) {
    block_on(db.batch(&ingest::batch_statements(batch, None))).unwrap();
}

fn tags_of(db: &Sqlite) -> Vec<(String, String)> {
    let c = anonymous_contact_id(WS, VID);
    block_on(tags::of_contact(db, WS, &c))
        .unwrap()
        .into_iter()
        .map(|t| (t.tag, t.value))
        .collect()
}

fn tag(db: &Sqlite, key: &str) -> Option<String> {
    tags_of(db)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn announcements(db: &Sqlite) -> Vec<(String, serde_json::Value)> {
    let rows = block_on(db.query(&Statement::new(
        "SELECT name, properties FROM events WHERE name LIKE 'tag.%' ORDER BY occurred_at, id",
        vec![],
    )))
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.text("name").unwrap(),
                serde_json::from_str(&r.text("properties").unwrap()).unwrap(),
            )
        })
        .collect()
}

fn pass(db: &Sqlite, at: i64) -> usize {
    block_on(tags::tag_pass(db, WS, Millis(at), 100)).unwrap()
}

#[test]
fn tags_follow_attributes_behaviour_and_orders_over_time() {
    let db = Sqlite::open_with_project_schema().unwrap();
    ingest(
        &db,
        &[event(
            "e1",
            "page",
            T0,
            json!({"url": "https://a.example/"}),
        )],
    );
    assert_eq!(pass(&db, T0 + 1), 0, "a page view changes no tag facts");

    // Attributes arrive with an identify-like trait event; the identify path sets attributes
    // only with claims, so set them as the claim statements would.
    block_on(db.execute(&Statement::new(
        "UPDATE contacts SET attributes = ?1",
        vec![json!({"industry": "manufacturing", "company_size": 800}).to_string().into()],
    )))
    .unwrap();
    ingest(
        &db,
        &[
            event("e2", "login", T0 + DAY, json!({})),
            event(
                "e3",
                "feature_used",
                T0 + DAY,
                json!({"feature": "reports"}),
            ),
            event(
                "e4",
                "feature_used",
                T0 + DAY + 1,
                json!({"feature": "reports"}),
            ),
            event(
                "e5",
                "feature_used",
                T0 + DAY + 2,
                json!({"feature": "export"}),
            ),
            event(
                "e6",
                "order_completed",
                T0 + DAY,
                json!({"order_id": "o-1", "amount": "12,500", "currency": "cny"}),
            ),
            // The same order reported again (another source): counted once.
            event(
                "e7",
                "order_completed",
                T0 + DAY,
                json!({"order_id": "o-1", "amount": 12500}),
            ),
        ],
    );
    assert_eq!(pass(&db, T0 + DAY + 10), 1);
    assert_eq!(tag(&db, "industry").as_deref(), Some("manufacturing"));
    assert_eq!(tag(&db, "company_size").as_deref(), Some("500-999"));
    assert_eq!(tag(&db, "last_login").as_deref(), Some("7d"));
    assert_eq!(tag(&db, "preferred_feature").as_deref(), Some("reports"));
    assert_eq!(tag(&db, "purchase_frequency").as_deref(), Some("one_time"));
    assert_eq!(
        tag(&db, "rfm").as_deref(),
        Some("514"),
        "R 5, F 1, M 4 (12,500)"
    );
    let added = announcements(&db);
    assert_eq!(added.len(), 9, "{added:?}");
    assert!(added.iter().all(|(n, _)| n == "tag.added"));

    // Nothing happens: the pass comes back when a band would change (login 7 days old).
    assert_eq!(pass(&db, T0 + 5 * DAY), 0, "not due yet");
    assert_eq!(pass(&db, T0 + 8 * DAY + 10), 1);
    assert_eq!(tag(&db, "last_login").as_deref(), Some("30d"));
    let changed: Vec<_> = announcements(&db)
        .into_iter()
        .filter(|(n, _)| n == "tag.changed")
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0].1,
        json!({"tag": "last_login", "kind": "behavioural", "from": "7d", "to": "30d"})
    );

    // A year and more later: the order left the window, recency is at the bottom.
    for d in [31, 91, 181, 300, 367] {
        pass(&db, T0 + d * DAY + 10);
    }
    assert_eq!(tag(&db, "rfm").as_deref(), Some("111"));
    assert_eq!(tag(&db, "purchase_frequency").as_deref(), Some("lapsed"));
    let orders =
        block_on(db.query(&Statement::new("SELECT count(*) AS n FROM orders", vec![]))).unwrap();
    assert_eq!(orders[0].int("n"), Some(1));
}

#[test]
fn overlapping_passes_announce_each_change_once() {
    let db = Sqlite::open_with_project_schema().unwrap();
    ingest(&db, &[event("e1", "login", T0, json!({}))]);
    // A second run over the same contact (an overlapping tick, or one repeated after a crash)
    // finds the changes made and announces nothing: each write is conditional on the value
    // differing, and each announcement on that write having changed a row.
    let first = block_on(tags::tag_pass(&db, WS, Millis(T0 + 1), 10)).unwrap();
    block_on(db.execute(&Statement::new(
        "UPDATE contacts SET tags_due_at = 0",
        vec![],
    )))
    .unwrap();
    let second = block_on(tags::tag_pass(&db, WS, Millis(T0 + 2), 10)).unwrap();
    assert_eq!((first, second), (1, 1));
    assert_eq!(announcements(&db).len(), 1);
}

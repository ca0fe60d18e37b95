//! Store tests: the real SQL against real SQLite with the project's migrations.

use super::sqlite::{block_on, Sqlite};
use super::*;
use crate::event::{DropReason, Event, IngestMessage, DEFAULT_WORKSPACE};
use crate::identity::anonymous_contact_id;
use crate::site::Site;
use crate::time::Millis;

fn page(id: &str, vid: &str, url: &str, at: i64) -> IngestMessage {
    let mut properties = serde_json::Map::new();
    properties.insert("url".into(), url.into());
    IngestMessage::Event(Event {
        id: id.into(),
        workspace: DEFAULT_WORKSPACE.into(),
        site: "demo".into(),
        visitor_id: vid.into(),
        name: "page".into(),
        properties,
        occurred_at: Millis(at),
        received_at: Millis(at),
    })
}

fn ingest(db: &Sqlite, batch: &[IngestMessage]) {
    block_on(db.batch(&ingest::batch_statements(batch))).unwrap();
}

#[test]
fn a_page_view_creates_an_anonymous_contact_with_a_timeline() {
    let db = Sqlite::open_with_project_schema().unwrap();
    ingest(
        &db,
        &[page("e1", "v_visitor01", "https://a.example/", 1_000)],
    );

    let c = block_on(contacts::find_by_visitor(
        &db,
        DEFAULT_WORKSPACE,
        "v_visitor01",
    ))
    .unwrap()
    .expect("contact");
    assert_eq!(c.id, anonymous_contact_id(DEFAULT_WORKSPACE, "v_visitor01"));
    assert_eq!(c.lead_status, "anonymous");
    assert_eq!(c.visitor_ids, vec!["v_visitor01".to_string()]);

    let t = block_on(contacts::timeline(
        &db,
        DEFAULT_WORKSPACE,
        &c.id,
        Millis::MAX,
        50,
    ))
    .unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, "page");
    assert_eq!(t[0].properties["url"], "https://a.example/");
}

#[test]
fn redelivered_events_are_recorded_once() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let batch = [
        page("e1", "v_visitor01", "https://a.example/1", 1_000),
        page("e2", "v_visitor01", "https://a.example/2", 2_000),
    ];
    ingest(&db, &batch);
    ingest(&db, &batch);
    ingest(&db, &batch[..1]);
    let s = block_on(ops::status(&db, DEFAULT_WORKSPACE)).unwrap();
    assert_eq!(s.events, 2);
    let n: i64 = db
        .connection()
        .query_row("SELECT count(*) FROM contacts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn first_and_last_seen_span_all_events_in_any_order() {
    let db = Sqlite::open_with_project_schema().unwrap();
    ingest(
        &db,
        &[page("e2", "v_visitor01", "https://a.example/", 5_000)],
    );
    ingest(
        &db,
        &[page("e1", "v_visitor01", "https://a.example/", 1_000)],
    );
    ingest(
        &db,
        &[page("e3", "v_visitor01", "https://a.example/", 3_000)],
    );
    let c = block_on(contacts::find_by_visitor(
        &db,
        DEFAULT_WORKSPACE,
        "v_visitor01",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(c.first_seen_at, Millis(1_000).rfc3339());
    assert_eq!(c.last_seen_at, Millis(5_000).rfc3339());
    let t = block_on(contacts::timeline(
        &db,
        DEFAULT_WORKSPACE,
        &c.id,
        Millis::MAX,
        2,
    ))
    .unwrap();
    let ids: Vec<_> = t.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e2", "e3"], "newest first, limited");
    let older = block_on(contacts::timeline(
        &db,
        DEFAULT_WORKSPACE,
        &c.id,
        Millis(3_000),
        10,
    ))
    .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].id, "e1");
}

#[test]
fn drops_are_counted_per_source_and_reason() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let drop = |reason| IngestMessage::Dropped {
        source: "pixel".into(),
        reason,
        at: Millis(1_000),
    };
    ingest(
        &db,
        &[
            drop(DropReason::InvalidVisitor),
            drop(DropReason::InvalidVisitor),
        ],
    );
    ingest(&db, &[drop(DropReason::UnknownSite)]);
    let s = block_on(ops::status(&db, DEFAULT_WORKSPACE)).unwrap();
    let counts: Vec<_> = s
        .dropped
        .iter()
        .map(|d| (d.reason.as_str(), d.count))
        .collect();
    assert_eq!(counts, [("invalid_visitor", 2), ("unknown_site", 1)]);
}

#[test]
fn a_cron_tick_is_recorded_once_per_scheduled_time() {
    let db = Sqlite::open_with_project_schema().unwrap();
    assert!(block_on(ops::record_cron_run(&db, "*/5 * * * *", Millis(60_000))).unwrap());
    assert!(!block_on(ops::record_cron_run(&db, "*/5 * * * *", Millis(60_000))).unwrap());
    let s = block_on(ops::status(&db, DEFAULT_WORKSPACE)).unwrap();
    assert_eq!(s.last_cron_at.as_deref(), Some("1970-01-01T00:01:00.000Z"));
}

#[test]
fn sites_are_upserted_and_listed() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let mut site = Site {
        key: "demo".into(),
        name: "Demo".into(),
        allowed_origins: vec!["http://127.0.0.1:9000".into()],
    };
    block_on(sites::upsert(&db, DEFAULT_WORKSPACE, &site, Millis(1))).unwrap();
    site.name = "Demo shop".into();
    block_on(sites::upsert(&db, DEFAULT_WORKSPACE, &site, Millis(2))).unwrap();
    let all = block_on(sites::list(&db, DEFAULT_WORKSPACE)).unwrap();
    assert_eq!(all, vec![site]);
}

#[test]
fn one_queue_batch_is_one_round_trip_with_one_statement_per_event() {
    // 100 events from 10 visitors: 2 statements to create each visitor, 1 per event, 1 touch.
    let batch: Vec<_> = (0..100)
        .map(|i| {
            page(
                &format!("e{i}"),
                &format!("v_visitor{:02}", i % 10),
                "https://a.example/",
                i,
            )
        })
        .collect();
    let stmts = ingest::batch_statements(&batch);
    assert_eq!(stmts.len(), 10 * 3 + 100);
    let db = Sqlite::open_with_project_schema().unwrap();
    block_on(db.batch(&stmts)).unwrap();
    assert_eq!(
        block_on(ops::status(&db, DEFAULT_WORKSPACE))
            .unwrap()
            .events,
        100
    );
}

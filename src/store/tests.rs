//! Store tests: the real SQL against real SQLite with the project's migrations.

use super::sqlite::{block_on, Sqlite};
use super::*;
use crate::event::{DropReason, Event, IngestMessage, Subject, DEFAULT_WORKSPACE};
use crate::identity::anonymous_contact_id;
use crate::site::Site;
use crate::time::Millis;

/// An event as ingress would have accepted it, from visitor `vid`.
fn visit(id: &str, vid: &str, name: &str, at: i64, props: serde_json::Value) -> Event {
    Event {
        id: id.into(),
        workspace: DEFAULT_WORKSPACE.into(),
        site: Some("demo".into()),
        subject: Subject::Visitor(vid.into()),
        session_id: None,
        name: name.into(),
        properties: props.as_object().cloned().unwrap_or_default(),
        claims: Default::default(),
        consents: Vec::new(),
        occurred_at: Millis(at),
        received_at: Millis(at),
    }
}

fn page(id: &str, vid: &str, url: &str, at: i64) -> IngestMessage {
    IngestMessage::Event(visit(
        id,
        vid,
        "page",
        at,
        serde_json::json!({ "url": url }),
    ))
}

fn ingest(db: &Sqlite, batch: &[IngestMessage]) {
    block_on(db.batch(&ingest::batch_statements(batch, None))).unwrap();
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
        honor_dnt: true,
    };
    site.honor_dnt = false;
    block_on(sites::upsert(&db, DEFAULT_WORKSPACE, &site, Millis(1))).unwrap();
    site.name = "Demo shop".into();
    block_on(sites::upsert(&db, DEFAULT_WORKSPACE, &site, Millis(2))).unwrap();
    let all = block_on(sites::list(&db, DEFAULT_WORKSPACE)).unwrap();
    assert_eq!(all, vec![site]);
}

#[test]
fn one_queue_batch_is_one_round_trip_with_one_statement_per_event() {
    // 100 page views without campaign data from 10 visitors: 2 statements to create each
    // visitor, 1 per event, 1 touch per visitor.
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
    let stmts = ingest::batch_statements(&batch, None);
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

mod identity {
    use super::*;
    use crate::identity::{claims_from, ClaimInput};
    use crate::pii::{PiiKeys, PiiKind, DEV_PII_KEY};
    use serde_json::json;

    fn keys() -> PiiKeys {
        PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap()
    }

    fn identify(id: &str, vid: &str, email: &str, at: i64) -> IngestMessage {
        let (claims, traits) = claims_from(
            ClaimInput {
                user_id: None,
                email: Some(email),
                phone: None,
                traits: json!({"company": "Acme", "first_name": "Wei"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            },
            Some(&keys()),
            &mut || [5; 12],
        )
        .unwrap();
        IngestMessage::Event(Event {
            claims,
            ..visit(id, vid, "identify", at, serde_json::Value::Object(traits))
        })
    }

    fn contact_of(db: &Sqlite, vid: &str) -> contacts::ContactView {
        block_on(contacts::find_by_visitor(db, DEFAULT_WORKSPACE, vid))
            .unwrap()
            .expect("contact")
    }

    /// The contact's own events, oldest first: without `lead.known`, which the database adds
    /// when a contact first becomes known (tested with the journeys that start from it).
    fn timeline_names(db: &Sqlite, id: &str) -> Vec<String> {
        let mut t = block_on(contacts::timeline(
            db,
            DEFAULT_WORKSPACE,
            id,
            Millis::MAX,
            100,
        ))
        .unwrap();
        t.reverse();
        t.into_iter()
            .map(|e| e.name)
            .filter(|n| n != "lead.known")
            .collect()
    }

    #[test]
    fn identify_makes_the_visitor_known_with_sealed_pii() {
        let db = Sqlite::open_with_project_schema().unwrap();
        ingest(
            &db,
            &[page("p1", "v_device_a1", "https://a.example/", 1_000)],
        );
        ingest(
            &db,
            &[identify("i1", "v_device_a1", "Zhang@Example.com", 2_000)],
        );
        let c = contact_of(&db, "v_device_a1");
        assert_eq!(c.lead_status, "known");
        assert!(c.has_email && !c.has_phone);
        let (cipher, index, attrs): (String, String, String) = db
            .connection()
            .query_row(
                "SELECT email_cipher, email_index, attributes FROM contacts WHERE id = ?1",
                [&c.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            keys().open(PiiKind::Email, &cipher).unwrap(),
            "zhang@example.com",
            "the normalised address is kept"
        );
        assert_eq!(index, keys().index(PiiKind::Email, "zhang@example.com"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&attrs).unwrap(),
            json!({"company": "Acme"})
        );
        assert_eq!(timeline_names(&db, &c.id), ["page", "identify"]);
    }

    #[test]
    fn a_second_device_merges_into_the_known_contact_keeping_all_history() {
        let db = Sqlite::open_with_project_schema().unwrap();
        ingest(
            &db,
            &[page("a1", "v_device_a1", "https://a.example/", 1_000)],
        );
        ingest(
            &db,
            &[identify("a2", "v_device_a1", "zhang@example.com", 2_000)],
        );
        let known = contact_of(&db, "v_device_a1").id;
        // Another device browses anonymously, then identifies with the same email.
        ingest(
            &db,
            &[page("b1", "v_device_b1", "https://a.example/cases/1", 500)],
        );
        let anon_b = contact_of(&db, "v_device_b1").id;
        assert_ne!(anon_b, known);
        let merge = [identify("b2", "v_device_b1", "ZHANG@example.com", 3_000)];
        ingest(&db, &merge);
        ingest(&db, &merge); // redelivery changes nothing

        let c = contact_of(&db, "v_device_b1");
        assert_eq!(c.id, known, "both devices resolve to one contact");
        assert_eq!(c.visitor_ids.len(), 2);
        assert_eq!(
            c.first_seen_at,
            Millis(500).rfc3339(),
            "the merged history's span"
        );
        assert_eq!(
            timeline_names(&db, &known),
            ["page", "page", "identify", "identify"]
        );
        // Nothing deleted: the anonymous contact remains, marked as merged.
        let (merged_into, merges): (String, i64) = db
            .connection()
            .query_row(
                "SELECT merged_into, (SELECT count(*) FROM merges) FROM contacts WHERE id = ?1",
                [&anon_b],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(merged_into, known);
        assert_eq!(merges, 1);
        // Later events of device B land on the known contact.
        ingest(
            &db,
            &[page(
                "b3",
                "v_device_b1",
                "https://a.example/pricing",
                4_000,
            )],
        );
        assert_eq!(timeline_names(&db, &known).len(), 5);
    }

    #[test]
    fn two_known_contacts_are_never_merged_automatically() {
        let db = Sqlite::open_with_project_schema().unwrap();
        ingest(
            &db,
            &[identify("a1", "v_device_a1", "a@example.com", 1_000)],
        );
        ingest(
            &db,
            &[identify("b1", "v_device_b1", "b@example.com", 1_000)],
        );
        let b = contact_of(&db, "v_device_b1").id;
        // Person B signs in as A on B's device: the device moves, B's history stays B's.
        ingest(
            &db,
            &[identify("b2", "v_device_b1", "a@example.com", 2_000)],
        );
        let a = contact_of(&db, "v_device_a1").id;
        assert_eq!(contact_of(&db, "v_device_b1").id, a);
        assert_eq!(timeline_names(&db, &b), ["identify"]);
        let merges: i64 = db
            .connection()
            .query_row("SELECT count(*) FROM merges", [], |r| r.get(0))
            .unwrap();
        assert_eq!(merges, 0);
    }

    #[test]
    fn first_and_last_touch_follow_campaigns_and_external_referrers() {
        let db = Sqlite::open_with_project_schema().unwrap();
        let with = |id: &str, at: i64, props: serde_json::Value| {
            IngestMessage::Event(visit(id, "v_touch_001", "page", at, props))
        };
        ingest(
            &db,
            &[with(
                "t2",
                2_000,
                json!({"url": "https://a.example/", "referrer": "https://www.baidu.com/s?wd=x"}),
            )],
        );
        ingest(
            &db,
            &[with(
                "t1",
                1_000,
                json!({"url": "https://a.example/?utm_source=wechat", "utm_source": "wechat", "utm_campaign": "618"}),
            )],
        );
        ingest(
            &db,
            &[with(
                "t3",
                3_000,
                json!({"url": "https://a.example/b", "referrer": "https://a.example/"}),
            )],
        );
        let (first, last): (String, String) = db
            .connection()
            .query_row("SELECT first_touch, last_touch FROM contacts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let first: serde_json::Value = serde_json::from_str(&first).unwrap();
        let last: serde_json::Value = serde_json::from_str(&last).unwrap();
        assert_eq!(first["source"], "wechat");
        assert_eq!(first["campaign"], "618");
        assert_eq!(
            last["source"], "www.baidu.com",
            "internal navigation is not a touch"
        );
        assert_eq!(last["medium"], "referral");
    }

    /// The touch text is what serializing the touch as a serde_json map gave.
    #[test]
    fn touch_text_is_the_touch_map_as_json() {
        fn touch_map(e: &Event) -> Option<serde_json::Value> {
            use serde_json::{Map, Value};
            if e.name != "page" {
                return None;
            }
            let get = |k: &str| e.properties.get(k).and_then(Value::as_str);
            fn host(u: &str) -> Option<&str> {
                let rest = u.split_once("://")?.1;
                let host = rest.split(['/', '?', '#']).next()?;
                (!host.is_empty()).then_some(host)
            }
            let (url, referrer) = (get("url"), get("referrer"));
            let same_site = match (url.and_then(host), referrer.and_then(host)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            let source = get("utm_source").map(str::to_string).or_else(|| {
                referrer
                    .filter(|_| !same_site)
                    .and_then(host)
                    .map(str::to_string)
            })?;
            let mut touch = Map::new();
            touch.insert("source".into(), source.into());
            for (k, utm) in [
                ("medium", "utm_medium"),
                ("campaign", "utm_campaign"),
                ("term", "utm_term"),
                ("content", "utm_content"),
            ] {
                if let Some(v) = get(utm) {
                    touch.insert(k.into(), v.into());
                }
            }
            if !touch.contains_key("medium") && get("utm_source").is_none() {
                touch.insert("medium".into(), "referral".into());
            }
            if let Some(r) = referrer {
                touch.insert("referrer".into(), r.into());
            }
            if let Some(u) = url {
                touch.insert("landing_page".into(), u.into());
            }
            Some(Value::Object(touch))
        }
        let urls = [
            None,
            Some(json!("https://a.example/x?q=\"1\"")),
            Some(json!("https://b.example")),
            Some(json!(7)),
        ];
        let referrers = [
            None,
            Some(json!("https://a.example/")),
            Some(json!("https://www.baidu.com/s?wd=下载")),
            Some(json!("not a url")),
            Some(json!("https:///x")),
        ];
        let utms = [
            json!({}),
            json!({"utm_source": "wechat"}),
            json!({"utm_source": "wechat", "utm_medium": "social", "utm_campaign": "618", "utm_term": "t\u{1}", "utm_content": "c"}),
            json!({"utm_medium": "email", "utm_term": "x"}),
            json!({"utm_source": 5, "utm_campaign": "c"}),
        ];
        let mut cases = 0;
        for name in ["page", "track"] {
            for url in &urls {
                for referrer in &referrers {
                    for utm in &utms {
                        let mut props = utm.clone();
                        if let Some(u) = url {
                            props["url"] = u.clone();
                        }
                        if let Some(r) = referrer {
                            props["referrer"] = r.clone();
                        }
                        let e = visit("t", "v_touch_001", name, 1, props);
                        let expected = touch_map(&e).map(|t| serde_json::to_string(&t).unwrap());
                        assert_eq!(super::ingest::touch_of(&e), expected, "{e:?}");
                        cases += usize::from(expected.is_some());
                    }
                }
            }
        }
        assert!(cases > 20, "{cases}");
    }
}

mod scoring_flow {
    use super::*;
    use crate::scoring::Model;
    use serde_json::json;

    const DAY: i64 = Millis::DAY;
    const T0: i64 = 1_781_740_800_000; // 2026-06-18T00:00:00Z

    fn model() -> Model {
        let text =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.json")).unwrap();
        Model::parse(&text).unwrap()
    }

    fn ev(id: &str, name: &str, at: i64, props: serde_json::Value) -> IngestMessage {
        IngestMessage::Event(visit(id, "v_scored_01", name, at, props))
    }

    fn run(db: &Sqlite, m: &Model, batch: &[IngestMessage]) {
        block_on(db.batch(&ingest::batch_statements(batch, Some(m)))).unwrap();
    }

    fn score(db: &Sqlite) -> (i64, String) {
        db.connection()
            .query_row("SELECT score, lead_status FROM contacts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
    }

    fn internal(db: &Sqlite, name: &str) -> i64 {
        db.connection()
            .query_row("SELECT count(*) FROM events WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[test]
    fn the_acceptance_scenario_scores_promotes_and_decays() {
        let db = Sqlite::open_with_project_schema().unwrap();
        let m = model();
        let case = |i: i64| {
            ev(
                &format!("case{i}"),
                "page",
                T0 + i * 60_000,
                json!({"url": format!("https://a.example/cases/{i}")}),
            )
        };
        run(&db, &m, &[case(1), case(2), case(3)]);
        run(
            &db,
            &m,
            &[ev(
                "wp",
                "whitepaper_downloaded",
                T0 + 4 * 60_000,
                json!({}),
            )],
        );
        assert_eq!(score(&db), (11, "anonymous".into()));
        let webinar = [ev("web1", "webinar_attended", T0 + 5 * 60_000, json!({}))];
        run(&db, &m, &webinar);
        run(&db, &m, &webinar); // redelivery awards nothing
        assert_eq!(score(&db), (21, "mql".into()));
        assert_eq!(internal(&db, "lead.mql"), 1);

        run(
            &db,
            &m,
            &[ev(
                "form",
                "identify",
                T0 + 6 * 60_000,
                json!({"job_title": "总监", "company_size": "800"}),
            )],
        );
        assert_eq!(score(&db).0, 29);
        run(
            &db,
            &m,
            &[
                ev(
                    "open",
                    "email_opened",
                    T0 + 7 * 60_000,
                    json!({"machine": false}),
                ),
                ev(
                    "proxy",
                    "email_opened",
                    T0 + 7 * 60_000,
                    json!({"machine": true}),
                ),
                ev(
                    "click",
                    "email_clicked",
                    T0 + 8 * 60_000,
                    json!({"machine": false}),
                ),
                ev("cs", "service_consulted", T0 + 9 * 60_000, json!({})),
            ],
        );
        assert_eq!(score(&db).0, 35);
        run(
            &db,
            &m,
            &[ev("web2", "webinar_attended", T0 + 10 * 60_000, json!({}))],
        );
        assert_eq!(score(&db), (45, "sql".into()));
        assert_eq!(
            (internal(&db, "lead.mql"), internal(&db, "lead.sql")),
            (1, 1)
        );
        assert_eq!(
            internal(&db, "lead.sales_ready"),
            0,
            "no industry report yet"
        );

        run(
            &db,
            &m,
            &[ev(
                "report",
                "report_downloaded",
                T0 + 11 * 60_000,
                json!({}),
            )],
        );
        assert_eq!(internal(&db, "lead.sales_ready"), 1);
        run(
            &db,
            &m,
            &[ev(
                "report2",
                "report_downloaded",
                T0 + 12 * 60_000,
                json!({}),
            )],
        );
        assert_eq!(internal(&db, "lead.sales_ready"), 1, "once");
        assert_eq!(score(&db).0, 45, "reports earn no points");

        // Thirty idle days later the cron decays behaviour and engagement points by half.
        let later = Millis(T0 + 12 * 60_000 + 30 * DAY);
        let n = block_on(crate::store::scoring::decay_pass(
            &db,
            &m,
            DEFAULT_WORKSPACE,
            later,
            100,
        ))
        .unwrap();
        assert_eq!(n, 1);
        // behaviour 6 + 5 + 20 = 31, engagement 6: 37 decaying → -18; attributes 8 stay.
        assert_eq!(score(&db), (27, "sql".into()), "decay never demotes");
        let again = block_on(crate::store::scoring::decay_pass(
            &db,
            &m,
            DEFAULT_WORKSPACE,
            later.plus(DAY),
            100,
        ))
        .unwrap();
        assert_eq!(again, 0, "one decay per idle period");

        let c = contact_of_scored(&db);
        let view = block_on(crate::store::scoring::ledger(&db, DEFAULT_WORKSPACE, &c)).unwrap();
        assert_eq!(view.score, 27, "the ledger explains every point");
        assert_eq!(view.by_dimension["attribute"], 8);
        assert_eq!(view.by_dimension["decay"], -18);
        assert!(view.ledger.iter().all(|l| l.model_version == 1));
    }

    #[test]
    fn page_views_score_at_most_five_times_a_day() {
        let db = Sqlite::open_with_project_schema().unwrap();
        let m = model();
        let pages: Vec<_> = (0..8)
            .map(|i| {
                ev(
                    &format!("p{i}"),
                    "page",
                    T0 + i * 1000,
                    json!({"url": "https://a.example/"}),
                )
            })
            .collect();
        run(&db, &m, &pages[..4]);
        run(&db, &m, &pages[4..]);
        assert_eq!(score(&db).0, 10);
        run(
            &db,
            &m,
            &[ev(
                "next_day",
                "page",
                T0 + DAY,
                json!({"url": "https://a.example/"}),
            )],
        );
        assert_eq!(score(&db).0, 12);
    }

    fn contact_of_scored(db: &Sqlite) -> String {
        db.connection()
            .query_row("SELECT id FROM contacts", [], |r| r.get(0))
            .unwrap()
    }
}

mod lifecycle_flow {
    use super::*;
    use crate::store::lifecycle::stage_pass;
    use serde_json::json;

    const DAY: i64 = Millis::DAY;
    const T0: i64 = 1_781_740_800_000;

    fn ev(id: &str, name: &str, at: i64) -> IngestMessage {
        IngestMessage::Event(Event {
            site: None,
            ..visit(id, "v_customer_1", name, at, json!({}))
        })
    }

    fn stage_and_events(db: &Sqlite) -> (Option<String>, Vec<String>) {
        let st: Option<String> = db
            .connection()
            .query_row("SELECT lifecycle_stage FROM contacts", [], |r| r.get(0))
            .unwrap();
        let conn = db.connection();
        let mut s = conn
            .prepare("SELECT name FROM events WHERE name LIKE 'lifecycle.%' ORDER BY occurred_at")
            .unwrap();
        let names = s
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (st, names)
    }

    fn tick(db: &Sqlite, at: i64) -> usize {
        block_on(stage_pass(db, DEFAULT_WORKSPACE, Millis(at), 100)).unwrap()
    }

    #[test]
    fn a_customer_moves_through_the_stages_in_virtual_time() {
        let db = Sqlite::open_with_project_schema().unwrap();
        ingest(&db, &[ev("s", "signed_up", T0)]);
        assert_eq!(tick(&db, T0 + 60_000), 1);
        assert_eq!(
            stage_and_events(&db),
            (Some("new".into()), vec!["lifecycle.new".into()])
        );
        assert_eq!(
            tick(&db, T0 + DAY),
            0,
            "nothing due until time can change the stage"
        );

        ingest(
            &db,
            &[
                ev("l1", "login", T0 + 2 * DAY),
                ev("l2", "login", T0 + 3 * DAY),
                ev("l3", "login", T0 + 4 * DAY),
                ev("o1", "order_completed", T0 + 4 * DAY),
            ],
        );
        tick(&db, T0 + 5 * DAY);
        assert_eq!(stage_and_events(&db).0.as_deref(), Some("active"));

        // Idle from day 4: churn risk at day 34, dormant at day 94, each announced once even
        // when two cron runs overlap on the same instant.
        tick(&db, T0 + 34 * DAY);
        tick(&db, T0 + 34 * DAY);
        assert_eq!(stage_and_events(&db).0.as_deref(), Some("churn_risk"));
        tick(&db, T0 + 94 * DAY);
        let (stage, events) = stage_and_events(&db);
        assert_eq!(stage.as_deref(), Some("dormant"));
        assert_eq!(
            events,
            [
                "lifecycle.new",
                "lifecycle.active",
                "lifecycle.churn_risk",
                "lifecycle.dormant"
            ]
        );
        let transitions: i64 = db
            .connection()
            .query_row("SELECT count(*) FROM lifecycle_transitions", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(transitions, 4);
    }
}

mod recompute {
    use super::*;
    use crate::scoring::Model;
    use crate::store::scoring::{active_model, recompute_pass, save_model};
    use serde_json::json;

    const T0: i64 = 1_781_740_800_000;

    fn seeded() -> Model {
        let text =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.json")).unwrap();
        Model::parse(&text).unwrap()
    }

    fn page_of(vid: &str, i: i64) -> IngestMessage {
        let name = if i == 0 { "webinar_attended" } else { "page" };
        let props = json!({"url": "https://a.example/cases/1"});
        IngestMessage::Event(visit(
            &format!("{vid}_{i}"),
            vid,
            name,
            T0 + i * 1000,
            props,
        ))
    }

    fn scores(db: &Sqlite) -> Vec<(i64, String)> {
        let conn = db.connection();
        let mut s = conn
            .prepare("SELECT score, lead_status FROM contacts ORDER BY id")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_new_model_rescoring_history_in_pages_without_double_counting() {
        let db = Sqlite::open_with_project_schema().unwrap();
        let v1 = block_on(save_model(&db, DEFAULT_WORKSPACE, &seeded(), Millis(T0))).unwrap();
        // Three contacts, each a webinar (+10) and 7 page views (5 counted a day: +10).
        for vid in ["v_recompute_a", "v_recompute_b", "v_recompute_c"] {
            let batch: Vec<_> = (0..8).map(|i| page_of(vid, i)).collect();
            block_on(db.batch(&ingest::batch_statements(&batch, Some(&v1)))).unwrap();
        }
        assert_eq!(scores(&db), vec![(20, "mql".to_string()); 3]);

        // Page views now count +3 with no daily cap.
        let mut doc = seeded();
        doc.rules[0].points = 3;
        doc.rules[0].repeat = crate::scoring::Repeat::Unlimited;
        let v2 = block_on(save_model(&db, DEFAULT_WORKSPACE, &doc, Millis(T0 + 1))).unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(
            block_on(recompute_pass(
                &db,
                &v1,
                DEFAULT_WORKSPACE,
                Millis(T0 + 2),
                2
            ))
            .unwrap(),
            0,
            "waits for the new model"
        );
        let now = Millis(T0 + 3);
        assert_eq!(
            block_on(recompute_pass(&db, &v2, DEFAULT_WORKSPACE, now, 2)).unwrap(),
            2
        );
        assert_eq!(
            block_on(recompute_pass(&db, &v2, DEFAULT_WORKSPACE, now, 2)).unwrap(),
            1
        );
        assert_eq!(
            block_on(recompute_pass(&db, &v2, DEFAULT_WORKSPACE, now, 2)).unwrap(),
            0
        );
        // 10 + 7 × 3 = 31 each, counted once, all under version 2.
        assert_eq!(scores(&db), vec![(31, "mql".to_string()); 3]);
        let old: i64 = db
            .connection()
            .query_row(
                "SELECT count(*) FROM points WHERE model_version = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0);
        assert_eq!(
            block_on(active_model(&db, DEFAULT_WORKSPACE))
                .unwrap()
                .unwrap()
                .version,
            2
        );
        // Finished: later passes do nothing.
        assert_eq!(
            block_on(recompute_pass(&db, &v2, DEFAULT_WORKSPACE, now, 2)).unwrap(),
            0
        );
    }
}

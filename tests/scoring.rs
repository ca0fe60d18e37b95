//! Lead scoring on the running stack, through real ingress: the acceptance scenario.

use crate::support::*;
use crate::tracking::beacon;
use libtest_mimic::Failed;
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn contact(s: &Stack, vid: &str) -> Option<Value> {
    admin_get(&format!("{}/v1/contacts?vid={vid}", s.api())).json()["contacts"]
        .get(0)
        .cloned()
}

fn score(s: &Stack, id: &str) -> Value {
    admin_get(&format!("{}/v1/contacts/{id}/score", s.api())).json()
}

fn count(s: &Stack, id: &str, name: &str) -> usize {
    let t = admin_get(&format!("{}/v1/contacts/{id}/timeline?limit=500", s.api())).json();
    t["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["name"] == name)
        .count()
}

/// Posts the demo form as the landing page's browser would, from client address `ip`.
fn post_demo_form(s: &Stack, form: &Value, ip: &str) {
    let a = request(
        "POST",
        &format!("{}/f/demo-signup", s.forms()),
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://127.0.0.1:18080"),
            ("User-Agent", CHROME),
            ("CF-Connecting-IP", ip),
        ],
        Some(form.to_string().as_bytes()),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}

fn wait_score(s: &Stack, id: &str, want: i64) -> Value {
    eventually(&format!("score {want}"), || {
        let v = score(s, id);
        (v["score"] == want).then_some(v)
    })
}

pub fn a_lead_is_scored_promoted_and_decayed_as_specified(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("scored");
    let send = |events: Value| {
        let a = beacon(
            s,
            &json!({"site": "demo", "vid": vid, "events": events}),
            &[],
        );
        assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    };
    let ev = |n: &str, t: &str, extra: Value| {
        let mut e = json!({"id": format!("{vid}_{n}"), "type": t});
        if let (Some(o), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        e
    };
    send(json!([
        ev(
            "c1",
            "page",
            json!({"url": "http://127.0.0.1:8080/cases/steel"})
        ),
        ev(
            "c2",
            "page",
            json!({"url": "http://127.0.0.1:8080/cases/bank"})
        ),
        ev(
            "c3",
            "page",
            json!({"url": "http://127.0.0.1:8080/cases/retail"})
        ),
        ev("wp", "track", json!({"name": "whitepaper_downloaded"})),
        ev("w1", "track", json!({"name": "webinar_attended"})),
    ]));
    let c = eventually("the scored contact", || contact(s, &vid));
    let id = c["id"].as_str().unwrap_or_default().to_string();
    wait_score(s, &id, 21);
    let c = eventually("MQL", || {
        contact(s, &vid).filter(|c| c["lead_status"] == "mql")
    });
    assert_eq!(c["score"], 21);
    assert_eq!(count(s, &id, "lead.mql"), 1);

    // The demo form, posted as the landing page's browser would (the snippet adds `_kvid`): a
    // director (总监) at an 800-person company (the 500–999 option).
    let form = json!({
        "name": "王总监", "email": format!("{vid}@example.com"), "company": "Acme Steel",
        "industry": "manufacturing", "company_size": "500", "job_title": "总监",
        "consent_email": "on", "_kvid": vid,
    });
    post_demo_form(s, &form, "10.77.0.1");
    wait_score(s, &id, 29);

    let key = b"dev-link-key";
    let open = kindling::link::sign(
        &kindling::link::LinkClaims {
            m: "msg_score".into(),
            c: id.clone(),
            u: None,
        },
        key,
    );
    let click = kindling::link::sign(
        &kindling::link::LinkClaims {
            m: "msg_score".into(),
            c: id.clone(),
            u: Some("https://shop.example/".into()),
        },
        key,
    );
    assert_eq!(
        request(
            "GET",
            &format!("{}/o/{open}.gif", s.track()),
            &[("User-Agent", CHROME)],
            None
        )
        .status,
        200
    );
    assert_eq!(
        request(
            "GET",
            &format!("{}/c/{click}", s.track()),
            &[("User-Agent", CHROME)],
            None
        )
        .status,
        302
    );
    send(json!([ev(
        "cs",
        "track",
        json!({"name": "service_consulted"})
    )]));
    wait_score(s, &id, 35);

    send(json!([ev(
        "w2",
        "track",
        json!({"name": "webinar_attended"})
    )]));
    wait_score(s, &id, 45);
    eventually("SQL", || {
        contact(s, &vid).filter(|c| c["lead_status"] == "sql")
    });
    assert_eq!(
        (count(s, &id, "lead.mql"), count(s, &id, "lead.sql")),
        (1, 1)
    );
    assert_eq!(
        count(s, &id, "lead.sales_ready"),
        0,
        "no industry report yet"
    );

    send(json!([ev(
        "r1",
        "track",
        json!({"name": "report_downloaded"})
    )]));
    eventually("sales ready", || {
        (count(s, &id, "lead.sales_ready") == 1).then_some(())
    });
    send(json!([ev(
        "r2",
        "track",
        json!({"name": "report_downloaded"})
    )]));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(count(s, &id, "lead.sales_ready"), 1, "once");
    assert_eq!(score(s, &id)["score"], 45);

    // Thirty idle days later, in virtual time through the cron.
    let now = now_ms();
    let later = now + 31 * kindling::Millis::DAY;
    let a = run_cron(s, later);
    assert_eq!(a.status, 200);
    let v = wait_score(s, &id, 27);
    assert_eq!(
        v["by_dimension"]["attribute"], 8,
        "attribute points never decay"
    );
    assert_eq!(v["by_dimension"]["decay"], -18);
    let ledger_sum: i64 = v["ledger"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["delta"].as_i64())
        .sum();
    assert_eq!(ledger_sum, 27, "the ledger explains every point");
    assert_eq!(
        contact(s, &vid).unwrap_or_default()["lead_status"],
        "sql",
        "decay never demotes"
    );
    Ok(())
}

pub fn invalid_models_are_refused_and_the_active_one_stays(s: &Stack) -> Result<(), Failed> {
    let auth = format!("Bearer {TOKEN}");
    let put = |body: &[u8]| {
        request(
            "PUT",
            &format!("{}/v1/scoring", s.api()),
            &[("Authorization", &auth)],
            Some(body),
        )
    };
    let before = admin_get(&format!("{}/v1/scoring", s.api()));
    assert_eq!(before.status, 200);
    let seeded: Value = serde_json::from_slice(&std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/scoring.json"
    ))?)?;
    let mut bad_thresholds = seeded.clone();
    bad_thresholds["thresholds"] = json!({"mql": 40, "sql": 20});
    let mut negative = seeded.clone();
    negative["thresholds"] = json!({"mql": -1, "sql": 20});
    let mut unknown_field = seeded.clone();
    unknown_field["rules"][0]["evnt"] = json!("page");
    let mut empty = seeded.clone();
    empty["rules"] = json!([]);
    let mut dup = seeded.clone();
    dup["rules"][1]["id"] = json!("website_visit");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bad_thresholds.to_string().into_bytes(), "thresholds.mql"),
        (negative.to_string().into_bytes(), "thresholds"),
        (unknown_field.to_string().into_bytes(), "body"),
        (empty.to_string().into_bytes(), "rules"),
        (dup.to_string().into_bytes(), "rules[1].id"),
        (vec![b' '; 1024 * 1024], "body"),
    ];
    for (body, field) in cases {
        let a = put(&body);
        assert_eq!(a.status, 400, "{field}");
        assert_eq!(a.json()["field"], field);
    }
    let after = admin_get(&format!("{}/v1/scoring", s.api()));
    assert_eq!(
        after.json()["version"],
        before.json()["version"],
        "the active model stays in force"
    );
    Ok(())
}

/// Life-cycle stages through real ingress and the cron in virtual time.
pub fn a_customer_becomes_new_then_dormant_in_virtual_time(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("lifecycle");
    let body = json!({"site": "demo", "vid": vid, "events": [{"id": format!("{vid}_signup"), "type": "track", "name": "signed_up"}]});
    assert_eq!(beacon(s, &body, &[]).status, 202);
    let c = eventually("the customer", || contact(s, &vid));
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let now = now_ms();
    let cron = |at: i64| {
        let a = run_cron(s, at);
        assert_eq!(a.status, 200);
    };
    cron(now + 60_000);
    let c = eventually("stage new", || {
        contact(s, &vid).filter(|c| c["lifecycle_stage"] == "new")
    });
    assert_eq!(c["id"], id.as_str());
    cron(now + 95 * kindling::Millis::DAY);
    eventually("stage dormant", || {
        contact(s, &vid).filter(|c| c["lifecycle_stage"] == "dormant")
    });
    assert_eq!(count(s, &id, "lifecycle.new"), 1);
    assert_eq!(count(s, &id, "lifecycle.dormant"), 1);
    Ok(())
}

/// A model change rescores history on the cron: page views re-counted under the new rule.
pub fn a_model_change_rescores_history_on_the_cron(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("rescore");
    let events: Vec<Value> = (0..7)
        .map(|i| json!({"id": format!("{vid}_{i}"), "type": "page", "url": "http://127.0.0.1:8080/"}))
        .collect();
    assert_eq!(
        beacon(
            s,
            &json!({"site": "demo", "vid": vid, "events": events}),
            &[]
        )
        .status,
        202
    );
    let c = eventually("the contact", || contact(s, &vid));
    let id = c["id"].as_str().unwrap_or_default().to_string();
    wait_score(s, &id, 10);

    let auth = format!("Bearer {TOKEN}");
    let seeded = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.json"))?;
    let mut model: Value = serde_json::from_slice(&seeded)?;
    model["rules"][0]["points"] = json!(3);
    model["rules"][0]["repeat"] = json!("unlimited");
    let put = |body: &[u8]| {
        request(
            "PUT",
            &format!("{}/v1/scoring", s.api()),
            &[("Authorization", &auth)],
            Some(body),
        )
    };
    assert_eq!(put(model.to_string().as_bytes()).status, 200);
    let rescored = eventually("the rescoring", || {
        let now = now_ms();
        run_cron(s, now);
        let v = score(s, &id);
        (v["score"] == 21).then_some(v)
    });
    let ledger = rescored["ledger"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        ledger.len(),
        7,
        "each page view once, under the new version"
    );
    assert!(ledger.iter().all(|l| l["delta"] == 3));
    assert_eq!(
        put(&seeded).status,
        200,
        "the seeded model back for the tests after this one"
    );
    Ok(())
}

/// Tags on the running stack: static ones from the demo form, behavioural ones from the
/// snippet's events, RFM from an order posted at /v1/orders — recomputed by the cron in virtual
/// time, every change on the timeline as a `tag.*` event.
pub fn tags_follow_forms_behaviour_and_orders_on_the_cron(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("tagged");
    let email = format!("{}@tags.example", vid.to_lowercase());
    let form = json!({
        "name": "Tag Test", "email": email, "company": "Shop", "industry": "retail",
        "company_size": "1000", "_kvid": vid,
    });
    post_demo_form(s, &form, "10.78.0.1");
    let now = now_ms();
    let events = json!([
        {"id": format!("{vid}_l1"), "type": "track", "name": "login", "ts": now},
        {"id": format!("{vid}_f1"), "type": "track", "name": "feature_used", "props": {"feature": "dashboards"}, "ts": now},
        {"id": format!("{vid}_f2"), "type": "track", "name": "feature_used", "props": {"feature": "dashboards"}, "ts": now},
        {"id": format!("{vid}_f3"), "type": "track", "name": "feature_used", "props": {"feature": "exports"}, "ts": now},
    ]);
    let b = beacon(
        s,
        &json!({"site": "demo", "vid": vid, "events": events}),
        &[],
    );
    assert_eq!(b.status, 202, "{}", String::from_utf8_lossy(&b.body));
    let c = eventually("the form's contact", || {
        contact(s, &vid).filter(|c| c["has_email"] == true)
    });
    let id = c["id"].as_str().unwrap_or_default().to_string();

    let post_order = |body: Value| admin_send("POST", &format!("{}/v1/orders", s.api()), &body);
    let order = json!({"order_id": format!("SO-{vid}"), "email": email, "amount": 60000, "ordered_at": now});
    let a = post_order(order.clone());
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["contact_id"], id.as_str());
    assert_eq!(
        post_order(order).status,
        202,
        "the same order again is accepted"
    );
    let bad = post_order(json!({"order_id": "x", "email": email, "amount": -5}));
    assert_eq!(
        (bad.status, bad.json()["field"].clone()),
        (400, json!("amount"))
    );
    let nobody =
        post_order(json!({"order_id": "y", "email": "nobody@nowhere.example", "amount": 5}));
    assert_eq!(nobody.status, 404);
    eventually("the order event", || {
        (count(s, &id, "order_completed") == 1).then_some(())
    });

    let tags_at = |at: i64| {
        assert_eq!(run_cron(s, at).status, 200);
        let t = admin_get(&format!("{}/v1/contacts/{id}/tags", s.api())).json();
        t["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["tag"].as_str().unwrap_or_default().to_string(),
                    t["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let tags = tags_at(now + 60_000);
    assert_eq!(tags.get("industry").map(String::as_str), Some("retail"));
    assert_eq!(tags.get("company_size").map(String::as_str), Some("1000+"));
    assert_eq!(tags.get("last_login").map(String::as_str), Some("7d"));
    assert_eq!(
        tags.get("preferred_feature").map(String::as_str),
        Some("dashboards")
    );
    assert_eq!(
        tags.get("purchase_frequency").map(String::as_str),
        Some("one_time")
    );
    assert_eq!(tags.get("rfm").map(String::as_str), Some("515"), "{tags:?}");

    // Forty idle days later: recency has aged, the rest stays.
    let later = tags_at(now + 40 * 86_400_000);
    assert_eq!(later.get("rfm").map(String::as_str), Some("415"));
    assert_eq!(later.get("last_login").map(String::as_str), Some("90d"));
    assert_eq!(count(s, &id, "tag.added"), tags.len());
    assert!(count(s, &id, "tag.changed") >= 2);
    Ok(())
}

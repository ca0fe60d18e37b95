//! Tracking and identity on the running stack: beacons, identify and merges, bots, privacy
//! signals, email links, server-side ingest, and no plaintext PII at rest.

use crate::support::*;
use libtest_mimic::Failed;
use serde_json::{json, Value};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const ORIGIN: &str = "http://127.0.0.1:8080";

pub fn beacon(s: &Stack, body: &Value, extra: &[(&str, &str)]) -> Answer {
    let mut headers = vec![
        ("Content-Type", "text/plain"),
        ("User-Agent", CHROME),
        ("Origin", ORIGIN),
    ];
    headers.extend_from_slice(extra);
    request(
        "POST",
        &format!("{}/e", s.track()),
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

fn contact(s: &Stack, vid: &str) -> Option<Value> {
    let a = admin_get(&format!("{}/v1/contacts?vid={vid}", s.api()));
    a.json()["contacts"].get(0).cloned()
}

fn timeline(s: &Stack, id: &str) -> Vec<Value> {
    let a = admin_get(&format!("{}/v1/contacts/{id}/timeline?limit=500", s.api()));
    a.json()["events"].as_array().cloned().unwrap_or_default()
}

fn drops(s: &Stack, source: &str, reason: &str) -> i64 {
    let st = admin_get(&format!("{}/v1/system/status", s.api())).json();
    st["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["source"] == source && d["reason"] == reason)
        .map(|d| d["count"].as_i64().unwrap_or(0))
        .sum()
}

fn names(events: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = events
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    n.sort();
    n
}

pub fn beacon_events_identify_and_attribution(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("beacon");
    let email = format!("{}@example.com", fresh_visitor("lead").to_lowercase());
    let body = json!({"site": "demo", "vid": vid, "sid": "s_session_01", "events": [
        {"id": format!("{vid}_e1"), "type": "page", "ts": 0, "url": "http://127.0.0.1:8080/?utm_source=newsletter&utm_campaign=launch",
         "ref": "https://www.baidu.com/", "title": "Home", "utm": {"source": "newsletter", "campaign": "launch"}},
        {"id": format!("{vid}_e2"), "type": "track", "name": "whitepaper_downloaded", "props": {"title": "Industry whitepaper"}},
        {"id": format!("{vid}_e3"), "type": "identify", "email": email, "traits": {"company": "Acme", "first_name": "Wei", "job_title": "Director"}},
        {"id": format!("{vid}_e4"), "type": "track", "name": ""}
    ]});
    let a = beacon(s, &body, &[]);
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let answer = a.json();
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["rejected"][0]["field"], "events[3].name");
    assert_eq!(a.header("access-control-allow-origin"), Some(ORIGIN));
    // A retried beacon (same ids) is counted once.
    assert_eq!(beacon(s, &body, &[]).status, 202);

    let c = eventually("the identified contact", || {
        contact(s, &vid).filter(|c| c["lead_status"] == "known")
    });
    assert_eq!(c["has_email"], true);
    assert_eq!(
        c["attributes"],
        json!({"company": "Acme", "job_title": "Director"})
    );
    assert_eq!(c["first_touch"]["source"], "newsletter");
    assert_eq!(c["first_touch"]["campaign"], "launch");
    let id = c["id"].as_str().unwrap_or_default().to_string();
    // Three events of the visitor's, and `lead.known`: the contact became known.
    let events = eventually("four events", || {
        let t = timeline(s, &id);
        (t.len() >= 4).then_some(t)
    });
    assert_eq!(
        names(&events),
        ["identify", "lead.known", "page", "whitepaper_downloaded"]
    );
    let page = events
        .iter()
        .find(|e| e["name"] == "page")
        .cloned()
        .unwrap_or_default();
    assert_eq!(page["properties"]["utm_source"], "newsletter");
    assert!(
        !events.iter().any(|e| e.to_string().contains(&email)),
        "no email in the timeline"
    );

    // A second device of the same person: anonymous at first, then identifies.
    let vid2 = fresh_visitor("device2");
    let page2 = json!({"site": "demo", "vid": vid2, "events": [{"id": format!("{vid2}_p"), "type": "page", "url": "http://127.0.0.1:8080/cases/steel"}]});
    assert_eq!(beacon(s, &page2, &[]).status, 202);
    let anon = eventually("the second device's contact", || contact(s, &vid2));
    assert_ne!(anon["id"], c["id"]);
    let ident2 = json!({"site": "demo", "vid": vid2, "events": [{"id": format!("{vid2}_i"), "type": "identify", "email": email.to_uppercase()}]});
    assert_eq!(beacon(s, &ident2, &[]).status, 202);
    let merged = eventually("the merge", || {
        contact(s, &vid2).filter(|m| m["id"] == c["id"])
    });
    assert_eq!(merged["visitor_ids"].as_array().map(Vec::len), Some(2));
    let all = eventually("the merged history", || {
        let t = timeline(s, &id);
        (t.len() >= 6).then_some(t)
    });
    assert_eq!(
        names(&all),
        [
            "identify",
            "identify",
            "lead.known",
            "page",
            "page",
            "whitepaper_downloaded"
        ]
    );
    Ok(())
}

pub fn beacon_bad_input_gets_named_4xx(s: &Stack) -> Result<(), Failed> {
    let url = format!("{}/e", s.track());
    let post = |ct: &str, body: &[u8]| {
        request(
            "POST",
            &url,
            &[("Content-Type", ct), ("User-Agent", CHROME)],
            Some(body),
        )
    };
    let a = post("text/plain", b"{not json");
    assert_eq!((a.status, a.json()["field"].clone()), (400, json!("body")));
    let a = post("text/plain", &vec![b' '; 70 * 1024]);
    assert_eq!(a.status, 413);
    let a = post("application/xml", b"<e/>");
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (415, json!("content-type"))
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"id": format!("evt_many_{i:04}"), "type": "page"}))
        .collect();
    let a = post(
        "text/plain",
        json!({"site": "demo", "vid": "v_many_0001", "events": many})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("events"))
    );
    let a = post(
        "text/plain",
        json!({"site": "demo", "vid": "x", "events": []})
            .to_string()
            .as_bytes(),
    );
    assert_eq!((a.status, a.json()["field"].clone()), (400, json!("vid")));
    let unknown = json!({"site": "nope", "vid": "v_unknown_01", "events": [{"id": "evt_unknown_1", "type": "page"}]});
    let a = post("text/plain", unknown.to_string().as_bytes());
    assert_eq!((a.status, a.json()["field"].clone()), (400, json!("site")));
    let before = drops(s, "beacon", "origin_not_allowed");
    let ok = json!({"site": "demo", "vid": "v_origin_01", "events": [{"id": "evt_origin_1", "type": "page"}]});
    let a = beacon(s, &ok, &[("Origin", "https://evil.example")]);
    assert_eq!(a.status, 403);
    eventually("the origin drop", || {
        (drops(s, "beacon", "origin_not_allowed") > before).then_some(())
    });
    Ok(())
}

pub fn bots_and_do_not_track_are_dropped_and_counted(s: &Stack) -> Result<(), Failed> {
    let bots = drops(s, "beacon", "bot_crawler");
    let dnt = drops(s, "beacon", "do_not_track");
    let vid = fresh_visitor("bot");
    let body =
        json!({"site": "demo", "vid": vid, "events": [{"id": format!("{vid}_1"), "type": "page"}]});
    let a = beacon(
        s,
        &body,
        &[(
            "User-Agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        )],
    );
    assert_eq!((a.status, a.json()["accepted"].clone()), (202, json!(0)));
    let vid2 = fresh_visitor("dnt");
    let body2 = json!({"site": "demo", "vid": vid2, "events": [{"id": format!("{vid2}_1"), "type": "page"}]});
    let a = beacon(s, &body2, &[("DNT", "1")]);
    assert_eq!((a.status, a.json()["accepted"].clone()), (202, json!(0)));
    eventually("the bot and DNT drops", || {
        (drops(s, "beacon", "bot_crawler") == bots + 1
            && drops(s, "beacon", "do_not_track") == dnt + 1)
            .then_some(())
    });
    assert!(contact(s, &vid).is_none() && contact(s, &vid2).is_none());
    // A DNT visitor who consented in the page is tracked.
    let mut consented = body2.clone();
    consented["consent"] = json!(true);
    let a = beacon(s, &consented, &[("Sec-GPC", "1")]);
    assert_eq!(a.json()["accepted"], 1);
    eventually("the consented visitor", || contact(s, &vid2));
    Ok(())
}

pub fn snippet_is_served_small_and_cacheable(s: &Stack) -> Result<(), Failed> {
    let a = get(&format!("{}/k.js", s.track()));
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with("application/javascript"));
    assert!(a
        .header("cache-control")
        .unwrap_or_default()
        .contains("max-age=604800"));
    let etag = a.header("etag").unwrap_or_default().to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let text = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        text.contains("/e") && text.contains("kindling"),
        "the snippet itself"
    );
    let again = request(
        "GET",
        &format!("{}/k.js", s.track()),
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    Ok(())
}

fn sign(claims: &kindling::link::LinkClaims) -> String {
    kindling::link::sign(claims, b"dev-link-key")
}

pub fn email_opens_and_clicks_follow_signed_tokens_only(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("mail");
    let body =
        json!({"site": "demo", "vid": vid, "events": [{"id": format!("{vid}_1"), "type": "page"}]});
    assert_eq!(beacon(s, &body, &[]).status, 202);
    let c = eventually("the mail contact", || contact(s, &vid));
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let open = sign(&kindling::link::LinkClaims {
        m: "msg_test_1".into(),
        c: id.clone(),
        u: None,
    });
    let proxy =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    let a = request(
        "GET",
        &format!("{}/o/{open}.gif", s.track()),
        &[("User-Agent", proxy)],
        None,
    );
    assert_eq!((a.status, a.body.len()), (200, 43));
    let click = sign(&kindling::link::LinkClaims {
        m: "msg_test_1".into(),
        c: id.clone(),
        u: Some("https://shop.example/cases/steel".into()),
    });
    let a = request(
        "GET",
        &format!("{}/c/{click}", s.track()),
        &[("User-Agent", CHROME)],
        None,
    );
    assert_eq!(a.status, 302);
    assert_eq!(
        a.header("location"),
        Some("https://shop.example/cases/steel")
    );
    // A forged token (destination swapped) never redirects where the request says.
    let evil = sign(&kindling::link::LinkClaims {
        m: "m".into(),
        c: id.clone(),
        u: Some("https://evil.example/".into()),
    });
    let forged = format!(
        "{}.{}",
        evil.split('.').next().unwrap_or_default(),
        click.split('.').nth(1).unwrap_or_default()
    );
    let a = request(
        "GET",
        &format!("{}/c/{forged}", s.track()),
        &[("User-Agent", CHROME)],
        None,
    );
    assert_ne!(a.header("location"), Some("https://evil.example/"));
    let a = get(&format!("{}/o/garbage.gif", s.track()));
    assert_eq!((a.status, a.body.len()), (200, 43));

    let events = eventually("the open and the click", || {
        let t = timeline(s, &id);
        (t.iter().any(|e| e["name"] == "email_opened")
            && t.iter().any(|e| e["name"] == "email_clicked"))
        .then_some(t)
    });
    let opened = events
        .iter()
        .find(|e| e["name"] == "email_opened")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        opened["properties"]["machine"], true,
        "an image-proxy open is a machine open"
    );
    assert_eq!(opened["properties"]["traffic"], "mail_proxy");
    let clicked = events
        .iter()
        .find(|e| e["name"] == "email_clicked")
        .cloned()
        .unwrap_or_default();
    assert_eq!(clicked["properties"]["machine"], false);
    Ok(())
}

pub fn server_side_ingest_is_segment_compatible_and_deduplicated(s: &Stack) -> Result<(), Failed> {
    let anon = fresh_visitor("segment");
    // A backfill: ten days before now, on the whole second.
    let now = now_ms();
    let ten_days_ago = kindling::Millis((now - 10 * kindling::Millis::DAY) / 1000 * 1000);
    let post = |path: &str, body: &Value| admin_send("POST", &format!("{}{path}", s.api()), body);
    let batch = json!({"batch": [
        {"type": "track", "messageId": format!("{anon}-1"), "anonymousId": anon, "event": "webinar_attended",
         "timestamp": ten_days_ago.rfc3339(), "properties": {"webinar": "launch"}},
        {"type": "page", "messageId": format!("{anon}-2"), "anonymousId": anon, "context": {"page": {"url": "https://shop.example/pricing"}}},
        {"type": "identify", "messageId": format!("{anon}-3"), "anonymousId": anon, "userId": format!("user-{anon}"),
         "traits": {"email": format!("{anon}@example.cn"), "industry": "manufacturing"}},
        {"type": "track", "messageId": "bad", "anonymousId": anon}
    ]});
    let a = post("/v1/batch", &batch);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["accepted"], 3);
    assert_eq!(a.json()["rejected"][0]["field"], "batch[3].event");
    assert_eq!(post("/v1/batch", &batch).status, 200, "a retried batch");
    // A later event by user id alone reaches the same contact.
    let by_user = json!({"messageId": format!("{anon}-4"), "userId": format!("user-{anon}"), "event": "login"});
    assert_eq!(post("/v1/track", &by_user).status, 200);

    let c = eventually("the server-side contact", || {
        contact(s, &anon).filter(|c| c["has_email"] == true)
    });
    assert_eq!(c["attributes"]["industry"], "manufacturing");
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let events = eventually("five events", || {
        let t = timeline(s, &id);
        (t.len() >= 5).then_some(t)
    });
    assert_eq!(
        names(&events),
        [
            "identify",
            "lead.known",
            "login",
            "page",
            "webinar_attended"
        ]
    );
    let webinar = events
        .iter()
        .find(|e| e["name"] == "webinar_attended")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        webinar["occurred_at"],
        ten_days_ago.rfc3339(),
        "timestamp honoured"
    );

    let a = post("/v1/track", &json!({"anonymousId": anon, "event": "x"}));
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("messageId"))
    );
    let a = admin_get(&format!("{}/v1/track", s.api()));
    assert_eq!(a.status, 405);
    Ok(())
}

/// Runs after the tests above: their emails must not be anywhere in the local state.
pub fn no_plaintext_pii_in_local_storage_or_logs(s: &Stack) -> Result<(), Failed> {
    let anon = fresh_visitor("pii");
    let email = format!("{anon}@pii-probe.example");
    let phone = "13912345678";
    let body = json!({"site": "demo", "vid": anon, "events": [{"id": format!("{anon}_i"), "type": "identify", "email": email, "phone": phone}]});
    assert_eq!(beacon(s, &body, &[]).status, 202);
    eventually("the identified contact", || {
        contact(s, &anon).filter(|c| c["has_phone"] == true)
    });
    // The form path too: name, email and phone typed into a landing-page form.
    let lead = fresh_visitor("piiform");
    let form_email = format!("{lead}@pii-probe.example");
    let form_phone = format!("137{:08}", now_ms() % 100_000_000);
    let form_name = format!("Probe {}", now_ms() % 1_000_000_000);
    let form = json!({"name": form_name, "email": form_email, "phone": form_phone,
        "company": "Probe Co", "consent_email": "on", "_kvid": lead});
    let a = request(
        "POST",
        &format!("{}/f/demo-signup", s.forms()),
        &[
            ("Content-Type", "application/json"),
            ("User-Agent", CHROME),
            ("CF-Connecting-IP", "10.251.0.1"),
        ],
        Some(form.to_string().as_bytes()),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    eventually("the form's contact", || {
        contact(s, &lead).filter(|c| c["has_phone"] == true)
    });
    let mut hits = Vec::new();
    for entry in walk(&s.state) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for needle in [
            email.as_bytes(),
            phone.as_bytes(),
            b"pii-probe.example".as_slice(),
            form_email.as_bytes(),
            form_phone.as_bytes(),
            form_name.as_bytes(),
        ] {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(entry.display().to_string());
            }
        }
    }
    assert!(hits.is_empty(), "plaintext PII found in {hits:?}");
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The snippet in a real browser: headless Chromium loads a local test page that embeds it,
/// browses (landing with UTM, a custom event, an SPA navigation, an identify) and the api must
/// show it all on the visitor's contact.
pub fn snippet_in_headless_chromium_reaches_the_timeline(s: &Stack) -> Result<(), Failed> {
    let email = format!(
        "{}@browser.example",
        fresh_visitor("chromium").to_lowercase()
    );
    run_browser_script(
        "snippet.mjs",
        &[
            ("TRACK_URL", &s.track()),
            ("API_URL", &s.api()),
            ("ADMIN_TOKEN", TOKEN),
            ("SITE_PORT", "18082"),
            ("TEST_EMAIL", &email),
        ],
        "snippet: ok",
    );
    Ok(())
}

/// Hostile requests interleaved with valid beacons: only 2xx/4xx answers, and every valid event
/// arrives exactly once, even when its beacon is sent twice.
pub fn hostile_traffic_interleaved_with_valid_events_loses_nothing(
    s: &Stack,
) -> Result<(), Failed> {
    let vid = fresh_visitor("interleave");
    let url = format!("{}/e", s.track());
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let hostile: Vec<(String, Vec<u8>)> = vec![
        ("text/plain".into(), vec![b'x'; 65 * 1024]),
        ("text/plain".into(), b"\xff\xfe\xfd{\"site\":\"demo\"}".to_vec()),
        ("text/plain".into(), deep.clone().into_bytes()),
        ("application/json".into(), format!("{{\"site\":\"demo\",\"vid\":\"{vid}\",\"events\":{deep}}}").into_bytes()),
        ("multipart/form-data".into(), b"--x\r\n".to_vec()),
        ("text/plain".into(), b"{\"site\":\"demo' OR 1=1--\",\"vid\":\"v_12345678\",\"events\":[]}".to_vec()),
        ("text/plain".into(), format!("{{\"site\":\"demo\",\"vid\":\"{vid}\",\"events\":[{{\"id\":\"<script>alert(1)</script>\",\"type\":\"page\"}}]}}").into_bytes()),
    ];
    let mut sent = 0;
    for i in 0..40 {
        let name = if i % 5 == 0 {
            "'; DROP TABLE events;--".to_string()
        } else {
            format!("valid_{i}")
        };
        let body = json!({"site": "demo", "vid": vid, "events": [
            {"id": format!("{vid}_{i:03}"), "type": "track", "name": name, "props": {"html": "<img src=x onerror=alert(1)>"}}
        ]});
        let a = beacon(s, &body, &[]);
        assert_eq!(a.status, 202, "valid beacon {i}");
        sent += 1;
        if i % 3 == 0 {
            assert_eq!(beacon(s, &body, &[]).status, 202, "retried beacon {i}");
        }
        let (ct, bad) = &hostile[i % hostile.len()];
        let a = request(
            "POST",
            &url,
            &[
                ("Content-Type", ct),
                ("User-Agent", CHROME),
                ("Origin", ORIGIN),
            ],
            Some(bad),
        );
        assert!(
            (400..500).contains(&a.status) || a.status == 202,
            "hostile {i} answered {}",
            a.status
        );
        let forged = get(&format!("{}/c/{}", s.track(), "A".repeat(i * 7 + 1)));
        assert!(forged.status < 500);
    }
    let c = eventually("the interleaved contact", || contact(s, &vid));
    let id = c["id"].as_str().unwrap_or_default().to_string();
    let events = eventually("every valid event", || {
        let t = timeline(s, &id);
        (t.len() >= sent).then_some(t)
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let events = {
        let later = timeline(s, &id);
        if later.len() > events.len() {
            later
        } else {
            events
        }
    };
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        events.len(),
        sent,
        "exactly once: {} stored for {sent} sent",
        events.len()
    );
    assert_eq!(ids.len(), sent);
    let sql = events
        .iter()
        .filter(|e| e["name"] == "'; DROP TABLE events;--")
        .count();
    assert_eq!(sql, 8, "hostile-looking names are stored verbatim, as data");
    Ok(())
}

/// Many visitors at once: track's requests share their queue sends, so this is the path where a
/// batch carries several requests' messages. Every beacon is answered 202 only once its events
/// are queued, a retried beacon counts once, and every pixel (answered before its send) still
/// arrives.
pub fn concurrent_beacons_and_pixels_share_sends_and_arrive_once(s: &Stack) -> Result<(), Failed> {
    const BEACON_THREADS: usize = 8;
    const PIXEL_THREADS: usize = 4;
    const EACH: usize = 15;
    let beacon_vid = fresh_visitor("crowd_b");
    let pixel_vid = fresh_visitor("crowd_p");
    std::thread::scope(|scope| {
        for t in 0..BEACON_THREADS {
            let vid = beacon_vid.as_str();
            scope.spawn(move || {
                for i in 0..EACH {
                    let body = json!({"site": "demo", "vid": vid, "events": [
                        {"id": format!("{vid}_{t}_{i}_a"), "type": "page", "url": "https://shop.example/a"},
                        {"id": format!("{vid}_{t}_{i}_b"), "type": "track", "name": "crowd_clicked"}
                    ]});
                    assert_eq!(beacon(s, &body, &[]).status, 202, "beacon {t}/{i}");
                    if i % 4 == 0 {
                        assert_eq!(beacon(s, &body, &[]).status, 202, "retried beacon {t}/{i}");
                    }
                }
            });
        }
        for t in 0..PIXEL_THREADS {
            let vid = pixel_vid.as_str();
            scope.spawn(move || {
                for i in 0..EACH {
                    let url = format!(
                        "{}/p.gif?site=demo&vid={vid}&url=https%3A%2F%2Fshop.example%2F{t}%2F{i}",
                        s.track()
                    );
                    let a = request("GET", &url, &[("User-Agent", CHROME)], None);
                    assert_eq!((a.status, a.body.len()), (200, 43), "pixel {t}/{i}");
                }
            });
        }
    });
    let expected = BEACON_THREADS * EACH * 2;
    let id_of = |vid: &str| {
        let c = eventually("the crowd's contact", || contact(s, vid));
        c["id"].as_str().unwrap_or_default().to_string()
    };
    let beacon_contact = id_of(&beacon_vid);
    let events = eventually("every beacon event", || {
        let t = timeline(s, &beacon_contact);
        (t.len() >= expected).then_some(t)
    });
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (events.len(), ids.len()),
        (expected, expected),
        "exactly once"
    );
    let pixel_contact = id_of(&pixel_vid);
    let pages = eventually("every pixel page view", || {
        let t = timeline(s, &pixel_contact);
        (t.len() >= PIXEL_THREADS * EACH).then_some(t)
    });
    let mut urls: Vec<&str> = pages
        .iter()
        .filter_map(|e| e["properties"]["url"].as_str())
        .collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), PIXEL_THREADS * EACH, "one page view per pixel");
    Ok(())
}

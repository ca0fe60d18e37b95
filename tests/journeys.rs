//! Journeys on the running stack: definitions through the api (and the refusals of bad ones),
//! behaviour triggers that react at once, people living through the seeded journeys while the
//! test drives engine's cron with successive `time` values, and overlapping ticks that step
//! each enrollment once.
//!
//! Virtual time runs in the past: the timeline starts 88 days ago at 10:00 Shanghai time, so
//! every event the people do can be posted with its own timestamp (server-side events accept
//! 90 days of backfill), and consent is imported with its original date.

use crate::support::*;
use kindling::identity::anonymous_contact_id;
use kindling::Millis;
use libtest_mimic::Failed;
use serde_json::{json, Value};
use std::sync::Once;

const DAY: i64 = Millis::DAY;
const HOUR: i64 = Millis::HOUR;
const WS: &str = "default";

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// Publishes the seeded journeys once per run (the test stack starts without them, so the
/// other trials' contacts get only what those trials send).
fn publish(s: &Stack) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/journeys");
        for f in std::fs::read_dir(dir).expect("config/journeys") {
            let path = f.expect("entry").path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let body = std::fs::read(&path).expect("journey file");
            let a = send_json(
                "PUT",
                &format!("{}/v1/journeys/{id}", s.api()),
                TOKEN,
                Some(&body),
            );
            assert_eq!(a.status, 200, "publishing {id}: {}", text(&a));
        }
    });
}

/// 10:00 in Shanghai, `days_ago` days before today.
fn morning(days_ago: i64) -> i64 {
    let local = now_ms() - days_ago * DAY + 8 * HOUR;
    local - local.rem_euclid(DAY) + 10 * HOUR - 8 * HOUR
}

fn rfc3339(ms: i64) -> String {
    Millis(ms).rfc3339()
}

fn api_post(s: &Stack, path: &str, body: &Value) -> Answer {
    admin_send("POST", &format!("{}{path}", s.api()), body)
}

/// A person the test follows: a visitor who consents, then identifies.
struct Person {
    vid: String,
    id: String,
}

/// Someone who browses (anonymous), has consent imported for `channels`, then identifies
/// with `traits` — all at `at` (the identify a second after).
fn person(s: &Stack, tag: &str, at: i64, channels: &[&str], traits: Value) -> Person {
    let vid = fresh_visitor(tag).to_lowercase();
    let id = anonymous_contact_id(WS, &vid);
    let page = json!({"messageId": format!("{vid}-page"), "anonymousId": vid, "name": "home",
        "properties": {"url": "https://www.example.com/"}, "timestamp": rfc3339(at - 2000)});
    assert_eq!(api_post(s, "/v1/page", &page).status, 200);
    eventually("the visitor's contact", || {
        (admin_get(&format!("{}/v1/contacts/{id}", s.api())).status == 200).then_some(())
    });
    for channel in channels {
        let body = json!({"channel": channel, "granted": true, "wording_version": "crm-2026",
            "source": "crm-import", "recorded_at": rfc3339(at - 1000)});
        let a = api_post(s, &format!("/v1/contacts/{id}/consents"), &body);
        assert_eq!(a.status, 202, "consent: {}", text(&a));
    }
    eventually("the imported consent", || {
        let c = admin_get(&format!("{}/v1/contacts/{id}/consents", s.api())).json();
        channels
            .iter()
            .all(|ch| c["current"][ch] == true)
            .then_some(())
    });
    let body = json!({"messageId": format!("{vid}-identify"), "anonymousId": vid,
        "traits": traits, "timestamp": rfc3339(at)});
    assert_eq!(api_post(s, "/v1/identify", &body).status, 200);
    eventually("the known contact", || {
        let c = admin_get(&format!("{}/v1/contacts/{id}", s.api())).json();
        (c["lead_status"] != "anonymous").then_some(())
    });
    Person { vid, id }
}

/// A server-side event by `p` at `at`, recorded before this returns.
fn track(s: &Stack, p: &Person, name: &str, at: i64, properties: Value) {
    let mid = format!("{}-{name}-{at}", p.vid);
    let body = json!({"messageId": mid, "anonymousId": p.vid, "event": name,
        "properties": properties, "timestamp": rfc3339(at)});
    let a = api_post(s, "/v1/track", &body);
    assert_eq!(a.status, 200, "track {name}: {}", text(&a));
    eventually(&format!("{name} on the timeline"), || {
        let t = admin_get(&format!(
            "{}/v1/contacts/{}/timeline?limit=500",
            s.api(),
            p.id
        ))
        .json();
        t["events"]
            .as_array()?
            .iter()
            .any(|e| e["name"] == name && e["occurred_at"] == rfc3339(at).as_str())
            .then_some(())
    });
}

fn messages(s: &Stack, p: &Person) -> Vec<Value> {
    let a = admin_get(&format!(
        "{}/v1/messages?contact_id={}&limit=1000",
        s.api(),
        p.id
    ));
    assert_eq!(a.status, 200, "{}", text(&a));
    let mut list = a.json()["messages"].as_array().cloned().unwrap_or_default();
    list.reverse();
    list
}

fn of_template(s: &Stack, p: &Person, template: &str) -> Vec<Value> {
    messages(s, p)
        .into_iter()
        .filter(|m| m["template_id"] == template)
        .collect()
}

fn enrollment(s: &Stack, p: &Person, journey: &str) -> Option<Value> {
    let a = admin_get(&format!("{}/v1/contacts/{}/journeys", s.api(), p.id));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()["journeys"]
        .as_array()?
        .iter()
        .find(|e| e["journey_id"] == journey)
        .cloned()
}

fn tasks(s: &Stack, p: &Person) -> Vec<Value> {
    let a = admin_get(&format!("{}/v1/tasks?contact_id={}", s.api(), p.id));
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()["tasks"].as_array().cloned().unwrap_or_default()
}

fn cron(s: &Stack, at: i64) {
    let a = run_cron(s, at);
    assert_eq!(a.status, 200, "cron at {}: {}", rfc3339(at), text(&a));
}

/// Every message is accounted for: sent (or further), or deferred or suppressed with a reason.
fn accounted(m: &Value) -> bool {
    match m["state"].as_str() {
        Some("sending" | "sent" | "delivered" | "queued") => true,
        Some("deferred" | "suppressed" | "retry" | "dead" | "failed") => m["reason"].is_string(),
        _ => false,
    }
}

fn created(m: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(m["created_at"].as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// Bad journeys get a 4xx naming the part at fault; the seeded ones are listed.
pub fn invalid_journeys_are_refused_with_precise_errors(s: &Stack) -> Result<(), Failed> {
    publish(s);
    let put = |id: &str, body: &[u8]| {
        send_json(
            "PUT",
            &format!("{}/v1/journeys/{id}", s.api()),
            TOKEN,
            Some(body),
        )
    };
    let node = |n: Value| {
        json!({"name": "bad", "entry": {"event": "x"}, "start": "a", "nodes": n}).to_string()
    };
    let cases = [
        (
            node(
                json!({"a": {"type": "send", "channel": "email", "template": "no-such-template"}}),
            ),
            "nodes.a.template",
        ),
        (
            node(json!({"a": {"type": "send", "channel": "pigeon", "template": "whitepaper"}})),
            "nodes.a.channel",
        ),
        (
            node(
                json!({"a": {"type": "wait", "duration": "-1d", "next": "b"}, "b": {"type": "exit"}}),
            ),
            "nodes.a.duration",
        ),
        (
            node(json!({"a": {"type": "tag", "add": "x", "next": "b"},
                         "b": {"type": "tag", "remove": "x", "next": "a"}})),
            "nodes.a",
        ),
        (
            node(json!({"a": {"type": "exit"}, "island": {"type": "exit"}})),
            "nodes.island",
        ),
        ("{not json".to_string(), "body"),
    ];
    for (body, field) in cases {
        let a = put("bad", body.as_bytes());
        assert_eq!(a.status, 400, "{body}: {}", text(&a));
        assert_eq!(a.json()["field"], field, "{body}: {}", text(&a));
    }
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20));
    assert_eq!(put("bad", huge.as_bytes()).status, 413);
    assert_eq!(
        admin_get(&format!("{}/v1/journeys/bad", s.api())).status,
        404,
        "nothing refused was stored"
    );
    let list = admin_get(&format!("{}/v1/journeys", s.api())).json();
    let ids: Vec<&str> = list["journeys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_str())
        .collect();
    for id in [
        "nurture-awareness",
        "nurture-interest",
        "nurture-conversion",
        "whitepaper",
        "new-customer",
        "active-monthly",
        "dormant-wakeup",
        "churn-risk",
        "nps",
        "launch-live",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    Ok(())
}

/// People live 97 days of the seeded journeys while the test drives the cron day by day.
pub fn people_live_the_seeded_journeys_in_virtual_time(s: &Stack) -> Result<(), Failed> {
    publish(s);
    let t0 = morning(88);
    let day = |d: i64| t0 + d * DAY;
    let manufacturing = json!({"industry": "manufacturing", "company_size": "200"});

    // A lead who never qualifies: nurtured weekly for 90 days, then dormant and woken.
    let mut ta = manufacturing.clone();
    ta["email"] = "lead.a@journeys.example".into();
    let a = person(s, "ja", day(0), &["email"], ta);
    // The first article goes at once, from the events consumer, before any cron tick.
    let first = eventually("the first article", || {
        of_template(s, &a, "insight-article").into_iter().next()
    });
    assert_eq!(first["journey_id"], "nurture-awareness");
    assert_eq!(first["journey_node"], "article");
    assert_eq!(created(&first), day(0));

    // A lead who downloads the whitepaper: it goes at once, the trial invitation later.
    let mut tb = manufacturing.clone();
    tb["email"] = "lead.b@journeys.example".into();
    let b = person(s, "jb", day(0) + HOUR, &["email"], tb);
    track(s, &b, "whitepaper_downloaded", day(0) + 2 * HOUR, json!({}));
    let paper = eventually("the whitepaper, without a cron tick", || {
        of_template(s, &b, "whitepaper").into_iter().next()
    });
    assert_eq!(paper["journey_id"], "whitepaper");

    // A lead who attends two webinars (MQL), then two more (SQL).
    let tc =
        json!({"email": "lead.c@journeys.example", "industry": "finance", "company_size": "200"});
    let c = person(s, "jc", day(0) + 3 * HOUR, &["email"], tc);
    track(
        s,
        &c,
        "webinar_attended",
        day(0) + 4 * HOUR,
        json!({"webinar": "w1"}),
    );
    track(
        s,
        &c,
        "webinar_attended",
        day(0) + 5 * HOUR,
        json!({"webinar": "w2"}),
    );
    let case = eventually("the case report for MQL", || {
        of_template(s, &c, "case-report").into_iter().next()
    });
    assert_eq!(case["journey_id"], "nurture-interest");

    // A customer: signs up, logs in every few days, orders, answers the NPS survey poorly.
    let td = json!({"email": "customer.d@journeys.example", "industry": "retail"});
    let d = person(s, "jd", day(0) + 6 * HOUR, &["email"], td);
    track(s, &d, "signed_up", day(0) + 6 * HOUR, json!({}));
    let welcome = eventually("the welcome pack", || {
        of_template(s, &d, "welcome-pack").into_iter().next()
    });
    assert_eq!(created(&welcome), day(0) + 6 * HOUR);
    // A customer who signs up and does not come back for 35 days (churn risk at 30).
    let tf = json!({"email": "customer.f@journeys.example", "wecom_user_id": "zhangwei"});
    let f = person(s, "jf", day(0) + 8 * HOUR, &["email", "wecom"], tf);
    track(s, &f, "signed_up", day(0) + 8 * HOUR, json!({}));

    // A lead who books the launch live stream, which starts on day 20 at 19:00.
    let live_at = day(20) + 9 * HOUR;
    let te =
        json!({"phone": "13800138021", "email": "lead.e@journeys.example", "industry": "retail"});
    let e = person(s, "je", day(0) + 7 * HOUR, &["sms", "email"], te);

    // The live stream's own times, besides the daily 10:00 ticks (in time order).
    let extra_ticks = [live_at - 3 * DAY, live_at - HOUR, live_at + 3 * HOUR];
    for n in 1..=97 {
        let now = day(n);
        for t in extra_ticks.iter().filter(|t| **t < now && **t > now - DAY) {
            cron(s, *t);
        }
        // The day's tick first, then what the people do later that day: an event runs what is
        // due up to its own time, so posting it before the tick would run the tick's work early.
        cron(s, now);
        match n {
            1 => track(s, &d, "login", now + HOUR, json!({})),
            2 => track(s, &d, "login", now + HOUR, json!({})),
            3 => {
                track(s, &d, "login", now + HOUR, json!({}));
                track(
                    s,
                    &c,
                    "webinar_attended",
                    now + HOUR,
                    json!({"webinar": "w3"}),
                );
                track(
                    s,
                    &c,
                    "webinar_attended",
                    now + 2 * HOUR,
                    json!({"webinar": "w4"}),
                );
            }
            5 => track(
                s,
                &d,
                "order_completed",
                now + HOUR,
                json!({"order_id": "jd-1", "amount": 399}),
            ),
            8 => track(s, &d, "nps_submitted", now + HOUR, json!({"score": 3})),
            10 => track(
                s,
                &e,
                "webinar_booked",
                now + HOUR,
                json!({"webinar": "launch-2027", "live_at": rfc3339(live_at)}),
            ),
            35 => track(s, &f, "login", now + HOUR, json!({})),
            _ => {}
        }
        // D stays active: at least three logins in any 30 days (until today, the last day an
        // event can be posted for).
        if n > 3 && n % 9 == 3 && day(n) + 3 * HOUR < now_ms() {
            track(s, &d, "login", now + 3 * HOUR, json!({}));
        }
    }

    // A: weekly articles for 90 days, a video every other week, nothing after the limit.
    let articles = of_template(s, &a, "insight-article");
    let videos = of_template(s, &a, "product-video");
    assert_eq!((articles.len(), videos.len()), (13, 6), "{articles:?}");
    let offsets: Vec<i64> = articles
        .iter()
        .map(|m| (created(m) - day(0)) / HOUR)
        .collect();
    assert!(
        offsets.iter().all(|h| h % (7 * 24) == 0),
        "weekly, hours from the start: {offsets:?}"
    );
    let nurture = enrollment(s, &a, "nurture-awareness").ok_or("A's nurture")?;
    assert_eq!(nurture["state"], "expired");
    let contact_a = admin_get(&format!("{}/v1/contacts/{}", s.api(), a.id)).json();
    assert_eq!(contact_a["lifecycle_stage"], "dormant");
    // …the wake-up journey: the gift on day 90, a service contact, no response → stories.
    let gift = of_template(s, &a, "welcome-back");
    assert_eq!(gift.len(), 1);
    assert_eq!(created(&gift[0]), day(90));
    assert!(tasks(s, &a).iter().any(|t| t["kind"] == "service_contact"));
    let stories = of_template(s, &a, "customer-stories");
    assert_eq!(stories.len(), 1, "the 7-day no-response branch");
    assert_eq!(created(&stories[0]), day(97));

    // B: the trial invitation two days after the download (at the first tick after).
    let trial = of_template(s, &b, "trial-invite");
    assert_eq!(trial.len(), 1);
    assert_eq!(created(&trial[0]), day(3));
    assert_eq!(trial[0]["journey_node"], "trial");

    // C: the experience invitation a day after MQL; at SQL, the finance salesperson gets a
    // call due within 24 h and the CRM a signed webhook.
    let invite = of_template(s, &c, "experience-invite");
    assert_eq!(invite.len(), 1);
    assert_eq!(
        created(&invite[0]),
        day(2),
        "24 h after MQL, at the next daily tick"
    );
    let call = tasks(s, &c)
        .into_iter()
        .find(|t| t["kind"] == "sales_call")
        .ok_or("C's sales call")?;
    assert_eq!(call["assignee"], "sales-finance");
    let due = chrono::DateTime::parse_from_rfc3339(call["due_at"].as_str().unwrap_or_default())?;
    assert_eq!(due.timestamp_millis(), day(3) + 2 * HOUR + DAY);
    let hook = messages(s, &c)
        .into_iter()
        .find(|m| m["channel"] == "webhook")
        .ok_or("C's CRM webhook")?;
    assert_eq!(hook["journey_id"], "nurture-conversion");
    assert_eq!(hook["variables"]["event"], "crm.lead_qualified");
    assert_eq!(
        enrollment(s, &c, "nurture-interest").ok_or("C's tier 2")?["state"],
        "goal",
        "reaching SQL ends the interest tier"
    );
    assert_eq!(
        enrollment(s, &c, "nurture-awareness").ok_or("C's tier 1")?["state"],
        "goal"
    );

    // D: day 7 starter tasks and day 30 growth report; the NPS survey after the order, and a
    // call-back for the score of 3; churn risk after 30 days without login, ended by a login.
    let starter = of_template(s, &d, "starter-tasks");
    assert_eq!(starter.len(), 1);
    assert_eq!(created(&starter[0]), day(7));
    let report = of_template(s, &d, "growth-report");
    assert_eq!(report.len(), 1);
    assert_eq!(created(&report[0]), day(30));
    let survey = of_template(s, &d, "nps-survey");
    assert_eq!(survey.len(), 1);
    assert_eq!(created(&survey[0]), day(7));
    let d_tasks = tasks(s, &d);
    assert!(
        d_tasks
            .iter()
            .any(|t| t["kind"] == "call_back" && t["journey_id"] == "nps"),
        "{d_tasks:?}"
    );
    // F: churn risk 30 days after signing up without a login: the care package on WeCom and
    // a call-back; the login on day 35 ends the journey.
    let churn = enrollment(s, &f, "churn-risk").ok_or("F's churn-risk enrollment")?;
    assert_eq!(churn["state"], "goal", "the login on day 35 ends it");
    assert!(tasks(s, &f)
        .iter()
        .any(|t| t["kind"] == "call_back" && t["journey_id"] == "churn-risk"));
    let care = of_template(s, &f, "care-wecom");
    assert_eq!(care.len(), 1);
    assert!(created(&care[0]) >= day(30) && created(&care[0]) <= day(31));
    // …and, active after the order, the benefits on the 1st of the month at 10:00.
    let monthly = of_template(s, &d, "monthly-benefits");
    assert!(!monthly.is_empty(), "D is active on some 1st of the month");
    for m in &monthly {
        let local = chrono::DateTime::from_timestamp_millis(created(m) + 8 * HOUR).ok_or("time")?;
        assert_eq!(local.format("%d %H:%M").to_string(), "01 10:00");
    }

    // E: the reminder 3 days before, the notice an hour before, the replay after.
    let reminder = of_template(s, &e, "live-reminder");
    let notice = of_template(s, &e, "live-notice");
    let replay = of_template(s, &e, "live-replay");
    assert_eq!(
        (reminder.len(), notice.len(), replay.len()),
        (1, 1, 1),
        "{:?}",
        messages(s, &e)
    );
    assert_eq!(created(&reminder[0]), live_at - 3 * DAY);
    assert_eq!(created(&notice[0]), live_at - HOUR);
    assert_eq!(created(&replay[0]), live_at + 3 * HOUR);

    // Nothing is lost: every message is sent, or waits or was refused with its reason; the
    // replay at 22:00 Shanghai time was held for quiet hours at least once.
    for p in [&a, &b, &c, &d, &e, &f] {
        for m in messages(s, p) {
            assert!(accounted(&m), "{m}");
        }
    }
    let history = admin_get(&format!(
        "{}/v1/messages/{}",
        s.api(),
        replay[0]["id"].as_str().unwrap_or_default()
    ))
    .json();
    assert!(
        history["history"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["reason"] == "quiet_hours"),
        "{history}"
    );
    // Journey analytics count the nodes entered and the goals met.
    let stats = admin_get(&format!("{}/v1/journeys/nurture-awareness/stats", s.api())).json();
    assert!(stats["nodes"]["article"]["entered"].as_i64().unwrap_or(0) >= 7);
    assert!(stats["by_state"]["goal"].as_i64().unwrap_or(0) >= 1);
    Ok(())
}

/// Two cron invocations for the same time, at once, over many due enrollments: every
/// enrollment steps once.
pub fn overlapping_cron_ticks_step_each_enrollment_once(s: &Stack) -> Result<(), Failed> {
    publish(s);
    let t0 = morning(80);
    let people: Vec<Person> = (0..12)
        .map(|i| {
            let traits = json!({"email": format!("overlap.{i}@journeys.example")});
            person(s, &format!("jo{i}"), t0, &["email"], traits)
        })
        .collect();
    for p in &people {
        track(s, p, "whitepaper_downloaded", t0 + HOUR, json!({}));
    }
    let due = t0 + HOUR + 2 * DAY;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let engine = s.engine();
            std::thread::spawn(move || {
                get(&format!(
                    "{engine}/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time={due}"
                ))
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().map_err(|_| "cron thread")?, 200);
    }
    for p in &people {
        let invites = of_template(s, p, "trial-invite");
        assert_eq!(invites.len(), 1, "{}: {invites:?}", p.id);
        assert_eq!(
            enrollment(s, p, "whitepaper").ok_or("enrollment")?["state"],
            "completed"
        );
    }
    Ok(())
}

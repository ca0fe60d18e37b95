//! Kindling's core event path, natively, on one thread (bench/run.sh).
//!
//! Beacons: `beacon::parse` (validation, URL checks, identify sealing with AES-GCM and the blind
//! index) + `bot::classify` of the sender's User-Agent per beacon + `store::ingest::
//! batch_statements` per 100 messages (engine's queue batch: the identity lookup plan, scored
//! with the default model in config/scoring.json when it parses).
//! Baseline: `serde_json::from_slice::<Value>` of the same bodies — the bare cost of reading
//! the JSON at all.
//!
//! Pixels: `PixelQuery::parse(..).into_event(..)` + `classify` per hit + `batch_statements` per
//! 100. Baseline: decoding the same query strings into owned pairs with `form_urlencoded`.
//!
//! Rates are per CPU-second of the (single) bench thread, best of 7 rounds.
//! Prints `key value` lines on stdout (read by bench/run.sh) and a summary on stderr.
//! `core-bench <workload>` (beacon, json, full, pixel, query, parse, plan, plan_unscored,
//! classify, pixel_parse) runs only that one, e.g. under `perf record`.

use kindling::beacon;
use kindling::bot::{classify, ClientHints, Traffic};
use kindling::consent::Refusal;
use kindling::delivery::decision::{decide, Kind, Policy, Situation};
use kindling::event::IngestMessage;
use kindling::pii::{PiiKeys, DEV_PII_KEY};
use kindling::pixel::PixelQuery;
use kindling::scoring::Model;
use kindling::store::ingest::batch_statements;
use kindling::Millis;
use std::hint::black_box;
use std::time::Duration;

/// Distinct beacons (and pixel hits) cycled through.
const BODIES: usize = 1_000;
/// Events per beacon: 6 page, 3 track, 1 identify.
const EVENTS_PER_BEACON: usize = 10;
/// Engine's queue batch (`max_batch_size`).
const QUEUE_BATCH: usize = 100;
/// Timed rounds per workload; the best round is reported (on a shared machine, contention only
/// ever slows a round down, so the fastest one is the closest to the code's own cost).
const ROUNDS: usize = 7;
/// Minimum length of one round.
const ROUND_TIME: Duration = Duration::from_millis(200);

const NOW: Millis = Millis(1_781_740_800_000);

/// Real browsers' User-Agents (desktop and mobile, a WeChat in-app browser).
const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
];

const PAGES: &[(&str, &str)] = &[
    ("https://shop.example/", "Shop — Home"),
    (
        "https://shop.example/products/espresso-grinder-x2?color=black",
        "Espresso Grinder X2",
    ),
    ("https://shop.example/pricing", "Pricing and plans"),
    (
        "https://shop.example/blog/2026/how-we-roast",
        "How we roast our beans | Blog",
    ),
    (
        "https://shop.example/cases/acme-coffee",
        "Case study: Acme Coffee",
    ),
    ("https://shop.example/contact?ref=nav", "Contact sales"),
];

/// A small deterministic generator, so every run uses the same data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.next() as usize % xs.len()]
    }
}

fn beacon_body(i: usize, rng: &mut Lcg) -> Vec<u8> {
    let vid = format!("v_{:016x}", rng.next() << 20 | i as u64);
    let sid = format!("s_{:012x}", rng.next());
    let mut events = Vec::with_capacity(EVENTS_PER_BEACON);
    for k in 0..EVENTS_PER_BEACON {
        let id = format!("e_{i:06}_{k:02}_{:08x}", rng.next());
        let ts = NOW.0 - 60_000 + (k as i64) * 1_500;
        let (url, title) = *rng.pick(PAGES);
        let ev = match k {
            // 1 identify, 3 track, 6 page
            4 => serde_json::json!({
                "id": id, "type": "identify", "ts": ts,
                "email": format!("Jane.Doe+{i}@Example.com"),
                "traits": {"name": "Jane Doe", "company": "Acme Coffee", "plan": "pro"}
            }),
            2 | 6 | 8 => serde_json::json!({
                "id": id, "type": "track", "ts": ts,
                "name": *rng.pick(&["whitepaper_downloaded", "signed_up", "feature_used"]),
                "url": url,
                "props": {"asset": "wp-2026-roasting", "format": "pdf", "value": 42}
            }),
            0 => serde_json::json!({
                "id": id, "type": "page", "ts": ts, "url": url, "title": title,
                "ref": "https://www.google.com/",
                "utm": {"source": "newsletter", "medium": "email", "campaign": "spring-2026"}
            }),
            _ => serde_json::json!({
                "id": id, "type": "page", "ts": ts, "url": url, "title": title,
                "ref": "https://shop.example/"
            }),
        };
        events.push(ev);
    }
    serde_json::to_vec(&serde_json::json!({
        "site": "demo", "vid": vid, "sid": sid, "events": events
    }))
    .expect("serialisable")
}

fn pixel_query(i: usize, rng: &mut Lcg) -> String {
    let (url, _) = *rng.pick(PAGES);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("site", "demo");
    q.append_pair("vid", &format!("v_{:016x}", rng.next() << 20 | i as u64));
    q.append_pair("url", url);
    if i.is_multiple_of(3) {
        q.append_pair("ref", "https://www.google.com/search?q=espresso+grinder");
    }
    if i.is_multiple_of(5) {
        q.append_pair("e", "whitepaper_downloaded");
    }
    q.finish()
}

fn hints(ua: &str) -> ClientHints<'_> {
    ClientHints {
        user_agent: Some(ua),
        purpose: None,
        x_moz: None,
        from: None,
    }
}

/// CPU time consumed by this thread. The machine is shared with other work, so wall-clock rates
/// would measure the neighbours as much as the code; CPU time of the bench thread does not.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec owned by this frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `pass` (one pass over the data, returning the events it handled) for ROUNDS rounds of at
/// least ROUND_TIME of CPU each after a warm-up, and returns the best round's rate in events
/// per CPU-second.
fn measure(mut pass: impl FnMut() -> usize) -> f64 {
    let warm = thread_cpu();
    while thread_cpu() - warm < ROUND_TIME {
        black_box(pass());
    }
    (0..ROUNDS)
        .map(|_| {
            let start = thread_cpu();
            let mut events = 0usize;
            loop {
                events += pass();
                let spent = thread_cpu() - start;
                if spent >= ROUND_TIME {
                    break events as f64 / spent.as_secs_f64();
                }
            }
        })
        .fold(0.0, f64::max)
}

/// `measure`, or 0 when another workload was selected on the command line
/// (`core-bench parse`, to profile one step with perf).
fn measure_if(name: &str, only: &Option<String>, pass: impl FnMut() -> usize) -> f64 {
    match only {
        Some(o) if o != name => 0.0,
        _ => measure(pass),
    }
}

fn main() {
    let only = std::env::args().nth(1);
    let keys = PiiKeys::from_secret(DEV_PII_KEY, "k1", true).expect("the development key");
    let mut counter: u64 = 0;
    let mut nonce = move || {
        counter += 1;
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&counter.to_le_bytes());
        n
    };

    // The default scoring model (config/scoring.json), as engine scores each batch with it.
    let model_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/scoring.json");
    let model = std::fs::read(model_path)
        .ok()
        .and_then(|text| Model::parse(&text).ok());
    let scoring = model.as_ref();
    if scoring.is_none() {
        eprintln!("core-bench: no scoring model at {model_path}: the plan is measured without one");
    }

    let mut rng = Lcg(0x6b696e646c696e67);
    let bodies: Vec<Vec<u8>> = (0..BODIES).map(|i| beacon_body(i, &mut rng)).collect();
    let queries: Vec<String> = (0..BODIES).map(|i| pixel_query(i, &mut rng)).collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();

    // The data must take the real path: every event accepted, every sender a person.
    for (i, body) in bodies.iter().enumerate() {
        let b = beacon::parse(body, NOW, Some(&keys), &mut nonce).expect("a valid beacon");
        assert!(
            b.rejected.is_empty(),
            "beacon {i} rejected: {:?}",
            b.rejected
        );
        assert_eq!(b.accepted(), EVENTS_PER_BEACON);
    }
    for ua in UAS {
        assert_eq!(classify(&hints(ua)), Traffic::Human, "{ua}");
    }
    for q in &queries {
        PixelQuery::parse(q)
            .into_event("evt_check".into(), NOW)
            .expect("a valid pixel");
    }

    // --- beacons -------------------------------------------------------------------------
    let mut pending: Vec<IngestMessage> = Vec::with_capacity(QUEUE_BATCH + EVENTS_PER_BEACON);
    let mut statements = 0usize;
    let mut batches = 0usize;
    let beacon_rate = measure_if("beacon", &only, || {
        let mut events = 0;
        for (i, body) in bodies.iter().enumerate() {
            let traffic = classify(&hints(UAS[i % UAS.len()]));
            let b = beacon::parse(body, NOW, Some(&keys), &mut nonce).expect("valid");
            events += if traffic == Traffic::Human {
                b.accepted()
            } else {
                0
            };
            pending.extend(b.messages);
            if pending.len() >= QUEUE_BATCH {
                statements += black_box(batch_statements(&pending, scoring)).len();
                batches += 1;
                pending.clear();
            }
        }
        events
    });
    let statements_per_batch = statements as f64 / batches.max(1) as f64;

    let json_rate = measure_if("json", &only, || {
        let mut events = 0;
        for body in &bodies {
            let v: serde_json::Value = serde_json::from_slice(body).expect("json");
            events += v["events"].as_array().map_or(0, Vec::len);
            black_box(v);
        }
        events
    });

    // The queue hop as well: track encodes each message as JSON text, engine decodes it.
    let mut pending: Vec<IngestMessage> = Vec::with_capacity(QUEUE_BATCH + EVENTS_PER_BEACON);
    let full_rate = measure_if("full", &only, || {
        let mut events = 0;
        for (i, body) in bodies.iter().enumerate() {
            let traffic = classify(&hints(UAS[i % UAS.len()]));
            let b = beacon::parse(body, NOW, Some(&keys), &mut nonce).expect("valid");
            events += if traffic == Traffic::Human {
                b.accepted()
            } else {
                0
            };
            for m in &b.messages {
                let text = serde_json::to_string(m).expect("encode");
                pending.push(serde_json::from_str(&text).expect("decode"));
            }
            if pending.len() >= QUEUE_BATCH {
                black_box(batch_statements(&pending, scoring));
                pending.clear();
            }
        }
        events
    });

    // --- pixels --------------------------------------------------------------------------
    let mut pending: Vec<IngestMessage> = Vec::with_capacity(QUEUE_BATCH);
    let mut ids: u64 = 0;
    let pixel_rate = measure_if("pixel", &only, || {
        let mut events = 0;
        for (i, q) in queries.iter().enumerate() {
            let traffic = classify(&hints(UAS[i % UAS.len()]));
            ids += 1;
            let id = format!("evt_{ids:032x}"); // the shape of track's random ids
            let event = PixelQuery::parse(q).into_event(id, NOW).expect("valid");
            if traffic == Traffic::Human {
                events += 1;
            }
            pending.push(IngestMessage::Event(event));
            if pending.len() >= QUEUE_BATCH {
                black_box(batch_statements(&pending, scoring));
                pending.clear();
            }
        }
        events
    });
    let query_rate = measure_if("query", &only, || {
        let mut events = 0;
        for q in &queries {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            events += 1;
            black_box(pairs);
        }
        events
    });

    // --- where the time goes (each step alone) --------------------------------------------
    let parse_rate = measure_if("parse", &only, || {
        let mut events = 0;
        for body in &bodies {
            let b = beacon::parse(body, NOW, Some(&keys), &mut nonce).expect("valid");
            events += b.accepted();
            black_box(b);
        }
        events
    });
    let parsed: Vec<Vec<IngestMessage>> = bodies
        .chunks(QUEUE_BATCH / EVENTS_PER_BEACON)
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|b| {
                    beacon::parse(b, NOW, Some(&keys), &mut nonce)
                        .expect("valid")
                        .messages
                })
                .collect()
        })
        .collect();
    let plan_rate = measure_if("plan", &only, || {
        let mut events = 0;
        for batch in &parsed {
            black_box(batch_statements(batch, scoring));
            events += batch.len();
        }
        events
    });
    let plan_unscored_rate = measure_if("plan_unscored", &only, || {
        let mut events = 0;
        for batch in &parsed {
            black_box(batch_statements(batch, None));
            events += batch.len();
        }
        events
    });
    let classify_rate = measure_if("classify", &only, || {
        let mut calls = 0;
        for ua in UAS {
            black_box(classify(&hints(black_box(ua))));
            calls += 1;
        }
        calls
    });
    let mut ids: u64 = 0;
    let pixel_parse_rate = measure_if("pixel_parse", &only, || {
        let mut events = 0;
        for q in &queries {
            ids += 1;
            let id = format!("evt_{ids:032x}");
            black_box(PixelQuery::parse(q).into_event(id, NOW).expect("valid"));
            events += 1;
        }
        events
    });

    // --- scoring rules (issue: rule evaluation ≥ 1,000,000 rule checks/s) -------------------
    // Every rule of the model checked against every event of the beacons: a check is one
    // rule's event-name match plus, when it matches, its conditions.
    let rule_events: Vec<kindling::event::Event> = bodies
        .iter()
        .flat_map(|body| {
            beacon::parse(body, NOW, Some(&keys), &mut nonce)
                .expect("valid")
                .messages
                .into_iter()
                .filter_map(|m| match m {
                    IngestMessage::Event(e) => Some(e),
                    _ => None,
                })
        })
        .collect();
    let rules_rate = match scoring {
        Some(m) => measure_if("rules", &only, || {
            let mut checks = 0;
            for e in &rule_events {
                for r in &m.rules {
                    let hit = r.event.as_deref() == Some(e.name.as_str())
                        && kindling::scoring::rules::all_hold(&r.conditions, &e.properties);
                    black_box(hit);
                    checks += 1;
                }
            }
            checks
        }),
        None => 0.0,
    };

    // The send decision: 10,000 situations (marketing and transactional, consent or not, 0-4
    // recent sends, sales contacts, all hours of the day in two time zones), decided in turn.
    let recent_pool: Vec<kindling::Millis> = (0..4)
        .map(|i| kindling::Millis(NOW.0 - (i + 1) * 2 * kindling::Millis::DAY))
        .collect();
    let situations: Vec<Situation> = (0..10_000i64)
        .map(|i| Situation {
            kind: if i % 10 == 0 {
                Kind::Transactional
            } else {
                Kind::Marketing
            },
            consent: if i % 7 == 0 {
                Err(Refusal::Withdrawn)
            } else {
                Ok(())
            },
            recent: &recent_pool[..(i % 5) as usize],
            utc_offset_min: if i % 2 == 0 { 480 } else { 0 },
            last_sales_contact: (i % 11 == 0).then(|| kindling::Millis(NOW.0 - i * 1000)),
            journey_cap: None,
            now: kindling::Millis(NOW.0 + (i % 24) * kindling::Millis::HOUR),
        })
        .collect();
    let policy = Policy::default();
    let decide_rate = measure_if("decide", &only, || {
        for s in &situations {
            black_box(decide(&policy, black_box(s)));
        }
        situations.len()
    });

    let out = [
        ("core_decisions_per_s", decide_rate),
        ("core_rule_checks_per_s", rules_rate),
        ("core_beacon_events_per_s", beacon_rate),
        ("core_beacon_json_events_per_s", json_rate),
        ("core_beacon_full_events_per_s", full_rate),
        ("core_pixel_events_per_s", pixel_rate),
        ("core_pixel_query_events_per_s", query_rate),
        ("core_parse_events_per_s", parse_rate),
        ("core_plan_events_per_s", plan_rate),
        ("core_plan_unscored_events_per_s", plan_unscored_rate),
        ("core_classify_per_s", classify_rate),
        ("core_pixel_parse_events_per_s", pixel_parse_rate),
        ("core_statements_per_batch", statements_per_batch),
        ("core_bytes_per_beacon", body_bytes as f64 / BODIES as f64),
        (
            "core_scoring_model",
            if scoring.is_some() { 1.0 } else { 0.0 },
        ),
    ];
    for (k, v) in out {
        println!("{k} {v:.1}");
    }
    eprintln!(
        "core-bench: beacons {beacon_rate:.0} events/s (bare JSON read {json_rate:.0}/s, with queue encode+decode {full_rate:.0}/s); \
         pixels {pixel_rate:.0} events/s (bare query decode {query_rate:.0}/s); \
         {statements_per_batch:.1} statements per 100-message batch"
    );
    eprintln!(
        "core-bench: alone: beacon::parse {parse_rate:.0} events/s, batch_statements {plan_rate:.0} events/s \
         ({plan_unscored_rate:.0} unscored), classify {classify_rate:.0} UAs/s, pixel parse+into_event {pixel_parse_rate:.0} events/s"
    );
}

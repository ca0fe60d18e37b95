//! Black-box tests of the whole function set on workerd: the stack is started once on its own
//! ports and state folder (scripts/stack.sh), driven over HTTP, and stopped at the end.

#![cfg(not(target_arch = "wasm32"))]

mod delivery;
mod forms;
mod journeys;
mod scoring;
mod support;
mod tracking;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::sync::Arc;
use support::*;

const PORT_BASE: u16 = 18787;

fn main() {
    let mut args = Arguments::from_args();
    // The functions share two cores; one trial at a time keeps timings honest.
    args.test_threads.get_or_insert(1);
    if args.list {
        libtest_mimic::run(&args, trials(None)).exit();
    }
    let stack = Arc::new(Stack::start(PORT_BASE));
    let conclusion = libtest_mimic::run(&args, trials(Some(stack.clone())));
    if conclusion.has_failed() {
        eprintln!("{}", stack.logs());
    }
    drop(stack);
    conclusion.exit();
}

type Check = fn(&Stack) -> Result<(), Failed>;

/// `tracking :: beacon_x` → `beacon_x`.
fn short_name(path: &'static str) -> &'static str {
    path.rsplit(':').next().unwrap_or(path).trim()
}

fn trials(stack: Option<Arc<Stack>>) -> Vec<Trial> {
    // Each check is named after its function; the order is the order they run in.
    macro_rules! checks {
        ($($check:path),* $(,)?) => {
            [$((short_name(stringify!($check)), $check as Check)),*]
        };
    }
    let checks = checks![
        pixel_page_view_reaches_the_contact_timeline,
        pixel_answers_a_gif_even_for_malformed_parameters,
        pixel_from_an_unknown_site_is_dropped_and_counted,
        engine_cron_uses_the_scheduled_time_as_now,
        api_requires_the_admin_token,
        api_rejects_bad_parameters_with_named_fields,
        unknown_routes_404_and_wrong_methods_405_with_json,
        hostile_requests_never_get_a_5xx,
        tracking::beacon_events_identify_and_attribution,
        tracking::beacon_bad_input_gets_named_4xx,
        tracking::bots_and_do_not_track_are_dropped_and_counted,
        tracking::snippet_is_served_small_and_cacheable,
        tracking::email_opens_and_clicks_follow_signed_tokens_only,
        tracking::server_side_ingest_is_segment_compatible_and_deduplicated,
        tracking::snippet_in_headless_chromium_reaches_the_timeline,
        tracking::hostile_traffic_interleaved_with_valid_events_loses_nothing,
        tracking::concurrent_beacons_and_pixels_share_sends_and_arrive_once,
        scoring::a_lead_is_scored_promoted_and_decayed_as_specified,
        scoring::invalid_models_are_refused_and_the_active_one_stays,
        scoring::a_customer_becomes_new_then_dormant_in_virtual_time,
        scoring::a_model_change_rescores_history_on_the_cron,
        scoring::tags_follow_forms_behaviour_and_orders_on_the_cron,
        forms::a_submission_becomes_a_contact_with_sealed_pii_and_consent,
        forms::the_same_person_in_other_spellings_is_one_contact,
        forms::bad_input_gets_a_documented_answer_and_never_a_5xx,
        forms::html_forms_redirect_and_bots_are_dropped_quietly,
        forms::rate_limit_answers_429_with_retry_after,
        forms::one_click_unsubscribe_withdraws_consent_at_once,
        forms::export_and_erasure_are_complete_and_audited,
        forms::the_demo_landing_page_works_in_headless_chromium,
        delivery::email_goes_out_through_the_provider_with_tracking_and_unsubscribe,
        delivery::sms_and_wecom_and_signed_webhooks_reach_their_providers,
        delivery::the_decision_caps_defers_and_suppresses_with_reasons,
        delivery::failures_are_retried_with_backoff_and_dead_lettered_without_double_sends,
        delivery::receipts_move_states_and_protect_the_person,
        delivery::templates_are_validated_previewed_and_ab_tested,
        journeys::invalid_journeys_are_refused_with_precise_errors,
        journeys::people_live_the_seeded_journeys_in_virtual_time,
        journeys::overlapping_cron_ticks_step_each_enrollment_once,
        // Last: searches everything the tests above stored for plaintext PII.
        tracking::no_plaintext_pii_in_local_storage_or_logs,
    ];
    checks
        .iter()
        .map(|(name, check)| {
            let stack = stack.clone();
            let check = *check;
            Trial::test(*name, move || match stack {
                Some(s) => check(&s),
                None => Ok(()),
            })
        })
        .collect()
}

fn contact_for(stack: &Stack, vid: &str) -> Option<Value> {
    let a = admin_get(&format!("{}/v1/contacts?vid={vid}", stack.api()));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()["contacts"].get(0).cloned()
}

fn status(stack: &Stack) -> Value {
    let a = admin_get(&format!("{}/v1/system/status", stack.api()));
    assert_eq!(a.status, 200);
    a.json()
}

fn drops(stack: &Stack, reason: &str) -> i64 {
    status(stack)["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["source"] == "pixel" && d["reason"] == reason)
        .map(|d| d["count"].as_i64().unwrap_or(0))
        .sum()
}

/// A GET as a person's browser sends it: tools' default user agents count as bots.
fn browser_get(url: &str) -> Answer {
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    request("GET", url, &[("User-Agent", chrome)], None)
}

fn assert_gif(a: &Answer) {
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "image/gif");
    assert_eq!(a.body.len(), 43);
    assert_eq!(&a.body[..6], b"GIF89a");
    assert!(a
        .header("cache-control")
        .unwrap_or_default()
        .contains("no-store"));
}

fn pixel_page_view_reaches_the_contact_timeline(s: &Stack) -> Result<(), Failed> {
    let vid = fresh_visitor("timeline");
    let url = "https%3A%2F%2Fshop.example%2Fcases%2Fsteel%3Fq%3D1";
    assert_gif(&browser_get(&format!(
        "{}/p.gif?site=demo&vid={vid}&url={url}",
        s.track()
    )));

    let contact = eventually("the contact of the page view", || contact_for(s, &vid));
    assert_eq!(contact["lead_status"], "anonymous");
    assert_eq!(contact["visitor_ids"][0], vid.as_str());
    let id = contact["id"].as_str().unwrap_or_default().to_string();

    let timeline = admin_get(&format!("{}/v1/contacts/{id}/timeline", s.api()));
    assert_eq!(timeline.status, 200);
    let events = timeline.json()["events"].clone();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events[0]["name"], "page");
    assert_eq!(events[0]["site"], "demo");
    assert_eq!(
        events[0]["properties"]["url"],
        "https://shop.example/cases/steel?q=1"
    );
    Ok(())
}

fn pixel_answers_a_gif_even_for_malformed_parameters(s: &Stack) -> Result<(), Failed> {
    let before = drops(s, "invalid_visitor");
    for q in [
        "",
        "site=demo&vid=%FF%FE",
        "site=demo&vid=<script>",
        "vid=v_12345678&site=%00",
    ] {
        assert_gif(&browser_get(&format!("{}/p.gif?{q}", s.track())));
    }
    // "vid=%FF%FE" and "vid=<script>" are both invalid visitors; the others have other reasons.
    eventually("the drops to be counted", || {
        (drops(s, "invalid_visitor") >= before + 2).then_some(())
    });
    Ok(())
}

fn pixel_from_an_unknown_site_is_dropped_and_counted(s: &Stack) -> Result<(), Failed> {
    let before = drops(s, "unknown_site");
    let vid = fresh_visitor("unknown");
    assert_gif(&browser_get(&format!(
        "{}/p.gif?site=not-registered&vid={vid}",
        s.track()
    )));
    eventually("the unknown-site drop", || {
        (drops(s, "unknown_site") == before + 1).then_some(())
    });
    assert!(
        contact_for(s, &vid).is_none(),
        "no contact for a dropped event"
    );
    Ok(())
}

fn engine_cron_uses_the_scheduled_time_as_now(s: &Stack) -> Result<(), Failed> {
    // 2026-06-18T00:00:00Z, the day of the 618 sale: far from the machine's clock.
    let at = 1_781_740_800_000_i64;
    let a = run_cron(s, at);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(status(s)["last_cron_at"], "2026-06-18T00:00:00.000Z");
    Ok(())
}

fn api_requires_the_admin_token(s: &Stack) -> Result<(), Failed> {
    let url = format!("{}/v1/system/status", s.api());
    let none = get(&url);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"], "unauthorized");
    let wrong = request(
        "GET",
        &url,
        &[("Authorization", "Bearer dev-admin-token")],
        None,
    );
    assert_eq!(wrong.status, 401, "the dev token is not this stack's token");
    assert_eq!(admin_get(&url).status, 200);
    Ok(())
}

fn api_rejects_bad_parameters_with_named_fields(s: &Stack) -> Result<(), Failed> {
    let cases = [
        ("/v1/contacts", "vid"),
        ("/v1/contacts?vid=x", "vid"),
        ("/v1/contacts/not-an-id", "id"),
        (
            "/v1/contacts/c_000000000000000000000000/timeline?limit=0",
            "limit",
        ),
        (
            "/v1/contacts/c_000000000000000000000000/timeline?before=soon",
            "before",
        ),
    ];
    for (path, field) in cases {
        let a = admin_get(&format!("{}{path}", s.api()));
        assert_eq!(a.status, 400, "{path}");
        assert_eq!(a.json()["field"], field, "{path}");
    }
    let missing = admin_get(&format!(
        "{}/v1/contacts/c_000000000000000000000000",
        s.api()
    ));
    assert_eq!(missing.status, 404);
    Ok(())
}

fn unknown_routes_404_and_wrong_methods_405_with_json(s: &Stack) -> Result<(), Failed> {
    for base in [s.track(), s.forms(), s.engine(), s.api()] {
        let a = get(&format!("{base}/no/such/route"));
        assert_eq!(a.status, 404, "{base}");
        assert_eq!(a.json()["error"], "not_found");
    }
    let a = request("POST", &format!("{}/p.gif", s.track()), &[], Some(b"x"));
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["error"], "method_not_allowed");
    assert!(a.header("allow").unwrap_or_default().contains("GET"));
    let auth = format!("Bearer {TOKEN}");
    let a = request(
        "DELETE",
        &format!("{}/v1/contacts", s.api()),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["error"], "method_not_allowed");
    Ok(())
}

fn hostile_requests_never_get_a_5xx(s: &Stack) -> Result<(), Failed> {
    let auth = format!("Bearer {TOKEN}");
    let long = "A".repeat(16 * 1024);
    let paths = [
        "/p.gif?site=demo&vid=v_12345678&url=https://x/%27%20OR%201%3D1--".to_string(),
        "/p.gif?site=demo&vid=v_12345678&e=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
        format!("/p.gif?site=demo&vid=v_12345678&url=https://x/{long}"),
        "/p.gif?%%%%&&&===".to_string(),
        "/v1/contacts?vid=%27%3B%20DROP%20TABLE%20contacts%3B--".to_string(),
        "/v1/contacts/c_'%20OR%20'1'='1/timeline".to_string(),
        "/v1/sites/demo/../../etc/passwd".to_string(),
        "/%C3%28/%FF".to_string(),
    ];
    for base in [s.track(), s.forms(), s.engine(), s.api()] {
        for p in &paths {
            let a = request(
                "GET",
                &format!("{base}{p}"),
                &[("Authorization", &auth)],
                None,
            );
            assert!(a.status < 500, "{base}{p} answered {}", a.status);
        }
    }
    let bodies: [&[u8]; 4] = [
        b"{",
        b"\xff\xfe\x00",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{\"name\": 5}",
    ];
    for body in bodies {
        let a = request(
            "PUT",
            &format!("{}/v1/sites/hostile", s.api()),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        );
        assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(a.json()["field"], "body");
    }
    // Still healthy afterwards.
    for base in [s.track(), s.forms(), s.engine(), s.api()] {
        assert_eq!(get(&format!("{base}/health")).status, 200);
    }
    Ok(())
}

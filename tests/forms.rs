//! Lead capture on the running stack: landing-page form submissions through to contacts with
//! sealed personal data and a consent ledger, hostile input, bots and rate limits, and the
//! rights people keep over their data (preferences, one-click unsubscribe, export, erasure).

use crate::support::*;
use libtest_mimic::Failed;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// The stack's KINDLING_LINK_KEY (scripts/stack.sh's development default).
const LINK_KEY: &[u8] = b"dev-link-key";
const FORM: &str = "demo-signup";

/// The demo landing page's origin, which the demo form allows (scripts/stack.sh: base - 707).
fn landing(s: &Stack) -> String {
    format!("http://127.0.0.1:{}", s.base - 707)
}

/// A client address no other request of the run uses: the per-IP limit is 20 a minute, and a
/// trial must never be refused because earlier ones spent its budget.
fn client_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("10.{}.{}.{}", n / 62_500 % 250, n / 250 % 250, n % 250 + 1)
}

/// A mainland mobile number (national form) no other lead of the run has.
fn fresh_mobile() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("137{:04}{:04}", now_ms() / 1000 % 10_000, n % 10_000)
}

struct Lead {
    email: String,
    mobile: String,
    name: String,
}

impl Lead {
    fn new(tag: &str, name: &str) -> Lead {
        Lead {
            email: format!("{}@forms.example", fresh_visitor(tag).to_lowercase()),
            mobile: fresh_mobile(),
            name: name.into(),
        }
    }

    /// Every field of the demo form filled in, the email box ticked and the SMS box not.
    fn fields(&self) -> Value {
        json!({
            "name": self.name, "email": self.email, "phone": self.mobile,
            "company": "Acme 制造", "industry": "manufacturing", "company_size": "500",
            "job_title": "市场总监", "consent_email": "on",
        })
    }

    fn e164(&self) -> String {
        format!("+86{}", self.mobile)
    }
}

fn with(base: &Value, changes: &Value) -> Value {
    let mut v = base.clone();
    if let (Some(o), Some(c)) = (v.as_object_mut(), changes.as_object()) {
        for (k, x) in c {
            if x.is_null() {
                o.remove(k);
            } else {
                o.insert(k.clone(), x.clone());
            }
        }
    }
    v
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// A POST to a form as the landing page's script would send it: its origin, a desktop browser,
/// a client address of its own. `extra` replaces a default header; an empty value removes it.
fn post(s: &Stack, form: &str, content_type: &str, body: &[u8], extra: &[(&str, &str)]) -> Answer {
    let origin = landing(s);
    let ip = client_ip();
    let mut headers = vec![
        ("Content-Type", content_type),
        ("User-Agent", CHROME),
        ("Origin", origin.as_str()),
        ("CF-Connecting-IP", ip.as_str()),
    ];
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k, v));
    }
    headers.retain(|(_, v)| !v.is_empty());
    request(
        "POST",
        &format!("{}/f/{form}", s.forms()),
        &headers,
        Some(body),
    )
}

fn submit(s: &Stack, fields: &Value, extra: &[(&str, &str)]) -> Answer {
    post(
        s,
        FORM,
        "application/json",
        fields.to_string().as_bytes(),
        extra,
    )
}

/// The event id of an accepted JSON submission.
fn accepted(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", text(a));
    assert_eq!(a.json()["status"], "accepted", "{}", text(a));
    a.json()["id"].as_str().unwrap_or_default().to_string()
}

fn urlencoded(fields: &Value) -> Vec<u8> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields.as_object().into_iter().flatten() {
        out.append_pair(k, v.as_str().unwrap_or_default());
    }
    out.finish().into_bytes()
}

fn find(s: &Stack, key: &str, value: &str) -> Option<Value> {
    let q: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let a = admin_get(&format!("{}/v1/contacts?{key}={q}", s.api()));
    assert_eq!(a.status, 200, "?{key}={value}: {}", text(&a));
    a.json()["contacts"].get(0).cloned()
}

/// The contact a submission made, once the engine has written it.
fn arrived(s: &Stack, email: &str) -> Value {
    eventually(&format!("the contact of {email}"), || {
        find(s, "email", email).filter(|c| c["has_email"] == true)
    })
}

fn id_of(c: &Value) -> String {
    c["id"].as_str().unwrap_or_default().to_string()
}

fn api(s: &Stack, method: &str, path: &str, token: &str, body: Option<&Value>) -> Answer {
    let bytes = body.map(Value::to_string);
    send_json(
        method,
        &format!("{}{path}", s.api()),
        token,
        bytes.as_deref().map(str::as_bytes),
    )
}

fn admin(s: &Stack, path: &str) -> Value {
    let a = admin_get(&format!("{}{path}", s.api()));
    assert_eq!(a.status, 200, "GET {path}: {}", text(&a));
    a.json()
}

fn new_token(s: &Stack, name: &str, scopes: &[&str]) -> String {
    let a = api(
        s,
        "POST",
        "/v1/tokens",
        TOKEN,
        Some(&json!({"name": name, "scopes": scopes})),
    );
    assert_eq!(a.status, 201, "{}", text(&a));
    a.json()["token"].as_str().unwrap_or_default().to_string()
}

fn consents(s: &Stack, id: &str) -> Value {
    admin(s, &format!("/v1/contacts/{id}/consents"))
}

fn ledger(s: &Stack, id: &str) -> Vec<Value> {
    consents(s, id)["ledger"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn timeline(s: &Stack, id: &str) -> Vec<Value> {
    admin(s, &format!("/v1/contacts/{id}/timeline?limit=500"))["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn audit_actions(s: &Stack, id: &str) -> Vec<(String, String)> {
    admin(s, &format!("/v1/audit?contact={id}"))["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("action"), f("actor"))
        })
        .collect()
}

fn form_drops(s: &Stack, reason: &str) -> i64 {
    admin(s, "/v1/system/status")["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["source"] == "form" && d["reason"] == reason)
        .map(|d| d["count"].as_i64().unwrap_or(0))
        .sum()
}

fn masked_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or_default();
    format!("{}***@{domain}", local.chars().next().unwrap_or('?'))
}

fn masked_mobile(mobile: &str) -> String {
    format!("{}****{}", &mobile[..3], &mobile[7..])
}

pub fn a_submission_becomes_a_contact_with_sealed_pii_and_consent(s: &Stack) -> Result<(), Failed> {
    let lead = Lead::new("sealed", "张伟");
    let a = submit(s, &lead.fields(), &[]);
    let event_id = accepted(&a);
    assert_eq!(
        a.json()["redirect"],
        format!("{}/thanks.html", landing(s)),
        "the success page, resolved against the posting origin"
    );
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some(landing(s).as_str())
    );

    let c = arrived(s, &lead.email);
    let id = id_of(&c);
    assert_eq!(c["email"], lead.email.as_str(), "admin reads in full");
    assert_eq!(c["phone"], lead.e164().as_str());
    assert_eq!(c["name"], "张伟");
    assert_eq!(c["has_phone"], true);
    assert_eq!(c["lead_status"], "known");
    for (k, v) in [
        ("company", "Acme 制造"),
        ("industry", "manufacturing"),
        ("company_size", "500"),
        ("job_title", "市场总监"),
    ] {
        assert_eq!(c["attributes"][k], v, "attribute {k}: {}", c["attributes"]);
    }
    for personal in ["email", "phone", "name"] {
        assert!(
            c["attributes"].get(personal).is_none(),
            "{personal} is not an attribute: {}",
            c["attributes"]
        );
    }
    // company_size 500 (+3) and a director's title (+5).
    eventually("score 8", || {
        let c = admin(s, &format!("/v1/contacts/{id}"));
        (c["score"] == 8).then_some(())
    });

    let events = timeline(s, &id);
    let submitted: Vec<_> = events
        .iter()
        .filter(|e| e["name"] == "form_submitted")
        .collect();
    assert_eq!(submitted.len(), 1, "{events:?}");
    assert_eq!(submitted[0]["id"], event_id.as_str());
    assert_eq!(submitted[0]["properties"]["form_id"], FORM);
    let shown = serde_json::to_string(&events).unwrap_or_default();
    for plain in [lead.email.as_str(), lead.mobile.as_str(), "张伟"] {
        assert!(!shown.contains(plain), "{plain} in the timeline: {shown}");
    }

    let reader = new_token(s, "forms-reader", &["read"]);
    let m = api(s, "GET", &format!("/v1/contacts/{id}"), &reader, None);
    assert_eq!(m.status, 200, "{}", text(&m));
    let m = m.json();
    assert_eq!(m["email"], masked_email(&lead.email));
    assert_eq!(m["phone"], masked_mobile(&lead.mobile));
    assert_eq!(m["name"], "张*");
    let q: String = form_urlencoded::byte_serialize(lead.email.as_bytes()).collect();
    let found = api(s, "GET", &format!("/v1/contacts?email={q}"), &reader, None);
    assert_eq!(found.status, 200);
    assert_eq!(
        found.json()["contacts"][0]["email"],
        masked_email(&lead.email)
    );
    assert!(!text(&found).contains(&lead.mobile));
    let export = api(
        s,
        "GET",
        &format!("/v1/contacts/{id}/export"),
        &reader,
        None,
    );
    assert_eq!(
        export.status,
        403,
        "export needs pii:read: {}",
        text(&export)
    );

    let cs = consents(s, &id);
    assert_eq!(cs["contact_id"], id.as_str());
    assert_eq!(cs["current"]["email"], true, "{cs}");
    assert_eq!(cs["current"]["sms"], Value::Null, "never asked: {cs}");
    let rows = cs["ledger"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{cs}");
    let row = &rows[0];
    assert_eq!(row["channel"], "email");
    assert_eq!(row["granted"], true);
    assert_eq!(row["wording_version"], "2026-12-01");
    assert_eq!(row["form_id"], FORM);
    assert_eq!(row["source"], "form");
    assert_eq!(row["event_id"], event_id.as_str());

    let actions = audit_actions(s, &id);
    assert!(
        actions.contains(&("contact.pii_read".into(), "admin".into())),
        "{actions:?}"
    );
    Ok(())
}

pub fn the_same_person_in_other_spellings_is_one_contact(s: &Stack) -> Result<(), Failed> {
    let base = json!({"name": "李娜", "company": "Acme", "industry": "finance"});
    let spellings = [
        json!({"email": " Li.Na@Example.COM ", "phone": "138 0013 8000", "consent_email": "on"}),
        json!({"email": "li.na@example.com", "phone": "+86 13800138000", "consent_sms": "on"}),
        json!({"email": "LI.NA@example.com\u{3000}", "phone": "１３８００１３８０００",
               "consent_email": "on", "consent_sms": "on"}),
    ];
    let mut ids = Vec::new();
    for spelling in &spellings {
        ids.push(accepted(&submit(s, &with(&base, spelling), &[])));
    }
    let c = eventually("one contact with three submissions", || {
        let c = find(s, "email", "li.na@example.com")?;
        let n = timeline(s, &id_of(&c))
            .iter()
            .filter(|e| e["name"] == "form_submitted")
            .count();
        (n >= 3).then_some(c)
    });
    let id = id_of(&c);
    let submitted: Vec<String> = timeline(s, &id)
        .iter()
        .filter(|e| e["name"] == "form_submitted")
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut want = ids.clone();
    want.sort();
    let mut got = submitted.clone();
    got.sort();
    assert_eq!(got, want, "each submission once, on the one contact");

    for (key, value) in [
        ("email", "LI.NA@EXAMPLE.COM"),
        ("phone", "13800138000"),
        ("phone", "+86 138-0013-8000"),
    ] {
        let other = find(s, key, value).unwrap_or_default();
        assert_eq!(other["id"], id.as_str(), "?{key}={value}");
    }
    // Each submission came without a visitor id and got one of its own: all now resolve here.
    for event in &ids {
        let by_visitor = find(s, "vid", &format!("form_{event}")).unwrap_or_default();
        assert_eq!(by_visitor["id"], id.as_str(), "the visitor of {event}");
    }
    let c = admin(s, &format!("/v1/contacts/{id}"));
    assert_eq!(c["merged_into"], Value::Null);
    // The later submissions' own contacts were merged into the first, and say so.
    let merges = admin(s, &format!("/v1/contacts/{id}/export"))["merges"].clone();
    let merged: Vec<&str> = merges
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["into_contact"] == id.as_str())
        .filter_map(|m| m["from_contact"].as_str())
        .collect();
    assert_eq!(merged.len(), 2, "{merges}");
    for from in merged {
        let gone = admin(s, &format!("/v1/contacts/{from}"));
        assert_eq!(gone["merged_into"], id.as_str(), "{gone}");
    }
    assert_eq!(c["phone"], "+8613800138000");
    assert_eq!(c["name"], "李娜");

    let rows = ledger(s, &id);
    let mut grants: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["granted"] == true)
        .map(|r| {
            (
                r["event_id"].as_str().unwrap_or_default().to_string(),
                r["channel"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    grants.sort();
    let mut expected = vec![
        (ids[0].clone(), "email".to_string()),
        (ids[1].clone(), "sms".to_string()),
        (ids[2].clone(), "email".to_string()),
        (ids[2].clone(), "sms".to_string()),
    ];
    expected.sort();
    assert_eq!(grants, expected, "every grant of the three submissions");
    let current = &consents(s, &id)["current"];
    assert_eq!(
        (&current["email"], &current["sms"]),
        (&json!(true), &json!(true))
    );
    Ok(())
}

/// Asserts a refusal: the status, and the field (and code, for 422) the JSON body names.
fn refused(what: &str, a: &Answer, status: u16, field: &str, code: &str) -> Value {
    assert_eq!(a.status, status, "{what}: {}", text(a));
    assert!(
        a.content_type.starts_with("application/json"),
        "{what}: {}",
        a.content_type
    );
    let body = a.json();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a message: {body}"
    );
    if status == 422 {
        assert_eq!(body["error"], "invalid_submission", "{what}: {body}");
        let fields = body["fields"].as_array().cloned().unwrap_or_default();
        assert_eq!(fields.len(), 1, "{what}: only the bad field: {body}");
        assert_eq!(
            (&fields[0]["field"], &fields[0]["code"]),
            (&json!(field), &json!(code)),
            "{what}: {body}"
        );
        assert!(fields[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    } else {
        assert_eq!(body["field"], field, "{what}: {body}");
        assert_eq!(body["error"], code, "{what}: {body}");
    }
    body
}

fn multipart(boundary: &str, parts: &[(&str, &str)], close: bool) -> Vec<u8> {
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    if close {
        body.push_str(&format!("--{boundary}--\r\n"));
    }
    body.into_bytes()
}

pub fn bad_input_gets_a_documented_answer_and_never_a_5xx(s: &Stack) -> Result<(), Failed> {
    let lead = Lead::new("hostile", "Wang Fang");
    let good = lead.fields();
    let json_with = |changes: Value| submit(s, &with(&good, &changes), &[]);
    let other_email = || format!("{}@forms.example", fresh_visitor("other").to_lowercase());

    // Markup is data: stored as typed, escaped wherever it is shown.
    let script = "<script>alert(1)</script> Acme";
    accepted(&json_with(json!({"company": script})));
    let c = arrived(s, &lead.email);
    assert_eq!(c["attributes"]["company"], script);

    // A consent box left unticked is no consent, not a refusal.
    let unticked = other_email();
    accepted(&json_with(
        json!({"email": unticked, "phone": null, "consent_email": null}),
    ));
    let c = arrived(s, &unticked);
    let cs = consents(s, &id_of(&c));
    assert_eq!(cs["ledger"], json!([]), "{cs}");
    assert_eq!(cs["current"]["email"], Value::Null, "{cs}");

    let big = format!("{{\"company\": \"{}\"}}", "A".repeat(1 << 20));
    let a = post(s, FORM, "application/json", big.as_bytes(), &[]);
    refused("1 MB body", &a, 413, "body", "too_large");

    let cases_422 = [
        (
            "NUL in a text field",
            json!({"company": "Acme\u{0}Corp"}),
            "company",
            "control_characters",
        ),
        (
            "escape sequence",
            json!({"job_title": "Director\u{1b}[2J"}),
            "job_title",
            "control_characters",
        ),
        (
            "US number",
            json!({"phone": "+1 415 555 0100"}),
            "phone",
            "phone_country",
        ),
        (
            "landline",
            json!({"phone": "010-6552 9988"}),
            "phone",
            "invalid_phone",
        ),
        (
            "letters for a phone",
            json!({"phone": "138-CALL-NOW"}),
            "phone",
            "invalid_phone",
        ),
        (
            "invalid email",
            json!({"email": "zhang@"}),
            "email",
            "invalid_email",
        ),
        (
            "not an option",
            json!({"industry": "piracy"}),
            "industry",
            "not_an_option",
        ),
        (
            "company size as a range",
            json!({"company_size": "500-999"}),
            "company_size",
            "not_an_option",
        ),
        (
            "too long",
            json!({"job_title": "x".repeat(101)}),
            "job_title",
            "too_long",
        ),
        ("missing name", json!({"name": null}), "name", "required"),
        (
            "ideographic spaces only",
            json!({"name": "\u{3000}\u{3000} "}),
            "name",
            "required",
        ),
        (
            "email as a list",
            json!({"email": [lead.email, other_email()]}),
            "email",
            "repeated",
        ),
    ];
    for (what, changes, field, code) in cases_422 {
        let body = refused(what, &json_with(changes), 422, field, code);
        assert_eq!(body["lang"], "en", "{what}");
    }

    let zh = submit(
        s,
        &with(&good, &json!({"email": "zhang@"})),
        &[("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")],
    );
    let body = refused(
        "invalid email in Chinese",
        &zh,
        422,
        "email",
        "invalid_email",
    );
    assert_eq!(body["lang"], "zh-CN");
    let chinese = |v: &Value| {
        v.as_str()
            .is_some_and(|m| m.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)))
    };
    assert!(chinese(&body["message"]), "{body}");
    assert!(chinese(&body["fields"][0]["message"]), "{body}");
    assert_eq!(
        zh.header("access-control-allow-origin"),
        Some(landing(s).as_str()),
        "the page's script can read the refusal"
    );

    // The email twice in a plain form post (no Referer to go back to: JSON).
    let mut twice = urlencoded(&good);
    twice.extend_from_slice(b"&email=second%40forms.example");
    let a = post(s, FORM, "application/x-www-form-urlencoded", &twice, &[]);
    refused("email sent twice", &a, 422, "email", "repeated");
    let dup_json = format!(
        "{{\"email\": \"{}\", \"email\": \"{}\", \"name\": \"x\", \"company\": \"y\"}}",
        lead.email,
        other_email()
    );
    let a = post(s, FORM, "application/json", dup_json.as_bytes(), &[]);
    refused("duplicate JSON key", &a, 422, "email", "repeated");

    let boundary = "----WebKitFormBoundaryq3ZyhSrcyDy0BoLs";
    let multipart_type = format!("multipart/form-data; boundary={boundary}");
    let pairs: Vec<(String, String)> = good
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let parts: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let a = post(
        s,
        FORM,
        &multipart_type,
        &multipart(boundary, &parts, true),
        &[("Accept", "application/json")],
    );
    accepted(&a);
    let unclosed = multipart(boundary, &parts, false);
    let a = post(s, FORM, &multipart_type, &unclosed, &[]);
    refused(
        "multipart without its closing line",
        &a,
        400,
        "body",
        "invalid_body",
    );
    let a = post(
        s,
        FORM,
        "multipart/form-data",
        &multipart(boundary, &parts, true),
        &[],
    );
    refused(
        "multipart without a boundary",
        &a,
        400,
        "body",
        "invalid_body",
    );
    let upload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"company\"; filename=\"a.exe\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nMZ\r\n--{boundary}--\r\n"
    );
    let a = post(s, FORM, &multipart_type, upload.as_bytes(), &[]);
    refused("a file upload", &a, 400, "body", "invalid_body");

    let malformed: [(&str, &str, &[u8]); 6] = [
        (
            "nested object",
            "application/json",
            br#"{"name": {"first": "Wei"}, "email": "a@b.cn"}"#,
        ),
        ("JSON array", "application/json", br#"[{"name": "Wei"}]"#),
        ("truncated JSON", "application/json", br#"{"name": "Wei""#),
        (
            "invalid UTF-8",
            "application/x-www-form-urlencoded",
            b"name=%FF%FE&company=x",
        ),
        (
            "a JSON body in another charset",
            "application/json; charset=gbk",
            b"{}",
        ),
        (
            "an empty field name",
            "application/x-www-form-urlencoded",
            b"=x&name=y",
        ),
    ];
    for (what, content_type, body) in malformed {
        let a = post(s, FORM, content_type, body, &[]);
        let status = if content_type.contains("gbk") {
            415
        } else {
            400
        };
        refused(what, &a, status, "body", "invalid_body");
    }
    let many: String = (0..101).map(|i| format!("f{i}=x&")).collect();
    let a = post(
        s,
        FORM,
        "application/x-www-form-urlencoded",
        many.as_bytes(),
        &[],
    );
    refused("101 fields", &a, 400, "body", "invalid_body");

    let a = post(s, FORM, "text/plain", b"name=Wei&email=a@b.cn", &[]);
    refused("text/plain", &a, 415, "body", "invalid_body");
    let a = post(s, FORM, "", &urlencoded(&good), &[]);
    refused("no content type", &a, 415, "body", "invalid_body");
    let a = post(s, "no-such-form", "application/json", b"{}", &[]);
    refused("unknown form", &a, 404, "form", "not_found");
    let a = post(s, "..%2F..%2Fetc%2Fpasswd", "application/json", b"{}", &[]);
    refused("a path for a form id", &a, 404, "form", "not_found");
    let a = submit(s, &good, &[("Origin", "https://evil.example")]);
    refused(
        "origin not allowed",
        &a,
        403,
        "origin",
        "origin_not_allowed",
    );
    assert_eq!(a.header("access-control-allow-origin"), None);
    let a = request("GET", &format!("{}/f/{FORM}", s.forms()), &[], None);
    assert_eq!(a.status, 405);

    // Still healthy, still taking leads.
    assert_eq!(get(&format!("{}/health", s.forms())).status, 200);
    let later = other_email();
    accepted(&json_with(json!({"email": later, "phone": null})));
    arrived(s, &later);
    Ok(())
}

pub fn html_forms_redirect_and_bots_are_dropped_quietly(s: &Stack) -> Result<(), Failed> {
    let page = format!("{}/", landing(s));
    let thanks = format!("{}/thanks.html", landing(s));
    let honeypots = form_drops(s, "form_honeypot");
    let too_fast = form_drops(s, "form_too_fast");
    let html_post = |fields: &Value, referer: &str| {
        post(
            s,
            FORM,
            "application/x-www-form-urlencoded",
            &urlencoded(fields),
            &[("Referer", referer), ("Accept", "text/html,*/*;q=0.8")],
        )
    };
    let a_while_ago = (now_ms() - 10_000).to_string();

    let bad = Lead::new("htmlbad", "Chen Jie");
    let a = html_post(
        &with(&bad.fields(), &json!({"email": "chen.jie@"})),
        &format!("{page}?utm_source=ad#form"),
    );
    assert_eq!(a.status, 303, "{}", text(&a));
    let back = a.header("location").unwrap_or_default();
    assert!(back.starts_with(&page), "back to the form: {back}");
    assert!(back.contains("email:invalid_email"), "{back}");
    assert_eq!(back, format!("{page}?kf_errors=email:invalid_email"));
    // Never back to a page the form does not belong to.
    let a = html_post(
        &with(&bad.fields(), &json!({"email": "chen.jie@"})),
        "https://evil.example/",
    );
    refused("a foreign Referer", &a, 422, "email", "invalid_email");

    let spam = Lead::new("honeypot", "Bot");
    let fields = with(
        &spam.fields(),
        &json!({"website": "http://spam.example", "_kts": a_while_ago}),
    );
    let a = html_post(&fields, &page);
    assert_eq!(
        (a.status, a.header("location")),
        (303, Some(thanks.as_str()))
    );

    // A fetch client's answer to a bot looks like any acceptance: an id shaped like a real one.
    let json_bot = submit(s, &fields, &[]);
    assert_eq!(json_bot.status, 200, "{}", text(&json_bot));
    let bot_id = json_bot.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(bot_id.starts_with("f_") && bot_id.len() == 34, "{bot_id}");

    let fast = Lead::new("toofast", "Bot");
    let now = (now_ms() - 100).to_string();
    let a = html_post(&with(&fast.fields(), &json!({"_kts": now})), &page);
    assert_eq!(
        (a.status, a.header("location")),
        (303, Some(thanks.as_str()))
    );

    let person = Lead::new("htmlok", "Zhao Lei");
    let vid = fresh_visitor("htmlform");
    let fields = with(
        &person.fields(),
        &json!({"website": "", "_kts": a_while_ago, "_kvid": vid}),
    );
    let a = html_post(&fields, &page);
    assert_eq!(a.status, 303, "{}", text(&a));
    assert_eq!(a.header("location"), Some(thanks.as_str()));
    assert!(a
        .header("cache-control")
        .unwrap_or_default()
        .contains("no-store"));
    let c = arrived(s, &person.email);
    assert_eq!(
        c["visitor_ids"],
        json!([vid]),
        "the snippet's visitor id is the lead's"
    );

    // The person's submission was sent after the bots': it has arrived, so would theirs.
    eventually("the honeypot and too-fast drops", || {
        (form_drops(s, "form_honeypot") > honeypots && form_drops(s, "form_too_fast") > too_fast)
            .then_some(())
    });
    assert!(find(s, "email", &spam.email).is_none(), "honeypot stored");
    assert!(
        find(s, "email", &fast.email).is_none(),
        "instant post stored"
    );
    assert!(find(s, "phone", &spam.mobile).is_none());
    Ok(())
}

pub fn rate_limit_answers_429_with_retry_after(s: &Stack) -> Result<(), Failed> {
    let ip = "10.250.0.1";
    let mut refused_after = None;
    // The limit is 20 a minute; a window boundary mid-loop can let up to 40 through.
    for n in 0..45 {
        let a = submit(s, &json!({}), &[("CF-Connecting-IP", ip)]);
        match a.status {
            422 => continue,
            429 => {
                refused_after = Some((n, a, now_ms() / 60_000));
                break;
            }
            other => panic!("post {n}: {other} {}", text(&a)),
        }
    }
    let (n, a, minute) = refused_after.ok_or("no 429 after 45 posts from one address")?;
    assert!(n >= 20, "refused after only {n} posts");
    let retry: u32 = a
        .header("retry-after")
        .and_then(|r| r.parse().ok())
        .ok_or("429 without a Retry-After in seconds")?;
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body = a.json();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some(landing(s).as_str()),
        "the page's script can read the refusal"
    );
    // Another client is unaffected.
    let other = Lead::new("ratelimit", "Sun Li");
    accepted(&submit(s, &other.fields(), &[]));
    // Windows are aligned to the minute: only within the same one must the address stay refused.
    let again = submit(s, &other.fields(), &[("CF-Connecting-IP", ip)]);
    if now_ms() / 60_000 == minute {
        assert_eq!(again.status, 429, "still refused within the minute");
    }
    Ok(())
}

fn one_click(s: &Stack, token: &str, query: &str) -> Answer {
    request(
        "POST",
        &format!("{}/u/{token}{query}", s.forms()),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "User-Agent",
                "Mozilla/5.0 (compatible; mail provider one-click)",
            ),
        ],
        Some(b"List-Unsubscribe=One-Click"),
    )
}

pub fn one_click_unsubscribe_withdraws_consent_at_once(s: &Stack) -> Result<(), Failed> {
    let lead = Lead::new("unsub", "Liu Yang");
    accepted(&submit(
        s,
        &with(&lead.fields(), &json!({"consent_sms": "on"})),
        &[],
    ));
    let id = id_of(&arrived(s, &lead.email));
    assert_eq!(ledger(s, &id).len(), 2);
    let token = kindling::link::sign_preferences(&id, LINK_KEY);
    let page_url = format!("{}/u/{token}", s.forms());

    let a = get(&page_url);
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    let html = text(&a);
    assert!(html.contains(&masked_email(&lead.email)), "{html}");
    assert!(
        !html.contains(&lead.email),
        "the page shows the address masked"
    );
    assert!(
        html.contains(r#"name="email" value="on" checked"#),
        "{html}"
    );
    assert!(html.contains(r#"name="sms" value="on" checked"#), "{html}");
    assert!(
        !html.contains(r#"name="wecom" value="on" checked"#),
        "{html}"
    );

    let (payload, sig) = token.split_once('.').unwrap_or_default();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{payload}.{flipped}{}", &sig[1..]);
    let nobody = kindling::link::sign_preferences("c_000000000000000000000000", LINK_KEY);
    for bad in [forged.as_str(), nobody.as_str(), "garbage", "a.b"] {
        let a = get(&format!("{}/u/{bad}", s.forms()));
        assert_eq!(a.status, 404, "{bad}");
        assert!(a.content_type.starts_with("text/html"));
        assert_eq!(one_click(s, bad, "").status, 404, "{bad}");
    }
    assert_eq!(ledger(s, &id).len(), 2, "forged links change nothing");
    let a = one_click(s, &token, "?channel=fax");
    assert_eq!(
        (a.status, a.json()["field"].clone()),
        (400, json!("channel"))
    );
    assert_eq!(
        ledger(s, &id).len(),
        2,
        "an unknown channel changes nothing"
    );

    let a = one_click(s, &token, "?channel=email");
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(a.content_type.starts_with("text/html"));
    // No waiting: the withdrawal is written before the answer.
    let cs = consents(s, &id);
    assert_eq!(cs["current"]["email"], false, "{cs}");
    assert_eq!(cs["current"]["sms"], true, "{cs}");
    let rows = cs["ledger"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 3, "{cs}");
    let withdrawal = rows
        .iter()
        .find(|r| r["granted"] == false)
        .cloned()
        .unwrap_or_default();
    assert_eq!(withdrawal["channel"], "email");
    assert_eq!(withdrawal["source"], "unsubscribe");

    let a = one_click(s, &token, "?channel=email");
    assert_eq!(a.status, 200);
    assert_eq!(
        ledger(s, &id).len(),
        3,
        "a repeated one-click records nothing"
    );

    let a = request(
        "POST",
        &page_url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"_prefs=1&wecom=on"),
    );
    assert_eq!(a.status, 200, "{}", text(&a));
    let cs = consents(s, &id);
    assert_eq!(
        cs["current"],
        json!({"email": false, "sms": false, "wecom": true}),
        "{cs}"
    );
    let rows = cs["ledger"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 5, "{cs}");
    let row = |channel: &str, granted: bool| {
        rows.iter()
            .find(|r| {
                r["channel"] == channel && r["granted"] == granted && r["source"] == "preferences"
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {channel} {granted} row: {cs}"))
    };
    assert_eq!(row("wecom", true)["wording_version"], "preferences-1");
    row("sms", false);

    let a = request(
        "POST",
        &page_url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"hello=world"),
    );
    assert_eq!(
        a.status,
        400,
        "neither one-click nor the form: {}",
        text(&a)
    );
    let html = text(&get(&page_url));
    assert!(
        !html.contains(r#"name="email" value="on" checked"#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="wecom" value="on" checked"#),
        "{html}"
    );
    Ok(())
}

pub fn export_and_erasure_are_complete_and_audited(s: &Stack) -> Result<(), Failed> {
    let lead = Lead::new("erase", "周杰");
    let vid = fresh_visitor("erase");
    let event_id = accepted(&submit(
        s,
        &with(&lead.fields(), &json!({"consent_sms": "on", "_kvid": vid})),
        &[],
    ));
    let id = id_of(&arrived(s, &lead.email));
    let path = format!("/v1/contacts/{id}");

    let export = admin(s, &format!("{path}/export"));
    assert_eq!(export["contact"]["id"], id.as_str());
    assert_eq!(export["contact"]["email"], lead.email.as_str());
    assert_eq!(export["contact"]["phone"], lead.e164().as_str());
    assert_eq!(export["contact"]["name"], "周杰");
    let events = export["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "form_submitted" && e["id"] == event_id.as_str()),
        "{export}"
    );
    let exported = export["consents"].as_array().cloned().unwrap_or_default();
    assert_eq!(exported.len(), 2, "{export}");
    for key in ["points", "lead_transitions", "merges"] {
        assert!(export[key].is_array(), "{key}: {export}");
    }

    let clerk = new_token(s, "forms-clerk", &["read", "write", "pii:read"]);
    let a = api(s, "DELETE", &path, &clerk, None);
    assert_eq!(a.status, 403, "erasure needs pii:erase: {}", text(&a));
    assert!(find(s, "email", &lead.email).is_some(), "nothing erased");

    let a = api(s, "DELETE", &path, TOKEN, None);
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["erased"], id.as_str());

    let c = admin(s, &path);
    assert!(c["erased_at"].is_string(), "{c}");
    for k in ["email", "phone", "name"] {
        assert_eq!(c[k], Value::Null, "{k}: {c}");
    }
    assert_eq!(
        (&c["has_email"], &c["has_phone"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(c["visitor_ids"], json!([]), "{c}");
    assert_eq!(c["attributes"], json!({}), "{c}");
    assert!(find(s, "email", &lead.email).is_none());
    assert!(find(s, "phone", &lead.mobile).is_none());
    assert!(find(s, "vid", &vid).is_none());
    let events = timeline(s, &id);
    assert!(!events.is_empty(), "events are kept for counts");
    for e in &events {
        assert_eq!(e["properties"], json!({}), "{e}");
    }

    let cs = consents(s, &id);
    assert_eq!(
        cs["current"],
        json!({"email": false, "sms": false, "wecom": false}),
        "{cs}"
    );
    let mut erased: Vec<&str> = cs["ledger"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["source"] == "erasure" && r["granted"] == false)
        .filter_map(|r| r["channel"].as_str())
        .collect();
    erased.sort_unstable();
    assert_eq!(erased, ["email", "sms", "wecom"], "{cs}");

    let again = api(s, "DELETE", &path, TOKEN, None);
    assert_eq!(again.status, 200, "erasing twice: {}", text(&again));
    assert_eq!(
        consents(s, &id)["ledger"].as_array().map(Vec::len),
        cs["ledger"].as_array().map(Vec::len),
        "erasing twice records nothing more"
    );
    let after = admin(s, &format!("{path}/export"));
    let after = after.to_string();
    for plain in [lead.email.as_str(), lead.mobile.as_str(), "周杰"] {
        assert!(!after.contains(plain), "{plain} after erasure: {after}");
    }

    let actions = audit_actions(s, &id);
    for action in ["contact.exported", "contact.erased"] {
        assert!(
            actions.contains(&(action.into(), "admin".into())),
            "{action}: {actions:?}"
        );
    }
    Ok(())
}

/// The demo landing page in a real browser: the visit, the sign-up and the unsubscribe link.
pub fn the_demo_landing_page_works_in_headless_chromium(s: &Stack) -> Result<(), Failed> {
    let email = format!(
        "{}@landing.example",
        fresh_visitor("landing").to_lowercase()
    );
    let text = run_browser_script(
        "landing.mjs",
        &[
            ("LANDING_URL", &format!("{}/", landing(s))),
            ("TRACK_URL", &s.track()),
            ("FORMS_URL", &s.forms()),
            ("API_URL", &s.api()),
            ("ADMIN_TOKEN", TOKEN),
            ("LINK_KEY", &String::from_utf8_lossy(LINK_KEY)),
            ("TEST_EMAIL", &email),
        ],
        "landing: ok",
    );
    // The script signed the unsubscribe link itself: it must agree with the core's signer.
    let c = find(s, "email", &email).ok_or("no contact for the browser's lead")?;
    let id = id_of(&c);
    let token = kindling::link::sign_preferences(&id, LINK_KEY);
    assert!(text.contains(&format!("landing: token {token}")), "{text}");
    assert_eq!(consents(s, &id)["current"]["email"], false);
    Ok(())
}

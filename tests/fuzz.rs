//! Property-based fuzzing of the input parsers that face the internet: the pixel query
//! (`pixel::PixelQuery`), the snippet's beacon (`beacon::parse`), signed link tokens
//! (`link::verify` / `link::sign`), the Segment-compatible ingest (`segment::parse`), the
//! bot classifier's header handling (`bot::classify`), form submission bodies
//! (`form::body::parse`), email normalisation (`pii::normalise_email`), message templates
//! (`template::parse` / `template::validate`, then `template::render` and its HTML helpers)
//! and delivery: provider receipts (`delivery::receipts`), provider answers
//! (`delivery::providers::classify`) and the requests built for providers, webhook signatures
//! included.
//!
//! Each target gets two kinds of input: arbitrary strings or bytes (plus byte-level mutations
//! of valid inputs), and structurally valid requests whose fields are randomly valid or hostile
//! (wrong types, deep nesting, huge or non-UTF-8 values, control characters, boundary lengths).
//! Every case asserts that the parser does not panic and that the invariants its module
//! documents hold (validated ids and URLs, counts that add up, size limits, no personal data
//! in plaintext on the queue).
//!
//! Why proptest rather than cargo-fuzz: this machine and CI have only the stable toolchain,
//! and cargo-fuzz (libFuzzer) needs nightly. proptest runs inside `cargo test` on stable,
//! generates structured inputs as easily as raw bytes, and shrinks a failure to a minimal
//! input that it prints. Case counts are explicit per target (the constants below add up to
//! at least 1,000,000) and failure persistence is off, so no regression files are written.
//! Seeds are random on every run (a failure prints its minimal input); set
//! `PROPTEST_RNG_SEED=<u64>` for a repeatable run.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::time::Instant;

use kindling::beacon::{self, CLOCK_SKEW_MS};
use kindling::bot::{classify, ClientHints, Traffic};
use kindling::consent::Channel;
use kindling::delivery::providers::{
    self, Email, EmailConfig, HttpRequest, Outcome, Provider, SmsConfig, WebhookConfig,
    WecomAppConfig, WecomRobotConfig, MAX_RETRY_AFTER_S, SIGNATURE_TOLERANCE_S,
    WECOM_APP_MAX_BYTES, WECOM_ROBOT_MAX_BYTES,
};
use kindling::delivery::receipts::{self, Receipt, ReceiptKind};
use kindling::event::{
    is_valid_event_id, is_valid_event_name, is_valid_visitor_id, Event, IngestMessage, Subject,
    MAX_PROPERTIES_BYTES,
};
use kindling::form::body::{self as form_body, BodyError, MAX_BODY_BYTES, MAX_FIELD_NAME_CHARS};
use kindling::form::lang::Lang;
use kindling::link::{self, LinkClaims, MAX_TOKEN_CHARS};
use kindling::pii::{normalise_email, PiiKeys, DEV_PII_KEY};
use kindling::pixel::{PixelQuery, MAX_URL_CHARS};
use kindling::segment::{self, Endpoint, BACKFILL_MS, FUTURE_MS};
use kindling::site::is_valid_site_key;
use kindling::template::{
    self, Parts, RenderContext, Template, MAX_PART_BYTES, MAX_SMS_CHARS, MAX_SUBJECT_CHARS,
};
use kindling::{Error, Millis};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Case counts: explicit per target, at least one million in total.
// ---------------------------------------------------------------------------------------------

const PIXEL_ARBITRARY: u32 = 320_000;
const PIXEL_STRUCTURED: u32 = 100_000;
const BEACON_BYTES: u32 = 40_000;
const BEACON_STRUCTURED: u32 = 8_000;
const LINK_ARBITRARY: u32 = 200_000;
const LINK_SIGNED: u32 = 50_000;
const SEGMENT_BYTES: u32 = 40_000;
const SEGMENT_STRUCTURED: u32 = 10_000;
const BOT_HINTS: u32 = 250_000;
const FORM_BODY: u32 = 50_000;
const EMAIL_NORMALISE: u32 = 20_000;
const TEMPLATE: u32 = 30_000;
const RECEIPT_BYTES: u32 = 30_000;
const RECEIPT_STRUCTURED: u32 = 20_000;
const PROVIDER_ANSWERS: u32 = 40_000;
const PROVIDER_REQUESTS: u32 = 20_000;

const TOTAL_CASES: u64 = PIXEL_ARBITRARY as u64
    + PIXEL_STRUCTURED as u64
    + BEACON_BYTES as u64
    + BEACON_STRUCTURED as u64
    + LINK_ARBITRARY as u64
    + LINK_SIGNED as u64
    + SEGMENT_BYTES as u64
    + SEGMENT_STRUCTURED as u64
    + BOT_HINTS as u64
    + FORM_BODY as u64
    + EMAIL_NORMALISE as u64
    + TEMPLATE as u64
    + RECEIPT_BYTES as u64
    + RECEIPT_STRUCTURED as u64
    + PROVIDER_ANSWERS as u64
    + PROVIDER_REQUESTS as u64;
const _: () = assert!(TOTAL_CASES >= 1_000_000);

/// The request time every parser is given (2026-06-18T00:00:00Z).
const NOW: Millis = Millis(1_781_740_800_000);

/// The targets of one test. A failing target is reported and the test fails after the others
/// have run, so one broken parser does not hide what the rest would find.
#[derive(Default)]
struct Targets {
    failures: RefCell<Vec<String>>,
}

impl Targets {
    /// Runs one target: `cases` inputs from `strategy`, no persistence, bounded shrinking. A
    /// failure is recorded with proptest's report (the minimal failing input).
    fn run<S: Strategy>(
        &self,
        target: &str,
        cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) -> u64 {
        let started = Instant::now();
        let count = Cell::new(0u64);
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_time: 60_000,
            // XorShift: several times cheaper than ChaCha, and plenty random for fuzzing.
            rng_algorithm: RngAlgorithm::XorShift,
            ..Config::default()
        };
        let result = TestRunner::new(config).run(&strategy, |input| {
            count.set(count.get() + 1);
            test(input)
        });
        eprintln!("fuzz {target}: ran in {:.1?}", started.elapsed());
        if let Err(e) = result {
            eprintln!("fuzz {target}: the case count below includes shrinking runs");
            let failure = format!("fuzz target {target} failed: {e}");
            eprintln!("{failure}");
            self.failures.borrow_mut().push(failure);
        }
        count.get()
    }

    fn finish(self) {
        let failures = self.failures.into_inner();
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}

fn report(target: &str, cases: u64, detail: String) {
    eprintln!("fuzz {target}: {cases} cases ({detail})");
}

// ---------------------------------------------------------------------------------------------
// Shared generators.
// ---------------------------------------------------------------------------------------------

/// Concatenations of tokens from a dictionary: reaches deeper into a format than random chars.
fn soup(tokens: &'static [&'static str], len: Range<usize>) -> BoxedStrategy<String> {
    vec(select(tokens), len).prop_map(|v| v.concat()).boxed()
}

/// One string repeated to a length: huge values and values around a limit.
fn repeated(units: &'static [&'static str], len: Range<usize>) -> BoxedStrategy<String> {
    (select(units), len)
        .prop_map(|(unit, n)| unit.repeat(n))
        .boxed()
}

/// A request body; a failing one is printed as an escaped byte string, not a list of numbers.
#[derive(Clone)]
struct Body(Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Percent-encodes every byte that is not alphanumeric.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Applies byte edits (replace, insert, delete, splice a JSON token) to a valid input.
fn mutate(bytes: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    #[rustfmt::skip]
    const TOKENS: &[&[u8]] = &[
        b"{", b"}", b"[", b"]", b",", b":", b"\"", b"\\", b"null", b"1e400", b"-1e19", b"\xff",
        b"\\u0000", b"\\ud800", b"[[[[[[[[", b"\"email\":\"fuzz.0@example.com\"",
    ];
    mutate_with(bytes, edits, TOKENS)
}

/// Applies byte edits (replace, insert, delete, splice one of `tokens`) to a valid input.
fn mutate_with(mut bytes: Vec<u8>, edits: Vec<(usize, u8, u8)>, tokens: &[&[u8]]) -> Vec<u8> {
    for (pos, op, byte) in edits {
        let i = if bytes.is_empty() {
            0
        } else {
            pos % bytes.len()
        };
        match op % 4 {
            0 if !bytes.is_empty() => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            2 if !bytes.is_empty() => {
                bytes.remove(i);
            }
            _ => {
                let token = tokens[usize::from(byte) % tokens.len()];
                drop(bytes.splice(i..i, token.iter().copied()));
            }
        }
    }
    bytes
}

fn deep_array(depth: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// A regex strategy, compiled once (a `&str` strategy re-parses its regex for every case).
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid regex")
        .boxed()
}

/// Arbitrary text: any chars, with proptest's bias towards special ones.
fn text(len: Range<usize>) -> BoxedStrategy<String> {
    vec(any::<char>(), len).prop_map(String::from_iter).boxed()
}

/// Short strings of every kind: ASCII, unicode, control characters.
fn short_string() -> BoxedStrategy<String> {
    prop_oneof![re("[a-z_]{0,12}"), text(0..24)].boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        short_string().prop_map(Value::from),
    ]
    .boxed()
}

/// Arbitrary JSON, a few levels deep.
fn json_any() -> BoxedStrategy<Value> {
    // Nested by hand: `prop_recursive` rebuilds its strategies for every value.
    let key = short_string();
    let leaf = json_leaf();
    let mut any = leaf.clone();
    for _ in 0..2 {
        any = prop_oneof![
            3 => leaf.clone(),
            1 => vec(any.clone(), 0..5).prop_map(Value::Array),
            1 => btree_map(key.clone(), any, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
        .boxed();
    }
    any
}

fn json_object() -> BoxedStrategy<Value> {
    btree_map(short_string(), json_any(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// A value of the wrong type or shape for whatever field it lands in.
fn hostile() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => json_leaf(),
        6 => json_any(),
        1 => repeated(&["a", "é", "中", "😀", "\"", "\\", "\u{0}", "\u{85}"], 100..5000)
            .prop_map(Value::from),
        2 => prop_oneof![20 => 1usize..100, 1 => 120usize..140].prop_map(deep_array),
    ]
    .boxed()
}

/// A field that is present and valid, present and hostile, or missing, by weight.
fn field(valid: BoxedStrategy<Value>, weights: (u32, u32, u32)) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        weights.0 => valid.prop_map(Some),
        weights.1 => hostile().prop_map(Some),
        weights.2 => Just(None),
    ]
    .boxed()
}

const REQUIRED: (u32, u32, u32) = (90, 6, 4);
const OPTIONAL: (u32, u32, u32) = (35, 4, 61);

fn object(fields: Vec<(&str, Option<Value>)>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
}

fn valid_id() -> BoxedStrategy<String> {
    re("[A-Za-z0-9_-]{8,64}")
}

/// Absolute URLs: mostly http(s) in any case, some other schemes, some around 2048 chars.
fn url_string() -> BoxedStrategy<String> {
    #[rustfmt::skip]
    const SCHEMES: &[&str] = &[
        "https://", "http://", "HTTPS://", "HtTp://", "https:/", "ftp://", "javascript:", "//", "",
        "http:",
    ];
    const PATH: &[&str] = &[
        "/", "a", "Z", "9", "-", ".", "?", "=", "&", "#", "%20", "%0A", "%00", " ", "é", "中",
        "😀", "\n", "\t", "\u{0}", "\u{7f}", "\u{85}", "\u{200b}",
    ];
    prop_oneof![
        8 => (select(SCHEMES), re("[a-z0-9.-]{0,16}"), soup(PATH, 0..16))
            .prop_map(|(s, host, path)| format!("{s}{host}{path}")),
        1 => (select(SCHEMES), 2030usize..2070, select(vec!["a", "é", "中"]))
            .prop_map(|(s, n, fill)| format!("{s}{}", fill.repeat(n.saturating_sub(s.len())))),
    ]
    .boxed()
}

fn event_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => re("[a-z_]{1,40}"),
        2 => vec(any::<char>(), 0..140).prop_map(String::from_iter),
        1 => repeated(&["x", "é", "下"], 126..131),
    ]
    .boxed()
}

fn mostly_valid_name() -> BoxedStrategy<Value> {
    prop_oneof![3 => re("[a-z_]{1,40}"), 1 => event_name()]
        .prop_map(Value::from)
        .boxed()
}

fn mostly_valid_url() -> BoxedStrategy<Value> {
    prop_oneof![3 => valid_url(), 1 => url_string()]
        .prop_map(Value::from)
        .boxed()
}

/// Emails whose plaintext must never reach the queue: `fuzz.<n>@...`, valid and invalid.
fn email() -> BoxedStrategy<String> {
    const SHAPES: &[&str] = &[
        "fuzz.{n}@example.com",
        "fuzz.{n}@example.com",
        " FUZZ.{n}@Example.COM ",
        "Fuzz.{n}+tag@example.cn",
        "Fuzz.{n}+tag@example.cn",
        "fuzz.{n}.张@例子.中国",
        "fuzz.{n}@example",
        "fuzz.{n}@@example.com",
        "fuzz.{n} x@example.com",
        "fuzz.{n}@example.com\u{0}",
        "fuzz.{n}@.example.com",
    ];
    (select(SHAPES), 0u32..1_000_000)
        .prop_map(|(shape, n)| shape.replace("{n}", &n.to_string()))
        .boxed()
}

fn phone() -> BoxedStrategy<Value> {
    const PHONES: &[&str] = &[
        "+86 138 0013 8000",
        "13800138000",
        "13800138000",
        "１３８００１３８０００",
        "+1 (555) 010-9999",
        "+1 (555) 010-9999",
        "not a phone",
        "",
        "++1",
        "+",
    ];
    select(PHONES).prop_map(Value::from).boxed()
}

/// Identify traits: maybe an email (returned as a secret), phone, names, anything else.
fn traits() -> BoxedStrategy<(Option<Value>, Vec<String>)> {
    (
        prop::option::weighted(0.6, email()),
        prop::option::of(phone()),
        prop::option::of(short_string()),
        json_object(),
        0u8..10,
    )
        .prop_map(|(email, phone, name, rest, shape)| {
            if shape == 0 {
                return (None, vec![]);
            }
            let mut t = match rest {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if let Some(p) = phone {
                t.insert("phone".into(), p);
            }
            if let Some(n) = name {
                let key = ["name", "first_name", "lastName"][usize::from(shape) % 3];
                t.insert(key.into(), n.into());
            }
            let secrets: Vec<String> = email.iter().cloned().collect();
            if let Some(e) = email {
                t.insert("email".into(), e.into());
            }
            (Some(Value::Object(t)), secrets)
        })
        .boxed()
}

/// Whether the serialized output contains a secret, in any letter case, raw or JSON-escaped.
fn leaks(output_lower: &str, secret: &str) -> bool {
    let s = secret.trim().to_lowercase();
    if s.is_empty() {
        return false;
    }
    let escaped = serde_json::to_string(&s).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    output_lower.contains(&s) || output_lower.contains(escaped)
}

fn http_url_ok(s: &str) -> bool {
    let head: String = s.chars().take(8).collect::<String>().to_ascii_lowercase();
    (head.starts_with("http://") || head.starts_with("https://"))
        && s.chars().count() <= MAX_URL_CHARS
        && !s.chars().any(char::is_control)
}

fn properties_size(e: &Event) -> usize {
    serde_json::to_string(&e.properties).map_or(usize::MAX, |s| s.len())
}

fn keys() -> PiiKeys {
    PiiKeys::from_secret(DEV_PII_KEY, "k1", true).expect("the dev key is valid")
}

fn nonce_source() -> impl FnMut() -> [u8; 12] {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&n.to_le_bytes());
        out
    }
}

fn assert_invalid(e: &Error) -> Result<(), TestCaseError> {
    prop_assert!(matches!(e, Error::Invalid { .. }), "not Invalid: {e:?}");
    prop_assert_eq!(e.status(), 400);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. The pixel query.
// ---------------------------------------------------------------------------------------------

/// Parses a query into an event and checks an accepted one. Returns whether it was accepted.
fn check_pixel(query: &str) -> Result<bool, TestCaseError> {
    let result = PixelQuery::parse(query).into_event("evt_fuzz_0001".into(), NOW);
    let Ok(e) = result else {
        return Ok(false);
    };
    match &e.subject {
        Subject::Visitor(v) => prop_assert!(is_valid_visitor_id(v), "visitor {v:?}"),
        other => return Err(TestCaseError::fail(format!("subject {other:?}"))),
    }
    prop_assert!(
        e.site.as_deref().is_some_and(is_valid_site_key),
        "site {:?}",
        e.site
    );
    prop_assert!(is_valid_event_name(&e.name), "name {:?}", e.name);
    for (key, value) in &e.properties {
        prop_assert!(key == "url" || key == "referrer", "property {key:?}");
        let url = value.as_str().unwrap_or_default();
        prop_assert!(http_url_ok(url), "{key} {url:?}");
    }
    prop_assert!(properties_size(&e) <= MAX_PROPERTIES_BYTES);
    prop_assert_eq!(e.occurred_at, NOW);
    Ok(true)
}

#[rustfmt::skip]
const QUERY_SOUP: &[&str] = &[
    "site", "vid", "url", "ref", "e", "junk", "=", "=", "&", "&", "%", "%2", "%FF", "%FE", "%00",
    "%0A", "%7F", "%C2%85", "%C3%28", "%E4%B8%AD", "+", "%2B", "%26", "%3D", "demo", "v_abcdef12",
    "http://", "https://", "HTTPS://", "a.example/", "javascript:", "é", "中", "\u{0}", "\n",
    "\u{85}", "A", "0", ";", "#", "?",
];

fn arbitrary_query() -> BoxedStrategy<String> {
    prop_oneof![
        text(0..64),
        soup(QUERY_SOUP, 0..48),
        vec(any::<u8>(), 0..128).prop_map(lossy),
    ]
    .boxed()
}

/// Raw (already encoded) query values: valid forms, escape soup, control characters, huge.
fn pixel_value() -> BoxedStrategy<String> {
    #[rustfmt::skip]
    const ESCAPES: &[&str] = &[
        "%FF", "%FE", "%00", "%A", "%", "%G1", "%C3%28", "%E2%82", "%F0%9F%98", "%0A", "%0D", "%09",
        "%7F", "%C2%85", "%E2%80%8B", "%20", "+", "%2B", "a", "Z", "5", "-", "_", "é", "\u{1}",
        "\u{7f}", "\u{9f}", "\t", "http://", "https://", "%68ttps://",
    ];
    let raw = prop_oneof![
        3 => prop_oneof![re("[a-z0-9-]{1,64}"), re("[a-zA-Z0-9 _.-]{0,70}")],
        3 => prop_oneof![valid_id(), re("[A-Za-z0-9_@.-]{0,70}")],
        4 => url_string(),
        2 => event_name(),
        3 => soup(ESCAPES, 0..24),
        1 => repeated(&["x", "é", "%41", "%FF"], 1000..5000),
        2 => text(0..24),
    ];
    (raw, 0u8..4)
        .prop_map(|(v, enc)| if enc == 0 { percent_encode(&v) } else { v })
        .boxed()
}

/// A valid page URL, sometimes with an upper-case scheme or percent-escapes.
fn valid_url() -> BoxedStrategy<String> {
    (
        select(vec!["https://", "http://", "HTTPS://", "Http://"]),
        re("[a-z0-9-]{1,12}\\.example"),
        re("(/[a-zA-Z0-9._~-]{0,12}){0,4}(\\?[a-z]{1,6}=[a-z0-9%]{0,12})?"),
    )
        .prop_map(|(scheme, host, path)| format!("{scheme}{host}{path}"))
        .boxed()
}

/// Queries built from the five parameters, each mostly valid (raw or percent-encoded),
/// sometimes hostile, sometimes absent, plus junk parameters, in a random order.
fn structured_query() -> BoxedStrategy<String> {
    const JUNK_KEYS: &[&str] = &[
        "site", "vid", "url", "ref", "e", "junk", "%73ite", "v%69d", "%75rl", "SITE", "site ",
        "e+", "",
    ];
    const SEPARATORS: &[&str] = &["&", "&", "&", "&", "&&", ";", "&amp;"];
    let param = |key: &'static str, valid: BoxedStrategy<String>, absent: u32| {
        let valid =
            (valid, 0u8..4).prop_map(|(v, enc)| if enc == 0 { percent_encode(&v) } else { v });
        prop_oneof![
            12 => valid.prop_map(move |v| Some((key, Some(v)))),
            2 => pixel_value().prop_map(move |v| Some((key, Some(v)))),
            1 => Just(Some((key, None))),
            absent => Just(None),
        ]
    };
    let referrer = prop_oneof![3 => valid_url(), 1 => Just(String::new())].boxed();
    (
        (
            param("site", re("[a-z0-9-]{1,64}"), 1),
            param("vid", valid_id(), 1),
            param("url", valid_url(), 6),
            param("ref", referrer, 6),
            param("e", event_name(), 6),
        ),
        vec((select(JUNK_KEYS), prop::option::of(pixel_value())), 0..4),
        vec(select(SEPARATORS), 10),
        any::<usize>(),
    )
        .prop_map(|((site, vid, url, referrer, e), junk, seps, turn)| {
            let mut pairs: Vec<(&str, Option<String>)> = [site, vid, url, referrer, e]
                .into_iter()
                .flatten()
                .collect();
            pairs.extend(junk);
            if !pairs.is_empty() {
                let n = turn % pairs.len();
                pairs.rotate_left(n);
                if turn % 3 == 0 {
                    pairs.swap(0, n);
                }
            }
            let mut q = String::new();
            for (i, (key, value)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    q.push_str(seps[i % seps.len()]);
                }
                q.push_str(key);
                if let Some(v) = value {
                    q.push('=');
                    q.push_str(&v);
                }
            }
            q
        })
        .boxed()
}

#[test]
fn fuzz_pixel_query() {
    let targets = Targets::default();
    let accepted = Cell::new(0u64);
    let a = targets.run("pixel/arbitrary", PIXEL_ARBITRARY, arbitrary_query(), |q| {
        accepted.set(accepted.get() + u64::from(check_pixel(&q)?));
        Ok(())
    });
    report("pixel/arbitrary", a, format!("{} accepted", accepted.get()));
    accepted.set(0);
    let s = targets.run(
        "pixel/structured",
        PIXEL_STRUCTURED,
        structured_query(),
        |q| {
            accepted.set(accepted.get() + u64::from(check_pixel(&q)?));
            Ok(())
        },
    );
    report(
        "pixel/structured",
        s,
        format!("{} accepted", accepted.get()),
    );
    eprintln!("fuzz pixel: {} cases in total", a + s);
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. The beacon.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    err: Cell<u64>,
    accepted: Cell<u64>,
    rejected: Cell<u64>,
}

fn bump(cell: &Cell<u64>, n: usize) {
    cell.set(cell.get() + n as u64);
}

impl Tally {
    fn detail(&self) -> String {
        format!(
            "{} ok, {} refused whole; {} events accepted, {} rejected",
            self.ok.get(),
            self.err.get(),
            self.accepted.get(),
            self.rejected.get()
        )
    }
}

/// How many events a beacon carries, counted without parsing them: the parser, too, takes
/// them raw and refuses a broken one (say, a lone surrogate escape) on its own.
fn events_sent(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Events {
        events: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Events>(body)
        .ok()
        .map(|e| e.events.len())
}

/// Parses a beacon and checks the result. `secrets` are plaintexts that must not be queued.
fn check_beacon(
    body: &[u8],
    keys: Option<&PiiKeys>,
    secrets: &[String],
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let mut nonce = nonce_source();
    let b = match beacon::parse(body, NOW, keys, &mut nonce) {
        Err(e) => {
            bump(&tally.err, 1);
            return assert_invalid(&e);
        }
        Ok(b) => b,
    };
    prop_assert!(body.len() <= beacon::MAX_BODY_BYTES);
    let sent = events_sent(body);
    prop_assert_eq!(Some(b.accepted() + b.rejected.len()), sent);
    prop_assert_eq!(Some(b.messages.len()), sent);
    prop_assert!(is_valid_site_key(&b.site), "site {:?}", b.site);
    prop_assert!(is_valid_visitor_id(&b.visitor_id));
    let mut last = None;
    for r in &b.rejected {
        prop_assert!(Some(r.index) > last && Some(r.index) < sent, "{r:?}");
        last = Some(r.index);
    }
    for m in &b.messages {
        let text = serde_json::to_string(m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let lower = text.to_lowercase();
        for s in secrets {
            prop_assert!(!leaks(&lower, s), "plaintext {s:?} queued: {text}");
        }
        let IngestMessage::Event(e) = m else {
            continue;
        };
        prop_assert!(is_valid_event_id(&e.id), "id {:?}", e.id);
        prop_assert_eq!(e.site.as_deref(), Some(b.site.as_str()));
        prop_assert_eq!(&e.subject, &Subject::Visitor(b.visitor_id.as_str().into()));
        prop_assert!(is_valid_event_name(&e.name), "name {:?}", e.name);
        let size = properties_size(e);
        prop_assert!(size <= MAX_PROPERTIES_BYTES, "properties of {size} bytes");
        for key in ["url", "referrer"] {
            if let Some(v) = e.properties.get(key) {
                let url = v.as_str().unwrap_or_default();
                prop_assert!(http_url_ok(url), "{key} {url:?}");
            }
        }
        // Client clocks are trusted within CLOCK_SKEW_MS of the request, else it is `now`.
        let skew = (i128::from(e.occurred_at.0) - i128::from(NOW.0)).abs();
        prop_assert!(
            skew <= i128::from(CLOCK_SKEW_MS),
            "occurred_at {:?} is {skew} ms from now",
            e.occurred_at
        );
        prop_assert_eq!(e.received_at, NOW);
    }
    bump(&tally.ok, 1);
    bump(&tally.accepted, b.accepted());
    bump(&tally.rejected, b.rejected.len());
    Ok(())
}

/// Client timestamps: near now (inside and outside the skew window), extremes, and i64
/// boundaries offset by `now` and the window, where `ts as i64 - now` stops being exact.
fn beacon_ts() -> BoxedStrategy<Value> {
    let near = (-30 * Millis::HOUR..30 * Millis::HOUR, 0.0f64..1.0)
        .prop_map(|(off, frac)| Value::from((NOW.0 + off) as f64 + frac));
    let boundary = (
        select(vec![i64::MIN, i64::MAX, 0, -NOW.0]),
        select(vec![0, NOW.0, -NOW.0, CLOCK_SKEW_MS, -CLOCK_SKEW_MS]),
        -4096i64..4096,
    )
        .prop_map(|(b, o, d)| Value::from(b.wrapping_add(o).wrapping_add(d) as f64));
    let extreme = select(vec![
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        9.3e18,
        -9.3e18,
        -0.0,
    ])
    .prop_map(Value::from);
    prop_oneof![8 => near, 1 => boundary, 1 => extreme].boxed()
}

/// An object over a fixed set of keys, each present with probability 1/2. (A `btree_map`
/// over a handful of keys spends most of its time drawing duplicate keys.)
fn sparse_object(
    keys: &'static [&'static str],
    value: BoxedStrategy<Value>,
) -> BoxedStrategy<Value> {
    vec(prop::option::of(value), keys.len())
        .prop_map(move |values| {
            Value::Object(
                keys.iter()
                    .zip(values)
                    .filter_map(|(k, v)| Some((k.to_string(), v?)))
                    .collect(),
            )
        })
        .boxed()
}

fn utm() -> BoxedStrategy<Value> {
    const KEYS: &[&str] = &[
        "source", "medium", "campaign", "term", "content", "junk", "",
    ];
    let value = prop_oneof![
        3 => short_string().prop_map(Value::from),
        1 => repeated(&["u", "ü"], 190..210).prop_map(Value::from),
        1 => json_leaf(),
    ];
    sparse_object(KEYS, value.boxed())
}

/// One beacon event and the plaintext emails it carries.
fn beacon_event() -> BoxedStrategy<(Value, Vec<String>)> {
    const TYPES: &[&str] = &["page", "track", "identify"];
    const BAD_TYPES: &[&str] = &["alias", "Page", "", "screen", "identify\u{0}"];
    let kind = prop_oneof![
        30 => select(TYPES).prop_map(Value::from),
        3 => select(BAD_TYPES).prop_map(Value::from),
        2 => hostile(),
    ]
    .prop_map(Some);
    let title = prop_oneof![short_string(), repeated(&["t", "中", "😀"], 290..310),];
    let email_field = prop_oneof![
        6 => Just((None, None)),
        3 => email().prop_map(|e| (Some(Value::from(e.clone())), Some(e))),
        1 => hostile().prop_map(|v| (Some(v), None)),
    ];
    let extra = prop::option::weighted(0.2, (short_string(), json_any()));
    (
        (
            field(valid_id().prop_map(Value::from).boxed(), REQUIRED),
            kind,
            field(beacon_ts(), OPTIONAL),
            field(mostly_valid_name(), REQUIRED),
            field(mostly_valid_url(), OPTIONAL),
            field(mostly_valid_url(), OPTIONAL),
            field(title.prop_map(Value::from).boxed(), OPTIONAL),
        ),
        (
            field(utm(), OPTIONAL),
            field(json_object(), OPTIONAL),
            field(
                re("[a-z0-9-]{1,20}").prop_map(Value::from).boxed(),
                OPTIONAL,
            ),
            email_field,
            field(phone(), OPTIONAL),
            traits(),
            extra,
        ),
        0u8..40,
    )
        .prop_map(|(a, b, shape)| {
            let (id, kind, ts, name, url, referrer, title) = a;
            let (utm, props, user_id, email, phone, traits, extra) = b;
            let ((email, email_secret), (traits, trait_secrets)) = (email, traits);
            if shape == 0 {
                // Not an object at all.
                return (id.unwrap_or(Value::Null), vec![]);
            }
            let mut o = object(vec![
                ("id", id),
                ("type", kind),
                ("ts", ts),
                ("name", name),
                ("url", url),
                ("ref", referrer),
                ("title", title),
                ("utm", utm),
                ("props", props),
                ("user_id", user_id),
                ("email", email),
                ("phone", phone),
                ("traits", traits),
            ]);
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            let secrets = email_secret.into_iter().chain(trait_secrets).collect();
            (Value::Object(o), secrets)
        })
        .boxed()
}

/// A beacon from site "demo" with a valid visitor (mostly) and `events` events.
fn beacon_body(events: Range<usize>) -> BoxedStrategy<(Value, Vec<String>)> {
    let site = prop_oneof![19 => Just(Some(json!("demo"))), 1 => field(
        prop_oneof![re("[a-z0-9-]{1,64}"), re("[A-Za-z0-9 ]{0,70}")].prop_map(Value::from).boxed(),
        (1, 1, 1),
    )];
    let vid = prop_oneof![
        19 => valid_id().prop_map(|v| Some(Value::from(v))),
        1 => field(re("[a-z@. ]{0,70}").prop_map(Value::from).boxed(), (1, 1, 1)),
    ];
    (
        site,
        vid,
        field(valid_id().prop_map(Value::from).boxed(), (3, 1, 6)),
        field(any::<bool>().prop_map(Value::from).boxed(), (3, 1, 6)),
        vec(beacon_event(), events),
        prop::option::weighted(0.05, hostile()),
    )
        .prop_map(|(site, vid, sid, consent, events, events_override)| {
            let secrets = events.iter().flat_map(|(_, s)| s.clone()).collect();
            let events = events_override
                .unwrap_or_else(|| Value::Array(events.into_iter().map(|(e, _)| e).collect()));
            let body = object(vec![
                ("site", site),
                ("vid", vid),
                ("sid", sid),
                ("consent", consent),
                ("events", Some(events)),
            ]);
            (Value::Object(body), secrets)
        })
        .boxed()
}

#[rustfmt::skip]
const JSON_SOUP: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\"site\"", "\"demo\"", "\"vid\"", "\"v_abcdef12\"",
    "\"events\"", "\"batch\"", "\"type\"", "\"page\"", "\"track\"", "\"identify\"", "\"id\"",
    "\"messageId\"", "\"anonymousId\"", "\"e_00000001\"", "\"ts\"", "\"timestamp\"", "1e400",
    "-1e19", "1.5", "null", "true", "0", "\\", "\\u0000", "\\ud800", " ", "\u{feff}", "é",
];

/// A valid event next to one nested far beyond serde_json's recursion limit.
fn deeply_nested_beacon(depth: usize) -> Vec<u8> {
    let mut body = String::from(r#"{"site":"demo","vid":"v_abcdef12","events":["#);
    body.push_str(r#"{"id":"e_00000001","type":"page"},"#);
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push_str("]}");
    body.into_bytes()
}

/// A minimal valid beacon padded with spaces to a size around the 64 KB limit.
fn padded_beacon() -> BoxedStrategy<Vec<u8>> {
    let base = r#"{"site":"demo","vid":"v_abcdef12","events":[{"id":"e_00000001","type":"page"}]}"#;
    let max = beacon::MAX_BODY_BYTES;
    (max - 2..max + 3)
        .prop_map(move |n| {
            let mut b = base.as_bytes().to_vec();
            b.resize(n, b' ');
            b
        })
        .boxed()
}

fn beacon_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        40 => vec(any::<u8>(), 0..256),
        40 => soup(JSON_SOUP, 0..64).prop_map(String::into_bytes),
        40 => (beacon_body(1..6), vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6))
            .prop_map(|((body, _), edits)| mutate(body.to_string().into_bytes(), edits)),
        1 => padded_beacon(),
        1 => (1usize..32_000).prop_map(deeply_nested_beacon),
    ]
    .boxed()
}

#[test]
fn fuzz_beacon() {
    let targets = Targets::default();
    let keys = keys();
    let tally = Tally::default();
    let bodies = beacon_bytes().prop_map(Body);
    let n = targets.run("beacon/bytes", BEACON_BYTES, bodies, |body| {
        check_beacon(&body.0, Some(&keys), &[], &tally)
    });
    report("beacon/bytes", n, tally.detail());

    let tally = Tally::default();
    // 1 to 60 events, mostly few: a batch's cost is its events.
    let body = prop_oneof![3 => beacon_body(1..8), 1 => beacon_body(8..61)];
    let strategy = (body, prop::bool::weighted(0.9));
    let m = targets.run(
        "beacon/structured",
        BEACON_STRUCTURED,
        strategy,
        |((body, secrets), with_keys)| {
            let bytes = body.to_string().into_bytes();
            check_beacon(&bytes, with_keys.then_some(&keys), &secrets, &tally)
        },
    );
    report("beacon/structured", m, tally.detail());
    eprintln!("fuzz beacon: {} cases in total", n + m);
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Signed link tokens.
// ---------------------------------------------------------------------------------------------

const LINK_KEY: &[u8] = b"link-signing-key-for-fuzzing";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(bytes: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The only destinations a verified token may carry.
fn destination_ok(claims: &LinkClaims) -> bool {
    claims.u.as_deref().is_none_or(|u| {
        let head = u.get(..8).unwrap_or(u).to_ascii_lowercase();
        (head.starts_with("https://") || head.starts_with("http://"))
            && !u.chars().any(char::is_control)
    })
}

/// HMAC pads keys of up to one block with zeros and hashes longer ones, so two keys sign alike
/// exactly when these forms are equal. Only keys that differ here are "different keys".
fn hmac_key_form(key: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    while k.last() == Some(&0) {
        k.pop();
    }
    k
}

fn arbitrary_token() -> BoxedStrategy<String> {
    let claims_json = (
        short_string(),
        short_string(),
        prop::option::of(url_string()),
    )
        .prop_map(|(m, c, u)| serde_json::to_vec(&LinkClaims { m, c, u }).unwrap_or_default());
    prop_oneof![
        3 => text(0..120),
        3 => re("[A-Za-z0-9_=+/.-]{0,120}"),
        2 => (vec(any::<u8>(), 0..96), vec(any::<u8>(), 0..20))
            .prop_map(|(p, t)| format!("{}.{}", b64(&p), b64(&t))),
        2 => (claims_json, vec(any::<u8>(), 16..=16))
            .prop_map(|(p, t)| format!("{}.{}", b64(&p), b64(&t))),
        1 => (MAX_TOKEN_CHARS - 2..MAX_TOKEN_CHARS + 40).prop_map(|n| "A".repeat(n)),
    ]
    .boxed()
}

fn link_claims() -> BoxedStrategy<LinkClaims> {
    let id = prop_oneof![
        re("msg_[a-z0-9]{1,20}"),
        re("c_[0-9a-f]{24}"),
        short_string()
    ]
    .boxed();
    let http = (
        select(vec!["https://", "https://", "http://", "HTTPS://"]),
        prop_oneof![
            re("[a-z0-9./?=&#%-]{0,60}"),
            text(0..24),
            repeated(&["a", "é", "/"], 2900..3200),
        ],
    )
        .prop_map(|(s, rest)| format!("{s}{rest}"));
    let other = prop_oneof![url_string(), text(0..24)];
    (
        id.clone(),
        id,
        prop_oneof![2 => Just(None), 6 => http.prop_map(Some), 2 => other.prop_map(Some)],
    )
        .prop_map(|(m, c, u)| LinkClaims { m, c, u })
        .boxed()
}

fn other_key(key: Vec<u8>, how: u8, random: Vec<u8>, at: usize) -> Vec<u8> {
    let mut k = key;
    match how % 5 {
        0 => random,
        1 => {
            let i = at % k.len();
            k[i] ^= 1 << (at % 8);
            k
        }
        2 => {
            k.push(0);
            k
        }
        3 => {
            k.push(1);
            k
        }
        _ => {
            k.truncate(at % k.len());
            if k.is_empty() {
                k.push(b'k');
            }
            k
        }
    }
}

#[test]
fn fuzz_link_tokens() {
    let targets = Targets::default();
    let n = targets.run("link/arbitrary", LINK_ARBITRARY, arbitrary_token(), |t| {
        // Nobody can produce a valid tag without the key, and nothing verifies without one.
        prop_assert_eq!(link::verify(&t, LINK_KEY), None);
        prop_assert_eq!(link::verify(&t, b""), None);
        Ok(())
    });
    report("link/arbitrary", n, "none verified".into());

    let verified = Cell::new(0u64);
    let flips = Cell::new(0u64);
    let flips_some = Cell::new(0u64);
    let upper_case = Cell::new(0u64);
    let upper_case_verified = Cell::new(0u64);
    let strategy = (
        link_claims(),
        vec(any::<u8>(), 1..97),
        (any::<u8>(), vec(any::<u8>(), 1..97), any::<usize>()),
        vec(
            (
                any::<usize>(),
                prop_oneof![select(B64URL.chars().collect::<Vec<_>>()), any::<char>()],
            ),
            1..6,
        ),
        any::<usize>(),
    );
    let m = targets.run(
        "link/signed",
        LINK_SIGNED,
        strategy,
        |(claims, key, (how, random, at), edits, cut)| {
            let token = link::sign(&claims, &key);
            let got = link::verify(&token, &key);
            let canonical = claims.u.as_deref().is_none_or(|u| {
                (u.starts_with("https://") || u.starts_with("http://"))
                    && !u.chars().any(char::is_control)
            });
            if token.len() > MAX_TOKEN_CHARS || !destination_ok(&claims) {
                // Overlong, or a destination that is not http(s): never verified.
                prop_assert_eq!(got, None);
                return Ok(());
            } else if canonical {
                prop_assert_eq!(&got, &Some(claims.clone()), "token {}", token);
            } else {
                // An http(s) URL with an upper-case scheme: the claims or nothing.
                upper_case.set(upper_case.get() + 1);
                prop_assert!(got.is_none() || got.as_ref() == Some(&claims), "{got:?}");
                upper_case_verified.set(upper_case_verified.get() + u64::from(got.is_some()));
            }
            if got.is_none() {
                return Ok(());
            }
            verified.set(verified.get() + 1);
            // Any single-character change: refused, or (only if two encodings decode to the
            // same bytes) the very same claims. Never different claims.
            let chars: Vec<char> = token.chars().collect();
            for (at, replacement) in edits {
                let mut flipped = chars.clone();
                flipped[at % chars.len()] = replacement;
                let flipped: String = flipped.into_iter().collect();
                if flipped == token {
                    continue;
                }
                flips.set(flips.get() + 1);
                let r = link::verify(&flipped, &key);
                if r.is_some() {
                    flips_some.set(flips_some.get() + 1);
                }
                prop_assert!(r.is_none() || r == got, "{flipped:?} verified as {r:?}");
            }
            // Truncations and a trailing extra character.
            let cut = cut % token.len();
            let r = link::verify(&token[..cut], &key);
            prop_assert!(r.is_none() || r == got, "prefix {cut} verified as {r:?}");
            let r = link::verify(&format!("{token}A"), &key);
            prop_assert!(r.is_none() || r == got, "extended token verified as {r:?}");
            // Another key: refused unless HMAC cannot tell the keys apart.
            let other = other_key(key.clone(), how, random, at);
            let r = link::verify(&token, &other);
            if hmac_key_form(&other) == hmac_key_form(&key) {
                prop_assert_eq!(r, got);
            } else {
                prop_assert_eq!(r, None, "verified with another key {:?}", other);
            }
            Ok(())
        },
    );
    report(
        "link/signed",
        m,
        format!(
            "{} verified; {} single-character edits, {} of them still verified; \
             {} of {} upper-case http(s) schemes verified",
            verified.get(),
            flips.get(),
            flips_some.get(),
            upper_case_verified.get(),
            upper_case.get()
        ),
    );
    eprintln!("fuzz link: {} cases in total", n + m);
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Segment-compatible ingest.
// ---------------------------------------------------------------------------------------------

fn check_segment(
    endpoint: Endpoint,
    body: &[u8],
    keys: Option<&PiiKeys>,
    secrets: &[String],
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let mut nonce = nonce_source();
    let (events, rejected) = match segment::parse(endpoint, body, NOW, keys, &mut nonce) {
        Err(e) => {
            bump(&tally.err, 1);
            return assert_invalid(&e);
        }
        Ok(r) => r,
    };
    prop_assert!(body.len() <= segment::MAX_BODY_BYTES);
    if endpoint == Endpoint::Batch {
        let sent = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("batch")?.as_array().map(Vec::len));
        prop_assert_eq!(Some(events.len() + rejected.len()), sent);
        let mut last = None;
        for r in &rejected {
            prop_assert!(Some(r.index) > last && Some(r.index) < sent, "{r:?}");
            last = Some(r.index);
        }
    } else {
        prop_assert_eq!(events.len(), 1);
        prop_assert!(rejected.is_empty());
    }
    for e in &events {
        let text = serde_json::to_string(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let lower = text.to_lowercase();
        for s in secrets {
            prop_assert!(!leaks(&lower, s), "plaintext {s:?} queued: {text}");
        }
        prop_assert!(is_valid_event_id(&e.id), "id {:?}", e.id);
        match &e.subject {
            Subject::Visitor(v) => prop_assert!(is_valid_visitor_id(v), "visitor {v:?}"),
            Subject::User(index) => prop_assert!(
                index.len() == 64 && index.bytes().all(|b| b.is_ascii_hexdigit()),
                "user subject {index:?} is not a blind index"
            ),
            other => return Err(TestCaseError::fail(format!("subject {other:?}"))),
        }
        prop_assert!(
            e.name == "page" || e.name == "identify" || is_valid_event_name(&e.name),
            "name {:?}",
            e.name
        );
        let size = properties_size(e);
        prop_assert!(size <= MAX_PROPERTIES_BYTES, "properties of {size} bytes");
        prop_assert!(
            (NOW.0 - BACKFILL_MS..=NOW.0 + FUTURE_MS).contains(&e.occurred_at.0),
            "occurred_at {:?}",
            e.occurred_at
        );
        prop_assert_eq!(e.received_at, NOW);
        prop_assert_eq!(&e.site, &None);
    }
    bump(&tally.ok, 1);
    bump(&tally.accepted, events.len());
    bump(&tally.rejected, rejected.len());
    Ok(())
}

fn segment_timestamp() -> BoxedStrategy<Value> {
    const BAD: &[&str] = &[
        "2026-13-01T00:00:00Z",
        "yesterday",
        "",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "2026-06-17T10:00:00",
        "2026-06-17 10:00:00Z",
        "2026-06-17T10:00:00+25:00",
        "2026-06-17T10:00:00.123456789123Z",
    ];
    let near = (-91 * Millis::DAY..6 * Millis::MINUTE)
        .prop_map(|off| Value::from(Millis(NOW.0 + off).rfc3339()));
    prop_oneof![6 => near, 1 => select(BAD).prop_map(Value::from)].boxed()
}

/// User ids whose plaintext must never reach the queue.
fn user_id() -> BoxedStrategy<String> {
    const SHAPES: &[&str] = &[
        "fuzz:user:{n}",
        " fuzz:user:{n} ",
        "用户:fuzz:{n}",
        "fuzz:user:{n}\u{1}",
        "fuzz.user.{n}@example.org",
    ];
    (select(SHAPES), 0u32..1_000_000, prop::bool::weighted(0.1))
        .prop_map(|(shape, n, long)| {
            let id = shape.replace("{n}", &n.to_string());
            if long {
                format!("{id}:{}", "x".repeat(130))
            } else {
                id
            }
        })
        .boxed()
}

fn segment_context() -> BoxedStrategy<Value> {
    let page = (
        field(url_string().prop_map(Value::from).boxed(), OPTIONAL),
        field(url_string().prop_map(Value::from).boxed(), OPTIONAL),
        field(short_string().prop_map(Value::from).boxed(), OPTIONAL),
        field(re("/[a-z/]{0,20}").prop_map(Value::from).boxed(), OPTIONAL),
    )
        .prop_map(|(url, referrer, title, path)| {
            Value::Object(object(vec![
                ("url", url),
                ("referrer", referrer),
                ("title", title),
                ("path", path),
            ]))
        });
    let campaign = sparse_object(
        &["source", "medium", "name", "term", "content", "junk"],
        prop_oneof![3 => short_string().prop_map(Value::from), 1 => json_leaf()].boxed(),
    );
    (field(page.boxed(), OPTIONAL), field(campaign, OPTIONAL))
        .prop_map(|(page, campaign)| {
            Value::Object(object(vec![("page", page), ("campaign", campaign)]))
        })
        .boxed()
}

/// One Segment message and the plaintexts (user id, trait email) it carries.
fn segment_message() -> BoxedStrategy<(Value, Vec<String>)> {
    const TYPES: &[&str] = &["track", "identify", "page", "screen"];
    const BAD_TYPES: &[&str] = &["alias", "group", "", "TRACK"];
    let kind = prop_oneof![
        30 => select(TYPES).prop_map(Value::from),
        3 => select(BAD_TYPES).prop_map(Value::from),
        2 => hostile(),
    ]
    .prop_map(Some);
    let message_id = prop_oneof![
        4 => valid_id().prop_map(Value::from),
        2 => text(0..24).prop_map(Value::from),
        1 => hostile(),
    ];
    let anonymous_id = prop_oneof![
        6 => valid_id().prop_map(|v| Some(Value::from(v))),
        1 => Just(Some(Value::from(""))),
        1 => re("[a-z@. ]{0,70}").prop_map(|v| Some(Value::from(v))),
        1 => hostile().prop_map(Some),
        4 => Just(None),
    ];
    let user = prop_oneof![
        6 => user_id().prop_map(|u| (Some(Value::from(u.clone())), Some(u))),
        1 => Just((Some(Value::from("")), None)),
        1 => hostile().prop_map(|v| (Some(v), None)),
        4 => Just((None, None)),
    ];
    let extra = prop::option::weighted(0.2, (short_string(), json_any()));
    (
        (
            kind,
            prop_oneof![20 => message_id.prop_map(Some), 1 => Just(None)],
            anonymous_id,
            user,
            field(segment_timestamp(), OPTIONAL),
            field(segment_timestamp(), (1, 1, 8)),
        ),
        (
            field(mostly_valid_name(), REQUIRED),
            field(short_string().prop_map(Value::from).boxed(), OPTIONAL),
            field(json_object(), OPTIONAL),
            field(segment_context(), OPTIONAL),
            traits(),
            extra,
        ),
    )
        .prop_map(|(a, b)| {
            let (kind, message_id, anonymous_id, (user, user_secret), timestamp, original) = a;
            let (event, name, properties, context, (traits, trait_secrets), extra) = b;
            let mut o = object(vec![
                ("type", kind),
                ("messageId", message_id),
                ("anonymousId", anonymous_id),
                ("userId", user),
                ("timestamp", timestamp),
                ("originalTimestamp", original),
                ("event", event),
                ("name", name),
                ("properties", properties),
                ("context", context),
                ("traits", traits),
            ]);
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            let secrets = user_secret.into_iter().chain(trait_secrets).collect();
            (Value::Object(o), secrets)
        })
        .boxed()
}

fn endpoint() -> BoxedStrategy<Endpoint> {
    select(vec![
        Endpoint::Track,
        Endpoint::Identify,
        Endpoint::Page,
        Endpoint::Batch,
    ])
    .boxed()
}

/// A request for an endpoint: one message, or `{"batch": [...]}` for Batch.
fn segment_request(batch: Range<usize>) -> BoxedStrategy<(Endpoint, Value, Vec<String>)> {
    let single = (
        select(vec![Endpoint::Track, Endpoint::Identify, Endpoint::Page]),
        segment_message(),
    )
        .prop_map(|(endpoint, (m, secrets))| (endpoint, m, secrets));
    let many = (
        vec(segment_message(), batch),
        prop::option::weighted(0.03, hostile()),
    )
        .prop_map(|(messages, batch_override)| {
            let secrets = messages.iter().flat_map(|(_, s)| s.clone()).collect();
            let batch = batch_override
                .unwrap_or_else(|| Value::Array(messages.into_iter().map(|(m, _)| m).collect()));
            (Endpoint::Batch, json!({ "batch": batch }), secrets)
        });
    prop_oneof![1 => single, 2 => many].boxed()
}

fn segment_bytes() -> BoxedStrategy<(Endpoint, Vec<u8>)> {
    let padded = (segment::MAX_BODY_BYTES - 2..segment::MAX_BODY_BYTES + 3).prop_map(|n| {
        let message =
            r#"{"type":"track","messageId":"m-00000001","anonymousId":"anon-00001","event":"x"}"#;
        let mut b = format!(r#"{{"batch":[{message}]}}"#).into_bytes();
        b.resize(n, b' ');
        b
    });
    (
        endpoint(),
        prop_oneof![
            40 => vec(any::<u8>(), 0..256),
            40 => soup(JSON_SOUP, 0..64).prop_map(String::into_bytes),
            40 => (segment_request(1..6), vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6))
                .prop_map(|((_, body, _), edits)| mutate(body.to_string().into_bytes(), edits)),
            1 => padded,
        ],
    )
        .boxed()
}

#[test]
fn fuzz_segment() {
    let targets = Targets::default();
    let keys = keys();
    let tally = Tally::default();
    let n = targets.run(
        "segment/bytes",
        SEGMENT_BYTES,
        segment_bytes().prop_map(|(endpoint, body)| (endpoint, Body(body))),
        |(endpoint, body)| check_segment(endpoint, &body.0, Some(&keys), &[], &tally),
    );
    report("segment/bytes", n, tally.detail());

    let tally = Tally::default();
    let strategy = (segment_request(1..31), prop::bool::weighted(0.9));
    let m = targets.run(
        "segment/structured",
        SEGMENT_STRUCTURED,
        strategy,
        |((endpoint, body, secrets), with_keys)| {
            let bytes = body.to_string().into_bytes();
            check_segment(
                endpoint,
                &bytes,
                with_keys.then_some(&keys),
                &secrets,
                &tally,
            )
        },
    );
    report("segment/structured", m, tally.detail());
    eprintln!("fuzz segment: {} cases in total", n + m);
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. The bot classifier.
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const UA_SOUP: &[&str] = &[
    "Mozilla/5.0", "mozilla/5.0", " (", ")", "; ", "Windows NT 10.0", "AppleWebKit/537.36",
    "Chrome/124.0.0.0", "Safari/537.36", "bot", "Bot", "BOT", "bots", "spider", "crawl", "scan",
    "slurp", "cubot", "CUBOT", "_P30", "Googlebot/2.1", "HeadlessChrome", "prefetch", "Prefetch",
    "prerender", "preview", "WhatsApp/2.23", "whatsapp", "ms-office", "Microsoft Outlook",
    "GoogleImageProxy", "curl/8", "s", " ", "\t", "\u{0}", "é", "中文", "😀", "\u{feff}", "\u{85}",
    "\u{a0}", "\u{3000}",
];

const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 8.0.0; CUBOT_P20) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.110 Mobile Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
    "Mozilla/5.0 (Linux; Android 12; M2102J2SC Build/SKQ1.211006.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/75.0.3770.156 Mobile Safari/537.36 aweme_210600 JsSdk/1.0 NetType/4G",
];

fn user_agent() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => text(0..64).prop_map(Some),
        6 => soup(UA_SOUP, 0..24).prop_map(Some),
        4 => (soup(UA_SOUP, 0..3), select(BROWSERS), soup(UA_SOUP, 0..3))
            .prop_map(|(a, b, c)| Some(format!("{a}{b}{c}"))),
        1 => repeated(&["a", "é", "中", "😀", " ", "bot", "Mozilla/5.0 "], 100..1100)
            .prop_map(Some),
        1 => vec(any::<u8>(), 0..200).prop_map(|b| Some(lossy(b))),
    ]
    .boxed()
}

/// `Sec-Purpose`, `X-Moz` and `From` values: mostly absent, else real values or junk.
fn other_header() -> BoxedStrategy<Option<String>> {
    const VALUES: &[&str] = &[
        "prefetch",
        "prefetch;prerender",
        "Prefetch;anonymous-client-ip",
        "preview",
        "navigate",
        "",
        " ",
        "PREFETCH",
        "bot@example.com",
    ];
    prop_oneof![
        8 => Just(None),
        2 => select(VALUES).prop_map(|v| Some(v.to_string())),
        2 => soup(UA_SOUP, 0..6).prop_map(Some),
        1 => text(0..32).prop_map(Some),
        1 => (soup(UA_SOUP, 0..2), 100usize..160)
            .prop_map(|(v, n)| Some(format!("{}{v}", " ".repeat(n)))),
    ]
    .boxed()
}

fn hints(h: &[Option<String>; 4]) -> ClientHints<'_> {
    ClientHints {
        user_agent: h[0].as_deref(),
        purpose: h[1].as_deref(),
        x_moz: h[2].as_deref(),
        from: h[3].as_deref(),
    }
}

/// Whether a `Sec-Purpose` or `X-Moz` value names one of the documented speculative-load
/// tokens, within the 128 bytes the classifier reads of these headers.
fn says_prefetch(value: Option<&str>, tokens: &[&str]) -> bool {
    value.is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        v.len() <= 128 && tokens.iter().any(|t| v.contains(t))
    })
}

#[test]
fn fuzz_bot_classifier() {
    let targets = Targets::default();
    let machines = Cell::new(0u64);
    let n = targets.run(
        "bot/hints",
        BOT_HINTS,
        (user_agent(), other_header(), other_header(), other_header()),
        |(ua, purpose, x_moz, from)| {
            let h = [ua, purpose, x_moz, from];
            let t = classify(&hints(&h));
            machines.set(machines.get() + u64::from(t.is_machine()));
            prop_assert_eq!(classify(&hints(&h)), t, "not deterministic");
            // Rules match whatever ASCII case the client sent.
            for case in [
                str::to_ascii_uppercase as fn(&str) -> String,
                str::to_ascii_lowercase,
            ] {
                let flipped = h.clone().map(|v| v.map(|s| case(&s)));
                prop_assert_eq!(classify(&hints(&flipped)), t, "case changed the verdict");
            }
            if says_prefetch(h[1].as_deref(), &["prefetch", "prerender", "preview"])
                || says_prefetch(h[2].as_deref(), &["prefetch"])
            {
                prop_assert_eq!(t, Traffic::Prefetch);
            } else {
                let ua = h[0].as_deref().unwrap_or("").trim();
                if ua.is_empty() || ua.len() > 1024 {
                    prop_assert_eq!(t, Traffic::Crawler, "missing, blank or oversized UA");
                }
            }
            Ok(())
        },
    );
    report(
        "bot/hints",
        n,
        format!("{} classified as machines", machines.get()),
    );
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. Form submission bodies.
// ---------------------------------------------------------------------------------------------

const URLENCODED: &str = "application/x-www-form-urlencoded";

/// What a case's body must parse to, when the generator knows.
#[derive(Debug, Clone)]
enum Expect {
    /// Encoded from these fields: they must come back exactly.
    Fields(Vec<(String, String)>),
    /// Encoded from more fields than a form may send.
    TooMany,
    Unknown,
}

#[derive(Debug, Clone)]
struct FormCase {
    content_type: Option<String>,
    body: Body,
    expect: Expect,
    /// Whether the content type is one the parser reads; None when the generator cannot tell.
    supported: Option<bool>,
}

/// Boundaries: as browsers send them, RFC 2046's odd characters, around 1 and 70 characters.
fn valid_boundary() -> BoxedStrategy<String> {
    prop_oneof![
        3 => re("-{4}WebKitFormBoundary[A-Za-z0-9]{16}"),
        2 => re("[A-Za-z0-9'()+_,./:=? -]{0,69}[A-Za-z0-9]"),
        1 => re("[a-z]{1,2}"),
        1 => re("[A-Za-z0-9]{68,70}"),
    ]
    .boxed()
}

fn any_boundary() -> BoxedStrategy<String> {
    prop_oneof![
        6 => valid_boundary(),
        1 => re("[a-z]{71,74}"),
        1 => text(0..12),
        1 => Just(String::new()),
        1 => re("[a-z]{1,8} "),
    ]
    .boxed()
}

/// `multipart/form-data` with the boundary quoted (escaping as a quoted string) when `quote`
/// or when it holds a character a token cannot.
fn multipart_type(boundary: &str, quote: bool) -> String {
    const TSPECIALS: &str = "()<>@,;:\\\"/[]?= \t";
    if quote || boundary.is_empty() || boundary.contains(|c| TSPECIALS.contains(c)) {
        let escaped = boundary.replace('\\', "\\\\").replace('"', "\\\"");
        format!("multipart/form-data; boundary=\"{escaped}\"")
    } else {
        format!("Multipart/Form-Data; boundary={boundary}")
    }
}

fn form_content_type() -> BoxedStrategy<(Option<String>, Option<bool>)> {
    const SUPPORTED: &[&str] = &[
        URLENCODED,
        "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
    ];
    const UNSUPPORTED: &[&str] = &[
        "",
        " ",
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/xml",
        "multipart/mixed; boundary=x",
        "application/json; charset=gbk",
        "application/x-www-form-urlencoded; charset=\"GB2312\"",
    ];
    #[rustfmt::skip]
    const SOUP: &[&str] = &[
        "application/", "json", "x-www-form-urlencoded", "multipart/", "form-data", ";", "; ",
        "boundary=", "charset=", "utf-8", "\"", "\\", "=", " ", "x", "--", "\u{0}", "中",
    ];
    prop_oneof![
        4 => select(SUPPORTED).prop_map(|c| (Some(c.to_string()), Some(true))),
        4 => (any_boundary(), any::<bool>())
            .prop_map(|(b, quote)| (Some(multipart_type(&b, quote)), Some(true))),
        1 => Just((Some("multipart/form-data".to_string()), Some(true))),
        2 => select(UNSUPPORTED).prop_map(|c| (Some(c.to_string()), Some(false))),
        1 => Just((None, Some(false))),
        2 => soup(SOUP, 0..10).prop_map(|c| (Some(c), None)),
        1 => text(0..40).prop_map(|c| (Some(c), None)),
    ]
    .boxed()
}

/// Fields a form may send: familiar names (repeated, as checkboxes are), any printable names
/// up to the limit, values of every kind.
fn form_fields() -> BoxedStrategy<Vec<(String, String)>> {
    const NAMES: &[&str] = &[
        "email",
        "interest",
        "name",
        "consent_email",
        "公司",
        "_kvid",
    ];
    const VALUES: &[&str] = &[
        "",
        "on",
        "张伟",
        "zhang@example.com",
        "42",
        "-1",
        "0",
        "a\r\nb",
        "\r\n\r\n",
        "line\n--",
        "\0",
        "x\r",
        "%FF",
        "&=+",
        "\"quoted\"",
        "{\"not\":\"json\"}",
    ];
    let name = prop_oneof![
        4 => select(NAMES).prop_map(str::to_string),
        3 => re("[a-z_][a-z0-9_]{0,20}"),
        2 => text(1..80).prop_map(|s| {
            let n: String = s
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_FIELD_NAME_CHARS)
                .collect();
            if n.is_empty() { "f".into() } else { n }
        }),
    ];
    let value = prop_oneof![
        4 => select(VALUES).prop_map(str::to_string),
        3 => re("[a-zA-Z0-9@. -]{0,24}"),
        3 => text(0..40),
        1 => repeated(&["a", "中", "\r\n"], 100..2000),
    ];
    let field = (name, value);
    prop_oneof![
        12 => vec(field.clone(), 0..12),
        1 => vec(field, form_body::MAX_FIELDS - 2..form_body::MAX_FIELDS + 3),
    ]
    .boxed()
}

fn urlencoded_body(fields: &[(String, String)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        s.append_pair(name, value);
    }
    s.finish().into_bytes()
}

/// JSON members written by hand, so a repeated name stays repeated; `shapes` picks, per field,
/// a plain string, a one-item array, or (for a value that is a JSON integer) a number.
fn json_body(fields: &[(String, String)], shapes: &[u8]) -> Vec<u8> {
    let is_integer = |v: &str| {
        let digits = v.strip_prefix('-').unwrap_or(v);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
    };
    let mut out = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = serde_json::to_string(name).unwrap_or_default();
        let string = serde_json::to_string(value).unwrap_or_default();
        let value = match shapes.get(i).copied().unwrap_or(0) % 3 {
            1 => format!("[{string}]"),
            2 if is_integer(value) => value.clone(),
            _ => string,
        };
        out.push_str(&format!("{name}: {value}"));
    }
    out.push('}');
    out.into_bytes()
}

/// A multipart body as a browser writes it, or with bare LF line breaks. Returns the body and
/// whether it carries the fields unambiguously (no value holds the boundary, and with bare LF
/// no value ends in CR, which the parser takes as part of a CRLF).
fn multipart_body(
    fields: &[(String, String)],
    boundary: &str,
    lf_only: bool,
    (preamble, epilogue): (&str, &str),
) -> (Vec<u8>, bool) {
    let nl = if lf_only { "\n" } else { "\r\n" };
    let mut out = preamble.to_string();
    for (name, value) in fields {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!(
            "--{boundary}{nl}Content-Disposition: form-data; name=\"{name}\"{nl}{nl}{value}{nl}"
        ));
    }
    out.push_str(&format!("--{boundary}--{epilogue}"));
    let dash_boundary = format!("--{boundary}");
    let exact = fields
        .iter()
        .all(|(_, v)| !(v.contains(&dash_boundary) || (lf_only && v.ends_with('\r'))));
    (out.into_bytes(), exact)
}

/// A valid body in one of the three encodings, its content type, and what it must parse to.
fn encoded_form() -> BoxedStrategy<(String, Vec<u8>, Expect)> {
    const PREAMBLES: &[&str] = &[
        "",
        "",
        "This is a multi-part message in MIME format.\r\n",
        "\n",
    ];
    const EPILOGUES: &[&str] = &["", "\r\n", "\r\nepilogue --x--\r\n", "--\r\n"];
    (
        form_fields(),
        0u8..3,
        (valid_boundary(), any::<bool>(), any::<bool>()),
        (select(PREAMBLES), select(EPILOGUES)),
        vec(any::<u8>(), 0..form_body::MAX_FIELDS + 3),
        select(vec![
            URLENCODED,
            "application/x-www-form-urlencoded; charset=utf-8",
        ]),
    )
        .prop_map(
            |(fields, encoding, (boundary, quote, lf_only), frame, shapes, urlencoded)| {
                let expect = if fields.len() > form_body::MAX_FIELDS {
                    Expect::TooMany
                } else {
                    Expect::Fields(fields.clone())
                };
                match encoding {
                    0 => (urlencoded.to_string(), urlencoded_body(&fields), expect),
                    1 => (
                        "application/json".to_string(),
                        json_body(&fields, &shapes),
                        expect,
                    ),
                    _ => {
                        let (body, exact) = multipart_body(&fields, &boundary, lf_only, frame);
                        let expect = if exact { expect } else { Expect::Unknown };
                        (multipart_type(&boundary, quote), body, expect)
                    }
                }
            },
        )
        .boxed()
}

#[rustfmt::skip]
const FORM_SOUP: &[&str] = &[
    "--", "----WebKitFormBoundaryq3ZyhSrcyDy0BoLs", "\r\n", "\n", "\r\n\r\n",
    "Content-Disposition: form-data; name=\"a\"", "content-disposition:", "form-data", "; ",
    "name=", "name=\"", "filename=\"x.pdf\"", "\"", "\\", "&", "=", "%", "%2", "%FF", "%E4%B8",
    "%AD", "%00", "+", "email", "a", "中", "{", "}", "[", "]", ":", ",", "null", "true", "1e400",
    "\"a\"", "\\ud800", "\u{0}", "\u{85}", "\u{feff}", "\u{ff}",
];

#[rustfmt::skip]
const FORM_TOKENS: &[&[u8]] = &[
    b"\r\n", b"\n", b"\r", b"--", b"\r\n\r\n", b"&", b"=", b"%", b"%FF", b"%E4%B8", b"%00", b"+",
    b"\"", b"\\", b"{", b"}", b"[", b"]", b":", b",", b"null", b"1e400", b"\\ud800", b"\xff",
    b"\xe4\xb8", b"; filename=\"a\"", b"Content-Disposition: form-data; name=\"x\"\r\n\r\n",
    b"\r\n----WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n", b"\"x\":[[1]]",
];

fn form_case() -> BoxedStrategy<FormCase> {
    let arbitrary = (
        form_content_type(),
        prop_oneof![
            vec(any::<u8>(), 0..512),
            soup(FORM_SOUP, 0..64).prop_map(String::into_bytes),
        ],
    )
        .prop_map(|((content_type, supported), body)| FormCase {
            content_type,
            body: Body(body),
            expect: Expect::Unknown,
            supported,
        });
    let valid = encoded_form().prop_map(|(content_type, body, expect)| FormCase {
        content_type: Some(content_type),
        body: Body(body),
        expect,
        supported: Some(true),
    });
    let mutated = (
        encoded_form(),
        vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    )
        .prop_map(|((content_type, body, _), edits)| FormCase {
            content_type: Some(content_type),
            body: Body(mutate_with(body, edits, FORM_TOKENS)),
            expect: Expect::Unknown,
            supported: Some(true),
        });
    let padded = (
        form_content_type(),
        MAX_BODY_BYTES - 2..MAX_BODY_BYTES + 3,
        select(vec![&b"a="[..], b"{\"a\":\"", b"--x\r\n"]),
    )
        .prop_map(|((content_type, supported), n, head)| {
            let mut body = head.to_vec();
            body.resize(n, b'a');
            FormCase {
                content_type,
                body: Body(body),
                expect: Expect::Unknown,
                supported,
            }
        });
    prop_oneof![
        3 => arbitrary,
        4 => valid,
        4 => mutated,
        1 => padded,
    ]
    .boxed()
}

#[derive(Default)]
struct FormTally {
    ok: Cell<u64>,
    fields: Cell<u64>,
    round_trips: Cell<u64>,
    by_status: RefCell<std::collections::BTreeMap<u16, u64>>,
}

fn check_form_body(case: &FormCase, tally: &FormTally) -> Result<(), TestCaseError> {
    let body = &case.body.0;
    let content_type = case.content_type.as_deref();
    let result = form_body::parse(content_type, body);
    if let Err(e) = &result {
        *tally.by_status.borrow_mut().entry(e.status()).or_default() += 1;
        prop_assert!(
            matches!(e.status(), 400 | 413 | 415),
            "status {}",
            e.status()
        );
        prop_assert!(!e.to_string().is_empty());
    }
    if body.len() > MAX_BODY_BYTES {
        prop_assert_eq!(result, Err(BodyError::TooLarge));
        return Ok(());
    }
    prop_assert!(
        result != Err(BodyError::TooLarge),
        "TooLarge at {} bytes",
        body.len()
    );
    let unsupported = matches!(result, Err(BodyError::UnsupportedMediaType(_)));
    match case.supported {
        Some(true) => prop_assert!(!unsupported, "{result:?}"),
        Some(false) => prop_assert!(unsupported, "{result:?}"),
        None => {}
    }
    if let Ok(fields) = &result {
        bump(&tally.ok, 1);
        bump(&tally.fields, fields.len());
        prop_assert!(
            fields.len() <= form_body::MAX_FIELDS,
            "{} fields",
            fields.len()
        );
        for (name, _) in fields {
            let chars = name.chars().count();
            prop_assert!(
                (1..=MAX_FIELD_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control),
                "name {name:?}"
            );
        }
    }
    match &case.expect {
        Expect::Fields(fields) => {
            bump(&tally.round_trips, 1);
            prop_assert_eq!(&result, &Ok(fields.clone()));
        }
        Expect::TooMany => {
            let too_many = format!("a form sends at most {} fields", form_body::MAX_FIELDS);
            prop_assert_eq!(&result, &Err(BodyError::Malformed(too_many)));
        }
        Expect::Unknown => {}
    }
    // form_urlencoded is the reference: the same fields whenever the body is read, and a
    // refusal only for invalid UTF-8 (which it would have replaced), a bad name or too many.
    if content_type == Some(URLENCODED) {
        let reference: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        match &result {
            Ok(fields) => prop_assert_eq!(fields, &reference),
            Err(e) => {
                let explained = reference.len() > form_body::MAX_FIELDS
                    || reference.iter().any(|(n, v)| {
                        n.is_empty()
                            || n.chars().count() > MAX_FIELD_NAME_CHARS
                            || n.chars().any(char::is_control)
                            || n.contains('\u{fffd}')
                            || v.contains('\u{fffd}')
                    });
                prop_assert!(
                    explained,
                    "refused {e:?}, but form_urlencoded reads {reference:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_form_body() {
    let targets = Targets::default();
    let tally = FormTally::default();
    let n = targets.run("form/body", FORM_BODY, form_case(), |case| {
        check_form_body(&case, &tally)
    });
    let statuses: Vec<String> = tally
        .by_status
        .borrow()
        .iter()
        .map(|(status, count)| format!("{count} refused {status}"))
        .collect();
    report(
        "form/body",
        n,
        format!(
            "{} read ({} fields), {}; {} round trips",
            tally.ok.get(),
            tally.fields.get(),
            statuses.join(", "),
            tally.round_trips.get()
        ),
    );
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 7. Email normalisation.
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const EMAIL_SOUP: &[&str] = &[
    "a", "Z", "0", "zhang", "@", "@", "＠", ".", ".", ".", "。", "．", "｡", "-", "_", "+", "例子",
    "中国", "bücher", "Ü", "xn--", "ｚｈａｎｇ", "Ｅ", "\u{3000}", " ", "\t", "\u{0}", "é", "İ",
    "Σ", "ß", "\u{212a}", "😀", "\u{a0}", "cn", "com", "\u{ff5e}", "\u{ff5f}", "\u{200b}",
    "\u{85}", "\u{2028}", "\u{feff}",
];

fn email_input() -> BoxedStrategy<String> {
    let near_limits = (
        re("[a-zA-Z]{1,70}"),
        1usize..6,
        re("[a-z0-9]{40,64}"),
        select(vec!["例子", "中国", "ü", "Ü", "ａ"]),
    )
        .prop_map(|(local, n, label, idn)| {
            let labels: Vec<String> = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        label.clone()
                    } else {
                        format!("{idn}{}", label.get(..20).unwrap_or(&label))
                    }
                })
                .collect();
            format!("{local}@{}.cn", labels.join("."))
        });
    prop_oneof![
        4 => soup(EMAIL_SOUP, 0..24),
        2 => email(),
        1 => text(0..64),
        1 => vec(any::<u8>(), 0..64).prop_map(lossy),
        1 => near_limits,
    ]
    .boxed()
}

/// Whether the part of `raw` before its first `@` (ASCII or full-width) is ASCII once
/// full-width forms are folded: then the normalised local part must be ASCII too.
fn ascii_local_part(raw: &str) -> bool {
    raw.chars()
        .take_while(|&c| c != '@' && c != '＠')
        .all(|c| c.is_ascii() || ('\u{ff01}'..='\u{ff5e}').contains(&c) || c == '\u{3000}')
}

#[test]
fn fuzz_normalise_email() {
    let targets = Targets::default();
    let normalised = Cell::new(0u64);
    let idn = Cell::new(0u64);
    let n = targets.run("pii/email", EMAIL_NORMALISE, email_input(), |raw| {
        let Some(out) = normalise_email(&raw) else {
            return Ok(());
        };
        normalised.set(normalised.get() + 1);
        idn.set(idn.get() + u64::from(out.contains("xn--")));
        prop_assert_eq!(out.matches('@').count(), 1, "{:?}", out);
        prop_assert!(
            !out.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{out:?}"
        );
        prop_assert!(out.len() <= 254, "{out:?}");
        let (local, domain) = out.split_once('@').unwrap_or_default();
        prop_assert!(!local.is_empty());
        // The domain is always ASCII; the local part is kept as typed apart from case, so an
        // internationalised mailbox stays non-ASCII (see `normalise_email`).
        prop_assert!(domain.is_ascii() && domain.len() <= 253, "{out:?}");
        prop_assert!(domain.split('.').count() >= 2, "{out:?}");
        for label in domain.split('.') {
            prop_assert!(
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-'),
                "label {label:?} of {out:?}"
            );
        }
        if ascii_local_part(&raw) {
            prop_assert!(out.is_ascii(), "{raw:?} became {out:?}");
        }
        prop_assert_eq!(normalise_email(&out), Some(out.clone()), "not idempotent");
        Ok(())
    });
    report(
        "pii/email",
        n,
        format!(
            "{} normalised, {} with an internationalised domain",
            normalised.get(),
            idn.get()
        ),
    );
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 8. Message templates.
// ---------------------------------------------------------------------------------------------

/// In every variable value and nowhere in any template: the rendered HTML must never hold it
/// unescaped.
const INJECTED: &str = "<x-inj>";

#[rustfmt::skip]
const TEMPLATE_SOUP: &[&str] = &[
    "{{", "}}", "{{{", "}}}", "\\{{", "\\", "{", "}", "{{ first_name }}", "{{first_name|\"there\"}}",
    "{{ coupon_code }}", "{{ tag.industry }}", "{{ tag.Bad }}", "{{ coupon }}", "{{ }}", "{{#if ",
    "{{#if vip}}", "{{#if tag.industry == \"finance\"}}", "{{else if region != \"cn\"}}",
    "{{else}}", "{{/if}}", "{{#each x}}", "{{/each}}", "==", "!=", "=", "|", "\"", "\\\"", "'",
    " ", "\n", "\r\n", "\t", "#if", "else", "if", "/if", "vip", "first_name", "tag.", "<p>",
    "</p>", "<br>", "<a href=\"https://example.com/?a=1&amp;b=2\">", "<a HREF='http://x.test'>",
    "<a href=\"mailto:a@example.com\">", "</a>", "<!--", "-->", "<style>", "</style>", "&amp;",
    "&lt;", "&#39;", "&nbsp;", "<", ">", "&", "中文", "😀", "\u{0}", "\u{7}", "\u{85}",
    "\u{2028}",
];

/// Pieces that keep a template valid in any order: their blocks are balanced.
#[rustfmt::skip]
const TEMPLATE_PIECES: &[&str] = &[
    "Hi ", "{{ first_name | \"there\" }}", "{{company}}", "<p>", "</p>", "<br/>", "\n", "中文 ",
    "{{#if vip}}V{{else}}-{{/if}}", "\\{{ literal }}", "{{ tag.rfm }}", "{{ coupon_code }}",
    "{{#if tag.industry == \"manufacturing\"}}M{{else if tag.industry != \"retail\"}}{{ industry }}{{else}}R{{/if}}",
    "<a href=\"https://example.com/?c={{ coupon_code }}&amp;u={{ email }}\">go</a>",
    "<a href='{{ unsubscribe_url }}'>unsubscribe</a>", "<h2>{{ name | \"a <b> & 'c'\" }}</h2>",
];

#[rustfmt::skip]
const TEMPLATE_TOKENS: &[&[u8]] = &[
    b"{{", b"}}", b"{{{", b"\\{{", b"{{#if vip}}", b"{{else}}", b"{{/if}}", b"{{ coupon }}",
    b"\"", b"\\\"", b"\\u0000", b"\\n", b"\xff", b",\"extra\":1", b"null", b"[]", b"{}",
    b"\"subject\":\"s\",", b"\"html\":\"<p>\",", b"\"text\":\"t\",", b"\"sms\"", b"\"email\"",
    b"\"zh-CN\"", b"\"en\"", b"\"b\"",
];

const TEMPLATE_VAR_NAMES: &[&str] = &[
    "first_name",
    "company",
    "industry",
    "region",
    "email",
    "tag.industry",
    "tag.rfm",
    "vip",
    "coupon_code",
];

fn template_body() -> BoxedStrategy<String> {
    let valid = (vec(select(TEMPLATE_PIECES), 1..10), 0u8..4).prop_map(|(pieces, wrap)| {
        let body = pieces.concat();
        match wrap {
            // Nested blocks, up to and past the limit.
            0 => format!("{}{body}{}", "{{#if vip}}".repeat(8), "{{/if}}".repeat(8)),
            1 => format!("{}{body}{}", "{{#if vip}}".repeat(9), "{{/if}}".repeat(9)),
            _ => body,
        }
    });
    prop_oneof![
        10 => valid,
        8 => soup(TEMPLATE_SOUP, 0..24),
        2 => text(0..40),
        // Around the subject and SMS limits (characters).
        2 => prop_oneof![
            repeated(&["a", "中"], MAX_SUBJECT_CHARS - 2..MAX_SUBJECT_CHARS + 3),
            repeated(&["a", "中"], MAX_SMS_CHARS - 2..MAX_SMS_CHARS + 3),
        ],
        // Around the part limit (bytes): rare, as each costs a pass over 100 KB.
        1 => prop_oneof![
            repeated(&["a"], MAX_PART_BYTES - 2..MAX_PART_BYTES + 3),
            repeated(&["中"], MAX_PART_BYTES / 3 - 1..MAX_PART_BYTES / 3 + 2),
        ],
    ]
    .boxed()
}

/// The parts of one locale: mostly the ones the channel needs, sometimes any.
fn template_parts(channel: &'static str) -> BoxedStrategy<Value> {
    let email = channel == "email";
    (
        prop::option::weighted(if email { 0.92 } else { 0.04 }, template_body()),
        prop::option::weighted(if email { 0.7 } else { 0.04 }, template_body()),
        prop::option::weighted(if email { 0.5 } else { 0.95 }, template_body()),
    )
        .prop_map(|(subject, html, text)| {
            let parts = [("subject", subject), ("html", html), ("text", text)];
            Value::Object(
                parts
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::from(v))))
                    .collect(),
            )
        })
        .boxed()
}

fn template_variant(channel: &'static str) -> BoxedStrategy<Value> {
    (
        select(vec!["b", "c", "b", "a", "B", "", "abcdefghijklmnopq"]),
        select(vec!["zh-CN", "en", "en", "fr"]),
        template_parts(channel),
        0u8..3,
    )
        .prop_map(|(id, locale, parts, keep)| {
            // A variant overrides one or two parts, not everything the generator made.
            let parts = match parts {
                Value::Object(m) => Value::Object(m.into_iter().skip(usize::from(keep)).collect()),
                other => other,
            };
            let mut locales = Map::new();
            locales.insert(locale.to_string(), parts);
            json!({ "id": id, "locales": locales })
        })
        .boxed()
}

/// Documents with any mix of right and wrong: ids, variables, locales, parts, variants.
fn wild_doc(channel: &'static str) -> BoxedStrategy<Value> {
    (
        btree_map(
            select(vec!["zh-CN", "en", "zh-CN", "en", "fr"]),
            template_parts(channel),
            0..3,
        ),
        vec(template_variant(channel), 0..3),
        select(vec![
            vec!["coupon_code", "vip"],
            vec!["coupon_code", "vip"],
            vec![],
            vec!["vip", "vip"],
            vec!["Bad"],
        ]),
        select(vec!["welcome", "welcome", "", "Bad!"]),
    )
        .prop_map(move |(locales, variants, variables, id)| {
            json!({
                "id": id,
                "name": "Fuzz",
                "channel": channel,
                "variables": variables,
                "locales": locales,
                "variants": variants,
            })
        })
        .boxed()
}

/// Pieces short enough for a subject or an SMS, balanced like `TEMPLATE_PIECES`.
#[rustfmt::skip]
const SHORT_PIECES: &[&str] = &[
    "Hi ", "{{ first_name | \"there\" }}", "{{company}}", "{{#if vip}}V{{else}}-{{/if}}",
    "中文 ", "\\{{ literal }}", "{{ tag.industry }}", "\n", "{{#if region != \"cn\"}}!{{/if}}",
];

/// Documents built to be valid: the parts the channel needs, variants overriding parts the
/// base has. Their bodies are what the render checks exercise.
fn clean_doc(channel: &'static str) -> BoxedStrategy<Value> {
    let short = vec(select(SHORT_PIECES), 1..5).prop_map(|p| p.concat());
    let long = vec(select(TEMPLATE_PIECES), 1..12).prop_map(|p| p.concat());
    (
        0u8..3,
        (short.clone(), long.clone(), long, 0u8..3),
        vec((any::<u8>(), any::<u8>(), short), 0..3),
    )
        .prop_map(move |(which, (subject, html, text, kinds), overrides)| {
            let mut parts = Map::new();
            if channel == "email" {
                parts.insert("subject".into(), subject.into());
                if kinds != 1 {
                    parts.insert("html".into(), html.into());
                }
                if kinds != 0 {
                    parts.insert("text".into(), text.into());
                }
            } else {
                parts.insert("text".into(), subject.into());
            }
            let locales: Vec<&str> = match which {
                0 => vec!["zh-CN"],
                1 => vec!["en"],
                _ => vec!["zh-CN", "en"],
            };
            let variants: Vec<Value> = overrides
                .into_iter()
                .enumerate()
                .map(|(k, (locale, part, body))| {
                    let locale = locales[usize::from(locale) % locales.len()];
                    let keys: Vec<&String> = parts.keys().collect();
                    let part = keys[usize::from(part) % keys.len()];
                    let id = ["b", "c", "d"][k % 3];
                    json!({ "id": id, "locales": { locale: { part.as_str(): body } } })
                })
                .collect();
            let locales: Map<String, Value> = locales
                .iter()
                .map(|l| (l.to_string(), Value::Object(parts.clone())))
                .collect();
            json!({
                "id": "welcome",
                "name": "Fuzz",
                "channel": channel,
                "variables": ["coupon_code", "vip"],
                "locales": locales,
                "variants": variants,
            })
        })
        .boxed()
}

fn template_doc() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => clean_doc("email"),
        1 => clean_doc("sms"),
        1 => clean_doc("wecom"),
        2 => wild_doc("email"),
        1 => wild_doc("sms"),
        1 => wild_doc("wecom"),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct TemplateCase {
    doc: Body,
    vars: std::collections::BTreeMap<String, String>,
    lang: Lang,
    variant: &'static str,
    contact: String,
}

fn template_case() -> BoxedStrategy<TemplateCase> {
    let doc = prop_oneof![
        6 => template_doc().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        3 => (template_doc(), vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)).prop_map(
            |(v, edits)| {
                mutate_with(serde_json::to_vec(&v).unwrap_or_default(), edits, TEMPLATE_TOKENS)
            }
        ),
        1 => vec(any::<u8>(), 0..256),
    ];
    // Every value carries the marker, around whatever else a sender might put in a field.
    let value = prop_oneof![
        3 => select(vec!["", " ", "0", "false", "finance", "retail", "manufacturing", "cn"])
            .prop_map(|v| format!("{v}{INJECTED}")),
        2 => text(0..20).prop_map(|t| format!("{t}{INJECTED}{t}")),
        1 => Just(format!("\r\n{INJECTED}\u{0}\"'&</p>")),
    ];
    (
        doc,
        btree_map(
            select(TEMPLATE_VAR_NAMES).prop_map(str::to_string),
            value,
            0..6,
        ),
        any::<bool>(),
        select(vec!["a", "b", "c", "zz"]),
        re("[a-z0-9]{1,12}"),
    )
        .prop_map(|(doc, vars, zh, variant, contact)| TemplateCase {
            doc: Body(doc),
            vars,
            lang: if zh { Lang::ZhCn } else { Lang::En },
            variant,
            contact,
        })
        .boxed()
}

#[derive(Default)]
struct TemplateTally {
    valid: Cell<u64>,
    refused: Cell<u64>,
    rendered: Cell<u64>,
    variants: Cell<u64>,
    /// Renders whose html holds a value: each proves the marker arrived, escaped.
    escaped: Cell<u64>,
}

/// The size limits `validate` promises, over the base and every variant.
fn check_limits(t: &Template) -> Result<(), TestCaseError> {
    let all: Vec<&Parts> = t
        .locales
        .values()
        .chain(t.variants.iter().flat_map(|v| v.locales.values()))
        .collect();
    for p in all {
        for part in [&p.subject, &p.html, &p.text].into_iter().flatten() {
            prop_assert!(part.len() <= MAX_PART_BYTES && !part.trim().is_empty());
        }
        if let Some(subject) = &p.subject {
            prop_assert!(subject.chars().count() <= MAX_SUBJECT_CHARS);
        }
        if let (Channel::Sms, Some(text)) = (t.channel, &p.text) {
            prop_assert!(text.chars().count() <= MAX_SMS_CHARS);
        }
    }
    Ok(())
}

/// Renders `t` and checks what holds for any template, validated or not.
fn check_rendered(
    t: &Template,
    case: &TemplateCase,
    variant: &str,
    valid: bool,
    tally: &TemplateTally,
) -> Result<(), TestCaseError> {
    let r = template::render(
        t,
        &RenderContext {
            vars: &case.vars,
            lang: case.lang,
            variant,
        },
    );
    if let Some(subject) = &r.subject {
        prop_assert!(!subject.contains(['\n', '\r']), "subject {subject:?}");
    }
    if let Some(html) = &r.html {
        prop_assert!(
            !html.contains(INJECTED),
            "a value reached the html: {html:?}"
        );
        bump(&tally.escaped, usize::from(html.contains("&lt;x-inj&gt;")));
        // Tracking rewrites nothing it is told to keep, and escapes what it writes.
        prop_assert_eq!(&template::track_links(html, |_| None), html);
        let tracked = template::track_links(html, |url| Some(format!("https://t.test/{url}")));
        prop_assert!(!tracked.contains(INJECTED), "{tracked:?}");
        let _ = template::html_to_text(html);
    }
    prop_assert!(
        t.variant_ids().contains(&r.variant.as_str()),
        "{}",
        r.variant
    );
    if valid {
        prop_assert!(t.locales.contains_key(r.lang.tag()));
        match t.channel {
            Channel::Email => {
                prop_assert!(r.subject.is_some() && r.text.is_some(), "{r:?}");
            }
            Channel::Sms | Channel::Wecom => {
                prop_assert!(r.subject.is_none() && r.html.is_none() && r.text.is_some());
            }
        }
    }
    Ok(())
}

fn check_template(case: &TemplateCase, tally: &TemplateTally) -> Result<(), TestCaseError> {
    let bytes = &case.doc.0;
    let parsed = template::parse(bytes);
    let decoded: Option<Template> = serde_json::from_slice(bytes).ok();
    match &parsed {
        Ok(t) => {
            bump(&tally.valid, 1);
            prop_assert!(bytes.len() <= template::MAX_TEMPLATE_BYTES);
            prop_assert_eq!(Some(t), decoded.as_ref());
            check_limits(t)?;
        }
        Err(e) => {
            bump(&tally.refused, 1);
            assert_invalid(e)?;
            if let Error::Invalid { field, message } = e {
                prop_assert!(!field.is_empty() && !message.is_empty(), "{e:?}");
            }
            if let (Some(d), true) = (&decoded, bytes.len() <= template::MAX_TEMPLATE_BYTES) {
                prop_assert_eq!(&template::validate(d), &Err(e.clone()));
            }
        }
    }
    // Render what decodes, valid or not: rendering must hold its invariants either way (a
    // template nobody validated renders as written). The marker appears in no template, so
    // only a value could put it in the html.
    let Some(t) = decoded else {
        return Ok(());
    };
    let source = serde_json::to_string(&t).unwrap_or_default();
    if source.contains("x-inj") {
        return Ok(());
    }
    let valid = parsed.is_ok();
    check_rendered(&t, case, case.variant, valid, tally)?;
    let ids = t.variant_ids();
    let assigned = template::variant_for(&case.contact, &t.id, &ids);
    prop_assert!(ids.contains(&assigned));
    if assigned != case.variant {
        bump(&tally.variants, 1);
        check_rendered(&t, case, assigned, valid, tally)?;
    }
    bump(&tally.rendered, 1);
    Ok(())
}

#[test]
fn fuzz_template() {
    let targets = Targets::default();
    let tally = TemplateTally::default();
    let n = targets.run("template", TEMPLATE, template_case(), |case| {
        check_template(&case, &tally)
    });
    report(
        "template",
        n,
        format!(
            "{} valid, {} refused, {} rendered ({} also as their assigned variant), {} html \
             renders holding an escaped value",
            tally.valid.get(),
            tally.refused.get(),
            tally.rendered.get(),
            tally.variants.get(),
            tally.escaped.get()
        ),
    );
    targets.finish();
}

// ---------------------------------------------------------------------------------------------
// 9. Delivery: provider receipts, provider answers and the requests sent to providers.
// ---------------------------------------------------------------------------------------------

/// The recipient the provider fixtures quote (as SendGrid and Twilio do in events, bounce
/// reasons and error messages): no receipt, reason or detail may repeat it.
const RECIPIENT_EMAIL: &str = "fuzz.recipient@example.com";
const RECIPIENT_PHONE: &str = "+8613800138000";
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

fn repeats_recipient(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains(RECIPIENT_EMAIL) || lower.contains(&RECIPIENT_PHONE[1..])
}

fn receipt_message_id() -> BoxedStrategy<String> {
    prop_oneof![
        8 => re("m_[0-9a-f]{32}"),
        2 => re("[A-Za-z0-9_.:-]{1,130}"),
        2 => short_string(),
        1 => Just(RECIPIENT_EMAIL.to_string()),
    ]
    .boxed()
}

fn unix_seconds_value() -> BoxedStrategy<Value> {
    let now = NOW.0 / 1000;
    prop_oneof![
        6 => (now - 86_400..now + 86_400).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => select(vec![0, -1, MAX_UNIX_SECONDS, MAX_UNIX_SECONDS + 1]).prop_map(Value::from),
    ]
    .boxed()
}

/// What a timestamp must read as: `Ok(None)` absent, `Ok(Some(s))` valid, `Err` invalid.
fn expected_seconds(v: Option<&Value>) -> Result<Option<i64>, ()> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(s) = v.as_i64() {
        return if (0..=MAX_UNIX_SECONDS).contains(&s) {
            Ok(Some(s))
        } else {
            Err(())
        };
    }
    match v.as_f64() {
        Some(f) if (0.0..=MAX_UNIX_SECONDS as f64).contains(&f) => Ok(Some(f as i64)),
        _ => Err(()),
    }
}

/// One SendGrid event, quoting the recipient wherever SendGrid does.
fn sendgrid_event() -> BoxedStrategy<Value> {
    #[rustfmt::skip]
    const EVENTS: &[&str] = &[
        "delivered", "bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe", "open",
        "click", "processed", "deferred", "Delivered", "",
    ];
    const TYPES: &[&str] = &["bounce", "blocked", "", "fuzz.recipient@example.com"];
    #[rustfmt::skip]
    const LABELS: &[&str] = &[
        "Invalid Address", "Technical", "Reputation", "Mailbox Unavailable", "Bounced Address",
        "Unsubscribed Address", "Spam Reporting Address", "Invalid",
        "550 5.1.1 <fuzz.recipient@example.com>: Recipient address rejected", " ", "中文",
        "x\r\ny",
    ];
    let text = |values: &'static [&'static str]| select(values).prop_map(Value::from).boxed();
    (
        (
            field(text(EVENTS), REQUIRED),
            field(
                receipt_message_id().prop_map(Value::from).boxed(),
                (85, 5, 10),
            ),
            field(unix_seconds_value(), (90, 5, 5)),
        ),
        (
            field(text(TYPES), OPTIONAL),
            field(text(LABELS), OPTIONAL),
            field(text(LABELS), OPTIONAL),
            field(any::<bool>().prop_map(Value::from).boxed(), OPTIONAL),
        ),
        prop::option::weighted(0.2, (short_string(), json_any())),
        0u8..30,
    )
        .prop_map(
            |((event, id, ts), (kind, class, reason, machine), extra, shape)| {
                if shape == 0 {
                    return event.unwrap_or(Value::Null);
                }
                let mut o = object(vec![
                    ("event", event),
                    ("kindling_message_id", id),
                    ("timestamp", ts),
                    ("type", kind),
                    ("bounce_classification", class),
                    ("reason", reason),
                    ("sg_machine_open", machine),
                ]);
                o.insert("email".into(), RECIPIENT_EMAIL.into());
                o.insert(
                    "url".into(),
                    format!("https://shop.example/?e={RECIPIENT_EMAIL}").into(),
                );
                if let Some((k, v)) = extra {
                    o.insert(k, v);
                }
                Value::Object(o)
            },
        )
        .boxed()
}

fn sendgrid_batch() -> BoxedStrategy<Value> {
    (
        vec(sendgrid_event(), 0..24),
        prop::option::weighted(0.03, hostile()),
    )
        .prop_map(|(events, batch_override)| batch_override.unwrap_or(Value::Array(events)))
        .boxed()
}

/// The receipt SendGrid's event must give (kind and whether a detail is due), or None when
/// the event must be skipped.
fn expected_sendgrid(e: &Value) -> Option<(ReceiptKind, bool)> {
    let id = e.get("kindling_message_id")?.as_str()?;
    if !receipts::is_valid_message_id(id) {
        return None;
    }
    let machine = e.get("sg_machine_open").and_then(Value::as_bool) == Some(true);
    Some(match e.get("event")?.as_str()? {
        "delivered" => (ReceiptKind::Delivered, false),
        "bounce" | "dropped" => (ReceiptKind::Bounced, true),
        "spamreport" => (ReceiptKind::Complained, false),
        "unsubscribe" => (ReceiptKind::Unsubscribed, false),
        "group_unsubscribe" => (ReceiptKind::Unsubscribed, true),
        "open" => (ReceiptKind::Opened, machine),
        "click" => (ReceiptKind::Clicked, false),
        _ => return None,
    })
}

/// A Twilio status callback and the `kindling_message_id` its URL carried.
fn twilio_callback() -> BoxedStrategy<(Vec<(String, String)>, String)> {
    #[rustfmt::skip]
    const STATUSES: &[&str] = &[
        "delivered", "undelivered", "failed", "sent", "queued", "accepted", "sending", "read",
        "canceled", "DELIVERED", "",
    ];
    #[rustfmt::skip]
    const CODES: &[&str] = &[
        "30003", "30005", "30006", "30007", "30008", "21610", "", "0", "300050", "123456789",
        "+8613800138000", "30003 ",
    ];
    (
        prop_oneof![10 => select(STATUSES).prop_map(Some), 1 => Just(None)],
        prop::option::weighted(0.5, select(CODES)),
        receipt_message_id(),
        vec((re("[A-Za-z]{1,12}"), short_string()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(status, code, id, extra, twice)| {
            let mut fields = vec![
                (
                    "SmsSid".to_string(),
                    "SM1f0e8ae6ade43cb3c0ce4525424e404f".to_string(),
                ),
                ("To".to_string(), RECIPIENT_PHONE.to_string()),
                ("From".to_string(), "+15550100000".to_string()),
                ("AccountSid".to_string(), "AC0123456789abcdef".to_string()),
            ];
            if let Some(s) = status {
                fields.push(("MessageStatus".into(), s.into()));
                if twice {
                    // A repeated field: the last one wins, as form parsers read it.
                    fields.push(("MessageStatus".into(), s.into()));
                }
            }
            if let Some(c) = code {
                fields.push(("ErrorCode".into(), c.into()));
            }
            fields.extend(extra);
            (fields, id)
        })
        .boxed()
}

fn generic_receipt() -> BoxedStrategy<Value> {
    #[rustfmt::skip]
    const EVENTS: &[&str] = &[
        "delivered", "bounced", "complained", "unsubscribed", "failed", "opened", "Delivered", "",
    ];
    (
        field(receipt_message_id().prop_map(Value::from).boxed(), REQUIRED),
        field(select(EVENTS).prop_map(Value::from).boxed(), REQUIRED),
        field(unix_seconds_value(), OPTIONAL),
        field(
            prop_oneof![short_string(), repeated(&["d", "中", "\r\n"], 150..260)]
                .prop_map(Value::from)
                .boxed(),
            OPTIONAL,
        ),
        0u8..30,
    )
        .prop_map(|(id, event, at, detail, shape)| {
            if shape == 0 {
                return id.unwrap_or(Value::Null);
            }
            Value::Object(object(vec![
                ("message_id", id),
                ("event", event),
                ("at", at),
                ("detail", detail),
            ]))
        })
        .boxed()
}

/// What every receipt must satisfy, whichever parser produced it.
fn check_receipt(r: &Receipt, from_provider: bool) -> Result<(), TestCaseError> {
    prop_assert!(
        receipts::is_valid_message_id(&r.message_id),
        "{:?}",
        r.message_id
    );
    if let Some(at) = r.at_unix {
        prop_assert!((0..=MAX_UNIX_SECONDS).contains(&at), "at {at}");
    }
    if let Some(d) = &r.detail {
        prop_assert!(
            !d.is_empty() && d.chars().count() <= 200 && !d.chars().any(char::is_control),
            "detail {d:?}"
        );
    }
    // A provider's receipt keeps nothing of what it says about the recipient. (A generic
    // receipt's detail is its sender's text, which promises the same.)
    if from_provider {
        prop_assert!(!repeats_recipient(&format!("{r:?}")), "{r:?}");
    }
    Ok(())
}

#[derive(Default)]
struct ReceiptTally {
    read: Cell<u64>,
    refused: Cell<u64>,
    receipts: Cell<u64>,
}

impl ReceiptTally {
    fn detail(&self) -> String {
        format!(
            "{} bodies read ({} receipts), {} refused",
            self.read.get(),
            self.receipts.get(),
            self.refused.get()
        )
    }
}

/// Any body through the parser `which` picks: no panic, and every receipt well formed.
fn check_receipt_bytes(
    which: u8,
    body: &[u8],
    message_id: &str,
    tally: &ReceiptTally,
) -> Result<(), TestCaseError> {
    let (result, from_provider) = match which % 3 {
        0 => (receipts::parse_sendgrid(body), true),
        1 => (
            receipts::parse_twilio(body, message_id).map(|r| r.into_iter().collect()),
            true,
        ),
        _ => (receipts::parse_generic(body).map(|r| vec![r]), false),
    };
    match result {
        Ok(list) => {
            bump(&tally.read, 1);
            bump(&tally.receipts, list.len());
            for r in &list {
                check_receipt(r, from_provider)?;
            }
        }
        Err(e) => {
            bump(&tally.refused, 1);
            prop_assert!(!e.is_empty());
        }
    }
    Ok(())
}

#[rustfmt::skip]
const RECEIPT_SOUP: &[&str] = &[
    "[", "]", "{", "}", ",", ":", "\"", "\"event\"", "\"delivered\"", "\"bounce\"", "\"open\"",
    "\"kindling_message_id\"", "\"m_00000001\"", "\"timestamp\"", "\"message_id\"", "\"at\"",
    "\"detail\"", "1781740800", "1e400", "-1", "null", "true", "MessageStatus", "ErrorCode", "=",
    "&", "%", "%FF", "+", "delivered", "failed", "30005", "\\u0000", "\\ud800", "é", "\u{0}",
];

#[rustfmt::skip]
const RECEIPT_TOKENS: &[&[u8]] = &[
    b"{", b"}", b"[", b"]", b",", b":", b"\"", b"\\", b"null", b"1e400", b"-1", b"\xff",
    b"\\u0000", b"\\ud800", b"[[[[[[[[", b"&", b"=", b"%", b"%FF", b"+",
    b"\"kindling_message_id\":\"fuzz.recipient@example.com\"", b"\"event\":\"bounce\"",
    b"\"type\":\"fuzz.recipient@example.com\"", b"&MessageStatus=failed&ErrorCode=30005",
];

fn receipt_bytes() -> BoxedStrategy<(u8, Body, String)> {
    let valid = prop_oneof![
        sendgrid_batch().prop_map(|v| (0u8, v.to_string().into_bytes(), String::new())),
        twilio_callback().prop_map(|(fields, id)| {
            let mut f = form_urlencoded::Serializer::new(String::new());
            f.extend_pairs(fields);
            (1u8, f.finish().into_bytes(), id)
        }),
        generic_receipt().prop_map(|v| (2u8, v.to_string().into_bytes(), String::new())),
    ];
    prop_oneof![
        8 => (any::<u8>(), vec(any::<u8>(), 0..256), receipt_message_id()),
        8 => (any::<u8>(), soup(RECEIPT_SOUP, 0..64), receipt_message_id())
            .prop_map(|(w, s, id)| (w, s.into_bytes(), id)),
        16 => (valid, vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6))
            .prop_map(|((w, b, id), edits)| (w, mutate_with(b, edits, RECEIPT_TOKENS), id)),
        1 => (0u8..3, receipts::MAX_BODY_BYTES - 1..receipts::MAX_BODY_BYTES + 2)
            .prop_map(|(w, n)| {
                let mut b = b"[".to_vec();
                b.resize(n, b' ');
                (w, b, "m_1".to_string())
            }),
    ]
    .prop_map(|(w, b, id)| (w, Body(b), id))
    .boxed()
}

#[derive(Debug, Clone)]
enum ReceiptCase {
    SendGrid(Value),
    Twilio(Vec<(String, String)>, String),
    Generic(Value),
}

fn receipt_case() -> BoxedStrategy<ReceiptCase> {
    prop_oneof![
        2 => sendgrid_batch().prop_map(ReceiptCase::SendGrid),
        1 => twilio_callback().prop_map(|(f, id)| ReceiptCase::Twilio(f, id)),
        1 => generic_receipt().prop_map(ReceiptCase::Generic),
    ]
    .boxed()
}

/// Structurally valid receipts: each parser must give exactly what the reference reading of
/// the input says.
fn check_receipt_case(case: &ReceiptCase, tally: &ReceiptTally) -> Result<(), TestCaseError> {
    match case {
        ReceiptCase::SendGrid(batch) => {
            let got = receipts::parse_sendgrid(batch.to_string().as_bytes());
            let Some(events) = batch.as_array() else {
                prop_assert!(got.is_err(), "{got:?}");
                bump(&tally.refused, 1);
                return Ok(());
            };
            let got = match got {
                Ok(got) => got,
                // serde_json refuses nesting past 128 levels, which only hostile values reach.
                Err(_) if json_depth(batch) >= 120 => {
                    bump(&tally.refused, 1);
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(e)),
            };
            let expected: Vec<(&Value, (ReceiptKind, bool))> = events
                .iter()
                .filter_map(|e| Some((e, expected_sendgrid(e)?)))
                .collect();
            prop_assert_eq!(got.len(), expected.len());
            for (r, (e, (kind, detail))) in got.iter().zip(&expected) {
                check_receipt(r, true)?;
                prop_assert_eq!(&r.kind, kind);
                prop_assert_eq!(r.detail.is_some(), *detail, "{:?} from {}", r, e);
                prop_assert_eq!(
                    Some(r.message_id.as_str()),
                    e.get("kindling_message_id").and_then(Value::as_str)
                );
                let at = expected_seconds(e.get("timestamp")).unwrap_or(None);
                prop_assert_eq!(r.at_unix, at, "{}", e);
            }
            bump(&tally.read, 1);
            bump(&tally.receipts, got.len());
        }
        ReceiptCase::Twilio(fields, id) => {
            let mut f = form_urlencoded::Serializer::new(String::new());
            f.extend_pairs(fields);
            let got = receipts::parse_twilio(f.finish().as_bytes(), id);
            let last = |name: &str| {
                fields
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let status = last("MessageStatus");
            if !receipts::is_valid_message_id(id) || status.is_none() {
                prop_assert!(got.is_err(), "{got:?}");
                bump(&tally.refused, 1);
                return Ok(());
            }
            let got = got.map_err(TestCaseError::fail)?;
            let code = last("ErrorCode")
                .filter(|c| (1..=8).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()));
            let kind = match status {
                Some("delivered") => Some(ReceiptKind::Delivered),
                Some("undelivered" | "failed") => match code {
                    Some("30003" | "30005" | "30006") => Some(ReceiptKind::Bounced),
                    _ => Some(ReceiptKind::Failed),
                },
                _ => None,
            };
            prop_assert_eq!(got.as_ref().map(|r| &r.kind), kind.as_ref());
            if let Some(r) = &got {
                check_receipt(r, true)?;
                prop_assert_eq!(&r.message_id, id);
                let detail = code
                    .filter(|_| r.kind != ReceiptKind::Delivered)
                    .map(|c| format!("twilio_{c}"));
                prop_assert_eq!(&r.detail, &detail);
            }
            bump(&tally.read, 1);
            bump(&tally.receipts, usize::from(got.is_some()));
        }
        ReceiptCase::Generic(v) => {
            let got = receipts::parse_generic(v.to_string().as_bytes());
            let id = v.get("message_id").and_then(Value::as_str);
            let kind = match v.get("event").and_then(Value::as_str) {
                Some("delivered") => Some(ReceiptKind::Delivered),
                Some("bounced") => Some(ReceiptKind::Bounced),
                Some("complained") => Some(ReceiptKind::Complained),
                Some("unsubscribed") => Some(ReceiptKind::Unsubscribed),
                Some("failed") => Some(ReceiptKind::Failed),
                _ => None,
            };
            let at = expected_seconds(v.get("at"));
            let detail_ok = matches!(v.get("detail"), None | Some(Value::Null | Value::String(_)));
            let valid = v.is_object()
                && id.is_some_and(receipts::is_valid_message_id)
                && kind.is_some()
                && at.is_ok()
                && detail_ok;
            prop_assert_eq!(got.is_ok(), valid, "{:?} from {}", got, v);
            if let Ok(r) = &got {
                check_receipt(r, false)?;
                prop_assert_eq!(Some(r.message_id.as_str()), id);
                prop_assert_eq!(Some(&r.kind), kind.as_ref());
                prop_assert_eq!(Ok(r.at_unix), at);
                bump(&tally.read, 1);
                bump(&tally.receipts, 1);
            } else {
                bump(&tally.refused, 1);
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_receipts() {
    let targets = Targets::default();
    let tally = ReceiptTally::default();
    let n = targets.run(
        "receipts/bytes",
        RECEIPT_BYTES,
        receipt_bytes(),
        |(which, body, id)| check_receipt_bytes(which, &body.0, &id, &tally),
    );
    report("receipts/bytes", n, tally.detail());

    let tally = ReceiptTally::default();
    let m = targets.run(
        "receipts/structured",
        RECEIPT_STRUCTURED,
        receipt_case(),
        |case| check_receipt_case(&case, &tally),
    );
    report("receipts/structured", m, tally.detail());
    eprintln!("fuzz receipts: {} cases in total", n + m);
    targets.finish();
}

fn provider() -> BoxedStrategy<Provider> {
    select(vec![
        Provider::SendGrid,
        Provider::Twilio,
        Provider::WecomRobot,
        Provider::WecomApp,
        Provider::Webhook,
    ])
    .boxed()
}

fn answer_status() -> BoxedStrategy<u16> {
    #[rustfmt::skip]
    const STATUSES: &[u16] = &[
        0, 100, 200, 201, 202, 204, 299, 301, 400, 401, 403, 404, 408, 410, 413, 429, 499, 500, 502,
        503, 599, 600, 999, 65535,
    ];
    prop_oneof![4 => select(STATUSES), 1 => any::<u16>()].boxed()
}

fn answer_headers() -> BoxedStrategy<Vec<(String, String)>> {
    #[rustfmt::skip]
    const NAMES: &[&str] = &[
        "Retry-After", "retry-after", "RETRY-AFTER", "X-Message-Id", "x-message-id",
        "Content-Type", "X-Junk", "Retry-After ",
    ];
    #[rustfmt::skip]
    const VALUES: &[&str] = &[
        "0", "1", "30", "120", "86400", "86401", "4294967295", "4294967296", "999999999999",
        "9999999999999", "-1", "1.5", " 7 ", "", "Wed, 21 Oct 2026 07:28:00 GMT",
        "14c5d75ce93.dfd.64b469.filter0001", "fuzz.recipient@example.com", "a b", "\u{7f}", "中",
    ];
    let value = prop_oneof![3 => select(VALUES).prop_map(str::to_string), 1 => short_string()];
    vec((select(NAMES).prop_map(str::to_string), value), 0..4).boxed()
}

/// Provider answers: the real shapes (quoting the recipient, as Twilio's messages do), with
/// every code that means something, plus junk.
fn answer_body() -> BoxedStrategy<Vec<u8>> {
    #[rustfmt::skip]
    const CODES: &[i64] = &[
        0, -1, 40001, 40014, 42001, 45009, 45033, 81013, 93000, 21211, 21610, 21611, 21614, 20003,
        20429, 30007, i64::MAX, i64::MIN,
    ];
    let message = select(vec![
        "The 'To' number +8613800138000 is not a valid phone number.",
        "The from email fuzz.recipient@example.com is not verified",
        "ok",
        "system busy",
    ]);
    let code = prop_oneof![
        6 => select(CODES).prop_map(Value::from),
        1 => hostile(),
    ];
    let id = prop_oneof![
        3 => re("[A-Za-z0-9]{1,40}").prop_map(Value::from),
        1 => short_string().prop_map(Value::from),
        1 => hostile(),
    ];
    let shaped = (code, message, id, 0u8..6).prop_map(|(code, message, id, shape)| {
        let v = match shape {
            0 => json!({ "errcode": code, "errmsg": message, "msgid": id }),
            1 => json!({ "errcode": code, "errmsg": message, "invaliduser": id }),
            2 => json!({ "code": code, "message": message, "status": 400 }),
            3 => json!({ "sid": id, "status": "queued", "to": RECIPIENT_PHONE }),
            4 => json!({ "errors": [{ "message": message, "field": id }] }),
            _ => json!({ "errcode": 0, "access_token": id, "expires_in": code }),
        };
        v.to_string().into_bytes()
    });
    prop_oneof![
        6 => shaped.clone(),
        2 => (shaped, vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4))
            .prop_map(|(b, edits)| mutate(b, edits)),
        1 => vec(any::<u8>(), 0..128),
        1 => soup(JSON_SOUP, 0..32).prop_map(String::into_bytes),
    ]
    .boxed()
}

#[derive(Default)]
struct AnswerTally {
    sent: Cell<u64>,
    retry: Cell<u64>,
    fail: Cell<u64>,
    tokens: Cell<u64>,
}

fn check_answer(
    (provider, status, headers, body): &(Provider, u16, Vec<(String, String)>, Body),
    (attempt, jitter): (u32, f64),
    tally: &AnswerTally,
) -> Result<(), TestCaseError> {
    let outcome = providers::classify(provider, *status, headers, &body.0);
    let transient = matches!(status, 0 | 408 | 429 | 500..=599);
    let success = (200..=299).contains(status);
    let reason_ok = |r: &str| {
        (1..=80).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_graphic()) && !r.contains('@')
    };
    match &outcome {
        Outcome::Sent { provider_id } => {
            bump(&tally.sent, 1);
            prop_assert!(success, "sent on {status}");
            if let Some(id) = provider_id {
                prop_assert!(
                    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic()),
                    "provider id {id:?}"
                );
            }
        }
        Outcome::Retry {
            reason,
            retry_after_s,
        } => {
            bump(&tally.retry, 1);
            prop_assert!(reason_ok(reason), "reason {reason:?}");
            prop_assert!(!repeats_recipient(reason), "reason {reason:?}");
            let ra = retry_after_s.unwrap_or(0);
            prop_assert!(ra <= MAX_RETRY_AFTER_S, "retry after {ra}");
            let wait = providers::backoff_ms(attempt, jitter, *retry_after_s);
            let ceiling = (30_000i64 << attempt.saturating_sub(1).min(7)).min(3_600_000);
            prop_assert!(
                (1_000..=ceiling.max(i64::from(ra) * 1000)).contains(&wait)
                    && wait >= i64::from(ra) * 1000,
                "attempt {attempt}, jitter {jitter}, retry after {ra}: {wait} ms"
            );
        }
        Outcome::Fail { reason } => {
            bump(&tally.fail, 1);
            prop_assert!(reason_ok(reason), "reason {reason:?}");
            prop_assert!(!repeats_recipient(reason), "reason {reason:?}");
        }
    }
    if transient {
        prop_assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    }
    if success
        && matches!(
            provider,
            Provider::SendGrid | Provider::Twilio | Provider::Webhook
        )
    {
        prop_assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    }
    if let Some((token, expires_in)) = providers::wecom_token(&body.0) {
        bump(&tally.tokens, 1);
        prop_assert!(expires_in > 0);
        prop_assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
    }
    Ok(())
}

/// Free text for the request builders: line breaks and header syntax where an injection would
/// put them, Unicode, huge values.
fn request_text() -> BoxedStrategy<String> {
    #[rustfmt::skip]
    const SOUP: &[&str] = &[
        "\r\n", "\n", "\r", "Bcc: ", "X-Evil: 1", "<", ">", ":", " ", "a", "@", "example.com",
        "https://", "中", "😀", "\u{0}", "\u{85}", "\u{2028}", "\u{2029}", "\t", "%", "&", "=",
        "?", "#", "/", "..",
    ];
    prop_oneof![
        4 => soup(SOUP, 0..24),
        2 => text(0..40),
        1 => repeated(&["a", "é", "中", "😀", "\r\n"], 1300..1500),
    ]
    .boxed()
}

fn one_line_ok(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

#[derive(Debug, Clone)]
struct RequestCase {
    texts: Vec<String>,
    body: Body,
    secret: String,
    other_secret: String,
    skew: i64,
    flip: (usize, u8),
}

fn request_case() -> BoxedStrategy<RequestCase> {
    let secret = prop_oneof![
        4 => re("[ -~]{1,70}"),
        1 => Just(String::new()),
        1 => vec(any::<u8>(), 0..80).prop_map(lossy),
    ];
    (
        vec(request_text(), 10),
        vec(any::<u8>(), 0..256),
        (secret, 0u8..4, re("[ -~]{0,70}")),
        prop_oneof![3 => -300i64..=300, 1 => -100_000i64..100_000, 1 => any::<i64>()],
        (any::<usize>(), 1u8..=255),
    )
        .prop_map(|(texts, body, (secret, how, random), skew, flip)| {
            let other_secret = match how {
                0 => random,
                1 => format!("{secret}\0"),
                2 => {
                    let mut s = secret.clone();
                    s.pop();
                    s
                }
                _ => format!("{secret}x"),
            };
            RequestCase {
                texts,
                body: Body(body),
                secret,
                other_secret,
                skew,
                flip,
            }
        })
        .boxed()
}

fn check_requests(case: &RequestCase) -> Result<(), TestCaseError> {
    let t = |i: usize| case.texts[i].as_str();
    let headers_ok = |r: &HttpRequest| {
        r.headers
            .iter()
            .all(|(n, v)| !n.is_empty() && v.bytes().all(|b| (b' '..=b'~').contains(&b)))
    };

    // SendGrid: the body is JSON, and only the message text may hold a line break.
    let cfg = EmailConfig {
        endpoint: "https://api.sendgrid.com".into(),
        api_key: t(0).into(),
        from_email: t(1).into(),
        from_name: t(2).into(),
        reply_to: Some(t(3).into()),
    };
    let m = Email {
        message_id: t(4),
        to: t(5),
        subject: t(6),
        html: Some(t(7)),
        text: t(8),
        unsubscribe_url: Some(t(9)),
        category: t(4),
    };
    let r = providers::sendgrid(&cfg, &m);
    prop_assert!(headers_ok(&r), "{:?}", r.headers);
    let mut body: Value =
        serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let content = body
        .as_object_mut()
        .and_then(|o| o.remove("content"))
        .unwrap_or(Value::Null);
    prop_assert!(content
        .as_array()
        .is_some_and(|c| (1..=2).contains(&c.len())));
    let mut strings = vec![];
    collect_strings(&body, &mut strings);
    for s in &strings {
        prop_assert!(one_line_ok(s), "{s:?} in {body}");
    }
    if let Some(h) = body.get("headers").and_then(Value::as_object) {
        prop_assert_eq!(h.len(), 2);
        let list = h
            .get("List-Unsubscribe")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let inner = list.strip_prefix('<').and_then(|l| l.strip_suffix('>'));
        prop_assert!(
            inner.is_some_and(|u| !u.is_empty() && !u.contains(['<', '>'])),
            "{list:?}"
        );
    }

    // Twilio: the form reads back, one-line addresses, the body untouched, the sid confined to
    // its path segment.
    let sms = SmsConfig {
        endpoint: "https://api.twilio.com".into(),
        account_sid: t(0).into(),
        auth_token: t(1).into(),
        from: t(2).into(),
        status_callback: Some(format!("https://k.example/r/twilio{}", t(3))),
    };
    let r = providers::twilio(&sms, t(4), t(5), t(6));
    prop_assert!(headers_ok(&r), "{:?}", r.headers);
    let segment = r
        .url
        .strip_prefix("https://api.twilio.com/2010-04-01/Accounts/")
        .and_then(|u| u.strip_suffix("/Messages.json"))
        .unwrap_or("/");
    prop_assert!(
        segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "{}",
        r.url
    );
    let fields: Vec<(String, String)> = form_urlencoded::parse(&r.body).into_owned().collect();
    prop_assert_eq!(fields.len(), 4);
    prop_assert!(one_line_ok(&fields[0].1) && one_line_ok(&fields[1].1));
    prop_assert_eq!(&fields[2], &("Body".to_string(), t(6).to_string()));

    // WeCom: within the limits, cut on a character boundary, never altered otherwise.
    let robot = WecomRobotConfig {
        webhook_url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k".into(),
    };
    let long = t(7).repeat(4);
    for (r, limit) in [
        (providers::wecom_robot(&robot, &long), WECOM_ROBOT_MAX_BYTES),
        (
            providers::wecom_app(
                &WecomAppConfig {
                    endpoint: "https://qyapi.weixin.qq.com".into(),
                    agent_id: 1,
                },
                t(0),
                t(1),
                &long,
            ),
            WECOM_APP_MAX_BYTES,
        ),
    ] {
        let v: Value =
            serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sent = v
            .get("markdown")
            .or_else(|| v.get("text"))
            .and_then(|c| c.get("content"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        prop_assert!(sent.len() <= limit && long.starts_with(sent));
        if long.len() <= limit {
            prop_assert_eq!(sent, long.as_str());
        } else {
            prop_assert!(sent.len() + 4 > limit, "cut to {} of {limit}", sent.len());
        }
    }

    // Webhooks: signed requests verify, for the right secret, body and time only.
    let hook = WebhookConfig {
        url: "https://crm.example/hook".into(),
        secret: case.secret.clone(),
    };
    let sent_at = NOW.0 / 1000;
    let body = &case.body.0;
    let r = providers::webhook(&hook, t(4), t(5), body, sent_at);
    prop_assert!(headers_ok(&r), "{:?}", r.headers);
    let header = |name: &str| r.header(name).unwrap_or_default().to_string();
    let (ts, sig) = (
        header("X-Kindling-Timestamp"),
        header("X-Kindling-Signature"),
    );
    let now = sent_at.saturating_add(case.skew);
    let fresh = now.abs_diff(sent_at) <= SIGNATURE_TOLERANCE_S;
    let keyed = !case.secret.is_empty();
    prop_assert_eq!(
        providers::verify_webhook(&case.secret, &ts, &sig, body, now),
        keyed && fresh
    );
    if keyed {
        prop_assert!(providers::verify_webhook(
            &case.secret,
            &ts,
            &sig,
            body,
            sent_at
        ));
        let mut tampered = body.clone();
        let (at, bits) = case.flip;
        if tampered.is_empty() {
            tampered.push(bits);
        } else {
            let i = at % tampered.len();
            tampered[i] ^= bits;
        }
        prop_assert!(!providers::verify_webhook(
            &case.secret,
            &ts,
            &sig,
            &tampered,
            sent_at
        ));
        let same_key =
            hmac_key_form(case.other_secret.as_bytes()) == hmac_key_form(case.secret.as_bytes());
        prop_assert_eq!(
            providers::verify_webhook(&case.other_secret, &ts, &sig, body, sent_at),
            same_key && !case.other_secret.is_empty(),
            "other secret {:?}",
            case.other_secret
        );
        let later = (sent_at + 1).to_string();
        prop_assert!(!providers::verify_webhook(
            &case.secret,
            &later,
            &sig,
            body,
            sent_at
        ));
    }
    Ok(())
}

fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn collect_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k);
            collect_strings(v, out);
        }),
        _ => {}
    }
}

#[test]
fn fuzz_providers() {
    let targets = Targets::default();
    let tally = AnswerTally::default();
    let answers = (provider(), answer_status(), answer_headers(), answer_body())
        .prop_map(|(p, s, h, b)| (p, s, h, Body(b)));
    let backoff = (
        prop_oneof![3 => 0u32..12, 1 => any::<u32>()],
        prop_oneof![4 => 0.0f64..1.0, 1 => any::<f64>()],
    );
    let n = targets.run(
        "providers/answers",
        PROVIDER_ANSWERS,
        (answers, backoff),
        |(answer, backoff)| check_answer(&answer, backoff, &tally),
    );
    report(
        "providers/answers",
        n,
        format!(
            "{} sent, {} retried, {} failed; {} token answers read",
            tally.sent.get(),
            tally.retry.get(),
            tally.fail.get(),
            tally.tokens.get()
        ),
    );
    let m = targets.run(
        "providers/requests",
        PROVIDER_REQUESTS,
        request_case(),
        |case| check_requests(&case),
    );
    report("providers/requests", m, "built and verified".into());
    eprintln!("fuzz providers: {} cases in total", n + m);
    targets.finish();
}

/// The plan, printed once (the `const` assertion at the top keeps it at one million or more).
#[test]
fn case_counts() {
    for (target, cases) in [
        ("pixel/arbitrary", PIXEL_ARBITRARY),
        ("pixel/structured", PIXEL_STRUCTURED),
        ("beacon/bytes", BEACON_BYTES),
        ("beacon/structured", BEACON_STRUCTURED),
        ("link/arbitrary", LINK_ARBITRARY),
        ("link/signed", LINK_SIGNED),
        ("segment/bytes", SEGMENT_BYTES),
        ("segment/structured", SEGMENT_STRUCTURED),
        ("bot/hints", BOT_HINTS),
        ("form/body", FORM_BODY),
        ("pii/email", EMAIL_NORMALISE),
        ("template", TEMPLATE),
        ("receipts/bytes", RECEIPT_BYTES),
        ("receipts/structured", RECEIPT_STRUCTURED),
        ("providers/answers", PROVIDER_ANSWERS),
        ("providers/requests", PROVIDER_REQUESTS),
    ] {
        eprintln!("fuzz plan {target}: {cases} cases");
    }
    eprintln!("fuzz plan: {TOTAL_CASES} cases across all targets");
}

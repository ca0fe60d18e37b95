//! The snippet's beacon `POST /e`: a batch of up to 50 events from one visitor, as JSON (sent
//! as `text/plain` by sendBeacon). Structural problems refuse the whole request with a 400 that
//! names the field; a single bad event is refused on its own, counted, and listed in the answer,
//! so one broken event cannot cost a visitor the rest of the batch.

use crate::error::Error;
use crate::event::{
    is_valid_event_id, is_valid_event_name, is_valid_session_id, is_valid_visitor_id, DropReason,
    Event, IngestMessage, Subject, DEFAULT_WORKSPACE, MAX_PROPERTIES_BYTES,
};
use crate::identity::{claims_from, ClaimInput};
use crate::pii::PiiKeys;
use crate::pixel::checked_url;
use crate::site::is_valid_site_key;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most events in one beacon.
pub const MAX_EVENTS: usize = 50;
/// Client clocks are trusted within this window around the request time; outside it the
/// event is stamped with the request time instead.
pub const CLOCK_SKEW_MS: i64 = 24 * Millis::HOUR;

const UTM_KEYS: [&str; 5] = ["source", "medium", "campaign", "term", "content"];

#[derive(Deserialize)]
struct Body<'a> {
    site: Option<String>,
    vid: Option<String>,
    sid: Option<String>,
    #[serde(default)]
    consent: bool,
    // Kept raw and parsed one by one: a broken event is refused alone, and nothing is parsed
    // twice.
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    ts: Option<f64>,
    name: Option<String>,
    url: Option<String>,
    #[serde(rename = "ref")]
    referrer: Option<String>,
    title: Option<String>,
    utm: Option<Map<String, Value>>,
    props: Option<Map<String, Value>>,
    user_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    traits: Option<Map<String, Value>>,
}

/// A refused event of an otherwise accepted beacon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// The beacon after validation.
#[derive(Debug)]
pub struct Beacon {
    pub site: String,
    pub visitor_id: String,
    /// The visitor granted consent in the page (matters for DNT / GPC visitors).
    pub consent: bool,
    /// Events and drop counters, ready for the queue.
    pub messages: Vec<IngestMessage>,
    pub rejected: Vec<Rejection>,
}

impl Beacon {
    pub fn accepted(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| matches!(m, IngestMessage::Event(_)))
            .count()
    }
}

/// Parses and validates a beacon. `keys` seal identify data (None: PII refused); `nonce`
/// supplies fresh random nonces for sealing.
pub fn parse(
    body: &[u8],
    now: Millis,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<Beacon, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid("body", "a beacon is at most 64 KB"));
    }
    let text = std::str::from_utf8(body).map_err(|_| Error::invalid("body", "not UTF-8"))?;
    let raw: Body = serde_json::from_str(text)
        .map_err(|e| Error::invalid("body", format!("not a beacon: {e}")))?;
    let site = raw
        .site
        .filter(|s| is_valid_site_key(s))
        .ok_or_else(|| Error::invalid("site", "a registered site key is required"))?;
    let vid = raw
        .vid
        .filter(|v| is_valid_visitor_id(v))
        .ok_or_else(|| Error::invalid("vid", "visitor ids are 8-64 of A-Z a-z 0-9 - _"))?;
    let sid = match raw.sid {
        Some(s) if !is_valid_session_id(&s) => {
            return Err(Error::invalid(
                "sid",
                "session ids are 8-64 of A-Z a-z 0-9 - _",
            ))
        }
        s => s,
    };
    let events = raw
        .events
        .ok_or_else(|| Error::invalid("events", "events must be an array"))?;
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(Error::invalid("events", "a beacon carries 1 to 50 events"));
    }

    let mut beacon = Beacon {
        site: site.clone(),
        visitor_id: vid.clone(),
        consent: raw.consent,
        messages: Vec::with_capacity(events.len()),
        rejected: Vec::new(),
    };
    let ctx = Ctx {
        site: &site,
        vid: &vid,
        sid: sid.as_deref(),
        now,
    };
    for (index, raw) in events.into_iter().enumerate() {
        match one_event(&ctx, raw, keys, nonce) {
            Ok(event) => beacon.messages.push(IngestMessage::Event(event)),
            Err((reason, field, message)) => {
                beacon.messages.push(IngestMessage::Dropped {
                    source: "beacon".into(),
                    reason,
                    at: now,
                });
                beacon.rejected.push(Rejection {
                    index,
                    field: format!("events[{index}].{field}"),
                    message,
                });
            }
        }
    }
    Ok(beacon)
}

struct Ctx<'a> {
    site: &'a str,
    vid: &'a str,
    sid: Option<&'a str>,
    now: Millis,
}

type Refusal = (DropReason, &'static str, String);

fn refuse(reason: DropReason, field: &'static str, message: impl Into<String>) -> Refusal {
    (reason, field, message.into())
}

fn one_event(
    ctx: &Ctx<'_>,
    value: &RawValue,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<Event, Refusal> {
    let mut raw: RawEvent = serde_json::from_str(value.get()).map_err(|e| {
        refuse(
            DropReason::InvalidEvent,
            "type",
            format!("not an event: {e}"),
        )
    })?;
    if !is_valid_event_id(&raw.id) {
        return Err(refuse(
            DropReason::InvalidEvent,
            "id",
            "event ids are 8-64 of A-Z a-z 0-9 - _",
        ));
    }
    let mut properties = Map::new();
    let mut claims = Default::default();
    let name = match raw.kind.as_str() {
        "page" => "page".to_string(),
        "track" => raw
            .name
            .take()
            .filter(|n| is_valid_event_name(n))
            .ok_or_else(|| {
                refuse(
                    DropReason::InvalidName,
                    "name",
                    "1-128 characters, no control characters",
                )
            })?,
        "identify" => {
            let input = ClaimInput {
                user_id: raw.user_id.as_deref(),
                email: raw.email.as_deref(),
                phone: raw.phone.as_deref(),
                traits: raw.traits.take().unwrap_or_default(),
            };
            let (c, traits) = claims_from(input, keys, nonce)
                .map_err(|(field, message)| refuse(DropReason::InvalidEvent, field, message))?;
            claims = c;
            properties.extend(traits);
            "identify".to_string()
        }
        _ => {
            return Err(refuse(
                DropReason::InvalidEvent,
                "type",
                "type is page, track or identify",
            ))
        }
    };
    if let Some(url) = raw.url {
        let url = checked_url(url).map_err(|r| {
            refuse(
                r,
                "url",
                "an absolute http(s) URL of at most 2048 characters",
            )
        })?;
        properties.insert("url".into(), url.into());
    }
    if let Some(r) = raw.referrer.filter(|r| !r.is_empty()) {
        let r = checked_url(r).map_err(|d| {
            refuse(
                d,
                "ref",
                "an absolute http(s) URL of at most 2048 characters",
            )
        })?;
        properties.insert("referrer".into(), r.into());
    }
    if let Some(t) = raw.title {
        properties.insert(
            "title".into(),
            t.chars().take(300).collect::<String>().into(),
        );
    }
    // UTM parameters are flattened to `utm_source` & co., the names reports and rules use.
    for (k, v) in raw.utm.unwrap_or_default() {
        if UTM_KEYS.contains(&k.as_str()) {
            if let Value::String(s) = v {
                properties.insert(
                    format!("utm_{k}"),
                    s.chars().take(200).collect::<String>().into(),
                );
            }
        }
    }
    if let Some(props) = raw.props {
        for (k, v) in props {
            properties.entry(k).or_insert(v);
        }
    }
    // Personal data is sealed as claims or not kept at all, whatever key it arrives under.
    crate::identity::scrub_personal(&mut properties);
    let size = serde_json::to_string(&properties).map_or(usize::MAX, |s| s.len());
    if size > MAX_PROPERTIES_BYTES {
        return Err(refuse(
            DropReason::PropertiesTooLarge,
            "props",
            "properties are at most 4 KB",
        ));
    }
    let occurred_at = match raw.ts {
        Some(ts) if ts.is_finite() && (ts as i64).abs_diff(ctx.now.0) <= CLOCK_SKEW_MS as u64 => {
            Millis(ts as i64)
        }
        _ => ctx.now,
    };
    Ok(Event {
        id: raw.id,
        workspace: DEFAULT_WORKSPACE.to_string(),
        site: Some(ctx.site.to_string()),
        subject: Subject::Visitor(ctx.vid.to_string()),
        session_id: ctx.sid.map(str::to_string),
        name,
        properties,
        claims,
        consents: Vec::new(),
        occurred_at,
        received_at: ctx.now,
    })
}

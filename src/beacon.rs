//! The snippet's beacon `POST /e`: a batch of up to 50 events from one visitor, as JSON (sent
//! as `text/plain` by sendBeacon). Structural problems refuse the whole request with a 400 that
//! names the field; a single bad event is refused on its own, counted, and listed in the answer,
//! so one broken event cannot cost a visitor the rest of the batch.

use crate::error::Error;
use crate::event::{
    is_valid_event_id, is_valid_event_name, is_valid_session_id, is_valid_visitor_id, DropReason,
    Event, IngestMessage, SharedStr, Subject, DEFAULT_WORKSPACE,
};
use crate::identity::{claims_from, ClaimInput};
use crate::pii::PiiKeys;
use crate::pixel::checked_url;
use crate::site::is_valid_site_key;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most events in one beacon.
pub const MAX_EVENTS: usize = 50;
/// Client clocks are trusted within this window around the request time; outside it the
/// event is stamped with the request time instead.
pub const CLOCK_SKEW_MS: i64 = 24 * Millis::HOUR;

/// Campaign parameters of an event's `utm` object, and the property each becomes.
const UTM_KEYS: [(&str, &str); 5] = [
    ("source", "utm_source"),
    ("medium", "utm_medium"),
    ("campaign", "utm_campaign"),
    ("term", "utm_term"),
    ("content", "utm_content"),
];

/// The body, its events read as `E`: parsed with it (`RawEvent`) when every event is
/// well-formed, the common case, in one pass; otherwise kept raw (`&RawValue`) and parsed one
/// by one, so a broken event is refused alone. Its site, visitor and session are borrowed from
/// the body (see [`JsonStr`]).
#[derive(Deserialize)]
struct Body<'a, E> {
    #[serde(borrow)]
    site: Option<JsonStr<'a>>,
    #[serde(borrow)]
    vid: Option<JsonStr<'a>>,
    #[serde(borrow)]
    sid: Option<JsonStr<'a>>,
    #[serde(default)]
    consent: bool,
    events: Option<EventList<E>>,
}

/// A body's events. serde_json cannot say how many an array holds, so a plain `Vec` would grow
/// one doubling at a time as they are read; this list starts with room for a typical beacon's.
struct EventList<E>(Vec<E>);

/// Room for the events of all but the busiest beacons (the snippet sends what a page gathered
/// in about a second, at most 50); a longer list grows as a `Vec` does.
const TYPICAL_EVENTS: usize = 16;

impl<'de, E: Deserialize<'de>> Deserialize<'de> for EventList<E> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<E>(std::marker::PhantomData<E>);
        impl<'de, E: Deserialize<'de>> serde::de::Visitor<'de> for Visit<E> {
            type Value = EventList<E>;
            // As `Vec`'s, so a body that is not a list is refused in the same words.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut events = Vec::with_capacity(TYPICAL_EVENTS);
                while seq.next_element_seed(Push(&mut events))?.is_some() {}
                Ok(EventList(events))
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

/// Reads one event straight into the list: an event is a few hundred bytes, and handed back
/// through `next_element` as an `Option` it would be copied on the way.
struct Push<'v, E>(&'v mut Vec<E>);

impl<'de, E: Deserialize<'de>> serde::de::DeserializeSeed<'de> for Push<'_, E> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.push(E::deserialize(d)?);
        Ok(())
    }
}

impl<'a, E> Body<'a, E> {
    /// The body without its events, and its events as `Events`.
    fn split(self, events: fn(Vec<E>) -> Events<'a>) -> (Body<'a, ()>, Option<Events<'a>>) {
        let head = Body {
            site: self.site,
            vid: self.vid,
            sid: self.sid,
            consent: self.consent,
            events: None,
        };
        (head, self.events.map(|list| events(list.0)))
    }
}

/// A body's events, parsed or raw (see [`Body`]).
// Parsed events are kept in the list itself, not boxed one by one: the list starts with room
// for a typical beacon's events (see [`EventList`]), so they are not moved as it grows, and a
// box per event would be an allocation, a copy and a free per event.
enum Events<'a> {
    Parsed(Vec<RawEvent<'a>>),
    Raw(Vec<&'a RawValue>),
}

impl Events<'_> {
    fn len(&self) -> usize {
        match self {
            Events::Parsed(v) => v.len(),
            Events::Raw(v) => v.len(),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    id: JsonStr<'a>,
    #[serde(rename = "type", borrow)]
    kind: JsonStr<'a>,
    ts: Option<f64>,
    #[serde(borrow)]
    name: Option<JsonStr<'a>>,
    #[serde(borrow)]
    url: Option<JsonStr<'a>>,
    #[serde(rename = "ref", borrow)]
    referrer: Option<JsonStr<'a>>,
    #[serde(borrow)]
    title: Option<JsonStr<'a>>,
    // Boxed: few events carry one, and every event is moved a few times as it is read.
    #[serde(borrow)]
    utm: Option<Box<Utm<'a>>>,
    props: Option<Map<String, Value>>,
    #[serde(borrow)]
    user_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    email: Option<JsonStr<'a>>,
    #[serde(borrow)]
    phone: Option<JsonStr<'a>>,
    traits: Option<Map<String, Value>>,
}

/// An event's `utm` object as far as it is kept: the text of each campaign parameter, in
/// [`UTM_KEYS`] order, borrowed from the body. It is read entry by entry as a
/// `Map<String, Value>` would be, accepting and refusing the same objects with the same errors,
/// without an owned key and value per entry: as in the map, a repeated key's last value is the
/// one that counts, and a value that is not text is no parameter.
#[derive(Default)]
struct Utm<'a>([Option<JsonStr<'a>>; UTM_KEYS.len()]);

impl<'de: 'a, 'a> Deserialize<'de> for Utm<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Utm<'de>;
            // As `Map`'s, so a `utm` that is not an object is refused in the same words.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut utm = Utm::default();
                while let Some(key) = map.next_key::<JsonStr<'de>>()? {
                    match UTM_KEYS.iter().position(|(k, _)| *k == key.as_str()) {
                        Some(i) => utm.0[i] = map.next_value::<UtmValue<'de>>()?.0,
                        // Read (and checked) as the map read it, then dropped.
                        None => drop(map.next_value::<Value>()?),
                    }
                }
                Ok(utm)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A campaign parameter's value: its text, or nothing for any other JSON value, which is read
/// in full as a `Value` (so the same values are accepted and refused as before).
struct UtmValue<'a>(Option<JsonStr<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for UtmValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = UtmValue<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(UtmValue(Some(JsonStr(Cow::Borrowed(s)))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(UtmValue(Some(JsonStr(Cow::Owned(s.to_owned())))))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(UtmValue(Some(JsonStr(Cow::Owned(s)))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(UtmValue(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(UtmValue(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(UtmValue(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(UtmValue(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(UtmValue(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(UtmValue(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map))?;
                Ok(UtmValue(None))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A JSON string field, borrowed from the body when it has no escapes (most have none), so
/// fields that are only looked at (the type, identify's identifiers) cost no copy. It accepts
/// and refuses exactly what a `String` field does, with the same error text.
#[derive(Default)]
struct JsonStr<'a>(Cow<'a, str>);

impl JsonStr<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(s)))
            }
        }
        d.deserialize_string(Visit)
    }
}

/// `s` cut to its first `max` characters, as `s.chars().take(max).collect()` would, without
/// copying it: only text longer than `max` bytes can be longer than `max` characters.
fn truncate_chars(mut s: String, max: usize) -> String {
    if s.len() > max {
        if let Some((end, _)) = s.char_indices().nth(max) {
            s.truncate(end);
        }
    }
    s
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
    // A body whose events all parse is read in one pass. Any error sends it down the
    // event-by-event path, which finds the same body, the same events and the same errors.
    let (raw, events) = match serde_json::from_str::<Body<'_, RawEvent<'_>>>(text) {
        Ok(b) => b.split(Events::Parsed),
        Err(_) => serde_json::from_str::<Body<'_, &RawValue>>(text)
            .map_err(|e| Error::invalid("body", format!("not a beacon: {e}")))?
            .split(Events::Raw),
    };
    let site = raw
        .site
        .filter(|s| is_valid_site_key(s.as_str()))
        .ok_or_else(|| Error::invalid("site", "a registered site key is required"))?;
    let vid = raw
        .vid
        .filter(|v| is_valid_visitor_id(v.as_str()))
        .ok_or_else(|| Error::invalid("vid", "visitor ids are 8-64 of A-Z a-z 0-9 - _"))?;
    let sid = match raw.sid {
        Some(s) if !is_valid_session_id(s.as_str()) => {
            return Err(Error::invalid(
                "sid",
                "session ids are 8-64 of A-Z a-z 0-9 - _",
            ))
        }
        s => s,
    };
    let events = events.ok_or_else(|| Error::invalid("events", "events must be an array"))?;
    if events.len() == 0 || events.len() > MAX_EVENTS {
        return Err(Error::invalid("events", "a beacon carries 1 to 50 events"));
    }

    let mut beacon = Beacon {
        site: site.as_str().to_string(),
        visitor_id: vid.as_str().to_string(),
        consent: raw.consent,
        messages: Vec::with_capacity(events.len()),
        rejected: Vec::new(),
    };
    // The site, visitor and session are one copy for all the beacon's events.
    let ctx = Ctx {
        site: SharedStr::shared(site.as_str()),
        vid: SharedStr::shared(vid.as_str()),
        sid: sid.as_ref().map(|s| SharedStr::shared(s.as_str())),
        now,
    };
    let mut record = |index: usize, event: Result<IngestMessage, Refusal>| match event {
        Ok(event) => beacon.messages.push(event),
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
    };
    match events {
        Events::Parsed(mut events) => {
            for (index, raw) in events.iter_mut().enumerate() {
                record(index, one_event(&ctx, raw, keys, nonce));
            }
        }
        Events::Raw(events) => {
            for (index, raw) in events.into_iter().enumerate() {
                record(
                    index,
                    read_event(raw).and_then(|mut raw| one_event(&ctx, &mut raw, keys, nonce)),
                );
            }
        }
    }
    Ok(beacon)
}

struct Ctx {
    site: SharedStr,
    vid: SharedStr,
    sid: Option<SharedStr>,
    now: Millis,
}

type Refusal = (DropReason, &'static str, String);

fn refuse(reason: DropReason, field: &'static str, message: impl Into<String>) -> Refusal {
    (reason, field, message.into())
}

/// One event of a body whose events did not all parse.
fn read_event(value: &RawValue) -> Result<RawEvent<'_>, Refusal> {
    serde_json::from_str(value.get()).map_err(|e| {
        refuse(
            DropReason::InvalidEvent,
            "type",
            format!("not an event: {e}"),
        )
    })
}

/// One event of the beacon, as its queue message, its fields taken out of `raw` (read in place,
/// not moved whole: an event is a few hundred bytes).
fn one_event(
    ctx: &Ctx,
    raw: &mut RawEvent<'_>,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<IngestMessage, Refusal> {
    if !is_valid_event_id(raw.id.as_str()) {
        return Err(refuse(
            DropReason::InvalidEvent,
            "id",
            "event ids are 8-64 of A-Z a-z 0-9 - _",
        ));
    }
    // The event's own properties are the base, so they are not copied into a new map; every
    // key set below replaces theirs, exactly as if they were added last without replacing
    // anything.
    let mut properties = raw.props.take().unwrap_or_default();
    let mut claims = Default::default();
    let name = match raw.kind.as_str() {
        "page" => SharedStr::from_static("page"),
        "track" => raw
            .name
            .take()
            .filter(|n| is_valid_event_name(n.as_str()))
            .ok_or_else(|| {
                refuse(
                    DropReason::InvalidName,
                    "name",
                    "1-128 characters, no control characters",
                )
            })?
            .into_string()
            .into(),
        "identify" => {
            let input = ClaimInput {
                user_id: raw.user_id.as_ref().map(JsonStr::as_str),
                email: raw.email.as_ref().map(JsonStr::as_str),
                phone: raw.phone.as_ref().map(JsonStr::as_str),
                traits: raw.traits.take().unwrap_or_default(),
            };
            let (c, traits) = claims_from(input, keys, nonce)
                .map_err(|(field, message)| refuse(DropReason::InvalidEvent, field, message))?;
            claims = c;
            // Traits take precedence over properties of the same name.
            if properties.is_empty() {
                properties = traits;
            } else {
                properties.extend(traits);
            }
            SharedStr::from_static("identify")
        }
        _ => {
            return Err(refuse(
                DropReason::InvalidEvent,
                "type",
                "type is page, track or identify",
            ))
        }
    };
    if let Some(url) = raw.url.take() {
        let url = checked_url(url.into_string()).map_err(|r| {
            refuse(
                r,
                "url",
                "an absolute http(s) URL of at most 2048 characters",
            )
        })?;
        properties.insert("url".into(), url.into());
    }
    if let Some(r) = raw.referrer.take().filter(|r| !r.as_str().is_empty()) {
        let r = checked_url(r.into_string()).map_err(|d| {
            refuse(
                d,
                "ref",
                "an absolute http(s) URL of at most 2048 characters",
            )
        })?;
        properties.insert("referrer".into(), r.into());
    }
    if let Some(t) = raw.title.take() {
        properties.insert("title".into(), truncate_chars(t.into_string(), 300).into());
    }
    // UTM parameters are flattened to `utm_source` & co., the names reports and rules use.
    if let Some(utm) = raw.utm.take() {
        for ((_, property), text) in UTM_KEYS.iter().zip(utm.0) {
            if let Some(text) = text {
                let text = truncate_chars(text.into_string(), 200);
                properties.insert(property.to_string(), text.into());
            }
        }
    }
    // Personal data is sealed as claims or not kept at all, whatever key it arrives under.
    crate::identity::scrub_personal(&mut properties);
    if crate::event::properties_too_large(&properties) {
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
    Ok(IngestMessage::Event(Event {
        id: std::mem::take(&mut raw.id).into_string(),
        workspace: SharedStr::from_static(DEFAULT_WORKSPACE),
        site: Some(ctx.site.clone()),
        subject: Subject::Visitor(ctx.vid.clone()),
        session_id: ctx.sid.clone(),
        name,
        properties,
        claims,
        consents: Vec::new(),
        occurred_at,
        received_at: ctx.now,
    }))
}

//! Server-side ingest on the api, compatible with the Segment HTTP Tracking API
//! (`/v1/track`, `/v1/identify`, `/v1/page`, `/v1/batch`), so Segment- or RudderStack-style
//! sources and the WeChat / Douyin integrations can forward events as they are.
//!
//! Mapping: `messageId` → event id (deduplicated), `anonymousId` → visitor, `userId` → a sealed
//! user-id claim (and the subject when there is no anonymous id), `timestamp` → occurred_at
//! within [`BACKFILL_MS`] of the request, `context.campaign` → `utm_*`, `context.page` → page
//! properties, `traits` → identify claims and attributes.

use crate::error::Error;
use crate::event::{
    is_valid_event_id, is_valid_event_name, is_valid_visitor_id, Claims, Event, SharedStr, Subject,
    DEFAULT_WORKSPACE, MAX_PROPERTIES_BYTES,
};
use crate::identity::{claims_from, ClaimInput};
use crate::pii::{PiiKeys, PiiKind};
use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Largest request (Segment's own limit for a batch).
pub const MAX_BODY_BYTES: usize = 500 * 1024;
/// Largest single message (Segment's own limit).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Most messages in one batch.
pub const MAX_BATCH: usize = 500;
/// How far back a `timestamp` may reach: backfills up to 90 days.
pub const BACKFILL_MS: i64 = 90 * Millis::DAY;
/// How far ahead of the request a `timestamp` may be (clock skew).
pub const FUTURE_MS: i64 = 5 * Millis::MINUTE;

/// A refused message of an otherwise accepted request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// Which endpoint received the message: it fixes the type for the single-message endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Track,
    Identify,
    Page,
    Batch,
}

/// Parses a request body into events and rejections. Structural problems (not JSON, too large,
/// no batch array) are an error naming the field.
pub fn parse(
    endpoint: Endpoint,
    body: &[u8],
    now: Millis,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<(Vec<Event>, Vec<Rejection>), Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid("body", "a request is at most 500 KB"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", format!("not valid JSON: {e}")))?;
    let (messages, prefix) = match endpoint {
        Endpoint::Batch => {
            let batch = value
                .get("batch")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::invalid("batch", "batch must be an array of messages"))?;
            if batch.is_empty() || batch.len() > MAX_BATCH {
                return Err(Error::invalid("batch", "a batch carries 1 to 500 messages"));
            }
            (batch.clone(), "batch")
        }
        _ => (vec![value], ""),
    };
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (index, m) in messages.into_iter().enumerate() {
        match message(endpoint, &m, now, keys, nonce) {
            Ok(e) => events.push(e),
            Err((field, message)) => {
                if endpoint != Endpoint::Batch {
                    return Err(Error::invalid(field, message));
                }
                rejected.push(Rejection {
                    index,
                    field: format!("{prefix}[{index}].{field}"),
                    message,
                });
            }
        }
    }
    Ok((events, rejected))
}

type Refusal = (String, String);

fn refuse(field: &str, message: &str) -> Refusal {
    (field.to_string(), message.to_string())
}

fn message(
    endpoint: Endpoint,
    m: &Value,
    now: Millis,
    keys: Option<&PiiKeys>,
    nonce: &mut dyn FnMut() -> [u8; 12],
) -> Result<Event, Refusal> {
    let obj = m
        .as_object()
        .ok_or_else(|| refuse("type", "a message is a JSON object"))?;
    if serde_json::to_string(m).map_or(usize::MAX, |s| s.len()) > MAX_MESSAGE_BYTES {
        return Err(refuse("type", "a message is at most 32 KB"));
    }
    let s = |k: &str| obj.get(k).and_then(Value::as_str);
    let kind = match endpoint {
        Endpoint::Track => "track",
        Endpoint::Identify => "identify",
        Endpoint::Page => "page",
        Endpoint::Batch => {
            s("type").ok_or_else(|| refuse("type", "type is track, identify or page"))?
        }
    };
    let message_id = s("messageId")
        .ok_or_else(|| refuse("messageId", "messageId is required (it makes retries safe)"))?;
    let id = event_id(message_id);
    let anonymous = s("anonymousId").filter(|a| !a.is_empty());
    let user = s("userId").filter(|u| !u.is_empty());
    if let Some(a) = anonymous {
        if !is_valid_visitor_id(a) {
            return Err(refuse(
                "anonymousId",
                "anonymous ids are 8-64 of A-Z a-z 0-9 - _",
            ));
        }
    }
    let occurred_at = match s("timestamp").or_else(|| s("originalTimestamp")) {
        None => now,
        Some(t) => {
            let at = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| refuse("timestamp", "timestamp is an ISO 8601 date-time"))?
                .timestamp_millis();
            if at < now.0 - BACKFILL_MS || at > now.0 + FUTURE_MS {
                return Err(refuse(
                    "timestamp",
                    "timestamp must be within the last 90 days",
                ));
            }
            Millis(at)
        }
    };
    let map = |k: &str| {
        obj.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let context = map("context");
    let mut properties = Map::new();
    let name = match kind {
        "track" => s("event")
            .filter(|n| is_valid_event_name(n))
            .ok_or_else(|| refuse("event", "event is 1-128 characters, no control characters"))?
            .to_string(),
        "page" | "screen" => "page".to_string(),
        "identify" => "identify".to_string(),
        other => {
            return Err(refuse(
                "type",
                &format!("type {other:?} is not supported; use track, identify or page"),
            ))
        }
    };
    if name == "page" {
        if let Some(page) = context.get("page").and_then(Value::as_object) {
            for (from, to) in [
                ("url", "url"),
                ("referrer", "referrer"),
                ("title", "title"),
                ("path", "path"),
            ] {
                if let Some(v) = page
                    .get(from)
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                {
                    properties.insert(to.into(), v.into());
                }
            }
        }
        if let Some(n) = s("name") {
            properties.insert("name".into(), n.into());
        }
    }
    if let Some(campaign) = context.get("campaign").and_then(Value::as_object) {
        for (from, to) in [
            ("source", "utm_source"),
            ("medium", "utm_medium"),
            ("name", "utm_campaign"),
            ("term", "utm_term"),
            ("content", "utm_content"),
        ] {
            if let Some(v) = campaign.get(from).and_then(Value::as_str) {
                properties.insert(to.into(), v.into());
            }
        }
    }
    let mut claims = Claims::default();
    if kind == "identify" {
        let traits = map("traits");
        let (c, rest) = claims_from(
            ClaimInput {
                user_id: user,
                email: None,
                phone: None,
                traits,
            },
            keys,
            nonce,
        )
        .map_err(|(f, msg)| (format!("traits.{f}"), msg))?;
        claims = c;
        properties.extend(rest);
    } else {
        for (k, v) in map("properties") {
            properties.entry(k).or_insert(v);
        }
        if let Some(u) = user {
            let keys = keys.ok_or_else(|| {
                refuse(
                    "userId",
                    "user ids are not accepted: no PII key is configured",
                )
            })?;
            claims.user_id = Some(keys.seal(PiiKind::UserId, u, u, nonce()));
        }
    }
    crate::identity::scrub_personal(&mut properties);
    if serde_json::to_string(&properties).map_or(usize::MAX, |s| s.len()) > MAX_PROPERTIES_BYTES {
        return Err(refuse("properties", "properties are at most 4 KB"));
    }
    let subject = match (anonymous, &claims.user_id) {
        (Some(a), _) => Subject::Visitor(a.into()),
        (None, Some(u)) => Subject::User(u.index.as_str().into()),
        (None, None) => {
            return Err(refuse(
                "userId",
                "a message needs an anonymousId or a userId",
            ))
        }
    };
    Ok(Event {
        id,
        workspace: SharedStr::from_static(DEFAULT_WORKSPACE),
        site: None,
        subject,
        session_id: None,
        name: name.into(),
        properties,
        claims,
        consents: Vec::new(),
        occurred_at,
        received_at: now,
    })
}

/// Segment message ids are free-form; ours are URL-safe. Ids that do not fit are hashed, so the
/// same message id always maps to the same event id and retries stay deduplicated.
fn event_id(message_id: &str) -> String {
    if is_valid_event_id(message_id) {
        return message_id.to_string();
    }
    let digest = Sha256::digest(message_id.as_bytes());
    let hex = crate::hex(&digest[..16]);
    format!("m_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::DEV_PII_KEY;
    use serde_json::json;

    const NOW: Millis = Millis(1_781_740_800_000); // 2026-06-18T00:00:00Z

    fn keys() -> PiiKeys {
        PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap()
    }

    fn run(endpoint: Endpoint, body: Value) -> Result<(Vec<Event>, Vec<Rejection>), Error> {
        parse(
            endpoint,
            body.to_string().as_bytes(),
            NOW,
            Some(&keys()),
            &mut || [1; 12],
        )
    }

    #[test]
    fn a_track_call_maps_to_an_event() {
        let (events, rejected) = run(
            Endpoint::Track,
            json!({
                "messageId": "ajs-5f2c1d", "anonymousId": "507f191e810c19729de860ea",
                "event": "webinar_attended", "properties": {"webinar": "launch"},
                "timestamp": "2026-06-17T10:00:00Z",
                "context": {"campaign": {"source": "wechat", "name": "618"}}
            }),
        )
        .unwrap();
        assert!(rejected.is_empty());
        let e = &events[0];
        assert_eq!(e.id, "ajs-5f2c1d");
        assert_eq!(e.name, "webinar_attended");
        assert_eq!(
            e.subject,
            Subject::Visitor("507f191e810c19729de860ea".into())
        );
        assert_eq!(e.occurred_at.rfc3339(), "2026-06-17T10:00:00.000Z");
        assert_eq!(e.properties["utm_source"], "wechat");
        assert_eq!(e.properties["utm_campaign"], "618");
    }

    #[test]
    fn identify_seals_traits_and_user_ids() {
        let (events, _) = run(
            Endpoint::Identify,
            json!({
                "messageId": "m-1", "userId": "u-42",
                "traits": {"email": "li@example.cn", "company": "Acme", "job_title": "总监"}
            }),
        )
        .unwrap();
        let e = &events[0];
        assert_eq!(e.name, "identify");
        assert!(matches!(e.subject, Subject::User(_)));
        assert!(e.claims.email.is_some() && e.claims.user_id.is_some());
        assert!(e.properties.get("email").is_none());
        assert_eq!(e.properties["job_title"], "总监");
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains("li@example.cn") && !text.contains("u-42"),
            "{text}"
        );
    }

    #[test]
    fn a_batch_keeps_good_messages_and_names_the_bad_ones() {
        let (events, rejected) = run(Endpoint::Batch, json!({"batch": [
            {"type": "track", "messageId": "m-1", "anonymousId": "anon-00001", "event": "login"},
            {"type": "track", "messageId": "m-2", "anonymousId": "anon-00001"},
            {"type": "page", "messageId": "m-3", "anonymousId": "anon-00001", "timestamp": "2020-01-01T00:00:00Z"},
            {"type": "alias", "messageId": "m-4", "anonymousId": "anon-00001"}
        ]})).unwrap();
        assert_eq!(events.len(), 1);
        let fields: Vec<_> = rejected.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            ["batch[1].event", "batch[2].timestamp", "batch[3].type"]
        );
    }

    #[test]
    fn single_message_endpoints_refuse_with_a_named_field() {
        let e = run(
            Endpoint::Track,
            json!({"anonymousId": "anon-00001", "event": "x"}),
        )
        .unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("messageId"));
        let e = run(Endpoint::Page, json!({"messageId": "m-1"})).unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("userId"));
        let e = parse(Endpoint::Batch, b"{", NOW, None, &mut || [0; 12]).unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("body"));
    }

    #[test]
    fn free_form_message_ids_hash_to_stable_event_ids() {
        assert_eq!(event_id("a:b/c"), event_id("a:b/c"));
        assert!(is_valid_event_id(&event_id("a:b/c")));
        assert_ne!(event_id("a:b/c"), event_id("a:b/d"));
    }
}

//! `POST /e`: the snippet's beacons. Answers 202 after validation and one Queue send, before
//! any D1 work; 503 with Retry-After when the queue is unavailable, so the snippet retries with
//! the same event ids and nothing is lost or counted twice.

use crate::client::Client;
use crate::pixel::{dropped, record};
use crate::sites;
use kindling::beacon::{self, MAX_BODY_BYTES};
use kindling::event::{DropReason, IngestMessage};
use kindling::Error;
use kindling_edge::http;
use worker::*;

/// Every answer carries CORS headers, errors included: a `fetch` sender must be able to read a
/// 4xx as a 4xx (not a network error that would send it to the pixel fallback), and to read
/// `Retry-After` on a 503.
pub async fn handle(req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let origin = Client::of(&req).origin;
    http::with_cors(answer(req, env, ctx).await?, origin.as_deref())
}

async fn answer(mut req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let now = kindling_edge::now();
    let client = Client::of(&req);
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > MAX_BODY_BYTES) {
        return too_large();
    }
    let content_type = req.headers().get("Content-Type")?.unwrap_or_default();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !matches!(media.as_str(), "" | "application/json" | "text/plain") {
        return http::refusal(
            415,
            "unsupported_media_type",
            "send the beacon as application/json or text/plain",
            "content-type",
        );
    }
    let body = req.bytes().await.unwrap_or_default();
    if body.len() > MAX_BODY_BYTES {
        return too_large();
    }
    let keys = kindling_edge::pii_keys(env);
    let parsed = match beacon::parse(&body, now, keys.as_ref(), &mut kindling_edge::nonce) {
        Ok(b) => b,
        Err(e) => return http::error(&e),
    };
    let Some(site) = sites::lookup(env, &parsed.site, now).await else {
        record(env, ctx, dropped("beacon", DropReason::UnknownSite, now));
        return http::error(&Error::invalid("site", "this site key is not registered"));
    };
    if !site.allows_origin(client.origin.as_deref()) {
        record(
            env,
            ctx,
            dropped("beacon", DropReason::OriginNotAllowed, now),
        );
        return http::refusal(
            403,
            "origin_not_allowed",
            "this origin may not report for this site",
            "origin",
        );
    }
    // Machine traffic and visitors who asked not to be tracked: every event becomes a counted
    // drop, and the answer does not tell them apart from a normal one.
    let refusal = client
        .bot_drop()
        .or((site.honor_dnt && client.opted_out && !parsed.consent)
            .then_some(DropReason::DoNotTrack));
    let accepted = if refusal.is_some() {
        0
    } else {
        parsed.accepted()
    };
    let messages: Vec<IngestMessage> = match refusal {
        Some(reason) => parsed
            .messages
            .iter()
            .map(|m| match m {
                IngestMessage::Event(_) => dropped("beacon", reason, now),
                other => other.clone(),
            })
            .collect(),
        None => parsed.messages,
    };
    // One send shared with the other requests of this moment; the answer waits for it.
    let sent = match kindling_edge::queue::post(env, ctx, "EVENTS", &messages) {
        Ok(posted) => posted.sent(env, ctx).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        console_error!("events queue send failed: {e}");
        return http::json_with(
            503,
            &kindling::error::ErrorBody::new("unavailable", "try again shortly"),
            &[("Retry-After", "5")],
        );
    }
    let rejected = if refusal.is_some() {
        Vec::new()
    } else {
        parsed.rejected
    };
    http::json(
        202,
        &serde_json::json!({ "accepted": accepted, "rejected": rejected }),
    )
}

/// CORS preflight for `fetch` senders that set a JSON content type.
pub fn preflight(req: &Request) -> Result<Response> {
    let client = Client::of(req);
    let resp = Response::empty()?.with_status(204);
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "POST")?;
    headers.set("Access-Control-Allow-Headers", "Content-Type")?;
    headers.set("Access-Control-Max-Age", "86400")?;
    http::with_cors(resp.with_headers(headers), client.origin.as_deref())
}

fn too_large() -> Result<Response> {
    http::refusal(
        413,
        "payload_too_large",
        "a beacon is at most 64 KB",
        "body",
    )
}

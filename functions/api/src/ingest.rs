//! Server-side ingest, Segment-compatible: `POST /v1/track`, `/v1/identify`, `/v1/page`,
//! `/v1/batch`. Events go on the same queue as the snippet's, deduplicated by message id.

use crate::ApiContext;
use kindling::event::IngestMessage;
use kindling::segment::{self, Endpoint, MAX_BODY_BYTES};
use kindling::Error;
use kindling_edge::http;
use worker::{Method, Response, Result};

pub async fn route(ctx: &ApiContext, endpoint: Endpoint) -> Result<Response> {
    if ctx.req.method() != Method::Post {
        return http::method_not_allowed(&[Method::Post]);
    }
    let body = match ctx.req.clone()?.bytes().await {
        Ok(b) if b.len() <= MAX_BODY_BYTES => b,
        Ok(_) => {
            return http::refusal(
                413,
                "payload_too_large",
                "a request is at most 500 KB",
                "body",
            )
        }
        Err(_) => return http::error(&Error::invalid("body", "the body could not be read")),
    };
    let now = kindling_edge::now();
    let keys = kindling_edge::pii_keys(&ctx.env);
    let (events, rejected) = match segment::parse(
        endpoint,
        &body,
        now,
        keys.as_ref(),
        &mut kindling_edge::nonce,
    ) {
        Ok(r) => r,
        Err(e) => return http::error(&e),
    };
    let messages: Vec<IngestMessage> = events.into_iter().map(IngestMessage::Event).collect();
    if let Err(e) = kindling_edge::queue::send_all(&ctx.env, "EVENTS", &messages).await {
        worker::console_error!("events queue send failed: {e}");
        return http::json_with(
            503,
            &kindling::error::ErrorBody::new("unavailable", "try again shortly"),
            &[("Retry-After", "5")],
        );
    }
    http::json(
        200,
        &serde_json::json!({ "success": true, "accepted": messages.len(), "rejected": rejected }),
    )
}

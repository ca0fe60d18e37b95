//! `POST /v1/orders`: an order for a known contact (by id, email, phone or user id). It goes on
//! the events queue as `order_completed`; the engine records the order (once per order id) and
//! it feeds stages, purchase-frequency and RFM tags, scoring and journeys.

use crate::ApiContext;
use kindling::event::{IngestMessage, DEFAULT_WORKSPACE};
use kindling::order::{self, Buyer};
use kindling::pii::{normalise_email, normalise_phone, PiiKind};
use kindling::store::contacts;
use kindling::Error;
use kindling_edge::http;
use worker::{Method, Response, Result};

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Post, []) => http::respond(post(ctx).await),
        (_, []) => http::method_not_allowed(&[Method::Post]),
        _ => http::not_found(),
    }
}

async fn post(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let now = kindling_edge::now();
    let doc = crate::json_body(ctx, 16 * 1024).await?;
    let order = order::parse(&doc, now)?;
    let contact = buyer(ctx, &order.buyer).await?;
    let event = order::to_event(&order, &contact, DEFAULT_WORKSPACE, now);
    let id = event.id.clone();
    kindling_edge::queue::send(&ctx.env, "EVENTS", &IngestMessage::Event(event))
        .await
        .map_err(|e| Error::Store(format!("queue send: {e}")))?;
    Ok(http::json(
        202,
        &serde_json::json!({ "accepted": id, "contact_id": contact }),
    ))
}

fn user_id(b: &Buyer) -> Option<String> {
    match b {
        Buyer::UserId(u) => Some(u.clone()),
        _ => None,
    }
}

/// The contact an order names, following merges to the record that holds the person now.
async fn buyer(ctx: &ApiContext, buyer: &Buyer) -> std::result::Result<String, Error> {
    let index = |kind,
                 normalised: Option<String>,
                 field: &str|
     -> std::result::Result<(PiiKind, String), Error> {
        let keys = kindling_edge::pii_keys(&ctx.env)
            .ok_or_else(|| Error::NotConfigured("KINDLING_PII_KEY is not configured".into()))?;
        let n = normalised
            .ok_or_else(|| Error::invalid(field.to_string(), format!("not a valid {field}")))?;
        Ok((kind, keys.index(kind, &n)))
    };
    let found = match buyer {
        Buyer::Contact(id) => contacts::get(&ctx.db, DEFAULT_WORKSPACE, id).await?,
        other => {
            let (kind, value) = match other {
                Buyer::Email(e) => index(PiiKind::Email, normalise_email(e), "email")?,
                Buyer::Phone(p) => index(PiiKind::Phone, normalise_phone(p), "phone")?,
                _ => index(PiiKind::UserId, user_id(other), "user_id")?,
            };
            contacts::find_by_identity(&ctx.db, DEFAULT_WORKSPACE, kind.as_str(), &value).await?
        }
    };
    let c = found.ok_or_else(|| Error::NotFound("no contact matches the buyer".into()))?;
    Ok(c.merged_into.unwrap_or(c.id))
}

//! `/v1/contacts`: finding contacts and reading their timelines.

use crate::{query_param, ApiContext};
use kindling::event::{is_valid_visitor_id, DEFAULT_WORKSPACE};
use kindling::identity::is_valid_contact_id;
use kindling::store::contacts;
use kindling::{Error, Millis};
use kindling_edge::http;
use worker::{Method, Response, Result};

const DEFAULT_TIMELINE_LIMIT: u32 = 50;
const MAX_TIMELINE_LIMIT: u32 = 500;

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    let get = ctx.req.method() == Method::Get;
    match segs {
        [] if get => http::respond(search(ctx).await),
        [id] if get => http::respond(show(ctx, id).await),
        [id, "timeline"] if get => http::respond(timeline(ctx, id).await),
        [id, "score"] if get => http::respond(score(ctx, id).await),
        [] | [_] | [_, "timeline" | "score"] => http::method_not_allowed(&[Method::Get]),
        _ => http::not_found(),
    }
}

/// `GET /v1/contacts?vid=<visitor id>`: the contact a visitor resolves to.
async fn search(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let vid = query_param(&ctx.req, "vid")
        .ok_or_else(|| Error::invalid("vid", "give a visitor id to search by: ?vid=<id>"))?;
    if !is_valid_visitor_id(&vid) {
        return Err(Error::invalid(
            "vid",
            "visitor ids are 8-64 of A-Z a-z 0-9 - _",
        ));
    }
    let found = contacts::find_by_visitor(&ctx.db, DEFAULT_WORKSPACE, &vid).await?;
    let list: Vec<_> = found.into_iter().collect();
    Ok(http::json(200, &serde_json::json!({ "contacts": list })))
}

fn checked_id(id: &str) -> std::result::Result<(), Error> {
    if is_valid_contact_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            "contact ids look like c_ followed by 24 hex digits",
        ))
    }
}

async fn show(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    let contact = contacts::get(&ctx.db, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {id}")))?;
    let mut body = serde_json::to_value(&contact).map_err(|e| Error::Store(e.to_string()))?;
    if let Some(model) = kindling::store::scoring::active_model(&ctx.db, DEFAULT_WORKSPACE).await? {
        body["tier"] = kindling::scoring::model::tier(contact.score, &model.thresholds).into();
    }
    Ok(http::json(200, &body))
}

/// `GET /v1/contacts/{id}/score`: the score, by dimension, and the ledger that explains it.
async fn score(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    if contacts::get(&ctx.db, DEFAULT_WORKSPACE, id)
        .await?
        .is_none()
    {
        return Err(Error::NotFound(format!("contact {id}")));
    }
    let view = kindling::store::scoring::ledger(&ctx.db, DEFAULT_WORKSPACE, id).await?;
    Ok(http::json(200, &view))
}

/// `GET /v1/contacts/{id}/timeline?limit=&before=<epoch ms>`: newest first.
async fn timeline(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    let limit = match query_param(&ctx.req, "limit") {
        None => DEFAULT_TIMELINE_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TIMELINE_LIMIT).contains(n))
            .ok_or_else(|| Error::invalid("limit", "limit is a whole number from 1 to 500"))?,
    };
    let before = match query_param(&ctx.req, "before") {
        None => Millis::MAX,
        Some(b) => b
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=Millis::MAX.0).contains(n))
            .map(Millis)
            .ok_or_else(|| Error::invalid("before", "before is a time in epoch milliseconds"))?,
    };
    if contacts::get(&ctx.db, DEFAULT_WORKSPACE, id)
        .await?
        .is_none()
    {
        return Err(Error::NotFound(format!("contact {id}")));
    }
    let events = contacts::timeline(&ctx.db, DEFAULT_WORKSPACE, id, before, limit).await?;
    Ok(http::json(
        200,
        &serde_json::json!({ "contact_id": id, "events": events }),
    ))
}

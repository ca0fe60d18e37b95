//! `/v1/contacts`: finding contacts and reading their timelines.

use crate::{query_param, ApiContext};
use kindling::auth::Scope;
use kindling::event::{is_valid_visitor_id, DEFAULT_WORKSPACE};
use kindling::identity::is_valid_contact_id;
use kindling::pii::{normalise_email, normalise_phone, PiiKind};
use kindling::store::contacts::{self, ContactView};
use kindling::store::privacy as rights;
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
        [id, "consents"] if get => http::respond(consents(ctx, id).await),
        [id, "consents"] if ctx.req.method() == Method::Post => {
            http::respond(import_consent(ctx, id).await)
        }
        [id, "tags"] if get => http::respond(tags(ctx, id).await),
        [id, "journeys"] if get => http::respond(journeys(ctx, id).await),
        [id, "export"] if get => http::respond(export(ctx, id).await),
        [id] if ctx.req.method() == Method::Delete => http::respond(erase(ctx, id).await),
        [_] => http::method_not_allowed(&[Method::Get, Method::Delete]),
        [_, "consents"] => http::method_not_allowed(&[Method::Get, Method::Post]),
        [] | [_, "timeline" | "score" | "tags" | "journeys" | "export"] => {
            http::method_not_allowed(&[Method::Get])
        }
        _ => http::not_found(),
    }
}

/// `GET /v1/contacts?vid=<visitor id>` | `?email=` | `?phone=`: the contact an identifier
/// resolves to. Emails and phones are looked up by their blind index, never stored in clear.
async fn search(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let found = if let Some(vid) = query_param(&ctx.req, "vid") {
        if !is_valid_visitor_id(&vid) {
            return Err(Error::invalid(
                "vid",
                "visitor ids are 8-64 of A-Z a-z 0-9 - _",
            ));
        }
        contacts::find_by_visitor(&ctx.db, DEFAULT_WORKSPACE, &vid).await?
    } else if let Some((kind, normalised)) = personal_query(ctx)? {
        let keys = kindling_edge::pii_keys(&ctx.env)
            .ok_or_else(|| Error::NotConfigured("KINDLING_PII_KEY is not configured".into()))?;
        let index = keys.index(kind, &normalised);
        contacts::find_by_identity(&ctx.db, DEFAULT_WORKSPACE, kind.as_str(), &index).await?
    } else {
        return Err(Error::invalid(
            "vid",
            "search by ?vid=<visitor id>, ?email= or ?phone=",
        ));
    };
    let mut list: Vec<_> = found.into_iter().collect();
    for c in &mut list {
        present(ctx, c).await?;
    }
    Ok(http::json(200, &serde_json::json!({ "contacts": list })))
}

fn personal_query(ctx: &ApiContext) -> std::result::Result<Option<(PiiKind, String)>, Error> {
    if let Some(e) = query_param(&ctx.req, "email") {
        let n = normalise_email(&e)
            .ok_or_else(|| Error::invalid("email", "not a valid email address"))?;
        return Ok(Some((PiiKind::Email, n)));
    }
    if let Some(p) = query_param(&ctx.req, "phone") {
        let n = normalise_phone(&p)
            .ok_or_else(|| Error::invalid("phone", "not a valid phone number"))?;
        return Ok(Some((PiiKind::Phone, n)));
    }
    Ok(None)
}

/// Shows personal data masked, or in full to a `pii:read` token — and then audits the read.
async fn present(ctx: &ApiContext, c: &mut ContactView) -> std::result::Result<(), Error> {
    let unmasked = ctx.principal.has(Scope::PiiRead);
    let keys = kindling_edge::pii_keys(&ctx.env);
    c.reveal(keys.as_ref(), unmasked);
    let holds_pii = c.sealed.email.is_some() || c.sealed.phone.is_some() || c.sealed.name.is_some();
    if unmasked && holds_pii {
        crate::privacy::audit(ctx, "contact.pii_read", Some(&c.id), serde_json::json!({})).await?;
    }
    Ok(())
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
    let mut contact = contacts::get(&ctx.db, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {id}")))?;
    present(ctx, &mut contact).await?;
    let mut body = serde_json::to_value(&contact).map_err(|e| Error::Store(e.to_string()))?;
    if let Some(model) = kindling::store::scoring::active_model(&ctx.db, DEFAULT_WORKSPACE).await? {
        body["tier"] = kindling::scoring::model::tier(contact.score, &model.thresholds).into();
    }
    Ok(http::json(200, &body))
}

/// `GET /v1/contacts/{id}/score`: the score, by dimension, and the ledger that explains it.
async fn score(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    exists(ctx, id).await?;
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
    exists(ctx, id).await?;
    let events = contacts::timeline(&ctx.db, DEFAULT_WORKSPACE, id, before, limit).await?;
    Ok(http::json(
        200,
        &serde_json::json!({ "contact_id": id, "events": events }),
    ))
}

/// `GET /v1/contacts/{id}/consents`: the consent ledger and the current state per channel.
/// `POST /v1/contacts/{id}/consents`: a consent record from another system, with its original
/// time; queued like every ledger change, so it lands in the same append-only ledger.
async fn import_consent(
    ctx: &ApiContext,
    id: &str,
) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    exists(ctx, id).await?;
    let body = crate::json_body(ctx, 4 * 1024).await?;
    let event_id = kindling_edge::random_id("consent_");
    let event = kindling::consent::imported_event(
        DEFAULT_WORKSPACE,
        id,
        &event_id,
        &body,
        kindling_edge::now(),
    )?;
    kindling_edge::queue::send_all(
        &ctx.env,
        "EVENTS",
        &[kindling::event::IngestMessage::Event(event)],
    )
    .await
    .map_err(|e| Error::Store(format!("events queue: {e}")))?;
    Ok(http::json(
        202,
        &serde_json::json!({ "contact_id": id, "event_id": event_id }),
    ))
}

async fn consents(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    exists(ctx, id).await?;
    let now = kindling_edge::now();
    let records = kindling::store::consent::records(&ctx.db, DEFAULT_WORKSPACE, id).await?;
    let current = kindling::store::consent::current(&ctx.db, DEFAULT_WORKSPACE, id, now).await?;
    let mut state = serde_json::Map::new();
    for (channel, granted) in current {
        state.insert(channel.as_str().into(), granted.into());
    }
    Ok(http::json(
        200,
        &serde_json::json!({ "contact_id": id, "current": state, "ledger": records }),
    ))
}

/// `GET /v1/contacts/{id}/export`: everything held about the person, decrypted. Needs
/// `pii:read`; audited.
async fn export(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    ctx.principal.require(Scope::PiiRead)?;
    let keys = kindling_edge::pii_keys(&ctx.env);
    let data = rights::export(&ctx.db, DEFAULT_WORKSPACE, id, keys.as_ref())
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {id}")))?;
    crate::privacy::audit(ctx, "contact.exported", Some(id), serde_json::json!({})).await?;
    Ok(http::json(200, &data))
}

/// `DELETE /v1/contacts/{id}`: erasure. Needs `pii:erase`; audited in the same batch.
async fn erase(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    ctx.principal.require(Scope::PiiErase)?;
    let entry = crate::privacy::entry(ctx, "contact.erased", Some(id), serde_json::json!({}));
    if !rights::erase(&ctx.db, DEFAULT_WORKSPACE, id, entry, kindling_edge::now()).await? {
        return Err(Error::NotFound(format!("contact {id}")));
    }
    Ok(http::json(200, &serde_json::json!({ "erased": id })))
}

async fn exists(ctx: &ApiContext, id: &str) -> std::result::Result<(), Error> {
    match contacts::get(&ctx.db, DEFAULT_WORKSPACE, id).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("contact {id}"))),
    }
}

/// `GET /v1/contacts/{id}/tags`: the tags the contact carries now (history: `tag.*` events).
async fn tags(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    exists(ctx, id).await?;
    let tags = kindling::store::tags::of_contact(&ctx.db, DEFAULT_WORKSPACE, id).await?;
    Ok(http::json(
        200,
        &serde_json::json!({ "contact_id": id, "tags": tags }),
    ))
}

/// `GET /v1/contacts/{id}/journeys`: every enrollment, with its current node and next run.
async fn journeys(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    checked_id(id)?;
    exists(ctx, id).await?;
    let list = kindling::store::journeys::of_contact(&ctx.db, DEFAULT_WORKSPACE, id).await?;
    Ok(http::json(
        200,
        &serde_json::json!({ "contact_id": id, "journeys": list }),
    ))
}

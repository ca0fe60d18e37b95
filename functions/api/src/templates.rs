//! `/v1/templates`: message templates (versioned, validated at save time so nothing fails at
//! send time), a preview, and A/B results.

use crate::{query_param, ApiContext};
use kindling::auth::Scope;
use kindling::delivery::ab::{judge, Metric};
use kindling::delivery::compose::{self, Links, Recipient};
use kindling::event::DEFAULT_WORKSPACE;
use kindling::form::lang::Lang;
use kindling::store::documents::{self, TEMPLATES};
use kindling::store::{contacts, messages, tags};
use kindling::template::{self, Template};
use kindling::Error;
use kindling_edge::http;
use serde_json::json;
use worker::{Method, Response, Result};

const MAX_BODY_BYTES: usize = 256 * 1024;

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list(ctx).await),
        (Method::Get, [id]) => http::respond(show(ctx, id).await),
        (Method::Put, [id]) => http::respond(put(ctx, id).await),
        (Method::Post, [id, "preview"]) => http::respond(preview(ctx, id).await),
        (Method::Get, [id, "results"]) => http::respond(results(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get]),
        (_, [_]) => http::method_not_allowed(&[Method::Get, Method::Put]),
        (_, [_, "preview"]) => http::method_not_allowed(&[Method::Post]),
        (_, [_, "results"]) => http::method_not_allowed(&[Method::Get]),
        _ => http::not_found(),
    }
}

async fn list(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let all: Vec<serde_json::Value> = documents::list(&ctx.db, &TEMPLATES, DEFAULT_WORKSPACE)
        .await?
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect();
    Ok(http::json(200, &json!({ "templates": all })))
}

pub async fn current(ctx: &ApiContext, id: &str) -> std::result::Result<Template, Error> {
    let text = documents::get(&ctx.db, &TEMPLATES, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("template {id}")))?;
    serde_json::from_str(&text).map_err(|e| Error::Store(e.to_string()))
}

async fn show(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    Ok(http::json(200, &current(ctx, id).await?))
}

async fn put(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let mut value = crate::json_body(ctx, MAX_BODY_BYTES).await?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("id".into(), id.into());
        obj.remove("version");
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| Error::Store(e.to_string()))?;
    let mut t = template::parse(&bytes)?;
    let version = documents::save(
        &ctx.db,
        &TEMPLATES,
        DEFAULT_WORKSPACE,
        id,
        kindling_edge::now(),
        |v| {
            t.version = u64::try_from(v).unwrap_or(0);
            serde_json::to_string(&t).map_err(|e| Error::Store(e.to_string()))
        },
    )
    .await?;
    t.version = u64::try_from(version).unwrap_or(0);
    Ok(http::json(200, &t))
}

/// `POST /v1/templates/{id}/preview` `{contact_id?, variables?, lang?, variant?}`: the
/// rendered parts. With a contact, its attributes and tags fill the template; its personal
/// data is shown masked unless the token has `pii:read`.
async fn preview(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let t = current(ctx, id).await?;
    let body = crate::json_body(ctx, 16 * 1024).await?;
    let sender = body["variables"].as_object().cloned().unwrap_or_default();
    let mut attributes = serde_json::Map::new();
    let mut tag_list = Vec::new();
    let (mut email, mut name, mut contact_id) =
        (None, None, "c_000000000000000000000000".to_string());
    if let Some(c) = body["contact_id"].as_str() {
        let mut contact = contacts::get(&ctx.db, DEFAULT_WORKSPACE, c)
            .await?
            .ok_or_else(|| Error::NotFound(format!("contact {c}")))?;
        contact.reveal(
            kindling_edge::pii_keys(&ctx.env).as_ref(),
            ctx.principal.has(Scope::PiiRead),
        );
        attributes = contact.attributes.as_object().cloned().unwrap_or_default();
        tag_list = tags::of_contact(&ctx.db, DEFAULT_WORKSPACE, c)
            .await?
            .into_iter()
            .map(|t| (t.tag, t.value))
            .collect();
        email = contact.email.clone();
        name = contact.name.clone();
        contact_id = contact.id.clone();
    }
    let recipient = Recipient {
        contact_id: &contact_id,
        email: email.as_deref(),
        phone: None,
        name: name.as_deref(),
        attributes: &attributes,
        tags: &tag_list,
    };
    // Links in a preview are signed with a key of its own: they show the shape, they work
    // nowhere.
    let links = Links {
        track: "https://track.preview.invalid",
        forms: "https://forms.preview.invalid",
        key: b"preview",
    };
    let vars = compose::variables(&recipient, &sender, &links, t.channel);
    let lang = match body["lang"].as_str() {
        Some("en") => Lang::En,
        Some("zh-CN") => Lang::ZhCn,
        _ => compose::language(&recipient),
    };
    let variant = body["variant"]
        .as_str()
        .map_or_else(|| "a".to_string(), str::to_string);
    let r = compose::render(&t, &vars, lang, &variant, &links, "m_preview", &contact_id);
    Ok(http::json(
        200,
        &json!({
            "template": t.id, "version": t.version, "variant": r.variant, "lang": r.lang.tag(),
            "subject": r.subject, "html": r.html, "text": r.text,
        }),
    ))
}

/// `GET /v1/templates/{id}/results?metric=clicked&goal=order_completed&min_sample=100&rollout=1`:
/// per-variant counts, the leader and its p-value; with `rollout=1` (and `write`), a winner
/// that is significant at the sample is declared and gets every later send.
async fn results(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let t = current(ctx, id).await?;
    let metric = match query_param(&ctx.req, "metric").as_deref() {
        None | Some("clicked") => Metric::Clicked,
        Some("opened") => Metric::Opened,
        Some("converted") => Metric::Converted,
        Some(_) => {
            return Err(Error::invalid(
                "metric",
                "metric is opened, clicked or converted",
            ))
        }
    };
    let goal = query_param(&ctx.req, "goal").unwrap_or_else(|| "order_completed".into());
    let min_sample = query_param(&ctx.req, "min_sample")
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(100);
    let arms = messages::ab_arms(&ctx.db, DEFAULT_WORKSPACE, id, &goal).await?;
    let verdict = judge(&arms, metric, min_sample, 0.05);
    let version = i64::try_from(t.version).unwrap_or(i64::MAX);
    let mut winner = messages::ab_winner(&ctx.db, DEFAULT_WORKSPACE, id, version).await?;
    if winner.is_none() && query_param(&ctx.req, "rollout").as_deref() == Some("1") {
        ctx.principal.require(Scope::Write)?;
        if let Some(w) = &verdict.winner {
            messages::declare_winner(
                &ctx.db,
                DEFAULT_WORKSPACE,
                id,
                version,
                w,
                kindling_edge::now(),
            )
            .await?;
            winner = Some(w.clone());
        }
    }
    Ok(http::json(
        200,
        &json!({ "template": id, "version": version, "arms": arms, "verdict": verdict, "rolled_out": winner }),
    ))
}

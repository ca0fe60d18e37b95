//! `/v1/journeys`: journey definitions (versioned; checked against the templates at save time,
//! so a journey never fails at run time for a missing template), their analytics, and
//! `/v1/tasks`, the work journeys create for people.

use crate::{query_param, ApiContext};
use kindling::event::DEFAULT_WORKSPACE;
use kindling::journey::definition::MAX_DEFINITION_BYTES;
use kindling::store::documents::{self, JOURNEYS, TEMPLATES};
use kindling::store::journeys;
use kindling::Error;
use kindling_edge::http;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use worker::{Method, Response, Result};

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list(ctx).await),
        (Method::Get, [id]) => http::respond(show(ctx, id).await),
        (Method::Put, [id]) => put(ctx, id).await,
        (Method::Get, [id, "stats"]) => http::respond(stats(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get]),
        (_, [_]) => http::method_not_allowed(&[Method::Get, Method::Put]),
        (_, [_, "stats"]) => http::method_not_allowed(&[Method::Get]),
        _ => http::not_found(),
    }
}

/// A stored definition as the api shows it: the document plus its id and version.
fn view(id: &str, version: i64, text: &str) -> Value {
    let mut doc: Value = serde_json::from_str(text).unwrap_or_else(|_| json!({}));
    if let Some(o) = doc.as_object_mut() {
        o.insert("id".into(), id.into());
        o.insert("version".into(), version.into());
    }
    doc
}

async fn list(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let all: Vec<Value> = journeys::current(&ctx.db, DEFAULT_WORKSPACE)
        .await?
        .iter()
        .map(|j| {
            json!({"id": j.id, "version": j.version, "name": j.name,
                   "nodes": j.nodes.len(), "start": j.start})
        })
        .collect();
    Ok(http::json(200, &json!({ "journeys": all })))
}

async fn show(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let text = documents::get(&ctx.db, &JOURNEYS, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("journey {id}")))?;
    let version = journeys::current(&ctx.db, DEFAULT_WORKSPACE)
        .await?
        .into_iter()
        .find(|j| j.id == id)
        .map_or(0, |j| j.version);
    Ok(http::json(200, &view(id, version, &text)))
}

/// `PUT /v1/journeys/{id}`: a new version. Contacts already in the journey keep theirs.
async fn put(ctx: &ApiContext, id: &str) -> Result<Response> {
    let body = ctx.req.clone()?.bytes().await.unwrap_or_default();
    if body.len() > MAX_DEFINITION_BYTES {
        return http::refusal(
            413,
            "too_large",
            &format!("a journey is at most {} KB", MAX_DEFINITION_BYTES / 1024),
            "body",
        );
    }
    let Ok(text) = String::from_utf8(body) else {
        return http::error(&Error::invalid("body", "the body is UTF-8 JSON"));
    };
    http::respond(save(ctx, id, &text).await)
}

async fn save(
    ctx: &ApiContext,
    id: &str,
    text: &str,
) -> std::result::Result<Result<Response>, Error> {
    // The template catalogue, id → channel, to check every send against.
    let catalogue: BTreeMap<String, String> =
        documents::list(&ctx.db, &TEMPLATES, DEFAULT_WORKSPACE)
            .await?
            .iter()
            .filter_map(|t| serde_json::from_str::<Value>(t).ok())
            .filter_map(|t| {
                Some((
                    t["id"].as_str()?.to_string(),
                    t["channel"].as_str()?.to_string(),
                ))
            })
            .collect();
    let lookup = |t: &str| catalogue.get(t).cloned();
    let j = journeys::save(
        &ctx.db,
        DEFAULT_WORKSPACE,
        id,
        text,
        &lookup,
        kindling_edge::now(),
    )
    .await?;
    Ok(http::json(200, &view(id, j.version, text)))
}

async fn stats(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    documents::get(&ctx.db, &JOURNEYS, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("journey {id}")))?;
    Ok(http::json(
        200,
        &journeys::stats(&ctx.db, DEFAULT_WORKSPACE, id).await?,
    ))
}

/// `GET /v1/tasks?contact_id=&state=open` and `POST /v1/tasks/{id}` `{"state": "done"}`.
pub async fn tasks(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list_tasks(ctx).await),
        (Method::Post, [id]) => http::respond(update_task(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get]),
        (_, [_]) => http::method_not_allowed(&[Method::Post]),
        _ => http::not_found(),
    }
}

async fn list_tasks(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let contact = query_param(&ctx.req, "contact_id");
    let state = query_param(&ctx.req, "state");
    if state
        .as_deref()
        .is_some_and(|s| !matches!(s, "open" | "done"))
    {
        return Err(Error::invalid("state", "state is open or done"));
    }
    let list = journeys::tasks(
        &ctx.db,
        DEFAULT_WORKSPACE,
        contact.as_deref(),
        state.as_deref(),
    )
    .await?;
    Ok(http::json(200, &json!({ "tasks": list })))
}

async fn update_task(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let body = crate::json_body(ctx, 4 * 1024).await?;
    let state = body["state"]
        .as_str()
        .filter(|s| matches!(*s, "open" | "done"))
        .ok_or_else(|| Error::invalid("state", "state is open or done"))?;
    if !journeys::set_task_state(&ctx.db, DEFAULT_WORKSPACE, id, state).await? {
        return Err(Error::NotFound(format!("task {id}")));
    }
    Ok(http::json(200, &json!({ "id": id, "state": state })))
}

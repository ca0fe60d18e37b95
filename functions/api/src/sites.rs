//! `/v1/sites`: registering the sites the snippet and pixels may report for. D1 holds the
//! truth; each change is published to KV, where the ingress path reads it.

use crate::ApiContext;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::site::{kv_key, Site};
use kindling::store::sites;
use kindling::Error;
use kindling_edge::http;
use worker::{Method, Response, Result};

/// Largest site definition accepted.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list(ctx).await),
        (Method::Put, [key]) => {
            let body = ctx.req.clone()?.text().await.unwrap_or_default();
            http::respond(put(ctx, key, &body).await)
        }
        (_, []) => http::method_not_allowed(&[Method::Get]),
        (_, [_]) => http::method_not_allowed(&[Method::Put]),
        _ => http::not_found(),
    }
}

async fn list(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let all = sites::list(&ctx.db, DEFAULT_WORKSPACE).await?;
    Ok(http::json(200, &serde_json::json!({ "sites": all })))
}

/// `PUT /v1/sites/{key}` with `{"name": .., "allowed_origins": [..]}`.
async fn put(
    ctx: &ApiContext,
    key: &str,
    body: &str,
) -> std::result::Result<Result<Response>, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid("body", "a site definition is at most 16 KB"));
    }
    let mut value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| Error::invalid("body", format!("not valid JSON: {e}")))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("key".into(), key.into());
    }
    let site: Site = serde_json::from_value(value)
        .map_err(|e| Error::invalid("body", format!("not a site definition: {e}")))?;
    sites::upsert(&ctx.db, DEFAULT_WORKSPACE, &site, kindling_edge::now()).await?;
    crate::publish(ctx, &kv_key(&site.key), &site).await?;
    Ok(http::json(200, &site))
}

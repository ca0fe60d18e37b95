//! `/v1/forms`: landing-page form definitions. `PUT /v1/forms/{id}` validates (errors name the
//! field path), stores the next version in D1 and publishes it to KV for the forms function.

use crate::ApiContext;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::form::{kv_key, FormDefinition};
use kindling::store::forms;
use kindling::Error;
use kindling_edge::http;
use worker::{Method, Response, Result};

/// Largest form definition accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list(ctx).await),
        (Method::Get, [id]) => http::respond(show(ctx, id).await),
        (Method::Put, [id]) => http::respond(put(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get]),
        (_, [_]) => http::method_not_allowed(&[Method::Get, Method::Put]),
        _ => http::not_found(),
    }
}

async fn list(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let all = forms::list(&ctx.db, DEFAULT_WORKSPACE).await?;
    Ok(http::json(200, &serde_json::json!({ "forms": all })))
}

async fn show(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let form = forms::get(&ctx.db, DEFAULT_WORKSPACE, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("form {id}")))?;
    Ok(http::json(200, &form))
}

async fn put(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let mut value = crate::json_body(ctx, MAX_BODY_BYTES).await?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("id".into(), id.into());
        obj.remove("version");
    }
    let form: FormDefinition = serde_json::from_value(value)
        .map_err(|e| Error::invalid("body", format!("not a form definition: {e}")))?;
    let saved = forms::save(&ctx.db, DEFAULT_WORKSPACE, form, kindling_edge::now()).await?;
    crate::publish(ctx, &kv_key(&saved.id), &saved).await?;
    Ok(http::json(200, &saved))
}

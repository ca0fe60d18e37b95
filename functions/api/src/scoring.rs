//! `/v1/scoring`: the active scoring model. `PUT` validates (errors name the field), stores the
//! next version in D1 and publishes it to KV for engine; an invalid model leaves the active
//! one in force.

use crate::ApiContext;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::scoring::model::MAX_MODEL_BYTES;
use kindling::scoring::Model;
use kindling::store::scoring;
use kindling::Error;
use kindling_edge::http;
use worker::{Method, Response, Result};

/// Where engine reads the active model.
const KV_KEY: &str = "scoring:active";

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(show(ctx).await),
        (Method::Put, []) => {
            let body = ctx.req.clone()?.bytes().await.unwrap_or_default();
            http::respond(replace(ctx, &body).await)
        }
        (_, []) => http::method_not_allowed(&[Method::Get, Method::Put]),
        _ => http::not_found(),
    }
}

async fn show(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let model = scoring::active_model(&ctx.db, DEFAULT_WORKSPACE)
        .await?
        .ok_or_else(|| Error::NotFound("no scoring model has been stored yet".into()))?;
    Ok(http::json(200, &model))
}

async fn replace(ctx: &ApiContext, body: &[u8]) -> std::result::Result<Result<Response>, Error> {
    if body.len() > MAX_MODEL_BYTES {
        return Err(Error::invalid("body", "a scoring model is at most 64 KB"));
    }
    let model = Model::parse(body)?;
    let saved =
        scoring::save_model(&ctx.db, DEFAULT_WORKSPACE, &model, kindling_edge::now()).await?;
    crate::publish(ctx, KV_KEY, &saved).await?;
    Ok(http::json(200, &saved))
}

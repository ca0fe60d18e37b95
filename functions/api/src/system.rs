//! `/v1/system/status`: is the pipeline moving? Events stored, the last cron tick, drops.

use crate::ApiContext;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::store::ops;
use kindling_edge::http;
use worker::{Method, Response, Result};

pub async fn status(ctx: &ApiContext) -> Result<Response> {
    if ctx.req.method() != Method::Get {
        return http::method_not_allowed(&[Method::Get]);
    }
    http::respond(
        ops::status(&ctx.db, DEFAULT_WORKSPACE)
            .await
            .map(|s| http::json(200, &s)),
    )
}

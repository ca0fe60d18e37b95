//! api: the admin REST API. Every route but `/health` needs `Authorization: Bearer <token>`.

mod contacts;
mod forms;
mod ingest;
mod journeys;
mod messages;
mod orders;
mod privacy;
mod scoring;
mod sites;
mod system;
mod templates;

use kindling::auth::{check_bearer, Principal, Scope};
use kindling::event::DEFAULT_WORKSPACE;
use kindling::segment::Endpoint;
use kindling::Error;
use kindling_edge::d1::D1;
use kindling_edge::http;
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    let segs = http::segments(&path);
    if segs == ["health"] {
        return http::json(200, &serde_json::json!({"function": "api"}));
    }
    if segs.first() != Some(&"v1") {
        return http::not_found();
    }
    let db = D1(env.d1("DB")?);
    let principal = match authenticate(&req, &env, &db).await {
        Ok(p) => p,
        Err(e) => return http::error(&e),
    };
    // Reading needs `read`; anything that changes state needs `write`. Routes that touch
    // personal data ask for their own scopes on top.
    let needed = match req.method() {
        Method::Get | Method::Head => Scope::Read,
        _ => Scope::Write,
    };
    if let Err(e) = principal.require(needed) {
        return http::error(&e);
    }
    let ctx = ApiContext {
        req,
        env,
        db,
        principal,
    };
    route(&ctx, &segs[1..]).await
}

/// What a handler gets: the request, the bindings and the store.
pub struct ApiContext {
    pub req: Request,
    pub env: Env,
    pub db: D1,
    /// Who is calling and with which scopes.
    pub principal: Principal,
}

async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match segs {
        ["contacts", rest @ ..] => contacts::route(ctx, rest).await,
        ["sites", rest @ ..] => sites::route(ctx, rest).await,
        ["scoring", rest @ ..] => scoring::route(ctx, rest).await,
        ["forms", rest @ ..] => forms::route(ctx, rest).await,
        ["orders", rest @ ..] => orders::route(ctx, rest).await,
        ["templates", rest @ ..] => templates::route(ctx, rest).await,
        ["messages", rest @ ..] => messages::route(ctx, rest).await,
        ["journeys", rest @ ..] => journeys::route(ctx, rest).await,
        ["tasks", rest @ ..] => journeys::tasks(ctx, rest).await,
        ["tokens", rest @ ..] => privacy::tokens(ctx, rest).await,
        ["audit"] => privacy::audit_log(ctx).await,
        ["cleaning"] => privacy::cleaning(ctx).await,
        ["system", "status"] => system::status(ctx).await,
        ["track"] => ingest::route(ctx, Endpoint::Track).await,
        ["identify"] => ingest::route(ctx, Endpoint::Identify).await,
        ["page"] => ingest::route(ctx, Endpoint::Page).await,
        ["batch"] => ingest::route(ctx, Endpoint::Batch).await,
        _ => http::not_found(),
    }
}

/// The deployment's admin secret stands for every scope; a created token (`kt_…`) for its own.
async fn authenticate(req: &Request, env: &Env, db: &D1) -> std::result::Result<Principal, Error> {
    let header = req.headers().get("Authorization").ok().flatten();
    let presented = header
        .as_deref()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = presented.filter(|t| t.starts_with("kt_")) {
        return kindling::store::privacy::principal_of(db, DEFAULT_WORKSPACE, token)
            .await?
            .ok_or_else(|| Error::Unauthorized("invalid token".into()));
    }
    let secret = env
        .secret("KINDLING_ADMIN_TOKEN")
        .ok()
        .map(|s| s.to_string());
    check_bearer(
        header.as_deref(),
        secret.as_deref(),
        kindling_edge::is_development(env),
    )?;
    Ok(Principal::admin())
}

/// Publishes a configuration document to KV, where the ingress and engine paths read it.
pub async fn publish<T: serde::Serialize>(
    ctx: &ApiContext,
    key: &str,
    value: &T,
) -> std::result::Result<(), Error> {
    fn store(e: impl std::fmt::Display) -> Error {
        Error::Store(e.to_string())
    }
    let text = serde_json::to_string(value).map_err(|e| Error::Store(e.to_string()))?;
    ctx.env
        .kv("CONFIG")
        .map_err(store)?
        .put(key, text)
        .map_err(store)?
        .execute()
        .await
        .map_err(store)
}

/// Reads a JSON request body of at most `limit` bytes; errors name the body.
pub async fn json_body(
    ctx: &ApiContext,
    limit: usize,
) -> std::result::Result<serde_json::Value, Error> {
    let body = ctx
        .req
        .clone()
        .map_err(|e| Error::Store(e.to_string()))?
        .bytes()
        .await
        .unwrap_or_default();
    if body.len() > limit {
        return Err(Error::invalid(
            "body",
            format!("the body is at most {} KB", limit / 1024),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::invalid("body", format!("not valid JSON: {e}")))
}

/// Reads a query parameter.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    let url = req.url().ok()?;
    let value = url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    value
}

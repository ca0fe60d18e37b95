//! api: the admin REST API. Every route but `/health` needs `Authorization: Bearer <token>`.

mod contacts;
mod ingest;
mod scoring;
mod sites;
mod system;

use kindling::auth::check_bearer;
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
    if let Err(e) = authenticate(&req, &env) {
        return http::error(&e);
    }
    let db = D1(env.d1("DB")?);
    let ctx = ApiContext { req, env, db };
    route(&ctx, &segs[1..]).await
}

/// What a handler gets: the request, the bindings and the store.
pub struct ApiContext {
    pub req: Request,
    pub env: Env,
    pub db: D1,
}

async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match segs {
        ["contacts", rest @ ..] => contacts::route(ctx, rest).await,
        ["sites", rest @ ..] => sites::route(ctx, rest).await,
        ["scoring", rest @ ..] => scoring::route(ctx, rest).await,
        ["system", "status"] => system::status(ctx).await,
        ["track"] => ingest::route(ctx, Endpoint::Track).await,
        ["identify"] => ingest::route(ctx, Endpoint::Identify).await,
        ["page"] => ingest::route(ctx, Endpoint::Page).await,
        ["batch"] => ingest::route(ctx, Endpoint::Batch).await,
        _ => http::not_found(),
    }
}

fn authenticate(req: &Request, env: &Env) -> std::result::Result<(), Error> {
    let header = req.headers().get("Authorization").ok().flatten();
    let secret = env
        .secret("KINDLING_ADMIN_TOKEN")
        .ok()
        .map(|s| s.to_string());
    let development = env
        .var("KINDLING_ENV")
        .map(|v| v.to_string() == "development")
        .unwrap_or(false);
    check_bearer(header.as_deref(), secret.as_deref(), development)
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

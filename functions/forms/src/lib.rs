//! forms: the public landing-page endpoint. `POST /f/{form}` captures a lead (validated here,
//! written by engine from the `events` queue: no D1 work while the visitor waits), and
//! `/u/{token}` is the preference page behind every unsubscribe link. No admin code lives here.

mod capture;
mod preferences;

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
    match (req.method(), segs.as_slice()) {
        (Method::Post, ["f", form]) => capture::handle(req, &env, form).await,
        (Method::Options, ["f", _]) => capture::preflight(&req, &env, segs[1]).await,
        (Method::Get | Method::Head, ["u", token]) => preferences::show(&req, &env, token).await,
        (Method::Post, ["u", token]) => preferences::change(req, &env, token).await,
        (Method::Get, ["health"]) => http::json(200, &serde_json::json!({"function": "forms"})),
        (_, ["f", _]) => http::method_not_allowed(&[Method::Post, Method::Options]),
        (_, ["u", _]) => http::method_not_allowed(&[Method::Get, Method::Post]),
        _ => http::not_found(),
    }
}

/// The client's address as the edge saw it, for rate limits and the consent record (hashed).
pub fn client_ip(req: &Request) -> Option<String> {
    req.headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
}

/// Reads a request body, refusing more than `limit` bytes (declared or actual).
pub async fn body(req: &mut Request, limit: usize) -> std::result::Result<Vec<u8>, ()> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(());
    }
    let bytes = req.bytes().await.unwrap_or_default();
    if bytes.len() > limit {
        return Err(());
    }
    Ok(bytes)
}

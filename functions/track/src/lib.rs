//! track: the public tracking ingress — the snippet, its beacons, pixels and email links. It
//! never waits on D1: validate, put events on the `events` queue, answer. Engine does the
//! database work in batches.

mod beacon;
mod client;
mod links;
mod pixel;
mod sites;
mod snippet;

use kindling_edge::http;
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    let segs = http::segments(&path);
    match (method, segs.as_slice()) {
        (Method::Get | Method::Head, ["p.gif"]) => pixel::page(&req, &env, &ctx).await,
        (Method::Post, ["e"]) => beacon::handle(req, &env, &ctx).await,
        (Method::Options, ["e"]) => beacon::preflight(&req),
        (Method::Get | Method::Head, ["k.js"]) => snippet::serve(&req),
        (Method::Get | Method::Head, ["o", token]) => links::open(&req, &env, &ctx, token),
        (Method::Get | Method::Head, ["c", token]) => links::click(&req, &env, &ctx, token),
        (Method::Get, ["health"]) => http::json(200, &serde_json::json!({"function": "track"})),
        (_, ["p.gif"] | ["k.js"] | ["o", _] | ["c", _]) => {
            http::method_not_allowed(&[Method::Get, Method::Head])
        }
        (_, ["e"]) => http::method_not_allowed(&[Method::Post, Method::Options]),
        _ => http::not_found(),
    }
}

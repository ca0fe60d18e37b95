//! track: the public tracking ingress. It answers pixels without touching D1: validate, put the
//! event on the `events` queue, answer. Engine does the database work in batches.

mod sites;

use kindling::event::{DropReason, IngestMessage};
use kindling::pixel::{PixelQuery, TRANSPARENT_GIF};
use kindling::Millis;
use kindling_edge::http;
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get | Method::Head, "/p.gif") => pixel(&req, &env).await,
        (Method::Get, "/health") => http::json(200, &serde_json::json!({"function": "track"})),
        (_, "/p.gif") => http::method_not_allowed(&[Method::Get, Method::Head]),
        _ => http::not_found(),
    }
}

/// `GET /p.gif`: always the GIF, whatever the parameters; what they say is recorded or counted.
async fn pixel(req: &Request, env: &Env) -> Result<Response> {
    let now = kindling_edge::now();
    let query = req.url()?.query().unwrap_or_default().to_string();
    let message = match PixelQuery::parse(&query).into_event(kindling_edge::random_id("evt_"), now)
    {
        Ok(event) if sites::is_registered(env, &event.site, now).await => {
            IngestMessage::Event(event)
        }
        Ok(_) => dropped(DropReason::UnknownSite, now),
        Err(reason) => dropped(reason, now),
    };
    // A failed send cannot change the pixel's answer (the browser would not retry an image
    // anyway); it is logged with the event id so the loss is visible.
    if let Err(e) = kindling_edge::queue::send(env, "EVENTS", &message).await {
        console_error!("events queue send failed: {e}");
    }
    gif()
}

fn dropped(reason: DropReason, at: Millis) -> IngestMessage {
    IngestMessage::Dropped {
        source: "pixel".into(),
        reason,
        at,
    }
}

fn gif() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "image/gif")?;
    headers.set("Cache-Control", "no-store, max-age=0")?;
    Ok(Response::from_bytes(TRANSPARENT_GIF.to_vec())?.with_headers(headers))
}

//! `GET /p.gif`: page views and custom events without JavaScript. Always the GIF, whatever the
//! parameters; what they say is recorded or counted.

use crate::client::Client;
use crate::sites;
use kindling::event::{DropReason, IngestMessage};
use kindling::pixel::{PixelQuery, TRANSPARENT_GIF};
use kindling::Millis;
use worker::*;

pub async fn page(req: &Request, env: &Env, ctx: &Context) -> Result<Response> {
    let now = kindling_edge::now();
    let query = req.url()?.query().unwrap_or_default().to_string();
    let client = Client::of(req);
    let parsed = PixelQuery::parse(&query).into_event(kindling_edge::random_id("evt_"), now);
    let message = match (parsed, client.bot_drop()) {
        (Err(reason), _) => dropped("pixel", reason, now),
        (Ok(_), Some(bot)) => dropped("pixel", bot, now),
        (Ok(event), None) => {
            let key = event.site.clone().unwrap_or_default();
            match sites::lookup(env, &key, now).await {
                None => dropped("pixel", DropReason::UnknownSite, now),
                Some(site) if site.honor_dnt && client.opted_out => {
                    dropped("pixel", DropReason::DoNotTrack, now)
                }
                Some(_) => IngestMessage::Event(event),
            }
        }
    };
    record(env, ctx, message);
    gif()
}

/// Queues `message` after the answer. The answer cannot depend on the send (a browser does not
/// retry an image or a link), so it goes out at once and the send finishes after it, kept alive
/// by `wait_until`; a failure is logged (by the sender) so the loss is visible.
pub fn record(env: &Env, ctx: &Context, message: IngestMessage) {
    if let Err(e) = kindling_edge::queue::post(env, ctx, "EVENTS", &[message]) {
        console_error!("events queue send failed: {e}");
    }
}

pub fn dropped(source: &str, reason: DropReason, at: Millis) -> IngestMessage {
    IngestMessage::Dropped {
        source: source.into(),
        reason,
        at,
    }
}

pub fn gif() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "image/gif")?;
    headers.set("Cache-Control", "no-store, max-age=0")?;
    Ok(Response::from_bytes(TRANSPARENT_GIF.to_vec())?.with_headers(headers))
}

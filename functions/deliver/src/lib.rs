//! deliver: the outbox's sender. Each `sends` queue message names an outbox message; deliver
//! asks the decision (consent, caps, quiet hours, sales), renders the template, sends through
//! the channel's provider over HTTP and moves the message's state — every move a
//! compare-and-set, so a redelivery never sends twice. Providers' receipts arrive at `/r/*`.

mod config;
mod outbound;
mod receipts;
mod send;

use kindling::delivery::SendOrder;
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
    match (req.method(), segs.as_slice()) {
        (Method::Get, ["health"]) => http::json(200, &serde_json::json!({"function": "deliver"})),
        (Method::Post, ["r", provider]) => receipts::handle(req, &env, provider).await,
        (_, ["r", _]) => http::method_not_allowed(&[Method::Post]),
        _ => http::not_found(),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let db = D1(env.d1("DB")?);
    let cfg = config::Config::from_env(&env);
    let mut sent = 0;
    for raw in batch.messages()? {
        let order = match serde_json::from_str::<SendOrder>(raw.body()) {
            Ok(o) => o,
            Err(e) => {
                console_error!("unreadable sends message {}: {e}", raw.id());
                continue;
            }
        };
        // One message at a time: a failure of one (D1 unavailable) retries that one only;
        // the state machine makes the retry harmless.
        match send::process(&env, &db, &cfg, &order).await {
            Ok(s) => {
                sent += usize::from(s);
                raw.ack();
            }
            Err(e) => {
                console_error!("message {}: {e}", order.id);
                raw.retry();
            }
        }
    }
    console_log!("deliver: batch done, {sent} sent");
    Ok(())
}

//! deliver: the outbox's sender. Each `sends` queue message names an outbox message; deliver
//! asks the decision (consent, caps, quiet hours, sales), renders the template, sends through
//! the channel's provider over HTTP and moves the message's state — every move a
//! compare-and-set, so a redelivery never sends twice. Providers' receipts arrive at `/r/*`.

mod config;
mod outbound;
mod receipts;
mod send;

use futures_util::future::join_all;
use kindling::delivery::SendOrder;
use kindling_edge::d1::D1;
use kindling_edge::http;
use std::collections::BTreeMap;
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
    let raws = batch.messages()?;
    let mut orders = Vec::new();
    for raw in &raws {
        match serde_json::from_str::<SendOrder>(raw.body()) {
            Ok(o) => orders.push((o, raw)),
            Err(e) => {
                console_error!("unreadable sends message {}: {e}", raw.id());
                raw.ack();
            }
        }
    }
    // The batch's messages in one read, then grouped by contact and channel: groups go out
    // concurrently, a group's messages one after another, so the frequency cap sees each send
    // of the same person on the same channel before deciding the next.
    let ids: Vec<String> = orders.iter().map(|(o, _)| o.id.clone()).collect();
    let loaded = match kindling::store::messages::get_many(&db, &ids).await {
        Ok(l) => l,
        Err(e) => return Err(Error::RustError(e.to_string())),
    };
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (o, _)) in orders.iter().enumerate() {
        let key = loaded.iter().find(|m| m.id == o.id).map_or_else(
            || (String::new(), o.id.clone()),
            |m| (m.contact_id.clone(), m.channel.clone()),
        );
        groups.entry(key).or_default().push(i);
    }
    let (db, cfg, env, orders, loaded) = (&db, &cfg, &env, &orders, &loaded);
    let results = join_all(groups.into_values().map(|members| async move {
        let mut sent = 0usize;
        for i in members {
            let (order, raw) = &orders[i];
            let m = loaded.iter().find(|m| m.id == order.id).cloned();
            // A failure of one message (D1 unavailable) retries that one only; the state
            // machine makes the retry harmless.
            match send::process(env, db, cfg, order, m).await {
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
        sent
    }))
    .await;
    console_log!(
        "deliver: batch of {} done, {} sent",
        orders.len(),
        results.iter().sum::<usize>()
    );
    Ok(())
}

//! deliver: the outbox's sender. Each `sends` queue message names an outbox message; deliver
//! asks the decision (consent, caps, quiet hours, sales), renders the template, sends through
//! the channel's provider over HTTP and moves the message's state — every move a
//! compare-and-set, so a redelivery never sends twice. A queue batch is handled a round at a
//! time (`send`), with one D1 round trip per step for the round. Providers' receipts arrive at
//! `/r/*`.

mod config;
mod outbound;
mod receipts;
mod send;

use kindling::delivery::{batch, SendOrder};
use kindling::store::messages::Message;
use kindling_edge::d1::D1;
use kindling_edge::http;
use std::collections::HashMap;
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
    // The batch's messages in one read; unknown ids cannot become known later: acknowledged.
    let ids: Vec<String> = orders.iter().map(|(o, _)| o.id.clone()).collect();
    let loaded = kindling::store::messages::get_many(&db, &ids)
        .await
        .map_err(|e| Error::RustError(e.to_string()))?;
    let by_id: HashMap<&str, &Message> = loaded.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut known = Vec::new();
    for (order, raw) in &orders {
        match by_id.get(order.id.as_str()) {
            Some(m) => known.push((send::Pending { order, message: m }, *raw)),
            None => raw.ack(),
        }
    }
    // Rounds, one after another: a round is decided, claimed, sent and recorded as a whole, so
    // the frequency cap of a later round sees the sends of the earlier ones.
    let lanes: Vec<_> = known
        .iter()
        .map(|(p, _)| {
            let m = p.message;
            let lane = batch::lane(&m.kind, &m.contact_id, &m.channel, &m.id);
            (m.workspace.as_str(), lane)
        })
        .collect();
    let mut sent = 0;
    for (k, round) in batch::rounds(&lanes).into_iter().enumerate() {
        let pending: Vec<&send::Pending> = round.iter().map(|&i| &known[i].0).collect();
        // A failure (D1 unavailable) retries the round's queue messages; the state machine
        // makes the retry harmless.
        match run_round(&env, &db, &cfg, &pending, k > 0).await {
            Ok(n) => {
                sent += n;
                round.iter().for_each(|&i| known[i].1.ack());
            }
            Err(e) => {
                console_error!("a round of {} messages: {e}", round.len());
                round.iter().for_each(|&i| known[i].1.retry());
            }
        }
    }
    console_log!("deliver: batch of {} done, {sent} sent", orders.len());
    Ok(())
}

/// One round. A round after the first reads its messages again: an earlier round may have moved
/// them (of a retry ordered twice, only the first order makes the try).
async fn run_round(
    env: &Env,
    db: &D1,
    cfg: &config::Config,
    pending: &[&send::Pending<'_>],
    reload: bool,
) -> std::result::Result<usize, kindling::Error> {
    if !reload {
        return send::round(env, db, cfg, pending).await;
    }
    let ids: Vec<String> = pending.iter().map(|p| p.order.id.clone()).collect();
    let fresh = kindling::store::messages::get_many(db, &ids).await?;
    let reloaded: Vec<send::Pending> = pending
        .iter()
        .filter_map(|p| {
            let message = fresh.iter().find(|m| m.id == p.order.id)?;
            Some(send::Pending {
                order: p.order,
                message,
            })
        })
        .collect();
    send::round(env, db, cfg, &reloaded.iter().collect::<Vec<_>>()).await
}

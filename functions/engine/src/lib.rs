//! engine: consumes the `events` queue in batches and writes them to D1 in one round trip per
//! batch; runs the cron with the scheduled time as "now".

mod model;

use kindling::event::{IngestMessage, DEFAULT_WORKSPACE};
use kindling::store::{ingest, lifecycle, ops, scoring, Db};
use kindling::Millis;
use kindling_edge::d1::D1;
use kindling_edge::http;
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => http::json(200, &serde_json::json!({"function": "engine"})),
        _ => http::not_found(),
    }
}

#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let mut messages = Vec::new();
    for raw in batch.messages()? {
        match serde_json::from_str::<IngestMessage>(raw.body()) {
            Ok(m) => messages.push(m),
            // Only our own functions produce to this queue; a message that does not parse is a
            // bug in a deploy, not input. Log and let the rest through rather than block them.
            Err(e) => console_error!("unreadable events message {}: {e}", raw.id()),
        }
    }
    let db = D1(env.d1("DB")?);
    let model = model::active(&env).await;
    let statements = ingest::batch_statements(&messages, model.as_ref());
    // Any failure fails the whole batch, so the queue redelivers it; the inserts are idempotent.
    db.batch(&statements)
        .await
        .map_err(|e| Error::RustError(e.to_string()))?;
    console_log!(
        "ingested {} messages in one batch of {} statements",
        messages.len(),
        statements.len()
    );
    Ok(())
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let now = Millis(event.schedule() as i64);
    if let Err(e) = tick(&event.cron(), now, &env).await {
        console_error!("cron {} at {} failed: {e}", event.cron(), now.rfc3339());
    }
}

/// Contacts decayed per D1 round trip.
const DECAY_PAGE: u32 = 200;
/// Pages per tick, so one tick stays far from its CPU limit; the next tick goes on.
const DECAY_PAGES_PER_TICK: usize = 50;
/// Contacts rescored from history per D1 round trip after a model change, and pages per tick.
const RECOMPUTE_PAGE: u32 = 50;
const RECOMPUTE_PAGES_PER_TICK: usize = 20;
/// Contacts whose life-cycle stage is due, per D1 round trip, and pages per tick.
const STAGE_PAGE: u32 = 100;
const STAGE_PAGES_PER_TICK: usize = 50;

/// One cron tick. Each job pages through due work and stops before the CPU limit; whatever is
/// left is picked up by the next tick.
async fn tick(cron: &str, now: Millis, env: &Env) -> std::result::Result<(), kindling::Error> {
    let db = D1(env
        .d1("DB")
        .map_err(|e| kindling::Error::Store(e.to_string()))?);
    let first = ops::record_cron_run(&db, cron, now).await?;
    let mut decayed = 0;
    let mut rescored = 0;
    if let Some(model) = model::active(env).await {
        for _ in 0..RECOMPUTE_PAGES_PER_TICK {
            let n = scoring::recompute_pass(&db, &model, DEFAULT_WORKSPACE, now, RECOMPUTE_PAGE)
                .await?;
            rescored += n;
            if n < RECOMPUTE_PAGE as usize || worker::signal::is_near_cpu_limit() {
                break;
            }
        }
        for _ in 0..DECAY_PAGES_PER_TICK {
            let n = scoring::decay_pass(&db, &model, DEFAULT_WORKSPACE, now, DECAY_PAGE).await?;
            decayed += n;
            if n < DECAY_PAGE as usize || worker::signal::is_near_cpu_limit() {
                break;
            }
        }
    }
    let mut staged = 0;
    for _ in 0..STAGE_PAGES_PER_TICK {
        let n = lifecycle::stage_pass(&db, DEFAULT_WORKSPACE, now, STAGE_PAGE).await?;
        staged += n;
        if n < STAGE_PAGE as usize || worker::signal::is_near_cpu_limit() {
            break;
        }
    }
    console_log!(
        "cron {cron} at {} (first run for this time: {first}); rescored {rescored}, decayed {decayed}, staged {staged} contacts",
        now.rfc3339()
    );
    Ok(())
}

//! engine: consumes the `events` queue in batches and writes them to D1 in one round trip per
//! batch; runs the cron with the scheduled time as "now".

use kindling::event::IngestMessage;
use kindling::store::{ingest, ops, Db};
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
    let statements = ingest::batch_statements(&messages);
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

/// One cron tick. Later issues hang their jobs (journeys, life cycle, decay) here.
async fn tick(cron: &str, now: Millis, env: &Env) -> std::result::Result<(), kindling::Error> {
    let db = D1(env
        .d1("DB")
        .map_err(|e| kindling::Error::Store(e.to_string()))?);
    let first = ops::record_cron_run(&db, cron, now).await?;
    console_log!(
        "cron {cron} at {} (first run for this time: {first})",
        now.rfc3339()
    );
    Ok(())
}

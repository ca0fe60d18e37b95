//! engine: consumes the `events` queue in batches and writes them to D1 in one round trip per
//! batch; runs the cron with the scheduled time as "now".

mod model;

use kindling::event::{IngestMessage, DEFAULT_WORKSPACE};
use kindling::store::{ingest, journeys, lifecycle, ops, scoring, Db};
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
    let mut statements = ingest::batch_statements(&messages, model.as_ref());
    // The batch's time: its latest event. Journeys react to the events at the time they
    // happened, which is also what lets a test replay a customer's life in virtual time.
    let Some(now) = messages
        .iter()
        .filter_map(|m| match m {
            IngestMessage::Event(e) => Some(e.occurred_at),
            IngestMessage::Dropped { .. } => None,
        })
        .max()
    else {
        db.batch(&statements)
            .await
            .map_err(|e| Error::RustError(e.to_string()))?;
        return Ok(());
    };
    // Behaviour triggers enrol in the same transaction that records the event.
    statements.extend(journeys::event_pass(DEFAULT_WORKSPACE, now));
    // Any failure fails the whole batch, so the queue redelivers it; the inserts are idempotent.
    db.batch(&statements)
        .await
        .map_err(|e| Error::RustError(e.to_string()))?;
    console_log!(
        "ingested {} messages in one batch of {} statements",
        messages.len(),
        statements.len()
    );
    // …and take their first steps at once (a whitepaper is sent while the reader still reads),
    // not at the next cron tick. A failure here loses nothing: the cron runs what is due.
    if let Err(e) = react(&env, &db, now).await {
        console_error!("journey steps after a batch failed: {e}");
    }
    Ok(())
}

/// One page of due journey steps and the hand-over of the messages they queued.
async fn react(env: &Env, db: &D1, now: Millis) -> std::result::Result<(), kindling::Error> {
    let mut versions = journeys::Versions::default();
    let done =
        journeys::advance_pass(db, DEFAULT_WORKSPACE, now, JOURNEY_PAGE, &mut versions).await?;
    if done.messages > 0 {
        requeue_due(env, db, now).await?;
    }
    Ok(())
}

/// Enrollments per page of the journey pass, and pages per tick.
const JOURNEY_PAGE: u32 = 200;
// 100 pages of 200 is about 80,000 steps: about four seconds of a tick on the local runtime,
// far from its CPU limit (docs/PERFORMANCE.md); a larger backlog drains over the next ticks.
const JOURNEY_PAGES_PER_TICK: usize = 100;
/// Contacts enrolled per page of a scheduled journey's audience.
const SCHEDULE_PAGE: u32 = 500;

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let now = Millis(event.schedule() as i64);
    if let Err(e) = tick(&event.cron(), now, &env).await {
        console_error!("cron {} at {} failed: {e}", event.cron(), now.rfc3339());
    }
}

/// A job's page size (contacts per D1 round trip) and its pages per tick, so one tick stays far
/// from its CPU limit; the next tick goes on where it stopped.
struct Paging {
    page: u32,
    pages_per_tick: usize,
}

const RECOMPUTE: Paging = Paging {
    page: 50,
    pages_per_tick: 20,
};
const DECAY: Paging = Paging {
    page: 200,
    pages_per_tick: 50,
};
const STAGES: Paging = Paging {
    page: 100,
    pages_per_tick: 50,
};

const TAGS: Paging = Paging {
    page: 100,
    pages_per_tick: 50,
};

/// Messages queued by journeys, deferred messages and retries due at `now` go to deliver, in
/// pages; what a tick leaves, the next takes. The send itself re-checks everything: a stale order is harmless.
async fn requeue_due(
    env: &Env,
    db: &D1,
    now: Millis,
) -> std::result::Result<usize, kindling::Error> {
    let mut total = 0;
    for _ in 0..REQUEUE_PAGES_PER_TICK {
        let due = kindling::store::messages::due(db, now, REQUEUE_PAGE).await?;
        let orders: Vec<kindling::delivery::SendOrder> = due
            .into_iter()
            .map(|(id, attempt)| kindling::delivery::SendOrder {
                id,
                at: now,
                attempt,
            })
            .collect();
        kindling_edge::queue::send_all(env, "SENDS", &orders)
            .await
            .map_err(|e| kindling::Error::Store(format!("sends queue: {e}")))?;
        total += orders.len();
        if orders.len() < REQUEUE_PAGE as usize || worker::signal::is_near_cpu_limit() {
            break;
        }
    }
    Ok(total)
}

/// Messages handed to deliver per round trip, and round trips per tick: journeys can queue
/// tens of thousands of messages in one tick.
const REQUEUE_PAGE: u32 = 500;
const REQUEUE_PAGES_PER_TICK: usize = 100;

/// Scheduled journeys' audiences for their current occurrence, then every due journey step,
/// in pages, stopping before the CPU limit.
async fn journey_work(
    db: &D1,
    ws: &str,
    now: Millis,
) -> std::result::Result<(usize, journeys::Tick), kindling::Error> {
    let mut scheduled = 0;
    for j in journeys::current(db, ws).await? {
        loop {
            let n = journeys::schedule_pass(db, ws, &j, now, SCHEDULE_PAGE).await?;
            scheduled += n;
            if n < SCHEDULE_PAGE as usize || worker::signal::is_near_cpu_limit() {
                break;
            }
        }
    }
    let mut versions = journeys::Versions::default();
    let tick = journeys::run_due(
        db,
        ws,
        now,
        JOURNEY_PAGE,
        JOURNEY_PAGES_PER_TICK,
        &mut versions,
        worker::signal::is_near_cpu_limit,
    )
    .await?;
    Ok((scheduled, tick))
}

/// Monthly cleaning steps per tick (a duplicate merge, then pages of contact-point checks).
const CLEANING_STEPS_PER_TICK: usize = 20;

/// Runs `pass` (one page, returning how many contacts it handled) until a page comes back
/// short, the tick's page budget is spent, or the CPU limit nears. Returns the contacts handled.
async fn paged<F, Fut>(paging: &Paging, mut pass: F) -> std::result::Result<usize, kindling::Error>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<usize, kindling::Error>>,
{
    let mut total = 0;
    for _ in 0..paging.pages_per_tick {
        let n = pass(paging.page).await?;
        total += n;
        if n < paging.page as usize || worker::signal::is_near_cpu_limit() {
            break;
        }
    }
    Ok(total)
}

/// One cron tick. Each job pages through due work and stops before the CPU limit; whatever is
/// left is picked up by the next tick.
async fn tick(cron: &str, now: Millis, env: &Env) -> std::result::Result<(), kindling::Error> {
    let db = D1(env
        .d1("DB")
        .map_err(|e| kindling::Error::Store(e.to_string()))?);
    let first = ops::record_cron_run(&db, cron, now).await?;
    let ws = DEFAULT_WORKSPACE;
    let (mut rescored, mut decayed) = (0, 0);
    if let Some(model) = model::active(env).await {
        rescored = paged(&RECOMPUTE, |n| {
            scoring::recompute_pass(&db, &model, ws, now, n)
        })
        .await?;
        decayed = paged(&DECAY, |n| scoring::decay_pass(&db, &model, ws, now, n)).await?;
    }
    let staged = paged(&STAGES, |n| lifecycle::stage_pass(&db, ws, now, n)).await?;
    let tagged = paged(&TAGS, |n| kindling::store::tags::tag_pass(&db, ws, now, n)).await?;
    let started = kindling_edge::now();
    let (scheduled, stepped) = journey_work(&db, ws, now).await?;
    let journey_ms = kindling_edge::now().0 - started.0;
    let requeued = requeue_due(env, &db, now).await?;
    let rolled_out = kindling::store::messages::auto_rollout(&db, ws, now).await?;
    let keys = kindling_edge::pii_keys(env);
    let mut cleaning = None;
    for _ in 0..CLEANING_STEPS_PER_TICK {
        cleaning = kindling::store::cleaning::step(&db, ws, keys.as_ref(), now).await?;
        if cleaning.as_ref().is_none_or(|r| r.finished_at.is_some())
            || worker::signal::is_near_cpu_limit()
        {
            break;
        }
    }
    console_log!(
        "cron {cron} at {} (first run for this time: {first}); rescored {rescored}, decayed {decayed}, staged {staged}, tagged {tagged} contacts; journeys: enrolled {scheduled} by schedule, {stepped:?} in {journey_ms} ms; re-queued {requeued} messages; A/B winners {rolled_out:?}; cleaning {:?}",
        now.rfc3339(),
        cleaning.map(|r| (r.month, r.merged, r.invalid_flagged, r.finished_at.is_some()))
    );
    Ok(())
}

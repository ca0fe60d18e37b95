//! The active scoring model: published to KV by the api, remembered in the isolate for a
//! minute; the seeded model (config/scoring.json) until one is published.

use kindling::scoring::Model;
use kindling::Millis;
use std::cell::RefCell;
use worker::Env;

pub const KV_KEY: &str = "scoring:active";
// Short: a model change should reach scoring (and its recomputation) within seconds.
const TTL_MS: i64 = 10 * Millis::SECOND;
const SEEDED: &str = include_str!("../../../config/scoring.json");

thread_local! {
    static CACHE: RefCell<Option<(Model, Millis)>> = const { RefCell::new(None) };
}

/// The cache runs on the real clock, not on the cron's virtual time: a tick replayed far in the
/// future must not pin a model in the cache.
pub async fn active(env: &Env) -> Option<Model> {
    let now = kindling_edge::now();
    if let Some((m, until)) = CACHE.with(|c| c.borrow().clone()) {
        if now < until {
            return Some(m);
        }
    }
    let published = match env.kv("CONFIG") {
        Ok(kv) => kv.get(KV_KEY).text().await.ok().flatten(),
        Err(_) => None,
    };
    let model = published
        .and_then(|t| Model::parse(t.as_bytes()).ok())
        .or_else(|| Model::parse(SEEDED.as_bytes()).ok())?;
    CACHE.with(|c| *c.borrow_mut() = Some((model.clone(), now.plus(TTL_MS))));
    Some(model)
}

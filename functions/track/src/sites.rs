//! Registered sites, read from KV (published by the api) through the isolate's cache.

use kindling::site::{kv_key, Site};
use kindling::Millis;
use worker::Env;

pub async fn lookup(env: &Env, key: &str, now: Millis) -> Option<Site> {
    kindling_edge::config::lookup(env, &kv_key(key), now).await
}

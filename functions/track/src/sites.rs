//! Is a site key registered? Answered from KV (published by the api) and remembered in the
//! isolate for a minute, so a busy pixel costs no storage round trip at all.

use kindling::site::{kv_key, Site};
use kindling::Millis;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::Env;

const KNOWN_TTL_MS: i64 = 60 * Millis::SECOND;
// Unknown keys are re-checked sooner, so a site registered a moment ago starts counting soon.
const UNKNOWN_TTL_MS: i64 = 5 * Millis::SECOND;

thread_local! {
    static CACHE: RefCell<HashMap<String, (bool, Millis)>> = RefCell::new(HashMap::new());
}

pub async fn is_registered(env: &Env, key: &str, now: Millis) -> bool {
    let cached = CACHE.with(|c| c.borrow().get(key).copied());
    if let Some((known, until)) = cached {
        if now < until {
            return known;
        }
    }
    let known = match env.kv("CONFIG") {
        Ok(kv) => matches!(kv.get(&kv_key(key)).json::<Site>().await, Ok(Some(_))),
        Err(_) => false,
    };
    let ttl = if known { KNOWN_TTL_MS } else { UNKNOWN_TTL_MS };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Bound memory against floods of random site keys.
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key.to_string(), (known, now.plus(ttl)));
    });
    known
}

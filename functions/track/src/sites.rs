//! Registered sites, read from KV (published by the api) and remembered in the isolate for a
//! minute, so a busy pixel costs no storage round trip at all.

use kindling::site::{kv_key, Site};
use kindling::Millis;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::Env;

const KNOWN_TTL_MS: i64 = 60 * Millis::SECOND;
// Unknown keys are re-checked sooner, so a site registered a moment ago starts counting soon.
const UNKNOWN_TTL_MS: i64 = 5 * Millis::SECOND;

type Cached = (Option<Site>, Millis);

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

pub async fn lookup(env: &Env, key: &str, now: Millis) -> Option<Site> {
    let cached = CACHE.with(|c| c.borrow().get(key).cloned());
    if let Some((site, until)) = cached {
        if now < until {
            return site;
        }
    }
    let site = match env.kv("CONFIG") {
        Ok(kv) => kv.get(&kv_key(key)).json::<Site>().await.ok().flatten(),
        Err(_) => None,
    };
    let ttl = if site.is_some() {
        KNOWN_TTL_MS
    } else {
        UNKNOWN_TTL_MS
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Bound memory against floods of random site keys.
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key.to_string(), (site.clone(), now.plus(ttl)));
    });
    site
}

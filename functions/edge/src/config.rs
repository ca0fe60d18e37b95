//! Configuration published to KV by the api (sites, forms), read on the ingress path and
//! remembered in the isolate, so a busy endpoint costs no storage round trip at all.

use kindling::Millis;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::Env;

const KNOWN_TTL_MS: i64 = 60 * Millis::SECOND;
// Unknown keys are re-checked sooner, so a site or form published a moment ago works soon.
const UNKNOWN_TTL_MS: i64 = 5 * Millis::SECOND;

type Cached = (Option<Rc<dyn Any>>, Millis);

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// The document under `kv_key` in the CONFIG namespace, or None when absent or unreadable.
pub async fn lookup<T: DeserializeOwned + Clone + 'static>(
    env: &Env,
    kv_key: &str,
    now: Millis,
) -> Option<T> {
    let cached = CACHE.with(|c| c.borrow().get(kv_key).cloned());
    if let Some((value, until)) = cached {
        if now < until {
            return value.and_then(|v| v.downcast_ref::<T>().cloned());
        }
    }
    let value = match env.kv("CONFIG") {
        Ok(kv) => kv.get(kv_key).json::<T>().await.ok().flatten(),
        Err(_) => None,
    };
    let ttl = if value.is_some() {
        KNOWN_TTL_MS
    } else {
        UNKNOWN_TTL_MS
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Bound memory against floods of random keys.
        if c.len() > 10_000 {
            c.clear();
        }
        let stored = value.clone().map(|v| Rc::new(v) as Rc<dyn Any>);
        c.insert(kv_key.to_string(), (stored, now.plus(ttl)));
    });
    value
}

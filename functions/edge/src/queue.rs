//! Queue messages travel as JSON text. Handing serde values to the runtime directly would turn
//! JSON objects inside them (event properties) into JS `Map`s, which do not survive the trip.

use serde::Serialize;
use worker::Env;

pub async fn send<T: Serialize>(env: &Env, binding: &str, message: &T) -> worker::Result<()> {
    let text =
        serde_json::to_string(message).map_err(|e| worker::Error::RustError(e.to_string()))?;
    env.queue(binding)?.send(text).await
}

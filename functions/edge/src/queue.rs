//! Queue messages travel as JSON text. Handing serde values to the runtime directly would turn
//! JSON objects inside them (event properties) into JS `Map`s, which do not survive the trip.

use serde::Serialize;
use worker::Env;

pub async fn send<T: Serialize>(env: &Env, binding: &str, message: &T) -> worker::Result<()> {
    let text =
        serde_json::to_string(message).map_err(|e| worker::Error::RustError(e.to_string()))?;
    env.queue(binding)?.send(text).await
}

/// Most messages one `sendBatch` call takes.
const MAX_BATCH: usize = 100;

/// Sends messages in as few `sendBatch` calls as the platform allows.
pub async fn send_all<T: Serialize>(
    env: &Env,
    binding: &str,
    messages: &[T],
) -> worker::Result<()> {
    let queue = env.queue(binding)?;
    for chunk in messages.chunks(MAX_BATCH) {
        let texts = chunk
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        queue.send_batch(texts).await?;
    }
    Ok(())
}

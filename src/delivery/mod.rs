//! Delivery: deciding, rendering and sending messages. `decision` is the one answer to "may we
//! send this message to this contact on this channel now?"; `providers` builds the HTTP
//! requests of each channel's provider and reads their answers; `receipts` reads providers'
//! delivery reports; `ab` judges A/B tests; `batch` orders a queue batch's sends into rounds.

pub mod ab;
pub mod batch;
pub mod compose;
pub mod decision;
pub mod providers;
pub mod receipts;

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What travels on the `sends` queue: a message id and the time to decide it at (the api's
/// request time, or the cron's scheduled time for a deferred or retried message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOrder {
    pub id: String,
    pub at: Millis,
    /// The tries the message had when this order was given. A retry gets two orders (deliver's
    /// own delayed one and the cron's when due); the first to arrive makes the try, and the
    /// other, now naming an older count, is ignored — no try without its backoff.
    #[serde(default)]
    pub attempt: i64,
}

/// Tries before a message is dead-lettered (visible with its reason at `/v1/messages`).
pub const MAX_ATTEMPTS: i64 = 5;

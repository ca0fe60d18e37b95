//! Queue messages travel as JSON text. Handing serde values to the runtime directly would turn
//! JSON objects inside them (event properties) into JS `Map`s, which do not survive the trip.
//!
//! [`post`] is the request path's way to send: the requests of one isolate that send at the
//! same moment share a `sendBatch` (group commit), so under load a send costs one platform call
//! per batch instead of one per request, and an idle isolate still sends at once.
//!
//! How: a request hands its messages to the isolate's *lane* for that queue. If no *sender* is
//! running, the request starts one under its own `wait_until`; the sender sends everything
//! waiting in one batch, then whatever arrived meanwhile, until nothing waits. A request that
//! must answer after its send (a beacon: 202, or 503 so the snippet retries) watches its own
//! entry on short timers of its own. Nothing crosses from one request to another but plain
//! text and outcomes in memory: no promise, waker or I/O object of one request is ever touched
//! by another, which the runtime forbids.
//!
//! A sender gives up its lane after [`SENDER_TURN`] (a `wait_until` has limits): it takes the
//! waiting entries with it and drains them, and the next arrival starts a fresh sender. A
//! sender that stops making progress (its request was cancelled) is replaced by the next
//! request that notices, after [`STALLED`]; entries it had taken fail after [`GIVE_UP`].

use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, Context, Delay, Env};

pub async fn send<T: Serialize>(env: &Env, binding: &str, message: &T) -> worker::Result<()> {
    env.queue(binding)?.send(to_text(message)?).await
}

/// Most messages one `sendBatch` call takes.
const MAX_BATCH: usize = 100;

/// Most bytes of message text in one shared batch. The platform's limit is 256 KB per
/// `sendBatch` including its own per-message overhead; this leaves room for that.
const MAX_BATCH_BYTES: usize = 192_000;

/// How long one sender serves its lane before handing it to a fresh one.
const SENDER_TURN: i64 = 5_000;

/// Most sends in flight per queue. One: two or three in flight (smaller batches, less waiting)
/// measured slower for pixels and beacons alike under `wrangler dev`, where a send's CPU cost
/// outweighs its latency, and holding a send back 4 ms to fill the batch gained nothing.
const MAX_SENDERS: u32 = 1;

/// A lane whose senders have not finished a batch for this long has lost them.
const STALLED: i64 = 2_000;

/// How long a request waits for its messages to be sent before calling it failed (a beacon
/// answers 503 and the snippet retries; events are deduplicated by id).
const GIVE_UP: i64 = 10_000;

/// The shortest and longest pause between two looks at a request's own entry. Each look is a
/// timer of the request's own, so the first is timed to when its send should be done.
const MIN_LOOK_MS: i64 = 2;
const MAX_LOOK_MS: i64 = 50;

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
            .map(to_text)
            .collect::<worker::Result<Vec<_>>>()?;
        queue.send_batch(texts).await?;
    }
    Ok(())
}

/// Hands `messages` to the isolate's sender for the queue bound as `binding`, starting one
/// under this request's `wait_until` if none is running. [`Posted::sent`] waits for them to be
/// on the queue; a caller that does not need to know (a pixel: its answer is already out) may
/// drop the [`Posted`], and a failure is logged.
pub fn post<T: Serialize>(
    env: &Env,
    ctx: &Context,
    binding: &'static str,
    messages: &[T],
) -> worker::Result<Posted> {
    let texts = messages
        .iter()
        .map(to_text)
        .collect::<worker::Result<Vec<_>>>()?;
    let entry = Rc::new(Entry {
        texts,
        outcome: RefCell::new(None),
        watched: Cell::new(true),
        taken_at: Cell::new(None),
    });
    let now = now_ms();
    if entry.texts.is_empty() {
        // Nothing to send (a beacon whose events were all refused): settled at once.
        *entry.outcome.borrow_mut() = Some(Ok(()));
        return Ok(Posted {
            entry,
            binding,
            since: now,
        });
    }
    let start = with_lane(binding, |lane| {
        lane.waiting.push_back(entry.clone());
        lane.claim(now)
    });
    if start {
        ctx.wait_until(sender(env.clone(), binding));
    }
    Ok(Posted {
        entry,
        binding,
        since: now,
    })
}

/// Messages handed to a sender.
pub struct Posted {
    entry: Rc<Entry>,
    binding: &'static str,
    since: i64,
}

impl Posted {
    /// Waits until the messages are on the queue, or their send failed.
    pub async fn sent(self, env: &Env, ctx: &Context) -> worker::Result<()> {
        loop {
            if let Some(outcome) = self.entry.outcome.borrow_mut().take() {
                return outcome.map_err(worker::Error::RustError);
            }
            let now = now_ms();
            if now - self.since > GIVE_UP {
                return Err(worker::Error::RustError(
                    "the queue send did not finish in time".into(),
                ));
            }
            let (start, send_ms) = with_lane(self.binding, |lane| (lane.claim(now), lane.send_ms));
            if start {
                ctx.wait_until(sender(env.clone(), self.binding));
            }
            // In flight: until its send should be done. Still waiting: the send before it
            // should be about half way.
            let due = match self.entry.taken_at.get() {
                Some(taken) => taken + send_ms - now,
                None => send_ms / 2,
            };
            let pause = due.clamp(MIN_LOOK_MS, MAX_LOOK_MS);
            Delay::from(Duration::from_millis(pause as u64)).await;
        }
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        // Nobody will read the outcome: the sender logs a failure instead.
        self.entry.watched.set(false);
    }
}

/// Milliseconds now. The platform's clock moves only between I/O, which is all that is
/// measured here: how long since a sender was last seen, since a request posted.
fn now_ms() -> i64 {
    crate::now().0
}

fn to_text<T: Serialize>(message: &T) -> worker::Result<String> {
    serde_json::to_string(message).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// One request's messages and what became of them.
struct Entry {
    texts: Vec<String>,
    outcome: RefCell<Option<Result<(), String>>>,
    /// False once the request stopped waiting for the outcome.
    watched: Cell<bool>,
    /// When a sender took it into a batch.
    taken_at: Cell<Option<i64>>,
}

/// The messages waiting for one queue, oldest first, and its senders.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Rc<Entry>>,
    /// Senders running.
    senders: u32,
    /// When a sender last started or finished a batch.
    seen: i64,
    /// How long a send has been taking, milliseconds (a moving average).
    send_ms: i64,
}

impl Lane {
    /// True when the caller is to start a sender: something waits, and fewer than
    /// [`MAX_SENDERS`] run (senders that made no progress for [`STALLED`] are taken as lost).
    fn claim(&mut self, now: i64) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        if self.senders > 0 && now - self.seen > STALLED {
            self.senders = 0;
        }
        if self.senders >= MAX_SENDERS {
            return false;
        }
        self.senders += 1;
        self.seen = now;
        true
    }

    fn leave(&mut self) {
        self.senders = self.senders.saturating_sub(1);
    }
}

thread_local! {
    static LANES: RefCell<Vec<(&'static str, Lane)>> = const { RefCell::new(Vec::new()) };
}

fn with_lane<R>(binding: &'static str, f: impl FnOnce(&mut Lane) -> R) -> R {
    LANES.with(|lanes| {
        let mut lanes = lanes.borrow_mut();
        let i = match lanes.iter().position(|(b, _)| *b == binding) {
            Some(i) => i,
            None => {
                lanes.push((binding, Lane::default()));
                lanes.len() - 1
            }
        };
        f(&mut lanes[i].1)
    })
}

/// Serves a lane: sends what waits, batch after batch, until nothing waits. When its turn is
/// over it leaves the lane to a fresh sender and drains what waited at that moment.
async fn sender(env: Env, binding: &'static str) {
    let began = now_ms();
    loop {
        let step = with_lane(binding, |lane| {
            let now = now_ms();
            if lane.waiting.is_empty() {
                lane.leave();
                Step::Done
            } else if now - began > SENDER_TURN {
                lane.leave();
                Step::Leave(std::mem::take(&mut lane.waiting))
            } else {
                lane.seen = now;
                Step::Send(take_batch(&mut lane.waiting))
            }
        });
        match step {
            Step::Done => return,
            Step::Send(batch) => {
                let sent_at = now_ms();
                send_batch(&env, binding, batch).await;
                let now = now_ms();
                with_lane(binding, |lane| {
                    lane.seen = now;
                    lane.send_ms = (3 * lane.send_ms + (now - sent_at)) / 4;
                });
            }
            Step::Leave(mut rest) => {
                while !rest.is_empty() {
                    send_batch(&env, binding, take_batch(&mut rest)).await;
                }
                return;
            }
        }
    }
}

enum Step {
    Done,
    Send(Vec<Rc<Entry>>),
    Leave(VecDeque<Rc<Entry>>),
}

/// Sends one batch and records its outcome for each entry.
async fn send_batch(env: &Env, binding: &str, batch: Vec<Rc<Entry>>) {
    let now = now_ms();
    for entry in &batch {
        entry.taken_at.set(Some(now));
    }
    let result = send_texts(env, binding, &batch)
        .await
        .map_err(|e| e.to_string());
    if let Err(e) = &result {
        let unwatched = batch.iter().filter(|e| !e.watched.get()).count();
        if unwatched > 0 {
            console_error!("{binding} queue send failed for {unwatched} answered requests: {e}");
        }
    }
    for entry in batch {
        *entry.outcome.borrow_mut() = Some(result.clone());
    }
}

/// The oldest waiting entries that fit one `sendBatch`; at least one if any waits.
fn take_batch(waiting: &mut VecDeque<Rc<Entry>>) -> Vec<Rc<Entry>> {
    let (mut count, mut bytes) = (0, 0);
    let mut batch = Vec::new();
    while let Some(entry) = waiting.front() {
        let n = entry.texts.len();
        let b: usize = entry.texts.iter().map(String::len).sum();
        if !batch.is_empty() && (count + n > MAX_BATCH || bytes + b > MAX_BATCH_BYTES) {
            break;
        }
        count += n;
        bytes += b;
        batch.extend(waiting.pop_front());
    }
    batch
}

/// Sends the batch's messages: one `sendBatch`, or several when one entry alone is over a
/// limit.
async fn send_texts(env: &Env, binding: &str, batch: &[Rc<Entry>]) -> worker::Result<()> {
    let queue = env.queue(binding)?;
    let texts: Vec<&str> = batch
        .iter()
        .flat_map(|e| e.texts.iter().map(String::as_str))
        .collect();
    let mut rest = texts.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest));
        queue.send_batch(chunk.to_vec()).await?;
        rest = tail;
    }
    Ok(())
}

/// How many of `texts` (at least one) fit the next `sendBatch`.
fn chunk_len(texts: &[&str]) -> usize {
    let (mut n, mut bytes) = (0, 0);
    while n < texts.len() && n < MAX_BATCH && (n == 0 || bytes + texts[n].len() <= MAX_BATCH_BYTES)
    {
        bytes += texts[n].len();
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(texts: &[&str]) -> Rc<Entry> {
        Rc::new(Entry {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            outcome: RefCell::new(None),
            watched: Cell::new(true),
            taken_at: Cell::new(None),
        })
    }

    #[test]
    fn a_batch_takes_the_oldest_whole_entries_within_the_limits() {
        let big = "x".repeat(MAX_BATCH_BYTES / 2 - 10);
        let mut waiting: VecDeque<_> = [
            entry(&["a"; 60]),
            entry(&["b"; 30]),
            entry(&["c"; 20]), // 110 messages: over the count
            entry(&["d"]),
        ]
        .into_iter()
        .collect();
        let first = take_batch(&mut waiting);
        assert_eq!(first.iter().map(|e| e.texts.len()).sum::<usize>(), 90);
        assert_eq!(first[0].texts[0], "a");
        assert_eq!(waiting.len(), 2);
        let second = take_batch(&mut waiting);
        assert_eq!(second.len(), 2);
        assert!(waiting.is_empty());
        assert!(take_batch(&mut waiting).is_empty());

        let mut heavy: VecDeque<_> = [entry(&[&big]), entry(&[&big]), entry(&[&big])]
            .into_iter()
            .collect();
        assert_eq!(
            take_batch(&mut heavy).len(),
            2,
            "two halves fit, a third does not"
        );
        assert_eq!(heavy.len(), 1);
    }

    #[test]
    fn an_entry_over_a_limit_alone_still_goes_out() {
        let mut waiting: VecDeque<_> = [entry(&["m"; 150]), entry(&["n"])].into_iter().collect();
        let batch = take_batch(&mut waiting);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].texts.len(), 150);
        // ... in several sendBatch calls.
        let texts: Vec<&str> = batch[0].texts.iter().map(String::as_str).collect();
        assert_eq!(chunk_len(&texts), MAX_BATCH);
        assert_eq!(chunk_len(&texts[MAX_BATCH..]), 50);
        let huge = "y".repeat(MAX_BATCH_BYTES + 1);
        assert_eq!(chunk_len(&[huge.as_str(), "z"]), 1);
        assert_eq!(chunk_len(&["z", huge.as_str()]), 1);
    }

    #[test]
    fn one_sender_per_lane_until_it_stalls() {
        let mut lane = Lane::default();
        assert!(!lane.claim(1_000), "nothing waits: no sender");
        lane.waiting.push_back(entry(&["a"]));
        assert!(lane.claim(1_000), "the first request starts the sender");
        assert!(!lane.claim(1_500), "one is running");
        assert!(!lane.claim(1_000 + STALLED), "not stalled yet");
        assert!(
            lane.claim(1_001 + STALLED),
            "a sender silent for too long is replaced"
        );
        lane.leave();
        lane.leave(); // the lost sender finishing after all does not underflow
        assert_eq!(lane.senders, 0);
        assert!(lane.claim(5_000));
    }
}

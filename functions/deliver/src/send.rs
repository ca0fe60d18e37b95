//! One round of a queue batch (`kindling::delivery::batch`): decide, claim, render, send,
//! record — one D1 round trip per step for the whole round instead of about ten per message.
//! Every state change is still a compare-and-set (`store::messages::transition_many`): of two
//! deliveries of the same queue message only one claims the send, and only a message this
//! invocation claimed is sent.

use crate::config::Config;
use crate::outbound;
use futures_util::future::{join_all, try_join, try_join3};
use kindling::consent::Channel;
use kindling::delivery::compose::{self, Links, Recipient};
use kindling::delivery::decision::{decide, Decision, JourneyCap, Kind, Policy, Situation};
use kindling::delivery::providers::{self, Email, Outcome, Provider};
use kindling::delivery::{SendOrder, MAX_ATTEMPTS};
use kindling::store::contacts::{self, ContactView};
use kindling::store::documents::{self, TEMPLATES};
use kindling::store::messages::{self, FactsAsk, Message, Route, Transition, OPEN_STATES};
use kindling::store::{consent, tags, Db};
use kindling::template::Template;
use kindling::Millis;
use kindling_edge::d1::D1;
use std::collections::{BTreeMap, HashMap, HashSet};
use worker::*;

type Core<T> = std::result::Result<T, kindling::Error>;

/// The state a claimed send is settled from.
const SENDING: &str = "('sending')";

/// A queue message's order with its outbox row, as loaded with the batch.
pub struct Pending<'a> {
    pub order: &'a SendOrder,
    pub message: &'a Message,
}

/// What the decision and the template make of a message.
enum Plan {
    /// Not sent now: suppressed, deferred or failed, with the reason and the next try.
    Hold {
        to: &'static str,
        reason: &'static str,
        next: Option<Millis>,
    },
    Send {
        route: Route,
        template: Option<Template>,
        variant: Option<String>,
    },
}

/// A message this invocation claimed: its send is ours.
struct Claimed<'a> {
    m: &'a Message,
    now: Millis,
    route: Route,
    template: Option<Template>,
    variant: Option<String>,
}

/// A recipient as rendering needs them: personal data opened, tags as (tag, value).
struct Person {
    contact: ContactView,
    tags: Vec<(String, String)>,
}

/// Processes one round (one workspace, no two messages of one lane); returns how many messages
/// went out.
pub async fn round(env: &Env, db: &D1, cfg: &Config, batch: &[&Pending<'_>]) -> Core<usize> {
    let live: Vec<&Pending> = batch.iter().copied().filter(|p| current(p)).collect();
    let Some(first) = live.first() else {
        return Ok(0);
    };
    let workspace = first.message.workspace.as_str();
    let plans = plan(db, workspace, &live).await?;
    let claimed = claim(db, &live, plans).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let people = people(env, db, workspace, &claimed).await?;
    let outcomes = join_all(
        claimed
            .iter()
            .map(|c| send(cfg, c, people.get(&c.m.contact_id))),
    )
    .await;
    record(env, db, &claimed, outcomes).await
}

/// Whether the order still stands: the message is open and the order names its current try
/// (a retry ordered twice is tried once, by the first order to arrive).
fn current(p: &Pending) -> bool {
    matches!(p.message.state.as_str(), "queued" | "deferred" | "retry")
        && p.order.attempt == p.message.attempts
}

/// Decides every message of the round, and picks the template and A/B variant of those to send.
/// The decision's facts and the A/B winners are read for the whole round, concurrently.
async fn plan(db: &D1, workspace: &str, live: &[&Pending<'_>]) -> Core<Vec<Plan>> {
    let policy = Policy::default();
    let routes: Vec<Option<Route>> = live
        .iter()
        .map(|p| Route::parse(&p.message.channel))
        .collect();
    // Messages to people are decided; webhooks go to systems and are not.
    let asked: Vec<(usize, Channel)> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Some(Route::Person(channel)) => Some((i, *channel)),
            _ => None,
        })
        .collect();
    let consent_asks: Vec<(&str, Channel, Millis)> = asked
        .iter()
        .map(|&(i, channel)| {
            (
                live[i].message.contact_id.as_str(),
                channel,
                live[i].order.at,
            )
        })
        .collect();
    let fact_asks: Vec<FactsAsk> = asked
        .iter()
        .map(|&(i, channel)| FactsAsk {
            contact: &live[i].message.contact_id,
            channel: channel.as_str(),
            message_id: &live[i].message.id,
            now: live[i].order.at,
        })
        .collect();
    let mut versions: Vec<(&str, i64)> = live
        .iter()
        .filter_map(|p| {
            Some((
                p.message.template_id.as_deref()?,
                p.message.template_version?,
            ))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let (consents, facts, winners) = try_join3(
        consent::may_market_many(db, workspace, &consent_asks),
        messages::facts_many(db, workspace, &fact_asks, policy.cap_window_ms),
        messages::ab_winners(db, workspace, &versions),
    )
    .await?;
    let mut decisions: Vec<Option<Decision>> = vec![None; live.len()];
    for (k, &(i, _)) in asked.iter().enumerate() {
        let (m, facts) = (live[i].message, &facts[k]);
        decisions[i] = Some(decide(
            &policy,
            &Situation {
                kind: kind(m),
                consent: consents[k],
                recent: &facts.recent,
                utc_offset_min: facts.utc_offset_min,
                last_sales_contact: facts.last_sales_contact,
                journey_cap: facts.journey_cap.map(|(max, window_ms)| JourneyCap {
                    max,
                    window_ms,
                    recent: &facts.journey_recent,
                }),
                now: live[i].order.at,
            },
        ));
    }
    let mut plans = Vec::with_capacity(live.len());
    for ((p, route), decision) in live.iter().zip(routes).zip(decisions) {
        plans.push(plan_one(db, p.message, route, decision, &winners).await?);
    }
    Ok(plans)
}

fn kind(m: &Message) -> Kind {
    if m.kind == "transactional" {
        Kind::Transactional
    } else {
        Kind::Marketing
    }
}

/// One message's plan from its route (None: unknown channel), its decision (None: not asked,
/// a webhook) and the round's A/B winners. Templates are cached per isolate, so this is no
/// round trip after an isolate's first batch.
async fn plan_one(
    db: &D1,
    m: &Message,
    route: Option<Route>,
    decision: Option<Decision>,
    winners: &HashMap<(String, i64), String>,
) -> Core<Plan> {
    let hold = |to, reason, next| Plan::Hold { to, reason, next };
    let Some(route) = route else {
        return Ok(hold("failed", "unknown_channel", None));
    };
    match decision {
        Some(Decision::Suppress { reason }) => {
            return Ok(hold("suppressed", reason.as_str(), None))
        }
        Some(Decision::Defer { until, reason }) => {
            return Ok(hold("deferred", reason.as_str(), Some(until)))
        }
        Some(Decision::Send) | None => {}
    }
    let (template, variant) = match (&m.template_id, m.template_version) {
        (Some(id), Some(version)) => {
            let Some(t) = load_template(db, &m.workspace, id, version).await? else {
                return Ok(hold("failed", "template_missing", None));
            };
            let winner = winners.get(&(id.clone(), version)).map(String::as_str);
            let variant = compose::variant(&t, &m.contact_id, winner);
            (Some(t), Some(variant))
        }
        _ => (None, None),
    };
    Ok(Plan::Send {
        route,
        template,
        variant,
    })
}

/// A state change of `id` with nothing else set: the base the others are built on.
fn change<'a>(id: &'a str, from: &'static str, to: &'a str, now: Millis) -> Transition<'a> {
    Transition {
        id,
        from,
        to,
        reason: None,
        next_attempt_at: None,
        provider_id: None,
        variant: None,
        attempt: false,
        now,
    }
}

/// Records every plan in one statement — holds as they are, sends as claims (`sending`,
/// counting the try) — and returns the claims this invocation won, the only messages it sends.
async fn claim<'a>(db: &D1, live: &[&'a Pending<'a>], plans: Vec<Plan>) -> Core<Vec<Claimed<'a>>> {
    let changes: Vec<Transition> = live
        .iter()
        .zip(&plans)
        .map(|(p, plan)| {
            let base = |to| change(&p.message.id, OPEN_STATES, to, p.order.at);
            match plan {
                Plan::Hold { to, reason, next } => Transition {
                    reason: Some(reason),
                    next_attempt_at: *next,
                    ..base(to)
                },
                Plan::Send { variant, .. } => Transition {
                    variant: variant.as_deref(),
                    attempt: true,
                    ..base("sending")
                },
            }
        })
        .collect();
    let mut won: HashSet<String> = messages::transition_many(db, &changes)
        .await?
        .into_iter()
        .collect();
    Ok(live
        .iter()
        .zip(plans)
        .filter_map(|(p, plan)| match plan {
            // Each changed id counts once, so a message can never be sent twice from here.
            Plan::Send {
                route,
                template,
                variant,
            } if won.remove(&p.message.id) => Some(Claimed {
                m: p.message,
                now: p.order.at,
                route,
                template,
                variant,
            }),
            _ => None,
        })
        .collect())
}

/// The claimed messages' recipients with their tags: two concurrent reads for the round.
async fn people(
    env: &Env,
    db: &D1,
    workspace: &str,
    claimed: &[Claimed<'_>],
) -> Core<HashMap<String, Person>> {
    let mut ids: Vec<&str> = claimed.iter().map(|c| c.m.contact_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let (found, mut tags) = try_join(
        contacts::get_many(db, workspace, &ids),
        tags::of_contacts(db, workspace, &ids),
    )
    .await?;
    let keys = kindling_edge::pii_keys(env);
    Ok(found
        .into_iter()
        .map(|mut contact| {
            contact.reveal(keys.as_ref(), true);
            let tags = tags
                .remove(&contact.id)
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.tag, t.value))
                .collect();
            (contact.id.clone(), Person { contact, tags })
        })
        .collect())
}

/// Builds, performs and classifies one claimed message's provider request; a request that
/// cannot be built fails the message with the reason.
async fn send(cfg: &Config, c: &Claimed<'_>, person: Option<&Person>) -> Outcome {
    match build(cfg, c, person).await {
        Ok((provider, request)) => {
            let answer = outbound::perform(&request).await;
            providers::classify(&provider, answer.status, &answer.headers, &answer.body)
        }
        Err(reason) => Outcome::Fail { reason },
    }
}

/// How a claimed send ends, as recorded.
struct Settled {
    to: &'static str,
    reason: Option<String>,
    next: Option<Millis>,
    provider_id: Option<String>,
    /// A retry's backoff: the message goes back on the queue with this delay.
    requeue_after_ms: Option<i64>,
    /// Twilio said the number does not exist: the contact's phone is marked invalid.
    invalid_phone: bool,
}

fn settle(c: &Claimed<'_>, outcome: Outcome) -> Settled {
    let attempt = c.m.attempts + 1;
    let end = |to, reason| Settled {
        to,
        reason,
        next: None,
        provider_id: None,
        requeue_after_ms: None,
        invalid_phone: false,
    };
    match outcome {
        Outcome::Sent { provider_id } => Settled {
            provider_id,
            ..end("sent", None)
        },
        Outcome::Retry {
            reason,
            retry_after_s,
        } if attempt < MAX_ATTEMPTS => {
            let jitter = f64::from(u32::from_le_bytes(
                kindling_edge::nonce()[..4].try_into().unwrap_or([0; 4]),
            )) / f64::from(u32::MAX);
            let wait = providers::backoff_ms(attempt as u32, jitter.min(0.999), retry_after_s);
            Settled {
                next: Some(c.now.plus(wait)),
                requeue_after_ms: Some(wait),
                ..end("retry", Some(reason))
            }
        }
        Outcome::Retry { reason, .. } => end(
            "dead",
            Some(format!("gave up after {attempt} tries: {reason}")),
        ),
        Outcome::Fail { reason } => Settled {
            invalid_phone: reason.contains("invalid_number"),
            ..end("failed", Some(reason))
        },
    }
}

/// Records every outcome in one statement (each from `sending`), then marks invalid numbers and
/// puts retries back on the queue. Returns how many went out.
async fn record(
    env: &Env,
    db: &D1,
    claimed: &[Claimed<'_>],
    outcomes: Vec<Outcome>,
) -> Core<usize> {
    let settled: Vec<Settled> = claimed
        .iter()
        .zip(outcomes)
        .map(|(c, o)| settle(c, o))
        .collect();
    let changes: Vec<Transition> = claimed
        .iter()
        .zip(&settled)
        .map(|(c, s)| Transition {
            reason: s.reason.as_deref(),
            next_attempt_at: s.next,
            provider_id: s.provider_id.as_deref(),
            ..change(&c.m.id, SENDING, s.to, c.now)
        })
        .collect();
    messages::transition_many(db, &changes).await?;
    for (c, _) in claimed
        .iter()
        .zip(&settled)
        .filter(|(_, s)| s.invalid_phone)
    {
        mark_point(db, c.m, "phone_status", "invalid").await?;
    }
    join_all(claimed.iter().zip(&settled).filter_map(|(c, s)| {
        let wait = s.requeue_after_ms?;
        Some(requeue(env, &c.m.id, s.next?, c.m.attempts + 1, wait))
    }))
    .await;
    Ok(settled.iter().filter(|s| s.to == "sent").count())
}

/// A retry goes back on the queue with the backoff as delay; the cron re-queues whatever is
/// due as well, so a lost delayed message only delays the retry.
async fn requeue(env: &Env, id: &str, at: Millis, attempt: i64, wait_ms: i64) {
    let order = SendOrder {
        id: id.into(),
        at,
        attempt,
    };
    let Ok(text) = serde_json::to_string(&order) else {
        return;
    };
    let delay = (wait_ms / 1000).clamp(0, 43_200) as u32;
    let sent = match env.queue("SENDS") {
        Ok(q) => {
            q.send(MessageBuilder::new(text).delay_seconds(delay).build())
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        console_warn!("re-queue of {id} failed (the cron will pick it up): {e}");
    }
}

/// Builds the provider request for a claimed message, or the reason it cannot be built.
async fn build(
    cfg: &Config,
    c: &Claimed<'_>,
    person: Option<&Person>,
) -> std::result::Result<(Provider, providers::HttpRequest), String> {
    let m = c.m;
    let channel = match c.route {
        Route::Webhook => return webhook(cfg, m, person),
        Route::Person(channel) => channel,
    };
    let Some(template) = &c.template else {
        return Err("template_required".into());
    };
    let Some(person) = person else {
        return Err("contact_missing".into());
    };
    let contact = &person.contact;
    let opened = |v: &Option<String>| v.clone().filter(|x| x != "[sealed]");
    let (email, phone, name) = (
        opened(&contact.email),
        opened(&contact.phone),
        opened(&contact.name),
    );
    let attributes = contact.attributes.as_object().cloned().unwrap_or_default();
    let recipient = Recipient {
        contact_id: &m.contact_id,
        email: email.as_deref(),
        phone: phone.as_deref(),
        name: name.as_deref(),
        attributes: &attributes,
        tags: &person.tags,
    };
    let links = Links {
        track: &cfg.track_url,
        forms: &cfg.forms_url,
        key: &cfg.link_key,
    };
    let sender_vars = m.variables.as_object().cloned().unwrap_or_default();
    let vars = compose::variables(&recipient, &sender_vars, &links, channel);
    let lang = compose::language(&recipient);
    let rendered = compose::render(
        template,
        &vars,
        lang,
        c.variant.as_deref().unwrap_or("a"),
        &links,
        &m.id,
        &m.contact_id,
    );
    let text = rendered.text.clone().unwrap_or_default();
    match channel {
        Channel::Email => {
            let (Some(cfg_email), Some(to)) = (&cfg.email, email.as_deref()) else {
                return Err(if cfg.email.is_none() {
                    "email_not_configured"
                } else {
                    "no_email_address"
                }
                .into());
            };
            let unsubscribe = compose::unsubscribe_url(&links, &m.contact_id, Channel::Email);
            let req = providers::sendgrid(
                cfg_email,
                &Email {
                    message_id: &m.id,
                    to,
                    subject: rendered.subject.as_deref().unwrap_or_default(),
                    html: rendered.html.as_deref(),
                    text: &text,
                    unsubscribe_url: (m.kind == "marketing").then_some(unsubscribe.as_str()),
                    category: &m.kind,
                },
            );
            Ok((Provider::SendGrid, req))
        }
        Channel::Sms => {
            let (Some(sms), Some(to)) = (&cfg.sms, phone.as_deref()) else {
                return Err(if cfg.sms.is_none() {
                    "sms_not_configured"
                } else {
                    "no_phone_number"
                }
                .into());
            };
            // Delivery reports come back to deliver, authenticated by a per-message token.
            let mut sms = sms.clone();
            if !cfg.deliver_url.is_empty() && !cfg.receipt_key.is_empty() {
                sms.status_callback = Some(format!(
                    "{}/r/twilio?t={}",
                    cfg.deliver_url.trim_end_matches('/'),
                    kindling::delivery::receipts::callback_token(&cfg.receipt_key, &m.id)
                ));
            }
            Ok((Provider::Twilio, providers::twilio(&sms, &m.id, to, &text)))
        }
        Channel::Wecom => {
            let Some((app, corp, secret)) = &cfg.wecom else {
                return Err("wecom_not_configured".into());
            };
            let Some(user) = attributes.get("wecom_user_id").and_then(|u| u.as_str()) else {
                return Err("no_wecom_user".into());
            };
            let Some(token) = wecom_token(app, corp, secret).await else {
                return Err("wecom_token_unavailable".into());
            };
            Ok((
                Provider::WecomApp,
                providers::wecom_app(app, &token, user, &text),
            ))
        }
    }
}

/// A webhook's request: ids and marketing facts only, personal data stays in Kindling.
fn webhook(
    cfg: &Config,
    m: &Message,
    person: Option<&Person>,
) -> std::result::Result<(Provider, providers::HttpRequest), String> {
    let Some(hook) = &cfg.webhook else {
        return Err("webhook_not_configured".into());
    };
    let payload = serde_json::json!({
        "message_id": m.id,
        "event": m.variables.get("event").and_then(|e| e.as_str()).unwrap_or("contact.sync"),
        "contact": person.map(|p| &p.contact).map(|c| serde_json::json!({
            "id": c.id, "lead_status": c.lead_status, "lifecycle_stage": c.lifecycle_stage,
            "score": c.score, "attributes": c.attributes,
        })),
        "tags": person.map(|p| p.tags.iter().cloned().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
        "variables": m.variables,
    });
    let body = payload.to_string().into_bytes();
    let event = payload["event"]
        .as_str()
        .unwrap_or("contact.sync")
        .to_string();
    let req = providers::webhook(hook, &m.id, &event, &body, kindling_edge::now().0 / 1000);
    Ok((Provider::Webhook, req))
}

thread_local! {
    // WeCom access tokens live two hours; one per isolate, refreshed when it expires.
    static WECOM_TOKEN: std::cell::RefCell<Option<(String, i64)>> = const { std::cell::RefCell::new(None) };
}

async fn wecom_token(app: &providers::WecomAppConfig, corp: &str, secret: &str) -> Option<String> {
    let now = kindling_edge::now().0;
    if let Some((t, until)) = WECOM_TOKEN.with(|c| c.borrow().clone()) {
        if now < until {
            return Some(t);
        }
    }
    let answer =
        outbound::perform(&providers::wecom_token_request(&app.endpoint, corp, secret)).await;
    let (token, secs) = providers::wecom_token(&answer.body)?;
    // Refresh five minutes early.
    let until = now + (secs - 300).max(60) * 1000;
    WECOM_TOKEN.with(|c| *c.borrow_mut() = Some((token.clone(), until)));
    Some(token)
}

/// Template versions never change once saved: cached per isolate.
async fn load_template(db: &D1, workspace: &str, id: &str, version: i64) -> Core<Option<Template>> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<(String, i64), Template>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let key = (id.to_string(), version);
    if let Some(t) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(Some(t));
    }
    let Some(text) = documents::get_version(db, &TEMPLATES, workspace, id, version).await? else {
        return Ok(None);
    };
    let t: Option<Template> = serde_json::from_str(&text).ok();
    if let Some(t) = &t {
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() > 500 {
                c.clear();
            }
            c.insert(key, t.clone());
        });
    }
    Ok(t)
}

async fn mark_point(db: &D1, m: &Message, column: &str, status: &str) -> Core<()> {
    let sql = match column {
        "email_status" => "UPDATE contacts SET email_status = ?3 WHERE workspace = ?1 AND id = ?2",
        _ => "UPDATE contacts SET phone_status = ?3 WHERE workspace = ?1 AND id = ?2",
    };
    db.execute(&kindling::store::Statement::new(
        sql,
        vec![
            m.workspace.as_str().into(),
            m.contact_id.as_str().into(),
            status.into(),
        ],
    ))
    .await?;
    Ok(())
}

//! One outbox message: decide, claim, render, send, record. Every state change is a
//! compare-and-set (`store::messages::transition`): of two deliveries of the same queue
//! message only one claims the send.

use crate::config::Config;
use crate::outbound;
use kindling::consent::Channel;
use kindling::delivery::compose::{self, Links, Recipient};
use kindling::delivery::decision::{decide, Decision, Kind, Policy, Situation};
use kindling::delivery::providers::{self, Email, Outcome, Provider};
use kindling::delivery::{SendOrder, MAX_ATTEMPTS};
use kindling::store::documents::{self, TEMPLATES};
use kindling::store::messages::{self, Message, Route, Transition, OPEN_STATES};
use kindling::store::{consent, contacts, tags, Db};
use kindling::template::Template;
use kindling::Millis;
use kindling_edge::d1::D1;
use worker::*;

type Core<T> = std::result::Result<T, kindling::Error>;

/// Returns whether the message (loaded with the batch, None when unknown) was sent by this call.
pub async fn process(
    env: &Env,
    db: &D1,
    cfg: &Config,
    order: &SendOrder,
    m: Option<Message>,
) -> Core<bool> {
    let Some(m) = m else {
        // Unknown ids cannot become known later: acknowledge and move on.
        return Ok(false);
    };
    if !matches!(m.state.as_str(), "queued" | "deferred" | "retry") || order.attempt != m.attempts {
        return Ok(false);
    }
    let now = order.at;
    let Some(route) = Route::parse(&m.channel) else {
        fail(db, &m, "unknown_channel", now).await?;
        return Ok(false);
    };
    let kind = if m.kind == "transactional" {
        Kind::Transactional
    } else {
        Kind::Marketing
    };
    let policy = Policy::default();
    if let Route::Person(channel) = route {
        let consent = consent::may_market(db, &m.workspace, &m.contact_id, channel, now).await?;
        let facts = messages::facts(
            db,
            &m.workspace,
            &m.contact_id,
            channel.as_str(),
            &m.id,
            policy.cap_window_ms,
            now,
        )
        .await?;
        let situation = Situation {
            kind,
            consent,
            recent: &facts.recent,
            utc_offset_min: facts.utc_offset_min,
            last_sales_contact: facts.last_sales_contact,
            now,
        };
        match decide(&policy, &situation) {
            Decision::Send => {}
            Decision::Suppress { reason } => {
                move_to(db, &m, "suppressed", Some(reason.as_str()), None, now).await?;
                return Ok(false);
            }
            Decision::Defer { until, reason } => {
                move_to(db, &m, "deferred", Some(reason.as_str()), Some(until), now).await?;
                return Ok(false);
            }
        }
    }

    let template = match (&m.template_id, m.template_version) {
        (Some(id), Some(v)) => match load_template(db, &m.workspace, id, v).await? {
            Some(t) => Some(t),
            None => {
                fail(db, &m, "template_missing", now).await?;
                return Ok(false);
            }
        },
        _ => None,
    };
    let winner = match (&template, m.template_version) {
        (Some(t), Some(v)) => messages::ab_winner(db, &m.workspace, &t.id, v).await?,
        _ => None,
    };
    let variant = template
        .as_ref()
        .map(|t| compose::variant(t, &m.contact_id, winner.as_deref()));
    // The claim: from here this call owns the send.
    let claimed = messages::transition(
        db,
        &Transition {
            id: &m.id,
            from: OPEN_STATES,
            to: "sending",
            reason: None,
            next_attempt_at: None,
            provider_id: None,
            variant: variant.as_deref(),
            attempt: true,
            now,
        },
    )
    .await?;
    if !claimed {
        return Ok(false);
    }
    let attempt = m.attempts + 1;
    let request = match build(
        env,
        db,
        cfg,
        &m,
        route,
        template.as_ref(),
        variant.as_deref(),
    )
    .await?
    {
        Ok(r) => r,
        Err(reason) => {
            settle(db, &m.id, "failed", Some(&reason), None, None, now).await?;
            return Ok(false);
        }
    };
    let (provider, request) = request;
    let answer = outbound::perform(&request).await;
    match providers::classify(&provider, answer.status, &answer.headers, &answer.body) {
        Outcome::Sent { provider_id } => {
            settle(db, &m.id, "sent", None, None, provider_id.as_deref(), now).await?;
            Ok(true)
        }
        Outcome::Retry {
            reason,
            retry_after_s,
        } if attempt < MAX_ATTEMPTS => {
            let jitter = f64::from(u32::from_le_bytes(
                kindling_edge::nonce()[..4].try_into().unwrap_or([0; 4]),
            )) / f64::from(u32::MAX);
            let wait = providers::backoff_ms(attempt as u32, jitter.min(0.999), retry_after_s);
            let at = now.plus(wait);
            settle(db, &m.id, "retry", Some(&reason), Some(at), None, now).await?;
            requeue(env, &m.id, at, attempt, wait).await;
            Ok(false)
        }
        Outcome::Retry { reason, .. } => {
            let reason = format!("gave up after {attempt} tries: {reason}");
            settle(db, &m.id, "dead", Some(&reason), None, None, now).await?;
            Ok(false)
        }
        Outcome::Fail { reason } => {
            settle(db, &m.id, "failed", Some(&reason), None, None, now).await?;
            if reason.contains("invalid_number") {
                mark_point(db, &m, "phone_status", "invalid").await?;
            }
            Ok(false)
        }
    }
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

/// Builds the provider request for the message, or the reason it cannot be built.
async fn build(
    env: &Env,
    db: &D1,
    cfg: &Config,
    m: &Message,
    route: Route,
    template: Option<&Template>,
    variant: Option<&str>,
) -> Core<std::result::Result<(Provider, providers::HttpRequest), String>> {
    if route == Route::Webhook {
        let Some(hook) = &cfg.webhook else {
            return Ok(Err("webhook_not_configured".into()));
        };
        let contact = contacts::get(db, &m.workspace, &m.contact_id).await?;
        let tags = tags::of_contact(db, &m.workspace, &m.contact_id).await?;
        // Ids and marketing facts only: personal data stays in Kindling.
        let payload = serde_json::json!({
            "message_id": m.id,
            "event": m.variables.get("event").and_then(|e| e.as_str()).unwrap_or("contact.sync"),
            "contact": contact.map(|c| serde_json::json!({
                "id": c.id, "lead_status": c.lead_status, "lifecycle_stage": c.lifecycle_stage,
                "score": c.score, "attributes": c.attributes,
            })),
            "tags": tags.iter().map(|t| (t.tag.clone(), t.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
            "variables": m.variables,
        });
        let body = payload.to_string().into_bytes();
        let event = payload["event"]
            .as_str()
            .unwrap_or("contact.sync")
            .to_string();
        let req = providers::webhook(hook, &m.id, &event, &body, kindling_edge::now().0 / 1000);
        return Ok(Ok((Provider::Webhook, req)));
    }
    let Route::Person(channel) = route else {
        return Ok(Err("unknown_channel".into()));
    };
    let Some(template) = template else {
        return Ok(Err("template_required".into()));
    };
    let Some(mut contact) = contacts::get(db, &m.workspace, &m.contact_id).await? else {
        return Ok(Err("contact_missing".into()));
    };
    let keys = kindling_edge::pii_keys(env);
    contact.reveal(keys.as_ref(), true);
    let opened = |v: &Option<String>| v.clone().filter(|x| x != "[sealed]");
    let (email, phone, name) = (
        opened(&contact.email),
        opened(&contact.phone),
        opened(&contact.name),
    );
    let attributes = contact.attributes.as_object().cloned().unwrap_or_default();
    let tag_list: Vec<(String, String)> = tags::of_contact(db, &m.workspace, &m.contact_id)
        .await?
        .into_iter()
        .map(|t| (t.tag, t.value))
        .collect();
    let recipient = Recipient {
        contact_id: &m.contact_id,
        email: email.as_deref(),
        phone: phone.as_deref(),
        name: name.as_deref(),
        attributes: &attributes,
        tags: &tag_list,
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
        variant.unwrap_or("a"),
        &links,
        &m.id,
        &m.contact_id,
    );
    let text = rendered.text.clone().unwrap_or_default();
    match channel {
        Channel::Email => {
            let (Some(cfg_email), Some(to)) = (&cfg.email, email.as_deref()) else {
                return Ok(Err(if cfg.email.is_none() {
                    "email_not_configured"
                } else {
                    "no_email_address"
                }
                .into()));
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
            Ok(Ok((Provider::SendGrid, req)))
        }
        Channel::Sms => {
            let (Some(sms), Some(to)) = (&cfg.sms, phone.as_deref()) else {
                return Ok(Err(if cfg.sms.is_none() {
                    "sms_not_configured"
                } else {
                    "no_phone_number"
                }
                .into()));
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
            Ok(Ok((
                Provider::Twilio,
                providers::twilio(&sms, &m.id, to, &text),
            )))
        }
        Channel::Wecom => {
            let Some((app, corp, secret)) = &cfg.wecom else {
                return Ok(Err("wecom_not_configured".into()));
            };
            let Some(user) = attributes.get("wecom_user_id").and_then(|u| u.as_str()) else {
                return Ok(Err("no_wecom_user".into()));
            };
            let Some(token) = wecom_token(app, corp, secret).await else {
                return Ok(Err("wecom_token_unavailable".into()));
            };
            Ok(Ok((
                Provider::WecomApp,
                providers::wecom_app(app, &token, user, &text),
            )))
        }
    }
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

async fn move_to(
    db: &D1,
    m: &Message,
    to: &str,
    reason: Option<&str>,
    next: Option<Millis>,
    now: Millis,
) -> Core<bool> {
    messages::transition(
        db,
        &Transition {
            id: &m.id,
            from: OPEN_STATES,
            to,
            reason,
            next_attempt_at: next,
            provider_id: None,
            variant: None,
            attempt: false,
            now,
        },
    )
    .await
}

async fn fail(db: &D1, m: &Message, reason: &str, now: Millis) -> Core<bool> {
    move_to(db, m, "failed", Some(reason), None, now).await
}

/// The outcome of a claimed send (only from `sending`).
async fn settle(
    db: &D1,
    id: &str,
    to: &str,
    reason: Option<&str>,
    next: Option<Millis>,
    provider_id: Option<&str>,
    now: Millis,
) -> Core<bool> {
    messages::transition(
        db,
        &Transition {
            id,
            from: "('sending')",
            to,
            reason,
            next_attempt_at: next,
            provider_id,
            variant: None,
            attempt: false,
            now,
        },
    )
    .await
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

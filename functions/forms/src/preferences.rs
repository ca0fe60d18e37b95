//! `/u/{token}`: the preference page behind every unsubscribe link. `GET` shows it; `POST`
//! with `List-Unsubscribe=One-Click` (RFC 8058) withdraws consent at once, and the page's own
//! form saves per-channel choices. Changes go to D1 directly, in one batch through the same
//! ingest statements as every event, so they hold before the next engine tick.

use kindling::consent::{preference_event, Channel, PreferenceChange};
use kindling::event::{IngestMessage, DEFAULT_WORKSPACE};
use kindling::form::body;
use kindling::form::lang::Lang;
use kindling::link::verify_preferences;
use kindling::pii::PiiKind;
use kindling::preferences::{self, Notice};
use kindling::store::contacts::{self, ContactView};
use kindling::store::{consent, ingest, Db};
use kindling_edge::d1::D1;
use kindling_edge::http;
use worker::*;

/// Largest body a preference post may have.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Merges can chain (a contact merged into one that was merged later); follow a few hops.
const MAX_MERGE_HOPS: usize = 5;

pub async fn show(req: &Request, env: &Env, token: &str) -> Result<Response> {
    let lang = Lang::negotiate(header(req, "Accept-Language").as_deref());
    let db = D1(env.d1("DB")?);
    let Some(contact) = contact_of(env, &db, token).await? else {
        return invalid_link(lang);
    };
    page(env, &db, &contact, token, lang, Notice::None).await
}

pub async fn change(mut req: Request, env: &Env, token: &str) -> Result<Response> {
    let now = kindling_edge::now();
    let lang = Lang::negotiate(header(&req, "Accept-Language").as_deref());
    let db = D1(env.d1("DB")?);
    let Some(contact) = contact_of(env, &db, token).await? else {
        return invalid_link(lang);
    };
    let Ok(bytes) = crate::body(&mut req, MAX_BODY_BYTES).await else {
        return http::refusal(
            413,
            "too_large",
            "a preference change is at most 16 KB",
            "body",
        );
    };
    // Mail providers send the one-click POST as a form; accept a missing type as one too.
    let content_type =
        header(&req, "Content-Type").unwrap_or_else(|| "application/x-www-form-urlencoded".into());
    let fields = match body::parse(Some(&content_type), &bytes) {
        Ok(f) => f,
        Err(e) => return http::refusal(e.status(), "invalid_body", &e.to_string(), "body"),
    };
    let Some(request) = preferences::request(&fields) else {
        return http::refusal(
            400,
            "invalid_request",
            "send List-Unsubscribe=One-Click, or the preference form",
            "body",
        );
    };
    let current = consent::current(&db, DEFAULT_WORKSPACE, &contact.id, now)
        .await
        .map_err(|e| Error::RustError(e.to_string()))?;
    let (changes, notice) = match request {
        preferences::Request::OneClick => {
            let only = match query(&req, "channel") {
                None => None,
                Some(c) => match Channel::parse(&c) {
                    Some(c) => Some(c),
                    None => {
                        return http::refusal(
                            400,
                            "invalid_request",
                            "channel is email, sms or wecom (or absent: every channel)",
                            "channel",
                        )
                    }
                },
            };
            let changes = current
                .iter()
                .filter(|(c, state)| only.is_none_or(|o| o == *c) && *state != Some(false))
                .map(|(c, _)| (*c, false))
                .collect();
            (changes, Notice::Unsubscribed)
        }
        preferences::Request::Save(ticked) => {
            (preferences::changes(&current, &ticked), Notice::Saved)
        }
    };
    if !changes.is_empty() {
        let keys = kindling_edge::pii_keys(env);
        let ip_hash = match (&keys, crate::client_ip(&req)) {
            (Some(k), Some(ip)) => Some(k.index(PiiKind::Ip, &ip)),
            _ => None,
        };
        let event_id = kindling_edge::random_id("u_");
        let source = match notice {
            Notice::Unsubscribed => "unsubscribe",
            _ => "preferences",
        };
        let user_agent = header(&req, "User-Agent");
        let event = preference_event(PreferenceChange {
            workspace: DEFAULT_WORKSPACE,
            contact_id: &contact.id,
            event_id: &event_id,
            source,
            changes,
            ip_hash,
            user_agent: user_agent.as_deref(),
            now,
        });
        let stmts = ingest::batch_statements(&[IngestMessage::Event(event)], None);
        if let Err(e) = db.batch(&stmts).await {
            return http::error(&e);
        }
    }
    page(env, &db, &contact, token, lang, notice).await
}

/// The contact a token names, following merges to the record that holds the person now.
async fn contact_of(env: &Env, db: &D1, token: &str) -> Result<Option<ContactView>> {
    let key = env
        .secret("KINDLING_LINK_KEY")
        .map(|s| s.to_string())
        .unwrap_or_default();
    let Some(mut id) = verify_preferences(token, key.as_bytes()) else {
        return Ok(None);
    };
    for _ in 0..MAX_MERGE_HOPS {
        let found = contacts::get(db, DEFAULT_WORKSPACE, &id)
            .await
            .map_err(|e| Error::RustError(e.to_string()))?;
        match found {
            Some(c) => match c.merged_into.clone() {
                Some(next) => id = next,
                None => return Ok(Some(c)),
            },
            None => return Ok(None),
        }
    }
    Ok(None)
}

async fn page(
    env: &Env,
    db: &D1,
    contact: &ContactView,
    token: &str,
    lang: Lang,
    notice: Notice,
) -> Result<Response> {
    let now = kindling_edge::now();
    let states = consent::current(db, DEFAULT_WORKSPACE, &contact.id, now)
        .await
        .map_err(|e| Error::RustError(e.to_string()))?;
    let mut shown = contact.clone();
    shown.reveal(kindling_edge::pii_keys(env).as_ref(), false);
    let who = shown.email.or(shown.phone).unwrap_or_default();
    let html = preferences::page(lang, &who, &states, &format!("/u/{token}"), notice);
    html_response(200, html)
}

fn invalid_link(lang: Lang) -> Result<Response> {
    let text = match lang {
        Lang::ZhCn => "此链接无效或已过期。",
        Lang::En => "This link is not valid.",
    };
    html_response(
        404,
        format!(
            "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\"><p>{text}</p></html>",
            lang.tag()
        ),
    )
}

fn html_response(status: u16, html: String) -> Result<Response> {
    let h = Headers::new();
    h.set("Content-Type", "text/html; charset=utf-8")?;
    h.set("Cache-Control", "no-store")?;
    // The page runs no script, loads nothing and posts only to itself.
    h.set(
        "Content-Security-Policy",
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    )?;
    h.set("Referrer-Policy", "no-referrer")?;
    Ok(Response::ok(html)?.with_status(status).with_headers(h))
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

fn query(req: &Request, name: &str) -> Option<String> {
    let url = req.url().ok()?;
    let found = url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    found
}

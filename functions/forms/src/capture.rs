//! `POST /f/{form}`: a landing-page form submission. Validated and sealed here, then put on the
//! `events` queue — no D1 work in the request path. Browsers posting an HTML form get 303 to
//! the success page (or back to the form with error codes); `fetch` clients get JSON.

use kindling::event::{DropReason, IngestMessage, DEFAULT_WORKSPACE};
use kindling::form::body::{self, MAX_BODY_BYTES};
use kindling::form::lang::Lang;
use kindling::form::submit::{self, BotSign, FieldError, Outcome, Provenance};
use kindling::form::{is_valid_form_id, kv_key, FormDefinition};
use kindling::pii::PiiKind;
use kindling_edge::http;
use worker::*;

/// Rate-limit windows are a minute at most; a refused client is told to come back after one.
const RETRY_AFTER_S: &str = "60";

struct Ctx {
    origin: Option<String>,
    /// The form allows the origin, so the answer may carry CORS headers for it.
    cors: bool,
}

pub async fn preflight(req: &Request, env: &Env, form_id: &str) -> Result<Response> {
    let origin = header(req, "Origin");
    let form = find(env, form_id).await;
    let allowed = match (&form, &origin) {
        (Some(f), Some(o)) => f.allows_origin(o),
        _ => false,
    };
    let resp = Response::empty()?.with_status(204);
    if !allowed {
        return Ok(resp);
    }
    let h = Headers::new();
    h.set(
        "Access-Control-Allow-Origin",
        origin.as_deref().unwrap_or_default(),
    )?;
    h.set("Access-Control-Allow-Methods", "POST")?;
    h.set("Access-Control-Allow-Headers", "Content-Type, Accept")?;
    h.set("Access-Control-Max-Age", "86400")?;
    h.set("Vary", "Origin")?;
    Ok(resp.with_headers(h))
}

pub async fn handle(mut req: Request, env: &Env, form_id: &str) -> Result<Response> {
    let now = kindling_edge::now();
    let origin = header(&req, "Origin").filter(|o| o != "null");
    let Some(form) = find(env, form_id).await else {
        return http::refusal(404, "not_found", &format!("no form {form_id}"), "form");
    };
    let ctx = Ctx {
        cors: origin.as_deref().is_some_and(|o| form.allows_origin(o)),
        origin: origin.clone(),
    };
    if origin.is_some() && !ctx.cors {
        return http::refusal(
            403,
            "origin_not_allowed",
            "this form does not accept posts from this origin",
            "origin",
        );
    }
    let keys = kindling_edge::pii_keys(env);
    let ip = crate::client_ip(&req);
    let ip_hash = match (&keys, &ip) {
        (Some(k), Some(ip)) => Some(k.index(PiiKind::Ip, ip)),
        _ => None,
    };
    if !within_limits(env, ip_hash.as_deref(), form_id).await {
        let r = http::json_with(
            429,
            &kindling::error::ErrorBody::new(
                "rate_limited",
                "too many submissions; try again in a minute",
            ),
            &[("Retry-After", RETRY_AFTER_S)],
        )?;
        return with_cors(r, &ctx);
    }
    let content_type = header(&req, "Content-Type");
    let wants_json = content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
        || header(&req, "Accept")
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let Ok(bytes) = crate::body(&mut req, MAX_BODY_BYTES).await else {
        let r = http::refusal(413, "too_large", "a submission is at most 64 KB", "body")?;
        return with_cors(r, &ctx);
    };
    let fields = match body::parse(content_type.as_deref(), &bytes) {
        Ok(f) => f,
        Err(e) => {
            let r = http::refusal(e.status(), "invalid_body", &e.to_string(), "body")?;
            return with_cors(r, &ctx);
        }
    };
    let lang = Lang::negotiate(header(&req, "Accept-Language").as_deref());
    let accepted = match submit::validate(&form, &fields, lang, now) {
        Outcome::Accepted(a) => a,
        Outcome::Invalid(errors) => return invalid(&req, &form, &ctx, wants_json, lang, &errors),
        Outcome::Bot(sign) => {
            let reason = match sign {
                BotSign::Honeypot => DropReason::FormHoneypot,
                BotSign::TooFast => DropReason::FormTooFast,
            };
            let dropped = IngestMessage::Dropped {
                source: "form".into(),
                reason,
                at: now,
            };
            let _ = kindling_edge::queue::send(env, "EVENTS", &dropped).await;
            // A bot learns nothing from the answer: the same shape, an id like a real one.
            return success(&form, &ctx, wants_json, &kindling_edge::random_id("f_"));
        }
    };
    let Some(keys) = keys else {
        return http::error(&kindling::Error::NotConfigured(
            "KINDLING_PII_KEY is not configured: personal data cannot be accepted".into(),
        ));
    };
    let event_id = kindling_edge::random_id("f_");
    let user_agent = header(&req, "User-Agent");
    let event = match submit::to_event(
        &form,
        accepted,
        &keys,
        &mut kindling_edge::nonce,
        Provenance {
            event_id: &event_id,
            ip_hash,
            user_agent: user_agent.as_deref(),
            now,
            workspace: DEFAULT_WORKSPACE,
        },
    ) {
        Ok(e) => e,
        Err(e) => return invalid(&req, &form, &ctx, wants_json, lang, &[e]),
    };
    if let Err(e) = kindling_edge::queue::send(env, "EVENTS", &IngestMessage::Event(event)).await {
        console_error!("form {form_id}: queue send failed: {e}");
        let r = http::json_with(
            503,
            &kindling::error::ErrorBody::new(
                "unavailable",
                "the submission could not be recorded; please send it again",
            ),
            &[("Retry-After", "5")],
        )?;
        return with_cors(r, &ctx);
    }
    success(&form, &ctx, wants_json, &event_id)
}

async fn find(env: &Env, form_id: &str) -> Option<FormDefinition> {
    if !is_valid_form_id(form_id) {
        return None;
    }
    kindling_edge::config::lookup(env, &kv_key(form_id), kindling_edge::now()).await
}

/// Per client (by hashed IP) and per form. A missing binding is logged and not enforced: a
/// misconfigured limiter must not lose leads.
async fn within_limits(env: &Env, ip_hash: Option<&str>, form_id: &str) -> bool {
    let checks = [
        ("PER_IP", ip_hash.map(|h| format!("ip:{h}"))),
        ("PER_FORM", Some(format!("form:{form_id}"))),
    ];
    for (binding, key) in checks {
        let Some(key) = key else { continue };
        match env.rate_limiter(binding) {
            Ok(limiter) => match limiter.limit(key).await {
                Ok(outcome) if !outcome.success => return false,
                Ok(_) => {}
                Err(e) => console_error!("rate limiter {binding}: {e}"),
            },
            Err(e) => console_error!("rate limiter {binding} missing: {e}"),
        }
    }
    true
}

fn success(form: &FormDefinition, ctx: &Ctx, wants_json: bool, id: &str) -> Result<Response> {
    let location = form.success_location(ctx.origin.as_deref());
    match location {
        Some(to) if !wants_json => see_other(&to),
        _ => {
            let r = http::json(
                200,
                &serde_json::json!({ "status": "accepted", "id": id, "redirect": location }),
            )?;
            with_cors(r, ctx)
        }
    }
}

/// 422 with per-field errors for `fetch`; for an HTML form, back to the page it came from with
/// the error codes in the query (codes only: nothing the visitor typed is reflected).
fn invalid(
    req: &Request,
    form: &FormDefinition,
    ctx: &Ctx,
    wants_json: bool,
    lang: Lang,
    errors: &[FieldError],
) -> Result<Response> {
    let back = header(req, "Referer").filter(|r| {
        form.allowed_origins
            .iter()
            .any(|o| r.starts_with(&format!("{o}/")) || r == o)
    });
    if let (false, Some(back)) = (wants_json, back) {
        let base = back.split(['?', '#']).next().unwrap_or(&back);
        let codes = errors
            .iter()
            .map(|e| format!("{}:{}", e.field, e.code))
            .collect::<Vec<_>>()
            .join(",");
        return see_other(&format!("{base}?kf_errors={codes}"));
    }
    let message = match lang {
        Lang::ZhCn => "提交的内容有误，请检查标出的字段",
        Lang::En => "some fields need attention",
    };
    let r = http::json(
        422,
        &serde_json::json!({
            "error": "invalid_submission",
            "message": message,
            "lang": lang.tag(),
            "fields": errors,
        }),
    )?;
    with_cors(r, ctx)
}

fn see_other(location: &str) -> Result<Response> {
    // Headers of a built redirect are immutable in workerd: build the 303 by hand.
    let h = Headers::new();
    h.set("Location", location)?;
    h.set("Cache-Control", "no-store")?;
    Ok(Response::empty()?.with_status(303).with_headers(h))
}

fn with_cors(resp: Response, ctx: &Ctx) -> Result<Response> {
    http::with_cors(resp, ctx.origin.as_deref().filter(|_| ctx.cors))
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

//! `/v1/messages`: one-off sends through the same outbox and decision as journeys, and the
//! outbox itself — every message with its state and, when it was not sent, the reason.

use crate::{query_param, ApiContext};
use kindling::delivery::decision::Kind;
use kindling::delivery::SendOrder;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::identity::{is_valid_contact_id, PERSONAL_TRAITS};
use kindling::store::contacts;
use kindling::store::messages::{self, Filter, NewMessage, Route};
use kindling::Error;
use kindling_edge::http;
use serde_json::json;
use worker::{Method, Response, Result};

pub async fn route(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list(ctx).await),
        (Method::Post, []) => http::respond(post(ctx).await),
        (Method::Get, [id]) => http::respond(show(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get, Method::Post]),
        (_, [_]) => http::method_not_allowed(&[Method::Get]),
        _ => http::not_found(),
    }
}

/// `POST /v1/messages` `{contact_id, channel, template?, kind, variables?, idempotency_key?}`.
async fn post(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let now = kindling_edge::now();
    let body = crate::json_body(ctx, 16 * 1024).await?;
    let text = |k: &str| body[k].as_str().map(str::trim);
    let contact_id = text("contact_id")
        .filter(|c| is_valid_contact_id(c))
        .ok_or_else(|| {
            Error::invalid(
                "contact_id",
                "contact ids look like c_ followed by 24 hex digits",
            )
        })?;
    let route = text("channel")
        .and_then(Route::parse)
        .ok_or_else(|| Error::invalid("channel", "channel is email, sms, wecom or webhook"))?;
    let kind = match text("kind") {
        Some("marketing") => Kind::Marketing,
        Some("transactional") => Kind::Transactional,
        _ => return Err(Error::invalid("kind", "kind is marketing or transactional")),
    };
    let variables = match &body["variables"] {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(o) => o.clone(),
        _ => return Err(Error::invalid("variables", "variables is an object")),
    };
    for (k, v) in &variables {
        if PERSONAL_TRAITS.contains(&k.as_str()) {
            return Err(Error::invalid(
                format!("variables.{k}"),
                "personal data comes from the contact, never from a message's variables",
            ));
        }
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            return Err(Error::invalid(
                format!("variables.{k}"),
                "variables are strings, numbers or booleans",
            ));
        }
    }
    let template = match (route, text("template")) {
        (Route::Webhook, None) => None,
        (_, None) => return Err(Error::invalid("template", "name the template to send")),
        (_, Some(id)) => {
            let t = crate::templates::current(ctx, id)
                .await
                .map_err(|e| match e {
                    Error::NotFound(_) => Error::invalid("template", format!("no template {id}")),
                    e => e,
                })?;
            if t.channel.as_str() != route.as_str() {
                return Err(Error::invalid(
                    "template",
                    format!(
                        "template {id} is for {}, not {}",
                        t.channel.as_str(),
                        route.as_str()
                    ),
                ));
            }
            let unknown: Vec<&String> = t
                .variables
                .iter()
                .filter(|v| !variables.contains_key(*v))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::invalid(
                    "variables",
                    format!("template {id} needs the variables {unknown:?}"),
                ));
            }
            Some((t.id.clone(), i64::try_from(t.version).unwrap_or(i64::MAX)))
        }
    };
    let contact = contacts::get(&ctx.db, DEFAULT_WORKSPACE, contact_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("contact {contact_id}")))?;
    // A merged record's messages go to the person's surviving contact.
    let contact_id = contact.merged_into.unwrap_or(contact.id);
    let id = kindling_edge::random_id("m_");
    let key = text("idempotency_key")
        .filter(|k| (1..=128).contains(&k.len()))
        .map_or_else(|| id.clone(), |k| format!("api:{k}"));
    let (id, created) = messages::enqueue(
        &ctx.db,
        &NewMessage {
            workspace: DEFAULT_WORKSPACE,
            id: &id,
            idempotency_key: &key,
            contact_id: &contact_id,
            route,
            kind,
            template: template.as_ref().map(|(t, v)| (t.as_str(), *v)),
            journey_id: None,
            variables: &variables,
            now,
        },
    )
    .await?;
    if created {
        kindling_edge::queue::send(
            &ctx.env,
            "SENDS",
            &SendOrder {
                id: id.clone(),
                at: now,
                attempt: 0,
            },
        )
        .await
        .map_err(|e| Error::Store(format!("queue send: {e}")))?;
    }
    Ok(http::json(202, &json!({ "id": id, "created": created })))
}

async fn list(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let contact = query_param(&ctx.req, "contact_id").or_else(|| query_param(&ctx.req, "contact"));
    let state = query_param(&ctx.req, "state");
    let template = query_param(&ctx.req, "template");
    let limit = query_param(&ctx.req, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let found = messages::list(
        &ctx.db,
        DEFAULT_WORKSPACE,
        &Filter {
            contact_id: contact.as_deref(),
            state: state.as_deref(),
            template_id: template.as_deref(),
            limit,
        },
    )
    .await?;
    Ok(http::json(200, &json!({ "messages": found })))
}

async fn show(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    let m = messages::get(&ctx.db, id)
        .await?
        .filter(|m| m.workspace == DEFAULT_WORKSPACE)
        .ok_or_else(|| Error::NotFound(format!("message {id}")))?;
    let history = messages::history(&ctx.db, id).await?;
    let mut body = serde_json::to_value(&m).map_err(|e| Error::Store(e.to_string()))?;
    body["history"] = history.into();
    Ok(http::json(200, &body))
}

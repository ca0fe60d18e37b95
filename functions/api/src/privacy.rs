//! Accountability routes: scoped tokens (`/v1/tokens`), the audit log (`/v1/audit`) and the
//! monthly cleaning report (`/v1/cleaning`).

use crate::{query_param, ApiContext};
use kindling::auth::Scope;
use kindling::event::DEFAULT_WORKSPACE;
use kindling::store::privacy::{self, Audit};
use kindling::store::{cleaning, Db};
use kindling::Error;
use kindling_edge::http;
use serde_json::json;
use worker::{Method, Response, Result};

pub async fn tokens(ctx: &ApiContext, segs: &[&str]) -> Result<Response> {
    match (ctx.req.method(), segs) {
        (Method::Get, []) => http::respond(list_tokens(ctx).await),
        (Method::Post, []) => http::respond(create_token(ctx).await),
        (Method::Delete, [id]) => http::respond(revoke_token(ctx, id).await),
        (_, []) => http::method_not_allowed(&[Method::Get, Method::Post]),
        (_, [_]) => http::method_not_allowed(&[Method::Delete]),
        _ => http::not_found(),
    }
}

async fn list_tokens(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let all = privacy::list_tokens(&ctx.db, DEFAULT_WORKSPACE).await?;
    Ok(http::json(200, &json!({ "tokens": all })))
}

/// `POST /v1/tokens` with `{"name": .., "scopes": [..]}`. A caller grants only scopes it holds.
async fn create_token(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let body = crate::json_body(ctx, 4 * 1024).await?;
    let name = body["name"].as_str().unwrap_or_default();
    let mut scopes = Vec::new();
    for (i, s) in body["scopes"].as_array().into_iter().flatten().enumerate() {
        let scope = s.as_str().and_then(Scope::parse).ok_or_else(|| {
            Error::invalid(
                format!("scopes[{i}]"),
                "scopes are read, write, pii:read and pii:erase",
            )
        })?;
        ctx.principal.require(scope)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let id = kindling_edge::random_id("");
    let secret = kindling_edge::random_id("");
    let now = kindling_edge::now();
    let created = privacy::create_token(
        &ctx.db,
        DEFAULT_WORKSPACE,
        name,
        scopes,
        (&id[..16], &secret),
        now,
    )
    .await?;
    audit(
        ctx,
        "token.created",
        None,
        json!({ "token": created.id, "scopes": created.scopes }),
    )
    .await?;
    Ok(http::json(201, &created))
}

async fn revoke_token(ctx: &ApiContext, id: &str) -> std::result::Result<Result<Response>, Error> {
    if !privacy::revoke_token(&ctx.db, DEFAULT_WORKSPACE, id, kindling_edge::now()).await? {
        return Err(Error::NotFound(format!("active token {id}")));
    }
    audit(ctx, "token.revoked", None, json!({ "token": id })).await?;
    Ok(http::json(200, &json!({ "revoked": id })))
}

/// `GET /v1/audit?contact=<id>&limit=`: newest first.
pub async fn audit_route(ctx: &ApiContext) -> std::result::Result<Result<Response>, Error> {
    let contact = query_param(&ctx.req, "contact");
    let limit = query_param(&ctx.req, "limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let entries = privacy::audit_log(&ctx.db, DEFAULT_WORKSPACE, contact.as_deref(), limit).await?;
    Ok(http::json(200, &json!({ "entries": entries })))
}

pub async fn audit_log(ctx: &ApiContext) -> Result<Response> {
    match ctx.req.method() {
        Method::Get => http::respond(audit_route(ctx).await),
        _ => http::method_not_allowed(&[Method::Get]),
    }
}

/// `GET /v1/cleaning`: what each month's data cleaning did.
pub async fn cleaning(ctx: &ApiContext) -> Result<Response> {
    if ctx.req.method() != Method::Get {
        return http::method_not_allowed(&[Method::Get]);
    }
    http::respond(
        async {
            let runs = cleaning::runs(&ctx.db, DEFAULT_WORKSPACE).await?;
            Ok(http::json(200, &json!({ "runs": runs })))
        }
        .await,
    )
}

/// Writes one audit entry for the calling principal.
pub async fn audit(
    ctx: &ApiContext,
    action: &str,
    contact_id: Option<&str>,
    detail: serde_json::Value,
) -> std::result::Result<(), Error> {
    ctx.db
        .execute(&privacy::audit_statement(entry(
            ctx, action, contact_id, detail,
        )))
        .await?;
    Ok(())
}

/// An audit entry for the calling principal, to be written with other statements.
pub fn entry<'a>(
    ctx: &'a ApiContext,
    action: &'a str,
    contact_id: Option<&'a str>,
    detail: serde_json::Value,
) -> Audit<'a> {
    Audit {
        workspace: DEFAULT_WORKSPACE,
        id: kindling_edge::random_id("au_"),
        at: kindling_edge::now(),
        actor: &ctx.principal.actor,
        action,
        contact_id,
        detail,
    }
}

//! Email opens (`/o/{token}.gif`) and tracked clicks (`/c/{token}`). Tokens are signed by the
//! sender; a forged one still gets the GIF, or a redirect to the home page, and is counted.
//! Opens fetched by mail-provider image proxies and clicks by link scanners are recorded as
//! machine opens / clicks (`machine: true`), reported apart from people's.

use crate::client::Client;
use crate::pixel::{dropped, gif, record};
use kindling::bot::Traffic;
use kindling::event::{DropReason, Event, IngestMessage, Subject, DEFAULT_WORKSPACE};
use kindling::link::{verify, LinkClaims};
use kindling_edge::http;
use serde_json::{Map, Value};
use worker::*;

fn link_key(env: &Env) -> Vec<u8> {
    env.secret("KINDLING_LINK_KEY")
        .map(|s| s.to_string().into_bytes())
        .unwrap_or_default()
}

fn event(name: &str, claims: &LinkClaims, client: &Client) -> IngestMessage {
    let now = kindling_edge::now();
    let mut properties = Map::new();
    properties.insert("message_id".into(), claims.m.clone().into());
    if let Some(u) = &claims.u {
        properties.insert("url".into(), u.clone().into());
    }
    properties.insert(
        "machine".into(),
        Value::Bool(client.traffic != Traffic::Human),
    );
    properties.insert("traffic".into(), client.traffic.as_str().into());
    IngestMessage::Event(Event {
        id: kindling_edge::random_id("evt_"),
        workspace: DEFAULT_WORKSPACE.into(),
        site: None,
        subject: Subject::Contact(claims.c.clone().into()),
        session_id: None,
        name: name.into(),
        properties,
        claims: Default::default(),
        consents: Vec::new(),
        occurred_at: now,
        received_at: now,
    })
}

pub fn open(req: &Request, env: &Env, ctx: &Context, token: &str) -> Result<Response> {
    let client = Client::of(req);
    let token = token.strip_suffix(".gif").unwrap_or(token);
    let message = match verify(token, &link_key(env)) {
        Some(claims) if claims.u.is_none() => event("email_opened", &claims, &client),
        _ => dropped("open", DropReason::InvalidToken, kindling_edge::now()),
    };
    record(env, ctx, message);
    gif()
}

pub fn click(req: &Request, env: &Env, ctx: &Context, token: &str) -> Result<Response> {
    let client = Client::of(req);
    match verify(token, &link_key(env)) {
        Some(claims) => match claims.u.as_deref().and_then(|u| Url::parse(u).ok()) {
            Some(url) => {
                record(env, ctx, event("email_clicked", &claims, &client));
                // Built by hand: a platform redirect's headers are immutable.
                let headers = Headers::new();
                headers.set("Location", url.as_str())?;
                headers.set("Cache-Control", "no-store")?;
                headers.set("Referrer-Policy", "no-referrer")?;
                Ok(Response::empty()?.with_status(302).with_headers(headers))
            }
            None => forged(env, ctx),
        },
        None => forged(env, ctx),
    }
}

/// Never a URL from the request: the configured home page, or a plain 404.
fn forged(env: &Env, ctx: &Context) -> Result<Response> {
    record(
        env,
        ctx,
        dropped("click", DropReason::InvalidToken, kindling_edge::now()),
    );
    let home = env
        .var("KINDLING_HOME_URL")
        .ok()
        .and_then(|v| Url::parse(&v.to_string()).ok());
    match home {
        Some(url) => Response::redirect_with_status(url, 302),
        None => http::not_found(),
    }
}

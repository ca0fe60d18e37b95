//! JSON answers in Kindling's one error shape, and the plumbing every router needs.

use kindling::error::ErrorBody;
use kindling::Error;
use serde::Serialize;
use worker::{Headers, Method, Response};

/// A JSON answer with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> worker::Result<Response> {
    json_with(status, body, &[])
}

/// A JSON answer with extra headers.
pub fn json_with<T: Serialize>(
    status: u16,
    body: &T,
    extra: &[(&str, &str)],
) -> worker::Result<Response> {
    let headers = Headers::new();
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    headers.set("Content-Type", "application/json; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    let text = serde_json::to_string(body).map_err(|e| worker::Error::RustError(e.to_string()))?;
    Ok(Response::ok(text)?
        .with_status(status)
        .with_headers(headers))
}

/// The answer for a core error. Internal errors are logged with an id the client also sees,
/// so a report can be matched to the log line without leaking internals.
pub fn error(err: &Error) -> worker::Result<Response> {
    let mut body = err.body();
    if err.status() >= 500 {
        let id = crate::random_id("err_");
        worker::console_error!("{id}: {err}");
        body.message = format!("{} ({id})", body.message);
    }
    json(err.status(), &body)
}

/// A JSON error that is not a core `Error` (413, 415, 403 from the edge), naming the field.
pub fn refusal(status: u16, error: &str, message: &str, field: &str) -> worker::Result<Response> {
    json(
        status,
        &ErrorBody {
            error: error.into(),
            message: message.into(),
            field: Some(field.into()),
        },
    )
}

pub fn not_found() -> worker::Result<Response> {
    json(404, &ErrorBody::new("not_found", "no such route"))
}

/// 405 with the `Allow` header listing what the route accepts.
pub fn method_not_allowed(allowed: &[Method]) -> worker::Result<Response> {
    let list = allowed
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    json_with(
        405,
        &ErrorBody::new("method_not_allowed", &format!("this route accepts {list}")),
        &[("Allow", &list)],
    )
}

/// Turns a handler's result into an answer: core errors become their JSON error, platform
/// errors a logged 500.
pub fn respond(result: Result<worker::Result<Response>, Error>) -> worker::Result<Response> {
    match result {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(platform)) => error(&Error::Store(platform.to_string())),
        Err(core) => error(&core),
    }
}

/// Adds CORS headers for `origin` (already judged allowed by the caller). Every answer carries
/// them, errors included: a `fetch` sender must be able to read a 4xx as a 4xx, and to read
/// `Retry-After` on a 429 or 503.
pub fn with_cors(mut resp: Response, origin: Option<&str>) -> worker::Result<Response> {
    if let Some(o) = origin {
        resp.headers_mut().set("Access-Control-Allow-Origin", o)?;
        resp.headers_mut().set("Vary", "Origin")?;
        resp.headers_mut()
            .set("Access-Control-Expose-Headers", "Retry-After")?;
    }
    Ok(resp)
}

/// The path split into its non-empty segments.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

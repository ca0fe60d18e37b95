//! Performing a provider request over HTTP, with a timeout: a provider that hangs answers as
//! "no answer" (status 0), which the core classifies as retryable.

use futures_util::future::{select, Either};
use kindling::delivery::providers::HttpRequest;
use std::time::Duration;
use worker::*;

/// How long a provider may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The answer: status (0 = none), headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub async fn perform(r: &HttpRequest) -> Answer {
    match attempt(r).await {
        Ok(a) => a,
        Err(e) => {
            console_warn!("provider request failed: {e}");
            Answer {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
    }
}

async fn attempt(r: &HttpRequest) -> Result<Answer> {
    let headers = Headers::new();
    for (k, v) in &r.headers {
        headers.set(k, v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(r.method.to_string()))
        .with_headers(headers);
    if !r.body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(r.body.as_slice()).into()));
    }
    let req = Request::new_with_init(&r.url, &init)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let outcome = {
        let sending = Box::pin(fetch.send_with_signal(&signal));
        let timeout = Box::pin(Delay::from(TIMEOUT));
        match select(sending, timeout).await {
            Either::Left((resp, _)) => Some(resp),
            Either::Right(_) => None,
        }
    };
    match outcome {
        Some(resp) => {
            let mut resp = resp?;
            let headers = resp.headers().entries().collect();
            let body = resp.bytes().await.unwrap_or_default();
            Ok(Answer {
                status: resp.status_code(),
                headers,
                body,
            })
        }
        None => {
            controller.abort();
            Err(Error::RustError("timed out".into()))
        }
    }
}

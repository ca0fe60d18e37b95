//! `GET /k.js`: the website snippet (source in `snippet/k.js`, minified by `snippet/build.sh`).
//! Cached for a week by browsers and answered 304 when the ETag still matches.

use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use worker::*;

const SNIPPET: &str = include_str!("../snippet/k.min.js");

fn etag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let d = Sha256::digest(SNIPPET.as_bytes());
        let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

pub fn serve(req: &Request) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/javascript; charset=utf-8")?;
    headers.set(
        "Cache-Control",
        "public, max-age=604800, stale-while-revalidate=86400",
    )?;
    headers.set("ETag", etag())?;
    headers.set("Access-Control-Allow-Origin", "*")?;
    let fresh = req
        .headers()
        .get("If-None-Match")?
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag()));
    if fresh {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    Ok(Response::ok(SNIPPET)?.with_headers(headers))
}

//! forms: the landing-page form endpoint. This function holds no admin code and no secrets
//! beyond what form capture needs; form capture itself arrives with the forms issue.

use kindling_edge::http;
use worker::*;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => http::json(200, &serde_json::json!({"function": "forms"})),
        _ => http::not_found(),
    }
}

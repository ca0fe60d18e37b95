//! The baseline of bench/run.sh: a fetch handler that answers the same 43-byte GIF, with the
//! same headers, as track's pixel — and does nothing else. Whatever track's pixel costs beyond
//! this worker is Kindling's own work (parsing, bot check, site lookup, Queue send).

use worker::*;

const TRANSPARENT_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "image/gif")?;
    headers.set("Cache-Control", "no-store, max-age=0")?;
    Ok(Response::from_bytes(TRANSPARENT_GIF.to_vec())?.with_headers(headers))
}

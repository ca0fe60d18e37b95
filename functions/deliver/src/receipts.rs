//! `POST /r/{provider}`: providers' delivery reports. Signed with the shared receipt secret
//! (`X-Kindling-Timestamp`, `X-Kindling-Signature`); a report moves the message's state, marks
//! a bounced contact point unusable, and turns complaints and unsubscribes into consent
//! withdrawals in the ledger — all of which the decision honours from then on.

use kindling::consent::{preference_event, Channel, PreferenceChange};
use kindling::delivery::providers::verify_webhook;
use kindling::delivery::receipts::{self, Receipt, ReceiptKind};
use kindling::event::IngestMessage;
use kindling::store::messages::{self, Transition};
use kindling::store::{ingest, Db, Statement};
use kindling_edge::d1::D1;
use kindling_edge::http;
use worker::*;

/// SendGrid posts event batches of up to 768 KB.
const MAX_BODY_BYTES: usize = receipts::MAX_BODY_BYTES;

pub async fn handle(mut req: Request, env: &Env, provider: &str) -> Result<Response> {
    let secret = env
        .secret("KINDLING_RECEIPT_KEY")
        .map(|s| s.to_string())
        .unwrap_or_default();
    if secret.len() < 16 {
        return http::error(&kindling::Error::NotConfigured(
            "KINDLING_RECEIPT_KEY is missing or too short".into(),
        ));
    }
    let body = req.bytes().await.unwrap_or_default();
    if body.len() > MAX_BODY_BYTES {
        return http::refusal(413, "too_large", "a receipt body is at most 2 MB", "body");
    }
    let h = |n: &str| req.headers().get(n).ok().flatten().unwrap_or_default();
    let q = |n: &str| {
        req.url()
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default()
    };
    let now = kindling_edge::now();
    let now_unix = now.0 / 1000;
    let kindling_signed = || {
        verify_webhook(
            &secret,
            &h("X-Kindling-Timestamp"),
            &h("X-Kindling-Signature"),
            &body,
            now_unix,
        )
    };
    let authentic = match provider {
        // Twilio's callbacks carry a per-message token in their URL and, when the account's
        // auth token is configured here, must also carry Twilio's own signature.
        "twilio" => {
            let token = env
                .secret("KINDLING_SMS_AUTH_TOKEN")
                .map(|s| s.to_string())
                .unwrap_or_default();
            let url = req.url().map(|u| u.to_string()).unwrap_or_default();
            receipts::callback_token_ok(&secret, &q("kindling_message_id"), &q("t"))
                && (token.is_empty()
                    || receipts::twilio_signature_ok(&token, &url, &body, &h("X-Twilio-Signature")))
        }
        // SendGrid's Signed Event Webhook when its verification key is configured; our own
        // signature (a relay, or a test harness) otherwise.
        "sendgrid" => {
            let key = env
                .var("KINDLING_SENDGRID_WEBHOOK_KEY")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let signature = h("X-Twilio-Email-Event-Webhook-Signature");
            if !key.is_empty() && !signature.is_empty() {
                receipts::sendgrid_signature_ok(
                    &key,
                    &signature,
                    &h("X-Twilio-Email-Event-Webhook-Timestamp"),
                    &body,
                    now_unix,
                )
            } else {
                kindling_signed()
            }
        }
        _ => kindling_signed(),
    };
    if !authentic {
        return http::json(
            401,
            &kindling::error::ErrorBody::new("unauthorized", "bad or missing receipt signature"),
        );
    }
    let parsed: std::result::Result<Vec<Receipt>, String> = match provider {
        "sendgrid" => receipts::parse_sendgrid(&body),
        "twilio" => receipts::parse_twilio(&body, &q("kindling_message_id"))
            .map(|r| r.into_iter().collect()),
        "generic" => receipts::parse_generic(&body).map(|r| vec![r]),
        _ => return http::not_found(),
    };
    let list = match parsed {
        Ok(l) => l,
        Err(e) => return http::refusal(400, "invalid_body", &e, "body"),
    };
    let db = D1(env.d1("DB")?);
    let mut applied = 0;
    for r in &list {
        match apply(&db, r, now).await {
            Ok(true) => applied += 1,
            Ok(false) => {}
            Err(e) => return http::error(&e),
        }
    }
    http::json(
        200,
        &serde_json::json!({ "received": list.len(), "applied": applied }),
    )
}

async fn apply(
    db: &D1,
    r: &Receipt,
    now: kindling::Millis,
) -> std::result::Result<bool, kindling::Error> {
    let Some(m) = messages::get(db, &r.message_id).await? else {
        return Ok(false);
    };
    let (to, from): (&str, &'static str) = match r.kind {
        ReceiptKind::Delivered => ("delivered", "('sent')"),
        ReceiptKind::Bounced => ("bounced", "('sent', 'delivered')"),
        ReceiptKind::Complained => ("complained", "('sent', 'delivered')"),
        ReceiptKind::Failed => ("failed", "('sent')"),
        ReceiptKind::Unsubscribed => ("unsubscribed", "('sent', 'delivered')"),
        ReceiptKind::Opened | ReceiptKind::Clicked => return Ok(false),
    };
    let moved = messages::transition(
        db,
        &Transition {
            id: &m.id,
            from,
            to,
            reason: r.detail.as_deref(),
            next_attempt_at: None,
            provider_id: None,
            variant: None,
            attempt: false,
            now,
        },
    )
    .await?;
    let channel = Channel::parse(&m.channel);
    if r.kind == ReceiptKind::Bounced {
        let column = match channel {
            Some(Channel::Sms) => "phone_status",
            _ => "email_status",
        };
        db.execute(&Statement::new(
            format!("UPDATE contacts SET {column} = 'bounced' WHERE workspace = ?1 AND id = ?2"),
            vec![m.workspace.as_str().into(), m.contact_id.as_str().into()],
        ))
        .await?;
    }
    if let (ReceiptKind::Complained | ReceiptKind::Unsubscribed, Some(ch)) = (&r.kind, channel) {
        // A complaint is the strongest "stop": it withdraws consent on that channel, recorded
        // in the ledger like any unsubscribe.
        let event_id = format!(
            "receipt_{}",
            kindling::hex(m.id.as_bytes())
                .chars()
                .take(48)
                .collect::<String>()
        );
        let event = preference_event(PreferenceChange {
            workspace: &m.workspace,
            contact_id: &m.contact_id,
            event_id: &event_id,
            source: "receipt",
            changes: vec![(ch, false)],
            ip_hash: None,
            user_agent: None,
            now,
        });
        db.batch(&ingest::batch_statements(
            &[IngestMessage::Event(event)],
            None,
        ))
        .await?;
    }
    Ok(moved)
}

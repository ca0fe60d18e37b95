//! Provider endpoints, senders and credentials: vars in wrangler.toml, secrets for the keys.
//! A channel whose configuration is missing fails its messages with a clear reason instead of
//! sending half-configured requests.

use kindling::delivery::providers::{EmailConfig, SmsConfig, WebhookConfig, WecomAppConfig};
use worker::Env;

pub struct Config {
    pub track_url: String,
    pub forms_url: String,
    pub link_key: Vec<u8>,
    /// Public base URL of deliver itself (status callbacks), and the receipt secret.
    pub deliver_url: String,
    pub receipt_key: String,
    pub email: Option<EmailConfig>,
    pub sms: Option<SmsConfig>,
    pub wecom: Option<(WecomAppConfig, String, String)>,
    pub webhook: Option<WebhookConfig>,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

impl Config {
    pub fn from_env(env: &Env) -> Config {
        let email = match (
            var(env, "KINDLING_EMAIL_ENDPOINT"),
            secret(env, "KINDLING_EMAIL_API_KEY"),
            var(env, "KINDLING_EMAIL_FROM"),
        ) {
            (Some(endpoint), Some(api_key), Some(from_email)) => Some(EmailConfig {
                endpoint,
                api_key,
                from_email,
                from_name: var(env, "KINDLING_EMAIL_FROM_NAME").unwrap_or_default(),
                reply_to: var(env, "KINDLING_EMAIL_REPLY_TO"),
            }),
            _ => None,
        };
        let sms = match (
            var(env, "KINDLING_SMS_ENDPOINT"),
            var(env, "KINDLING_SMS_ACCOUNT_SID"),
            secret(env, "KINDLING_SMS_AUTH_TOKEN"),
            var(env, "KINDLING_SMS_FROM"),
        ) {
            (Some(endpoint), Some(account_sid), Some(auth_token), Some(from)) => Some(SmsConfig {
                endpoint,
                account_sid,
                auth_token,
                from,
                status_callback: None,
            }),
            _ => None,
        };
        let wecom = match (
            var(env, "KINDLING_WECOM_ENDPOINT"),
            var(env, "KINDLING_WECOM_CORP_ID"),
            secret(env, "KINDLING_WECOM_SECRET"),
        ) {
            (Some(endpoint), Some(corp), Some(secret)) => Some((
                WecomAppConfig {
                    endpoint,
                    agent_id: var(env, "KINDLING_WECOM_AGENT_ID")
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(0),
                },
                corp,
                secret,
            )),
            _ => None,
        };
        let webhook = match (
            var(env, "KINDLING_WEBHOOK_URL"),
            secret(env, "KINDLING_WEBHOOK_SECRET"),
        ) {
            (Some(url), Some(secret)) => Some(WebhookConfig { url, secret }),
            _ => None,
        };
        Config {
            track_url: var(env, "KINDLING_TRACK_URL").unwrap_or_default(),
            forms_url: var(env, "KINDLING_FORMS_URL").unwrap_or_default(),
            deliver_url: var(env, "KINDLING_DELIVER_URL").unwrap_or_default(),
            receipt_key: secret(env, "KINDLING_RECEIPT_KEY").unwrap_or_default(),
            link_key: secret(env, "KINDLING_LINK_KEY")
                .unwrap_or_default()
                .into_bytes(),
            email,
            sms,
            wecom,
            webhook,
        }
    }
}

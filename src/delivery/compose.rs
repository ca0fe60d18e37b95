//! Composing one message for one person: the template's variables from the contact (opened
//! personal data, attributes, tags) and the sender's variables, the A/B variant, and for email
//! the signed click links, the open pixel and the one-click unsubscribe link.

use crate::consent::Channel;
use crate::form::lang::Lang;
use crate::link::{sign, sign_preferences, LinkClaims};
use crate::template::{self, RenderContext, Rendered, Template};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The person a message goes to, personal data already opened by the shell.
pub struct Recipient<'a> {
    pub contact_id: &'a str,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub name: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
    pub tags: &'a [(String, String)],
}

/// Where links point and what signs them.
pub struct Links<'a> {
    /// Public base URL of track (`/o/`, `/c/`).
    pub track: &'a str,
    /// Public base URL of forms (`/u/`).
    pub forms: &'a str,
    pub key: &'a [u8],
}

/// The message's language: the contact's `language` attribute (`en…` → English), otherwise
/// Chinese, the product's default market.
pub fn language(r: &Recipient<'_>) -> Lang {
    match r.attributes.get("language").and_then(Value::as_str) {
        Some(l) if l.to_ascii_lowercase().starts_with("en") => Lang::En,
        _ => Lang::ZhCn,
    }
}

/// The one-click unsubscribe URL of a channel, and the preference page.
pub fn unsubscribe_url(links: &Links<'_>, contact_id: &str, channel: Channel) -> String {
    format!(
        "{}/u/{}?channel={}",
        links.forms.trim_end_matches('/'),
        sign_preferences(contact_id, links.key),
        channel.as_str()
    )
}

fn preferences_url(links: &Links<'_>, contact_id: &str) -> String {
    format!(
        "{}/u/{}",
        links.forms.trim_end_matches('/'),
        sign_preferences(contact_id, links.key)
    )
}

/// The variables a template can use for this person and message.
pub fn variables(
    r: &Recipient<'_>,
    sender: &Map<String, Value>,
    links: &Links<'_>,
    channel: Channel,
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let text = |x: &Value| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    if let Some(name) = r.name {
        v.insert("name".into(), name.to_string());
        // Chinese names are written whole; a Latin "Wei Zhang" greets as "Wei".
        let first = if name.is_ascii() {
            name.split_whitespace().next().unwrap_or(name)
        } else {
            name
        };
        v.insert("first_name".into(), first.to_string());
        if name.is_ascii() {
            if let Some(last) = name.split_whitespace().nth(1) {
                v.insert("last_name".into(), last.to_string());
            }
        }
    }
    if let Some(e) = r.email {
        v.insert("email".into(), e.to_string());
    }
    for k in ["company", "job_title", "industry", "region", "company_size"] {
        if let Some(x) = r.attributes.get(k).and_then(text) {
            v.insert(k.into(), x);
        }
    }
    for (k, x) in r.tags {
        v.insert(format!("tag.{k}"), x.clone());
    }
    // Static tags mirror attributes; a lead captured a moment ago (tags come with the next
    // cron tick) already gets the content of its industry.
    for k in ["industry", "region"] {
        if let Some(x) = r.attributes.get(k).and_then(text) {
            v.entry(format!("tag.{k}")).or_insert(x);
        }
    }
    for (k, x) in sender {
        if let Some(x) = text(x) {
            v.insert(k.clone(), x);
        }
    }
    v.insert(
        "unsubscribe_url".into(),
        unsubscribe_url(links, r.contact_id, channel),
    );
    v.insert(
        "preferences_url".into(),
        preferences_url(links, r.contact_id),
    );
    v
}

/// The variant a contact gets: the declared winner once there is one, otherwise a
/// deterministic draw over the template's variants ("a" is the base).
pub fn variant(t: &Template, contact_id: &str, winner: Option<&str>) -> String {
    let mut ids: Vec<&str> = vec!["a"];
    ids.extend(t.variants.iter().map(|v| v.id.as_str()));
    if let Some(w) = winner.filter(|w| ids.contains(w)) {
        return w.to_string();
    }
    template::variant_for(contact_id, &t.id, &ids).to_string()
}

/// Renders the message; for email, click links are signed and routed through track, and the
/// open pixel is added, both naming this message and contact.
pub fn render(
    t: &Template,
    vars: &BTreeMap<String, String>,
    lang: Lang,
    variant: &str,
    links: &Links<'_>,
    message_id: &str,
    contact_id: &str,
) -> Rendered {
    let mut out = template::render(
        t,
        &RenderContext {
            vars,
            lang,
            variant,
        },
    );
    if let Some(html) = out.html.take() {
        let track = links.track.trim_end_matches('/');
        let forms = links.forms.trim_end_matches('/');
        let mut tracked = template::track_links(&html, |url| {
            // Unsubscribe and preference links go straight to the page: a click there is not
            // engagement, and a scanner following it must not count as one.
            if !forms.is_empty() && url.starts_with(forms) {
                return None;
            }
            let token = sign(
                &LinkClaims {
                    m: message_id.into(),
                    c: contact_id.into(),
                    u: Some(url.to_string()),
                },
                links.key,
            );
            Some(format!("{track}/c/{token}"))
        });
        let open = sign(
            &LinkClaims {
                m: message_id.into(),
                c: contact_id.into(),
                u: None,
            },
            links.key,
        );
        let pixel = format!("<img src=\"{track}/o/{open}.gif\" width=\"1\" height=\"1\" alt=\"\">");
        match tracked.rfind("</body>") {
            Some(at) => tracked.insert_str(at, &pixel),
            None => tracked.push_str(&pixel),
        }
        out.html = Some(tracked);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seeded(id: &str, text: &str) -> Template {
        let mut v: Value = serde_json::from_str(text).unwrap();
        v["id"] = id.into();
        template::parse(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    const LINKS: Links<'static> = Links {
        track: "https://t.example",
        forms: "https://go.example",
        key: b"k",
    };

    #[test]
    fn the_seeded_templates_are_valid() {
        seeded(
            "whitepaper",
            include_str!("../../config/templates/whitepaper.json"),
        );
        seeded(
            "welcome-sms",
            include_str!("../../config/templates/welcome-sms.json"),
        );
        seeded(
            "care-wecom",
            include_str!("../../config/templates/care-wecom.json"),
        );
    }

    #[test]
    fn email_content_follows_the_industry_and_is_tracked() {
        let t = seeded(
            "whitepaper",
            include_str!("../../config/templates/whitepaper.json"),
        );
        let attrs = json!({"industry": "finance"}).as_object().cloned().unwrap();
        let r = Recipient {
            contact_id: "c_0123456789abcdef01234567",
            email: Some("li@example.com"),
            phone: None,
            name: Some("Li <b>Na</b>"),
            attributes: &attrs,
            tags: &[],
        };
        let vars = variables(&r, &Map::new(), &LINKS, Channel::Email);
        let out = render(&t, &vars, Lang::En, "a", &LINKS, "m_1", r.contact_id);
        let html = out.html.unwrap();
        assert!(html.contains("data-security"), "{html}");
        assert!(!html.contains("production-efficiency"));
        assert!(html.contains("Hi Li,"), "{html}");
        assert!(
            html.contains("https://t.example/c/"),
            "links are tracked: {html}"
        );
        assert!(!html.contains("href=\"https://www.example.com"), "{html}");
        assert!(html.contains("https://t.example/o/"), "open pixel: {html}");
        assert!(
            html.contains("https://go.example/u/"),
            "unsubscribe link: {html}"
        );
        assert!(out.subject.unwrap().starts_with("Li, your"));
    }

    #[test]
    fn the_winner_takes_every_later_send() {
        let t = seeded(
            "whitepaper",
            include_str!("../../config/templates/whitepaper.json"),
        );
        assert_eq!(variant(&t, "c_0123456789abcdef01234567", Some("b")), "b");
        assert_eq!(
            variant(&t, "c_0123456789abcdef01234567", Some("zz")),
            variant(&t, "c_0123456789abcdef01234567", None)
        );
    }
}

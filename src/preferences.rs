//! The preference page behind every unsubscribe link (`/u/{token}`): one small HTML page per
//! contact showing each marketing channel, with a one-click "unsubscribe from everything".
//! Every text that reaches the page is escaped; the page loads no script and no third party.

use crate::consent::Channel;
use crate::form::body::Fields;
use crate::form::lang::Lang;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn channel_label(c: Channel, lang: Lang) -> &'static str {
    match (c, lang) {
        (Channel::Email, Lang::ZhCn) => "电子邮件营销信息",
        (Channel::Sms, Lang::ZhCn) => "短信营销信息",
        (Channel::Wecom, Lang::ZhCn) => "企业微信营销信息",
        (Channel::Email, Lang::En) => "Marketing email",
        (Channel::Sms, Lang::En) => "Marketing SMS",
        (Channel::Wecom, Lang::En) => "Marketing messages on WeCom",
    }
}

/// What the page says at the top after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    None,
    Unsubscribed,
    Saved,
}

/// The page. `who` is the masked address it is for (`z***@example.com`); `states` the current
/// consent per channel; `action` the URL the page posts to.
pub fn page(
    lang: Lang,
    who: &str,
    states: &[(Channel, Option<bool>)],
    action: &str,
    notice: Notice,
) -> String {
    let (title, intro, save, all, none_yet) = match lang {
        Lang::ZhCn => (
            "订阅偏好",
            "选择你愿意接收的营销信息：",
            "保存",
            "退订全部营销信息",
            "（尚未同意）",
        ),
        Lang::En => (
            "Your preferences",
            "Choose the marketing you want to receive:",
            "Save",
            "Unsubscribe from all marketing",
            "(not agreed yet)",
        ),
    };
    let notice = match (notice, lang) {
        (Notice::None, _) => String::new(),
        (Notice::Unsubscribed, Lang::ZhCn) => {
            "<p role=\"status\">已退订，我们不会再向你发送营销信息。</p>".into()
        }
        (Notice::Unsubscribed, Lang::En) => {
            "<p role=\"status\">You are unsubscribed. We will not send you marketing.</p>".into()
        }
        (Notice::Saved, Lang::ZhCn) => "<p role=\"status\">已保存。</p>".into(),
        (Notice::Saved, Lang::En) => "<p role=\"status\">Saved.</p>".into(),
    };
    let mut rows = String::new();
    for (channel, state) in states {
        let checked = if *state == Some(true) { " checked" } else { "" };
        let hint = if state.is_none() { none_yet } else { "" };
        rows.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"{name}\" value=\"on\"{checked}> {label} {hint}</label><br>\n",
            name = channel.as_str(),
            label = channel_label(*channel, lang),
        ));
    }
    let action = escape(action);
    format!(
        "<!doctype html>\n<html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\n<body>\n\
<h1>{title}</h1>\n{notice}<p>{who}</p>\n\
<form method=\"post\" action=\"{action}\">\n<input type=\"hidden\" name=\"_prefs\" value=\"1\">\n\
<p>{intro}</p>\n{rows}<button type=\"submit\">{save}</button>\n</form>\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n\
<button type=\"submit\" id=\"unsubscribe-all\">{all}</button>\n</form>\n</body></html>\n",
        tag = lang.tag(),
        who = escape(who),
    )
}

/// What a POST to the preference page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// RFC 8058 one-click (`List-Unsubscribe=One-Click`): withdraw, now.
    OneClick,
    /// The page's form: the channels ticked.
    Save(Vec<Channel>),
}

/// Reads a POST body's fields; None when it is neither kind.
pub fn request(fields: &Fields) -> Option<Request> {
    let has = |k: &str, v: &str| {
        fields
            .iter()
            .any(|(a, b)| a == k && b.eq_ignore_ascii_case(v))
    };
    if has("List-Unsubscribe", "One-Click") {
        return Some(Request::OneClick);
    }
    if fields.iter().any(|(k, _)| k == "_prefs") {
        let ticked = Channel::ALL
            .into_iter()
            .filter(|c| has(c.as_str(), "on"))
            .collect();
        return Some(Request::Save(ticked));
    }
    None
}

/// The changes a save makes: only channels whose state differs. Ticking a channel never asked
/// before is an explicit grant on this page; leaving it unticked records nothing.
pub fn changes(current: &[(Channel, Option<bool>)], ticked: &[Channel]) -> Vec<(Channel, bool)> {
    current
        .iter()
        .filter_map(|(c, state)| {
            let want = ticked.contains(c);
            match (state, want) {
                (Some(true), false) => Some((*c, false)),
                (Some(false) | None, true) => Some((*c, true)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn one_click_and_the_page_form_are_told_apart() {
        assert_eq!(
            request(&f(&[("List-Unsubscribe", "One-Click")])),
            Some(Request::OneClick)
        );
        assert_eq!(
            request(&f(&[("_prefs", "1"), ("sms", "on")])),
            Some(Request::Save(vec![Channel::Sms]))
        );
        assert_eq!(request(&f(&[("foo", "bar")])), None);
    }

    #[test]
    fn saving_records_only_what_changed() {
        let now = [
            (Channel::Email, Some(true)),
            (Channel::Sms, None),
            (Channel::Wecom, Some(false)),
        ];
        assert_eq!(changes(&now, &[Channel::Email]), vec![]);
        assert_eq!(
            changes(&now, &[Channel::Sms]),
            vec![(Channel::Email, false), (Channel::Sms, true)]
        );
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let html = page(
            Lang::En,
            "<script>x</script>",
            &[(Channel::Email, Some(true))],
            "/u/abc\"onload=\"x",
            Notice::Unsubscribed,
        );
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("/u/abc&quot;onload"));
        assert!(html.contains("name=\"email\" value=\"on\" checked"));
        assert!(html.contains("You are unsubscribed"));
    }
}

//! The two languages forms answer in, chosen by `Accept-Language`, and texts given in both.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The best language for an `Accept-Language` header: the highest-weighted tag that is
    /// Chinese or English wins; English when neither appears.
    pub fn negotiate(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::En;
        };
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in header.split(',').take(32).enumerate() {
            let mut bits = part.split(';');
            let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q=").map(str::to_string))
                .and_then(|q| q.parse::<f32>().ok())
                .filter(|q| q.is_finite() && (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::ZhCn
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            // Earlier tags win ties, as browsers list them in preference order.
            if q > 0.0 && best.is_none_or(|(bq, _, _)| q > bq) {
                best = Some((q, i, lang));
            }
        }
        best.map_or(Lang::En, |(_, _, l)| l)
    }
}

/// A text in one or both languages: `{"zh-CN": "...", "en": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text(pub BTreeMap<String, String>);

impl Text {
    pub fn is_empty(&self) -> bool {
        !self.0.values().any(|v| !v.trim().is_empty())
    }

    /// The text in `lang`, else in the other language.
    pub fn get(&self, lang: Lang) -> &str {
        let other = match lang {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        };
        self.0
            .get(lang.tag())
            .or_else(|| self.0.get(other.tag()))
            .or_else(|| self.0.values().next())
            .map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_supported_language_wins() {
        assert_eq!(Lang::negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::ZhCn);
        assert_eq!(
            Lang::negotiate(Some("en-US,en;q=0.9,zh-CN;q=0.8")),
            Lang::En
        );
        assert_eq!(Lang::negotiate(Some("fr-FR,zh-TW;q=0.5")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(Some("fr-FR")), Lang::En);
        assert_eq!(Lang::negotiate(Some("en;q=0.2, zh;q=0.7")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh;q=abc, en;q=0")), Lang::ZhCn);
    }

    #[test]
    fn a_text_falls_back_to_the_other_language() {
        let t: Text = serde_json::from_str(r#"{"en": "Name"}"#).unwrap();
        assert_eq!(t.get(Lang::ZhCn), "Name");
        assert!(Text::default().is_empty());
    }
}

//! Registered sites: the site keys the snippet and pixels carry, and where each may be used.
//! Definitions live in D1 (`sites`) and are published to KV so ingress reads them without D1.

use serde::{Deserialize, Serialize};

/// A site as ingress needs to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Honour Do-Not-Track and Global Privacy Control: such visitors are not tracked until
    /// they consent in the page. On unless a site turns it off.
    #[serde(default = "honour_by_default")]
    pub honor_dnt: bool,
}

fn honour_by_default() -> bool {
    true
}

impl Site {
    /// Whether a browser request from `origin` may report for this site. Requests without an
    /// Origin header (server-side senders, pixels in old mail clients) are not judged by it.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => self
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o)),
        }
    }
}

/// The KV key a site is published under.
pub fn kv_key(site_key: &str) -> String {
    format!("site:{site_key}")
}

/// Site keys: 1-64 lowercase letters, digits and dashes.
pub fn is_valid_site_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_keys_are_lowercase_slugs() {
        assert!(is_valid_site_key("demo"));
        assert!(is_valid_site_key("acme-cn-2"));
        assert!(!is_valid_site_key("Demo"));
        assert!(!is_valid_site_key(""));
        assert!(!is_valid_site_key("a b"));
    }

    #[test]
    fn only_listed_origins_may_report() {
        let site: Site = serde_json::from_str(
            r#"{"key":"demo","name":"Demo","allowed_origins":["https://shop.example"]}"#,
        )
        .unwrap();
        assert!(site.honor_dnt, "DNT is honoured unless turned off");
        assert!(site.allows_origin(Some("https://shop.example")));
        assert!(!site.allows_origin(Some("https://evil.example")));
        assert!(site.allows_origin(None));
    }

    #[test]
    fn sites_publish_under_a_prefixed_key() {
        assert_eq!(kv_key("demo"), "site:demo");
    }
}

//! The no-JavaScript pixel `GET /p.gif`: query parameters in, an event (or a counted drop) out.
//! The pixel always answers with its GIF; this module only decides what gets recorded.

use crate::event::{
    is_valid_event_name, is_valid_visitor_id, DropReason, Event, SharedStr, Subject,
    DEFAULT_WORKSPACE,
};
use crate::site::is_valid_site_key;
use crate::time::Millis;
use serde_json::{Map, Value};

/// The 43-byte transparent 1x1 GIF every pixel answers with.
pub const TRANSPARENT_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Longest page or referrer URL kept.
pub const MAX_URL_CHARS: usize = 2048;

/// The pixel's parameters after decoding, before validation.
#[derive(Debug, Default, PartialEq)]
pub struct PixelQuery {
    pub site: Option<String>,
    pub visitor_id: Option<String>,
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub name: Option<String>,
}

impl PixelQuery {
    /// Decodes a raw query string. Unknown parameters are ignored; a repeated parameter keeps
    /// its first value so a crafted URL cannot override what the snippet put first.
    pub fn parse(query: &str) -> PixelQuery {
        let mut q = PixelQuery::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "site" => &mut q.site,
                "vid" => &mut q.visitor_id,
                "url" => &mut q.url,
                "ref" => &mut q.referrer,
                "e" => &mut q.name,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        q
    }

    /// Turns the parameters into an event, or names why it must be dropped.
    /// `event_id` comes from the shell (random), `now` is the request time.
    pub fn into_event(self, event_id: String, now: Millis) -> Result<Event, DropReason> {
        let site = self.site.ok_or(DropReason::MissingSite)?;
        if !is_valid_site_key(&site) {
            return Err(DropReason::InvalidSite);
        }
        let visitor_id = self.visitor_id.ok_or(DropReason::MissingVisitor)?;
        if !is_valid_visitor_id(&visitor_id) {
            return Err(DropReason::InvalidVisitor);
        }
        let name = self
            .name
            .map_or(SharedStr::from_static("page"), SharedStr::from);
        if !is_valid_event_name(&name) {
            return Err(DropReason::InvalidName);
        }
        let mut properties = Map::new();
        if let Some(url) = self.url {
            properties.insert("url".into(), Value::String(checked_url(url)?));
        }
        if let Some(referrer) = self.referrer.filter(|r| !r.is_empty()) {
            properties.insert("referrer".into(), Value::String(checked_url(referrer)?));
        }
        if crate::event::properties_too_large(&properties) {
            return Err(DropReason::PropertiesTooLarge);
        }
        Ok(Event {
            id: event_id,
            workspace: SharedStr::from_static(DEFAULT_WORKSPACE),
            site: Some(site.into()),
            subject: Subject::Visitor(visitor_id.into()),
            session_id: None,
            name,
            properties,
            claims: Default::default(),
            consents: Vec::new(),
            occurred_at: now,
            received_at: now,
        })
    }
}

/// Accepts absolute http(s) URLs of bounded length without control characters: anything else
/// on a page-view is a forgery or a bug, and keeping it would only pollute reports.
pub fn checked_url(url: String) -> Result<String, DropReason> {
    // The scheme compared in place, ignoring ASCII case (no lowercased copy per URL).
    let has_prefix = |p: &str| {
        url.as_bytes()
            .get(..p.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
    };
    let scheme_ok = has_prefix("https://") || has_prefix("http://");
    if scheme_ok && fits_without_controls(&url) {
        Ok(url)
    } else {
        Err(DropReason::InvalidUrl)
    }
}

/// `url.chars().count() <= MAX_URL_CHARS && !url.chars().any(char::is_control)` in one pass
/// over the bytes, without decoding characters. The control characters (Cc) are U+0000-U+001F
/// and U+007F, one byte each, and U+0080-U+009F, encoded as 0xC2 0x80-0x9F; characters are
/// counted by the bytes that start them.
fn fits_without_controls(url: &str) -> bool {
    if url.is_ascii() {
        // The usual URL: a byte is a character.
        return url.len() <= MAX_URL_CHARS && !url.bytes().any(|b| b < 0x20 || b == 0x7f);
    }
    let mut chars = 0usize;
    let mut after_c2 = false;
    for &b in url.as_bytes() {
        if b < 0x20 || b == 0x7f || (after_c2 && b <= 0x9f) {
            return false;
        }
        // 0xC2 only ever leads a character; what follows it is 0x80-0xBF.
        after_c2 = b == 0xc2;
        chars += usize::from(b & 0xc0 != 0x80);
    }
    chars <= MAX_URL_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_length_and_control_check_counts_characters() {
        let reference =
            |u: &str| u.chars().count() <= MAX_URL_CHARS && !u.chars().any(char::is_control);
        let long = format!("https://a.example/{}", "é".repeat(MAX_URL_CHARS));
        let fits = format!("https://a.example/{}", "é".repeat(MAX_URL_CHARS - 18));
        let ascii_long = format!("https://a.example/{}", "a".repeat(MAX_URL_CHARS - 17));
        let ascii_fits = format!("https://a.example/{}", "a".repeat(MAX_URL_CHARS - 18));
        for u in [
            "https://a.example/",
            "https://a.example/\u{7f}",
            "https://a.example/\u{80}",
            "https://a.example/\u{9f}x",
            "https://a.example/\u{a0}\u{c2}",
            "https://a.example/\t",
            "https://例子.中国/路径?q=下载",
            long.as_str(),
            fits.as_str(),
            ascii_long.as_str(),
            ascii_fits.as_str(),
        ] {
            assert_eq!(fits_without_controls(u), reference(u), "{u:?}");
        }
        assert!(fits_without_controls(&fits));
        assert!(!fits_without_controls(&long));
        assert!(fits_without_controls(&ascii_fits));
        assert!(!fits_without_controls(&ascii_long));
    }

    fn event(q: &str) -> Result<Event, DropReason> {
        PixelQuery::parse(q).into_event("evt_1".into(), Millis(1_000))
    }

    #[test]
    fn the_gif_is_a_43_byte_gif89a() {
        assert_eq!(TRANSPARENT_GIF.len(), 43);
        assert_eq!(&TRANSPARENT_GIF[..6], b"GIF89a");
        assert_eq!(TRANSPARENT_GIF[42], 0x3b);
    }

    #[test]
    fn a_page_view_becomes_a_page_event() {
        let e =
            event("site=demo&vid=v_abcdef12&url=https%3A%2F%2Fshop.example%2Fcases%2F1").unwrap();
        assert_eq!(e.name, "page");
        assert_eq!(e.site.as_deref(), Some("demo"));
        assert_eq!(e.subject, Subject::Visitor("v_abcdef12".into()));
        assert_eq!(e.properties["url"], "https://shop.example/cases/1");
        assert_eq!(e.occurred_at, Millis(1_000));
    }

    #[test]
    fn custom_events_and_referrers_are_kept() {
        let e = event("site=demo&vid=v_abcdef12&e=whitepaper_downloaded&ref=https://a.example/")
            .unwrap();
        assert_eq!(e.name, "whitepaper_downloaded");
        assert_eq!(e.properties["referrer"], "https://a.example/");
    }

    #[test]
    fn malformed_parameters_name_their_drop_reason() {
        assert_eq!(event("vid=v_abcdef12"), Err(DropReason::MissingSite));
        assert_eq!(
            event("site=DEMO!&vid=v_abcdef12"),
            Err(DropReason::InvalidSite)
        );
        assert_eq!(event("site=demo"), Err(DropReason::MissingVisitor));
        assert_eq!(event("site=demo&vid=x"), Err(DropReason::InvalidVisitor));
        assert_eq!(
            event("site=demo&vid=v_abcdef12&url=javascript:alert(1)"),
            Err(DropReason::InvalidUrl)
        );
        assert_eq!(
            event("site=demo&vid=v_abcdef12&e=%00"),
            Err(DropReason::InvalidName)
        );
        let long = format!(
            "site=demo&vid=v_abcdef12&url=https://a.example/{}",
            "a".repeat(3000)
        );
        assert_eq!(event(&long), Err(DropReason::InvalidUrl));
    }

    #[test]
    fn the_first_of_repeated_parameters_wins() {
        let e = event("site=demo&vid=v_abcdef12&site=other").unwrap();
        assert_eq!(e.site.as_deref(), Some("demo"));
    }

    #[test]
    fn invalid_utf8_in_the_query_does_not_panic() {
        let _ = event("site=%FF%FE&vid=%C3%28");
    }
}

//! Tags: what segments, journeys and dynamic content select on. Three kinds, all derived from
//! facts the engine already holds, recomputed when those facts change or when time alone would
//! change them (recency ages):
//!
//! - static: `industry`, `region`, `company_size` (banded), from the contact's attributes;
//! - behavioural: `last_login` (recency band), `purchase_frequency` (orders in the last 365
//!   days), `preferred_feature` (most used `feature` of `feature_used` in the last 90 days);
//! - value: `rfm_r`, `rfm_f`, `rfm_m` (1–5 each) and `rfm` (the three digits), from orders.
//!
//! RFM uses fixed, documented bands rather than quintiles of the customer base: a contact's
//! tags then change only when its own facts do, they are explainable ("bought within 30 days"),
//! and no job has to rank every customer at once.

use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Static,
    Behavioural,
    Value,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::Behavioural => "behavioural",
            Kind::Value => "value",
        }
    }
}

/// A tag as the contact should carry it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: &'static str,
    pub kind: Kind,
    pub value: String,
}

/// What tags are computed from, read by the store for one contact at one time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub attributes: Map<String, Value>,
    pub last_login_at: Option<Millis>,
    pub top_feature: Option<String>,
    pub last_order_at: Option<Millis>,
    pub orders_365: u32,
    /// The oldest order still inside the 365-day window: when it leaves, F and M may drop.
    pub oldest_order_365: Option<Millis>,
    pub amount_365: f64,
}

/// Days after which the login recency band changes: within 7, 30, 90 days, or over.
const LOGIN_BANDS: [(i64, &str); 3] = [(7, "7d"), (30, "30d"), (90, "90d")];
/// Recency: days since the last order → R score.
const R_BANDS: [(i64, u8); 4] = [(30, 5), (90, 4), (180, 3), (365, 2)];
/// Frequency: orders in the last 365 days → F score (at least, descending).
const F_BANDS: [(u32, u8); 4] = [(10, 5), (5, 4), (3, 3), (2, 2)];
/// Monetary: amount in the last 365 days (in the order currency's units) → M score.
const M_BANDS: [(f64, u8); 4] = [(50_000.0, 5), (10_000.0, 4), (2_000.0, 3), (500.0, 2)];

const WINDOW_DAYS: i64 = 365;

/// The tags the facts call for at `now`, and when they should next be looked at even if
/// nothing happens (the earliest time a recency band or the 365-day window changes one).
pub fn compute(f: &Facts, now: Millis) -> (Vec<Tag>, Option<Millis>) {
    let mut tags = Vec::new();
    let mut due: Option<Millis> = None;
    let mut at = |t: Millis| {
        if t > now {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
    };
    let text = |k: &str| {
        f.attributes
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(64).collect::<String>())
    };
    for key in ["industry", "region"] {
        if let Some(v) = text(key) {
            tags.push(Tag {
                key,
                kind: Kind::Static,
                value: v,
            });
        }
    }
    if let Some(size) = f.attributes.get("company_size").and_then(number) {
        tags.push(Tag {
            key: "company_size",
            kind: Kind::Static,
            value: company_size_band(size).into(),
        });
    }

    if let Some(login) = f.last_login_at {
        let days = (now.0 - login.0).max(0) / Millis::DAY;
        let band = LOGIN_BANDS
            .iter()
            .find(|(d, _)| days < *d)
            .map_or("over_90d", |(_, b)| b);
        for (d, _) in LOGIN_BANDS {
            at(login.plus(d * Millis::DAY));
        }
        tags.push(behavioural("last_login", band));
    }
    if let Some(feature) = f
        .top_feature
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        tags.push(behavioural(
            "preferred_feature",
            &feature.chars().take(64).collect::<String>(),
        ));
    }
    if let Some(last) = f.last_order_at {
        let frequency = match f.orders_365 {
            0 => "lapsed",
            1 => "one_time",
            2 | 3 => "occasional",
            _ => "frequent",
        };
        tags.push(behavioural("purchase_frequency", frequency));
        let days = (now.0 - last.0).max(0) / Millis::DAY;
        let r = R_BANDS
            .iter()
            .find(|(d, _)| days < *d)
            .map_or(1, |(_, s)| *s);
        for (d, _) in R_BANDS {
            at(last.plus(d * Millis::DAY));
        }
        let fr = F_BANDS
            .iter()
            .find(|(n, _)| f.orders_365 >= *n)
            .map_or(1, |(_, s)| *s);
        let m = M_BANDS
            .iter()
            .find(|(a, _)| f.amount_365 >= *a)
            .map_or(1, |(_, s)| *s);
        if let Some(oldest) = f.oldest_order_365 {
            at(oldest.plus(WINDOW_DAYS * Millis::DAY));
        }
        for (key, score) in [("rfm_r", r), ("rfm_f", fr), ("rfm_m", m)] {
            tags.push(Tag {
                key,
                kind: Kind::Value,
                value: score.to_string(),
            });
        }
        tags.push(Tag {
            key: "rfm",
            kind: Kind::Value,
            value: format!("{r}{fr}{m}"),
        });
    }
    (tags, due)
}

fn behavioural(key: &'static str, value: &str) -> Tag {
    Tag {
        key,
        kind: Kind::Behavioural,
        value: value.into(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', "").parse().ok(),
        _ => None,
    }
}

/// Company sizes in the bands the demo form offers.
pub fn company_size_band(size: f64) -> &'static str {
    match size {
        s if s >= 1000.0 => "1000+",
        s if s >= 500.0 => "500-999",
        s if s >= 200.0 => "200-499",
        s if s >= 50.0 => "50-199",
        _ => "1-49",
    }
}

/// One difference between the tags a contact carries and the ones it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub kind: Option<Kind>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Change {
    /// The internal event announcing it.
    pub fn event_name(&self) -> &'static str {
        match (&self.from, &self.to) {
            (None, Some(_)) => "tag.added",
            (Some(_), None) => "tag.removed",
            _ => "tag.changed",
        }
    }
}

/// The changes that turn `current` (tag → value) into `next`, in key order.
pub fn diff(current: &Map<String, Value>, next: &[Tag]) -> Vec<Change> {
    let mut out = Vec::new();
    for t in next {
        let had = current.get(t.key).and_then(Value::as_str);
        if had != Some(t.value.as_str()) {
            out.push(Change {
                key: t.key.into(),
                kind: Some(t.kind),
                from: had.map(str::to_string),
                to: Some(t.value.clone()),
            });
        }
    }
    for (k, v) in current {
        if !next.iter().any(|t| t.key == k) {
            out.push(Change {
                key: k.clone(),
                kind: None,
                from: v.as_str().map(str::to_string),
                to: None,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = Millis(1_800_000_000_000);
    fn days_ago(d: i64) -> Option<Millis> {
        Some(Millis(NOW.0 - d * Millis::DAY))
    }

    fn value_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
        tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    #[test]
    fn static_tags_come_from_attributes() {
        let f = Facts {
            attributes:
                json!({"industry": "manufacturing", "region": " 华东 ", "company_size": "500"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ..Facts::default()
        };
        let (tags, due) = compute(&f, NOW);
        assert_eq!(value_of(&tags, "industry"), Some("manufacturing"));
        assert_eq!(value_of(&tags, "region"), Some("华东"));
        assert_eq!(value_of(&tags, "company_size"), Some("500-999"));
        assert_eq!(due, None, "static tags never age");
    }

    #[test]
    fn behaviour_bands_and_when_they_age() {
        let f = Facts {
            last_login_at: days_ago(3),
            top_feature: Some("reports".into()),
            ..Facts::default()
        };
        let (tags, due) = compute(&f, NOW);
        assert_eq!(value_of(&tags, "last_login"), Some("7d"));
        assert_eq!(value_of(&tags, "preferred_feature"), Some("reports"));
        assert_eq!(due, Some(Millis(NOW.0 + 4 * Millis::DAY)));
        let (later, _) = compute(&f, Millis(NOW.0 + 100 * Millis::DAY));
        assert_eq!(value_of(&later, "last_login"), Some("over_90d"));
    }

    #[test]
    fn rfm_scores_follow_the_documented_bands() {
        let f = Facts {
            last_order_at: days_ago(10),
            orders_365: 6,
            oldest_order_365: days_ago(200),
            amount_365: 12_000.0,
            ..Facts::default()
        };
        let (tags, due) = compute(&f, NOW);
        assert_eq!(value_of(&tags, "rfm"), Some("544"));
        assert_eq!(value_of(&tags, "purchase_frequency"), Some("frequent"));
        assert_eq!(
            due,
            Some(Millis(NOW.0 + 20 * Millis::DAY)),
            "R drops at 30 days"
        );
        let lapsed = Facts {
            last_order_at: days_ago(400),
            ..Facts::default()
        };
        let (tags, due) = compute(&lapsed, NOW);
        assert_eq!(value_of(&tags, "rfm"), Some("111"));
        assert_eq!(value_of(&tags, "purchase_frequency"), Some("lapsed"));
        assert_eq!(due, None);
    }

    #[test]
    fn no_orders_means_no_value_tags() {
        let (tags, _) = compute(&Facts::default(), NOW);
        assert!(tags.is_empty());
    }

    #[test]
    fn diffs_name_added_changed_and_removed_tags() {
        let current = json!({"industry": "retail", "last_login": "7d", "region": "华北"})
            .as_object()
            .cloned()
            .unwrap();
        let next = vec![
            Tag {
                key: "industry",
                kind: Kind::Static,
                value: "retail".into(),
            },
            Tag {
                key: "last_login",
                kind: Kind::Behavioural,
                value: "30d".into(),
            },
            Tag {
                key: "rfm",
                kind: Kind::Value,
                value: "555".into(),
            },
        ];
        let d = diff(&current, &next);
        let names: Vec<_> = d.iter().map(|c| (c.key.as_str(), c.event_name())).collect();
        assert_eq!(
            names,
            [
                ("last_login", "tag.changed"),
                ("region", "tag.removed"),
                ("rfm", "tag.added")
            ]
        );
    }
}

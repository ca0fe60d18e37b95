//! Which rules an event, or a contact's attributes, earn. Pure and allocation-light: the engine
//! runs it for every event of every batch.

use super::model::{Condition, Dimension, Model, Op, Rule};
use serde_json::{Map, Value};

/// A rule that matched, with the points it would award (repeat policies are applied by the
/// store, which knows what was already awarded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Award<'m> {
    pub rule: &'m Rule,
}

/// The behaviour and engagement rules an event matches.
pub fn event_awards<'m>(
    model: &'m Model,
    name: &str,
    properties: &Map<String, Value>,
) -> Vec<Award<'m>> {
    event_rules(model, name, properties)
        .map(|rule| Award { rule })
        .collect()
}

/// The attribute rules a contact's attributes satisfy.
pub fn attribute_awards<'m>(model: &'m Model, attributes: &Map<String, Value>) -> Vec<Award<'m>> {
    attribute_rules(model, attributes)
        .map(|rule| Award { rule })
        .collect()
}

/// [`event_awards`] as the rules themselves, in model order, without collecting them: the
/// ingest batch scores every event and most earn at most one rule.
pub fn event_rules<'m: 'a, 'a>(
    model: &'m Model,
    name: &'a str,
    properties: &'a Map<String, Value>,
) -> impl Iterator<Item = &'m Rule> + 'a {
    model
        .rules
        .iter()
        .filter(move |r| r.event.as_deref() == Some(name) && all_hold(&r.conditions, properties))
}

/// [`attribute_awards`] as the rules themselves, in model order, without collecting them.
pub fn attribute_rules<'m: 'a, 'a>(
    model: &'m Model,
    attributes: &'a Map<String, Value>,
) -> impl Iterator<Item = &'m Rule> + 'a {
    model
        .rules
        .iter()
        .filter(move |r| r.dimension == Dimension::Attribute && all_hold(&r.conditions, attributes))
}

/// One ledger line a recomputation writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub rule_id: String,
    pub award_key: String,
    pub event_id: String,
    pub dimension: &'static str,
    pub delta: i64,
    pub day: String,
    pub at: crate::Millis,
}

/// Events whose properties are the contact's traits, so attribute rules look at them: identify
/// calls and form submissions.
pub fn carries_traits(event_name: &str) -> bool {
    matches!(event_name, "identify" | crate::form::submit::FORM_SUBMITTED)
}

/// The points a contact's history earns under `model`, replaying its events in time order with
/// the repeat policies applied in memory — the same outcome the ingest path reaches in SQL.
/// `day_of` maps an instant to its scoring day.
pub fn replay<'e>(
    model: &Model,
    events: impl IntoIterator<Item = (&'e str, &'e str, &'e Map<String, Value>, crate::Millis)>,
    day_of: impl Fn(crate::Millis) -> String,
) -> Vec<Line> {
    use super::model::Repeat;
    use std::collections::HashMap;
    let mut per_day: HashMap<(&str, String), u32> = HashMap::new();
    let mut once: std::collections::HashSet<&str> = Default::default();
    let mut out = Vec::new();
    for (id, name, props, at) in events {
        let mut awards = event_awards(model, name, props);
        if carries_traits(name) {
            awards.extend(attribute_awards(model, props));
        }
        for a in awards {
            let day = day_of(at);
            let key = match a.rule.repeat {
                Repeat::Once if !once.insert(a.rule.id.as_str()) => continue,
                Repeat::Once => "once".to_string(),
                Repeat::Unlimited => id.to_string(),
                Repeat::MaxPerDay(n) => {
                    let c = per_day
                        .entry((a.rule.id.as_str(), day.clone()))
                        .or_insert(0);
                    if *c >= n {
                        continue;
                    }
                    *c += 1;
                    id.to_string()
                }
            };
            out.push(Line {
                rule_id: a.rule.id.clone(),
                award_key: key,
                event_id: id.to_string(),
                dimension: a.rule.dimension.as_str(),
                delta: a.rule.points,
                day,
                at,
            });
        }
    }
    out
}

pub fn all_hold(conditions: &[Condition], fields: &Map<String, Value>) -> bool {
    conditions.iter().all(|c| holds(c, fields.get(&c.field)))
}

/// One condition against one field value. A missing field holds only for `ne`.
pub fn holds(c: &Condition, field: Option<&Value>) -> bool {
    let Some(v) = field else {
        return c.op == Op::Ne;
    };
    match c.op {
        Op::Eq => loosely_equal(v, &c.value),
        Op::Ne => !loosely_equal(v, &c.value),
        Op::Gte => matches!((number(v), c.value.as_f64()), (Some(a), Some(b)) if a >= b),
        Op::Lte => matches!((number(v), c.value.as_f64()), (Some(a), Some(b)) if a <= b),
        Op::PathStartsWith => match (v.as_str(), c.value.as_str()) {
            (Some(text), Some(prefix)) => path_of(text).starts_with(prefix),
            _ => false,
        },
        Op::ContainsAny => match (v.as_str(), c.value.as_array()) {
            (Some(text), Some(words)) => {
                let text = text.to_lowercase();
                words
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|w| contains_word(&text, &w.to_lowercase()))
            }
            _ => false,
        },
    }
}

/// Strings and numbers compare by value (`"500"` equals `500`): forms send text.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A number, or the leading number of a text such as `"800"` or `"500-999"`.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let digits: String = s
                .trim()
                .chars()
                .map(|c| {
                    if ('０'..='９').contains(&c) {
                        char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
                    } else {
                        c
                    }
                })
                .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                .filter(|c| *c != ',')
                .collect();
            digits.parse().ok()
        }
        _ => None,
    }
}

/// The path of an absolute URL, or the text itself.
fn path_of(text: &str) -> &str {
    // Searched as bytes (rules look at every page view's URL): the separators are ASCII, so a
    // match never falls inside a character, and the pieces are those of `split_once("://")`
    // and `find('/')`.
    let bytes = text.as_bytes();
    let scheme_end = (2..bytes.len())
        .find(|&i| bytes[i - 2] == b':' && bytes[i - 1] == b'/' && bytes[i] == b'/');
    match scheme_end {
        Some(end) => {
            let rest = &text[end + 1..];
            match rest.bytes().position(|b| b == b'/') {
                Some(i) => &rest[i..],
                None => "/",
            }
        }
        None => text,
    }
}

/// Latin words must stand alone (`vp` is not in `mvp`); CJK words match anywhere (总监 in 销售总监).
fn contains_word(text: &str, word: &str) -> bool {
    if !word.is_ascii() {
        return text.contains(word);
    }
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let start = from + i;
        let end = start + word.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() || !c.is_ascii());
        if edge(before) && edge(after) {
            return true;
        }
        from = start + word.len().max(1);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::Model;
    use serde_json::json;

    fn seeded() -> Model {
        let text =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.json")).unwrap();
        Model::parse(&text).unwrap()
    }

    fn props(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_seeded_model_scores_the_requirements_table() {
        let m = seeded();
        let points = |name: &str, p: serde_json::Value| -> i64 {
            event_awards(&m, name, &props(p))
                .iter()
                .map(|a| a.rule.points)
                .sum()
        };
        assert_eq!(
            points("page", json!({"url": "https://a.example/cases/1"})),
            2
        );
        assert_eq!(points("whitepaper_downloaded", json!({})), 5);
        assert_eq!(points("webinar_attended", json!({})), 10);
        assert_eq!(points("email_opened", json!({"machine": false})), 1);
        assert_eq!(
            points("email_opened", json!({"machine": true})),
            0,
            "machine opens do not score"
        );
        assert_eq!(points("email_clicked", json!({"machine": false})), 2);
        assert_eq!(points("service_consulted", json!({})), 3);
        assert_eq!(points("report_downloaded", json!({})), 0);
    }

    #[test]
    fn attribute_rules_recognise_size_and_seniority_in_both_languages() {
        let m = seeded();
        let pts = |a: serde_json::Value| -> i64 {
            attribute_awards(&m, &props(a))
                .iter()
                .map(|a| a.rule.points)
                .sum()
        };
        assert_eq!(pts(json!({"company_size": 800, "job_title": "总监"})), 8);
        assert_eq!(
            pts(json!({"company_size": "500-999", "job_title": "Head of Marketing"})),
            8
        );
        assert_eq!(
            pts(json!({"company_size": "499", "job_title": "VP Sales"})),
            5
        );
        assert_eq!(pts(json!({"job_title": "销售副总裁"})), 5);
        assert_eq!(
            pts(json!({"job_title": "MVP engineer"})),
            0,
            "vp must stand alone"
        );
        assert_eq!(pts(json!({"job_title": "Directory clerk"})), 0);
        assert_eq!(pts(json!({})), 0);
    }

    #[test]
    fn paths_are_those_of_splitting_at_the_scheme() {
        fn split(text: &str) -> &str {
            match text.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
                None => text,
            }
        }
        for text in [
            "",
            ":",
            "://",
            ":/",
            "//",
            "a://",
            "https://a.example",
            "https://a.example/cases/1?x=://y",
            "https:/a.example/x",
            "/cases/only",
            "案例://例子/路径",
            "é://x/y",
            "x:///",
            "::://a/b",
        ] {
            assert_eq!(path_of(text), split(text), "{text:?}");
        }
    }

    #[test]
    fn url_paths_and_loose_numbers_compare_as_people_expect() {
        let c = |op, value| Condition {
            field: "f".into(),
            op,
            value,
        };
        assert!(holds(
            &c(Op::PathStartsWith, json!("/cases/")),
            Some(&json!("https://a.example/cases/steel?x=1"))
        ));
        assert!(!holds(
            &c(Op::PathStartsWith, json!("/cases/")),
            Some(&json!("https://a.example/pricing"))
        ));
        assert!(holds(&c(Op::Eq, json!(500)), Some(&json!("500"))));
        assert!(holds(&c(Op::Gte, json!(500)), Some(&json!("１,２００"))));
        assert!(holds(&c(Op::Ne, json!(true)), None));
        assert!(!holds(&c(Op::Gte, json!(1)), Some(&json!({"nested": 1}))));
    }
}

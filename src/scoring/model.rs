//! The scoring model document: what it may say, and the precise refusals when it says it wrong.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest model document accepted (bytes of JSON).
pub const MAX_MODEL_BYTES: usize = 64 * 1024;
/// Most rules in one model.
pub const MAX_RULES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Behaviour,
    Attribute,
    Engagement,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Behaviour => "behaviour",
            Dimension::Attribute => "attribute",
            Dimension::Engagement => "engagement",
        }
    }
}

/// How often a rule may award points to one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repeat {
    Once,
    Unlimited,
    MaxPerDay(u32),
}

/// Comparison operators of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gte,
    Lte,
    /// The value (a URL's path, or the text) starts with the given prefix.
    PathStartsWith,
    /// The text contains any of the given words (case-insensitive).
    ContainsAny,
}

/// A property (for event rules) or attribute (for attribute rules) condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub dimension: Dimension,
    /// Event rules: the event name. Attribute rules leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Event rules: property conditions; attribute rules: attribute conditions. All must hold.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    pub points: i64,
    #[serde(default = "unlimited")]
    pub repeat: Repeat,
}

fn unlimited() -> Repeat {
    Repeat::Unlimited
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub mql: i64,
    pub sql: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decay {
    /// Days without activity after which decaying points are multiplied by `factor`.
    pub after_days: u32,
    pub factor: f64,
    pub dimensions: Vec<Dimension>,
}

/// One requirement of the "sales ready" composite: at least `count` matching events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub event: String,
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesReady {
    pub window_days: u32,
    pub all: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    #[serde(default)]
    pub version: u32,
    pub thresholds: Thresholds,
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_ready: Option<SalesReady>,
}

impl Model {
    /// Parses and validates a model document. The refusal names the field.
    pub fn parse(text: &[u8]) -> Result<Model, Error> {
        if text.len() > MAX_MODEL_BYTES {
            return Err(Error::invalid("body", "a scoring model is at most 64 KB"));
        }
        let model: Model = serde_json::from_slice(text)
            .map_err(|e| Error::invalid("body", format!("not a scoring model: {e}")))?;
        validate(&model)?;
        Ok(model)
    }
}

/// The nurture tier a score falls in (REQUIREMENTS.md §2.1 step 3): below MQL basic awareness,
/// from MQL interest deepening, from SQL conversion.
pub fn tier(score: i64, t: &Thresholds) -> &'static str {
    if score >= t.sql {
        "conversion"
    } else if score >= t.mql {
        "interest_deepening"
    } else {
        "basic_awareness"
    }
}

/// Checks a model; errors name the offending field (`rules[3].points`, `thresholds.mql`, …).
pub fn validate(m: &Model) -> Result<(), Error> {
    if m.thresholds.mql <= 0 || m.thresholds.sql <= 0 {
        return Err(Error::invalid("thresholds", "thresholds are positive"));
    }
    if m.thresholds.mql >= m.thresholds.sql {
        return Err(Error::invalid(
            "thresholds.mql",
            "the MQL threshold is below the SQL threshold",
        ));
    }
    if m.rules.is_empty() || m.rules.len() > MAX_RULES {
        return Err(Error::invalid("rules", "a model has 1 to 200 rules"));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, r) in m.rules.iter().enumerate() {
        let f = |x: &str| format!("rules[{i}].{x}");
        let id_ok = (1..=64).contains(&r.id.len())
            && r.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !id_ok {
            return Err(Error::invalid(f("id"), "rule ids are 1-64 of a-z 0-9 _"));
        }
        if !ids.insert(r.id.as_str()) {
            return Err(Error::invalid(
                f("id"),
                format!("rule id {:?} is used twice", r.id),
            ));
        }
        if r.points == 0 || r.points.abs() > 1000 {
            return Err(Error::invalid(
                f("points"),
                "points are non-zero, at most 1000 either way",
            ));
        }
        match (r.dimension, &r.event) {
            (Dimension::Attribute, Some(_)) => {
                return Err(Error::invalid(
                    f("event"),
                    "attribute rules match attributes, not events",
                ))
            }
            (Dimension::Attribute, None) if r.conditions.is_empty() => {
                return Err(Error::invalid(
                    f("where"),
                    "an attribute rule needs a condition",
                ))
            }
            (Dimension::Attribute, None) if r.repeat != Repeat::Once => {
                return Err(Error::invalid(f("repeat"), "attribute rules award once"))
            }
            (Dimension::Behaviour | Dimension::Engagement, None) => {
                return Err(Error::invalid(
                    f("event"),
                    "behaviour and engagement rules name an event",
                ))
            }
            (_, Some(e)) if !crate::event::is_valid_event_name(e) => {
                return Err(Error::invalid(
                    f("event"),
                    "1-128 characters, no control characters",
                ))
            }
            _ => {}
        }
        if let Repeat::MaxPerDay(0) = r.repeat {
            return Err(Error::invalid(f("repeat"), "max_per_day is at least 1"));
        }
        for (j, c) in r.conditions.iter().enumerate() {
            check_condition(c, &format!("rules[{i}].where[{j}]"))?;
        }
    }
    if let Some(d) = &m.decay {
        if d.after_days == 0 || !(0.0..1.0).contains(&d.factor) {
            return Err(Error::invalid("decay", "after_days ≥ 1 and 0 ≤ factor < 1"));
        }
        if d.dimensions.contains(&Dimension::Attribute) {
            return Err(Error::invalid(
                "decay.dimensions",
                "attribute points never decay",
            ));
        }
    }
    if let Some(s) = &m.sales_ready {
        if s.all.is_empty() || s.window_days == 0 {
            return Err(Error::invalid(
                "sales_ready",
                "name at least one requirement and a window",
            ));
        }
        for (i, r) in s.all.iter().enumerate() {
            if r.count == 0 {
                return Err(Error::invalid(
                    format!("sales_ready.all[{i}].count"),
                    "count is at least 1",
                ));
            }
            for (j, c) in r.conditions.iter().enumerate() {
                check_condition(c, &format!("sales_ready.all[{i}].where[{j}]"))?;
            }
        }
    }
    Ok(())
}

fn check_condition(c: &Condition, at: &str) -> Result<(), Error> {
    if c.field.is_empty() || c.field.len() > 64 {
        return Err(Error::invalid(
            format!("{at}.field"),
            "name a property or attribute",
        ));
    }
    let ok = match c.op {
        Op::Gte | Op::Lte => c.value.is_number(),
        Op::PathStartsWith => c.value.as_str().is_some_and(|s| !s.is_empty()),
        Op::ContainsAny => c.value.as_array().is_some_and(|a| {
            !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        }),
        Op::Eq | Op::Ne => !c.value.is_array() && !c.value.is_object(),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("{at}.value"),
            "the value does not fit the operator",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seeded() -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.json")).unwrap(),
        )
        .unwrap()
    }

    fn field_of(doc: serde_json::Value) -> Option<String> {
        Model::parse(doc.to_string().as_bytes())
            .err()
            .and_then(|e| e.body().field)
    }

    #[test]
    fn tiers_follow_the_thresholds() {
        let t = Thresholds { mql: 20, sql: 40 };
        assert_eq!(
            [
                tier(0, &t),
                tier(19, &t),
                tier(20, &t),
                tier(39, &t),
                tier(40, &t)
            ],
            [
                "basic_awareness",
                "basic_awareness",
                "interest_deepening",
                "interest_deepening",
                "conversion"
            ]
        );
    }

    #[test]
    fn the_seeded_model_is_valid() {
        assert!(Model::parse(seeded().to_string().as_bytes()).is_ok());
    }

    #[test]
    fn invalid_models_name_the_offending_field() {
        let with = |path: &[&str], v: serde_json::Value| {
            let mut d = seeded();
            let mut at = &mut d;
            for p in &path[..path.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at[path[path.len() - 1]] = v;
            d
        };
        assert_eq!(
            field_of(with(&["thresholds", "mql"], json!(45))).as_deref(),
            Some("thresholds.mql")
        );
        assert_eq!(
            field_of(with(&["thresholds", "sql"], json!(-5))).as_deref(),
            Some("thresholds")
        );
        assert_eq!(
            field_of(with(&["rules", "0", "points"], json!(0))).as_deref(),
            Some("rules[0].points")
        );
        assert_eq!(
            field_of(with(&["rules", "0", "event"], json!(null))).as_deref(),
            Some("rules[0].event")
        );
        assert_eq!(
            field_of(with(&["rules", "3", "repeat"], json!("unlimited"))).as_deref(),
            Some("rules[3].repeat")
        );
        assert_eq!(
            field_of(with(&["rules", "3", "where", "0", "value"], json!("big"))).as_deref(),
            Some("rules[3].where[0].value")
        );
        assert_eq!(
            field_of(with(&["decay", "factor"], json!(1.5))).as_deref(),
            Some("decay")
        );
        assert_eq!(
            field_of(with(&["rules"], json!([]))).as_deref(),
            Some("rules")
        );
        assert_eq!(
            field_of(with(&["rules", "0", "evnt"], json!("page"))).as_deref(),
            Some("body")
        );
        let big = vec![b' '; MAX_MODEL_BYTES + 1];
        assert_eq!(
            Model::parse(&big).unwrap_err().body().field.as_deref(),
            Some("body")
        );
    }
}

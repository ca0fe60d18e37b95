//! Validating a submission against its form, and turning an accepted one into the event that
//! goes on the queue (personal data sealed, consent boxes as ledger entries).

use super::body::Fields;
use super::lang::Lang;
use super::{FieldType, FormDefinition, RENDERED_AT_FIELD, VISITOR_FIELD};
use crate::consent::ConsentChange;
use crate::event::{is_valid_visitor_id, Claims, Event, SharedStr, Subject};
use crate::identity::{claims_from, ClaimInput};
use crate::pii::{normalise_email, normalise_phone, PiiKeys};
use crate::time::Millis;
use serde::Serialize;
use serde_json::{Map, Value};

/// The name of the event a submission becomes.
pub const FORM_SUBMITTED: &str = "form_submitted";

/// One refused field, with a message in the visitor's language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Why a submission was taken for a bot's. The answer looks like success (a bot learns
/// nothing); the submission is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotSign {
    Honeypot,
    TooFast,
}

/// A submission that passed validation, before sealing.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub visitor_id: Option<String>,
    /// Every field's typed value, personal ones included (sealed by `to_event`).
    pub values: Map<String, Value>,
    /// Ids of the consent boxes ticked.
    pub consented: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted(Accepted),
    Invalid(Vec<FieldError>),
    Bot(BotSign),
}

const TRUTHY: [&str; 5] = ["on", "true", "1", "yes", "checked"];

/// Validates `fields` against `form`. `now` judges the minimum fill time.
pub fn validate(form: &FormDefinition, fields: &Fields, lang: Lang, now: Millis) -> Outcome {
    let values_of = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    if values_of(&form.honeypot)
        .iter()
        .any(|v| !v.trim().is_empty())
    {
        return Outcome::Bot(BotSign::Honeypot);
    }
    let rendered_at = values_of(RENDERED_AT_FIELD)
        .first()
        .and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(at) = rendered_at {
        let elapsed = now.0.saturating_sub(at);
        // A clock a little ahead of ours is not a bot: only a positive, short fill time is.
        if (0..i64::from(form.min_fill_ms)).contains(&elapsed) {
            return Outcome::Bot(BotSign::TooFast);
        }
    }

    let mut errors = Vec::new();
    let mut values = Map::new();
    for f in &form.fields {
        let label = f.label.get(lang);
        let mut fail = |code: &'static str, extra: &str| {
            errors.push(FieldError {
                field: f.name.clone(),
                code,
                message: message(code, label, extra, lang),
            })
        };
        let sent = values_of(&f.name);
        if f.kind == FieldType::Checkbox {
            let ticked = sent.iter().any(|v| is_truthy(v));
            if f.required && !ticked {
                fail("required", "");
            } else {
                values.insert(f.name.clone(), Value::Bool(ticked));
            }
            continue;
        }
        if sent.len() > 1 {
            fail("repeated", "");
            continue;
        }
        let raw = sent.first().map_or("", |v| v.trim_matches(is_blank));
        if raw.is_empty() {
            if f.required {
                fail("required", "");
            }
            continue;
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            fail("control_characters", "");
            continue;
        }
        let chars = raw.chars().count();
        let max = f.max_length.unwrap_or(super::DEFAULT_MAX_LENGTH);
        if chars > max {
            fail("too_long", &max.to_string());
            continue;
        }
        if f.min_length.is_some_and(|m| chars < m) {
            fail("too_short", &f.min_length.unwrap_or(0).to_string());
            continue;
        }
        match f.kind {
            FieldType::Email => match normalise_email(raw) {
                Some(_) => {
                    values.insert(f.name.clone(), raw.into());
                }
                None => fail("invalid_email", ""),
            },
            FieldType::Phone => match normalise_phone(raw) {
                Some(p)
                    if f.countries.is_empty()
                        || f.countries.iter().any(|c| p.starts_with(&format!("+{c}"))) =>
                {
                    values.insert(f.name.clone(), p.into());
                }
                Some(_) => fail("phone_country", &f.countries.join(", +")),
                None => fail("invalid_phone", ""),
            },
            FieldType::Text => {
                values.insert(f.name.clone(), raw.into());
            }
            FieldType::Select => match f.options.iter().find(|o| o.value == raw) {
                Some(o) => {
                    values.insert(f.name.clone(), o.value.clone().into());
                }
                None => fail("not_an_option", ""),
            },
            FieldType::Number => match parse_number(raw) {
                Some(n) if f.min.is_some_and(|m| n < m) || f.max.is_some_and(|m| n > m) => {
                    let range = format!(
                        "{}–{}",
                        f.min.map_or("…".into(), |m| m.to_string()),
                        f.max.map_or("…".into(), |m| m.to_string())
                    );
                    fail("out_of_range", &range)
                }
                Some(n) => {
                    let v = serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number);
                    values.insert(f.name.clone(), v);
                }
                None => fail("not_a_number", ""),
            },
            FieldType::Checkbox => {}
        }
    }
    let mut consented = Vec::new();
    for c in &form.consents {
        let ticked = values_of(&c.id).iter().any(|v| is_truthy(v));
        if ticked {
            consented.push(c.id.clone());
        } else if c.required {
            errors.push(FieldError {
                field: c.id.clone(),
                code: "consent_required",
                message: message("consent_required", c.text.get(lang), "", lang),
            });
        }
    }
    if !errors.is_empty() {
        return Outcome::Invalid(errors);
    }
    let visitor_id = values_of(VISITOR_FIELD)
        .first()
        .map(|v| v.trim())
        .filter(|v| is_valid_visitor_id(v))
        .map(str::to_string);
    Outcome::Accepted(Accepted {
        visitor_id,
        values,
        consented,
    })
}

/// Where a submission came from, for the consent record.
pub struct Provenance<'a> {
    pub event_id: &'a str,
    pub ip_hash: Option<String>,
    pub user_agent: Option<&'a str>,
    pub now: Millis,
    pub workspace: &'a str,
}

/// The queue event for an accepted submission: personal fields sealed as claims, the rest as
/// properties (they become contact attributes), ticked boxes as consent grants.
/// A submission without a visitor id gets a visitor of its own; when its email or phone is
/// already known, the engine merges it into that contact, keeping all history.
pub fn to_event(
    form: &FormDefinition,
    accepted: Accepted,
    keys: &PiiKeys,
    nonce: &mut dyn FnMut() -> [u8; 12],
    from: Provenance<'_>,
) -> Result<Event, FieldError> {
    let str_of = |k: &str| {
        accepted
            .values
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let email = str_of("email");
    let phone = str_of("phone");
    let (claims, mut properties): (Claims, _) = claims_from(
        ClaimInput {
            user_id: None,
            email: email.as_deref(),
            phone: phone.as_deref(),
            traits: accepted.values.clone(),
        },
        Some(keys),
        nonce,
    )
    .map_err(|(field, message)| FieldError {
        field: field.to_string(),
        code: "invalid",
        message,
    })?;
    properties.insert("form_id".into(), form.id.clone().into());
    properties.insert("form_version".into(), form.version.into());
    let user_agent = from
        .user_agent
        .map(|ua| ua.chars().take(512).collect::<String>());
    let consents = form
        .consents
        .iter()
        .filter(|c| accepted.consented.contains(&c.id))
        .map(|c| ConsentChange {
            item: c.id.clone(),
            channel: c.channel,
            purpose: c.purpose.clone(),
            granted: true,
            wording_version: Some(c.version.clone()),
            source: "form".into(),
            form_id: Some(form.id.clone()),
            ip_hash: from.ip_hash.clone(),
            user_agent: user_agent.clone(),
        })
        .collect();
    let visitor = accepted
        .visitor_id
        .unwrap_or_else(|| format!("form_{}", from.event_id));
    Ok(Event {
        id: from.event_id.to_string(),
        workspace: from.workspace.into(),
        site: form.site.as_deref().map(SharedStr::from),
        subject: Subject::Visitor(visitor.into()),
        session_id: None,
        name: FORM_SUBMITTED.into(),
        properties,
        claims,
        consents,
        occurred_at: from.now,
        received_at: from.now,
    })
}

fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

fn is_truthy(v: &str) -> bool {
    TRUTHY.contains(&v.trim().to_ascii_lowercase().as_str())
}

/// Numbers as people type them: full-width digits, thousands separators.
fn parse_number(raw: &str) -> Option<f64> {
    let cleaned: String = raw
        .chars()
        .filter_map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            '．' => Some('.'),
            '－' => Some('-'),
            ',' | '，' | ' ' | '\u{3000}' => None,
            c => Some(c),
        })
        .collect();
    if cleaned.len() > 32 {
        return None;
    }
    cleaned.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A field error's message. `extra` is the limit or the accepted countries.
fn message(code: &str, label: &str, extra: &str, lang: Lang) -> String {
    match lang {
        Lang::ZhCn => match code {
            "required" => format!("请填写{label}"),
            "repeated" => format!("{label}只能提交一次"),
            "control_characters" => format!("{label}含有不允许的控制字符"),
            "too_long" => format!("{label}最多 {extra} 个字符"),
            "too_short" => format!("{label}至少 {extra} 个字符"),
            "invalid_email" => format!("{label}不是有效的电子邮件地址"),
            "invalid_phone" => format!("{label}不是有效的手机号码"),
            "phone_country" => format!("{label}只接受国家代码 +{extra} 的号码"),
            "not_an_option" => format!("{label}的选项无效"),
            "not_a_number" => format!("{label}必须是数字"),
            "out_of_range" => format!("{label}必须在 {extra} 之间"),
            "consent_required" => format!("请勾选：{label}"),
            _ => format!("{label}无效"),
        },
        Lang::En => match code {
            "required" => format!("{label} is required"),
            "repeated" => format!("{label} was sent more than once"),
            "control_characters" => format!("{label} contains control characters"),
            "too_long" => format!("{label} is at most {extra} characters"),
            "too_short" => format!("{label} is at least {extra} characters"),
            "invalid_email" => format!("{label} is not a valid email address"),
            "invalid_phone" => format!("{label} is not a valid mobile number"),
            "phone_country" => format!("{label} accepts only numbers with country code +{extra}"),
            "not_an_option" => format!("{label}: choose one of the options"),
            "not_a_number" => format!("{label} must be a number"),
            "out_of_range" => format!("{label} must be between {extra}"),
            "consent_required" => format!("Please tick: {label}"),
            _ => format!("{label} is not valid"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::{PiiKind, DEV_PII_KEY};

    fn demo() -> FormDefinition {
        serde_json::from_str(include_str!("../../config/forms/demo-signup.json")).unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("name", "张伟"),
            ("email", " Zhang.Wei@Example.COM "),
            ("phone", "１３８ １２３４ ５６７８"),
            ("company", "Acme <script>alert(1)</script>"),
            ("industry", "manufacturing"),
            ("company_size", "500"),
            ("job_title", "市场总监"),
            ("consent_email", "on"),
            ("_kvid", "v_abcdef123456"),
        ]
    }

    const NOW: Millis = Millis(1_800_000_000_000);

    fn accepted(pairs: &[(&str, &str)], lang: Lang) -> Result<Accepted, Vec<FieldError>> {
        match validate(&demo(), &fields(pairs), lang, NOW) {
            Outcome::Accepted(a) => Ok(a),
            Outcome::Invalid(e) => Err(e),
            Outcome::Bot(b) => panic!("taken for a bot: {b:?}"),
        }
    }

    #[test]
    fn a_good_submission_is_typed_and_cleaned() {
        let a = accepted(&good(), Lang::En).unwrap();
        assert_eq!(a.values["phone"], "+8613812345678");
        assert_eq!(a.values["email"], "Zhang.Wei@Example.COM");
        assert_eq!(a.values["company"], "Acme <script>alert(1)</script>");
        assert_eq!(a.visitor_id.as_deref(), Some("v_abcdef123456"));
        assert_eq!(a.consented, ["consent_email"]);
    }

    #[test]
    fn errors_name_each_field_in_the_visitors_language() {
        let mut p = good();
        p.retain(|(k, _)| *k != "email");
        p.push(("email", "zhang@"));
        p.retain(|(k, _)| *k != "phone");
        p.push(("phone", "+1 415 555 0100"));
        p.retain(|(k, _)| *k != "industry");
        p.push(("industry", "piracy"));
        let en = accepted(&p, Lang::En).unwrap_err();
        let codes: Vec<_> = en.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            codes,
            [
                ("email", "invalid_email"),
                ("phone", "phone_country"),
                ("industry", "not_an_option")
            ]
        );
        assert!(en[1].message.contains("+86"), "{}", en[1].message);
        let zh = accepted(&p, Lang::ZhCn).unwrap_err();
        assert!(zh[0].message.contains("电子邮件"), "{}", zh[0].message);
    }

    #[test]
    fn hostile_values_get_precise_refusals() {
        let mut p = good();
        p.retain(|(k, _)| *k != "company");
        p.push(("company", "Acme\0Corp"));
        let e = accepted(&p, Lang::En).unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].code),
            ("company", "control_characters")
        );

        let long = "x".repeat(201);
        let mut p = good();
        p.retain(|(k, _)| *k != "job_title");
        p.push(("job_title", &long));
        let e = accepted(&p, Lang::En).unwrap_err();
        assert_eq!(e[0].code, "too_long");

        let mut p = good();
        p.push(("email", "second@example.com"));
        let e = accepted(&p, Lang::En).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].code), ("email", "repeated"));

        let mut p = good();
        p.retain(|(k, _)| *k != "email");
        let e = accepted(&p, Lang::ZhCn).unwrap_err();
        assert_eq!((e[0].field.as_str(), e[0].code), ("email", "required"));
    }

    #[test]
    fn a_missing_consent_box_means_no_consent_not_a_refusal() {
        let mut p = good();
        p.retain(|(k, _)| *k != "consent_email");
        let a = accepted(&p, Lang::En).unwrap();
        assert!(a.consented.is_empty());
        let mut form = demo();
        form.consents[0].required = true;
        let Outcome::Invalid(e) = validate(&form, &fields(&p), Lang::En, NOW) else {
            panic!("a required box must be ticked")
        };
        assert_eq!(e[0].code, "consent_required");
    }

    #[test]
    fn honeypots_and_instant_posts_are_bots() {
        let mut p = good();
        p.push(("website", "http://spam.example"));
        assert_eq!(
            validate(&demo(), &fields(&p), Lang::En, NOW),
            Outcome::Bot(BotSign::Honeypot)
        );
        let just_now = (NOW.0 - 300).to_string();
        let mut p = good();
        p.push(("_kts", &just_now));
        assert_eq!(
            validate(&demo(), &fields(&p), Lang::En, NOW),
            Outcome::Bot(BotSign::TooFast)
        );
        let a_minute_ago = (NOW.0 - 60_000).to_string();
        let mut p = good();
        p.push(("_kts", &a_minute_ago));
        assert!(matches!(
            validate(&demo(), &fields(&p), Lang::En, NOW),
            Outcome::Accepted(_)
        ));
    }

    #[test]
    fn the_event_seals_personal_data_and_carries_the_consent() {
        let keys = PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap();
        let a = accepted(&good(), Lang::En).unwrap();
        let e = to_event(
            &demo(),
            a,
            &keys,
            &mut || [4; 12],
            Provenance {
                event_id: "f_0123456789abcdef",
                ip_hash: Some("iphash".into()),
                user_agent: Some("Mozilla/5.0"),
                now: NOW,
                workspace: "default",
            },
        )
        .unwrap();
        let text = serde_json::to_string(&e).unwrap();
        for plain in ["Zhang", "zhang", "13812345678", "张伟"] {
            assert!(!text.contains(plain), "{plain} in {text}");
        }
        assert_eq!(
            e.claims.email.as_ref().unwrap().index,
            keys.index(PiiKind::Email, "zhang.wei@example.com")
        );
        assert_eq!(e.properties["company_size"], "500");
        assert_eq!(e.properties["form_id"], "demo-signup");
        assert_eq!(e.consents.len(), 1);
        assert_eq!(e.consents[0].wording_version.as_deref(), Some("2026-12-01"));
        assert_eq!(e.subject, Subject::Visitor("v_abcdef123456".into()));
    }
}

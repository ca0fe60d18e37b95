//! Landing-page forms: definitions (JSON documents managed at `/v1/forms`, published to KV for
//! the forms function), the parsing of submitted bodies and the validation of submissions.

pub mod body;
pub mod lang;
pub mod submit;

use crate::consent::Channel;
use crate::error::Error;
use crate::identity::PERSONAL_TRAITS;
use lang::Text;
use serde::{Deserialize, Serialize};

/// Field names the forms function reads itself: the visitor id the snippet adds, and the time
/// the page rendered the form (for the minimum fill time).
pub const VISITOR_FIELD: &str = "_kvid";
pub const RENDERED_AT_FIELD: &str = "_kts";

/// Longest text value unless a field says otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Email,
    Phone,
    Text,
    Select,
    Number,
    Checkbox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The submitted name, and the contact attribute it fills (`email`, `phone`, `name`,
    /// `first_name` and `last_name` become sealed personal data instead).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub label: Text,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
    /// Phones only: the calling codes accepted (e.g. `["86"]`); empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
}

/// A consent box: one channel, its exact wording and the wording's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentItem {
    /// The submitted name of the checkbox.
    pub id: String,
    pub channel: Channel,
    #[serde(default = "marketing")]
    pub purpose: String,
    pub text: Text,
    pub version: String,
    /// A required box must be ticked for the submission to be accepted.
    #[serde(default)]
    pub required: bool,
}

fn marketing() -> String {
    crate::consent::MARKETING.to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormDefinition {
    pub id: String,
    pub name: String,
    /// Set by the store on each save.
    #[serde(default)]
    pub version: u32,
    /// The site the form belongs to (attribution, drop counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub fields: Vec<Field>,
    #[serde(default)]
    pub consents: Vec<ConsentItem>,
    /// Where a browser goes after a successful post: absolute, or a path on the page's origin.
    pub success_url: String,
    /// Origins whose pages may post the form. A post from anywhere else is refused.
    pub allowed_origins: Vec<String>,
    /// Posts faster than this after the page rendered the form are treated as bots.
    #[serde(default = "default_min_fill_ms")]
    pub min_fill_ms: u32,
    /// A field hidden from people; bots fill it.
    #[serde(default = "default_honeypot")]
    pub honeypot: String,
}

fn default_min_fill_ms() -> u32 {
    2_000
}

fn default_honeypot() -> String {
    "website".into()
}

/// The KV key a form is published under.
pub fn kv_key(form_id: &str) -> String {
    format!("form:{form_id}")
}

/// Form ids: 1-64 lowercase letters, digits and dashes (they appear in URLs).
pub fn is_valid_form_id(id: &str) -> bool {
    crate::site::is_valid_site_key(id)
}

fn is_field_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Personal fields a form may collect: they are sealed, never stored in the clear.
const SEALED_FIELDS: [&str; 5] = ["email", "phone", "name", "first_name", "last_name"];

impl FormDefinition {
    /// Checks a definition before it is stored; the error names the field path.
    pub fn validate(&self) -> Result<(), Error> {
        if !is_valid_form_id(&self.id) {
            return Err(Error::invalid(
                "id",
                "form ids are 1-64 lowercase letters, digits or dashes",
            ));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(Error::invalid("name", "name must be 1-200 characters"));
        }
        if self.fields.is_empty() || self.fields.len() > 50 {
            return Err(Error::invalid("fields", "a form has 1-50 fields"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            let at = |what: &str| format!("fields[{i}].{what}");
            if !is_field_name(&f.name) || f.name.starts_with('_') {
                return Err(Error::invalid(
                    at("name"),
                    "field names are 1-64 of a-z 0-9 _ starting with a letter",
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(Error::invalid(
                    at("name"),
                    format!("{} appears twice", f.name),
                ));
            }
            if PERSONAL_TRAITS.contains(&f.name.as_str())
                && !SEALED_FIELDS.contains(&f.name.as_str())
            {
                return Err(Error::invalid(
                    at("name"),
                    format!("{} is personal data Kindling does not collect", f.name),
                ));
            }
            let sealed_kind = match f.name.as_str() {
                "email" => Some(FieldType::Email),
                "phone" => Some(FieldType::Phone),
                "name" | "first_name" | "last_name" => Some(FieldType::Text),
                _ => None,
            };
            if sealed_kind.is_some_and(|k| k != f.kind) {
                return Err(Error::invalid(
                    at("type"),
                    format!("the {} field must have type {:?}", f.name, sealed_kind),
                ));
            }
            if matches!(f.kind, FieldType::Email | FieldType::Phone) && sealed_kind.is_none() {
                return Err(Error::invalid(
                    at("name"),
                    "email and phone fields must be named email and phone",
                ));
            }
            if f.label.is_empty() {
                return Err(Error::invalid(at("label"), "give a label in zh-CN or en"));
            }
            if f.kind == FieldType::Select && f.options.is_empty() {
                return Err(Error::invalid(at("options"), "a select needs options"));
            }
            if f.kind != FieldType::Select && !f.options.is_empty() {
                return Err(Error::invalid(at("options"), "only selects have options"));
            }
            if f.max_length.is_some_and(|m| m == 0 || m > 10_000) {
                return Err(Error::invalid(at("max_length"), "max_length is 1-10000"));
            }
            if let (Some(a), Some(b)) = (f.min_length, f.max_length) {
                if a > b {
                    return Err(Error::invalid(
                        at("min_length"),
                        "min_length exceeds max_length",
                    ));
                }
            }
            if let (Some(a), Some(b)) = (f.min, f.max) {
                if a > b {
                    return Err(Error::invalid(at("min"), "min exceeds max"));
                }
            }
            if f.countries
                .iter()
                .any(|c| !(1..=3).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(Error::invalid(
                    at("countries"),
                    "countries are calling codes such as \"86\"",
                ));
            }
        }
        if !self
            .fields
            .iter()
            .any(|f| matches!(f.name.as_str(), "email" | "phone"))
        {
            return Err(Error::invalid(
                "fields",
                "a form needs an email or a phone field: that is how a lead is recognised",
            ));
        }
        let mut channels = std::collections::BTreeSet::new();
        for (i, c) in self.consents.iter().enumerate() {
            let at = |what: &str| format!("consents[{i}].{what}");
            if !is_field_name(&c.id) || seen.contains(c.id.as_str()) {
                return Err(Error::invalid(
                    at("id"),
                    "consent ids are field names not used by a field",
                ));
            }
            if !channels.insert((c.channel, c.purpose.clone())) {
                return Err(Error::invalid(
                    at("channel"),
                    "one consent box per channel and purpose",
                ));
            }
            if c.text.is_empty() {
                return Err(Error::invalid(
                    at("text"),
                    "consent needs its exact wording in zh-CN or en",
                ));
            }
            if c.version.trim().is_empty() || c.version.len() > 64 {
                return Err(Error::invalid(at("version"), "version is 1-64 characters"));
            }
        }
        let url = self.success_url.as_str();
        let path = url.starts_with('/') && !url.starts_with("//");
        let absolute = url.starts_with("https://") || url.starts_with("http://");
        if !(path || absolute) || url.chars().any(char::is_control) || url.len() > 2048 {
            return Err(Error::invalid(
                "success_url",
                "an absolute http(s) URL or a path starting with /",
            ));
        }
        if self.allowed_origins.is_empty() {
            return Err(Error::invalid(
                "allowed_origins",
                "list the origins whose pages post this form",
            ));
        }
        crate::store::sites::validate_origins(&self.allowed_origins)?;
        if !is_field_name(&self.honeypot) || seen.contains(self.honeypot.as_str()) {
            return Err(Error::invalid(
                "honeypot",
                "the honeypot is a field name no real field uses",
            ));
        }
        if self.min_fill_ms > 60_000 {
            return Err(Error::invalid("min_fill_ms", "at most 60000"));
        }
        Ok(())
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin))
    }

    /// The success page for a post from `origin` (already checked against the allowed list).
    pub fn success_location(&self, origin: Option<&str>) -> Option<String> {
        if self.success_url.starts_with('/') {
            origin.map(|o| format!("{o}{}", self.success_url))
        } else {
            Some(self.success_url.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn demo() -> FormDefinition {
        let text = include_str!("../../config/forms/demo-signup.json");
        serde_json::from_str(text).expect("the seeded demo form parses")
    }

    #[test]
    fn the_seeded_demo_form_is_valid() {
        let f = demo();
        f.validate().unwrap();
        let names: Vec<_> = f.fields.iter().map(|f| f.name.as_str()).collect();
        for n in [
            "name",
            "email",
            "phone",
            "company",
            "industry",
            "company_size",
            "job_title",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(!f.consents.is_empty());
    }

    fn invalid_field(f: FormDefinition) -> String {
        f.validate().unwrap_err().body().field.unwrap_or_default()
    }

    #[test]
    fn definitions_are_refused_with_the_path_of_the_problem() {
        let mut f = demo();
        f.fields[1].kind = FieldType::Text;
        assert_eq!(invalid_field(f), "fields[1].type");
        let mut f = demo();
        f.fields[2].name = "address".into();
        assert_eq!(invalid_field(f), "fields[2].name");
        let mut f = demo();
        f.consents[0].version = String::new();
        assert_eq!(invalid_field(f), "consents[0].version");
        let mut f = demo();
        f.success_url = "javascript:alert(1)".into();
        assert_eq!(invalid_field(f), "success_url");
        let mut f = demo();
        f.honeypot = "email".into();
        assert_eq!(invalid_field(f), "honeypot");
        let mut f = demo();
        f.fields.retain(|f| f.name != "email" && f.name != "phone");
        assert_eq!(invalid_field(f), "fields");
    }

    #[test]
    fn a_relative_success_url_follows_the_posting_origin() {
        let mut f = demo();
        f.success_url = "/thanks.html".into();
        assert_eq!(
            f.success_location(Some("https://a.example")).as_deref(),
            Some("https://a.example/thanks.html")
        );
        assert_eq!(f.success_location(None), None);
    }
}

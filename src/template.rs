//! Message templates for email, SMS and WeCom: JSON documents checked when they are saved, so
//! that rendering at send time cannot fail. A template holds its parts (subject, HTML, text) per
//! locale, optional A/B variants that override parts, and a small syntax:
//!
//! - `{{ name }}` and `{{ name | "default" }}`: a variable, with a default for missing or empty
//!   values. Values are always escaped for the part they land in; there is no raw `{{{ }}}`.
//! - `{{#if industry == "finance"}} … {{else if …}} … {{else}} … {{/if}}`: dynamic content by
//!   variable or tag (`==`, `!=` against a string literal, or bare truthiness), nested ≤ 8 deep.
//! - `\{{` renders a literal `{{`.
//!
//! Variable names are the built-ins, `tag.<key>` for any tag, and the template's `variables`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::consent::Channel;
use crate::error::Error;
use crate::form::lang::Lang;

/// Largest template document accepted by [`parse`].
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Largest single part (subject, html or text) of one locale.
pub const MAX_PART_BYTES: usize = 100 * 1024;
/// Longest SMS text (characters, before variables are filled in).
pub const MAX_SMS_CHARS: usize = 500;
/// Longest subject (characters, before variables are filled in).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Deepest nesting of `{{#if}}` blocks.
pub const MAX_NESTING: usize = 8;
/// Most A/B variants besides the base template.
pub const MAX_VARIANTS: usize = 20;
/// Most extra variables a template may declare.
pub const MAX_VARIABLES: usize = 100;
/// The id of the base template when variants are assigned.
pub const BASE_VARIANT: &str = "a";

/// Variables every template may use without declaring them.
pub const BUILT_IN_VARIABLES: [&str; 12] = [
    "first_name",
    "last_name",
    "name",
    "company",
    "job_title",
    "industry",
    "region",
    "company_size",
    "email",
    "unsubscribe_url",
    "preferences_url",
    "view_in_browser_url",
];

/// The locales a template may be written in, as `Lang::tag` spells them.
const LOCALES: [&str; 2] = ["zh-CN", "en"];

/// Words of the syntax itself: a variable by that name could not be told from the keyword.
const RESERVED: [&str; 2] = ["if", "else"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// 1-64 of a-z 0-9 `-`; the api sets it from the URL.
    pub id: String,
    pub name: String,
    pub channel: Channel,
    /// Extra variable names the sender supplies, besides the built-ins and `tag.*`.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Parts per locale (`zh-CN`, `en`).
    pub locales: BTreeMap<String, Parts>,
    /// A/B variants; the base template is variant `a`.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// How the A/B test is judged, and whether engine's cron rolls the winner out by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab: Option<AbPlan>,
    /// Set by the store.
    #[serde(default)]
    pub version: u64,
}

/// An A/B test's plan: the metric, the sends each variant needs before a winner may be
/// declared, the conversion event, and automatic rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbPlan {
    pub metric: crate::delivery::ab::Metric,
    pub min_sample: u64,
    #[serde(default = "default_goal")]
    pub goal: String,
    #[serde(default)]
    pub auto_rollout: bool,
}

fn default_goal() -> String {
    "order_completed".into()
}

/// The parts of one locale. Which are required depends on the channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An A/B variant: per locale, the parts it replaces; everything it does not list comes from
/// the base template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub id: String,
    pub locales: BTreeMap<String, Parts>,
}

impl Template {
    /// The variant ids to assign between, base first: `["a", "b", …]`.
    pub fn variant_ids(&self) -> Vec<&str> {
        std::iter::once(BASE_VARIANT)
            .chain(self.variants.iter().map(|v| v.id.as_str()))
            .collect()
    }
}

/// What a message is rendered for.
pub struct RenderContext<'a> {
    /// Variable values by the name templates use (`first_name`, `tag.industry`, `coupon_code`).
    pub vars: &'a BTreeMap<String, String>,
    pub lang: Lang,
    /// `"a"` or a variant id; an unknown id renders the base template.
    pub variant: &'a str,
}

/// A rendered message. Parts the channel does not have are None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    /// The variant actually rendered.
    pub variant: String,
    /// The locale actually rendered (the requested one, else the one the template has).
    pub lang: Lang,
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation of documents.
// ---------------------------------------------------------------------------------------------

/// Parses and validates a template document; errors name the field (`body` for the JSON).
pub fn parse(json: &[u8]) -> Result<Template, Error> {
    if json.len() > MAX_TEMPLATE_BYTES {
        return Err(Error::invalid("body", "a template is at most 256 KB"));
    }
    let t: Template = serde_json::from_slice(json)
        .map_err(|e| Error::invalid("body", format!("not a template: {e}")))?;
    validate(&t)?;
    Ok(t)
}

/// Template ids: 1-64 lowercase letters, digits and dashes (they appear in URLs).
pub fn is_valid_template_id(id: &str) -> bool {
    crate::site::is_valid_site_key(id)
}

/// Variant ids: 1-16 lowercase letters and digits.
pub fn is_valid_variant_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Names a template may declare: 1-64 of a-z 0-9 `_`, starting with a letter.
fn is_declarable(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `tag.<key>`: any key of a-z 0-9 `_` (tags come and go, so they are not listed anywhere).
fn is_tag_variable(name: &str) -> bool {
    name.strip_prefix("tag.").is_some_and(|key| {
        (1..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// The variables one template may use.
struct Names<'t> {
    declared: &'t [String],
}

impl Names<'_> {
    fn knows(&self, name: &str) -> bool {
        BUILT_IN_VARIABLES.contains(&name)
            || is_tag_variable(name)
            || self.declared.iter().any(|d| d == name)
    }
}

/// A key shown in a field path or message: user input, so bounded.
fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks a template before it is stored; the error names the field path
/// (`locales.zh-CN.html`, `variants[0].locales.en.subject`) and says what is wrong and where.
pub fn validate(t: &Template) -> Result<(), Error> {
    if !is_valid_template_id(&t.id) {
        return Err(Error::invalid(
            "id",
            "template ids are 1-64 lowercase letters, digits or dashes",
        ));
    }
    if t.name.trim().is_empty() || t.name.chars().count() > 200 {
        return Err(Error::invalid("name", "name must be 1-200 characters"));
    }
    if t.variables.len() > MAX_VARIABLES {
        return Err(Error::invalid(
            "variables",
            format!("a template declares at most {MAX_VARIABLES} variables"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, v) in t.variables.iter().enumerate() {
        let field = format!("variables[{i}]");
        if !is_declarable(v) {
            return Err(Error::invalid(
                field,
                "variable names are 1-64 of a-z 0-9 _ starting with a letter",
            ));
        }
        if RESERVED.contains(&v.as_str()) {
            return Err(Error::invalid(
                field,
                format!("\"{v}\" is a keyword of the template syntax"),
            ));
        }
        if !seen.insert(v.as_str()) {
            return Err(Error::invalid(field, format!("\"{v}\" appears twice")));
        }
    }
    if let Some(ab) = &t.ab {
        if t.variants.is_empty() {
            return Err(Error::invalid(
                "ab",
                "an A/B plan needs at least one variant",
            ));
        }
        if !(10..=1_000_000).contains(&ab.min_sample) {
            return Err(Error::invalid(
                "ab.min_sample",
                "min_sample is 10-1000000 sends",
            ));
        }
        if ab.goal.trim().is_empty() || ab.goal.chars().count() > 128 {
            return Err(Error::invalid(
                "ab.goal",
                "goal is an event name of 1-128 characters",
            ));
        }
    }
    let names = Names {
        declared: &t.variables,
    };
    if t.locales.is_empty() {
        return Err(Error::invalid(
            "locales",
            "give the template in at least one of zh-CN, en",
        ));
    }
    for (key, parts) in &t.locales {
        let path = format!("locales.{}", shown(key));
        if !LOCALES.contains(&key.as_str()) {
            return Err(Error::invalid(path, "locales are zh-CN or en"));
        }
        check_base_parts(t.channel, &path, parts)?;
        check_part_bodies(t.channel, &path, parts, &names)?;
    }
    if t.variants.len() > MAX_VARIANTS {
        return Err(Error::invalid(
            "variants",
            format!("a template has at most {MAX_VARIANTS} variants"),
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, v) in t.variants.iter().enumerate() {
        let at = format!("variants[{i}]");
        if v.id == BASE_VARIANT {
            return Err(Error::invalid(
                format!("{at}.id"),
                "\"a\" is the base template; name variants b, c, …",
            ));
        }
        if !is_valid_variant_id(&v.id) {
            return Err(Error::invalid(
                format!("{at}.id"),
                "variant ids are 1-16 lowercase letters or digits",
            ));
        }
        if !ids.insert(v.id.as_str()) {
            return Err(Error::invalid(
                format!("{at}.id"),
                format!("variant {} appears twice", v.id),
            ));
        }
        if v.locales.is_empty() {
            return Err(Error::invalid(
                format!("{at}.locales"),
                "a variant overrides parts of at least one locale",
            ));
        }
        for (key, parts) in &v.locales {
            let path = format!("{at}.locales.{}", shown(key));
            if !LOCALES.contains(&key.as_str()) {
                return Err(Error::invalid(path, "locales are zh-CN or en"));
            }
            let Some(base) = t.locales.get(key) else {
                return Err(Error::invalid(
                    path,
                    format!("the base template has no {key} locale"),
                ));
            };
            check_override(t.channel, &path, key, parts, base)?;
            check_part_bodies(t.channel, &path, parts, &names)?;
        }
    }
    Ok(())
}

fn present(part: &Option<String>) -> bool {
    part.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// Which parts a locale of the base template must and must not have.
fn check_base_parts(channel: Channel, path: &str, p: &Parts) -> Result<(), Error> {
    match channel {
        Channel::Email => {
            if !present(&p.subject) {
                return Err(Error::invalid(
                    format!("{path}.subject"),
                    "email templates need a subject in every locale",
                ));
            }
            if p.html.is_none() && p.text.is_none() {
                return Err(Error::invalid(
                    path,
                    "email templates need html or text in every locale",
                ));
            }
        }
        Channel::Sms | Channel::Wecom => {
            text_only(channel, path, p)?;
            if p.text.is_none() {
                return Err(Error::invalid(
                    format!("{path}.text"),
                    format!("{} templates need text in every locale", channel.as_str()),
                ));
            }
        }
    }
    Ok(())
}

fn text_only(channel: Channel, path: &str, p: &Parts) -> Result<(), Error> {
    for (part, value) in [("subject", &p.subject), ("html", &p.html)] {
        if value.is_some() {
            return Err(Error::invalid(
                format!("{path}.{part}"),
                format!("{} templates have text only", channel.as_str()),
            ));
        }
    }
    Ok(())
}

/// A variant replaces parts the base locale has, and nothing else.
fn check_override(
    channel: Channel,
    path: &str,
    locale: &str,
    p: &Parts,
    base: &Parts,
) -> Result<(), Error> {
    if channel != Channel::Email {
        text_only(channel, path, p)?;
    }
    if p.subject.is_none() && p.html.is_none() && p.text.is_none() {
        return Err(Error::invalid(
            path,
            "a variant locale overrides at least one part",
        ));
    }
    for (part, over, has) in [
        ("subject", &p.subject, &base.subject),
        ("html", &p.html, &base.html),
        ("text", &p.text, &base.text),
    ] {
        if over.is_some() && has.is_none() {
            return Err(Error::invalid(
                format!("{path}.{part}"),
                format!("the base {locale} locale has no {part} to override"),
            ));
        }
    }
    Ok(())
}

/// Size, length and syntax of every part present.
fn check_part_bodies(
    channel: Channel,
    path: &str,
    p: &Parts,
    names: &Names<'_>,
) -> Result<(), Error> {
    for (part, value) in [
        ("subject", &p.subject),
        ("html", &p.html),
        ("text", &p.text),
    ] {
        let Some(src) = value else { continue };
        let field = format!("{path}.{part}");
        if src.trim().is_empty() {
            let message = if part == "subject" && channel == Channel::Email {
                "email templates need a subject in every locale".to_string()
            } else {
                format!("{part} is empty: give content or leave the part out")
            };
            return Err(Error::invalid(field, message));
        }
        if src.len() > MAX_PART_BYTES {
            return Err(Error::invalid(field, "a part is at most 100 KB"));
        }
        if part == "subject" && src.chars().count() > MAX_SUBJECT_CHARS {
            return Err(Error::invalid(
                field,
                format!("a subject is at most {MAX_SUBJECT_CHARS} characters"),
            ));
        }
        if part == "text" && channel == Channel::Sms && src.chars().count() > MAX_SMS_CHARS {
            return Err(Error::invalid(
                field,
                format!("sms text is at most {MAX_SMS_CHARS} characters"),
            ));
        }
        parse_part(src, Some(names)).map_err(|message| Error::invalid(field, message))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The template syntax.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Node<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        default: Option<Cow<'a, str>>,
    },
    If {
        branches: Vec<(Cond<'a>, Vec<Node<'a>>)>,
        otherwise: Vec<Node<'a>>,
    },
}

#[derive(Debug)]
enum Cond<'a> {
    Truthy(&'a str),
    Eq(&'a str, Cow<'a, str>),
    Ne(&'a str, Cow<'a, str>),
}

/// What one `{{ … }}` tag says.
enum Tag<'a> {
    Var(Node<'a>),
    If(Cond<'a>),
    ElseIf(Cond<'a>),
    Else,
    EndIf,
}

/// An open `{{#if}}` while its body is read.
struct Frame<'a> {
    opened_at: usize,
    branches: Vec<(Cond<'a>, Vec<Node<'a>>)>,
    /// The condition of the branch being read; None once inside `{{else}}`.
    cond: Option<Cond<'a>>,
    nodes: Vec<Node<'a>>,
}

impl<'a> Frame<'a> {
    fn close(self) -> Node<'a> {
        let mut branches = self.branches;
        let otherwise = match self.cond {
            Some(cond) => {
                branches.push((cond, self.nodes));
                Vec::new()
            }
            None => self.nodes,
        };
        Node::If {
            branches,
            otherwise,
        }
    }
}

/// "line L, column C" (1-based, columns in characters) of a byte offset in `src`.
fn place(src: &str, offset: usize) -> String {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}")
}

/// Parses one part into nodes. With `names`, every variable must be one of them (validation);
/// without, any name is accepted (rendering, where unknown names are simply empty). The error
/// is a message that says what and where.
fn parse_part<'a>(src: &'a str, names: Option<&Names<'_>>) -> Result<Vec<Node<'a>>, String> {
    let bytes = src.as_bytes();
    let mut root: Vec<Node<'a>> = Vec::new();
    let mut stack: Vec<Frame<'a>> = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    // Every index the loop stops at is an ASCII byte (`\` or `{`), so slices stay on char
    // boundaries.
    while i < bytes.len() {
        let escaped = bytes[i] == b'\\' && bytes[i + 1..].starts_with(b"{{");
        if !escaped && !bytes[i..].starts_with(b"{{") {
            i += 1;
            continue;
        }
        let current = stack.last_mut().map_or(&mut root, |f| &mut f.nodes);
        if text_start < i {
            current.push(Node::Text(&src[text_start..i]));
        }
        if escaped {
            current.push(Node::Text("{{"));
            i += 3;
            text_start = i;
            continue;
        }
        let open = i;
        if bytes[open..].starts_with(b"{{{") {
            return Err(format!(
                "raw {{{{{{ }}}}}} tags are not supported at {}: values are always escaped, \
                 use {{{{ name }}}}",
                place(src, open)
            ));
        }
        let (inner, end) = tag_bounds(src, open)?;
        match parse_tag(src, inner, names)? {
            Tag::Var(node) => current.push(node),
            Tag::If(cond) => {
                if stack.len() >= MAX_NESTING {
                    return Err(format!(
                        "{{{{#if}}}} nested more than {MAX_NESTING} deep at {}",
                        place(src, open)
                    ));
                }
                stack.push(Frame {
                    opened_at: open,
                    branches: Vec::new(),
                    cond: Some(cond),
                    nodes: Vec::new(),
                });
            }
            Tag::ElseIf(cond) => {
                let Some(frame) = stack.last_mut() else {
                    return Err(format!(
                        "{{{{else if}}}} without {{{{#if}}}} at {}",
                        place(src, open)
                    ));
                };
                let Some(previous) = frame.cond.replace(cond) else {
                    return Err(format!(
                        "{{{{else if}}}} after {{{{else}}}} at {}",
                        place(src, open)
                    ));
                };
                let body = std::mem::take(&mut frame.nodes);
                frame.branches.push((previous, body));
            }
            Tag::Else => {
                let Some(frame) = stack.last_mut() else {
                    return Err(format!(
                        "{{{{else}}}} without {{{{#if}}}} at {}",
                        place(src, open)
                    ));
                };
                let Some(previous) = frame.cond.take() else {
                    return Err(format!(
                        "{{{{else}}}} after {{{{else}}}} at {}",
                        place(src, open)
                    ));
                };
                let body = std::mem::take(&mut frame.nodes);
                frame.branches.push((previous, body));
            }
            Tag::EndIf => {
                let Some(frame) = stack.pop() else {
                    return Err(format!(
                        "{{{{/if}}}} without {{{{#if}}}} at {}",
                        place(src, open)
                    ));
                };
                let node = frame.close();
                stack
                    .last_mut()
                    .map_or(&mut root, |f| &mut f.nodes)
                    .push(node);
            }
        }
        i = end;
        text_start = i;
    }
    if let Some(frame) = stack.last() {
        return Err(format!(
            "unclosed {{{{#if}}}} opened at {}",
            place(src, frame.opened_at)
        ));
    }
    if text_start < src.len() {
        root.push(Node::Text(&src[text_start..]));
    }
    Ok(root)
}

/// The content of the tag opened at `open` and the offset just past its `}}`. `}}` inside a
/// quoted string does not close the tag; a `{{` before the close means this one was never
/// closed, which reads better than a confusing error about the next tag.
fn tag_bounds(src: &str, open: usize) -> Result<(std::ops::Range<usize>, usize), String> {
    let bytes = src.as_bytes();
    let mut j = open + 2;
    let mut in_string = false;
    while j < bytes.len() {
        let b = bytes[j];
        if in_string {
            match b {
                b'\\' => j += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if bytes[j..].starts_with(b"}}") {
            return Ok((open + 2..j, j + 2));
        } else if bytes[j..].starts_with(b"{{") {
            break;
        }
        j += 1;
    }
    Err(format!("unterminated tag at {}", place(src, open)))
}

/// Reads the inside of one tag. Offsets are kept relative to the whole part for messages.
struct Cursor<'a, 's> {
    src: &'s str,
    content: &'a str,
    base: usize,
    pos: usize,
}

impl<'a> Cursor<'a, '_> {
    fn rest(&self) -> &'a str {
        self.content.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn done(&mut self) -> bool {
        self.skip_ws();
        self.rest().is_empty()
    }

    fn here(&self) -> String {
        place(self.src, self.base + self.pos)
    }

    fn eat(&mut self, prefix: &str) -> bool {
        let found = self.rest().starts_with(prefix);
        if found {
            self.pos += prefix.len();
        }
        found
    }

    /// A word: everything up to whitespace or the syntax's punctuation.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '|' | '=' | '!' | '"' | '\''))
            .unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// A double-quoted string; `\"` and `\\` are the escapes, any other backslash is kept.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let rest = self.rest();
        let body = rest.strip_prefix('"')?;
        let mut owned: Option<String> = None;
        let mut chars = body.char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += 1 + k + 1;
                    return Some(match owned {
                        Some(s) => Cow::Owned(s),
                        None => Cow::Borrowed(&body[..k]),
                    });
                }
                '\\' => {
                    let s = owned.get_or_insert_with(|| body[..k].to_string());
                    match chars.next() {
                        Some((_, e @ ('"' | '\\'))) => s.push(e),
                        Some((_, other)) => {
                            s.push('\\');
                            s.push(other);
                        }
                        None => s.push('\\'),
                    }
                }
                c => {
                    if let Some(s) = owned.as_mut() {
                        s.push(c);
                    }
                }
            }
        }
        None
    }

    /// A variable name, checked against the names the template may use.
    fn name(&mut self, names: Option<&Names<'_>>) -> Result<&'a str, String> {
        self.skip_ws();
        let at = self.here();
        let name = self.word();
        if name.is_empty() {
            return Err(format!("expected a variable name at {at}"));
        }
        // Rendering accepts any well-formed name (an unknown one is simply empty); saving
        // accepts only the names this template may use.
        let known = match names {
            Some(n) => n.knows(name),
            None => is_declarable(name) || is_tag_variable(name),
        };
        if !known {
            return Err(format!("unknown variable {:?} at {at}", shown(name)));
        }
        Ok(name)
    }

    /// `name`, `name == "value"` or `name != "value"`, filling the rest of the tag.
    fn condition(&mut self, tag: &str, names: Option<&Names<'_>>) -> Result<Cond<'a>, String> {
        if self.done() {
            return Err(format!(
                "{{{{{tag}}}}} needs a condition at {}",
                self.here()
            ));
        }
        let name = self.name(names)?;
        if self.done() {
            return Ok(Cond::Truthy(name));
        }
        let op_at = self.here();
        let equal = if self.eat("==") {
            true
        } else if self.eat("!=") {
            false
        } else {
            return Err(format!(
                "invalid condition at {op_at}: use name, name == \"value\" or name != \"value\""
            ));
        };
        self.skip_ws();
        let at = self.here();
        let Some(value) = self.string() else {
            let op = if equal { "==" } else { "!=" };
            return Err(format!(
                "expected a double-quoted string after {op} at {at}"
            ));
        };
        if !self.done() {
            return Err(format!("unexpected text in condition at {}", self.here()));
        }
        Ok(if equal {
            Cond::Eq(name, value)
        } else {
            Cond::Ne(name, value)
        })
    }
}

fn parse_tag<'a>(
    src: &'a str,
    inner: std::ops::Range<usize>,
    names: Option<&Names<'_>>,
) -> Result<Tag<'a>, String> {
    let mut c = Cursor {
        src,
        content: src.get(inner.clone()).unwrap_or(""),
        base: inner.start,
        pos: 0,
    };
    if c.done() {
        return Err(format!(
            "empty tag {{{{}}}} at {}",
            place(src, inner.start.saturating_sub(2))
        ));
    }
    if c.eat("#") {
        let at = c.here();
        let keyword = c.word();
        if keyword != "if" {
            return Err(format!(
                "unknown block {{{{#{}}}}} at {at}: only {{{{#if}}}} is supported",
                shown(keyword)
            ));
        }
        return c.condition("#if", names).map(Tag::If);
    }
    if c.eat("/") {
        let at = c.here();
        let keyword = c.word();
        if keyword != "if" {
            return Err(format!(
                "unknown closing tag {{{{/{}}}}} at {at}: only {{{{/if}}}} is supported",
                shown(keyword)
            ));
        }
        if !c.done() {
            return Err(format!("unexpected text after {{{{/if}}}} at {}", c.here()));
        }
        return Ok(Tag::EndIf);
    }
    let start = c.pos;
    if c.word() == "else" {
        if c.done() {
            return Ok(Tag::Else);
        }
        let at = c.here();
        if c.word() == "if" {
            return c.condition("else if", names).map(Tag::ElseIf);
        }
        return Err(format!(
            "invalid {{{{else}}}} at {at}: use {{{{else}}}} or {{{{else if condition}}}}"
        ));
    }
    c.pos = start;
    let name = c.name(names)?;
    if c.done() {
        return Ok(Tag::Var(Node::Var {
            name,
            default: None,
        }));
    }
    if !c.eat("|") {
        return Err(format!(
            "unexpected text after variable {name} at {}: a default is written {{{{ {name} | \"default\" }}}}",
            c.here()
        ));
    }
    c.skip_ws();
    let at = c.here();
    let Some(default) = c.string() else {
        return Err(format!("expected a double-quoted default after | at {at}"));
    };
    if !c.done() {
        return Err(format!("unexpected text after the default at {}", c.here()));
    }
    Ok(Tag::Var(Node::Var {
        name,
        default: Some(default),
    }))
}

// ---------------------------------------------------------------------------------------------
// Rendering.
// ---------------------------------------------------------------------------------------------

/// How values are written into a part.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// HTML-escaped.
    Html,
    /// As given, without control characters other than `\n` and `\t`.
    Plain,
}

fn other(lang: Lang) -> Lang {
    match lang {
        Lang::ZhCn => Lang::En,
        Lang::En => Lang::ZhCn,
    }
}

fn is_blank(v: &str) -> bool {
    v.trim().is_empty()
}

/// Truthy: present, not blank, and not `0` or `false` (any case, as systems spell booleans).
fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

fn holds(cond: &Cond<'_>, vars: &BTreeMap<String, String>) -> bool {
    let value = |name: &str| vars.get(name).map_or("", String::as_str);
    match cond {
        Cond::Truthy(name) => truthy(vars.get(*name)),
        Cond::Eq(name, literal) => value(name) == literal.as_ref(),
        Cond::Ne(name, literal) => value(name) != literal.as_ref(),
    }
}

fn push_value(out: &mut String, value: &str, mode: Mode) {
    for c in value.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        match (mode, c) {
            (Mode::Html, '&') => out.push_str("&amp;"),
            (Mode::Html, '<') => out.push_str("&lt;"),
            (Mode::Html, '>') => out.push_str("&gt;"),
            (Mode::Html, '"') => out.push_str("&quot;"),
            (Mode::Html, '\'') => out.push_str("&#39;"),
            (_, c) => out.push(c),
        }
    }
}

fn render_nodes(nodes: &[Node<'_>], vars: &BTreeMap<String, String>, mode: Mode, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(s) => out.push_str(s),
            Node::Var { name, default } => {
                let value = vars
                    .get(*name)
                    .map(String::as_str)
                    .filter(|v| !is_blank(v))
                    .or(default.as_deref())
                    .unwrap_or("");
                push_value(out, value, mode);
            }
            Node::If {
                branches,
                otherwise,
            } => {
                let body = branches
                    .iter()
                    .find(|(cond, _)| holds(cond, vars))
                    .map_or(otherwise.as_slice(), |(_, body)| body.as_slice());
                render_nodes(body, vars, mode, out);
            }
        }
    }
}

fn render_part(src: &str, vars: &BTreeMap<String, String>, mode: Mode) -> String {
    match parse_part(src, None) {
        Ok(nodes) => {
            let mut out = String::with_capacity(src.len() + 64);
            render_nodes(&nodes, vars, mode, &mut out);
            out
        }
        // Only a template that skipped validation gets here: its author's text goes out as
        // written, with no value substituted, rather than failing the send.
        Err(_) => src.to_string(),
    }
}

/// A subject is one header line: line breaks (and tabs) become spaces, other control
/// characters go, whether they came from a value or from the template.
fn clean_subject(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' | '\u{2028}' | '\u{2029}' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// Renders a template for one recipient. Never fails: templates are validated when saved, and
/// a template that was not renders its parts as written.
pub fn render(t: &Template, ctx: &RenderContext<'_>) -> Rendered {
    let lang = if t.locales.contains_key(ctx.lang.tag()) {
        ctx.lang
    } else if t.locales.contains_key(other(ctx.lang).tag()) {
        other(ctx.lang)
    } else {
        ctx.lang
    };
    let variant = t
        .variants
        .iter()
        .find(|v| v.id == ctx.variant && v.id != BASE_VARIANT);
    let base = t.locales.get(lang.tag());
    let over = variant.and_then(|v| v.locales.get(lang.tag()));
    let part = |get: fn(&Parts) -> &Option<String>| -> Option<&String> {
        over.and_then(|p| get(p).as_ref())
            .or_else(|| base.and_then(|p| get(p).as_ref()))
    };
    let vars = ctx.vars;
    let (subject, html, text) = match t.channel {
        Channel::Email => {
            let subject =
                part(|p| &p.subject).map(|s| clean_subject(&render_part(s, vars, Mode::Plain)));
            let html = part(|p| &p.html).map(|s| render_part(s, vars, Mode::Html));
            let text = match part(|p| &p.text) {
                Some(s) => Some(render_part(s, vars, Mode::Plain)),
                None => html.as_deref().map(html_to_text),
            };
            (subject, html, text)
        }
        Channel::Sms | Channel::Wecom => {
            let text = part(|p| &p.text).map(|s| render_part(s, vars, Mode::Plain));
            (None, None, text)
        }
    };
    Rendered {
        subject,
        html,
        text,
        variant: variant.map_or(BASE_VARIANT, |v| v.id.as_str()).to_string(),
        lang,
    }
}

/// The variant a contact gets: SHA-256 of the contact id and the template id, so the same
/// contact always sees the same variant of a template, and assignment is uniform over
/// `variants` (in the order given). No variants means the base template.
pub fn variant_for<'v>(contact_id: &str, template_id: &str, variants: &[&'v str]) -> &'v str {
    if variants.is_empty() {
        return BASE_VARIANT;
    }
    let mut h = Sha256::new();
    h.update(contact_id.as_bytes());
    // A separator, so ("ab", "c") and ("a", "bc") hash differently.
    h.update([0u8]);
    h.update(template_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Multiply-shift maps the 64-bit hash onto 0..n without modulo bias worth the name.
    let n = variants.len() as u128;
    let index = ((u128::from(u64::from_be_bytes(first)) * n) >> 64) as usize;
    variants.get(index).copied().unwrap_or(BASE_VARIANT)
}

// ---------------------------------------------------------------------------------------------
// HTML helpers.
// ---------------------------------------------------------------------------------------------

/// The entity at the start of `s` (`&amp;` …) if it is one of the basic ones: the character and
/// the entity's length.
fn basic_entity(s: &str) -> Option<(char, usize)> {
    const ENTITIES: [(&str, char); 7] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&apos;", '\''),
        ("&#x27;", '\''),
    ];
    ENTITIES
        .iter()
        .find(|(e, _)| s.starts_with(e))
        .map(|&(e, c)| (c, e.len()))
}

fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match basic_entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The offset of the `>` that ends a tag whose text starts at `s`; quotes opened right after
/// `=` hide their content (`<a title="a>b">`).
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut last = 0u8;
    for (k, &b) in s.as_bytes().iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'>' => return Some(k),
            None if (b == b'"' || b == b'\'') && last == b'=' => quote = Some(b),
            None => {}
        }
        if !b.is_ascii_whitespace() {
            last = b;
        }
    }
    None
}

/// The first case-insensitive occurrence of an ASCII `needle` in `hay`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&k| h[k..k + n.len()].eq_ignore_ascii_case(n))
}

/// Collects text with whitespace collapsed and explicit line breaks kept.
struct TextOut {
    out: String,
    space: bool,
}

impl TextOut {
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.space = true;
            return;
        }
        if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push(c);
    }

    fn line_break(&mut self) {
        self.space = false;
        if self.out.is_empty() || self.out.ends_with("\n\n") {
            return;
        }
        self.out.push('\n');
    }
}

/// Plain text from HTML, for the text part of an email written in HTML only: tags dropped
/// (with the content of `<head>`, `<style>`, `<script>` and comments), the basic entities
/// decoded, whitespace collapsed, a line break after `<br>`, `</p>`, `</div>`, `</li>`,
/// `</tr>` and `</h1>`…`</h6>` (at most one blank line in a row).
pub fn html_to_text(html: &str) -> String {
    let mut t = TextOut {
        out: String::with_capacity(html.len() / 2),
        space: false,
    };
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let after = &rest[1..];
                if let Some(comment) = after.strip_prefix("!--") {
                    rest = comment.find("-->").map_or("", |e| &comment[e + 3..]);
                    continue;
                }
                let starts_tag = after
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?'));
                if !starts_tag {
                    // "a < b": a bare `<` is text.
                    t.push('<');
                    rest = after;
                    continue;
                }
                let Some(end) = tag_end(after) else {
                    break;
                };
                let tag = &after[..end];
                rest = &after[end + 1..];
                let (closing, tag) = match tag.strip_prefix('/') {
                    Some(t) => (true, t),
                    None => (false, tag),
                };
                let name_len = tag
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(tag.len());
                let name = tag[..name_len].to_ascii_lowercase();
                if !closing && matches!(name.as_str(), "head" | "style" | "script" | "title") {
                    // Skip to the end of the matching closing tag: its content is not text.
                    let close = format!("</{name}");
                    rest = match find_ascii_ci(rest, &close) {
                        Some(at) => {
                            let tail = &rest[at..];
                            tail.find('>').map_or("", |e| &tail[e + 1..])
                        }
                        None => "",
                    };
                    continue;
                }
                let breaks = match name.as_str() {
                    "br" => true,
                    "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => closing,
                    _ => false,
                };
                if breaks {
                    t.line_break();
                }
            }
            // Not one of the basic five, but so common in email HTML that leaving it would
            // litter the text part.
            '&' if rest.starts_with("&nbsp;") => {
                t.push(' ');
                rest = &rest["&nbsp;".len()..];
            }
            '&' => match basic_entity(rest) {
                Some((decoded, len)) => {
                    t.push(decoded);
                    rest = &rest[len..];
                }
                None => {
                    t.push('&');
                    rest = &rest[1..];
                }
            },
            c => {
                t.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    let mut out = t.out;
    out.truncate(out.trim_end().len());
    out
}

fn is_http_url(url: &str) -> bool {
    let b = url.as_bytes();
    b.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"http://"))
        || b.get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"https://"))
}

/// Rewrites the quoted `href` of every tag in rendered HTML whose URL is `http(s)://…`
/// through `sign` (the tracked URL, or None to keep the link). `sign` gets the URL with its
/// entities decoded (`&amp;` → `&`); what it returns is written HTML-escaped. `mailto:`,
/// `#…`, relative links, unquoted values and anything holding `{{` are left alone.
pub fn track_links(html: &str, mut sign: impl FnMut(&str) -> Option<String>) -> String {
    let b = html.as_bytes();
    let len = b.len();
    let mut out = String::with_capacity(len + 256);
    let mut copied = 0;
    let mut i = 0;
    // Every index below stops at an ASCII byte or the end, so slices stay on char boundaries.
    while let Some(found) = html.get(i..).and_then(|r| r.find('<')) {
        let lt = i + found;
        if html[lt..].starts_with("<!--") {
            i = html[lt + 4..].find("-->").map_or(len, |e| lt + 4 + e + 3);
            continue;
        }
        let mut j = lt + 1;
        if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
            i = j;
            continue;
        }
        while j < len && !(b[j].is_ascii_whitespace() || b[j] == b'>' || b[j] == b'/') {
            j += 1;
        }
        // Attributes, up to the `>` that ends the tag.
        loop {
            while j < len && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= len {
                break;
            }
            if b[j] == b'>' {
                j += 1;
                break;
            }
            let name_start = j;
            while j < len && !(b[j].is_ascii_whitespace() || matches!(b[j], b'=' | b'>' | b'/')) {
                j += 1;
            }
            if j == name_start {
                // A stray `=`: step over it.
                j += 1;
                continue;
            }
            let name = &html[name_start..j];
            let mut k = j;
            while k < len && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if b.get(k) != Some(&b'=') {
                j = k;
                continue;
            }
            k += 1;
            while k < len && b[k].is_ascii_whitespace() {
                k += 1;
            }
            match b.get(k) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let start = k + 1;
                    let Some(e) = html[start..].find(q as char) else {
                        // An unclosed quote: the rest is not markup anyone can rely on.
                        j = len;
                        break;
                    };
                    let end = start + e;
                    if name.eq_ignore_ascii_case("href") {
                        let decoded = decode_entities(&html[start..end]);
                        let url = decoded.trim_matches(|c: char| c.is_ascii_whitespace());
                        if is_http_url(url) && !url.contains("{{") {
                            if let Some(tracked) = sign(url) {
                                out.push_str(&html[copied..start]);
                                out.push_str(&crate::preferences::escape(&tracked));
                                copied = end;
                            }
                        }
                    }
                    j = end + 1;
                }
                _ => {
                    while k < len && !(b[k].is_ascii_whitespace() || b[k] == b'>') {
                        k += 1;
                    }
                    j = k;
                }
            }
        }
        i = j;
    }
    out.push_str(&html[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn template(v: Value) -> Template {
        serde_json::from_value(v).expect("a template document")
    }

    fn email(html: &str) -> Template {
        template(json!({
            "id": "welcome",
            "name": "Welcome pack",
            "channel": "email",
            "variables": ["coupon_code"],
            "locales": {
                "zh-CN": { "subject": "你好 {{ first_name }}", "html": html },
                "en": { "subject": "Hello {{ first_name }}", "html": html, "text": "Hi" }
            }
        }))
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render_with(t: &Template, vars: &BTreeMap<String, String>, lang: Lang) -> Rendered {
        render(
            t,
            &RenderContext {
                vars,
                lang,
                variant: "a",
            },
        )
    }

    /// The text part of a one-locale SMS template rendered with `vars`.
    fn sms(text: &str, pairs: &[(&str, &str)]) -> String {
        let t = template(json!({
            "id": "s", "name": "s", "channel": "sms", "variables": ["vip"],
            "locales": { "en": { "text": text } }
        }));
        validate(&t).expect("valid");
        render_with(&t, &vars(pairs), Lang::En)
            .text
            .unwrap_or_default()
    }

    fn invalid(t: &Template) -> (String, String) {
        match validate(t) {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid template, got {other:?}"),
        }
    }

    /// The error for an SMS whose English text is `text` (the variable `coupon_code` declared).
    fn text_error(text: &str) -> (String, String) {
        invalid(&template(json!({
            "id": "s", "name": "s", "channel": "sms", "variables": ["coupon_code", "vip"],
            "locales": { "en": { "text": text } }
        })))
    }

    #[test]
    fn defaults_fill_missing_and_empty_values() {
        let src = "Hi {{ first_name | \"there\" }}, {{company|\"your team\"}}! {{ last_name }}.";
        assert_eq!(sms(src, &[]), "Hi there, your team! .");
        assert_eq!(
            sms(src, &[("first_name", ""), ("company", "  ")]),
            "Hi there, your team! ."
        );
        assert_eq!(
            sms(
                src,
                &[
                    ("first_name", "Wei"),
                    ("company", "Acme"),
                    ("last_name", "Zhang")
                ]
            ),
            "Hi Wei, Acme! Zhang."
        );
        assert_eq!(sms(r#"{{ name | "a \"b\" \\ c" }}"#, &[]), r#"a "b" \ c"#);
        assert_eq!(sms(r#"{{ name | "x}}y" }}"#, &[]), "x}}y");
    }

    #[test]
    fn values_are_escaped_for_the_part_they_land_in() {
        let t = template(json!({
            "id": "t", "name": "t", "channel": "email",
            "locales": { "en": {
                "subject": "Re: {{ company }}",
                "html": "<p title=\"{{ company }}\">{{ company }}</p>",
                "text": "{{ company }}"
            } }
        }));
        validate(&t).expect("valid");
        let attack = "<script>alert('x')</script> & \"q\"";
        let r = render_with(&t, &vars(&[("company", attack)]), Lang::En);
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;";
        assert_eq!(
            r.html.as_deref(),
            Some(format!("<p title=\"{escaped}\">{escaped}</p>").as_str())
        );
        assert_eq!(r.text.as_deref(), Some(attack));
        assert_eq!(r.subject, Some(format!("Re: {attack}")));

        // Header injection: line breaks in a subject become spaces, control characters go.
        let bcc = "Acme\r\nBcc: victim@example.com\u{0}\u{7}";
        let r = render_with(&t, &vars(&[("company", bcc)]), Lang::En);
        assert_eq!(
            r.subject.as_deref(),
            Some("Re: Acme Bcc: victim@example.com")
        );
        assert_eq!(r.text.as_deref(), Some("Acme\nBcc: victim@example.com"));
        assert!(!r.html.unwrap_or_default().contains('\u{0}'));
        assert_eq!(
            sms("[{{ company }}]", &[("company", "a\tb\u{1b}[31m\u{85}")]),
            "[a\tb[31m]"
        );
    }

    #[test]
    fn the_subject_of_a_template_with_line_breaks_is_one_line() {
        let t = template(json!({
            "id": "t", "name": "t", "channel": "email",
            "locales": { "en": { "subject": "Line one\r\nline two\t", "text": "x" } }
        }));
        validate(&t).expect("valid");
        let r = render_with(&t, &BTreeMap::new(), Lang::En);
        assert_eq!(r.subject.as_deref(), Some("Line one line two"));
    }

    const BY_INDUSTRY: &str = "\
{{#if tag.industry == \"manufacturing\"}}Case: production efficiency{{#if vip}} (VIP){{/if}}
{{else if tag.industry == \"finance\"}}Case: data security
{{else if tag.industry == \"retail\"}}Case: user growth
{{else}}Case: {{ industry | \"our customers\" }}
{{/if}}";

    #[test]
    fn nested_conditions_pick_content_by_industry_tag() {
        assert_eq!(
            sms(BY_INDUSTRY, &[("tag.industry", "manufacturing")]),
            "Case: production efficiency\n"
        );
        assert_eq!(
            sms(
                BY_INDUSTRY,
                &[("tag.industry", "manufacturing"), ("vip", "yes")]
            ),
            "Case: production efficiency (VIP)\n"
        );
        assert_eq!(
            sms(BY_INDUSTRY, &[("tag.industry", "finance")]),
            "Case: data security\n"
        );
        assert_eq!(
            sms(BY_INDUSTRY, &[("tag.industry", "retail")]),
            "Case: user growth\n"
        );
        assert_eq!(
            sms(BY_INDUSTRY, &[("tag.industry", "energy")]),
            "Case: our customers\n"
        );
        assert_eq!(
            sms(BY_INDUSTRY, &[("industry", "Energy")]),
            "Case: Energy\n",
            "no tag: the fallback"
        );
    }

    #[test]
    fn truthiness_and_inequality() {
        let src = "{{#if vip}}V{{else}}-{{/if}}{{#if region != \"cn\"}}!{{/if}}";
        assert_eq!(sms(src, &[]), "-!");
        for falsy in ["", " ", "0", "false", "FALSE"] {
            assert_eq!(
                sms(src, &[("vip", falsy), ("region", "cn")]),
                "-",
                "{falsy:?}"
            );
        }
        for truthy in ["1", "yes", "true", "no"] {
            assert_eq!(
                sms(src, &[("vip", truthy), ("region", "us")]),
                "V!",
                "{truthy:?}"
            );
        }
        let deep = "{{#if vip}}".repeat(8) + "deep" + &"{{/if}}".repeat(8);
        assert_eq!(sms(&deep, &[("vip", "1")]), "deep");
    }

    #[test]
    fn escaped_braces_render_literally() {
        assert_eq!(
            sms(
                r"Use \{{ first_name }} for {{ first_name }}",
                &[("first_name", "Li")]
            ),
            "Use {{ first_name }} for Li"
        );
        assert_eq!(sms(r"a \ b \{ c }}", &[]), r"a \ b \{ c }}");
    }

    #[test]
    fn the_other_locale_is_used_when_the_requested_one_is_missing() {
        let t = template(json!({
            "id": "t", "name": "t", "channel": "wecom",
            "locales": { "en": { "text": "Hello {{ first_name }}" } }
        }));
        validate(&t).expect("valid");
        let r = render_with(&t, &vars(&[("first_name", "Wei")]), Lang::ZhCn);
        assert_eq!(r.lang, Lang::En);
        assert_eq!(r.text.as_deref(), Some("Hello Wei"));
        assert_eq!((r.subject, r.html), (None, None));

        let t = email("<p>x</p>");
        assert_eq!(
            render_with(&t, &BTreeMap::new(), Lang::ZhCn).lang,
            Lang::ZhCn
        );
        assert_eq!(render_with(&t, &BTreeMap::new(), Lang::En).lang, Lang::En);
    }

    #[test]
    fn email_text_is_derived_from_html_when_missing() {
        let t = email("<h1>Hi {{ first_name }}</h1><p>Use <b>{{ coupon_code }}</b></p>");
        validate(&t).expect("valid");
        let v = vars(&[("first_name", "<Wei>"), ("coupon_code", "A&B")]);
        let zh = render_with(&t, &v, Lang::ZhCn);
        assert_eq!(zh.text.as_deref(), Some("Hi <Wei>\nUse A&B"));
        assert_eq!(zh.subject.as_deref(), Some("你好 <Wei>"));
        let en = render_with(&t, &v, Lang::En);
        assert_eq!(en.text.as_deref(), Some("Hi"), "a given text part wins");
    }

    #[test]
    fn variants_override_only_what_they_list() {
        let mut t = email("<p>Base</p>");
        t.variants = vec![Variant {
            id: "b".into(),
            locales: [(
                "zh-CN".to_string(),
                Parts {
                    subject: Some("B: {{ first_name | \"朋友\" }}".into()),
                    ..Parts::default()
                },
            )]
            .into_iter()
            .collect(),
        }];
        validate(&t).expect("valid");
        assert_eq!(t.variant_ids(), ["a", "b"]);
        let none = BTreeMap::new();
        let at = |variant: &str, lang: Lang| {
            render(
                &t,
                &RenderContext {
                    vars: &none,
                    lang,
                    variant,
                },
            )
        };
        let b = at("b", Lang::ZhCn);
        assert_eq!(b.variant, "b");
        assert_eq!(b.subject.as_deref(), Some("B: 朋友"));
        assert_eq!(b.html.as_deref(), Some("<p>Base</p>"));
        assert_eq!(b.text.as_deref(), Some("Base"));
        let b_en = at("b", Lang::En);
        assert_eq!(b_en.variant, "b");
        assert_eq!(b_en.subject.as_deref(), Some("Hello"));
        let a = at("a", Lang::ZhCn);
        assert_eq!(
            (a.variant.as_str(), a.subject.as_deref()),
            ("a", Some("你好"))
        );
        let unknown = at("zz", Lang::ZhCn);
        assert_eq!(unknown.variant, "a");
        assert_eq!(unknown.subject, a.subject);
    }

    #[test]
    fn variant_assignment_is_stable_and_even() {
        let variants = ["a", "b"];
        let first = variant_for("contact-1", "welcome", &variants);
        for _ in 0..10 {
            assert_eq!(variant_for("contact-1", "welcome", &variants), first);
        }
        let b = (0..10_000)
            .filter(|i| variant_for(&format!("c{i}"), "welcome", &variants) == "b")
            .count();
        assert!((4_500..=5_500).contains(&b), "{b} of 10000 got b");
        // Another template splits the same contacts independently.
        let same = (0..1_000)
            .filter(|i| {
                let c = format!("c{i}");
                variant_for(&c, "welcome", &variants) == variant_for(&c, "promo", &variants)
            })
            .count();
        assert!((400..=600).contains(&same), "{same}");
        assert_eq!(variant_for("c", "t", &[]), "a");
        assert_eq!(variant_for("c", "t", &["b"]), "b");
        let three = (0..3_000)
            .filter(|i| variant_for(&format!("c{i}"), "t", &["a", "b", "c"]) == "c")
            .count();
        assert!((850..=1_150).contains(&three), "{three}");
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        let cases: &[(&str, &str)] = &[
            (
                "Hi\n\nYour code: {{ coupon }}",
                "unknown variable \"coupon\" at line 3, column 15",
            ),
            (
                "{{ tag.Industry }}",
                "unknown variable \"tag.Industry\" at line 1, column 4",
            ),
            (
                "{{ first-name }}",
                "unknown variable \"first-name\" at line 1, column 4",
            ),
            (
                "a\n{{#if vip}}x",
                "unclosed {{#if}} opened at line 2, column 1",
            ),
            (
                "a {{else}} b",
                "{{else}} without {{#if}} at line 1, column 3",
            ),
            (
                "{{else if vip}}",
                "{{else if}} without {{#if}} at line 1, column 1",
            ),
            ("x{{/if}}", "{{/if}} without {{#if}} at line 1, column 2"),
            (
                "{{#if vip}}a{{else}}b{{else}}c{{/if}}",
                "{{else}} after {{else}} at line 1, column 22",
            ),
            (
                "{{#if vip}}a{{else}}b{{else if vip}}c{{/if}}",
                "{{else if}} after {{else}} at line 1, column 22",
            ),
            (
                "Dear {{ first_name }}, your order {{ coupon_code",
                "unterminated tag at line 1, column 35",
            ),
            (
                "{{ first_name } {{ last_name }}",
                "unterminated tag at line 1, column 1",
            ),
            (
                "{{{ first_name }}}",
                "raw {{{ }}} tags are not supported at line 1, column 1: values are always \
                 escaped, use {{ name }}",
            ),
            ("x {{ }}", "empty tag {{}} at line 1, column 3"),
            (
                "{{#each items}}",
                "unknown block {{#each}} at line 1, column 4: only {{#if}} is supported",
            ),
            ("{{#if}}", "{{#if}} needs a condition at line 1, column 6"),
            (
                "{{#if industry = \"x\"}}{{/if}}",
                "invalid condition at line 1, column 16: use name, name == \"value\" or name \
                 != \"value\"",
            ),
            (
                "{{#if industry == 'x'}}{{/if}}",
                "expected a double-quoted string after == at line 1, column 19",
            ),
            (
                "{{ first_name \"x\" }}",
                "unexpected text after variable first_name at line 1, column 15: a default is \
                 written {{ first_name | \"default\" }}",
            ),
            (
                "{{ first_name | there }}",
                "expected a double-quoted default after | at line 1, column 17",
            ),
            (
                "{{/if x}}",
                "unexpected text after {{/if}} at line 1, column 7",
            ),
            (
                "{{/each}}",
                "unknown closing tag {{/each}} at line 1, column 4: only {{/if}} is supported",
            ),
        ];
        for (src, message) in cases {
            let (field, got) = text_error(src);
            assert_eq!(field, "locales.en.text", "{src}");
            assert_eq!(&got, message, "{src}");
        }
        let nine = "{{#if vip}}".repeat(9) + &"{{/if}}".repeat(9);
        assert_eq!(
            text_error(&nine).1,
            "{{#if}} nested more than 8 deep at line 1, column 89"
        );
        // Declared variables and any tag are fine.
        assert!(validate(&template(json!({
            "id": "s", "name": "s", "channel": "sms", "variables": ["coupon_code"],
            "locales": { "en": { "text": "{{ coupon_code }} {{ tag.rfm }} {{ tag.last_login }}" } }
        })))
        .is_ok());
    }

    #[test]
    fn document_errors_name_the_field() {
        let base = || {
            json!({
                "id": "welcome", "name": "Welcome", "channel": "email",
                "locales": {
                    "zh-CN": { "subject": "你好", "html": "<p>x</p>" },
                    "en": { "subject": "Hi", "text": "x" }
                }
            })
        };
        let check = |edit: &dyn Fn(&mut Value), field: &str, message: &str| {
            let mut v = base();
            edit(&mut v);
            assert_eq!(
                invalid(&template(v)),
                (field.to_string(), message.to_string()),
                "{field}"
            );
        };
        check(
            &|v| v["id"] = json!("Welcome!"),
            "id",
            "template ids are 1-64 lowercase letters, digits or dashes",
        );
        check(
            &|v| v["name"] = json!(" "),
            "name",
            "name must be 1-200 characters",
        );
        check(
            &|v| v["variables"] = json!(["ok", "Bad"]),
            "variables[1]",
            "variable names are 1-64 of a-z 0-9 _ starting with a letter",
        );
        check(
            &|v| v["variables"] = json!(["x", "x"]),
            "variables[1]",
            "\"x\" appears twice",
        );
        check(
            &|v| v["variables"] = json!(["else"]),
            "variables[0]",
            "\"else\" is a keyword of the template syntax",
        );
        check(
            &|v| v["locales"] = json!({}),
            "locales",
            "give the template in at least one of zh-CN, en",
        );
        check(
            &|v| v["locales"]["fr"] = json!({ "text": "x" }),
            "locales.fr",
            "locales are zh-CN or en",
        );
        check(
            &|v| {
                v["locales"]["en"]["subject"].take();
            },
            "locales.en.subject",
            "email templates need a subject in every locale",
        );
        check(
            &|v| v["locales"]["en"]["subject"] = json!(""),
            "locales.en.subject",
            "email templates need a subject in every locale",
        );
        check(
            &|v| v["locales"]["en"] = json!({ "subject": "x" }),
            "locales.en",
            "email templates need html or text in every locale",
        );
        check(
            &|v| v["locales"]["zh-CN"]["text"] = json!(" "),
            "locales.zh-CN.text",
            "text is empty: give content or leave the part out",
        );
        check(
            &|v| v["locales"]["en"]["subject"] = json!("s".repeat(201)),
            "locales.en.subject",
            "a subject is at most 200 characters",
        );
        check(
            &|v| v["locales"]["en"]["text"] = json!("x".repeat(MAX_PART_BYTES + 1)),
            "locales.en.text",
            "a part is at most 100 KB",
        );
        check(
            &|v| v["locales"]["zh-CN"]["html"] = json!("{{ coupon }}"),
            "locales.zh-CN.html",
            "unknown variable \"coupon\" at line 1, column 4",
        );
        check(
            &|v| v["channel"] = json!("sms"),
            "locales.en.subject",
            "sms templates have text only",
        );
        check(
            &|v| {
                v["channel"] = json!("wecom");
                v["locales"]["en"] = json!({ "html": "x" });
            },
            "locales.en.html",
            "wecom templates have text only",
        );
        check(
            &|v| {
                v["channel"] = json!("sms");
                v["locales"] = json!({ "en": {} });
            },
            "locales.en.text",
            "sms templates need text in every locale",
        );
        check(
            &|v| {
                v["channel"] = json!("sms");
                v["locales"] = json!({ "en": { "text": "x".repeat(501) } });
            },
            "locales.en.text",
            "sms text is at most 500 characters",
        );
        // Variants.
        let variant = |v: &mut Value, variant: Value| {
            v["variants"] = json!([{ "id": "b", "locales": { "en": { "subject": "B" } } }, variant])
        };
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "a", "locales": { "en": { "subject": "x" } } }),
                )
            },
            "variants[1].id",
            "\"a\" is the base template; name variants b, c, …",
        );
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "B-2", "locales": { "en": { "subject": "x" } } }),
                )
            },
            "variants[1].id",
            "variant ids are 1-16 lowercase letters or digits",
        );
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "b", "locales": { "en": { "subject": "x" } } }),
                )
            },
            "variants[1].id",
            "variant b appears twice",
        );
        check(
            &|v| variant(v, json!({ "id": "c", "locales": {} })),
            "variants[1].locales",
            "a variant overrides parts of at least one locale",
        );
        check(
            &|v| variant(v, json!({ "id": "c", "locales": { "en": {} } })),
            "variants[1].locales.en",
            "a variant locale overrides at least one part",
        );
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "c", "locales": { "de": { "text": "x" } } }),
                )
            },
            "variants[1].locales.de",
            "locales are zh-CN or en",
        );
        check(
            &|v| {
                if let Some(m) = v["locales"].as_object_mut() {
                    m.remove("zh-CN");
                }
                variant(
                    v,
                    json!({ "id": "c", "locales": { "zh-CN": { "subject": "x" } } }),
                );
            },
            "variants[1].locales.zh-CN",
            "the base template has no zh-CN locale",
        );
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "c", "locales": { "en": { "html": "<p>x</p>" } } }),
                )
            },
            "variants[1].locales.en.html",
            "the base en locale has no html to override",
        );
        check(
            &|v| {
                variant(
                    v,
                    json!({ "id": "c", "locales": { "en": { "subject": "{{#if tag.vip}}" } } }),
                )
            },
            "variants[1].locales.en.subject",
            "unclosed {{#if}} opened at line 1, column 1",
        );
        check(
            &|v| variant(v, json!({ "id": "c", "locales": { "en": { "text": "" } } })),
            "variants[1].locales.en.text",
            "text is empty: give content or leave the part out",
        );
        check(
            &|v| {
                v["channel"] = json!("sms");
                v["locales"] = json!({ "en": { "text": "x" } });
                variant(
                    v,
                    json!({ "id": "c", "locales": { "en": { "subject": "x" } } }),
                );
            },
            "variants[0].locales.en.subject",
            "sms templates have text only",
        );
        let mut ok = base();
        variant(
            &mut ok,
            json!({ "id": "c2", "locales": { "zh-CN": { "html": "<b>{{ first_name }}</b>" } } }),
        );
        assert_eq!(validate(&template(ok)), Ok(()));
    }

    #[test]
    fn parse_reads_and_validates_documents() {
        let doc = br#"{"id":"welcome","name":"Welcome","channel":"sms",
            "locales":{"en":{"text":"Hi {{ first_name | \"there\" }}"}}}"#;
        let t = parse(doc).expect("valid");
        assert_eq!((t.version, t.variants.len()), (0, 0));
        let round = serde_json::to_vec(&t).expect("serializes");
        assert_eq!(parse(&round), Ok(t));

        let field = |r: Result<Template, Error>| match r {
            Err(Error::Invalid { field, message }) => (field, message),
            other => panic!("{other:?}"),
        };
        let (f, m) = field(parse(b"{not json"));
        assert_eq!(f, "body");
        assert!(m.starts_with("not a template: "), "{m}");
        let (f, m) = field(parse(
            br#"{"id":"x","name":"x","channel":"sms","locales":{},"extra":1}"#,
        ));
        assert!(f == "body" && m.contains("extra"), "{m}");
        let (f, m) = field(parse(
            br#"{"id":"x","name":"x","channel":"fax","locales":{}}"#,
        ));
        assert!(f == "body" && m.contains("fax"), "{m}");
        let (f, _) = field(parse(
            br#"{"id":"x","name":"x","channel":"sms","locales":{"en":{"text":"{{ x }}"}}}"#,
        ));
        assert_eq!(f, "locales.en.text");
        let huge = vec![b' '; MAX_TEMPLATE_BYTES + 1];
        assert_eq!(
            field(parse(&huge)),
            (
                "body".to_string(),
                "a template is at most 256 KB".to_string()
            )
        );
    }

    /// Every seeded template in config/templates/ validates (with its id from the file name, as
    /// scripts/stack.sh seeds it), every email carries an unsubscribe link in each locale, and
    /// each renders in both languages with no variables at all and no tag left over.
    #[test]
    fn every_seeded_template_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config/templates") {
            let path = entry.expect("a directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("a file name")
                .to_string();
            let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("readable"))
                .unwrap_or_else(|e| panic!("{id}: not JSON: {e}"));
            doc["id"] = Value::String(id.clone());
            let t = parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{id}: {e:?}"));
            for (locale, parts) in &t.locales {
                assert!(LOCALES.contains(&locale.as_str()), "{id}: {locale}");
                if t.channel == Channel::Email {
                    let body = format!(
                        "{}{}",
                        parts.html.as_deref().unwrap_or(""),
                        parts.text.as_deref().unwrap_or("")
                    );
                    assert!(
                        body.contains("{{ unsubscribe_url }}"),
                        "{id}: {locale} has no unsubscribe link"
                    );
                }
            }
            for lang in [Lang::ZhCn, Lang::En] {
                let r = render_with(&t, &BTreeMap::new(), lang);
                for part in [&r.subject, &r.html, &r.text].into_iter().flatten() {
                    assert!(!part.contains("{{"), "{id}: {part}");
                }
            }
            seen += 1;
        }
        assert!(seen >= 3, "only {seen} templates in {}", dir.display());
    }

    #[test]
    fn unvalidated_templates_still_render() {
        let t = template(json!({
            "id": "t", "name": "t", "channel": "email",
            "locales": { "en": { "subject": "{{#if\nx", "html": "{{ <b> }}" } }
        }));
        assert!(validate(&t).is_err());
        let r = render_with(&t, &vars(&[("x", "<x-inj>")]), Lang::ZhCn);
        assert_eq!(r.subject.as_deref(), Some("{{#if x"));
        assert_eq!(r.html.as_deref(), Some("{{ <b> }}"));
        let empty = template(json!({ "id": "t", "name": "t", "channel": "sms", "locales": {} }));
        let r = render_with(&empty, &BTreeMap::new(), Lang::ZhCn);
        assert_eq!((r.text, r.lang), (None, Lang::ZhCn));
    }

    #[test]
    fn html_becomes_plain_text() {
        let html = "<html><head><title>T</title><style>p { color: red }</style></head>\n\
            <body><h1>Hello&nbsp;&amp; welcome</h1>\n<p>Line   one<br>line\ttwo<br/>three</p>\
            <!-- a <p> comment --><div>5 &lt; 6 &gt; 4 &quot;q&quot; &#39;s&#39; a < b</div>\
            <ul><li>One</li><li>Two</li></ul><p></p><p></p><p>End <a href=\"x\" title=\"a>b\">link</a></p>\
            <script>alert(1)</script></body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello & welcome\nLine one\nline two\nthree\n5 < 6 > 4 \"q\" 's' a < b\nOne\nTwo\n\nEnd link"
        );
        assert_eq!(html_to_text("&amp;lt;"), "&lt;", "decoded once");
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("a <b"), "a");
        assert_eq!(html_to_text("<TD>x</TD><BR>y</H2>"), "x\ny");
    }

    #[test]
    fn links_are_tracked_through_sign() {
        let html = concat!(
            "<a href=\"https://example.com/a?x=1&amp;y=2\">A</a>",
            "<a class='c' HREF='http://example.com/b'>B</a>",
            "<a href=\"mailto:sales@example.com\">M</a>",
            "<a href=\"/relative\">R</a><a href=\"#top\">T</a>",
            "<a href=\"{{ unsubscribe_url }}\">U</a>",
            "<a data-href=\"https://example.com/data\" href = \"HTTPS://example.com/c\">C</a>",
            "<p>href=\"https://example.com/text\"</p>",
            "<!-- <a href=\"https://example.com/comment\"> -->",
            "<a href=https://example.com/unquoted>Q</a>",
        );
        let mut seen = Vec::new();
        let out = track_links(html, |url| {
            seen.push(url.to_string());
            Some(format!(
                "https://t.example/c?u={}&n={}",
                url.len(),
                seen.len()
            ))
        });
        assert_eq!(
            seen,
            [
                "https://example.com/a?x=1&y=2",
                "http://example.com/b",
                "HTTPS://example.com/c"
            ]
        );
        let expected = concat!(
            "<a href=\"https://t.example/c?u=29&amp;n=1\">A</a>",
            "<a class='c' HREF='https://t.example/c?u=20&amp;n=2'>B</a>",
            "<a href=\"mailto:sales@example.com\">M</a>",
            "<a href=\"/relative\">R</a><a href=\"#top\">T</a>",
            "<a href=\"{{ unsubscribe_url }}\">U</a>",
            "<a data-href=\"https://example.com/data\" href = \"https://t.example/c?u=21&amp;n=3\">C</a>",
            "<p>href=\"https://example.com/text\"</p>",
            "<!-- <a href=\"https://example.com/comment\"> -->",
            "<a href=https://example.com/unquoted>Q</a>",
        );
        assert_eq!(out, expected);
        // None keeps the link, and a URL with quotes is written escaped.
        assert_eq!(track_links(html, |_| None), html);
        assert_eq!(
            track_links("<a href='https://x.test'>", |_| Some(
                "https://t/?a='\"<".into()
            )),
            "<a href='https://t/?a=&#39;&quot;&lt;'>"
        );
        assert_eq!(
            track_links("<a href=\"https://x", |_| Some("y".into())),
            "<a href=\"https://x"
        );
        assert_eq!(track_links("", |_| Some("y".into())), "");
    }
}

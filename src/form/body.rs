//! The body of a form submission, read into an ordered list of fields: a plain HTML form posts
//! `application/x-www-form-urlencoded` (or `multipart/form-data` with `enctype`), the snippet
//! and custom pages post `application/json`. Nothing here knows the form's definition: names
//! and values are checked only for what every field needs (bounded counts and names, UTF-8);
//! the submission's validation judges the values field by field.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// A submitted field: name and value, in the order sent (names may repeat, e.g. checkboxes).
pub type Fields = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Content type we do not read -> the shell answers 415. Holds the header as sent
    /// (shortened), empty when there was none.
    UnsupportedMediaType(String),
    /// Body larger than MAX_BODY_BYTES -> 413.
    TooLarge,
    /// Malformed body; the message names the problem precisely -> 400.
    Malformed(String),
}

/// Largest body read (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most fields in one submission, counting every repeat of a name.
pub const MAX_FIELDS: usize = 100;
/// Longest field name (characters).
pub const MAX_FIELD_NAME_CHARS: usize = 64;

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY_CHARS: usize = 70;
/// How much of a refused header or name is echoed back in an error.
const ECHO_CHARS: usize = 80;

const ACCEPTED: &str = "application/x-www-form-urlencoded, multipart/form-data or application/json";

impl BodyError {
    /// The HTTP status the shell answers with.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::UnsupportedMediaType(_) => 415,
            BodyError::TooLarge => 413,
            BodyError::Malformed(_) => 400,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::UnsupportedMediaType(t) if t.is_empty() => {
                write!(
                    f,
                    "the request has no Content-Type; send {ACCEPTED} in UTF-8"
                )
            }
            BodyError::UnsupportedMediaType(t) => {
                write!(
                    f,
                    "content type {t:?} is not accepted; send {ACCEPTED} in UTF-8"
                )
            }
            BodyError::TooLarge => write!(f, "the body is larger than {MAX_BODY_BYTES} bytes"),
            BodyError::Malformed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BodyError {}

fn malformed(message: impl Into<String>) -> BodyError {
    BodyError::Malformed(message.into())
}

/// Reads a submission body as its content type says.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, BodyError> {
    // First of all, so an oversized body is refused the same way whatever its headers say.
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let header = content_type.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(BodyError::UnsupportedMediaType(String::new()));
    }
    let unsupported = || BodyError::UnsupportedMediaType(shorten(header));
    let (essence, params) = header.split_once(';').unwrap_or((header, ""));
    let essence = essence.trim().to_ascii_lowercase();
    if !matches!(
        essence.as_str(),
        "application/x-www-form-urlencoded" | "multipart/form-data" | "application/json"
    ) {
        return Err(unsupported());
    }
    let params = parse_params(params)
        .map_err(|e| malformed(format!("the Content-Type parameters are malformed: {e}")))?;
    // Everything is read as UTF-8: a body declared in another charset (a GBK form, say) is
    // refused as a media type rather than misread.
    if let Some((_, charset)) = params.iter().find(|(k, _)| k == "charset") {
        if !["utf-8", "utf8", "us-ascii"]
            .iter()
            .any(|c| charset.eq_ignore_ascii_case(c))
        {
            return Err(unsupported());
        }
    }
    let mut fields = Collector::default();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => urlencoded(body, &mut fields)?,
        "multipart/form-data" => {
            let boundary = params
                .iter()
                .find(|(k, _)| k == "boundary")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| malformed("multipart/form-data needs a boundary parameter"))?;
            let chars = boundary.chars().count();
            if !(1..=MAX_BOUNDARY_CHARS).contains(&chars)
                || !boundary.bytes().all(|b| (b' '..=b'~').contains(&b))
                || boundary.ends_with(' ')
            {
                return Err(malformed(format!(
                    "the multipart boundary must be 1 to {MAX_BOUNDARY_CHARS} printable ASCII \
                     characters, not ending in a space"
                )));
            }
            multipart(body, boundary.as_bytes(), &mut fields)?;
        }
        _ => json(body, &mut fields)?,
    }
    Ok(fields.0)
}

/// Fields as they are read, each name checked and the count bounded as it grows (so a body of
/// thousands of tiny fields stops at the first one too many).
#[derive(Default)]
struct Collector(Fields);

impl Collector {
    fn push(&mut self, name: String, value: String) -> Result<(), BodyError> {
        if name.is_empty() {
            return Err(malformed("a field has an empty name"));
        }
        if name.chars().count() > MAX_FIELD_NAME_CHARS {
            return Err(malformed(format!(
                "field name {:?} is longer than {MAX_FIELD_NAME_CHARS} characters",
                shorten(&name)
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(malformed(format!(
                "field name {:?} contains control characters",
                shorten(&name)
            )));
        }
        if self.0.len() >= MAX_FIELDS {
            return Err(malformed(format!(
                "a form sends at most {MAX_FIELDS} fields"
            )));
        }
        self.0.push((name, value));
        Ok(())
    }
}

/// At most ECHO_CHARS characters of `s`, marked when cut.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS) {
        Some((at, _)) => format!("{}…", s.get(..at).unwrap_or_default()),
        None => s.to_string(),
    }
}

/// Parameters after a media type or disposition: `; name=token` or `; name="quoted \" string"`.
/// Names are lowercased; values are unquoted and unescaped.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        let end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest.get(..end).unwrap_or_default().trim();
        rest = rest.get(end..).unwrap_or_default();
        if name.is_empty() {
            return Err("a parameter has no name".into());
        }
        let Some(after_eq) = rest.strip_prefix('=') else {
            // A bare word without a value: nothing any caller looks for.
            continue;
        };
        let after_eq = after_eq.trim_start();
        let value = if let Some(quoted) = after_eq.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut closed = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => break,
                    },
                    '"' => {
                        closed = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(after) = closed else {
                return Err(format!("the value of {name:?} has no closing quote"));
            };
            rest = quoted.get(after..).unwrap_or_default();
            let trailing = rest.find(';').unwrap_or(rest.len());
            if !rest.get(..trailing).unwrap_or_default().trim().is_empty() {
                return Err(format!("text follows the quoted value of {name:?}"));
            }
            value
        } else {
            let end = after_eq.find(';').unwrap_or(after_eq.len());
            rest = after_eq.get(end..).unwrap_or_default();
            after_eq.get(..end).unwrap_or_default().trim().to_string()
        };
        out.push((name.to_ascii_lowercase(), value));
    }
}

// -------------------------------------------------------------------------------------------
// application/x-www-form-urlencoded
// -------------------------------------------------------------------------------------------

/// `form_urlencoded` does the decoding, but it replaces invalid UTF-8 with U+FFFD, which would
/// turn a mangled value into a different, plausible one. So each name and value is first
/// percent-decoded here only to check that its bytes are UTF-8; when they all are, the crate's
/// lossy decoding has nothing to replace and its output is exact.
fn urlencoded(body: &[u8], fields: &mut Collector) -> Result<(), BodyError> {
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (
                pair.get(..at).unwrap_or_default(),
                pair.get(at + 1..).unwrap_or_default(),
            ),
            None => (pair, &[][..]),
        };
        if std::str::from_utf8(&percent_decode(name)).is_err() {
            return Err(malformed(format!(
                "a field name is not valid UTF-8 once percent-decoded: {}",
                shorten(&String::from_utf8_lossy(name))
            )));
        }
        if std::str::from_utf8(&percent_decode(value)).is_err() {
            let name: String = form_urlencoded::parse(pair)
                .next()
                .map(|(n, _)| n.into_owned())
                .unwrap_or_default();
            return Err(malformed(format!(
                "the value of field {:?} is not valid UTF-8 once percent-decoded",
                shorten(&name)
            )));
        }
    }
    for (name, value) in form_urlencoded::parse(body) {
        fields.push(name.into_owned(), value.into_owned())?;
    }
    Ok(())
}

/// Percent-decoding as `form_urlencoded` does it: `%` and two hex digits is a byte, anything
/// else (a lone `%`, `%G1`) stays as written. `+` is left alone: it decodes to ASCII either
/// way, which cannot change whether the bytes are UTF-8.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                // Two hex digits are below 256.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

// -------------------------------------------------------------------------------------------
// multipart/form-data (RFC 7578, framing from RFC 2046 §5.1.1)
// -------------------------------------------------------------------------------------------

/// A boundary line found in a multipart body.
struct Delimiter {
    /// Where the line starts (its `--`).
    start: usize,
    /// Where the next part starts (after the line break); None for the closing `--boundary--`.
    next: Option<usize>,
}

/// The first boundary line starting at or after `from`: `--boundary` at the start of a line,
/// then `--` (the closing one), or optional spaces or tabs and a line break. A line that only
/// begins with the boundary (`--boundaryX`) is content, as RFC 2046 has it.
fn find_delimiter(body: &[u8], dash_boundary: &[u8], from: usize) -> Option<Delimiter> {
    let mut start = from;
    loop {
        let at_line_start = start == 0 || body.get(start - 1) == Some(&b'\n');
        if at_line_start {
            if let Some(after) = body
                .get(start..)
                .and_then(|rest| rest.strip_prefix(dash_boundary))
            {
                if after.starts_with(b"--") {
                    return Some(Delimiter { start, next: None });
                }
                let padding = after
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                let line_break = match after.get(padding..) {
                    Some([b'\r', b'\n', ..]) => Some(2),
                    Some([b'\n', ..]) => Some(1),
                    _ => None,
                };
                if let Some(len) = line_break {
                    let next = start + dash_boundary.len() + padding + len;
                    return Some(Delimiter {
                        start,
                        next: Some(next),
                    });
                }
            }
        }
        // On to the start of the next line.
        let newline = body.get(start..)?.iter().position(|&b| b == b'\n')?;
        start += newline + 1;
    }
}

fn multipart(body: &[u8], boundary: &[u8], fields: &mut Collector) -> Result<(), BodyError> {
    let dash_boundary = [b"--", boundary].concat();
    // Whatever precedes the first boundary line is preamble, and is ignored.
    let first = find_delimiter(body, &dash_boundary, 0).ok_or_else(|| {
        malformed(format!(
            "multipart body has no boundary line \"--{}\"",
            String::from_utf8_lossy(boundary)
        ))
    })?;
    let Some(mut part_start) = first.next else {
        // A form without fields: only the closing line.
        return Ok(());
    };
    for number in 1.. {
        let delimiter = find_delimiter(body, &dash_boundary, part_start)
            .ok_or_else(|| malformed("multipart body has no closing boundary"))?;
        // The line break before a boundary line belongs to the boundary, not to the part.
        let mut end = delimiter.start;
        if end > part_start {
            end -= 1;
            if end > part_start && body.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
        }
        let part = body.get(part_start..end).unwrap_or_default();
        let (name, value) = read_part(part, number)?;
        fields.push(name, value)?;
        match delimiter.next {
            // Whatever follows the closing line is epilogue, and is ignored.
            None => return Ok(()),
            Some(next) => part_start = next,
        }
    }
    Ok(())
}

/// One part: headers, a blank line, the value. Returns the field's name and value.
fn read_part(part: &[u8], number: usize) -> Result<(String, String), BodyError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    let value = loop {
        let Some(newline) = part
            .get(pos..)
            .and_then(|r| r.iter().position(|&b| b == b'\n'))
        else {
            return Err(malformed(format!(
                "multipart part {number} has no blank line after its headers"
            )));
        };
        let line = part.get(pos..pos + newline).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += newline + 1;
        if line.is_empty() {
            break part.get(pos..).unwrap_or_default();
        }
        let line = std::str::from_utf8(line).map_err(|_| {
            malformed(format!(
                "the headers of multipart part {number} are not valid UTF-8"
            ))
        })?;
        if line.starts_with([' ', '\t']) {
            // An obsolete folded header: its continuation.
            match headers.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                None => {
                    return Err(malformed(format!(
                        "multipart part {number} starts with a folded header line"
                    )))
                }
            }
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!(
                "multipart part {number} has a header line without a colon: {:?}",
                shorten(line)
            )));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(malformed(format!(
                "multipart part {number} has a malformed header name {:?}",
                shorten(name)
            )));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    };

    let header = |wanted: &str| -> Result<Option<&str>, BodyError> {
        let mut found = headers.iter().filter(|(n, _)| n == wanted);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(malformed(format!(
                "multipart part {number} has more than one {wanted} header"
            )));
        }
        Ok(first)
    };
    let disposition = header("content-disposition")?.ok_or_else(|| {
        malformed(format!(
            "multipart part {number} has no Content-Disposition header"
        ))
    })?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(malformed(format!(
            "multipart part {number} is not form-data (Content-Disposition {:?})",
            shorten(kind.trim())
        )));
    }
    let params = parse_params(params).map_err(|e| {
        malformed(format!(
            "multipart part {number} has a malformed Content-Disposition: {e}"
        ))
    })?;
    if params
        .iter()
        .any(|(k, _)| k == "filename" || k == "filename*")
    {
        return Err(malformed("file uploads are not accepted"));
    }
    let name = params
        .into_iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v)
        .ok_or_else(|| {
            malformed(format!(
                "multipart part {number} has no name in its Content-Disposition"
            ))
        })?;
    // RFC 7578 §4.7 deprecates transfer encodings; one that changes the bytes would be misread.
    if let Some(encoding) = header("content-transfer-encoding")? {
        if !["7bit", "8bit", "binary"]
            .iter()
            .any(|e| encoding.eq_ignore_ascii_case(e))
        {
            return Err(malformed(format!(
                "field {:?} uses Content-Transfer-Encoding {:?}, which is not supported",
                shorten(&name),
                shorten(encoding)
            )));
        }
    }
    let value = String::from_utf8(value.to_vec()).map_err(|_| {
        malformed(format!(
            "the value of field {:?} is not valid UTF-8",
            shorten(&name)
        ))
    })?;
    Ok((name, value))
}

// -------------------------------------------------------------------------------------------
// application/json
// -------------------------------------------------------------------------------------------

/// A JSON object's members in the order sent, duplicates kept (they become repeated fields,
/// as repeated names do in the other encodings). Values stay raw so a number keeps its text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn json(body: &[u8], fields: &mut Collector) -> Result<(), BodyError> {
    let text =
        std::str::from_utf8(body).map_err(|_| malformed("the JSON body is not valid UTF-8"))?;
    let top = match text.trim_start().as_bytes().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(_) => Some("not JSON"),
        None => Some("empty"),
    };
    if let Some(what) = top {
        return Err(malformed(format!(
            "the JSON body must be an object of fields, but it is {what}"
        )));
    }
    let members: Members<'_> = serde_json::from_str(text)
        .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
    for (name, raw) in members.0 {
        let shape = || {
            malformed(format!(
                "JSON value of field {:?} must be a string, number, boolean or array of those",
                shorten(&name)
            ))
        };
        let raw = raw.get().trim();
        if raw.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| shape())?;
            for item in items {
                let value = scalar(item.get().trim(), &name)?.ok_or_else(shape)?;
                fields.push(name.clone(), value)?;
            }
        } else if raw == "null" {
            // An empty optional field, as a form library serialises one.
        } else {
            let value = scalar(raw, &name)?.ok_or_else(shape)?;
            fields.push(name, value)?;
        }
    }
    Ok(())
}

/// A JSON string, number or boolean as field text; None for anything else.
fn scalar(raw: &str, name: &str) -> Result<Option<String>, BodyError> {
    Ok(match raw.as_bytes().first() {
        Some(b'"') => Some(serde_json::from_str::<String>(raw).map_err(|e| {
            malformed(format!(
                "JSON value of field {:?} is not a valid string: {e}",
                shorten(name)
            ))
        })?),
        // serde_json has checked the syntax: the raw text is the number as the client wrote it.
        Some(b'-' | b'0'..=b'9') => Some(raw.to_string()),
        _ if raw == "true" || raw == "false" => Some(raw.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLENCODED: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json");
    const CHROMIUM_BOUNDARY: &str = "----WebKitFormBoundaryq3ZyhSrcyDy0BoLs";

    fn pairs(fields: &[(&str, &str)]) -> Fields {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn malformed_message(content_type: Option<&str>, body: &[u8]) -> String {
        match parse(content_type, body) {
            Err(BodyError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    fn chromium(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{CHROMIUM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{CHROMIUM_BOUNDARY}--\r\n"));
        (
            format!("multipart/form-data; boundary={CHROMIUM_BOUNDARY}"),
            body.into_bytes(),
        )
    }

    #[test]
    fn errors_map_to_statuses_and_read_well() {
        assert_eq!(
            BodyError::UnsupportedMediaType("text/plain".into()).status(),
            415
        );
        assert_eq!(BodyError::TooLarge.status(), 413);
        assert_eq!(malformed("x").status(), 400);
        assert!(BodyError::UnsupportedMediaType(String::new())
            .to_string()
            .contains("no Content-Type"));
        assert!(BodyError::UnsupportedMediaType("text/plain".into())
            .to_string()
            .contains("\"text/plain\" is not accepted"));
        assert_eq!(
            BodyError::TooLarge.to_string(),
            "the body is larger than 65536 bytes"
        );
        assert_eq!(malformed("bad part").to_string(), "bad part");
    }

    #[test]
    fn media_types_outside_the_three_are_refused() {
        for ct in [
            None,
            Some(""),
            Some("  "),
            Some("text/plain"),
            Some("text/plain; charset=utf-8"),
        ] {
            assert!(
                matches!(parse(ct, b"a=1"), Err(BodyError::UnsupportedMediaType(_))),
                "{ct:?}"
            );
        }
        for ct in [
            "application/xml",
            "multipart/mixed; boundary=x",
            "application/jsonx",
            "json",
        ] {
            assert_eq!(
                parse(Some(ct), b"a=1"),
                Err(BodyError::UnsupportedMediaType(ct.into()))
            );
        }
        assert_eq!(
            parse(None, b""),
            Err(BodyError::UnsupportedMediaType(String::new()))
        );
        // A body in another charset is refused, not misread.
        assert!(matches!(
            parse(
                Some("application/x-www-form-urlencoded; charset=gbk"),
                b"a=1"
            ),
            Err(BodyError::UnsupportedMediaType(_))
        ));
        // Long headers are echoed shortened.
        let long = format!("text/{}", "x".repeat(500));
        match parse(Some(&long), b"") {
            Err(BodyError::UnsupportedMediaType(t)) => assert!(t.chars().count() <= ECHO_CHARS + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn media_types_match_in_any_case_with_parameters() {
        let expected = pairs(&[("a", "1")]);
        for ct in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            " application/x-www-form-urlencoded ; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=\"utf-8\"",
        ] {
            assert_eq!(parse(Some(ct), b"a=1").as_ref(), Ok(&expected), "{ct}");
        }
        for ct in ["application/json", "APPLICATION/JSON; charset=utf-8"] {
            assert_eq!(
                parse(Some(ct), br#"{"a":"1"}"#).as_ref(),
                Ok(&expected),
                "{ct}"
            );
        }
        assert_eq!(
            parse(Some("application/json; charset=\"utf-8"), br#"{"a":"1"}"#),
            Err(malformed(
                "the Content-Type parameters are malformed: the value of \"charset\" has no \
                 closing quote"
            ))
        );
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let mut body = b"a=".to_vec();
        body.resize(MAX_BODY_BYTES, b'x');
        assert_eq!(parse(URLENCODED, &body).map(|f| f.len()), Ok(1));
        body.push(b'x');
        for ct in [URLENCODED, JSON, Some("multipart/form-data; boundary=x")] {
            assert_eq!(parse(ct, &body), Err(BodyError::TooLarge), "{ct:?}");
        }
        // Whatever else is wrong with the request.
        let junk = vec![0xffu8; MAX_BODY_BYTES + 1];
        for ct in [JSON, None, Some("text/plain"), Some("multipart/form-data")] {
            assert_eq!(parse(ct, &junk), Err(BodyError::TooLarge), "{ct:?}");
        }
    }

    #[test]
    fn urlencoded_fields_are_decoded_in_order() {
        assert_eq!(
            parse(
                URLENCODED,
                b"email=zhang%40example.com&name=Zhang+Wei&&empty=&bare&a%20b=c%2Bd&pct=100%"
            ),
            Ok(pairs(&[
                ("email", "zhang@example.com"),
                ("name", "Zhang Wei"),
                ("empty", ""),
                ("bare", ""),
                ("a b", "c+d"),
                ("pct", "100%"),
            ]))
        );
        assert_eq!(parse(URLENCODED, b""), Ok(vec![]));
    }

    #[test]
    fn repeated_checkboxes_keep_every_value_in_each_encoding() {
        let expected = pairs(&[
            ("interest", "pricing"),
            ("email", "a@b.cn"),
            ("interest", "demo"),
            ("interest", "api"),
        ]);
        assert_eq!(
            parse(
                URLENCODED,
                b"interest=pricing&email=a%40b.cn&interest=demo&interest=api"
            )
            .as_ref(),
            Ok(&expected)
        );
        let (ct, body) = chromium(&[
            ("interest", "pricing"),
            ("email", "a@b.cn"),
            ("interest", "demo"),
            ("interest", "api"),
        ]);
        assert_eq!(parse(Some(&ct), &body).as_ref(), Ok(&expected));
        assert_eq!(
            parse(
                JSON,
                br#"{"interest":["pricing"],"email":"a@b.cn","interest":["demo","api"]}"#
            )
            .as_ref(),
            Ok(&expected)
        );
        assert_eq!(
            parse(
                JSON,
                br#"{"interest":["pricing","demo","api"],"email":"a@b.cn"}"#
            ),
            Ok(pairs(&[
                ("interest", "pricing"),
                ("interest", "demo"),
                ("interest", "api"),
                ("email", "a@b.cn"),
            ]))
        );
    }

    #[test]
    fn chinese_values_survive_each_encoding() {
        let expected = pairs(&[("name", "张伟"), ("公司", "北京某某科技有限公司")]);
        let mut encoded = String::from("name=");
        for b in "张伟".bytes() {
            encoded.push_str(&format!("%{b:02X}"));
        }
        encoded.push_str("&%E5%85%AC%E5%8F%B8=");
        for b in "北京某某科技有限公司".bytes() {
            encoded.push_str(&format!("%{b:02x}"));
        }
        assert_eq!(
            parse(URLENCODED, encoded.as_bytes()).as_ref(),
            Ok(&expected)
        );
        // Raw UTF-8 (not percent-encoded) is read too.
        assert_eq!(
            parse(URLENCODED, "name=张伟&公司=北京某某科技有限公司".as_bytes()).as_ref(),
            Ok(&expected)
        );
        let (ct, body) = chromium(&[("name", "张伟"), ("公司", "北京某某科技有限公司")]);
        assert_eq!(parse(Some(&ct), &body).as_ref(), Ok(&expected));
        assert_eq!(
            parse(
                JSON,
                r#"{"name":"张伟","公司":"北京某某科技有限公司"}"#.as_bytes()
            )
            .as_ref(),
            Ok(&expected)
        );
        assert_eq!(
            parse(JSON, br#"{"name":"\u5f20\u4f1f","\u516c\u53f8":"\u5317\u4eac\u67d0\u67d0\u79d1\u6280\u6709\u9650\u516c\u53f8"}"#)
                .as_ref(),
            Ok(&expected)
        );
    }

    #[test]
    fn invalid_utf8_is_refused_not_replaced() {
        let m = malformed_message(URLENCODED, b"name=%E5%BC&ok=1");
        assert_eq!(
            m,
            "the value of field \"name\" is not valid UTF-8 once percent-decoded"
        );
        assert!(malformed_message(URLENCODED, b"n%FFame=1").contains("field name"));
        assert!(malformed_message(URLENCODED, b"name=\xff").contains("\"name\""));
        // A multibyte character split by a separator is two broken halves.
        assert!(parse(URLENCODED, b"a=%E5%BC&%A0=1").is_err());
        // A replacement character sent on purpose is kept.
        assert_eq!(
            parse(URLENCODED, b"a=%EF%BF%BD"),
            Ok(pairs(&[("a", "\u{fffd}")]))
        );
        let (ct, _) = chromium(&[]);
        let body = format!(
            "--{CHROMIUM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\u{5f20}"
        );
        let mut body = body.into_bytes();
        body.pop();
        body.extend_from_slice(format!("\r\n--{CHROMIUM_BOUNDARY}--\r\n").as_bytes());
        assert_eq!(
            malformed_message(Some(&ct), &body),
            "the value of field \"name\" is not valid UTF-8"
        );
        assert_eq!(
            malformed_message(JSON, b"{\"name\":\"\xe5\xbc\"}"),
            "the JSON body is not valid UTF-8"
        );
        assert!(malformed_message(JSON, br#"{"name":"\ud800"}"#).contains("\"name\""));
    }

    #[test]
    fn nul_bytes_in_values_are_kept_for_field_validation() {
        assert_eq!(parse(URLENCODED, b"a=x%00y"), Ok(pairs(&[("a", "x\0y")])));
        assert_eq!(
            parse(JSON, br#"{"a":"x\u0000y"}"#),
            Ok(pairs(&[("a", "x\0y")]))
        );
        let (ct, body) = chromium(&[("a", "x\0y")]);
        assert_eq!(parse(Some(&ct), &body), Ok(pairs(&[("a", "x\0y")])));
    }

    #[test]
    fn field_names_are_bounded_and_printable() {
        let long = "n".repeat(MAX_FIELD_NAME_CHARS);
        assert_eq!(
            parse(URLENCODED, format!("{long}=1").as_bytes()).map(|f| f.len()),
            Ok(1)
        );
        // Characters, not bytes.
        let wide = "名".repeat(MAX_FIELD_NAME_CHARS);
        assert_eq!(
            parse(JSON, format!(r#"{{"{wide}":1}}"#).as_bytes()).map(|f| f.len()),
            Ok(1)
        );
        let m = malformed_message(URLENCODED, format!("{long}n=1").as_bytes());
        assert!(m.contains(&long) && m.contains("longer than 64"), "{m}");
        assert_eq!(
            malformed_message(URLENCODED, b"=1"),
            "a field has an empty name"
        );
        assert_eq!(
            malformed_message(JSON, br#"{"":"1"}"#),
            "a field has an empty name"
        );
        assert_eq!(
            malformed_message(URLENCODED, b"a%0Ab=1"),
            "field name \"a\\nb\" contains control characters"
        );
        assert!(malformed_message(JSON, br#"{"a\u0000":"1"}"#).contains("control characters"));
        assert!(malformed_message(JSON, br#"{"a\u0085":"1"}"#).contains("control characters"));
        let (ct, body) = chromium(&[("a\tb", "1")]);
        assert!(malformed_message(Some(&ct), &body).contains("control characters"));
    }

    #[test]
    fn at_most_max_fields_in_each_encoding() {
        let urlencoded = |n: usize| {
            (0..n)
                .map(|i| format!("f{i}=x"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(
            parse(URLENCODED, urlencoded(MAX_FIELDS).as_bytes()).map(|f| f.len()),
            Ok(MAX_FIELDS)
        );
        let too_many = format!("a form sends at most {MAX_FIELDS} fields");
        assert_eq!(
            malformed_message(URLENCODED, urlencoded(MAX_FIELDS + 1).as_bytes()),
            too_many
        );
        // Array items count one by one.
        let items = vec!["x"; MAX_FIELDS + 1];
        let body = serde_json::json!({ "f": items }).to_string();
        assert_eq!(malformed_message(JSON, body.as_bytes()), too_many);
        let names: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}")).collect();
        let parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let (ct, body) = chromium(&parts);
        assert_eq!(malformed_message(Some(&ct), &body), too_many);
        let (ct, body) = chromium(parts.get(..MAX_FIELDS).unwrap_or_default());
        assert_eq!(parse(Some(&ct), &body).map(|f| f.len()), Ok(MAX_FIELDS));
    }

    /// As Chromium 124 posts `<form enctype="multipart/form-data">`.
    #[test]
    fn a_chromium_multipart_body_is_read() {
        let body = "------WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n\
            Content-Disposition: form-data; name=\"name\"\r\n\
            \r\n\
            张伟\r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n\
            Content-Disposition: form-data; name=\"email\"\r\n\
            \r\n\
            zhang.wei@example.cn\r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n\
            Content-Disposition: form-data; name=\"message\"\r\n\
            \r\n\
            line one\r\n\
            \r\n\
            --not a boundary\r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLsX is not one either\r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n\
            Content-Disposition: form-data; name=\"consent_email\"\r\n\
            \r\n\
            on\r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLs\r\n\
            Content-Disposition: form-data; name=\"website\"\r\n\
            \r\n\
            \r\n\
            ------WebKitFormBoundaryq3ZyhSrcyDy0BoLs--\r\n";
        let ct = "multipart/form-data; boundary=----WebKitFormBoundaryq3ZyhSrcyDy0BoLs";
        assert_eq!(
            parse(Some(ct), body.as_bytes()),
            Ok(pairs(&[
                ("name", "张伟"),
                ("email", "zhang.wei@example.cn"),
                (
                    "message",
                    "line one\r\n\r\n--not a boundary\r\n\
                     ------WebKitFormBoundaryq3ZyhSrcyDy0BoLsX is not one either"
                ),
                ("consent_email", "on"),
                ("website", ""),
            ]))
        );
    }

    #[test]
    fn multipart_framing_variants() {
        // Quoted boundary (with characters a token cannot hold), preamble, epilogue, other
        // headers in any case, transport padding after a boundary.
        let body = "This is a preamble.\r\n--a b:c\r\n\
            content-disposition: FORM-DATA; name=email\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            \r\n\
            a@b.cn\r\n\
            --a b:c  \r\n\
            Content-Disposition: form-data;name=\"say \\\"hi\\\"\"\r\n\
            \r\n\
            hi\r\n\
            --a b:c--\r\nthe epilogue\r\n--a b:c\r\nignored";
        assert_eq!(
            parse(
                Some("multipart/form-data; boundary=\"a b:c\""),
                body.as_bytes()
            ),
            Ok(pairs(&[("email", "a@b.cn"), ("say \"hi\"", "hi")]))
        );
        // Bare LF line breaks, as some scripts send.
        let body = "--xyz\nContent-Disposition: form-data; name=\"a\"\n\n1\n--xyz\n\
            Content-Disposition: form-data; name=\"b\"\n\nline\nline\n--xyz--";
        assert_eq!(
            parse(Some("multipart/form-data; boundary=xyz"), body.as_bytes()),
            Ok(pairs(&[("a", "1"), ("b", "line\nline")]))
        );
        // No fields: only the closing line.
        let (ct, body) = chromium(&[]);
        assert_eq!(parse(Some(&ct), &body), Ok(vec![]));
        // Folded header.
        let body = "--b\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n1\r\n--b--";
        assert_eq!(
            parse(Some("multipart/form-data; boundary=b"), body.as_bytes()),
            Ok(pairs(&[("a", "1")]))
        );
    }

    #[test]
    fn truncated_or_broken_multipart_is_malformed() {
        let (ct, body) = chromium(&[("name", "张伟"), ("email", "a@b.cn")]);
        let closing = format!("--{CHROMIUM_BOUNDARY}--");
        let at = body.len() - closing.len() - 2;
        for cut in [body.len() - 4, at, at - 5, 60] {
            assert_eq!(
                malformed_message(Some(&ct), body.get(..cut).unwrap_or_default()),
                "multipart body has no closing boundary",
                "cut at {cut}"
            );
        }
        assert!(malformed_message(Some(&ct), b"").contains("no boundary line"));
        assert!(malformed_message(Some(&ct), b"name=1").contains("no boundary line"));
        let mp = Some("multipart/form-data; boundary=b");
        for (body, message) in [
            (
                "--b\r\n\r\nx\r\n--b--",
                "multipart part 1 has no Content-Disposition header",
            ),
            (
                "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
                "multipart part 1 has no name in its Content-Disposition",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nx\r\n\r\nv\r\n--b--",
                "multipart part 1 has a header line without a colon: \"x\"",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n--b--",
                "multipart part 1 has no blank line after its headers",
            ),
            (
                "--b\r\n--b--",
                "multipart part 1 has no blank line after its headers",
            ),
            (
                "--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--",
                "multipart part 1 is not form-data (Content-Disposition \"attachment\")",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
                "multipart part 1 has a malformed Content-Disposition: the value of \"name\" \
                 has no closing quote",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\
                 Content-Disposition: form-data; name=\"b\"\r\n\r\nx\r\n--b--",
                "multipart part 1 has more than one content-disposition header",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\neA==\r\n--b--",
                "field \"a\" uses Content-Transfer-Encoding \"base64\", which is not supported",
            ),
        ] {
            assert_eq!(malformed_message(mp, body.as_bytes()), message, "{body:?}");
        }
        assert!(malformed_message(
            mp,
            b"--b\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\nx\r\n--b--"
        )
        .contains("headers of multipart part 1 are not valid UTF-8"));
    }

    #[test]
    fn multipart_needs_a_sound_boundary() {
        let bad = "the multipart boundary must be 1 to 70 printable ASCII characters, not \
                   ending in a space";
        assert_eq!(
            malformed_message(Some("multipart/form-data"), b"--x--"),
            "multipart/form-data needs a boundary parameter"
        );
        let seventy = "b".repeat(70);
        let body = format!(
            "--{seventy}\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--{seventy}--"
        );
        assert_eq!(
            parse(
                Some(&format!("multipart/form-data; boundary={seventy}")),
                body.as_bytes()
            ),
            Ok(pairs(&[("a", "1")]))
        );
        for ct in [
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"ab \"",
            "multipart/form-data; boundary=\"a\tb\"",
            "multipart/form-data; boundary=中文",
        ] {
            assert_eq!(malformed_message(Some(ct), b"--x--"), bad, "{ct}");
        }
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        assert_eq!(malformed_message(Some(&long), b"--x--"), bad);
    }

    #[test]
    fn file_parts_are_refused() {
        let body = format!(
            "--{CHROMIUM_BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"email\"\r\n\r\na@b.cn\r\n\
             --{CHROMIUM_BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"cv\"; filename=\"简历.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n\
             --{CHROMIUM_BOUNDARY}--\r\n"
        );
        let (ct, _) = chromium(&[]);
        assert_eq!(
            malformed_message(Some(&ct), body.as_bytes()),
            "file uploads are not accepted"
        );
        let body = "--b\r\nContent-Disposition: form-data; name=\"cv\"; filename*=utf-8''a.pdf\
                    \r\n\r\nx\r\n--b--";
        assert_eq!(
            malformed_message(Some("multipart/form-data; boundary=b"), body.as_bytes()),
            "file uploads are not accepted"
        );
    }

    #[test]
    fn json_scalars_become_text() {
        assert_eq!(
            parse(
                JSON,
                br#" {"email":"a@b.cn","age":30,"score":-1.50e2,"big":1e400,"consent":true,
                      "newsletter":false,"note":null,"tags":[],"mix":[1,"x",true]} "#
            ),
            Ok(pairs(&[
                ("email", "a@b.cn"),
                ("age", "30"),
                ("score", "-1.50e2"),
                ("big", "1e400"),
                ("consent", "true"),
                ("newsletter", "false"),
                ("mix", "1"),
                ("mix", "x"),
                ("mix", "true"),
            ]))
        );
        assert_eq!(parse(JSON, b"{}"), Ok(vec![]));
    }

    #[test]
    fn json_shapes_outside_fields_are_malformed() {
        let shape = |name: &str| {
            format!(
                "JSON value of field {name:?} must be a string, number, boolean or array of those"
            )
        };
        assert_eq!(
            malformed_message(JSON, br#"{"age":{"years":30}}"#),
            shape("age")
        );
        assert_eq!(
            malformed_message(JSON, br#"{"a":"1","tags":[["x"]]}"#),
            shape("tags")
        );
        assert_eq!(
            malformed_message(JSON, br#"{"tags":["x",null]}"#),
            shape("tags")
        );
        assert_eq!(malformed_message(JSON, br#"{"tags":[{}]}"#), shape("tags"));
        for (body, what) in [
            (&b"[1]"[..], "an array"),
            (b"\"a=1\"", "a string"),
            (b"42", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
            (b"", "empty"),
            (b"   ", "empty"),
            (b"a=1", "not JSON"),
        ] {
            assert_eq!(
                malformed_message(JSON, body),
                format!("the JSON body must be an object of fields, but it is {what}")
            );
        }
        for body in [
            &br#"{"a":1"#[..],
            br#"{"a":1}x"#,
            br#"{"a":01}"#,
            br#"{a:1}"#,
        ] {
            assert!(
                malformed_message(JSON, body).starts_with("the body is not valid JSON: "),
                "{body:?}"
            );
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(JSON, deep.as_bytes()).is_err());
    }
}

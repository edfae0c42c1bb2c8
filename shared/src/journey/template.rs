//! `{{...}}` templates in journey files, and how a value is encoded where it lands.
//!
//! A template is parsed once, when the journey file is loaded: `{{vars.NAME}}` is a constant and
//! its value is looked up then, so only `{{secret.NAME}}`, `{{NAME}}` (a capture) and `{{run.id}}`
//! are left for run time. Rendering encodes each substituted value for its destination, a var's
//! as much as any other, never the literal text around it: a target that returns the id
//! `../admin` cannot move the next request, and a value with CR/LF cannot smuggle a header.

use std::collections::BTreeMap;
use std::fmt;

/// A literal `{{` in a journey's text is written `{{"{{"}}`: the template whose content is the
/// quoted text `{{`. (`}}` alone needs no escape: only `{{` opens a template.)
pub const ESCAPED_OPEN: &str = r#"{{"{{"}}"#;
const QUOTED_OPEN: &str = r#""{{""#;

/// The values a step's render makes: `{{now.iso}}`, `{{now.unix}}`, `{{now.unix_ms}}`, `{{uuid}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Generated {
    /// RFC 3339 in UTC to the millisecond: `2025-12-04T23:53:00.123Z`.
    NowIso,
    /// Whole seconds since the Unix epoch.
    NowUnix,
    /// Milliseconds since the Unix epoch.
    NowUnixMs,
    /// A random (version 4) UUID, hyphenated, lower case.
    Uuid,
}

impl Generated {
    pub const ALL: [Generated; 4] = [Generated::NowIso, Generated::NowUnix, Generated::NowUnixMs, Generated::Uuid];

    pub fn name(self) -> &'static str {
        match self {
            Generated::NowIso => "now.iso",
            Generated::NowUnix => "now.unix",
            Generated::NowUnixMs => "now.unix_ms",
            Generated::Uuid => "uuid",
        }
    }

    /// Whether a JSON value that is exactly this template is sent as a number.
    pub fn is_number(self) -> bool {
        matches!(self, Generated::NowUnix | Generated::NowUnixMs)
    }
}

/// One step's generated values, made together so `{{now.unix}}` and `{{now.iso}}` name the same
/// instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeneratedValues([String; 4]);

impl GeneratedValues {
    pub fn new(now: time::OffsetDateTime, uuid: uuid::Uuid) -> Self {
        let now = now.to_offset(time::UtcOffset::UTC);
        let millis = now.unix_timestamp_nanos() / 1_000_000;
        let iso = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .ok()
            .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        GeneratedValues([iso, now.unix_timestamp().to_string(), millis.to_string(), uuid.hyphenated().to_string()])
    }

    pub fn now() -> Self {
        Self::new(time::OffsetDateTime::now_utc(), uuid::Uuid::new_v4())
    }

    pub fn get(&self, which: Generated) -> &str {
        let index = Generated::ALL.iter().position(|g| *g == which).unwrap_or_default();
        &self.0[index]
    }
}

/// A part of the request as it is finally sent, which a step's `sign.message` can name:
/// `{{request.method}}`, `{{request.path}}` (path and query, as sent), `{{request.body}}` (the
/// exact body bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RequestPart {
    Method,
    Path,
    Body,
}

impl RequestPart {
    pub const ALL: [RequestPart; 3] = [RequestPart::Method, RequestPart::Path, RequestPart::Body];

    pub fn name(self) -> &'static str {
        match self {
            RequestPart::Method => "request.method",
            RequestPart::Path => "request.path",
            RequestPart::Body => "request.body",
        }
    }
}

/// What a `{{...}}` names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    Secret(String),
    Capture(String),
    RunId,
    /// A value made when the step is rendered: one of each per step, the same wherever the step
    /// uses it, fresh for the next step.
    Generated(Generated),
    /// The request being signed: only a `sign.message` may name it (validation sees to that).
    Request(RequestPart),
    /// A constant of `[vars]`, its value looked up when the file was loaded: a run supplies
    /// nothing for it, so [`Template::refs`] does not list it.
    Var {
        name: String,
        value: String,
    },
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Secret(name) => write!(f, "{{{{secret.{name}}}}}"),
            Ref::Capture(name) => write!(f, "{{{{{name}}}}}"),
            Ref::RunId => f.write_str("{{run.id}}"),
            Ref::Generated(which) => write!(f, "{{{{{}}}}}", which.name()),
            Ref::Request(part) => write!(f, "{{{{{}}}}}", part.name()),
            Ref::Var { name, .. } => write!(f, "{{{{vars.{name}}}}}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Ref(Ref),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Where a rendered value goes, which decides how it is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// As is: the caller serializes it (JSON strings and form fields are escaped by their
    /// serializer), or it is a credential handed to the HTTP client.
    Raw,
    /// A URL path or query: each value becomes one percent-encoded segment.
    Url,
    /// A header value: a value holding CR, LF or NUL is refused.
    Header,
    /// A value in a form body written by hand (`body` typed `application/x-www-form-urlencoded`):
    /// form-encoded, as a `form` table's values are, so it stays one field.
    Form,
}

/// The values a template can name at run time.
pub trait Scope {
    fn secret(&self, name: &str) -> Option<&str>;
    fn capture(&self, name: &str) -> Option<&str>;
    fn run_id(&self) -> &str;
    /// The values generated for the step being rendered.
    fn generated(&self) -> &GeneratedValues;
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the secret has no string field \"{0}\"")]
    MissingSecret(String),
    #[error("{{{{{0}}}}} was not captured")]
    MissingCapture(String),
    /// Names the reference, never the value: it may be a secret.
    #[error("{0} is empty, \".\" or \"..\", which cannot stand as a URL segment")]
    DotSegment(Ref),
    #[error("{0} holds a control character (CR, LF, NUL, DEL or another), which a header value cannot carry")]
    ControlCharacter(Ref),
    /// A step names a target its journey does not declare (validation refuses this; a journey
    /// changed after it was read must still never fall back to another origin).
    #[error("target \"{0}\" is not declared in [targets]")]
    UnknownTarget(String),
    /// Only a `sign.message` names the request (validation refuses it anywhere else).
    #[error("{0} stands in sign.message only")]
    NotSigning(Ref),
}

impl Template {
    /// A template of plain text, with no references.
    pub fn literal(text: &str) -> Self {
        Template { parts: vec![Part::Text(text.to_string())] }
    }

    /// Parses `text`, looking `{{vars.NAME}}` up in `vars`. The error is a plain sentence.
    pub fn parse(text: &str, vars: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            push_text(&mut parts, &rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("\"{{{{\" at {:?} is never closed (a literal {{{{ is written {ESCAPED_OPEN})", shorten(rest))
            })?;
            let name = after[..close].trim();
            if name == QUOTED_OPEN {
                push_text(&mut parts, "{{");
                rest = &after[close + 2..];
                continue;
            }
            match reference(name) {
                Some(Reference::Var(var)) => match vars.get(var) {
                    // Kept apart from the text around it, so it is encoded like any other value.
                    Some(value) => parts.push(Part::Ref(Ref::Var { name: var.to_string(), value: value.clone() })),
                    None => return Err(format!("{{{{vars.{var}}}}} is not defined in [vars]")),
                },
                Some(Reference::Ref(r)) => parts.push(Part::Ref(r)),
                None => {
                    return Err(format!(
                        "{{{{{name}}}}} is not a template: use {{{{secret.NAME}}}}, {{{{vars.NAME}}}}, {{{{run.id}}}} \
                         or {{{{NAME}}}} for a capture"
                    ));
                }
            }
            rest = &after[close + 2..];
        }
        push_text(&mut parts, rest);
        Ok(Template { parts })
    }

    /// The one reference the template is, with no text around it (`"{{order_id}}"`): in a JSON
    /// body such a value is sent with its own JSON type.
    pub fn sole_ref(&self) -> Option<&Ref> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => Some(r),
            _ => None,
        }
    }

    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(Ref::Var { .. }) | Part::Text(_) => None,
            Part::Ref(r) => Some(r),
        })
    }

    /// Whether the template's own text (not the values it names) can stand in a header value.
    pub fn text_fits_in_header(&self) -> bool {
        self.parts.iter().all(|part| match part {
            Part::Text(text) => fits_in_header(text),
            Part::Ref(_) => true,
        })
    }

    /// The text, when the template names nothing a run supplies (vars as they are, unencoded).
    pub fn as_literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) | Part::Ref(Ref::Var { value: t, .. }) => text.push_str(t),
                Part::Ref(_) => return None,
            }
        }
        Some(text)
    }

    /// Whether every var's value can go where this template is used: checked when the file is
    /// loaded, so a var that cannot is the journey's mistake, reported at its line.
    pub fn check_vars(&self, encoding: Encoding) -> Result<(), RenderError> {
        for part in &self.parts {
            if let Part::Ref(r @ Ref::Var { value, .. }) = part {
                encode_value(&mut String::new(), value, r, encoding)?;
            }
        }
        Ok(())
    }

    pub fn render(&self, scope: &dyn Scope, encoding: Encoding) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Ref(r) => {
                    let value = match r {
                        Ref::Secret(name) => {
                            scope.secret(name).ok_or_else(|| RenderError::MissingSecret(name.clone()))?
                        }
                        Ref::Capture(name) => {
                            scope.capture(name).ok_or_else(|| RenderError::MissingCapture(name.clone()))?
                        }
                        Ref::RunId => scope.run_id(),
                        Ref::Generated(which) => scope.generated().get(*which),
                        Ref::Request(_) => return Err(RenderError::NotSigning(r.clone())),
                        Ref::Var { value, .. } => value,
                    };
                    encode_value(&mut out, value, r, encoding)?;
                }
            }
        }
        Ok(out)
    }

    /// Whether the template names `{{now.*}}`: a value that moves with each attempt of a signed
    /// step.
    pub fn names_now(&self) -> bool {
        self.refs().any(|r| matches!(r, Ref::Generated(g) if *g != Generated::Uuid))
    }

    /// Renders what the run supplies now and leaves `{{now.*}}` and `{{request.*}}` to each
    /// attempt ([`PerAttempt::write`]): a signed step's timestamp moves with its retries and
    /// polls, and its signature covers the request as it is finally sent.
    pub fn render_per_attempt(&self, scope: &dyn Scope, encoding: Encoding) -> Result<PerAttempt, RenderError> {
        let mut parts = Vec::new();
        for part in &self.parts {
            let single = Template { parts: vec![part.clone()] };
            parts.push(match part {
                Part::Ref(Ref::Generated(which)) if *which != Generated::Uuid => AttemptPart::Now(*which),
                Part::Ref(Ref::Request(what)) => AttemptPart::Request(*what),
                _ => AttemptPart::Text(single.render(scope, encoding)?),
            });
        }
        Ok(PerAttempt(parts))
    }
}

/// A template rendered but for the values of one attempt: the instant (`{{now.*}}`) and the
/// request sent (`{{request.*}}`). Its `Debug` shows nothing: the text may hold secrets.
#[derive(Clone, PartialEq)]
pub struct PerAttempt(Vec<AttemptPart>);

#[derive(Clone, PartialEq)]
enum AttemptPart {
    Text(String),
    Now(Generated),
    Request(RequestPart),
}

/// The request of one attempt, as a signature sees it.
pub struct Sent<'a> {
    pub method: &'a str,
    /// Path and query, percent-encoded as sent.
    pub path: &'a str,
    pub body: &'a [u8],
}

impl PerAttempt {
    /// Appends the bytes of this attempt: `now`'s instant, `sent`'s method, path and body.
    pub fn write(&self, out: &mut Vec<u8>, now: &GeneratedValues, sent: &Sent<'_>) {
        for part in &self.0 {
            match part {
                AttemptPart::Text(text) => out.extend_from_slice(text.as_bytes()),
                AttemptPart::Now(which) => out.extend_from_slice(now.get(*which).as_bytes()),
                AttemptPart::Request(RequestPart::Method) => out.extend_from_slice(sent.method.as_bytes()),
                AttemptPart::Request(RequestPart::Path) => out.extend_from_slice(sent.path.as_bytes()),
                AttemptPart::Request(RequestPart::Body) => out.extend_from_slice(sent.body),
            }
        }
    }

    /// The text of this attempt, for a header (which never names the request).
    pub fn text(&self, now: &GeneratedValues) -> String {
        let mut out = Vec::new();
        self.write(&mut out, now, &Sent { method: "", path: "", body: b"" });
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Debug for PerAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PerAttempt(..)")
    }
}

/// Appends `value`, which `r` names, encoded for where it lands: the one place every value
/// (secret, capture, run id, var) goes through.
fn encode_value(out: &mut String, value: &str, r: &Ref, encoding: Encoding) -> Result<(), RenderError> {
    match encoding {
        Encoding::Raw => out.push_str(value),
        Encoding::Url => {
            // A dot segment would survive percent-encoding and climb the path.
            if matches!(value, "" | "." | "..") {
                return Err(RenderError::DotSegment(r.clone()));
            }
            out.push_str(&encode_segment(value));
        }
        Encoding::Header => {
            if !fits_in_header(value) {
                return Err(RenderError::ControlCharacter(r.clone()));
            }
            out.push_str(value);
        }
        Encoding::Form => out.extend(url::form_urlencoded::byte_serialize(value.as_bytes())),
    }
    Ok(())
}

/// Whether `value` can stand in a header value as HTTP and the client take it: no control
/// character but the tab. CR and LF would split the header; the client refuses the others, and
/// a request it refuses to build is not the target failing to connect.
pub fn fits_in_header(value: &str) -> bool {
    !value.chars().any(|c| c.is_ascii_control() && c != '\t')
}

enum Reference<'a> {
    Var(&'a str),
    Ref(Ref),
}

fn reference(name: &str) -> Option<Reference<'_>> {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name == "run.id" {
        return Some(Reference::Ref(Ref::RunId));
    }
    if let Some(which) = Generated::ALL.into_iter().find(|g| g.name() == name) {
        return Some(Reference::Ref(Ref::Generated(which)));
    }
    if let Some(part) = RequestPart::ALL.into_iter().find(|p| p.name() == name) {
        return Some(Reference::Ref(Ref::Request(part)));
    }
    if let Some(field) = name.strip_prefix("secret.") {
        return ident(field).then(|| Reference::Ref(Ref::Secret(field.to_string())));
    }
    if let Some(var) = name.strip_prefix("vars.") {
        return ident(var).then_some(Reference::Var(var));
    }
    ident(name).then(|| Reference::Ref(Ref::Capture(name.to_string())))
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if text.is_empty() {
        return;
    }
    match parts.last_mut() {
        Some(Part::Text(last)) => last.push_str(text),
        _ => parts.push(Part::Text(text.to_string())),
    }
}

fn shorten(text: &str) -> String {
    crate::text::truncate(text, 24)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Values;

    impl Scope for Values {
        fn secret(&self, name: &str) -> Option<&str> {
            (name == "password").then_some("p\"w\r\nx")
        }
        fn capture(&self, name: &str) -> Option<&str> {
            match name {
                "id" => Some("../admin?x=1"),
                "dots" => Some(".."),
                "token" => Some("t-1"),
                _ => None,
            }
        }
        fn run_id(&self) -> &str {
            "run-7"
        }
        fn generated(&self) -> &GeneratedValues {
            static VALUES: std::sync::OnceLock<GeneratedValues> = std::sync::OnceLock::new();
            VALUES.get_or_init(|| {
                GeneratedValues::new(
                    time::OffsetDateTime::from_unix_timestamp_nanos(1_764_892_380_123_456_789).unwrap(),
                    uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
                )
            })
        }
    }

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("currency".to_string(), "usd".to_string())])
    }

    #[test]
    fn vars_are_inlined_and_the_rest_is_resolved_at_run_time() {
        let t = Template::parse("/pay/{{ vars.currency }}/{{id}}?run={{run.id}}", &vars()).unwrap();
        assert_eq!(t.refs().cloned().collect::<Vec<_>>(), [Ref::Capture("id".into()), Ref::RunId]);
        assert_eq!(t.render(&Values, Encoding::Url).unwrap(), "/pay/usd/..%2Fadmin%3Fx%3D1?run=run-7");
        assert_eq!(Template::parse("{{vars.currency}}", &vars()).unwrap().as_literal().as_deref(), Some("usd"));
    }

    #[test]
    fn a_captured_value_stays_one_url_segment_and_dot_segments_are_refused() {
        let t = Template::parse("/items/{{dots}}", &vars()).unwrap();
        assert_eq!(t.render(&Values, Encoding::Url), Err(RenderError::DotSegment(Ref::Capture("dots".into()))));
    }

    #[test]
    fn header_values_refuse_control_characters_without_quoting_the_value() {
        let t = Template::parse("Bearer {{secret.password}}", &vars()).unwrap();
        let error = t.render(&Values, Encoding::Header).unwrap_err();
        assert!(!error.to_string().contains("p\"w"), "{error}");
        assert_eq!(t.render(&Values, Encoding::Raw).unwrap(), "Bearer p\"w\r\nx");
    }

    #[test]
    fn every_control_character_but_the_tab_is_refused_in_a_header() {
        // The client refuses all of them (not only CR, LF and NUL); the tab is allowed.
        for c in (0u8..0x20).chain([0x7f]).map(char::from) {
            assert_eq!(fits_in_header(&format!("a{c}b")), c == '\t', "{:#04x}", c as u32);
        }
        assert!(fits_in_header("Bearer abc ü ~!"));
        assert!(!Template::literal("a\u{1}b").text_fits_in_header());
    }

    #[test]
    fn malformed_templates_say_what_is_allowed() {
        for (text, expected) in [
            ("{{vars.nope}}", "{{vars.nope}} is not defined"),
            ("/x/{{id", "is never closed"),
            ("{{ }}", "is not a template"),
            ("{{env.HOME}}", "is not a template"),
        ] {
            let error = Template::parse(text, &vars()).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_literal_open_brace_pair_is_escaped_and_stays_text() {
        // GIVEN the escape, alone, beside text and beside a template
        let t = Template::parse(r#"a {{"{{"}}b}} {{ "{{" }}{{id}}}}"#, &vars()).unwrap();
        // THEN it is text, never a template, and only the real template is a reference
        assert_eq!(t.refs().cloned().collect::<Vec<_>>(), [Ref::Capture("id".into())]);
        assert_eq!(t.render(&Values, Encoding::Raw).unwrap(), "a {{b}} {{../admin?x=1}}");
        assert_eq!(Template::parse(ESCAPED_OPEN, &vars()).unwrap().as_literal().as_deref(), Some("{{"));
        assert_eq!(Template::parse(ESCAPED_OPEN, &vars()).unwrap().sole_ref(), None, "a JSON string, not typed");
        // AND an unclosed one says how to write a literal one
        let error = Template::parse("x {{ y", &vars()).unwrap_err();
        assert!(error.ends_with(r#"(a literal {{ is written {{"{{"}})"#), "{error}");
    }

    #[test]
    fn generated_values_name_one_instant_and_are_encoded_like_any_value() {
        let t = Template::parse("/at/{{now.iso}}?s={{ now.unix }}&ms={{now.unix_ms}}&id={{uuid}}", &vars()).unwrap();
        assert_eq!(t.refs().count(), 4, "made at run time");
        assert_eq!(
            t.render(&Values, Encoding::Url).unwrap(),
            "/at/2025-12-04T23%3A53%3A00.123Z?s=1764892380&ms=1764892380123&id=01234567-89ab-4def-8123-456789abcdef"
        );
        assert_eq!(Ref::Generated(Generated::NowUnixMs).to_string(), "{{now.unix_ms}}");
        assert!(Template::parse("{{now.year}}", &vars()).unwrap_err().contains("is not a template"));
    }

    #[test]
    fn missing_values_are_named() {
        let t = Template::parse("{{secret.api_key}}{{later}}", &vars()).unwrap();
        assert_eq!(t.render(&Values, Encoding::Raw), Err(RenderError::MissingSecret("api_key".into())));
    }
}

//! Assertions on a response: status, JSON pointers, headers, body text.
//!
//! A status mismatch is an `http_status` failure, a body that cannot be parsed is
//! `invalid_response`, and a well-formed answer with the wrong content is `assertion`.

use super::exchange::{CookieJar, StepSpec};
use super::extract::{Path, Pattern};
use super::file::{Capture, CaptureSource, StepRole};
use super::schema::Schema;
use crate::error::CheckError;
use crate::http::{HttpResponse, json_at};
use crate::result::Outcome;
use crate::secret::Scrubber;
use serde_json::Value;
use std::time::Duration;

/// What a JSON value must be.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTest {
    /// `exists = true` (or `false`: the value must be absent).
    Exists(bool),
    /// The same JSON value; a string also matches a number or boolean that prints as it (a
    /// captured numeric id compared with its text).
    Equals(Value),
    /// Equal to one of these; strings compare case-insensitively.
    OneOf(Vec<Value>),
    /// Equal to none of these; strings compare case-insensitively.
    NotIn(Vec<Value>),
    /// A non-empty string, array or object.
    NonEmpty,
    /// An array of at least this many items.
    MinItems(usize),
    /// A number (or a string holding one) compared with this one.
    Compare(Comparison, serde_json::Number),
    /// A string, number or boolean whose text the regex matches somewhere.
    Matches(Pattern),
    /// Anything but this value (compared as `Equals` does).
    NotEquals(Value),
    /// An array holding this value, or a string holding this text.
    Contains(Value),
    /// A string (in characters), array or object of this many items, bounds included.
    Length { min: Option<usize>, max: Option<usize> },
    /// Valid against a JSON Schema.
    Schema(Schema),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    GreaterThan,
    AtLeast,
    LessThan,
    AtMost,
}

impl Comparison {
    /// The assertion key that asks for it.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "greater_than" => Comparison::GreaterThan,
            "at_least" => Comparison::AtLeast,
            "less_than" => Comparison::LessThan,
            "at_most" => Comparison::AtMost,
            _ => return None,
        })
    }

    fn holds(self, order: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Comparison::GreaterThan => order == Greater,
            Comparison::AtLeast => matches!(order, Greater | Equal),
            Comparison::LessThan => order == Less,
            Comparison::AtMost => matches!(order, Less | Equal),
        }
    }

    fn words(self) -> &'static str {
        match self {
            Comparison::GreaterThan => "greater than",
            Comparison::AtLeast => "at least",
            Comparison::LessThan => "less than",
            Comparison::AtMost => "at most",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HeaderTest {
    Equals(String),
    Contains(String),
    /// Passes when the header is absent too.
    NotContains(String),
    /// `true`: the header is there; `false`: it is not.
    Exists(bool),
    Matches(Pattern),
}

/// One rendered assertion of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Assertion {
    /// At a JSON pointer (RFC 6901; `""` is the whole body). With `optional`, only judged when
    /// the value is there, and a body that is not JSON passes unless it claims to be JSON (a
    /// health endpoint answers plain `OK` as often as JSON).
    Json {
        pointer: String,
        optional: bool,
        test: JsonTest,
    },
    /// At the first node an RFC 9535 JSONPath selects; judged as `Json` is.
    JsonPath {
        path: Path,
        optional: bool,
        test: JsonTest,
    },
    Header {
        name: String,
        test: HeaderTest,
    },
    BodyContains(String),
    BodyNotContains(String),
    BodyMatches(Pattern),
}

impl Assertion {
    /// Judges `response`. A failure quotes what it saw, scrubbed by `scrubber` before it is cut,
    /// so a cut never leaves the head of a secret behind.
    pub fn check(&self, response: &HttpResponse, scrubber: &Scrubber) -> Result<(), CheckError> {
        let fail = |message: String| Err(CheckError::Assertion(message));
        match self {
            Assertion::Json { pointer, optional, test } => {
                judge_json(response, *optional, test, shown(pointer), |json| json_at(json, pointer), scrubber)
            }
            Assertion::JsonPath { path, optional, test } => {
                judge_json(response, *optional, test, path.as_str(), |json| path.first(json), scrubber)
            }
            Assertion::Header { name, test } => match (response.header(name), test) {
                (Some(actual), HeaderTest::Equals(expected)) if actual == expected => Ok(()),
                (Some(actual), HeaderTest::Contains(needle)) if actual.contains(needle.as_str()) => Ok(()),
                (Some(actual), HeaderTest::Equals(expected)) => fail(format!(
                    "header {name} is {:?}, expected {:?}",
                    scrubber.cut(actual, 60),
                    scrubber.scrub(expected)
                )),
                (Some(actual), HeaderTest::Contains(needle)) => fail(format!(
                    "header {name} is {:?}, expected it to contain {:?}",
                    scrubber.cut(actual, 60),
                    scrubber.scrub(needle)
                )),
                (Some(actual), HeaderTest::NotContains(needle)) if actual.contains(needle.as_str()) => fail(format!(
                    "header {name} is {:?}, expected it not to contain {:?}",
                    scrubber.cut(actual, 60),
                    scrubber.scrub(needle)
                )),
                (Some(actual), HeaderTest::Matches(pattern)) if !pattern.is_match(actual) => fail(format!(
                    "header {name} is {:?}, expected it to match {:?}",
                    scrubber.cut(actual, 60),
                    pattern.as_str()
                )),
                (Some(actual), HeaderTest::Exists(false)) => {
                    fail(format!("header {name} is {:?}, expected it to be absent", scrubber.cut(actual, 60)))
                }
                (Some(_), _) | (None, HeaderTest::NotContains(_) | HeaderTest::Exists(false)) => Ok(()),
                (None, _) => fail(format!("header {name} is missing")),
            },
            Assertion::BodyContains(needle) => {
                if String::from_utf8_lossy(&response.body).contains(needle.as_str()) {
                    Ok(())
                } else {
                    fail(format!("body does not contain {:?}", scrubber.scrub(needle)))
                }
            }
            // Not quoted where it was found: a window of the body could begin inside a secret,
            // whose tail the scrubber would no longer recognise.
            Assertion::BodyNotContains(needle) => {
                match String::from_utf8_lossy(&response.body).contains(needle.as_str()) {
                    false => Ok(()),
                    true => fail(format!("body contains {:?}, expected it not to", scrubber.scrub(needle))),
                }
            }
            Assertion::BodyMatches(pattern) => {
                if pattern.is_match(&String::from_utf8_lossy(&response.body)) {
                    Ok(())
                } else {
                    fail(format!("body does not match {:?}{}", pattern.as_str(), excerpt(&response.body, scrubber)))
                }
            }
        }
    }
}

/// Judges the value `find` locates (shown in messages as `at`) in the body's JSON.
fn judge_json(
    response: &HttpResponse,
    optional: bool,
    test: &JsonTest,
    at: &str,
    find: impl for<'v> Fn(&'v Value) -> Option<&'v Value>,
    scrubber: &Scrubber,
) -> Result<(), CheckError> {
    let json = match response.json() {
        Ok(json) => json,
        Err(_) if optional && !response.claims_json() => return Ok(()),
        Err(error) => return Err(error),
    };
    let fail = |message: String| Err(CheckError::Assertion(message));
    match (find(json), test) {
        (None, JsonTest::Exists(false)) => Ok(()),
        (None, _) if optional => Ok(()),
        (None, _) => fail(format!("JSON {at} is missing{}", test.expectation(scrubber))),
        (Some(actual), JsonTest::Schema(schema)) => schema_failure(schema, actual, scrubber)
            .map_or(Ok(()), |errors| fail(format!("JSON {at} does not match schema {}{errors}", schema.file()))),
        (Some(actual), test) => match test.holds(actual) {
            true => Ok(()),
            false => fail(format!("JSON {at} is {}{}", describe(actual, scrubber), test.expectation(scrubber))),
        },
    }
}

impl JsonTest {
    fn holds(&self, actual: &Value) -> bool {
        match self {
            JsonTest::Exists(should) => *should,
            JsonTest::Equals(expected) => same(actual, expected),
            JsonTest::OneOf(allowed) => allowed.iter().any(|a| alike(actual, a)),
            JsonTest::NotIn(forbidden) => !forbidden.iter().any(|f| alike(actual, f)),
            JsonTest::NonEmpty => match actual {
                Value::String(s) => !s.is_empty(),
                Value::Array(items) => !items.is_empty(),
                Value::Object(fields) => !fields.is_empty(),
                Value::Null => false,
                Value::Bool(_) | Value::Number(_) => true,
            },
            JsonTest::MinItems(min) => matches!(actual, Value::Array(items) if items.len() >= *min),
            JsonTest::Compare(comparison, bound) => {
                number_of(actual).and_then(|n| order(&n, bound)).is_some_and(|o| comparison.holds(o))
            }
            JsonTest::Matches(pattern) => match actual {
                Value::String(text) => pattern.is_match(text),
                Value::Number(_) | Value::Bool(_) => pattern.is_match(&actual.to_string()),
                _ => false,
            },
            JsonTest::NotEquals(expected) => !same(actual, expected),
            JsonTest::Contains(expected) => match (actual, expected) {
                (Value::Array(items), expected) => items.iter().any(|item| same(item, expected)),
                (Value::String(text), Value::String(needle)) => text.contains(needle.as_str()),
                (Value::String(text), Value::Number(_) | Value::Bool(_)) => text.contains(&expected.to_string()),
                _ => false,
            },
            JsonTest::Length { min, max } => {
                let length = match actual {
                    Value::String(text) => text.chars().count(),
                    Value::Array(items) => items.len(),
                    Value::Object(fields) => fields.len(),
                    _ => return false,
                };
                min.is_none_or(|min| length >= min) && max.is_none_or(|max| length <= max)
            }
            JsonTest::Schema(schema) => schema.is_valid(actual),
        }
    }

    /// The end of a failure message: what was expected.
    fn expectation(&self, scrubber: &Scrubber) -> String {
        let list = |values: &[Value]| values.iter().map(|v| short(v, scrubber)).collect::<Vec<_>>().join(", ");
        match self {
            JsonTest::Exists(true) => String::new(),
            JsonTest::Exists(false) => ", expected it to be absent".into(),
            JsonTest::Equals(expected) => format!(", expected {}", short(expected, scrubber)),
            JsonTest::OneOf(allowed) => format!(", expected one of {}", list(allowed)),
            JsonTest::NotIn(forbidden) => format!(", which is one of {}", list(forbidden)),
            JsonTest::NonEmpty => ", expected a non-empty value".into(),
            JsonTest::MinItems(min) => format!(", expected an array of at least {min} item(s)"),
            JsonTest::Compare(comparison, bound) => format!(", expected a number {} {bound}", comparison.words()),
            JsonTest::Matches(pattern) => format!(", expected text matching {:?}", pattern.as_str()),
            JsonTest::NotEquals(forbidden) => format!(", expected anything but {}", short(forbidden, scrubber)),
            JsonTest::Contains(needle) => format!(", expected it to contain {}", short(needle, scrubber)),
            JsonTest::Length { min, max } => match (min, max) {
                (Some(min), Some(max)) if min == max => format!(", expected a length of {min}"),
                (Some(min), Some(max)) => format!(", expected a length of {min} to {max}"),
                (Some(min), None) => format!(", expected a length of at least {min}"),
                (None, Some(max)) => format!(", expected a length of at most {max}"),
                (None, None) => String::new(),
            },
            JsonTest::Schema(schema) => format!(", expected a value valid against schema {}", schema.file()),
        }
    }
}

/// The most schema errors a message lists; the rest are counted.
const SCHEMA_ERRORS_SHOWN: usize = 10;

/// Every way `value` fails `schema`, for a message: each where it is and what is wrong, scrubbed
/// then cut (a schema message may quote the value); `None` when it passes.
fn schema_failure(schema: &Schema, value: &Value, scrubber: &Scrubber) -> Option<String> {
    let errors = schema.errors(value);
    if errors.is_empty() {
        return None;
    }
    let mut shown: Vec<String> = errors
        .iter()
        .take(SCHEMA_ERRORS_SHOWN)
        .map(|e| {
            let at = if e.at.is_empty() { "(root)" } else { e.at.as_str() };
            format!("at {}: {}", scrubber.cut(at, 60), scrubber.cut(&e.message, 120))
        })
        .collect();
    if errors.len() > SCHEMA_ERRORS_SHOWN {
        shown.push(format!("and {} more", errors.len() - SCHEMA_ERRORS_SHOWN));
    }
    Some(format!(" ({} error(s)): {}", errors.len(), shown.join(" | ")))
}

/// A number, or a string holding one (`"12.50"`, as many APIs send amounts).
fn number_of(value: &Value) -> Option<serde_json::Number> {
    match value {
        Value::Number(n) => Some(n.clone()),
        Value::String(text) => text.trim().parse::<serde_json::Number>().ok(),
        _ => None,
    }
}

/// Whole numbers in order exactly (beyond f64's 2^53 too), the rest as f64.
fn order(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (whole(a), whole(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality as the journey means it: numbers by value (`100` is `100.0`), at any depth.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => same_number(a, e),
        (Value::Number(a), Value::String(text)) => {
            text.as_str() == a.to_string() || text.parse::<serde_json::Number>().is_ok_and(|e| same_number(a, &e))
        }
        (Value::Bool(_), Value::String(text)) => text.as_str() == actual.to_string().as_str(),
        (Value::Array(a), Value::Array(e)) => a.len() == e.len() && a.iter().zip(e).all(|(a, e)| same(a, e)),
        (Value::Object(a), Value::Object(e)) => {
            a.len() == e.len() && a.iter().all(|(key, a)| e.get(key).is_some_and(|e| same(a, e)))
        }
        _ => actual == expected,
    }
}

/// Whole numbers compare exactly (beyond f64's 2^53 too), the rest as f64.
fn same_number(a: &serde_json::Number, e: &serde_json::Number) -> bool {
    match (whole(a), whole(e)) {
        (Some(a), Some(e)) => a == e,
        _ => a.as_f64() == e.as_f64(),
    }
}

fn whole(n: &serde_json::Number) -> Option<i128> {
    let float = || n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e38).map(|f| f as i128);
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).or_else(float)
}

fn alike(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::String(e)) => a.eq_ignore_ascii_case(e),
        _ => same(actual, expected),
    }
}

/// The actual value for a message: compact JSON, scrubbed then cut; an array also by its
/// length, which the cut may hide.
fn describe(value: &Value, scrubber: &Scrubber) -> String {
    match value {
        Value::Array(items) => format!("an array of {} item(s) {}", items.len(), short(value, scrubber)),
        other => short(other, scrubber),
    }
}

fn shown(pointer: &str) -> &str {
    if pointer.is_empty() { "\"\" (the whole body)" } else { pointer }
}

/// A value for an error message: scrubbed, one line, bounded.
fn short(value: &Value, scrubber: &Scrubber) -> String {
    scrubber.cut(&value.to_string(), 60)
}

/// A login's `rejected_when`, rendered: when every assertion holds, the account was rejected.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedWhen {
    pub assertions: Vec<Assertion>,
    /// As the file has it, to name the cause.
    pub written: String,
}

pub(super) struct Verdict {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub error: Option<CheckError>,
    pub response: Option<HttpResponse>,
}

pub(super) fn judge(
    spec: &StepSpec,
    sent: Result<HttpResponse, CheckError>,
    elapsed: Duration,
    timeout: Duration,
    scrubber: &Scrubber,
    cookies: &CookieJar,
) -> Verdict {
    let verdict = match sent {
        Err(error) => Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None },
        Ok(response) => {
            let status = Some(response.status);
            let error = content_error(spec, &response, scrubber, cookies).or_else(|| latency_error(timeout, elapsed));
            let outcome = match (&error, elapsed > spec.budget.degraded_after) {
                (Some(_), _) => Outcome::Failed,
                (None, true) => Outcome::Degraded,
                (None, false) => Outcome::Passed,
            };
            let error = error.or_else(|| {
                (outcome == Outcome::Degraded)
                    .then_some(CheckError::Timeout { budget_ms: spec.budget.degraded_after.as_millis() as u64 })
            });
            Verdict { outcome, status, error, response: Some(response) }
        }
    };
    with_role(spec, verdict)
}

/// Any failure of a cleanup step is `cleanup_failed`: a sandbox write may be left live.
pub(super) fn with_role(spec: &StepSpec, verdict: Verdict) -> Verdict {
    match verdict.error {
        Some(error) if spec.role == StepRole::Cleanup && verdict.outcome == Outcome::Failed => {
            Verdict { error: Some(CheckError::CleanupFailed(error.to_string())), ..verdict }
        }
        error => Verdict { error, ..verdict },
    }
}

fn content_error(
    spec: &StepSpec,
    response: &HttpResponse,
    scrubber: &Scrubber,
    cookies: &CookieJar,
) -> Option<CheckError> {
    if let Some(when) = &spec.rejected_when
        && when.assertions.iter().all(|a| a.check(response, scrubber).is_ok())
    {
        return Some(CheckError::CredentialsRejectedWhen { status: response.status, written: when.written.clone() });
    }
    if spec.rejected_status.as_ref().is_some_and(|rejected| rejected.matches(response.status)) {
        return Some(CheckError::CredentialsRejected { status: response.status });
    }
    if !spec.expect_status.matches(response.status) {
        return Some(CheckError::HttpStatus {
            status: response.status,
            expected: spec.expect_status.to_string(),
            excerpt: excerpt(&response.body, scrubber),
        });
    }
    // Every failure is listed, so one run says all that is wrong; a body that cannot be read
    // (not JSON) is the one cause when it comes first.
    let failures: Vec<CheckError> = spec
        .assertions
        .iter()
        .filter_map(|a| a.check(response, scrubber).err())
        .chain(spec.captures.iter().filter_map(|c| c.extract(response, cookies).err()))
        .collect();
    match failures.first() {
        None => None,
        Some(CheckError::Assertion(_)) if failures.len() > 1 => {
            Some(CheckError::Assertion(failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")))
        }
        Some(_) => failures.into_iter().next(),
    }
}

fn latency_error(timeout: Duration, elapsed: Duration) -> Option<CheckError> {
    (elapsed > timeout).then_some(CheckError::Timeout { budget_ms: timeout.as_millis() as u64 })
}

/// The start of a body for an error message: secrets cut out of the whole body first (a window
/// cut before scrubbing could end inside a secret, and collapsing whitespace could bring that
/// head to the front), then one line of at most 160 chars.
fn excerpt(body: &[u8], scrubber: &Scrubber) -> String {
    match scrubber.cut(&String::from_utf8_lossy(body), 160) {
        line if line.is_empty() => line,
        line => format!(": {line}"),
    }
}

impl Capture {
    /// The value as text: a JSON string as is, a number or boolean as it prints, an object or
    /// an array as compact JSON (a JSON body sends it as itself: see `runner`).
    pub fn extract(&self, response: &HttpResponse, cookies: &CookieJar) -> Result<String, CheckError> {
        let missing = |what: String| CheckError::Assertion(format!("capture {}: {what}", self.name));
        let scalar = |found: Option<&serde_json::Value>, at: &str| match found {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            Some(
                value @ (serde_json::Value::Number(_)
                | serde_json::Value::Bool(_)
                | serde_json::Value::Object(_)
                | serde_json::Value::Array(_)),
            ) => Ok(value.to_string()),
            Some(other) => Err(missing(format!("JSON {at} is {}, not a value to capture", kind(other)))),
            None => Err(missing(format!("JSON {at} is missing"))),
        };
        match &self.source {
            CaptureSource::Header(name) => {
                response.header(name).map(str::to_string).ok_or_else(|| missing(format!("header {name} is missing")))
            }
            CaptureSource::Json(pointer) => scalar(json_at(response.json()?, pointer), pointer),
            CaptureSource::JsonPath(path) => scalar(path.first(response.json()?), path.as_str()),
            CaptureSource::Cookie(name) => {
                cookies.value(name).map(str::to_string).ok_or_else(|| missing(format!("no cookie {name} was set")))
            }
            CaptureSource::Regex { pattern, header: Some(name) } => {
                let value = response.header(name).ok_or_else(|| missing(format!("header {name} is missing")))?;
                pattern
                    .first_group(value)
                    .map(str::to_string)
                    .ok_or_else(|| missing(format!("regex {:?} does not match header {name}", pattern.as_str())))
            }
            CaptureSource::Regex { pattern, header: None } => pattern
                .first_group(&String::from_utf8_lossy(&response.body))
                .map(str::to_string)
                .ok_or_else(|| missing(format!("regex {:?} does not match the body", pattern.as_str()))),
        }
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Cause;
    use serde_json::json;

    fn response(content_type: &str, body: &str) -> HttpResponse {
        HttpResponse::new(200, vec![("content-type".into(), content_type.into())], body.as_bytes().to_vec())
    }

    fn json_at(pointer: &str, test: JsonTest) -> Assertion {
        Assertion::Json { pointer: pointer.into(), optional: false, test }
    }

    fn cause(assertion: Assertion, body: &str) -> Option<Cause> {
        assertion.check(&response("application/json", body), &Scrubber::default()).err().map(|e| e.cause())
    }

    #[test]
    fn json_tests() {
        let body = r#"{"data":[1,2],"token":"t","empty":"","status":"ok","n":3,"id":42}"#;
        assert_eq!(cause(json_at("/data", JsonTest::Exists(true)), body), None);
        assert_eq!(cause(json_at("/nope", JsonTest::Exists(true)), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/nope", JsonTest::Exists(false)), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!(3))), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!(4))), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/id", JsonTest::Equals(json!("42"))), body), None, "a captured id is text");
        assert_eq!(cause(json_at("/token", JsonTest::NonEmpty), body), None);
        assert_eq!(cause(json_at("/empty", JsonTest::NonEmpty), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/data", JsonTest::MinItems(2)), body), None);
        assert_eq!(cause(json_at("/data", JsonTest::MinItems(3)), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/token", JsonTest::MinItems(1)), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/status", JsonTest::OneOf(vec![json!("OK")])), body), None);
        let failed = JsonTest::NotIn(vec![json!("failed"), json!("declined")]);
        assert_eq!(cause(json_at("/status", failed.clone()), body), None);
        assert_eq!(cause(json_at("/status", failed), r#"{"status":"FAILED"}"#), Some(Cause::Assertion));
    }

    #[test]
    fn numbers_compare_by_value_not_by_how_they_are_written() {
        let body = r#"{"n":100.0,"big":9007199254740993,"list":[1.0,{"x":2.50}],"s":"100"}"#;
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!(100))), body), None, "100 = 100.0");
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!(1e2))), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!("100"))), body), None, "a captured id as text");
        assert_eq!(cause(json_at("/n", JsonTest::OneOf(vec![json!(7), json!(100)])), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::NotIn(vec![json!(100)])), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/list", JsonTest::Equals(json!([1, {"x": 2.5}]))), body), None, "nested too");
        assert_eq!(
            cause(json_at("/s", JsonTest::Equals(json!(100.0))), body),
            Some(Cause::Assertion),
            "text is not a number"
        );
        // Integers beyond f64's precision still compare exactly.
        assert_eq!(cause(json_at("/big", JsonTest::Equals(json!(9007199254740993u64))), body), None);
        assert_eq!(cause(json_at("/big", JsonTest::Equals(json!(9007199254740992u64))), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/n", JsonTest::Equals(json!(100.5))), body), Some(Cause::Assertion));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Against the reference model of numbers as values: a whole number written as an integer
        /// or as a float is the same number, two numbers are the same exactly when their values
        /// are, in a string, an array or an object alike.
        #[test]
        fn numbers_are_the_same_exactly_when_their_values_are(
            a in -(1i64 << 53)..(1i64 << 53),
            b in -(1i64 << 53)..(1i64 << 53),
            x in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ) {
            proptest::prop_assert!(same(&json!(a), &json!(a as f64)));
            proptest::prop_assert!(same(&json!(a as f64), &json!(a)));
            proptest::prop_assert!(same(&json!(a as f64), &json!(a.to_string())), "a captured id as text");
            proptest::prop_assert_eq!(same(&json!(a), &json!(b)), a == b);
            proptest::prop_assert_eq!(same(&json!([a, {"n": a}]), &json!([b as f64, {"n": b as f64}])), a == b);
            proptest::prop_assert_eq!(same(&json!(x), &json!(a)), x == a as f64);
            proptest::prop_assert!(same(&json!(x), &json!(x)));
        }
    }

    #[test]
    fn the_empty_pointer_is_the_whole_body() {
        let listing = json_at("", JsonTest::MinItems(1));
        assert_eq!(cause(listing.clone(), r#"[{"id":1}]"#), None);
        let error = listing.check(&response("application/json", "[]"), &Scrubber::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"JSON "" (the whole body) is an array of 0 item(s) [], expected an array of at least 1 item(s)"#
        );
    }

    #[test]
    fn non_json_and_invalid_utf8_are_invalid_responses() {
        let ptr = json_at("/data", JsonTest::Exists(true));
        assert_eq!(cause(ptr.clone(), "<html>oops</html>"), Some(Cause::InvalidResponse));
        let bytes = HttpResponse::new(200, vec![], vec![0xff, 0xfe, b'{']);
        assert_eq!(ptr.check(&bytes, &Scrubber::default()).unwrap_err().cause(), Cause::InvalidResponse);
    }

    #[test]
    fn optional_fields_are_only_judged_when_present() {
        let status = Assertion::Json {
            pointer: "/status".into(),
            optional: true,
            test: JsonTest::OneOf(vec![json!("ok"), json!("healthy")]),
        };
        let judge = |content_type: &str, body: &str| {
            status.check(&response(content_type, body), &Scrubber::default()).err().map(|e| e.cause())
        };
        assert_eq!(judge("text/plain", "OK"), None, "plain-text health bodies pass");
        assert_eq!(judge("application/json", r#"{"uptime":5}"#), None);
        assert_eq!(judge("application/json", r#"{"status":"Healthy"}"#), None);
        assert_eq!(judge("application/json", r#"{"status":"degraded"}"#), Some(Cause::Assertion));
        assert_eq!(
            judge("application/json", "OK"),
            Some(Cause::InvalidResponse),
            "a body that claims JSON must be JSON"
        );
        assert_eq!(judge("application/problem+json; charset=utf-8", "{"), Some(Cause::InvalidResponse));
    }

    #[test]
    fn header_and_body_assertions() {
        let r = response("application/json", "hello world");
        let header = |test| Assertion::Header { name: "Content-Type".into(), test };
        assert!(header(HeaderTest::Equals("application/json".into())).check(&r, &Scrubber::default()).is_ok());
        assert!(header(HeaderTest::Contains("json".into())).check(&r, &Scrubber::default()).is_ok());
        assert!(header(HeaderTest::Equals("text/html".into())).check(&r, &Scrubber::default()).is_err());
        let missing = Assertion::Header { name: "x-request-id".into(), test: HeaderTest::Contains("a".into()) };
        assert_eq!(missing.check(&r, &Scrubber::default()).unwrap_err().to_string(), "header x-request-id is missing");
        assert!(Assertion::BodyContains("world".into()).check(&r, &Scrubber::default()).is_ok());
        assert_eq!(
            Assertion::BodyContains("mars".into()).check(&r, &Scrubber::default()).unwrap_err().cause(),
            Cause::Assertion
        );
    }

    #[test]
    fn failures_say_what_was_expected_and_what_was_seen() {
        let error = json_at("/data", JsonTest::MinItems(1))
            .check(&response("application/json", r#"{"data":[]}"#), &Scrubber::default());
        assert_eq!(
            error.unwrap_err().to_string(),
            "JSON /data is an array of 0 item(s) [], expected an array of at least 1 item(s)"
        );
        let error = json_at("/status", JsonTest::NotIn(vec![json!("declined")]))
            .check(&response("application/json", r#"{"status":"declined"}"#), &Scrubber::default());
        assert_eq!(error.unwrap_err().to_string(), r#"JSON /status is "declined", which is one of "declined""#);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = format!(r#"{{"status":"{}"}}"#, "x".repeat(500));
        let err = json_at("/status", JsonTest::NotIn(vec![json!("x".repeat(500))]))
            .check(&response("application/json", &long), &Scrubber::default())
            .unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    fn regex(text: &str) -> Pattern {
        Pattern::any(text).unwrap()
    }

    fn number(n: serde_json::Value) -> serde_json::Number {
        serde_json::from_value(n).unwrap()
    }

    #[test]
    fn numeric_comparisons_take_numbers_and_numeric_strings() {
        let body = r#"{"n":100.0,"s":"12.50","big":9007199254740993,"t":"abc","b":true}"#;
        let compare = |at: &str, c: Comparison, bound: serde_json::Value| {
            cause(json_at(at, JsonTest::Compare(c, number(bound))), body)
        };
        assert_eq!(compare("/n", Comparison::AtLeast, json!(100)), None, "100.0 is at least 100");
        assert_eq!(compare("/n", Comparison::GreaterThan, json!(100)), Some(Cause::Assertion));
        assert_eq!(compare("/n", Comparison::AtMost, json!(100)), None);
        assert_eq!(compare("/n", Comparison::LessThan, json!(100.5)), None);
        assert_eq!(compare("/s", Comparison::GreaterThan, json!(12)), None, "a numeric string compares as its number");
        assert_eq!(compare("/s", Comparison::LessThan, json!(12.5)), Some(Cause::Assertion));
        assert_eq!(compare("/big", Comparison::GreaterThan, json!(9007199254740992u64)), None, "exact beyond 2^53");
        assert_eq!(compare("/t", Comparison::AtLeast, json!(0)), Some(Cause::Assertion), "text is not a number");
        assert_eq!(compare("/b", Comparison::AtLeast, json!(0)), Some(Cause::Assertion));
        let error = json_at("/s", JsonTest::Compare(Comparison::GreaterThan, number(json!(20))))
            .check(&response("application/json", body), &Scrubber::default())
            .unwrap_err();
        assert_eq!(error.to_string(), r#"JSON /s is "12.50", expected a number greater than 20"#);
    }

    #[test]
    fn matches_not_equals_contains_and_length() {
        let body = r#"{"id":"ord_123","n":42,"tags":["a",{"k":1},3],"name":"Kettle","obj":{"a":1,"b":2},"e":""}"#;
        assert_eq!(cause(json_at("/id", JsonTest::Matches(regex("^ord_\\d+$"))), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::Matches(regex("^4"))), body), None, "a number by its text");
        assert_eq!(cause(json_at("/obj", JsonTest::Matches(regex("a"))), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/id", JsonTest::NotEquals(json!("ord_124"))), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::NotEquals(json!(42.0))), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/tags", JsonTest::Contains(json!({"k": 1.0}))), body), None, "an array holds it");
        assert_eq!(cause(json_at("/tags", JsonTest::Contains(json!(3))), body), None);
        assert_eq!(cause(json_at("/tags", JsonTest::Contains(json!("b"))), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/name", JsonTest::Contains(json!("ettl"))), body), None, "a string holds it");
        assert_eq!(cause(json_at("/id", JsonTest::Contains(json!(123))), body), None);
        assert_eq!(cause(json_at("/n", JsonTest::Contains(json!(4))), body), Some(Cause::Assertion));
        let length = |min, max| JsonTest::Length { min, max };
        assert_eq!(cause(json_at("/tags", length(Some(3), Some(3))), body), None);
        assert_eq!(cause(json_at("/tags", length(Some(4), None)), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/name", length(None, Some(6))), body), None, "characters");
        assert_eq!(cause(json_at("/obj", length(Some(1), Some(2))), body), None, "an object's fields");
        assert_eq!(cause(json_at("/e", length(Some(1), None)), body), Some(Cause::Assertion));
        assert_eq!(cause(json_at("/n", length(Some(0), None)), body), Some(Cause::Assertion), "a number has none");
    }

    #[test]
    fn a_jsonpath_judges_the_first_node_it_selects() {
        let body = r#"{"items":[{"name":"Mug","price":3},{"name":"Kettle","price":"25.00"}]}"#;
        let path =
            |p: &str, optional: bool, test| Assertion::JsonPath { path: Path::parse(p).unwrap(), optional, test };
        let kettle = "$.items[?@.name == 'Kettle'].price";
        let check = |a: Assertion| a.check(&response("application/json", body), &Scrubber::default());
        assert!(check(path(kettle, false, JsonTest::Compare(Comparison::AtLeast, number(json!(20))))).is_ok());
        let missing = check(path("$.items[?@.name == 'Toaster'].price", false, JsonTest::Exists(true))).unwrap_err();
        assert_eq!(missing.to_string(), "JSON $.items[?@.name == 'Toaster'].price is missing");
        assert!(check(path("$.items[?@.name == 'Toaster']", false, JsonTest::Exists(false))).is_ok());
        assert!(check(path("$.items[?@.name == 'Toaster']", true, JsonTest::NonEmpty)).is_ok());
    }

    #[test]
    fn header_exists_matches_not_contains_and_body_matches_not_contains() {
        let r = HttpResponse::new(
            200,
            vec![("content-type".into(), "application/json".into()), ("cache-control".into(), "no-store".into())],
            b"{\"status\":\"ok\"} trace-id=abc".to_vec(),
        );
        let ok = |a: Assertion| a.check(&r, &Scrubber::default()).map_err(|e| e.to_string());
        let header = |name: &str, test| Assertion::Header { name: name.into(), test };
        assert_eq!(ok(header("Cache-Control", HeaderTest::Exists(true))), Ok(()));
        assert_eq!(ok(header("X-Debug", HeaderTest::Exists(false))), Ok(()));
        assert_eq!(ok(header("X-Debug", HeaderTest::Exists(true))), Err("header X-Debug is missing".into()));
        assert_eq!(
            ok(header("cache-control", HeaderTest::Exists(false))),
            Err(r#"header cache-control is "no-store", expected it to be absent"#.into())
        );
        assert_eq!(ok(header("cache-control", HeaderTest::Matches(regex("^no-(store|cache)$")))), Ok(()));
        assert_eq!(
            ok(header("cache-control", HeaderTest::Matches(regex("max-age=\\d+")))),
            Err(r#"header cache-control is "no-store", expected it to match "max-age=\\d+""#.into())
        );
        assert_eq!(ok(header("cache-control", HeaderTest::NotContains("public".into()))), Ok(()));
        assert_eq!(ok(header("x-absent", HeaderTest::NotContains("public".into()))), Ok(()), "absent holds nothing");
        assert!(ok(header("cache-control", HeaderTest::NotContains("store".into()))).is_err());
        assert_eq!(ok(Assertion::BodyMatches(regex("trace-id=[a-z]+"))), Ok(()));
        assert!(
            ok(Assertion::BodyMatches(regex("^<html"))).unwrap_err().starts_with(r#"body does not match "^<html": "#)
        );
        assert_eq!(ok(Assertion::BodyNotContains("error".into())), Ok(()));
        assert_eq!(
            ok(Assertion::BodyNotContains("trace".into())),
            Err(r#"body contains "trace", expected it not to"#.into())
        );
    }

    fn spec_with(assertions: Vec<Assertion>) -> StepSpec {
        let budget =
            crate::journey::Budget { degraded_after: Duration::from_secs(1), fail_after: Duration::from_secs(2) };
        let expected = crate::journey::ExpectedStatus::Range(200, 299);
        let mut spec = StepSpec::new("s", crate::http::Method::Get, "/", expected, budget);
        spec.assertions = assertions;
        spec
    }

    #[test]
    fn a_step_lists_every_failed_assertion_with_the_value_it_saw_as_compact_json() {
        let body = r#"{"status":"pending","items":[{"id":1}],"order":{"total":5,"currency":"EUR"}}"#;
        let spec = spec_with(vec![
            json_at("/status", JsonTest::OneOf(vec![json!("succeeded")])),
            json_at("/items", JsonTest::MinItems(2)),
            json_at("/order", JsonTest::Equals(json!({"total": 5, "currency": "USD"}))),
            Assertion::BodyContains("pending".into()),
        ]);
        let verdict = judge(
            &spec,
            Ok(response("application/json", body)),
            Duration::ZERO,
            Duration::from_secs(1),
            &Scrubber::default(),
            &CookieJar::default(),
        );
        assert_eq!(
            verdict.error.unwrap().to_string(),
            r#"JSON /status is "pending", expected one of "succeeded"; JSON /items is an array of 1 item(s) [{"id":1}], expected an array of at least 2 item(s); JSON /order is {"currency":"EUR","total":5}, expected {"currency":"USD","total":5}"#
        );
        // A body that cannot be read is the one cause, not one failure among others.
        let verdict = judge(
            &spec,
            Ok(response("application/json", "<html>")),
            Duration::ZERO,
            Duration::from_secs(1),
            &Scrubber::default(),
            &CookieJar::default(),
        );
        assert_eq!(verdict.error.unwrap().cause(), Cause::InvalidResponse);
    }

    #[test]
    fn a_secret_inside_a_value_seen_is_scrubbed_before_the_value_is_cut() {
        let mut scrubber = Scrubber::default();
        scrubber.add(&crate::secret::Secret::new("tok-0123456789abcdef".to_string()));
        let body = format!(r#"{{"session":{{"pad":"{}","token":"tok-0123456789abcdef"}}}}"#, "x".repeat(30));
        let error = json_at("/session", JsonTest::Length { min: Some(5), max: None })
            .check(&response("application/json", &body), &scrubber)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("tok-0123") && error.contains("\"pad\""), "{error}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Against the reference model of numbers as values: each comparison holds exactly when
        /// it holds of the values, whether the actual number is written as an integer, a float or
        /// a numeric string, and the bound as an integer or a float.
        #[test]
        fn comparisons_hold_exactly_when_they_hold_of_the_values(
            a in -(1i64 << 50)..(1i64 << 50),
            b in -(1i64 << 50)..(1i64 << 50),
            frac in proptest::sample::select(vec![0.0f64, 0.25, 0.5]),
            written in 0usize..3,
        ) {
            let actual_value = a as f64 + frac;
            let actual = match (written, frac == 0.0) {
                (0, true) => json!(a),
                (1, _) => json!(actual_value.to_string()),
                _ => json!(actual_value),
            };
            for (comparison, model) in [
                (Comparison::GreaterThan, actual_value > b as f64),
                (Comparison::AtLeast, actual_value >= b as f64),
                (Comparison::LessThan, actual_value < b as f64),
                (Comparison::AtMost, actual_value <= b as f64),
            ] {
                for bound in [json!(b), json!(b as f64)] {
                    let holds = JsonTest::Compare(comparison, number(bound.clone())).holds(&actual);
                    proptest::prop_assert_eq!(holds, model, "{} {:?} {}", actual, comparison, bound);
                }
            }
        }
    }

    #[test]
    fn a_schema_failure_lists_every_error_scrubbed_then_cut() {
        let schema = Schema::compile(
            "schemas/order.json",
            r#"{"type":"object","required":["id","total"],"properties":{"id":{"type":"integer"},"note":{"maxLength":3},
                "items":{"type":"array","items":{"type":"object","required":["sku"]}}}}"#,
        )
        .unwrap();
        let mut scrubber = Scrubber::default();
        scrubber.add(&crate::secret::Secret::new("tok-0123456789abcdef".to_string()));
        let body = format!(r#"{{"id":"7","note":"tok-0123456789abcdef {}","items":[{{}},{{}}]}}"#, "x".repeat(300));
        let schema_at = |pointer: &str| json_at(pointer, JsonTest::Schema(schema.clone()));
        let error = schema_at("").check(&response("application/json", &body), &scrubber).unwrap_err();
        assert_eq!(error.cause(), Cause::Assertion);
        let text = error.to_string();
        assert!(
            text.starts_with(r#"JSON "" (the whole body) does not match schema schemas/order.json (5 error(s)): "#),
            "{text}"
        );
        for expected in [
            "at (root): \"total\" is a required property",
            "at /id: \"7\" is not of type \"integer\"",
            "at /note: ",
            "at /items/0: \"sku\" is a required property",
            "at /items/1: ",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
        assert!(!text.contains("tok-0123") && text.contains(REDACTED_MARK), "scrubbed before it was cut: {text}");
        assert!(text.chars().count() < 800, "every error cut: {}", text.chars().count());
        assert!(schema_at("").check(&response("application/json", r#"{"id":1,"total":2}"#), &scrubber).is_ok());
        // Many errors: the first ten, and how many more.
        let many = Schema::compile("m.json", r#"{"type":"array","items":{"type":"string"}}"#).unwrap();
        let error = json_at("", JsonTest::Schema(many))
            .check(
                &response("application/json", &serde_json::to_string(&(0..25).collect::<Vec<_>>()).unwrap()),
                &scrubber,
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("(25 error(s))") && error.ends_with("| and 15 more"), "{error}");
    }

    const REDACTED_MARK: &str = crate::secret::REDACTED;

    /// Small JSON values of every kind, nested a little.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..200).prop_map(Value::from),
            (-5.0f64..200.0).prop_map(Value::from),
            "[a-z_]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("id".to_string()),
                        Just("sku".to_string()),
                        Just("qty".to_string()),
                        "[a-z]{1,3}".prop_map(|s| s)
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const ORDER_SCHEMA: &str = r#"{"type":"object","required":["id"],"properties":{"id":{"type":"integer","minimum":0},
        "sku":{"type":"string","pattern":"^[a-z]+$"},"qty":{"type":"integer","maximum":99},
        "items":{"type":"array","items":{"type":"object","required":["sku"]}}},"additionalProperties":{"type":["string","number"]}}"#;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Against the reference (jsonschema's own `is_valid` and error list on the same schema
        /// and value): a schema assertion passes exactly when the value is valid, and a failure
        /// counts every error the reference finds.
        #[test]
        fn a_schema_assertion_passes_exactly_when_the_value_is_valid(value in any_json()) {
            let document: Value = serde_json::from_str(ORDER_SCHEMA).unwrap();
            let schema = Schema::compile("order.json", ORDER_SCHEMA).unwrap();
            let body = json!({ "order": value });
            let judged = json_at("/order", JsonTest::Schema(schema)).check(&response("application/json", &body.to_string()), &Scrubber::default());
            let reference = jsonschema::validator_for(&document).unwrap();
            proptest::prop_assert_eq!(judged.is_ok(), jsonschema::is_valid(&document, &value));
            if let Err(error) = judged {
                let count = reference.iter_errors(&value).count();
                let text = error.to_string();
                let counted = format!("({count} error(s))");
                proptest::prop_assert!(text.contains(&counted), "{} in {}", counted, text);
            }
        }
    }
}

//! Assertions on a response: status, JSON pointers, headers, body text.
//!
//! A status mismatch is an `http_status` failure, a body that cannot be parsed is
//! `invalid_response`, and a well-formed answer with the wrong content is `assertion`.

use super::exchange::StepSpec;
use super::file::{Capture, CaptureSource, StepRole};
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
}

#[derive(Clone, Debug, PartialEq)]
pub enum HeaderTest {
    Equals(String),
    Contains(String),
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
    Header {
        name: String,
        test: HeaderTest,
    },
    BodyContains(String),
}

impl Assertion {
    /// Judges `response`. A failure quotes what it saw, scrubbed by `scrubber` before it is cut,
    /// so a cut never leaves the head of a secret behind.
    pub fn check(&self, response: &HttpResponse, scrubber: &Scrubber) -> Result<(), CheckError> {
        let fail = |message: String| Err(CheckError::Assertion(message));
        match self {
            Assertion::Json { pointer, optional, test } => {
                let json = match response.json() {
                    Ok(json) => json,
                    Err(_) if *optional && !response.claims_json() => return Ok(()),
                    Err(error) => return Err(error),
                };
                match (json_at(json, pointer), test) {
                    (None, JsonTest::Exists(false)) => Ok(()),
                    (None, _) if *optional => Ok(()),
                    (None, _) => fail(format!("JSON {} is missing{}", shown(pointer), test.expectation(scrubber))),
                    (Some(actual), test) => match test.holds(actual) {
                        true => Ok(()),
                        false => fail(format!(
                            "JSON {} is {}{}",
                            shown(pointer),
                            describe(actual, scrubber),
                            test.expectation(scrubber)
                        )),
                    },
                }
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
                (None, _) => fail(format!("header {name} is missing")),
            },
            Assertion::BodyContains(needle) => {
                if String::from_utf8_lossy(&response.body).contains(needle.as_str()) {
                    Ok(())
                } else {
                    fail(format!("body does not contain {:?}", scrubber.scrub(needle)))
                }
            }
        }
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
        }
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

/// The actual value for a message: arrays by their length, the rest as short JSON.
fn describe(value: &Value, scrubber: &Scrubber) -> String {
    match value {
        Value::Array(items) => format!("an array of {} item(s)", items.len()),
        Value::Object(_) => "an object".into(),
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
) -> Verdict {
    let verdict = match sent {
        Err(error) => Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None },
        Ok(response) => {
            let status = Some(response.status);
            let error = content_error(spec, &response, scrubber).or_else(|| latency_error(timeout, elapsed));
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

fn content_error(spec: &StepSpec, response: &HttpResponse, scrubber: &Scrubber) -> Option<CheckError> {
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
    let assertion = spec.assertions.iter().find_map(|a| a.check(response, scrubber).err());
    assertion.or_else(|| spec.captures.iter().find_map(|c| c.extract(response).err()))
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
    pub fn extract(&self, response: &HttpResponse) -> Result<String, CheckError> {
        let missing = |what: String| CheckError::Assertion(format!("capture {}: {what}", self.name));
        match &self.source {
            CaptureSource::Header(name) => {
                response.header(name).map(str::to_string).ok_or_else(|| missing(format!("header {name} is missing")))
            }
            CaptureSource::Json(pointer) => {
                let json = response.json()?;
                match json_at(json, pointer) {
                    Some(serde_json::Value::String(text)) => Ok(text.clone()),
                    Some(
                        value @ (serde_json::Value::Number(_)
                        | serde_json::Value::Bool(_)
                        | serde_json::Value::Object(_)
                        | serde_json::Value::Array(_)),
                    ) => Ok(value.to_string()),
                    Some(other) => Err(missing(format!("JSON {pointer} is {}, not a value to capture", kind(other)))),
                    None => Err(missing(format!("JSON {pointer} is missing"))),
                }
            }
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
            r#"JSON "" (the whole body) is an array of 0 item(s), expected an array of at least 1 item(s)"#
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
            "JSON /data is an array of 0 item(s), expected an array of at least 1 item(s)"
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
}

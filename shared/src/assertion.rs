//! Assertions on a response: status, JSON pointers, headers, body text.
//!
//! A status mismatch is an `http_status` failure, a body that cannot be parsed is
//! `invalid_response`, and a well-formed answer with the wrong content is `assertion`.

use crate::error::CheckError;
use crate::http::HttpResponse;
use crate::text::truncate;
use serde_json::Value;
use std::fmt;

/// Which statuses count as success: a set (`200,201`) or a range (`200-299`, or `2xx`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedStatus {
    Set(Vec<u16>),
    Range(u16, u16),
}

impl ExpectedStatus {
    pub fn one(status: u16) -> Self {
        ExpectedStatus::Set(vec![status])
    }

    pub fn matches(&self, status: u16) -> bool {
        match self {
            ExpectedStatus::Set(set) => set.contains(&status),
            ExpectedStatus::Range(lo, hi) => (*lo..=*hi).contains(&status),
        }
    }

    /// Parses `200`, `200,201`, `200-299` or `2xx`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let status = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| format!("{s:?} is not an HTTP status (100-599)"))
        };
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            let digit = status(&format!("{class}00"))?;
            return Ok(ExpectedStatus::Range(digit, digit + 99));
        }
        if let Some((lo, hi)) = text.split_once('-') {
            let (lo, hi) = (status(lo)?, status(hi)?);
            if lo > hi {
                return Err(format!("range {text:?} is empty"));
            }
            return Ok(ExpectedStatus::Range(lo, hi));
        }
        let set = text.split(',').map(status).collect::<Result<Vec<_>, _>>()?;
        Ok(ExpectedStatus::Set(set))
    }
}

impl fmt::Display for ExpectedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedStatus::Set(set) => {
                let parts: Vec<String> = set.iter().map(u16::to_string).collect();
                f.write_str(&parts.join(" or "))
            }
            ExpectedStatus::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Assertion {
    JsonPointerExists(String),
    JsonPointerEquals(String, Value),
    /// A non-empty string.
    JsonPointerNonEmptyString(String),
    JsonPointerNonEmptyArray(String),
    JsonPointerMinLength(String, usize),
    /// The value, compared as a case-insensitive string, is not one of these (e.g. a payment that
    /// must not be `failed`). A missing value passes: pair with `JsonPointerExists` if required.
    JsonPointerNotIn(String, Vec<String>),
    /// Only when the body is JSON and has this pointer, it must be one of these values
    /// (case-insensitive). Health endpoints answer plain `OK` just as often as JSON.
    JsonPointerOneOfIfPresent(String, Vec<String>),
    HeaderPresent(String),
    HeaderEquals(String, String),
    BodyContains(String),
}

impl Assertion {
    pub fn check(&self, response: &HttpResponse) -> Result<(), CheckError> {
        let fail = |message: String| Err(CheckError::Assertion(message));
        match self {
            Assertion::JsonPointerExists(ptr) => match response.json()?.pointer(ptr) {
                Some(_) => Ok(()),
                None => fail(format!("JSON {ptr} is missing")),
            },
            Assertion::JsonPointerEquals(ptr, expected) => match response.json()?.pointer(ptr) {
                Some(actual) if actual == expected => Ok(()),
                Some(actual) => fail(format!("JSON {ptr} is {}, expected {expected}", short(actual))),
                None => fail(format!("JSON {ptr} is missing, expected {expected}")),
            },
            Assertion::JsonPointerNonEmptyString(ptr) => match response.json()?.pointer(ptr) {
                Some(Value::String(s)) if !s.is_empty() => Ok(()),
                Some(Value::String(_)) => fail(format!("JSON {ptr} is an empty string")),
                Some(other) => fail(format!("JSON {ptr} is {}, expected a string", kind(other))),
                None => fail(format!("JSON {ptr} is missing")),
            },
            Assertion::JsonPointerNonEmptyArray(ptr) => Assertion::JsonPointerMinLength(ptr.clone(), 1).check(response),
            Assertion::JsonPointerMinLength(ptr, min) => match response.json()?.pointer(ptr) {
                Some(Value::Array(items)) if items.len() >= *min => Ok(()),
                Some(Value::Array(items)) => {
                    fail(format!("JSON {ptr} has {} item(s), expected at least {min}", items.len()))
                }
                Some(other) => fail(format!("JSON {ptr} is {}, expected an array", kind(other))),
                None => fail(format!("JSON {ptr} is missing, expected an array")),
            },
            Assertion::JsonPointerNotIn(ptr, forbidden) => match response.json()?.pointer(ptr) {
                Some(value) if forbidden.iter().any(|f| text_eq(value, f)) => {
                    fail(format!("JSON {ptr} is {}", short(value)))
                }
                _ => Ok(()),
            },
            Assertion::JsonPointerOneOfIfPresent(ptr, allowed) => {
                let Ok(json) = response.json() else {
                    return Ok(());
                };
                match json.pointer(ptr) {
                    Some(value) if !allowed.iter().any(|a| text_eq(value, a)) => {
                        fail(format!("JSON {ptr} is {}, expected one of {}", short(value), allowed.join(", ")))
                    }
                    _ => Ok(()),
                }
            }
            Assertion::HeaderPresent(name) => match response.header(name) {
                Some(_) => Ok(()),
                None => fail(format!("header {name} is missing")),
            },
            Assertion::HeaderEquals(name, expected) => match response.header(name) {
                Some(actual) if actual == expected => Ok(()),
                Some(actual) => fail(format!("header {name} is {actual:?}, expected {expected:?}")),
                None => fail(format!("header {name} is missing, expected {expected:?}")),
            },
            Assertion::BodyContains(needle) => {
                if String::from_utf8_lossy(&response.body).contains(needle.as_str()) {
                    Ok(())
                } else {
                    fail(format!("body does not contain {needle:?}"))
                }
            }
        }
    }
}

fn text_eq(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s.eq_ignore_ascii_case(expected),
        other => other.to_string().eq_ignore_ascii_case(expected),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message: one line, bounded.
fn short(value: &Value) -> String {
    truncate(&value.to_string(), 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Cause;
    use serde_json::json;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn cause(assertion: Assertion, body: &str) -> Option<Cause> {
        assertion.check(&response(200, body)).err().map(|e| e.cause())
    }

    #[test]
    fn expected_status_parses_sets_ranges_and_classes() {
        assert_eq!(ExpectedStatus::parse("200").unwrap(), ExpectedStatus::Set(vec![200]));
        assert_eq!(ExpectedStatus::parse("200, 201").unwrap(), ExpectedStatus::Set(vec![200, 201]));
        assert_eq!(ExpectedStatus::parse("200-299").unwrap(), ExpectedStatus::Range(200, 299));
        assert_eq!(ExpectedStatus::parse("2xx").unwrap(), ExpectedStatus::Range(200, 299));
        for bad in ["", "abc", "99", "600", "300-200", "9xx", "200,,201"] {
            assert!(ExpectedStatus::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ExpectedStatus::parse("2xx").unwrap().matches(204));
        assert!(!ExpectedStatus::parse("200,201").unwrap().matches(202));
        assert_eq!(ExpectedStatus::parse("200,201").unwrap().to_string(), "200 or 201");
    }

    #[test]
    fn json_pointer_assertions() {
        let body = r#"{"data":[1,2],"token":"t","empty":"","status":"ok","n":3}"#;
        assert_eq!(cause(Assertion::JsonPointerExists("/data".into()), body), None);
        assert_eq!(cause(Assertion::JsonPointerExists("/nope".into()), body), Some(Cause::Assertion));
        assert_eq!(cause(Assertion::JsonPointerEquals("/n".into(), json!(3)), body), None);
        assert_eq!(cause(Assertion::JsonPointerEquals("/n".into(), json!(4)), body), Some(Cause::Assertion));
        assert_eq!(cause(Assertion::JsonPointerNonEmptyString("/token".into()), body), None);
        assert_eq!(cause(Assertion::JsonPointerNonEmptyString("/empty".into()), body), Some(Cause::Assertion));
        assert_eq!(cause(Assertion::JsonPointerNonEmptyString("/n".into()), body), Some(Cause::Assertion));
        assert_eq!(cause(Assertion::JsonPointerNonEmptyArray("/data".into()), body), None);
        assert_eq!(cause(Assertion::JsonPointerMinLength("/data".into(), 3), body), Some(Cause::Assertion));
        assert_eq!(cause(Assertion::JsonPointerNonEmptyArray("/token".into()), body), Some(Cause::Assertion));
        let failed = vec!["failed".to_string(), "declined".to_string()];
        assert_eq!(cause(Assertion::JsonPointerNotIn("/status".into(), failed.clone()), body), None);
        assert_eq!(
            cause(Assertion::JsonPointerNotIn("/status".into(), failed), r#"{"status":"FAILED"}"#),
            Some(Cause::Assertion)
        );
    }

    #[test]
    fn empty_array_message_says_how_many() {
        let err =
            Assertion::JsonPointerNonEmptyArray("/data".into()).check(&response(200, r#"{"data":[]}"#)).unwrap_err();
        assert_eq!(err.to_string(), "JSON /data has 0 item(s), expected at least 1");
    }

    #[test]
    fn non_json_and_invalid_utf8_are_invalid_responses() {
        let ptr = Assertion::JsonPointerExists("/data".into());
        assert_eq!(cause(ptr.clone(), "<html>oops</html>"), Some(Cause::InvalidResponse));
        let bytes = HttpResponse { status: 200, headers: vec![], body: vec![0xff, 0xfe, b'{'] };
        assert_eq!(ptr.check(&bytes).unwrap_err().cause(), Cause::InvalidResponse);
    }

    #[test]
    fn optional_status_field_only_judged_when_present() {
        let allowed = vec!["ok".to_string(), "healthy".to_string()];
        let a = Assertion::JsonPointerOneOfIfPresent("/status".into(), allowed);
        assert_eq!(cause(a.clone(), "OK"), None, "plain-text health bodies pass");
        assert_eq!(cause(a.clone(), r#"{"uptime":5}"#), None);
        assert_eq!(cause(a.clone(), r#"{"status":"Healthy"}"#), None);
        assert_eq!(cause(a, r#"{"status":"degraded"}"#), Some(Cause::Assertion));
    }

    #[test]
    fn header_and_body_assertions() {
        let r = response(200, "hello world");
        assert!(Assertion::HeaderPresent("Content-Type".into()).check(&r).is_ok());
        assert!(Assertion::HeaderPresent("x-request-id".into()).check(&r).is_err());
        assert!(Assertion::HeaderEquals("content-type".into(), "application/json".into()).check(&r).is_ok());
        assert!(Assertion::HeaderEquals("content-type".into(), "text/html".into()).check(&r).is_err());
        assert!(Assertion::BodyContains("world".into()).check(&r).is_ok());
        assert_eq!(Assertion::BodyContains("mars".into()).check(&r).unwrap_err().cause(), Cause::Assertion);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = format!(r#"{{"status":"{}"}}"#, "x".repeat(500));
        let err = Assertion::JsonPointerNotIn("/status".into(), vec!["x".repeat(500)])
            .check(&response(200, &long))
            .unwrap_err();
        assert!(err.to_string().len() < 120);
    }
}

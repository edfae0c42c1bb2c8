//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) on every request of a run.
//!
//! A run is one trace: one random trace id, carried by every request (retries, polls and
//! redirects included), each request its own span id. The backend's tracing then shows a
//! synthetic run as one trace, and the page links to it by the trace id the result, the alert and
//! the EMF record carry. `tracestate` says the traffic is synthetic, and which check sent it.

use uuid::Uuid;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The `tracestate` list member's key: a W3C simple key (lower-case letter first).
const TRACESTATE_KEY: &str = "synthetic";
/// A `tracestate` value is at most 256 characters.
const VALUE_MAX_CHARS: usize = 256;

/// The trace of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    tracestate: String,
}

impl TraceContext {
    /// A new trace for a run of `check`. The ids come from version 4 UUIDs: random, and never all
    /// zeros (the version nibble is set), which W3C forbids for both.
    pub fn new(check: &str) -> Self {
        TraceContext {
            trace_id: format!("{:032x}", Uuid::new_v4().as_u128()),
            tracestate: format!("{TRACESTATE_KEY}={}", tracestate_value(check)),
        }
    }

    /// 32 lower-case hex digits.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// `synthetic=<check>`.
    pub fn tracestate(&self) -> &str {
        &self.tracestate
    }

    /// The `traceparent` of one request: this trace, a new span id, sampled.
    pub fn traceparent(&self) -> String {
        // The high half of a v4 UUID holds the version nibble, so it is never zero.
        let (span_id, _) = Uuid::new_v4().as_u64_pair();
        format!("00-{}-{span_id:016x}-01", self.trace_id)
    }

    /// Sets this trace's headers in `headers`, with a new span id: replaces the ones an earlier
    /// attempt of the same request carried.
    pub fn stamp(&self, headers: &mut Vec<(String, String)>) {
        let traceparent = self.traceparent();
        match headers.iter_mut().find(|(name, _)| name == TRACEPARENT) {
            Some((_, value)) => *value = traceparent,
            None => {
                headers.push((TRACEPARENT.into(), traceparent));
                headers.push((TRACESTATE.into(), self.tracestate.clone()));
            }
        }
    }
}

/// Whether `id` is a W3C trace id: 32 lower-case hex digits, not all zero.
pub fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) && id.bytes().any(|b| b != b'0')
}

/// Whether `name` is one of the headers trace context sets.
pub fn is_trace_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(TRACEPARENT) || name.eq_ignore_ascii_case(TRACESTATE)
}

/// A W3C list member's value: printable ASCII but `,` and `=`, no trailing space, at most 256
/// characters. A check name always is one; anything else is replaced, never sent malformed.
fn tracestate_value(check: &str) -> String {
    let value: String = check
        .chars()
        .map(|c| match c {
            '!'..='~' if c != ',' && c != '=' => c,
            _ => '_',
        })
        .take(VALUE_MAX_CHARS)
        .collect();
    if value.is_empty() { "_".into() } else { value }
}

/// Whether `value` is a well-formed version 00 `traceparent` with a non-zero trace and span id:
/// what a request carries and what a test checks it against.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return None;
    };
    let lower_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (*version == "00"
        && is_trace_id(trace_id)
        && lower_hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2))
    .then_some((*trace_id, *span_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_traceparent_is_well_formed_and_keeps_the_trace_id_with_a_new_span_id() {
        let trace = TraceContext::new("products");
        let (first, second) = (trace.traceparent(), trace.traceparent());
        let (trace_a, span_a) = parse_traceparent(&first).expect("well-formed");
        let (trace_b, span_b) = parse_traceparent(&second).expect("well-formed");
        assert_eq!((trace_a, trace_b), (trace.trace_id(), trace.trace_id()));
        assert_ne!(span_a, span_b);
        assert!(first.ends_with("-01"), "sampled: {first}");
        assert_eq!(trace.tracestate(), "synthetic=products");
        assert_ne!(TraceContext::new("products").trace_id(), trace.trace_id(), "one trace per run");
    }

    #[test]
    fn stamping_again_replaces_the_span_id_and_adds_no_second_header() {
        let trace = TraceContext::new("auth");
        let mut headers = vec![("accept".to_string(), "*/*".to_string())];
        trace.stamp(&mut headers);
        let first = headers.clone();
        trace.stamp(&mut headers);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.iter().filter(|(n, _)| n == TRACEPARENT).count(), 1);
        assert_ne!(first, headers, "a new span id");
        assert_eq!(headers[2], (TRACESTATE.to_string(), "synthetic=auth".to_string()));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        let zeros = format!("00-{}-{}-01", "0".repeat(32), "1".repeat(16));
        let zero_span = format!("00-{}-{}-01", "1".repeat(32), "0".repeat(16));
        let upper = format!("00-{}-{}-01", "A".repeat(32), "1".repeat(16));
        for bad in ["", "00-abc-def-01", &zeros, &zero_span, &upper] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Whatever the check is called, the tracestate is one valid W3C list member.
        #[test]
        fn the_tracestate_is_a_valid_list_member(check in "\\PC{0,300}") {
            let state = TraceContext::new(&check).tracestate().to_string();
            let value = state.strip_prefix("synthetic=").expect("the synthetic key");
            prop_assert!(!value.is_empty() && value.chars().count() <= VALUE_MAX_CHARS);
            prop_assert!(value.chars().all(|c| ('!'..='~').contains(&c) && c != ',' && c != '='), "{value}");
        }
    }
}

//! Property: whatever the journey's shape (reads, a poll or not, redirects allowed or not) and
//! whatever answers a run meets (retries after a reset or a 500, a poll that is not
//! done yet, a redirect followed, a replay of a write, the cleanup), every request it sends
//! carries one well-formed W3C `traceparent` with the run's trace id, the span ids of the run are
//! pairwise distinct, and `tracestate` marks it synthetic. With trace context off, by the journey
//! or by the deployment, no request carries either header and the result has no trace id.

use super::write_faults::run_scripted;
use crate::error::CheckError;
use crate::http::{HttpRequest, HttpResponse};
use crate::journey::{JourneyDef, RunSetup};
use crate::result::RunResult;
use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext, parse_traceparent};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The generated shape of a journey: a write, `reads` plain reads, a status check (polled or
/// not) and the write's cleanup: every kind of repeated request the engine sends.
#[derive(Clone, Copy, Debug)]
struct Shape {
    in_journey: bool,
    reads: usize,
    poll: bool,
    max_redirects: usize,
}

fn shape() -> impl Strategy<Value = Shape> {
    (proptest::bool::weighted(0.8), 0..3usize, proptest::bool::ANY, 0..3usize)
        .prop_map(|(in_journey, reads, poll, max_redirects)| Shape { in_journey, reads, poll, max_redirects })
}

impl Shape {
    fn source(&self) -> String {
        let mut source = String::from("check = \"traced\"\n");
        if !self.in_journey {
            source.push_str("trace_context = false\n");
        }
        source.push_str(
            "[[steps]]\nname = \"create\"\nmethod = \"POST\"\npath = \"/create\"\nidempotent = true\n\
             capture = { id = { json = \"/id\" } }\n",
        );
        for read in 0..self.reads {
            source.push_str(&format!("[[steps]]\nname = \"read{read}\"\npath = \"/read/{read}\"\n"));
        }
        source.push_str("[[steps]]\nname = \"status\"\npath = \"/status/{{id}}\"\n");
        source.push_str("assert = [{ json = \"/state\", equals = \"done\" }]\n");
        if self.poll {
            source.push_str("until = { every_ms = 100, within_ms = 250 }\n");
        }
        source.push_str(
            "[[steps]]\nname = \"refund\"\nrole = \"cleanup\"\nmethod = \"POST\"\npath = \"/refund/{{id}}\"\n\
             idempotent = true\n",
        );
        source
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Refused,
    Reset,
    Timeout,
    ServerError,
    Pending,
    Done,
    /// Followed within the origin: a second request of the same attempt.
    Redirect,
}

impl Answer {
    fn answer(self) -> Result<HttpResponse, CheckError> {
        match self {
            Answer::Refused => Err(CheckError::Connect("tcp connect error: Connection refused".into())),
            Answer::Reset => Err(CheckError::ConnectionLost("connection reset by peer".into())),
            Answer::Timeout => Err(CheckError::Timeout { budget_ms: 10_000 }),
            Answer::ServerError => Ok(HttpResponse::with(500, "internal error")),
            Answer::Pending => Ok(HttpResponse::with(200, r#"{"id":"p1","state":"pending"}"#)),
            Answer::Done => Ok(HttpResponse::with(200, r#"{"id":"p1","state":"done"}"#)),
            Answer::Redirect => Ok(HttpResponse::new(302, vec![("location".into(), "/moved".into())], Vec::new())),
        }
    }
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Refused),
        Just(Answer::Reset),
        Just(Answer::Timeout),
        Just(Answer::ServerError),
        Just(Answer::Pending),
        Just(Answer::Done),
        Just(Answer::Redirect),
    ]
}

fn run_against(answers: &[Answer], shape: Shape, in_deployment: bool) -> (RunResult, Vec<HttpRequest>) {
    let journey_def = JourneyDef::parse(&shape.source()).expect("valid");
    // As the monitor decides it: both the journey and the deployment must want it.
    let trace = (journey_def.trace_context && in_deployment).then(|| TraceContext::new("traced"));
    run_scripted(&journey_def, answers.iter().map(|a| a.answer()), |setup| RunSetup {
        max_redirects: shape.max_redirects,
        trace,
        ..setup
    })
}

fn values<'r>(request: &'r HttpRequest, name: &str) -> Vec<&'r str> {
    request.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

proptest! {
    // A case is a few scripted exchanges; only a poll waits (100 ms), in some cases.
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_request_of_a_run_carries_the_run_s_trace_with_its_own_span_or_none_does(
        answers in proptest::collection::vec(answer(), 0..12),
        shape in shape(),
        in_deployment in proptest::bool::weighted(0.8),
    ) {
        let (result, requests) = run_against(&answers, shape, in_deployment);
        prop_assert!(!requests.is_empty());
        if !(shape.in_journey && in_deployment) {
            prop_assert_eq!(&result.trace_id, &None);
            for request in &requests {
                prop_assert!(values(request, TRACEPARENT).is_empty() && values(request, TRACESTATE).is_empty(), "{:?}", request.headers);
            }
            return Ok(());
        }
        let trace_id = result.trace_id.clone().expect("a trace id when on");
        let mut spans = BTreeSet::new();
        for request in &requests {
            let parents = values(request, TRACEPARENT);
            prop_assert_eq!(parents.len(), 1, "{:?}", request.headers);
            let (trace, span) = parse_traceparent(parents[0]).expect("a well-formed traceparent");
            prop_assert_eq!(trace, trace_id.as_str());
            prop_assert!(spans.insert(span.to_string()), "span {} sent twice", span);
            prop_assert_eq!(values(request, TRACESTATE), vec!["synthetic=traced"]);
        }
    }
}

#[test]
fn a_journey_header_named_traceparent_is_refused_unless_trace_context_is_off() {
    let with_header = |switch: &str| {
        format!(
            "check = \"a\"\n{switch}[[steps]]\nname = \"a\"\npath = \"/\"\nheaders = {{ traceparent = \"00-x\", \
             TraceState = \"vendor=1\" }}\n"
        )
    };
    let problems = JourneyDef::parse(&with_header("")).unwrap_err().to_string();
    assert!(problems.contains("traceparent is set by the monitor") && problems.contains("trace_context = false"));
    assert!(problems.contains("TraceState is set by the monitor"), "{problems}");
    let journey = JourneyDef::parse(&with_header("trace_context = false\n")).expect("its own trace headers");
    assert!(!journey.trace_context);
    let problems = JourneyDef::parse("check = \"a\"\ntrace_context = \"no\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n")
        .unwrap_err()
        .to_string();
    assert!(problems.contains("2:17: trace_context must be true or false"), "{problems}");
}

//! W3C trace context end to end: the `synthetic` binary runs a journey against a real server
//! that records the `traceparent` and `tracestate` of every request it gets, a followed redirect
//! and a retry included, and the run's `trace_id` is the one they carry.

use crate::helpers::{Exited, JourneyFile, serve, synthetic};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use synthetic_checks::trace::parse_traceparent;
use synthetic_checks::{Outcome, RunResult};

/// `(path, traceparent, tracestate)` of each request, in order.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// `/start` redirects to `/landed`; `/flaky` answers 500 once, then 200.
async fn recording_target() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let flaky = Arc::new(AtomicUsize::new(0));
    let record = |seen: &Seen, path: &str, headers: &HeaderMap| {
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        seen.lock().map(|mut s| s.push((path.to_string(), value("traceparent"), value("tracestate")))).ok();
    };
    let (start, landed, again) = (seen.clone(), seen.clone(), seen.clone());
    let url = serve(
        Router::new()
            .route(
                "/start",
                get(move |headers: HeaderMap| async move {
                    record(&start, "/start", &headers);
                    (StatusCode::FOUND, [(header::LOCATION, "/landed")]).into_response()
                }),
            )
            .route(
                "/landed",
                get(move |headers: HeaderMap| async move {
                    record(&landed, "/landed", &headers);
                    "{}".into_response()
                }),
            )
            .route(
                "/flaky",
                get(move |headers: HeaderMap| async move {
                    record(&again, "/flaky", &headers);
                    match flaky.fetch_add(1, Ordering::SeqCst) {
                        0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        _ => "{}".into_response(),
                    }
                }),
            ),
    )
    .await;
    (url, seen)
}

const STEPS: &str = "[[steps]]\nname = \"start\"\npath = \"/start\"\n[[steps]]\nname = \"flaky\"\npath = \"/flaky\"\n";

fn passed(exited: &Exited) -> RunResult {
    exited.expect(0);
    let run: RunResult = serde_json::from_str(exited.stdout.trim()).expect("one RunResult");
    assert_eq!(run.status, Outcome::Passed, "{run:#?}");
    run
}

#[tokio::test]
async fn every_request_of_a_run_carries_its_trace_id_with_a_span_of_its_own() {
    let (target, seen) = recording_target().await;
    let file = JourneyFile::new(&format!("check = \"traced\"\n{STEPS}"));
    let run = passed(&synthetic(&file.args(&target), &[]).await);
    let trace_id = run.trace_id.clone().expect("the run's trace id");
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(paths, ["/start", "/landed", "/flaky", "/flaky"], "a redirect followed and a retry");
    let mut spans = BTreeSet::new();
    for (path, parent, state) in &seen {
        let parent = parent.as_deref().unwrap_or_else(|| panic!("{path} without a traceparent"));
        let (trace, span) = parse_traceparent(parent).unwrap_or_else(|| panic!("{path}: malformed {parent}"));
        assert_eq!(trace, trace_id, "{path}");
        assert!(spans.insert(span.to_string()), "{path}: span {span} sent twice");
        assert_eq!(state.as_deref(), Some("synthetic=traced"), "{path}");
    }
}

#[tokio::test]
async fn trace_context_off_by_the_deployment_or_the_journey_sends_none_of_ours() {
    // GIVEN TRACE_CONTEXT=off for the deployment
    let (target, seen) = recording_target().await;
    let file = JourneyFile::new(&format!("check = \"untraced\"\n{STEPS}"));
    let run = passed(&synthetic(&file.args(&target), &[("TRACE_CONTEXT", "off")]).await);
    // THEN no request carries trace headers and the result no trace id
    assert_eq!(run.trace_id, None);
    assert!(seen.lock().unwrap().iter().all(|(_, p, s)| p.is_none() && s.is_none()), "{seen:?}");

    // GIVEN a journey that turns it off and sends its own
    let (target, seen) = recording_target().await;
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let file = JourneyFile::new(&format!(
        "check = \"own\"\ntrace_context = false\n[defaults]\nheaders = {{ traceparent = \"{own}\" }}\n{STEPS}"
    ));
    let run = passed(&synthetic(&file.args(&target), &[]).await);
    // THEN the server sees exactly its own, once per request
    assert_eq!(run.trace_id, None);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, p, s)| p.as_deref() == Some(own) && s.is_none()), "{seen:?}");

    // AND a wrong TRACE_CONTEXT is refused before any request, naming the variable
    let exited = synthetic(&file.args(&target), &[("TRACE_CONTEXT", "no")]).await;
    exited.expect(3);
    assert!(exited.stderr.contains("TRACE_CONTEXT must be on or off"), "{}", exited.stderr);
}

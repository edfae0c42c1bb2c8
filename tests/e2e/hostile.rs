//! Hostile and broken targets: each ends as a failed step with the right cause, within the
//! step's budget, and never a panic. Runs the real reqwest adapter through a journey step.

use std::sync::Arc;
use std::time::{Duration, Instant};
use synthetic_checks::assertion::{Assertion, ExpectedStatus, JsonTest};
use synthetic_checks::http::{HttpSettings, Method, ReqwestTarget};
use synthetic_checks::journey::{Budget, Journey, JourneySetup, RetryPolicy, StepSpec};
use synthetic_checks::{Cause, Outcome, StepResult};
use synthetic_e2e::hostile::{HostileServer, Hostility, refused_url};

const BUDGET: Duration = Duration::from_millis(1500);
/// Scheduling slack on a loaded 2-core CI machine; the budget itself is what is enforced.
const SLACK: Duration = Duration::from_millis(1500);

async fn step_against(base: &str) -> (StepResult, Duration) {
    let http = ReqwestTarget::new(&HttpSettings::default()).expect("client");
    let mut journey = Journey::new(JourneySetup {
        http: Arc::new(http),
        check: "hostile".into(),
        env: "test".into(),
        target: base.parse().expect("url"),
        run_id: "run".into(),
        synthetic_header: "X-Synthetic-Check".into(),
        retry: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
        max_redirects: 5,
        deadline: None,
    });
    let budget = Budget { degraded_after: BUDGET, fail_after: BUDGET };
    let spec = StepSpec::new("probe", Method::Get, "/api/products", ExpectedStatus::one(200), budget)
        .assert(Assertion::Json { pointer: "/data".into(), optional: false, test: JsonTest::MinItems(1) });
    let started = Instant::now();
    let _ = journey.step(spec).await;
    let elapsed = started.elapsed();
    (journey.finish().steps.remove(0), elapsed)
}

async fn assert_fails(mode: Hostility, cause: Cause) {
    let server = HostileServer::start(mode).await.expect("hostile server");
    let (step, elapsed) = step_against(&server.url()).await;
    assert_eq!((step.outcome, step.cause), (Outcome::Failed, Some(cause)), "{mode:?}: {step:#?}");
    assert!(step.error.as_deref().is_some_and(|e| !e.is_empty() && !e.contains('\n')), "{step:#?}");
    assert!(elapsed < BUDGET + SLACK, "{mode:?} took {elapsed:?}, over its {BUDGET:?} budget");
}

#[tokio::test]
async fn a_hang_is_a_timeout() {
    assert_fails(Hostility::Hang, Cause::Timeout).await;
}

#[tokio::test]
async fn a_slow_drip_is_a_timeout_within_the_budget() {
    assert_fails(Hostility::SlowDrip, Cause::Timeout).await;
}

#[tokio::test]
async fn a_50_mb_body_is_cut_off_as_invalid_response() {
    assert_fails(Hostility::HugeBody, Cause::InvalidResponse).await;
}

#[tokio::test]
async fn non_json_is_invalid_response() {
    assert_fails(Hostility::NonJson, Cause::InvalidResponse).await;
}

#[tokio::test]
async fn invalid_utf8_is_invalid_response() {
    assert_fails(Hostility::InvalidUtf8, Cause::InvalidResponse).await;
}

#[tokio::test]
async fn a_redirect_loop_is_invalid_response() {
    assert_fails(Hostility::RedirectLoop, Cause::InvalidResponse).await;
}

#[tokio::test]
async fn a_reset_connection_is_connect() {
    assert_fails(Hostility::Reset, Cause::Connect).await;
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    let (step, elapsed) = step_against(&refused_url().await.expect("port")).await;
    assert_eq!(step.cause, Some(Cause::Connect), "{step:#?}");
    assert!(elapsed < BUDGET + SLACK);
}

#[tokio::test]
async fn plain_http_behind_an_https_url_is_tls() {
    let server = HostileServer::start(Hostility::NonJson).await.expect("hostile server");
    let (step, _) = step_against(&server.https_url()).await;
    assert_eq!(step.cause, Some(Cause::Tls), "{step:#?}");
}

//! Hostile and broken targets: each ends as a failed step with the right cause, within the
//! step's budget, and never a panic. Runs the real reqwest adapter through a journey step.

use std::sync::Arc;
use std::time::{Duration, Instant};
use synthetic_checks::http::{DEFAULT_MAX_BODY_BYTES, HttpSettings, Method, ReqwestTarget};
use synthetic_checks::journey::ExpectedStatus;
use synthetic_checks::journey::judge::{Assertion, JsonTest};
use synthetic_checks::journey::{Budget, RetryPolicy, RunSetup, StepRecorder, StepSpec};
use synthetic_checks::{Cause, Outcome, StepResult};
use synthetic_e2e::hostile::{HostileServer, Hostility, refused_url};

const BUDGET: Duration = Duration::from_millis(1500);
/// How long past its budget a timed-out step may end: scheduling on a loaded 2-core machine.
/// A third of the budget, so a step that waited twice its budget (or ignored it) fails.
const LATE: Duration = Duration::from_millis(500);

async fn step_against(base: &str) -> (StepResult, Duration) {
    let http = ReqwestTarget::new(&HttpSettings::default()).expect("client");
    let mut journey = StepRecorder::new(RunSetup {
        http: Arc::new(http),
        check: "hostile".into(),
        env: "test".into(),
        target: base.parse().expect("url"),
        run_id: "run".into(),
        synthetic_header: "X-Synthetic-Check".into(),
        retry: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
        max_redirects: 5,
        deadline: None,
        trace: None,
    });
    let budget = Budget { degraded_after: BUDGET, fail_after: BUDGET };
    let spec = StepSpec::new("probe", Method::Get, "/api/products", ExpectedStatus::one(200), budget)
        .assert(Assertion::Json { pointer: "/data".into(), optional: false, test: JsonTest::MinItems(1) });
    let started = Instant::now();
    let _ = journey.step(spec).await;
    let elapsed = started.elapsed();
    (journey.finish().steps.remove(0), elapsed)
}

/// When a failed step must end.
#[derive(Clone, Copy, Debug)]
enum Ends {
    /// Cut off by its budget: not before it, and not much after.
    AtTheBudget,
    /// Failed on its own, long before the budget could matter.
    WellWithinTheBudget,
}

fn assert_ended(mode: &str, elapsed: Duration, ends: Ends) {
    match ends {
        Ends::AtTheBudget => assert!(
            BUDGET <= elapsed && elapsed < BUDGET + LATE,
            "{mode} ended after {elapsed:?}; its {BUDGET:?} budget should have cut it off"
        ),
        Ends::WellWithinTheBudget => {
            assert!(elapsed < BUDGET / 2, "{mode} took {elapsed:?}, too close to its {BUDGET:?} budget")
        }
    }
}

async fn assert_fails(mode: Hostility, cause: Cause, ends: Ends) -> StepResult {
    let server = HostileServer::start(mode).await.expect("hostile server");
    let (step, elapsed) = step_against(&server.url()).await;
    assert_eq!((step.outcome, step.cause), (Outcome::Failed, Some(cause)), "{mode:?}: {step:#?}");
    assert!(step.error.as_deref().is_some_and(|e| !e.is_empty() && !e.contains('\n')), "{step:#?}");
    assert_ended(&format!("{mode:?}"), elapsed, ends);
    step
}

#[tokio::test]
async fn a_hang_is_a_timeout() {
    assert_fails(Hostility::Hang, Cause::Timeout, Ends::AtTheBudget).await;
}

#[tokio::test]
async fn a_slow_drip_is_a_timeout_within_the_budget() {
    assert_fails(Hostility::SlowDrip, Cause::Timeout, Ends::AtTheBudget).await;
}

#[tokio::test]
async fn a_50_mb_body_is_cut_off_by_the_body_cap() {
    // GIVEN a body that is valid JSON with plenty of `/data` items, only too big
    // WHEN the step reads it
    let step = assert_fails(Hostility::HugeBody, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
    // THEN the cap is what failed it, not the JSON
    let error = step.error.unwrap_or_default();
    assert!(error.contains(&format!("{DEFAULT_MAX_BODY_BYTES} byte cap")), "{error}");
}

#[tokio::test]
async fn non_json_is_invalid_response() {
    assert_fails(Hostility::NonJson, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn invalid_utf8_is_invalid_response() {
    assert_fails(Hostility::InvalidUtf8, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_redirect_loop_is_invalid_response() {
    assert_fails(Hostility::RedirectLoop, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_reset_connection_is_connect() {
    assert_fails(Hostility::Reset, Cause::Connect, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    let (step, elapsed) = step_against(&refused_url().await.expect("port")).await;
    assert_eq!(step.cause, Some(Cause::Connect), "{step:#?}");
    assert_ended("refused", elapsed, Ends::WellWithinTheBudget);
}

#[tokio::test]
async fn plain_http_behind_an_https_url_is_tls() {
    let server = HostileServer::start(Hostility::NonJson).await.expect("hostile server");
    let (step, elapsed) = step_against(&server.https_url()).await;
    assert_eq!(step.cause, Some(Cause::Tls), "{step:#?}");
    assert_ended("plain HTTP behind https", elapsed, Ends::WellWithinTheBudget);
}

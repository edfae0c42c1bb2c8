//! check-health against bodies that claim to be JSON and are not (issue: a corrupted JSON health
//! body used to pass). Plain-text `OK` still passes; that case is the demo shop's own health
//! endpoint in every other test.

use crate::helpers::*;
use synthetic_checks::{Cause, Check, Outcome};
use synthetic_e2e::hostile::{HostileServer, Hostility};

#[tokio::test]
async fn a_health_body_that_claims_json_and_is_not_is_invalid_response() {
    let stack = stack().await;
    for mode in [Hostility::InvalidUtf8, Hostility::NonJson] {
        // GIVEN a target whose /health answers 200, Content-Type: application/json, and a body that
        // is not JSON (invalid UTF-8, or an HTML maintenance page)
        let target = HostileServer::start(mode).await.expect("hostile server");
        let url = target.url();
        // WHEN the real check-health binary runs against it
        let ran = run_once(&stack, Check::Health, &[FAST_RETRY, ("TARGET_BASE_URL", &url)]).await;
        // THEN the run fails as invalid_response and pages, instead of passing
        assert_trigger(&ran, Outcome::Failed, Cause::InvalidResponse);
    }
    stack.stop().await;
}

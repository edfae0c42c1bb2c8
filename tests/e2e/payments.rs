//! The sandbox payment journey: every write is cleaned up, and a leak is reported.

use crate::helpers::*;
use synthetic_checks::{Cause, Check, Outcome};

#[tokio::test]
async fn no_payment_is_left_live_in_any_fault_mode_but_no_refund() {
    let stack = stack().await;
    let cases: &[(&str, EnvVars, Outcome, Option<Cause>, u64)] = &[
        ("none", &[], Outcome::Passed, None, 0),
        ("decline", &[], Outcome::Failed, Some(Cause::HttpStatus), 0),
        // A 500's outcome is indeterminate: the replay with the same key answers 500 too, so the
        // run cannot say nothing is live (nothing is, here) and says cleanup_failed.
        ("500", &[], Outcome::Failed, Some(Cause::CleanupFailed), 0),
        ("get-500", &[], Outcome::Failed, Some(Cause::HttpStatus), 0),
        ("slow:400", &[("PAYMENT_CREATE_DEGRADED_AFTER_MS", "200")], Outcome::Degraded, Some(Cause::Timeout), 0),
        ("no-refund", &[], Outcome::Failed, Some(Cause::CleanupFailed), 1),
    ];
    for (fault, env, status, cause, live) in cases {
        // GIVEN a shop whose payments API has this fault
        stack.shop.handle().clear_all();
        if *fault != "none" {
            stack.shop.handle().set_fault("payments", fault).expect("valid fault");
        }
        let before = stack.shop.handle().state().payments.live;
        let mut env = env.to_vec();
        env.push(FAST_RETRY);
        // WHEN the payment check runs
        let ran = run_once(&stack, Check::Payment, &env).await;
        // THEN the outcome and cause match, and only no-refund leaves a payment live
        match cause {
            Some(cause) => assert_trigger(&ran, *status, *cause),
            None => assert_resolve(&ran),
        }
        let leaked = stack.shop.handle().state().payments.live - before;
        assert_eq!(leaked, *live, "fault {fault}: {:#?}", ran.result());
    }
    stack.stop().await;
}

#[tokio::test]
async fn verification_failure_still_refunds_and_reports_the_first_failure() {
    let stack = stack().await;
    stack.shop.handle().set_fault("payments", "get-500").expect("valid fault");
    let ran = run_once(&stack, Check::Payment, &[FAST_RETRY]).await;
    let run = ran.result();
    let names: Vec<_> = run.steps.iter().map(|s| (s.name.as_str(), s.outcome)).collect();
    assert_eq!(
        names,
        [
            ("login", Outcome::Passed),
            ("payment_create", Outcome::Passed),
            ("payment_get", Outcome::Failed),
            ("payment_refund", Outcome::Passed),
        ]
    );
    assert_eq!(run.steps[2].attempts, 2, "a GET is retried");
    let state = stack.shop.handle().state();
    assert_eq!((state.payments.live, state.payments.refunded), (0, 1));
    stack.stop().await;
}

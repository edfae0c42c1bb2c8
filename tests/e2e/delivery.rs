//! When the monitor itself breaks, the invocation fails: nothing is lost silently.

use crate::helpers::*;
use synthetic_checks::Check;
use synthetic_e2e::lambda_emulator::{EmulatorError, Invocation};
use synthetic_e2e::local_aws::spawn_failing_endpoint;
use synthetic_e2e::stack::invoke_scheduled;

#[tokio::test]
async fn sns_answering_500_fails_the_invocation_after_retries() {
    let stack = stack().await;
    let broken_sns = spawn_failing_endpoint(500).await.expect("failing endpoint");
    // GIVEN SNS answers 500 to everything (Secrets Manager still works)
    let env = [("AWS_ENDPOINT_URL_SNS", broken_sns.base_url()), ("ALERT_PUBLISH_BACKOFF_MS", "10")];
    let ran = run_once(&stack, Check::Auth, &env).await;
    // THEN the alert is retried, then turned into an invocation error for Lambda's retry and DLQ
    let (error_type, error_message) = ran.error();
    assert_eq!(error_type, "AlertUndeliverable");
    assert!(error_message.contains("4 attempt"), "{error_message}");
    assert!(error_message.contains("the undelivered alert: [local] auth passed"), "{error_message}");
    assert_eq!(broken_sns.hits(), 4);
    assert!(ran.alerts.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn stopped_moto_fails_the_invocation_instead_of_losing_the_alert() {
    let stack = stack().await;
    let process = stack.spawn_check(Check::Health, &[("ALERT_PUBLISH_BACKOFF_MS", "10")]).await.expect("spawn");
    let secret_values = stack.secret_values();
    let LocalStack { shop, moto, .. } = stack;
    moto.stop().await;
    let invocation = invoke_scheduled(&process, Check::Health).await.expect("invoke");
    let Invocation::Error { error_type, .. } = &invocation else { panic!("{invocation:?}") };
    assert_eq!(error_type, "AlertUndeliverable");
    let logs = process.logs();
    process.shutdown().await;
    // The failing SDK calls log their requests and errors at trace: none of it may be secret.
    let mut texts = logs.clone();
    texts.push(format!("{invocation:?}"));
    assert_none_leaked(&secret_values, &texts);
    assert_logged_at_trace(&logs);
    let _ = shop.stop().await;
}

#[tokio::test]
async fn missing_configuration_names_the_variable() {
    let stack = stack().await;
    // An empty value counts as unset, so this removes the variable for the child.
    let process = stack.spawn_check(Check::Auth, &[("CREDENTIALS_SECRET_ID", "")]).await.expect("spawn");
    let outcome = invoke_scheduled(&process, Check::Auth).await;
    let Err(synthetic_e2e::stack::StackError::Emulator(EmulatorError::ChildExited { last_logs, .. })) = outcome else {
        panic!("expected the function to refuse to start, got {outcome:?}");
    };
    assert!(last_logs.iter().any(|l| l.contains("CREDENTIALS_SECRET_ID is not set")), "{last_logs:#?}");
    stack.stop().await;
}

#[tokio::test]
async fn a_journey_other_than_the_validated_one_never_runs() {
    let stack = stack().await;
    let other = "0".repeat(64);
    for (env, variable) in [
        // GIVEN the deploy's digest is not the bundle's journey's (code and configuration of two builds)
        (vec![("CHECK_JOURNEY_SHA256", other.as_str())], "CHECK_JOURNEY_SHA256 is 0000"),
        // GIVEN a check the bundle does not hold
        (vec![("CHECK_NAME", "gone")], "CHECK_NAME gone: "),
    ] {
        let process = stack.spawn_check(Check::Health, &env).await.expect("spawn");
        let outcome = invoke_scheduled(&process, Check::Health).await;
        // THEN the function refuses to start, naming the variable: nothing is sent, nothing pages
        let Err(synthetic_e2e::stack::StackError::Emulator(EmulatorError::ChildExited { last_logs, .. })) = outcome
        else {
            panic!("expected the function to refuse to start, got {outcome:?}");
        };
        assert!(last_logs.iter().any(|l| l.contains(variable)), "{variable}: {last_logs:#?}");
    }
    assert!(stack.alerts().await.expect("drain").is_empty());
    assert_eq!(stack.shop.handle().state().traffic.synthetic, 0, "no request reached the target");
    stack.stop().await;
}

#[tokio::test]
async fn an_unreadable_secret_is_an_invocation_error() {
    let stack = stack().await;
    let ran = run_once(&stack, Check::Products, &[("CREDENTIALS_SECRET_ID", "synthetic/does-not-exist")]).await;
    let (error_type, error_message) = ran.error();
    assert_eq!(error_type, "SecretUnavailable");
    assert!(
        error_message.contains("synthetic/does-not-exist") && error_message.contains("ResourceNotFound"),
        "{error_message}"
    );
    assert!(ran.alerts.is_empty());
    stack.stop().await;
}

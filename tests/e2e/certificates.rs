//! Certificate expiry (issue 12): the real check-health binary against HTTPS targets on loopback
//! whose leaf certificates, signed by a private CA made in the test, expire when the test says.
//! The certificate is read from the journey's own connection: each target counts the requests
//! it answered.

use crate::helpers::*;
use synthetic_checks::{Cause, Check, Outcome};
use synthetic_e2e::lambda_emulator::EmulatorError;
use synthetic_e2e::stack::{StackError, invoke_scheduled};
use synthetic_e2e::tls_target::{LEAF_SUBJECT, TestCa, TlsTarget, Validity};

async fn target(ca: &TestCa, validity: Validity) -> TlsTarget {
    TlsTarget::start(ca, validity).await.expect("TLS target")
}

fn new_ca(name: &str) -> TestCa {
    TestCa::new(name).expect("test CA")
}

/// Runs check-health once against `target`, trusting `ca` through TARGET_CA_BUNDLE when given.
async fn run_health(stack: &LocalStack, target: &TlsTarget, ca: Option<&TestCa>) -> Ran {
    let url = target.url();
    let bundle = ca.map(|ca| ca.bundle_path().to_string_lossy().into_owned());
    let mut env = vec![FAST_RETRY, ("TARGET_BASE_URL", url.as_str())];
    if let Some(bundle) = &bundle {
        env.push(("TARGET_CA_BUNDLE", bundle.as_str()));
    }
    run_once(stack, Check::Health, &env).await
}

/// The `CertificateDaysLeft` of the run's EMF record, from the function's stdout.
fn certificate_days_left_metric(ran: &Ran) -> Option<i64> {
    ran.logs
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|record| record["_aws"].is_object() && record.get("step").is_none())
        .and_then(|record| record["CertificateDaysLeft"].as_i64())
}

#[tokio::test]
async fn a_certificate_that_expires_in_5_days_degrades_the_run_with_tls_and_names_days_and_subject() {
    let stack = stack().await;
    // GIVEN a healthy target behind a private CA, its certificate expiring in 5 days
    let ca = new_ca("Private CA");
    let target = target(&ca, Validity::ExpiresInDays(5)).await;

    // WHEN check-health runs against it with the CA in TARGET_CA_BUNDLE
    let ran = run_health(&stack, &target, Some(&ca)).await;

    // THEN the run is degraded with cause tls, and the alert says how many days are left and whose
    // certificate it is
    assert_trigger(&ran, Outcome::Degraded, Cause::Tls);
    let run = ran.result();
    assert_eq!(run.certificate.as_ref().map(|c| (c.days_left, c.subject.as_str())), Some((5, LEAF_SUBJECT)));
    let summary = ran.alert().body["summary"].as_str().unwrap_or_default().to_string();
    assert!(summary.contains("expires in 5 days") && summary.contains(LEAF_SUBJECT), "{summary}");
    assert!(summary.contains("CERT_MIN_DAYS (14 days)"), "{summary}");
    assert_eq!(certificate_days_left_metric(&ran), Some(5));
    // AND the certificate came with the journey's one request, not a request of its own
    assert_eq!(target.requests(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_certificate_valid_for_a_year_passes_with_its_days_left_in_the_result_and_the_metric() {
    let stack = stack().await;
    let ca = new_ca("Private CA");
    let target = target(&ca, Validity::ExpiresInDays(365)).await;

    let ran = run_health(&stack, &target, Some(&ca)).await;

    assert_resolve(&ran);
    let certificate = ran.result().certificate.expect("the result carries the certificate");
    assert_eq!((certificate.days_left, certificate.subject.as_str()), (365, LEAF_SUBJECT));
    assert!(certificate.not_after.starts_with(&(time::OffsetDateTime::now_utc().year() + 1).to_string()));
    assert_eq!(certificate_days_left_metric(&ran), Some(365));
    assert_eq!(target.requests(), 1, "no request beyond the journey's");
    stack.stop().await;
}

#[tokio::test]
async fn a_certificate_that_expired_yesterday_fails_the_run_with_tls_and_a_clear_message() {
    let stack = stack().await;
    let ca = new_ca("Private CA");
    let target = target(&ca, Validity::ExpiredYesterday).await;

    let ran = run_health(&stack, &target, Some(&ca)).await;

    assert_trigger(&ran, Outcome::Failed, Cause::Tls);
    let run = ran.result();
    let error = run.steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("the certificate of 127.0.0.1 has expired: not valid after"), "{error}");
    assert!(error.contains("1 whole day(s) ago"), "{error}");
    assert_eq!(run.certificate, None, "no answer came, so no certificate was recorded");
    assert_eq!(target.requests(), 0, "the handshake refused it before any request");
    stack.stop().await;
}

#[tokio::test]
async fn an_untrusted_certificate_still_fails_with_tls_without_the_ca_bundle() {
    let stack = stack().await;
    // GIVEN a target whose certificate is otherwise fine but signed by a CA nobody configured
    let ca = new_ca("Unknown CA");
    let target = target(&ca, Validity::ExpiresInDays(365)).await;

    // WHEN check-health runs without TARGET_CA_BUNDLE
    let ran = run_health(&stack, &target, None).await;

    // THEN verification refused it: failed with tls, saying why and what to do
    assert_trigger(&ran, Outcome::Failed, Cause::Tls);
    let error = ran.result().steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("the certificate of 127.0.0.1 is not trusted"), "{error}");
    assert!(error.contains("TARGET_CA_BUNDLE"), "{error}");
    assert_eq!(target.requests(), 0);

    // AND a bundle holding another CA does not make it trusted either
    let other = new_ca("Another CA");
    let ran = run_health(&stack, &target, Some(&other)).await;
    assert_trigger(&ran, Outcome::Failed, Cause::Tls);
    assert_eq!(target.requests(), 0);
    stack.stop().await;
}

#[tokio::test]
async fn an_unreadable_ca_bundle_stops_the_function_naming_the_variable_and_the_file() {
    let stack = stack().await;
    let env = [("TARGET_CA_BUNDLE", "/nonexistent/private-ca.pem")];
    let process = stack.spawn_check(Check::Health, &env).await.expect("spawn");
    let outcome = invoke_scheduled(&process, Check::Health).await;
    let Err(StackError::Emulator(EmulatorError::ChildExited { last_logs, .. })) = outcome else {
        panic!("expected the function to refuse to start, got {outcome:?}");
    };
    let named = "misconfigured: TARGET_CA_BUNDLE file /nonexistent/private-ca.pem cannot be read";
    assert!(last_logs.iter().any(|l| l.contains(named)), "{last_logs:#?}");
    stack.stop().await;
}

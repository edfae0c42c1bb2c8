//! The forwarder's library handler against a local fake Events API, through the real reqwest
//! adapter, with every body it sends validated against PagerDuty's published contract (the fake
//! refuses what the contract refuses, and [`Stack::sent`] asserts no violation at all).

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use pagerduty_forwarder::event::DROPPED_DETAILS;
use pagerduty_forwarder::handler::{REJECTED_METRIC, STALE_METRIC};
use pagerduty_forwarder::{Adapters, Event, Forwarder, ForwarderConfig, HttpEventsApi};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use synthetic_checks::alert::AlertMessage;
use synthetic_checks::config::Origin;
use synthetic_checks::error::Cause;
use synthetic_checks::metrics::RecordingMetrics;
use synthetic_checks::result::{Outcome, RunResult, StepResult};
use synthetic_checks::secret::{InMemorySecrets, Secret};
use synthetic_e2e::fake_pagerduty::FakePagerDuty;
use synthetic_e2e::pagerduty_contract::Contract;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SECRET_ID: &str = "pagerduty/routing-key";
const ROUTING_KEY: &str = "R0UT1NG5ECRET0123456789abcdef012";
const ROTATED_KEY: &str = "R0TATED5ECRET0123456789abcdef012";

fn contract() -> Contract {
    Contract::load().unwrap_or_else(|e| panic!("{e}"))
}

// ------------------------------------------------------------------ alerts and SNS events

fn step(name: &str, outcome: Outcome, cause: Option<Cause>, error: Option<String>) -> StepResult {
    StepResult {
        name: name.into(),
        outcome,
        duration_ms: 731,
        status: cause.map(|_| 503).or(Some(200)),
        attempts: if cause.is_some() { 2 } else { 1 },
        cause,
        error,
    }
}

/// What the payment check publishes after a run: failed at `payment_create`, or passed.
fn payment_alert(failed: bool) -> AlertMessage {
    let (status, cause, steps) = match failed {
        true => (
            Outcome::Failed,
            Some(Cause::HttpStatus),
            vec![
                step("login", Outcome::Passed, None, None),
                step(
                    "payment_create",
                    Outcome::Failed,
                    Some(Cause::HttpStatus),
                    Some("HTTP 503, expected 200 or 201".into()),
                ),
            ],
        ),
        false => (
            Outcome::Passed,
            None,
            vec![step("login", Outcome::Passed, None, None), step("payment_create", Outcome::Passed, None, None)],
        ),
    };
    let run = RunResult {
        check: "payment".into(),
        env: "prod".into(),
        target: "https://shop.example.com/".into(),
        run_id: format!("run-{status:?}"),
        started_at: "2026-11-21T10:00:00Z".into(),
        duration_ms: 1_200,
        status,
        cause,
        steps,
        account: None,
        certificate: None,
        trace_id: None,
    };
    let origin = Origin {
        function_name: Some("synthetic-check-payment".into()),
        log_group: Some("/aws/lambda/synthetic-check-payment".into()),
        log_stream: Some("2026/11/21/[$LATEST]5f0e7c".into()),
        region: Some("eu-west-1".into()),
    };
    AlertMessage::from_run(&run, &origin)
}

fn sns(messages: &[(&str, String)]) -> LambdaEvent<aws_lambda_events::event::sns::SnsEvent> {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, message)| {
            json!({"EventSource": "aws:sns", "EventVersion": "1.0",
                   "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:alerts:2bcfbf39",
                   "Sns": {"Type": "Notification", "MessageId": id,
                           "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alerts",
                           "Subject": "[prod] payment FAILED", "Message": message,
                           "Timestamp": "2026-11-21T10:00:01.000Z", "SignatureVersion": "1",
                           "Signature": "EXAMPLE", "SigningCertUrl": "https://sns.example/cert.pem",
                           "UnsubscribeUrl": "https://sns.example/unsubscribe",
                           "MessageAttributes": {"event_action": {"Type": "String", "Value": "trigger"}}}})
        })
        .collect();
    let event = serde_json::from_value(json!({ "Records": records })).expect("an SNS event");
    LambdaEvent::new(event, Context::default())
}

fn message(alert: &AlertMessage) -> String {
    serde_json::to_string(alert).expect("an alert serializes")
}

// ------------------------------------------------------------------ the stack under test

struct Stack {
    pagerduty: FakePagerDuty,
    forwarder: Forwarder,
    secrets: Arc<InMemorySecrets>,
    metrics: Arc<RecordingMetrics>,
}

impl Stack {
    async fn start(secret_value: &str) -> Stack {
        let pagerduty = FakePagerDuty::with_contract(contract()).await.expect("the fake Events API starts");
        let base = pagerduty.base_url();
        let config = ForwarderConfig::from_lookup(&|name| match name {
            "PAGERDUTY_SECRET_ID" => Some(SECRET_ID.into()),
            "PAGERDUTY_EVENTS_URL" => Some(base.clone()),
            "PAGERDUTY_BACKOFF_MS" => Some("5".into()),
            "RUNBOOK_URL" => Some("https://wiki.example.com/runbooks/synthetic-payment".into()),
            _ => None,
        })
        .expect("valid configuration");
        let secrets = Arc::new(InMemorySecrets::with(SECRET_ID, secret_value));
        let metrics = Arc::new(RecordingMetrics::default());
        let adapters = Adapters {
            secrets: secrets.clone(),
            events: Arc::new(HttpEventsApi::reqwest(&config).expect("an HTTP client")),
            metrics: metrics.clone(),
            clock: Arc::new(OffsetDateTime::now_utc),
            state: None,
            humans: None,
        };
        Stack { pagerduty, forwarder: Forwarder::new(config, adapters), secrets, metrics }
    }

    /// Every body the fake received, with the contract kept and the routing key in place.
    fn sent(&self) -> Vec<Value> {
        let violations = self.pagerduty.violations();
        assert!(violations.is_empty(), "PagerDuty's contract was violated: {violations:#?}");
        let bodies = self.pagerduty.requests();
        for body in &bodies {
            assert_eq!(body["routing_key"], ROUTING_KEY);
            if body["event_action"] == "resolve" {
                assert_eq!(
                    object_keys(body),
                    ["dedup_key", "event_action", "routing_key"],
                    "a resolve sends only what PagerDuty reads"
                );
            }
        }
        bodies
    }
}

fn object_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

fn routing_key_json() -> String {
    json!({ "routing_key": ROUTING_KEY }).to_string()
}

// ------------------------------------------------------------------ scenarios

#[tokio::test]
async fn fail_fail_pass_opens_one_incident_and_resolves_it() {
    // GIVEN a forwarder whose routing key is stored as JSON
    let stack = Stack::start(&routing_key_json()).await;

    // WHEN the payment check fails twice and then passes, one SNS message per run
    for (id, failed) in [("m-1", true), ("m-2", true), ("m-3", false)] {
        let forwarded = stack
            .forwarder
            .handle(sns(&[(id, message(&payment_alert(failed)))]))
            .await
            .expect("every run is forwarded");
        assert_eq!(forwarded.delivered, [id]);
    }

    // THEN PagerDuty saw two triggers and one resolve, all for one dedup key
    let sent = stack.sent();
    let actions: Vec<&str> = sent.iter().map(|b| b["event_action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    assert!(sent.iter().all(|b| b["dedup_key"] == "synthetic/prod/payment"));

    // AND a trigger carries what on-call needs to act
    let trigger = &sent[0];
    let payload = &trigger["payload"];
    assert_eq!(
        payload["summary"],
        "[prod] payment FAILED at step payment_create (http_status): HTTP 503, expected 200 or 201"
    );
    assert_eq!(
        (&payload["source"], &payload["component"], &payload["group"], &payload["class"], &payload["severity"]),
        (&json!("shop.example.com"), &json!("payment"), &json!("prod"), &json!("http_status"), &json!("critical"))
    );
    assert_eq!(payload["custom_details"]["step 2 payment_create"]["attempts"], 2);
    assert_eq!(payload["custom_details"]["step 2 payment_create"]["http_status"], 503);
    assert_eq!(trigger["links"][0]["href"], "https://wiki.example.com/runbooks/synthetic-payment");
    assert!(
        trigger["links"][1]["href"]
            .as_str()
            .unwrap()
            .ends_with("log-group/$252Faws$252Flambda$252Fsynthetic-check-payment/log-events/2026$252F11$252F21$252F$255B$2524LATEST$255D5f0e7c")
    );
    assert_eq!(trigger["client"], "synthetic-lambda");

    // AND the routing key was read once for the three invocations
    assert_eq!(stack.secrets.reads(), 1);
}

#[tokio::test]
async fn throttled_twice_then_accepted_is_delivered_once() {
    // GIVEN PagerDuty answers 429, 429, then 202
    let stack = Stack::start(ROUTING_KEY).await;
    stack.pagerduty.script([429, 429, 202]);

    // WHEN one trigger is forwarded
    let forwarded = stack
        .forwarder
        .handle(sns(&[("m-1", message(&payment_alert(true)))]))
        .await
        .expect("retries inside the invocation succeed");

    // THEN the same event was sent three times and accepted once
    assert_eq!(forwarded.delivered, ["m-1"]);
    let sent = stack.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|b| *b == sent[0]));
}

#[tokio::test]
async fn a_persistent_500_fails_the_invocation_so_sns_keeps_the_event() {
    // GIVEN PagerDuty is down
    let stack = Stack::start(ROUTING_KEY).await;
    stack.pagerduty.always(500);

    // WHEN a trigger is forwarded
    let error = stack
        .forwarder
        .handle(sns(&[("m-1", message(&payment_alert(true)))]))
        .await
        .expect_err("an undeliverable page must fail the invocation");

    // THEN every attempt was made and the error says what happened to which message
    assert_eq!(stack.sent().len(), 3, "PAGERDUTY_ATTEMPTS defaults to 3");
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "AlertUndeliverable");
    assert!(
        diagnostic.error_message.contains("message m-1: alert could not be delivered after 3 attempt(s): PagerDuty: HTTP 500: error: Internal server error"),
        "{}",
        diagnostic.error_message
    );
    assert!(stack.metrics.records().is_empty(), "an outage is not a rejection");
}

#[tokio::test]
async fn a_400_is_dropped_counted_and_not_retried() {
    // GIVEN PagerDuty rejects the event
    let stack = Stack::start(ROUTING_KEY).await;
    stack.pagerduty.always(400);

    // WHEN a trigger is forwarded
    let forwarded = stack
        .forwarder
        .handle(sns(&[("m-1", message(&payment_alert(true)))]))
        .await
        .expect("a rejection cannot be fixed by a retry, so the invocation succeeds");

    // THEN it was sent once, dropped and counted in the EMF metric
    assert_eq!(forwarded.rejected, ["m-1"]);
    assert_eq!(stack.sent().len(), 1);
    let records = stack.metrics.records();
    assert_eq!(records.len(), 1);
    let directive = &records[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "SyntheticMonitoring");
    assert_eq!(directive["Metrics"][0]["Name"], REJECTED_METRIC);
    assert_eq!(directive["Dimensions"], json!([["env"]]));
    assert_eq!((&records[0][REJECTED_METRIC], &records[0]["env"]), (&json!(1), &json!("prod")));
    assert_eq!(stack.secrets.reads(), 1, "a 400 that does not blame the routing key does not re-read it");
}

#[tokio::test]
async fn a_rotated_routing_key_is_re_read_and_the_page_goes_out_with_it() {
    // GIVEN a warm forwarder that already sent with the old key
    let stack = Stack::start(&routing_key_json()).await;
    stack.forwarder.handle(sns(&[("m-1", message(&payment_alert(true)))])).await.expect("forwarded");

    // WHEN the key is rotated: PagerDuty knows only the new one, and the secret holds it
    stack.pagerduty.accept_routing_keys([ROTATED_KEY]);
    stack.secrets.put(SECRET_ID, &json!({ "routing_key": ROTATED_KEY }).to_string());
    let forwarded = stack
        .forwarder
        .handle(sns(&[("m-2", message(&payment_alert(true)))]))
        .await
        .expect("a rotation is healed inside the invocation");

    // THEN the page was refused once with the old key, then delivered with the new one
    assert_eq!(forwarded.delivered, ["m-2"]);
    let keys: Vec<Value> = stack.pagerduty.requests().iter().map(|b| b["routing_key"].clone()).collect();
    assert_eq!(keys, [json!(ROUTING_KEY), json!(ROUTING_KEY), json!(ROTATED_KEY)]);
    assert_eq!(stack.secrets.reads(), 2, "the cold start's read and one re-read");
    assert!(stack.metrics.records().is_empty(), "nothing was dropped");

    // AND later pages use the new key without reading the secret again
    stack.forwarder.handle(sns(&[("m-3", message(&payment_alert(false)))])).await.expect("forwarded");
    assert_eq!(stack.pagerduty.requests()[3]["routing_key"], ROTATED_KEY);
    assert_eq!(stack.secrets.reads(), 2);
    assert!(stack.pagerduty.violations().is_empty(), "{:?}", stack.pagerduty.violations());
}

#[tokio::test]
async fn a_refused_key_the_secret_still_holds_is_dropped_after_one_re_read() {
    // GIVEN PagerDuty does not know the key, and nobody has rotated the secret yet
    let stack = Stack::start(ROUTING_KEY).await;
    stack.pagerduty.accept_routing_keys([ROTATED_KEY]);

    // WHEN two pages are forwarded
    for id in ["m-1", "m-2"] {
        let forwarded =
            stack.forwarder.handle(sns(&[(id, message(&payment_alert(true)))])).await.expect("a 400 is not retried");
        // THEN each is sent once, dropped and counted, as any rejection
        assert_eq!(forwarded.rejected, [id]);
    }
    assert_eq!(stack.sent().len(), 2, "no resend with the same key");
    assert_eq!(stack.secrets.reads(), 3, "the cold start's read and one re-read per refused page");
    let records = stack.metrics.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r[REJECTED_METRIC] == 1), "{records:?}");
}

// ------------------------------------------------------------------ stale alerts

fn at(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).expect("an RFC 3339 time")
}

#[tokio::test]
async fn a_trigger_delivered_after_a_newer_resolve_does_not_reopen_the_incident() {
    // GIVEN a run failed two minutes ago and the next one passed a minute ago
    let stack = Stack::start(ROUTING_KEY).await;
    let now = OffsetDateTime::now_utc();
    let (mut trigger, mut resolve) = (payment_alert(true), payment_alert(false));
    (trigger.timestamp, resolve.timestamp) =
        (at(now - time::Duration::minutes(2)), at(now - time::Duration::minutes(1)));

    // WHEN the resolve is delivered, and the trigger only afterwards (a Lambda retry, a redrive)
    let resolved = stack.forwarder.handle(sns(&[("m-2", message(&resolve))])).await.expect("forwarded");
    let late = stack.forwarder.handle(sns(&[("m-1", message(&trigger))])).await.expect("a stale alert is no failure");

    // THEN only the resolve reached PagerDuty, and the late trigger was dropped and counted
    assert_eq!((resolved.delivered, late.stale), (vec!["m-2".to_string()], vec!["m-1".to_string()]));
    let actions: Vec<Value> = stack.sent().iter().map(|b| b["event_action"].clone()).collect();
    assert_eq!(actions, [json!("resolve")]);
    let records = stack.metrics.records();
    assert_eq!(records.len(), 1);
    let directive = &records[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!((&directive["Metrics"][0]["Name"], &directive["Dimensions"]), (&json!(STALE_METRIC), &json!([["env"]])));
    assert_eq!((&records[0][STALE_METRIC], &records[0]["env"]), (&json!(1), &json!("prod")));

    // AND a trigger older than MAX_EVENT_AGE_SECS is dropped even for a key never sent
    let mut ancient = payment_alert(true);
    (ancient.dedup_key, ancient.timestamp) = ("synthetic/prod/auth".into(), at(now - time::Duration::hours(1)));
    let dropped = stack.forwarder.handle(sns(&[("m-0", message(&ancient))])).await.expect("forwarded");
    assert_eq!(dropped.stale, ["m-0"]);
    assert_eq!(stack.sent().len(), 1);
}

#[tokio::test]
async fn a_malformed_record_is_named_and_the_rest_of_the_batch_goes_out() {
    // GIVEN a batch with a good trigger, a message that is not JSON, one missing fields, and a
    // good resolve
    let stack = Stack::start(ROUTING_KEY).await;
    let batch = sns(&[
        ("m-good-1", message(&payment_alert(true))),
        ("m-not-json", "<html>oops</html>".into()),
        ("m-no-key", r#"{"event_action":"trigger","check":"auth"}"#.into()),
        ("m-good-2", message(&payment_alert(false))),
    ]);

    // WHEN the batch is handled
    let error = stack.forwarder.handle(batch).await.expect_err("two records are bad");

    // THEN the good ones went out, in order, and the error names the bad ones
    let actions: Vec<Value> = stack.sent().iter().map(|b| b["event_action"].clone()).collect();
    assert_eq!(actions, [json!("trigger"), json!("resolve")]);
    let text = error.to_string();
    assert!(text.starts_with("2 of 4 SNS record(s) not forwarded: message m-not-json: invalid event"), "{text}");
    assert!(
        text.contains(
            "message m-no-key: invalid event: the SNS message is not an alert message (missing field `dedup_key`"
        ),
        "{text}"
    );
    assert_eq!(Diagnostic::from(error).error_type, "InvalidEvent");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_routing_key_never_shows_in_logs_errors_or_debug() {
    // GIVEN every log line at TRACE is captured, and a PagerDuty that echoes the key in its 400
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = lambda_runtime::tracing::subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let stack = Stack::start(&routing_key_json()).await;
    stack.pagerduty.reject_with([format!("Invalid routing key {ROUTING_KEY}")]);

    // WHEN a rejection, an outage and a malformed record go through the forwarder
    stack.pagerduty.script([400]);
    let rejected = stack.forwarder.handle(sns(&[("m-1", message(&payment_alert(true)))])).await;
    stack.pagerduty.always(503);
    let failed = stack.forwarder.handle(sns(&[("m-2", message(&payment_alert(true))), ("m-3", "nope".into())])).await;

    // THEN the key was sent to PagerDuty, and nowhere else
    assert!(stack.sent().iter().all(|b| b["routing_key"] == ROUTING_KEY));
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("PagerDuty rejected the event"), "logs were captured:\n{logs}");
    assert!(logs.contains("[REDACTED]"), "the echoed key was redacted:\n{logs}");
    let error = failed.expect_err("PagerDuty is down");
    let shown = format!("{error}\n{error:?}");
    let everything = format!(
        "{logs}\n{rejected:?}\n{shown}\n{:?}\n{:?}\n{:?}",
        Diagnostic::from(error),
        stack.forwarder.config(),
        Secret::new(ROUTING_KEY.to_string()),
    );
    assert!(!everything.contains(ROUTING_KEY), "the routing key leaked:\n{everything}");
}

// ------------------------------------------------------------------ limits, against the contract

#[test]
fn events_at_pagerdutys_limits_still_validate() {
    let contract = contract();
    let config = ForwarderConfig::from_lookup(&|name| (name == "PAGERDUTY_SECRET_ID").then(|| SECRET_ID.to_string()))
        .expect("valid configuration");
    let key = Secret::new(ROUTING_KEY.to_string());

    let mut huge = payment_alert(true);
    huge.summary = "é".repeat(5_000);
    huge.dedup_key = format!("synthetic/prod/{}", "k".repeat(1_000));
    huge.steps = (0..8)
        .map(|i| step(&format!("s{i}"), Outcome::Failed, Some(Cause::Assertion), Some("x".repeat(100_000 * (i + 1)))))
        .collect();
    let mut degraded = payment_alert(true);
    (degraded.status, degraded.severity, degraded.cause) =
        (Outcome::Degraded, synthetic_checks::alert::Severity::Warning, None);
    (degraded.region, degraded.log_group, degraded.timestamp) = (None, None, "not a time".into());
    let mut resolve = huge.clone();
    resolve.event_action = synthetic_checks::alert::EventAction::Resolve;

    let mut bodies = Vec::new();
    for alert in [huge, degraded, resolve] {
        let event = Event::from_alert(&alert, &config);
        let body = event.to_body(&key).expect("an event serializes");
        assert!(body.expose().len() < 512 * 1024, "{} bytes", body.expose().len());
        let body: Value = serde_json::from_slice(body.expose()).expect("JSON");
        assert_eq!(contract.violations(&body), Vec::<String>::new(), "{body:#}");
        assert!(body["dedup_key"].as_str().unwrap().chars().count() <= 255);
        if let Some(summary) = body["payload"]["summary"].as_str() {
            assert!(summary.chars().count() <= 1024);
        }
        bodies.push(body);
    }
    let dropped = bodies[0]["payload"]["custom_details"][DROPPED_DETAILS].as_str();
    assert!(dropped.is_some_and(|d| d.contains("step 8 s7")), "the largest detail went first: {dropped:?}");
    assert_eq!(bodies[1]["payload"]["severity"], "warning");
    assert_eq!(bodies[1]["payload"]["class"], "degraded");
}

#[tokio::test]
async fn a_locked_account_is_one_monitor_account_incident_resolved_by_the_first_sign_in() {
    // GIVEN three checks whose logins were rejected, then one that signed in again
    let stack = Stack::start(&routing_key_json()).await;
    let locked = |check: &str| {
        let mut alert = payment_alert(true);
        alert.check = check.into();
        alert.dedup_key = "synthetic/prod/monitor-account".into();
        alert.cause = Some(Cause::CredentialsRejected);
        alert.severity = synthetic_checks::alert::Severity::Error;
        alert.account = Some(synthetic_checks::result::Account::Rejected);
        message(&alert)
    };
    let batch = [("m-1", locked("auth")), ("m-2", locked("products")), ("m-3", locked("payment"))];
    // A later run: an older one could not resolve what these opened (stale alerts are dropped).
    let mut signed_in = payment_alert(false);
    signed_in.account = Some(synthetic_checks::result::Account::Accepted);
    signed_in.timestamp =
        (OffsetDateTime::now_utc() + time::Duration::seconds(1)).format(&Rfc3339).expect("a timestamp");
    // WHEN the forwarder gets them
    stack.forwarder.handle(sns(&batch)).await.expect("forwarded");
    stack.forwarder.handle(sns(&[("m-4", message(&signed_in))])).await.expect("forwarded");
    // THEN PagerDuty saw one incident key for the account, error severity, and no journey page;
    // the run that signed in resolved it besides resolving its own journey
    let sent = stack.sent();
    let keys: Vec<(&str, &str)> = sent
        .iter()
        .map(|b| (b["event_action"].as_str().unwrap_or(""), b["dedup_key"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        keys,
        [
            ("trigger", "synthetic/prod/monitor-account"),
            ("trigger", "synthetic/prod/monitor-account"),
            ("trigger", "synthetic/prod/monitor-account"),
            ("resolve", "synthetic/prod/payment"),
            ("resolve", "synthetic/prod/monitor-account"),
        ]
    );
    assert!(sent[..3].iter().all(|b| b["payload"]["severity"] == "error"), "{sent:#?}");
}

//! The forwarder's library handler against a local fake Events API, through the real reqwest
//! adapter, with every body it sends validated against PagerDuty's published contract.

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use pagerduty_forwarder::event::DROPPED_DETAILS;
use pagerduty_forwarder::handler::REJECTED_METRIC;
use pagerduty_forwarder::{Adapters, Event, Forwarder, ForwarderConfig, HttpEventsApi};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use synthetic_checks::alert::AlertMessage;
use synthetic_checks::config::Origin;
use synthetic_checks::error::Cause;
use synthetic_checks::journey::{Outcome, RunResult, StepResult};
use synthetic_checks::metrics::RecordingMetrics;
use synthetic_checks::secret::{InMemorySecrets, Secret};
use synthetic_e2e::fake_pagerduty::FakePagerDuty;

/// The repository's parent directory holds `shared/` (CI clones the repo with `../shared` beside it).
const CONTRACT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/contracts/pagerduty-events-v2.openapi.json");
const ENQUEUE_BODY: &str = "#/paths/~1enqueue/post/requestBody/content/application~1json/schema";
const PAYLOAD: &str = "#/components/schemas/Payload";

const SECRET_ID: &str = "pagerduty/routing-key";
const ROUTING_KEY: &str = "R0UT1NG5ECRET0123456789abcdef012";

// ------------------------------------------------------------------ the contract

struct Contract {
    document: Value,
    body: jsonschema::Validator,
    payload: jsonschema::Validator,
}

impl Contract {
    fn load() -> Contract {
        let text =
            std::fs::read_to_string(CONTRACT).unwrap_or_else(|e| panic!("cannot read the contract at {CONTRACT}: {e}"));
        let document: Value = serde_json::from_str(&text).expect("the contract is JSON");
        // The document itself is the root, so the `#/components/...` refs inside the request
        // schema resolve within it; a root `$ref` (draft 4: siblings ignored) selects the schema.
        let validator = |pointer: &str| {
            let mut root = document.clone();
            root["$ref"] = json!(pointer);
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("{pointer} does not compile: {e}"))
        };
        Contract { body: validator(ENQUEUE_BODY), payload: validator(PAYLOAD), document }
    }

    /// The properties a schema defines. The contract does not forbid others, but PagerDuty
    /// would ignore them, so an unknown field is a bug here.
    fn properties(&self, pointer: &str) -> Vec<String> {
        self.document
            .pointer(&format!("{}/properties", pointer.trim_start_matches('#')))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn check(&self, body: &Value) {
        let errors: Vec<String> = self.body.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "request body violates the contract: {errors:?}\n{body:#}");
        assert_only_known(body, &self.properties(ENQUEUE_BODY));
        if let Some(payload) = body.get("payload") {
            let errors: Vec<String> = self.payload.iter_errors(payload).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "payload violates the contract: {errors:?}");
            assert_only_known(payload, &self.properties(PAYLOAD));
        }
        if body["event_action"] == "resolve" {
            assert_eq!(
                object_keys(body),
                ["dedup_key", "event_action", "routing_key"],
                "a resolve sends only what PagerDuty reads"
            );
        }
    }
}

fn object_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

fn assert_only_known(value: &Value, known: &[String]) {
    for key in object_keys(value) {
        assert!(known.contains(&key), "{key} is not in the contract ({known:?})");
    }
}

#[test]
fn the_contract_is_found_and_its_validator_bites() {
    let contract = Contract::load();
    let good = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d",
        "payload": {"summary": "s", "source": "h", "severity": "critical", "timestamp": "2026-11-21T10:00:00Z"}});
    contract.check(&good);
    let broken = [
        json!({"event_action": "trigger"}),
        json!({"routing_key": "k", "event_action": "explode"}),
        json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "fatal"}}),
        json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}),
        json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "yesterday"}}),
        json!({"routing_key": "k", "event_action": "trigger", "links": [{"text": "no href"}]}),
    ];
    for body in broken {
        assert!(!contract.body.is_valid(&body), "accepted {body}");
    }
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
    contract: Contract,
}

impl Stack {
    async fn start(secret_value: &str) -> Stack {
        let pagerduty = FakePagerDuty::start().await.expect("the fake Events API starts");
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
        };
        Stack { pagerduty, forwarder: Forwarder::new(config, adapters), secrets, metrics, contract: Contract::load() }
    }

    /// Every body the fake received, each checked against the contract.
    fn sent(&self) -> Vec<Value> {
        let bodies = self.pagerduty.requests();
        for body in &bodies {
            self.contract.check(body);
            assert_eq!(body["routing_key"], ROUTING_KEY);
        }
        bodies
    }
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
    let contract = Contract::load();
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
        contract.check(&body);
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

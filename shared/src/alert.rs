//! The alert message every run publishes, and the port it is published through.
//!
//! One message per run, level-triggered: `trigger` while a journey is failed or degraded,
//! `resolve` when it passes. The dedup key is stable per env and check, so a pager sees one
//! incident per broken journey and closes it by itself; subscribers that only want triggers
//! filter on the message attributes.

use crate::config::Origin;
use crate::error::{Cause, CheckError};
use crate::journey::RetryPolicy;
use crate::result::{Account, Outcome, RunResult, StepResult};
use crate::text::{one_line, truncate};
use async_trait::async_trait;
use lambda_runtime::tracing;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const SUMMARY_MAX_CHARS: usize = 1024;
/// The longest one publish attempt may take (the SNS adapter's operation attempt timeout).
pub const PUBLISH_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The longest delivering one alert can take under `policy`: every attempt at its timeout, and
/// every backoff between them. The run keeps exactly this much of the Lambda deadline back, and
/// `infra/` derives the functions' timeouts from the same arithmetic (its tests check it).
pub fn publish_budget(policy: RetryPolicy) -> std::time::Duration {
    let attempts = policy.attempts.max(1);
    let backoffs: std::time::Duration = (1..attempts).map(|retry| policy.delay_before(retry)).sum();
    PUBLISH_ATTEMPT_TIMEOUT * attempts + backoffs
}
pub const SUBJECT_MAX_CHARS: usize = 100;
/// Bytes of a typical alert as JSON: a four-step run with one error is under 1.5 KB.
const ALERT_JSON_CAPACITY: usize = 1536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    Trigger,
    Resolve,
}

/// PagerDuty's severities, so the forwarder passes them through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    /// The monitor's own account is rejected: it needs a person, but nothing is known to be down.
    Error,
    Warning,
    Info,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub event_action: EventAction,
    /// `synthetic/<env>/<check>`.
    pub dedup_key: String,
    pub check: String,
    pub env: String,
    pub status: Outcome,
    pub cause: Option<Cause>,
    pub severity: Severity,
    pub summary: String,
    pub target: String,
    pub run_id: String,
    /// RFC 3339.
    pub timestamp: String,
    pub steps: Vec<StepResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Whether the run signed in: an accepted account resolves the monitor-account incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// The run's W3C trace id, so the page can link to the backend's trace of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

pub fn dedup_key(env: &str, check: &str) -> String {
    format!("synthetic/{env}/{check}")
}

/// The one incident for a rejected synthetic account, whichever checks it blocks.
pub const MONITOR_ACCOUNT: &str = "monitor-account";

impl AlertMessage {
    /// The run's alert. A run whose account was rejected says nothing about its journey: it
    /// neither triggers nor resolves the journey's incident, and instead triggers the shared
    /// monitor-account incident (severity `error`), so a locked account is one page, not one
    /// per check that signs in.
    pub fn from_run(run: &RunResult, origin: &Origin) -> Self {
        let (event_action, severity) = match run.status {
            Outcome::Passed => (EventAction::Resolve, Severity::Info),
            Outcome::Degraded => (EventAction::Trigger, Severity::Warning),
            Outcome::Failed if run.cause == Some(Cause::CredentialsRejected) => (EventAction::Trigger, Severity::Error),
            Outcome::Failed => (EventAction::Trigger, Severity::Critical),
        };
        let incident = match run.cause {
            Some(Cause::CredentialsRejected) => MONITOR_ACCOUNT,
            _ => run.check.as_str(),
        };
        AlertMessage {
            event_action,
            dedup_key: dedup_key(&run.env, incident),
            check: run.check.clone(),
            env: run.env.clone(),
            status: run.status,
            cause: run.cause,
            severity,
            summary: summary(run),
            target: run.target.clone(),
            run_id: run.run_id.clone(),
            timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            steps: run.steps.clone(),
            function_name: origin.function_name.clone(),
            log_group: origin.log_group.clone(),
            log_stream: origin.log_stream.clone(),
            region: origin.region.clone(),
            account: run.account,
            trace_id: run.trace_id.clone(),
        }
    }

    /// The alert as the JSON the SNS message carries, written into a buffer sized for a whole
    /// alert rather than one regrown field by field.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut json = Vec::with_capacity(ALERT_JSON_CAPACITY);
        serde_json::to_writer(&mut json, self)?;
        String::from_utf8(json).map_err(serde::ser::Error::custom)
    }

    /// SNS subjects must be ASCII without control characters, at most 100 chars.
    pub fn subject(&self) -> String {
        let text = match (self.status, self.cause, self.steps.iter().find(|s| s.outcome == self.status)) {
            (Outcome::Passed, _, _) => format!("[{}] {} passed", self.env, self.check),
            (status, Some(cause), Some(step)) => {
                format!("[{}] {} {}: {} at {}", self.env, self.check, status.as_str().to_uppercase(), cause, step.name)
            }
            (status, _, _) => format!("[{}] {} {}", self.env, self.check, status.as_str().to_uppercase()),
        };
        let ascii: String = text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        match ascii.len() > SUBJECT_MAX_CHARS {
            true => format!("{}...", &ascii[..SUBJECT_MAX_CHARS - 3]),
            false => ascii,
        }
    }

    /// SNS message attributes subscribers filter on: human channels take `event_action =
    /// trigger` only, the pager takes everything.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        vec![
            ("check", self.check.clone()),
            ("status", serde_name(&self.status)),
            ("event_action", serde_name(&self.event_action)),
            ("severity", serde_name(&self.severity)),
        ]
    }
}

/// The serde spelling of a unit variant (`trigger`, `critical`), so the attributes and the JSON
/// body can never disagree.
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// One line naming the check, the deciding step and its cause, at most 1024 chars.
fn summary(run: &RunResult) -> String {
    let prefix = format!("[{}] {}", run.env, run.check);
    let text = match run.deciding_step() {
        None => {
            format!("{prefix} passed: {} step(s) OK in {} ms against {}", run.steps.len(), run.duration_ms, run.target)
        }
        Some(step) if step.cause == Some(Cause::CredentialsRejected) => {
            let error = step.error.as_deref().unwrap_or("no detail");
            format!(
                "[{}] monitor account rejected at {} step {}, which blocks the {} check: {error}",
                run.env, run.check, step.name, run.check
            )
        }
        Some(step) => {
            let cause = step.cause.map_or("unknown", Cause::as_str);
            let error = step.error.as_deref().unwrap_or("no detail");
            let mut text =
                format!("{prefix} {} at step {} ({cause}): {error}", run.status.as_str().to_uppercase(), step.name);
            // A leaked sandbox write must not hide behind the failure that came first.
            if let Some(cleanup) =
                run.steps.iter().find(|s| s.cause == Some(Cause::CleanupFailed) && s.name != step.name)
            {
                text.push_str(&format!("; also cleanup_failed at {}", cleanup.name));
            }
            text
        }
    };
    truncate(&one_line(&text), SUMMARY_MAX_CHARS)
}

/// A failed publish, classified so only what can succeed later is retried.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishError {
    /// Throttling, a 5xx, a timeout or a network error.
    Retryable(String),
    /// Anything a retry cannot fix: missing topic, denied access, invalid message.
    Permanent(String),
}

/// Port: where alerts go (SNS in Lambda, memory in unit tests).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn publish(&self, alert: &AlertMessage) -> Result<(), PublishError>;
}

/// Publishes with backoff. An alert that still cannot be delivered becomes an invocation error,
/// so Lambda's retry and on-failure destination keep it rather than dropping it. The error
/// carries the alert's summary, so the on-failure record says what the page would have said.
pub async fn deliver(notifier: &dyn Notifier, alert: &AlertMessage, policy: RetryPolicy) -> Result<u32, CheckError> {
    publish_with_retries(policy, || notifier.publish(alert)).await.map_err(|(attempts, error)| {
        let (PublishError::Retryable(reason) | PublishError::Permanent(reason)) = error;
        CheckError::AlertUndeliverable {
            attempts,
            reason: format!("{reason}; the undelivered alert: {}", alert.summary),
        }
    })
}

/// Calls `publish` until it succeeds, fails permanently or has used `policy.attempts`, backing
/// off between retries. Returns the attempts made; on failure with the last error, so a caller
/// can tell a rejection (nothing to retry) from an outage (keep the message).
pub async fn publish_with_retries<F, Fut>(policy: RetryPolicy, mut publish: F) -> Result<u32, (u32, PublishError)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), PublishError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match publish().await {
            Ok(()) => return Ok(attempt),
            Err(PublishError::Retryable(reason)) if attempt < policy.attempts => {
                tracing::warn!(attempt, %reason, "publish failed, retrying");
                tokio::time::sleep(policy.delay_before(attempt)).await;
            }
            Err(error) => return Err((attempt, error)),
        }
    }
}

/// In-memory fake of a delivery port, for unit tests: records what was delivered and can be
/// told to fail first. [`RecordingNotifier`] here; the PagerDuty forwarder fakes its Events API
/// with the same type.
pub struct Recording<T> {
    delivered: Mutex<Vec<T>>,
    failures: Mutex<VecDeque<PublishError>>,
}

impl<T> Default for Recording<T> {
    fn default() -> Self {
        Recording { delivered: Mutex::new(Vec::new()), failures: Mutex::new(VecDeque::new()) }
    }
}

impl<T: Clone> Recording<T> {
    /// The next deliveries fail with these, in order, before delivering succeeds again.
    pub fn fail_with(&self, failures: impl IntoIterator<Item = PublishError>) {
        if let Ok(mut queue) = self.failures.lock() {
            queue.extend(failures);
        }
    }

    pub fn delivered(&self) -> Vec<T> {
        self.delivered.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Fails with the next scripted failure, or records `item`.
    pub fn deliver(&self, item: T) -> Result<(), PublishError> {
        if let Some(failure) = self.failures.lock().ok().and_then(|mut q| q.pop_front()) {
            return Err(failure);
        }
        if let Ok(mut delivered) = self.delivered.lock() {
            delivered.push(item);
        }
        Ok(())
    }
}

pub type RecordingNotifier = Recording<AlertMessage>;

#[async_trait]
impl Notifier for Recording<AlertMessage> {
    async fn publish(&self, alert: &AlertMessage) -> Result<(), PublishError> {
        self.deliver(alert.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(name: &str, outcome: Outcome, cause: Option<Cause>, error: Option<&str>) -> StepResult {
        StepResult {
            name: name.into(),
            outcome,
            duration_ms: 42,
            status: Some(500),
            attempts: 2,
            cause,
            error: error.map(str::to_string),
        }
    }

    fn run(status: Outcome, cause: Option<Cause>, steps: Vec<StepResult>) -> RunResult {
        RunResult {
            check: "payment".into(),
            env: "prod".into(),
            target: "https://shop.example.com/".into(),
            run_id: "run-7".into(),
            started_at: "2026-11-21T10:00:00Z".into(),
            duration_ms: 300,
            status,
            cause,
            steps,
            account: None,
            certificate: None,
            trace_id: None,
        }
    }

    fn failed_run() -> RunResult {
        run(
            Outcome::Failed,
            Some(Cause::HttpStatus),
            vec![
                step("login", Outcome::Passed, None, None),
                step("payment_create", Outcome::Failed, Some(Cause::HttpStatus), Some("HTTP 500, expected 200 or 201")),
            ],
        )
    }

    #[test]
    fn failed_run_triggers_a_critical_alert_with_every_documented_field() {
        let origin = Origin {
            function_name: Some("check-payment".into()),
            log_group: Some("/aws/lambda/check-payment".into()),
            ..Origin::default()
        };
        let alert = AlertMessage::from_run(&failed_run(), &origin);
        let json = serde_json::to_value(&alert).unwrap();
        for field in [
            "event_action",
            "dedup_key",
            "check",
            "env",
            "status",
            "cause",
            "severity",
            "summary",
            "target",
            "run_id",
            "timestamp",
            "steps",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["event_action"], "trigger");
        assert_eq!(json["dedup_key"], "synthetic/prod/payment");
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["status"], "failed");
        assert_eq!(json["cause"], "http_status");
        assert_eq!(json["function_name"], "check-payment");
        assert!(time::OffsetDateTime::parse(json["timestamp"].as_str().unwrap(), &Rfc3339).is_ok());
        assert_eq!(
            alert.summary,
            "[prod] payment FAILED at step payment_create (http_status): HTTP 500, expected 200 or 201"
        );
    }

    #[test]
    fn degraded_is_a_warning_trigger_and_passed_a_resolve() {
        let degraded = run(
            Outcome::Degraded,
            Some(Cause::Timeout),
            vec![step(
                "products",
                Outcome::Degraded,
                Some(Cause::Timeout),
                Some("no complete response within 2000 ms"),
            )],
        );
        let alert = AlertMessage::from_run(&degraded, &Origin::default());
        assert_eq!((alert.event_action, alert.severity), (EventAction::Trigger, Severity::Warning));

        let passed = run(Outcome::Passed, None, vec![step("login", Outcome::Passed, None, None)]);
        let alert = AlertMessage::from_run(&passed, &Origin::default());
        assert_eq!((alert.event_action, alert.severity), (EventAction::Resolve, Severity::Info));
        assert_eq!(alert.dedup_key, "synthetic/prod/payment", "trigger and resolve share the key");
        assert!(alert.summary.starts_with("[prod] payment passed"));
        assert_eq!(alert.subject(), "[prod] payment passed");
    }

    #[test]
    fn a_rejected_account_is_one_monitor_account_incident_not_a_journey_page() {
        let error = CheckError::CredentialsRejected { status: 401 }.to_string();
        let mut rejected = run(
            Outcome::Failed,
            Some(Cause::CredentialsRejected),
            vec![step("login", Outcome::Failed, Some(Cause::CredentialsRejected), Some(&error))],
        );
        rejected.account = Some(Account::Rejected);
        let alert = AlertMessage::from_run(&rejected, &Origin::default());
        assert_eq!(alert.dedup_key, "synthetic/prod/monitor-account", "every check shares it");
        assert_eq!((alert.event_action, alert.severity), (EventAction::Trigger, Severity::Error));
        assert_eq!(alert.account, Some(Account::Rejected));
        assert!(alert.summary.contains("blocks the payment check"), "{}", alert.summary);
        assert!(alert.summary.contains("not a target outage"), "{}", alert.summary);
        assert_eq!(serde_json::to_value(alert.severity).unwrap(), "error", "a PagerDuty severity");
    }

    #[test]
    fn a_leaked_cleanup_is_named_even_when_another_step_failed_first() {
        let leaked = run(
            Outcome::Failed,
            Some(Cause::HttpStatus),
            vec![
                step("payment_get", Outcome::Failed, Some(Cause::HttpStatus), Some("HTTP 500")),
                step("payment_refund", Outcome::Failed, Some(Cause::CleanupFailed), Some("cleanup failed")),
            ],
        );
        let summary = AlertMessage::from_run(&leaked, &Origin::default()).summary;
        assert!(summary.ends_with("; also cleanup_failed at payment_refund"), "{summary}");
    }

    #[test]
    fn summary_is_one_line_of_at_most_1024_chars_and_subject_at_most_100() {
        let long = format!("line one\nline two {}", "é".repeat(3000));
        let mut huge = failed_run();
        huge.env = "a-very-long-environment-name-that-goes-on-and-on-and-on-for-quite-a-while".into();
        huge.steps[1].error = Some(long);
        huge.steps[1].name = "x".repeat(80);
        let alert = AlertMessage::from_run(&huge, &Origin::default());
        assert!(alert.summary.chars().count() <= SUMMARY_MAX_CHARS);
        assert!(!alert.summary.contains('\n'));
        let subject = alert.subject();
        assert!(subject.len() <= SUBJECT_MAX_CHARS, "{}", subject.len());
        assert!(subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }

    #[test]
    fn attributes_match_the_body() {
        let alert = AlertMessage::from_run(&failed_run(), &Origin::default());
        assert_eq!(
            alert.attributes(),
            vec![
                ("check", "payment".to_string()),
                ("status", "failed".to_string()),
                ("event_action", "trigger".to_string()),
                ("severity", "critical".to_string()),
            ]
        );
        assert_eq!(alert.subject(), "[prod] payment FAILED: http_status at payment_create");
    }

    #[test]
    fn the_sns_message_is_the_alert_as_json_and_a_failed_four_step_run_fits_the_first_buffer() {
        let mut four = failed_run();
        four.steps.insert(2, step("payment_get", Outcome::Passed, None, None));
        four.steps.push(step("payment_refund", Outcome::Passed, None, None));
        let origin = Origin {
            function_name: Some("check-payment".into()),
            log_group: Some("/aws/lambda/check-payment".into()),
            log_stream: Some("2026/11/21/[$LATEST]0123456789abcdef0123456789abcdef".into()),
            region: Some("eu-central-1".into()),
        };
        let alert = AlertMessage::from_run(&four, &origin);
        let json = alert.to_json().unwrap();
        assert_eq!(json, serde_json::to_string(&alert).unwrap());
        assert!(json.len() <= ALERT_JSON_CAPACITY, "{} bytes", json.len());
    }

    const QUICK: RetryPolicy = RetryPolicy { attempts: 4, backoff: Duration::from_millis(1) };

    #[tokio::test]
    async fn deliver_retries_transient_failures_then_publishes_once() {
        let notifier = RecordingNotifier::default();
        notifier.fail_with([PublishError::Retryable("Throttling".into()), PublishError::Retryable("HTTP 503".into())]);
        let alert = AlertMessage::from_run(&failed_run(), &Origin::default());
        assert_eq!(deliver(&notifier, &alert, QUICK).await.unwrap(), 3);
        assert_eq!(notifier.delivered().len(), 1);
    }

    #[tokio::test]
    async fn undeliverable_alert_becomes_an_invocation_error() {
        let notifier = RecordingNotifier::default();
        notifier.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 500".into()), 10));
        let alert = AlertMessage::from_run(&failed_run(), &Origin::default());
        let error = deliver(&notifier, &alert, QUICK).await.unwrap_err();
        assert_eq!(error.error_type(), "AlertUndeliverable");
        let reason = format!("HTTP 500; the undelivered alert: {}", alert.summary);
        assert_eq!(error, CheckError::AlertUndeliverable { attempts: 4, reason });
        assert!(notifier.delivered().is_empty());
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let notifier = RecordingNotifier::default();
        notifier.fail_with([PublishError::Permanent("NotFound: Topic does not exist".into())]);
        let alert = AlertMessage::from_run(&failed_run(), &Origin::default());
        let error = deliver(&notifier, &alert, QUICK).await.unwrap_err();
        assert!(matches!(error, CheckError::AlertUndeliverable { attempts: 1, .. }));
    }
}

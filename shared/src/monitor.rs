//! The Lambda handler: one event in; one run, its metrics and exactly one alert out.
//!
//! A failing check is a successful invocation (the monitor worked). The invocation errors only
//! when the monitor itself broke: misconfiguration, an unreadable secret, an undeliverable alert.

use crate::alert::{AlertMessage, Notifier, deliver, publish_budget};
use crate::aws::{self, secrets_manager::SecretsManagerSource, sns::SnsNotifier};
use crate::config::MonitorConfig;
use crate::error::Cause;
use crate::error::CheckError;
use crate::http::{Certificate, HttpTarget, ReqwestTarget};
use crate::journey::file::JourneyDef;
use crate::journey::runner;
use crate::journey::{RunSetup, StepRecorder};
use crate::metrics::{MetricsSink, StdoutEmf, emf_records};
use crate::result::{Outcome, RunResult};
use crate::secret::{CredentialStore, SecretSource};
use lambda_runtime::{LambdaEvent, tracing};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The adapters behind the ports, chosen by whoever builds the monitor.
pub struct Adapters {
    pub http: Arc<dyn HttpTarget>,
    pub secrets: Arc<dyn SecretSource>,
    pub notifier: Arc<dyn Notifier>,
    pub metrics: Arc<dyn MetricsSink>,
}

pub struct Monitor {
    config: MonitorConfig,
    http: Arc<dyn HttpTarget>,
    credentials: Option<Arc<CredentialStore>>,
    notifier: Arc<dyn Notifier>,
    metrics: Arc<dyn MetricsSink>,
}

impl Monitor {
    pub fn new(config: MonitorConfig, adapters: Adapters) -> Self {
        let credentials = config
            .credentials_secret_id
            .as_ref()
            .map(|id| Arc::new(CredentialStore::new(adapters.secrets.clone(), id, config.secret_ttl)));
        Monitor { config, http: adapters.http, credentials, notifier: adapters.notifier, metrics: adapters.metrics }
    }

    /// Cold start: the journey of `CHECK_NAME` from the checks folder packaged beside the
    /// function, verified against `CHECK_JOURNEY_SHA256`; configuration from the environment;
    /// then the SDK and HTTP clients, once.
    pub async fn from_env() -> Result<Self, CheckError> {
        let config = crate::catalog::bundled_journey(&|name| std::env::var(name).ok())
            .and_then(MonitorConfig::from_env)
            .inspect_err(|error| tracing::error!(error_type = error.error_type(), %error, "cold start failed"))?;
        // `from_env` requires the topic; this only guards against a config built another way.
        let topic_arn = config
            .alert_topic_arn
            .clone()
            .ok_or_else(|| CheckError::Misconfigured("ALERT_TOPIC_ARN is not set".into()))?;
        let sdk = aws::sdk_config().await;
        let adapters = Adapters {
            http: Arc::new(ReqwestTarget::new(&config.http)?),
            secrets: Arc::new(SecretsManagerSource::new(&sdk)),
            notifier: Arc::new(SnsNotifier::new(&sdk, &topic_arn)),
            metrics: Arc::new(StdoutEmf),
        };
        Ok(Monitor::new(config, adapters))
    }

    /// Uses `store` for the synthetic account instead of this monitor's own cache, so monitors run
    /// side by side (the CLI's `--check all`) read the secret once between them.
    pub fn with_credentials(mut self, store: Option<Arc<CredentialStore>>) -> Self {
        self.credentials = store;
        self
    }

    /// The credential cache this monitor reads the synthetic account through, to share it.
    pub fn credentials(&self) -> Option<Arc<CredentialStore>> {
        self.credentials.clone()
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Accepts the EventBridge scheduled event, or `{"target_base_url": "..."}` to run once
    /// against another (allowed) host, such as a canary after a deploy.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<RunResult, CheckError> {
        let target_override = target_override(&event.payload)?;
        let reserve = publish_budget(self.config.alert_retry);
        if let Some(left) = time_to_deadline(event.context.deadline) {
            enough_time(&self.config, left, reserve)
                .inspect_err(|error| tracing::error!(error_type = error.error_type(), %error, "monitor failure"))?;
        }
        let deadline = deadline_from_epoch_ms(event.context.deadline, reserve);
        crate::logging::scrubbing_panics(self.run(target_override, deadline)).await
    }

    pub async fn run(&self, target_override: Option<&str>, deadline: Option<Instant>) -> Result<RunResult, CheckError> {
        let config = &self.config;
        let target = config.target_for(target_override)?;
        let mut journey = StepRecorder::new(RunSetup {
            http: self.http.clone(),
            check: config.journey.check.clone(),
            env: config.env_name.clone(),
            target,
            run_id: uuid::Uuid::new_v4().to_string(),
            synthetic_header: config.synthetic_header.clone(),
            retry: config.retry,
            max_redirects: config.max_redirects,
            deadline,
        });
        if let Err(error) = runner::run(&config.journey, &mut journey, self.credentials.as_deref()).await {
            tracing::error!(check = %config.journey.check, error_type = error.error_type(), %error, "monitor failure");
            return Err(error);
        }
        if let Some((step, certificate)) = journey.certificate()
            && let Some(finding) = certificate_finding(certificate, config.cert_min_days)
        {
            let step = step.to_string();
            journey.degrade(&step, Cause::Tls, &finding);
        }
        let run = journey.finish();
        if let Some(error) = monitor_failure(&run) {
            // The result is logged whole (its texts are scrubbed), so nothing of the run is lost;
            // it is neither a page nor a data point of the target's SLO.
            let result = serde_json::to_string(&run).unwrap_or_default();
            tracing::error!(check = %run.check, run_id = %run.run_id, error_type = error.error_type(), %error, %result, "monitor failure");
            return Err(error);
        }
        for record in emf_records(&run, &config.metrics_namespace) {
            self.metrics.emit_json(&record);
        }
        let alert = AlertMessage::from_run(&run, &config.origin);
        let attempts = deliver(self.notifier.as_ref(), &alert, config.alert_retry).await.inspect_err(
            |error| tracing::error!(check = %run.check, run_id = %run.run_id, %error, "alert lost unless retried"),
        )?;
        tracing::info!(
            check = %run.check,
            env = %run.env,
            status = run.status.as_str(),
            cause = run.cause.map(|c| c.as_str()),
            duration_ms = run.duration_ms,
            run_id = %run.run_id,
            publish_attempts = attempts,
            "run finished"
        );
        Ok(run)
    }
}

/// A run whose every failure is the monitor's own (`misconfigured`: a secret re-read mid-journey
/// that lacks a field, a request the client refuses to build) says nothing about the target. It
/// ends the invocation with an error, after its cleanup steps ran, so Lambda's retry, on-failure
/// destination and `Errors` alarm take it, as they do a misconfiguration found before the run.
/// A run where the target failed as well (a `cleanup_failed` among them) still pages.
fn monitor_failure(run: &RunResult) -> Option<CheckError> {
    let mut failed = run.steps.iter().filter(|s| s.outcome == Outcome::Failed).peekable();
    failed.peek()?;
    let mut reasons = Vec::new();
    for step in failed {
        if step.cause != Some(Cause::Misconfigured) {
            return None;
        }
        reasons.push(format!("step {}: {}", step.name, step.error.as_deref().unwrap_or("misconfigured")));
    }
    Some(CheckError::Misconfigured(reasons.join("; ")))
}

/// The one place a certificate close to expiry is judged: once per run, after the journey, on
/// the certificate of the run's first answer over HTTPS (every answer of a run comes from the same
/// target). Below `min_days` whole days left, the step that answer belongs to is `degraded`
/// with cause `tls`, so the alert's summary names the days left and the certificate. An expired or
/// untrusted certificate never gets here: the handshake refuses it, and that step fails with `tls`.
fn certificate_finding(certificate: &Certificate, min_days: u32) -> Option<String> {
    if certificate.days_left >= i64::from(min_days) {
        return None;
    }
    let when = match certificate.days_left {
        ..=0 => "within a day".to_string(),
        1 => "in 1 day".to_string(),
        days => format!("in {days} days"),
    };
    Some(format!(
        "the certificate {} expires {when} (not after {}), below CERT_MIN_DAYS ({min_days} days): renew it before \
         it takes the service down",
        certificate.subject, certificate.not_after
    ))
}

fn target_override(event: &Value) -> Result<Option<&str>, CheckError> {
    match event {
        Value::Null => Ok(None),
        Value::Object(fields) => match fields.get("target_base_url") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(url)) => Ok(Some(url)),
            Some(_) => Err(CheckError::InvalidEvent("target_base_url must be a string".into())),
        },
        _ => Err(CheckError::InvalidEvent(
            "expected an EventBridge scheduled event or {\"target_base_url\": \"https://...\"}".into(),
        )),
    }
}

/// The Lambda deadline as an `Instant`, less `reserve`: the time the alert may need, so a run
/// that used all its time can still publish. `0` (no deadline, as in unit tests) means none.
pub fn deadline_from_epoch_ms(deadline_ms: u64, reserve: Duration) -> Option<Instant> {
    Some(Instant::now() + time_to_deadline(deadline_ms)?.saturating_sub(reserve))
}

/// The time left before the Lambda deadline (epoch milliseconds); `None` for no deadline (`0`).
fn time_to_deadline(deadline_ms: u64) -> Option<Duration> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    (deadline_ms != 0).then(|| Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// Kept on top of a run's worst case and the alert's share in a function's timeout: the cold
/// start and the first read of the secret.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(3);
/// The longest timeout a check function may have: Lambda retries a failed asynchronous run after
/// about a minute, and that retry (60 s + the timeout + 60 s of slack) must start within the
/// 300 s event age the template gives every schedule.
pub const MAX_TIMEOUT_SECONDS: u32 = 180;

/// The timeout, in seconds, a check function running `journey` is deployed with: the journey's
/// worst case and the alert's publish reserve as this engine enforces them at their defaults
/// (the ones [`enough_time`] and the run's deadline use), plus a margin, rounded up to the next
/// 5 s. The one place the deploy settings learn how long a run may take.
pub fn timeout_seconds(journey: &JourneyDef) -> u32 {
    let need = runner::worst_case(journey, crate::config::DEFAULT_RETRY)
        + publish_budget(crate::config::DEFAULT_ALERT_RETRY)
        + TIMEOUT_MARGIN;
    let seconds = need.as_secs() as u32 + 1;
    seconds.div_ceil(5) * 5
}

/// Refuses a run that could not send a single normal step: the function's timeout leaves less
/// than the alert's share (`reserve`) and the longest cleanup budget (kept back for the cleanup
/// steps) plus one attempt. Run anyway, every step would be `not sent` and a healthy target
/// paged as `timeout`; it is the monitor's misconfiguration, named, and nothing is sent.
fn enough_time(config: &MonitorConfig, left: Duration, reserve: Duration) -> Result<(), CheckError> {
    use crate::journey::exchange::MIN_ATTEMPT;
    let ms = |d: Duration| d.as_millis();
    if left < reserve + MIN_ATTEMPT {
        return Err(CheckError::Misconfigured(format!(
            "the function's timeout leaves {} ms, but publishing the alert keeps {} ms back \
             (ALERT_PUBLISH_ATTEMPTS {}, ALERT_PUBLISH_BACKOFF_MS {}): raise the function's Timeout or lower \
             ALERT_PUBLISH_ATTEMPTS; nothing was sent to the target",
            ms(left),
            ms(reserve),
            config.alert_retry.attempts,
            ms(config.alert_retry.backoff)
        )));
    }
    let for_steps = left - reserve;
    if let Some(cleanup) = runner::longest_cleanup(&config.journey)
        && for_steps < cleanup.budget.fail_after + MIN_ATTEMPT
    {
        return Err(CheckError::Misconfigured(format!(
            "the cleanup step {} keeps {} ms back for itself (its fail_after_ms, or {}), but the function's \
             timeout leaves only {} ms after the alert's {} ms, so no other step could be sent: lower {} or raise \
             the function's Timeout; nothing was sent to the target",
            cleanup.name,
            ms(cleanup.budget.fail_after),
            crate::config::step_variable(&cleanup.name, "FAIL_AFTER_MS"),
            ms(for_steps),
            ms(reserve),
            crate::config::step_variable(&cleanup.name, "FAIL_AFTER_MS"),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventAction, PublishError, RecordingNotifier};
    use crate::checks::Check;
    use crate::error::Cause;
    use crate::http::Auth;
    use crate::http::ScriptedTarget;
    use crate::metrics::RecordingMetrics;
    use crate::secret::InMemorySecrets;
    use lambda_runtime::Context;
    use serde_json::json;

    const ACCOUNT: &str = r#"{"email":"mon@example.com","password":"pw-1","payment_token":"tok_test_4242"}"#;

    struct Harness {
        monitor: Monitor,
        target: Arc<ScriptedTarget>,
        secrets: Arc<InMemorySecrets>,
        notifier: Arc<RecordingNotifier>,
        metrics: Arc<RecordingMetrics>,
    }

    fn harness(check: Check, target: ScriptedTarget) -> Harness {
        let vars = [
            ("TARGET_BASE_URL", "http://shop.test"),
            ("CHECK_ENV", "prod"),
            ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:000000000000:alerts"),
            ("CREDENTIALS_SECRET_ID", "synthetic/account"),
            ("RETRY_BACKOFF_MS", "1"),
            ("ALERT_PUBLISH_BACKOFF_MS", "1"),
            ("TARGET_OVERRIDE_ALLOWED_HOSTS", "shop.test,canary.shop.test"),
        ];
        let config = MonitorConfig::from_lookup(check.journey(), &|k| {
            vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
        })
        .unwrap();
        let target = Arc::new(target);
        let secrets = Arc::new(InMemorySecrets::with("synthetic/account", ACCOUNT));
        let notifier = Arc::new(RecordingNotifier::default());
        let metrics = Arc::new(RecordingMetrics::default());
        let adapters = Adapters {
            http: target.clone(),
            secrets: secrets.clone(),
            notifier: notifier.clone(),
            metrics: metrics.clone(),
        };
        Harness { monitor: Monitor::new(config, adapters), target, secrets, notifier, metrics }
    }

    fn scheduled_event() -> LambdaEvent<Value> {
        let event = json!({
            "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-21T10:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/check-health"], "detail": {}
        });
        LambdaEvent::new(event, Context::default())
    }

    const TOKEN: &str = r#"{"access_token":"t-1"}"#;

    fn paths(target: &ScriptedTarget) -> Vec<String> {
        target.requests().iter().map(|r| format!("{:?} {}", r.method, r.url.path())).collect()
    }

    #[tokio::test]
    async fn healthy_run_returns_the_result_publishes_one_resolve_and_emits_metrics() {
        let h = harness(Check::Health, ScriptedTarget::default().then(200, r#"{"status":"ok"}"#));
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!(run.status, Outcome::Passed);
        let published = h.notifier.delivered();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].event_action, EventAction::Resolve);
        assert_eq!(h.metrics.records().len(), 2, "one run record and one step record");
    }

    #[tokio::test]
    async fn failing_check_is_a_successful_invocation_with_one_trigger() {
        let h = harness(Check::Health, ScriptedTarget::default().then(503, "down").then(503, "down"));
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)));
        let published = h.notifier.delivered();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].event_action, EventAction::Trigger);
        assert_eq!(published[0].steps[0].attempts, 2);
    }

    #[tokio::test]
    async fn undeliverable_alert_fails_the_invocation() {
        let h = harness(Check::Health, ScriptedTarget::default().then(200, "OK"));
        h.notifier.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 500".into()), 4));
        let error = h.monitor.handle(scheduled_event()).await.unwrap_err();
        assert_eq!(error.error_type(), "AlertUndeliverable");
    }

    #[tokio::test]
    async fn event_can_override_the_target_within_the_allowed_hosts() {
        let h = harness(Check::Health, ScriptedTarget::default().then(200, "OK"));
        let event = LambdaEvent::new(json!({"target_base_url": "http://canary.shop.test/v2"}), Context::default());
        let run = h.monitor.handle(event).await.unwrap();
        assert_eq!(run.target, "http://canary.shop.test/v2");
        assert_eq!(h.target.requests()[0].url.as_str(), "http://canary.shop.test/v2/health");

        let foreign = LambdaEvent::new(json!({"target_base_url": "http://evil.test"}), Context::default());
        assert_eq!(h.monitor.handle(foreign).await.unwrap_err().error_type(), "InvalidEvent");
        for bad in [json!({"target_base_url": 5}), json!("run please"), json!([1])] {
            let error = h.monitor.handle(LambdaEvent::new(bad, Context::default())).await.unwrap_err();
            assert_eq!(error.error_type(), "InvalidEvent");
        }
        assert_eq!(h.target.requests().len(), 1, "refused events send nothing");
        assert_eq!(h.notifier.delivered().len(), 1);
    }

    #[tokio::test]
    async fn unreadable_secret_is_a_monitor_failure_not_an_alert() {
        let h = harness(Check::Auth, ScriptedTarget::default());
        h.secrets.put("synthetic/account", "{broken");
        let error = h.monitor.handle(scheduled_event()).await.unwrap_err();
        assert_eq!(error.error_type(), "Misconfigured");
        assert!(h.target.requests().is_empty());
        assert!(h.notifier.delivered().is_empty());
    }

    #[tokio::test]
    async fn a_secret_rotated_into_one_lacking_a_field_is_a_monitor_failure_not_a_page() {
        // GIVEN a login rejected, and the secret re-read after it rotated into one without the
        // password
        let h = harness(Check::Auth, ScriptedTarget::default().then(401, r#"{"error":"invalid_credentials"}"#));
        h.monitor.credentials.as_ref().unwrap().get().await.unwrap();
        h.secrets.put("synthetic/account", r#"{"email":"mon@example.com"}"#);
        // WHEN the check runs
        let error = h.monitor.handle(scheduled_event()).await.unwrap_err();
        // THEN the invocation fails naming the field; the target is neither paged nor counted
        assert_eq!(error.error_type(), "Misconfigured");
        assert!(error.to_string().contains("\"password\""), "{error}");
        assert!(h.notifier.delivered().is_empty());
        assert!(h.metrics.records().is_empty());
    }

    #[tokio::test]
    async fn rejected_account_refreshes_the_secret_once_and_heals_a_rotation() {
        let target = ScriptedTarget::default().then(401, r#"{"error":"invalid_credentials"}"#).then(200, TOKEN);
        let h = harness(Check::Auth, target);
        h.monitor.credentials.as_ref().unwrap().get().await.unwrap();
        h.secrets.put("synthetic/account", r#"{"email":"mon@example.com","password":"pw-2"}"#);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!(run.status, Outcome::Passed);
        assert_eq!(run.steps.len(), 1);
        assert_eq!(run.steps[0].attempts, 2);
        let body = h.target.requests()[1].body.clone().unwrap();
        assert!(String::from_utf8_lossy(body.bytes.expose()).contains("pw-2"));
    }

    #[tokio::test]
    async fn monitors_given_one_credential_store_read_the_secret_once() {
        let auth = harness(Check::Auth, ScriptedTarget::default().then(200, TOKEN));
        let products =
            harness(Check::Products, ScriptedTarget::default().then(200, TOKEN).then(200, r#"{"data":[1]}"#));
        let shared = auth.monitor.credentials.clone();
        let products_monitor = products.monitor.with_credentials(shared);
        auth.monitor.handle(scheduled_event()).await.unwrap();
        products_monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!(auth.secrets.reads(), 1);
        assert_eq!(products.secrets.reads(), 0, "its own source is never asked");
    }

    #[tokio::test]
    async fn rejected_account_without_rotation_is_credentials_rejected() {
        let target = ScriptedTarget::default().then(401, r#"{"error":"account_locked"}"#);
        let h = harness(Check::Products, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CredentialsRejected)));
        assert_eq!(paths(&h.target), ["Post /api/auth/token"], "no retry hammering, no later steps");
        assert_eq!(h.secrets.reads(), 2, "initial load plus one refresh");
        assert!(h.notifier.delivered()[0].summary.contains("not a target outage"));
    }

    #[tokio::test]
    async fn products_sends_the_token_and_fails_an_empty_listing_with_assertion() {
        let target = ScriptedTarget::default().then(200, TOKEN).then(200, r#"{"data":[]}"#).then(200, r#"{"data":[]}"#);
        let h = harness(Check::Products, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::Assertion)));
        let requests = h.target.requests();
        assert_eq!(requests[1].auth, Some(Auth::Bearer(crate::secret::Secret::new("t-1".into()))));
    }

    #[tokio::test]
    async fn payment_is_refunded_even_when_verification_fails() {
        let created = r#"{"id":"pay_1","status":"succeeded"}"#;
        let target = ScriptedTarget::default()
            .then(200, TOKEN)
            .then(201, created)
            .then(500, "lookup broken")
            .then(500, "lookup broken")
            .then(200, r#"{"id":"pay_1","status":"refunded"}"#);
        let h = harness(Check::Payment, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)));
        assert_eq!(
            paths(&h.target),
            [
                "Post /api/auth/token",
                "Post /api/payments",
                "Get /api/payments/pay_1",
                "Get /api/payments/pay_1",
                "Post /api/payments/pay_1/refund"
            ]
        );
        let refund = run.steps.iter().find(|s| s.name == "payment_refund").unwrap();
        assert_eq!(refund.outcome, Outcome::Passed);
        let key = |request: &crate::http::HttpRequest| {
            request.headers.iter().find(|(k, _)| k == "Idempotency-Key").map(|(_, v)| v.clone()).unwrap()
        };
        let requests = h.target.requests();
        assert_eq!(key(&requests[1]), format!("synthetic-{}-payment_create", run.run_id));
        assert_eq!(key(&requests[4]), format!("synthetic-{}-payment_refund", run.run_id));
    }

    #[tokio::test]
    async fn failed_refund_is_cleanup_failed() {
        let target = ScriptedTarget::default()
            .then(200, TOKEN)
            .then(201, r#"{"id":"pay_1","status":"succeeded"}"#)
            .then(200, r#"{"id":"pay_1","status":"succeeded"}"#)
            .then(500, r#"{"error":"refund_unavailable"}"#)
            .then(500, r#"{"error":"refund_unavailable"}"#);
        let h = harness(Check::Payment, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CleanupFailed)));
        assert_eq!(run.steps.last().unwrap().attempts, 2, "the refund carries an idempotency key, so it is retried");
    }

    /// A scheduled event whose Lambda deadline is `left_ms` from now.
    fn event_with(left_ms: u64) -> LambdaEvent<Value> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut context = Context::default();
        context.deadline = now_ms + left_ms;
        LambdaEvent::new(scheduled_event().payload, context)
    }

    #[tokio::test]
    async fn a_timeout_within_the_alert_reserve_is_the_monitors_misconfiguration_not_an_outage() {
        // GIVEN a healthy target and a function given 10 s, less than the alert's ~16 s share
        let h = harness(Check::Health, ScriptedTarget::default().then(200, r#"{"status":"ok"}"#));
        // WHEN it is invoked
        let error = h.monitor.handle(event_with(10_000)).await.unwrap_err();
        // THEN the invocation fails naming the setting; nothing is sent and nobody is paged
        assert_eq!(error.error_type(), "Misconfigured");
        assert!(error.to_string().contains("ALERT_PUBLISH_ATTEMPTS") && error.to_string().contains("Timeout"));
        assert!(h.target.requests().is_empty());
        assert!(h.notifier.delivered().is_empty());
    }

    #[tokio::test]
    async fn a_cleanup_budget_the_timeout_cannot_hold_is_the_monitors_misconfiguration() {
        // GIVEN the payment journey (refund budget 15 s) with 10 s left after the alert's share
        let h = harness(Check::Payment, ScriptedTarget::default().then(200, TOKEN));
        let reserve = publish_budget(h.monitor.config.alert_retry).as_millis() as u64;
        // WHEN it is invoked
        let error = h.monitor.handle(event_with(reserve + 10_000)).await.unwrap_err();
        // THEN the invocation fails naming the refund's budget variable, and nothing is sent
        assert_eq!(error.error_type(), "Misconfigured");
        assert!(error.to_string().contains("PAYMENT_REFUND_FAIL_AFTER_MS"), "{error}");
        assert!(h.target.requests().is_empty() && h.notifier.delivered().is_empty());

        // AND with room for the refund and one more step, the run goes ahead
        let h = harness(Check::Health, ScriptedTarget::default().then(200, r#"{"status":"ok"}"#));
        let run = h.monitor.handle(event_with(reserve + 1_000)).await.unwrap();
        assert_eq!(run.status, Outcome::Passed);
    }

    #[tokio::test]
    async fn declined_payment_needs_no_cleanup() {
        let declined = r#"{"error":"card_declined","status":"declined"}"#;
        let target = ScriptedTarget::default().then(200, TOKEN).then(402, declined).then(402, declined);
        let h = harness(Check::Payment, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)));
        assert_eq!(run.steps.len(), 2);
    }

    #[tokio::test]
    async fn a_made_up_payment_id_stays_one_path_segment() {
        let target = ScriptedTarget::default()
            .then(200, TOKEN)
            .then(201, r#"{"id":"../admin?x=1","status":"succeeded"}"#)
            .then(200, r#"{"id":"../admin?x=1"}"#)
            .then(200, "{}");
        let h = harness(Check::Payment, target);
        h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!(h.target.requests()[2].url.path(), "/api/payments/..%2Fadmin%3Fx%3D1");
    }

    #[tokio::test]
    async fn payment_without_a_card_token_names_the_secret_field() {
        let h = harness(Check::Payment, ScriptedTarget::default().then(200, TOKEN));
        h.secrets.put("synthetic/account", r#"{"email":"a","password":"b"}"#);
        let error = h.monitor.handle(scheduled_event()).await.unwrap_err();
        assert_eq!(error.error_type(), "Misconfigured");
        let message = error.to_string();
        assert!(message.contains("\"payment_token\"") && message.contains("synthetic/account"), "{message}");
        assert!(paths(&h.target).is_empty(), "a missing field is found before anything is sent");
    }

    #[tokio::test]
    async fn no_secret_value_reaches_the_result_or_the_alert() {
        let echo = r#"{"error":"wrong password pw-1 for mon@example.com"}"#;
        let h = harness(Check::Auth, ScriptedTarget::default().then(500, echo).then(500, echo));
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        let text = format!(
            "{} {} {:?}",
            serde_json::to_string(&run).unwrap(),
            serde_json::to_string(&h.notifier.delivered()).unwrap(),
            h.metrics.records()
        );
        for secret in ["pw-1", "mon@example.com", "tok_test_4242"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    /// A 200 from a target whose certificate has `days_left` whole days left.
    fn over_tls(days_left: i64, body: &str) -> Result<crate::http::HttpResponse, CheckError> {
        let certificate = Certificate {
            days_left,
            not_after: "2026-11-26T11:00:00Z".into(),
            subject: "CN=shop.example.com, O=Shop".into(),
        };
        Ok(crate::http::HttpResponse::with(200, body).with_certificate(Some(certificate)))
    }

    #[tokio::test]
    async fn a_certificate_below_cert_min_days_degrades_the_run_with_tls_and_says_so() {
        // GIVEN a healthy target whose certificate has 5 days left (CERT_MIN_DAYS is 14)
        let target = ScriptedTarget::default().then_after(Duration::ZERO, over_tls(5, r#"{"status":"ok"}"#));
        let h = harness(Check::Health, target);

        // WHEN the check runs
        let run = h.monitor.handle(scheduled_event()).await.unwrap();

        // THEN the run is degraded with cause tls, and the alert's summary names the days left
        // and the certificate
        assert_eq!((run.status, run.cause), (Outcome::Degraded, Some(Cause::Tls)));
        assert_eq!(run.certificate.as_ref().map(|c| c.days_left), Some(5));
        let alert = &h.notifier.delivered()[0];
        assert_eq!(alert.event_action, EventAction::Trigger);
        assert!(alert.summary.contains("DEGRADED at step health (tls)"), "{}", alert.summary);
        assert!(alert.summary.contains("expires in 5 days"), "{}", alert.summary);
        assert!(alert.summary.contains("CN=shop.example.com, O=Shop"), "{}", alert.summary);
        assert!(alert.summary.contains("CERT_MIN_DAYS (14 days)"), "{}", alert.summary);
        assert_eq!(h.target.requests().len(), 1, "the certificate came with the journey's own request");
        assert_eq!(h.metrics.records()[0]["CertificateDaysLeft"], 5);
    }

    #[tokio::test]
    async fn a_certificate_with_enough_days_left_passes_and_is_reported() {
        for (days_left, status) in [(365, Outcome::Passed), (14, Outcome::Passed), (13, Outcome::Degraded)] {
            let target = ScriptedTarget::default().then_after(Duration::ZERO, over_tls(days_left, "OK"));
            let h = harness(Check::Health, target);
            let run = h.monitor.handle(scheduled_event()).await.unwrap();
            assert_eq!(run.status, status, "{days_left} days left");
            assert_eq!(run.certificate.map(|c| c.days_left), Some(days_left));
            assert_eq!(h.metrics.records()[0]["CertificateDaysLeft"], days_left);
        }
    }

    #[tokio::test]
    async fn the_certificate_finding_lands_on_the_step_whose_answer_carried_it() {
        // GIVEN a login answered over TLS with less than a day left, then a products step
        let login = over_tls(0, TOKEN);
        let target = ScriptedTarget::default().then_after(Duration::ZERO, login).then(200, r#"{"data":[1]}"#);
        let h = harness(Check::Products, target);
        let run = h.monitor.handle(scheduled_event()).await.unwrap();
        assert_eq!((run.status, run.cause), (Outcome::Degraded, Some(Cause::Tls)));
        let login = &run.steps[0];
        assert_eq!((login.name.as_str(), login.cause), ("login", Some(Cause::Tls)));
        assert!(login.error.as_deref().unwrap().contains("expires within a day"), "{login:?}");
        assert_eq!(run.steps[1].outcome, Outcome::Passed);
    }

    #[test]
    fn the_finding_is_worded_for_the_days_left() {
        let finding = |days| {
            let certificate = Certificate { days_left: days, not_after: "T".into(), subject: "CN=s".into() };
            certificate_finding(&certificate, 14)
        };
        assert_eq!(finding(14), None);
        assert!(finding(1).unwrap().starts_with("the certificate CN=s expires in 1 day (not after T)"));
        assert!(finding(0).unwrap().contains("expires within a day"));
        let certificate = Certificate { days_left: 0, not_after: "T".into(), subject: "CN=s".into() };
        assert_eq!(certificate_finding(&certificate, 0), None, "CERT_MIN_DAYS=0 turns the warning off");
    }

    #[test]
    fn the_run_keeps_exactly_the_publish_budget_back() {
        // 4 attempts of at most 4 s, and 0.2 + 0.4 + 0.8 s of backoff: the README's defaults.
        let budget = publish_budget(crate::journey::RetryPolicy { attempts: 4, backoff: Duration::from_millis(200) });
        assert_eq!(budget, Duration::from_millis(17_400));
        assert_eq!(deadline_from_epoch_ms(0, budget), None);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let deadline = deadline_from_epoch_ms(now_ms + 60_000, budget).unwrap();
        let left = deadline - Instant::now();
        assert!(left <= Duration::from_millis(42_600) && left > Duration::from_millis(41_000), "{left:?}");
    }
}

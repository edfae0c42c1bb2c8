//! Journeys, steps and their results.
//!
//! A check is a journey: a sequence of HTTP steps that later steps build on (a token, a payment
//! id). [`Journey::step`] sends one step, judges it (status, assertions, latency budget),
//! retries a failure when that is safe, and records exactly one [`StepResult`]. The worst step
//! decides the run's status; the first failing step decides its cause.

use crate::assertion::{Assertion, ExpectedStatus};
use crate::error::{Cause, CheckError};
use crate::http::{HttpRequest, HttpResponse, HttpTarget, Method};
use crate::secret::{Credentials, Secret};
use crate::text::{one_line, truncate};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

/// Ordered from best to worst, so the worst step is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Degraded,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub outcome: Outcome,
    /// The attempt that decided the outcome.
    pub duration_ms: u64,
    pub status: Option<u16>,
    pub attempts: u32,
    pub cause: Option<Cause>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub check: String,
    pub env: String,
    pub target: String,
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub status: Outcome,
    pub cause: Option<Cause>,
    pub steps: Vec<StepResult>,
}

impl RunResult {
    /// The step that decided the run's cause: the first failed one, else the first degraded one.
    pub fn deciding_step(&self) -> Option<&StepResult> {
        [Outcome::Failed, Outcome::Degraded].iter().find_map(|worst| self.steps.iter().find(|s| s.outcome == *worst))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Slower than this, a correct answer is `degraded`.
    pub degraded_after: Duration,
    /// Slower than this, the attempt is abandoned and fails with `timeout`.
    pub fail_after: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 2, backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    pub fn delay_before(&self, retry: u32) -> Duration {
        self.backoff.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
    }
}

/// What a step is for changes how its failure reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRole {
    Normal,
    /// 401/403 here means the synthetic account itself was rejected.
    Login,
    /// Undoes a sandbox write; any failure here is `cleanup_failed`.
    Cleanup,
}

#[derive(Clone, Debug)]
pub struct StepSpec {
    pub name: String,
    pub role: StepRole,
    pub method: Method,
    /// Relative to the target's base URL.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub bearer: Option<Secret<String>>,
    pub json_body: Option<Secret<Vec<u8>>>,
    pub expect_status: ExpectedStatus,
    pub assertions: Vec<Assertion>,
    pub budget: Budget,
    /// A POST with no side effect worth protecting (issuing a token) may be retried like a GET.
    pub repeatable: bool,
}

impl StepSpec {
    pub fn new(name: &str, method: Method, path: &str, expect_status: ExpectedStatus, budget: Budget) -> Self {
        StepSpec {
            name: name.to_string(),
            role: StepRole::Normal,
            method,
            path: path.to_string(),
            headers: Vec::new(),
            bearer: None,
            json_body: None,
            expect_status,
            assertions: Vec::new(),
            budget,
            repeatable: false,
        }
    }

    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    pub fn role(mut self, role: StepRole) -> Self {
        self.role = role;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn bearer(mut self, token: &Secret<String>) -> Self {
        self.bearer = Some(token.clone());
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.json_body = Some(Secret::new(body.to_string().into_bytes()));
        self
    }

    pub fn assert(mut self, assertion: Assertion) -> Self {
        self.assertions.push(assertion);
        self
    }

    /// A POST is only repeated when the target can tell the repeat from a new write.
    fn safe_to_repeat(&self) -> bool {
        self.repeatable
            || self.method.is_idempotent()
            || self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
    }
}

/// A step failed; its result is already recorded. The response, when there was one, lets a
/// caller still clean up what the target created.
#[derive(Debug)]
pub struct StepFailed {
    pub cause: Cause,
    pub response: Option<HttpResponse>,
}

/// Everything a journey needs from the run that owns it.
#[derive(Clone)]
pub struct JourneySetup {
    pub http: Arc<dyn HttpTarget>,
    pub check: String,
    pub env: String,
    pub target: Url,
    pub run_id: String,
    /// Header that marks the traffic as synthetic; its value is the check name.
    pub synthetic_header: String,
    pub retry: RetryPolicy,
    /// No retry is started that could not finish before this instant.
    pub deadline: Option<Instant>,
}

pub struct Journey {
    setup: JourneySetup,
    steps: Vec<StepResult>,
    started: Instant,
    started_at: OffsetDateTime,
    scrub: Vec<Arc<Credentials>>,
}

struct Verdict {
    outcome: Outcome,
    status: Option<u16>,
    error: Option<CheckError>,
    response: Option<HttpResponse>,
}

impl Journey {
    pub fn new(setup: JourneySetup) -> Self {
        Journey {
            setup,
            steps: Vec::new(),
            started: Instant::now(),
            started_at: OffsetDateTime::now_utc(),
            scrub: Vec::new(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.setup.run_id
    }

    /// From now on, these values are cut out of every error message the journey records.
    pub fn scrub_secrets_of(&mut self, credentials: Arc<Credentials>) {
        self.scrub.push(credentials);
    }

    pub async fn step(&mut self, spec: StepSpec) -> Result<HttpResponse, StepFailed> {
        self.run_step(spec, 0).await
    }

    /// Runs `spec` again in place of the last recorded step of the same name, counting the
    /// earlier attempts: used when a rejected login is retried with refreshed credentials.
    pub async fn rerun(&mut self, spec: StepSpec) -> Result<HttpResponse, StepFailed> {
        let prior = match self.steps.last() {
            Some(last) if last.name == spec.name => self.steps.pop().map_or(0, |s| s.attempts),
            _ => 0,
        };
        self.run_step(spec, prior).await
    }

    async fn run_step(&mut self, spec: StepSpec, prior_attempts: u32) -> Result<HttpResponse, StepFailed> {
        let request = match self.request_for(&spec) {
            Ok(request) => request,
            Err(error) => {
                let verdict = Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None };
                return self.record(&spec, verdict, Duration::ZERO, prior_attempts + 1);
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let sent = self.setup.http.send(request.clone()).await;
            let elapsed = started.elapsed();
            let verdict = judge(&spec, sent, elapsed, &self.scrub);
            if verdict.outcome == Outcome::Failed && self.may_retry(&spec, &verdict, attempt) {
                tokio::time::sleep(self.setup.retry.delay_before(attempt)).await;
                continue;
            }
            return self.record(&spec, verdict, elapsed, prior_attempts + attempt);
        }
    }

    fn request_for(&self, spec: &StepSpec) -> Result<HttpRequest, CheckError> {
        let url = join(&self.setup.target, &spec.path)?;
        let mut headers = spec.headers.clone();
        headers.push((self.setup.synthetic_header.clone(), self.setup.check.clone()));
        headers.push(("x-synthetic-run-id".to_string(), self.setup.run_id.clone()));
        Ok(HttpRequest {
            method: spec.method,
            url,
            headers,
            bearer: spec.bearer.clone(),
            json_body: spec.json_body.clone(),
            timeout: spec.budget.fail_after,
        })
    }

    fn may_retry(&self, spec: &StepSpec, verdict: &Verdict, attempt: u32) -> bool {
        let cause = verdict.error.as_ref().map(CheckError::cause);
        // A rejected account is healed by refreshing the secret, not by hammering the login
        // (which is what gets monitor accounts locked by fraud detection).
        let hopeless = matches!(cause, Some(Cause::CredentialsRejected | Cause::Misconfigured));
        let next_ends = Instant::now() + self.setup.retry.delay_before(attempt) + spec.budget.fail_after;
        let in_time = self.setup.deadline.is_none_or(|deadline| next_ends < deadline);
        attempt < self.setup.retry.attempts && !hopeless && spec.safe_to_repeat() && in_time
    }

    fn record(
        &mut self,
        spec: &StepSpec,
        verdict: Verdict,
        elapsed: Duration,
        attempts: u32,
    ) -> Result<HttpResponse, StepFailed> {
        let cause = verdict.error.as_ref().map(CheckError::cause);
        let error = verdict.error.as_ref().map(|e| self.clean(&e.to_string()));
        self.steps.push(StepResult {
            name: spec.name.clone(),
            outcome: verdict.outcome,
            duration_ms: elapsed.as_millis() as u64,
            status: verdict.status,
            attempts,
            cause,
            error,
        });
        match (verdict.outcome, verdict.response) {
            (Outcome::Failed, response) => Err(StepFailed { cause: cause.unwrap_or(Cause::Assertion), response }),
            (_, Some(response)) => Ok(response),
            (_, None) => Err(StepFailed { cause: Cause::InvalidResponse, response: None }),
        }
    }

    fn clean(&self, text: &str) -> String {
        let scrubbed = self.scrub.iter().fold(text.to_string(), |t, c| c.scrub(&t));
        one_line(&scrubbed)
    }

    pub fn steps(&self) -> &[StepResult] {
        &self.steps
    }

    pub fn finish(self) -> RunResult {
        let status = self.steps.iter().map(|s| s.outcome).max().unwrap_or(Outcome::Passed);
        let mut run = RunResult {
            check: self.setup.check,
            env: self.setup.env,
            target: self.setup.target.to_string(),
            run_id: self.setup.run_id,
            started_at: self.started_at.format(&Rfc3339).unwrap_or_default(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            status,
            cause: None,
            steps: self.steps,
        };
        run.cause = run.deciding_step().and_then(|s| s.cause);
        run
    }
}

fn judge(
    spec: &StepSpec,
    sent: Result<HttpResponse, CheckError>,
    elapsed: Duration,
    scrub: &[Arc<Credentials>],
) -> Verdict {
    let verdict = match sent {
        Err(error) => Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None },
        Ok(response) => {
            let status = Some(response.status);
            let error = content_error(spec, &response, scrub).or_else(|| latency_error(spec, elapsed));
            let outcome = match (&error, elapsed > spec.budget.degraded_after) {
                (Some(_), _) => Outcome::Failed,
                (None, true) => Outcome::Degraded,
                (None, false) => Outcome::Passed,
            };
            let error = error.or_else(|| {
                (outcome == Outcome::Degraded)
                    .then_some(CheckError::Timeout { budget_ms: spec.budget.degraded_after.as_millis() as u64 })
            });
            Verdict { outcome, status, error, response: Some(response) }
        }
    };
    match verdict.error {
        Some(error) if spec.role == StepRole::Cleanup && verdict.outcome == Outcome::Failed => {
            Verdict { error: Some(CheckError::CleanupFailed(error.to_string())), ..verdict }
        }
        error => Verdict { error, ..verdict },
    }
}

fn content_error(spec: &StepSpec, response: &HttpResponse, scrub: &[Arc<Credentials>]) -> Option<CheckError> {
    if !spec.expect_status.matches(response.status) {
        if spec.role == StepRole::Login && matches!(response.status, 401 | 403) {
            return Some(CheckError::CredentialsRejected { status: response.status });
        }
        return Some(CheckError::HttpStatus {
            status: response.status,
            expected: spec.expect_status.to_string(),
            excerpt: excerpt(&response.body, scrub),
        });
    }
    spec.assertions.iter().find_map(|a| a.check(response).err())
}

fn latency_error(spec: &StepSpec, elapsed: Duration) -> Option<CheckError> {
    (elapsed > spec.budget.fail_after)
        .then_some(CheckError::Timeout { budget_ms: spec.budget.fail_after.as_millis() as u64 })
}

/// The start of a body for an error message: one line, at most 160 chars, secrets cut out.
fn excerpt(body: &[u8], scrub: &[Arc<Credentials>]) -> String {
    let mut text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
    for credentials in scrub {
        text = credentials.scrub(&text);
    }
    match one_line(&text) {
        line if line.is_empty() => line,
        line => format!(": {}", truncate(&line, 160)),
    }
}

/// Joins a step path onto the base URL, keeping any path prefix the base has
/// (`https://host/shop` + `/api/x` is `https://host/shop/api/x`).
pub fn join(base: &Url, path: &str) -> Result<Url, CheckError> {
    let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
    Url::parse(&joined).map_err(|e| CheckError::Misconfigured(format!("step path {path:?} does not form a URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ScriptedTarget;

    const FAST: Budget = Budget { degraded_after: Duration::from_millis(200), fail_after: Duration::from_millis(500) };

    fn journey(target: &Arc<ScriptedTarget>) -> Journey {
        Journey::new(JourneySetup {
            http: target.clone(),
            check: "products".into(),
            env: "prod".into(),
            target: Url::parse("http://shop.test/base/").unwrap(),
            run_id: "run-1".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 2, backoff: Duration::from_millis(10) },
            deadline: None,
        })
    }

    fn get(name: &str) -> StepSpec {
        StepSpec::new(name, Method::Get, "/api/products", ExpectedStatus::one(200), FAST)
            .assert(Assertion::JsonPointerNonEmptyArray("/data".into()))
    }

    #[tokio::test]
    async fn passing_step_is_recorded_with_status_and_one_attempt() {
        let target = Arc::new(ScriptedTarget::default().then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        j.step(get("products")).await.unwrap();
        let run = j.finish();
        assert_eq!(run.status, Outcome::Passed);
        assert_eq!(run.cause, None);
        let step = &run.steps[0];
        assert_eq!((step.outcome, step.status, step.attempts, step.cause), (Outcome::Passed, Some(200), 1, None));
        assert_eq!(step.error, None);
    }

    #[tokio::test]
    async fn every_request_is_marked_synthetic_and_joined_under_the_base_path() {
        let target = Arc::new(ScriptedTarget::default().then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        j.step(get("products")).await.unwrap();
        let request = &target.requests()[0];
        assert_eq!(request.url.as_str(), "http://shop.test/base/api/products");
        assert!(request.headers.contains(&("X-Synthetic-Check".into(), "products".into())));
        assert!(request.headers.contains(&("x-synthetic-run-id".into(), "run-1".into())));
    }

    #[tokio::test]
    async fn a_failed_step_is_retried_and_only_the_final_attempt_decides() {
        let target = Arc::new(ScriptedTarget::default().then(503, "busy").then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        j.step(get("products")).await.unwrap();
        let step = &j.steps()[0];
        assert_eq!((step.outcome, step.attempts, step.cause), (Outcome::Passed, 2, None));
    }

    #[tokio::test]
    async fn retries_stop_at_the_configured_attempts() {
        let target = Arc::new(ScriptedTarget::default().then(500, "a").then(500, "b").then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        assert!(j.step(get("products")).await.is_err());
        assert_eq!(target.requests().len(), 2);
        let step = &j.steps()[0];
        assert_eq!((step.outcome, step.attempts, step.cause), (Outcome::Failed, 2, Some(Cause::HttpStatus)));
        assert_eq!(step.error.as_deref(), Some("HTTP 500, expected 200: b"));
    }

    #[tokio::test]
    async fn degraded_steps_are_not_retried() {
        let slow = Ok(HttpResponse::with(200, r#"{"data":[1]}"#));
        let target = Arc::new(ScriptedTarget::default().then_after(Duration::from_millis(250), slow));
        let mut j = journey(&target);
        j.step(get("products")).await.unwrap();
        let run = j.finish();
        assert_eq!(target.requests().len(), 1);
        assert_eq!(run.status, Outcome::Degraded);
        assert_eq!(run.cause, Some(Cause::Timeout));
        assert_eq!(run.steps[0].error.as_deref(), Some("no complete response within 200 ms"));
    }

    #[tokio::test]
    async fn past_fail_after_the_attempt_is_abandoned_as_timeout() {
        let hang = Ok(HttpResponse::with(200, r#"{"data":[1]}"#));
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::from_secs(60), hang.clone())
                .then_after(Duration::from_secs(60), hang),
        );
        let mut j = journey(&target);
        let failed = j.step(get("products")).await.unwrap_err();
        assert_eq!(failed.cause, Cause::Timeout);
        assert_eq!(j.steps()[0].attempts, 2);
    }

    #[tokio::test]
    async fn posts_without_an_idempotency_key_are_not_retried() {
        let target = Arc::new(ScriptedTarget::default().then(500, "").then(201, "{}"));
        let mut j = journey(&target);
        let spec = StepSpec::new("create", Method::Post, "/x", ExpectedStatus::one(201), FAST);
        assert!(j.step(spec.clone()).await.is_err());
        assert_eq!(target.requests().len(), 1);

        let target = Arc::new(ScriptedTarget::default().then(500, "").then(201, "{}"));
        let mut j = journey(&target);
        j.step(spec.header("Idempotency-Key", "k")).await.unwrap();
        assert_eq!(target.requests().len(), 2, "an idempotency key makes the retry safe");
    }

    #[tokio::test]
    async fn rejected_login_is_credentials_rejected_and_not_hammered() {
        let target = Arc::new(ScriptedTarget::default().then(401, r#"{"error":"locked"}"#).then(200, "{}"));
        let mut j = journey(&target);
        let login = StepSpec::new("login", Method::Post, "/login", ExpectedStatus::one(200), FAST)
            .role(StepRole::Login)
            .repeatable();
        let failed = j.step(login.clone()).await.unwrap_err();
        assert_eq!(failed.cause, Cause::CredentialsRejected);
        assert_eq!(target.requests().len(), 1);

        let rerun = j.rerun(login).await.unwrap();
        assert_eq!(rerun.status, 200);
        assert_eq!(j.steps().len(), 1, "the rerun replaces the rejected attempt");
        assert_eq!(j.steps()[0].attempts, 2);
    }

    #[tokio::test]
    async fn worst_step_decides_status_and_first_failure_decides_cause() {
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::from_millis(250), Ok(HttpResponse::with(200, r#"{"data":[1]}"#)))
                .then(200, r#"{"data":[]}"#)
                .then(200, r#"{"data":[]}"#)
                .then(500, "")
                .then(500, ""),
        );
        let mut j = journey(&target);
        let _ = j.step(get("slow")).await;
        let _ = j.step(get("empty")).await;
        let _ = j.step(get("broken").role(StepRole::Cleanup)).await;
        let run = j.finish();
        let outcomes: Vec<_> = run.steps.iter().map(|s| s.outcome).collect();
        assert_eq!(outcomes, [Outcome::Degraded, Outcome::Failed, Outcome::Failed]);
        assert_eq!(run.status, Outcome::Failed);
        assert_eq!(run.cause, Some(Cause::Assertion));
        assert_eq!(run.steps[2].cause, Some(Cause::CleanupFailed));
        assert!(run.steps[2].error.as_deref().unwrap().starts_with("cleanup failed"));
    }

    #[tokio::test]
    async fn retries_that_cannot_finish_before_the_deadline_are_skipped() {
        let target = Arc::new(ScriptedTarget::default().then(500, "").then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        j.setup.deadline = Some(Instant::now() + Duration::from_millis(100));
        assert!(j.step(get("products")).await.is_err());
        assert_eq!(target.requests().len(), 1);
    }

    #[tokio::test]
    async fn secrets_echoed_by_the_target_are_scrubbed_from_errors() {
        let raw = Secret::new(r#"{"email":"mon@example.com","password":"hunter2-pw"}"#.to_string());
        let credentials = Arc::new(Credentials::parse("s", &raw).unwrap());
        let target = Arc::new(
            ScriptedTarget::default().then(500, "bad password hunter2-pw").then(500, "bad password hunter2-pw"),
        );
        let mut j = journey(&target);
        j.scrub_secrets_of(credentials);
        let _ = j.step(get("products")).await;
        let error = j.steps()[0].error.clone().unwrap();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("[REDACTED]"), "{error}");
    }

    #[test]
    fn results_serialize_with_the_documented_fields() {
        let run = RunResult {
            check: "health".into(),
            env: "prod".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: "2026-11-21T10:00:00Z".into(),
            duration_ms: 12,
            status: Outcome::Failed,
            cause: Some(Cause::Connect),
            steps: vec![StepResult {
                name: "health".into(),
                outcome: Outcome::Failed,
                duration_ms: 12,
                status: None,
                attempts: 2,
                cause: Some(Cause::Connect),
                error: Some("connection refused".into()),
            }],
        };
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["steps"][0]["outcome"], "failed");
        assert_eq!(json["steps"][0]["cause"], "connect");
        assert_eq!(json["steps"][0]["attempts"], 2);
        let back: RunResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, run);
    }

    #[test]
    fn join_keeps_base_paths_and_rejects_nonsense() {
        let base = Url::parse("https://h/shop").unwrap();
        assert_eq!(join(&base, "/health").unwrap().as_str(), "https://h/shop/health");
        assert_eq!(join(&Url::parse("https://h/").unwrap(), "health").unwrap().as_str(), "https://h/health");
    }

    #[test]
    fn backoff_doubles() {
        let policy = RetryPolicy { attempts: 4, backoff: Duration::from_secs(2) };
        assert_eq!(policy.delay_before(1), Duration::from_secs(2));
        assert_eq!(policy.delay_before(3), Duration::from_secs(8));
    }
}

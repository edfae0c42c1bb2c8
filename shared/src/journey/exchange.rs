//! Journeys, steps and their results.
//!
//! A check is a journey: a sequence of HTTP steps that later steps build on (a token, a payment
//! id). [`StepRecorder::step`] sends one step, judges it (status, assertions, latency budget),
//! retries a failure when that is safe, and records exactly one [`StepResult`]. The worst step
//! decides the run's status; the first failing step decides its cause.

use super::file::{Budget, Capture, ExpectedStatus, StepRole, Until};
use super::judge::{Assertion, RejectedWhen, Verdict, judge, with_role};
use super::sign::Signing;
use super::template::GeneratedValues;
use crate::error::{Cause, CheckError};
use crate::http::{
    Auth, Body, Certificate, HttpRequest, HttpResponse, HttpTarget, Method, RUN_ID_HEADER, without_query,
};
use crate::result::{Account, Outcome, RunResult, StepResult};
use crate::secret::{Scrubber, Secret};
use crate::text::one_line;
use crate::trace::{TraceContext, is_trace_header};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles for each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        crate::config::DEFAULT_RETRY
    }
}

impl RetryPolicy {
    pub fn delay_before(&self, retry: u32) -> Duration {
        self.backoff.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
    }
}

#[derive(Clone, Debug)]
pub struct StepSpec {
    pub name: String,
    pub role: StepRole,
    pub method: Method,
    /// Relative to the base URL, already encoded.
    pub path: String,
    /// The base URL of the step's named target; `None`: the run's main target.
    pub base: Option<Url>,
    /// `path` is a whole URL or an absolute path (a next link), resolved against the base's
    /// origin and refused if it leaves it.
    pub whole_url: bool,
    /// `false`: a redirect is the answer, judged as it is.
    pub follow_redirects: bool,
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    pub body: Option<Body>,
    pub expect_status: ExpectedStatus,
    /// Login steps only: statuses that mean the synthetic account was rejected.
    pub rejected_status: Option<ExpectedStatus>,
    /// Login steps only: when all these hold, the account was rejected, whatever the status.
    pub rejected_when: Option<RejectedWhen>,
    pub assertions: Vec<Assertion>,
    /// Values the step must yield; a passing answer without them fails.
    pub captures: Vec<Capture>,
    pub budget: Budget,
    /// A POST with no side effect worth protecting (issuing a token) may be retried like a GET.
    pub repeatable: bool,
    /// Sent again while the answer is not yet what the assertions and captures want.
    pub until: Option<Until>,
    /// Signs each attempt as it is sent.
    pub sign: Option<Signing>,
}

impl StepSpec {
    pub fn new(name: &str, method: Method, path: &str, expect_status: ExpectedStatus, budget: Budget) -> Self {
        StepSpec {
            name: name.to_string(),
            role: StepRole::Normal,
            method,
            path: path.to_string(),
            base: None,
            whole_url: false,
            follow_redirects: true,
            headers: Vec::new(),
            auth: None,
            body: None,
            expect_status,
            rejected_status: None,
            rejected_when: None,
            assertions: Vec::new(),
            captures: Vec::new(),
            budget,
            repeatable: false,
            until: None,
            sign: None,
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

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    pub fn rejected(mut self, statuses: ExpectedStatus) -> Self {
        self.rejected_status = Some(statuses);
        self
    }

    pub fn assert(mut self, assertion: Assertion) -> Self {
        self.assertions.push(assertion);
        self
    }

    pub fn capture(mut self, capture: Capture) -> Self {
        self.captures.push(capture);
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
    /// Some attempt went out and no answer says the target refused it: a write may be live.
    /// False when nothing was ever sent (refused connection, no time left, unrenderable).
    pub possibly_written: bool,
}

/// Everything a journey needs from the run that owns it.
#[derive(Clone)]
pub struct RunSetup {
    pub http: Arc<dyn HttpTarget>,
    pub check: String,
    pub env: String,
    pub target: Url,
    pub run_id: String,
    /// Header that marks the traffic as synthetic; its value is the check name.
    pub synthetic_header: String,
    pub retry: RetryPolicy,
    /// Redirects followed per attempt, within the target's origin only.
    pub max_redirects: usize,
    /// When the run must be done, the alert's share already taken off. No attempt outlives it,
    /// and no retry is started that could not finish before it.
    pub deadline: Option<Instant>,
    /// The run's W3C trace, stamped on every request; `None`: trace context is off.
    pub trace: Option<TraceContext>,
}

#[cfg(test)]
impl RunSetup {
    /// A run against a scripted target for the journey's property tests: one attempt, no
    /// redirects, no trace, no deadline. Each test changes what it is about (`..setup`).
    pub(crate) fn scripted(http: Arc<dyn HttpTarget>, check: &str) -> RunSetup {
        RunSetup {
            http,
            check: check.into(),
            env: "test".into(),
            target: "http://api.test/".parse().expect("a URL"),
            run_id: "run-1".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
            max_redirects: 0,
            deadline: None,
            trace: None,
        }
    }
}

/// An attempt shorter than this is not worth sending: the step is skipped instead.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(100);

pub struct StepRecorder {
    setup: RunSetup,
    steps: Vec<StepResult>,
    started: Instant,
    started_at: OffsetDateTime,
    scrubber: Scrubber,
    cookies: CookieJar,
    account: Option<Account>,
    /// Kept back from normal steps so the cleanup steps can still run before the deadline.
    cleanup_reserve: Duration,
    /// The first certificate an answer carried, and the step it answered.
    certificate: Option<(String, Certificate)>,
}

impl StepRecorder {
    pub fn new(setup: RunSetup) -> Self {
        StepRecorder {
            setup,
            steps: Vec::new(),
            started: Instant::now(),
            started_at: OffsetDateTime::now_utc(),
            scrubber: Scrubber::default(),
            cookies: CookieJar::default(),
            account: None,
            cleanup_reserve: Duration::ZERO,
            certificate: None,
        }
    }

    /// The target's certificate as the run's first answer over HTTPS carried it, with the name
    /// of the step that answer belongs to.
    pub fn certificate(&self) -> Option<(&str, &Certificate)> {
        self.certificate.as_ref().map(|(step, certificate)| (step.as_str(), certificate))
    }

    /// Marks the last recorded step named `name` degraded with `cause` and `finding`, unless it
    /// failed: for a finding about an answer that was otherwise right (a certificate close to
    /// expiry), which is a warning, not a failure. A message the step already had is kept after
    /// the finding.
    pub fn degrade(&mut self, name: &str, cause: Cause, finding: &str) {
        let text = one_line(&self.scrubber.scrub(finding));
        if let Some(step) = self.steps.iter_mut().rev().find(|s| s.name == name && s.outcome != Outcome::Failed) {
            step.outcome = Outcome::Degraded;
            step.cause = Some(cause);
            step.error = Some(match step.error.take() {
                Some(earlier) => format!("{text}; also: {earlier}"),
                None => text,
            });
        }
    }

    pub fn run_id(&self) -> &str {
        &self.setup.run_id
    }

    /// The run's cookies so far: what a `cookie` capture reads.
    pub fn cookies(&self) -> &CookieJar {
        &self.cookies
    }

    /// From now on, these values are cut out of every error message the journey records.
    pub fn scrub<'a>(&mut self, values: impl IntoIterator<Item = &'a Secret<String>>) {
        self.scrubber.add_all(values);
    }

    /// Scrubs forms worked out beforehand ([`Credentials::scrub_forms`](crate::secret::Credentials::scrub_forms)).
    pub fn scrub_forms(&mut self, forms: &[Secret<String>]) {
        self.scrubber.add_forms(forms);
    }

    /// Records what a login step said about the synthetic account; the last word counts.
    pub fn note_account(&mut self, account: Account) {
        self.account = Some(account);
    }

    pub fn reserve_for_cleanup(&mut self, reserve: Duration) {
        self.cleanup_reserve = reserve;
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

    /// Records a step that could not be sent (a value that cannot go where the journey puts
    /// it, say) as failed with `error`.
    pub fn fail(&mut self, spec: &StepSpec, error: CheckError) -> StepFailed {
        let verdict = Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None };
        let cause = verdict.error.as_ref().map_or(Cause::Assertion, CheckError::cause);
        let _ = self.record(spec, with_role(spec, verdict), Duration::ZERO, 0);
        StepFailed { cause, response: None, possibly_written: false }
    }

    async fn run_step(&mut self, spec: StepSpec, prior_attempts: u32) -> Result<HttpResponse, StepFailed> {
        let mut request = match self.request_for(&spec) {
            Ok(request) => request,
            Err(error) => {
                let verdict = Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None };
                return self.record(&spec, with_role(&spec, verdict), Duration::ZERO, prior_attempts + 1);
            }
        };
        if let Some(Auth::Bearer(token)) = &request.auth {
            self.scrubber.add(token);
        }
        if let Some(Auth::Basic { username, password }) = &request.auth {
            self.scrubber.add_basic(username, password);
        }
        if let Some(signing) = &spec.sign {
            self.scrubber.add(&signing.key);
        }
        let mut attempt = 0;
        let mut polls = 0;
        let mut possibly_written = false;
        let window = spec.until.map(|until| Instant::now() + until.within);
        loop {
            let Some(timeout) = self.attempt_timeout(&spec) else {
                let error = CheckError::OutOfTime { left_ms: self.time_left(&spec).as_millis() as u64 };
                let verdict = Verdict { outcome: Outcome::Failed, status: None, error: Some(error), response: None };
                return self
                    .record(&spec, with_role(&spec, verdict), Duration::ZERO, prior_attempts + attempt)
                    .map_err(|failed| StepFailed { possibly_written, ..failed });
            };
            attempt += 1;
            let started = Instant::now();
            // A poll ends by the end of its window too.
            request.timeout = match window {
                Some(end) => timeout.min(end.saturating_duration_since(started).max(MIN_ATTEMPT)),
                None => timeout,
            };
            let timeout = request.timeout;
            if let Some(signing) = &spec.sign {
                // The first attempt names the instant the step was rendered with; each later one
                // its own, so a server's timestamp window holds for every retry and poll.
                let now = if attempt == 1 { signing.rendered.clone() } else { GeneratedValues::now() };
                signing.sign(&mut request, &now);
            }
            let sent = self.exchange(&spec, &mut request).await;
            // A GET or HEAD reads; only the other methods can leave a write behind.
            possibly_written |= !matches!(spec.method, Method::Get | Method::Head) && may_have_written(&sent);
            let elapsed = started.elapsed();
            if let (StepRole::Login, Ok(response)) = (spec.role, &sent) {
                self.learn_login_captures(&spec, response);
            }
            let verdict = judge(&spec, sent, elapsed, timeout, &self.scrubber, &self.cookies);
            if let (Outcome::Failed, Some(until), Some(end)) = (verdict.outcome, spec.until, window)
                && self.may_poll(&spec, &verdict, until, end)
            {
                polls += 1;
                tokio::time::sleep(until.every).await;
                continue;
            }
            if verdict.outcome == Outcome::Failed && self.may_retry(&spec, &verdict, attempt - polls) {
                tokio::time::sleep(self.setup.retry.delay_before(attempt)).await;
                continue;
            }
            return self
                .record(&spec, verdict, elapsed, prior_attempts + attempt)
                .map_err(|failed| StepFailed { possibly_written, ..failed });
        }
    }

    /// What a login answer hands back is a credential: scrubbed before the answer is judged, so
    /// the login's own error (a token answered with an unexpected status) cannot show it.
    fn learn_login_captures(&mut self, spec: &StepSpec, response: &HttpResponse) {
        for capture in &spec.captures {
            if let Ok(value) = capture.extract(response, &self.cookies) {
                self.scrubber.add(&Secret::new(value));
            }
        }
    }

    /// Sends `spec` once more, unrecorded, on the time kept for cleanup: to learn what an
    /// idempotent write that got no answer did, by replaying it with the same key.
    pub async fn replay(&mut self, spec: &StepSpec) -> Result<HttpResponse, CheckError> {
        let as_cleanup = spec.clone().role(StepRole::Cleanup);
        let timeout = self
            .attempt_timeout(&as_cleanup)
            .ok_or(CheckError::OutOfTime { left_ms: self.time_left(&as_cleanup).as_millis() as u64 })?;
        let mut request = self.request_for(spec)?;
        request.timeout = timeout;
        if let Some(signing) = &spec.sign {
            self.scrubber.add(&signing.key);
            signing.sign(&mut request, &GeneratedValues::now());
        }
        self.exchange(spec, &mut request).await
    }

    /// Replaces the cause and error of the last recorded step named `name`: a failure that
    /// turned out worse than it first read.
    pub fn escalate(&mut self, name: &str, error: CheckError) {
        let text = one_line(&self.scrubber.scrub(&error.to_string()));
        if let Some(step) = self.steps.iter_mut().rev().find(|s| s.name == name) {
            step.cause = Some(error.cause());
            step.error = Some(text);
        }
    }

    /// Sends one attempt, following redirects within the target's origin and keeping the
    /// cookies the target sets, all within `timeout`.
    /// Each request sent (a redirect's too) carries the run's trace with a span id of its own.
    async fn exchange(&mut self, spec: &StepSpec, request: &mut HttpRequest) -> Result<HttpResponse, CheckError> {
        let ends = Instant::now() + request.timeout;
        let timed_out = CheckError::Timeout { budget_ms: request.timeout.as_millis() as u64 };
        // Owned only once something differs from the step's request: cookies to add, a redirect
        // to follow. The usual attempt sends the step's request as it is, without a copy.
        let mut changed: Option<HttpRequest> = None;
        for _ in 0..=self.setup.max_redirects {
            let left = ends.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out);
            }
            if changed.is_none() && !self.cookies.is_empty() {
                changed = Some(request.clone());
            }
            let origin = changed.as_ref().unwrap_or(request).url.origin();
            let response = match changed.as_mut() {
                None => {
                    if let Some(trace) = &self.setup.trace {
                        trace.stamp(&mut request.headers);
                    }
                    self.setup.http.send(request).await?
                }
                Some(owned) => {
                    owned.timeout = left;
                    let mut sent = owned.clone();
                    self.cookies.apply(&origin, &mut sent.headers);
                    if let Some(trace) = &self.setup.trace {
                        trace.stamp(&mut sent.headers);
                    }
                    self.setup.http.send(&sent).await?
                }
            };
            if let (None, Some(certificate)) = (&self.certificate, response.certificate.as_deref()) {
                self.certificate = Some((spec.name.clone(), certificate.clone()));
            }
            // Every cookie is sent back as a credential, so each is scrubbed like one.
            let fresh = self.cookies.store(&origin, &response);
            self.scrubber.add_all(&fresh);
            let location = match response.status {
                301 | 302 | 303 | 307 | 308 if spec.follow_redirects => response.header("location"),
                _ => None,
            };
            let Some(location) = location else {
                return Ok(response);
            };
            let current = changed.get_or_insert_with(|| request.clone());
            let next = current.url.join(location).map_err(|_| {
                CheckError::InvalidResponse(format!("HTTP {} with an unusable Location header", response.status))
            })?;
            if next.origin() != current.url.origin() {
                return Err(CheckError::InvalidResponse(format!(
                    "HTTP {} redirect to {}, outside the target {}; the monitor follows redirects within its \
                     target only, so nothing was sent there",
                    response.status,
                    without_query(&next),
                    current.url.origin().ascii_serialization()
                )));
            }
            // As browsers do: 303, and 301/302 after a POST, continue as a GET without the body.
            if response.status == 303 || (matches!(response.status, 301 | 302) && current.method == Method::Post) {
                current.method = Method::Get;
                current.body = None;
            }
            current.url = next;
        }
        Err(CheckError::InvalidResponse(format!("more than {} redirects", self.setup.max_redirects)))
    }

    /// Time this step may still use: to the deadline, less the cleanup reserve for a normal step.
    fn time_left(&self, spec: &StepSpec) -> Duration {
        let Some(deadline) = self.setup.deadline else {
            return Duration::MAX;
        };
        let reserve = if spec.role == StepRole::Cleanup { Duration::ZERO } else { self.cleanup_reserve };
        deadline.saturating_duration_since(Instant::now()).saturating_sub(reserve)
    }

    /// The next attempt's timeout: its budget, cut to the time left; `None` when too little is left.
    fn attempt_timeout(&self, spec: &StepSpec) -> Option<Duration> {
        let left = self.time_left(spec);
        (left >= MIN_ATTEMPT).then(|| spec.budget.fail_after.min(left))
    }

    fn request_for(&self, spec: &StepSpec) -> Result<HttpRequest, CheckError> {
        let base = spec.base.as_ref().unwrap_or(&self.setup.target);
        let url = match spec.whole_url {
            true => within_origin(base, &spec.path)?,
            false => join(base, &spec.path)?,
        };
        // What the step's auth and body, and the engine itself, set goes out once, as they set
        // it: a header of the same name (from [defaults], say) yields, as two Authorization or
        // Content-Type headers are refused by some servers and read differently by others.
        let set_elsewhere = |name: &str| {
            (spec.auth.is_some() && name.eq_ignore_ascii_case("authorization"))
                || (spec.body.is_some() && name.eq_ignore_ascii_case("content-type"))
                || name.eq_ignore_ascii_case(&self.setup.synthetic_header)
                || name.eq_ignore_ascii_case(RUN_ID_HEADER)
                || (self.setup.trace.is_some() && is_trace_header(name))
        };
        let mut headers = Vec::with_capacity(spec.headers.len() + 2);
        headers.extend(spec.headers.iter().filter(|(name, _)| !set_elsewhere(name)).cloned());
        headers.push((self.setup.synthetic_header.clone(), self.setup.check.clone()));
        headers.push((RUN_ID_HEADER.to_string(), self.setup.run_id.clone()));
        Ok(HttpRequest {
            method: spec.method,
            url,
            headers,
            auth: spec.auth.clone(),
            body: spec.body.clone(),
            timeout: spec.budget.fail_after,
        })
    }

    /// Whether a step with `until` is sent again: its answer was not yet the one wanted (an
    /// assertion, a capture or the status), and another poll fits in its window and in the run.
    fn may_poll(&self, spec: &StepSpec, verdict: &Verdict, until: Until, window_end: Instant) -> bool {
        let not_yet =
            matches!(verdict.error.as_ref().map(CheckError::cause), Some(Cause::Assertion | Cause::HttpStatus));
        let next = Instant::now() + until.every;
        let fits = next + MIN_ATTEMPT <= window_end && self.time_left(spec) >= until.every + MIN_ATTEMPT;
        not_yet && fits && spec.safe_to_repeat()
    }

    fn may_retry(&self, spec: &StepSpec, verdict: &Verdict, attempt: u32) -> bool {
        let cause = verdict.error.as_ref().map(CheckError::cause);
        // A rejected account is healed by refreshing the secret, not by hammering the login
        // (which is what gets monitor accounts locked by fraud detection).
        let hopeless = matches!(cause, Some(Cause::CredentialsRejected | Cause::Misconfigured));
        let next_needs = self.setup.retry.delay_before(attempt) + spec.budget.fail_after;
        let in_time = self.time_left(spec) > next_needs;
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
        let error = verdict.error.as_ref().map(|e| one_line(&self.scrubber.scrub(&e.to_string())));
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
            (Outcome::Failed, response) => {
                Err(StepFailed { cause: cause.unwrap_or(Cause::Assertion), response, possibly_written: false })
            }
            (_, Some(response)) => Ok(response),
            (_, None) => Err(StepFailed { cause: Cause::InvalidResponse, response: None, possibly_written: false }),
        }
    }

    pub fn steps(&self) -> &[StepResult] {
        &self.steps
    }

    pub fn finish(mut self) -> RunResult {
        // Once more with everything the run learned: a value can become known (a login capture,
        // a cookie) after an earlier step quoted it.
        for step in &mut self.steps {
            step.error = step.error.take().map(|error| self.scrubber.scrub(&error));
        }
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
            account: self.account,
            certificate: self.certificate.map(|(_, certificate)| certificate),
            trace_id: self.setup.trace.map(|trace| trace.trace_id().to_string()),
        };
        run.cause = run.deciding_step().and_then(|s| s.cause);
        run
    }
}

/// Whether the target may have carried out one attempt that ended in `sent`. A failure before
/// any connection (refused, unreachable, TLS handshake, no time left, a request that could not
/// be built) proves nothing was sent, and a 4xx is the target refusing the request (a 409 "key
/// in use" speaks of an earlier attempt, which counts on its own). Anything else may be a live
/// write: a timeout, a connection lost after sending, an answer that is not HTTP, a success, and
/// a 5xx, whose outcome payment APIs document as indeterminate (the write may have committed
/// before the error).
fn may_have_written(sent: &Result<HttpResponse, CheckError>) -> bool {
    match sent {
        Ok(response) => !(400..500).contains(&response.status),
        Err(
            CheckError::Connect(_) | CheckError::Tls(_) | CheckError::OutOfTime { .. } | CheckError::Misconfigured(_),
        ) => false,
        Err(_) => true,
    }
}

/// The cookies of one run, as a browser keeps them for one site: set by an origin, sent back
/// to that origin on every later request of the run, never shared between runs. Each origin
/// (the main target, each named one) has its own cookies: a session cookie of the identity
/// provider is a credential the API must never see. `Domain` and `Path` are not consulted.
#[derive(Default)]
pub struct CookieJar {
    cookies: Vec<(url::Origin, String, Secret<String>)>,
    /// The origin of the latest answer. A `cookie` capture is read right after its step's
    /// answer, and a step's redirects stay within its origin, so this is the step's origin.
    last: Option<url::Origin>,
}

impl CookieJar {
    fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// The value of the cookie `name` that the origin of the latest answer set (names are
    /// case-sensitive, as browsers keep them): another origin's cookie of that name is never it.
    pub fn value(&self, name: &str) -> Option<&str> {
        let origin = self.last.as_ref()?;
        self.cookies
            .iter()
            .find(|(set_by, n, _)| set_by == origin && n == name)
            .map(|(_, _, value)| value.expose().as_str())
    }

    fn apply(&self, origin: &url::Origin, headers: &mut Vec<(String, String)>) {
        let ours: Vec<String> = self
            .cookies
            .iter()
            .filter(|(set_by, _, _)| set_by == origin)
            .map(|(_, name, value)| format!("{name}={}", value.expose()))
            .collect();
        if ours.is_empty() {
            return;
        }
        match headers.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case("cookie")) {
            Some((_, existing)) => *existing = format!("{existing}; {}", ours.join("; ")),
            None => headers.push(("cookie".into(), ours.join("; "))),
        }
    }

    /// Keeps the response's cookies; returns the values it set, for scrubbing.
    fn store(&mut self, origin: &url::Origin, response: &HttpResponse) -> Vec<Secret<String>> {
        self.last = Some(origin.clone());
        let mut fresh = Vec::new();
        for line in response.header_values("set-cookie") {
            let mut attributes = line.split(';');
            let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().trim_matches('"').to_string());
            let (mut max_age, mut expires) = (None, None);
            for attribute in attributes {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.trim() {
                    key if key.eq_ignore_ascii_case("max-age") => max_age = val.trim().parse::<i64>().ok().or(max_age),
                    key if key.eq_ignore_ascii_case("expires") => expires = cookie_date(val.trim()).or(expires),
                    _ => {}
                }
            }
            // Max-Age decides over Expires (RFC 6265, 5.3); a past Expires is how most servers
            // delete a cookie.
            let expired = match (max_age, expires) {
                (Some(age), _) => age <= 0,
                (None, Some(at)) => at <= OffsetDateTime::now_utc(),
                (None, None) => false,
            };
            self.cookies.retain(|(set_by, existing, _)| set_by != origin || *existing != name);
            if !expired && !value.is_empty() {
                let value = Secret::new(value);
                fresh.push(value.clone());
                self.cookies.push((origin.clone(), name, value));
            }
        }
        fresh
    }
}

/// A cookie date as RFC 6265 (5.1.1) reads one, however the server spells it
/// (`Thu, 01 Jan 1970 00:00:00 GMT`, `Thu, 01-Jan-70 00:00:00 GMT`, `Sun Nov  6 08:49:37 1994`);
/// `None` when it is not one, and then the attribute is ignored, as a browser ignores it.
fn cookie_date(text: &str) -> Option<OffsetDateTime> {
    let delimiter = |c: char| matches!(c, '\t' | ' '..='/' | ';'..='@' | '['..='`' | '{'..='~');
    let (mut clock, mut day, mut month, mut year) = (None, None, None, None);
    for token in text.split(delimiter).filter(|t| !t.is_empty()) {
        if clock.is_none()
            && let Some(found) = time_of_day(token)
        {
            clock = Some(found);
        } else if day.is_none()
            && let Some((found, 1..=2)) = leading_number(token)
        {
            day = Some(found);
        } else if month.is_none()
            && let Some(found) = month_named(token)
        {
            month = Some(found);
        } else if year.is_none()
            && let Some((found, 2..=4)) = leading_number(token)
        {
            year = Some(found);
        }
    }
    let year = match year? {
        two @ 70..=99 => two + 1900,
        two @ 0..=69 => two + 2000,
        four => four,
    };
    let (hour, minute, second) = clock?;
    if year < 1601 {
        return None;
    }
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month?, u8::try_from(day?).ok()?).ok()?;
    Some(date.with_hms(hour, minute, second).ok()?.assume_utc())
}

/// The number a token starts with, and how many digits it has; `None` without 1 to 4 digits.
fn leading_number(token: &str) -> Option<(u32, usize)> {
    let digits = token.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=4).contains(&digits) {
        return None;
    }
    Some((token[..digits].parse().ok()?, digits))
}

/// `hh:mm:ss`, each of one or two digits, as a cookie date's time.
fn time_of_day(token: &str) -> Option<(u8, u8, u8)> {
    let (hour, rest) = token.split_once(':')?;
    let (minute, rest) = rest.split_once(':')?;
    let field = |text: &str| match leading_number(text) {
        Some((n, 1..=2)) => u8::try_from(n).ok(),
        _ => None,
    };
    let whole = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if !whole(hour) || !whole(minute) {
        return None;
    }
    Some((field(hour)?, field(minute)?, field(rest)?))
}

fn month_named(token: &str) -> Option<time::Month> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let prefix = token.get(..3)?;
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(prefix))?;
    time::Month::try_from(index as u8 + 1).ok()
}

/// A whole URL or an absolute path a step was handed (a next link), resolved against `base`;
/// refused, before anything is sent, when it leaves the base's origin. The target handed it
/// over, so a bad one is the target's invalid response. Neither message quotes a query.
pub fn within_origin(base: &Url, link: &str) -> Result<Url, CheckError> {
    let mut url = base.join(link).map_err(|e| {
        CheckError::InvalidResponse(format!("the step's url does not form a URL ({e}); nothing was sent"))
    })?;
    // A fragment is the client's own, never sent: a link that carries one is the same request.
    url.set_fragment(None);
    if url.origin() != base.origin() {
        return Err(CheckError::InvalidResponse(format!(
            "the step's url {} leaves its origin {}; nothing was sent there",
            without_query(&url),
            base.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// Joins a step path onto the base URL, keeping any path prefix the base has
/// (`https://host/shop` + `/api/x` is `https://host/shop/api/x`).
///
/// The result is what parsing the base's text with the path appended gives. Usually it is had
/// for less: the base's scheme and host were parsed when it was, so only the path is parsed, as
/// an absolute path resolved against the base. That reads the same whenever the base has no query
/// or fragment for the path to land in, and the path cannot read as `//host` (two slashes, or a
/// backslash, once tabs and newlines are dropped as URL parsing drops them); otherwise the whole
/// text is parsed.
pub fn join(base: &Url, path: &str) -> Result<Url, CheckError> {
    let failed = |e: url::ParseError| CheckError::Misconfigured(format!("step path {path:?} does not form a URL: {e}"));
    let rest = path.trim_start_matches('/');
    let absolute = format!("{}/{rest}", base.path().trim_end_matches('/'));
    let second = absolute[1..].chars().find(|c| !matches!(c, '\t' | '\n' | '\r'));
    let whole_text_needed = base.query().is_some()
        || base.fragment().is_some()
        || base.cannot_be_a_base()
        || matches!(second, Some('/' | '\\'));
    if whole_text_needed {
        let joined = format!("{}/{rest}", base.as_str().trim_end_matches('/'));
        return Url::parse(&joined).map_err(failed);
    }
    Url::options().base_url(Some(base)).parse(&absolute).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ScriptedTarget;
    use crate::journey::file::CaptureSource;
    use crate::secret::REDACTED;

    const FAST: Budget = Budget { degraded_after: Duration::from_millis(200), fail_after: Duration::from_millis(500) };

    fn journey(target: &Arc<ScriptedTarget>) -> StepRecorder {
        StepRecorder::new(RunSetup {
            http: target.clone(),
            check: "products".into(),
            env: "prod".into(),
            target: Url::parse("http://shop.test/base/").unwrap(),
            run_id: "run-1".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 2, backoff: Duration::from_millis(10) },
            max_redirects: 3,
            deadline: None,
            trace: None,
        })
    }

    fn get(name: &str) -> StepSpec {
        StepSpec::new(name, Method::Get, "/api/products", ExpectedStatus::one(200), FAST).assert(Assertion::Json {
            pointer: "/data".into(),
            optional: false,
            test: crate::journey::judge::JsonTest::MinItems(1),
        })
    }

    fn redirect(status: u16, location: &str) -> Result<HttpResponse, CheckError> {
        Ok(HttpResponse::new(status, vec![("location".into(), location.into())], vec![]))
    }

    fn login_post() -> StepSpec {
        StepSpec::new("login", Method::Post, "/login", ExpectedStatus::one(200), FAST)
            .role(StepRole::Login)
            .body(Body::json(&serde_json::json!({"password": "hunter2"})))
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
            .rejected(ExpectedStatus::Set(vec![401, 403]))
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
        j.setup.deadline = Some(Instant::now() + Duration::from_millis(300));
        assert!(j.step(get("products")).await.is_err());
        assert_eq!(target.requests().len(), 1);
    }

    #[tokio::test]
    async fn secrets_echoed_by_the_target_are_scrubbed_from_errors() {
        let target = Arc::new(
            ScriptedTarget::default().then(500, "bad password hunter2-pw").then(500, "bad password hunter2-pw"),
        );
        let mut j = journey(&target);
        j.scrub([&Secret::new("hunter2-pw".to_string())]);
        let _ = j.step(get("products")).await;
        let error = j.steps()[0].error.clone().unwrap();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("[REDACTED]"), "{error}");
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_refused_and_nothing_is_sent_there() {
        // GIVEN a login answered with a 307 to another host (307 would re-send the body)
        let target =
            Arc::new(ScriptedTarget::default().then_after(Duration::ZERO, redirect(307, "http://evil.test/steal?t=1")));
        let mut j = journey(&target);
        // WHEN the step runs
        let failed = j.step(login_post()).await.unwrap_err();
        // THEN it fails as invalid_response naming the location (without its query), and only
        // the target was ever asked
        assert_eq!(failed.cause, Cause::InvalidResponse);
        let error = j.steps()[0].error.clone().unwrap();
        assert!(error.contains("http://evil.test/steal") && !error.contains("t=1"), "{error}");
        assert!(target.requests().iter().all(|r| r.url.host_str() == Some("shop.test")));
        assert_eq!(target.requests().len(), 1, "a login is retried, but never towards the other host");
    }

    #[tokio::test]
    async fn https_to_http_and_other_ports_are_other_origins() {
        for location in ["https://shop.test/base/x", "http://shop.test:8080/base/x"] {
            let target = Arc::new(ScriptedTarget::default().then_after(Duration::ZERO, redirect(302, location)));
            let mut j = journey(&target);
            j.setup.retry.attempts = 1;
            assert_eq!(j.step(get("p")).await.unwrap_err().cause, Cause::InvalidResponse, "{location}");
            assert_eq!(target.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn same_origin_redirects_are_followed_and_303_turns_a_post_into_a_get() {
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::ZERO, redirect(303, "/base/welcome"))
                .then(200, r#"{"ok":true}"#),
        );
        let mut j = journey(&target);
        j.step(login_post()).await.unwrap();
        let requests = target.requests();
        assert_eq!(requests[1].url.as_str(), "http://shop.test/base/welcome");
        assert_eq!((requests[1].method, requests[1].body.is_none()), (Method::Get, true));
    }

    #[tokio::test]
    async fn too_many_redirects_are_invalid_response() {
        let mut script = ScriptedTarget::default();
        for _ in 0..8 {
            script = script.then_after(Duration::ZERO, redirect(302, "/base/loop"));
        }
        let target = Arc::new(script);
        let mut j = journey(&target);
        j.setup.retry.attempts = 1;
        let _ = j.step(get("p")).await;
        assert_eq!(j.steps()[0].error.as_deref(), Some("invalid response: more than 3 redirects"));
    }

    #[tokio::test]
    async fn cookies_set_by_the_target_are_sent_back_and_login_cookies_are_scrubbed() {
        let session = HttpResponse::new(
            200,
            vec![("set-cookie".into(), "session=s3cr3t-cookie; HttpOnly; Path=/".into())],
            b"{}".to_vec(),
        );
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::ZERO, Ok(session))
                .then(500, "session s3cr3t-cookie expired")
                .then(500, "session s3cr3t-cookie expired"),
        );
        let mut j = journey(&target);
        j.step(login_post()).await.unwrap();
        let _ = j.step(get("account")).await;
        let sent = &target.requests()[1];
        assert!(sent.headers.contains(&("cookie".into(), "session=s3cr3t-cookie".into())), "{:?}", sent.headers);
        let error = j.steps()[1].error.clone().unwrap();
        assert!(!error.contains("s3cr3t") && error.contains("[REDACTED]"), "{error}");
    }

    #[tokio::test]
    async fn a_cookie_deleted_with_a_past_expires_is_not_sent() {
        // GIVEN a login setting three cookies, then a logout deleting two of them the way servers do
        let answer = |cookies: &[&str]| {
            let headers = cookies.iter().map(|c| ("set-cookie".to_string(), c.to_string())).collect();
            Ok(HttpResponse::new(200, headers, b"{}".to_vec()))
        };
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::ZERO, answer(&["session=s1; Path=/", "cart=c1", "theme=dark"]))
                .then_after(
                    Duration::ZERO,
                    answer(&[
                        "session=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
                        "cart=gone; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=-1",
                        "theme=light; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
                    ]),
                )
                .then(200, r#"{"data":[1]}"#),
        );
        let mut j = journey(&target);
        j.step(login_post()).await.unwrap();
        j.step(StepSpec::new("logout", Method::Post, "/logout", ExpectedStatus::one(200), FAST)).await.unwrap();
        // WHEN the next step runs
        j.step(get("products")).await.unwrap();
        // THEN only the cookie that was not deleted goes back, with its new value
        let sent = &target.requests()[2];
        let cookies: Vec<_> = sent.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("cookie")).collect();
        assert_eq!(cookies, [&("cookie".to_string(), "theme=light".to_string())]);
    }

    #[tokio::test]
    async fn max_age_decides_over_expires_and_an_unreadable_date_keeps_the_cookie() {
        let set = |cookie: &str| Ok(HttpResponse::new(200, vec![("set-cookie".into(), cookie.into())], b"{}".to_vec()));
        for (cookie, kept) in [
            ("a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", true),
            ("a=1; Max-Age=0; Expires=Fri, 31 Dec 9999 23:59:59 GMT", false),
            ("a=1; Expires=Sunday, 06-Nov-94 08:49:37 GMT", false),
            ("a=1; Expires=Sun Nov  6 08:49:37 1994", false),
            ("a=1; Expires=whenever", true),
        ] {
            let target = Arc::new(
                ScriptedTarget::default().then_after(Duration::ZERO, set(cookie)).then(200, r#"{"data":[1]}"#),
            );
            let mut j = journey(&target);
            j.step(login_post()).await.unwrap();
            j.step(get("products")).await.unwrap();
            let sent = target.requests()[1].headers.iter().any(|(k, _)| k == "cookie");
            assert_eq!(sent, kept, "{cookie}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Any moment from 1601 to 9999, written in each spelling servers use for `Expires`, reads
        /// back as that moment.
        #[test]
        fn a_cookie_date_reads_back_in_every_spelling(at in -11_644_473_600i64..253_402_300_800) {
            let at = OffsetDateTime::from_unix_timestamp(at).unwrap();
            const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let (month, weekday) = (MONTHS[at.month() as usize - 1], &at.weekday().to_string()[..3]);
            let clock = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
            for text in [
                format!("{weekday}, {:02} {month} {} {clock} GMT", at.day(), at.year()),
                format!("{weekday}, {:02}-{month}-{} {clock} GMT", at.day(), at.year()),
                format!("{weekday} {month} {:>2} {clock} {}", at.day(), at.year()),
            ] {
                proptest::prop_assert_eq!(cookie_date(&text), Some(at), "{}", text);
            }
        }
    }

    #[tokio::test]
    async fn a_header_the_step_sets_itself_is_sent_once() {
        // GIVEN a spec whose headers (from [defaults], say) name what its auth, body and the
        // engine set
        let target = Arc::new(ScriptedTarget::default().then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        let spec = login_post()
            .header("Authorization", "Bearer default")
            .header("content-type", "text/plain")
            .header("x-synthetic-check", "other")
            .header("X-Synthetic-Run-Id", "forged")
            .header("Accept", "application/json")
            .auth(Auth::Bearer(Secret::new("tok".into())));
        // WHEN it is sent
        j.step(spec).await.unwrap();
        // THEN each of those is there once, as the step's auth, body and the engine set it
        let sent = &target.requests()[0];
        let named = |name: &str| sent.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count();
        assert_eq!((named("authorization"), named("content-type")), (0, 0), "{:?}", sent.headers);
        assert_eq!(sent.auth, Some(Auth::Bearer(Secret::new("tok".into()))));
        assert_eq!(sent.body.as_ref().map(|b| b.content_type.as_str()), Some("application/json"));
        assert_eq!(named("x-synthetic-check"), 1);
        assert_eq!(named("x-synthetic-run-id"), 1);
        assert!(sent.headers.contains(&("x-synthetic-run-id".into(), "run-1".into())));
        assert!(sent.headers.contains(&("X-Synthetic-Check".into(), "products".into())));
        assert_eq!(named("accept"), 1);
    }

    #[tokio::test]
    async fn an_attempt_never_outlives_the_deadline() {
        // GIVEN a hanging target and a deadline well inside the step's 500 ms budget
        let hang = Ok(HttpResponse::with(200, r#"{"data":[1]}"#));
        let target = Arc::new(ScriptedTarget::default().then_after(Duration::from_secs(60), hang));
        let mut j = journey(&target);
        j.setup.deadline = Some(Instant::now() + Duration::from_millis(250));
        // WHEN the step runs
        let started = Instant::now();
        let failed = j.step(get("products")).await.unwrap_err();
        // THEN its one attempt was cut to the time left
        assert_eq!(failed.cause, Cause::Timeout);
        assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
        assert_eq!(target.requests().len(), 1);
    }

    #[tokio::test]
    async fn near_the_deadline_normal_steps_are_skipped_but_cleanup_runs() {
        let target = Arc::new(ScriptedTarget::default().then(200, "{}"));
        let mut j = journey(&target);
        j.reserve_for_cleanup(Duration::from_millis(400));
        j.setup.deadline = Some(Instant::now() + Duration::from_millis(450));
        let failed = j.step(get("products")).await.unwrap_err();
        assert_eq!(failed.cause, Cause::Timeout);
        assert!(j.steps()[0].error.as_deref().unwrap().starts_with("not sent: only"), "{:?}", j.steps()[0]);
        let refund =
            StepSpec::new("refund", Method::Post, "/refund", ExpectedStatus::one(200), FAST).role(StepRole::Cleanup);
        j.step(refund).await.unwrap();
        assert_eq!(target.requests().len(), 1, "only the cleanup was sent");
    }

    #[tokio::test]
    async fn bearer_and_basic_credentials_are_scrubbed_from_errors() {
        let (bearer_echo, basic_echo) = ("token rejected: Bearer tok-abc-123", "basic svc-user:svc-pass-9 rejected");
        let target = Arc::new(ScriptedTarget::default().then(401, bearer_echo).then(401, basic_echo));
        let mut j = journey(&target);
        j.setup.retry.attempts = 1;
        let _ = j.step(get("a").auth(Auth::Bearer(Secret::new("tok-abc-123".into())))).await;
        let basic =
            Auth::Basic { username: Secret::new("svc-user".into()), password: Secret::new("svc-pass-9".into()) };
        let _ = j.step(get("b").auth(basic)).await;
        for step in j.steps() {
            let error = step.error.clone().unwrap();
            assert!(
                !error.contains("tok-abc") && !error.contains("svc-pass") && !error.contains("svc-user"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn an_echoed_basic_authorization_header_is_scrubbed() {
        // GIVEN a target that echoes the Authorization header it got (base64 of user:password)
        let echo = "rejected: Authorization: Basic c3ZjLXVzZXI6c3ZjLXBhc3MtOQ==";
        let target = Arc::new(ScriptedTarget::default().then(401, echo));
        let mut j = journey(&target);
        j.setup.retry.attempts = 1;
        let basic =
            Auth::Basic { username: Secret::new("svc-user".into()), password: Secret::new("svc-pass-9".into()) };
        // WHEN the step fails
        let _ = j.step(get("a").auth(basic)).await;
        // THEN the encoded credential is cut out like the credential itself
        let error = j.steps()[0].error.clone().unwrap();
        assert!(!error.contains("c3ZjLXVzZXI6") && error.contains("Basic [REDACTED]"), "{error}");
    }

    #[tokio::test]
    async fn assertion_messages_are_scrubbed_before_they_are_cut() {
        // GIVEN a 64-hex session id known as a secret, which the target answers in a JSON field
        // and a header that assertions quote
        let session = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let response = HttpResponse::new(
            200,
            vec![("content-type".into(), "application/json".into()), ("x-session".into(), session.into())],
            format!(r#"{{"session":"{session}"}}"#).into_bytes(),
        );
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(Duration::ZERO, Ok(response.clone()))
                .then_after(Duration::ZERO, Ok(response)),
        );
        let mut j = journey(&target);
        j.setup.retry.attempts = 1;
        j.scrub([&Secret::new(session.to_string())]);
        let json = Assertion::Json {
            pointer: "/session".into(),
            optional: false,
            test: crate::journey::judge::JsonTest::Equals(serde_json::json!("other")),
        };
        let header =
            Assertion::Header { name: "x-session".into(), test: crate::journey::judge::HeaderTest::Equals("x".into()) };
        // WHEN both assertions fail
        for (name, assertion) in [("json", json), ("header", header)] {
            let spec = StepSpec::new(name, Method::Get, "/s", ExpectedStatus::one(200), FAST).assert(assertion);
            let _ = j.step(spec).await;
        }
        // THEN no part of the session id is left in either message
        for step in j.steps() {
            let error = step.error.clone().unwrap();
            assert!(!error.contains(&session[..12]) && error.contains(REDACTED), "{error}");
        }
    }

    #[tokio::test]
    async fn a_passing_answer_without_a_capture_fails_the_step() {
        let target = Arc::new(ScriptedTarget::default().then(200, r#"{"data":[1]}"#).then(200, r#"{"data":[1]}"#));
        let mut j = journey(&target);
        let capture = Capture { name: "payment_id".into(), source: CaptureSource::Json("/id".into()) };
        let failed = j.step(get("create").capture(capture)).await.unwrap_err();
        assert_eq!(failed.cause, Cause::Assertion);
        assert_eq!(j.steps()[0].error.as_deref(), Some("capture payment_id: JSON /id is missing"));
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
            account: None,
            certificate: None,
            trace_id: None,
        };
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["steps"][0]["outcome"], "failed");
        assert_eq!(json["steps"][0]["cause"], "connect");
        assert_eq!(json["steps"][0]["attempts"], 2);
        assert!(json.get("certificate").is_none(), "no certificate, no field: {json}");
        let back: RunResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, run);

        // A result with a certificate round-trips with the documented fields.
        let certificate =
            Certificate { days_left: 5, not_after: "2026-11-26T10:00:00Z".into(), subject: "CN=shop".into() };
        let with = RunResult { certificate: Some(certificate.clone()), ..run };
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(
            json["certificate"],
            serde_json::json!({"days_left": 5, "not_after": "2026-11-26T10:00:00Z", "subject": "CN=shop"})
        );
        assert_eq!(serde_json::from_value::<RunResult>(json).unwrap().certificate, Some(certificate));
    }

    #[tokio::test]
    async fn the_first_certificate_of_the_run_is_kept_with_its_step_and_a_finding_degrades_that_step() {
        // GIVEN a run whose first answer came over plain HTTP and whose later answers carried
        // two different certificates
        let over_tls = |days_left: i64| {
            let certificate = Certificate { days_left, not_after: "t".into(), subject: "CN=shop".into() };
            HttpResponse::with(200, r#"{"data":[1]}"#).with_certificate(Some(certificate))
        };
        let target = Arc::new(
            ScriptedTarget::default()
                .then(200, r#"{"data":[1]}"#)
                .then_after(Duration::ZERO, Ok(over_tls(5)))
                .then_after(Duration::ZERO, Ok(over_tls(300))),
        );
        let mut j = journey(&target);
        for name in ["plain", "first_tls", "second_tls"] {
            j.step(get(name)).await.unwrap();
        }
        // THEN the first certificate is the run's, named with its step
        let (step, certificate) = j.certificate().unwrap();
        assert_eq!((step, certificate.days_left), ("first_tls", 5));

        // WHEN a finding degrades that step
        j.degrade("first_tls", Cause::Tls, "expires soon");
        let run = j.finish();

        // THEN that step, and so the run, is degraded with the finding's cause
        assert_eq!((run.status, run.cause), (Outcome::Degraded, Some(Cause::Tls)));
        assert_eq!(run.steps[1].error.as_deref(), Some("expires soon"));
        assert_eq!(run.steps[2].outcome, Outcome::Passed);
        assert_eq!(run.certificate.map(|c| c.days_left), Some(5));
    }

    #[tokio::test]
    async fn a_finding_never_turns_a_failed_step_into_a_degraded_one() {
        let target = Arc::new(ScriptedTarget::default().then(500, "down").then(500, "down"));
        let mut j = journey(&target);
        let _ = j.step(get("products")).await;
        j.degrade("products", Cause::Tls, "expires soon");
        let run = j.finish();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)));
    }

    #[test]
    fn results_written_before_certificates_existed_still_parse() {
        let old = r#"{"check":"health","env":"prod","target":"https://shop/","run_id":"r",
            "started_at":"2026-11-21T10:00:00Z","duration_ms":3,"status":"passed","cause":null,"steps":[]}"#;
        let run: RunResult = serde_json::from_str(old).unwrap();
        assert_eq!((run.status, run.certificate), (Outcome::Passed, None));
    }

    #[test]
    fn join_keeps_base_paths_and_rejects_nonsense() {
        let base = Url::parse("https://h/shop").unwrap();
        assert_eq!(join(&base, "/health").unwrap().as_str(), "https://h/shop/health");
        assert_eq!(join(&Url::parse("https://h/").unwrap(), "health").unwrap().as_str(), "https://h/health");
    }

    #[test]
    fn join_gives_what_parsing_the_joined_text_gives_even_for_odd_paths() {
        let bases = [
            "https://h/",
            "https://h/shop",
            "https://h/shop/",
            "http://127.0.0.1:8080/a//",
            "https://h:443/x?q=1",
            "https://h/x#top",
            "HTTPS://EXAMPLE.com/",
            "http://h//double/",
            "http://h/%2F/",
        ];
        let paths = [
            "/health",
            "health",
            "//health",
            "/api/items/..%2Fadmin",
            "/a/../../b",
            "/search?q=a b&x=%zz",
            "/x#frag",
            "\\evil.test/x",
            "/\\evil.test/x",
            "/\t/evil.test/x",
            "\t\\evil.test",
            "/http:evil.test",
            "javascript:alert(1)",
            "/ü ber",
            "",
            "/",
            "?only=query",
        ];
        for base in bases {
            let base = Url::parse(base).unwrap();
            for path in paths {
                let text = format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
                let whole = Url::parse(&text).map(String::from).map_err(|e| e.to_string());
                let joined = join(&base, path).map(String::from).map_err(|e| e.to_string());
                assert_eq!(joined.as_ref().ok(), whole.as_ref().ok(), "{base} + {path:?}");
                assert_eq!(joined.is_err(), whole.is_err(), "{base} + {path:?}");
            }
        }
    }

    #[test]
    fn backoff_doubles() {
        let policy = RetryPolicy { attempts: 4, backoff: Duration::from_secs(2) };
        assert_eq!(policy.delay_before(1), Duration::from_secs(2));
        assert_eq!(policy.delay_before(3), Duration::from_secs(8));
    }
}

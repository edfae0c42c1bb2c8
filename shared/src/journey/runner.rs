//! The journey runner: runs a [`JourneyDef`] step by step through the [`StepRecorder`].
//!
//! What makes a journey safe to run in production lives here, once for every check:
//! - each step is rendered just before it is sent, every value encoded for where it lands;
//! - captures feed later steps; what a login step hands back is scrubbed like a secret;
//! - a rejected login re-reads the secret once and, if it was rotated, signs in again;
//! - after a failed step the normal steps stop, but every cleanup step whose captures exist
//!   still runs, so a sandbox write is undone or reported as `cleanup_failed`;
//! - a write whose outcome is unknown (it may have been carried out, but no answer said what
//!   to clean up) is, when idempotent, replayed once with the same Idempotency-Key to learn it;
//!   if that does not yield what the cleanup needs, the run says `cleanup_failed` and names the
//!   key. A write that was never sent (a refused connection) is never reported as possibly live;
//! - a monitor failure mid-journey (a re-read secret that is broken) is recorded on its step,
//!   and the cleanup steps still run.

use crate::error::{Cause, CheckError};
use crate::http::{Auth, Body, HttpResponse, json_at};
use crate::journey::file::{
    AssertDef, AuthDef, BodyDef, Capture, CaptureSource, HeaderTestDef, JourneyDef, JsonTemplate, JsonTestDef, SignDef,
    StepDef,
};
use crate::journey::judge::{Assertion, HeaderTest, JsonTest, RejectedWhen};
use crate::journey::sign::Signing;
use crate::journey::template::{Encoding, GeneratedValues, Ref, RenderError, Scope, Template};
use crate::journey::{StepFailed, StepRecorder, StepRole, StepSpec};
use crate::result::Account;
use crate::secret::{CredentialStore, Credentials, Secret};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Runs every step of `journey_def` into `journey`. A failing step is the check's result, not an
/// error; the error is for a broken monitor (unreadable secret, missing secret field) found
/// before anything was sent. Once a step has run, a monitor failure is that step's failure, so
/// the cleanup steps still run and the run still has a result.
pub async fn run(
    journey_def: &JourneyDef,
    journey: &mut StepRecorder,
    credentials: Option<&CredentialStore>,
) -> Result<(), CheckError> {
    let mut scope = RunScope {
        secrets: None,
        captures: HashMap::new(),
        typed: HashMap::new(),
        run_id: journey.run_id().to_string(),
        generated: GeneratedValues::default(),
    };
    if journey_def.uses_secrets() {
        let store = credentials.ok_or_else(|| {
            CheckError::Misconfigured(format!(
                "journey {} uses {{{{secret.*}}}} but CREDENTIALS_SECRET_ID is not set",
                journey_def.check
            ))
        })?;
        let secrets = store.get().await?;
        use_secrets(journey_def, journey, &mut scope, store, secrets)?;
    }
    journey.reserve_for_cleanup(longest_cleanup(journey_def).map_or(Duration::ZERO, |s| s.budget.fail_after));

    let mut halted = false;
    for (index, step) in journey_def.steps.iter().enumerate() {
        let skipped = step.skip_if.as_ref().is_some_and(|skip| skip.holds(scope.capture(&skip.var)));
        let runs = match step.role {
            StepRole::Cleanup => step.captures_used().iter().all(|c| scope.captures.contains_key(c)),
            StepRole::Normal | StepRole::Login => !halted,
        };
        if skipped || !runs {
            continue;
        }
        let ran = run_step(journey_def, step, journey, &mut scope, credentials).await;
        if let Err(failed) = ran
            && step.role != StepRole::Cleanup
        {
            halted = true;
            learn_what_to_clean_up(journey_def, index, journey, &mut scope, failed.possibly_written).await;
        }
    }
    Ok(())
}

/// The cleanup step with the longest budget: that budget is kept back from the normal steps so
/// the cleanup steps can still run before the deadline.
pub fn longest_cleanup(journey_def: &JourneyDef) -> Option<&StepDef> {
    journey_def.steps.iter().filter(|s| s.role == StepRole::Cleanup).max_by_key(|s| s.budget.fail_after)
}

/// The longest a run of `journey` can take before its alert is published, by the rules this
/// engine runs it by, with `retry` the step retry policy: every step may run (a cleanup step
/// always may); a repeatable step (a GET, HEAD, PUT, DELETE, an `idempotent` write, a login) may
/// use every attempt with the backoffs between them; a polled step its whole `until` window
/// first; a rejected login may run once more in full after the secret is re-read; and one
/// idempotent write of unknown outcome may be replayed once on the cleanup's time. It bounds the
/// function's timeout (`monitor::timeout_seconds`), so it errs long, never short.
pub fn worst_case(journey_def: &JourneyDef, retry: crate::journey::RetryPolicy) -> Duration {
    use crate::journey::exchange::MIN_ATTEMPT;
    let mut total = Duration::ZERO;
    let mut replay = Duration::ZERO;
    for step in &journey_def.steps {
        let fail_after = step.budget.fail_after;
        let repeatable = step.method.is_idempotent() || step.idempotent || step.role == StepRole::Login;
        let attempts = if repeatable { retry.attempts.max(1) } else { 1 };
        let retries: Duration = (1..attempts).map(|n| retry.delay_before(n) + fail_after).sum();
        let first = match step.until {
            Some(until) => until.within + MIN_ATTEMPT,
            None => fail_after,
        };
        let once = first + retries;
        total += if step.role == StepRole::Login { once * 2 } else { once };
        if step.idempotent {
            replay = replay.max(fail_after);
        }
    }
    total + replay
}

/// The values a step's templates can name during one run.
struct RunScope {
    secrets: Option<Arc<Credentials>>,
    captures: HashMap<String, String>,
    /// The JSON value of each capture taken from a JSON body, for a JSON value that is exactly
    /// that capture.
    typed: HashMap<String, Value>,
    run_id: String,
    /// Made anew for each step rendered.
    generated: GeneratedValues,
}

impl Scope for RunScope {
    fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.as_ref()?.field(name).map(|v| v.expose().as_str())
    }

    fn capture(&self, name: &str) -> Option<&str> {
        self.captures.get(name).map(String::as_str)
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn generated(&self) -> &GeneratedValues {
        &self.generated
    }
}

/// Checks the secret has every field the journey names, then makes its values scrubbed and
/// available. A missing field is the monitor's misconfiguration, named without any value.
fn use_secrets(
    journey_def: &JourneyDef,
    journey: &mut StepRecorder,
    scope: &mut RunScope,
    store: &CredentialStore,
    secrets: Arc<Credentials>,
) -> Result<(), CheckError> {
    let missing: Vec<&str> = journey_def.secret_fields().filter(|f| secrets.field(f).is_none()).collect();
    if !missing.is_empty() {
        return Err(CheckError::Misconfigured(format!(
            "secret {} has no string field {} that journey {} uses",
            store.secret_id(),
            missing.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", "),
            journey_def.check
        )));
    }
    journey.scrub_forms(secrets.scrub_forms());
    scope.secrets = Some(secrets);
    Ok(())
}

/// Runs one step; `Ok` when it passed (or was merely degraded).
async fn run_step(
    journey_def: &JourneyDef,
    step: &StepDef,
    journey: &mut StepRecorder,
    scope: &mut RunScope,
    credentials: Option<&CredentialStore>,
) -> Result<(), StepFailed> {
    let spec = match render(journey_def, step, scope) {
        Ok(spec) => spec,
        Err(error) => return Err(journey.fail(&stub(step), unrenderable(&error))),
    };
    let mut result = journey.step(spec).await;
    if let (Err(failed), StepRole::Login, Some(store)) = (&result, step.role, credentials)
        && failed.cause == Cause::CredentialsRejected
    {
        // A secret that cannot be re-read, or was rotated into one lacking a field, is the
        // monitor's failure; it is this step's result, not an abort: earlier writes still get
        // cleaned up.
        let refreshed = match store.refresh().await {
            Ok((fresh, true)) => use_secrets(journey_def, journey, scope, store, fresh).map(|()| true),
            Ok((_, false)) => Ok(false),
            Err(error) => Err(error),
        };
        match refreshed {
            Ok(true) => {
                result = match render(journey_def, step, scope) {
                    Ok(spec) => journey.rerun(spec).await,
                    Err(error) => Err(journey.fail(&stub(step), unrenderable(&error))),
                }
            }
            Ok(false) => {}
            Err(error) => journey.escalate(&step.name, error),
        }
    }
    if step.role == StepRole::Login {
        match &result {
            Ok(_) => journey.note_account(Account::Accepted),
            Err(failed) if failed.cause == Cause::CredentialsRejected => journey.note_account(Account::Rejected),
            Err(_) => {}
        }
    }
    let response = match &result {
        Ok(response) => Some(response),
        Err(failed) => failed.response.as_ref(),
    };
    if let Some(response) = response {
        keep_captures(step, response, journey, scope);
    }
    result.map(|_| ())
}

/// Takes whatever captures the answer holds, even from a failed step: a payment created and
/// then judged wrong must still be refunded.
fn keep_captures(step: &StepDef, response: &HttpResponse, journey: &mut StepRecorder, scope: &mut RunScope) {
    for capture in &step.captures {
        if let Ok(value) = capture.extract(response, journey.cookies()) {
            if step.role == StepRole::Login {
                journey.scrub([&Secret::new(value.clone())]);
            }
            match captured_json(capture, response) {
                Some(typed) => scope.typed.insert(capture.name.clone(), typed),
                None => scope.typed.remove(&capture.name),
            };
            scope.captures.insert(capture.name.clone(), value);
        }
    }
}

/// After the step at `index` failed: if the target may have carried out its write
/// (`possibly_written`) but no answer yielded the captures a later cleanup step needs, the
/// write's outcome is unknown. An idempotent write is replayed once with the same
/// Idempotency-Key (a compliant API answers with the original result) so the cleanup knows what
/// to undo; when that does not yield the captures either, or the write cannot be replayed, the
/// step is escalated to `cleanup_failed`, naming the key to look the write up by.
async fn learn_what_to_clean_up(
    journey_def: &JourneyDef,
    index: usize,
    journey: &mut StepRecorder,
    scope: &mut RunScope,
    possibly_written: bool,
) {
    let step = &journey_def.steps[index];
    let missing = |scope: &RunScope| {
        step.captures.iter().any(|c| {
            !scope.captures.contains_key(&c.name)
                && journey_def.steps[index + 1..]
                    .iter()
                    .any(|later| later.role == StepRole::Cleanup && later.captures_used().contains(c.name.as_str()))
        })
    };
    // A write never sent (refused connection, no time left, a value that could not be rendered)
    // or refused by the target has nothing unknown to learn.
    if !possibly_written || !missing(scope) {
        return;
    }
    let earlier = journey.steps().last().and_then(|r| r.error.clone()).unwrap_or_default();
    if !step.idempotent {
        return journey.escalate(
            &step.name,
            CheckError::CleanupFailed(format!(
                "{} failed ({earlier}) and may have been carried out, but no answer said what to clean up, and \
                 without an Idempotency-Key it cannot be replayed to learn it; the write may be live",
                step.name
            )),
        );
    }
    let replayed = match render(journey_def, step, scope) {
        Err(error) => error.to_string(),
        Ok(spec) => match journey.replay(&spec).await {
            Ok(response) => {
                keep_captures(step, &response, journey, scope);
                if !missing(scope) {
                    return;
                }
                format!("HTTP {}, without what the cleanup needs", response.status)
            }
            Err(error) => error.to_string(),
        },
    };
    journey.escalate(
        &step.name,
        CheckError::CleanupFailed(format!(
            "{} failed ({earlier}) and may have been carried out, but no answer said what to clean up, and its \
             replay with Idempotency-Key {} failed too ({replayed}); the write may be live: look it up by that key",
            step.name,
            idempotency_key(scope, step)
        )),
    );
}

/// The key an idempotent step sends: the same for every attempt and the replay of one run.
fn idempotency_key(scope: &RunScope, step: &StepDef) -> String {
    format!("synthetic-{}-{}", scope.run_id, step.name)
}

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const FORM: &str = "application/x-www-form-urlencoded";

/// The base URL of the step's named target (`None`: the main target). A name the journey does
/// not declare is an error, never the main target: credentials go to declared origins only.
fn step_origin(journey_def: &JourneyDef, step: &StepDef) -> Result<Option<url::Url>, RenderError> {
    match &step.target {
        None => Ok(None),
        Some(name) => {
            journey_def.target(name).cloned().map(Some).ok_or_else(|| RenderError::UnknownTarget(name.clone()))
        }
    }
}

/// A spec to record a step that could not be rendered.
fn stub(step: &StepDef) -> StepSpec {
    StepSpec::new(&step.name, step.method, "/", step.expect_status.clone(), step.budget).role(step.role)
}

/// A value the target handed back that cannot go where the journey puts it is the target's
/// doing; a secret field or a var that cannot is the monitor's.
fn unrenderable(error: &RenderError) -> CheckError {
    match error {
        RenderError::MissingSecret(_)
        | RenderError::UnknownTarget(_)
        | RenderError::NotSigning(_)
        | RenderError::DotSegment(Ref::Secret(_) | Ref::Var { .. })
        | RenderError::ControlCharacter(Ref::Secret(_) | Ref::Var { .. }) => {
            CheckError::Misconfigured(error.to_string())
        }
        _ => CheckError::InvalidResponse(error.to_string()),
    }
}

fn render(journey_def: &JourneyDef, step: &StepDef, scope: &mut RunScope) -> Result<StepSpec, RenderError> {
    // The clock read, its formatting and a random UUID cost more than the rest of a plain
    // step's rendering; a step that names none of them goes without.
    scope.generated = if step.generates() { GeneratedValues::now() } else { GeneratedValues::default() };
    let scope = &*scope;
    // A whole URL (a next link) goes as it is: the origin check before sending guards it.
    let path = step.path.render(scope, if step.whole_url { Encoding::Raw } else { Encoding::Url })?;
    let mut spec =
        StepSpec::new(&step.name, step.method, &path, step.expect_status.clone(), step.budget).role(step.role);
    spec.base = step_origin(journey_def, step)?;
    spec.whole_url = step.whole_url;
    spec.follow_redirects = step.follow_redirects;
    for (name, value) in &step.headers {
        spec = spec.header(name, &value.render(scope, Encoding::Header)?);
    }
    if step.idempotent {
        spec = spec.header(IDEMPOTENCY_KEY, &idempotency_key(scope, step));
    }
    if step.role == StepRole::Login {
        // Issuing a token again is harmless; a rejected account is never retried (see StepRecorder).
        spec = spec.repeatable();
    }
    if let Some(rejected) = &step.rejected_status {
        spec = spec.rejected(rejected.clone());
    }
    spec.until = step.until;
    if let Some(when) = &step.rejected_when {
        let assertions = when.asserts.iter().map(|a| assertion_for(a, scope)).collect::<Result<_, _>>()?;
        spec.rejected_when = Some(RejectedWhen { assertions, written: when.written.clone() });
    }
    match &step.auth {
        Some(AuthDef::Bearer(token)) => {
            spec = spec.auth(Auth::Bearer(Secret::new(token.render(scope, Encoding::Header)?)))
        }
        Some(AuthDef::Basic { username, password }) => {
            spec = spec.auth(Auth::Basic {
                username: Secret::new(username.render(scope, Encoding::Raw)?),
                password: Secret::new(password.render(scope, Encoding::Raw)?),
            })
        }
        None => {}
    }
    match &step.body {
        Some(BodyDef::Json(json)) => spec = spec.body(Body::json(&json_value(json, scope)?)),
        Some(BodyDef::Form(fields)) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in fields {
                form.append_pair(name, &value.render(scope, Encoding::Raw)?);
            }
            spec = spec.body(Body { content_type: FORM.into(), bytes: Secret::new(form.finish().into_bytes()) });
        }
        Some(BodyDef::Raw { content_type, text }) => {
            let form = content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(FORM));
            let encoding = if form { Encoding::Form } else { Encoding::Raw };
            spec = spec.body(Body {
                content_type: content_type.clone(),
                bytes: Secret::new(text.render(scope, encoding)?.into_bytes()),
            })
        }
        None => {}
    }
    for assertion in &step.asserts {
        spec = spec.assert(assertion_for(assertion, scope)?);
    }
    spec.captures = step.captures.clone();
    if let Some(sign) = &step.sign {
        spec.sign = Some(signing(step, sign, scope)?);
    }
    Ok(spec)
}

/// The step's `sign`, rendered but for what each attempt supplies (its instant, the request).
fn signing(step: &StepDef, sign: &SignDef, scope: &RunScope) -> Result<Signing, RenderError> {
    let moving_headers = step
        .headers
        .iter()
        .filter(|(_, value)| value.names_now())
        .map(|(name, value)| Ok((name.clone(), value.render_per_attempt(scope, Encoding::Header)?)))
        .collect::<Result<_, RenderError>>()?;
    Ok(Signing {
        key: Secret::new(raw(&sign.key, scope)?),
        message: sign.message.render_per_attempt(scope, Encoding::Raw)?,
        header: sign.header.clone(),
        prefix: sign.prefix.render_per_attempt(scope, Encoding::Header)?,
        encoding: sign.encoding,
        moving_headers,
        rendered: scope.generated.clone(),
    })
}

fn assertion_for(assertion: &AssertDef, scope: &RunScope) -> Result<Assertion, RenderError> {
    let list = |values: &[JsonTemplate]| values.iter().map(|v| json_value(v, scope)).collect::<Result<Vec<_>, _>>();
    let json_test = |test: &JsonTestDef| -> Result<JsonTest, RenderError> {
        Ok(match test {
            JsonTestDef::Exists(should) => JsonTest::Exists(*should),
            JsonTestDef::Equals(value) => JsonTest::Equals(json_value(value, scope)?),
            JsonTestDef::OneOf(values) => JsonTest::OneOf(list(values)?),
            JsonTestDef::NotIn(values) => JsonTest::NotIn(list(values)?),
            JsonTestDef::NonEmpty => JsonTest::NonEmpty,
            JsonTestDef::MinItems(min) => JsonTest::MinItems(*min),
            JsonTestDef::Compare(comparison, bound) => JsonTest::Compare(*comparison, bound.clone()),
            JsonTestDef::Matches(pattern) => JsonTest::Matches(pattern.clone()),
            JsonTestDef::NotEquals(value) => JsonTest::NotEquals(json_value(value, scope)?),
            JsonTestDef::Contains(value) => JsonTest::Contains(json_value(value, scope)?),
            JsonTestDef::Length { min, max } => JsonTest::Length { min: *min, max: *max },
            JsonTestDef::Schema(schema) => JsonTest::Schema(schema.clone()),
        })
    };
    Ok(match assertion {
        AssertDef::Json { pointer, optional, test } => {
            Assertion::Json { pointer: pointer.clone(), optional: *optional, test: json_test(test)? }
        }
        AssertDef::JsonPath { path, optional, test } => {
            Assertion::JsonPath { path: path.clone(), optional: *optional, test: json_test(test)? }
        }
        AssertDef::Header { name, test } => Assertion::Header {
            name: name.clone(),
            test: match test {
                HeaderTestDef::Equals(t) => HeaderTest::Equals(raw(t, scope)?),
                HeaderTestDef::Contains(t) => HeaderTest::Contains(raw(t, scope)?),
                HeaderTestDef::NotContains(t) => HeaderTest::NotContains(raw(t, scope)?),
                HeaderTestDef::Exists(should) => HeaderTest::Exists(*should),
                HeaderTestDef::Matches(pattern) => HeaderTest::Matches(pattern.clone()),
            },
        },
        AssertDef::BodyContains(t) => Assertion::BodyContains(raw(t, scope)?),
        AssertDef::BodyNotContains(t) => Assertion::BodyNotContains(raw(t, scope)?),
        AssertDef::BodyMatches(pattern) => Assertion::BodyMatches(pattern.clone()),
    })
}

fn raw(template: &Template, scope: &RunScope) -> Result<String, RenderError> {
    template.render(scope, Encoding::Raw)
}

/// The JSON value a capture from a JSON body took (by pointer or JSONPath); `None` for one
/// from a header, a cookie or a regex (text).
fn captured_json(capture: &Capture, response: &HttpResponse) -> Option<Value> {
    match &capture.source {
        CaptureSource::Json(pointer) => json_at(response.json().ok()?, pointer).cloned(),
        CaptureSource::JsonPath(path) => path.first(response.json().ok()?).cloned(),
        CaptureSource::Header(_) | CaptureSource::Cookie(_) | CaptureSource::Regex { .. } => None,
    }
}

/// A JSON value that is exactly one template: a capture from a JSON body as the JSON value it
/// was; a header capture, a secret field or the run id as a string.
fn typed_value(template: &Template, scope: &RunScope) -> Result<Value, RenderError> {
    match template.sole_ref() {
        Some(Ref::Capture(name)) if let Some(value) = scope.typed.get(name) => return Ok(value.clone()),
        Some(Ref::Generated(which)) if which.is_number() => {
            if let Ok(number) = scope.generated.get(*which).parse::<i64>() {
                return Ok(Value::from(number));
            }
        }
        _ => {}
    }
    Ok(Value::String(raw(template, scope)?))
}

/// JSON strings are rendered raw: serde_json escapes them when the body is serialized.
fn json_value(template: &JsonTemplate, scope: &RunScope) -> Result<Value, RenderError> {
    Ok(match template {
        JsonTemplate::Text(t) => Value::String(raw(t, scope)?),
        JsonTemplate::Typed(t) => typed_value(t, scope)?,
        JsonTemplate::Value(v) => v.clone(),
        JsonTemplate::Array(items) => {
            Value::Array(items.iter().map(|i| json_value(i, scope)).collect::<Result<_, _>>()?)
        }
        JsonTemplate::Object(fields) => Value::Object(
            fields.iter().map(|(k, v)| Ok((k.clone(), json_value(v, scope)?))).collect::<Result<_, RenderError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpRequest, ScriptedTarget};
    use crate::journey::{RetryPolicy, RunSetup};
    use crate::result::{Outcome, RunResult};
    use crate::secret::InMemorySecrets;
    use std::time::Duration;
    use time::format_description::well_known::Rfc3339;

    const ACCOUNT: &str = r#"{"api_key":"sk_test_4eC39Hq","email":"mon@example.com","password":"pw \"1\"\nx"}"#;

    struct Ran {
        run: RunResult,
        requests: Vec<HttpRequest>,
        secrets: Arc<InMemorySecrets>,
    }

    fn setup(target: Arc<ScriptedTarget>, check: &str) -> RunSetup {
        RunSetup {
            http: target,
            check: check.into(),
            env: "test".into(),
            target: "http://api.test/".parse().unwrap(),
            run_id: "run-1".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 2, backoff: Duration::from_millis(1) },
            max_redirects: 5,
            deadline: None,
            trace: Some(crate::trace::TraceContext::new(check)),
        }
    }

    async fn run_journey(source: &str, target: ScriptedTarget) -> Ran {
        run_with(source, target, |_| {}).await
    }

    async fn run_with(source: &str, target: ScriptedTarget, arrange: impl FnOnce(&InMemorySecrets)) -> Ran {
        let journey_def = JourneyDef::parse(source).unwrap_or_else(|p| panic!("{p}"));
        let target = Arc::new(target);
        let secrets = Arc::new(InMemorySecrets::with("acct", ACCOUNT));
        let store = CredentialStore::new(secrets.clone(), "acct", Duration::from_secs(300));
        store.get().await.unwrap();
        arrange(&secrets);
        let mut journey = StepRecorder::new(setup(target.clone(), &journey_def.check));
        run(&journey_def, &mut journey, Some(&store)).await.unwrap();
        Ran { run: journey.finish(), requests: target.requests(), secrets }
    }

    fn body(request: &HttpRequest) -> String {
        request.body.as_ref().map(|b| String::from_utf8_lossy(b.bytes.expose()).into_owned()).unwrap_or_default()
    }

    fn form_fields(request: &HttpRequest) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body(request).as_bytes()).into_owned().collect()
    }

    fn outcomes(run: &RunResult) -> Vec<(&str, Outcome, Option<Cause>)> {
        run.steps.iter().map(|s| (s.name.as_str(), s.outcome, s.cause)).collect()
    }

    const STRIPE: &str = r#"
check = "stripe"
[[steps]]
name = "create"
method = "POST"
path = "/v1/payment_intents"
basic = { username = "{{secret.api_key}}" }
idempotent = true
form = { amount = 100, currency = "usd", description = "synthetic {{run.id}}" }
capture = { id = { json = "/id" }, status = { json = "/status" } }
assert = [{ json = "/status", one_of = ["succeeded"] }]
[[steps]]
name = "retrieve"
path = "/v1/payment_intents/{{id}}"
basic = { username = "{{secret.api_key}}" }
assert = [{ json = "/id", equals = "{{id}}" }]
[[steps]]
name = "refund"
role = "cleanup"
skip_if = { var = "status", in = ["canceled"] }
method = "POST"
path = "/v1/refunds"
basic = { username = "{{secret.api_key}}" }
idempotent = true
form = { payment_intent = "{{id}}" }
fail_after_ms = 500
"#;

    #[tokio::test]
    async fn form_bodies_basic_auth_captures_and_a_separate_refund() {
        let created = r#"{"id":"pi_1","status":"succeeded"}"#;
        let target = ScriptedTarget::default().then(200, created).then(200, created).then(200, r#"{"id":"re_1"}"#);
        let ran = run_journey(STRIPE, target).await;
        assert_eq!(ran.run.status, Outcome::Passed, "{:#?}", ran.run);
        let [create, retrieve, refund] = ran.requests.as_slice() else { panic!("{:?}", ran.requests) };
        assert_eq!(body(create), "amount=100&currency=usd&description=synthetic+run-1");
        assert_eq!(create.body.as_ref().unwrap().content_type, "application/x-www-form-urlencoded");
        let key = Auth::Basic { username: Secret::new("sk_test_4eC39Hq".into()), password: Secret::new(String::new()) };
        assert_eq!(create.auth.as_ref(), Some(&key));
        assert_eq!(retrieve.url.path(), "/v1/payment_intents/pi_1");
        assert_eq!((refund.url.path(), body(refund).as_str()), ("/v1/refunds", "payment_intent=pi_1"));
        let idempotency =
            |r: &HttpRequest| r.headers.iter().find(|(k, _)| k == IDEMPOTENCY_KEY).map(|(_, v)| v.clone());
        assert_eq!(idempotency(create).as_deref(), Some("synthetic-run-1-create"));
        assert_eq!(idempotency(refund).as_deref(), Some("synthetic-run-1-refund"));
    }

    #[tokio::test]
    async fn cleanup_runs_after_a_failure_when_its_captures_exist() {
        let created = r#"{"id":"pi_1","status":"succeeded"}"#;
        let target = ScriptedTarget::default().then(200, created).then(500, "down").then(500, "down").then(200, "{}");
        let ran = run_journey(STRIPE, target).await;
        assert_eq!(
            outcomes(&ran.run),
            [
                ("create", Outcome::Passed, None),
                ("retrieve", Outcome::Failed, Some(Cause::HttpStatus)),
                ("refund", Outcome::Passed, None)
            ]
        );
        assert_eq!(ran.run.cause, Some(Cause::HttpStatus), "the first failure decides the cause");
    }

    #[tokio::test]
    async fn a_declined_write_is_not_cleaned_up_and_later_steps_do_not_run() {
        let declined = r#"{"error":{"code":"card_declined"},"status":"canceled","id":"pi_2"}"#;
        let target = ScriptedTarget::default().then(402, declined).then(402, declined);
        let ran = run_journey(STRIPE, target).await;
        assert_eq!(outcomes(&ran.run), [("create", Outcome::Failed, Some(Cause::HttpStatus))]);
        assert_eq!(ran.requests.len(), 2, "the idempotent create is retried, nothing else is sent");
    }

    #[tokio::test]
    async fn an_unanswered_write_is_replayed_with_its_key_to_learn_what_to_clean_up() {
        // GIVEN a create whose outcome is unknown (it timed out, then timed out again or got 409
        // "key in use" while the first attempt was still at work), whose replay answers with it
        let created = r#"{"id":"pi_9","status":"succeeded"}"#;
        let cases = [
            (ScriptedTarget::default().then_hang().then_hang(), Cause::Timeout),
            (ScriptedTarget::default().then_hang().then(409, "key in use"), Cause::HttpStatus),
        ];
        for (target, cause) in cases {
            // WHEN the journey runs
            let ran = run_journey(&stripe_fast_create(), target.then(200, created).then(200, "{}")).await;
            // THEN the replay carried the same key, and the refund undid the write
            let keys: Vec<_> =
                ran.requests.iter().map(|r| r.headers.iter().find(|(k, _)| k == IDEMPOTENCY_KEY).cloned()).collect();
            assert_eq!(keys[0], keys[2], "the replay is the same write");
            assert_eq!(
                outcomes(&ran.run),
                [("create", Outcome::Failed, Some(cause)), ("refund", Outcome::Passed, None)]
            );
            assert_eq!(body(&ran.requests[3]), "payment_intent=pi_9");
        }
    }

    #[tokio::test]
    async fn an_unknown_write_that_cannot_be_learned_is_cleanup_failed_naming_the_key() {
        let hang = Ok(crate::http::HttpResponse::with(200, "{}"));
        let target = ScriptedTarget::default()
            .then_after(Duration::from_secs(60), hang.clone())
            .then_after(Duration::from_secs(60), hang.clone())
            .then_after(Duration::from_secs(60), hang);
        let source =
            STRIPE.replace("[[steps]]\nname = \"create\"", "[[steps]]\nname = \"create\"\nfail_after_ms = 100");
        let ran = run_journey(&source, target).await;
        assert_eq!(ran.run.cause, Some(Cause::CleanupFailed), "{:#?}", ran.run);
        let error = ran.run.steps[0].error.clone().unwrap();
        assert!(error.contains("Idempotency-Key synthetic-run-1-create"), "{error}");
    }

    /// STRIPE with a create budget short enough for its timeouts to cost little.
    fn stripe_fast_create() -> String {
        STRIPE.replace("[[steps]]\nname = \"create\"", "[[steps]]\nname = \"create\"\nfail_after_ms = 100")
    }

    #[tokio::test]
    async fn an_unknown_write_answered_without_its_captures_is_cleanup_failed_naming_the_key() {
        // GIVEN creates whose outcome is unknown (timeouts, 500s), and a replay or retry that is
        // *answered*, but with nothing the refund needs: 409 "key in use" or 500
        let hang = || ScriptedTarget::default().then_hang();
        let in_use = r#"{"error":{"type":"idempotency_error","message":"key in use"}}"#;
        let cases = [
            ("timeout, timeout, replay 409", hang().then_hang().then(409, in_use)),
            ("timeout, timeout, replay 500", hang().then_hang().then(500, "internal error")),
            ("timeout, retry 409, replay 409", hang().then(409, in_use).then(409, in_use)),
            ("timeout, retry 409, replay reset", hang().then(409, in_use).then_reset()),
            ("timeout, retry refused, replay refused", hang().then_refused().then_refused()),
            ("500, 500, replay 500", ScriptedTarget::default().then(500, "a").then(500, "b").then(500, "c")),
        ];
        for (case, target) in cases {
            // WHEN the journey runs
            let ran = run_journey(&stripe_fast_create(), target).await;
            // THEN the run says the write may be live, names its key, and nothing is refunded blind
            assert_eq!(ran.run.cause, Some(Cause::CleanupFailed), "{case}: {:#?}", ran.run);
            let error = ran.run.steps[0].error.clone().unwrap();
            assert!(error.contains("Idempotency-Key synthetic-run-1-create"), "{case}: {error}");
            assert_eq!(ran.requests.len(), 3, "{case}: two attempts and one replay");
            assert!(ran.requests.iter().all(|r| r.url.path() == "/v1/payment_intents"), "{case}");
            assert!(error.contains("may be live"), "{case}: {error}");
        }
    }

    #[tokio::test]
    async fn a_write_never_sent_is_connect_never_cleanup_failed() {
        // GIVEN a target that refuses every connection: nothing of the create was ever sent
        let target = ScriptedTarget::default().then_refused().then_refused().then_refused();
        // WHEN the payment journey runs
        let ran = run_journey(STRIPE, target).await;
        // THEN it is a connect failure, with no replay and no word of a live write
        assert_eq!(outcomes(&ran.run), [("create", Outcome::Failed, Some(Cause::Connect))], "{:#?}", ran.run);
        assert_eq!(ran.run.cause, Some(Cause::Connect));
        assert_eq!(ran.requests.len(), 2, "two attempts, no replay");
    }

    #[tokio::test]
    async fn a_write_the_target_refuses_is_its_status_not_a_live_write() {
        // GIVEN a create refused with a 4xx twice: the target did not carry it out
        let target = ScriptedTarget::default().then(400, "bad amount").then(409, "conflict");
        let ran = run_journey(STRIPE, target).await;
        // THEN the target's own answer stands: no replay, no word of a live write
        assert_eq!(outcomes(&ran.run), [("create", Outcome::Failed, Some(Cause::HttpStatus))], "{:#?}", ran.run);
        assert_eq!(ran.requests.len(), 2);
    }

    #[tokio::test]
    async fn a_non_idempotent_write_of_unknown_outcome_is_cleanup_failed() {
        // GIVEN a create without an idempotency key that times out (not retried, not replayable)
        let source = stripe_fast_create().replacen("idempotent = true\n", "", 1);
        let ran = run_journey(&source, ScriptedTarget::default().then_hang()).await;
        // THEN the run cannot say nothing is live
        assert_eq!(ran.run.cause, Some(Cause::CleanupFailed), "{:#?}", ran.run);
        assert!(ran.run.steps[0].error.as_deref().unwrap().contains("cannot be replayed"), "{:?}", ran.run.steps);
        assert_eq!(ran.requests.len(), 1);
    }

    /// STRIPE with a login (a second account, say) between the write and its refund.
    fn write_then_login() -> String {
        let retrieve = "name = \"retrieve\"\npath = \"/v1/payment_intents/{{id}}\"\n";
        let login = "name = \"login\"\nrole = \"login\"\nmethod = \"POST\"\npath = \"/session\"\n\
                     json = { password = \"{{secret.password}}\" }\nrejected_status = 401\n";
        let source = STRIPE.replace(retrieve, login);
        assert_ne!(source, STRIPE);
        source.replace("assert = [{ json = \"/id\", equals = \"{{id}}\" }]\n", "")
    }

    #[tokio::test]
    async fn a_broken_secret_found_mid_journey_fails_its_step_and_the_write_is_still_undone() {
        // GIVEN a payment created, then a login rejected, and the secret re-read after it
        // rotated into one without the password field
        let target = ScriptedTarget::default()
            .then(200, r#"{"id":"pi_4","status":"succeeded"}"#)
            .then(401, r#"{"error":"invalid_credentials"}"#)
            .then(200, "{}");
        // WHEN the journey runs
        let ran =
            run_with(&write_then_login(), target, |secrets| secrets.put("acct", r#"{"api_key":"sk_test_9"}"#)).await;
        // THEN the login step is the monitor's misconfiguration, named, and the refund still ran
        assert_eq!(
            outcomes(&ran.run),
            [
                ("create", Outcome::Passed, None),
                ("login", Outcome::Failed, Some(Cause::Misconfigured)),
                ("refund", Outcome::Passed, None)
            ]
        );
        let error = ran.run.steps[1].error.clone().unwrap();
        assert!(error.contains("has no string field \"password\""), "{error}");
        assert_eq!(
            (ran.requests[2].url.path(), body(&ran.requests[2]).as_str()),
            ("/v1/refunds", "payment_intent=pi_4")
        );
    }

    #[tokio::test]
    async fn a_captured_control_character_never_reaches_the_client_and_is_not_retried() {
        // GIVEN a capture holding a control character other than CR, LF or NUL
        let target =
            ScriptedTarget::default().then(201, r#"{"id":"7","note":"a\u0001b"}"#).then(200, "{}").then(200, "{}");
        let ran = run_journey(HOSTILE, target).await;
        // THEN the header step is never sent, and fails as the target's bad value
        let header = ran.run.steps.last().unwrap();
        assert_eq!((header.name.as_str(), header.cause, header.attempts), ("header", Some(Cause::InvalidResponse), 0));
        assert_eq!(ran.requests.len(), 3, "create, fetch and echo; the header step is not sent");
    }

    const HOSTILE: &str = r#"
check = "hostile"
[[steps]]
name = "create"
method = "POST"
path = "/items"
idempotent = true
capture = { id = { json = "/id" }, note = { json = "/note" } }
[[steps]]
name = "fetch"
path = "/items/{{id}}"
[[steps]]
name = "echo"
method = "PUT"
path = "/echo"
json = { note = "{{note}}" }
[[steps]]
name = "header"
path = "/echo"
headers = { X-Note = "{{note}}" }
"#;

    #[tokio::test]
    async fn hostile_captured_values_cannot_move_or_smuggle_a_request() {
        let created = r#"{"id":"../admin","note":"a \"quoted\"\r\nX-Evil: 1"}"#;
        let target = ScriptedTarget::default().then(201, created).then(200, "{}").then(200, "{}");
        let ran = run_journey(HOSTILE, target).await;
        assert_eq!(ran.requests[1].url.path(), "/items/..%2Fadmin", "one segment, never /admin");
        let sent: serde_json::Value = serde_json::from_str(&body(&ran.requests[2])).unwrap();
        assert_eq!(sent["note"], "a \"quoted\"\r\nX-Evil: 1", "JSON-escaped, not spliced");
        assert_eq!(ran.requests.len(), 3, "the header step was never sent");
        let header = ran.run.steps.last().unwrap();
        assert_eq!((header.name.as_str(), header.cause), ("header", Some(Cause::InvalidResponse)));
        assert!(header.error.as_deref().unwrap().contains("{{note}} holds a control character"), "{header:?}");
    }

    #[tokio::test]
    async fn vars_are_encoded_like_every_other_value() {
        // GIVEN vars holding URL syntax, used in a path segment, a query value and a form field
        let source = r#"
check = "vars"
[vars]
up = "../../admin"
term = "a&b=c#frag"
note = "x&y=z"
[[steps]]
name = "search"
method = "POST"
path = "/shop/{{vars.up}}/items?q={{vars.term}}&page=1"
form = { note = "{{vars.note}}" }
"#;
        // WHEN the journey runs
        let ran = run_journey(source, ScriptedTarget::default().then(200, "{}")).await;
        // THEN each var stayed inside its own segment, query value and form field
        let sent = &ran.requests[0];
        assert_eq!(sent.url.path(), "/shop/..%2F..%2Fadmin/items");
        assert_eq!(sent.url.fragment(), None);
        let query: Vec<(String, String)> = sent.url.query_pairs().into_owned().collect();
        assert_eq!(query, [("q".into(), "a&b=c#frag".into()), ("page".into(), "1".into())]);
        assert_eq!(form_fields(sent), [("note".into(), "x&y=z".into())]);
    }

    #[tokio::test]
    async fn a_form_body_written_by_hand_form_encodes_its_values() {
        // GIVEN a captured id holding form syntax, put in a raw form body
        let source = r#"
check = "raw-form"
[[steps]]
name = "create"
method = "POST"
path = "/items"
capture = { id = { json = "/id" } }
[[steps]]
name = "refund"
method = "POST"
path = "/refunds"
body = "payment_intent={{id}}&run={{run.id}}"
content_type = "application/x-www-form-urlencoded; charset=utf-8"
"#;
        let target = ScriptedTarget::default().then(200, r#"{"id":"pi_1&amount=999999 x"}"#).then(200, "{}");
        // WHEN the journey runs
        let ran = run_journey(source, target).await;
        // THEN the id stayed one field's value
        assert_eq!(
            form_fields(&ran.requests[1]),
            [("payment_intent".into(), "pi_1&amount=999999 x".into()), ("run".into(), "run-1".into())]
        );
    }

    #[tokio::test]
    async fn a_dot_segment_id_fails_the_step_without_sending_it() {
        let target = ScriptedTarget::default().then(201, r#"{"id":"..","note":"n"}"#);
        let ran = run_journey(HOSTILE, target).await;
        assert_eq!(ran.requests.len(), 1);
        assert_eq!(outcomes(&ran.run)[1], ("fetch", Outcome::Failed, Some(Cause::InvalidResponse)));
    }

    #[tokio::test]
    async fn a_non_json_or_missing_capture_fails_with_a_cause() {
        for (body, cause) in [("<html>busy</html>", Cause::InvalidResponse), (r#"{"other":1}"#, Cause::Assertion)] {
            let ran = run_journey(HOSTILE, ScriptedTarget::default().then(201, body).then(201, body)).await;
            assert_eq!(outcomes(&ran.run), [("create", Outcome::Failed, Some(cause))], "{body}");
        }
    }

    const NESTED_LOGIN: &str = r#"
check = "nested"
[[steps]]
name = "login"
role = "login"
method = "POST"
path = "/api/v2/sessions"
json = { user = { email = "{{secret.email}}", password = "{{secret.password}}" } }
expect_status = 201
rejected_status = 400
capture = { token = { json = "/session/token" } }
[[steps]]
name = "me"
path = "/api/v2/me"
bearer = "{{token}}"
"#;

    #[tokio::test]
    async fn a_declared_rejected_status_is_credentials_rejected_and_heals_a_rotation() {
        let target = ScriptedTarget::default()
            .then(400, r#"{"error":"invalid_grant"}"#)
            .then(201, r#"{"session":{"token":"sess-tok-77"}}"#)
            .then(500, "token sess-tok-77 broke")
            .then(500, "token sess-tok-77 broke");
        let ran = run_with(NESTED_LOGIN, target, |secrets| {
            secrets.put("acct", r#"{"email":"mon@example.com","password":"rotated-pw"}"#)
        })
        .await;
        assert_eq!(ran.secrets.reads(), 2, "one load, one refresh");
        let sent: serde_json::Value = serde_json::from_str(&body(&ran.requests[0])).unwrap();
        assert_eq!(sent["user"]["password"], "pw \"1\"\nx", "nested JSON, escaped");
        assert_eq!(outcomes(&ran.run)[0], ("login", Outcome::Passed, None));
        assert_eq!(ran.run.steps[0].attempts, 2);
        let error = ran.run.steps[1].error.clone().unwrap();
        assert!(!error.contains("sess-tok-77"), "a login capture is scrubbed: {error}");

        let locked = ScriptedTarget::default().then(400, r#"{"error":"invalid_grant"}"#);
        let ran = run_journey(NESTED_LOGIN, locked).await;
        assert_eq!(outcomes(&ran.run), [("login", Outcome::Failed, Some(Cause::CredentialsRejected))]);
        assert_eq!(ran.requests.len(), 1, "a rejected account is not hammered");
    }

    /// Every text a run hands on: its result as JSON, and the alert's JSON and subject.
    fn outputs(run: &RunResult) -> String {
        let alert = crate::alert::AlertMessage::from_run(run, &crate::config::Origin::default());
        format!("{}\n{}\n{}", serde_json::to_string(run).unwrap(), alert.to_json().unwrap(), alert.subject())
    }

    #[tokio::test]
    async fn a_login_answering_another_status_never_shows_its_token() {
        // GIVEN a login that answers 200 (expected: 201) with a live session token, which the
        // error's excerpt of the body would cut in two
        let token = "eyJhbGciOiJIUzI1NiJ9.live-token-7f3a-0123456789abcdef0123456789abcdef";
        let issued = format!(r#"{{"pad":"{}","session":{{"token":"{token}"}}}}"#, "x".repeat(100));
        let target = ScriptedTarget::default().then(200, &issued).then(200, &issued);
        // WHEN the journey runs
        let ran = run_journey(NESTED_LOGIN, target).await;
        // THEN the login fails on its status, and neither its error, the result nor the alert
        // shows the token
        assert_eq!(outcomes(&ran.run), [("login", Outcome::Failed, Some(Cause::HttpStatus))]);
        let error = ran.run.steps[0].error.clone().unwrap();
        assert!(error.starts_with("HTTP 200, expected 201"), "{error}");
        let out = outputs(&ran.run);
        assert!(!out.contains("live-token") && !out.contains("eyJhbGci"), "{out}");
    }

    #[tokio::test]
    async fn a_target_echoing_the_login_body_shows_no_password_json_or_form_encoded() {
        // GIVEN targets that echo the body they got: the JSON login (the password holds a quote
        // and a newline, so it is JSON-escaped), and the same fields as a form
        let json_echo = r#"{"got":{"user":{"email":"mon@example.com","password":"pw \"1\"\nx"}}}"#;
        let form_echo = "got email=mon%40example.com&password=pw+%221%22%0Ax";
        let form_login = NESTED_LOGIN.replace(
            r#"json = { user = { email = "{{secret.email}}", password = "{{secret.password}}" } }"#,
            r#"form = { email = "{{secret.email}}", password = "{{secret.password}}" }"#,
        );
        for (source, echo) in [(NESTED_LOGIN.to_string(), json_echo), (form_login, form_echo)] {
            let target = ScriptedTarget::default().then(500, echo).then(500, echo);
            // WHEN the login fails with that echo
            let ran = run_journey(&source, target).await;
            // THEN no form of the password or the email is shown
            assert_eq!(ran.run.cause, Some(Cause::HttpStatus));
            let out = outputs(&ran.run);
            for leaked in [r#"pw \"1\"\nx"#, r#"pw \\\"1\\\"\\nx"#, "pw+%221%22%0Ax", "mon%40example", "mon@example"] {
                assert!(!out.contains(leaked), "{leaked} in {out}");
            }
        }
    }

    #[tokio::test]
    async fn a_secret_field_the_journey_needs_but_the_secret_lacks_is_misconfigured() {
        let journey_def = JourneyDef::parse(NESTED_LOGIN.replace("secret.email", "secret.username").as_str()).unwrap();
        let secrets = Arc::new(InMemorySecrets::with("acct", ACCOUNT));
        let store = CredentialStore::new(secrets, "acct", Duration::from_secs(1));
        let target = Arc::new(ScriptedTarget::default());
        let mut journey = StepRecorder::new(setup(target.clone(), "nested"));
        let error = run(&journey_def, &mut journey, Some(&store)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "misconfigured: secret acct has no string field \"username\" that journey nested uses"
        );
        assert!(target.requests().is_empty());
    }

    /// A Django-style session login; `{login}` ends the login step, `{order}` is the order's path.
    fn csrf_login(login: &str, order: &str) -> String {
        format!(
            r#"
check = "csrf"
[[steps]]
name = "form"
path = "/accounts/login/"
capture = {{ csrf = {{ cookie = "csrftoken" }}, field = {{ regex = 'name="csrfmiddlewaretoken" value="([^"]+)"' }} }}
[[steps]]
name = "login"
role = "login"
method = "POST"
path = "/accounts/login/"
headers = {{ X-CSRFToken = "{{{{csrf}}}}" }}
form = {{ csrfmiddlewaretoken = "{{{{field}}}}", username = "{{{{secret.email}}}}", password = "{{{{secret.password}}}}" }}
{login}
[[steps]]
name = "order"
path = "{order}"
capture = {{ kettle = {{ jsonpath = "$.items[?@.name == 'Kettle'].id" }} }}
[[steps]]
name = "use"
path = "/items/{{{{kettle}}}}"
headers = {{ X-Session = "{{{{session}}}}" }}
"#
        )
    }

    const TWO_ORIGINS: &str = r#"check = "oauth"
[targets]
idp = "http://login.test/tenant/"
[[steps]]
name = "token"
role = "login"
target = "idp"
method = "POST"
path = "/oauth2/token"
form = { client_secret = "{{secret.api_key}}" }
capture = { token = { json = "/access_token" } }
[[steps]]
name = "orders"
path = "/api/orders"
bearer = "{{token}}"
[[steps]]
name = "userinfo"
target = "idp"
path = "/userinfo"
"#;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<HttpResponse, CheckError> {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(HttpResponse::new(status, headers, body.as_bytes().to_vec()))
    }

    fn header(request: &HttpRequest, name: &str) -> Option<String> {
        request.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[tokio::test]
    async fn cookie_regex_and_jsonpath_captures_feed_later_steps_and_login_ones_are_scrubbed() {
        // GIVEN a Django-style form (CSRF cookie and hidden field), a login whose redirect sets
        // the session cookie on the way, and a listing where the wanted item is not the first
        let form = r#"<form><input type="hidden" name="csrfmiddlewaretoken" value="field-tok-1"></form>"#;
        let items = r#"{"items":[{"name":"Mug","id":7},{"name":"Kettle","id":42},{"name":"Kettle","id":43}]}"#;
        let broke = "session sess-9f8e and item 42 broke";
        let target = ScriptedTarget::default()
            .then_after(Duration::ZERO, answer(200, &[("set-cookie", "csrftoken=cookie-tok-1; Path=/")], form))
            .then_after(Duration::ZERO, answer(302, &[("set-cookie", "sessionid=sess-9f8e"), ("location", "/")], ""))
            .then_after(Duration::ZERO, answer(200, &[], "welcome"))
            .then_after(Duration::ZERO, answer(200, &[], items))
            .then_after(Duration::ZERO, answer(500, &[], broke))
            .then_after(Duration::ZERO, answer(500, &[], broke));
        let journey = csrf_login(r#"capture = { session = { cookie = "sessionid" } }"#, "/orders/1");
        let ran = run_journey(&journey, target).await;
        let [_, login, _, _, used, ..] = ran.requests.as_slice() else { panic!("{:#?}", ran.requests) };
        // THEN the cookie and the hidden field are sent back where the journey puts them
        assert_eq!(header(login, "X-CSRFToken").as_deref(), Some("cookie-tok-1"));
        assert_eq!(form_fields(login)[0], ("csrfmiddlewaretoken".to_string(), "field-tok-1".to_string()));
        // AND the JSONPath filter picked the first Kettle; the cookie set on the redirect went on
        assert_eq!(used.url.path(), "/items/42");
        assert_eq!(header(used, "X-Session").as_deref(), Some("sess-9f8e"));
        // AND what the login handed back is scrubbed from the failure that quotes it
        let error = ran.run.steps[3].error.clone().unwrap();
        assert!(error.contains("item 42") && !error.contains("sess-9f8e"), "{error}");
    }

    #[tokio::test]
    async fn a_regex_on_a_header_takes_its_first_group_and_a_login_one_is_scrubbed() {
        // GIVEN a login answering 201 Created, its Location naming the order
        let target = Arc::new(
            ScriptedTarget::default()
                .then_after(
                    Duration::ZERO,
                    answer(200, &[("set-cookie", "csrftoken=c1")], r#"name="csrfmiddlewaretoken" value="f1""#),
                )
                .then_after(
                    Duration::ZERO,
                    answer(201, &[("set-cookie", "sessionid=s1"), ("location", "/orders/9731")], ""),
                )
                .then_after(Duration::ZERO, answer(200, &[], r#"{"items":[{"name":"Kettle","id":"k-1"}]}"#))
                .then_after(Duration::ZERO, answer(500, &[], "order 9731 broke"))
                .then_after(Duration::ZERO, answer(500, &[], "order 9731 broke")),
        );
        let login = "expect_status = 201\ncapture = { session = { cookie = \"sessionid\" }, next = { regex = \"^/orders/(\\\\d+)$\", header = \"Location\" } }";
        let journey_def = JourneyDef::parse(&csrf_login(login, "/orders/{{next}}")).unwrap_or_else(|p| panic!("{p}"));
        let store =
            CredentialStore::new(Arc::new(InMemorySecrets::with("acct", ACCOUNT)), "acct", Duration::from_secs(300));
        let mut journey = StepRecorder::new(setup(target.clone(), "csrf"));
        run(&journey_def, &mut journey, Some(&store)).await.unwrap();
        let run = journey.finish();
        let requests = target.requests();
        // THEN the first group of the header's match is the path segment
        assert_eq!(requests[2].url.path(), "/orders/9731");
        assert_eq!(requests[3].url.path(), "/items/k-1");
        // AND a value captured at login is scrubbed like a token
        let error = run.steps[3].error.clone().unwrap();
        assert!(!error.contains("9731"), "{error}");
    }

    #[tokio::test]
    async fn a_capture_that_finds_nothing_fails_the_step_naming_what_it_looked_for() {
        let cases = [
            (r#"{ c = { cookie = "csrftoken" } }"#, "capture c: no cookie csrftoken was set"),
            (r#"{ c = { regex = "id=(\\d+)" } }"#, r#"capture c: regex "id=(\\d+)" does not match the body"#),
            (r#"{ c = { regex = "(\\d+)", header = "X-Id" } }"#, "capture c: header X-Id is missing"),
            (
                r#"{ c = { jsonpath = "$.items[?@.name == 'Kettle'].id" } }"#,
                "capture c: JSON $.items[?@.name == 'Kettle'].id is missing",
            ),
            (r#"{ c = { jsonpath = "$.gone" } }"#, "capture c: JSON $.gone is null, not a value to capture"),
        ];
        for (capture, expected) in cases {
            let source = format!("check = \"c\"\n[[steps]]\nname = \"a\"\npath = \"/\"\ncapture = {capture}\n");
            let body = r#"{"items":[],"gone":null}"#;
            let target = ScriptedTarget::default().then(200, body).then(200, body);
            let ran = run_journey(&source, target).await;
            assert_eq!(outcomes(&ran.run), [("a", Outcome::Failed, Some(Cause::Assertion))], "{capture}");
            assert_eq!(ran.run.steps[0].error.as_deref(), Some(expected), "{capture}");
        }
    }

    const FORM_LOGIN: &str = r#"
check = "form-login"
[[steps]]
name = "login"
role = "login"
method = "POST"
path = "/login"
form = { username = "{{secret.email}}", password = "{{secret.password}}" }
rejected_when = [{ body_contains = "Invalid password" }]
[[steps]]
name = "me"
path = "/me"
"#;

    #[tokio::test]
    async fn a_login_answering_200_with_its_form_is_a_rejected_account_by_rejected_when() {
        // GIVEN a login that answers 200 with the form and "Invalid password"
        let form = r#"<form><p class="error">Invalid password</p></form>"#;
        let ran = run_journey(FORM_LOGIN, ScriptedTarget::default().then(200, form).then(200, form)).await;
        // THEN it is the account, not an outage: credentials_rejected, secret re-read, no retry
        assert_eq!(outcomes(&ran.run), [("login", Outcome::Failed, Some(Cause::CredentialsRejected))]);
        assert_eq!(ran.requests.len(), 1, "a rejected account is not hammered");
        assert_eq!(ran.secrets.reads(), 2, "one load, one re-read");
        let error = ran.run.steps[0].error.clone().unwrap();
        assert!(
            error.contains(r#"HTTP 200 matching rejected_when = [{ body_contains = "Invalid password" }]"#),
            "{error}"
        );

        // AND after a rotation, the login is rerun with the new secret and passes
        let target = ScriptedTarget::default().then(200, form).then(200, "welcome").then(200, "{}");
        let ran = run_with(FORM_LOGIN, target, |secrets| {
            secrets.put("acct", r#"{"email":"mon@example.com","password":"rotated-pw"}"#)
        })
        .await;
        assert_eq!(ran.run.status, Outcome::Passed, "{:#?}", ran.run);
        assert_eq!(form_fields(&ran.requests[1])[1], ("password".to_string(), "rotated-pw".to_string()));
    }

    #[tokio::test]
    async fn with_rejected_when_a_csrf_403_is_a_failure_of_the_target_not_a_locked_account() {
        let target =
            ScriptedTarget::default().then(403, "CSRF verification failed").then(403, "CSRF verification failed");
        let ran = run_journey(FORM_LOGIN, target).await;
        assert_eq!(outcomes(&ran.run), [("login", Outcome::Failed, Some(Cause::HttpStatus))]);
        assert_eq!(ran.secrets.reads(), 1, "the secret is not re-read for the target's failure");
    }

    const POLLED_PAYMENT: &str = r#"
check = "async-payment"
[[steps]]
name = "create"
method = "POST"
path = "/payments"
idempotent = true
capture = { id = { json = "/id" } }
[[steps]]
name = "settled"
path = "/payments/{{id}}"
until = { every_ms = 100, within_ms = 1000 }
assert = [{ json = "/status", equals = "succeeded" }]
[[steps]]
name = "refund"
role = "cleanup"
method = "POST"
path = "/payments/{{id}}/refund"
idempotent = true
"#;

    #[tokio::test]
    async fn a_step_with_until_is_polled_until_its_assertions_hold_and_is_one_result() {
        // GIVEN a payment that is pending twice, then succeeded
        let target = ScriptedTarget::default()
            .then(201, r#"{"id":"pay_1","status":"pending"}"#)
            .then(200, r#"{"id":"pay_1","status":"pending"}"#)
            .then(202, r#"{"id":"pay_1","status":"processing"}"#)
            .then(200, r#"{"id":"pay_1","status":"succeeded"}"#)
            .then(200, r#"{"id":"re_1"}"#);
        let ran = run_journey(POLLED_PAYMENT, target).await;
        // THEN it passes, the poll is one step with its attempt count, and each poll was a request
        assert_eq!(ran.run.status, Outcome::Passed, "{:#?}", ran.run);
        let names: Vec<&str> = ran.run.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["create", "settled", "refund"]);
        assert_eq!(ran.run.steps[1].attempts, 3);
        assert_eq!(ran.requests.len(), 5);
        assert!(ran.requests[1..4].iter().all(|r| r.url.path() == "/payments/pay_1"));
    }

    #[tokio::test]
    async fn a_poll_that_never_holds_ends_by_its_window_with_the_last_polls_message() {
        // GIVEN a payment that stays pending (the script answers 500 once it runs out, so every
        // poll is listed)
        let mut target = ScriptedTarget::default().then(201, r#"{"id":"pay_1"}"#);
        for n in 0..50 {
            target = target.then(200, &format!(r#"{{"id":"pay_1","status":"pending","poll":{n}}}"#));
        }
        let journey = POLLED_PAYMENT.replace("within_ms = 1000", "within_ms = 350");
        let ran = run_journey(&journey, target).await;
        // THEN the step fails as the last poll read, after the polls its window had room for,
        // and the refund still runs
        let settled = &ran.run.steps[1];
        assert_eq!((settled.outcome, settled.cause), (Outcome::Failed, Some(Cause::Assertion)));
        let polls = settled.attempts as usize;
        assert!((2..=4).contains(&polls), "{polls} polls in a 350 ms window 100 ms apart");
        assert_eq!(settled.error.as_deref(), Some(r#"JSON /status is "pending", expected "succeeded""#));
        assert_eq!(ran.requests.len(), 1 + polls + 1, "create, the polls, the refund");
        assert_eq!(ran.run.steps[2].name, "refund");
    }

    #[tokio::test]
    async fn a_poll_is_not_repeated_for_a_failure_that_waiting_does_not_cure() {
        let target = ScriptedTarget::default()
            .then(201, r#"{"id":"pay_1"}"#)
            .then(200, "<html>not json</html>")
            .then(200, "<html>not json</html>")
            .then(200, "{}");
        let ran = run_journey(POLLED_PAYMENT, target).await;
        let settled = &ran.run.steps[1];
        assert_eq!(settled.cause, Some(Cause::InvalidResponse));
        assert_eq!(settled.attempts, 2, "the retry policy's attempts, not polls");
    }

    #[tokio::test]
    async fn a_poll_window_longer_than_the_run_stops_at_the_run_deadline() {
        // GIVEN a 30 s poll window in a run that must end within 1 s (200 ms of it kept for the
        // refund), against a payment that never settles
        let mut target = ScriptedTarget::default().then(201, r#"{"id":"pay_1"}"#);
        for _ in 0..50 {
            target = target.then(200, r#"{"id":"pay_1","status":"pending"}"#);
        }
        let target = Arc::new(target);
        let journey = POLLED_PAYMENT
            .replace("within_ms = 1000", "within_ms = 30000")
            .replace("refund\"\nidempotent = true", "refund\"\nidempotent = true\nfail_after_ms = 200");
        let journey_def = JourneyDef::parse(&journey).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut journey =
            StepRecorder::new(RunSetup { deadline: Some(deadline), ..setup(target.clone(), "async-payment") });
        run(&journey_def, &mut journey, None).await.unwrap();
        let run = journey.finish();
        // THEN the polls stop with the run's time (100 ms apart: at most 8 fit), the step fails
        // as its last poll read, and the refund still has its time
        let settled = run.steps.get(1).unwrap_or_else(|| panic!("{run:#?}"));
        assert_eq!((settled.outcome, settled.cause), (Outcome::Failed, Some(Cause::Assertion)), "{run:#?}");
        assert!((1..=8).contains(&settled.attempts), "{settled:#?}");
        assert_eq!(outcomes(&run)[2], ("refund", Outcome::Passed, None), "{run:#?}");
    }

    #[tokio::test]
    async fn each_step_goes_to_its_own_origin_with_that_origins_credentials_only() {
        // GIVEN a token from the identity provider, which also sets its session cookie
        let token = answer(200, &[("set-cookie", "idp_session=idp-cookie-1; Path=/")], r#"{"access_token":"tok_1"}"#);
        let target = ScriptedTarget::default()
            .then_after(Duration::ZERO, token)
            .then_after(Duration::ZERO, answer(200, &[("set-cookie", "api_session=api-cookie-1")], "{}"))
            .then(200, "{}");
        // WHEN the journey runs
        let ran = run_journey(TWO_ORIGINS, target).await;
        assert_eq!(ran.run.status, Outcome::Passed, "{:?}", ran.run.steps);
        let [token, orders, userinfo] = ran.requests.as_slice() else { panic!("three requests") };
        // THEN each request went to its step's origin, under the declared base path
        assert_eq!(token.url.as_str(), "http://login.test/tenant/oauth2/token");
        assert_eq!(orders.url.as_str(), "http://api.test/api/orders");
        assert_eq!(userinfo.url.as_str(), "http://login.test/tenant/userinfo");
        // AND the client secret went to the identity provider only, the token to the API only
        assert!(body(token).contains("sk_test_4eC39Hq"));
        assert!(!body(orders).contains("sk_test") && orders.url.query().is_none());
        assert!(matches!(&orders.auth, Some(Auth::Bearer(t)) if t.expose() == "tok_1"));
        assert!(userinfo.auth.is_none());
        // AND each origin got back its own cookies, never the other's
        let cookie = |r: &HttpRequest| r.headers.iter().find(|(k, _)| k == "cookie").map(|(_, v)| v.clone());
        assert_eq!(cookie(orders), None, "the identity provider's session is not the API's");
        assert_eq!(cookie(userinfo).as_deref(), Some("idp_session=idp-cookie-1"));
    }

    #[tokio::test]
    async fn a_named_origin_redirecting_to_another_declared_origin_is_not_followed() {
        // GIVEN an identity provider that redirects the token request to the API's origin
        let moved = || answer(307, &[("location", "http://api.test/steal")], "");
        let target = ScriptedTarget::default().then_after(Duration::ZERO, moved()).then_after(Duration::ZERO, moved());
        // WHEN the journey runs
        let ran = run_journey(TWO_ORIGINS, target).await;
        // THEN the step fails and the secret was sent nowhere else
        // (a login is retried: each attempt went to the identity provider again, and only there)
        assert!(!ran.requests.is_empty());
        for sent in &ran.requests {
            assert_eq!(sent.url.as_str(), "http://login.test/tenant/oauth2/token", "nothing followed the redirect");
        }
        assert_eq!(ran.run.steps[0].cause, Some(Cause::InvalidResponse));
        assert!(ran.run.steps[0].error.as_deref().unwrap_or_default().contains("outside the target"));
    }

    #[tokio::test]
    async fn a_json_value_that_is_one_template_keeps_its_type_and_text_around_it_keeps_it_text() {
        // GIVEN captured numbers, an object and a string, and vars of each TOML type
        let source = r##"check = "typed"
[vars]
count = 3
ratio = 0.5
flag = true
label = "7"
[[steps]]
name = "create"
method = "POST"
path = "/graphql"
capture = { id = { json = "/data/id" }, meta = { json = "/data/meta" }, name = { json = "/data/name" } }
[[steps]]
name = "cleanup"
role = "cleanup"
method = "POST"
path = "/graphql"
json = { id = "{{id}}", meta = "{{meta}}", name = "{{name}}", count = "{{vars.count}}", ratio = "{{vars.ratio}}", flag = "{{vars.flag}}", label = "{{vars.label}}", text = "#{{id}}", forced = "{{id | string}}", var_forced = "{{ vars.flag | string }}", nested = ["{{id}}", { n = "{{vars.count}}" }] }
"##;
        let created = r#"{"data":{"id":42,"meta":{"tags":["a",1,true],"n":null},"name":"Kettle"}}"#;
        let target = ScriptedTarget::default().then(200, created).then(200, "{}");
        // WHEN the cleanup sends them back
        let ran = run_journey(source, target).await;
        assert_eq!(ran.run.status, Outcome::Passed, "{:?}", ran.run.steps);
        let sent: Value = serde_json::from_str(&body(&ran.requests[1])).unwrap();
        // THEN each keeps its own JSON type, unless text surrounds it or it is forced to a string
        assert_eq!(
            sent,
            serde_json::json!({
                "id": 42, "meta": {"tags": ["a", 1, true], "n": null}, "name": "Kettle",
                "count": 3, "ratio": 0.5, "flag": true, "label": "7",
                "text": "#42", "forced": "42", "var_forced": "true", "nested": [42, {"n": 3}]
            })
        );
    }

    const NEXT_LINK: &str = r#"check = "listing"
targets = { idp = "http://login.test/" }
steps = [
  { name = "first", path = "/shop/items?page=1", capture = { next = { json = "/links/next" } } },
  { name = "second", url = "{{next}}", assert = [{ json = "/page", equals = 2 }] },
]
"#;

    #[tokio::test]
    async fn a_captured_next_link_is_followed_whole_within_the_steps_origin() {
        for (next, expected) in [
            ("http://api.test/shop/items?page=2&cursor=a%2Fb", "http://api.test/shop/items?page=2&cursor=a%2Fb"),
            ("/shop/items?page=2", "http://api.test/shop/items?page=2"),
            ("HTTP://API.TEST:80/shop/items?page=2", "http://api.test/shop/items?page=2"),
        ] {
            // GIVEN a first page whose next link is a whole URL, or an absolute path
            let first = serde_json::json!({ "links": { "next": next } }).to_string();
            let target = ScriptedTarget::default().then(200, &first).then(200, r#"{"page":2}"#);
            // WHEN the journey follows it
            let ran = run_journey(NEXT_LINK, target).await;
            // THEN the link is requested as it is, not as one encoded path segment
            assert_eq!(ran.run.status, Outcome::Passed, "{next}: {:?}", ran.run.steps);
            assert_eq!(ran.requests[1].url.as_str(), expected);
        }
    }

    #[tokio::test]
    async fn a_next_link_leaving_the_steps_origin_fails_the_step_with_nothing_sent() {
        for next in [
            "http://evil.test/shop/items?page=2&token=abc",
            "//evil.test/x",
            "http://login.test/declared-but-not-this-steps",
            "https://api.test/shop/items",
            "http://api.test:8080/shop/items",
            "http://[::1",
        ] {
            // GIVEN a next link pointing at another origin (declared or not), or no URL at all
            let first = serde_json::json!({ "links": { "next": next } }).to_string();
            let target = ScriptedTarget::default().then(200, &first).then(200, "{}");
            // WHEN the journey runs
            let ran = run_journey(NEXT_LINK, target).await;
            // THEN only the first page was requested, and the step failed as the target's bad value
            assert_eq!(ran.requests.len(), 1, "{next}: nothing was sent there");
            let second = &ran.run.steps[1];
            assert_eq!((second.outcome, second.cause), (Outcome::Failed, Some(Cause::InvalidResponse)), "{next}");
            let error = second.error.as_deref().unwrap_or_default();
            assert!(error.contains("nothing was sent"), "{next}: {error}");
            assert!(!error.contains("token=abc"), "a query is never quoted: {error}");
        }
    }

    #[tokio::test]
    async fn a_redirect_not_followed_is_the_answer_to_assert_on() {
        let source = r#"check = "moved"
steps = [{ name = "old", path = "/old-shop", follow_redirects = false, expect_status = 301, assert = [
  { header = "Location", equals = "https://shop.example.com/" },
] }]
"#;
        // GIVEN a 301 to another origin, which would be refused if followed
        let moved = || answer(301, &[("location", "https://shop.example.com/")], "");
        let target = ScriptedTarget::default().then_after(Duration::ZERO, moved()).then_after(Duration::ZERO, moved());
        // WHEN the step does not follow redirects
        let ran = run_journey(source, target).await;
        // THEN the 301 and its Location are the step's answer, and nothing else was requested
        assert_eq!(ran.run.status, Outcome::Passed, "{:?}", ran.run.steps);
        assert_eq!(ran.requests.len(), 1);
        assert_eq!(ran.run.steps[0].status, Some(301));
    }

    #[tokio::test]
    async fn generated_values_are_one_instant_and_one_uuid_per_step_wherever_they_land() {
        let source = r#"check = "gen"
[[steps]]
name = "a"
method = "POST"
path = "/a/{{uuid}}?at={{now.iso}}&s={{now.unix}}"
headers = { X-Request-Id = "{{uuid}}", X-At = "{{now.unix_ms}}" }
json = { id = "{{uuid}}", s = "{{now.unix}}", ms = "{{now.unix_ms}}", iso = "{{now.iso}}", text = "t={{now.unix}}" }
[[steps]]
name = "b"
method = "POST"
path = "/b"
form = { id = "{{uuid}}", ms = "{{now.unix_ms}}" }
"#;
        let before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let ran = run_journey(source, ScriptedTarget::default().then(200, "{}").then(200, "{}")).await;
        let after = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        assert_eq!(ran.run.status, Outcome::Passed, "{:?}", ran.run.steps);
        let [a, b] = ran.requests.as_slice() else { panic!("two requests") };
        // THEN step a's values agree wherever they land, typed in JSON when alone
        let sent: Value = serde_json::from_str(&body(a)).unwrap();
        let uuid = sent["id"].as_str().unwrap().to_string();
        let parsed = uuid::Uuid::parse_str(&uuid).unwrap();
        assert_eq!((parsed.get_version_num(), parsed.hyphenated().to_string()), (4, uuid.clone()));
        let ms = sent["ms"].as_i64().expect("a number");
        assert!((before..=after).contains(&i128::from(ms)), "{before} <= {ms} <= {after}");
        assert_eq!(sent["s"].as_i64(), Some(ms / 1000));
        assert_eq!(sent["text"], format!("t={}", ms / 1000));
        let iso = time::OffsetDateTime::parse(sent["iso"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(iso.unix_timestamp_nanos() / 1_000_000, i128::from(ms), "one instant");
        assert_eq!(sent.as_object().unwrap().len(), 5, "no field added");
        let header = |name: &str| a.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(header("X-Request-Id"), Some(uuid.clone()));
        assert_eq!(header("X-At"), Some(ms.to_string()));
        assert_eq!(a.url.path(), format!("/a/{uuid}"));
        let query: Vec<(String, String)> = a.url.query_pairs().into_owned().collect();
        assert_eq!(query, [("at".into(), sent["iso"].as_str().unwrap().into()), ("s".into(), (ms / 1000).to_string())]);
        // AND the next step has its own
        let form = form_fields(b);
        assert_eq!(form.len(), 2);
        assert_ne!(form[0].1, uuid, "a fresh uuid per step");
        assert!(uuid::Uuid::parse_str(&form[0].1).is_ok());
        assert!(form[1].1.parse::<i64>().unwrap() >= ms);
    }

    const SIGNED: &str = r#"
check = "signed"
[[steps]]
name = "create"
method = "POST"
path = "/v1/orders"
idempotent = true
headers = { X-Timestamp = "{{now.unix}}" }
json = { at = "{{now.unix}}", ref = "{{uuid}}" }
sign = { key = "{{secret.api_key}}", message = "{{now.unix}}.{{request.method}} {{request.path}}.{{request.body}}", header = "X-Signature", prefix = "v1=" }
"#;

    /// An independent HMAC-SHA256 (RustCrypto), hex.
    fn reference_hmac(key: &str, message: &[u8]) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    #[tokio::test]
    async fn every_attempt_is_signed_over_its_own_timestamp_and_the_exact_body() {
        // GIVEN a signed write that fails once, then passes
        let ran = run_journey(SIGNED, ScriptedTarget::default().then(500, "down").then(200, "{}")).await;
        assert_eq!(ran.run.status, Outcome::Passed, "{:#?}", ran.run);
        let [first, second] = ran.requests.as_slice() else { panic!("{:?}", ran.requests) };
        for sent in [first, second] {
            let header = |name: &str| sent.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
            // THEN each attempt carries the HMAC of its own timestamp header, method, path and body bytes
            let message = format!("{}.POST /v1/orders.{}", header("X-Timestamp"), body(sent));
            assert_eq!(header("X-Signature"), format!("v1={}", reference_hmac("sk_test_4eC39Hq", message.as_bytes())));
            assert_eq!(sent.headers.iter().filter(|(k, _)| k == "X-Signature").count(), 1, "signed once");
        }
        // AND the first attempt's timestamp is the one its body names; the retry sends the same body
        let json: Value = serde_json::from_str(&body(first)).unwrap();
        let stamp = first.headers.iter().find(|(k, _)| k == "X-Timestamp").unwrap().1.clone();
        assert_eq!(json["at"].to_string(), stamp);
        assert_eq!(body(first), body(second), "an idempotent retry sends the same write");
        // AND the key is nowhere in the result
        assert!(!format!("{:?}{}", ran.run, serde_json::to_string(&ran.run).unwrap()).contains("sk_test_4eC39Hq"));
    }

    #[test]
    fn a_later_attempt_moves_the_timestamp_headers_and_the_signature_with_it() {
        let journey = JourneyDef::parse(SIGNED).unwrap();
        let secrets = Credentials::parse("acct", &Secret::new(ACCOUNT.to_string())).unwrap();
        let mut scope = RunScope {
            secrets: Some(Arc::new(secrets)),
            captures: HashMap::new(),
            typed: HashMap::new(),
            run_id: "run-1".into(),
            generated: GeneratedValues::default(),
        };
        let spec = render(&journey, &journey.steps[0], &mut scope).unwrap();
        let signing = spec.sign.clone().unwrap();
        assert!(!format!("{spec:?}").contains("sk_test_4eC39Hq"), "Debug never shows the key");
        let request = |at: i64| {
            let mut request = HttpRequest {
                method: spec.method,
                url: "http://api.test/v1/orders".parse().unwrap(),
                headers: spec.headers.clone(),
                auth: None,
                body: spec.body.clone(),
                timeout: Duration::from_secs(1),
            };
            let now = GeneratedValues::new(time::OffsetDateTime::from_unix_timestamp(at).unwrap(), uuid::Uuid::nil());
            signing.sign(&mut request, &now);
            request.headers
        };
        let (early, late) = (request(1_764_892_380), request(1_764_892_390));
        let value =
            |headers: &[(String, String)], name: &str| headers.iter().find(|(k, _)| k == name).unwrap().1.clone();
        assert_eq!(
            (value(&early, "X-Timestamp"), value(&late, "X-Timestamp")),
            ("1764892380".into(), "1764892390".into())
        );
        assert_ne!(value(&early, "X-Signature"), value(&late, "X-Signature"));
        let message = format!(
            "1764892390.POST /v1/orders.{}",
            String::from_utf8_lossy(spec.body.as_ref().unwrap().bytes.expose())
        );
        assert_eq!(
            value(&late, "X-Signature"),
            format!("v1={}", reference_hmac("sk_test_4eC39Hq", message.as_bytes()))
        );
    }

    #[tokio::test]
    async fn a_signing_key_from_a_capture_is_scrubbed_like_a_secret() {
        // GIVEN a key handed out by an earlier step (not a login: nothing else makes it secret)
        let source = "check = \"k\"\n[[steps]]\nname = \"key\"\npath = \"/key\"\ncapture = { k = { json = \"/key\" } }\n\
                      [[steps]]\nname = \"signed\"\npath = \"/x\"\nsign = { key = \"{{k}}\", message = \"{{request.path}}\", header = \"X-Sig\" }\n";
        let echo = "bad signature for key kq-SIGNING-9f8e7d";
        let target =
            ScriptedTarget::default().then(200, r#"{"key":"kq-SIGNING-9f8e7d"}"#).then(500, echo).then(500, echo);
        let ran = run_journey(source, target).await;
        // WHEN the target echoes it in an error THEN the result shows it redacted
        let error = ran.run.steps[1].error.clone().unwrap_or_default();
        assert!(error.contains("bad signature for key [REDACTED]"), "{error}");
        assert!(!format!("{:?}{}", ran.run, serde_json::to_string(&ran.run).unwrap()).contains("kq-SIGNING"));
    }
}

//! The four critical-path journeys: health, sign-in, product listing and a sandbox payment.
//!
//! Each is a short function over [`Journey`]; everything they share (signing in, refreshing a
//! rotated secret, step settings) lives here once.

use crate::assertion::Assertion;
use crate::config::{JourneyConfig, StepConfig};
use crate::error::{Cause, CheckError};
use crate::http::Method;
use crate::journey::{Journey, StepFailed, StepRole, StepSpec};
use crate::secret::{CredentialStore, Credentials, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Health,
    Auth,
    Products,
    Payment,
}

impl Check {
    pub const ALL: [Check; 4] = [Check::Health, Check::Auth, Check::Products, Check::Payment];

    pub fn name(self) -> &'static str {
        match self {
            Check::Health => "health",
            Check::Auth => "auth",
            Check::Products => "products",
            Check::Payment => "payment",
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn needs_credentials(self) -> bool {
        self != Check::Health
    }

    pub async fn run(self, journey: &mut Journey, deps: &CheckDeps<'_>) -> Result<(), Halt> {
        match self {
            Check::Health => health(journey, deps.journeys).await,
            Check::Auth => login(journey, deps).await.map(drop),
            Check::Products => products(journey, deps).await,
            Check::Payment => payment(journey, deps).await,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub struct CheckDeps<'a> {
    pub journeys: &'a JourneyConfig,
    pub credentials: Option<&'a CredentialStore>,
}

/// Why a journey stopped early.
#[derive(Debug)]
pub enum Halt {
    /// A step failed; it is in the journey's record and the run reports it.
    StepFailed,
    /// The monitor itself is broken (unreadable secret, missing setting): the invocation errors.
    Monitor(CheckError),
}

impl From<StepFailed> for Halt {
    fn from(_: StepFailed) -> Self {
        Halt::StepFailed
    }
}

impl From<CheckError> for Halt {
    fn from(error: CheckError) -> Self {
        Halt::Monitor(error)
    }
}

fn step(name: &str, method: Method, config: &StepConfig) -> StepSpec {
    StepSpec::new(name, method, &config.path, config.expect_status.clone(), config.budget)
}

async fn health(journey: &mut Journey, config: &JourneyConfig) -> Result<(), Halt> {
    let spec = step("health", Method::Get, &config.health).assert(Assertion::JsonPointerOneOfIfPresent(
        config.health_status_pointer.clone(),
        config.health_ok_values.clone(),
    ));
    journey.step(spec).await?;
    Ok(())
}

/// Signs the synthetic account in. When the target rejects it, the secret is re-read once: if
/// it was rotated, the login is retried with the new value; if not, the run reports
/// `credentials_rejected` rather than a target outage.
async fn login(journey: &mut Journey, deps: &CheckDeps<'_>) -> Result<(Secret<String>, Arc<Credentials>), Halt> {
    let store = deps.credentials.ok_or_else(|| CheckError::Misconfigured("CREDENTIALS_SECRET_ID is not set".into()))?;
    let config = deps.journeys;
    let mut credentials = store.get().await?;
    journey.scrub_secrets_of(credentials.clone());
    let response = match journey.step(login_step(config, &credentials)).await {
        Ok(response) => response,
        Err(failed) if failed.cause == Cause::CredentialsRejected => {
            let (fresh, changed) = store.refresh().await?;
            if !changed {
                return Err(Halt::StepFailed);
            }
            credentials = fresh;
            journey.scrub_secrets_of(credentials.clone());
            journey.rerun(login_step(config, &credentials)).await?
        }
        Err(failed) => return Err(failed.into()),
    };
    // The step asserted a non-empty string at the pointer, so this only fails on a bug.
    let token = response.json_str(&config.token_pointer).ok_or(Halt::StepFailed)?;
    Ok((Secret::new(token), credentials))
}

fn login_step(config: &JourneyConfig, credentials: &Credentials) -> StepSpec {
    step("login", Method::Post, &config.login)
        .role(StepRole::Login)
        .repeatable()
        .json(&json!({"email": credentials.email.expose(), "password": credentials.password.expose()}))
        .assert(Assertion::JsonPointerNonEmptyString(config.token_pointer.clone()))
}

async fn products(journey: &mut Journey, deps: &CheckDeps<'_>) -> Result<(), Halt> {
    let (token, _) = login(journey, deps).await?;
    let config = deps.journeys;
    let spec = step("products", Method::Get, &config.products)
        .bearer(&token)
        .assert(Assertion::JsonPointerMinLength(config.products_pointer.clone(), config.products_min_items));
    journey.step(spec).await?;
    Ok(())
}

/// Create, verify and always refund a sandbox payment. The refund runs whenever the target
/// holds a live payment, even when verification failed, because a leaked payment is a defect.
async fn payment(journey: &mut Journey, deps: &CheckDeps<'_>) -> Result<(), Halt> {
    let (token, credentials) = login(journey, deps).await?;
    let config = deps.journeys;
    let card = credentials.payment_token.clone().ok_or_else(|| {
        let secret = deps.credentials.map(CredentialStore::secret_id).unwrap_or_default();
        CheckError::Misconfigured(format!(
            "secret {secret} has no \"payment_token\" (a test-mode card token), which the payment check needs"
        ))
    })?;
    // One key per run: a retried create cannot charge twice, and the refund is safe to repeat.
    let key = format!("synthetic-{}", journey.run_id());
    let create = step("payment_create", Method::Post, &config.payment_create)
        .header("Idempotency-Key", &key)
        .bearer(&token)
        .json(&json!({
            "amount": config.payment_amount,
            "currency": config.payment_currency,
            "payment_token": card.expose(),
        }))
        .assert(Assertion::JsonPointerExists(config.payment_id_pointer.clone()))
        .assert(Assertion::JsonPointerNotIn(
            config.payment_status_pointer.clone(),
            config.payment_failed_statuses.clone(),
        ));
    let created = journey.step(create).await;
    let response = match &created {
        Ok(response) => Some(response),
        Err(failed) => failed.response.as_ref(),
    };
    let Some(id) = response.and_then(|r| live_payment_id(config, r)) else {
        created?;
        return Err(Halt::StepFailed);
    };
    let path_id = encode_path_segment(&id_text(&id));

    let verify = step("payment_get", Method::Get, &with_id(&config.payment_get, &path_id))
        .bearer(&token)
        .assert(Assertion::JsonPointerEquals(config.payment_id_pointer.clone(), id));
    let verified = journey.step(verify).await;

    let refund = step("payment_refund", Method::Post, &with_id(&config.payment_refund, &path_id))
        .role(StepRole::Cleanup)
        .header("Idempotency-Key", &format!("{key}-refund"))
        .bearer(&token);
    let refunded = journey.step(refund).await;

    created?;
    verified?;
    refunded?;
    Ok(())
}

/// The id of a payment the target reports as created and not failed, i.e. one to clean up.
fn live_payment_id(config: &JourneyConfig, response: &crate::http::HttpResponse) -> Option<Value> {
    let body = response.json().ok()?;
    let id = body.pointer(&config.payment_id_pointer)?.clone();
    let usable = match &id {
        // A dot segment would survive encoding and climb the path.
        Value::String(s) => !matches!(s.as_str(), "" | "." | ".."),
        Value::Number(_) => true,
        _ => false,
    };
    let status = body.pointer(&config.payment_status_pointer).and_then(Value::as_str).unwrap_or("");
    let failed = config.payment_failed_statuses.iter().any(|f| f.eq_ignore_ascii_case(status));
    (usable && !failed).then_some(id)
}

fn id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_string)
}

fn with_id(config: &StepConfig, id: &str) -> StepConfig {
    StepConfig { path: config.path.replace("{id}", id), ..config.clone() }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an id the target made up
/// (`../admin`, say) stays one path segment.
fn encode_path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

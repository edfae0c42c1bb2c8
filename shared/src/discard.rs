//! [`Discard`]: the adapter for the ports a run does not use. The `synthetic` CLI and the
//! `canary-gate` Lambda run journeys that must neither page (no alert) nor count towards the
//! production SLOs (no EMF metrics), and a journey that needs no account reads no secret.

use crate::alert::{AlertMessage, Notifier, PublishError};
use crate::error::CheckError;
use crate::metrics::MetricsSink;
use crate::secret::{Secret, SecretSource};
use async_trait::async_trait;
use serde_json::Value;

/// Accepts every alert and metric and drops it; refuses to read any secret.
pub struct Discard;

#[async_trait]
impl Notifier for Discard {
    async fn publish(&self, _: &AlertMessage) -> Result<(), PublishError> {
        Ok(())
    }
}

impl MetricsSink for Discard {
    fn emit(&self, _: &Value) {}

    /// Dropped as it is: the default would parse the line back only to drop it.
    fn emit_json(&self, _: &str) {}
}

#[async_trait]
impl SecretSource for Discard {
    async fn secret_string(&self, secret_id: &str) -> Result<Secret<String>, CheckError> {
        Err(CheckError::SecretUnavailable { secret_id: secret_id.to_string(), reason: "no secret source given".into() })
    }
}

//! Secrets Manager adapter for [`SecretSource`]: reads a SecretString by id or ARN.
//!
//! The SDK already redacts `SecretString` in its own `Debug`; the value is wrapped in a
//! [`Secret`] the moment it arrives.

use crate::error::CheckError;
use crate::secret::{Secret, SecretSource};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use lambda_runtime::tracing::instrument;

pub struct SecretsManagerSource {
    client: Client,
}

impl SecretsManagerSource {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SecretsManagerSource { client: Client::new(config) }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    #[instrument(skip(self))]
    async fn secret_string(&self, secret_id: &str) -> Result<Secret<String>, CheckError> {
        let unavailable = |reason: String| CheckError::SecretUnavailable { secret_id: secret_id.to_string(), reason };
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| unavailable(super::describe(&e)))?;
        output
            .secret_string
            .map(Secret::new)
            .ok_or_else(|| unavailable("it has no SecretString (binary secrets are not supported)".into()))
    }
}

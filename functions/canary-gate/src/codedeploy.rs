//! CodeDeploy adapter for [`LifecycleHooks`]: `PutLifecycleEventHookExecutionStatus`.
//!
//! Retried like every AWS call, by the SDK's standard retry strategy: throttling, 5xx answers,
//! timeouts and dropped connections are retried with jittered exponential backoff
//! ([`ReportRetry`]); an error a retry cannot fix (a deployment id CodeDeploy does not know, a
//! hook already completed, access denied) is not. The operation timeout is the retry budget the
//! handler keeps back from the Lambda deadline, so a report never outlives the invocation.

use crate::config::{REPORT_ATTEMPT_TIMEOUT, REPORT_MAX_BACKOFF, ReportRetry};
use crate::hooks::{HookExecution, HookStatus, LifecycleHooks, Unreported};
use async_trait::async_trait;
use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::config::retry::RetryConfig;
use aws_sdk_codedeploy::config::timeout::TimeoutConfig;
use aws_sdk_codedeploy::types::LifecycleEventStatus;
use lambda_runtime::tracing::instrument;
use std::time::Duration;

pub struct CodeDeployHooks {
    client: Client,
}

impl CodeDeployHooks {
    pub fn new(config: &aws_config::SdkConfig, retry: ReportRetry) -> Self {
        let codedeploy_config = aws_sdk_codedeploy::config::Builder::from(config)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(retry.attempts)
                    .with_initial_backoff(retry.backoff)
                    .with_max_backoff(REPORT_MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(REPORT_ATTEMPT_TIMEOUT)
                    .operation_timeout(retry.budget())
                    .build(),
            )
            .build();
        CodeDeployHooks { client: Client::from_conf(codedeploy_config) }
    }
}

#[async_trait]
impl LifecycleHooks for CodeDeployHooks {
    // The hook execution id is an opaque token for CodeDeploy alone: the deployment id names it.
    #[instrument(skip(self, execution), fields(deployment_id = %execution.deployment_id, %status))]
    async fn report(&self, execution: &HookExecution, status: HookStatus) -> Result<(), Unreported> {
        let status = match status {
            HookStatus::Succeeded => LifecycleEventStatus::Succeeded,
            HookStatus::Failed => LifecycleEventStatus::Failed,
        };
        self.client
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(&execution.deployment_id)
            .lifecycle_event_hook_execution_id(&execution.lifecycle_event_hook_execution_id)
            .status(status)
            .send()
            .await
            .map(drop)
            .map_err(|e| Unreported(synthetic_checks::aws::describe(&e)))
    }
}

#[cfg(test)]
mod tests {
    //! The adapter against the local fake of CodeDeploy's JSON protocol, so the real SDK
    //! serializes, signs, retries and classifies.

    use super::*;
    use synthetic_e2e::fake_codedeploy::{self, Answer};

    async fn hooks(endpoint: &str, attempts: u32) -> CodeDeployHooks {
        // The transport the function uses (`aws::sdk_config`), so these tests cover it too.
        let sdk = synthetic_checks::aws::local_sdk_config(endpoint).await;
        CodeDeployHooks::new(&sdk, ReportRetry { attempts, backoff: Duration::from_millis(5) })
    }

    fn execution() -> HookExecution {
        HookExecution {
            deployment_id: "d-ABCDEF123".into(),
            lifecycle_event_hook_execution_id: "eyJoZWxsbyI6MX0=".into(),
        }
    }

    #[tokio::test]
    async fn reports_the_status_as_codedeploy_takes_it() {
        let fake = fake_codedeploy::spawn().await.unwrap();
        hooks(fake.base_url(), 3).await.report(&execution(), HookStatus::Failed).await.unwrap();
        let calls = fake.handle().calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (calls[0].deployment_id.as_str(), calls[0].lifecycle_event_hook_execution_id.as_str()),
            ("d-ABCDEF123", "eyJoZWxsbyI6MX0=")
        );
        assert_eq!(calls[0].status, "Failed", "the fake refuses an unsigned request, so this one was signed");
    }

    #[tokio::test]
    async fn throttling_and_5xx_are_retried_until_reported() {
        let fake = fake_codedeploy::spawn().await.unwrap();
        fake.handle().fail_next([Answer::Throttling, Answer::ServerError]);
        hooks(fake.base_url(), 3).await.report(&execution(), HookStatus::Succeeded).await.unwrap();
        assert_eq!(fake.handle().requests(), 3);
        assert_eq!(fake.handle().calls().len(), 1, "recorded once, when it was accepted");
    }

    #[tokio::test]
    async fn what_a_retry_cannot_fix_is_not_retried() {
        let fake = fake_codedeploy::spawn().await.unwrap();
        fake.handle().fail_next([Answer::DeploymentDoesNotExist]);
        let error = hooks(fake.base_url(), 3).await.report(&execution(), HookStatus::Succeeded).await.unwrap_err();
        assert!(error.0.starts_with("DeploymentDoesNotExistException: "), "{error}");
        assert_eq!(fake.handle().requests(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_api_is_retried_then_an_error() {
        let url = synthetic_e2e::local_aws::unreachable_endpoint().unwrap();
        let error = hooks(&url, 3).await.report(&execution(), HookStatus::Succeeded).await.unwrap_err();
        assert!(!error.0.is_empty());
    }
}

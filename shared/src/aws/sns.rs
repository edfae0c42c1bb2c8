//! SNS adapter for [`Notifier`]: publishes the alert JSON with a subject and the filterable
//! message attributes.
//!
//! The SDK's own retries are switched off so [`deliver`](crate::alert::deliver) owns the retry
//! policy in one place; this adapter only classifies what a retry can fix.

use crate::alert::{AlertMessage, Notifier, PublishError};
use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use lambda_runtime::tracing::instrument;
use std::time::Duration;

/// Error codes SNS (and KMS behind an encrypted topic) use for "slow down" and "try again".
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "KMSThrottlingException",
    "KMSThrottling",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: &str) -> Self {
        let sns_config = aws_sdk_sns::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(crate::alert::PUBLISH_ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        SnsNotifier { client: Client::from_conf(sns_config), topic_arn: topic_arn.to_string() }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    #[instrument(skip(self, alert), fields(check = %alert.check, event_action = ?alert.event_action))]
    async fn publish(&self, alert: &AlertMessage) -> Result<(), PublishError> {
        let body = serde_json::to_string(alert)
            .map_err(|e| PublishError::Permanent(format!("alert does not serialize: {e}")))?;
        let mut request = self.client.publish().topic_arn(&self.topic_arn).subject(alert.subject()).message(body);
        for (name, value) in alert.attributes() {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PublishError::Permanent(format!("attribute {name}: {e}")))?;
            request = request.message_attributes(name, attribute);
        }
        request.send().await.map(drop).map_err(|e| classify(&e))
    }
}

fn classify<E>(error: &SdkError<E, HttpResponse>) -> PublishError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = super::describe(error);
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PublishError::Retryable(text)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            let text = format!("{text} (HTTP {status})");
            if status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code) {
                PublishError::Retryable(text)
            } else {
                PublishError::Permanent(text)
            }
        }
        _ => PublishError::Permanent(text),
    }
}

#[cfg(test)]
mod tests {
    //! The adapter against a local HTTP endpoint speaking SNS's query protocol, so the real SDK
    //! serializes, signs and classifies.

    use super::*;
    use crate::alert::{AlertMessage, deliver};
    use crate::config::Origin;
    use crate::journey::{Outcome, RetryPolicy, RunResult};
    use axum::http::StatusCode;
    use std::sync::{Arc, Mutex};

    const OK: &str = r#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>"#;

    fn error_body(code: &str) -> String {
        format!(
            r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r-2</RequestId></ErrorResponse>"#
        )
    }

    /// Answers the scripted (status, code) pairs in order, then success; records request bodies.
    async fn fake_sns(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let recorded = bodies.clone();
        let app = axum::Router::new().fallback(move |body: String| {
            let (bodies, script) = (recorded.clone(), script.clone());
            async move {
                bodies.lock().unwrap().push(body);
                let headers = [("content-type", "text/xml")];
                match script.lock().unwrap().pop_front() {
                    Some((status, code)) => (StatusCode::from_u16(status).unwrap(), headers, error_body(code)),
                    None => (StatusCode::OK, headers, OK.to_string()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, bodies)
    }

    async fn notifier(endpoint: &str) -> SnsNotifier {
        // The transport the functions use (`aws::sdk_config`), so these tests cover it too.
        let sdk = crate::aws::local_sdk_config(endpoint).await;
        SnsNotifier::new(&sdk, "arn:aws:sns:us-east-1:000000000000:alerts")
    }

    fn alert() -> AlertMessage {
        let run = RunResult {
            check: "health".into(),
            env: "prod".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: String::new(),
            duration_ms: 5,
            status: Outcome::Passed,
            cause: None,
            steps: vec![],
            account: None,
            certificate: None,
        };
        AlertMessage::from_run(&run, &Origin::default())
    }

    const QUICK: RetryPolicy = RetryPolicy { attempts: 4, backoff: Duration::from_millis(5) };

    #[tokio::test]
    async fn throttling_and_5xx_are_retried_until_published() {
        let (url, bodies) = fake_sns(vec![(500, "InternalError"), (400, "Throttling")]).await;
        let attempts = deliver(&notifier(&url).await, &alert(), QUICK).await.unwrap();
        assert_eq!(attempts, 3);
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 3);
        let last = &bodies[2];
        assert!(last.contains("Action=Publish") && last.contains("Subject="), "{last}");
        for attribute in ["check", "status", "event_action", "severity"] {
            assert!(last.contains(&format!("Name={attribute}")), "missing {attribute}: {last}");
        }
    }

    #[tokio::test]
    async fn access_denied_is_permanent() {
        let (url, bodies) = fake_sns(vec![(403, "AuthorizationError")]).await;
        let error = deliver(&notifier(&url).await, &alert(), QUICK).await.unwrap_err();
        assert!(matches!(error, crate::CheckError::AlertUndeliverable { attempts: 1, .. }));
        assert!(error.to_string().contains("AuthorizationError"), "{error}");
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retried_then_reported() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let error = deliver(&notifier(&url).await, &alert(), QUICK).await.unwrap_err();
        assert!(matches!(error, crate::CheckError::AlertUndeliverable { attempts: 4, .. }), "{error}");
    }
}

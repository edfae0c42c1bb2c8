//! SNS adapter for [`Notifier`]: publishes the alert JSON with a subject and the filterable
//! message attributes.
//!
//! The SDK's own retries are switched off so [`deliver`](crate::alert::deliver) owns the retry
//! policy in one place; this adapter only classifies what a retry can fix.
//!
//! The client is built for the topic's region, read from its ARN, not for the function's: a check
//! in eu-west-1 of a multi-region deployment publishes to the home region's topic (us-east-1),
//! and SNS serves a topic only from its own region's endpoint (and signature scope).

use crate::alert::{AlertMessage, Notifier, PublishError};
use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::config::Region;
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
    /// A client for `topic_arn`'s region, whatever region `config` was loaded for. The ARN is
    /// validated with the configuration ([`topic_region`] behind `ALERT_TOPIC_ARN`); one that does
    /// not parse keeps `config`'s region, and SNS's own error then names the topic.
    pub fn new(config: &aws_config::SdkConfig, topic_arn: &str) -> Self {
        let mut builder =
            aws_sdk_sns::config::Builder::from(config).retry_config(RetryConfig::disabled()).timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(crate::alert::PUBLISH_ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Ok(region) = topic_region(topic_arn)
            && config.region().map(Region::as_ref) != Some(region)
        {
            builder = builder.region(Region::new(region.to_string()));
        }
        SnsNotifier { client: Client::from_conf(builder.build()), topic_arn: topic_arn.to_string() }
    }

    /// Publishes a message that is not an alert (the forwarder's stopped-check notifications to
    /// the operations topic), classified like [`Notifier::publish`].
    pub async fn publish_raw(&self, subject: &str, message: &str) -> Result<(), PublishError> {
        let request = self.client.publish().topic_arn(&self.topic_arn).subject(subject).message(message);
        request.send().await.map(drop).map_err(|e| classify(&e))
    }
}

/// The region of an SNS topic ARN, `arn:<partition>:sns:<region>:<account id>:<topic>`; the error
/// says which part is wrong.
pub fn topic_region(arn: &str) -> Result<&str, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, topic] = parts[..] else {
        return Err(
            "it has fewer than the 6 ':'-separated parts of arn:<partition>:sns:<region>:<account>:<topic>".into()
        );
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let topic_name = topic.strip_suffix(".fifo").unwrap_or(topic);
    if prefix != "arn" {
        Err("it does not start with arn:".into())
    } else if partition.is_empty() || !partition.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        Err("its partition (aws, aws-cn, aws-us-gov, ...) is missing or malformed".into())
    } else if service != "sns" {
        Err(format!("its service is {service:?}, not sns"))
    } else if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        Err("its region is missing or malformed".into())
    } else if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        Err("its account id is not 12 digits".into())
    } else if topic_name.is_empty() || topic.len() > 256 || !topic_name.chars().all(name_char) {
        Err("its topic name is not 1-256 letters, digits, '-' or '_' (a FIFO topic's ending in .fifo)".into())
    } else {
        Ok(region)
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    #[instrument(skip(self, alert), fields(check = %alert.check, event_action = ?alert.event_action))]
    async fn publish(&self, alert: &AlertMessage) -> Result<(), PublishError> {
        let body = alert.to_json().map_err(|e| PublishError::Permanent(format!("alert does not serialize: {e}")))?;
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
    use crate::journey::RetryPolicy;
    use crate::result::{Outcome, RunResult};
    use axum::http::StatusCode;
    use std::sync::{Arc, Mutex};

    const OK: &str = r#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>"#;

    fn error_body(code: &str) -> String {
        format!(
            r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r-2</RequestId></ErrorResponse>"#
        )
    }

    /// Answers the scripted (status, code) pairs in order, then success; records request bodies
    /// and, in the same order, their Authorization headers.
    async fn fake_sns(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let (url, bodies, _) = fake_sns_with_authorizations(script).await;
        (url, bodies)
    }

    type Recorded = Arc<Mutex<Vec<String>>>;

    async fn fake_sns_with_authorizations(script: Vec<(u16, &'static str)>) -> (String, Recorded, Recorded) {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let (recorded, recorded_auth) = (bodies.clone(), authorizations.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
            let (bodies, authorizations, script) = (recorded.clone(), recorded_auth.clone(), script.clone());
            async move {
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                authorizations.lock().unwrap().push(authorization.to_string());
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
        (url, bodies, authorizations)
    }

    async fn notifier(endpoint: &str) -> SnsNotifier {
        notifier_for(endpoint, "arn:aws:sns:us-east-1:000000000000:alerts").await
    }

    /// An SDK configuration for us-east-1 with `endpoint` (a local emulator, as AWS_ENDPOINT_URL
    /// would set it), and the notifier for `topic_arn` built from it.
    async fn notifier_for(endpoint: &str, topic_arn: &str) -> SnsNotifier {
        // The transport the functions use (`aws::sdk_config`), so these tests cover it too.
        let sdk = crate::aws::local_sdk_config(endpoint).await;
        SnsNotifier::new(&sdk, topic_arn)
    }

    #[test]
    fn topic_region_reads_the_region_and_names_what_is_wrong() {
        assert_eq!(topic_region("arn:aws:sns:us-east-1:123456789012:alerts"), Ok("us-east-1"));
        assert_eq!(topic_region("arn:aws-cn:sns:cn-north-1:123456789012:a_b-c"), Ok("cn-north-1"));
        assert_eq!(topic_region("arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts.fifo"), Ok("us-gov-west-1"));
        let cases = [
            ("alerts", "fewer than the 6"),
            ("arn:aws:sns:us-east-1:123456789012", "fewer than the 6"),
            ("urn:aws:sns:us-east-1:123456789012:alerts", "does not start with arn:"),
            ("arn::sns:us-east-1:123456789012:alerts", "partition"),
            ("arn:aws:sqs:us-east-1:123456789012:alerts", "its service is \"sqs\", not sns"),
            ("arn:aws:sns::123456789012:alerts", "region"),
            ("arn:aws:sns:US-EAST-1:123456789012:alerts", "region"),
            ("arn:aws:sns:us-east-1:1234:alerts", "account id"),
            ("arn:aws:sns:us-east-1:123456789012:", "topic name"),
            ("arn:aws:sns:us-east-1:123456789012:alerts:subscription-id", "topic name"),
            ("arn:aws:sns:us-east-1:123456789012:alerts/x", "topic name"),
        ];
        for (arn, expected) in cases {
            let error = topic_region(arn).unwrap_err();
            assert!(error.contains(expected), "{arn}: {error}");
        }
        assert!(topic_region(&format!("arn:aws:sns:us-east-1:123456789012:{}", "a".repeat(257))).is_err());
    }

    /// A check in eu-west-1 of a multi-region deployment publishes to the home topic in us-east-1:
    /// the request is signed for the topic's region, whatever region the SDK was loaded for.
    #[tokio::test]
    async fn the_request_is_signed_for_the_topic_region() {
        for (arn, region) in [
            ("arn:aws:sns:eu-west-1:123456789012:alerts", "eu-west-1"),
            ("arn:aws:sns:us-east-1:123456789012:alerts", "us-east-1"),
        ] {
            let (url, _, authorizations) = fake_sns_with_authorizations(vec![]).await;
            notifier_for(&url, arn).await.publish(&alert()).await.unwrap();
            let authorizations = authorizations.lock().unwrap();
            assert!(authorizations[0].contains(&format!("/{region}/sns/aws4_request")), "{arn}: {authorizations:?}");
        }
    }

    /// Without an endpoint override, the client resolves the topic region's SNS endpoint.
    #[tokio::test]
    async fn the_request_goes_to_the_topic_region_endpoint() {
        use aws_smithy_runtime_api::client::http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
            SharedHttpConnector,
        };
        use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

        /// Records where each request would go, and sends nothing.
        #[derive(Clone, Debug, Default)]
        struct Uris(Arc<Mutex<Vec<String>>>);
        impl HttpConnector for Uris {
            fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
                self.0.lock().unwrap().push(request.uri().to_string());
                HttpConnectorFuture::new(async { Err(ConnectorError::other("not sent".into(), None)) })
            }
        }
        impl HttpClient for Uris {
            fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
                SharedHttpConnector::new(self.clone())
            }
        }

        let uris = Uris::default();
        // Built directly, so no AWS_* variable of the machine running the test can change it.
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
                aws_sdk_sns::config::Credentials::new("AKID", "SECRET", None, None, "test"),
            ))
            .http_client(SharedHttpClient::new(uris.clone()))
            .build();
        let notifier = SnsNotifier::new(&sdk, "arn:aws:sns:ap-southeast-2:123456789012:alerts");
        assert!(matches!(notifier.publish(&alert()).await, Err(PublishError::Retryable(_))));
        assert_eq!(*uris.0.lock().unwrap(), vec!["https://sns.ap-southeast-2.amazonaws.com/".to_string()]);
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
            trace_id: None,
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

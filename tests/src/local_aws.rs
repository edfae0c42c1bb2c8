//! Local AWS for the end-to-end tests: a moto server on loopback, typed
//! helpers over the Rust SDK for the few calls the tests need (Secrets
//! Manager, SNS, SQS), and a deliberately broken endpoint for proving that
//! AWS failures surface as Lambda failures.
//!
//! Alerts are observed by subscribing an SQS queue to the alert topic and
//! draining it. [`LocalAws::subscribe_queue`] uses SNS's default (envelope)
//! delivery because only the envelope carries the `Subject`; moto also
//! honours `RawMessageDelivery=true` (body = the message, SNS message
//! attributes become SQS message attributes, no subject), available as
//! [`LocalAws::subscribe_queue_raw`]. [`LocalAws::drain`] understands both.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::AsyncRead;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const OUTPUT_KEPT: usize = 200;

/// Why starting moto or talking to (local) AWS failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalAwsError {
    #[error("moto_server not found at {}; run `make tools` (or set MOTO_SERVER)", .0.display())]
    MotoMissing(PathBuf),
    #[error("moto_server did not start: {reason}{}", tail(output))]
    MotoStart { reason: String, output: Vec<String> },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{operation} failed: {message}")]
    Aws { operation: &'static str, message: String },
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() { String::new() } else { format!("\n--- moto output ---\n{}", lines.join("\n")) }
}

/// Maps an SDK error to [`LocalAwsError::Aws`], keeping the whole cause
/// chain (the top-level `Display` of an SDK error is just "service error").
fn aws_err<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> LocalAwsError {
    move |e| LocalAwsError::Aws { operation, message: aws_sdk_sns::error::DisplayErrorContext(e).to_string() }
}

fn missing(operation: &'static str, what: &str) -> LocalAwsError {
    LocalAwsError::Aws { operation, message: format!("response has no {what}") }
}

fn loopback_client() -> Result<reqwest::Client, LocalAwsError> {
    // Everything here is on loopback; a developer's proxy must not see it.
    Ok(reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?)
}

// ---------------------------------------------------------------------------
// moto

/// A moto server child process on `127.0.0.1`, killed on drop.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl Moto {
    /// Starts `$MOTO_SERVER`, or `<workspace>/.venv/bin/moto_server`, on a
    /// free port and waits until it answers.
    pub async fn start() -> Result<Moto, LocalAwsError> {
        let binary = moto_binary()?;
        // The port is picked before moto binds it, so another process can
        // take it in between; retry rather than fail the whole test run.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_on(&binary, free_port()?).await {
                Ok(moto) => return Ok(moto),
                Err(e @ LocalAwsError::MotoStart { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| LocalAwsError::MotoStart { reason: "no attempt made".to_owned(), output: Vec::new() }))
    }

    async fn start_on(binary: &Path, port: u16) -> Result<Moto, LocalAwsError> {
        let mut child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LocalAwsError::MotoStart {
                reason: format!("cannot run {}: {e}", binary.display()),
                output: Vec::new(),
            })?;
        // moto logs every request; unread pipes would fill up and stall it.
        let output = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            keep_tail(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            keep_tail(err, output.clone());
        }
        let moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), child, output };
        moto.wait_ready().await
    }

    async fn wait_ready(mut self) -> Result<Moto, LocalAwsError> {
        let http = loopback_client()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Give the readers a moment to collect the error output.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Err(LocalAwsError::MotoStart {
                    reason: format!("moto_server exited ({status})"),
                    output: self.output(),
                });
            }
            // Moto's dashboard, not just any answer: another test's server may have taken the
            // port between picking and binding it. Moto then exits, and `start` tries another.
            let answer = http.get(format!("{}/moto-api/", self.endpoint)).timeout(Duration::from_secs(2)).send().await;
            if let Ok(response) = answer
                && response.status().is_success()
                && response.text().await.is_ok_and(|page| page.contains("Moto"))
            {
                return Ok(self);
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(LocalAwsError::MotoStart {
                    reason: format!("no answer on {} within {READY_TIMEOUT:?}", self.endpoint),
                    output: self.output(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Forgets every resource in every service.
    pub async fn reset(&self) -> Result<(), LocalAwsError> {
        loopback_client()?.post(format!("{}/moto-api/reset", self.endpoint)).send().await?.error_for_status()?;
        Ok(())
    }

    /// Environment for a child process (e.g. a Lambda under the emulator)
    /// that should talk to this moto.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// SDK clients pointed at this moto.
    pub fn local_aws(&self) -> LocalAws {
        LocalAws::new(&self.endpoint)
    }

    /// The last lines moto printed, for diagnosing a failing test.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Kills moto and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn moto_binary() -> Result<PathBuf, LocalAwsError> {
    let path = match std::env::var_os("MOTO_SERVER").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server"),
    };
    if path.is_file() { Ok(path) } else { Err(LocalAwsError::MotoMissing(path)) }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn keep_tail(stream: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<VecDeque<String>>>) {
    crate::lambda_emulator::for_each_line(stream, move |line| {
        let mut out = output.lock().unwrap_or_else(PoisonError::into_inner);
        if out.len() == OUTPUT_KEPT {
            out.pop_front();
        }
        out.push_back(line);
    });
}

// ---------------------------------------------------------------------------
// SDK helpers

/// One message taken from an SQS queue subscribed to a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// The published message parsed as JSON, or a JSON string holding it if
    /// it is not JSON.
    pub body: Value,
    /// The published message exactly as sent.
    pub raw: String,
    /// The publish `Subject` (envelope delivery only; raw delivery drops it).
    pub subject: Option<String>,
    /// SNS message attributes by name (binary ones as lossy UTF-8).
    pub attributes: BTreeMap<String, String>,
}

/// Rust SDK clients for a local endpoint, configured explicitly (endpoint,
/// region, static test credentials) so the test process's own AWS
/// environment can never send them to a real account.
#[derive(Debug, Clone)]
pub struct LocalAws {
    secrets: aws_sdk_secretsmanager::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl LocalAws {
    pub fn new(endpoint: &str) -> LocalAws {
        let creds = || aws_sdk_sns::config::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "local-aws");
        let region = || aws_sdk_sns::config::Region::new(REGION);
        // The functions' own SDK transport: the AWS crates are built without a default client.
        let http = synthetic_checks::aws::SdkHttpClient::shared();
        let secrets = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .http_client(http.clone())
            .endpoint_url(endpoint)
            .region(region())
            .credentials_provider(creds())
            .build();
        let sns = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .http_client(http.clone())
            .endpoint_url(endpoint)
            .region(region())
            .credentials_provider(creds())
            .build();
        let sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .http_client(http.clone())
            .endpoint_url(endpoint)
            .region(region())
            .credentials_provider(creds())
            .build();
        let dynamodb = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .http_client(http.clone())
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "local-aws",
            ))
            .build();
        LocalAws {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
            sns: aws_sdk_sns::Client::from_conf(sns),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
        }
    }

    pub fn secrets_manager(&self) -> &aws_sdk_secretsmanager::Client {
        &self.secrets
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        &self.sns
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    /// Creates the forwarder's state table as `infra/template.yaml` declares it: `pk` + `sk`,
    /// both strings, on demand.
    pub async fn create_state_table(&self, name: &str) -> Result<(), LocalAwsError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        self.dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk").map_err(aws_err("CreateTable"))?)
            .attribute_definitions(attribute("sk").map_err(aws_err("CreateTable"))?)
            .key_schema(key("pk", KeyType::Hash).map_err(aws_err("CreateTable"))?)
            .key_schema(key("sk", KeyType::Range).map_err(aws_err("CreateTable"))?)
            .send()
            .await
            .map_err(aws_err("CreateTable"))?;
        Ok(())
    }

    /// Creates a secret holding `json` as its string value; returns its ARN.
    pub async fn create_secret(&self, name: &str, json: &str) -> Result<String, LocalAwsError> {
        const OP: &str = "CreateSecret";
        let out = self.secrets.create_secret().name(name).secret_string(json).send().await.map_err(aws_err(OP))?;
        out.arn.ok_or_else(|| missing(OP, "ARN"))
    }

    /// Stores a new current version of secret `id` (name or ARN).
    pub async fn put_secret_value(&self, id: &str, json: &str) -> Result<(), LocalAwsError> {
        self.secrets
            .put_secret_value()
            .secret_id(id)
            .secret_string(json)
            .send()
            .await
            .map_err(aws_err("PutSecretValue"))?;
        Ok(())
    }

    /// The current string value of secret `id` (name or ARN).
    pub async fn get_secret(&self, id: &str) -> Result<String, LocalAwsError> {
        const OP: &str = "GetSecretValue";
        let out = self.secrets.get_secret_value().secret_id(id).send().await.map_err(aws_err(OP))?;
        out.secret_string.ok_or_else(|| missing(OP, "SecretString"))
    }

    /// Creates (or finds, SNS being idempotent here) a topic; returns its ARN.
    pub async fn create_topic(&self, name: &str) -> Result<String, LocalAwsError> {
        const OP: &str = "CreateTopic";
        let out = self.sns.create_topic().name(name).send().await.map_err(aws_err(OP))?;
        out.topic_arn.ok_or_else(|| missing(OP, "TopicArn"))
    }

    /// Creates queue `queue_name` and subscribes it to `topic_arn` with
    /// envelope delivery (keeps `Subject`); returns the queue URL.
    pub async fn subscribe_queue(&self, topic_arn: &str, queue_name: &str) -> Result<String, LocalAwsError> {
        self.subscribe(topic_arn, queue_name, false).await
    }

    /// Like [`subscribe_queue`](Self::subscribe_queue) with
    /// `RawMessageDelivery=true`: no envelope, no `Subject`.
    pub async fn subscribe_queue_raw(&self, topic_arn: &str, queue_name: &str) -> Result<String, LocalAwsError> {
        self.subscribe(topic_arn, queue_name, true).await
    }

    async fn subscribe(&self, topic_arn: &str, queue_name: &str, raw: bool) -> Result<String, LocalAwsError> {
        let created = self.sqs.create_queue().queue_name(queue_name).send().await.map_err(aws_err("CreateQueue"))?;
        let queue_url = created.queue_url.ok_or_else(|| missing("CreateQueue", "QueueUrl"))?;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(aws_err("GetQueueAttributes"))?;
        let queue_arn = attrs
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .ok_or_else(|| missing("GetQueueAttributes", "QueueArn"))?;
        // moto does not enforce it, but real SQS drops SNS deliveries without
        // this policy, and the helper should read like the real setup.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
            }],
        });
        self.sqs
            .set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(aws_err("SetQueueAttributes"))?;
        self.sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", if raw { "true" } else { "false" })
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(aws_err("Subscribe"))?;
        Ok(queue_url)
    }

    /// Receives until the queue is empty, deleting what it read. moto
    /// delivers SNS→SQS inside `Publish`, so no long-poll is needed.
    pub async fn drain(&self, queue_url: &str) -> Result<Vec<ReceivedMessage>, LocalAwsError> {
        let mut received = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(aws_err("ReceiveMessage"))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(received);
            }
            for message in messages {
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(aws_err("DeleteMessage"))?;
                }
                received.push(unwrap_delivery(
                    message.body.unwrap_or_default(),
                    message.message_attributes.unwrap_or_default(),
                ));
            }
        }
    }
}

/// Turns one SQS body into what was published, whether it arrived in an
/// SNS envelope or raw.
fn unwrap_delivery(
    sqs_body: String,
    sqs_attributes: HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
) -> ReceivedMessage {
    let envelope = serde_json::from_str::<Value>(&sqs_body)
        .ok()
        .filter(|v| v["Type"] == "Notification" && v["Message"].is_string() && v.get("TopicArn").is_some());
    let (raw, subject, attributes) = match envelope {
        Some(env) => {
            let attributes = env["MessageAttributes"]
                .as_object()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| {
                            let value = match &v["Value"] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (k.clone(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                env["Message"].as_str().unwrap_or_default().to_owned(),
                env["Subject"].as_str().map(str::to_owned),
                attributes,
            )
        }
        None => {
            let attributes = sqs_attributes
                .into_iter()
                .map(|(k, v)| {
                    let value = match (v.string_value, v.binary_value) {
                        (Some(s), _) => s,
                        (None, Some(b)) => String::from_utf8_lossy(b.as_ref()).into_owned(),
                        (None, None) => String::new(),
                    };
                    (k, value)
                })
                .collect();
            (sqs_body, None, attributes)
        }
    };
    ReceivedMessage {
        body: serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone())),
        raw,
        subject,
        attributes,
    }
}

// ---------------------------------------------------------------------------
// Broken endpoints

/// An HTTP server that answers every request with one error status and an
/// AWS-shaped error body, counting requests. Stops on drop.
#[derive(Debug)]
pub struct FailingEndpoint {
    base_url: String,
    hits: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl FailingEndpoint {
    /// `http://127.0.0.1:PORT`, e.g. for `AWS_ENDPOINT_URL_SNS`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Requests answered so far (SDK retries included).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A shareable counter, for assertions after the endpoint is moved.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.hits.clone()
    }
}

/// Starts a [`FailingEndpoint`] answering `status` (400..=599).
pub async fn spawn_failing_endpoint(status: u16) -> std::io::Result<FailingEndpoint> {
    let status =
        StatusCode::from_u16(status).ok().filter(|s| s.is_client_error() || s.is_server_error()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("failing endpoint status must be 400..=599, got {status}"),
            )
        })?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(fail).with_state((status, hits.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(FailingEndpoint { base_url: format!("http://{addr}"), hits, _stop: stop })
}

async fn fail(State((status, hits)): State<(StatusCode, Arc<AtomicUsize>)>, headers: HeaderMap) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    let code = match status.as_u16() {
        400 => "InvalidParameter",
        403 => "AuthorizationError",
        404 => "NotFound",
        429 => "Throttling",
        503 => "ServiceUnavailable",
        _ if status.is_server_error() => "InternalFailure",
        _ => "InjectedFailure",
    };
    let message = format!("injected {} failure", status.as_u16());
    // JSON-protocol services (Secrets Manager, SQS) name the operation in
    // X-Amz-Target; query-protocol ones (SNS) expect XML.
    if headers.contains_key("x-amz-target") {
        (
            status,
            [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            json!({ "__type": code, "message": message }).to_string(),
        )
            .into_response()
    } else {
        let body = format!(
            "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{}</RequestId></ErrorResponse>",
            if status.is_server_error() { "Receiver" } else { "Sender" },
            uuid::Uuid::new_v4(),
        );
        (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
    }
}

/// A loopback URL nothing listens on (the port was just released), for
/// "AWS is unreachable" tests.
pub fn unreachable_endpoint() -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::types::MessageAttributeValue;

    fn attr(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder().data_type("String").string_value(value).build().unwrap()
    }

    #[tokio::test]
    async fn moto_secrets_topics_queues_and_failures() {
        let moto = Moto::start().await.unwrap();
        let aws = moto.local_aws();

        let creds = r#"{"email":"synthetic-monitor@example.com","password":"one"}"#;
        let arn = aws.create_secret("synthetic/shop-credentials", creds).await.unwrap();
        assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:"), "{arn}");
        assert_eq!(aws.get_secret(&arn).await.unwrap(), creds);
        let rotated = r#"{"email":"synthetic-monitor@example.com","password":"two"}"#;
        aws.put_secret_value("synthetic/shop-credentials", rotated).await.unwrap();
        assert_eq!(aws.get_secret("synthetic/shop-credentials").await.unwrap(), rotated);

        let topic = aws.create_topic("synthetic-alerts").await.unwrap();
        let enveloped = aws.subscribe_queue(&topic, "alerts-inbox").await.unwrap();
        let raw = aws.subscribe_queue_raw(&topic, "alerts-raw").await.unwrap();
        let message = json!({ "check": "check-products", "status": "failed" });
        aws.sns()
            .publish()
            .topic_arn(&topic)
            .subject("ALARM: check-products")
            .message(message.to_string())
            .message_attributes("severity", attr("critical"))
            .message_attributes("check", attr("check-products"))
            .send()
            .await
            .unwrap();

        let expected_attrs: BTreeMap<String, String> = [("check", "check-products"), ("severity", "critical")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let got = aws.drain(&enveloped).await.unwrap();
        assert_eq!(
            got,
            [ReceivedMessage {
                body: message.clone(),
                raw: message.to_string(),
                subject: Some("ALARM: check-products".into()),
                attributes: expected_attrs.clone(),
            }]
        );
        let got = aws.drain(&raw).await.unwrap();
        assert_eq!(
            got,
            [ReceivedMessage {
                body: message.clone(),
                raw: message.to_string(),
                subject: None,
                attributes: expected_attrs,
            }]
        );
        assert!(aws.drain(&enveloped).await.unwrap().is_empty(), "drain deletes");

        moto.reset().await.unwrap();
        let topics = aws.sns().list_topics().send().await.unwrap();
        assert!(topics.topics().is_empty(), "reset forgets topics");

        // A broken SNS endpoint makes calls fail and is seen being hit.
        let broken = spawn_failing_endpoint(500).await.unwrap();
        let err = LocalAws::new(broken.base_url()).create_topic("x").await.unwrap_err();
        assert!(err.to_string().contains("InternalFailure"), "{err}");
        assert!(broken.hits() >= 1);
        let err = LocalAws::new(broken.base_url()).get_secret("x").await.unwrap_err();
        assert!(err.to_string().contains("InternalFailure"), "{err}");

        let nowhere = unreachable_endpoint().unwrap();
        assert!(LocalAws::new(&nowhere).create_topic("x").await.is_err());

        let env = moto.aws_env();
        assert!(env.contains(&("AWS_ENDPOINT_URL".to_owned(), moto.endpoint().to_owned())));
        moto.stop().await;
    }

    #[test]
    fn failing_endpoint_rejects_success_statuses() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(rt.block_on(spawn_failing_endpoint(200)).is_err());
    }
}

//! AWS adapters for the ports: Secrets Manager behind [`SecretSource`](crate::secret::SecretSource),
//! SNS behind [`Notifier`](crate::alert::Notifier).

pub mod secrets_manager;
pub mod sns;

use aws_config::BehaviorVersion;
use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::meta::region::ProvideRegion;
use aws_sdk_sns::config::ProvideCredentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The shared SDK configuration, loaded once per cold start. `AWS_REGION` and, for local
/// emulators, `AWS_ENDPOINT_URL` come from the environment as usual.
///
/// Every SDK client built from it (Secrets Manager, SNS, CloudWatch, and STS when the credentials
/// chain needs it) sends through [`SdkHttpClient`]: reqwest over the same rustls setup as the
/// checks, with Mozilla's roots compiled in. The SDK's default client would read and parse the
/// system trust store as each client is built, which was half of every function's init.
///
/// Credentials and region: Lambda puts the execution role's credentials and the region in the
/// environment, the first place each of the SDK's default chains looks. Building the rest of
/// those chains (profile files, the web identity provider with its own STS client, ECS, two IMDS
/// clients) was a fifth of a check's init, for providers a Lambda never reaches. So what the
/// environment holds, the environment alone provides; what it lacks (SnapStart's container
/// credentials, the CLI on a laptop with a profile or SSO) the default chain finds as before.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(SdkHttpClient::shared());
    if let Some(region) = EnvironmentVariableRegionProvider::new().region().await {
        loader = loader.region(region);
    }
    let credentials = EnvironmentVariableCredentialsProvider::new();
    if credentials.provide_credentials().await.is_ok() {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The SDK configuration for a local endpoint (moto, or a fake of one AWS API), with fixed test
/// credentials, sending through the same transport as [`sdk_config`]: what the adapters' tests use.
pub async fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new("AKID", "SECRET", None, None, "test"))
        .http_client(SdkHttpClient::shared())
        .load()
        .await
}

/// The AWS SDK's HTTP client port, served by reqwest. One reqwest client per distinct pair of
/// SDK timeouts, built when the SDK first asks for it (the SDK clients differ only in those).
#[derive(Debug)]
pub struct SdkHttpClient {
    /// Mozilla's roots only: AWS endpoints are never behind the target's private CA.
    tls: Result<rustls::ClientConfig, String>,
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

/// Connect and read timeouts, as the SDK asks for them.
type Timeouts = (Option<Duration>, Option<Duration>);

impl SdkHttpClient {
    pub fn shared() -> SharedHttpClient {
        let tls = crate::http::tls::client_config(&[]).map_err(|e| format!("cannot set up TLS for AWS: {e}"));
        SharedHttpClient::new(SdkHttpClient { tls, connectors: Mutex::new(HashMap::new()) })
    }

    fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let tls = match &self.tls {
            Ok(tls) => tls.clone(),
            Err(reason) => return SharedHttpConnector::new(Unusable(reason.clone())),
        };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // The SDK follows no redirect itself; neither does its transport.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = settings.connect_timeout() {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = settings.read_timeout() {
            builder = builder.read_timeout(timeout);
        }
        match builder.build() {
            Ok(client) => SharedHttpConnector::new(ReqwestConnector(client)),
            Err(e) => SharedHttpConnector::new(Unusable(format!(
                "cannot build the AWS HTTP client: {}",
                crate::http::error_chain(&e)
            ))),
        }
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // A poisoned lock only means another thread panicked mid-insert; a fresh connector is
        // still correct, just not cached.
        let Ok(mut connectors) = self.connectors.lock() else {
            return self.connector(settings);
        };
        connectors.entry(key).or_insert_with(|| self.connector(settings)).clone()
    }
}

#[derive(Debug)]
struct ReqwestConnector(reqwest::Client);

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, reqwest::Body::wrap(body));
            let request = reqwest::Request::try_from(request).map_err(|e| ConnectorError::user(e.into()))?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let (parts, body) = http::Response::from(response).into_parts();
            let response = http::Response::from_parts(parts, SdkBody::from_body_1_x(body));
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Classified as the SDK's own client does, so its retry strategy treats a timeout or a dropped
/// connection as transient.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

/// Stands in for a client that could not be built, so the reason reaches the caller as the SDK
/// error of the first call instead of a panic at cold start.
#[derive(Debug)]
struct Unusable(String);

impl HttpConnector for Unusable {
    fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
        let reason = self.0.clone();
        HttpConnectorFuture::new(async move { Err(ConnectorError::other(reason.into(), None)) })
    }
}

/// An SDK error on one line: the service's code and message when it answered, the transport
/// failure otherwise.
pub fn describe<E, R>(error: &aws_sdk_sns::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("UnknownError"), service.message().unwrap_or("no message"))
        }
        None => crate::text::one_line(&aws_sdk_sns::error::DisplayErrorContext(error).to_string()),
    }
}

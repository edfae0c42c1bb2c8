//! AWS adapters for the ports: Secrets Manager behind [`SecretSource`](crate::secret::SecretSource),
//! SNS behind [`Notifier`](crate::alert::Notifier).

pub mod secrets_manager;
pub mod sns;

use aws_config::BehaviorVersion;

/// The shared SDK configuration, loaded once per cold start. `AWS_REGION` and, for local
/// emulators, `AWS_ENDPOINT_URL` come from the environment as usual.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
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

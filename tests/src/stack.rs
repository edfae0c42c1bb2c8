//! The whole local stack in one value: the demo shop, moto with the credentials secret and the
//! alert topic (an SQS queue subscribed to read alerts back), and the real check binaries under
//! the Runtime API emulator. `make demo` and the end-to-end tests both run on this, so what we
//! demo is what we test.

use crate::lambda_emulator::{EmulatorError, Invocation, LambdaProcess, workspace_binary};
use crate::local_aws::{LocalAws, LocalAwsError, Moto, ReceivedMessage};
use crate::shop::{self, RunningShop, ShopConfig};
use serde_json::{Value, json};
use std::time::Duration;
use synthetic_checks::Check;

pub const SECRET_NAME: &str = "synthetic/demo-shop/account";
pub const TOPIC_NAME: &str = "synthetic-alerts";
pub const ENV_NAME: &str = "local";
/// A test-mode card token: the demo shop refuses anything else, as a real sandbox would.
pub const PAYMENT_TOKEN: &str = "tok_test_visa_4242";
/// Every test invocation is scanned for secrets, so it logs everything, dependencies' trace
/// output (hyper-util, rustls, the AWS SDK's request and response handling) included: a secret
/// that only leaks at trace still leaks.
///
/// `lambda_runtime` logs every raw event at trace; `synthetic_checks::logging` caps that target in
/// every function, and running the scan at plain `trace` is what proves the cap holds.
pub const SCANNED_LOG_LEVEL: &str = "trace";
/// Generous, so a cold debug build on a loaded 2-core machine still finishes.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("demo shop: {0}")]
    Shop(#[from] std::io::Error),
    #[error(transparent)]
    Aws(#[from] LocalAwsError),
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error("{0}")]
    MissingBinary(String),
    #[error("{0}")]
    Setup(String),
}

pub struct LocalStack {
    pub shop: RunningShop,
    pub moto: Moto,
    pub aws: LocalAws,
    pub shop_config: ShopConfig,
    pub secret_arn: String,
    pub topic_arn: String,
    pub queue_url: String,
}

impl LocalStack {
    pub async fn start() -> Result<Self, StackError> {
        let shop_config = ShopConfig::default();
        let shop = shop::spawn(shop_config.clone()).await?;
        let moto = Moto::start().await?;
        let aws = moto.local_aws();
        let secret_arn = aws.create_secret(SECRET_NAME, &account_json(&shop_config.password)).await?;
        let topic_arn = aws.create_topic(TOPIC_NAME).await?;
        let queue_url = aws.subscribe_queue(&topic_arn, "alerts-inbox").await?;
        Ok(LocalStack { shop, moto, aws, shop_config, secret_arn, topic_arn, queue_url })
    }

    /// What `infra/template.yaml` gives a check function, pointed at the local stack.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.aws_env();
        env.extend(
            [
                ("TARGET_BASE_URL", self.shop.base_url()),
                ("CHECK_ENV", ENV_NAME),
                ("ALERT_TOPIC_ARN", &self.topic_arn),
                ("CREDENTIALS_SECRET_ID", &self.secret_arn),
                ("RUST_LOG", SCANNED_LOG_LEVEL),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }

    /// Starts the function of a built-in check as a cold Lambda sandbox. `extra` overrides the default env.
    pub async fn spawn_check(&self, check: Check, extra: &[(&str, &str)]) -> Result<LambdaProcess, StackError> {
        self.spawn_check_named(check.name(), extra).await
    }

    /// Starts the function of the check `name` of the repository's checks folder as the template
    /// deploys it: the one `check` binary, function `check-<name>`, with `CHECK_NAME`, the folder
    /// and the journey's digest from the plan. `extra` overrides the default env.
    pub async fn spawn_check_named(&self, name: &str, extra: &[(&str, &str)]) -> Result<LambdaProcess, StackError> {
        let selected = check_selection_env(name)?;
        let mut env: Vec<(&str, &str)> = selected.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        self.spawn_binary("check", &format!("check-{name}"), &env).await
    }

    /// Starts any function binary of the workspace (a check added with its own journey file,
    /// say) as a cold Lambda sandbox, with the checks' environment plus `extra`.
    pub async fn spawn_function(&self, binary: &str, extra: &[(&str, &str)]) -> Result<LambdaProcess, StackError> {
        self.spawn_binary(binary, binary, extra).await
    }

    async fn spawn_binary(
        &self,
        binary: &str,
        function_name: &str,
        extra: &[(&str, &str)],
    ) -> Result<LambdaProcess, StackError> {
        let path = workspace_binary(binary).map_err(StackError::MissingBinary)?;
        let mut env = self.function_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Ok(LambdaProcess::spawn(&path, function_name, &env).await?)
    }

    /// Alerts published since the last drain.
    pub async fn alerts(&self) -> Result<Vec<ReceivedMessage>, StackError> {
        Ok(self.aws.drain(&self.queue_url).await?)
    }

    /// Rotates the synthetic account's password in both places, as a rotation Lambda would.
    pub async fn rotate_password(&self, password: &str) -> Result<(), StackError> {
        self.shop.handle().rotate_password(password);
        self.aws.put_secret_value(&self.secret_arn, &account_json(password)).await?;
        Ok(())
    }

    /// Every value of the synthetic account: none may ever show up in a log, result or alert.
    pub fn secret_values(&self) -> Vec<String> {
        vec![self.shop_config.email.clone(), self.shop_config.password.clone(), PAYMENT_TOKEN.to_string()]
    }

    pub async fn stop(self) {
        let _ = self.shop.stop().await;
        self.moto.stop().await;
    }
}

/// The repository's checks folder, the one `make build` packages.
pub fn checks_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../checks")
}

/// What selects check `name` for the one `check` binary, as its deploy passes it: `CHECK_NAME`,
/// the folder (`CHECKS_DIR`, here the repository's) and the digest the plan gives its journey.
pub fn check_selection_env(name: &str) -> Result<Vec<(String, String)>, StackError> {
    let dir = checks_dir();
    let catalog = synthetic_checks::catalog::Catalog::load(&dir).map_err(|p| StackError::Setup(p.to_string()))?;
    let check =
        catalog.check(name).ok_or_else(|| StackError::Setup(format!("no check {name} in {}", dir.display())))?;
    Ok([
        ("CHECK_NAME", name.to_string()),
        ("CHECKS_DIR", dir.display().to_string()),
        ("CHECK_JOURNEY_SHA256", check.journey_sha256.clone()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec())
}

pub fn account_json(password: &str) -> String {
    json!({"email": ShopConfig::default().email, "password": password, "payment_token": PAYMENT_TOKEN}).to_string()
}

/// The event EventBridge Scheduler sends a target on each tick.
pub fn scheduled_event(check: Check) -> Value {
    scheduled_event_named(check.name())
}

/// The scheduled event of the rule that runs the check named `name`.
pub fn scheduled_event_named(name: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-21T10:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/synthetic-{name}")],
        "detail": {}
    })
}

/// One scheduled tick of a warm or cold function.
pub async fn invoke_scheduled(process: &LambdaProcess, check: Check) -> Result<Invocation, StackError> {
    Ok(process.invoke(scheduled_event(check), INVOKE_TIMEOUT).await?)
}

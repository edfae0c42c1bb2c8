//! Configuration, read from the environment once per cold start.
//!
//! Every setting has a documented default except the four that name the deployment
//! (`TARGET_BASE_URL`, `CHECK_ENV`, `ALERT_TOPIC_ARN`, `CREDENTIALS_SECRET_ID`). A missing or
//! invalid variable is a `misconfigured` error that names it. Reading goes through a lookup
//! function so tests never touch the process environment.

use crate::assertion::ExpectedStatus;
use crate::checks::Check;
use crate::error::CheckError;
use crate::http::HttpSettings;
use crate::journey::{Budget, RetryPolicy};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// Path, expected status and latency budget of one step, overridable as `<STEP>_PATH`,
/// `<STEP>_EXPECT_STATUS`, `<STEP>_DEGRADED_AFTER_MS` and `<STEP>_FAIL_AFTER_MS`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepConfig {
    pub path: String,
    pub expect_status: ExpectedStatus,
    pub budget: Budget,
}

/// The journeys' knobs, so a team can point the checks at its own API without changing code.
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyConfig {
    pub health: StepConfig,
    pub health_status_pointer: String,
    pub health_ok_values: Vec<String>,
    pub login: StepConfig,
    pub token_pointer: String,
    pub products: StepConfig,
    pub products_pointer: String,
    pub products_min_items: usize,
    pub payment_create: StepConfig,
    /// `{id}` is replaced by the created payment's id.
    pub payment_get: StepConfig,
    pub payment_refund: StepConfig,
    pub payment_amount: u64,
    pub payment_currency: String,
    pub payment_id_pointer: String,
    pub payment_status_pointer: String,
    pub payment_failed_statuses: Vec<String>,
}

/// Where the function runs, for links in alerts. Empty outside Lambda.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    pub function_name: Option<String>,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
    pub region: Option<String>,
}

/// Whether `ALERT_TOPIC_ARN` must be set. The Lambdas always publish, so they require it; the
/// `synthetic` CLI publishes only when asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertTopic {
    Required,
    Optional,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    pub check: Check,
    pub env_name: String,
    pub target: Url,
    /// Always set when read with [`AlertTopic::Required`], as the Lambdas do.
    pub alert_topic_arn: Option<String>,
    pub credentials_secret_id: Option<String>,
    pub metrics_namespace: String,
    pub synthetic_header: String,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
    pub alert_retry: RetryPolicy,
    pub secret_ttl: Duration,
    /// Hosts a one-off `target_base_url` in the event may point at. The synthetic account's
    /// credentials go wherever the target is, so an override cannot be an arbitrary host.
    pub override_allowed_hosts: Vec<String>,
    pub journeys: JourneyConfig,
    pub origin: Origin,
}

impl MonitorConfig {
    pub fn from_env(check: Check) -> Result<Self, CheckError> {
        Self::from_lookup(check, &|name| std::env::var(name).ok())
    }

    pub fn from_lookup(check: Check, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, CheckError> {
        Self::from_lookup_with(check, lookup, AlertTopic::Required)
    }

    pub fn from_lookup_with(
        check: Check,
        lookup: &dyn Fn(&str) -> Option<String>,
        alert_topic: AlertTopic,
    ) -> Result<Self, CheckError> {
        let env = Env(lookup);
        let target = parse_target("TARGET_BASE_URL", &env.required("TARGET_BASE_URL")?)?;
        let env_name = env.required("CHECK_ENV")?;
        if !env_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(misconfigured("CHECK_ENV", "letters, digits, '-', '_' or '.'", &env_name));
        }
        let alert_topic_arn = match alert_topic {
            AlertTopic::Required => Some(env.required("ALERT_TOPIC_ARN")?),
            AlertTopic::Optional => env.optional("ALERT_TOPIC_ARN"),
        };
        if let Some(arn) = alert_topic_arn.as_deref().filter(|arn| !arn.starts_with("arn:")) {
            return Err(misconfigured("ALERT_TOPIC_ARN", "an SNS topic ARN", arn));
        }
        let credentials_secret_id = match check.needs_credentials() {
            true => Some(env.required("CREDENTIALS_SECRET_ID")?),
            false => env.optional("CREDENTIALS_SECRET_ID"),
        };
        let override_allowed_hosts = match env.optional("TARGET_OVERRIDE_ALLOWED_HOSTS") {
            Some(list) => list.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect(),
            None => target.host_str().map(|h| vec![h.to_ascii_lowercase()]).unwrap_or_default(),
        };
        let retry = RetryPolicy {
            attempts: env.bounded("RETRY_ATTEMPTS", 2, 1, 5)?,
            backoff: env.millis("RETRY_BACKOFF_MS", 2_000)?,
        };
        Ok(MonitorConfig {
            check,
            env_name,
            target,
            alert_topic_arn,
            credentials_secret_id,
            metrics_namespace: env.optional("METRICS_NAMESPACE").unwrap_or_else(|| "SyntheticMonitoring".into()),
            synthetic_header: env.optional("SYNTHETIC_HEADER").unwrap_or_else(|| "X-Synthetic-Check".into()),
            http: HttpSettings {
                connect_timeout: env.millis("HTTP_CONNECT_TIMEOUT_MS", 3_000)?,
                max_body_bytes: env.bounded("MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?,
                max_redirects: env.bounded("MAX_REDIRECTS", 5, 0, 20)?,
            },
            retry,
            alert_retry: RetryPolicy {
                attempts: env.bounded("ALERT_PUBLISH_ATTEMPTS", 4, 1, 10)?,
                backoff: env.millis("ALERT_PUBLISH_BACKOFF_MS", 200)?,
            },
            secret_ttl: Duration::from_secs(env.parse("SECRET_TTL_SECS", 300u64, "a number of seconds")?),
            override_allowed_hosts,
            journeys: JourneyConfig::from_env(&env)?,
            origin: Origin {
                function_name: env.optional("AWS_LAMBDA_FUNCTION_NAME"),
                log_group: env.optional("AWS_LAMBDA_LOG_GROUP_NAME"),
                log_stream: env.optional("AWS_LAMBDA_LOG_STREAM_NAME"),
                region: env.optional("AWS_REGION"),
            },
        })
    }

    /// The target for one run: the configured one, or an allowed override from the event.
    pub fn target_for(&self, override_url: Option<&str>) -> Result<Url, CheckError> {
        let Some(raw) = override_url else {
            return Ok(self.target.clone());
        };
        let url = parse_target("target_base_url", raw).map_err(|e| CheckError::InvalidEvent(e.to_string()))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !self.override_allowed_hosts.contains(&host) {
            return Err(CheckError::InvalidEvent(format!(
                "target_base_url host {host:?} is not in TARGET_OVERRIDE_ALLOWED_HOSTS ({})",
                self.override_allowed_hosts.join(", ")
            )));
        }
        Ok(url)
    }
}

impl JourneyConfig {
    fn from_env(env: &Env) -> Result<Self, CheckError> {
        let ms = Duration::from_millis;
        let step = |prefix: &str, path: &str, status: &str, degraded: u64, fail: u64| {
            env.step(prefix, path, status, ms(degraded), ms(fail))
        };
        Ok(JourneyConfig {
            health: step("HEALTH", "/health", "200", 1_000, 5_000)?,
            health_status_pointer: env.optional("HEALTH_STATUS_POINTER").unwrap_or_else(|| "/status".into()),
            health_ok_values: env.list("HEALTH_OK_VALUES", "ok,healthy"),
            login: step("LOGIN", "/api/auth/token", "200", 2_000, 10_000)?,
            token_pointer: env.optional("LOGIN_TOKEN_POINTER").unwrap_or_else(|| "/access_token".into()),
            products: step("PRODUCTS", "/api/products", "200", 2_000, 10_000)?,
            products_pointer: env.optional("PRODUCTS_ITEMS_POINTER").unwrap_or_else(|| "/data".into()),
            products_min_items: env.bounded("PRODUCTS_MIN_ITEMS", 1, 1, 1_000_000)?,
            payment_create: step("PAYMENT_CREATE", "/api/payments", "200,201", 3_000, 15_000)?,
            payment_get: step("PAYMENT_GET", "/api/payments/{id}", "200", 2_000, 10_000)?,
            payment_refund: step("PAYMENT_REFUND", "/api/payments/{id}/refund", "200-299", 3_000, 15_000)?,
            payment_amount: env.bounded("PAYMENT_AMOUNT", 100, 1, 1_000_000)?,
            payment_currency: env.optional("PAYMENT_CURRENCY").unwrap_or_else(|| "USD".into()),
            payment_id_pointer: env.optional("PAYMENT_ID_POINTER").unwrap_or_else(|| "/id".into()),
            payment_status_pointer: env.optional("PAYMENT_STATUS_POINTER").unwrap_or_else(|| "/status".into()),
            payment_failed_statuses: env.list("PAYMENT_FAILED_STATUSES", "failed,declined,canceled"),
        })
    }
}

fn misconfigured(name: &str, expected: &str, got: &str) -> CheckError {
    CheckError::Misconfigured(format!("{name} must be {expected}, got {got:?}"))
}

/// An absolute http(s) URL without credentials in it; errors name the variable.
pub fn parse_target(name: &str, raw: &str) -> Result<Url, CheckError> {
    let url =
        Url::parse(raw.trim()).map_err(|e| misconfigured(name, &format!("an absolute http(s) URL ({e})"), raw))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(misconfigured(name, "an absolute http(s) URL", raw));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the value: it holds a credential.
        return Err(CheckError::Misconfigured(format!("{name} must not carry credentials; put them in the secret")));
    }
    Ok(url)
}

/// Reads variables through a lookup function; every error names the variable.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, CheckError> {
        self.optional(name).ok_or_else(|| CheckError::Misconfigured(format!("{name} is not set")))
    }

    fn parse<T: FromStr>(&self, name: &str, default: T, expected: &str) -> Result<T, CheckError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| misconfigured(name, expected, &raw)),
        }
    }

    pub fn bounded<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, CheckError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let expected = format!("a whole number from {min} to {max}");
        let value = self.parse(name, default, &expected)?;
        if value < min || value > max {
            return Err(misconfigured(name, &expected, &value.to_string()));
        }
        Ok(value)
    }

    pub fn millis(&self, name: &str, default: u64) -> Result<Duration, CheckError> {
        self.bounded(name, default, 0, 900_000).map(Duration::from_millis)
    }

    fn list(&self, name: &str, default: &str) -> Vec<String> {
        let raw = self.optional(name).unwrap_or_else(|| default.to_string());
        raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }

    fn step(
        &self,
        prefix: &str,
        path: &str,
        status: &str,
        degraded: Duration,
        fail: Duration,
    ) -> Result<StepConfig, CheckError> {
        let status_var = format!("{prefix}_EXPECT_STATUS");
        let status_text = self.optional(&status_var).unwrap_or_else(|| status.to_string());
        let expect_status = ExpectedStatus::parse(&status_text).map_err(|e| {
            CheckError::Misconfigured(format!("{status_var} must be a status, a list or a range like 200-299: {e}"))
        })?;
        let degraded_var = format!("{prefix}_DEGRADED_AFTER_MS");
        let fail_var = format!("{prefix}_FAIL_AFTER_MS");
        let budget = Budget {
            degraded_after: self.millis(&degraded_var, degraded.as_millis() as u64)?,
            fail_after: self.millis(&fail_var, fail.as_millis() as u64)?,
        };
        if budget.fail_after.is_zero() || budget.degraded_after > budget.fail_after {
            return Err(CheckError::Misconfigured(format!(
                "{degraded_var} ({} ms) must not exceed {fail_var} ({} ms), which must be above 0",
                budget.degraded_after.as_millis(),
                budget.fail_after.as_millis()
            )));
        }
        Ok(StepConfig {
            path: self.optional(&format!("{prefix}_PATH")).unwrap_or_else(|| path.to_string()),
            expect_status,
            budget,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TARGET_BASE_URL", "https://shop.example.com"),
            ("CHECK_ENV", "prod"),
            ("ALERT_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:alerts"),
            ("CREDENTIALS_SECRET_ID", "synthetic/account"),
        ])
    }

    fn load(check: Check, vars: &HashMap<&str, &str>) -> Result<MonitorConfig, CheckError> {
        MonitorConfig::from_lookup(check, &|k| vars.get(k).map(|v| v.to_string()))
    }

    fn error_of(check: Check, vars: &HashMap<&str, &str>) -> String {
        load(check, vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_everything_but_the_deployment() {
        let config = load(Check::Payment, &base()).unwrap();
        assert_eq!(config.metrics_namespace, "SyntheticMonitoring");
        assert_eq!(config.synthetic_header, "X-Synthetic-Check");
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.http.max_body_bytes, 1024 * 1024);
        assert_eq!(config.journeys.payment_get.path, "/api/payments/{id}");
        assert_eq!(config.journeys.payment_create.expect_status, ExpectedStatus::Set(vec![200, 201]));
        assert_eq!(config.override_allowed_hosts, vec!["shop.example.com"]);
    }

    #[test]
    fn each_missing_variable_is_named() {
        for name in ["TARGET_BASE_URL", "CHECK_ENV", "ALERT_TOPIC_ARN", "CREDENTIALS_SECRET_ID"] {
            let mut vars = base();
            vars.remove(name);
            assert_eq!(error_of(Check::Auth, &vars), format!("misconfigured: {name} is not set"));
        }
    }

    #[test]
    fn the_alert_topic_is_optional_only_when_asked() {
        let mut vars = base();
        vars.remove("ALERT_TOPIC_ARN");
        let optional = |vars: &HashMap<&str, &str>| {
            MonitorConfig::from_lookup_with(Check::Auth, &|k| vars.get(k).map(|v| v.to_string()), AlertTopic::Optional)
        };
        assert_eq!(optional(&vars).unwrap().alert_topic_arn, None);
        vars.insert("ALERT_TOPIC_ARN", "alerts");
        assert!(optional(&vars).unwrap_err().to_string().contains("ALERT_TOPIC_ARN must be an SNS topic ARN"));
        assert_eq!(load(Check::Auth, &base()).unwrap().alert_topic_arn.as_deref(), Some(base()["ALERT_TOPIC_ARN"]));
    }

    #[test]
    fn health_needs_no_secret() {
        let mut vars = base();
        vars.remove("CREDENTIALS_SECRET_ID");
        assert!(load(Check::Health, &vars).unwrap().credentials_secret_id.is_none());
    }

    #[test]
    fn invalid_values_are_named_with_what_was_expected() {
        let cases = [
            ("TARGET_BASE_URL", "shop.example.com", "TARGET_BASE_URL must be an absolute http(s) URL"),
            ("TARGET_BASE_URL", "ftp://shop", "TARGET_BASE_URL must be an absolute http(s) URL"),
            ("CHECK_ENV", "prod west", "CHECK_ENV must be letters"),
            ("ALERT_TOPIC_ARN", "alerts", "ALERT_TOPIC_ARN must be an SNS topic ARN"),
            ("RETRY_ATTEMPTS", "9", "RETRY_ATTEMPTS must be a whole number from 1 to 5"),
            ("RETRY_BACKOFF_MS", "soon", "RETRY_BACKOFF_MS must be a whole number"),
            ("PRODUCTS_EXPECT_STATUS", "ok", "PRODUCTS_EXPECT_STATUS must be a status"),
            (
                "HEALTH_DEGRADED_AFTER_MS",
                "9000",
                "HEALTH_DEGRADED_AFTER_MS (9000 ms) must not exceed HEALTH_FAIL_AFTER_MS",
            ),
        ];
        for (name, value, expected) in cases {
            let mut vars = base();
            vars.insert(name, value);
            let error = error_of(Check::Payment, &vars);
            assert!(error.contains(expected), "{name}={value}: {error}");
        }
    }

    #[test]
    fn credentials_in_the_target_url_are_refused_without_echoing_them() {
        let mut vars = base();
        vars.insert("TARGET_BASE_URL", "https://user:hunter2@shop.example.com");
        let error = error_of(Check::Health, &vars);
        assert!(error.contains("TARGET_BASE_URL must not carry credentials"));
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn step_settings_are_overridable() {
        let mut vars = base();
        vars.insert("PRODUCTS_PATH", "/v2/catalog");
        vars.insert("PRODUCTS_EXPECT_STATUS", "200-204");
        vars.insert("PRODUCTS_DEGRADED_AFTER_MS", "50");
        vars.insert("PRODUCTS_FAIL_AFTER_MS", "100");
        let products = load(Check::Products, &vars).unwrap().journeys.products;
        assert_eq!(products.path, "/v2/catalog");
        assert_eq!(products.expect_status, ExpectedStatus::Range(200, 204));
        assert_eq!(products.budget.fail_after, Duration::from_millis(100));
    }

    #[test]
    fn overrides_are_limited_to_allowed_hosts() {
        let mut vars = base();
        vars.insert("TARGET_OVERRIDE_ALLOWED_HOSTS", "shop.example.com, canary.example.com");
        let config = load(Check::Health, &vars).unwrap();
        assert_eq!(config.target_for(None).unwrap().as_str(), "https://shop.example.com/");
        assert_eq!(
            config.target_for(Some("https://canary.example.com/v2")).unwrap().as_str(),
            "https://canary.example.com/v2"
        );
        let refused = config.target_for(Some("https://attacker.example.net")).unwrap_err();
        assert_eq!(refused.error_type(), "InvalidEvent");
        assert!(refused.to_string().contains("attacker.example.net"));
        assert_eq!(config.target_for(Some("not a url")).unwrap_err().error_type(), "InvalidEvent");
    }
}

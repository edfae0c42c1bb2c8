//! Configuration of one deployment, read from the environment once per cold start.
//!
//! What a check does is its journey file; what differs between deployments of it is here.
//! Every setting has a documented default except the four that name the deployment
//! (`TARGET_BASE_URL`, `CHECK_ENV`, `ALERT_TOPIC_ARN`, and `CREDENTIALS_SECRET_ID` when the
//! journey uses the secret). A missing or invalid variable is a `misconfigured` error that names
//! it. Reading goes through a lookup function so tests never touch the process environment.

use crate::error::CheckError;
use crate::http::tls::CaBundle;
use crate::http::{HttpSettings, RUN_ID_HEADER, is_header_name};
use crate::journey::RetryPolicy;
use crate::journey::file::JourneyDef;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

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

/// A step's retries when `RETRY_ATTEMPTS` and `RETRY_BACKOFF_MS` are not set, as deployed.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy { attempts: 2, backoff: Duration::from_secs(2) };
/// The alert's publish attempts when `ALERT_PUBLISH_ATTEMPTS` and `ALERT_PUBLISH_BACKOFF_MS` are
/// not set, as deployed.
pub const DEFAULT_ALERT_RETRY: RetryPolicy = RetryPolicy { attempts: 4, backoff: Duration::from_millis(200) };

#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// The journey, with this deployment's budget overrides applied.
    pub journey: Arc<JourneyDef>,
    pub env_name: String,
    pub target: Url,
    /// Always set when read with [`AlertTopic::Required`], as the Lambdas do.
    pub alert_topic_arn: Option<String>,
    pub credentials_secret_id: Option<String>,
    pub metrics_namespace: String,
    pub synthetic_header: String,
    pub http: HttpSettings,
    pub max_redirects: usize,
    pub retry: RetryPolicy,
    pub alert_retry: RetryPolicy,
    pub secret_ttl: Duration,
    /// Below this many whole days left on the target's certificate, a run is `degraded` (`tls`).
    pub cert_min_days: u32,
    /// Hosts a one-off `target_base_url` in the event may point at, with the target's own scheme
    /// and port. The synthetic account's credentials go wherever the target is, so an override
    /// cannot be an arbitrary host, nor take them off TLS or to another service on the host.
    pub override_allowed_hosts: Vec<String>,
    /// Origins (scheme, host, port) an override may point at as they are, whatever the target's.
    pub override_allowed_origins: Vec<url::Origin>,
    pub origin: Origin,
}

impl MonitorConfig {
    pub fn from_env(journey: JourneyDef) -> Result<Self, CheckError> {
        Self::from_lookup(journey, &|name| std::env::var(name).ok())
    }

    pub fn from_lookup(journey: JourneyDef, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, CheckError> {
        Self::from_lookup_with(journey, lookup, AlertTopic::Required)
    }

    pub fn from_lookup_with(
        mut journey: JourneyDef,
        lookup: &dyn Fn(&str) -> Option<String>,
        alert_topic: AlertTopic,
    ) -> Result<Self, CheckError> {
        let env = Env(lookup);
        refuse_retired(&env)?;
        apply_budget_overrides(&env, &mut journey)?;
        let target = parse_target("TARGET_BASE_URL", &env.required("TARGET_BASE_URL")?)?;
        let env_name = env.required("CHECK_ENV")?;
        if !env_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(misconfigured("CHECK_ENV", "letters, digits, '-', '_' or '.'", &env_name));
        }
        let alert_topic_arn = match alert_topic {
            AlertTopic::Required => Some(env.required("ALERT_TOPIC_ARN")?),
            AlertTopic::Optional => env.optional("ALERT_TOPIC_ARN"),
        };
        if let Some(arn) = alert_topic_arn.as_deref() {
            crate::aws::sns::topic_region(arn).map_err(|problem| {
                CheckError::Misconfigured(format!("ALERT_TOPIC_ARN must be an SNS topic ARN, got {arn:?}: {problem}"))
            })?;
        }
        let credentials_secret_id = match journey.uses_secrets() {
            true => Some(env.required("CREDENTIALS_SECRET_ID")?),
            false => env.optional("CREDENTIALS_SECRET_ID"),
        };
        let listed_hosts: Option<Vec<String>> = env
            .optional("TARGET_OVERRIDE_ALLOWED_HOSTS")
            .map(|list| list.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect());
        let override_allowed_origins = match env.optional("TARGET_OVERRIDE_ALLOWED_ORIGINS") {
            Some(list) => allowed_origins("TARGET_OVERRIDE_ALLOWED_ORIGINS", &list)?,
            None => Vec::new(),
        };
        apply_target_overrides(&env, &mut journey, listed_hosts.as_deref(), &override_allowed_origins)?;
        let override_allowed_hosts = match listed_hosts {
            Some(hosts) => hosts,
            None => target.host_str().map(|h| vec![h.to_ascii_lowercase()]).unwrap_or_default(),
        };
        let synthetic_header = env.optional("SYNTHETIC_HEADER").unwrap_or_else(|| "X-Synthetic-Check".into());
        if !is_header_name(&synthetic_header) || SET_OTHERWISE.iter().any(|h| h.eq_ignore_ascii_case(&synthetic_header))
        {
            return Err(misconfigured(
                "SYNTHETIC_HEADER",
                "a header name (letters, digits and !#$%&'*+-.^_`|~) that the monitor does not otherwise set",
                &synthetic_header,
            ));
        }
        let retry = RetryPolicy {
            attempts: env.bounded("RETRY_ATTEMPTS", DEFAULT_RETRY.attempts, 1, 5)?,
            backoff: env.millis("RETRY_BACKOFF_MS", DEFAULT_RETRY.backoff.as_millis() as u64)?,
        };
        Ok(MonitorConfig {
            journey: Arc::new(journey),
            env_name,
            target,
            alert_topic_arn,
            credentials_secret_id,
            metrics_namespace: env.optional("METRICS_NAMESPACE").unwrap_or_else(|| "SyntheticMonitoring".into()),
            synthetic_header,
            http: HttpSettings {
                connect_timeout: env.millis("HTTP_CONNECT_TIMEOUT_MS", 3_000)?,
                max_body_bytes: env.bounded("MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?,
                ca_bundle: match env.optional("TARGET_CA_BUNDLE") {
                    Some(path) => Some(CaBundle::load("TARGET_CA_BUNDLE", &path).map_err(CheckError::Misconfigured)?),
                    None => None,
                },
            },
            max_redirects: env.bounded("MAX_REDIRECTS", 5, 0, 20)?,
            retry,
            alert_retry: RetryPolicy {
                attempts: env.bounded("ALERT_PUBLISH_ATTEMPTS", DEFAULT_ALERT_RETRY.attempts, 1, 10)?,
                backoff: env.millis("ALERT_PUBLISH_BACKOFF_MS", DEFAULT_ALERT_RETRY.backoff.as_millis() as u64)?,
            },
            secret_ttl: Duration::from_secs(env.parse("SECRET_TTL_SECS", 300u64, "a number of seconds")?),
            cert_min_days: env.bounded("CERT_MIN_DAYS", 14, 0, 365)?,
            override_allowed_hosts,
            override_allowed_origins,
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
        let moved = Moved { name: "target_base_url", from: &self.target, from_name: "TARGET_BASE_URL" };
        moved
            .allowed(url, &self.override_allowed_hosts, &self.override_allowed_origins)
            .map_err(CheckError::InvalidEvent)
    }
}

/// A base URL moved from where it was declared (the main target by the event, a named target
/// by its deployment variable). The synthetic account's credentials go wherever a target is,
/// so a move is allowed to a listed origin as it is, or to a listed host with the declared
/// scheme and port only.
struct Moved<'a> {
    /// The variable or event field that moves it.
    name: &'a str,
    from: &'a Url,
    /// Where `from` was declared.
    from_name: &'a str,
}

impl Moved<'_> {
    fn allowed(&self, url: Url, hosts: &[String], origins: &[url::Origin]) -> Result<Url, String> {
        if origins.contains(&url.origin()) {
            return Ok(url);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !hosts.contains(&host) {
            return Err(format!(
                "{} host {host:?} is not in TARGET_OVERRIDE_ALLOWED_HOSTS ({}), nor its origin in \
                 TARGET_OVERRIDE_ALLOWED_ORIGINS",
                self.name,
                hosts.join(", ")
            ));
        }
        // An allowed host is allowed with the declared scheme and port only: `http://` would send
        // the password in cleartext, another port may be another service.
        if url.scheme() != self.from.scheme() || url.port_or_known_default() != self.from.port_or_known_default() {
            return Err(format!(
                "{} {} must keep the scheme and port of {} ({}://…:{}); list another origin in \
                 TARGET_OVERRIDE_ALLOWED_ORIGINS to allow it",
                self.name,
                url.origin().ascii_serialization(),
                self.from_name,
                self.from.scheme(),
                self.from.port_or_known_default().unwrap_or_default()
            ));
        }
        Ok(url)
    }
}

/// `TARGET_<NAME>_URL` points the journey's named target `name` elsewhere for one deployment
/// (a staging identity provider), under the rules of any override: a listed origin, or a host
/// listed in TARGET_OVERRIDE_ALLOWED_HOSTS (by default the declared one) with the declared scheme
/// and port. A journey never talks to an origin neither its file nor its deployment allows.
fn apply_target_overrides(
    env: &Env,
    journey: &mut JourneyDef,
    hosts: Option<&[String]>,
    origins: &[url::Origin],
) -> Result<(), CheckError> {
    let declared: Vec<(String, Url)> = journey.targets().map(|(name, url)| (name.to_string(), url.clone())).collect();
    for (name, from) in declared {
        let variable = target_variable(&name);
        let Some(raw) = env.optional(&variable) else {
            continue;
        };
        let url = parse_target(&variable, &raw)?;
        let own_host = from.host_str().map(|h| vec![h.to_ascii_lowercase()]).unwrap_or_default();
        let from_name = format!("targets.{name} in the journey");
        let moved = Moved { name: &variable, from: &from, from_name: &from_name };
        let url = moved.allowed(url, hosts.unwrap_or(&own_host), origins).map_err(CheckError::Misconfigured)?;
        // Cannot fail: `name` is one the journey declares.
        let _ = journey.set_target(&name, url);
    }
    Ok(())
}

/// The variable that overrides the named target `name` (`idp`: `TARGET_IDP_URL`).
pub fn target_variable(name: &str) -> String {
    format!("TARGET_{}_URL", name.to_ascii_uppercase())
}

/// Variables the journey file replaced. A deployment that still sets one would silently lose
/// its setting, so it is refused, named, with where the setting lives now.
const RETIRED: &[&str] = &[
    "HEALTH_PATH",
    "HEALTH_EXPECT_STATUS",
    "HEALTH_STATUS_POINTER",
    "HEALTH_OK_VALUES",
    "LOGIN_PATH",
    "LOGIN_EXPECT_STATUS",
    "LOGIN_TOKEN_POINTER",
    "PRODUCTS_PATH",
    "PRODUCTS_EXPECT_STATUS",
    "PRODUCTS_ITEMS_POINTER",
    "PRODUCTS_MIN_ITEMS",
    "PAYMENT_CREATE_PATH",
    "PAYMENT_CREATE_EXPECT_STATUS",
    "PAYMENT_GET_PATH",
    "PAYMENT_GET_EXPECT_STATUS",
    "PAYMENT_REFUND_PATH",
    "PAYMENT_REFUND_EXPECT_STATUS",
    "PAYMENT_AMOUNT",
    "PAYMENT_CURRENCY",
    "PAYMENT_ID_POINTER",
    "PAYMENT_STATUS_POINTER",
    "PAYMENT_FAILED_STATUSES",
];

fn refuse_retired(env: &Env) -> Result<(), CheckError> {
    match RETIRED.iter().find(|name| env.optional(name).is_some()) {
        Some(name) => Err(CheckError::Misconfigured(format!(
            "{name} is no longer read: paths, statuses, pointers and values live in the check's journey file              (checks/<name>.toml); move the setting there and unset {name}"
        ))),
        None => Ok(()),
    }
}

/// `<STEP>_DEGRADED_AFTER_MS` and `<STEP>_FAIL_AFTER_MS` (the step name in upper case, `-` as
/// `_`) override a step's latency budget for one deployment: a staging target may be slower.
fn apply_budget_overrides(env: &Env, journey: &mut JourneyDef) -> Result<(), CheckError> {
    for step in &mut journey.steps {
        let degraded_var = step_variable(&step.name, "DEGRADED_AFTER_MS");
        let fail_var = step_variable(&step.name, "FAIL_AFTER_MS");
        let degraded = env.millis(&degraded_var, step.budget.degraded_after.as_millis() as u64)?;
        let fail = env.millis(&fail_var, step.budget.fail_after.as_millis() as u64)?;
        if fail.is_zero() || degraded > fail {
            return Err(CheckError::Misconfigured(format!(
                "{degraded_var} ({} ms) must not exceed {fail_var} ({} ms), which must be above 0",
                degraded.as_millis(),
                fail.as_millis()
            )));
        }
        step.budget.degraded_after = degraded;
        step.budget.fail_after = fail;
    }
    Ok(())
}

/// Headers the monitor sets itself, which `SYNTHETIC_HEADER` must not name: it would be sent twice
/// or replace one of them.
const SET_OTHERWISE: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "cookie",
    "host",
    "idempotency-key",
    "user-agent",
    RUN_ID_HEADER,
];

/// A comma-separated list of origins (`https://canary.example.com:8443`). An entry is never
/// quoted in the error: like any URL it may carry a credential.
fn allowed_origins(name: &str, list: &str) -> Result<Vec<url::Origin>, CheckError> {
    let mut origins = Vec::new();
    for (index, entry) in list.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        let wrong = |what: &str| {
            CheckError::Misconfigured(format!(
                "{name} must be a comma-separated list of origins like https://canary.example.com:8443; entry {} {what}",
                index + 1
            ))
        };
        let url = parse_target(name, entry)?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(wrong("has a path, query or fragment"));
        }
        origins.push(url.origin());
    }
    Ok(origins)
}

/// The variable that overrides `setting` of the step `step` (`payment-create`, `FAIL_AFTER_MS`:
/// `PAYMENT_CREATE_FAIL_AFTER_MS`).
pub fn step_variable(step: &str, setting: &str) -> String {
    format!("{}_{setting}", step.to_ascii_uppercase().replace('-', "_"))
}

fn misconfigured(name: &str, expected: &str, got: &str) -> CheckError {
    CheckError::Misconfigured(format!("{name} must be {expected}, got {got:?}"))
}

/// An absolute http(s) URL without credentials in it; errors name the variable.
///
/// An error never quotes the value: a rejected URL may carry a password in its userinfo (or a
/// token in its query), and the message reaches logs, alerts and the CLI's output. It names the
/// part that is wrong instead.
pub fn parse_target(name: &str, raw: &str) -> Result<Url, CheckError> {
    let wrong = |what: &str| {
        CheckError::Misconfigured(format!("{name} must be an absolute http(s) URL without credentials; {what}"))
    };
    // `url`'s parse errors are fixed sentences ("relative URL without a base", "invalid port
    // number"), never the input.
    let url = Url::parse(raw.trim()).map_err(|e| wrong(&format!("it cannot be parsed ({e})")))?;
    // Checked before the scheme so an `ftp://user:password@…` is refused for what matters most.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(wrong("it carries credentials (put them in the secret)"));
    }
    if !url.has_host() || url.host_str().is_none_or(str::is_empty) {
        // Without `//` whatever precedes the first ':' parses as the scheme, and that may be a
        // user name (`deploy:password@shop`), so the scheme is not quoted here.
        return Err(wrong("it has no host (is the https:// missing?)"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        // With a host present the scheme is the text before `://`: safe to name.
        return Err(wrong(&format!("its scheme is {:?}", url.scheme())));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Check;
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
        MonitorConfig::from_lookup(check.journey(), &|k| vars.get(k).map(|v| v.to_string()))
    }

    fn error_of(check: Check, vars: &HashMap<&str, &str>) -> String {
        load(check, vars).unwrap_err().to_string()
    }

    /// The README's table of defaults, as literals: a changed default must change the docs too.
    #[test]
    fn defaults_are_the_documented_ones() {
        let config = load(Check::Payment, &base()).unwrap();
        assert_eq!(config.metrics_namespace, "SyntheticMonitoring");
        assert_eq!(config.synthetic_header, "X-Synthetic-Check");
        assert_eq!(config.retry, RetryPolicy { attempts: 2, backoff: Duration::from_millis(2_000) });
        assert_eq!(config.alert_retry, RetryPolicy { attempts: 4, backoff: Duration::from_millis(200) });
        assert_eq!(config.http.connect_timeout, Duration::from_millis(3_000));
        assert_eq!(config.http.max_body_bytes, 1_048_576);
        assert_eq!(config.max_redirects, 5);
        assert_eq!(config.secret_ttl, Duration::from_secs(300));
        assert_eq!(config.override_allowed_hosts, vec!["shop.example.com"]);
        assert_eq!(config.cert_min_days, 14);
        assert_eq!(config.http.ca_bundle, None);
    }

    #[test]
    fn certificate_settings_are_read_and_their_errors_name_the_variable_and_file() {
        let mut vars = base();
        vars.insert("CERT_MIN_DAYS", "30");
        assert_eq!(load(Check::Health, &vars).unwrap().cert_min_days, 30);
        vars.insert("CERT_MIN_DAYS", "two weeks");
        assert!(error_of(Check::Health, &vars).contains("CERT_MIN_DAYS must be a whole number from 0 to 365"));

        let mut vars = base();
        vars.insert("TARGET_CA_BUNDLE", "/nonexistent/private-ca.pem");
        let error = error_of(Check::Health, &vars);
        assert!(
            error.starts_with("misconfigured: TARGET_CA_BUNDLE file /nonexistent/private-ca.pem cannot be read"),
            "{error}"
        );
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
            MonitorConfig::from_lookup_with(
                Check::Auth.journey(),
                &|k| vars.get(k).map(|v| v.to_string()),
                AlertTopic::Optional,
            )
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
            ("ALERT_TOPIC_ARN", "arn:aws:sqs:eu-west-1:123456789012:alerts", "its service is \"sqs\", not sns"),
            ("ALERT_TOPIC_ARN", "arn:aws:sns::123456789012:alerts", "ALERT_TOPIC_ARN must be an SNS topic ARN"),
            ("RETRY_ATTEMPTS", "9", "RETRY_ATTEMPTS must be a whole number from 1 to 5"),
            ("RETRY_BACKOFF_MS", "soon", "RETRY_BACKOFF_MS must be a whole number"),
            ("PRODUCTS_EXPECT_STATUS", "200", "PRODUCTS_EXPECT_STATUS is no longer read"),
            ("PAYMENT_CREATE_FAIL_AFTER_MS", "soon", "PAYMENT_CREATE_FAIL_AFTER_MS must be a whole number"),
            (
                "PAYMENT_GET_DEGRADED_AFTER_MS",
                "20000",
                "PAYMENT_GET_DEGRADED_AFTER_MS (20000 ms) must not exceed PAYMENT_GET_FAIL_AFTER_MS",
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
        assert!(error.contains("TARGET_BASE_URL must be an absolute http(s) URL without credentials"), "{error}");
        assert!(error.contains("it carries credentials"), "{error}");
        assert!(!error.contains("hunter2") && !error.contains("user"), "{error}");
    }

    #[test]
    fn a_rejected_target_names_the_wrong_part_and_never_echoes_the_value() {
        // Each value is wrong in a different way, and each holds a secret somewhere.
        let cases = [
            ("ftp://deploy:hunter2@shop.example.com", "it carries credentials"),
            ("https://:hunter2@shop.example.com/", "it carries credentials"),
            ("ftp://shop.example.com/?token=hunter2", "its scheme is \"ftp\""),
            ("deploy:hunter2@shop.example.com", "it has no host"),
            ("https://deploy:hunter2@shop.example.com:99999/", "it cannot be parsed (invalid port number)"),
            ("shop.example.com/?token=hunter2", "it cannot be parsed (relative URL without a base)"),
            ("file:///hunter2", "it has no host"),
        ];
        for (value, expected) in cases {
            // GIVEN the value as TARGET_BASE_URL
            let mut vars = base();
            vars.insert("TARGET_BASE_URL", value);

            // WHEN the configuration is read
            let error = error_of(Check::Health, &vars);

            // THEN the variable and the wrong part are named, and nothing of the value is quoted
            assert!(error.starts_with("misconfigured: TARGET_BASE_URL must be"), "{value}: {error}");
            assert!(error.contains(expected), "{value}: {error}");
            assert!(!error.contains("hunter2") && !error.contains("deploy"), "{value}: {error}");
        }
    }

    #[test]
    fn a_rejected_override_in_the_event_is_not_echoed_either() {
        let config = load(Check::Health, &base()).unwrap();
        let error = config.target_for(Some("ftp://deploy:hunter2@shop.example.com")).unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent");
        assert!(error.to_string().contains("target_base_url must be"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn step_budgets_are_overridable_per_deployment() {
        let mut vars = base();
        vars.insert("PAYMENT_CREATE_DEGRADED_AFTER_MS", "50");
        vars.insert("PAYMENT_CREATE_FAIL_AFTER_MS", "100");
        let config = load(Check::Payment, &vars).unwrap();
        let create = config.journey.steps.iter().find(|s| s.name == "payment_create").unwrap();
        assert_eq!(create.budget.degraded_after, Duration::from_millis(50));
        assert_eq!(create.budget.fail_after, Duration::from_millis(100));
        let login = config.journey.steps.iter().find(|s| s.name == "login").unwrap();
        assert_eq!(login.budget.fail_after, Duration::from_millis(10_000), "other steps keep the journey's");
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

    #[test]
    fn an_override_keeps_the_scheme_and_port_unless_its_origin_is_listed() {
        // GIVEN an https target and an override list of hosts only
        let mut vars = base();
        vars.insert("TARGET_OVERRIDE_ALLOWED_HOSTS", "shop.example.com, canary.example.com");
        let config = load(Check::Auth, &vars).unwrap();

        // WHEN an event points at an allowed host over plain HTTP or on another port
        for moved in ["http://shop.example.com/", "http://canary.example.com:8080/", "https://canary.example.com:8443/"]
        {
            // THEN it is refused, naming what would allow it
            let error = config.target_for(Some(moved)).unwrap_err();
            assert_eq!(error.error_type(), "InvalidEvent", "{moved}");
            assert!(error.to_string().contains("TARGET_OVERRIDE_ALLOWED_ORIGINS"), "{moved}: {error}");
        }
        // AND the target's own scheme and port, spelled out or not, are fine
        assert_eq!(
            config.target_for(Some("https://canary.example.com:443/v2")).unwrap().as_str(),
            "https://canary.example.com/v2"
        );

        // GIVEN origins listed explicitly
        vars.insert("TARGET_OVERRIDE_ALLOWED_ORIGINS", "https://canary.example.com:8443, http://127.0.0.1:9000");
        let config = load(Check::Auth, &vars).unwrap();
        // THEN exactly those origins are allowed, and nothing near them
        assert_eq!(
            config.target_for(Some("https://canary.example.com:8443/x")).unwrap().as_str(),
            "https://canary.example.com:8443/x"
        );
        assert_eq!(config.target_for(Some("http://127.0.0.1:9000/")).unwrap().as_str(), "http://127.0.0.1:9000/");
        for near in ["http://canary.example.com:8443/", "http://127.0.0.1:9001/", "https://127.0.0.1:9000/"] {
            assert_eq!(config.target_for(Some(near)).unwrap_err().error_type(), "InvalidEvent", "{near}");
        }
    }

    #[test]
    fn listed_override_origins_must_be_origins() {
        for bad in [
            "canary.example.com:8443",
            "https://canary.example.com/path",
            "ftp://canary.example.com",
            "https://u:p@canary.example.com",
        ] {
            let mut vars = base();
            vars.insert("TARGET_OVERRIDE_ALLOWED_ORIGINS", bad);
            let error = error_of(Check::Health, &vars);
            assert!(error.starts_with("misconfigured: TARGET_OVERRIDE_ALLOWED_ORIGINS must be"), "{bad}: {error}");
            assert!(!error.contains(":p@"), "{error}");
        }
    }

    #[test]
    fn a_synthetic_header_that_cannot_be_a_header_is_misconfigured_at_cold_start() {
        for bad in
            ["X Synthetic Check", "X-Synthetic:", "X-Synthétique", "X-Synthetic-Run-Id", "Authorization", "cookie"]
        {
            let mut vars = base();
            vars.insert("SYNTHETIC_HEADER", bad);
            let error = error_of(Check::Health, &vars);
            assert!(error.starts_with("misconfigured: SYNTHETIC_HEADER must be"), "{bad}: {error}");
        }
        let mut vars = base();
        vars.insert("SYNTHETIC_HEADER", "X-Monitor_1");
        assert_eq!(load(Check::Health, &vars).unwrap().synthetic_header, "X-Monitor_1");
    }

    fn two_origins() -> JourneyDef {
        let source = "check = \"oauth\"\n[targets]\nidp = \"https://login.example.com/t/\"\n\
                      [[steps]]\nname = \"token\"\ntarget = \"idp\"\npath = \"/token\"\n";
        JourneyDef::parse(source).unwrap()
    }

    fn load_two(vars: &HashMap<&str, &str>) -> Result<MonitorConfig, CheckError> {
        MonitorConfig::from_lookup(two_origins(), &|k| vars.get(k).map(|v| v.to_string()))
    }

    fn idp(config: &MonitorConfig) -> String {
        config.journey.target("idp").unwrap().to_string()
    }

    #[test]
    fn a_named_target_is_overridable_per_deployment_within_the_override_rules() {
        // GIVEN no override: the declared URL
        assert_eq!(idp(&load_two(&base()).unwrap()), "https://login.example.com/t/");
        assert_eq!(target_variable("idp"), "TARGET_IDP_URL");
        // WHEN TARGET_IDP_URL keeps the declared host, scheme and port, THEN it is used
        let mut vars = base();
        vars.insert("TARGET_IDP_URL", "https://login.example.com/staging/");
        assert_eq!(idp(&load_two(&vars).unwrap()), "https://login.example.com/staging/");
        // WHEN it moves elsewhere without an allowlist, THEN the deployment is refused, named
        for moved in ["https://login.attacker.example/", "http://login.example.com/", "https://login.example.com:8443/"]
        {
            vars.insert("TARGET_IDP_URL", moved);
            let error = load_two(&vars).unwrap_err();
            assert_eq!(error.error_type(), "Misconfigured", "{moved}");
            assert!(error.to_string().contains("TARGET_IDP_URL"), "{moved}: {error}");
        }
        // AND the main target's own host is not allowed for it either
        vars.insert("TARGET_IDP_URL", "https://shop.example.com/");
        assert!(load_two(&vars).is_err(), "only the declared host by default");
        // WHEN the host is listed, or the origin, THEN it is allowed exactly as listed
        vars.insert("TARGET_OVERRIDE_ALLOWED_HOSTS", "shop.example.com, login.staging.example.com");
        vars.insert("TARGET_IDP_URL", "https://login.staging.example.com/");
        assert_eq!(idp(&load_two(&vars).unwrap()), "https://login.staging.example.com/");
        vars.insert("TARGET_IDP_URL", "http://login.staging.example.com/");
        assert!(load_two(&vars).is_err(), "a listed host keeps the declared scheme");
        vars.insert("TARGET_OVERRIDE_ALLOWED_ORIGINS", "http://127.0.0.1:9000");
        vars.insert("TARGET_IDP_URL", "http://127.0.0.1:9000/");
        assert_eq!(idp(&load_two(&vars).unwrap()), "http://127.0.0.1:9000/");
    }

    #[test]
    fn a_rejected_named_target_never_echoes_its_value() {
        let mut vars = base();
        vars.insert("TARGET_IDP_URL", "https://deploy:hunter2@login.example.com/");
        let error = load_two(&vars).unwrap_err().to_string();
        assert!(error.starts_with("misconfigured: TARGET_IDP_URL must be"), "{error}");
        assert!(!error.contains("hunter2") && !error.contains("deploy"), "{error}");
    }
}

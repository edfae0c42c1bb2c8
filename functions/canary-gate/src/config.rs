//! Configuration, read from the environment once per cold start.
//!
//! Which journey (`CANARY_CHECK`, a built-in check, or `CANARY_JOURNEY_FILE`), the two targets
//! (`BASELINE_URL`, `CANARY_URL`), how long to collect (`CANARY_RUNS` or
//! `CANARY_DURATION_SECS`), the policy (`CANARY_POLICY`, the TOML of `synthetic canary
//! --policy`) and the CodeDeploy report's retries. Everything else is what a check function
//! reads (credentials secret, step budgets, retries, TLS), for both sides alike. A missing or
//! invalid variable is a `misconfigured` error that names it.

use std::path::Path;
use std::time::Duration;
use synthetic_checks::canary::{Limit, Policy};
use synthetic_checks::config::{AlertTopic, Env, parse_target};
use synthetic_checks::{Check, CheckError, JourneyDef, MonitorConfig};

/// The longest one `PutLifecycleEventHookExecutionStatus` attempt may take.
pub const REPORT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The SDK's backoff between report attempts doubles from the configured one up to this.
pub const REPORT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// `CHECK_ENV` when unset: canary runs are neither production nor CLI runs.
const DEFAULT_ENV: &str = "canary";

#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// The journey against `BASELINE_URL`.
    pub baseline: MonitorConfig,
    /// The same journey against `CANARY_URL`.
    pub canary: MonitorConfig,
    pub limit: Limit,
    pub policy: Policy,
    pub report: ReportRetry,
}

/// How the status report to CodeDeploy is retried (by the SDK's standard retry strategy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportRetry {
    pub attempts: u32,
    /// Before the first retry; doubled each retry up to [`REPORT_MAX_BACKOFF`], with jitter.
    pub backoff: Duration,
}

impl ReportRetry {
    /// The most the report may take, every attempt timed out and every backoff at its maximum:
    /// the time the gate keeps back from the Lambda deadline, so a late analysis still reports.
    pub fn budget(self) -> Duration {
        let backoffs: Duration = (0..self.attempts.saturating_sub(1))
            .map(|retry| self.backoff.saturating_mul(2u32.saturating_pow(retry)).min(REPORT_MAX_BACKOFF))
            .sum();
        REPORT_ATTEMPT_TIMEOUT * self.attempts + backoffs
    }
}

impl GateConfig {
    pub fn from_env() -> Result<Self, CheckError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, CheckError> {
        let env = Env(lookup);
        let journey = journey(&env)?;
        let side = |url_variable: &str| -> Result<MonitorConfig, CheckError> {
            let url = parse_target(url_variable, &env.required(url_variable)?)?.to_string();
            // Each side is a check deployment of its own whose target is that side's URL. It
            // never publishes: a canary's failures are the analysis's to judge, not on-call's.
            let side_lookup = |name: &str| match name {
                "TARGET_BASE_URL" => Some(url.clone()),
                "CHECK_ENV" => env.optional("CHECK_ENV").or_else(|| Some(DEFAULT_ENV.into())),
                "ALERT_TOPIC_ARN" => None,
                _ => lookup(name),
            };
            MonitorConfig::from_lookup_with(journey.clone(), &side_lookup, AlertTopic::Optional)
        };
        let limit = match (env.optional("CANARY_RUNS"), env.optional("CANARY_DURATION_SECS")) {
            (Some(_), Some(_)) => {
                return Err(CheckError::Misconfigured(
                    "CANARY_RUNS and CANARY_DURATION_SECS are both set; set one: a number of runs per side, or a time"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                Limit::Duration(Duration::from_secs(env.bounded("CANARY_DURATION_SECS", 600, 1, 900)?))
            }
            _ => Limit::Rounds(env.bounded("CANARY_RUNS", 20, 1, 10_000)?),
        };
        let policy = match env.optional("CANARY_POLICY") {
            None => Policy::default(),
            Some(toml) => Policy::parse(&toml).map_err(|problems| {
                let located: Vec<String> = problems.iter().map(|p| format!("CANARY_POLICY:{p}")).collect();
                CheckError::Misconfigured(located.join("; "))
            })?,
        };
        Ok(GateConfig {
            baseline: side("BASELINE_URL")?,
            canary: side("CANARY_URL")?,
            limit,
            policy,
            report: ReportRetry {
                attempts: env.bounded("HOOK_REPORT_ATTEMPTS", 5, 1, 10)?,
                backoff: env.millis("HOOK_REPORT_BACKOFF_MS", 1_000)?,
            },
        })
    }
}

/// The journey: a built-in check by name, or a journey file (in the zip or a layer).
fn journey(env: &Env) -> Result<JourneyDef, CheckError> {
    match (env.optional("CANARY_CHECK"), env.optional("CANARY_JOURNEY_FILE")) {
        (Some(name), None) => Check::from_name(&name).map(Check::journey).ok_or_else(|| {
            let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
            CheckError::Misconfigured(format!(
                "CANARY_CHECK must be one of {}, got {name:?} (any other journey: CANARY_JOURNEY_FILE)",
                names.join(", ")
            ))
        }),
        (None, Some(path)) => synthetic_checks::catalog::load_file(Path::new(&path))
            .map_err(|problems| CheckError::Misconfigured(format!("CANARY_JOURNEY_FILE: {}", problems.join("; ")))),
        _ => Err(CheckError::Misconfigured(
            "set exactly one of CANARY_CHECK (a built-in check: health, auth, products, payment) or \
             CANARY_JOURNEY_FILE (a journey file)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("CANARY_CHECK", "products"),
            ("BASELINE_URL", "https://shop.example.com"),
            ("CANARY_URL", "https://canary.shop.example.com/v2"),
            ("CREDENTIALS_SECRET_ID", "synthetic/account"),
        ])
    }

    fn load(vars: &HashMap<&str, &str>) -> Result<GateConfig, CheckError> {
        GateConfig::from_lookup(&|k| vars.get(k).map(|v| v.to_string()))
    }

    fn error_of(vars: &HashMap<&str, &str>) -> String {
        load(vars).unwrap_err().to_string()
    }

    /// The README's defaults, as literals: a changed default must change the docs too.
    #[test]
    fn defaults_are_the_documented_ones() {
        let config = load(&base()).unwrap();
        assert_eq!(config.baseline.target.as_str(), "https://shop.example.com/");
        assert_eq!(config.canary.target.as_str(), "https://canary.shop.example.com/v2");
        assert_eq!(config.baseline.journey.check, "products");
        assert_eq!((config.baseline.env_name.as_str(), config.canary.env_name.as_str()), ("canary", "canary"));
        assert_eq!(config.limit, Limit::Rounds(20));
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.report, ReportRetry { attempts: 5, backoff: Duration::from_millis(1_000) });
        // 5 attempts of at most 5 s, and 1 + 2 + 4 + 5 s between them.
        assert_eq!(config.report.budget(), Duration::from_secs(37));
        assert_eq!(config.canary.alert_topic_arn, None, "the gate never pages");
    }

    #[test]
    fn the_settings_of_a_check_apply_to_both_sides() {
        let mut vars = base();
        vars.extend([("CHECK_ENV", "staging"), ("RETRY_ATTEMPTS", "1"), ("PRODUCTS_FAIL_AFTER_MS", "8000")]);
        vars.insert("ALERT_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:alerts");
        let config = load(&vars).unwrap();
        for side in [&config.baseline, &config.canary] {
            assert_eq!((side.env_name.as_str(), side.retry.attempts), ("staging", 1));
            let products = side.journey.steps.iter().find(|s| s.name == "products").unwrap();
            assert_eq!(products.budget.fail_after, Duration::from_millis(8_000));
            assert_eq!(side.alert_topic_arn, None);
        }
    }

    #[test]
    fn runs_duration_and_policy_are_read_and_checked() {
        let mut vars = base();
        vars.insert("CANARY_DURATION_SECS", "300");
        vars.insert("CANARY_POLICY", "min_runs = 30\nlatency_tolerance = 1.25\n");
        let config = load(&vars).unwrap();
        assert_eq!(config.limit, Limit::Duration(Duration::from_secs(300)));
        assert_eq!((config.policy.min_runs, config.policy.latency_tolerance), (30, 1.25));

        vars.insert("CANARY_RUNS", "30");
        assert!(error_of(&vars).contains("CANARY_RUNS and CANARY_DURATION_SECS are both set"));
        vars.remove("CANARY_DURATION_SECS");
        vars.insert("CANARY_POLICY", "min_runs = 30\ncolour = 1\n");
        let error = error_of(&vars);
        assert!(error.contains("CANARY_POLICY:2:1: unknown key \"colour\""), "{error}");
        vars.remove("CANARY_POLICY");
        vars.insert("CANARY_RUNS", "0");
        assert!(error_of(&vars).contains("CANARY_RUNS must be a whole number from 1 to 10000"));
    }

    #[test]
    fn each_missing_or_ambiguous_setting_is_named() {
        for name in ["BASELINE_URL", "CANARY_URL", "CREDENTIALS_SECRET_ID"] {
            let mut vars = base();
            vars.remove(name);
            assert_eq!(error_of(&vars), format!("misconfigured: {name} is not set"));
        }
        let mut vars = base();
        vars.remove("CANARY_CHECK");
        assert!(error_of(&vars).contains("set exactly one of CANARY_CHECK"));
        vars.insert("CANARY_CHECK", "products");
        vars.insert("CANARY_JOURNEY_FILE", "/opt/journey.toml");
        assert!(error_of(&vars).contains("set exactly one of CANARY_CHECK"));
        let mut vars = base();
        vars.insert("CANARY_CHECK", "checkout");
        assert!(
            error_of(&vars).contains("CANARY_CHECK must be one of health, auth, products, payment, got \"checkout\"")
        );
    }

    #[test]
    fn a_journey_file_is_read_and_its_mistakes_located() {
        let dir = std::env::temp_dir().join(format!("canary-gate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("search.toml");
        std::fs::write(&good, include_str!("../../../checks/search.toml")).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "check = \"x\"\n[[steps]]\nname = 5\n").unwrap();
        let mut vars = base();
        vars.remove("CANARY_CHECK");
        let (good, bad) = (good.display().to_string(), bad.display().to_string());
        vars.insert("CANARY_JOURNEY_FILE", &good);
        assert_eq!(load(&vars).unwrap().canary.journey.check, "search");
        vars.insert("CANARY_JOURNEY_FILE", &bad);
        let error = error_of(&vars);
        assert!(error.starts_with(&format!("misconfigured: CANARY_JOURNEY_FILE: {bad}:")), "{error}");
        assert!(error.contains(&format!("{bad}:3:8: name must be a string")), "{error}");
        vars.insert("CANARY_JOURNEY_FILE", "/nonexistent/journey.toml");
        let error = error_of(&vars);
        assert!(
            error.contains("CANARY_JOURNEY_FILE: /nonexistent/journey.toml: cannot read the journey file"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rejected_url_names_its_variable_and_not_its_value() {
        let mut vars = base();
        vars.insert("CANARY_URL", "https://deploy:hunter2@canary.example.com");
        let error = error_of(&vars);
        assert!(error.starts_with("misconfigured: CANARY_URL must be an absolute http(s) URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}

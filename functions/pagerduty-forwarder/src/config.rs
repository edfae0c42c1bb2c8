//! Configuration, read from the environment once per cold start.
//!
//! Only `PAGERDUTY_SECRET_ID` is required; everything else has a documented default (README). A
//! missing or invalid variable is a `misconfigured` error that names it.

use crate::incident::Policy;
use std::sync::Arc;
use std::time::Duration;
use synthetic_checks::CheckError;
use synthetic_checks::config::{Env, parse_target};
use synthetic_checks::journey::RetryPolicy;
use synthetic_checks::plan::Plan;
use url::Url;

pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com";
const ENQUEUE_PATH: &str = "/v2/enqueue";

#[derive(Clone, Debug, PartialEq)]
pub struct ForwarderConfig {
    /// Secrets Manager id or ARN of the routing key.
    pub secret_id: String,
    /// `PAGERDUTY_EVENTS_URL` + `/v2/enqueue`.
    pub enqueue_url: Url,
    pub runbook_url: Option<Url>,
    pub client_url: Option<Url>,
    /// `TRACE_URL_TEMPLATE`: the tracing backend's page of one trace, `{trace_id}` in it.
    pub trace_url: Option<TraceUrl>,
    pub retry: RetryPolicy,
    /// Per attempt: connect, headers and body.
    pub request_timeout: Duration,
    pub metrics_namespace: String,
    /// Older alerts are dropped as stale (see [`crate::freshness`]).
    pub max_event_age: Duration,
    /// The DynamoDB table of incident state and silences. Without it, every failed run pages.
    pub state_table: Option<String>,
    /// This stack's env: CloudWatch alarms carry none.
    pub check_env: Option<String>,
    /// Names the checks' burn-rate alarms begin with (`<stack name>-`).
    pub alarm_name_prefix: Option<String>,
    /// The human channels' topic, for warnings that do not page.
    pub notify_topic_arn: Option<String>,
    /// The operations topic: where the sweep raises a check that stopped reporting.
    pub ops_topic_arn: Option<String>,
    pub policy: Policy,
    /// The deployment plan (`CHECK_PLAN_FILE`): which checks exist, their schedules and what they
    /// depend on. Empty when the variable is unset: no check depends on another, and the sweep has
    /// nothing to watch (it then refuses to run, see [`crate::sweep`]).
    pub plan: Arc<Plan>,
    /// What PagerDuty may be sent, shared by every instance (see [`crate::rate`]).
    pub rate: crate::rate::RateLimit,
}

impl ForwarderConfig {
    pub fn from_env() -> Result<Self, CheckError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, CheckError> {
        let env = Env(lookup);
        let base = env.optional("PAGERDUTY_EVENTS_URL").unwrap_or_else(|| DEFAULT_EVENTS_URL.into());
        let optional_url = |name: &str| env.optional(name).map(|raw| parse_target(name, &raw)).transpose();
        Ok(ForwarderConfig {
            secret_id: env.required("PAGERDUTY_SECRET_ID")?,
            enqueue_url: enqueue_url(parse_target("PAGERDUTY_EVENTS_URL", &base)?),
            runbook_url: optional_url("RUNBOOK_URL")?,
            client_url: optional_url("PAGERDUTY_CLIENT_URL")?,
            trace_url: env.optional("TRACE_URL_TEMPLATE").map(|raw| TraceUrl::parse(&raw)).transpose()?,
            retry: RetryPolicy {
                attempts: env.bounded("PAGERDUTY_ATTEMPTS", 3, 1, 10)?,
                backoff: env.millis("PAGERDUTY_BACKOFF_MS", 1_000)?,
            },
            request_timeout: Duration::from_millis(env.bounded("PAGERDUTY_TIMEOUT_MS", 5_000, 100, 60_000)?),
            metrics_namespace: env.optional("METRICS_NAMESPACE").unwrap_or_else(|| "SyntheticMonitoring".into()),
            // Twice the longest schedule the template offers (15 min), so a run's alert is never
            // dropped before the next run's could replace it. At most the DLQ's 14 days, for a
            // deliberate replay.
            max_event_age: Duration::from_secs(env.bounded("MAX_EVENT_AGE_SECS", 1_800, 60, 14 * 24 * 3_600)?),
            state_table: env.optional("STATE_TABLE"),
            check_env: env.optional("CHECK_ENV"),
            alarm_name_prefix: env.optional("ALARM_NAME_PREFIX"),
            notify_topic_arn: env.optional("NOTIFY_TOPIC_ARN"),
            ops_topic_arn: env.optional("OPS_TOPIC_ARN"),
            policy: policy(&env)?,
            plan: read_plan(&env)?,
            rate: crate::rate::RateLimit {
                events: env.bounded("PAGERDUTY_RATE_EVENTS", 100, 1, 10_000)?,
                window: time::Duration::seconds(env.bounded("PAGERDUTY_RATE_WINDOW_SECS", 60, 1, 3_600)?),
            },
        })
    }
}

fn policy(env: &Env) -> Result<Policy, CheckError> {
    let regions: Vec<String> = env
        .optional("REGIONS")
        .unwrap_or_default()
        .split(',')
        .map(|region| region.trim().to_string())
        .filter(|region| !region.is_empty())
        .collect();
    if let Some(bad) =
        regions.iter().find(|r| !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(CheckError::Misconfigured(format!("REGIONS: {bad:?} is not a region name (e.g. us-east-1)")));
    }
    let region_quorum = env.bounded("REGION_QUORUM", 2, 1, 20)?;
    if regions.len() >= 2 && region_quorum > regions.len() {
        return Err(CheckError::Misconfigured(format!(
            "REGION_QUORUM is {region_quorum}, more than the {} regions in REGIONS: no failure could ever page",
            regions.len()
        )));
    }
    let schedule: i64 = env.bounded("SCHEDULE_RATE_MINUTES", 5, 1, 15)?;
    if ![1, 2, 5, 10, 15].contains(&schedule) {
        return Err(CheckError::Misconfigured(format!(
            "SCHEDULE_RATE_MINUTES is {schedule}; the template's schedules are 1, 2, 5, 10 or 15 minutes"
        )));
    }
    let slo_target_percent = match env.optional("SLO_TARGET_PERCENT") {
        None => 99.5,
        Some(raw) => raw.parse::<f64>().ok().filter(|slo| (50.0..=99.99).contains(slo)).ok_or_else(|| {
            CheckError::Misconfigured(format!(
                "SLO_TARGET_PERCENT is {raw:?}; it must be a percentage from 50 to 99.99"
            ))
        })?,
    };
    Ok(Policy {
        slo_target_percent,
        stopped_after_periods: env.bounded("STOPPED_AFTER_PERIODS", 3, 2, 20)?,
        page_after_failed_runs: env.bounded("PAGE_AFTER_FAILED_RUNS", 2, 1, 10)?,
        resolve_after_passed_runs: env.bounded("RESOLVE_AFTER_PASSED_RUNS", 1, 1, 10)?,
        regions,
        region_quorum,
        period: time::Duration::minutes(schedule),
        flap_changes: env.bounded("FLAP_CHANGES", 4, 2, 100)?,
        flap_window: time::Duration::minutes(env.bounded("FLAP_WINDOW_MINUTES", 60, 10, 24 * 60)?),
        region_incident_after: time::Duration::minutes(env.bounded("REGION_INCIDENT_MINUTES", 60, 10, 24 * 60)?),
        orphan_after: time::Duration::hours(env.bounded("ORPHAN_AFTER_HOURS", 24, 1, 30 * 24)?),
    })
}

/// Where the tracing backend shows one trace (`https://tracing.example.com/trace/{trace_id}`), for
/// a link on the page. Checked at cold start: a template that cannot make a URL is a
/// misconfiguration, not a page with a broken link.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceUrl(String);

const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

impl TraceUrl {
    pub fn parse(template: &str) -> Result<Self, CheckError> {
        if !template.contains(TRACE_ID_PLACEHOLDER) {
            return Err(CheckError::Misconfigured(format!(
                "TRACE_URL_TEMPLATE must contain {TRACE_ID_PLACEHOLDER}, where the trace id goes"
            )));
        }
        let url = TraceUrl(template.to_string());
        // A trace id is 32 hex digits: any of them makes the same kind of URL.
        parse_target("TRACE_URL_TEMPLATE", &url.for_trace(&"0".repeat(32)))?;
        Ok(url)
    }

    /// The page of `trace_id`, which the caller has checked is hex (nothing to escape).
    pub fn for_trace(&self, trace_id: &str) -> String {
        self.0.replace(TRACE_ID_PLACEHOLDER, trace_id)
    }
}

/// The plan file named by `CHECK_PLAN_FILE` (the deployed zip carries it), read once per cold
/// start. Unset: an empty plan, so a forwarder deployed without one (an older template, the unit
/// tests) pages as before. Set but unreadable or invalid: misconfigured at cold start, naming the
/// variable: a forwarder that cannot tell which checks exist must not start, or the sweep would
/// watch the wrong ones and dependants would page.
fn read_plan(env: &Env) -> Result<Arc<Plan>, CheckError> {
    let Some(path) = env.optional("CHECK_PLAN_FILE") else { return Ok(Arc::new(Plan { checks: Vec::new() })) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CheckError::Misconfigured(format!("CHECK_PLAN_FILE: {path} cannot be read: {e}")))?;
    let plan = Plan::from_json(&text)
        .map_err(|e| CheckError::Misconfigured(format!("CHECK_PLAN_FILE: {path} is not a plan: {e}")))?;
    if let Some(bad) = plan.checks.iter().find(|c| ![1, 2, 5, 10, 15].contains(&c.schedule_minutes)) {
        return Err(CheckError::Misconfigured(format!(
            "CHECK_PLAN_FILE: {path}: check {} runs every {} min; the schedules are 1, 2, 5, 10 or 15",
            bad.name, bad.schedule_minutes
        )));
    }
    Ok(Arc::new(plan))
}

/// The enqueue endpoint under a base URL, which may carry a path prefix (a proxy) or, pasted from
/// PagerDuty's docs, the endpoint itself.
fn enqueue_url(mut base: Url) -> Url {
    let path = base.path().trim_end_matches('/').to_string();
    if !path.ends_with(ENQUEUE_PATH) {
        base.set_path(&format!("{path}{ENQUEUE_PATH}"));
    }
    base.set_query(None);
    base.set_fragment(None);
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<ForwarderConfig, CheckError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        ForwarderConfig::from_lookup(&|k| vars.get(k).map(|v| v.to_string()))
    }

    const SECRET: (&str, &str) = ("PAGERDUTY_SECRET_ID", "pagerduty/routing-key");

    #[test]
    fn defaults_need_only_the_secret_id() {
        let config = load(&[SECRET]).unwrap();
        assert_eq!(config.secret_id, "pagerduty/routing-key");
        assert_eq!(config.enqueue_url.as_str(), "https://events.pagerduty.com/v2/enqueue");
        assert_eq!((config.runbook_url, config.client_url), (None, None));
        assert_eq!(config.retry, RetryPolicy { attempts: 3, backoff: Duration::from_secs(1) });
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.metrics_namespace, "SyntheticMonitoring");
        assert_eq!(config.max_event_age, Duration::from_secs(1_800));
        assert_eq!((config.state_table, config.check_env, config.notify_topic_arn), (None, None, None));
        assert_eq!(config.policy, Policy::default());
        assert_eq!((config.plan.checks.len(), config.ops_topic_arn), (0, None));
    }

    #[test]
    fn the_plan_is_read_from_its_file_and_a_bad_one_names_the_variable() {
        let dir = std::env::temp_dir().join(format!("forwarder-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let check = serde_json::json!({"name": "health", "schedule_minutes": 5, "regions": [], "tags": [],
            "depends_on": [], "enabled": true, "timeout_seconds": 30, "reads_account_secret": false,
            "journey_sha256": "00"});
        let good = dir.join("plan.json");
        std::fs::write(&good, serde_json::json!({"checks": [check]}).to_string()).unwrap();
        let config = load(&[SECRET, ("CHECK_PLAN_FILE", good.to_str().unwrap())]).unwrap();
        assert_eq!(config.plan.check("health").map(|c| c.schedule_minutes), Some(5));

        let mut odd = check.clone();
        odd["schedule_minutes"] = 7.into();
        let cases = [
            ("missing.json", None),
            ("garbage.json", Some("{\"checks\": 1}".to_string())),
            ("odd.json", Some(serde_json::json!({"checks": [odd]}).to_string())),
        ];
        for (name, content) in cases {
            let path = dir.join(name);
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let error = load(&[SECRET, ("CHECK_PLAN_FILE", path.to_str().unwrap())]).unwrap_err();
            assert_eq!(error.error_type(), "Misconfigured", "{name}");
            assert!(error.to_string().contains("CHECK_PLAN_FILE"), "{name}: {error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_incident_policy_is_read_and_checked() {
        let config = load(&[
            SECRET,
            ("STATE_TABLE", "synthetic-state"),
            ("REGIONS", "us-east-1, eu-west-1,ap-southeast-2"),
            ("REGION_QUORUM", "3"),
            ("PAGE_AFTER_FAILED_RUNS", "3"),
            ("SCHEDULE_RATE_MINUTES", "10"),
        ])
        .unwrap();
        assert_eq!(config.state_table.as_deref(), Some("synthetic-state"));
        assert_eq!(config.policy.regions, ["us-east-1", "eu-west-1", "ap-southeast-2"]);
        assert_eq!((config.policy.region_quorum, config.policy.page_after_failed_runs), (3, 3));
        assert_eq!(config.policy.period, time::Duration::minutes(10));
        let cases = [
            (("REGIONS", "us-east-1,eu-west-1"), ("REGION_QUORUM", "3"), "REGION_QUORUM"),
            (("REGIONS", "us-east-1;eu-west-1"), ("REGION_QUORUM", "2"), "REGIONS"),
            (("SCHEDULE_RATE_MINUTES", "7"), ("REGION_QUORUM", "2"), "SCHEDULE_RATE_MINUTES"),
            (("PAGE_AFTER_FAILED_RUNS", "0"), ("REGION_QUORUM", "2"), "PAGE_AFTER_FAILED_RUNS"),
            (("FLAP_WINDOW_MINUTES", "1"), ("REGION_QUORUM", "2"), "FLAP_WINDOW_MINUTES"),
            (("REGION_INCIDENT_MINUTES", "5"), ("REGION_QUORUM", "2"), "REGION_INCIDENT_MINUTES"),
            (("ORPHAN_AFTER_HOURS", "0"), ("REGION_QUORUM", "2"), "ORPHAN_AFTER_HOURS"),
            (("SLO_TARGET_PERCENT", "100"), ("REGION_QUORUM", "2"), "SLO_TARGET_PERCENT"),
            (("SLO_TARGET_PERCENT", "high"), ("REGION_QUORUM", "2"), "SLO_TARGET_PERCENT"),
        ];
        for (a, b, name) in cases {
            let error = load(&[SECRET, a, b]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn the_events_url_may_be_a_base_a_prefix_or_the_endpoint() {
        let cases = [
            ("https://events.eu.pagerduty.com", "https://events.eu.pagerduty.com/v2/enqueue"),
            ("http://127.0.0.1:4040/", "http://127.0.0.1:4040/v2/enqueue"),
            ("https://proxy.internal/pd/", "https://proxy.internal/pd/v2/enqueue"),
            ("https://events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com/v2/enqueue"),
        ];
        for (base, expected) in cases {
            let config = load(&[SECRET, ("PAGERDUTY_EVENTS_URL", base)]).unwrap();
            assert_eq!(config.enqueue_url.as_str(), expected, "{base}");
        }
    }

    #[test]
    fn every_misconfiguration_names_its_variable() {
        assert_eq!(load(&[]).unwrap_err().to_string(), "misconfigured: PAGERDUTY_SECRET_ID is not set");
        let cases = [
            ("PAGERDUTY_EVENTS_URL", "events.pagerduty.com"),
            ("RUNBOOK_URL", "wiki/runbooks"),
            ("PAGERDUTY_CLIENT_URL", "ftp://dashboards"),
            ("PAGERDUTY_ATTEMPTS", "0"),
            ("PAGERDUTY_BACKOFF_MS", "soon"),
            ("PAGERDUTY_TIMEOUT_MS", "5"),
            ("MAX_EVENT_AGE_SECS", "30"),
            ("MAX_EVENT_AGE_SECS", "an hour"),
            ("TRACE_URL_TEMPLATE", "https://tracing.example.com/trace/"),
            ("TRACE_URL_TEMPLATE", "tracing/{trace_id}"),
        ];
        for (name, value) in cases {
            let error = load(&[SECRET, (name, value)]).unwrap_err();
            assert_eq!(error.error_type(), "Misconfigured");
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn the_plan_file_is_read_and_a_bad_one_names_its_variable() {
        assert!(load(&[SECRET]).unwrap().plan.checks.is_empty(), "unset: no check depends on another");
        let dir = std::env::temp_dir().join(format!("forwarder-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("plan.json");
        let check = r#"{"name":"products","schedule_minutes":5,"regions":[],"tags":[],"depends_on":["health"],
            "enabled":true,"timeout_seconds":30,"reads_account_secret":true,"journey_sha256":"00"}"#;
        std::fs::write(&good, format!(r#"{{"checks":[{check}]}}"#)).unwrap();
        let plan = load(&[SECRET, ("CHECK_PLAN_FILE", good.to_str().unwrap())]).unwrap().plan;
        assert_eq!(plan.check("products").unwrap().depends_on, ["health"]);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"checks": "none"}"#).unwrap();
        for path in [bad, dir.join("missing.json")] {
            let error = load(&[SECRET, ("CHECK_PLAN_FILE", path.to_str().unwrap())]).unwrap_err();
            assert_eq!(error.error_type(), "Misconfigured");
            assert!(error.to_string().contains("CHECK_PLAN_FILE"), "{error}");
        }
    }

    #[test]
    fn the_rate_defaults_below_pagerdutys_and_is_bounded() {
        let config = load(&[SECRET]).unwrap();
        assert_eq!(config.rate, crate::rate::RateLimit::default());
        let config = load(&[SECRET, ("PAGERDUTY_RATE_EVENTS", "20"), ("PAGERDUTY_RATE_WINDOW_SECS", "2")]).unwrap();
        assert_eq!((config.rate.events, config.rate.window), (20, time::Duration::seconds(2)));
        for (name, value) in [("PAGERDUTY_RATE_EVENTS", "0"), ("PAGERDUTY_RATE_WINDOW_SECS", "0")] {
            assert!(load(&[SECRET, (name, value)]).unwrap_err().to_string().contains(name));
        }
    }

    #[test]
    fn optional_links_are_read() {
        let config = load(&[
            SECRET,
            ("RUNBOOK_URL", "https://wiki.example.com/runbooks/synthetic"),
            ("PAGERDUTY_CLIENT_URL", "https://grafana.example.com/d/synthetic"),
        ])
        .unwrap();
        assert_eq!(
            config.runbook_url.map(String::from).as_deref(),
            Some("https://wiki.example.com/runbooks/synthetic")
        );
        assert!(config.client_url.is_some());
        let config = load(&[SECRET, ("TRACE_URL_TEMPLATE", "https://ui.example.com/trace/{trace_id}?env=prod")]);
        assert_eq!(
            config.unwrap().trace_url.unwrap().for_trace("4bf92f3577b34da6a3ce929d0e0e4736"),
            "https://ui.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736?env=prod"
        );
    }
}

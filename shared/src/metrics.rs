//! CloudWatch Embedded Metric Format records: one per run and one per step.
//!
//! EMF lines printed to stdout become metrics without an API call (and without the IAM
//! permission, latency and cost one would add to every run).

use crate::result::{Outcome, RunResult};
use serde_json::{Value, json};
use std::fmt::Write;
use std::sync::Mutex;
use time::OffsetDateTime;

/// Port: where metric records go.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, record: &Value);

    /// A record already serialized as one line of JSON, as a run's records are. The default
    /// parses it back for sinks that only take a [`Value`].
    fn emit_json(&self, line: &str) {
        if let Ok(record) = serde_json::from_str::<Value>(line) {
            self.emit(&record);
        }
    }
}

/// Prints each record as one line on stdout, where Lambda's log agent picks EMF up.
pub struct StdoutEmf;

impl MetricsSink for StdoutEmf {
    fn emit(&self, record: &Value) {
        println!("{record}");
    }

    fn emit_json(&self, line: &str) {
        println!("{line}");
    }
}

/// In-memory sink for unit tests. Keeps each record as the line it arrived as: a run's records
/// come serialized, and a test reads them far less often than a run writes them.
#[derive(Default)]
pub struct RecordingMetrics(Mutex<Vec<String>>);

impl RecordingMetrics {
    pub fn records(&self) -> Vec<Value> {
        let lines = self.0.lock().map(|r| r.clone()).unwrap_or_default();
        lines.iter().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }
}

impl MetricsSink for RecordingMetrics {
    fn emit(&self, record: &Value) {
        self.emit_json(&record.to_string());
    }

    fn emit_json(&self, line: &str) {
        if let Ok(mut records) = self.0.lock() {
            records.push(line.to_string());
        }
    }
}

/// Which of a run's values are CloudWatch metrics (`METRICS_DETAIL`). Every value is in the run's
/// log records either way, where Logs Insights reads them; what is a metric costs $0.30 a month per
/// metric and dimension set, so by default only the run's `Success` is one: the SLO report, the
/// dashboard's availability and the burn rates need no more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricDetail {
    /// `Success` per run (dimensions check, env): one metric per check and region.
    #[default]
    Success,
    /// Also `Degraded`, `DurationMs` and `CertificateDaysLeft` per run, and `Success`, `Degraded`
    /// and `DurationMs` per step (dimensions check, env, step): 4 + 3 per step metrics per check.
    All,
}

impl MetricDetail {
    /// `METRICS_DETAIL`: `success` (the default) or `all`.
    pub fn parse(raw: &str) -> Option<MetricDetail> {
        match raw {
            "success" => Some(MetricDetail::Success),
            "all" => Some(MetricDetail::All),
            _ => None,
        }
    }
}

const SUCCESS: &str = r#"{"Name":"Success","Unit":"Count"}"#;
const DEGRADED: &str = r#"{"Name":"Degraded","Unit":"Count"}"#;
const DURATION: &str = r#"{"Name":"DurationMs","Unit":"Milliseconds"}"#;
/// Days are not a CloudWatch unit; "None" is what a plain number takes.
const CERTIFICATE_METRIC: &str = r#"{"Name":"CertificateDaysLeft","Unit":"None"}"#;

/// The run's log record (check, env) followed by one per step (plus step), each one line of JSON
/// with `Success` (0/1, degraded counts as success), `Degraded` and `DurationMs`, and on the run's
/// `CertificateDaysLeft` when the run saw the target's certificate. A record with a metric under
/// `detail` carries the EMF directive that makes it one. A run whose synthetic account was
/// rejected says nothing about the journey, so it must not burn the journey's SLO: its run record
/// has no `Success`. The records are written as text rather than built as a [`Value`] (a run writes
/// one per step on every invocation), fields in the order a `Value` prints them (sorted by name).
pub fn emf_records(run: &RunResult, namespace: &str, detail: MetricDetail) -> Vec<String> {
    let directive_tail = format!(r#"],"Namespace":{}}}],"Timestamp":{}}},"#, json_string(namespace), now_ms());
    let properties = format!(
        r#""check":{},"env":{},"run_id":{}"#,
        json_string(&run.check),
        json_string(&run.env),
        json_string(&run.run_id)
    );
    let days_left = run.certificate.as_ref().map(|certificate| certificate.days_left);
    let trace_id = run.trace_id.as_deref().map(json_string);
    let rejected = run.cause == Some(crate::error::Cause::CredentialsRejected);
    let all = detail == MetricDetail::All;
    let record = |step: Option<&str>, outcome: Outcome, duration_ms: u64| {
        let mut line = String::with_capacity(384 + directive_tail.len() + properties.len());
        line.push('{');
        let days_left = days_left.filter(|_| step.is_none());
        let with_success = step.is_some() || !rejected;
        // Writing to a String cannot fail.
        if let Some(days) = days_left {
            let _ = write!(line, r#""CertificateDaysLeft":{days},"#);
        }
        let (degraded, success) = (u8::from(outcome == Outcome::Degraded), u8::from(outcome != Outcome::Failed));
        let _ = write!(line, r#""Degraded":{degraded},"DurationMs":{duration_ms},"#);
        if with_success {
            let _ = write!(line, r#""Success":{success},"#);
        }
        let mut metrics: Vec<&str> = Vec::new();
        if with_success && (all || step.is_none()) {
            metrics.push(SUCCESS);
        }
        if all {
            metrics.extend([DEGRADED, DURATION]);
            if days_left.is_some() {
                metrics.push(CERTIFICATE_METRIC);
            }
        }
        if !metrics.is_empty() {
            let dimensions = if step.is_some() { r#"[["check","env","step"]]"# } else { r#"[["check","env"]]"# };
            let _ = write!(
                line,
                r#""_aws":{{"CloudWatchMetrics":[{{"Dimensions":{dimensions},"Metrics":[{}"#,
                metrics.join(",")
            );
            line.push_str(&directive_tail);
        }
        line.push_str(&properties);
        if let Some(step) = step {
            line.push_str(r#","step":"#);
            line.push_str(&json_string(step));
        }
        // A property, never a dimension: one per run would make every run its own metric.
        if let Some(trace_id) = &trace_id {
            line.push_str(r#","trace_id":"#);
            line.push_str(trace_id);
        }
        line.push('}');
        line
    };
    std::iter::once(record(None, run.status, run.duration_ms))
        .chain(run.steps.iter().map(|s| record(Some(&s.name), s.outcome, s.duration_ms)))
        .collect()
}

/// `text` as a JSON string, quoted and escaped by serde_json (which cannot fail on a `str`).
fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// One count of 1 for something that happens outside a run (a page PagerDuty rejected); the
/// dimensions are also set as properties, as EMF requires.
pub fn emf_count(namespace: &str, metric: &str, dimensions: &[(&str, &str)]) -> Value {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let mut record = json!({
        "_aws": {
            "Timestamp": now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
    });
    record[metric] = json!(1);
    for (name, value) in dimensions {
        record[*name] = json!(value);
    }
    record
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Cause;
    use crate::result::StepResult;

    fn parsed(lines: Vec<String>) -> Vec<Value> {
        lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn one_record_per_run_and_per_step_in_emf_shape() {
        let step = |name: &str, outcome| StepResult {
            name: name.into(),
            outcome,
            duration_ms: 120,
            status: Some(200),
            attempts: 1,
            cause: None,
            error: None,
        };
        let run = RunResult {
            check: "products".into(),
            env: "prod".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: String::new(),
            duration_ms: 250,
            status: Outcome::Degraded,
            cause: Some(Cause::Timeout),
            steps: vec![step("login", Outcome::Passed), step("products", Outcome::Degraded)],
            account: None,
            certificate: None,
            trace_id: None,
        };
        let records = parsed(emf_records(&run, "Synth", MetricDetail::All));
        assert_eq!(records.len(), 3);

        let run_record = &records[0];
        let directive = &run_record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Synth");
        assert_eq!(directive["Dimensions"], json!([["check", "env"]]));
        let names: Vec<_> = directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].clone()).collect();
        assert_eq!(names, [json!("Success"), json!("Degraded"), json!("DurationMs")]);
        assert!(run_record["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!((run_record["Success"].as_u64(), run_record["Degraded"].as_u64()), (Some(1), Some(1)));
        assert_eq!(run_record["DurationMs"], 250);

        let step_record = &records[2];
        assert_eq!(step_record["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["check", "env", "step"]]));
        assert_eq!(step_record["step"], "products");
        assert_eq!(records[1]["Degraded"], 0);
        assert!(run_record.get("CertificateDaysLeft").is_none(), "no certificate seen, no metric");

        let rejected = RunResult { status: Outcome::Failed, cause: Some(Cause::CredentialsRejected), ..run };
        let record = &parsed(emf_records(&rejected, "Synth", MetricDetail::All))[0];
        let names: Vec<_> = record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].clone())
            .collect();
        assert_eq!(names, [json!("Degraded"), json!("DurationMs")], "a rejected account burns no SLO");
        assert!(record.get("Success").is_none());
    }

    #[test]
    fn the_run_record_carries_the_certificate_days_left_when_one_was_seen() {
        let run = RunResult {
            check: "health".into(),
            env: "prod".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: String::new(),
            duration_ms: 20,
            status: Outcome::Passed,
            cause: None,
            steps: vec![],
            account: None,
            certificate: Some(crate::http::Certificate {
                days_left: 364,
                not_after: "2027-11-21T10:00:00Z".into(),
                subject: "CN=shop".into(),
            }),
            trace_id: None,
        };
        let record = &parsed(emf_records(&run, "Synth", MetricDetail::All))[0];
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["check", "env"]]));
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(metrics.contains(&json!({"Name": "CertificateDaysLeft", "Unit": "None"})), "{metrics:?}");
        assert_eq!(
            (&record["CertificateDaysLeft"], &record["check"], &record["env"]),
            (&json!(364), &json!("health"), &json!("prod"))
        );
    }

    #[test]
    fn each_line_is_byte_for_byte_what_a_json_value_of_the_record_prints() {
        // GIVEN a run with a certificate and a step whose name needs escaping
        let run = RunResult {
            check: "products".into(),
            env: "pr\"od".into(),
            target: "https://shop/".into(),
            run_id: "r-1".into(),
            started_at: String::new(),
            duration_ms: 250,
            status: Outcome::Failed,
            cause: Some(Cause::Timeout),
            steps: vec![StepResult {
                name: "log\nin".into(),
                outcome: Outcome::Degraded,
                duration_ms: 120,
                status: Some(200),
                attempts: 1,
                cause: None,
                error: None,
            }],
            account: None,
            certificate: Some(crate::http::Certificate { days_left: 9, not_after: "T".into(), subject: "CN=s".into() }),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        };

        // WHEN its records are written
        let lines = emf_records(&run, "Synth", MetricDetail::All);

        // THEN each is the line the record printed as when it was built as a Value
        let timestamp = serde_json::from_str::<Value>(&lines[0]).unwrap()["_aws"]["Timestamp"].clone();
        let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});
        let counts = [metric("Success", "Count"), metric("Degraded", "Count"), metric("DurationMs", "Milliseconds")];
        let mut run_metrics = counts.to_vec();
        run_metrics.push(metric("CertificateDaysLeft", "None"));
        let expected_run = json!({
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [{
                "Namespace": "Synth", "Dimensions": [["check", "env"]], "Metrics": run_metrics }]},
            "check": "products", "env": "pr\"od", "run_id": "r-1",
            "Success": 0, "Degraded": 0, "DurationMs": 250, "CertificateDaysLeft": 9,
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        });
        let expected_step = json!({
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [{
                "Namespace": "Synth", "Dimensions": [["check", "env", "step"]], "Metrics": counts }]},
            "check": "products", "env": "pr\"od", "run_id": "r-1",
            "Success": 1, "Degraded": 1, "DurationMs": 120, "step": "log\nin",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        });
        assert_eq!(lines, [expected_run.to_string(), expected_step.to_string()]);
    }

    #[test]
    fn by_default_only_the_runs_success_is_a_metric_and_everything_stays_in_the_records() {
        let run = RunResult {
            check: "payment".into(),
            env: "prod".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: String::new(),
            duration_ms: 300,
            status: Outcome::Passed,
            cause: None,
            steps: vec![StepResult {
                name: "login".into(),
                outcome: Outcome::Passed,
                duration_ms: 90,
                status: Some(200),
                attempts: 1,
                cause: None,
                error: None,
            }],
            account: None,
            certificate: Some(crate::http::Certificate {
                days_left: 30,
                not_after: "T".into(),
                subject: "CN=s".into(),
            }),
            trace_id: None,
        };
        let records = parsed(emf_records(&run, "Synth", MetricDetail::default()));
        let directive = &records[0]["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Metrics"], json!([{"Name": "Success", "Unit": "Count"}]));
        assert_eq!((&records[0]["DurationMs"], &records[0]["CertificateDaysLeft"]), (&json!(300), &json!(30)));
        assert!(records[1].get("_aws").is_none(), "a step is a log record, not a metric: {}", records[1]);
        assert_eq!(
            (&records[1]["step"], &records[1]["DurationMs"], &records[1]["Success"]),
            (&json!("login"), &json!(90), &json!(1))
        );
        let rejected = RunResult { status: Outcome::Failed, cause: Some(Cause::CredentialsRejected), ..run };
        let record = &parsed(emf_records(&rejected, "Synth", MetricDetail::default()))[0];
        assert!(record.get("_aws").is_none() && record.get("Success").is_none(), "{record}");
        assert_eq!(record["DurationMs"], 300);
        assert_eq!((MetricDetail::parse("all"), MetricDetail::parse("steps")), (Some(MetricDetail::All), None));
    }

    #[test]
    fn a_count_carries_its_dimensions_as_properties() {
        let record = emf_count("Synth", "PagerDutyRejected", &[("env", "prod")]);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["env"]]));
        assert_eq!(directive["Metrics"], json!([{"Name": "PagerDutyRejected", "Unit": "Count"}]));
        assert_eq!((&record["PagerDutyRejected"], &record["env"]), (&json!(1), &json!("prod")));
    }
}

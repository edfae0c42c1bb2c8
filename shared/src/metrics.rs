//! CloudWatch Embedded Metric Format records: one per run and one per step.
//!
//! EMF lines printed to stdout become metrics without an API call (and without the IAM
//! permission, latency and cost one would add to every run).

use crate::journey::{Outcome, RunResult};
use serde_json::{Value, json};
use std::sync::Mutex;
use time::OffsetDateTime;

/// Port: where metric records go.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, record: &Value);
}

/// Prints each record as one line on stdout, where Lambda's log agent picks EMF up.
pub struct StdoutEmf;

impl MetricsSink for StdoutEmf {
    fn emit(&self, record: &Value) {
        println!("{record}");
    }
}

/// In-memory sink for unit tests.
#[derive(Default)]
pub struct RecordingMetrics(Mutex<Vec<Value>>);

impl RecordingMetrics {
    pub fn records(&self) -> Vec<Value> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl MetricsSink for RecordingMetrics {
    fn emit(&self, record: &Value) {
        if let Ok(mut records) = self.0.lock() {
            records.push(record.clone());
        }
    }
}

/// The run record (dimensions check, env) followed by one record per step (plus step). The run
/// record also carries `CertificateDaysLeft` when the run saw the target's certificate, so an
/// alarm can watch the days left whatever `CERT_MIN_DAYS` says.
pub fn emf_records(run: &RunResult, namespace: &str) -> Vec<Value> {
    let timestamp = now_ms();
    let record = |step: Option<&str>, outcome: Outcome, duration_ms: u64| {
        let dimensions = match step {
            Some(_) => json!([["check", "env", "step"]]),
            None => json!([["check", "env"]]),
        };
        let mut record = json!({
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": dimensions,
                    "Metrics": [
                        {"Name": "Success", "Unit": "Count"},
                        {"Name": "Degraded", "Unit": "Count"},
                        {"Name": "DurationMs", "Unit": "Milliseconds"},
                    ],
                }],
            },
            "check": run.check,
            "env": run.env,
            "run_id": run.run_id,
            "Success": u8::from(outcome != Outcome::Failed),
            "Degraded": u8::from(outcome == Outcome::Degraded),
            "DurationMs": duration_ms,
        });
        if let Some(step) = step {
            record["step"] = json!(step);
        }
        record
    };
    let mut run_record = record(None, run.status, run.duration_ms);
    // A run whose synthetic account was rejected says nothing about the journey, so it must not
    // burn the journey's SLO: it has no Success datapoint (DurationMs still shows it ran, for the
    // heartbeat). The monitor-account incident is where it counts.
    if run.cause == Some(crate::error::Cause::CredentialsRejected) {
        if let Some(metrics) = run_record["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array_mut() {
            metrics.retain(|m| m["Name"] != "Success");
        }
        if let Some(fields) = run_record.as_object_mut() {
            fields.remove("Success");
        }
    }
    if let Some(certificate) = &run.certificate {
        if let Some(metrics) = run_record["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array_mut() {
            // Days are not a CloudWatch unit; "None" is what a plain number takes.
            metrics.push(json!({"Name": "CertificateDaysLeft", "Unit": "None"}));
        }
        run_record["CertificateDaysLeft"] = json!(certificate.days_left);
    }
    std::iter::once(run_record)
        .chain(run.steps.iter().map(|s| record(Some(&s.name), s.outcome, s.duration_ms)))
        .collect()
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
    use crate::journey::StepResult;

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
        };
        let records = emf_records(&run, "Synth");
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
        let record = &emf_records(&rejected, "Synth")[0];
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
        };
        let record = &emf_records(&run, "Synth")[0];
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
    fn a_count_carries_its_dimensions_as_properties() {
        let record = emf_count("Synth", "PagerDutyRejected", &[("env", "prod")]);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["env"]]));
        assert_eq!(directive["Metrics"], json!([{"Name": "PagerDutyRejected", "Unit": "Count"}]));
        assert_eq!((&record["PagerDutyRejected"], &record["env"]), (&json!(1), &json!("prod")));
    }
}

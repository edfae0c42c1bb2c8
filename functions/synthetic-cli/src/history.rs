//! The history file: run results as JSON lines, one per run. `run --history FILE` (or
//! `run --format json >> FILE`) appends to it; `slo --history FILE` reads it.

use crate::slo::Sample;
use std::io::Write;
use std::path::Path;
use synthetic_checks::{Check, Outcome, RunResult};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Appends each run as one JSON line, creating the file when it does not exist.
pub fn append(path: &Path, runs: &[&RunResult]) -> Result<(), String> {
    let error = |e: std::io::Error| format!("history file {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(error)?;
    let mut lines = String::new();
    for run in runs {
        lines.push_str(&serde_json::to_string(run).map_err(|e| format!("run result does not serialize: {e}"))?);
        lines.push('\n');
    }
    file.write_all(lines.as_bytes()).map_err(error)
}

/// The runs of `check` in `env` as samples: one run each, available unless it failed (degraded
/// counts as available, as in the EMF `Success` metric). Blank lines are skipped; any other line
/// that is not a run result is an error naming the line.
pub fn samples(text: &str, check: Check, env: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |what: String| format!("line {}: {what}", index + 1);
        let run: RunResult = serde_json::from_str(line)
            .map_err(|e| invalid(format!("not a run result as `run --format json` writes ({e})")))?;
        if run.check != check.name() || run.env != env {
            continue;
        }
        let started = OffsetDateTime::parse(&run.started_at, &Rfc3339)
            .map_err(|_| invalid(format!("started_at {:?} is not an RFC 3339 time", run.started_at)))?;
        let available = u64::from(run.status != Outcome::Failed);
        samples.push(Sample { at: started.unix_timestamp(), runs: 1, available });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(check: &str, env: &str, status: &str, started_at: &str) -> String {
        format!(
            r#"{{"check":"{check}","env":"{env}","target":"https://shop/","run_id":"r","started_at":"{started_at}","duration_ms":5,"status":"{status}","cause":null,"steps":[]}}"#
        )
    }

    #[test]
    fn runs_of_the_check_and_env_become_samples() {
        let text = [
            line("health", "prod", "passed", "2026-11-21T10:00:00Z"),
            String::new(),
            line("health", "prod", "degraded", "2026-11-21T10:05:00Z"),
            line("health", "prod", "failed", "2026-11-21T10:10:00Z"),
            line("health", "staging", "failed", "2026-11-21T10:10:00Z"),
            line("auth", "prod", "failed", "2026-11-21T10:10:00Z"),
        ]
        .join("\n");
        let samples = samples(&text, Check::Health, "prod").unwrap();
        let t0 = 1_795_255_200;
        assert_eq!(
            samples,
            [
                Sample { at: t0, runs: 1, available: 1 },
                Sample { at: t0 + 300, runs: 1, available: 1 },
                Sample { at: t0 + 600, runs: 1, available: 0 },
            ]
        );
    }

    #[test]
    fn a_foreign_line_is_named() {
        let text = format!("{}\n{{\"not\":\"a run\"}}\n", line("health", "prod", "passed", "2026-11-21T10:00:00Z"));
        let error = samples(&text, Check::Health, "prod").unwrap_err();
        assert!(error.starts_with("line 2: not a run result"), "{error}");
        let bad_time = line("health", "prod", "passed", "yesterday");
        assert!(samples(&bad_time, Check::Health, "prod").unwrap_err().contains("\"yesterday\""));
    }
}

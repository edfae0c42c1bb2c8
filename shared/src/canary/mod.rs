//! Canary analysis: one journey against a baseline and a canary, interleaved, then a verdict.
//!
//! `synthetic canary` and the `canary-gate` Lambda (a CodeDeploy lifecycle hook) both run it:
//! [`Collected::round`] runs the journey against both targets in turn, so both see the same
//! account, steps and assertions at the same moments (baseline, canary, baseline, ...), and
//! [`analyse`] decides with a [`Policy`] on two kinds of metric:
//! - the run failure rate: Fisher's exact test (is the canary significantly worse than the
//!   baseline?) and an absolute ceiling on the canary's rate;
//! - each step's latency: the canary's p95 (p99 too from 100 samples) against the baseline's,
//!   with a tolerance, a minimum difference worth acting on, and a Mann-Whitney U test
//!   ([`stats`]), so noise cannot decide.
//!
//! Below the minimum number of runs the verdict is `inconclusive`, whatever the numbers show.

pub mod policy;
#[cfg(test)]
mod reference;
pub mod stats;

pub use policy::Policy;

use crate::error::{Cause, CheckError};
use crate::journey::{Outcome, RunResult};
use crate::monitor::Monitor;
use serde::Serialize;
use stats::{fisher_one_sided, mann_whitney_one_sided, quantile};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The two monitors of an analysis, baseline first, reading the synthetic account through one
/// cache, so the secret is read once, not once per side.
pub fn sides(baseline: Monitor, canary: Monitor) -> [Monitor; 2] {
    let canary = canary.with_credentials(baseline.credentials());
    [baseline, canary]
}

/// How long a collection goes on: a number of rounds (one run per side each), or a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Rounds(u64),
    Duration(Duration),
}

impl Limit {
    /// Whether another round may start, `rounds` into a collection that started at `started`.
    pub fn allows(self, started: Instant, rounds: u64) -> bool {
        match self {
            Limit::Rounds(limit) => rounds < limit,
            Limit::Duration(limit) => started.elapsed() < limit,
        }
    }
}

/// The runs collected so far, per side.
#[derive(Debug, Default)]
pub struct Collected {
    pub baseline: Side,
    pub canary: Side,
    pub rounds: u64,
    /// The longest round so far, to tell whether another fits before a deadline.
    pub longest_round: Duration,
    /// The last time the monitor itself could not run (unreadable secret, misconfiguration): the
    /// sides are incomplete, so no verdict built on them can be trusted.
    pub broke: Option<CheckError>,
}

impl Collected {
    /// One round: the journey once against the baseline, then once against the canary. Returns
    /// the runs, already recorded, for whoever keeps a history of them.
    pub async fn round(&mut self, sides: &[Monitor; 2]) -> Vec<RunResult> {
        let started = Instant::now();
        let mut runs = Vec::with_capacity(2);
        for (index, monitor) in sides.iter().enumerate() {
            match monitor.run(None, None).await {
                Ok(run) => {
                    match index {
                        0 => self.baseline.record(&run),
                        _ => self.canary.record(&run),
                    }
                    runs.push(run);
                }
                Err(error) => self.broke = Some(error),
            }
        }
        self.rounds += 1;
        self.longest_round = self.longest_round.max(started.elapsed());
        runs
    }
}

/// What one side's runs came to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Side {
    pub runs: u64,
    pub failures: u64,
    /// Runs whose synthetic account was rejected: they say nothing about the version.
    pub rejected: u64,
    /// Milliseconds per step, of the attempts that answered (passed or degraded).
    pub latencies: BTreeMap<String, Vec<f64>>,
}

impl Side {
    pub fn record(&mut self, run: &RunResult) {
        if run.cause == Some(Cause::CredentialsRejected) {
            self.rejected += 1;
            return;
        }
        self.runs += 1;
        if run.status == Outcome::Failed {
            self.failures += 1;
        }
        for step in run.steps.iter().filter(|s| s.outcome != Outcome::Failed) {
            self.latencies.entry(step.name.clone()).or_default().push(step.duration_ms as f64);
        }
    }

    fn rate(&self) -> f64 {
        if self.runs == 0 { 0.0 } else { self.failures as f64 / self.runs as f64 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Promote,
    Rollback,
    Inconclusive,
}

/// One line of the report: a metric on both sides, its threshold and whether the canary holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    pub baseline: String,
    pub canary: String,
    pub threshold: String,
    pub p_value: Option<f64>,
    pub holds: bool,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    pub verdict: Verdict,
    /// The metrics that decided a rollback, or why the verdict is inconclusive.
    pub decided_by: Vec<String>,
    pub runs: [u64; 2],
    pub metrics: Vec<Metric>,
}

pub fn analyse(baseline: &Side, canary: &Side, policy: &Policy) -> Analysis {
    let mut metrics = vec![failure_rate(baseline, canary, policy)];
    for (step, canary_ms) in &canary.latencies {
        let baseline_ms = baseline.latencies.get(step).map(Vec::as_slice).unwrap_or_default();
        metrics.push(latency(step, "p95", 0.95, baseline_ms, canary_ms, policy));
        if baseline_ms.len().min(canary_ms.len()) >= policy.p99_min_samples {
            metrics.push(latency(step, "p99", 0.99, baseline_ms, canary_ms, policy));
        }
    }
    let fewest = baseline.runs.min(canary.runs);
    let rejected = baseline.rejected + canary.rejected;
    let (verdict, decided_by) = if rejected > 0 {
        let why = format!("the synthetic account was rejected in {rejected} run(s), so the monitor cannot compare");
        (Verdict::Inconclusive, vec![why])
    } else if fewest < policy.min_runs {
        let why = format!("{fewest} run(s) per side, fewer than min_runs = {}", policy.min_runs);
        (Verdict::Inconclusive, vec![why])
    } else {
        let failed: Vec<String> = metrics.iter().filter(|m| !m.holds).map(|m| m.name.clone()).collect();
        match failed.is_empty() {
            true => (Verdict::Promote, Vec::new()),
            false => (Verdict::Rollback, failed),
        }
    };
    Analysis { verdict, decided_by, runs: [baseline.runs, canary.runs], metrics }
}

fn failure_rate(baseline: &Side, canary: &Side, policy: &Policy) -> Metric {
    let p = fisher_one_sided(canary.failures, canary.runs, baseline.failures, baseline.runs);
    let over_ceiling = canary.rate() > policy.max_failure_rate;
    let worse = p < policy.failure_alpha;
    let why = match (over_ceiling, worse) {
        (true, true) => "above the ceiling and significantly above the baseline".to_string(),
        (true, false) => "above the ceiling".to_string(),
        (false, true) => "significantly above the baseline".to_string(),
        (false, false) => "within the ceiling and not significantly above the baseline".to_string(),
    };
    let show = |side: &Side| format!("{:.1}% ({}/{})", side.rate() * 100.0, side.failures, side.runs);
    Metric {
        name: "failure rate".into(),
        baseline: show(baseline),
        canary: show(canary),
        threshold: format!("<= {:.1}%, p >= {}", policy.max_failure_rate * 100.0, policy.failure_alpha),
        p_value: Some(p),
        holds: !over_ceiling && !worse,
        why,
    }
}

fn latency(step: &str, label: &str, q: f64, baseline: &[f64], canary: &[f64], policy: &Policy) -> Metric {
    let name = format!("latency {step} {label}");
    let threshold = format!(
        "<= {:.2}x (+{} ms), p >= {}",
        policy.latency_tolerance, policy.latency_min_difference_ms, policy.latency_alpha
    );
    let (Some(base), Some(cand)) = (quantile(baseline, q), quantile(canary, q)) else {
        let why = "the baseline never answered this step, so there is nothing to compare".to_string();
        return Metric { name, baseline: "-".into(), canary: "-".into(), threshold, p_value: None, holds: true, why };
    };
    let p = mann_whitney_one_sided(canary, baseline);
    let slower = cand > base * policy.latency_tolerance && cand - base >= policy.latency_min_difference_ms;
    let significant = p < policy.latency_alpha;
    let ratio = if base > 0.0 { cand / base } else { f64::INFINITY };
    let why = match (slower, significant) {
        (true, true) => format!("{ratio:.2}x the baseline, and significant"),
        (true, false) => format!("{ratio:.2}x the baseline, but not significant (noise)"),
        (false, _) if cand > base * policy.latency_tolerance => format!(
            "{ratio:.2}x the baseline, but only {:.0} ms apart, under the {} ms worth acting on",
            cand - base,
            policy.latency_min_difference_ms
        ),
        (false, _) => format!("{ratio:.2}x the baseline, within tolerance"),
    };
    Metric {
        name,
        baseline: format!("{base:.0} ms"),
        canary: format!("{cand:.0} ms"),
        threshold,
        p_value: Some(p),
        holds: !(slower && significant),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(runs: u64, failures: u64, step_ms: &[f64]) -> Side {
        Side { runs, failures, rejected: 0, latencies: BTreeMap::from([("products".to_string(), step_ms.to_vec())]) }
    }

    #[test]
    fn a_rejected_account_is_inconclusive_not_a_rollback() {
        let mut canary = side(20, 0, &around(40.0, 20));
        canary.rejected = 1;
        let a = analyse(&side(20, 0, &around(40.0, 20)), &canary, &Policy::default());
        assert_eq!(a.verdict, Verdict::Inconclusive);
        assert!(a.decided_by[0].contains("synthetic account was rejected"), "{a:#?}");
    }

    fn around(ms: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| ms + (i % 5) as f64).collect()
    }

    #[test]
    fn identical_sides_promote() {
        let a = analyse(&side(20, 0, &around(40.0, 20)), &side(20, 0, &around(40.0, 20)), &Policy::default());
        assert_eq!(a.verdict, Verdict::Promote, "{a:#?}");
    }

    #[test]
    fn a_quarter_of_failed_runs_rolls_back_on_the_failure_rate() {
        let a = analyse(&side(20, 0, &around(40.0, 20)), &side(20, 5, &around(40.0, 15)), &Policy::default());
        assert_eq!((a.verdict, a.decided_by.as_slice()), (Verdict::Rollback, ["failure rate".to_string()].as_slice()));
        assert!((a.metrics[0].p_value.unwrap() - 15_504.0 / 658_008.0).abs() < 1e-12);
    }

    #[test]
    fn fifty_percent_slower_rolls_back_on_latency_and_noise_does_not() {
        let slow = analyse(&side(20, 0, &around(40.0, 20)), &side(20, 0, &around(60.0, 20)), &Policy::default());
        assert_eq!(slow.decided_by, ["latency products p95"]);
        // 2 ms against 3 ms is 1.5x, but below the minimum difference worth acting on.
        let noise = analyse(&side(20, 0, &around(2.0, 20)), &side(20, 0, &around(3.0, 20)), &Policy::default());
        assert_eq!(noise.verdict, Verdict::Promote, "{noise:#?}");
    }

    #[test]
    fn too_few_runs_are_inconclusive_whatever_they_show() {
        let a = analyse(&side(3, 0, &around(40.0, 3)), &side(3, 3, &[]), &Policy::default());
        assert_eq!(a.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn limits_count_rounds_or_time() {
        let now = Instant::now();
        assert!(Limit::Rounds(2).allows(now, 1));
        assert!(!Limit::Rounds(2).allows(now, 2));
        assert!(Limit::Duration(Duration::from_secs(60)).allows(now, 1_000));
        assert!(!Limit::Duration(Duration::ZERO).allows(now, 0));
    }
}

//! Canary analysis: one journey against a baseline and a canary, interleaved, then a verdict.
//!
//! `synthetic canary` and the `canary-gate` Lambda (a CodeDeploy lifecycle hook) both run it:
//! [`Collected::round`] runs the journey against both targets in turn, so both see the same
//! account, steps and assertions at the same moments (baseline, canary, baseline, ...) and both
//! sides always have the same number of runs: a round that did not complete on both sides (the
//! monitor broke, the deadline cut a run) is a run of neither. [`analyse`] then judges each
//! metric with a [`Policy`], and a metric is `ok`, `fail` or `inconclusive`, never "ok" for want
//! of a comparison:
//! - the run failure rate: Fisher's exact test (is the canary significantly worse than the
//!   baseline?) and an absolute ceiling on the canary's rate, judged with its confidence like
//!   everything else: above the ceiling with confidence fails, above it without confidence (or
//!   with the baseline above it too: the service is down, not the canary) is inconclusive;
//! - each step's latency: the canary's p95 (p99 too from 100 samples) against the baseline's,
//!   with a tolerance, a minimum difference worth acting on, and a Mann-Whitney U test
//!   ([`stats`]): over the tolerance with significance fails, without it is inconclusive (more
//!   runs needed), and a step one side never answered is inconclusive.
//!
//! Runs are counted, but failed runs are slow and passing ones fast, so a side that stopped
//! answering late in a collection is few runs and much time. Time is judged too: a side that
//! failed every run (or did not answer at all before the deadline) for longer than the ceiling's
//! share of the collection time stopped answering, and the verdict is `inconclusive`.
//!
//! The verdict: `inconclusive` below the minimum number of runs or with a rejected synthetic
//! account, whatever the numbers show; else `rollback` when a metric fails; else `inconclusive`
//! when a side stopped answering or a metric is inconclusive; else `promote`.

pub mod policy;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod reference;
pub mod stats;

pub use policy::Policy;

use crate::error::{Cause, CheckError};
use crate::monitor::Monitor;
use crate::result::{Outcome, RunResult};
use serde::Serialize;
use stats::{binomial_one_sided, fisher_one_sided, mann_whitney_one_sided, quantile};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A run that ended closer than this to the deadline may have been cut by it (the journey cuts
/// an attempt to the time left, and sends none with less than 100 ms left): it is not counted.
const CUT_MARGIN: Duration = Duration::from_millis(250);

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
    /// The deadline came during a round: no round can follow it. If a run failed as it came,
    /// that round counts for neither side.
    pub cut: bool,
}

impl Collected {
    /// Whether a round of the longest length so far still fits before `deadline`, with the
    /// margin a run that ends near the deadline is discarded by.
    pub fn round_fits(&self, deadline: Option<Instant>) -> bool {
        deadline.is_none_or(|deadline| Instant::now() + self.longest_round + CUT_MARGIN < deadline)
    }

    /// One round: the journey once against the baseline, then once against the canary, each run
    /// bounded by `deadline`. Both runs are recorded, or neither: the monitor broke, or the
    /// deadline came first. A run that failed as the deadline came was cut by it, and its side is
    /// credited the round's time as time it did not answer. Returns the runs, for whoever keeps
    /// a history of them.
    pub async fn round(&mut self, sides: &[Monitor; 2], deadline: Option<Instant>) -> Vec<RunResult> {
        let started = Instant::now();
        let mut runs = Vec::with_capacity(2);
        let mut cut_side = None;
        for (index, monitor) in sides.iter().enumerate() {
            match monitor.run(None, deadline).await {
                Ok(run) => {
                    let failed = run.status == Outcome::Failed;
                    runs.push(run);
                    if deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < CUT_MARGIN) {
                        self.cut = true;
                        cut_side = failed.then_some(index);
                    }
                }
                Err(error) => {
                    self.broke = Some(error);
                    break;
                }
            }
            // No canary run starts after the deadline came: its round is incomplete anyway.
            if self.cut {
                break;
            }
        }
        let took = started.elapsed();
        self.longest_round = self.longest_round.max(took);
        match (cut_side, runs.as_slice()) {
            (None, [baseline, canary]) => {
                self.baseline.record(baseline, took);
                self.canary.record(canary, took);
                self.rounds += 1;
            }
            (Some(index), _) => {
                let (cut, other) = match index {
                    0 => (&mut self.baseline, &mut self.canary),
                    _ => (&mut self.canary, &mut self.baseline),
                };
                cut.unanswered(took);
                other.waited(took);
            }
            // The monitor broke (nothing after that can be trusted), or the deadline came
            // before the canary's turn: the caller stops.
            (None, _) => {}
        }
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
    /// The time of the rounds this side took part in (the collection's time).
    pub elapsed: Duration,
    /// The time since this side last passed a run (or since the start): it failed every run of
    /// those rounds, or a run of it was still unanswered at the deadline.
    pub failing_for: Duration,
}

impl Side {
    /// Records `run`, of a round that took `round` in all.
    pub fn record(&mut self, run: &RunResult, round: Duration) {
        self.elapsed += round;
        if run.cause == Some(Cause::CredentialsRejected) {
            self.rejected += 1;
            return;
        }
        self.runs += 1;
        if run.status == Outcome::Failed {
            self.failures += 1;
            self.failing_for += round;
        } else {
            self.failing_for = Duration::ZERO;
        }
        for step in run.steps.iter().filter(|s| s.outcome != Outcome::Failed) {
            self.latencies.entry(step.name.clone()).or_default().push(step.duration_ms as f64);
        }
    }

    /// A round in which this side's run did not answer before the deadline.
    pub fn unanswered(&mut self, round: Duration) {
        self.elapsed += round;
        self.failing_for += round;
    }

    /// A round cut on the other side: this side's run (if any) is not counted, so a side that was
    /// failing is still failing, and one that was not is not.
    pub fn waited(&mut self, round: Duration) {
        self.elapsed += round;
        if !self.failing_for.is_zero() {
            self.failing_for += round;
        }
    }

    fn rate(&self) -> f64 {
        if self.runs == 0 { 0.0 } else { self.failures as f64 / self.runs as f64 }
    }

    /// The share of the collection time this side has been failing at its end.
    fn failing_share(&self) -> f64 {
        if self.elapsed.is_zero() { 0.0 } else { self.failing_for.as_secs_f64() / self.elapsed.as_secs_f64() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Promote,
    Rollback,
    Inconclusive,
}

/// How a metric came out: within the policy, against it (with confidence), or not decidable
/// from these runs (no comparison, or a breach without confidence: more runs needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    Ok,
    Fail,
    Inconclusive,
}

impl Judgement {
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Ok => "ok",
            Judgement::Fail => "FAIL",
            Judgement::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One line of the report: a metric on both sides, its threshold and how the canary came out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    pub name: String,
    pub baseline: String,
    pub canary: String,
    pub threshold: String,
    pub p_value: Option<f64>,
    pub result: Judgement,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    pub verdict: Verdict,
    /// The metrics that decided a rollback, or why the verdict is inconclusive (a sentence, or
    /// the name of an inconclusive metric).
    pub decided_by: Vec<String>,
    pub runs: [u64; 2],
    pub metrics: Vec<Metric>,
}

pub fn analyse(baseline: &Side, canary: &Side, policy: &Policy) -> Analysis {
    let mut metrics = vec![failure_rate(baseline, canary, policy)];
    // Every step either side answered: a step only one side answered is no comparison.
    let steps: BTreeSet<&String> = baseline.latencies.keys().chain(canary.latencies.keys()).collect();
    for step in steps {
        let (baseline_ms, canary_ms) = (samples(baseline, step), samples(canary, step));
        metrics.push(latency(step, "p95", 0.95, baseline_ms, canary_ms, policy));
        if baseline_ms.len().min(canary_ms.len()) >= policy.p99_min_samples {
            metrics.push(latency(step, "p99", 0.99, baseline_ms, canary_ms, policy));
        }
    }
    let named = |result: Judgement| -> Vec<String> {
        metrics.iter().filter(|m| m.result == result).map(|m| m.name.clone()).collect()
    };
    let (failed, undecided) = (named(Judgement::Fail), named(Judgement::Inconclusive));
    let fewest = baseline.runs.min(canary.runs);
    let rejected = baseline.rejected + canary.rejected;
    let mut unknowns = Vec::new();
    if fewest < policy.min_runs {
        unknowns.push(format!("{fewest} run(s) per side, fewer than min_runs = {}", policy.min_runs));
    }
    for (name, side) in [("baseline", baseline), ("canary", canary)] {
        if side.failing_share() > policy.max_failure_rate && !side.failing_for.is_zero() {
            unknowns.push(format!(
                "the {name} stopped answering: no run of it passed in the last {:.1} s, {:.0}% of the collection \
                 (more than the {:.1}% ceiling)",
                side.failing_for.as_secs_f64(),
                side.failing_share() * 100.0,
                policy.max_failure_rate * 100.0
            ));
        }
    }
    let (verdict, decided_by) = if rejected > 0 {
        let why = format!("the synthetic account was rejected in {rejected} run(s), so the monitor cannot compare");
        (Verdict::Inconclusive, vec![why])
    } else if fewest < policy.min_runs {
        (Verdict::Inconclusive, unknowns)
    } else if !failed.is_empty() {
        (Verdict::Rollback, failed)
    } else if !unknowns.is_empty() || !undecided.is_empty() {
        (Verdict::Inconclusive, unknowns.into_iter().chain(undecided).collect())
    } else {
        (Verdict::Promote, Vec::new())
    };
    Analysis { verdict, decided_by, runs: [baseline.runs, canary.runs], metrics }
}

fn samples<'a>(side: &'a Side, step: &str) -> &'a [f64] {
    side.latencies.get(step).map(Vec::as_slice).unwrap_or_default()
}

fn failure_rate(baseline: &Side, canary: &Side, policy: &Policy) -> Metric {
    let worse_p = fisher_one_sided(canary.failures, canary.runs, baseline.failures, baseline.runs);
    let ceiling_p = binomial_one_sided(canary.failures, canary.runs, policy.max_failure_rate);
    let alpha = policy.failure_alpha;
    let over_ceiling = canary.rate() > policy.max_failure_rate;
    let (result, why) = if worse_p < alpha {
        (Judgement::Fail, "significantly above the baseline".to_string())
    } else if baseline.runs > 0 && baseline.failures == baseline.runs {
        let why = "the baseline failed every run, so there is nothing to compare the canary with";
        (Judgement::Inconclusive, why.to_string())
    } else if over_ceiling && baseline.rate() > policy.max_failure_rate {
        let why = "above the ceiling, but so is the baseline: the service fails on both sides, not the canary alone";
        (Judgement::Inconclusive, why.to_string())
    } else if over_ceiling && ceiling_p < alpha {
        (Judgement::Fail, format!("above the ceiling, with confidence (p = {ceiling_p:.4})"))
    } else if over_ceiling {
        let why = format!("above the ceiling, but not with confidence (p = {ceiling_p:.4}): more runs needed");
        (Judgement::Inconclusive, why)
    } else {
        (Judgement::Ok, "within the ceiling and not significantly above the baseline".to_string())
    };
    let show = |side: &Side| format!("{:.1}% ({}/{})", side.rate() * 100.0, side.failures, side.runs);
    Metric {
        name: "failure rate".into(),
        baseline: show(baseline),
        canary: show(canary),
        threshold: format!("<= {:.1}%, p >= {alpha}", policy.max_failure_rate * 100.0),
        p_value: Some(worse_p),
        result,
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
        let silent = if baseline.is_empty() { "baseline" } else { "canary" };
        let why = format!("the {silent} never answered this step, so there is nothing to compare");
        let show = |ms: Option<f64>| ms.map_or("-".to_string(), |ms| format!("{ms:.0} ms"));
        let (baseline, canary) = (show(quantile(baseline, q)), show(quantile(canary, q)));
        return Metric { name, baseline, canary, threshold, p_value: None, result: Judgement::Inconclusive, why };
    };
    let p = mann_whitney_one_sided(canary, baseline);
    let slower = cand > base * policy.latency_tolerance && cand - base >= policy.latency_min_difference_ms;
    let significant = p < policy.latency_alpha;
    let ratio = match base > 0.0 {
        true => format!("{:.2}x the baseline", cand / base),
        false => format!("{:.0} ms over a baseline of 0 ms", cand - base),
    };
    let (result, why) = match (slower, significant) {
        (true, true) => (Judgement::Fail, format!("{ratio}, and significant")),
        (true, false) => (Judgement::Inconclusive, format!("{ratio}, but not significant: more runs needed")),
        (false, _) if cand > base * policy.latency_tolerance => (
            Judgement::Ok,
            format!(
                "{ratio}, but only {:.0} ms apart, under the {} ms worth acting on",
                cand - base,
                policy.latency_min_difference_ms
            ),
        ),
        (false, _) => (Judgement::Ok, format!("{ratio}, within tolerance")),
    };
    Metric {
        name,
        baseline: format!("{base:.0} ms"),
        canary: format!("{cand:.0} ms"),
        threshold,
        p_value: Some(p),
        result,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(runs: u64, failures: u64, step_ms: &[f64]) -> Side {
        let latencies = BTreeMap::from([("products".to_string(), step_ms.to_vec())]);
        Side { runs, failures, latencies, ..Side::default() }
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

    /// Issue 20, item 12: every baseline run failed, so no latency had anything to compare and
    /// each "held": the canary was promoted against a dead baseline.
    #[test]
    fn a_dead_baseline_compares_nothing_so_it_is_inconclusive() {
        let dead = Side { runs: 20, failures: 20, ..Side::default() };
        let a = analyse(&dead, &side(20, 0, &around(40.0, 20)), &Policy::default());
        assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
        assert!(a.decided_by.iter().any(|why| why.contains("latency products p95")), "{a:#?}");
    }

    /// Issue 20, item 15: a p95 that doubled without significance was a pass; it needs more runs.
    #[test]
    fn slower_but_not_significant_is_inconclusive_not_promote() {
        let doubled: Vec<f64> = around(40.0, 18).into_iter().chain([90.0, 95.0]).collect();
        let a = analyse(&side(20, 0, &around(40.0, 20)), &side(20, 0, &doubled), &Policy::default());
        assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
        assert_eq!(a.decided_by, ["latency products p95"], "{a:#?}");
    }

    /// Issue 20, item 16: one failure in 20 on both sides rolled back on the 1% ceiling, while a
    /// latency must be significant to roll back. The ceiling is judged with its confidence too.
    #[test]
    fn the_ceiling_rolls_back_only_with_confidence() {
        let one_in_20 = || side(20, 1, &around(40.0, 19));
        let a = analyse(&one_in_20(), &one_in_20(), &Policy::default());
        assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
        // 2 in 20 is above 1% with confidence (binomial p = 0.017), though not worse than the
        // baseline's 0 in 20 by Fisher's test (p = 0.24).
        let a = analyse(&side(20, 0, &around(40.0, 20)), &side(20, 2, &around(40.0, 18)), &Policy::default());
        assert_eq!((a.verdict, a.decided_by.as_slice()), (Verdict::Rollback, ["failure rate".to_string()].as_slice()));
        // Half the runs failing on both sides: the service is down, not the canary.
        let half = || side(20, 10, &around(40.0, 10));
        assert_eq!(analyse(&half(), &half(), &Policy::default()).verdict, Verdict::Inconclusive);
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

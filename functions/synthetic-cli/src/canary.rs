//! `synthetic canary`: one journey against a baseline and a canary, interleaved, then a verdict.
//!
//! Both targets see the same account, steps and assertions at the same moments (baseline,
//! canary, baseline, ...). The policy decides on two kinds of metric:
//! - the run failure rate: Fisher's exact test (is the canary significantly worse than the
//!   baseline?) and an absolute ceiling on the canary's rate;
//! - each step's latency: the canary's p95 (p99 too from 100 samples) against the baseline's,
//!   with a tolerance, a minimum difference worth acting on, and a Mann-Whitney U test, so noise
//!   cannot decide.
//!
//! Below the minimum number of runs the verdict is `inconclusive`, whatever the numbers show.

use crate::run::{CheckRun, journeys, prepare, stop_after_current_check_on_signal};
use crate::stats::{fisher_one_sided, mann_whitney_one_sided, quantile};
use crate::{CanaryArgs, CanaryFormat, CheckArg, Exit, RunArgs, RunFormat, fail, history};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use synthetic_checks::{Cause, Monitor, Outcome, RunResult};
use toml::de::{DeTable, DeValue};

/// The thresholds of a canary analysis; every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// Runs per side below which the verdict is `inconclusive`.
    pub min_runs: u64,
    /// The canary's failure rate may not exceed this (0.01 = 1 %).
    pub max_failure_rate: f64,
    /// A failure rate significantly above the baseline's at this level rolls back.
    pub failure_alpha: f64,
    /// The canary's p95 (and p99) may be at most this multiple of the baseline's.
    pub latency_tolerance: f64,
    /// Differences smaller than this many milliseconds never roll back: they are noise.
    pub latency_min_difference_ms: f64,
    /// A latency difference must also be significant at this level (Mann-Whitney U).
    pub latency_alpha: f64,
    /// p99 is compared from this many samples per side.
    pub p99_min_samples: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_runs: 10,
            max_failure_rate: 0.01,
            failure_alpha: 0.05,
            latency_tolerance: 1.1,
            latency_min_difference_ms: 5.0,
            latency_alpha: 0.05,
            p99_min_samples: 100,
        }
    }
}

impl Policy {
    /// Reads a policy file; each mistake is a `file:line:column: sentence` line.
    pub fn load(path: &Path) -> Result<Policy, Vec<String>> {
        let shown = path.display().to_string();
        let source =
            std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read the policy: {e}")])?;
        Policy::parse(&source).map_err(|problems| problems.into_iter().map(|p| format!("{shown}:{p}")).collect())
    }

    pub fn parse(source: &str) -> Result<Policy, Vec<String>> {
        let position = |offset: usize| {
            let before = &source[..offset.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{line}:{column}")
        };
        let (document, syntax) = DeTable::parse_recoverable(source);
        let mut problems: Vec<String> = syntax
            .iter()
            .map(|e| format!("{}: {}", position(e.span().map_or(0, |s| s.start)), e.message().trim()))
            .collect();
        let mut policy = Policy::default();
        for (key, value) in document.get_ref().iter() {
            let at = position(value.span().start);
            let number = match value.get_ref() {
                DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
                DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                _ => None,
            };
            let Some(number) = number.filter(|n| n.is_finite() && *n >= 0.0) else {
                problems.push(format!("{at}: {} must be a non-negative number", key.get_ref()));
                continue;
            };
            let fraction = |name: &str, problems: &mut Vec<String>| {
                if number > 1.0 {
                    problems.push(format!("{at}: {name} is a fraction from 0 to 1 (0.01 = 1 %)"));
                }
                number
            };
            match key.get_ref().as_ref() {
                "min_runs" => policy.min_runs = number.max(1.0) as u64,
                "max_failure_rate" => policy.max_failure_rate = fraction("max_failure_rate", &mut problems),
                "failure_alpha" => policy.failure_alpha = fraction("failure_alpha", &mut problems),
                "latency_tolerance" if number >= 1.0 => policy.latency_tolerance = number,
                "latency_tolerance" => problems.push(format!("{at}: latency_tolerance is a ratio of at least 1.0")),
                "latency_min_difference_ms" => policy.latency_min_difference_ms = number,
                "latency_alpha" => policy.latency_alpha = fraction("latency_alpha", &mut problems),
                "p99_min_samples" => policy.p99_min_samples = number as usize,
                other => problems.push(format!(
                    "{}: unknown key {other:?}; expected one of min_runs, max_failure_rate, failure_alpha, \
                     latency_tolerance, latency_min_difference_ms, latency_alpha, p99_min_samples",
                    position(key.span().start)
                )),
            }
        }
        match problems.is_empty() {
            true => Ok(policy),
            false => Err(problems),
        }
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

impl Verdict {
    pub fn exit(self) -> Exit {
        match self {
            Verdict::Promote => Exit::Passed,
            Verdict::Rollback => Exit::Failed,
            Verdict::Inconclusive => Exit::Degraded,
        }
    }
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

pub async fn execute(args: CanaryArgs) -> Exit {
    let policy = match args.policy.as_deref().map(Policy::load).transpose() {
        Ok(policy) => policy.unwrap_or_default(),
        Err(lines) => {
            lines.iter().for_each(|l| eprintln!("{l}"));
            return Exit::Error;
        }
    };
    let side = |target: &str| RunArgs {
        check: args.check.iter().copied().collect::<Vec<CheckArg>>(),
        journey: args.journey.iter().cloned().collect(),
        target: target.to_string(),
        secret_id: args.secret_id.clone(),
        credentials_file: args.credentials_file.clone(),
        env: args.env.clone(),
        format: RunFormat::Json,
        history: None,
        publish: false,
        topic_arn: None,
        degraded_ok: true,
    };
    let (baseline_args, canary_args) = (side(&args.baseline), side(&args.canary));
    let journey = match journeys(&baseline_args) {
        Ok(mut journeys) if journeys.len() == 1 => journeys.remove(0),
        Ok(_) => return fail("canary analyses one journey: pass exactly one --check NAME or --journey FILE"),
        Err(lines) => {
            lines.iter().for_each(|l| eprintln!("{l}"));
            return Exit::Error;
        }
    };
    if let Some(path) = &args.history {
        if let Err(error) = history::append(path, &[]) {
            return fail(error);
        }
    }
    let monitors =
        match (prepare(&baseline_args, vec![journey.clone()]).await, prepare(&canary_args, vec![journey]).await) {
            (Ok(mut b), Ok(mut c)) if b.len() == 1 && c.len() == 1 => {
                // One account cache for both sides: the secret is read once, not once per side.
                let baseline = b.remove(0);
                let canary = c.remove(0).with_credentials(baseline.credentials());
                [baseline, canary]
            }
            (Err(message), _) | (_, Err(message)) => return fail(message),
            _ => return fail("expected one journey per side"),
        };
    let (baseline, canary, broke) = match collect(&monitors, &args).await {
        Ok(sides) => sides,
        Err(message) => return fail(message),
    };
    let analysis = analyse(&baseline, &canary, &policy);
    let text = match args.format {
        CanaryFormat::Table => table(&analysis, &monitors, &args),
        CanaryFormat::Json => serde_json::to_string(&analysis).map(|j| j + "\n").unwrap_or_default(),
    };
    print!("{text}");
    match broke {
        Some(error) => {
            fail(format!("the monitor could not run every check, so the analysis cannot be trusted: {error}"))
        }
        None => analysis.verdict.exit(),
    }
}

/// Runs the journey against both targets in turn until the runs or the duration are used up.
async fn collect(monitors: &[Monitor; 2], args: &CanaryArgs) -> Result<(Side, Side, Option<String>), String> {
    let interrupted = stop_after_current_check_on_signal();
    let ends = args.duration.map(|secs| Instant::now() + Duration::from_secs(secs));
    let mut sides = [Side::default(), Side::default()];
    let mut broke = None;
    let mut round = 0u64;
    eprintln!(
        "synthetic: canary analysis of {} ({} vs {})",
        monitors[0].config().journey.check,
        args.baseline,
        args.canary
    );
    while ends.map_or(round < args.runs, |ends| Instant::now() < ends) && !interrupted.load(Ordering::SeqCst) {
        round += 1;
        for (index, monitor) in monitors.iter().enumerate() {
            match monitor.run(None, None).await {
                Ok(run) => {
                    if let Some(path) = &args.history {
                        history::append(path, &[&run])?;
                    }
                    sides[index].record(&run);
                }
                Err(error) => broke = Some(CheckRun::Broke { check: monitor.config().journey.check.clone(), error }),
            }
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!("\r  round {round}: baseline {} failed, canary {} failed ", sides[0].failures, sides[1].failures);
        }
    }
    eprintln!("  {round} round(s): baseline {} failed, canary {} failed", sides[0].failures, sides[1].failures);
    let [baseline, canary] = sides;
    let broke = broke.map(|b| match b {
        CheckRun::Broke { error, .. } => error.to_string(),
        CheckRun::Ran(run) => run.check,
    });
    Ok((baseline, canary, broke))
}

fn table(analysis: &Analysis, monitors: &[Monitor; 2], args: &CanaryArgs) -> String {
    let mut out = format!(
        "canary analysis of {}: {} run(s) against the baseline {}, {} against the canary {}\n\n",
        monitors[0].config().journey.check,
        analysis.runs[0],
        args.baseline,
        analysis.runs[1],
        args.canary
    );
    out.push_str(&format!(
        "{:<28} {:>16} {:>16}  {:<34} {:>8}  {}\n",
        "METRIC", "BASELINE", "CANARY", "THRESHOLD", "P-VALUE", "RESULT"
    ));
    for m in &analysis.metrics {
        let p = m.p_value.map_or("-".to_string(), |p| format!("{p:.4}"));
        let result = if m.holds { "ok" } else { "FAIL" };
        out.push_str(&format!(
            "{:<28} {:>16} {:>16}  {:<34} {:>8}  {result}: {}\n",
            m.name, m.baseline, m.canary, m.threshold, p, m.why
        ));
    }
    let verdict = match analysis.verdict {
        Verdict::Promote => "PROMOTE".to_string(),
        Verdict::Rollback => format!("ROLLBACK, decided by: {}", analysis.decided_by.join(", ")),
        Verdict::Inconclusive => format!("INCONCLUSIVE: {}", analysis.decided_by.join(", ")),
    };
    out.push_str(&format!("\nVERDICT: {verdict}\n"));
    out
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
        assert_eq!(a.verdict.exit(), Exit::Degraded);
    }

    #[test]
    fn policy_files_are_validated_with_positions() {
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        let policy = Policy::parse("min_runs = 30\nlatency_tolerance = 1.25\nmax_failure_rate = 0.02\n").unwrap();
        assert_eq!((policy.min_runs, policy.latency_tolerance, policy.max_failure_rate), (30, 1.25, 0.02));
        let problems = Policy::parse("min_runs = \"ten\"\nmax_failure_rate = 5\ncolour = 1\n").unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("1:12: min_runs must be"), "{problems:?}");
        assert!(problems[1].starts_with("2:20: max_failure_rate is a fraction"), "{problems:?}");
        assert!(problems[2].starts_with("3:1: unknown key \"colour\""), "{problems:?}");
    }
}

//! Error-budget arithmetic. Pure: samples and an objective in, numbers out; no clock, no I/O.
//!
//! Definitions, for one check in one env, over the window `(now - window, now]`:
//!
//! - A **sample** is a number of runs at a time and how many of them were available. A run is
//!   available when it passed or was degraded, exactly like the EMF `Success` metric. A line of
//!   the history file is one run; a CloudWatch datapoint is one period (`SampleCount` runs,
//!   `Sum` available).
//! - **availability** = available runs / runs.
//! - **covered time** = runs × run interval, at most the window: each run stands for one
//!   interval. **coverage** = covered time / window.
//! - **downtime consumed** = failed runs / runs × covered time, which is failed runs × interval
//!   whenever the runs fit in the window.
//! - **allowed downtime** = (1 − target) × window. **remaining** = allowed − consumed; it is
//!   negative once the budget is overspent.
//! - **budget consumed** = consumed / allowed, in percent. Status: `HEALTHY` below 50 %,
//!   `AT RISK` below 90 %, `BURNED` otherwise.
//! - **burn rate** over the last hour (or six) = error rate of the runs in it / (1 − target):
//!   1 spends the budget exactly over the window, 14.4 over an hour spends 2 % of a 30-day budget.
//!
//! Edges:
//!
//! - **No runs** in the window: status `NO DATA`; availability, budget consumed and the burn
//!   rates are absent (never a division by zero).
//! - **A window longer than the history**: the uncovered part counts neither as uptime nor as
//!   downtime. Consumed counts only what was observed while the budget is the whole window's, so a
//!   short history can only under-report; `coverage` says how much of the window was observed.
//! - **A target of 100 %**: the allowed downtime is 0, so any failure is `BURNED` with budget
//!   consumed and burn rates infinite ([`Ratio::Infinite`]); without failures both are 0.

use serde::{Serialize, Serializer};

pub const HOUR: u64 = 3_600;

/// Runs at one time (unix seconds), and how many were available (passed or degraded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: i64,
    pub runs: u64,
    pub available: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// A fraction: above 0, at most 1.
    pub target: f64,
    pub window_secs: u64,
    pub interval_secs: u64,
}

/// A ratio that may be undefined (no data) or infinite (a 100 % target with failures).
/// Serialized as a number, `null` or the string `"infinite"`, never NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ratio {
    NoData,
    Finite(f64),
    Infinite,
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ratio::NoData => serializer.serialize_none(),
            Ratio::Finite(value) => serializer.serialize_f64(round(*value, 4)),
            Ratio::Infinite => serializer.serialize_str("infinite"),
        }
    }
}

impl Ratio {
    fn rounded(self, decimals: i32) -> Ratio {
        match self {
            Ratio::Finite(value) => Ratio::Finite(round(value, decimals)),
            other => other,
        }
    }

    /// `numerator / denominator`, where a zero denominator is infinite unless nothing was spent.
    fn of(numerator: f64, denominator: f64) -> Ratio {
        match (denominator > 0.0, numerator > 0.0) {
            (true, _) => Ratio::Finite(numerator / denominator),
            (false, true) => Ratio::Infinite,
            (false, false) => Ratio::Finite(0.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "HEALTHY")]
    Healthy,
    #[serde(rename = "AT RISK")]
    AtRisk,
    #[serde(rename = "BURNED")]
    Burned,
    #[serde(rename = "NO DATA")]
    NoData,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "HEALTHY",
            Status::AtRisk => "AT RISK",
            Status::Burned => "BURNED",
            Status::NoData => "NO DATA",
        }
    }
}

/// One check's error budget. Seconds are rounded to milliseconds, ratios to four decimals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budget {
    pub runs: u64,
    pub failed_runs: u64,
    /// Available runs / runs, as a fraction; `null` without data.
    pub availability: Option<f64>,
    pub allowed_downtime_secs: f64,
    pub downtime_consumed_secs: f64,
    pub remaining_budget_secs: f64,
    pub budget_consumed_pct: Ratio,
    pub status: Status,
    pub burn_rate_1h: Ratio,
    pub burn_rate_6h: Ratio,
    /// Fraction of the window the runs stand for.
    pub coverage: f64,
}

/// The error budget of `samples` (any order; those outside the window are ignored) at `now`.
pub fn budget(samples: &[Sample], objective: &Objective, now: i64) -> Budget {
    let window = objective.window_secs as f64;
    // Rounded, so 1 - 0.999 is 0.001 and budgets come out as the round numbers people expect.
    let error_budget = round(1.0 - objective.target, 12);
    let (runs, failed) = count(samples, now, objective.window_secs);
    let covered = (runs as f64 * objective.interval_secs as f64).min(window);
    let downtime = if runs == 0 { 0.0 } else { failed as f64 / runs as f64 * covered };
    let allowed = error_budget * window;
    // Rounded before judging, so the status agrees with the percentage shown (50.0 % is AT RISK).
    let consumed = Ratio::of(downtime * 100.0, allowed).rounded(4);
    let status = match consumed {
        _ if runs == 0 => Status::NoData,
        Ratio::Finite(pct) if pct < 50.0 => Status::Healthy,
        Ratio::Finite(pct) if pct < 90.0 => Status::AtRisk,
        _ => Status::Burned,
    };
    let burn_rate = |hours: u64| match count(samples, now, hours * HOUR) {
        (0, _) => Ratio::NoData,
        (runs, failed) => Ratio::of(failed as f64 / runs as f64, error_budget),
    };
    Budget {
        runs,
        failed_runs: failed,
        availability: (runs > 0).then(|| round((runs - failed) as f64 / runs as f64, 6)),
        allowed_downtime_secs: round(allowed, 3),
        downtime_consumed_secs: round(downtime, 3),
        remaining_budget_secs: round(allowed - downtime, 3),
        budget_consumed_pct: if runs == 0 { Ratio::NoData } else { consumed },
        status,
        burn_rate_1h: burn_rate(1),
        burn_rate_6h: burn_rate(6),
        coverage: if window > 0.0 { round(covered / window, 4) } else { 0.0 },
    }
}

/// Runs and failed runs in `(now - span, now]`.
fn count(samples: &[Sample], now: i64, span_secs: u64) -> (u64, u64) {
    let start = now.saturating_sub(i64::try_from(span_secs).unwrap_or(i64::MAX));
    samples
        .iter()
        .filter(|s| s.at > start && s.at <= now)
        .fold((0, 0), |(runs, failed), s| (runs + s.runs, failed + s.runs.saturating_sub(s.available.min(s.runs))))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `99.9` or `99.9%` as the fraction 0.999; above 0, at most 100.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        // Rounded, so 99.9 % is the fraction 0.999 and not 0.9990000000000001.
        Ok(pct) if pct > 0.0 && pct <= 100.0 => Ok(round(pct / 100.0, 12)),
        _ => Err(format!("expected a percentage above 0 and at most 100, like 99.9, got {text:?}")),
    }
}

/// `90s`, `5m`, `6h`, `30d` or `2w` as seconds; above 0.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let invalid = || format!("expected a number and a unit (s, m, h, d or w), like 30d, got {text:?}");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => HOUR,
        "d" => 24 * HOUR,
        "w" => 7 * 24 * HOUR,
        _ => return Err(invalid()),
    };
    match number.parse::<u64>().ok().and_then(|n| n.checked_mul(unit_secs)) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(invalid()),
    }
}

/// Seconds in at most the two largest units, e.g. `43m 12s`, `3d 4h`, `30d`, `-5m`, `0s`.
pub fn format_duration(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let total = secs.abs().round() as u64;
    let units = [("d", 24 * HOUR), ("h", HOUR), ("m", 60), ("s", 1)];
    let Some(first) = units.iter().position(|(_, size)| total >= *size) else {
        return "0s".to_string();
    };
    let (big, big_size) = units[first];
    let mut text = format!("{sign}{}{big}", total / big_size);
    if let Some((small, small_size)) = units.get(first + 1).filter(|(_, size)| total % big_size / size > 0) {
        text.push_str(&format!(" {}{small}", total % big_size / small_size));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: u64 = 24 * HOUR;

    fn objective(target: f64, window_secs: u64) -> Objective {
        Objective { target, window_secs, interval_secs: 300 }
    }

    /// One run every `every` seconds going back from `now`, the `failed` most recent failing.
    fn runs(count: u64, every: i64, failed: u64) -> Vec<Sample> {
        (0..count).map(|i| Sample { at: NOW - i as i64 * every, runs: 1, available: u64::from(i >= failed) }).collect()
    }

    fn approx(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-3, "{actual} != {expected}");
    }

    fn finite(ratio: Ratio) -> f64 {
        match ratio {
            Ratio::Finite(value) => value,
            other => panic!("expected a finite ratio, got {other:?}"),
        }
    }

    #[test]
    fn a_full_day_of_five_minute_runs_against_99_9() {
        // 288 runs cover the day exactly. 2 failed: 600 s down. Allowed: 0.001 × 86400 = 86.4 s,
        // so 694.4 % of the budget is gone. Both failures fall in the last hour (12 runs):
        // error rate 2/12, burn rate (2/12) / 0.001 = 166.67; over 6 h (72 runs): 27.78.
        let budget = budget(&runs(288, 300, 2), &objective(0.999, DAY), NOW);
        assert_eq!((budget.runs, budget.failed_runs), (288, 2));
        approx(budget.availability.unwrap(), 0.993056);
        approx(budget.allowed_downtime_secs, 86.4);
        approx(budget.downtime_consumed_secs, 600.0);
        approx(budget.remaining_budget_secs, -513.6);
        approx(finite(budget.budget_consumed_pct), 694.4444);
        assert_eq!(budget.status, Status::Burned);
        approx(finite(budget.burn_rate_1h), 166.6667);
        approx(finite(budget.burn_rate_6h), 27.7778);
        approx(budget.coverage, 1.0);
    }

    #[test]
    fn status_thresholds_at_50_and_90_percent() {
        // 99 % over one day of 288 runs allows 864 s. Each failed run is 300 s.
        let at = |failed| budget(&runs(288, 300, failed), &objective(0.99, DAY), NOW);
        // 1 failure: 300/864 = 34.7 %; 2: 69.4 %; 3: 104.2 %.
        assert_eq!(at(0).status, Status::Healthy);
        approx(finite(at(1).budget_consumed_pct), 34.7222);
        assert_eq!(at(1).status, Status::Healthy);
        assert_eq!(at(2).status, Status::AtRisk);
        assert_eq!(at(3).status, Status::Burned);
        approx(at(2).remaining_budget_secs, 264.0);
        // 99 % over 60000 s allows 600 s; one failed run of 200 is 300 s: exactly 50 %, AT RISK.
        let half = Objective { target: 0.99, window_secs: 60_000, interval_secs: 300 };
        let b = budget(&runs(200, 300, 1), &half, NOW);
        approx(finite(b.budget_consumed_pct), 50.0);
        assert_eq!(b.status, Status::AtRisk);
    }

    #[test]
    fn degraded_runs_count_as_available() {
        // The caller maps degraded to available, as the EMF Success metric does: a sample of 3
        // runs with 3 available (one degraded) has no downtime.
        let samples = [Sample { at: NOW - 10, runs: 3, available: 3 }];
        let budget = budget(&samples, &objective(0.999, DAY), NOW);
        assert_eq!(budget.failed_runs, 0);
        assert_eq!(budget.status, Status::Healthy);
        approx(finite(budget.burn_rate_1h), 0.0);
    }

    #[test]
    fn no_data_is_its_own_status_without_division_by_zero() {
        let old = [Sample { at: NOW - 40 * DAY as i64, runs: 5, available: 0 }];
        for samples in [&[][..], &old[..]] {
            let budget = budget(samples, &objective(0.999, 30 * DAY), NOW);
            assert_eq!(budget.status, Status::NoData);
            assert_eq!((budget.runs, budget.availability), (0, None));
            assert_eq!(budget.budget_consumed_pct, Ratio::NoData);
            assert_eq!((budget.burn_rate_1h, budget.burn_rate_6h), (Ratio::NoData, Ratio::NoData));
            approx(budget.downtime_consumed_secs, 0.0);
            approx(budget.allowed_downtime_secs, 2592.0);
            approx(budget.remaining_budget_secs, 2592.0);
            approx(budget.coverage, 0.0);
        }
        let json = serde_json::to_value(budget(&[], &objective(0.999, DAY), NOW)).unwrap();
        assert_eq!(json["status"], "NO DATA");
        assert!(json["burn_rate_1h"].is_null() && json["budget_consumed_pct"].is_null());
    }

    #[test]
    fn a_window_longer_than_the_history_reports_coverage_and_only_observed_downtime() {
        // 30-day window at 99.9 % allows 2592 s. The history is one day: 288 runs, 3 failed.
        // Covered: 288 × 300 = 86400 s, 1/30 of the window. Consumed: 3 × 300 = 900 s,
        // 34.72 % of the whole window's budget; the other 29 days are not extrapolated.
        let budget = budget(&runs(288, 300, 3), &objective(0.999, 30 * DAY), NOW);
        approx(budget.coverage, 0.0333);
        approx(budget.downtime_consumed_secs, 900.0);
        approx(finite(budget.budget_consumed_pct), 34.7222);
        approx(budget.remaining_budget_secs, 1692.0);
        assert_eq!(budget.status, Status::Healthy);
    }

    #[test]
    fn runs_denser_than_the_interval_cap_coverage_at_the_window() {
        // 24 runs in a 1 h window with a 5 min interval stand for 2 h: covered is capped at
        // 3600 s, and the 6 failed runs are a quarter of it, 900 s.
        let budget = budget(&runs(24, 150, 6), &objective(0.99, HOUR), NOW);
        approx(budget.coverage, 1.0);
        approx(budget.downtime_consumed_secs, 900.0);
        approx(budget.allowed_downtime_secs, 36.0);
    }

    #[test]
    fn a_100_percent_target_allows_nothing_and_any_failure_burns_it() {
        let perfect = objective(1.0, DAY);
        let clean = budget(&runs(288, 300, 0), &perfect, NOW);
        approx(clean.allowed_downtime_secs, 0.0);
        assert_eq!(clean.status, Status::Healthy);
        assert_eq!((clean.budget_consumed_pct, clean.burn_rate_1h), (Ratio::Finite(0.0), Ratio::Finite(0.0)));

        let one_failure = budget(&runs(288, 300, 1), &perfect, NOW);
        assert_eq!(one_failure.status, Status::Burned);
        assert_eq!(one_failure.budget_consumed_pct, Ratio::Infinite);
        assert_eq!((one_failure.burn_rate_1h, one_failure.burn_rate_6h), (Ratio::Infinite, Ratio::Infinite));
        approx(one_failure.remaining_budget_secs, -300.0);
        let json = serde_json::to_value(&one_failure).unwrap();
        assert_eq!(json["burn_rate_1h"], "infinite");
        assert_eq!(json["budget_consumed_pct"], "infinite");
    }

    #[test]
    fn burn_rates_look_only_at_their_own_span() {
        // Six runs 1 h apart, the oldest two (4 h and 5 h ago) failed: the last hour holds one
        // passing run, the last 6 h all six.
        let samples: Vec<Sample> =
            (0..6).map(|i| Sample { at: NOW - i * HOUR as i64, runs: 1, available: u64::from(i < 4) }).collect();
        let budget = budget(&samples, &objective(0.99, DAY), NOW);
        approx(finite(budget.burn_rate_1h), 0.0);
        approx(finite(budget.burn_rate_6h), (2.0 / 6.0) / 0.01);
    }

    #[test]
    fn inputs_parse_and_durations_read_back() {
        assert_eq!(parse_percent("99.9"), Ok(0.999));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        for bad in ["0", "-1", "100.1", "abc", "NaN"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("30d"), Ok(30 * DAY));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("2w"), Ok(14 * DAY));
        for bad in ["", "0m", "5", "m", "5y", "1.5h", "-5m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(2592.0), "43m 12s");
        assert_eq!(format_duration(86.4), "1m 26s");
        assert_eq!(format_duration(-513.6), "-8m 34s");
        assert_eq!(format_duration(0.2), "0s");
        assert_eq!(format_duration(30.0 * DAY as f64), "30d");
        assert_eq!(format_duration(-300.0), "-5m");
        assert_eq!(format_duration(45.0), "45s");
    }
}

//! Multi-window burn rates of a check's availability SLO, computed from the runs the forwarder
//! sees, so no CloudWatch alarm per check is needed (issue 22).
//!
//! The semantics are the ones the per-check composite alarms had (Google SRE workbook, "Alerting
//! on SLOs", multiwindow multi-burn-rate), per check and region:
//!
//! - **fast burn** (`slo-fast-burn`): the failed share of the runs is at least 14.4x the error
//!   budget (`100 - SLO_TARGET_PERCENT` %) over both the last hour and the last 5 minutes: 2% of a
//!   30-day budget gone in an hour;
//! - **slow burn** (`slo-slow-burn`): at least 6x over both the last 6 hours and the last 30
//!   minutes: 5% of the budget gone in 6 hours;
//! - the long windows count only from [`MIN_FAILED`] failed runs: at 12 runs an hour one failed
//!   run is already 16.7x the budget of a 99.5% SLO and would page alone.
//!
//! A degraded run counts as available (as the `Success` metric did); a run whose account was
//! rejected is not the check's and never reaches here. Windows are whole five-minute periods,
//! aligned to the epoch as CloudWatch aligns its datapoints: the window of W minutes at a run is
//! the W/5 periods ending with the run's own. The state kept is one counter pair per period and
//! region for the longest window, at most [`KEPT`] entries per region (about 1 KB), whatever the
//! schedule, so the record stays small however long the check runs.
//!
//! A change of a burn state is handed to [`incident::apply_alarm`] exactly as the composite
//! alarms' notifications were: it joins an open incident, confirms a failing run, or opens the
//! check's own low-urgency `slo-burn` incident while the runs pass.

use crate::incident::{self, Action, AlarmChange, Policy, State};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

pub const FAST: &str = "slo-fast-burn";
pub const SLOW: &str = "slo-slow-burn";

/// One period of the windows, in seconds.
const PERIOD: i64 = 300;
/// The periods of the longest window (6 hours).
pub const KEPT: i64 = 72;
/// Failed runs a long window needs before its burn rate counts.
pub const MIN_FAILED: u32 = 2;

/// `(name, long window, short window, threshold)`, windows in periods.
const WINDOWS: [(&str, i64, i64, f64); 2] = [(FAST, 12, 1, 14.4), (SLOW, KEPT, 6, 6.0)];

/// Runs and failed runs of one period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period(pub i64, pub u32, pub u32);

/// The per-period counters of each region, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Burn {
    #[serde(default)]
    pub regions: BTreeMap<String, Vec<Period>>,
    /// The burn alarms (`<name>@<region>`) these counters last put in ALARM: a change is
    /// decided against them, not against what an alarm notification may have said.
    #[serde(default)]
    pub firing: BTreeSet<String>,
}

fn period_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(PERIOD)
}

/// Whether `failed` of `runs` burn the budget of `slo_percent` at least `threshold` times too
/// fast. The same expression as the alarms' metric math, with a tolerance for the IEEE rounding
/// of a share exactly at the threshold.
pub fn burning(failed: u32, runs: u32, slo_percent: f64, threshold: f64) -> bool {
    runs > 0 && f64::from(failed) / f64::from(runs) * 100.0 / (100.0 - slo_percent) >= threshold - 1e-9
}

/// Whether the windows say ALARM for `name`, given `(runs, failed)` over the long and the short
/// window.
pub fn in_alarm(long: (u32, u32), short: (u32, u32), threshold: f64, slo_percent: f64) -> bool {
    long.1 >= MIN_FAILED
        && burning(long.1, long.0, slo_percent, threshold)
        && burning(short.1, short.0, slo_percent, threshold)
}

impl Burn {
    /// Counts one run of `region` and returns the state of each burn alarm for that region after
    /// it, as `(name, in alarm)`. Runs reach here in order per region (late ones are dropped
    /// before), and periods older than the longest window are forgotten.
    pub fn observe(
        &mut self,
        region: &str,
        at: OffsetDateTime,
        failed: bool,
        slo_percent: f64,
    ) -> [(&'static str, bool); 2] {
        let now = period_of(at);
        let periods = self.regions.entry(region.to_string()).or_default();
        match periods.last_mut() {
            Some(last) if last.0 == now => {
                last.1 += 1;
                last.2 += u32::from(failed);
            }
            _ => periods.push(Period(now, 1, u32::from(failed))),
        }
        periods.retain(|p| p.0 > now - KEPT);
        // A region that stopped reporting for longer than the longest window is forgotten.
        self.regions.retain(|_, periods| periods.last().is_some_and(|p| p.0 > now - KEPT));
        let periods = self.regions.get(region).map(Vec::as_slice).unwrap_or_default();
        let window = |length: i64| {
            periods.iter().filter(|p| p.0 > now - length).fold((0, 0), |(runs, failed), p| (runs + p.1, failed + p.2))
        };
        WINDOWS
            .map(|(name, long, short, threshold)| (name, in_alarm(window(long), window(short), threshold, slo_percent)))
    }
}

/// Counts a run of the check whose `state` this is, and applies each burn alarm that changed
/// state, as the alarm's notification would have been. `failed` is the run's `Success == 0`.
pub fn apply_run(
    state: &mut State,
    region: &str,
    at: OffsetDateTime,
    failed: bool,
    silenced: bool,
    policy: &Policy,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (kind, alarm) in state.burn.observe(region, at, failed, policy.slo_target_percent) {
        let key = format!("{kind}@{region}");
        let changed = match alarm {
            true => state.burn.firing.insert(key),
            false => state.burn.firing.remove(&key),
        };
        if changed {
            let change = AlarmChange { kind, region, at, alarm };
            actions.extend(incident::apply_alarm(state, &change, silenced, policy));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::datetime;

    /// Aligned to a period, like the alarm replays: run `i` is minute `5 i`.
    const START: OffsetDateTime = datetime!(2026-11-21 00:00 UTC);

    /// The states after each run of a 5-minute schedule, `true` failed.
    fn replay(runs: &[bool]) -> Vec<[(&'static str, bool); 2]> {
        let mut burn = Burn::default();
        runs.iter()
            .enumerate()
            .map(|(i, failed)| burn.observe("us-east-1", START + Duration::minutes(5 * i as i64), *failed, 99.5))
            .collect()
    }

    fn fast(states: &[[(&str, bool); 2]]) -> Vec<bool> {
        states.iter().map(|s| s[0].1).collect()
    }

    fn passes_then(after: &[bool]) -> Vec<bool> {
        [vec![false; 72], after.to_vec()].concat()
    }

    // The scenarios the template's alarms were tested with (tests/src/alarm_eval.rs, issue 13).

    #[test]
    fn one_failed_run_burns_nothing() {
        let states = replay(&passes_then(&[[true].as_slice(), [false; 12].as_slice()].concat()));
        assert!(states.iter().all(|s| !s[0].1 && !s[1].1), "the long windows need 2 failed runs");
    }

    #[test]
    fn a_30_minute_outage_burns_fast_from_the_second_failure_until_the_first_pass() {
        let states = replay(&passes_then(&[[true; 6].as_slice(), [false; 12].as_slice()].concat()));
        let fast = fast(&states);
        let alarms: Vec<usize> = (1..fast.len()).filter(|&i| fast[i] && !fast[i - 1]).collect();
        assert_eq!(alarms, [73], "one alarm, on the 2nd failed run");
        assert_eq!(fast.iter().rposition(|a| *a), Some(77), "back to OK with the first pass (run 78)");
        let slow: Vec<bool> = states.iter().map(|s| s[1].1).collect();
        assert!(!slow[73], "2 of 72 runs are 5.6x the budget over 6 h, under the slow burn's 6x");
        assert!(slow[74], "3 of 72 are 8.3x");
        assert_eq!(slow.iter().rposition(|a| *a), Some(82), "it ends once 30 minutes pass without a failure");
    }

    #[test]
    fn intermittent_failures_burn_slowly_while_the_latest_run_passes() {
        // One failure an hour over 6 hours: 1 of 12 is 16.7x, but one failed run in the hour.
        // Two failures in 30 minutes every hour: 2 of 12 runs in the hour, the slow burn's 6x.
        let mut runs = vec![false; 72];
        for _ in 0..6 {
            runs.extend([vec![true, false, true], vec![false; 9]].concat());
        }
        let states = replay(&runs);
        let passing_in_alarm = states.iter().zip(&runs).filter(|(s, failed)| s[1].1 && !**failed).count();
        assert!(passing_in_alarm > 0, "the slow burn stays in ALARM over passing runs");
    }

    #[test]
    fn the_slo_target_sets_the_budget() {
        assert!(in_alarm((12, 2), (1, 1), 14.4, 99.0));
        // 2 of 12 failed is 16.7%: 16.7x a 99% budget, 3.3x a 95% budget.
        assert!(!in_alarm((12, 2), (1, 1), 14.4, 95.0));
        assert!(burning(1, 14, 99.5, 14.28), "a share exactly at the threshold counts");
    }

    #[test]
    fn the_state_stays_within_the_longest_window() {
        let mut burn = Burn::default();
        for minute in 0..(24 * 60) {
            burn.observe("eu-west-1", START + Duration::minutes(minute), minute % 7 == 0, 99.5);
        }
        burn.observe("us-east-1", START + Duration::hours(30), false, 99.5);
        assert_eq!(burn.regions.len(), 1, "a region silent for longer than 6 h is forgotten");
        burn.observe("eu-west-1", START + Duration::hours(30), false, 99.5);
        assert!(burn.regions.values().all(|p| p.len() <= KEPT as usize));
        let size = serde_json::to_string(&burn).unwrap().len();
        assert!(size < 1_000, "{size} bytes");
    }

    /// The reference model: every run kept, each window counted from all of them.
    fn model(runs: &[(i64, usize, bool)], upto: usize) -> [(&'static str, bool); 2] {
        let (at, region, _) = runs[upto];
        let now = at.div_euclid(PERIOD);
        let count = |length: i64| {
            runs[..=upto]
                .iter()
                .filter(|(t, r, _)| *r == region && t.div_euclid(PERIOD) > now - length)
                .fold((0, 0), |(n, f), (_, _, failed)| (n + 1, f + u32::from(*failed)))
        };
        WINDOWS.map(|(name, long, short, threshold)| (name, in_alarm(count(long), count(short), threshold, 99.5)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Over generated runs of two regions (gaps from 20 s to 8 h, outages and flapping), the
        /// bounded counters, stored and read back as the table would, say what the full history
        /// says, after every run.
        #[test]
        fn the_counters_agree_with_the_whole_history(
            steps in prop::collection::vec((prop_oneof![8 => 20i64..900, 1 => 900i64..28_800], 0usize..2, prop::bool::weighted(0.3)), 1..250)
        ) {
            let mut runs = Vec::new();
            let mut last = START.unix_timestamp();
            for (gap, region, failed) in steps {
                last += gap;
                runs.push((last, region, failed));
            }
            let mut stored = String::from("{}");
            for i in 0..runs.len() {
                let (at, region, failed) = runs[i];
                let mut burn: Burn = serde_json::from_str(&stored).unwrap();
                let got = burn.observe(["r0", "r1"][region], OffsetDateTime::from_unix_timestamp(at).unwrap(), failed, 99.5);
                let per_region: Vec<(i64, usize, bool)> = runs[..=i].iter().copied().filter(|r| r.1 == region).collect();
                prop_assert_eq!(got, model(&per_region, per_region.len() - 1), "run {}", i);
                prop_assert!(burn.regions.values().all(|p| p.len() <= KEPT as usize));
                stored = serde_json::to_string(&burn).unwrap();
            }
        }
    }
}

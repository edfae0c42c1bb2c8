//! When runs become incidents: confirmation, recovery, flapping, regions and silences.
//!
//! Pure decisions over one subject's [`State`] (a check, or the shared monitor account), so the
//! whole policy is unit-tested without a table or a clock. Every decision is taken from the
//! runs' own timestamps, never from the time of delivery: a late or replayed run cannot reorder
//! history (it is ignored, see [`Applied::Late`]), and a test can compress six hours into a
//! second.
//!
//! - **Confirmation.** From one vantage point, a subject pages after
//!   [`Policy::page_after_failed_runs`] consecutive failed runs. With several regions it pages
//!   once [`Policy::region_quorum`] regions see it failing within one schedule period; one region
//!   alone never pages. Until then a failure is one warning to the human channels per episode.
//! - **Recovery.** An incident resolves after [`Policy::resolve_after_passed_runs`] passing runs
//!   (in enough regions that fewer than a quorum still fail).
//! - **Flapping.** [`Policy::flap_changes`] changes of health within [`Policy::flap_window`] mark
//!   the subject flapping: its incident stays open, says so, and resolves only after
//!   [`Policy::flap_window`] without a failed run.
//! - **Silences.** A silenced subject records its runs and pages nothing; a subject still failing
//!   when the silence ends pages on its next run.
//! - **Burn-rate alarms** ([`apply_alarm`]) join the subject's incident while it is failing (and
//!   confirm a failure from one vantage point), and page on their own, at low urgency, only for
//!   the slow burn no run shows: while the subject passes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

/// The policy's knobs, from the forwarder's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub page_after_failed_runs: u32,
    pub resolve_after_passed_runs: u32,
    /// The regions the checks run in. Fewer than two: confirmation comes from consecutive runs.
    pub regions: Vec<String>,
    pub region_quorum: usize,
    /// The checks' schedule: a region's latest run counts while it is younger than 1.5 of it.
    pub period: Duration,
    pub flap_changes: usize,
    pub flap_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            page_after_failed_runs: 2,
            resolve_after_passed_runs: 1,
            regions: Vec::new(),
            region_quorum: 2,
            period: Duration::minutes(5),
            flap_changes: 4,
            flap_window: Duration::hours(1),
        }
    }
}

impl Policy {
    fn multi_region(&self) -> bool {
        self.regions.len() >= 2
    }
}

/// One subject's history, as stored in the state table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub regions: BTreeMap<String, RegionState>,
    /// Whether the subject was unhealthy after the last run (failing from enough vantage points).
    #[serde(default)]
    pub unhealthy: bool,
    /// When its health changed, within the flap window.
    #[serde(default, with = "times")]
    pub changes: Vec<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_failure: Option<OffsetDateTime>,
    #[serde(default)]
    pub incident: Option<Incident>,
    /// A warning went to the human channels for the current failure episode.
    #[serde(default)]
    pub warned: bool,
    /// The low-urgency incident a burn-rate alarm opened on its own.
    #[serde(default)]
    pub burn_incident: bool,
    /// Burn-rate alarm states by `<alarm kind>@<region>`, with the time of the last change.
    #[serde(default)]
    pub alarms: BTreeMap<String, AlarmState>,
    /// The newest run's target, so an alarm's page can say where.
    #[serde(default)]
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    #[serde(with = "time::serde::rfc3339")]
    pub last_run: OffsetDateTime,
    pub last_failed: bool,
    pub failed_streak: u32,
    pub passed_streak: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(with = "time::serde::rfc3339")]
    pub opened: OffsetDateTime,
    pub flapping: bool,
    /// The regions that saw the failure when it paged.
    pub regions: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmState {
    pub alarm: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One run of a subject, as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Run<'a> {
    pub region: &'a str,
    pub at: OffsetDateTime,
    pub failed: bool,
    pub target: &'a str,
}

/// One burn-rate alarm's change of state.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmChange<'a> {
    /// `slo-fast-burn` or `slo-slow-burn`.
    pub kind: &'a str,
    pub region: &'a str,
    pub at: OffsetDateTime,
    pub alarm: bool,
}

/// What the forwarder must do after a run or an alarm, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Open the subject's incident (critical, or the run's own severity).
    Page {
        reason: String,
        regions: Vec<String>,
        flapping: bool,
    },
    /// Add to the open incident (a trigger PagerDuty deduplicates into it).
    Update {
        reason: String,
        flapping: bool,
    },
    Resolve {
        reason: String,
    },
    /// Open the low-urgency incident of a burn-rate alarm.
    PageBurn {
        reason: String,
    },
    ResolveBurn {
        reason: String,
    },
    /// One message to the human channels; no page.
    Warn {
        reason: String,
    },
}

/// The outcome of applying a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Actions(Vec<Action>),
    /// Not newer than the region's last run: a duplicate, a Lambda retry or a late delivery.
    Late,
}

/// Applies one run. `silenced` is whether a silence covers the run's time.
pub fn apply_run(state: &mut State, run: &Run, silenced: bool, policy: &Policy) -> Applied {
    if state.regions.get(run.region).is_some_and(|known| known.last_run >= run.at) {
        return Applied::Late;
    }
    let region = state.regions.entry(run.region.to_string()).or_insert(RegionState {
        last_run: run.at,
        last_failed: false,
        failed_streak: 0,
        passed_streak: 0,
    });
    region.last_run = run.at;
    region.last_failed = run.failed;
    if run.failed {
        region.failed_streak += 1;
        region.passed_streak = 0;
        state.last_failure = Some(state.last_failure.map_or(run.at, |t| t.max(run.at)));
    } else {
        region.passed_streak += 1;
        region.failed_streak = 0;
    }
    if !run.target.is_empty() {
        state.target = run.target.to_string();
    }

    let view = View::of(state, run.at, policy);
    if view.unhealthy != state.unhealthy {
        state.unhealthy = view.unhealthy;
        state.changes.push(run.at);
    }
    state.changes.retain(|t| run.at - *t < policy.flap_window);
    let flapping = state.changes.len() >= policy.flap_changes;

    let mut actions = Vec::new();
    match state.incident.as_mut() {
        None if view.confirmed && !silenced => {
            state.incident = Some(Incident { opened: run.at, flapping, regions: view.failing.clone() });
            state.warned = true;
            actions.push(Action::Page { reason: view.confirmation(policy), regions: view.failing, flapping });
        }
        None => {
            if view.failing.is_empty() {
                state.warned = false;
            } else if !state.warned && !silenced {
                state.warned = true;
                actions.push(Action::Warn { reason: view.unconfirmed(policy) });
            }
        }
        Some(incident) => {
            if flapping && !incident.flapping {
                incident.flapping = true;
                actions.push(Action::Update {
                    reason: format!(
                        "flapping: {} changes of health within {} min; the incident stays open until {} min pass without a failed run",
                        state.changes.len(),
                        policy.flap_window.whole_minutes(),
                        policy.flap_window.whole_minutes()
                    ),
                    flapping: true,
                });
            }
            let quiet = state.last_failure.is_none_or(|t| run.at - t >= policy.flap_window);
            if view.recovered && (!incident.flapping || quiet) {
                let reason = match incident.flapping {
                    true => format!("no failed run for {} min after flapping", policy.flap_window.whole_minutes()),
                    false => view.recovery(policy),
                };
                state.incident = None;
                state.warned = false;
                actions.push(Action::Resolve { reason });
            }
        }
    }
    Applied::Actions(actions)
}

/// Applies one burn-rate alarm change. A change no newer than the last one of the same alarm in
/// the same region is a late or repeated delivery (a Lambda retry) and changes nothing.
pub fn apply_alarm(state: &mut State, change: &AlarmChange, silenced: bool, policy: &Policy) -> Vec<Action> {
    let key = format!("{}@{}", change.kind, change.region);
    if state.alarms.get(&key).is_some_and(|known| known.at >= change.at) {
        return Vec::new();
    }
    state.alarms.insert(key, AlarmState { alarm: change.alarm, at: change.at });
    let in_alarm =
        state.alarms.iter().filter(|(key, alarm)| alarm.alarm && key.starts_with(&format!("{}@", change.kind))).count();
    let any_alarm = state.alarms.values().any(|a| a.alarm);
    let needed = if policy.multi_region() { policy.region_quorum } else { 1 };
    // From one vantage point the newest run speaks for the subject, whatever its region is called.
    let region_failing = match policy.multi_region() {
        true => state.regions.get(change.region).is_some_and(|r| r.last_failed),
        false => state.regions.values().max_by_key(|r| r.last_run).is_some_and(|r| r.last_failed),
    };
    let what = format!("{} in ALARM ({})", change.kind, change.region);

    let mut actions = Vec::new();
    if change.alarm {
        if silenced {
            return actions;
        }
        if state.incident.is_some() {
            let flapping = state.incident.as_ref().is_some_and(|i| i.flapping);
            actions.push(Action::Update { reason: format!("{what}: joins the open incident"), flapping });
        } else if region_failing && !policy.multi_region() {
            // From one vantage point the alarm is a second witness of the failing run: it confirms.
            let flapping = state.changes.len() >= policy.flap_changes;
            let regions = vec![change.region.to_string()];
            state.incident = Some(Incident { opened: change.at, flapping, regions: regions.clone() });
            state.warned = true;
            actions.push(Action::Page { reason: format!("{what} while the latest run failed"), regions, flapping });
        } else if region_failing {
            // One region's alarm is that region's failure; the runs' quorum decides.
        } else if in_alarm >= needed && !state.burn_incident {
            state.burn_incident = true;
            actions.push(Action::PageBurn {
                reason: format!(
                    "{what}: the error budget burns though the latest runs pass (intermittent failures); low urgency"
                ),
            });
        }
    } else if state.burn_incident && !any_alarm {
        state.burn_incident = false;
        actions.push(Action::ResolveBurn { reason: format!("{} back to OK ({})", change.kind, change.region) });
    }
    actions
}

/// The subject's health as of one run.
struct View {
    /// Regions whose latest (recent) run failed.
    failing: Vec<String>,
    unhealthy: bool,
    confirmed: bool,
    recovered: bool,
    streak: u32,
}

impl View {
    fn of(state: &State, at: OffsetDateTime, policy: &Policy) -> View {
        let horizon = policy.period + policy.period / 2;
        let recent: Vec<(&String, &RegionState)> =
            state.regions.iter().filter(|(_, r)| at - r.last_run < horizon).collect();
        let failing: Vec<String> =
            recent.iter().filter(|(_, r)| r.last_failed).map(|(name, _)| name.to_string()).collect();
        if policy.multi_region() {
            let not_recovered = recent
                .iter()
                .filter(|(_, r)| r.last_failed || r.passed_streak < policy.resolve_after_passed_runs)
                .count();
            View {
                unhealthy: failing.len() >= policy.region_quorum,
                confirmed: failing.len() >= policy.region_quorum,
                recovered: not_recovered < policy.region_quorum,
                failing,
                streak: 0,
            }
        } else {
            // One vantage point: the newest run's region speaks for the subject.
            let latest = state.regions.values().max_by_key(|r| r.last_run);
            let failed_streak = latest.map_or(0, |r| r.failed_streak);
            View {
                unhealthy: latest.is_some_and(|r| r.last_failed),
                confirmed: failed_streak >= policy.page_after_failed_runs,
                recovered: latest.is_some_and(|r| r.passed_streak >= policy.resolve_after_passed_runs),
                failing,
                streak: failed_streak,
            }
        }
    }

    fn confirmation(&self, policy: &Policy) -> String {
        match policy.multi_region() {
            true => format!(
                "confirmed from {} of {} regions ({}), quorum {}",
                self.failing.len(),
                policy.regions.len(),
                self.failing.join(", "),
                policy.region_quorum
            ),
            false => format!("confirmed by {} consecutive failed runs", self.streak),
        }
    }

    fn unconfirmed(&self, policy: &Policy) -> String {
        match policy.multi_region() {
            true => format!(
                "region health: failing from {} only ({} of {} regions; pages when {} regions see it)",
                self.failing.join(", "),
                self.failing.len(),
                policy.regions.len(),
                policy.region_quorum
            ),
            false => format!(
                "{} failed run(s); pages after {} consecutive failed runs",
                self.streak, policy.page_after_failed_runs
            ),
        }
    }

    fn recovery(&self, policy: &Policy) -> String {
        format!("{} passing run(s)", policy.resolve_after_passed_runs)
    }
}

/// RFC 3339 lists, for the flap window's change times.
mod times {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(times: &[OffsetDateTime], serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wrapped<'a>(#[serde(with = "time::serde::rfc3339")] &'a OffsetDateTime);
        serializer.collect_seq(times.iter().map(Wrapped))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
        Ok(Vec::<Wrapped>::deserialize(deserializer)?.into_iter().map(|w| w.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-21 00:00 UTC);

    /// Replays a run sequence from one region every 5 minutes; returns every action with the
    /// minute it happened.
    fn replay(policy: &Policy, runs: &[(i64, &str, bool)], silence: Option<(i64, i64)>) -> Vec<(i64, Action)> {
        let mut state = State::default();
        let mut out = Vec::new();
        for &(minute, region, failed) in runs {
            let at = T0 + Duration::minutes(minute);
            let silenced = silence.is_some_and(|(from, to)| (from..to).contains(&minute));
            let run = Run { region, at, failed, target: "https://shop.example.com" };
            if let Applied::Actions(actions) = apply_run(&mut state, &run, silenced, policy) {
                out.extend(actions.into_iter().map(|a| (minute, a)));
            }
        }
        out
    }

    fn pages(actions: &[(i64, Action)]) -> Vec<(i64, &'static str)> {
        actions
            .iter()
            .filter_map(|(m, a)| match a {
                Action::Page { .. } => Some((*m, "page")),
                Action::Resolve { .. } => Some((*m, "resolve")),
                Action::PageBurn { .. } => Some((*m, "page_burn")),
                _ => None,
            })
            .collect()
    }

    fn every_5_min(from: i64, to: i64, failed: impl Fn(i64) -> bool) -> Vec<(i64, &'static str, bool)> {
        (from..to).step_by(5).map(|m| (m, "us-east-1", failed(m))).collect()
    }

    #[test]
    fn one_failed_run_is_one_warning_and_no_page() {
        let actions = replay(&Policy::default(), &every_5_min(0, 60, |m| m == 20), None);
        assert_eq!(pages(&actions), []);
        let warnings: Vec<_> = actions.iter().filter(|(_, a)| matches!(a, Action::Warn { .. })).collect();
        assert_eq!(warnings.len(), 1, "{actions:?}");
    }

    #[test]
    fn a_hard_outage_pages_on_the_second_failed_run_and_resolves_on_the_first_pass() {
        let actions = replay(&Policy::default(), &every_5_min(0, 120, |m| (30..60).contains(&m)), None);
        assert_eq!(pages(&actions), [(35, "page"), (60, "resolve")]);
    }

    #[test]
    fn flapping_keeps_the_second_incident_open_until_an_hour_of_passes() {
        // Two failed runs in every six, for six hours, then passes.
        let actions = replay(&Policy::default(), &every_5_min(0, 480, |m| m < 360 && m % 30 < 10), None);
        assert_eq!(pages(&actions), [(5, "page"), (10, "resolve"), (35, "page"), (395, "resolve")]);
        let marked = actions.iter().any(|(m, a)| *m == 40 && matches!(a, Action::Update { flapping: true, .. }));
        assert!(marked, "{actions:?}");
    }

    #[test]
    fn a_silence_holds_the_page_until_it_ends() {
        let actions = replay(&Policy::default(), &every_5_min(0, 180, |m| (20..150).contains(&m)), Some((10, 70)));
        assert_eq!(pages(&actions), [(70, "page"), (150, "resolve")]);
    }

    fn three_regions() -> Policy {
        Policy { regions: vec!["a".into(), "b".into(), "c".into()], ..Policy::default() }
    }

    fn regional(minutes: i64, failing: &[&'static str]) -> Vec<(i64, &'static str, bool)> {
        let mut runs = Vec::new();
        for minute in (0..minutes).step_by(5) {
            for (offset, region) in [(0, "a"), (1, "b"), (2, "c")] {
                let failed = failing.contains(&region) && (20..80).contains(&minute);
                runs.push((minute * 60 + offset * 40, region, failed));
            }
        }
        runs
    }

    fn replay_seconds(policy: &Policy, runs: &[(i64, &str, bool)]) -> Vec<(i64, Action)> {
        let runs: Vec<_> = runs.iter().map(|&(s, r, f)| (s, r, f)).collect();
        let mut state = State::default();
        let mut out = Vec::new();
        for (second, region, failed) in runs {
            let run = Run { region, at: T0 + Duration::seconds(second), failed, target: "" };
            if let Applied::Actions(actions) = apply_run(&mut state, &run, false, policy) {
                out.extend(actions.into_iter().map(|a| (second, a)));
            }
        }
        out
    }

    #[test]
    fn one_failing_region_of_three_is_a_warning_two_are_a_page() {
        let one = replay_seconds(&three_regions(), &regional(120, &["b"]));
        assert_eq!(pages(&one), []);
        let warnings: Vec<_> = one.iter().filter(|(_, a)| matches!(a, Action::Warn { .. })).collect();
        assert_eq!(warnings.len(), 1, "{one:?}");

        let two = replay_seconds(&three_regions(), &regional(120, &["a", "c"]));
        assert_eq!(pages(&two), [(20 * 60 + 80, "page"), (80 * 60, "resolve")], "{two:?}");
    }

    #[test]
    fn a_late_or_repeated_run_changes_nothing() {
        let policy = Policy::default();
        let mut state = State::default();
        let run = |minute: i64, failed| Run { region: "x", at: T0 + Duration::minutes(minute), failed, target: "" };
        assert!(matches!(apply_run(&mut state, &run(0, true), false, &policy), Applied::Actions(_)));
        let before = state.clone();
        assert_eq!(apply_run(&mut state, &run(0, true), false, &policy), Applied::Late);
        assert_eq!(apply_run(&mut state, &run(-5, false), false, &policy), Applied::Late);
        assert_eq!(state, before);
    }

    #[test]
    fn a_burn_alarm_joins_a_failing_check_and_pages_alone_only_while_runs_pass() {
        let policy = Policy::default();
        let mut state = State::default();
        let run = |minute: i64, failed| Run { region: "x", at: T0 + Duration::minutes(minute), failed, target: "" };
        let alarm = |minute: i64, alarm| AlarmChange {
            kind: "slo-fast-burn",
            region: "x",
            at: T0 + Duration::minutes(minute) + Duration::seconds(30),
            alarm,
        };
        apply_run(&mut state, &run(0, true), false, &policy);
        let confirmed = apply_alarm(&mut state, &alarm(0, true), false, &policy);
        assert!(matches!(confirmed[..], [Action::Page { .. }]), "{confirmed:?}");
        assert_eq!(
            apply_run(&mut state, &run(5, false), false, &policy),
            Applied::Actions(vec![Action::Resolve { reason: "1 passing run(s)".into() }])
        );
        assert_eq!(apply_alarm(&mut state, &alarm(5, false), false, &policy), []);

        apply_run(&mut state, &run(10, false), false, &policy);
        let slow = AlarmChange { kind: "slo-slow-burn", ..alarm(10, true) };
        assert!(matches!(apply_alarm(&mut state, &slow, false, &policy)[..], [Action::PageBurn { .. }]));
        assert_eq!(apply_alarm(&mut state, &slow, false, &policy), [], "already open");
        let ok = AlarmChange { kind: "slo-slow-burn", ..alarm(20, false) };
        assert!(matches!(apply_alarm(&mut state, &ok, false, &policy)[..], [Action::ResolveBurn { .. }]));
        assert_eq!(apply_alarm(&mut state, &alarm(3, true), true, &policy), [], "an older change is ignored");
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = State::default();
        let run = Run { region: "eu-west-1", at: T0, failed: true, target: "https://x" };
        apply_run(&mut state, &run, false, &Policy::default());
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
    }
}

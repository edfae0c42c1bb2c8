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
use synthetic_checks::alert::Severity;
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
    /// How long one region may fail, below the quorum, before it is a region incident.
    pub region_incident_after: Duration,
    /// How long a subject with an open incident may report nothing before it is an orphan.
    pub orphan_after: Duration,
    /// The availability SLO the burn rates are measured against ([`crate::burn`]).
    pub slo_target_percent: f64,
    /// Schedule periods without a run after which the sweep raises a check ([`crate::sweep`]).
    pub stopped_after_periods: u32,
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
            region_incident_after: Duration::hours(1),
            orphan_after: Duration::hours(24),
            slo_target_percent: 99.5,
            stopped_after_periods: 3,
        }
    }
}

impl Policy {
    fn multi_region(&self) -> bool {
        self.regions.len() >= 2
    }

    /// A region's latest run speaks for it this long; after that the region is unknown.
    fn horizon(&self) -> Duration {
        self.period + self.period / 2
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
    /// The runs' counters behind the burn rates.
    #[serde(default)]
    pub burn: crate::burn::Burn,
    /// The sweep's view of each region's runs ([`crate::sweep`]).
    #[serde(default)]
    pub stopped: BTreeMap<String, crate::sweep::Watch>,
    /// Per region, the newest run whose account was rejected: it counted for the monitor account,
    /// but the check did report, so the sweep must not take it for silent.
    #[serde(default)]
    pub rejected_runs: BTreeMap<String, crate::sweep::Reported>,
}

impl State {
    /// Whether any of the subject's incidents is open: its own, its burn-rate one, a region's.
    pub fn open(&self) -> bool {
        self.incident.is_some() || self.burn_incident || self.regions.values().any(|r| r.incident)
    }

    /// The newest run or alarm change recorded.
    pub fn newest(&self) -> Option<OffsetDateTime> {
        self.regions.values().map(|r| r.last_run).chain(self.alarms.values().map(|a| a.at)).max()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    #[serde(with = "time::serde::rfc3339")]
    pub last_run: OffsetDateTime,
    pub last_failed: bool,
    pub failed_streak: u32,
    pub passed_streak: u32,
    /// The worst severity of the current failed streak.
    #[serde(default)]
    pub streak_severity: Option<Severity>,
    /// The first run of the current failed streak.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// This region's own incident is open (a region failing, below the quorum, for too long).
    #[serde(default)]
    pub incident: bool,
    /// People were told this region stopped reporting.
    #[serde(default)]
    pub silent_warned: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(with = "time::serde::rfc3339")]
    pub opened: OffsetDateTime,
    pub flapping: bool,
    /// The regions that saw the failure when it paged.
    pub regions: Vec<String>,
    /// The worst severity of the runs that confirmed it, or of any later run.
    #[serde(default = "critical")]
    pub severity: Severity,
}

fn critical() -> Severity {
    Severity::Critical
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmState {
    pub alarm: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// It went to ALARM during a silence: decided on the first run after the silence.
    #[serde(default)]
    pub held: bool,
}

/// One run of a subject, as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Run<'a> {
    pub region: &'a str,
    pub at: OffsetDateTime,
    pub failed: bool,
    /// `critical` (failed), `error` (the account was rejected) or `warning` (degraded).
    pub severity: Severity,
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
    /// Open the subject's incident.
    Page {
        reason: String,
        regions: Vec<String>,
        flapping: bool,
        severity: Severity,
    },
    /// Add to the open incident (a trigger PagerDuty deduplicates into it).
    Update {
        reason: String,
        flapping: bool,
        severity: Severity,
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
    /// Open, add to, or resolve one region's incident (`error`: a region down, not the service).
    PageRegion {
        region: String,
        reason: String,
    },
    UpdateRegion {
        region: String,
        reason: String,
    },
    ResolveRegion {
        region: String,
        reason: String,
    },
    /// One message to the human channels; no page.
    Warn {
        reason: String,
    },
}

impl Action {
    /// Whether it changes an incident's state at PagerDuty (rather than adding to it or telling
    /// people): what is still queued for that incident is then superseded.
    pub fn opens_or_resolves(&self) -> bool {
        matches!(
            self,
            Action::Page { .. }
                | Action::Resolve { .. }
                | Action::PageBurn { .. }
                | Action::ResolveBurn { .. }
                | Action::PageRegion { .. }
                | Action::ResolveRegion { .. }
        )
    }
}

/// The outcome of applying a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Actions(Vec<Action>),
    /// Not newer than the region's last run: a duplicate, a Lambda retry or a late delivery.
    Late,
}

/// PagerDuty's severities from least to most urgent.
fn rank(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
        Severity::Critical => 3,
    }
}

fn worst(a: Severity, b: Severity) -> Severity {
    if rank(b) > rank(a) { b } else { a }
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
        streak_severity: None,
        failing_since: None,
        incident: false,
        silent_warned: false,
    });
    region.last_run = run.at;
    region.last_failed = run.failed;
    region.silent_warned = false;
    if run.failed {
        region.failed_streak += 1;
        region.passed_streak = 0;
        region.streak_severity = Some(region.streak_severity.map_or(run.severity, |s| worst(s, run.severity)));
        region.failing_since.get_or_insert(run.at);
        state.last_failure = Some(state.last_failure.map_or(run.at, |t| t.max(run.at)));
    } else {
        region.passed_streak += 1;
        region.failed_streak = 0;
        region.streak_severity = None;
        region.failing_since = None;
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
        // Flapping confirms too: a check that fails every other run never fails twice in a row.
        None if (view.confirmed || (flapping && view.unhealthy)) && !silenced => {
            let reason = match view.confirmed {
                true => view.confirmation(policy),
                false => flap_reason(state.changes.len(), policy),
            };
            state.incident =
                Some(Incident { opened: run.at, flapping, regions: view.failing.clone(), severity: view.severity });
            state.warned = true;
            actions.push(Action::Page { reason, regions: view.failing.clone(), flapping, severity: view.severity });
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
                    reason: flap_reason(state.changes.len(), policy),
                    flapping: true,
                    severity: incident.severity,
                });
            }
            if view.unhealthy && rank(view.severity) > rank(incident.severity) && !silenced {
                incident.severity = view.severity;
                actions.push(Action::Update {
                    reason: format!(
                        "now {}: a later run is worse than the ones that confirmed it",
                        severity_name(view.severity)
                    ),
                    flapping: incident.flapping,
                    severity: view.severity,
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
    if policy.multi_region() {
        actions.extend(region_actions(state, run, silenced, policy));
    }
    if !silenced {
        // Alarms that fired during a silence: CloudWatch will not say so again.
        let held: Vec<String> = state.alarms.iter().filter(|(_, a)| a.held).map(|(key, _)| key.clone()).collect();
        for key in held {
            if let Some(alarm) = state.alarms.get_mut(&key) {
                alarm.held = false;
            }
            if let Some((kind, region)) = key.split_once('@') {
                actions.extend(alarm_fired(state, kind, region, run.at, policy));
            }
        }
    }
    Applied::Actions(actions)
}

/// The page a subject's record opens now, as of `at`, when its failure is confirmed and no
/// incident is open: a page held for a dependency's report (see [`crate::dependencies`]), decided
/// once that dependency has reported.
pub fn page_now(state: &mut State, at: OffsetDateTime, policy: &Policy) -> Option<Action> {
    let view = View::of(state, at, policy);
    if state.incident.is_some() || !view.confirmed {
        return None;
    }
    let flapping = state.changes.len() >= policy.flap_changes;
    state.incident = Some(Incident { opened: at, flapping, regions: view.failing.clone(), severity: view.severity });
    state.warned = true;
    Some(Action::Page { reason: view.confirmation(policy), regions: view.failing, flapping, severity: view.severity })
}

fn flap_reason(changes: usize, policy: &Policy) -> String {
    format!(
        "flapping: {changes} changes of health within {} min; the incident stays open until {} min pass without a failed run",
        policy.flap_window.whole_minutes(),
        policy.flap_window.whole_minutes()
    )
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// With several regions: the run's region's own incident (one region failing for longer than
/// [`Policy::region_incident_after`]), and a warning for each configured region that stopped
/// reporting.
fn region_actions(state: &mut State, run: &Run, silenced: bool, policy: &Policy) -> Vec<Action> {
    let mut actions = Vec::new();
    let check_incident = state.incident.is_some();
    if policy.regions.iter().any(|r| r == run.region)
        && let Some(region) = state.regions.get_mut(run.region)
    {
        match region.failing_since {
            Some(since)
                if !region.incident
                    && !silenced
                    && !check_incident
                    && run.at - since >= policy.region_incident_after =>
            {
                region.incident = true;
                actions.push(Action::PageRegion {
                    region: run.region.to_string(),
                    reason: format!(
                        "{} has failed for {} min (since {since}); below the quorum, so the check's incident is not opened",
                        run.region,
                        (run.at - since).whole_minutes()
                    ),
                });
            }
            None if region.incident => {
                region.incident = false;
                actions.push(Action::ResolveRegion {
                    region: run.region.to_string(),
                    reason: format!("{} passes again", run.region),
                });
            }
            _ => {}
        }
    }
    if silenced {
        return actions;
    }
    for name in &policy.regions {
        if let Some(region) = state.regions.get_mut(name)
            && run.at - region.last_run >= policy.horizon()
            && !region.silent_warned
        {
            region.silent_warned = true;
            actions.push(Action::Warn {
                reason: format!(
                    "region health: {name} has not reported since {}; it counts as unknown, not healthy, until it does",
                    region.last_run
                ),
            });
        }
    }
    actions
}

/// Resolves the incidents of a subject that stopped reporting (a check removed or renamed while
/// its incident was open): nothing recorded for `lifetime` before `now`. Each resolve, and one
/// warning to people, says why.
pub fn expire(state: &mut State, now: OffsetDateTime, lifetime: Duration) -> Vec<Action> {
    let Some(newest) = state.newest() else { return Vec::new() };
    if !state.open() || now - newest < lifetime {
        return Vec::new();
    }
    let reason = format!(
        "orphaned: nothing recorded for {} h (since {newest}); the check was removed or renamed, or stopped running",
        (now - newest).whole_hours()
    );
    let mut actions = vec![Action::Warn { reason: format!("{reason}; its open incidents are resolved") }];
    if state.incident.take().is_some() {
        actions.push(Action::Resolve { reason: reason.clone() });
    }
    if std::mem::take(&mut state.burn_incident) {
        actions.push(Action::ResolveBurn { reason: reason.clone() });
    }
    for (name, region) in &mut state.regions {
        if std::mem::take(&mut region.incident) {
            actions.push(Action::ResolveRegion { region: name.clone(), reason: reason.clone() });
        }
    }
    state.warned = false;
    actions
}

/// Applies one burn-rate alarm change. A change no newer than the last one of the same alarm in
/// the same region is a late or repeated delivery (a Lambda retry) and changes nothing. An alarm
/// that fires during a silence is held, and decided on the first run after it.
pub fn apply_alarm(state: &mut State, change: &AlarmChange, silenced: bool, policy: &Policy) -> Vec<Action> {
    let key = format!("{}@{}", change.kind, change.region);
    if state.alarms.get(&key).is_some_and(|known| known.at >= change.at) {
        return Vec::new();
    }
    let held = change.alarm && silenced;
    state.alarms.insert(key, AlarmState { alarm: change.alarm, at: change.at, held });
    if held {
        return Vec::new();
    }
    if change.alarm {
        return alarm_fired(state, change.kind, change.region, change.at, policy);
    }
    let mut actions = Vec::new();
    if state.burn_incident && !state.alarms.values().any(|a| a.alarm) {
        state.burn_incident = false;
        actions.push(Action::ResolveBurn { reason: format!("{} back to OK ({})", change.kind, change.region) });
    }
    actions
}

/// What an alarm in ALARM means now: it joins an open incident, confirms a failing run from
/// one vantage point, joins its region's incident, or pages on its own at low urgency.
fn alarm_fired(state: &mut State, kind: &str, region: &str, at: OffsetDateTime, policy: &Policy) -> Vec<Action> {
    let in_alarm =
        state.alarms.iter().filter(|(key, alarm)| alarm.alarm && key.starts_with(&format!("{kind}@"))).count();
    let needed = if policy.multi_region() { policy.region_quorum } else { 1 };
    // From one vantage point the newest run speaks for the subject, whatever its region is called.
    let region_failing = match policy.multi_region() {
        true => state.regions.get(region).is_some_and(|r| r.last_failed),
        false => state.regions.values().max_by_key(|r| r.last_run).is_some_and(|r| r.last_failed),
    };
    let what = format!("{kind} in ALARM ({region})");

    let mut actions = Vec::new();
    if let Some(incident) = &state.incident {
        actions.push(Action::Update {
            reason: format!("{what}: joins the open incident"),
            flapping: incident.flapping,
            severity: incident.severity,
        });
    } else if region_failing && !policy.multi_region() {
        // From one vantage point the alarm is a second witness of the failing run: it confirms.
        let flapping = state.changes.len() >= policy.flap_changes;
        let regions = vec![region.to_string()];
        let severity = state
            .regions
            .values()
            .max_by_key(|r| r.last_run)
            .and_then(|r| r.streak_severity)
            .unwrap_or(Severity::Critical);
        state.incident = Some(Incident { opened: at, flapping, regions: regions.clone(), severity });
        state.warned = true;
        actions.push(Action::Page {
            reason: format!("{what} while the latest run failed"),
            regions,
            flapping,
            severity,
        });
    } else if region_failing {
        // One region's alarm is that region's failure: it joins the region's incident when there
        // is one; the runs decide when there is not.
        if state.regions.get(region).is_some_and(|r| r.incident) {
            actions.push(Action::UpdateRegion {
                region: region.to_string(),
                reason: format!("{what}: joins the region's incident"),
            });
        }
    } else if in_alarm >= needed && !state.burn_incident {
        state.burn_incident = true;
        actions.push(Action::PageBurn {
            reason: format!(
                "{what}: the error budget burns though the latest runs pass (intermittent failures); low urgency"
            ),
        });
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
    /// The worst severity of the failing regions' current streaks.
    severity: Severity,
}

impl View {
    fn of(state: &State, at: OffsetDateTime, policy: &Policy) -> View {
        if policy.multi_region() {
            // Only the configured regions count; one that has not reported lately is unknown: it
            // may be failing, so it can neither confirm a failure nor stand for a recovery.
            let recent: Vec<(&String, &RegionState)> = state
                .regions
                .iter()
                .filter(|(name, r)| policy.regions.contains(name) && at - r.last_run < policy.horizon())
                .collect();
            let unknown = policy.regions.len() - recent.len();
            let failing: Vec<(&String, &RegionState)> = recent.iter().copied().filter(|(_, r)| r.last_failed).collect();
            let not_recovered = recent
                .iter()
                .filter(|(_, r)| r.last_failed || r.passed_streak < policy.resolve_after_passed_runs)
                .count();
            View {
                unhealthy: failing.len() >= policy.region_quorum,
                confirmed: failing.len() >= policy.region_quorum,
                recovered: not_recovered + unknown < policy.region_quorum,
                severity: failing.iter().filter_map(|(_, r)| r.streak_severity).fold(Severity::Info, worst),
                failing: failing.iter().map(|(name, _)| name.to_string()).collect(),
                streak: 0,
            }
        } else {
            let failing: Vec<String> = state
                .regions
                .iter()
                .filter(|(_, r)| r.last_failed && at - r.last_run < policy.horizon())
                .map(|(name, _)| name.to_string())
                .collect();
            // One vantage point: the newest run's region speaks for the subject.
            let latest = state.regions.values().max_by_key(|r| r.last_run);
            let failed_streak = latest.map_or(0, |r| r.failed_streak);
            View {
                unhealthy: latest.is_some_and(|r| r.last_failed),
                confirmed: failed_streak >= policy.page_after_failed_runs,
                recovered: latest.is_some_and(|r| r.passed_streak >= policy.resolve_after_passed_runs),
                severity: latest.and_then(|r| r.streak_severity).unwrap_or(Severity::Critical),
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
pub(crate) mod times {
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
            let run = Run { region, at, failed, severity: Severity::Critical, target: "https://shop.example.com" };
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
            let run =
                Run { region, at: T0 + Duration::seconds(second), failed, severity: Severity::Critical, target: "" };
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

    /// A failed (critical) or passing run from region `x`, `minute`s after [`T0`].
    fn run(minute: i64, failed: bool) -> Run<'static> {
        Run { region: "x", at: T0 + Duration::minutes(minute), failed, severity: Severity::Critical, target: "" }
    }

    #[test]
    fn a_late_or_repeated_run_changes_nothing() {
        let policy = Policy::default();
        let mut state = State::default();
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
    fn a_subject_that_stopped_reporting_with_an_incident_open_is_resolved_as_an_orphan() {
        let policy = Policy::default();
        let mut state = State::default();
        for minute in [0, 5] {
            apply_run(&mut state, &run(minute, true), false, &policy);
        }
        assert!(state.open());
        assert_eq!(expire(&mut state, T0 + Duration::hours(23), policy.orphan_after), []);
        let actions = expire(&mut state, T0 + Duration::hours(25), policy.orphan_after);
        assert!(
            matches!(&actions[..], [Action::Warn { .. }, Action::Resolve { reason }] if reason.contains("orphaned: nothing recorded for 24 h")),
            "{actions:?}"
        );
        assert!(!state.open());
        assert_eq!(expire(&mut state, T0 + Duration::hours(48), policy.orphan_after), [], "once");
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = State::default();
        let run = Run { region: "eu-west-1", at: T0, failed: true, severity: Severity::Critical, target: "https://x" };
        apply_run(&mut state, &run, false, &Policy::default());
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
    }
}

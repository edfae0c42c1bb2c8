//! One page per outage: a check's `depends_on` (the deployment plan, `CHECK_PLAN_FILE`).
//!
//! When the target goes down, every check fails; the checks that depend on `health` fail
//! *because* health fails. So a page a dependant's record decides is withheld while one of its
//! dependencies is failing in the same period (its latest run, within 1.5 of its own schedule,
//! failed in a region where the dependant fails) or has an incident open: the dependant is
//! attached to that incident instead, as context ("also failing: products, payment", a trigger
//! with the dependency's dedup key, which PagerDuty adds to the open incident). Only new pages
//! are withheld: an incident already open, its updates and every resolve go out as decided. The
//! dependant's record keeps its failure (no incident), so its next run decides again: once the
//! dependency has recovered, a dependant still failing pages on its own.
//!
//! Runs of one period arrive in any order. A dependant whose failure began before its dependency
//! reported in that period is held (its page waits) until the dependency has reported, at most
//! 1.5 of the dependency's schedule; its next run decides with what the dependency said.
//! Dependencies chain (payment on auth on health): a dependant is attached to the incident at the
//! root of the chain, the one that pages.

use crate::incident::{Policy, State};
use crate::state::{Channel, Record, StateStore, StoreError, record_key};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use synthetic_checks::alert::{AlertMessage, EventAction, dedup_key};
use synthetic_checks::plan::Plan;
use synthetic_checks::result::Outcome;
use time::{Duration, OffsetDateTime};

/// The `custom_details` entry that lists the dependants attached to an incident.
pub const ALSO_FAILING: &str = "also_failing";
/// At most this many links are followed to a chain's root (the catalog refuses cycles).
const MAX_CHAIN: usize = 16;
/// Writers that lose this many races in a row on the root's record give up (logged).
const MAX_RACES: u32 = 5;

/// A record's dependency links.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// This subject's failure is attached to that subject's incident (the chain's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explained_by: Option<String>,
    /// The dependants attached to this subject's current failure.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub also_failing: BTreeSet<String>,
    /// The dependants whose page waits for this subject's next run.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub held: BTreeSet<String>,
}

/// What the dependencies say about a page a dependant's record decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No dependency explains it: it pages.
    Pages,
    /// Dependency `by` fails or has an incident open: the page is withheld.
    Explained { by: String },
    /// Dependency `by` has not reported since the failure began: the page waits for it.
    Held { by: String },
}

/// Whether a subject is failing at all: an incident open, or a region whose latest run failed.
/// While it is not, its links are forgotten.
pub fn failing(state: &State) -> bool {
    state.open() || state.regions.values().any(|r| r.last_failed)
}

/// The dependant's regions that fail as of `at` (multi-region), or `None`: one vantage point,
/// whatever the regions are called.
fn failing_regions(state: &State, at: OffsetDateTime, policy: &Policy) -> Option<Vec<String>> {
    (policy.regions.len() >= 2).then(|| {
        let horizon = policy.period + policy.period / 2;
        state
            .regions
            .iter()
            .filter(|(name, r)| r.last_failed && at - r.last_run < horizon && policy.regions.contains(name))
            .map(|(name, _)| name.clone())
            .collect()
    })
}

/// Decides a dependant's page (its `state`, after the run at `at`) from its dependencies'
/// states, each with its horizon (1.5 of its schedule).
pub fn judge(
    state: &State,
    at: OffsetDateTime,
    policy: &Policy,
    dependencies: &[(String, State, Duration)],
) -> Verdict {
    let regions = failing_regions(state, at, policy);
    let relevant = |name: &str| regions.as_ref().is_none_or(|rs| rs.is_empty() || rs.iter().any(|r| r == name));
    let since = state.regions.iter().filter(|(name, _)| relevant(name)).filter_map(|(_, r)| r.failing_since).min();
    let mut held = None;
    for (name, dependency, horizon) in dependencies {
        let region_incident = dependency.regions.iter().any(|(region, r)| r.incident && relevant(region));
        if dependency.incident.is_some() || region_incident {
            return Verdict::Explained { by: name.clone() };
        }
        let runs: Vec<_> = dependency.regions.iter().filter(|(region, _)| relevant(region)).map(|(_, r)| r).collect();
        // One vantage point: the newest run speaks for the dependency, as for any subject.
        let newest = runs.iter().max_by_key(|r| r.last_run);
        let failing_now = match regions {
            Some(_) => runs.iter().any(|r| r.last_failed && at - r.last_run < *horizon),
            None => newest.is_some_and(|r| r.last_failed && at - r.last_run < *horizon),
        };
        if failing_now {
            return Verdict::Explained { by: name.clone() };
        }
        let reported_since = newest.is_some_and(|r| since.is_none_or(|s| r.last_run >= s));
        if held.is_none() && !reported_since && since.is_some_and(|s| at - s < *horizon) {
            held = Some(name.clone());
        }
    }
    match held {
        Some(by) => Verdict::Held { by },
        None => Verdict::Pages,
    }
}

/// The plan's dependencies, read from the state table when a dependant's record decides a page.
#[derive(Clone)]
pub struct Dependencies {
    plan: Arc<Plan>,
    policy: Policy,
}

impl Dependencies {
    pub fn new(plan: Arc<Plan>, policy: Policy) -> Self {
        Dependencies { plan, policy }
    }

    fn of(&self, subject: &str) -> &[String] {
        self.plan.check(subject).map_or(&[], |check| &check.depends_on)
    }

    /// 1.5 of the subject's schedule: how long its latest run speaks for it.
    fn horizon(&self, subject: &str) -> Duration {
        let period = self
            .plan
            .check(subject)
            .map_or(self.policy.period, |check| Duration::minutes(i64::from(check.schedule_minutes.max(1))));
        period + period / 2
    }

    /// Judges the page `subject`'s record decided (`state`, after the run at `at`) and, when a
    /// dependency explains it, names the root of its chain, the incident it joins.
    pub async fn judge(
        &self,
        store: &dyn StateStore,
        env: &str,
        subject: &str,
        state: &State,
        at: OffsetDateTime,
    ) -> Result<Verdict, StoreError> {
        let names = self.of(subject);
        if names.is_empty() {
            return Ok(Verdict::Pages);
        }
        let mut dependencies = Vec::new();
        for name in names {
            let (record, _) = store.load(&record_key(env, name)).await?;
            dependencies.push((name.clone(), record.state, self.horizon(name)));
        }
        match judge(state, at, &self.policy, &dependencies) {
            Verdict::Explained { by } => Ok(Verdict::Explained { by: self.root(store, env, &by).await? }),
            other => Ok(other),
        }
    }

    /// Follows `explained_by` from `name` to the subject whose incident pages for the chain.
    async fn root(&self, store: &dyn StateStore, env: &str, name: &str) -> Result<String, StoreError> {
        let mut root = name.to_string();
        for _ in 0..MAX_CHAIN {
            let (record, _) = store.load(&record_key(env, &root)).await?;
            match record.links.explained_by {
                Some(next) if next != root && record.state.incident.is_none() => root = next,
                _ => break,
            }
        }
        Ok(root)
    }

    /// Attaches `dependant` to `root`'s failure: listed in its record, and, while its incident is
    /// open, told to PagerDuty as an update of that incident that lists every dependant attached
    /// (one queued update at a time: a newer list replaces one not yet sent). The root's record is
    /// put in the outbox, so the next drain sends it. `base` is the dependant's alert.
    pub async fn attach(
        &self,
        store: &dyn StateStore,
        env: &str,
        root: &str,
        dependant: &str,
        base: &AlertMessage,
    ) -> Result<(), StoreError> {
        let key = record_key(env, root);
        let root_key = dedup_key(env, root);
        for _ in 0..MAX_RACES {
            let (mut record, version) = store.load(&key).await?;
            if !record.links.also_failing.insert(dependant.to_string()) {
                return Ok(());
            }
            let queued = record.state.incident.is_some();
            if let Some(incident) = &record.state.incident {
                let names: Vec<&str> = record.links.also_failing.iter().map(String::as_str).collect();
                let reason = format!("also failing: {}", names.join(", "));
                let mut alert = base.clone();
                alert.event_action = EventAction::Trigger;
                alert.dedup_key = root_key.clone();
                alert.check = root.to_string();
                alert.status = Outcome::Failed;
                alert.severity = incident.severity;
                alert.cause = None;
                alert.steps = Vec::new();
                alert.account = None;
                if !record.state.target.is_empty() {
                    alert.target = record.state.target.clone();
                }
                alert.summary = format!("[{env}] {root}: {reason}");
                let mut details = Map::new();
                details.insert("update".into(), json!(reason));
                details.insert(ALSO_FAILING.into(), json!(names));
                record.pending.retain(|p| {
                    !(p.to == Channel::PagerDuty
                        && p.alert.dedup_key == root_key
                        && p.details.contains_key(ALSO_FAILING))
                });
                record.push(Channel::PagerDuty, alert, details);
            }
            match store.save(&key, &record, version).await {
                Ok(()) if queued => {
                    return store.set_deferred(&key, crate::rate::outbox_order(&record.pending).as_deref()).await;
                }
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict)
    }
}

impl Dependencies {
    /// Lists `dependant` on `dependency`'s record, so that its next run decides the held page.
    pub async fn hold(
        &self,
        store: &dyn StateStore,
        env: &str,
        dependency: &str,
        dependant: &str,
    ) -> Result<(), StoreError> {
        let key = record_key(env, dependency);
        for _ in 0..MAX_RACES {
            let (mut record, version) = store.load(&key).await?;
            if !record.links.held.insert(dependant.to_string()) {
                return Ok(());
            }
            match store.save(&key, &record, version).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}

/// The `also_failing` detail of a page `record` decides: the dependants attached before it paged.
pub fn also_failing(record: &Record) -> Option<Value> {
    (!record.links.also_failing.is_empty()).then(|| json!(record.links.also_failing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Applied, Run, apply_run};
    use synthetic_checks::alert::Severity;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-21 00:00 UTC);

    fn state(runs: &[(&str, i64, bool)], policy: &Policy) -> State {
        let mut state = State::default();
        for &(region, second, failed) in runs {
            let run =
                Run { region, at: T0 + Duration::seconds(second), failed, severity: Severity::Critical, target: "" };
            assert!(matches!(apply_run(&mut state, &run, false, policy), Applied::Actions(_)));
        }
        state
    }

    const HORIZON: Duration = Duration::seconds(450);

    #[test]
    fn a_failing_or_paged_dependency_explains_a_passing_or_silent_one_does_not() {
        let policy = Policy::default();
        let products = state(&[("r", 0, true), ("r", 300, true)], &policy);
        let at = T0 + Duration::seconds(300);
        let health = |runs: &[(&str, i64, bool)]| vec![("health".to_string(), state(runs, &policy), HORIZON)];
        let explained = Verdict::Explained { by: "health".into() };
        assert_eq!(judge(&products, at, &policy, &health(&[("r", 290, true)])), explained, "failing, unconfirmed");
        assert_eq!(judge(&products, at, &policy, &health(&[("r", -10, true), ("r", 290, true)])), explained);
        assert_eq!(judge(&products, at, &policy, &health(&[("r", 290, false)])), Verdict::Pages, "it passes");
        assert_eq!(
            judge(&products, at, &policy, &health(&[("r", -600, true)])),
            Verdict::Held { by: "health".into() },
            "its failure is older than 1.5 of its schedule: it is unknown until it reports"
        );
    }

    #[test]
    fn a_dependency_that_has_not_reported_since_the_failure_began_holds_the_page_for_its_horizon() {
        let policy = Policy::default();
        let health = vec![("health".to_string(), state(&[("r", -60, false)], &policy), HORIZON)];
        let products = state(&[("r", 0, true), ("r", 300, true)], &policy);
        assert_eq!(
            judge(&products, T0 + Duration::seconds(300), &policy, &health),
            Verdict::Held { by: "health".into() }
        );
        let later = state(&[("r", 0, true), ("r", 300, true), ("r", 600, true)], &policy);
        assert_eq!(judge(&later, T0 + Duration::seconds(600), &policy, &health), Verdict::Pages, "not forever");
    }

    #[test]
    fn with_several_regions_only_a_dependency_failing_where_the_dependant_fails_explains_it() {
        let policy = Policy { regions: vec!["a".into(), "b".into(), "c".into()], ..Policy::default() };
        let products = state(&[("a", 0, true), ("b", 10, true), ("c", 20, false)], &policy);
        let at = T0 + Duration::seconds(20);
        let health = |runs: &[(&str, i64, bool)]| vec![("health".to_string(), state(runs, &policy), HORIZON)];
        assert_eq!(
            judge(&products, at, &policy, &health(&[("a", 5, false), ("b", 6, false), ("c", 7, true)])),
            Verdict::Pages
        );
        assert_eq!(
            judge(&products, at, &policy, &health(&[("a", 5, true), ("b", 6, false), ("c", 7, false)])),
            Verdict::Explained { by: "health".into() }
        );
    }
}

//! Runs and alarms in, pending deliveries out: the [`incident`](crate::incident) policy applied to
//! the records of the state table, with conditional writes.
//!
//! [`Tracker::record`] reads a subject's record, applies the run or alarm, queues what the policy
//! decided as [`Pending`] deliveries and writes the record back only if nobody wrote it since;
//! after a lost race it reads and decides again. The caller delivers the pending list and then
//! calls [`Tracker::delivered`]. A run already applied (a Lambda retry, a replayed message) changes
//! nothing but still returns what is pending, so the retry delivers what the first attempt could
//! not.

use crate::alarm::AlarmSignal;
use crate::burn;
use crate::dependencies::{self, Dependencies, Verdict};
use crate::incident::{self, Action, AlarmChange, Applied, Incident, Policy, Run};
use crate::state::{Channel, Pending, Record, Sender, Silence, StateStore, StoreError, record_key};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use synthetic_checks::alert::{AlertMessage, EventAction, MONITOR_ACCOUNT, Severity};
use synthetic_checks::result::Outcome;
use time::OffsetDateTime;

/// Writers that lose this many races in a row give up; Lambda's retry tries again later.
const MAX_RACES: u32 = 5;
/// How long a claim to send a record's pending list lasts: longer than the forwarder's timeout
/// (60 s in the template), so only an invocation that died leaves one behind.
const CLAIM: time::Duration = time::Duration::minutes(2);

pub struct Tracker {
    store: Arc<dyn StateStore>,
    policy: Policy,
    dependencies: Option<Dependencies>,
}

/// How a subject whose page was withheld is linked to its dependency.
enum Link {
    None,
    /// Attached to the incident of this root of its chain.
    Attach(String),
    /// Waiting for this dependency's next run.
    Hold(String),
}

/// What a record is updated with.
pub enum Input<'a> {
    /// A check's run; `base` is its alert, the template of every event it causes.
    Run { base: &'a AlertMessage, region: &'a str, at: OffsetDateTime, failed: bool, severity: Severity },
    /// A burn-rate alarm of the subject's check.
    Alarm { base: &'a AlertMessage, signal: &'a AlarmSignal },
}

impl Input<'_> {
    fn base(&self) -> &AlertMessage {
        match self {
            Input::Run { base, .. } | Input::Alarm { base, .. } => base,
        }
    }
}

impl Tracker {
    pub fn new(store: Arc<dyn StateStore>, policy: Policy) -> Self {
        Tracker { store, policy, dependencies: None }
    }

    /// Withholds the pages of dependants while a dependency explains them (the plan's
    /// `depends_on`, see [`crate::dependencies`]).
    pub fn with_plan(mut self, plan: Arc<synthetic_checks::plan::Plan>) -> Self {
        self.dependencies = Some(Dependencies::new(plan, self.policy.clone()));
        self
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The env's silences, read once per message whatever number of records it updates.
    pub async fn silences(&self, env: &str) -> Result<Vec<Silence>, StoreError> {
        self.store.silences(env).await
    }

    /// Applies `input` to the record of `subject` (a check, or the monitor account) in `env`,
    /// under `silences` (from [`Tracker::silences`]); returns the record's key and everything
    /// pending on it, oldest first.
    pub async fn record(
        &self,
        env: &str,
        subject: &str,
        silences: &[Silence],
        input: Input<'_>,
        fallback: Option<Fallback>,
    ) -> Result<(String, Vec<Pending>), StoreError> {
        let key = record_key(env, subject);
        let at = match &input {
            Input::Run { at, .. } => *at,
            Input::Alarm { signal, .. } => signal.at,
        };
        let silenced = silences.iter().any(|s| s.covers(subject, at));
        let dedup_key = synthetic_checks::alert::dedup_key(env, subject);
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(&key).await?;
            let was_open = record.state.open();
            if let Some(fallback) = fallback {
                reconcile(&mut record, &dedup_key, fallback);
            }
            let actions = match &input {
                Input::Run { base, region, at, failed, severity } => {
                    let run = Run { region, at: *at, failed: *failed, severity: *severity, target: &base.target };
                    match incident::apply_run(&mut record.state, &run, silenced, &self.policy) {
                        // The monitor account has no SLO: only a check's runs burn its budget.
                        Applied::Actions(mut actions) if subject != MONITOR_ACCOUNT => {
                            let failed = base.status == Outcome::Failed;
                            let state = &mut record.state;
                            actions.extend(burn::apply_run(state, region, *at, failed, silenced, &self.policy));
                            actions
                        }
                        Applied::Actions(actions) => actions,
                        Applied::Late if fallback.is_none() => return Ok((key, record.pending)),
                        Applied::Late => Vec::new(),
                    }
                }
                Input::Alarm { signal, .. } => {
                    let change =
                        AlarmChange { kind: &signal.kind, region: &signal.region, at: signal.at, alarm: signal.alarm };
                    incident::apply_alarm(&mut record.state, &change, silenced, &self.policy)
                }
            };
            let (actions, link) = self.withhold(env, subject, &mut record, actions, at).await?;
            let held = match &input {
                Input::Run { .. } => std::mem::take(&mut record.links.held),
                Input::Alarm { .. } => BTreeSet::new(),
            };
            for action in &actions {
                let (to, alert, mut details) = pending(action, input.base(), &dedup_key, &record.state.target);
                if let (Action::Page { .. }, Some(list)) = (action, dependencies::also_failing(&record)) {
                    details.insert(dependencies::ALSO_FAILING.into(), list);
                }
                if action.opens_or_resolves() {
                    record.forget(&alert.dedup_key);
                }
                record.push(to, alert, details);
            }
            match self.store.save(&key, &record, version).await {
                Ok(()) => {
                    if record.state.open() != was_open {
                        self.list(env, subject, record.state.open()).await;
                    }
                    if let Some(dependencies) = &self.dependencies {
                        // The page stays withheld whatever happens here: the dependency pages for
                        // the outage; only the context is missing, and the next run links it again.
                        if let Err(error) = self.link(dependencies, env, subject, &key, link, input.base()).await {
                            lambda_runtime::tracing::warn!(%subject, %error, "a dependant was not linked to its dependency");
                        }
                        if !held.is_empty() {
                            self.release_held(env, subject, held, silences, input.base(), at).await;
                        }
                    }
                    return Ok((key, record.pending));
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Notes that `check` reported from `region` at `at` with a run that counted for the monitor
    /// account (its account was rejected), so the stopped-check sweep does not take it for silent.
    pub async fn rejected_run(
        &self,
        env: &str,
        check: &str,
        region: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = record_key(env, check);
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(&key).await?;
            let newer = crate::sweep::Reported(at);
            match record.state.rejected_runs.get(region) {
                Some(known) if known.0 >= at => return Ok(()),
                _ => record.state.rejected_runs.insert(region.to_string(), newer),
            };
            match self.store.save(&key, &record, version).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }

    /// Takes out a page `subject`'s record just decided when a dependency explains or holds it
    /// (the record keeps its failure and no incident, so its next run decides again); returns
    /// the actions left and the incident to attach the subject to, once per failure. A subject
    /// that stopped failing forgets its links.
    async fn withhold(
        &self,
        env: &str,
        subject: &str,
        record: &mut Record,
        mut actions: Vec<Action>,
        at: OffsetDateTime,
    ) -> Result<(Vec<Action>, Link), StoreError> {
        if !dependencies::failing(&record.state) {
            record.links.explained_by = None;
            record.links.also_failing.clear();
        }
        let Some(dependencies) = &self.dependencies else { return Ok((actions, Link::None)) };
        if !actions.iter().any(|a| matches!(a, Action::Page { .. })) {
            return Ok((actions, Link::None));
        }
        let link = match dependencies.judge(&*self.store, env, subject, &record.state, at).await? {
            Verdict::Pages => {
                record.links.explained_by = None;
                return Ok((actions, Link::None));
            }
            Verdict::Held { by } => {
                lambda_runtime::tracing::info!(%subject, dependency = %by, "page held until the dependency reports");
                Link::Hold(by)
            }
            Verdict::Explained { by } => {
                lambda_runtime::tracing::info!(%subject, dependency = %by, "page withheld: the dependency's failure explains it");
                match record.links.explained_by.as_deref() == Some(by.as_str()) {
                    true => Link::None,
                    false => {
                        record.links.explained_by = Some(by.clone());
                        Link::Attach(by)
                    }
                }
            }
        };
        record.state.incident = None;
        // The same run's burn rates may have joined the incident it was about to open: with the
        // page withheld there is no incident to join, and a trigger would open one.
        actions.retain(|a| !matches!(a, Action::Page { .. } | Action::Update { .. }));
        Ok((actions, link))
    }

    /// Decides the pages held for `dependency`'s run at `at` (see [`Tracker::withhold`]): each
    /// held dependant is judged again, now that the dependency has reported, and pages, joins
    /// its incident, or waits on another dependency. A page decided here goes out with the next
    /// drain (its record is put in the outbox). Failures are logged: the dependant's own next
    /// run decides again.
    async fn release_held(
        &self,
        env: &str,
        dependency: &str,
        held: BTreeSet<String>,
        silences: &[Silence],
        base: &AlertMessage,
        at: OffsetDateTime,
    ) {
        let Some(dependencies) = &self.dependencies else { return };
        for dependant in held {
            if let Err(error) = self.decide_held(dependencies, env, dependency, &dependant, silences, base, at).await {
                lambda_runtime::tracing::warn!(%dependant, %dependency, %error, "a held page was not decided; the dependant's next run decides it");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide_held(
        &self,
        dependencies: &Dependencies,
        env: &str,
        dependency: &str,
        dependant: &str,
        silences: &[Silence],
        base: &AlertMessage,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = record_key(env, dependant);
        let dedup_key = synthetic_checks::alert::dedup_key(env, dependant);
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(&key).await?;
            if silences.iter().any(|s| s.covers(dependant, at)) {
                return Ok(());
            }
            let Some(page) = incident::page_now(&mut record.state, at, &self.policy) else { return Ok(()) };
            let (actions, link) = self.withhold(env, dependant, &mut record, vec![page], at).await?;
            let mut alert = base.clone();
            alert.check = dependant.to_string();
            alert.summary = format!("[{env}] {dependant}: failing, and its dependency {dependency} is not");
            alert.steps = Vec::new();
            alert.cause = None;
            for action in &actions {
                let (to, alert, mut details) = pending(action, &alert, &dedup_key, &record.state.target);
                if let Some(list) = dependencies::also_failing(&record) {
                    details.insert(dependencies::ALSO_FAILING.into(), list);
                }
                record.forget(&alert.dedup_key);
                record.push(to, alert, details);
            }
            match self.store.save(&key, &record, version).await {
                Ok(()) => {
                    if !actions.is_empty() {
                        self.list(env, dependant, true).await;
                        self.store.set_deferred(&key, crate::rate::outbox_order(&record.pending).as_deref()).await?;
                    }
                    return self.link(dependencies, env, dependant, &key, link, base).await;
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Attaches `subject` to its dependency's incident, or lists it as held by a dependency.
    async fn link(
        &self,
        dependencies: &Dependencies,
        env: &str,
        subject: &str,
        key: &str,
        link: Link,
        base: &AlertMessage,
    ) -> Result<(), StoreError> {
        let linked = match &link {
            Link::None => return Ok(()),
            Link::Attach(root) => dependencies.attach(&*self.store, env, root, subject, base).await,
            Link::Hold(dependency) => dependencies.hold(&*self.store, env, dependency, subject).await,
        };
        if linked.is_err() && matches!(link, Link::Attach(_)) {
            // Not attached: the next withheld page attaches it again.
            self.detach(key).await;
        }
        linked
    }

    /// Forgets that `key` was attached, so its next withheld page attaches it again.
    async fn detach(&self, key: &str) {
        for _ in 0..MAX_RACES {
            let Ok((mut record, version)) = self.store.load(key).await else { return };
            record.links.explained_by = None;
            if !matches!(self.store.save(key, &record, version).await, Err(StoreError::Conflict)) {
                return;
            }
        }
    }

    /// Keeps the list of subjects with an open incident, which only the orphan sweep reads: a
    /// failure is logged, and the next change or sweep writes it again.
    async fn list(&self, env: &str, subject: &str, open: bool) {
        if let Err(error) = self.store.set_open(env, subject, open).await {
            lambda_runtime::tracing::warn!(%env, %subject, open, %error, "the list of open incidents was not updated");
        }
    }

    /// Resolves the incidents of the env's subjects that stopped reporting (see
    /// [`incident::expire`]); returns the key of each record with something to deliver, and
    /// what. A subject with nothing open and nothing queued for PagerDuty leaves the list.
    pub async fn sweep(&self, env: &str, now: OffsetDateTime) -> Result<Vec<(String, Vec<Pending>)>, StoreError> {
        let mut swept = Vec::new();
        for subject in self.store.open_subjects(env).await? {
            let key = record_key(env, &subject);
            let dedup_key = synthetic_checks::alert::dedup_key(env, &subject);
            for _ in 0..MAX_RACES {
                let (mut record, version) = self.store.load(&key).await?;
                let actions = incident::expire(&mut record.state, now, self.policy.orphan_after);
                if actions.is_empty() {
                    match record.pending.is_empty() {
                        true if !record.state.open() => self.list(env, &subject, false).await,
                        true => {}
                        false => swept.push((key.clone(), record.pending)),
                    }
                    break;
                }
                let base = orphan_alert(env, &subject, now);
                for action in &actions {
                    let (to, alert, details) = pending(action, &base, &dedup_key, &record.state.target);
                    if action.opens_or_resolves() {
                        record.forget(&alert.dedup_key);
                    }
                    record.push(to, alert, details);
                }
                match self.store.save(&key, &record, version).await {
                    Ok(()) => {
                        swept.push((key.clone(), record.pending));
                        break;
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(swept)
    }

    /// Whether entry `id` is still queued on the record `key`: another invocation may have sent
    /// it, or a later decision superseded it, since the pending list was read.
    pub async fn is_pending(&self, key: &str, id: u64) -> Result<bool, StoreError> {
        Ok(self.store.load(key).await?.0.pending.iter().any(|p| p.id == id))
    }

    /// Claims the sending of record `key`'s pending list for the invocation of message `by`, and
    /// returns the list; `None` while another invocation holds the claim: that one sends what
    /// is pending, including what was queued after its claim, so one incident's events always
    /// leave in the order they were decided.
    pub async fn claim(&self, key: &str, by: &str, now: OffsetDateTime) -> Result<Option<Vec<Pending>>, StoreError> {
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(key).await?;
            if record.sender.as_ref().is_some_and(|s| s.by != by && s.until > now) {
                return Ok(None);
            }
            // Nothing to send: nothing to claim (a claim this invocation holds is given up after).
            if record.pending.is_empty() {
                return Ok(Some(Vec::new()));
            }
            record.sender = Some(Sender { by: by.to_string(), until: now + CLAIM });
            match self.store.save(key, &record, version).await {
                Ok(()) => return Ok(Some(record.pending)),
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Gives up the claim of `by` on record `key`, if it holds one.
    pub async fn release(&self, key: &str, by: &str) -> Result<(), StoreError> {
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(key).await?;
            if record.sender.as_ref().is_none_or(|s| s.by != by) {
                return Ok(());
            }
            record.sender = None;
            match self.store.save(key, &record, version).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }

    /// Removes delivered entries from the record's pending list.
    pub async fn delivered(&self, key: &str, ids: &[u64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        for _ in 0..MAX_RACES {
            let (mut record, version) = self.store.load(key).await?;
            record.pending.retain(|p| !ids.contains(&p.id));
            match self.store.save(key, &record, version).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}

/// The template of the events that resolve an orphan: no run stands behind them.
fn orphan_alert(env: &str, subject: &str, now: OffsetDateTime) -> AlertMessage {
    AlertMessage {
        event_action: EventAction::Resolve,
        dedup_key: synthetic_checks::alert::dedup_key(env, subject),
        check: subject.to_string(),
        env: env.to_string(),
        status: Outcome::Passed,
        cause: None,
        severity: Severity::Info,
        summary: format!("[{env}] {subject}: stopped reporting"),
        target: String::new(),
        run_id: String::new(),
        timestamp: now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        steps: Vec::new(),
        function_name: None,
        log_group: None,
        log_stream: None,
        region: None,
        account: None,
        trace_id: None,
    }
}

/// What the table-unavailable fallback left at PagerDuty for a subject, still to be written into
/// its record: whether its incident is open, as of which run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fallback {
    pub open: bool,
    pub at: OffsetDateTime,
}

/// Makes the record agree with what the fallback sent while the table was unreachable: an
/// incident the fallback opened is the record's (so a pass resolves it), one it resolved is
/// closed (so the next confirmed failure pages). What was still queued for the incident is
/// superseded by it.
fn reconcile(record: &mut Record, dedup_key: &str, fallback: Fallback) {
    let state = &mut record.state;
    match (fallback.open, state.incident.is_some()) {
        (true, false) => {
            let regions = state.regions.iter().filter(|(_, r)| r.last_failed).map(|(name, _)| name.clone()).collect();
            state.incident =
                Some(Incident { opened: fallback.at, flapping: false, regions, severity: Severity::Critical });
            state.warned = true;
        }
        (false, true) => {
            state.incident = None;
            state.warned = false;
        }
        _ => {}
    }
    record.forget(dedup_key);
}

/// The delivery an action stands for.
fn pending(
    action: &Action,
    base: &AlertMessage,
    key: &str,
    target: &str,
) -> (Channel, AlertMessage, Map<String, Value>) {
    let mut alert = base.clone();
    alert.dedup_key = key.to_string();
    if alert.target.is_empty() {
        alert.target = target.to_string();
    }
    // A page carries the severity of the failure that confirmed it; a passing run's `info` is
    // never a page's severity.
    if matches!(alert.severity, Severity::Info) {
        alert.severity = Severity::Critical;
    }
    let mut details = Map::new();
    let channel = match action {
        Action::Page { reason, regions, flapping, severity } => {
            alert.event_action = EventAction::Trigger;
            alert.severity = *severity;
            details.insert("confirmation".into(), json!(reason));
            details.insert("failing_regions".into(), json!(regions));
            details.insert("flapping".into(), json!(flapping));
            Channel::PagerDuty
        }
        Action::Update { reason, flapping, severity } => {
            alert.event_action = EventAction::Trigger;
            alert.severity = *severity;
            details.insert("update".into(), json!(reason));
            details.insert("flapping".into(), json!(flapping));
            Channel::PagerDuty
        }
        Action::Resolve { reason } => {
            alert.event_action = EventAction::Resolve;
            details.insert("resolution".into(), json!(reason));
            Channel::PagerDuty
        }
        Action::PageBurn { reason } | Action::ResolveBurn { reason } => {
            alert.dedup_key = burn_key(key);
            alert.severity = Severity::Warning;
            alert.event_action =
                if matches!(action, Action::PageBurn { .. }) { EventAction::Trigger } else { EventAction::Resolve };
            alert.summary = format!("[{}] {}: {reason}", alert.env, alert.check);
            details.insert("burn_rate".into(), json!(reason));
            Channel::PagerDuty
        }
        Action::PageRegion { region, reason }
        | Action::UpdateRegion { region, reason }
        | Action::ResolveRegion { region, reason } => {
            alert.dedup_key = region_key(key, region);
            alert.severity = Severity::Error;
            alert.event_action = match action {
                Action::ResolveRegion { .. } => EventAction::Resolve,
                _ => EventAction::Trigger,
            };
            alert.summary = format!("[{}] {} in {region}: {reason}", alert.env, alert.check);
            details.insert("region".into(), json!(region));
            details.insert(
                if matches!(action, Action::UpdateRegion { .. }) { "update" } else { "region_health" }.into(),
                json!(reason),
            );
            Channel::PagerDuty
        }
        Action::Warn { reason } => {
            alert.event_action = EventAction::Trigger;
            alert.severity = Severity::Warning;
            alert.status = if alert.status == Outcome::Passed { Outcome::Failed } else { alert.status };
            alert.summary = format!("warning, not paged ({reason}): {}", alert.summary);
            Channel::Humans
        }
    };
    (channel, alert, details)
}

/// The dedup key of one region's incident.
pub fn region_key(key: &str, region: &str) -> String {
    format!("{key}/region/{region}")
}

/// The dedup key of a burn-rate alarm's own low-urgency incident.
pub fn burn_key(key: &str) -> String {
    format!("{key}/slo-burn")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;
    use time::macros::datetime;

    fn alert(failed: bool) -> AlertMessage {
        serde_json::from_value(json!({
            "event_action": if failed { "trigger" } else { "resolve" }, "dedup_key": "synthetic/prod/auth",
            "check": "auth", "env": "prod", "status": if failed { "failed" } else { "passed" },
            "cause": if failed { Some("timeout") } else { None }, "severity": if failed { "critical" } else { "info" },
            "summary": "[prod] auth", "target": "https://shop.example.com/", "run_id": "r", "timestamp": "2026-11-21T10:00:00Z",
            "steps": []
        }))
        .unwrap()
    }

    async fn run(tracker: &Tracker, minute: i64, failed: bool) -> Vec<Pending> {
        let base = alert(failed);
        let at = datetime!(2026-11-21 10:00 UTC) + time::Duration::minutes(minute);
        tracker
            .record(
                "prod",
                "auth",
                &[],
                Input::Run { base: &base, region: "eu-west-1", at, failed, severity: base.severity },
                None,
            )
            .await
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn a_page_stays_pending_until_delivered_and_a_retry_sees_it_again() {
        let store = Arc::new(MemoryStore::default());
        // An SLO no two failed runs burn, so only the confirmation is pending.
        let tracker = Tracker::new(store.clone(), Policy { slo_target_percent: 50.0, ..Policy::default() });
        let first = run(&tracker, 0, true).await;
        assert_eq!(first.iter().map(|p| p.to).collect::<Vec<_>>(), [Channel::Humans]);
        tracker.delivered("incident#prod#auth", &[first[0].id]).await.unwrap();

        let second = run(&tracker, 5, true).await;
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].to, second[0].alert.event_action), (Channel::PagerDuty, EventAction::Trigger));
        assert_eq!(second[0].details["confirmation"], "confirmed by 2 consecutive failed runs");
        let retried = run(&tracker, 5, true).await;
        assert_eq!(retried, second, "the same run again decides nothing new but returns what is pending");
        tracker.delivered("incident#prod#auth", &[second[0].id]).await.unwrap();
        assert!(run(&tracker, 5, true).await.is_empty());
    }

    #[tokio::test]
    async fn only_a_checks_failed_runs_burn_its_budget() {
        let store = Arc::new(MemoryStore::default());
        let tracker = Tracker::new(store.clone(), Policy::default());
        let mut degraded = alert(true);
        degraded.status = Outcome::Degraded;
        for minute in [0, 5, 10] {
            let at = datetime!(2026-11-21 10:00 UTC) + time::Duration::minutes(minute);
            let input = Input::Run { base: &degraded, region: "r", at, failed: true, severity: Severity::Warning };
            tracker.record("prod", "auth", &[], input, None).await.unwrap();
            let input = Input::Run { base: &alert(true), region: "r", at, failed: true, severity: Severity::Error };
            tracker.record("prod", MONITOR_ACCOUNT, &[], input, None).await.unwrap();
        }
        let auth = store.peek("incident#prod#auth").unwrap();
        assert_eq!(auth.state.burn.regions["r"].iter().map(|p| p.2).sum::<u32>(), 0, "degraded counts as available");
        assert!(auth.state.alarms.is_empty());
        let account = store.peek(&record_key("prod", MONITOR_ACCOUNT)).unwrap();
        assert!(account.state.burn.regions.is_empty(), "the monitor account has no SLO");
        let burns = |pending: &[Pending]| {
            let updates = pending.iter().filter_map(|p| p.details.get("update").and_then(Value::as_str));
            updates.filter(|u| u.starts_with("slo-")).count()
        };
        assert_eq!(burns(&run(&tracker, 15, true).await), 0, "one failed run does not burn");
        assert_eq!(burns(&run(&tracker, 20, true).await), 2, "two failed runs of two burn both rates");
    }

    #[tokio::test]
    async fn a_lost_race_is_decided_again_and_an_outage_is_an_error() {
        let store = Arc::new(MemoryStore::default());
        let tracker = Tracker::new(store.clone(), Policy::default());
        store.lose_races(2);
        assert_eq!(run(&tracker, 0, true).await.len(), 1);
        store.lose_races(MAX_RACES);
        let base = alert(true);
        let at = datetime!(2026-11-21 10:05 UTC);
        let attempt = || {
            let input = Input::Run { base: &base, region: "r", at, failed: true, severity: Severity::Critical };
            tracker.record("prod", "auth", &[], input, None)
        };
        assert_eq!(attempt().await.unwrap_err(), StoreError::Conflict);
        store.set_unavailable(true);
        let down = attempt().await;
        assert!(matches!(down, Err(StoreError::Unavailable(_))));
    }
}

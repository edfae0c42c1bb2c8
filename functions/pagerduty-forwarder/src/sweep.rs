//! The stopped-check sweep: a check that stops reporting is raised to the operations topic, as
//! the per-check heartbeat alarms did, and resolved when its runs return.
//!
//! An EventBridge schedule invokes the forwarder with its scheduled event (every 5 minutes in
//! the template; `{"sweep": "stopped-checks"}` does the same by hand). For every enabled check of the plan (`CHECK_PLAN_FILE`), in each
//! region it runs in, the sweep compares the newest run in the check's record with
//! `STOPPED_AFTER_PERIODS` (3) of its schedule. What it decides is kept per region in the record
//! ([`Watch`]), beside the incident state, with the same conditional writes:
//!
//! - **A check or region added by a deploy** has no run yet: its silence counts from when the
//!   sweep first expected it, so it gets the same grace as a check that just ran. A check that
//!   never runs at all is raised once that grace is over.
//! - **A check removed, disabled or moved out of a region** is no longer expected: what was
//!   raised for it is resolved (a removed check is found through the list of raised checks), and
//!   nothing new is raised.
//! - **A check re-enabled or re-added** after the sweep stopped looking at it for an hour starts
//!   a new grace instead of being judged by its old last run.
//!
//! The message is a CloudWatch alarm notification in shape (`AlarmName`
//! `<ALARM_NAME_PREFIX><check>-stopped[-<region>]`, `NewStateValue` `ALARM` or `OK`,
//! `NewStateReason`, `StateChangeTime`), so the operations topic's subscribers (e-mail, a
//! PagerDuty "Amazon CloudWatch" integration) treat it as they treated the heartbeat alarm:
//! one incident per check and region, resolved by the `OK`. It is published before the record
//! is written: a failed publish fails the sweep (its error alarm says so) and the next sweep
//! decides again; a write that loses a race re-decides, at worst publishing a state twice.

use crate::config::ForwarderConfig;
use crate::incident::State;
use crate::state::{StateStore, StoreError, record_key};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use synthetic_checks::CheckError;
use synthetic_checks::alert::{PublishError, Recording};
use synthetic_checks::aws::sns::SnsNotifier;
use time::{Duration, OffsetDateTime};

/// The `sweep` value of the scheduled event.
pub const STOPPED_CHECKS: &str = "stopped-checks";
/// Counted once per completed sweep; the template alarms when it stops.
pub const SWEEP_METRIC: &str = "StoppedCheckSweeps";
/// The region of a check deployed in one region only: its newest run from anywhere counts.
pub const ANY_REGION: &str = "*";
/// A watch the sweep has not looked at for this long is stale: its check was disabled or removed
/// meanwhile (or the sweep was down), so its silence starts again from now.
const FORGOTTEN_AFTER: Duration = Duration::HOUR;
/// How often a watch's `seen` is written when nothing else changed: well within
/// [`FORGOTTEN_AFTER`], and far fewer writes than one per sweep.
const REFRESH_EVERY: Duration = Duration::minutes(20);
/// Writers that lose this many races in a row give up until the next sweep.
const MAX_RACES: u32 = 5;

/// Whether a Lambda event asks for a sweep rather than carrying SNS records, and as of when: an
/// EventBridge scheduled event (`"detail-type": "Scheduled Event"`) is judged as of its `time`,
/// the schedule's own tick, so a sweep that started late does not count the delay as silence;
/// `{"sweep": "stopped-checks"}` (a manual invocation) as of now.
pub fn as_sweep(event: &Value) -> Option<Option<OffsetDateTime>> {
    if event.get("sweep").and_then(Value::as_str) == Some(STOPPED_CHECKS) {
        return Some(None);
    }
    let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        && event.get("source").and_then(Value::as_str) == Some("aws.events");
    let time = event.get("time").and_then(Value::as_str);
    scheduled.then(|| time.and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()))
}

/// The sweep's view of one region of a check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// Since when the sweep expects runs here: no run before it counts as silence.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When the sweep last looked (written at most every [`REFRESH_EVERY`]).
    #[serde(with = "time::serde::rfc3339")]
    pub seen: OffsetDateTime,
    /// Raised to the operations topic and not resolved yet.
    pub raised: bool,
}

/// When a check last reported in a region without its run being recorded as the check's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reported(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

/// One region's change of state: raised (`stopped`) or resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub region: String,
    pub stopped: bool,
    pub reason: String,
}

fn newest_run(state: &State, region: &str) -> Option<OffsetDateTime> {
    let runs = state.regions.iter().map(|(name, r)| (name, r.last_run));
    let rejected = state.rejected_runs.iter().map(|(name, at)| (name, at.0));
    runs.chain(rejected).filter(|(name, _)| region == ANY_REGION || *name == region).map(|(_, at)| at).max()
}

/// Decides, for one check's `state`, which of its `expected` regions stopped reporting (nothing
/// for `stale_after`) or reported again, and resolves regions no longer expected. Returns the
/// changes and whether the state must be written.
pub fn decide(
    state: &mut State,
    expected: &[String],
    stale_after: Duration,
    now: OffsetDateTime,
) -> (Vec<Change>, bool) {
    let mut changes = Vec::new();
    let mut dirty = false;
    for region in expected {
        let newest = newest_run(state, region);
        let watch = state.stopped.entry(region.clone()).or_insert_with(|| {
            dirty = true;
            Watch { since: now, seen: now, raised: false }
        });
        if !watch.raised && now - watch.seen >= FORGOTTEN_AFTER {
            watch.since = now;
            dirty = true;
        }
        if now - watch.seen >= REFRESH_EVERY {
            watch.seen = now;
            dirty = true;
        }
        let last = newest.map_or(watch.since, |n| n.max(watch.since));
        let stopped = now - last >= stale_after;
        if stopped != watch.raised {
            watch.raised = stopped;
            dirty = true;
            let reason = match (stopped, newest) {
                (true, Some(newest)) => format!(
                    "no run since {newest}: {} min, the limit is {} min",
                    (now - newest).whole_minutes(),
                    stale_after.whole_minutes()
                ),
                (true, None) => {
                    format!("no run at all since it was deployed ({} min ago)", (now - watch.since).whole_minutes())
                }
                (false, _) => {
                    format!("runs again (last {})", newest.map_or_else(|| "unknown".into(), |n| n.to_string()))
                }
            };
            changes.push(Change { region: region.clone(), stopped, reason });
        }
    }
    let gone: Vec<String> = state.stopped.keys().filter(|r| !expected.contains(r)).cloned().collect();
    for region in gone {
        dirty = true;
        if state.stopped.remove(&region).is_some_and(|w| w.raised) {
            let reason = "no longer deployed here (removed, disabled or moved by a deploy)".to_string();
            changes.push(Change { region, stopped: false, reason });
        }
    }
    (changes, dirty)
}

/// Port: the operations topic.
#[async_trait]
pub trait OpsChannel: Send + Sync {
    async fn publish(&self, subject: &str, message: &Value) -> Result<(), PublishError>;
}

#[async_trait]
impl OpsChannel for SnsNotifier {
    async fn publish(&self, subject: &str, message: &Value) -> Result<(), PublishError> {
        self.publish_raw(subject, &message.to_string()).await
    }
}

/// In-memory fake of the operations topic: records `(subject, message)`.
pub type RecordingOps = Recording<(String, Value)>;

#[async_trait]
impl OpsChannel for RecordingOps {
    async fn publish(&self, subject: &str, message: &Value) -> Result<(), PublishError> {
        self.deliver((subject.to_string(), message.clone()))
    }
}

/// What one sweep did: the alarm names it raised and resolved.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Swept {
    pub watched: usize,
    pub raised: Vec<String>,
    pub resolved: Vec<String>,
}

/// The list (in the table's open-incident index) of the checks with a raised region, so a
/// check removed from the plan is still found and resolved.
fn raised_list(env: &str) -> String {
    format!("{env}#stopped")
}

/// The alarm name of one check's region.
fn alarm_name(prefix: &str, check: &str, region: &str) -> String {
    match region {
        ANY_REGION => format!("{prefix}{check}-stopped"),
        _ => format!("{prefix}{check}-stopped-{region}"),
    }
}

/// The notification of one change, shaped like CloudWatch's.
fn notification(name: &str, env: &str, check: &str, change: &Change, now: OffsetDateTime) -> Value {
    let (new, old) = if change.stopped { ("ALARM", "OK") } else { ("OK", "ALARM") };
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000");
    let region = if change.region == ANY_REGION { None } else { Some(change.region.as_str()) };
    json!({
        "AlarmName": name,
        "AlarmDescription": format!("The '{check}' check ({env}) stopped reporting{}: the sweep found no recent run. Runbook: infra/README.md, \"A check stopped reporting\".",
            region.map(|r| format!(" in {r}")).unwrap_or_default()),
        "NewStateValue": new,
        "OldStateValue": old,
        "NewStateReason": change.reason,
        "StateChangeTime": now.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default(),
        "Region": region,
        "Source": "synthetic stopped-check sweep",
    })
}

/// One sweep of the env's checks.
pub async fn sweep(
    config: &ForwarderConfig,
    store: Option<&dyn StateStore>,
    ops: Option<&dyn OpsChannel>,
    now: OffsetDateTime,
) -> Result<Swept, CheckError> {
    let missing = |name: &str, why: &str| CheckError::Misconfigured(format!("{name} is not set: {why}"));
    let env = config
        .check_env
        .as_deref()
        .ok_or_else(|| missing("CHECK_ENV", "the sweep cannot tell whose checks to watch"))?;
    let store = store.ok_or_else(|| missing("STATE_TABLE", "the sweep reads the runs from the state table"))?;
    let ops = ops.ok_or_else(|| missing("OPS_TOPIC_ARN", "the sweep raises stopped checks on the operations topic"))?;
    if config.plan.checks.is_empty() {
        return Err(CheckError::Misconfigured(
            "CHECK_PLAN_FILE is unset or lists no check: the sweep has nothing to watch".into(),
        ));
    }
    let unavailable = |e: StoreError| CheckError::AlertUndeliverable {
        attempts: 1,
        reason: format!("the stopped-check sweep cannot read the state table: {e}"),
    };
    let prefix = config.alarm_name_prefix.clone().unwrap_or_else(|| format!("synthetic-{env}-"));
    let listed = store.open_subjects(&raised_list(env)).await.map_err(unavailable)?;
    let subjects: BTreeSet<&str> =
        config.plan.checks.iter().map(|c| c.name.as_str()).chain(listed.iter().map(String::as_str)).collect();
    let mut swept = Swept::default();
    let mut failures = Vec::new();
    for check in subjects {
        let planned = config.plan.check(check).filter(|c| c.enabled);
        let expected: Vec<String> = match planned {
            None => Vec::new(),
            Some(c) if !c.regions.is_empty() => c.regions.clone(),
            Some(_) if !config.policy.regions.is_empty() => config.policy.regions.clone(),
            Some(_) => vec![ANY_REGION.to_string()],
        };
        let periods = i64::from(config.policy.stopped_after_periods);
        let stale_after = Duration::minutes(periods * i64::from(planned.map_or(15, |c| c.schedule_minutes)));
        swept.watched += expected.len();
        match sweep_check(store, ops, &prefix, env, check, &expected, stale_after, now).await {
            Ok((raised, resolved)) => {
                swept.raised.extend(raised);
                swept.resolved.extend(resolved);
            }
            Err(error) => failures.push(format!("{check}: {error}")),
        }
    }
    match failures.is_empty() {
        true => Ok(swept),
        false => Err(CheckError::AlertUndeliverable {
            attempts: 1,
            reason: format!("the stopped-check sweep failed for {}", failures.join("; ")),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn sweep_check(
    store: &dyn StateStore,
    ops: &dyn OpsChannel,
    prefix: &str,
    env: &str,
    check: &str,
    expected: &[String],
    stale_after: Duration,
    now: OffsetDateTime,
) -> Result<(Vec<String>, Vec<String>), String> {
    let key = record_key(env, check);
    let (mut raised, mut resolved) = (Vec::new(), Vec::new());
    for _ in 0..MAX_RACES {
        let (mut record, version) = store.load(&key).await.map_err(|e| e.to_string())?;
        let was_raised = record.state.stopped.values().any(|w| w.raised);
        let (changes, dirty) = decide(&mut record.state, expected, stale_after, now);
        if !dirty {
            return Ok((raised, resolved));
        }
        for change in &changes {
            let name = alarm_name(prefix, check, &change.region);
            let state = if change.stopped { "ALARM" } else { "OK" };
            let subject: String = format!("{state}: \"{name}\" ({env})").chars().take(100).collect();
            let message = notification(&name, env, check, change, now);
            synthetic_checks::alert::publish_with_retries(
                synthetic_checks::journey::RetryPolicy { attempts: 3, backoff: std::time::Duration::from_millis(200) },
                || ops.publish(&subject, &message),
            )
            .await
            .map_err(|(attempts, e)| format!("{name} {state} not published after {attempts} attempt(s): {e:?}"))?;
            lambda_runtime::tracing::warn!(alarm = %name, state, reason = %change.reason, "stopped-check sweep");
            match change.stopped {
                true => raised.push(name),
                false => resolved.push(name),
            }
        }
        match store.save(&key, &record, version).await {
            Ok(()) => {
                let now_raised = record.state.stopped.values().any(|w| w.raised);
                if now_raised != was_raised
                    && let Err(error) = store.set_open(&raised_list(env), check, now_raised).await
                {
                    lambda_runtime::tracing::warn!(%check, %error, "the list of stopped checks was not updated; the next change writes it");
                }
                return Ok((raised, resolved));
            }
            Err(StoreError::Conflict) => continue,
            Err(error) => return Err(error.to_string()),
        }
    }
    Err("its record kept changing under concurrent writers; the next sweep decides".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::RegionState;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

    fn ran(state: &mut State, region: &str, at: OffsetDateTime) {
        state.regions.insert(
            region.into(),
            RegionState {
                last_run: at,
                last_failed: false,
                failed_streak: 0,
                passed_streak: 1,
                streak_severity: None,
                failing_since: None,
                incident: false,
                silent_warned: false,
            },
        );
    }

    fn minutes(n: i64) -> OffsetDateTime {
        T0 + Duration::minutes(n)
    }

    /// Every 5 minutes from `from` to `to`, the sweep of a 5-minute check in `regions`: the minute
    /// of each change.
    fn sweeps(state: &mut State, regions: &[&str], from: i64, to: i64) -> Vec<(i64, String, bool)> {
        let expected: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        (from..to)
            .step_by(5)
            .flat_map(|m| {
                let (changes, _) = decide(state, &expected, Duration::minutes(15), minutes(m));
                changes.into_iter().map(move |c| (m, c.region, c.stopped))
            })
            .collect()
    }

    #[test]
    fn a_check_that_goes_silent_is_raised_after_three_periods_and_resolved_when_it_runs() {
        let mut state = State::default();
        ran(&mut state, "us-east-1", minutes(0));
        assert_eq!(sweeps(&mut state, &["us-east-1"], 0, 15), []);
        assert_eq!(sweeps(&mut state, &["us-east-1"], 15, 30), [(15, "us-east-1".into(), true)]);
        ran(&mut state, "us-east-1", minutes(31));
        assert_eq!(sweeps(&mut state, &["us-east-1"], 35, 45), [(35, "us-east-1".into(), false)]);
    }

    #[test]
    fn a_check_whose_account_is_rejected_still_reports() {
        let mut state = State::default();
        ran(&mut state, "us-east-1", minutes(0));
        state.rejected_runs.insert("us-east-1".into(), Reported(minutes(10)));
        assert_eq!(sweeps(&mut state, &["us-east-1"], 0, 25), [], "its rejected runs are runs");
        assert_eq!(sweeps(&mut state, &["us-east-1"], 25, 30), [(25, "us-east-1".into(), true)]);
    }

    #[test]
    fn a_new_check_gets_its_grace_and_one_that_never_runs_is_raised() {
        let mut state = State::default();
        assert_eq!(sweeps(&mut state, &[ANY_REGION], 0, 15), [], "deployed at minute 0");
        ran(&mut state, "eu-west-1", minutes(12));
        assert_eq!(sweeps(&mut state, &[ANY_REGION], 15, 25), [], "any region's run counts");
        let mut never = State::default();
        let changes = sweeps(&mut never, &[ANY_REGION], 0, 20);
        assert_eq!(changes, [(15, ANY_REGION.into(), true)]);
    }

    #[test]
    fn a_removed_region_is_resolved_and_a_re_enabled_check_starts_a_new_grace() {
        let mut state = State::default();
        ran(&mut state, "us-east-1", minutes(10));
        sweeps(&mut state, &["us-east-1", "eu-west-1"], 0, 20);
        assert_eq!(state.stopped.values().filter(|w| w.raised).count(), 1, "eu-west-1 never ran");
        // A deploy moves the check out of eu-west-1 and disables it.
        assert_eq!(sweeps(&mut state, &["us-east-1"], 20, 25), [(20, "eu-west-1".into(), false)]);
        assert_eq!(
            sweeps(&mut state, &[], 25, 30),
            [],
            "a disabled check raises nothing and resolves what was not raised silently"
        );
        assert!(state.stopped.is_empty());
        // Re-enabled two hours later: its last run is old, but the grace starts now.
        assert_eq!(sweeps(&mut state, &["us-east-1"], 150, 160), []);
        assert_eq!(sweeps(&mut state, &["us-east-1"], 160, 170), [(165, "us-east-1".into(), true)]);
    }

    #[test]
    fn a_watch_not_looked_at_for_an_hour_starts_again_unless_it_is_raised() {
        let mut state = State::default();
        ran(&mut state, "us-east-1", minutes(0));
        sweeps(&mut state, &["us-east-1"], 0, 5);
        assert_eq!(sweeps(&mut state, &["us-east-1"], 120, 140), [(135, "us-east-1".into(), true)]);
        assert_eq!(sweeps(&mut state, &["us-east-1"], 300, 305), [], "still raised: never resolved by a gap in sweeps");
    }

    fn planned(name: &str, enabled: bool) -> synthetic_checks::plan::PlannedCheck {
        synthetic_checks::plan::PlannedCheck {
            name: name.into(),
            schedule_minutes: 5,
            regions: Vec::new(),
            tags: Vec::new(),
            depends_on: Vec::new(),
            enabled,
            timeout_seconds: 30,
            reads_account_secret: false,
            journey_sha256: String::new(),
        }
    }

    #[tokio::test]
    async fn the_sweep_raises_a_silent_check_and_resolves_it_once_removed_from_the_plan() {
        use crate::state::{MemoryStore, Record};
        use std::sync::Arc;
        use synthetic_checks::plan::Plan;
        let mut config = ForwarderConfig::from_lookup(&|name| match name {
            "PAGERDUTY_SECRET_ID" => Some("pd".into()),
            "CHECK_ENV" => Some("prod".into()),
            "ALARM_NAME_PREFIX" => Some("synth-prod-".into()),
            _ => None,
        })
        .unwrap();
        config.plan = Arc::new(Plan { checks: vec![planned("health", true), planned("payment", false)] });
        let store = MemoryStore::default();
        let mut record = Record::default();
        ran(&mut record.state, "us-east-1", minutes(0));
        store.save(&record_key("prod", "health"), &record, 0).await.unwrap();
        let ops = RecordingOps::default();

        let missing = sweep(&config, None, Some(&ops), minutes(5)).await.unwrap_err();
        assert!(missing.to_string().contains("STATE_TABLE"), "{missing}");
        let first = sweep(&config, Some(&store), Some(&ops), minutes(5)).await.unwrap();
        assert_eq!((first.watched, first.raised.len()), (1, 0), "the disabled check is not watched");
        ops.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 503".into()), 3));
        let failed = sweep(&config, Some(&store), Some(&ops), minutes(20)).await.unwrap_err();
        assert_eq!(failed.error_type(), "AlertUndeliverable");
        assert!(failed.to_string().contains("synth-prod-health-stopped ALARM not published"), "{failed}");
        let raised = sweep(&config, Some(&store), Some(&ops), minutes(25)).await.unwrap();
        assert_eq!(raised.raised, ["synth-prod-health-stopped"], "the next sweep raises what could not be published");
        assert!(sweep(&config, Some(&store), Some(&ops), minutes(30)).await.unwrap().raised.is_empty(), "raised once");

        // A deploy deletes the check and adds another: the stopped one is resolved, the new one gets its grace.
        config.plan = Arc::new(Plan { checks: vec![planned("search", true)] });
        let after = sweep(&config, Some(&store), Some(&ops), minutes(35)).await.unwrap();
        assert_eq!(
            (after.raised.len(), after.resolved.as_slice()),
            (0, ["synth-prod-health-stopped".to_string()].as_slice())
        );
        let sent: Vec<_> =
            ops.delivered().iter().map(|(_, m)| (m["AlarmName"].clone(), m["NewStateValue"].clone())).collect();
        assert_eq!(
            sent,
            [(json!("synth-prod-health-stopped"), json!("ALARM")), (json!("synth-prod-health-stopped"), json!("OK"))]
        );
        assert!(sweep(&config, Some(&store), Some(&ops), minutes(40)).await.unwrap().resolved.is_empty());
    }

    #[test]
    fn the_event_and_the_notification_have_their_shapes() {
        assert_eq!(as_sweep(&json!({"sweep": "stopped-checks"})), Some(None));
        let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-21T10:05:00Z", "detail": {}});
        assert_eq!(as_sweep(&tick), Some(Some(datetime!(2026-11-21 10:05 UTC))));
        assert_eq!(as_sweep(&json!({"Records": []})), None);
        let change = Change { region: "eu-west-1".into(), stopped: true, reason: "no run since …".into() };
        let name = alarm_name("synth-prod-", "payment", "eu-west-1");
        let message = notification(&name, "prod", "payment", &change, datetime!(2026-11-21 10:05:30.5 UTC));
        assert_eq!(message["AlarmName"], "synth-prod-payment-stopped-eu-west-1");
        assert_eq!(
            (&message["NewStateValue"], &message["StateChangeTime"]),
            (&json!("ALARM"), &json!("2026-11-21T10:05:30.500+0000"))
        );
        assert_eq!(alarm_name("p-", "health", ANY_REGION), "p-health-stopped");
    }
}

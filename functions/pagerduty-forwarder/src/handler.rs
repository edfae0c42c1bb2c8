//! The Lambda handler: every SNS record in, one PagerDuty event out per alert message.
//!
//! Every record is processed, even after one failed, so a bad message cannot hold back a page.
//! A record fails when its message is not an alert, the routing key cannot be read, or PagerDuty
//! stays unavailable through the retries; the invocation then fails listing those message ids,
//! so Lambda's retries and the dead-letter queue keep them. Two kinds of record are dropped
//! instead, logged and counted, because sending them again could never help: a stale alert
//! (`PagerDutyStaleDropped`, see [`crate::freshness`]) and one PagerDuty refused with a 400
//! (`PagerDutyRejected`). A 400 that blames the routing key is first retried once with the key
//! re-read from the secret, so a rotated key does not drop pages until the next cold start.
//!
//! With a state table (`STATE_TABLE`), runs and burn-rate alarms do not page directly: the
//! [`Tracker`] applies them to their subject's record and the forwarder delivers what the
//! [`incident`](crate::incident) policy decided (a confirmed page, a resolve, a warning to the human
//! channels). A table that cannot be read or written must not lose a page: the run is then
//! forwarded as it is, every failed run paging, and the event says why.

use crate::alarm::{AlarmSignal, Notification};
use crate::config::ForwarderConfig;
use crate::dynamodb::DynamoStore;
use crate::event::{self, Event};
use crate::freshness::Freshness;
use crate::pagerduty::{self, EventsApi, HttpEventsApi};
use crate::rate;
use crate::routing_key::RoutingKey;
use crate::state::{Channel, Pending, StateStore, StoreError, record_key};
use crate::sweep::{self, OpsChannel};
use crate::tracker::{Fallback, Input, Tracker};
use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent, tracing};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use synthetic_checks::CheckError;
use synthetic_checks::alert::{
    AlertMessage, EventAction, MONITOR_ACCOUNT, Notifier, PublishError, Severity, dedup_key, publish_with_retries,
};
use synthetic_checks::aws::{self, secrets_manager::SecretsManagerSource, sns::SnsNotifier};
use synthetic_checks::error::Cause;
use synthetic_checks::metrics::{MetricsSink, StdoutEmf, emf_count};
use synthetic_checks::result::{Account, Outcome};
use synthetic_checks::secret::{Secret, SecretSource};
use synthetic_checks::text::{one_line, truncate};
use time::OffsetDateTime;

pub const REJECTED_METRIC: &str = "PagerDutyRejected";
pub const STALE_METRIC: &str = "PagerDutyStaleDropped";
/// Counted each time the state table could not be used and a run was paged without it.
pub const FALLBACK_METRIC: &str = "IncidentStateUnavailable";

/// Where "now" comes from, so tests can stand at a fixed time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The adapters behind the ports, chosen by whoever builds the forwarder.
pub struct Adapters {
    pub secrets: Arc<dyn SecretSource>,
    pub events: Arc<dyn EventsApi>,
    pub metrics: Arc<dyn MetricsSink>,
    pub clock: Clock,
    /// The state table, when `STATE_TABLE` is set.
    pub state: Option<Arc<dyn StateStore>>,
    /// The human channels, when `NOTIFY_TOPIC_ARN` is set.
    pub humans: Option<Arc<dyn Notifier>>,
}

pub struct Forwarder {
    config: ForwarderConfig,
    routing_key: RoutingKey,
    freshness: Freshness,
    events: Arc<dyn EventsApi>,
    metrics: Arc<dyn MetricsSink>,
    clock: Clock,
    tracker: Option<Tracker>,
    humans: Option<Arc<dyn Notifier>>,
    /// What the table-unavailable fallback sent, by record key, until the record has taken it in
    /// (see [`Fallback`]). Per warm instance, like [`Freshness`].
    fallbacks: Mutex<HashMap<String, Fallback>>,
    /// When this instance last looked for orphans, per env.
    swept: Mutex<HashMap<String, OffsetDateTime>>,
    /// The operations topic, for the stopped-check sweep ([`crate::sweep`]).
    ops: Option<Arc<dyn OpsChannel>>,
}

/// Rounds of [`Forwarder::flush`] for what other invocations queue while this one sends.
const MAX_SEND_ROUNDS: usize = 3;

/// Records of the outbox one invocation sends at most, besides its own: a drain stays well
/// within the forwarder's timeout, and the next invocation goes on.
const MAX_DRAIN: usize = 25;

/// What sending one record's queue did.
#[derive(Clone, Copy, Debug, Default)]
struct Flushed {
    /// Something went to PagerDuty.
    paged: bool,
    /// PagerDuty's rate left some of it waiting in the outbox.
    full: bool,
}

/// How often an instance looks for subjects that stopped reporting with an incident open.
const SWEEP_EVERY: time::Duration = time::Duration::HOUR;

/// What became of each record, by SNS message id. The invocation's (ignored) response.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Forwarded {
    pub delivered: Vec<String>,
    /// Refused by PagerDuty with a 400 and dropped.
    pub rejected: Vec<String>,
    /// Older than an alert already sent for the same dedup key, or than `MAX_EVENT_AGE_SECS`;
    /// dropped without being sent.
    pub stale: Vec<String>,
    /// Applied to the incident state; nothing was due to PagerDuty.
    pub recorded: Vec<String>,
}

enum Sent {
    Delivered,
    Rejected,
    Stale,
    Recorded,
    /// Queued on a record, and gone from it before it could be sent: another invocation sent it,
    /// or a later decision (a resolve) replaced it.
    Superseded,
}

/// How an event is kept in order with the others of its dedup key.
#[derive(Clone, Copy)]
enum Order<'a> {
    /// By the run's own time, in this instance's memory ([`Freshness`]): without the table.
    ByRunTime,
    /// Queued as entry `id` on the record `key`: sent only while it is still queued there.
    Queued { tracker: &'a Tracker, key: &'a str, id: u64 },
}

/// The send loop's reason when a queued event left its record during a backoff.
const SUPERSEDED: &str = "superseded on its record";

/// A warning the human channels did not take; `keep` when a later attempt may succeed.
struct Unwarned {
    keep: bool,
    error: CheckError,
}

#[derive(Debug, thiserror::Error)]
#[error("message {message_id}: {error}")]
pub struct RecordFailure {
    pub message_id: String,
    #[source]
    pub error: CheckError,
}

/// The records of a batch that were not forwarded; the others were.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} SNS record(s) not forwarded: {}", .failures.len(), list(.failures))]
pub struct ForwardError {
    pub total: usize,
    pub failures: Vec<RecordFailure>,
}

fn list(failures: &[RecordFailure]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ForwardError {
    /// The failures' own type when they share one (always so for SNS's one-record batches),
    /// else `BatchFailed`.
    pub fn error_type(&self) -> &'static str {
        let mut types = self.failures.iter().map(|f| f.error.error_type());
        match types.next() {
            Some(first) if types.all(|t| t == first) => first,
            _ => "BatchFailed",
        }
    }
}

impl From<ForwardError> for Diagnostic {
    fn from(error: ForwardError) -> Diagnostic {
        Diagnostic { error_type: error.error_type().to_string(), error_message: error.to_string() }
    }
}

impl Forwarder {
    pub fn new(config: ForwarderConfig, adapters: Adapters) -> Self {
        Forwarder {
            routing_key: RoutingKey::new(adapters.secrets, config.secret_id.clone()),
            freshness: Freshness::new(config.max_event_age),
            tracker: adapters
                .state
                .map(|store| Tracker::new(store, config.policy.clone()).with_plan(config.plan.clone())),
            humans: adapters.humans,
            fallbacks: Mutex::default(),
            swept: Mutex::default(),
            ops: None,
            config,
            events: adapters.events,
            metrics: adapters.metrics,
            clock: adapters.clock,
        }
    }

    /// Cold start: configuration from the environment, then the SDK and HTTP clients, once.
    pub async fn from_env() -> Result<Self, CheckError> {
        let config = ForwarderConfig::from_env()?;
        let events = HttpEventsApi::reqwest(&config)?;
        let sdk = aws::sdk_config().await;
        let adapters = Adapters {
            secrets: Arc::new(SecretsManagerSource::new(&sdk)),
            events: Arc::new(events),
            metrics: Arc::new(StdoutEmf),
            clock: Arc::new(OffsetDateTime::now_utc),
            state: config.state_table.as_deref().map(|table| Arc::new(DynamoStore::new(&sdk, table)) as _),
            humans: config.notify_topic_arn.as_deref().map(|arn| Arc::new(SnsNotifier::new(&sdk, arn)) as _),
        };
        let ops = config.ops_topic_arn.as_deref().map(|arn| Arc::new(SnsNotifier::new(&sdk, arn)) as _);
        Ok(Forwarder::new(config, adapters).with_ops(ops))
    }

    /// The operations topic the stopped-check sweep raises on.
    pub fn with_ops(mut self, ops: Option<Arc<dyn OpsChannel>>) -> Self {
        self.ops = ops;
        self
    }

    /// The Lambda entry point: SNS records, or the sweep's schedule (`{"sweep": "stopped-checks"}`).
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        let (payload, context) = event.into_parts();
        if let Some(at) = sweep::as_sweep(&payload) {
            let store = self.tracker.as_ref().map(|t| t.store().as_ref());
            let at = at.unwrap_or_else(|| (self.clock)());
            let swept = sweep::sweep(&self.config, store, self.ops.as_deref(), at).await?;
            let env = self.config.check_env.as_deref().unwrap_or_default();
            self.metrics.emit(&emf_count(&self.config.metrics_namespace, sweep::SWEEP_METRIC, &[("env", env)]));
            return Ok(serde_json::to_value(swept).unwrap_or_default());
        }
        let records: SnsEvent = serde_json::from_value(payload).map_err(|e| {
            CheckError::InvalidEvent(format!(
                "neither SNS records nor the sweep's schedule ({})",
                truncate(&one_line(&e.to_string()), 300)
            ))
        })?;
        let forwarded = self.handle(LambdaEvent::new(records, context)).await?;
        Ok(serde_json::to_value(forwarded).unwrap_or_default())
    }

    pub fn config(&self) -> &ForwarderConfig {
        &self.config
    }

    pub async fn handle(&self, event: LambdaEvent<SnsEvent>) -> Result<Forwarded, ForwardError> {
        let records = event.payload.records;
        let mut forwarded = Forwarded::default();
        let mut failures = Vec::new();
        // In order: a trigger and its resolve in one batch must reach PagerDuty in that order.
        for record in &records {
            let message_id = record.sns.message_id.clone();
            match self.forward(&record.sns).await {
                Ok(Sent::Delivered) => forwarded.delivered.push(message_id),
                Ok(Sent::Rejected) => forwarded.rejected.push(message_id),
                Ok(Sent::Stale) => forwarded.stale.push(message_id),
                Ok(Sent::Recorded | Sent::Superseded) => forwarded.recorded.push(message_id),
                Err(error) => {
                    tracing::error!(%message_id, error_type = error.error_type(), %error, "record not forwarded");
                    failures.push(RecordFailure { message_id, error });
                }
            }
        }
        match failures.is_empty() {
            true => Ok(forwarded),
            false => Err(ForwardError { total: records.len(), failures }),
        }
    }

    async fn forward(&self, message: &SnsMessage) -> Result<Sent, CheckError> {
        if let Some(notification) = Notification::parse(&message.message) {
            let signal = notification
                .map_err(|e| {
                    CheckError::InvalidEvent(format!("the SNS message is not a CloudWatch alarm notification ({e})"))
                })?
                .signal(self.config.alarm_name_prefix.as_deref())
                .map_err(CheckError::InvalidEvent)?;
            // Like a run's time: no later than SNS received it, so a skewed stamp cannot hide
            // the alarm's next changes.
            let at = received_at(message).map_or(signal.at, |received| signal.at.min(received));
            let signal = AlarmSignal { at, ..signal };
            return self.forward_alarm(message, &signal).await;
        }
        let alert = parse_alert(&message.message)?;
        let (Some(tracker), Some(run_time)) = (&self.tracker, event::run_time(&alert)) else {
            return self.forward_directly(message, &alert, None).await;
        };
        // A run cannot have ended after SNS received its alert: a check whose clock is ahead
        // would otherwise make every later run of its region look late.
        let run_time = received_at(message).map_or(run_time, |received| run_time.min(received));
        if let Err(stale) = self.freshness.check_age(run_time, (self.clock)()) {
            return Ok(self.drop_stale(message, &alert, &stale));
        }
        let region = alert.region.as_deref().filter(|r| !r.is_empty()).unwrap_or("default");
        let failed = alert.status != Outcome::Passed;
        // A rejected account says nothing about the journey: it is a run of the monitor account.
        let mut subjects = Vec::new();
        match alert.cause {
            Some(Cause::CredentialsRejected) => subjects.push((MONITOR_ACCOUNT, true, Severity::Error)),
            _ => subjects.push((alert.check.as_str(), failed, alert.severity)),
        }
        if alert.account == Some(Account::Accepted) {
            subjects.push((MONITOR_ACCOUNT, false, Severity::Info));
        }
        let open: Vec<(&str, bool)> = subjects.iter().map(|(subject, failed, _)| (*subject, *failed)).collect();
        let silences = match tracker.silences(&alert.env).await {
            Ok(silences) => silences,
            Err(error) => return self.fallback(message, &alert, &open, run_time, &error).await,
        };
        let mut sent = Sent::Recorded;
        for (subject, failed, severity) in subjects {
            let input = Input::Run { base: &alert, region, at: run_time, failed, severity };
            let fallback = self.fallback_of(&alert.env, subject);
            match tracker.record(&alert.env, subject, &silences, input, fallback).await {
                Ok((key, pending)) => {
                    self.reconciled(&key, fallback);
                    if self.flush(tracker, message, &key, pending).await? {
                        sent = Sent::Delivered;
                    }
                }
                Err(StoreError::Conflict) => return Err(contended(subject)),
                Err(error) => return self.fallback(message, &alert, &open, run_time, &error).await,
            }
        }
        if alert.cause == Some(Cause::CredentialsRejected)
            && let Err(error) = tracker.rejected_run(&alert.env, &alert.check, region, run_time).await
        {
            // Only the sweep reads it; its next run of the check writes it again.
            tracing::warn!(check = %alert.check, %error, "a rejected run was not noted on its check");
        }
        self.sweep_if_due(tracker, message, &alert.env).await;
        Ok(sent)
    }

    /// Now and then (every [`SWEEP_EVERY`] per instance and env), resolves the incidents of
    /// subjects that stopped reporting: a check removed or renamed while its incident was open
    /// would otherwise keep it open forever. Its failures are logged, never the run's.
    async fn sweep_if_due(&self, tracker: &Tracker, message: &SnsMessage, env: &str) {
        let now = (self.clock)();
        {
            let mut swept = self.swept.lock().unwrap_or_else(PoisonError::into_inner);
            if swept.get(env).is_some_and(|at| now - *at < SWEEP_EVERY) {
                return;
            }
            swept.insert(env.to_string(), now);
        }
        let records = match tracker.sweep(env, now).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%env, %error, "orphaned incidents not swept; the next sweep tries again");
                return;
            }
        };
        for (key, pending) in records {
            if let Err(error) = self.flush(tracker, message, &key, pending).await {
                tracing::warn!(%key, %error, "an orphan's resolve stays queued; the next sweep sends it");
            }
        }
    }

    /// The run forwarded without the table; what reached PagerDuty is remembered for each
    /// subject (`open`: whether its incident is now open there) until its record takes it in.
    async fn fallback(
        &self,
        message: &SnsMessage,
        alert: &AlertMessage,
        open: &[(&str, bool)],
        at: OffsetDateTime,
        error: &StoreError,
    ) -> Result<Sent, CheckError> {
        let sent = self.forward_directly(message, alert, Some(error)).await?;
        if matches!(sent, Sent::Delivered) {
            let mut fallbacks = self.fallbacks.lock().unwrap_or_else(PoisonError::into_inner);
            for (subject, open) in open {
                let entry = fallbacks.entry(record_key(&alert.env, subject)).or_insert(Fallback { open: *open, at });
                if entry.at <= at {
                    *entry = Fallback { open: *open, at };
                }
            }
        }
        Ok(sent)
    }

    fn fallback_of(&self, env: &str, subject: &str) -> Option<Fallback> {
        self.fallbacks.lock().unwrap_or_else(PoisonError::into_inner).get(&record_key(env, subject)).copied()
    }

    /// The record `key` took in `fallback`: forgotten, unless a newer fallback replaced it.
    fn reconciled(&self, key: &str, fallback: Option<Fallback>) {
        let mut fallbacks = self.fallbacks.lock().unwrap_or_else(PoisonError::into_inner);
        if fallback.is_some() && fallbacks.get(key).copied() == fallback {
            fallbacks.remove(key);
        }
    }

    /// The run's alert as it is: every failed run pages. What the forwarder does without a state
    /// table, and when the table fails it (`unavailable` says why, in the event and a metric).
    async fn forward_directly(
        &self,
        message: &SnsMessage,
        alert: &AlertMessage,
        unavailable: Option<&StoreError>,
    ) -> Result<Sent, CheckError> {
        let mut details = serde_json::Map::new();
        if let Some(error) = unavailable {
            tracing::error!(message_id = %message.message_id, check = %alert.check, %error, "incident state unavailable; forwarding the run without confirmation");
            self.count(FALLBACK_METRIC, alert, message);
            details.insert(
                "incident_state".into(),
                format!("{error}; every failed run pages, without confirmation or silences").into(),
            );
        }
        let event = Event::from_alert(alert, &self.config).with_details(&details);
        let sent = self.deliver(message, alert, event, Order::ByRunTime).await?;
        // A run that signed in proves the synthetic account works again: the monitor-account
        // incident (opened by any check whose login was rejected) is resolved by it.
        if alert.account == Some(Account::Accepted) {
            let mut healed = alert.clone();
            healed.event_action = EventAction::Resolve;
            healed.dedup_key = dedup_key(&alert.env, MONITOR_ACCOUNT);
            self.deliver(message, &healed, Event::from_alert(&healed, &self.config), Order::ByRunTime).await?;
        }
        Ok(sent)
    }

    async fn forward_alarm(&self, message: &SnsMessage, signal: &AlarmSignal) -> Result<Sent, CheckError> {
        let env = self.config.check_env.as_deref();
        let (Some(check), Some(env)) = (signal.check.as_deref(), env) else {
            if signal.check.is_some() {
                return Err(CheckError::Misconfigured(format!(
                    "CHECK_ENV is not set, so alarm {} cannot join its check's incident",
                    signal.name
                )));
            }
            // Not one of ours: forwarded as its own incident rather than lost.
            let alert = signal.alert(&signal.name, env.unwrap_or("unknown"), Severity::Error);
            return self.deliver(message, &alert, Event::from_alert(&alert, &self.config), Order::ByRunTime).await;
        };
        let mut alert = signal.alert(check, env, Severity::Critical);
        let Some(tracker) = &self.tracker else {
            if !signal.alarm {
                return Ok(Sent::Recorded);
            }
            alert.dedup_key = dedup_key(env, check);
            return self.deliver(message, &alert, Event::from_alert(&alert, &self.config), Order::ByRunTime).await;
        };
        let fallback = self.fallback_of(env, check);
        let recorded = match tracker.silences(env).await {
            Ok(silences) => {
                tracker.record(env, check, &silences, Input::Alarm { base: &alert, signal }, fallback).await
            }
            Err(error) => Err(error),
        };
        match recorded {
            Ok((key, pending)) => {
                self.reconciled(&key, fallback);
                match self.flush(tracker, message, &key, pending).await? {
                    true => Ok(Sent::Delivered),
                    false => Ok(Sent::Recorded),
                }
            }
            Err(StoreError::Conflict) => Err(contended(check)),
            Err(error) if signal.alarm => {
                alert.dedup_key = dedup_key(env, check);
                self.fallback(message, &alert, &[(check, true)], signal.at, &error).await
            }
            Err(error) => {
                tracing::warn!(alarm = %signal.name, %error, "incident state unavailable; an alarm's return to OK changes nothing without it");
                Ok(Sent::Recorded)
            }
        }
    }

    /// Sends record `key`'s pending list within PagerDuty's rate ([`crate::rate`]): at once
    /// while nothing waits for the rate; otherwise the record takes its place in the outbox and
    /// the outbox is drained, triggers first, as far as the rate allows (this record's warnings
    /// go out whatever its place). Whether anything of this record went to PagerDuty.
    async fn flush(
        &self,
        tracker: &Tracker,
        message: &SnsMessage,
        key: &str,
        pending: Vec<Pending>,
    ) -> Result<bool, CheckError> {
        let outbox = tracker.store().deferred().await.unwrap_or_else(|error| {
            // An unreadable outbox does not hold a page back; the next invocation drains it.
            tracing::warn!(%key, %error, "the outbox could not be read; sending this record's events at once");
            Vec::new()
        });
        let listed = outbox.iter().any(|(k, _)| k == key);
        if outbox.is_empty() {
            return Ok(self.send_claimed(tracker, message, key, pending, false).await?.paged);
        }
        let mut queue = outbox;
        if !listed {
            // After everything listed when nothing of it waits for PagerDuty: only warnings.
            let order = rate::outbox_order(&pending).unwrap_or_else(|| "2".into());
            queue.push((key.to_string(), order));
        }
        queue.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let (mut paged, mut drained, mut full) = (false, 0, false);
        for (listed_key, _) in &queue {
            let mine = listed_key == key;
            if !mine && (full || drained >= MAX_DRAIN) {
                continue;
            }
            let own = if mine { pending.clone() } else { Vec::new() };
            match self.send_claimed(tracker, message, listed_key, own, !mine || listed).await {
                Ok(flushed) => {
                    full |= flushed.full;
                    paged |= mine && flushed.paged;
                }
                Err(error) if mine => return Err(error),
                Err(error) => {
                    tracing::warn!(key = %listed_key, %error, "queued events stay in the outbox for the next drain");
                }
            }
            drained += usize::from(!mine);
        }
        Ok(paged)
    }

    /// Drains the outbox as far as PagerDuty's rate allows: the entry point of a scheduled tick
    /// (the sweep's schedule calls it too), so what waits is sent even when no run arrives.
    pub async fn drain(&self) -> Result<(), CheckError> {
        let Some(tracker) = &self.tracker else { return Ok(()) };
        let now = (self.clock)();
        let mut message = SnsMessage::default();
        message.message_id = format!("tick-{}", now.unix_timestamp_nanos());
        let outbox = tracker.store().deferred().await.map_err(|e| CheckError::AlertUndeliverable {
            attempts: 1,
            reason: format!("the outbox cannot be read: {e}"),
        })?;
        let Some((first, _)) = outbox.iter().min_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0))) else { return Ok(()) };
        self.flush(tracker, &message, first, Vec::new()).await.map(|_| ())
    }

    /// Sends record `key`'s pending list under a claim, within the rate ([`Tracker::claim`]): while another
    /// invocation holds it, that one sends this one's events too; while this one holds it, it
    /// sends what others queue meanwhile. An unreadable claim does not hold a page back: the
    /// list read with the decision (`pending`) is sent then.
    async fn send_claimed(
        &self,
        tracker: &Tracker,
        message: &SnsMessage,
        key: &str,
        pending: Vec<Pending>,
        listed: bool,
    ) -> Result<Flushed, CheckError> {
        let by = message.message_id.as_str();
        let mut queue = match tracker.claim(key, by, (self.clock)()).await {
            Ok(Some(queue)) if queue.is_empty() => {
                if listed {
                    self.unlist(tracker, key).await;
                }
                return Ok(Flushed::default());
            }
            Ok(Some(queue)) => queue,
            Ok(None) => {
                tracing::info!(%key, "another invocation is sending this incident's events; it sends these too");
                return Ok(Flushed::default());
            }
            Err(error) => {
                tracing::warn!(%key, %error, "the pending list could not be claimed; sending it unclaimed");
                return self.send_pending(tracker, message, key, pending, listed).await;
            }
        };
        let mut flushed = Flushed::default();
        let mut outcome = Ok(());
        // What others queued meanwhile, a few rounds at most: each round sends or drops all it finds.
        for _ in 0..MAX_SEND_ROUNDS {
            if queue.is_empty() {
                break;
            }
            match self.send_pending(tracker, message, key, queue, listed).await {
                Ok(sent) => {
                    flushed.paged |= sent.paged;
                    flushed.full |= sent.full;
                }
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
            if flushed.full {
                break;
            }
            queue = match tracker.claim(key, by, (self.clock)()).await {
                Ok(Some(queue)) => queue,
                _ => break,
            };
        }
        if let Err(error) = tracker.release(key, by).await {
            tracing::warn!(%key, %error, "the claim on the pending list lapses on its own");
        }
        outcome.map(|()| flushed)
    }

    /// Takes the record off the outbox: nothing of it waits for PagerDuty any more. A failure
    /// only costs a drain an extra read.
    async fn unlist(&self, tracker: &Tracker, key: &str) {
        if let Err(error) = tracker.store().set_deferred(key, None).await {
            tracing::warn!(%key, %error, "a drained record stays listed in the outbox");
        }
    }

    /// Fills PagerDuty's shared window, so no instance sends for a whole window after a 429.
    async fn back_off(&self, tracker: &Tracker) {
        for _ in 0..MAX_SEND_ROUNDS * 2 {
            let Ok((mut window, version)) = tracker.store().load_window().await else { return };
            window.fill((self.clock)(), &self.config.rate);
            if !matches!(tracker.store().save_window(&window, version).await, Err(StoreError::Conflict)) {
                return;
            }
        }
    }

    /// Up to `want` slots of PagerDuty's shared window ([`crate::rate`]). An unreadable window
    /// does not hold a page back: it gives every slot asked for.
    async fn slots(&self, tracker: &Tracker, want: usize) -> usize {
        if want == 0 {
            return 0;
        }
        for _ in 0..MAX_SEND_ROUNDS * 2 {
            let (mut window, version) = match tracker.store().load_window().await {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, "PagerDuty's sending window could not be read; sending without it");
                    return want;
                }
            };
            let taken = window.take((self.clock)(), want, &self.config.rate);
            if taken == 0 {
                return 0;
            }
            match tracker.store().save_window(&window, version).await {
                Ok(()) => return taken,
                Err(StoreError::Conflict) => continue,
                Err(error) => {
                    tracing::warn!(%error, "PagerDuty's sending window could not be written; sending without it");
                    return want;
                }
            }
        }
        // Many instances send at once: these events wait in the outbox for the next drain.
        0
    }

    /// Delivers a pending list and removes each entry once delivered. Pages go first,
    /// in order, stopping at the first that cannot be delivered (the rest stay queued for
    /// Lambda's retry); warnings follow, so the human channel never holds a page back. A warning
    /// the channel refuses for good (a deleted topic) is dropped, and fails the invocation so
    /// the forwarder's error alarm says so. Whether anything went to PagerDuty.
    async fn send_pending(
        &self,
        tracker: &Tracker,
        message: &SnsMessage,
        key: &str,
        pending: Vec<Pending>,
        listed: bool,
    ) -> Result<Flushed, CheckError> {
        let mut paged = false;
        let mut failure = None;
        let pages: Vec<&Pending> = pending.iter().filter(|p| p.to == Channel::PagerDuty).collect();
        let mut granted = self.slots(tracker, pages.len()).await;
        for (index, entry) in pages.iter().enumerate().take(granted) {
            let event = Event::from_alert(&entry.alert, &self.config).with_details(&entry.details);
            match self.deliver(message, &entry.alert, event, Order::Queued { tracker, key, id: entry.id }).await {
                Ok(Sent::Superseded) => {}
                Ok(sent) => {
                    paged |= matches!(sent, Sent::Delivered);
                    self.done(tracker, key, entry.id).await;
                }
                // PagerDuty's rate is used up by other senders too: every instance backs off for
                // a window, and this event waits in the outbox rather than failing the run.
                Err(error) if throttled(&error) => {
                    tracing::warn!(%key, %error, "PagerDuty throttles after the retries; backing off for a window");
                    self.back_off(tracker).await;
                    granted = index;
                    break;
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let waiting: Vec<Pending> = pages[granted..].iter().map(|p| (*p).clone()).collect();
        if !waiting.is_empty() {
            tracing::info!(%key, waiting = waiting.len(), "PagerDuty's rate is used up; the rest waits in the outbox");
            if let Err(error) = tracker.store().set_deferred(key, rate::outbox_order(&waiting).as_deref()).await {
                // Still queued on the record: its next run sends it.
                tracing::warn!(%key, %error, "a record waiting for the rate could not be listed in the outbox");
            }
        }
        for entry in pending.iter().filter(|p| p.to == Channel::Humans) {
            match self.warn_humans(&entry.alert).await {
                Ok(()) => self.done(tracker, key, entry.id).await,
                Err(Unwarned { keep, error }) => {
                    tracing::error!(%key, %error, kept = keep, "a warning for the human channels was not delivered");
                    if !keep {
                        self.done(tracker, key, entry.id).await;
                    }
                    failure.get_or_insert(error);
                }
            }
        }
        if listed && waiting.is_empty() && failure.is_none() {
            self.unlist(tracker, key).await;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(Flushed { paged, full: !waiting.is_empty() }),
        }
    }

    /// Removes a delivered entry at once, so a concurrent invocation does not send it again.
    async fn done(&self, tracker: &Tracker, key: &str, id: u64) {
        if let Err(error) = tracker.delivered(key, &[id]).await {
            // Delivered but still listed: the next message of this subject sends it again,
            // which PagerDuty deduplicates.
            tracing::warn!(%key, %error, "a delivered event could not be removed from the pending list");
        }
    }

    async fn warn_humans(&self, alert: &AlertMessage) -> Result<(), Unwarned> {
        let Some(humans) = &self.humans else {
            tracing::warn!(check = %alert.check, summary = %alert.summary, "warning for the human channels (NOTIFY_TOPIC_ARN is not set, so it is only logged)");
            return Ok(());
        };
        match publish_with_retries(self.config.retry, || humans.publish(alert)).await {
            Ok(_) => Ok(()),
            Err((attempts, error)) => {
                let keep = matches!(error, PublishError::Retryable(_));
                let (PublishError::Retryable(reason) | PublishError::Permanent(reason)) = error;
                let reason = format!("the human channels (NOTIFY_TOPIC_ARN): {reason}; the warning: {}", alert.summary);
                Err(Unwarned { keep, error: CheckError::AlertUndeliverable { attempts, reason } })
            }
        }
    }

    fn drop_stale(&self, message: &SnsMessage, alert: &AlertMessage, stale: &crate::freshness::Stale) -> Sent {
        tracing::warn!(message_id = %message.message_id, dedup_key = %alert.dedup_key, event_action = ?alert.event_action, check = %alert.check, timestamp = %alert.timestamp, %stale, "stale alert dropped, so it cannot undo a newer one");
        self.count(STALE_METRIC, alert, message);
        Sent::Stale
    }

    /// One event to PagerDuty, unless a newer one for its dedup key was already sent (`order`
    /// says how that is known: the state table orders the events it queues, so those skip the
    /// in-memory check and are sent only while still queued).
    async fn deliver(
        &self,
        message: &SnsMessage,
        alert: &AlertMessage,
        event: Event,
        order: Order<'_>,
    ) -> Result<Sent, CheckError> {
        let now = (self.clock)();
        let ordered = matches!(order, Order::ByRunTime);
        let run_time = event::run_time(alert).filter(|_| ordered);
        match run_time.map(|at| self.freshness.check(&event.dedup_key, at, now)) {
            Some(Err(stale)) => return Ok(self.drop_stale(message, alert, &stale)),
            // A page is worth more than the order: an alert whose age is unknown is sent.
            None if ordered => {
                tracing::warn!(message_id = %message.message_id, timestamp = %alert.timestamp, "the alert's timestamp is not RFC 3339, so its age cannot be judged; sending it")
            }
            None | Some(Ok(())) => {}
        }
        let mut routing_key = self.routing_key.get().await?;
        let mut sent = self.send(&routing_key, &event, order).await;
        if matches!(&sent, Err((_, error)) if pagerduty::refuses_routing_key(error)) {
            let reread = self.routing_key.reload().await?;
            if reread != routing_key {
                tracing::warn!(message_id = %message.message_id, dedup_key = %event.dedup_key, "PagerDuty refused the routing key and the secret now holds another; resending with it");
                routing_key = reread;
                sent = self.send(&routing_key, &event, order).await;
            }
        }
        match sent {
            Err((_, PublishError::Permanent(reason))) if reason == SUPERSEDED => Ok(Sent::Superseded),
            Ok(attempts) => {
                if let Some(at) = run_time {
                    self.freshness.sent(&event.dedup_key, at, now);
                }
                tracing::info!(message_id = %message.message_id, dedup_key = %event.dedup_key, event_action = ?event.event_action, check = %alert.check, attempts, "sent to PagerDuty");
                Ok(Sent::Delivered)
            }
            Err((attempts, PublishError::Permanent(reason))) => {
                tracing::error!(message_id = %message.message_id, dedup_key = %event.dedup_key, event_action = ?event.event_action, check = %alert.check, attempts, %reason, "PagerDuty rejected the event; dropped, as a retry cannot fix it");
                self.count(REJECTED_METRIC, alert, message);
                Ok(Sent::Rejected)
            }
            Err((attempts, PublishError::Retryable(reason))) => {
                Err(CheckError::AlertUndeliverable { attempts, reason: format!("PagerDuty: {reason}") })
            }
        }
    }

    async fn send(
        &self,
        routing_key: &Secret<String>,
        event: &Event,
        order: Order<'_>,
    ) -> Result<u32, (u32, PublishError)> {
        publish_with_retries(self.config.retry, || async move {
            // Re-read before every attempt: during a backoff another invocation may have sent
            // this event, or resolved the incident it would reopen. An unreadable table does not
            // hold a page back.
            if let Order::Queued { tracker, key, id } = order
                && let Ok(false) = tracker.is_pending(key, id).await
            {
                return Err(PublishError::Permanent(SUPERSEDED.into()));
            }
            self.events.enqueue(routing_key, event).await
        })
        .await
    }

    /// One EMF count of a dropped record, by env, naming the check and the message.
    fn count(&self, metric: &str, alert: &AlertMessage, message: &SnsMessage) {
        let mut record = emf_count(&self.config.metrics_namespace, metric, &[("env", &alert.env)]);
        record["check"] = alert.check.clone().into();
        record["message_id"] = message.message_id.clone().into();
        self.metrics.emit(&record);
    }
}

/// When SNS received the message: no run or alarm it carries can be later than that.
fn received_at(message: &SnsMessage) -> Option<OffsetDateTime> {
    let nanos = message.timestamp.timestamp_nanos_opt()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()
}

/// PagerDuty answered 429 through every retry ([`pagerduty`] reports the status first).
fn throttled(error: &CheckError) -> bool {
    matches!(error, CheckError::AlertUndeliverable { reason, .. } if reason.starts_with("PagerDuty: HTTP 429"))
}

/// Writers kept winning the race for a record: failing the invocation lets Lambda's retry decide
/// again later, with the run kept.
fn contended(subject: &str) -> CheckError {
    CheckError::AlertUndeliverable {
        attempts: 1,
        reason: format!("the incident record of {subject} kept changing under concurrent writers"),
    }
}

/// The SNS `Message` as an alert. Serde's message is kept: it names the missing or mistyped
/// field, and an alert holds no secret.
fn parse_alert(message: &str) -> Result<AlertMessage, CheckError> {
    let alert: AlertMessage = serde_json::from_str(message).map_err(|e| {
        CheckError::InvalidEvent(format!(
            "the SNS message is not an alert message ({})",
            truncate(&one_line(&e.to_string()), 300)
        ))
    })?;
    if alert.dedup_key.trim().is_empty() {
        return Err(CheckError::InvalidEvent("the alert message has an empty dedup_key".into()));
    }
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagerduty::RecordingEventsApi;
    use lambda_runtime::Context;
    use serde_json::{Value, json};
    use synthetic_checks::alert::EventAction;
    use synthetic_checks::metrics::RecordingMetrics;
    use synthetic_checks::secret::InMemorySecrets;
    use time::macros::datetime;

    struct Harness {
        forwarder: Forwarder,
        events: Arc<RecordingEventsApi>,
        metrics: Arc<RecordingMetrics>,
        secrets: Arc<InMemorySecrets>,
    }

    /// A minute after the runs of [`alert`].
    const NOW: OffsetDateTime = datetime!(2026-11-21 10:01 UTC);

    fn harness() -> Harness {
        let config = ForwarderConfig::from_lookup(&|name| match name {
            "PAGERDUTY_SECRET_ID" => Some("pd".into()),
            "PAGERDUTY_BACKOFF_MS" => Some("1".into()),
            _ => None,
        })
        .unwrap();
        let events = Arc::new(RecordingEventsApi::default());
        let metrics = Arc::new(RecordingMetrics::default());
        let secrets = Arc::new(InMemorySecrets::with("pd", "routing-key-1"));
        let adapters = Adapters {
            secrets: secrets.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            clock: Arc::new(|| NOW),
            state: None,
            humans: None,
        };
        Harness { forwarder: Forwarder::new(config, adapters), events, metrics, secrets }
    }

    fn alert(action: &str) -> String {
        alert_at(action, "2026-11-21T10:00:00Z")
    }

    fn alert_at(action: &str, timestamp: &str) -> String {
        json!({
            "event_action": action, "dedup_key": "synthetic/prod/auth", "check": "auth", "env": "prod",
            "status": "failed", "cause": "timeout", "severity": "critical", "summary": "[prod] auth FAILED",
            "target": "https://shop.example.com/", "run_id": "r-1", "timestamp": timestamp, "steps": []
        })
        .to_string()
    }

    fn sns(messages: &[(&str, String)]) -> LambdaEvent<SnsEvent> {
        let records: Vec<Value> = messages
            .iter()
            .map(|(id, message)| {
                json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:1:alerts:sub",
                       "Sns": {"Type": "Notification", "MessageId": id, "TopicArn": "arn:aws:sns:us-east-1:1:alerts",
                               "Subject": null, "Message": message, "Timestamp": "2026-11-21T10:00:01.000Z",
                               "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "",
                               "MessageAttributes": {}}})
            })
            .collect();
        let event: SnsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        LambdaEvent::new(event, Context::default())
    }

    #[tokio::test]
    async fn a_bad_record_is_named_and_does_not_hold_back_the_others() {
        let h = harness();
        let batch = sns(&[
            ("m-1", alert("trigger")),
            ("m-2", "not json".into()),
            ("m-3", alert("explode")),
            ("m-4", alert("resolve")),
        ]);
        let error = h.forwarder.handle(batch).await.unwrap_err();
        let actions: Vec<_> = h.events.delivered().iter().map(|e| e.event_action).collect();
        assert_eq!(actions, [EventAction::Trigger, EventAction::Resolve]);
        let ids: Vec<_> = error.failures.iter().map(|f| f.message_id.as_str()).collect();
        assert_eq!(ids, ["m-2", "m-3"]);
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "InvalidEvent");
        assert!(diagnostic.error_message.starts_with("2 of 4 SNS record(s) not forwarded: message m-2: invalid event: the SNS message is not an alert message (expected ident"), "{}", diagnostic.error_message);
        assert!(
            diagnostic.error_message.contains(
                "message m-3: invalid event: the SNS message is not an alert message (unknown variant `explode`"
            ),
            "{}",
            diagnostic.error_message
        );
    }

    #[tokio::test]
    async fn an_invocation_is_sns_records_or_the_sweep_and_anything_else_is_named() {
        let h = harness();
        let records = serde_json::to_value(sns(&[("m-1", alert("trigger"))]).payload).unwrap();
        let answer = h.forwarder.invoke(LambdaEvent::new(records, Context::default())).await.unwrap();
        assert_eq!(answer["delivered"], json!(["m-1"]));
        let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-21T10:05:00Z"});
        let sweep = h.forwarder.invoke(LambdaEvent::new(tick, Context::default())).await.unwrap_err();
        assert_eq!(sweep.error_type, "Misconfigured");
        assert!(sweep.error_message.contains("CHECK_ENV"), "the sweep names what it lacks: {}", sweep.error_message);
        let odd = h.forwarder.invoke(LambdaEvent::new(json!({"hello": 1}), Context::default())).await.unwrap_err();
        assert_eq!(odd.error_type, "InvalidEvent");
        assert!(odd.error_message.contains("neither SNS records nor the sweep's schedule"), "{}", odd.error_message);
    }

    #[tokio::test]
    async fn a_rejection_is_dropped_and_counted_an_outage_fails_the_invocation() {
        let h = harness();
        h.events.fail_with([PublishError::Permanent("HTTP 400: invalid event".into())]);
        let forwarded = h.forwarder.handle(sns(&[("m-1", alert("trigger"))])).await.unwrap();
        assert_eq!(forwarded.rejected, ["m-1"]);
        let records = h.metrics.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0][REJECTED_METRIC], 1);
        assert_eq!((&records[0]["env"], &records[0]["check"]), (&json!("prod"), &json!("auth")));
        assert_eq!(h.secrets.reads(), 1, "a 400 that does not blame the key does not re-read it");

        h.events.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 503".into()), 3));
        let error = h.forwarder.handle(sns(&[("m-2", alert("trigger"))])).await.unwrap_err();
        assert_eq!(error.error_type(), "AlertUndeliverable");
        assert!(
            error
                .to_string()
                .contains("message m-2: alert could not be delivered after 3 attempt(s): PagerDuty: HTTP 503"),
            "{error}"
        );
        assert!(h.events.delivered().is_empty());
    }

    #[tokio::test]
    async fn mixed_failures_are_a_batch_failure() {
        let h = harness();
        h.events.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 500".into()), 3));
        let batch = sns(&[("m-1", alert("trigger")), ("m-2", "{}".into())]);
        let error = h.forwarder.handle(batch).await.unwrap_err();
        assert_eq!(error.error_type(), "BatchFailed");
        assert!(error.to_string().contains("missing field"), "{error}");
    }

    #[tokio::test]
    async fn an_unreadable_routing_key_fails_the_record() {
        let mut h = harness();
        h.forwarder.routing_key = RoutingKey::new(Arc::new(InMemorySecrets::default()), "pd");
        let error = h.forwarder.handle(sns(&[("m-1", alert("resolve"))])).await.unwrap_err();
        assert_eq!(error.error_type(), "SecretUnavailable");
        assert!(error.to_string().contains("secret pd could not be read"), "{error}");
    }

    #[tokio::test]
    async fn a_late_trigger_of_an_older_run_does_not_reopen_what_a_newer_run_resolved() {
        let h = harness();
        let resolve = alert_at("resolve", "2026-11-21T10:00:30Z");
        let late_trigger = alert_at("trigger", "2026-11-21T10:00:00Z");
        let forwarded = h.forwarder.handle(sns(&[("m-2", resolve), ("m-1", late_trigger)])).await.unwrap();
        assert_eq!((forwarded.delivered, forwarded.stale), (vec!["m-2".to_string()], vec!["m-1".to_string()]));
        let actions: Vec<_> = h.events.delivered().iter().map(|e| e.event_action).collect();
        assert_eq!(actions, [EventAction::Resolve]);
        let records = h.metrics.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], STALE_METRIC);
        assert_eq!((&records[0][STALE_METRIC], &records[0]["env"]), (&json!(1), &json!("prod")));
        assert_eq!((&records[0]["check"], &records[0]["message_id"]), (&json!("auth"), &json!("m-1")));

        let next_run = alert_at("trigger", "2026-11-21T10:00:45Z");
        let forwarded = h.forwarder.handle(sns(&[("m-3", next_run)])).await.unwrap();
        assert_eq!(forwarded.delivered, ["m-3"], "a newer run still pages");
    }

    #[tokio::test]
    async fn an_alert_older_than_the_maximum_age_is_dropped_and_an_undated_one_sent() {
        let h = harness();
        let forwarded = h.forwarder.handle(sns(&[("m-1", alert_at("trigger", "2026-11-21T09:30:59Z"))])).await.unwrap();
        assert_eq!(forwarded.stale, ["m-1"], "30 min 1 s old, over the 30 min default");
        let forwarded = h.forwarder.handle(sns(&[("m-2", alert_at("trigger", "yesterday"))])).await.unwrap();
        assert_eq!(forwarded.delivered, ["m-2"]);
        assert_eq!(h.events.delivered().len(), 1);
    }

    #[tokio::test]
    async fn an_undeliverable_or_rejected_alert_does_not_hold_back_older_ones() {
        let h = harness();
        h.events.fail_with(std::iter::repeat_n(PublishError::Retryable("HTTP 503".into()), 3));
        h.events.fail_with([PublishError::Permanent("HTTP 400: invalid event".into())]);
        let newer = alert_at("resolve", "2026-11-21T10:00:30Z");
        h.forwarder.handle(sns(&[("m-2", newer.clone())])).await.unwrap_err();
        h.forwarder.handle(sns(&[("m-2", newer)])).await.unwrap();
        let forwarded = h.forwarder.handle(sns(&[("m-1", alert("trigger"))])).await.unwrap();
        assert_eq!(forwarded.delivered, ["m-1"], "PagerDuty never saw the newer alert");
    }

    #[tokio::test]
    async fn a_refused_routing_key_is_re_read_once_and_a_failed_re_read_keeps_the_event() {
        let h = harness();
        let refused = || pagerduty::routing_key_refused("HTTP 400: invalid event; errors: [\"Invalid routing key\"]");
        h.events.fail_with([refused()]);
        let forwarded = h.forwarder.handle(sns(&[("m-1", alert("trigger"))])).await.unwrap();
        assert_eq!(forwarded.rejected, ["m-1"], "the secret holds the same key: nothing new to try");
        assert_eq!(h.secrets.reads(), 2, "the cold start's read and one re-read");
        assert_eq!(h.metrics.records()[0][REJECTED_METRIC], 1);

        h.secrets.put("pd", "");
        h.events.fail_with([refused()]);
        let error = h.forwarder.handle(sns(&[("m-2", alert("trigger"))])).await.unwrap_err();
        assert_eq!(error.error_type(), "Misconfigured", "{error}");
        assert_eq!(h.secrets.reads(), 3);
        assert!(h.events.delivered().is_empty());
    }

    /// A forwarder with a state table (in memory) and a human channel.
    fn stateful(
        store: Arc<crate::state::MemoryStore>,
    ) -> (Forwarder, Arc<RecordingEventsApi>, Arc<synthetic_checks::alert::RecordingNotifier>, Arc<RecordingMetrics>)
    {
        let config = ForwarderConfig::from_lookup(&|name| match name {
            "PAGERDUTY_SECRET_ID" => Some("pd".into()),
            "PAGERDUTY_BACKOFF_MS" => Some("1".into()),
            "STATE_TABLE" => Some("state".into()),
            "CHECK_ENV" => Some("prod".into()),
            "ALARM_NAME_PREFIX" => Some("synth-prod-".into()),
            _ => None,
        })
        .unwrap();
        let events = Arc::new(RecordingEventsApi::default());
        let humans = Arc::new(synthetic_checks::alert::RecordingNotifier::default());
        let metrics = Arc::new(RecordingMetrics::default());
        let adapters = Adapters {
            secrets: Arc::new(InMemorySecrets::with("pd", "routing-key-1")),
            events: events.clone(),
            metrics: metrics.clone(),
            clock: Arc::new(|| NOW),
            state: Some(store),
            humans: Some(humans.clone()),
        };
        (Forwarder::new(config, adapters), events, humans, metrics)
    }

    fn failed_run_at(timestamp: &str) -> String {
        alert_at("trigger", timestamp)
    }

    fn alarm(name: &str, state: &str) -> String {
        json!({"AlarmName": name, "NewStateValue": state, "NewStateReason": "burning", "OldStateValue": "OK",
               "StateChangeTime": "2026-11-21T10:00:40.000+0000",
               "AlarmArn": format!("arn:aws:cloudwatch:us-east-1:1:alarm:{name}")})
        .to_string()
    }

    #[tokio::test]
    async fn with_a_table_one_failed_run_warns_people_and_the_second_pages() {
        let (forwarder, events, humans, _) = stateful(Arc::default());
        let first = forwarder.handle(sns(&[("m-1", failed_run_at("2026-11-21T09:55:00Z"))])).await.unwrap();
        assert_eq!(first.recorded, ["m-1"]);
        assert!(events.delivered().is_empty());
        assert_eq!(humans.delivered().len(), 1);
        assert_eq!(humans.delivered()[0].severity, Severity::Warning);

        let second = forwarder.handle(sns(&[("m-2", failed_run_at("2026-11-21T10:00:00Z"))])).await.unwrap();
        assert_eq!(second.delivered, ["m-2"]);
        let paged = events.delivered();
        let details: Vec<_> = paged.iter().map(|e| &e.payload.as_ref().unwrap().custom_details).collect();
        assert_eq!(details[0]["confirmation"], "confirmed by 2 consecutive failed runs");
        // With no earlier runs, 2 of 2 failed burn the budget at once: both burn rates join it.
        let updates: Vec<_> = details[1..].iter().map(|d| d["update"].as_str().unwrap_or_default()).collect();
        assert_eq!(updates.len(), 2, "{updates:?}");
        assert!(updates.iter().all(|u| u.ends_with("joins the open incident")), "{updates:?}");
        assert!(paged.iter().all(|e| e.dedup_key == "synthetic/prod/auth"), "one incident");
        assert_eq!(humans.delivered().len(), 1, "one warning per episode");
    }

    #[tokio::test]
    async fn a_run_whose_account_was_rejected_counts_as_its_check_reporting() {
        let store: Arc<crate::state::MemoryStore> = Arc::default();
        let (forwarder, _, _, _) = stateful(store.clone());
        let mut rejected: Value = serde_json::from_str(&failed_run_at("2026-11-21T10:00:00Z")).unwrap();
        rejected["cause"] = json!("credentials_rejected");
        rejected["region"] = json!("eu-west-1");
        forwarder.handle(sns(&[("m-1", rejected.to_string())])).await.unwrap();
        let check = store.peek(&record_key("prod", "auth")).expect("the check's record");
        assert!(check.state.regions.is_empty(), "the run itself is the monitor account's");
        assert_eq!(check.state.rejected_runs["eu-west-1"].0, time::macros::datetime!(2026-11-21 10:00 UTC));
    }

    #[tokio::test]
    async fn an_unreachable_table_pages_every_failed_run_and_says_why() {
        let store: Arc<crate::state::MemoryStore> = Arc::default();
        store.set_unavailable(true);
        let (forwarder, events, _, metrics) = stateful(store);
        let forwarded = forwarder.handle(sns(&[("m-1", alert("trigger"))])).await.unwrap();
        assert_eq!(forwarded.delivered, ["m-1"]);
        let delivered = events.delivered();
        let details = &delivered[0].payload.as_ref().unwrap().custom_details;
        assert!(
            details["incident_state"].as_str().unwrap().starts_with("the state table is unavailable"),
            "{details:?}"
        );
        assert_eq!(metrics.records()[0][FALLBACK_METRIC], 1);
    }

    #[tokio::test]
    async fn an_alarm_joins_its_check_and_a_foreign_alarm_is_its_own_incident() {
        let (forwarder, events, _, _) = stateful(Arc::default());
        forwarder.handle(sns(&[("m-1", failed_run_at("2026-11-21T10:00:00Z"))])).await.unwrap();
        let confirmed =
            forwarder.handle(sns(&[("a-1", alarm("synth-prod-auth-slo-fast-burn", "ALARM"))])).await.unwrap();
        assert_eq!(confirmed.delivered, ["a-1"]);
        assert_eq!(
            events.delivered()[0].dedup_key,
            "synthetic/prod/auth",
            "the alarm confirms the check's own incident"
        );

        let foreign = forwarder.handle(sns(&[("a-2", alarm("billing-queue-depth", "ALARM"))])).await.unwrap();
        assert_eq!(foreign.delivered, ["a-2"]);
        assert_eq!(events.delivered()[1].dedup_key, "cloudwatch/billing-queue-depth");
        let broken =
            forwarder.handle(sns(&[("a-3", alarm("synth-prod-auth-slo-fast-burn", "MAYBE"))])).await.unwrap_err();
        assert_eq!(broken.error_type(), "InvalidEvent");
    }
}

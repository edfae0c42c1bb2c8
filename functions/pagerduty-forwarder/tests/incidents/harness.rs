//! A forwarder with its state table in memory ([`MemoryStore`]), a PagerDuty fake that answers
//! from a script and keeps PagerDuty's view (open or resolved per dedup key), and a human channel
//! that records. Time is the messages' own: each message carries its run's time as the SNS
//! `Timestamp`, and the forwarder's clock stands a second after it.

use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Context, LambdaEvent};
use pagerduty_forwarder::state::{MemoryStore, Record, Silence, StateStore, record_key};
use pagerduty_forwarder::{Adapters, Event, EventsApi, ForwardError, Forwarded, Forwarder, ForwarderConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use synthetic_checks::Outcome;
use synthetic_checks::alert::{AlertMessage, EventAction, PublishError, RecordingNotifier, Severity};
use synthetic_checks::metrics::RecordingMetrics;
use synthetic_checks::secret::{InMemorySecrets, Secret};
use synthetic_e2e::incident_replay::{RunKind, planned, run_alert};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

pub const T0: OffsetDateTime = datetime!(2026-11-21 00:00 UTC);
pub const ENV: &str = "prod";
pub const PREFIX: &str = "synth-prod-";

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the fake answers to one send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    Accepted,
    /// Accepted, but only after what [`FakePagerDuty::meanwhile`] runs: a request in flight
    /// while another invocation goes ahead.
    AcceptedLate,
    Throttled,
    Unavailable,
    Rejected,
}

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Sees each accepted event and whether its incident was open before.
type Watch = Box<dyn Fn(&Event, bool) + Send>;

/// The Events API: scripted answers (202 once the script is used up), every accepted event kept.
#[derive(Default)]
pub struct FakePagerDuty {
    answers: Mutex<VecDeque<Answer>>,
    accepted: Mutex<Vec<Event>>,
    /// Runs while a send is being answered with a failure: what another invocation does meanwhile.
    during_failure: Mutex<Option<Hook>>,
    /// Called with each accepted event, and whether its incident was open before (the model's
    /// checks), before it is recorded.
    on_accept: Mutex<Option<Watch>>,
    /// Dedup keys whose latest answered event was refused with a 400: PagerDuty's view of them
    /// is not the forwarder's to keep.
    rejected: Mutex<std::collections::BTreeSet<String>>,
}

impl FakePagerDuty {
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.answers).extend(answers);
    }

    pub fn clear_script(&self) {
        lock(&self.answers).clear();
    }

    pub fn meanwhile(&self, hook: impl Future<Output = ()> + Send + 'static) {
        *lock(&self.during_failure) = Some(Box::pin(hook));
    }

    pub fn disarm(&self) {
        lock(&self.during_failure).take();
    }

    pub fn on_accept(&self, check: impl Fn(&Event, bool) + Send + 'static) {
        *lock(&self.on_accept) = Some(Box::new(check));
    }

    pub fn rejected(&self, key: &str) -> bool {
        lock(&self.rejected).contains(key)
    }

    pub fn accepted(&self) -> Vec<Event> {
        lock(&self.accepted).clone()
    }

    pub fn triggers(&self, key: &str) -> Vec<Event> {
        self.accepted().into_iter().filter(|e| e.dedup_key == key && e.event_action == EventAction::Trigger).collect()
    }

    /// PagerDuty's view: whether an incident is open per dedup key, after the accepted events.
    pub fn open(&self) -> BTreeMap<String, bool> {
        let mut open = BTreeMap::new();
        for event in self.accepted() {
            open.insert(event.dedup_key.clone(), event.event_action == EventAction::Trigger);
        }
        open
    }

    pub fn is_open(&self, key: &str) -> bool {
        self.open().get(key).copied().unwrap_or(false)
    }
}

#[async_trait::async_trait]
impl EventsApi for FakePagerDuty {
    async fn enqueue(&self, _routing_key: &Secret<String>, event: &Event) -> Result<(), PublishError> {
        let answer = lock(&self.answers).pop_front().unwrap_or(Answer::Accepted);
        // The checks see an event as it leaves the forwarder; one in flight lands later.
        let watch = |event: &Event| {
            let was_open = self.is_open(&event.dedup_key);
            if let Some(check) = lock(&self.on_accept).as_ref() {
                check(event, was_open);
            }
        };
        if answer == Answer::AcceptedLate {
            watch(event);
        }
        if answer != Answer::Accepted {
            // Taken out first: the other invocation's own sends come back here.
            let hook = lock(&self.during_failure).take();
            if let Some(hook) = hook {
                hook.await;
            }
        }
        match answer {
            Answer::Accepted | Answer::AcceptedLate => {
                if answer == Answer::Accepted {
                    watch(event);
                }
                lock(&self.rejected).remove(&event.dedup_key);
                lock(&self.accepted).push(event.clone());
                Ok(())
            }
            Answer::Throttled => Err(PublishError::Retryable("HTTP 429: throttled".into())),
            Answer::Unavailable => Err(PublishError::Retryable("HTTP 503: unavailable".into())),
            Answer::Rejected => {
                lock(&self.rejected).insert(event.dedup_key.clone());
                Err(PublishError::Permanent("HTTP 400: invalid event".into()))
            }
        }
    }
}

pub struct Table {
    pub forwarder: Arc<Forwarder>,
    pub store: Arc<MemoryStore>,
    pub pagerduty: Arc<FakePagerDuty>,
    pub humans: Arc<RecordingNotifier>,
    pub clock: Arc<Mutex<OffsetDateTime>>,
    sent: Mutex<u64>,
}

pub fn config(settings: &[(&str, &str)]) -> ForwarderConfig {
    let mut vars: BTreeMap<String, String> = [
        ("PAGERDUTY_SECRET_ID", "pd"),
        ("PAGERDUTY_BACKOFF_MS", "1"),
        ("STATE_TABLE", "state"),
        ("CHECK_ENV", ENV),
        ("ALARM_NAME_PREFIX", PREFIX),
        // Runs are replayed hours after T0 on a clock that follows them; nothing is too old.
        ("MAX_EVENT_AGE_SECS", "1209600"),
        // An SLO no run sequence can burn (14.4x or 6x a 50% budget is over 100%): these tests
        // and the model drive the burn-rate alarms themselves, as notifications. The forwarder's
        // own burn rates are tested in src/burn.rs, src/tracker.rs and tests/e2e/incidents.rs.
        ("SLO_TARGET_PERCENT", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ForwarderConfig::from_lookup(&|name| vars.get(name).cloned()).expect("a valid configuration")
}

impl Table {
    pub fn new(settings: &[(&str, &str)]) -> Table {
        Self::sharing(settings, Arc::default(), Arc::default())
    }

    /// Another forwarder (another Lambda execution environment) on the same table and PagerDuty.
    pub fn sharing(settings: &[(&str, &str)], store: Arc<MemoryStore>, pagerduty: Arc<FakePagerDuty>) -> Table {
        let humans = Arc::new(RecordingNotifier::default());
        let clock = Arc::new(Mutex::new(T0));
        let now = clock.clone();
        let adapters = Adapters {
            secrets: Arc::new(InMemorySecrets::with("pd", "routing-key-1")),
            events: pagerduty.clone(),
            metrics: Arc::new(RecordingMetrics::default()),
            clock: Arc::new(move || *lock(&now)),
            state: Some(store.clone()),
            humans: Some(humans.clone()),
        };
        let forwarder = Arc::new(Forwarder::new(config(settings), adapters));
        Table { forwarder, store, pagerduty, humans, clock, sent: Mutex::new(0) }
    }

    /// One SNS message received at `received` (its `Timestamp`), the clock a second later.
    pub async fn deliver(&self, message: String, received: OffsetDateTime) -> Result<Forwarded, ForwardError> {
        let id = {
            let mut sent = lock(&self.sent);
            *sent += 1;
            format!("m-{sent}")
        };
        *lock(&self.clock) = received + Duration::SECOND;
        self.forwarder.handle(sns(&id, message, received)).await
    }

    /// A run of `check` from `region`, `minutes` after [`T0`], received when it ran.
    pub async fn run(&self, check: &str, region: &str, minutes: f64, kind: Kind) -> Result<Forwarded, ForwardError> {
        let at = at(minutes);
        self.deliver(alert(check, region, at, kind), at).await
    }

    /// Burn-rate alarm `kind` of `check` changing to ALARM (`alarm`) or OK in `region`.
    pub async fn alarm(
        &self,
        check: &str,
        kind: &str,
        region: &str,
        minutes: f64,
        alarm: bool,
    ) -> Result<Forwarded, ForwardError> {
        let at = at(minutes);
        self.deliver(alarm_message(&format!("{PREFIX}{check}-{kind}"), region, at, alarm), at).await
    }

    pub async fn silence(&self, check: &str, from: f64, until: f64) {
        let silence = Silence {
            id: format!("s-{from}-{until}"),
            env: ENV.into(),
            check: check.into(),
            starts: at(from),
            ends: at(until),
            reason: "planned work".into(),
            created_by: "test".into(),
            created_at: at(from),
        };
        self.store.put_silence(&silence).await.expect("the silence is stored");
    }

    /// The subject's record, as the table holds it.
    pub async fn record(&self, subject: &str) -> Record {
        self.store.peek(&record_key(ENV, subject)).unwrap_or_default()
    }
}

pub fn at(minutes: f64) -> OffsetDateTime {
    T0 + Duration::seconds_f64(minutes * 60.0)
}

pub fn key(check: &str) -> String {
    synthetic_checks::alert::dedup_key(ENV, check)
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Passed,
    Degraded,
    Failed,
}

/// The alert the check publishes after such a run (built by the checks' own code).
pub fn alert(check: &str, region: &str, at: OffsetDateTime, kind: Kind) -> String {
    alert_stamped(check, region, at, kind, at)
}

/// An alert of a run at `at` whose timestamp says `stamp` (a run clock that is off).
pub fn alert_stamped(check: &str, region: &str, at: OffsetDateTime, kind: Kind, stamp: OffsetDateTime) -> String {
    let run = if kind == Kind::Passed { RunKind::Passed } else { RunKind::Failed };
    let mut alert: AlertMessage = run_alert(check, region, at, run);
    if kind == Kind::Degraded {
        alert.status = Outcome::Degraded;
        alert.severity = Severity::Warning;
        alert.cause = None;
    }
    alert.run_id = format!("{check}-{region}-{}", at.unix_timestamp_nanos());
    alert.timestamp = stamp.format(&Rfc3339).unwrap_or_default();
    serde_json::to_string(&alert).expect("an alert serializes")
}

pub fn alarm_message(name: &str, region: &str, at: OffsetDateTime, alarm: bool) -> String {
    let state = if alarm { "ALARM" } else { "OK" };
    let time = at.format(&Rfc3339).unwrap_or_default();
    json!({"AlarmName": name, "NewStateValue": state, "NewStateReason": "burning", "OldStateValue": "OK",
           "StateChangeTime": time, "AlarmArn": format!("arn:aws:cloudwatch:{region}:1:alarm:{name}")})
    .to_string()
}

pub fn sns(id: &str, message: String, received: OffsetDateTime) -> LambdaEvent<SnsEvent> {
    let timestamp = received.format(&Rfc3339).unwrap_or_default();
    let record = json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:1:alerts:sub",
        "Sns": {"Type": "Notification", "MessageId": id, "TopicArn": "arn:aws:sns:us-east-1:1:alerts",
                "Subject": null, "Message": message, "Timestamp": timestamp,
                "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "",
                "MessageAttributes": {}}});
    let event: SnsEvent = serde_json::from_value(json!({ "Records": [record] })).expect("an SNS event");
    LambdaEvent::new(event, Context::default())
}

pub fn severity(event: &Event) -> Value {
    json!(event.payload.as_ref().map(|p| p.severity))
}

/// A deployment plan with `checks` (name, schedule in minutes, what it depends on), in a file of
/// its own for `CHECK_PLAN_FILE`.
pub fn plan_file(checks: &[(&str, u32, &[&str])]) -> String {
    synthetic_e2e::incident_replay::plan_file(
        checks.iter().map(|(name, schedule, depends_on)| planned(name, *schedule, depends_on)).collect(),
    )
}

/// SplitMix64: small, seedable, and the same on every platform.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

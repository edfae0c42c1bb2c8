//! Incident replay: sequences of check runs handed to the real `pagerduty-forwarder` binary as
//! SNS events, with its state table in moto's DynamoDB and the fake PagerDuty keeping the
//! incident list. Time is compressed: every run carries its own timestamp (the forwarder decides
//! from those, never from its clock), so six hours of five-minute runs replay in seconds.
//!
//! The forwarder is configured as `infra/template.yaml` configures it, plus whatever a scenario
//! overrides. Warnings to the human channels arrive on an SQS queue subscribed to the notify
//! topic, the stopped-check sweep's notifications on one subscribed to the operations topic;
//! silences are added with the real `synthetic silence` command. The burn rates and the sweep
//! are the forwarder's own (issue 22): no CloudWatch alarm is modelled.

use crate::fake_pagerduty::{FakePagerDuty, Incident};
use crate::lambda_emulator::{Invocation, LambdaProcess, workspace_binary};
use crate::local_aws::{LocalAws, Moto};
use crate::pagerduty_contract::Contract;
use crate::stack::{INVOKE_TIMEOUT, StackError};
use serde_json::{Value, json};
use synthetic_checks::alert::AlertMessage;
use synthetic_checks::config::Origin;
use synthetic_checks::error::Cause;
use synthetic_checks::plan::{Plan, PlannedCheck};
use synthetic_checks::result::{Account, Outcome, RunResult, StepResult};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub const TABLE: &str = "synthetic-incident-state";
pub const ENV: &str = "prod";
pub const STACK_PREFIX: &str = "synthetic-prod";
const ROUTING_KEY: &str = "replay0r0ut1ng0key0000000000001";

/// What a replayed run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Passed,
    Failed,
    /// The synthetic account was rejected at login.
    Rejected,
}

pub struct Replay {
    /// The moto this replay started, if it did not join one ([`Replay::join`]).
    moto: Option<Moto>,
    pub aws: LocalAws,
    pub pagerduty: FakePagerDuty,
    forwarder: Option<LambdaProcess>,
    env: Vec<(String, String)>,
    notify_queue: String,
    warnings: Vec<Value>,
    ops_queue: String,
    /// Notifications on the operations topic (the sweep's), as the ops integration gets them.
    pub ops_notifications: Vec<Value>,
    last_event: Option<Value>,
    sent: u64,
    /// The scenario's time zero: far enough back that every run lies in the past.
    pub t0: OffsetDateTime,
}

impl Replay {
    /// moto with the table, the routing-key secret and the notify topic; the fake PagerDuty; the
    /// forwarder with the template's settings and `settings` on top.
    pub async fn start(settings: &[(&str, &str)]) -> Result<Replay, StackError> {
        let now = OffsetDateTime::now_utc();
        Self::start_at(settings, now - Duration::hours(12) - Duration::seconds(i64::from(now.second()))).await
    }

    /// Like [`Replay::start`], with time zero at `t0` (a scenario that adds a silence needs its
    /// runs in the future: a silence cannot be added for the past).
    pub async fn start_at(settings: &[(&str, &str)], t0: OffsetDateTime) -> Result<Replay, StackError> {
        let moto = Moto::start().await?;
        let (aws, env) = (moto.local_aws(), moto.aws_env());
        let mut replay = Self::join(aws, env, settings, t0).await?;
        replay.moto = Some(moto);
        Ok(replay)
    }

    /// The forwarder side (table, routing key, notify topic, fake PagerDuty, forwarder) on a moto
    /// that is already running, such as the demo's.
    pub async fn join(
        aws: LocalAws,
        aws_env: Vec<(String, String)>,
        settings: &[(&str, &str)],
        t0: OffsetDateTime,
    ) -> Result<Replay, StackError> {
        aws.create_state_table(TABLE).await?;
        let secret =
            aws.create_secret("pagerduty/routing-key", &json!({ "routing_key": ROUTING_KEY }).to_string()).await?;
        let notify_topic = aws.create_topic("synthetic-notify").await?;
        let notify_queue = aws.subscribe_queue_raw(&notify_topic, "human-channels").await?;
        let ops_topic = aws.create_topic("synthetic-ops").await?;
        let ops_queue = aws.subscribe_queue_raw(&ops_topic, "ops-integration").await?;
        let contract = Contract::load().map_err(StackError::Setup)?;
        let pagerduty = FakePagerDuty::with_contract(contract).await?;
        let mut env = aws_env;
        env.extend(
            [
                ("PAGERDUTY_SECRET_ID", secret.as_str()),
                ("PAGERDUTY_EVENTS_URL", &pagerduty.base_url()),
                ("PAGERDUTY_BACKOFF_MS", "10"),
                ("STATE_TABLE", TABLE),
                ("CHECK_ENV", ENV),
                ("ALARM_NAME_PREFIX", &format!("{STACK_PREFIX}-")),
                ("NOTIFY_TOPIC_ARN", &notify_topic),
                ("OPS_TOPIC_ARN", &ops_topic),
                ("SCHEDULE_RATE_MINUTES", "5"),
                // Replayed runs are hours old by design.
                ("MAX_EVENT_AGE_SECS", "86400"),
                ("RUST_LOG", "info"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut replay = Replay {
            moto: None,
            aws,
            pagerduty,
            forwarder: None,
            env,
            notify_queue,
            warnings: Vec::new(),
            ops_queue,
            ops_notifications: Vec::new(),
            last_event: None,
            sent: 0,
            t0,
        };
        replay.restart().await?;
        Ok(replay)
    }

    /// `minutes` after [`Replay::t0`] (fractions for runs within one schedule period).
    pub fn at(&self, minutes: f64) -> OffsetDateTime {
        self.t0 + Duration::seconds_f64(minutes * 60.0)
    }

    /// A cold start: the running forwarder is stopped and a new process takes over; anything it
    /// knew in memory is gone.
    pub async fn restart(&mut self) -> Result<(), StackError> {
        if let Some(old) = self.forwarder.take() {
            old.shutdown().await;
        }
        let binary = workspace_binary("pagerduty-forwarder").map_err(StackError::MissingBinary)?;
        self.forwarder = Some(LambdaProcess::spawn(&binary, "pagerduty-forwarder", &self.env).await?);
        Ok(())
    }

    /// One run of `check` from `region` at `at`, published and handed to the forwarder. Returns
    /// the forwarder's answer to the run and the PagerDuty events accepted meanwhile.
    pub async fn run(
        &mut self,
        check: &str,
        region: &str,
        at: OffsetDateTime,
        kind: RunKind,
    ) -> (Invocation, Vec<Value>) {
        let before = self.pagerduty.accepted().len();
        let alert = run_alert(check, region, at, kind);
        let message = serde_json::to_string(&alert).unwrap_or_default();
        let invocation = self.deliver(&message, at).await;
        let events = self.pagerduty.accepted().split_off(before.min(self.pagerduty.accepted().len()));
        (invocation, events)
    }

    /// The sweep's EventBridge tick at `at`, as the template's schedule invokes the forwarder.
    pub async fn sweep(&mut self, at: OffsetDateTime) -> Invocation {
        let event = json!({
            "version": "0", "id": format!("sweep-{}", at.unix_timestamp()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": at.format(&Rfc3339).unwrap_or_default(),
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/synthetic-prod-sweep"],
            "detail": {}
        });
        self.invoke(event).await
    }

    /// Every notification the operations topic received so far.
    pub async fn ops(&mut self) -> Vec<Value> {
        if let Ok(received) = self.aws.drain(&self.ops_queue).await {
            self.ops_notifications.extend(received.into_iter().map(|m| m.body));
        }
        self.ops_notifications.clone()
    }

    /// One SNS record with `message`, received by SNS at `received` (its `Timestamp`: the
    /// forwarder takes no run or alarm to be later than that), as SNS invokes the forwarder.
    pub async fn deliver(&mut self, message: &str, received: OffsetDateTime) -> Invocation {
        self.sent += 1;
        let event = json!({ "Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:synthetic-alerts:replay",
            "Sns": {
                "Type": "Notification", "MessageId": format!("replay-{}", self.sent),
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:synthetic-alerts", "Subject": null,
                "Message": message, "Timestamp": received.format(&Rfc3339).unwrap_or_default(), "SignatureVersion": "1",
                "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "", "MessageAttributes": {}
            }
        }]});
        self.last_event = Some(event.clone());
        self.invoke(event).await
    }

    /// The last event again, as Lambda retries an invocation.
    pub async fn redeliver(&mut self) -> Invocation {
        let event = self.last_event.clone().unwrap_or(Value::Null);
        self.invoke(event).await
    }

    async fn invoke(&self, event: Value) -> Invocation {
        let Some(forwarder) = &self.forwarder else {
            return Invocation::Error { error_type: "Replay".into(), error_message: "no forwarder running".into() };
        };
        match forwarder.invoke(event, INVOKE_TIMEOUT).await {
            Ok(invocation) => invocation,
            Err(error) => Invocation::Error { error_type: "Emulator".into(), error_message: error.to_string() },
        }
    }

    /// PagerDuty's incident list so far.
    pub fn incidents(&self) -> Vec<Incident> {
        let violations = self.pagerduty.violations();
        assert!(violations.is_empty(), "PagerDuty's contract was violated: {violations:#?}");
        self.pagerduty.incidents()
    }

    /// Every warning the human channels received so far.
    pub async fn warnings(&mut self) -> Vec<Value> {
        if let Ok(received) = self.aws.drain(&self.notify_queue).await {
            self.warnings.extend(received.into_iter().map(|m| m.body));
        }
        self.warnings.clone()
    }

    /// The forwarder's environment, for commands that use the same table (`synthetic silence`).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The forwarder's logs so far.
    pub fn logs(&self) -> Vec<String> {
        self.forwarder.as_ref().map(LambdaProcess::logs).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.shutdown().await;
        }
        if let Some(moto) = self.moto.take() {
            moto.stop().await;
        }
    }
}

/// A plan file (`CHECK_PLAN_FILE`) deploying `checks` (name, schedule in minutes) in every
/// region, written to `path`.
pub fn write_plan(path: &std::path::Path, checks: &[(&str, u32)]) -> std::io::Result<()> {
    let checks: Vec<Value> = checks
        .iter()
        .map(|(name, schedule)| {
            json!({"name": name, "schedule_minutes": schedule, "regions": [], "tags": [], "depends_on": [],
                   "enabled": true, "timeout_seconds": 30, "reads_account_secret": *name != "health",
                   "journey_sha256": "0".repeat(64)})
        })
        .collect();
    std::fs::write(path, json!({ "checks": checks }).to_string())
}

/// One check of a deployment plan, as the catalog would plan it (the fields the forwarder reads
/// are the name, the schedule and `depends_on`).
pub fn planned(name: &str, schedule_minutes: u32, depends_on: &[&str]) -> PlannedCheck {
    PlannedCheck {
        name: name.into(),
        schedule_minutes,
        regions: Vec::new(),
        tags: Vec::new(),
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        enabled: true,
        timeout_seconds: 30,
        reads_account_secret: false,
        journey_sha256: "0".repeat(64),
    }
}

/// The plan of `checks` in a file of its own, for the forwarder's `CHECK_PLAN_FILE`.
pub fn plan_file(checks: Vec<PlannedCheck>) -> String {
    let path = std::env::temp_dir().join(format!("synthetic-plan-{}.json", uuid::Uuid::new_v4()));
    let plan = serde_json::to_string(&Plan { checks }).expect("a plan serializes");
    std::fs::write(&path, plan).expect("the plan file is written");
    path.to_string_lossy().into_owned()
}

/// The alert a check publishes after such a run, built by the checks' own code.
pub fn run_alert(check: &str, region: &str, at: OffsetDateTime, kind: RunKind) -> AlertMessage {
    let origin = Origin {
        function_name: Some(format!("{STACK_PREFIX}-check-{check}")),
        log_group: Some(format!("/aws/lambda/{STACK_PREFIX}-check-{check}")),
        log_stream: None,
        region: Some(region.to_string()),
    };
    let mut alert = AlertMessage::from_run(&run_result(check, at, kind), &origin);
    alert.timestamp = at.format(&Rfc3339).unwrap_or_default();
    alert
}

/// A run of `check` at `at` that went as `kind` says.
pub fn run_result(check: &str, at: OffsetDateTime, kind: RunKind) -> RunResult {
    let step = |outcome, cause: Option<Cause>, error: Option<&str>| StepResult {
        name: "products_list".into(),
        outcome,
        duration_ms: 180,
        status: Some(if cause.is_some() { 503 } else { 200 }),
        attempts: 1,
        cause,
        error: error.map(str::to_string),
    };
    // Only the checks that sign in say anything about the account; health does not.
    let signs_in = check != "health";
    let (status, cause, steps, account) = match kind {
        RunKind::Passed => {
            (Outcome::Passed, None, vec![step(Outcome::Passed, None, None)], signs_in.then_some(Account::Accepted))
        }
        RunKind::Failed => (
            Outcome::Failed,
            Some(Cause::HttpStatus),
            vec![step(Outcome::Failed, Some(Cause::HttpStatus), Some("HTTP 503, expected 200"))],
            signs_in.then_some(Account::Accepted),
        ),
        RunKind::Rejected => (
            Outcome::Failed,
            Some(Cause::CredentialsRejected),
            vec![StepResult {
                name: "login".into(),
                ..step(Outcome::Failed, Some(Cause::CredentialsRejected), Some("HTTP 401"))
            }],
            Some(Account::Rejected),
        ),
    };
    RunResult {
        check: check.into(),
        env: ENV.into(),
        target: "https://shop.example.com/".into(),
        run_id: format!("{check}-{}", at.unix_timestamp()),
        started_at: at.format(&Rfc3339).unwrap_or_default(),
        duration_ms: 200,
        status,
        cause,
        steps,
        account,
        certificate: None,
        trace_id: None,
    }
}

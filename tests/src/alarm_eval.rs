//! A small model of CloudWatch alarm evaluation, for the alarms of `infra/check.yaml`, so a replay
//! test can say what the template's alarms do with a sequence of runs (issue 13).
//!
//! [`AlarmSet::load`] reads every `AWS::CloudWatch::Alarm` and `AWS::CloudWatch::CompositeAlarm` of
//! the template (short tags kept by `serde_norway`, intrinsics resolved here for one check),
//! [`AlarmSet::put`] records one EMF datapoint, and [`AlarmSet::evaluate`] evaluates every alarm
//! at one instant and returns the notifications CloudWatch would send, in order.
//!
//! # What is modelled, and from which documentation
//!
//! - **M out of N, evaluation range, missing data** (CloudWatch User Guide, "Evaluating an alarm" and
//!   "How alarm state is evaluated when data is missing",
//!   <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html>;
//!   the text and both example tables read from the guide's source, awsdocs/amazon-cloudwatch-user-guide
//!   `doc_source/AlarmThatSendsEmail.md`). CloudWatch retrieves more datapoints than
//!   `EvaluationPeriods` (the *evaluation range*): if at least N of them exist, the N most recent
//!   existing ones are evaluated and `TreatMissingData` is not used; otherwise the missing ones are
//!   filled with the treatment, as few times as possible. `breaching` / `notBreaching` fill with
//!   breaching / non-breaching points. For `missing` and `ignore`: ALARM if at least M existing points
//!   breach, OK if fewer do and at least one existing point does not breach, and otherwise (no point,
//!   or only too few breaching ones) INSUFFICIENT_DATA for `missing` and the current state for
//!   `ignore`. This reproduces every row of both tables of the guide (see the tests).
//! - **Metric math** (User Guide, "Using metric math": "Basic arithmetic functions", "Comparison and
//!   logical operators", "Using IF expressions"): `+ - * /`, unary minus, parentheses, numbers, ids
//!   of `Metrics` entries (a `MetricStat` or another expression), `== != < <= > >=`, `AND`/`&&`,
//!   `OR`/`||`, `IF(cond, a[, b])`. Missing values: between two time series a missing value counts
//!   as 0 (a timestamp exists if either series has it); a time series and a scalar give no value
//!   where the series has none; division by zero drops the datapoint; `IF` with a missing condition
//!   drops it, a true condition with a missing series value gives 0, a false one with a missing or
//!   omitted third argument drops it. Arithmetic is IEEE `f64`, as a double-precision service would
//!   do it (see the guard test: `12 * (1 - 10/12)` is `1.9999999999999996`, not 2).
//! - **Composite alarms** (API reference, `PutCompositeAlarm` `AlarmRule`): `ALARM(name)`,
//!   `OK(name)`, `INSUFFICIENT_DATA(name)` with the name quoted or not (a name or an alarm ARN),
//!   `TRUE`, `FALSE`, `NOT`, `AND`, `OR`, parentheses. A composite alarm starts in
//!   INSUFFICIENT_DATA and, as the API reference says, is only ever in it before its first
//!   evaluation: a true rule is ALARM, a false one OK.
//! - **States and actions**: every alarm starts in INSUFFICIENT_DATA (so the first evaluation
//!   usually moves it to OK and runs its `OKActions`, as CloudWatch does after `PutMetricAlarm`). A
//!   notification is produced only for a state change, only when `ActionsEnabled` is not false and
//!   the alarm has actions for the new state (`AlarmActions`, `OKActions`,
//!   `InsufficientDataActions`).
//! - **SNS message** ([`Notification::sns_message`]): the JSON body of the standard CloudWatch
//!   alarm notification. Field names and shapes come from AWS's own Lambda event fixtures
//!   (aws/aws-lambda-go `events/testdata/cloudwatch-alarm-sns-payload-single-metric.json` and
//!   `-multiple-metrics.json`) and a published composite-alarm notification (`AlarmRule`,
//!   `TriggeringChildren` with `Arn` and `State {Value, Timestamp}`, `NewStateReason` "<child ARN>
//!   transitioned to ALARM at Wednesday 10 November, 2021 02:45:55 UTC", `Region` as the region's
//!   display name).
//!
//! # Simplifications (choices where the documentation leaves room)
//!
//! - **Windows slide with the evaluation**: datapoint k (0 = newest) of a period P evaluated at `at`
//!   aggregates the samples stamped in `(at - (k+1)P, at - kP]`. A sample stamped exactly at the
//!   evaluation instant counts (no ingestion delay); CloudWatch evaluates every minute, so a
//!   replay calls [`AlarmSet::evaluate_each_minute`] or `evaluate` at each minute itself.
//! - **Evaluation range = N + 2 periods**: the guide only says it is "higher" than N and depends on
//!   the period; its examples (period 5 minutes, N = 3) retrieve 5, which is exactly the heartbeat
//!   alarm at a 5-minute schedule. Consequence worth knowing: a `breaching` 3-of-3 alarm whose
//!   metric stops goes to ALARM only once its last real datapoint has left the 5-period range (the
//!   guide's second table row, "The next time this alarm is evaluated ... it will go to ALARM"),
//!   i.e. after 5 silent periods, not 3.
//! - A statistic over no samples is a missing datapoint (also `SampleCount`: CloudWatch reports no
//!   datapoint, not 0). Statistics: Average, Sum, SampleCount, Minimum, Maximum; no percentiles,
//!   anomaly bands, `ThresholdMetricId`, metric-math functions other than `IF`, nor the AWS/DynamoDB
//!   "always ignore" exception. All `MetricStat`s of one alarm must have the same period.
//! - Not modelled: the knowledge-center rule that a single old-enough breaching point can alarm
//!   with `missing` ("Why did my CloudWatch alarm send me a notification after a single breached
//!   data point?"); it only concerns `missing`/`ignore` alarms with N > 1, and the template's
//!   `ignore` alarms have N = 1.
//! - `NewStateReason` texts follow the shape of CloudWatch's ("Threshold Crossed: 1 out of the last
//!   1 datapoints [16.666666666666664 (06/01/25 05:55:00)] was greater than or equal to the threshold
//!   (14.4) (minimum 1 datapoint for OK -> ALARM transition)."), not its exact wording in every case.
//!   `TreatMissingData` in `Trigger` is the plain value. No `AlarmConfigurationUpdatedTimestamp`.
//! - **Intrinsics**: `Ref`, `Fn::Sub` (both forms, `${!Literal}`), `Fn::FindInMap`, `Fn::If`,
//!   `Fn::GetAtt`, `Fn::Join`, `Fn::Select`, conditions (`Fn::Equals/And/Or/Not`, `Condition`),
//!   `AWS::NoValue`. A parameter takes its value from [`CheckParams`], else its template `Default`,
//!   else its own name (a stand-in for ARNs a test has no use for: actions read `OpsTopicArn`). `Ref`
//!   of an alarm is its `AlarmName`; of any other resource, its logical id (same stand-in idea).
//!   Pseudo parameters: `AWS::Region` us-east-1, `AWS::AccountId` 123456789012, `AWS::Partition`
//!   aws, `AWS::StackName` the stack prefix, all overridable through [`CheckParams::parameters`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use serde_json::{Map, Value as Json, json};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

/// The check whose alarms are evaluated: the nested stack's parameters that matter to alarms.
#[derive(Clone, Debug, Default)]
pub struct CheckParams {
    /// `CheckName`
    pub check: String,
    /// `StackPrefix`
    pub stack_prefix: String,
    /// `EnvName`
    pub env: String,
    /// `SloTargetPercent`
    pub slo_target_percent: f64,
    /// `ScheduleRateMinutes`
    pub schedule_rate_minutes: u32,
    /// `MetricsNamespace`
    pub metrics_namespace: String,
    /// Any other template parameter (e.g. `OpsTopicArn`) or pseudo parameter (`AWS::Region`).
    pub parameters: BTreeMap<String, String>,
}

impl CheckParams {
    fn values(&self) -> BTreeMap<String, String> {
        let mut values: BTreeMap<String, String> = [
            ("AWS::Region", "us-east-1"),
            ("AWS::AccountId", "123456789012"),
            ("AWS::Partition", "aws"),
            ("AWS::URLSuffix", "amazonaws.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        values.insert("AWS::StackName".into(), self.stack_prefix.clone());
        values.extend(self.parameters.clone());
        for (name, value) in [
            ("CheckName", self.check.clone()),
            ("StackPrefix", self.stack_prefix.clone()),
            ("EnvName", self.env.clone()),
            ("SloTargetPercent", self.slo_target_percent.to_string()),
            ("ScheduleRateMinutes", self.schedule_rate_minutes.to_string()),
            ("MetricsNamespace", self.metrics_namespace.clone()),
        ] {
            values.insert(name.into(), value);
        }
        values
    }
}

/// An alarm state, spelled as CloudWatch spells it in [`State::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Ok,
    Alarm,
    InsufficientData,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Alarm => "ALARM",
            State::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One state change of an alarm that has actions for its new state.
#[derive(Clone, Debug)]
pub struct Notification {
    pub alarm_name: String,
    pub old_state: State,
    pub new_state: State,
    pub at: OffsetDateTime,
    /// The resolved actions for the new state (parameter names stand in for unknown ARNs).
    pub actions: Vec<String>,
    description: Option<String>,
    all_actions: Actions,
    detail: Detail,
}

#[derive(Clone, Debug)]
enum Detail {
    Metric { reason: String, trigger: Json },
    Composite { rule: String, children: Vec<(String, State)> },
}

impl Notification {
    /// The SNS `Message` body CloudWatch publishes for this state change.
    pub fn sns_message(&self, region: &str, account: &str) -> Json {
        let arn = |name: &str| format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}");
        let when = format_time(self.at, STATE_CHANGE_TIME);
        let mut message = json!({
            "AlarmName": self.alarm_name,
            "AlarmDescription": self.description,
            "AWSAccountId": account,
            "NewStateValue": self.new_state.as_str(),
            "StateChangeTime": when,
            "Region": region_display_name(region),
            "AlarmArn": arn(&self.alarm_name),
            "OldStateValue": self.old_state.as_str(),
            "OKActions": self.all_actions.ok,
            "AlarmActions": self.all_actions.alarm,
            "InsufficientDataActions": self.all_actions.insufficient_data,
        });
        let reason = match &self.detail {
            Detail::Metric { reason, trigger } => {
                message["Trigger"] = trigger.clone();
                reason.clone()
            }
            Detail::Composite { rule, children } => {
                message["AlarmRule"] = json!(rule);
                message["TriggeringChildren"] = Json::Array(
                    children
                        .iter()
                        .map(|(name, state)| json!({"Arn": arn(name), "State": {"Value": state.as_str(), "Timestamp": when}}))
                        .collect(),
                );
                match children.first() {
                    Some((name, state)) => format!(
                        "{} transitioned to {} at {}",
                        arn(name),
                        state.as_str(),
                        format_time(self.at, COMPOSITE_REASON_TIME)
                    ),
                    None => format!("Initial evaluation of the alarm rule: {}", self.new_state.as_str()),
                }
            }
        };
        message["NewStateReason"] = json!(reason);
        message
    }
}

/// The alarms of one check, their metric data and their states.
#[derive(Debug)]
pub struct AlarmSet {
    /// Metric alarms in template order, then composites, each after the composites it reads.
    alarms: Vec<Alarm>,
    samples: HashMap<MetricKey, Vec<(OffsetDateTime, f64)>>,
    emf: EmfDimensions,
}

#[derive(Debug)]
struct EmfDimensions {
    namespace: String,
    check: String,
    env: String,
}

impl AlarmSet {
    /// Every `AWS::CloudWatch::Alarm` and `CompositeAlarm` of infra/check.yaml, with Ref/Sub/FindInMap
    /// resolved for `params`.
    pub fn load(params: &CheckParams) -> Result<Self, String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/check.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::from_template(&text, params).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Like [`AlarmSet::load`], from the text of any CloudFormation YAML template.
    pub fn from_template(yaml: &str, params: &CheckParams) -> Result<Self, String> {
        let raw: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
        let template = long_form(raw)?;
        let section = |name: &str| template.get(name).and_then(Json::as_object).cloned().unwrap_or_default();
        let (declared, mappings, conditions, resources) =
            (section("Parameters"), section("Mappings"), section("Conditions"), section("Resources"));
        let mut values = params.values();
        for (name, declaration) in &declared {
            if !values.contains_key(name) {
                let default = declaration.get("Default").map(scalar_text).unwrap_or_else(|| name.clone());
                values.insert(name.clone(), default);
            }
        }
        let mut resolver =
            Resolver { values, mappings: &mappings, conditions: &conditions, resources: &resources, stack: Vec::new() };

        let mut metric_alarms = Vec::new();
        let mut composites = Vec::new();
        for (logical_id, resource) in &resources {
            let kind = resource.get("Type").and_then(Json::as_str).unwrap_or_default();
            if kind != "AWS::CloudWatch::Alarm" && kind != "AWS::CloudWatch::CompositeAlarm" {
                continue;
            }
            if let Some(condition) = resource.get("Condition").and_then(Json::as_str)
                && !resolver.named_condition(condition)?
            {
                continue;
            }
            let properties = resource.get("Properties").cloned().unwrap_or(Json::Null);
            let properties = resolver.resolve(&properties)?.unwrap_or(Json::Null);
            let alarm =
                Alarm::from_properties(logical_id, kind, &properties).map_err(|e| format!("{logical_id}: {e}"))?;
            match alarm.kind {
                Kind::Metric(_) => metric_alarms.push(alarm),
                Kind::Composite(_) => composites.push(alarm),
            }
        }
        let names: HashSet<String> = metric_alarms.iter().chain(&composites).map(|a| a.name.clone()).collect();
        for alarm in &composites {
            if let Kind::Composite(c) = &alarm.kind
                && let Some(unknown) = c.rule.alarm_names().into_iter().find(|n| !names.contains(*n))
            {
                return Err(format!(
                    "{}: AlarmRule names '{unknown}', which is no alarm of the template",
                    alarm.logical_id
                ));
            }
        }
        let mut alarms = metric_alarms;
        alarms.extend(order_composites(composites)?);
        Ok(AlarmSet {
            alarms,
            samples: HashMap::new(),
            emf: EmfDimensions {
                namespace: params.metrics_namespace.clone(),
                check: params.check.clone(),
                env: params.env.clone(),
            },
        })
    }

    /// One datapoint of an EMF metric (e.g. "Success" 0/1, "DurationMs") at `at`, in the check's
    /// metrics namespace with the dimensions check and env.
    pub fn put(&mut self, metric: &str, at: OffsetDateTime, value: f64) {
        let key = MetricKey::new(
            &self.emf.namespace,
            metric,
            [("check".to_owned(), self.emf.check.clone()), ("env".to_owned(), self.emf.env.clone())],
        );
        let series = self.samples.entry(key).or_default();
        let index = series.partition_point(|(t, _)| *t <= at);
        series.insert(index, (at, value));
    }

    /// Evaluates every alarm at `at`; returns the notifications of alarms whose state changed and
    /// that have actions for the new state, metric alarms before the composites they feed.
    pub fn evaluate(&mut self, at: OffsetDateTime) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let mut changed: HashMap<String, State> = HashMap::new();
        for index in 0..self.alarms.len() {
            let alarm = &self.alarms[index];
            let outcome = match &alarm.kind {
                Kind::Metric(m) => m.evaluate(at, alarm.state, &self.samples),
                Kind::Composite(c) => {
                    let truth = c.rule.eval(&|name| self.state(name).unwrap_or(State::InsufficientData));
                    let children = c
                        .rule
                        .alarm_names()
                        .into_iter()
                        .filter_map(|n| changed.get(n).map(|s| (n.to_owned(), *s)))
                        .collect();
                    Some((
                        if truth { State::Alarm } else { State::Ok },
                        Detail::Composite { rule: c.rule_text.clone(), children },
                    ))
                }
            };
            let Some((new_state, detail)) = outcome else { continue };
            let alarm = &mut self.alarms[index];
            if new_state == alarm.state {
                continue;
            }
            let old_state = std::mem::replace(&mut alarm.state, new_state);
            changed.insert(alarm.name.clone(), new_state);
            let actions = alarm.actions.for_state(new_state).to_vec();
            if alarm.actions_enabled && !actions.is_empty() {
                notifications.push(Notification {
                    alarm_name: alarm.name.clone(),
                    old_state,
                    new_state,
                    at,
                    actions,
                    description: alarm.description.clone(),
                    all_actions: alarm.actions.clone(),
                    detail,
                });
            }
        }
        notifications
    }

    /// [`AlarmSet::evaluate`] at `from`, then every minute after it up to `to` (inclusive).
    pub fn evaluate_each_minute(&mut self, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let mut at = from;
        while at <= to {
            notifications.extend(self.evaluate(at));
            at += Duration::MINUTE;
        }
        notifications
    }

    pub fn state(&self, alarm_name: &str) -> Option<State> {
        self.alarms.iter().find(|a| a.name == alarm_name).map(|a| a.state)
    }

    /// Sets an alarm's state without notifying, like `SetAlarmState`: the next evaluation decides again.
    pub fn set_state(&mut self, alarm_name: &str, state: State) -> Result<(), String> {
        let alarm = self
            .alarms
            .iter_mut()
            .find(|a| a.name == alarm_name)
            .ok_or_else(|| format!("no alarm named {alarm_name}"))?;
        alarm.state = state;
        Ok(())
    }

    /// Every alarm's resolved name, in evaluation order.
    pub fn alarm_names(&self) -> Vec<&str> {
        self.alarms.iter().map(|a| a.name.as_str()).collect()
    }

    /// The math expression whose value a metric-math alarm compares with its threshold, as resolved.
    pub fn expression(&self, alarm_name: &str) -> Option<&str> {
        self.alarms.iter().find(|a| a.name == alarm_name).and_then(|a| match &a.kind {
            Kind::Metric(MetricAlarm { source: Source::Math(math), .. }) => {
                math.exprs.get(&math.result).map(|(text, _)| text.as_str())
            }
            _ => None,
        })
    }
}

// ------------------------------------------------------------------------------------ alarms

#[derive(Debug)]
struct Alarm {
    logical_id: String,
    name: String,
    description: Option<String>,
    actions_enabled: bool,
    actions: Actions,
    state: State,
    kind: Kind,
}

#[derive(Clone, Debug, Default)]
struct Actions {
    alarm: Vec<String>,
    ok: Vec<String>,
    insufficient_data: Vec<String>,
}

impl Actions {
    fn for_state(&self, state: State) -> &[String] {
        match state {
            State::Alarm => &self.alarm,
            State::Ok => &self.ok,
            State::InsufficientData => &self.insufficient_data,
        }
    }
}

#[derive(Debug)]
enum Kind {
    Metric(MetricAlarm),
    Composite(CompositeAlarm),
}

#[derive(Debug)]
struct CompositeAlarm {
    rule_text: String,
    rule: Rule,
}

#[derive(Debug)]
struct MetricAlarm {
    period: Duration,
    evaluation_periods: usize,
    datapoints_to_alarm: usize,
    threshold: f64,
    comparison: Comparison,
    treat_missing: TreatMissing,
    source: Source,
    trigger: Json,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum TreatMissing {
    Missing,
    Ignore,
    Breaching,
    NotBreaching,
}

#[derive(Clone, Copy, Debug)]
enum Comparison {
    GreaterOrEqual,
    Greater,
    Less,
    LessOrEqual,
}

impl Comparison {
    fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Greater => value > threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Comparison::GreaterOrEqual => "greater than or equal to",
            Comparison::Greater => "greater than",
            Comparison::Less => "less than",
            Comparison::LessOrEqual => "less than or equal to",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Stat {
    Average,
    Sum,
    SampleCount,
    Minimum,
    Maximum,
}

impl Stat {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "Average" => Stat::Average,
            "Sum" => Stat::Sum,
            "SampleCount" => Stat::SampleCount,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            other => {
                return Err(format!(
                    "statistic '{other}' is not modelled (Average, Sum, SampleCount, Minimum, Maximum)"
                ));
            }
        })
    }

    /// The name the SNS `Trigger` uses.
    fn trigger_name(self) -> &'static str {
        match self {
            Stat::Average => "AVERAGE",
            Stat::Sum => "SUM",
            Stat::SampleCount => "SAMPLE_COUNT",
            Stat::Minimum => "MINIMUM",
            Stat::Maximum => "MAXIMUM",
        }
    }

    fn of(self, samples: &[(OffsetDateTime, f64)]) -> Option<f64> {
        if samples.is_empty() {
            return None;
        }
        let values = samples.iter().map(|(_, v)| *v);
        Some(match self {
            Stat::Sum => values.sum(),
            Stat::SampleCount => samples.len() as f64,
            Stat::Average => values.sum::<f64>() / samples.len() as f64,
            Stat::Minimum => values.fold(f64::INFINITY, f64::min),
            Stat::Maximum => values.fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MetricKey {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
}

impl MetricKey {
    fn new(namespace: &str, name: &str, dimensions: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut dimensions: Vec<_> = dimensions.into_iter().collect();
        dimensions.sort();
        MetricKey { namespace: namespace.to_owned(), name: name.to_owned(), dimensions }
    }
}

#[derive(Debug)]
enum Source {
    Single(MetricKey, Stat),
    Math(MathSource),
}

#[derive(Debug)]
struct MathSource {
    stats: HashMap<String, (MetricKey, Stat)>,
    /// Expression entries by id: their text and parsed form.
    exprs: HashMap<String, (String, Expr)>,
    /// The id whose values the alarm compares (the one entry with ReturnData not false).
    result: String,
}

type Samples = HashMap<MetricKey, Vec<(OffsetDateTime, f64)>>;

fn bucket<'a>(
    samples: &'a Samples,
    key: &MetricKey,
    end: OffsetDateTime,
    period: Duration,
) -> &'a [(OffsetDateTime, f64)] {
    let Some(series) = samples.get(key) else { return &[] };
    let start = end - period;
    let lo = series.partition_point(|(t, _)| *t <= start);
    let hi = series.partition_point(|(t, _)| *t <= end);
    &series[lo..hi]
}

impl MetricAlarm {
    fn datapoint(&self, samples: &Samples, end: OffsetDateTime) -> Option<f64> {
        match &self.source {
            Source::Single(key, stat) => stat.of(bucket(samples, key, end, self.period)),
            Source::Math(math) => {
                let lookup = |id: &str| {
                    math.stats.get(id).and_then(|(key, stat)| stat.of(bucket(samples, key, end, self.period)))
                };
                math.value(&math.result, &lookup).v
            }
        }
    }

    /// The new state and why, or None when `ignore` keeps the current state.
    fn evaluate(&self, at: OffsetDateTime, current: State, samples: &Samples) -> Option<(State, Detail)> {
        let (n, m) = (self.evaluation_periods, self.datapoints_to_alarm);
        let range = n + 2;
        let existing: Vec<(OffsetDateTime, f64)> = (0..range)
            .filter_map(|k| {
                let end = at - self.period * k as u32;
                self.datapoint(samples, end).map(|v| (end - self.period, v))
            })
            .collect();
        let breaches = |v: f64| self.comparison.breaches(v, self.threshold);
        let evaluated = &existing[..existing.len().min(n)];
        let breaching = evaluated.iter().filter(|(_, v)| breaches(*v)).count();
        let filled = n - evaluated.len();
        let state = match self.treat_missing {
            _ if filled == 0 => threshold_state(breaching, m),
            TreatMissing::Breaching => threshold_state(breaching + filled, m),
            TreatMissing::NotBreaching => threshold_state(breaching, m),
            TreatMissing::Missing | TreatMissing::Ignore => {
                if breaching >= m {
                    State::Alarm
                } else if breaching < evaluated.len() {
                    State::Ok
                } else if self.treat_missing == TreatMissing::Missing {
                    State::InsufficientData
                } else {
                    return None;
                }
            }
        };
        let reason = self.reason(state, current, evaluated, filled, &breaches);
        Some((state, Detail::Metric { reason, trigger: self.trigger.clone() }))
    }

    fn reason(
        &self,
        state: State,
        current: State,
        evaluated: &[(OffsetDateTime, f64)],
        filled: usize,
        breaches: &dyn Fn(f64) -> bool,
    ) -> String {
        let n = self.evaluation_periods;
        if state == State::InsufficientData {
            return format!(
                "Insufficient Data: {filled} datapoint{} {} unknown.",
                plural(filled),
                if filled == 1 { "was" } else { "were" }
            );
        }
        let fill_note = match (filled, self.treat_missing) {
            (0, _) | (_, TreatMissing::Missing | TreatMissing::Ignore) => String::new(),
            (_, treat) => format!(
                " and {filled} missing datapoint{} {} treated as [{}]",
                plural(filled),
                if filled == 1 { "was" } else { "were" },
                if treat == TreatMissing::Breaching { "Breaching" } else { "NonBreaching" }
            ),
        };
        if evaluated.is_empty() {
            return format!("Threshold Crossed: no datapoints were received for {n} periods{fill_note}.");
        }
        let alarming = state == State::Alarm;
        let shown: Vec<String> = evaluated
            .iter()
            .filter(|(_, v)| breaches(*v) == alarming)
            .map(|(t, v)| format!("{} ({})", java_double(*v), format_time(*t, DATAPOINT_TIME)))
            .collect();
        let minimum = if alarming { self.datapoints_to_alarm } else { n - self.datapoints_to_alarm + 1 };
        format!(
            "Threshold Crossed: {} out of the last {} datapoints [{}] {} {}{} the threshold ({}){fill_note} (minimum {minimum} datapoint{} for {} -> {} transition).",
            shown.len(),
            evaluated.len(),
            shown.join(", "),
            if shown.len() == 1 { "was" } else { "were" },
            if alarming { "" } else { "not " },
            self.comparison.phrase(),
            java_double(self.threshold),
            plural(minimum),
            current.as_str(),
            state.as_str(),
        )
    }
}

fn threshold_state(breaching: usize, datapoints_to_alarm: usize) -> State {
    if breaching >= datapoints_to_alarm { State::Alarm } else { State::Ok }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How CloudWatch (Java) prints a double in reasons: `1.0`, `16.666666666666664`.
fn java_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.1}") } else { format!("{v}") }
}

impl Alarm {
    fn from_properties(logical_id: &str, kind: &str, p: &Json) -> Result<Self, String> {
        let name = p
            .get("AlarmName")
            .and_then(Json::as_str)
            .ok_or("AlarmName is missing or not a string (the evaluator needs fixed names)")?;
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match p.get(key) {
                None => Ok(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| format!("{key} holds a non-string: {i}")))
                    .collect(),
                Some(other) => Err(format!("{key} is not a list: {other}")),
            }
        };
        let actions = Actions {
            alarm: strings("AlarmActions")?,
            ok: strings("OKActions")?,
            insufficient_data: strings("InsufficientDataActions")?,
        };
        let actions_enabled = match p.get("ActionsEnabled") {
            None => true,
            Some(v) => v
                .as_bool()
                .or_else(|| v.as_str().map(|s| s.eq_ignore_ascii_case("true")))
                .ok_or("ActionsEnabled is not a boolean")?,
        };
        let kind = if kind == "AWS::CloudWatch::CompositeAlarm" {
            let rule_text = p.get("AlarmRule").and_then(Json::as_str).ok_or("AlarmRule is missing")?;
            Kind::Composite(CompositeAlarm { rule: Rule::parse(rule_text)?, rule_text: rule_text.to_owned() })
        } else {
            Kind::Metric(MetricAlarm::from_properties(p)?)
        };
        Ok(Alarm {
            logical_id: logical_id.to_owned(),
            name: name.to_owned(),
            description: p.get("AlarmDescription").and_then(Json::as_str).map(str::to_owned),
            actions_enabled,
            actions,
            state: State::InsufficientData,
            kind,
        })
    }
}

fn number(p: &Json, key: &str) -> Result<Option<f64>, String> {
    match p.get(key) {
        None => Ok(None),
        Some(Json::Number(n)) => Ok(n.as_f64()),
        Some(Json::String(s)) => s.trim().parse().map(Some).map_err(|_| format!("{key} is not a number: '{s}'")),
        Some(other) => Err(format!("{key} is not a number: {other}")),
    }
}

fn count(p: &Json, key: &str) -> Result<Option<usize>, String> {
    number(p, key)?
        .map(|v| {
            if v >= 1.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(format!("{key} must be a whole number >= 1, not {v}"))
            }
        })
        .transpose()
}

fn text<'a>(p: &'a Json, key: &str) -> Result<&'a str, String> {
    p.get(key).and_then(Json::as_str).ok_or_else(|| format!("{key} is missing or not a string"))
}

fn metric_key(metric: &Json) -> Result<MetricKey, String> {
    let dimensions = match metric.get("Dimensions") {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|d| Ok((text(d, "Name")?.to_owned(), text(d, "Value")?.to_owned())))
            .collect::<Result<Vec<_>, String>>()?,
        Some(other) => return Err(format!("Dimensions is not a list: {other}")),
    };
    Ok(MetricKey::new(text(metric, "Namespace")?, text(metric, "MetricName")?, dimensions))
}

/// `Dimensions` as the SNS `Trigger` spells them (lower-case keys).
fn trigger_dimensions(key: &MetricKey) -> Json {
    Json::Array(key.dimensions.iter().map(|(n, v)| json!({"value": v, "name": n})).collect())
}

impl MetricAlarm {
    fn from_properties(p: &Json) -> Result<Self, String> {
        for unsupported in ["ExtendedStatistic", "ThresholdMetricId"] {
            if p.get(unsupported).is_some() {
                return Err(format!("{unsupported} is not modelled"));
            }
        }
        let comparison = match text(p, "ComparisonOperator")? {
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterOrEqual,
            "GreaterThanThreshold" => Comparison::Greater,
            "LessThanThreshold" => Comparison::Less,
            "LessThanOrEqualToThreshold" => Comparison::LessOrEqual,
            other => return Err(format!("ComparisonOperator '{other}' is not modelled")),
        };
        let treat_missing = match p.get("TreatMissingData").and_then(Json::as_str).unwrap_or("missing") {
            "missing" => TreatMissing::Missing,
            "ignore" => TreatMissing::Ignore,
            "breaching" => TreatMissing::Breaching,
            "notBreaching" => TreatMissing::NotBreaching,
            other => {
                return Err(format!(
                    "TreatMissingData '{other}' is not one of missing, ignore, breaching, notBreaching"
                ));
            }
        };
        let threshold = number(p, "Threshold")?.ok_or("Threshold is missing")?;
        let evaluation_periods = count(p, "EvaluationPeriods")?.ok_or("EvaluationPeriods is missing")?;
        let datapoints_to_alarm = count(p, "DatapointsToAlarm")?.unwrap_or(evaluation_periods);
        if datapoints_to_alarm > evaluation_periods {
            return Err(format!(
                "DatapointsToAlarm {datapoints_to_alarm} exceeds EvaluationPeriods {evaluation_periods}"
            ));
        }
        let (source, period_s) = match p.get("Metrics") {
            Some(metrics) => MathSource::from_metrics(metrics)?,
            None => {
                let key = metric_key(p)?;
                let stat = Stat::parse(text(p, "Statistic")?)?;
                (Source::Single(key, stat), count(p, "Period")?.ok_or("Period is missing")?)
            }
        };
        let mut trigger = json!({
            "Period": period_s,
            "EvaluationPeriods": evaluation_periods,
            "DatapointsToAlarm": datapoints_to_alarm,
            "ComparisonOperator": text(p, "ComparisonOperator")?,
            "Threshold": threshold,
            "TreatMissingData": p.get("TreatMissingData").and_then(Json::as_str).unwrap_or("missing"),
            "EvaluateLowSampleCountPercentile": "",
        });
        match &source {
            Source::Single(key, stat) => {
                trigger["MetricName"] = json!(key.name);
                trigger["Namespace"] = json!(key.namespace);
                trigger["StatisticType"] = json!("Statistic");
                trigger["Statistic"] = json!(stat.trigger_name());
                trigger["Unit"] = Json::Null;
                trigger["Dimensions"] = trigger_dimensions(key);
            }
            Source::Math(_) => trigger["Metrics"] = trigger_metrics(p.get("Metrics").unwrap_or(&Json::Null)),
        }
        Ok(MetricAlarm {
            period: Duration::seconds(period_s as i64),
            evaluation_periods,
            datapoints_to_alarm,
            threshold,
            comparison,
            treat_missing,
            source,
            trigger,
        })
    }
}

/// `Metrics` as the SNS `Trigger` spells them.
fn trigger_metrics(metrics: &Json) -> Json {
    let entries = metrics.as_array().map(Vec::as_slice).unwrap_or_default();
    Json::Array(
        entries
            .iter()
            .map(|entry| {
                let mut out = Map::new();
                for key in ["Expression", "Id", "Label"] {
                    if let Some(v) = entry.get(key) {
                        out.insert(key.into(), v.clone());
                    }
                }
                if let Some(stat) = entry.get("MetricStat") {
                    let metric = stat.get("Metric").cloned().unwrap_or(Json::Null);
                    let dimensions = metric_key(&metric).map(|k| trigger_dimensions(&k)).unwrap_or(Json::Array(Vec::new()));
                    out.insert(
                        "MetricStat".into(),
                        json!({
                            "Metric": {"Dimensions": dimensions, "MetricName": metric.get("MetricName"), "Namespace": metric.get("Namespace")},
                            "Period": number(stat, "Period").ok().flatten(),
                            "Stat": stat.get("Stat"),
                        }),
                    );
                }
                out.insert("ReturnData".into(), json!(entry.get("ReturnData").and_then(Json::as_bool).unwrap_or(true)));
                Json::Object(out)
            })
            .collect(),
    )
}

impl MathSource {
    fn from_metrics(metrics: &Json) -> Result<(Source, usize), String> {
        let entries = metrics.as_array().ok_or("Metrics is not a list")?;
        let mut stats = HashMap::new();
        let mut exprs = HashMap::new();
        let mut returned = Vec::new();
        let mut period = None;
        for entry in entries {
            let id = text(entry, "Id").map_err(|e| format!("Metrics: {e}"))?.to_owned();
            let returns = match entry.get("ReturnData") {
                None => true,
                Some(v) => v
                    .as_bool()
                    .or_else(|| v.as_str().map(|s| s.eq_ignore_ascii_case("true")))
                    .ok_or(format!("Metrics {id}: ReturnData is not a boolean"))?,
            };
            if returns {
                returned.push(id.clone());
            }
            if let Some(stat) = entry.get("MetricStat") {
                let metric = stat.get("Metric").ok_or(format!("Metrics {id}: MetricStat has no Metric"))?;
                let stat_period = count(stat, "Period")
                    .map_err(|e| format!("Metrics {id}: {e}"))?
                    .ok_or(format!("Metrics {id}: MetricStat has no Period"))?;
                if *period.get_or_insert(stat_period) != stat_period {
                    return Err(format!(
                        "Metrics {id}: period {stat_period} differs from the alarm's other metrics (not modelled)"
                    ));
                }
                let key = metric_key(metric).map_err(|e| format!("Metrics {id}: {e}"))?;
                let parsed = Stat::parse(text(stat, "Stat").map_err(|e| format!("Metrics {id}: {e}"))?)?;
                stats.insert(id, (key, parsed));
            } else {
                let expression = text(entry, "Expression")
                    .map_err(|_| format!("Metrics {id}: neither MetricStat nor Expression"))?;
                let parsed = Expr::parse(expression).map_err(|e| format!("Metrics {id}: {e}"))?;
                exprs.insert(id, (expression.to_owned(), parsed));
            }
        }
        let [result] = returned.as_slice() else {
            return Err(format!("Metrics must return exactly one time series (ReturnData), not {}", returned.len()));
        };
        let source = MathSource { stats, exprs, result: result.clone() };
        source.check(result, &mut Vec::new())?;
        let period = period.ok_or("Metrics has no MetricStat")?;
        Ok((Source::Math(source), period))
    }

    /// Every id is known, no expression depends on itself, and the result is a time series.
    fn check(&self, id: &str, path: &mut Vec<String>) -> Result<bool, String> {
        if self.stats.contains_key(id) {
            return Ok(true);
        }
        let (_, expr) = self.exprs.get(id).ok_or_else(|| format!("Metrics: expression uses unknown id '{id}'"))?;
        if path.iter().any(|p| p == id) {
            return Err(format!("Metrics: expression '{id}' depends on itself"));
        }
        path.push(id.to_owned());
        let mut series = false;
        for used in expr.ids() {
            series |= self.check(used, path)?;
        }
        path.pop();
        if !series && path.is_empty() {
            return Err(format!("Metrics: the returned expression '{id}' uses no metric, so it is no time series"));
        }
        Ok(series)
    }

    fn value(&self, id: &str, stat: &dyn Fn(&str) -> Option<f64>) -> Val {
        match self.exprs.get(id) {
            Some((_, expr)) => expr.eval(&|used| self.value(used, stat)),
            None => Val { v: stat(id), series: true },
        }
    }
}

// ------------------------------------------------------------------------------------ metric math

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Num(f64),
    Id(String),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
}

/// One datapoint of an expression: `series` tells a time series (which may lack a value at this
/// timestamp) from a scalar, because missing values combine differently with each.
#[derive(Clone, Copy, Debug)]
struct Val {
    v: Option<f64>,
    series: bool,
}

impl Val {
    fn scalar(v: f64) -> Self {
        Val { v: Some(v), series: false }
    }
}

impl Expr {
    fn parse(text: &str) -> Result<Self, String> {
        let tokens = lex(text)?;
        let mut parser = ExprParser { tokens: &tokens, pos: 0 };
        let expr = parser.or()?;
        match parser.tokens.get(parser.pos) {
            None => Ok(expr),
            Some(t) => Err(format!("unexpected '{t}' in expression '{text}'")),
        }
    }

    fn ids(&self) -> Vec<&str> {
        match self {
            Expr::Num(_) => Vec::new(),
            Expr::Id(id) => vec![id.as_str()],
            Expr::Neg(e) => e.ids(),
            Expr::Bin(_, a, b) => [a.ids(), b.ids()].concat(),
            Expr::If(c, a, b) => [c.ids(), a.ids(), b.as_ref().map(|b| b.ids()).unwrap_or_default()].concat(),
        }
    }

    fn eval(&self, id: &dyn Fn(&str) -> Val) -> Val {
        match self {
            Expr::Num(n) => Val::scalar(*n),
            Expr::Id(name) => id(name),
            Expr::Neg(e) => {
                let v = e.eval(id);
                Val { v: v.v.map(|x| -x), ..v }
            }
            Expr::Bin(op, a, b) => binary(*op, a.eval(id), b.eval(id)),
            Expr::If(condition, then, otherwise) => {
                let c = condition.eval(id);
                let series = c.series || then.eval(id).series || otherwise.as_ref().is_some_and(|o| o.eval(id).series);
                let v = match c.v {
                    None => None,
                    Some(c) if c != 0.0 => Some(then.eval(id).v.unwrap_or(0.0)),
                    Some(_) => otherwise.as_ref().and_then(|o| o.eval(id).v),
                };
                Val { v, series }
            }
        }
    }
}

fn binary(op: Op, a: Val, b: Val) -> Val {
    let series = a.series || b.series;
    let operands = match (a, b) {
        (Val { v: None, .. }, Val { v: None, .. }) => None,
        // Between two time series a missing value counts as 0; a scalar with a missing value is missing.
        (Val { v: None, series: true }, Val { v: Some(y), series: true }) => Some((0.0, y)),
        (Val { v: Some(x), series: true }, Val { v: None, series: true }) => Some((x, 0.0)),
        (Val { v: Some(x), .. }, Val { v: Some(y), .. }) => Some((x, y)),
        _ => None,
    };
    let truth = |t: bool| Some(if t { 1.0 } else { 0.0 });
    let v = operands.and_then(|(x, y)| match op {
        Op::Add => Some(x + y),
        Op::Sub => Some(x - y),
        Op::Mul => Some(x * y),
        Op::Div if y == 0.0 => None,
        Op::Div => Some(x / y),
        Op::Gt => truth(x > y),
        Op::Ge => truth(x >= y),
        Op::Lt => truth(x < y),
        Op::Le => truth(x <= y),
        Op::Eq => truth(x == y),
        Op::Ne => truth(x != y),
        Op::And => truth(x != 0.0 && y != 0.0),
        Op::Or => truth(x != 0.0 || y != 0.0),
    });
    Val { v, series }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f64),
    Word(String),
    Sym(&'static str),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Word(w) => f.write_str(w),
            Token::Sym(s) => f.write_str(s),
        }
    }
}

const SYMBOLS: [&str; 15] = ["&&", "||", ">=", "<=", "==", "!=", ">", "<", "+", "-", "*", "/", "(", ")", ","];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if c.is_ascii_digit() || c == '.' {
            let end = rest.find(|ch: char| !(ch.is_ascii_digit() || ch == '.')).unwrap_or(rest.len());
            let n = rest[..end].parse().map_err(|_| format!("bad number '{}' in expression '{text}'", &rest[..end]))?;
            tokens.push(Token::Num(n));
            rest = &rest[end..];
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).unwrap_or(rest.len());
            tokens.push(match &rest[..end] {
                "AND" => Token::Sym("&&"),
                "OR" => Token::Sym("||"),
                word => Token::Word(word.to_owned()),
            });
            rest = &rest[end..];
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Sym(sym));
            rest = &rest[sym.len()..];
        } else {
            return Err(format!(
                "unexpected character '{c}' in expression '{text}' (modelled: + - * / comparisons AND OR IF)"
            ));
        }
    }
    Ok(tokens)
}

struct ExprParser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl ExprParser<'_> {
    fn eat(&mut self, sym: &str) -> bool {
        let found = matches!(self.tokens.get(self.pos), Some(Token::Sym(s)) if *s == sym);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(format!(
                "expected '{sym}' at {}",
                self.tokens.get(self.pos).map(|t| format!("'{t}'")).unwrap_or_else(|| "the end".into())
            ))
        }
    }

    fn left_assoc(&mut self, ops: &[(&str, Op)], next: fn(&mut Self) -> Result<Expr, String>) -> Result<Expr, String> {
        let mut left = next(self)?;
        'outer: loop {
            for (sym, op) in ops {
                if self.eat(sym) {
                    left = Expr::Bin(*op, Box::new(left), Box::new(next(self)?));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.left_assoc(&[("||", Op::Or)], Self::and)
    }

    fn and(&mut self) -> Result<Expr, String> {
        self.left_assoc(&[("&&", Op::And)], Self::comparison)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        self.left_assoc(
            &[(">=", Op::Ge), ("<=", Op::Le), ("==", Op::Eq), ("!=", Op::Ne), (">", Op::Gt), ("<", Op::Lt)],
            Self::additive,
        )
    }

    fn additive(&mut self) -> Result<Expr, String> {
        self.left_assoc(&[("+", Op::Add), ("-", Op::Sub)], Self::multiplicative)
    }

    fn multiplicative(&mut self) -> Result<Expr, String> {
        self.left_assoc(&[("*", Op::Mul), ("/", Op::Div)], Self::unary)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") { Ok(Expr::Neg(Box::new(self.unary()?))) } else { self.primary() }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.tokens.get(self.pos).cloned().ok_or("expression ends early")?;
        self.pos += 1;
        match token {
            Token::Num(n) => Ok(Expr::Num(n)),
            Token::Sym("(") => {
                let inner = self.or()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Word(word) if self.eat("(") => {
                if word != "IF" {
                    return Err(format!("function {word} is not modelled (only IF)"));
                }
                let condition = self.or()?;
                self.expect(",")?;
                let then = self.or()?;
                let otherwise = if self.eat(",") { Some(Box::new(self.or()?)) } else { None };
                self.expect(")")?;
                Ok(Expr::If(Box::new(condition), Box::new(then), otherwise))
            }
            Token::Word(word) => Ok(Expr::Id(word)),
            Token::Sym(s) => Err(format!("unexpected '{s}'")),
        }
    }
}

// ------------------------------------------------------------------------------------ composite rules

#[derive(Clone, Debug, PartialEq)]
enum Rule {
    Const(bool),
    Is(State, String),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

impl Rule {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parser = RuleParser { text, pos: 0 };
        let rule = parser.or()?;
        parser.skip_space();
        if parser.pos < text.len() {
            return Err(format!("AlarmRule: unexpected '{}' in '{text}'", &text[parser.pos..]));
        }
        Ok(rule)
    }

    fn eval(&self, state_of: &dyn Fn(&str) -> State) -> bool {
        match self {
            Rule::Const(b) => *b,
            Rule::Is(state, name) => state_of(name) == *state,
            Rule::Not(r) => !r.eval(state_of),
            Rule::And(a, b) => a.eval(state_of) && b.eval(state_of),
            Rule::Or(a, b) => a.eval(state_of) || b.eval(state_of),
        }
    }

    fn alarm_names(&self) -> Vec<&str> {
        match self {
            Rule::Const(_) => Vec::new(),
            Rule::Is(_, name) => vec![name.as_str()],
            Rule::Not(r) => r.alarm_names(),
            Rule::And(a, b) | Rule::Or(a, b) => [a.alarm_names(), b.alarm_names()].concat(),
        }
    }
}

struct RuleParser<'a> {
    text: &'a str,
    pos: usize,
}

impl RuleParser<'_> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn keyword(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let boundary =
            rest[word.len().min(rest.len())..].chars().next().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if rest.starts_with(word) && boundary {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Rule, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Rule::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Rule::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Rule, String> {
        if self.keyword("NOT") { Ok(Rule::Not(Box::new(self.not()?))) } else { self.primary() }
    }

    fn primary(&mut self) -> Result<Rule, String> {
        if self.punct('(') {
            let inner = self.or()?;
            return if self.punct(')') { Ok(inner) } else { Err(format!("AlarmRule: missing ')' in '{}'", self.text)) };
        }
        for (word, value) in [("TRUE", true), ("FALSE", false)] {
            if self.keyword(word) {
                return Ok(Rule::Const(value));
            }
        }
        for (word, state) in
            [("ALARM", State::Alarm), ("OK", State::Ok), ("INSUFFICIENT_DATA", State::InsufficientData)]
        {
            if self.keyword(word) {
                if !self.punct('(') {
                    return Err(format!("AlarmRule: expected '(' after {word} in '{}'", self.text));
                }
                return Ok(Rule::Is(state, self.alarm_name()?));
            }
        }
        Err(format!(
            "AlarmRule: expected ALARM(..), OK(..), INSUFFICIENT_DATA(..), TRUE, FALSE, NOT or '(' at '{}'",
            &self.text[self.pos..]
        ))
    }

    /// A quoted or bare alarm name or ARN, through the closing parenthesis.
    fn alarm_name(&mut self) -> Result<String, String> {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let (name, used) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| format!("AlarmRule: unterminated quote in '{}'", self.text))?;
            (&quoted[..end], end + 2)
        } else {
            let end = rest.find(')').ok_or_else(|| format!("AlarmRule: missing ')' in '{}'", self.text))?;
            (rest[..end].trim_end(), end)
        };
        self.pos += used;
        if !self.punct(')') {
            return Err(format!("AlarmRule: expected ')' after alarm name '{name}'"));
        }
        let name = name.rsplit_once(":alarm:").filter(|_| name.starts_with("arn:")).map_or(name, |(_, n)| n);
        if name.is_empty() {
            return Err(format!("AlarmRule: empty alarm name in '{}'", self.text));
        }
        Ok(name.to_owned())
    }
}

/// Composites after the composites their rules read, so one evaluation settles a chain.
fn order_composites(mut pending: Vec<Alarm>) -> Result<Vec<Alarm>, String> {
    let mut ordered: Vec<Alarm> = Vec::new();
    while !pending.is_empty() {
        let waiting: HashSet<String> = pending.iter().map(|a| a.name.clone()).collect();
        let ready = pending.iter().position(|a| match &a.kind {
            Kind::Composite(c) => c.rule.alarm_names().iter().all(|n| *n == a.name.as_str() || !waiting.contains(*n)),
            Kind::Metric(_) => true,
        });
        let Some(index) = ready else {
            return Err(format!(
                "composite alarms depend on each other in a cycle: {}",
                waiting.into_iter().collect::<Vec<_>>().join(", ")
            ));
        };
        ordered.push(pending.remove(index));
    }
    Ok(ordered)
}

// ------------------------------------------------------------------------------------ template

/// YAML with short tags to the JSON long form (`!Sub x` -> `{"Fn::Sub": x}`).
fn long_form(value: serde_norway::Value) -> Result<Json, String> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(b),
        Y::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => json!(i),
            (None, Some(f)) => json!(f),
            _ => return Err(format!("number {n} does not fit")),
        },
        Y::String(s) => Json::String(s),
        Y::Sequence(items) => Json::Array(items.into_iter().map(long_form).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("mapping key {other:?} is not a scalar")),
                };
                out.insert(key, long_form(value)?);
            }
            Json::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = long_form(tagged.value)?;
            let name = tag.trim_start_matches('!');
            match name {
                "Ref" => json!({"Ref": inner}),
                "Condition" => json!({"Condition": inner}),
                "GetAtt" => match inner {
                    Json::String(s) => {
                        let (resource, attribute) =
                            s.split_once('.').ok_or_else(|| format!("!GetAtt {s}: expected Resource.Attribute"))?;
                        json!({"Fn::GetAtt": [resource, attribute]})
                    }
                    other => json!({"Fn::GetAtt": other}),
                },
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    })
}

fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Resolver<'a> {
    values: BTreeMap<String, String>,
    mappings: &'a Map<String, Json>,
    conditions: &'a Map<String, Json>,
    resources: &'a Map<String, Json>,
    /// What is being resolved, to report a reference cycle instead of overflowing the stack.
    stack: Vec<String>,
}

impl Resolver<'_> {
    /// The value with every intrinsic resolved; None for `AWS::NoValue`.
    fn resolve(&mut self, value: &Json) -> Result<Option<Json>, String> {
        match value {
            Json::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.extend(self.resolve(item)?);
                }
                Ok(Some(Json::Array(out)))
            }
            Json::Object(map) if map.len() == 1 && map.keys().all(|k| k == "Ref" || k.starts_with("Fn::")) => {
                let (function, argument) = map.iter().next().ok_or("empty intrinsic")?;
                self.intrinsic(function, argument)
            }
            Json::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    if let Some(resolved) = self.resolve(value)? {
                        out.insert(key.clone(), resolved);
                    }
                }
                Ok(Some(Json::Object(out)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    fn resolve_text(&mut self, value: &Json, context: &str) -> Result<String, String> {
        match self.resolve(value)? {
            Some(Json::String(s)) => Ok(s),
            Some(scalar @ (Json::Number(_) | Json::Bool(_))) => Ok(scalar.to_string()),
            other => Err(format!("{context}: expected a string, got {other:?}")),
        }
    }

    fn args<'j>(argument: &'j Json, function: &str, n: usize) -> Result<&'j [Json], String> {
        match argument.as_array() {
            Some(items) if items.len() == n => Ok(items),
            _ => Err(format!("{function} takes a list of {n}: {argument}")),
        }
    }

    fn intrinsic(&mut self, function: &str, argument: &Json) -> Result<Option<Json>, String> {
        match function {
            "Ref" => {
                let name = argument.as_str().ok_or_else(|| format!("Ref of a non-string: {argument}"))?;
                if name == "AWS::NoValue" { Ok(None) } else { self.reference(name).map(|s| Some(Json::String(s))) }
            }
            "Fn::Sub" => {
                let (template, variables) = match argument {
                    Json::String(s) => (s.clone(), Map::new()),
                    Json::Array(items) if items.len() == 2 => {
                        let template = items[0].as_str().ok_or("Fn::Sub: the template is not a string")?.to_owned();
                        let variables =
                            items[1].as_object().cloned().ok_or("Fn::Sub: the variables are not a mapping")?;
                        (template, variables)
                    }
                    other => return Err(format!("Fn::Sub of {other}")),
                };
                self.substitute(&template, &variables).map(|s| Some(Json::String(s)))
            }
            "Fn::FindInMap" => {
                let args = Self::args(argument, function, 3)?;
                let [map, first, second] = [0, 1, 2].map(|i| self.resolve_text(&args[i], "Fn::FindInMap"));
                let (map, first, second) = (map?, first?, second?);
                let found = self.mappings.get(&map).and_then(|m| m.get(&first)).and_then(|m| m.get(&second)).cloned();
                let found = found.ok_or_else(|| format!("Fn::FindInMap: no {map}.{first}.{second}"))?;
                self.resolve(&found)
            }
            "Fn::If" => {
                let args = Self::args(argument, function, 3)?;
                let condition = args[0].as_str().ok_or("Fn::If: the condition is not a name")?;
                let chosen = if self.named_condition(condition)? { &args[1] } else { &args[2] };
                self.resolve(chosen)
            }
            "Fn::GetAtt" => {
                let args = Self::args(argument, function, 2)?;
                let resource = self.resolve_text(&args[0], "Fn::GetAtt")?;
                let attribute = self.resolve_text(&args[1], "Fn::GetAtt")?;
                if attribute == "Arn" && self.is_alarm(&resource) {
                    let name = self.reference(&resource)?;
                    let (region, account) = (self.values["AWS::Region"].clone(), self.values["AWS::AccountId"].clone());
                    return Ok(Some(json!(format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}"))));
                }
                Ok(Some(json!(format!("{resource}.{attribute}"))))
            }
            "Fn::Join" => {
                let args = Self::args(argument, function, 2)?;
                let delimiter = args[0].as_str().ok_or("Fn::Join: the delimiter is not a string")?;
                let items = match self.resolve(&args[1])? {
                    Some(Json::Array(items)) => items,
                    other => return Err(format!("Fn::Join: not a list: {other:?}")),
                };
                let parts: Vec<String> = items.iter().map(scalar_text).collect();
                Ok(Some(json!(parts.join(delimiter))))
            }
            "Fn::Select" => {
                let args = Self::args(argument, function, 2)?;
                let index: usize = self
                    .resolve_text(&args[0], "Fn::Select")?
                    .parse()
                    .map_err(|_| "Fn::Select: the index is not a number")?;
                match self.resolve(&args[1])? {
                    Some(Json::Array(items)) => {
                        items.get(index).cloned().map(Some).ok_or_else(|| format!("Fn::Select: no item {index}"))
                    }
                    other => Err(format!("Fn::Select: not a list: {other:?}")),
                }
            }
            other => Err(format!("intrinsic {other} is not modelled")),
        }
    }

    fn is_alarm(&self, logical_id: &str) -> bool {
        self.resources
            .get(logical_id)
            .and_then(|r| r.get("Type"))
            .and_then(Json::as_str)
            .is_some_and(|t| t.starts_with("AWS::CloudWatch::"))
    }

    /// `Ref name`: a parameter's value, an alarm's name, or another resource's logical id.
    fn reference(&mut self, name: &str) -> Result<String, String> {
        if let Some(value) = self.values.get(name) {
            return Ok(value.clone());
        }
        let Some(resource) = self.resources.get(name) else {
            return Err(format!("Ref {name}: no such parameter or resource"));
        };
        if !self.is_alarm(name) {
            return Ok(name.to_owned());
        }
        if self.stack.iter().any(|s| s == name) {
            return Err(format!("Ref {name}: the alarm's name refers to itself"));
        }
        self.stack.push(name.to_owned());
        let alarm_name = resource.get("Properties").and_then(|p| p.get("AlarmName")).cloned();
        let resolved = match alarm_name {
            Some(alarm_name) => self.resolve_text(&alarm_name, name),
            None => Err(format!("Ref {name}: the alarm has no AlarmName")),
        };
        self.stack.pop();
        resolved
    }

    fn substitute(&mut self, template: &str, variables: &Map<String, Json>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| format!("Fn::Sub: unclosed '${{' in '{template}'"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&self.resolve_text(value, "Fn::Sub")?);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                let value = self.intrinsic("Fn::GetAtt", &json!([resource, attribute]))?.unwrap_or_default();
                out.push_str(&scalar_text(&value));
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn named_condition(&mut self, name: &str) -> Result<bool, String> {
        let definition = self.conditions.get(name).cloned().ok_or_else(|| format!("no condition named {name}"))?;
        let key = format!("Condition {name}");
        if self.stack.contains(&key) {
            return Err(format!("condition {name} refers to itself"));
        }
        self.stack.push(key);
        let value = self.condition(&definition);
        self.stack.pop();
        value
    }

    fn condition(&mut self, value: &Json) -> Result<bool, String> {
        let map = value.as_object().filter(|m| m.len() == 1).ok_or_else(|| format!("not a condition: {value}"))?;
        let (function, argument) = map.iter().next().ok_or("empty condition")?;
        let items = argument.as_array().map(Vec::as_slice).unwrap_or_default();
        match function.as_str() {
            "Condition" => self.named_condition(argument.as_str().ok_or("Condition of a non-string")?),
            "Fn::Equals" => {
                let args = Self::args(argument, function, 2)?;
                let left = self.resolve(&args[0])?;
                let right = self.resolve(&args[1])?;
                Ok(left.as_ref().map(scalar_text) == right.as_ref().map(scalar_text))
            }
            "Fn::Not" => Ok(!self.condition(Self::args(argument, function, 1)?.first().ok_or("Fn::Not of nothing")?)?),
            "Fn::And" => items.iter().try_fold(true, |all, c| Ok(all & self.condition(c)?)),
            "Fn::Or" => items.iter().try_fold(false, |any, c| Ok(any | self.condition(c)?)),
            other => Err(format!("condition function {other} is not modelled")),
        }
    }
}

// ------------------------------------------------------------------------------------ formats

const STATE_CHANGE_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000");
const DATAPOINT_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[day]/[month]/[year repr:last_two] [hour]:[minute]:[second]");
const COMPOSITE_REASON_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[weekday] [day] [month repr:long], [year] [hour]:[minute]:[second] UTC");

fn format_time(at: OffsetDateTime, format: &[BorrowedFormatItem<'_>]) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    utc.format(format).unwrap_or_else(|_| utc.to_string())
}

/// The `Region` field of CloudWatch notifications is the region's display name.
fn region_display_name(code: &str) -> String {
    let name = match code {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "ca-central-1" => "Canada (Central)",
        "sa-east-1" => "South America (Sao Paulo)",
        "eu-west-1" => "EU (Ireland)",
        "eu-west-2" => "EU (London)",
        "eu-west-3" => "EU (Paris)",
        "eu-central-1" => "EU (Frankfurt)",
        "eu-north-1" => "EU (Stockholm)",
        "eu-south-1" => "EU (Milan)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-northeast-2" => "Asia Pacific (Seoul)",
        "ap-northeast-3" => "Asia Pacific (Osaka)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ap-east-1" => "Asia Pacific (Hong Kong)",
        "me-south-1" => "Middle East (Bahrain)",
        "af-south-1" => "Africa (Cape Town)",
        other => return other.to_owned(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2025-01-06 00:00 UTC);

    fn params() -> CheckParams {
        CheckParams {
            check: "payment".into(),
            stack_prefix: "synthetics".into(),
            env: "prod".into(),
            slo_target_percent: 99.5,
            schedule_rate_minutes: 5,
            metrics_namespace: "Synthetics".into(),
            parameters: BTreeMap::new(),
        }
    }

    fn minutes(n: i64) -> Duration {
        Duration::minutes(n)
    }

    /// One alarm on the EMF metric `Value` (Maximum over 5 minutes > 0.5 breaches), as in the
    /// guide's missing-data tables: N = 3, M given.
    fn probe(datapoints_to_alarm: usize, treat: &str) -> AlarmSet {
        let yaml = format!(
            r#"
Parameters:
  CheckName: {{Type: String}}
  EnvName: {{Type: String}}
  MetricsNamespace: {{Type: String}}
  PagerTopicArn: {{Type: String}}
Resources:
  Probe:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub ${{CheckName}}-probe
      Namespace: !Ref MetricsNamespace
      MetricName: Value
      Dimensions: [{{Name: check, Value: !Ref CheckName}}, {{Name: env, Value: !Ref EnvName}}]
      Statistic: Maximum
      Period: 300
      EvaluationPeriods: 3
      DatapointsToAlarm: {datapoints_to_alarm}
      Threshold: 0.5
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: {treat}
      AlarmActions: [!Ref PagerTopicArn]
"#
        );
        AlarmSet::from_template(&yaml, &params()).unwrap_or_else(|e| panic!("probe template: {e}"))
    }

    /// The state after one evaluation of five 5-minute datapoints, oldest first: `0` not
    /// breaching, `X` breaching, `-` missing.
    fn row(datapoints_to_alarm: usize, treat: &str, points: &str, initial: State) -> State {
        let mut set = probe(datapoints_to_alarm, treat);
        set.set_state("payment-probe", initial).unwrap_or_else(|e| panic!("{e}"));
        let at = START + minutes(60);
        let points: Vec<char> = points.chars().filter(|c| !c.is_whitespace()).collect();
        for (i, point) in points.iter().enumerate() {
            let stamp = at - minutes(5 * (points.len() - 1 - i) as i64);
            match point {
                '0' => set.put("Value", stamp, 0.0),
                'X' => set.put("Value", stamp, 1.0),
                _ => {}
            }
        }
        set.evaluate(at);
        set.state("payment-probe").unwrap_or_else(|| panic!("no probe alarm"))
    }

    use State::{Alarm as A, InsufficientData as I, Ok as O};

    /// `None` in a table cell is the guide's "Retain current state".
    fn check_table(datapoints_to_alarm: usize, table: &[(&str, [Option<State>; 4])]) {
        for (points, expected) in table {
            for (treat, expected) in ["missing", "ignore", "breaching", "notBreaching"].iter().zip(expected) {
                for initial in [O, A] {
                    let got = row(datapoints_to_alarm, treat, points, initial);
                    assert_eq!(
                        got,
                        expected.unwrap_or(initial),
                        "{datapoints_to_alarm} of 3, {treat}, '{points}', from {initial:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn reproduces_the_guides_3_of_3_missing_data_table() {
        check_table(
            3,
            &[
                ("0 - X - X", [Some(O), Some(O), Some(O), Some(O)]),
                ("0 - - - -", [Some(O), Some(O), Some(O), Some(O)]),
                ("- - - - -", [Some(I), None, Some(A), Some(O)]),
                ("0 X X - X", [Some(A), Some(A), Some(A), Some(A)]),
                ("- - - - X", [Some(I), None, Some(A), Some(O)]),
            ],
        );
    }

    #[test]
    fn reproduces_the_guides_2_of_3_missing_data_table() {
        check_table(
            2,
            &[
                ("0 - X - X", [Some(A), Some(A), Some(A), Some(A)]),
                ("0 0 X 0 X", [Some(A), Some(A), Some(A), Some(A)]),
                ("0 - X - -", [Some(O), Some(O), Some(A), Some(O)]),
                ("- - - - 0", [Some(O), Some(O), Some(A), Some(O)]),
                ("- - - - X", [Some(I), None, Some(A), Some(O)]),
            ],
        );
    }

    #[test]
    fn a_breaching_alarm_alarms_once_its_last_real_datapoint_leaves_the_evaluation_range() {
        // The guide, on row 2 of the first table: OK now, ALARM at the next evaluation if the data
        // is still missing, "as that non-breaching data point will no longer be among the 5 most
        // recent data points retrieved".
        let mut set = probe(3, "breaching");
        let at = START + minutes(60);
        set.put("Value", at - minutes(20), 0.0);
        set.evaluate(at);
        assert_eq!(set.state("payment-probe"), Some(O));
        let notifications = set.evaluate(at + minutes(5));
        assert_eq!(set.state("payment-probe"), Some(A));
        assert_eq!(notifications.len(), 1);
        assert_eq!((notifications[0].old_state, notifications[0].new_state), (O, A));
        assert_eq!(notifications[0].actions, ["PagerTopicArn"]);
    }

    fn eval_expression(text: &str, values: &[(&str, Option<f64>)]) -> Option<f64> {
        let expr = Expr::parse(text).unwrap_or_else(|e| panic!("{e}"));
        let lookup = |id: &str| {
            let v = values.iter().find(|(name, _)| *name == id).unwrap_or_else(|| panic!("no value for {id}")).1;
            Val { v, series: true }
        };
        expr.eval(&lookup).v
    }

    const GUARD: &str = "IF(runs * (1 - availability) >= 2, (1 - availability) * 100 / (100 - 99.5), 0)";

    #[test]
    fn the_burn_rate_guard_counts_failed_runs() {
        let burn = |failed: u32, runs: u32| {
            eval_expression(
                GUARD,
                &[("runs", Some(f64::from(runs))), ("availability", Some(f64::from(runs - failed) / f64::from(runs)))],
            )
        };
        assert_eq!(burn(0, 12), Some(0.0));
        assert_eq!(burn(1, 12), Some(0.0), "one failed run of 12 must not count");
        let three = burn(3, 12).unwrap_or_default();
        assert!((three - 50.0).abs() < 1e-9, "3 of 12 failed burns 50x, got {three}");
        assert_eq!(eval_expression(GUARD, &[("runs", None), ("availability", None)]), None, "no runs, no datapoint");
        // IEEE doubles: 12 * (1 - 10/12) is 1.9999999999999996, so `>= 2` misses 2 failed runs of
        // 12 (and of 10, 11, 15, 20, 30, 60 ...); a threshold between the integers does not.
        assert_eq!(burn(2, 12), Some(0.0));
        let robust = GUARD.replace(">= 2", "> 1.5");
        let two =
            eval_expression(&robust, &[("runs", Some(12.0)), ("availability", Some(10.0 / 12.0))]).unwrap_or_default();
        assert!((two - 100.0 / 3.0).abs() < 1e-9, "2 of 12 failed burns 33.3x, got {two}");
    }

    #[test]
    fn metric_math_follows_the_guides_missing_value_rules() {
        // "Using IF expressions": IF(metric1, metric2, metric3) with metric1 [1, 1, 0, 0, -],
        // metric2 [30, -, 0, 0, 30], metric3 [0, 0, 20, -, 20] is [30, 0, 20, -, -].
        let m1 = [Some(1.0), Some(1.0), Some(0.0), Some(0.0), None];
        let m2 = [Some(30.0), None, Some(0.0), Some(0.0), Some(30.0)];
        let m3 = [Some(0.0), Some(0.0), Some(20.0), None, Some(20.0)];
        let got: Vec<Option<f64>> =
            (0..5).map(|i| eval_expression("IF(m1, m2, m3)", &[("m1", m1[i]), ("m2", m2[i]), ("m3", m3[i])])).collect();
        assert_eq!(got, [Some(30.0), Some(0.0), Some(20.0), None, None]);
        // "Comparison and logical operators": metric1 [30, 20, 0, 0], metric2 [20, -, 20, -].
        let a = [Some(30.0), Some(20.0), Some(0.0), Some(0.0)];
        let b = [Some(20.0), None, Some(20.0), None];
        let table = |text: &str| -> Vec<Option<f64>> {
            (0..4).map(|i| eval_expression(text, &[("metric1", a[i]), ("metric2", b[i])])).collect()
        };
        let ones = |v: [f64; 4]| v.map(Some).to_vec();
        assert_eq!(table("(metric1 < metric2)"), ones([0.0, 0.0, 1.0, 0.0]));
        assert_eq!(table("(metric1 >= 30)"), ones([1.0, 0.0, 0.0, 0.0]));
        assert_eq!(table("(metric1 > 15 AND metric2 > 15)"), ones([1.0, 0.0, 0.0, 0.0]));
        assert_eq!(table("metric1 > 15 && metric2 > 15 || -metric1 == -30"), ones([1.0, 0.0, 0.0, 0.0]));
        assert_eq!(
            eval_expression("m1 / m2", &[("m1", Some(1.0)), ("m2", Some(0.0))]),
            None,
            "division by zero drops the point"
        );
        assert_eq!(eval_expression("2 + 3 * (m1 - 1) / 2", &[("m1", Some(5.0))]), Some(8.0));
        for bad in ["m1 +", "RATE(m1)", "m1 ^ 2", "(m1", "IF(m1)"] {
            assert!(Expr::parse(bad).is_err(), "{bad} must not parse");
        }
    }

    #[test]
    fn composite_rules_parse_names_quoted_or_not_and_arns() {
        let rule = Rule::parse(
            r#"NOT (ALARM("a") OR OK(b)) AND INSUFFICIENT_DATA(arn:aws:cloudwatch:us-east-1:123456789012:alarm:c) OR FALSE OR TRUE AND ALARM( "d" )"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rule.alarm_names(), ["a", "b", "c", "d"]);
        let states = |a, b, c, d| {
            move |name: &str| match name {
                "a" => a,
                "b" => b,
                "c" => c,
                _ => d,
            }
        };
        assert!(rule.eval(&states(O, A, I, O)));
        assert!(!rule.eval(&states(A, A, I, O)));
        assert!(rule.eval(&states(A, A, I, A)));
        for bad in ["ALARM(a", "ALARM a", "MAYBE(a)", "ALARM(a) XOR ALARM(b)", "ALARM(\"a)", "ALARM()"] {
            assert!(Rule::parse(bad).is_err(), "{bad} must not parse");
        }
    }

    const PAIR: &str = r#"
Parameters:
  CheckName: {Type: String}
  EnvName: {Type: String}
  MetricsNamespace: {Type: String}
  TopicArn: {Type: String, Default: "arn:aws:sns:us-east-1:123456789012:alerts"}
  Mode: {Type: String, Default: loud}
Mappings:
  Periods: {"5": {Seconds: 300}}
Conditions:
  Loud: !Equals [!Ref Mode, loud]
  Quiet: !Not [!Condition Loud]
Resources:
  First:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub ${CheckName}-first
      Namespace: !Ref MetricsNamespace
      MetricName: A
      Dimensions: [{Name: check, Value: !Ref CheckName}, {Name: env, Value: !Ref EnvName}]
      Statistic: Maximum
      Period: !FindInMap [Periods, "5", Seconds]
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
  Second:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Join ["-", [!Ref CheckName, second]]
      Metrics:
        - {Id: doubled, Expression: "b * 2", ReturnData: false}
        - {Id: result, Expression: "doubled + 0"}
        - Id: b
          ReturnData: false
          MetricStat: {Period: 300, Stat: Sum, Metric: {Namespace: !Ref MetricsNamespace, MetricName: B, Dimensions: [{Name: check, Value: !Ref CheckName}, {Name: env, Value: !Ref EnvName}]}}
      EvaluationPeriods: 1
      Threshold: 2
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!If [Quiet, !Ref AWS::NoValue, !Ref TopicArn]]
  Both:
    Type: AWS::CloudWatch::CompositeAlarm
    Properties:
      AlarmName: !Sub ${CheckName}-both
      AlarmDescription: !Sub "Both; rule in ${!Braces} stays literal"
      AlarmRule: !Sub 'ALARM("${First}") AND ALARM(${Second})'
      AlarmActions: [!Ref TopicArn]
      OKActions: [!Ref TopicArn]
  Never:
    Type: AWS::CloudWatch::CompositeAlarm
    Condition: Quiet
    Properties:
      AlarmName: never
      AlarmRule: "TRUE"
"#;

    #[test]
    fn a_composite_and_pages_only_when_both_children_alarm_after_them() {
        let mut set = AlarmSet::from_template(PAIR, &params()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            set.alarm_names(),
            ["payment-first", "payment-second", "payment-both"],
            "the Quiet-only alarm is not created"
        );
        let topic = "arn:aws:sns:us-east-1:123456789012:alerts";

        let first = set.evaluate(START);
        let summary = |n: &[Notification]| n.iter().map(|n| (n.alarm_name.clone(), n.new_state)).collect::<Vec<_>>();
        assert_eq!(summary(&first), [("payment-both".to_owned(), O)], "only the composite has OK actions");
        assert_eq!(first[0].actions, [topic]);

        set.put("A", START + minutes(1), 1.0);
        assert!(set.evaluate(START + minutes(1)).is_empty(), "first alone has no actions and the rule is still false");
        assert_eq!(set.state("payment-first"), Some(A));
        assert_eq!(set.state("payment-both"), Some(O));

        set.put("B", START + minutes(2), 1.0);
        let both = set.evaluate(START + minutes(2));
        assert_eq!(
            summary(&both),
            [("payment-second".to_owned(), A), ("payment-both".to_owned(), A)],
            "child before composite"
        );
        assert_eq!(set.expression("payment-second"), Some("doubled + 0"));

        let message = both[1].sns_message("eu-west-1", "111122223333");
        for (field, expected) in [
            ("AlarmName", "payment-both"),
            ("AlarmDescription", "Both; rule in ${Braces} stays literal"),
            ("AWSAccountId", "111122223333"),
            ("NewStateValue", "ALARM"),
            ("OldStateValue", "OK"),
            ("Region", "EU (Ireland)"),
            ("AlarmArn", "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:payment-both"),
            ("StateChangeTime", "2025-01-06T00:02:00.000+0000"),
        ] {
            assert_eq!(message[field], expected, "{field}");
        }
        assert_eq!(message["AlarmRule"], r#"ALARM("payment-first") AND ALARM(payment-second)"#);
        assert_eq!(
            message["TriggeringChildren"],
            json!([{"Arn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:payment-second", "State": {"Value": "ALARM", "Timestamp": "2025-01-06T00:02:00.000+0000"}}])
        );
        assert_eq!(
            message["NewStateReason"],
            "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:payment-second transitioned to ALARM at Monday 06 January, 2025 00:02:00 UTC"
        );
        assert_eq!(message["AlarmActions"], json!([topic]));
        assert!(message.get("Trigger").is_none());

        let metric = both[0].sns_message("us-east-1", "111122223333");
        assert_eq!(metric["Region"], "US East (N. Virginia)");
        assert_eq!(
            metric["Trigger"]["Metrics"][2]["MetricStat"]["Metric"]["Dimensions"],
            json!([{"value": "payment", "name": "check"}, {"value": "prod", "name": "env"}])
        );
        assert_eq!(metric["Trigger"]["Metrics"][0]["ReturnData"], false);
        assert_eq!(metric["Trigger"]["Threshold"], 2.0);
        assert_eq!(
            metric["NewStateReason"],
            "Threshold Crossed: 1 out of the last 1 datapoints [2.0 (05/01/25 23:57:00)] was greater than or equal to the threshold (2.0) (minimum 1 datapoint for OK -> ALARM transition)."
        );

        // Once out of its own window, a datapoint is still in the evaluation range (N + 2 = 3
        // periods) and, with nothing newer, still decides: the alarms stay in ALARM until then.
        assert!(set.evaluate_each_minute(START + minutes(3), START + minutes(15)).is_empty());
        assert_eq!(set.state("payment-both"), Some(A));
        let after = set.evaluate_each_minute(START + minutes(16), START + minutes(17));
        assert_eq!(set.state("payment-first"), Some(O));
        assert_eq!(set.state("payment-second"), Some(O));
        assert_eq!(summary(&after), [("payment-both".to_owned(), O)]);
        assert_eq!(after[0].at, START + minutes(16), "first leaves the range at +16, second at +17");
        let resolved = after[0].sns_message("us-east-1", "1");
        assert_eq!(resolved["OldStateValue"], "ALARM");
        assert_eq!(resolved["TriggeringChildren"][0]["Arn"], "arn:aws:cloudwatch:us-east-1:1:alarm:payment-first");
    }

    #[test]
    fn template_mistakes_are_named() {
        let cases = [
            (PAIR.replace("ALARM(${Second})", "ALARM(nope)"), "AlarmRule names 'nope'"),
            (
                PAIR.replace("!FindInMap [Periods, \"5\", Seconds]", "!FindInMap [Periods, \"7\", Seconds]"),
                "no Periods.7.Seconds",
            ),
            (PAIR.replace("b * 2", "c * 2"), "unknown id 'c'"),
            (PAIR.replace("Stat: Sum", "Stat: p99"), "statistic 'p99'"),
            (PAIR.replace("!Ref MetricsNamespace, MetricName: B", "!Base64 x, MetricName: B"), "intrinsic Fn::Base64"),
            (PAIR.replace("AlarmName: !Sub ${CheckName}-first", "AlarmName: !Ref Missing"), "Ref Missing"),
        ];
        for (yaml, expected) in cases {
            let error = AlarmSet::from_template(&yaml, &params()).map(|_| ()).expect_err(expected);
            assert!(error.contains(expected), "'{error}' should mention '{expected}'");
        }
    }

    // ------------------------------------------------------------------ the real infra/check.yaml

    fn name(suffix: &str) -> String {
        format!("synthetics-payment-{suffix}")
    }

    /// Runs every 5 minutes from START, each putting Success (1 or 0) and DurationMs, with CloudWatch
    /// evaluating every minute up to `until` (after the last run).
    fn replay(set: &mut AlarmSet, runs: &[bool], until: OffsetDateTime) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let mut at = START;
        for (i, passed) in runs.iter().enumerate() {
            let run_at = START + minutes(5 * i as i64);
            notifications.extend(set.evaluate_each_minute(at, run_at - minutes(1)));
            set.put("Success", run_at, if *passed { 1.0 } else { 0.0 });
            set.put("DurationMs", run_at, 1200.0);
            at = run_at;
        }
        notifications.extend(set.evaluate_each_minute(at, until));
        notifications
    }

    fn transitions(notifications: &[Notification], alarm: &str) -> Vec<(State, OffsetDateTime)> {
        notifications.iter().filter(|n| n.alarm_name == alarm).map(|n| (n.new_state, n.at)).collect()
    }

    fn passes_then(after: &[bool]) -> Vec<bool> {
        [vec![true; 72], after.to_vec()].concat()
    }

    fn load() -> AlarmSet {
        AlarmSet::load(&params()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The spec'd form guards the long windows with `IF(...)`; the earlier form has no guard.
    fn guarded(set: &AlarmSet) -> bool {
        let expression =
            set.expression(&name("burn-rate-1h")).unwrap_or_else(|| panic!("burn-rate-1h is no metric-math alarm"));
        expression.contains("IF(")
    }

    #[test]
    fn the_template_loads_with_every_reference_resolved() {
        let set = load();
        let names = set.alarm_names();
        for suffix in [
            "heartbeat",
            "failing",
            "burn-rate-1h",
            "burn-rate-5m",
            "burn-rate-6h",
            "burn-rate-30m",
            "slo-fast-burn",
            "slo-slow-burn",
        ] {
            assert!(names.contains(&name(suffix).as_str()), "{suffix} missing from {names:?}");
        }
        let composites = &names[names.len() - 2..];
        assert_eq!(composites, [name("slo-fast-burn"), name("slo-slow-burn")], "composites evaluate last");
        let fast = set.alarms.iter().find(|a| a.name == name("slo-fast-burn")).map(|a| &a.kind);
        let Some(Kind::Composite(fast)) = fast else { panic!("slo-fast-burn is no composite") };
        assert_eq!(fast.rule.alarm_names(), [name("burn-rate-1h"), name("burn-rate-5m")]);
        let expression = set.expression(&name("burn-rate-5m")).unwrap_or_default();
        assert!(expression.contains("(100 - 99.5)"), "SloTargetPercent is substituted: {expression}");
    }

    #[test]
    fn one_failed_run_pages_the_fast_burn_only_without_the_guard() {
        let mut set = load();
        let failure = START + minutes(5 * 72);
        let notifications = replay(
            &mut set,
            &passes_then(&[[false].as_slice(), [true; 12].as_slice()].concat()),
            failure + minutes(65),
        );
        let fast = transitions(&notifications, &name("slo-fast-burn"));
        let alarms: Vec<_> = fast.iter().filter(|(s, _)| *s == A).collect();
        if guarded(&set) {
            assert!(alarms.is_empty(), "with the guard one failed run must not page: {fast:?}");
        } else {
            // 1 of 12 runs is a 16.7x burn of a 99.5% budget over the hour, and 200x over 5 minutes.
            assert_eq!(alarms, [&(A, failure)], "without the guard one failed run pages: {fast:?}");
            assert!(fast.contains(&(O, failure + minutes(5))), "and resolves with the next pass: {fast:?}");
        }
    }

    #[test]
    fn a_30_minute_outage_pages_the_fast_burn_by_the_second_failure_and_resolves_on_passes() {
        let mut set = load();
        let outage = START + minutes(5 * 72);
        let runs = passes_then(&[[false; 6].as_slice(), [true; 12].as_slice()].concat());
        let notifications = replay(&mut set, &runs, outage + minutes(95));
        let fast = transitions(&notifications, &name("slo-fast-burn"));
        let alarms: Vec<_> = fast.iter().filter(|(s, _)| *s == A).map(|(_, t)| *t).collect();
        assert_eq!(alarms.len(), 1, "one page for one outage: {fast:?}");
        assert!(
            alarms[0] <= outage + minutes(5),
            "slo-fast-burn must be in ALARM by the 2nd failed run ({}), it went at {} (with a guard `runs * (1 - availability) >= 2`, \
             IEEE doubles give 1.9999999999999996 for 2 failed runs of 12: compare with > 1.5)",
            outage + minutes(5),
            alarms[0]
        );
        let resolved = fast.iter().find(|(s, t)| *s == O && *t > alarms[0]).map(|(_, t)| *t);
        assert_eq!(resolved, Some(outage + minutes(30)), "resolves with the first passing run: {fast:?}");
        assert_eq!(set.state(&name("slo-fast-burn")), Some(O));
    }

    #[test]
    fn the_heartbeat_alarms_when_the_last_run_leaves_the_5_period_evaluation_range() {
        let mut set = load();
        let last_run = START + minutes(5 * 71);
        let notifications = replay(&mut set, &passes_then(&[]), last_run + minutes(40));
        let heartbeat = transitions(&notifications, &name("heartbeat"));
        // 3 silent periods are not enough: with 3 of 3 and missing data as breaching, the last real
        // datapoint keeps the alarm OK until it leaves the evaluation range (5 periods).
        assert_eq!(heartbeat, [(O, START), (A, last_run + minutes(25))], "heartbeat transitions");
        let message = notifications
            .iter()
            .find(|n| n.alarm_name == name("heartbeat") && n.new_state == A)
            .map(|n| n.sns_message("us-east-1", "123456789012"));
        let message = message.unwrap_or_else(|| panic!("no heartbeat ALARM notification"));
        assert_eq!(message["Trigger"]["Statistic"], "SAMPLE_COUNT");
        assert_eq!(
            message["NewStateReason"],
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [Breaching]."
        );
    }
}

//! What a deployment costs per month, at list prices, from what it runs.
//!
//! One model for every number the project quotes about money: `synthetic plan` prices the
//! deployment it plans, and the tables in `infra/README.md` and `bench/RESULTS.md` are generated
//! here ([`markdown_tables`]) and compared with the committed text by a test, so a price or an
//! assumption changes in this file and nowhere else.
//!
//! The model is deliberately plain arithmetic: runs per month times what a run uses (Lambda
//! GB-seconds and requests, DynamoDB request units, SNS publishes, KMS requests, secret reads, log
//! bytes), plus what exists whatever runs (custom metrics, alarms, the key, the dashboard). Prices
//! are us-east-1 list prices before the free tiers. Where a quantity is an assumption rather than
//! a measurement, its constant says so.

use crate::plan::{Plan, PlannedCheck};
use serde::Serialize;

/// A list price as its page states it (`usd` for `per` of `unit`), and the page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListPrice {
    pub usd: f64,
    pub per: u64,
    pub unit: &'static str,
    pub source: &'static str,
}

impl ListPrice {
    /// The price of one unit.
    pub fn each(&self) -> f64 {
        self.usd / self.per as f64
    }
}

/// When the prices below were read from their pages.
pub const PRICES_READ: &str = "2026-12-05";

/// The pricing pages the prices below were read on.
const LAMBDA_PRICING: &str = "https://aws.amazon.com/lambda/pricing/";
const DYNAMODB_PRICING: &str = "https://aws.amazon.com/dynamodb/pricing/on-demand/";
const SNS_PRICING: &str = "https://aws.amazon.com/sns/pricing/";
const KMS_PRICING: &str = "https://aws.amazon.com/kms/pricing/";
const SECRETS_MANAGER_PRICING: &str = "https://aws.amazon.com/secrets-manager/pricing/";
const CLOUDWATCH_PRICING: &str = "https://aws.amazon.com/cloudwatch/pricing/";
const CHECKLY_PRICING: &str = "https://docs.checklyhq.com/docs/monitoring/check-pricing";
const DATADOG_PRICING: &str = "https://www.datadoghq.com/pricing/?product=synthetic-testing-and-monitoring";

const fn price(usd: f64, per: u64, unit: &'static str, source: &'static str) -> ListPrice {
    ListPrice { usd, per, unit, source }
}

/// Lambda compute on arm64 (Graviton), the architecture the functions deploy on.
pub const LAMBDA_GB_SECOND: ListPrice = price(0.000_013_333_4, 1, "GB-second (arm64)", LAMBDA_PRICING);
pub const LAMBDA_REQUEST: ListPrice = price(0.20, 1_000_000, "requests", LAMBDA_PRICING);
/// On-demand reads and writes (the prices since the November 2024 halving).
pub const DYNAMODB_READ_UNIT: ListPrice = price(0.125, 1_000_000, "read request units", DYNAMODB_PRICING);
pub const DYNAMODB_WRITE_UNIT: ListPrice = price(0.625, 1_000_000, "write request units", DYNAMODB_PRICING);
pub const SNS_PUBLISH: ListPrice = price(0.50, 1_000_000, "publishes (64 KB chunks)", SNS_PRICING);
pub const KMS_KEY: ListPrice = price(1.00, 1, "customer managed key-month", KMS_PRICING);
pub const KMS_REQUEST: ListPrice = price(0.03, 10_000, "requests", KMS_PRICING);
pub const SECRET: ListPrice = price(0.40, 1, "secret-month", SECRETS_MANAGER_PRICING);
pub const SECRET_READ: ListPrice = price(0.05, 10_000, "API calls", SECRETS_MANAGER_PRICING);
/// The first tier of custom metrics; [`METRIC_TIERS`] has the rest.
pub const METRIC: ListPrice = price(0.30, 1, "custom metric-month", CLOUDWATCH_PRICING);
/// Standard-resolution alarm, billed per metric it reads (a metric-math alarm reads several).
pub const ALARM_METRIC: ListPrice = price(0.10, 1, "alarm metric-month", CLOUDWATCH_PRICING);
pub const COMPOSITE_ALARM: ListPrice = price(0.50, 1, "composite alarm-month", CLOUDWATCH_PRICING);
/// Standard log class ingestion (storage, $0.03 per GB-month, is left out: it depends on retention).
pub const LOG_INGESTION: ListPrice = price(0.50, 1, "GB ingested", CLOUDWATCH_PRICING);
pub const DASHBOARD: ListPrice = price(3.00, 1, "dashboard-month", CLOUDWATCH_PRICING);
/// CloudWatch Synthetics, the managed alternative on AWS (its own Lambda, S3 and metrics extra).
pub const CANARY_RUN: ListPrice = price(0.0012, 1, "canary run", CLOUDWATCH_PRICING);
/// Checkly API and multistep checks, prepaid bundles (plan fees extra): a multistep check counts
/// each HTTP request as one API check run (https://www.checklyhq.com/docs/admin/usage/).
pub const CHECKLY_REQUEST: ListPrice = price(2.00, 10_000, "API check runs (one per request)", CHECKLY_PRICING);
/// Datadog API tests, billed annually ($7.20 per 10K on demand). Priced per test run, one per
/// run of a journey, which is the reading most favourable to Datadog. Its pricing page was not
/// readable from here; this is its last published list price, to be checked there.
pub const DATADOG_TEST_RUN: ListPrice = price(5.00, 10_000, "API test runs", DATADOG_PRICING);

/// Custom metrics are tiered by how many there are (per region here, as each region's usage is
/// billed on its own line): the first 10,000 at $0.30, the next 240,000 at $0.10, the next
/// 750,000 at $0.05, the rest at $0.02.
pub const METRIC_TIERS: [(u64, f64); 4] = [(10_000, METRIC.usd), (240_000, 0.10), (750_000, 0.05), (u64::MAX, 0.02)];

/// Every price the model uses, for the sources list under the tables.
pub const PRICES: [&ListPrice; 17] = [
    &LAMBDA_GB_SECOND,
    &LAMBDA_REQUEST,
    &DYNAMODB_READ_UNIT,
    &DYNAMODB_WRITE_UNIT,
    &SNS_PUBLISH,
    &KMS_KEY,
    &KMS_REQUEST,
    &SECRET,
    &SECRET_READ,
    &METRIC,
    &ALARM_METRIC,
    &COMPOSITE_ALARM,
    &LOG_INGESTION,
    &DASHBOARD,
    &CANARY_RUN,
    &CHECKLY_REQUEST,
    &DATADOG_TEST_RUN,
];

/// Issue 22's target per check-month, at 100 checks in one region.
pub const TARGET_PER_CHECK_MONTH: f64 = 0.50;

/// A 30-day month, as the README's Lambda table counts it (8,640 runs at a 5-minute schedule).
pub const MINUTES_PER_MONTH: u64 = 30 * 24 * 60;

/// What one check run costs to execute, beyond what the design decides. Measured numbers come
/// from `make bench` (bench/RESULTS.md); the target's distance is an example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Runtime {
    pub memory_mb: u32,
    /// The function's own time per run, measured warm on a loopback target (3 to 4 ms).
    pub check_own_ms: u32,
    /// One round trip to the target. Each request costs one, and a run opens a fresh connection
    /// (TCP and TLS: two more), because a pooled one does not survive 5 idle minutes.
    pub round_trip_ms: u32,
    pub connect_round_trips: u32,
    /// The forwarder per run: 0.6 ms measured plus 3 DynamoDB calls of about 5 ms (assumed).
    pub forwarder_ms: u32,
    /// Log bytes a check run writes: Lambda's START/END/REPORT lines, the result line and the
    /// EMF run record, plus per step its result and EMF record (sizes checked by a test below).
    pub check_log_bytes_per_run: u64,
    pub check_log_bytes_per_step: u64,
    /// The forwarder's log lines per invocation (platform lines and one decision line).
    pub forwarder_log_bytes: u64,
    /// KMS requests per SNS publish to the encrypted topic: an upper bound (SNS reuses data keys,
    /// so the bill is usually lower); `infra/README.md` measured at most ~2.
    pub kms_requests_per_publish: f64,
    /// How long a warm function reuses the account secret (`SECRET_TTL_SECS`).
    pub secret_ttl_secs: u32,
}

impl Runtime {
    pub const DEFAULT: Runtime = Runtime {
        memory_mb: 128,
        check_own_ms: 4,
        round_trip_ms: 50,
        connect_round_trips: 2,
        forwarder_ms: 16,
        check_log_bytes_per_run: 1_000,
        check_log_bytes_per_step: 600,
        forwarder_log_bytes: 1_000,
        kms_requests_per_publish: 2.0,
        secret_ttl_secs: 300,
    };

    fn gb(&self) -> f64 {
        f64::from(self.memory_mb) / 1024.0
    }

    /// Billed milliseconds of one warm check run of `requests` requests.
    pub fn check_billed_ms(&self, requests: u32) -> u32 {
        self.check_own_ms + (requests + self.connect_round_trips) * self.round_trip_ms
    }
}

/// What the stack creates per check and once, which is what the issue changes: today every check
/// has its own metrics per step and its own alarms; with the forwarder as the one evaluator, a
/// check keeps the metrics a dashboard and `synthetic slo` read, and a fixed handful of alarms
/// watch the forwarder and the sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    pub name: &'static str,
    /// Custom metrics per check and region with dimensions (check, env).
    pub metrics_per_check: u32,
    /// Custom metrics per step of a check and region with dimensions (check, env, step).
    pub metrics_per_step: u32,
    /// Alarm metrics per check and region (a metric-math alarm counts each metric it reads).
    pub alarm_metrics_per_check: u32,
    pub composite_alarms_per_check: u32,
    /// The forwarder's own metrics and alarms, in the home region only.
    pub home_metrics: u32,
    pub home_alarm_metrics: u32,
    /// Per region: the dead-letter queue alarms, the key, the dashboard.
    pub region_alarm_metrics: u32,
    pub region_kms_keys: u32,
    pub region_dashboards: u32,
    /// The forwarder's state table per run: strongly consistent reads (state and silences) and
    /// writes, in request units (items under 1 KB read as 1, written as 1 per KB).
    pub reads_per_run: f64,
    pub writes_per_run: f64,
    /// The stopped-check sweep: how often it runs; each time it reads every check's state item
    /// (one per check, all its regions in it; a strongly consistent read is 1 unit per 4 KB).
    pub sweep_every_minutes: Option<u32>,
    pub state_item_bytes: u64,
}

impl Design {
    /// The stack before issue 22 (infra/check.yaml): per check `Success`, `Degraded`,
    /// `DurationMs` and `CertificateDaysLeft`, the first three again per step; 5 alarms (errors,
    /// two dead-letter deliveries, failing, heartbeat) and 4 burn-rate windows (6 alarm metrics),
    /// joined by 2 composites; the forwarder's 5 alarms and 3 counters, 2 queue alarms per region.
    pub const PER_CHECK_ALARMS: Design = Design {
        name: "per-check alarms (before)",
        metrics_per_check: 4,
        metrics_per_step: 3,
        alarm_metrics_per_check: 11,
        composite_alarms_per_check: 2,
        home_metrics: 3,
        home_alarm_metrics: 5,
        region_alarm_metrics: 2,
        region_kms_keys: 1,
        region_dashboards: 1,
        reads_per_run: 2.0,
        writes_per_run: 1.0,
        sweep_every_minutes: None,
        state_item_bytes: 1_024,
    };

    /// The forwarder as the one evaluator (infra/check.yaml, `METRICS_DETAIL=success`): one
    /// metric per check (`Success`, which the dashboard and `synthetic slo` read; durations and
    /// steps stay in the EMF log records), no alarm per check (the `failing` alarm a canary deploy
    /// rolls back on is opt-in, `FailingAlarms=true`), the forwarder's 5 alarms and the sweep's, its 4
    /// counters, a sweep every 5 minutes, and a state item that carries the burn-rate periods (up
    /// to 2 KB, so 2 write units a run). [`Design::with_metrics_per_check`] prices another count.
    pub const ONE_EVALUATOR: Design = Design {
        name: "one evaluator (after)",
        metrics_per_check: 1,
        metrics_per_step: 0,
        alarm_metrics_per_check: 0,
        composite_alarms_per_check: 0,
        home_metrics: 4,
        home_alarm_metrics: 6,
        region_alarm_metrics: 2,
        region_kms_keys: 1,
        region_dashboards: 1,
        reads_per_run: 2.0,
        writes_per_run: 2.0,
        sweep_every_minutes: Some(5),
        state_item_bytes: 2_048,
    };

    pub const fn with_metrics_per_check(self, metrics_per_check: u32) -> Design {
        Design { metrics_per_check, ..self }
    }
}

/// One check as the bill sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckLoad {
    pub schedule_minutes: u32,
    /// The regions it runs in (never empty: a plan's "every region" is resolved).
    pub regions: Vec<String>,
    /// HTTP requests per run (its steps, a polled step counted once).
    pub requests_per_run: u32,
    pub steps: u32,
    pub reads_account_secret: bool,
}

impl CheckLoad {
    pub fn runs_per_month_per_region(&self) -> u64 {
        MINUTES_PER_MONTH / u64::from(self.schedule_minutes.max(1))
    }

    fn runs_per_month(&self) -> u64 {
        self.runs_per_month_per_region() * self.regions.len() as u64
    }
}

/// What a deployment runs: its regions (the first is the home region, where the forwarder is)
/// and its enabled checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub regions: Vec<String>,
    pub checks: Vec<CheckLoad>,
}

impl Workload {
    /// The enabled checks of a plan, deployed to `regions` (the home region first), plus any
    /// region a check names that `regions` lacks. `requests` says how many requests and steps a
    /// check's journey makes, which the plan does not carry (its producer has the journey).
    pub fn from_plan(plan: &Plan, regions: &[String], requests: impl Fn(&PlannedCheck) -> (u32, u32)) -> Workload {
        let mut all = regions.to_vec();
        for region in plan.enabled().flat_map(|check| &check.regions) {
            if !all.contains(region) {
                all.push(region.clone());
            }
        }
        let checks = plan
            .enabled()
            .map(|check| {
                let (requests_per_run, steps) = requests(check);
                CheckLoad {
                    schedule_minutes: check.schedule_minutes,
                    regions: match check.regions.is_empty() {
                        true => regions.to_vec(),
                        false => check.regions.clone(),
                    },
                    requests_per_run,
                    steps,
                    reads_account_secret: check.reads_account_secret,
                }
            })
            .collect();
        Workload { regions: all, checks }
    }

    /// `count` alike checks in `regions` regions: the tables' typical check, every 5 minutes,
    /// signing in then reading (2 requests, 2 steps; the shipped five average 1.8).
    pub fn typical(count: usize, regions: usize) -> Workload {
        let regions: Vec<String> = (1..=regions).map(|n| format!("region-{n}")).collect();
        let check = CheckLoad {
            schedule_minutes: 5,
            regions: regions.clone(),
            requests_per_run: 2,
            steps: 2,
            reads_account_secret: true,
        };
        Workload { regions, checks: vec![check; count] }
    }

    fn runs_per_month(&self) -> u64 {
        self.checks.iter().map(CheckLoad::runs_per_month).sum()
    }
}

/// A month's bill, by line, in dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Bill {
    /// The check functions, the forwarder (one invocation per run) and the sweep.
    pub lambda: f64,
    pub dynamodb: f64,
    pub sns: f64,
    pub metrics: f64,
    /// Metric alarms and composite alarms.
    pub alarms: f64,
    pub logs: f64,
    /// The KMS key and its requests, the account secret and its reads, the dashboards.
    pub other: f64,
}

impl Bill {
    pub fn total(&self) -> f64 {
        self.lambda + self.dynamodb + self.sns + self.metrics + self.alarms + self.logs + self.other
    }

    fn lines(&self) -> [f64; 7] {
        [self.lambda, self.dynamodb, self.sns, self.metrics, self.alarms, self.logs, self.other]
    }
}

/// The month's custom-metric charge for `count` metrics in one region, tier by tier.
pub fn tiered_metrics(count: u64) -> f64 {
    let (mut left, mut charge) = (count, 0.0);
    for (size, price) in METRIC_TIERS {
        let here = left.min(size);
        charge += here as f64 * price;
        left -= here;
    }
    charge
}

/// The monthly bill of `workload` built as `design`.
pub fn estimate(workload: &Workload, design: &Design, runtime: &Runtime) -> Bill {
    let mut bill = Bill::default();
    let gb = runtime.gb();
    let invocation = |billed_ms: f64| billed_ms / 1000.0 * gb * LAMBDA_GB_SECOND.each() + LAMBDA_REQUEST.each();
    let runs = workload.runs_per_month() as f64;
    for check in &workload.checks {
        let runs = check.runs_per_month() as f64;
        bill.lambda += runs * invocation(f64::from(runtime.check_billed_ms(check.requests_per_run)));
        let log_bytes = runtime.check_log_bytes_per_run + runtime.check_log_bytes_per_step * u64::from(check.steps);
        bill.logs += runs * log_bytes as f64 / 1e9 * LOG_INGESTION.each();
        if check.reads_account_secret {
            // A warm function rereads the secret once its copy is older than the TTL.
            let schedule_secs = f64::from(check.schedule_minutes.max(1)) * 60.0;
            let reads = runs * (schedule_secs / f64::from(runtime.secret_ttl_secs.max(1))).min(1.0);
            bill.other += reads * SECRET_READ.each();
        }
    }
    // Every run is one alert (one SNS publish) and one forwarder invocation with its state.
    bill.lambda += runs * invocation(f64::from(runtime.forwarder_ms));
    bill.logs += runs * runtime.forwarder_log_bytes as f64 / 1e9 * LOG_INGESTION.each();
    bill.sns += runs * SNS_PUBLISH.each();
    bill.other += runs * runtime.kms_requests_per_publish * KMS_REQUEST.each();
    bill.dynamodb +=
        runs * (design.reads_per_run * DYNAMODB_READ_UNIT.each() + design.writes_per_run * DYNAMODB_WRITE_UNIT.each());
    if let Some(every) = design.sweep_every_minutes {
        let sweeps = (MINUTES_PER_MONTH / u64::from(every.max(1))) as f64;
        let read_units = (workload.checks.len() as u64 * design.state_item_bytes.div_ceil(4096)) as f64;
        bill.dynamodb += sweeps * read_units * DYNAMODB_READ_UNIT.each();
        bill.lambda += sweeps * invocation(f64::from(runtime.forwarder_ms));
    }
    for (index, region) in workload.regions.iter().enumerate() {
        let here: Vec<&CheckLoad> = workload.checks.iter().filter(|check| check.regions.contains(region)).collect();
        let home = index == 0;
        let steps: u64 = here.iter().map(|check| u64::from(check.steps)).sum();
        let metrics = here.len() as u64 * u64::from(design.metrics_per_check)
            + steps * u64::from(design.metrics_per_step)
            + if home { u64::from(design.home_metrics) } else { 0 };
        bill.metrics += tiered_metrics(metrics);
        let alarm_metrics = here.len() as u64 * u64::from(design.alarm_metrics_per_check)
            + u64::from(design.region_alarm_metrics)
            + if home { u64::from(design.home_alarm_metrics) } else { 0 };
        bill.alarms += alarm_metrics as f64 * ALARM_METRIC.each()
            + (here.len() as u64 * u64::from(design.composite_alarms_per_check)) as f64 * COMPOSITE_ALARM.each();
        bill.other +=
            f64::from(design.region_kms_keys) * KMS_KEY.each() + f64::from(design.region_dashboards) * DASHBOARD.each();
    }
    if workload.checks.iter().any(|check| check.reads_account_secret) {
        bill.other += SECRET.each();
    }
    bill
}

/// A deployment's estimate as `synthetic plan` prints it: the month's bill by line, its total,
/// and that total per check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub design: &'static str,
    pub regions: Vec<String>,
    pub checks: usize,
    pub month: Bill,
    pub total: f64,
    pub per_check_month: f64,
}

impl Estimate {
    pub fn of(workload: &Workload, design: &Design, runtime: &Runtime) -> Estimate {
        let month = estimate(workload, design, runtime);
        let checks = workload.checks.len();
        Estimate {
            design: design.name,
            regions: workload.regions.clone(),
            checks,
            month,
            total: month.total(),
            per_check_month: if checks == 0 { 0.0 } else { month.total() / checks as f64 },
        }
    }

    /// Two lines for people: the bill by line, then the total.
    pub fn lines(&self) -> String {
        let Bill { lambda, dynamodb, sns, metrics, alarms, logs, other } = self.month;
        format!(
            "  Lambda {}  DynamoDB {}  SNS {}  metrics {}  alarms {}  logs {}  other {}\n  {} a month for {} \
             check(s) in {} region(s) ({}), {} per check-month\n",
            dollars(lambda),
            dollars(dynamodb),
            dollars(sns),
            dollars(metrics),
            dollars(alarms),
            dollars(logs),
            dollars(other),
            dollars(self.total),
            self.checks,
            self.regions.len(),
            self.regions.join(", "),
            dollars(self.per_check_month)
        )
    }
}

/// What the same checks cost a month on the hosted alternatives, each region a location.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alternatives {
    pub cloudwatch_synthetics: f64,
    pub checkly: f64,
    pub datadog: f64,
}

pub fn alternatives(workload: &Workload) -> Alternatives {
    let mut prices = Alternatives { cloudwatch_synthetics: 0.0, checkly: 0.0, datadog: 0.0 };
    for check in &workload.checks {
        let runs = check.runs_per_month() as f64;
        prices.cloudwatch_synthetics += runs * CANARY_RUN.each();
        prices.checkly += runs * f64::from(check.requests_per_run.max(1)) * CHECKLY_REQUEST.each();
        prices.datadog += runs * DATADOG_TEST_RUN.each();
    }
    prices
}

/// The dollar amount the tables print: cents for a dollar or more, otherwise three significant
/// digits, so a line of a tenth of a cent per check still reads as what it is.
pub fn dollars(amount: f64) -> String {
    if amount >= 1.0 || amount == 0.0 {
        format!("${}", group_thousands(&format!("{amount:.2}")))
    } else {
        let digits = (2 - amount.log10().floor() as i32).max(2) as usize;
        format!("${amount:.digits$}")
    }
}

/// A price as its page writes it: cents, or every digit it has.
fn list_dollars(usd: f64) -> String {
    match (usd * 100.0).fract() == 0.0 {
        true => format!("${usd:.2}"),
        false => format!("${usd}"),
    }
}

fn group_thousands(number: &str) -> String {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction.is_empty() {
        true => grouped,
        false => format!("{grouped}.{fraction}"),
    }
}

/// The markers around the generated tables in the committed Markdown files.
pub const COST_TABLES_BEGIN: &str = "<!-- cost-tables:begin (generated by shared/src/cost.rs) -->\n";
pub const COST_TABLES_END: &str = "<!-- cost-tables:end -->";

/// The committed cost tables: per check-month by line for 10, 100 and 1,000 typical checks in 1
/// and 3 regions, before and after, then against the hosted alternatives, then the sources.
pub fn markdown_tables() -> String {
    let runtime = Runtime::DEFAULT;
    let designs = [Design::PER_CHECK_ALARMS, Design::ONE_EVALUATOR];
    let sizes = [(10, 1), (100, 1), (1_000, 1), (10, 3), (100, 3), (1_000, 3)];
    let mut out = String::from(
        "Per check-month (the month's bill divided by the number of checks), typical check: every 5 minutes, \
         2 requests, signs in. Lambda at 128 MB on arm64 against a target 50 ms away; list prices, us-east-1, \
         before free tiers.\n\n\
         | Checks | Regions | Design | Lambda | DynamoDB | SNS | Metrics | Alarms | Logs | Other | Per check-month | Month |\n\
         | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (checks, regions) in sizes {
        let workload = Workload::typical(checks, regions);
        for design in &designs {
            let bill = estimate(&workload, design, &runtime);
            let per_check: Vec<String> = bill.lines().iter().map(|line| dollars(line / checks as f64)).collect();
            out.push_str(&format!(
                "| {} | {regions} | {} | {} | **{}** | {} |\n",
                group_thousands(&checks.to_string()),
                design.name,
                per_check.join(" | "),
                dollars(bill.total() / checks as f64),
                dollars(bill.total())
            ));
        }
    }
    out.push_str(
        "\nThe same checks elsewhere, per check-month (each region is one more location running every check; \
         runs only, plan fees extra):\n\n\
         | Checks | Regions | Here, before | Here, after | CloudWatch Synthetics | Checkly | Datadog |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (checks, regions) in sizes {
        let workload = Workload::typical(checks, regions);
        let per_check = |amount: f64| dollars(amount / checks as f64);
        let [before, after] = designs.map(|design| estimate(&workload, &design, &runtime).total());
        let others = alternatives(&workload);
        out.push_str(&format!(
            "| {} | {regions} | {} | {} | {} | {} | {} |\n",
            group_thousands(&checks.to_string()),
            per_check(before),
            per_check(after),
            per_check(others.cloudwatch_synthetics),
            per_check(others.checkly),
            per_check(others.datadog)
        ));
    }
    let hundred = Workload::typical(100, 1);
    let after = estimate(&hundred, &Design::ONE_EVALUATOR, &runtime).total() / 100.0;
    let failing_alarms = Design { alarm_metrics_per_check: 1, ..Design::ONE_EVALUATOR };
    let with_alarm = estimate(&hundred, &failing_alarms, &runtime).total() / 100.0;
    let kms_and_secret = hundred.runs_per_month() as f64
        * (runtime.kms_requests_per_publish * KMS_REQUEST.each() + SECRET_READ.each())
        / 100.0;
    out.push_str(&format!(
        "\n- The target, at most $0.50 per check-month at 100 checks in one region: **{}**, {}. The per-check \
         `failing` alarm a canary deploy rolls back on is opt-in (`FailingAlarms=true`): with it, {}. \
         The KMS requests (an upper bound) and the secret reads are {} of it.",
        if after <= TARGET_PER_CHECK_MONTH { "met" } else { "missed" },
        dollars(after),
        dollars(with_alarm),
        dollars(kms_and_secret)
    ));
    let two_metrics = Design::ONE_EVALUATOR.with_metrics_per_check(2);
    out.push_str(&format!(
        "\n- Each custom metric per check is $0.30 of the check-month: with 2 per check instead of 1 (say \
         `DurationMs` beside `Success`), 100 checks in one region cost {} per check-month.\n\
         - Other is the KMS key and its requests (an upper bound of {} per alert publish), the account \
         secret and its reads (one per run at a 5-minute schedule), and a dashboard per region.\n\
         - Checkly counts each HTTP request of a multistep check as a run; Datadog is priced per test run \
         (a journey counted once, the reading most favourable to it). CloudWatch Synthetics bills its own \
         Lambda, S3 and metrics on top of the canary run.\n\n\
         Prices (read {PRICES_READ}; Datadog\'s is its last published list price, its page could not be re-read):\n",
        dollars(estimate(&Workload::typical(100, 1), &two_metrics, &runtime).total() / 100.0),
        runtime.kms_requests_per_publish
    ));
    let mut sources: Vec<&str> = Vec::new();
    for price in PRICES {
        if !sources.contains(&price.source) {
            sources.push(price.source);
        }
    }
    for source in sources {
        let items: Vec<String> = PRICES
            .iter()
            .filter(|price| price.source == source)
            .map(|price| match price.per {
                1 => format!("{} per {}", list_dollars(price.usd), price.unit),
                per => format!("{} per {} {}", list_dollars(price.usd), group_thousands(&per.to_string()), price.unit),
            })
            .collect();
        out.push_str(&format!("- <{source}>: {}\n", items.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn the_readme_example_run_costs_what_the_readme_says() {
        // infra/README.md: a products run (2 requests) bills 204 ms: $0.00000054 a run.
        let runtime = Runtime::DEFAULT;
        assert_eq!(runtime.check_billed_ms(2), 204);
        let per_run = 0.204 * 0.125 * LAMBDA_GB_SECOND.each() + LAMBDA_REQUEST.each();
        assert!((per_run - 0.000_000_54).abs() < 0.000_000_005, "{per_run}");
    }

    #[test]
    fn a_canary_at_five_minutes_costs_ten_dollars_37() {
        let others = alternatives(&Workload::typical(1, 1));
        assert_eq!(dollars(others.cloudwatch_synthetics), "$10.37");
        assert_eq!(dollars(others.checkly), "$3.46");
        assert_eq!(dollars(others.datadog), "$4.32");
    }

    #[test]
    fn metrics_are_priced_tier_by_tier() {
        assert!(close(tiered_metrics(0), 0.0));
        assert!(close(tiered_metrics(10_000), 3_000.0));
        assert!(close(tiered_metrics(10_001), 3_000.10));
        assert!(close(tiered_metrics(250_000), 3_000.0 + 24_000.0));
        assert!(close(tiered_metrics(1_000_001), 3_000.0 + 24_000.0 + 37_500.0 + 0.02));
    }

    #[test]
    fn dollars_keep_three_significant_digits_below_a_dollar() {
        assert_eq!(dollars(1234.5), "$1,234.50");
        assert_eq!(dollars(10.366), "$10.37");
        assert_eq!(dollars(0.448), "$0.448");
        assert_eq!(dollars(0.0047), "$0.00470");
        assert_eq!(dollars(0.000_000_2), "$0.000000200");
        assert_eq!(dollars(0.0), "$0.00");
    }

    #[test]
    fn today_design_matches_the_readme_metric_count_for_the_five_shipped_checks() {
        // infra/README.md counted 47 metrics and 60 alarm metrics for health (1 step), auth (1),
        // products (2), payment (4) and search (1).
        let region = vec!["us-east-1".to_string()];
        let check = |steps| CheckLoad {
            schedule_minutes: 5,
            regions: region.clone(),
            requests_per_run: steps,
            steps,
            reads_account_secret: false,
        };
        let workload = Workload { regions: region.clone(), checks: [1, 1, 2, 4, 1].map(check).to_vec() };
        let design = Design::PER_CHECK_ALARMS;
        let bill = estimate(&workload, &Design { home_metrics: 0, ..design }, &Runtime::DEFAULT);
        assert!(close(bill.metrics, 47.0 * 0.30), "{}", bill.metrics);
        let alarms = 5.0 * 11.0 * 0.10 + (5.0 + 2.0) * 0.10 + 10.0 * 0.50;
        assert!(close(bill.alarms, alarms), "{} vs {alarms}", bill.alarms);
    }

    /// What the docs claim about issue 22's target ($0.50 per check-month at 100 checks in one
    /// region): the new design is about a tenth of the old and meets it; the opt-in failing alarm
    /// adds one alarm metric per check.
    #[test]
    fn the_new_design_is_a_tenth_of_the_old_and_meets_the_target() {
        let workload = Workload::typical(100, 1);
        let per_check = |design: &Design| estimate(&workload, design, &Runtime::DEFAULT).total() / 100.0;
        let (before, after) = (per_check(&Design::PER_CHECK_ALARMS), per_check(&Design::ONE_EVALUATOR));
        assert!(before > 5.0 && after * 8.0 < before, "before {before}, after {after}");
        assert!(after <= TARGET_PER_CHECK_MONTH, "per check-month: {after}");
        let with_alarm = per_check(&Design { alarm_metrics_per_check: 1, ..Design::ONE_EVALUATOR });
        assert!(((with_alarm - after) - ALARM_METRIC.each()).abs() < 1e-9);
    }

    /// The log bytes the model assumes per run cover what a run really writes: its EMF records
    /// and its result line (the platform's START/END/REPORT lines are about 350 bytes more).
    #[test]
    fn the_modelled_log_bytes_cover_a_runs_records() {
        use crate::result::{Outcome, RunResult, StepResult};
        for steps in [1usize, 2, 4, 8] {
            let run = RunResult {
                check: "a-check-name-of-typical-length".into(),
                env: "prod".into(),
                target: "https://shop.example.com/".into(),
                run_id: "00000000-0000-4000-8000-000000000000".into(),
                started_at: "2026-12-05T10:00:00Z".into(),
                duration_ms: 412,
                status: Outcome::Passed,
                cause: None,
                steps: (0..steps)
                    .map(|n| StepResult {
                        name: format!("step_number_{n}"),
                        outcome: Outcome::Passed,
                        duration_ms: 88,
                        status: Some(200),
                        attempts: 1,
                        cause: None,
                        error: None,
                    })
                    .collect(),
                account: None,
                certificate: None,
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            };
            let written: usize =
                crate::metrics::emf_records(&run, "SyntheticMonitoring", crate::metrics::MetricDetail::Success)
                    .iter()
                    .map(|line| line.len() + 1)
                    .sum::<usize>()
                    + serde_json::to_string(&run).map_or(0, |line| line.len() + 1)
                    + 350;
            let runtime = Runtime::DEFAULT;
            let modelled = runtime.check_log_bytes_per_run + runtime.check_log_bytes_per_step * steps as u64;
            assert!(written as u64 <= modelled, "{steps} steps: {written} bytes written, {modelled} modelled");
            assert!(modelled <= 2 * written as u64, "{steps} steps: {modelled} modelled is far above {written}");
        }
    }

    #[test]
    fn a_plan_resolves_every_region_and_skips_disabled_checks() {
        let planned = |name: &str, regions: &[&str], enabled| PlannedCheck {
            name: name.into(),
            schedule_minutes: 5,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            tags: vec![],
            depends_on: vec![],
            enabled,
            timeout_seconds: 30,
            reads_account_secret: false,
            journey_sha256: String::new(),
        };
        let plan = Plan {
            checks: vec![planned("a", &[], true), planned("b", &["eu-west-1"], true), planned("c", &[], false)],
        };
        let regions = ["us-east-1".to_string(), "eu-west-1".to_string()];
        let workload = Workload::from_plan(&plan, &regions, |_| (1, 1));
        assert_eq!(workload.checks.len(), 2);
        assert_eq!(workload.checks[0].regions, regions);
        assert_eq!(workload.checks[1].regions, ["eu-west-1"]);
        // AND a region only a check names is one more region of the deployment
        let workload = Workload::from_plan(&plan, &regions[..1], |_| (1, 1));
        assert_eq!(workload.regions, regions);
        assert_eq!(workload.checks[0].regions, ["us-east-1"]);
    }

    #[test]
    fn the_committed_tables_are_the_models() {
        // UPDATE_COST_TABLES=1 rewrites them after a change to the model.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tables = markdown_tables();
        for file in ["infra/README.md", "bench/RESULTS.md"] {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let (begin, end) = (COST_TABLES_BEGIN, COST_TABLES_END);
            let start = text.find(begin).unwrap_or_else(|| panic!("{file} has no {begin}")) + begin.len();
            let stop = start + text[start..].find(end).unwrap_or_else(|| panic!("{file} has no {end}"));
            if std::env::var_os("UPDATE_COST_TABLES").is_some() {
                std::fs::write(&path, format!("{}{tables}{}", &text[..start], &text[stop..])).unwrap();
            } else {
                assert_eq!(
                    text[start..stop],
                    tables,
                    "{file}: run UPDATE_COST_TABLES=1 cargo test -p synthetic-checks cost"
                );
            }
        }
    }

    fn workload() -> impl Strategy<Value = Workload> {
        let check =
            (prop::sample::select(vec![1u32, 2, 5, 10, 15]), 1u32..4, 1u32..6, 0u32..4, any::<bool>(), 1usize..=3);
        (1usize..=3, prop::collection::vec(check, 0..30)).prop_map(|(regions, checks)| {
            let regions: Vec<String> = (1..=regions).map(|n| format!("r{n}")).collect();
            let checks = checks
                .into_iter()
                .map(|(schedule_minutes, requests, steps, extra, secret, in_regions)| CheckLoad {
                    schedule_minutes,
                    regions: regions.iter().take(in_regions.min(regions.len())).cloned().collect(),
                    requests_per_run: requests + extra,
                    steps,
                    reads_account_secret: secret,
                })
                .collect();
            Workload { regions, checks }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A check more, or a region more for a check, never lowers any line of the bill; the
        /// lines add up to the total; and a check costs the same wherever it is in the list.
        #[test]
        fn more_never_costs_less_and_order_does_not_matter(workload in workload(), extra in workload()) {
            for design in [Design::PER_CHECK_ALARMS, Design::ONE_EVALUATOR] {
                let runtime = Runtime::DEFAULT;
                let bill = estimate(&workload, &design, &runtime);
                prop_assert!(close(bill.total(), bill.lines().iter().sum()));
                let mut more = workload.clone();
                more.checks.extend(extra.checks.iter().map(|check| CheckLoad { regions: workload.regions[..1].to_vec(), ..check.clone() }));
                let bigger = estimate(&more, &design, &runtime);
                for (line, (small, big)) in bill.lines().iter().zip(bigger.lines()).enumerate() {
                    prop_assert!(big >= small - 1e-9, "line {line}: {small} then {big}");
                }
                let mut reversed = workload.clone();
                reversed.checks.reverse();
                prop_assert!(close(estimate(&reversed, &design, &runtime).total(), bill.total()));
            }
        }

        /// The tiers never charge more than the first tier's flat price, and each metric more
        /// costs at most $0.30 and never less than the last tier's $0.02.
        #[test]
        fn tiered_metrics_are_increasing_and_concave(count in 0u64..2_000_000) {
            let (here, next) = (tiered_metrics(count), tiered_metrics(count + 1));
            prop_assert!(here <= count as f64 * 0.30 + 1e-6);
            prop_assert!(next - here <= 0.30 + 1e-9 && next - here >= 0.02 - 1e-9);
        }
    }
}

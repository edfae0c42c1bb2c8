//! `make bench`: cold start, per-run overhead, peak memory, package size and cost of the check
//! Lambdas, side by side with the same products journey written in Python (requests + boto3),
//! in one run on one machine. Method notes are in `bench/README.md`; the report is printed and
//! written to `bench/RESULTS.md`.
//!
//! Everything runs on the local stack (`synthetic_e2e::stack`): the demo shop with no injected
//! latency, moto for Secrets Manager and SNS, and the Runtime API emulator running the native
//! release binaries from `target/release` (arm64 cannot run here). Subjects take turns in a
//! fresh random order every round, so a load spike from another process hits them all alike.
//! Nothing here passes or fails on a number: the bench reports, and exits non-zero only when a
//! run breaks.
//!
//! `BENCH_COLD_SPAWNS` (default 20) and `BENCH_WARM_RUNS` (default 500) set the sample sizes.
//! First, `make build` is timed with the shipped checks and with 20 generated ones added
//! ([`build_time`]); `BENCH_BUILD=0` skips that, and `bench build` runs only that.
//!
//! `bench parse [runs]` times only the parse of the compiled-in journey files, with no stack
//! (quick, and small enough to run under `valgrind --tool=callgrind`). `bench parse-once
//! <check>` is what the full bench spawns to time one first parse in a fresh process.
//! `bench engine [runs]` times the products run with the shop's answers canned in memory: the
//! engine's own cost per run, with no socket, so it is steady enough to compare two commits.
//! `bench init [spawns]` spawns only the init diagnostics (the empty function against
//! `check-products`, to the first `next`), for work on the cold start.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use synthetic_checks::alert::{AlertMessage, Notifier, PublishError};
use synthetic_checks::catalog::{FolderDefaults, parse_check};
use synthetic_checks::cost::{self, COST_TABLES_BEGIN, COST_TABLES_END};
use synthetic_checks::discard::Discard;
use synthetic_checks::http::{Certificate, HttpRequest, HttpResponse, HttpTarget, ReqwestTarget, USER_AGENT, tls};
use synthetic_checks::secret::InMemorySecrets;
use synthetic_checks::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use synthetic_checks::{Adapters, Check, CheckError, Monitor, MonitorConfig, Outcome, RunResult};
use synthetic_e2e::build_time::{self, BuildTimes};
use synthetic_e2e::fake_pagerduty::FakePagerDuty;
use synthetic_e2e::lambda_emulator::{Invocation, LambdaProcess, workspace_release_binary};
use synthetic_e2e::stack::{INVOKE_TIMEOUT, LocalStack, account_json, check_selection_env, scheduled_event};
use synthetic_e2e::tls_target::{TestCa, TlsTarget, Validity};

const WARMUP_RUNS: usize = 20;
/// Runs of `bench engine` before it starts timing: a run is cheap, and the allocator settles.
const ENGINE_WARMUP_RUNS: usize = 200;
/// Parses of each compiled-in journey in one process, after the first.
const PARSE_RUNS: usize = 2000;
/// The in-process journey loop is cheap, so it runs this many times the warm Lambda runs.
const JOURNEY_RUNS_PER_WARM_RUN: usize = 4;
const RUNS_PER_MONTH: f64 = (cost::MINUTES_PER_MONTH / 5) as f64;
const MEMORY_GB: f64 = 128.0 / 1024.0;
/// The example network: round trip to the target (and to PagerDuty) in the cost estimate.
const EXAMPLE_RTT_MS: u64 = 50;
/// The binary of each Lambda subject, in `SUBJECTS` order: every check runs the one `check`.
const LAMBDA_BINS: [&str; 5] = ["check", "check", "check", "check", "pagerduty-forwarder"];
const ROUTING_KEY: &str = "bench0r0ut1ng0key000000000000001";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Subject {
    Rust(Check),
    Forwarder,
    Python,
}

const SUBJECTS: [Subject; 6] = [
    Subject::Rust(Check::Health),
    Subject::Rust(Check::Auth),
    Subject::Rust(Check::Products),
    Subject::Rust(Check::Payment),
    Subject::Forwarder,
    Subject::Python,
];
const PRODUCTS: usize = 2;
const FORWARDER: usize = 4;
const PYTHON: usize = 5;

impl Subject {
    fn name(self) -> String {
        match self {
            Subject::Rust(check) => format!("check-{}", check.name()),
            Subject::Forwarder => "pagerduty-forwarder".into(),
            Subject::Python => "Python products (requests + boto3)".into(),
        }
    }

    /// Round trips to the remote end in one run over a fresh connection (TCP, TLS 1.3, then one
    /// per request): at a 5-minute schedule the pooled connection has been idle too long to reuse.
    fn round_trips(self) -> u64 {
        match self {
            Subject::Rust(Check::Health | Check::Auth) | Subject::Forwarder => 3,
            Subject::Rust(Check::Products) | Subject::Python => 4,
            Subject::Rust(Check::Payment) => 6,
        }
    }
}

/// The local stack plus what the forwarder and the Python baseline need.
struct Bench {
    stack: LocalStack,
    pagerduty: FakePagerDuty,
    routing_secret_arn: String,
    /// One real alert body, for the forwarder's SNS events.
    alert: String,
    workspace: PathBuf,
}

impl Bench {
    async fn spawn(&self, subject: Subject) -> Result<LambdaProcess, String> {
        let mut env = self.stack.function_env();
        let (binary, name) = match subject {
            Subject::Rust(check) => {
                env.extend(check_selection_env(check.name()).map_err(|e| e.to_string())?);
                (workspace_release_binary("check")?, subject.name())
            }
            Subject::Forwarder => {
                env = self.stack.moto.aws_env();
                let events_url = self.pagerduty.base_url();
                env.extend(
                    [
                        ("PAGERDUTY_SECRET_ID", self.routing_secret_arn.as_str()),
                        ("PAGERDUTY_EVENTS_URL", events_url.as_str()),
                        ("RUNBOOK_URL", "https://wiki.example.com/runbooks/synthetic"),
                        ("RUST_LOG", "info"),
                    ]
                    .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                (workspace_release_binary("pagerduty-forwarder")?, subject.name())
            }
            Subject::Python => {
                // bootstrap.py's `#!/usr/bin/env python3` finds the project venv first.
                let venv = self.workspace.join(".venv/bin");
                let path = std::env::var("PATH").unwrap_or_default();
                env.push(("PATH".into(), format!("{}:{path}", venv.display())));
                (self.workspace.join("bench/python/bootstrap.py"), "python-products".into())
            }
        };
        LambdaProcess::spawn(&binary, &name, &env).await.map_err(|e| format!("{name}: {e}"))
    }

    fn event(&self, subject: Subject) -> Value {
        match subject {
            Subject::Rust(check) => scheduled_event(check),
            Subject::Python => scheduled_event(Check::Products),
            Subject::Forwarder => {
                let id = uuid::Uuid::new_v4().to_string();
                let topic = &self.stack.topic_arn;
                let sns = json!({
                    "Type": "Notification", "MessageId": id, "TopicArn": topic, "Subject": null,
                    "Message": self.alert, "Timestamp": "2026-11-21T10:00:01.000Z", "SignatureVersion": "1",
                    "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": "", "MessageAttributes": {}
                });
                let subscription = format!("{topic}:pagerduty-forwarder");
                json!({ "Records": [{ "EventSource": "aws:sns", "EventVersion": "1.0",
                                      "EventSubscriptionArn": subscription, "Sns": sns }] })
            }
        }
    }

    /// Unsubscribes the stack's SQS inbox from the alert topic. moto delivers to subscribers
    /// inside `Publish`, and gets slower with every message waiting in a subscribed queue; SNS
    /// delivers asynchronously, so a publish should not pay for its subscribers here either.
    async fn detach_alert_queue(&self) -> Result<(), String> {
        let sns = self.stack.aws.sns();
        let fail = |e: aws_sdk_sns::Error| {
            format!("detaching the alert queue: {}", aws_sdk_sns::error::DisplayErrorContext(e))
        };
        let listed = sns.list_subscriptions_by_topic().topic_arn(&self.stack.topic_arn).send().await;
        let listed = listed.map_err(|e| fail(e.into()))?;
        for arn in listed.subscriptions().iter().filter_map(|s| s.subscription_arn()) {
            sns.unsubscribe().subscription_arn(arn).send().await.map_err(|e| fail(e.into()))?;
        }
        Ok(())
    }

    /// One invocation, timed; fails unless the journey passed (or the event was forwarded).
    /// Returns the time and the step durations the function reported, in ms.
    async fn invoke(&self, process: &LambdaProcess, subject: Subject) -> Result<(Duration, Vec<f64>), String> {
        let event = self.event(subject);
        let started = Instant::now();
        let invocation = process.invoke(event, INVOKE_TIMEOUT).await;
        let elapsed = started.elapsed();
        let body = match invocation {
            Ok(Invocation::Response(body)) => body,
            Ok(Invocation::Error { error_type, error_message }) => {
                return Err(format!("{}: {error_type}: {error_message}", subject.name()));
            }
            Err(error) => return Err(format!("{}: {error}", subject.name())),
        };
        let steps = match subject {
            Subject::Forwarder => Vec::new(),
            Subject::Rust(_) => {
                let run: RunResult = serde_json::from_value(body).map_err(|e| format!("{}: {e}", subject.name()))?;
                if run.status != Outcome::Passed {
                    return Err(format!("{}: the run did not pass: {run:?}", subject.name()));
                }
                run.steps.iter().map(|s| s.duration_ms as f64).collect()
            }
            Subject::Python => {
                if body["status"] != "passed" {
                    return Err(format!("{}: the run did not pass: {body}", subject.name()));
                }
                body["steps"].as_array().into_iter().flatten().filter_map(|s| s["duration_ms"].as_f64()).collect()
            }
        };
        Ok((elapsed, steps))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => bench().await,
        ["parse-once", check] => parse_once(check),
        ["parse"] => parse_only(PARSE_RUNS),
        ["parse", runs] => runs.parse().map_err(|_| format!("not a number of runs: {runs}")).and_then(parse_only),
        ["overhead"] => overhead_only(2_000).await,
        ["overhead", runs] => match runs.parse() {
            Ok(runs) => overhead_only(runs).await,
            Err(_) => Err(format!("not a number of journeys: {runs}")),
        },
        ["engine"] => engine_only(20_000).await,
        ["engine", runs] => match runs.parse() {
            Ok(runs) => engine_only(runs).await,
            Err(_) => Err(format!("not a number of runs: {runs}")),
        },
        ["build"] => build_only(),
        ["init"] => init_only(20).await,
        ["init", spawns] => match spawns.parse() {
            Ok(spawns) => init_only(spawns).await,
            Err(_) => Err(format!("not a number of spawns: {spawns}")),
        },
        _ => Err(
            "usage: bench [parse [runs] | parse-once <check> | overhead [journeys] | engine [runs] | init [spawns] | build]"
                .into(),
        ),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("bench: {problem}");
            ExitCode::FAILURE
        }
    }
}

/// `journeys` products journeys each way, bare reqwest and the library, interleaved in a shuffled
/// order after a warm-up: total, login and products times of each.
async fn products_journeys(
    bare: &Bare<'_>,
    library: &Library,
    order: &mut Shuffle,
    journeys: usize,
) -> Result<([Vec<Duration>; 3], [Vec<Duration>; 3]), String> {
    let (mut bare_times, mut library_times): ([Vec<Duration>; 3], [Vec<Duration>; 3]) = Default::default();
    for run in 0..WARMUP_RUNS + journeys {
        for task in order.next(2) {
            let times = match task {
                0 => bare.journey().await?,
                _ => library.run().await?.1,
            };
            if run >= WARMUP_RUNS {
                let samples = if task == 0 { &mut bare_times } else { &mut library_times };
                for (samples, time) in samples.iter_mut().zip(times) {
                    samples.push(time);
                }
            }
        }
    }
    Ok((bare_times, library_times))
}

/// `bench engine [runs]`: whole products runs (`Monitor::run`) against the shop's two answers
/// canned in memory, on one thread: what a run costs besides its requests' time on the wire.
async fn engine_only(runs: usize) -> Result<(), String> {
    let vars = [
        ("TARGET_BASE_URL", "http://shop.test"),
        ("CHECK_ENV", "bench"),
        ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:000000000000:alerts"),
        ("CREDENTIALS_SECRET_ID", "synthetic/account"),
    ];
    let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let config = MonitorConfig::from_lookup(Check::Products.journey(), &lookup).map_err(|e| e.to_string())?;
    let adapters = Adapters {
        http: Arc::new(CannedShop),
        secrets: Arc::new(InMemorySecrets::with("synthetic/account", &account_json("bench-password"))),
        notifier: Arc::new(Unsent),
        metrics: Arc::new(Discard),
    };
    let monitor = Monitor::new(config, adapters);
    let mut times = Vec::with_capacity(runs);
    for run in 0..ENGINE_WARMUP_RUNS + runs {
        let started = Instant::now();
        let result = monitor.run(None, None).await.map_err(|e| format!("engine run: {e}"))?;
        let elapsed = started.elapsed();
        if result.status != Outcome::Passed {
            return Err(format!("engine run did not pass: {result:?}"));
        }
        if run >= ENGINE_WARMUP_RUNS {
            times.push(elapsed);
        }
    }
    let stats = Stats::of(&times);
    println!(
        "{runs} products runs against canned answers: min {}, median {}, p95 {}",
        us(stats.min),
        us(stats.p50),
        us(stats.p95)
    );
    Ok(())
}

/// The shop's answers to the products journey, as it sends them, with no socket: the login's
/// token, then the listing.
struct CannedShop;

#[async_trait]
impl HttpTarget for CannedShop {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError> {
        let body = match request.url.path() {
            "/api/auth/token" => r#"{"access_token":"tok-5f0c2a9e8d7b4c1a","expires_in":3600,"token_type":"Bearer"}"#,
            _ => {
                r#"{"data":[{"id":"p1","name":"Espresso beans, 1 kg","price_cents":2499},{"id":"p2","name":"Pour-over kettle","price_cents":4599},{"id":"p3","name":"Ceramic dripper","price_cents":1899}]}"#
            }
        };
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), body.len().to_string()),
            ("date".to_string(), "Sat, 21 Nov 2026 21:00:00 GMT".to_string()),
        ];
        Ok(HttpResponse::new(200, headers, body.as_bytes().to_vec()))
    }
}

/// `bench init [spawns]`: only the init diagnostics (spawn to first `next` of the empty function
/// and of `check-products`), which needs the release binaries but no arm64 build: a quick loop
/// while working on the cold start.
async fn init_only(spawns: usize) -> Result<(), String> {
    let stack = LocalStack::start().await.map_err(|e| e.to_string())?;
    let samples = init_diagnostics(&stack, spawns, &mut Shuffle::seeded()).await;
    stack.stop().await;
    let samples = samples?;
    for (name, samples) in DIAGNOSTICS.iter().zip(&samples) {
        let stats = Stats::of(samples);
        println!("{} / {} / {}  {name}", ms(stats.min), ms(stats.p50), ms(stats.max));
    }
    let (empty, check) = (Stats::of(&samples[0]).p50, Stats::of(&samples[1]).p50);
    println!("check-products / empty function (medians): {:.2}x", ratio(check, empty));
    Ok(())
}

/// `bench overhead [journeys]`: only the per-run overhead of the engine against bare reqwest,
/// which needs no release build of the functions (a quick loop while working on the engine).
async fn overhead_only(journeys: usize) -> Result<(), String> {
    let stack = LocalStack::start().await.map_err(|e| e.to_string())?;
    let library = Library::new(&stack)?;
    let bare = Bare::new(&stack)?;
    let (bare_times, library_times) = products_journeys(&bare, &library, &mut Shuffle::seeded(), journeys).await?;
    let median = |samples: &[Duration]| {
        let mut sorted = samples.to_vec();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    };
    let (b, l) = (median(&bare_times[0]), median(&library_times[0]));
    // The run around the requests, per library run: its total less its two requests.
    let around: Vec<Duration> = (0..library_times[0].len())
        .map(|i| library_times[0][i].saturating_sub(library_times[1][i] + library_times[2][i]))
        .collect();
    println!(
        "{journeys} products journeys each: bare {} median, library {} median, {:.2}x",
        ms(b),
        ms(l),
        l.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    println!(
        "  bare {} (login {}, products {}); library {} (login {}, products {}, the run around them {})",
        us(b),
        us(median(&bare_times[1])),
        us(median(&bare_times[2])),
        us(l),
        us(median(&library_times[1])),
        us(median(&library_times[2])),
        us(median(&around))
    );
    stack.stop().await;
    Ok(())
}

async fn bench() -> Result<(), String> {
    let machine = Machine::now();
    let cold_spawns = env_count("BENCH_COLD_SPAWNS", 20)?;
    let warm_runs = env_count("BENCH_WARM_RUNS", 500)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().map_err(|e| e.to_string())?;
    // First, while nothing else runs: four arm64 builds. The last one leaves target/lambda built
    // from the shipped checks, whose zip sizes the report shows.
    let build = match std::env::var("BENCH_BUILD").as_deref() {
        Ok("0") => None,
        _ => Some(build_times(&workspace)?),
    };
    for name in LAMBDA_BINS.into_iter().chain(["echo-lambda"]) {
        workspace_release_binary(name)?;
    }
    eprintln!(
        "bench: parsing the compiled-in journeys ({cold_spawns} fresh processes and {PARSE_RUNS} repeats each)..."
    );
    let parse = parse_costs(cold_spawns, PARSE_RUNS)?;
    eprintln!("bench: starting the local stack (shop, moto, fake PagerDuty)...");
    let stack = LocalStack::start().await.map_err(|e| e.to_string())?;
    let pagerduty = FakePagerDuty::start().await.map_err(|e| e.to_string())?;
    let routing = json!({ "routing_key": ROUTING_KEY }).to_string();
    let routing_secret_arn =
        stack.aws.create_secret("pagerduty/routing-key", &routing).await.map_err(|e| e.to_string())?;
    let library = Library::new(&stack)?;
    let (sample_run, _) = library.run().await?;
    let alert =
        serde_json::to_string(&AlertMessage::from_run(&sample_run, &library.origin)).map_err(|e| e.to_string())?;
    let bench = Bench { stack, pagerduty, routing_secret_arn, alert, workspace };
    bench.detach_alert_queue().await?;

    let result = measure(&bench, &library, cold_spawns, warm_runs).await;
    bench.stack.stop().await;
    let mut measured = result?;
    measured.parse = parse;
    measured.build = build;

    let python = python_package(&bench.workspace)?;
    let report = render(&machine, &measured, &python, &bench.workspace, cold_spawns, warm_runs);
    println!("{report}");
    let path = bench.workspace.join("bench/RESULTS.md");
    std::fs::write(&path, &report).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// `make build` timed with the shipped checks and with [`build_time::GENERATED_CHECKS`] more, each
/// read from a copy of `checks/` through `CHECKS_DIR`.
fn build_times(workspace: &Path) -> Result<BuildTimes, String> {
    let scratch = std::env::temp_dir().join(format!("synthetic-bench-build-{}", uuid::Uuid::new_v4()));
    let folders = build_time::prepare(&workspace.join("checks"), &scratch)?;
    eprintln!(
        "bench: make build with the shipped checks, then with {} generated ones added...",
        build_time::GENERATED_CHECKS
    );
    let times = build_time::measure(&folders, |folder| build_time::timed_build(workspace, folder));
    let _ = std::fs::remove_dir_all(&scratch);
    times
}

/// `bench build`: only the build timing, printed.
fn build_only() -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().map_err(|e| e.to_string())?;
    println!("{}", build_section(&build_times(&workspace)?));
    Ok(())
}

/// The report's build-time section.
fn build_section(times: &BuildTimes) -> String {
    format!(
        "## Build time: what one more check costs `make build`\n\n\
         `make build` (arm64 release zips: the one check binary with the checks folder beside it, the forwarder with \
         the plan) run with a copy of `checks/`, then with {} generated checks added (`CHECKS_DIR`), warm: the \
         shipped folder built once untimed first, and timed before and after the other.\n\n\
         | Checks folder | `make build` |\n| --- | --- |\n\
         | shipped | {:.1} s |\n\
         | shipped + {} generated | {:.1} s |\n\
         | **per added check** | **{:+.2} s** |\n",
        times.generated,
        times.shipped.as_secs_f64(),
        times.generated,
        times.with_generated.as_secs_f64(),
        times.per_added_check()
    )
}

fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(raw) => raw.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("{name} must be a positive number")),
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------
// Measuring

#[derive(Default)]
struct ColdSamples {
    init: Vec<Duration>,
    first_response: Vec<Duration>,
    rss_kib: Vec<u64>,
}

struct Measured {
    cold: Vec<ColdSamples>,
    warm: Vec<Vec<Duration>>,
    /// Step durations each function reported in its result, per step, in ms.
    warm_steps: Vec<Vec<Vec<f64>>>,
    warm_rss_kib: Vec<Option<u64>>,
    /// Whole journey, login, products.
    bare: [Vec<Duration>; 3],
    library: [Vec<Duration>; 3],
    /// The bare journey again, inside the Lambda loop: part of the invocation's physical floor.
    bare_in_lambda_loop: Vec<Duration>,
    floor: Vec<Duration>,
    publish: Vec<Duration>,
    /// Init only (spawn to first `next`) of the [`DIAGNOSTICS`] variants.
    diagnostics: Vec<Vec<Duration>>,
    /// Parsing each compiled-in journey, in [`Check::ALL`] order.
    parse: Vec<ParseCost>,
    https: Https,
    load_at_end: String,
    /// `make build` with the shipped checks and with generated ones added; `None` with BENCH_BUILD=0.
    build: Option<BuildTimes>,
}

/// The health journey over HTTPS, bare and through the library, and what reading the
/// certificate costs.
struct Https {
    bare: Vec<Duration>,
    library: Vec<Duration>,
    /// Requests the TLS target answered per library run.
    requests_per_run: f64,
    /// One uncached read of the leaf certificate (`Certificate::from_der`), averaged.
    parse: Duration,
    days_left: i64,
}

async fn measure(bench: &Bench, library: &Library, cold_spawns: usize, warm_runs: usize) -> Result<Measured, String> {
    let mut order = Shuffle::seeded();
    let mut cold: Vec<ColdSamples> = SUBJECTS.iter().map(|_| ColdSamples::default()).collect();
    eprintln!("bench: {cold_spawns} cold starts of each of {} functions...", SUBJECTS.len());
    for _ in 0..cold_spawns {
        for i in order.next(SUBJECTS.len()) {
            let process = bench.spawn(SUBJECTS[i]).await?;
            let invoked = bench.invoke(&process, SUBJECTS[i]).await;
            let (timings, rss) = (process.timings(), process.peak_rss_kib());
            process.shutdown().await;
            invoked?;
            let (Some(next), Some(response)) = (timings.first_next_at, timings.first_response_at) else {
                return Err(format!("{}: no cold-start timings", SUBJECTS[i].name()));
            };
            cold[i].init.push(next - timings.spawned_at);
            cold[i].first_response.push(response - timings.spawned_at);
            cold[i].rss_kib.push(rss.ok_or("no VmHWM: /proc is needed")?);
        }
    }
    let diagnostics = init_diagnostics(&bench.stack, cold_spawns, &mut order).await?;

    let bare = Bare::new(&bench.stack)?;
    let mut m = Measured {
        cold,
        warm: vec![Vec::new(); SUBJECTS.len()],
        warm_steps: vec![Vec::new(); SUBJECTS.len()],
        warm_rss_kib: Vec::new(),
        bare: Default::default(),
        library: Default::default(),
        bare_in_lambda_loop: Vec::new(),
        floor: Vec::new(),
        publish: Vec::new(),
        diagnostics,
        parse: Vec::new(),
        https: measure_https(&bench.stack, warm_runs * JOURNEY_RUNS_PER_WARM_RUN, &mut order).await?,
        load_at_end: String::new(),
        build: None,
    };

    let journeys = warm_runs * JOURNEY_RUNS_PER_WARM_RUN;
    eprintln!("bench: {journeys} products journeys, bare and through the library...");
    (m.bare, m.library) = products_journeys(&bare, library, &mut order, journeys).await?;

    eprintln!("bench: {warm_runs} warm invocations of each function, after {WARMUP_RUNS} warm-up runs...");
    let mut processes = Vec::new();
    for subject in SUBJECTS {
        processes.push(bench.spawn(subject).await?);
    }
    let echo = LambdaProcess::spawn(&workspace_release_binary("echo-lambda")?, "echo", &[])
        .await
        .map_err(|e| e.to_string())?;
    for run in 0..WARMUP_RUNS + warm_runs {
        let keep = run >= WARMUP_RUNS;
        for task in order.next(3 + SUBJECTS.len()) {
            let started = Instant::now();
            match task {
                0 => {
                    let [journey, _, _] = bare.journey().await?;
                    if keep {
                        m.bare_in_lambda_loop.push(journey);
                    }
                }
                1 => {
                    echo.invoke(json!({}), INVOKE_TIMEOUT).await.map_err(|e| format!("echo-lambda: {e}"))?;
                    if keep {
                        m.floor.push(started.elapsed());
                    }
                }
                2 => {
                    let sns = bench.stack.aws.sns().publish().topic_arn(&bench.stack.topic_arn);
                    sns.subject("[local] products PASSED")
                        .message(&bench.alert)
                        .send()
                        .await
                        .map_err(|e| format!("bare SNS publish: {}", aws_sdk_sns::error::DisplayErrorContext(e)))?;
                    if keep {
                        m.publish.push(started.elapsed());
                    }
                }
                n => {
                    let i = n - 3;
                    let (elapsed, steps) = bench.invoke(&processes[i], SUBJECTS[i]).await?;
                    if keep {
                        m.warm[i].push(elapsed);
                        let reported = &mut m.warm_steps[i];
                        reported.resize(steps.len().max(reported.len()), Vec::new());
                        for (samples, ms) in reported.iter_mut().zip(steps) {
                            samples.push(ms);
                        }
                    }
                }
            }
        }
    }
    m.warm_rss_kib = processes.iter().map(LambdaProcess::peak_rss_kib).collect();
    m.load_at_end = load_average();
    for process in processes {
        process.shutdown().await;
    }
    echo.shutdown().await;
    Ok(m)
}

/// A fresh random order of `0..n` on each call, so that no subject always follows the same
/// one (a Lambda's or moto's aftermath would otherwise land on the same neighbour every time).
struct Shuffle(u64);

impl Shuffle {
    fn seeded() -> Shuffle {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        Shuffle(nanos as u64 | 1)
    }

    /// xorshift64: plenty for shuffling a handful of tasks.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn next(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i + 1));
        }
        order
    }
}

/// Where the init time of a check goes: spawn to first `next` of variants of `check-products`.
const DIAGNOSTICS: [&str; 4] = [
    "`echo-lambda`: an empty `lambda_runtime` function, the floor",
    "`check-products`, as above",
    "`check-products` without `AWS_ENDPOINT_URL` (as deployed)",
    "`check-products` with the system trust store cut to one certificate (`SSL_CERT_FILE`, empty `SSL_CERT_DIR`): no longer read, so this should match the default",
];

async fn init_diagnostics(
    stack: &LocalStack,
    spawns: usize,
    order: &mut Shuffle,
) -> Result<Vec<Vec<Duration>>, String> {
    eprintln!("bench: {spawns} init-only spawns of {} diagnostic variants...", DIAGNOSTICS.len());
    let scratch = std::env::temp_dir().join(format!("synthetic-bench-{}", std::process::id()));
    let empty_dir = scratch.join("empty");
    std::fs::create_dir_all(&empty_dir).map_err(|e| e.to_string())?;
    // The first certificate of the system bundle; Debian and Amazon Linux paths.
    let bundle = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .ok_or("no system CA bundle found")?;
    const END: &str = "-----END CERTIFICATE-----";
    let first = bundle.find(END).map(|end| &bundle[..end + END.len()]).ok_or("the CA bundle has no certificate")?;
    let one_cert = scratch.join("one.pem");
    std::fs::write(&one_cert, format!("{}\n", first.trim_start())).map_err(|e| e.to_string())?;

    let products = workspace_release_binary("check")?;
    let products_env = check_selection_env(Check::Products.name()).map_err(|e| e.to_string())?;
    let echo = workspace_release_binary("echo-lambda")?;
    let mut samples = vec![Vec::new(); DIAGNOSTICS.len()];
    for _ in 0..spawns {
        for variant in order.next(DIAGNOSTICS.len()) {
            let mut env = stack.function_env();
            env.extend(products_env.iter().cloned());
            match variant {
                2 => env.retain(|(k, _)| k != "AWS_ENDPOINT_URL"),
                3 => env.extend([
                    ("SSL_CERT_FILE".to_string(), one_cert.display().to_string()),
                    ("SSL_CERT_DIR".to_string(), empty_dir.display().to_string()),
                ]),
                _ => {}
            }
            let (binary, env) = if variant == 0 { (&echo, Vec::new()) } else { (&products, env) };
            let process = LambdaProcess::spawn(binary, "diagnostic", &env).await.map_err(|e| e.to_string())?;
            let waited = Instant::now();
            let init = loop {
                let timings = process.timings();
                if let Some(next) = timings.first_next_at {
                    break Ok(next - timings.spawned_at);
                }
                if process.exit_status().is_some() || waited.elapsed() > Duration::from_secs(10) {
                    break Err(format!("{}: no `next` request: {:?}", DIAGNOSTICS[variant], process.logs()));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            process.shutdown().await;
            samples[variant].push(init?);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(samples)
}

/// The health journey against an HTTPS target on loopback (a private CA made here, passed as
/// `TARGET_CA_BUNDLE`): a bare reqwest GET over the same rustls setup without `tls_info`, and
/// `Monitor::run`, which reads the target's certificate from each answer. Both on warm pooled
/// connections, alternating; the target counts the requests, so the library's share proves the
/// certificate cost no request.
async fn measure_https(stack: &LocalStack, runs: usize, order: &mut Shuffle) -> Result<Https, String> {
    eprintln!("bench: {runs} health journeys over HTTPS, bare and through the library...");
    let ca = TestCa::new("Bench CA")?;
    let target = TlsTarget::start(&ca, Validity::ExpiresInDays(365)).await?;
    let bundle = ca.bundle_path().display().to_string();
    let mut env = stack.function_env();
    env.retain(|(k, _)| k != "TARGET_BASE_URL");
    env.extend([("TARGET_BASE_URL".to_string(), target.url()), ("TARGET_CA_BUNDLE".to_string(), bundle)]);
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = MonitorConfig::from_lookup(Check::Health.journey(), &lookup).map_err(|e| e.to_string())?;
    let roots = config.http.ca_bundle.as_ref().map(|b| b.roots.clone()).unwrap_or_default();
    let adapters = Adapters {
        http: Arc::new(ReqwestTarget::new(&config.http).map_err(|e| e.to_string())?),
        secrets: Arc::new(InMemorySecrets::default()),
        notifier: Arc::new(Unsent),
        metrics: Arc::new(Discard),
    };
    let monitor = Monitor::new(config, adapters);
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls::client_config(&roots).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/health", target.url());
    let (mut bare, mut library) = (Vec::new(), Vec::new());
    let mut days_left = 0;
    for run in 0..WARMUP_RUNS + runs {
        for task in order.next(2) {
            let started = Instant::now();
            if task == 0 {
                let answer = client.get(&url).send().await.map_err(|e| format!("bare HTTPS: {e}"))?;
                let body: Value = serde_json::from_slice(&answer.bytes().await.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                if body["status"] != "ok" {
                    return Err(format!("bare HTTPS: unexpected body {body}"));
                }
            } else {
                let ran = monitor.run(None, None).await.map_err(|e| format!("library over HTTPS: {e}"))?;
                if ran.status != Outcome::Passed {
                    return Err(format!("library over HTTPS did not pass: {ran:?}"));
                }
                days_left = ran.certificate.ok_or("library over HTTPS: no certificate in the result")?.days_left;
            }
            if run >= WARMUP_RUNS {
                (if task == 0 { &mut bare } else { &mut library }).push(started.elapsed());
            }
        }
    }
    // Each loop sent exactly one request per run; whatever is left is the library's.
    let requests_per_run = (target.requests() - (WARMUP_RUNS + runs)) as f64 / (WARMUP_RUNS + runs) as f64;
    const PARSES: u32 = 2_000;
    let started = Instant::now();
    for _ in 0..PARSES {
        std::hint::black_box(Certificate::from_der(std::hint::black_box(target.leaf_der()))?);
    }
    let parse = started.elapsed() / PARSES;
    Ok(Https { bare, library, requests_per_run, parse, days_left })
}

/// What parsing one compiled-in journey costs: the step Monitor::from_env adds to every cold
/// start, before the configuration, the SDK and the HTTP clients.
#[derive(Default)]
struct ParseCost {
    /// The first parse in a fresh process (a `bench parse-once` child): cold code pages, caches
    /// and allocator, as at a cold start.
    first: Vec<Duration>,
    /// Repeated parses in one process, after the first.
    repeated: Vec<Duration>,
}

/// One timed parse of `check`'s journey; the parsed journey is dropped after the clock stops,
/// since a function keeps it.
fn timed_parse(check: Check) -> Result<Duration, String> {
    let source = std::hint::black_box(check.journey_source());
    let started = Instant::now();
    // As a check function reads it at cold start: the folder's defaults, then the check's file.
    let parsed = std::hint::black_box(
        FolderDefaults::parse(include_str!("../../../checks/defaults.toml"))
            .and_then(|defaults| parse_check(&defaults, check.name(), source, &synthetic_checks::journey::NoFiles)),
    );
    let elapsed = started.elapsed();
    parsed.map_err(|problems| format!("checks/{check}.toml: {problems}"))?;
    Ok(elapsed)
}

/// `bench parse-once <check>`: the first parse in this process, in nanoseconds, on stdout.
fn parse_once(name: &str) -> Result<(), String> {
    let check = Check::from_name(name).ok_or_else(|| format!("no built-in check {name:?}"))?;
    println!("{}", timed_parse(check)?.as_nanos());
    Ok(())
}

fn parse_costs(spawns: usize, runs: usize) -> Result<Vec<ParseCost>, String> {
    let mut costs: Vec<ParseCost> = Check::ALL.iter().map(|_| ParseCost::default()).collect();
    let exe = std::env::current_exe().map_err(|e| format!("bench: {e}"))?;
    let mut order = Shuffle::seeded();
    for _ in 0..spawns {
        for i in order.next(Check::ALL.len()) {
            let out = std::process::Command::new(&exe)
                .args(["parse-once", Check::ALL[i].name()])
                .output()
                .map_err(|e| format!("bench parse-once: {e}"))?;
            let nanos =
                String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().ok().filter(|_| out.status.success());
            let nanos = nanos.ok_or_else(|| format!("bench parse-once: {}", String::from_utf8_lossy(&out.stderr)))?;
            costs[i].first.push(Duration::from_nanos(nanos));
        }
    }
    for _ in 0..runs {
        for i in order.next(Check::ALL.len()) {
            costs[i].repeated.push(timed_parse(Check::ALL[i])?);
        }
    }
    Ok(costs)
}

/// `bench parse [runs]`: the repeated parses only, no stack and no child processes.
fn parse_only(runs: usize) -> Result<(), String> {
    if runs == 0 {
        return Ok(());
    }
    let costs = parse_costs(0, runs)?;
    println!("| Journey | bytes | steps | repeated: min / median / p95 |\n| --- | --- | --- | --- |");
    for (check, cost) in Check::ALL.iter().zip(&costs) {
        let s = Stats::of(&cost.repeated);
        println!(
            "| {check} | {} | {} | {} / {} / {} |",
            check.journey_source().len(),
            check.journey().steps.len(),
            us(s.min),
            us(s.p50),
            us(s.p95)
        );
    }
    Ok(())
}

/// The same two requests as the products journey, with nothing around them: the floor.
struct Bare<'a> {
    client: reqwest::Client,
    base: String,
    email: &'a str,
    password: &'a str,
}

impl<'a> Bare<'a> {
    fn new(stack: &'a LocalStack) -> Result<Self, String> {
        let client = reqwest::Client::builder().no_proxy().user_agent(USER_AGENT).build().map_err(|e| e.to_string())?;
        let config = &stack.shop_config;
        Ok(Bare { client, base: stack.shop.base_url().to_string(), email: &config.email, password: &config.password })
    }

    /// The time of the whole journey, of the login and of the products request. The requests are
    /// the library's, header for header: its user agent, the journey's `Accept`, and the marks
    /// every synthetic request carries (the check's name, a fresh run id, and the run's trace
    /// context with a span of its own), so the server does the same work for both.
    async fn journey(&self) -> Result<[Duration; 3], String> {
        let fail = |e: reqwest::Error| format!("bare client: {e}");
        let started = Instant::now();
        let run_id = uuid::Uuid::new_v4().to_string();
        let trace = TraceContext::new("products");
        let marked = |request: reqwest::RequestBuilder| {
            request
                .header(reqwest::header::ACCEPT, "application/json")
                .header("X-Synthetic-Check", "products")
                .header("x-synthetic-run-id", &run_id)
                .header(TRACEPARENT, trace.traceparent())
                .header(TRACESTATE, trace.tracestate())
        };
        let login = serde_json::to_vec(&json!({ "email": self.email, "password": self.password }))
            .map_err(|e| e.to_string())?;
        let answer = marked(self.client.post(format!("{}/api/auth/token", self.base)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(login)
            .send()
            .await
            .map_err(fail)?;
        let status = answer.status();
        let body: Value = serde_json::from_slice(&answer.bytes().await.map_err(fail)?).map_err(|e| e.to_string())?;
        let token = body["access_token"].as_str().filter(|_| status.is_success()).ok_or("bare client: no token")?;
        let login = started.elapsed();
        let started = Instant::now();
        let answer = marked(self.client.get(format!("{}/api/products", self.base))).bearer_auth(token).send().await;
        let answer = answer.map_err(fail)?;
        let status = answer.status();
        let body: Value = serde_json::from_slice(&answer.bytes().await.map_err(fail)?).map_err(|e| e.to_string())?;
        if !status.is_success() || body["data"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("bare client: products answered {status}"));
        }
        let products = started.elapsed();
        Ok([login + products, login, products])
    }
}

/// The check library's products journey in this process: the real reqwest adapter against the
/// shop, the secret in memory, the alert and metrics built but not sent ([`Unsent`]). Everything
/// a run does except the AWS calls.
struct Library {
    monitor: Monitor,
    timed: Arc<TimedTarget>,
    origin: synthetic_checks::config::Origin,
}

impl Library {
    fn new(stack: &LocalStack) -> Result<Self, String> {
        let env = stack.function_env();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let config = MonitorConfig::from_lookup(Check::Products.journey(), &lookup).map_err(|e| e.to_string())?;
        let timed = Arc::new(TimedTarget {
            inner: ReqwestTarget::new(&config.http).map_err(|e| e.to_string())?,
            times: Mutex::new(Vec::new()),
        });
        let secrets = InMemorySecrets::with(&stack.secret_arn, &account_json(&stack.shop_config.password));
        let adapters = Adapters {
            http: timed.clone(),
            secrets: Arc::new(secrets),
            notifier: Arc::new(Unsent),
            metrics: Arc::new(Discard),
        };
        let origin = config.origin.clone();
        Ok(Library { monitor: Monitor::new(config, adapters), timed, origin })
    }

    /// One run: its result, and the time of the whole run and of each request.
    async fn run(&self) -> Result<(RunResult, [Duration; 3]), String> {
        self.timed.times.lock().map_err(|e| e.to_string())?.clear();
        let started = Instant::now();
        let run = self.monitor.run(None, None).await.map_err(|e| format!("library journey: {e}"))?;
        let total = started.elapsed();
        if run.status != Outcome::Passed {
            return Err(format!("library journey did not pass: {run:?}"));
        }
        let times = self.timed.times.lock().map_err(|e| e.to_string())?.clone();
        let [login, products] = times[..] else {
            return Err(format!("library journey made {} requests, expected 2", times.len()));
        };
        Ok((run, [total, login, products]))
    }
}

/// The alert port for in-process runs: does what the SNS adapter does before anything leaves the
/// process (the alert serialized as the SNS message, with its subject and attributes), then drops
/// it. Unlike the recording fakes it keeps nothing, so the 3000th run costs what the first did.
/// The EMF lines go to [`Discard`]: they are built by the run itself.
struct Unsent;

#[async_trait]
impl Notifier for Unsent {
    async fn publish(&self, alert: &AlertMessage) -> Result<(), PublishError> {
        let message = alert.to_json().map_err(|e| PublishError::Permanent(e.to_string()))?;
        std::hint::black_box((message, alert.subject(), alert.attributes()));
        Ok(())
    }
}

/// The reqwest adapter, timing each request.
struct TimedTarget {
    inner: ReqwestTarget,
    times: Mutex<Vec<Duration>>,
}

#[async_trait]
impl HttpTarget for TimedTarget {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError> {
        let started = Instant::now();
        let response = self.inner.send(request).await;
        if let Ok(mut times) = self.times.lock() {
            times.push(started.elapsed());
        }
        response
    }
}

// ---------------------------------------------------------------------------
// Statistics

#[derive(Clone, Copy)]
struct Stats {
    min: Duration,
    p50: Duration,
    p95: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort();
        // Nearest rank.
        let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats { min: sorted[0], p50: rank(0.50), p95: rank(0.95), max: sorted[sorted.len() - 1] }
    }
}

fn median_f64(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
}

fn median_u64(samples: &[u64]) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// `a - b` with its sign, for differences that may be noise either way.
fn signed_ms(a: Duration, b: Duration) -> String {
    let difference = a.as_secs_f64() - b.as_secs_f64();
    format!("{}{:.2} ms", if difference < 0.0 { "−" } else { "+" }, difference.abs() * 1e3)
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 { format!("{ms:.0} ms") } else { format!("{ms:.2} ms") }
}

/// Microseconds, for what is far below a millisecond.
fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// MB = 10^6 bytes throughout.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn rss_mb(kib: u64) -> String {
    mb(kib * 1024)
}

// ---------------------------------------------------------------------------
// Cost

/// Lambda bills in 1 ms increments, 128 MB on arm64, list price, before the free tier.
fn cost_per_run(duration: Duration) -> f64 {
    let billed_ms = (duration.as_secs_f64() * 1e3).ceil().max(1.0);
    billed_ms / 1e3 * MEMORY_GB * cost::LAMBDA_GB_SECOND.each() + cost::LAMBDA_REQUEST.each()
}

fn billed(duration: Duration) -> String {
    format!("{} ms", (duration.as_secs_f64() * 1e3).ceil().max(1.0) as u64)
}

/// Cents for big amounts, three significant digits for small ones.
fn dollars(amount: f64) -> String {
    if amount >= 0.01 {
        format!("${amount:.2}")
    } else {
        let decimals = (-amount.log10()).ceil().max(0.0) as usize + 2;
        format!("${amount:.decimals$}")
    }
}

// ---------------------------------------------------------------------------
// Machine, sizes

struct Machine {
    date: String,
    cores: usize,
    cpu: String,
    kernel: String,
    load_at_start: String,
    rustc: String,
    commit: String,
}

impl Machine {
    fn now() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')))
            .map_or("unknown".into(), |(_, model)| model.trim().to_string());
        let dirty = !command("git", &["status", "--porcelain"]).is_empty();
        Machine {
            date: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            load_at_start: load_average(),
            rustc: command("rustc", &["--version"]),
            commit: format!(
                "{}{}",
                command("git", &["rev-parse", "--short", "HEAD"]),
                if dirty { " + uncommitted changes" } else { "" }
            ),
        }
    }
}

fn load_average() -> String {
    let raw = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    raw.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or("unknown".into(), |out| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What `bench/python/package_size.py` reports: zip sizes and versions.
fn python_package(workspace: &Path) -> Result<Value, String> {
    let out = std::process::Command::new(workspace.join(".venv/bin/python"))
        .arg(workspace.join("bench/python/package_size.py"))
        .output()
        .map_err(|e| format!("package_size.py: {e}"))?;
    if !out.status.success() {
        return Err(format!("package_size.py: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("package_size.py: {e}"))
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

// ---------------------------------------------------------------------------
// Report

#[derive(Clone)]
struct Target {
    what: &'static str,
    goal: &'static str,
    measured: String,
    met: bool,
    miss: String,
}

fn render(m: &Machine, r: &Measured, python: &Value, workspace: &Path, cold_spawns: usize, warm_runs: usize) -> String {
    let cold: Vec<(Stats, Stats)> = r.cold.iter().map(|c| (Stats::of(&c.init), Stats::of(&c.first_response))).collect();
    let warm: Vec<Stats> = r.warm.iter().map(|w| Stats::of(w)).collect();
    let [bare, bare_login, bare_products] = r.bare.each_ref().map(|s| Stats::of(s));
    let [lib, lib_login, lib_products] = r.library.each_ref().map(|s| Stats::of(s));
    let (floor, publish) = (Stats::of(&r.floor), Stats::of(&r.publish));
    let rust = 0..PYTHON;
    let checks = 0..4;

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmark results\n");
    let _ = writeln!(
        w,
        "Written by `make bench` ([method](README.md)) on {}, commit {}.\n\n\
         - **Machine:** {} cores, {}, Linux {}. Load average at start {}, at end {} (1, 5, 15 min); \
         other builds may have been running.\n\
         - **Rust:** native x86_64 release builds from `target/release` (`[profile.release]`: opt-level \"s\", \
         \"z\" for the AWS SDK and JSON Schema crates, fat LTO, one codegen unit, panic = abort), {}. The \
         deployed functions are the arm64 builds of the same code (without unwind tables), which cannot run on \
         this machine; their zip sizes are below.\n\
         - **Python:** {} with boto3 {} and requests {}, in the project `.venv`, started by a minimal \
         Runtime API loop (`bench/python/bootstrap.py`).\n\
         - **Stack:** the demo shop on loopback with no injected latency, moto for Secrets Manager and SNS, \
         a fake PagerDuty, the Runtime API emulator. The subjects take turns in a fresh random order every round; \
         {cold_spawns} cold starts and {warm_runs} warm runs (after {WARMUP_RUNS} warm-up runs) of each. \
         MB = 10^6 bytes.\n",
        m.date,
        m.commit,
        m.cores,
        m.cpu,
        m.kernel,
        m.load_at_start,
        r.load_at_end,
        m.rustc,
        python["python"].as_str().unwrap_or("?"),
        python["boto3"].as_str().unwrap_or("?"),
        python["requests"].as_str().unwrap_or("?"),
    );

    // Targets.
    let worst_init = checks.clone().max_by_key(|&i| cold[i].0.p50).unwrap_or(0);
    let init_vs_python = ratio(cold[PYTHON].0.p50, cold[PRODUCTS].0.p50);
    let init_vs_empty = ratio(Stats::of(&r.diagnostics[1]).p50, Stats::of(&r.diagnostics[0]).p50);
    let overhead = ratio(lib.p50, bare.p50);
    let peak_rss = rust.clone().flat_map(|i| r.cold[i].rss_kib.iter().copied()).max().unwrap_or(0);
    let target_dir = workspace.join("target");
    let zips: Vec<Option<u64>> =
        LAMBDA_BINS.iter().map(|b| file_size(&target_dir.join(format!("lambda/{b}/bootstrap.zip")))).collect();
    let biggest_zip = zips.iter().flatten().max().copied();
    let over = |measured: f64, goal: f64, unit: &str| {
        format!("by {:.2}{unit} ({:.0}%)", measured - goal, (measured / goal - 1.0) * 100.0)
    };
    let init_ms = cold[worst_init].0.p50.as_secs_f64() * 1e3;
    let parse: Vec<(Stats, Stats)> = r.parse.iter().map(|p| (Stats::of(&p.first), Stats::of(&p.repeated))).collect();
    let worst_parse = (0..parse.len()).max_by_key(|&i| parse[i].0.p50).unwrap_or(0);
    let parse_ms = parse[worst_parse].0.p50.as_secs_f64() * 1e3;
    let targets = [
        Target {
            what: "Cold start to first `next`, median of the slowest check",
            goal: "≤ 15 ms",
            measured: format!(
                "{} ({}; max of all spawns {})",
                ms(cold[worst_init].0.p50),
                SUBJECTS[worst_init].name(),
                ms(checks.clone().map(|i| cold[i].0.max).max().unwrap_or_default())
            ),
            met: init_ms <= 15.0,
            miss: over(init_ms, 15.0, " ms"),
        },
        Target {
            what: "Cold start to first `next`, check-products / the empty `lambda_runtime` function (medians, same loop)",
            goal: "≤ 2×",
            measured: format!(
                "{init_vs_empty:.2}× ({} vs {})",
                ms(Stats::of(&r.diagnostics[1]).p50),
                ms(Stats::of(&r.diagnostics[0]).p50)
            ),
            met: init_vs_empty <= 2.0,
            miss: over(init_vs_empty, 2.0, "×"),
        },
        Target {
            what: "Parsing the compiled-in journey: median first parse in a fresh process, slowest journey",
            goal: "≤ 1 ms",
            measured: format!(
                "{} ({}; max of all {})",
                us(parse[worst_parse].0.p50),
                Check::ALL[worst_parse],
                us(parse.iter().map(|p| p.0.max).max().unwrap_or_default())
            ),
            met: parse_ms <= 1.0,
            miss: over(parse_ms, 1.0, " ms"),
        },
        Target {
            what: "Cold start to first `next`, Python products / check-products",
            goal: "≥ 50×",
            measured: format!("{init_vs_python:.0}×"),
            met: init_vs_python >= 50.0,
            miss: format!("reaches {init_vs_python:.1}×"),
        },
        Target {
            what: "Products journey, library in-process / bare reqwest (median)",
            goal: "≤ 1.2×",
            measured: format!("{overhead:.2}× ({} vs {})", ms(lib.p50), ms(bare.p50)),
            met: overhead <= 1.2,
            miss: over(overhead, 1.2, "×"),
        },
        Target {
            what: "Peak RSS after the first invocation, largest Rust function",
            goal: "≤ 20 MB",
            measured: rss_mb(peak_rss),
            met: (peak_rss * 1024) as f64 <= 20e6,
            miss: over((peak_rss * 1024) as f64 / 1e6, 20.0, " MB"),
        },
        Target {
            what: "arm64 `bootstrap.zip`, largest function",
            goal: "≤ 5 MB",
            measured: biggest_zip.map_or("not built (run `make build`)".into(), mb),
            met: biggest_zip.is_some_and(|b| b as f64 <= 5e6),
            miss: biggest_zip.map_or("unknown".into(), |b| over(b as f64 / 1e6, 5.0, " MB")),
        },
    ];
    let mut targets = targets.to_vec();
    if let Some(build) = &r.build {
        let per_check = build.per_added_check();
        targets.push(Target {
            what: "`make build`, time added per check (20 generated checks added)",
            goal: "≤ 2 s",
            measured: format!("{per_check:+.2} s"),
            met: per_check <= 2.0,
            miss: over(per_check, 2.0, " s"),
        });
    }
    let _ = writeln!(w, "## Targets\n\n| Target | Goal | Measured | |\n| --- | --- | --- | --- |");
    for t in &targets {
        let verdict = if t.met { "met".to_string() } else { format!("**missed** {}", t.miss) };
        let _ = writeln!(w, "| {} | {} | {} | {verdict} |", t.what, t.goal, t.measured);
    }

    // Cold start.
    let _ = writeln!(
        w,
        "\n## Cold start\n\nFrom process spawn to the first Runtime API `next` (init: Lambda's Init Duration), and to \
         the first posted response (init plus the first run, cold connections and the first AWS calls included: the \
         secret read, the SNS publish). Peak RSS is `VmHWM` right after that first response.\n\n\
         | Function | to first `next`: min / median / max | to first response: min / median / max | peak RSS (median / max) |\n\
         | --- | --- | --- | --- |"
    );
    for (i, subject) in SUBJECTS.iter().enumerate() {
        let (init, first) = cold[i];
        let rss = &r.cold[i].rss_kib;
        let _ = writeln!(
            w,
            "| {} | {} / **{}** / {} | {} / **{}** / {} | {} / {} |",
            subject.name(),
            ms(init.min),
            ms(init.p50),
            ms(init.max),
            ms(first.min),
            ms(first.p50),
            ms(first.max),
            rss_mb(median_u64(rss)),
            rss_mb(rss.iter().copied().max().unwrap_or(0)),
        );
    }
    let rss_ratio = median_u64(&r.cold[PYTHON].rss_kib) as f64 / median_u64(&r.cold[PRODUCTS].rss_kib) as f64;
    let _ = writeln!(
        w,
        "| **Python / check-products** | **{:.0}×** | **{:.1}×** | **{rss_ratio:.1}×** |",
        init_vs_python,
        ratio(cold[PYTHON].1.p50, cold[PRODUCTS].1.p50),
    );

    let diagnostics: Vec<Stats> = r.diagnostics.iter().map(|d| Stats::of(d)).collect();
    let _ = writeln!(
        w,
        "\nWhere the init time goes: spawn to first `next` only, {cold_spawns} spawns of each variant, taking turns.\n\n\
         | Variant | min / median / max |\n| --- | --- |"
    );
    for (name, stats) in DIAGNOSTICS.iter().zip(&diagnostics) {
        let _ = writeln!(w, "| {name} | {} / **{}** / {} |", ms(stats.min), ms(stats.p50), ms(stats.max));
    }
    let _ = writeln!(
        w,
        "\nThe functions no longer read the system trust store: Mozilla's roots are compiled in and one rustls \
         setup serves the target and the AWS SDK. Cutting the store to one certificate changes init by {} here \
         (default minus cut, medians: noise); the check's init is {} over the empty function.",
        signed_ms(diagnostics[1].p50, diagnostics[3].p50),
        ms(diagnostics[1].p50.saturating_sub(diagnostics[0].p50)),
    );

    // Journey parse.
    let _ = writeln!(
        w,
        "\n### Parsing the compiled-in journey\n\n\
         Each check's `journey.toml` is compiled into its binary (`include_str!`) and parsed once per cold \
         start, inside the init above (`Monitor::from_env`: parse, then configuration, then the SDK and HTTP \
         clients). The parse alone, timed in the harness binary (same release profile): the first parse in a \
         fresh process ({cold_spawns} `bench parse-once` children per journey, so code pages, caches and the \
         allocator are as cold as at a cold start), then {PARSE_RUNS} repeated parses in one process.\n\n\
         | Journey | size | steps | first parse in a fresh process: min / median / max | repeated: min / median / p95 |\n\
         | --- | --- | --- | --- | --- |"
    );
    for (i, check) in Check::ALL.iter().enumerate() {
        let (first, repeated) = parse[i];
        let _ = writeln!(
            w,
            "| `check-{check}` | {} bytes | {} | {} / **{}** / {} | {} / **{}** / {} |",
            check.journey_source().len(),
            check.journey().steps.len(),
            us(first.min),
            us(first.p50),
            us(first.max),
            us(repeated.min),
            us(repeated.p50),
            us(repeated.p95),
        );
    }

    // Per-run overhead.
    let python_warm = warm[PYTHON];
    let products_warm = warm[PRODUCTS];
    let bare_in_loop = Stats::of(&r.bare_in_lambda_loop);
    let floor_sum = floor.p50 + bare_in_loop.p50 + publish.p50;
    let step = |i: usize, s: usize| r.warm_steps[i].get(s).map_or(f64::NAN, |v| median_f64(v));
    let _ = writeln!(
        w,
        "\n## Per-run overhead: the products journey, warm\n\n\
         The same two requests, `POST /api/auth/token` and then `GET /api/products` with the token, by a bare \
         client and by the check library, in the harness process: {} runs each, alternating in random order.\n\n\
         | | journey median | p95 | login (median) | products (median) | ratio (medians) |\n\
         | --- | --- | --- | --- | --- | --- |\n\
         | Bare reqwest loop (one client; the library's requests header for header, with a fresh run id; build, send, read and parse both bodies) | {} | {} | {} | {} | 1.00× |\n\
         | Check library (`Monitor::run`: the journey engine on `check-products`' journey file; real reqwest adapter; secret in memory; the alert serialized as the SNS message and the EMF lines built, neither sent) | {} | {} | {} | {} | **{:.2}×** |\n\n\
         The login and products columns are the requests alone, as the adapter sends them; the rest of the \
         library's journey time is the run around them (run id, templates rendered from the secret and the \
         captured token, captures, assertions, result, alert message, EMF records).\n\n\
         Whole warm invocations, {warm_runs} of each function in random order, against the physical floor of \
         the same work measured in the same loop: an empty Lambda invocation (`echo-lambda`, {}), the bare \
         journey ({}) and a bare SNS publish to moto with the Rust SDK ({}).\n\n\
         | | median | p95 | / floor |\n| --- | --- | --- | --- |\n\
         | Physical floor: empty invocation + bare journey + bare SNS publish (sum of medians) | {} | | 1.00× |\n\
         | `check-products` (Runtime API, journey, EMF, SNS publish) | {} | {} | **{:.2}×** |\n\
         | Python products (same journey and publish) | {} | {} | {:.2}× |\n\n\
         Python / `check-products`: **{:.2}×** (median), {:.2}× (p95). Both pay moto's SNS publish, which is most \
         of either invocation here. The steps as the functions report them (medians): `check-products` login \
         {:.0} ms, products {:.0} ms (whole ms); Python login {:.2} ms, products {:.2} ms.",
        warm_runs * JOURNEY_RUNS_PER_WARM_RUN,
        ms(bare.p50),
        ms(bare.p95),
        ms(bare_login.p50),
        ms(bare_products.p50),
        ms(lib.p50),
        ms(lib.p95),
        ms(lib_login.p50),
        ms(lib_products.p50),
        overhead,
        ms(floor.p50),
        ms(bare_in_loop.p50),
        ms(publish.p50),
        ms(floor_sum),
        ms(products_warm.p50),
        ms(products_warm.p95),
        ratio(products_warm.p50, floor_sum),
        ms(python_warm.p50),
        ms(python_warm.p95),
        ratio(python_warm.p50, floor_sum),
        ratio(python_warm.p50, products_warm.p50),
        ratio(python_warm.p95, products_warm.p95),
        step(PRODUCTS, 0),
        step(PRODUCTS, 1),
        step(PYTHON, 0),
        step(PYTHON, 1),
    );

    // The certificate check over HTTPS.
    let https = &r.https;
    let (tls_bare, tls_lib) = (Stats::of(&https.bare), Stats::of(&https.library));
    let _ = writeln!(
        w,
        "\n## The certificate check over HTTPS\n\n\
         The health journey against an HTTPS target on loopback whose certificate (a private CA made by the \
         bench, passed as `TARGET_CA_BUNDLE`) has {} days left: {} runs each, alternating, on warm pooled \
         connections.\n\n\
         | | median | p95 | ratio (medians) |\n| --- | --- | --- | --- |\n\
         | Bare reqwest GET over the same rustls setup, no `tls_info` | {} | {} | 1.00× |\n\
         | Check library (`Monitor::run`, reads the certificate from each answer) | {} | {} | {:.2}× |\n\n\
         Requests the target answered per library run: **{:.2}** (the journey's one GET; the certificate comes \
         from that connection, `tls_info`). Reading a certificate uncached (`x509-parser`, notAfter and subject) \
         takes {:.1} µs; the adapter keeps the last one parsed, so a run pays that once per certificate, not per \
         answer.",
        https.days_left,
        https.bare.len(),
        ms(tls_bare.p50),
        ms(tls_bare.p95),
        ms(tls_lib.p50),
        ms(tls_lib.p95),
        ratio(tls_lib.p50, tls_bare.p50),
        https.requests_per_run,
        https.parse.as_secs_f64() * 1e6,
    );

    // Every function warm, memory, size.
    let _ = writeln!(
        w,
        "\n## Every function: warm run, memory, package\n\n\
         | Function | warm invocation median / p95 | peak RSS after 1 run / after {} runs | arm64 `bootstrap.zip` | native binary |\n\
         | --- | --- | --- | --- | --- |",
        WARMUP_RUNS + warm_runs + 1
    );
    for (i, subject) in SUBJECTS.iter().enumerate() {
        let (zip, binary) = match i {
            PYTHON => (
                format!(
                    "{} (handler + requests; boto3 from the runtime), {} with boto3 bundled",
                    python["without_boto3"].as_u64().map_or("?".into(), mb),
                    python["with_boto3"].as_u64().map_or("?".into(), mb)
                ),
                "n/a".to_string(),
            ),
            _ => (
                zips[i].map_or("not built (run `make build`)".into(), mb),
                file_size(&target_dir.join("release").join(LAMBDA_BINS[i])).map_or("?".into(), mb),
            ),
        };
        let _ = writeln!(
            w,
            "| {} | {} / {} | {} / {} | {zip} | {binary} |",
            subject.name(),
            ms(warm[i].p50),
            ms(warm[i].p95),
            rss_mb(median_u64(&r.cold[i].rss_kib)),
            r.warm_rss_kib[i].map_or("?".into(), rss_mb),
        );
    }

    // Cost.
    let _ = writeln!(
        w,
        "\n## Cost per run and per month (5-minute schedule, {RUNS_PER_MONTH:.0} runs)\n\n\
         128 MB on arm64 at list price: $0.0000133334 per GB-s and $0.20 per million requests, billed per 1 ms, \
         before the free tier. A warm run bills its median invocation. A cold run bills its median init plus first \
         run, because Lambda bills the init phase. Lambda usually keeps a sandbox that runs every 5 minutes, but \
         does not promise to, so both ends are shown: every run warm (w) and every run cold (c). The durations \
         were measured on this x86_64 machine, not on Graviton.\n\n\
         The local target answers in microseconds; a real one does not. The {EXAMPLE_RTT_MS} ms columns add an \
         example {EXAMPLE_RTT_MS} ms round trip per request, plus TCP and TLS setup, because the pooled connection \
         does not survive 5 idle minutes. That is 3 round trips for health, auth and the forwarder, 4 for \
         products and 6 for payment.\n\n\
         | Function | local: billed w / c | $ per run w / c | $ per month w / c | {EXAMPLE_RTT_MS} ms RTT: billed w / c | $ per month w / c |\n\
         | --- | --- | --- | --- | --- | --- |"
    );
    let month = |d: Duration| dollars(cost_per_run(d) * RUNS_PER_MONTH);
    for (i, subject) in SUBJECTS.iter().enumerate() {
        let (warm_run, cold_run) = (warm[i].p50, cold[i].1.p50);
        let network = Duration::from_millis(EXAMPLE_RTT_MS * subject.round_trips());
        let _ = writeln!(
            w,
            "| {} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
            subject.name(),
            billed(warm_run),
            billed(cold_run),
            dollars(cost_per_run(warm_run)),
            dollars(cost_per_run(cold_run)),
            month(warm_run),
            month(cold_run),
            billed(warm_run + network),
            billed(cold_run + network),
            month(warm_run + network),
            month(cold_run + network),
        );
    }
    let canary = dollars(cost::CANARY_RUN.each() * RUNS_PER_MONTH);
    let _ = writeln!(
        w,
        "| CloudWatch Synthetics canary (published price per run) | | {} | {canary} | | {canary} |",
        dollars(cost::CANARY_RUN.each()),
    );
    let network = |i: usize| Duration::from_millis(EXAMPLE_RTT_MS * SUBJECTS[i].round_trips());
    let products_run = cost_per_run(warm[PRODUCTS].p50 + network(PRODUCTS));
    let with_forwarder = products_run + cost_per_run(warm[FORWARDER].p50 + network(FORWARDER));
    let _ = writeln!(
        w,
        "\nWith a {EXAMPLE_RTT_MS} ms target, a warm products run plus the forwarder invocation its alert causes \
         costs {}, about {:.0}× less than a canary run. At that distance the round trips are the bill: a warm \
         Python run costs {:.2}× a warm `check-products` run, and a cold one {:.2}×.",
        dollars(with_forwarder),
        cost::CANARY_RUN.each() / with_forwarder,
        cost_per_run(warm[PYTHON].p50 + network(PYTHON)) / products_run,
        cost_per_run(cold[PYTHON].1.p50 + network(PYTHON)) / cost_per_run(cold[PRODUCTS].1.p50 + network(PRODUCTS)),
    );
    if let Some(build) = &r.build {
        let _ = write!(w, "\n{}", build_section(build));
    }
    let _ = write!(
        w,
        "\n## Cost per check-month at scale\n\n\
         Generated by the cost model (`shared/src/cost.rs`, see `infra/README.md`), not measured.\n\n\
         {COST_TABLES_BEGIN}{}{COST_TABLES_END}\n",
        cost::markdown_tables()
    );
    out
}

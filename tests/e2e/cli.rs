//! The `synthetic` CLI as a process against the demo shop: exit codes, the three formats, the
//! credentials-file rule, the SLO report over a history that `run` wrote, and `--publish`
//! over moto's SNS.

use crate::helpers::*;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;
use synthetic_checks::{Check, Outcome, RunResult};
use synthetic_e2e::lambda_emulator::workspace_binary;
use synthetic_e2e::shop::{self, RunningShop, ShopConfig};
use synthetic_e2e::stack::{PAYMENT_TOKEN, account_json};

/// The demo shop and a private scratch directory holding the synthetic account as a 0600 file.
struct Fixture {
    shop: RunningShop,
    dir: PathBuf,
    credentials: PathBuf,
}

impl Fixture {
    async fn start() -> Fixture {
        let shop = shop::spawn(ShopConfig::default()).await.expect("demo shop");
        let dir = std::env::temp_dir().join(format!("synthetic-cli-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let credentials = dir.join("account.json");
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&credentials).unwrap();
        file.write_all(account_json(&ShopConfig::default().password).as_bytes()).unwrap();
        Fixture { shop, dir, credentials }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `synthetic run` against this shop with the credentials file, plus `args`.
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Exited {
        let credentials = self.credentials.display().to_string();
        let mut all = vec!["run", "--target", self.shop.base_url(), "--credentials-file", &credentials];
        all.extend_from_slice(args);
        let exited = synthetic(&all, env).await;
        assert_no_secret_in(&[&exited.stdout, &exited.stderr]);
        exited
    }

    async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = self.shop.stop().await;
    }
}

fn assert_no_secret_in(texts: &[&str]) {
    let account = ShopConfig::default();
    let secrets = [account.email, account.password, PAYMENT_TOKEN.to_string()];
    assert_none_leaked(&secrets, &texts.iter().map(|t| t.to_string()).collect::<Vec<_>>());
}

fn run_results(json_lines: &str) -> Vec<RunResult> {
    json_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a RunResult ({e}): {l}")))
        .collect()
}

/// Parses JUnit XML with Python's XML parser (any malformed byte fails it) and returns, per
/// testcase, its name and its failure's attributes (null when it passed).
fn parse_junit(xml: &str) -> Value {
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
cases = [{"name": c.get("name"), "failure": None if c.find("failure") is None else dict(c.find("failure").attrib, text=c.find("failure").text)}
         for s in suites for c in s.findall("testcase")]
print(json.dumps({"suites": len(suites), "cases": cases}))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 for the XML check");
    child.stdin.take().expect("stdin").write_all(xml.as_bytes()).expect("write XML");
    let output = child.wait_with_output().expect("python3 ran");
    assert!(output.status.success(), "not well-formed XML: {}\n{xml}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

#[tokio::test]
async fn healthy_shop_passes_with_exit_0_and_a_plain_table() {
    let fixture = Fixture::start().await;
    // WHEN every check runs against the healthy shop, with stdout a pipe
    let exited = fixture.run(&["--check", "all"], &[]).await;
    // THEN it exits 0 with one passed row per check, no colors, and progress on stderr only
    exited.expect(0);
    for check in Check::ALL {
        let row = exited.stdout.lines().find(|l| l.starts_with(check.name())).unwrap_or_else(|| panic!("{check} row"));
        assert!(row.contains("passed"), "{row}");
    }
    assert!(exited.stdout.contains("PASS: 4 passed, 0 degraded, 0 failed"), "{}", exited.stdout);
    assert!(!exited.stdout.contains('\x1b') && !exited.stderr.contains('\x1b'), "colors only on a terminal");
    assert!(exited.stderr.contains("[4/4] payment ... passed"), "{}", exited.stderr);
    assert!(!exited.stdout.contains("[1/4]"), "progress stays off stdout");
    let state = fixture.shop.handle().state();
    assert_eq!((state.traffic.real, state.payments.live), (0, 0), "{state:?}");
    fixture.stop().await;
}

/// The repository's checks folder, which `--all` and `--tag` read.
fn checks_folder() -> String {
    format!("{}/../checks", env!("CARGO_MANIFEST_DIR"))
}

/// The checks the shipped folder holds, in its order, read from the folder itself.
fn shipped_checks() -> Vec<String> {
    let catalog = synthetic_checks::catalog::Catalog::load(std::path::Path::new(&checks_folder())).expect("checks/");
    catalog.checks().iter().filter(|check| check.deploy.enabled).map(|check| check.name.clone()).collect()
}

#[tokio::test]
async fn all_runs_the_checks_folder_concurrently_as_one_gate_in_every_format() {
    let fixture = Fixture::start().await;
    let folder = checks_folder();
    let expected = shipped_checks();
    assert!(expected.len() >= 5, "{expected:?}");
    let all = ["--all", "--checks-dir", &folder, "--concurrency", "3"];
    // WHEN the whole folder runs as one gate, 3 at a time, as JSON lines
    let exited = fixture.run(&[&all[..], &["--format", "json"]].concat(), &[]).await;
    // THEN it passes, with every check's result exactly once, in the folder's order
    exited.expect(0);
    let checks: Vec<String> = run_results(&exited.stdout).into_iter().map(|run| run.check).collect();
    assert_eq!(checks, expected);
    assert!(exited.stderr.contains(&format!("{} check(s) against", expected.len())), "{}", exited.stderr);
    assert!(exited.stderr.contains("3 at a time"), "{}", exited.stderr);
    // AND as JUnit, one testcase per check
    let exited = fixture.run(&[&all[..], &["--format", "junit"]].concat(), &[]).await;
    exited.expect(0);
    let junit = parse_junit(&exited.stdout);
    let names: Vec<&str> =
        junit["cases"].as_array().expect("cases").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, expected);
    // AND as a table, one passed row per check and one verdict
    let exited = fixture.run(&all, &[]).await;
    exited.expect(0);
    for check in &expected {
        let rows: Vec<&str> = exited.stdout.lines().filter(|l| l.starts_with(&format!("{check:<10}"))).collect();
        assert!(rows.len() == 1 && rows[0].contains("passed"), "{check}: {}", exited.stdout);
    }
    assert!(
        exited.stdout.contains(&format!("PASS: {} passed, 0 degraded, 0 failed", expected.len())),
        "{}",
        exited.stdout
    );
    // AND the sandbox payment of each run was refunded
    let state = fixture.shop.handle().state();
    assert_eq!((state.traffic.real, state.payments.live), (0, 0), "{state:?}");
    fixture.stop().await;
}

#[tokio::test]
async fn tag_runs_only_the_tagged_checks_and_fails_the_gate_when_one_fails() {
    let fixture = Fixture::start().await;
    fixture.shop.handle().set_fault("products", "500").expect("valid fault");
    let folder = checks_folder();
    // WHEN the checkout-tagged checks run while products answers 500
    let exited = fixture.run(&["--tag", "checkout", "--checks-dir", &folder, "--format", "json"], &[]).await;
    // THEN only they ran, and the gate fails on products
    exited.expect(1);
    let runs = run_results(&exited.stdout);
    let checks: Vec<&str> = runs.iter().map(|run| run.check.as_str()).collect();
    assert_eq!(checks, ["payment", "products"]);
    let products = runs.iter().find(|run| run.check == "products").expect("products ran");
    assert_eq!(products.status, Outcome::Failed);
    // AND a tag no check has is refused before any request, naming the tags there are
    let before = fixture.shop.handle().state().traffic.synthetic;
    let exited = fixture.run(&["--tag", "chekout", "--checks-dir", &folder], &[]).await;
    exited.expect(3);
    assert!(
        exited.stderr.contains("--tag chekout: no enabled check of") && exited.stderr.contains("checkout"),
        "{}",
        exited.stderr
    );
    assert_eq!(fixture.shop.handle().state().traffic.synthetic, before, "nothing was sent");
    fixture.stop().await;
}

#[tokio::test]
async fn products_500_fails_with_exit_1_and_well_formed_junit() {
    let fixture = Fixture::start().await;
    fixture.shop.handle().set_fault("products", "500").expect("valid fault");
    // WHEN the gate runs with JUnit output while products answers 500
    let exited = fixture.run(&["--format", "junit"], &[]).await;
    // THEN it exits 1, and the XML parses with one testcase per check and one failure
    exited.expect(1);
    let junit = parse_junit(&exited.stdout);
    assert_eq!(junit["suites"], 1);
    let cases = junit["cases"].as_array().expect("cases");
    let names: Vec<&str> = cases.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["health", "auth", "products", "payment"]);
    let failed: Vec<&Value> = cases.iter().filter(|c| !c["failure"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{junit}");
    let failure = &failed[0]["failure"];
    assert_eq!((failed[0]["name"].as_str(), failure["type"].as_str()), (Some("products"), Some("failed:http_status")));
    assert!(failure["message"].as_str().unwrap_or_default().contains("HTTP 500"), "{failure}");
    assert!(failure["text"].as_str().unwrap_or_default().contains("products failed"), "{failure}");
    assert!(exited.stderr.contains("products ... failed (http_status)"), "{}", exited.stderr);
    fixture.stop().await;
}

#[tokio::test]
async fn a_failed_check_whose_report_cannot_be_written_still_exits_1() {
    // GIVEN a health check against a port nothing listens on, and a stdout that refuses every
    // write (/dev/full), for each format
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let target = format!("http://{}", closed.local_addr().expect("its address"));
    drop(closed);
    let binary = workspace_binary("synthetic").unwrap_or_else(|e| panic!("{e}"));
    for format in ["table", "json", "junit"] {
        // WHEN the gate runs
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let output = std::process::Command::new(&binary)
            .args(["run", "--check", "health", "--target", &target, "--format", format])
            .env("RETRY_BACKOFF_MS", "1")
            .stdout(full)
            .output()
            .expect("synthetic started");
        // THEN the failed check decides the exit code (1 wins over 3), and the lost report is said
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{format}: {stderr}");
        assert!(stderr.contains("cannot write the report"), "{format}: {stderr}");
    }
}

#[tokio::test]
async fn slow_health_is_degraded_exit_2_or_0_with_degraded_ok() {
    let fixture = Fixture::start().await;
    fixture.shop.handle().set_fault("health", "slow:700").expect("valid fault");
    let budget = [("HEALTH_DEGRADED_AFTER_MS", "300")];
    // WHEN health answers correctly but past its degraded budget (a journey variable, as in Lambda)
    let strict = fixture.run(&["--check", "health"], &budget).await;
    // THEN the run is degraded: exit 2, or 0 when degraded counts as a pass
    strict.expect(2);
    assert!(strict.stdout.contains("degraded  timeout"), "{}", strict.stdout);
    let lenient = fixture.run(&["--check", "health", "--degraded-ok"], &budget).await;
    lenient.expect(0);
    assert!(lenient.stdout.contains("PASS: 0 passed, 1 degraded"), "{}", lenient.stdout);
    fixture.stop().await;
}

/// Arguments, extra environment, and what stderr must say.
type UsageCase<'a> = (&'a [&'a str], EnvVars, &'static str);

#[tokio::test]
async fn usage_and_configuration_errors_exit_3_before_any_request() {
    let fixture = Fixture::start().await;
    let url = fixture.shop.base_url();
    let cases: &[UsageCase] = &[
        (&[], &[], "Usage: synthetic"),
        (&["run", "--target", url, "--check", "everything"], &[], "invalid value 'everything'"),
        (&["run", "--check", "health"], &[], "--target <URL>"),
        (&["run", "--target", url, "--format", "yaml"], &[], "invalid value 'yaml'"),
        (
            &["run", "--target", url, "--check", "auth"],
            &[],
            "pass --secret-id ID (Secrets Manager) or --credentials-file",
        ),
        (&["run", "--target", url, "--check", "health", "--publish"], &[], "--publish needs --topic-arn"),
        (
            &["run", "--target", "not a url", "--check", "health"],
            &[],
            "TARGET_BASE_URL must be an absolute http(s) URL",
        ),
        (
            &["run", "--target", "ftp://deploy:hunter2@shop.example.com", "--check", "health"],
            &[],
            "TARGET_BASE_URL must be an absolute http(s) URL without credentials; it carries credentials",
        ),
        (&["run", "--target", url, "--check", "health"], &[("HEALTH_EXPECT_STATUS", "ok")], "HEALTH_EXPECT_STATUS"),
        (&["slo", "--objective", "0"], &[], "expected a percentage above 0"),
        (&["slo", "--history", "/nonexistent/runs.jsonl"], &[], "history file /nonexistent/runs.jsonl"),
    ];
    for (args, env, expected) in cases {
        let exited = synthetic(args, env).await;
        exited.expect(3);
        assert!(exited.stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{}", exited.stderr);
        assert!(!format!("{}{}", exited.stdout, exited.stderr).contains("hunter2"), "{args:?}: {}", exited.stderr);
    }

    // GIVEN a credentials file every user can read
    std::fs::set_permissions(&fixture.credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exited = fixture.run(&["--check", "auth"], &[]).await;
    // THEN it is refused, naming the file and the fix, and nothing reaches the shop
    exited.expect(3);
    let path = fixture.credentials.display().to_string();
    assert!(exited.stderr.contains(&path) && exited.stderr.contains("world-readable"), "{}", exited.stderr);
    assert!(exited.stderr.contains(&format!("chmod 600 {path}")), "{}", exited.stderr);
    assert_eq!(fixture.shop.handle().state().traffic.synthetic, 0, "refused runs send nothing");
    fixture.stop().await;
}

#[tokio::test]
async fn json_lines_are_run_results_and_slo_reports_on_the_history_they_build() {
    let fixture = Fixture::start().await;
    let history = fixture.path("runs.jsonl");
    // GIVEN a healthy run that writes JSON and appends to the history with --history
    let healthy = fixture.run(&["--format", "json", "--history", &history], &[]).await;
    healthy.expect(0);
    let runs = run_results(&healthy.stdout);
    assert_eq!(runs.iter().map(|r| r.check.as_str()).collect::<Vec<_>>(), ["health", "auth", "products", "payment"]);
    assert!(runs.iter().all(|r| r.status == Outcome::Passed && r.env == "cli"), "{runs:#?}");
    // AND a failing products run appended the other documented way, `--format json >> runs.jsonl`
    fixture.shop.handle().set_fault("products", "500").expect("valid fault");
    let failing = fixture.run(&["--check", "products", "--format", "json"], &[]).await;
    failing.expect(1);
    std::fs::OpenOptions::new().append(true).open(&history).unwrap().write_all(failing.stdout.as_bytes()).unwrap();
    let written = std::fs::read_to_string(&history).unwrap();
    assert_eq!(run_results(&written).len(), 5);
    assert_no_secret_in(&[&written]);

    // WHEN the SLO report reads that history: 99 % over 1 h, one run per 5 min
    let args = ["slo", "--history", &history, "--objective", "99", "--window", "1h", "--interval", "5m"];
    let json = synthetic(&[&args[..], &["--format", "json"]].concat(), &[]).await;
    json.expect(0);
    let report: Value = serde_json::from_str(&json.stdout).expect("slo JSON");
    let entry =
        |check: &str| report["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).unwrap().clone();
    // THEN products: 2 runs, 1 failed = 300 s down of 36 s allowed; error rate 0.5 / 0.01 = burn 50
    let products = entry("products");
    assert_eq!((products["runs"].as_u64(), products["failed_runs"].as_u64()), (Some(2), Some(1)), "{products}");
    assert_eq!(products["availability"], 0.5);
    assert_eq!(products["allowed_downtime_secs"], 36.0);
    assert_eq!(products["downtime_consumed_secs"], 300.0);
    assert_eq!(products["remaining_budget_secs"], -264.0);
    assert_eq!(products["budget_consumed_pct"], 833.3333);
    assert_eq!((products["status"].as_str(), products["burn_rate_1h"].as_f64()), (Some("BURNED"), Some(50.0)));
    assert_eq!(products["coverage"], 0.1667, "2 runs × 5 min of 1 h");
    // AND health: 1 passing run, healthy, covering 5 min of the hour
    let health = entry("health");
    assert_eq!((health["status"].as_str(), health["budget_consumed_pct"].as_f64()), (Some("HEALTHY"), Some(0.0)));
    assert_eq!(health["coverage"], 0.0833);

    let table = synthetic(&args, &[]).await;
    table.expect(0);
    let row = table.stdout.lines().find(|l| l.starts_with("products")).expect("products row");
    assert!(row.contains("BURNED") && row.contains("833.3%") && row.contains("50.00"), "{row}");
    // AND an env with no runs in the history reports NO DATA rather than dividing by zero
    let other_env = synthetic(&[&args[..], &["--env", "staging", "--format", "json"]].concat(), &[]).await;
    let report: Value = serde_json::from_str(&other_env.expect(0).stdout).expect("slo JSON");
    assert!(
        report["checks"].as_array().unwrap().iter().all(|c| c["status"] == "NO DATA" && c["burn_rate_1h"].is_null())
    );
    fixture.stop().await;
}

#[tokio::test]
async fn publish_sends_exactly_one_alert_per_check_like_the_lambda() {
    let stack = stack().await;
    let mut env: Vec<(String, String)> = stack.moto.aws_env();
    env.push(("ALERT_TOPIC_ARN".into(), stack.topic_arn.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let base = ["run", "--target", stack.shop.base_url(), "--secret-id", &stack.secret_arn, "--env", "deploy-gate"];
    // WHEN the gate runs without --publish, even with ALERT_TOPIC_ARN set
    synthetic(&base, &env).await.expect(0);
    // THEN nothing is published
    assert!(stack.alerts().await.expect("drain").is_empty(), "no --publish, no alert");

    // WHEN it runs with --publish (the topic from ALERT_TOPIC_ARN) and the account from Secrets Manager
    let exited = synthetic(&[&base[..], &["--publish"]].concat(), &env).await;
    exited.expect(0);
    assert_no_secret_in(&[&exited.stdout, &exited.stderr]);
    // THEN SNS got exactly one resolve per check, with the Lambda's dedup key
    let alerts = stack.alerts().await.expect("drain");
    let mut checks: Vec<&str> = alerts.iter().filter_map(|a| a.body["check"].as_str()).collect();
    checks.sort_unstable();
    assert_eq!(checks, ["auth", "health", "payment", "products"], "{alerts:#?}");
    for alert in &alerts {
        assert_eq!(alert.body["event_action"], "resolve");
        assert_eq!(alert.body["dedup_key"], format!("synthetic/deploy-gate/{}", alert.body["check"].as_str().unwrap()));
        assert_eq!(alert.attributes.get("event_action").map(String::as_str), Some("resolve"));
        assert_no_secret_in(&[&alert.raw]);
    }
    stack.stop().await;
}

/// Starts `synthetic run --check payment` against a slowed payment API, waits until the payment
/// exists (so the signal lands mid-journey, between create and refund), sends `signal`, and
/// asserts the check still refunded it and the run exited 3.
async fn a_stop_signal_mid_payment_refunds_then_exits_3(signal: &str, announced: &str) {
    // GIVEN a payment journey slowed down so the signal lands mid-journey
    let fixture = Fixture::start().await;
    fixture.shop.handle().set_fault("payments", "slow:700").expect("valid fault");
    let binary = workspace_binary("synthetic").unwrap_or_else(|e| panic!("{e}"));
    let credentials = fixture.credentials.display().to_string();
    let child = tokio::process::Command::new(binary)
        .args(["run", "--target", fixture.shop.base_url(), "--credentials-file", &credentials])
        .args(["--check", "payment"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("synthetic started");
    // AND the payment was created and not yet refunded (polled, not guessed with a sleep)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let payments = fixture.shop.handle().state().payments;
        if payments.live == 1 {
            break;
        }
        assert!(payments.refunded == 0, "{signal}: the journey refunded before the signal could land");
        assert!(std::time::Instant::now() < deadline, "{signal}: no payment created within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // WHEN the signal arrives
    let pid = child.id().expect("running");
    assert_eq!(send_signal(signal, pid), 0, "{signal} delivered");
    let output =
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("exits").expect("ran");

    // THEN the payment check finished, refund included, and the stopped run exits 3
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{signal}: {stderr}");
    assert!(stderr.contains(&format!("{announced}: finishing the running check")), "{signal}: {stderr}");
    let state = fixture.shop.handle().state();
    assert_eq!((state.payments.live, state.payments.refunded), (0, 1), "{signal}: {stderr}");
    fixture.stop().await;
}

#[tokio::test]
async fn ctrl_c_lets_the_running_payment_check_clean_up_then_stops() {
    a_stop_signal_mid_payment_refunds_then_exits_3("INT", "interrupted").await;
}

/// CI runners and Kubernetes stop a job with SIGTERM before SIGKILL.
#[tokio::test]
async fn sigterm_lets_the_running_payment_check_clean_up_then_stops() {
    a_stop_signal_mid_payment_refunds_then_exits_3("TERM", "SIGTERM").await;
}

/// A closed terminal or SSH session sends SIGHUP.
#[tokio::test]
async fn sighup_lets_the_running_payment_check_clean_up_then_stops() {
    a_stop_signal_mid_payment_refunds_then_exits_3("HUP", "SIGHUP").await;
}

/// A signal through the `kill` command, so the test needs no libc binding.
fn send_signal(signal: &str, pid: u32) -> i32 {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}

//! The `canary-gate` Lambda end to end: the real binary under the Runtime API emulator, invoked
//! with CodeDeploy's lifecycle hook event, runs the products journey against two demo shops (the
//! stack's shop as the baseline, a second one as the canary) with the synthetic account from
//! moto's Secrets Manager, and reports to the local fake of CodeDeploy's
//! `PutLifecycleEventHookExecutionStatus` ([`synthetic_e2e::fake_codedeploy`]).
//!
//! A passing analysis reports `Succeeded`; a failing or inconclusive one, or a monitor that
//! cannot read its account, `Failed`; the report carries the event's ids, is retried through
//! throttling and 5xx, and a report that cannot be delivered is an invocation error.

use crate::helpers::*;
use serde_json::{Value, json};
use synthetic_e2e::fake_codedeploy::{self, Answer, Call, FakeCodeDeploy};
use synthetic_e2e::lambda_emulator::Invocation;
use synthetic_e2e::shop::{self, RunningShop, ShopConfig};
use synthetic_e2e::stack::INVOKE_TIMEOUT;

/// Two demo shops on loopback answer in a few milliseconds, and a loaded test machine makes that
/// jitter by tens: over the tolerance without significance, which is `inconclusive`. These tests
/// are about the gate's reports, not latency (tests/e2e/canary.rs has the latency rule), so a
/// difference under a second is noise here.
const LOOPBACK_POLICY: &str = "latency_min_difference_ms = 1000";

struct Deploy {
    stack: LocalStack,
    canary: RunningShop,
    codedeploy: FakeCodeDeploy,
    deployment_id: String,
    hook_id: String,
}

/// What one invocation of the gate returned and logged.
struct Hooked {
    invocation: Invocation,
    logs: Vec<String>,
}

impl Hooked {
    /// The gate's response: the status it reported, why, and the analysis.
    fn report(&self) -> &Value {
        match &self.invocation {
            Invocation::Response(body) => body,
            Invocation::Error { error_type, error_message } => {
                panic!("invocation failed: {error_type}: {error_message}\n{}", self.logs.join("\n"))
            }
        }
    }
}

impl Deploy {
    async fn start() -> Deploy {
        let stack = stack().await;
        let canary = shop::spawn(ShopConfig::default()).await.expect("canary shop");
        let codedeploy = fake_codedeploy::spawn().await.expect("fake CodeDeploy");
        // A hook execution id is an opaque token, base64 in CodeDeploy's own examples.
        let hook_id = format!("eyJleGVjdXRpb24iOiI{}=", uuid::Uuid::new_v4().simple());
        let deployment_id = format!("d-{}", &uuid::Uuid::new_v4().simple().to_string()[..9].to_uppercase());
        Deploy { stack, canary, codedeploy, deployment_id, hook_id }
    }

    /// Cold-starts `canary-gate` configured for the two shops and the fake CodeDeploy (plus
    /// `env`), invokes it once with the hook event, and shuts it down.
    async fn hook(&self, env: &[(&str, &str)]) -> Hooked {
        let codedeploy = self.codedeploy.base_url().to_string();
        let mut all = vec![
            ("CANARY_CHECK", "products"),
            ("BASELINE_URL", self.stack.shop.base_url()),
            ("CANARY_URL", self.canary.base_url()),
            ("CANARY_RUNS", "12"),
            ("AWS_ENDPOINT_URL_CODEDEPLOY", codedeploy.as_str()),
            ("HOOK_REPORT_BACKOFF_MS", "10"),
            ("CANARY_POLICY", LOOPBACK_POLICY),
            FAST_RETRY,
        ];
        all.extend_from_slice(env);
        let process = self.stack.spawn_function("canary-gate", &all).await.expect("spawn canary-gate");
        let event = json!({ "DeploymentId": self.deployment_id, "LifecycleEventHookExecutionId": self.hook_id });
        let invocation = process.invoke(event, INVOKE_TIMEOUT).await.expect("invoke");
        let logs = process.logs();
        process.shutdown().await;
        assert_none_leaked(&self.stack.secret_values(), &logs);
        assert_none_leaked(&self.stack.secret_values(), &[format!("{invocation:?}")]);
        assert_logged_at_trace(&logs);
        Hooked { invocation, logs }
    }

    /// Asserts the gate reported `status` in its response and to CodeDeploy, exactly once, for this
    /// deployment's hook execution; returns the response.
    fn assert_reported<'a>(&self, hooked: &'a Hooked, status: &str) -> &'a Value {
        let report = hooked.report();
        assert_eq!(report["status"], status, "{report:#}");
        assert_eq!(report["deployment_id"], self.deployment_id.as_str());
        let expected = Call {
            deployment_id: self.deployment_id.clone(),
            lifecycle_event_hook_execution_id: self.hook_id.clone(),
            status: status.to_string(),
        };
        assert_eq!(self.codedeploy.handle().calls(), [expected], "exactly one report, with the event's ids");
        report
    }

    fn synthetic_traffic(&self) -> [u64; 2] {
        [self.stack.shop.handle().state().traffic.synthetic, self.canary.handle().state().traffic.synthetic]
    }

    async fn stop(self) {
        let _ = self.canary.stop().await;
        let _ = self.codedeploy.stop().await;
        self.stack.stop().await;
    }
}

#[tokio::test]
async fn identical_versions_report_succeeded_for_the_event_s_hook() {
    let deploy = Deploy::start().await;
    let hooked = deploy.hook(&[]).await;
    let analysis = &deploy.assert_reported(&hooked, "Succeeded")["analysis"];
    assert_eq!((&analysis["verdict"], &analysis["runs"]), (&json!("promote"), &json!([12, 12])));
    assert_eq!(deploy.synthetic_traffic(), [24, 24], "login and products on both sides, every run");
    deploy.stop().await;
}

#[tokio::test]
async fn a_canary_failing_a_quarter_of_runs_reports_failed() {
    let deploy = Deploy::start().await;
    deploy.canary.handle().set_fault("products", "flaky:4").expect("valid fault");
    let hooked = deploy.hook(&[("CANARY_RUNS", "20")]).await;
    let report = deploy.assert_reported(&hooked, "Failed");
    assert_eq!(report["reason"], "rollback, decided by: failure rate");
    assert_eq!(report["analysis"]["metrics"][0]["canary"], "25.0% (5/20)");
    deploy.stop().await;
}

/// Issue 20, item 12: a baseline failing every run left each latency "nothing to compare", which
/// held, and the gate reported Succeeded for whatever the canary was.
#[tokio::test]
async fn a_dead_baseline_compares_nothing_and_reports_failed() {
    let deploy = Deploy::start().await;
    deploy.stack.shop.handle().set_fault("products", "500").expect("valid fault");
    let hooked = deploy.hook(&[]).await;
    let report = deploy.assert_reported(&hooked, "Failed");
    assert_eq!(report["analysis"]["verdict"], "inconclusive", "{report:#}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("inconclusive: the baseline stopped answering: no run of it passed"), "{reason}");
    assert!(reason.ends_with("; failure rate; latency products p95"), "{reason}");
    deploy.stop().await;
}

#[tokio::test]
async fn three_runs_report_failed_however_good_they_look() {
    let deploy = Deploy::start().await;
    let hooked = deploy.hook(&[("CANARY_RUNS", "3")]).await;
    let report = deploy.assert_reported(&hooked, "Failed");
    assert_eq!(report["analysis"]["verdict"], "inconclusive");
    assert_eq!(report["reason"], "inconclusive: 3 run(s) per side, fewer than min_runs = 10");
    deploy.stop().await;
}

#[tokio::test]
async fn a_monitor_that_cannot_read_its_account_reports_failed() {
    let deploy = Deploy::start().await;
    let missing = deploy.stack.secret_arn.replace("account", "nobody");
    let hooked = deploy.hook(&[("CREDENTIALS_SECRET_ID", missing.as_str())]).await;
    let reason = deploy.assert_reported(&hooked, "Failed")["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("the monitor could not run, so the gate cannot see: secret"), "{reason}");
    assert_eq!(deploy.synthetic_traffic(), [0, 0], "nothing was sent without the account");
    deploy.stop().await;
}

#[tokio::test]
async fn throttling_and_5xx_from_codedeploy_are_retried() {
    let deploy = Deploy::start().await;
    let transient = [Answer::Throttling, Answer::ServerError, Answer::ServiceUnavailable];
    deploy.codedeploy.handle().fail_next(transient);
    let hooked = deploy.hook(&[]).await;
    deploy.assert_reported(&hooked, "Succeeded");
    assert_eq!(deploy.codedeploy.handle().requests(), 4, "three refusals, then the report");
    deploy.stop().await;
}

/// The invocation error's type and message; panics on a response.
fn invocation_error(hooked: &Hooked) -> (&str, &str) {
    match &hooked.invocation {
        Invocation::Error { error_type, error_message } => (error_type, error_message),
        Invocation::Response(body) => panic!("expected an invocation error, got {body}"),
    }
}

#[tokio::test]
async fn a_codedeploy_that_keeps_failing_is_an_invocation_error_after_the_retries() {
    let deploy = Deploy::start().await;
    deploy.codedeploy.handle().fail_always(Answer::ServerError);
    let hooked = deploy.hook(&[("CANARY_RUNS", "3"), ("HOOK_REPORT_ATTEMPTS", "3")]).await;
    let (error_type, message) = invocation_error(&hooked);
    assert_eq!(error_type, "HookStatusUnreported");
    assert!(message.contains(&format!("the Failed status of deployment {}", deploy.deployment_id)), "{message}");
    assert!(message.contains("InternalFailure"), "{message}");
    assert_eq!(deploy.codedeploy.handle().requests(), 3, "HOOK_REPORT_ATTEMPTS");
    assert!(deploy.codedeploy.handle().calls().is_empty());
    deploy.stop().await;
}

#[tokio::test]
async fn an_unreachable_codedeploy_is_an_invocation_error_never_a_pass() {
    let deploy = Deploy::start().await;
    let unreachable = synthetic_e2e::local_aws::unreachable_endpoint().expect("free port");
    let env = [("AWS_ENDPOINT_URL_CODEDEPLOY", unreachable.as_str()), ("HOOK_REPORT_ATTEMPTS", "2")];
    let hooked = deploy.hook(&env).await;
    let (error_type, message) = invocation_error(&hooked);
    assert_eq!(error_type, "HookStatusUnreported");
    assert!(message.contains("the Succeeded status"), "{message}");
    assert!(hooked.logs.iter().any(|l| l.contains("hook status not reported")), "{:#?}", hooked.logs);
    deploy.stop().await;
}

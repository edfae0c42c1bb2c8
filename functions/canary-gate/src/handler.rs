//! The Lambda handler: one lifecycle hook event in, one canary analysis, one status out.
//!
//! The verdict becomes the hook's status: `promote` is `Succeeded`; `rollback`, `inconclusive`
//! and a monitor that broke (an unreadable account secret, say) are `Failed`, so CodeDeploy rolls
//! back by itself. Collection stops early enough before the Lambda deadline to still report,
//! within the report's whole retry budget: no round starts that would not fit, and every run is
//! bounded by that deadline too, so a target that starts hanging mid-round is cut there (that
//! round counts for neither side, and the side that did not answer stopped answering). Fewer
//! runs than the policy's minimum are inconclusive.
//!
//! The invocation succeeds once CodeDeploy has the status, whatever it is. It fails only when
//! the status could not be reported (or the event names no hook): then nothing has told
//! CodeDeploy, the error and the `Errors` metric say so, and CodeDeploy fails the hook itself when
//! it times out. It never passes silently.

use crate::codedeploy::CodeDeployHooks;
use crate::config::GateConfig;
use crate::hooks::{HookExecution, HookStatus, LifecycleHooks, Unreported};
use aws_lambda_events::event::codedeploy::CodeDeployLifecycleEvent;
use lambda_runtime::{Diagnostic, LambdaEvent, tracing};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use synthetic_checks::aws::{self, secrets_manager::SecretsManagerSource};
use synthetic_checks::canary::{self, Analysis, Collected, Verdict};
use synthetic_checks::discard::Discard;
use synthetic_checks::http::{HttpTarget, ReqwestTarget};
use synthetic_checks::monitor::deadline_from_epoch_ms;
use synthetic_checks::secret::SecretSource;
use synthetic_checks::{CheckError, Monitor};

/// The adapters behind the ports, chosen by whoever builds the gate.
pub struct Adapters {
    pub http: Arc<dyn HttpTarget>,
    pub secrets: Arc<dyn SecretSource>,
    pub hooks: Arc<dyn LifecycleHooks>,
}

pub struct Gate {
    config: GateConfig,
    sides: [Monitor; 2],
    hooks: Arc<dyn LifecycleHooks>,
}

/// What the gate reported, and why: the invocation's response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateReport {
    pub deployment_id: String,
    pub status: HookStatus,
    pub reason: String,
    pub analysis: Analysis,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error(
        "the {status} status of deployment {deployment_id} did not reach CodeDeploy ({reason}); CodeDeploy fails \
         the hook when it times out. The analysis said: {because}"
    )]
    Unreported { deployment_id: String, status: HookStatus, because: String, reason: Unreported },
}

impl GateError {
    /// The Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            GateError::InvalidEvent(_) => "InvalidEvent",
            GateError::Unreported { .. } => "HookStatusUnreported",
        }
    }
}

impl From<GateError> for Diagnostic {
    fn from(error: GateError) -> Diagnostic {
        Diagnostic { error_type: error.error_type().to_string(), error_message: error.to_string() }
    }
}

impl Gate {
    /// The two sides share the HTTP client and one cache of the synthetic account; neither pages
    /// nor emits metrics.
    pub fn new(config: GateConfig, adapters: Adapters) -> Self {
        let side = |side: &synthetic_checks::MonitorConfig| {
            let ports = synthetic_checks::Adapters {
                http: adapters.http.clone(),
                secrets: adapters.secrets.clone(),
                notifier: Arc::new(Discard),
                metrics: Arc::new(Discard),
            };
            Monitor::new(side.clone(), ports)
        };
        let sides = canary::sides(side(&config.baseline), side(&config.canary));
        Gate { config, sides, hooks: adapters.hooks }
    }

    /// Cold start: configuration from the environment, then the SDK and HTTP clients, once.
    pub async fn from_env() -> Result<Self, CheckError> {
        let config = GateConfig::from_env()
            .inspect_err(|error| tracing::error!(error_type = error.error_type(), %error, "cold start failed"))?;
        let sdk = aws::sdk_config().await;
        let adapters = Adapters {
            http: Arc::new(ReqwestTarget::new(&config.baseline.http)?),
            secrets: Arc::new(SecretsManagerSource::new(&sdk)),
            hooks: Arc::new(CodeDeployHooks::new(&sdk, config.report)),
        };
        Ok(Gate::new(config, adapters))
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    pub async fn handle(&self, event: LambdaEvent<CodeDeployLifecycleEvent>) -> Result<GateReport, GateError> {
        let execution = execution(&event.payload)?;
        let deadline = deadline_from_epoch_ms(event.context.deadline, self.config.report.budget());
        tracing::info!(
            deployment_id = %execution.deployment_id,
            check = %self.config.canary.journey.check,
            baseline = %self.config.baseline.target,
            canary = %self.config.canary.target,
            "canary analysis started"
        );
        let (collected, cut_short) = self.collect(deadline).await;
        let analysis = canary::analyse(&collected.baseline, &collected.canary, &self.config.policy);
        for metric in &analysis.metrics {
            tracing::info!(
                metric = %metric.name,
                result = metric.result.as_str(),
                baseline = %metric.baseline,
                canary = %metric.canary,
                threshold = %metric.threshold,
                p_value = metric.p_value,
                why = %metric.why,
                "canary metric"
            );
        }
        let (status, mut reason) = match (&collected.broke, analysis.verdict) {
            (Some(error), _) => {
                (HookStatus::Failed, format!("the monitor could not run, so the gate cannot see: {error}"))
            }
            (None, Verdict::Promote) => (HookStatus::Succeeded, "promote: every metric is ok".to_string()),
            (None, Verdict::Rollback) => {
                (HookStatus::Failed, format!("rollback, decided by: {}", analysis.decided_by.join(", ")))
            }
            (None, Verdict::Inconclusive) => {
                (HookStatus::Failed, format!("inconclusive: {}", analysis.decided_by.join("; ")))
            }
        };
        if cut_short {
            reason.push_str(&format!(
                " (collection stopped after {} round(s) to report before the Lambda deadline)",
                collected.rounds
            ));
        }
        tracing::info!(deployment_id = %execution.deployment_id, %status, %reason, "reporting the hook status");
        if let Err(unreported) = self.hooks.report(&execution, status).await {
            let error = GateError::Unreported {
                deployment_id: execution.deployment_id,
                status,
                because: reason,
                reason: unreported,
            };
            tracing::error!(error_type = error.error_type(), %error, "hook status not reported");
            return Err(error);
        }
        Ok(GateReport { deployment_id: execution.deployment_id, status, reason, analysis })
    }

    /// Rounds until the limit is used up, the monitor breaks (nothing after that can be trusted),
    /// or the deadline: no round starts unless one of the longest length so far fits before it,
    /// and every run inside a round is bounded by it too, so a run that hangs is cut there.
    /// Returns whether the deadline cut the collection short.
    async fn collect(&self, deadline: Option<Instant>) -> (Collected, bool) {
        let started = Instant::now();
        let mut collected = Collected::default();
        while self.config.limit.allows(started, collected.rounds) && collected.broke.is_none() {
            if !collected.round_fits(deadline) {
                return (collected, true);
            }
            collected.round(&self.sides, deadline).await;
            if collected.cut {
                return (collected, true);
            }
        }
        (collected, false)
    }
}

fn execution(event: &CodeDeployLifecycleEvent) -> Result<HookExecution, GateError> {
    let missing = |field: &str| {
        GateError::InvalidEvent(format!(
            "{field} is empty: expected a CodeDeploy lifecycle hook event, {{\"DeploymentId\": ..., \
             \"LifecycleEventHookExecutionId\": ...}}"
        ))
    };
    if event.deployment_id.trim().is_empty() {
        return Err(missing("DeploymentId"));
    }
    if event.lifecycle_event_hook_execution_id.trim().is_empty() {
        return Err(missing("LifecycleEventHookExecutionId"));
    }
    Ok(HookExecution {
        deployment_id: event.deployment_id.clone(),
        lifecycle_event_hook_execution_id: event.lifecycle_event_hook_execution_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::RecordingHooks;
    use lambda_runtime::Context;
    use std::time::Duration;
    use std::time::{SystemTime, UNIX_EPOCH};
    use synthetic_checks::alert::PublishError;
    use synthetic_checks::http::{HttpResponse, ScriptedTarget};
    use synthetic_checks::secret::InMemorySecrets;

    const DEPLOYMENT: &str = "d-ABCDEF123";
    const HOOK: &str = "eyJlbmNyeXB0ZWREYXRhIjoiYWJjIn0=";
    const HEALTHY: &str = r#"{"status":"ok"}"#;

    struct Harness {
        gate: Gate,
        target: Arc<ScriptedTarget>,
        hooks: Arc<RecordingHooks>,
    }

    /// A gate on the health journey (one request per run, no account) with `vars` on top.
    fn harness(target: ScriptedTarget, vars: &[(&str, &str)]) -> Harness {
        let mut all = vec![
            ("CANARY_CHECK", "health"),
            ("BASELINE_URL", "http://shop.test"),
            ("CANARY_URL", "http://canary.shop.test"),
            ("RETRY_ATTEMPTS", "1"),
            ("CANARY_RUNS", "10"),
        ];
        all.extend_from_slice(vars);
        let lookup = |name: &str| all.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let config = GateConfig::from_lookup(&lookup).unwrap();
        let (target, hooks) = (Arc::new(target), Arc::new(RecordingHooks::default()));
        let adapters =
            Adapters { http: target.clone(), secrets: Arc::new(InMemorySecrets::default()), hooks: hooks.clone() };
        Harness { gate: Gate::new(config, adapters), target, hooks }
    }

    /// `rounds` rounds, each answering the baseline then the canary.
    fn script(rounds: usize, baseline: (u16, &str), canary: (u16, &str)) -> ScriptedTarget {
        (0..rounds).fold(ScriptedTarget::default(), |t, _| t.then(baseline.0, baseline.1).then(canary.0, canary.1))
    }

    fn hook_event() -> LambdaEvent<CodeDeployLifecycleEvent> {
        let payload = serde_json::json!({ "DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": HOOK });
        LambdaEvent::new(serde_json::from_value(payload).unwrap(), Context::default())
    }

    fn reported(h: &Harness) -> Vec<(String, String, HookStatus)> {
        let calls = h.hooks.delivered().into_iter();
        calls.map(|(e, s)| (e.deployment_id, e.lifecycle_event_hook_execution_id, s)).collect()
    }

    #[tokio::test]
    async fn identical_versions_report_succeeded_for_the_event_s_hook() {
        let h = harness(script(10, (200, HEALTHY), (200, HEALTHY)), &[]);
        let report = h.gate.handle(hook_event()).await.unwrap();
        assert_eq!((report.status, report.analysis.verdict), (HookStatus::Succeeded, Verdict::Promote));
        assert_eq!(reported(&h), [(DEPLOYMENT.to_string(), HOOK.to_string(), HookStatus::Succeeded)]);
        let hosts: Vec<String> = h.target.requests().iter().map(|r| r.url.host_str().unwrap().to_string()).collect();
        assert_eq!(hosts.len(), 20);
        assert!(hosts.chunks(2).all(|pair| pair == ["shop.test", "canary.shop.test"]), "interleaved: {hosts:?}");
    }

    #[tokio::test]
    async fn a_failing_canary_reports_failed_and_names_the_metric() {
        let h = harness(script(10, (200, HEALTHY), (503, "down")), &[]);
        let report = h.gate.handle(hook_event()).await.unwrap();
        assert_eq!((report.status, report.analysis.verdict), (HookStatus::Failed, Verdict::Rollback));
        assert_eq!(report.reason, "rollback, decided by: failure rate");
        assert_eq!(reported(&h)[0].2, HookStatus::Failed);
    }

    #[tokio::test]
    async fn too_few_runs_report_failed_however_good_they_look() {
        let h = harness(script(3, (200, HEALTHY), (200, HEALTHY)), &[("CANARY_RUNS", "3")]);
        let report = h.gate.handle(hook_event()).await.unwrap();
        assert_eq!((report.status, report.analysis.verdict), (HookStatus::Failed, Verdict::Inconclusive));
        assert!(report.reason.starts_with("inconclusive: 3 run(s) per side, fewer than min_runs = 10"), "{report:?}");
    }

    #[tokio::test]
    async fn a_monitor_that_cannot_run_reports_failed_and_stops() {
        // GIVEN the products journey, whose account secret cannot be read
        let h = harness(ScriptedTarget::default(), &[("CANARY_CHECK", "products"), ("CREDENTIALS_SECRET_ID", "gone")]);
        let report = h.gate.handle(hook_event()).await.unwrap();
        assert_eq!(report.status, HookStatus::Failed);
        assert!(report.reason.starts_with("the monitor could not run, so the gate cannot see:"), "{report:?}");
        assert!(h.target.requests().is_empty(), "nothing was sent without the account");
        assert_eq!(reported(&h).len(), 1);
    }

    #[tokio::test]
    async fn a_deadline_too_close_to_collect_still_reports_failed() {
        let h = harness(script(10, (200, HEALTHY), (200, HEALTHY)), &[]);
        let mut event = hook_event();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        // Less than the report's budget is left: no round fits, the report still does.
        event.context.deadline = now_ms + h.gate.config().report.budget().as_millis() as u64 - 1_000;
        let report = h.gate.handle(event).await.unwrap();
        assert_eq!(report.status, HookStatus::Failed);
        assert!(report.reason.contains("stopped after 0 round(s) to report before the Lambda deadline"), "{report:?}");
        assert!(h.target.requests().is_empty());
    }

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    /// Issue 20, item 13: the deadline was checked between rounds only, so a canary that started
    /// hanging mid-round kept the gate past the Lambda deadline, and CodeDeploy heard nothing.
    #[tokio::test]
    async fn a_canary_hanging_mid_round_still_gets_its_status_reported_before_the_deadline() {
        // GIVEN a canary that answers twice, then hangs for longer than the Lambda has left
        let hang = Ok(HttpResponse::with(200, HEALTHY));
        let target =
            script(2, (200, HEALTHY), (200, HEALTHY)).then(200, HEALTHY).then_after(Duration::from_secs(60), hang);
        let vars = [("HEALTH_FAIL_AFTER_MS", "20000"), ("HOOK_REPORT_ATTEMPTS", "1")];
        let h = harness(target, &vars);
        let mut event = hook_event();
        // 2 s to collect, then the report's 5 s
        event.context.deadline = now_ms() + h.gate.config().report.budget().as_millis() as u64 + 2_000;
        // WHEN the gate runs
        let report = h.gate.handle(event.clone()).await.unwrap();
        // THEN the hanging run was cut at the deadline, and the status reached CodeDeploy in time
        assert!(now_ms() < event.context.deadline, "reported after the Lambda deadline: {report:?}");
        assert_eq!(reported(&h).len(), 1);
        assert_eq!((report.status, report.analysis.verdict), (HookStatus::Failed, Verdict::Inconclusive));
        assert!(report.reason.contains("the canary stopped answering"), "{report:?}");
        assert_eq!(report.analysis.runs, [2, 2], "the cut round is not a run of either side");
    }

    /// Issue 20, item 14: failed runs are slow and passing ones fast, so a canary that stopped
    /// answering near the end was one failed run in hundreds, under the ceiling: promoted.
    #[tokio::test]
    async fn a_canary_that_stops_answering_is_judged_by_time_not_by_runs() {
        // GIVEN 200 fast rounds, then a canary run that times out after 1.5 s
        let timeout = Ok(HttpResponse::with(200, HEALTHY));
        let target =
            script(200, (200, HEALTHY), (200, HEALTHY)).then(200, HEALTHY).then_after(Duration::from_secs(60), timeout);
        let h = harness(target, &[("CANARY_RUNS", "201"), ("HEALTH_FAIL_AFTER_MS", "1500")]);
        let report = h.gate.handle(hook_event()).await.unwrap();
        // THEN 1 failed run in 201 is under the 1% ceiling, but it failed most of the time
        assert_eq!(report.analysis.runs, [201, 201]);
        assert_eq!(
            (report.status, report.analysis.verdict),
            (HookStatus::Failed, Verdict::Inconclusive),
            "{report:#?}"
        );
        assert!(report.reason.contains("the canary stopped answering"), "{report:?}");
    }

    #[tokio::test]
    async fn a_status_that_cannot_be_reported_is_an_invocation_error() {
        let h = harness(script(3, (200, HEALTHY), (200, HEALTHY)), &[("CANARY_RUNS", "3")]);
        h.hooks.fail_with([PublishError::Retryable("HTTP 503 after 5 attempts".into())]);
        let error = h.gate.handle(hook_event()).await.unwrap_err();
        assert_eq!(error.error_type(), "HookStatusUnreported");
        let diagnostic = Diagnostic::from(error);
        assert!(diagnostic.error_message.contains("the Failed status of deployment d-ABCDEF123"), "{diagnostic:?}");
        assert!(diagnostic.error_message.contains("inconclusive: 3 run(s)"), "{diagnostic:?}");
    }

    #[tokio::test]
    async fn an_event_without_ids_is_refused_and_nothing_runs() {
        let h = harness(ScriptedTarget::default(), &[]);
        for payload in [
            serde_json::json!({ "DeploymentId": "", "LifecycleEventHookExecutionId": HOOK }),
            serde_json::json!({ "DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": " " }),
        ] {
            let event = LambdaEvent::new(serde_json::from_value(payload).unwrap(), Context::default());
            assert_eq!(h.gate.handle(event).await.unwrap_err().error_type(), "InvalidEvent");
        }
        assert!(h.target.requests().is_empty() && reported(&h).is_empty());
    }
}

//! What the property tests of this folder share: one journey run against a scripted target, on a
//! runtime of its own, with the account as the credentials secret.

use std::sync::Arc;
use std::time::Duration;
use synthetic_checks::http::{HttpRequest, ScriptedTarget};
use synthetic_checks::journey::{RetryPolicy, RunSetup, StepRecorder};
use synthetic_checks::secret::{CredentialStore, InMemorySecrets};
use synthetic_checks::{JourneyDef, RunResult};

/// Runs `journey_def` against `target` (base URL `base`), one retry with no backoff; the run's
/// result and every request the target received, as sent.
pub fn run_journey(
    journey_def: &JourneyDef,
    target: ScriptedTarget,
    base: &str,
    account: &serde_json::Value,
) -> (RunResult, Vec<HttpRequest>) {
    let target = Arc::new(target);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = runtime.block_on(async {
        let store = CredentialStore::new(
            Arc::new(InMemorySecrets::with("acct", &account.to_string())),
            "acct",
            Duration::from_secs(300),
        );
        let mut journey = StepRecorder::new(RunSetup {
            http: target.clone(),
            check: journey_def.check.clone(),
            env: "test".into(),
            target: base.parse().unwrap(),
            run_id: "run-1".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 2, backoff: Duration::ZERO },
            max_redirects: 3,
            deadline: None,
            trace: None,
        });
        synthetic_checks::journey::run(journey_def, &mut journey, Some(&store)).await.unwrap();
        journey.finish()
    });
    (run, target.requests())
}

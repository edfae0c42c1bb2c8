//! The port the gate reports through: one hook execution's final status, as CodeDeploy's
//! `PutLifecycleEventHookExecutionStatus` takes it, and an in-memory fake for unit tests.

use async_trait::async_trait;
use serde::Serialize;
use std::fmt;
use synthetic_checks::alert::Recording;

/// The two statuses a Lambda validation function may report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HookStatus {
    Succeeded,
    Failed,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "Succeeded",
            HookStatus::Failed => "Failed",
        }
    }
}

impl fmt::Display for HookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lifecycle hook execution CodeDeploy invoked the function for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookExecution {
    pub deployment_id: String,
    /// Opaque; CodeDeploy matches the report to the waiting hook by it.
    pub lifecycle_event_hook_execution_id: String,
}

/// A status that did not reach CodeDeploy, after the adapter's retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreported(pub String);

/// Port: where a hook execution's status goes (CodeDeploy in Lambda, memory in unit tests).
#[async_trait]
pub trait LifecycleHooks: Send + Sync {
    /// Reports the final status of `execution`. The adapter retries what a retry can fix; an
    /// error means CodeDeploy does not know.
    async fn report(&self, execution: &HookExecution, status: HookStatus) -> Result<(), Unreported>;
}

/// Records every status reported; can be told to fail first (the checks' delivery fake).
pub type RecordingHooks = Recording<(HookExecution, HookStatus)>;

#[async_trait]
impl LifecycleHooks for Recording<(HookExecution, HookStatus)> {
    async fn report(&self, execution: &HookExecution, status: HookStatus) -> Result<(), Unreported> {
        self.deliver((execution.clone(), status)).map_err(|e| Unreported(format!("{e:?}")))
    }
}

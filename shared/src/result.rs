//! What a run produces: one [`RunResult`] with a [`StepResult`] per step.
//!
//! These types are the product's output (the Lambda's answer, the alert, the EMF records, the
//! CLI's reports, the forwarder's input), so they live apart from the code that produces them:
//! a crate that reads results imports this module, not the journey runner.

use crate::error::Cause;
use crate::http::Certificate;
use serde::{Deserialize, Serialize};

/// Ordered from best to worst, so the worst step is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Degraded,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub outcome: Outcome,
    /// The attempt that decided the outcome.
    pub duration_ms: u64,
    pub status: Option<u16>,
    pub attempts: u32,
    pub cause: Option<Cause>,
    pub error: Option<String>,
}

/// What the run learned about the synthetic account, when its journey signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// A login step passed: the account works.
    Accepted,
    /// A login step was answered with a rejected status, even after a secret refresh.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub check: String,
    pub env: String,
    pub target: String,
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub status: Outcome,
    pub cause: Option<Cause>,
    pub steps: Vec<StepResult>,
    /// Absent when the journey has no login step, or its login failed for another reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// The target's leaf certificate, from the run's first answer over HTTPS; absent over plain
    /// HTTP, when no answer came, and in results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    /// The W3C trace id every request of the run carried; absent when trace context is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl RunResult {
    /// The step that decided the run's cause: the first failed one, else the first degraded one.
    pub fn deciding_step(&self) -> Option<&StepResult> {
        [Outcome::Failed, Outcome::Degraded].iter().find_map(|worst| self.steps.iter().find(|s| s.outcome == *worst))
    }
}

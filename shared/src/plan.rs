//! The deployment plan: every check's deploy settings, worked out once from the checks folder.
//!
//! `synthetic plan --format json` prints it, the template generator reads it, and the forwarder
//! is deployed with it (`CHECK_PLAN_FILE`), so that the checks, their infrastructure and the one
//! evaluator of their runs agree on which checks exist, how often they run and what they depend
//! on. Nothing here is computed: the producer fills it in, the consumers only read it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub checks: Vec<PlannedCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedCheck {
    /// The journey's `check`, which is also its file's stem and its function's suffix.
    pub name: String,
    pub schedule_minutes: u32,
    /// The regions it runs in; empty: every region of the deployment.
    pub regions: Vec<String>,
    pub tags: Vec<String>,
    /// Checks whose failure explains this one's: while one of them fails, this one does not page.
    pub depends_on: Vec<String>,
    pub enabled: bool,
    /// From the same arithmetic that enforces the journey's budgets and the alert reserve.
    pub timeout_seconds: u32,
    pub reads_account_secret: bool,
    /// SHA-256 (lowercase hex) of the journey file as validated; the check verifies it at cold start.
    pub journey_sha256: String,
}

impl Plan {
    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn check(&self, name: &str) -> Option<&PlannedCheck> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The checks that are deployed and scheduled.
    pub fn enabled(&self) -> impl Iterator<Item = &PlannedCheck> {
        self.checks.iter().filter(|check| check.enabled)
    }
}

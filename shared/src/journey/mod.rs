//! Journeys, read from the folder in the order a run goes through them:
//!
//! 1. [`file`](mod@file): the TOML a team writes, parsed and validated into a [`JourneyDef`] (every
//!    mistake with its line and column). Parsing knows nothing of how a journey runs.
//! 2. [`template`]: the `{{...}}` values in it, and how each is encoded where it lands.
//! 3. [`runner`]: runs a [`JourneyDef`] step by step: renders each step, keeps captures,
//!    re-reads a rotated secret, and always runs the cleanup steps.
//! 4. [`exchange`]: one step on the wire through the [`StepRecorder`]: budgets, retries,
//!    redirects within the target, cookies, and exactly one recorded result per step.
//! 5. [`judge`]: what an answer means: status, assertions, captures, latency.
//!
//! What a run produces is in [`crate::result`], apart from the code that produces it.

pub mod exchange;
pub mod extract;
pub mod file;
pub mod judge;
pub mod runner;
pub mod template;
#[cfg(test)]
mod templated_values;
#[cfg(test)]
mod typed_values;
#[cfg(test)]
mod write_faults;

pub use exchange::{RetryPolicy, RunSetup, StepFailed, StepRecorder, StepSpec, join};
pub use file::{
    Budget, Capture, CaptureSource, ExpectedStatus, InheritedDefaults, JourneyDef, Problem, Problems, StepRole,
};
pub use runner::run;

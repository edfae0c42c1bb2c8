//! The check library behind the synthetic-monitoring Lambdas.
//!
//! A check is a journey file, run through the stages of [`journey`]: the file is parsed and
//! validated, its `{{...}}` templates rendered for secrets and captured values, each step put on
//! the wire and its answer judged. What a run produces is a [`result`]. The run reads the
//! synthetic account from a [`secret`] source and reports through a [`metrics`] sink and an
//! [`alert`] notifier. Those are ports: [`aws`] and [`http`] hold the
//! real adapters, and each port has an in-memory fake beside it for unit tests. [`Monitor`]
//! wires them into a Lambda handler; [`Check`] names the four built-in journeys. [`canary`]
//! compares two versions of a service on one journey, for the CLI and the CodeDeploy gate.

pub mod alert;
pub mod aws;
pub mod canary;
pub mod catalog;
pub mod checks;
pub mod config;
pub mod cost;
pub mod discard;
pub mod error;
pub mod http;
pub mod journey;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod plan;
pub mod result;
pub mod secret;
pub mod text;
pub mod trace;

pub use checks::Check;
pub use config::MonitorConfig;
pub use error::{Cause, CheckError};
pub use journey::{JourneyDef, Problems};
pub use monitor::{Adapters, Monitor};
pub use result::{Account, Outcome, RunResult, StepResult};

//! The check library behind the synthetic-monitoring Lambdas.
//!
//! A check is a journey file ([`definition`]): HTTP steps against the monitored service, with
//! `{{...}}` [`template`]s for secrets and captured values. The [`engine`] runs it through the
//! step recorder ([`journey`]: budgets, retries, redirects, cookies), judges each answer
//! ([`assertion`]), reads the synthetic account from a [`secret`] source, and reports through a
//! [`metrics`] sink and an [`alert`] notifier. Those are ports: [`aws`] and [`http`] hold the
//! real adapters, and each port has an in-memory fake beside it for unit tests. [`Monitor`]
//! wires them into a Lambda handler; [`Check`] names the four built-in journeys. [`canary`]
//! compares two versions of a service on one journey, for the CLI and the CodeDeploy gate.

pub mod alert;
pub mod assertion;
pub mod aws;
pub mod canary;
pub mod checks;
pub mod config;
pub mod definition;
pub mod discard;
pub mod engine;
pub mod error;
pub mod http;
pub mod journey;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod secret;
pub mod template;
pub mod text;

pub use checks::Check;
pub use config::MonitorConfig;
pub use definition::{JourneyDef, Problems};
pub use error::{Cause, CheckError};
pub use journey::{Outcome, RunResult, StepResult};
pub use monitor::{Adapters, Monitor};

//! The check library behind the synthetic-monitoring Lambdas.
//!
//! A [`Check`] is a journey of HTTP steps against the monitored service. The library runs it
//! with per-step budgets and retries ([`journey`]), judges each answer ([`assertion`]), reads the
//! synthetic account from a [`secret`] source, and reports through a [`metrics`] sink and an
//! [`alert`] notifier. Those are ports: [`aws`] and [`http`] hold the real adapters, and each
//! port has an in-memory fake beside it for unit tests. [`Monitor`] wires them into a Lambda
//! handler.

pub mod alert;
pub mod assertion;
pub mod aws;
pub mod checks;
pub mod config;
pub mod error;
pub mod http;
pub mod journey;
pub mod metrics;
pub mod monitor;
pub mod secret;
pub mod text;

pub use checks::Check;
pub use config::MonitorConfig;
pub use error::{Cause, CheckError};
pub use journey::{Outcome, RunResult, StepResult};
pub use monitor::{Adapters, Monitor};

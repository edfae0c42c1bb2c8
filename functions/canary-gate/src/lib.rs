//! The `canary-gate` Lambda: the canary analysis of `synthetic canary` as an AWS CodeDeploy
//! lifecycle hook.
//!
//! CodeDeploy invokes the function at `BeforeAllowTraffic` or `AfterAllowTraffic` with a
//! deployment id and a hook execution id. The [`Gate`] runs one journey against the baseline and
//! the canary, interleaved, decides with the shared [`synthetic_checks::canary`] analysis and a
//! policy ([`config`]), and reports the verdict through the [`LifecycleHooks`] port ([`hooks`];
//! the CodeDeploy adapter is [`codedeploy`]): `Succeeded` on promote, `Failed` on rollback, on
//! an inconclusive analysis and when the monitor itself broke, because a gate that cannot see
//! must not open. A status that cannot be reported is an invocation error, never a silent pass.

pub mod codedeploy;
pub mod config;
pub mod handler;
pub mod hooks;

pub use config::{GateConfig, ReportRetry};
pub use handler::{Adapters, Gate, GateError, GateReport};
pub use hooks::{HookExecution, HookStatus, LifecycleHooks, RecordingHooks, Unreported};

//! End-to-end tests: the real function binaries (checks, PagerDuty forwarder, canary gate) under
//! the Lambda Runtime API emulator and the `synthetic` CLI as a process, against the demo shop,
//! over moto's Secrets Manager, SNS and SQS on loopback.
//!
//! Needs `cargo build --workspace --bins` first and moto (`make tools`); `make test` does both.

mod api_shapes;
mod canary;
mod canary_gate;
mod certificates;
mod checks;
mod cli;
mod delivery;
mod docs;
mod health_body;
mod helpers;
mod hostile;
mod incidents;
mod journey_schema;
mod journeys;
mod one_page;
mod pagerduty;
mod payments;
mod redirects;
mod trace_context;

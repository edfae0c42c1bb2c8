//! End-to-end tests: the real check binaries under the Lambda Runtime API emulator, against the
//! demo shop, over moto's Secrets Manager, SNS and SQS on loopback.
//!
//! Needs `cargo build --workspace --bins` first and moto (`make tools`); `make test` does both.

mod canary;
mod certificates;
mod checks;
mod cli;
mod delivery;
mod health_body;
mod helpers;
mod hostile;
mod incidents;
mod journeys;
mod pagerduty;
mod payments;
mod redirects;

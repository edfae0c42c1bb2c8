//! `check-search`: the public product search finds a known product (`journey.toml`).
//!
//! Configuration is documented in the README; this binary only wires the library into Lambda.

use lambda_runtime::{Error, run, service_fn};
use synthetic_checks::Monitor;

#[tokio::main]
async fn main() -> Result<(), Error> {
    synthetic_checks::logging::init();
    // Built once per cold start: the journey beside this crate, config (errors name the variable), SDK and HTTP clients.
    let monitor = Monitor::from_env(include_str!("../journey.toml")).await?;
    run(service_fn(|event| monitor.handle(event))).await
}

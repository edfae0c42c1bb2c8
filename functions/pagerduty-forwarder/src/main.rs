//! `pagerduty-forwarder`: alert messages from SNS in, PagerDuty Events API v2 events out.
//!
//! Configuration is documented in the README; this binary only wires the library into Lambda.

use lambda_runtime::{Error, run, service_fn};
use pagerduty_forwarder::Forwarder;

#[tokio::main]
async fn main() -> Result<(), Error> {
    synthetic_checks::logging::init();
    // Built once per cold start: config (errors name the variable), SDK and HTTP clients.
    let forwarder = Forwarder::from_env().await?;
    run(service_fn(|event| forwarder.invoke(event))).await
}

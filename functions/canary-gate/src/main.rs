//! `canary-gate`: a CodeDeploy lifecycle hook (BeforeAllowTraffic / AfterAllowTraffic) that
//! compares the new version with the baseline on one journey and reports Succeeded or Failed.
//!
//! Configuration is documented in the README; this binary only wires the library into Lambda.

use canary_gate::Gate;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    synthetic_checks::logging::init();
    // Built once per cold start: config (errors name the variable), SDK and HTTP clients.
    let gate = Gate::from_env().await?;
    run(service_fn(|event| gate.handle(event))).await
}

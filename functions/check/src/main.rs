//! `check`: the one binary of every check function. `CHECK_NAME` selects the journey among the
//! checks folder packaged beside it (`checks/<name>.toml`), verified at cold start against
//! `CHECK_JOURNEY_SHA256`, so adding a check compiles and links nothing.
//!
//! Configuration is documented in the README; this binary only wires the library into Lambda.

use lambda_runtime::{Error, run, service_fn};
use synthetic_checks::Monitor;

#[tokio::main]
async fn main() -> Result<(), Error> {
    synthetic_checks::logging::init();
    // Built once per cold start: the verified journey, config (errors name the variable), SDK and HTTP clients.
    let monitor = Monitor::from_env().await?;
    run(service_fn(|event| monitor.handle(event))).await
}

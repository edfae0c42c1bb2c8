//! `synthetic`: the check journeys from the command line, as a post-deploy smoke gate
//! (`synthetic run`) and an SLO error-budget report (`synthetic slo`). Not a Lambda: it needs no
//! runtime. Everything lives in the library; this only hands it the arguments.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    synthetic_checks::logging::scrub_panics();
    synthetic_cli::main(std::env::args_os()).await
}

//! The `synthetic` command line, built on the same check library as the Lambdas.
//!
//! - `synthetic run` runs the journeys once against a target, typically a fresh deploy or its
//!   canary, and gates the pipeline on the exit code ([`run`]): the four built-in checks, or
//!   any journey file.
//! - `synthetic validate` checks journey files and reports every mistake at its line and
//!   column ([`validate`]).
//! - `synthetic slo` reports each check's error budget from CloudWatch or from a JSON-lines
//!   history of run results ([`slo_report`], with the arithmetic in [`slo`]).
//!
//! - `synthetic silence` adds, lists and ends planned-work silences in the forwarder's state
//!   table ([`silence`]).
//!
//! Exit codes are part of the interface; see [`Exit`].

pub mod canary;
pub mod cloudwatch;
pub mod concurrent;
pub mod credentials;
pub mod history;
pub mod output;
pub mod plan;
pub mod run;
pub mod silence;
pub mod slo;
pub mod slo_report;
pub mod style;
pub mod validate;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use synthetic_checks::Check;

/// The process exit status. `Error` is also what clap's own argument errors exit with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every check passed (or was degraded, with `--degraded-ok`); `slo` produced its report.
    Passed = 0,
    /// At least one check failed.
    Failed = 1,
    /// No check failed, but at least one was degraded (slow but correct).
    Degraded = 2,
    /// Bad arguments or configuration, or the monitor itself could not run (unreadable secret,
    /// undeliverable alert, unreadable history or metrics).
    Error = 3,
}

impl Exit {
    /// The more serious of two verdicts. A failed check outranks a monitor error: it is news about
    /// the target whatever else happened. A monitor error outranks a degraded check: the gate
    /// could not vouch for one check.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |exit: Exit| match exit {
            Exit::Passed => 0,
            Exit::Degraded => 1,
            Exit::Error => 2,
            Exit::Failed => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed (degraded too, with --degraded-ok); slo: the report was produced
  1  at least one check failed
  2  no check failed, at least one was degraded
  3  usage or configuration error, or the monitor itself could not run";

#[derive(Debug, Parser)]
#[command(
    name = "synthetic",
    version,
    about = "Synthetic-monitoring journeys from the command line: a post-deploy smoke gate, journey-file validation and SLO error-budget reports.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run checks once against a target and exit with their verdict.
    Run(RunArgs),
    /// Check journey files: every mistake with its file:line:column; exit 3 on any, 0 when all are valid.
    Validate(ValidateArgs),
    /// Compare a canary with its baseline on one journey, interleaved; promote, roll back or say
    /// it cannot tell (exit 0, 1 or 2).
    Canary(CanaryArgs),
    /// Error-budget report per check, from CloudWatch or from a history file of run results.
    Slo(SloArgs),
    /// Planned-work silences: while one covers a check, its runs are recorded and nothing pages.
    Silence(silence::SilenceArgs),
    /// The deployment plan of a checks folder: each check's schedule, regions, timeout,
    /// dependencies and tags (a table, or JSON for tools), or the template's generated part.
    Plan(PlanArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    All,
    Health,
    Auth,
    Products,
    Payment,
}

/// The checks named on the command line, in `Check::ALL` order, without repeats.
pub fn selected_checks(args: &[CheckArg]) -> Vec<Check> {
    let wanted = |check: Check| {
        args.iter().any(|arg| match arg {
            CheckArg::All => true,
            CheckArg::Health => check == Check::Health,
            CheckArg::Auth => check == Check::Auth,
            CheckArg::Products => check == Check::Products,
            CheckArg::Payment => check == Check::Payment,
        })
    };
    Check::ALL.into_iter().filter(|check| wanted(*check)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// A readable table; colors only on a terminal, never with NO_COLOR set.
    Table,
    /// One run result per line (JSON lines), the format `slo --history` reads.
    Json,
    /// JUnit XML: one testsuite, one testcase per check.
    Junit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SloFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Built-in checks to run: all, or a comma-separated list. The default is all, unless
    /// --journey is given.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub check: Vec<CheckArg>,
    /// A journey file to run (repeatable), e.g. checks/search.toml.
    #[arg(long, value_name = "FILE")]
    pub journey: Vec<PathBuf>,
    /// Every enabled check of the checks folder (--checks-dir), as one gate.
    #[arg(long, conflicts_with_all = ["check", "journey"])]
    pub all: bool,
    /// The enabled checks of the checks folder tagged NAME (`[deploy] tags`); repeatable, a
    /// check with any of the tags runs.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["check", "journey", "all"])]
    pub tag: Vec<String>,
    /// The checks folder that --all and --tag read.
    #[arg(long, value_name = "DIR", env = "CHECKS_DIR", default_value = "checks")]
    pub checks_dir: PathBuf,
    /// Base URL of the service to check, e.g. the canary of a fresh deploy.
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Base URL of a journey's named target, e.g. --target-url idp=https://login.staging.example.com/
    /// (repeatable): TARGET_<NAME>_URL of the Lambda, with the same allowlist rules.
    #[arg(long, value_name = "NAME=URL")]
    pub target_url: Vec<String>,
    /// Secrets Manager id or ARN of the synthetic account.
    #[arg(long, value_name = "ID", conflicts_with = "credentials_file")]
    pub secret_id: Option<String>,
    /// JSON file shaped like the secret: an object of the string fields the journeys name as
    /// {{secret.NAME}}. Must not be world-readable.
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Environment name, as in the dedup key and the metrics.
    #[arg(long, env = "CHECK_ENV", default_value = "cli")]
    pub env: String,
    #[arg(long, value_enum, default_value_t = RunFormat::Table)]
    pub format: RunFormat,
    /// Also append each run result as one JSON line to this file (the input of `slo --history`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Also publish one alert per check to SNS, exactly as the Lambda does.
    #[arg(long)]
    pub publish: bool,
    /// SNS topic for --publish.
    #[arg(long, value_name = "ARN", env = "ALERT_TOPIC_ARN")]
    pub topic_arn: Option<String>,
    /// Count degraded (slow but correct) checks as passed: exit 0 instead of 2.
    #[arg(long)]
    pub degraded_ok: bool,
    /// How many checks run at once (1-64); the report lists them in their order whatever the
    /// order they finish in.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CanaryFormat {
    /// One line per metric: baseline, canary, threshold, p-value, and why.
    Table,
    /// The analysis as one JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The built-in check whose journey to run.
    #[arg(long, value_enum, conflicts_with = "journey", required_unless_present = "journey")]
    pub check: Option<CheckArg>,
    /// The journey file to run instead.
    #[arg(long, value_name = "FILE")]
    pub journey: Option<PathBuf>,
    /// Base URL of the version in service.
    #[arg(long, value_name = "URL")]
    pub baseline: String,
    /// Base URL of the new version.
    #[arg(long, value_name = "URL")]
    pub canary: String,
    /// Base URL of a journey's named target for both sides, e.g. --target-url
    /// idp=https://login.staging.example.com/ (repeatable), as for `synthetic run`.
    #[arg(long, value_name = "NAME=URL")]
    pub target_url: Vec<String>,
    /// Runs per side.
    #[arg(long, default_value_t = 20, conflicts_with = "duration")]
    pub runs: u64,
    /// Run for this long instead of a number of runs: a number and a unit (s, m, h), e.g. 15m.
    #[arg(long, value_name = "DURATION", value_parser = slo::parse_duration)]
    pub duration: Option<u64>,
    /// Thresholds and minimums (TOML; see the README, "Canary releases").
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[arg(long, value_name = "ID", conflicts_with = "credentials_file")]
    pub secret_id: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    #[arg(long, env = "CHECK_ENV", default_value = "canary")]
    pub env: String,
    #[arg(long, value_enum, default_value_t = CanaryFormat::Table)]
    pub format: CanaryFormat,
    /// Also append every run result of both sides to this file, as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Journey files to check, or checks folders (each checked whole: defaults, dependencies).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// `text`: `file:line:column: message` on stderr, as compilers print. `json`: one JSON object
    /// per problem on stdout ({"file","line","column","key","message"}), for editors and tools.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Text,
    /// One JSON object per problem, one per line; nothing for a valid file.
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// One line per check.
    Table,
    /// The plan as the template generator and the forwarder (`CHECK_PLAN_FILE`) read it.
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The checks folder.
    #[arg(long, value_name = "DIR", default_value = "checks")]
    pub checks: PathBuf,
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
    /// Regenerate the checks' part of this SAM template (infra/template.yaml) instead of printing.
    #[arg(long, value_name = "FILE")]
    pub write_template: Option<PathBuf>,
    /// The deployment's regions, the home region first, for the cost estimate (a region a check
    /// names is added); by default one region.
    #[arg(long, value_name = "REGION,...", value_delimiter = ',', default_value = "home")]
    pub regions: Vec<String>,
    /// With --format json: the plan plus a "cost" object (then not a CHECK_PLAN_FILE; the table
    /// always ends with the estimate).
    #[arg(long)]
    pub cost: bool,
}

#[derive(Debug, Args)]
pub struct SloArgs {
    /// Checks to report: all, or a comma-separated list.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub check: Vec<CheckArg>,
    /// Environment whose runs count.
    #[arg(long, env = "CHECK_ENV", default_value = "cli")]
    pub env: String,
    /// The SLO target, in percent of available runs: above 0, at most 100.
    #[arg(long, value_name = "PERCENT", default_value = "99.9", value_parser = slo::parse_percent)]
    pub objective: f64,
    /// The SLO window: a number and a unit (s, m, h, d, w), e.g. 30d.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = slo::parse_duration)]
    pub window: u64,
    /// How often each check runs; every run stands for one interval of the window.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = slo::parse_duration)]
    pub interval: u64,
    /// Read run results from this JSON-lines file (as written by `run --format json` or
    /// `run --history`) instead of CloudWatch.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// CloudWatch namespace of the EMF metrics.
    #[arg(long, env = "METRICS_NAMESPACE", default_value = "SyntheticMonitoring")]
    pub namespace: String,
    #[arg(long, value_enum, default_value_t = SloFormat::Table)]
    pub format: SloFormat,
}

/// Parses the arguments and runs the command. Help and version exit 0; every argument error
/// exits 3, as documented, rather than clap's usual 2.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.exit_code() {
                0 => Exit::Passed.into(),
                _ => Exit::Error.into(),
            };
        }
    };
    let exit = match cli.command {
        Command::Run(args) => run::execute(args).await,
        Command::Validate(args) => validate::execute(&args),
        Command::Canary(args) => canary::execute(args).await,
        Command::Slo(args) => slo_report::execute(args).await,
        Command::Silence(args) => silence::execute(args).await,
        Command::Plan(args) => plan::execute(&args),
    };
    exit.into()
}

/// Prints an error that stops the command, and returns the usage exit code.
pub(crate) fn fail(message: impl std::fmt::Display) -> Exit {
    eprintln!("{}", scrubbed(&format!("synthetic: {message}")));
    Exit::Error
}

/// Text the CLI prints, scrubbed of every secret value and credential its runs learned.
pub(crate) fn scrubbed(text: &str) -> String {
    synthetic_checks::secret::Scrubber::process_scrub(text)
}

/// Prints a command's report on stdout and returns `exit`; see [`write_report`].
pub(crate) fn print_report(text: &str, exit: Exit) -> Exit {
    write_report(&mut std::io::stdout().lock(), text, exit)
}

/// Writes `text` to `out` and returns `exit`. When `out` refuses it (a closed pipe, a full disk)
/// that is said on stderr and the exit code is the [worse](Exit::worst) of `exit` and
/// [`Exit::Error`]: a failed check still exits 1, as documented. (`print!` would panic instead.)
pub(crate) fn write_report(out: &mut dyn std::io::Write, text: &str, exit: Exit) -> Exit {
    match out.write_all(scrubbed(text).as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => exit,
        Err(error) => exit.worst(fail(format!("cannot write the report: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_selected_in_order_without_repeats() {
        assert_eq!(selected_checks(&[CheckArg::All]), Check::ALL);
        assert_eq!(
            selected_checks(&[CheckArg::Payment, CheckArg::Health, CheckArg::Payment]),
            [Check::Health, Check::Payment]
        );
    }

    /// A stdout that refuses every write, as `/dev/full` does.
    struct Full;

    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_report_that_cannot_be_written_is_an_error_unless_a_check_failed() {
        assert_eq!(write_report(&mut Full, "report", Exit::Failed), Exit::Failed, "1 wins over 3");
        for exit in [Exit::Passed, Exit::Degraded, Exit::Error] {
            assert_eq!(write_report(&mut Full, "report", exit), Exit::Error, "{exit:?}");
        }
        let mut written = Vec::new();
        assert_eq!(write_report(&mut written, "report", Exit::Degraded), Exit::Degraded);
        assert_eq!(written, b"report");
    }

    #[test]
    fn a_report_is_scrubbed_of_what_the_runs_learned() {
        let mut run = synthetic_checks::secret::Scrubber::default();
        run.add(&synthetic_checks::secret::Secret::new("cli-report-key-51e0".into()));
        let mut written = Vec::new();
        write_report(&mut written, "error: key cli-report-key-51e0 refused", Exit::Error);
        assert_eq!(String::from_utf8(written).unwrap(), "error: key [REDACTED] refused");
    }

    #[test]
    fn arguments_parse_and_the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["synthetic", "run", "--target", "https://x", "--check", "health,auth"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("expected run") };
        assert_eq!(args.check, [CheckArg::Health, CheckArg::Auth]);
        assert_eq!(args.format, RunFormat::Table);
        let both = ["synthetic", "run", "--target", "https://x", "--secret-id", "s", "--credentials-file", "f"];
        assert!(Cli::try_parse_from(both).is_err());
    }
}

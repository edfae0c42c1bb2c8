//! `synthetic run`: the checks once, in order, through the same [`Monitor`] as the Lambdas.
//!
//! The built-in checks are the journey files compiled into the Lambdas; `--journey` adds any
//! other. The configuration is the Lambda's: per-deployment settings (step budgets, retries…)
//! come from the environment, while the deployment itself comes from the arguments. Nothing is
//! emitted as EMF (stdout belongs to the chosen format, and smoke runs must not count towards
//! production SLOs), and nothing is published unless `--publish` is given.

use crate::concurrent::run_bounded;
use crate::credentials::CredentialsFile;
use crate::output::{self, Report};
use crate::style::{Style, Tone, outcome_tone};
use crate::{Exit, RunArgs, RunFormat, fail, history, print_report, scrubbed, selected_checks};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use synthetic_checks::alert::Notifier;
use synthetic_checks::aws::{sdk_config, secrets_manager::SecretsManagerSource, sns::SnsNotifier};
use synthetic_checks::catalog::{Catalog, CatalogCheck};
use synthetic_checks::config::{AlertTopic, target_variable};
use synthetic_checks::discard::Discard;
use synthetic_checks::http::ReqwestTarget;
use synthetic_checks::secret::{CredentialStore, SecretSource};
use synthetic_checks::{Adapters, Check, CheckError, JourneyDef, Monitor, MonitorConfig, Outcome, RunResult};

/// What one check came to.
#[derive(Debug)]
pub enum CheckRun {
    Ran(RunResult),
    /// The monitor itself could not run or report the check: unreadable secret, undeliverable alert.
    Broke {
        check: String,
        error: CheckError,
    },
}

impl CheckRun {
    pub fn check_name(&self) -> &str {
        match self {
            CheckRun::Ran(run) => &run.check,
            CheckRun::Broke { check, .. } => check,
        }
    }
}

/// The exit code for a set of runs: the [worst](Exit::worst) of theirs, where a degraded check
/// passes with `degraded_ok`.
pub fn verdict(runs: &[CheckRun], degraded_ok: bool) -> Exit {
    let exit = |run: &CheckRun| match run {
        CheckRun::Ran(run) => match run.status {
            Outcome::Passed => Exit::Passed,
            Outcome::Degraded if degraded_ok => Exit::Passed,
            Outcome::Degraded => Exit::Degraded,
            Outcome::Failed => Exit::Failed,
        },
        CheckRun::Broke { .. } => Exit::Error,
    };
    runs.iter().map(exit).fold(Exit::Passed, Exit::worst)
}

pub async fn execute(args: RunArgs) -> Exit {
    let journeys = match journeys(&args) {
        Ok(journeys) => journeys,
        Err(lines) => {
            for line in lines {
                eprintln!("{line}");
            }
            return Exit::Error;
        }
    };
    let monitors = match prepare(&args, journeys).await {
        Ok(monitors) => monitors,
        Err(message) => return fail(message),
    };
    let target = monitors[0].config().target.to_string();
    let total = monitors.len();
    eprintln!("synthetic: {total} check(s) against {target} (env {}), {} at a time", args.env, args.concurrency);
    let interrupted = stop_after_running_checks_on_signal();
    let outcomes =
        run_bounded(monitors, usize::from(args.concurrency), interrupted.clone(), move |index, monitor| async move {
            let run = run_one(&monitor).await;
            report_progress(index, total, &run);
            run
        })
        .await;
    let not_run = outcomes.iter().filter(|outcome| outcome.is_none()).count();
    if not_run > 0 {
        eprintln!("synthetic: interrupted; {not_run} check(s) not run");
    }
    let runs: Vec<CheckRun> = outcomes.into_iter().flatten().collect();
    let mut exit = verdict(&runs, args.degraded_ok);
    if interrupted.load(Ordering::SeqCst) {
        exit = exit.worst(Exit::Error);
    }
    if let Some(path) = &args.history {
        let ran: Vec<&RunResult> =
            runs.iter().filter_map(|r| if let CheckRun::Ran(run) = r { Some(run) } else { None }).collect();
        if let Err(error) = history::append(path, &ran) {
            // The report still follows; a lost history line is an error unless a check failed.
            eprintln!("synthetic: {error}");
            exit = exit.worst(Exit::Error);
        }
    }
    let report = Report { target: &target, env: &args.env, runs: &runs, degraded_ok: args.degraded_ok, exit };
    let text = match args.format {
        RunFormat::Table => output::table(&report, Style::stdout()),
        RunFormat::Json => output::json_lines(&report),
        RunFormat::Junit => output::junit(&report),
    };
    print_report(&text, exit)
}

/// One check, run once: its result, or why the monitor could not run it.
async fn run_one(monitor: &Monitor) -> CheckRun {
    match monitor.run(None, None).await {
        Ok(run) => CheckRun::Ran(run),
        Err(error) => CheckRun::Broke { check: monitor.config().journey.check.clone(), error },
    }
}

/// One stderr line per check as it finishes, numbered by its place in the selection.
fn report_progress(index: usize, total: usize, run: &CheckRun) {
    let progress = Style::stderr();
    let line = match run {
        CheckRun::Ran(run) => {
            let detail = run.cause.map_or(String::new(), |cause| format!(" ({cause})"));
            let label = format!("{}{detail}", run.status.as_str());
            format!("{} in {} ms", progress.paint(&label, outcome_tone(run.status)), run.duration_ms)
        }
        CheckRun::Broke { error, .. } => {
            format!("{}: {}", progress.paint("error", Tone::Bad), scrubbed(&error.to_string()))
        }
    };
    eprintln!("  [{}/{total}] {} ... {line}", index + 1, run.check_name());
}

/// A first Ctrl-C, SIGTERM or SIGHUP lets the running checks finish, because a payment journey
/// stopped between create and refund would leave a sandbox payment live; the checks not yet
/// started are skipped. CI systems and Kubernetes stop a job with SIGTERM, then SIGKILL after a
/// grace period, which the cleanup fits in. A second signal aborts at once.
pub(crate) fn stop_after_running_checks_on_signal() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        let Some(signal) = next_stop_signal().await else { return };
        flag.store(true, Ordering::SeqCst);
        eprintln!(
            "\nsynthetic: {signal}: finishing the running check(s) so their sandbox writes are cleaned up (again to abort)"
        );
        if next_stop_signal().await.is_some() {
            std::process::exit(130);
        }
    });
    interrupted
}

/// Waits for Ctrl-C (SIGINT), SIGTERM or SIGHUP and names it; `None` if none can be listened for.
#[cfg(unix)]
async fn next_stop_signal() -> Option<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut hup) = (signal(SignalKind::terminate()).ok()?, signal(SignalKind::hangup()).ok()?);
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.ok().map(|()| "interrupted"),
        _ = term.recv() => Some("SIGTERM"),
        _ = hup.recv() => Some("SIGHUP"),
    }
}

#[cfg(not(unix))]
async fn next_stop_signal() -> Option<&'static str> {
    tokio::signal::ctrl_c().await.ok().map(|()| "interrupted")
}

/// The journeys to run: with --all or --tag, the selected checks of the checks folder; otherwise
/// the built-in checks named by --check (all of them when neither --check nor --journey is
/// given), then each --journey file. Errors are `file:line:column` lines.
pub(crate) fn journeys(args: &RunArgs) -> Result<Vec<JourneyDef>, Vec<String>> {
    if args.all || !args.tag.is_empty() {
        let catalog = Catalog::load(&args.checks_dir).map_err(|problems| problems.lines())?;
        return from_folder(&catalog, &args.tag).map_err(|problem| vec![format!("synthetic: {problem}")]);
    }
    let builtin = match (args.check.is_empty(), args.journey.is_empty()) {
        (true, true) => Check::ALL.to_vec(),
        _ => selected_checks(&args.check),
    };
    let mut journeys: Vec<JourneyDef> = builtin.into_iter().map(Check::journey).collect();
    let mut problems = Vec::new();
    for path in &args.journey {
        match crate::validate::load(path) {
            Ok(journey) => journeys.push(journey),
            Err(lines) => problems.extend(lines),
        }
    }
    match problems.is_empty() {
        true => Ok(journeys),
        false => Err(problems),
    }
}

/// The enabled checks of a checks folder, in its order, with any of `tags` (every one when
/// `tags` is empty). A tag no enabled check has is refused: a typo must not make an empty gate
/// pass.
pub fn from_folder(catalog: &Catalog, tags: &[String]) -> Result<Vec<JourneyDef>, String> {
    let enabled: Vec<&CatalogCheck> = catalog.checks().iter().filter(|check| check.deploy.enabled).collect();
    let tagged = |check: &&CatalogCheck| tags.is_empty() || check.deploy.tags.iter().any(|tag| tags.contains(tag));
    if let Some(unknown) = tags.iter().find(|tag| !enabled.iter().any(|check| check.deploy.tags.contains(tag))) {
        let mut known: Vec<&str> =
            enabled.iter().flat_map(|check| check.deploy.tags.iter().map(String::as_str)).collect();
        known.sort_unstable();
        known.dedup();
        return Err(format!(
            "--tag {unknown}: no enabled check of {} has it (tags there: {})",
            catalog.dir().display(),
            match known.is_empty() {
                true => "none".to_string(),
                false => known.join(", "),
            }
        ));
    }
    let selected: Vec<JourneyDef> = enabled.into_iter().filter(tagged).map(|check| check.journey.clone()).collect();
    match selected.is_empty() {
        true => Err(format!("{} has no enabled check", catalog.dir().display())),
        false => Ok(selected),
    }
}

/// `--target-url NAME=URL` values by the variable they set (`TARGET_IDP_URL`). A name no
/// selected journey declares is refused: it would silently change nothing.
fn named_target_urls(values: &[String], journeys: &[JourneyDef]) -> Result<BTreeMap<String, String>, String> {
    let mut named = BTreeMap::new();
    for value in values {
        let Some((name, url)) = value.split_once('=') else {
            return Err("--target-url takes NAME=URL, e.g. idp=https://login.example.com/".into());
        };
        let name = name.trim();
        if !journeys.iter().any(|j| j.target(name).is_some()) {
            return Err(format!("--target-url {name}: no selected journey declares target {name:?} in [targets]"));
        }
        if named.insert(target_variable(name), url.trim().to_string()).is_some() {
            return Err(format!("--target-url {name} is given twice"));
        }
    }
    Ok(named)
}

/// Whether `name` is the variable of a named target (`TARGET_<NAME>_URL`, not the main one).
fn named_target_variable(name: &str) -> bool {
    name != "TARGET_BASE_URL" && name.starts_with("TARGET_") && name.ends_with("_URL")
}

/// Everything checked before the first request: arguments, credentials, every check's
/// configuration and the history file. An error here exits 3 with nothing sent.
pub(crate) async fn prepare(args: &RunArgs, journeys: Vec<JourneyDef>) -> Result<Vec<Monitor>, String> {
    let needs_account: Vec<&str> = journeys.iter().filter(|j| j.uses_secrets()).map(|j| j.check.as_str()).collect();
    if !needs_account.is_empty() && args.secret_id.is_none() && args.credentials_file.is_none() {
        return Err(format!(
            "the {} check(s) sign in with the synthetic account: pass --secret-id ID (Secrets Manager) or \
             --credentials-file FILE",
            needs_account.join(", ")
        ));
    }
    let topic_arn = match (args.publish, &args.topic_arn) {
        (true, None) => return Err("--publish needs --topic-arn ARN or ALERT_TOPIC_ARN".into()),
        (true, Some(arn)) => Some(arn.clone()),
        (false, _) => None,
    };
    let file = args.credentials_file.as_deref().map(CredentialsFile::open).transpose().map_err(|e| e.to_string())?;
    let secret_id = file.as_ref().map(CredentialsFile::id).or_else(|| args.secret_id.clone());
    // The deployment settings come from the arguments only, so a stray CREDENTIALS_SECRET_ID or
    // ALERT_TOPIC_ARN in the shell cannot redirect the run; the rest is the Lambda's environment.
    let named = named_target_urls(&args.target_url, &journeys)?;
    let lookup = |name: &str| match name {
        "TARGET_BASE_URL" => Some(args.target.clone()),
        // Named targets come from --target-url only, like the main one from --target.
        _ if named_target_variable(name) => named.get(name).cloned(),
        "TARGET_URLS" => None,
        "CHECK_ENV" => Some(args.env.clone()),
        "CREDENTIALS_SECRET_ID" => secret_id.clone(),
        "ALERT_TOPIC_ARN" => topic_arn.clone(),
        _ => std::env::var(name).ok(),
    };
    let configs = journeys
        .into_iter()
        .map(|journey| MonitorConfig::from_lookup_with(journey, &lookup, AlertTopic::Optional))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.history {
        // Creates the file, or proves it writable, before the first request.
        history::append(path, &[])?;
    }
    let first = configs.first().ok_or("no check selected")?;
    let http = Arc::new(ReqwestTarget::new(&first.http).map_err(|e| e.to_string())?);
    let sdk = match args.secret_id.is_some() || topic_arn.is_some() {
        true => Some(sdk_config().await),
        false => None,
    };
    let secrets: Arc<dyn SecretSource> = match (file, &sdk) {
        (Some(file), _) => Arc::new(file),
        (None, Some(sdk)) => Arc::new(SecretsManagerSource::new(sdk)),
        (None, None) => Arc::new(Discard),
    };
    let notifier: Arc<dyn Notifier> = match (&topic_arn, &sdk) {
        (Some(arn), Some(sdk)) => Arc::new(SnsNotifier::new(sdk, arn)),
        _ => Arc::new(Discard),
    };
    // One cache for every check, so the secret is read once per run, not once per check.
    let credentials = configs
        .iter()
        .find_map(|c| c.credentials_secret_id.as_ref())
        .map(|id| Arc::new(CredentialStore::new(secrets.clone(), id, first.secret_ttl)));
    Ok(configs
        .into_iter()
        .map(|config| {
            let adapters = Adapters {
                http: http.clone(),
                secrets: secrets.clone(),
                notifier: notifier.clone(),
                metrics: Arc::new(Discard),
            };
            Monitor::new(config, adapters).with_credentials(credentials.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(check: &str, status: Outcome) -> CheckRun {
        crate::output::tests::run(check, status, None, None)
    }

    fn broke() -> CheckRun {
        CheckRun::Broke { check: "auth".into(), error: CheckError::Misconfigured("x".into()) }
    }

    #[test]
    fn the_worst_outcome_decides_the_exit_code() {
        let passed = ran("health", Outcome::Passed);
        let degraded = ran("products", Outcome::Degraded);
        let failed = ran("auth", Outcome::Failed);
        assert_eq!(verdict(&[ran("health", Outcome::Passed)], false), Exit::Passed);
        assert_eq!(verdict(&[ran("health", Outcome::Passed), ran("x", Outcome::Degraded)], false), Exit::Degraded);
        assert_eq!(verdict(&[ran("health", Outcome::Passed), ran("x", Outcome::Degraded)], true), Exit::Passed);
        assert_eq!(verdict(&[degraded, broke()], true), Exit::Error);
        assert_eq!(verdict(&[passed, failed, broke()], true), Exit::Failed);
        assert_eq!(verdict(&[ran("x", Outcome::Failed)], true), Exit::Failed);
    }

    fn run_args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["synthetic", "run", "--target", "https://shop.example.com/"];
        argv.extend(extra);
        let cli = <crate::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let crate::Command::Run(args) = cli.command else { panic!("expected run") };
        args
    }

    fn two_origins() -> JourneyDef {
        let source = "check = \"oauth\"\n[targets]\nidp = \"https://login.example.com/\"\n\
                      [[steps]]\nname = \"token\"\ntarget = \"idp\"\npath = \"/token\"\n";
        JourneyDef::parse(source).unwrap()
    }

    /// A checks folder in a fresh temp dir: (file stem, [deploy] lines) each with one GET step.
    fn folder(checks: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("synthetic-run-folder-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, deploy) in checks {
            let text =
                format!("check = \"{name}\"\n[deploy]\n{deploy}\n[[steps]]\nname = \"get\"\npath = \"/{name}\"\n");
            std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        }
        dir
    }

    fn names(journeys: &[JourneyDef]) -> Vec<&str> {
        journeys.iter().map(|journey| journey.check.as_str()).collect()
    }

    #[test]
    fn all_and_tag_select_the_enabled_checks_of_the_folder_in_its_order() {
        // GIVEN a folder with tagged checks, one of them disabled
        let dir = folder(&[
            ("zeta", "tags = [\"checkout\"]"),
            ("alpha", "tags = [\"checkout\", \"public\"]"),
            ("mid", "tags = [\"public\"]"),
            ("off", "tags = [\"checkout\"]\nenabled = false"),
        ]);
        let catalog = Catalog::load(&dir).unwrap();
        // THEN --all is every enabled check, in the folder's order
        assert_eq!(names(&from_folder(&catalog, &[]).unwrap()), ["alpha", "mid", "zeta"]);
        // AND --tag selects the enabled checks with any of the tags, each once
        assert_eq!(names(&from_folder(&catalog, &["checkout".into()]).unwrap()), ["alpha", "zeta"]);
        let both = from_folder(&catalog, &["public".into(), "checkout".into()]).unwrap();
        assert_eq!(names(&both), ["alpha", "mid", "zeta"]);
        // AND a tag only a disabled check has, or none has, is refused with the tags there are
        for tag in ["nightly", "Checkout"] {
            let error = from_folder(&catalog, &[tag.into()]).unwrap_err();
            assert!(error.contains(&format!("--tag {tag}: no enabled check of")), "{error}");
            assert!(error.ends_with("(tags there: checkout, public)"), "{error}");
        }
        let only_off = folder(&[("off", "tags = [\"x\"]\nenabled = false")]);
        let error = from_folder(&Catalog::load(&only_off).unwrap(), &[]).unwrap_err();
        assert!(error.ends_with("has no enabled check"), "{error}");
        for dir in [dir, only_off] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_broken_checks_folder_is_every_mistake_at_its_line() {
        let dir = folder(&[("good", ""), ("bad", "schedule_minutes = 7")]);
        let args = run_args(&["--all", "--checks-dir", &dir.display().to_string()]);
        let lines = journeys(&args).unwrap_err();
        assert!(lines.iter().any(|line| line.contains("bad.toml:3:")), "{lines:?}");
        std::fs::remove_dir_all(dir).unwrap();
        // AND --all and --tag do not mix with the built-in checks or journey files
        let mixes: [&[&str]; 3] =
            [&["--all", "--check", "health"], &["--tag", "x", "--journey", "f.toml"], &["--all", "--tag", "x"]];
        for extra in mixes {
            let mut argv = vec!["synthetic", "run", "--target", "https://shop.example.com/"];
            argv.extend(extra);
            assert!(<crate::Cli as clap::Parser>::try_parse_from(argv).is_err(), "{extra:?}");
        }
    }

    #[tokio::test]
    async fn target_url_sets_a_named_target_under_the_lambdas_rules() {
        // GIVEN --target-url for the declared target, on its declared host
        let args = run_args(&["--target-url", "idp=https://login.example.com/staging/"]);
        let monitors = prepare(&args, vec![two_origins()]).await.unwrap();
        // THEN the journey talks to it there
        assert_eq!(monitors[0].config().journey.target("idp").unwrap().as_str(), "https://login.example.com/staging/");
        // AND another host is refused as TARGET_IDP_URL would be in the Lambda
        let args = run_args(&["--target-url", "idp=https://login.attacker.example/"]);
        let error = prepare(&args, vec![two_origins()]).await.err().unwrap();
        assert!(error.contains("TARGET_IDP_URL host \"login.attacker.example\" is not in"), "{error}");
        // AND a name no journey declares, a value without '=', or a name twice are refused
        for (extra, expected) in [
            (vec!["--target-url", "api=https://api.example.com/"], "no selected journey declares target \"api\""),
            (vec!["--target-url", "https://login.example.com/"], "--target-url takes NAME=URL"),
            (
                vec![
                    "--target-url",
                    "idp=https://login.example.com/",
                    "--target-url",
                    "idp=https://login.example.com/",
                ],
                "--target-url idp is given twice",
            ),
        ] {
            let error = prepare(&run_args(&extra), vec![two_origins()]).await.err().unwrap();
            assert!(error.contains(expected), "{error}");
        }
    }
}

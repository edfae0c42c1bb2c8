//! `synthetic canary`: one journey against a baseline and a canary, interleaved, then a verdict
//! and a report a person reads in ten seconds. The collection and the statistics are the shared
//! [`synthetic_checks::canary`], which the `canary-gate` Lambda runs too.

use crate::run::{journeys, prepare, stop_after_running_checks_on_signal};
use crate::{CanaryArgs, CanaryFormat, CheckArg, Exit, RunArgs, RunFormat, fail, history, print_report};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use synthetic_checks::Monitor;
use synthetic_checks::canary::{self, Analysis, Collected, Limit, Policy, Verdict};

/// The exit code of a verdict: promote 0, roll back 1, inconclusive 2.
impl From<Verdict> for Exit {
    fn from(verdict: Verdict) -> Exit {
        match verdict {
            Verdict::Promote => Exit::Passed,
            Verdict::Rollback => Exit::Failed,
            Verdict::Inconclusive => Exit::Degraded,
        }
    }
}

pub async fn execute(args: CanaryArgs) -> Exit {
    let policy = match args.policy.as_deref().map(Policy::load).transpose() {
        Ok(policy) => policy.unwrap_or_default(),
        Err(lines) => {
            lines.iter().for_each(|l| eprintln!("{l}"));
            return Exit::Error;
        }
    };
    let (baseline_args, canary_args) = (side(&args, &args.baseline), side(&args, &args.canary));
    let journey = match journeys(&baseline_args) {
        Ok(mut journeys) if journeys.len() == 1 => journeys.remove(0),
        Ok(_) => return fail("canary analyses one journey: pass exactly one --check NAME or --journey FILE"),
        Err(lines) => {
            lines.iter().for_each(|l| eprintln!("{l}"));
            return Exit::Error;
        }
    };
    if let Some(path) = &args.history
        && let Err(error) = history::append(path, &[])
    {
        return fail(error);
    }
    let monitors =
        match (prepare(&baseline_args, vec![journey.clone()]).await, prepare(&canary_args, vec![journey]).await) {
            (Ok(mut b), Ok(mut c)) if b.len() == 1 && c.len() == 1 => canary::sides(b.remove(0), c.remove(0)),
            (Err(message), _) | (_, Err(message)) => return fail(message),
            _ => return fail("expected one journey per side"),
        };
    let collected = match collect(&monitors, &args).await {
        Ok(collected) => collected,
        Err(message) => return fail(message),
    };
    let analysis = canary::analyse(&collected.baseline, &collected.canary, &policy);
    let text = match args.format {
        CanaryFormat::Table => table(&analysis, &monitors, &args),
        CanaryFormat::Json => serde_json::to_string(&analysis).map(|j| j + "\n").unwrap_or_default(),
    };
    let exit = match collected.broke {
        Some(error) => {
            fail(format!("the monitor could not run every check, so the analysis cannot be trusted: {error}"))
        }
        None => analysis.verdict.into(),
    };
    print_report(&text, exit)
}

/// Runs the journey against both targets in turn until the runs or the duration are used up, or
/// a signal asks to stop; every run goes to the history file, when there is one.
/// The run settings of one side: its own main target; named targets (`--target-url`) the same
/// on both sides.
fn side(args: &CanaryArgs, target: &str) -> RunArgs {
    RunArgs {
        check: args.check.iter().copied().collect::<Vec<CheckArg>>(),
        journey: args.journey.iter().cloned().collect(),
        all: false,
        tag: Vec::new(),
        checks_dir: PathBuf::new(),
        target: target.to_string(),
        target_url: args.target_url.clone(),
        secret_id: args.secret_id.clone(),
        credentials_file: args.credentials_file.clone(),
        env: args.env.clone(),
        format: RunFormat::Json,
        history: None,
        publish: false,
        topic_arn: None,
        degraded_ok: true,
        concurrency: 1,
    }
}

async fn collect(monitors: &[Monitor; 2], args: &CanaryArgs) -> Result<Collected, String> {
    let interrupted = stop_after_running_checks_on_signal();
    let limit = match args.duration {
        Some(secs) => Limit::Duration(Duration::from_secs(secs)),
        None => Limit::Rounds(args.runs),
    };
    let started = Instant::now();
    let mut collected = Collected::default();
    eprintln!(
        "synthetic: canary analysis of {} ({} vs {})",
        monitors[0].config().journey.check,
        args.baseline,
        args.canary
    );
    while limit.allows(started, collected.rounds) && !interrupted.load(Ordering::SeqCst) {
        for run in collected.round(monitors, None).await {
            if let Some(path) = &args.history {
                history::append(path, &[&run])?;
            }
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!(
                "\r  round {}: baseline {} failed, canary {} failed ",
                collected.rounds, collected.baseline.failures, collected.canary.failures
            );
        }
    }
    eprintln!(
        "  {} round(s): baseline {} failed, canary {} failed",
        collected.rounds, collected.baseline.failures, collected.canary.failures
    );
    Ok(collected)
}

fn table(analysis: &Analysis, monitors: &[Monitor; 2], args: &CanaryArgs) -> String {
    let mut out = format!(
        "canary analysis of {}: {} run(s) against the baseline {}, {} against the canary {}\n\n",
        monitors[0].config().journey.check,
        analysis.runs[0],
        args.baseline,
        analysis.runs[1],
        args.canary
    );
    out.push_str(&format!(
        "{:<28} {:>16} {:>16}  {:<34} {:>8}  {}\n",
        "METRIC", "BASELINE", "CANARY", "THRESHOLD", "P-VALUE", "RESULT"
    ));
    for m in &analysis.metrics {
        let p = m.p_value.map_or("-".to_string(), |p| format!("{p:.4}"));
        let result = m.result.as_str();
        out.push_str(&format!(
            "{:<28} {:>16} {:>16}  {:<34} {:>8}  {result}: {}\n",
            m.name, m.baseline, m.canary, m.threshold, p, m.why
        ));
    }
    let verdict = match analysis.verdict {
        Verdict::Promote => "PROMOTE".to_string(),
        Verdict::Rollback => format!("ROLLBACK, decided by: {}", analysis.decided_by.join(", ")),
        Verdict::Inconclusive => format!("INCONCLUSIVE: {}", analysis.decided_by.join("; ")),
    };
    out.push_str(&format!("\nVERDICT: {verdict}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn target_url_moves_a_named_target_on_both_sides_under_the_lambdas_rules() {
        let argv = [
            "synthetic",
            "canary",
            "--journey",
            "j.toml",
            "--baseline",
            "https://shop.example.com/",
            "--canary",
            "https://canary.shop.example.com/",
            "--target-url",
            "idp=https://login.example.com/staging/",
        ];
        let cli = <crate::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let crate::Command::Canary(args) = cli.command else { panic!("expected canary") };
        let journey = synthetic_checks::JourneyDef::parse(
            "check = \"oauth\"\n[targets]\nidp = \"https://login.example.com/\"\n[[steps]]\nname = \"token\"\n\
             target = \"idp\"\npath = \"/token\"\n",
        )
        .unwrap();
        for target in [&args.baseline, &args.canary] {
            let monitors = prepare(&side(&args, target), vec![journey.clone()]).await.unwrap();
            let config = monitors[0].config();
            assert_eq!(config.journey.target("idp").unwrap().as_str(), "https://login.example.com/staging/");
            assert_eq!(config.target.as_str(), target.as_str());
        }
    }

    #[test]
    fn verdicts_exit_with_the_documented_codes() {
        assert_eq!(Exit::from(Verdict::Promote), Exit::Passed);
        assert_eq!(Exit::from(Verdict::Rollback), Exit::Failed);
        assert_eq!(Exit::from(Verdict::Inconclusive), Exit::Degraded);
    }
}

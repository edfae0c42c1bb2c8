//! The three shapes of a `run` report: a table for people, JSON lines for the history file and
//! scripts, JUnit XML for CI. Pure functions from runs to text.

use crate::run::CheckRun;
use crate::style::{Style, Tone, outcome_tone};
use crate::{Exit, scrubbed};
use synthetic_checks::alert::AlertMessage;
use synthetic_checks::config::Origin;
use synthetic_checks::{Outcome, RunResult};

pub struct Report<'a> {
    pub target: &'a str,
    pub env: &'a str,
    pub runs: &'a [CheckRun],
    pub degraded_ok: bool,
    pub exit: Exit,
}

/// The one-line summary the alert would carry, so the gate and the pager use the same words.
fn summary(run: &RunResult) -> String {
    AlertMessage::from_run(run, &Origin::default()).summary
}

/// One row per check, with the deciding step's error under a run that did not pass.
pub fn table(report: &Report, style: Style) -> String {
    let mut out =
        format!("{:<10}{:<10}{:<22}{:>9}  STEPS (ms, ×attempts when retried)\n", "CHECK", "STATUS", "CAUSE", "TIME");
    for run in report.runs {
        match run {
            CheckRun::Ran(run) => {
                let status = style.paint(&format!("{:<10}", run.status.as_str()), outcome_tone(run.status));
                let cause = run.cause.map_or("-", |c| c.as_str());
                let steps: Vec<String> = run
                    .steps
                    .iter()
                    .map(|s| match s.attempts {
                        0 | 1 => format!("{} {}", s.name, s.duration_ms),
                        n => format!("{} {} ×{n}", s.name, s.duration_ms),
                    })
                    .collect();
                let time = format!("{} ms", run.duration_ms);
                out.push_str(&format!("{:<10}{status}{cause:<22}{time:>9}  {}\n", run.check, steps.join(", ")));
                if run.status != Outcome::Passed {
                    out.push_str(&format!("{:<10}{}\n", "", style.paint(&summary(run), Tone::Dim)));
                }
            }
            CheckRun::Broke { check, error } => {
                let status = style.paint(&format!("{:<10}", "error"), Tone::Bad);
                out.push_str(&format!(
                    "{:<10}{status}{:<22}{:>9}\n{:<10}{error}\n",
                    check,
                    error.error_type(),
                    "-",
                    ""
                ));
            }
        }
    }
    let count = |wanted: Outcome| {
        report.runs.iter().filter(|r| matches!(r, CheckRun::Ran(run) if run.status == wanted)).count()
    };
    let errors = report.runs.iter().filter(|r| matches!(r, CheckRun::Broke { .. })).count();
    let verdict = match report.exit {
        Exit::Passed => style.paint("PASS", Tone::Good),
        Exit::Degraded => style.paint("DEGRADED", Tone::Warn),
        Exit::Failed | Exit::Error => style.paint("FAIL", Tone::Bad),
    };
    out.push_str(&format!(
        "\n{verdict}: {} passed, {} degraded, {} failed, {errors} error(s) against {} (env {}); exit {}\n",
        count(Outcome::Passed),
        count(Outcome::Degraded),
        count(Outcome::Failed),
        report.target,
        report.env,
        report.exit as u8
    ));
    out
}

/// One run result per line. A check the monitor could not run has no result; it is reported on
/// stderr and in the exit code.
pub fn json_lines(report: &Report) -> String {
    report
        .runs
        .iter()
        .filter_map(|r| match r {
            CheckRun::Ran(run) => serde_json::to_string(run).ok().map(|line| line + "\n"),
            CheckRun::Broke { .. } => None,
        })
        .collect()
}

/// JUnit XML: one testsuite, one testcase per check. A failed check is a `<failure>`, and so is
/// a degraded one unless `--degraded-ok`; a check the monitor could not run is an `<error>`.
pub fn junit(report: &Report) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut total_ms) = (0, 0, 0);
    for run in report.runs {
        let open = |name: &str, ms: u64| {
            format!(
                "    <testcase name=\"{}\" classname=\"synthetic.{}\" time=\"{:.3}\"",
                xml_escape(name),
                xml_escape(report.env),
                ms as f64 / 1000.0
            )
        };
        match run {
            CheckRun::Ran(run) => {
                total_ms += run.duration_ms;
                cases.push_str(&open(&run.check, run.duration_ms));
                let counts_as_failure = match run.status {
                    Outcome::Passed => false,
                    Outcome::Degraded => !report.degraded_ok,
                    Outcome::Failed => true,
                };
                if counts_as_failure {
                    failures += 1;
                    let kind = format!("{}:{}", run.status.as_str(), run.cause.map_or("unknown", |c| c.as_str()));
                    cases.push_str(&format!(
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml_escape(&kind),
                        xml_escape(&summary(run)),
                        xml_escape(&step_lines(run))
                    ));
                } else if run.status == Outcome::Degraded {
                    cases.push_str(&format!(
                        ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                        xml_escape(&summary(run))
                    ));
                } else {
                    cases.push_str("/>\n");
                }
            }
            CheckRun::Broke { check, error } => {
                errors += 1;
                cases.push_str(&open(check, 0));
                cases.push_str(&format!(
                    ">\n      <error type=\"{}\" message=\"{}\"/>\n    </testcase>\n",
                    error.error_type(),
                    // Scrubbed before it is escaped: the report's own scrub cannot see a value
                    // through XML escapes.
                    xml_escape(&scrubbed(&error.to_string()))
                ));
            }
        }
    }
    let time = format!("{:.3}", total_ms as f64 / 1000.0);
    let suite = format!(
        "name=\"synthetic\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time}\"",
        report.runs.len()
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites {suite}>\n  <testsuite {suite}>\n    <properties>\n      \
         <property name=\"target\" value=\"{}\"/>\n      <property name=\"env\" value=\"{}\"/>\n    </properties>\n{cases}  \
         </testsuite>\n</testsuites>\n",
        xml_escape(report.target),
        xml_escape(report.env)
    )
}

/// Every step of a run, one per line, with its error if it had one.
fn step_lines(run: &RunResult) -> String {
    let mut text = String::new();
    for step in &run.steps {
        let status = step.status.map_or("-".to_string(), |s| s.to_string());
        text.push_str(&format!(
            "{} {} in {} ms, HTTP {status}, {} attempt(s)",
            step.name,
            step.outcome.as_str(),
            step.duration_ms,
            step.attempts
        ));
        if let (Some(cause), Some(error)) = (step.cause, &step.error) {
            text.push_str(&format!(": {cause}: {error}"));
        }
        text.push('\n');
    }
    text
}

/// Escapes text for XML 1.0 element content and attribute values. Characters XML 1.0 cannot
/// carry at all (most C0 controls, lone surrogates cannot occur in a `str`) become U+FFFD;
/// tabs and newlines are kept as character references so attributes keep them too.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use synthetic_checks::{Cause, CheckError, StepResult};

    /// A one-step run whose step has the run's outcome, cause and error.
    pub(crate) fn run(check: &str, status: Outcome, cause: Option<Cause>, error: Option<&str>) -> CheckRun {
        let step = StepResult {
            name: check.into(),
            outcome: status,
            duration_ms: 12,
            status: Some(if status == Outcome::Failed { 500 } else { 200 }),
            attempts: if status == Outcome::Failed { 2 } else { 1 },
            cause,
            error: error.map(str::to_string),
        };
        CheckRun::Ran(RunResult {
            check: check.into(),
            env: "cli".into(),
            target: "https://shop/".into(),
            run_id: "r".into(),
            started_at: "2026-11-21T10:00:00Z".into(),
            duration_ms: 1500,
            status,
            cause,
            steps: vec![step],
            account: None,
            certificate: None,
            trace_id: None,
        })
    }

    fn sample_runs() -> Vec<CheckRun> {
        vec![
            run("health", Outcome::Passed, None, None),
            run(
                "products",
                Outcome::Failed,
                Some(Cause::HttpStatus),
                Some("HTTP 500, expected 200: {\"a\":\"<b>&'\u{1}\"}"),
            ),
            run("auth", Outcome::Degraded, Some(Cause::Timeout), Some("no complete response within 300 ms")),
            CheckRun::Broke {
                check: "payment".into(),
                error: CheckError::SecretUnavailable { secret_id: "s".into(), reason: "AccessDenied".into() },
            },
        ]
    }

    fn report<'a>(runs: &'a [CheckRun], degraded_ok: bool) -> Report<'a> {
        Report { target: "https://shop/?a=1&b=<2>", env: "cli", runs, degraded_ok, exit: Exit::Failed }
    }

    #[test]
    fn junit_has_one_case_per_check_and_escapes_everything() {
        let runs = sample_runs();
        let xml = junit(&report(&runs, false));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert_eq!(xml.matches("<testsuite ").count(), 1);
        assert!(xml.contains("tests=\"4\" failures=\"2\" errors=\"1\""), "{xml}");
        assert!(xml.contains("<failure type=\"failed:http_status\" message=\"[cli] products FAILED at step products (http_status): HTTP 500, expected 200: {&quot;a&quot;:&quot;&lt;b&gt;&amp;&apos;\u{FFFD}&quot;}\">"), "{xml}");
        assert!(xml.contains("<failure type=\"degraded:timeout\""), "{xml}");
        assert!(xml.contains("<error type=\"SecretUnavailable\""), "{xml}");
        assert!(xml.contains("value=\"https://shop/?a=1&amp;b=&lt;2&gt;\""), "{xml}");
        assert!(!xml.contains('\u{1}'));

        let lenient = junit(&report(&runs, true));
        assert!(lenient.contains("failures=\"1\""), "{lenient}");
        assert!(lenient.contains("<system-out>[cli] auth DEGRADED at step auth (timeout)"), "{lenient}");
    }

    #[test]
    fn a_monitor_error_is_scrubbed_before_it_is_escaped_into_junit() {
        let mut run = synthetic_checks::secret::Scrubber::default();
        run.add(&synthetic_checks::secret::Secret::new("junit-<&\"-key-0d4b".into()));
        let broke = [CheckRun::Broke {
            check: "auth".into(),
            error: CheckError::Misconfigured("the key junit-<&\"-key-0d4b was refused".into()),
        }];
        let xml = junit(&report(&broke, false));
        assert!(xml.contains("message=\"misconfigured: the key [REDACTED] was refused\""), "{xml}");
    }

    #[test]
    fn xml_escape_covers_markup_quotes_and_controls() {
        assert_eq!(xml_escape("a<b>&\"c'\n\t\u{0}\u{1b}é"), "a&lt;b&gt;&amp;&quot;c&apos;&#10;&#9;\u{FFFD}\u{FFFD}é");
    }

    #[test]
    fn json_lines_are_run_results_one_per_line() {
        let runs = sample_runs();
        let text = json_lines(&report(&runs, false));
        let parsed: Vec<RunResult> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(parsed.iter().map(|r| r.check.as_str()).collect::<Vec<_>>(), ["health", "products", "auth"]);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn the_table_shows_each_check_its_error_and_the_verdict_without_colors() {
        let runs = sample_runs();
        let text = table(&report(&runs, false), Style::PLAIN);
        assert!(!text.contains('\x1b'));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("health    passed    -"), "{text}");
        assert!(
            lines[2].starts_with("products  failed    http_status") && lines[2].contains("products 12 ×2"),
            "{text}"
        );
        assert!(lines[3].trim_start().starts_with("[cli] products FAILED at step products"), "{text}");
        assert!(text.contains("payment   error     SecretUnavailable"), "{text}");
        assert!(
            text.ends_with(
                "FAIL: 1 passed, 1 degraded, 1 failed, 1 error(s) against https://shop/?a=1&b=<2> (env cli); exit 1\n"
            ),
            "{text}"
        );
        let colored = table(&report(&runs, false), Style { color: true });
        assert!(colored.contains("\x1b[32mpassed    \x1b[0m"), "{colored}");
    }
}

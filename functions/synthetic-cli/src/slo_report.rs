//! `synthetic slo`: gathers samples per check (CloudWatch or a history file), applies
//! [`slo::budget`] and prints a table or JSON.

use crate::cloudwatch::{self, MetricQuery};
use crate::slo::{self, Budget, HOUR, Objective, Ratio, Sample, Status, format_duration};
use crate::style::{Style, Tone};
use crate::{Exit, SloArgs, SloFormat, fail, history, print_report, selected_checks};
use serde::Serialize;
use synthetic_checks::Check;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Serialize)]
pub struct CheckBudget {
    pub check: String,
    pub env: String,
    pub target_pct: f64,
    pub window_secs: u64,
    pub interval_secs: u64,
    #[serde(flatten)]
    pub budget: Budget,
}

#[derive(Serialize)]
pub struct SloReport {
    /// RFC 3339.
    pub generated_at: String,
    /// `cloudwatch:<namespace>` or `file:<path>`.
    pub source: String,
    pub checks: Vec<CheckBudget>,
}

pub async fn execute(args: SloArgs) -> Exit {
    let now = OffsetDateTime::now_utc();
    let objective = Objective { target: args.objective, window_secs: args.window, interval_secs: args.interval };
    let checks = selected_checks(&args.check);
    let (source, samples) = match gather(&args, &checks, now.unix_timestamp()).await {
        Ok(gathered) => gathered,
        Err(error) => return fail(error),
    };
    let report = SloReport {
        generated_at: now.format(&Rfc3339).unwrap_or_default(),
        source,
        checks: checks
            .iter()
            .zip(samples)
            .map(|(check, samples)| CheckBudget {
                check: check.name().to_string(),
                env: args.env.clone(),
                target_pct: round_pct(objective.target),
                window_secs: objective.window_secs,
                interval_secs: objective.interval_secs,
                budget: slo::budget(&samples, &objective, now.unix_timestamp()),
            })
            .collect(),
    };
    let text = match args.format {
        SloFormat::Table => table(&report, Style::stdout()),
        SloFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(error) => return fail(format!("report does not serialize: {error}")),
        },
    };
    print_report(&text, Exit::Passed)
}

/// Samples per selected check, in order, from the history file or CloudWatch.
async fn gather(args: &SloArgs, checks: &[Check], now: i64) -> Result<(String, Vec<Vec<Sample>>), String> {
    if let Some(path) = &args.history {
        let text = std::fs::read_to_string(path).map_err(|e| format!("history file {}: {e}", path.display()))?;
        let samples = checks
            .iter()
            .map(|check| history::samples(&text, *check, &args.env))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("history file {}, {e}", path.display()))?;
        return Ok((format!("file:{}", path.display()), samples));
    }
    // Six hours at least, for the 6 h burn rate.
    let lookback = args.window.max(6 * HOUR);
    let client = aws_sdk_cloudwatch::Client::new(&synthetic_checks::aws::sdk_config().await);
    let mut samples = Vec::new();
    for check in checks {
        let query = MetricQuery {
            namespace: &args.namespace,
            check: check.name(),
            env: &args.env,
            start: now - i64::try_from(lookback).unwrap_or(i64::MAX / 2),
            end: now,
            period_secs: cloudwatch::period_for(lookback, args.interval),
        };
        samples.push(cloudwatch::samples(&client, &query).await?);
    }
    Ok((format!("cloudwatch:{}", args.namespace), samples))
}

fn round_pct(fraction: f64) -> f64 {
    (fraction * 100.0 * 1e6).round() / 1e6
}

fn ratio_text(ratio: Ratio, suffix: &str, decimals: usize) -> String {
    match ratio {
        Ratio::NoData => "-".to_string(),
        Ratio::Finite(value) => format!("{value:.decimals$}{suffix}"),
        Ratio::Infinite => "∞".to_string(),
    }
}

pub fn table(report: &SloReport, style: Style) -> String {
    let header = [
        "CHECK",
        "TARGET",
        "WINDOW",
        "AVAILABILITY",
        "ALLOWED",
        "CONSUMED",
        "REMAINING",
        "BUDGET USED",
        "STATUS",
        "BURN 1h",
        "BURN 6h",
        "COVERAGE",
        "RUNS",
    ];
    let widths = [9, 8, 8, 13, 10, 10, 10, 12, 9, 8, 8, 9, 6];
    let row = |cells: &[String]| -> String {
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$} "));
        }
        line.trim_end().to_string() + "\n"
    };
    let mut out = format!("Error budgets from {} (env {}), {}\n", report.source, env_of(report), report.generated_at);
    out.push_str(&row(&header.map(str::to_string)));
    for entry in &report.checks {
        let b = &entry.budget;
        let tone = match b.status {
            Status::Healthy => Tone::Good,
            Status::AtRisk => Tone::Warn,
            Status::Burned => Tone::Bad,
            Status::NoData => Tone::Dim,
        };
        let mut cells = [
            entry.check.clone(),
            format!("{}%", entry.target_pct),
            format_duration(entry.window_secs as f64),
            b.availability.map_or("-".to_string(), |a| format!("{:.3}%", a * 100.0)),
            format_duration(b.allowed_downtime_secs),
            format_duration(b.downtime_consumed_secs),
            format_duration(b.remaining_budget_secs),
            ratio_text(b.budget_consumed_pct, "%", 1),
            b.status.as_str().to_string(),
            ratio_text(b.burn_rate_1h, "", 2),
            ratio_text(b.burn_rate_6h, "", 2),
            format!("{:.1}%", b.coverage * 100.0),
            b.runs.to_string(),
        ];
        let mut line = row(&cells);
        if style.color {
            // Paint the padded status cell in place, so the columns stay aligned.
            let padded = format!("{:<9} ", cells[8]);
            cells[8] = style.paint(&padded, tone);
            line = line.replacen(&padded, &cells[8], 1);
        }
        out.push_str(&line);
    }
    out
}

fn env_of(report: &SloReport) -> &str {
    report.checks.first().map_or("-", |c| c.env.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_every_figure_and_edge_values_readably() {
        let objective = Objective { target: 1.0, window_secs: 30 * 24 * HOUR, interval_secs: 300 };
        let failing = [Sample { at: 99, runs: 1, available: 0 }];
        let entry = |check: &str, samples: &[Sample]| CheckBudget {
            check: check.into(),
            env: "prod".into(),
            target_pct: 100.0,
            window_secs: objective.window_secs,
            interval_secs: 300,
            budget: slo::budget(samples, &objective, 100),
        };
        let report = SloReport {
            generated_at: "2026-11-21T10:00:00Z".into(),
            source: "file:runs.jsonl".into(),
            checks: vec![entry("health", &failing), entry("auth", &[])],
        };
        let text = table(&report, Style::PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Error budgets from file:runs.jsonl (env prod), 2026-11-21T10:00:00Z");
        assert!(lines[1].starts_with("CHECK     TARGET   WINDOW   AVAILABILITY"), "{text}");
        let health: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(health[..4], ["health", "100%", "30d", "0.000%"], "{text}");
        assert!(lines[2].contains("BURNED") && lines[2].contains('∞'), "{text}");
        assert!(lines[3].contains("NO DATA") && !lines[3].contains("NaN"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][0]["burn_rate_1h"], "infinite");
        assert_eq!(json["checks"][0]["status"], "BURNED");
        assert!(json["checks"][1]["availability"].is_null());
    }
}

//! The thresholds of a canary analysis, from a TOML policy (a file for `synthetic canary`, the
//! `CANARY_POLICY` variable for the `canary-gate` Lambda), validated like a journey: each mistake
//! with its line and column.

use crate::journey::file::toml_integer;
use serde::Serialize;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// The thresholds of a canary analysis; every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// Runs per side below which the verdict is `inconclusive`.
    pub min_runs: u64,
    /// The canary's failure rate may not exceed this (0.01 = 1 %).
    pub max_failure_rate: f64,
    /// A failure rate significantly above the baseline's at this level rolls back.
    pub failure_alpha: f64,
    /// The canary's p95 (and p99) may be at most this multiple of the baseline's.
    pub latency_tolerance: f64,
    /// Differences smaller than this many milliseconds never roll back: they are noise.
    pub latency_min_difference_ms: f64,
    /// A latency difference must also be significant at this level (Mann-Whitney U).
    pub latency_alpha: f64,
    /// p99 is compared from this many samples per side.
    pub p99_min_samples: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_runs: 10,
            max_failure_rate: 0.01,
            failure_alpha: 0.05,
            latency_tolerance: 1.1,
            latency_min_difference_ms: 5.0,
            latency_alpha: 0.05,
            p99_min_samples: 100,
        }
    }
}

impl Policy {
    /// Reads a policy file; each mistake is a `file:line:column: sentence` line.
    pub fn load(path: &Path) -> Result<Policy, Vec<String>> {
        let shown = path.display().to_string();
        let source =
            std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read the policy: {e}")])?;
        Policy::parse(&source).map_err(|problems| problems.into_iter().map(|p| format!("{shown}:{p}")).collect())
    }

    /// Parses policy TOML; each mistake is a `line:column: sentence` line.
    pub fn parse(source: &str) -> Result<Policy, Vec<String>> {
        let position = |offset: usize| {
            let before = &source[..offset.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{line}:{column}")
        };
        let (document, syntax) = DeTable::parse_recoverable(source);
        let mut problems: Vec<String> = syntax
            .iter()
            .map(|e| format!("{}: {}", position(e.span().map_or(0, |s| s.start)), e.message().trim()))
            .collect();
        let mut policy = Policy::default();
        for (key, value) in document.get_ref().iter() {
            let at = position(value.span().start);
            let number = match value.get_ref() {
                DeValue::Integer(i) => toml_integer(i).map(|n| n as f64),
                DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                _ => None,
            };
            let Some(number) = number.filter(|n| n.is_finite() && *n >= 0.0) else {
                problems.push(format!("{at}: {} must be a non-negative number", key.get_ref()));
                continue;
            };
            let fraction = |name: &str, problems: &mut Vec<String>| {
                if number > 1.0 {
                    problems.push(format!("{at}: {name} is a fraction from 0 to 1 (0.01 = 1 %)"));
                }
                number
            };
            match key.get_ref().as_ref() {
                "min_runs" => policy.min_runs = number.max(1.0) as u64,
                "max_failure_rate" => policy.max_failure_rate = fraction("max_failure_rate", &mut problems),
                "failure_alpha" => policy.failure_alpha = fraction("failure_alpha", &mut problems),
                "latency_tolerance" if number >= 1.0 => policy.latency_tolerance = number,
                "latency_tolerance" => problems.push(format!("{at}: latency_tolerance is a ratio of at least 1.0")),
                "latency_min_difference_ms" => policy.latency_min_difference_ms = number,
                "latency_alpha" => policy.latency_alpha = fraction("latency_alpha", &mut problems),
                "p99_min_samples" => policy.p99_min_samples = number as usize,
                other => problems.push(format!(
                    "{}: unknown key {other:?}; expected one of min_runs, max_failure_rate, failure_alpha, \
                     latency_tolerance, latency_min_difference_ms, latency_alpha, p99_min_samples",
                    position(key.span().start)
                )),
            }
        }
        match problems.is_empty() {
            true => Ok(policy),
            false => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_are_validated_with_positions() {
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        let policy = Policy::parse("min_runs = 30\nlatency_tolerance = 1.25\nmax_failure_rate = 0.02\n").unwrap();
        assert_eq!((policy.min_runs, policy.latency_tolerance, policy.max_failure_rate), (30, 1.25, 0.02));
        let problems = Policy::parse("min_runs = \"ten\"\nmax_failure_rate = 5\ncolour = 1\n").unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("1:12: min_runs must be"), "{problems:?}");
        assert!(problems[1].starts_with("2:20: max_failure_rate is a fraction"), "{problems:?}");
        assert!(problems[2].starts_with("3:1: unknown key \"colour\""), "{problems:?}");
    }

    #[test]
    fn integers_keep_their_radix() {
        let policy = Policy::parse(
            "min_runs = 0x10
p99_min_samples = 0o20
latency_min_difference_ms = 0b101
",
        )
        .unwrap();
        assert_eq!((policy.min_runs, policy.p99_min_samples, policy.latency_min_difference_ms), (16, 16, 5.0));
    }
}

//! `synthetic validate`: journey files and checks folders checked before they reach a deploy.
//!
//! Every mistake of every file is reported with its file, line, column and key: as
//! `file:line:column: sentence` on stderr, the way compilers report, so editors and CI
//! annotations can jump to it; or with `--format json` as one JSON object per mistake on stdout,
//! for tools and assistants that fix journeys.

use crate::{Exit, ValidateArgs, ValidateFormat, print_report};
use serde::Serialize;
use std::path::Path;
use synthetic_checks::JourneyDef;
use synthetic_checks::catalog::{Catalog, LocatedProblem};

/// One mistake, as `--format json` prints it. `line`, `column` and `key` are absent when the
/// mistake is the file's as a whole (it cannot be read).
#[derive(Debug, PartialEq, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl Finding {
    fn text(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}: {}", self.file, self.message),
            _ => format!("{}: {}", self.file, self.message),
        }
    }
}

impl From<LocatedProblem> for Finding {
    fn from(p: LocatedProblem) -> Self {
        let located = p.line > 0;
        Finding {
            file: p.file.display().to_string(),
            line: located.then_some(p.line),
            column: located.then_some(p.column),
            key: located.then_some(p.key),
            message: p.message,
        }
    }
}

pub fn execute(args: &ValidateArgs) -> Exit {
    let text = args.format == ValidateFormat::Text;
    let mut exit = Exit::Passed;
    let mut findings = Vec::new();
    for path in &args.files {
        let checked = match path.is_dir() {
            // A checks folder: every check file against the folder's defaults, and what only the
            // whole folder shows (an unknown `depends_on`, a dependency cycle).
            true => Catalog::load(path)
                .map(|catalog| {
                    catalog
                        .checks()
                        .iter()
                        .map(|c| (c.path.display().to_string(), c.name.clone(), c.journey.steps.len()))
                        .collect()
                })
                .map_err(|problems| problems.0),
            false => synthetic_checks::catalog::load_file_located(path)
                .map(|journey| vec![(path.display().to_string(), journey.check.clone(), journey.steps.len())]),
        };
        match checked {
            Ok(valid) if text => {
                for (file, check, steps) in valid {
                    println!("{file}: ok ({check}, {steps} step(s))");
                }
            }
            Ok(_) => {}
            Err(problems) => {
                exit = Exit::Error;
                findings.extend(problems.into_iter().map(Finding::from));
            }
        }
    }
    if text {
        for finding in &findings {
            eprintln!("{}", crate::scrubbed(&finding.text()));
        }
        return exit;
    }
    let json: String = findings.iter().map(|f| serde_json::to_string(f).unwrap_or_default() + "\n").collect();
    print_report(&json, exit)
}

/// Reads and parses a journey file (with its checks folder's defaults when it is in one, and
/// the files it names beside it); the error lines name the file, and the line and column of
/// each mistake.
pub fn load(path: &Path) -> Result<JourneyDef, Vec<String>> {
    synthetic_checks::catalog::load_file(path)
}

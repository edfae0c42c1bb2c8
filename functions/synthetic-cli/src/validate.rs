//! `synthetic validate`: journey files checked before they reach a deploy.
//!
//! Every mistake of every file is reported with its file, line, column and key: as
//! `file:line:column: sentence` on stderr, the way compilers report, so editors and CI
//! annotations can jump to it; or with `--format json` as one JSON object per mistake on stdout,
//! for tools and assistants that fix journeys.

use crate::{Exit, ValidateArgs, ValidateFormat, print_report};
use serde::Serialize;
use std::path::Path;
use synthetic_checks::JourneyDef;
use synthetic_checks::journey::FolderFiles;

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

pub fn execute(args: &ValidateArgs) -> Exit {
    let mut exit = Exit::Passed;
    let mut json = String::new();
    for path in &args.files {
        match check(path) {
            Ok(journey) if args.format == ValidateFormat::Text => {
                println!("{}: ok ({}, {} step(s))", path.display(), journey.check, journey.steps.len())
            }
            Ok(_) => {}
            Err(findings) => {
                exit = Exit::Error;
                for finding in findings {
                    match args.format {
                        ValidateFormat::Text => eprintln!("{}", crate::scrubbed(&finding.text())),
                        ValidateFormat::Json => {
                            json.push_str(&serde_json::to_string(&finding).unwrap_or_default());
                            json.push('\n');
                        }
                    }
                }
            }
        }
    }
    match args.format {
        ValidateFormat::Json => print_report(&json, exit),
        ValidateFormat::Text => exit,
    }
}

/// Reads and parses a journey file, and the files it names beside it (a `schema`); the error
/// lines name the file, and the line and column of each mistake.
pub fn load(path: &Path) -> Result<JourneyDef, Vec<String>> {
    check(path).map_err(|findings| findings.iter().map(Finding::text).collect())
}

fn check(path: &Path) -> Result<JourneyDef, Vec<Finding>> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![Finding {
            file: file.clone(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the journey file: {e}"),
        }]
    })?;
    JourneyDef::parse_with(&source, &FolderFiles::beside(path)).map_err(|problems| {
        problems
            .0
            .into_iter()
            .map(|p| Finding {
                file: file.clone(),
                line: Some(p.line),
                column: Some(p.column),
                key: Some(p.key),
                message: p.message,
            })
            .collect()
    })
}

//! `synthetic validate`: journey files and checks folders checked before they reach a deploy.
//!
//! Every mistake of every file is printed as `file:line:column: sentence` on stderr, the way
//! compilers report, so editors and CI annotations can jump to it.

use crate::{Exit, ValidateArgs};
use std::path::Path;
use synthetic_checks::JourneyDef;
use synthetic_checks::catalog::Catalog;

pub fn execute(args: &ValidateArgs) -> Exit {
    let mut exit = Exit::Passed;
    for path in &args.files {
        if path.is_dir() {
            exit = exit.worst(folder(path));
            continue;
        }
        match load(path) {
            Ok(journey) => println!("{}: ok ({}, {} step(s))", path.display(), journey.check, journey.steps.len()),
            Err(lines) => {
                for line in lines {
                    eprintln!("{line}");
                }
                exit = Exit::Error;
            }
        }
    }
    exit
}

/// A checks folder: every check file against the folder's defaults, and what only the whole
/// folder shows (an unknown `depends_on`, a dependency cycle).
fn folder(dir: &Path) -> Exit {
    match Catalog::load(dir) {
        Ok(catalog) => {
            for check in catalog.checks() {
                println!("{}: ok ({}, {} step(s))", check.path.display(), check.name, check.journey.steps.len());
            }
            Exit::Passed
        }
        Err(problems) => {
            for line in problems.lines() {
                eprintln!("{line}");
            }
            Exit::Error
        }
    }
}

/// Reads and parses a journey file; the error lines name the file, and the line and column of
/// each mistake.
pub fn load(path: &Path) -> Result<JourneyDef, Vec<String>> {
    synthetic_checks::catalog::load_file(path)
}

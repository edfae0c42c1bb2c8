//! `synthetic validate`: journey files checked before they reach a deploy.
//!
//! Every mistake of every file is printed as `file:line:column: sentence` on stderr, the way
//! compilers report, so editors and CI annotations can jump to it.

use crate::{Exit, ValidateArgs};
use std::path::Path;
use synthetic_checks::JourneyDef;
use synthetic_checks::journey::FolderFiles;

pub fn execute(args: &ValidateArgs) -> Exit {
    let mut exit = Exit::Passed;
    for path in &args.files {
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

/// Reads and parses a journey file, and the files it names beside it (a `schema`); the error
/// lines name the file, and the line and column of each mistake.
pub fn load(path: &Path) -> Result<JourneyDef, Vec<String>> {
    let shown = path.display().to_string();
    let source =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read the journey file: {e}")])?;
    JourneyDef::parse_with(&source, &FolderFiles::beside(path)).map_err(|problems| problems.located(&shown))
}

//! The checks folder: a check is a file.
//!
//! `checks/<name>.toml` is a journey whose `check` is the file's stem, with an optional
//! `[deploy]` table (schedule, regions, tags, dependencies, enabled). `checks/defaults.toml`
//! holds the `[defaults]` every journey inherits and the `[deploy]` every check inherits, field
//! by field: what a check sets wins, what it leaves out comes from there. Adding a file adds a
//! check; deleting it removes the check at the next deploy.
//!
//! Loading is validation: every mistake of every file is collected with its file, line and
//! column, and so are those only the whole folder shows (a `depends_on` naming no check, a
//! dependency cycle). A catalog that loads is one the plan, the template and the functions can
//! be made from without another check.

use crate::error::CheckError;
use crate::journey::file::LineStarts;
use crate::journey::{FolderFiles, InheritedDefaults, JourneyDef, JourneyFiles};
use crate::plan::{Plan, PlannedCheck};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The shared file of a checks folder; every other `*.toml` in it is a check.
pub const DEFAULTS_FILE: &str = "defaults.toml";
/// The schedules a check may have, in minutes: what the template's schedule mapping holds.
pub const SCHEDULES: [u32; 5] = [1, 2, 5, 10, 15];
const DEFAULT_SCHEDULE_MINUTES: u32 = 5;
const DEPLOY_KEYS: &[&str] = &["schedule_minutes", "regions", "tags", "depends_on", "enabled"];

/// Where and how one check is deployed, its own `[deploy]` over the folder's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deploy {
    pub schedule_minutes: u32,
    /// Empty: every region of the deployment.
    pub regions: Vec<String>,
    pub tags: Vec<String>,
    pub depends_on: Vec<String>,
    pub enabled: bool,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            schedule_minutes: DEFAULT_SCHEDULE_MINUTES,
            regions: Vec::new(),
            tags: Vec::new(),
            depends_on: Vec::new(),
            enabled: true,
        }
    }
}

/// A `[deploy]` table as written: each field that is set, with where (for `depends_on`, whose
/// names only the whole folder can judge).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploySettings {
    pub schedule_minutes: Option<u32>,
    pub regions: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub depends_on: Option<Vec<(String, Range<usize>)>>,
    pub enabled: Option<bool>,
}

impl DeploySettings {
    /// These settings over `base`: a field set here wins, one left out is `base`'s.
    pub fn over(&self, base: &Deploy) -> Deploy {
        Deploy {
            schedule_minutes: self.schedule_minutes.unwrap_or(base.schedule_minutes),
            regions: self.regions.clone().unwrap_or_else(|| base.regions.clone()),
            tags: self.tags.clone().unwrap_or_else(|| base.tags.clone()),
            depends_on: match &self.depends_on {
                Some(names) => names.iter().map(|(name, _)| name.clone()).collect(),
                None => base.depends_on.clone(),
            },
            enabled: self.enabled.unwrap_or(base.enabled),
        }
    }
}

/// One check of the folder, validated.
#[derive(Clone, Debug)]
pub struct CatalogCheck {
    pub name: String,
    pub path: PathBuf,
    /// The journey with the folder's `[defaults]` applied: what runs.
    pub journey: JourneyDef,
    pub deploy: Deploy,
    /// [`journey_digest`] of the defaults file and this one.
    pub journey_sha256: String,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    dir: PathBuf,
    /// Sorted by name.
    checks: Vec<CatalogCheck>,
}

/// One mistake, in the file it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedProblem {
    pub file: PathBuf,
    /// 0 (with the column) for a mistake of the file as a whole, such as one that cannot be read.
    pub line: usize,
    pub column: usize,
    /// The dotted key at fault (`steps[1].capture.token`); empty when there is none.
    pub key: String,
    pub message: String,
}

impl LocatedProblem {
    fn whole_file(file: &Path, message: String) -> Self {
        LocatedProblem { file: file.to_path_buf(), line: 0, column: 0, key: String::new(), message }
    }
}

/// Every mistake in a checks folder, file by file, in the order they appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<LocatedProblem>);

impl Problems {
    /// One `file:line:column: message` line per mistake, as compilers print them.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| match p.line {
                0 => format!("{}: {}", p.file.display(), p.message),
                line => format!("{}:{line}:{}: {}", p.file.display(), p.column, p.message),
            })
            .collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for Problems {}

/// The SHA-256 (lowercase hex) of what a check runs: the folder's defaults file, then the check's
/// own file, with the length of the first in front so that text moved from one to the other
/// still changes it. A function verifies it at cold start against `CHECK_JOURNEY_SHA256`.
pub fn journey_digest(defaults: &str, check: &str) -> String {
    let mut hash = Sha256::new();
    hash.update((defaults.len() as u64).to_be_bytes());
    hash.update(defaults.as_bytes());
    hash.update(check.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder's shared settings, read from `defaults.toml` (both empty when there is none).
#[derive(Clone, Default)]
pub struct FolderDefaults {
    pub journey: InheritedDefaults,
    pub deploy: Deploy,
}

impl FolderDefaults {
    /// Reads a defaults file's text; its mistakes are located in that file by the caller.
    pub fn parse(source: &str) -> Result<FolderDefaults, crate::journey::Problems> {
        let journey = InheritedDefaults::parse(source, &["deploy"]);
        let deploy = read_deploy(source, false);
        match (journey, deploy) {
            (Ok(journey), Ok(deploy)) => Ok(FolderDefaults { journey, deploy: deploy.over(&Deploy::default()) }),
            (journey, deploy) => {
                let mut problems = journey.err().map(|p| p.0).unwrap_or_default();
                problems.extend(deploy.err().map(|p| p.0).unwrap_or_default());
                problems.sort_by_key(|p| (p.line, p.column));
                Err(crate::journey::Problems(problems))
            }
        }
    }
}

/// One check file's text, read against the folder's defaults: its journey and its `[deploy]`
/// as written. `stem` is the file's name without `.toml`, which `check` must equal. This is the
/// one way a check file is read, by the catalog and by the function that runs it.
pub fn parse_check(
    defaults: &FolderDefaults,
    stem: &str,
    source: &str,
    files: &dyn JourneyFiles,
) -> Result<(JourneyDef, DeploySettings), crate::journey::Problems> {
    match (check_journey(defaults, stem, source, files), read_deploy(source, true)) {
        (Ok(journey), Ok(deploy)) => Ok((journey, deploy)),
        (journey, deploy) => {
            let mut problems = journey.err().map(|p| p.0).unwrap_or_default();
            problems.extend(deploy.err().map(|p| p.0).unwrap_or_default());
            problems.sort_by_key(|p| (p.line, p.column));
            Err(crate::journey::Problems(problems))
        }
    }
}

/// The journey half of [`parse_check`]: what the function needs at cold start. Its `[deploy]`
/// was read when the bundle was built, and the digest proves the file is that one, so reading it
/// again would only add to every cold start.
fn check_journey(
    defaults: &FolderDefaults,
    stem: &str,
    source: &str,
    files: &dyn JourneyFiles,
) -> Result<JourneyDef, crate::journey::Problems> {
    let journey = JourneyDef::parse_in_folder(source, files, Some(&defaults.journey), &["deploy"])?;
    if journey.check == stem {
        return Ok(journey);
    }
    let (document, _) = DeTable::parse_recoverable(source);
    let span = document.get_ref().get("check").map_or(0..0, |v| v.span());
    Err(crate::journey::Problems(vec![locate(
        source,
        span,
        format!(
            "check {:?} must be the file's name, {stem:?}: the name is the function's, so a file renamed \
             without it would deploy under one name and report under another",
            journey.check
        ),
    )]))
}

/// Reads one journey file wherever it is: a check of a checks folder (a folder with a
/// `defaults.toml`) with that folder's defaults and rules, any other file as a journey alone.
/// Each error line is `file:line:column: message`.
pub fn load_file(path: &Path) -> Result<JourneyDef, Vec<String>> {
    load_file_located(path).map_err(|problems| Problems(problems).lines())
}

/// [`load_file`], each mistake with its file, position and key, for tools.
pub fn load_file_located(path: &Path) -> Result<JourneyDef, Vec<LocatedProblem>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| vec![LocatedProblem::whole_file(path, format!("cannot read the journey file: {e}"))])
    };
    let source = read(path)?;
    let folder_defaults = path.parent().map(|dir| dir.join(DEFAULTS_FILE)).filter(|d| d.is_file());
    let (Some(defaults_path), Some(stem)) = (folder_defaults, path.file_stem().and_then(|s| s.to_str())) else {
        // A check file copied out of its folder still reads, `[deploy]` and all.
        let alone = FolderDefaults::default();
        let journey =
            JourneyDef::parse_in_folder(&source, &FolderFiles::beside(path), Some(&alone.journey), &["deploy"]);
        let problems = match (journey, read_deploy(&source, true)) {
            (Ok(journey), Ok(_)) => return Ok(journey),
            (journey, deploy) => {
                let mut all: Vec<_> = [journey.err(), deploy.err()].into_iter().flatten().flat_map(|p| p.0).collect();
                all.sort_by_key(|p| (p.line, p.column));
                all
            }
        };
        return Err(in_file(path, crate::journey::Problems(problems)));
    };
    if path.file_name().is_some_and(|name| name == DEFAULTS_FILE) {
        return Err(vec![LocatedProblem::whole_file(
            path,
            "is the folder's defaults, not a journey; validate the folder instead".into(),
        )]);
    }
    let defaults =
        FolderDefaults::parse(&read(&defaults_path)?).map_err(|problems| in_file(&defaults_path, problems))?;
    parse_check(&defaults, stem, &source, &FolderFiles::beside(path))
        .map(|(journey, _)| journey)
        .map_err(|problems| in_file(path, problems))
}

/// The journey a check function runs: the file of the check `CHECK_NAME` in the checks folder
/// packaged beside the binary (`CHECKS_DIR`, by default `checks/` in the binary's own folder,
/// which is the zip's root in Lambda), with the folder's defaults, verified against
/// `CHECK_JOURNEY_SHA256` before it is parsed: a bundle and a configuration from different
/// builds would run a journey nobody validated. Every mistake names its variable.
pub fn bundled_journey(lookup: &dyn Fn(&str) -> Option<String>) -> Result<JourneyDef, CheckError> {
    let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let name = set("CHECK_NAME").ok_or_else(|| {
        CheckError::Misconfigured(
            "CHECK_NAME is not set: it names the check this function runs (checks/<name>.toml)".into(),
        )
    })?;
    if !is_check_name(&name) {
        return Err(CheckError::Misconfigured(format!(
            "CHECK_NAME must be a check's name (1 to 64 of a-z, 0-9, '_' or '-'), got {name:?}"
        )));
    }
    let dir = match set("CHECKS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|p| p.join("checks")))
            .unwrap_or_else(|| PathBuf::from("checks")),
    };
    let path = dir.join(format!("{name}.toml"));
    let source = std::fs::read_to_string(&path).map_err(|error| {
        CheckError::Misconfigured(format!(
            "CHECK_NAME {name}: {} cannot be read ({error}); the bundle has no such check (CHECKS_DIR: {})",
            path.display(),
            dir.display()
        ))
    })?;
    let defaults_path = dir.join(DEFAULTS_FILE);
    let defaults_source = match std::fs::read_to_string(&defaults_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(CheckError::Misconfigured(format!(
                "CHECK_NAME {name}: {} cannot be read ({error})",
                defaults_path.display()
            )));
        }
    };
    let expected = set("CHECK_JOURNEY_SHA256").ok_or_else(|| {
        CheckError::Misconfigured(format!(
            "CHECK_JOURNEY_SHA256 is not set: the digest of checks/{name}.toml as validated at build time \
             (synthetic plan --format json) must come with it"
        ))
    })?;
    let actual = journey_digest(&defaults_source, &source);
    if !expected.eq_ignore_ascii_case(&actual) {
        return Err(CheckError::Misconfigured(format!(
            "CHECK_JOURNEY_SHA256 is {expected}, but {} with its folder's {DEFAULTS_FILE} hashes to {actual}: the \
             code and the configuration of this function come from different builds; nothing was run, redeploy both",
            path.display()
        )));
    }
    let defaults = FolderDefaults::parse(&defaults_source).map_err(|problems| {
        CheckError::Misconfigured(format!(
            "CHECK_NAME {name}: {}",
            problems.located(&defaults_path.display().to_string()).join("; ")
        ))
    })?;
    check_journey(&defaults, &name, &source, &FolderFiles::beside(&path)).map_err(|problems| {
        CheckError::Misconfigured(format!(
            "CHECK_NAME {name}: {}",
            problems.located(&path.display().to_string()).join("; ")
        ))
    })
}

impl Catalog {
    /// Reads every check of `dir` (its `*.toml` but `defaults.toml`; subfolders hold what the
    /// journeys reference, such as schemas).
    pub fn load(dir: &Path) -> Result<Catalog, Problems> {
        let mut problems = Vec::new();
        let whole = |message: String| LocatedProblem {
            key: String::new(),
            file: dir.to_path_buf(),
            line: 1,
            column: 1,
            message,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => return Err(Problems(vec![whole(format!("cannot read the checks folder: {error}"))])),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let defaults_path = dir.join(DEFAULTS_FILE);
        let defaults_source = match std::fs::read_to_string(&defaults_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(Problems(vec![LocatedProblem {
                    key: String::new(),
                    file: defaults_path,
                    line: 1,
                    column: 1,
                    message: format!("cannot read: {error}"),
                }]));
            }
        };
        let defaults = FolderDefaults::parse(&defaults_source).unwrap_or_else(|found| {
            problems.extend(in_file(&defaults_path, found));
            FolderDefaults::default()
        });
        let mut checks = Vec::new();
        let mut dependencies = BTreeMap::new();
        let mut names = BTreeSet::new();
        for path in files.iter().filter(|p| **p != defaults_path) {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            names.insert(stem.clone());
            let source = match std::fs::read_to_string(path) {
                Ok(source) => source,
                Err(error) => {
                    problems.push(LocatedProblem {
                        key: String::new(),
                        file: path.clone(),
                        line: 1,
                        column: 1,
                        message: format!("cannot read: {error}"),
                    });
                    continue;
                }
            };
            match parse_check(&defaults, &stem, &source, &FolderFiles::beside(path)) {
                Ok((journey, deploy)) => {
                    let timeout = crate::monitor::timeout_seconds(&journey);
                    if timeout > crate::monitor::MAX_TIMEOUT_SECONDS {
                        problems.push(LocatedProblem {
                            key: String::new(),
                            file: path.clone(),
                            line: 1,
                            column: 1,
                            message: format!(
                                "a run of {stem} may take up to {timeout} s with its retries and the alert, over the \
                                 {} s a check function may have (Lambda's retry must fit in the event's age): lower \
                                 its steps' fail_after_ms, or split it",
                                crate::monitor::MAX_TIMEOUT_SECONDS
                            ),
                        });
                    }
                    let located: Vec<(String, (usize, usize))> = deploy
                        .depends_on
                        .iter()
                        .flatten()
                        .map(|(name, span)| (name.clone(), position(&source, span.start)))
                        .collect();
                    dependencies.insert(stem.clone(), (path.clone(), located));
                    checks.push(CatalogCheck {
                        name: stem,
                        path: path.clone(),
                        journey,
                        deploy: deploy.over(&defaults.deploy),
                        journey_sha256: journey_digest(&defaults_source, &source),
                    });
                }
                Err(found) => problems.extend(in_file(path, found)),
            }
        }
        if files.iter().all(|p| *p == defaults_path) {
            problems.push(whole(format!("holds no checks: a check is a file <name>.toml beside {DEFAULTS_FILE}")));
        }
        problems.extend(dependency_problems(&names, &dependencies));
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        checks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalog { dir: dir.to_path_buf(), checks })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn checks(&self) -> &[CatalogCheck] {
        &self.checks
    }

    pub fn check(&self, name: &str) -> Option<&CatalogCheck> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Every check's deploy settings, worked out here once for the template, the functions and
    /// the forwarder.
    pub fn plan(&self) -> Plan {
        let checks = self
            .checks
            .iter()
            .map(|check| PlannedCheck {
                name: check.name.clone(),
                schedule_minutes: check.deploy.schedule_minutes,
                regions: check.deploy.regions.clone(),
                tags: check.deploy.tags.clone(),
                depends_on: check.deploy.depends_on.clone(),
                enabled: check.deploy.enabled,
                timeout_seconds: crate::monitor::timeout_seconds(&check.journey),
                reads_account_secret: check.journey.uses_secrets(),
                journey_sha256: check.journey_sha256.clone(),
            })
            .collect();
        Plan { checks }
    }
}

fn in_file(path: &Path, problems: crate::journey::Problems) -> Vec<LocatedProblem> {
    problems
        .0
        .into_iter()
        .map(|p| LocatedProblem {
            file: path.to_path_buf(),
            line: p.line,
            column: p.column,
            key: p.key,
            message: p.message,
        })
        .collect()
}

fn position(source: &str, offset: usize) -> (usize, usize) {
    LineStarts::new(source).locate(source, offset)
}

fn locate(source: &str, span: Range<usize>, message: String) -> crate::journey::Problem {
    let (line, column) = position(source, span.start);
    crate::journey::Problem { line, column, message, key: String::new() }
}

type Dependencies = BTreeMap<String, (PathBuf, Vec<(String, (usize, usize))>)>;

/// A `depends_on` naming no check of the folder, and every dependency cycle: a check that
/// (through others) depends on itself could never page, as each failure would be explained by
/// the next one's. Each cycle is reported once, at the `depends_on` entry of its first check
/// (by name) that leads around it, naming the whole cycle.
fn dependency_problems(names: &BTreeSet<String>, dependencies: &Dependencies) -> Vec<LocatedProblem> {
    let mut problems = Vec::new();
    for (check, (file, depends_on)) in dependencies {
        for (name, (line, column)) in depends_on {
            if !names.contains(name) {
                problems.push(LocatedProblem {
                    key: String::new(),
                    file: file.clone(),
                    line: *line,
                    column: *column,
                    message: format!("{check} depends on {name:?}, which is no check of this folder"),
                });
            }
        }
    }
    let edges: BTreeMap<&str, Vec<&str>> = dependencies
        .iter()
        .map(|(check, (_, deps))| {
            (check.as_str(), deps.iter().map(|(d, _)| d.as_str()).filter(|d| dependencies.contains_key(*d)).collect())
        })
        .collect();
    for cycle in cycles(&edges) {
        let (first, next) = (cycle[0], cycle[1 % cycle.len()]);
        let (file, depends_on) = &dependencies[first];
        let (line, column) = depends_on.iter().find(|(d, _)| d == next).map_or((1, 1), |(_, at)| *at);
        let mut around: Vec<&str> = cycle.clone();
        around.push(first);
        problems.push(LocatedProblem {
            key: String::new(),
            file: file.clone(),
            line,
            column,
            message: format!(
                "depends_on forms a cycle, {}: a check cannot depend on itself, even through others",
                around.join(" -> ")
            ),
        });
    }
    problems
}

/// Every check that names itself, as a cycle of one; then one cycle per strongly connected part
/// of two checks or more: from its first check by name, each step to the first other check (by
/// name) of the same part, until the walk comes back to a check it saw. Fixing one may show the
/// next cycle of the same part.
pub fn cycles<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    let reach = |from: &'a str| {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: Vec<&str> = edges.get(from).cloned().unwrap_or_default();
        while let Some(node) = queue.pop() {
            if seen.insert(node) {
                queue.extend(edges.get(node).into_iter().flatten().copied());
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<&str>> = edges.keys().map(|&n| (n, reach(n))).collect();
    let mut out: Vec<Vec<&str>> =
        edges.iter().filter(|(node, next)| next.contains(node)).map(|(node, _)| vec![*node]).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for &start in edges.keys() {
        let part: BTreeSet<&str> = reachable[start]
            .iter()
            .copied()
            .filter(|n| *n != start && reachable.get(n).is_some_and(|r| r.contains(start)))
            .collect();
        if done.contains(start) || part.is_empty() {
            continue;
        }
        done.insert(start);
        done.extend(part.iter().copied());
        let mut walk = vec![start];
        let mut node = start;
        loop {
            let next = edges[node]
                .iter()
                .copied()
                .filter(|n| *n != node && (part.contains(n) || *n == start))
                .min()
                .unwrap_or(start);
            if let Some(at) = walk.iter().position(|n| *n == next) {
                out.push(walk.split_off(at));
                break;
            }
            walk.push(next);
            node = next;
        }
    }
    out.sort();
    out
}

/// Reads the `[deploy]` table of a check file (`dependencies`: true) or of the defaults file,
/// where `depends_on` has no place: a dependency every check had would include itself.
fn read_deploy(source: &str, dependencies: bool) -> Result<DeploySettings, crate::journey::Problems> {
    let mut reader = DeployReader { source, lines: LineStarts::new(source), problems: Vec::new() };
    let (document, _) = DeTable::parse_recoverable(source);
    // Syntax errors are the journey reader's to report.
    let settings = match document.get_ref().get("deploy") {
        Some(deploy) => reader.deploy(deploy, dependencies),
        None => DeploySettings::default(),
    };
    match reader.problems.is_empty() {
        true => Ok(settings),
        false => Err(crate::journey::Problems(reader.problems)),
    }
}

struct DeployReader<'s> {
    source: &'s str,
    lines: LineStarts,
    problems: Vec<crate::journey::Problem>,
}

impl DeployReader<'_> {
    fn problem(&mut self, span: Range<usize>, message: String) {
        let (line, column) = self.lines.locate(self.source, span.start);
        self.problems.push(crate::journey::Problem { line, column, message, key: String::new() });
    }

    fn deploy(&mut self, value: &Spanned<DeValue<'_>>, dependencies: bool) -> DeploySettings {
        let mut settings = DeploySettings::default();
        let Some(table) = value.get_ref().as_table() else {
            self.problem(value.span(), format!("[deploy] must be a table, not {}", value.get_ref().type_str()));
            return settings;
        };
        let allowed: Vec<&str> = DEPLOY_KEYS.iter().copied().filter(|k| dependencies || *k != "depends_on").collect();
        for (key, _) in table.iter() {
            let key_name = key.get_ref().as_ref();
            if key_name == "depends_on" && !dependencies {
                self.problem(
                    key.span(),
                    "depends_on belongs to a check's own [deploy]: one that every check inherited would make the \
                     dependency depend on itself"
                        .into(),
                );
            } else if !allowed.contains(&key_name) {
                self.problem(
                    key.span(),
                    format!("unknown key {key_name:?} in [deploy]; expected one of {}", allowed.join(", ")),
                );
            }
        }
        if let Some(v) = table.get("schedule_minutes") {
            let minutes = v.get_ref().as_integer().and_then(crate::journey::file::toml_integer);
            match minutes.and_then(|m| u32::try_from(m).ok()).filter(|m| SCHEDULES.contains(m)) {
                Some(m) => settings.schedule_minutes = Some(m),
                None => self.problem(
                    v.span(),
                    format!(
                        "schedule_minutes must be one of {} (what EventBridge and the alarms' periods are set up for)",
                        SCHEDULES.map(|m| m.to_string()).join(", ")
                    ),
                ),
            }
        }
        if let Some(v) = table.get("enabled") {
            match v.get_ref().as_bool() {
                Some(b) => settings.enabled = Some(b),
                None => self.problem(v.span(), "enabled must be true or false".into()),
            }
        }
        settings.regions = table.get("regions").and_then(|v| {
            self.names(v, "regions", is_region, "an AWS region name such as \"eu-west-1\"").map(strip_spans)
        });
        settings.tags = table
            .get("tags")
            .and_then(|v| self.names(v, "tags", is_tag, "1 to 64 of a-z, 0-9, '_' or '-'").map(strip_spans));
        if dependencies {
            settings.depends_on = table.get("depends_on").and_then(|v| {
                self.names(v, "depends_on", is_check_name, "a check's name (1 to 64 of a-z, 0-9, '_' or '-')")
            });
        }
        settings
    }

    /// A list of distinct strings, each of the form `valid` accepts, with where each is.
    fn names(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        valid: fn(&str) -> bool,
        form: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(value.span(), format!("{key} must be a list of strings, such as [\"a\", \"b\"]"));
            return None;
        };
        let mut out: Vec<(String, Range<usize>)> = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let text = match item.get_ref() {
                DeValue::String(s) => s.to_string(),
                other => {
                    self.problem(item.span(), format!("{key} must hold strings, not {}", other.type_str()));
                    ok = false;
                    continue;
                }
            };
            if !valid(&text) {
                self.problem(item.span(), format!("{key}: {text:?} must be {form}"));
                ok = false;
            } else if out.iter().any(|(seen, _)| *seen == text) {
                self.problem(item.span(), format!("{key}: {text:?} is listed twice"));
                ok = false;
            } else {
                out.push((text, item.span()));
            }
        }
        ok.then_some(out)
    }
}

fn strip_spans(names: Vec<(String, Range<usize>)>) -> Vec<String> {
    names.into_iter().map(|(name, _)| name).collect()
}

/// The journey's own rule for `check`, which is also the file's stem and the function's suffix.
pub fn is_check_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_tag(tag: &str) -> bool {
    is_check_name(tag)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`: letters in parts, a number last.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

#[cfg(test)]
mod tests;

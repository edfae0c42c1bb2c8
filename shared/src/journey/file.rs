//! Journey files: the TOML a team writes to describe one check, parsed into a [`JourneyDef`].
//!
//! Parsing is also validation. Every mistake is collected, not just the first, each with the
//! line and column of the key or value at fault and a plain sentence: unknown keys, a template
//! naming a capture no earlier step makes, a bad JSON pointer or status, a `rejected_status`
//! outside a login step. A journey that parses is one the engine can run; nothing is checked
//! again at run time but what only the run can know (the secret's fields, the target's answers).
//! The format is documented in the README ("Journey files").

use super::extract::{Path, Pattern};
use super::files::{JourneyFiles, NoFiles, relative_path};
pub use super::judge::Comparison;
use super::key_path::KeyIndex;
use super::schema::Schema;
use super::template::{Encoding, Ref, Template};
use crate::http::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};
use url::Url;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Slower than this, a correct answer is `degraded`.
    pub degraded_after: Duration,
    /// Slower than this, the attempt is abandoned and fails with `timeout`.
    pub fail_after: Duration,
}

/// `until = { every_ms, within_ms }`: a step sent again, `every` apart, while its answer is not
/// yet what its assertions and captures want (a payment still `pending`), for at most `within`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Until {
    pub every: Duration,
    pub within: Duration,
}

/// Polls closer than this would hammer the target (and could not be told from a retry storm).
const MIN_POLL_MS: u64 = 100;

/// What a step is for changes how its failure reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepRole {
    Normal,
    /// Signs the synthetic account in: its rejected statuses mean the account itself was
    /// rejected, and what it hands back (tokens, cookies) is scrubbed like a secret.
    Login,
    /// Undoes a sandbox write; any failure here is `cleanup_failed`.
    Cleanup,
}

/// Where a step finds a value that later steps use.
#[derive(Clone, Debug, PartialEq)]
pub enum CaptureSource {
    /// A JSON pointer into the body (RFC 6901).
    Json(String),
    Header(String),
    /// The run's cookie of this name, as the jar holds it after the step (a cookie set on a
    /// redirect on the way counts).
    Cookie(String),
    /// The first group of a regex, on the body or on a header.
    Regex {
        pattern: Pattern,
        header: Option<String>,
    },
    /// The first node an RFC 9535 JSONPath selects in the body.
    JsonPath(Path),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    pub name: String,
    pub source: CaptureSource,
}

/// Which statuses count as success: a set (`200,201`) or a range (`200-299`, or `2xx`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedStatus {
    Set(Vec<u16>),
    Range(u16, u16),
}

impl ExpectedStatus {
    pub fn one(status: u16) -> Self {
        ExpectedStatus::Set(vec![status])
    }

    pub fn matches(&self, status: u16) -> bool {
        match self {
            ExpectedStatus::Set(set) => set.contains(&status),
            ExpectedStatus::Range(lo, hi) => (*lo..=*hi).contains(&status),
        }
    }

    /// Parses `200`, `200,201`, `200-299` or `2xx`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let status = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .ok_or_else(|| format!("{s:?} is not an HTTP status (100-599)"))
        };
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            let digit = status(&format!("{class}00"))?;
            return Ok(ExpectedStatus::Range(digit, digit + 99));
        }
        if let Some((lo, hi)) = text.split_once('-') {
            let (lo, hi) = (status(lo)?, status(hi)?);
            if lo > hi {
                return Err(format!("range {text:?} is empty"));
            }
            return Ok(ExpectedStatus::Range(lo, hi));
        }
        let set = text.split(',').map(status).collect::<Result<Vec<_>, _>>()?;
        Ok(ExpectedStatus::Set(set))
    }
}

impl fmt::Display for ExpectedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedStatus::Set(set) => {
                let parts: Vec<String> = set.iter().map(u16::to_string).collect();
                f.write_str(&parts.join(" or "))
            }
            ExpectedStatus::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// One journey: the steps of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyDef {
    /// In the dedup key, the metrics and the alerts.
    pub check: String,
    pub description: String,
    pub steps: Vec<StepDef>,
    /// `[targets]`: the named origins steps may talk to besides the main target. With the main
    /// target, these are the only places the journey sends requests and credentials to.
    targets: BTreeMap<String, Url>,
    /// The secret's fields the steps name, worked out once: every run asks.
    secrets: BTreeSet<String>,
    /// `trace_context = false`: no W3C trace headers on this journey's requests (a target that
    /// refuses or mishandles them); the journey may then set its own.
    pub trace_context: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepDef {
    pub name: String,
    pub role: StepRole,
    /// The `[targets]` name the step talks to; `None`: the main target.
    pub target: Option<String>,
    pub method: Method,
    pub path: Template,
    /// Written as `url` instead of `path`: the template renders a whole URL or an absolute path
    /// (a captured next link), taken as it is and resolved against the step's origin.
    pub whole_url: bool,
    /// `false`: a redirect is the step's answer, to assert on (status, `Location`).
    pub follow_redirects: bool,
    pub headers: Vec<(String, Template)>,
    pub auth: Option<AuthDef>,
    pub body: Option<BodyDef>,
    pub expect_status: ExpectedStatus,
    /// Login steps only.
    pub rejected_status: Option<ExpectedStatus>,
    /// Login steps only: assertions that, when they all hold, mean the account was rejected.
    pub rejected_when: Option<RejectedWhenDef>,
    pub captures: Vec<Capture>,
    pub asserts: Vec<AssertDef>,
    /// Sends an `Idempotency-Key` unique to the run and step, which makes a POST retryable.
    pub idempotent: bool,
    pub skip_if: Option<SkipIf>,
    pub budget: Budget,
    /// Polls the step until its captures and assertions hold.
    pub until: Option<Until>,
    /// Adds an HMAC-SHA256 of the request to it, as each attempt is sent.
    pub sign: Option<SignDef>,
    /// The captures of earlier steps the templates name, worked out once.
    uses: BTreeSet<String>,
    /// Whether a template names a generated value (`{{now.*}}`, `{{uuid}}`), worked out once:
    /// a step that names none is rendered without making them.
    generates: bool,
}

/// `sign = { key, message, header, encoding, prefix }`: an HMAC-SHA256 with `key` over `message`
/// (which alone may name `{{request.*}}`), sent in `header` as `prefix` then the encoded tag.
#[derive(Clone, Debug, PartialEq)]
pub struct SignDef {
    pub key: Template,
    pub message: Template,
    pub header: String,
    pub prefix: Template,
    pub encoding: SignEncoding,
}

/// How a signature's bytes are written in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignEncoding {
    /// Lower-case hex, as GitHub and Stripe send it.
    Hex,
    /// Standard base64 with padding (RFC 4648 §4).
    Base64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AuthDef {
    Bearer(Template),
    Basic { username: Template, password: Template },
}

#[derive(Clone, Debug, PartialEq)]
pub enum BodyDef {
    Json(JsonTemplate),
    Form(Vec<(String, Template)>),
    Raw { content_type: String, text: Template },
}

/// A JSON value whose strings may hold templates.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTemplate {
    /// A JSON string: text with templates in it, or one template forced to a string
    /// (`"{{order_id | string}}"`).
    Text(Template),
    /// A string that is exactly one template (`"{{order_id}}"`): sent with the value's own JSON
    /// type (a captured number stays a number, a captured object an object).
    Typed(Template),
    Value(Value),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum AssertDef {
    Json {
        pointer: String,
        optional: bool,
        test: JsonTestDef,
    },
    /// The first node an RFC 9535 JSONPath selects, judged as a pointer's value is.
    JsonPath {
        path: Path,
        optional: bool,
        test: JsonTestDef,
    },
    Header {
        name: String,
        test: HeaderTestDef,
    },
    BodyContains(Template),
    BodyNotContains(Template),
    BodyMatches(Pattern),
}

#[derive(Clone, Debug, PartialEq)]
pub enum JsonTestDef {
    Exists(bool),
    Equals(JsonTemplate),
    OneOf(Vec<JsonTemplate>),
    NotIn(Vec<JsonTemplate>),
    NonEmpty,
    MinItems(usize),
    Compare(Comparison, serde_json::Number),
    Matches(Pattern),
    NotEquals(JsonTemplate),
    Contains(JsonTemplate),
    Length {
        min: Option<usize>,
        max: Option<usize>,
    },
    /// Valid against the JSON Schema of this file beside the journey.
    Schema(Schema),
}

impl JsonTestDef {
    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonTestDef::Equals(json) | JsonTestDef::NotEquals(json) | JsonTestDef::Contains(json) => {
                json.templates(out)
            }
            JsonTestDef::OneOf(list) | JsonTestDef::NotIn(list) => list.iter().for_each(|json| json.templates(out)),
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HeaderTestDef {
    Equals(Template),
    Contains(Template),
    NotContains(Template),
    Exists(bool),
    Matches(Pattern),
}

/// A login's `rejected_when`: its assertions, and the text as written, which names the cause in
/// the message (it holds template names, never their values).
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedWhenDef {
    pub asserts: Vec<AssertDef>,
    pub written: String,
}

/// The step is not run when this capture holds one of these values (case-insensitive).
#[derive(Clone, Debug, PartialEq)]
pub struct SkipIf {
    pub var: String,
    pub values: Vec<String>,
}

impl SkipIf {
    pub fn holds(&self, value: Option<&str>) -> bool {
        value.is_some_and(|v| self.values.iter().any(|s| s.eq_ignore_ascii_case(v)))
    }
}

/// One mistake in a journey file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The dotted key at fault (`steps[1].capture.token`); empty for the file as a whole.
    pub key: String,
}

/// Every mistake in a journey file, in the order they appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// One `file:line:column: message` line per mistake, as compilers print them.
    pub fn located(&self, file: &str) -> Vec<String> {
        self.0.iter().map(|p| format!("{file}:{}:{}: {}", p.line, p.column, p.message)).collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for Problems {}

const DEFAULT_DEGRADED_MS: u64 = 2_000;
const DEFAULT_FAIL_MS: u64 = 10_000;
const MAX_BUDGET_MS: u64 = 900_000;
const DEFAULT_REJECTED: [u16; 2] = [401, 403];

impl JourneyDef {
    /// Parses and validates a journey that has no folder (compiled into a binary): one that
    /// names a file beside it (a `schema`) is a mistake.
    pub fn parse(source: &str) -> Result<JourneyDef, Problems> {
        Self::parse_with(source, &NoFiles)
    }

    /// Parses and validates a journey file, reporting every mistake found; the files it names
    /// (a `schema`) are read through `files`, from the journey's folder, and compiled now.
    pub fn parse_with(source: &str, files: &dyn JourneyFiles) -> Result<JourneyDef, Problems> {
        Self::parse_in_folder(source, files, None, &[])
    }

    /// Parses a journey of a checks folder: it inherits `inherited` (the folder's shared
    /// `[defaults]`), field by field under its own `[defaults]`, and `also_allowed` are top-level
    /// tables another reader owns (a check's `[deploy]`): they are left to it, not reported as
    /// unknown.
    pub fn parse_in_folder(
        source: &str,
        files: &dyn JourneyFiles,
        inherited: Option<&InheritedDefaults>,
        also_allowed: &[&str],
    ) -> Result<JourneyDef, Problems> {
        let mut reader = Reader::new(source, files);
        let document = reader.document();
        if !reader.problems.is_empty() {
            return Err(reader.finish_err(&document));
        }
        let journey = reader.journey(document.get_ref(), document.span(), inherited.map(|i| &i.0), also_allowed);
        match journey {
            Some(journey) if reader.problems.is_empty() => Ok(journey),
            _ => Err(reader.finish_err(&document)),
        }
    }

    /// The fields of the credentials secret the steps name, sorted.
    pub fn secret_fields(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    pub fn uses_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The named targets of `[targets]` and their base URLs, by name.
    pub fn targets(&self) -> impl Iterator<Item = (&str, &Url)> {
        self.targets.iter().map(|(name, url)| (name.as_str(), url))
    }

    /// The base URL of the named target `name`, if the journey declares it.
    pub fn target(&self, name: &str) -> Option<&Url> {
        self.targets.get(name)
    }

    /// Points the declared target `name` at `url` (a deployment's override). A name the journey
    /// does not declare is refused: a journey talks to its declared origins only.
    pub fn set_target(&mut self, name: &str, url: Url) -> Result<(), Url> {
        match self.targets.get_mut(name) {
            Some(slot) => {
                *slot = url;
                Ok(())
            }
            None => Err(url),
        }
    }
}

impl StepDef {
    /// Every template of the step, wherever it stands.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = vec![&self.path];
        out.extend(self.headers.iter().map(|(_, t)| t));
        match &self.auth {
            Some(AuthDef::Bearer(t)) => out.push(t),
            Some(AuthDef::Basic { username, password }) => out.extend([username, password]),
            None => {}
        }
        if let Some(sign) = &self.sign {
            out.extend([&sign.key, &sign.message, &sign.prefix]);
        }
        match &self.body {
            Some(BodyDef::Json(json)) => json.templates(&mut out),
            Some(BodyDef::Form(fields)) => out.extend(fields.iter().map(|(_, t)| t)),
            Some(BodyDef::Raw { text, .. }) => out.push(text),
            None => {}
        }
        let rejected_when = self.rejected_when.iter().flat_map(|r| &r.asserts);
        for assertion in self.asserts.iter().chain(rejected_when) {
            match assertion {
                AssertDef::Json { test, .. } | AssertDef::JsonPath { test, .. } => test.templates(&mut out),
                AssertDef::Header {
                    test: HeaderTestDef::Equals(t) | HeaderTestDef::Contains(t) | HeaderTestDef::NotContains(t),
                    ..
                } => out.push(t),
                AssertDef::Header { .. } | AssertDef::BodyMatches(_) => {}
                AssertDef::BodyContains(t) | AssertDef::BodyNotContains(t) => out.push(t),
            }
        }
        out
    }

    /// The captures of earlier steps this step's templates name: a cleanup step runs only when
    /// all exist. (`skip_if` may name one that is absent: then it simply does not hold.)
    pub fn captures_used(&self) -> &BTreeSet<String> {
        &self.uses
    }

    /// Whether the step names a generated value, so each rendering must make them anew.
    pub fn generates(&self) -> bool {
        self.generates
    }

    fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.templates().into_iter().flat_map(|t| t.refs())
    }
}

impl JsonTemplate {
    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonTemplate::Text(t) | JsonTemplate::Typed(t) => out.push(t),
            JsonTemplate::Value(_) => {}
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.templates(out)),
            JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.templates(out)),
        }
    }
}

/// A header value with a newline (or another control character) in its text would be refused
/// by the HTTP client at every run; it is a mistake in the file.
fn header_control_character(what: &str) -> String {
    format!("{what} holds a control character (a newline, say), which a header value cannot carry")
}

type Value_<'i> = Spanned<DeValue<'i>>;

/// Walks the parsed document, collecting problems as it goes. Each helper reports what is wrong
/// with the value it reads and returns `None`, so one mistake never hides the next.
struct Reader<'s> {
    source: &'s str,
    lines: LineStarts,
    problems: Vec<Problem>,
    /// The journey's folder, for the files it names.
    files: &'s dyn JourneyFiles,
    /// Each schema file compiled once, however many assertions name it.
    schemas: BTreeMap<String, Schema>,
    /// Where each problem is, for naming its key once the whole file has been read.
    offsets: Vec<usize>,
}

/// Where each line of the source starts, found once: a mistake is located by a binary search,
/// not by scanning the file up to it (which made thousands of mistakes take seconds).
pub(crate) struct LineStarts(Vec<usize>);

impl LineStarts {
    pub(crate) fn new(source: &str) -> Self {
        LineStarts(std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    /// The 1-based line and column (in characters) of byte `offset` of `source`, or of the
    /// character it falls in.
    pub(crate) fn locate(&self, source: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.0.partition_point(|&start| start <= offset);
        let start = self.0[line.saturating_sub(1)];
        (line, source[start..offset].chars().count() + 1)
    }
}

/// What the steps so far have made available to later ones.
struct Context {
    vars: BTreeMap<String, String>,
    captures: BTreeSet<String>,
    /// The names `[targets]` declares.
    targets: BTreeSet<String>,
    /// `[vars]` with their TOML types, for a JSON value that is exactly one var.
    typed_vars: BTreeMap<String, Value>,
    /// Whether the monitor sets `traceparent` and `tracestate` itself.
    trace_context: bool,
}

/// A `[defaults]` table read from a file of its own (`checks/defaults.toml`), which every journey
/// of the folder inherits. Its positions belong to that file, so a journey never reports at them.
#[derive(Clone, Default)]
pub struct InheritedDefaults(Defaults);

impl InheritedDefaults {
    /// Reads the `[defaults]` of a defaults file; `also_allowed` are its other top-level tables,
    /// read by someone else (`[deploy]`).
    pub fn parse(source: &str, also_allowed: &[&str]) -> Result<InheritedDefaults, Problems> {
        let mut reader = Reader::new(source, &NoFiles);
        let document = reader.document();
        if !reader.problems.is_empty() {
            return Err(reader.finish_err(&document));
        }
        let root = document.get_ref();
        reader.known_keys(root, &[&["defaults"][..], also_allowed].concat(), "the defaults file");
        let defaults =
            root.get("defaults").map(|v| reader.defaults(v, &BTreeMap::new(), None, true)).unwrap_or_default();
        match reader.problems.is_empty() {
            true => Ok(InheritedDefaults(defaults)),
            false => Err(reader.finish_err(&document)),
        }
    }
}

impl<'s> Reader<'s> {
    fn new(source: &'s str, files: &'s dyn JourneyFiles) -> Self {
        Reader {
            source,
            lines: LineStarts::new(source),
            problems: Vec::new(),
            files,
            schemas: BTreeMap::new(),
            offsets: Vec::new(),
        }
    }

    /// The parsed document, as much of it as parses, with its syntax errors recorded.
    fn document(&mut self) -> Spanned<DeTable<'s>> {
        let (document, syntax) = DeTable::parse_recoverable(self.source);
        for error in syntax {
            let span = error.span().unwrap_or(0..0);
            self.problem(span, error.message().trim().to_string());
        }
        document
    }
}

impl Reader<'_> {
    fn finish_err(mut self, document: &Spanned<DeTable<'_>>) -> Problems {
        let keys = KeyIndex::new(document);
        for (problem, offset) in self.problems.iter_mut().zip(&self.offsets) {
            problem.key = keys.key_at(*offset);
        }
        self.problems.sort_by_key(|p| (p.line, p.column));
        Problems(self.problems)
    }

    fn problem(&mut self, span: Range<usize>, message: String) {
        // `locate` steps back to a character boundary; so does the offset the key is found at.
        let mut offset = span.start.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, column) = self.lines.locate(self.source, offset);
        self.problems.push(Problem { line, column, message, key: String::new() });
        self.offsets.push(offset);
    }

    fn journey(
        &mut self,
        root: &DeTable<'_>,
        span: Range<usize>,
        inherited: Option<&Defaults>,
        also_allowed: &[&str],
    ) -> Option<JourneyDef> {
        let keys =
            [&["check", "description", "trace_context", "vars", "targets", "defaults", "steps"][..], also_allowed]
                .concat();
        self.known_keys(root, &keys, "the journey");
        let trace_context = root.get("trace_context").and_then(|v| self.boolean(v, "trace_context")).unwrap_or(true);
        let check = match root.get("check") {
            Some(value) => self.string(value, "check").and_then(|(name, span)| {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
                if !valid {
                    self.problem(span, format!("check {name:?} must be 1 to 64 of a-z, 0-9, '_' or '-'"));
                }
                valid.then_some(name)
            }),
            None => {
                self.problem(span.clone(), "the journey has no `check = \"name\"`".into());
                None
            }
        };
        let description = root.get("description").and_then(|v| self.string(v, "description")).map(|(d, _)| d);
        let vars = root.get("vars").map(|v| self.vars(v)).unwrap_or_default();
        let defaults = match root.get("defaults") {
            Some(v) => self.defaults(v, &vars, inherited, trace_context),
            None => inherited.cloned().unwrap_or_default(),
        };
        let targets = root.get("targets").map(|v| self.targets(v)).unwrap_or_default();
        let typed_vars = root.get("vars").map(typed_vars).unwrap_or_default();
        let mut context = Context {
            vars,
            captures: BTreeSet::new(),
            targets: targets.keys().cloned().collect(),
            typed_vars,
            trace_context,
        };
        let steps = match root.get("steps").map(|v| (v.get_ref(), v.span())) {
            Some((DeValue::Array(items), _)) if !items.is_empty() => {
                let mut names: BTreeSet<String> = BTreeSet::new();
                let mut steps = Vec::new();
                for item in items.iter() {
                    if let Some(step) = self.step(item, &defaults, &mut context, &mut names) {
                        steps.push(step);
                    }
                }
                Some(steps)
            }
            Some((_, span)) => {
                self.problem(span, "steps must be a non-empty list of [[steps]] tables".into());
                None
            }
            None => {
                self.problem(span, "the journey has no [[steps]]".into());
                None
            }
        };
        let steps = steps?;
        let secrets = steps
            .iter()
            .flat_map(|s| s.refs().filter_map(|r| if let Ref::Secret(name) = r { Some(name.clone()) } else { None }))
            .collect();
        Some(JourneyDef {
            check: check?,
            description: description.unwrap_or_default(),
            steps,
            targets,
            secrets,
            trace_context,
        })
    }

    fn vars(&mut self, value: &Value_<'_>) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let Some(table) = self.table(value, "[vars]") else {
            return vars;
        };
        for (key, value) in table.iter() {
            let text = match value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Integer(i) => toml_integer(i).map(|n| n.to_string()),
                DeValue::Float(f) => Some(f.as_str().replace('_', "")),
                DeValue::Boolean(b) => Some(b.to_string()),
                _ => None,
            };
            match text {
                Some(text) => {
                    vars.insert(key.get_ref().to_string(), text);
                }
                None => {
                    self.problem(value.span(), format!("vars.{} must be a string, number or boolean", key.get_ref()))
                }
            }
        }
        vars
    }

    /// The journey's `[defaults]`, each field it leaves out taken from `inherited` (headers merge
    /// by name, the journey's own winning).
    fn defaults(
        &mut self,
        value: &Value_<'_>,
        vars: &BTreeMap<String, String>,
        inherited: Option<&Defaults>,
        trace_context: bool,
    ) -> Defaults {
        let mut defaults = inherited.cloned().unwrap_or_default();
        let Some(table) = self.table(value, "[defaults]") else {
            return defaults;
        };
        self.known_keys(
            table,
            &["degraded_after_ms", "fail_after_ms", "headers", "expect_status", "sign"],
            "[defaults]",
        );
        let own_degraded = table.get("degraded_after_ms").map(|v| (self.millis(v, "degraded_after_ms"), v.span()));
        let own_fail = table.get("fail_after_ms").map(|v| (self.millis(v, "fail_after_ms"), v.span()));
        // Where a conflict is reported: at this file's own key. Inherited values conflicting
        // among themselves were reported in their own file.
        let at = own_degraded.as_ref().or(own_fail.as_ref()).map(|(_, span)| span.clone());
        let inherited_from = |own: bool| if own || inherited.is_none() { "" } else { ", inherited" };
        let (degraded_inherited, fail_inherited) = (own_degraded.is_none(), own_fail.is_none());
        defaults.degraded_after_ms = own_degraded.or(defaults.degraded_after_ms);
        defaults.fail_after_ms = own_fail.or(defaults.fail_after_ms);
        // Checked here, once, as a step that sets neither budget would see them.
        let fail = defaults.fail_after_ms.as_ref().map_or(Some(DEFAULT_FAIL_MS), |(ms, _)| *ms);
        if let (Some((Some(degraded), _)), Some(fail), Some(at)) = (&defaults.degraded_after_ms, fail, at)
            && *degraded > fail
        {
            self.problem(
                at,
                format!(
                    "degraded_after_ms ({degraded}{}) must not exceed fail_after_ms ({fail}{})",
                    inherited_from(!degraded_inherited || defaults.degraded_after_ms.is_none()),
                    inherited_from(!fail_inherited || defaults.fail_after_ms.is_none()),
                ),
            );
        }
        if let Some(status) = table.get("expect_status") {
            defaults.expect_status = self.status(status, "expect_status");
        }
        let context = Context {
            vars: vars.clone(),
            captures: BTreeSet::new(),
            targets: BTreeSet::new(),
            typed_vars: BTreeMap::new(),
            trace_context,
        };
        if let Some(headers) = table.get("headers") {
            for (name, template) in self.headers(headers, &context) {
                defaults.headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
                defaults.headers.push((name, template));
            }
        }
        // Checked against [defaults]'s own headers here; against each step's, in the step.
        if let Some(sign) = table.get("sign") {
            defaults.sign = self.sign(sign, &context, &defaults.headers, false, false);
        }
        defaults
    }

    fn step(
        &mut self,
        value: &Value_<'_>,
        defaults: &Defaults,
        context: &mut Context,
        names: &mut BTreeSet<String>,
    ) -> Option<StepDef> {
        let table = self.table(value, "a step")?;
        self.known_keys(table, STEP_KEYS, "a step");
        let name = match table.get("name") {
            Some(v) => self.string(v, "name").and_then(|(name, span)| {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    self.problem(
                        span.clone(),
                        format!("step name {name:?} must be 1 to 64 of A-Z, a-z, 0-9, '_' or '-'"),
                    );
                } else if !names.insert(name.clone()) {
                    self.problem(span, format!("a step named {name:?} already exists; names must be unique"));
                }
                valid.then_some(name)
            }),
            None => {
                self.problem(value.span(), "this step has no `name`".into());
                None
            }
        };
        let role = match table.get("role") {
            None => Some(StepRole::Normal),
            Some(v) => self.string(v, "role").and_then(|(role, span)| match role.as_str() {
                "login" => Some(StepRole::Login),
                "cleanup" => Some(StepRole::Cleanup),
                "normal" => Some(StepRole::Normal),
                other => {
                    self.problem(span, format!("role {other:?} must be \"login\", \"cleanup\" or \"normal\""));
                    None
                }
            }),
        };
        let method = match table.get("method") {
            None => Some(Method::Get),
            Some(v) => self.string(v, "method").and_then(|(method, span)| {
                let parsed = Method::parse(&method.to_ascii_uppercase());
                if parsed.is_none() {
                    self.problem(span, format!("method {method:?} must be {}", Method::NAMES));
                }
                parsed
            }),
        };
        let target = table.get("target").and_then(|v| self.step_target(v, context));
        let path = match (table.get("path"), table.get("url")) {
            (Some(_), Some(url)) => {
                self.problem(url.span(), "a step takes `path` or `url`, not both".into());
                None
            }
            (None, Some(url)) => self.template(url, "url", context),
            (path, None) => self.path(path, value, context),
        };
        let whole_url = table.get("url").is_some();
        let follow_redirects =
            table.get("follow_redirects").and_then(|v| self.boolean(v, "follow_redirects")).unwrap_or(true);
        let mut headers = defaults.headers.clone();
        if let Some(v) = table.get("headers") {
            for (name, template) in self.headers(v, context) {
                headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
                headers.push((name, template));
            }
        }
        let auth = self.auth(table, context);
        let own_header = |name: &str| own_header(table, name);
        // The step's own header and its auth or body would both be sent. (One from [defaults]
        // yields to them: see `StepRecorder`.)
        if let (Some(_), Some(span)) = (&auth, own_header("authorization")) {
            self.problem(span, "an Authorization header and bearer/basic cannot both be set".into());
        }
        let body = self.body(table, context);
        if let (Some(_), Some(span)) = (&body, own_header("content-type")) {
            self.problem(
                span,
                "a Content-Type header and json/form/body cannot both be set (body takes content_type)".into(),
            );
        }
        let expect_status = match table.get("expect_status") {
            Some(v) => self.status(v, "expect_status"),
            None => Some(defaults.expect_status.clone().unwrap_or(ExpectedStatus::Range(200, 299))),
        };
        let rejected_status = match (table.get("rejected_status"), role) {
            (Some(v), Some(StepRole::Login)) => self.status(v, "rejected_status"),
            (Some(v), _) => {
                self.problem(v.span(), "rejected_status belongs to a step with role = \"login\" only".into());
                None
            }
            // A login that says how its rejection reads is judged by that: 401/403 could be a
            // CSRF failure, not the account.
            (None, Some(StepRole::Login)) if table.get("rejected_when").is_some() => None,
            (None, Some(StepRole::Login)) => Some(ExpectedStatus::Set(DEFAULT_REJECTED.to_vec())),
            (None, _) => None,
        };
        if let (Some(expected), Some(rejected), Some(v)) =
            (&expect_status, &rejected_status, table.get("rejected_status"))
            && (100..=599).any(|s| expected.matches(s) && rejected.matches(s))
        {
            self.problem(v.span(), format!("rejected_status {rejected} overlaps expect_status {expected}"));
        }
        let asserts = table.get("assert").map(|v| self.asserts(v, context)).unwrap_or_default();
        let rejected_when = match (table.get("rejected_when"), role) {
            (Some(v), Some(StepRole::Login)) => self.rejected_when(v, context),
            (Some(v), _) => {
                self.problem(v.span(), "rejected_when belongs to a step with role = \"login\" only".into());
                None
            }
            (None, _) => None,
        };
        let idempotent = table.get("idempotent").and_then(|v| self.boolean(v, "idempotent")).unwrap_or(false);
        let skip_if = table.get("skip_if").and_then(|v| self.skip_if(v, context));
        let budget = self.budget(table, defaults);
        let until = table.get("until").and_then(|v| self.until(v, table, method));
        let sign = match table.get("sign") {
            Some(v) if v.get_ref().as_bool() == Some(false) => None,
            Some(v) => self.sign(v, context, &headers, auth.is_some(), body.is_some()),
            None => defaults.sign.clone().filter(|sign| self.default_sign_fits(sign, table)),
        };
        // Captures become available to the steps after this one only.
        // A capture whose source is a mistake is still declared: the mistake is reported once,
        // where it is written, not again at every later use of the name.
        let mut declared = Vec::new();
        let captures = table.get("capture").map(|v| self.captures(v, &mut declared)).unwrap_or_default();
        context.captures.extend(declared);
        let mut step = StepDef {
            name: name?,
            role: role?,
            target,
            method: method?,
            path: path?,
            whole_url,
            follow_redirects,
            headers,
            auth,
            body,
            expect_status: expect_status?,
            rejected_status,
            rejected_when,
            captures,
            asserts,
            idempotent,
            skip_if,
            budget: budget?,
            until,
            sign,
            uses: BTreeSet::new(),
            generates: false,
        };
        step.uses =
            step.refs().filter_map(|r| if let Ref::Capture(name) = r { Some(name.clone()) } else { None }).collect();
        let generates = step.refs().any(|r| matches!(r, Ref::Generated(_)));
        step.generates = generates;
        Some(step)
    }

    /// The step's budget: its own keys, else `[defaults]`, else the built-in ones. A mistake in
    /// `[defaults]` was reported there; here only a conflict the step's own key takes part in is,
    /// at that key.
    fn budget(&mut self, table: &DeTable<'_>, defaults: &Defaults) -> Option<Budget> {
        let own = |reader: &mut Self, key: &str| table.get(key).map(|v| (reader.millis(v, key), v.span()));
        let (own_degraded, own_fail) = (own(self, "degraded_after_ms"), own(self, "fail_after_ms"));
        let (fail, fail_at) = match (own_fail, &defaults.fail_after_ms) {
            (Some((ms, span)), _) => (ms?, Some(span)),
            (None, Some((ms, _))) => ((*ms)?, None),
            (None, None) => (DEFAULT_FAIL_MS, None),
        };
        let (degraded, degraded_at) = match (own_degraded, &defaults.degraded_after_ms) {
            (Some((ms, span)), _) => (ms?, Some(span)),
            (None, Some((ms, _))) => ((*ms)?, None),
            // Only a tighter fail_after was given: the built-in degraded budget shrinks with it.
            (None, None) => (DEFAULT_DEGRADED_MS.min(fail), None),
        };
        if degraded > fail {
            let from_defaults = |own: &Option<Range<usize>>, set: bool| match (own, set) {
                (None, true) => ", from [defaults]",
                _ => "",
            };
            let message = format!(
                "degraded_after_ms ({degraded}{}) must not exceed fail_after_ms ({fail}{})",
                from_defaults(&degraded_at, defaults.degraded_after_ms.is_some()),
                from_defaults(&fail_at, defaults.fail_after_ms.is_some()),
            );
            if let Some(span) = degraded_at.or(fail_at) {
                self.problem(span, message);
            }
            return None;
        }
        Some(Budget { degraded_after: Duration::from_millis(degraded), fail_after: Duration::from_millis(fail) })
    }

    fn auth(&mut self, table: &DeTable<'_>, context: &Context) -> Option<AuthDef> {
        match (table.get("bearer"), table.get("basic")) {
            (Some(_), Some(basic)) => {
                self.problem(basic.span(), "a step takes bearer or basic, not both".into());
                None
            }
            (Some(bearer), None) => {
                let template = self.template(bearer, "bearer", context)?;
                if !template.text_fits_in_header() {
                    self.problem(bearer.span(), header_control_character("bearer"));
                    return None;
                }
                self.fits(template, Encoding::Header, bearer.span()).map(AuthDef::Bearer)
            }
            (None, Some(basic)) => {
                let fields = self.table(basic, "basic")?;
                self.known_keys(fields, &["username", "password"], "basic");
                let part = |reader: &mut Self, key: &str| match fields.get(key) {
                    Some(v) => reader.template(v, key, context),
                    None => Some(Template::literal("")),
                };
                let username = part(self, "username");
                let password = part(self, "password");
                Some(AuthDef::Basic { username: username?, password: password? })
            }
            (None, None) => None,
        }
    }

    fn body(&mut self, table: &DeTable<'_>, context: &Context) -> Option<BodyDef> {
        let given: Vec<&str> = ["json", "form", "body"].into_iter().filter(|k| table.get(*k).is_some()).collect();
        if given.len() > 1 {
            let span = table.get(given[1]).map(|v| v.span()).unwrap_or(0..0);
            self.problem(span, format!("a step has one body: {} cannot be combined", given.join(" and ")));
            return None;
        }
        if let (Some(v), None) = (table.get("content_type"), table.get("body")) {
            self.problem(v.span(), "content_type goes with body = \"...\" (json and form set their own)".into());
        }
        if let Some(json) = table.get("json") {
            return self.json_template(json, context).map(BodyDef::Json);
        }
        if let Some(form) = table.get("form") {
            let fields = self.table(form, "form")?;
            let mut out = Vec::new();
            for (key, value) in fields.iter() {
                let template = match value.get_ref() {
                    DeValue::Integer(i) => match toml_integer(i) {
                        Some(n) => Some(Template::literal(&n.to_string())),
                        None => {
                            self.problem(value.span(), format!("form.{} is out of range", key.get_ref()));
                            None
                        }
                    },
                    DeValue::Boolean(b) => Some(Template::literal(&b.to_string())),
                    _ => self.template(value, &format!("form.{}", key.get_ref()), context),
                };
                out.extend(template.map(|t| (key.get_ref().to_string(), t)));
            }
            return Some(BodyDef::Form(out));
        }
        let text = self.template(table.get("body")?, "body", context)?;
        let content_type = match table.get("content_type") {
            Some(v) => self.string(v, "content_type").map(|(c, _)| c)?,
            None => "text/plain; charset=utf-8".to_string(),
        };
        Some(BodyDef::Raw { content_type, text })
    }

    fn json_template(&mut self, value: &Value_<'_>, context: &Context) -> Option<JsonTemplate> {
        Some(match value.get_ref() {
            DeValue::String(_) => self.json_string(value, context)?,
            DeValue::Integer(i) => match toml_integer(i) {
                Some(n) => JsonTemplate::Value(Value::from(n)),
                None => {
                    self.problem(value.span(), format!("{i} is not an integer JSON can carry"));
                    return None;
                }
            },
            DeValue::Float(f) => {
                match f.as_str().replace('_', "").parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    Some(n) => JsonTemplate::Value(Value::Number(n)),
                    None => {
                        self.problem(value.span(), format!("{} is not a number JSON can carry", f.as_str()));
                        return None;
                    }
                }
            }
            DeValue::Boolean(b) => JsonTemplate::Value(Value::Bool(*b)),
            DeValue::Datetime(_) => {
                self.problem(value.span(), "a TOML date has no JSON form; quote it as a string".into());
                return None;
            }
            DeValue::Array(items) => {
                let items: Vec<_> = items.iter().map(|i| self.json_template(i, context)).collect();
                JsonTemplate::Array(items.into_iter().collect::<Option<_>>()?)
            }
            DeValue::Table(fields) => {
                let fields: Vec<_> = fields
                    .iter()
                    .map(|(k, v)| self.json_template(v, context).map(|t| (k.get_ref().to_string(), t)))
                    .collect();
                JsonTemplate::Object(fields.into_iter().collect::<Option<_>>()?)
            }
        })
    }

    /// A step's `path`, relative to its target.
    fn path(&mut self, path: Option<&Value_<'_>>, step: &Value_<'_>, context: &Context) -> Option<Template> {
        match path {
            Some(v) => self.string(v, "path").and_then(|(path, span)| {
                if !path.starts_with('/') {
                    self.problem(
                        span.clone(),
                        format!("path {path:?} must start with '/': it is relative to the target"),
                    );
                    return None;
                }
                let template = self.template_text(&path, span.clone(), context)?;
                self.fits(template, Encoding::Url, span)
            }),
            None => {
                self.problem(step.span(), "this step has no `path` (or `url`)".into());
                None
            }
        }
    }

    /// A JSON string of the file: exactly one template is sent typed (a var as the TOML value it
    /// is, now); `{{NAME | string}}` forces a string; text around a template keeps it text.
    fn json_string(&mut self, value: &Value_<'_>, context: &Context) -> Option<JsonTemplate> {
        let (text, span) = self.string(value, "a JSON string")?;
        if let Some(inner) = forced_string(&text) {
            return Some(JsonTemplate::Text(self.template_text(&format!("{{{{{inner}}}}}"), span, context)?));
        }
        let template = self.template_text(&text, span, context)?;
        Some(match template.sole_ref() {
            Some(Ref::Var { name, .. }) => match context.typed_vars.get(name) {
                Some(typed) => JsonTemplate::Value(typed.clone()),
                None => JsonTemplate::Text(template),
            },
            Some(_) => JsonTemplate::Typed(template),
            None => JsonTemplate::Text(template),
        })
    }

    fn headers(&mut self, value: &Value_<'_>, context: &Context) -> Vec<(String, Template)> {
        let Some(table) = self.table(value, "headers") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().to_string();
            if !crate::http::is_header_name(&name) {
                self.problem(key.span(), format!("{name:?} is not a valid header name"));
                continue;
            }
            if name.eq_ignore_ascii_case("idempotency-key") {
                self.problem(key.span(), "set `idempotent = true` instead: the key must be unique per run".into());
                continue;
            }
            if name.eq_ignore_ascii_case(crate::http::RUN_ID_HEADER) {
                self.problem(key.span(), format!("{name} is set by the monitor on every request, to the run's id"));
                continue;
            }
            if context.trace_context && crate::trace::is_trace_header(&name) {
                self.problem(
                    key.span(),
                    format!(
                        "{name} is set by the monitor on every request (W3C trace context); set \
                         `trace_context = false` at the top of the journey to send your own"
                    ),
                );
                continue;
            }
            if let Some(template) = self.template(value, &format!("header {name}"), context) {
                if !template.text_fits_in_header() {
                    self.problem(value.span(), header_control_character(&format!("header {name}")));
                    continue;
                }
                if let Some(template) = self.fits(template, Encoding::Header, value.span()) {
                    out.push((name, template));
                }
            }
        }
        out
    }

    /// The captures of a step; `declared` gets every well-formed name, even one whose source is
    /// a mistake.
    fn captures(&mut self, value: &Value_<'_>, declared: &mut Vec<String>) -> Vec<Capture> {
        let Some(table) = self.table(value, "capture") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().to_string();
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || matches!(name.as_str(), "secret" | "vars" | "run" | "now" | "uuid")
            {
                self.problem(
                    key.span(),
                    format!(
                        "capture name {name:?} must be letters, digits, '_' or '-', and not secret, vars, run, now \
                         or uuid"
                    ),
                );
                continue;
            }
            declared.push(name.clone());
            let Some(source) = self.table(value, &format!("capture {name}")) else { continue };
            let source = self.capture_source(source, value.span(), &name);
            out.extend(source.map(|source| Capture { name, source }));
        }
        out
    }

    /// One of `{ json }`, `{ header }`, `{ cookie }`, `{ regex [, header] }` or `{ jsonpath }`.
    fn capture_source(&mut self, source: &DeTable<'_>, span: Range<usize>, name: &str) -> Option<CaptureSource> {
        let what = format!("capture {name}");
        self.known_keys(source, &["json", "header", "cookie", "regex", "jsonpath"], &what);
        let given = |key: &str| source.get(key);
        let keys: Vec<&str> =
            ["json", "header", "cookie", "regex", "jsonpath"].into_iter().filter(|k| given(k).is_some()).collect();
        match (keys.as_slice(), given("header")) {
            (["json"], _) => given("json").and_then(|p| self.pointer(p)).map(CaptureSource::Json),
            (["header"], Some(header)) => self.token(header, "header").map(CaptureSource::Header),
            (["cookie"], _) => given("cookie").and_then(|c| self.token(c, "cookie")).map(CaptureSource::Cookie),
            (["jsonpath"], _) => given("jsonpath").and_then(|p| self.jsonpath(p)).map(CaptureSource::JsonPath),
            (["header", "regex"] | ["regex"], header) => {
                let header = match header {
                    Some(h) => Some(self.token(h, "header")?),
                    None => None,
                };
                let pattern = given("regex").and_then(|r| self.regex(r))?;
                Some(CaptureSource::Regex { pattern, header })
            }
            _ => {
                self.problem(
                    span,
                    format!(
                        "{what} takes one of {{ json = \"/pointer\" }}, {{ header = \"Name\" }}, \
                         {{ cookie = \"name\" }}, {{ regex = \"(...)\" }} (with header = \"Name\" for a header) or \
                         {{ jsonpath = \"$...\" }}"
                    ),
                );
                None
            }
        }
    }

    /// A header or cookie name: both are HTTP tokens.
    fn token(&mut self, value: &Value_<'_>, what: &str) -> Option<String> {
        let (name, span) = self.string(value, what)?;
        if !crate::http::is_header_name(&name) {
            self.problem(span, format!("{name:?} is not a valid {what} name"));
            return None;
        }
        Some(name)
    }

    fn regex(&mut self, value: &Value_<'_>) -> Option<Pattern> {
        let (text, span) = self.string(value, "regex")?;
        Pattern::capturing(&text).map_err(|message| self.problem(span, message)).ok()
    }

    fn jsonpath(&mut self, value: &Value_<'_>) -> Option<Path> {
        let (text, span) = self.string(value, "jsonpath")?;
        Path::parse(&text).map_err(|message| self.problem(span, message)).ok()
    }

    fn until(&mut self, value: &Value_<'_>, step: &DeTable<'_>, method: Option<Method>) -> Option<Until> {
        let fields = self.table(value, "until")?;
        self.known_keys(fields, &["every_ms", "within_ms"], "until");
        let field = |reader: &mut Self, key: &str| match fields.get(key) {
            Some(v) => reader.millis(v, key),
            None => {
                reader.problem(value.span(), format!("until needs {key}"));
                None
            }
        };
        let (every, within) = (field(self, "every_ms"), field(self, "within_ms"));
        let (every, within) = (every?, within?);
        let problem = if every < MIN_POLL_MS {
            Some(format!("until.every_ms must be at least {MIN_POLL_MS}"))
        } else if within < every {
            Some(format!("until.within_ms ({within}) must be at least every_ms ({every})"))
        } else if step.get("assert").is_none() && step.get("capture").is_none() {
            Some("until needs an assert or a capture to wait for".into())
        } else if method.is_some_and(|m| !m.is_idempotent()) && step.get("idempotent").is_none() {
            Some("until repeats the request: a POST or PATCH needs idempotent = true".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.problem(value.span(), problem);
            return None;
        }
        Some(Until { every: Duration::from_millis(every), within: Duration::from_millis(within) })
    }

    /// A regex an assertion matches: no group needed.
    fn any_regex(&mut self, value: &Value_<'_>, what: &str) -> Option<Pattern> {
        let (text, span) = self.string(value, what)?;
        Pattern::any(&text).map_err(|message| self.problem(span, message)).ok()
    }

    /// A number to compare with, as written (an integer stays exact).
    fn number(&mut self, value: &Value_<'_>, what: &str) -> Option<serde_json::Number> {
        let number = match value.get_ref() {
            DeValue::Integer(i) => toml_integer(i).map(serde_json::Number::from),
            DeValue::Float(f) => {
                let text = f.as_str().replace('_', "");
                text.trim_start_matches('+').parse::<serde_json::Number>().ok()
            }
            _ => None,
        };
        if number.is_none() {
            self.problem(value.span(), format!("{what} must be a finite number"));
        }
        number
    }

    /// `length = 3`, or `length = { min = 1, max = 10 }` (either bound may be left out).
    fn length(&mut self, value: &Value_<'_>) -> Option<JsonTestDef> {
        let count = |reader: &mut Self, v: &Value_<'_>, what: &str| {
            let n = v.get_ref().as_integer().and_then(toml_integer).and_then(|n| usize::try_from(n).ok());
            if n.is_none() {
                reader.problem(v.span(), format!("{what} must be a whole number, 0 or more"));
            }
            n
        };
        if let DeValue::Integer(_) = value.get_ref() {
            let n = count(self, value, "length")?;
            return Some(JsonTestDef::Length { min: Some(n), max: Some(n) });
        }
        let table = self.table(value, "length")?;
        self.known_keys(table, &["min", "max"], "length");
        let min = table.get("min").map(|v| count(self, v, "length.min"));
        let max = table.get("max").map(|v| count(self, v, "length.max"));
        match (min, max) {
            (None, None) => {
                self.problem(value.span(), "length takes a number or { min = n, max = m }".into());
                None
            }
            (Some(Some(min)), Some(Some(max))) if min > max => {
                self.problem(value.span(), format!("length range {min}..{max} is empty"));
                None
            }
            (Some(None), _) | (_, Some(None)) => None,
            (min, max) => Some(JsonTestDef::Length { min: min.flatten(), max: max.flatten() }),
        }
    }

    fn rejected_when(&mut self, value: &Value_<'_>, context: &Context) -> Option<RejectedWhenDef> {
        let asserts = self.asserts(value, context);
        match value.get_ref() {
            DeValue::Array(items) if items.is_empty() => {
                self.problem(value.span(), "rejected_when needs at least one assertion".into());
                None
            }
            DeValue::Array(items) if asserts.len() == items.len() => {
                let span = value.span();
                let written = self.source.get(span).map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
                Some(RejectedWhenDef { asserts, written: written.unwrap_or_default() })
            }
            _ => None,
        }
    }

    fn asserts(&mut self, value: &Value_<'_>, context: &Context) -> Vec<AssertDef> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span(),
                "assert must be a list of { json = ... }, { header = ... } or { body_contains = ... }".into(),
            );
            return Vec::new();
        };
        items.iter().filter_map(|item| self.assertion(item, context)).collect()
    }

    fn assertion(&mut self, value: &Value_<'_>, context: &Context) -> Option<AssertDef> {
        let table = self.table(value, "an assertion")?;
        if let Some(locator) = table.get("json").or_else(|| table.get("jsonpath")) {
            self.known_keys(table, &[&["json", "jsonpath", "optional"][..], JSON_TESTS].concat(), "a json assertion");
            let (pointer, path) = match (table.get("json"), table.get("jsonpath")) {
                (Some(_), Some(both)) => {
                    self.problem(both.span(), "an assertion takes json or jsonpath, not both".into());
                    return None;
                }
                (Some(_), None) => (self.pointer(locator), None),
                (None, _) => (None, Some(self.jsonpath(locator))),
            };
            let optional = table.get("optional").and_then(|v| self.boolean(v, "optional")).unwrap_or(false);
            let tests: Vec<&str> = JSON_TESTS.iter().copied().filter(|k| table.get(*k).is_some()).collect();
            let [test] = tests.as_slice() else {
                self.problem(value.span(), format!("a json assertion takes exactly one of {}", JSON_TESTS.join(", ")));
                return None;
            };
            let arg = table.get(*test)?;
            let test = match *test {
                "exists" => self.boolean(arg, "exists").map(JsonTestDef::Exists),
                "non_empty" => match self.boolean(arg, "non_empty") {
                    Some(true) => Some(JsonTestDef::NonEmpty),
                    Some(false) => {
                        self.problem(arg.span(), "non_empty = false asserts nothing; remove it".into());
                        None
                    }
                    None => None,
                },
                "min_items" => {
                    match arg.get_ref().as_integer().and_then(toml_integer).and_then(|n| usize::try_from(n).ok()) {
                        Some(n) => Some(JsonTestDef::MinItems(n)),
                        None => {
                            self.problem(arg.span(), "min_items must be a whole number".into());
                            None
                        }
                    }
                }
                "equals" => self.json_template(arg, context).map(JsonTestDef::Equals),
                "not_equals" => self.json_template(arg, context).map(JsonTestDef::NotEquals),
                "contains" => self.json_template(arg, context).map(JsonTestDef::Contains),
                "matches" => self.any_regex(arg, "matches").map(JsonTestDef::Matches),
                "length" => self.length(arg),
                "schema" => self.schema(arg).map(JsonTestDef::Schema),
                "greater_than" | "at_least" | "less_than" | "at_most" => {
                    let comparison = Comparison::parse(test).unwrap_or(Comparison::AtLeast);
                    self.number(arg, test).map(|n| JsonTestDef::Compare(comparison, n))
                }
                list => {
                    let DeValue::Array(items) = arg.get_ref() else {
                        self.problem(arg.span(), format!("{list} must be a list of values"));
                        return None;
                    };
                    let values: Option<Vec<_>> = items.iter().map(|i| self.json_template(i, context)).collect();
                    values.map(|v| if list == "one_of" { JsonTestDef::OneOf(v) } else { JsonTestDef::NotIn(v) })
                }
            };
            return match path {
                Some(path) => Some(AssertDef::JsonPath { path: path?, optional, test: test? }),
                None => Some(AssertDef::Json { pointer: pointer?, optional, test: test? }),
            };
        }
        if let Some(header) = table.get("header") {
            const HEADER_TESTS: &[&str] = &["equals", "contains", "not_contains", "exists", "matches"];
            self.known_keys(table, &[&["header"][..], HEADER_TESTS].concat(), "a header assertion");
            let name = self.token(header, "header");
            let tests: Vec<&str> = HEADER_TESTS.iter().copied().filter(|k| table.get(*k).is_some()).collect();
            let test = match (tests.as_slice(), tests.first().and_then(|t| table.get(*t))) {
                ([test], Some(v)) => match *test {
                    "equals" => self.template(v, "equals", context).map(HeaderTestDef::Equals),
                    "contains" => self.template(v, "contains", context).map(HeaderTestDef::Contains),
                    "not_contains" => self.template(v, "not_contains", context).map(HeaderTestDef::NotContains),
                    "exists" => self.boolean(v, "exists").map(HeaderTestDef::Exists),
                    _ => self.any_regex(v, "matches").map(HeaderTestDef::Matches),
                },
                _ => {
                    self.problem(
                        value.span(),
                        format!("a header assertion takes exactly one of {}", HEADER_TESTS.join(", ")),
                    );
                    None
                }
            };
            return Some(AssertDef::Header { name: name?, test: test? });
        }
        let body: Vec<&str> = BODY_TESTS.iter().copied().filter(|k| table.get(*k).is_some()).collect();
        if let Some(first) = body.first() {
            self.known_keys(table, BODY_TESTS, "a body assertion");
            if body.len() > 1 {
                self.problem(value.span(), format!("a body assertion takes one of {}", BODY_TESTS.join(", ")));
                return None;
            }
            let arg = table.get(*first)?;
            return match *first {
                "body_contains" => self.template(arg, first, context).map(AssertDef::BodyContains),
                "body_not_contains" => self.template(arg, first, context).map(AssertDef::BodyNotContains),
                _ => self.any_regex(arg, first).map(AssertDef::BodyMatches),
            };
        }
        self.problem(
            value.span(),
            "an assertion starts with json = \"/pointer\", jsonpath = \"$...\", header = \"Name\", \
             body_contains, body_not_contains or body_matches"
                .into(),
        );
        None
    }

    fn skip_if(&mut self, value: &Value_<'_>, context: &Context) -> Option<SkipIf> {
        let table = self.table(value, "skip_if")?;
        self.known_keys(table, &["var", "in"], "skip_if");
        let var = match table.get("var") {
            Some(v) => self.string(v, "var").and_then(|(var, span)| {
                if !context.captures.contains(&var) {
                    self.problem(span, format!("skip_if names {var:?}, which no earlier step captures"));
                    return None;
                }
                Some(var)
            }),
            None => {
                self.problem(value.span(), "skip_if needs var = \"capture\" and in = [\"value\", ...]".into());
                None
            }
        };
        let values = match table.get("in").map(|v| (v.get_ref(), v.span())) {
            Some((DeValue::Array(items), _)) => {
                let values: Vec<_> = items.iter().map(|i| self.string(i, "skip_if.in").map(|(s, _)| s)).collect();
                values.into_iter().collect::<Option<Vec<_>>>()
            }
            Some((_, span)) => {
                self.problem(span, "skip_if.in must be a list of strings".into());
                None
            }
            None => {
                self.problem(value.span(), "skip_if needs in = [\"value\", ...]".into());
                None
            }
        };
        Some(SkipIf { var: var?, values: values? })
    }

    fn status(&mut self, value: &Value_<'_>, key: &str) -> Option<ExpectedStatus> {
        let in_range = |n: i64| (100..=599).contains(&n).then_some(n as u16);
        let integer = |v: &DeValue<'_>| v.as_integer().and_then(toml_integer).and_then(in_range);
        let parsed = match value.get_ref() {
            DeValue::Integer(_) => integer(value.get_ref()).map(ExpectedStatus::one).ok_or(String::new()),
            DeValue::String(text) => ExpectedStatus::parse(text),
            DeValue::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| integer(i.get_ref()))
                .collect::<Option<Vec<_>>>()
                .map(ExpectedStatus::Set)
                .ok_or(String::new()),
            _ => Err(String::new()),
        };
        match parsed {
            Ok(status) => Some(status),
            Err(why) => {
                let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
                self.problem(
                    value.span(),
                    format!("{key} must be an HTTP status (100-599), a list like [200, 201], or a range like \"2xx\" or \"200-299\"{why}"),
                );
                None
            }
        }
    }

    fn pointer(&mut self, value: &Value_<'_>) -> Option<String> {
        let (pointer, span) = self.string(value, "json")?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            self.problem(
                span,
                format!(
                    "JSON pointer {pointer:?} must be \"\" (the whole body) or start with '/', e.g. \"/{pointer}\""
                ),
            );
            return None;
        }
        let bad_escape = pointer.split('~').skip(1).any(|rest| !rest.starts_with(['0', '1']));
        if bad_escape {
            self.problem(span, format!("JSON pointer {pointer:?} has a '~' that is not ~0 or ~1 (RFC 6901)"));
            return None;
        }
        Some(pointer)
    }

    fn millis(&mut self, value: &Value_<'_>, key: &str) -> Option<u64> {
        let parsed = value.get_ref().as_integer().and_then(toml_integer).and_then(|n| u64::try_from(n).ok());
        match parsed {
            Some(ms) if (1..=MAX_BUDGET_MS).contains(&ms) => Some(ms),
            _ => {
                self.problem(
                    value.span(),
                    format!("{key} must be a whole number of milliseconds from 1 to {MAX_BUDGET_MS}"),
                );
                None
            }
        }
    }

    fn template(&mut self, value: &Value_<'_>, what: &str, context: &Context) -> Option<Template> {
        let (text, span) = self.string(value, what)?;
        self.template_text(&text, span, context)
    }

    fn template_text(&mut self, text: &str, span: Range<usize>, context: &Context) -> Option<Template> {
        self.template_in(text, span, context, false)
    }

    /// A template; `signing`: it is a `sign.message`, the one place `{{request.*}}` may stand.
    fn template_in(&mut self, text: &str, span: Range<usize>, context: &Context, signing: bool) -> Option<Template> {
        let template = match Template::parse(text, &context.vars) {
            Ok(template) => template,
            Err(why) => {
                self.problem(span, why);
                return None;
            }
        };
        let mut ok = true;
        for r in template.refs() {
            match r {
                Ref::Capture(name) if !context.captures.contains(name) => {
                    self.problem(span.clone(), format!("{r} names a capture that no earlier step makes"));
                    ok = false;
                }
                Ref::Request(_) if !signing => {
                    self.problem(
                        span.clone(),
                        format!("{r} stands in sign.message only: it is the request being signed"),
                    );
                    ok = false;
                }
                _ => {}
            }
        }
        ok.then_some(template)
    }

    /// The template, if every var in it can go where it is used (`encoding`).
    fn fits(&mut self, template: Template, encoding: Encoding, span: Range<usize>) -> Option<Template> {
        match template.check_vars(encoding) {
            Ok(()) => Some(template),
            Err(why) => {
                self.problem(span, why.to_string());
                None
            }
        }
    }

    fn string(&mut self, value: &Value_<'_>, what: &str) -> Option<(String, Range<usize>)> {
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            other => {
                self.problem(value.span(), format!("{what} must be a string, not {}", other.type_str()));
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value_<'_>, what: &str) -> Option<bool> {
        let parsed = value.get_ref().as_bool();
        if parsed.is_none() {
            self.problem(value.span(), format!("{what} must be true or false"));
        }
        parsed
    }

    fn table<'t, 'i>(&mut self, value: &'t Value_<'i>, what: &str) -> Option<&'t DeTable<'i>> {
        let table = value.get_ref().as_table();
        if table.is_none() {
            self.problem(value.span(), format!("{what} must be a table, not {}", value.get_ref().type_str()));
        }
        table
    }

    fn known_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                self.problem(
                    key.span(),
                    format!("unknown key {:?} in {what}; expected one of {}", key.get_ref(), allowed.join(", ")),
                );
            }
        }
    }
}

/// Where the step's own `headers` set `name` (case-insensitive), if they do.
fn own_header(step: &DeTable<'_>, name: &str) -> Option<Range<usize>> {
    step.get("headers")
        .and_then(|h| h.get_ref().as_table())
        .and_then(|h| h.iter().find(|(k, _)| k.get_ref().eq_ignore_ascii_case(name)))
        .map(|(key, _)| key.span())
}

/// `{{NAME | string}}`, the whole text: the reference inside, to be sent as a JSON string.
fn forced_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    let (name, filter) = inner.rsplit_once('|')?;
    (filter.trim() == "string" && !name.contains("{{") && !name.contains("}}")).then_some(name.trim())
}

/// `[vars]` as the JSON values they are (a string, number or boolean); what cannot be one was
/// reported by `Reader::vars`.
fn typed_vars(value: &Value_<'_>) -> BTreeMap<String, Value> {
    let Some(table) = value.get_ref().as_table() else {
        return BTreeMap::new();
    };
    let typed = |value: &DeValue<'_>| match value {
        DeValue::String(s) => Some(Value::String(s.to_string())),
        DeValue::Integer(i) => toml_integer(i).map(Value::from),
        DeValue::Float(f) => {
            f.as_str().replace('_', "").parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
        }
        DeValue::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    };
    table.iter().filter_map(|(k, v)| Some((k.get_ref().to_string(), typed(v.get_ref())?))).collect()
}

/// `[targets]`: `name = "https://base.example.com/"`. A name becomes the variable that overrides
/// it (`idp`: `TARGET_IDP_URL`), so it is what a variable name can hold, and not `base`, whose
/// variable is the main target's own.
impl Reader<'_> {
    fn targets(&mut self, value: &Value_<'_>) -> BTreeMap<String, Url> {
        let mut targets = BTreeMap::new();
        let Some(table) = self.table(value, "[targets]") else {
            return targets;
        };
        for (key, value) in table.iter() {
            let name = key.get_ref().to_string();
            let valid = name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                self.problem(
                    key.span(),
                    format!("target name {name:?} must be 1 to 32 of a-z, 0-9 or '_', starting with a letter"),
                );
                continue;
            }
            if name == "base" {
                self.problem(
                    key.span(),
                    "target name \"base\" is taken: TARGET_BASE_URL is the main target's variable".into(),
                );
                continue;
            }
            let Some((raw, span)) = self.string(value, &format!("targets.{name}")) else {
                continue;
            };
            // The same rules as TARGET_BASE_URL; the message names the part at fault, never the value.
            match crate::config::parse_target(&format!("targets.{name}"), &raw) {
                Ok(url) => {
                    targets.insert(name, url);
                }
                Err(crate::error::CheckError::Misconfigured(why)) => self.problem(span, why),
                Err(other) => self.problem(span, other.to_string()),
            }
        }
        targets
    }

    /// A step's `target = "name"`, which `[targets]` must declare.
    fn step_target(&mut self, value: &Value_<'_>, context: &Context) -> Option<String> {
        let (name, span) = self.string(value, "target")?;
        if context.targets.contains(&name) {
            return Some(name);
        }
        let declared = match context.targets.is_empty() {
            true => "no [targets] are declared".to_string(),
            false => format!("[targets] declares {}", context.targets.iter().cloned().collect::<Vec<_>>().join(", ")),
        };
        self.problem(span, format!("target {name:?} is not declared in [targets] ({declared})"));
        None
    }
}

/// `schema` and `sign`: what a step adds beyond what it sends and expects.
impl Reader<'_> {
    /// A JSON Schema file beside the journey, read and compiled now (once per file).
    fn schema(&mut self, value: &Value_<'_>) -> Option<Schema> {
        let (file, span) = self.string(value, "schema")?;
        if let Some(schema) = self.schemas.get(&file) {
            return Some(schema.clone());
        }
        let compiled = relative_path(&file)
            .and_then(|()| self.files.read(&file).map_err(|why| format!("schema {why}")))
            .and_then(|text| Schema::compile(&file, &text));
        match compiled {
            Ok(schema) => {
                self.schemas.insert(file, schema.clone());
                Some(schema)
            }
            Err(why) => {
                self.problem(span, why);
                None
            }
        }
    }

    /// Whether [defaults]'s `sign` can go on this step: its header must be one the step does not
    /// set itself (a header, its bearer/basic, its body). A conflict is located at the step's key.
    fn default_sign_fits(&mut self, sign: &SignDef, step: &DeTable<'_>) -> bool {
        let header = sign.header.to_ascii_lowercase();
        let own_header = own_header(step, &header);
        let auth = ["bearer", "basic"].into_iter().find_map(|k| step.get(k)).filter(|_| header == "authorization");
        let body = ["json", "form", "body"].into_iter().find_map(|k| step.get(k)).filter(|_| header == "content-type");
        let Some(span) = own_header.or(auth.map(|v| v.span())).or(body.map(|v| v.span())) else {
            return true;
        };
        self.problem(
            span,
            format!(
                "[defaults] sign puts the signature in {}; this step sets it too (or says sign = false)",
                sign.header
            ),
        );
        false
    }

    /// `sign = { key, message, header, encoding = "hex" | "base64", prefix }`. The header must be
    /// one nothing else sets: the step (its headers, [defaults]'s), its auth or body, or the
    /// monitor.
    fn sign(
        &mut self,
        value: &Value_<'_>,
        context: &Context,
        headers: &[(String, Template)],
        has_auth: bool,
        has_body: bool,
    ) -> Option<SignDef> {
        let table = self.table(value, "sign")?;
        self.known_keys(table, &["key", "message", "header", "encoding", "prefix"], "sign");
        let required = |reader: &mut Self, key: &str| {
            let found = table.get(key);
            if found.is_none() {
                reader.problem(
                    value.span(),
                    format!(
                        "sign needs {key}: sign = {{ key = \"{{{{secret.signing_key}}}}\", message = \"{{{{now.unix}}}}.{{{{request.body}}}}\", header = \"X-Signature\" }}"
                    ),
                );
            }
            found
        };
        let key = required(self, "key").and_then(|v| self.template(v, "sign.key", context));
        let message = required(self, "message").and_then(|v| {
            let (text, span) = self.string(v, "sign.message")?;
            self.template_in(&text, span, context, true)
        });
        let header = required(self, "header").and_then(|v| {
            let name = self.token(v, "header")?;
            let lower = name.to_ascii_lowercase();
            let taken = if headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(&name)) {
                Some("the step already sets it (in headers or [defaults])")
            } else if lower == "authorization" && has_auth {
                Some("the step's bearer or basic sets it")
            } else if lower == "content-type" && has_body {
                Some("the step's body sets it")
            } else if lower != "authorization"
                && (crate::config::SET_OTHERWISE.contains(&lower.as_str())
                    || lower == "x-synthetic-check"
                    || lower == "accept-encoding")
            {
                Some("the monitor sets it on every request")
            } else {
                None
            };
            match taken {
                Some(why) => {
                    self.problem(v.span(), format!("sign.header {name} cannot carry the signature: {why}"));
                    None
                }
                None => Some(name),
            }
        });
        let encoding = match table.get("encoding") {
            None => Some(SignEncoding::Hex),
            Some(v) => self.string(v, "sign.encoding").and_then(|(text, span)| match text.as_str() {
                "hex" => Some(SignEncoding::Hex),
                "base64" => Some(SignEncoding::Base64),
                other => {
                    self.problem(span, format!("sign.encoding {other:?} must be \"hex\" or \"base64\""));
                    None
                }
            }),
        };
        let prefix = match table.get("prefix") {
            None => Some(Template::literal("")),
            Some(v) => self.template(v, "sign.prefix", context).and_then(|t| {
                if !t.text_fits_in_header() {
                    self.problem(v.span(), header_control_character("sign.prefix"));
                    return None;
                }
                self.fits(t, Encoding::Header, v.span())
            }),
        };
        Some(SignDef { key: key?, message: message?, header: header?, prefix: prefix?, encoding: encoding? })
    }
}

const STEP_KEYS: &[&str] = &[
    "name",
    "role",
    "target",
    "method",
    "path",
    "url",
    "follow_redirects",
    "headers",
    "bearer",
    "basic",
    "json",
    "form",
    "body",
    "content_type",
    "expect_status",
    "rejected_status",
    "rejected_when",
    "capture",
    "assert",
    "idempotent",
    "skip_if",
    "until",
    "sign",
    "degraded_after_ms",
    "fail_after_ms",
];

/// A TOML integer's value in the radix it was written in: `0x64` is 100, never 64. Every integer
/// of a TOML file the project reads (journeys, canary policies) is read through here.
/// What a json/jsonpath assertion may test, one per assertion.
const JSON_TESTS: &[&str] = &[
    "exists",
    "equals",
    "not_equals",
    "one_of",
    "not_in",
    "non_empty",
    "min_items",
    "greater_than",
    "at_least",
    "less_than",
    "at_most",
    "matches",
    "contains",
    "length",
    "schema",
];

const BODY_TESTS: &[&str] = &["body_contains", "body_not_contains", "body_matches"];

pub(crate) fn toml_integer(i: &DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

#[derive(Clone, Default)]
struct Defaults {
    /// Each with where it is written; `None` inside when the value is wrong (already reported).
    degraded_after_ms: Option<(Option<u64>, Range<usize>)>,
    fail_after_ms: Option<(Option<u64>, Range<usize>)>,
    expect_status: Option<ExpectedStatus>,
    headers: Vec<(String, Template)>,
    /// Every step's `sign`, unless the step has its own or says `sign = false`.
    sign: Option<SignDef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_status_parses_sets_ranges_and_classes() {
        assert_eq!(ExpectedStatus::parse("200").unwrap(), ExpectedStatus::Set(vec![200]));
        assert_eq!(ExpectedStatus::parse("200, 201").unwrap(), ExpectedStatus::Set(vec![200, 201]));
        assert_eq!(ExpectedStatus::parse("200-299").unwrap(), ExpectedStatus::Range(200, 299));
        assert_eq!(ExpectedStatus::parse("2xx").unwrap(), ExpectedStatus::Range(200, 299));
        for bad in ["", "abc", "99", "600", "300-200", "9xx", "200,,201"] {
            assert!(ExpectedStatus::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ExpectedStatus::parse("2xx").unwrap().matches(204));
        assert!(!ExpectedStatus::parse("200,201").unwrap().matches(202));
        assert_eq!(ExpectedStatus::parse("200,201").unwrap().to_string(), "200 or 201");
    }

    const PAYMENT: &str = r#"
check = "payment"
description = "Sandbox payment"
[vars]
currency = "usd"
[defaults]
degraded_after_ms = 2000
fail_after_ms = 10000
headers = { Accept = "application/json" }

[[steps]]
name = "login"
role = "login"
method = "POST"
path = "/api/auth/token"
json = { user = { email = "{{secret.email}}", password = "{{secret.password}}" }, remember = true }
expect_status = 200
rejected_status = [400, 401]
capture = { token = { json = "/access_token" } }

[[steps]]
name = "create"
method = "post"
path = "/v1/payment_intents"
basic = { username = "{{secret.api_key}}" }
idempotent = true
form = { amount = 100, currency = "{{vars.currency}}" }
expect_status = "2xx"
capture = { id = { json = "/id" }, state = { header = "X-State" } }
assert = [{ json = "/status", not_in = ["failed"] }, { header = "content-type", contains = "json" }]

[[steps]]
name = "refund"
role = "cleanup"
skip_if = { var = "state", in = ["failed"] }
method = "POST"
path = "/v1/refunds"
bearer = "{{token}}"
body = "payment_intent={{id}}&run={{run.id}}"
content_type = "application/x-www-form-urlencoded"
fail_after_ms = 15000
"#;

    fn problems(source: &str) -> Vec<String> {
        JourneyDef::parse(source).unwrap_err().located("j.toml")
    }

    #[test]
    fn a_full_journey_parses_with_defaults_vars_and_roles() {
        let journey = JourneyDef::parse(PAYMENT).unwrap();
        assert_eq!(journey.check, "payment");
        let [login, create, refund] = journey.steps.as_slice() else { panic!("three steps") };
        assert_eq!((login.role, login.method), (StepRole::Login, Method::Post));
        assert_eq!(login.rejected_status, Some(ExpectedStatus::Set(vec![400, 401])));
        assert_eq!(create.method, Method::Post, "methods are case-insensitive");
        assert_eq!(create.expect_status, ExpectedStatus::Range(200, 299));
        assert!(create.idempotent && create.rejected_status.is_none());
        let Some(BodyDef::Form(form)) = &create.body else { panic!("form body") };
        assert_eq!(form[1].1.as_literal().as_deref(), Some("usd"), "vars are inlined");
        assert_eq!(refund.budget.fail_after, Duration::from_millis(15_000));
        assert_eq!(refund.budget.degraded_after, Duration::from_millis(2_000), "from [defaults]");
        assert_eq!(refund.headers.len(), 1, "default headers apply to every step");
        assert_eq!(refund.captures_used().iter().collect::<Vec<_>>(), ["id", "token"]);
        assert_eq!(journey.secret_fields().collect::<Vec<_>>(), ["api_key", "email", "password"]);
    }

    #[test]
    fn every_mistake_is_listed_with_its_line_and_column() {
        let source = r#"check = "shop"
colour = "blue"

[[steps]]
name = "login"
path = "/login"
rejected_status = 401

[[steps]]
name = "items"
path = "/items/{{item_id}}"
expect_status = 999
assert = [{ json = "data", min_items = 1 }]
capture = { item_id = { json = "/id" } }
"#;
        assert_eq!(
            problems(source),
            [
                "j.toml:2:1: unknown key \"colour\" in the journey; expected one of check, description, trace_context, vars, targets, defaults, steps",
                "j.toml:7:19: rejected_status belongs to a step with role = \"login\" only",
                "j.toml:11:8: {{item_id}} names a capture that no earlier step makes",
                "j.toml:12:17: expect_status must be an HTTP status (100-599), a list like [200, 201], or a range like \"2xx\" or \"200-299\"",
                "j.toml:13:20: JSON pointer \"data\" must be \"\" (the whole body) or start with '/', e.g. \"/data\"",
            ]
        );
    }

    #[test]
    fn a_control_character_in_a_header_value_is_a_mistake_in_the_file() {
        let step = "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n";
        for (extra, at) in [
            ("headers = { X-Note = \"a\\nb\" }\n", "j.toml:5:22: header X-Note"),
            ("headers = { X-Note = \"a\\u0001b\" }\n", "j.toml:5:22: header X-Note"),
            ("bearer = \"tok\\r\\n\"\n", "j.toml:5:10: bearer"),
        ] {
            let problems = problems(&format!("{step}{extra}"));
            assert_eq!(problems.len(), 1, "{extra}: {problems:?}");
            assert!(problems[0].starts_with(at) && problems[0].contains("holds a control character"), "{problems:?}");
        }
        let defaults = format!("check = \"a\"\n[defaults]\nheaders = {{ X-A = \"x\\ty\\u007f\" }}\n{}", &step[12..]);
        assert!(problems(&defaults)[0].contains("header X-A holds a control character"), "{defaults}");
        assert!(JourneyDef::parse(&format!("{step}headers = {{ X-Note = \"tab\\there\" }}\n")).is_ok());
    }

    #[test]
    fn structural_mistakes_are_named() {
        let cases = [
            ("check = \"Bad Name\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n", "check \"Bad Name\" must be"),
            ("check = \"a\"\n", "the journey has no [[steps]]"),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"x\"\n", "must start with '/'"),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n",
                "already exists",
            ),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nmethod = \"FETCH\"\n", "method \"FETCH\" must be"),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/{{vars.x}}\"\n", "{{vars.x}} is not defined"),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\njson = {}\nform = {}\n", "one body"),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nbearer = \"t\"\nbasic = {}\n", "bearer or basic"),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nfail_after_ms = 0\n", "from 1 to 900000"),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\ndegraded_after_ms = 5\nfail_after_ms = 4\n",
                "must not exceed",
            ),
            ("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [{ json = \"/a\" }]\n", "exactly one of"),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nheaders = { Idempotency-Key = \"k\" }\n",
                "idempotent = true",
            ),
            (
                "check = \"a\"\n[defaults]\nheaders = { X-Synthetic-Run-Id = \"mine\" }\n[[steps]]\nname = \"a\"\npath = \"/\"\n",
                "X-Synthetic-Run-Id is set by the monitor on every request",
            ),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nskip_if = { var = \"x\", in = [\"y\"] }\n",
                "no earlier step captures",
            ),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\nrole = \"login\"\npath = \"/\"\nexpect_status = \"2xx\"\nrejected_status = 200\n",
                "overlaps",
            ),
            (
                "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nbody = \"x\"\ncontent_type = 3\n",
                "content_type must be a string",
            ),
        ];
        for (source, expected) in cases {
            let found = problems(source);
            assert!(found.iter().any(|p| p.contains(expected)), "{expected:?} not in {found:#?}");
        }
    }

    #[test]
    fn integers_keep_their_radix_wherever_they_stand() {
        let source = r#"check = "radix"
[vars]
amount = 0x64
[[steps]]
name = "pay"
method = "POST"
path = "/pay/{{vars.amount}}"
form = { amount = 0o144, flag = 0b1, plain = 1_000 }
fail_after_ms = 0x1388
degraded_after_ms = 0o7640
expect_status = 0xC8
assert = [{ json = "/items", min_items = 0b10 }, { json = "/amount", equals = 0x64 }]
"#;
        let journey = JourneyDef::parse(source).unwrap_or_else(|p| panic!("{p}"));
        let step = &journey.steps[0];
        assert_eq!(step.path.as_literal().as_deref(), Some("/pay/100"));
        let Some(BodyDef::Form(form)) = &step.body else { panic!("form body") };
        let form: Vec<_> = form.iter().map(|(k, t)| (k.as_str(), t.as_literal().unwrap())).collect();
        assert_eq!(form, [("amount", "100".into()), ("flag", "1".into()), ("plain", "1000".into())]);
        assert_eq!(step.budget.fail_after, Duration::from_millis(5_000));
        assert_eq!(step.budget.degraded_after, Duration::from_millis(4_000));
        assert_eq!(step.expect_status, ExpectedStatus::one(200));
        assert_eq!(
            step.asserts,
            [
                AssertDef::Json { pointer: "/items".into(), optional: false, test: JsonTestDef::MinItems(2) },
                AssertDef::Json {
                    pointer: "/amount".into(),
                    optional: false,
                    test: JsonTestDef::Equals(JsonTemplate::Value(Value::from(100)))
                },
            ]
        );
    }

    #[test]
    fn an_inconsistent_defaults_budget_is_reported_once_where_it_is_written() {
        // GIVEN a [defaults] degraded budget above the built-in fail budget, and two steps
        let source = "check = \"a\"\n[defaults]\ndegraded_after_ms = 20000\n[[steps]]\nname = \"a\"\npath = \"/\"\n\
                      [[steps]]\nname = \"b\"\npath = \"/\"\n[[steps]]\nname = \"c\"\npath = \"/\"\nfail_after_ms = 5000\n";
        // THEN the mistake is reported once at [defaults], and a step whose own budget conflicts
        // with it at that step's key
        assert_eq!(
            problems(source),
            [
                "j.toml:3:21: degraded_after_ms (20000) must not exceed fail_after_ms (10000)",
                "j.toml:13:17: degraded_after_ms (20000, from [defaults]) must not exceed fail_after_ms (5000)",
            ]
        );
        // AND a [defaults] budget out of range is reported once, at its value
        let source = "check = \"a\"\n[defaults]\nfail_after_ms = 0\n[[steps]]\nname = \"a\"\npath = \"/\"\n\
                      [[steps]]\nname = \"b\"\npath = \"/\"\n";
        assert_eq!(
            problems(source),
            ["j.toml:3:17: fail_after_ms must be a whole number of milliseconds from 1 to 900000"]
        );
        // AND no mistake anywhere is reported at 1:1 unless it is there
        for found in problems(
            "check = \"a\"\n[defaults]\nfail_after_ms = 100\n[[steps]]\nname = \"a\"\npath = \"/\"\ndegraded_after_ms = 200\n",
        ) {
            assert!(!found.starts_with("j.toml:1:1:"), "{found}");
        }
    }

    #[test]
    fn a_content_type_header_beside_a_body_is_refused() {
        let source = "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\njson = { a = 1 }\nheaders = { Content-Type = \"text/plain\" }\n";
        assert_eq!(
            problems(source),
            ["j.toml:6:13: a Content-Type header and json/form/body cannot both be set (body takes content_type)"]
        );
    }

    #[test]
    fn a_var_that_cannot_go_where_it_is_used_is_refused_at_load() {
        let source = "check = \"a\"\n[vars]\nup = \"..\"\nnote = \"a\\r\\nX-Evil: 1\"\n[[steps]]\nname = \"a\"\npath = \"/items/{{vars.up}}\"\n\
                      headers = { X-Note = \"{{vars.note}}\" }\nbearer = \"{{vars.note}}\"\njson = { note = \"{{vars.note}}\" }\n";
        assert_eq!(
            problems(source),
            [
                "j.toml:7:8: {{vars.up}} is empty, \".\" or \"..\", which cannot stand as a URL segment",
                "j.toml:8:22: {{vars.note}} holds a control character (CR, LF, NUL, DEL or another), which a header value cannot carry",
                "j.toml:9:10: {{vars.note}} holds a control character (CR, LF, NUL, DEL or another), which a header value cannot carry",
            ]
        );
    }

    #[test]
    fn thousands_of_mistakes_are_each_located_in_one_pass() {
        // GIVEN a file with 60 000 mistakes
        let mut source = String::from("check = \"a\"\n");
        for i in 0..60_000 {
            source.push_str(&format!("bad{i} = 1\n"));
        }
        source.push_str("[[steps]]\nname = \"a\"\npath = \"/\"\n");
        // WHEN it is parsed
        let found = JourneyDef::parse(&source).unwrap_err().0;
        // THEN every mistake is located where it is. (How long this takes is for the bench to say,
        // not a test: in one pass it is about a second in a debug build; scanning the file from its
        // start for each mistake, as before, took over three minutes.)
        assert_eq!(found.len(), 60_000);
        assert!(found.iter().enumerate().all(|(i, p)| (p.line, p.column) == (i + 2, 1)));
        assert!(found[59_999].message.starts_with("unknown key \"bad59999\""));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

        /// Against the reference model (count the newlines before the offset, then the characters
        /// since the last one), over text of newlines, ASCII and multi-byte characters.
        #[test]
        fn a_located_offset_is_the_line_and_column_counting_gives(
            source in "[a\n\u{e9}\u{1F4A5}\r ]{0,200}",
            pick in 0usize..1000,
        ) {
            let boundaries: Vec<usize> = (0..=source.len()).filter(|&i| source.is_char_boundary(i)).collect();
            let offset = boundaries[pick % boundaries.len()];
            let before = &source[..offset];
            let model = (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1);
            proptest::prop_assert_eq!(LineStarts::new(&source).locate(&source, offset), model);
        }
    }

    #[test]
    fn toml_syntax_errors_carry_their_position() {
        let found = problems("check = \"a\"\n[[steps]\nname = 1\n");
        assert!(found[0].starts_with("j.toml:2:"), "{found:?}");
    }

    #[test]
    fn the_whole_body_is_a_valid_pointer_and_steps_default_to_get_and_2xx() {
        let source = "check = \"list\"\n[[steps]]\nname = \"products\"\npath = \"/products\"\nassert = [{ json = \"\", min_items = 1 }]\n";
        let journey = JourneyDef::parse(source).unwrap();
        let step = &journey.steps[0];
        assert_eq!((step.method, step.expect_status.clone()), (Method::Get, ExpectedStatus::Range(200, 299)));
        assert_eq!(
            step.asserts,
            [AssertDef::Json { pointer: String::new(), optional: false, test: JsonTestDef::MinItems(1) }]
        );
        assert!(!journey.uses_secrets());
    }

    #[test]
    fn cookie_regex_and_jsonpath_captures_parse_and_feed_later_steps() {
        let journey = JourneyDef::parse(
            r#"check = "c"
[[steps]]
name = "form"
path = "/login"
capture = { csrf = { cookie = "csrftoken" }, field = { regex = 'name="csrf" value="([^"]+)"' }, loc = { regex = "/orders/(\\d+)", header = "Location" }, kettle = { jsonpath = "$.items[?@.name == 'Kettle'].id" } }
[[steps]]
name = "use"
method = "POST"
path = "/orders/{{loc}}/{{kettle}}"
headers = { X-CSRFToken = "{{csrf}}" }
form = { csrf = "{{field}}" }
"#,
        )
        .unwrap();
        let sources: Vec<String> = journey.steps[0].captures.iter().map(|c| format!("{:?}", c.source)).collect();
        assert!(sources[0].starts_with("Cookie(\"csrftoken\")"), "{sources:?}");
        assert!(matches!(&journey.steps[0].captures[2].source,
            CaptureSource::Regex { pattern, header: Some(h) } if pattern.as_str() == "/orders/(\\d+)" && h == "Location"));
        assert!(matches!(&journey.steps[0].captures[3].source,
            CaptureSource::JsonPath(p) if p.as_str() == "$.items[?@.name == 'Kettle'].id"));
        assert_eq!(journey.steps[1].captures_used().len(), 4);
    }

    #[test]
    fn every_misuse_of_a_capture_is_located() {
        let source = r#"check = "c"
[[steps]]
name = "a"
path = "/"
capture = { a = { regex = "id=(" }, b = { regex = "\\d+" }, c = { jsonpath = "$.items[?" }, d = { cookie = "bad name" }, e = { json = "/x", cookie = "s" }, f = { jsonpath = "items" }, g = { regex = "(x)", header = "Bad Header" }, h = { cookie = "s", regexp = "(x)" } }
"#;
        let found = problems(source);
        let column = |needle: &str| source.lines().nth(4).and_then(|l| l.find(needle)).map_or(0, |c| c + 1);
        let expect = [
            (column(r#""id=(""#), "regex \"id=(\" is invalid: "),
            (column(r#""\\d+""#), "has no group"),
            (column(r#""$.items[?""#), "JSONPath \"$.items[?\" is invalid (RFC 9535)"),
            (column(r#""bad name""#), "\"bad name\" is not a valid cookie name"),
            (column(r#"{ json = "/x", cookie"#), "capture e takes one of"),
            (column(r#""items""#), "JSONPath \"items\" is invalid"),
            (column(r#""Bad Header""#), "\"Bad Header\" is not a valid header name"),
            (column("regexp"), "regexp"),
        ];
        for (col, message) in expect {
            assert!(
                found.iter().any(|p| p.starts_with(&format!("j.toml:5:{col}: ")) && p.contains(message)),
                "{message:?} at 5:{col} not in {found:#?}"
            );
        }
        assert!(found.iter().all(|p| !p.contains('\n')), "one line each: {found:#?}");
    }

    #[test]
    fn the_new_assertions_parse() {
        let journey = JourneyDef::parse(
            r#"check = "a"
[[steps]]
name = "a"
path = "/"
capture = { id = { json = "/id" } }
assert = [
  { json = "/total", greater_than = 0 },
  { json = "/total", at_most = 99.5 },
  { jsonpath = "$.items[?@.name == 'Kettle'].price", at_least = 1e1 },
  { json = "/id", matches = "^ord_" },
  { json = "/status", not_equals = "failed" },
  { json = "/tags", contains = "new" },
  { json = "/items", length = { min = 1, max = 10 } },
  { json = "/code", length = 6 },
  { header = "Cache-Control", exists = true },
  { header = "Server", matches = "^nginx" },
  { header = "X-Debug", not_contains = "stack" },
  { body_matches = "ok|healthy" },
  { body_not_contains = "Exception" },
]
[[steps]]
name = "b"
path = "/"
assert = [{ json = "/id", not_equals = "{{id}}" }, { json = "/ids", contains = "{{id}}" }, { header = "X", not_contains = "{{id}}" }, { body_not_contains = "{{id}}" }]
"#,
        )
        .unwrap_or_else(|p| panic!("{p}"));
        let a = &journey.steps[0].asserts;
        assert_eq!(a.len(), 13);
        assert!(
            matches!(&a[0], AssertDef::Json { test: JsonTestDef::Compare(Comparison::GreaterThan, n), .. } if n.as_i64() == Some(0))
        );
        assert!(
            matches!(&a[1], AssertDef::Json { test: JsonTestDef::Compare(Comparison::AtMost, n), .. } if n.as_f64() == Some(99.5))
        );
        assert!(
            matches!(&a[2], AssertDef::JsonPath { test: JsonTestDef::Compare(Comparison::AtLeast, n), .. } if n.as_f64() == Some(10.0))
        );
        assert!(matches!(&a[6], AssertDef::Json { test: JsonTestDef::Length { min: Some(1), max: Some(10) }, .. }));
        assert!(matches!(&a[7], AssertDef::Json { test: JsonTestDef::Length { min: Some(6), max: Some(6) }, .. }));
        assert!(matches!(&a[8], AssertDef::Header { test: HeaderTestDef::Exists(true), .. }));
        assert!(matches!(&a[12], AssertDef::BodyNotContains(_)));
        assert_eq!(journey.steps[1].captures_used().iter().collect::<Vec<_>>(), ["id"], "templates in the new tests");
    }

    #[test]
    fn every_misuse_of_an_assertion_is_located() {
        let lines = [
            r#"{ json = "/a", greater_than = "ten" }"#,
            r#"{ json = "/a", at_least = inf }"#,
            r#"{ json = "/a", matches = "(" }"#,
            r#"{ json = "/a", length = { min = 5, max = 2 } }"#,
            r#"{ json = "/a", length = -1 }"#,
            r#"{ json = "/a", length = {} }"#,
            r#"{ jsonpath = "$[", exists = true }"#,
            r#"{ json = "/a", jsonpath = "$.a", exists = true }"#,
            r#"{ json = "/a", less_than = 1, at_most = 2 }"#,
            r#"{ header = "X", exists = "yes" }"#,
            r#"{ header = "X", matches = "[" }"#,
            r#"{ header = "X", not_contains = "a", equals = "b" }"#,
            r#"{ body_matches = "(" }"#,
            r#"{ body_contains = "a", body_not_contains = "b" }"#,
            r#"{ json = "/a", not_equals = "{{nope}}" }"#,
        ];
        let source =
            format!("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [\n{}\n]\n", lines.join(",\n"));
        let found = problems(&source);
        let expected = [
            "greater_than must be a finite number",
            "at_least must be a finite number",
            "regex \"(\" is invalid",
            "length range 5..2 is empty",
            "length must be a whole number, 0 or more",
            "length takes a number or { min = n, max = m }",
            "JSONPath \"$[\" is invalid",
            "an assertion takes json or jsonpath, not both",
            "a json assertion takes exactly one of",
            "exists must be",
            "regex \"[\" is invalid",
            "a header assertion takes exactly one of",
            "regex \"(\" is invalid",
            "a body assertion takes one of",
            "{{nope}} names a capture that no earlier step makes",
        ];
        for (i, message) in expected.iter().enumerate() {
            let line = i + 6;
            assert!(
                found.iter().any(|p| p.starts_with(&format!("j.toml:{line}:")) && p.contains(message)),
                "{message:?} on line {line} not in {found:#?}"
            );
        }
    }

    #[test]
    fn rejected_when_belongs_to_a_login_and_replaces_the_default_rejected_statuses() {
        let journey = JourneyDef::parse(
            "check = \"a\"\n[[steps]]\nname = \"login\"\nrole = \"login\"\nmethod = \"POST\"\npath = \"/login\"\n\
             rejected_when = [ { body_contains = \"Invalid password\" },\n  { header = \"X-Login\", exists = false } ]\n",
        )
        .unwrap_or_else(|p| panic!("{p}"));
        let login = &journey.steps[0];
        assert_eq!(login.rejected_status, None, "a 403 may be a CSRF failure, not the account");
        let when = login.rejected_when.as_ref().unwrap();
        assert_eq!(when.asserts.len(), 2);
        assert_eq!(
            when.written,
            r#"[ { body_contains = "Invalid password" }, { header = "X-Login", exists = false } ]"#
        );
        let source = "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nrejected_when = [{ body_contains = \"x\" }]\n\
                      [[steps]]\nname = \"b\"\nrole = \"login\"\npath = \"/\"\nrejected_when = []\n\
                      [[steps]]\nname = \"c\"\nrole = \"login\"\npath = \"/\"\nrejected_when = [{ body_matches = \"(\" }]\n\
                      [[steps]]\nname = \"d\"\nrole = \"login\"\npath = \"/\"\nrejected_when = [{ json = \"/e\", equals = \"{{nope}}\" }]\n";
        let found = problems(source);
        for expected in [
            "j.toml:5:17: rejected_when belongs to a step with role = \"login\" only",
            "j.toml:10:17: rejected_when needs at least one assertion",
            "j.toml:15:35: regex \"(\" is invalid",
            "j.toml:20:42: {{nope}} names a capture that no earlier step makes",
        ] {
            assert!(found.iter().any(|p| p.starts_with(expected)), "{expected:?} not in {found:#?}");
        }
    }

    #[test]
    fn until_parses_and_every_misuse_is_located() {
        let journey = JourneyDef::parse(
            "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nuntil = { every_ms = 1000, within_ms = 30000 }\n\
             assert = [{ json = \"/status\", equals = \"succeeded\" }]\n",
        )
        .unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(
            journey.steps[0].until,
            Some(Until { every: Duration::from_secs(1), within: Duration::from_secs(30) })
        );
        let steps = [
            ("{ every_ms = 1000, within_ms = 30000 }", ""),
            ("{ every_ms = 10, within_ms = 30000 }", "capture = { a = { json = \"/a\" } }\n"),
            ("{ every_ms = 1000, within_ms = 500 }", "capture = { b = { json = \"/a\" } }\n"),
            ("{ every_ms = 1000, within_ms = 5000 }", "method = \"POST\"\ncapture = { c = { json = \"/a\" } }\n"),
            ("{ every_ms = 1000 }", "capture = { d = { json = \"/a\" } }\n"),
            ("{ every_ms = 1000, within_ms = 5000, tries = 3 }", "capture = { e = { json = \"/a\" } }\n"),
        ];
        let source: String =
            std::iter::once("check = \"a\"\n".to_string())
                .chain(steps.iter().enumerate().map(|(n, (until, rest))| {
                    format!("[[steps]]\nname = \"s{n}\"\n{rest}path = \"/\"\nuntil = {until}\n")
                }))
                .collect();
        let found = problems(&source);
        for expected in [
            "j.toml:5:9: until needs an assert or a capture to wait for",
            "j.toml:10:9: until.every_ms must be at least 100",
            "j.toml:15:9: until.within_ms (500) must be at least every_ms (1000)",
            "j.toml:21:9: until repeats the request: a POST or PATCH needs idempotent = true",
            "j.toml:26:9: until needs within_ms",
            "j.toml:31:46: unknown key \"tries\" in until",
        ] {
            assert!(found.iter().any(|p| p.starts_with(expected)), "{expected:?} not in {found:#?}");
        }
    }

    const TWO_ORIGINS: &str = r#"check = "oauth"
targets = { idp = "https://login.example.com/tenant/" }
steps = [{ name = "token", target = "idp", path = "/token" }, { name = "orders", path = "/orders" }]
"#;

    #[test]
    fn named_targets_are_declared_once_and_named_by_steps() {
        let journey = JourneyDef::parse(TWO_ORIGINS).unwrap();
        assert_eq!(
            journey.targets().map(|(n, u)| (n, u.as_str())).collect::<Vec<_>>(),
            [("idp", "https://login.example.com/tenant/")]
        );
        assert_eq!(journey.steps[0].target.as_deref(), Some("idp"));
        assert_eq!(journey.steps[1].target, None, "the main target by default");
        let mut moved = journey.clone();
        assert!(moved.set_target("idp", "https://login.staging.example.com/".parse().unwrap()).is_ok());
        assert_eq!(moved.target("idp").unwrap().host_str(), Some("login.staging.example.com"));
        assert!(moved.set_target("api", "https://x.example.com/".parse().unwrap()).is_err(), "undeclared");
        assert!(moved.target("api").is_none());
    }

    #[test]
    fn every_misuse_of_targets_is_located() {
        let source = r#"check = "oauth"
[targets]
idp = "https://deploy:hunter2@login.example.com/"
Billing = "https://billing.example.com/"
base = "https://other.example.com/"
ftp = "ftp://files.example.com/"
bare = "login.example.com"
num = 5
ok = "https://ok.example.com/"
[[steps]]
name = "a"
target = "api"
path = "/x"
[[steps]]
name = "b"
target = 1
path = "/y"
"#;
        let found = problems(source);
        let expect = [
            "j.toml:3:7: targets.idp must be an absolute http(s) URL without credentials; it carries credentials",
            "j.toml:4:1: target name \"Billing\" must be 1 to 32 of a-z",
            "j.toml:5:1: target name \"base\" is taken: TARGET_BASE_URL",
            "j.toml:6:7: targets.ftp must be an absolute http(s) URL without credentials; its scheme is \"ftp\"",
            "j.toml:7:8: targets.bare must be an absolute http(s) URL",
            "j.toml:8:7: targets.num must be",
            "j.toml:12:10: target \"api\" is not declared in [targets] ([targets] declares ok)",
            "j.toml:16:10: target must be",
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for (line, expected) in found.iter().zip(expect) {
            assert!(line.starts_with(expected), "{line:?} should start with {expected:?}");
        }
        assert!(found.iter().all(|line| !line.contains("hunter2")), "a URL's credentials are never echoed");
        let without = "check = \"c\"\n[[steps]]\nname = \"a\"\ntarget = \"idp\"\npath = \"/x\"\n";
        assert_eq!(
            problems(without),
            ["j.toml:4:10: target \"idp\" is not declared in [targets] (no [targets] are declared)"]
        );
    }

    #[test]
    fn a_sole_template_in_json_is_typed_and_only_json_can_force_a_string() {
        let source = "check = \"t\"\n[vars]\nn = 0x10\nf = 1.5\nb = false\ns = \"x\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\n\
                      capture = { id = { json = \"/id\" } }\n[[steps]]\nname = \"b\"\npath = \"/b\"\n\
                      json = { n = \"{{vars.n}}\", f = \"{{vars.f}}\", b = \"{{vars.b}}\", s = \"{{vars.s}}\", id = \"{{id}}\", \
                      t = \"#{{id}}\", forced = \"{{ id | string }}\" }\n";
        let journey = JourneyDef::parse(source).unwrap();
        let Some(BodyDef::Json(JsonTemplate::Object(fields))) = &journey.steps[1].body else { panic!("a JSON body") };
        let kinds: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| {
                let kind = match v {
                    JsonTemplate::Value(Value::Number(n)) if n.as_i64() == Some(16) => "16",
                    JsonTemplate::Value(Value::Number(n)) if n.as_f64() == Some(1.5) => "1.5",
                    JsonTemplate::Value(Value::Bool(false)) => "false",
                    JsonTemplate::Value(Value::String(s)) if s == "x" => "\"x\"",
                    JsonTemplate::Typed(_) => "typed",
                    JsonTemplate::Text(_) => "text",
                    _ => "other",
                };
                (k.as_str(), kind)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("n", "16"),
                ("f", "1.5"),
                ("b", "false"),
                ("s", "\"x\""),
                ("id", "typed"),
                ("t", "text"),
                ("forced", "text")
            ]
        );
        // `| string` is for a JSON value only, of a value a template may name
        let misuse = "check = \"t\"\n[[steps]]\nname = \"a\"\npath = \"/a/{{x | string}}\"\n\
                      [[steps]]\nname = \"b\"\npath = \"/b\"\njson = { y = \"{{nope | string}}\", z = \"{{ a|number }}\" }\n";
        let found = problems(misuse);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("j.toml:4:8: {{x | string}} is not a template"), "{}", found[0]);
        assert!(
            found[1].starts_with("j.toml:8:14: {{nope}} names a capture that no earlier step makes"),
            "{}",
            found[1]
        );
        assert!(found[2].starts_with("j.toml:8:39: {{a|number}} is not a template"), "{}", found[2]);
    }

    #[test]
    fn a_broken_capture_is_one_mistake_not_also_one_at_every_use() {
        // Each source a capture can take, broken; the later step that uses it is not a mistake too.
        for broken in [
            "{ jsonpath = \"$.a[\" }",
            "{ regex = \"a(\" }",
            "{ regex = \"no-group\" }",
            "{ json = \"a\" }",
            "{ nope = 1 }",
        ] {
            let source = format!(
                "check = \"l\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\ncapture = {{ id = {broken} }}\n\
                 [[steps]]\nname = \"b\"\npath = \"/b/{{{{id}}}}\"\n"
            );
            let found = problems(&source);
            assert!(!found.is_empty() && found.iter().all(|p| p.starts_with("j.toml:5:")), "{broken}: {found:?}");
        }
    }

    #[test]
    fn url_stands_instead_of_path_and_follow_redirects_is_a_boolean() {
        let source = "check = \"l\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\ncapture = { next = { json = \"/next\" } }\n\
                      [[steps]]\nname = \"b\"\nurl = \"{{next}}\"\nfollow_redirects = false\n";
        let journey = JourneyDef::parse(source).unwrap();
        let [a, b] = journey.steps.as_slice() else { panic!("two steps") };
        assert!(!a.whole_url && a.follow_redirects, "path, and redirects followed, by default");
        assert!(b.whole_url && !b.follow_redirects);
        assert_eq!(b.captures_used().iter().collect::<Vec<_>>(), ["next"]);
        let misuse = "check = \"l\"\n[[steps]]\nname = \"a\"\npath = \"/a\"\nurl = \"/b\"\n\
                      [[steps]]\nname = \"b\"\nfollow_redirects = \"no\"\n\
                      [[steps]]\nname = \"c\"\nurl = \"{{later}}\"\n";
        assert_eq!(
            problems(misuse),
            [
                "j.toml:5:7: a step takes `path` or `url`, not both",
                "j.toml:6:1: this step has no `path` (or `url`)",
                "j.toml:8:20: follow_redirects must be true or false",
                "j.toml:11:7: {{later}} names a capture that no earlier step makes",
            ]
        );
    }

    #[test]
    fn generated_values_need_no_capture_and_their_names_are_reserved() {
        let ok =
            "check = \"g\"\n[[steps]]\nname = \"a\"\npath = \"/a/{{uuid}}\"\nheaders = { X-At = \"{{now.iso}}\" }\n";
        let journey = JourneyDef::parse(ok).unwrap();
        assert!(journey.steps[0].captures_used().is_empty() && !journey.uses_secrets());
        let misuse = "check = \"g\"\n[[steps]]\nname = \"a\"\npath = \"/a/{{now.year}}\"\n\
                      capture = { uuid = { json = \"/id\" }, now = { json = \"/now\" } }\n";
        let found = problems(misuse);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("j.toml:4:8: {{now.year}} is not a template"), "{}", found[0]);
        assert!(found[1].starts_with("j.toml:5:13: capture name \"uuid\" must be"), "{}", found[1]);
        assert!(found[2].starts_with("j.toml:5:38: capture name \"now\" must be"), "{}", found[2]);
    }

    const PRODUCT_SCHEMA: &str = r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}"#;

    #[test]
    fn a_schema_beside_the_journey_is_read_and_compiled_once_when_the_journey_is_loaded() {
        let source = "check = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/p\"\n\
                      assert = [{ json = \"\", schema = \"schemas/product.json\" },\n\
                      { jsonpath = \"$.items[0]\", schema = \"schemas/product.json\", optional = true }]\n";
        let files = super::super::files::InMemoryFiles::default().with("schemas/product.json", PRODUCT_SCHEMA);
        let journey = JourneyDef::parse_with(source, &files).unwrap_or_else(|p| panic!("{p}"));
        let [
            AssertDef::Json { test: JsonTestDef::Schema(a), .. },
            AssertDef::JsonPath { test: JsonTestDef::Schema(b), .. },
        ] = journey.steps[0].asserts.as_slice()
        else {
            panic!("{:?}", journey.steps[0].asserts)
        };
        assert_eq!((a.file(), b.file()), ("schemas/product.json", "schemas/product.json"));
        assert!(a.is_valid(&serde_json::json!({"id": 1})) && !a.is_valid(&serde_json::json!({"id": "1"})));
    }

    #[test]
    fn a_missing_invalid_or_escaping_schema_is_located_at_its_key() {
        let lines = [
            r#"{ json = "", schema = "schemas/none.json" }"#,
            r#"{ json = "", schema = "schemas/broken.json" }"#,
            r#"{ json = "", schema = "schemas/not-a-schema.json" }"#,
            r#"{ json = "", schema = "../outside.json" }"#,
            r#"{ json = "", schema = "/etc/passwd" }"#,
            r#"{ json = "", schema = 5 }"#,
        ];
        let source =
            format!("check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [\n{}\n]\n", lines.join(",\n"));
        let files = super::super::files::InMemoryFiles::default()
            .with("schemas/broken.json", "{ \"type\": ")
            .with("schemas/not-a-schema.json", r#"{"type": "thing"}"#);
        let found = JourneyDef::parse_with(&source, &files).unwrap_err().located("j.toml");
        let expected = [
            "j.toml:6:23: schema \"schemas/none.json\" does not exist beside the journey",
            "j.toml:7:23: schema \"schemas/broken.json\" is not JSON",
            "j.toml:8:23: schema \"schemas/not-a-schema.json\" is not a valid JSON Schema",
            "j.toml:9:23: \"../outside.json\" must be a path inside the journey's folder",
            "j.toml:10:23: \"/etc/passwd\" must be a path inside the journey's folder",
            "j.toml:11:23: schema must be a string",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (line, expected) in found.iter().zip(expected) {
            assert!(line.starts_with(expected), "{line:?} should start with {expected:?}");
        }
        // Text alone has no folder: naming a schema is then a clear mistake.
        let alone = problems(
            "check = \"a\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [{ json = \"\", schema = \"p.json\" }]\n",
        );
        assert_eq!(alone.len(), 1, "{alone:?}");
        assert!(
            alone[0].starts_with(
                "j.toml:5:33: schema \"p.json\" cannot be read: this journey was loaded without its folder"
            ),
            "{alone:?}"
        );
    }

    #[test]
    fn sign_parses_and_its_templates_count_as_the_step_s() {
        let source = "check = \"s\"\n[[steps]]\nname = \"login\"\npath = \"/k\"\ncapture = { k = { json = \"/k\" } }\n\
                      [[steps]]\nname = \"a\"\nmethod = \"POST\"\npath = \"/p\"\nbody = \"x\"\n\
                      sign = { key = \"{{secret.signing_key}}\", message = \"{{now.unix}}.{{request.method}} {{request.path}}.{{request.body}}{{k}}\", header = \"X-Signature\", encoding = \"base64\", prefix = \"t={{now.unix}},v1=\" }\n\
                      [[steps]]\nname = \"b\"\npath = \"/p\"\nsign = { key = \"{{vars.k}}\", message = \"{{request.body}}\", header = \"Authorization\" }\n\
                      [vars]\nk = \"key-1\"\n";
        let journey = JourneyDef::parse(source).unwrap_or_else(|p| panic!("{p}"));
        let sign = journey.steps[1].sign.as_ref().unwrap();
        assert_eq!((sign.header.as_str(), sign.encoding), ("X-Signature", SignEncoding::Base64));
        assert_eq!(journey.secret_fields().collect::<Vec<_>>(), ["signing_key"], "the key's secret is fetched");
        assert_eq!(journey.steps[1].captures_used().iter().collect::<Vec<_>>(), ["k"]);
        let plain = journey.steps[2].sign.as_ref().unwrap();
        assert_eq!((plain.encoding, plain.prefix.as_literal().as_deref()), (SignEncoding::Hex, Some("")), "defaults");
    }

    #[test]
    fn every_misuse_of_sign_is_located() {
        let signs = [
            r#"{ message = "m", header = "X-Sig" }"#,
            r#"{ key = "k", header = "X-Sig" }"#,
            r#"{ key = "k", message = "m" }"#,
            r#"{ key = "k", message = "m", header = "X-Sig", encoding = "hex64" }"#,
            r#"{ key = "k", message = "m", header = "X-Mine" }"#,
            r#"{ key = "k", message = "m", header = "Content-Type" }"#,
            r#"{ key = "k", message = "m", header = "Idempotency-Key" }"#,
            r#"{ key = "k", message = "m", header = "x-synthetic-check" }"#,
            r#"{ key = "k", message = "m", header = "Authorization" }"#,
            r#"{ key = "{{request.body}}", message = "m", header = "X-Sig" }"#,
            r#"{ key = "k", message = "m", header = "X-Sig", salt = "x" }"#,
            r#"{ key = "k", message = "{{nope}}", header = "X-Sig" }"#,
            r#"{ key = "k", message = "m", header = "X Sig" }"#,
        ];
        let mut source = "check = \"a\"\n[defaults]\nheaders = { X-Mine = \"1\" }\n".to_string();
        for (n, sign) in signs.iter().enumerate() {
            source.push_str(&format!(
                "[[steps]]\nname = \"s{n}\"\npath = \"/\"\nbody = \"b\"\nbearer = \"t\"\nsign = {sign}\n"
            ));
        }
        source.push_str(
            "[[steps]]\nname = \"x\"\npath = \"/{{request.path}}\"\nheaders = { X-B = \"{{request.body}}\" }\n",
        );
        let found = problems(&source);
        let line = |n: usize| 4 + 6 * n + 5;
        let expected = [
            (line(0), "sign needs key"),
            (line(1), "sign needs message"),
            (line(2), "sign needs header"),
            (line(3), "sign.encoding \"hex64\" must be \"hex\" or \"base64\""),
            (line(4), "sign.header X-Mine cannot carry the signature: the step already sets it"),
            (line(5), "sign.header Content-Type cannot carry the signature: the step's body sets it"),
            (line(6), "sign.header Idempotency-Key cannot carry the signature: the monitor sets it"),
            (line(7), "sign.header x-synthetic-check cannot carry the signature: the monitor sets it"),
            (line(8), "sign.header Authorization cannot carry the signature: the step's bearer or basic sets it"),
            (line(9), "{{request.body}} stands in sign.message only"),
            (line(10), "unknown key \"salt\" in sign"),
            (line(11), "{{nope}} names a capture that no earlier step makes"),
            (line(12), "\"X Sig\" is not a valid header name"),
            (line(13) - 3, "{{request.path}} stands in sign.message only"),
            (line(13) - 2, "{{request.body}} stands in sign.message only"),
        ];
        for (at, message) in expected {
            assert!(
                found.iter().any(|p| p.starts_with(&format!("j.toml:{at}:")) && p.contains(message)),
                "{message:?} on line {at} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn a_sign_in_defaults_signs_every_step_but_one_that_opts_out_and_a_conflict_is_located() {
        let source = "check = \"d\"\n[defaults]\nheaders = { X-Timestamp = \"{{now.unix}}\" }\n\
                      sign = { key = \"{{secret.k}}\", message = \"{{now.unix}}.{{request.body}}\", header = \"X-Signature\" }\n\
                      [[steps]]\nname = \"a\"\npath = \"/a\"\n\
                      [[steps]]\nname = \"b\"\npath = \"/b\"\nsign = false\n\
                      [[steps]]\nname = \"c\"\npath = \"/c\"\nsign = { key = \"{{secret.other}}\", message = \"m\", header = \"X-Other\" }\n";
        let journey = JourneyDef::parse(source).unwrap_or_else(|p| panic!("{p}"));
        let headers: Vec<Option<&str>> =
            journey.steps.iter().map(|s| s.sign.as_ref().map(|sign| sign.header.as_str())).collect();
        assert_eq!(headers, [Some("X-Signature"), None, Some("X-Other")]);
        assert_eq!(journey.secret_fields().collect::<Vec<_>>(), ["k", "other"]);
        let conflict = "check = \"d\"\n[defaults]\nsign = { key = \"k\", message = \"m\", header = \"X-Signature\" }\n\
                        [[steps]]\nname = \"a\"\npath = \"/a\"\nheaders = { X-Signature = \"mine\" }\n\
                        [[steps]]\nname = \"b\"\npath = \"/b\"\nsign = true\n";
        assert_eq!(
            problems(conflict),
            [
                "j.toml:7:13: [defaults] sign puts the signature in X-Signature; this step sets it too (or says sign = false)",
                "j.toml:11:8: sign must be a table, not boolean",
            ]
        );
    }
}

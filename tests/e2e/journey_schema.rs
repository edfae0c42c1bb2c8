//! `docs/journey.schema.json`, the schema editors (Taplo, Even Better TOML) and assistants read,
//! held against the parser that decides: every example journey passes both, the invalid
//! fixture's unknown key fails both, and a generated mistake (an unknown key in any closed table,
//! a required key taken away) is refused by both. Without the last part the schema would drift the
//! first time a key is added to the parser and not to it, and an editor would then flag valid
//! files or wave through broken ones.

use proptest::prelude::*;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use synthetic_checks::JourneyDef;
use synthetic_checks::journey::FolderFiles;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(load_schema);
static EXAMPLES: LazyLock<Vec<(PathBuf, Value)>> = LazyLock::new(|| {
    example_journeys()
        .into_iter()
        .map(|path| {
            let value = as_json(&std::fs::read_to_string(&path).expect("readable"));
            (path, value)
        })
        .collect()
});

fn schema() -> &'static jsonschema::Validator {
    &SCHEMA
}

fn load_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(workspace().join("docs/journey.schema.json")).expect("docs/journey.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::draft7::new(&schema).expect("the schema is a valid draft-07 schema")
}

/// Every journey file the repository ships or tests with, the deliberately broken one aside.
fn example_journeys() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["checks", "tests/journeys"] {
        let Ok(entries) = std::fs::read_dir(workspace().join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".toml") && !name.starts_with("invalid") && name != "defaults.toml" {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "found only {} example journeys", files.len());
    files
}

fn as_json(source: &str) -> Value {
    toml::from_str(source).expect("a journey file is TOML")
}

fn schema_errors(validator: &jsonschema::Validator, journey: &Value) -> Vec<String> {
    validator.iter_errors(journey).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

#[test]
fn every_example_journey_passes_the_schema_and_the_parser() {
    let validator = schema();
    for path in example_journeys() {
        let source = std::fs::read_to_string(&path).expect("readable");
        let errors = schema_errors(validator, &as_json(&source));
        assert!(errors.is_empty(), "{} fails docs/journey.schema.json: {errors:#?}", path.display());
        if let Err(lines) = synthetic_checks::catalog::load_file(&path) {
            panic!("{} fails the parser: {lines:#?}", path.display());
        }
    }
}

/// Each example names the schema for Taplo (`#:schema <path>` on its first line), and the path
/// leads to it: an editor opening any of them validates and completes it.
#[test]
fn every_example_names_the_schema_for_editors() {
    let schema = workspace().join("docs/journey.schema.json").canonicalize().expect("the schema");
    for path in example_journeys() {
        let source = std::fs::read_to_string(&path).expect("readable");
        let named = source.lines().next().and_then(|l| l.strip_prefix("#:schema ")).map(str::trim);
        let Some(named) = named else { panic!("{} does not start with `#:schema <path>`", path.display()) };
        let resolved = path.parent().expect("a folder").join(named).canonicalize();
        assert_eq!(resolved.ok().as_ref(), Some(&schema), "{}: #:schema {named}", path.display());
    }
}

#[test]
fn the_schema_refuses_the_unknown_key_of_the_invalid_fixture() {
    let source = std::fs::read_to_string(workspace().join("tests/journeys/invalid.toml")).expect("readable");
    let errors = schema_errors(schema(), &as_json(&source));
    assert!(errors.iter().any(|e| e.contains("retries")), "{errors:#?}");
    assert!(JourneyDef::parse(&source).is_err());
}

/// A place in a journey where only the keys the format names are allowed, found by walking the
/// file: the free-form maps (vars, targets, headers, form, json bodies, capture names) are not.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn closed_tables(journey: &Value) -> Vec<Vec<Step>> {
    let key = |k: &str| Step::Key(k.to_string());
    let mut out = vec![vec![]];
    if journey.get("defaults").is_some() {
        out.push(vec![key("defaults")]);
    }
    let steps = journey.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        let at = vec![key("steps"), Step::Index(i)];
        out.push(at.clone());
        for table in ["basic", "skip_if", "until"] {
            if step.get(table).is_some_and(Value::is_object) {
                out.push([at.clone(), vec![key(table)]].concat());
            }
        }
        if let Some(captures) = step.get("capture").and_then(Value::as_object) {
            out.extend(captures.keys().map(|name| [at.clone(), vec![key("capture"), key(name)]].concat()));
        }
        for list in ["assert", "rejected_when"] {
            let items = step.get(list).and_then(Value::as_array).map_or(0, Vec::len);
            out.extend((0..items).map(|j| [at.clone(), vec![key(list), Step::Index(j)]].concat()));
        }
    }
    out
}

fn table_at<'a>(journey: &'a mut Value, path: &[Step]) -> &'a mut Map<String, Value> {
    let mut here = journey;
    for step in path {
        here = match step {
            Step::Key(k) => &mut here[k.as_str()],
            Step::Index(i) => &mut here[*i],
        };
    }
    here.as_object_mut().expect("a closed table is a table")
}

/// What a journey written from the parsed data says to the parser (the mutation is made on the
/// data, so the file is written anew), read from its own folder (its schema files) and with a
/// check's `[deploy]` left to the catalog.
fn parser_accepts(journey: &Value, path: &Path) -> bool {
    let source = toml::to_string(journey).expect("journey data writes back as TOML");
    JourneyDef::parse_in_folder(&source, &FolderFiles::beside(path), None, &["deploy"]).is_ok()
}

fn examples_as_json() -> &'static [(PathBuf, Value)] {
    &EXAMPLES
}

#[test]
fn every_example_written_back_from_its_data_still_parses() {
    // The property below rewrites files from their data; this keeps that step honest.
    for (path, journey) in examples_as_json() {
        assert!(parser_accepts(journey, path), "{} no longer parses once written back", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_unknown_key_in_any_closed_table_is_refused_by_the_schema_and_the_parser(
        example in any::<prop::sample::Index>(),
        table in any::<prop::sample::Index>(),
        name in "x[a-z_]{1,12}",
        value in prop_oneof![Just(Value::Bool(true)), Just(Value::from(3)), Just(Value::from("text"))],
    ) {
        let examples = examples_as_json();
        let (path, mut journey) = examples[example.index(examples.len())].clone();
        let tables = closed_tables(&journey);
        let at = &tables[table.index(tables.len())];
        table_at(&mut journey, at).insert(name.clone(), value);
        let errors = schema_errors(schema(), &journey);
        prop_assert!(!errors.is_empty(), "{}: the schema took {name} at {at:?}", path.display());
        prop_assert!(!parser_accepts(&journey, &path), "{}: the parser took {name} at {at:?}", path.display());
    }

    #[test]
    fn a_journey_without_a_required_key_is_refused_by_the_schema_and_the_parser(
        example in any::<prop::sample::Index>(),
        step in any::<prop::sample::Index>(),
        missing in prop_oneof![Just("check"), Just("steps"), Just("step name"), Just("step path or url")],
    ) {
        let examples = examples_as_json();
        let (path, mut journey) = examples[example.index(examples.len())].clone();
        let steps = journey["steps"].as_array().map_or(0, Vec::len);
        let i = step.index(steps);
        match missing {
            "check" | "steps" => {
                journey.as_object_mut().expect("a table").remove(missing);
            }
            "step name" => {
                journey["steps"][i].as_object_mut().expect("a table").remove("name");
            }
            _ => {
                let step = journey["steps"][i].as_object_mut().expect("a table");
                step.remove("path");
                step.remove("url");
            }
        }
        prop_assert!(!schema_errors(schema(), &journey).is_empty(), "{}: the schema took it without {missing}", path.display());
        prop_assert!(!parser_accepts(&journey, &path), "{}: the parser took it without {missing}", path.display());
    }
}

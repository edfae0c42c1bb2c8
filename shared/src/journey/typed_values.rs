//! The promise of typed JSON values, held over generated values: in a `json` body, a string that
//! is exactly one template is sent as the value's own JSON (a captured object as that object, a
//! `[vars]` number as that number), text around a template keeps it a string, and
//! `{{NAME | string}}` is always a string. Whatever the value, it stays in its own field: no
//! other field appears, none is lost, and the request stays on its origin.
//!
//! Each case captures a generated JSON value from the first answer, declares a generated
//! `[vars]` value, sends both back in one body through the real parser, runner and step
//! recorder against a [`ScriptedTarget`], and compares the body sent with what it must be.

use super::file::JourneyDef;
use super::templated_values::toml_string;
use super::{RunSetup, StepRecorder, run};
use crate::http::ScriptedTarget;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;

/// JSON values a target may answer with, nested a little; floats that JSON carries exactly.
fn captured() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        (-4096i32..4096).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec!["{{id}}", "\"", "}", "\\", "a\"}, \"x\": {\"", "null", "42"]).prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"{}]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A `[vars]` value as TOML writes it, and as JSON must send it.
fn var() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        any::<i64>().prop_map(|n| (n.to_string(), Value::from(n))),
        any::<bool>().prop_map(|b| (b.to_string(), Value::from(b))),
        (-4096i32..4096).prop_map(|n| {
            let x = f64::from(n) / 8.0;
            (format!("{x:?}"), Value::from(x))
        }),
        any::<String>().prop_map(|s| (toml_string(&s), Value::from(s))),
    ]
}

/// How a value reads as text: a string as itself, anything else as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sent_body(value: &Value, var_toml: &str) -> Option<Value> {
    let journey = format!(
        "check = \"typed\"\n[vars]\nv = {var_toml}\n[[steps]]\nname = \"seed\"\npath = \"/seed\"\n\
         capture = {{ c = {{ json = \"/c\" }} }}\n[[steps]]\nname = \"use\"\nmethod = \"POST\"\npath = \"/use\"\n\
         json = {{ c = \"{{{{c}}}}\", v = \"{{{{vars.v}}}}\", ct = \"<{{{{c}}}}>\", vt = \"<{{{{vars.v}}}}>\", \
         cs = \"{{{{c | string}}}}\", vs = \"{{{{vars.v|string}}}}\", k = 1 }}\n"
    );
    let journey = JourneyDef::parse(&journey).unwrap_or_else(|p| panic!("{p}\n{journey}"));
    let target = Arc::new(ScriptedTarget::default().then(200, &json!({ "c": value }).to_string()).then(200, "{}"));
    let mut recorder = StepRecorder::new(RunSetup::scripted(target.clone(), "typed"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    runtime.block_on(run(&journey, &mut recorder, None)).expect("no secret needed");
    let requests = target.requests();
    let used = requests.get(1)?;
    assert_eq!(used.url.as_str(), "http://api.test/use");
    let body = used.body.as_ref().expect("a JSON body").bytes.expose().clone();
    Some(serde_json::from_slice(&body).expect("the body sent is JSON"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_sole_template_keeps_its_json_type_and_every_value_stays_in_its_field(
        value in captured(),
        (var_toml, var_json) in var(),
    ) {
        let sent = sent_body(&value, &var_toml);
        // A null is no value to capture: the seed step fails and nothing more is sent.
        if value.is_null() {
            prop_assert_eq!(sent, None);
            return Ok(());
        }
        let expected = json!({
            "c": value,
            "v": var_json,
            "ct": format!("<{}>", text(&value)),
            "vt": format!("<{}>", text(&var_json)),
            "cs": text(&value),
            "vs": text(&var_json),
            "k": 1,
        });
        prop_assert_eq!(sent, Some(expected));
    }
}

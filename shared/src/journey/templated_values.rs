//! The promise of templates, held over generated values: no templated value (a capture by JSON
//! pointer, JSONPath or regex, a var, a secret field, the run id) changes a request's origin, or
//! its path outside its own segment, or adds a header, a query parameter or a form field. The
//! step is on the main target or on a named one: either way every request goes to its own step's
//! origin, never to the other declared one, nor to one the value names.
//!
//! Each case writes a journey that puts one value, from one source, into one place (a path
//! segment and a query value, a header, a form field of a table or of a form body written by hand,
//! a JSON string), runs it through the real
//! parser, runner and step recorder against a [`ScriptedTarget`], and inspects the requests the
//! recorder sent. A value that cannot go where it is put (`..` as a segment, CR/LF in a header)
//! must stop the step before anything is sent.

use super::file::JourneyDef;
use super::{RunSetup, StepRecorder, run};
use crate::http::{HttpRequest, ScriptedTarget};
use crate::secret::{CredentialStore, InMemorySecrets};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const TARGET: &str = "http://api.test/shop/";
/// The named target `idp` of every case's journey.
const IDP: &str = "http://idp.test/auth/";

#[derive(Clone, Copy, Debug)]
enum Source {
    Capture,
    /// Captured by an RFC 9535 JSONPath filter.
    JsonPathCapture,
    /// Captured by a regex's first group on the body.
    RegexCapture,
    Var,
    Secret,
    RunId,
}

impl Source {
    fn template(self) -> &'static str {
        match self {
            Source::Capture | Source::JsonPathCapture | Source::RegexCapture => "{{v}}",
            Source::Var => "{{vars.v}}",
            Source::Secret => "{{secret.v}}",
            Source::RunId => "{{run.id}}",
        }
    }
}

impl Source {
    /// How the seed step captures `v`, and the body it answers with `value` in it.
    fn seed(self, value: &str) -> (&'static str, String) {
        match self {
            Source::JsonPathCapture => (
                r#"{ jsonpath = "$.items[?@.name == 'v'].v" }"#,
                json!({ "items": [{ "name": "w", "v": "other" }, { "name": "v", "v": value }] }).to_string(),
            ),
            // Greedy between the first opening and the last closing tag: the value, whatever it holds.
            Source::RegexCapture => ("{ regex = '(?s)^<v>(.*)</v>$' }", format!("<v>{value}</v>")),
            _ => (r#"{ json = "/v" }"#, json!({ "v": value }).to_string()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Place {
    /// `/base/<value>/detail?q=<value>&page=1`
    PathAndQuery,
    /// `X-Note: n=<value>`
    Header,
    /// `note=<value>&k=1`
    Form,
    /// `{"note": "<value>", "k": 1}`
    Json,
    /// `note=<value>&k=1`, written by hand as a raw form body
    RawForm,
    /// `url = "<value>"`: the whole URL, a next link
    WholeUrl,
}

impl Place {
    fn step(self, t: &str) -> String {
        match self {
            Place::PathAndQuery => format!("path = \"/base/{t}/detail?q={t}&page=1\"\n"),
            Place::Header => format!("path = \"/use\"\nheaders = {{ X-Note = \"n={t}\" }}\n"),
            Place::Form => format!("method = \"POST\"\npath = \"/use\"\nform = {{ note = \"{t}\", k = 1 }}\n"),
            Place::Json => format!("method = \"POST\"\npath = \"/use\"\njson = {{ note = \"{t}\", k = 1 }}\n"),
            Place::WholeUrl => format!("url = \"{t}\"\n"),
            Place::RawForm => format!(
                "method = \"POST\"\npath = \"/use\"\nbody = \"note={t}&k=1\"\ncontent_type = \"application/x-www-form-urlencoded\"\n"
            ),
        }
    }

    /// Whether the value may be refused here (and then nothing of the step may be sent).
    fn may_refuse(self, value: &str) -> bool {
        match self {
            Place::PathAndQuery => matches!(value, "" | "." | ".."),
            // HTTP takes no control character in a header value but the tab (RFC 9110, 5.5).
            Place::Header => value.chars().any(|c| c.is_ascii_control() && c != '\t'),
            Place::Form | Place::Json | Place::RawForm => false,
            // Any value may be no URL, or one on another origin: then nothing is sent.
            Place::WholeUrl => true,
        }
    }
}

/// Values made of the pieces that URL, header and form syntax give meaning to, and any text.
fn value() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/",
        "..",
        ".",
        "?",
        "#",
        "&",
        "=",
        "%",
        "%2F",
        "%2e%2e",
        "\r",
        "\n",
        "\r\n",
        "@",
        ":",
        "+",
        " ",
        ";",
        "\\",
        "é",
        "💥",
        "a",
        "Z9",
        "\0",
        "\t",
        "//evil.example",
        "{{",
        "{{v}}",
        "{{\"{{\"}}",
        "}}",
        "//idp.test",
        "http://idp.test/",
        "//api.test",
        "http://api.test/",
        "X-Evil: 1",
        "\u{7f}",
    ]);
    prop_oneof![
        4 => prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat()),
        1 => any::<String>(),
    ]
}

/// A TOML basic string holding `text`: JSON's escapes are TOML's, but for DEL, which TOML wants
/// escaped too.
pub(super) fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default().replace('\u{7f}', "\\u007F")
}

struct Ran {
    /// `None` when the journey file was refused (a var that cannot go where it is used).
    parsed: bool,
    requests: Vec<HttpRequest>,
}

fn run_case(source: Source, place: Place, value: &str, on_idp: bool) -> Ran {
    let (capture, seed) = source.seed(value);
    let journey = format!(
        "check = \"prop\"\n[vars]\nv = {}\n[targets]\nidp = \"{IDP}\"\n\
         [[steps]]\nname = \"seed\"\npath = \"/seed\"\ncapture = {{ v = {capture} }}\n\
         [[steps]]\nname = \"use\"\n{}{}",
        toml_string(value),
        if on_idp { "target = \"idp\"\n" } else { "" },
        place.step(source.template())
    );
    let Ok(journey) = JourneyDef::parse(&journey) else {
        return Ran { parsed: false, requests: Vec::new() };
    };
    let target = Arc::new(ScriptedTarget::default().then(200, &seed).then(200, "{}"));
    let secrets = Arc::new(InMemorySecrets::with("acct", &json!({ "v": value }).to_string()));
    let store = CredentialStore::new(secrets, "acct", Duration::from_secs(300));
    let run_id = match source {
        Source::RunId => value.to_string(),
        _ => "run-1".to_string(),
    };
    let target_url = TARGET.parse().expect("a URL");
    let setup = RunSetup::scripted(target.clone(), "prop");
    let mut recorder = StepRecorder::new(RunSetup { target: target_url, run_id, ..setup });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    // An error is a broken monitor (a secret field it cannot use): then nothing more is sent.
    let _ = runtime.block_on(run(&journey, &mut recorder, Some(&store)));
    Ran { parsed: true, requests: target.requests() }
}

fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn header_names(request: &HttpRequest) -> Vec<String> {
    let mut names: Vec<String> = request.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    names.sort();
    names
}

/// What the `use` request must look like with `value` in it.
fn check_use(place: Place, value: &str, on_idp: bool, sent: &HttpRequest) -> Result<(), TestCaseError> {
    let mut expected_headers = vec!["x-synthetic-check".to_string(), "x-synthetic-run-id".to_string()];
    let prefix = if on_idp { "auth" } else { "shop" };
    match place {
        Place::PathAndQuery => {
            let segments: Vec<&str> = sent.url.path_segments().map(Iterator::collect).unwrap_or_default();
            prop_assert_eq!(segments.len(), 4, "{}", sent.url);
            prop_assert_eq!((segments[0], segments[1], segments[3]), (prefix, "base", "detail"));
            prop_assert_eq!(percent_decoded(segments[2]), value.as_bytes().to_vec());
            let query: Vec<(String, String)> = sent.url.query_pairs().into_owned().collect();
            prop_assert_eq!(query, vec![("q".to_string(), value.to_string()), ("page".into(), "1".into())]);
        }
        Place::Header => {
            expected_headers.push("x-note".into());
            let note = sent.headers.iter().find(|(k, _)| k == "X-Note").map(|(_, v)| v.clone());
            prop_assert_eq!(note, Some(format!("n={value}")));
        }
        Place::Form | Place::RawForm => {
            let body = sent.body.as_ref().map(|b| b.bytes.expose().clone()).unwrap_or_default();
            let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
            prop_assert_eq!(fields, vec![("note".to_string(), value.to_string()), ("k".into(), "1".into())]);
        }
        Place::Json => {
            let body = sent.body.as_ref().map(|b| b.bytes.expose().clone()).unwrap_or_default();
            let sent_json: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(sent_json, json!({ "note": value, "k": 1 }));
        }
        // Sent at all, it is on the step's own origin (checked by the caller) and is that URL.
        Place::WholeUrl => {
            let base = url::Url::parse(if on_idp { IDP } else { TARGET }).expect("a URL");
            let expected = base.join(value).ok().map(|mut url| {
                url.set_fragment(None);
                url
            });
            prop_assert_eq!(Some(sent.url.clone()), expected);
        }
    }
    expected_headers.sort();
    prop_assert_eq!(header_names(sent), expected_headers);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_templated_value_moves_a_request_or_adds_to_it(
        value in value(),
        source in prop::sample::select(vec![
            Source::Capture, Source::JsonPathCapture, Source::RegexCapture, Source::Var, Source::Secret, Source::RunId,
        ]),
        place in prop::sample::select(vec![
            Place::PathAndQuery, Place::Header, Place::Form, Place::Json, Place::RawForm, Place::WholeUrl,
        ]),
        on_idp in any::<bool>(),
    ) {
        let ran = run_case(source, place, &value, on_idp);
        // A journey is refused at load only for a var that cannot go where it is used.
        if !ran.parsed {
            prop_assert!(matches!(source, Source::Var) && place.may_refuse(&value), "refused: {:?} in {:?}", value, place);
            return Ok(());
        }
        let origin = |base: &str| url::Url::parse(base).expect("a URL").origin();
        // The seed step is on the main target; the use step on its own (the idp, or the main one).
        let own_origins = [origin(TARGET), origin(if on_idp { IDP } else { TARGET })];
        for (sent, own) in ran.requests.iter().zip(own_origins.iter().chain(std::iter::repeat(&own_origins[1]))) {
            prop_assert_eq!(&sent.url.origin(), own, "{}", sent.url);
            prop_assert_eq!(sent.url.fragment(), None);
        }
        let seed = ran.requests.first().ok_or_else(|| TestCaseError::fail("the seed step was not sent"))?;
        prop_assert_eq!(seed.url.as_str(), "http://api.test/shop/seed");
        match ran.requests.get(1) {
            Some(sent) => check_use(place, &value, on_idp, sent)?,
            // Not sent: only a value that cannot go there (or a secret field too empty to use).
            None => prop_assert!(
                place.may_refuse(&value) || (matches!(source, Source::Secret) && value.is_empty()),
                "{:?} from {:?} in {:?} was not sent", value, source, place
            ),
        }
        prop_assert!(ran.requests.len() <= 2);
    }
}

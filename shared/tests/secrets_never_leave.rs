//! The scrubbing promise over generated input: whatever the secret values (a signing key among
//! them, which only ever leaves as an HMAC), login captures and cookies hold (quotes, backslashes, non-ASCII, `+ / = % & ~`, spaces), and whatever a target
//! echoes back of them, in any encoding the engine itself sends them in (as is, JSON-escaped,
//! percent- or form-encoded, base64 of `user:password`), anywhere in a long body, no form of any
//! of them, nor any long piece of one, appears in anything a run hands on: the step errors, the
//! run result as JSON and as `Debug`, the alert's JSON, summary and subject, and the EMF lines.

mod common;

use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::HashSet;
use std::time::Duration;
use synthetic_checks::alert::AlertMessage;
use synthetic_checks::config::Origin;
use synthetic_checks::http::{HttpResponse, ScriptedTarget};
use synthetic_checks::journey::template::encode_segment;
use synthetic_checks::metrics::{MetricDetail, emf_records};
use synthetic_checks::{CheckError, JourneyDef, RunResult};

/// Pieces of a secret this long or longer must not appear either: a value cut before it was
/// scrubbed leaves its head behind.
const PIECE: usize = 16;

/// Characters the encodings treat specially, with letters and digits so values look like
/// passwords and tokens. No control characters: a header cannot carry them.
const VALUE: &str = "[a-zA-Z0-9\"\\\\é中😀+/=%&~#? ]";

#[derive(Clone, Debug)]
struct Values {
    email: String,
    password: String,
    api_key: String,
    token: String,
    cookie: String,
    signing_key: String,
}

/// How the target answers one attempt.
#[derive(Clone, Debug)]
enum Answer {
    /// A JSON body with the login's `access_token`, a `session` holding a value as it is (so
    /// the body carries it JSON-escaped), and a header echoing a form of a value.
    Json { status: u16, session: Index, header: Index, pad: usize },
    /// A text body quoting a form of a value after `pad` characters of words and whitespace.
    Text { status: u16, echo: Index, pad: usize, spaces: bool },
    /// No answer: a transport error quoting the request's URL, path and query, as sent.
    Transport,
}

fn values() -> impl Strategy<Value = Values> {
    let value = |min: usize, max: usize| proptest::string::string_regex(&format!("{VALUE}{{{min},{max}}}")).unwrap();
    (value(6, 30), value(6, 70), value(6, 70), value(20, 90), "[A-Za-z0-9+/=%-]{8,40}", value(6, 70)).prop_map(
        |(email, password, api_key, token, cookie, signing_key)| Values {
            email,
            password,
            api_key,
            token,
            cookie,
            signing_key,
        },
    )
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop::sample::select(vec![200u16, 201, 401, 500]);
    prop_oneof![
        4 => (status.clone(), any::<Index>(), any::<Index>(), 0usize..400)
            .prop_map(|(status, session, header, pad)| Answer::Json { status, session, header, pad }),
        4 => (status, any::<Index>(), prop_oneof![0usize..200, 0usize..6000], any::<bool>())
            .prop_map(|(status, echo, pad, spaces)| Answer::Text { status, echo, pad, spaces }),
        1 => Just(Answer::Transport),
    ]
}

/// The login's token is taken by a JSON pointer or by a JSONPath: either way it is scrubbed.
fn journey(form_body: bool, basic: bool, by_path: bool) -> String {
    let token = match by_path {
        true => r#"jsonpath = "$.access_token""#,
        false => r#"json = "/access_token""#,
    };
    let body = match form_body {
        true => r#"form = { email = "{{secret.email}}", password = "{{secret.password}}" }"#,
        false => r#"json = { email = "{{secret.email}}", password = "{{secret.password}}" }"#,
    };
    let basic = match basic {
        true => r#"basic = { username = "{{secret.email}}", password = "{{secret.password}}" }"#,
        false => "",
    };
    format!(
        r#"
check = "secrets"
[[steps]]
name = "login"
role = "login"
method = "POST"
path = "/login"
{body}
{basic}
expect_status = 200
rejected_status = 401
capture = {{ token = {{ {token} }} }}
[[steps]]
name = "me"
path = "/me/{{{{secret.email}}}}?key={{{{secret.api_key}}}}"
bearer = "{{{{token}}}}"
sign = {{ key = "{{{{secret.signing_key}}}}", message = "{{{{now.unix}}}}.{{{{request.path}}}}", header = "X-Signature" }}
assert = [
  {{ json = "/session", equals = "{{{{token}}}}" }},
  {{ header = "x-echo", equals = "{{{{secret.password}}}}" }},
]
"#
    )
}

/// `user:password` as an `Authorization: Basic` header carries it, from the HTTP client itself.
fn basic_credential(user: &str, password: &str) -> String {
    // One client for every case: building one sets up TLS, which would be most of a case's time.
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let request = CLIENT.get_or_init(reqwest::Client::new).get("http://x/").basic_auth(user, Some(password));
    let request = request.build().unwrap();
    let header = request.headers()["authorization"].to_str().unwrap();
    header.trim_start_matches("Basic ").to_string()
}

/// Every form the engine sends `value` in, and the JSON escape with non-ASCII as `\uXXXX`.
fn forms(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).unwrap();
    let json = json[1..json.len() - 1].to_string();
    let mut ascii = String::new();
    for c in json.chars() {
        match c.is_ascii() {
            true => ascii.push(c),
            false => c.encode_utf16(&mut [0; 2]).iter().for_each(|u| ascii.push_str(&format!("\\u{u:04x}"))),
        }
    }
    let form = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    vec![value.to_string(), json, ascii, encode_segment(value), form]
}

struct Case {
    values: Values,
    basic: bool,
}

impl Case {
    /// What must never be shown: every form of every value, and the basic credential.
    fn secret_forms(&self) -> Vec<String> {
        let v = &self.values;
        let mut all: Vec<String> = [&v.email, &v.password, &v.api_key, &v.token, &v.cookie, &v.signing_key]
            .iter()
            .flat_map(|value| forms(value))
            .collect();
        if self.basic {
            all.push(basic_credential(&v.email, &v.password));
        }
        all
    }

    /// Forms a target may echo in a text body or a header: anything but the login's token,
    /// which only a JSON answer carries (where the login captures it).
    fn echoes(&self, with_token: bool) -> Vec<String> {
        let v = &self.values;
        let mut values = vec![&v.email, &v.password, &v.api_key, &v.cookie, &v.signing_key];
        if with_token {
            values.push(&v.token);
        }
        let mut all: Vec<String> = values.iter().flat_map(|value| forms(value)).collect();
        if self.basic {
            all.push(basic_credential(&v.email, &v.password));
        }
        all
    }

    fn response(&self, answer: &Answer) -> Result<HttpResponse, CheckError> {
        let v = &self.values;
        let cookie = ("set-cookie".to_string(), format!("sid={}; Path=/; HttpOnly", v.cookie));
        match answer {
            Answer::Json { status, session, header, pad } => {
                let raw = [&v.email, &v.password, &v.api_key, &v.token, &v.cookie, &v.signing_key];
                let headers = self.echoes(true).into_iter().filter(|e| !e.contains(['\r', '\n'])).collect::<Vec<_>>();
                let body = serde_json::json!({
                    "pad": "x".repeat(*pad),
                    "session": raw[session.index(raw.len())],
                    "access_token": v.token,
                });
                let headers = vec![
                    ("content-type".to_string(), "application/json".to_string()),
                    cookie,
                    ("x-echo".to_string(), header.get(&headers).clone()),
                ];
                Ok(HttpResponse::new(*status, headers, body.to_string().into_bytes()))
            }
            Answer::Text { status, echo, pad, spaces } => {
                let filler = match spaces {
                    true => " \n".repeat(pad / 2),
                    false => "lorem ipsum ".repeat(pad / 12),
                };
                let body = format!("{filler}{} and more", echo.get(&self.echoes(false)));
                let headers = vec![("content-type".to_string(), "text/plain".to_string()), cookie];
                Ok(HttpResponse::new(*status, headers, body.into_bytes()))
            }
            Answer::Transport => Err(CheckError::Connect(format!(
                "error sending request for url (http://api.test/me/{}?key={}): connection reset",
                encode_segment(&v.email),
                encode_segment(&v.api_key)
            ))),
        }
    }
}

fn run(case: &Case, form_body: bool, by_path: bool, answers: &[Answer]) -> RunResult {
    let v = &case.values;
    let account = serde_json::json!({
        "email": v.email, "password": v.password, "api_key": v.api_key, "signing_key": v.signing_key,
    });
    let journey_def = JourneyDef::parse(&journey(form_body, case.basic, by_path)).unwrap_or_else(|p| panic!("{p}"));
    let mut script = ScriptedTarget::default();
    for answer in answers {
        script = script.then_after(Duration::ZERO, case.response(answer));
    }
    common::run_journey(&journey_def, script, "http://api.test/", &account).0
}

/// Everything the run hands on, one text each.
fn outputs(run: &RunResult) -> Vec<String> {
    let alert = AlertMessage::from_run(run, &Origin::default());
    let mut texts = vec![
        serde_json::to_string(run).unwrap(),
        format!("{run:?}"),
        alert.to_json().unwrap(),
        alert.summary.clone(),
        alert.subject(),
    ];
    texts.extend(run.steps.iter().filter_map(|s| s.error.clone()));
    texts.extend(emf_records(run, "Synthetic", MetricDetail::All));
    texts
}

/// The first form of a secret, or a piece of one, that `text` shows.
fn leak(text: &str, secrets: &[String], pieces: &HashSet<String>) -> Option<String> {
    if let Some(secret) = secrets.iter().find(|secret| text.contains(secret.as_str())) {
        return Some(secret.clone());
    }
    let chars: Vec<char> = text.chars().collect();
    chars.windows(PIECE).map(|w| w.iter().collect::<String>()).find(|w| pieces.contains(w)).map(|w| format!("{w:?}"))
}

/// Every run of `PIECE` characters of every secret.
fn pieces(secrets: &[String]) -> HashSet<String> {
    let mut all = HashSet::new();
    for secret in secrets {
        let chars: Vec<char> = secret.chars().collect();
        all.extend(chars.windows(PIECE).map(|w| w.iter().collect::<String>()));
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_secret_capture_or_cookie_leaves_a_run_in_any_encoding(
        values in values(),
        form_body in any::<bool>(),
        basic in any::<bool>(),
        by_path in any::<bool>(),
        answers in prop::collection::vec(answer(), 4),
    ) {
        let case = Case { values, basic };
        let run = run(&case, form_body, by_path, &answers);
        let secrets = case.secret_forms();
        let pieces = pieces(&secrets);
        for text in outputs(&run) {
            let leaked = leak(&text, &secrets, &pieces);
            prop_assert!(leaked.is_none(), "{} in {text}", leaked.unwrap_or_default());
        }
    }
}

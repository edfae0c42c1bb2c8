//! The `sign` promise over generated input: whatever the key, the body, the path and the shape
//! of the message, every attempt (the first and its retry) carries exactly one signature header,
//! and it is the HMAC-SHA256 of the request as it was sent, computed here by an independent
//! implementation (RustCrypto) from what the target received: its method, its path and query as
//! sent, its exact body bytes and its own timestamp header.

mod common;

use base64::Engine;
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use synthetic_checks::JourneyDef;
use synthetic_checks::http::{HttpRequest, ScriptedTarget};

/// Characters encodings treat specially, with letters and digits. No control characters: the
/// key and path are also fine in a header, and the body need not be.
const VALUE: &str = "[a-zA-Z0-9\"\\\\é中😀+/=%&~#? .:]";

/// The messages a journey may sign, as written, and how the same message is put together from
/// what the target received (independently of the engine's templates).
const MESSAGES: [&str; 3] = [
    "{{now.unix}}.{{request.body}}",
    "{{request.method}}\\n{{request.path}}\\n{{now.unix}}\\n{{request.body}}",
    "v0:{{now.unix}}:{{request.body}}",
];

fn expected_message(which: usize, sent: &HttpRequest, timestamp: &str) -> Vec<u8> {
    let body = sent.body.as_ref().map(|b| b.bytes.expose().clone()).unwrap_or_default();
    let path = &sent.url[url::Position::BeforePath..url::Position::AfterQuery];
    let method = format!("{:?}", sent.method).to_uppercase();
    let head = match which {
        0 => format!("{timestamp}."),
        1 => format!("{method}\n{path}\n{timestamp}\n"),
        _ => format!("v0:{timestamp}:"),
    };
    [head.into_bytes(), body].concat()
}

fn journey(method: &str, message: usize, base64: bool, prefix: &str) -> String {
    let encoding = if base64 { "base64" } else { "hex" };
    format!(
        r#"
check = "signed"
[defaults]
headers = {{ X-Timestamp = "{{{{now.unix}}}}" }}
[[steps]]
name = "write"
method = "{method}"
path = "/v1/{{{{secret.segment}}}}?q=1"
idempotent = true
body = "{{{{secret.payload}}}}"
content_type = "application/octet-stream"
sign = {{ key = "{{{{secret.key}}}}", message = "{msg}", header = "X-Signature", encoding = "{encoding}", prefix = "{prefix}" }}
"#,
        msg = MESSAGES[message]
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_attempt_carries_the_hmac_of_the_request_as_sent(
        key in proptest::string::string_regex(&format!("{VALUE}{{1,80}}")).unwrap(),
        payload in proptest::string::string_regex(&format!("({VALUE}|\n){{0,300}}")).unwrap(),
        segment in proptest::string::string_regex(&format!("{VALUE}{{1,20}}")).unwrap()
            .prop_filter("a dot segment is refused", |s| s != "." && s != ".."),
        method in prop::sample::select(vec!["POST", "PUT", "PATCH", "DELETE"]),
        message in 0usize..MESSAGES.len(),
        base64 in any::<bool>(),
        prefix in prop::sample::select(vec!["", "v1=", "sha256="]),
    ) {
        let account = serde_json::json!({"key": key, "payload": payload, "segment": segment});
        let source = journey(method, message, base64, prefix);
        let journey_def = JourneyDef::parse(&source).unwrap_or_else(|p| panic!("{p}\n{source}"));
        let target = ScriptedTarget::default().then(503, "busy").then(200, "{}");
        let (_, requests) = common::run_journey(&journey_def, target, "http://api.test/base/", &account);
        prop_assert_eq!(requests.len(), 2, "the first attempt and its retry");
        for sent in &requests {
            let values = |name: &str| sent.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
            let (stamps, signatures) = (values("X-Timestamp"), values("X-Signature"));
            prop_assert_eq!(stamps.len(), 1);
            prop_assert_eq!(signatures.len(), 1, "exactly one signature header");
            prop_assert_eq!(sent.body.as_ref().unwrap().bytes.expose(), payload.as_bytes(), "the exact body");
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(&expected_message(message, sent, &stamps[0]));
            let tag = mac.finalize().into_bytes();
            let encoded = match base64 {
                true => base64::engine::general_purpose::STANDARD.encode(tag),
                false => hex::encode(tag),
            };
            prop_assert_eq!(&signatures[0], &format!("{prefix}{encoded}"));
        }
    }
}

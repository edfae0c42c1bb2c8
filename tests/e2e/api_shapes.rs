//! Journeys against servers written to the public shape of the APIs teams run (issue 21): a
//! Django CSRF session login with a REST framework API, a GraphQL API on a real GraphQL engine, a
//! payment that settles asynchronously, httpbin's compressed bodies, and a JSON:API listing with
//! next links and a moved address. Each runs a shipped journey from `tests/journeys/` through the
//! `synthetic` binary and asserts both the RunResult and what the server saw (sessions and test
//! data left live, tokens refused, pages requested), and that no secret is printed.

use serde_json::json;
use synthetic_checks::{Cause, Outcome};
use synthetic_e2e::fake_apis::async_payments::{self, AsyncPaymentsConfig};
use synthetic_e2e::fake_apis::django_session::{self, DjangoConfig};
use synthetic_e2e::fake_apis::graphql::{self, GraphqlConfig};
use synthetic_e2e::fake_apis::{httpbin, json_api};

use crate::helpers::synthetic;
use crate::journeys::{Credentials, Printed, journey, line_of, located_problems, no_credentials, outcomes, run, step};

/// A shipped journey with some of its text replaced, written to a scratch file (removed on drop):
/// the same check with one mistake a user could make, or a shorter poll window.
struct Variant {
    dir: std::path::PathBuf,
    file: String,
}

impl Variant {
    fn of(name: &str, replacements: &[(&str, &str)]) -> Variant {
        let mut text = std::fs::read_to_string(journey(name)).expect("shipped journey");
        for (from, to) in replacements {
            assert!(text.contains(from), "{name} holds {from:?}");
            text = text.replace(from, to);
        }
        let dir = std::env::temp_dir().join(format!("synthetic-api-shapes-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join(name);
        std::fs::write(&file, text).expect("variant journey");
        Variant { file: file.display().to_string(), dir }
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Django: CSRF session login, REST framework API, logout as cleanup

fn django_credentials(cfg: &DjangoConfig, password: &str) -> Credentials {
    Credentials::new(json!({ "username": cfg.username, "password": password }))
}

#[tokio::test]
async fn django_csrf_login_reads_the_api_and_always_logs_out_with_the_rotated_token() {
    let cfg = DjangoConfig::default();
    let site = django_session::spawn(cfg.clone()).await.expect("django");
    let credentials = django_credentials(&cfg, &cfg.password);
    // WHEN the CSRF session journey runs
    let exited = run(&journey("csrf-session.toml"), site.base_url(), &credentials).await;
    // THEN every step passed, nothing of the account was printed
    exited.assert_none_of(&[&cfg.username, &cfg.password]).expect(0);
    let result = exited.result();
    let all_passed = ["login-form", "login", "find-kettle", "kettle", "logout"].map(|s| (s, Outcome::Passed));
    assert_eq!(outcomes(&result), all_passed, "{result:#?}");
    // AND the site saw one login through its CSRF check, two API reads with the session, and the
    // logout (CSRF-checked with the token login() rotated) ended the session
    let state = site.handle().state();
    assert_eq!(state.csrf_failures, Vec::<String>::new(), "{state:?}");
    // (the second login page is where the logout's 302 leads)
    assert_eq!(
        (state.login_pages, state.logins, state.api_authenticated, state.api_forbidden, state.logouts),
        (2, 1, 2, 0, 1),
        "{state:?}"
    );
    assert_eq!(state.live_sessions, 0, "{state:?}");

    // WHEN the logout sends the token from before the login, as this example once did
    let stale =
        Variant::of("csrf-session.toml", &[("X-CSRFToken = \"{{session_csrf}}\"", "X-CSRFToken = \"{{csrf}}\"")]);
    let exited = run(&stale.file, site.base_url(), &credentials).await;
    // THEN Django refuses it (login() rotated the secret), and the session left open is reported
    exited.assert_none_of(&[&cfg.username, &cfg.password]).expect(1);
    let result = exited.result();
    let logout = step(&result, "logout").status;
    assert_eq!((result.cause, logout), (Some(Cause::CleanupFailed), Some(403)), "{result:#?}");
    let state = site.handle().state();
    let incorrect = "CSRF token from the 'X-Csrftoken' HTTP header incorrect.";
    assert_eq!(
        (state.csrf_failures.first().map(String::as_str), state.live_sessions),
        (Some(incorrect), 1),
        "{state:?}"
    );
}

#[tokio::test]
async fn django_wrong_password_is_the_form_again_read_as_credentials_rejected_once() {
    // GIVEN the credentials hold a password the site no longer accepts
    let cfg = DjangoConfig::default();
    let site = django_session::spawn(cfg.clone()).await.expect("django");
    let stale = "stale-Django-pass-0x!";
    let credentials = django_credentials(&cfg, stale);
    // WHEN the journey runs
    let exited = run(&journey("csrf-session.toml"), site.base_url(), &credentials).await;
    // THEN the 200 with Django's form error is the account rejected (rejected_when), not retried
    exited.assert_none_of(&[&cfg.username, stale, &cfg.password]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CredentialsRejected)), "{run:#?}");
    let login = step(&run, "login");
    assert_eq!((login.status, login.attempts, login.cause), (Some(200), 1, Some(Cause::CredentialsRejected)));
    let error = login.error.clone().unwrap_or_default();
    assert!(error.contains("Please enter a correct username and password"), "names its rejected_when: {error}");
    assert!(run.steps.iter().all(|s| s.name != "find-kettle"), "no API call after a rejected login: {run:#?}");
    let state = site.handle().state();
    assert_eq!((state.wrong_passwords, state.logins, state.live_sessions), (1, 0, 0), "{state:?}");
    assert_eq!(state.csrf_failures, Vec::<String>::new(), "{state:?}");
}

#[tokio::test]
async fn django_login_posted_without_its_csrf_token_is_a_403_of_the_target_not_a_rejected_account() {
    // GIVEN the journey forgets the CSRF token (neither the header nor the hidden field)
    let cfg = DjangoConfig::default();
    let site = django_session::spawn(cfg.clone()).await.expect("django");
    let credentials = django_credentials(&cfg, &cfg.password);
    let forgetful = Variant::of(
        "csrf-session.toml",
        &[("headers = { X-CSRFToken = \"{{csrf}}\" }\n", ""), ("csrfmiddlewaretoken = \"{{form_token}}\", ", "")],
    );
    // WHEN it runs
    let exited = run(&forgetful.file, site.base_url(), &credentials).await;
    // THEN Django refused the POST for want of the token, and the run says so: an HTTP 403 of the
    // target, never "account rejected", which would send someone to unlock a healthy account
    exited.assert_none_of(&[&cfg.username, &cfg.password]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)), "{run:#?}");
    let login = step(&run, "login");
    assert_eq!((login.status, login.cause), (Some(403), Some(Cause::HttpStatus)), "{login:#?}");
    let state = site.handle().state();
    assert!(!state.csrf_failures.is_empty(), "{state:?}");
    assert!(state.csrf_failures.iter().all(|r| r == "CSRF token missing."), "{state:?}");
    assert_eq!((state.wrong_passwords, state.logins, state.live_sessions), (0, 0, 0), "{state:?}");
}

// ---------------------------------------------------------------------------------------------
// GraphQL: an Int id sent back typed

#[tokio::test]
async fn graphql_int_id_goes_back_to_the_delete_as_an_int_and_nothing_is_left() {
    let cfg = GraphqlConfig::default();
    let api = graphql::spawn(cfg.clone()).await.expect("graphql");
    let credentials = Credentials::new(json!({ "api_token": cfg.token }));
    let exited = run(&journey("graphql-todo.toml"), api.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.token]).expect(0);
    let run = exited.result();
    let passed = ["create", "read", "delete"].map(|s| (s, Outcome::Passed));
    assert_eq!(outcomes(&run), passed, "{run:#?}");
    // The engine coerced every variable: no error, the todo created was the one deleted
    let state = api.handle().state();
    assert_eq!((state.created, state.deleted, state.live, state.unauthorized), (1, 1, 0, 0), "{state:?}");
    assert_eq!(state.errors, Vec::<String>::new(), "{state:?}");
}

#[tokio::test]
async fn graphql_id_sent_back_as_a_string_is_refused_by_the_engine_and_reported_as_cleanup_failed() {
    // GIVEN a journey that forces the id to a string, as every templated value used to be
    let cfg = GraphqlConfig::default();
    let api = graphql::spawn(cfg.clone()).await.expect("graphql");
    let credentials = Credentials::new(json!({ "api_token": cfg.token }));
    let stringly = Variant::of("graphql-todo.toml", &[("id = \"{{todo_id}}\"", "id = \"{{todo_id | string}}\"")]);
    // WHEN it runs
    let exited = run(&stringly.file, api.base_url(), &credentials).await;
    // THEN the engine refused `"4001"` for `Int!` (a request error in a 200): the read fails on
    // its assertions, each listed, and the delete deleted nothing, so the todo is still live and
    // the run says so instead of passing on the status
    exited.assert_none_of(&[&cfg.token]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::Assertion)), "{run:#?}");
    let read = step(&run, "read");
    let error = read.error.clone().unwrap_or_default();
    assert!(error.contains("JSON /errors is an array of 1 item(s)"), "{error}");
    assert!(error.contains("JSON /data/todo/id is missing") && error.contains("/data/todo/title"), "{error}");
    let delete = step(&run, "delete");
    assert_eq!((delete.status, delete.cause), (Some(200), Some(Cause::CleanupFailed)), "{delete:#?}");
    let state = api.handle().state();
    assert_eq!((state.created, state.deleted, state.live), (1, 0, 1), "{state:?}");
    assert!(!state.errors.is_empty() && state.errors.iter().all(|e| e.contains("Int")), "{state:?}");
}

// ---------------------------------------------------------------------------------------------
// A payment polled until it settles, always refunded

#[tokio::test]
async fn async_payment_is_polled_from_pending_to_succeeded_then_refunded() {
    let cfg = AsyncPaymentsConfig::default();
    let api = async_payments::spawn(cfg.clone()).await.expect("payments");
    let credentials = Credentials::new(json!({ "api_key": cfg.api_key }));
    let exited = run(&journey("polling-payment.toml"), api.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.api_key]).expect(0);
    let run = exited.result();
    let passed = ["create", "settled", "refund"].map(|s| (s, Outcome::Passed));
    assert_eq!(outcomes(&run), passed, "{run:#?}");
    // One result for the poll, with its three reads (pending, pending, succeeded)
    assert_eq!(step(&run, "settled").attempts, cfg.settle_on_read.expect("settles") as u32, "{run:#?}");
    let state = api.handle().state();
    assert_eq!((state.created, state.reads, state.refunded, state.canceled, state.live), (1, 3, 1, 0, 0), "{state:?}");
}

#[tokio::test]
async fn async_payment_still_pending_when_the_window_closes_fails_with_the_last_poll_and_is_still_refunded() {
    // GIVEN the payment never settles, and the poll window is short (the shipped one is 30 s)
    let cfg = AsyncPaymentsConfig { settle_on_read: None, ..AsyncPaymentsConfig::default() };
    let api = async_payments::spawn(cfg.clone()).await.expect("payments");
    let credentials = Credentials::new(json!({ "api_key": cfg.api_key }));
    let short = Variant::of(
        "polling-payment.toml",
        &[("until = { every_ms = 1000, within_ms = 30000 }", "until = { every_ms = 200, within_ms = 1500 }")],
    );
    // WHEN the journey runs
    let exited = run(&short.file, api.base_url(), &credentials).await;
    // THEN the poll fails on its assertion with what the last poll saw, after several polls
    exited.assert_none_of(&[&cfg.api_key]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::Assertion)), "{run:#?}");
    let settled = step(&run, "settled");
    assert_eq!((settled.outcome, settled.cause), (Outcome::Failed, Some(Cause::Assertion)), "{settled:#?}");
    let error = settled.error.clone().unwrap_or_default();
    assert!(error.contains("pending") && error.contains("succeeded"), "the last poll's message: {error}");
    assert!(settled.attempts >= 2, "{settled:#?}");
    // AND the refund still ran: the pending payment was canceled, nothing is live
    assert_eq!(step(&run, "refund").outcome, Outcome::Passed, "{run:#?}");
    let state = api.handle().state();
    assert_eq!(state.reads, u64::from(settled.attempts), "each poll is one request: {state:?}");
    assert_eq!((state.created, state.canceled, state.live), (1, 1, 0), "{state:?}");
}

// ---------------------------------------------------------------------------------------------
// Compressed bodies

#[tokio::test]
async fn gzip_deflate_brotli_and_zstd_bodies_are_read_as_json() {
    let server = httpbin::spawn().await.expect("httpbin");
    let exited = run(&journey("compressed-bodies.toml"), server.base_url(), &no_credentials()).await;
    exited.expect(0);
    let run = exited.result();
    let passed = ["gzip", "deflate", "brotli", "zstd"].map(|s| (s, Outcome::Passed));
    assert_eq!(outcomes(&run), passed, "{run:#?}");
    let state = server.handle().state();
    assert_eq!(state.sent, ["gzip", "deflate", "br", "zstd"], "each body went compressed: {state:?}");
    for accepted in &state.accept_encoding {
        for coding in ["gzip", "deflate", "br", "zstd"] {
            assert!(accepted.contains(coding), "the monitor advertises {coding}: {accepted:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Next links and a redirect asserted without following it

#[tokio::test]
async fn next_links_are_followed_across_three_pages_and_the_301_is_asserted_not_followed() {
    let server = json_api::spawn().await.expect("json:api");
    let exited = run(&journey("next-link.toml"), server.base_url(), &no_credentials()).await;
    exited.expect(0);
    let run = exited.result();
    let passed = ["first_page", "second_page", "last_page", "old_address"].map(|s| (s, Outcome::Passed));
    assert_eq!(outcomes(&run), passed, "{run:#?}");
    assert_eq!(step(&run, "old_address").status, Some(301));
    // The links went out as the server wrote them (brackets still percent-encoded, not encoded
    // again as one path segment), and nothing was requested at the 301's Location
    let state = server.handle().state();
    assert_eq!(
        state.requests,
        [
            "/v1/items",
            "/v1/items?page%5Bnumber%5D=2&page%5Bsize%5D=2",
            "/v1/items?page%5Bnumber%5D=3&page%5Bsize%5D=2",
            "/shop",
        ],
        "{state:?}"
    );
    assert_eq!(state.pages, [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// Validation of the keys these journeys use

#[tokio::test]
async fn validate_locates_every_misuse_of_targets_url_redirects_rejected_when_regex_jsonpath_and_until() {
    let file = journey("invalid-new-keys.toml");
    let text = std::fs::read_to_string(&file).expect("invalid-new-keys.toml");
    // WHEN the broken journey is validated
    let exited = synthetic(&["validate", &file], &[]).await;
    // THEN it exits 3 with one `file:line:column: sentence` per mistake, each naming what is wrong
    exited.expect(3);
    let located = located_problems(&file, &exited.stderr);
    let expected = [
        (r#"base = "https"#, "target name \"base\" is taken"),
        (r#"billing = "https"#, "targets.billing must be an absolute http(s) URL without credentials"),
        (r#"jsonpath = "$.access_token[""#, "JSONPath \"$.access_token[\" is invalid"),
        (r#"body_matches = "invalid (client""#, "regex \"invalid (client\" is invalid"),
        (r#"target = "auth""#, "target \"auth\" is not declared"),
        (r#"regex = "org=[a-z]+""#, "has no group"),
        (r#"body_contains = "expired""#, "rejected_when belongs to a step with role = \"login\""),
        (r#"url = "{{org}}""#, "`path` or `url`, not both"),
        (r#"jsonpath = "$.items[?@.price >]""#, "is invalid (RFC 9535)"),
        ("polls for nothing", "until needs an assert or a capture"),
        (r#"matches = "^(Kettle""#, "regex \"^(Kettle\" is invalid"),
        ("a POST polled", "a POST or PATCH needs idempotent = true"),
        ("every_ms = 10,", "until.every_ms must be at least 100"),
        (r#"follow_redirects = "no""#, "follow_redirects must be true or false"),
    ];
    for (marker, named) in expected {
        let line = line_of(&text, marker);
        let Some((_, column, message)) = located.iter().find(|(l, _, _)| *l == line) else {
            panic!("no {file}:{line}:<column>: for {marker:?} in:\n{}", exited.stderr);
        };
        assert!(*column >= 1, "{marker:?}: column {column}");
        assert!(message.contains(named), "{marker:?}: the message says {named:?}: {message}");
    }
    // AND nothing else: one sentence per mistake, none cascading from another
    let mistakes = text.lines().filter(|l| l.contains("# MISTAKE")).count();
    assert_eq!((mistakes, located.len()), (expected.len(), expected.len()), "{}", exited.stderr);
}

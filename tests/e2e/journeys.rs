//! Journeys as data against other teams' API shapes: each journey file in `tests/journeys/` run
//! by the `synthetic` binary (`run --journey FILE`) against a real HTTP fake of that shape,
//! asserting both the RunResult JSON and what the fake saw (money left live, cookies sent, paths
//! requested), and that no secret from the credentials file reaches stdout or stderr.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::helpers::{Exited, synthetic};
use serde_json::{Value, json};
use synthetic_checks::{Cause, Outcome, RunResult, StepResult};
use synthetic_e2e::fake_apis::cookie_session::{self, CookieSessionConfig, LoginAnswer};
use synthetic_e2e::fake_apis::hostile_values::{self, HostileValuesConfig};
use synthetic_e2e::fake_apis::listing::{self, ListingConfig, ListingFault};
use synthetic_e2e::fake_apis::nested_login::{self, NestedLoginConfig};
use synthetic_e2e::fake_apis::oauth::{self, OAuthConfig};
use synthetic_e2e::fake_apis::percent_decode;
use synthetic_e2e::fake_apis::signed_events::{self, EventsConfig, EventsFault, EventsState};
use synthetic_e2e::fake_apis::stripe::{self, StripeConfig, StripeFault};
use synthetic_e2e::shop::{self, ShopConfig};

/// Reading what one `synthetic` process printed.
pub(crate) trait Printed {
    fn result(&self) -> RunResult;
    fn results(&self) -> Vec<RunResult>;
    fn assert_none_of(&self, secrets: &[&str]) -> &Self;
}

impl Printed for Exited {
    /// The one RunResult on stdout (`--format json` prints one per line).
    fn result(&self) -> RunResult {
        let mut results = self.results();
        assert_eq!(results.len(), 1, "one RunResult\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        results.remove(0)
    }

    fn results(&self) -> Vec<RunResult> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a RunResult ({e}): {l}\n{}", self.stderr)))
            .collect()
    }

    /// Neither stdout nor stderr holds any of `secrets`.
    fn assert_none_of(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(!secret.is_empty());
            for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
                assert!(!text.contains(secret), "the secret {secret:?} leaked into {name}:\n{text}");
            }
        }
        self
    }
}

/// A journey file shipped in `tests/journeys/`.
pub(crate) fn journey(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("journeys").join(name);
    assert!(path.is_file(), "{} exists", path.display());
    path.display().to_string()
}

/// A private scratch directory holding one credentials file (JSON, mode 0600).
pub(crate) struct Credentials {
    dir: PathBuf,
    file: PathBuf,
}

impl Credentials {
    pub(crate) fn new(fields: Value) -> Credentials {
        let dir = std::env::temp_dir().join(format!("synthetic-journeys-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join("credentials.json");
        write_0600(&file, &fields);
        Credentials { dir, file }
    }

    pub(crate) fn path(&self) -> String {
        self.file.display().to_string()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replaces `path` atomically with `fields` as JSON, mode 0600, as a secret rotation would.
fn write_0600(path: &Path, fields: &Value) {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).expect("0600 file");
    file.write_all(fields.to_string().as_bytes()).expect("write credentials");
    drop(file);
    std::fs::rename(&tmp, path).expect("rename credentials");
}

/// `synthetic run --journey FILE --target URL --credentials-file FILE --format json`.
pub(crate) async fn run(journey_file: &str, target: &str, credentials: &Credentials) -> Exited {
    run_journeys(&[journey_file], target, credentials).await
}

async fn run_journeys(journey_files: &[&str], target: &str, credentials: &Credentials) -> Exited {
    let credentials = credentials.path();
    let mut args = vec!["run", "--target", target, "--credentials-file", &credentials, "--format", "json"];
    for file in journey_files {
        args.extend(["--journey", file]);
    }
    synthetic(&args, &[]).await
}

pub(crate) fn step<'a>(run: &'a RunResult, name: &str) -> &'a StepResult {
    run.steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name:?} in {run:#?}"))
}

pub(crate) fn outcomes(run: &RunResult) -> Vec<(&str, Outcome)> {
    run.steps.iter().map(|s| (s.name.as_str(), s.outcome)).collect()
}

// ---------------------------------------------------------------------------------------------
// Stripe-style payments

async fn stripe_run(faults: &[StripeFault]) -> (Exited, RunResult, stripe::StripeState) {
    let cfg = StripeConfig::default();
    let fake = stripe::spawn(cfg.clone()).await.expect("fake stripe");
    for fault in faults {
        fake.handle().set_fault(*fault);
    }
    let credentials = Credentials::new(json!({ "secret_key": cfg.secret_key }));
    let exited = run(&journey("stripe-payment.toml"), fake.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.secret_key]);
    let result = exited.result();
    let state = fake.handle().state();
    (exited, result, state)
}

#[tokio::test]
async fn stripe_payment_passes_with_form_bodies_both_auth_schemes_and_leaves_nothing_live() {
    // WHEN the Stripe journey runs against a healthy test-mode account
    let (exited, run, state) = stripe_run(&[]).await;
    // THEN it passes, every step ran once, and the one charge was refunded
    exited.expect(0);
    assert_eq!((run.check.as_str(), run.status, run.cause), ("stripe-payment", Outcome::Passed, None), "{run:#?}");
    assert_eq!(
        outcomes(&run),
        [("create", Outcome::Passed), ("retrieve", Outcome::Passed), ("refund", Outcome::Passed)]
    );
    assert_eq!(step(&run, "create").status, Some(200));
    assert_eq!((state.charges, state.live, state.refunded), (1, 0, 1), "{state:?}");
    // AND the key went as basic user name (create, refund) and as Bearer (retrieve), never refused
    assert_eq!((state.auth_basic, state.auth_bearer, state.auth_rejected), (2, 1, 0), "{state:?}");
    // AND both POSTs carried an Idempotency-Key (`idempotent = true`)
    assert_eq!(state.posts_without_idempotency_key, 0, "{state:?}");
}

#[tokio::test]
async fn stripe_decline_fails_with_http_status_and_charges_nothing() {
    // GIVEN every card is declined (402 card_error)
    let (exited, run, state) = stripe_run(&[StripeFault::Decline]).await;
    // THEN the create fails on its status, nothing was captured so the refund is not attempted
    exited.expect(1);
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)), "{run:#?}");
    assert_eq!(step(&run, "create").status, Some(402));
    assert!(run.steps.iter().all(|s| s.name != "retrieve" || s.outcome != Outcome::Passed), "{run:#?}");
    assert_eq!((state.charges, state.live, state.refunded), (0, 0, 0), "{state:?}");
    // AND a retry (the create is idempotent) reused the key: one decline, answered twice at most
    assert_eq!(state.declined, 1, "a retry with a new Idempotency-Key would have been a second decline: {state:?}");
}

#[tokio::test]
async fn stripe_create_500_is_an_unknown_write_named_by_its_key_and_nothing_was_created() {
    let (exited, run, state) = stripe_run(&[StripeFault::CreateInternal]).await;
    exited.expect(1);
    // A 500's outcome is indeterminate (Stripe says so): the replay with the same key answers 500
    // too, so the run names the key to look the payment up by, with the 500 in the message
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CleanupFailed)), "{run:#?}");
    let create = step(&run, "create");
    assert_eq!(
        (create.outcome, create.status, create.attempts),
        (Outcome::Failed, Some(500), 2),
        "idempotent: retried"
    );
    let error = create.error.clone().unwrap_or_default();
    assert!(error.contains("HTTP 500") && error.contains("Idempotency-Key synthetic-"), "{error}");
    assert_eq!((state.charges, state.live), (0, 0), "{state:?}");
}

#[tokio::test]
async fn stripe_create_committed_then_answered_500_without_a_retry_is_learned_by_the_replay_and_refunded() {
    // GIVEN the create charges the card but answers 500, and the journey has no retry
    let cfg = StripeConfig::default();
    let fake = stripe::spawn(cfg.clone()).await.expect("fake stripe");
    fake.handle().set_fault(StripeFault::LoseFirstCreateResponse);
    let credentials = Credentials::new(json!({ "secret_key": cfg.secret_key }));
    let target = fake.base_url().to_string();
    let args = ["run", "--target", &target, "--credentials-file", &credentials.path(), "--format", "json"];
    // WHEN the Stripe journey runs
    let exited =
        synthetic(&[&args[..], &["--journey", &journey("stripe-payment.toml")]].concat(), &[("RETRY_ATTEMPTS", "1")])
            .await;
    // THEN the replay with the same key learned the payment, and the refund undid it
    let run = exited.result();
    assert_eq!(step(&run, "create").attempts, 1, "{run:#?}");
    assert_eq!(step(&run, "refund").outcome, Outcome::Passed, "{run:#?}");
    let state = fake.handle().state();
    assert_eq!((state.charges, state.idempotent_replays, state.live, state.refunded), (1, 1, 0, 1), "{state:?}");
}

#[tokio::test]
async fn stripe_retrieve_500_fails_and_the_cleanup_still_refunds() {
    // GIVEN the payment is created but cannot be read back
    let (exited, run, state) = stripe_run(&[StripeFault::RetrieveInternal]).await;
    // THEN the run fails on the retrieve, and the refund ran anyway
    exited.expect(1);
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::HttpStatus)), "{run:#?}");
    assert_eq!(
        outcomes(&run),
        [("create", Outcome::Passed), ("retrieve", Outcome::Failed), ("refund", Outcome::Passed)],
        "{run:#?}"
    );
    assert_eq!((state.charges, state.live, state.refunded), (1, 0, 1), "{state:?}");
}

#[tokio::test]
async fn stripe_broken_refund_is_cleanup_failed_and_the_fake_shows_the_live_payment() {
    let (exited, run, state) = stripe_run(&[StripeFault::RefundBroken]).await;
    exited.expect(1);
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CleanupFailed)), "{run:#?}");
    assert_eq!(step(&run, "refund").status, Some(500));
    // The alert is the only thing standing between this and money left on the table.
    assert_eq!((state.charges, state.live, state.refunded), (1, 1, 0), "{state:?}");
}

#[tokio::test]
async fn stripe_lost_create_answer_is_recovered_by_the_idempotent_retry_without_a_second_charge() {
    // GIVEN the first create charges the card but its answer is lost (500)
    let (exited, run, state) = stripe_run(&[StripeFault::LoseFirstCreateResponse]).await;
    // THEN the retry with the same Idempotency-Key gets the original payment back: passed, one
    // charge, refunded
    exited.expect(0);
    assert_eq!(run.status, Outcome::Passed, "{run:#?}");
    assert_eq!(step(&run, "create").attempts, 2, "{run:#?}");
    assert_eq!((state.charges, state.idempotent_replays, state.live, state.refunded), (1, 1, 0, 1), "{state:?}");
}

#[tokio::test]
async fn stripe_refusing_every_connection_is_connect_never_a_possibly_live_payment() {
    // GIVEN nothing listens where the payments API should be: no create is ever sent
    let credentials = Credentials::new(json!({ "secret_key": StripeConfig::default().secret_key }));
    let target = synthetic_e2e::hostile::refused_url().await.expect("a closed port");
    // WHEN the Stripe journey runs
    let exited = run(&journey("stripe-payment.toml"), &target, &credentials).await;
    // THEN it is a connect failure, and no step says a payment may be live
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::Connect)), "{run:#?}");
    assert!(run.steps.iter().all(|s| s.cause != Some(Cause::CleanupFailed)), "{run:#?}");
    exited.expect(1);
}

// ---------------------------------------------------------------------------------------------
// Nested-JSON login answering 400

#[tokio::test]
async fn nested_login_passes_with_credentials_nested_in_the_body() {
    let cfg = NestedLoginConfig::default();
    let fake = nested_login::spawn(cfg.clone()).await.expect("fake");
    let credentials = Credentials::new(json!({ "email": cfg.email, "password": cfg.password }));
    let exited = run(&journey("nested-login.toml"), fake.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.email, &cfg.password]).expect(0);
    let run = exited.result();
    assert_eq!(outcomes(&run), [("login", Outcome::Passed), ("me", Outcome::Passed)], "{run:#?}");
    assert_eq!(step(&run, "login").status, Some(201));
    let state = fake.handle().state();
    assert_eq!(
        (state.sessions_created, state.me_ok, state.malformed, state.me_unauthorized),
        (1, 1, 0, 0),
        "{state:?}"
    );
}

#[tokio::test]
async fn nested_login_wrong_password_is_credentials_rejected_on_a_400_and_never_printed() {
    // GIVEN the credentials file holds a password the API no longer accepts
    let cfg = NestedLoginConfig::default();
    let fake = nested_login::spawn(cfg.clone()).await.expect("fake");
    let stale = "stale-password-Vb7!\"quoted\"";
    let credentials = Credentials::new(json!({ "email": cfg.email, "password": stale }));
    // WHEN the journey runs
    let exited = run(&journey("nested-login.toml"), fake.base_url(), &credentials).await;
    // THEN the 400 invalid_grant is credentials_rejected (rejected_status = [400]), exit 1
    exited.assert_none_of(&[&cfg.email, stale, &cfg.password]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CredentialsRejected)), "{run:#?}");
    assert_eq!(step(&run, "login").status, Some(400));
    // AND the secret was re-read, but as it had not changed the known-bad password was not sent
    // a second time (a second failed sign-in only brings an account lockout closer)
    let state = fake.handle().state();
    assert_eq!((state.logins_rejected, state.sessions_created), (1, 0), "no rerun with the same secret: {state:?}");
    assert_eq!(state.me_ok + state.me_unauthorized, 0, "no later step after a rejected login: {state:?}");
}

// ---------------------------------------------------------------------------------------------
// OAuth2 client credentials

#[tokio::test]
async fn oauth_client_credentials_passes_with_basic_client_auth_and_a_form_grant() {
    let cfg = OAuthConfig::default();
    let fake = oauth::spawn(cfg.clone()).await.expect("fake");
    let credentials = Credentials::new(json!({ "client_id": cfg.client_id, "client_secret": cfg.client_secret }));
    let exited = run(&journey("oauth-client-credentials.toml"), fake.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.client_secret]).expect(0);
    let run = exited.result();
    assert_eq!(outcomes(&run), [("token", Outcome::Passed), ("account", Outcome::Passed)], "{run:#?}");
    let state = fake.handle().state();
    assert_eq!((state.tokens_issued, state.client_auth_basic, state.account_ok), (1, 1, 1), "{state:?}");
    assert_eq!((state.clients_rejected, state.bad_requests, state.account_unauthorized), (0, 0, 0), "{state:?}");
}

/// The identity provider on one origin, the API on another: the fake serves both, reached as
/// `localhost` for the identity provider and `127.0.0.1` for the API (two origins, one server).
#[tokio::test]
async fn a_token_from_a_named_idp_origin_then_the_api_on_the_main_target() {
    let cfg = OAuthConfig::default();
    let fake = oauth::spawn(cfg.clone()).await.expect("fake");
    let api = fake.base_url().to_string();
    let port = api.rsplit(':').next().expect("a port").trim_end_matches('/').to_string();
    let idp_origin = format!("http://localhost:{port}");
    let idp = format!("idp={idp_origin}/");
    let credentials = Credentials::new(json!({ "client_id": cfg.client_id, "client_secret": cfg.client_secret }));
    let file = journey("idp-and-api.toml");
    let cred = credentials.path();
    let argv = ["run", "--journey", &file, "--target", &api, "--target-url", &idp, "--credentials-file", &cred];
    let mut with_format = argv.to_vec();
    with_format.extend(["--format", "json"]);
    // WHEN the identity provider is moved to an origin the deployment does not allow
    let refused = synthetic(&with_format, &[]).await;
    // THEN nothing is sent, and the variable it stands for is named
    refused.assert_none_of(&[&cfg.client_secret]).expect(3);
    assert!(refused.stderr.contains("TARGET_IDP_URL host \"localhost\" is not in"), "{}", refused.stderr);
    assert_eq!(fake.handle().state().tokens_issued + fake.handle().state().clients_rejected, 0);
    // WHEN its origin is allowed
    let exited = synthetic(&with_format, &[("TARGET_OVERRIDE_ALLOWED_ORIGINS", &idp_origin)]).await;
    // THEN the token comes from the identity provider and the account from the API
    exited.assert_none_of(&[&cfg.client_secret]).expect(0);
    let run = exited.result();
    assert_eq!(outcomes(&run), [("token", Outcome::Passed), ("account", Outcome::Passed)], "{run:#?}");
    let state = fake.handle().state();
    assert_eq!((state.tokens_issued, state.client_auth_basic, state.account_ok), (1, 1, 1), "{state:?}");
    // WHEN the identity provider's origin has nothing listening
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port();
    let dead_origin = format!("http://localhost:{closed}");
    let dead = format!("idp={dead_origin}/");
    let argv = ["run", "--journey", &file, "--target", &api, "--target-url", &dead, "--credentials-file", &cred];
    let mut with_format = argv.to_vec();
    with_format.extend(["--format", "json"]);
    let exited = synthetic(&with_format, &[("TARGET_OVERRIDE_ALLOWED_ORIGINS", &dead_origin)]).await;
    // THEN the token step fails there, and the client secret never reached the API's origin
    exited.assert_none_of(&[&cfg.client_secret]).expect(1);
    assert_eq!(step(&exited.result(), "token").cause, Some(Cause::Connect));
    assert_eq!(fake.handle().state(), state, "the API saw nothing more");
}

#[tokio::test]
async fn oauth_secret_rotated_mid_run_is_picked_up_by_the_one_re_read() {
    // GIVEN the client secret was rotated on the API, and the credentials file is updated only
    // once the old secret has been refused, as a rotation lambda racing the monitor would
    let cfg = OAuthConfig::default();
    let fake = oauth::spawn(cfg.clone()).await.expect("fake");
    let rotated = "cs_rotated-Qw3rty-secret";
    fake.handle().rotate_secret(rotated);
    let credentials = Credentials::new(json!({ "client_id": cfg.client_id, "client_secret": cfg.client_secret }));
    let file = credentials.file.clone();
    let fresh = json!({ "client_id": cfg.client_id, "client_secret": rotated });
    fake.handle().on_rejected(move || write_0600(&file, &fresh));
    // WHEN the journey runs
    let exited = run(&journey("oauth-client-credentials.toml"), fake.base_url(), &credentials).await;
    // THEN the refused token request re-reads the secret, reruns with the new one and passes
    exited.assert_none_of(&[&cfg.client_secret, rotated]).expect(0);
    assert_eq!(exited.result().status, Outcome::Passed);
    let state = fake.handle().state();
    assert_eq!((state.clients_rejected, state.tokens_issued, state.account_ok), (1, 1, 1), "{state:?}");
}

#[tokio::test]
async fn oauth_secret_rotated_and_never_updated_is_credentials_rejected() {
    let cfg = OAuthConfig::default();
    let fake = oauth::spawn(cfg.clone()).await.expect("fake");
    fake.handle().rotate_secret("cs_nobody-told-the-monitor");
    let credentials = Credentials::new(json!({ "client_id": cfg.client_id, "client_secret": cfg.client_secret }));
    let exited = run(&journey("oauth-client-credentials.toml"), fake.base_url(), &credentials).await;
    exited.assert_none_of(&[&cfg.client_secret]).expect(1);
    let run = exited.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CredentialsRejected)), "{run:#?}");
    assert_eq!(step(&run, "token").status, Some(401));
    assert_eq!(fake.handle().state().clients_rejected, 1, "re-read, unchanged: not sent again");
}

// ---------------------------------------------------------------------------------------------
// Session cookie

async fn cookie_run(login_answer: LoginAnswer) {
    let cfg = CookieSessionConfig { login_answer, ..CookieSessionConfig::default() };
    let fake = cookie_session::spawn(cfg.clone()).await.expect("fake");
    let credentials = Credentials::new(json!({ "username": cfg.username, "password": cfg.password }));
    // WHEN the cookie journey runs: login sets the cookie, the account page needs it
    let exited = run(&journey("cookie-session.toml"), fake.base_url(), &credentials).await;
    // THEN it passes, and the fake saw its own session cookie come back
    exited.assert_none_of(&[&cfg.password]).expect(0);
    let run = exited.result();
    assert_eq!(
        outcomes(&run),
        [("login", Outcome::Passed), ("account", Outcome::Passed), ("logout", Outcome::Passed)],
        "{login_answer:?}: {run:#?}"
    );
    let state = fake.handle().state();
    assert_eq!(state.logins, 1, "{state:?}");
    assert!(state.account_with_cookie >= 1, "{login_answer:?}: /account never got the cookie: {state:?}");
    assert_eq!(state.account_without_cookie, 0, "{login_answer:?}: /account was asked without the cookie: {state:?}");
    assert!(state.cookie_headers.iter().all(|c| c.contains("session=")), "{state:?}");
    // AND the cleanup logged out: no session left behind
    assert_eq!((state.logouts, state.live_sessions), (1, 0), "{state:?}");
}

#[tokio::test]
async fn cookie_session_login_with_200_passes_and_the_cookie_is_sent_back() {
    cookie_run(LoginAnswer::Ok).await;
}

#[tokio::test]
async fn cookie_session_login_with_303_passes_and_the_cookie_set_by_the_redirect_is_sent_back() {
    // A form login usually answers 303 See Other; followed or not, the cookie it set must be kept.
    cookie_run(LoginAnswer::SeeOther).await;
}

// ---------------------------------------------------------------------------------------------
// Top-level array

#[tokio::test]
async fn array_listing_passes_on_a_top_level_array_and_fails_with_assertion_when_empty() {
    let cfg = ListingConfig::default();
    let fake = listing::spawn(cfg.clone()).await.expect("fake");
    let credentials = Credentials::new(json!({ "api_key": cfg.api_key }));
    let file = journey("array-listing.toml");
    // WHEN the listing is a non-empty array at the top level
    let healthy = run(&file, fake.base_url(), &credentials).await;
    // THEN `json = ""` with min_items passes, the API key went in the header
    healthy.assert_none_of(&[&cfg.api_key]).expect(0);
    assert_eq!(healthy.result().status, Outcome::Passed);
    assert_eq!(fake.handle().state(), listing::ListingState { listed: 1, unauthorized: 0 });

    // WHEN the listing is `[]`
    fake.handle().set_fault(Some(ListingFault::Empty));
    let empty = run(&file, fake.base_url(), &credentials).await;
    // THEN it fails on the assertion, not on the status
    empty.assert_none_of(&[&cfg.api_key]).expect(1);
    let run = empty.result();
    assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::Assertion)), "{run:#?}");
    assert_eq!(step(&run, "list").status, Some(200));

    fake.handle().set_fault(Some(ListingFault::Internal));
    let broken = run_journeys(&[&file], fake.base_url(), &credentials).await;
    broken.assert_none_of(&[&cfg.api_key]).expect(1);
    assert_eq!(broken.result().cause, Some(Cause::HttpStatus));
}

// ---------------------------------------------------------------------------------------------
// Hostile values

pub(crate) fn no_credentials() -> Credentials {
    Credentials::new(json!({ "unused": "nothing-secret-here" }))
}

#[tokio::test]
async fn a_captured_id_of_dot_dot_slash_admin_never_reaches_admin() {
    let fake = hostile_values::spawn(HostileValuesConfig::default()).await.expect("fake");
    let credentials = no_credentials();
    // WHEN the journey reads back an item whose id is "../admin"
    let exited = run(&journey("hostile-path.toml"), fake.base_url(), &credentials).await;
    assert_ne!(exited.code, 101, "a panic: {}", exited.stderr);
    let state = fake.handle().state();
    // THEN /admin was never requested
    assert_eq!(state.admin_hits, 0, "the id moved the request: {:?}", state.raw_paths);
    let run = exited.result();
    let read = step(&run, "read");
    if read.outcome == Outcome::Passed {
        // AND the request went to /items/<one segment> that decodes back to the id
        exited.expect(0);
        let lookups: Vec<&String> = state.raw_paths.iter().filter(|p| p.starts_with("/items/")).collect();
        assert_eq!(lookups.len(), 1, "{:?}", state.raw_paths);
        let segment = &lookups[0]["/items/".len()..];
        assert!(!segment.contains('/'), "more than one segment: {segment}");
        assert_eq!(percent_decode(segment).as_deref(), Some("../admin"), "{segment}");
        assert_eq!(state.item_lookups, ["../admin"]);
    } else {
        // OR the engine refused to send it, as a failed step with a cause
        exited.expect(1);
        assert!(read.cause.is_some() && read.error.is_some(), "{read:#?}");
    }
}

#[tokio::test]
async fn quotes_and_newlines_are_escaped_in_json_encoded_in_forms_and_refused_in_headers() {
    let cfg = HostileValuesConfig::default();
    let fake = hostile_values::spawn(cfg.clone()).await.expect("fake");
    let credentials = no_credentials();
    // WHEN a captured note with quotes, CR/LF and a backslash is sent on in a JSON body, a form
    // body and a header
    let exited = run(&journey("hostile-values.toml"), fake.base_url(), &credentials).await;
    assert!(exited.code == 1 || exited.code == 3, "exit 1 (or 3), never a panic: {}\n{}", exited.code, exited.stderr);
    let run = exited.result();
    let state = fake.handle().state();
    // THEN JSON and form carried it byte for byte
    assert_eq!(
        outcomes(&run)[..3],
        [("create", Outcome::Passed), ("as_json", Outcome::Passed), ("as_form", Outcome::Passed)]
    );
    assert_eq!(state.json_notes, [json!(cfg.note)], "{state:?}");
    assert_eq!(state.form_notes, std::slice::from_ref(&cfg.note), "{state:?}");
    // AND the header step failed without sending a split header
    let header = step(&run, "as_header");
    assert_eq!(header.outcome, Outcome::Failed, "{header:#?}");
    assert!(header.cause.is_some() && header.error.as_deref().is_some_and(|e| !e.contains('\n')), "{header:#?}");
    assert!(state.header_notes.is_empty(), "a header with CR/LF was sent: {:?}", state.header_notes);
    assert!(!state.injected_header_seen, "a header was injected");
    assert_eq!((run.status, run.cause), (Outcome::Failed, header.cause), "{run:#?}");
}

#[tokio::test]
async fn a_huge_body_and_a_non_json_body_are_invalid_responses_not_crashes() {
    let fake = hostile_values::spawn(HostileValuesConfig::default()).await.expect("fake");
    let credentials = no_credentials();
    // WHEN both journeys run in one process (two --journey flags)
    let files = [journey("hostile-huge-body.toml"), journey("hostile-not-json.toml")];
    let exited = run_journeys(&[&files[0], &files[1]], fake.base_url(), &credentials).await;
    // THEN each is a failed run with invalid_response, exit 1, not a panic (101)
    exited.expect(1);
    let runs = exited.results();
    let checks: Vec<&str> = runs.iter().map(|r| r.check.as_str()).collect();
    assert_eq!(checks, ["hostile-huge-body", "hostile-not-json"]);
    for run in &runs {
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::InvalidResponse)), "{run:#?}");
        let fetch = step(run, "fetch");
        assert!(fetch.error.as_deref().is_some_and(|e| !e.is_empty() && e.len() < 2000), "{fetch:#?}");
    }
    let state = fake.handle().state();
    assert!(state.huge_served >= 1 && state.not_json_served >= 1, "{state:?}");
    assert!(!exited.stdout.contains("xxxxxxxxxxxxxxxx"), "the huge body is not echoed");
}

// ---------------------------------------------------------------------------------------------
// Demo shop search

#[tokio::test]
async fn shop_search_journey_passes_as_synthetic_traffic_and_fails_on_empty_results() {
    let shop = shop::spawn(ShopConfig::default()).await.expect("demo shop");
    let credentials = no_credentials();
    let file = journey("shop-search.toml");
    let healthy = run(&file, shop.base_url(), &credentials).await;
    healthy.expect(0);
    assert_eq!(healthy.result().status, Outcome::Passed);
    let traffic = shop.handle().state().traffic;
    assert_eq!((traffic.synthetic, traffic.real), (1, 0), "marked as synthetic: {traffic:?}");

    shop.handle().set_fault("search", "empty").expect("valid fault");
    let empty = run(&file, shop.base_url(), &credentials).await;
    empty.expect(1);
    assert_eq!(empty.result().cause, Some(Cause::Assertion));
}

// ---------------------------------------------------------------------------------------------
// Validation

/// The 1-based line of the only line of `text` containing `marker`.
pub(crate) fn line_of(text: &str, marker: &str) -> usize {
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(marker)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "{marker:?} on exactly one line");
    lines[0]
}

/// The `(line, column, sentence)` of each `FILE:line:column: sentence` line `synthetic validate`
/// printed about `file`.
pub(crate) fn located_problems<'a>(file: &str, stderr: &'a str) -> Vec<(usize, usize, &'a str)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{file}:")))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let column = parts.next()?.parse().ok()?;
            Some((line, column, parts.next()?.trim()))
        })
        .collect()
}

#[tokio::test]
async fn validate_lists_every_mistake_with_its_line_and_column() {
    let file = journey("invalid.toml");
    let text = std::fs::read_to_string(&file).expect("invalid.toml");
    // WHEN the broken journey is validated
    let exited = synthetic(&["validate", &file], &[]).await;
    // THEN it exits 3 and prints one `file:line:column: sentence` per mistake on stderr
    exited.expect(3);
    let located = located_problems(&file, &exited.stderr);
    let expected = [
        ("expect_status = 999", "expect_status"),
        (r#"json = "data""#, "data"),
        ("retries = 3", "retries"),
        (r#"bearer = "{{session}}""#, "session"),
        ("rejected_status = [401]", "rejected_status"),
    ];
    for (marker, named) in expected {
        let line = line_of(&text, marker);
        let found = located.iter().find(|(l, _, _)| *l == line);
        let Some((_, column, message)) = found else {
            panic!("no {file}:{line}:<column>: for {marker:?} in:\n{}", exited.stderr);
        };
        assert!(*column >= 1, "{marker:?}: column {column}");
        assert!(message.contains(named), "{marker:?}: the message names {named:?}: {message}");
        assert!(message.len() > named.len() && !message.contains("Error"), "a plain sentence: {message}");
    }
    assert!(located.len() >= expected.len(), "{}", exited.stderr);
    assert!(exited.stdout.trim().is_empty() || !exited.stdout.contains("\"status\""), "nothing was run");
}

#[tokio::test]
async fn validate_in_json_gives_one_object_per_mistake_with_its_key() {
    let file = journey("invalid.toml");
    let text = std::fs::read_to_string(&file).expect("invalid.toml");
    // WHEN the broken journey is validated for a tool
    let exited = synthetic(&["validate", "--format", "json", &file], &[]).await;
    // THEN it exits 3, and stdout is one JSON object per mistake, each with its file, line,
    // column, key and sentence: the same mistakes the text format lists
    exited.expect(3);
    let found: Vec<Value> = exited
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let expected = [
        ("expect_status = 999", "steps[0].expect_status"),
        (r#"json = "data""#, "steps[0].capture.token.json"),
        ("retries = 3", "steps[0].retries"),
        (r#"bearer = "{{session}}""#, "steps[1].bearer"),
        ("rejected_status = [401]", "steps[1].rejected_status"),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((marker, key), object) in expected.iter().zip(&found) {
        assert_eq!(object["file"], file.as_str());
        assert_eq!(object["line"], line_of(&text, marker), "{marker}: {object}");
        assert!(object["column"].as_u64().is_some_and(|c| c >= 1), "{object}");
        assert_eq!(object["key"], *key, "{object}");
        assert!(object["message"].as_str().is_some_and(|m| !m.is_empty()), "{object}");
    }
    let text_form = synthetic(&["validate", &file], &[]).await;
    assert_eq!(text_form.stderr.lines().filter(|l| l.starts_with(&format!("{file}:"))).count(), found.len());

    // AND an unreadable file is one object without a place in it
    let missing = synthetic(&["validate", "--format", "json", "no/such/journey.toml"], &[]).await;
    missing.expect(3);
    let object: Value = serde_json::from_str(missing.stdout.trim()).expect("one JSON object");
    assert_eq!(
        (object["file"].as_str(), object["line"].is_null(), object["key"].is_null()),
        (Some("no/such/journey.toml"), true, true)
    );

    // AND a valid file prints nothing
    let valid = synthetic(&["validate", "--format", "json", &journey("next-link.toml")], &[]).await;
    valid.expect(0);
    assert_eq!(valid.stdout, "");
}

#[tokio::test]
async fn validate_accepts_every_shipped_journey() {
    let names = [
        "stripe-payment.toml",
        "nested-login.toml",
        "oauth-client-credentials.toml",
        "idp-and-api.toml",
        "next-link.toml",
        "cookie-session.toml",
        "array-listing.toml",
        "hostile-path.toml",
        "hostile-values.toml",
        "hostile-huge-body.toml",
        "hostile-not-json.toml",
        "shop-search.toml",
        "csrf-session.toml",
        "polling-payment.toml",
        "signed-events.toml",
        "graphql-todo.toml",
        "compressed-bodies.toml",
    ];
    let files: Vec<String> = names.iter().map(|n| journey(n)).collect();
    // Every file in the folder but the invalid*.toml ones is listed here, so a new one cannot skip this.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("journeys");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("journeys dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml") && !n.starts_with("invalid"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);

    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let exited = synthetic(&args, &[]).await;
    exited.expect(0);
    assert!(!exited.stderr.contains(".toml:"), "no located problem: {}", exited.stderr);
}

#[tokio::test]
async fn validate_reads_schemas_beside_the_journey_and_locates_a_missing_broken_or_escaping_one() {
    // GIVEN a journey folder with one good and one broken schema, and a file outside it
    let dir = std::env::temp_dir().join(format!("synthetic-schemas-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("checks/schemas")).expect("scratch dir");
    std::fs::write(dir.join("checks/schemas/ok.json"), r#"{"type":"object"}"#).unwrap();
    std::fs::write(dir.join("checks/schemas/broken.json"), r#"{"type": 7}"#).unwrap();
    std::fs::write(dir.join("outside.json"), r#"{"type":"object"}"#).unwrap();
    let text = "check = \"schemas\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [\n\
                { json = \"\", schema = \"schemas/ok.json\" },\n\
                { json = \"\", schema = \"schemas/missing.json\" },\n\
                { json = \"\", schema = \"schemas/broken.json\" },\n\
                { json = \"\", schema = \"../outside.json\" },\n]\n";
    let file = dir.join("checks/schemas.toml").display().to_string();
    std::fs::write(&file, text).unwrap();
    // WHEN it is validated
    let exited = synthetic(&["validate", &file], &[]).await;
    // THEN each bad schema is a located mistake, and the good one is none
    exited.expect(3);
    let lines: Vec<&str> = exited.stderr.lines().filter(|l| l.starts_with(&format!("{file}:"))).collect();
    assert_eq!(lines.len(), 3, "{}", exited.stderr);
    for (line, expected) in lines.iter().zip([
        ":7:23: schema \"schemas/missing.json\" cannot be read beside the journey",
        ":8:23: schema \"schemas/broken.json\" is not a valid JSON Schema",
        ":9:23: \"../outside.json\" must be a path inside the journey's folder",
    ]) {
        assert!(line.contains(expected), "{expected:?} not in {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// An HMAC-signed events API, and the assertion matrix against it

async fn signed_events_run(key: &str, fault: Option<EventsFault>) -> (Exited, RunResult, EventsState, String) {
    let cfg = EventsConfig::default();
    let fake = signed_events::spawn(cfg.clone()).await.expect("fake signed events");
    fake.handle().set_fault(fault);
    let credentials = Credentials::new(json!({ "signing_key": key }));
    let exited = run(&journey("signed-events.toml"), fake.base_url(), &credentials).await;
    exited.assert_none_of(&[key, &cfg.signing_key]);
    let result = exited.result();
    let state = fake.handle().state();
    (exited, result, state, cfg.signing_key)
}

#[tokio::test]
async fn a_signed_write_is_verified_by_the_server_and_the_key_is_never_shown() {
    // WHEN the journey signs every request with the right key
    let (exited, run, state, key) = signed_events_run(&EventsConfig::default().signing_key, None).await;
    // THEN the server verified every request (a fresh timestamp, the exact body, in constant time)
    assert_eq!(run.status, Outcome::Passed, "{run:#?}\n{}", exited.stderr);
    assert_eq!(outcomes(&run), [("create", Outcome::Passed), ("read", Outcome::Passed), ("delete", Outcome::Passed)]);
    assert_eq!((state.verified, state.created, state.deleted, state.live), (3, 1, 1, 0), "{state:?}");
    assert!(state.refused.is_empty(), "{state:?}");
    // AND the key appears nowhere the run hands on
    assert!(!serde_json::to_string(&run).unwrap().contains(&key));
}

#[tokio::test]
async fn a_wrong_signing_key_fails_with_the_servers_cause_and_neither_key_is_shown() {
    // WHEN the secret holds a key the server does not know
    let (_, run, state, _) = signed_events_run("whsec_wrong_key_7Hd93kQz", None).await;
    // THEN the write fails with the server's answer as its cause, and nothing was created
    let create = step(&run, "create");
    assert_eq!((run.status, create.cause), (Outcome::Failed, Some(Cause::HttpStatus)), "{run:#?}");
    let error = create.error.as_deref().unwrap_or_default();
    assert!(error.contains("401") && error.contains("signature mismatch"), "{error}");
    assert_eq!(outcomes(&run), [("create", Outcome::Failed)], "nothing to clean up");
    assert_eq!((state.verified, state.created, state.live), (0, 0, 0), "{state:?}");
    assert!(!state.refused.is_empty() && state.refused.iter().all(|r| r == "signature mismatch"), "{state:?}");
}

#[tokio::test]
async fn numeric_regex_jsonpath_and_schema_assertions_list_every_failure_and_the_cleanup_still_runs() {
    // WHEN the read answers an event that breaks its contract in many ways at once
    let (_, run, state, _) =
        signed_events_run(&EventsConfig::default().signing_key, Some(EventsFault::Malformed)).await;
    // THEN the read fails as an assertion, listing every failure with the value it saw
    let read = step(&run, "read");
    assert_eq!((read.outcome, read.cause), (Outcome::Failed, Some(Cause::Assertion)), "{run:#?}");
    let error = read.error.as_deref().unwrap_or_default();
    for expected in [
        "JSON \"\" (the whole body) does not match schema schemas/event.json (",
        "at /id: \"event-evt_1\" does not match \"^evt_[0-9]+$\"",
        "at /amount: \"twelve\" is not of type \"integer\"",
        "at /items/0: \"sku\" is a required property",
        "JSON /amount is \"twelve\", expected a number at least 1000",
        "JSON /amount_text is \"9.99\", expected a number greater than 12",
        "JSON /id is \"event-evt_1\", expected text matching \"^evt_[0-9]+$\"",
        "JSON $.items[?@.sku == 'kettle'].qty is missing, expected 2",
        "JSON $.items[?@.sku == 'mug'].price is 7, expected a number less than 5",
    ] {
        assert!(error.contains(expected), "{expected:?} not in {error}");
    }
    assert!(!error.contains("X-Request-Id"), "the assertion that holds is not listed: {error}");
    // AND the event is still deleted
    assert_eq!(step(&run, "delete").outcome, Outcome::Passed);
    assert_eq!((state.created, state.deleted, state.live), (1, 1, 0), "{state:?}");
}

//! A Django site with its stock session login (`django.contrib.auth.views.LoginView`,
//! `CsrfViewMiddleware`) and a Django REST framework API behind `SessionAuthentication`, to the
//! public behaviour documented in "Cross Site Request Forgery protection" (docs.djangoproject.com
//! /en/5.0/ref/csrf/) and `django/middleware/csrf.py` (Django 4.1+):
//!
//! - `GET /accounts/login/` -> 200 HTML with `<input type="hidden" name="csrfmiddlewaretoken"
//!   value="...">` and `Set-Cookie: csrftoken=<secret>`. The cookie holds the 32-character secret;
//!   the form holds it *masked* (64 characters: a fresh mask, then the secret shifted by it), so
//!   the two differ on the wire and both are accepted back.
//! - `POST /accounts/login/` (and every other POST): the CSRF check first. No `csrftoken` cookie
//!   -> 403 ("CSRF cookie not set."); then the token from the `csrfmiddlewaretoken` form field or,
//!   when that is absent, the `X-CSRFToken` header; none -> 403 ("CSRF token missing."); a token
//!   of the wrong length or characters, or one that does not unmask to the cookie's secret -> 403.
//!   The 403 is Django's `csrf_failure` page ("CSRF verification failed. Request aborted."); with
//!   `DEBUG = False` the reason is only logged, here kept in [`DjangoState::csrf_failures`].
//!   Referer and Origin are only checked on HTTPS, and this site is plain HTTP.
//! - A wrong password -> 200 with the form again and `AuthenticationForm`'s error "Please enter a
//!   correct username and password. Note that both fields may be case-sensitive."
//! - The right one -> 302 to `LOGIN_REDIRECT_URL` (`/accounts/profile/`) with `Set-Cookie:
//!   sessionid=...; HttpOnly` and, as `login()` rotates the CSRF secret, a new `csrftoken`: a
//!   later POST must send the new one (the old one is "incorrect").
//! - `POST /accounts/logout/` (CSRF-checked, as `LogoutView` is POST-only since Django 5.0) ->
//!   ends the session, expires `sessionid`, 302 to `/accounts/login/`.
//! - DRF, `SessionAuthentication`: `GET /api/items/` -> `PageNumberPagination`'s
//!   `{"count","next","previous","results"}`; `GET /api/items/<id>/` -> the item (a `DecimalField`
//!   price rendered as a string, as `COERCE_DECIMAL_TO_STRING` does) or 404 `{"detail": "No Item
//!   matches the given query."}`; without a session -> 403 `{"detail": "Authentication
//!   credentials were not provided."}`.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{RunningFake, lock, request_cookie, serve};

/// Django's `CSRF_ALLOWED_CHARS`: `string.ascii_letters + string.digits`.
const CSRF_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const CSRF_SECRET_LENGTH: usize = 32;
const WRONG_PASSWORD: &str =
    "Please enter a correct username and password. Note that both fields may be case-sensitive.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoConfig {
    pub username: String,
    pub password: String,
}

impl Default for DjangoConfig {
    fn default() -> Self {
        Self { username: "synthetic-monitor".to_owned(), password: "dj4ngo-Session-pass-7Qw".to_owned() }
    }
}

/// What the site saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DjangoState {
    pub login_pages: u64,
    pub logins: u64,
    /// Login posts that passed the CSRF check with a wrong username or password.
    pub wrong_passwords: u64,
    /// The reason of every 403 the CSRF check gave, as Django logs it, e.g. "CSRF token missing.".
    pub csrf_failures: Vec<String>,
    /// API requests answered with a session / refused for want of one.
    pub api_authenticated: u64,
    pub api_forbidden: u64,
    pub logouts: u64,
    /// Sessions logged in and not logged out.
    pub live_sessions: u64,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashSet<String>,
    state: DjangoState,
}

#[derive(Debug)]
struct Site {
    cfg: DjangoConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct DjangoHandle(Arc<Site>);

impl DjangoHandle {
    pub fn state(&self) -> DjangoState {
        let inner = lock(&self.0.inner);
        DjangoState { live_sessions: inner.sessions.len() as u64, ..inner.state.clone() }
    }
}

pub fn router(cfg: DjangoConfig) -> (Router, DjangoHandle) {
    let site = Arc::new(Site { cfg, inner: Mutex::new(Inner::default()) });
    let router = Router::new()
        .route("/accounts/login/", get(login_page).post(login))
        .route("/accounts/profile/", get(profile))
        .route("/accounts/logout/", axum::routing::post(logout))
        .route("/api/items/", get(items))
        .route("/api/items/{id}/", get(item))
        .with_state(site.clone());
    (router, DjangoHandle(site))
}

pub async fn spawn(cfg: DjangoConfig) -> io::Result<RunningFake<DjangoHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

fn items_catalogue() -> Vec<Value> {
    vec![
        json!({ "id": 7, "name": "Teapot", "price": "18.50", "sku": "TP-0007", "tags": ["kitchen", "tea"] }),
        json!({ "id": 12, "name": "Kettle", "price": "25.00", "sku": "KT-0012", "tags": ["kitchen", "electric"] }),
        json!({ "id": 31, "name": "Toaster", "price": "32.00", "sku": "TS-0031", "tags": ["kitchen"] }),
    ]
}

fn random_string(len: usize) -> String {
    // uuid v4 bytes are a well-seeded source; only the alphabet matters here.
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().into_bytes() {
            if out.len() < len {
                out.push(CSRF_CHARS[b as usize % CSRF_CHARS.len()] as char);
            }
        }
    }
    out
}

fn index(c: u8) -> Option<usize> {
    CSRF_CHARS.iter().position(|&x| x == c)
}

/// `_mask_cipher_secret`: a fresh mask, then each secret character shifted by the mask's.
fn mask(secret: &str) -> String {
    let mask = random_string(CSRF_SECRET_LENGTH);
    let cipher: String = secret
        .bytes()
        .zip(mask.bytes())
        .map(|(s, m)| {
            let shifted = (index(s).unwrap_or(0) + index(m).unwrap_or(0)) % CSRF_CHARS.len();
            CSRF_CHARS[shifted] as char
        })
        .collect();
    format!("{mask}{cipher}")
}

/// `_unmask_cipher_token`.
fn unmask(token: &str) -> String {
    let (mask, cipher) = token.split_at(CSRF_SECRET_LENGTH);
    let n = CSRF_CHARS.len();
    cipher
        .bytes()
        .zip(mask.bytes())
        .map(|(c, m)| CSRF_CHARS[(index(c).unwrap_or(0) + n - index(m).unwrap_or(0)) % n] as char)
        .collect()
}

/// `_check_token_format`: the reason's tail when the token is malformed.
fn token_format_problem(token: &str) -> Option<&'static str> {
    if token.len() != CSRF_SECRET_LENGTH && token.len() != 2 * CSRF_SECRET_LENGTH {
        return Some("has incorrect length");
    }
    (!token.bytes().all(|b| index(b).is_some())).then_some("has invalid characters")
}

/// `request.POST`: the form fields of a form-encoded body; none for any other body (a POST with
/// no body at all, as a logout sends, is fine, its token comes in the header).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return BTreeMap::new();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn csrf_cookie(secret: &str) -> String {
    format!("csrftoken={secret}; Max-Age=31449600; Path=/; SameSite=Lax")
}

/// `CsrfViewMiddleware.process_view` for a POST over HTTP: the reason it is refused, if it is.
fn csrf_reason(headers: &HeaderMap, form: &BTreeMap<String, String>) -> Option<String> {
    let Some(secret) = request_cookie(headers, "csrftoken") else {
        return Some("CSRF cookie not set.".to_owned());
    };
    if let Some(problem) = token_format_problem(&secret) {
        return Some(format!("CSRF cookie {problem}."));
    }
    let posted = form.get("csrfmiddlewaretoken").filter(|t| !t.is_empty());
    let (token, source) = match posted {
        Some(token) => (token.clone(), "POST"),
        None => match headers.get("x-csrftoken").and_then(|v| v.to_str().ok()) {
            Some(token) => (token.to_owned(), "the 'X-Csrftoken' HTTP header"),
            None => return Some("CSRF token missing.".to_owned()),
        },
    };
    if let Some(problem) = token_format_problem(&token) {
        return Some(format!("CSRF token from {source} {problem}."));
    }
    let secret = if secret.len() == CSRF_SECRET_LENGTH { secret } else { unmask(&secret) };
    let presented = if token.len() == CSRF_SECRET_LENGTH { token } else { unmask(&token) };
    (presented != secret).then(|| format!("CSRF token from {source} incorrect."))
}

/// Django's `csrf_failure` view with `DEBUG = False`.
fn csrf_failure(site: &Site, reason: String) -> Response {
    lock(&site.inner).state.csrf_failures.push(reason);
    let page = "<!DOCTYPE html><html lang=\"en\"><head><title>403 Forbidden</title></head><body>\
        <div id=\"summary\"><h1>Forbidden <span>(403)</span></h1>\
        <p>CSRF verification failed. Request aborted.</p></div></body></html>";
    (StatusCode::FORBIDDEN, Html(page)).into_response()
}

fn login_form(secret: &str, username: &str, error: Option<&str>) -> String {
    let errors = error.map(|e| format!("<ul class=\"errorlist nonfield\"><li>{e}</li></ul>")).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><title>Log in</title></head><body>\
        <form method=\"post\" action=\"/accounts/login/\">{errors}\
        <input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{token}\">\
        <p><label for=\"id_username\">Username:</label> <input type=\"text\" name=\"username\" \
        value=\"{username}\" autofocus autocapitalize=\"none\" autocomplete=\"username\" maxlength=\"150\" \
        required id=\"id_username\"></p>\
        <p><label for=\"id_password\">Password:</label> <input type=\"password\" name=\"password\" \
        autocomplete=\"current-password\" required id=\"id_password\"></p>\
        <button type=\"submit\">Log in</button></form></body></html>",
        token = mask(secret),
    )
}

/// The login view is `never_cache`: Django adds these to its every answer.
const NEVER_CACHE: &str = "max-age=0, no-cache, no-store, must-revalidate, private";

async fn login_page(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    lock(&site.inner).state.login_pages += 1;
    let secret = request_cookie(&headers, "csrftoken")
        .filter(|s| token_format_problem(s).is_none())
        .unwrap_or_else(|| random_string(CSRF_SECRET_LENGTH));
    let page = login_form(&secret, "", None);
    (
        StatusCode::OK,
        [(header::SET_COOKIE, csrf_cookie(&secret)), (header::CACHE_CONTROL, NEVER_CACHE.to_owned())],
        Html(page),
    )
        .into_response()
}

async fn login(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&headers, &body);
    if let Some(reason) = csrf_reason(&headers, &form) {
        return csrf_failure(&site, reason);
    }
    let username = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let mut inner = lock(&site.inner);
    if username != site.cfg.username || password != site.cfg.password {
        inner.state.wrong_passwords += 1;
        let secret = request_cookie(&headers, "csrftoken").unwrap_or_default();
        // Django escapes what it echoes; the fake's usernames need none.
        return (
            StatusCode::OK,
            [(header::CACHE_CONTROL, NEVER_CACHE)],
            Html(login_form(&secret, &username, Some(WRONG_PASSWORD))),
        )
            .into_response();
    }
    inner.state.logins += 1;
    let session = random_string(32).to_lowercase();
    inner.sessions.insert(session.clone());
    let rotated = random_string(CSRF_SECRET_LENGTH);
    let mut response = (StatusCode::FOUND, [(header::LOCATION, "/accounts/profile/")]).into_response();
    let headers = response.headers_mut();
    for set in [format!("sessionid={session}; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"), csrf_cookie(&rotated)]
    {
        if let Ok(value) = set.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn session(site: &Site, headers: &HeaderMap) -> bool {
    request_cookie(headers, "sessionid").is_some_and(|s| lock(&site.inner).sessions.contains(&s))
}

async fn profile(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    if !session(&site, &headers) {
        return (StatusCode::FOUND, [(header::LOCATION, "/accounts/login/?next=/accounts/profile/")]).into_response();
    }
    Html(format!("<!DOCTYPE html><html><body><p>Signed in as {}.</p></body></html>", site.cfg.username)).into_response()
}

async fn logout(State(site): State<Arc<Site>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(reason) = csrf_reason(&headers, &parse_form(&headers, &body)) {
        return csrf_failure(&site, reason);
    }
    let mut inner = lock(&site.inner);
    if let Some(session) = request_cookie(&headers, "sessionid")
        && inner.sessions.remove(&session)
    {
        inner.state.logouts += 1;
    }
    let expired = "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax";
    (StatusCode::FOUND, [(header::LOCATION, "/accounts/login/"), (header::SET_COOKIE, expired)]).into_response()
}

/// DRF's answer: JSON with `Vary: Accept, Cookie` and `Allow`, or 403 without a session.
fn api(site: &Site, headers: &HeaderMap, answer: impl FnOnce() -> (StatusCode, Value)) -> Response {
    let allowed = session(site, headers);
    let (status, body) = if allowed {
        lock(&site.inner).state.api_authenticated += 1;
        answer()
    } else {
        lock(&site.inner).state.api_forbidden += 1;
        (StatusCode::FORBIDDEN, json!({ "detail": "Authentication credentials were not provided." }))
    };
    (status, [(header::VARY, "Accept, Cookie"), (header::ALLOW, "GET, HEAD, OPTIONS")], axum::Json(body))
        .into_response()
}

async fn items(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    api(&site, &headers, || {
        let results = items_catalogue();
        (StatusCode::OK, json!({ "count": results.len(), "next": null, "previous": null, "results": results }))
    })
}

async fn item(State(site): State<Arc<Site>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    api(&site, &headers, || {
        // `<int:pk>`: anything but an integer matches no item.
        let pk = id.parse::<i64>().ok();
        let found = items_catalogue().into_iter().find(|i| pk.is_some() && i["id"].as_i64() == pk);
        match found {
            Some(item) => (StatusCode::OK, item),
            None => (StatusCode::NOT_FOUND, json!({ "detail": "No Item matches the given query." })),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(CSRF_CHARS), CSRF_SECRET_LENGTH)
            .prop_map(|b| String::from_utf8(b).unwrap_or_default())
    }

    fn with_cookie(secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("csrftoken={secret}").parse().unwrap());
        headers
    }

    proptest! {
        // Django's check, as the fake does it: any secret's masked or bare token is accepted back
        // in the form field or the header; any other secret's is "incorrect", in either place.
        #[test]
        fn any_secret_is_accepted_masked_or_bare_and_any_other_is_incorrect(ours in secret(), theirs in secret()) {
            prop_assume!(ours != theirs);
            let headers = with_cookie(&ours);
            let masked = mask(&ours);
            prop_assert_eq!(unmask(&masked), ours.clone());
            for token in [masked, ours.clone()] {
                let form = BTreeMap::from([("csrfmiddlewaretoken".to_owned(), token.clone())]);
                prop_assert_eq!(csrf_reason(&headers, &form), None);
                let mut in_header = headers.clone();
                in_header.insert("x-csrftoken", token.parse().unwrap());
                prop_assert_eq!(csrf_reason(&in_header, &BTreeMap::new()), None);
            }
            for token in [mask(&theirs), theirs] {
                let form = BTreeMap::from([("csrfmiddlewaretoken".to_owned(), token)]);
                let reason = csrf_reason(&headers, &form);
                prop_assert_eq!(reason.as_deref(), Some("CSRF token from POST incorrect."));
            }
        }
    }

    #[test]
    fn a_masked_token_unmasks_to_its_secret_and_differs_each_time() {
        let secret = random_string(CSRF_SECRET_LENGTH);
        let (a, b) = (mask(&secret), mask(&secret));
        assert_eq!((a.len(), token_format_problem(&a)), (64, None));
        assert_ne!(a, b, "a fresh mask per page");
        assert_eq!((unmask(&a), unmask(&b)), (secret.clone(), secret));
        assert_eq!(token_format_problem("short"), Some("has incorrect length"));
        assert_eq!(token_format_problem(&"-".repeat(32)), Some("has invalid characters"));
    }

    #[test]
    fn the_form_field_wins_over_the_header_and_a_missing_one_is_named() {
        let secret = random_string(CSRF_SECRET_LENGTH);
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("csrftoken={secret}").parse().unwrap());
        let form = |t: &str| BTreeMap::from([("csrfmiddlewaretoken".to_owned(), t.to_owned())]);
        assert_eq!(csrf_reason(&headers, &form(&mask(&secret))), None);
        assert_eq!(csrf_reason(&headers, &form(&secret)), None, "the unmasked secret is accepted too");
        assert_eq!(csrf_reason(&headers, &BTreeMap::new()).as_deref(), Some("CSRF token missing."));
        let other = random_string(CSRF_SECRET_LENGTH);
        assert_eq!(csrf_reason(&headers, &form(&other)).as_deref(), Some("CSRF token from POST incorrect."));
        headers.insert("x-csrftoken", mask(&secret).parse().unwrap());
        assert_eq!(csrf_reason(&headers, &BTreeMap::new()), None);
        assert_eq!(csrf_reason(&HeaderMap::new(), &form(&secret)).as_deref(), Some("CSRF cookie not set."));
    }
}

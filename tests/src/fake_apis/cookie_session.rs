//! A classic session-cookie login, as server-rendered apps and many internal tools do it:
//!
//! - `POST /login`, form `username` and `password` -> `Set-Cookie: session=<random>; HttpOnly;
//!   Path=/; SameSite=Lax` with either 200 `{"ok":true}` or, like an HTML form login, 303 See
//!   Other to `/account` ([`LoginAnswer`]); a wrong password -> 401 and no cookie.
//! - `GET /account` -> 200 with the account when the request carries a live `session` cookie,
//!   else 401 `{"error":"login_required"}`.
//! - `POST /logout` -> 204, ends the session and expires the cookie.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{RunningFake, lock, random_id, request_cookie, serve};

/// How a successful login answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoginAnswer {
    /// 200 `{"ok":true}` with the cookie.
    #[default]
    Ok,
    /// 303 See Other to `/account` with the cookie: a client that follows it must send the
    /// cookie set by the redirect itself.
    SeeOther,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSessionConfig {
    pub username: String,
    pub password: String,
    pub login_answer: LoginAnswer,
}

impl Default for CookieSessionConfig {
    fn default() -> Self {
        Self {
            username: "synthetic".to_owned(),
            password: "cookie-jar-pass-K8s1".to_owned(),
            login_answer: LoginAnswer::default(),
        }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieSessionState {
    pub logins: u64,
    pub logins_rejected: u64,
    /// `GET /account` answered 200 because the request carried a live session cookie.
    pub account_with_cookie: u64,
    /// `GET /account` answered 401: no cookie, or not a live session.
    pub account_without_cookie: u64,
    pub logouts: u64,
    /// Sessions created and not logged out.
    pub live_sessions: u64,
    /// Every `Cookie` header `GET /account` received, in order.
    pub cookie_headers: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashSet<String>,
    state: CookieSessionState,
}

#[derive(Debug)]
struct Service {
    cfg: CookieSessionConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct CookieSessionHandle(Arc<Service>);

impl CookieSessionHandle {
    pub fn state(&self) -> CookieSessionState {
        let inner = lock(&self.0.inner);
        CookieSessionState { live_sessions: inner.sessions.len() as u64, ..inner.state.clone() }
    }
}

pub fn router(cfg: CookieSessionConfig) -> (Router, CookieSessionHandle) {
    let service = Arc::new(Service { cfg, inner: Mutex::new(Inner::default()) });
    let router = Router::new()
        .route("/login", post(login))
        .route("/account", get(account))
        .route("/logout", post(logout))
        .with_state(service.clone());
    (router, CookieSessionHandle(service))
}

pub async fn spawn(cfg: CookieSessionConfig) -> io::Result<RunningFake<CookieSessionHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    request_cookie(headers, "session")
}

async fn login(
    State(service): State<Arc<Service>>,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let mut inner = lock(&service.inner);
    let ok = form.is_ok_and(|Form(f)| {
        f.get("username") == Some(&service.cfg.username) && f.get("password") == Some(&service.cfg.password)
    });
    if !ok {
        inner.state.logins_rejected += 1;
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_login" }))).into_response();
    }
    inner.state.logins += 1;
    let session = random_id("");
    inner.sessions.insert(session.clone());
    let cookie = format!("session={session}; HttpOnly; Path=/; SameSite=Lax");
    match service.cfg.login_answer {
        LoginAnswer::Ok => {
            (StatusCode::OK, [(header::SET_COOKIE, cookie)], axum::Json(json!({ "ok": true }))).into_response()
        }
        LoginAnswer::SeeOther => {
            (StatusCode::SEE_OTHER, [(header::SET_COOKIE, cookie), (header::LOCATION, "/account".to_owned())])
                .into_response()
        }
    }
}

async fn account(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    let raw: Vec<String> =
        headers.get_all(header::COOKIE).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    inner.state.cookie_headers.push(raw.join("; "));
    if session_cookie(&headers).is_some_and(|s| inner.sessions.contains(&s)) {
        inner.state.account_with_cookie += 1;
        let body = json!({ "username": service.cfg.username, "plan": "team", "features": ["exports", "sso"] });
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    inner.state.account_without_cookie += 1;
    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "login_required" }))).into_response()
}

async fn logout(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if let Some(session) = session_cookie(&headers)
        && inner.sessions.remove(&session)
    {
        inner.state.logouts += 1;
    }
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, "session=; Max-Age=0; HttpOnly; Path=/")]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{form_encode, send, test_client};

    fn login_request(http: &reqwest::Client, base: &str, password: &str) -> reqwest::RequestBuilder {
        http.post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&[("username", "synthetic"), ("password", password)]))
    }

    #[tokio::test]
    async fn login_sets_an_http_only_cookie_that_account_requires() {
        for answer in [LoginAnswer::Ok, LoginAnswer::SeeOther] {
            let cfg = CookieSessionConfig { login_answer: answer, ..CookieSessionConfig::default() };
            let fake = spawn(cfg.clone()).await.unwrap();
            let (http, base) = (test_client(), fake.base_url().to_owned());

            let resp = login_request(&http, &base, &cfg.password).send().await.unwrap();
            let expected = if answer == LoginAnswer::Ok { 200 } else { 303 };
            assert_eq!(resp.status().as_u16(), expected);
            if answer == LoginAnswer::SeeOther {
                assert_eq!(resp.headers().get("location").map(|v| v.as_bytes()), Some(&b"/account"[..]));
            }
            let set_cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
            assert!(set_cookie.starts_with("session=") && set_cookie.contains("; HttpOnly; Path=/"), "{set_cookie}");
            let cookie = set_cookie.split(';').next().unwrap().to_owned();

            assert_eq!(send(http.get(format!("{base}/account"))).await.0, 401);
            assert_eq!(send(http.get(format!("{base}/account")).header("cookie", "session=forged")).await.0, 401);
            let with_cookie = http.get(format!("{base}/account")).header("cookie", format!("theme=dark; {cookie}"));
            let (status, account) = send(with_cookie).await;
            assert_eq!((status, account["username"].as_str()), (200, Some("synthetic")));
            assert_eq!(fake.handle().state().live_sessions, 1);
            assert_eq!(send(http.post(format!("{base}/logout")).header("cookie", &cookie)).await.0, 204);

            assert_eq!(login_request(&http, &base, "wrong").send().await.unwrap().status().as_u16(), 401);
            let state = fake.handle().state();
            assert_eq!(
                (state.logins, state.logins_rejected, state.account_with_cookie, state.account_without_cookie),
                (1, 1, 1, 2),
                "{state:?}"
            );
            assert_eq!((state.logouts, state.live_sessions), (1, 0));
            assert_eq!(
                state.cookie_headers,
                ["".to_owned(), "session=forged".to_owned(), format!("theme=dark; {cookie}")]
            );
        }
    }
}

//! A login that takes its credentials nested one level down and answers a wrong password with
//! **400** `{"error":"invalid_grant"}` rather than 401, as several real APIs do:
//!
//! - `POST /api/v2/sessions` with `{"user":{"email":...,"password":...}}` -> 201
//!   `{"session":{"token":...,"expires_in":3600},"user":{"id":...,"email":...}}`;
//!   a wrong password -> 400 `invalid_grant`; a body of another shape -> 422 `invalid_request`.
//! - `GET /api/v2/me` with `Authorization: Bearer <token>` -> 200 `{"user":{...}}`, else 401.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{RunningFake, bearer_token, lock, random_id, serve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedLoginConfig {
    pub email: String,
    pub password: String,
}

impl Default for NestedLoginConfig {
    fn default() -> Self {
        Self { email: "monitor@partner.example".to_owned(), password: "nested-login-pass-7Rq2".to_owned() }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NestedLoginState {
    pub sessions_created: u64,
    /// Logins refused with 400 `invalid_grant`.
    pub logins_rejected: u64,
    /// Login bodies that were not `{"user":{"email","password"}}`.
    pub malformed: u64,
    pub me_ok: u64,
    pub me_unauthorized: u64,
}

#[derive(Debug, Default)]
struct Inner {
    password: String,
    tokens: HashSet<String>,
    state: NestedLoginState,
}

#[derive(Debug)]
struct Service {
    email: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct NestedLoginHandle(Arc<Service>);

impl NestedLoginHandle {
    /// Changes the password; sessions already issued stay valid.
    pub fn rotate_password(&self, password: &str) {
        lock(&self.0.inner).password = password.to_owned();
    }

    pub fn state(&self) -> NestedLoginState {
        lock(&self.0.inner).state
    }
}

pub fn router(cfg: NestedLoginConfig) -> (Router, NestedLoginHandle) {
    let service =
        Arc::new(Service { email: cfg.email, inner: Mutex::new(Inner { password: cfg.password, ..Inner::default() }) });
    let router = Router::new()
        .route("/api/v2/sessions", post(create_session))
        .route("/api/v2/me", get(me))
        .with_state(service.clone());
    (router, NestedLoginHandle(service))
}

pub async fn spawn(cfg: NestedLoginConfig) -> io::Result<RunningFake<NestedLoginHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

#[derive(Deserialize)]
struct SessionRequest {
    user: UserCredentials,
}

#[derive(Deserialize)]
struct UserCredentials {
    email: String,
    password: String,
}

async fn create_session(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    let mut inner = lock(&service.inner);
    let Ok(req) = serde_json::from_slice::<SessionRequest>(&body) else {
        inner.state.malformed += 1;
        let body =
            json!({ "error": "invalid_request", "error_description": "expected {\"user\":{\"email\",\"password\"}}" });
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    };
    if req.user.email != service.email || req.user.password != inner.password {
        inner.state.logins_rejected += 1;
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "invalid_grant" }))).into_response();
    }
    inner.state.sessions_created += 1;
    let token = random_id("sess_");
    inner.tokens.insert(token.clone());
    let body = json!({
        "session": { "token": token, "expires_in": 3600 },
        "user": { "id": "usr_1001", "email": service.email },
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn me(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if bearer_token(&headers).is_some_and(|t| inner.tokens.contains(&t)) {
        inner.state.me_ok += 1;
        let body = json!({ "user": { "id": "usr_1001", "email": service.email, "roles": ["monitor"] } });
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    inner.state.me_unauthorized += 1;
    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "unauthorized" }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};
    use serde_json::Value;

    async fn login(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
        send(
            http.post(format!("{base}/api/v2/sessions"))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    #[tokio::test]
    async fn nested_login_answers_400_invalid_grant_and_201_with_a_session_token() {
        let cfg = NestedLoginConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, base) = (test_client(), fake.base_url().to_owned());

        let wrong = json!({ "user": { "email": cfg.email, "password": "nope" } });
        assert_eq!(login(&http, &base, wrong).await, (400, json!({ "error": "invalid_grant" })));
        let flat = json!({ "email": cfg.email, "password": cfg.password });
        assert_eq!(login(&http, &base, flat).await.0, 422, "credentials at the top level are not this API's shape");

        let (status, body) =
            login(&http, &base, json!({ "user": { "email": cfg.email, "password": cfg.password } })).await;
        assert_eq!(status, 201, "{body}");
        let token = body["session"]["token"].as_str().unwrap().to_owned();
        assert!(!token.is_empty());

        assert_eq!(send(http.get(format!("{base}/api/v2/me"))).await.0, 401);
        let (status, me) = send(http.get(format!("{base}/api/v2/me")).bearer_auth(&token)).await;
        assert_eq!((status, me["user"]["email"].as_str()), (200, Some(cfg.email.as_str())));

        fake.handle().rotate_password("rotated");
        let old = json!({ "user": { "email": cfg.email, "password": cfg.password } });
        assert_eq!(login(&http, &base, old).await.0, 400);
        assert_eq!(
            fake.handle().state(),
            NestedLoginState { sessions_created: 1, logins_rejected: 2, malformed: 1, me_ok: 1, me_unauthorized: 1 }
        );
    }
}

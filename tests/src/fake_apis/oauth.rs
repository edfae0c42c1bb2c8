//! OAuth2 client credentials (RFC 6749 section 4.4), the way machine-to-machine APIs hand out
//! tokens:
//!
//! - `POST /oauth/token`, form `grant_type=client_credentials` (optional `scope`), the client
//!   authenticated with HTTP basic `client_id:client_secret` (or, as RFC 6749 also allows,
//!   `client_id` and `client_secret` form fields) -> 200
//!   `{"access_token","token_type":"Bearer","expires_in","scope"}` with `Cache-Control: no-store`;
//!   a wrong client -> 401 `{"error":"invalid_client"}`; another grant -> 400
//!   `unsupported_grant_type`.
//! - `GET /v1/accounts/me` with the access token as Bearer -> 200, else 401.
//!
//! The handle can rotate the client secret, and run a hook whenever a client is refused, so a
//! test can put the new secret in place exactly between the refusal and the monitor's re-read.

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

use super::{RunningFake, basic_credentials, bearer_token, lock, random_id, serve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self { client_id: "synthetic-monitor".to_owned(), client_secret: "cs_9fQv2LmZ-oauth-client-secret".to_owned() }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthState {
    pub tokens_issued: u64,
    /// Token requests refused with 401 `invalid_client`.
    pub clients_rejected: u64,
    /// Token requests refused with 400 (wrong grant type, not a form).
    pub bad_requests: u64,
    /// How clients authenticated: HTTP basic, or id and secret in the form body.
    pub client_auth_basic: u64,
    pub client_auth_post: u64,
    pub account_ok: u64,
    pub account_unauthorized: u64,
}

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    client_secret: String,
    tokens: HashSet<String>,
    on_rejected: Option<Hook>,
    state: OAuthState,
}

struct Service {
    client_id: String,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
pub struct OAuthHandle(Arc<Service>);

impl std::fmt::Debug for OAuthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthHandle").field("client_id", &self.0.client_id).finish_non_exhaustive()
    }
}

impl OAuthHandle {
    /// Replaces the client secret; tokens already issued stay valid until they expire.
    pub fn rotate_secret(&self, secret: &str) {
        lock(&self.0.inner).client_secret = secret.to_owned();
    }

    /// Runs `hook` each time a client is refused, before the 401 is sent.
    pub fn on_rejected(&self, hook: impl Fn() + Send + Sync + 'static) {
        lock(&self.0.inner).on_rejected = Some(Arc::new(hook));
    }

    pub fn state(&self) -> OAuthState {
        lock(&self.0.inner).state
    }
}

pub fn router(cfg: OAuthConfig) -> (Router, OAuthHandle) {
    let service = Arc::new(Service {
        client_id: cfg.client_id,
        inner: Mutex::new(Inner { client_secret: cfg.client_secret, ..Inner::default() }),
    });
    let router = Router::new()
        .route("/oauth/token", post(token))
        .route("/v1/accounts/me", get(account))
        .with_state(service.clone());
    (router, OAuthHandle(service))
}

pub async fn spawn(cfg: OAuthConfig) -> io::Result<RunningFake<OAuthHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"oauth\"".parse().expect("valid"));
    }
    response
}

async fn token(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let mut inner = lock(&service.inner);
    let Ok(Form(params)) = form else {
        inner.state.bad_requests += 1;
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded body",
        );
    };
    let client = match basic_credentials(&headers) {
        Some(basic) => {
            inner.state.client_auth_basic += 1;
            Some(basic)
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => {
                inner.state.client_auth_post += 1;
                Some((id.clone(), secret.clone()))
            }
            _ => None,
        },
    };
    if !client.is_some_and(|(id, secret)| id == service.client_id && secret == inner.client_secret) {
        inner.state.clients_rejected += 1;
        if let Some(hook) = inner.on_rejected.clone() {
            drop(inner);
            hook();
        }
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    }
    if params.get("grant_type").map(String::as_str) != Some("client_credentials") {
        inner.state.bad_requests += 1;
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only client_credentials is supported.");
    }
    inner.state.tokens_issued += 1;
    let access_token = random_id("at_");
    inner.tokens.insert(access_token.clone());
    let scope = params.get("scope").cloned().unwrap_or_else(|| "accounts:read".to_owned());
    let body = json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": 3600, "scope": scope });
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

async fn account(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if bearer_token(&headers).is_some_and(|t| inner.tokens.contains(&t)) {
        inner.state.account_ok += 1;
        let body = json!({ "id": "acct_42", "object": "account", "client_id": service.client_id, "status": "active" });
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    inner.state.account_unauthorized += 1;
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_token" }))).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"".parse().expect("valid"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{form_encode, send, test_client};
    use serde_json::Value;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn token_request(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        http.post(format!("{base}/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(form))
    }

    #[tokio::test]
    async fn client_credentials_grant_and_protected_account() {
        let cfg = OAuthConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, base) = (test_client(), fake.base_url().to_owned());
        let grant = [("grant_type", "client_credentials")];

        let resp = token_request(&http, &base, &grant).basic_auth(&cfg.client_id, Some(&cfg.client_secret)).send();
        let resp = resp.await.unwrap();
        assert_eq!(resp.headers().get("cache-control").map(|v| v.as_bytes()), Some(&b"no-store"[..]));
        let (status, body): (u16, Value) =
            (resp.status().as_u16(), serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap());
        assert_eq!(
            (status, body["token_type"].as_str(), body["expires_in"].as_u64()),
            (200, Some("Bearer"), Some(3600))
        );
        let token = body["access_token"].as_str().unwrap().to_owned();

        let (status, account) = send(http.get(format!("{base}/v1/accounts/me")).bearer_auth(&token)).await;
        assert_eq!((status, account["id"].as_str()), (200, Some("acct_42")));
        assert_eq!(send(http.get(format!("{base}/v1/accounts/me")).bearer_auth("at_forged")).await.0, 401);

        let post_auth = [
            ("grant_type", "client_credentials"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
        ];
        assert_eq!(send(token_request(&http, &base, &post_auth)).await.0, 200);
        let (status, body) = send(token_request(&http, &base, &grant).basic_auth(&cfg.client_id, Some("wrong"))).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
        assert_eq!(send(token_request(&http, &base, &grant)).await.0, 401, "no client authentication");
        let password = [("grant_type", "password")];
        let (status, body) =
            send(token_request(&http, &base, &password).basic_auth(&cfg.client_id, Some(&cfg.client_secret))).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));
        let json_body = http.post(format!("{base}/oauth/token")).header("content-type", "application/json").body("{}");
        assert_eq!(send(json_body).await.0, 400);

        let state = fake.handle().state();
        assert_eq!(
            state,
            OAuthState {
                tokens_issued: 2,
                clients_rejected: 2,
                bad_requests: 2,
                client_auth_basic: 3,
                client_auth_post: 1,
                account_ok: 1,
                account_unauthorized: 1,
            }
        );
    }

    #[tokio::test]
    async fn rotation_refuses_the_old_secret_and_runs_the_hook() {
        let cfg = OAuthConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let rejected = Arc::new(AtomicU64::new(0));
        let seen = rejected.clone();
        fake.handle().on_rejected(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        fake.handle().rotate_secret("cs_new");
        let (http, base) = (test_client(), fake.base_url().to_owned());
        let grant = [("grant_type", "client_credentials")];
        assert_eq!(
            send(token_request(&http, &base, &grant).basic_auth(&cfg.client_id, Some(&cfg.client_secret))).await.0,
            401
        );
        assert_eq!(rejected.load(Ordering::SeqCst), 1);
        assert_eq!(send(token_request(&http, &base, &grant).basic_auth(&cfg.client_id, Some("cs_new"))).await.0, 200);
    }
}

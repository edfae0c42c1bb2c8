//! An API whose *values* are hostile, for the journey engine's encoding rules:
//!
//! - `POST /items` -> 201 `{"id":"../admin","note":"He said \"hi\"\r\nX-Injected: yes..."}`: an id
//!   that moves a request if it is pasted into a path unencoded, and a note with quotes, CR/LF
//!   and a backslash that breaks a JSON body, a form body or a header if it is pasted raw.
//! - `GET /items/{id}` -> 200 when `{id}` decodes to the created id (one encoded segment).
//! - `/admin` and anything under it, any method -> 200, counted: a journey must never get here.
//! - `POST /echo/json`, `POST /echo/form`, `GET /echo/header` record the `note` they were sent (as
//!   JSON field, form field, `X-Note` header) so a test can compare it byte for byte.
//! - `GET /huge` -> 200 valid JSON of [`HUGE_BODY_BYTES`], over the monitor's 1 MiB cap.
//! - `GET /not-json` -> 200 with an HTML maintenance page.
//!
//! Every request's raw path and query, exactly as it came on the wire, is recorded.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::{RunningFake, lock, serve};

/// Size of the `/huge` body: twice the monitor's default 1 MiB cap.
pub const HUGE_BODY_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostileValuesConfig {
    /// The id `POST /items` hands out.
    pub id: String,
    /// The note `POST /items` hands out.
    pub note: String,
}

impl Default for HostileValuesConfig {
    fn default() -> Self {
        Self { id: "../admin".to_owned(), note: "He said \"hi\"\r\nX-Injected: yes\n\\ and {\"left\": 1}".to_owned() }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostileValuesState {
    /// Raw path and query of every request, in order.
    pub raw_paths: Vec<String>,
    /// Requests that reached `/admin` or below.
    pub admin_hits: u64,
    /// The decoded `{id}` of every `GET /items/{id}`.
    pub item_lookups: Vec<String>,
    /// The `note` field of every `POST /echo/json` body (null when absent).
    pub json_notes: Vec<Value>,
    /// The `note` field of every `POST /echo/form` body.
    pub form_notes: Vec<String>,
    /// The raw `X-Note` header of every `GET /echo/header`.
    pub header_notes: Vec<Vec<u8>>,
    /// Whether any request carried an `X-Injected` header (a header split by CR/LF).
    pub injected_header_seen: bool,
    pub huge_served: u64,
    pub not_json_served: u64,
}

#[derive(Debug)]
struct Service {
    cfg: HostileValuesConfig,
    state: Mutex<HostileValuesState>,
}

#[derive(Debug, Clone)]
pub struct HostileValuesHandle(Arc<Service>);

impl HostileValuesHandle {
    pub fn state(&self) -> HostileValuesState {
        lock(&self.0.state).clone()
    }
}

pub fn router(cfg: HostileValuesConfig) -> (Router, HostileValuesHandle) {
    let service = Arc::new(Service { cfg, state: Mutex::new(HostileValuesState::default()) });
    let router = Router::new()
        .route("/items", post(create_item))
        .route("/items/{id}", get(get_item))
        .route("/admin", any(admin))
        .route("/admin/{*rest}", any(admin))
        .route("/echo/json", post(echo_json))
        .route("/echo/form", post(echo_form))
        .route("/echo/header", get(echo_header))
        .route("/huge", get(huge))
        .route("/not-json", get(not_json))
        .layer(middleware::from_fn_with_state(service.clone(), record))
        .with_state(service.clone());
    (router, HostileValuesHandle(service))
}

pub async fn spawn(cfg: HostileValuesConfig) -> io::Result<RunningFake<HostileValuesHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

async fn record(State(service): State<Arc<Service>>, req: Request, next: Next) -> Response {
    {
        let mut state = lock(&service.state);
        let raw = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
        state.raw_paths.push(raw);
        state.injected_header_seen |= req.headers().contains_key("x-injected");
    }
    next.run(req).await
}

async fn create_item(State(service): State<Arc<Service>>) -> Response {
    let body = json!({ "id": service.cfg.id, "note": service.cfg.note, "kind": "widget" });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn get_item(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    lock(&service.state).item_lookups.push(id.clone());
    if id == service.cfg.id {
        (StatusCode::OK, axum::Json(json!({ "id": id, "kind": "widget" }))).into_response()
    } else {
        (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "no such item" }))).into_response()
    }
}

async fn admin(State(service): State<Arc<Service>>) -> Response {
    lock(&service.state).admin_hits += 1;
    (StatusCode::OK, axum::Json(json!({ "admin": true, "users": 1024 }))).into_response()
}

async fn echo_json(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "malformed JSON" }))).into_response();
    };
    let note = parsed.pointer("/note").cloned().unwrap_or(Value::Null);
    lock(&service.state).json_notes.push(note.clone());
    (StatusCode::OK, axum::Json(json!({ "received": note }))).into_response()
}

async fn echo_form(
    State(service): State<Arc<Service>>,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": "malformed form" }))).into_response();
    };
    let note = fields.get("note").cloned().unwrap_or_default();
    lock(&service.state).form_notes.push(note.clone());
    (StatusCode::OK, axum::Json(json!({ "received": note }))).into_response()
}

async fn echo_header(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let note = headers.get("x-note").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&note).into_owned();
    lock(&service.state).header_notes.push(note);
    (StatusCode::OK, axum::Json(json!({ "received": text }))).into_response()
}

/// `{"id":"big","padding":"xxx..."}`, exactly [`HUGE_BODY_BYTES`] long.
fn huge_body() -> Vec<u8> {
    let head = br#"{"id":"big","padding":""#;
    let tail = br#""}"#;
    let mut body = Vec::with_capacity(HUGE_BODY_BYTES);
    body.extend_from_slice(head);
    body.resize(HUGE_BODY_BYTES - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

async fn huge(State(service): State<Arc<Service>>) -> Response {
    lock(&service.state).huge_served += 1;
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], huge_body()).into_response()
}

async fn not_json(State(service): State<Arc<Service>>) -> Response {
    lock(&service.state).not_json_served += 1;
    let page = "<!doctype html><html><body><h1>Down for maintenance</h1></body></html>";
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{form_encode, send, test_client};

    #[tokio::test]
    async fn hostile_values_are_handed_out_and_what_comes_back_is_recorded_raw() {
        let cfg = HostileValuesConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, base) = (test_client(), fake.base_url().to_owned());

        let (status, item) = send(http.post(format!("{base}/items"))).await;
        assert_eq!(
            (status, item["id"].as_str(), item["note"].as_str()),
            (201, Some("../admin"), Some(cfg.note.as_str()))
        );

        // One encoded segment reaches the item; the raw path is what came on the wire.
        let (status, found) = send(http.get(format!("{base}/items/..%2Fadmin"))).await;
        assert_eq!((status, found["id"].as_str()), (200, Some("../admin")));
        // A client that pastes the id raw is normalized to /admin by the URL parser: the trap.
        assert_eq!(send(http.get(format!("{base}/items/../admin"))).await.0, 200);

        let json_body = json!({ "note": cfg.note }).to_string();
        let req = http.post(format!("{base}/echo/json")).header("content-type", "application/json").body(json_body);
        assert_eq!(send(req).await.0, 200);
        let naive = format!("{{\"note\": \"{}\"}}", cfg.note);
        assert_eq!(send(http.post(format!("{base}/echo/json")).body(naive)).await.0, 400, "pasted raw, it is not JSON");
        let form = form_encode(&[("note", &cfg.note)]);
        let req = http.post(format!("{base}/echo/form")).header("content-type", "application/x-www-form-urlencoded");
        assert_eq!(send(req.body(form)).await.0, 200);
        assert_eq!(send(http.get(format!("{base}/echo/header")).header("X-Note", "plain")).await.0, 200);

        let resp = http.get(format!("{base}/huge")).send().await.unwrap();
        let huge = resp.bytes().await.unwrap();
        assert_eq!(huge.len(), HUGE_BODY_BYTES);
        assert_eq!(serde_json::from_slice::<Value>(&huge).unwrap()["id"], "big", "valid JSON, just too big");
        let resp = http.get(format!("{base}/not-json")).send().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());

        let state = fake.handle().state();
        assert_eq!(state.admin_hits, 1, "{state:?}");
        assert_eq!(&state.raw_paths[1..3], ["/items/..%2Fadmin", "/admin"]);
        assert_eq!(state.item_lookups, ["../admin"]);
        assert_eq!(state.json_notes, [json!(cfg.note)]);
        assert_eq!(state.form_notes, std::slice::from_ref(&cfg.note));
        assert_eq!(state.header_notes, [b"plain".to_vec()]);
        assert!(!state.injected_header_seen);
        assert_eq!((state.huge_served, state.not_json_served), (1, 1));
    }
}

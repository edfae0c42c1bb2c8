//! An events API that authenticates every request by an HMAC of it, the way Stripe and Slack
//! sign their webhooks (and many internal APIs their callers):
//!
//! - every request carries `X-Timestamp: <unix seconds>` and
//!   `X-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<exact body bytes>")>`; a timestamp more
//!   than [`TOLERANCE_SECS`] from the server's clock is 400 (a replay), a signature that does not
//!   verify is 401, compared in constant time;
//! - `POST /v1/events` (JSON) -> 201 `{"id":"evt_N","status":"accepted",...}`;
//! - `GET /v1/events/{id}` -> 200 the event, with an `X-Request-Id` header; 404 when unknown;
//! - `DELETE /v1/events/{id}` -> 204.
//!
//! Fault: [`EventsFault::Malformed`] answers the read with an event that breaks its own
//! contract (wrong types, a missing field, an item without its sku), for assertions to catch.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::{RunningFake, lock, serve};

/// How far a request's timestamp may be from the server's clock, as Stripe's default.
pub const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    pub signing_key: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { signing_key: "whsec_synthetic_Qm7v2L9xK4pT8rWn".to_owned() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFault {
    /// The read answers an event that breaks its contract.
    Malformed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsState {
    /// Requests whose signature verified.
    pub verified: u64,
    /// Why each refused request was refused.
    pub refused: Vec<String>,
    pub created: u64,
    pub deleted: u64,
    /// Events still there.
    pub live: usize,
}

#[derive(Debug, Default)]
struct Inner {
    fault: Option<EventsFault>,
    state: EventsState,
    events: BTreeMap<String, Value>,
}

#[derive(Debug)]
struct Service {
    key: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct EventsHandle(Arc<Service>);

impl EventsHandle {
    pub fn set_fault(&self, fault: Option<EventsFault>) {
        lock(&self.0.inner).fault = fault;
    }

    pub fn state(&self) -> EventsState {
        let inner = lock(&self.0.inner);
        EventsState { live: inner.events.len(), ..inner.state.clone() }
    }
}

pub fn router(cfg: EventsConfig) -> (Router, EventsHandle) {
    let service = Arc::new(Service { key: cfg.signing_key, inner: Mutex::new(Inner::default()) });
    let router = Router::new()
        .route("/v1/events", post(create))
        .route("/v1/events/{id}", get(read).delete(delete))
        .with_state(service.clone());
    (router, EventsHandle(service))
}

pub async fn spawn(cfg: EventsConfig) -> io::Result<RunningFake<EventsHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

/// `v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `key`: what a client sends.
pub fn signature(key: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn refuse(inner: &mut Inner, status: StatusCode, why: &str) -> Response {
    inner.state.refused.push(why.to_owned());
    (status, axum::Json(json!({ "error": why }))).into_response()
}

/// Verifies the request's signature; `Err` is the status and reason to refuse it with.
fn verify(service: &Service, headers: &HeaderMap, body: &[u8]) -> Result<(), (StatusCode, &'static str)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(timestamp) = header("x-timestamp").and_then(|t| t.parse::<u64>().ok()) else {
        return Err((StatusCode::BAD_REQUEST, "missing or malformed X-Timestamp"));
    };
    if now().abs_diff(timestamp) > TOLERANCE_SECS {
        return Err((StatusCode::BAD_REQUEST, "timestamp outside the tolerance window"));
    }
    let sent = header("x-signature").and_then(|s| s.strip_prefix("v1=").and_then(|hex| hex::decode(hex).ok()));
    let Some(sent) = sent else {
        return Err((StatusCode::UNAUTHORIZED, "missing or malformed X-Signature"));
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(service.key.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    // Constant time, as a real server compares: no timing tells how much of a guess was right.
    mac.verify_slice(&sent).map_err(|_| (StatusCode::UNAUTHORIZED, "signature mismatch"))
}

/// Verifies the request, counting it; `Some` is the answer to send instead.
fn admit(service: &Service, inner: &mut Inner, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    match verify(service, headers, body) {
        Ok(()) => {
            inner.state.verified += 1;
            None
        }
        Err((status, why)) => Some(refuse(inner, status, why)),
    }
}

async fn create(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&service.inner);
    if let Some(refused) = admit(&service, &mut inner, &headers, &body) {
        return refused;
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&mut inner, StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    inner.state.created += 1;
    let id = format!("evt_{}", inner.state.created);
    let event = json!({
        "id": id,
        "status": "accepted",
        "type": fields.get("type").cloned().unwrap_or(Value::Null),
        "amount": fields.get("amount").cloned().unwrap_or(json!(0)),
        "amount_text": format!("{:.2}", fields.get("amount").and_then(Value::as_f64).unwrap_or(0.0) / 100.0),
        "items": [
            { "sku": "kettle", "qty": 2, "price": 25.0 },
            { "sku": "mug", "qty": 1, "price": 3 },
        ],
    });
    inner.events.insert(id, event.clone());
    (StatusCode::CREATED, axum::Json(event)).into_response()
}

async fn read(State(service): State<Arc<Service>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if let Some(refused) = admit(&service, &mut inner, &headers, b"") {
        return refused;
    }
    let Some(event) = inner.events.get(&id).cloned() else {
        return refuse(&mut inner, StatusCode::NOT_FOUND, "no such event");
    };
    let event = match inner.fault {
        None => event,
        Some(EventsFault::Malformed) => json!({
            "id": format!("event-{id}"),
            "status": "accepted",
            "amount": "twelve",
            "amount_text": "9.99",
            "items": [{ "qty": 2, "price": 25.0 }, { "sku": "mug", "qty": 1, "price": 7 }],
        }),
    };
    ([("x-request-id", format!("req_{id}"))], axum::Json(event)).into_response()
}

async fn delete(State(service): State<Arc<Service>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if let Some(refused) = admit(&service, &mut inner, &headers, b"") {
        return refused;
    }
    match inner.events.remove(&id) {
        Some(_) => {
            inner.state.deleted += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        None => refuse(&mut inner, StatusCode::NOT_FOUND, "no such event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    #[tokio::test]
    async fn only_a_fresh_request_signed_with_the_key_is_served() {
        let cfg = EventsConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, url) = (test_client(), format!("{}/v1/events", fake.base_url()));
        let body = br#"{"type":"t","amount":1250}"#.to_vec();
        let signed = |timestamp: u64, key: &str| {
            http.post(&url)
                .header("X-Timestamp", timestamp.to_string())
                .header("X-Signature", signature(key, timestamp, &body))
                .body(body.clone())
        };
        let (status, event) = send(signed(now(), &cfg.signing_key)).await;
        assert_eq!((status, event["id"].as_str(), event["amount_text"].as_str()), (201, Some("evt_1"), Some("12.50")));
        assert_eq!(send(signed(now(), "whsec_wrong")).await.0, 401);
        assert_eq!(send(signed(now() - TOLERANCE_SECS - 5, &cfg.signing_key)).await.0, 400, "a replay");
        assert_eq!(send(http.post(&url).body(body.clone())).await.0, 400);
        let state = fake.handle().state();
        assert_eq!((state.verified, state.created, state.live), (1, 1, 1));
        assert_eq!(
            state.refused,
            ["signature mismatch", "timestamp outside the tolerance window", "missing or malformed X-Timestamp"]
        );
    }
}

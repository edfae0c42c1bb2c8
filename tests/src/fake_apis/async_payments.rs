//! A payments API whose payments settle asynchronously, as bank debits and wallets do: Stripe
//! documents its ACH and SEPA debits as `pending` (a PaymentIntent `processing`) for days before
//! `succeeded`, and "Accept a payment" tells clients to poll or wait for the webhook rather than
//! read the create's answer as final. Here settling is counted in reads, not time, so a test is
//! exact about how many polls a journey makes.
//!
//! - `POST /v1/payments` with `Authorization: Bearer <key>`, JSON `{"amount", "currency",
//!   "description"}` -> 201 `{"id": "pay_...", "status": "pending", "amount", "amount_received": 0}`.
//!   An `Idempotency-Key` seen before answers the first payment again (no second charge).
//! - `GET /v1/payments/<id>` -> the payment; the read numbered [`AsyncPaymentsConfig::settle_on_read`]
//!   and later ones find it `succeeded` with `amount_received` = `amount` (never, when `None`).
//! - `POST /v1/payments/<id>/refund` -> 201 `{"id": "re_...", "payment": <id>, "status": ...}`:
//!   `succeeded` for a settled payment, `canceled` for a pending one (the debit is stopped before
//!   it settles); either way the payment is no longer live. 404 for an unknown id.
//! - Without the key -> 401 `{"error": {"type": "authentication_error"}}`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{RunningFake, bearer_token, lock, random_id, serve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncPaymentsConfig {
    pub api_key: String,
    /// The read (1-based) on which a payment is first seen `succeeded`; `None`: it stays pending.
    pub settle_on_read: Option<u64>,
}

impl Default for AsyncPaymentsConfig {
    fn default() -> Self {
        Self { api_key: "pk_async_test_Lq83nVb".to_owned(), settle_on_read: Some(3) }
    }
}

/// What the API saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsyncPaymentsState {
    pub created: u64,
    pub idempotent_replays: u64,
    /// `GET /v1/payments/<id>` answered, over all payments.
    pub reads: u64,
    /// Refunds of a settled payment / cancellations of a pending one.
    pub refunded: u64,
    pub canceled: u64,
    /// Payments neither refunded nor canceled: money left live.
    pub live: u64,
    pub unauthorized: u64,
}

#[derive(Debug, Clone)]
struct Payment {
    id: String,
    amount: i64,
    currency: String,
    reads: u64,
    status: &'static str,
    closed: bool,
}

impl Payment {
    fn json(&self) -> Value {
        let settled = self.status == "succeeded";
        json!({
            "id": self.id, "object": "payment", "status": self.status, "amount": self.amount,
            "currency": self.currency, "amount_received": if settled { self.amount } else { 0 },
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    payments: BTreeMap<String, Payment>,
    by_idempotency_key: BTreeMap<String, String>,
    state: AsyncPaymentsState,
}

#[derive(Debug)]
struct Service {
    cfg: AsyncPaymentsConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct AsyncPaymentsHandle(Arc<Service>);

impl AsyncPaymentsHandle {
    pub fn state(&self) -> AsyncPaymentsState {
        let inner = lock(&self.0.inner);
        let live = inner.payments.values().filter(|p| !p.closed).count() as u64;
        AsyncPaymentsState { live, ..inner.state.clone() }
    }
}

pub fn router(cfg: AsyncPaymentsConfig) -> (Router, AsyncPaymentsHandle) {
    let service = Arc::new(Service { cfg, inner: Mutex::new(Inner::default()) });
    let router = Router::new()
        .route("/v1/payments", post(create))
        .route("/v1/payments/{id}", get(retrieve))
        .route("/v1/payments/{id}/refund", post(refund))
        .with_state(service.clone());
    (router, AsyncPaymentsHandle(service))
}

pub async fn spawn(cfg: AsyncPaymentsConfig) -> io::Result<RunningFake<AsyncPaymentsHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "type": kind, "message": message } }))).into_response()
}

/// The 401 when the request does not carry the key.
fn unauthorized(service: &Service, headers: &HeaderMap) -> Option<Response> {
    if bearer_token(headers).as_deref() == Some(service.cfg.api_key.as_str()) {
        return None;
    }
    lock(&service.inner).state.unauthorized += 1;
    Some(error(StatusCode::UNAUTHORIZED, "authentication_error", "Invalid API key provided"))
}

async fn create(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unauthorized(&service, &headers) {
        return refused;
    }
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(amount), Some(currency)) = (params["amount"].as_i64(), params["currency"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "amount (integer) and currency are required");
    };
    let mut inner = lock(&service.inner);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(id) = key.as_ref().and_then(|k| inner.by_idempotency_key.get(k)).cloned()
        && let Some(payment) = inner.payments.get(&id).map(Payment::json)
    {
        inner.state.idempotent_replays += 1;
        return (StatusCode::CREATED, axum::Json(payment)).into_response();
    }
    let payment = Payment {
        id: random_id("pay_"),
        amount,
        currency: currency.to_owned(),
        reads: 0,
        status: "pending",
        closed: false,
    };
    if let Some(key) = key {
        inner.by_idempotency_key.insert(key, payment.id.clone());
    }
    inner.state.created += 1;
    let answer = payment.json();
    inner.payments.insert(payment.id.clone(), payment);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn retrieve(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = unauthorized(&service, &headers) {
        return refused;
    }
    let mut inner = lock(&service.inner);
    inner.state.reads += 1;
    let Some(payment) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "invalid_request_error", "No such payment");
    };
    payment.reads += 1;
    if payment.status == "pending" && service.cfg.settle_on_read.is_some_and(|n| payment.reads >= n) {
        payment.status = "succeeded";
    }
    (StatusCode::OK, axum::Json(payment.json())).into_response()
}

async fn refund(State(service): State<Arc<Service>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = unauthorized(&service, &headers) {
        return refused;
    }
    let mut inner = lock(&service.inner);
    let Some(payment) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "invalid_request_error", "No such payment");
    };
    // An idempotent retry of a refund answers the same refund.
    let status = if payment.status == "succeeded" { "succeeded" } else { "canceled" };
    let first = !payment.closed;
    payment.closed = true;
    if payment.status == "pending" {
        payment.status = "canceled";
    }
    if first {
        match status {
            "succeeded" => inner.state.refunded += 1,
            _ => inner.state.canceled += 1,
        }
    }
    let body = json!({ "id": format!("re_{}", id.trim_start_matches("pay_")), "object": "refund", "payment": id, "status": status });
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    #[tokio::test]
    async fn a_payment_is_pending_until_its_third_read_and_a_refund_closes_it() {
        let cfg = AsyncPaymentsConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, base) = (test_client(), fake.base_url().to_owned());
        let create = || {
            http.post(format!("{base}/v1/payments"))
                .bearer_auth(&cfg.api_key)
                .header("idempotency-key", "k1")
                .body(r#"{"amount": 100, "currency": "usd"}"#)
        };
        let (status, created) = send(create()).await;
        assert_eq!(
            (status, created["status"].as_str(), created["amount_received"].as_i64()),
            (201, Some("pending"), Some(0))
        );
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(send(create()).await.1["id"], created["id"], "the same key, the same payment");

        let read = || send(http.get(format!("{base}/v1/payments/{id}")).bearer_auth(&cfg.api_key));
        assert_eq!(read().await.1["status"], "pending");
        assert_eq!(read().await.1["status"], "pending");
        let settled = read().await.1;
        assert_eq!((settled["status"].as_str(), settled["amount_received"].as_i64()), (Some("succeeded"), Some(100)));

        let (status, refund) =
            send(http.post(format!("{base}/v1/payments/{id}/refund")).bearer_auth(&cfg.api_key)).await;
        assert_eq!((status, refund["status"].as_str()), (201, Some("succeeded")));
        let state = fake.handle().state();
        assert_eq!((state.created, state.idempotent_replays, state.reads, state.refunded, state.live), (1, 1, 3, 1, 0));
        assert_eq!(send(http.get(format!("{base}/v1/payments/{id}"))).await.0, 401);
    }
}

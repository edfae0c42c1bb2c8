//! Stripe-style payments in test mode, written to the public shape of Stripe's API: form-encoded
//! request bodies, the secret key as a Bearer token or as the HTTP basic user name with an empty
//! password, `Idempotency-Key` honoured on every POST (same key, same original answer, no second
//! charge), errors as `{"error":{"type","code","message"}}`, and refunds as a separate resource
//! (`POST /v1/refunds` with `payment_intent=pi_...`).
//!
//! Routes: `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}`, `POST /v1/refunds`.
//! Test payment methods as in Stripe's docs: `pm_card_visa` succeeds, `pm_card_chargeDeclined`
//! is declined.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{RunningFake, basic_credentials, bearer_token, lock, random_id, serve};

/// Static configuration of one fake Stripe account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// The test-mode secret key the fake accepts.
    pub secret_key: String,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self { secret_key: "sk_test_51SyntheticMonitorOnlyK3yZq9Wx".to_owned() }
    }
}

/// A fault to inject; several can be active at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StripeFault {
    /// Every confirmation is declined with a 402 `card_error`; nothing is charged.
    Decline,
    /// Creating a payment intent answers 500 `api_error`; nothing is charged.
    CreateInternal,
    /// Retrieving a payment intent answers 500 although it exists.
    RetrieveInternal,
    /// Refunds answer 500; the payment stays live.
    RefundBroken,
    /// The next create charges the card and records its answer under its idempotency key, but
    /// the client is told 500, as if the response were lost on the way: only a retry with the
    /// same `Idempotency-Key` gets the payment back instead of charging twice. Fires once.
    LoseFirstCreateResponse,
}

/// What the fake saw and what it holds, for tests to assert on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StripeState {
    /// Succeeded and not refunded: money a check would have left on the table.
    pub live: u64,
    pub refunded: u64,
    /// Confirmations that were declined (nothing charged).
    pub declined: u64,
    /// Payment intents that charged the card, refunded or not.
    pub charges: u64,
    /// POSTs answered from the idempotency store instead of being executed again.
    pub idempotent_replays: u64,
    /// POSTs that came without an `Idempotency-Key`.
    pub posts_without_idempotency_key: u64,
    /// Requests authenticated with the key as a Bearer token, and as the basic user name.
    pub auth_bearer: u64,
    pub auth_basic: u64,
    /// Requests refused with 401.
    pub auth_rejected: u64,
}

#[derive(Debug, Clone)]
struct PaymentIntent {
    id: String,
    amount: i64,
    currency: String,
    payment_method: Option<String>,
    status: &'static str,
    amount_refunded: i64,
    created: u64,
    latest_charge: Option<String>,
}

impl PaymentIntent {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_received": if self.status == "succeeded" { self.amount } else { 0 },
            "amount_refunded": self.amount_refunded,
            "capture_method": "automatic",
            "client_secret": format!("{}_secret_{}", self.id, &self.id[3..11]),
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": {},
            "payment_method": self.payment_method,
            "payment_method_types": ["card"],
            "status": self.status,
        })
    }

    fn live(&self) -> bool {
        self.status == "succeeded" && self.amount_refunded < self.amount
    }
}

/// A stored answer to a POST, replayed for the same idempotency key.
#[derive(Debug, Clone)]
struct Stored {
    params: BTreeMap<String, String>,
    status: StatusCode,
    body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    intents: HashMap<String, PaymentIntent>,
    /// (endpoint, Idempotency-Key) -> the original answer.
    idempotency: HashMap<(&'static str, String), Stored>,
    faults: HashSet<StripeFault>,
    state: StripeState,
}

#[derive(Debug)]
struct Stripe {
    secret_key: String,
    inner: Mutex<Inner>,
}

/// In-process control of a running fake Stripe.
#[derive(Debug, Clone)]
pub struct StripeHandle(Arc<Stripe>);

impl StripeHandle {
    pub fn set_fault(&self, fault: StripeFault) {
        lock(&self.0.inner).faults.insert(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.0.inner).faults.clear();
    }

    pub fn state(&self) -> StripeState {
        let inner = lock(&self.0.inner);
        StripeState {
            live: inner.intents.values().filter(|p| p.live()).count() as u64,
            refunded: inner.intents.values().filter(|p| p.amount_refunded > 0).count() as u64,
            ..inner.state
        }
    }
}

pub fn router(cfg: StripeConfig) -> (Router, StripeHandle) {
    let stripe = Arc::new(Stripe { secret_key: cfg.secret_key, inner: Mutex::new(Inner::default()) });
    let router = Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/refunds", post(create_refund))
        .fallback(|| async {
            stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", None, "Unrecognized request URL.")
        })
        .with_state(stripe.clone());
    (router, StripeHandle(stripe))
}

/// Serves a fake Stripe on `127.0.0.1` with an OS-chosen port.
pub async fn spawn(cfg: StripeConfig) -> io::Result<RunningFake<StripeHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn api_error() -> Response {
    stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "An unknown error occurred.")
}

fn parameter_error(code: &str, param: &str, message: String) -> Response {
    let body =
        json!({ "error": { "type": "invalid_request_error", "code": code, "param": param, "message": message } });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Checks the secret key, given as a Bearer token or as the basic user name (empty password),
/// and counts which way it came. `Some` is the 401 to answer.
fn reject_unauthenticated(stripe: &Stripe, headers: &HeaderMap) -> Option<Response> {
    let mut inner = lock(&stripe.inner);
    if bearer_token(headers).is_some_and(|key| key == stripe.secret_key) {
        inner.state.auth_bearer += 1;
        return None;
    }
    if basic_credentials(headers).is_some_and(|(user, _)| user == stripe.secret_key) {
        inner.state.auth_basic += 1;
        return None;
    }
    inner.state.auth_rejected += 1;
    let message = if headers.contains_key("authorization") {
        "Invalid API Key provided."
    } else {
        "You did not provide an API key. You need to provide your API key in the Authorization header."
    };
    Some(stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, message))
}

/// The `Idempotency-Key` of a POST, counting those that came without one.
fn idempotency_key(inner: &mut Inner, headers: &HeaderMap) -> Option<String> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    if key.is_none() {
        inner.state.posts_without_idempotency_key += 1;
    }
    key.map(str::to_owned)
}

/// The stored answer for `key` on `endpoint`: the original one for the same parameters, a 400
/// `idempotency_error` for different ones (as Stripe does), `None` when the key is new.
fn replay(inner: &mut Inner, endpoint: &'static str, key: &str, params: &BTreeMap<String, String>) -> Option<Response> {
    let stored = inner.idempotency.get(&(endpoint, key.to_owned()))?.clone();
    if &stored.params != params {
        return Some(stripe_error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            None,
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        ));
    }
    inner.state.idempotent_replays += 1;
    let mut response = (stored.status, axum::Json(stored.body)).into_response();
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Some(response)
}

fn remember(inner: &mut Inner, endpoint: &'static str, key: Option<String>, stored: Stored) -> Response {
    let response = (stored.status, axum::Json(stored.body.clone())).into_response();
    if let Some(key) = key {
        inner.idempotency.insert((endpoint, key), stored);
    }
    response
}

type Params = Result<Form<BTreeMap<String, String>>, FormRejection>;

fn params(form: Params) -> Result<BTreeMap<String, String>, Box<Response>> {
    form.map(|Form(p)| p).map_err(|e| {
        Box::new(stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            &format!("Invalid request body: {e}"),
        ))
    })
}

async fn create_intent(State(stripe): State<Arc<Stripe>>, headers: HeaderMap, form: Params) -> Response {
    if let Some(unauthorized) = reject_unauthenticated(&stripe, &headers) {
        return unauthorized;
    }
    let params = match params(form) {
        Ok(p) => p,
        Err(bad) => return *bad,
    };
    // One lock scope from the idempotency lookup to the insert, so concurrent retries with the
    // same key cannot both charge.
    let mut inner = lock(&stripe.inner);
    let key = idempotency_key(&mut inner, &headers);
    if let Some(replayed) = key.as_deref().and_then(|k| replay(&mut inner, "create", k, &params)) {
        return replayed;
    }
    if inner.faults.contains(&StripeFault::CreateInternal) {
        return api_error();
    }
    let amount = match params.get("amount").map(|a| a.parse::<i64>()) {
        Some(Ok(a)) if a >= 50 => a,
        Some(Ok(_)) => {
            return parameter_error("amount_too_small", "amount", "Amount must be at least 50 cents.".into());
        }
        Some(Err(_)) => {
            return parameter_error("parameter_invalid_integer", "amount", "Invalid integer: amount".into());
        }
        None => return parameter_error("parameter_missing", "amount", "Missing required param: amount.".into()),
    };
    let currency = match params.get("currency") {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_lowercase()) => c.clone(),
        Some(c) => return parameter_error("parameter_invalid_string", "currency", format!("Invalid currency: {c}")),
        None => return parameter_error("parameter_missing", "currency", "Missing required param: currency.".into()),
    };
    let payment_method = params.get("payment_method").cloned();
    let confirm = params.get("confirm").is_some_and(|c| c == "true");
    if confirm && payment_method.is_none() {
        return parameter_error(
            "parameter_missing",
            "payment_method",
            "You cannot confirm this PaymentIntent because it's missing a payment method.".into(),
        );
    }
    let mut intent = PaymentIntent {
        id: random_id("pi_"),
        amount,
        currency,
        payment_method: payment_method.clone(),
        status: "requires_confirmation",
        amount_refunded: 0,
        created: now(),
        latest_charge: None,
    };
    let declined =
        inner.faults.contains(&StripeFault::Decline) || payment_method.as_deref() == Some("pm_card_chargeDeclined");
    if confirm && declined {
        inner.state.declined += 1;
        intent.status = "requires_payment_method";
        let body = json!({ "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "payment_intent": intent.to_json(),
        } });
        inner.intents.insert(intent.id.clone(), intent);
        return remember(&mut inner, "create", key, Stored { params, status: StatusCode::PAYMENT_REQUIRED, body });
    }
    if confirm {
        intent.status = "succeeded";
        intent.latest_charge = Some(random_id("ch_"));
        inner.state.charges += 1;
    }
    let body = intent.to_json();
    inner.intents.insert(intent.id.clone(), intent);
    let answer = remember(&mut inner, "create", key, Stored { params, status: StatusCode::OK, body });
    if inner.faults.remove(&StripeFault::LoseFirstCreateResponse) {
        return api_error();
    }
    answer
}

async fn retrieve_intent(State(stripe): State<Arc<Stripe>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(unauthorized) = reject_unauthenticated(&stripe, &headers) {
        return unauthorized;
    }
    let inner = lock(&stripe.inner);
    if inner.faults.contains(&StripeFault::RetrieveInternal) {
        return api_error();
    }
    match inner.intents.get(&id) {
        Some(intent) => (StatusCode::OK, axum::Json(intent.to_json())).into_response(),
        None => {
            let body = json!({ "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "intent",
                "message": format!("No such payment_intent: '{id}'"),
            } });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

async fn create_refund(State(stripe): State<Arc<Stripe>>, headers: HeaderMap, form: Params) -> Response {
    if let Some(unauthorized) = reject_unauthenticated(&stripe, &headers) {
        return unauthorized;
    }
    let params = match params(form) {
        Ok(p) => p,
        Err(bad) => return *bad,
    };
    let mut inner = lock(&stripe.inner);
    let key = idempotency_key(&mut inner, &headers);
    if let Some(replayed) = key.as_deref().and_then(|k| replay(&mut inner, "refund", k, &params)) {
        return replayed;
    }
    if inner.faults.contains(&StripeFault::RefundBroken) {
        return api_error();
    }
    let Some(id) = params.get("payment_intent").or_else(|| params.get("charge")).cloned() else {
        return parameter_error(
            "parameter_missing",
            "payment_intent",
            "One of the following params should be provided for this request: payment_intent or charge.".into(),
        );
    };
    let Some(intent) = inner.intents.values_mut().find(|p| p.id == id || p.latest_charge.as_deref() == Some(&id))
    else {
        return parameter_error("resource_missing", "payment_intent", format!("No such payment_intent: '{id}'"));
    };
    if intent.status != "succeeded" {
        return parameter_error(
            "payment_intent_unexpected_state",
            "payment_intent",
            format!("This PaymentIntent ({id}) does not have a successful charge to refund."),
        );
    }
    if intent.amount_refunded >= intent.amount {
        let message = format!("Charge {} has already been refunded.", intent.latest_charge.clone().unwrap_or_default());
        return parameter_error("charge_already_refunded", "payment_intent", message);
    }
    intent.amount_refunded = intent.amount;
    let body = json!({
        "id": random_id("re_"),
        "object": "refund",
        "amount": intent.amount,
        "charge": intent.latest_charge,
        "created": now(),
        "currency": intent.currency,
        "payment_intent": intent.id,
        "status": "succeeded",
    });
    remember(&mut inner, "refund", key, Stored { params, status: StatusCode::OK, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{form_encode, send, test_client};

    const CREATE: &[(&str, &str)] =
        &[("amount", "100"), ("currency", "usd"), ("payment_method", "pm_card_visa"), ("confirm", "true")];

    struct Client {
        base: String,
        http: reqwest::Client,
        key: String,
    }

    impl Client {
        fn post(&self, path: &str, form: &[(&str, &str)], idempotency_key: Option<&str>) -> reqwest::RequestBuilder {
            let mut req = self
                .http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(form));
            if let Some(k) = idempotency_key {
                req = req.header("Idempotency-Key", k);
            }
            req
        }

        async fn create(&self, key: Option<&str>) -> (u16, Value) {
            send(self.post("/v1/payment_intents", CREATE, key).bearer_auth(&self.key)).await
        }

        async fn retrieve(&self, id: &str) -> (u16, Value) {
            send(self.http.get(format!("{}/v1/payment_intents/{id}", self.base)).bearer_auth(&self.key)).await
        }

        async fn refund(&self, id: &str, key: Option<&str>) -> (u16, Value) {
            // Basic auth with the key as user name and an empty password, like `curl -u sk_test_...:`.
            let req = self.post("/v1/refunds", &[("payment_intent", id)], key).basic_auth(&self.key, Some(""));
            send(req).await
        }
    }

    async fn stripe() -> (RunningFake<StripeHandle>, Client) {
        let cfg = StripeConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap_or_else(|e| panic!("spawn: {e}"));
        let client = Client { base: fake.base_url().to_owned(), http: test_client(), key: cfg.secret_key };
        (fake, client)
    }

    #[tokio::test]
    async fn create_retrieve_refund_with_bearer_and_basic_auth() {
        let (fake, c) = stripe().await;
        let (status, created) = c.create(Some("k1")).await;
        assert_eq!(status, 200, "{created}");
        assert_eq!(
            (created["object"].as_str(), created["status"].as_str()),
            (Some("payment_intent"), Some("succeeded"))
        );
        assert_eq!((created["amount"].as_i64(), created["currency"].as_str()), (Some(100), Some("usd")));
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("pi_"), "{id}");
        assert_eq!(fake.handle().state().live, 1);

        assert_eq!(c.retrieve(&id).await, (200, created.clone()));
        let (status, missing) = c.retrieve("pi_missing").await;
        assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("resource_missing")));

        let (status, refund) = c.refund(&id, Some("r1")).await;
        assert_eq!(status, 200, "{refund}");
        assert_eq!((refund["object"].as_str(), refund["payment_intent"].as_str()), (Some("refund"), Some(id.as_str())));
        let (status, again) = c.refund(&id, None).await;
        assert_eq!((status, again["error"]["code"].as_str()), (400, Some("charge_already_refunded")));
        let state = fake.handle().state();
        assert_eq!((state.live, state.refunded, state.charges), (0, 1, 1), "{state:?}");
        assert_eq!((state.auth_bearer, state.auth_basic, state.posts_without_idempotency_key), (3, 2, 1), "{state:?}");
    }

    #[tokio::test]
    async fn same_idempotency_key_replays_the_original_answer_without_a_second_charge() {
        let (fake, c) = stripe().await;
        let (_, first) = c.create(Some("same")).await;
        let resp = c.post("/v1/payment_intents", CREATE, Some("same")).bearer_auth(&c.key).send().await.unwrap();
        assert_eq!(resp.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));
        let replayed: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(replayed, first);
        // Different parameters under the same key are refused, not executed.
        let other = [("amount", "200"), ("currency", "usd")];
        let (status, body) = send(c.post("/v1/payment_intents", &other, Some("same")).bearer_auth(&c.key)).await;
        assert_eq!((status, body["error"]["type"].as_str()), (400, Some("idempotency_error")));
        // A new key is a new payment.
        let (_, second) = c.create(Some("other")).await;
        assert_ne!(second["id"], first["id"]);
        let state = fake.handle().state();
        assert_eq!((state.charges, state.live, state.idempotent_replays), (2, 2, 1), "{state:?}");
    }

    #[tokio::test]
    async fn bad_keys_and_bad_params_are_stripe_shaped_errors() {
        let (fake, c) = stripe().await;
        let wrong = Client { key: "sk_test_wrong".into(), ..c };
        let (status, body) = wrong.create(None).await;
        assert_eq!((status, body["error"]["type"].as_str()), (401, Some("invalid_request_error")));
        let (status, _) = send(wrong.http.get(format!("{}/v1/payment_intents/pi_x", wrong.base))).await;
        assert_eq!(status, 401, "no key at all");
        let c = Client { key: StripeConfig::default().secret_key, ..wrong };
        for (form, code) in [
            (&[("currency", "usd")][..], "parameter_missing"),
            (&[("amount", "ten"), ("currency", "usd")][..], "parameter_invalid_integer"),
            (&[("amount", "100"), ("currency", "USD")][..], "parameter_invalid_string"),
            (&[("amount", "100"), ("currency", "usd"), ("confirm", "true")][..], "parameter_missing"),
        ] {
            let (status, body) = send(c.post("/v1/payment_intents", form, None).bearer_auth(&c.key)).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some(code)), "{form:?}: {body}");
        }
        let (status, body) = c.refund("pi_missing", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("resource_missing")));
        assert_eq!(fake.handle().state().auth_rejected, 2);
        assert_eq!(fake.handle().state().charges, 0);
    }

    #[tokio::test]
    async fn faults_decline_fail_and_break_refunds() {
        let (fake, c) = stripe().await;
        fake.handle().set_fault(StripeFault::Decline);
        let (status, body) = c.create(Some("d1")).await;
        assert_eq!(
            (status, body["error"]["type"].as_str(), body["error"]["code"].as_str()),
            (402, Some("card_error"), Some("card_declined"))
        );
        let declined =
            [("amount", "100"), ("currency", "usd"), ("payment_method", "pm_card_chargeDeclined"), ("confirm", "true")];
        fake.handle().clear_faults();
        assert_eq!(send(c.post("/v1/payment_intents", &declined, None).bearer_auth(&c.key)).await.0, 402);

        fake.handle().set_fault(StripeFault::CreateInternal);
        let (status, body) = c.create(Some("e1")).await;
        assert_eq!((status, body["error"]["type"].as_str()), (500, Some("api_error")));
        fake.handle().clear_faults();
        assert_eq!(c.create(Some("e1")).await.0, 200, "a 500 is not stored under its key");

        fake.handle().set_fault(StripeFault::RetrieveInternal);
        fake.handle().set_fault(StripeFault::RefundBroken);
        let (_, created) = c.create(None).await;
        let id = created["id"].as_str().unwrap();
        assert_eq!(c.retrieve(id).await.0, 500);
        assert_eq!(c.refund(id, Some("r")).await.0, 500);
        let state = fake.handle().state();
        assert_eq!((state.declined, state.charges, state.live, state.refunded), (2, 2, 2, 0), "{state:?}");
    }

    #[tokio::test]
    async fn a_lost_create_response_is_recovered_by_retrying_with_the_same_key() {
        let (fake, c) = stripe().await;
        fake.handle().set_fault(StripeFault::LoseFirstCreateResponse);
        assert_eq!(c.create(Some("lost")).await.0, 500);
        assert_eq!(fake.handle().state().charges, 1, "the card was charged before the answer was lost");
        let (status, recovered) = c.create(Some("lost")).await;
        assert_eq!((status, recovered["status"].as_str()), (200, Some("succeeded")));
        let state = fake.handle().state();
        assert_eq!((state.charges, state.live, state.idempotent_replays), (1, 1, 1), "{state:?}");
    }
}

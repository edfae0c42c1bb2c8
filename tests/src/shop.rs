//! The demo shop: a small in-memory stand-in for the production service the
//! synthetic checks walk (health, login, catalogue, public search, payments
//! with refunds).
//!
//! It exists so that the checks can be exercised end to end without a real
//! service: every failure mode a check is meant to alert on can be switched on
//! at run time through the admin API (`/admin/...`) or the in-process
//! [`ShopHandle`], and `/admin/state` reports what the checks left behind
//! (live payments, synthetic vs. real traffic) so tests can assert that a
//! check cleans up after itself and marks its traffic.
//!
//! Everything lives in memory and is lost when the server stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest delay a `slow:<ms>` fault may ask for; anything longer is almost
/// certainly a typo and would only make a test hang.
const MAX_SLOW_MS: u64 = 600_000;

/// Static configuration of one shop instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopConfig {
    /// Email of the synthetic monitoring account.
    pub email: String,
    /// Initial password of that account (rotatable via `PUT /admin/account`).
    pub password: String,
    /// Header whose presence marks a request as synthetic traffic.
    pub synthetic_header: String,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self {
            email: "synthetic-monitor@example.com".to_owned(),
            password: "correct-horse-battery-staple".to_owned(),
            synthetic_header: "x-synthetic-check".to_owned(),
        }
    }
}

/// A part of the shop that faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Area {
    Health,
    Auth,
    Products,
    Payments,
    Search,
}

impl Area {
    pub const ALL: [Area; 5] = [Area::Health, Area::Auth, Area::Products, Area::Payments, Area::Search];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Health => "health",
            Area::Auth => "auth",
            Area::Products => "products",
            Area::Payments => "payments",
            Area::Search => "search",
        }
    }

    /// The fault spellings this area accepts, for error messages.
    fn accepted(self) -> &'static str {
        match self {
            Area::Health => "down, slow:<ms>",
            Area::Auth => "lock, 500, slow:<ms>",
            Area::Products => "500, empty, flaky:<n>, slow:<ms>",
            Area::Payments => "decline, no-refund, get-500, 500, slow:<ms>",
            Area::Search => "500, empty, slow:<ms>",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Area {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Area::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| FaultError::UnknownArea(s.to_owned()))
    }
}

/// One injectable fault. Which ones are valid depends on the [`Area`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// health: `GET /health` answers 503.
    Down,
    /// any area: requests are answered correctly, after this delay.
    Slow(Duration),
    /// auth: the synthetic account is locked.
    Lock,
    /// auth, products, payments (create), search: 500.
    Internal,
    /// products: an empty catalogue; search: no results.
    Empty,
    /// payments: the card is declined, nothing is recorded.
    Decline,
    /// payments: refunds fail, the payment stays live.
    NoRefund,
    /// payments: reading a payment fails although it exists.
    Get500,
    /// products: 500 for every n-th synthetic run (told apart by `X-Synthetic-Run-Id`), for all
    /// of that run's attempts, so a retry does not hide it: a release that fails some runs.
    Flaky(u32),
}

impl Fault {
    /// Parses the admin API spelling of a fault for `area`.
    pub fn parse(area: Area, spec: &str) -> Result<Fault, FaultError> {
        if let Some(ms) = spec.strip_prefix("slow:") {
            return match ms.parse::<u64>() {
                Ok(ms) if ms <= MAX_SLOW_MS => Ok(Fault::Slow(Duration::from_millis(ms))),
                _ => Err(FaultError::BadDelay(spec.to_owned())),
            };
        }
        if let (Area::Products, Some(every)) = (area, spec.strip_prefix("flaky:")) {
            return match every.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Fault::Flaky(n)),
                _ => Err(FaultError::UnknownFault { area, fault: spec.to_owned() }),
            };
        }
        let fault = match (area, spec) {
            (Area::Health, "down") => Fault::Down,
            (Area::Auth, "lock") => Fault::Lock,
            (Area::Auth | Area::Products | Area::Payments | Area::Search, "500") => Fault::Internal,
            (Area::Products | Area::Search, "empty") => Fault::Empty,
            (Area::Payments, "decline") => Fault::Decline,
            (Area::Payments, "no-refund") => Fault::NoRefund,
            (Area::Payments, "get-500") => Fault::Get500,
            _ => {
                return Err(FaultError::UnknownFault { area, fault: spec.to_owned() });
            }
        };
        Ok(fault)
    }

    fn delay(self) -> Option<Duration> {
        match self {
            Fault::Slow(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Down => f.write_str("down"),
            Fault::Slow(d) => write!(f, "slow:{}", d.as_millis()),
            Fault::Lock => f.write_str("lock"),
            Fault::Internal => f.write_str("500"),
            Fault::Empty => f.write_str("empty"),
            Fault::Decline => f.write_str("decline"),
            Fault::NoRefund => f.write_str("no-refund"),
            Fault::Get500 => f.write_str("get-500"),
            Fault::Flaky(n) => write!(f, "flaky:{n}"),
        }
    }
}

/// Why a fault could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("unknown fault area '{0}' (expected one of: health, auth, products, payments, search)")]
    UnknownArea(String),
    #[error("unknown fault '{fault}' for area '{area}' (expected one of: {})", area.accepted())]
    UnknownFault { area: Area, fault: String },
    #[error("invalid fault '{0}': expected slow:<milliseconds> with at most {MAX_SLOW_MS} ms")]
    BadDelay(String),
}

impl FaultError {
    fn code(&self) -> &'static str {
        match self {
            FaultError::UnknownArea(_) => "unknown_area",
            FaultError::UnknownFault { .. } | FaultError::BadDelay(_) => "invalid_fault",
        }
    }
}

/// Snapshot of the shop as reported by `GET /admin/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopState {
    /// Active faults by area name, in their admin API spelling.
    pub faults: BTreeMap<String, String>,
    pub payments: PaymentCounts,
    pub traffic: TrafficCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCounts {
    /// Created and not refunded: money a check would have left on the table.
    pub live: u64,
    pub refunded: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounts {
    /// Non-admin requests carrying the synthetic marker header.
    pub synthetic: u64,
    /// Non-admin requests without it.
    pub real: u64,
}

#[derive(Debug, Clone)]
struct Payment {
    id: String,
    amount: i64,
    currency: String,
    refunded: bool,
}

impl Payment {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": if self.refunded { "refunded" } else { "succeeded" },
            "amount": self.amount,
            "currency": self.currency,
            "refunded": self.refunded,
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    password: String,
    tokens: HashSet<String>,
    payments: HashMap<String, Payment>,
    /// Idempotency-Key -> payment id.
    idempotency: HashMap<String, String>,
    faults: BTreeMap<Area, Fault>,
    /// Synthetic run ids seen by the products listing, in order, for `flaky:<n>`.
    product_runs: Vec<String>,
}

#[derive(Debug)]
struct Shop {
    email: String,
    synthetic_header: HeaderName,
    inner: Mutex<Inner>,
    synthetic: AtomicU64,
    real: AtomicU64,
}

impl Shop {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No handler panics while holding the lock, and even if one did the
        // data stays consistent, so poisoning is not worth propagating.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fault(&self, area: Area) -> Option<Fault> {
        self.lock().faults.get(&area).copied()
    }

    /// Applies the `slow:<ms>` fault of `area`, if any, and returns the
    /// area's fault for the caller to act on.
    /// The 1-based position of this request's run among the runs the listing has seen.
    fn nth_products_run(&self, headers: &HeaderMap) -> usize {
        let run = headers.get("x-synthetic-run-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut inner = self.lock();
        match inner.product_runs.iter().position(|r| *r == run) {
            Some(index) => index + 1,
            None => {
                inner.product_runs.push(run);
                inner.product_runs.len()
            }
        }
    }

    async fn delay(&self, area: Area) -> Option<Fault> {
        let fault = self.fault(area);
        if let Some(d) = fault.and_then(Fault::delay) {
            tokio::time::sleep(d).await;
        }
        fault
    }
}

/// In-process control of a shop, equivalent to the admin API.
#[derive(Debug, Clone)]
pub struct ShopHandle(Arc<Shop>);

impl ShopHandle {
    /// Sets the fault of `area`, replacing any previous one.
    pub fn set_fault(&self, area: &str, fault: &str) -> Result<Fault, FaultError> {
        let area = Area::from_str(area)?;
        let fault = Fault::parse(area, fault)?;
        self.0.lock().faults.insert(area, fault);
        Ok(fault)
    }

    pub fn clear_fault(&self, area: &str) -> Result<(), FaultError> {
        let area = Area::from_str(area)?;
        self.0.lock().faults.remove(&area);
        Ok(())
    }

    pub fn clear_all(&self) {
        self.0.lock().faults.clear();
    }

    /// Changes the synthetic account's password; tokens already issued stay
    /// valid, as they would in most real services.
    pub fn rotate_password(&self, password: &str) {
        self.0.lock().password = password.to_owned();
    }

    pub fn state(&self) -> ShopState {
        let inner = self.0.lock();
        let refunded = inner.payments.values().filter(|p| p.refunded).count() as u64;
        ShopState {
            faults: inner.faults.iter().map(|(a, f)| (a.as_str().to_owned(), f.to_string())).collect(),
            payments: PaymentCounts { live: inner.payments.len() as u64 - refunded, refunded },
            traffic: TrafficCounts {
                synthetic: self.0.synthetic.load(Ordering::Relaxed),
                real: self.0.real.load(Ordering::Relaxed),
            },
        }
    }
}

/// Builds the shop's router. Fails only if `cfg.synthetic_header` is not a
/// valid HTTP header name.
pub fn router(cfg: ShopConfig) -> io::Result<(Router, ShopHandle)> {
    let synthetic_header = HeaderName::from_bytes(cfg.synthetic_header.as_bytes()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid synthetic header name {:?}: {e}", cfg.synthetic_header),
        )
    })?;
    let shop = Arc::new(Shop {
        email: cfg.email,
        synthetic_header,
        inner: Mutex::new(Inner { password: cfg.password, ..Inner::default() }),
        synthetic: AtomicU64::new(0),
        real: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/api/auth/token", post(issue_token))
        .route("/api/products", get(products))
        .route("/api/search", get(search))
        .route("/api/payments", post(create_payment))
        .route("/api/payments/{id}", get(get_payment))
        .route("/api/payments/{id}/refund", post(refund_payment))
        .route("/admin/faults", delete(admin_clear_all))
        .route("/admin/faults/{area}", put(admin_set_fault).delete(admin_clear_fault))
        .route("/admin/account", put(admin_rotate_password))
        .route("/admin/state", get(admin_state))
        .fallback(not_found)
        // Added after the fallback so unknown paths are counted as traffic too.
        .layer(middleware::from_fn_with_state(shop.clone(), count_traffic))
        .with_state(shop.clone());
    Ok((router, ShopHandle(shop)))
}

/// A shop serving on a local port, like every fake of `fake_apis`; stops when
/// [`RunningFake::stop`] is awaited or when dropped.
pub type RunningShop = crate::fake_apis::RunningFake<ShopHandle>;

impl RunningShop {
    /// An HTTP client for the admin API of this shop.
    pub fn admin(&self) -> Result<ShopAdmin, AdminError> {
        ShopAdmin::new(self.base_url())
    }
}

/// Serves a shop on `127.0.0.1` with an OS-chosen port.
pub async fn spawn(cfg: ShopConfig) -> io::Result<RunningShop> {
    spawn_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), cfg).await
}

/// Serves a shop on `addr` (port 0 picks a free one).
pub async fn spawn_on(addr: SocketAddr, cfg: ShopConfig) -> io::Result<RunningShop> {
    let (router, handle) = router(cfg)?;
    crate::fake_apis::serve_on(addr, router, handle).await
}

// ---------------------------------------------------------------------------
// Handlers

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, code: &str) -> Response {
    reply(status, json!({ "error": code }))
}

fn bad_request(code: &str, message: impl fmt::Display) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({ "error": code, "message": message.to_string() }))
}

fn internal() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal")
}

async fn count_traffic(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/admin" || path.starts_with("/admin/")) {
        let counter = if req.headers().contains_key(&shop.synthetic_header) { &shop.synthetic } else { &shop.real };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    next.run(req).await
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found")
}

/// Whether the request carries a bearer token this shop issued.
fn authorized(shop: &Shop, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .is_some_and(|(_, token)| shop.lock().tokens.contains(token.trim()))
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(json!({ "error": "unauthorized" })))
        .into_response()
}

async fn health(State(shop): State<Arc<Shop>>) -> Response {
    match shop.delay(Area::Health).await {
        Some(Fault::Down) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "down" })),
        _ => reply(StatusCode::OK, json!({ "status": "ok" })),
    }
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

async fn issue_token(State(shop): State<Arc<Shop>>, body: Bytes) -> Response {
    let fault = shop.delay(Area::Auth).await;
    if fault == Some(Fault::Internal) {
        return internal();
    }
    let creds: Credentials = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request("invalid_request", e),
    };
    let mut inner = shop.lock();
    if creds.email == shop.email && fault == Some(Fault::Lock) {
        return error(StatusCode::UNAUTHORIZED, "account_locked");
    }
    if creds.email != shop.email || creds.password != inner.password {
        return error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    inner.tokens.insert(token.clone());
    reply(StatusCode::OK, json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }))
}

async fn products(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let fault = shop.delay(Area::Products).await;
    if !authorized(&shop, &headers) {
        return unauthorized();
    }
    match fault {
        Some(Fault::Internal) => internal(),
        Some(Fault::Empty) => reply(StatusCode::OK, json!({ "data": [] })),
        Some(Fault::Flaky(every)) if shop.nth_products_run(&headers) % every as usize == 0 => internal(),
        _ => reply(StatusCode::OK, json!({ "data": CATALOGUE.iter().map(product_json).collect::<Vec<_>>() })),
    }
}

/// The catalogue: id, name, price in cents.
const CATALOGUE: [(&str, &str, i64); 3] =
    [("p1", "Espresso beans, 1 kg", 2499), ("p2", "Pour-over kettle", 4599), ("p3", "Ceramic dripper", 1899)];

fn product_json(&(id, name, price_cents): &(&str, &str, i64)) -> Value {
    json!({ "id": id, "name": name, "price_cents": price_cents })
}

/// Longest search term accepted, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// `GET /api/search?q=<term>`: public (no token), the products whose name contains the term,
/// case-insensitively.
async fn search(State(shop): State<Arc<Shop>>, Query(params): Query<HashMap<String, String>>) -> Response {
    let fault = shop.delay(Area::Search).await;
    let query = match params.get("q").map(|q| q.trim()) {
        Some(q) if !q.is_empty() && q.chars().count() <= MAX_QUERY_CHARS => q.to_owned(),
        _ => {
            return bad_request("invalid_query", format!("expected ?q=<term> of 1 to {MAX_QUERY_CHARS} characters"));
        }
    };
    let results: Vec<Value> = match fault {
        Some(Fault::Internal) => return internal(),
        Some(Fault::Empty) => Vec::new(),
        _ => {
            let needle = query.to_lowercase();
            CATALOGUE.iter().filter(|(_, name, _)| name.to_lowercase().contains(&needle)).map(product_json).collect()
        }
    };
    reply(StatusCode::OK, json!({ "query": query, "results": results }))
}

#[derive(Deserialize)]
struct CreatePayment {
    amount: i64,
    currency: String,
    payment_token: String,
}

async fn create_payment(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = shop.delay(Area::Payments).await;
    if !authorized(&shop, &headers) {
        return unauthorized();
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() => k.trim().to_owned(),
        _ => {
            return bad_request("missing_idempotency_key", "an Idempotency-Key header is required");
        }
    };
    let req: CreatePayment = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("invalid_request", e),
    };
    if req.amount <= 0 {
        return bad_request("invalid_amount", "amount must be a positive number of cents");
    }
    if !(req.currency.len() == 3 && req.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        return bad_request("invalid_currency", "currency must be a 3-letter ISO code");
    }
    if !req.payment_token.starts_with("tok_test_") {
        return error(StatusCode::BAD_REQUEST, "live_token_rejected");
    }
    // One lock scope from lookup to insert, so concurrent retries with the
    // same key cannot both create a payment.
    let mut inner = shop.lock();
    if let Some(existing) = inner.idempotency.get(&key).and_then(|id| inner.payments.get(id)) {
        return reply(StatusCode::OK, existing.to_json());
    }
    match fault {
        Some(Fault::Internal) => return internal(),
        Some(Fault::Decline) => {
            return reply(StatusCode::PAYMENT_REQUIRED, json!({ "error": "card_declined", "status": "declined" }));
        }
        _ => {}
    }
    let payment = Payment {
        id: format!("pay_{}", uuid::Uuid::new_v4().simple()),
        amount: req.amount,
        currency: req.currency,
        refunded: false,
    };
    let body = payment.to_json();
    inner.idempotency.insert(key, payment.id.clone());
    inner.payments.insert(payment.id.clone(), payment);
    reply(StatusCode::CREATED, body)
}

async fn get_payment(State(shop): State<Arc<Shop>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let fault = shop.delay(Area::Payments).await;
    if !authorized(&shop, &headers) {
        return unauthorized();
    }
    if fault == Some(Fault::Get500) {
        return internal();
    }
    match shop.lock().payments.get(&id) {
        Some(p) => reply(StatusCode::OK, p.to_json()),
        None => error(StatusCode::NOT_FOUND, "payment_not_found"),
    }
}

async fn refund_payment(State(shop): State<Arc<Shop>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let fault = shop.delay(Area::Payments).await;
    if !authorized(&shop, &headers) {
        return unauthorized();
    }
    let mut inner = shop.lock();
    let Some(payment) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "payment_not_found");
    };
    if fault == Some(Fault::NoRefund) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "refund_unavailable");
    }
    payment.refunded = true;
    reply(StatusCode::OK, payment.to_json())
}

#[derive(Deserialize)]
struct SetFault {
    fault: String,
}

async fn admin_set_fault(State(shop): State<Arc<Shop>>, Path(area): Path<String>, body: Bytes) -> Response {
    let req: SetFault = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request("invalid_request", format!("expected {{\"fault\": \"...\"}}: {e}"));
        }
    };
    match ShopHandle(shop).set_fault(&area, &req.fault) {
        Ok(fault) => reply(StatusCode::OK, json!({ "area": area, "fault": fault.to_string() })),
        Err(e) => bad_request(e.code(), &e),
    }
}

async fn admin_clear_fault(State(shop): State<Arc<Shop>>, Path(area): Path<String>) -> Response {
    match ShopHandle(shop).clear_fault(&area) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(e.code(), &e),
    }
}

async fn admin_clear_all(State(shop): State<Arc<Shop>>) -> Response {
    ShopHandle(shop).clear_all();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct RotatePassword {
    password: String,
}

async fn admin_rotate_password(State(shop): State<Arc<Shop>>, body: Bytes) -> Response {
    match serde_json::from_slice::<RotatePassword>(&body) {
        Ok(r) if !r.password.is_empty() => {
            ShopHandle(shop).rotate_password(&r.password);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => bad_request("invalid_request", "password must not be empty"),
        Err(e) => bad_request("invalid_request", format!("expected {{\"password\": \"...\"}}: {e}")),
    }
}

async fn admin_state(State(shop): State<Arc<Shop>>) -> Response {
    (StatusCode::OK, axum::Json(ShopHandle(shop).state())).into_response()
}

// ---------------------------------------------------------------------------
// Admin client

/// Why an admin API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("shop admin request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("shop admin API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("shop admin API answered unexpected JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Typed client for a shop's `/admin` API, for tests that drive a shop they
/// did not spawn in-process (e.g. the `demo-shop` binary).
#[derive(Debug, Clone)]
pub struct ShopAdmin {
    base_url: String,
    http: reqwest::Client,
}

impl ShopAdmin {
    pub fn new(base_url: &str) -> Result<Self, AdminError> {
        // The shop is always on loopback; a developer's HTTP(S)_PROXY must
        // not reroute these requests.
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        Ok(Self { base_url: base_url.trim_end_matches('/').to_owned(), http })
    }

    pub async fn set_fault(&self, area: &str, fault: &str) -> Result<(), AdminError> {
        let body = serde_json::to_vec(&json!({ "fault": fault }))?;
        self.send(self.http.put(self.url(&format!("/admin/faults/{area}"))).body(body)).await.map(drop)
    }

    pub async fn clear_fault(&self, area: &str) -> Result<(), AdminError> {
        self.send(self.http.delete(self.url(&format!("/admin/faults/{area}")))).await.map(drop)
    }

    pub async fn clear_all(&self) -> Result<(), AdminError> {
        self.send(self.http.delete(self.url("/admin/faults"))).await.map(drop)
    }

    pub async fn rotate_password(&self, password: &str) -> Result<(), AdminError> {
        let body = serde_json::to_vec(&json!({ "password": password }))?;
        self.send(self.http.put(self.url("/admin/account")).body(body)).await.map(drop)
    }

    pub async fn state(&self) -> Result<ShopState, AdminError> {
        let body = self.send(self.http.get(self.url("/admin/state"))).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Bytes, AdminError> {
        let resp = req.header(header::CONTENT_TYPE, "application/json").send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(AdminError::Status { status: status.as_u16(), body: String::from_utf8_lossy(&body).into_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal client for the shop's public API, sending the marker header
    /// only when asked so traffic accounting can be checked.
    struct Client {
        base: String,
        http: reqwest::Client,
        synthetic: bool,
    }

    impl Client {
        fn new(shop: &RunningShop, synthetic: bool) -> Self {
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("building reqwest client: {e}"));
            Self { base: shop.base_url().to_owned(), http, synthetic }
        }

        async fn call(
            &self,
            method: reqwest::Method,
            path: &str,
            token: Option<&str>,
            headers: &[(&str, &str)],
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut req = self.http.request(method, format!("{}{path}", self.base));
            if self.synthetic {
                req = req.header("X-Synthetic-Check", "test");
            }
            if let Some(t) = token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.body(b.to_string());
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_else(|e| panic!("{path}: {e}"));
            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, json)
        }

        async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
            self.call(reqwest::Method::GET, path, token, &[], None).await
        }

        async fn login(&self, password: &str) -> (u16, Value) {
            let body = json!({ "email": "synthetic-monitor@example.com", "password": password });
            self.call(reqwest::Method::POST, "/api/auth/token", None, &[], Some(body)).await
        }

        async fn token(&self) -> String {
            let (status, body) = self.login("correct-horse-battery-staple").await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap_or_else(|| panic!("no token in {body}")).to_owned()
        }

        async fn pay(&self, token: &str, key: &str, payment_token: &str) -> (u16, Value) {
            let body = json!({ "amount": 100, "currency": "USD", "payment_token": payment_token });
            self.call(reqwest::Method::POST, "/api/payments", Some(token), &[("Idempotency-Key", key)], Some(body))
                .await
        }
    }

    async fn shop() -> RunningShop {
        spawn(ShopConfig::default()).await.unwrap_or_else(|e| panic!("spawn shop: {e}"))
    }

    #[tokio::test]
    async fn happy_journey_and_traffic_accounting() {
        let shop = shop().await;
        let c = Client::new(&shop, true);
        assert_eq!(c.get("/health", None).await, (200, json!({ "status": "ok" })));

        let (status, body) = c.login("wrong").await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_credentials")));
        let (status, body) = c.call(reqwest::Method::POST, "/api/auth/token", None, &[], None).await;
        assert_eq!(status, 400, "{body}");

        let token = c.token().await;
        assert_eq!(c.get("/api/products", None).await.0, 401);
        assert_eq!(c.get("/api/products", Some("nope")).await.0, 401);
        let (status, body) = c.get("/api/products", Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"].as_array().map(Vec::len), Some(3));
        assert!(body["data"][0]["price_cents"].is_i64());

        let real = Client::new(&shop, false);
        assert_eq!(real.get("/health", None).await.0, 200);
        assert_eq!(real.get("/nope", None).await.0, 404);

        let state = shop.admin().unwrap().state().await.unwrap();
        assert_eq!(state.traffic, TrafficCounts { synthetic: 7, real: 2 });
        shop.stop().await.unwrap();
    }

    #[tokio::test]
    async fn payments_are_idempotent_and_refundable() {
        let shop = shop().await;
        let c = Client::new(&shop, true);
        let token = c.token().await;

        let (status, body) = c.pay(&token, "k1", "tok_live_123").await;
        assert_eq!((status, body), (400, json!({ "error": "live_token_rejected" })));
        let (status, _) = c
            .call(
                reqwest::Method::POST,
                "/api/payments",
                Some(&token),
                &[],
                Some(json!({ "amount": 1, "currency": "USD", "payment_token": "tok_test_x" })),
            )
            .await;
        assert_eq!(status, 400);

        let (status, created) = c.pay(&token, "k1", "tok_test_visa").await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["status"], "succeeded");
        assert_eq!(created["refunded"], false);
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        assert!(id.starts_with("pay_"));
        let (status, again) = c.pay(&token, "k1", "tok_test_visa").await;
        assert_eq!((status, &again), (200, &created));
        assert_eq!(shop.handle().state().payments, PaymentCounts { live: 1, refunded: 0 });

        assert_eq!(c.get(&format!("/api/payments/{id}"), Some(&token)).await, (200, created));
        assert_eq!(c.get("/api/payments/pay_missing", Some(&token)).await.0, 404);

        let refund = format!("/api/payments/{id}/refund");
        for _ in 0..2 {
            let (status, body) = c.call(reqwest::Method::POST, &refund, Some(&token), &[], None).await;
            assert_eq!((status, body["status"].as_str()), (200, Some("refunded")));
        }
        let (status, _) =
            c.call(reqwest::Method::POST, "/api/payments/pay_missing/refund", Some(&token), &[], None).await;
        assert_eq!(status, 404);
        let (_, body) = c.get(&format!("/api/payments/{id}"), Some(&token)).await;
        assert_eq!(body["status"], "refunded");
        assert_eq!(shop.handle().state().payments, PaymentCounts { live: 0, refunded: 1 });
    }

    #[tokio::test]
    async fn faults_via_admin_api() {
        let shop = shop().await;
        let admin = shop.admin().unwrap();
        let c = Client::new(&shop, true);
        let token = c.token().await;

        admin.set_fault("health", "down").await.unwrap();
        assert_eq!(c.get("/health", None).await, (503, json!({ "status": "down" })));

        admin.set_fault("auth", "lock").await.unwrap();
        let (status, body) = c.login("correct-horse-battery-staple").await;
        assert_eq!((status, body), (401, json!({ "error": "account_locked" })));
        admin.set_fault("auth", "500").await.unwrap();
        assert_eq!(c.login("correct-horse-battery-staple").await.0, 500);

        admin.set_fault("products", "empty").await.unwrap();
        assert_eq!(c.get("/api/products", Some(&token)).await, (200, json!({ "data": [] })));
        admin.set_fault("products", "500").await.unwrap();
        assert_eq!(c.get("/api/products", Some(&token)).await, (500, json!({ "error": "internal" })));
        admin.set_fault("products", "slow:300").await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(c.get("/api/products", Some(&token)).await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));

        admin.set_fault("payments", "decline").await.unwrap();
        let (status, body) = c.pay(&token, "d1", "tok_test_visa").await;
        assert_eq!((status, body["error"].as_str()), (402, Some("card_declined")));
        admin.set_fault("payments", "500").await.unwrap();
        assert_eq!(c.pay(&token, "d2", "tok_test_visa").await.0, 500);
        assert_eq!(shop.handle().state().payments, PaymentCounts::default());

        admin.set_fault("payments", "get-500").await.unwrap();
        let (status, created) = c.pay(&token, "g1", "tok_test_visa").await;
        assert_eq!(status, 201);
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(c.get(&format!("/api/payments/{id}"), Some(&token)).await.0, 500);

        admin.set_fault("payments", "no-refund").await.unwrap();
        let refund = format!("/api/payments/{id}/refund");
        let (status, body) = c.call(reqwest::Method::POST, &refund, Some(&token), &[], None).await;
        assert_eq!((status, body), (500, json!({ "error": "refund_unavailable" })));

        let state = admin.state().await.unwrap();
        assert_eq!(state.payments, PaymentCounts { live: 1, refunded: 0 });
        let faults: Vec<(&str, &str)> = state.faults.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(faults, [("auth", "500"), ("health", "down"), ("payments", "no-refund"), ("products", "slow:300")]);

        // Errors name what was wrong.
        match admin.set_fault("checkout", "500").await {
            Err(AdminError::Status { status: 400, body }) => {
                assert!(body.contains("checkout"), "{body}")
            }
            other => panic!("expected 400, got {other:?}"),
        }
        match admin.set_fault("health", "lock").await {
            Err(AdminError::Status { status: 400, body }) => {
                assert!(body.contains("lock"), "{body}")
            }
            other => panic!("expected 400, got {other:?}"),
        }
        assert!(admin.set_fault("health", "slow:abc").await.is_err());
        assert!(admin.clear_fault("nowhere").await.is_err());

        admin.clear_fault("payments").await.unwrap();
        let (status, _) = c.call(reqwest::Method::POST, &refund, Some(&token), &[], None).await;
        assert_eq!(status, 200);
        admin.clear_all().await.unwrap();
        let state = admin.state().await.unwrap();
        assert!(state.faults.is_empty());
        assert_eq!(state.payments, PaymentCounts { live: 0, refunded: 1 });
    }

    #[tokio::test]
    async fn public_search_matches_names_case_insensitively_with_faults_and_counted_traffic() {
        let shop = shop().await;
        let admin = shop.admin().unwrap();
        let c = Client::new(&shop, true);
        // GIVEN no token at all: search is public
        let (status, body) = c.get("/api/search?q=KETTLE", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({ "query": "KETTLE", "results": [{ "id": "p2", "name": "Pour-over kettle", "price_cents": 4599 }] })
        );
        let (_, body) = c.get("/api/search?q=E", None).await;
        let ids: Vec<&str> = body["results"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(ids, ["p1", "p2", "p3"], "every name has an e, one of them an E");
        let (_, body) = c.get("/api/search?q=ceramic%20DRIP", None).await;
        assert_eq!((body["query"].as_str(), body["results"][0]["id"].as_str()), (Some("ceramic DRIP"), Some("p3")));
        assert_eq!(c.get("/api/search?q=teapot", None).await, (200, json!({ "query": "teapot", "results": [] })));
        for bad in ["/api/search", "/api/search?q=", "/api/search?q=%20%20"] {
            let (status, body) = c.get(bad, None).await;
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_query")), "{bad}");
        }
        let long = format!("/api/search?q={}", "a".repeat(MAX_QUERY_CHARS + 1));
        assert_eq!(c.get(&long, None).await.0, 400);

        admin.set_fault("search", "empty").await.unwrap();
        assert_eq!(c.get("/api/search?q=kettle", None).await, (200, json!({ "query": "kettle", "results": [] })));
        admin.set_fault("search", "500").await.unwrap();
        assert_eq!(c.get("/api/search?q=kettle", None).await, (500, json!({ "error": "internal" })));
        admin.set_fault("search", "slow:300").await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(c.get("/api/search?q=kettle", None).await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        match admin.set_fault("search", "decline").await {
            Err(AdminError::Status { status: 400, body }) => assert!(body.contains("500, empty, slow:<ms>"), "{body}"),
            other => panic!("expected 400, got {other:?}"),
        }
        // Faults elsewhere leave search alone, and search faults leave products alone.
        let token = c.token().await;
        assert_eq!(c.get("/api/products", Some(&token)).await.0, 200);
        admin.clear_fault("search").await.unwrap();
        admin.set_fault("products", "500").await.unwrap();
        assert_eq!(c.get("/api/search?q=kettle", None).await.0, 200);

        let real = Client::new(&shop, false);
        assert_eq!(real.get("/api/search?q=beans", None).await.0, 200);
        let state = admin.state().await.unwrap();
        assert_eq!(state.traffic, TrafficCounts { synthetic: 14, real: 1 });
        assert_eq!(state.faults.get("products").map(String::as_str), Some("500"));
    }

    #[tokio::test]
    async fn password_rotation() {
        let shop = shop().await;
        let admin = shop.admin().unwrap();
        let c = Client::new(&shop, true);
        let old_token = c.token().await;
        admin.rotate_password("new-secret").await.unwrap();
        assert_eq!(c.login("correct-horse-battery-staple").await.0, 401);
        assert_eq!(c.login("new-secret").await.0, 200);
        assert_eq!(c.get("/api/products", Some(&old_token)).await.0, 200);
    }

    #[test]
    fn fault_parsing() {
        assert_eq!(Fault::parse(Area::Health, "slow:15"), Ok(Fault::Slow(Duration::from_millis(15))));
        assert_eq!(Fault::parse(Area::Payments, "get-500"), Ok(Fault::Get500));
        assert_eq!(Fault::parse(Area::Search, "empty"), Ok(Fault::Empty));
        assert_eq!(Fault::parse(Area::Search, "500"), Ok(Fault::Internal));
        assert!(Fault::parse(Area::Search, "lock").is_err());
        assert_eq!("search".parse::<Area>(), Ok(Area::Search));
        assert!(Fault::parse(Area::Health, "500").is_err());
        assert!(Fault::parse(Area::Auth, "slow:-1").is_err());
        assert!(Fault::parse(Area::Auth, "slow:600001").is_err());
        assert_eq!(Fault::Slow(Duration::from_millis(1500)).to_string(), "slow:1500");
        assert!(router(ShopConfig { synthetic_header: "bad header".into(), ..ShopConfig::default() }).is_err());
    }
}

//! A catalogue that answers a JSON array at the top level (`[{"id":1,...},...]`), not an object
//! wrapping one, behind an API key header:
//!
//! - `GET /products` with `X-Api-Key: <key>` -> 200 `[...]`; without the key -> 401.
//!
//! Faults: [`ListingFault::Empty`] answers `[]`, [`ListingFault::Internal`] 500.

use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{RunningFake, lock, serve};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingConfig {
    pub api_key: String,
}

impl Default for ListingConfig {
    fn default() -> Self {
        Self { api_key: "lk_listing_api_key_Zx81".to_owned() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingFault {
    /// 200 with `[]`.
    Empty,
    /// 500.
    Internal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListingState {
    pub listed: u64,
    pub unauthorized: u64,
}

#[derive(Debug, Default)]
struct Inner {
    fault: Option<ListingFault>,
    state: ListingState,
}

#[derive(Debug)]
struct Service {
    api_key: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Clone)]
pub struct ListingHandle(Arc<Service>);

impl ListingHandle {
    pub fn set_fault(&self, fault: Option<ListingFault>) {
        lock(&self.0.inner).fault = fault;
    }

    pub fn state(&self) -> ListingState {
        lock(&self.0.inner).state
    }
}

pub fn router(cfg: ListingConfig) -> (Router, ListingHandle) {
    let service = Arc::new(Service { api_key: cfg.api_key, inner: Mutex::new(Inner::default()) });
    let router = Router::new().route("/products", get(products)).with_state(service.clone());
    (router, ListingHandle(service))
}

pub async fn spawn(cfg: ListingConfig) -> io::Result<RunningFake<ListingHandle>> {
    let (router, handle) = router(cfg);
    serve(router, handle).await
}

async fn products(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let mut inner = lock(&service.inner);
    if headers.get("x-api-key").is_none_or(|k| k.as_bytes() != service.api_key.as_bytes()) {
        inner.state.unauthorized += 1;
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "message": "missing or invalid API key" })))
            .into_response();
    }
    inner.state.listed += 1;
    match inner.fault {
        Some(ListingFault::Internal) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "message": "internal error" }))).into_response()
        }
        Some(ListingFault::Empty) => (StatusCode::OK, axum::Json(json!([]))).into_response(),
        None => (
            StatusCode::OK,
            axum::Json(json!([
                { "id": 1, "sku": "BEAN-1KG", "name": "Espresso beans, 1 kg", "price": { "amount": 2499, "currency": "EUR" }, "in_stock": true },
                { "id": 2, "sku": "KTL-POUR", "name": "Pour-over kettle", "price": { "amount": 4599, "currency": "EUR" }, "in_stock": true },
                { "id": 3, "sku": "DRP-CER", "name": "Ceramic dripper", "price": { "amount": 1899, "currency": "EUR" }, "in_stock": false },
            ])),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    #[tokio::test]
    async fn products_are_a_top_level_array_behind_an_api_key() {
        let cfg = ListingConfig::default();
        let fake = spawn(cfg.clone()).await.unwrap();
        let (http, url) = (test_client(), format!("{}/products", fake.base_url()));

        assert_eq!(send(http.get(&url)).await.0, 401);
        let (status, body) = send(http.get(&url).header("X-Api-Key", &cfg.api_key)).await;
        assert_eq!(status, 200);
        let items = body.as_array().unwrap_or_else(|| panic!("a top-level array: {body}"));
        assert_eq!(items.len(), 3);
        assert_eq!((items[0]["id"].as_i64(), items[0]["price"]["amount"].as_i64()), (Some(1), Some(2499)));

        fake.handle().set_fault(Some(ListingFault::Empty));
        assert_eq!(send(http.get(&url).header("X-Api-Key", &cfg.api_key)).await, (200, json!([])));
        fake.handle().set_fault(Some(ListingFault::Internal));
        assert_eq!(send(http.get(&url).header("X-Api-Key", &cfg.api_key)).await.0, 500);
        assert_eq!(fake.handle().state(), ListingState { listed: 3, unauthorized: 1 });
    }
}

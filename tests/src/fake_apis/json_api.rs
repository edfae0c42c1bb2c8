//! A listing paginated the JSON:API way (jsonapi.org/format, "Pagination" and "Links"): the
//! top-level `links` object holds `first`, `prev`, `next` and `last` as absolute URLs, with the
//! page in the family's bracketed query parameters (`?page[number]=2&page[size]=2`, the brackets
//! percent-encoded as clients and servers send them); `next` is `null` on the last page. And an
//! old address that moved for good: `GET /shop` -> 301 with an absolute `Location` to the listing
//! (RFC 9110 15.4.2), whose body says nothing a client should read.
//!
//! - `GET /v1/items` (page 1, size 2 unless asked) ... `GET /v1/items?page%5Bnumber%5D=3&...`
//!   -> 200 `application/vnd.api+json` `{"data": [{"type": "items", "id": "1", "attributes":
//!   {...}}], "links": {...}, "meta": {"page": {"number", "size", "total"}}}`; a page past the
//!   last -> 200 with `"data": []`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{RunningFake, lock, serve};

const ITEMS: [&str; 5] = ["Espresso beans", "Pour-over kettle", "Ceramic dripper", "Paper filters", "Grinder"];

/// What the API saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonApiState {
    /// Every request's path and query, in order, as received.
    pub requests: Vec<String>,
    /// The page number of every listing answered, in order.
    pub pages: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct JsonApiHandle(Arc<Mutex<JsonApiState>>);

impl JsonApiHandle {
    pub fn state(&self) -> JsonApiState {
        lock(&self.0).clone()
    }
}

pub fn router() -> (Router, JsonApiHandle) {
    let handle = JsonApiHandle::default();
    let router = Router::new()
        .route("/v1/items", get(items))
        .route("/shop", get(moved))
        .layer(axum::middleware::from_fn_with_state(handle.clone(), record))
        .with_state(handle.clone());
    (router, handle)
}

pub async fn spawn() -> io::Result<RunningFake<JsonApiHandle>> {
    let (router, handle) = router();
    serve(router, handle).await
}

async fn record(
    State(handle): State<JsonApiHandle>,
    uri: Uri,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    lock(&handle.0).requests.push(uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default());
    next.run(request).await
}

/// `http://HOST` of the request, for absolute links.
fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

fn page_link(origin: &str, number: u64, size: u64) -> String {
    format!("{origin}/v1/items?page%5Bnumber%5D={number}&page%5Bsize%5D={size}")
}

async fn items(State(handle): State<JsonApiHandle>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let number = params.get("page[number]").and_then(|n| n.parse().ok()).filter(|&n| n >= 1).unwrap_or(1u64);
    let size = params.get("page[size]").and_then(|n| n.parse().ok()).filter(|&n| n >= 1).unwrap_or(2u64);
    lock(&handle.0).pages.push(number);
    let total = ITEMS.len() as u64;
    let last = total.div_ceil(size);
    let data: Vec<Value> = ITEMS
        .iter()
        .enumerate()
        .skip(((number - 1) * size) as usize)
        .take(size as usize)
        .map(|(i, name)| json!({ "type": "items", "id": (i + 1).to_string(), "attributes": { "name": name } }))
        .collect();
    let origin = origin(&headers);
    let link = |n: u64| Value::from(page_link(&origin, n, size));
    let body = json!({
        "data": data,
        "links": {
            "self": page_link(&origin, number, size),
            "first": link(1),
            "prev": if number > 1 { link(number - 1) } else { Value::Null },
            "next": if number < last { link(number + 1) } else { Value::Null },
            "last": link(last),
        },
        "meta": { "page": { "number": number, "size": size, "total": total } },
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/vnd.api+json")], body.to_string()).into_response()
}

async fn moved(headers: HeaderMap) -> Response {
    let location = format!("{}/v1/items", origin(&headers));
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location.as_str())], "Moved Permanently").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    #[tokio::test]
    async fn next_links_walk_every_page_and_end_with_null() {
        let fake = spawn().await.unwrap();
        let http = test_client();
        let mut url = format!("{}/v1/items", fake.base_url());
        let mut names = Vec::new();
        loop {
            let (status, page) = send(http.get(&url)).await;
            assert_eq!(status, 200);
            names.extend(page["data"].as_array().unwrap().iter().map(|i| i["attributes"]["name"].clone()));
            match page["links"]["next"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(names, ITEMS.map(Value::from));
        assert_eq!(fake.handle().state().pages, [1, 2, 3]);
        let moved = http.get(format!("{}/shop", fake.base_url())).send().await.unwrap();
        assert_eq!(moved.status().as_u16(), 301);
        assert_eq!(moved.headers()["location"].to_str().unwrap(), format!("{}/v1/items", fake.base_url()));
    }
}

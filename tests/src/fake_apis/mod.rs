//! Real HTTP fakes of other teams' API shapes, for proving that a journey file can monitor an API
//! that is not the demo shop: Stripe-style form-encoded payments ([`stripe`]), a nested-JSON login
//! answering 400 ([`nested_login`]), OAuth2 client credentials ([`oauth`]), a session-cookie
//! login ([`cookie_session`]), a top-level JSON array ([`listing`]), values that try to move a
//! request or break its encoding ([`hostile_values`]), a Django site with its CSRF session login
//! and a REST framework API ([`django_session`]), a GraphQL API on a real GraphQL engine
//! ([`graphql`]), payments that settle asynchronously ([`async_payments`]), httpbin's compressed
//! bodies ([`httpbin`]) and a JSON:API listing with next links and a moved address ([`json_api`]), and an API that
//! verifies an HMAC of every request ([`signed_events`]).
//!
//! Each is an axum server on `127.0.0.1` with an OS-chosen port, spawned by its module's `spawn`,
//! and returns a [`RunningFake`] whose handle injects faults and reports what the fake saw, so a
//! test can assert both the monitor's verdict and what it did to the target.

pub mod async_payments;
pub mod cookie_session;
pub mod django_session;
pub mod graphql;
pub mod hostile_values;
pub mod httpbin;
pub mod json_api;
pub mod listing;
pub mod nested_login;
pub mod oauth;
pub mod signed_events;
pub mod stripe;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, header};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A fake serving on a local port; stops when [`RunningFake::stop`] is awaited or when dropped.
#[derive(Debug)]
pub struct RunningFake<H> {
    base_url: String,
    addr: SocketAddr,
    handle: H,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl<H> RunningFake<H> {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Faults and observed state of this fake.
    pub fn handle(&self) -> &H {
        &self.handle
    }

    /// Stops accepting connections and waits (at most 5 s) for in-flight requests.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(io::Error::other(format!("fake server task failed: {join}"))),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl<H> Drop for RunningFake<H> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on `127.0.0.1` with an OS-chosen port.
pub(crate) async fn serve<H>(router: Router, handle: H) -> io::Result<RunningFake<H>> {
    serve_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), router, handle).await
}

/// Serves `router` on `addr` (port 0 picks a free one).
pub(crate) async fn serve_on<H>(addr: SocketAddr, router: Router, handle: H) -> io::Result<RunningFake<H>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                // A dropped sender means the owner is gone: stop as well.
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningFake { base_url: format!("http://{addr}"), addr, handle, shutdown: Some(tx), task: Some(task) })
}

/// Locks a fake's state. No handler panics while holding it, and the data stays consistent even
/// if one did, so poisoning is not worth propagating.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random opaque value with `prefix`, like the ids and tokens real APIs hand out.
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The token of an `Authorization: Bearer ...` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The value of the cookie `name` among the request's `Cookie` headers.
pub(crate) fn request_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The user name and password of an `Authorization: Basic ...` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 with padding, as HTTP basic auth uses it (RFC 7617).
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = input.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let triple = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&triple[..3 - pad]);
    }
    Some(out)
}

/// `application/x-www-form-urlencoded` encoding of `pairs`, for clients of the fakes (the
/// workspace's reqwest is built without its `form` feature).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_component(k), form_component(v))).collect::<Vec<_>>().join("&")
}

fn form_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (not `+`: this is for paths). `None` for a malformed escape or bytes
/// that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A plain HTTP client for the fakes' unit tests: no proxy (everything is on loopback), no
/// redirects followed, so each test sees exactly what the fake answered.
#[cfg(test)]
pub(crate) fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("building reqwest client: {e}"))
}

/// Status and JSON body (null when the body is not JSON) of a finished request.
#[cfg(test)]
pub(crate) async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_else(|e| panic!("reading body: {e}"));
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_and_bearer_are_parsed_like_rfc_7617_and_6750() {
        // "sk_test_abc:" and "client:s3cr=t" as base64
        assert_eq!(basic_credentials(&with_auth("Basic c2tfdGVzdF9hYmM6")), Some(("sk_test_abc".into(), "".into())));
        assert_eq!(
            basic_credentials(&with_auth("basic Y2xpZW50OnMzY3I9dA==")),
            Some(("client".into(), "s3cr=t".into()))
        );
        assert_eq!(basic_credentials(&with_auth("Basic !!!!")), None);
        assert_eq!(basic_credentials(&with_auth("Basic Y2xpZW50")), None, "no colon");
        assert_eq!(basic_credentials(&with_auth("Bearer abc")), None);
        assert_eq!(bearer_token(&with_auth("Bearer abc")), Some("abc".into()));
        assert_eq!(bearer_token(&with_auth("Basic abc")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn base64_rejects_misplaced_padding() {
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("YQ==YWJj"), None);
        assert_eq!(base64_decode("YQ="), None);
    }

    #[test]
    fn form_and_percent_encoding_round_trip() {
        assert_eq!(form_encode(&[("a b", "x&y=z"), ("n", "\"\r\n")]), "a+b=x%26y%3Dz&n=%22%0D%0A");
        assert_eq!(percent_decode("..%2Fadmin").as_deref(), Some("../admin"));
        assert_eq!(percent_decode("%2E%2E%2fadmin").as_deref(), Some("../admin"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}

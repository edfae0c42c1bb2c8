//! The HTTP target port and its reqwest adapter.
//!
//! The adapter is built once per cold start. Every request it sends is bounded: a connect
//! timeout, a total timeout covering headers *and* body (so a slow drip cannot outlive its
//! budget), and a cap on the body read (so an endless body cannot exhaust 128 MB of Lambda
//! memory). It never follows a redirect itself: the journey does, within its target only, so a
//! login body or a card token cannot be re-sent to another host. Transport failures are
//! classified into a [`CheckError`] cause.

use crate::error::CheckError;
use crate::secret::Secret;
use async_trait::async_trait;
use lambda_runtime::tracing::{self, instrument};
use std::fmt;
use std::time::Duration;
use url::Url;

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const USER_AGENT: &str = concat!(
    "synthetic-lambda/",
    env!("CARGO_PKG_VERSION"),
    " (synthetic monitoring; +https://github.com/synthetic-lambda/synthetic-lambda)"
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub const NAMES: &str = "GET, POST, PUT, PATCH, DELETE or HEAD";

    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            "HEAD" => Some(Method::Head),
            _ => None,
        }
    }

    /// Safe to repeat without an idempotency key (RFC 9110 §9.2.2).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }

    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

/// How a request proves who it is. Both are secrets.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    Bearer(Secret<String>),
    Basic { username: Secret<String>, password: Secret<String> },
}

/// A request body and its content type. The bytes are a secret: a login, a card token.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Secret<Vec<u8>>,
}

impl Body {
    pub fn json(value: &serde_json::Value) -> Self {
        Body { content_type: "application/json".into(), bytes: Secret::new(value.to_string().into_bytes()) }
    }
}

/// A request to the target. Its `Debug` shows method and URL only: the body (a login), the
/// credentials and the headers may all be secrets.
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    pub body: Option<Body>,
    /// Total time for connect, headers and body.
    pub timeout: Duration,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.method, self.url)
    }
}

#[derive(Clone, Debug, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed once: assertions, captures and cleanup all read it.
    parsed: std::sync::OnceLock<Result<serde_json::Value, String>>,
}

impl HttpResponse {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        HttpResponse { status, headers, body, parsed: std::sync::OnceLock::new() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<&serde_json::Value, CheckError> {
        let parsed = self
            .parsed
            .get_or_init(|| serde_json::from_slice(&self.body).map_err(|e| format!("body is not valid JSON ({e})")));
        parsed.as_ref().map_err(|e| CheckError::InvalidResponse(e.clone()))
    }

    /// Whether the `Content-Type` says the body is JSON (`application/json`, `…+json`).
    pub fn claims_json(&self) -> bool {
        self.header("content-type").is_some_and(|value| {
            let media = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        })
    }

    /// Every value of a header, in order (`Set-Cookie` comes once per cookie).
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(move |(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// Port: whatever sends a request to the monitored service.
#[async_trait]
pub trait HttpTarget: Send + Sync {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError>;
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { connect_timeout: Duration::from_secs(3), max_body_bytes: DEFAULT_MAX_BODY_BYTES }
    }
}

pub struct ReqwestTarget {
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl ReqwestTarget {
    pub fn new(settings: &HttpSettings) -> Result<Self, CheckError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CheckError::Misconfigured(format!("cannot build the HTTP client: {}", error_chain(&e))))?;
        Ok(ReqwestTarget { client, max_body_bytes: settings.max_body_bytes })
    }

    async fn exchange(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError> {
        let mut builder = self.client.request(request.method.as_reqwest(), request.url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.auth {
            Some(Auth::Bearer(token)) => builder.bearer_auth(token.expose()),
            Some(Auth::Basic { username, password }) => builder.basic_auth(username.expose(), Some(password.expose())),
            None => builder,
        };
        if let Some(body) = &request.body {
            builder =
                builder.header(reqwest::header::CONTENT_TYPE, &body.content_type).body(body.bytes.expose().clone());
        }
        let mut response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(CheckError::InvalidResponse(format!(
                    "body larger than the {} byte cap",
                    self.max_body_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse::new(status, headers, body))
    }
}

#[async_trait]
impl HttpTarget for ReqwestTarget {
    #[instrument(skip(self), fields(status))]
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError> {
        let budget = request.timeout;
        let result = match tokio::time::timeout(budget, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(CheckError::Timeout { budget_ms: budget.as_millis() as u64 }),
        };
        if let Ok(response) = &result {
            tracing::Span::current().record("status", response.status);
        }
        result
    }
}

/// In-memory [`HttpTarget`] for unit tests: answers from a script, in order, and records what
/// it was asked. When the script runs out it answers 500.
#[derive(Default)]
pub struct ScriptedTarget {
    script: std::sync::Mutex<std::collections::VecDeque<(Duration, Result<HttpResponse, CheckError>)>>,
    requests: std::sync::Mutex<Vec<HttpRequest>>,
}

impl ScriptedTarget {
    pub fn then(self, status: u16, body: &str) -> Self {
        self.then_after(Duration::ZERO, Ok(HttpResponse::with(status, body)))
    }

    pub fn then_after(self, delay: Duration, answer: Result<HttpResponse, CheckError>) -> Self {
        if let Ok(mut script) = self.script.lock() {
            script.push_back((delay, answer));
        }
        self
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl HttpTarget for ScriptedTarget {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, CheckError> {
        let budget = request.timeout;
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request.clone());
        }
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        let (delay, answer) = next.unwrap_or((Duration::ZERO, Ok(HttpResponse::with(500, "script exhausted"))));
        if delay >= budget {
            tokio::time::sleep(budget).await;
            return Err(CheckError::Timeout { budget_ms: budget.as_millis() as u64 });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }
}

impl HttpResponse {
    /// A response for tests: `application/json` when the body looks like JSON, else `text/plain`.
    pub fn with(status: u16, body: &str) -> Self {
        let json = body.trim_start().starts_with(['{', '[']);
        let content_type = if json { "application/json" } else { "text/plain" };
        HttpResponse::new(status, vec![("content-type".into(), content_type.into())], body.as_bytes().to_vec())
    }
}

/// Maps a reqwest failure to a cause, from the *types* in its source chain. Never from its
/// text: reqwest's message quotes the URL, so a refused connection to `/tls-edge` would read as
/// a TLS failure if words were matched.
fn classify(error: reqwest::Error) -> CheckError {
    let text = error_chain(&error);
    match transport_failure(&error) {
        Transport::Tls => CheckError::Tls(text),
        // Only the connect phase has a reqwest-level timeout; the total budget is enforced above.
        Transport::Timeout => CheckError::Connect(format!("connect timed out: {text}")),
        Transport::Connection => CheckError::Connect(text),
        Transport::Body => CheckError::InvalidResponse(format!("body could not be read: {text}")),
    }
}

#[derive(Debug, PartialEq)]
enum Transport {
    Tls,
    Timeout,
    Connection,
    Body,
}

fn transport_failure(error: &reqwest::Error) -> Transport {
    let mut timed_out = error.is_timeout();
    let mut connection = error.is_connect();
    for cause in causes(error) {
        // rustls reports every handshake, record and certificate failure as its own error type;
        // tokio-rustls hands it up wrapped in an `io::Error` of kind `InvalidData`.
        if cause.is::<rustls::Error>() {
            return Transport::Tls;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => timed_out = true,
                ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
                | AddrNotAvailable | HostUnreachable | NetworkUnreachable => connection = true,
                _ => {}
            }
        }
    }
    if timed_out {
        Transport::Timeout
    } else if connection {
        // A reset while the body streams is still the connection failing, not a bad answer.
        Transport::Connection
    } else if error.is_body() || error.is_decode() {
        Transport::Body
    } else {
        Transport::Connection
    }
}

/// Every error in the chain, including the one an `io::Error` wraps: `io::Error::source` skips
/// its own payload (it returns the payload's source), so the payload is reached through
/// `get_ref`.
fn causes<'a>(error: &'a (dyn std::error::Error + 'static)) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        found.push(cause);
        let wrapped = cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        next = match wrapped {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
        // A cycle cannot happen with std's errors, but the walk stays bounded regardless.
        if found.len() > 32 {
            break;
        }
    }
    found
}

/// An error and its sources on one line, without repeating a source its parent already quotes.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let piece = inner.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = inner.source();
    }
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_debug_hides_body_and_token() {
        let request = HttpRequest {
            method: Method::Post,
            url: Url::parse("http://shop.test/api/auth/token").unwrap(),
            headers: vec![("x-api-key".into(), "k-secret".into())],
            auth: Some(Auth::Bearer(Secret::new("tok-abc".into()))),
            body: Some(Body::json(&serde_json::json!({"password": "hunter2"}))),
            timeout: Duration::from_secs(1),
        };
        let debug = format!("{request:?}");
        assert_eq!(debug, "Post http://shop.test/api/auth/token");
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: Method::Get,
            url: Url::parse(url).unwrap(),
            headers: vec![],
            auth: None,
            body: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// A loopback port nothing listens on.
    async fn closed_port() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        port
    }

    /// A loopback server that answers every connection with `answer` once it has read the request.
    async fn answering(answer: &'static [u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(answer).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn a_refused_connection_is_connect_whatever_words_the_url_holds() {
        // GIVEN a closed port, addressed through a path full of the words a TLS failure uses
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
        let url = format!("http://127.0.0.1:{}/tls-edge/certificate/handshake?rustls=1", closed_port().await);

        // WHEN a request is sent
        let error = target.send(&get(&url)).await.unwrap_err();

        // THEN it is a connect failure: the URL's words do not decide the cause
        assert_eq!(error.cause(), crate::Cause::Connect, "{error:?}");
    }

    #[tokio::test]
    async fn plain_http_behind_an_https_url_is_tls_whatever_words_the_url_holds() {
        // GIVEN a server speaking plain HTTP, addressed as HTTPS through a path with no TLS word
        let port = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").await;
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();

        // WHEN a request is sent
        let error = target.send(&get(&format!("https://127.0.0.1:{port}/api/refused/connect"))).await.unwrap_err();

        // THEN the handshake failure is found by its type
        assert_eq!(error.cause(), crate::Cause::Tls, "{error:?}");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_invalid_response_even_under_a_tls_path() {
        // GIVEN a server that promises ten bytes, sends two and closes
        let port = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{}").await;
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();

        // WHEN the body is read
        let error = target.send(&get(&format!("http://127.0.0.1:{port}/tls/certificate"))).await.unwrap_err();

        // THEN the truncated body is a bad answer, not a TLS or connect failure
        assert_eq!(error.cause(), crate::Cause::InvalidResponse, "{error:?}");
    }

    #[test]
    fn only_post_and_patch_need_an_idempotency_key() {
        assert!(!Method::Post.is_idempotent() && !Method::Patch.is_idempotent());
        assert!(Method::Get.is_idempotent() && Method::Put.is_idempotent() && Method::Delete.is_idempotent());
    }

    #[test]
    fn header_lookup_ignores_case() {
        let response = HttpResponse::new(200, vec![("content-type".into(), "application/json".into())], vec![]);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("x-missing"), None);
    }
}

//! The HTTP target port and its reqwest adapter.
//!
//! The adapter is built once per cold start. Every request it sends is bounded: a connect
//! timeout, a total timeout covering headers *and* body (so a slow drip cannot outlive its
//! budget), and a cap on the body read (so an endless body cannot exhaust 128 MB of Lambda
//! memory). It never follows a redirect itself: the journey does, within its target only, so a
//! login body or a card token cannot be re-sent to another host. Transport failures are
//! classified into a [`CheckError`] cause.
//!
//! TLS is set up here for every connection the functions make ([`tls`]): Mozilla's roots
//! compiled in, plus `TARGET_CA_BUNDLE` for the target, verification always on. Each answer over
//! HTTPS carries the facts of the target's leaf certificate ([`Certificate`]), read from the
//! connection the request already used.

use crate::error::CheckError;
use crate::secret::Secret;
use async_trait::async_trait;
use lambda_runtime::tracing::{self, instrument};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Carries the run's id on every request to the target, beside the synthetic header.
pub const RUN_ID_HEADER: &str = "x-synthetic-run-id";
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
        const ALL: [Method; 6] = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Head];
        ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The method's name as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
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
        // Straight to bytes, not through `Display`'s text adapter; a `Value` always serializes.
        Body {
            content_type: "application/json".into(),
            bytes: Secret::new(serde_json::to_vec(value).unwrap_or_default()),
        }
    }
}

/// A request to the target. Its `Debug` shows method and URL without its query only: the body
/// (a login), the credentials, the headers and the query may all be secrets.
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
        write!(f, "{:?} {}", self.method, without_query(&self.url))
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
    /// The leaf certificate of the connection that carried the answer; `None` over plain HTTP.
    /// Boxed: answers travel in results and errors, and most runs read it once.
    pub certificate: Option<Box<Certificate>>,
}

/// What a run learns about the target's leaf certificate, as seen on its connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Whole days until `not_after`, rounded down: 0 is "expires within a day".
    pub days_left: i64,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 4514, e.g. `CN=shop.example.com`.
    pub subject: String,
}

impl HttpResponse {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        HttpResponse { status, headers, body, parsed: std::sync::OnceLock::new(), certificate: None }
    }

    /// The same answer, carrying the certificate of the connection it came over.
    pub fn with_certificate(mut self, certificate: Option<Certificate>) -> Self {
        self.certificate = certificate.map(Box::new);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| is_lowercase_of(k, name)).map(|(_, v)| v.as_str())
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
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(k, _)| is_lowercase_of(k, name)).map(|(_, v)| v.as_str())
    }
}

/// Whether `name` can be an HTTP header name (an RFC 9110 token). Journey files and
/// `SYNTHETIC_HEADER` are both held to it, so a name is refused when it is read, never when sent.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The value at a JSON pointer (RFC 6901; `""` is the whole value), as serde_json's
/// `Value::pointer` finds it, but without copying every token to unescape it: only a token
/// holding `~` is copied.
pub fn json_at<'v>(value: &'v serde_json::Value, pointer: &str) -> Option<&'v serde_json::Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let tokens = pointer.strip_prefix('/')?.split('/');
    tokens.map(unescape).try_fold(value, |at, token| match at {
        serde_json::Value::Object(fields) => fields.get(token.as_ref()),
        // An index is digits with no leading zero (and no sign), as in serde_json.
        serde_json::Value::Array(items) if token == "0" || !token.starts_with(['0', '+']) => {
            token.parse::<usize>().ok().and_then(|index| items.get(index))
        }
        _ => None,
    })
}

fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    match token.contains('~') {
        true => token.replace("~1", "/").replace("~0", "~").into(),
        false => token.into(),
    }
}

/// Whether a stored (lower-case) header name is `name` lower-cased, compared without a copy.
fn is_lowercase_of(stored: &str, name: &str) -> bool {
    stored.len() == name.len() && stored.bytes().zip(name.bytes()).all(|(s, n)| s == n.to_ascii_lowercase())
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
    /// Roots trusted for the target on top of Mozilla's (`TARGET_CA_BUNDLE`).
    pub ca_bundle: Option<tls::CaBundle>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(3),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ca_bundle: None,
        }
    }
}

pub struct ReqwestTarget {
    client: reqwest::Client,
    max_body_bytes: usize,
    /// The last leaf certificate read, by its DER: a run sees the same certificate on every
    /// answer, so it is parsed once, not once per request.
    last_certificate: Mutex<Option<(Vec<u8>, ParsedCertificate)>>,
}

impl ReqwestTarget {
    pub fn new(settings: &HttpSettings) -> Result<Self, CheckError> {
        let extra = settings.ca_bundle.as_ref().map(|b| b.roots.as_slice()).unwrap_or_default();
        let tls = tls::client_config(extra)
            .map_err(|e| CheckError::Misconfigured(format!("cannot set up TLS for the HTTP client: {e}")))?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Our own rustls setup instead of reqwest's platform verifier, which reads and parses
            // the system trust store at every cold start (bench/RESULTS.md).
            .tls_backend_preconfigured(tls)
            // Hands each response its connection's peer certificate: the expiry check needs no
            // request of its own.
            .tls_info(true)
            .build()
            .map_err(|e| CheckError::Misconfigured(format!("cannot build the HTTP client: {}", error_chain(&e))))?;
        Ok(ReqwestTarget { client, max_body_bytes: settings.max_body_bytes, last_certificate: Mutex::new(None) })
    }

    /// The certificate facts of `der` as of now; `None` when it cannot be parsed (rustls
    /// accepted it, so a check must not fail over what this parser cannot read).
    fn certificate(&self, der: &[u8]) -> Option<Certificate> {
        let now = OffsetDateTime::now_utc();
        let mut cache = self.last_certificate.lock().ok();
        if let Some(Some((cached, parsed))) = cache.as_deref()
            && cached.as_slice() == der
        {
            return Some(parsed.at(now));
        }
        let parsed = ParsedCertificate::from_der(der)
            .inspect_err(|reason| tracing::debug!(%reason, "the target's certificate could not be read"))
            .ok()?;
        let facts = parsed.at(now);
        if let Some(cache) = cache.as_deref_mut() {
            *cache = Some((der.to_vec(), parsed));
        }
        Some(facts)
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
        let certificate = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(reqwest::tls::TlsInfo::peer_certificate)
            .and_then(|der| self.certificate(der));
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
        Ok(HttpResponse::new(status, headers, body).with_certificate(certificate))
    }
}

impl Certificate {
    /// The facts of a DER certificate as of now. Each answer's certificate is read this way,
    /// except that [`ReqwestTarget`] keeps the parsed parts of the last one.
    pub fn from_der(der: &[u8]) -> Result<Certificate, String> {
        ParsedCertificate::from_der(der).map(|parsed| parsed.at(OffsetDateTime::now_utc()))
    }
}

/// The parts of a certificate that do not change with the clock.
#[derive(Clone, Debug)]
struct ParsedCertificate {
    not_after: OffsetDateTime,
    subject: String,
}

impl ParsedCertificate {
    fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        Ok(ParsedCertificate {
            not_after: certificate.validity().not_after.to_datetime(),
            subject: certificate.subject().to_string(),
        })
    }

    fn at(&self, now: OffsetDateTime) -> Certificate {
        Certificate {
            days_left: (self.not_after - now).whole_days(),
            not_after: self.not_after.format(&Rfc3339).unwrap_or_default(),
            subject: self.subject.clone(),
        }
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

    /// The next request finds nothing listening: no connection, so nothing of it is sent.
    pub fn then_refused(self) -> Self {
        self.then_after(Duration::ZERO, Err(CheckError::Connect("tcp connect error: Connection refused".into())))
    }

    /// The next request is sent, and the connection is reset before its answer is complete.
    pub fn then_reset(self) -> Self {
        self.then_after(Duration::ZERO, Err(CheckError::ConnectionLost("connection reset by peer".into())))
    }

    /// The next request is sent and never answered: it times out, whatever its budget.
    pub fn then_hang(self) -> Self {
        self.then_after(Duration::MAX, Ok(HttpResponse::with(200, "{}")))
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

/// A URL for a message: scheme, host, port and path, never the query (it may carry a token).
pub fn without_query(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// Maps a reqwest failure to a cause, from the *types* in its source chain. Never from its
/// text: reqwest's message quotes the URL, so a refused connection to `/tls-edge` would read as
/// a TLS failure if words were matched.
///
/// Whether the request may have reached the target decides the variant: [`CheckError::Connect`]
/// only when no connection was made (nothing was sent, so no write can be live), and
/// [`CheckError::ConnectionLost`] once it was (the target may have carried it out).
///
/// The message quotes the URL without its query, which may carry an API key.
fn classify(mut error: reqwest::Error) -> CheckError {
    if let Some(url) = error.url_mut() {
        url.set_query(None);
        url.set_fragment(None);
    }
    let text = error_chain(&error);
    match transport_failure(&error) {
        Transport::Tls => match certificate_problem(&error) {
            Some(problem) => CheckError::Tls(format!("{problem}; {text}")),
            None => CheckError::Tls(text),
        },
        // Only the connect phase has a reqwest-level timeout; the total budget is enforced above.
        Transport::ConnectTimeout => CheckError::Connect(format!("connect timed out: {text}")),
        Transport::NotConnected => CheckError::Connect(text),
        Transport::Lost => CheckError::ConnectionLost(text),
        Transport::Body => CheckError::InvalidResponse(format!("body could not be read: {text}")),
        Transport::NotHttp => CheckError::InvalidResponse(format!("the answer is not valid HTTP: {text}")),
        // The journey's own values could not form a request: retrying cannot help.
        Transport::Unsendable => CheckError::Misconfigured(format!("the request could not be built: {text}")),
    }
}

#[derive(Debug, PartialEq)]
enum Transport {
    Tls,
    ConnectTimeout,
    NotConnected,
    Lost,
    Body,
    NotHttp,
    Unsendable,
}

fn transport_failure(error: &reqwest::Error) -> Transport {
    if error.is_builder() {
        return Transport::Unsendable;
    }
    let mut timed_out = error.is_timeout();
    let mut connection = false;
    for cause in causes(error) {
        // rustls reports every handshake, record and certificate failure as its own error type;
        // tokio-rustls hands it up wrapped in an `io::Error` of kind `InvalidData`.
        if cause.is::<rustls::Error>() {
            return Transport::Tls;
        }
        // A malformed status line or header, or a head past hyper's size limit: an answer came,
        // it just is not HTTP. Not a connection failure.
        if cause.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse) {
            return Transport::NotHttp;
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
    if error.is_connect() {
        // No connection was made (refused, unreachable, DNS, connect timeout): nothing was sent.
        if timed_out { Transport::ConnectTimeout } else { Transport::NotConnected }
    } else if connection || timed_out {
        // A reset while the body streams is still the connection failing, not a bad answer.
        Transport::Lost
    } else if error.is_body() || error.is_decode() {
        Transport::Body
    } else {
        // Closed before the answer, or a failure of a kind not known here: the request may have
        // gone out, so it is never taken for one that was not sent.
        Transport::Lost
    }
}

/// A certificate the handshake refused, in words an on-call engineer acts on.
fn certificate_problem(error: &reqwest::Error) -> Option<String> {
    use rustls::CertificateError as E;
    let problem = causes(error).into_iter().find_map(|cause| match cause.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(problem)) => Some(problem.clone()),
        _ => None,
    })?;
    let host = error.url().and_then(Url::host_str).unwrap_or("the target");
    let when = |time: rustls::pki_types::UnixTime| {
        OffsetDateTime::from_unix_timestamp(time.as_secs() as i64).ok().and_then(|t| t.format(&Rfc3339).ok())
    };
    Some(match problem {
        E::ExpiredContext { time, not_after } => {
            let days = time.as_secs().saturating_sub(not_after.as_secs()) / 86_400;
            format!(
                "the certificate of {host} has expired: not valid after {}, {days} whole day(s) ago",
                when(not_after).unwrap_or_default()
            )
        }
        E::Expired => format!("the certificate of {host} has expired"),
        E::NotValidYet | E::NotValidYetContext { .. } => format!("the certificate of {host} is not valid yet"),
        E::UnknownIssuer => format!(
            "the certificate of {host} is not trusted: no trusted root issued it (a target behind a private CA \
             needs that CA in TARGET_CA_BUNDLE)"
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("the certificate of {host} is not valid for the name {host}")
        }
        E::Revoked => format!("the certificate of {host} is revoked"),
        other => format!("the certificate of {host} was refused ({other:?})"),
    })
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

/// The TLS setup of every connection the functions make: to the target, to PagerDuty, to AWS.
///
/// Mozilla's roots are compiled in (`webpki-roots`), so nothing is read from disk at cold start:
/// reading and parsing the system trust store used to be most of the functions' init, twice over
/// (once in reqwest, once in the AWS SDK). A target behind a private CA adds its roots with
/// `TARGET_CA_BUNDLE`. Verification is never switched off: every connection checks the chain,
/// the name and the validity period.
pub mod tls {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, TrustAnchor};
    use std::sync::Arc;

    /// Roots read from a PEM file, already checked to be usable as trust anchors.
    #[derive(Clone, Debug, PartialEq)]
    pub struct CaBundle {
        pub path: String,
        pub roots: Vec<TrustAnchor<'static>>,
    }

    impl CaBundle {
        /// Reads `path`, named by the variable `name`; every error names both.
        pub fn load(name: &str, path: &str) -> Result<Self, String> {
            let pem = std::fs::read(path).map_err(|e| format!("{name} file {path} cannot be read: {e}"))?;
            Self::parse(name, path, &pem)
        }

        pub fn parse(name: &str, path: &str, pem: &[u8]) -> Result<Self, String> {
            let certificates = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{name} file {path} is not valid PEM: {e}"))?;
            if certificates.is_empty() {
                return Err(format!("{name} file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
            }
            let mut store = rustls::RootCertStore::empty();
            for (index, certificate) in certificates.into_iter().enumerate() {
                store.add(certificate).map_err(|e| {
                    format!("{name} file {path}: certificate {} cannot be a trusted root: {e}", index + 1)
                })?;
            }
            Ok(CaBundle { path: path.to_string(), roots: store.roots })
        }
    }

    /// A client configuration trusting Mozilla's roots plus `extra`. Built from static data:
    /// no file is read and no certificate parsed (the compiled-in roots are trust anchors already).
    pub fn client_config(extra: &[TrustAnchor<'static>]) -> Result<rustls::ClientConfig, rustls::Error> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        roots.roots.extend(extra.iter().cloned());
        // The provider reqwest and the AWS SDK use as well: one crypto stack in the binary.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // What reqwest offers with HTTP/1 only, as it is built here.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
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

    /// `body` compressed with `encoding` as a target sends it.
    fn compressed(encoding: &str, body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match encoding {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            "deflate" => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(body).unwrap();
                e.finish().unwrap()
            }
            "br" => {
                let mut out = Vec::new();
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
                e.write_all(body).unwrap();
                drop(e);
                out
            }
            "zstd" => zstd::encode_all(body, 3).unwrap(),
            other => panic!("no encoder for {other}"),
        }
    }

    /// A server answering every request with `body` compressed as `encoding`.
    async fn answering_compressed(encoding: &str, body: &[u8]) -> u16 {
        let payload = compressed(encoding, body);
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        answer.extend_from_slice(&payload);
        answering(answer.leak()).await
    }

    #[tokio::test]
    async fn gzip_deflate_brotli_and_zstd_bodies_are_read_decompressed() {
        for encoding in ["gzip", "deflate", "br", "zstd"] {
            // GIVEN a target answering JSON compressed with this encoding
            let port = answering_compressed(encoding, br#"{"data":[1,2,3]}"#).await;
            let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
            // WHEN it is read
            let response = target.send(&get(&format!("http://127.0.0.1:{port}/"))).await.unwrap();
            // THEN the body is the JSON, and no header claims it is still compressed
            assert_eq!(response.json().unwrap(), &serde_json::json!({"data": [1, 2, 3]}), "{encoding}");
            assert_eq!(response.header("content-encoding"), None, "{encoding}");
        }
    }

    #[tokio::test]
    async fn a_decompression_bomb_fails_at_the_body_cap_on_what_it_decompresses_to() {
        for encoding in ["gzip", "br", "zstd"] {
            // GIVEN 10 MB of zeros, compressed to a few kB, behind a 1 MB cap
            let port = answering_compressed(encoding, &vec![0u8; 10 << 20]).await;
            let settings = HttpSettings { max_body_bytes: 1 << 20, ..HttpSettings::default() };
            let target = ReqwestTarget::new(&settings).unwrap();
            // WHEN it is read
            let Err(error) = target.send(&get(&format!("http://127.0.0.1:{port}/"))).await else {
                panic!("{encoding}: the bomb was read whole");
            };
            // THEN the step fails on the cap; the 10 MB were never held
            assert_eq!(error.cause(), crate::Cause::InvalidResponse, "{encoding}: {error:?}");
            assert!(error.to_string().contains(&format!("{} byte cap", 1 << 20)), "{encoding}: {error}");
        }
    }

    #[test]
    fn json_at_finds_what_serde_json_pointer_finds() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"a":{"b":[10,{"c/d":1,"e~f":2,"":3}]},"0":"zero","01":"one","data":[],"x":null}"#)
                .unwrap();
        let pointers = [
            "",
            "/",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1",
            "/a/b/2",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/-",
            "/a/b/1/c~1d",
            "/a/b/1/e~0f",
            "/a/b/1/",
            "/a/b/1/c/d",
            "/0",
            "/01",
            "/data",
            "/data/0",
            "/x",
            "/x/y",
            "a",
            "/a~2",
            "/a/b/18446744073709551616",
        ];
        for pointer in pointers {
            assert_eq!(json_at(&value, pointer), value.pointer(pointer), "{pointer:?}");
        }
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
    async fn a_transport_error_never_quotes_the_query_of_the_request() {
        // GIVEN a request whose query carries an API key, to a port nothing listens on
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
        let url = format!("http://127.0.0.1:{}/v1/charges?api_key=AbC%2BdEf%2F9", closed_port().await);
        let request = get(&url);

        // WHEN it fails
        let error = target.send(&request).await.unwrap_err();

        // THEN neither the error nor the request's log form quotes the query, but both name the path
        for text in [error.to_string(), format!("{request:?}")] {
            assert!(!text.contains("api_key") && !text.contains("AbC"), "{text}");
            assert!(text.contains("/v1/charges"), "{text}");
        }
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

    /// A certificate for 127.0.0.1 valid from a day ago until `valid_for` from now, signed by a
    /// fresh CA; the leaf's DER and the CA's PEM.
    fn certificate(valid_for: time::Duration) -> (Vec<u8>, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "shop.test");
        leaf.not_before = now - time::Duration::days(1);
        leaf.not_after = now + valid_for;
        let der = leaf.signed_by(&KeyPair::generate().unwrap(), &issuer).unwrap().der().to_vec();
        (der, ca_pem)
    }

    #[test]
    fn a_certificate_reads_as_whole_days_left_its_expiry_and_its_subject() {
        // GIVEN a leaf that expires in 5 days and an hour
        let (der, _) = certificate(time::Duration::days(5) + time::Duration::hours(1));
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();

        // WHEN it is read, twice (the second time from the cache)
        let first = target.certificate(&der).unwrap();
        let again = target.certificate(&der).unwrap();

        // THEN it has 5 whole days left, its notAfter in RFC 3339 and its subject
        assert_eq!((first.days_left, first.subject.as_str()), (5, "CN=shop.test"));
        let not_after = OffsetDateTime::parse(&first.not_after, &Rfc3339).unwrap();
        let expected = OffsetDateTime::now_utc() + time::Duration::days(5) + time::Duration::hours(1);
        assert!((not_after - expected).abs() < time::Duration::minutes(1), "{not_after} vs {expected}");
        assert_eq!(again, first);

        // AND a different certificate is not answered from the cache
        let (other, _) = certificate(time::Duration::days(365) + time::Duration::hours(1));
        assert_eq!(target.certificate(&other).unwrap().days_left, 365);
        assert_eq!(target.certificate(b"not a certificate"), None);
    }

    #[test]
    fn a_ca_bundle_is_read_and_every_problem_names_the_variable_and_the_file() {
        let (_, ca_pem) = certificate(time::Duration::days(30));
        let bundle = tls::CaBundle::parse("TARGET_CA_BUNDLE", "/etc/ca.pem", ca_pem.as_bytes()).unwrap();
        assert_eq!(bundle.roots.len(), 1);

        let missing = tls::CaBundle::load("TARGET_CA_BUNDLE", "/nonexistent/ca.pem").unwrap_err();
        assert!(missing.starts_with("TARGET_CA_BUNDLE file /nonexistent/ca.pem cannot be read"), "{missing}");
        let empty = tls::CaBundle::parse("TARGET_CA_BUNDLE", "/etc/ca.pem", b"just text").unwrap_err();
        assert!(empty.contains("TARGET_CA_BUNDLE file /etc/ca.pem holds no PEM certificate"), "{empty}");
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = tls::CaBundle::parse("TARGET_CA_BUNDLE", "/etc/ca.pem", broken.as_bytes()).unwrap_err();
        assert!(bad.contains("TARGET_CA_BUNDLE file /etc/ca.pem: certificate 1 cannot be a trusted root"), "{bad}");
    }

    #[test]
    fn only_post_and_patch_need_an_idempotency_key() {
        assert!(!Method::Post.is_idempotent() && !Method::Patch.is_idempotent());
        assert!(Method::Get.is_idempotent() && Method::Put.is_idempotent() && Method::Delete.is_idempotent());
    }

    #[tokio::test]
    async fn only_a_failure_before_any_connection_says_nothing_was_sent() {
        // GIVEN a closed port, and a server that takes the request and closes without answering
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
        let refused = target.send(&get(&format!("http://127.0.0.1:{}/pay", closed_port().await))).await;
        let lost = target.send(&get(&format!("http://127.0.0.1:{}/pay", answering(b"").await))).await;

        // THEN both are `connect` failures, but only the refused one says nothing was sent: the
        // other request went out, and the target may have carried it out
        assert!(matches!(refused, Err(CheckError::Connect(_))), "{refused:?}");
        assert!(matches!(lost, Err(CheckError::ConnectionLost(_))), "{lost:?}");
        assert_eq!(lost.unwrap_err().cause(), crate::Cause::Connect);
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_invalid_response_not_connect() {
        // GIVEN a malformed status line, and a response head far past any sane size
        let mut oversized = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        oversized.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        oversized.extend(b"\r\nContent-Length: 2\r\n\r\n{}");
        let answers: [&'static [u8]; 3] = [
            b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
            b"SMTP ready\r\n\r\n",
            Box::leak(oversized.into_boxed_slice()),
        ];
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
        for answer in answers {
            // WHEN a request is sent
            let error = target.send(&get(&format!("http://127.0.0.1:{}/x", answering(answer).await))).await;
            // THEN the answer is the target's fault, named as such
            let error = error.unwrap_err();
            assert_eq!(error.cause(), crate::Cause::InvalidResponse, "{error:?}");
            assert!(error.to_string().contains("not valid HTTP"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_header_value_the_client_refuses_is_misconfigured_not_connect() {
        // GIVEN a listening server, and header values with a newline and another control character
        let port = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await;
        let target = ReqwestTarget::new(&HttpSettings::default()).unwrap();
        for value in ["a\nb", "a\u{1}b", "a\u{7f}"] {
            let mut request = get(&format!("http://127.0.0.1:{port}/x"));
            request.headers.push(("X-Note".into(), value.into()));
            // WHEN it is sent
            let error = target.send(&request).await.unwrap_err();
            // THEN the request could not be built: the monitor's mistake, not the target's
            assert_eq!(error.cause(), crate::Cause::Misconfigured, "{value:?}: {error:?}");
        }
    }

    #[test]
    fn header_lookup_ignores_case() {
        let response = HttpResponse::new(200, vec![("content-type".into(), "application/json".into())], vec![]);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("x-missing"), None);
    }
}

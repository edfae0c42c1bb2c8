//! Secret values and the credential cache.
//!
//! [`Secret`] redacts itself in `Debug`, `Display` and `Serialize`, so a value that slips into a
//! log line, a run result or an alert shows up as `[REDACTED]`. [`CredentialStore`] loads the
//! synthetic account once per cold start, keeps it for a TTL across warm invocations, and can be
//! told to refresh when the target rejects the account, so a rotation heals itself.

use crate::error::CheckError;
use crate::text::{one_line, truncate};
use async_trait::async_trait;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The only way to the value: grep for `expose` to audit every use.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// The synthetic account, as stored in the Secrets Manager SecretString: a JSON object whose
/// string fields a journey names as `{{secret.NAME}}` (`email` and `password`, an API key, a
/// client id and secret, a test-mode card token...). Fields of other types are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    fields: BTreeMap<String, Secret<String>>,
    /// Every form of every value the [`Scrubber`] cuts, worked out once per secret read rather
    /// than once per run.
    forms: Vec<Secret<String>>,
}

impl Credentials {
    /// Parses the SecretString. Errors name the secret, never a value: serde's own messages can
    /// quote the offending value, so they are not passed on.
    pub fn parse(secret_id: &str, raw: &Secret<String>) -> Result<Self, CheckError> {
        let invalid = |what: &str| {
            CheckError::Misconfigured(format!(
                "secret {secret_id} {what}; expected a JSON object of string fields, e.g. {{\"email\": ..., \"password\": ...}}"
            ))
        };
        let json: serde_json::Value = serde_json::from_str(raw.expose()).map_err(|_| invalid("is not valid JSON"))?;
        let serde_json::Value::Object(object) = json else {
            return Err(invalid("is not a JSON object"));
        };
        let fields = object
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(text) => Some((name, Secret::new(text))),
                _ => None,
            })
            .collect::<BTreeMap<_, _>>();
        let forms = fields.values().flat_map(|value| Scrubber::forms_of(value.expose())).map(Secret::new).collect();
        Ok(Credentials { fields, forms })
    }

    pub fn field(&self, name: &str) -> Option<&Secret<String>> {
        self.fields.get(name)
    }

    /// Every non-empty value.
    pub fn values(&self) -> impl Iterator<Item = &Secret<String>> {
        self.fields.values().filter(|v| !v.expose().is_empty())
    }

    /// Every form of every value, as [`Scrubber::add`] would learn them: for
    /// [`Scrubber::add_forms`].
    pub fn scrub_forms(&self) -> &[Secret<String>] {
        &self.forms
    }
}

/// The one place text that leaves the monitor passes through on its way out: error messages,
/// excerpts of a body a hostile or buggy target echoed our request into, the run's result and
/// alert. It knows every secret value, login capture, cookie and credential sent, and each in
/// the encodings this engine itself puts on the wire, so an echo of the request is cut out in
/// the form it was sent:
/// - as is, and JSON-escaped (a JSON body; also with non-ASCII as `\uXXXX`, as many servers
///   echo it);
/// - percent-encoded as a URL segment or query value, and form-encoded (a form body);
/// - for HTTP basic credentials, the base64 of `user:password` (an echoed `Authorization`).
///
/// Every match of every form is cut, overlapping ones as one span, so a value that contains
/// another is never left half-cut (the order the forms were learned in does not matter).
/// Whatever any scrubber learns, the process learns too ([`Scrubber::process_scrub`]), for the
/// text that leaves it outside a run's result: log lines, panics, the Lambda's error, the CLI. Text is only ever shortened after it was scrubbed whole
/// ([`Scrubber::cut`]): cutting first would leave a secret's head that no longer matches.
///
/// A value shorter than [`Scrubber::MIN_CHARS`] characters is not scrubbed: it would match
/// everywhere (a captured `"7"` would garble every number), so such values are documented as
/// unscrubbable rather than silently cut out of unrelated text.
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    /// Every form of every known value.
    forms: Vec<Secret<String>>,
}

/// What the runs of this process learned, for [`Scrubber::process_scrub`].
static PROCESS: std::sync::LazyLock<std::sync::RwLock<Learned>> =
    std::sync::LazyLock::new(|| std::sync::RwLock::new(Learned::with_bound(PROCESS_FORMS)));

/// The most forms the process keeps: a warm function learns a fresh token every run, and only
/// recent ones can still be echoed; the account's own values are learned again every run.
const PROCESS_FORMS: usize = 1024;

impl Scrubber {
    /// Values shorter than this (in characters) are too short to scrub safely.
    pub const MIN_CHARS: usize = 4;

    /// Scrubs `value` from now on, in every encoding the engine produces of it.
    pub fn add(&mut self, value: &Secret<String>) {
        for form in Self::forms_of(value.expose()) {
            self.add_form(form);
        }
    }

    /// Scrubs these forms from now on, as [`Scrubber::add`] worked them out (a secret's, once).
    pub fn add_forms(&mut self, forms: &[Secret<String>]) {
        for form in forms {
            self.add_form(form.expose().clone());
        }
    }

    /// Every encoding the engine produces of `value`; none when it is too short to scrub.
    fn forms_of(value: &str) -> Vec<String> {
        if value.chars().count() < Self::MIN_CHARS {
            return Vec::new();
        }
        let json = serde_json::to_string(value).unwrap_or_default();
        // Exactly the enclosing quotes: a value ending in `"` ends in `\"` once escaped.
        let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default();
        vec![
            value.to_string(),
            json.to_string(),
            ascii_json(json),
            crate::journey::template::encode_segment(value),
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        ]
    }

    pub fn add_all<'a>(&mut self, values: impl IntoIterator<Item = &'a Secret<String>>) {
        for value in values {
            self.add(value);
        }
    }

    /// HTTP basic credentials: each part, and the base64 of `user:password` that the
    /// `Authorization` header carries.
    pub fn add_basic(&mut self, username: &Secret<String>, password: &Secret<String>) {
        self.add_all([username, password]);
        let pair = format!("{}:{}", username.expose(), password.expose());
        if pair.chars().count() >= Self::MIN_CHARS {
            // Standard base64 with padding (RFC 4648 §4), as the header carries it.
            self.add_form(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair.as_bytes()));
        }
    }

    fn add_form(&mut self, form: String) {
        if form.is_empty() || self.forms.iter().any(|known| *known.expose() == form) {
            return;
        }
        remember(&form);
        self.forms.push(Secret::new(form));
    }

    /// `text` scrubbed of every value any run of this process learned recently: for log lines,
    /// panic messages, the Lambda's error and the CLI's output, which no single run owns.
    pub fn process_scrub(text: &str) -> String {
        scrubbed(PROCESS.read().unwrap_or_else(std::sync::PoisonError::into_inner).forms(), text)
    }

    /// `text` with every occurrence of every known form replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        scrubbed(self.forms.iter().map(|form| form.expose().as_str()), text)
    }

    /// `text` scrubbed, on one line, then cut to `max_chars`: the only way text that may hold a
    /// secret is shortened.
    pub fn cut(&self, text: &str, max_chars: usize) -> String {
        truncate(&one_line(&self.scrub(text)), max_chars)
    }
}

/// `text` with every occurrence of each of `forms` replaced by [`REDACTED`].
fn scrubbed<'a>(forms: impl Iterator<Item = &'a str>, text: &str) -> String {
    let mut spans = Vec::new();
    for form in forms {
        let mut from = 0;
        while let Some(at) = text[from..].find(form) {
            let start = from + at;
            spans.push((start, start + form.len()));
            // Overlapping occurrences too: the next search starts one character on.
            from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut written = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end)) = spans.next() {
        while let Some((_, next_end)) = spans.next_if(|(next, _)| *next <= end) {
            end = end.max(next_end);
        }
        out.push_str(&text[written..start]);
        out.push_str(REDACTED);
        written = end;
    }
    out.push_str(&text[written..]);
    out
}

/// Adds `form` to what the process knows, as its newest entry.
fn remember(form: &str) {
    PROCESS.write().unwrap_or_else(std::sync::PoisonError::into_inner).learn(form);
}

/// The most recently learned distinct forms, at most `bound` of them. Every run learns the
/// account's values again and a fresh token or two, so learning a form costs the same however
/// many are known: no pass over them, no shifting them along.
struct Learned {
    bound: usize,
    /// Each form known, with the tick it was last learned at.
    known: HashMap<Arc<str>, u64>,
    /// Forms in the order they were learned, each with the tick of that learning. An entry
    /// whose form was learned again since is stale: it is skipped when its turn to be forgotten
    /// comes, and the stale ones are dropped whenever the queue reaches twice the bound, so
    /// dropping them costs a constant share of each learning.
    order: VecDeque<(u64, Arc<str>)>,
    tick: u64,
}

impl Learned {
    fn with_bound(bound: usize) -> Self {
        Learned { bound, known: HashMap::new(), order: VecDeque::new(), tick: 0 }
    }

    /// Makes `form` the newest, forgetting the least recently learned beyond the bound.
    fn learn(&mut self, form: &str) {
        self.tick += 1;
        let form: Arc<str> = match self.known.get_key_value(form) {
            Some((known, _)) => known.clone(),
            None => Arc::from(form),
        };
        self.known.insert(form.clone(), self.tick);
        self.order.push_back((self.tick, form));
        while self.known.len() > self.bound {
            let Some((tick, oldest)) = self.order.pop_front() else { break };
            if self.known.get(&oldest) == Some(&tick) {
                self.known.remove(&oldest);
            }
        }
        if self.order.len() > 2 * self.bound.max(1) {
            let known = &self.known;
            self.order.retain(|(tick, form)| known.get(form) == Some(tick));
        }
    }

    fn forms(&self) -> impl Iterator<Item = &str> {
        self.known.keys().map(|form| &**form)
    }
}

/// JSON-escaped text with every non-ASCII character as `\uXXXX` (a surrogate pair beyond the
/// BMP), lower-case hex, as `ensure_ascii` JSON encoders write it.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Port: where secret strings come from (Secrets Manager in Lambda, a file for the CLI, memory in tests).
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret_string(&self, secret_id: &str) -> Result<Secret<String>, CheckError>;
}

struct Cached {
    credentials: Arc<Credentials>,
    loaded_at: Instant,
}

/// Caches the synthetic account across warm invocations.
pub struct CredentialStore {
    source: Arc<dyn SecretSource>,
    secret_id: String,
    ttl: Duration,
    cached: Mutex<Option<Cached>>,
}

impl CredentialStore {
    pub fn new(source: Arc<dyn SecretSource>, secret_id: impl Into<String>, ttl: Duration) -> Self {
        CredentialStore { source, secret_id: secret_id.into(), ttl, cached: Mutex::new(None) }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The cached account, loading it when absent or older than the TTL.
    pub async fn get(&self) -> Result<Arc<Credentials>, CheckError> {
        let mut cached = self.cached.lock().await;
        if let Some(entry) = cached.as_ref().filter(|c| c.loaded_at.elapsed() < self.ttl) {
            return Ok(entry.credentials.clone());
        }
        let credentials = self.load().await?;
        *cached = Some(Cached { credentials: credentials.clone(), loaded_at: Instant::now() });
        Ok(credentials)
    }

    /// Reloads from the source regardless of the TTL. Returns the account and whether it changed,
    /// so a caller only retries a rejected login when there is something new to try.
    pub async fn refresh(&self) -> Result<(Arc<Credentials>, bool), CheckError> {
        let mut cached = self.cached.lock().await;
        let fresh = self.load().await?;
        let changed = cached.as_ref().is_none_or(|c| c.credentials != fresh);
        *cached = Some(Cached { credentials: fresh.clone(), loaded_at: Instant::now() });
        Ok((fresh, changed))
    }

    async fn load(&self) -> Result<Arc<Credentials>, CheckError> {
        let raw = self.source.secret_string(&self.secret_id).await?;
        Ok(Arc::new(Credentials::parse(&self.secret_id, &raw)?))
    }
}

/// In-memory [`SecretSource`] for unit tests: values can be rotated and reads counted.
#[derive(Default)]
pub struct InMemorySecrets {
    values: std::sync::Mutex<std::collections::HashMap<String, String>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl InMemorySecrets {
    pub fn with(secret_id: &str, value: &str) -> Self {
        let store = InMemorySecrets::default();
        store.put(secret_id, value);
        store
    }

    pub fn put(&self, secret_id: &str, value: &str) {
        if let Ok(mut values) = self.values.lock() {
            values.insert(secret_id.to_string(), value.to_string());
        }
    }

    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretSource for InMemorySecrets {
    async fn secret_string(&self, secret_id: &str) -> Result<Secret<String>, CheckError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let values = self.values.lock().map_err(|_| CheckError::SecretUnavailable {
            secret_id: secret_id.to_string(),
            reason: "in-memory store poisoned".into(),
        })?;
        values.get(secret_id).map(|v| Secret::new(v.clone())).ok_or_else(|| CheckError::SecretUnavailable {
            secret_id: secret_id.to_string(),
            reason: "ResourceNotFoundException".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ACCOUNT: &str = r#"{"email":"mon@example.com","password":"hunter2-secret","payment_token":"tok_test_visa"}"#;

    #[test]
    fn secrets_redact_in_debug_display_and_json() {
        let creds = Credentials::parse("synthetic/account", &Secret::new(ACCOUNT.into())).unwrap();
        let password = creds.field("password").unwrap();
        let debug = format!("{creds:?} {password}");
        let json = serde_json::to_string(password).unwrap();
        for text in [&debug, &json] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("mon@example.com"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }

    #[test]
    fn any_string_field_is_a_credential() {
        let raw = r#"{"client_id":"ci","client_secret":"cs-1","nested":{"x":1},"port":5}"#;
        let creds = Credentials::parse("s", &Secret::new(raw.into())).unwrap();
        assert_eq!(creds.field("client_secret").map(|v| v.expose().as_str()), Some("cs-1"));
        assert!(creds.field("port").is_none() && creds.field("email").is_none());
        assert_eq!(creds.values().count(), 2);
    }

    #[test]
    fn scrub_removes_every_value_longest_first() {
        let creds = Credentials::parse("s", &Secret::new(ACCOUNT.into())).unwrap();
        let mut scrubber = Scrubber::default();
        scrubber.add_all(creds.values());
        scrubber.add(&Secret::new("hunter2".into()));
        let echoed = r#"{"error":"bad login for mon@example.com with hunter2-secret and tok_test_visa"}"#;
        let scrubbed = scrubber.scrub(echoed);
        assert!(!scrubbed.contains("hunter2") && !scrubbed.contains("mon@") && !scrubbed.contains("tok_test"));
        assert!(!scrubbed.contains("-secret"), "the longer value is cut whole: {scrubbed}");
    }

    #[test]
    fn every_encoding_the_engine_produces_of_a_value_is_scrubbed() {
        // GIVEN a password holding every character the encodings treat specially
        let password = "\"AbC+dEf/gh= \"q\\é&%~\"";
        let mut scrubber = Scrubber::default();
        scrubber.add(&Secret::new(password.to_string()));
        let json = serde_json::to_string(password).unwrap();
        let forms = [
            ("raw", password.to_string()),
            ("JSON-escaped", json[1..json.len() - 1].to_string()),
            ("percent-encoded", crate::journey::template::encode_segment(password)),
            ("form-encoded", url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()),
        ];
        for (name, form) in forms {
            // WHEN a text quotes it in that encoding
            let scrubbed = scrubber.scrub(&format!("echo: <{form}>"));
            // THEN only the marker is left
            assert_eq!(scrubbed, format!("echo: <{REDACTED}>"), "{name}: {form}");
        }
    }

    #[test]
    fn basic_credentials_are_scrubbed_as_the_authorization_header_carries_them() {
        let mut scrubber = Scrubber::default();
        scrubber.add_basic(&Secret::new("sk_test_4eC39Hq".into()), &Secret::new(String::new()));
        // base64("sk_test_4eC39Hq:"), the Stripe-style key with an empty password.
        assert_eq!(scrubber.scrub("Basic c2tfdGVzdF80ZUMzOUhxOg=="), format!("Basic {REDACTED}"));
    }

    #[test]
    fn non_ascii_is_also_scrubbed_in_its_ascii_json_escape() {
        let mut scrubber = Scrubber::default();
        scrubber.add(&Secret::new("pässwörd😀".into()));
        let echoed = r#"{"password":"p\u00e4ssw\u00f6rd\ud83d\ude00"}"#;
        assert_eq!(scrubber.scrub(echoed), format!(r#"{{"password":"{REDACTED}"}}"#));
    }

    #[test]
    fn overlapping_values_are_cut_as_one_span_and_nothing_of_either_is_left() {
        let mut scrubber = Scrubber::default();
        scrubber.add_all([&Secret::new("abcd-1234".into()), &Secret::new("1234-wxyz-long".into())]);
        assert_eq!(scrubber.scrub("<abcd-1234-wxyz-long>"), format!("<{REDACTED}>"));
        assert_eq!(scrubber.scrub("aaabcd-1234abcd-1234"), format!("aa{REDACTED}"));
    }

    #[test]
    fn values_too_short_to_scrub_safely_are_left_alone() {
        let mut scrubber = Scrubber::default();
        scrubber.add_all([&Secret::new("7".into()), &Secret::new("abc".into()), &Secret::new("abcd".into())]);
        assert_eq!(scrubber.scrub("7 abc abcd"), format!("7 abc {REDACTED}"));
    }

    #[test]
    fn text_is_cut_only_after_it_was_scrubbed() {
        let session = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let mut scrubber = Scrubber::default();
        scrubber.add(&Secret::new(session.into()));
        let cut = scrubber.cut(&format!("session\n  {session} is not valid"), 20);
        assert_eq!(cut, "session [REDACTED] …");
    }

    #[test]
    fn what_any_scrubber_learns_the_process_scrubs_too_while_it_is_recent() {
        // Values unique to this test: the process scrubber is shared by every test.
        let mut run = Scrubber::default();
        run.add(&Secret::new("process-wide-\"7f1c\"".into()));
        let logged = Scrubber::process_scrub(r#"log: process-wide-\"7f1c\" and process-wide-"7f1c""#);
        assert_eq!(logged, format!("log: {REDACTED} and {REDACTED}"));

        // A process's memory is bounded: the oldest form goes first, and learning a form again
        // makes it the newest.
        let mut process = Learned::with_bound(PROCESS_FORMS);
        for n in 0..PROCESS_FORMS {
            process.learn(&format!("form-{n:04}"));
        }
        process.learn("form-0000");
        process.learn("one more form");
        assert_eq!(process.known.len(), PROCESS_FORMS);
        assert_eq!(
            scrubbed(process.forms(), "form-0000 form-0001 form-0002"),
            format!("{REDACTED} form-0001 {REDACTED}")
        );
    }

    proptest! {
        /// A secret's forms, worked out once when it is read, are exactly what learning each of
        /// its values in a run would learn: the cache can never scrub less.
        #[test]
        fn a_secrets_cached_forms_are_what_learning_its_values_learns(
            values in proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,12}", 0..5),
        ) {
            let raw = serde_json::to_string(&values).unwrap();
            let creds = Credentials::parse("s", &Secret::new(raw)).unwrap();
            let (mut learned, mut cached) = (Scrubber::default(), Scrubber::default());
            learned.add_all(creds.values());
            cached.add_forms(creds.scrub_forms());
            let forms = |scrubber: &Scrubber| {
                scrubber.forms.iter().map(|f| f.expose().clone()).collect::<std::collections::BTreeSet<_>>()
            };
            prop_assert_eq!(forms(&learned), forms(&cached));
        }

        /// The process's memory against the plainest model of it: a list, oldest first, where
        /// learning a form moves it to the end and the front goes beyond the bound. The same
        /// forms are known after any sequence of learning, so nothing recent is ever forgotten
        /// (and nothing is kept beyond the bound).
        #[test]
        fn the_process_forgets_exactly_what_a_list_of_the_most_recent_would(
            bound in 1usize..8,
            learned in proptest::collection::vec(0u8..12, 0..200),
        ) {
            let mut process = Learned::with_bound(bound);
            let mut model: Vec<String> = Vec::new();
            for form in learned.iter().map(|n| format!("form-{n}")) {
                process.learn(&form);
                model.retain(|known| *known != form);
                if model.len() >= bound {
                    model.remove(0);
                }
                model.push(form);
                let mut known: Vec<&str> = process.forms().collect();
                known.sort_unstable();
                let mut expected: Vec<&str> = model.iter().map(String::as_str).collect();
                expected.sort_unstable();
                prop_assert_eq!(known, expected);
                prop_assert!(process.order.len() <= 2 * bound + 1);
            }
        }
    }

    #[test]
    fn malformed_secret_errors_name_the_secret_but_never_the_value() {
        for (raw, expected) in [("not json hunter2", "not valid JSON"), (r#"["hunter2"]"#, "not a JSON object")] {
            let err = Credentials::parse("synthetic/account", &Secret::new(raw.into())).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected) && text.contains("synthetic/account"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert_eq!(err.error_type(), "Misconfigured");
        }
    }

    #[tokio::test]
    async fn store_caches_within_ttl_and_refresh_reports_rotation() {
        let source = Arc::new(InMemorySecrets::with("acct", ACCOUNT));
        let store = CredentialStore::new(source.clone(), "acct", Duration::from_secs(300));

        store.get().await.unwrap();
        store.get().await.unwrap();
        assert_eq!(source.reads(), 1, "warm invocations reuse the cached account");

        let (_, changed) = store.refresh().await.unwrap();
        assert!(!changed, "same value: nothing new to try");

        source.put("acct", r#"{"email":"mon@example.com","password":"rotated"}"#);
        let (fresh, changed) = store.refresh().await.unwrap();
        assert!(changed);
        assert_eq!(fresh.field("password").unwrap().expose(), "rotated");
        assert_eq!(store.get().await.unwrap().field("password").unwrap().expose(), "rotated");
    }

    #[tokio::test]
    async fn store_reloads_after_ttl() {
        let source = Arc::new(InMemorySecrets::with("acct", ACCOUNT));
        let store = CredentialStore::new(source.clone(), "acct", Duration::ZERO);
        store.get().await.unwrap();
        store.get().await.unwrap();
        assert_eq!(source.reads(), 2);
    }

    #[tokio::test]
    async fn missing_secret_is_a_monitor_failure() {
        let store = CredentialStore::new(Arc::new(InMemorySecrets::default()), "nope", Duration::from_secs(1));
        let err = store.get().await.unwrap_err();
        assert_eq!(err.error_type(), "SecretUnavailable");
        assert!(err.to_string().contains("nope"));
    }
}

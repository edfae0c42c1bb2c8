//! Secret values and the credential cache.
//!
//! [`Secret`] redacts itself in `Debug`, `Display` and `Serialize`, so a value that slips into a
//! log line, a run result or an alert shows up as `[REDACTED]`. [`CredentialStore`] loads the
//! synthetic account once per cold start, keeps it for a TTL across warm invocations, and can be
//! told to refresh when the target rejects the account, so a rotation heals itself.

use crate::error::CheckError;
use async_trait::async_trait;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
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
            .collect();
        Ok(Credentials { fields })
    }

    pub fn field(&self, name: &str) -> Option<&Secret<String>> {
        self.fields.get(name)
    }

    /// Every non-empty value, for scrubbing.
    pub fn values(&self) -> impl Iterator<Item = &Secret<String>> {
        self.fields.values().filter(|v| !v.expose().is_empty())
    }
}

/// Cuts known secret values out of text that leaves the monitor (error messages, excerpts of a
/// body a hostile or buggy target echoed our request into). Longer values go first, so a value
/// that contains another is not left half-cut.
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    values: Vec<Secret<String>>,
}

impl Scrubber {
    pub fn add(&mut self, value: &Secret<String>) {
        if value.expose().is_empty() || self.values.contains(value) {
            return;
        }
        self.values.push(value.clone());
        self.values.sort_by_key(|v| std::cmp::Reverse(v.expose().len()));
    }

    pub fn add_all<'a>(&mut self, values: impl IntoIterator<Item = &'a Secret<String>>) {
        for value in values {
            self.add(value);
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in &self.values {
            if out.contains(value.expose().as_str()) {
                out = out.replace(value.expose().as_str(), REDACTED);
            }
        }
        out
    }
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

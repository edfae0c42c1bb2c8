//! The PagerDuty routing key: read once per cold start, only ever held in a [`Secret`].
//!
//! The SecretString is either the key itself or `{"routing_key": "..."}`. A failed read is not
//! cached, so the next invocation tries again. When PagerDuty refuses the key, the handler
//! [`reload`](RoutingKey::reload)s it: a rotated key then heals without waiting for a cold start.

use std::sync::Arc;
use synthetic_checks::CheckError;
use synthetic_checks::secret::{Secret, SecretSource};
use tokio::sync::Mutex;

pub struct RoutingKey {
    source: Arc<dyn SecretSource>,
    secret_id: String,
    cached: Mutex<Option<Arc<Secret<String>>>>,
}

impl RoutingKey {
    pub fn new(source: Arc<dyn SecretSource>, secret_id: impl Into<String>) -> Self {
        RoutingKey { source, secret_id: secret_id.into(), cached: Mutex::new(None) }
    }

    /// The cached key, read on first use.
    pub async fn get(&self) -> Result<Arc<Secret<String>>, CheckError> {
        let mut cached = self.cached.lock().await;
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let key = self.read().await?;
        *cached = Some(key.clone());
        Ok(key)
    }

    /// Reads the secret again and caches what it holds now. A failed read keeps the cached key.
    pub async fn reload(&self) -> Result<Arc<Secret<String>>, CheckError> {
        let mut cached = self.cached.lock().await;
        let key = self.read().await?;
        *cached = Some(key.clone());
        Ok(key)
    }

    async fn read(&self) -> Result<Arc<Secret<String>>, CheckError> {
        let raw = self.source.secret_string(&self.secret_id).await?;
        parse(&self.secret_id, &raw).map(Arc::new)
    }
}

/// Errors name the secret and what is wrong, never the value: serde's messages can quote it.
pub fn parse(secret_id: &str, raw: &Secret<String>) -> Result<Secret<String>, CheckError> {
    let invalid = |what: &str| {
        CheckError::Misconfigured(format!(
            "secret {secret_id} {what}; expected the routing key itself or JSON {{\"routing_key\": \"...\"}}"
        ))
    };
    let text = raw.expose().trim();
    let key = match text.starts_with('{') {
        true => {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|_| invalid("is not valid JSON"))?;
            match json.get("routing_key") {
                Some(serde_json::Value::String(key)) => key.trim().to_string(),
                _ => return Err(invalid("has no string field \"routing_key\"")),
            }
        }
        false => text.to_string(),
    };
    if key.is_empty() {
        return Err(invalid("holds an empty routing key"));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(invalid("holds a routing key with whitespace in it"));
    }
    Ok(Secret::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthetic_checks::secret::InMemorySecrets;

    const KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

    #[test]
    fn a_plain_key_or_a_json_object_is_accepted() {
        for raw in
            [KEY.to_string(), format!(" {KEY}\n"), format!(r#"{{"routing_key": "{KEY}", "note": "prod service"}}"#)]
        {
            let key = parse("pd", &Secret::new(raw)).unwrap();
            assert_eq!(key.expose(), KEY);
        }
    }

    #[test]
    fn a_malformed_secret_names_the_problem_but_never_the_value() {
        let cases = [
            (format!(r#"{{"routing_key": "{KEY}""#), "not valid JSON"),
            (format!(r#"{{"integration_key": "{KEY}"}}"#), "\"routing_key\""),
            (r#"{"routing_key": 42}"#.to_string(), "\"routing_key\""),
            (r#"{"routing_key": " "}"#.to_string(), "empty"),
            (format!("{KEY} {KEY}"), "whitespace"),
            (String::new(), "empty"),
        ];
        for (raw, expected) in cases {
            let error = parse("pagerduty/routing-key", &Secret::new(raw.clone())).unwrap_err();
            let text = error.to_string();
            assert!(text.contains(expected) && text.contains("pagerduty/routing-key"), "{text}");
            assert!(!text.contains(KEY) && !text.contains("42"), "{text}");
            assert_eq!(error.error_type(), "Misconfigured");
        }
    }

    #[tokio::test]
    async fn the_key_is_read_once_and_a_failed_read_is_retried() {
        let source = Arc::new(InMemorySecrets::default());
        let key = RoutingKey::new(source.clone(), "pd");
        let error = key.get().await.unwrap_err();
        assert_eq!(error.error_type(), "SecretUnavailable");

        source.put("pd", KEY);
        assert_eq!(key.get().await.unwrap().expose(), KEY);
        key.get().await.unwrap();
        assert_eq!(source.reads(), 2, "one failed read, then one for the cold start");
    }

    #[tokio::test]
    async fn a_reload_picks_up_a_rotated_key_and_a_failed_one_keeps_the_cached_key() {
        let source = Arc::new(InMemorySecrets::with("pd", "old-key"));
        let key = RoutingKey::new(source.clone(), "pd");
        assert_eq!(key.get().await.unwrap().expose(), "old-key");

        source.put("pd", "new-key");
        assert_eq!(key.get().await.unwrap().expose(), "old-key", "cached until reloaded");
        assert_eq!(key.reload().await.unwrap().expose(), "new-key");
        assert_eq!(key.get().await.unwrap().expose(), "new-key");

        source.put("pd", "");
        assert_eq!(key.reload().await.unwrap_err().error_type(), "Misconfigured");
        assert_eq!(key.get().await.unwrap().expose(), "new-key");
        assert_eq!(source.reads(), 3);
    }
}

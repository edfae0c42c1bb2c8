//! The PagerDuty Events API v2 port, its HTTP adapter and an in-memory fake for unit tests.
//!
//! The adapter classifies answers by PagerDuty's retry contract and nothing more: 2xx is done,
//! 400 is a rejection no retry can fix, and 429, 5xx and network errors are worth retrying; the
//! retry loop is [`publish_with_retries`](synthetic_checks::alert::publish_with_retries). Any other
//! status (a 404 from a wrong `PAGERDUTY_EVENTS_URL`, a redirect) is treated as retryable too, so
//! it ends as a failed invocation that keeps the event rather than as a silent drop. A 400 whose
//! errors name the routing key is told apart ([`refuses_routing_key`]): a rotated key can be
//! re-read and the event resent, which no other 400 allows.
//!
//! It sends through the check library's [`HttpTarget`], so timeouts, the body cap and the
//! transport error classification are the ones the checks use.

use crate::config::ForwarderConfig;
use crate::event::Event;
use async_trait::async_trait;
use lambda_runtime::tracing::{self, instrument};
use serde::Deserialize;

use std::sync::Arc;
use std::time::Duration;
use synthetic_checks::CheckError;
use synthetic_checks::alert::{PublishError, Recording};
use synthetic_checks::http::{Body, HttpRequest, HttpResponse, HttpSettings, HttpTarget, Method, ReqwestTarget};
use synthetic_checks::secret::{REDACTED, Secret};
use synthetic_checks::text::{one_line, truncate};
use url::Url;

/// PagerDuty's answers are small; anything longer is cut before it reaches a log line.
const ANSWER_MAX_CHARS: usize = 512;
/// How the reason of a 400 that blames the routing key begins. The port's error is the checks'
/// `PublishError`, which has no room for more, so the reason carries it.
const ROUTING_KEY_REFUSED: &str = "routing key refused";

/// Port: where events go (PagerDuty over HTTPS in Lambda, memory in unit tests).
#[async_trait]
pub trait EventsApi: Send + Sync {
    /// Sends one event. `Permanent` means PagerDuty rejected it (HTTP 400); a retry cannot help.
    async fn enqueue(&self, routing_key: &Secret<String>, event: &Event) -> Result<(), PublishError>;
}

pub struct HttpEventsApi {
    http: Arc<dyn HttpTarget>,
    enqueue_url: Url,
    timeout: Duration,
}

impl HttpEventsApi {
    pub fn new(http: Arc<dyn HttpTarget>, enqueue_url: Url, timeout: Duration) -> Self {
        HttpEventsApi { http, enqueue_url, timeout }
    }

    /// The production adapter. The adapter never follows redirects: a redirected POST would
    /// arrive as a GET, or carry the routing key to another host.
    pub fn reqwest(config: &ForwarderConfig) -> Result<Self, CheckError> {
        let http = ReqwestTarget::new(&HttpSettings {
            connect_timeout: config.request_timeout.min(Duration::from_secs(3)),
            max_body_bytes: 64 * 1024,
            ..HttpSettings::default()
        })?;
        Ok(HttpEventsApi::new(Arc::new(http), config.enqueue_url.clone(), config.request_timeout))
    }
}

#[async_trait]
impl EventsApi for HttpEventsApi {
    #[instrument(skip(self, routing_key, event), fields(dedup_key = %event.dedup_key, event_action = ?event.event_action, status))]
    async fn enqueue(&self, routing_key: &Secret<String>, event: &Event) -> Result<(), PublishError> {
        let body = event
            .to_body(routing_key)
            .map_err(|e| PublishError::Permanent(format!("event does not serialize: {e}")))?;
        let request = HttpRequest {
            method: Method::Post,
            url: self.enqueue_url.clone(),
            headers: Vec::new(),
            auth: None,
            body: Some(Body { content_type: "application/json".into(), bytes: body }),
            timeout: self.timeout,
        };
        let response = self.http.send(&request).await.map_err(|e| PublishError::Retryable(e.to_string()))?;
        tracing::Span::current().record("status", response.status);
        classify(&response, routing_key)
    }
}

/// Whether PagerDuty refused the event for its routing key (unknown, or malformed), not for the
/// event itself.
pub fn refuses_routing_key(error: &PublishError) -> bool {
    matches!(error, PublishError::Permanent(reason) if reason.starts_with(ROUTING_KEY_REFUSED))
}

/// The rejection [`HttpEventsApi`] reports when PagerDuty's answer blames the routing key.
pub fn routing_key_refused(answer: &str) -> PublishError {
    PublishError::Permanent(format!("{ROUTING_KEY_REFUSED}: {answer}"))
}

/// PagerDuty's error body.
#[derive(Deserialize)]
struct Answer {
    status: Option<String>,
    message: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

impl Answer {
    /// PagerDuty names the key as `routing_key` ("Length of 'routing_key' is incorrect") or in
    /// words ("Invalid routing key").
    fn blames_routing_key(&self) -> bool {
        self.errors.iter().chain(&self.message).any(|text| {
            let text = text.to_ascii_lowercase();
            text.contains("routing key") || text.contains("routing_key")
        })
    }
}

fn classify(response: &HttpResponse, routing_key: &Secret<String>) -> Result<(), PublishError> {
    let parsed = serde_json::from_slice::<Answer>(&response.body).ok();
    let answer = || format!("HTTP {}: {}", response.status, describe(parsed.as_ref(), response, routing_key));
    match response.status {
        200..=299 => Ok(()),
        400 if parsed.as_ref().is_some_and(Answer::blames_routing_key) => Err(routing_key_refused(&answer())),
        400 => Err(PublishError::Permanent(answer())),
        _ => Err(PublishError::Retryable(answer())),
    }
}

/// PagerDuty's `{"status", "message", "errors"}` on one line, or an excerpt of another body.
/// An answer that echoes the routing key has it redacted.
fn describe(parsed: Option<&Answer>, response: &HttpResponse, routing_key: &Secret<String>) -> String {
    let text = match parsed {
        Some(answer) => {
            let mut text =
                [&answer.status, &answer.message].into_iter().flatten().cloned().collect::<Vec<_>>().join(": ");
            if !answer.errors.is_empty() {
                text.push_str(&format!("; errors: {:?}", answer.errors));
            }
            text
        }
        None => String::from_utf8_lossy(&response.body).into_owned(),
    };
    let text = match routing_key.expose().as_str() {
        "" => text,
        key => text.replace(key, REDACTED),
    };
    match one_line(&text) {
        text if text.is_empty() => "empty body".into(),
        text => truncate(&text, ANSWER_MAX_CHARS),
    }
}

/// In-memory [`EventsApi`] for unit tests: the shared delivery fake, recording events.
pub type RecordingEventsApi = Recording<Event>;

#[async_trait]
impl EventsApi for Recording<Event> {
    async fn enqueue(&self, _routing_key: &Secret<String>, event: &Event) -> Result<(), PublishError> {
        self.deliver(event.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthetic_checks::alert::EventAction;
    use synthetic_checks::http::ScriptedTarget;

    const KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

    fn resolve() -> Event {
        Event {
            event_action: EventAction::Resolve,
            dedup_key: "synthetic/prod/auth".into(),
            payload: None,
            client: None,
            client_url: None,
            links: Vec::new(),
        }
    }

    async fn send(target: ScriptedTarget) -> (Result<(), PublishError>, Arc<ScriptedTarget>) {
        let target = Arc::new(target);
        let url = Url::parse("https://events.pagerduty.com/v2/enqueue").unwrap();
        let api = HttpEventsApi::new(target.clone(), url, Duration::from_secs(1));
        let result = api.enqueue(&Secret::new(KEY.into()), &resolve()).await;
        (result, target)
    }

    #[tokio::test]
    async fn posts_the_event_with_its_routing_key_to_the_enqueue_url() {
        let (result, target) = send(ScriptedTarget::default().then(202, "{}")).await;
        assert_eq!(result, Ok(()));
        let requests = target.requests();
        assert_eq!(
            format!("{:?}", requests[0]),
            "Post https://events.pagerduty.com/v2/enqueue",
            "a request's Debug never shows its body"
        );
        let body: serde_json::Value =
            serde_json::from_slice(requests[0].body.as_ref().unwrap().bytes.expose()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "synthetic/prod/auth"})
        );
    }

    #[tokio::test]
    async fn answers_are_classified_by_pagerdutys_retry_contract() {
        let rejected = r#"{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing or blank"]}"#;
        let (result, _) = send(ScriptedTarget::default().then(400, rejected)).await;
        assert_eq!(
            result,
            Err(PublishError::Permanent(
                r#"HTTP 400: invalid event: Event object is invalid; errors: ["'payload.summary' is missing or blank"]"#.into()
            ))
        );
        assert!(!refuses_routing_key(result.as_ref().unwrap_err()), "a bad event is not a bad key");
        for status in [429, 500, 502, 503, 404, 301] {
            let (result, _) = send(ScriptedTarget::default().then(status, "<html>busy</html>")).await;
            assert_eq!(result, Err(PublishError::Retryable(format!("HTTP {status}: <html>busy</html>"))));
        }
        let timeout = ScriptedTarget::default().then_after(Duration::from_secs(5), Ok(HttpResponse::with(202, "{}")));
        let (result, _) = send(timeout).await;
        assert!(matches!(result, Err(PublishError::Retryable(r)) if r.contains("no complete response")));
    }

    #[tokio::test]
    async fn a_400_naming_the_routing_key_is_told_apart() {
        let answers = [
            r#"{"status":"invalid event","message":"Event object is invalid","errors":["Invalid routing key"]}"#,
            r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#,
        ];
        for answer in answers {
            let (result, _) = send(ScriptedTarget::default().then(400, answer)).await;
            let error = result.unwrap_err();
            assert!(refuses_routing_key(&error), "{error:?}");
            let PublishError::Permanent(reason) = error else { panic!("a refused key is a rejection") };
            assert!(
                reason.starts_with("routing key refused: HTTP 400: invalid event: Event object is invalid; errors: ["),
                "{reason}"
            );
        }
        let (result, _) = send(ScriptedTarget::default().then(500, answers[0])).await;
        assert!(!refuses_routing_key(&result.unwrap_err()), "a 5xx is retried, whatever it says");
        let (result, _) = send(ScriptedTarget::default().then(400, "<html>Invalid routing key</html>")).await;
        assert!(!refuses_routing_key(&result.unwrap_err()), "only PagerDuty's own answer is read");
    }

    #[tokio::test]
    async fn an_answer_echoing_the_routing_key_is_redacted() {
        let echo = format!(r#"{{"status":"invalid event","message":"bad","errors":["unknown routing key {KEY}"]}}"#);
        let (result, _) = send(ScriptedTarget::default().then(400, &echo)).await;
        let Err(PublishError::Permanent(reason)) = result else { panic!("{result:?}") };
        assert!(!reason.contains(KEY) && reason.contains(REDACTED), "{reason}");
    }
}

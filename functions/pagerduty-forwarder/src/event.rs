//! The Events API v2 event for one alert message, within PagerDuty's limits.
//!
//! A trigger carries what on-call needs to act: a one-line summary, where (`source`, `component`,
//! `group`), why (`class`, the failing steps in `custom_details`) and where to look (runbook and
//! log links). A resolve carries only what PagerDuty reads from one: the action and the dedup key.
//! The routing key is not part of [`Event`]; it joins only in [`Event::to_body`], so an event
//! can be logged or recorded without it.

use crate::config::ForwarderConfig;
use serde::Serialize;
use serde_json::{Map, Value, json};
use synthetic_checks::alert::{AlertMessage, EventAction, SUMMARY_MAX_CHARS, Severity};
use synthetic_checks::error::Cause;
use synthetic_checks::result::Outcome;
use synthetic_checks::secret::Secret;
use synthetic_checks::text::{one_line, truncate};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

pub const DEDUP_KEY_MAX_CHARS: usize = 255;
/// PagerDuty refuses events of 512 KB or more; 1 KiB of that is kept for the routing key.
pub const EVENT_MAX_BYTES: usize = 512 * 1024 - 1024;
/// `source`, `component`, `group` and `class` are labels: capped, so only details can grow.
const LABEL_MAX_CHARS: usize = 255;
/// Longer log links are dropped rather than sent broken.
const LINK_MAX_CHARS: usize = 2048;
/// The `custom_details` entry naming what was dropped to fit [`EVENT_MAX_BYTES`].
pub const DROPPED_DETAILS: &str = "dropped_details";
pub const CLIENT: &str = "synthetic-lambda";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub event_action: EventAction,
    pub dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payload {
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub component: String,
    pub group: String,
    pub class: String,
    pub custom_details: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub href: String,
    pub text: String,
}

/// The request body: the routing key beside the event's fields.
#[derive(Serialize)]
struct Body<'a> {
    routing_key: &'a str,
    #[serde(flatten)]
    event: &'a Event,
}

impl Event {
    pub fn from_alert(alert: &AlertMessage, config: &ForwarderConfig) -> Self {
        let dedup_key = bounded_dedup_key(&alert.dedup_key);
        if alert.event_action == EventAction::Resolve {
            // PagerDuty ignores a resolve's payload, client and links; sending none keeps the
            // resolve valid whatever the message held.
            return Event {
                event_action: EventAction::Resolve,
                dedup_key,
                payload: None,
                client: None,
                client_url: None,
                links: Vec::new(),
            };
        }
        let logs = logs_url(alert);
        let mut links: Vec<Link> =
            config.runbook_url.iter().map(|url| Link { href: url.to_string(), text: "Runbook".into() }).collect();
        if let Some(href) = &logs {
            let function = alert.function_name.as_deref().unwrap_or(&alert.check);
            links.push(Link { href: href.clone(), text: label(&format!("CloudWatch logs of {function}")) });
        }
        // The id comes from a message: only a W3C trace id is put into a URL.
        let trace = alert.trace_id.as_deref().filter(|id| synthetic_checks::trace::is_trace_id(id));
        if let (Some(url), Some(trace_id)) = (&config.trace_url, trace) {
            links.push(Link { href: url.for_trace(trace_id), text: format!("Trace {trace_id}") });
        }
        let mut event = Event {
            event_action: alert.event_action,
            dedup_key,
            payload: Some(Payload {
                summary: summary(alert),
                source: source(&alert.target),
                severity: alert.severity,
                timestamp: run_time(alert).map(|_| alert.timestamp.clone()),
                component: label(&alert.check),
                group: label(&alert.env),
                class: label(alert.cause.map_or(alert.status.as_str(), Cause::as_str)),
                custom_details: custom_details(alert),
            }),
            client: Some(CLIENT.into()),
            // Without a configured dashboard, the check's logs are the best "view in client".
            client_url: config.client_url.as_ref().map(Url::to_string).or(logs),
            links,
        };
        event.fit();
        event
    }

    /// Adds entries to a trigger's `custom_details` (the incident policy's reasons), within the
    /// size limit. A resolve has no details to add to.
    pub fn with_details(mut self, details: &Map<String, Value>) -> Self {
        if let Some(payload) = self.payload.as_mut().filter(|_| !details.is_empty()) {
            payload.custom_details.extend(details.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.fit();
        }
        self
    }

    /// The JSON PagerDuty receives. The only place the routing key is exposed.
    pub fn to_body(&self, routing_key: &Secret<String>) -> serde_json::Result<Secret<Vec<u8>>> {
        let body = Body { routing_key: routing_key.expose(), event: self };
        serde_json::to_vec(&body).map(Secret::new)
    }

    /// Drops the largest custom details until the event fits, naming what was dropped.
    fn fit(&mut self) {
        let mut dropped = Vec::new();
        while json_len(self) > EVENT_MAX_BYTES {
            let Some(details) = self.payload.as_mut().map(|p| &mut p.custom_details) else {
                return;
            };
            let largest = details
                .iter()
                .filter(|(key, _)| *key != DROPPED_DETAILS)
                .max_by_key(|(_, value)| json_len(value))
                .map(|(key, _)| key.clone());
            let Some(key) = largest else { return };
            details.remove(&key);
            dropped.push(key);
            let note = format!(
                "{} detail(s) dropped to stay under PagerDuty's 512 KB limit: {}",
                dropped.len(),
                dropped.join(", ")
            );
            details.insert(DROPPED_DETAILS.into(), json!(truncate(&note, 1024)));
        }
    }
}

/// When the run behind the alert happened, if its timestamp is RFC 3339 as the checks write it.
pub fn run_time(alert: &AlertMessage) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(&alert.timestamp, &Rfc3339).ok()
}

fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    // What cannot be measured cannot be shown to fit.
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn label(text: &str) -> String {
    truncate(&one_line(text), LABEL_MAX_CHARS)
}

fn summary(alert: &AlertMessage) -> String {
    let text = match one_line(&alert.summary) {
        text if text.is_empty() => format!("[{}] {} {}", alert.env, alert.check, alert.status.as_str().to_uppercase()),
        text => text,
    };
    truncate(&text, SUMMARY_MAX_CHARS)
}

/// The target's host (and port, when not the scheme's default): what on-call recognises.
fn source(target: &str) -> String {
    let host = Url::parse(target).ok().and_then(|url| {
        let host = url.host_str()?.to_string();
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match host.unwrap_or_else(|| one_line(target)) {
        host if host.is_empty() => "unknown target".into(),
        host => label(&host),
    }
}

/// Run context, then one entry per step that did not pass, so PagerDuty shows each as a row and
/// [`Event::fit`] can drop the largest one alone.
fn custom_details(alert: &AlertMessage) -> Map<String, Value> {
    let mut details = Map::new();
    details.insert("status".into(), json!(alert.status));
    details.insert("target".into(), json!(alert.target));
    details.insert("run_id".into(), json!(alert.run_id));
    let passed: Vec<&str> =
        alert.steps.iter().filter(|s| s.outcome == Outcome::Passed).map(|s| s.name.as_str()).collect();
    details.insert("passed_steps".into(), json!(passed));
    for (index, step) in alert.steps.iter().enumerate() {
        if step.outcome == Outcome::Passed {
            continue;
        }
        details.insert(
            format!("step {} {}", index + 1, step.name),
            json!({
                "outcome": step.outcome,
                "http_status": step.status,
                "duration_ms": step.duration_ms,
                "attempts": step.attempts,
                "cause": step.cause,
                "error": step.error,
            }),
        );
    }
    details
}

/// At most 255 chars. A cut key must stay stable (its resolve must match its trigger) and
/// distinct from other long keys sharing its head, so a hash of the whole key replaces the tail.
fn bounded_dedup_key(key: &str) -> String {
    if key.chars().count() <= DEDUP_KEY_MAX_CHARS {
        return key.to_string();
    }
    let hash = format!("#{:016x}", fnv1a(key.as_bytes()));
    let head: String = key.chars().take(DEDUP_KEY_MAX_CHARS - hash.len()).collect();
    head + &hash
}

/// FNV-1a: fixed by its spec, unlike `DefaultHasher`, so keys survive a new toolchain.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The CloudWatch console page of the check's log stream (or group), when the alert says where.
fn logs_url(alert: &AlertMessage) -> Option<String> {
    let region = alert
        .region
        .as_deref()
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))?;
    let group = alert.log_group.as_deref().filter(|g| !g.is_empty())?;
    let mut url = format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}",
        console_escape(group)
    );
    if let Some(stream) = alert.log_stream.as_deref().filter(|s| !s.is_empty()) {
        url.push_str("/log-events/");
        url.push_str(&console_escape(stream));
    }
    (url.len() <= LINK_MAX_CHARS).then_some(url)
}

/// The console reads its fragment percent-encoded twice, with `$` for the outer `%`: `/` is
/// `%2F`, then `$252F`.
fn console_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(byte).to_string(),
            _ => format!("$25{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use synthetic_checks::result::StepResult;

    fn config() -> ForwarderConfig {
        ForwarderConfig::from_lookup(&|name| match name {
            "PAGERDUTY_SECRET_ID" => Some("pd".into()),
            "RUNBOOK_URL" => Some("https://wiki.example.com/runbooks/synthetic".into()),
            _ => None,
        })
        .unwrap()
    }

    fn step(name: &str, outcome: Outcome, error: Option<&str>) -> StepResult {
        StepResult {
            name: name.into(),
            outcome,
            duration_ms: 812,
            status: Some(500),
            attempts: 2,
            cause: error.map(|_| Cause::HttpStatus),
            error: error.map(str::to_string),
        }
    }

    fn trigger() -> AlertMessage {
        AlertMessage {
            event_action: EventAction::Trigger,
            dedup_key: "synthetic/prod/payment".into(),
            check: "payment".into(),
            env: "prod".into(),
            status: Outcome::Failed,
            cause: Some(Cause::HttpStatus),
            severity: Severity::Critical,
            summary: "[prod] payment FAILED at step payment_create (http_status): HTTP 500".into(),
            target: "https://shop.example.com:8443/api".into(),
            run_id: "run-7".into(),
            timestamp: "2026-11-21T10:00:00Z".into(),
            steps: vec![
                step("login", Outcome::Passed, None),
                step("payment_create", Outcome::Failed, Some("HTTP 500, expected 200")),
            ],
            function_name: Some("synthetic-check-payment".into()),
            log_group: Some("/aws/lambda/synthetic-check-payment".into()),
            log_stream: Some("2026/11/21/[$LATEST]0123abcd".into()),
            region: Some("eu-west-1".into()),
            account: None,
            trace_id: None,
        }
    }

    #[test]
    fn a_trigger_carries_every_field_on_call_needs() {
        let event = Event::from_alert(&trigger(), &config());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event_action"], "trigger");
        assert_eq!(json["dedup_key"], "synthetic/prod/payment");
        let payload = &json["payload"];
        assert_eq!(payload["source"], "shop.example.com:8443");
        assert_eq!(payload["severity"], "critical");
        assert_eq!(payload["component"], "payment");
        assert_eq!(payload["group"], "prod");
        assert_eq!(payload["class"], "http_status");
        assert_eq!(payload["timestamp"], "2026-11-21T10:00:00Z");
        let details = &payload["custom_details"];
        assert_eq!(details["passed_steps"], json!(["login"]));
        assert_eq!(
            details["step 2 payment_create"],
            json!({"outcome": "failed", "http_status": 500, "duration_ms": 812, "attempts": 2,
                   "cause": "http_status", "error": "HTTP 500, expected 200"})
        );
        assert_eq!(json["client"], CLIENT);
        let logs = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fsynthetic-check-payment/log-events/2026$252F11$252F21$252F$255B$2524LATEST$255D0123abcd";
        assert_eq!(
            json["links"],
            json!([
                {"href": "https://wiki.example.com/runbooks/synthetic", "text": "Runbook"},
                {"href": logs, "text": "CloudWatch logs of synthetic-check-payment"},
            ])
        );
        assert_eq!(json["client_url"], logs, "logs stand in for a client URL");
    }

    #[test]
    fn a_trace_url_template_links_the_run_s_trace_and_a_bad_id_is_no_link() {
        let linked = ForwarderConfig {
            trace_url: Some(crate::config::TraceUrl::parse("https://ui.example.com/trace/{trace_id}").unwrap()),
            ..config()
        };
        let mut alert = trigger();
        alert.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let event = Event::from_alert(&alert, &linked);
        let last = event.links.last().unwrap();
        assert_eq!(last.href, "https://ui.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(last.text, "Trace 4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in ["../admin", "4BF92F3577B34DA6A3CE929D0E0E4736", ""] {
            alert.trace_id = Some(bad.into());
            assert_eq!(Event::from_alert(&alert, &linked).links.len(), 2, "{bad:?}");
        }
        alert.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        assert_eq!(Event::from_alert(&alert, &config()).links.len(), 2, "no template, no link");
    }

    #[test]
    fn a_resolve_carries_only_the_action_and_the_key() {
        let mut alert = trigger();
        alert.event_action = EventAction::Resolve;
        let json = serde_json::to_value(Event::from_alert(&alert, &config())).unwrap();
        assert_eq!(json, json!({"event_action": "resolve", "dedup_key": "synthetic/prod/payment"}));
    }

    #[test]
    fn unknown_origin_and_bad_timestamp_are_left_out() {
        let mut alert = trigger();
        (alert.region, alert.log_group, alert.timestamp) = (None, None, "yesterday".into());
        let event = Event::from_alert(&alert, &config());
        assert_eq!(event.links.len(), 1, "the runbook only");
        assert_eq!(event.client_url, None);
        assert_eq!(event.payload.unwrap().timestamp, None);

        let mut alert = trigger();
        alert.log_stream = None;
        let event = Event::from_alert(&alert, &config());
        assert!(event.links[1].href.ends_with("log-group/$252Faws$252Flambda$252Fsynthetic-check-payment"));
    }

    #[test]
    fn summary_and_labels_are_one_line_and_capped_at_char_boundaries() {
        let mut alert = trigger();
        alert.summary = format!("line one\n{}", "é".repeat(3000));
        alert.check = "c".repeat(1000);
        let payload = Event::from_alert(&alert, &config()).payload.unwrap();
        assert_eq!(payload.summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(payload.summary.starts_with("line one é") && payload.summary.ends_with('…'));
        assert_eq!(payload.component.chars().count(), LABEL_MAX_CHARS);

        alert.summary = "  ".into();
        let payload = Event::from_alert(&alert, &config()).payload.unwrap();
        assert_eq!(payload.summary, format!("[prod] {} FAILED", alert.check));
    }

    #[test]
    fn long_dedup_keys_are_cut_stably_and_stay_distinct() {
        let long = |tail: &str| format!("synthetic/prod/{}{tail}", "x".repeat(400));
        let mut alert = trigger();
        alert.dedup_key = long("a");
        let first = Event::from_alert(&alert, &config()).dedup_key;
        alert.event_action = EventAction::Resolve;
        let resolve = Event::from_alert(&alert, &config()).dedup_key;
        alert.dedup_key = long("b");
        let other = Event::from_alert(&alert, &config()).dedup_key;
        assert_eq!(first.chars().count(), DEDUP_KEY_MAX_CHARS);
        assert_eq!(first, resolve, "a resolve must match its trigger");
        assert_ne!(first, other);
        assert!(first.starts_with("synthetic/prod/xxx"));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
    }

    #[test]
    fn an_oversized_event_drops_its_largest_details_first() {
        let mut alert = trigger();
        alert.steps = vec![
            step("small", Outcome::Failed, Some("short")),
            step("big", Outcome::Failed, Some(&"b".repeat(400 * 1024))),
            step("bigger", Outcome::Degraded, Some(&"g".repeat(450 * 1024))),
        ];
        let event = Event::from_alert(&alert, &config());
        assert!(json_len(&event) <= EVENT_MAX_BYTES);
        let details = &event.payload.unwrap().custom_details;
        assert!(details.contains_key("step 1 small") && details.contains_key("step 2 big"));
        assert!(!details.contains_key("step 3 bigger"));
        assert!(details[DROPPED_DETAILS].as_str().unwrap().contains("step 3 bigger"));
    }

    #[test]
    fn the_body_adds_the_routing_key_and_nothing_else_shows_it() {
        let event = Event::from_alert(&trigger(), &config());
        let key = Secret::new("R0UT1NGKEY".to_string());
        let body: Value = serde_json::from_slice(event.to_body(&key).unwrap().expose()).unwrap();
        assert_eq!(body["routing_key"], "R0UT1NGKEY");
        assert_eq!(body["dedup_key"], "synthetic/prod/payment");
        assert!(!format!("{event:?} {:?}", event.to_body(&key)).contains("R0UT1NGKEY"));
    }
}

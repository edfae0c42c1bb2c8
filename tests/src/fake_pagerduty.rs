//! A local fake of the PagerDuty Events API v2: `POST /v2/enqueue` on loopback.
//!
//! It records every request body and answers from a script, so the forwarder's retry contract can
//! be driven without PagerDuty: a sequence such as `[429, 429, 202]`, a persistent 500, or a 400
//! with the `{"status", "message", "errors"}` body PagerDuty sends for an invalid event. Like
//! PagerDuty, it answers 400 to a body that is not JSON, to one its [`Contract`] refuses (when
//! started with one), and to a routing key it was not told to accept (when told any), whatever
//! the script says. Everything lives in memory.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::pagerduty_contract::Contract;

/// The `errors` of a 400 unless [`FakePagerDuty::reject_with`] says otherwise.
pub const DEFAULT_REJECTION: &str = "'payload.summary' is missing or blank";
/// The `errors` of PagerDuty's 400 for a routing key no integration has.
pub const INVALID_ROUTING_KEY: &str = "Invalid routing key";

#[derive(Debug)]
struct Script {
    /// Answered in order, one per request.
    next: VecDeque<u16>,
    /// Answered once `next` is empty.
    then: u16,
    rejection: Vec<String>,
    /// Every body received, as JSON (a body that is not JSON is kept as a string).
    requests: Vec<Value>,
    /// Empty: any routing key is accepted.
    routing_keys: Vec<String>,
    contract: Option<Arc<Contract>>,
    /// What [`Contract::violations`] found, each prefixed with the request's index.
    violations: Vec<String>,
    /// The bodies answered with a 2xx: what PagerDuty acted on.
    accepted: Vec<Value>,
    /// PagerDuty's rate, when enforced: at most this many accepted events within the window.
    rate: Option<(usize, Duration)>,
    /// When each accepted event was, for the rate.
    accepted_at: Vec<Instant>,
    /// Requests answered 429 for the rate.
    throttled: usize,
}

/// An incident as PagerDuty would show it: events with one dedup key, from the trigger that
/// opened it to the resolve that closed it. A trigger while it is open is deduplicated into it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Incident {
    pub number: usize,
    pub dedup_key: String,
    pub status: &'static str,
    pub severity: String,
    pub summary: String,
    /// Index (among accepted events) of the trigger that opened it, and of the resolve.
    pub opened_by: usize,
    pub resolved_by: Option<usize>,
    /// Triggers deduplicated into it after the first.
    pub updates: usize,
    /// The `custom_details` of every trigger, in order.
    pub details: Vec<Value>,
}

/// PagerDuty's incident list for a sequence of accepted events.
pub fn incidents_of(events: &[Value]) -> Vec<Incident> {
    let mut incidents: Vec<Incident> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let key = event["dedup_key"].as_str().unwrap_or_default().to_string();
        let open = incidents.iter_mut().find(|i| i.dedup_key == key && i.resolved_by.is_none());
        match (event["event_action"].as_str(), open) {
            (Some("trigger"), Some(incident)) => {
                incident.updates += 1;
                incident.details.push(event["payload"]["custom_details"].clone());
            }
            (Some("trigger"), None) => incidents.push(Incident {
                number: incidents.len() + 1,
                dedup_key: key,
                status: "triggered",
                severity: event["payload"]["severity"].as_str().unwrap_or_default().to_string(),
                summary: event["payload"]["summary"].as_str().unwrap_or_default().to_string(),
                opened_by: index,
                resolved_by: None,
                updates: 0,
                details: vec![event["payload"]["custom_details"].clone()],
            }),
            (Some("resolve"), Some(incident)) => {
                incident.status = "resolved";
                incident.resolved_by = Some(index);
            }
            _ => {}
        }
    }
    incidents
}

type Shared = Arc<Mutex<Script>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Script> {
    // A test that panicked while holding the lock must not hide what was recorded.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fake Events API, serving until dropped.
pub struct FakePagerDuty {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakePagerDuty {
    /// Serves on `127.0.0.1` with an OS-chosen port, accepting every event (202) until scripted.
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(None).await
    }

    /// [`FakePagerDuty::start`], judging every body by `contract` as PagerDuty would: refused
    /// with a 400 listing the schema's errors, and every violation kept for
    /// [`FakePagerDuty::violations`].
    pub async fn with_contract(contract: Contract) -> std::io::Result<Self> {
        Self::serve(Some(Arc::new(contract))).await
    }

    async fn serve(contract: Option<Arc<Contract>>) -> std::io::Result<Self> {
        let shared = Arc::new(Mutex::new(Script {
            next: VecDeque::new(),
            then: 202,
            rejection: vec![DEFAULT_REJECTION.to_string()],
            requests: Vec::new(),
            routing_keys: Vec::new(),
            contract,
            violations: Vec::new(),
            accepted: Vec::new(),
            rate: None,
            accepted_at: Vec::new(),
            throttled: 0,
        }));
        let router = Router::new().route("/v2/enqueue", post(enqueue)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Ends only with the process or when aborted on drop.
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakePagerDuty { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`, the value for `PAGERDUTY_EVENTS_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests are answered with these statuses, in order; after them, 202 again.
    pub fn script(&self, statuses: impl IntoIterator<Item = u16>) {
        let mut script = lock(&self.shared);
        script.next = statuses.into_iter().collect();
        script.then = 202;
    }

    /// Every request from now on is answered with `status` (e.g. a persistent 500).
    pub fn always(&self, status: u16) {
        let mut script = lock(&self.shared);
        script.next.clear();
        script.then = status;
    }

    /// The `errors` list of every 400 answered from now on.
    pub fn reject_with(&self, errors: impl IntoIterator<Item = impl Into<String>>) {
        lock(&self.shared).rejection = errors.into_iter().map(Into::into).collect();
    }

    /// From now on only these routing keys are accepted; any other is answered the 400 PagerDuty
    /// gives an unknown key (e.g. after the integration key was rotated).
    pub fn accept_routing_keys(&self, keys: impl IntoIterator<Item = impl Into<String>>) {
        lock(&self.shared).routing_keys = keys.into_iter().map(Into::into).collect();
    }

    /// From now on, like PagerDuty's Events API ("approximately 120 calls/minute per integration
    /// key ... calculated over a 60 second window looking back from the current time"), a request
    /// that finds `events` accepted within the last `window` is answered 429 and not ingested.
    pub fn enforce_rate(&self, events: usize, window: Duration) {
        lock(&self.shared).rate = Some((events, window));
    }

    /// How many requests were answered 429 for the rate.
    pub fn throttled(&self) -> usize {
        lock(&self.shared).throttled
    }

    /// Every request body received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared).requests.clone()
    }

    /// The bodies PagerDuty accepted (answered 2xx), in order.
    pub fn accepted(&self) -> Vec<Value> {
        lock(&self.shared).accepted.clone()
    }

    /// The incidents the accepted events opened, as PagerDuty's incident list shows them.
    pub fn incidents(&self) -> Vec<Incident> {
        incidents_of(&lock(&self.shared).accepted)
    }

    /// Every contract violation in the bodies received so far (none without a contract).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared).violations.clone()
    }

    /// Waits until at least `count` requests have arrived (for callers on the other side of SNS),
    /// then returns them all; returns what arrived so far when `timeout` passes first.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= count || Instant::now() >= deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for FakePagerDuty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn enqueue(State(shared): State<Shared>, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body);
    let mut script = lock(&shared);
    let (recorded, is_json) = match parsed {
        Ok(value) => (value, true),
        Err(_) => (Value::String(String::from_utf8_lossy(&body).into_owned()), false),
    };
    let dedup_key = recorded.get("dedup_key").cloned().unwrap_or(Value::Null);
    let index = script.requests.len();
    let judged = script.contract.as_ref().map(|c| (c.schema_errors(&recorded), c.violations(&recorded)));
    let routing_key_known = script.routing_keys.is_empty()
        || recorded
            .get("routing_key")
            .and_then(Value::as_str)
            .is_some_and(|k| script.routing_keys.iter().any(|a| a == k));
    script.requests.push(recorded);
    if !is_json {
        if script.contract.is_some() {
            script.violations.push(format!("request {index}: not JSON"));
        }
        return answer(
            400,
            json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": ["JSON parse error"]}),
        );
    }
    let (schema_errors, violations) = judged.unwrap_or_default();
    script.violations.extend(violations.into_iter().map(|v| format!("request {index}: {v}")));
    if !schema_errors.is_empty() {
        return invalid_event(schema_errors);
    }
    if !routing_key_known {
        return invalid_event(vec![INVALID_ROUTING_KEY.to_string()]);
    }
    if let Some((events, window)) = script.rate {
        let now = Instant::now();
        if script.accepted_at.iter().filter(|at| now.duration_since(**at) < window).count() >= events {
            script.throttled += 1;
            return answer(429, throttle_body());
        }
    }
    let status = script.next.pop_front().unwrap_or(script.then);
    if (200..300).contains(&status) {
        let accepted = script.requests[index].clone();
        script.accepted.push(accepted);
        script.accepted_at.push(Instant::now());
    }
    let body = match status {
        200..=299 => {
            json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})
        }
        400 => return invalid_event(script.rejection.clone()),
        429 => throttle_body(),
        _ => json!({"status": "error", "message": "Internal server error"}),
    };
    answer(status, body)
}

fn throttle_body() -> Value {
    json!({"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly. Please retry later."})
}

fn invalid_event(errors: Vec<String>) -> Response {
    answer(400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}))
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_the_script_then_accepts_and_records_every_body() {
        let fake = FakePagerDuty::start().await.unwrap();
        fake.script([429, 400]);
        fake.reject_with(["bad"]);
        let client = reqwest::Client::new();
        let url = format!("{}/v2/enqueue", fake.base_url());
        let mut answers = Vec::new();
        for body in [r#"{"dedup_key":"k"}"#, "{}", r#"{"dedup_key":"k"}"#, "not json"] {
            let response = client.post(&url).body(body).send().await.unwrap();
            let status = response.status().as_u16();
            let json: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            answers.push((status, json));
        }
        let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses, [429, 400, 202, 400]);
        assert_eq!(answers[1].1["errors"], json!(["bad"]));
        assert_eq!(answers[2].1["dedup_key"], "k");
        assert_eq!(answers[3].1["errors"], json!(["JSON parse error"]));
        assert_eq!(fake.requests().len(), 4);
        assert_eq!(fake.requests()[3], json!("not json"));

        fake.always(500);
        let response = client.post(&url).body("{}").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 500);
        assert!(fake.violations().is_empty(), "no contract, no judgement");
    }

    #[tokio::test]
    async fn above_the_enforced_rate_it_answers_429_and_ingests_nothing() {
        let fake = FakePagerDuty::start().await.unwrap();
        fake.enforce_rate(2, Duration::from_secs(60));
        let client = reqwest::Client::new();
        let url = format!("{}/v2/enqueue", fake.base_url());
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let response = client.post(&url).body(r#"{"dedup_key":"k"}"#).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [202, 202, 429]);
        assert_eq!((fake.accepted().len(), fake.throttled()), (2, 1));
    }

    #[tokio::test]
    async fn refuses_what_pagerduty_would_refuse_whatever_the_script_says() {
        let contract = Contract::load().unwrap_or_else(|e| panic!("{e}"));
        let fake = FakePagerDuty::with_contract(contract).await.unwrap();
        fake.accept_routing_keys(["new-key"]);
        fake.always(202);
        let client = reqwest::Client::new();
        let url = format!("{}/v2/enqueue", fake.base_url());
        let resolve = |key: &str| json!({"routing_key": key, "event_action": "resolve", "dedup_key": "k"});
        let bodies = [
            resolve("new-key"),
            resolve("old-key"),
            json!({"routing_key": "new-key", "event_action": "explode"}),
            json!({"routing_key": "new-key", "event_action": "resolve", "dedup_key": "k", "note": "ignored"}),
        ];
        let mut answers = Vec::new();
        for body in &bodies {
            let response = client.post(&url).body(body.to_string()).send().await.unwrap();
            let status = response.status().as_u16();
            let json: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            answers.push((status, json["errors"].clone()));
        }
        assert_eq!(answers[0], (202, Value::Null));
        assert_eq!(answers[1], (400, json!([INVALID_ROUTING_KEY])));
        assert_eq!(answers[2].0, 400);
        assert!(answers[2].1[0].as_str().is_some_and(|e| e.contains("/event_action")), "{:?}", answers[2]);
        assert_eq!(answers[3], (202, Value::Null), "PagerDuty ignores unknown fields");
        let violations = fake.violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].starts_with("request 2: /event_action"), "{violations:?}");
        assert_eq!(violations[1], "request 3: note is not in the contract");
    }
}

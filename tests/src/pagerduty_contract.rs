//! PagerDuty's published Events API v2 contract, as a validator of request bodies.
//!
//! The OpenAPI document is PagerDuty's own, kept by the team outside this repository, so the
//! fake Events API and the forwarder's tests judge bodies by what PagerDuty publishes rather
//! than by a copy of our own assumptions. [`Contract::violations`] is stricter than the schema
//! in two ways PagerDuty states only in prose or by ignoring fields: a trigger needs a payload
//! and a resolve a dedup key, and a field the contract does not define is a bug here, because
//! PagerDuty would silently drop it.

use serde_json::{Value, json};

/// CI clones the repository with the team's `shared/` beside it, as in the workspace.
pub const CONTRACT_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/contracts/pagerduty-events-v2.openapi.json");
const ENQUEUE_BODY: &str = "#/paths/~1enqueue/post/requestBody/content/application~1json/schema";
const PAYLOAD: &str = "#/components/schemas/Payload";

pub struct Contract {
    body: jsonschema::Validator,
    body_fields: Vec<String>,
    payload_fields: Vec<String>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract").field("body_fields", &self.body_fields).finish_non_exhaustive()
    }
}

impl Contract {
    /// The contract at [`CONTRACT_PATH`]. The error names the path, so a missing checkout of
    /// `shared/` says what to fix.
    pub fn load() -> Result<Contract, String> {
        let text = std::fs::read_to_string(CONTRACT_PATH)
            .map_err(|e| format!("cannot read the contract at {CONTRACT_PATH}: {e}"))?;
        let document: Value =
            serde_json::from_str(&text).map_err(|e| format!("the contract at {CONTRACT_PATH} is not JSON: {e}"))?;
        Contract::from_document(&document)
    }

    pub fn from_document(document: &Value) -> Result<Contract, String> {
        // The document itself is the root, so the `#/components/...` refs inside the request
        // schema resolve within it; a root `$ref` (draft 4: siblings ignored) selects the schema.
        let mut root = document.clone();
        root["$ref"] = json!(ENQUEUE_BODY);
        let body = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("{ENQUEUE_BODY} does not compile: {e}"))?;
        let fields = |pointer: &str| -> Vec<String> {
            document
                .pointer(&format!("{}/properties", pointer.trim_start_matches('#')))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (body_fields, payload_fields) = (fields(ENQUEUE_BODY), fields(PAYLOAD));
        if body_fields.is_empty() || payload_fields.is_empty() {
            return Err("the contract defines no enqueue body or payload properties".into());
        }
        Ok(Contract { body, body_fields, payload_fields })
    }

    /// What the schema refuses, as PagerDuty's `errors` would list it; empty when it accepts.
    pub fn schema_errors(&self, body: &Value) -> Vec<String> {
        self.body.iter_errors(body).map(|e| format!("{}: {e}", e.instance_path())).collect()
    }

    /// [`Contract::schema_errors`], plus what the contract says in prose and the fields it does
    /// not define. Empty for a body PagerDuty would act on exactly as sent.
    pub fn violations(&self, body: &Value) -> Vec<String> {
        let mut violations = self.schema_errors(body);
        violations.extend(unknown(body, &self.body_fields, ""));
        if let Some(payload) = body.get("payload") {
            violations.extend(unknown(payload, &self.payload_fields, "payload."));
        }
        match body.get("event_action").and_then(Value::as_str) {
            Some("trigger") if body.get("payload").is_none() => violations.push("a trigger has no payload".into()),
            Some("acknowledge" | "resolve") if body.get("dedup_key").is_none() => {
                violations.push("an acknowledge or resolve has no dedup_key".into())
            }
            _ => {}
        }
        violations
    }
}

fn unknown(value: &Value, known: &[String], prefix: &str) -> Vec<String> {
    let fields = value.as_object().into_iter().flat_map(|o| o.keys());
    fields.filter(|key| !known.contains(key)).map(|key| format!("{prefix}{key} is not in the contract")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_is_found_and_its_validator_bites() {
        let contract = Contract::load().unwrap_or_else(|e| panic!("{e}"));
        let good = json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d",
            "payload": {"summary": "s", "source": "h", "severity": "critical", "timestamp": "2026-11-21T10:00:00Z"}});
        assert_eq!(contract.violations(&good), Vec::<String>::new());
        assert!(
            contract.violations(&json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "d"})).is_empty()
        );

        let refused = [
            json!({"event_action": "trigger"}),
            json!({"routing_key": "k", "event_action": "explode"}),
            json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "fatal"}}),
            json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "severity": "info"}}),
            json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "yesterday"}}),
            json!({"routing_key": "k", "event_action": "trigger", "links": [{"text": "no href"}]}),
        ];
        for body in refused {
            assert!(!contract.schema_errors(&body).is_empty(), "the schema accepted {body}");
        }

        let ignored = [
            (json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "d", "severity": "info"}), "severity"),
            (
                json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info", "steps": []}}),
                "payload.steps",
            ),
            (json!({"routing_key": "k", "event_action": "trigger"}), "no payload"),
            (json!({"routing_key": "k", "event_action": "resolve"}), "no dedup_key"),
        ];
        for (body, named) in ignored {
            let violations = contract.violations(&body);
            assert!(contract.schema_errors(&body).is_empty(), "{body}");
            assert!(violations.iter().any(|v| v.contains(named)), "{named}: {violations:?}");
        }
    }
}

//! CloudWatch alarm notifications on the alert topic: the checks' burn-rate composite alarms.
//!
//! CloudWatch publishes a JSON message per state change
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html,
//! "Notifications"): `AlarmName`, `NewStateValue`, `OldStateValue`, `NewStateReason`,
//! `StateChangeTime` (`2026-11-21T10:00:00.000+0000`) and `AlarmArn`, which names the region.
//! An alarm named `<ALARM_NAME_PREFIX><check>-slo-fast-burn` (or `-slo-slow-burn`) belongs to
//! that check's incident; any other alarm reaching the topic is forwarded as its own incident,
//! so nothing routed here is lost.

use serde::Deserialize;
use synthetic_checks::alert::{AlertMessage, EventAction, Severity};
use synthetic_checks::result::Outcome;
use synthetic_checks::text::{one_line, truncate};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// The alarm kinds that join a check's incident, by the suffix of their name.
pub const BURN_ALARMS: [&str; 2] = ["slo-fast-burn", "slo-slow-burn"];

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Notification {
    pub alarm_name: String,
    pub new_state_value: String,
    #[serde(default)]
    pub new_state_reason: String,
    #[serde(default)]
    pub alarm_description: Option<String>,
    pub state_change_time: String,
    #[serde(default)]
    pub alarm_arn: String,
}

/// What an alarm notification means to the forwarder.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSignal {
    /// The check it belongs to, when it is one of [`BURN_ALARMS`] under the configured prefix.
    pub check: Option<String>,
    pub kind: String,
    pub name: String,
    pub alarm: bool,
    pub region: String,
    pub at: OffsetDateTime,
    pub reason: String,
}

impl Notification {
    /// Whether an SNS message looks like an alarm notification rather than a check's alert.
    pub fn parse(message: &str) -> Option<Result<Notification, String>> {
        let value: serde_json::Value = serde_json::from_str(message).ok()?;
        value.get("AlarmName")?;
        Some(serde_json::from_value(value).map_err(|e| e.to_string()))
    }

    pub fn signal(&self, prefix: Option<&str>) -> Result<AlarmSignal, String> {
        let alarm = match self.new_state_value.as_str() {
            "ALARM" => true,
            "OK" | "INSUFFICIENT_DATA" => false,
            other => return Err(format!("alarm {}: unknown NewStateValue {other:?}", self.alarm_name)),
        };
        let at = change_time(&self.state_change_time).ok_or_else(|| {
            format!("alarm {}: StateChangeTime {:?} is not a time", self.alarm_name, self.state_change_time)
        })?;
        let owned = prefix.and_then(|prefix| self.alarm_name.strip_prefix(prefix)).and_then(|rest| {
            BURN_ALARMS.iter().find_map(|kind| {
                let check = rest.strip_suffix(kind)?.strip_suffix('-')?;
                (!check.is_empty()).then(|| (check.to_string(), kind.to_string()))
            })
        });
        let (check, kind) = match owned {
            Some((check, kind)) => (Some(check), kind),
            None => (None, self.alarm_name.clone()),
        };
        Ok(AlarmSignal {
            check,
            kind,
            name: self.alarm_name.clone(),
            alarm,
            // arn:aws:cloudwatch:<region>:<account>:alarm:<name>
            region: self.alarm_arn.split(':').nth(3).filter(|r| !r.is_empty()).unwrap_or("unknown").to_string(),
            at,
            reason: self.new_state_reason.clone(),
        })
    }
}

impl AlarmSignal {
    /// The alarm as an alert of `check` in `env`, the template of the events it causes. An alarm
    /// that is not a burn-rate alarm of ours keeps `cloudwatch/<name>` as its dedup key.
    pub fn alert(&self, check: &str, env: &str, severity: Severity) -> AlertMessage {
        let state = if self.alarm { "ALARM" } else { "OK" };
        AlertMessage {
            event_action: if self.alarm { EventAction::Trigger } else { EventAction::Resolve },
            dedup_key: format!("cloudwatch/{}", self.name),
            check: check.to_string(),
            env: env.to_string(),
            status: if self.alarm { Outcome::Failed } else { Outcome::Passed },
            cause: None,
            severity,
            summary: truncate(&one_line(&format!("[{env}] {check}: {} {state}: {}", self.name, self.reason)), 1024),
            target: String::new(),
            run_id: String::new(),
            timestamp: self.at.format(&Rfc3339).unwrap_or_default(),
            steps: Vec::new(),
            function_name: None,
            log_group: None,
            log_stream: None,
            region: Some(self.region.clone()),
            account: None,
            trace_id: None,
        }
    }
}

/// CloudWatch writes `+0000` offsets, which RFC 3339 does not allow; both are accepted.
fn change_time(raw: &str) -> Option<OffsetDateTime> {
    let cloudwatch = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    OffsetDateTime::parse(raw, cloudwatch).ok().or_else(|| OffsetDateTime::parse(raw, &Rfc3339).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn message(name: &str, state: &str) -> String {
        json!({
            "AlarmName": name, "AlarmDescription": "burn", "AWSAccountId": "123456789012",
            "NewStateValue": state, "NewStateReason": "ALARM(\"a\") AND ALARM(\"b\")",
            "StateChangeTime": "2026-11-21T10:05:30.123+0000", "Region": "EU (Ireland)",
            "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"),
            "OldStateValue": "OK", "AlarmRule": "ALARM(\"a\") AND ALARM(\"b\")"
        })
        .to_string()
    }

    #[test]
    fn a_burn_alarm_names_its_check_region_and_time() {
        let notification = Notification::parse(&message("synth-prod-sign-in-slo-fast-burn", "ALARM")).unwrap().unwrap();
        let signal = notification.signal(Some("synth-prod-")).unwrap();
        assert_eq!(signal.check.as_deref(), Some("sign-in"));
        assert_eq!((signal.kind.as_str(), signal.alarm, signal.region.as_str()), ("slo-fast-burn", true, "eu-west-1"));
        assert_eq!(signal.at, datetime!(2026-11-21 10:05:30.123 UTC));
    }

    #[test]
    fn other_alarms_and_check_alerts_are_told_apart() {
        let other = Notification::parse(&message("synth-prod-payment-heartbeat", "OK")).unwrap().unwrap();
        let signal = other.signal(Some("synth-prod-")).unwrap();
        assert_eq!((signal.check, signal.alarm), (None, false));
        assert!(Notification::parse(r#"{"event_action":"trigger"}"#).is_none());
        assert!(Notification::parse("not json").is_none());
        let broken = Notification::parse(&message("x", "SOMETIMES")).unwrap().unwrap();
        assert!(broken.signal(None).unwrap_err().contains("unknown NewStateValue"));
    }
}

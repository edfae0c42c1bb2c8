//! One error type for everything that can go wrong, in a check step or in the monitor itself.
//!
//! Step failures (`timeout` … `cleanup_failed`) end up in a run result and an alert; they are the
//! monitor doing its job. The monitor failures at the bottom of [`CheckError`] (unreadable
//! secret, undeliverable alert, bad event) end the invocation with an error instead, so Lambda's
//! retry, on-failure destination and `Errors` alarm take over.

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a step did not pass. Serialized in snake_case; these strings are part of the alert contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Timeout,
    Connect,
    Tls,
    HttpStatus,
    Assertion,
    InvalidResponse,
    CredentialsRejected,
    Misconfigured,
    CleanupFailed,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Connect => "connect",
            Cause::Tls => "tls",
            Cause::HttpStatus => "http_status",
            Cause::Assertion => "assertion",
            Cause::InvalidResponse => "invalid_response",
            Cause::CredentialsRejected => "credentials_rejected",
            Cause::Misconfigured => "misconfigured",
            Cause::CleanupFailed => "cleanup_failed",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    #[error("no complete response within {budget_ms} ms")]
    Timeout { budget_ms: u64 },
    /// The step was not sent: what was left before the Lambda deadline is kept for the cleanup
    /// steps and the alert.
    #[error("not sent: only {left_ms} ms were left before the deadline, kept for cleanup and the alert")]
    OutOfTime { left_ms: u64 },
    /// No connection to the target was made: nothing of the request was sent.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The connection failed after the request went out (reset, closed before or during the
    /// answer): unlike [`CheckError::Connect`], the target may have carried the request out.
    #[error("connection lost after the request was sent: {0}")]
    ConnectionLost(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("HTTP {status}, expected {expected}{excerpt}")]
    HttpStatus {
        status: u16,
        expected: String,
        /// Already scrubbed of secrets and cut to one short line, with a leading separator.
        excerpt: String,
    },
    #[error("{0}")]
    Assertion(String),
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    #[error(
        "the synthetic account was rejected (HTTP {status}): the monitor's own account is locked, expired or rotated; this is not a target outage"
    )]
    CredentialsRejected { status: u16 },
    /// A login's answer met its `rejected_when` (`written`, as the file has it), whatever the status.
    #[error(
        "the synthetic account was rejected (HTTP {status} matching rejected_when = {written}): the monitor's own account is locked, expired or rotated; this is not a target outage"
    )]
    CredentialsRejectedWhen { status: u16, written: String },
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    #[error("cleanup failed, a sandbox write may be left live: {0}")]
    CleanupFailed(String),

    #[error("secret {secret_id} could not be read: {reason}")]
    SecretUnavailable { secret_id: String, reason: String },
    #[error("alert could not be delivered after {attempts} attempt(s): {reason}")]
    AlertUndeliverable { attempts: u32, reason: String },
    #[error("invalid event: {0}")]
    InvalidEvent(String),
}

impl CheckError {
    /// The cause a step records. Monitor failures never reach a step, but map sensibly anyway.
    pub fn cause(&self) -> Cause {
        match self {
            CheckError::Timeout { .. } | CheckError::OutOfTime { .. } => Cause::Timeout,
            CheckError::Connect(_) | CheckError::ConnectionLost(_) => Cause::Connect,
            CheckError::Tls(_) => Cause::Tls,
            CheckError::HttpStatus { .. } => Cause::HttpStatus,
            CheckError::Assertion(_) => Cause::Assertion,
            CheckError::InvalidResponse(_) => Cause::InvalidResponse,
            CheckError::CredentialsRejected { .. } | CheckError::CredentialsRejectedWhen { .. } => {
                Cause::CredentialsRejected
            }
            CheckError::CleanupFailed(_) => Cause::CleanupFailed,
            CheckError::Misconfigured(_)
            | CheckError::SecretUnavailable { .. }
            | CheckError::AlertUndeliverable { .. }
            | CheckError::InvalidEvent(_) => Cause::Misconfigured,
        }
    }

    /// The Lambda `errorType`: what an operator sees in the console and in the DLQ record.
    pub fn error_type(&self) -> &'static str {
        match self {
            CheckError::Timeout { .. } | CheckError::OutOfTime { .. } => "Timeout",
            CheckError::Connect(_) | CheckError::ConnectionLost(_) => "Connect",
            CheckError::Tls(_) => "Tls",
            CheckError::HttpStatus { .. } => "HttpStatus",
            CheckError::Assertion(_) => "Assertion",
            CheckError::InvalidResponse(_) => "InvalidResponse",
            CheckError::CredentialsRejected { .. } | CheckError::CredentialsRejectedWhen { .. } => {
                "CredentialsRejected"
            }
            CheckError::Misconfigured(_) => "Misconfigured",
            CheckError::CleanupFailed(_) => "CleanupFailed",
            CheckError::SecretUnavailable { .. } => "SecretUnavailable",
            CheckError::AlertUndeliverable { .. } => "AlertUndeliverable",
            CheckError::InvalidEvent(_) => "InvalidEvent",
        }
    }
}

/// What Lambda reports of a failed invocation leaves the process: its message is scrubbed.
impl From<CheckError> for Diagnostic {
    fn from(error: CheckError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_string(),
            error_message: crate::secret::Scrubber::process_scrub(&error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_serialize_as_the_alert_contract_spells_them() {
        let all = [
            (Cause::Timeout, "timeout"),
            (Cause::Connect, "connect"),
            (Cause::Tls, "tls"),
            (Cause::HttpStatus, "http_status"),
            (Cause::Assertion, "assertion"),
            (Cause::InvalidResponse, "invalid_response"),
            (Cause::CredentialsRejected, "credentials_rejected"),
            (Cause::Misconfigured, "misconfigured"),
            (Cause::CleanupFailed, "cleanup_failed"),
        ];
        for (cause, text) in all {
            assert_eq!(serde_json::to_value(cause).unwrap(), text);
            assert_eq!(cause.to_string(), text);
        }
    }

    #[test]
    fn monitor_failures_become_descriptive_diagnostics() {
        let diagnostic: Diagnostic = CheckError::AlertUndeliverable { attempts: 4, reason: "HTTP 500".into() }.into();
        assert_eq!(diagnostic.error_type, "AlertUndeliverable");
        assert!(diagnostic.error_message.contains("4 attempt"));

        let diagnostic: Diagnostic = CheckError::Misconfigured("TARGET_BASE_URL is not set".into()).into();
        assert_eq!(diagnostic.error_type, "Misconfigured");
        assert!(diagnostic.error_message.contains("TARGET_BASE_URL"));
    }
}

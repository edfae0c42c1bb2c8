//! The SNS → PagerDuty forwarder behind the `pagerduty-forwarder` Lambda.
//!
//! Each SNS record carries one [`AlertMessage`](synthetic_checks::alert::AlertMessage). The
//! [`Forwarder`] turns it into an Events API v2 [`Event`] within PagerDuty's limits ([`event`]),
//! reads the routing key once per cold start ([`routing_key`]) and sends the event through the
//! [`EventsApi`] port ([`pagerduty`]) with PagerDuty's retry contract. Checks are level-triggered
//! and the dedup key is stable per env and check, so one broken journey is one incident, and the
//! next passing run resolves it even after a restart.

pub mod config;
pub mod event;
pub mod handler;
pub mod pagerduty;
pub mod routing_key;

pub use config::ForwarderConfig;
pub use event::Event;
pub use handler::{Adapters, ForwardError, Forwarded, Forwarder, RecordFailure};
pub use pagerduty::{EventsApi, HttpEventsApi, RecordingEventsApi};

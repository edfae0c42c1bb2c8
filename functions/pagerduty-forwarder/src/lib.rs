//! The SNS → PagerDuty forwarder behind the `pagerduty-forwarder` Lambda.
//!
//! Each SNS record carries one [`AlertMessage`](synthetic_checks::alert::AlertMessage). The
//! [`Forwarder`] turns it into an Events API v2 [`Event`] within PagerDuty's limits ([`event`]),
//! drops it when a newer run's alert was already sent or it is too old ([`freshness`]), reads the
//! routing key once per cold start and again when PagerDuty refuses it ([`routing_key`]), and
//! sends the event through the [`EventsApi`] port ([`pagerduty`]) with PagerDuty's retry
//! contract. Checks are level-triggered and the dedup key is stable per env and check, so one
//! broken journey is one incident, and the next passing run resolves it even after a restart.

pub mod alarm;
pub mod burn;
pub mod config;
pub mod dependencies;
pub mod dynamodb;
pub mod event;
pub mod freshness;
pub mod handler;
pub mod incident;
pub mod pagerduty;
pub mod rate;
pub mod routing_key;
pub mod state;
pub mod sweep;
pub mod tracker;

pub use config::ForwarderConfig;
pub use event::Event;
pub use handler::{Adapters, Clock, ForwardError, Forwarded, Forwarder, RecordFailure};
pub use pagerduty::{EventsApi, HttpEventsApi, RecordingEventsApi};

//! The state-table port: each subject's incident [`Record`] and the silences, with an in-memory
//! fake beside it for unit tests ([`MemoryStore`]). The DynamoDB adapter is
//! [`crate::dynamodb`].
//!
//! A record is written only if its version is still the one read ([`StateStore::save`]), so two
//! invocations deciding at once, or a Lambda retry racing the original, cannot both win: the
//! loser re-reads and decides again. What must reach PagerDuty or the human channels is written
//! into the record first ([`Record::pending`]) and removed only once delivered, so a failed
//! delivery is retried by the next invocation (Lambda's retry of this one) instead of lost.

use crate::incident::State;
use crate::rate::Window;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use synthetic_checks::alert::AlertMessage;
use time::OffsetDateTime;

/// One subject's stored record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub state: State,
    /// Decided but not yet delivered, oldest first.
    #[serde(default)]
    pub pending: Vec<Pending>,
    #[serde(default)]
    pub next_id: u64,
    /// The invocation sending the pending list, so two never send one incident's events out of
    /// order (see [`crate::tracker::Tracker::claim`]).
    #[serde(default)]
    pub sender: Option<Sender>,
    /// Its `depends_on` links (see [`crate::dependencies`]).
    #[serde(default)]
    pub links: crate::dependencies::Links,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    /// The SNS message whose invocation holds the claim.
    pub by: String,
    /// When the claim lapses if it is not given up: an invocation that died holds nothing.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub id: u64,
    pub to: Channel,
    /// The alert to send: its action, dedup key and severity already decided.
    pub alert: AlertMessage,
    /// Added to the PagerDuty event's `custom_details`.
    #[serde(default)]
    pub details: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    PagerDuty,
    /// The human channels (`NOTIFY_TOPIC_ARN`): a warning, never a page.
    Humans,
}

impl Record {
    /// Queues a delivery.
    pub fn push(&mut self, to: Channel, alert: AlertMessage, details: Map<String, Value>) {
        self.next_id += 1;
        self.pending.push(Pending { id: self.next_id, to, alert, details });
    }

    /// Drops what is queued for PagerDuty under `dedup_key`: a later decision to open or resolve
    /// the incident supersedes it, so after a PagerDuty outage only the incident's latest state
    /// is sent (never the trigger of an incident that already ended, nor a resolve of one that
    /// failed again).
    pub fn forget(&mut self, dedup_key: &str) {
        self.pending.retain(|p| p.to != Channel::PagerDuty || p.alert.dedup_key != dedup_key);
    }
}

/// A planned-work window: while it lasts, the check's runs are recorded and nothing pages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub env: String,
    /// A check name, or `*` for every check of the env (and the monitor account).
    pub check: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends: OffsetDateTime,
    pub reason: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

pub const ALL_CHECKS: &str = "*";

impl Silence {
    pub fn covers(&self, check: &str, at: OffsetDateTime) -> bool {
        (self.check == check || self.check == ALL_CHECKS) && self.starts <= at && at < self.ends
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the record since it was read.
    #[error("the record changed since it was read")]
    Conflict,
    #[error("the state table is unavailable: {0}")]
    Unavailable(String),
    #[error("the state table holds an unreadable record: {0}")]
    Corrupt(String),
}

/// Port: the state table.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The record and its version (0 when there is none yet).
    async fn load(&self, key: &str) -> Result<(Record, u64), StoreError>;
    /// Writes `record` as version `read + 1`, only if the stored version is still `read`.
    async fn save(&self, key: &str, record: &Record, read: u64) -> Result<(), StoreError>;
    async fn silences(&self, env: &str) -> Result<Vec<Silence>, StoreError>;
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError>;
    /// Ends the silence `id` at `at`; `None` when there is no such silence.
    async fn expire_silence(&self, env: &str, id: &str, at: OffsetDateTime) -> Result<Option<Silence>, StoreError>;
    /// The env's subjects listed as having an open incident (see [`StateStore::set_open`]).
    async fn open_subjects(&self, env: &str) -> Result<Vec<String>, StoreError>;
    /// Lists or unlists `subject` as having an open incident, so a subject that stops
    /// reporting can still be found and its incident resolved.
    async fn set_open(&self, env: &str, subject: &str, open: bool) -> Result<(), StoreError>;
    /// PagerDuty's shared sending window (see [`crate::rate`]) and its version (0: none yet).
    async fn load_window(&self) -> Result<(Window, u64), StoreError>;
    /// Writes the window as version `read + 1`, only if the stored version is still `read`.
    async fn save_window(&self, window: &Window, read: u64) -> Result<(), StoreError>;
    /// The outbox: the records with events waiting for PagerDuty's rate, each with its place in
    /// the drain ([`crate::rate::outbox_order`]).
    async fn deferred(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Lists record `key` in the outbox at `order`, or unlists it (`None`).
    async fn set_deferred(&self, key: &str, order: Option<&str>) -> Result<(), StoreError>;
}

/// The key of a subject's record.
pub fn record_key(env: &str, subject: &str) -> String {
    format!("incident#{env}#{subject}")
}

/// In-memory fake for unit tests; can be made unavailable, or to lose the next race.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, (String, u64)>>,
    silences: Mutex<Vec<Silence>>,
    open: Mutex<std::collections::BTreeSet<(String, String)>>,
    unavailable: Mutex<bool>,
    conflicts: Mutex<u32>,
    window: Mutex<(Window, u64)>,
    outbox: Mutex<std::collections::BTreeMap<String, String>>,
}

impl MemoryStore {
    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }

    /// The next `n` saves fail with a conflict, as if another writer won.
    pub fn lose_races(&self, n: u32) {
        *lock(&self.conflicts) = n;
    }

    /// The stored record, read past any fault: what a test asserts on.
    pub fn peek(&self, key: &str) -> Option<Record> {
        lock(&self.records).get(key).and_then(|(json, _)| serde_json::from_str(json).ok())
    }

    fn check(&self) -> Result<(), StoreError> {
        match *lock(&self.unavailable) {
            true => Err(StoreError::Unavailable("connection refused (fake)".into())),
            false => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn load(&self, key: &str) -> Result<(Record, u64), StoreError> {
        self.check()?;
        match lock(&self.records).get(key) {
            Some((json, version)) => {
                Ok((serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?, *version))
            }
            None => Ok((Record::default(), 0)),
        }
    }

    async fn save(&self, key: &str, record: &Record, read: u64) -> Result<(), StoreError> {
        self.check()?;
        {
            let mut conflicts = lock(&self.conflicts);
            if *conflicts > 0 {
                *conflicts -= 1;
                return Err(StoreError::Conflict);
            }
        }
        let mut records = lock(&self.records);
        let stored = records.get(key).map_or(0, |(_, version)| *version);
        if stored != read {
            return Err(StoreError::Conflict);
        }
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        records.insert(key.to_string(), (json, read + 1));
        Ok(())
    }

    async fn silences(&self, env: &str) -> Result<Vec<Silence>, StoreError> {
        self.check()?;
        Ok(lock(&self.silences).iter().filter(|s| s.env == env).cloned().collect())
    }

    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.check()?;
        lock(&self.silences).push(silence.clone());
        Ok(())
    }

    async fn expire_silence(&self, env: &str, id: &str, at: OffsetDateTime) -> Result<Option<Silence>, StoreError> {
        self.check()?;
        let mut silences = lock(&self.silences);
        Ok(silences.iter_mut().find(|s| s.env == env && s.id == id).map(|s| {
            s.ends = s.ends.min(at);
            s.clone()
        }))
    }

    async fn open_subjects(&self, env: &str) -> Result<Vec<String>, StoreError> {
        self.check()?;
        Ok(lock(&self.open).iter().filter(|(e, _)| e == env).map(|(_, subject)| subject.clone()).collect())
    }

    async fn set_open(&self, env: &str, subject: &str, open: bool) -> Result<(), StoreError> {
        self.check()?;
        let entry = (env.to_string(), subject.to_string());
        match open {
            true => lock(&self.open).insert(entry),
            false => lock(&self.open).remove(&entry),
        };
        Ok(())
    }

    async fn load_window(&self) -> Result<(Window, u64), StoreError> {
        self.check()?;
        Ok(lock(&self.window).clone())
    }

    async fn save_window(&self, window: &Window, read: u64) -> Result<(), StoreError> {
        self.check()?;
        let mut stored = lock(&self.window);
        if stored.1 != read {
            return Err(StoreError::Conflict);
        }
        *stored = (window.clone(), read + 1);
        Ok(())
    }

    async fn deferred(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.check()?;
        Ok(lock(&self.outbox).iter().map(|(key, order)| (key.clone(), order.clone())).collect())
    }

    async fn set_deferred(&self, key: &str, order: Option<&str>) -> Result<(), StoreError> {
        self.check()?;
        match order {
            Some(order) => lock(&self.outbox).insert(key.to_string(), order.to_string()),
            None => lock(&self.outbox).remove(key),
        };
        Ok(())
    }
}

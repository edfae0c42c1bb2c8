//! Which alerts are too old to send, so a late delivery cannot undo what a newer run said.
//!
//! SNS and Lambda can deliver a run's alert long after it was published: Lambda retries a failed
//! invocation minutes later, and the dead-letter queue can be redriven days later. By then a later
//! run may have resolved the incident the late trigger would reopen (or the reverse). So the
//! run's own `timestamp` orders alerts, never the time of delivery: an alert is stale when an
//! alert of a later run was already sent for its dedup key, or when it is older than
//! `MAX_EVENT_AGE_SECS`.
//!
//! What was sent is kept in memory only, so it is known to this warm instance alone: after a cold
//! start, or on another instance running at the same time, only the maximum age applies.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;

pub struct Freshness {
    max_age: Duration,
    /// The newest run time sent per dedup key.
    newest: Mutex<HashMap<String, OffsetDateTime>>,
}

/// Why an alert is not sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Stale {
    /// An alert of a later run for the same dedup key was already sent.
    Superseded {
        newest: OffsetDateTime,
    },
    TooOld {
        age: time::Duration,
        max_age: Duration,
    },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Superseded { newest } => write!(f, "an alert of a later run ({newest}) was already sent"),
            Stale::TooOld { age, max_age } => {
                write!(f, "{} s old, more than MAX_EVENT_AGE_SECS ({} s)", age.whole_seconds(), max_age.as_secs())
            }
        }
    }
}

impl Freshness {
    pub fn new(max_age: Duration) -> Self {
        Freshness { max_age, newest: Mutex::new(HashMap::new()) }
    }

    /// Whether the alert of a run at `run_time` may still be sent at `now`. An alert of the same
    /// run time as the newest sent is not stale: it is a duplicate PagerDuty deduplicates.
    pub fn check(&self, dedup_key: &str, run_time: OffsetDateTime, now: OffsetDateTime) -> Result<(), Stale> {
        self.check_age(run_time, now)?;
        match self.lock().get(dedup_key) {
            Some(&newest) if run_time < newest => Err(Stale::Superseded { newest }),
            _ => Ok(()),
        }
    }

    /// Whether the alert of a run at `run_time` is younger than `MAX_EVENT_AGE_SECS` at `now`: all
    /// that is asked of a run the state table orders (per region, which this map cannot).
    pub fn check_age(&self, run_time: OffsetDateTime, now: OffsetDateTime) -> Result<(), Stale> {
        let age = now - run_time;
        match age > self.max_age {
            true => Err(Stale::TooOld { age, max_age: self.max_age }),
            false => Ok(()),
        }
    }

    /// Notes an alert PagerDuty accepted.
    pub fn sent(&self, dedup_key: &str, run_time: OffsetDateTime, now: OffsetDateTime) {
        // A run time ahead of this clock would hold back every later run until that time comes.
        let run_time = run_time.min(now);
        let mut newest = self.lock();
        // Anything older than an entry past the maximum age is refused as too old anyway, so
        // dropping such entries changes nothing and keeps the map to the keys still alerting.
        newest.retain(|_, sent| now - *sent <= self.max_age);
        let entry = newest.entry(dedup_key.to_string()).or_insert(run_time);
        *entry = (*entry).max(run_time);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, OffsetDateTime>> {
        // The map is always left consistent, so a panic elsewhere must not stop the forwarding.
        self.newest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const KEY: &str = "synthetic/prod/payment";
    const T0: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

    fn minutes(n: i64) -> time::Duration {
        time::Duration::minutes(n)
    }

    #[test]
    fn an_alert_older_than_one_already_sent_for_its_key_is_stale() {
        let freshness = Freshness::new(Duration::from_secs(1_800));
        let now = T0 + minutes(11);
        freshness.sent(KEY, T0 + minutes(10), now);
        assert_eq!(freshness.check(KEY, T0 + minutes(5), now), Err(Stale::Superseded { newest: T0 + minutes(10) }));
        assert_eq!(freshness.check(KEY, T0 + minutes(10), now), Ok(()), "the same run again is a duplicate");
        assert_eq!(freshness.check(KEY, T0 + minutes(11), now), Ok(()));
        assert_eq!(freshness.check("synthetic/prod/auth", T0 + minutes(5), now), Ok(()), "per dedup key");

        freshness.sent(KEY, T0 + minutes(5), now);
        assert!(freshness.check(KEY, T0 + minutes(7), now).is_err(), "an older send does not lower the mark");
    }

    #[test]
    fn an_alert_older_than_the_maximum_age_is_stale_even_for_a_new_key() {
        let freshness = Freshness::new(Duration::from_secs(1_800));
        let now = T0 + minutes(31);
        let stale = freshness.check(KEY, T0, now).unwrap_err();
        assert_eq!(stale.to_string(), "1860 s old, more than MAX_EVENT_AGE_SECS (1800 s)");
        assert_eq!(freshness.check(KEY, T0 + minutes(1), now), Ok(()), "exactly the maximum age");
    }

    #[test]
    fn a_run_time_ahead_of_the_clock_does_not_hold_back_later_runs() {
        let freshness = Freshness::new(Duration::from_secs(1_800));
        freshness.sent(KEY, T0 + time::Duration::days(365), T0);
        assert_eq!(freshness.check(KEY, T0 + minutes(5), T0 + minutes(5)), Ok(()));
        assert!(freshness.check(KEY, T0 - minutes(1), T0 + minutes(5)).is_err());
    }

    #[test]
    fn keys_past_the_maximum_age_are_forgotten() {
        let freshness = Freshness::new(Duration::from_secs(1_800));
        freshness.sent("synthetic/prod/old", T0, T0);
        freshness.sent(KEY, T0 + minutes(40), T0 + minutes(40));
        assert_eq!(freshness.lock().keys().collect::<Vec<_>>(), [KEY]);
    }
}

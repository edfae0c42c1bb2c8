//! PagerDuty's rate, kept across every instance of the forwarder: a sending window shared in the
//! state table, and an outbox of what waits for it.
//!
//! PagerDuty's Events API v2 takes about 120 events a minute per integration key, "calculated
//! over a 60 second window looking back from the current time", and answers `429` to the rest
//! without ingesting them (PagerDuty developer docs, *Events API Rate Limits*,
//! <https://developer.pagerduty.com/docs/events-API-v2/rate-limits/>). A storm of a hundred checks
//! in three regions decides more than that at once, in as many concurrent invocations. So every
//! send first takes a slot in one [`Window`] item, written conditionally like the incident
//! records: the sends of the last `window` are listed, and at most [`RateLimit::events`] of them
//! may be (100 a minute by default, leaving room for retries and other senders on the key).
//!
//! What gets no slot is not dropped: it stays queued on its record, and the record is listed in
//! the outbox. Every invocation, and the scheduled tick, drains the outbox, triggers first (a
//! new outage is worth more than the end of another), then the rest; one record's events always
//! leave in the order they were decided. A 429 that gets through anyway (other senders on the
//! key) is retried with backoff; if PagerDuty still throttles, the window is filled, so that no
//! instance sends for a whole window, and the event waits in the outbox: never dropped.

use crate::state::{Channel, Pending};
use serde::{Deserialize, Serialize};
use synthetic_checks::alert::EventAction;
use time::{Duration, OffsetDateTime};

/// How many events may leave within any `window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub events: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { events: 100, window: Duration::MINUTE }
    }
}

/// The sends of the last window, shared by every instance (one item of the state table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// When each slot was taken, oldest first.
    #[serde(default, with = "crate::incident::times")]
    pub sent: Vec<OffsetDateTime>,
}

impl Window {
    /// Takes up to `want` slots at `now` and returns how many it took. A slot taken by an
    /// instance whose clock is ahead counts until it is a whole window old by this one's: the
    /// rate errs on the side of sending later.
    pub fn take(&mut self, now: OffsetDateTime, want: usize, limit: &RateLimit) -> usize {
        self.sent.retain(|at| now - *at < limit.window);
        let free = (limit.events as usize).saturating_sub(self.sent.len());
        let taken = want.min(free);
        self.sent.extend(std::iter::repeat_n(now, taken));
        taken
    }

    /// Takes every slot left at `now`: after a 429 nobody sends until a window has passed.
    pub fn fill(&mut self, now: OffsetDateTime, limit: &RateLimit) {
        self.sent = vec![now; limit.events as usize];
    }
}

/// Where a record stands in the drain, from its next PagerDuty event: triggers first, then the
/// rest, each by its run's time. `None`: nothing waits for PagerDuty.
pub fn outbox_order(pending: &[Pending]) -> Option<String> {
    let head = pending.iter().find(|p| p.to == Channel::PagerDuty)?;
    let rank = match head.alert.event_action {
        EventAction::Trigger => 0,
        _ => 1,
    };
    Some(format!("{rank}#{}", head.alert.timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-21 00:00 UTC);

    #[test]
    fn a_full_window_gives_nothing_until_its_oldest_slot_is_a_window_old() {
        let limit = RateLimit { events: 3, window: Duration::seconds(60) };
        let mut window = Window::default();
        assert_eq!(window.take(T0, 2, &limit), 2);
        assert_eq!(window.take(T0 + Duration::seconds(10), 5, &limit), 1);
        assert_eq!(window.take(T0 + Duration::seconds(59), 1, &limit), 0);
        assert_eq!(window.take(T0 + Duration::seconds(60), 5, &limit), 2, "the two of T0 lapsed");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever instances ask, whenever: no window of `window` holds more than `events` slots,
        /// and a request is refused only when the window is full.
        #[test]
        fn no_window_ever_holds_more_than_the_limit(
            events in 1u32..20,
            window_secs in 1i64..120,
            asks in proptest::collection::vec((0i64..30_000, 1usize..30), 1..80),
        ) {
            let limit = RateLimit { events, window: Duration::seconds(window_secs) };
            let mut window = Window::default();
            let mut now = T0;
            let mut taken = Vec::new();
            for (step_ms, want) in asks {
                now += Duration::milliseconds(step_ms);
                let before = window.sent.iter().filter(|at| now - **at < limit.window).count();
                let got = window.take(now, want, &limit);
                prop_assert!(got <= want);
                prop_assert!(got == want || before + got == events as usize, "refused with room left");
                taken.extend(std::iter::repeat_n(now, got));
            }
            for (i, start) in taken.iter().enumerate() {
                let within = taken[i..].iter().filter(|at| **at - *start < limit.window).count();
                prop_assert!(within <= events as usize, "{within} slots within one window from {start}");
            }
        }
    }
}

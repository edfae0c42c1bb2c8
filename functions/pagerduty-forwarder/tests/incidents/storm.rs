//! PagerDuty's rate under a storm, through the library handler: generated storms (many checks
//! failing in three regions at once, their runs in any order within a period, handled by two
//! instances on one table) against a reference model of what must reach PagerDuty. It asserts:
//!
//! 1. **The rate.** No window of `PAGERDUTY_RATE_WINDOW_SECS` holds more than
//!    `PAGERDUTY_RATE_EVENTS` accepted events, whichever instance sent them.
//! 2. **Triggers first.** When a resolve leaves, no other incident's trigger is waiting.
//! 3. **Nothing dropped.** Once the runs pass and the outbox drains, every check got exactly
//!    what the model says: one trigger (it failed in every region for one to three periods,
//!    outages starting and ending at different periods) and then one resolve; nothing is left
//!    queued or listed in the outbox.
//!
//! Seeded, like [`super::model`]: `MODEL_SEED=<seed>` replays one case.

use super::harness::{Kind, Rng, T0, Table, alert, key, lock};
use pagerduty_forwarder::state::{Channel, StateStore, record_key};
use std::sync::{Arc, Mutex};
use synthetic_checks::alert::EventAction;
use time::{Duration, OffsetDateTime};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const RATE: usize = 4;
const WINDOW: Duration = Duration::MINUTE;
const CASES: u64 = 12;

fn check(index: u64) -> String {
    format!("check-{index:03}")
}

async fn storm_case(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let checks = 5 + rng.below(21);
    // Each check fails for 1 to 3 periods from period 1 to 4: new outages while others end.
    let outages: Vec<(i64, i64)> = (0..checks).map(|_| (1 + rng.below(4) as i64, 1 + rng.below(3) as i64)).collect();
    let storm_periods = outages.iter().map(|(start, length)| start + length - 1).max().unwrap_or(1);
    let settings = [
        ("REGIONS", "us-east-1,eu-west-1,ap-southeast-2"),
        ("PAGERDUTY_RATE_EVENTS", "4"),
        ("PAGERDUTY_RATE_WINDOW_SECS", "60"),
        // Runs in random order within a period can look like flapping, documented apart.
        ("FLAP_CHANGES", "100"),
    ];
    let table = Table::new(&settings);
    let other = Table::sharing(&settings, table.store.clone(), table.pagerduty.clone());
    let sent: Arc<Mutex<Vec<(OffsetDateTime, EventAction, String)>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let (store, clocks, log, seen) =
        (table.store.clone(), [table.clock.clone(), other.clock.clone()], sent.clone(), violations.clone());
    table.pagerduty.on_accept(move |event, _| {
        let now = clocks.iter().map(|c| *lock(c)).max().unwrap_or(T0);
        lock(&log).push((now, event.event_action, event.dedup_key.clone()));
        if event.event_action != EventAction::Resolve {
            return;
        }
        for index in 0..checks {
            let record = store.peek(&record_key("prod", &check(index))).unwrap_or_default();
            let waiting = record.pending.iter().any(|p| {
                p.to == Channel::PagerDuty
                    && p.alert.event_action == EventAction::Trigger
                    && p.alert.dedup_key != event.dedup_key
            });
            if waiting {
                lock(&seen).push(format!("{} resolved while {}'s trigger waited", event.dedup_key, check(index)));
            }
        }
    });
    let mut trace = Vec::new();
    // Failing periods, then passing ones until the outbox has drained (bounded).
    for period in 0..40i64 {
        let failing = (1..=storm_periods).contains(&period);
        let mut runs: Vec<(i64, u64, &str)> = Vec::new();
        let down = |index: u64| {
            let (start, length) = outages[index as usize];
            (start..start + length).contains(&period)
        };
        for index in 0..checks {
            for region in REGIONS {
                runs.push((period * 300 + rng.below(300) as i64, index, region));
            }
        }
        runs.sort();
        for (second, index, region) in runs {
            let at = T0 + Duration::seconds(second);
            let kind = if down(index) { Kind::Failed } else { Kind::Passed };
            let instance = if rng.below(2) == 0 { &table } else { &other };
            let outcome = instance.deliver(alert(&check(index), region, at, kind), at).await;
            if let Err(error) = outcome {
                lock(&violations).push(format!("{second}s {} {region}: {error}", check(index)));
            }
        }
        let outbox = table.store.deferred().await.unwrap_or_default();
        trace.push(format!("period {period} (failing {failing}): outbox {}", outbox.len()));
        if period > storm_periods && outbox.is_empty() {
            break;
        }
    }
    let sent = lock(&sent).clone();
    for (i, (start, _, _)) in sent.iter().enumerate() {
        let within = sent[i..].iter().filter(|(at, _, _)| *at - *start < WINDOW).count();
        if within > RATE {
            lock(&violations).push(format!("{within} events within a minute from {start}"));
        }
    }
    for index in 0..checks {
        let name = check(index);
        let actions: Vec<EventAction> =
            sent.iter().filter(|(_, _, k)| *k == key(&name)).map(|(_, action, _)| *action).collect();
        let record = table.record(&name).await;
        if actions != [EventAction::Trigger, EventAction::Resolve] {
            let times: Vec<_> = sent.iter().filter(|(_, _, k)| *k == key(&name)).collect();
            lock(&violations).push(format!(
                "{name}: PagerDuty got {times:?}, the model says a trigger then a resolve; the record: {:?}",
                record.state
            ));
        }
        if !record.pending.is_empty() {
            lock(&violations).push(format!("{name}: still queued: {:?}", record.pending));
        }
    }
    if !table.store.deferred().await.unwrap_or_default().is_empty() {
        lock(&violations).push("the outbox never drained".into());
    }
    let violations = lock(&violations).clone();
    match violations.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "seed {seed}: {checks} checks failing (from period, for periods) {outages:?}: {violations:#?}\n{}",
            trace.join("\n")
        )),
    }
}

#[tokio::test]
async fn a_storm_keeps_pagerdutys_rate_sends_triggers_first_and_drops_nothing() {
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..CASES).map(|case| 0x5707_0000 + case).collect(),
    };
    for seed in seeds {
        if let Err(failure) = storm_case(seed).await {
            panic!("{failure}");
        }
    }
}

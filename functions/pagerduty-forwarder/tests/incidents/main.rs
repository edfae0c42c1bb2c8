//! The incident state machine through the library handler, with its table in memory: the
//! defects of issue 20 (each test failed before its fix) and the model-based test ([`model`]).

mod dependencies;
mod harness;
mod model;
mod storm;

use harness::{Answer, Kind, Table, alert_stamped, at, key, severity};
use serde_json::json;
use std::sync::Arc;
use synthetic_checks::alert::{EventAction, PublishError};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const SOUTH: &str = "ap-southeast-2";

/// `check` runs every 5 minutes from `from` to `to` (minutes) in one region; `failed(minute)`.
async fn every_5_min(table: &Table, check: &str, from: i64, to: i64, kind: impl Fn(i64) -> Kind) {
    for minute in (from..to).step_by(5) {
        let _ = table.run(check, EAST, minute as f64, kind(minute)).await;
    }
}

fn failed_from(start: i64) -> impl Fn(i64) -> Kind {
    move |minute| if minute >= start { Kind::Failed } else { Kind::Passed }
}

#[tokio::test]
async fn an_undeliverable_warning_never_holds_back_a_page() {
    let table = Table::new(&[]);
    // The notify topic was deleted: every warning is refused, for good.
    table.humans.fail_with(std::iter::repeat_n(PublishError::Permanent("NotFound: Topic does not exist".into()), 100));
    every_5_min(&table, "auth", 0, 30, failed_from(0)).await;
    assert_eq!(table.pagerduty.triggers(&key("auth")).len(), 1, "six failed runs page once");
    assert!(table.record("auth").await.pending.is_empty(), "nothing stays queued behind the refused warning");
}

#[tokio::test]
async fn a_warning_the_human_channel_cannot_take_yet_fails_the_invocation_after_the_page() {
    let table = Table::new(&[]);
    table.humans.fail_with(std::iter::repeat_n(PublishError::Retryable("Throttling".into()), 3));
    let first = table.run("auth", EAST, 0.0, Kind::Failed).await.unwrap_err();
    assert_eq!(first.error_type(), "AlertUndeliverable", "kept for Lambda's retry");
    table.run("auth", EAST, 5.0, Kind::Failed).await.expect("the warning goes out, then the page");
    assert_eq!(table.pagerduty.triggers(&key("auth")).len(), 1);
    assert_eq!(table.humans.delivered().len(), 1);
}

#[tokio::test]
async fn what_the_fallback_paged_is_resolved_once_the_table_is_back() {
    let table = Table::new(&[]);
    table.store.set_unavailable(true);
    table.run("auth", EAST, 0.0, Kind::Failed).await.expect("paged without the table");
    assert!(table.pagerduty.is_open(&key("auth")));
    table.store.set_unavailable(false);
    table.run("auth", EAST, 5.0, Kind::Passed).await.expect("recorded");
    assert!(!table.pagerduty.is_open(&key("auth")), "{:?}", table.pagerduty.accepted());
    assert_eq!(table.record("auth").await.state.incident, None);
}

#[tokio::test]
async fn what_the_fallback_resolved_pages_again_once_the_table_is_back() {
    let table = Table::new(&[]);
    every_5_min(&table, "auth", 0, 10, failed_from(0)).await;
    assert!(table.pagerduty.is_open(&key("auth")));
    table.store.set_unavailable(true);
    table.run("auth", EAST, 10.0, Kind::Passed).await.expect("resolved without the table");
    assert!(!table.pagerduty.is_open(&key("auth")));
    table.store.set_unavailable(false);
    every_5_min(&table, "auth", 15, 25, failed_from(15)).await;
    assert!(table.pagerduty.is_open(&key("auth")), "the new outage pages: {:?}", table.pagerduty.accepted());
    assert!(table.record("auth").await.state.incident.is_some());
}

#[tokio::test]
async fn a_region_that_stops_reporting_does_not_resolve_the_outage_of_the_others() {
    let table = Table::new(&[("REGIONS", "us-east-1,eu-west-1")]);
    for minute in [0.0, 5.0] {
        table.run("auth", EAST, minute, Kind::Failed).await.unwrap();
        table.run("auth", WEST, minute + 0.5, Kind::Failed).await.unwrap();
    }
    assert!(table.pagerduty.is_open(&key("auth")), "two of two regions fail: paged");
    // eu-west-1 goes silent; us-east-1 keeps failing.
    for minute in [10.0, 15.0, 20.0, 25.0] {
        table.run("auth", EAST, minute, Kind::Failed).await.unwrap();
    }
    assert!(table.pagerduty.is_open(&key("auth")), "{:?}", table.pagerduty.accepted());
    let warned = table.humans.delivered();
    assert!(
        warned.iter().any(|w| w.summary.contains("eu-west-1") && w.summary.contains("not reported")),
        "the silent region is worth telling someone: {warned:#?}"
    );
    // The region that reports passes: fewer than the quorum can still be failing.
    table.run("auth", EAST, 30.0, Kind::Passed).await.unwrap();
    assert!(!table.pagerduty.is_open(&key("auth")));
}

#[tokio::test]
async fn a_region_outside_regions_is_not_counted() {
    let table = Table::new(&[("REGIONS", "us-east-1,eu-west-1,ap-southeast-2")]);
    for minute in [0.0, 5.0, 10.0] {
        table.run("auth", EAST, minute, Kind::Failed).await.unwrap();
        table.run("auth", "sa-east-1", minute + 0.3, Kind::Failed).await.unwrap();
        table.run("auth", WEST, minute + 0.6, Kind::Passed).await.unwrap();
        table.run("auth", SOUTH, minute + 0.9, Kind::Passed).await.unwrap();
    }
    assert_eq!(table.pagerduty.accepted(), [], "one configured region of three fails: no page");
}

#[tokio::test]
async fn a_run_stamped_in_the_future_does_not_blind_its_region() {
    let table = Table::new(&[]);
    // The check's clock is six hours ahead for one run.
    table.deliver(alert_stamped("auth", EAST, at(0.0), Kind::Passed, at(360.0)), at(0.0)).await.unwrap();
    every_5_min(&table, "auth", 5, 35, failed_from(5)).await;
    assert_eq!(table.pagerduty.triggers(&key("auth")).len(), 1);
}

#[tokio::test]
async fn a_future_alarm_does_not_blind_its_alarm() {
    let table = Table::new(&[]);
    // An OK stamped in the future, then the alarm fires while the check passes.
    let ok = harness::alarm_message("synth-prod-auth-slo-slow-burn", EAST, at(600.0), false);
    table.deliver(ok, at(0.0)).await.unwrap();
    table.run("auth", EAST, 5.0, Kind::Passed).await.unwrap();
    table.alarm("auth", "slo-slow-burn", EAST, 6.0, true).await.unwrap();
    assert!(table.pagerduty.is_open(&format!("{}/slo-burn", key("auth"))));
}

/// `auth` fails twice; PagerDuty answers the page `answer`, and while it does another
/// environment, on the same table, handles the next run, a pass.
async fn page_while_another_environment_resolves(answer: Answer) -> Table {
    let a = Table::new(&[]);
    let b = Arc::new(Table::sharing(&[], a.store.clone(), a.pagerduty.clone()));
    a.run("auth", EAST, 0.0, Kind::Failed).await.unwrap();
    a.pagerduty.script([answer]);
    a.pagerduty.meanwhile(async move {
        b.run("auth", EAST, 5.5, Kind::Passed).await.expect("the other invocation records the pass");
    });
    let _ = a.run("auth", EAST, 5.0, Kind::Failed).await;
    a
}

#[tokio::test]
async fn a_send_retried_after_a_throttle_does_not_reopen_what_another_invocation_resolved() {
    // The page is throttled once; meanwhile another environment handles the next, passing run.
    let a = page_while_another_environment_resolves(Answer::Throttled).await;
    assert_eq!(a.record("auth").await.state.incident, None);
    assert!(!a.pagerduty.is_open(&key("auth")), "PagerDuty must agree with the table: {:?}", a.pagerduty.accepted());
}

#[tokio::test]
async fn a_resolve_decided_while_a_trigger_is_in_flight_is_sent_after_it() {
    // The page is on its way when another environment resolves the incident and would send
    // its resolve first.
    let a = page_while_another_environment_resolves(Answer::AcceptedLate).await;
    let actions: Vec<EventAction> = a.pagerduty.accepted().iter().map(|e| e.event_action).collect();
    assert_eq!(actions, [EventAction::Trigger, EventAction::Resolve], "in the order they were decided");
    assert_eq!(a.record("auth").await.state.incident, None);
    assert!(a.record("auth").await.pending.is_empty());
}

#[tokio::test]
async fn a_page_has_the_worst_severity_of_the_runs_that_confirmed_it() {
    let table = Table::new(&[("PAGE_AFTER_FAILED_RUNS", "3")]);
    for (minute, kind) in [(0, Kind::Failed), (5, Kind::Degraded), (10, Kind::Degraded)] {
        table.run("auth", EAST, minute as f64, kind).await.unwrap();
    }
    let triggers = table.pagerduty.triggers(&key("auth"));
    assert_eq!(triggers.iter().map(severity).collect::<Vec<_>>(), [json!("critical")]);
}

#[tokio::test]
async fn a_page_rises_when_a_later_run_is_worse() {
    let table = Table::new(&[]);
    for (minute, kind) in [(0, Kind::Degraded), (5, Kind::Degraded), (10, Kind::Failed), (15, Kind::Degraded)] {
        table.run("auth", EAST, minute as f64, kind).await.unwrap();
    }
    let triggers = table.pagerduty.triggers(&key("auth"));
    assert_eq!(triggers.iter().map(severity).collect::<Vec<_>>(), [json!("warning"), json!("critical")]);
}

#[tokio::test]
async fn a_check_failing_every_other_run_pages_as_flapping() {
    let table = Table::new(&[]);
    every_5_min(&table, "auth", 0, 120, |m| if m % 10 == 0 { Kind::Failed } else { Kind::Passed }).await;
    let triggers = table.pagerduty.triggers(&key("auth"));
    assert!(!triggers.is_empty(), "flapping for two hours pages");
    let details = &triggers[0].payload.as_ref().unwrap().custom_details;
    assert_eq!(details["flapping"], true, "{details:?}");
    assert!(table.pagerduty.is_open(&key("auth")), "open until an hour without a failed run");
    assert!(table.humans.delivered().len() <= 3, "{} warnings", table.humans.delivered().len());
}

#[tokio::test]
async fn a_region_down_for_over_an_hour_is_a_region_incident_and_its_alarms_join_it() {
    let table = Table::new(&[("REGIONS", "us-east-1,eu-west-1,ap-southeast-2")]);
    let region_key = format!("{}/region/{WEST}", key("auth"));
    for minute in (0..150).step_by(5) {
        let m = minute as f64;
        table.run("auth", EAST, m, Kind::Passed).await.unwrap();
        table.run("auth", WEST, m + 0.5, if minute < 120 { Kind::Failed } else { Kind::Passed }).await.unwrap();
        table.run("auth", SOUTH, m + 1.0, Kind::Passed).await.unwrap();
        if minute == 90 {
            table.alarm("auth", "slo-fast-burn", WEST, m + 0.7, true).await.unwrap();
        }
        let opened = !table.pagerduty.triggers(&region_key).is_empty();
        assert_eq!(opened, (60..120).contains(&minute) || minute >= 120, "minute {minute}");
    }
    let triggers = table.pagerduty.triggers(&region_key);
    assert_eq!(severity(&triggers[0]), json!("error"));
    assert!(triggers.iter().skip(1).any(|t| t.payload.as_ref().unwrap().custom_details.contains_key("update")));
    assert!(!table.pagerduty.is_open(&region_key), "resolved when the region passes");
    assert!(!table.pagerduty.is_open(&key("auth")), "one region never pages the check's incident");
}

#[tokio::test]
async fn a_burn_alarm_that_fired_during_a_silence_pages_after_it() {
    let table = Table::new(&[]);
    table.silence("auth", 0.0, 30.0).await;
    every_5_min(&table, "auth", 0, 15, |_| Kind::Passed).await;
    table.alarm("auth", "slo-slow-burn", EAST, 12.0, true).await.unwrap();
    every_5_min(&table, "auth", 15, 30, |_| Kind::Passed).await;
    assert_eq!(table.pagerduty.accepted(), [], "nothing pages during the silence");
    table.run("auth", EAST, 30.0, Kind::Passed).await.unwrap();
    assert!(table.pagerduty.is_open(&format!("{}/slo-burn", key("auth"))), "the alarm is still in ALARM");
}

#[tokio::test]
async fn an_outage_that_ended_during_a_pagerduty_outage_does_not_page() {
    let table = Table::new(&[]);
    table.run("auth", EAST, 0.0, Kind::Failed).await.unwrap();
    table.pagerduty.script([Answer::Unavailable; 3]);
    table.run("auth", EAST, 5.0, Kind::Failed).await.unwrap_err();
    table.run("auth", EAST, 10.0, Kind::Passed).await.unwrap();
    let actions: Vec<EventAction> = table.pagerduty.accepted().iter().map(|e| e.event_action).collect();
    assert!(!actions.contains(&EventAction::Trigger), "a finished incident does not page: {actions:?}");
    assert!(table.record("auth").await.pending.is_empty());
}

#[tokio::test]
async fn a_check_removed_while_its_incident_is_open_is_resolved_as_an_orphan() {
    let table = Table::new(&[]);
    every_5_min(&table, "auth", 0, 10, failed_from(0)).await;
    assert!(table.pagerduty.is_open(&key("auth")));
    // auth is renamed while it is down: only the other checks report from now on.
    for hour in [1.0, 12.0, 23.0] {
        table.run("search", EAST, hour * 60.0, Kind::Passed).await.unwrap();
    }
    assert!(table.pagerduty.is_open(&key("auth")), "a day without runs is not yet an orphan");
    table.run("search", EAST, 25.0 * 60.0, Kind::Passed).await.unwrap();
    assert!(!table.pagerduty.is_open(&key("auth")), "{:?}", table.pagerduty.accepted());
    assert_eq!(table.record("auth").await.state.incident, None);
    let told = table.humans.delivered();
    assert!(
        told.iter().any(|w| w.check == "auth" && w.summary.contains("orphaned: nothing recorded for 24 h")),
        "{told:#?}"
    );
    let before = table.pagerduty.accepted().len();
    table.run("search", EAST, 27.0 * 60.0, Kind::Passed).await.unwrap();
    assert_eq!(table.pagerduty.accepted().len(), before, "resolved once");
}

#[tokio::test]
async fn pagerduty_throttling_through_every_retry_backs_off_for_a_window_and_drops_nothing() {
    use pagerduty_forwarder::state::StateStore;
    let table = Table::new(&[]);
    table.run("auth", EAST, 0.0, Kind::Failed).await.unwrap();
    table.pagerduty.script([Answer::Throttled; 3]);
    table.run("auth", EAST, 5.0, Kind::Failed).await.expect("the page waits; the run is not failed");
    assert_eq!(table.pagerduty.accepted(), [], "throttled");
    assert_eq!(table.store.deferred().await.unwrap().len(), 1, "the page waits in the outbox");
    // Within the window no instance sends: another check's run half a minute later leaves it.
    table.run("search", EAST, 5.5, Kind::Passed).await.unwrap();
    assert_eq!(table.pagerduty.accepted(), [], "backed off");
    // A window later, the next run of any check sends it.
    table.run("search", EAST, 7.0, Kind::Passed).await.unwrap();
    assert_eq!(table.pagerduty.triggers(&key("auth")).len(), 1);
    assert_eq!(table.store.deferred().await.unwrap(), [], "drained");
}

#[tokio::test]
async fn a_scheduled_drain_sends_what_waits_when_no_run_arrives() {
    let table = Table::new(&[]);
    table.run("auth", EAST, 0.0, Kind::Failed).await.unwrap();
    table.pagerduty.script([Answer::Throttled; 3]);
    table.run("auth", EAST, 5.0, Kind::Failed).await.expect("the page waits");
    *harness::lock(&table.clock) = at(5.5);
    table.forwarder.drain().await.expect("drained");
    assert_eq!(table.pagerduty.accepted(), [], "still within the window after the 429");
    *harness::lock(&table.clock) = at(7.0);
    table.forwarder.drain().await.expect("drained");
    assert_eq!(table.pagerduty.triggers(&key("auth")).len(), 1, "sent by the tick alone");
}

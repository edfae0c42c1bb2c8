//! One page per outage at a hundred checks, through the real forwarder binary (moto's DynamoDB,
//! the fake PagerDuty): the target down under 100 checks that depend on `health` is one page
//! listing them; payments alone down is one page for payment; a storm of 100 checks in three
//! regions stays within PagerDuty's rate (the fake answers 429 above it), triggers first, and
//! every resolve follows. Time is compressed for the runs (their own timestamps); the rate is
//! real time, so the storm runs with a 2-second window.

use synthetic_e2e::fake_pagerduty::Incident;
use synthetic_e2e::incident_replay::{Replay, RunKind, plan_file, planned};
use synthetic_e2e::lambda_emulator::Invocation;

const REGION: &str = "us-east-1";
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// The shop's five checks and 95 more: 100 checks, health last.
fn hundred() -> Vec<String> {
    let mut names: Vec<String> = ["auth", "products", "payment", "search"].map(String::from).to_vec();
    names.extend((5..100).map(|i| format!("check-{i:03}")));
    names.push("health".into());
    names
}

/// Replays `names` from one region every 5 minutes from `from` to `to` (minutes), in that order
/// within each period, failing when `failed(name, minute)`.
async fn periods(replay: &mut Replay, names: &[String], from: i64, to: i64, failed: impl Fn(&str, i64) -> bool) {
    for minute in (from..to).step_by(5) {
        for (slot, name) in names.iter().enumerate() {
            let at = replay.at(minute as f64 + slot as f64 * 0.02);
            let kind = if failed(name, minute) { RunKind::Failed } else { RunKind::Passed };
            let (invocation, _) = replay.run(name, REGION, at, kind).await;
            assert!(matches!(invocation, Invocation::Response(_)), "{name} at {minute}: {invocation:?}");
        }
    }
}

async fn depending_on_health() -> (Replay, Vec<String>) {
    let names = hundred();
    let checks = names.iter().map(|n| planned(n, 5, if n == "health" { &[] } else { &["health"] })).collect();
    let plan = plan_file(checks);
    let replay = Replay::start(&[("CHECK_PLAN_FILE", plan.as_str())]).await.expect("replay stack");
    (replay, names)
}

fn summary(incidents: &[Incident]) -> Vec<(&str, &str)> {
    incidents.iter().map(|i| (i.dedup_key.as_str(), i.status)).collect()
}

#[tokio::test]
async fn the_target_down_for_30_minutes_under_100_checks_is_one_page_listing_the_dependants() {
    let (mut replay, names) = depending_on_health().await;
    // Each period the dependants report before health: their failures arrive first.
    periods(&mut replay, &names, 0, 50, |_, minute| (10..40).contains(&minute)).await;
    let incidents = replay.incidents();
    assert_eq!(summary(&incidents), [("synthetic/prod/health", "resolved")], "{incidents:#?}");
    let listed = incidents[0].details.iter().filter_map(|d| d["also_failing"].as_array()).next_back().cloned();
    let listed: Vec<String> = listed.unwrap_or_default().iter().filter_map(|v| v.as_str().map(String::from)).collect();
    assert_eq!(listed.len(), 99, "{listed:?}");
    assert!(["auth", "payment", "products", "search"].iter().all(|c| listed.iter().any(|l| l == c)), "{listed:?}");
    replay.stop().await;
}

#[tokio::test]
async fn payments_alone_down_under_100_checks_is_one_page_for_payment() {
    let (mut replay, names) = depending_on_health().await;
    periods(&mut replay, &names, 0, 20, |name, minute| name == "payment" && (5..15).contains(&minute)).await;
    let incidents = replay.incidents();
    assert_eq!(summary(&incidents), [("synthetic/prod/payment", "resolved")], "{incidents:#?}");
    replay.stop().await;
}

#[tokio::test]
async fn a_storm_of_100_checks_in_3_regions_keeps_pagerdutys_rate_triggers_first_then_every_resolve() {
    let regions = REGIONS.join(",");
    let settings = [
        ("REGIONS", regions.as_str()),
        // Half the fake's 8 per 2 s: below what the replay's invocations decide (several pages a
        // second), so the storm always goes over it, with room for send jitter.
        ("PAGERDUTY_RATE_EVENTS", "4"),
        ("PAGERDUTY_RATE_WINDOW_SECS", "2"),
        ("FLAP_CHANGES", "100"),
    ];
    let mut replay = Replay::start(&settings).await.expect("replay stack");
    replay.pagerduty.enforce_rate(8, std::time::Duration::from_secs(2));
    let names = hundred();
    // Period 0 fails everywhere, then everything passes, period after period, until PagerDuty
    // has every resolve (the runs drain the outbox).
    for period in 0..12 {
        for region in REGIONS {
            for (slot, name) in names.iter().enumerate() {
                let at = replay.at(period as f64 * 5.0 + slot as f64 * 0.01);
                let kind = if period == 0 { RunKind::Failed } else { RunKind::Passed };
                let (invocation, _) = replay.run(name, region, at, kind).await;
                assert!(matches!(invocation, Invocation::Response(_)), "{name} {region} {period}: {invocation:?}");
            }
        }
        let incidents = replay.incidents();
        if period > 0 && incidents.len() == names.len() && incidents.iter().all(|i| i.status == "resolved") {
            break;
        }
    }
    let incidents = replay.incidents();
    assert_eq!(incidents.len(), 100, "one incident per check: {:#?}", summary(&incidents));
    assert!(incidents.iter().all(|i| i.status == "resolved"), "{:#?}", summary(&incidents));
    assert_eq!(replay.pagerduty.throttled(), 0, "the forwarder kept within PagerDuty's rate");
    let waited = replay.logs().iter().any(|line| line.contains("rate is used up"));
    assert!(waited, "the storm went over the rate, so events waited in the outbox");
    let last_trigger = incidents.iter().map(|i| i.opened_by).max();
    let first_resolve = incidents.iter().filter_map(|i| i.resolved_by).min();
    assert!(last_trigger < first_resolve, "every trigger before any resolve: {last_trigger:?} {first_resolve:?}");
    replay.stop().await;
}

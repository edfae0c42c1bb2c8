//! One incident per problem: the table, replayed through the real forwarder binary with
//! its state in moto's DynamoDB and the fake PagerDuty's incident list. The burn rates and the
//! stopped-check sweep are the forwarder's (issue 22); these are the scenarios the template's
//! CloudWatch burn-rate and heartbeat alarms were replayed with before, with the same
//! expectations, plus a check that goes silent. Five-minute schedule, default policy, time
//! compressed.
//!
//! Every scenario also asserts that nothing paged through the operations topic: one outage, one
//! incident, whatever integration it would come through.

use serde_json::Value;
use synthetic_e2e::fake_pagerduty::Incident;
use synthetic_e2e::incident_replay::{Replay, RunKind, TABLE, run_alert, write_plan};
use synthetic_e2e::lambda_emulator::{Invocation, workspace_binary};
use synthetic_e2e::local_aws::unreachable_endpoint;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const REGION: &str = "us-east-1";
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const KEY: &str = "synthetic/prod/products";

/// Replays `products` from one region, every 5 minutes from `from` to `to` (minutes), failing
/// when `failed(minute)`; returns each run's minute with the PagerDuty events it caused.
async fn every_5_min(replay: &mut Replay, from: i64, to: i64, failed: impl Fn(i64) -> bool) -> Vec<(i64, Vec<Value>)> {
    let mut caused = Vec::new();
    for minute in (from..to).step_by(5) {
        let kind = if failed(minute) { RunKind::Failed } else { RunKind::Passed };
        let (invocation, events) = replay.run("products", REGION, replay.at(minute as f64), kind).await;
        assert!(matches!(invocation, Invocation::Response(_)), "minute {minute}: {invocation:?}\n{:#?}", replay.logs());
        caused.push((minute, events));
    }
    caused
}

/// The minute of the run whose invocation delivered accepted event `index`.
fn minute_of(caused: &[(i64, Vec<Value>)], index: usize) -> Option<i64> {
    let mut seen = 0;
    caused.iter().find_map(|(minute, events)| {
        seen += events.len();
        (index < seen).then_some(*minute)
    })
}

async fn watched(settings: &[(&str, &str)]) -> Replay {
    Replay::start(settings).await.expect("replay stack")
}

async fn assert_no_ops_page(replay: &mut Replay) {
    let alarms: Vec<_> =
        replay.ops().await.iter().filter(|n| n["NewStateValue"] == "ALARM").map(|n| n["AlarmName"].clone()).collect();
    assert!(alarms.is_empty(), "alarms paged through the operations topic too: {alarms:?}");
}

fn keys(incidents: &[Incident]) -> Vec<&str> {
    incidents.iter().map(|i| i.dedup_key.as_str()).collect()
}

#[tokio::test]
async fn one_failed_run_then_passes_is_one_warning_and_no_incident() {
    let mut replay = watched(&[]).await;
    every_5_min(&mut replay, 0, 60, |m| m == 10).await;
    assert_eq!(replay.incidents(), []);
    let warnings = replay.warnings().await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["severity"], "warning");
    assert!(warnings[0]["summary"].as_str().unwrap_or_default().contains("not paged"), "{}", warnings[0]);
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn a_hard_outage_of_30_minutes_is_one_incident_from_the_second_failed_run_to_the_first_pass() {
    let mut replay = watched(&[]).await;
    let caused = every_5_min(&mut replay, 0, 90, |m| (20..50).contains(&m)).await;
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert_eq!(minute_of(&caused, incidents[0].opened_by), Some(25), "triggered on the 2nd failed run");
    assert_eq!(incidents[0].resolved_by.and_then(|i| minute_of(&caused, i)), Some(50), "resolved on the first pass");
    assert_eq!(incidents[0].details[0]["confirmation"], "confirmed by 2 consecutive failed runs");
    // The forwarder's burn rates fired during the outage and joined it, as updates.
    let joined: Vec<&str> = incidents[0].details.iter().filter_map(|d| d["update"].as_str()).collect();
    assert!(joined.iter().any(|u| u.starts_with("slo-fast-burn in ALARM")), "{joined:?}");
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn flapping_for_six_hours_is_at_most_two_incidents_the_second_open_until_an_hour_of_passes() {
    let mut replay = watched(&[]).await;
    // Two consecutive failed runs in every six, for six hours; then passes.
    let caused = every_5_min(&mut replay, 0, 480, |m| m < 360 && m % 30 < 10).await;
    let incidents = replay.incidents();
    assert!((1..=2).contains(&incidents.len()), "{incidents:#?}");
    assert!(incidents.iter().all(|i| i.dedup_key == KEY), "{incidents:#?}");
    let last = incidents.last().expect("an incident");
    assert!(last.details.iter().any(|d| d["flapping"] == true), "marked flapping: {:#?}", last.details);
    let resolved = last.resolved_by.and_then(|i| minute_of(&caused, i)).expect("resolved after the flapping ended");
    let last_failure = 335;
    assert!(resolved - last_failure >= 60, "resolved at minute {resolved}, under an hour after the last failure");
    assert!(resolved - last_failure <= 65, "resolved at minute {resolved}: the first run after an hour of passes");
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

/// Three regions, runs staggered within each period; `failing` fail from minute 20 to 80.
async fn regional(failing: &[&str]) -> (Replay, Vec<(f64, Vec<Value>)>) {
    let regions = REGIONS.join(",");
    let mut replay = Replay::start(&[("REGIONS", regions.as_str())]).await.expect("replay stack");
    let mut caused = Vec::new();
    for minute in (0..120).step_by(5) {
        for (offset, region) in REGIONS.iter().enumerate() {
            let at = minute as f64 + offset as f64 * 0.7;
            let failed = failing.contains(region) && (20..80).contains(&minute);
            let kind = if failed { RunKind::Failed } else { RunKind::Passed };
            let (invocation, events) = replay.run("products", region, replay.at(at), kind).await;
            assert!(matches!(invocation, Invocation::Response(_)), "{region} {at}: {invocation:?}");
            caused.push((at, events));
        }
    }
    (replay, caused)
}

#[tokio::test]
async fn one_region_of_three_failing_for_an_hour_is_a_region_health_warning_only() {
    let (mut replay, _) = regional(&["eu-west-1"]).await;
    assert_eq!(replay.incidents(), []);
    let warnings = replay.warnings().await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0]["summary"].as_str().unwrap_or_default().contains("eu-west-1 only"), "{}", warnings[0]);
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn two_regions_of_three_failing_is_one_incident_in_the_first_period_both_report() {
    let (mut replay, caused) = regional(&["us-east-1", "ap-southeast-2"]).await;
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    let mut seen = 0;
    let opened_at = caused.iter().find_map(|(at, events)| {
        seen += events.len();
        (incidents[0].opened_by < seen).then_some(*at)
    });
    // us-east-1 reports at minute 20.0, ap-southeast-2 at 21.4: the quorum is there at 21.4.
    assert_eq!(opened_at, Some(21.4), "{incidents:#?}");
    assert_eq!(incidents[0].details[0]["failing_regions"], serde_json::json!(["ap-southeast-2", "us-east-1"]));
    assert!(incidents[0].resolved_by.is_some(), "resolved when the regions recover");
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn a_silence_over_an_outage_that_outlasts_it_pages_once_when_it_ends() {
    // The silence is added as on-call would, ahead of the work; so the replay runs in the future.
    let t0 = OffsetDateTime::now_utc() + Duration::minutes(10);
    let mut replay = Replay::start_at(&[], t0).await.expect("replay stack");
    let (starts, until) = (replay.at(0.0), replay.at(60.0));
    let format = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let cli = workspace_binary("synthetic").unwrap_or_else(|e| panic!("{e}"));
    let added = std::process::Command::new(cli)
        .args(["silence", "add", "--check", "products", "--table", TABLE, "--env", "prod", "--by", "replay"])
        .args(["--starts", &format(starts), "--until", &format(until), "--reason", "products database upgrade"])
        .envs(replay.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("synthetic silence add");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(String::from_utf8_lossy(&added.stdout).contains("products database upgrade"));

    let caused = every_5_min(&mut replay, 0, 120, |m| (10..100).contains(&m)).await;
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert_eq!(minute_of(&caused, incidents[0].opened_by), Some(60), "nothing during the silence, a page as it ends");
    assert_eq!(incidents[0].resolved_by.and_then(|i| minute_of(&caused, i)), Some(100));
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn a_locked_account_failing_three_checks_is_one_monitor_account_incident() {
    let mut replay = Replay::start(&[]).await.expect("replay stack");
    for minute in (0..90).step_by(5) {
        let locked = (20..60).contains(&minute);
        for (offset, check) in ["health", "auth", "products", "payment"].into_iter().enumerate() {
            let kind = match (locked, check) {
                (true, "health") | (false, _) => RunKind::Passed,
                (true, _) => RunKind::Rejected,
            };
            let at = replay.at(minute as f64 + offset as f64 * 0.25);
            let (invocation, _) = replay.run(check, REGION, at, kind).await;
            assert!(matches!(invocation, Invocation::Response(_)), "{check} {minute}: {invocation:?}");
        }
    }
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), ["synthetic/prod/monitor-account"], "{incidents:#?}");
    assert_eq!(incidents[0].severity, "error");
    assert!(incidents[0].resolved_by.is_some(), "a run that signs in again resolves it");
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn a_cold_start_and_a_lambda_retry_mid_outage_change_nothing() {
    let mut replay = watched(&[]).await;
    let mut caused = every_5_min(&mut replay, 0, 30, |m| m >= 20).await;
    // Lambda retries the invocation that paged, then the forwarder is replaced by a cold one.
    let before = replay.pagerduty.accepted().len();
    let retried = replay.redeliver().await;
    assert!(matches!(retried, Invocation::Response(_)), "{retried:?}");
    assert_eq!(replay.pagerduty.accepted().len(), before, "the retry found the page delivered and sent nothing");
    replay.restart().await.expect("a cold forwarder");
    caused.extend(every_5_min(&mut replay, 30, 90, |m| m < 50).await);
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert_eq!(minute_of(&caused, incidents[0].opened_by), Some(25));
    assert_eq!(incidents[0].resolved_by.and_then(|i| minute_of(&caused, i)), Some(50));
    assert_no_ops_page(&mut replay).await;
    replay.stop().await;
}

#[tokio::test]
async fn a_table_that_cannot_be_reached_still_pages_the_outage_once() {
    let unreachable = unreachable_endpoint().expect("a closed port");
    let mut replay = watched(&[("AWS_ENDPOINT_URL_DYNAMODB", unreachable.as_str())]).await;
    let caused = every_5_min(&mut replay, 0, 60, |m| (20..40).contains(&m)).await;
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert_eq!(minute_of(&caused, incidents[0].opened_by), Some(20), "without state, the first failed run pages");
    let said = incidents[0].details[0]["incident_state"].as_str().unwrap_or_default().to_string();
    assert!(said.contains("state table is unavailable"), "the incident says why: {said}");
    assert_eq!(incidents[0].resolved_by.and_then(|i| minute_of(&caused, i)), Some(40));
    replay.stop().await;
}

#[tokio::test]
async fn a_check_whose_clock_runs_ahead_does_not_blind_its_region() {
    let mut replay = watched(&[]).await;
    // One run stamped six hours ahead of when SNS received it; then an outage.
    let (received, stamp) = (replay.at(0.0), replay.at(360.0));
    let mut ahead = run_alert("products", REGION, received, RunKind::Passed);
    ahead.timestamp = stamp.format(&Rfc3339).unwrap_or_default();
    let answer = replay.deliver(&serde_json::to_string(&ahead).unwrap_or_default(), received).await;
    assert!(matches!(answer, Invocation::Response(_)), "{answer:?}");
    let caused = every_5_min(&mut replay, 5, 40, |m| m >= 10).await;
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert_eq!(minute_of(&caused, incidents[0].opened_by), Some(15), "paged on the 2nd failed run");
    replay.stop().await;
}

#[tokio::test]
async fn a_deleted_notify_topic_does_not_hold_back_the_page() {
    let missing = "arn:aws:sns:us-east-1:123456789012:deleted-notify-topic";
    let mut replay = Replay::start(&[("NOTIFY_TOPIC_ARN", missing)]).await.expect("replay stack");
    for minute in (0..30).step_by(5) {
        // The warning is refused for good: the invocation fails, and says so; the page goes out.
        replay.run("products", REGION, replay.at(minute as f64), RunKind::Failed).await;
    }
    let incidents = replay.incidents();
    assert_eq!(keys(&incidents), [KEY], "{incidents:#?}");
    assert!(replay.logs().iter().any(|l| l.contains("warning for the human channels was not delivered")));
    replay.stop().await;
}

/// The sweep's tick half a minute after `minute`.
async fn sweep(replay: &mut Replay, minute: i64) {
    let answer = replay.sweep(replay.at(minute as f64 + 0.5)).await;
    assert!(matches!(answer, Invocation::Response(_)), "sweep at {minute}: {answer:?}\n{:#?}", replay.logs());
}

#[tokio::test]
async fn a_check_that_goes_silent_is_raised_to_operations_and_resolved_when_it_runs_again() {
    // The sweep judges as of its own tick; the replay ends now, so every tick lies in the past.
    let plan = std::env::temp_dir().join(format!("replay-plan-{}.json", std::process::id()));
    write_plan(&plan, &[("products", 5), ("payment", 5)]).expect("plan file");
    let plan_file = plan.to_string_lossy().to_string();
    let t0 = OffsetDateTime::now_utc() - Duration::minutes(100);
    let mut replay = Replay::start_at(&[("CHECK_PLAN_FILE", plan_file.as_str())], t0).await.expect("replay stack");
    for minute in (0..30).step_by(5) {
        for check in ["products", "payment"] {
            replay.run(check, REGION, replay.at(minute as f64), RunKind::Passed).await;
        }
        sweep(&mut replay, minute).await;
    }
    // A deploy deletes payment and adds search, which runs from minute 35; products goes silent.
    write_plan(&plan, &[("products", 5), ("search", 5)]).expect("plan file");
    replay.restart().await.expect("the forwarder of the new deploy");
    for minute in (30..60).step_by(5) {
        if minute >= 35 {
            replay.run("search", REGION, replay.at(minute as f64), RunKind::Passed).await;
        }
        sweep(&mut replay, minute).await;
    }
    let raised = replay.ops().await;
    let names: Vec<_> = raised.iter().map(|n| (n["AlarmName"].clone(), n["NewStateValue"].clone())).collect();
    assert_eq!(names, [(Value::from("synthetic-prod-products-stopped"), Value::from("ALARM"))], "{raised:#?}");
    assert!(raised[0]["NewStateReason"].as_str().unwrap_or_default().contains("no run since"), "{}", raised[0]);
    // The last run at 25 and 3 periods of 5 minutes: the sweep of minute 40 raises it.
    let changed = raised[0]["StateChangeTime"].as_str().unwrap_or_default();
    let minute_40 = replay.at(40.5).format(&Rfc3339).unwrap_or_default();
    assert_eq!(&changed[..16], &minute_40[..16], "raised by the first sweep 15 minutes after the last run");

    for minute in (60..75).step_by(5) {
        replay.run("products", REGION, replay.at(minute as f64), RunKind::Passed).await;
        replay.run("search", REGION, replay.at(minute as f64), RunKind::Passed).await;
        sweep(&mut replay, minute).await;
    }
    let all = replay.ops().await;
    let states: Vec<_> = all.iter().map(|n| n["NewStateValue"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(states, ["ALARM", "OK"], "resolved by the first sweep after its runs return: {all:#?}");
    assert_eq!(replay.incidents(), [], "a stopped check is the operations topic's, not a page of the service");
    std::fs::remove_file(&plan).ok();
    replay.stop().await;
}

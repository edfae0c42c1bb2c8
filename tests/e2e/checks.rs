//! Health, sign-in and product listing against the demo shop, healthy and faulted.

use crate::helpers::*;
use serde_json::json;
use synthetic_checks::{Cause, Check, Outcome};
use synthetic_e2e::lambda_emulator::Invocation;
use synthetic_e2e::shop::{self, ShopConfig};

#[tokio::test]
async fn healthy_shop_passes_every_check_with_exactly_one_resolve() {
    let stack = stack().await;
    for check in Check::ALL {
        // WHEN each check runs once as a cold Lambda against the healthy shop
        let ran = run_once(&stack, check, &[FAST_RETRY]).await;
        // THEN it passes and publishes exactly one resolve
        assert_resolve(&ran);
        let run = ran.result();
        assert!(run.steps.iter().all(|s| s.outcome == Outcome::Passed && s.attempts == 1), "{run:#?}");
    }
    let state = stack.shop.handle().state();
    assert_eq!(state.traffic.real, 0, "every check request carries the synthetic marker");
    assert!(state.traffic.synthetic >= 7, "{state:?}");
    assert_eq!(state.payments.live, 0);
    stack.stop().await;
}

#[tokio::test]
async fn each_fault_gives_exactly_one_trigger_with_its_cause() {
    let stack = stack().await;
    let cases: &[(Check, &str, &str, EnvVars, Outcome, Cause)] = &[
        (Check::Health, "health", "down", &[], Outcome::Failed, Cause::HttpStatus),
        (
            Check::Health,
            "health",
            "slow:700",
            &[("HEALTH_DEGRADED_AFTER_MS", "300")],
            Outcome::Degraded,
            Cause::Timeout,
        ),
        (Check::Auth, "auth", "500", &[], Outcome::Failed, Cause::HttpStatus),
        (Check::Products, "products", "500", &[], Outcome::Failed, Cause::HttpStatus),
        (Check::Products, "products", "empty", &[], Outcome::Failed, Cause::Assertion),
        (
            Check::Products,
            "products",
            "slow:1500",
            &[("PRODUCTS_DEGRADED_AFTER_MS", "300"), ("PRODUCTS_FAIL_AFTER_MS", "500")],
            Outcome::Failed,
            Cause::Timeout,
        ),
    ];
    for (check, area, fault, env, status, cause) in cases {
        // GIVEN the shop with one injected fault
        stack.shop.handle().clear_all();
        stack.shop.handle().set_fault(area, fault).expect("valid fault");
        let mut env = env.to_vec();
        env.push(FAST_RETRY);
        // WHEN the check runs
        let ran = run_once(&stack, *check, &env).await;
        // THEN one trigger names the expected cause
        assert_trigger(&ran, *status, *cause);
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_locked_synthetic_account_is_one_monitor_account_incident_not_three_outages() {
    let stack = stack().await;
    stack.shop.handle().set_fault("auth", "lock").expect("valid fault");
    for check in [Check::Auth, Check::Products, Check::Payment] {
        // WHEN a check that signs in runs while the synthetic account is locked
        let ran = run_once(&stack, check, &[FAST_RETRY]).await;
        let run = ran.result();
        assert_eq!((run.status, run.cause), (Outcome::Failed, Some(Cause::CredentialsRejected)), "{run:#?}");
        // THEN its one alert triggers the shared monitor-account incident at severity error,
        // naming the check it blocks, and says nothing about the check's own journey
        let alert = ran.alert();
        assert_eq!(alert.body["dedup_key"], "synthetic/local/monitor-account");
        assert_eq!(
            (alert.body["event_action"].as_str(), alert.body["severity"].as_str()),
            (Some("trigger"), Some("error"))
        );
        assert_eq!(alert.body["account"], "rejected");
        let summary = alert.body["summary"].as_str().unwrap_or_default().to_string();
        assert!(
            summary.contains(&format!("blocks the {check} check")) && summary.contains("not a target outage"),
            "{summary}"
        );
        assert_eq!(run.steps.len(), 1, "nothing runs after a rejected login");
    }
    assert_eq!(stack.shop.handle().state().payments.live, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_heals_itself_in_a_warm_function() {
    const ROTATED: &str = "rotated-password-2";
    let stack = stack().await;
    let process = stack.spawn_check(Check::Auth, &[FAST_RETRY]).await.expect("spawn");
    // GIVEN a warm function that cached the account on its first run
    let first = synthetic_e2e::stack::invoke_scheduled(&process, Check::Auth).await.expect("invoke");
    assert!(matches!(first, Invocation::Response(_)));
    // WHEN the password is rotated in the shop and in Secrets Manager
    stack.rotate_password(ROTATED).await.expect("rotate");
    let second = synthetic_e2e::stack::invoke_scheduled(&process, Check::Auth).await.expect("invoke");
    // THEN the rejected login refreshes the secret and the run passes on the second attempt
    let Invocation::Response(body) = &second else { panic!("{second:?}") };
    assert_eq!(body["status"], "passed", "{body}");
    assert_eq!(body["steps"][0]["attempts"], 2);
    let logs = process.logs();
    process.shutdown().await;
    // AND neither password (the one rejected, the one read after rotation) reached a log line,
    // a result or an alert, at trace level
    let mut texts = logs.clone();
    texts.extend([format!("{first:?}"), format!("{second:?}")]);
    texts.extend(stack.alerts().await.expect("drain").iter().map(|a| a.raw.clone()));
    let mut secrets = stack.secret_values();
    secrets.push(ROTATED.to_string());
    assert!(secrets.contains(&stack.shop_config.password), "the old password is scanned for too");
    assert_none_leaked(&secrets, &texts);
    assert_logged_at_trace(&logs);
    stack.stop().await;
}

#[tokio::test]
async fn an_event_can_point_one_run_at_a_canary_and_bad_input_is_refused() {
    // GIVEN the configured shop and a second one, the canary, on another port of an allowed host:
    // another port is allowed only as a listed origin
    let stack = stack().await;
    let canary_shop = shop::spawn(ShopConfig::default()).await.expect("canary shop");
    assert_ne!(canary_shop.base_url(), stack.shop.base_url());
    let canary_origin = canary_shop.base_url().trim_end_matches('/').to_string();
    let allowed =
        [("TARGET_OVERRIDE_ALLOWED_HOSTS", "127.0.0.1"), ("TARGET_OVERRIDE_ALLOWED_ORIGINS", canary_origin.as_str())];
    let process = stack.spawn_check(Check::Health, &allowed).await.expect("spawn");

    // WHEN one event points the run at the canary
    let canary = format!("{}/", canary_shop.base_url());
    let ran =
        process.invoke(json!({"target_base_url": canary}), synthetic_e2e::stack::INVOKE_TIMEOUT).await.expect("invoke");

    // THEN the run reports the canary, and its traffic reached the canary and not the shop
    let Invocation::Response(body) = &ran else { panic!("{ran:?}") };
    assert_eq!((body["target"].as_str(), body["status"].as_str()), (Some(canary.as_str()), Some("passed")), "{body}");
    assert!(canary_shop.handle().state().traffic.synthetic >= 1, "{:?}", canary_shop.handle().state());
    let configured = stack.shop.handle().state().traffic;
    assert_eq!((configured.synthetic, configured.real), (0, 0), "the configured shop saw the canary run");

    // WHEN events point at a host that is not allowed, or carry credentials in the URL
    let refused = process
        .invoke(json!({"target_base_url": "https://attacker.example.net"}), synthetic_e2e::stack::INVOKE_TIMEOUT)
        .await
        .expect("invoke");
    let Invocation::Error { error_type, error_message } = &refused else { panic!("{refused:?}") };
    assert_eq!(error_type, "InvalidEvent");
    assert!(error_message.contains("TARGET_OVERRIDE_ALLOWED_HOSTS"), "{error_message}");
    // AND an allowed host on a port that is not listed is refused too
    let unlisted_port = process
        .invoke(json!({"target_base_url": "http://127.0.0.1:9/"}), synthetic_e2e::stack::INVOKE_TIMEOUT)
        .await
        .expect("invoke");
    let Invocation::Error { error_type, error_message } = &unlisted_port else { panic!("{unlisted_port:?}") };
    assert_eq!(error_type, "InvalidEvent");
    assert!(error_message.contains("TARGET_OVERRIDE_ALLOWED_ORIGINS"), "{error_message}");
    let credentialed = process
        .invoke(json!({"target_base_url": "http://deploy:hunter2@127.0.0.1/"}), synthetic_e2e::stack::INVOKE_TIMEOUT)
        .await
        .expect("invoke");
    let Invocation::Error { error_type, error_message } = &credentialed else { panic!("{credentialed:?}") };
    // THEN each is refused, the credentialed one without its value echoed
    assert_eq!(error_type, "InvalidEvent");
    assert!(error_message.contains("target_base_url must be") && error_message.contains("carries credentials"));
    assert!(!error_message.contains("hunter2"), "{error_message}");

    let logs = process.logs();
    process.shutdown().await;
    let alerts = stack.alerts().await.expect("drain");
    assert_eq!(alerts.len(), 1, "the refused events published nothing");
    // AND nothing secret was logged at trace on the way
    let mut texts = logs.clone();
    texts.extend([
        format!("{ran:?}"),
        format!("{refused:?}"),
        format!("{unlisted_port:?}"),
        format!("{credentialed:?}"),
    ]);
    texts.extend(alerts.iter().map(|a| a.raw.clone()));
    let mut secrets = stack.secret_values();
    secrets.push("hunter2".into());
    assert_none_leaked(&secrets, &texts);
    assert_logged_at_trace(&logs);
    let _ = canary_shop.stop().await;
    stack.stop().await;
}

/// The fifth check, added the documented way: a file in checks/, nothing else.
#[tokio::test]
async fn a_check_added_as_a_journey_file_runs_as_a_real_lambda() {
    let stack = stack().await;
    let cases: &[(&str, Option<(Outcome, Cause)>)] = &[
        ("none", None),
        ("500", Some((Outcome::Failed, Cause::HttpStatus))),
        ("empty", Some((Outcome::Failed, Cause::Assertion))),
    ];
    for (fault, expected) in cases {
        // GIVEN the shop's search healthy, or with a fault
        stack.shop.handle().clear_all();
        if *fault != "none" {
            stack.shop.handle().set_fault("search", fault).expect("valid fault");
        }
        // WHEN check-search runs once as a cold Lambda, with no secret configured
        let process =
            stack.spawn_check_named("search", &[FAST_RETRY, ("CREDENTIALS_SECRET_ID", "")]).await.expect("spawn");
        let invocation = process
            .invoke(synthetic_e2e::stack::scheduled_event_named("search"), synthetic_e2e::stack::INVOKE_TIMEOUT)
            .await
            .expect("invoke");
        let logs = process.logs();
        process.shutdown().await;
        let ran = Ran { invocation, alerts: stack.alerts().await.expect("drain"), logs };
        // THEN it reports like every built-in check: one alert, the dedup key of its own name
        match expected {
            None => assert_resolve(&ran),
            Some((status, cause)) => assert_trigger(&ran, *status, *cause),
        }
        assert_eq!(ran.result().check, "search");
        assert_eq!(ran.result().steps[0].name, "search");
    }
    assert_eq!(stack.shop.handle().state().traffic.real, 0, "its requests are marked synthetic");
    stack.stop().await;
}

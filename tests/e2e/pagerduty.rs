//! Paging end to end: a real check binary publishes to SNS in moto, SNS's delivery is handed to
//! the real `pagerduty-forwarder` binary as Lambda's SNS event, and the fake PagerDuty receives
//! the events.
//!
//! moto cannot invoke a Lambda, so a queue subscribed to the alert topic (envelope delivery)
//! stands in for the forwarder's subscription: each SNS envelope it receives is exactly the
//! `Sns` object of the record Lambda would be invoked with, one record per invocation. The fake
//! PagerDuty judges every body by PagerDuty's published contract, and every test asserts it
//! found nothing to object to.

use crate::helpers::*;
use serde_json::{Value, json};
use synthetic_checks::Check;
use synthetic_e2e::fake_pagerduty::FakePagerDuty;
use synthetic_e2e::lambda_emulator::{Invocation, LambdaProcess, workspace_binary};
use synthetic_e2e::pagerduty_contract::Contract;
use synthetic_e2e::stack::INVOKE_TIMEOUT;

const ROUTING_KEY: &str = "e2e0r0ut1ng0key00000000000000001";
const ROTATED_KEY: &str = "e2e0r0tated0key00000000000000002";
const RUNBOOK: &str = "https://wiki.example.com/runbooks/synthetic";
/// The filter policy the README gives human channels.
const TRIGGERS_ONLY: &str = r#"{"event_action": ["trigger"]}"#;

struct Pager {
    pagerduty: FakePagerDuty,
    forwarder: LambdaProcess,
    inbox: String,
    secret_arn: String,
}

impl Pager {
    /// The forwarder as `infra/template.yaml` configures it, pointed at the fake PagerDuty.
    async fn start(stack: &LocalStack) -> Pager {
        let contract = Contract::load().unwrap_or_else(|e| panic!("{e}"));
        let pagerduty = FakePagerDuty::with_contract(contract).await.expect("fake PagerDuty");
        let secret = json!({ "routing_key": ROUTING_KEY }).to_string();
        let secret_arn = stack.aws.create_secret("pagerduty/routing-key", &secret).await.expect("routing key");
        let inbox = stack.aws.subscribe_queue(&stack.topic_arn, "pagerduty-forwarder").await.expect("subscribe");
        let events_url = pagerduty.base_url();
        let mut env = stack.moto.aws_env();
        env.extend(
            [
                ("PAGERDUTY_SECRET_ID", secret_arn.as_str()),
                ("PAGERDUTY_EVENTS_URL", events_url.as_str()),
                ("PAGERDUTY_BACKOFF_MS", "10"),
                ("RUNBOOK_URL", RUNBOOK),
                ("RUST_LOG", "info"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let binary = workspace_binary("pagerduty-forwarder").unwrap_or_else(|e| panic!("{e}"));
        let forwarder = LambdaProcess::spawn(&binary, "pagerduty-forwarder", &env).await.expect("spawn forwarder");
        Pager { pagerduty, forwarder, inbox, secret_arn }
    }

    /// Every body PagerDuty received, after asserting each kept PagerDuty's contract.
    fn sent(&self) -> Vec<Value> {
        let violations = self.pagerduty.violations();
        assert!(violations.is_empty(), "PagerDuty's contract was violated: {violations:#?}");
        self.pagerduty.requests()
    }

    /// Invokes the forwarder once per SNS delivery since the last call, as SNS does.
    async fn forward(&self, stack: &LocalStack) -> Vec<Invocation> {
        let mut invocations = Vec::new();
        for envelope in self.deliveries(stack).await {
            let record = json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{}:pagerduty-forwarder", stack.topic_arn),
                "Sns": envelope,
            });
            let event = json!({ "Records": [record] });
            invocations.push(self.forwarder.invoke(event, INVOKE_TIMEOUT).await.expect("invoke forwarder"));
        }
        invocations
    }

    /// The SNS envelopes waiting in the stand-in subscription (moto delivers inside `Publish`).
    async fn deliveries(&self, stack: &LocalStack) -> Vec<Value> {
        let sqs = stack.aws.sqs();
        let mut envelopes = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(&self.inbox)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return envelopes;
            }
            for message in messages {
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message().queue_url(&self.inbox).receipt_handle(handle).send().await.expect("delete");
                }
                let body = message.body.unwrap_or_default();
                envelopes.push(serde_json::from_str(&body).unwrap_or_else(|e| panic!("not an envelope ({e}): {body}")));
            }
        }
    }
}

/// A human channel subscribed with the README's filter policy; returns its queue URL.
async fn human_channel(stack: &LocalStack) -> String {
    let queue_url = stack.aws.subscribe_queue(&stack.topic_arn, "on-call-email").await.expect("subscribe");
    let subscriptions = stack
        .aws
        .sns()
        .list_subscriptions_by_topic()
        .topic_arn(&stack.topic_arn)
        .send()
        .await
        .expect("list subscriptions");
    let subscription = subscriptions
        .subscriptions()
        .iter()
        .find(|s| s.endpoint().is_some_and(|e| e.ends_with(":on-call-email")))
        .and_then(|s| s.subscription_arn())
        .expect("the channel's subscription");
    stack
        .aws
        .sns()
        .set_subscription_attributes()
        .subscription_arn(subscription)
        .attribute_name("FilterPolicy")
        .attribute_value(TRIGGERS_ONLY)
        .send()
        .await
        .expect("set the filter policy");
    queue_url
}

#[tokio::test]
async fn a_broken_journey_pages_once_and_resolves_itself() {
    let stack = stack().await;
    let pager = Pager::start(&stack).await;
    let humans = human_channel(&stack).await;

    // GIVEN the shop's health endpoint is down for two runs, then back
    for healthy in [false, false, true] {
        stack.shop.handle().clear_all();
        if !healthy {
            stack.shop.handle().set_fault("health", "down").expect("valid fault");
        }
        // WHEN the check runs and SNS hands its alert to the forwarder
        run_once(&stack, Check::Health, &[FAST_RETRY]).await;
        let invocations = pager.forward(&stack).await;
        // THEN each run is one successful forward
        assert_eq!(invocations.len(), 1, "one alert per run: {invocations:?}");
        assert!(matches!(invocations[0], Invocation::Response(_)), "{invocations:?}");
    }

    // THEN PagerDuty saw two triggers and one resolve for one dedup key, with the routing key,
    // each within PagerDuty's contract
    let sent = pager.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    let actions: Vec<&str> = sent.iter().map(|b| b["event_action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    assert!(sent.iter().all(|b| b["dedup_key"] == "synthetic/local/health" && b["routing_key"] == ROUTING_KEY));
    let payload = &sent[0]["payload"];
    let shop_host = stack.shop.base_url().trim_start_matches("http://").to_string();
    assert_eq!(
        (&payload["source"], &payload["component"], &payload["group"], &payload["class"], &payload["severity"]),
        (&json!(shop_host), &json!("health"), &json!("local"), &json!("http_status"), &json!("critical"))
    );
    assert_eq!(sent[0]["links"][0]["href"], RUNBOOK);
    let logs_link = sent[0]["links"][1]["href"].as_str().unwrap_or_default();
    assert!(
        logs_link.starts_with("https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fcheck-health/log-events/emulator$252F$255B$2524LATEST$255D"),
        "{logs_link}"
    );

    // AND the human channel's filter policy let the triggers through, not the resolve
    let to_humans = stack.aws.drain(&humans).await.expect("drain");
    let human_actions: Vec<&str> =
        to_humans.iter().map(|m| m.body["event_action"].as_str().unwrap_or_default()).collect();
    assert_eq!(human_actions, ["trigger", "trigger"]);

    // AND the routing key never reached the forwarder's logs
    let logs = pager.forwarder.logs();
    assert!(logs.iter().filter(|l| l.contains("sent to PagerDuty")).count() == 3, "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains(ROUTING_KEY)), "the routing key leaked: {logs:#?}");
    pager.forwarder.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn pagerduty_down_or_a_malformed_message_fails_the_invocation_naming_the_message() {
    let stack = stack().await;
    let pager = Pager::start(&stack).await;

    // GIVEN PagerDuty answers 500 to everything
    pager.pagerduty.always(500);
    stack.shop.handle().set_fault("health", "down").expect("valid fault");
    // WHEN a failing run's trigger is forwarded
    run_once(&stack, Check::Health, &[FAST_RETRY]).await;
    let invocations = pager.forward(&stack).await;
    // THEN the forwarder retried, then failed so Lambda's retries and the DLQ keep the event
    let [Invocation::Error { error_type, error_message }] = invocations.as_slice() else { panic!("{invocations:?}") };
    assert_eq!(error_type, "AlertUndeliverable");
    assert!(error_message.contains("after 3 attempt(s): PagerDuty: HTTP 500"), "{error_message}");
    assert_eq!(pager.sent().len(), 3);

    // GIVEN something that is not an alert is published to the topic
    let published =
        stack.aws.sns().publish().topic_arn(&stack.topic_arn).message("hello").send().await.expect("publish");
    let message_id = published.message_id().unwrap_or_default().to_string();
    // WHEN it is forwarded
    let invocations = pager.forward(&stack).await;
    // THEN the error names the SNS message id, and nothing is sent
    let [Invocation::Error { error_type, error_message }] = invocations.as_slice() else { panic!("{invocations:?}") };
    assert_eq!(error_type, "InvalidEvent");
    assert!(error_message.contains(&format!("message {message_id}: invalid event")), "{error_message}");
    assert_eq!(pager.sent().len(), 3);
    pager.forwarder.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_routing_key_rotated_while_the_forwarder_is_warm_still_pages() {
    let stack = stack().await;
    let pager = Pager::start(&stack).await;

    // GIVEN the forwarder is warm: it has paged with the routing key it read at its cold start
    stack.shop.handle().set_fault("health", "down").expect("valid fault");
    run_once(&stack, Check::Health, &[FAST_RETRY]).await;
    let invocations = pager.forward(&stack).await;
    assert!(matches!(invocations.as_slice(), [Invocation::Response(_)]), "{invocations:?}");

    // WHEN the integration key is rotated: PagerDuty knows only the new one, the secret holds it
    pager.pagerduty.accept_routing_keys([ROTATED_KEY]);
    let rotated = json!({ "routing_key": ROTATED_KEY }).to_string();
    stack.aws.put_secret_value(&pager.secret_arn, &rotated).await.expect("rotate the routing key");
    run_once(&stack, Check::Health, &[FAST_RETRY]).await;
    let invocations = pager.forward(&stack).await;

    // THEN the page was refused with the old key and delivered with the new one
    let [Invocation::Response(response)] = invocations.as_slice() else { panic!("{invocations:?}") };
    assert_eq!(response["delivered"].as_array().map(Vec::len), Some(1), "{response}");
    let keys: Vec<Value> = pager.sent().iter().map(|b| b["routing_key"].clone()).collect();
    assert_eq!(keys, [json!(ROUTING_KEY), json!(ROUTING_KEY), json!(ROTATED_KEY)]);
    let logs = pager.forwarder.logs();
    assert!(logs.iter().any(|l| l.contains("resending with it")), "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains(ROUTING_KEY) || l.contains(ROTATED_KEY)), "a key leaked: {logs:#?}");
    pager.forwarder.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_locked_account_is_one_incident_and_the_first_sign_in_resolves_it() {
    let stack = stack().await;
    let pager = Pager::start(&stack).await;
    // GIVEN the synthetic account locked, and two checks that sign in
    stack.shop.handle().set_fault("auth", "lock").expect("valid fault");
    for check in [Check::Auth, Check::Products] {
        run_once(&stack, check, &[FAST_RETRY]).await;
    }
    // WHEN their alerts reach PagerDuty through the real forwarder
    pager.forward(&stack).await;
    // THEN PagerDuty holds one incident, the monitor's own account, and no journey incident
    let keys = |bodies: &[Value]| -> Vec<(String, String)> {
        bodies
            .iter()
            .map(|b| (b["event_action"].as_str().unwrap_or("").into(), b["dedup_key"].as_str().unwrap_or("").into()))
            .collect()
    };
    let account = "synthetic/local/monitor-account".to_string();
    let sent = pager.sent();
    assert_eq!(keys(&sent), [("trigger".to_string(), account.clone()), ("trigger".to_string(), account.clone())]);
    assert!(sent.iter().all(|b| b["payload"]["severity"] == "error"), "{sent:#?}");

    // WHEN the account is unlocked and one check signs in again
    stack.shop.handle().clear_all();
    run_once(&stack, Check::Auth, &[FAST_RETRY]).await;
    pager.forward(&stack).await;
    // THEN that run resolves its journey and the account incident
    let sent = pager.sent();
    assert_eq!(
        keys(&sent[2..]),
        [("resolve".to_string(), "synthetic/local/auth".to_string()), ("resolve".to_string(), account)]
    );
    pager.forwarder.shutdown().await;
    stack.stop().await;
}

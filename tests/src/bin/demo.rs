//! `make demo`: the four checks as real Lambda binaries against the local demo shop, over moto's
//! Secrets Manager and SNS, with every alert handed to the real PagerDuty forwarder (its incident
//! state in moto's DynamoDB) and a fake PagerDuty. Healthy, then broken two ways, then healed; each
//! schedule tick prints the results and what reached PagerDuty and the human channels, and the
//! end prints PagerDuty's incident list. Every process it starts is stopped on exit and on Ctrl-C.

use std::process::ExitCode;
use synthetic_checks::{Check, Outcome, RunResult};
use synthetic_e2e::fake_pagerduty::Incident;
use synthetic_e2e::incident_replay::Replay;
use synthetic_e2e::lambda_emulator::{Invocation, LambdaProcess};
use synthetic_e2e::stack::{ENV_NAME, LocalStack, invoke_scheduled};

/// One round of the story: faults to inject, how many schedule ticks it lasts, the outcome each
/// check must show in `Check::ALL` order (health, auth, products, payment), and the incidents it
/// opens and resolves (dedup keys without the `synthetic/local/` prefix).
struct Round {
    title: &'static str,
    faults: &'static [(&'static str, &'static str)],
    ticks: usize,
    expect: [Outcome; 4],
    opens: &'static [&'static str],
    resolves: &'static [&'static str],
}

const PASSED: Outcome = Outcome::Passed;
const FAILED: Outcome = Outcome::Failed;

const ROUNDS: [Round; 4] = [
    Round { title: "healthy shop", faults: &[], ticks: 1, expect: [PASSED; 4], opens: &[], resolves: &[] },
    Round {
        title: "products API answers 500",
        faults: &[("products", "500")],
        ticks: 2,
        expect: [PASSED, PASSED, FAILED, PASSED],
        opens: &["products"],
        resolves: &[],
    },
    Round {
        title: "synthetic account locked by fraud detection",
        faults: &[("auth", "lock")],
        ticks: 2,
        expect: [PASSED, FAILED, FAILED, FAILED],
        opens: &["monitor-account"],
        resolves: &[],
    },
    Round {
        title: "shop healed",
        faults: &[],
        ticks: 1,
        expect: [PASSED; 4],
        opens: &[],
        resolves: &["products", "monitor-account"],
    },
];

#[tokio::main]
async fn main() -> ExitCode {
    println!("Starting the local stack: demo shop, moto (Secrets Manager, SNS, SQS), four check Lambdas...");
    let stack = match LocalStack::start().await {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("demo: the local stack did not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut processes = Vec::new();
    let joined = Replay::join(
        stack.aws.clone(),
        stack.moto.aws_env(),
        &[("CHECK_ENV", ENV_NAME)],
        time::OffsetDateTime::now_utc(),
    );
    let mut pager = match joined.await {
        Ok(pager) => pager,
        Err(error) => {
            eprintln!("demo: the PagerDuty forwarder did not start: {error}");
            stack.stop().await;
            return ExitCode::FAILURE;
        }
    };
    let outcome = tokio::select! {
        outcome = demo(&stack, &mut pager, &mut processes) => outcome,
        _ = tokio::signal::ctrl_c() => {
            println!("\nInterrupted: stopping everything the demo started.");
            Ok(())
        }
    };
    for (_, process) in processes {
        process.shutdown().await;
    }
    pager.stop().await;
    stack.stop().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("demo: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(
    stack: &LocalStack,
    pager: &mut Replay,
    processes: &mut Vec<(Check, LambdaProcess)>,
) -> Result<(), String> {
    println!("  shop      {}", stack.shop.base_url());
    println!("  moto      {} (Secrets Manager, SNS, SQS, DynamoDB)", stack.moto.endpoint());
    println!("  topic     {} -> the PagerDuty forwarder", stack.topic_arn);
    println!("  pager     {} (fake PagerDuty, pages after 2 failed runs in a row)", pager.pagerduty.base_url());
    for check in Check::ALL {
        let process = stack.spawn_check(check, &[]).await.map_err(|e| e.to_string())?;
        processes.push((check, process));
    }
    for (number, round) in ROUNDS.iter().enumerate() {
        let shop = stack.shop.handle();
        shop.clear_all();
        for (area, fault) in round.faults {
            shop.set_fault(area, fault).map_err(|e| e.to_string())?;
        }
        let faults: Vec<String> = round.faults.iter().map(|(a, f)| format!("{a}={f}")).collect();
        let faults = if faults.is_empty() { "none".to_string() } else { faults.join(", ") };
        println!("\n== Round {}: {} (faults: {faults}) ==", number + 1, round.title);
        let before = pager.incidents();
        for tick in 1..=round.ticks {
            println!("-- schedule tick {tick} of {}", round.ticks);
            let results = run_all(processes).await?;
            print_results(&results);
            verify_results(round, &results)?;
            forward(stack, pager).await?;
        }
        verify_incidents(round, &before, &pager.incidents())?;
    }
    print_incidents(&pager.incidents());
    let state = stack.shop.handle().state();
    println!(
        "\nShop saw {} synthetic and {} real requests; sandbox payments: {} live, {} refunded.",
        state.traffic.synthetic, state.traffic.real, state.payments.live, state.payments.refunded
    );
    println!(
        "Demo finished: a broken journey paged once it failed twice in a row, a locked account paged once \
         as the monitor's own problem, and healing resolved both."
    );
    Ok(())
}

/// Hands this tick's alerts to the forwarder, one SNS delivery each, and prints what it did.
async fn forward(stack: &LocalStack, pager: &mut Replay) -> Result<(), String> {
    let mut alerts = stack.alerts().await.map_err(|e| e.to_string())?;
    alerts.sort_by_key(|a| Check::ALL.iter().position(|c| a.body["check"] == c.name()));
    let (events_before, warnings_before) = (pager.pagerduty.accepted().len(), pager.warnings().await.len());
    for alert in &alerts {
        if let Invocation::Error { error_type, error_message } =
            pager.deliver(&alert.raw, time::OffsetDateTime::now_utc()).await
        {
            return Err(format!("the forwarder failed: {error_type}: {error_message}"));
        }
    }
    let events = pager.pagerduty.accepted();
    let warnings = pager.warnings().await;
    println!("{} alert(s) on SNS, handed to the forwarder:", alerts.len());
    for event in &events[events_before..] {
        let summary = event["payload"]["summary"].as_str().unwrap_or("");
        println!(
            "  PagerDuty  {:<8} {} {summary}",
            event["event_action"].as_str().unwrap_or("?"),
            event["dedup_key"].as_str().unwrap_or("?")
        );
    }
    for warning in &warnings[warnings_before..] {
        println!("  humans     warning  {}", warning["summary"].as_str().unwrap_or("?"));
    }
    if events.len() == events_before && warnings.len() == warnings_before {
        println!("  nothing to page or tell");
    }
    Ok(())
}

fn print_incidents(incidents: &[Incident]) {
    println!("\nPagerDuty incident list ({}):", incidents.len());
    println!("  {:<3} {:<9} {:<9} {:<32} SUMMARY", "#", "STATUS", "SEVERITY", "DEDUP KEY");
    for incident in incidents {
        println!(
            "  {:<3} {:<9} {:<9} {:<32} {}",
            incident.number, incident.status, incident.severity, incident.dedup_key, incident.summary
        );
    }
}

/// Invokes the four warm functions concurrently, as four EventBridge schedules would.
async fn run_all(processes: &[(Check, LambdaProcess)]) -> Result<Vec<RunResult>, String> {
    let [health, auth, products, payment] = processes else {
        return Err(format!("expected four functions, have {}", processes.len()));
    };
    let (a, b, c, d) = tokio::join!(invoke(health), invoke(auth), invoke(products), invoke(payment));
    [a, b, c, d]
        .into_iter()
        .map(|(check, invocation)| match invocation {
            Ok(Invocation::Response(body)) => {
                serde_json::from_value(body).map_err(|e| format!("{check}: unreadable result: {e}"))
            }
            Ok(Invocation::Error { error_type, error_message }) => {
                Err(format!("{check}: the monitor itself failed: {error_type}: {error_message}"))
            }
            Err(error) => Err(format!("{check}: {error}")),
        })
        .collect()
}

async fn invoke(
    (check, process): &(Check, LambdaProcess),
) -> (Check, Result<Invocation, synthetic_e2e::stack::StackError>) {
    (*check, invoke_scheduled(process, *check).await)
}

fn print_results(results: &[RunResult]) {
    println!("{:<9} {:<9} {:<21} STEPS (ms, attempts when retried)", "CHECK", "OUTCOME", "CAUSE");
    for run in results {
        let steps: Vec<String> = run
            .steps
            .iter()
            .map(|s| match s.attempts {
                1 => format!("{} {}", s.name, s.duration_ms),
                n => format!("{} {} (x{n})", s.name, s.duration_ms),
            })
            .collect();
        let cause = run.cause.map_or("-", |c| c.as_str());
        println!("{:<9} {:<9} {:<21} {}", run.check, run.status.as_str(), cause, steps.join(", "));
    }
}

/// The demo checks its own story, so `make demo` is also a smoke test.
fn verify_results(round: &Round, results: &[RunResult]) -> Result<(), String> {
    for (check, expected) in Check::ALL.into_iter().zip(round.expect) {
        let run = results.iter().find(|r| r.check == check.name()).ok_or_else(|| format!("no result for {check}"))?;
        if run.status != expected {
            return Err(format!("round '{}': {check} was {:?}, expected {expected:?}", round.title, run.status));
        }
    }
    Ok(())
}

/// The incidents a round opened and resolved, against what the story says.
fn verify_incidents(round: &Round, before: &[Incident], after: &[Incident]) -> Result<(), String> {
    let key = |name: &&str| format!("synthetic/{ENV_NAME}/{name}");
    let opened: Vec<&str> = after[before.len()..].iter().map(|i| i.dedup_key.as_str()).collect();
    let resolved: Vec<&str> = after
        .iter()
        .filter(|i| i.status == "resolved" && before.iter().any(|b| b.number == i.number && b.status != "resolved"))
        .map(|i| i.dedup_key.as_str())
        .collect();
    let (opens, resolves): (Vec<String>, Vec<String>) =
        (round.opens.iter().map(key).collect(), round.resolves.iter().map(key).collect());
    if opened != opens || resolved.len() != resolves.len() || !resolves.iter().all(|r| resolved.contains(&r.as_str())) {
        return Err(format!(
            "round '{}': opened {opened:?} and resolved {resolved:?}, expected to open {opens:?} and resolve {resolves:?}",
            round.title
        ));
    }
    Ok(())
}

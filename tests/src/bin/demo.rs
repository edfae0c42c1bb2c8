//! `make demo`: the four checks as real Lambda binaries against the local demo shop, over moto's
//! Secrets Manager and SNS. Healthy, then broken two ways, then healed; each round prints the
//! results and the alerts that reached SNS. Every process it starts is stopped on exit and on
//! Ctrl-C.

use std::process::ExitCode;
use synthetic_checks::{Check, Outcome, RunResult};
use synthetic_e2e::lambda_emulator::{Invocation, LambdaProcess};
use synthetic_e2e::local_aws::ReceivedMessage;
use synthetic_e2e::stack::{LocalStack, invoke_scheduled};

/// One round of the story: faults to inject, the outcome each check must show, in
/// `Check::ALL` order (health, auth, products, payment), and the incidents the round's triggers
/// open (dedup keys without the `synthetic/local/` prefix).
struct Round {
    title: &'static str,
    faults: &'static [(&'static str, &'static str)],
    expect: [Outcome; 4],
    incidents: &'static [&'static str],
}

const PASSED: Outcome = Outcome::Passed;
const FAILED: Outcome = Outcome::Failed;

const ROUNDS: [Round; 4] = [
    Round { title: "healthy shop", faults: &[], expect: [PASSED; 4], incidents: &[] },
    Round {
        title: "products API answers 500",
        faults: &[("products", "500")],
        expect: [PASSED, PASSED, FAILED, PASSED],
        incidents: &["products"],
    },
    Round {
        title: "synthetic account locked by fraud detection",
        faults: &[("auth", "lock")],
        expect: [PASSED, FAILED, FAILED, FAILED],
        incidents: &["monitor-account"],
    },
    Round { title: "shop healed", faults: &[], expect: [PASSED; 4], incidents: &[] },
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
    let outcome = tokio::select! {
        outcome = demo(&stack, &mut processes) => outcome,
        _ = tokio::signal::ctrl_c() => {
            println!("\nInterrupted: stopping everything the demo started.");
            Ok(())
        }
    };
    for (_, process) in processes {
        process.shutdown().await;
    }
    stack.stop().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("demo: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(stack: &LocalStack, processes: &mut Vec<(Check, LambdaProcess)>) -> Result<(), String> {
    println!("  shop   {}", stack.shop.base_url());
    println!("  moto   {}", stack.moto.endpoint());
    println!("  secret {}", stack.secret_arn);
    println!("  topic  {} -> SQS inbox", stack.topic_arn);
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
        let results = run_all(processes).await?;
        print_results(&results);
        let mut alerts = stack.alerts().await.map_err(|e| e.to_string())?;
        alerts.sort_by_key(|a| Check::ALL.iter().position(|c| a.body["check"] == c.name()));
        print_alerts(&alerts);
        verify(round, &results, &alerts)?;
    }
    let state = stack.shop.handle().state();
    println!(
        "\nShop saw {} synthetic and {} real requests; sandbox payments: {} live, {} refunded.",
        state.traffic.synthetic, state.traffic.real, state.payments.live, state.payments.refunded
    );
    println!(
        "Demo finished: every broken journey paged once, a locked account paged once as the monitor's own \
         problem, and every healed one resolved."
    );
    Ok(())
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

fn print_alerts(alerts: &[ReceivedMessage]) {
    println!("Alerts on SNS ({}):", alerts.len());
    for alert in alerts {
        let field = |name: &str| alert.body[name].as_str().unwrap_or("?").to_string();
        println!("  {:<8} {:<8} {}", field("event_action"), field("severity"), field("summary"));
    }
    let incidents = incidents(alerts);
    match incidents.is_empty() {
        true => println!("Incidents these open: none"),
        false => println!("Incidents these open ({}): PagerDuty merges triggers by dedup key", incidents.len()),
    }
    for (key, checks) in &incidents {
        println!("  {key}  (triggered by {})", checks.join(", "));
    }
}

/// The incidents the round's triggers open: PagerDuty merges triggers by dedup key.
fn incidents(alerts: &[ReceivedMessage]) -> Vec<(String, Vec<String>)> {
    let mut incidents: Vec<(String, Vec<String>)> = Vec::new();
    for alert in alerts.iter().filter(|a| a.body["event_action"] == "trigger") {
        let key = alert.body["dedup_key"].as_str().unwrap_or("?").to_string();
        let check = alert.body["check"].as_str().unwrap_or("?").to_string();
        match incidents.iter_mut().find(|(k, _)| *k == key) {
            Some((_, checks)) => checks.push(check),
            None => incidents.push((key, vec![check])),
        }
    }
    incidents
}

/// The demo checks its own story, so `make demo` is also a smoke test.
fn verify(round: &Round, results: &[RunResult], alerts: &[ReceivedMessage]) -> Result<(), String> {
    for (check, expected) in Check::ALL.into_iter().zip(round.expect) {
        let run = results.iter().find(|r| r.check == check.name()).ok_or_else(|| format!("no result for {check}"))?;
        if run.status != expected {
            return Err(format!("round '{}': {check} was {:?}, expected {expected:?}", round.title, run.status));
        }
    }
    if alerts.len() != results.len() {
        return Err(format!("expected one alert per run, got {} for {} runs", alerts.len(), results.len()));
    }
    let opened: Vec<String> = incidents(alerts).into_iter().map(|(key, _)| key).collect();
    let expected: Vec<String> = round.incidents.iter().map(|i| format!("synthetic/local/{i}")).collect();
    if opened != expected {
        return Err(format!("round '{}': incidents {opened:?}, expected {expected:?}", round.title));
    }
    Ok(())
}

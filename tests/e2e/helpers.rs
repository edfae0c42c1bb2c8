//! Shared arrange/act helpers: start the stack, run a check once as a Lambda, collect what it
//! returned, logged and published, and hold every run to the no-secrets rule.

use std::collections::BTreeMap;
use synthetic_checks::{Cause, Check, Outcome, RunResult};
use synthetic_e2e::lambda_emulator::Invocation;
pub use synthetic_e2e::local_aws::ReceivedMessage;
pub use synthetic_e2e::stack::LocalStack;
use synthetic_e2e::stack::invoke_scheduled;

/// Extra environment for one function, on top of what the stack gives it.
pub type EnvVars = &'static [(&'static str, &'static str)];

/// Short backoff: the tests exercise retries, not patience.
pub const FAST_RETRY: (&str, &str) = ("RETRY_BACKOFF_MS", "100");

pub async fn stack() -> LocalStack {
    match LocalStack::start().await {
        Ok(stack) => stack,
        Err(error) => panic!("local stack did not start: {error}"),
    }
}

/// What one scheduled invocation produced.
pub struct Ran {
    pub invocation: Invocation,
    pub alerts: Vec<ReceivedMessage>,
    pub logs: Vec<String>,
}

impl Ran {
    pub fn result(&self) -> RunResult {
        match &self.invocation {
            Invocation::Response(body) => serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("response is not a RunResult ({e}): {body}")),
            Invocation::Error { error_type, error_message } => {
                panic!("invocation failed: {error_type}: {error_message}\n{}", self.logs.join("\n"))
            }
        }
    }

    /// The invocation error's type and message; panics on a response.
    pub fn error(&self) -> (&str, &str) {
        match &self.invocation {
            Invocation::Error { error_type, error_message } => (error_type, error_message),
            Invocation::Response(body) => panic!("expected an invocation error, got {body}"),
        }
    }

    /// The one alert this run published.
    pub fn alert(&self) -> &ReceivedMessage {
        assert_eq!(self.alerts.len(), 1, "exactly one message per run, got {:#?}", self.alerts);
        &self.alerts[0]
    }
}

/// Cold-starts the check, invokes it once with a scheduled event, and shuts it down.
pub async fn run_once(stack: &LocalStack, check: Check, env: &[(&str, &str)]) -> Ran {
    let process = stack.spawn_check(check, env).await.expect("spawn check");
    let invocation = invoke_scheduled(&process, check).await.expect("invoke");
    let logs = process.logs();
    process.shutdown().await;
    let ran = Ran { invocation, alerts: stack.alerts().await.expect("drain alerts"), logs };
    assert_no_secrets(stack, &ran);
    ran
}

pub fn assert_no_secrets(stack: &LocalStack, ran: &Ran) {
    assert_no_secrets_in(stack, ran, &[]);
}

/// Like [`assert_no_secrets`], with more secret values to look for (a rotated password).
pub fn assert_no_secrets_in(stack: &LocalStack, ran: &Ran, more: &[&str]) {
    let mut texts: Vec<String> = ran.logs.clone();
    texts.extend(ran.alerts.iter().map(|a| format!("{} {:?} {:?}", a.raw, a.subject, a.attributes)));
    texts.push(format!("{:?}", ran.invocation));
    let mut secrets = stack.secret_values();
    secrets.extend(more.iter().map(|s| s.to_string()));
    assert_none_leaked(&secrets, &texts);
    assert_logged_at_trace(&ran.logs);
}

/// No secret value, and no bearer token the shop issued, in any of `texts`. The demo shop's
/// tokens are random, so they are recognised by what surrounds them: the login response's field
/// and the `Authorization` header's scheme.
pub fn assert_none_leaked(secrets: &[String], texts: &[String]) {
    for text in texts {
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "a secret value leaked into: {text}");
        }
        for marker in ["access_token\":\"", "access_token\\\":\\\"", "Bearer "] {
            assert!(!text.contains(marker), "a bearer token leaked into: {text}");
        }
    }
}

/// The scan means something only if everything was logged: the functions run at `RUST_LOG=trace`
/// (see `LocalStack::function_env`), and a process that logged nothing at trace did not.
pub fn assert_logged_at_trace(logs: &[String]) {
    assert!(logs.iter().any(|l| l.starts_with("TRACE ")), "no TRACE line: the leak scan ran below trace");
}

/// Asserts a run failed (or degraded) with `cause` and published exactly one matching trigger.
pub fn assert_trigger(ran: &Ran, status: Outcome, cause: Cause) {
    let run = ran.result();
    assert_eq!((run.status, run.cause), (status, Some(cause)), "{run:#?}");
    let alert = ran.alert();
    assert_eq!(alert.body["event_action"], "trigger");
    assert_eq!(alert.body["cause"], cause.as_str());
    assert_eq!(alert.body["dedup_key"], format!("synthetic/local/{}", run.check));
    let severity = if status == Outcome::Failed { "critical" } else { "warning" };
    assert_eq!(
        alert.attributes,
        BTreeMap::from([
            ("check".to_string(), run.check.clone()),
            ("event_action".to_string(), "trigger".to_string()),
            ("severity".to_string(), severity.to_string()),
            ("status".to_string(), status.as_str().to_string()),
        ])
    );
}

pub fn assert_resolve(ran: &Ran) {
    let run = ran.result();
    assert_eq!(run.status, Outcome::Passed, "{run:#?}");
    let alert = ran.alert();
    assert_eq!(alert.body["event_action"], "resolve");
    assert_eq!(alert.attributes.get("event_action").map(String::as_str), Some("resolve"));
}

/// What one `synthetic` process did.
pub struct Exited {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the `synthetic` CLI with a clean deployment environment, fast retries and `env` on top.
pub async fn synthetic(args: &[&str], env: &[(&str, &str)]) -> Exited {
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), synthetic_command(args, env).output())
        .await
        .expect("synthetic finished within 120 s")
        .expect("synthetic started");
    exited(output)
}

/// Like [`synthetic`], and the peak resident memory (`VmHWM`, KiB) the process reached, read
/// from /proc while it runs. A high-water mark: the last reading is the peak up to then.
pub async fn synthetic_peak_rss(args: &[&str], env: &[(&str, &str)]) -> (Exited, u64) {
    let mut command = synthetic_command(args, env);
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("synthetic started");
    let status = format!("/proc/{}/status", child.id().expect("a pid"));
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        // Until the process is gone (or a zombie, whose status has no VmHWM line).
        while let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| vm_hwm_kib(&s)) {
            peak = peak.max(kib);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        peak
    });
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("synthetic finished within 120 s")
        .expect("synthetic ran");
    let peak = sampler.await.expect("the sampler ran");
    (exited(output), peak)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()
}

fn synthetic_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let binary = synthetic_e2e::lambda_emulator::workspace_binary("synthetic").unwrap_or_else(|e| panic!("{e}"));
    let mut command = tokio::process::Command::new(binary);
    command.args(args).env("RETRY_BACKOFF_MS", "100").kill_on_drop(true);
    for name in ["CHECK_ENV", "ALERT_TOPIC_ARN", "CREDENTIALS_SECRET_ID", "TARGET_BASE_URL", "NO_COLOR"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

fn exited(output: std::process::Output) -> Exited {
    Exited {
        code: output.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Serves `router` on a loopback port; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A journey file in its own scratch directory, removed with it.
pub struct JourneyFile(std::path::PathBuf);

impl JourneyFile {
    pub fn new(source: &str) -> JourneyFile {
        let dir = std::env::temp_dir().join(format!("synthetic-journey-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let file = dir.join("journey.toml");
        std::fs::write(&file, source).expect("journey file");
        JourneyFile(file)
    }

    /// `synthetic run --journey FILE --target TARGET --format json`.
    pub fn args<'a>(&'a self, target: &'a str) -> Vec<&'a str> {
        let path = self.0.to_str().expect("a UTF-8 path");
        vec!["run", "--journey", path, "--target", target, "--format", "json"]
    }
}

impl Drop for JourneyFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

//! A minimal AWS Lambda Runtime API emulator.
//!
//! It runs a real Lambda binary (one built on `lambda_runtime`, i.e. a
//! `provided.al2023` "bootstrap") as a child process, with the environment
//! Lambda gives it and a local Runtime API endpoint to poll, so end-to-end
//! tests exercise exactly the code that ships, init phase included.
//!
//! Implemented: `GET /runtime/invocation/next` (long-poll), `POST
//! /runtime/invocation/{id}/response`, `POST /runtime/invocation/{id}/error`
//! and `POST /runtime/init/error`, all under `/2018-06-01`. As on Lambda,
//! invocations of one [`LambdaProcess`] run one at a time and warm
//! invocations reuse the same process; a timed-out invocation kills the
//! process (Lambda resets the sandbox too), so later invocations fail with
//! [`EmulatorError::ChildExited`].
//!
//! Set `SYNTHETIC_E2E_ECHO_LOGS=1` to also copy the child's output to this
//! process's stderr while it runs (it is always captured for [`LambdaProcess::logs`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How many trailing log lines an error carries.
const LOG_TAIL: usize = 30;
const ACCOUNT_ID: &str = "123456789012";

/// What a finished invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The handler succeeded; the body it posted, parsed as JSON.
    Response(Value),
    /// The handler failed and the runtime reported it.
    Error { error_type: String, error_message: String },
}

/// Why an invocation (or the sandbox) failed, as opposed to the handler
/// returning an error, which is [`Invocation::Error`].
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot start the Runtime API endpoint: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("function init failed: {error_type}: {error_message}{}", tail(last_logs))]
    InitError { error_type: String, error_message: String, last_logs: Vec<String> },
    #[error("function process exited ({status}){}", tail(last_logs))]
    ChildExited { status: String, last_logs: Vec<String> },
    #[error("invocation timed out after {timeout:?}; the process was killed{}", tail(last_logs))]
    Timeout { timeout: Duration, last_logs: Vec<String> },
    #[error("function response is not JSON ({source}): {body}")]
    InvalidResponse {
        body: String,
        #[source]
        source: serde_json::Error,
    },
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() { String::new() } else { format!("\n--- last output ---\n{}", lines.join("\n")) }
}

/// Cold-start milestones of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStart {
    pub spawned_at: Instant,
    /// When the runtime first asked for work, i.e. init finished.
    pub first_next_at: Option<Instant>,
    /// When the first invocation's response or error arrived.
    pub first_response_at: Option<Instant>,
}

impl ColdStart {
    /// Time from spawn to the first `/next`: Lambda's "Init Duration".
    pub fn init_duration(&self) -> Option<Duration> {
        self.first_next_at.map(|t| t - self.spawned_at)
    }
}

#[derive(Debug)]
struct Queued {
    request_id: String,
    body: Vec<u8>,
    deadline_ms: u128,
    function_arn: String,
    trace_id: String,
}

#[derive(Debug)]
enum Outcome {
    Response(Bytes),
    Error { error_type: String, error_message: String },
}

#[derive(Debug, Clone)]
struct InitFailure {
    error_type: String,
    error_message: String,
}

/// State shared between the Runtime API handlers and [`LambdaProcess`].
#[derive(Debug)]
struct Shared {
    /// Held by the one parked `/next` request; `tokio` mutex because it is
    /// held across the wait.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<InitFailure>>,
    timings: Mutex<ColdStart>,
    logs: Arc<Mutex<Vec<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; recover rather than cascade.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running function "sandbox": a child process plus its Runtime API.
#[derive(Debug)]
pub struct LambdaProcess {
    function_name: String,
    function_arn: String,
    runtime_api: SocketAddr,
    pid: Option<u32>,
    shared: Arc<Shared>,
    /// Dropping it makes a parked `/next` answer with an error, so the
    /// runtime exits instead of waiting forever.
    queue: mpsc::UnboundedSender<Queued>,
    /// One invocation at a time, as on Lambda.
    turn: tokio::sync::Mutex<()>,
    /// `Some(status)` once the child has exited and its output is drained.
    exited: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    supervisor: Option<JoinHandle<()>>,
    stop_server: Option<oneshot::Sender<()>>,
}

impl LambdaProcess {
    /// Starts `binary` as function `function_name`. The child's environment
    /// is cleared, then gets `PATH`, the variables Lambda sets (including
    /// `AWS_REGION=us-east-1`) and finally `env`, which may override them.
    pub async fn spawn(binary: &Path, function_name: &str, env: &[(String, String)]) -> Result<Self, EmulatorError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(EmulatorError::Bind)?;
        let runtime_api = listener.local_addr().map_err(EmulatorError::Bind)?;

        let region = env.iter().rev().find(|(k, _)| k == "AWS_REGION").map_or("us-east-1", |(_, v)| v.as_str());
        let function_arn = format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}");

        let mut cmd = Command::new(binary);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let log_stream = format!("emulator/[$LATEST]{}", uuid::Uuid::new_v4().simple());
        let lambda_env = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        cmd.envs(lambda_env);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);

        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let spawned_at = Instant::now();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(queue_rx),
            pending: Mutex::new(HashMap::new()),
            init_error: watch::Sender::new(None),
            timings: Mutex::new(ColdStart { spawned_at, first_next_at: None, first_response_at: None }),
            logs: Arc::new(Mutex::new(Vec::new())),
        });

        // The API must be up before the child starts polling it.
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let app = runtime_api_router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stopped.await;
                })
                .await;
        });

        let mut child = cmd.spawn().map_err(|source| EmulatorError::Spawn { binary: binary.to_owned(), source })?;
        let pid = child.id();
        let echo = std::env::var_os("SYNTHETIC_E2E_ECHO_LOGS").is_some_and(|v| !v.is_empty() && v != "0");
        let readers: Vec<JoinHandle<()>> = [
            child.stdout.take().map(|s| capture(s, shared.logs.clone(), echo, function_name)),
            child.stderr.take().map(|s| capture(s, shared.logs.clone(), echo, function_name)),
        ]
        .into_iter()
        .flatten()
        .collect();

        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exited) = watch::channel(None);
        let supervisor = tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                // Fires on an explicit kill and when the owner is dropped.
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Let the readers catch the last lines before reporting the exit,
            // so errors carry the output that explains it. Bounded because a
            // grandchild could keep the pipes open.
            for reader in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            }
            let status = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("status unknown: {e}"),
            };
            let _ = exit_tx.send(Some(status));
        });

        Ok(Self {
            function_name: function_name.to_owned(),
            function_arn,
            runtime_api,
            pid,
            shared,
            queue: queue_tx,
            turn: tokio::sync::Mutex::new(()),
            exited,
            kill: Mutex::new(Some(kill_tx)),
            supervisor: Some(supervisor),
            stop_server: Some(stop_server),
        })
    }

    /// Queues one invocation and waits for its outcome. The deadline the
    /// function sees is now + `timeout`; past it the process is killed.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Invocation, EmulatorError> {
        let _turn = self.turn.lock().await;
        // Fail fast instead of waiting out the timeout on a dead sandbox.
        if let Some(err) = self.init_failure() {
            return Err(err);
        }
        if let Some(status) = self.exited.borrow().clone() {
            return Err(self.child_exited(status));
        }

        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline_ms = (SystemTime::now() + timeout).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(request_id.clone(), tx);
        let queued = Queued {
            request_id: request_id.clone(),
            body: event.to_string().into_bytes(),
            deadline_ms,
            function_arn: self.function_arn.clone(),
            trace_id: trace_id(),
        };
        // The receiver lives in `shared`, which we hold, so this cannot fail.
        let _ = self.queue.send(queued);

        let mut exited = self.exited.clone();
        let mut init_error = self.shared.init_error.subscribe();
        enum Waited {
            Done(Outcome),
            SandboxFailed,
            TimedOut,
        }
        let waited = tokio::select! {
            // A response posted just before the process exits must win.
            biased;
            outcome = rx => outcome.map_or(Waited::SandboxFailed, Waited::Done),
            _ = init_error.wait_for(Option::is_some) => Waited::SandboxFailed,
            _ = exited.wait_for(Option::is_some) => Waited::SandboxFailed,
            () = tokio::time::sleep(timeout) => Waited::TimedOut,
        };
        lock(&self.shared.pending).remove(&request_id);
        let outcome = match waited {
            Waited::Done(outcome) => outcome,
            Waited::SandboxFailed => {
                return Err(self.init_failure().unwrap_or_else(|| {
                    let status = self.exited.borrow().clone().unwrap_or_default();
                    self.child_exited(status)
                }));
            }
            Waited::TimedOut => {
                self.kill();
                // Wait for the output to drain so the error shows it.
                let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(Option::is_some)).await;
                return Err(EmulatorError::Timeout { timeout, last_logs: self.log_tail() });
            }
        };
        match outcome {
            Outcome::Response(body) => serde_json::from_slice(&body).map(Invocation::Response).map_err(|source| {
                EmulatorError::InvalidResponse { body: String::from_utf8_lossy(&body).into_owned(), source }
            }),
            Outcome::Error { error_type, error_message } => Ok(Invocation::Error { error_type, error_message }),
        }
    }

    /// Every line the child wrote to stdout or stderr so far, in arrival order.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.shared.logs).clone()
    }

    pub fn timings(&self) -> ColdStart {
        *lock(&self.shared.timings)
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Peak resident set size of the child so far, in KiB: `VmHWM` of `/proc/<pid>/status`.
    /// `None` once the process has exited, or where there is no `/proc` (not Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
        line.trim().trim_end_matches("kB").trim().parse().ok()
    }

    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    /// The `AWS_LAMBDA_RUNTIME_API` address given to the child.
    pub fn runtime_api(&self) -> SocketAddr {
        self.runtime_api
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&self) -> Option<String> {
        self.exited.borrow().clone()
    }

    /// Kills the process, reaps it and stops the Runtime API.
    pub async fn shutdown(mut self) {
        self.kill();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), supervisor).await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
    }

    fn kill(&self) {
        if let Some(kill) = lock(&self.kill).take() {
            let _ = kill.send(());
        }
    }

    fn log_tail(&self) -> Vec<String> {
        let logs = lock(&self.shared.logs);
        logs[logs.len().saturating_sub(LOG_TAIL)..].to_vec()
    }

    fn init_failure(&self) -> Option<EmulatorError> {
        let failure = self.shared.init_error.borrow().clone()?;
        Some(EmulatorError::InitError {
            error_type: failure.error_type,
            error_message: failure.error_message,
            last_logs: self.log_tail(),
        })
    }

    fn child_exited(&self, status: String) -> EmulatorError {
        EmulatorError::ChildExited { status, last_logs: self.log_tail() }
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        // The supervisor kills and reaps; `kill_on_drop` covers the case
        // where the runtime is going away and the supervisor with it.
        self.kill();
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
    }
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    echo: bool,
    function_name: &str,
) -> JoinHandle<()> {
    let prefix = format!("[{function_name}] ");
    for_each_line(stream, move |line| {
        if echo {
            eprintln!("{prefix}{line}");
        }
        lock(&logs).push(line);
    })
}

/// Calls `f` with each line a child prints, until the stream ends. Bytes, not `lines()`: one
/// non-UTF-8 line must not end the capture, and a pipe nobody reads would stall the child.
pub(crate) fn for_each_line(
    stream: impl AsyncRead + Unpin + Send + 'static,
    mut f: impl FnMut(String) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => f(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned()),
            }
        }
    })
}

/// An X-Ray style trace header; its content only has to look plausible.
fn trace_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{secs:08x}-{};Parent={};Sampled=0", &root[..24], &parent[..16])
}

// ---------------------------------------------------------------------------
// Runtime API

fn runtime_api_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "errorType": error_type, "errorMessage": message }))).into_response()
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.timings).first_next_at.get_or_insert_with(Instant::now);
    // Long-poll: park until an invocation is queued. If the child goes away
    // meanwhile, the queue item stays put (recv is cancel-safe).
    let next = shared.queue.lock().await.recv().await;
    let Some(q) = next else {
        return api_error(StatusCode::GONE, "Emulator.Shutdown", "the emulator is shutting down");
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::HeaderName::from_static("lambda-runtime-aws-request-id"), q.request_id),
            (header::HeaderName::from_static("lambda-runtime-deadline-ms"), q.deadline_ms.to_string()),
            (header::HeaderName::from_static("lambda-runtime-invoked-function-arn"), q.function_arn),
            (header::HeaderName::from_static("lambda-runtime-trace-id"), q.trace_id),
        ],
        q.body,
    )
        .into_response()
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    lock(&shared.timings).first_response_at.get_or_insert_with(Instant::now);
    match lock(&shared.pending).remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            accepted()
        }
        None => api_error(StatusCode::BAD_REQUEST, "InvalidRequestID", &format!("unknown or expired request id {id}")),
    }
}

async fn invocation_response(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    complete(&shared, &id, Outcome::Response(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_type: Option<String>,
    error_message: Option<String>,
}

/// Reads an error report, falling back to the error-type header and the raw
/// body when the function did not send the documented JSON.
fn parse_error(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let error_type = parsed
        .as_ref()
        .and_then(|b| b.error_type.clone())
        .or_else(|| headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| "Unknown".to_owned());
    let error_message =
        parsed.and_then(|b| b.error_message).unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = parse_error(&headers, &body);
    complete(&shared, &id, Outcome::Error { error_type, error_message })
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (error_type, error_message) = parse_error(&headers, &body);
    shared.init_error.send_replace(Some(InitFailure { error_type, error_message }));
    accepted()
}

// ---------------------------------------------------------------------------
// Finding the workspace's binaries

/// Path of `target/debug/<name>` in this workspace; the error says how to
/// build it.
pub fn workspace_binary(name: &str) -> Result<PathBuf, String> {
    find_binary(name, "debug", "cargo build --workspace --bins")
}

/// Path of `target/release/<name>` in this workspace.
pub fn workspace_release_binary(name: &str) -> Result<PathBuf, String> {
    find_binary(name, "release", "cargo build --workspace --bins --release")
}

fn find_binary(name: &str, profile: &str, build_hint: &str) -> Result<PathBuf, String> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let candidates: Vec<PathBuf> = target_dirs().into_iter().map(|dir| dir.join(profile).join(&file)).collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!("binary `{name}` not found (looked at: {}); run `{build_hint}` first", tried.join(", ")))
}

/// Candidate target directories, most specific first.
fn target_dirs() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        // Cargo resolves a relative CARGO_TARGET_DIR against where it runs,
        // which for `make`/CI is the workspace root.
        dirs.push(if dir.is_relative() { workspace.join(dir) } else { dir });
    }
    // Test and bin executables live under the target dir, which cargo marks
    // with CACHEDIR.TAG; this follows a target dir moved by config files.
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file())
    {
        dirs.push(dir.to_owned());
    }
    dirs.push(workspace.join("target"));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// `CARGO_BIN_EXE_*` only exists for integration tests, and a plain
    /// `cargo test` builds bin targets only as test harnesses, so the unit
    /// tests build `echo-lambda` themselves (once per test binary; cargo
    /// releases its build lock before running tests, so nesting is safe). It is
    /// the same command `make test` runs first, so there it is a no-op: a
    /// `-p synthetic-e2e` build would unify features differently and rebuild
    /// half the workspace.
    fn echo_lambda() -> PathBuf {
        static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
                let out = std::process::Command::new(cargo)
                    .args(["build", "--quiet", "--workspace", "--bins"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .output()
                    .map_err(|e| format!("running cargo: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "cargo build --workspace --bins failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                workspace_binary("echo-lambda")
            })
            .clone()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const SECS_10: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn round_trip_error_warm_reuse_logs_and_timings() {
        let f = LambdaProcess::spawn(&echo_lambda(), "echo", &[]).await.unwrap();
        let pid = f.pid().unwrap();

        let Invocation::Response(first) = f.invoke(json!({ "hello": "world" }), SECS_10).await.unwrap() else {
            panic!("expected a response");
        };
        assert_eq!(first["echo"], json!({ "hello": "world" }));
        assert_eq!(first["pid"], pid);
        assert_eq!(first["function_arn"], "arn:aws:lambda:us-east-1:123456789012:function:echo");
        let t = f.timings();
        let (next, response) = (t.first_next_at.unwrap(), t.first_response_at.unwrap());
        assert!(t.spawned_at <= next && next <= response);
        assert!(t.init_duration().is_some());

        let failed = f.invoke(json!({ "fail": true }), SECS_10).await.unwrap();
        assert_eq!(
            failed,
            Invocation::Error { error_type: "EchoFailed".into(), error_message: "asked to fail".into() }
        );

        let Invocation::Response(second) = f.invoke(json!([1, 2]), SECS_10).await.unwrap() else {
            panic!("expected a response");
        };
        assert_eq!(second["pid"], pid, "warm invocation must reuse the process");
        assert_ne!(second["request_id"], first["request_id"]);
        assert_eq!(f.timings(), t, "cold-start timings are set once");
        #[cfg(target_os = "linux")]
        assert!(f.peak_rss_kib().is_some_and(|kib| kib > 0), "VmHWM of a live child");

        let logs = f.logs();
        let stdout = logs.iter().filter(|l| l.starts_with("echo-lambda stdout")).count();
        let stderr = logs.iter().filter(|l| l.starts_with("echo-lambda stderr")).count();
        assert_eq!((stdout, stderr), (3, 3), "{logs:#?}");
        f.shutdown().await;
    }

    #[tokio::test]
    async fn environment_is_lambda_like() {
        // The function's own env is cleared: only what we pass gets through.
        let f = LambdaProcess::spawn(&echo_lambda(), "env-check", &[("AWS_REGION".into(), "eu-west-1".into())])
            .await
            .unwrap();
        let Invocation::Response(r) = f.invoke(json!({}), SECS_10).await.unwrap() else {
            panic!("expected a response");
        };
        assert_eq!(r["function_arn"], "arn:aws:lambda:eu-west-1:123456789012:function:env-check");
    }

    #[tokio::test]
    async fn timeout_kills_the_sandbox() {
        let f = LambdaProcess::spawn(&echo_lambda(), "slow", &[]).await.unwrap();
        let err = f.invoke(json!({ "sleep_ms": 20_000 }), Duration::from_millis(500)).await.unwrap_err();
        assert!(matches!(err, EmulatorError::Timeout { .. }), "{err}");
        assert!(f.exit_status().is_some());
        let err = f.invoke(json!({}), SECS_10).await.unwrap_err();
        assert!(matches!(err, EmulatorError::ChildExited { .. }), "{err}");
    }

    #[tokio::test]
    async fn init_error_is_reported() {
        let env = [("ECHO_INIT_ERROR".to_owned(), "no config".to_owned())];
        let f = LambdaProcess::spawn(&echo_lambda(), "broken", &env).await.unwrap();
        match f.invoke(json!({}), SECS_10).await {
            Err(EmulatorError::InitError { error_type, error_message, last_logs }) => {
                assert_eq!((error_type.as_str(), error_message.as_str()), ("EchoInitFailed", "no config"));
                assert!(last_logs.iter().any(|l| l.contains("failing init")), "{last_logs:?}");
            }
            other => panic!("expected an init error, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn child_exit_is_reported_with_status() {
        let f = LambdaProcess::spawn(Path::new("/bin/false"), "not-a-lambda", &[]).await.unwrap();
        match f.invoke(json!({}), SECS_10).await {
            Err(EmulatorError::ChildExited { status, .. }) => {
                assert!(status.contains('1'), "{status}")
            }
            other => panic!("expected ChildExited, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let err = LambdaProcess::spawn(Path::new("/nonexistent/bootstrap"), "x", &[]).await.unwrap_err();
        assert!(matches!(err, EmulatorError::Spawn { .. }), "{err}");
        let err = workspace_binary("no-such-binary").unwrap_err();
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
    }
}

//! `echo-lambda`: the smallest real `lambda_runtime` function, used to test
//! the Runtime API emulator (`synthetic_e2e::lambda_emulator`) against the
//! same client code the production checks use.
//!
//! It echoes the event back with the request id and the PID (so tests can
//! see warm reuse), prints one line per invocation to stdout and stderr (so
//! tests can see log capture), and fails with a custom error type when the
//! event is `{"fail": true}`. `{"sleep_ms": N}` makes it take that long, to
//! exercise timeouts. With `ECHO_INIT_ERROR` set it reports an init error
//! the way a custom runtime would, then exits, instead of serving.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// A domain error whose name must reach the caller as `errorType`.
#[derive(Debug)]
struct EchoFailed(String);

impl From<EchoFailed> for Diagnostic {
    fn from(e: EchoFailed) -> Self {
        Diagnostic { error_type: "EchoFailed".to_owned(), error_message: e.0 }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, EchoFailed> {
    let (payload, ctx) = event.into_parts();
    println!("echo-lambda stdout: request {}", ctx.request_id);
    eprintln!("echo-lambda stderr: deadline {}", ctx.deadline);
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err(EchoFailed("asked to fail".to_owned()));
    }
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "function_arn": ctx.invoked_function_arn,
        "pid": std::process::id(),
    }))
}

/// Posts `/runtime/init/error` by hand: `lambda_runtime` only does so for
/// SnapStart hooks, but other runtimes report any init failure this way.
fn report_init_error(message: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(std::io::Error::other)?;
    let body = json!({ "errorType": "EchoInitFailed", "errorMessage": message }).to_string();
    let mut conn = std::net::TcpStream::connect(&api)?;
    write!(
        conn,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: EchoInitFailed\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    if let Ok(message) = std::env::var("ECHO_INIT_ERROR") {
        eprintln!("echo-lambda: failing init: {message}");
        report_init_error(&message)?;
        return Err(message.into());
    }
    lambda_runtime::run(service_fn(handler)).await
}

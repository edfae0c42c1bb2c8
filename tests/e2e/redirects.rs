//! A target that redirects the login to another host must not receive the synthetic account: a
//! 307 keeps the method and the body, so following it would hand the password to that host.
//! Reproduced end to end with the `synthetic` CLI and two real servers.

use crate::helpers::*;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{any, post};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use synthetic_e2e::shop::ShopConfig;
use synthetic_e2e::stack::account_json;

#[tokio::test]
async fn a_login_redirected_to_another_host_is_refused_and_the_other_host_gets_nothing() {
    // GIVEN a host that would steal whatever reaches it
    let stolen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = stolen.clone();
    let thief = serve(Router::new().fallback(any(move |body: String| {
        let seen = seen.clone();
        async move {
            seen.lock().map(|mut s| s.push(body)).ok();
            StatusCode::OK
        }
    })))
    .await;
    // AND a target whose login answers 307 to it
    let location = format!("{thief}/steal");
    let target = serve(Router::new().route(
        "/api/auth/token",
        post(move || {
            let location = location.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(header::LOCATION, location.parse().expect("a location"));
                (StatusCode::TEMPORARY_REDIRECT, headers)
            }
        }),
    ))
    .await;
    let dir = std::env::temp_dir().join(format!("synthetic-redirect-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let credentials = dir.join("account.json");
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&credentials).unwrap();
    file.write_all(account_json(&ShopConfig::default().password).as_bytes()).unwrap();
    // WHEN the auth check runs against the target
    let credentials = credentials.display().to_string();
    let args = ["run", "--check", "auth", "--target", &target, "--credentials-file", &credentials, "--format", "json"];
    let exited = synthetic(&args, &[]).await;
    // THEN the run fails as invalid_response naming where it was sent, and nothing reached it
    exited.expect(1);
    let run: serde_json::Value = serde_json::from_str(exited.stdout.trim()).expect("a run result");
    assert_eq!(run["cause"], "invalid_response", "{run:#}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("{thief}/steal")) && error.contains("outside the target"), "{error}");
    assert!(stolen.lock().map(|s| s.is_empty()).unwrap_or(false), "the other host received {stolen:?}");
    assert!(
        !exited.stdout.contains(&ShopConfig::default().password)
            && !exited.stderr.contains(&ShopConfig::default().password)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! A local fake of the one CodeDeploy call the canary gate makes (moto has no lifecycle hooks):
//! `PutLifecycleEventHookExecutionStatus`, in its real protocol, AWS JSON 1.1. That is `POST /`
//! with `X-Amz-Target: CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus`, a JSON body
//! `{"deploymentId", "lifecycleEventHookExecutionId", "status"}`, the answer
//! `{"lifecycleEventHookExecutionId"}`, and errors as `{"__type", "message"}`.
//!
//! Like CodeDeploy it refuses an unsigned request, another operation, a missing id, a status
//! other than `Succeeded` or `Failed`, and a second report for a hook execution that already has
//! one. It counts every request, records every accepted report, and can be told to answer the
//! next requests (or all of them) with throttling, a 5xx or a refusal, to prove what is retried.
//! Point the SDK at it with `AWS_ENDPOINT_URL_CODEDEPLOY`.

use crate::fake_apis::{RunningFake, lock, serve};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

/// The operation, as the SDK names it in `X-Amz-Target`.
pub const TARGET: &str = "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An answer other than success, for [`CodeDeployHandle::fail_next`] and
/// [`CodeDeployHandle::fail_always`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 400 `ThrottlingException`: retried by the SDK.
    Throttling,
    /// 500 `InternalFailure`: retried.
    ServerError,
    /// 503 `ServiceUnavailable`: retried.
    ServiceUnavailable,
    /// 400 `DeploymentDoesNotExistException`: no retry can fix it.
    DeploymentDoesNotExist,
    /// 400 `AccessDeniedException` (the role lacks the permission): no retry can fix it.
    AccessDenied,
}

impl Answer {
    fn response(self) -> Response {
        let (status, code, message) = match self {
            Answer::Throttling => (StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"),
            Answer::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "injected failure"),
            Answer::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "injected outage"),
            Answer::DeploymentDoesNotExist => {
                (StatusCode::BAD_REQUEST, "DeploymentDoesNotExistException", "The deployment does not exist")
            }
            Answer::AccessDenied => (
                StatusCode::BAD_REQUEST,
                "AccessDeniedException",
                "not authorized to perform: codedeploy:PutLifecycleEventHookExecutionStatus",
            ),
        };
        error(status, code, message)
    }
}

/// One report CodeDeploy accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub deployment_id: String,
    pub lifecycle_event_hook_execution_id: String,
    pub status: String,
}

#[derive(Debug, Default)]
struct Script {
    next: VecDeque<Answer>,
    always: Option<Answer>,
    requests: usize,
    calls: Vec<Call>,
}

/// Faults and observations of a running [`FakeCodeDeploy`].
#[derive(Clone, Debug, Default)]
pub struct CodeDeployHandle(Arc<Mutex<Script>>);

impl CodeDeployHandle {
    /// The next requests get these answers, in order; then success again.
    pub fn fail_next(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.0).next.extend(answers);
    }

    /// Every request from now on gets `answer` (after any [`fail_next`](Self::fail_next)).
    pub fn fail_always(&self, answer: Answer) {
        lock(&self.0).always = Some(answer);
    }

    /// Every request received, refused ones and retries included.
    pub fn requests(&self) -> usize {
        lock(&self.0).requests
    }

    /// The reports accepted, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.0).calls.clone()
    }
}

pub type FakeCodeDeploy = RunningFake<CodeDeployHandle>;

/// Serves the fake on `127.0.0.1` with an OS-chosen port.
pub async fn spawn() -> io::Result<FakeCodeDeploy> {
    let handle = CodeDeployHandle::default();
    let router = Router::new().route("/", post(put_status)).with_state(handle.clone());
    serve(router, handle).await
}

async fn put_status(State(handle): State<CodeDeployHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let mut script = lock(&handle.0);
    script.requests += 1;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !header("authorization").starts_with("AWS4-HMAC-SHA256 Credential=") {
        return error(StatusCode::BAD_REQUEST, "MissingAuthenticationTokenException", "Missing Authentication Token");
    }
    if header("x-amz-target") != TARGET {
        return error(StatusCode::BAD_REQUEST, "UnknownOperationException", "this fake knows one operation");
    }
    if !header("content-type").starts_with(CONTENT_TYPE) {
        return error(StatusCode::BAD_REQUEST, "SerializationException", "expected application/x-amz-json-1.1");
    }
    if let Some(answer) = script.next.pop_front().or(script.always) {
        return answer.response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "SerializationException", "the body is not JSON");
    };
    let field = |name: &str| request.get(name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let Some(deployment_id) = field("deploymentId") else {
        return error(
            StatusCode::BAD_REQUEST,
            "DeploymentIdRequiredException",
            "At least one deployment ID must be specified",
        );
    };
    let Some(hook_id) = field("lifecycleEventHookExecutionId") else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidLifecycleEventHookExecutionIdException",
            "A lifecycle event hook is invalid",
        );
    };
    let status = field("status").unwrap_or_default();
    if !matches!(status.as_str(), "Succeeded" | "Failed") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidLifecycleEventHookExecutionStatusException",
            "The result of a Lambda validation function must be Succeeded or Failed",
        );
    }
    if script.calls.iter().any(|c| c.deployment_id == deployment_id && c.lifecycle_event_hook_execution_id == hook_id) {
        return error(
            StatusCode::BAD_REQUEST,
            "LifecycleEventAlreadyCompletedException",
            "An attempt to return the status of an already completed lifecycle event occurred",
        );
    }
    script.calls.push(Call { deployment_id, lifecycle_event_hook_execution_id: hook_id.clone(), status });
    answer(StatusCode::OK, json!({ "lifecycleEventHookExecutionId": hook_id }))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    answer(status, json!({ "__type": code, "message": message }))
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_apis::{send, test_client};

    fn request(fake: &FakeCodeDeploy, target: &str, body: Value) -> reqwest::RequestBuilder {
        test_client()
            .post(format!("{}/", fake.base_url()))
            .header("x-amz-target", target)
            .header("content-type", CONTENT_TYPE)
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/codedeploy/aws4_request")
            .body(body.to_string())
    }

    fn report(deployment: &str, hook: &str, status: &str) -> Value {
        json!({ "deploymentId": deployment, "lifecycleEventHookExecutionId": hook, "status": status })
    }

    #[tokio::test]
    async fn accepts_one_report_per_hook_execution_as_codedeploy_does() {
        let fake = spawn().await.unwrap();
        let (status, body) = send(request(&fake, TARGET, report("d-1", "h-1", "Succeeded"))).await;
        assert_eq!((status, body), (200, json!({ "lifecycleEventHookExecutionId": "h-1" })));
        let (status, body) = send(request(&fake, TARGET, report("d-1", "h-1", "Failed"))).await;
        assert_eq!((status, body["__type"].as_str()), (400, Some("LifecycleEventAlreadyCompletedException")));
        let refused = [
            (report("", "h-2", "Failed"), "DeploymentIdRequiredException"),
            (json!({ "deploymentId": "d-1", "status": "Failed" }), "InvalidLifecycleEventHookExecutionIdException"),
            (report("d-1", "h-2", "Skipped"), "InvalidLifecycleEventHookExecutionStatusException"),
        ];
        for (body, code) in refused {
            let (status, answer) = send(request(&fake, TARGET, body)).await;
            assert_eq!((status, answer["__type"].as_str()), (400, Some(code)));
        }
        let (status, body) = send(request(&fake, "CodeDeploy_20141006.GetDeployment", json!({}))).await;
        assert_eq!((status, body["__type"].as_str()), (400, Some("UnknownOperationException")));
        let unsigned = test_client().post(format!("{}/", fake.base_url())).header("x-amz-target", TARGET);
        assert_eq!(send(unsigned).await.0, 400);
        assert_eq!(fake.handle().requests(), 7);
        let call = Call {
            deployment_id: "d-1".into(),
            lifecycle_event_hook_execution_id: "h-1".into(),
            status: "Succeeded".into(),
        };
        assert_eq!(fake.handle().calls(), [call]);
    }

    #[tokio::test]
    async fn answers_the_scripted_failures_first_then_always() {
        let fake = spawn().await.unwrap();
        fake.handle().fail_next([Answer::Throttling, Answer::ServiceUnavailable]);
        let mut answers = Vec::new();
        for hook in ["h-1", "h-2", "h-3"] {
            let (status, body) = send(request(&fake, TARGET, report("d-1", hook, "Failed"))).await;
            answers.push((status, body["__type"].as_str().map(str::to_owned)));
        }
        assert_eq!(
            answers,
            [(400, Some("ThrottlingException".into())), (503, Some("ServiceUnavailable".into())), (200, None)]
        );
        fake.handle().fail_always(Answer::ServerError);
        assert_eq!(send(request(&fake, TARGET, report("d-1", "h-4", "Failed"))).await.0, 500);
        assert_eq!(fake.handle().calls().len(), 1);
    }
}

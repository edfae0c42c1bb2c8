//! Property: whatever faults an idempotent write meets (timeouts, 409, 5xx, a refused connection,
//! a reset after sending, success) across its attempts, its replay and its cleanup, the run ends
//! with the write cleaned up or with `cleanup_failed` naming its key; and a write that was never
//! sent is never reported as possibly live.
//!
//! The oracle is a small reference model of "was the write possibly committed" per attempt,
//! written apart from the engine: it says which requests the run must send and how it must end.

use crate::error::{Cause, CheckError};
use crate::http::{HttpRequest, HttpResponse, ScriptedTarget};
use crate::journey::{JourneyDef, RetryPolicy, RunSetup, StepRecorder, run};
use crate::result::RunResult;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const JOURNEY: &str = r#"
check = "faults"
[[steps]]
name = "create"
method = "POST"
path = "/create"
idempotent = true
capture = { id = { json = "/id" } }
[[steps]]
name = "after"
path = "/after"
[[steps]]
name = "refund"
role = "cleanup"
method = "POST"
path = "/refund/{{id}}"
idempotent = true
"#;

const CREATE: &str = "/create";
const AFTER: &str = "/after";
const REFUND: &str = "/refund/pay_1";
const KEY: &str = "Idempotency-Key synthetic-run-1-create";

/// One answer the target gives to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Nothing listens: no connection, nothing sent.
    Refused,
    /// Sent; no answer within the budget.
    Timeout,
    /// Sent; the connection was reset before the answer was complete.
    Reset,
    /// 409 "key in use": an earlier attempt with the same key is still at work; by itself it
    /// says nothing was done by this one.
    Conflict,
    /// 500: the target failed, maybe after committing the write.
    ServerError,
    /// 400: the target refused the request.
    Rejected,
    /// 200 with the id the cleanup needs.
    Created,
    /// 200 without the id.
    CreatedWithoutId,
}

impl Fault {
    fn answer(self) -> Result<HttpResponse, CheckError> {
        match self {
            Fault::Refused => Err(CheckError::Connect("tcp connect error: Connection refused".into())),
            // Answered at once as the adapter answers a request past its budget: no waiting.
            Fault::Timeout => Err(CheckError::Timeout { budget_ms: 10_000 }),
            Fault::Reset => Err(CheckError::ConnectionLost("connection reset by peer".into())),
            Fault::Conflict => Ok(HttpResponse::with(409, r#"{"error":"key in use"}"#)),
            Fault::ServerError => Ok(HttpResponse::with(500, "internal error")),
            Fault::Rejected => Ok(HttpResponse::with(400, r#"{"error":"bad amount"}"#)),
            Fault::Created => Ok(HttpResponse::with(200, r#"{"id":"pay_1"}"#)),
            Fault::CreatedWithoutId => Ok(HttpResponse::with(200, "{}")),
        }
    }

    fn is_2xx(self) -> bool {
        matches!(self, Fault::Created | Fault::CreatedWithoutId)
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Refused),
        Just(Fault::Timeout),
        Just(Fault::Reset),
        Just(Fault::Conflict),
        Just(Fault::ServerError),
        Just(Fault::Rejected),
        Just(Fault::Created),
        Just(Fault::CreatedWithoutId),
    ]
}

/// How a run must end, by the model.
#[derive(Debug, PartialEq)]
enum End {
    /// The id was learned and the refund passed.
    CleanedUp,
    /// The id was learned, but the refund failed: the refund is `cleanup_failed`.
    RefundFailed,
    /// The write may be live and nothing said what to clean up: `cleanup_failed` naming the key.
    Unknown,
    /// No attempt can have written: nothing is reported as possibly live.
    NeverWritten,
}

/// The reference model: the requests the run sends, in order, and how it ends, for the answers
/// `create` (two attempts), `replay`, `after` and `refund` (two attempts) in that order.
fn model(create: [Fault; 2], replay: Fault, after: Fault, refund: [Fault; 2]) -> (Vec<&'static str>, End) {
    let mut sent = Vec::new();
    let (mut written, mut known) = (false, false);
    for answer in create {
        sent.push(CREATE);
        // Sent, and not refused by a 4xx: the write may be live. No connection at all adds nothing.
        written |= !matches!(answer, Fault::Refused | Fault::Rejected | Fault::Conflict);
        if answer == Fault::Created {
            known = true;
            break;
        }
    }
    if known {
        sent.push(AFTER);
        // GET: retried once on failure; either way the journey then cleans up.
        if !after.is_2xx() {
            sent.push(AFTER);
        }
    } else if written {
        sent.push(CREATE);
        known = replay == Fault::Created;
    }
    if !known {
        return (sent, if written { End::Unknown } else { End::NeverWritten });
    }
    for answer in refund {
        sent.push(REFUND);
        if answer.is_2xx() {
            return (sent, End::CleanedUp);
        }
    }
    (sent, End::RefundFailed)
}

/// Runs the journey against a target scripted with exactly the answers the model expects to be
/// asked for; any request beyond them is answered 500 by the fake, and shows in the requests.
fn run_against(answers: Vec<Fault>) -> (RunResult, Vec<String>, Vec<Option<String>>) {
    let answers = answers.into_iter().map(Fault::answer);
    let journey_def = JourneyDef::parse(JOURNEY).expect("the journey is valid");
    let (result, requests) = run_scripted(&journey_def, answers, |setup| setup);
    let paths = requests.iter().map(|r| r.url.path().to_string()).collect();
    let keys = requests
        .iter()
        .filter(|r| r.url.path() == CREATE)
        .map(|r| r.headers.iter().find(|(k, _)| k == "Idempotency-Key").map(|(_, v)| v.clone()))
        .collect();
    (result, paths, keys)
}

/// Runs `journey_def` on a runtime of its own (one per generated case) against a target that
/// gives `answers` in order, retrying at once, with `adjust` applied to the run's setup: the
/// result, and every request the target was sent.
pub(super) fn run_scripted(
    journey_def: &JourneyDef,
    answers: impl IntoIterator<Item = Result<HttpResponse, CheckError>>,
    adjust: impl FnOnce(RunSetup) -> RunSetup,
) -> (RunResult, Vec<HttpRequest>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a test runtime");
    runtime.block_on(async {
        let target = answers.into_iter().fold(ScriptedTarget::default(), |t, a| t.then_after(Duration::ZERO, a));
        let target = Arc::new(target);
        let setup = RunSetup::scripted(target.clone(), &journey_def.check);
        let retry = RetryPolicy { attempts: 2, backoff: Duration::ZERO };
        let mut journey = StepRecorder::new(adjust(RunSetup { retry, ..setup }));
        run(journey_def, &mut journey, None).await.expect("no monitor failure");
        (journey.finish(), target.requests())
    })
}

proptest! {
    // Each case is a few microseconds of scripted exchanges: no waiting, no sockets.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_write_is_cleaned_up_or_reported_with_its_key_and_one_never_sent_is_never_live(
        create in [fault(), fault()],
        replay in fault(),
        after in fault(),
        refund in [fault(), fault()],
    ) {
        let (expected, end) = model(create, replay, after, refund);
        // The fake answers in order, so it is given the answers of the requests the model expects.
        let (mut to_create, mut to_after, mut to_refund) =
            (create.into_iter().chain([replay]), [after, after].into_iter(), refund.into_iter());
        let scripted: Vec<Fault> = expected
            .iter()
            .map(|path| match *path {
                CREATE => to_create.next(),
                AFTER => to_after.next(),
                _ => to_refund.next(),
            })
            .map(|answer| answer.expect("the model asks no more than it was given"))
            .collect();
        let (result, paths, keys) = run_against(scripted);

        // The run sends exactly what the model says: no blind refund, no replay of a write never sent.
        prop_assert_eq!(&paths, &expected, "{:#?}", result);
        // Every attempt and the replay are the same write.
        prop_assert!(keys.iter().all(|k| k.as_deref() == Some("synthetic-run-1-create")), "{:?}", keys);

        let cleanup_failed: Vec<_> = result.steps.iter().filter(|s| s.cause == Some(Cause::CleanupFailed)).collect();
        let live_said = result.steps.iter().any(|s| s.error.as_deref().is_some_and(|e| e.contains("may be live") || e.contains("may be left live")));
        let refund_step = result.steps.iter().find(|s| s.name == "refund");
        match end {
            End::CleanedUp => {
                prop_assert!(refund_step.is_some_and(|s| s.cause.is_none()), "{:#?}", result);
                prop_assert!(cleanup_failed.is_empty() && !live_said, "{:#?}", result);
            }
            End::RefundFailed => {
                prop_assert!(refund_step.is_some_and(|s| s.cause == Some(Cause::CleanupFailed)), "{:#?}", result);
            }
            End::Unknown => {
                prop_assert_eq!(result.cause, Some(Cause::CleanupFailed), "{:#?}", result);
                prop_assert!(cleanup_failed.iter().any(|s| s.error.as_deref().is_some_and(|e| e.contains(KEY))), "{:#?}", result);
            }
            End::NeverWritten => {
                prop_assert!(cleanup_failed.is_empty() && !live_said, "{:#?}", result);
                if create.iter().all(|f| *f == Fault::Refused) {
                    prop_assert_eq!(result.cause, Some(Cause::Connect), "{:#?}", result);
                }
            }
        }
    }
}

#[test]
fn the_model_knows_the_examples_of_issue_19() {
    use Fault::*;
    // Both attempts time out, the replay is answered 409 or 500: the outcome is unknown.
    assert_eq!(model([Timeout, Timeout], Conflict, Created, [Created, Created]).1, End::Unknown);
    assert_eq!(model([Timeout, Timeout], ServerError, Created, [Created, Created]).1, End::Unknown);
    // The first attempt times out, the retry gets 409: likewise.
    assert_eq!(model([Timeout, Conflict], Conflict, Created, [Created, Created]).1, End::Unknown);
    // A 500 and a 409: the 500 may have committed, the 409 is that write still at work.
    assert_eq!(model([ServerError, Conflict], ServerError, Created, [Created, Created]).1, End::Unknown);
    // Refused twice: nothing was sent, no replay.
    assert_eq!(
        model([Refused, Refused], Created, Created, [Created, Created]),
        (vec![CREATE, CREATE], End::NeverWritten)
    );
    // A replay that learns the id lets the refund run.
    assert_eq!(
        model([Timeout, Timeout], Created, Created, [Created, Created]),
        (vec![CREATE, CREATE, CREATE, REFUND], End::CleanedUp)
    );
}

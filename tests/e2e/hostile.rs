//! Hostile and broken targets: each ends as a failed step with the right cause, within the
//! step's budget, and never a panic. Runs the real reqwest adapter through a journey step.

use std::sync::Arc;
use std::time::{Duration, Instant};
use synthetic_checks::http::{DEFAULT_MAX_BODY_BYTES, HttpSettings, Method, ReqwestTarget};
use synthetic_checks::journey::ExpectedStatus;
use synthetic_checks::journey::judge::{Assertion, JsonTest};
use synthetic_checks::journey::{Budget, RetryPolicy, RunSetup, StepRecorder, StepSpec};
use synthetic_checks::{Cause, Outcome, StepResult};
use synthetic_e2e::hostile::{HostileServer, Hostility, refused_url};

const BUDGET: Duration = Duration::from_millis(1500);
/// How long past its budget a timed-out step may end: scheduling on a loaded 2-core machine.
/// A third of the budget, so a step that waited twice its budget (or ignored it) fails.
const LATE: Duration = Duration::from_millis(500);

async fn step_against(base: &str) -> (StepResult, Duration) {
    let http = ReqwestTarget::new(&HttpSettings::default()).expect("client");
    let mut journey = StepRecorder::new(RunSetup {
        http: Arc::new(http),
        check: "hostile".into(),
        env: "test".into(),
        target: base.parse().expect("url"),
        run_id: "run".into(),
        synthetic_header: "X-Synthetic-Check".into(),
        retry: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
        max_redirects: 5,
        deadline: None,
        trace: None,
    });
    let budget = Budget { degraded_after: BUDGET, fail_after: BUDGET };
    let spec = StepSpec::new("probe", Method::Get, "/api/products", ExpectedStatus::one(200), budget)
        .assert(Assertion::Json { pointer: "/data".into(), optional: false, test: JsonTest::MinItems(1) });
    let started = Instant::now();
    let _ = journey.step(spec).await;
    let elapsed = started.elapsed();
    (journey.finish().steps.remove(0), elapsed)
}

/// When a failed step must end.
#[derive(Clone, Copy, Debug)]
enum Ends {
    /// Cut off by its budget: not before it, and not much after.
    AtTheBudget,
    /// Failed on its own, long before the budget could matter.
    WellWithinTheBudget,
}

fn assert_ended(mode: &str, elapsed: Duration, ends: Ends) {
    match ends {
        Ends::AtTheBudget => assert!(
            BUDGET <= elapsed && elapsed < BUDGET + LATE,
            "{mode} ended after {elapsed:?}; its {BUDGET:?} budget should have cut it off"
        ),
        Ends::WellWithinTheBudget => {
            assert!(elapsed < BUDGET / 2, "{mode} took {elapsed:?}, too close to its {BUDGET:?} budget")
        }
    }
}

async fn assert_fails(mode: Hostility, cause: Cause, ends: Ends) -> StepResult {
    let server = HostileServer::start(mode).await.expect("hostile server");
    let (step, elapsed) = step_against(&server.url()).await;
    assert_eq!((step.outcome, step.cause), (Outcome::Failed, Some(cause)), "{mode:?}: {step:#?}");
    assert!(step.error.as_deref().is_some_and(|e| !e.is_empty() && !e.contains('\n')), "{step:#?}");
    assert_ended(&format!("{mode:?}"), elapsed, ends);
    step
}

#[tokio::test]
async fn a_hang_is_a_timeout() {
    assert_fails(Hostility::Hang, Cause::Timeout, Ends::AtTheBudget).await;
}

#[tokio::test]
async fn a_slow_drip_is_a_timeout_within_the_budget() {
    assert_fails(Hostility::SlowDrip, Cause::Timeout, Ends::AtTheBudget).await;
}

#[tokio::test]
async fn a_50_mb_body_is_cut_off_by_the_body_cap() {
    // GIVEN a body that is valid JSON with plenty of `/data` items, only too big
    // WHEN the step reads it
    let step = assert_fails(Hostility::HugeBody, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
    // THEN the cap is what failed it, not the JSON
    let error = step.error.unwrap_or_default();
    assert!(error.contains(&format!("{DEFAULT_MAX_BODY_BYTES} byte cap")), "{error}");
}

#[tokio::test]
async fn non_json_is_invalid_response() {
    assert_fails(Hostility::NonJson, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn invalid_utf8_is_invalid_response() {
    assert_fails(Hostility::InvalidUtf8, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_redirect_loop_is_invalid_response() {
    assert_fails(Hostility::RedirectLoop, Cause::InvalidResponse, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_reset_connection_is_connect() {
    assert_fails(Hostility::Reset, Cause::Connect, Ends::WellWithinTheBudget).await;
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    let (step, elapsed) = step_against(&refused_url().await.expect("port")).await;
    assert_eq!(step.cause, Some(Cause::Connect), "{step:#?}");
    assert_ended("refused", elapsed, Ends::WellWithinTheBudget);
}

#[tokio::test]
async fn plain_http_behind_an_https_url_is_tls() {
    let server = HostileServer::start(Hostility::NonJson).await.expect("hostile server");
    let (step, elapsed) = step_against(&server.https_url()).await;
    assert_eq!(step.cause, Some(Cause::Tls), "{step:#?}");
    assert_ended("plain HTTP behind https", elapsed, Ends::WellWithinTheBudget);
}

// ---------------------------------------------------------------------------------------------
// Hostile journeys: the `synthetic` binary runs a journey file against real listeners, and
// what the listeners saw is the evidence.

mod journeys {
    use crate::helpers::{Exited, JourneyFile, serve, synthetic, synthetic_peak_rss};
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, header};
    use axum::routing::{any, get, post};
    use serde_json::json;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use synthetic_checks::{Cause, Outcome, RunResult, StepResult};
    use synthetic_e2e::fake_apis::percent_decode;

    fn result(exited: &Exited) -> RunResult {
        assert_ne!(exited.code, 101, "a panic: {}", exited.stderr);
        serde_json::from_str(exited.stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", exited.stdout, exited.stderr))
    }

    fn step<'r>(run: &'r RunResult, name: &str) -> &'r StepResult {
        run.steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name}: {run:#?}"))
    }

    /// A listener that answers 200 to anything and records each request's path: where nothing
    /// may ever arrive.
    async fn recorder() -> (String, Arc<Mutex<Vec<String>>>) {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let url = serve(Router::new().fallback(any(move |uri: axum::http::Uri| {
            let record = record.clone();
            async move {
                record.lock().map(|mut r| r.push(uri.to_string())).ok();
                "{}"
            }
        })))
        .await;
        (url, seen)
    }

    /// A gzip body of about `compressed` bytes that inflates to about a thousand times that in
    /// zeros: 1 MiB of zeros deflated once, ended by a sync flush (an empty stored block, so it
    /// ends on a byte boundary), repeated; then a final empty block and the true trailer.
    fn gzip_bomb(compressed: usize) -> (Vec<u8>, u64) {
        use flate2::{Compression, Crc, write::DeflateEncoder};
        let zeros = vec![0u8; 1 << 20];
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&zeros).expect("deflate");
        encoder.flush().expect("sync flush");
        let unit = encoder.get_ref().clone();
        let (mut one, mut crc) = (Crc::new(), Crc::new());
        one.update(&zeros);
        let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        let mut inflated = 0u64;
        while body.len() < compressed {
            body.extend_from_slice(&unit);
            crc.combine(&one);
            inflated += zeros.len() as u64;
        }
        // BFINAL=1, fixed Huffman, end of block.
        body.extend_from_slice(&[0x03, 0x00]);
        body.extend_from_slice(&crc.sum().to_le_bytes());
        body.extend_from_slice(&(inflated as u32).to_le_bytes());
        (body, inflated)
    }

    #[test]
    fn the_bomb_is_valid_gzip_of_zeros() {
        let (bomb, inflated) = gzip_bomb(64 * 1024);
        let mut zeros = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bomb.as_slice()), &mut zeros).expect("gzip");
        assert_eq!(zeros.len() as u64, inflated);
        assert!(inflated > 500 * bomb.len() as u64 && zeros.iter().all(|b| *b == 0), "{inflated}");
    }

    #[tokio::test]
    async fn a_10_mb_gzip_of_zeros_is_a_failed_step_at_the_1_mb_cap_and_memory_stays_flat() {
        // GIVEN a target answering 10 MB of gzip that inflates to about 10 GB of zeros
        let (bomb, inflated) = gzip_bomb(10 * 1024 * 1024);
        assert!(inflated > 5 * 1024 * 1024 * 1024, "{inflated}");
        let bomb = Bytes::from(bomb);
        let target = serve(
            Router::new()
                .route(
                    "/bomb",
                    get(move || {
                        let bomb = bomb.clone();
                        async move {
                            ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "application/json")], bomb)
                        }
                    }),
                )
                // The cleanup step waits here, so the memory is read after the bomb and before the exit.
                .route(
                    "/pause",
                    get(|| async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "{}"
                    }),
                ),
        )
        .await;
        let file = JourneyFile::new(
            "check = \"gzip-bomb\"\n[[steps]]\nname = \"bomb\"\npath = \"/bomb\"\nfail_after_ms = 20000\n\
             [[steps]]\nname = \"pause\"\nrole = \"cleanup\"\npath = \"/pause\"\n",
        );
        // WHEN the check reads it behind the default 1 MiB cap
        let (exited, peak_kib) = synthetic_peak_rss(&file.args(&target), &[("RETRY_ATTEMPTS", "1")]).await;
        // THEN the step fails at the cap, on the decompressed size
        let run = result(&exited);
        let bomb = step(&run, "bomb");
        assert_eq!((bomb.outcome, bomb.cause), (Outcome::Failed, Some(Cause::InvalidResponse)), "{run:#?}");
        assert!(bomb.error.as_deref().is_some_and(|e| e.contains("1048576 byte cap")), "{bomb:#?}");
        assert_eq!(step(&run, "pause").outcome, Outcome::Passed, "the memory was read while it ran");
        // AND the process's peak memory stays far below what the body inflates to: only 1 MiB of
        // it is ever held (the CLI alone peaks near 25 MiB; a 64 MiB cap already goes past this).
        assert!(peak_kib > 0, "VmHWM was read");
        assert!(peak_kib < 48 * 1024, "peak RSS {peak_kib} KiB for a body of {inflated} bytes");
    }

    #[tokio::test]
    async fn a_next_link_to_another_host_or_to_another_declared_origin_is_refused_and_nothing_arrives_there() {
        // GIVEN a listener nobody declared, and one the journey declares as its identity provider
        let (thief, stolen) = recorder().await;
        let (idp, idp_seen) = recorder().await;
        for (leak, listener) in [(format!("{thief}/steal?page=2"), &stolen), (format!("{idp}/admin"), &idp_seen)] {
            // AND a listing on the main target whose next link points there
            let next = json!({ "next": leak }).to_string();
            let target = serve(Router::new().route("/list", get(move || async move { next }))).await;
            let file = JourneyFile::new(&format!(
                "check = \"next-link\"\n[targets]\nidp = \"{idp}/\"\n[[steps]]\nname = \"list\"\npath = \"/list\"\n\
                 capture = {{ next = {{ json = \"/next\" }} }}\n[[steps]]\nname = \"next\"\nurl = \"{{{{next}}}}\"\n"
            ));
            // WHEN the journey follows it
            let exited = synthetic(&file.args(&target), &[]).await;
            // THEN the step fails without sending anything there
            exited.expect(1);
            let run = result(&exited);
            let next = step(&run, "next");
            assert_eq!(next.outcome, Outcome::Failed, "{leak}: {run:#?}");
            let error = next.error.as_deref().unwrap_or_default();
            assert!(error.contains("leaves its origin") && error.contains("nothing was sent there"), "{next:#?}");
            assert!(listener.lock().unwrap().is_empty(), "{leak}: a request arrived: {:?}", listener.lock().unwrap());
        }
    }

    #[tokio::test]
    async fn a_regex_capture_on_a_huge_body_ends_within_the_step_s_budget() {
        // GIVEN a body just under the cap that makes a backtracking engine explode on (a+)+b
        let body = "a".repeat(1_000_000);
        let target = serve(Router::new().route("/page", get(move || async move { body }))).await;
        let file = JourneyFile::new(
            "check = \"regex\"\n[[steps]]\nname = \"page\"\npath = \"/page\"\nfail_after_ms = 5000\n\
             capture = { csrf = { regex = \"((a+)+b)\" } }\n",
        );
        // WHEN the capture looks for it
        let exited = synthetic(&file.args(&target), &[("RETRY_ATTEMPTS", "1")]).await;
        // THEN the step fails as "not found", not as a timeout, and the run ends within the budget
        exited.expect(1);
        let run = result(&exited);
        let page = step(&run, "page");
        assert_eq!(page.outcome, Outcome::Failed, "{run:#?}");
        assert_ne!(page.cause, Some(Cause::Timeout), "{page:#?}");
        assert!(run.duration_ms < 5000, "the run took {} ms, past the step's 5000 ms budget", run.duration_ms);
        assert!(!exited.stdout.contains("aaaaaaaaaaaaaaaaaaaa"), "the body is not echoed");
    }

    #[tokio::test]
    async fn a_captured_value_cannot_smuggle_a_form_field_or_a_header() {
        // GIVEN an API that hands out a value with a form separator and one with CR/LF
        let note = "a&x=y&amount=999999";
        // The fields of each form body posted, in order.
        type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;
        let forms: Forms = Arc::default();
        let headers: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let (form_log, header_log) = (forms.clone(), headers.clone());
        let created = json!({ "note": note, "label": "v\r\nX-Injected: yes" }).to_string();
        let target = serve(
            Router::new()
                .route("/create", post(move || async move { created }))
                .route(
                    "/form",
                    post(move |body: String| async move {
                        let fields = body
                            .split('&')
                            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                            .map(|(k, v)| {
                                (percent_decode(k).unwrap_or_default(), percent_decode(v).unwrap_or_default())
                            })
                            .collect();
                        form_log.lock().map(|mut f| f.push(fields)).ok();
                        "{}"
                    }),
                )
                .route(
                    "/header",
                    get(move |seen: HeaderMap| async move {
                        header_log.lock().map(|mut h| h.push(seen)).ok();
                        "{}"
                    }),
                ),
        )
        .await;
        let file = JourneyFile::new(
            "check = \"smuggle\"\n[[steps]]\nname = \"create\"\nmethod = \"POST\"\npath = \"/create\"\n\
             capture = { note = { json = \"/note\" }, label = { json = \"/label\" } }\n\
             [[steps]]\nname = \"as_form\"\nmethod = \"POST\"\npath = \"/form\"\nform = { note = \"{{note}}\" }\n\
             [[steps]]\nname = \"as_header\"\npath = \"/header\"\nheaders = { X-Label = \"{{label}}\" }\n",
        );
        // WHEN the journey sends them on
        let exited = synthetic(&file.args(&target), &[]).await;
        let run = result(&exited);
        // THEN the server saw exactly one form field, holding the whole value
        assert_eq!(step(&run, "as_form").outcome, Outcome::Passed, "{run:#?}");
        assert_eq!(*forms.lock().unwrap(), [vec![("note".to_string(), note.to_string())]]);
        // AND the header step failed unsent: no request, so no extra header
        let as_header = step(&run, "as_header");
        assert_eq!(as_header.outcome, Outcome::Failed, "{run:#?}");
        assert!(as_header.error.as_deref().is_some_and(|e| e.contains("control character")), "{as_header:#?}");
        let seen = headers.lock().unwrap();
        assert!(seen.iter().all(|h| !h.contains_key("x-injected")), "{seen:?}");
        assert!(seen.is_empty(), "a header with CR/LF was sent: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Polling a target that never becomes ready

mod polling {
    use crate::helpers::serve;
    use axum::Router;
    use axum::routing::get;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use synthetic_checks::http::{HttpSettings, Method, ReqwestTarget};
    use synthetic_checks::journey::file::Until;
    use synthetic_checks::journey::judge::{Assertion, JsonTest};
    use synthetic_checks::journey::{Budget, ExpectedStatus, RetryPolicy, RunSetup, StepRecorder, StepSpec};
    use synthetic_checks::trace::TraceContext;
    use synthetic_checks::{Cause, Outcome, StepResult};

    /// Scheduling slack on a loaded 2-core machine; the bounds themselves are the promise.
    const LATE: Duration = Duration::from_millis(500);

    async fn poll_forever(within: Duration, deadline: Option<Duration>) -> (StepResult, Duration) {
        let target = serve(Router::new().route("/job", get(|| async { r#"{"state":"pending"}"# }))).await;
        let http = ReqwestTarget::new(&HttpSettings::default()).expect("client");
        let started = Instant::now();
        let mut journey = StepRecorder::new(RunSetup {
            http: Arc::new(http),
            check: "poll".into(),
            env: "test".into(),
            target: target.parse().expect("url"),
            run_id: "run".into(),
            synthetic_header: "X-Synthetic-Check".into(),
            retry: RetryPolicy { attempts: 1, backoff: Duration::ZERO },
            max_redirects: 0,
            deadline: deadline.map(|d| started + d),
            trace: Some(TraceContext::new("poll")),
        });
        let budget = Budget { degraded_after: Duration::from_secs(1), fail_after: Duration::from_secs(1) };
        let mut spec =
            StepSpec::new("job", Method::Get, "/job", ExpectedStatus::one(200), budget).assert(Assertion::Json {
                pointer: "/state".into(),
                optional: false,
                test: JsonTest::Equals(serde_json::json!("done")),
            });
        spec.until = Some(Until { every: Duration::from_millis(100), within });
        let _ = journey.step(spec).await;
        let elapsed = started.elapsed();
        (journey.finish().steps.remove(0), elapsed)
    }

    fn assert_gave_up(step: &StepResult) {
        assert_eq!((step.outcome, step.cause), (Outcome::Failed, Some(Cause::Assertion)), "{step:#?}");
        assert!(step.attempts >= 2, "it polled: {step:#?}");
        assert!(step.error.as_deref().is_some_and(|e| e.contains("pending")), "the last poll's message: {step:#?}");
    }

    #[tokio::test]
    async fn a_poll_on_a_target_that_never_becomes_ready_ends_by_its_within_ms() {
        let within = Duration::from_millis(800);
        let (step, elapsed) = poll_forever(within, None).await;
        assert_gave_up(&step);
        assert!(elapsed < within + LATE, "polled for {elapsed:?}, past its {within:?} window");
    }

    #[tokio::test]
    async fn a_poll_window_longer_than_the_run_ends_before_the_run_s_deadline() {
        let deadline = Duration::from_millis(1200);
        let (step, elapsed) = poll_forever(Duration::from_secs(30), Some(deadline)).await;
        assert_gave_up(&step);
        assert!(
            elapsed <= deadline + Duration::from_millis(100),
            "polled for {elapsed:?}, past the deadline {deadline:?}"
        );
    }
}

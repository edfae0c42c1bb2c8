//! Many checks at once: at most a given number running, their results handed back in the order
//! they were selected, whatever order they finish in, so one gate reports every check once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Runs `run(index, item)` for each item, at most `limit` at a time (at least one). Once `stop`
/// is set no further item starts, while those already running finish (a payment journey stopped
/// between create and refund would leave a sandbox payment live). The result at each index is
/// that item's, or `None` when it never started.
pub async fn run_bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, stop: Arc<AtomicBool>, run: F) -> Vec<Option<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let slots = Arc::new(Semaphore::new(limit.max(1)));
    let run = Arc::new(run);
    let mut running = JoinSet::new();
    for (index, item) in items.into_iter().enumerate() {
        // The semaphore is never closed, so this only waits for a running item to finish.
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (run, stop) = (run.clone(), stop.clone());
        running.spawn(async move {
            // A task starts when the runtime first polls it, which may be after the flag was set.
            if stop.load(Ordering::SeqCst) {
                return (index, None);
            }
            let result = run(index, item).await;
            drop(slot);
            (index, Some(result))
        });
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = result,
            // A check that panicked is a bug of the monitor: it is not hidden as "not run".
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => {}
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime")
    }

    /// What a run of the model saw: results, the most items running at once, and which items
    /// started after the stop flag was set.
    struct Seen {
        results: Vec<Option<usize>>,
        most_at_once: usize,
        started_after_stop: Vec<usize>,
        finished_before_stop: usize,
    }

    /// Item `i` yields `yields[i]` times (so items finish in an order unrelated to their index)
    /// and returns `i * 10`; the stop flag is set when `stop_after` items have finished.
    fn model(yields: Vec<u8>, limit: usize, stop_after: Option<usize>) -> Seen {
        let stop = Arc::new(AtomicBool::new(false));
        let (now, most, finished) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let late = Arc::new(Mutex::new(Vec::new()));
        let results = runtime().block_on(run_bounded(yields, limit, stop.clone(), {
            let (now, most, finished, late, stop) =
                (now.clone(), most.clone(), finished.clone(), late.clone(), stop.clone());
            move |index, yields: u8| {
                let (now, most, finished, late, stop) =
                    (now.clone(), most.clone(), finished.clone(), late.clone(), stop.clone());
                async move {
                    if stop.load(Ordering::SeqCst) {
                        late.lock().unwrap().push(index);
                    }
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    if Some(finished.fetch_add(1, Ordering::SeqCst) + 1) == stop_after {
                        stop.store(true, Ordering::SeqCst);
                    }
                    index * 10
                }
            }
        }));
        let started_after_stop = late.lock().unwrap().clone();
        Seen {
            results,
            most_at_once: most.load(Ordering::SeqCst),
            started_after_stop,
            finished_before_stop: stop_after.unwrap_or(0),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every item is reported exactly once, at its own index, with its own result, whatever
        /// the order they finish in; never more than `limit` run at once, and as many as `limit`
        /// do when each takes a while.
        #[test]
        fn every_item_once_in_order_and_never_more_than_the_limit(
            yields in prop::collection::vec(1u8..20, 0..40),
            limit in 1usize..8,
        ) {
            let count = yields.len();
            let seen = model(yields, limit, None);
            let expected: Vec<Option<usize>> = (0..count).map(|index| Some(index * 10)).collect();
            prop_assert_eq!(seen.results, expected);
            prop_assert!(seen.most_at_once <= limit);
            prop_assert_eq!(seen.most_at_once, limit.min(count));
        }

        /// After the stop flag, nothing new starts; what ran is reported, what did not is `None`,
        /// and at most `limit` items were still running when it was set.
        #[test]
        fn a_stop_starts_nothing_new_and_reports_what_ran(
            yields in prop::collection::vec(0u8..20, 1..40),
            limit in 1usize..8,
            stop_after in 1usize..40,
        ) {
            let count = yields.len();
            let seen = model(yields, limit, Some(stop_after));
            prop_assert!(seen.started_after_stop.is_empty(), "started after the stop: {:?}", seen.started_after_stop);
            let ran = seen.results.iter().filter(|result| result.is_some()).count();
            prop_assert!(ran >= seen.finished_before_stop.min(count));
            prop_assert!(ran <= (seen.finished_before_stop + limit).min(count), "{} ran", ran);
            for (index, result) in seen.results.iter().enumerate() {
                prop_assert!(result.is_none() || *result == Some(index * 10));
            }
            // The ones that ran are a prefix: items start in order.
            let first_missing = seen.results.iter().position(Option::is_none).unwrap_or(count);
            prop_assert!(seen.results[first_missing..].iter().all(Option::is_none));
        }
    }

    #[test]
    fn a_limit_of_zero_still_runs_one_at_a_time() {
        let seen = model(vec![3, 3, 3], 0, None);
        assert_eq!(seen.results, [Some(0), Some(10), Some(20)]);
        assert_eq!(seen.most_at_once, 1);
    }
}

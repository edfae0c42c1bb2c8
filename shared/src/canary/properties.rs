//! Property tests of the canary analysis over generated runs: the statistics stay p-values at
//! every size the gate can collect (10 000 runs per side), agree with exact arithmetic where it
//! fits in a u128, and the decision rules keep their promises whatever the numbers are:
//! identical sides never roll back, no comparison is never a promote, and a rollback is always
//! decided by a metric that failed with confidence.

use super::stats::{binomial_one_sided, fisher_one_sided, mann_whitney_one_sided};
use super::{Judgement, Policy, Side, Verdict, analyse};
use proptest::prelude::*;
use std::time::Duration;

/// Runs per side, failures among them.
fn counts(most: u64) -> impl Strategy<Value = (u64, u64)> {
    (0..=most).prop_flat_map(|runs| (Just(runs), 0..=runs))
}

/// Latencies in whole milliseconds, as the monitor records them, from a narrow range so that
/// ties are common.
fn latencies(most: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((0u32..60).prop_map(f64::from), 0..most)
}

/// A side: counts, 0 to 2 steps answered, and the collection's time with a failing tail.
fn side() -> impl Strategy<Value = Side> {
    (counts(10_000), prop::collection::btree_map("[ab]", latencies(120), 0..3), 0u64..600_000, 0u64..=100).prop_map(
        |((runs, failures), latencies, elapsed_ms, failing_pct)| Side {
            runs,
            failures,
            rejected: 0,
            latencies,
            elapsed: Duration::from_millis(elapsed_ms),
            failing_for: Duration::from_millis(elapsed_ms * failing_pct / 100),
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    (1u64..40, 0.0..=0.2f64, 0.001..=0.2f64, 1.0..3.0f64, 0.0..20.0f64, 0.001..=0.2f64).prop_map(
        |(min_runs, max_failure_rate, failure_alpha, latency_tolerance, latency_min_difference_ms, latency_alpha)| {
            Policy {
                min_runs,
                max_failure_rate,
                failure_alpha,
                latency_tolerance,
                latency_min_difference_ms,
                latency_alpha,
                p99_min_samples: 100,
            }
        },
    )
}

fn binomial(n: u64, k: u64) -> u128 {
    (0..k).fold(1u128, |c, i| c * u128::from(n - i) / u128::from(i + 1))
}

/// Fisher's upper tail with exact integers: fits a u128 up to 120 runs in all.
fn exact_fisher(cf: u64, cr: u64, bf: u64, br: u64) -> f64 {
    let (population, failures) = (cr + br, cf + bf);
    let tail: u128 =
        (cf..=failures.min(cr)).map(|x| binomial(failures, x) * binomial(population - failures, cr - x)).sum();
    tail as f64 / binomial(population, cr) as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fisher_is_a_p_value_up_to_ten_thousand_runs_and_falls_with_each_failure(
        (cr, cf) in counts(10_000),
        (br, bf) in counts(10_000),
    ) {
        let p = fisher_one_sided(cf, cr, bf, br);
        prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{p}");
        if cf < cr {
            // One more failure (and one pass fewer) on the canary is never weaker evidence.
            let more = fisher_one_sided(cf + 1, cr, bf, br);
            prop_assert!(more <= p * (1.0 + 1e-9) + 1e-300, "{more} > {p}");
        }
    }

    /// The two tails of the same hypergeometric distribution add up to 1: the canary having at
    /// least `cf` of the failures, and the baseline having at least `bf + 1` (the canary at most
    /// `cf - 1`). No term may overflow, underflow wrongly or come out as NaN for this to hold.
    #[test]
    fn fishers_two_tails_add_up_to_one((cr, cf) in counts(10_000), (br, bf) in counts(10_000)) {
        prop_assume!(cf >= 1 && bf < br);
        let (upper, lower) = (fisher_one_sided(cf, cr, bf, br), fisher_one_sided(bf + 1, br, cf - 1, cr));
        prop_assert!((upper + lower - 1.0).abs() < 1e-9, "{upper} + {lower}");
    }

    #[test]
    fn fisher_agrees_with_exact_integers((cr, cf) in counts(60), (br, bf) in counts(60)) {
        let (p, exact) = (fisher_one_sided(cf, cr, bf, br), exact_fisher(cf, cr, bf, br));
        prop_assert!((p - exact).abs() <= 1e-11 * exact.max(1e-300), "{p} vs exact {exact}");
    }

    #[test]
    fn the_ceiling_test_is_a_p_value_and_falls_with_each_failure((runs, failures) in counts(10_000), ceiling in 0.0..=1.0f64) {
        let p = binomial_one_sided(failures, runs, ceiling);
        prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{p}");
        if failures < runs {
            prop_assert!(binomial_one_sided(failures + 1, runs, ceiling) <= p * (1.0 + 1e-9) + 1e-300);
        }
    }

    #[test]
    fn mann_whitney_is_a_p_value_and_half_or_more_for_identical_samples(canary in latencies(400), baseline in latencies(400)) {
        let p = mann_whitney_one_sided(&canary, &baseline);
        prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{p}");
        prop_assert!(mann_whitney_one_sided(&canary, &canary) >= 0.5);
    }

    #[test]
    fn identical_sides_never_roll_back(side in side(), policy in policy()) {
        let a = analyse(&side, &side.clone(), &policy);
        prop_assert_ne!(a.verdict, Verdict::Rollback, "{:#?}", a);
    }

    #[test]
    fn no_comparison_is_never_a_promote(canary in side(), baseline in side(), policy in policy(), dead in any::<bool>()) {
        // A dead baseline (every run failed), or a step only one side answered.
        let mut baseline = baseline;
        if dead {
            baseline.failures = baseline.runs;
        } else {
            baseline.latencies.insert("only-one-side".into(), vec![40.0]);
        }
        let a = analyse(&baseline, &canary, &policy);
        prop_assert_ne!(a.verdict, Verdict::Promote, "{:#?}", a);
    }

    #[test]
    fn a_rollback_is_decided_by_metrics_that_failed_with_confidence(
        baseline in side(),
        canary in side(),
        policy in policy(),
    ) {
        let a = analyse(&baseline, &canary, &policy);
        let failed: Vec<_> = a.metrics.iter().filter(|m| m.result == Judgement::Fail).collect();
        prop_assert_eq!(a.verdict == Verdict::Rollback, !failed.is_empty() && baseline.runs.min(canary.runs) >= policy.min_runs);
        for metric in failed {
            let confident = match metric.name.as_str() {
                "failure rate" => {
                    metric.p_value.is_some_and(|p| p < policy.failure_alpha)
                        || binomial_one_sided(canary.failures, canary.runs, policy.max_failure_rate) < policy.failure_alpha
                }
                _ => metric.p_value.is_some_and(|p| p < policy.latency_alpha),
            };
            prop_assert!(confident, "{:#?}", metric);
        }
        prop_assert!(a.runs == [baseline.runs, canary.runs]);
    }
}

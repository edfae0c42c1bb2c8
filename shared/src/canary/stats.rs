//! The two tests the canary analysis decides with, on `statrs` distributions.
//!
//! - Failure rates: Fisher's exact test, one-sided ("the canary fails more often than the
//!   baseline"), exact at any sample size, which matters because a canary analysis has tens of
//!   runs, not thousands.
//! - Latency: the Mann-Whitney U test, one-sided ("the canary's latencies tend to be larger"),
//!   with the normal approximation, tie correction and continuity correction. It compares ranks,
//!   so one slow outlier cannot decide, and assumes no distribution of latencies.

use statrs::distribution::{ContinuousCDF, Discrete, Hypergeometric, Normal};

/// P(the canary has at least `canary_failures` of the failures) if both sides fail alike: the
/// upper tail of the hypergeometric distribution of failures among the canary's runs.
pub fn fisher_one_sided(canary_failures: u64, canary_runs: u64, baseline_failures: u64, baseline_runs: u64) -> f64 {
    let population = canary_runs + baseline_runs;
    let failures = canary_failures + baseline_failures;
    let Ok(distribution) = Hypergeometric::new(population, failures, canary_runs) else {
        return 1.0;
    };
    let most = failures.min(canary_runs);
    (canary_failures..=most).map(|x| distribution.pmf(x)).sum::<f64>().min(1.0)
}

/// The U statistic of `canary` against `baseline` (pairs where the canary is larger, ties half).
pub fn mann_whitney_u(canary: &[f64], baseline: &[f64]) -> f64 {
    canary
        .iter()
        .map(|c| {
            baseline
                .iter()
                .map(|b| {
                    if c > b {
                        1.0
                    } else if c == b {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum()
}

/// One-sided p-value that the canary's values are stochastically larger than the baseline's.
pub fn mann_whitney_one_sided(canary: &[f64], baseline: &[f64]) -> f64 {
    let (n1, n2) = (canary.len() as f64, baseline.len() as f64);
    if canary.is_empty() || baseline.is_empty() {
        return 1.0;
    }
    let u = mann_whitney_u(canary, baseline);
    let n = n1 + n2;
    let mut all: Vec<f64> = canary.iter().chain(baseline).copied().collect();
    all.sort_by(f64::total_cmp);
    let ties: f64 = all
        .chunk_by(|a, b| a == b)
        .map(|group| {
            let t = group.len() as f64;
            t * t * t - t
        })
        .sum();
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    match Normal::new(0.0, 1.0) {
        Ok(normal) => 1.0 - normal.cdf(z),
        Err(_) => 1.0,
    }
}

/// The `q` quantile (0..=1) by the nearest-rank method: a value that was observed.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    /// Fisher's lady tasting tea (Fisher, The Design of Experiments, 1935): 3 of 4 cups right
    /// in each group gives the one-sided p = 17/70 = 0.2429 (R: `fisher.test(matrix(c(3,1,1,3),
    /// 2), alternative = "greater")`).
    #[test]
    fn fisher_reproduces_the_tea_tasting_reference() {
        assert!(close(fisher_one_sided(3, 4, 1, 4), 17.0 / 70.0, 1e-12), "{}", fisher_one_sided(3, 4, 1, 4));
        assert!(close(fisher_one_sided(4, 4, 0, 4), 1.0 / 70.0, 1e-12));
        assert!(close(fisher_one_sided(0, 4, 4, 4), 1.0, 1e-12), "no evidence the canary is worse");
        assert_eq!(fisher_one_sided(0, 20, 0, 20), 1.0, "no failures at all");
    }

    /// A canary failing 5 of 20 runs against a clean baseline: C(20,5)/C(40,5) = 15504/658008.
    #[test]
    fn fisher_on_a_quarter_of_failed_runs() {
        assert!(close(fisher_one_sided(5, 20, 0, 20), 15_504.0 / 658_008.0, 1e-12));
    }

    /// SciPy's `mannwhitneyu` documentation example (Conover, Practical Nonparametric
    /// Statistics): males [19, 22, 16, 29, 24] against females [20, 11, 17, 12] give U = 17 and,
    /// with the asymptotic method and continuity correction, a two-sided p of 0.11134688653314041,
    /// so the one-sided p is half of it.
    #[test]
    fn mann_whitney_reproduces_the_scipy_reference() {
        let (males, females) = ([19.0, 22.0, 16.0, 29.0, 24.0], [20.0, 11.0, 17.0, 12.0]);
        assert_eq!(mann_whitney_u(&males, &females), 17.0);
        let p = mann_whitney_one_sided(&males, &females);
        assert!(close(p, 0.111_346_886_533_140_41 / 2.0, 1e-9), "{p}");
    }

    #[test]
    fn mann_whitney_sees_a_shift_and_not_noise() {
        let baseline: Vec<f64> = (0..20).map(|i| 40.0 + f64::from(i % 5)).collect();
        let slower: Vec<f64> = baseline.iter().map(|v| v * 1.5).collect();
        assert!(mann_whitney_one_sided(&slower, &baseline) < 1e-6);
        assert!(mann_whitney_one_sided(&baseline, &baseline) > 0.4, "identical samples");
        assert_eq!(mann_whitney_one_sided(&[], &baseline), 1.0);
    }

    #[test]
    fn quantiles_are_observed_values() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.95), Some(19.0));
        assert_eq!(quantile(&values, 0.99), Some(20.0));
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}

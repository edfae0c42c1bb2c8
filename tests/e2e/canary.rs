//! `synthetic canary` against two demo shops, one the baseline and one the canary: identical
//! shops promote, a canary failing a quarter of its runs or 50% slower on one step rolls back,
//! and three runs are inconclusive whatever they show. Each report names the deciding metric.

use crate::helpers::*;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use synthetic_e2e::shop::{self, RunningShop, ShopConfig};
use synthetic_e2e::stack::account_json;

struct Shops {
    baseline: RunningShop,
    canary: RunningShop,
    credentials: std::path::PathBuf,
}

impl Shops {
    async fn start() -> Shops {
        let baseline = shop::spawn(ShopConfig::default()).await.expect("baseline shop");
        let canary = shop::spawn(ShopConfig::default()).await.expect("canary shop");
        let dir = std::env::temp_dir().join(format!("synthetic-canary-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let credentials = dir.join("account.json");
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&credentials).unwrap();
        file.write_all(account_json(&ShopConfig::default().password).as_bytes()).unwrap();
        Shops { baseline, canary, credentials }
    }

    /// `synthetic canary --check products` with `runs` per side; returns the exit code and the
    /// JSON analysis.
    async fn analyse(&self, runs: u32) -> (i32, Value) {
        self.analyse_with(runs, &[]).await
    }

    /// [`Shops::analyse`] with a policy file of `policy` (TOML).
    async fn analyse_with_policy(&self, runs: u32, policy: &str) -> (i32, Value) {
        let path = self.credentials.with_file_name("policy.toml");
        std::fs::write(&path, policy).expect("policy file");
        self.analyse_with(runs, &["--policy", &path.display().to_string()]).await
    }

    async fn analyse_with(&self, runs: u32, extra: &[&str]) -> (i32, Value) {
        let credentials = self.credentials.display().to_string();
        let runs = runs.to_string();
        let mut args = vec![
            "canary",
            "--check",
            "products",
            "--baseline",
            self.baseline.base_url(),
            "--canary",
            self.canary.base_url(),
            "--runs",
            &runs,
            "--credentials-file",
            &credentials,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let exited = synthetic(&args, &[]).await;
        let analysis = serde_json::from_str(&exited.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", exited.stdout, exited.stderr));
        assert!(!exited.stderr.contains(&ShopConfig::default().password), "the password leaked");
        (exited.code, analysis)
    }

    async fn stop(self) {
        let _ = std::fs::remove_dir_all(self.credentials.parent().unwrap_or(&self.credentials));
        let _ = self.baseline.stop().await;
        let _ = self.canary.stop().await;
    }
}

/// Two shops on loopback answer in a few milliseconds, and a loaded test machine makes that jitter
/// by tens: over the tolerance without significance, `inconclusive`. Identical shops promote when
/// a difference under a second is noise.
const LOOPBACK_POLICY: &str = "latency_min_difference_ms = 1000\n";

#[tokio::test]
async fn identical_shops_promote() {
    let shops = Shops::start().await;
    let (code, analysis) = shops.analyse_with_policy(12, LOOPBACK_POLICY).await;
    assert_eq!((code, analysis["verdict"].as_str()), (0, Some("promote")), "{analysis:#}");
    assert_eq!(analysis["runs"], serde_json::json!([12, 12]));
    let both = shops.baseline.handle().state().traffic.synthetic + shops.canary.handle().state().traffic.synthetic;
    assert_eq!(both, 2 * 12 * 2, "login and products, on both sides, every run");
    shops.stop().await;
}

#[tokio::test]
async fn a_canary_failing_a_quarter_of_runs_rolls_back_on_the_failure_rate() {
    let shops = Shops::start().await;
    shops.canary.handle().set_fault("products", "flaky:4").expect("valid fault");
    let (code, analysis) = shops.analyse(20).await;
    assert_eq!((code, analysis["verdict"].as_str()), (1, Some("rollback")), "{analysis:#}");
    assert_eq!(analysis["decided_by"], serde_json::json!(["failure rate"]), "{analysis:#}");
    assert_eq!(analysis["metrics"][0]["canary"], "25.0% (5/20)");
    shops.stop().await;
}

#[tokio::test]
async fn a_canary_twice_as_slow_on_one_step_rolls_back_on_latency() {
    let shops = Shops::start().await;
    shops.baseline.handle().set_fault("products", "slow:40").expect("valid fault");
    shops.canary.handle().set_fault("products", "slow:80").expect("valid fault");
    // 30 runs: p95 is the second slowest, so one answer delayed by a loaded machine cannot hide
    // the canary's 40 ms (at 12 runs p95 is the slowest). A difference of tens of ms is what a
    // busy 2-core machine adds to an answer now and then, so the canary's is larger than that.
    let (code, analysis) = shops.analyse(30).await;
    assert_eq!((code, analysis["verdict"].as_str()), (1, Some("rollback")), "{analysis:#}");
    // Products decides; a loaded machine can make the login step a few ms slower on one side too.
    let decided_by = analysis["decided_by"].as_array().cloned().unwrap_or_default();
    assert!(decided_by.contains(&serde_json::json!("latency products p95")), "{analysis:#}");
    assert!(decided_by.iter().all(|m| m.as_str().is_some_and(|m| m.starts_with("latency "))), "{analysis:#}");
    shops.stop().await;
}

#[tokio::test]
async fn three_runs_are_inconclusive_whatever_they_show() {
    let shops = Shops::start().await;
    shops.canary.handle().set_fault("products", "500").expect("valid fault");
    let (code, analysis) = shops.analyse(3).await;
    assert_eq!((code, analysis["verdict"].as_str()), (2, Some("inconclusive")), "{analysis:#}");
    assert!(analysis["decided_by"][0].as_str().unwrap_or("").contains("fewer than min_runs = 10"), "{analysis:#}");
    shops.stop().await;
}

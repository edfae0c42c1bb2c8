//! Run counts from CloudWatch: the EMF `Success` metric the Lambdas emit once per run
//! (dimensions `check`, `env`), read with GetMetricData. Per period, `SampleCount` is the number
//! of runs and `Sum` the number that were available (passed or degraded).

use crate::slo::{HOUR, Sample};
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy};
use std::collections::BTreeMap;

pub const METRIC: &str = "Success";

pub struct MetricQuery<'a> {
    pub namespace: &'a str,
    pub check: &'a str,
    pub env: &'a str,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    pub period_secs: i32,
}

/// The period to ask for: the run interval rounded up to what CloudWatch still keeps that far
/// back (1 min for 15 days, 5 min for 63 days, 1 h beyond).
pub fn period_for(lookback_secs: u64, interval_secs: u64) -> i32 {
    let resolution = match lookback_secs {
        s if s <= 15 * 24 * HOUR => 60,
        s if s <= 63 * 24 * HOUR => 300,
        _ => HOUR,
    };
    let period = interval_secs.div_ceil(resolution).max(1) * resolution;
    i32::try_from(period).unwrap_or(i32::MAX)
}

/// One sample per period that had runs, timed at the middle of the period so it falls inside
/// the span it was measured in.
pub async fn samples(client: &Client, query: &MetricQuery<'_>) -> Result<Vec<Sample>, String> {
    let metric = Metric::builder()
        .namespace(query.namespace)
        .metric_name(METRIC)
        .dimensions(Dimension::builder().name("check").value(query.check).build())
        .dimensions(Dimension::builder().name("env").value(query.env).build())
        .build();
    let stat = |id: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(MetricStat::builder().metric(metric.clone()).period(query.period_secs).stat(stat).build())
            .build()
    };
    let mut results = Vec::new();
    let mut next_token = None;
    loop {
        let output = client
            .get_metric_data()
            .metric_data_queries(stat("runs", "SampleCount"))
            .metric_data_queries(stat("available", "Sum"))
            .start_time(DateTime::from_secs(query.start))
            .end_time(DateTime::from_secs(query.end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "CloudWatch GetMetricData for {} in {}: {}",
                    query.check,
                    query.namespace,
                    synthetic_checks::aws::describe(&e)
                )
            })?;
        results.extend_from_slice(output.metric_data_results());
        match output.next_token() {
            Some(token) => next_token = Some(token.to_string()),
            None => break,
        }
    }
    Ok(to_samples(&results, query.period_secs))
}

/// Pairs the `runs` (SampleCount) and `available` (Sum) series by period, across pages.
fn to_samples(results: &[MetricDataResult], period_secs: i32) -> Vec<Sample> {
    // Per period start: (runs, available).
    let mut periods: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for result in results {
        for (at, value) in result.timestamps().iter().zip(result.values()) {
            let entry = periods.entry(at.secs()).or_default();
            match result.id() {
                Some("runs") => entry.0 = *value,
                _ => entry.1 = *value,
            }
        }
    }
    let half = i64::from(period_secs / 2);
    periods
        .into_iter()
        .filter(|(_, (runs, _))| *runs >= 1.0)
        .map(|(at, (runs, available))| Sample {
            at: at + half,
            runs: runs.round() as u64,
            available: available.round().clamp(0.0, runs.round()) as u64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_the_interval_within_cloudwatch_retention() {
        let day = 24 * HOUR;
        assert_eq!(period_for(day, 300), 300);
        assert_eq!(period_for(day, 90), 120);
        assert_eq!(period_for(day, 1), 60);
        assert_eq!(period_for(30 * day, 60), 300);
        assert_eq!(period_for(30 * day, 600), 600);
        assert_eq!(period_for(90 * day, 300), 3600);
    }

    #[test]
    fn the_two_series_pair_up_by_period_across_pages() {
        let series = |id: &str, points: &[(i64, f64)]| {
            let mut result = MetricDataResult::builder().id(id);
            for (at, value) in points {
                result = result.timestamps(DateTime::from_secs(*at)).values(*value);
            }
            result.build()
        };
        let results = [
            series("runs", &[(0, 1.0), (300, 2.0)]),
            series("available", &[(0, 1.0), (300, 1.0)]),
            // A later page: a period with runs, and one CloudWatch reports without any.
            series("runs", &[(600, 1.0), (900, 0.0)]),
            series("available", &[(600, 0.0), (900, 0.0)]),
        ];
        assert_eq!(
            to_samples(&results, 300),
            [
                Sample { at: 150, runs: 1, available: 1 },
                Sample { at: 450, runs: 2, available: 1 },
                Sample { at: 750, runs: 1, available: 0 },
            ]
        );
    }
}

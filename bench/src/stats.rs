//! The arithmetic of the results: latency percentiles (an HDR histogram in microseconds) and
//! counts of timestamps in windows (for the rate-limit and saturation scenarios).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, from 1 µs to 10 minutes at three significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

/// Percentiles of a [`Latency`], in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    const HIGHEST_MICROS: u64 = 600_000_000;

    /// An empty histogram.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, Self::HIGHEST_MICROS, 3)
            .expect("constant bounds and 3 significant figures are valid");
        Latency { histogram }
    }

    /// Records one latency (clamped into the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    /// Records one latency given in microseconds (clamped into the histogram's range).
    pub fn record_micros(&mut self, micros: u64) {
        self.histogram
            .saturating_record(micros.clamp(1, Self::HIGHEST_MICROS));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail; a failure would only drop samples.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles, in milliseconds (all zero when empty).
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1000.0,
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p90_ms: ms(self.histogram.value_at_quantile(0.90)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: ms(self.histogram.value_at_quantile(0.999)),
            max_ms: ms(self.histogram.max()),
        }
    }
}

impl LatencySummary {
    /// `p50 / p99 / max` as one short text.
    pub fn short(&self) -> String {
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// The most timestamps (sorted, in microseconds) that fall in any half-open window
/// `[t, t + width)`. A busiest window always starts at a timestamp, so only those are tried.
pub fn busiest_window(sorted_micros: &[i64], width_micros: i64) -> usize {
    let mut best = 0;
    let mut end = 0;
    for (start, &from) in sorted_micros.iter().enumerate() {
        if end < start {
            end = start;
        }
        while end < sorted_micros.len() && sorted_micros[end] < from + width_micros {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// How many timestamps (sorted) fall in `[from, to)`.
pub fn count_between(sorted_micros: &[i64], from: i64, to: i64) -> usize {
    let first = sorted_micros.partition_point(|&t| t < from);
    let last = sorted_micros.partition_point(|&t| t < to);
    last - first
}

/// Timestamps (sorted) per consecutive one-second bucket of `[from, to)`; a last partial
/// second is left out so that every bucket is a whole second.
pub fn per_second(sorted_micros: &[i64], from: i64, to: i64) -> Vec<usize> {
    let seconds = (to - from) / 1_000_000;
    (0..seconds)
        .map(|second| {
            let start = from + second * 1_000_000;
            count_between(sorted_micros, start, start + 1_000_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut latency = Latency::new();
        for millis in 1..=100u64 {
            latency.record(Duration::from_millis(millis));
        }
        let summary = latency.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
        assert!((summary.mean_ms - 50.5).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn an_empty_histogram_summarises_to_zero() {
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }

    #[test]
    fn merging_adds_samples() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_micros(1_000);
        b.record_micros(3_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.summary().max_ms - 3.0).abs() < 0.01);
    }

    #[test]
    fn the_busiest_window_is_half_open() {
        // 0, 0.5 s and 0.999999 s are in one second; 1.0 s starts the next.
        let times = [0, 500_000, 999_999, 1_000_000, 1_000_001, 3_000_000];
        assert_eq!(busiest_window(&times, 1_000_000), 4); // 500_000..1_500_000
        assert_eq!(busiest_window(&times, 1), 1);
        assert_eq!(busiest_window(&[], 1_000_000), 0);
    }

    #[test]
    fn a_sliding_window_sees_more_than_calendar_seconds() {
        // Ten sends at the end of one second and ten at the start of the next: every calendar
        // second has 10, a sliding window 20.
        let mut times: Vec<i64> = (0..10).map(|i| 900_000 + i * 1_000).collect();
        times.extend((0..10).map(|i| 1_000_000 + i * 1_000));
        assert_eq!(per_second(&times, 0, 2_000_000), vec![10, 10]);
        assert_eq!(busiest_window(&times, 1_000_000), 20);
    }

    #[test]
    fn counts_between_bounds() {
        let times = [1, 2, 3, 10];
        assert_eq!(count_between(&times, 2, 10), 2);
        assert_eq!(count_between(&times, 0, 100), 4);
        assert_eq!(per_second(&times, 0, 1_500_000), vec![4]);
    }
}

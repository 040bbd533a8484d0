//! Latency summaries shared by the bench scenarios.

use hdrhistogram::Histogram;
use serde_json::json;

/// A new histogram of microseconds, 1 µs to 60 s at 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Auto-resizing, so a value past the initial bounds is still recorded;
    // construction only fails on invalid significant-digit counts (3 is valid).
    let mut h = Histogram::new(3).expect("3 significant digits is a valid precision");
    h.auto(true);
    h
}

/// Percentiles in µs as a JSON object.
pub(crate) fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    json!({
        "p50_us": h.value_at_quantile(0.50),
        "p90_us": h.value_at_quantile(0.90),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

/// One line of percentiles for people.
pub(crate) fn percentile_line(h: &Histogram<u64>) -> String {
    format!(
        "p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

//! Latency summaries shared by the bench scenarios.

use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde_json::json;

/// Samples a [`Recorder`] buffers before adding them to the shared histogram.
const BATCH: usize = 64;

/// A new histogram of microseconds, 1 µs to 60 s at 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Auto-resizing, so a value past the initial bounds is still recorded;
    // construction only fails on invalid significant-digit counts (3 is valid).
    let mut h = Histogram::new(3).expect("3 significant digits is a valid precision");
    h.auto(true);
    h
}

/// One histogram that many connections record into, each through its own
/// [`Recorder`]. A histogram per connection would be tens of KiB each at 3
/// significant digits: 100 connections' records then land all over a few
/// MiB, and nearly every one misses the cache (4 % of the load generator's
/// CPU in a closed-loop echo).
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl Latencies {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(histogram())))
    }

    /// A recorder for one connection.
    pub(crate) fn recorder(&self) -> Recorder {
        Recorder {
            shared: self.clone(),
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// The histogram, with every dropped recorder's samples in it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's way into [`Latencies`]: samples are buffered and added
/// [`BATCH`] at a time, and the rest when it is dropped.
#[derive(Debug)]
pub(crate) struct Recorder {
    shared: Latencies,
    batch: Vec<u32>,
}

impl Recorder {
    /// Records a latency in µs (at least 1).
    pub(crate) fn record(&mut self, us: u64) {
        self.batch
            .push(u32::try_from(us.max(1)).unwrap_or(u32::MAX));
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut h = self.shared.lock();
        for &us in &self.batch {
            // Auto-resizing: no value is out of range.
            let _ = h.record(u64::from(us));
        }
        self.batch.clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.flush();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorder_sample_reaches_the_shared_histogram() {
        let latencies = Latencies::new();
        let mut a = latencies.recorder();
        let mut b = latencies.recorder();
        // `a` fills one batch and starts another; `b` never fills one.
        for us in 1..=(BATCH as u64 + 10) {
            a.record(us);
        }
        b.record(0);
        b.record(5_000_000_000);
        assert_eq!(latencies.lock().len(), BATCH as u64, "one batch so far");
        drop((a, b));
        let h = latencies.lock();
        assert_eq!(h.len(), BATCH as u64 + 12);
        // 0 is recorded as 1 µs; past u32 it saturates.
        assert_eq!(h.min(), 1);
        assert_eq!(h.count_at(1), 2);
        assert!(h.max() >= u64::from(u32::MAX) - u64::from(u32::MAX) / 1000);
    }
}

//! Per-connection limits: a request rate (token bucket) and a room count.

use std::sync::Mutex;
use std::time::Instant;

/// A request rate: `per_second` sustained, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: 100.0,
            burst: 200.0,
        }
    }
}

/// A token bucket.
#[derive(Debug)]
pub(crate) struct Rate {
    config: RateConfig,
    /// Tokens left and when they were counted.
    state: Mutex<(f64, Option<Instant>)>,
}

impl Rate {
    pub(crate) fn new(config: RateConfig) -> Self {
        Self {
            config,
            state: Mutex::new((config.burst, None)),
        }
    }

    /// Takes one token; `false` when the client is over its rate.
    pub(crate) fn allow(&self) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = &mut *st;
        if let Some(then) = *at {
            let refill = now.duration_since(then).as_secs_f64() * self.config.per_second;
            *tokens = (*tokens + refill).min(self.config.burst);
        }
        *at = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let r = Rate::new(RateConfig {
            per_second: 0.0,
            burst: 3.0,
        });
        assert!(r.allow() && r.allow() && r.allow());
        assert!(!r.allow(), "the burst is spent and nothing refills");
    }
}

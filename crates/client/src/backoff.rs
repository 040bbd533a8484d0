//! Delays between reconnection attempts: exponential with full jitter
//! (AWS Architecture Blog, "Exponential Backoff And Jitter"): attempt `n`
//! waits a uniformly random time in `[0, min(max, initial × factor^n)]`, so
//! a crowd of clients that lost the same server spreads out instead of
//! coming back at once.

use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay. Default 0.5 s.
    pub initial: Duration,
    /// Largest ceiling. Default 20 s.
    pub max: Duration,
    /// Growth of the ceiling per attempt. Default 2.
    pub factor: f64,
    /// Attempts before giving up; `None`: never give up. Default `None`.
    pub max_attempts: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(20),
            factor: 2.0,
            max_attempts: None,
        }
    }
}

/// The state of one run of attempts; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    /// A fresh run.
    pub fn new(config: BackoffConfig) -> Self {
        Self { config, attempt: 0 }
    }

    /// Attempts made since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the delay before attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let c = &self.config;
        let grown = c.initial.as_secs_f64() * c.factor.max(1.0).powi(attempt.min(64) as i32);
        Duration::from_secs_f64(grown.min(c.max.as_secs_f64()).max(0.0))
    }

    /// The delay before the next attempt, `None` when the attempts are
    /// used up. `unit` is a uniform random number in `[0, 1)`.
    pub fn next_with(&mut self, unit: f64) -> Option<Duration> {
        if self
            .config
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let ceiling = self.ceiling(self.attempt);
        self.attempt += 1;
        Some(ceiling.mul_f64(unit.clamp(0.0, 1.0)))
    }

    /// The delay before the next attempt, with a random jitter.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.next_with(rand::random::<f64>())
    }

    /// A connection succeeded: the next failure starts from the first delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_by_the_factor_up_to_the_max() {
        let b = Backoff::new(BackoffConfig::default());
        let ms: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
        assert_eq!(b.ceiling(10_000), Duration::from_secs(20), "no overflow");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let mut b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.next_with(0.0), Some(Duration::ZERO));
        assert_eq!(b.next_with(0.5), Some(Duration::from_millis(500)));
        assert_eq!(b.next_with(0.999_999).map(|d| d.as_millis()), Some(1999));
        assert_eq!(b.attempt(), 3);
        b.reset();
        assert_eq!(b.next_with(1.0), Some(Duration::from_millis(500)));
        for _ in 0..100 {
            let d = b.next_delay().unwrap();
            assert!(d <= Duration::from_secs(20));
        }
    }

    #[test]
    fn capped_attempts_give_up() {
        let mut b = Backoff::new(BackoffConfig {
            max_attempts: Some(2),
            ..BackoffConfig::default()
        });
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert_eq!(b.next_delay(), None);
        b.reset();
        assert!(b.next_delay().is_some());
    }
}

//! The primary URL and its backups: the client stays on one URL while it
//! works, and moves to the next (wrapping around to the primary) after
//! `failures_per_url` failed attempts in a row on it.

/// A list of URLs and where the client is in it.
#[derive(Debug, Clone)]
pub struct Rotation {
    urls: Vec<String>,
    index: usize,
    failures: u32,
    failures_per_url: u32,
}

impl Rotation {
    /// `urls[0]` is the primary. `failures_per_url` is at least 1.
    ///
    /// # Panics
    /// With no URL.
    pub fn new(urls: Vec<String>, failures_per_url: u32) -> Self {
        assert!(!urls.is_empty(), "at least one URL");
        Self {
            urls,
            index: 0,
            failures: 0,
            failures_per_url: failures_per_url.max(1),
        }
    }

    /// The URL to try now.
    pub fn current(&self) -> &str {
        &self.urls[self.index]
    }

    /// An attempt on [`Rotation::current`] failed.
    pub fn failed(&mut self) {
        self.failures += 1;
        if self.failures >= self.failures_per_url {
            self.failures = 0;
            self.index = (self.index + 1) % self.urls.len();
        }
    }

    /// Moves on to the next URL at once (the server said it is going away).
    pub fn skip(&mut self) {
        self.failures = 0;
        self.index = (self.index + 1) % self.urls.len();
    }

    /// A connection on [`Rotation::current`] worked: its failures are
    /// forgotten (the client stays on it).
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Every URL.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_on_after_k_failures_and_wraps_around() {
        let mut r = Rotation::new(vec!["a".into(), "b".into(), "c".into()], 2);
        assert_eq!(r.current(), "a");
        r.failed();
        assert_eq!(r.current(), "a", "one failure is not enough");
        r.failed();
        assert_eq!(r.current(), "b");
        r.failed();
        r.succeeded();
        r.failed();
        assert_eq!(r.current(), "b", "a success resets the count");
        r.failed();
        assert_eq!(r.current(), "c");
        r.failed();
        r.failed();
        assert_eq!(r.current(), "a", "after the last backup, the primary");
        r.skip();
        assert_eq!(r.current(), "b");
    }

    #[test]
    fn a_single_url_stays() {
        let mut r = Rotation::new(vec!["only".into()], 1);
        r.failed();
        r.skip();
        assert_eq!(r.current(), "only");
    }
}

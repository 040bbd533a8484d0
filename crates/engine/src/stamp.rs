//! Instants in eight bytes.
//!
//! Every session keeps a few deadlines (the next ping, the pong's, an
//! upgrade probe's, the layer above's). A `std::time::Instant` is 16 bytes
//! on Linux, and an `Option<Instant>` as well; a [`Stamp`] is a count of
//! nanoseconds since a fixed point in the process's past, 8 bytes with or
//! without `Option`. With tens of thousands of idle sessions in memory,
//! that is the difference between two malloc size classes.

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An instant, to the nanosecond, in 8 bytes (`Option<Stamp>` too).
///
/// Instants from a day before the process first made one to 146 years
/// after it are kept exactly; earlier or later ones are clamped to that
/// span, which no deadline of a running server comes near.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Stamp(NonZeroU64);

/// The longest span a stamp holds: 2^62 ns, 146 years.
const SPAN: u64 = 1 << 62;

/// The fixed point stamps count from: the first use, less a day (so that an
/// instant taken just before that still comes back exactly), or the first
/// use itself where the clock cannot go back that far.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now)
    })
}

impl Stamp {
    /// The stamp of `at`.
    pub(crate) fn of(at: Instant) -> Self {
        let nanos = at.saturating_duration_since(origin()).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(SPAN).min(SPAN);
        Self(NonZeroU64::new(nanos).unwrap_or(NonZeroU64::MIN))
    }

    /// The instant this stamp holds.
    pub(crate) fn instant(self) -> Instant {
        origin() + Duration::from_nanos(self.0.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_comes_back_exactly() {
        let now = Instant::now();
        for at in [
            now,
            now + Duration::from_nanos(1),
            now + Duration::from_secs(25),
            now + Duration::from_secs(86_400 * 365 * 100),
            now.checked_sub(Duration::from_secs(3_600)).unwrap_or(now),
        ] {
            assert_eq!(Stamp::of(at).instant(), at);
        }
    }

    #[test]
    fn instants_beyond_the_span_are_clamped_to_it() {
        let far = Instant::now() + Duration::from_secs(86_400 * 365 * 200);
        let kept = Stamp::of(far).instant();
        assert!(kept < far);
        assert!(kept > Instant::now() + Duration::from_secs(86_400 * 365 * 145));
        assert_eq!(
            Stamp::of(origin()).instant(),
            origin() + Duration::from_nanos(1)
        );
    }

    #[test]
    fn stamps_order_as_their_instants() {
        let now = Instant::now();
        let later = now + Duration::from_millis(1);
        assert!(Stamp::of(now) < Stamp::of(later));
        assert_eq!(Stamp::of(now), Stamp::of(now));
    }

    #[test]
    fn an_optional_stamp_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
    }
}

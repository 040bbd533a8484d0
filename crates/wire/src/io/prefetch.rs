//! A cache hint for writers that walk many connections in turn (a room's
//! fan-out): each connection's lock and socket are touched once per message,
//! so they are cold; asking for the ones a few places ahead hides the wait.

/// Hints the CPU to bring the cache line holding `value`'s first byte into
/// the cache; a no-op where there is no such hint. It reads nothing the
/// program can see and cannot fault.
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch only hints the cache: it reads nothing, cannot
        // fault, and SSE, which it needs, is in every x86_64 target.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

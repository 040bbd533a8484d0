//! Gives freed heap memory back to the system, so that a server's resident
//! memory follows the connections it holds rather than the most it ever
//! held.
//!
//! glibc keeps freed memory in its heaps: pages left free between
//! long-lived allocations stay resident until `malloc_trim` hands them back.
//! Two moments leave many such pages:
//!
//! - a burst of handshakes: each uses transient buffers (hyper's read
//!   buffer, the TLS handshake) freed once the connection is upgraded, in
//!   between the long-lived connections allocated meanwhile; the heap is
//!   trimmed once accepting goes quiet for a second;
//! - a wave of disconnects, or the end of the time a dropped Socket.IO
//!   session is kept for recovery: the heap is trimmed when its free space
//!   has grown by [`FREED_WORTH_A_TRIM`] since the last trim (looked at
//!   every [`FREE_CHECK_TICKS`] seconds, as the count walks the allocator's
//!   free lists).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Newly freed heap bytes worth a trim: about 5,000 idle Socket.IO
/// connections' worth; a trim costs a walk over the free lists.
const FREED_WORTH_A_TRIM: usize = 4 << 20;

/// Seconds between looks at the heap's free space.
const FREE_CHECK_TICKS: u32 = 10;

/// Trims the heap after each burst of accepted connections (`accepted`
/// counts them) and after each wave of frees; runs until dropped.
pub(crate) async fn give_back_freed_memory(accepted: &AtomicU64) {
    let mut seen = accepted.load(Ordering::Relaxed);
    let mut busy = false;
    let mut ticks = 0u32;
    let mut free = FreeWatch::new(heap_free());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        ticks = ticks.wrapping_add(1);
        let now = accepted.load(Ordering::Relaxed);
        let trim = if now != seen {
            seen = now;
            busy = true;
            false
        } else if busy {
            busy = false;
            true
        } else if ticks.is_multiple_of(FREE_CHECK_TICKS) {
            let now_free = heap_free();
            tracing::trace!(free = now_free, floor = free.floor, "heap free space");
            free.worth_a_trim(now_free)
        } else {
            false
        };
        if trim {
            trim_heap();
            let left = heap_free();
            tracing::debug!(free = left, "heap trimmed");
            free.trimmed(left);
        }
    }
}

/// Whether the heap's free space grew enough since the last trim. Trimmed
/// pages still count as free space, so growth is measured from the least
/// free space seen since the last trim: memory reused and freed again
/// counts, and free space that stays free (pages already given back, or
/// holes smaller than a page) does not bring a trim every time.
#[derive(Debug, Clone, Copy)]
struct FreeWatch {
    floor: usize,
}

impl FreeWatch {
    fn new(free: usize) -> Self {
        Self { floor: free }
    }

    fn worth_a_trim(&mut self, free: usize) -> bool {
        self.floor = self.floor.min(free);
        free - self.floor >= FREED_WORTH_A_TRIM
    }

    fn trimmed(&mut self, free: usize) {
        self.floor = free;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free pages of glibc's heaps; it takes
    // the allocator's locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Free bytes in glibc's heaps, all arenas (`fordblks`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_free() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics under its
    // locks and is safe to call from any thread at any time.
    unsafe { libc::mallinfo2().fordblks }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_free() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_wave_of_frees_is_worth_a_trim_once() {
        let mut w = FreeWatch::new(MIB);
        assert!(!w.worth_a_trim(2 * MIB), "1 MiB freed");
        assert!(w.worth_a_trim(6 * MIB), "5 MiB freed");
        w.trimmed(6 * MIB);
        assert!(!w.worth_a_trim(6 * MIB), "trimmed pages stay free space");
        assert!(!w.worth_a_trim(9 * MIB));
        assert!(w.worth_a_trim(10 * MIB), "another 4 MiB");
    }

    #[test]
    fn memory_reused_then_freed_again_counts() {
        let mut w = FreeWatch::new(8 * MIB);
        assert!(!w.worth_a_trim(MIB), "new connections took the free space");
        assert!(!w.worth_a_trim(4 * MIB));
        assert!(w.worth_a_trim(5 * MIB), "4 MiB freed since the low point");
    }

    /// On glibc the count is real: blocks freed below live ones show as
    /// free space.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_heap_reports_freed_memory() {
        let blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![1u8; 1000]).collect();
        // Allocated after: the freed blocks do not merge into the heap's top.
        let above: Vec<Vec<u8>> = (0..64).map(|_| vec![2u8; 100]).collect();
        let before = heap_free();
        drop(std::hint::black_box(blocks));
        let after = heap_free();
        assert!(after >= before + 3 * MIB, "{before} → {after}");
        trim_heap();
        drop(std::hint::black_box(above));
    }
}

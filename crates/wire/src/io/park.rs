//! Parking the task of a quiet connection.
//!
//! A server that keeps each connection's socket in shared state (so that a
//! broadcast can write to an idle socket from its own thread) needs the
//! connection's task only while something happens on it. Once the
//! connection has been quiet for a while, its task can *park*: register a
//! [`Parked`] waker wherever it would have registered its own (the socket's
//! readiness, the wake-up its senders use) and end. The first event that
//! would have woken the task (a frame, the socket becoming writable, a
//! message queued, a ping due, a close) spawns a fresh one through
//! [`Resume::resume`], which carries on exactly where the old one stopped.
//!
//! The policy, in [`TaskState`]:
//! - a task woken after a quiet spell parks again as soon as it runs out of
//!   work, so a new connection's setup leaves no task behind and the cell it
//!   used is freed at once, where the next connection's allocations reuse
//!   it;
//! - after [`BURST`] wake-ups in quick succession a woken task keeps
//!   running, so a busy connection is not respawned per message, until the
//!   server's periodic sweep finds it quiet ([`TaskState::request_park`])
//!   and wakes it to park.
//!
//! An idle connection then costs its state, its socket and one small waker,
//! not a runtime task as well (256 bytes on x86-64, cache-line aligned, in
//! tokio). A connection whose state is itself reference-counted can skip the
//! waker too: it implements `Wake` and registers itself, and
//! [`TaskState::wake_own`] decides whether a wake-up spawns a task.
//!
//! Time is the sweep's tick count, a wrapping `u32` the server advances. A
//! connection keeps the low 16 bits of its last one (the whole state is 4
//! bytes): quiet spells are measured modulo 65,536 ticks (18 hours at the
//! default one-second tick), so a busy task quiet for exactly a multiple of
//! that is parked one sweep later.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, Ordering};
use std::task::{Wake, Waker};
use std::time::Duration;

/// No task drives the connection: none yet, or it parked.
const PARKED: u8 = 0;
/// A task drives the connection.
const RUNNING: u8 = 1;
/// The task parks when it next runs out of work.
const PARK: u8 = 2;
/// As [`PARK`], and the connection's own waker ([`TaskState::wake_own`])
/// fired since: the parking poll looks at the connection once more before
/// it ends.
const PARK_WOKEN: u8 = 3;

/// Wake-ups in a row, each within a sweep tick of the task's last run,
/// after which a woken task keeps running until the sweep parks it.
pub const BURST: u8 = 4;

/// A stable pseudo-random point in `0..span_ms` taken from `key` (a
/// connection's id): the phase at which a heartbeat pings it, so that
/// connections opened in a wave are not all pinged in the same sweep.
pub fn phase_ms(key: &str, span_ms: u64) -> u64 {
    use std::hash::BuildHasher as _;
    std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key)
        % span_ms.max(1)
}

/// Sweeps of period `tick` a connection stays quiet before its task parks,
/// for a wanted quiet time of `idle_after`: one more than `idle_after`
/// spans, as the first may have begun just before the connection's last
/// event.
pub fn park_ticks(idle_after: Duration, tick: Duration) -> u32 {
    let ticks = idle_after.as_nanos().div_ceil(tick.as_nanos().max(1)) + 1;
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// Whether a connection's task runs, and when it last did.
#[derive(Debug)]
pub struct TaskState {
    state: AtomicU8,
    /// Wake-ups of the parked task in a row, each close to the last run.
    burst: AtomicU8,
    /// The sweep's tick at the task's last poll (its low 16 bits).
    active: AtomicU16,
}

impl Default for TaskState {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskState {
    /// No task yet.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(PARKED),
            burst: AtomicU8::new(0),
            active: AtomicU16::new(0),
        }
    }

    /// A task is (about to be) driving the connection.
    pub fn running(&self) {
        self.state.store(RUNNING, Ordering::Release);
    }

    /// Called at the start of each poll of the task at sweep tick `tick`;
    /// returns whether this poll parks (registers a [`Parked`] waker and
    /// ends the task once it runs out of work). `park_when_idle`: the task
    /// was started by a [`Parked`] waker that did not ask it to keep
    /// running.
    pub fn begin_poll(&self, park_when_idle: bool, tick: u32) -> bool {
        self.active.store(tick as u16, Ordering::Relaxed);
        if park_when_idle {
            self.state.store(PARK, Ordering::Release);
            return true;
        }
        matches!(self.state.load(Ordering::Acquire), PARK | PARK_WOKEN)
    }

    /// [`Self::begin_poll`], and the waker this poll registers instead of
    /// the task's own when it parks: a fresh [`Parked`] one for `conn()`.
    pub fn parked_waker<R: Resume>(
        &self,
        park_when_idle: bool,
        tick: u32,
        conn: impl FnOnce() -> R,
    ) -> Option<ParkedWaker<R>> {
        self.begin_poll(park_when_idle, tick)
            .then(|| ParkedWaker::new(conn()))
    }

    /// Asks a task quiet since `after` ticks before `tick` to park; true if
    /// it was asked (the caller then wakes it).
    pub fn request_park(&self, tick: u32, after: u32) -> bool {
        u32::from(self.quiet(tick)) >= after.min(u32::from(u16::MAX))
            && self
                .state
                .compare_exchange(RUNNING, PARK, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// The parking poll ran out of work; returns whether the task ends. A
    /// [`Parked`] waker that fired first already counts as a running task
    /// again, and stays so (this task ends all the same). If the
    /// connection's own waker fired during the poll
    /// ([`TaskState::wake_own`]), the task does not end: the poll must look
    /// at the connection again (registering anew), then call this again.
    pub fn parked(&self) -> bool {
        match self
            .state
            .compare_exchange(PARK, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Err(PARK_WOKEN) => {
                // Only the parking poll leaves this state.
                self.state.store(PARK, Ordering::Release);
                false
            }
            _ => true,
        }
    }

    /// The connection itself is the waker its parking polls register (no
    /// [`Parked`] waker is made per poll), and it fired at sweep tick
    /// `tick`. Returns `Some(keep_running)` when the caller must spawn the
    /// connection's task again: no task drives it. A poll that is parking
    /// is told to look again instead ([`TaskState::parked`] returns false),
    /// and a running task has registered wakers of its own: both return
    /// `None`. A stale registration firing later costs at most one spawn
    /// that finds nothing to do and parks again.
    ///
    /// The caller must hold the connection's lock across each parking poll,
    /// so that a task it spawns here runs only after that poll.
    pub fn wake_own(&self, tick: u32) -> Option<bool> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                PARKED => RUNNING,
                PARK => PARK_WOKEN,
                _ => return None,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next == RUNNING => return Some(self.burst(tick)),
                Ok(_) => return None,
                Err(now) => state = now,
            }
        }
    }

    /// Whether no task drives the connection now.
    pub fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) == PARKED
    }

    /// Ticks since the task's last poll, modulo 65,536.
    fn quiet(&self, tick: u32) -> u16 {
        (tick as u16).wrapping_sub(self.active.load(Ordering::Relaxed))
    }

    /// The parked task is woken at sweep tick `tick`; returns whether the
    /// new task should keep running when it runs out of work.
    fn resumed(&self, tick: u32) -> bool {
        self.running();
        self.burst(tick)
    }

    /// Counts a resumption at `tick` towards a burst; returns whether the
    /// new task should keep running.
    fn burst(&self, tick: u32) -> bool {
        // Only the one wake-up that resumes the task calls this: plain
        // loads and stores.
        let recent = self.quiet(tick) <= 1;
        let burst = if recent {
            self.burst.load(Ordering::Relaxed).saturating_add(1)
        } else {
            1
        };
        self.burst.store(burst, Ordering::Relaxed);
        burst > BURST
    }
}

/// What a [`Parked`] waker needs from the connection.
pub trait Resume: Send + Sync + 'static {
    /// The connection's task state.
    fn task(&self) -> &TaskState;

    /// The sweep's tick now.
    fn tick(&self) -> u32;

    /// Spawns the connection's task again. `keep_running`: the connection
    /// is busy, the new task should not park when it runs out of work.
    fn resume(&self, keep_running: bool);
}

/// The waker a parked connection leaves behind: its first wake-up spawns
/// the connection's task again; later ones (it may be registered in several
/// places) do nothing.
pub struct Parked<R: Resume> {
    conn: R,
    fired: AtomicBool,
}

impl<R: Resume> std::fmt::Debug for Parked<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("fired", &self.fired.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<R: Resume> Parked<R> {
    /// A waker that resumes `conn`.
    pub fn waker(conn: R) -> Waker {
        ParkedWaker::new(conn).waker
    }
}

/// A parking poll's [`Parked`] waker, with a way to tell whether it fired.
///
/// Once it has, a new task drives the connection, and the poll that
/// registered it must stop: a later registration of its waker, which wakes
/// nothing any more, would replace the new task's and leave the connection
/// with nothing to resume it. A poll that lets go of the connection's lock
/// between its turns (so that the new task's turns can come in between)
/// checks [`ParkedWaker::fired`] under that lock at each turn.
pub struct ParkedWaker<R: Resume> {
    parked: Arc<Parked<R>>,
    waker: Waker,
}

impl<R: Resume> std::fmt::Debug for ParkedWaker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parked.fmt(f)
    }
}

impl<R: Resume> ParkedWaker<R> {
    fn new(conn: R) -> Self {
        let parked = Arc::new(Parked {
            conn,
            fired: AtomicBool::new(false),
        });
        Self {
            waker: Waker::from(parked.clone()),
            parked,
        }
    }

    /// The waker to register.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Whether it fired: the connection has a new task, this poll hands
    /// over to it.
    pub fn fired(&self) -> bool {
        self.parked.fired.load(Ordering::Acquire)
    }
}

impl<R: Resume> Wake for Parked<R> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.fired.swap(true, Ordering::AcqRel) {
            return;
        }
        let keep_running = self.conn.task().resumed(self.conn.tick());
        self.conn.resume(keep_running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::atomic::AtomicUsize;

    struct Conn {
        task: TaskState,
        tick: AtomicU32,
        resumes: AtomicUsize,
        kept: AtomicUsize,
    }

    impl Resume for Arc<Conn> {
        fn task(&self) -> &TaskState {
            &self.task
        }
        fn tick(&self) -> u32 {
            self.tick.load(Ordering::Relaxed)
        }
        fn resume(&self, keep_running: bool) {
            self.resumes.fetch_add(1, Ordering::Relaxed);
            if keep_running {
                self.kept.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn conn() -> Arc<Conn> {
        Arc::new(Conn {
            task: TaskState::new(),
            tick: AtomicU32::new(10),
            resumes: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
        })
    }

    #[test]
    fn park_ticks_cover_the_quiet_time_whatever_the_phase() {
        let s = Duration::from_secs(1);
        assert_eq!(park_ticks(2 * s, s), 3);
        assert_eq!(park_ticks(Duration::from_millis(20), s / 2), 2);
        assert_eq!(park_ticks(Duration::ZERO, s), 1);
        assert_eq!(park_ticks(Duration::MAX, Duration::ZERO), u32::MAX);
    }

    #[test]
    fn a_waker_resumes_once_however_often_it_fires() {
        let c = conn();
        let w = Parked::waker(c.clone());
        let again = w.clone();
        w.wake_by_ref();
        w.wake();
        again.wake();
        assert_eq!(c.resumes.load(Ordering::Relaxed), 1);
        assert!(!c.task.is_parked());
    }

    #[test]
    fn quiet_spells_are_measured_across_the_16_bit_wrap() {
        let t = TaskState::new();
        t.running();
        assert!(!t.begin_poll(false, 65_535));
        assert!(
            !t.request_park(65_536, 2),
            "quiet one tick, across the wrap"
        );
        assert!(
            t.request_park(65_537, 2),
            "quiet two ticks, across the wrap"
        );
        assert_eq!(std::mem::size_of::<TaskState>(), 4);
        let t = TaskState::new();
        t.running();
        assert!(!t.begin_poll(false, 7));
        assert!(
            !t.request_park(8, u32::MAX),
            "a longer wait than 16 bits can tell"
        );
        assert!(
            t.request_park(7 + 65_535, u32::MAX),
            "is the longest it can tell"
        );
    }

    #[test]
    fn the_sweep_parks_only_a_running_task_quiet_for_long_enough() {
        let t = TaskState::new();
        assert!(!t.request_park(100, 2), "no task");
        t.running();
        assert!(!t.begin_poll(false, 10));
        assert!(!t.request_park(11, 2), "quiet one tick");
        assert!(t.request_park(12, 2));
        assert!(!t.request_park(13, 2), "asked once");
        assert!(t.begin_poll(false, 12), "the next poll parks");
        t.parked();
        assert!(t.is_parked());
    }

    #[test]
    fn a_parking_poll_sees_its_waker_fire() {
        let c = conn();
        c.task.running();
        let p = c.task.parked_waker(true, 10, || c.clone()).unwrap();
        assert!(!p.fired());
        let registered = p.waker().clone();
        registered.wake();
        assert!(p.fired(), "the poll hands over to the new task");
        assert_eq!(c.resumes.load(Ordering::Relaxed), 1);
        assert!(c.task.parked_waker(false, 10, || c.clone()).is_none());
    }

    #[test]
    fn a_wake_during_parking_leaves_the_task_running() {
        let c = conn();
        c.task.running();
        assert!(c.task.begin_poll(true, 10));
        Parked::waker(c.clone()).wake();
        c.task.parked();
        assert!(!c.task.is_parked(), "the new task runs");
    }

    #[test]
    fn quick_wake_ups_in_a_row_keep_the_task_running() {
        let c = conn();
        for n in 1..=u32::from(BURST) + 2 {
            c.task.begin_poll(true, 10);
            c.task.parked();
            Parked::waker(c.clone()).wake();
            let kept = c.kept.load(Ordering::Relaxed);
            assert_eq!(kept > 0, n > u32::from(BURST), "wake-up {n}");
        }
        // After a quiet spell the count starts again.
        c.task.begin_poll(false, 10);
        c.tick.store(20, Ordering::Relaxed);
        let before = c.kept.load(Ordering::Relaxed);
        Parked::waker(c.clone()).wake();
        assert_eq!(c.kept.load(Ordering::Relaxed), before);
    }

    #[test]
    fn an_own_waker_resumes_a_parked_task_once() {
        let t = TaskState::new();
        assert!(t.begin_poll(true, 10));
        assert!(t.parked());
        assert!(t.is_parked());
        assert_eq!(t.wake_own(10), Some(false), "spawn the task again");
        assert!(!t.is_parked());
        assert_eq!(t.wake_own(10), None, "a task runs: nothing more to spawn");
    }

    #[test]
    fn an_own_waker_firing_during_parking_makes_the_poll_look_again() {
        let t = TaskState::new();
        assert!(t.begin_poll(true, 10));
        assert_eq!(t.wake_own(10), None, "no second task while one polls");
        assert_eq!(t.wake_own(10), None);
        assert!(!t.parked(), "the poll looks again");
        assert!(!t.is_parked());
        assert!(t.parked(), "nothing new: it ends");
        assert!(t.is_parked());
    }

    #[test]
    fn an_own_waker_leaves_a_running_task_alone() {
        let t = TaskState::new();
        t.running();
        assert!(!t.begin_poll(false, 10));
        assert_eq!(t.wake_own(10), None);
        // Asked to park by the sweep, then a stale registration fires: the
        // task still parks at its next poll, and spawns nothing.
        assert!(t.request_park(20, 5));
        assert_eq!(t.wake_own(20), None);
        assert!(t.begin_poll(false, 20));
        assert!(!t.parked());
        assert!(t.parked());
        assert!(t.is_parked());
    }

    #[test]
    fn own_wake_ups_in_a_row_keep_the_task_running() {
        let t = TaskState::new();
        for n in 1..=u32::from(BURST) + 2 {
            t.begin_poll(true, 10);
            t.parked();
            let keep = t.wake_own(10).expect("parked");
            assert_eq!(keep, n > u32::from(BURST), "wake-up {n}");
        }
    }
}

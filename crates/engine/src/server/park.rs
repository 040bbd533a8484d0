//! Idle WebSocket sessions park their task.
//!
//! A WebSocket session's task is only needed while something happens on it:
//! the socket itself lives in the session ([`EngineSocket::ws`]), and a
//! sender writes to an idle socket from its own thread. So once a session
//! has been quiet for [`EngineConfig::park_ticks`] sweeps, the sweep asks its
//! task to park: the task registers a [`Parked`] waker wherever it would have
//! registered its own (the socket's readiness, [`EngineSocket::ws_waker`])
//! and ends. The first event that would have woken the task (a frame, the
//! socket becoming writable, a packet queued, a ping, a close) spawns a fresh
//! one, which carries on exactly where the old one stopped.
//!
//! A task woken after a quiet spell parks again as soon as it runs out of
//! work; only after [`BURST`] wake-ups in quick succession does it keep
//! running until the sweep finds it quiet. So a new connection's setup (the
//! `open` packet, the layer above's handshake) leaves no task behind, and
//! the cell it used is freed at once, where the next connection's
//! allocations reuse it; a busy connection is not respawned per message.
//!
//! An idle connection then costs its session, its socket and one small waker,
//! not a runtime task as well (256 bytes on x86-64, cache-line aligned).
//!
//! [`EngineConfig::park_ticks`]: super::EngineConfig
//! [`EngineSocket::ws`]: super::EngineSocket
//! [`EngineSocket::ws_waker`]: super::EngineSocket

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::task::Wake;

use super::socket::EngineSocket;
use super::{Handler, Shared, websocket};

/// No task drives the session's WebSocket: none yet, or it parked.
const PARKED: u8 = 0;
/// A task drives the WebSocket.
const RUNNING: u8 = 1;
/// The sweep asked the task to park when it next runs out of work.
const PARK: u8 = 2;

/// Wake-ups in a row, each within a sweep tick of the task's last run,
/// after which a woken task keeps running until the sweep parks it; before,
/// it parks as soon as it runs out of work.
const BURST: u8 = 4;

/// Whether a session's WebSocket task runs, and when it last did.
#[derive(Debug)]
pub(crate) struct TaskState {
    state: AtomicU8,
    /// Wake-ups of the parked task in a row, each close to the last run.
    burst: AtomicU8,
    /// The sweep's tick at the task's last poll.
    active: AtomicU32,
}

impl TaskState {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(PARKED),
            burst: AtomicU8::new(0),
            active: AtomicU32::new(0),
        }
    }

    /// A task is (about to be) driving the WebSocket.
    pub(super) fn running(&self) {
        self.state.store(RUNNING, Ordering::Release);
    }

    /// The parked task is woken at sweep tick `tick`; returns whether the
    /// new task should keep running when it runs out of work (the session
    /// is busy: the last few wake-ups came in quick succession).
    fn resumed(&self, tick: u32) -> bool {
        self.running();
        // Only the one waker that fires calls this: plain loads and stores.
        let recent = tick.wrapping_sub(self.active.load(Ordering::Relaxed)) <= 1;
        let burst = if recent {
            self.burst.load(Ordering::Relaxed).saturating_add(1)
        } else {
            1
        };
        self.burst.store(burst, Ordering::Relaxed);
        burst > BURST
    }

    /// The task will park when it runs out of work (its own decision).
    pub(super) fn park_soon(&self) {
        self.state.store(PARK, Ordering::Release);
    }

    /// The task ran at sweep tick `tick`.
    pub(super) fn touch(&self, tick: u32) {
        self.active.store(tick, Ordering::Relaxed);
    }

    /// Asks a task quiet since `after` ticks before `tick` to park; true if
    /// it was asked (the caller then wakes it).
    pub(super) fn request_park(&self, tick: u32, after: u32) -> bool {
        tick.wrapping_sub(self.active.load(Ordering::Relaxed)) >= after
            && self
                .state
                .compare_exchange(RUNNING, PARK, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether the task should park when it next runs out of work.
    pub(super) fn park_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) == PARK
    }

    /// The parking task ends. A wake-up that came first already counts as a
    /// running task again, and stays so.
    pub(super) fn parked(&self) {
        let _ = self
            .state
            .compare_exchange(PARK, PARKED, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Whether no task drives the WebSocket now.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) == PARKED
    }
}

/// The waker a parked session leaves behind: its first wake-up spawns the
/// session's task again; later ones (it may be registered in several places)
/// do nothing.
pub(super) struct Parked<H: Handler> {
    shared: Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    fired: AtomicBool,
}

impl<H: Handler> Parked<H> {
    pub(super) fn new(shared: Arc<Shared<H>>, socket: Arc<EngineSocket<H::Data>>) -> Self {
        Self {
            shared,
            socket,
            fired: AtomicBool::new(false),
        }
    }
}

impl<H: Handler> Wake for Parked<H> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.fired.swap(true, Ordering::AcqRel) {
            return;
        }
        let tick = self.shared.tick.load(Ordering::Relaxed);
        let keep_running = self.socket.task.resumed(tick);
        websocket::resume(self.shared.clone(), self.socket.clone(), keep_running);
    }
}

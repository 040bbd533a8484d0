//! One native-protocol connection: its queue, its rooms, its liveness.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::task::AtomicWaker;
use switchboard_wire::Message;
use switchboard_wire::io::park::TaskState;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};

/// The connection's socket and protocol state.
pub(crate) type Socket = WebSocket<MaybeTlsStream>;

/// Why the server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Silent for ping interval + timeout: dropped at once.
    Dead,
    /// Did not read what it was sent (more than 4× the send queue): closed
    /// with 4008 (it reconnects and rejoins with `since`).
    Overflow,
    /// Kicked through the admin API, with the close code to send.
    Kicked(u16),
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) outbox: VecDeque<Message>,
    queued: usize,
    /// Rooms joined, with whether presence events were asked for.
    pub(crate) rooms: Vec<(Arc<str>, bool)>,
    pub(crate) ending: Option<Ending>,
    pub(crate) ping_due: bool,
    /// File downloads in progress.
    pub(crate) downloads: Vec<super::files::Leg>,
}

/// A connection as the rest of the server sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: Arc<str>,
    pub(crate) user: Arc<str>,
    pub(crate) anonymous: bool,
    /// The token's expiry, if it has one.
    pub(crate) expiry: Option<Box<crate::expiry::Expiry>>,
    /// Rooms the token grants.
    pub(crate) grants: Option<Box<crate::rooms::Grants>>,
    /// Bytes queued before volatile messages are dropped.
    send_queue: usize,
    /// Requests allowed per second (token bucket).
    pub(crate) rate: crate::limits::Rate,
    state: Mutex<State>,
    /// The socket: driven by the connection's task, and written straight to
    /// by a publish that finds it idle (see `driver::write_now`). Taken by
    /// the task when the connection ends. Locked before `state`, never after.
    pub(crate) socket: Mutex<Option<Socket>>,
    /// Wakes the connection's task (or, while it is parked, starts it again).
    pub(crate) waker: AtomicWaker,
    /// Whether the task runs or is parked ([`switchboard_wire::io::park`]).
    pub(crate) task: TaskState,
    /// Milliseconds (server clock) of the last bytes from the client.
    pub(crate) last_seen: AtomicU64,
    /// Milliseconds of the last ping sent.
    pub(crate) last_ping: AtomicU64,
}

impl Conn {
    pub(crate) fn new(
        id: Arc<str>,
        identity: &crate::auth::Identity,
        now_ms: u64,
        limits: crate::context::ClientLimits,
    ) -> Self {
        Self {
            rate: crate::limits::Rate::new(limits.rate),
            id,
            user: Arc::from(identity.user.as_str()),
            anonymous: identity.anonymous,
            expiry: identity
                .expires
                .map(|e| Box::new(crate::expiry::Expiry::new(Some(e)))),
            grants: identity.grants.clone(),
            send_queue: limits.send_queue,
            state: Mutex::default(),
            socket: Mutex::new(None),
            waker: AtomicWaker::new(),
            task: TaskState::new(),
            last_seen: AtomicU64::new(now_ms),
            last_ping: AtomicU64::new(now_ms),
        }
    }

    /// Hints the CPU to load the lines a delivery touches first (the queue's
    /// lock and the socket's).
    pub(crate) fn prefetch(&self) {
        switchboard_wire::io::prefetch(&self.state);
        switchboard_wire::io::prefetch(&self.socket);
    }

    /// The same for the heartbeat sweep (the task's word and the clocks).
    pub(crate) fn prefetch_for_sweep(&self) {
        switchboard_wire::io::prefetch(&self.task);
        switchboard_wire::io::prefetch(&self.last_seen);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame and wakes the connection's task; a client with more
    /// than 4× its send queue waiting is ended ([`Ending::Overflow`]).
    pub(crate) fn push(&self, m: Message) {
        if self.enqueue(m) {
            self.waker.wake();
        }
    }

    /// Queues a frame without waking the task (the caller writes it or
    /// wakes); returns whether it was queued.
    pub(crate) fn enqueue(&self, m: Message) -> bool {
        let mut st = self.lock();
        if st.ending.is_some() {
            return false;
        }
        st.queued += m.len();
        st.outbox.push_back(m);
        if st.queued > self.send_queue.saturating_mul(4) {
            st.outbox.clear();
            st.queued = 0;
            st.ending = Some(Ending::Overflow);
        }
        true
    }

    /// Queues a frame that may be lost (see [`Conn::enqueue`]): dropped
    /// (returns `false`) when the client already has its send queue's worth
    /// waiting.
    pub(crate) fn enqueue_volatile(&self, m: Message) -> bool {
        if self.lock().queued > self.send_queue {
            return false;
        }
        self.enqueue(m);
        true
    }

    /// [`Conn::enqueue_volatile`], then wakes the task.
    pub(crate) fn push_volatile(&self, m: Message) -> bool {
        let queued = self.enqueue_volatile(m);
        if queued {
            self.waker.wake();
        }
        queued
    }

    /// Takes queued frames, at most about `budget` bytes.
    pub(crate) fn drain(&self, mut budget: usize, mut f: impl FnMut(Message)) {
        // Callers count what was sent.
        let mut st = self.lock();
        while budget > 0
            && let Some(m) = st.outbox.pop_front()
        {
            st.queued = st.queued.saturating_sub(m.len());
            budget = budget.saturating_sub(m.len().max(1));
            f(m);
        }
        if st.outbox.is_empty() && st.outbox.capacity() > 4 {
            st.outbox = VecDeque::new();
        }
    }

    /// Ends the connection.
    pub(crate) fn end(&self, ending: Ending) {
        self.lock().ending.get_or_insert(ending);
        self.waker.wake();
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }
}

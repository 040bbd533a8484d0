//! One native-protocol connection: its queue, its rooms, its liveness.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::task::AtomicWaker;
use switchboard_wire::Message;

/// Most bytes queued for a client that does not read; beyond, it is
/// disconnected (it reconnects and rejoins with `since`).
pub(crate) const MAX_QUEUED: usize = 8 << 20;

/// Why the server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Silent for ping interval + timeout: dropped at once.
    Dead,
    /// Did not read what it was sent.
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
}

/// A connection as the rest of the server sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: Arc<str>,
    pub(crate) user: Arc<str>,
    pub(crate) anonymous: bool,
    /// The token's expiry, if it has one.
    pub(crate) expiry: Option<Box<crate::auth::Expiry>>,
    /// Requests allowed per second (token bucket).
    pub(crate) rate: crate::limits::Rate,
    state: Mutex<State>,
    pub(crate) waker: AtomicWaker,
    /// Milliseconds (server clock) of the last bytes from the client.
    pub(crate) last_seen: AtomicU64,
    /// Milliseconds of the last ping sent.
    pub(crate) last_ping: AtomicU64,
}

impl Conn {
    pub(crate) fn new(
        id: Arc<str>,
        user: Arc<str>,
        anonymous: bool,
        expires: Option<u64>,
        now_ms: u64,
        rate: crate::limits::RateConfig,
    ) -> Self {
        Self {
            rate: crate::limits::Rate::new(rate),
            id,
            user,
            anonymous,
            expiry: expires.map(|e| Box::new(crate::auth::Expiry::new(Some(e)))),
            state: Mutex::default(),
            waker: AtomicWaker::new(),
            last_seen: AtomicU64::new(now_ms),
            last_ping: AtomicU64::new(now_ms),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame and wakes the connection's task; a client over
    /// [`MAX_QUEUED`] is ended.
    pub(crate) fn push(&self, m: Message) {
        {
            let mut st = self.lock();
            if st.ending.is_some() {
                return;
            }
            st.queued += m.len();
            st.outbox.push_back(m);
            if st.queued > MAX_QUEUED {
                st.outbox.clear();
                st.queued = 0;
                st.ending = Some(Ending::Overflow);
            }
        }
        self.waker.wake();
    }

    /// Takes queued frames, at most about `budget` bytes.
    pub(crate) fn drain(&self, mut budget: usize, mut f: impl FnMut(Message)) {
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

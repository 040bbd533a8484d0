//! One live session as seen by the drivers and the layer above.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::task::AtomicWaker;
use switchboard_wire::Message;
use tokio::sync::Notify;

use crate::packet::Packet;
use crate::session::{CloseReason, Session, Transport};

/// A session: the sans-IO [`Session`] behind a lock, a wake-up for whichever
/// transport drains it, and the upper layer's per-connection data `D`.
///
/// Sending only queues and wakes: the WebSocket task or the waiting GET
/// writes. Every method is cheap and never blocks on I/O.
#[derive(Debug)]
pub struct EngineSocket<D> {
    sid: Arc<str>,
    state: Mutex<State>,
    /// Wakes GETs waiting for output.
    pub(crate) notify: Notify,
    /// Wakes the WebSocket task.
    pub(crate) ws_waker: AtomicWaker,
    data: D,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) session: Session,
    /// A GET is waiting for output.
    pub(crate) get_waiting: bool,
    /// A POST is being read.
    pub(crate) post_active: bool,
    /// A WebSocket is bound to the session (opened on it, or upgrading).
    pub(crate) ws_bound: bool,
    /// `on_close` was called.
    pub(crate) reported: bool,
    /// Before the session ends: the layer above's deadline (e.g. Socket.IO's
    /// connect timeout). After a server close on polling: until when its
    /// last packets are kept for the client's next GET.
    pub(crate) timer: Option<Instant>,
}

impl<D> EngineSocket<D> {
    pub(crate) fn new(sid: Arc<str>, session: Session, ws_bound: bool, data: D) -> Self {
        Self {
            sid,
            state: Mutex::new(State {
                session,
                get_waiting: false,
                post_active: false,
                ws_bound,
                reported: false,
                timer: None,
            }),
            notify: Notify::new(),
            ws_waker: AtomicWaker::new(),
            data,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent state (every
        // mutation is a single call into `Session`), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes whichever transport drains the session.
    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
        self.ws_waker.wake();
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.sid
    }

    /// The layer above's data.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// Queues a packet.
    pub fn send(&self, packet: &Packet) {
        self.lock().session.send(packet);
        self.wake();
    }

    /// Queues encoded frames (see [`Session::send_encoded`]) in one go.
    pub fn send_encoded(&self, frames: impl IntoIterator<Item = Message>) {
        {
            let mut st = self.lock();
            for f in frames {
                st.session.send_encoded(f);
            }
        }
        self.wake();
    }

    /// Shows every packet of the session from now on to `tap` (`None`:
    /// stop); see [`crate::Tap`]. Its `ended` is called when the session
    /// ends.
    pub fn set_tap(&self, tap: Option<Arc<dyn crate::Tap>>) {
        self.lock().session.set_tap(tap);
    }

    /// Packets queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.lock().session.backlog()
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.lock().session.transport()
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.lock().session.closed()
    }

    /// Closes the session: queued packets are still delivered, then `close`.
    pub fn close(&self) {
        self.lock().session.close();
        self.wake();
    }

    /// Ends the session at once for `reason`; nothing more is delivered.
    pub fn abort(&self, reason: CloseReason) {
        self.lock().session.end(reason);
        self.wake();
    }

    /// Sets (or clears) the upper layer's deadline; the engine calls
    /// [`Handler::on_deadline`](super::Handler::on_deadline) once it passes.
    pub fn set_deadline(&self, at: Option<Instant>) {
        let mut st = self.lock();
        if st.session.closed().is_none() {
            st.timer = at;
        }
    }
}

//! One live session as seen by the drivers and the layer above.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Wake;
use std::time::Instant;

use futures_util::task::AtomicWaker;
use switchboard_wire::Message;
use switchboard_wire::io::park::TaskState;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use tokio::sync::Notify;

use super::Sid;
use crate::packet::Packet;
use crate::session::{CloseReason, Session, Transport};
use crate::stamp::Stamp;

/// A session: the sans-IO [`Session`] behind a lock, a wake-up for whichever
/// transport drains it, and the upper layer's per-connection data `D`.
///
/// Sending queues, then either writes straight to an idle WebSocket or
/// wakes whoever drains the session (the WebSocket task or a waiting GET).
/// Every method is cheap and never blocks on I/O.
#[derive(Debug)]
pub struct EngineSocket<D> {
    sid: Sid,
    state: Mutex<State>,
    /// The session's WebSocket once its task runs. The task holds this lock
    /// while it drives the socket; a sender that finds it free (and the
    /// socket idle) writes straight to it instead of waking the task.
    pub(crate) ws: Mutex<Option<WebSocket<MaybeTlsStream>>>,
    /// Wakes GETs waiting for output: only a session opened by polling has
    /// one (one opened over WebSocket never serves a GET), boxed so that the
    /// others hold 8 bytes instead of 32.
    pub(crate) notify: Option<Box<Notify>>,
    /// Wakes the WebSocket task (or, while it is parked, starts it again).
    pub(crate) ws_waker: AtomicWaker,
    /// Whether the WebSocket task runs or is parked
    /// ([`switchboard_wire::io::park`]).
    pub(crate) task: TaskState,
    /// Starts the parked WebSocket task again: the session is the waker its
    /// parking task leaves behind (see the [`Wake`] impl).
    restart: Arc<Restart<D>>,
    data: D,
}

/// How a parked session's WebSocket task starts again: the engine's, one
/// for all its sessions (a session holds a thin pointer to it).
pub(crate) struct Restart<D>(Box<RestartFn<D>>);

type RestartFn<D> = dyn Fn(&Arc<EngineSocket<D>>) + Send + Sync;

impl<D> Restart<D> {
    /// `f(session)` is called when a session's own waker fires; it spawns
    /// the task if [`TaskState::wake_own`] says so.
    pub(crate) fn new(f: impl Fn(&Arc<EngineSocket<D>>) + Send + Sync + 'static) -> Self {
        Self(Box::new(f))
    }
}

impl<D> std::fmt::Debug for Restart<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Restart")
    }
}

/// A session is the waker its parking WebSocket task registers (with the
/// socket's readiness and in its wake-up for senders): a parked session
/// costs no waker of its own. Waking it spawns the task again when none
/// runs ([`TaskState::wake_own`]); otherwise it does nothing, or makes the
/// poll that is parking look again.
impl<D: Send + Sync + 'static> Wake for EngineSocket<D> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        (self.restart.0)(self);
    }
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
    pub(crate) timer: Option<Stamp>,
}

impl<D> EngineSocket<D> {
    pub(crate) fn new(
        sid: Sid,
        session: Session,
        ws_bound: bool,
        restart: Arc<Restart<D>>,
        data: D,
    ) -> Self {
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
            ws: Mutex::new(None),
            notify: (!ws_bound).then(|| Box::new(Notify::new())),
            ws_waker: AtomicWaker::new(),
            task: TaskState::new(),
            restart,
            data,
        }
    }

    /// Hints the CPU to load the lines a broadcast touches first (the
    /// session's lock and the WebSocket's): a caller walking many sockets
    /// asks for those a few places ahead.
    pub fn prefetch(&self) {
        switchboard_wire::io::prefetch(&self.state);
        switchboard_wire::io::prefetch(&self.ws);
    }

    /// The same for the heartbeat sweep, which reads the session's lock and
    /// state and its task's word.
    pub(crate) fn prefetch_for_sweep(&self) {
        switchboard_wire::io::prefetch(&self.state);
        switchboard_wire::io::prefetch(&self.task);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent state (every
        // mutation is a single call into `Session`), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes whichever transport drains the session.
    pub(crate) fn wake(&self) {
        self.wake_gets();
        self.ws_waker.wake();
    }

    /// Wakes the GETs waiting for output (sessions opened by polling).
    pub(crate) fn wake_gets(&self) {
        if let Some(notify) = &self.notify {
            notify.notify_waiters();
        }
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

    /// Queues encoded frames (see [`Session::send_encoded`]) in one go, and
    /// writes them at once when the session's WebSocket is idle (a
    /// broadcast reaching thousands of sessions then costs each a `send`, not
    /// a wake-up and a poll of its task).
    pub fn send_encoded(&self, frames: impl IntoIterator<Item = Message>) {
        let done = match self.ws.try_lock() {
            // The usual case of a broadcast: the socket is idle, so the
            // frames go from here to it, past the session's queue.
            Ok(mut slot) => match slot.as_mut().filter(|ws| idle_plain(ws)) {
                Some(ws) => self.write_through(ws, frames),
                None => {
                    drop(slot);
                    self.queue_all(frames);
                    false
                }
            },
            Err(_) => {
                self.queue_all(frames);
                false
            }
        };
        if !done {
            self.wake();
        }
    }

    fn queue_all(&self, frames: impl IntoIterator<Item = Message>) {
        let mut st = self.lock();
        for f in frames {
            st.session.send_encoded(f);
        }
    }

    /// [`EngineSocket::send_encoded`] on an idle plain socket whose lock the
    /// caller holds: a frame with nothing queued before it goes straight
    /// into the socket's output ([`Session::send_encoded_now`]), others into
    /// the session; then what the session holds follows, in order (with no
    /// frames, this is [`EngineSocket::write_now`]). Returns whether
    /// everything went out.
    fn write_through(
        &self,
        ws: &mut WebSocket<MaybeTlsStream>,
        frames: impl IntoIterator<Item = Message>,
    ) -> bool {
        {
            let mut st = self.lock();
            let mut failed = false;
            for f in frames {
                if let Some(m) = st.session.send_encoded_now(f) {
                    failed |= ws.queue(m).is_err();
                }
            }
            if st.session.closed().is_some() || st.session.transport() != Transport::WebSocket {
                return false;
            }
            st.session
                .drain_ws_up_to(super::websocket::WRITE_BUDGET, |m| {
                    failed |= ws.queue(m).is_err();
                });
            if failed {
                // As the task does: the socket is closing under the session.
                st.session.end(CloseReason::TransportClose);
                return false;
            }
        }
        // Full socket or error: the task meets it on its next write.
        if !matches!(ws.write_out_now(), Some(Ok(true))) {
            return false;
        }
        self.lock().session.backlog() == 0
    }

    /// Writes what the session holds straight to its WebSocket from the
    /// caller's thread when nothing is in the way: the task is not driving
    /// the socket, no earlier output waits, the session is open on the
    /// WebSocket transport and the socket is plain TCP. Returns whether
    /// everything went out; otherwise the caller wakes the task, which
    /// carries on from where this stopped (packets stay in order: both move
    /// them from the session into the socket's output under its lock).
    pub(crate) fn write_now(&self) -> bool {
        let Ok(mut slot) = self.ws.try_lock() else {
            return false;
        };
        match slot.as_mut().filter(|ws| idle_plain(ws)) {
            Some(ws) => self.write_through(ws, std::iter::empty()),
            None => false,
        }
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
            st.timer = at.map(Stamp::of);
        }
    }
}

/// Whether a sender may write to this WebSocket itself: no earlier output
/// waits, no close was sent, and it is plain TCP (TLS keeps to its task).
fn idle_plain(ws: &WebSocket<MaybeTlsStream>) -> bool {
    !ws.connection().has_output() && !ws.connection().close_sent() && ws.get_ref().is_plain()
}

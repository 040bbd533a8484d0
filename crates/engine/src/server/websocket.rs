//! The WebSocket transport: a fresh session opened on a WebSocket, or the
//! upgrade of a polling session. One task per WebSocket reads frames and
//! writes whatever the session queues; a sender that finds the WebSocket
//! idle writes its packets itself ([`EngineSocket::send_encoded`]), so a
//! broadcast to thousands of sessions wakes none of their tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use http::{Request, Response};
use switchboard_wire::handshake::server::ServerOptions;
use switchboard_wire::io::server::{PendingUpgrade, upgrade as ws_upgrade};
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame, Config, DeflateConfig, Message};

use super::error::RequestError;
use super::socket::EngineSocket;
use super::{Body, Handler, Shared};
use crate::packet::Packet;
use crate::session::{CloseReason, Inbound, Transport};

fn accept<H: Handler, B>(
    shared: &Shared<H>,
    req: &mut Request<B>,
) -> Result<(Response<Body>, PendingUpgrade), RequestError> {
    let config = &shared.config;
    let deflate = config.ws_deflate.then(DeflateConfig::default);
    let options = ServerOptions::default().with_deflate(deflate);
    let max = config.session.max_payload;
    let ws_config = Config::default()
        .deflate(deflate)
        .max_message_size(max)
        .max_frame_size(max);
    let (res, _accepted, pending) =
        ws_upgrade(req, &options, ws_config).map_err(|_| RequestError::BadRequest)?;
    Ok((res.map(|()| Body::default()), pending))
}

/// A session opened directly on a WebSocket.
pub(super) fn handshake<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    mut req: Request<B>,
) -> Result<Response<Body>, RequestError> {
    let (res, pending) = accept(shared, &mut req)?;
    // Only the layer above's data outlives the request head: the task of a
    // long-lived connection keeps nothing else of the handshake.
    let (parts, _) = req.into_parts();
    let data = shared.handler.data(&parts);
    drop(parts);
    let shared = shared.clone();
    tokio::spawn(async move {
        let Ok(ws) = pending.websocket().await else {
            return;
        };
        let socket = shared.open(data, Transport::WebSocket);
        // Sends the `open` packet and parks: the handshake's task ends, and
        // the connection's next event starts one that holds only what it
        // needs.
        run(shared, socket, ws).await;
    });
    Ok(res)
}

/// A polling session's upgrade: the probe runs on the new WebSocket.
pub(super) fn upgrade<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    mut req: Request<B>,
) -> Result<Response<Body>, RequestError> {
    if socket.closed().is_some() {
        return Err(RequestError::UnknownSid);
    }
    let (res, pending) = accept(shared, &mut req)?;
    let taken = {
        // Checked and claimed at once: of two racing upgrades one binds.
        let mut st = socket.lock();
        let taken = st.ws_bound || st.session.transport() != Transport::Polling;
        st.ws_bound = true;
        taken
    };
    if taken {
        // Already upgrading or upgraded: like the reference server, accept
        // the WebSocket and close it at once.
        tokio::spawn(async move {
            if let Ok(mut ws) = pending.websocket().await {
                let _ = ws.close(None).await;
            }
        });
        return Ok(res);
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        match pending.websocket().await {
            Ok(ws) => run(shared, socket, ws).await,
            Err(_) => socket.lock().ws_bound = false,
        }
    });
    Ok(res)
}

/// Bytes queued on a WebSocket's write buffer before the session's outbox
/// holds the rest (the WebSocket stops reading above 1 MiB of output).
pub(super) const WRITE_BUDGET: usize = 512 << 10;

/// Reads and writes one WebSocket until the session or the socket ends.
///
/// A hand-written future rather than an `async fn`: it is the state of every
/// idle WebSocket connection, and as a struct it holds two pointers and
/// nothing else (an `async fn` with a `select!` kept several hundred bytes of
/// dormant state per connection). The WebSocket itself lives in the session
/// ([`EngineSocket::ws`]), locked while this drives it, so that a sender can
/// write to it while it is idle. The layer above wakes this task through the
/// session's [`EngineSocket::ws_waker`].
///
/// A session quiet for a while parks its task
/// ([`switchboard_wire::io::park`]): the task ends and the socket stays in
/// the session; its next event spawns a new `Driver` ([`restart`]).
struct Driver<H: Handler> {
    shared: Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    /// The closing handshake, boxed: it only exists while closing.
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Park as soon as there is nothing to do (started by a `Parked` waker
    /// for a session that is not busy).
    park_when_idle: bool,
    /// The task ended by parking: the socket stays in the session.
    parked: bool,
}

/// The session's first task: it parks as soon as the socket is quiet.
fn run<H: Handler>(
    shared: Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    ws: WebSocket<MaybeTlsStream>,
) -> Driver<H> {
    *lock_ws(&socket) = Some(ws);
    socket.task.running();
    driver(shared, socket, false)
}

fn driver<H: Handler>(
    shared: Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    keep_running: bool,
) -> Driver<H> {
    Driver {
        shared,
        socket,
        closing: None,
        park_when_idle: !keep_running,
        parked: false,
    }
}

/// A parked session's way back: its own waker fired
/// ([`EngineSocket`]'s `Wake`); spawns its task again unless one runs.
pub(super) fn restart<H: Handler>(shared: &Arc<Shared<H>>, socket: &Arc<EngineSocket<H::Data>>) {
    let Some(keep_running) = socket.task.wake_own(shared.tick.load(Ordering::Relaxed)) else {
        return;
    };
    shared.resumes.fetch_add(1, Ordering::Relaxed);
    let driver = driver(shared.clone(), socket.clone(), keep_running);
    // The runtime is known: a WebSocket exists only after a request was
    // handled on it. On a runtime that shut down the task is dropped at
    // once, which closes the socket.
    if let Some(runtime) = shared.runtime.get() {
        runtime.spawn(driver);
    }
}

impl<H: Handler> Drop for Driver<H> {
    fn drop(&mut self) {
        // A task dropped before it finished (a handler panicked, the runtime
        // shut down) closes its socket, as when the task owned it.
        if !self.parked {
            lock_ws(&self.socket).take();
        }
    }
}

type WsSlot<'a> = std::sync::MutexGuard<'a, Option<WebSocket<MaybeTlsStream>>>;

fn lock_ws<D>(socket: &EngineSocket<D>) -> WsSlot<'_> {
    // Poisoned only by a panic while driving: the socket's state is still
    // the codec's own, consistent at every call boundary.
    socket.ws.lock().unwrap_or_else(|e| e.into_inner())
}

impl<H: Handler> Future for Driver<H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(closing) = this.closing.as_mut() {
            ready!(closing.as_mut().poll(cx));
            this.closing = None;
            this.shared.reap(&this.socket);
            return Poll::Ready(());
        }
        let mut slot = lock_ws(&this.socket);
        let Some(ws) = slot.as_mut() else {
            return Poll::Ready(());
        };
        // Parking: whatever would wake this task wakes the session itself
        // instead (its `Wake` spawns a new task), and the task ends once it
        // runs out of work.
        let tick = this.shared.tick.load(Ordering::Relaxed);
        let parking = this.socket.task.begin_poll(this.park_when_idle, tick);
        let own_waker = parking.then(|| Waker::from(this.socket.clone()));
        // A parking task's socket leaves the runtime's reactor; one that
        // keeps running needs it back.
        this.shared.watcher.park_io(ws.get_mut(), parking);
        // The socket stays locked for the whole poll. While it parks, the
        // session's waker firing spawns no second task: it makes this poll
        // look again (`TaskState::wake_own`, then `parked()` is false).
        let mut io_cx = Context::from_waker(own_waker.as_ref().unwrap_or(cx.waker()));
        loop {
            // Register before looking at the outbox: a send after the look
            // wakes this task.
            this.socket.ws_waker.register(io_cx.waker());
            let closed = {
                let mut st = this.socket.lock();
                let mut failed = false;
                // Only as much as the socket's write buffer takes: the rest
                // stays in the session, where a client that does not read
                // runs into `max_buffered`.
                let budget = if st.session.closed() == Some(CloseReason::ServerClose) {
                    // Closing: everything queued goes out before the close.
                    usize::MAX
                } else {
                    WRITE_BUDGET.saturating_sub(ws.connection().output_len())
                };
                st.session
                    .drain_ws_up_to(budget, |m| failed |= ws.queue(m).is_err());
                if failed {
                    st.session.end(CloseReason::TransportClose);
                }
                st.session.closed()
            };
            if let Some(reason) = closed {
                let ws = slot.take();
                drop(slot);
                return this.finish(Some(reason), ws, cx);
            }
            let unsent = ws.connection().output_len();
            match ws.poll_recv(&mut io_cx) {
                Poll::Ready(Some(Ok(m))) => {
                    // What the frame makes the session send (an ack, an
                    // echo) is drained by the next round, which registers
                    // again first: no wake-up of this very task (a parked
                    // waker would spawn a new one) is needed for it.
                    this.socket.ws_waker.take();
                    on_frame(&this.shared, &this.socket, m);
                }
                // The socket ended: the session ends with it unless this was
                // an upgrade that never completed.
                Poll::Ready(Some(Err(_)) | None) => {
                    let ws = slot.take();
                    drop(slot);
                    return this.finish(None, ws, cx);
                }
                // The socket took some of the output and has room for more
                // while packets wait in the session (its writability, which
                // woke this task, will not fire again): move more. Each
                // round needs written bytes, so this ends.
                Poll::Pending
                    if ws.connection().output_len() < unsent.min(WRITE_BUDGET)
                        && this.socket.lock().session.backlog() > 0 => {}
                // Out of work while parking: the task ends, unless the
                // session's waker fired meanwhile (then it looks again).
                Poll::Pending if parking => {
                    if this.socket.task.parked() {
                        this.parked = true;
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<H: Handler> Driver<H> {
    fn finish(
        &mut self,
        end: Option<CloseReason>,
        ws: Option<WebSocket<MaybeTlsStream>>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        // No task drives the session any more: drop the waker this one left
        // (a parking poll's is the session itself, which would then keep
        // itself alive).
        self.socket.ws_waker.take();
        match (end, ws) {
            (
                Some(
                    CloseReason::PingTimeout | CloseReason::TransportError | CloseReason::Overflow,
                ),
                _,
            )
            | (_, None) => {
                // Declared dead, broke the protocol or does not read: dropped
                // at once.
            }
            (Some(_), Some(mut ws)) => {
                self.closing = Some(Box::pin(async move {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::NORMAL,
                            reason: Default::default(),
                        }))
                        .await;
                }));
                return Pin::new(self).poll(cx);
            }
            (None, Some(_)) => {
                let mut st = self.socket.lock();
                if st.session.transport() == Transport::WebSocket {
                    st.session.end(CloseReason::TransportClose);
                } else {
                    st.ws_bound = false;
                    st.session.upgrade_aborted();
                }
            }
        }
        self.shared.reap(&self.socket);
        Poll::Ready(())
    }
}

fn on_frame<H: Handler>(shared: &Shared<H>, socket: &Arc<EngineSocket<H::Data>>, m: Message) {
    let packet = match m {
        Message::Text(t) => Packet::decode_text(t.as_str()),
        Message::Binary(b) => Ok(Packet::Binary(b)),
    };
    let inbound: Option<Inbound> = {
        let mut st = socket.lock();
        match packet {
            Ok(p) => st
                .session
                .on_packet(Transport::WebSocket, p, Instant::now()),
            Err(_) => {
                st.session.on_transport_error();
                None
            }
        }
    };
    // A `noop` for a waiting GET may be queued (this task drains the rest).
    socket.wake_gets();
    shared.deliver(socket, inbound.into_iter().collect());
}

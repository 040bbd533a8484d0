//! The task of one native connection: a hand-written future (two pointers
//! and the close in progress; the socket is in the shared [`Conn`], so a
//! room's publish can write to an idle connection without waking this
//! task, see [`write_now`]).
//!
//! A quiet connection parks its task ([`switchboard_wire::io::park`]): the
//! task ends, the socket stays in the `Conn`, and the connection's next
//! event (a frame, writability, a queued frame, a ping due, a kick) spawns a
//! new one. A new connection parks once welcomed; the sweep parks a busy
//! one after [`PARK_IDLE_AFTER`] without events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use switchboard_wire::io::park::{ParkedWaker, Resume, TaskState};
use switchboard_wire::{CloseCode, CloseFrame, Message};

use super::Native;
use super::conn::{Conn, Ending, Socket};
use crate::record::Captures;

/// Bytes handed to the socket's write buffer before the connection's queue
/// holds the rest.
const WRITE_BUDGET: usize = 512 << 10;

/// Close code of a client that did not read what it was sent.
const SLOW_CONSUMER: u16 = 4008;

/// Longest wait for the close handshake of a connection the server ends.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a connection stays quiet before the sweep parks its task.
const PARK_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Sweeps of `tick` a connection stays quiet before its task parks.
pub(super) fn park_ticks(tick: std::time::Duration) -> u32 {
    switchboard_wire::io::park::park_ticks(PARK_IDLE_AFTER, tick)
}

pub(super) struct Driver {
    native: Arc<Native>,
    conn: Arc<Conn>,
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Park as soon as there is nothing to do (started by a `Parked` waker
    /// for a connection that is not busy, or the connection's first task).
    park_when_idle: bool,
    /// The task ended by parking: the socket stays in the `Conn`.
    parked: bool,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A task dropped before it finished (a handler panicked, the runtime
        // shut down) closes its socket, as when the task owned it.
        if !self.parked {
            self.conn
                .socket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
        }
    }
}

/// A parked connection's way back: its [`Parked`](switchboard_wire::io::park::Parked) waker spawns its task
/// again.
struct Resumer {
    native: Arc<Native>,
    conn: Arc<Conn>,
}

impl Resume for Resumer {
    fn task(&self) -> &TaskState {
        &self.conn.task
    }

    fn tick(&self) -> u32 {
        self.native.tick.load(Ordering::Relaxed)
    }

    fn resume(&self, keep_running: bool) {
        let mut driver = Driver::new(self.native.clone(), self.conn.clone());
        driver.park_when_idle = !keep_running;
        // The runtime is known (the sweep started on it before any
        // connection); on one that shut down the task is dropped at once,
        // which closes the socket.
        if let Some(runtime) = self.native.runtime.get() {
            runtime.spawn(driver);
        }
    }
}

impl Driver {
    /// Drives `conn`, whose socket is in `conn.socket`; parks as soon as
    /// the connection is quiet.
    pub(super) fn new(native: Arc<Native>, conn: Arc<Conn>) -> Self {
        conn.task.running();
        Self {
            native,
            conn,
            closing: None,
            park_when_idle: true,
            parked: false,
        }
    }

    fn finish(
        &mut self,
        ending: Option<Ending>,
        ws: Option<Socket>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        self.native.gone(&self.conn);
        let close = match ending {
            Some(Ending::Kicked(code)) => Some((code, "")),
            Some(Ending::Overflow) => Some((SLOW_CONSUMER, "slow consumer")),
            _ => None,
        };
        let recorder = &self.native.ctx.recorder;
        if recorder.socket(&self.conn.id).is_some() {
            let peer = ws.as_ref().and_then(|ws| ws.peer_close());
            recorder.socket_ended(&self.conn.id, close, peer);
        }
        match (close, ws) {
            (Some((code, reason)), Some(mut ws)) => {
                // Bounded: a peer that does not read cannot hold the task.
                self.closing = Some(Box::pin(async move {
                    let frame = CloseFrame::new(CloseCode::from(code), reason);
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
                }));
                Pin::new(self).poll(cx)
            }
            // Dead: dropped at once, no close handshake.
            _ => Poll::Ready(()),
        }
    }
}

/// Moves queued frames into the socket's output, at most about `budget`
/// bytes; returns whether a frame could not be queued (the connection is
/// over).
fn move_queued(native: &Native, conn: &Conn, ws: &mut Socket, budget: usize) -> bool {
    let captures = native.ctx.recorder.socket(&conn.id);
    hand_over(native, captures.as_ref(), ws, |f| conn.drain(budget, f))
}

/// Puts the frames `feed` gives into the socket's output, shown to the
/// connection's captures (what goes to the client is "in"; the caller looks
/// them up) and counted, whoever writes; returns whether a frame could not
/// be queued (the connection is over).
fn hand_over(
    native: &Native,
    captures: Option<&Captures>,
    ws: &mut Socket,
    feed: impl FnOnce(&mut dyn FnMut(Message)),
) -> bool {
    let mut failed = false;
    let (mut sent, mut bytes) = (0u64, 0u64);
    feed(&mut |m| {
        sent += 1;
        bytes += m.len() as u64;
        for c in captures.iter().flat_map(|c| c.iter()) {
            c.message(crate::capture::Dir::In, &m);
        }
        failed |= ws.queue(m).is_err();
    });
    if sent > 0 {
        let traffic = &native.ctx.metrics.native;
        traffic.messages_out.inc_by(sent);
        traffic.bytes_out.inc_by(bytes);
    }
    failed
}

/// Writes what `conn` has queued straight to its socket, from the caller's
/// thread, when nothing else is in the way: the task is not driving it, no
/// earlier output waits and the connection is not closing. Returns whether
/// everything went out; otherwise the caller wakes the task, which carries
/// on from where this stopped (frames stay in order: both move them from
/// the same queue into the same output, under the socket's lock).
///
/// A room's publish reaches thousands of connections: this spares each an
/// enqueue-wake-poll round through the scheduler.
pub(super) fn write_now(native: &Native, conn: &Conn) -> bool {
    let Some(mut socket) = idle_socket(conn) else {
        return false;
    };
    let Some(ws) = socket.as_mut() else {
        return false;
    };
    if move_queued(native, conn, ws, WRITE_BUDGET) {
        return false;
    }
    write_out(ws) && conn.lock().outbox.is_empty()
}

/// A publish's frame for one member, written straight to its socket when
/// that is idle and nothing waits in the connection's queue: the frame goes
/// from here into the socket's output under one lock of the connection's
/// state, and the queue is not touched. `None` when that cannot be (the
/// task drives the socket, output or queued frames wait, the connection is
/// closing): nothing was done, and the caller queues the frame. Otherwise
/// whether everything went out; if not, the caller wakes the task, which
/// carries on from where this stopped.
pub(super) fn write_direct(native: &Native, conn: &Conn, frame: &Message) -> Option<bool> {
    let mut socket = conn.socket.try_lock().ok()?;
    let ws = socket.as_mut()?;
    if ws.connection().has_output() || ws.connection().close_sent() {
        return None;
    }
    let captures = native.ctx.recorder.socket(&conn.id);
    let failed = {
        let st = conn.lock();
        if st.ending.is_some() || !st.outbox.is_empty() {
            return None;
        }
        // Under the state's lock, as a queued frame would be moved: a frame
        // queued by another publish from now on comes after this one (and
        // that publish, finding the socket locked, wakes the task for it).
        hand_over(native, captures.as_ref(), ws, |f| f(frame.clone()))
    };
    Some(!failed && write_out(ws))
}

/// Writes the socket's output from outside its task; whether it all went.
fn write_out(ws: &mut Socket) -> bool {
    // No task waits on this write: a socket that cannot take it all leaves
    // the rest to the task, which registers for writability itself.
    match ws.write_out_now() {
        // Plain TCP: a send to the socket, nothing more (the runtime's
        // readiness bookkeeping is the task's business).
        Some(r) => matches!(r, Ok(true)),
        // TLS, through its stream. Outside tokio's cooperative budget: a
        // publish writes to thousands of sockets from one poll of its task,
        // and the budget (128 operations per poll) would refuse all the rest.
        None => {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let write = std::pin::pin!(tokio::task::unconstrained(std::future::poll_fn(
                |cx| ws.poll_write_out(cx)
            )));
            let done = matches!(write.poll(&mut cx), Poll::Ready(Ok(())));
            if done {
                ws.connection_mut().release_idle_buffers();
            }
            done
        }
    }
}

/// The connection's socket, locked, when a write from outside its task may
/// go ahead: the task is not driving it, it has a socket, no earlier output
/// waits, and the connection is not closing.
fn idle_socket(conn: &Conn) -> Option<std::sync::MutexGuard<'_, Option<Socket>>> {
    let socket = conn.socket.try_lock().ok()?;
    let ws = socket.as_ref()?;
    let busy = ws.connection().has_output() || ws.connection().close_sent();
    (!busy && conn.lock().ending.is_none()).then_some(socket)
}

/// Writes a ping straight to an idle connection's plain-TCP socket, from the
/// sweep, as [`write_now`] does for frames: a parked connection is then
/// spawned again only for the pong. `None`: not written (the task's business:
/// it is driving the socket, output waits, the connection is ending, or the
/// stream is TLS); `Some(false)`: queued, and the task writes the rest.
pub(super) fn ping_now(conn: &Conn) -> Option<bool> {
    let mut socket = idle_socket(conn)?;
    let ws = socket.as_mut()?;
    if !ws.get_ref().is_plain() {
        return None;
    }
    ws.connection_mut().send_ping(Bytes::new()).ok()?;
    Some(matches!(ws.write_out_now(), Some(Ok(true))))
}

/// What one turn of the task decided, acted on once the socket is unlocked.
enum Turn {
    Message(Message),
    Finish(Option<Ending>, Option<Socket>),
    /// The socket was taken by an earlier finish: nothing is left to do.
    Done,
    /// This parking poll's waker fired: a new task drives the connection.
    HandedOver,
    Again,
    Pending,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(closing) = this.closing.as_mut() {
            ready!(closing.as_mut().poll(cx));
            this.closing = None;
            return Poll::Ready(());
        }
        // Parking: whatever would wake this task wakes a `Parked` waker
        // instead, and the task ends once it runs out of work.
        let tick = this.native.tick.load(Ordering::Relaxed);
        let parked_waker = this
            .conn
            .task
            .parked_waker(this.park_when_idle, tick, || Resumer {
                native: this.native.clone(),
                conn: this.conn.clone(),
            });
        let parking = parked_waker.is_some();
        let mut io_cx =
            Context::from_waker(parked_waker.as_ref().map_or(cx.waker(), ParkedWaker::waker));
        loop {
            let turn = this.turn(&mut io_cx, parked_waker.as_ref());
            match turn {
                Turn::Message(m) => {
                    if let Some(captures) = this.native.ctx.recorder.socket(&this.conn.id) {
                        for c in captures.iter() {
                            c.message(crate::capture::Dir::Out, &m);
                        }
                    }
                    super::ops::on_message(&this.native, &this.conn, m);
                }
                Turn::Finish(ending, ws) => return this.finish(ending, ws, cx),
                Turn::Done => return Poll::Ready(()),
                Turn::HandedOver => {
                    this.parked = true;
                    return Poll::Ready(());
                }
                Turn::Again => {}
                Turn::Pending if parking => {
                    this.parked = true;
                    this.conn.task.parked();
                    return Poll::Ready(());
                }
                Turn::Pending => return Poll::Pending,
            }
        }
    }
}

impl Driver {
    /// One turn with the socket locked: pings, queued frames out, the next
    /// message in. `parked`: this poll parks (the task ends once nothing is
    /// left to do), with this waker.
    fn turn(&mut self, cx: &mut Context<'_>, parked: Option<&ParkedWaker<Resumer>>) -> Turn {
        let mut socket = self.conn.socket.lock().unwrap_or_else(|e| e.into_inner());
        // The socket is unlocked between turns (a message is handled
        // outside), and the parked waker may fire then, from this task's own
        // reply or anything else: the new task it spawned may have had its
        // turns already and registered its waker. Registering this one again
        // would replace that, and nothing would resume the connection.
        if parked.is_some_and(ParkedWaker::fired) {
            return Turn::HandedOver;
        }
        let parking = parked.is_some();
        let Some(ws) = socket.as_mut() else {
            return Turn::Done;
        };
        // A parking task's socket leaves the runtime's reactor; one that
        // keeps running needs it back.
        self.native.watcher.park_io(ws.get_mut(), parking);
        self.conn.waker.register(cx.waker());
        let (ending, ping) = {
            let mut st = self.conn.lock();
            (st.ending, std::mem::take(&mut st.ping_due))
        };
        if ping {
            let _ = ws.connection_mut().send_ping(Bytes::new());
        }
        if let Some(e @ (Ending::Dead | Ending::Overflow)) = ending {
            if e == Ending::Overflow {
                let metrics = &self.native.ctx.metrics;
                metrics.native.queue_drops.inc();
                metrics.reject(crate::metrics::Limit::SlowConsumer);
            }
            return Turn::Finish(ending, socket.take());
        }
        // A kicked connection still gets what was queued (the `kick`).
        let budget = if ending.is_some() {
            usize::MAX
        } else {
            WRITE_BUDGET.saturating_sub(ws.connection().output_len())
        };
        let failed = move_queued(&self.native, &self.conn, ws, budget);
        if failed || ending.is_some() {
            return Turn::Finish(ending, socket.take());
        }
        let unsent = ws.connection().output_len();
        let r = ws.poll_recv(cx);
        if ws.take_activity() {
            self.conn.touch(self.native.now_ms());
        }
        match r {
            // The message is handled with the socket unlocked, and what that
            // queues (a reply) is moved by the next turn, which registers
            // again first: no wake-up of this very task (a parked waker
            // would spawn a new one) is needed for it. Only a waker this
            // poll registered can be here: a newer task registers under the
            // socket's lock, after this turn.
            Poll::Ready(Some(Ok(m))) => {
                self.conn.waker.take();
                Turn::Message(m)
            }
            Poll::Ready(Some(Err(e))) => {
                if matches!(
                    e,
                    switchboard_wire::Error::Protocol(
                        switchboard_wire::ProtocolError::MessageTooBig { .. }
                            | switchboard_wire::ProtocolError::FrameTooBig { .. }
                    )
                ) {
                    self.native
                        .ctx
                        .metrics
                        .reject(crate::metrics::Limit::Payload);
                }
                Turn::Finish(None, socket.take())
            }
            Poll::Ready(None) => Turn::Finish(None, socket.take()),
            // The socket took some of the output and has room for more
            // while frames wait in the queue (its writability, which woke
            // this task, will not fire again): move more. Each round
            // needs written bytes, so this ends.
            Poll::Pending
                if ws.connection().output_len() < unsent.min(WRITE_BUDGET)
                    && !self.conn.lock().outbox.is_empty() =>
            {
                Turn::Again
            }
            Poll::Pending => Turn::Pending,
        }
    }
}

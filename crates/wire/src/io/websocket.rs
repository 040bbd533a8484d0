//! [`WebSocket`]: the sans-IO [`Connection`] driven over a tokio stream.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::{Error, ProtocolError};
use crate::proto::close::CloseFrame;
use crate::proto::connection::Connection;
use crate::proto::message::{Event, Message};

/// Received bytes go through a stack buffer of this size unless a partial
/// frame is pending, so an idle connection holds no read buffer.
const READ_SCRATCH: usize = 16 * 1024;

/// Reading pauses while more than this much output waits for a slow peer.
const WRITE_HIGH_WATER: usize = 1 << 20;

/// After our side is done (close exchanged or failed) the stream is drained
/// for at most this long, waiting for the peer to close, so our close frame
/// is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Flushing the last frames, then shutting down the write side.
    Closing,
    /// Waiting for the peer's FIN (bounded by `LINGER`).
    Draining,
    Done,
}

/// How a connection ended: the protocol error that ended it, the close
/// frame the peer sent.
#[derive(Debug, Default)]
struct Ending {
    error: Option<ProtocolError>,
    peer_close: Option<CloseFrame>,
    /// Draining the read side after the close, until this fires.
    linger: Option<Pin<Box<Sleep>>>,
}

/// A WebSocket over a stream `S`: receive with [`WebSocket::recv`], send with
/// [`WebSocket::send`] (or [`WebSocket::queue`] then [`WebSocket::flush`] to
/// coalesce writes). Pings are answered and the close handshake completed
/// while receiving.
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    phase: Phase,
    /// How the connection ended, once it did, and the linger timer of its
    /// close (boxed: rare).
    ending: Option<Box<Ending>>,
    clean: bool,
    /// Bytes arrived since [`WebSocket::take_activity`] last looked.
    active: bool,
    /// Kept as long as the connection (see [`super::server::ConnectionGuard`]).
    pub(crate) guard: Option<super::server::ConnectionGuard>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose handshake is done. `prefix` holds bytes already
    /// read past the handshake (they are frames).
    pub fn from_parts(io: S, mut conn: Connection, prefix: &[u8]) -> Self {
        if !prefix.is_empty() {
            conn.feed(prefix);
        }
        Self {
            io,
            conn,
            phase: Phase::Open,
            ending: None,
            clean: false,
            active: false,
            guard: None,
        }
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The protocol state, mutably (to queue frames directly).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably (e.g. to
    /// [detach](super::MaybeTlsStream::detach) it while parked).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The close frame the peer sent, once it sent one (its code and reason;
    /// `None` also for a close without a code).
    pub fn peer_close(&self) -> Option<&CloseFrame> {
        self.ending.as_ref()?.peer_close.as_ref()
    }

    /// Whether any bytes arrived from the peer since the last call (pongs and
    /// partial frames included): the liveness signal of a heartbeat.
    pub fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.active)
    }

    /// Whether the close handshake completed (both close frames exchanged).
    pub fn closed_cleanly(&self) -> bool {
        self.clean
    }

    /// Receives the next message. `None` once the connection is closed (after
    /// a close handshake or a transport end); `Some(Err)` reports why a
    /// connection failed, once, after its close frame has been flushed.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues a message without writing it (see [`WebSocket::flush`]). Output
    /// is also flushed whenever [`WebSocket::recv`] waits for input.
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send(message).map_err(|_| Error::Closed)
    }

    /// Sends a message and flushes.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.queue(message)?;
        self.flush().await
    }

    /// Sends a ping.
    pub async fn ping(&mut self, payload: Bytes) -> Result<(), Error> {
        self.conn.send_ping(payload).map_err(|_| Error::Closed)?;
        self.flush().await
    }

    /// Writes all queued output.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_write_out(cx)).await
    }

    /// Starts (or completes) the close handshake and waits, bounded, for the
    /// peer's close frame and the end of the stream. Messages arriving
    /// meanwhile are discarded.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.conn.close(frame);
        let drain = async {
            while let Some(r) = self.recv().await {
                match r {
                    Ok(_) => {}
                    // Our close is sent: a peer that drops or resets the
                    // stream instead of answering has still ended it.
                    Err(Error::ResetWithoutClose) => return Ok(()),
                    Err(Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(LINGER * 2, drain).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Polls for the next message; see [`WebSocket::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.phase {
                Phase::Open => {}
                Phase::Closing | Phase::Draining => {
                    ready!(self.poll_finish(cx));
                    continue;
                }
                Phase::Done => {
                    let error = self.ending.as_mut().and_then(|e| e.error.take());
                    return Poll::Ready(error.map(|e| Err(Error::Protocol(e))));
                }
            }
            match self.conn.next_event() {
                Ok(Some(Event::Message(m))) => return Poll::Ready(Some(Ok(m))),
                Ok(Some(Event::Close(frame))) => {
                    self.ending.get_or_insert_default().peer_close = frame;
                    self.clean = self.conn.close_sent();
                    self.phase = Phase::Closing;
                    continue;
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => continue,
                Ok(None) => {}
                Err(e) => {
                    self.ending.get_or_insert_default().error = Some(e);
                    self.phase = Phase::Closing;
                    continue;
                }
            }
            if self.conn.has_output() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        self.phase = Phase::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending if self.conn.output_len() > WRITE_HIGH_WATER => {
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            match self.poll_read_some(cx) {
                Poll::Ready(Ok(0)) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(Error::ResetWithoutClose)));
                }
                Poll::Ready(Ok(_)) => self.active = true,
                Poll::Ready(Err(e)) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
                Poll::Pending => {
                    self.conn.release_idle_buffers();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Flushes the last frames, shuts the write side, and drains the read side
    /// until the peer closes or the linger time passes.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.phase == Phase::Closing {
            if ready!(self.poll_write_out(cx)).is_ok() {
                let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
            }
            self.phase = Phase::Draining;
            self.ending.get_or_insert_default().linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        loop {
            if let Some(sleep) = self.ending.as_mut().and_then(|e| e.linger.as_mut())
                && sleep.as_mut().poll(cx).is_ready()
            {
                break;
            }
            let mut scratch = [MaybeUninit::<u8>::uninit(); 4096];
            let mut rb = ReadBuf::uninit(&mut scratch);
            match ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb)) {
                Ok(()) if rb.filled().is_empty() => break,
                Ok(()) => {}
                Err(_) => break,
            }
        }
        if let Some(e) = self.ending.as_mut() {
            e.linger = None;
        }
        self.phase = Phase::Done;
        self.conn.release_idle_buffers();
        Poll::Ready(())
    }

    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self { io, conn, .. } = self;
        let rbuf = conn.read_buffer();
        if rbuf.capacity() - rbuf.len() >= READ_SCRATCH / 4 {
            let spare = rbuf.spare_capacity_mut();
            let mut rb = ReadBuf::uninit(spare);
            ready!(Pin::new(io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            // SAFETY: `poll_read` initialised the first `n` bytes of the spare
            // capacity (`ReadBuf::filled`), which directly follow `len`.
            unsafe { rbuf.set_len(rbuf.len() + n) };
            return Poll::Ready(Ok(n));
        }
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_SCRATCH];
        let mut rb = ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        conn.feed(rb.filled());
        Poll::Ready(Ok(n))
    }

    /// Writes all queued output (vectored when the stream supports it).
    pub fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.conn.has_output() {
            let n = if self.io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let k = self.conn.output_slices(&mut slices);
                if k == 1 {
                    // One contiguous chunk: `send` is cheaper than `writev`,
                    // which goes through the VFS layer on Linux.
                    ready!(Pin::new(&mut self.io).poll_write(cx, &slices[0]))?
                } else {
                    ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
                }
            } else {
                ready!(Pin::new(&mut self.io).poll_write(cx, self.conn.output_chunk()))?
            };
            if n == 0 {
                return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
            }
            self.conn.consume_output(n);
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl WebSocket<super::MaybeTlsStream> {
    /// Writes the queued output straight to a plain TCP socket from the
    /// caller's thread, outside any task and the runtime's budget: for a
    /// broadcast that reaches thousands of idle connections from one place.
    ///
    /// `Some(Ok(true))`: everything went out (idle buffers are released, as
    /// when [`WebSocket::recv`] waits). `Some(Ok(false))`: the socket
    /// is full and the rest stays queued; the task that owns the WebSocket
    /// writes it (its first write finds the socket full and waits for
    /// writability). `Some(Err(_))`: the socket failed; the owner's next
    /// write fails too. `None` over TLS: use
    /// [`WebSocket::poll_write_out`].
    pub fn write_out_now(&mut self) -> Option<Result<bool, Error>> {
        while self.conn.has_output() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let k = self.conn.output_slices(&mut slices);
            match self.io.send_now(&slices[..k])? {
                Ok(0) => return Some(Err(Error::Io(io::ErrorKind::WriteZero.into()))),
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Ok(false)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(Error::Io(e))),
            }
        }
        self.conn.release_idle_buffers();
        Some(Ok(true))
    }
}

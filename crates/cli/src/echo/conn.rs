//! One echo connection as the reactor sees it: the HTTP request head, then
//! the sans-IO [`Connection`] echoing every message, then a bounded drain.
//!
//! Everything here works on a non-blocking socket and returns what the
//! reactor must do next ([`Step`]); nothing waits. The state is small and
//! lives inline in the reactor's slab: an idle open connection is the socket
//! descriptor, the protocol state and two flags.

use std::io::{self, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;

use bytes::Bytes;
use mio::net::TcpStream;
use std::ops::ControlFlow;
use switchboard_wire::handshake::HeadLimits;
use switchboard_wire::handshake::server::{ServerOptions, accept, parse_request};

use switchboard_wire::{Config, Connection, Event, MessageRef, Next, Replies, Role};

use super::lend::Lend;
use super::sio::{SioSettings, SioState};

/// Reading pauses while more than this much output waits for a slow peer.
const WRITE_HIGH_WATER: usize = 1 << 20;

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;

/// Reads handled for one connection before the reactor serves the others.
const READ_BUDGET: u32 = 32;

/// A connection that is echoing keeps up to this much buffer between
/// messages (no allocation, and for large frames no copy, per message); an
/// idle one keeps none (freed after its handshake and at the heartbeat sweep
/// that finds it silent).
const KEEP_BUFFERS: usize = 128 * 1024;

/// What every connection of a worker shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) options: ServerOptions,
    pub(crate) config: Config,
    pub(crate) head: HeadLimits,
    /// Serve Socket.IO instead of echoing WebSocket messages.
    pub(crate) socketio: Option<SioSettings>,
}

/// What the reactor does with a connection after it was driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Wait for the socket; `writable` says whether output is pending.
    Wait { writable: bool },
    /// The read budget ran out with input possibly left: drive it again soon.
    Again,
    /// The write side is shut: drain the peer until it closes, bounded.
    Drain,
    /// Done: deregister and drop.
    Close,
    /// Not ours to serve: deregister and pass the socket, with the bytes
    /// read from it, to the handoff server ([`EchoConn::take_handoff`]).
    Handoff,
}

#[derive(Debug)]
enum Phase {
    /// Reading the request head; holds a partial head between reads.
    Handshake(Vec<u8>),
    /// Upgraded: every message is echoed (or, with a Socket.IO session,
    /// handled by it).
    Open(Connection, Option<SioState>),
    /// Our side is finished; reading until the peer closes.
    Draining,
    /// To be handed off, with what was read so far.
    Handoff(Vec<u8>),
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct EchoConn {
    pub(crate) stream: TcpStream,
    phase: Phase,
    /// Bytes arrived since the last heartbeat sweep.
    active: bool,
    /// A ping was sent and nothing has arrived since.
    pinged: bool,
    /// Whether the socket is registered for writability.
    pub(crate) write_interest: bool,
    /// The worker's number for this connection (its deadlines carry it).
    pub(crate) serial: u32,
}

impl EchoConn {
    pub(crate) fn new(stream: TcpStream, serial: u32) -> Self {
        Self {
            stream,
            serial,
            phase: Phase::Handshake(Vec::new()),
            active: false,
            pinged: false,
            write_interest: false,
        }
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshake(_))
    }

    pub(crate) fn is_draining(&self) -> bool {
        matches!(self.phase, Phase::Draining)
    }

    /// The bytes read before [`Step::Handoff`] (empty otherwise).
    pub(crate) fn take_handoff(&mut self) -> Vec<u8> {
        match &mut self.phase {
            Phase::Handoff(read) => std::mem::take(read),
            _ => Vec::new(),
        }
    }

    /// Reads, echoes and writes as far as the socket allows.
    pub(crate) fn drive(
        &mut self,
        settings: &Settings,
        scratch: &mut [MaybeUninit<u8>],
        lend: &mut Lend,
    ) -> Step {
        let step = match &mut self.phase {
            Phase::Handshake(head) => match handshake(&mut self.stream, head, settings, scratch) {
                Ok(Handshake::Pending) => return Step::Wait { writable: false },
                Ok(Handshake::Refused) => Step::Drain,
                Ok(Handshake::Upgraded(ws, sio)) => {
                    self.active = true;
                    self.phase = Phase::Open(ws, sio);
                    return self.drive(settings, scratch, lend);
                }
                Ok(Handshake::Handoff(read)) => {
                    self.phase = Phase::Handoff(read);
                    return Step::Handoff;
                }
                Err(_) => Step::Close,
            },
            Phase::Open(ws, sio) => {
                let step = drive_open(
                    &mut self.stream,
                    ws,
                    sio.as_mut().zip(settings.socketio.as_ref()),
                    &mut self.active,
                    scratch,
                    lend,
                );
                lend.take_back(ws);
                step
            }
            Phase::Draining => drain(&mut self.stream, scratch),
            Phase::Handoff(_) => Step::Handoff,
        };
        if step == Step::Drain {
            self.phase = Phase::Draining;
        }
        step
    }

    /// The heartbeat: called once per ping interval. A connection silent for
    /// a whole interval is pinged; one still silent an interval after its
    /// ping is dead. Returns what the reactor must do.
    ///
    /// A Socket.IO session is pinged at every sweep instead (Engine.IO's
    /// clients expect a ping each interval) and closed when it left the
    /// last one unanswered ([`SioState::heartbeat`]).
    pub(crate) fn heartbeat(&mut self) -> Step {
        let Phase::Open(ws, sio) = &mut self.phase else {
            return Step::Wait {
                writable: self.write_interest,
            };
        };
        let active = std::mem::take(&mut self.active);
        if !active {
            // Silent for an interval: it no longer needs buffers kept for speed.
            ws.release_idle_buffers();
        }
        if let Some(sio) = sio {
            if ws.is_done_reading() || sio.heartbeat(&mut ws.replies()).is_err() {
                return Step::Close;
            }
        } else {
            if active {
                self.pinged = false;
                return Step::Wait {
                    writable: self.write_interest,
                };
            }
            if self.pinged || ws.is_done_reading() {
                return Step::Close;
            }
            self.pinged = true;
            if ws.send_ping(Bytes::new()).is_err() {
                return Step::Close;
            }
        }
        match flush(&mut self.stream, ws) {
            Ok(done) => {
                if !active {
                    ws.release_idle_buffers();
                }
                Step::Wait { writable: !done }
            }
            Err(_) => Step::Close,
        }
    }
}

enum Handshake {
    Pending,
    Refused,
    Upgraded(Connection, Option<SioState>),
    /// For the handoff server, with every byte read so far.
    Handoff(Vec<u8>),
}

fn handshake(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    settings: &Settings,
    scratch: &mut [MaybeUninit<u8>],
) -> io::Result<Handshake> {
    loop {
        let n = match recv(stream, scratch) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Handshake::Pending),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: `recv` initialised the first `n` bytes of `scratch`.
        let got = unsafe { assume_init(&scratch[..n]) };
        let partial = !head.is_empty();
        if partial {
            head.extend_from_slice(got);
        }
        let data: &[u8] = if partial { head } else { got };
        let (req, len) = match parse_request(data, &settings.head) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if !partial {
                    head.extend_from_slice(got);
                }
                if n < scratch.len() {
                    // A short read drained the socket (see `Read::Short`).
                    return Ok(Handshake::Pending);
                }
                continue;
            }
            Err(e) => return refuse(stream, &e.to_response_bytes()),
        };
        // With Socket.IO, only a WebSocket opened directly is served here;
        // the Engine.IO server answers everything else, errors included.
        let direct = settings
            .socketio
            .as_ref()
            .map(|_| SioSettings::is_direct_websocket(&req.path));
        if direct == Some(false) {
            return Ok(Handshake::Handoff(data.to_vec()));
        }
        let accepted = match accept(&req.method, req.version, &req.headers, &settings.options) {
            Ok(a) => a,
            Err(_) if direct.is_some() => return Ok(Handshake::Handoff(data.to_vec())),
            Err(e) => return refuse(stream, &e.to_response_bytes()),
        };
        let mut ws = Connection::new(
            Role::Server,
            settings.config,
            accepted.deflate.as_ref().map(|(p, _)| *p),
        );
        ws.send_encoded(Bytes::from(accepted.response_bytes()))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let sio = settings
            .socketio
            .as_ref()
            .map(|sio| SioState::open(&mut ws.replies(), sio));
        ws.feed(&data[len..]);
        *head = Vec::new();
        return Ok(Handshake::Upgraded(ws, sio));
    }
}

/// Writes an error response (small: it fits the fresh socket's send buffer)
/// and shuts the write side; the reactor then drains the request's rest so
/// the response is not lost to a reset.
fn refuse(stream: &mut TcpStream, response: &[u8]) -> io::Result<Handshake> {
    stream.write_all(response)?;
    stream.shutdown(Shutdown::Write)?;
    Ok(Handshake::Refused)
}

fn drive_open(
    stream: &mut TcpStream,
    ws: &mut Connection,
    mut sio: Option<(&mut SioState, &SioSettings)>,
    active: &mut bool,
    scratch: &mut [MaybeUninit<u8>],
    lend: &mut Lend,
) -> Step {
    let mut budget = READ_BUDGET;
    let mut drained = false;
    let mut echoed = false;
    loop {
        // Echo what has been decoded: a message that arrived whole is
        // answered in place, from the read buffer. A protocol error or a
        // close queues the close frame and stops the decoder; both end below.
        loop {
            let next = ws.next_event_with(|m, out| {
                echoed = true;
                answer(out, m, sio.as_mut())
            });
            match next {
                Ok(Next::Event(Event::Message(m))) => {
                    echoed = true;
                    let flow = match sio.as_mut() {
                        Some(s) => answer(&mut ws.replies(), m.as_message_ref(), Some(s)),
                        // A reassembled message goes back as it is (a large
                        // one by reference).
                        None => {
                            let _ = ws.send(m);
                            ControlFlow::Continue(())
                        }
                    };
                    if flow.is_break() {
                        return Step::Close;
                    }
                }
                Ok(Next::Event(_)) => {}
                // Engine.IO drops a session that broke the protocol at once.
                Ok(Next::Stopped(())) => return Step::Close,
                Ok(Next::NeedInput) | Err(_) => break,
            }
        }
        let flushed = match flush(stream, ws) {
            Ok(done) => done,
            Err(_) => return Step::Close,
        };
        if ws.is_done_reading() {
            if !flushed {
                return Step::Wait { writable: true };
            }
            return match stream.shutdown(Shutdown::Write) {
                Ok(()) => Step::Drain,
                Err(_) => Step::Close,
            };
        }
        if !flushed && ws.output_len() > WRITE_HIGH_WATER {
            // A slow reader: stop reading until the output drains.
            return Step::Wait { writable: true };
        }
        if drained {
            lend.take_back(ws);
            // `try_reclaim` succeeds only if the read buffer's allocation is
            // larger than what may be kept (once no message shares it).
            if !echoed
                || ws.buffer_capacity() > KEEP_BUFFERS
                || ws.read_buffer().try_reclaim(KEEP_BUFFERS)
            {
                ws.release_idle_buffers();
            }
            return Step::Wait { writable: !flushed };
        }
        if budget == 0 {
            return Step::Again;
        }
        budget -= 1;
        match read_some(stream, ws, scratch, lend) {
            Ok(Read::Eof) => return Step::Close,
            Ok(Read::Full) => *active = true,
            Ok(Read::Short) => {
                // The socket gave less than asked: it is drained, and new
                // bytes will raise a new readiness edge. Echo what came and
                // wait, without the read that would only say `WouldBlock`.
                *active = true;
                drained = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}

/// Answers one message: the echo, or the Socket.IO session's handling (a
/// protocol violation breaks: the session is dropped).
fn answer(
    out: &mut Replies<'_>,
    m: MessageRef<'_>,
    sio: Option<&mut (&mut SioState, &SioSettings)>,
) -> ControlFlow<()> {
    match sio {
        Some((session, settings)) => match session.on_message(out, m, settings) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        },
        None => {
            let _ = out.send_slice(m.opcode(), m.payload());
            ControlFlow::Continue(())
        }
    }
}

/// What one read got.
enum Read {
    /// The peer closed its side.
    Eof,
    /// As many bytes as there was room for: more may be waiting.
    Full,
    /// Fewer: the socket's receive queue is empty.
    Short,
}

/// Reads and discards until the peer closes (then the reactor drops the
/// connection) or the socket has nothing more for now.
fn drain(stream: &mut TcpStream, scratch: &mut [MaybeUninit<u8>]) -> Step {
    loop {
        match recv(stream, scratch) {
            Ok(0) => return Step::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Step::Wait { writable: false };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}

/// One read: straight into the connection's buffer when it has room (its
/// own, kept for a large frame, or the worker's, lent while it has nothing
/// buffered: see [`Lend`]), else through the worker's scratch buffer, so an
/// idle connection holds no read buffer.
fn read_some(
    stream: &mut TcpStream,
    ws: &mut Connection,
    scratch: &mut [MaybeUninit<u8>],
    lend: &mut Lend,
) -> io::Result<Read> {
    let rbuf = ws.read_buffer();
    if rbuf.is_empty() {
        // A kept buffer whose messages have been written is whole again:
        // with room enough, the next frame is read straight into it.
        let _ = rbuf.try_reclaim(scratch.len() / 4);
    }
    lend.lend_to(ws, scratch.len() / 4);
    let rbuf = ws.read_buffer();
    let spare = rbuf.capacity() - rbuf.len();
    let (n, room) = if spare >= scratch.len() / 4 {
        let n = recv(stream, rbuf.spare_capacity_mut())?;
        // SAFETY: `recv` initialised the first `n` bytes of the spare
        // capacity, which directly follow `len`.
        unsafe { rbuf.set_len(rbuf.len() + n) };
        (n, spare)
    } else {
        let n = recv(stream, scratch)?;
        // SAFETY: `recv` initialised the first `n` bytes of `scratch`.
        ws.feed(unsafe { assume_init(&scratch[..n]) });
        (n, scratch.len())
    };
    Ok(match n {
        0 => Read::Eof,
        n if n < room => Read::Short,
        _ => Read::Full,
    })
}

/// Writes queued output until it is all written (`true`) or the socket is
/// full (`false`).
fn flush(stream: &mut TcpStream, ws: &mut Connection) -> io::Result<bool> {
    while ws.has_output() {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let k = ws.output_slices(&mut slices);
        // One contiguous chunk: `send` is cheaper than `writev`, which goes
        // through the VFS layer on Linux.
        let written = if k == 1 {
            rustix::net::send(&*stream, &slices[0], rustix::net::SendFlags::NOSIGNAL)
        } else {
            rustix::io::writev(&*stream, &slices[..k])
        }
        .map_err(io::Error::from);
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => ws.consume_output(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One `recv(2)`, made directly (see the `rustix` note in Cargo.toml).
fn recv(stream: &TcpStream, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    let ((got, _), _) = rustix::net::recv(stream, buf, rustix::net::RecvFlags::empty())?;
    Ok(got.len())
}

/// # Safety
/// Every byte of `buf` must be initialised.
unsafe fn assume_init(buf: &[MaybeUninit<u8>]) -> &[u8] {
    // SAFETY: the caller guarantees the bytes are initialised, and
    // `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { &*(std::ptr::from_ref(buf) as *const [u8]) }
}

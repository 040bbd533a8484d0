//! The sans-IO WebSocket connection: bytes in, events out; messages in, bytes out.
//!
//! A [`Connection`] owns no socket and no clock. The driver appends received
//! bytes with [`Connection::feed`] (or writes into [`Connection::read_buffer`]),
//! pulls [`Event`]s with [`Connection::next_event`] until it returns `None`, and
//! writes [`Connection::output_slices`] to the socket, reporting progress with
//! [`Connection::consume_output`]. Pongs and close replies are queued by the
//! codec itself.
//!
//! Memory: payloads of complete single-frame messages are split out of the read
//! buffer without copying; fragmented or compressed messages are assembled in
//! their own buffer. Limits are checked on the declared frame length, before any
//! payload is buffered. [`Connection::release_idle_buffers`] frees both buffers
//! when they are empty, so an idle connection holds no buffer at all.
//!
//! A driver that answers messages as they come can use
//! [`Connection::next_event_with`] instead: a message that arrived whole is
//! lent to it as a slice of the read buffer, with the [`Replies`] to answer
//! it, and no `Bytes` is split off for it at all.

use std::io::IoSlice;
use std::ops::ControlFlow;

use bytes::{Buf, Bytes, BytesMut};

use super::close::{BadClose, CloseFrame};
use super::frame::{FrameHead, OpCode};
use super::mask::apply_mask;
use super::message::{Event, Message, Utf8Bytes};
use super::output::Output;
use super::replies::{MessageRef, Replies};
use super::utf8::Utf8Validator;
use crate::deflate::codec::{DeflateCodec, InflateError};
use crate::deflate::{DeflateConfig, DeflateParams};
use crate::error::ProtocolError;

/// Which end of the connection this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections; sends masked frames, refuses masked ones.
    Client,
}

/// Limits and options of one connection. A connection keeps its limits in
/// 4 bytes each: a limit above 4 GiB acts as 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest accepted frame payload (declared length). Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest accepted message, after reassembly and inflation. Default 64 MiB.
    pub max_message_size: usize,
    /// Most frames in one message. Default 131072.
    pub max_fragments: usize,
    /// permessage-deflate preferences; `None` never negotiates it.
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 128 * 1024,
            deflate: Some(DeflateConfig::default()),
        }
    }
}

impl Config {
    /// Sets the frame size limit.
    pub fn max_frame_size(mut self, v: usize) -> Self {
        self.max_frame_size = v;
        self
    }

    /// Sets the message size limit.
    pub fn max_message_size(mut self, v: usize) -> Self {
        self.max_message_size = v;
        self
    }

    /// Sets the fragment count limit.
    pub fn max_fragments(mut self, v: usize) -> Self {
        self.max_fragments = v;
        self
    }

    /// Enables (Some) or disables (None) permessage-deflate negotiation.
    pub fn deflate(mut self, v: Option<DeflateConfig>) -> Self {
        self.deflate = v;
        self
    }
}

/// The limits a connection keeps (the rest of [`Config`] only matters at
/// setup), 4 bytes each: a limit above 4 GiB acts as 4 GiB.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_size: u32,
    max_message_size: u32,
    max_fragments: u32,
}

impl Limits {
    fn new(config: &Config) -> Self {
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            max_frame_size: clamp(config.max_frame_size),
            max_message_size: clamp(config.max_message_size),
            max_fragments: clamp(config.max_fragments),
        }
    }

    fn max_frame_size(self) -> usize {
        self.max_frame_size as usize
    }

    fn max_message_size(self) -> usize {
        self.max_message_size as usize
    }

    fn max_fragments(self) -> usize {
        self.max_fragments as usize
    }
}

/// Reads reserve at most this much ahead of the data actually received.
const MAX_RESERVE_AHEAD: usize = 64 * 1024;

/// [`Connection::next_event_with`] lends messages up to this size in place.
/// An answer copies what it sends from a lent message; a larger one is cheaper
/// split off the read buffer (one shared allocation) and sent by reference.
const LEND_MAX: u64 = 8 * 1024;

/// A data send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A close frame was already sent; nothing more may follow it.
    #[error("close frame already sent")]
    Closed,
    /// A control frame payload over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
}

#[derive(Debug)]
struct FrameInProgress {
    head: FrameHead,
    /// Payload bytes already unmasked (and validated or assembled).
    done: usize,
    /// A complete uncompressed message in one frame: kept in the read buffer
    /// until whole, then split out without a copy.
    whole: bool,
    /// Text validated piece by piece (the frame arrived in several reads).
    incremental: bool,
    utf8: Utf8Validator,
}

#[derive(Debug)]
struct Assembly {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    frames: usize,
    utf8: Utf8Validator,
}

/// Input that spans reads: a frame waiting for more bytes, a fragmented
/// message being assembled. One box for both, freed once both are done:
/// an idle connection holds a pointer, not their state.
#[derive(Debug, Default)]
struct Partial {
    frame: Option<FrameInProgress>,
    msg: Option<Assembly>,
}

enum Progress {
    Pending,
    Done(Option<Event>),
}

/// What [`Connection::next_event_with`] stopped at.
#[derive(Debug)]
pub enum Next<B> {
    /// An event that was not lent in place (a fragmented or compressed
    /// message, a control frame, a close).
    Event(Event),
    /// The callback broke off with this value.
    Stopped(B),
    /// Everything buffered is decoded: more input is needed.
    NeedInput,
}

/// One WebSocket connection's protocol state. See the module docs.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    limits: Limits,
    deflate: Option<Box<DeflateCodec>>,
    rbuf: BytesMut,
    partial: Option<Box<Partial>>,
    out: Output,
    close_sent: bool,
    close_received: bool,
    failed: bool,
}

impl Connection {
    /// A connection for `role` with `config`, and permessage-deflate if it was
    /// negotiated during the handshake.
    pub fn new(role: Role, config: Config, deflate: Option<DeflateParams>) -> Self {
        let codec = deflate.map(|p| {
            let dc = config.deflate.unwrap_or_default();
            Box::new(DeflateCodec::new(p, &dc, role == Role::Server))
        });
        Self {
            role,
            limits: Limits::new(&config),
            deflate: codec,
            rbuf: BytesMut::new(),
            partial: None,
            out: Output::default(),
            close_sent: false,
            close_received: false,
            failed: false,
        }
    }

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Appends received bytes. Call [`Connection::next_event`] until it returns
    /// `None` before feeding more, so that only one partial frame is buffered.
    pub fn feed(&mut self, data: &[u8]) {
        if !self.is_reading() {
            return;
        }
        if self.rbuf.is_empty() && !self.frame_waiting() {
            // Size the buffer for the frame that starts here, so a large frame
            // is not copied again when the buffer grows.
            if let Ok(Some((head, n))) = FrameHead::parse(data) {
                let whole = (n as u64).saturating_add(head.len);
                let cap = (data.len() + MAX_RESERVE_AHEAD) as u64;
                self.rbuf
                    .reserve(whole.min(cap).max(data.len() as u64) as usize);
            }
        }
        self.rbuf.extend_from_slice(data);
    }

    /// The read buffer, for drivers that read straight into it. Bytes appended
    /// here are input, exactly as if given to [`Connection::feed`].
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// Whether input is still being interpreted (no close received, no failure).
    pub fn is_reading(&self) -> bool {
        !self.failed && !self.close_received
    }

    /// Decodes the next event from buffered input; `Ok(None)` needs more input.
    ///
    /// An error fails the connection: the matching close frame is queued and
    /// all further input is ignored. The driver should flush the output and
    /// close the transport.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        while self.is_reading() {
            // A frame that arrives whole is decoded on the stack; only one
            // left waiting for more input is boxed (an idle connection
            // holds a pointer, not the frame state).
            let mut fp = match self.take_frame() {
                Some(fp) => fp,
                None => match self.read_head() {
                    Ok(Some(fp)) => fp,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(self.fail(e)),
                },
            };
            match self.advance_frame(&mut fp) {
                Ok(Progress::Pending) => {
                    self.partial.get_or_insert_default().frame = Some(fp);
                    return Ok(None);
                }
                Ok(Progress::Done(None)) => {}
                Ok(Progress::Done(Some(ev))) => return Ok(Some(ev)),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(None)
    }

    /// [`Connection::next_event`] for drivers that answer in place. Every
    /// message that arrived whole (one frame, uncompressed, complete in the
    /// read buffer, at most 8 KiB) is lent to `on_message` as a
    /// [`MessageRef`], together with the [`Replies`] to answer it, and
    /// released when it returns; no `Bytes` is split off and nothing is
    /// allocated for it. A larger message is returned as an
    /// [`Event::Message`] (split off the buffer, not copied), so that an
    /// answer can send it by reference. Returns at the first other event,
    /// when `on_message` breaks, or when more input is needed. Errors are
    /// those of [`Connection::next_event`].
    pub fn next_event_with<B>(
        &mut self,
        mut on_message: impl FnMut(MessageRef<'_>, &mut Replies<'_>) -> ControlFlow<B>,
    ) -> Result<Next<B>, ProtocolError> {
        while self.is_reading() && !self.frame_waiting() {
            let (head, n) = match FrameHead::parse(&self.rbuf) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(Next::NeedInput),
                Err(e) => return Err(self.fail(e)),
            };
            let whole = !head.opcode.is_control()
                && head.fin
                && head.opcode != OpCode::Continuation
                && !head.rsv1
                && head.len <= LEND_MAX
                && (n as u64).saturating_add(head.len) <= self.rbuf.len() as u64;
            if !whole {
                break;
            }
            if let Err(e) = self.check_head(&head) {
                return Err(self.fail(e));
            }
            let end = n + head.len as usize;
            let text = head.opcode == OpCode::Text;
            let payload = &mut self.rbuf[n..end];
            if let Some(key) = head.mask {
                apply_mask(payload, key, 0);
            }
            if text && super::utf8::validate(payload).is_err() {
                return Err(self.fail(ProtocolError::InvalidUtf8));
            }
            // SAFETY: a text payload was validated just above.
            let message = unsafe { MessageRef::new_unchecked(text, &self.rbuf[n..end]) };
            let mut replies = Replies::new(
                &mut self.out,
                self.role,
                self.deflate.as_deref_mut(),
                &mut self.close_sent,
            );
            let flow = on_message(message, &mut replies);
            self.rbuf.advance(end);
            if let ControlFlow::Break(b) = flow {
                return Ok(Next::Stopped(b));
            }
        }
        Ok(match self.next_event()? {
            Some(event) => Next::Event(event),
            None => Next::NeedInput,
        })
    }

    /// The send side on its own (see [`Replies`]).
    pub fn replies(&mut self) -> Replies<'_> {
        Replies::new(
            &mut self.out,
            self.role,
            self.deflate.as_deref_mut(),
            &mut self.close_sent,
        )
    }

    /// Whether a frame waits for more input.
    fn frame_waiting(&self) -> bool {
        self.partial.as_ref().is_some_and(|p| p.frame.is_some())
    }

    fn take_frame(&mut self) -> Option<FrameInProgress> {
        let frame = self.partial.as_mut().and_then(|p| p.frame.take());
        self.free_partial_if_done();
        frame
    }

    fn take_msg(&mut self) -> Option<Assembly> {
        let msg = self.partial.as_mut().and_then(|p| p.msg.take());
        self.free_partial_if_done();
        msg
    }

    fn free_partial_if_done(&mut self) {
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.frame.is_none() && p.msg.is_none())
        {
            self.partial = None;
        }
    }

    fn read_head(&mut self) -> Result<Option<FrameInProgress>, ProtocolError> {
        let Some((head, n)) = FrameHead::parse(&self.rbuf)? else {
            return Ok(None);
        };
        self.check_head(&head)?;
        self.rbuf.advance(n);
        let is_data = !head.opcode.is_control();
        let whole = is_data && head.fin && head.opcode != OpCode::Continuation && !head.rsv1;
        if is_data && !whole {
            self.start_or_continue_message(&head)?;
        }
        let len = head.len as usize;
        if (whole || !is_data) && self.rbuf.len() < len {
            self.rbuf
                .reserve((len - self.rbuf.len()).min(MAX_RESERVE_AHEAD));
        }
        Ok(Some(FrameInProgress {
            head,
            done: 0,
            whole,
            incremental: false,
            utf8: Utf8Validator::default(),
        }))
    }

    fn check_head(&self, head: &FrameHead) -> Result<(), ProtocolError> {
        if head.rsv23
            || (head.rsv1
                && (self.deflate.is_none()
                    || head.opcode.is_control()
                    || head.opcode == OpCode::Continuation))
        {
            return Err(ProtocolError::ReservedBits);
        }
        if head.mask.is_some() != (self.role == Role::Server) {
            return Err(ProtocolError::BadMasking);
        }
        if head.opcode.is_control() {
            if !head.fin || head.len > 125 {
                return Err(ProtocolError::BadControlFrame);
            }
            return Ok(());
        }
        if head.len > self.limits.max_frame_size() as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: head.len,
                limit: self.limits.max_frame_size(),
            });
        }
        let msg = self.partial.as_ref().and_then(|p| p.msg.as_ref());
        let in_message = msg.is_some();
        if (head.opcode == OpCode::Continuation) != in_message {
            return Err(ProtocolError::BadFragmentation);
        }
        let so_far = msg.map_or(0, |m| m.data.len() as u64);
        let compressed = head.rsv1 || msg.is_some_and(|m| m.compressed);
        if !compressed && so_far + head.len > self.limits.max_message_size() as u64 {
            return Err(ProtocolError::MessageTooBig {
                limit: self.limits.max_message_size(),
            });
        }
        Ok(())
    }

    fn start_or_continue_message(&mut self, head: &FrameHead) -> Result<(), ProtocolError> {
        let limit = self.limits.max_fragments();
        let msg = self
            .partial
            .get_or_insert_default()
            .msg
            .get_or_insert_with(|| Assembly {
                text: head.opcode == OpCode::Text,
                compressed: head.rsv1,
                data: Vec::new(),
                frames: 0,
                utf8: Utf8Validator::default(),
            });
        msg.frames += 1;
        if msg.frames > limit {
            return Err(ProtocolError::TooManyFragments { limit });
        }
        if !msg.compressed {
            // The declared total is within limits (checked): reserve what has arrived.
            let want = (head.len as usize).min(MAX_RESERVE_AHEAD);
            msg.data.reserve(want);
        }
        Ok(())
    }

    fn advance_frame(&mut self, fp: &mut FrameInProgress) -> Result<Progress, ProtocolError> {
        let len = fp.head.len as usize;
        if fp.head.opcode.is_control() {
            if self.rbuf.len() < len {
                return Ok(Progress::Pending);
            }
            let mut payload = self.rbuf.split_to(len);
            if let Some(key) = fp.head.mask {
                apply_mask(&mut payload, key, 0);
            }
            return self
                .on_control(fp.head.opcode, payload.freeze())
                .map(Progress::Done);
        }
        if fp.whole {
            return self.advance_whole(fp);
        }
        self.advance_fragment(fp)
    }

    fn advance_whole(&mut self, fp: &mut FrameInProgress) -> Result<Progress, ProtocolError> {
        let len = fp.head.len as usize;
        let text = fp.head.opcode == OpCode::Text;
        let avail = self.rbuf.len().min(len);
        if avail > fp.done {
            let fresh = &mut self.rbuf[fp.done..avail];
            if let Some(key) = fp.head.mask {
                apply_mask(fresh, key, fp.done);
            }
            if text && (avail < len || fp.incremental) {
                // Fail fast: validate each piece of a text frame as it arrives.
                fp.incremental = true;
                fp.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            fp.done = avail;
        }
        if avail < len {
            let missing = len - self.rbuf.len();
            if self.rbuf.capacity() - self.rbuf.len() < missing.min(4096) {
                self.rbuf.reserve(missing.min(MAX_RESERVE_AHEAD));
            }
            return Ok(Progress::Pending);
        }
        let payload = self.rbuf.split_to(len).freeze();
        let message = if text {
            if fp.incremental {
                fp.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            } else {
                super::utf8::validate(&payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Ok(Progress::Done(Some(Event::Message(message))))
    }

    fn advance_fragment(&mut self, fp: &mut FrameInProgress) -> Result<Progress, ProtocolError> {
        let len = fp.head.len as usize;
        let limit = self.limits.max_message_size();
        let avail = self.rbuf.len().min(len - fp.done);
        let chunk = &mut self.rbuf[..avail];
        if let Some(key) = fp.head.mask {
            apply_mask(chunk, key, fp.done);
        }
        let Some(msg) = self.partial.as_mut().and_then(|p| p.msg.as_mut()) else {
            return Err(ProtocolError::BadFragmentation);
        };
        if msg.compressed {
            let codec = self.deflate.as_mut().ok_or(ProtocolError::ReservedBits)?;
            let before = msg.data.len();
            codec
                .inflate(chunk, &mut msg.data, limit)
                .map_err(|e| inflate_error(e, limit))?;
            if msg.text {
                msg.utf8
                    .feed(&msg.data[before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        } else {
            if msg.text {
                msg.utf8
                    .feed(chunk)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            msg.data.extend_from_slice(chunk);
        }
        self.rbuf.advance(avail);
        fp.done += avail;
        if fp.done < len {
            return Ok(Progress::Pending);
        }
        if !fp.head.fin {
            return Ok(Progress::Done(None));
        }
        let Some(mut msg) = self.take_msg() else {
            return Err(ProtocolError::BadFragmentation);
        };
        if msg.compressed {
            let codec = self.deflate.as_mut().ok_or(ProtocolError::ReservedBits)?;
            let before = msg.data.len();
            codec
                .finish_message(&mut msg.data, limit)
                .map_err(|e| inflate_error(e, limit))?;
            if msg.text {
                msg.utf8
                    .feed(&msg.data[before..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        let payload = Bytes::from(msg.data);
        let message = if msg.text {
            msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        };
        Ok(Progress::Done(Some(Event::Message(message))))
    }

    fn on_control(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
    ) -> Result<Option<Event>, ProtocolError> {
        Ok(Some(match opcode {
            OpCode::Ping => {
                self.replies().pong(payload.clone());
                Event::Ping(payload)
            }
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let frame = CloseFrame::parse(&payload).map_err(|e| match e {
                    BadClose::Protocol => ProtocolError::BadClose,
                    BadClose::InvalidUtf8 => ProtocolError::InvalidUtf8,
                })?;
                self.close_received = true;
                self.rbuf = BytesMut::new();
                let reply = frame.as_ref().map(|f| CloseFrame {
                    code: f.code,
                    reason: String::new(),
                });
                self.replies().close(reply);
                Event::Close(frame)
            }
        }))
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.replies()
            .close(Some(CloseFrame::new(e.close_code(), &e.to_string())));
        self.failed = true;
        self.rbuf = BytesMut::new();
        self.partial = None;
        e
    }

    // ---- sending ----

    /// Queues a message, compressing it when permessage-deflate is on and the
    /// message is over the threshold.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.replies().send(message)
    }

    /// Queues a text or binary message from its payload.
    pub fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        self.replies().send_data(opcode, payload)
    }

    /// Queues one raw frame of a fragmented message (never compressed): the
    /// first with `Text`/`Binary`, the rest with `Continuation`, the last with
    /// `fin`. Control frames may be sent between fragments.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.replies().fragment(opcode, fin, payload)
    }

    /// Queues a ping.
    pub fn send_ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.replies().control(OpCode::Ping, payload)
    }

    /// Queues a pong (unsolicited pongs are allowed as a heartbeat).
    pub fn send_pong(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.replies().control(OpCode::Pong, payload)
    }

    /// Starts the close handshake (or answers one). Idempotent.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        self.replies().close(frame);
    }

    /// Queues an already-encoded server frame (for fan-out: frame once, share
    /// the bytes). Only valid for the server role and uncompressed frames.
    pub fn send_encoded(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.replies().encoded(frame)
    }

    // ---- output for the driver ----

    /// Whether bytes are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes waiting to be written.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Fills `dst` with the pending output, in order; returns the slice count.
    pub fn output_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(dst)
    }

    /// The first pending chunk, for streams without vectored writes.
    pub fn output_chunk(&self) -> &[u8] {
        self.out.first_chunk()
    }

    /// Marks `n` bytes of output as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Frees empty read and write buffers; call before waiting on the socket.
    pub fn release_idle_buffers(&mut self) {
        // Also at capacity 0: a buffer sized exactly for the last frame is
        // empty and full once the frame is split off, and still shares that
        // frame's allocation (and its reference-count header) until dropped.
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        }
        self.out.release_if_empty();
    }

    /// Bytes of read and write buffer held (allocated, used or not). A driver
    /// of a busy connection can keep small buffers between messages, to
    /// avoid an allocation per message, and free them once it goes idle.
    pub fn buffer_capacity(&self) -> usize {
        self.rbuf.capacity() + self.out.capacity()
    }

    // ---- state ----

    /// Whether our close frame has been queued.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the peer's close frame has arrived.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether the connection failed on a protocol error.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether nothing more will be read: close exchanged or failed.
    pub fn is_done_reading(&self) -> bool {
        !self.is_reading()
    }
}

fn inflate_error(e: InflateError, limit: usize) -> ProtocolError {
    match e {
        InflateError::Corrupt => ProtocolError::BadCompression,
        InflateError::TooBig => ProtocolError::MessageTooBig { limit },
    }
}

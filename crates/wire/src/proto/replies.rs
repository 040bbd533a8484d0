//! The send side of a [`Connection`](super::connection::Connection), borrowable
//! on its own.
//!
//! [`Replies`] encodes frames into the connection's output queue. The
//! connection's own send methods go through it, and
//! [`Connection::next_event_with`](super::connection::Connection::next_event_with)
//! hands it out next to a [`MessageRef`] lent from the read buffer, so a
//! message can be answered before it is released: no `Bytes` split, no
//! reference count, no allocation per message.

use bytes::{Bytes, BytesMut};

use super::close::CloseFrame;
use super::connection::{Role, SendError};
use super::frame::{FrameHead, MAX_HEAD_LEN, OpCode};
use super::mask::apply_mask;
use super::message::Message;
use super::output::{COALESCE_MAX, Output};
use crate::deflate::codec::DeflateCodec;

/// A complete data message lent in place: a slice of the read buffer,
/// unmasked, its UTF-8 validated if it is text. It is released when the
/// callback it was lent to returns.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    text: bool,
    payload: &'a [u8],
}

impl<'a> MessageRef<'a> {
    /// # Safety
    /// A text payload must be valid UTF-8.
    pub(crate) unsafe fn new_unchecked(text: bool, payload: &'a [u8]) -> Self {
        debug_assert!(!text || std::str::from_utf8(payload).is_ok());
        Self { text, payload }
    }

    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// `Text` or `Binary`.
    pub fn opcode(&self) -> OpCode {
        if self.text {
            OpCode::Text
        } else {
            OpCode::Binary
        }
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&'a str> {
        // SAFETY: a text `MessageRef` is made only from validated UTF-8
        // (`new_unchecked`'s contract, and `Message::Text` is `Utf8Bytes`).
        self.text
            .then(|| unsafe { std::str::from_utf8_unchecked(self.payload) })
    }
}

impl Message {
    /// A view of this message, as [`Connection::next_event_with`] lends one.
    ///
    /// [`Connection::next_event_with`]: super::connection::Connection::next_event_with
    pub fn as_message_ref(&self) -> MessageRef<'_> {
        match self {
            // SAFETY: `Utf8Bytes` holds valid UTF-8.
            Message::Text(t) => unsafe { MessageRef::new_unchecked(true, t.as_bytes()) },
            Message::Binary(b) => MessageRef {
                text: false,
                payload: b,
            },
        }
    }
}

/// Queues frames on a connection. See the module docs.
#[derive(Debug)]
pub struct Replies<'a> {
    out: &'a mut Output,
    role: Role,
    deflate: Option<&'a mut DeflateCodec>,
    close_sent: &'a mut bool,
}

/// A payload to queue: shared (a large one is queued by reference) or
/// borrowed (always copied next to its header).
enum Payload<'p> {
    Shared(Bytes),
    Borrowed(&'p [u8]),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Borrowed(s) => s,
        }
    }
}

impl<'a> Replies<'a> {
    pub(crate) fn new(
        out: &'a mut Output,
        role: Role,
        deflate: Option<&'a mut DeflateCodec>,
        close_sent: &'a mut bool,
    ) -> Self {
        Self {
            out,
            role,
            deflate,
            close_sent,
        }
    }

    /// Queues a message, compressing it when permessage-deflate is on and the
    /// message is over the threshold.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(t) => self.send_data(OpCode::Text, t.into_bytes()),
            Message::Binary(b) => self.send_data(OpCode::Binary, b),
        }
    }

    /// Queues a text or binary message from its payload.
    pub fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        self.data(opcode, Payload::Shared(payload))
    }

    /// Queues a text or binary message from a borrowed payload (copied into
    /// the output queue). A `Text` payload must be valid UTF-8.
    pub fn send_slice(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.data(opcode, Payload::Borrowed(payload))
    }

    /// Queues a text or binary message whose payload is `parts` joined: a
    /// small one is copied into the output queue part by part, without being
    /// joined first; a large or compressed one is joined once. A `Text`
    /// payload must be valid UTF-8.
    pub fn send_parts(&mut self, opcode: OpCode, parts: &[&[u8]]) -> Result<(), SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let compress = self.deflate.as_deref().is_some_and(|c| len >= c.threshold);
        if compress || self.role == Role::Client || *self.close_sent || len > COALESCE_MAX {
            // Joined once into a buffer of its own (queued by reference when
            // large, see `Output::push_borrowed`).
            let mut joined = BytesMut::with_capacity(len);
            for part in parts {
                joined.extend_from_slice(part);
            }
            return self.send_data(opcode, joined.freeze());
        }
        debug_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
        let head = FrameHead {
            fin: true,
            rsv1: false,
            rsv23: false,
            opcode,
            mask: None,
            len: len as u64,
        };
        let mut hbuf = [0u8; MAX_HEAD_LEN];
        let n = head.encode(&mut hbuf);
        self.out.reserve(n + len);
        self.out.push_slice(&hbuf[..n]);
        for part in parts {
            self.out.push_slice(part);
        }
        Ok(())
    }

    fn data(&mut self, opcode: OpCode, payload: Payload<'_>) -> Result<(), SendError> {
        if *self.close_sent {
            return Err(SendError::Closed);
        }
        debug_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
        let compressed = match self.deflate.as_deref_mut() {
            Some(codec) if payload.as_slice().len() >= codec.threshold => Some(match &payload {
                Payload::Shared(b) => codec.compress_shared(b),
                Payload::Borrowed(s) => Bytes::from(codec.compress(s)),
            }),
            _ => None,
        };
        match compressed {
            Some(c) => self.encode(true, true, opcode, Payload::Shared(c)),
            None => self.encode(true, false, opcode, payload),
        }
        Ok(())
    }

    /// Queues one raw frame of a fragmented message (never compressed).
    pub(crate) fn fragment(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if *self.close_sent {
            return Err(SendError::Closed);
        }
        self.encode(fin, false, opcode, Payload::Shared(payload));
        Ok(())
    }

    /// Queues a ping or a pong.
    pub(crate) fn control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if *self.close_sent {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong);
        }
        self.encode(true, false, opcode, Payload::Shared(payload));
        Ok(())
    }

    /// Queues a pong answering a ping (nothing once our close is sent).
    pub(crate) fn pong(&mut self, payload: Bytes) {
        if !*self.close_sent {
            self.encode(true, false, OpCode::Pong, Payload::Shared(payload));
        }
    }

    /// Starts the close handshake (or answers one). Idempotent.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        if !*self.close_sent {
            self.queue_close(frame);
        }
    }

    fn queue_close(&mut self, frame: Option<CloseFrame>) {
        let payload = frame.map_or_else(Bytes::new, |f| f.to_payload());
        self.encode(true, false, OpCode::Close, Payload::Shared(payload));
        *self.close_sent = true;
    }

    /// Queues an already-encoded server frame.
    pub(crate) fn encoded(&mut self, frame: Bytes) -> Result<(), SendError> {
        if *self.close_sent {
            return Err(SendError::Closed);
        }
        debug_assert_eq!(self.role, Role::Server);
        self.out.push_bytes(frame);
        Ok(())
    }

    fn encode(&mut self, fin: bool, rsv1: bool, opcode: OpCode, payload: Payload<'_>) {
        let mask = (self.role == Role::Client).then(rand::random::<[u8; 4]>);
        let data = payload.as_slice();
        let head = FrameHead {
            fin,
            rsv1,
            rsv23: false,
            opcode,
            mask,
            len: data.len() as u64,
        };
        let mut hbuf = [0u8; MAX_HEAD_LEN];
        let n = head.encode(&mut hbuf);
        // A client's frame is masked in the buffer, whatever its size.
        self.out.reserve(match mask {
            Some(_) => n + data.len(),
            None => Output::coalesced_len(n, data.len()),
        });
        self.out.push_slice(&hbuf[..n]);
        match (mask, payload) {
            (None, Payload::Shared(b)) => self.out.push_bytes(b),
            (None, Payload::Borrowed(s)) => self.out.push_borrowed(s),
            (Some(key), payload) => {
                let data = payload.as_slice();
                let tail = self.out.tail_mut(data.len());
                let start = tail.len();
                tail.extend_from_slice(data);
                apply_mask(&mut tail[start..], key, 0);
            }
        }
    }
}

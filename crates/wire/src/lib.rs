//! # switchboard-wire: the WebSocket layer
//!
//! An RFC 6455 WebSocket implementation for both roles, with permessage-deflate
//! (RFC 7692). It is the bottom layer of switchboard: it knows frames,
//! messages and the handshake, and nothing of rooms or protocols above.
//!
//! ## Model
//!
//! The core is sans-IO: [`Connection`] takes received bytes and yields
//! [`Event`]s, takes [`Message`]s and yields bytes to write. It has no socket,
//! no clock and no task, so it is deterministic and tested byte by byte
//! (including input that arrives one byte at a time). [`handshake`] validates
//! and produces the opening handshake on both sides in the same style.
//!
//! A driver that answers messages as they come can take them in place
//! instead: [`Connection::next_event_with`] lends each message that arrived
//! whole as a [`MessageRef`] (a slice of the read buffer) with [`Replies`]
//! (the send side) to answer it, so nothing is split off, counted or
//! allocated per message. `switchboard echo` works this way.
//!
//! The `tokio` feature (default) adds thin drivers in [`io`]: a
//! [`io::WebSocket`] over any `AsyncRead + AsyncWrite` stream, client
//! connection for `ws://` and `wss://` (rustls), and server TLS from PEM files.
//!
//! ## Guarantees
//!
//! * Client frames must be masked, server frames must not be.
//! * Control frames are ≤ 125 bytes and never fragmented; they may interleave
//!   with the fragments of a message. Pings are answered automatically.
//! * Text is validated as UTF-8 as it arrives, failing on the first invalid
//!   byte even inside a frame that is not complete yet (close 1007).
//! * Limits (frame size, message size, fragment count) are checked on the
//!   declared length before anything is buffered (close 1009 / 1008); inflated
//!   bytes count against the message limit, so a deflate bomb stops at it.
//! * Close codes are validated (1000–1003, 1007–1011, 3000–4999) and the close
//!   handshake is answered with the peer's code.
//! * An idle connection holds no read or write buffer and no zlib state.

pub mod deflate;
pub mod error;
pub mod handshake;
pub mod proto;

#[cfg(feature = "tokio")]
pub mod io;

pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, ProtocolError};
pub use proto::close::{CloseCode, CloseFrame};
pub use proto::connection::{Config, Connection, Next, Role, SendError};
pub use proto::frame::OpCode;
pub use proto::message::{Event, Message, Utf8Bytes};
pub use proto::replies::{MessageRef, Replies};

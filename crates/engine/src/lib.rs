//! # switchboard-engine: Engine.IO v4
//!
//! The transport layer under Socket.IO: packets (`open`, `close`, `ping`,
//! `pong`, `message`, `upgrade`, `noop`), their text and binary encodings, and
//! the HTTP long-polling payload format (packets joined by the record
//! separator `\x1e`, binary as `b` + base64), and [`Session`]: one session's
//! heartbeat, polling outbox and upgrade rules. Sans-IO: packets and `now` in,
//! packets and deadlines out.
//!
//! [`server`] drives sessions over hyper: the long-polling and WebSocket
//! transports, the upgrade, CORS and the heartbeat sweep.

mod outbox;
pub mod packet;
pub mod payload;
pub mod server;
pub mod session;
mod stamp;

pub use packet::{Handshake, Packet, PacketError};
pub use payload::{decode_payload, encode_payload};
pub use session::{CloseReason, Inbound, Session, SessionConfig, Tap, Transport};

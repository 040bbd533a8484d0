//! # switchboard-engine: Engine.IO v4
//!
//! The transport layer under Socket.IO: packets (`open`, `close`, `ping`,
//! `pong`, `message`, `upgrade`, `noop`), their text and binary encodings, and
//! the HTTP long-polling payload format (packets joined by the record
//! separator `\x1e`, binary as `b` + base64). Sans-IO: bytes and strings in,
//! typed packets out, and back.

pub mod packet;
pub mod payload;

pub use packet::{Handshake, Packet, PacketError};
pub use payload::{decode_payload, encode_payload};

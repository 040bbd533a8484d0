//! # switchboard-socketio: Socket.IO v5
//!
//! The Socket.IO packet layer over Engine.IO: `CONNECT`, `DISCONNECT`,
//! `EVENT`, `ACK`, `CONNECT_ERROR` and their binary forms, decoded with the
//! reference parser's validation (namespaces, ack ids, event names, reserved
//! names) and hard limits on binary attachments.
//!
//! Binary data is kept as the protocol carries it: the JSON keeps its
//! `{"_placeholder":true,"num":N}` objects, validated against the attachments
//! that follow, and the attachments ride alongside as shared `Bytes`. A relay
//! can forward a binary event without rebuilding it.

//!
//! [`server`] is the server: namespaces (static and dynamic), middlewares,
//! events and acks both ways, rooms, broadcast operators and connection
//! state recovery, mountable in any hyper or axum application.

pub mod packet;
pub mod server;

pub use packet::{Decoded, Limits, Packet, PacketError, PacketKind, Reassembly};

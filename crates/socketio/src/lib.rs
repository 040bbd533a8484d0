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

pub mod packet;

pub use packet::{Decoded, Limits, Packet, PacketError, PacketKind, Reassembly};

//! # switchboard-hub: the protocol-neutral core
//!
//! Rooms, presence and history, written once and exposed by every protocol
//! adapter (Socket.IO relay, native protocol, admin API). This crate knows no
//! wire format: messages are opaque `Bytes` with an event name.
//!
//! [`log::RoomLog`] is one room's history: an `epoch` (random id of the log's
//! lifetime) and monotonically increasing offsets, bounded by count and age,
//! answering "everything after `(epoch, offset)`" with either the missed
//! entries or "not recovered" and the current position (DESIGN.md §5).

pub mod log;

pub use log::{Entry, LogLimits, Position, Recovery, RoomLog};

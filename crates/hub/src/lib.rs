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

//!
//! Logs live in a [`LogStore`]: [`MemoryStore`] (the default),
//! [`DiskStore`] (`--data-dir`, survives restarts with the same epochs) or
//! [`RedisStore`] (`--redis`, shared by the nodes of a [`Cluster`]).
//!
//! [`Hub`] holds every room: its log, its members and who is present, and
//! fans publications out to the protocol adapters ([`Sink`]s), each of which
//! delivers to its own connections. Presence is per user: the first
//! connection of a user in a room is a join, the last one leaving a leave.

pub mod cluster;
pub mod disk;
pub mod hub;
pub mod log;
pub mod presence;
pub mod remote;
pub mod store;
pub mod user_id;
mod users;

pub use cluster::{Cluster, ClusterConfig, RedisStore};
pub use disk::DiskStore;
pub use hub::{ConnId, Hub, Joined, Publication, RoomSummary, Sink};
pub use log::{Entry, LogLimits, Position, Recovery, RoomLog};
pub use presence::{PresenceChange, Present, UserStatus};
pub use remote::{LocalPresence, RemoteView};
pub use store::{LogStore, MemoryStore, NewEntry, StoreError};

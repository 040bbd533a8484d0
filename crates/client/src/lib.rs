//! # switchboard-client: connections that come back without losing anything
//!
//! The client half of what DESIGN.md §4–§5 promise. Its pieces are sans-IO
//! (plain state machines with their own tests) so that the native-protocol
//! and Socket.IO drivers share them:
//!
//! * [`backoff::Backoff`]: exponential delays with full jitter between
//!   reconnection attempts, unlimited or capped;
//! * [`rotation::Rotation`]: the primary URL and its backups, moving on
//!   after K failures in a row on one;
//! * [`recovery::Recovery`]: per room, the last `(epoch, offset)` delivered,
//!   so a reconnect rejoins with `since` and every message is delivered
//!   exactly once and in order (duplicates dropped by offset).
//!
//! [`native::Client`] puts them together for the native protocol and
//! [`socketio::SioClient`] for Socket.IO (WebSocket, or long-polling when
//! the WebSocket is refused), each over one tokio task. [`files`] adds file
//! transfer with per-chunk acknowledgements and resume to the native client.

pub mod backoff;
pub mod files;
pub mod native;
pub mod recovery;
pub mod rotation;
pub mod socketio;

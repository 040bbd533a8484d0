//! Who is online: users, their connections, and when they were last seen.

use std::time::SystemTime;

use bytes::Bytes;

/// A user present in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// The user id.
    pub user: String,
    /// The user's info (JSON text from the token or the backend), if any.
    pub info: Option<Bytes>,
    /// The user's connections in the room.
    pub connections: usize,
    /// When the user's first current connection joined the room.
    pub since: SystemTime,
}

/// A user's status across the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    /// Whether any connection is open.
    pub online: bool,
    /// Open connections.
    pub connections: usize,
    /// The last time the user was seen: now while online, else the moment
    /// the last connection ended.
    pub last_seen: SystemTime,
}

/// A presence change in a room, sent to members who asked for them (never
/// to the user it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The room.
    pub room: String,
    /// The user.
    pub user: String,
    /// `true`: the user's first connection joined; `false`: the last one left.
    pub joined: bool,
}

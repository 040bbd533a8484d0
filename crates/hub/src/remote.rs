//! Presence on the other nodes of a cluster, as this node last read it.
//!
//! A node writes its own presence ([`LocalPresence`]) to shared storage and
//! reads the other nodes' back into one [`RemoteView`]; the hub merges that
//! view into every presence answer and turns its changes into presence
//! events for local members (see [`crate::Hub::set_remote`]). Without a
//! cluster the view stays empty.

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;

/// A user present in a room: `(user, connections, since)`.
pub type RoomUser = (String, usize, SystemTime);

/// This node's presence: who is in which room, and who is online.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPresence {
    /// Per room: `(user, connections, since)`.
    pub rooms: Vec<(String, Vec<RoomUser>)>,
    /// Per online user: `(user, connections, info)`.
    pub users: Vec<(String, usize, Option<Bytes>)>,
}

/// Presence on every other live node, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteView {
    /// Per room, per user: connections and since (the earliest).
    pub rooms: HashMap<String, HashMap<String, (usize, SystemTime)>>,
    /// Per online user: connections and info.
    pub users: HashMap<String, (usize, Option<Bytes>)>,
    /// Users seen online elsewhere before and offline now: when they were
    /// last seen.
    pub last_seen: HashMap<String, SystemTime>,
}

impl RemoteView {
    /// Adds one node's presence.
    pub fn add(&mut self, node: LocalPresence) {
        for (room, users) in node.rooms {
            let here = self.rooms.entry(room).or_default();
            for (user, connections, since) in users {
                let e = here.entry(user).or_insert((0, since));
                e.0 += connections;
                e.1 = e.1.min(since);
            }
        }
        for (user, connections, info) in node.users {
            let e = self.users.entry(user).or_insert((0, None));
            e.0 += connections;
            if info.is_some() {
                e.1 = info;
            }
        }
    }

    /// Whether `user` is present in `room` on another node.
    pub fn in_room(&self, room: &str, user: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.contains_key(user))
    }
}

//! The users of one node: their open connections, when each was last seen,
//! and the `info` some of them carry.
//!
//! One record per user, so it is kept to 32 bytes: the id's shared text
//! and its offset, the connection count and the last-seen time sit side by
//! side in one hash table slot (a `HashMap<UserId, _>` would pad the key
//! and the value apart to 48). The rarely set `info` lives in a table of
//! its own.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::user_id::UserId;

/// A user of this node: 32 bytes.
#[derive(Debug)]
struct User {
    /// The id's text (see [`UserId`]): the id starts at `start`.
    text: Arc<str>,
    start: u32,
    connections: u32,
    /// Nanoseconds since the Unix epoch (exact for any time from 1970 to
    /// 2554).
    last_seen_ns: u64,
}

impl User {
    fn id(&self) -> &str {
        self.text.get(self.start as usize..).unwrap_or_default()
    }

    fn seen_now(&mut self) {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_seen_ns = u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX);
    }

    fn last_seen(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.last_seen_ns)
    }
}

/// What a node knows of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Open connections.
    pub(crate) connections: usize,
    /// Now while online, else when the last connection ended.
    pub(crate) last_seen: SystemTime,
}

/// The users table.
#[derive(Debug, Default)]
pub(crate) struct Users {
    table: HashTable<User>,
    hasher: RandomState,
    /// The `info` of the users that have one.
    info: HashMap<UserId, Bytes>,
}

impl Users {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn find(&self, id: &str) -> Option<&User> {
        self.table.find(self.hash(id), |u| u.id() == id)
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut User> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |u| u.id() == id)
    }

    /// A connection of `user` opened (with the user's `info`, which replaces
    /// any earlier one); returns whether it is the user's only one.
    pub(crate) fn connect(&mut self, user: UserId, info: Option<Bytes>) -> bool {
        let hash = self.hash(&user);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |u| u.id() == user.as_str(),
            |u| hasher.hash_one(u.id()),
        );
        let u = entry
            .or_insert_with(|| User {
                text: user.text().clone(),
                start: user.start(),
                connections: 0,
                last_seen_ns: 0,
            })
            .into_mut();
        u.connections = u.connections.saturating_add(1);
        u.seen_now();
        let first = u.connections == 1;
        if let Some(info) = info {
            self.info.insert(user, info);
        }
        first
    }

    /// A connection of `user` closed; returns whether it was the user's
    /// last one (the user went offline).
    pub(crate) fn disconnect(&mut self, user: &str) -> bool {
        match self.find_mut(user) {
            Some(u) if u.connections > 0 => {
                u.connections -= 1;
                u.seen_now();
                u.connections == 0
            }
            _ => false,
        }
    }

    /// Forgets `user` if it is offline.
    pub(crate) fn forget(&mut self, user: &str) {
        let hash = self.hash(user);
        if let Ok(entry) = self.table.find_entry(hash, |u| u.id() == user)
            && entry.get().connections == 0
        {
            entry.remove();
            self.info.remove(user);
        }
    }

    /// The connections and last-seen time of `user`, if known.
    pub(crate) fn get(&self, user: &str) -> Option<Seen> {
        self.find(user).map(|u| Seen {
            connections: u.connections as usize,
            last_seen: u.last_seen(),
        })
    }

    /// The `info` of `user`, if it gave one.
    pub(crate) fn info(&self, user: &str) -> Option<Bytes> {
        self.info.get(user).cloned()
    }

    /// The ids of the users with a connection open.
    pub(crate) fn online(&self) -> impl Iterator<Item = &str> {
        self.table
            .iter()
            .filter(|u| u.connections > 0)
            .map(User::id)
    }

    /// The users with a connection open: id, connections, info.
    pub(crate) fn online_now(&self) -> Vec<(String, usize, Option<Bytes>)> {
        self.table
            .iter()
            .filter(|u| u.connections > 0)
            .map(|u| (u.id().to_owned(), u.connections as usize, self.info(u.id())))
            .collect()
    }

    /// Open connections, all users together.
    pub(crate) fn connections(&self) -> usize {
        self.table.iter().map(|u| u.connections as usize).sum()
    }

    /// Users known (online or not).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_32_bytes() {
        assert_eq!(std::mem::size_of::<User>(), 32);
    }

    #[test]
    fn connections_count_up_and_down() {
        let mut users = Users::default();
        assert!(users.connect("alice".into(), None));
        assert!(!users.connect("alice".into(), None));
        assert!(users.connect("bob".into(), None));
        assert_eq!(users.connections(), 3);
        let mut online: Vec<_> = users.online().collect();
        online.sort_unstable();
        assert_eq!(online, ["alice", "bob"]);
        assert!(!users.disconnect("alice"));
        assert!(users.disconnect("alice"));
        assert!(!users.disconnect("alice"), "no connection left");
        assert!(!users.disconnect("carol"), "never seen");
        assert_eq!(users.get("alice").map(|s| s.connections), Some(0));
        assert_eq!(users.online().collect::<Vec<_>>(), ["bob"]);
        assert_eq!(users.get("carol"), None);
    }

    #[test]
    fn last_seen_is_the_last_change() {
        let mut users = Users::default();
        let before = SystemTime::now();
        users.connect("alice".into(), None);
        let at_connect = users.get("alice").unwrap().last_seen;
        assert!(at_connect >= before);
        std::thread::sleep(Duration::from_millis(2));
        users.disconnect("alice");
        assert!(users.get("alice").unwrap().last_seen > at_connect);
    }

    #[test]
    fn an_id_lent_by_a_personal_room_is_found_by_the_id_alone() {
        let mut users = Users::default();
        let room: Arc<str> = Arc::from("user:alice");
        users.connect(UserId::after(room, "user:").unwrap(), None);
        assert_eq!(users.get("alice").map(|s| s.connections), Some(1));
        assert!(!users.connect("alice".into(), None), "the same user");
        assert_eq!(users.len(), 1);
    }

    #[test]
    fn info_is_kept_until_the_user_is_forgotten() {
        let mut users = Users::default();
        users.connect("alice".into(), Some(Bytes::from_static(b"{\"n\":1}")));
        users.connect("alice".into(), None);
        assert_eq!(users.info("alice").as_deref(), Some(&b"{\"n\":1}"[..]));
        users.connect("alice".into(), Some(Bytes::from_static(b"{\"n\":2}")));
        assert_eq!(users.info("alice").as_deref(), Some(&b"{\"n\":2}"[..]));
        users.forget("alice");
        assert_eq!(users.len(), 1, "still online: kept");
        for _ in 0..3 {
            users.disconnect("alice");
        }
        users.forget("alice");
        assert_eq!(users.len(), 0);
        assert_eq!(users.info("alice"), None);
        assert_eq!(users.get("alice"), None);
    }

    #[test]
    fn many_users_survive_the_table_growing() {
        let mut users = Users::default();
        for i in 0..5_000 {
            users.connect(format!("u{i}").into(), None);
        }
        for i in (0..5_000).step_by(2) {
            users.disconnect(&format!("u{i}"));
            users.forget(&format!("u{i}"));
        }
        assert_eq!(users.len(), 2_500);
        assert_eq!(users.connections(), 2_500);
        assert!(users.get("u1").is_some() && users.get("u2").is_none());
    }
}

//! The users of one node: their open connections, when each was last seen,
//! and the `info` some of them carry.
//!
//! One record per user, so it is kept to 24 bytes: the id's shared text,
//! and one word that holds the id's offset in that text and either the
//! connection count (online) or the last-seen time (offline: while a user
//! is online, "last seen" is now). A `HashMap<UserId, _>` would pad the key
//! and the value apart to 48. The rarely set `info` lives in a table of its
//! own.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::user_id::UserId;

/// A user of this node: 24 bytes.
#[derive(Debug)]
struct User {
    /// The id's text (see [`UserId`]): the id starts at [`Word::start`].
    text: Arc<str>,
    word: Word,
}

impl User {
    /// A record for `user`, online with no connection counted yet.
    fn new(user: &UserId) -> Self {
        match u8::try_from(user.start()) {
            Ok(start) => Self {
                text: user.text().clone(),
                word: Word::online(start, 0),
            },
            // An id lent by a string with a prefix this long keeps its own copy.
            Err(_) => Self {
                text: Arc::from(user.as_str()),
                word: Word::online(0, 0),
            },
        }
    }

    fn id(&self) -> &str {
        self.text.get(self.word.start()..).unwrap_or_default()
    }

    fn connections(&self) -> u32 {
        self.word.connections()
    }
}

/// A user's offset, state and count or time in one `u64`: bits 56–63 hold
/// where the id starts in its text, bit 55 is set while the user is online,
/// and bits 0–54 hold the open connections (online) or the microseconds
/// from the Unix epoch to the moment the last one ended (offline; room for
/// times up to the year 3111).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u64);

impl Word {
    const START_SHIFT: u32 = 56;
    const ONLINE: u64 = 1 << 55;
    const VALUE: u64 = Self::ONLINE - 1;

    fn online(start: u8, connections: u32) -> Self {
        Self(u64::from(start) << Self::START_SHIFT | Self::ONLINE | u64::from(connections))
    }

    /// Offline since `at` (times before the epoch count as the epoch, times
    /// past the field's range as its end).
    fn offline(start: u8, at: SystemTime) -> Self {
        let us = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self(u64::from(start) << Self::START_SHIFT | us.min(Self::VALUE))
    }

    fn start(self) -> usize {
        (self.0 >> Self::START_SHIFT) as usize
    }

    fn is_online(self) -> bool {
        self.0 & Self::ONLINE != 0
    }

    /// Open connections (0 offline).
    fn connections(self) -> u32 {
        if self.is_online() {
            (self.0 & Self::VALUE) as u32
        } else {
            0
        }
    }

    /// When the last connection ended; `None` while online.
    fn offline_since(self) -> Option<SystemTime> {
        (!self.is_online())
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_micros(self.0 & Self::VALUE))
    }

    /// One more connection: the user is (back) online.
    fn connected(self) -> Self {
        let start = self.start() as u8;
        Self::online(start, self.connections().saturating_add(1))
    }

    /// One connection fewer; offline, as of `now`, after the last.
    fn disconnected(self, now: SystemTime) -> Self {
        let start = self.start() as u8;
        match self.connections() {
            0 | 1 => Self::offline(start, now),
            n => Self::online(start, n - 1),
        }
    }
}

/// What a node knows of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Open connections.
    pub(crate) connections: usize,
    /// Now while online, else when the last connection ended (to the
    /// microsecond).
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
        let u = entry.or_insert_with(|| User::new(&user)).into_mut();
        u.word = u.word.connected();
        let first = u.connections() == 1;
        if let Some(info) = info {
            self.info.insert(user, info);
        }
        first
    }

    /// A connection of `user` closed; returns whether it was the user's
    /// last one (the user went offline).
    pub(crate) fn disconnect(&mut self, user: &str) -> bool {
        match self.find_mut(user) {
            Some(u) if u.connections() > 0 => {
                u.word = u.word.disconnected(SystemTime::now());
                u.connections() == 0
            }
            _ => false,
        }
    }

    /// Forgets `user` if it is offline.
    pub(crate) fn forget(&mut self, user: &str) {
        let hash = self.hash(user);
        if let Ok(entry) = self.table.find_entry(hash, |u| u.id() == user)
            && entry.get().connections() == 0
        {
            entry.remove();
            if self.info.remove(user).is_some() {
                crate::hub::shrink_if_sparse(&mut self.info);
            }
            let (len, capacity) = (self.table.len(), self.table.capacity());
            if let Some(to) = crate::hub::shrunk_capacity(len, capacity) {
                let hasher = &self.hasher;
                self.table.shrink_to(to, |u| hasher.hash_one(u.id()));
            }
        }
    }

    /// The connections and last-seen time of `user`, if known.
    pub(crate) fn get(&self, user: &str) -> Option<Seen> {
        self.find(user).map(|u| Seen {
            connections: u.connections() as usize,
            last_seen: u.word.offline_since().unwrap_or_else(SystemTime::now),
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
            .filter(|u| u.connections() > 0)
            .map(User::id)
    }

    /// The users with a connection open: id, connections, info.
    pub(crate) fn online_now(&self) -> Vec<(String, usize, Option<Bytes>)> {
        self.table
            .iter()
            .filter(|u| u.connections() > 0)
            .map(|u| {
                (
                    u.id().to_owned(),
                    u.connections() as usize,
                    self.info(u.id()),
                )
            })
            .collect()
    }

    /// Open connections, all users together.
    pub(crate) fn connections(&self) -> usize {
        self.table.iter().map(|u| u.connections() as usize).sum()
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
    fn a_user_is_24_bytes() {
        assert_eq!(std::mem::size_of::<User>(), 24);
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
    fn last_seen_is_now_while_online_and_stays_put_offline() {
        let mut users = Users::default();
        users.connect("alice".into(), None);
        users.connect("alice".into(), None);
        std::thread::sleep(Duration::from_millis(2));
        let before = SystemTime::now();
        assert!(
            users.get("alice").unwrap().last_seen >= before,
            "online: now"
        );
        users.disconnect("alice");
        assert!(
            users.get("alice").unwrap().last_seen >= before,
            "still online"
        );
        let ending = SystemTime::now();
        users.disconnect("alice");
        let offline = users.get("alice").unwrap().last_seen;
        let after = SystemTime::now();
        // The moment the last connection ended, cut to the microsecond.
        assert!(ending - Duration::from_micros(1) < offline && offline <= after);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(users.get("alice").unwrap().last_seen, offline);
        users.connect("alice".into(), None);
        assert!(
            users.get("alice").unwrap().last_seen > offline,
            "back online"
        );
    }

    #[test]
    fn a_word_keeps_the_offset_through_every_change() {
        let w = Word::online(200, 0).connected().connected();
        assert_eq!(
            (w.start(), w.connections(), w.offline_since()),
            (200, 2, None)
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
        let w = w.disconnected(at);
        assert_eq!((w.start(), w.connections()), (200, 1));
        let w = w.disconnected(at);
        assert_eq!(
            (w.start(), w.connections(), w.offline_since()),
            (200, 0, Some(at))
        );
        let w = w.connected();
        assert_eq!((w.start(), w.connections()), (200, 1));
        let full = Word::online(255, u32::MAX).connected();
        assert_eq!(
            (full.start(), full.connections()),
            (255, u32::MAX),
            "saturates"
        );
    }

    #[test]
    fn offline_times_out_of_range_are_clamped() {
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            Word::offline(5, before_epoch).offline_since(),
            Some(SystemTime::UNIX_EPOCH)
        );
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40);
        let w = Word::offline(5, far);
        assert_eq!(w.start(), 5, "the offset is untouched");
        assert!(w.offline_since().unwrap() < far);
    }

    #[test]
    fn an_id_after_a_long_prefix_keeps_its_own_text() {
        let mut users = Users::default();
        let prefix = "p".repeat(300);
        let text: Arc<str> = Arc::from(format!("{prefix}alice"));
        users.connect(UserId::after(text, &prefix).unwrap(), None);
        assert_eq!(users.online().collect::<Vec<_>>(), ["alice"]);
        assert!(!users.connect("alice".into(), None), "the same user");
        assert_eq!(users.get("alice").map(|s| s.connections), Some(2));
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

    #[test]
    fn the_table_gives_its_room_back_after_a_wave() {
        let mut users = Users::default();
        for i in 0..10_000 {
            users.connect(format!("u{i}").into(), Some(Bytes::from_static(b"{}")));
        }
        let peak = users.table.capacity();
        for i in 100..10_000 {
            users.disconnect(&format!("u{i}"));
            users.forget(&format!("u{i}"));
        }
        assert!(peak >= 10_000);
        assert!(users.table.capacity() <= 512, "{}", users.table.capacity());
        assert!(users.info.capacity() <= 512, "{}", users.info.capacity());
        for i in 0..100 {
            let u = users.get(&format!("u{i}")).expect("kept");
            assert_eq!(u.connections, 1);
            assert!(users.info(&format!("u{i}")).is_some());
        }
    }
}

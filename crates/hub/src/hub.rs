//! The hub: room logs, membership and presence, and fan-out to the protocol
//! adapters.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use bytes::Bytes;

use crate::log::{Entry, LogLimits, Position, Recovery, RoomLog};
use crate::presence::{PresenceChange, Present, UserStatus};

/// A connection id, unique across protocols.
pub type ConnId = Arc<str>;

/// A message published to a room, shared by every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The room.
    pub room: String,
    /// The room log's epoch.
    pub epoch: String,
    /// The entry (offset, time, event, data, publisher).
    pub entry: Entry,
}

/// A protocol adapter: delivers to its own connections.
///
/// Called with the room's lock held, in offset order, so deliveries of one
/// room never overtake each other. Implementations only queue (never block,
/// never call back into the hub).
pub trait Sink: Send + Sync {
    /// Delivers a publication to the adapter's members of `publication.room`.
    fn publish(&self, publication: &Arc<Publication>);

    /// Tells one connection of this adapter about a presence change.
    fn presence(&self, conn: &ConnId, change: &PresenceChange);

    /// Whether `conn` belongs to this adapter.
    fn owns(&self, conn: &ConnId) -> bool;
}

/// What a join returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room's current position.
    pub position: Position,
    /// With `since`: the entries after it, or `None` when the log no longer
    /// holds them (`recovered: false`).
    pub missed: Option<Vec<Entry>>,
}

#[derive(Debug)]
struct Member {
    user: Arc<str>,
    presence: bool,
}

#[derive(Debug)]
struct Room {
    log: RoomLog,
    members: HashMap<ConnId, Member>,
    /// Users with connections in the room: count and since.
    users: HashMap<Arc<str>, (usize, SystemTime)>,
}

#[derive(Debug)]
struct Conn {
    user: Arc<str>,
    rooms: HashSet<String>,
}

#[derive(Debug)]
struct User {
    connections: usize,
    last_seen: SystemTime,
    info: Option<Bytes>,
}

/// Rooms, presence and history, shared by every protocol.
pub struct Hub {
    limits: LogLimits,
    rooms: RwLock<HashMap<String, Arc<Mutex<Room>>>>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    users: Mutex<HashMap<Arc<str>, User>>,
    sinks: RwLock<Vec<Arc<dyn Sink>>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &read(&self.rooms).len())
            .field("connections", &lock(&self.conns).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// An empty hub whose room logs keep `limits`.
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            rooms: RwLock::default(),
            conns: Mutex::default(),
            users: Mutex::default(),
            sinks: RwLock::default(),
        }
    }

    /// Adds a protocol adapter.
    pub fn add_sink(&self, sink: Arc<dyn Sink>) {
        self.sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    fn room(&self, name: &str) -> Arc<Mutex<Room>> {
        if let Some(r) = read(&self.rooms).get(name) {
            return r.clone();
        }
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        rooms
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Room {
                    log: RoomLog::new(self.limits),
                    members: HashMap::new(),
                    users: HashMap::new(),
                }))
            })
            .clone()
    }

    fn existing_room(&self, name: &str) -> Option<Arc<Mutex<Room>>> {
        read(&self.rooms).get(name).cloned()
    }

    /// Registers a connection of `user` (online from now on).
    pub fn connect(&self, conn: ConnId, user: &str, info: Option<Bytes>) {
        let user: Arc<str> = Arc::from(user);
        {
            let mut users = lock(&self.users);
            let u = users.entry(user.clone()).or_insert(User {
                connections: 0,
                last_seen: SystemTime::now(),
                info: None,
            });
            u.connections += 1;
            u.last_seen = SystemTime::now();
            if info.is_some() {
                u.info = info;
            }
        }
        lock(&self.conns).insert(
            conn,
            Conn {
                user,
                rooms: HashSet::new(),
            },
        );
    }

    /// Removes a connection: it leaves its rooms (presence events follow)
    /// and its user's `last_seen` is now.
    pub fn disconnect(&self, conn: &ConnId) {
        let Some(c) = lock(&self.conns).remove(conn) else {
            return;
        };
        for room in &c.rooms {
            self.leave_room(conn, room);
        }
        let mut users = lock(&self.users);
        if let Some(u) = users.get_mut(&c.user) {
            u.connections = u.connections.saturating_sub(1);
            u.last_seen = SystemTime::now();
        }
    }

    /// The user of a connection.
    pub fn user_of(&self, conn: &ConnId) -> Option<Arc<str>> {
        lock(&self.conns).get(conn).map(|c| c.user.clone())
    }

    /// The connections of a user.
    pub fn connections_of(&self, user: &str) -> Vec<ConnId> {
        lock(&self.conns)
            .iter()
            .filter(|(_, c)| &*c.user == user)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The rooms a connection is in.
    pub fn rooms_of(&self, conn: &ConnId) -> Vec<String> {
        lock(&self.conns)
            .get(conn)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Joins `room`. With `presence`, the connection gets presence changes.
    /// With `since`, the answer carries what was missed (or `None`: not
    /// recoverable).
    pub fn join(
        &self,
        conn: &ConnId,
        room: &str,
        presence: bool,
        since: Option<&Position>,
    ) -> Option<Joined> {
        let user = {
            let mut conns = lock(&self.conns);
            let c = conns.get_mut(conn)?;
            c.rooms.insert(room.to_owned());
            c.user.clone()
        };
        let r = self.room(room);
        let mut r = lock(&r);
        let now = SystemTime::now();
        let first = !r.members.contains_key(conn) && {
            let entry = r.users.entry(user.clone()).or_insert((0, now));
            entry.0 += 1;
            entry.0 == 1
        };
        r.members.insert(
            conn.clone(),
            Member {
                user: user.clone(),
                presence,
            },
        );
        if first {
            self.announce(&r, room, &user, true);
        }
        let missed = since.map(|since| match r.log.recover(since, now) {
            Recovery::Recovered(entries) => Some(entries),
            Recovery::NotRecovered(_) => None,
        });
        Some(Joined {
            position: r.log.position(),
            missed: missed.flatten(),
        })
    }

    /// Leaves `room`.
    pub fn leave(&self, conn: &ConnId, room: &str) {
        if let Some(c) = lock(&self.conns).get_mut(conn) {
            c.rooms.remove(room);
        }
        self.leave_room(conn, room);
    }

    fn leave_room(&self, conn: &ConnId, room: &str) {
        let Some(r) = self.existing_room(room) else {
            return;
        };
        let mut r = lock(&r);
        let Some(member) = r.members.remove(conn) else {
            return;
        };
        let last = match r.users.get_mut(&member.user) {
            Some(entry) => {
                entry.0 -= 1;
                entry.0 == 0
            }
            None => false,
        };
        if last {
            r.users.remove(&member.user);
            self.announce(&r, room, &member.user, false);
        }
    }

    /// Sends a presence change to the members who asked, except the user's
    /// own connections.
    fn announce(&self, r: &Room, room: &str, user: &Arc<str>, joined: bool) {
        let change = PresenceChange {
            room: room.to_owned(),
            user: user.to_string(),
            joined,
        };
        let sinks = read(&self.sinks);
        for (id, m) in &r.members {
            if m.presence && m.user != *user {
                if let Some(s) = sinks.iter().find(|s| s.owns(id)) {
                    s.presence(id, &change);
                }
            }
        }
    }

    /// Publishes to `room`: appends to its log and delivers to every member
    /// on every protocol. Returns the publication (its offset and epoch).
    pub fn publish(
        &self,
        room: &str,
        event: String,
        data: Bytes,
        from: Option<String>,
    ) -> Arc<Publication> {
        let r = self.room(room);
        let mut r = lock(&r);
        let entry = r.log.append(event, data, from, SystemTime::now()).clone();
        let publication = Arc::new(Publication {
            room: room.to_owned(),
            epoch: r.log.epoch().to_owned(),
            entry,
        });
        for sink in read(&self.sinks).iter() {
            sink.publish(&publication);
        }
        drop(r);
        publication
    }

    /// Users present in `room`.
    pub fn presence(&self, room: &str) -> Vec<Present> {
        let Some(r) = self.existing_room(room) else {
            return Vec::new();
        };
        let r = lock(&r);
        let users = lock(&self.users);
        let mut out: Vec<Present> = r
            .users
            .iter()
            .map(|(user, (connections, since))| Present {
                user: user.to_string(),
                info: users.get(user).and_then(|u| u.info.clone()),
                connections: *connections,
                since: *since,
            })
            .collect();
        out.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.user.cmp(&b.user)));
        out
    }

    /// A user's status, `None` for a user never seen.
    pub fn user(&self, user: &str) -> Option<UserStatus> {
        let users = lock(&self.users);
        let u = users.get(user)?;
        Some(UserStatus {
            online: u.connections > 0,
            connections: u.connections,
            last_seen: if u.connections > 0 {
                SystemTime::now()
            } else {
                u.last_seen
            },
        })
    }

    /// A room's history: its epoch and entries (after `since`, at most
    /// `limit`, oldest first).
    pub fn history(&self, room: &str, since: Option<u64>, limit: usize) -> (String, Vec<Entry>) {
        let r = self.room(room);
        let r = lock(&r);
        (
            r.log.epoch().to_owned(),
            r.log.history(since, limit, SystemTime::now()),
        )
    }

    /// Rooms that have members or history.
    pub fn rooms(&self) -> Vec<String> {
        read(&self.rooms).keys().cloned().collect()
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.conns).len()
    }
}

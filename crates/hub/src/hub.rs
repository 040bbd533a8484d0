//! The hub: room logs, membership and presence, and fan-out to the protocol
//! adapters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::SystemTime;

use bytes::Bytes;

use crate::log::{Entry, LogLimits, Position, Recovery};
use crate::presence::{PresenceChange, Present, UserStatus};
use crate::remote::{LocalPresence, RemoteView};
use crate::store::{LogStore, MemoryStore, NewEntry, StoreError};
use crate::user_id::UserId;
use crate::users::Users;

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
    /// May be dropped for slow consumers (it is in the log all the same).
    pub volatile: bool,
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

    /// A presence change in a room someone observes ([`Hub::observe`]), for
    /// adapters that watch rooms without being in them (a capture).
    fn room_presence(&self, change: &PresenceChange) {
        let _ = change;
    }
}

/// One room as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room.
    pub room: String,
    /// Its log's epoch.
    pub epoch: String,
    /// Its log's last offset.
    pub offset: u64,
    /// Users present.
    pub users: usize,
    /// Connections present (joined through the hub).
    pub connections: usize,
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
    user: UserId,
    presence: bool,
}

#[derive(Debug)]
struct Room {
    members: HashMap<ConnId, Member>,
    /// Members that asked for presence events: without any, a join or leave
    /// costs no walk over the members.
    watchers: usize,
    /// Observers ([`Hub::observe`]): they get its publications and presence
    /// changes without being members.
    observers: usize,
    /// Users with connections in the room: count and since.
    users: HashMap<UserId, (usize, SystemTime)>,
    /// Removed from the hub (no members, its log never published to);
    /// whoever still holds it looks the room up again.
    gone: bool,
    /// With a store that broadcasts (a cluster): the last position handed
    /// to the sinks. Publications at or before it are not delivered again;
    /// one beyond the next is preceded by what lies between, read from the
    /// store.
    delivered: Option<Position>,
}

/// Rooms, presence and history, shared by every protocol.
pub struct Hub {
    store: Arc<dyn LogStore>,
    rooms: RwLock<HashMap<String, Arc<Mutex<Room>>>>,
    users: Mutex<Users>,
    /// Weak: adapters own the hub (through their state), not the reverse,
    /// so dropping a server frees both.
    sinks: RwLock<Vec<Weak<dyn Sink>>>,
    /// Presence on the other nodes of a cluster (empty without one).
    remote: RwLock<Arc<RemoteView>>,
    /// Bumped by every change of local presence (who is connected, who is
    /// in which room), so a cluster writes it out only when it changed.
    generation: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("rooms", &read(&self.rooms).len())
            .field("users", &lock(&self.users).len())
            .finish()
    }
}

/// After a wave of removals, gives a map's spare room back: one under a
/// quarter full (and past its first 16 slots) shrinks to twice its size.
/// The rehash costs one pass over what is left, once per wave.
pub(crate) fn shrink_if_sparse<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    if let Some(to) = shrunk_capacity(map.len(), map.capacity()) {
        map.shrink_to(to);
    }
}

/// The capacity a table `len` of `capacity` shrinks to, if it should (the
/// rule of `switchboard_wire::io::shrunk_capacity`; the hub does not depend
/// on the codec's crate).
pub(crate) fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > 4 * len.max(16)).then_some(2 * len)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// An empty hub whose room logs are kept in memory within `limits`.
    pub fn new(limits: LogLimits) -> Self {
        Self::with_store(Arc::new(MemoryStore::new(limits)))
    }

    /// A hub whose room logs live in `store`.
    pub fn with_store(store: Arc<dyn LogStore>) -> Self {
        Self {
            store,
            rooms: RwLock::default(),
            users: Mutex::default(),
            sinks: RwLock::default(),
            remote: RwLock::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// Adds a protocol adapter. The hub keeps a weak reference: the caller
    /// keeps the adapter alive as long as it should receive.
    pub fn add_sink(&self, sink: &Arc<dyn Sink>) {
        self.sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(sink));
    }

    fn sinks(&self) -> Vec<Arc<dyn Sink>> {
        read(&self.sinks).iter().filter_map(Weak::upgrade).collect()
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
                    members: HashMap::new(),
                    watchers: 0,
                    observers: 0,
                    users: HashMap::new(),
                    gone: false,
                    delivered: None,
                }))
            })
            .clone()
    }

    /// Runs `f` on the live room `name` (created if needed), locked.
    fn with_room<T>(&self, name: &str, f: impl FnOnce(&mut Room) -> T) -> T {
        loop {
            let r = self.room(name);
            let mut guard = lock(&r);
            if !guard.gone {
                return f(&mut guard);
            }
        }
    }

    fn existing_room(&self, name: &str) -> Option<Arc<Mutex<Room>>> {
        read(&self.rooms).get(name).cloned()
    }

    /// Registers a connection of `user` (online from now on). Pass the
    /// adapter's own `Arc`: the hub keeps it, no copy.
    ///
    /// The adapter owns its connections' state (which rooms each is in) and
    /// tells the hub on [`Hub::join`], [`Hub::leave`] and
    /// [`Hub::disconnect`]; the hub keeps no per-connection record besides
    /// room membership. Returns whether the user just came online (its
    /// first connection).
    pub fn connect(&self, user: impl Into<UserId>, info: Option<Bytes>) -> bool {
        let user: UserId = user.into();
        self.changed();
        lock(&self.users).connect(user, info)
    }

    /// Forgets an offline user (e.g. an anonymous id that will never come
    /// back) so such entries do not pile up; a user still online is kept.
    pub fn forget_user(&self, user: &str) {
        lock(&self.users).forget(user);
    }

    /// Removes a connection of `user`: it leaves `rooms` (presence events
    /// follow) and the user's `last_seen` is now. Returns whether the user
    /// just went offline (its last connection).
    pub fn disconnect<R: AsRef<str>>(
        &self,
        conn: &ConnId,
        user: &str,
        rooms: impl IntoIterator<Item = R>,
    ) -> bool {
        for room in rooms {
            self.leave(conn, room.as_ref());
        }
        self.changed();
        lock(&self.users).disconnect(user)
    }

    /// Joins `room`. With `presence`, the connection gets presence changes.
    /// With `since`, the answer carries what was missed (or `None`: not
    /// recoverable). Fails (and does not join) when the store fails.
    pub fn join(
        &self,
        conn: &ConnId,
        user: &UserId,
        room: &str,
        presence: bool,
        since: Option<&Position>,
    ) -> Result<Joined, StoreError> {
        self.with_room(room, |r| {
            self.join_locked(r, conn, user, room, presence, since)
        })
    }

    fn join_locked(
        &self,
        r: &mut Room,
        conn: &ConnId,
        user: &UserId,
        room: &str,
        presence: bool,
        since: Option<&Position>,
    ) -> Result<Joined, StoreError> {
        let now = SystemTime::now();
        let (position, missed) = match self.open_and_recover(r, room, since, now) {
            Ok(found) => found,
            // A shared store that is down: members already here keep
            // receiving what this node delivers, so a join can be served
            // from the position delivered last (nothing to recover from).
            Err(e) => match (self.store.broadcasts(), r.delivered.clone()) {
                (true, Some(delivered)) => (delivered, None),
                _ => return Err(e),
            },
        };
        let first = !r.members.contains_key(conn) && {
            let entry = r.users.entry(user.clone()).or_insert((0, now));
            entry.0 += 1;
            entry.0 == 1
        };
        let previous = r.members.insert(
            conn.clone(),
            Member {
                user: user.clone(),
                presence,
            },
        );
        r.watchers =
            r.watchers + usize::from(presence) - usize::from(previous.is_some_and(|p| p.presence));
        self.changed();
        if first && !read(&self.remote).in_room(room, user) {
            self.announce(r, room, user, true);
        }
        Ok(Joined { position, missed })
    }

    /// The room's position, and with `since` what was missed up to it.
    fn open_and_recover(
        &self,
        r: &mut Room,
        room: &str,
        since: Option<&Position>,
        now: SystemTime,
    ) -> Result<(Position, Option<Vec<Entry>>), StoreError> {
        let position = self.store.open(room)?;
        if self.store.broadcasts() {
            // Members joining now start at `position`: deliver to the
            // present ones whatever lies before it, so later publications
            // at or before it are recognised as already delivered (and
            // come live, not in `missed`).
            self.catch_up(r, room, &position);
        }
        let missed = match since {
            Some(since) => match self.store.recover(room, since, now)? {
                Recovery::Recovered(mut entries) => {
                    entries.retain(|e| e.offset <= position.offset);
                    Some(entries)
                }
                Recovery::NotRecovered(_) => None,
            },
            None => None,
        };
        Ok((position, missed))
    }

    /// Starts observing `room`: the sinks get its presence changes
    /// ([`Sink::room_presence`]), and its publications reach this node
    /// (in a cluster) even without local members. Not a member: presence
    /// and counts are unchanged. Undo with [`Hub::unobserve`].
    pub fn observe(&self, room: &str) {
        self.with_room(room, |r| r.observers += 1);
    }

    /// Stops one [`Hub::observe`] of `room`.
    pub fn unobserve(&self, room: &str) {
        if let Some(r) = self.existing_room(room) {
            let mut r = lock(&r);
            r.observers = r.observers.saturating_sub(1);
            self.forget_if_unused(&mut r, room);
        }
    }

    /// Leaves `room` (nothing happens if the connection is not in it).
    pub fn leave(&self, conn: &ConnId, room: &str) {
        let Some(r) = self.existing_room(room) else {
            return;
        };
        let mut r = lock(&r);
        let Some(member) = r.members.remove(conn) else {
            return;
        };
        r.watchers -= usize::from(member.presence);
        let last = match r.users.get_mut(&member.user) {
            Some(entry) => {
                entry.0 -= 1;
                entry.0 == 0
            }
            None => false,
        };
        self.changed();
        if last {
            r.users.remove(&member.user);
            shrink_if_sparse(&mut r.users);
            if !read(&self.remote).in_room(room, &member.user) {
                self.announce(&r, room, &member.user, false);
            }
        }
        shrink_if_sparse(&mut r.members);
        self.forget_if_unused(&mut r, room);
    }

    /// Forgets a room with no members, no observers and no history, so
    /// joins and leaves of many names do not pile up.
    fn forget_if_unused(&self, r: &mut Room, room: &str) {
        let unused = || {
            self.store
                .position(room)
                .is_ok_and(|p| p.is_none_or(|p| p.offset == 0))
        };
        if r.members.is_empty()
            && r.observers == 0
            && unused()
            && self.store.discard_if_empty(room).is_ok()
        {
            r.gone = true;
            let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
            rooms.remove(room);
            shrink_if_sparse(&mut rooms);
        }
    }

    /// Sends a presence change to the members who asked, except the user's
    /// own connections.
    fn announce(&self, r: &Room, room: &str, user: &UserId, joined: bool) {
        if r.watchers == 0 && r.observers == 0 {
            return;
        }
        let change = PresenceChange {
            room: room.to_owned(),
            user: user.to_string(),
            joined,
        };
        let sinks = self.sinks();
        for (id, m) in &r.members {
            if m.presence
                && m.user != *user
                && let Some(s) = sinks.iter().find(|s| s.owns(id))
            {
                s.presence(id, &change);
            }
        }
        if r.observers > 0 {
            for s in &sinks {
                s.room_presence(&change);
            }
        }
    }

    /// Publishes to `room`: appends to its log and delivers to every member
    /// on every protocol. Returns the publication (its offset and epoch), or
    /// the store's failure (then nothing was delivered).
    pub fn publish(
        &self,
        room: &str,
        event: String,
        data: Bytes,
        from: Option<String>,
        volatile: bool,
    ) -> Result<Arc<Publication>, StoreError> {
        self.with_room(room, |_| {
            let at = SystemTime::now();
            let (epoch, entry) = self.store.append(
                room,
                NewEntry {
                    event,
                    data,
                    from,
                    at,
                    volatile,
                },
            )?;
            let publication = Arc::new(Publication {
                room: room.to_owned(),
                epoch,
                entry,
                volatile,
            });
            if !self.store.broadcasts() {
                for sink in &self.sinks() {
                    sink.publish(&publication);
                }
            }
            Ok(publication)
        })
    }

    /// Users present in `room` (on every node of a cluster).
    pub fn presence(&self, room: &str) -> Vec<Present> {
        let r = self.existing_room(room).unwrap_or_else(|| {
            Arc::new(Mutex::new(Room {
                members: HashMap::new(),
                watchers: 0,
                observers: 0,
                users: HashMap::new(),
                gone: true,
                delivered: None,
            }))
        });
        let r = lock(&r);
        let users = lock(&self.users);
        let mut out: Vec<Present> = r
            .users
            .iter()
            .map(|(user, (connections, since))| Present {
                user: user.to_string(),
                info: users.info(user),
                connections: *connections,
                since: *since,
            })
            .collect();
        drop((r, users));
        let remote = read(&self.remote).clone();
        for (user, (connections, since)) in remote.rooms.get(room).into_iter().flatten() {
            match out.iter_mut().find(|p| p.user == *user) {
                Some(p) => {
                    p.connections += connections;
                    p.since = p.since.min(*since);
                }
                None => out.push(Present {
                    user: user.clone(),
                    info: remote.users.get(user).and_then(|u| u.1.clone()),
                    connections: *connections,
                    since: *since,
                }),
            }
        }
        out.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.user.cmp(&b.user)));
        out
    }

    /// A user's status (on every node of a cluster), `None` for a user
    /// never seen.
    pub fn user(&self, user: &str) -> Option<UserStatus> {
        let local = lock(&self.users)
            .get(user)
            .map(|u| (u.connections, u.last_seen));
        let remote = read(&self.remote).clone();
        let elsewhere = remote.users.get(user).map_or(0, |u| u.0);
        let seen_elsewhere = remote.last_seen.get(user).copied();
        if local.is_none() && elsewhere == 0 && seen_elsewhere.is_none() {
            return None;
        }
        let connections = local.map_or(0, |l| l.0) + elsewhere;
        let last_seen = if connections > 0 {
            SystemTime::now()
        } else {
            [local.map(|l| l.1), seen_elsewhere]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        Some(UserStatus {
            online: connections > 0,
            connections,
            last_seen,
        })
    }

    /// A room's history: its epoch and entries (after `since`, at most
    /// `limit`, oldest first).
    pub fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<(String, Vec<Entry>), StoreError> {
        // Reading does not create a room: an unknown room answers with a
        // fresh epoch and no messages.
        Ok(self
            .store
            .history(room, since, limit, SystemTime::now())?
            .unwrap_or_else(|| (crate::log::new_epoch(), Vec::new())))
    }

    /// Every room with members or a log: its position, users present and
    /// their connections.
    pub fn room_summaries(&self) -> Result<Vec<RoomSummary>, StoreError> {
        let mut rooms: HashMap<String, RoomSummary> = self
            .store
            .rooms()?
            .into_iter()
            .map(|(room, p)| {
                let summary = RoomSummary {
                    room: room.clone(),
                    epoch: p.epoch,
                    offset: p.offset,
                    users: 0,
                    connections: 0,
                };
                (room, summary)
            })
            .collect();
        let live: Vec<(String, Arc<Mutex<Room>>)> = read(&self.rooms)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (room, r) in live {
            let (users, connections) = {
                let r = lock(&r);
                (r.users.keys().cloned().collect::<Vec<_>>(), r.members.len())
            };
            if let Some(s) = rooms.get_mut(&room) {
                s.users = users.len();
                s.connections = connections;
            }
        }
        let remote = read(&self.remote).clone();
        for (room, users) in &remote.rooms {
            if let Some(s) = rooms.get_mut(room) {
                for (user, (connections, _)) in users {
                    s.connections += connections;
                    let here = self
                        .existing_room(room)
                        .is_some_and(|r| lock(&r).users.contains_key(user.as_str()));
                    if !here {
                        s.users += 1;
                    }
                }
            }
        }
        Ok(rooms.into_values().collect())
    }

    /// Users with at least one connection (on any node of a cluster).
    pub fn users_online(&self) -> usize {
        let remote = read(&self.remote).clone();
        let users = lock(&self.users);
        let local_only = users
            .online()
            .filter(|name| !remote.users.contains_key(*name))
            .count();
        local_only + remote.users.len()
    }

    /// A room's epoch, if the room has a log.
    pub fn epoch(&self, room: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.position(room)?.map(|p| p.epoch))
    }

    /// How many rooms have a log (every room with members has one).
    pub fn room_count(&self) -> Result<usize, StoreError> {
        Ok(self.store.rooms()?.len())
    }

    /// Open connections on this node.
    pub fn connection_count(&self) -> usize {
        lock(&self.users).connections()
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// A number that changes whenever local presence does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// This node's presence, for the other nodes of a cluster.
    pub fn local_presence(&self) -> LocalPresence {
        let live: Vec<(String, Arc<Mutex<Room>>)> = read(&self.rooms)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let rooms = live
            .into_iter()
            .filter_map(|(room, r)| {
                let r = lock(&r);
                let users: Vec<_> = r
                    .users
                    .iter()
                    .map(|(u, (n, since))| (u.to_string(), *n, *since))
                    .collect();
                (!users.is_empty()).then_some((room, users))
            })
            .collect();
        let users = lock(&self.users).online_now();
        LocalPresence { rooms, users }
    }

    /// Replaces what is known of the other nodes' presence, and tells local
    /// members who asked for presence about users who came or went there
    /// (a user also present here is neither: their local connections
    /// speak for them).
    pub fn set_remote(&self, view: RemoteView) {
        let new = Arc::new(view);
        let old = std::mem::replace(
            &mut *self.remote.write().unwrap_or_else(|e| e.into_inner()),
            new.clone(),
        );
        let mut rooms: Vec<&String> = old.rooms.keys().chain(new.rooms.keys()).collect();
        rooms.sort();
        rooms.dedup();
        for room in rooms {
            let Some(r) = self.existing_room(room) else {
                continue;
            };
            let r = lock(&r);
            let before = old.rooms.get(room);
            let after = new.rooms.get(room);
            let has = |set: Option<&HashMap<String, (usize, SystemTime)>>, user: &str| {
                set.is_some_and(|s| s.contains_key(user))
            };
            for user in after.into_iter().flat_map(|a| a.keys()) {
                if !has(before, user) && !r.users.contains_key(user.as_str()) {
                    self.announce(&r, room, &UserId::from(user.as_str()), true);
                }
            }
            for user in before.into_iter().flat_map(|b| b.keys()) {
                if !has(after, user) && !r.users.contains_key(user.as_str()) {
                    self.announce(&r, room, &UserId::from(user.as_str()), false);
                }
            }
        }
    }

    /// Hands a publication broadcast by the store (a cluster) to the sinks
    /// of this node, once, in offset order: one already delivered is
    /// skipped, and a gap before it is filled from the store first. Rooms
    /// with no member on this node are skipped.
    pub fn deliver(&self, publication: Arc<Publication>) {
        let Some(r) = self.existing_room(&publication.room) else {
            return;
        };
        let mut r = lock(&r);
        if r.gone || (r.members.is_empty() && r.observers == 0) {
            // Nobody to deliver to; a join starts from the log's position.
            r.delivered = None;
            return;
        }
        let before = Position {
            epoch: publication.epoch.clone(),
            offset: publication.entry.offset - 1,
        };
        self.catch_up(&mut r, &publication.room, &before);
        if Self::is_new(&r, &publication.epoch, publication.entry.offset) {
            self.hand_to_sinks(&mut r, publication);
        }
    }

    /// Delivers to every room with members here what the store holds
    /// beyond what was delivered (after broadcasts were missed, e.g. while
    /// the connection to a shared store was down).
    pub fn resync(&self) {
        let live: Vec<(String, Arc<Mutex<Room>>)> = read(&self.rooms)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (room, r) in live {
            let mut r = lock(&r);
            if r.gone || r.delivered.is_none() {
                continue;
            }
            match self.store.position(&room) {
                Ok(Some(position)) => self.catch_up(&mut r, &room, &position),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "resync: the store is unavailable");
                    return;
                }
            }
        }
    }

    fn is_new(r: &Room, epoch: &str, offset: u64) -> bool {
        match &r.delivered {
            Some(d) if d.epoch == epoch => offset > d.offset,
            _ => true,
        }
    }

    fn hand_to_sinks(&self, r: &mut Room, publication: Arc<Publication>) {
        r.delivered = Some(Position {
            epoch: publication.epoch.clone(),
            offset: publication.entry.offset,
        });
        for sink in &self.sinks() {
            sink.publish(&publication);
        }
    }

    /// Brings the room's deliveries up to `to`: the entries between the
    /// last delivered and `to` are read from the store and delivered. A
    /// room with nothing delivered yet, or of another epoch (its log was
    /// lost and begun again), starts at `to`.
    fn catch_up(&self, r: &mut Room, room: &str, to: &Position) {
        if r.members.is_empty() && r.observers == 0 {
            r.delivered = Some(to.clone());
            return;
        }
        let from = match &r.delivered {
            Some(d) if d.epoch == to.epoch && d.offset < to.offset => d.offset,
            Some(d) if d.epoch == to.epoch => return,
            _ => {
                r.delivered = Some(to.clone());
                return;
            }
        };
        let limit = usize::try_from(to.offset - from).unwrap_or(usize::MAX);
        let entries = match self
            .store
            .history(room, Some(from), limit, SystemTime::now())
        {
            Ok(Some((epoch, entries))) if epoch == to.epoch => entries,
            Ok(_) => Vec::new(),
            Err(e) => {
                // Not readable now: deliver from here on; the gap stays.
                tracing::warn!(error = %e, room, "catch-up: the store is unavailable");
                Vec::new()
            }
        };
        for entry in entries.into_iter().filter(|e| e.offset <= to.offset) {
            let publication = Arc::new(Publication {
                room: room.to_owned(),
                epoch: to.epoch.clone(),
                entry,
                volatile: false,
            });
            self.hand_to_sinks(r, publication);
        }
        r.delivered = Some(to.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    /// A protocol adapter that owns a fixed set of connections and records
    /// everything the hub hands it.
    #[derive(Default)]
    struct Recorder {
        conns: Mutex<HashSet<ConnId>>,
        publications: Mutex<Vec<Arc<Publication>>>,
        presence: Mutex<Vec<(ConnId, PresenceChange)>>,
    }

    impl Recorder {
        fn own(&self, conn: &ConnId) {
            lock(&self.conns).insert(conn.clone());
        }

        fn publications(&self) -> Vec<Arc<Publication>> {
            lock(&self.publications).clone()
        }

        /// Presence changes delivered to `conn`, as `(room, user, joined)`.
        fn changes_for(&self, conn: &ConnId) -> Vec<(String, String, bool)> {
            lock(&self.presence)
                .iter()
                .filter(|(c, _)| c == conn)
                .map(|(_, ch)| (ch.room.clone(), ch.user.clone(), ch.joined))
                .collect()
        }

        fn change_count(&self) -> usize {
            lock(&self.presence).len()
        }
    }

    impl Sink for Recorder {
        fn publish(&self, publication: &Arc<Publication>) {
            lock(&self.publications).push(publication.clone());
        }

        fn presence(&self, conn: &ConnId, change: &PresenceChange) {
            assert!(self.owns(conn), "presence for a foreign connection {conn}");
            lock(&self.presence).push((conn.clone(), change.clone()));
        }

        fn owns(&self, conn: &ConnId) -> bool {
            lock(&self.conns).contains(conn)
        }

        fn room_presence(&self, change: &PresenceChange) {
            lock(&self.presence).push((Arc::from("observer"), change.clone()));
        }
    }

    fn hub() -> (Hub, Arc<Recorder>) {
        let hub = Hub::new(LogLimits::default());
        let sink = Arc::new(Recorder::default());
        let sink_sink: Arc<dyn Sink> = sink.clone();
        hub.add_sink(&sink_sink);
        (hub, sink)
    }

    /// A connection as an adapter knows it: its id and its user.
    #[derive(Clone, Debug)]
    struct C {
        id: ConnId,
        user: Arc<str>,
    }

    impl std::ops::Deref for C {
        type Target = ConnId;
        fn deref(&self) -> &ConnId {
            &self.id
        }
    }

    /// Registers connection `id` of `user`, owned by `sink`.
    fn conn(hub: &Hub, sink: &Recorder, id: &str, user: &str) -> C {
        let c = C {
            id: Arc::from(id),
            user: Arc::from(user),
        };
        sink.own(&c.id);
        hub.connect(c.user.clone(), None);
        c
    }

    fn join(hub: &Hub, c: &C, room: &str, presence: bool, since: Option<&Position>) -> Joined {
        hub.join(&c.id, &UserId::from(&c.user), room, presence, since)
            .unwrap()
    }

    fn offsets(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.offset).collect()
    }

    fn joined(room: &str, user: &str) -> (String, String, bool) {
        (room.to_owned(), user.to_owned(), true)
    }

    fn left(room: &str, user: &str) -> (String, String, bool) {
        (room.to_owned(), user.to_owned(), false)
    }

    #[test]
    fn publish_assigns_offsets_from_one_and_delivers_in_order() {
        let (hub, sink) = hub();
        let other = Arc::new(Recorder::default());
        let other_sink: Arc<dyn Sink> = other.clone();
        hub.add_sink(&other_sink);

        let returned: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|d| {
                hub.publish(
                    "r",
                    "msg".into(),
                    Bytes::from(d.to_string()),
                    Some("u".into()),
                    false,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(
            returned.iter().map(|p| p.entry.offset).collect::<Vec<_>>(),
            [1, 2, 3]
        );

        let delivered = sink.publications();
        assert_eq!(delivered.len(), 3);
        for (d, r) in delivered.iter().zip(&returned) {
            assert!(
                Arc::ptr_eq(d, r),
                "the returned publication is the one delivered"
            );
        }
        assert_eq!(
            delivered
                .iter()
                .map(|p| (p.entry.offset, p.entry.data.clone()))
                .collect::<Vec<_>>(),
            [
                (1, Bytes::from("a")),
                (2, Bytes::from("b")),
                (3, Bytes::from("c"))
            ]
        );
        let epoch = &delivered[0].epoch;
        assert!(delivered.iter().all(|p| &p.epoch == epoch && p.room == "r"));
        assert!(delivered.iter().all(|p| p.entry.event == "msg"));
        assert!(
            delivered
                .iter()
                .all(|p| p.entry.from.as_deref() == Some("u"))
        );
        // Every adapter gets every publication, in the same order.
        assert_eq!(other.publications(), delivered);

        // Another room has its own log.
        let p = hub
            .publish("s", "msg".into(), Bytes::new(), None, false)
            .unwrap();
        assert_eq!(p.entry.offset, 1);
        assert_ne!(&p.epoch, epoch);
        assert_eq!(p.entry.from, None);
        let (history_epoch, entries) = hub.history("r", None, 10).unwrap();
        assert_eq!(&history_epoch, epoch);
        assert_eq!(offsets(&entries), [1, 2, 3]);
    }

    #[test]
    fn presence_is_per_user_and_only_to_members_who_asked() {
        let (hub, sink) = hub();
        let a1 = conn(&hub, &sink, "a1", "alice");
        let a2 = conn(&hub, &sink, "a2", "alice");
        let b1 = conn(&hub, &sink, "b1", "bob");
        let c1 = conn(&hub, &sink, "c1", "carol");

        join(&hub, &b1, "room", true, None);
        join(&hub, &c1, "room", false, None);
        assert_eq!(sink.changes_for(&b1), [joined("room", "carol")]);
        assert_eq!(sink.changes_for(&c1), [], "carol did not ask");

        // Alice's first connection: a join, to bob only.
        join(&hub, &a1, "room", true, None);
        assert_eq!(
            sink.changes_for(&b1),
            [joined("room", "carol"), joined("room", "alice")]
        );
        assert_eq!(sink.changes_for(&a1), [], "never about the user herself");
        assert_eq!(sink.changes_for(&c1), []);

        // Her second connection: no event at all (not even to herself).
        let before = sink.change_count();
        join(&hub, &a2, "room", true, None);
        assert_eq!(sink.change_count(), before);
        // Joining again with the same connection is no event either.
        join(&hub, &a2, "room", true, None);
        assert_eq!(sink.change_count(), before);

        // A connection of another user that joins later is announced to both
        // of alice's connections.
        let d1 = conn(&hub, &sink, "d1", "dave");
        join(&hub, &d1, "room", false, None);
        assert_eq!(sink.changes_for(&a1), [joined("room", "dave")]);
        assert_eq!(sink.changes_for(&a2), [joined("room", "dave")]);
        hub.leave(&d1, "room");
        let before = sink.change_count();

        // One of two connections leaves: no event.
        hub.leave(&a1, "room");
        assert_eq!(sink.change_count(), before);
        // The last one leaves: a leave event, to bob only.
        hub.leave(&a2, "room");
        assert_eq!(sink.change_count(), before + 1);
        assert_eq!(sink.changes_for(&b1).last(), Some(&left("room", "alice")));
        // Leaving a room one is not in changes nothing.
        hub.leave(&a2, "room");
        hub.leave(&a2, "elsewhere");
        assert_eq!(sink.change_count(), before + 1);
    }

    #[test]
    fn presence_goes_to_the_adapter_that_owns_the_connection() {
        let (hub, first) = hub();
        let second = Arc::new(Recorder::default());
        let second_sink: Arc<dyn Sink> = second.clone();
        hub.add_sink(&second_sink);
        let a1 = conn(&hub, &first, "a1", "alice");
        let b1 = conn(&hub, &second, "b1", "bob");
        join(&hub, &a1, "room", true, None);
        join(&hub, &b1, "room", true, None);
        assert_eq!(first.changes_for(&a1), [joined("room", "bob")]);
        assert_eq!(second.change_count(), 0);
        hub.leave(&a1, "room");
        assert_eq!(second.changes_for(&b1), [left("room", "alice")]);
        assert_eq!(first.change_count(), 1);
    }

    #[test]
    fn an_observer_sees_presence_changes_without_being_a_member() {
        let (hub, sink) = hub();
        let observer: ConnId = Arc::from("observer");
        hub.observe("room");
        let a1 = conn(&hub, &sink, "a1", "alice");
        join(&hub, &a1, "room", false, None);
        hub.leave(&a1, "room");
        assert_eq!(
            sink.changes_for(&observer),
            [joined("room", "alice"), left("room", "alice")]
        );
        assert!(hub.presence("room").is_empty(), "not a member");
        hub.unobserve("room");
        join(&hub, &a1, "room", false, None);
        assert_eq!(sink.changes_for(&observer).len(), 2);
    }

    #[test]
    fn disconnect_leaves_every_room() {
        let (hub, sink) = hub();
        let a1 = conn(&hub, &sink, "a1", "alice");
        let b1 = conn(&hub, &sink, "b1", "bob");
        for room in ["r1", "r2"] {
            join(&hub, &b1, room, true, None);
            join(&hub, &a1, room, false, None);
        }
        assert_eq!(hub.connection_count(), 2);

        assert_eq!(
            sink.changes_for(&b1),
            [joined("r1", "alice"), joined("r2", "alice")]
        );

        hub.disconnect(&a1, &a1.user, ["r1", "r2"]);
        // One leave per room, in the order given.
        let changes = sink.changes_for(&b1).split_off(2);
        assert_eq!(changes, [left("r1", "alice"), left("r2", "alice")]);
        assert_eq!(hub.connection_count(), 1);
        for room in ["r1", "r2"] {
            let users: Vec<_> = hub.presence(room).into_iter().map(|p| p.user).collect();
            assert_eq!(users, ["bob"]);
        }
        // Leaving rooms a connection is not in changes nothing.
        hub.leave(&a1, "r1");
        assert_eq!(sink.changes_for(&b1).len(), 4);
    }

    #[test]
    fn presence_counts_connections_per_user() {
        let (hub, sink) = hub();
        let a1 = C {
            id: Arc::from("a1"),
            user: Arc::from("alice"),
        };
        sink.own(&a1);
        hub.connect(a1.user.clone(), Some(Bytes::from(r#"{"name":"A"}"#)));
        let a2 = conn(&hub, &sink, "a2", "alice");
        let b1 = conn(&hub, &sink, "b1", "bob");
        assert_eq!(hub.presence("room"), []);

        join(&hub, &a1, "room", false, None);
        join(&hub, &b1, "room", false, None);
        join(&hub, &a2, "room", false, None);
        let present = hub.presence("room");
        assert_eq!(present.len(), 2);
        let alice = present.iter().find(|p| p.user == "alice").unwrap();
        let bob = present.iter().find(|p| p.user == "bob").unwrap();
        assert_eq!(alice.connections, 2);
        assert_eq!(alice.info, Some(Bytes::from(r#"{"name":"A"}"#)));
        assert_eq!(bob.connections, 1);
        assert_eq!(bob.info, None);
        assert!(alice.since <= bob.since, "alice joined first");
        // Ordered by since, then user.
        assert!(
            present
                .windows(2)
                .all(|w| (w[0].since, &w[0].user) <= (w[1].since, &w[1].user))
        );

        hub.leave(&a1, "room");
        let present = hub.presence("room");
        let alice = present.iter().find(|p| p.user == "alice").unwrap();
        assert_eq!(alice.connections, 1);
        hub.leave(&a2, "room");
        let users: Vec<_> = hub.presence("room").into_iter().map(|p| p.user).collect();
        assert_eq!(users, ["bob"]);
    }

    #[test]
    fn user_status_online_offline_and_last_seen() {
        let (hub, sink) = hub();
        assert_eq!(hub.user("alice"), None, "never seen");

        let a1 = conn(&hub, &sink, "a1", "alice");
        let a2 = conn(&hub, &sink, "a2", "alice");
        let status = hub.user("alice").unwrap();
        assert!(status.online);
        assert_eq!(status.connections, 2);

        hub.disconnect(&a1, &a1.user, [] as [&str; 0]);
        let status = hub.user("alice").unwrap();
        assert!(status.online, "one connection left");
        assert_eq!(status.connections, 1);

        let before = SystemTime::now();
        hub.disconnect(&a2, &a2.user, [] as [&str; 0]);
        let after = SystemTime::now();
        let status = hub.user("alice").unwrap();
        assert!(!status.online);
        assert_eq!(status.connections, 0);
        // Kept to the microsecond.
        assert!(
            before - Duration::from_micros(1) < status.last_seen && status.last_seen <= after,
            "last_seen is the moment the last connection ended"
        );
        // Offline, last_seen stays put.
        assert_eq!(hub.user("alice").unwrap().last_seen, status.last_seen);

        // Back online: last_seen is now again.
        let _a3 = conn(&hub, &sink, "a3", "alice");
        let status = hub.user("alice").unwrap();
        assert!(status.online);
        assert_eq!(status.connections, 1);
        assert!(status.last_seen >= after);
    }

    #[test]
    fn join_since_recovers_missed_entries_in_the_same_epoch() {
        let (hub, sink) = hub();
        for i in 1..=3 {
            hub.publish(
                "room",
                "msg".into(),
                Bytes::from(i.to_string()),
                None,
                false,
            )
            .unwrap();
        }
        let (epoch, _) = hub.history("room", None, 0).unwrap();

        let c1 = conn(&hub, &sink, "c1", "u1");
        let since = Position {
            epoch: epoch.clone(),
            offset: 1,
        };
        let joined = join(&hub, &c1, "room", false, Some(&since));
        assert_eq!(
            joined.position,
            Position {
                epoch: epoch.clone(),
                offset: 3
            }
        );
        let missed = joined.missed.expect("recovered");
        assert_eq!(offsets(&missed), [2, 3]);
        assert_eq!(missed[0].data, Bytes::from("2"));

        // Up to date: recovered, nothing missed.
        let c2 = conn(&hub, &sink, "c2", "u2");
        let since = Position {
            epoch: epoch.clone(),
            offset: 3,
        };
        let joined = join(&hub, &c2, "room", false, Some(&since));
        assert_eq!(joined.missed, Some(Vec::new()));

        // Another epoch: not recoverable, but the position is given.
        let c3 = conn(&hub, &sink, "c3", "u3");
        let since = Position {
            epoch: format!("{epoch}x"),
            offset: 1,
        };
        let joined = join(&hub, &c3, "room", false, Some(&since));
        assert_eq!(joined.missed, None);
        assert_eq!(joined.position.epoch, epoch);
        assert_eq!(joined.position.offset, 3);

        // Without `since` there is nothing to recover.
        let c4 = conn(&hub, &sink, "c4", "u4");
        let joined = join(&hub, &c4, "room", false, None);
        assert_eq!(joined.missed, None);
        assert_eq!(joined.position.offset, 3);
    }

    #[test]
    fn history_returns_the_newest_entries_oldest_first() {
        let (hub, _sink) = hub();
        for i in 1..=5 {
            hub.publish(
                "room",
                "msg".into(),
                Bytes::from(i.to_string()),
                None,
                false,
            )
            .unwrap();
        }
        let (_, entries) = hub.history("room", None, 2).unwrap();
        assert_eq!(offsets(&entries), [4, 5]);
        let (_, entries) = hub.history("room", None, 10).unwrap();
        assert_eq!(offsets(&entries), [1, 2, 3, 4, 5]);
        let (_, entries) = hub.history("room", Some(1), 2).unwrap();
        assert_eq!(
            offsets(&entries),
            [2, 3],
            "after an offset: the oldest first"
        );
        let (_, entries) = hub.history("room", Some(5), 2).unwrap();
        assert_eq!(offsets(&entries), Vec::<u64>::new());
        let (_, entries) = hub.history("room", None, 0).unwrap();
        assert_eq!(offsets(&entries), Vec::<u64>::new());
    }

    #[test]
    fn history_respects_the_log_limits() {
        let hub = Hub::new(LogLimits::default().max_entries(3));
        for i in 1..=5 {
            hub.publish(
                "room",
                "msg".into(),
                Bytes::from(i.to_string()),
                None,
                false,
            )
            .unwrap();
        }
        let (epoch, entries) = hub.history("room", None, 10).unwrap();
        assert_eq!(offsets(&entries), [3, 4, 5]);
        // What was trimmed cannot be recovered.
        hub.connect("u", None);
        let since = Position { epoch, offset: 1 };
        let joined = hub.join(
            &Arc::from("c"),
            &UserId::from("u"),
            "room",
            false,
            Some(&since),
        );
        assert_eq!(joined.unwrap().missed, None);
    }

    fn room_names(hub: &Hub) -> Vec<String> {
        let mut rooms: Vec<String> = hub
            .room_summaries()
            .unwrap()
            .into_iter()
            .map(|s| s.room)
            .collect();
        rooms.sort();
        rooms
    }

    #[test]
    fn rooms_without_members_or_history_are_forgotten() {
        let (hub, sink) = hub();
        let a1 = conn(&hub, &sink, "a1", "alice");
        join(&hub, &a1, "passing", false, None);
        join(&hub, &a1, "kept", false, None);
        hub.publish("kept", "msg".into(), Bytes::new(), None, false)
            .unwrap();
        assert_eq!(room_names(&hub), ["kept", "passing"]);
        hub.leave(&a1, "passing");
        hub.leave(&a1, "kept");
        assert_eq!(room_names(&hub), ["kept"], "history keeps a room");
        // A forgotten room comes back fresh on the next join.
        let joined = join(&hub, &a1, "passing", true, None);
        assert_eq!(joined.position.offset, 0);
        assert_eq!(hub.presence("passing").len(), 1);
    }
}

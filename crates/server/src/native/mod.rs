//! The native protocol: JSON text frames on a plain WebSocket at `/ws`, for
//! a browser's bare `new WebSocket(url)` (docs/protocol.md, "Native
//! protocol"). The same operations as the Socket.IO relay, over the same
//! hub: a publish reaches a room's members on both protocols.

mod accept;
mod conn;
mod driver;
mod files;
mod ops;
pub mod request;

pub(crate) use accept::PeerAddr;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use switchboard_hub::{ConnId, Hub, PresenceChange, Publication, Sink};
use switchboard_wire::io::detached::LazyWatcher;
use switchboard_wire::io::shrunk_capacity;
use switchboard_wire::{Message, Utf8Bytes};

use crate::auth::Auth;
use crate::context::Context;
use crate::expiry::{Due, ExpiryQueue};
use crate::wire;
use conn::{Conn, Ending};

/// The connections in one room, by id, in the order they joined, in one
/// dense array. A publish walks them front to back, which the CPU's
/// prefetcher (and the kernel's file table, whose sockets opened in about
/// the same order) follows far better than a hash table's order. A leave
/// moves the last member into the gap.
type Members = indexmap::IndexMap<ConnId, Arc<Conn>>;

/// How far ahead of the member being written a publish asks the CPU for the
/// next members' locks and sockets.
const PREFETCH_AHEAD: usize = 4;

/// Heartbeat settings of the native protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// The native protocol adapter.
pub(crate) struct Native {
    ctx: Arc<Context>,
    /// The context's hub (for brevity).
    hub: Arc<Hub>,
    allowed_origins: Option<Vec<String>>,
    auth_timeout: Duration,
    heartbeat: Heartbeat,
    max_message: usize,
    /// permessage-deflate, when accepted.
    deflate: Option<switchboard_wire::DeflateConfig>,
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    /// Members of each room, held directly: a publish walks one map.
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    epoch: Instant,
    /// The runtime the sweep runs on; parked connections' tasks start there
    /// again.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Watches the sockets of parked connections.
    pub(super) watcher: LazyWatcher,
    /// Sweeps so far (wrapping): connection tasks note it as they run, so
    /// the sweep can tell which have been quiet (see `driver`).
    tick: AtomicU32,
    /// Connections whose token expires.
    tokens: ExpiryQueue<ConnId>,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("connections", &self.conns().len())
            .finish()
    }
}

impl Native {
    pub(crate) fn new(
        ctx: Arc<Context>,
        heartbeat: Heartbeat,
        max_message: usize,
        deflate_threshold: Option<usize>,
        allowed_origins: Option<Vec<String>>,
        auth_timeout: Duration,
    ) -> Self {
        Self {
            hub: ctx.hub.clone(),
            ctx,
            allowed_origins,
            auth_timeout,
            heartbeat,
            max_message,
            deflate: deflate_threshold.map(accept::deflate),
            conns: Mutex::default(),
            rooms: RwLock::default(),
            epoch: Instant::now(),
            runtime: OnceLock::new(),
            watcher: LazyWatcher::new(),
            tick: AtomicU32::new(0),
            tokens: ExpiryQueue::default(),
        }
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the server started, plus [`CLOCK_BIAS_MS`]: a new
    /// connection's ping phase can then be taken off the clock's first
    /// readings too (a wave of connections right after a restart).
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + CLOCK_BIAS_MS
    }

    /// Connections of `user` (for the admin API).
    pub(crate) fn connections_of(&self, user: &str) -> Vec<ConnId> {
        self.conns()
            .values()
            .filter(|c| &*c.user == user)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Pushes `{"op":"refresh"}` to connections whose token is about to
    /// expire; closes those whose token expired (a `kick` with reason
    /// `token_expired`, then close code 4003). Only the connections due are
    /// visited ([`crate::expiry`]).
    pub(crate) fn check_expiry(&self, now: u64) {
        for entry in self.tokens.take_due(now) {
            // A connection that left took its entry along.
            let Some(c) = self.conns().get(&entry.1).cloned() else {
                continue;
            };
            let Some(expiry) = &c.expiry else {
                continue;
            };
            match self.tokens.step(entry, expiry, now) {
                Due::Nothing => {}
                Due::Refresh => c.push(text(r#"{"op":"refresh"}"#.to_owned())),
                Due::Expired => {
                    c.push(text(
                        r#"{"op":"kick","reason":"token_expired","reconnect":false}"#.to_owned(),
                    ));
                    c.end(Ending::Kicked(4003));
                }
            }
        }
    }

    /// What the adapters share.
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.ctx.auth
    }

    /// Tells every connection to reconnect elsewhere and closes it (1001).
    pub(crate) fn drain(&self) {
        let conns: Vec<Arc<Conn>> = self.conns().values().cloned().collect();
        for c in conns {
            c.push(text(
                r#"{"op":"kick","reason":"going_away","reconnect":true}"#.to_owned(),
            ));
            c.end(Ending::Kicked(1001));
        }
    }

    /// Open native connections.
    pub(crate) fn connection_count(&self) -> usize {
        self.conns().len()
    }

    /// `(socket, user)` of the connections in `room` (all without a room).
    pub(crate) fn sockets(&self, room: Option<&str>) -> Vec<(ConnId, Arc<str>)> {
        let conns = self.conns();
        match room {
            None => conns
                .values()
                .map(|c| (c.id.clone(), c.user.clone()))
                .collect(),
            Some(room) => {
                let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
                drop(conns);
                rooms
                    .get(room)
                    .into_iter()
                    .flat_map(|m| m.values())
                    .map(|c| (c.id.clone(), c.user.clone()))
                    .collect()
            }
        }
    }

    /// A connection by id.
    fn conn(&self, id: &str) -> Option<Arc<Conn>> {
        self.conns().get(id).cloned()
    }

    /// Whether `id` is a native connection.
    pub(crate) fn has(&self, id: &str) -> bool {
        self.conns().contains_key(id)
    }

    /// Kicks a connection: a `kick` message, then a close with 4001 (do not
    /// reconnect) or 4000 (reconnect now).
    pub(crate) fn kick(&self, id: &str, reason: Option<&str>, reconnect: bool) -> bool {
        let Some(c) = self.conns().get(id).cloned() else {
            return false;
        };
        let mut msg = json!({"op": "kick", "reconnect": reconnect});
        if let Some(r) = reason {
            msg["reason"] = json!(r);
        }
        c.push(text(msg.to_string()));
        c.end(Ending::Kicked(if reconnect { 4000 } else { 4001 }));
        true
    }

    fn join_room(&self, conn: &Arc<Conn>, room: &str) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        match rooms.get_mut(room) {
            Some(members) => {
                members.insert(conn.id.clone(), conn.clone());
            }
            None => {
                rooms.insert(
                    Arc::from(room),
                    Members::from([(conn.id.clone(), conn.clone())]),
                );
            }
        }
    }

    fn leave_room(&self, conn: &Conn, room: &str) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(room) {
            members.swap_remove(&conn.id);
            if let Some(to) = shrunk_capacity(members.len(), members.capacity()) {
                members.shrink_to(to);
            }
            if members.is_empty() {
                rooms.remove(room);
                if let Some(to) = shrunk_capacity(rooms.len(), rooms.capacity()) {
                    rooms.shrink_to(to);
                }
            }
        }
    }

    /// The connection ended: it leaves everything.
    fn gone(&self, conn: &Conn) {
        {
            let mut conns = self.conns();
            conns.remove(&conn.id);
            if let Some(to) = shrunk_capacity(conns.len(), conns.capacity()) {
                conns.shrink_to(to);
            }
        }
        if let Some(expiry) = &conn.expiry {
            self.tokens.forget(&conn.id, expiry);
        }
        let rooms: Vec<(Arc<str>, bool)> = std::mem::take(&mut conn.lock().rooms);
        self.leave_room(conn, &crate::relay::user_room(&conn.user));
        for (room, _) in &rooms {
            self.leave_room(conn, room);
        }
        self.ctx.disconnected(
            &conn.id,
            &conn.user,
            conn.anonymous,
            rooms.iter().map(|(r, _)| r.clone()),
        );
    }

    fn start_sweeper(self: &Arc<Self>) {
        self.runtime.get_or_init(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
            tokio::spawn(expire_files(Arc::downgrade(&self.ctx.files)));
            tokio::runtime::Handle::current()
        });
    }
}

/// Sends pings and drops connections silent for interval + timeout: one
/// task for all connections.
async fn sweep(native: Weak<Native>) {
    let Some(hb) = native.upgrade().map(|n| n.heartbeat) else {
        return;
    };
    let tick =
        (hb.interval.min(hb.timeout) / 20).clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (every, limit) = (
        hb.interval.as_millis() as u64,
        (hb.interval + hb.timeout).as_millis() as u64,
    );
    let park_after = driver::park_ticks(tick);
    loop {
        interval.tick().await;
        let Some(native) = native.upgrade() else {
            return;
        };
        let now = native.now_ms();
        let tick = native.tick.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        // The walk only reads each connection's clocks and task word (most
        // need nothing this tick); what they call for is done after it, out
        // of the connection table's lock.
        let mut todo: Vec<(Arc<Conn>, bool, Option<Beat>)> = Vec::new();
        {
            let conns = native.conns();
            let mut ahead = conns.values().skip(PREFETCH_AHEAD);
            for c in conns.values() {
                if let Some(next) = ahead.next() {
                    next.prefetch_for_sweep();
                }
                // A task quiet for long enough parks.
                let park = c.task.request_park(tick, park_after);
                let beat = if now.saturating_sub(c.last_seen.load(Ordering::Relaxed)) > limit {
                    Some(Beat::Dead)
                } else if now.saturating_sub(c.last_ping.load(Ordering::Relaxed)) >= every {
                    c.last_ping.store(now, Ordering::Relaxed);
                    Some(Beat::Ping)
                } else {
                    None
                };
                if park || beat.is_some() {
                    todo.push((c.clone(), park, beat));
                }
            }
        }
        for (c, park, beat) in todo {
            if park {
                c.waker.wake();
            }
            match beat {
                None => {}
                Some(Beat::Dead) => {
                    native.ctx.metrics.native.heartbeat_timeouts.inc();
                    c.end(Ending::Dead);
                }
                Some(Beat::Ping) => match driver::ping_now(&c) {
                    Some(true) => {}
                    Some(false) => c.waker.wake(),
                    None => {
                        c.lock().ping_due = true;
                        c.waker.wake();
                    }
                },
            }
        }
    }
}

/// Added to the heartbeat's clock (only differences of its readings count),
/// more than any ping interval (about 49 days).
const CLOCK_BIAS_MS: u64 = 1 << 32;

/// How long before its first ping a new connection counts as pinged: a
/// stable pseudo-random share of `interval` taken from its id, so that its
/// first ping comes within one interval of connecting, at a phase of its own.
fn ping_phase(id: &str, interval: Duration) -> u64 {
    switchboard_wire::io::park::phase_ms(id, interval.as_millis() as u64)
}

/// What the heartbeat sweep found a connection to need.
#[derive(Debug, Clone, Copy)]
enum Beat {
    /// Silent past the heartbeat's limit: closed.
    Dead,
    /// Pinged now.
    Ping,
}

/// Deletes file transfers past their TTL.
async fn expire_files(files: Weak<crate::files::Files>) {
    loop {
        let Some(every) = files.upgrade().map(|f| f.sweep_every()) else {
            return;
        };
        tokio::time::sleep(every).await;
        match files.upgrade() {
            Some(f) => {
                let n = f.expire();
                if n > 0 {
                    tracing::debug!(expired = n, "file transfers expired");
                }
            }
            None => return,
        }
    }
}

impl Sink for Native {
    fn publish(&self, p: &Arc<Publication>) {
        // Members are walked under the read lock (a join or leave waits for
        // the walk): no list is copied and no count raised per member. A
        // member's own lock is never held while this one is taken.
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        let Some(members) = rooms.get(p.room.as_str()) else {
            return;
        };
        // Encoded once, shared by every member.
        let frame = text(wire::message_frame(p));
        let metrics = &self.ctx.metrics;
        metrics.deliveries.inc_by(members.len() as u64);
        for (i, c) in members.values().enumerate() {
            // The lock and socket of the members a few places on are cold
            // (each is touched once per message): ask for them while this
            // one is written.
            if let Some((_, ahead)) = members.get_index(i + PREFETCH_AHEAD) {
                ahead.prefetch();
            }
            // Written from here when the connection is idle; its task is
            // woken only for what this could not finish.
            let wake = match driver::write_direct(self, c, &frame) {
                Some(done) => !done,
                None => {
                    let queued = if p.volatile {
                        let queued = c.enqueue_volatile(frame.clone());
                        if !queued {
                            metrics.native.queue_drops.inc();
                        }
                        queued
                    } else {
                        c.enqueue(frame.clone())
                    };
                    queued && !driver::write_now(self, c)
                }
            };
            if wake {
                c.waker.wake();
            }
        }
    }

    fn presence(&self, conn: &ConnId, change: &PresenceChange) {
        if let Some(c) = self.conns().get(conn).cloned() {
            let action = if change.joined { "join" } else { "leave" };
            let m = json!({"op": "presence", "room": change.room, "user": change.user, "action": action});
            // Presence events are volatile: a slow client loses them first
            // (it can ask `presence` again).
            if !c.push_volatile(text(m.to_string())) {
                self.ctx.metrics.native.queue_drops.inc();
            }
        }
    }

    fn owns(&self, conn: &ConnId) -> bool {
        self.has(conn)
    }
}

fn text(s: String) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res
}

fn url_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

//! The native protocol: JSON text frames on a plain WebSocket at `/ws`, for
//! a browser's bare `new WebSocket(url)` (docs/protocol.md, "Native
//! protocol"). The same operations as the Socket.IO relay, over the same
//! hub: a publish reaches a room's members on both protocols.

mod conn;
mod driver;
mod ops;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use switchboard_hub::{ConnId, Hub, PresenceChange, Publication, Sink};
use switchboard_wire::handshake::server::ServerOptions;
use switchboard_wire::io::server::upgrade;
use switchboard_wire::{Config, Message, Utf8Bytes};

use crate::auth::Auth;
use crate::wire;
use conn::{Conn, Ending};

/// Heartbeat settings of the native protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// The native protocol adapter.
/// What one client may do.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_rooms: usize,
    pub(crate) rate: crate::limits::RateConfig,
}

pub(crate) struct Native {
    pub(crate) limits: Limits,
    hub: Arc<Hub>,
    auth: Auth,
    heartbeat: Heartbeat,
    max_message: usize,
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    rooms: RwLock<HashMap<Arc<str>, HashSet<ConnId>>>,
    epoch: Instant,
    sweeper: OnceLock<()>,
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
        hub: Arc<Hub>,
        auth: Auth,
        heartbeat: Heartbeat,
        max_message: usize,
        limits: Limits,
    ) -> Self {
        Self {
            limits,
            hub,
            auth,
            heartbeat,
            max_message,
            conns: Mutex::default(),
            rooms: RwLock::default(),
            epoch: Instant::now(),
            sweeper: OnceLock::new(),
        }
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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
    /// `token_expired`, then close code 4003).
    pub(crate) fn check_expiry(&self, now: u64) {
        let conns: Vec<Arc<Conn>> = self.conns().values().cloned().collect();
        for c in conns {
            let Some(expiry) = &c.expiry else {
                continue;
            };
            match expiry.check(now) {
                crate::auth::Due::Nothing => {}
                crate::auth::Due::Refresh => c.push(text(r#"{"op":"refresh"}"#.to_owned())),
                crate::auth::Due::Expired => {
                    c.push(text(
                        r#"{"op":"kick","reason":"token_expired","reconnect":false}"#.to_owned(),
                    ));
                    c.end(Ending::Kicked(4003));
                }
            }
        }
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
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
                rooms
                    .get(room)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| conns.get(id))
                    .map(|c| (c.id.clone(), c.user.clone()))
                    .collect()
            }
        }
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

    /// Answers a request for `/ws`: the upgrade, or a refusal.
    pub(crate) fn handle<B>(self: &Arc<Self>, mut req: Request<B>) -> Response<Full<Bytes>> {
        if let Some(list) = &self.limits.allowed_origins
            && let Some(origin) = req.headers().get(http::header::ORIGIN)
            && !origin
                .to_str()
                .is_ok_and(|o| o != "null" && list.iter().any(|a| a == o))
        {
            return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
        }
        let token = req.uri().query().and_then(|q| url_param(q, "token"));
        let identity = match self.auth.identify(token.as_deref()) {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(error = %e, "native connection refused");
                return plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            }
        };
        let config = Config::default()
            .deflate(None)
            .max_message_size(self.max_message)
            .max_frame_size(self.max_message);
        let (res, _accepted, pending) = match upgrade(&mut req, &ServerOptions::default(), config) {
            Ok(u) => u,
            Err(e) => {
                let mut res = Response::new(Full::new(Bytes::from(format!("{e}\n"))));
                *res.status_mut() = e.status();
                return res;
            }
        };
        self.start_sweeper();
        let native = self.clone();
        tokio::spawn(async move {
            let Ok(ws) = pending.websocket().await else {
                return;
            };
            let id = crate::relay::new_conn_id();
            let conn = Arc::new(Conn::new(
                id.clone(),
                Arc::from(identity.user),
                identity.anonymous,
                identity.expires,
                native.now_ms(),
                native.limits.rate,
            ));
            native.conns().insert(id.clone(), conn.clone());
            native.hub.connect(
                conn.user.clone(),
                identity.info.map(|i| Bytes::from(i.to_string())),
            );
            let welcome = json!({
                "op": "welcome",
                "socket": &*conn.id,
                "user": &*conn.user,
                "ping_interval": native.heartbeat.interval.as_millis() as u64,
            });
            conn.push(text(welcome.to_string()));
            native.join_room(&conn, &crate::relay::user_room(&conn.user));
            tokio::spawn(driver::Driver::new(native, conn, ws));
        });
        res.map(|()| Full::default())
    }

    fn join_room(&self, conn: &Conn, room: &str) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        match rooms.get_mut(room) {
            Some(set) => {
                set.insert(conn.id.clone());
            }
            None => {
                rooms.insert(Arc::from(room), HashSet::from([conn.id.clone()]));
            }
        }
    }

    fn leave_room(&self, conn: &Conn, room: &str) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = rooms.get_mut(room) {
            set.remove(&conn.id);
            if set.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// The connection ended: it leaves everything.
    fn gone(&self, conn: &Conn) {
        self.conns().remove(&conn.id);
        let rooms: Vec<(Arc<str>, bool)> = std::mem::take(&mut conn.lock().rooms);
        self.leave_room(conn, &crate::relay::user_room(&conn.user));
        for (room, _) in &rooms {
            self.leave_room(conn, room);
        }
        self.hub
            .disconnect(&conn.id, &conn.user, rooms.iter().map(|(r, _)| r.clone()));
        if conn.anonymous {
            self.hub.forget_user(&conn.user);
        }
    }

    fn start_sweeper(self: &Arc<Self>) {
        self.sweeper.get_or_init(|| {
            tokio::spawn(sweep(Arc::downgrade(self)));
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
    loop {
        interval.tick().await;
        let Some(native) = native.upgrade() else {
            return;
        };
        let now = native.now_ms();
        let conns: Vec<Arc<Conn>> = native.conns().values().cloned().collect();
        for c in conns {
            if now.saturating_sub(c.last_seen.load(Ordering::Relaxed)) > limit {
                c.end(Ending::Dead);
            } else if now.saturating_sub(c.last_ping.load(Ordering::Relaxed)) >= every {
                c.last_ping.store(now, Ordering::Relaxed);
                c.lock().ping_due = true;
                c.waker.wake();
            }
        }
    }
}

impl Sink for Native {
    fn publish(&self, p: &Arc<Publication>) {
        let members: Vec<Arc<Conn>> = {
            let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
            let Some(set) = rooms.get(p.room.as_str()) else {
                return;
            };
            let conns = self.conns();
            set.iter().filter_map(|id| conns.get(id).cloned()).collect()
        };
        if members.is_empty() {
            return;
        }
        // Encoded once, shared by every member.
        let mut m = wire::message(&p.entry);
        m["op"] = json!("message");
        m["room"] = json!(p.room);
        m["epoch"] = json!(p.epoch);
        let frame = text(m.to_string());
        for c in members {
            c.push(frame.clone());
        }
    }

    fn presence(&self, conn: &ConnId, change: &PresenceChange) {
        if let Some(c) = self.conns().get(conn).cloned() {
            let action = if change.joined { "join" } else { "leave" };
            let m = json!({"op": "presence", "room": change.room, "user": change.user, "action": action});
            c.push(text(m.to_string()));
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

//! The Socket.IO relay (DESIGN.md §3): `join`, `leave`, `publish`,
//! `presence` and `history` as events with acks, over the hub.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_hub::{ConnId, Hub, PresenceChange, Publication, Sink};
use switchboard_socketio::server::{
    AckSender, Args, ConnectError, DisconnectReason, Event, Namespace, NamespaceBuilder, Socket,
};

use crate::auth::{Auth, Expiry};
use crate::limits::{Rate, RateConfig};
use crate::wire;

/// Per-socket relay state, kept in the socket's extensions (and so restored
/// with it by Socket.IO's connection state recovery).
#[derive(Debug)]
pub(crate) struct Member {
    /// The request rate limiter, made on the first request (idle sockets
    /// hold none).
    rate: OnceLock<Box<Rate>>,
    /// The token's expiry (boxed: anonymous and non-expiring tokens have
    /// none).
    pub(crate) expiry: Option<Box<Expiry>>,
    /// A generated id: nobody can look this user up once it is gone.
    anonymous: bool,
    pub(crate) user: Arc<str>,
    info: Option<Box<Bytes>>,
    /// Rooms joined with `presence: true`.
    presence: Mutex<Vec<String>>,
}

impl Member {
    fn presence_rooms(&self) -> Vec<String> {
        self.presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A fresh connection id: 20 URL-safe random characters (120 bits).
pub(crate) fn new_conn_id() -> Arc<str> {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    Arc::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The personal room of a user.
pub fn user_room(user: &str) -> String {
    format!("user:{user}")
}

/// Delivers hub publications to Socket.IO members of the room.
#[derive(Default)]
pub(crate) struct SioSink {
    pub(crate) ns: OnceLock<Namespace>,
}

impl Sink for SioSink {
    fn publish(&self, p: &Arc<Publication>) {
        if let Some(ns) = self.ns.get() {
            let args = Args::new(vec![wire::data(&p.entry), wire::meta(p)]);
            ns.to(&p.room).emit(&p.entry.event, args);
        }
    }

    fn presence(&self, conn: &ConnId, change: &PresenceChange) {
        if let Some(socket) = self.ns.get().and_then(|ns| ns.socket(conn)) {
            let action = if change.joined { "join" } else { "leave" };
            let _ = socket.emit(
                "presence",
                json!({"room": change.room, "user": change.user, "action": action}),
            );
        }
    }

    fn owns(&self, conn: &ConnId) -> bool {
        self.ns.get().is_some_and(|ns| ns.socket(conn).is_some())
    }
}

fn conn_id(socket: &Socket) -> ConnId {
    socket.id_shared()
}

fn reply(ev: Event, value: Value) {
    if let Some(ack) = ev.ack {
        ack.send(value);
    }
}

fn bad_request(ack: Option<AckSender>, message: &str) {
    if let Some(ack) = ack {
        ack.send(wire::error("bad_request", message));
    }
}

/// What one client may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayLimits {
    pub(crate) max_rooms: usize,
    pub(crate) rate: RateConfig,
}

/// Whether the socket may make one more request; if not, its ack says
/// `rate_limited`.
fn allowed(socket: &Socket, limits: &RelayLimits, ev: &mut Event) -> bool {
    let Some(m) = socket.data::<Member>() else {
        return false;
    };
    if m.rate
        .get_or_init(|| Box::new(Rate::new(limits.rate)))
        .allow()
    {
        return true;
    }
    if let Some(ack) = ev.ack.take() {
        ack.send(wire::error(
            "rate_limited",
            "over the request rate; slow down",
        ));
    }
    false
}

/// The relay namespace's handlers.
pub(crate) fn namespace(hub: Arc<Hub>, auth: Auth, limits: RelayLimits) -> NamespaceBuilder {
    let (h1, h2, h3, h4, h5, h6, h7) = (
        hub.clone(),
        hub.clone(),
        hub.clone(),
        hub.clone(),
        hub.clone(),
        hub.clone(),
        hub,
    );
    let auth2 = auth.clone();
    NamespaceBuilder::new()
        .middleware(move |req| {
            let token = req.auth().get("token").and_then(Value::as_str);
            match auth.identify(token) {
                Ok(id) => {
                    req.set_data(Member {
                        rate: OnceLock::new(),
                        expiry: id.expires.map(|e| Box::new(Expiry::new(Some(e)))),
                        anonymous: id.anonymous,
                        user: Arc::from(id.user),
                        info: id.info.map(|i| Box::new(Bytes::from(i.to_string()))),
                        presence: Mutex::default(),
                    });
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(error = %e, "connection refused");
                    Err(ConnectError::new("unauthorized"))
                }
            }
        })
        .on_connect(move |socket| on_connect(&h1, socket))
        .on_disconnect(move |socket, reason| on_disconnect(&h2, socket, reason))
        .on("join", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                join(&h3, socket, ev, limits.max_rooms);
            }
        })
        .on("leave", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                leave(&h4, socket, ev);
            }
        })
        .on("publish", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                publish(&h5, socket, ev);
            }
        })
        .on("refresh", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                refresh(&auth2, socket, ev);
            }
        })
        .on("presence", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                presence(&h6, socket, ev);
            }
        })
        .on("history", move |socket, mut ev| {
            if allowed(socket, &limits, &mut ev) {
                history(&h7, socket, ev);
            }
        })
        .on_any(move |socket, mut ev| {
            if !allowed(socket, &limits, &mut ev) {
                return;
            }
            let message = format!("unknown event {:?}", ev.name);
            if let Some(ack) = ev.ack {
                ack.send(wire::error("unknown_event", &message));
            }
        })
}

/// `refresh(token, ack)`: a fresh token for the same user extends the
/// connection in place.
fn refresh(auth: &Auth, socket: &Socket, ev: Event) {
    let token = ev.args.str(0);
    let result = match (auth.identify(token), socket.data::<Member>()) {
        (Ok(id), Some(m)) if !id.anonymous && *id.user == *m.user => {
            if let Some(expiry) = &m.expiry {
                expiry.set(id.expires);
            }
            Ok(id.expires)
        }
        (Ok(_), _) => Err("the token is for another user"),
        (Err(e), _) => {
            tracing::debug!(error = %e, "refresh refused");
            Err("invalid token")
        }
    };
    if let Some(ack) = ev.ack {
        ack.send(match result {
            Ok(exp) => json!({"ok": true, "expires_at": exp}),
            Err(message) => wire::error("unauthorized", message),
        });
    }
}

/// Asks Socket.IO clients whose token is about to expire for a fresh one
/// (`refresh` event), and disconnects those whose token expired (a `kick`
/// with reason `token_expired`, then the server's disconnect).
pub(crate) fn check_expiry(ns: &Namespace, now: u64) {
    for socket in ns.sockets() {
        let Some(m) = socket.data::<Member>() else {
            continue;
        };
        let Some(expiry) = &m.expiry else {
            continue;
        };
        match expiry.check(now) {
            crate::auth::Due::Nothing => {}
            crate::auth::Due::Refresh => {
                let _ = socket.emit("refresh", json!({}));
            }
            crate::auth::Due::Expired => {
                let _ = socket.emit(
                    "kick",
                    json!({"reason": "token_expired", "reconnect": false}),
                );
                socket.disconnect();
            }
        }
    }
}

fn on_connect(hub: &Hub, socket: &Socket) {
    let Some(member) = socket.data::<Member>() else {
        socket.disconnect();
        return;
    };
    let id = conn_id(socket);
    hub.connect(member.user.clone(), member.info.as_deref().cloned());
    let personal = user_room(&member.user);
    socket.join(&personal);
    if socket.recovered() {
        // Socket.IO restored the rooms; the hub learns them again.
        let presence = member.presence_rooms();
        for room in socket.rooms() {
            if room != socket.id() && room != personal {
                hub.join(&id, &member.user, &room, presence.contains(&room), None);
            }
        }
    }
}

fn on_disconnect(hub: &Hub, socket: &Socket, _reason: DisconnectReason) {
    let Some(member) = socket.data::<Member>() else {
        return;
    };
    // The socket's rooms are still listed in its disconnect handler (the
    // personal room too: a client may have joined it with `since`).
    let rooms = socket.rooms().into_iter().filter(|r| r != socket.id());
    hub.disconnect(&conn_id(socket), &member.user, rooms);
    if member.anonymous {
        hub.forget_user(&member.user);
    }
}

/// Refuses (with an error ack) a client operation on another user's
/// personal room; returns whether it was refused.
fn foreign_personal_room(socket: &Socket, room: &str, ack: &mut Option<AckSender>) -> bool {
    let own = socket
        .data::<Member>()
        .is_some_and(|m| room == user_room(&m.user));
    if room.starts_with("user:") && !own {
        if let Some(ack) = ack.take() {
            ack.send(wire::error(
                "forbidden",
                "personal rooms of other users are reserved to the backend",
            ));
        }
        return true;
    }
    false
}

fn join(hub: &Hub, socket: &Socket, mut ev: Event, max_rooms: usize) {
    let Some(room) = ev.args.str(0).filter(|r| wire::valid_room(r)) else {
        return bad_request(ev.ack, "join(room, opts?): room must be a non-empty string");
    };
    let room = room.to_owned();
    let room = room.as_str();
    let Some(member) = socket.data::<Member>() else {
        return;
    };
    if foreign_personal_room(socket, room, &mut ev.ack) {
        return;
    }
    // The socket's own id and personal room do not count.
    let rooms = socket.rooms();
    if !rooms.iter().any(|r| r == room) && rooms.len().saturating_sub(2) >= max_rooms {
        if let Some(ack) = ev.ack {
            ack.send(wire::error(
                "too_many_rooms",
                &format!("at most {max_rooms} rooms per connection"),
            ));
        }
        return;
    }
    let opts = ev.args.get(1).cloned().unwrap_or(Value::Null);
    let presence = opts
        .get("presence")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let since = match wire::position(opts.get("since")) {
        Ok(since) => since,
        Err(message) => return bad_request(ev.ack, message),
    };
    if presence {
        let mut rooms = member.presence.lock().unwrap_or_else(|e| e.into_inner());
        if !rooms.iter().any(|r| r == room) {
            rooms.push(room.to_owned());
        }
    }
    // Join the delivery room first, so nothing published after the position
    // below is missed.
    socket.join(room);
    let joined = hub.join(
        &conn_id(socket),
        &member.user,
        room,
        presence,
        since.as_ref(),
    );
    if !socket.connected() {
        // The connection ended meanwhile and its disconnect already left the
        // hub: undo, or this member would stay present forever.
        hub.leave(&conn_id(socket), room);
        return;
    }
    let mut answer = wire::joined(joined, since.is_some());
    answer["ok"] = json!(true);
    reply(ev, answer);
}

fn leave(hub: &Hub, socket: &Socket, ev: Event) {
    let Some(room) = ev.args.str(0) else {
        return bad_request(ev.ack, "leave(room): room must be a string");
    };
    let personal = socket
        .data::<Member>()
        .is_some_and(|m| room == user_room(&m.user));
    // The personal room stays joined for delivery; only the hub membership
    // (presence, a join with `since`) ends.
    hub.leave(&conn_id(socket), room);
    if !personal {
        socket.leave(room);
        if let Some(m) = socket.data::<Member>() {
            m.presence
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|r| r != room);
        }
    }
    reply(ev, json!({"ok": true}));
}

fn publish(hub: &Hub, socket: &Socket, mut ev: Event) {
    let (Some(room), Some(event)) = (
        ev.args.str(0).filter(|r| wire::valid_room(r)),
        ev.args.str(1).filter(|e| wire::valid_event(e)),
    ) else {
        return bad_request(
            ev.ack,
            "publish(room, event, data): room must be a string, event a name that is not reserved",
        );
    };
    let (room, event) = (room.to_owned(), event.to_owned());
    if foreign_personal_room(socket, &room, &mut ev.ack) {
        return;
    }
    if !ev.args.binary.is_empty() {
        return bad_request(ev.ack, "binary data cannot be published through the relay");
    }
    let data = ev.args.get(2).cloned().unwrap_or(Value::Null);
    let from = socket.data::<Member>().map(|m| m.user.to_string());
    let p = hub.publish(&room, event, Bytes::from(data.to_string()), from);
    reply(ev, json!({"ok": true, "offset": p.entry.offset}));
}

fn presence(hub: &Hub, socket: &Socket, mut ev: Event) {
    let Some(room) = ev.args.str(0).map(str::to_owned) else {
        return bad_request(ev.ack, "presence(room): room must be a string");
    };
    if foreign_personal_room(socket, &room, &mut ev.ack) {
        return;
    }
    let room = room.as_str();
    let list: Vec<Value> = hub.presence(room).iter().map(wire::present).collect();
    reply(ev, Value::Array(list));
}

fn history(hub: &Hub, socket: &Socket, mut ev: Event) {
    let Some(room) = ev
        .args
        .str(0)
        .filter(|r| wire::valid_room(r))
        .map(str::to_owned)
    else {
        return bad_request(
            ev.ack,
            "history(room, {since?, limit?}): room must be a string",
        );
    };
    if foreign_personal_room(socket, &room, &mut ev.ack) {
        return;
    }
    let room = room.as_str();
    let opts = ev.args.get(1).cloned().unwrap_or(Value::Null);
    let since = opts.get("since").and_then(Value::as_u64);
    let limit = wire::history_limit(opts.get("limit").and_then(Value::as_u64));
    let (epoch, entries) = hub.history(room, since, limit);
    reply(ev, wire::history(epoch, &entries, since));
}

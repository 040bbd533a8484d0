//! The Socket.IO relay (DESIGN.md §3): `join`, `leave`, `publish`,
//! `presence` and `history` as events with acks, over the hub.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use once_cell::race::OnceBox;
use serde_json::{Value, json};
use switchboard_hub::user_id::UserId;
use switchboard_hub::{ConnId, PresenceChange, Publication, Sink};
use switchboard_socketio::server::{
    AckSender, Args, ConnectError, DisconnectReason, Event, Namespace, NamespaceBuilder, Socket,
};

use crate::auth::Identity;
use crate::backend::BackendError;
use crate::context::{Context, Refused};
use crate::expiry::{Due, Expiry};
use crate::limits::Rate;
use crate::metrics::{Limit, Metrics};
use crate::rooms::{Action, Grants};
use crate::wire;

/// Per-socket relay state, kept in the socket's extensions (and so restored
/// with it by Socket.IO's connection state recovery).
#[derive(Debug)]
pub(crate) struct Member {
    /// The personal room's name, `user:<id>`, which holds the user id too:
    /// one allocation for both.
    room: Arc<str>,
    /// What only a member that made a request has, made on the first one
    /// (idle sockets hold none; 8 bytes, where a `OnceLock<Box<_>>` takes
    /// 16).
    active: OnceBox<Active>,
    /// What only some members have (boxed: most have none of it).
    extra: Option<Box<Extra>>,
    /// A generated id: nobody can look this user up once it is gone.
    anonymous: bool,
}

/// A member's state once it made a request.
#[derive(Debug)]
struct Active {
    /// The request rate limiter.
    rate: Rate,
    /// Rooms joined with `presence: true`.
    presence: Mutex<Vec<String>>,
}

/// Token grants, expiry and info, and the rooms the connect proxy chose.
#[derive(Debug)]
struct Extra {
    /// The token's expiry (anonymous and non-expiring tokens have none).
    expiry: Option<Expiry>,
    /// The token's `info` claim, told to the hub at connect.
    info: Option<Bytes>,
    grants: Option<Grants>,
    /// Joined at connect (then taken).
    initial_rooms: Mutex<Vec<String>>,
}

impl Member {
    fn new(id: Identity) -> Self {
        Self {
            room: Arc::from(user_room(&id.user)),
            active: OnceBox::new(),
            anonymous: id.anonymous,
            extra: (id.expires.is_some()
                || id.grants.is_some()
                || !id.rooms.is_empty()
                || id.info.is_some())
            .then(|| {
                Box::new(Extra {
                    expiry: id.expires.map(|e| Expiry::new(Some(e))),
                    info: id.info.map(|i| Bytes::from(i.to_string())),
                    grants: id.grants.map(|g| *g),
                    initial_rooms: Mutex::new(id.rooms),
                })
            }),
        }
    }

    /// The rooms to join at connect (once).
    fn take_initial_rooms(&self) -> Vec<String> {
        self.extra.as_ref().map_or_else(Vec::new, |e| {
            std::mem::take(&mut *e.initial_rooms.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// The user id (in the personal room's name).
    pub(crate) fn user_id(&self) -> &str {
        self.room
            .strip_prefix(USER_ROOM_PREFIX)
            .unwrap_or(&self.room)
    }

    /// The user id as the hub keeps it, lent by the personal room's name.
    pub(crate) fn user(&self) -> UserId {
        UserId::after(self.room.clone(), USER_ROOM_PREFIX)
            .unwrap_or_else(|| UserId::from(&self.room))
    }

    /// The member's state once it made a request, made now if need be.
    fn active(&self, ctx: &Context) -> &Active {
        self.active.get_or_init(|| {
            Box::new(Active {
                rate: Rate::new(ctx.limits.rate),
                presence: Mutex::default(),
            })
        })
    }

    fn may(&self, ctx: &Context, action: Action, room: &str) -> Result<(), &'static str> {
        ctx.may(
            action,
            room,
            self.user_id(),
            self.anonymous,
            self.extra.as_ref().and_then(|e| e.grants.as_ref()),
        )
    }

    /// The member's personal room's name, `user:<id>`.
    fn personal_room(&self) -> &Arc<str> {
        &self.room
    }

    /// The token's expiry, if it has one.
    fn expiry(&self) -> Option<&Expiry> {
        self.extra.as_ref().and_then(|e| e.expiry.as_ref())
    }

    /// The token's `info` claim, if any.
    fn info(&self) -> Option<Bytes> {
        self.extra.as_ref().and_then(|e| e.info.clone())
    }

    fn presence_rooms(&self) -> Vec<String> {
        self.active.get().map_or_else(Vec::new, |a| {
            a.presence.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }
}

/// A fresh connection id: 20 URL-safe random characters (120 bits).
pub(crate) fn new_conn_id() -> Arc<str> {
    Arc::from(switchboard_engine::server::Sid::random().as_str())
}

/// The personal room of a user.
pub fn user_room(user: &str) -> String {
    format!("{USER_ROOM_PREFIX}{user}")
}

/// What a personal room's name starts with.
const USER_ROOM_PREFIX: &str = "user:";

/// Delivers hub publications to Socket.IO members of the room.
pub(crate) struct SioSink {
    pub(crate) ns: OnceLock<Namespace>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Sink for SioSink {
    fn publish(&self, p: &Arc<Publication>) {
        if let Some(ns) = self.ns.get() {
            let args = Args::new(vec![wire::data(&p.entry), wire::meta(p)]);
            let mut to = ns.to(&p.room);
            if p.volatile {
                // Skipped for sockets with a backlog (slow consumers); kept
                // in the room's log all the same.
                to = to.volatile();
            }
            let n = to.emit(&p.entry.event, args) as u64;
            self.metrics.deliveries.inc_by(n);
            self.metrics.socketio.messages_out.inc_by(n);
            self.metrics
                .socketio
                .bytes_out
                .inc_by(n * p.entry.data.len() as u64);
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

/// Whether the socket may make one more request; if not, its ack says
/// `rate_limited`.
fn allowed(ctx: &Context, socket: &Socket, ev: &mut Event) -> bool {
    let Some(m) = socket.data::<Member>() else {
        return false;
    };
    let traffic = &ctx.metrics.socketio;
    traffic.messages_in.inc();
    let size: usize = ev.args.binary.iter().map(|b| b.len()).sum::<usize>()
        + ev.args.values.iter().map(json_size).sum::<usize>();
    traffic.bytes_in.inc_by(size as u64);
    if m.active(ctx).rate.allow() {
        return true;
    }
    ctx.metrics.reject(Limit::Rate);
    if let Some(ack) = ev.ack.take() {
        ack.send(wire::error(
            "rate_limited",
            "over the request rate; slow down",
        ));
    }
    false
}

/// Approximate encoded size of a JSON argument (for the byte counters).
fn json_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::Array(a) => a.iter().map(json_size).sum::<usize>() + 2,
        Value::Object(o) => {
            o.iter()
                .map(|(k, v)| k.len() + 3 + json_size(v))
                .sum::<usize>()
                + 2
        }
    }
}

type Handler = fn(&Context, &Socket, Event);

/// The relay namespace's handlers.
pub(crate) fn namespace(ctx: Arc<Context>) -> NamespaceBuilder {
    let mut ns = NamespaceBuilder::new();
    let c = ctx.clone();
    ns = if ctx.has_connect_proxy() {
        ns.middleware_async(move |req| {
            let ctx = c.clone();
            async move {
                let token = req.auth().get("token").and_then(Value::as_str);
                let identity = ctx.identify("socketio", token, req.headers(), None).await;
                let id = identity.map_err(|refused| connect_error(&refused))?;
                req.set_data(Member::new(id));
                Ok(())
            }
        })
    } else {
        // No backend to ask: the token is the whole answer, no future.
        ns.middleware(move |req| {
            let token = req.auth().get("token").and_then(Value::as_str);
            let id = c
                .identify_token("socketio", token)
                .map_err(|refused| connect_error(&refused))?;
            req.set_data(Member::new(id));
            Ok(())
        })
    };
    let c = ctx.clone();
    ns = ns.on_connect(move |socket| on_connect(&c, socket));
    let c = ctx.clone();
    ns = ns.on_disconnect(move |socket, reason| on_disconnect(&c, socket, reason));
    let ops: [(&str, Handler); 6] = [
        ("join", join),
        ("leave", leave),
        ("publish", publish),
        ("refresh", refresh),
        ("presence", presence),
        ("history", history),
    ];
    for (name, handler) in ops {
        let c = ctx.clone();
        ns = ns.on(name, move |socket, mut ev| {
            if allowed(&c, socket, &mut ev) {
                handler(&c, socket, ev);
            }
        });
    }
    ns.on_any(move |socket, mut ev| {
        if allowed(&ctx, socket, &mut ev) {
            rpc(&ctx, socket, ev);
        }
    })
}

/// The one place a refused Socket.IO connection gets its CONNECT_ERROR.
fn connect_error(refused: &Refused) -> ConnectError {
    match refused {
        Refused::Unauthorized => ConnectError::new("unauthorized"),
        Refused::Forbidden(reason) => {
            ConnectError::new("forbidden").with_data(json!({"reason": reason}))
        }
        Refused::Unavailable => ConnectError::new("unavailable"),
    }
}

/// An event the relay does not know: to the backend's RPC proxy (its answer
/// is the ack), or an `unknown_event` error.
fn rpc(ctx: &Context, socket: &Socket, ev: Event) {
    let backend = ctx.backend.as_ref().filter(|b| b.has_rpc());
    let (Some(backend), Some(member)) = (backend, socket.data::<Member>()) else {
        let message = format!("unknown event {:?}", ev.name);
        if let Some(ack) = ev.ack {
            ack.send(wire::error("unknown_event", &message));
        }
        return;
    };
    let backend = backend.clone();
    let (user, id) = (member.user(), socket.id_shared());
    let data = match ev.args.values.len() {
        0 => Value::Null,
        1 => ev.args.values[0].clone(),
        _ => Value::Array(ev.args.values.clone()),
    };
    tokio::spawn(async move {
        let answer = backend.rpc(&user, &id, &ev.name, &data).await;
        if let Some(ack) = ev.ack {
            ack.send(rpc_answer(answer));
        }
    });
}

/// The ack of an RPC: `{ok:true, result}` or an error (`rpc_failed` with the
/// backend's status and answer, `unavailable`).
pub(crate) fn rpc_answer(answer: Result<Value, BackendError>) -> Value {
    match answer {
        Ok(result) => json!({"ok": true, "result": result}),
        Err(BackendError::Failed(status, body)) => {
            let mut e = wire::error("rpc_failed", &format!("the backend answered {status}"));
            e["error"]["status"] = json!(status);
            e["error"]["data"] = body;
            e
        }
        Err(e) => {
            tracing::warn!(error = %e, "RPC proxy failed");
            wire::error("unavailable", "the backend is unavailable; try again")
        }
    }
}

/// `refresh(token, ack)`: a fresh token for the same user extends the
/// connection in place.
fn refresh(ctx: &Context, socket: &Socket, ev: Event) {
    let token = ev.args.str(0);
    let result = match (ctx.auth.identify(token), socket.data::<Member>()) {
        (Ok(id), Some(m)) if !id.anonymous && *id.user == *m.user_id() => {
            if let Some(expiry) = m.expiry() {
                ctx.socketio_tokens.renew(&socket.sid(), expiry, id.expires);
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
/// with reason `token_expired`, then the server's disconnect). Only the
/// connections due are visited ([`crate::expiry`]).
pub(crate) fn check_expiry(ctx: &Context, ns: &Namespace, now: u64) {
    let queue = &ctx.socketio_tokens;
    for entry in queue.take_due(now) {
        // A socket that left took its entry along; one leaving now is not
        // queued again below (its disconnect forgets it).
        let Some(socket) = ns.socket(entry.1.as_str()) else {
            continue;
        };
        let Some(m) = socket.data::<Member>() else {
            continue;
        };
        let Some(expiry) = m.expiry() else {
            continue;
        };
        match queue.step(entry, expiry, now) {
            Due::Nothing => {}
            Due::Refresh => {
                let _ = socket.emit("refresh", json!({}));
            }
            Due::Expired => {
                let _ = socket.emit(
                    "kick",
                    json!({"reason": "token_expired", "reconnect": false}),
                );
                socket.disconnect();
            }
        }
    }
}

fn on_connect(ctx: &Context, socket: &Socket) {
    let Some(member) = socket.data::<Member>() else {
        socket.disconnect();
        return;
    };
    let hub = &ctx.hub;
    // Made only for the hub joins below (most connections have none).
    let id = std::cell::OnceCell::new();
    let id = || id.get_or_init(|| conn_id(socket));
    let user = member.user();
    if let Some(expiry) = member.expiry() {
        ctx.socketio_tokens.watch(&socket.sid(), expiry);
    }
    ctx.connected(&user, member.info());
    let personal = member.personal_room();
    socket.join_shared(personal);
    let initial = member.take_initial_rooms();
    for room in initial.iter().filter(|r| wire::valid_room(r)) {
        // Rooms the backend chose: joined whatever the rules say.
        socket.join(room);
        let _ = hub.join(id(), &user, room, false, None);
    }
    if socket.recovered() {
        ctx.metrics.socketio.recovered.inc();
        // Socket.IO restored the rooms; the hub learns them again.
        let presence = member.presence_rooms();
        for room in socket.rooms() {
            if room != socket.id() && *room != **personal {
                // A store failure leaves this room unannounced in presence;
                // delivery (Socket.IO's own room) is unaffected.
                let _ = hub.join(id(), &user, &room, presence.contains(&room), None);
            }
        }
    }
}

fn on_disconnect(ctx: &Context, socket: &Socket, reason: DisconnectReason) {
    let Some(member) = socket.data::<Member>() else {
        return;
    };
    if reason == DisconnectReason::PingTimeout {
        ctx.metrics.socketio.heartbeat_timeouts.inc();
    }
    if let Some(expiry) = member.expiry() {
        ctx.socketio_tokens.forget(&socket.sid(), expiry);
    }
    // The socket's rooms are still listed in its disconnect handler (the
    // personal room too: a client may have joined it with `since`).
    let rooms = socket.rooms().into_iter().filter(|r| r != socket.id());
    ctx.disconnected(&conn_id(socket), member.user_id(), member.anonymous, rooms);
}

/// Refuses (with a `forbidden` ack) an operation the socket may not do to
/// `room`; returns whether it was refused.
fn refused(
    ctx: &Context,
    socket: &Socket,
    action: Action,
    room: &str,
    ack: &mut Option<AckSender>,
) -> bool {
    let verdict = match socket.data::<Member>() {
        Some(m) => m.may(ctx, action, room),
        None => Err("not connected"),
    };
    match verdict {
        Ok(()) => false,
        Err(message) => {
            if let Some(ack) = ack.take() {
                ack.send(wire::error("forbidden", message));
            }
            true
        }
    }
}

fn join(ctx: &Context, socket: &Socket, mut ev: Event) {
    let (hub, max_rooms) = (&ctx.hub, ctx.limits.max_rooms);
    let Some(room) = ev.args.str(0).filter(|r| wire::valid_room(r)) else {
        return bad_request(ev.ack, "join(room, opts?): room must be a non-empty string");
    };
    let room = room.to_owned();
    let room = room.as_str();
    let Some(member) = socket.data::<Member>() else {
        return;
    };
    if refused(ctx, socket, Action::Join, room, &mut ev.ack) {
        return;
    }
    // The socket's own id and personal room do not count.
    let rooms = socket.rooms();
    if !rooms.iter().any(|r| r == room) && rooms.len().saturating_sub(2) >= max_rooms {
        ctx.metrics.reject(Limit::Rooms);
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
        let mut rooms = member
            .active(ctx)
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !rooms.iter().any(|r| r == room) {
            rooms.push(room.to_owned());
        }
    }
    // Join the delivery room first, so nothing published after the position
    // below is missed.
    socket.join(room);
    let joined = hub.join(
        &conn_id(socket),
        &member.user(),
        room,
        presence,
        since.as_ref(),
    );
    let joined = match joined {
        Ok(joined) => joined,
        Err(e) => {
            socket.leave(room);
            return reply(ev, wire::unavailable(&e));
        }
    };
    if !socket.connected() {
        // The connection ended meanwhile and its disconnect already left the
        // hub: undo, or this member would stay present forever.
        hub.leave(&conn_id(socket), room);
        return;
    }
    if since.is_some() {
        match joined.missed {
            Some(_) => &ctx.metrics.socketio.recovered,
            None => &ctx.metrics.socketio.not_recovered,
        }
        .inc();
    }
    let mut answer = wire::joined(joined, since.is_some());
    answer["ok"] = json!(true);
    reply(ev, answer);
}

fn leave(ctx: &Context, socket: &Socket, ev: Event) {
    let hub = &ctx.hub;
    let Some(room) = ev.args.str(0) else {
        return bad_request(ev.ack, "leave(room): room must be a string");
    };
    let personal = socket
        .data::<Member>()
        .is_some_and(|m| room == &**m.personal_room());
    if room.starts_with("user:") && !personal {
        if let Some(ack) = ev.ack {
            ack.send(wire::error(
                "forbidden",
                "personal rooms of other users are reserved to the backend",
            ));
        }
        return;
    }
    // The personal room stays joined for delivery; only the hub membership
    // (presence, a join with `since`) ends.
    hub.leave(&conn_id(socket), room);
    if !personal {
        socket.leave(room);
        if let Some(m) = socket.data::<Member>()
            && let Some(active) = m.active.get()
        {
            let mut rooms = active.presence.lock().unwrap_or_else(|e| e.into_inner());
            rooms.retain(|r| r != room);
        }
    }
    reply(ev, json!({"ok": true}));
}

fn publish(ctx: &Context, socket: &Socket, mut ev: Event) {
    let valid = ev.args.str(0).is_some_and(wire::valid_room)
        && ev.args.str(1).is_some_and(wire::valid_event);
    // The event name moves out of the arguments; the room is read in place.
    let (true, Some(Value::String(event))) = (valid, ev.args.values.get_mut(1).map(Value::take))
    else {
        return bad_request(
            ev.ack,
            "publish(room, event, data): room must be a string, event a name that is not reserved",
        );
    };
    let room = ev.args.str(0).unwrap_or_default();
    if refused(ctx, socket, Action::Publish, room, &mut ev.ack) {
        return;
    }
    if !ev.args.binary.is_empty() {
        return bad_request(ev.ack, "binary data cannot be published through the relay");
    }
    // Serialised where it lies: `null` when absent.
    let data = serde_json::to_vec(ev.args.get(2).unwrap_or(&Value::Null)).unwrap_or_default();
    let from = socket.data::<Member>().map(|m| m.user_id().to_owned());
    // publish(room, event, data, {volatile?}, ack)
    let volatile = ev
        .args
        .get(3)
        .and_then(|o| o.get("volatile"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match ctx
        .hub
        .publish(room, event, Bytes::from(data), from, volatile)
    {
        Ok(p) => {
            ctx.metrics.publishes.inc();
            reply(ev, json!({"ok": true, "offset": p.entry.offset}));
        }
        Err(e) => reply(ev, wire::unavailable(&e)),
    }
}

fn presence(ctx: &Context, socket: &Socket, mut ev: Event) {
    let Some(room) = ev.args.str(0).map(str::to_owned) else {
        return bad_request(ev.ack, "presence(room): room must be a string");
    };
    if refused(ctx, socket, Action::Join, &room, &mut ev.ack) {
        return;
    }
    let room = room.as_str();
    let list: Vec<Value> = ctx.hub.presence(room).iter().map(wire::present).collect();
    reply(ev, Value::Array(list));
}

fn history(ctx: &Context, socket: &Socket, mut ev: Event) {
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
    if refused(ctx, socket, Action::Join, &room, &mut ev.ack) {
        return;
    }
    let room = room.as_str();
    let opts = ev.args.get(1).cloned().unwrap_or(Value::Null);
    let since = opts.get("since").and_then(Value::as_u64);
    let limit = wire::history_limit(opts.get("limit").and_then(Value::as_u64));
    match ctx.hub.history(room, since, limit) {
        Ok((epoch, entries)) => reply(ev, wire::history(epoch, &entries, since)),
        Err(e) => reply(ev, wire::unavailable(&e)),
    }
}
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    /// Every Socket.IO connection of the relay holds one, in an `Arc`: 40
    /// bytes make a 64-byte malloc chunk (48 would take 80).
    #[test]
    fn a_member_record_stays_small() {
        let size = std::mem::size_of::<super::Member>();
        assert!(size <= 40, "{size}");
    }
}

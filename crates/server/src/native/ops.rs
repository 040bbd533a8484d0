//! Requests of the native protocol: `join`, `leave`, `publish`, `presence`,
//! `history`, `refresh`, `rpc`, and the text `ping`.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchboard_wire::Message;

use super::conn::Conn;
use super::request::{self, HistorySince, Op, PublishRef, Refusal, bad};
use super::{Native, text};
use crate::metrics::Limit;
use crate::relay::user_room;
use crate::rooms::Action;
use crate::wire;
use switchboard_hub::Position;
use switchboard_hub::user_id::UserId;

impl From<switchboard_hub::StoreError> for Refusal {
    fn from(e: switchboard_hub::StoreError) -> Self {
        tracing::error!(error = %e, "history store failed");
        Refusal("unavailable", wire::UNAVAILABLE.into())
    }
}

pub(super) fn on_message(native: &Native, conn: &Arc<Conn>, m: Message) {
    let traffic = &native.ctx.metrics.native;
    traffic.messages_in.inc();
    traffic.bytes_in.inc_by(m.len() as u64);
    let t = match m {
        Message::Text(t) => t,
        // File chunks: flow-controlled by their window, not rate-limited.
        Message::Binary(b) => return super::files::on_chunk(native, conn, &b),
    };
    if t.as_str() == "ping" {
        return conn.push(text("pong".to_owned()));
    }
    if let Some(p) = request::publish(t.as_str()) {
        return publish_plain(native, conn, p);
    }
    let req = match request::object(t.as_str()) {
        Ok(req) => req,
        Err(refusal) => return reply(conn, None, Err(refusal)),
    };
    let id = request::id(&req);
    // A download's acknowledgement is not a request (no reply, no rate).
    if req.get("op").and_then(Value::as_str) == Some("file_ack") {
        if let Ok(Op::FileAck { transfer, chunk }) = request::op(req) {
            super::files::ack(native, conn, transfer, chunk);
        }
        return;
    }
    if !conn.rate.allow() {
        return reply(conn, id, Err(over_rate(native)));
    }
    let result = match request::op(req) {
        Ok(Op::Join {
            room,
            presence,
            since,
        }) => join(native, conn, &room, presence, since),
        Ok(Op::Leave { room }) => leave(native, conn, &room),
        Ok(Op::Publish {
            room,
            event,
            data,
            volatile,
        }) => publish(native, conn, &room, event, data.to_string(), volatile)
            .map(|offset| json!({ "offset": offset })),
        Ok(Op::Presence { room }) => presence(native, conn, &room),
        Ok(Op::History { room, since, limit }) => history(native, conn, &room, since, limit),
        Ok(Op::Refresh { token }) => refresh(native, conn, token.as_deref()),
        Ok(Op::Rpc { event, data }) => return rpc(native, conn, id, event, data),
        Ok(Op::Auth) => Err(bad("already authenticated (use refresh for a new token)")),
        Ok(Op::FileOffer(offer)) => {
            let (result, notice) = super::files::offer(native, conn, offer);
            reply(conn, id, result);
            if let Some(notice) = notice {
                super::files::announce(native, conn, notice);
            }
            return;
        }
        Ok(Op::FileGet { transfer, from }) => {
            let result = super::files::get(native, conn, transfer, from);
            let started = result.is_ok();
            reply(conn, id, result);
            if started {
                super::files::pump(native, conn, transfer);
            }
            return;
        }
        Ok(Op::FileAck { .. }) => return,
        Ok(Op::Files) => Ok(super::files::list(native, conn)),
        Ok(Op::FileCancel { transfer }) => super::files::cancel(native, conn, transfer),
        Err(refusal) => Err(refusal),
    };
    reply(conn, id, result);
}

fn reply(conn: &Conn, id: Option<Value>, result: Result<Value, Refusal>) {
    let mut m = match result {
        Ok(mut v) => {
            v["ok"] = json!(true);
            v
        }
        Err(Refusal(code, message)) => wire::error(code, &message),
    };
    if let Some(id) = id {
        m["id"] = id;
    }
    conn.push(text(m.to_string()));
}

/// Whether `conn` may do `action` to `room`.
pub(super) fn may(native: &Native, conn: &Conn, room: &str, action: Action) -> Result<(), Refusal> {
    native
        .ctx
        .may(
            action,
            room,
            &conn.user,
            conn.anonymous,
            conn.grants.as_deref(),
        )
        .map_err(|message| Refusal("forbidden", message.into()))
}

/// `{"op":"rpc","event":EV,"data":ANY}`: to the backend's RPC proxy; its
/// answer is the reply (`result`), asynchronously.
fn rpc(native: &Native, conn: &Conn, id: Option<Value>, event: Option<String>, data: Value) {
    let backend = native.ctx.backend.as_ref().filter(|b| b.has_rpc());
    let (Some(backend), Some(event)) = (backend, event) else {
        let refusal = match backend {
            None => Refusal("unknown_op", "no RPC backend is configured".into()),
            Some(_) => bad("event must be a name that is not reserved"),
        };
        return reply(conn, id, Err(refusal));
    };
    let backend = backend.clone();
    let Some(conn) = native.conn(&conn.id) else {
        return;
    };
    tokio::spawn(async move {
        let answer = backend.rpc(&conn.user, &conn.id, &event, &data).await;
        let mut m = crate::relay::rpc_answer(answer);
        if let Some(id) = id {
            m["id"] = id;
        }
        conn.push(text(m.to_string()));
    });
}

fn join(
    native: &Native,
    conn: &Arc<Conn>,
    room: &str,
    presence: bool,
    since: Option<Position>,
) -> Result<Value, Refusal> {
    may(native, conn, room, Action::Join)?;
    {
        let mut st = conn.lock();
        let max = native.ctx.limits.max_rooms;
        // The personal room does not count.
        let personal = user_room(&conn.user);
        let count = st.rooms.iter().filter(|(r, _)| **r != *personal).count();
        match st.rooms.iter_mut().find(|(r, _)| &**r == room) {
            Some(entry) => entry.1 |= presence,
            None if count >= max && room != personal => {
                native.ctx.metrics.reject(Limit::Rooms);
                return Err(Refusal(
                    "too_many_rooms",
                    format!("at most {max} rooms per connection"),
                ));
            }
            None => st.rooms.push((Arc::from(room), presence)),
        }
    }
    // Delivery first, then the position: nothing after it is missed.
    native.join_room(conn, room);
    let joined = native.hub.join(
        &conn.id,
        &UserId::from(&conn.user),
        room,
        presence,
        since.as_ref(),
    );
    match joined {
        Ok(joined) => {
            if since.is_some() {
                let traffic = &native.ctx.metrics.native;
                match joined.missed {
                    Some(_) => &traffic.recovered,
                    None => &traffic.not_recovered,
                }
                .inc();
            }
            Ok(wire::joined(joined, since.is_some()))
        }
        Err(e) => {
            conn.lock().rooms.retain(|(r, _)| &**r != room);
            native.leave_room(conn, room);
            Err(e.into())
        }
    }
}

fn leave(native: &Native, conn: &Conn, room: &str) -> Result<Value, Refusal> {
    if room.starts_with("user:") && room != user_room(&conn.user) {
        return Err(Refusal(
            "forbidden",
            "personal rooms of other users are reserved to the backend".into(),
        ));
    }
    conn.lock().rooms.retain(|(r, _)| &**r != room);
    if room != user_room(&conn.user) {
        native.leave_room(conn, room);
    }
    native.hub.leave(&conn.id, room);
    Ok(json!({}))
}

/// The refusal of a request over the connection's rate.
fn over_rate(native: &Native) -> Refusal {
    native.ctx.metrics.reject(Limit::Rate);
    Refusal(
        "rate_limited",
        "over the request rate; slow down".to_owned(),
    )
}

/// Publishes `data` (JSON text) and returns its offset.
fn publish(
    native: &Native,
    conn: &Conn,
    room: &str,
    event: String,
    data: String,
    volatile: bool,
) -> Result<u64, Refusal> {
    may(native, conn, room, Action::Publish)?;
    let p = native.hub.publish(
        room,
        event,
        Bytes::from(data),
        Some(String::from(&*conn.user)),
        volatile,
    )?;
    native.ctx.metrics.publishes.inc();
    Ok(p.entry.offset)
}

/// A publish decoded straight from its text ([`request::publish`]): the
/// same checks and answer as any request, written without a JSON tree.
fn publish_plain(native: &Native, conn: &Conn, p: PublishRef<'_>) {
    let result = if conn.rate.allow() {
        let data = p.data.get().to_owned();
        publish(
            native,
            conn,
            &p.room,
            p.event.into_owned(),
            data,
            p.volatile,
        )
    } else {
        Err(over_rate(native))
    };
    match result {
        // What `reply` writes for `{"offset": N}`, with the id as sent.
        Ok(offset) => {
            let id = p.id.map(RawValue::get);
            let mut out = String::with_capacity(40 + id.map_or(0, str::len));
            let _ = write!(out, "{{\"offset\":{offset},\"ok\":true");
            if let Some(id) = id {
                out.push_str(",\"id\":");
                out.push_str(id);
            }
            out.push('}');
            conn.push(text(out));
        }
        Err(refusal) => {
            let id = p.id.and_then(|i| serde_json::from_str(i.get()).ok());
            reply(conn, id, Err(refusal));
        }
    }
}

fn presence(native: &Native, conn: &Conn, room: &str) -> Result<Value, Refusal> {
    may(native, conn, room, Action::Join)?;
    let list: Vec<Value> = native
        .hub
        .presence(room)
        .iter()
        .map(wire::present)
        .collect();
    Ok(json!({"members": list}))
}

fn history(
    native: &Native,
    conn: &Conn,
    room: &str,
    since: HistorySince,
    limit: Option<u64>,
) -> Result<Value, Refusal> {
    may(native, conn, room, Action::Join)?;
    // From another epoch, everything the log holds is new.
    let since = match since {
        HistorySince::Start => None,
        HistorySince::Offset(o) => Some(o),
        HistorySince::Position(p) if native.hub.epoch(room)?.as_deref() == Some(&*p.epoch) => {
            Some(p.offset)
        }
        HistorySince::Position(_) => None,
    };
    let limit = wire::history_limit(limit);
    let (epoch, entries) = native.hub.history(room, since, limit)?;
    Ok(wire::history(epoch, &entries, since))
}

fn refresh(native: &Native, conn: &Conn, token: Option<&str>) -> Result<Value, Refusal> {
    match native.auth().identify(token) {
        Ok(id) if !id.anonymous && *id.user == *conn.user => {
            if let Some(expiry) = &conn.expiry {
                native.tokens.renew(&conn.id, expiry, id.expires);
            }
            Ok(json!({"expires_at": id.expires}))
        }
        Ok(_) => Err(Refusal(
            "unauthorized",
            "the token is for another user".into(),
        )),
        Err(_) => Err(Refusal("unauthorized", "invalid token".into())),
    }
}

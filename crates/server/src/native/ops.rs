//! Requests of the native protocol: `join`, `leave`, `publish`, `presence`,
//! `history`, `refresh`, `rpc`, and the text `ping`.

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_wire::Message;

use super::conn::Conn;
use super::{Native, text};
use crate::metrics::Limit;
use crate::relay::user_room;
use crate::rooms::Action;
use crate::wire;

/// A refused request: `{id?, ok:false, error:{code, message}}`.
struct Refusal(&'static str, String);

impl From<switchboard_hub::StoreError> for Refusal {
    fn from(e: switchboard_hub::StoreError) -> Self {
        tracing::error!(error = %e, "history store failed");
        Refusal("unavailable", wire::UNAVAILABLE.into())
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal("bad_request", message.into())
}

pub(super) fn on_message(native: &Native, conn: &Conn, m: Message) {
    let traffic = &native.ctx.metrics.native;
    traffic.messages_in.inc();
    traffic.bytes_in.inc_by(m.len() as u64);
    let Message::Text(t) = m else {
        return reply(
            conn,
            None,
            Err(bad("binary frames are not part of the protocol")),
        );
    };
    if t.as_str() == "ping" {
        return conn.push(text("pong".to_owned()));
    }
    let req: Value = match serde_json::from_str(t.as_str()) {
        Ok(v @ Value::Object(_)) => v,
        _ => return reply(conn, None, Err(bad("a request is a JSON object"))),
    };
    let id = req
        .get("id")
        .filter(|i| i.is_number() || i.is_string())
        .cloned();
    if !conn.rate.allow() {
        native.ctx.metrics.reject(Limit::Rate);
        let message = "over the request rate; slow down".to_owned();
        return reply(conn, id, Err(Refusal("rate_limited", message)));
    }
    let result = match req.get("op").and_then(Value::as_str) {
        Some("join") => join(native, conn, &req),
        Some("leave") => leave(native, conn, &req),
        Some("publish") => publish(native, conn, &req),
        Some("presence") => presence(native, conn, &req),
        Some("history") => history(native, conn, &req),
        Some("refresh") => refresh(native, conn, &req),
        Some("rpc") => return rpc(native, conn, id, &req),
        Some("auth") => Err(bad("already authenticated (use refresh for a new token)")),
        Some(op) => Err(Refusal("unknown_op", format!("unknown op {op:?}"))),
        None => Err(bad("missing op")),
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

/// The request's room, if `conn` may do `action` to it.
fn room<'a>(
    native: &Native,
    conn: &Conn,
    req: &'a Value,
    action: Action,
) -> Result<&'a str, Refusal> {
    let room = req
        .get("room")
        .and_then(Value::as_str)
        .filter(|r| wire::valid_room(r))
        .ok_or_else(|| bad("room must be a non-empty string"))?;
    native
        .ctx
        .may(
            action,
            room,
            &conn.user,
            conn.anonymous,
            conn.grants.as_deref(),
        )
        .map_err(|message| Refusal("forbidden", message.into()))?;
    Ok(room)
}

/// `{"op":"rpc","event":EV,"data":ANY}`: to the backend's RPC proxy; its
/// answer is the reply (`result`), asynchronously.
fn rpc(native: &Native, conn: &Conn, id: Option<Value>, req: &Value) {
    let backend = native.ctx.backend.as_ref().filter(|b| b.has_rpc());
    let event = req
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| wire::valid_event(e));
    let (Some(backend), Some(event)) = (backend, event) else {
        let refusal = match backend {
            None => Refusal("unknown_op", "no RPC backend is configured".into()),
            Some(_) => bad("event must be a name that is not reserved"),
        };
        return reply(conn, id, Err(refusal));
    };
    let (backend, event) = (backend.clone(), event.to_owned());
    let data = req.get("data").cloned().unwrap_or(Value::Null);
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

fn join(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let room = room(native, conn, req, Action::Join)?;
    let presence = req
        .get("presence")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let since = wire::position(req.get("since")).map_err(bad)?;
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
            None => st.rooms.push((std::sync::Arc::from(room), presence)),
        }
    }
    // Delivery first, then the position: nothing after it is missed.
    native.join_room(conn, room);
    let joined = native
        .hub
        .join(&conn.id, &conn.user, room, presence, since.as_ref());
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

fn leave(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let room = req
        .get("room")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("room must be a string"))?;
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

fn publish(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let room = room(native, conn, req, Action::Publish)?;
    let event = req
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| wire::valid_event(e))
        .ok_or_else(|| bad("event must be a name that is not reserved"))?;
    let data = req.get("data").cloned().unwrap_or(Value::Null);
    let volatile = req
        .get("volatile")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let p = native.hub.publish(
        room,
        event.to_owned(),
        Bytes::from(data.to_string()),
        Some(conn.user.to_string()),
        volatile,
    )?;
    native.ctx.metrics.publishes.inc();
    Ok(json!({"offset": p.entry.offset}))
}

fn presence(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let room = room(native, conn, req, Action::Join)?;
    let list: Vec<Value> = native
        .hub
        .presence(room)
        .iter()
        .map(wire::present)
        .collect();
    Ok(json!({"members": list}))
}

fn history(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let room = room(native, conn, req, Action::Join)?;
    // `since` is an offset, or a position {epoch, offset}: from another
    // epoch, everything the log holds is new.
    let since = match req.get("since") {
        Some(Value::Object(pos)) => {
            let epoch = pos.get("epoch").and_then(Value::as_str);
            let offset = pos.get("offset").and_then(Value::as_u64);
            match (epoch, offset) {
                (Some(e), Some(o)) if native.hub.epoch(room)?.as_deref() == Some(e) => Some(o),
                (Some(_), Some(_)) => None,
                _ => return Err(bad("since must be an offset or {epoch, offset}")),
            }
        }
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("since must be an offset or {epoch, offset}"))?,
        ),
    };
    let limit = match req.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("limit must be a non-negative integer"))?,
        ),
    };
    let limit = wire::history_limit(limit);
    let (epoch, entries) = native.hub.history(room, since, limit)?;
    Ok(wire::history(epoch, &entries, since))
}

fn refresh(native: &Native, conn: &Conn, req: &Value) -> Result<Value, Refusal> {
    let token = req.get("token").and_then(Value::as_str);
    match native.auth().identify(token) {
        Ok(id) if !id.anonymous && *id.user == *conn.user => {
            if let Some(expiry) = &conn.expiry {
                expiry.set(id.expires);
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

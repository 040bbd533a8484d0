//! JSON shapes shared by the relay and the admin API (docs/protocol.md).

use std::time::SystemTime;

use serde_json::{Value, json};
use switchboard_hub::{Entry, Present, Publication};

/// RFC 3339 with milliseconds, UTC.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Stored data back to JSON (it was JSON when published).
pub fn data(entry: &Entry) -> Value {
    serde_json::from_slice(&entry.data).unwrap_or(Value::Null)
}

/// A history message: `{offset, event, data, from, at}`.
pub fn message(entry: &Entry) -> Value {
    json!({
        "offset": entry.offset,
        "event": entry.event,
        "data": data(entry),
        "from": entry.from,
        "at": timestamp(entry.at),
    })
}

/// The `meta` argument of a delivered publication.
pub fn meta(p: &Publication) -> Value {
    json!({
        "room": p.room,
        "offset": p.entry.offset,
        "epoch": p.epoch,
        "from": p.entry.from,
        "at": timestamp(p.entry.at),
    })
}

/// A presence list entry: `{user, info, connections, since}`.
pub fn present(p: &Present) -> Value {
    json!({
        "user": p.user,
        "info": p.info.as_ref().and_then(|i| serde_json::from_slice::<Value>(i).ok()),
        "connections": p.connections,
        "since": timestamp(p.since),
    })
}

/// An error body: `{"ok":false,"error":{"code","message"}}`.
pub fn error(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message}})
}

/// Whether a room name is acceptable: 1–256 characters, none a control
/// character.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.chars().count() <= 256 && !room.chars().any(char::is_control)
}

/// Event names a publish may not use: Socket.IO's reserved names (the
/// official client drops the connection on them) and the relay's own
/// server-sent events.
const RESERVED: [&str; 9] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "presence",
    "kick",
    "refresh",
];

/// Whether an event name can be published: 1–128 characters, not reserved.
pub fn valid_event(event: &str) -> bool {
    !event.is_empty() && event.chars().count() <= 128 && !RESERVED.contains(&event)
}

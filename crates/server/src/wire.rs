//! JSON shapes shared by the relay and the admin API (docs/protocol.md).

use std::time::SystemTime;

use serde_json::{Value, json};
use switchboard_hub::{Entry, Joined, Position, Present, Publication};

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

/// The error a client gets when the history store fails (disk error):
/// nothing was done, the client may retry. The cause goes to the log.
pub fn unavailable(e: &switchboard_hub::StoreError) -> Value {
    tracing::error!(error = %e, "history store failed");
    error("unavailable", UNAVAILABLE)
}

/// The message of every `unavailable` error.
pub const UNAVAILABLE: &str = "the history store is unavailable; try again";

/// Whether a room name is acceptable: 1–256 characters, none a control
/// character.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.chars().count() <= 256 && !room.chars().any(char::is_control)
}

/// Event names a publish may not use: Socket.IO's reserved names (the
/// official client drops the connection on them) and the relay's own
/// server-sent events.
const RESERVED: [&str; 10] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "presence",
    "kick",
    "refresh",
    "file",
];

/// Whether an event name can be published: 1–128 characters, not reserved.
pub fn valid_event(event: &str) -> bool {
    !event.is_empty() && event.chars().count() <= 128 && !RESERVED.contains(&event)
}

/// Most messages one history answer holds.
pub const MAX_HISTORY: usize = 1000;

/// Most bytes of message data in one answer (`history`, the `missed` of a
/// join): an answer must fit the connection's outgoing buffer with room to
/// spare.
const MAX_ACK_BYTES: usize = 2 << 20;

/// The longest run of `entries` whose data fits [`MAX_ACK_BYTES`], from the
/// oldest (a client pages on with `since` = the last offset it got) or, with
/// `newest`, ending at the newest.
fn fit(entries: &[Entry], newest: bool) -> &[Entry] {
    let mut total = 0;
    let mut fits = |e: &Entry| {
        total += e.data.len() + e.event.len();
        total <= MAX_ACK_BYTES
    };
    if newest {
        let n = entries.iter().rev().take_while(|e| fits(e)).count();
        &entries[entries.len() - n..]
    } else {
        let n = entries.iter().take_while(|e| fits(e)).count();
        &entries[..n]
    }
}

/// A `since` position `{epoch, offset}` (absent or `null`: none).
pub fn position(v: Option<&Value>) -> Result<Option<Position>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(s) => match (
            s.get("epoch").and_then(Value::as_str),
            s.get("offset").and_then(Value::as_u64),
        ) {
            (Some(epoch), Some(offset)) => Ok(Some(Position {
                epoch: epoch.to_owned(),
                offset,
            })),
            _ => Err("since must be {epoch: string, offset: number}"),
        },
    }
}

/// The answer to a join: `{epoch, offset, recovered, missed?}`. What was
/// missed goes in only if it fits; else the client is told it did not
/// recover and pages through `history`.
pub fn joined(joined: Joined, asked_since: bool) -> Value {
    let missed = joined.missed.filter(|m| fit(m, false).len() == m.len());
    let mut answer = json!({
        "epoch": joined.position.epoch,
        "offset": joined.position.offset,
        "recovered": asked_since && missed.is_some(),
    });
    if let Some(missed) = &missed {
        answer["missed"] = missed.iter().map(message).collect();
    }
    answer
}

/// A history `limit` as asked (at most [`MAX_HISTORY`]).
pub fn history_limit(limit: Option<u64>) -> usize {
    limit.map_or(MAX_HISTORY, |l| (l as usize).min(MAX_HISTORY))
}

/// The answer to a history request: `{epoch, messages}`, the newest that fit
/// without `since`, the oldest after it with one.
pub fn history(epoch: String, entries: &[Entry], since: Option<u64>) -> Value {
    let messages: Vec<Value> = fit(entries, since.is_none()).iter().map(message).collect();
    json!({"epoch": epoch, "messages": messages})
}

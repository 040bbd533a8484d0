//! JSON shapes shared by the relay and the admin API (docs/protocol.md).

use std::io::Write as _;
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

/// The native protocol's `message` frame of a publication: the keys of
/// [`message`], then `op`, `room` and `epoch`, written straight from the
/// entry (the same text as building that object and serialising it, with
/// no object built). The stored data is JSON text already and goes in as it
/// is; data that is not JSON goes out as `null`, as [`data`] reads it.
pub fn message_frame(p: &Publication) -> String {
    let e = &p.entry;
    let from = e.from.as_deref().map_or(0, str::len);
    let mut out = Vec::with_capacity(
        120 + e.event.len() + e.data.len() + from + p.room.len() + p.epoch.len(),
    );
    out.extend_from_slice(b"{\"offset\":");
    let _ = write!(out, "{}", e.offset);
    out.extend_from_slice(b",\"event\":");
    json_str(&mut out, &e.event);
    out.extend_from_slice(b",\"data\":");
    if serde_json::from_slice::<serde::de::IgnoredAny>(&e.data).is_ok() {
        out.extend_from_slice(&e.data);
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"from\":");
    match &e.from {
        Some(from) => json_str(&mut out, from),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"at\":\"");
    // RFC 3339 needs no escaping.
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(e.at));
    out.extend_from_slice(b"\",\"op\":\"message\",\"room\":");
    json_str(&mut out, &p.room);
    out.extend_from_slice(b",\"epoch\":");
    json_str(&mut out, &p.epoch);
    out.push(b'}');
    // Every piece is UTF-8: the escaped strings, the digits, and data that
    // parsed as JSON (which is UTF-8 by definition).
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// `s` as a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a `Vec` cannot fail, and a `str` always serialises.
    let _ = serde_json::to_writer(out, s);
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use bytes::Bytes;

    use super::*;

    /// The frame as it was built before `message_frame`: the object, then
    /// serialised.
    fn built(p: &Publication) -> String {
        let mut m = message(&p.entry);
        m["op"] = json!("message");
        m["room"] = json!(p.room);
        m["epoch"] = json!(p.epoch);
        m.to_string()
    }

    fn publication(room: &str, event: &str, data: &[u8], from: Option<&str>) -> Publication {
        Publication {
            room: room.into(),
            epoch: "e1f2".into(),
            entry: Entry {
                offset: 18_446_744_073_709_551_615,
                at: UNIX_EPOCH + Duration::from_millis(1_765_140_000_123),
                event: event.into(),
                data: Bytes::copy_from_slice(data),
                from: from.map(str::to_owned),
            },
            volatile: false,
        }
    }

    #[test]
    fn the_message_frame_is_the_text_of_the_message_object() {
        // Data as every publisher stores it: a JSON value, serialised.
        let stored = |v: Value| v.to_string().into_bytes();
        let cases = [
            publication(
                "r",
                "m",
                &stored(json!({"seq": 1, "t": [1.5, -2, null, true], "s": "é\n\u{1}"})),
                Some("ann"),
            ),
            publication("room \"quoted\"\t", "év\u{1}", &stored(json!("text")), None),
            publication(
                "r",
                "m",
                &stored(json!(12_345_678_901_234_567_890u64)),
                Some(""),
            ),
            publication("r", "m", &stored(Value::Null), None),
        ];
        for p in &cases {
            assert_eq!(message_frame(p), built(p));
        }
        // Stored otherwise (spaces, escapes), the data keeps its text and
        // its value.
        let p = publication("r", "m", br#"{ "s" : "\u00e9", "n": 1e2 }"#, None);
        let ours: Value = serde_json::from_str(&message_frame(&p)).unwrap();
        let theirs: Value = serde_json::from_str(&built(&p)).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn data_that_is_not_json_goes_out_as_null() {
        for data in [&b""[..], b"{", b"\xff", b"1 2", b"{\"a\":1}x"] {
            let p = publication("r", "m", data, None);
            let frame = message_frame(&p);
            assert_eq!(frame, built(&p));
            let v: Value = serde_json::from_str(&frame).unwrap();
            assert_eq!(v["data"], Value::Null);
        }
    }
}

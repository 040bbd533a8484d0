//! Decoding a native-protocol request: the text of one frame into an
//! [`Op`] with typed, validated fields, or the refusal to answer with.
//! Pure (no connection, no hub): what is checked here is the shape of the
//! request; what the connection may do is decided in `ops`.

use serde_json::Value;
use switchboard_hub::Position;

use crate::wire;

/// A refused request: `{id?, ok:false, error:{code, message}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub &'static str, pub String);

pub(crate) fn bad(message: impl Into<String>) -> Refusal {
    Refusal("bad_request", message.into())
}

/// `since` of a `history` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistorySince {
    /// From the start of what the log holds.
    Start,
    /// After this offset.
    Offset(u64),
    /// After this position (from another epoch: from the start).
    Position(Position),
}

/// A request, its fields checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `{"op":"join","room","presence"?,"since"?}`.
    Join {
        /// A valid room name.
        room: String,
        /// Wants presence events.
        presence: bool,
        /// Where the client was.
        since: Option<Position>,
    },
    /// `{"op":"leave","room"}` (any string: leaving what one is not in is
    /// not an error).
    Leave {
        /// The room.
        room: String,
    },
    /// `{"op":"publish","room","event","data"?,"volatile"?}`.
    Publish {
        /// A valid room name.
        room: String,
        /// A valid, unreserved event name.
        event: String,
        /// The payload (`null` when absent).
        data: Value,
        /// May be dropped for slow consumers.
        volatile: bool,
    },
    /// `{"op":"presence","room"}`.
    Presence {
        /// A valid room name.
        room: String,
    },
    /// `{"op":"history","room","since"?,"limit"?}`.
    History {
        /// A valid room name.
        room: String,
        /// Where to start.
        since: HistorySince,
        /// At most this many (capped by `wire::history_limit`).
        limit: Option<u64>,
    },
    /// `{"op":"refresh","token"}`.
    Refresh {
        /// The new token (`None`: missing or not a string).
        token: Option<String>,
    },
    /// `{"op":"rpc","event","data"?}`.
    Rpc {
        /// The event, `None` when missing or reserved.
        event: Option<String>,
        /// The payload (`null` when absent).
        data: Value,
    },
    /// `{"op":"auth"}` after authentication.
    Auth,
}

/// A frame's JSON object, or the refusal for anything else.
pub fn object(text: &str) -> Result<Value, Refusal> {
    match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad("a request is a JSON object")),
    }
}

/// The request's `id`, echoed in its answer (a number or a string).
pub fn id(req: &Value) -> Option<Value> {
    req.get("id")
        .filter(|i| i.is_number() || i.is_string())
        .cloned()
}

fn valid_room(req: &Value) -> Result<String, Refusal> {
    req.get("room")
        .and_then(Value::as_str)
        .filter(|r| wire::valid_room(r))
        .map(str::to_owned)
        .ok_or_else(|| bad("room must be a non-empty string"))
}

fn flag(req: &Value, name: &str) -> bool {
    req.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The operation of a request object.
pub fn op(req: &Value) -> Result<Op, Refusal> {
    let op = match req.get("op").and_then(Value::as_str) {
        Some(op) => op,
        None => return Err(bad("missing op")),
    };
    Ok(match op {
        "join" => Op::Join {
            room: valid_room(req)?,
            presence: flag(req, "presence"),
            since: wire::position(req.get("since")).map_err(bad)?,
        },
        "leave" => Op::Leave {
            room: req
                .get("room")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("room must be a string"))?
                .to_owned(),
        },
        "publish" => Op::Publish {
            room: valid_room(req)?,
            event: req
                .get("event")
                .and_then(Value::as_str)
                .filter(|e| wire::valid_event(e))
                .ok_or_else(|| bad("event must be a name that is not reserved"))?
                .to_owned(),
            data: req.get("data").cloned().unwrap_or(Value::Null),
            volatile: flag(req, "volatile"),
        },
        "presence" => Op::Presence {
            room: valid_room(req)?,
        },
        "history" => Op::History {
            room: valid_room(req)?,
            since: history_since(req.get("since"))?,
            limit: match req.get("limit") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| bad("limit must be a non-negative integer"))?,
                ),
            },
        },
        "refresh" => Op::Refresh {
            token: req.get("token").and_then(Value::as_str).map(str::to_owned),
        },
        "rpc" => Op::Rpc {
            event: req
                .get("event")
                .and_then(Value::as_str)
                .filter(|e| wire::valid_event(e))
                .map(str::to_owned),
            data: req.get("data").cloned().unwrap_or(Value::Null),
        },
        "auth" => Op::Auth,
        op => return Err(Refusal("unknown_op", format!("unknown op {op:?}"))),
    })
}

/// `since` is an offset, or a position `{epoch, offset}`.
fn history_since(v: Option<&Value>) -> Result<HistorySince, Refusal> {
    let malformed = || bad("since must be an offset or {epoch, offset}");
    Ok(match v {
        None | Some(Value::Null) => HistorySince::Start,
        Some(Value::Object(pos)) => {
            let epoch = pos.get("epoch").and_then(Value::as_str);
            let offset = pos.get("offset").and_then(Value::as_u64);
            match (epoch, offset) {
                (Some(epoch), Some(offset)) => HistorySince::Position(Position {
                    epoch: epoch.to_owned(),
                    offset,
                }),
                _ => return Err(malformed()),
            }
        }
        Some(v) => HistorySince::Offset(v.as_u64().ok_or_else(malformed)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Op, Refusal> {
        op(&object(text)?)
    }

    #[test]
    fn each_op_is_decoded_with_its_fields() {
        assert_eq!(
            parse(r#"{"op":"join","room":"r","presence":true,"since":{"epoch":"e","offset":3}}"#),
            Ok(Op::Join {
                room: "r".into(),
                presence: true,
                since: Some(Position {
                    epoch: "e".into(),
                    offset: 3
                })
            })
        );
        assert_eq!(
            parse(r#"{"op":"publish","room":"r","event":"m","data":[1],"volatile":true}"#),
            Ok(Op::Publish {
                room: "r".into(),
                event: "m".into(),
                data: serde_json::json!([1]),
                volatile: true
            })
        );
        assert_eq!(
            parse(r#"{"op":"history","room":"r","since":4,"limit":2}"#),
            Ok(Op::History {
                room: "r".into(),
                since: HistorySince::Offset(4),
                limit: Some(2)
            })
        );
        assert_eq!(parse(r#"{"op":"auth"}"#), Ok(Op::Auth));
    }

    #[test]
    fn malformed_requests_are_refused_with_their_code() {
        let code = |t: &str| parse(t).unwrap_err().0;
        assert_eq!(code("[]"), "bad_request");
        assert_eq!(code("{}"), "bad_request");
        assert_eq!(code(r#"{"op":"fly"}"#), "unknown_op");
        assert_eq!(code(r#"{"op":"join","room":""}"#), "bad_request");
        assert_eq!(code(r#"{"op":"join","room":"r","since":5}"#), "bad_request");
        assert_eq!(
            code(r#"{"op":"publish","room":"r","event":"connect"}"#),
            "bad_request"
        );
        assert_eq!(
            code(r#"{"op":"history","room":"r","limit":-1}"#),
            "bad_request"
        );
        assert_eq!(
            code(r#"{"op":"history","room":"r","since":{"offset":1}}"#),
            "bad_request"
        );
        assert_eq!(id(&object(r#"{"id":[1]}"#).unwrap()), None);
        assert_eq!(id(&object(r#"{"id":"a"}"#).unwrap()), Some("a".into()));
    }
}

//! Decoding a native-protocol request: the text of one frame into an
//! [`Op`] with typed, validated fields, or the refusal to answer with.
//! Pure (no connection, no hub): what is checked here is the shape of the
//! request; what the connection may do is decided in `ops`.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use switchboard_hub::Position;

use crate::files::{Offer, Target, TransferId, chunk};
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
    /// `{"op":"file_offer","to","name","size","sha256","chunk_size"?,"transfer"?}`.
    FileOffer(Offer),
    /// `{"op":"file_get","transfer","from"?}`.
    FileGet {
        /// The transfer.
        transfer: TransferId,
        /// The first chunk to send.
        from: u32,
    },
    /// `{"op":"file_ack","transfer","chunk"}`: a download's chunks up to
    /// `chunk` are stored (not a request: no reply).
    FileAck {
        /// The transfer.
        transfer: TransferId,
        /// The last chunk stored.
        chunk: u32,
    },
    /// `{"op":"files"}`.
    Files,
    /// `{"op":"file_cancel","transfer"}`.
    FileCancel {
        /// The transfer.
        transfer: TransferId,
    },
}

/// A valid `publish` request, its fields borrowed from the frame's text:
/// no JSON tree is built, and the data goes on as the publisher wrote it.
#[derive(Debug)]
pub struct PublishRef<'a> {
    /// The request's `id` when it is a number or a string (as [`id`]).
    pub id: Option<&'a RawValue>,
    /// A valid room name.
    pub room: Cow<'a, str>,
    /// A valid, unreserved event name.
    pub event: Cow<'a, str>,
    /// The payload's JSON text (`null` when absent).
    pub data: &'a RawValue,
    /// May be dropped for slow consumers.
    pub volatile: bool,
}

/// The fields of a publish in their plain shape: every one of the type it
/// must have, none twice (serde refuses anything else).
#[derive(Deserialize)]
struct PlainPublish<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    room: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    volatile: Option<bool>,
}

/// The common request, a valid publish, decoded straight from the text.
/// `None` for everything else: other ops, and publishes that are not in the
/// plain shape or not valid (a field of another type, a key given twice, a
/// bad room or event name). [`object`] and [`op`] decode and answer those,
/// so both ways give the same outcome for every text.
pub fn publish(text: &str) -> Option<PublishRef<'_>> {
    // Serde also reads a struct from an array; a request is an object.
    if !text.trim_start().starts_with('{') || !text.contains("\"publish\"") {
        return None;
    }
    let p: PlainPublish<'_> = serde_json::from_str(text).ok()?;
    if p.op != "publish" || !wire::valid_room(&p.room) || !wire::valid_event(&p.event) {
        return None;
    }
    let data = p.data.unwrap_or(RawValue::NULL);
    // The data must be what the tree would have taken: a number in range,
    // no lone surrogate, no deeper nesting than the request's limit allows.
    let mut de = serde_json::Deserializer::from_str(data.get());
    Checked(DATA_DEPTH).deserialize(&mut de).ok()?;
    // As `id`: only a number or a string is echoed.
    let id =
        p.id.filter(|i| matches!(i.get().as_bytes()[0], b'"' | b'-' | b'0'..=b'9'));
    Some(PublishRef {
        id,
        room: p.room,
        event: p.event,
        data,
        volatile: p.volatile.unwrap_or(false),
    })
}

/// Containers the data of a request may nest: serde_json parses at most
/// 127 levels, and the request object is the first.
const DATA_DEPTH: usize = 126;

/// Reads one JSON value as [`Value`] would and refuses what it refuses
/// (a number out of range, a lone surrogate, nesting past the depth it
/// holds) without building anything.
#[derive(Clone, Copy)]
struct Checked(usize);

impl Checked {
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        match self.0 {
            0 => Err(E::custom("nested too deep")),
            n => Ok(Self(n - 1)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
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

/// The request's fields.
type Fields = Map<String, Value>;

/// Takes the string `name` out of the request (moved, not copied).
fn take_str(req: &mut Fields, name: &str) -> Option<String> {
    match req.remove(name) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn valid_room(req: &mut Fields) -> Result<String, Refusal> {
    take_str(req, "room")
        .filter(|r| wire::valid_room(r))
        .ok_or_else(|| bad("room must be a non-empty string"))
}

fn flag(req: &Fields, name: &str) -> bool {
    req.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The operation of a request object ([`object`]). Its strings and data
/// move into the [`Op`]: nothing is copied.
pub fn op(req: Value) -> Result<Op, Refusal> {
    let Value::Object(mut req) = req else {
        return Err(bad("a request is a JSON object"));
    };
    let req = &mut req;
    let op = match take_str(req, "op") {
        Some(op) => op,
        None => return Err(bad("missing op")),
    };
    Ok(match op.as_str() {
        "join" => Op::Join {
            room: valid_room(req)?,
            presence: flag(req, "presence"),
            since: wire::position(req.get("since")).map_err(bad)?,
        },
        "leave" => Op::Leave {
            room: take_str(req, "room").ok_or_else(|| bad("room must be a string"))?,
        },
        "publish" => Op::Publish {
            room: valid_room(req)?,
            event: take_str(req, "event")
                .filter(|e| wire::valid_event(e))
                .ok_or_else(|| bad("event must be a name that is not reserved"))?,
            data: req.remove("data").unwrap_or(Value::Null),
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
            token: take_str(req, "token"),
        },
        "rpc" => Op::Rpc {
            event: take_str(req, "event").filter(|e| wire::valid_event(e)),
            data: req.remove("data").unwrap_or(Value::Null),
        },
        "auth" => Op::Auth,
        "file_offer" => Op::FileOffer(file_offer(req)?),
        "file_get" => Op::FileGet {
            transfer: transfer(req)?,
            from: match req.get("from") {
                None | Some(Value::Null) => 0,
                Some(v) => u32_field(v, "from")?,
            },
        },
        "file_ack" => Op::FileAck {
            transfer: transfer(req)?,
            chunk: u32_field(req.get("chunk").unwrap_or(&Value::Null), "chunk")?,
        },
        "files" => Op::Files,
        "file_cancel" => Op::FileCancel {
            transfer: transfer(req)?,
        },
        op => return Err(Refusal("unknown_op", format!("unknown op {op:?}"))),
    })
}

fn transfer(req: &Fields) -> Result<TransferId, Refusal> {
    req.get("transfer")
        .and_then(Value::as_str)
        .and_then(TransferId::parse)
        .ok_or_else(|| bad("transfer must be the 32 hex characters of a transfer id"))
}

fn u32_field(v: &Value, name: &str) -> Result<u32, Refusal> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(format!("{name} must be a chunk index")))
}

/// A name that is printable text: 1–`max` characters, no control character.
fn printable(v: Option<&Value>, max: usize) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control))
        .map(str::to_owned)
}

fn file_offer(req: &Fields) -> Result<Offer, Refusal> {
    let to = req.get("to").filter(|t| t.is_object());
    let to = match (
        to.and_then(|t| t.get("room")),
        to.and_then(|t| t.get("user")),
    ) {
        (Some(r), None) => Target::Room(
            r.as_str()
                .filter(|r| wire::valid_room(r))
                .ok_or_else(|| bad("to.room must be a room name"))?
                .to_owned(),
        ),
        (None, Some(u)) => {
            Target::User(printable(Some(u), 256).ok_or_else(|| bad("to.user must be a user id"))?)
        }
        _ => return Err(bad("to must be {room} or {user}")),
    };
    Ok(Offer {
        to,
        name: printable(req.get("name"), 255)
            .ok_or_else(|| bad("name must be 1 to 255 printable characters"))?,
        size: req
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("size must be a non-negative integer"))?,
        sha256: req
            .get("sha256")
            .and_then(Value::as_str)
            .and_then(chunk::parse_digest)
            .ok_or_else(|| bad("sha256 must be 64 hex characters"))?,
        chunk_size: match req.get("chunk_size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(u32_field(v, "chunk_size")?),
        },
        transfer: match req.get("transfer") {
            None | Some(Value::Null) => None,
            Some(_) => Some(transfer(req)?),
        },
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
        op(object(text)?)
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
        let id = "00112233445566778899aabbccddeeff";
        let sha = "ab".repeat(32);
        let offer = format!(
            r#"{{"op":"file_offer","to":{{"user":"bob"}},"name":"a.txt","size":5,"sha256":"{sha}","transfer":"{id}"}}"#
        );
        assert_eq!(
            parse(&offer),
            Ok(Op::FileOffer(Offer {
                to: Target::User("bob".into()),
                name: "a.txt".into(),
                size: 5,
                sha256: [0xab; 32],
                chunk_size: None,
                transfer: TransferId::parse(id),
            }))
        );
        assert_eq!(
            parse(&format!(
                r#"{{"op":"file_ack","transfer":"{id}","chunk":7}}"#
            )),
            Ok(Op::FileAck {
                transfer: TransferId::parse(id).unwrap(),
                chunk: 7
            })
        );
    }

    #[test]
    fn malformed_file_requests_are_bad_requests() {
        let code = |t: &str| parse(t).unwrap_err().0;
        let sha = "00".repeat(32);
        for to in [
            r#"{}"#,
            r#"{"room":"r","user":"u"}"#,
            r#"{"room":""}"#,
            r#""r""#,
        ] {
            let t =
                format!(r#"{{"op":"file_offer","to":{to},"name":"n","size":1,"sha256":"{sha}"}}"#);
            assert_eq!(code(&t), "bad_request", "{t}");
        }
        for fields in [
            r#""name":"","size":1"#.to_owned(),
            format!(r#""name":"{}","size":1"#, "x".repeat(256)),
            r#""name":"a
b","size":1"#
                .to_owned(),
            r#""name":"n","size":-1"#.to_owned(),
            r#""name":"n","size":1,"chunk_size":4294967296"#.to_owned(),
            r#""name":"n","size":1,"transfer":"zz""#.to_owned(),
        ] {
            let t =
                format!(r#"{{"op":"file_offer","to":{{"room":"r"}},{fields},"sha256":"{sha}"}}"#);
            assert_eq!(code(&t), "bad_request", "{t}");
        }
        assert_eq!(code(r#"{"op":"file_get","transfer":"00"}"#), "bad_request");
        assert_eq!(
            code(r#"{"op":"file_ack","transfer":"00112233445566778899aabbccddeeff"}"#),
            "bad_request"
        );
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

    /// What the plain decoder takes, the tree takes as the same publish,
    /// with the same id, fields and data; what the tree refuses, it leaves.
    #[test]
    fn a_plain_publish_is_decoded_as_the_tree_decodes_it() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let texts = [
            r#"{"op":"publish","room":"r","event":"m","data":{"t":1,"pad":"xx"}}"#.to_owned(),
            r#"{"op":"publish","room":"bench","event":"bench","data":{"t":1765151234123456,"n":3,"pad":"xxxxxxxx"}}"#.to_owned(),
            r#"{"id":7,"op":"publish","room":"r","event":"m","data":[1,2.5,"a"],"volatile":true}"#
                .to_owned(),
            r#" {"op":"publish","room":"r\u00e9","event":"m\n","id":"a\"b"} "#.to_owned(),
            r#"{"op":"publish","room":"r","event":"m","data":null,"id":null,"volatile":null}"#
                .to_owned(),
            r#"{"op":"publish","room":"r","event":"m","data":{ "a" : [ 1 , {} ] },"x":{"y":[]}}"#
                .to_owned(),
            r#"{"op":"publish","room":"r","event":"m","id":[1],"data":-0}"#.to_owned(),
            format!(
                r#"{{"op":"publish","room":"r","event":"m","data":{}}}"#,
                deep(126)
            ),
            // Taken by neither.
            format!(
                r#"{{"op":"publish","room":"r","event":"m","data":{}}}"#,
                deep(127)
            ),
            r#"{"op":"publish","room":"r","event":"m","data":1e400}"#.to_owned(),
            r#"{"op":"publish","room":"r","event":"m","data":"\ud800"}"#.to_owned(),
            r#"{"op":"publish","room":"","event":"m"}"#.to_owned(),
            r#"{"op":"publish","room":"r","event":"connect"}"#.to_owned(),
            r#"{"op":"publish","room":"r"}"#.to_owned(),
            r#"{"op":"publish","room":"r","event":"m"} x"#.to_owned(),
            // The tree's way only: not in the plain shape.
            r#"{"op":"publish","room":"r","event":"m","data":1,"data":2}"#.to_owned(),
            r#"{"op":"publish","room":"r","event":"m","volatile":"yes"}"#.to_owned(),
            r#"{"op":"publish","room":"r","event":"m","id":1.5,"id":"b"}"#.to_owned(),
            r#"["publish","r","m"]"#.to_owned(),
            r#"{"op":"publi\u0073h","room":"r","event":"m"}"#.to_owned(),
            r#"{"op":"join","room":"publish"}"#.to_owned(),
        ];
        let mut plain = 0;
        for t in &texts {
            let tree = object(t).and_then(|req| Ok((id(&req), op(req)?)));
            // Left to the tree, which answers it (the count below checks
            // that the plain ones were taken).
            let Some(p) = publish(t) else {
                continue;
            };
            plain += 1;
            let Ok((
                tree_id,
                Op::Publish {
                    room,
                    event,
                    data,
                    volatile,
                },
            )) = tree
            else {
                panic!("{t}: taken plain, but the tree gives {tree:?}");
            };
            assert_eq!(p.room, room, "{t}");
            assert_eq!(p.event, event, "{t}");
            assert_eq!(p.volatile, volatile, "{t}");
            let raw: Value = serde_json::from_str(p.data.get()).unwrap();
            assert_eq!(raw, data, "{t}");
            let raw_id =
                p.id.map(|i| serde_json::from_str::<Value>(i.get()).unwrap());
            assert_eq!(raw_id, tree_id, "{t}");
        }
        assert_eq!(plain, 8);
    }
}

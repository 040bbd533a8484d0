//! Socket.IO v5 packets: `<type>[<attachments>-][<nsp>,][<id>][<json>]`.

use bytes::Bytes;
use serde_json::Value;

/// Event names the protocol reserves; a client may not send them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Packet kinds. Binary packets are `Event`/`Ack` with attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `0`: join a namespace (client), or the accept (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2` (`5` with attachments): an event, `[name, ...args]`.
    Event,
    /// `3` (`6` with attachments): an acknowledgement, `[...args]`.
    Ack,
    /// `4`: namespace connection refused.
    ConnectError,
}

/// A decoded (and, for binary packets, reassembled) packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Kind.
    pub kind: PacketKind,
    /// Namespace, `/` by default.
    pub nsp: String,
    /// Ack id.
    pub id: Option<u64>,
    /// JSON payload (placeholders kept in place for binary packets).
    pub data: Option<Value>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most attachments one packet may announce (the reference parser's
    /// `maxAttachments`, default 10).
    pub max_attachments: usize,
    /// Most bytes of attachments in one packet.
    pub max_attachment_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attachments: 10,
            max_attachment_bytes: 1_000_000,
        }
    }
}

/// A packet that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Empty input or a type outside 0–6.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count is not a positive integer followed by `-`.
    #[error("illegal attachments")]
    IllegalAttachments,
    /// More attachments announced than allowed.
    #[error("too many attachments")]
    TooManyAttachments,
    /// The attachments exceed the byte limit.
    #[error("attachments too large")]
    AttachmentsTooLarge,
    /// The ack id does not fit in 64 bits.
    #[error("invalid ack id")]
    BadAckId,
    /// The JSON does not parse, or has the wrong shape for the packet type
    /// (e.g. an event whose name is not a string or is reserved).
    #[error("invalid payload")]
    InvalidPayload,
    /// A placeholder whose `num` is not an index of an attachment, or an
    /// attachment that no placeholder refers to.
    #[error("invalid placeholder")]
    BadPlaceholder,
    /// Text arrived while attachments were expected.
    #[error("expected a binary attachment")]
    ExpectedAttachment,
}

/// The result of decoding a text packet.
#[derive(Debug)]
pub enum Decoded {
    /// A complete packet.
    Packet(Packet),
    /// A binary packet; feed its attachments to the [`Reassembly`].
    Binary(Reassembly),
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
pub struct Reassembly {
    packet: Packet,
    expected: usize,
    bytes: usize,
    limits: Limits,
}

impl Reassembly {
    /// Adds the next attachment; returns the packet once all have arrived.
    pub fn push(&mut self, attachment: Bytes) -> Result<Option<Packet>, PacketError> {
        self.bytes += attachment.len();
        if self.bytes > self.limits.max_attachment_bytes {
            return Err(PacketError::AttachmentsTooLarge);
        }
        self.packet.attachments.push(attachment);
        if self.packet.attachments.len() < self.expected {
            return Ok(None);
        }
        Ok(Some(std::mem::replace(
            &mut self.packet,
            Packet {
                kind: PacketKind::Ack,
                nsp: String::new(),
                id: None,
                data: None,
                attachments: Vec::new(),
            },
        )))
    }
}

/// Decodes a text packet.
pub fn decode(s: &str, limits: &Limits) -> Result<Decoded, PacketError> {
    let bytes = s.as_bytes();
    let (kind, binary) = match bytes.first() {
        Some(b'0') => (PacketKind::Connect, false),
        Some(b'1') => (PacketKind::Disconnect, false),
        Some(b'2') => (PacketKind::Event, false),
        Some(b'3') => (PacketKind::Ack, false),
        Some(b'4') => (PacketKind::ConnectError, false),
        Some(b'5') => (PacketKind::Event, true),
        Some(b'6') => (PacketKind::Ack, true),
        _ => return Err(PacketError::UnknownType),
    };
    let mut at = 1;
    let mut attachments = 0;
    if binary {
        let end = s[at..]
            .find('-')
            .map(|i| at + i)
            .ok_or(PacketError::IllegalAttachments)?;
        let digits = &s[at..end];
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PacketError::IllegalAttachments);
        }
        attachments = digits
            .parse::<usize>()
            .map_err(|_| PacketError::IllegalAttachments)?;
        if attachments == 0 {
            return Err(PacketError::IllegalAttachments);
        }
        if attachments > limits.max_attachments {
            return Err(PacketError::TooManyAttachments);
        }
        at = end + 1;
    }
    let mut nsp = String::from("/");
    if bytes.get(at) == Some(&b'/') {
        let end = s[at..].find(',').map_or(s.len(), |i| at + i);
        nsp = s[at..end].to_owned();
        at = (end + 1).min(s.len());
    }
    let mut id = None;
    let digits_end = s[at..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(s.len(), |i| at + i);
    if digits_end > at {
        id = Some(
            s[at..digits_end]
                .parse::<u64>()
                .map_err(|_| PacketError::BadAckId)?,
        );
        at = digits_end;
    }
    let data = if at < s.len() {
        let v: Value = serde_json::from_str(&s[at..]).map_err(|_| PacketError::InvalidPayload)?;
        if !payload_valid(kind, &v) {
            return Err(PacketError::InvalidPayload);
        }
        Some(v)
    } else {
        if matches!(
            kind,
            PacketKind::Event | PacketKind::Ack | PacketKind::ConnectError
        ) {
            return Err(PacketError::InvalidPayload);
        }
        None
    };
    if binary {
        // Every attachment must be referenced (an unreferenced one would be
        // buffered for nothing); `attachments` is within the limit here.
        let mut used = vec![false; attachments];
        if let Some(d) = &data {
            placeholders(d, &mut used)?;
        }
        if used.contains(&false) {
            return Err(PacketError::BadPlaceholder);
        }
    }
    let packet = Packet {
        kind,
        nsp,
        id,
        data,
        attachments: Vec::with_capacity(attachments.min(16)),
    };
    if binary {
        Ok(Decoded::Binary(Reassembly {
            packet,
            expected: attachments,
            bytes: 0,
            limits: *limits,
        }))
    } else {
        Ok(Decoded::Packet(packet))
    }
}

fn payload_valid(kind: PacketKind, v: &Value) -> bool {
    match kind {
        PacketKind::Connect => v.is_object(),
        PacketKind::Disconnect => false,
        PacketKind::ConnectError => v.is_string() || v.is_object(),
        PacketKind::Event => match v.as_array().and_then(|a| a.first()) {
            Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
            Some(Value::Number(_)) => true,
            _ => false,
        },
        PacketKind::Ack => v.is_array(),
    }
}

/// Checks every placeholder in `v` against the attachments and marks the
/// ones referenced in `used`. `{"_placeholder":true}` must have an integer
/// `num` in `0..used.len()`.
fn placeholders(v: &Value, used: &mut [bool]) -> Result<(), PacketError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| placeholders(i, used)),
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                let num = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(PacketError::BadPlaceholder)?;
                *used.get_mut(num).ok_or(PacketError::BadPlaceholder)? = true;
                return Ok(());
            }
            map.values().try_for_each(|i| placeholders(i, used))
        }
        _ => Ok(()),
    }
}

impl Packet {
    /// An event `name(args...)` in `nsp`.
    pub fn event(nsp: &str, name: &str, args: Vec<Value>, id: Option<u64>) -> Self {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(name.to_owned()));
        data.extend(args);
        Self {
            kind: PacketKind::Event,
            nsp: nsp.to_owned(),
            id,
            data: Some(Value::Array(data)),
            attachments: Vec::new(),
        }
    }

    /// The event name, for events.
    pub fn event_name(&self) -> Option<&str> {
        match (&self.kind, &self.data) {
            (PacketKind::Event, Some(Value::Array(a))) => a.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// Encodes to the text packet; the attachments follow it as binary frames.
    pub fn encode(&self) -> String {
        let binary = !self.attachments.is_empty();
        let ty = match (self.kind, binary) {
            (PacketKind::Connect, _) => '0',
            (PacketKind::Disconnect, _) => '1',
            (PacketKind::Event, false) => '2',
            (PacketKind::Ack, false) => '3',
            (PacketKind::ConnectError, _) => '4',
            (PacketKind::Event, true) => '5',
            (PacketKind::Ack, true) => '6',
        };
        let mut s = String::new();
        s.push(ty);
        if binary {
            s.push_str(&self.attachments.len().to_string());
            s.push('-');
        }
        if self.nsp != "/" {
            s.push_str(&self.nsp);
            s.push(',');
        }
        if let Some(id) = self.id {
            s.push_str(&id.to_string());
        }
        if let Some(data) = &self.data {
            s.push_str(&data.to_string());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(s: &str) -> Result<Packet, PacketError> {
        match decode(s, &Limits::default())? {
            Decoded::Packet(p) => Ok(p),
            Decoded::Binary(_) => panic!("binary"),
        }
    }

    #[test]
    fn decodes_the_protocol_examples() {
        let p = one("0").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (PacketKind::Connect, "/", None)
        );
        let p = one("0/admin,{\"token\":\"123\"}").unwrap();
        assert_eq!(p.nsp, "/admin");
        assert_eq!(p.data, Some(json!({"token": "123"})));
        let p = one("2[\"hello\",1]").unwrap();
        assert_eq!(p.event_name(), Some("hello"));
        let p = one("2/admin,456[\"project:delete\",123]").unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(456)));
        let p = one("3/admin,456[]").unwrap();
        assert_eq!(
            (p.kind, p.id, p.data),
            (PacketKind::Ack, Some(456), Some(json!([])))
        );
        let p = one("4/admin,{\"message\":\"Not authorized\"}").unwrap();
        assert_eq!(p.kind, PacketKind::ConnectError);
        assert_eq!(one("1/admin,").unwrap().kind, PacketKind::Disconnect);
    }

    #[test]
    fn encode_decode_roundtrip() {
        for s in [
            "0",
            "0/admin,{\"sid\":\"x\"}",
            "2[\"a\",{\"b\":[1,2]}]",
            "2/x,12[\"a\"]",
            "3/x,12[1]",
            "1/x,",
            "4{\"message\":\"no\"}",
        ] {
            assert_eq!(one(s).unwrap().encode(), s);
        }
    }

    #[test]
    fn refuses_what_the_reference_parser_refuses() {
        let bad = [
            "",
            "7",
            "x",
            "2",
            "3",
            "2{}",
            "2[]",
            "2[1",
            "2[\"connect\"]",
            "2[\"disconnect\",1]",
            "2[{\"a\":1}]",
            "0[]",
            "0\"str\"",
            "1{}",
            "3{}",
            "299999999999999999999999[\"a\"]",
        ];
        for s in bad {
            assert!(one(s).is_err(), "{s:?} should be refused");
        }
        assert!(one("2[42]").is_ok(), "numeric event names are allowed");
    }

    #[test]
    fn binary_packets_validate_placeholders_and_limits() {
        let limits = Limits::default();
        let s = "51-[\"upload\",{\"file\":{\"_placeholder\":true,\"num\":0}}]";
        let Decoded::Binary(mut r) = decode(s, &limits).unwrap() else {
            panic!()
        };
        let p = r.push(Bytes::from_static(b"\x01\x02")).unwrap().unwrap();
        assert_eq!(p.event_name(), Some("upload"));
        assert_eq!(p.attachments, vec![Bytes::from_static(b"\x01\x02")]);
        assert_eq!(p.encode(), s);
        let refused = [
            ("5-[\"a\"]", PacketError::IllegalAttachments),
            ("50-[\"a\"]", PacketError::IllegalAttachments),
            ("5x-[\"a\"]", PacketError::IllegalAttachments),
            ("51[\"a\"]", PacketError::IllegalAttachments),
            ("511-[\"a\"]", PacketError::TooManyAttachments),
            ("51000000-[\"a\"]", PacketError::TooManyAttachments),
            ("51-[\"a\"]", PacketError::BadPlaceholder),
            (
                "51-[\"a\",{\"_placeholder\":true,\"num\":1}]",
                PacketError::BadPlaceholder,
            ),
            (
                "51-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]",
                PacketError::BadPlaceholder,
            ),
            (
                "51-[\"a\",{\"_placeholder\":true,\"num\":-1}]",
                PacketError::BadPlaceholder,
            ),
            (
                "51-[\"a\",{\"_placeholder\":true,\"num\":0.5}]",
                PacketError::BadPlaceholder,
            ),
            // Every attachment must be referenced, repeated numbers or not.
            (
                "52-[\"a\",{\"_placeholder\":true,\"num\":0}]",
                PacketError::BadPlaceholder,
            ),
            (
                "52-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",
                PacketError::BadPlaceholder,
            ),
        ];
        for (s, err) in refused {
            assert_eq!(decode(s, &limits).err(), Some(err), "{s}");
        }
        let small = Limits {
            max_attachment_bytes: 3,
            ..Limits::default()
        };
        let Decoded::Binary(mut r) = decode(
            "52-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
            &small,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.push(Bytes::from_static(b"ab")), Ok(None));
        assert_eq!(
            r.push(Bytes::from_static(b"cd")),
            Err(PacketError::AttachmentsTooLarge)
        );
    }
}

//! Engine.IO v4 packets.

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, sent by the server as the first packet.
    Open(String),
    /// `1`: the transport is closing.
    Close,
    /// `2`: heartbeat (server → client), or the upgrade probe (`2probe`).
    Ping(String),
    /// `3`: heartbeat answer, or the probe answer (`3probe`).
    Pong(String),
    /// `4`: a text message.
    Message(String),
    /// A binary message (a binary WebSocket frame, or `b` + base64 in polling).
    Binary(Bytes),
    /// `5`: the client switches to the probed transport.
    Upgrade,
    /// `6`: releases a pending poll during an upgrade.
    Noop,
}

/// A packet that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// An empty string is not a packet.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// `b…` whose base64 does not decode.
    #[error("invalid base64 in a binary packet")]
    BadBase64,
    /// A packet that carries no data had some (`1x`, `5x`, `6x`).
    #[error("unexpected data after packet type {0}")]
    UnexpectedData(char),
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one element of a
    /// polling payload, where binary arrives as `b` + base64).
    pub fn decode_text(s: &str) -> Result<Self, PacketError> {
        let mut chars = s.chars();
        let ty = chars.next().ok_or(PacketError::Empty)?;
        let data = chars.as_str();
        let no_data = |p: Packet| {
            if data.is_empty() {
                Ok(p)
            } else {
                Err(PacketError::UnexpectedData(ty))
            }
        };
        match ty {
            '0' => Ok(Self::Open(data.to_owned())),
            '1' => no_data(Self::Close),
            '2' => Ok(Self::Ping(data.to_owned())),
            '3' => Ok(Self::Pong(data.to_owned())),
            '4' => Ok(Self::Message(data.to_owned())),
            '5' => no_data(Self::Upgrade),
            '6' => no_data(Self::Noop),
            'b' => base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(|v| Self::Binary(Bytes::from(v)))
                .map_err(|_| PacketError::BadBase64),
            other => Err(PacketError::UnknownType(other)),
        }
    }

    /// Encodes for a text channel (polling, or a WebSocket text frame).
    /// Binary becomes `b` + base64; on WebSocket send binary as a binary frame
    /// instead (see [`Packet::is_binary`]).
    pub fn encode_text(&self) -> String {
        let (ty, data): (char, &str) = match self {
            Self::Open(d) => ('0', d),
            Self::Close => ('1', ""),
            Self::Ping(d) => ('2', d),
            Self::Pong(d) => ('3', d),
            Self::Message(d) => ('4', d),
            Self::Upgrade => ('5', ""),
            Self::Noop => ('6', ""),
            Self::Binary(b) => {
                let mut s = String::with_capacity(1 + b.len().div_ceil(3) * 4);
                s.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut s);
                return s;
            }
        };
        let mut s = String::with_capacity(1 + data.len());
        s.push(ty);
        s.push_str(data);
        s
    }

    /// Whether this packet is binary data.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// Size of the packet's data, for `maxPayload` accounting.
    pub fn data_len(&self) -> usize {
        match self {
            Self::Open(d) | Self::Ping(d) | Self::Pong(d) | Self::Message(d) => d.len(),
            Self::Binary(b) => b.len(),
            Self::Close | Self::Upgrade | Self::Noop => 0,
        }
    }
}

/// The `open` packet's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// Session id.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` from polling).
    pub upgrades: Vec<String>,
    /// Milliseconds between server pings.
    pub ping_interval: u64,
    /// Milliseconds the client has to answer a ping.
    pub ping_timeout: u64,
    /// Largest payload the server accepts, in bytes.
    pub max_payload: u64,
}

impl Handshake {
    /// The `open` packet carrying this handshake.
    pub fn to_packet(&self) -> Packet {
        // Serialising a struct of strings and integers cannot fail.
        Packet::Open(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_roundtrips() {
        let packets = [
            Packet::Open("{\"sid\":\"x\"}".into()),
            Packet::Close,
            Packet::Ping(String::new()),
            Packet::Ping("probe".into()),
            Packet::Pong("probe".into()),
            Packet::Message("héllo".into()),
            Packet::Message(String::new()),
            Packet::Binary(Bytes::from_static(&[0, 1, 2, 255])),
            Packet::Binary(Bytes::new()),
            Packet::Upgrade,
            Packet::Noop,
        ];
        for p in packets {
            assert_eq!(
                Packet::decode_text(&p.encode_text()),
                Ok(p.clone()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn wire_forms_match_the_protocol() {
        assert_eq!(Packet::Message("hello".into()).encode_text(), "4hello");
        assert_eq!(Packet::Ping("probe".into()).encode_text(), "2probe");
        assert_eq!(
            Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])).encode_text(),
            "bAQIDBA=="
        );
        let hs = Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            hs.to_packet().encode_text(),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(Packet::decode_text(""), Err(PacketError::Empty));
        assert_eq!(Packet::decode_text("7"), Err(PacketError::UnknownType('7')));
        assert_eq!(
            Packet::decode_text("x1"),
            Err(PacketError::UnknownType('x'))
        );
        assert_eq!(Packet::decode_text("b!!"), Err(PacketError::BadBase64));
        assert_eq!(
            Packet::decode_text("1x"),
            Err(PacketError::UnexpectedData('1'))
        );
        assert_eq!(
            Packet::decode_text("6 "),
            Err(PacketError::UnexpectedData('6'))
        );
    }
}

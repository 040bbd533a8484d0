//! HTTP long-polling payloads: packets joined by the record separator.

use crate::packet::{Packet, PacketError};

/// The separator between packets in a polling payload.
pub const SEPARATOR: char = '\x1e';

/// Encodes packets into one polling response body.
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> String {
    let mut out = String::new();
    for (i, p) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(&p.encode_text());
    }
    out
}

/// Decodes a polling request body, failing on the first bad packet. At most
/// `max_packets` packets are accepted (a body of separators cannot expand into
/// an unbounded list).
pub fn decode_payload(body: &str, max_packets: usize) -> Result<Vec<Packet>, PayloadError> {
    let mut packets = Vec::new();
    for part in body.split(SEPARATOR) {
        if packets.len() == max_packets {
            return Err(PayloadError::TooManyPackets(max_packets));
        }
        packets.push(Packet::decode_text(part)?);
    }
    Ok(packets)
}

/// A polling body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// One packet is malformed.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// More packets than allowed in one body.
    #[error("more than {0} packets in one payload")]
    TooManyPackets(usize),
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn payloads_roundtrip_with_binary() {
        let packets = vec![
            Packet::Message("hello".into()),
            Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            Packet::Ping(String::new()),
        ];
        let body = encode_payload(&packets);
        assert_eq!(body, "4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(decode_payload(&body, 100), Ok(packets));
    }

    #[test]
    fn empty_parts_and_floods_are_refused() {
        assert_eq!(
            decode_payload("4a\x1e", 100),
            Err(PayloadError::Packet(PacketError::Empty))
        );
        let flood = "6\x1e".repeat(50) + "6";
        assert_eq!(
            decode_payload(&flood, 10),
            Err(PayloadError::TooManyPackets(10))
        );
    }
}

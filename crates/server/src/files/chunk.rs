//! The chunk frame of a file transfer (docs/protocol.md, "File transfer"):
//! `0x01`, the 16-byte transfer id, the chunk index (u32 big-endian), the
//! bytes. Pure.

use bytes::{BufMut, Bytes, BytesMut};

/// The first byte of a chunk frame.
pub const KIND: u8 = 0x01;
/// Bytes before the chunk's data.
pub const HEADER: usize = 21;

/// A transfer id: 16 random bytes, 32 lowercase hex characters in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub [u8; 16]);

impl TransferId {
    /// A new random id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// From its 32 hex characters (either case).
    pub fn parse(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            id[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(id))
    }
}

impl std::fmt::Display for TransferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A decoded chunk frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The transfer.
    pub transfer: TransferId,
    /// The chunk's index.
    pub index: u32,
    /// Its bytes.
    pub data: Bytes,
}

/// Decodes a binary frame; `None` when it is not a chunk frame.
pub fn decode(frame: &Bytes) -> Option<Chunk> {
    if frame.len() < HEADER || frame[0] != KIND {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&frame[1..17]);
    let index = u32::from_be_bytes([frame[17], frame[18], frame[19], frame[20]]);
    Some(Chunk {
        transfer: TransferId(id),
        index,
        data: frame.slice(HEADER..),
    })
}

/// Encodes a chunk frame.
pub fn encode(transfer: TransferId, index: u32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + data.len());
    b.put_slice(&header(transfer, index));
    b.put_slice(data);
    b.freeze()
}

/// The first [`HEADER`] bytes of a chunk frame (for a frame whose data is
/// read in place after them).
pub fn header(transfer: TransferId, index: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = KIND;
    h[1..17].copy_from_slice(&transfer.0);
    h[17..21].copy_from_slice(&index.to_be_bytes());
    h
}

/// Lowercase hex of `bytes` (a SHA-256 digest).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 digest from its 64 hex characters.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        d[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_frame_round_trips() {
        let id = TransferId::random();
        let frame = encode(id, 0x0102_0304, b"abc");
        assert_eq!(frame.len(), HEADER + 3);
        assert_eq!(&frame[17..21], &[1, 2, 3, 4]);
        let c = decode(&frame).unwrap();
        assert_eq!(
            (c.transfer, c.index, &c.data[..]),
            (id, 0x0102_0304, &b"abc"[..])
        );
        // An empty last chunk is still a frame; anything shorter is not.
        assert!(decode(&encode(id, 1, b"")).is_some());
        assert!(decode(&frame.slice(..HEADER - 1)).is_none());
        let mut other = frame.to_vec();
        other[0] = 2;
        assert!(decode(&Bytes::from(other)).is_none());
    }

    #[test]
    fn ids_and_digests_parse_from_hex_only() {
        let id = TransferId::random();
        assert_eq!(TransferId::parse(&id.to_string()), Some(id));
        assert_eq!(TransferId::parse(&id.to_string().to_uppercase()), Some(id));
        assert_eq!(TransferId::parse("00"), None);
        assert_eq!(TransferId::parse(&"g".repeat(32)), None);
        let d = [0xabu8; 32];
        assert_eq!(parse_digest(&hex(&d)), Some(d));
        assert_eq!(parse_digest(&"ab".repeat(31)), None);
        // Multi-byte characters never pass for hex digits.
        assert_eq!(TransferId::parse(&"é".repeat(16)), None);
    }
}

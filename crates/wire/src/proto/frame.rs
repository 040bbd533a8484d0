//! Frame headers (RFC 6455 §5.2): parsing and encoding.

use crate::error::ProtocolError;

/// Frame opcodes defined by RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; reserved values are a protocol error.
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub rsv1: bool,
    /// RSV2 and RSV3, never valid here.
    pub rsv23: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Declared payload length.
    pub len: u64,
}

/// Longest possible header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEAD_LEN: usize = 14;

impl FrameHead {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are
    /// needed; on success the header's length in bytes is returned with it.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let opcode = OpCode::from_bits(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                let len = u64::from_be_bytes(a);
                if len >> 63 != 0 {
                    return Err(ProtocolError::BadLength);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(b) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        let head = Self {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv23: b0 & 0x30 != 0,
            opcode,
            mask,
            len,
        };
        Ok(Some((head, at)))
    }

    /// Encodes this header into `out`, returning the number of bytes written.
    pub fn encode(&self, out: &mut [u8; MAX_HEAD_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | (u8::from(self.rsv1) << 6) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.len {
            0..=125 => {
                out[1] = mask_bit | self.len as u8;
                2
            }
            126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
                4
            }
            _ => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&self.len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(head: FrameHead) {
        let mut buf = [0u8; MAX_HEAD_LEN];
        let n = head.encode(&mut buf);
        // Every strict prefix is incomplete, the whole is the header.
        for cut in 0..n {
            assert_eq!(FrameHead::parse(&buf[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(FrameHead::parse(&buf[..n]), Ok(Some((head, n))));
    }

    #[test]
    fn headers_roundtrip_at_every_length_class_byte_by_byte() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, (1 << 63) - 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                for opcode in [
                    OpCode::Text,
                    OpCode::Binary,
                    OpCode::Continuation,
                    OpCode::Ping,
                ] {
                    roundtrip(FrameHead {
                        fin: true,
                        rsv1: false,
                        rsv23: false,
                        opcode,
                        mask,
                        len,
                    });
                }
            }
        }
    }

    #[test]
    fn length_with_the_top_bit_set_is_refused() {
        let mut buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHead::parse(&buf), Err(ProtocolError::BadLength));
        buf[2] = 0x7f;
        assert!(FrameHead::parse(&buf).unwrap().is_some());
    }

    #[test]
    fn reserved_opcodes_are_refused() {
        for op in [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                FrameHead::parse(&[0x80 | op, 0]),
                Err(ProtocolError::UnknownOpcode(op))
            );
        }
    }
}

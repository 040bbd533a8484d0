//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use bytes::{BufMut, Bytes, BytesMut};

use super::utf8;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed without a close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data inconsistent with its type (invalid UTF-8 text).
    pub const INVALID_DATA: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY: Self = Self(1008);
    /// 1009: message too big.
    pub const TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL: Self = Self(1011);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Valid: 1000–1003, 1007–1011 and the registered/private range 3000–4999.
    /// Everything else (1004–1006, 1012–2999 including 1015, < 1000, ≥ 5000) is
    /// refused with a protocol error.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The content of a close frame: a code and a UTF-8 reason (≤ 123 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Status code.
    pub code: CloseCode,
    /// Human-readable reason; may be empty.
    pub reason: String,
}

/// Longest reason that fits a control frame after the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// Why a received close payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadClose {
    /// One byte of payload, or a code outside the valid ranges.
    Protocol,
    /// The reason is not UTF-8.
    InvalidUtf8,
}

impl CloseFrame {
    /// A close frame with `code` and `reason` (truncated on a char boundary to fit).
    pub fn new(code: CloseCode, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            reason: reason[..end].to_owned(),
        }
    }

    /// Parses a received close payload. `Ok(None)` is an empty payload (no code).
    pub fn parse(payload: &[u8]) -> Result<Option<Self>, BadClose> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(BadClose::Protocol),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(BadClose::Protocol);
                }
                utf8::validate(&payload[2..]).map_err(|_| BadClose::InvalidUtf8)?;
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                Ok(Some(Self { code, reason }))
            }
        }
    }

    /// The wire payload: code then reason.
    pub fn to_payload(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(2 + self.reason.len());
        buf.put_u16(self.code.0);
        buf.put_slice(self.reason.as_bytes());
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_follow_the_rfc_registry() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
        }
    }

    #[test]
    fn parse_close_payloads() {
        assert_eq!(CloseFrame::parse(&[]), Ok(None));
        assert_eq!(CloseFrame::parse(&[0x03]), Err(BadClose::Protocol));
        assert_eq!(CloseFrame::parse(&[0x03, 0xed]), Err(BadClose::Protocol)); // 1005
        let ok = CloseFrame::parse(&[0x03, 0xe8, b'b', b'y', b'e'])
            .unwrap()
            .unwrap();
        assert_eq!(
            ok,
            CloseFrame {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            }
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xff]),
            Err(BadClose::InvalidUtf8)
        );
    }

    #[test]
    fn new_truncates_long_reasons_on_a_char_boundary() {
        let long = "é".repeat(100);
        let f = CloseFrame::new(CloseCode::NORMAL, &long);
        assert!(f.reason.len() <= MAX_REASON_LEN);
        assert!(f.to_payload().len() <= 125);
    }
}

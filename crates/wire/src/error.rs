//! Errors of the WebSocket layer, each mapped to exactly one wire outcome.

use crate::proto::close::CloseCode;

/// A violation by the peer (or a limit it crossed) that fails the connection.
///
/// Every variant maps to one close code in [`ProtocolError::close_code`]; that is
/// the only place where the mapping lives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reserved bit was set that no negotiated extension defines.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A client frame without a mask, or a server frame with one.
    #[error("frame masking is wrong for this role")]
    BadMasking,
    /// A control frame longer than 125 bytes or fragmented.
    #[error("invalid control frame")]
    BadControlFrame,
    /// A continuation without a message in progress, or a new message inside one.
    #[error("unexpected continuation or interleaved data frame")]
    BadFragmentation,
    /// The 64-bit length had its most significant bit set.
    #[error("invalid frame length")]
    BadLength,
    /// A close frame with a one-byte payload or a code that is not allowed.
    #[error("invalid close frame")]
    BadClose,
    /// Text (or a close reason) that is not UTF-8.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// The compressed data could not be inflated.
    #[error("invalid compressed data")]
    BadCompression,
    /// A frame whose declared length exceeds `max_frame_size`.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooBig {
        /// Declared length.
        len: u64,
        /// Configured limit.
        limit: usize,
    },
    /// A message (after inflation) larger than `max_message_size`.
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooBig {
        /// Configured limit.
        limit: usize,
    },
    /// A message made of more frames than `max_fragments`.
    #[error("message has more than {limit} fragments")]
    TooManyFragments {
        /// Configured limit.
        limit: usize,
    },
    /// Data arrived after the peer's close frame.
    #[error("frame received after close")]
    AfterClose,
}

impl ProtocolError {
    /// The close code sent to the peer when this error fails the connection.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 => CloseCode::INVALID_DATA,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::TOO_BIG,
            Self::TooManyFragments { .. } => CloseCode::POLICY,
            _ => CloseCode::PROTOCOL,
        }
    }
}

/// Errors of a WebSocket connection driven over an IO stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol; a close frame with the mapped code was queued.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
    /// Sending after the connection was closed.
    #[error("connection already closed")]
    Closed,
    /// The stream ended without a close handshake.
    #[error("connection reset without a close frame")]
    ResetWithoutClose,
    /// An IO error on the underlying stream.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A TLS configuration error.
    #[error("tls: {0}")]
    Tls(String),
    /// A URL that is not `ws://` or `wss://` with a host.
    #[error("invalid url: {0}")]
    Url(String),
}

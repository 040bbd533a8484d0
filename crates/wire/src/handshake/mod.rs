//! The opening handshake (RFC 6455 §4), both sides, without IO.
//!
//! The server side validates a request given as method, version and headers
//! (so it works under hyper or with [`server::parse_request`] on raw bytes) and
//! produces the 101 response. The client side builds the request bytes and
//! checks the response. Every failure is a [`HandshakeError`] that names the
//! HTTP status to answer with.

pub mod client;
pub mod server;

use base64::Engine;
use http::StatusCode;
use sha1::{Digest, Sha1};

use crate::deflate::NegotiationError;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Caps on the request or response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeadLimits {
    /// Most header lines. Default 64.
    pub max_headers: usize,
    /// Most bytes in the whole head (request line + headers). Default 16 KiB.
    pub max_head_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_headers: 64,
            max_head_bytes: 16 * 1024,
        }
    }
}

/// A failed opening handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.x.
    #[error("malformed HTTP head")]
    MalformedHttp,
    /// More header lines than allowed.
    #[error("too many headers")]
    TooManyHeaders,
    /// The head is longer than allowed.
    #[error("request head too large")]
    HeadTooLarge,
    /// Not a GET request.
    #[error("method must be GET")]
    MethodNotGet,
    /// HTTP/1.0 or older.
    #[error("HTTP/1.1 or newer required")]
    HttpVersion,
    /// No `Upgrade: websocket` (a plain HTTP request).
    #[error("not a WebSocket upgrade request")]
    NotUpgrade,
    /// `Connection` lacks the `upgrade` token.
    #[error("Connection header must contain \"upgrade\"")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported Sec-WebSocket-Version (only 13 is supported)")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing or not 16 base64-encoded bytes.
    #[error("missing or invalid Sec-WebSocket-Key")]
    BadKey,
    /// A header that appears more than once where it must not.
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// `Sec-WebSocket-Protocol` is not a token list.
    #[error("malformed Sec-WebSocket-Protocol")]
    BadProtocolHeader,
    /// `Sec-WebSocket-Extensions` does not parse.
    #[error("malformed Sec-WebSocket-Extensions")]
    BadExtensionHeader,
    /// Client side: the server did not answer 101.
    #[error("server answered {0} instead of 101")]
    BadStatus(u16),
    /// Client side: wrong or missing `Sec-WebSocket-Accept`.
    #[error("server sent a wrong Sec-WebSocket-Accept")]
    BadAccept,
    /// Client side: the server chose a subprotocol that was not offered.
    #[error("server selected a subprotocol that was not offered")]
    ProtocolNotOffered,
    /// Client side: the server's extension response is unacceptable.
    #[error("extension negotiation failed: {0}")]
    Extension(#[from] NegotiationError),
}

impl HandshakeError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooManyHeaders | Self::HeadTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotUpgrade | Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Extra headers that go with the error response.
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::UnsupportedVersion => &[("sec-websocket-version", "13")],
            Self::NotUpgrade => &[("upgrade", "websocket"), ("connection", "upgrade")],
            Self::MethodNotGet => &[("allow", "GET")],
            _ => &[],
        }
    }

    /// A complete raw HTTP/1.1 error response (for servers without an HTTP stack).
    pub fn to_response_bytes(&self) -> Vec<u8> {
        let status = self.status();
        let body = format!("{self}\n");
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        for (k, v) in self.response_headers() {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
pub(crate) fn has_token(values: http::header::GetAll<'_, http::HeaderValue>, token: &str) -> bool {
    values.iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

//! The reference server's HTTP errors: one status and JSON body per cause.

use bytes::Bytes;
use http::{Response, StatusCode, header};

use super::Body;

/// Why a request is refused, with the reference server's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// `transport` missing or not enabled (code 0).
    #[error("Transport unknown")]
    UnknownTransport,
    /// `sid` does not name a live session (code 1).
    #[error("Session ID unknown")]
    UnknownSid,
    /// A handshake that is not a GET (code 2).
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// Anything else the protocol forbids (code 3).
    #[error("Bad request")]
    BadRequest,
    /// Origin not allowed (code 4, status 403).
    #[error("Forbidden")]
    Forbidden,
    /// `EIO` missing or not 4 (code 5).
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// A POST body over `maxHttpBufferSize` (status 413).
    #[error("Payload too large")]
    PayloadTooLarge,
}

impl RequestError {
    /// The reference server's error code.
    pub fn code(self) -> u8 {
        match self {
            Self::UnknownTransport => 0,
            Self::UnknownSid => 1,
            Self::BadHandshakeMethod => 2,
            Self::BadRequest | Self::PayloadTooLarge => 3,
            Self::Forbidden => 4,
            Self::UnsupportedProtocolVersion => 5,
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// `{"code":N,"message":"…"}` with the status.
    pub fn response(self) -> Response<Body> {
        let body = format!(r#"{{"code":{},"message":"{}"}}"#, self.code(), self);
        let mut res = Response::new(Body::new(Bytes::from(body)));
        *res.status_mut() = self.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        res
    }
}

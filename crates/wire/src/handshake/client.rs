//! Client side of the opening handshake.

use base64::Engine;
use http::{HeaderMap, HeaderValue, header};

use super::server::to_header_map;
use super::{HandshakeError, HeadLimits, accept_key, has_token};
use crate::deflate::params::{accept_response, client_offer};
use crate::deflate::{DeflateConfig, DeflateParams};

/// What the client asks for.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate to offer; `None` offers nothing.
    pub deflate: Option<DeflateConfig>,
    /// Extra request headers (e.g. `Authorization`, `Origin`).
    pub headers: Vec<(String, String)>,
}

/// A request sent and waiting for its response.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    expected_accept: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

/// The server's response, validated.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// Agreed permessage-deflate parameters.
    pub deflate: Option<DeflateParams>,
    /// All response headers.
    pub headers: HeaderMap,
}

impl ClientHandshake {
    /// Builds the request for `host` (with port if not default) and `path`
    /// (with query). Returns the bytes to send and the pending handshake.
    pub fn new(host: &str, path: &str, options: &ClientOptions) -> (Vec<u8>, Self) {
        let key_bytes: [u8; 16] = rand::random();
        let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        );
        if !options.protocols.is_empty() {
            req.push_str(&format!(
                "sec-websocket-protocol: {}\r\n",
                options.protocols.join(", ")
            ));
        }
        if let Some(cfg) = &options.deflate {
            req.push_str(&format!(
                "sec-websocket-extensions: {}\r\n",
                client_offer(cfg)
            ));
        }
        for (k, v) in &options.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let pending = Self {
            expected_accept: accept_key(key.as_bytes()),
            protocols: options.protocols.clone(),
            deflate: options.deflate,
        };
        (req.into_bytes(), pending)
    }

    /// Parses and validates the response head from `buf`. `Ok(None)` needs more
    /// bytes; on success also returns the head's length (frames may follow).
    pub fn parse_response(
        &self,
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<(Negotiated, usize)>, HandshakeError> {
        let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut resp = httparse::Response::new(&mut storage);
        let len = match resp.parse(buf) {
            // A head over the cap is refused whether it arrived whole or not.
            Ok(httparse::Status::Complete(len)) if len > limits.max_head_bytes => {
                return Err(HandshakeError::HeadTooLarge);
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
                return Err(HandshakeError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(_) => return Err(HandshakeError::MalformedHttp),
        };
        let code = resp.code.unwrap_or(0);
        if code != 101 {
            return Err(HandshakeError::BadStatus(code));
        }
        let headers = to_header_map(resp.headers)?;
        Ok(Some((self.check(headers)?, len)))
    }

    fn check(&self, headers: HeaderMap) -> Result<Negotiated, HandshakeError> {
        if !has_token(headers.get_all(header::UPGRADE), "websocket") {
            return Err(HandshakeError::NotUpgrade);
        }
        if !has_token(headers.get_all(header::CONNECTION), "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        let accept = headers
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .map(HeaderValue::as_bytes);
        if accept != Some(self.expected_accept.as_bytes()) {
            return Err(HandshakeError::BadAccept);
        }
        let protocol = match headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
            None => None,
            Some(v) => {
                let p = v.to_str().map_err(|_| HandshakeError::ProtocolNotOffered)?;
                if !self.protocols.iter().any(|o| o == p) {
                    return Err(HandshakeError::ProtocolNotOffered);
                }
                Some(p.to_owned())
            }
        };
        let values = headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
        let deflate = match &self.deflate {
            Some(cfg) => accept_response(values.iter().map(HeaderValue::as_bytes), cfg)?,
            None if values.iter().next().is_some() => {
                return Err(HandshakeError::Extension(
                    crate::deflate::NegotiationError::NotOffered("any extension".into()),
                ));
            }
            None => None,
        };
        Ok(Negotiated {
            protocol,
            deflate,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::server::{ServerOptions, accept, parse_request};

    #[test]
    fn client_and_server_agree() {
        let opts = ClientOptions {
            protocols: vec!["chat".into()],
            deflate: Some(DeflateConfig::default()),
            headers: vec![("origin".into(), "http://example.com".into())],
        };
        let (req, pending) = ClientHandshake::new("example.com:80", "/ws?x=1", &opts);
        let (raw, _) = parse_request(&req, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(raw.path, "/ws?x=1");
        let server = ServerOptions::default()
            .with_protocols(["chat".to_string()])
            .with_deflate(Some(DeflateConfig::default()));
        let acc = accept(&raw.method, raw.version, &raw.headers, &server).unwrap();
        let mut resp = acc.response_bytes();
        resp.extend_from_slice(b"\x81\x00");
        for cut in 0..resp.len() - 2 {
            assert!(
                pending
                    .parse_response(&resp[..cut], &HeadLimits::default())
                    .unwrap()
                    .is_none()
            );
        }
        let (neg, len) = pending
            .parse_response(&resp, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(len, resp.len() - 2);
        assert_eq!(neg.protocol.as_deref(), Some("chat"));
        assert!(neg.deflate.is_some());
    }

    #[test]
    fn wrong_accept_and_status_are_refused() {
        let (_, pending) = ClientHandshake::new("h", "/", &ClientOptions::default());
        let resp = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        let err = pending
            .parse_response(resp, &HeadLimits::default())
            .unwrap_err();
        assert_eq!(err, HandshakeError::BadAccept);
        let err = pending.parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n", &HeadLimits::default());
        assert_eq!(err.unwrap_err(), HandshakeError::BadStatus(403));
    }

    #[test]
    fn a_whole_head_over_the_cap_is_refused_like_a_partial_one() {
        // Found by the handshake fuzz target: only a partial head was checked.
        let (_, pending) = ClientHandshake::new("h", "/", &ClientOptions::default());
        let limits = HeadLimits {
            max_head_bytes: 64,
            ..HeadLimits::default()
        };
        let resp = format!("HTTP/1.1 101 OK\r\nX-Pad: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            pending
                .parse_response(resp.as_bytes(), &limits)
                .unwrap_err(),
            HandshakeError::HeadTooLarge
        );
        assert_eq!(
            pending
                .parse_response(&resp.as_bytes()[..80], &limits)
                .unwrap_err(),
            HandshakeError::HeadTooLarge
        );
    }
}

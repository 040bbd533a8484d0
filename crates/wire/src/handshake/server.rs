//! Server side of the opening handshake.

use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header};

use super::{HandshakeError, HeadLimits, accept_key, has_token};
use crate::deflate::{DeflateConfig, DeflateParams, params::accept_offer};

/// What a server accepts during the handshake.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Subprotocols supported, in order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate preferences; `None` declines every offer.
    pub deflate: Option<DeflateConfig>,
}

impl ServerOptions {
    /// Options that accept permessage-deflate offers with `deflate`.
    pub fn with_deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }

    /// Adds supported subprotocols.
    pub fn with_protocols(mut self, protocols: impl IntoIterator<Item = String>) -> Self {
        self.protocols.extend(protocols);
        self
    }
}

/// A request that may be upgraded, with what was negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// Chosen subprotocol.
    pub protocol: Option<String>,
    /// Agreed permessage-deflate parameters and the response header value.
    pub deflate: Option<(DeflateParams, String)>,
}

impl Accepted {
    /// The `101 Switching Protocols` response.
    pub fn response(&self) -> Response<()> {
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        // Base64 and tokens are always valid header values.
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(Ok(v)) = self.protocol.as_deref().map(HeaderValue::from_str) {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        if let Some(Ok(v)) = self.deflate.as_ref().map(|(_, s)| HeaderValue::from_str(s)) {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
        }
        resp
    }

    /// The 101 response as raw bytes.
    pub fn response_bytes(&self) -> Vec<u8> {
        let mut out = String::from(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
        );
        for (k, v) in self.response().headers() {
            if k == header::UPGRADE || k == header::CONNECTION {
                continue;
            }
            out.push_str(k.as_str());
            out.push_str(": ");
            out.push_str(v.to_str().unwrap_or_default());
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Whether a request asks for a WebSocket upgrade at all (`Upgrade: websocket`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    has_token(headers.get_all(header::UPGRADE), "websocket")
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: header::HeaderName,
    label: &'static str,
) -> Result<Option<&'a HeaderValue>, HandshakeError> {
    let mut it = headers.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(HandshakeError::DuplicateHeader(label));
    }
    Ok(first)
}

/// Validates an upgrade request and negotiates subprotocol and extensions.
pub fn accept(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    options: &ServerOptions,
) -> Result<Accepted, HandshakeError> {
    if method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if version < Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    if !is_upgrade_request(headers) {
        return Err(HandshakeError::NotUpgrade);
    }
    if !has_token(headers.get_all(header::CONNECTION), "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let version = single(
        headers,
        header::SEC_WEBSOCKET_VERSION,
        "Sec-WebSocket-Version",
    )?;
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = single(headers, header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key")?
        .ok_or(HandshakeError::BadKey)?
        .as_bytes()
        .trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| HandshakeError::BadKey)?;
    if decoded.len() != 16 {
        return Err(HandshakeError::BadKey);
    }
    let protocol = choose_protocol(headers, &options.protocols)?;
    let deflate = match &options.deflate {
        None => None,
        Some(cfg) => {
            let values = headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
            accept_offer(values.iter().map(HeaderValue::as_bytes), cfg)
                .map_err(|_| HandshakeError::BadExtensionHeader)?
        }
    };
    Ok(Accepted {
        accept: accept_key(key),
        protocol,
        deflate,
    })
}

fn choose_protocol(
    headers: &HeaderMap,
    supported: &[String],
) -> Result<Option<String>, HandshakeError> {
    let mut offered = Vec::new();
    for v in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty()
                || !token
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                return Err(HandshakeError::BadProtocolHeader);
            }
            if offered.len() == 32 {
                return Err(HandshakeError::BadProtocolHeader);
            }
            offered.push(token);
        }
    }
    Ok(supported
        .iter()
        .find(|s| offered.contains(&s.as_bytes()))
        .cloned())
}

/// A request head parsed from raw bytes.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Method.
    pub method: Method,
    /// Request target (path and query).
    pub path: String,
    /// HTTP version.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
}

/// Parses a request head from `buf`. `Ok(None)` needs more bytes; on success
/// returns the request and the length of the head (what follows is frames).
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RawRequest, usize)>, HandshakeError> {
    let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut storage);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::MalformedHttp),
    };
    let httparse::Status::Complete(len) = status else {
        if buf.len() > limits.max_head_bytes {
            return Err(HandshakeError::HeadTooLarge);
        }
        return Ok(None);
    };
    if len > limits.max_head_bytes {
        return Err(HandshakeError::HeadTooLarge);
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HandshakeError::MalformedHttp)?;
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let headers = to_header_map(req.headers)?;
    let path = req.path.unwrap_or("/").to_owned();
    Ok(Some((
        RawRequest {
            method,
            path,
            version,
            headers,
        },
        len,
    )))
}

pub(crate) fn to_header_map(headers: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for h in headers {
        let name = header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HandshakeError::MalformedHttp)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| HandshakeError::MalformedHttp)?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    fn run(raw: &str, opts: &ServerOptions) -> Result<Accepted, HandshakeError> {
        let (req, _) = parse_request(raw.as_bytes(), &HeadLimits::default())?.unwrap();
        accept(&req.method, req.version, &req.headers, opts)
    }

    #[test]
    fn accepts_the_rfc_example_and_negotiates() {
        let opts = ServerOptions::default()
            .with_protocols(["superchat".to_string()])
            .with_deflate(Some(DeflateConfig::default()));
        let acc = run(GOOD, &opts).unwrap();
        assert_eq!(acc.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(acc.protocol.as_deref(), Some("superchat"));
        assert_eq!(acc.deflate.unwrap().1, "permessage-deflate");
        let bytes = String::from_utf8(
            run(GOOD, &ServerOptions::default())
                .unwrap()
                .response_bytes(),
        )
        .unwrap();
        assert!(bytes.starts_with("HTTP/1.1 101 "));
        assert!(bytes.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!bytes.contains("sec-websocket-extensions"));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for cut in 0..GOOD.len() {
            assert!(
                parse_request(&GOOD.as_bytes()[..cut], &HeadLimits::default())
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn refusals_carry_the_right_status() {
        let opts = ServerOptions::default();
        let cases = [
            (GOOD.replace("GET", "POST"), 405),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (GOOD.replace("Upgrade: websocket\r\n", ""), 426),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), 400),
            (GOOD.replace("Version: 13", "Version: 8"), 426),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (GOOD.replace("chat, superchat", "chat, \"bad\""), 400),
        ];
        for (raw, status) in cases {
            let err = run(&raw, &opts).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{err}");
        }
        let dup = GOOD.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
        );
        assert_eq!(
            run(&dup, &opts),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Version"))
        );
        let bad_ext = GOOD.replace("client_max_window_bits\r\n", "x=\"unclosed\r\n");
        let deflate = ServerOptions::default().with_deflate(Some(DeflateConfig::default()));
        assert_eq!(
            run(&bad_ext, &deflate),
            Err(HandshakeError::BadExtensionHeader)
        );
    }

    #[test]
    fn head_caps_are_enforced() {
        let limits = HeadLimits::default();
        let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = GOOD.replacen("Host: x\r\n", &format!("Host: x\r\n{many}"), 1);
        assert_eq!(
            parse_request(raw.as_bytes(), &limits).unwrap_err(),
            HandshakeError::TooManyHeaders
        );
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(20_000));
        assert_eq!(
            parse_request(long.as_bytes(), &limits).unwrap_err(),
            HandshakeError::HeadTooLarge
        );
    }
}

//! Client connection for `ws://` and `wss://` URLs.

use std::path::PathBuf;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::stream::MaybeTlsStream;
use super::tls::client_connector;
use super::websocket::WebSocket;
use crate::error::Error;
use crate::handshake::client::{ClientHandshake, ClientOptions, Negotiated};
use crate::handshake::{HandshakeError, HeadLimits};
use crate::proto::connection::{Config, Connection, Role};

/// Everything a client connection is configured with.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Handshake options: subprotocols, permessage-deflate offer, headers.
    pub handshake: ClientOptions,
    /// Codec limits.
    pub config: Config,
    /// Extra CA certificates (PEM) to trust for `wss://`.
    pub extra_ca: Vec<PathBuf>,
}

impl ConnectOptions {
    /// Options from codec `config`, offering permessage-deflate when it is set there.
    pub fn new(config: Config) -> Self {
        let handshake = ClientOptions {
            deflate: config.deflate,
            ..ClientOptions::default()
        };
        Self {
            handshake,
            config,
            extra_ca: Vec::new(),
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.handshake.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts an extra CA certificate file.
    pub fn trust(mut self, ca: impl Into<PathBuf>) -> Self {
        self.extra_ca.push(ca.into());
        self
    }
}

/// A parsed `ws://` or `wss://` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether TLS is used.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path with query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses a URL; `http`/`https` are accepted as aliases.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let u = url::Url::parse(url).map_err(|e| Error::Url(format!("{url}: {e}")))?;
        let tls = match u.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => return Err(Error::Url(format!("unsupported scheme {other}"))),
        };
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(Error::Url(format!("{url}: no host"))),
        };
        let port = u
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let mut path = u.path().to_owned();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Self {
            tls,
            host,
            port,
            path,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Connects to `url` and performs the opening handshake.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<(WebSocket<MaybeTlsStream>, Negotiated), Error> {
    let target = Target::parse(url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    tcp.set_nodelay(true)?;
    let stream = if target.tls {
        let extra: Vec<&std::path::Path> = options.extra_ca.iter().map(PathBuf::as_path).collect();
        let connector = client_connector(&extra)?;
        let name =
            ServerName::try_from(target.host.clone()).map_err(|e| Error::Url(e.to_string()))?;
        MaybeTlsStream::ClientTls(Box::new(connector.connect(name, tcp).await?))
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    handshake(stream, &target, options).await
}

/// Performs the client handshake over an already connected stream.
pub async fn handshake(
    mut stream: MaybeTlsStream,
    target: &Target,
    options: &ConnectOptions,
) -> Result<(WebSocket<MaybeTlsStream>, Negotiated), Error> {
    let (request, pending) =
        ClientHandshake::new(&target.host_header(), &target.path, &options.handshake);
    stream.write_all(&request).await?;
    stream.flush().await?;
    let limits = HeadLimits::default();
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Handshake(HandshakeError::MalformedHttp));
        }
        if let Some((negotiated, len)) = pending.parse_response(&buf, &limits)? {
            let conn = Connection::new(Role::Client, options.config, negotiated.deflate);
            let ws = WebSocket::from_parts(stream, conn, &buf[len..]);
            return Ok((ws, negotiated));
        }
    }
}

//! Server-side accept: over a raw stream, or through hyper's upgrade so the
//! same port keeps serving HTTP.

use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::replayed::Replayed;
use super::stream::MaybeTlsStream;
use super::websocket::WebSocket;
use crate::error::Error;
use crate::handshake::server::{Accepted, RawRequest, ServerOptions, accept, parse_request};
use crate::handshake::{HandshakeError, HeadLimits};
use crate::proto::connection::{Config, Connection, Role};

/// Reads the request head from `stream`, answers it (101, or the error's
/// status with a plain-text reason) and returns the WebSocket.
pub async fn accept_raw(
    mut stream: MaybeTlsStream,
    options: &ServerOptions,
    config: Config,
    limits: &HeadLimits,
) -> Result<(WebSocket<MaybeTlsStream>, RawRequest), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    let parsed = loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::Handshake(HandshakeError::MalformedHttp));
        }
        match parse_request(&buf, limits) {
            Ok(Some(p)) => break p,
            Ok(None) => continue,
            Err(e) => return Err(refuse(&mut stream, e).await),
        }
    };
    let (req, len) = parsed;
    let accepted = match accept(&req.method, req.version, &req.headers, options) {
        Ok(a) => a,
        Err(e) => return Err(refuse(&mut stream, e).await),
    };
    stream.write_all(&accepted.response_bytes()).await?;
    let conn = Connection::new(Role::Server, config, accepted.deflate.map(|(p, _)| p));
    Ok((WebSocket::from_parts(stream, conn, &buf[len..]), req))
}

async fn refuse(stream: &mut MaybeTlsStream, e: HandshakeError) -> Error {
    let _ = stream.write_all(&e.to_response_bytes()).await;
    let _ = stream.shutdown().await;
    Error::Handshake(e)
}

/// A share the server wants held exactly as long as a connection: a clone
/// of an `Arc` whose strong count counts its holders (e.g. the connections
/// from one address). Put one in a request's extensions: [`upgrade`] takes
/// it and the [`WebSocket`] holds it until it is dropped, long after hyper's
/// connection task has ended. A thin pointer: every WebSocket has the
/// field.
#[derive(Clone)]
pub struct ConnectionGuard(pub std::sync::Arc<()>);

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGuard")
    }
}

/// An accepted upgrade: send `response` from the hyper service, then await
/// [`PendingUpgrade::websocket`].
#[derive(Debug)]
pub struct PendingUpgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    deflate: Option<crate::deflate::DeflateParams>,
    config: Config,
    guard: Option<ConnectionGuard>,
}

/// Validates a hyper request as a WebSocket upgrade. On success returns the
/// 101 response to send and the pending upgrade; on failure the error names
/// the status to answer with.
pub fn upgrade<B>(
    req: &mut http::Request<B>,
    options: &ServerOptions,
    config: Config,
) -> Result<(http::Response<()>, Accepted, PendingUpgrade), HandshakeError> {
    let accepted = accept(req.method(), req.version(), req.headers(), options)?;
    let on_upgrade = hyper::upgrade::on(&mut *req);
    let pending = PendingUpgrade {
        on_upgrade,
        deflate: accepted.deflate.as_ref().map(|(p, _)| *p),
        config,
        guard: req.extensions_mut().remove::<ConnectionGuard>(),
    };
    Ok((accepted.response(), accepted, pending))
}

impl PendingUpgrade {
    /// Waits for hyper to hand over the connection. A plain or TLS TCP
    /// stream is unwrapped from hyper's boxed IO so the WebSocket drives it
    /// directly.
    pub async fn websocket(self) -> Result<WebSocket<MaybeTlsStream>, Error> {
        let upgraded = self
            .on_upgrade
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let conn = Connection::new(Role::Server, self.config, self.deflate);
        let guard = self.guard;
        let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let stream = MaybeTlsStream::Plain(parts.io.into_inner());
                let mut ws = WebSocket::from_parts(stream, conn, &parts.read_buf);
                ws.guard = guard;
                return Ok(ws);
            }
            Err(u) => u,
        };
        let upgraded = match upgraded.downcast::<TokioIo<Replayed>>() {
            Ok(parts) => {
                // hyper's buffer was read before what it left of the replay.
                let (tcp, rest) = parts.io.into_inner().into_parts();
                let mut read = parts.read_buf.to_vec();
                read.extend_from_slice(&rest);
                let mut ws = WebSocket::from_parts(MaybeTlsStream::Plain(tcp), conn, &read);
                ws.guard = guard;
                return Ok(ws);
            }
            Err(u) => u,
        };
        type Tls = tokio_rustls::server::TlsStream<TcpStream>;
        match upgraded.downcast::<TokioIo<Tls>>() {
            Ok(parts) => {
                let stream = MaybeTlsStream::ServerTls(Box::new(parts.io.into_inner()));
                let mut ws = WebSocket::from_parts(stream, conn, &parts.read_buf);
                ws.guard = guard;
                Ok(ws)
            }
            Err(_) => Err(Error::Io(std::io::Error::other(
                "upgraded connection is neither TCP nor TLS over TCP",
            ))),
        }
    }
}

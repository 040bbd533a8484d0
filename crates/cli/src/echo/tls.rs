//! `switchboard echo --tls-cert`: wss:// through rustls and hyper. Each
//! connection is a tokio task (the plain ws:// server is the reactor).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_wire::Config;
use switchboard_wire::handshake::server::{ServerOptions, is_upgrade_request};
use switchboard_wire::io::server::upgrade;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub(crate) struct Shared {
    pub(crate) options: ServerOptions,
    pub(crate) config: Config,
}

pub(crate) async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
) {
    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve_http(stream, shared).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
    }
}

async fn serve_http<S>(io: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(req, &shared)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(64)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8"
            .parse()
            .unwrap_or_else(|_| header::HeaderValue::from_static("text/plain")),
    );
    resp
}

fn handle(mut req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if !is_upgrade_request(req.headers()) {
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "switchboard echo: connect with a WebSocket client\n".into(),
        );
        resp.headers_mut().insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
        return resp;
    }
    match upgrade(&mut req, &shared.options, shared.config) {
        Ok((response, _, pending)) => {
            // The upgrade completes once hyper has written the 101. Waiting for
            // it takes a larger future, so the long-lived echo runs in a task of
            // its own whose state is just the WebSocket (idle memory per
            // connection is mostly this task).
            tokio::spawn(async move {
                match pending.websocket().await {
                    Ok(ws) => drop(tokio::spawn(Echo { ws })),
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            response.map(|()| Full::new(Bytes::new()))
        }
        Err(e) => {
            let mut resp = text(e.status(), format!("{e}\n"));
            for (k, v) in e.response_headers() {
                resp.headers_mut()
                    .insert(*k, header::HeaderValue::from_static(v));
            }
            resp
        }
    }
}

/// Echoes every message. Replies are queued and written in one batch when the
/// input runs dry (`poll_recv` flushes before it waits). A hand-written future
/// so the task holds the WebSocket and nothing else.
struct Echo {
    ws: WebSocket<MaybeTlsStream>,
}

impl Future for Echo {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match ready!(self.ws.poll_recv(cx)) {
                Some(Ok(msg)) => {
                    if self.ws.queue(msg).is_err() {
                        return Poll::Ready(());
                    }
                }
                Some(Err(_)) | None => return Poll::Ready(()),
            }
        }
    }
}

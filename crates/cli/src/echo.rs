//! `switchboard echo`: a WebSocket echo server on every path (or, with
//! `--socketio`, a Socket.IO echo server).
//!
//! HTTP goes through hyper on the same port: a plain GET gets a short text
//! answer (426 with `Upgrade: websocket`), a bad upgrade request gets its
//! status and reason, a good one is upgraded and every message is echoed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
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
use switchboard_wire::handshake::server::{ServerOptions, is_upgrade_request};
use switchboard_wire::io::server::upgrade;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{Config, DeflateConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::listen;

#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// PEM certificate chain: serve wss:// (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Worker threads (one runtime and listener each); default one per core.
    #[arg(long)]
    workers: Option<usize>,
    /// Refuse permessage-deflate offers.
    #[arg(long)]
    no_deflate: bool,
    /// With permessage-deflate, messages shorter than this go out
    /// uncompressed. 0 (the default) compresses every message, so the echo
    /// server exercises the client's inflater.
    #[arg(long, default_value_t = 0)]
    deflate_threshold: usize,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message: usize,
    /// Serve Socket.IO (v5 over Engine.IO v4, polling and WebSocket) at
    /// `/socket.io/` instead: an `echo` event with an ack is acknowledged
    /// with its arguments, one without is emitted back as `echo`.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    socketio: bool,
}

struct Shared {
    options: ServerOptions,
    config: Config,
}

pub(crate) fn run(args: EchoArgs) -> anyhow::Result<()> {
    if args.socketio {
        return socketio(&args);
    }
    let deflate =
        (!args.no_deflate).then(|| DeflateConfig::default().threshold(args.deflate_threshold));
    let shared = Arc::new(Shared {
        options: ServerOptions::default().with_deflate(deflate),
        config: Config::default()
            .deflate(deflate)
            .max_message_size(args.max_message)
            .max_frame_size(args.max_message.min(16 << 20)),
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(switchboard_wire::io::tls::server_acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    eprintln!("switchboard echo on {scheme}://{}", args.listen);
    let workers = args.workers.unwrap_or_else(listen::default_workers);
    listen::serve(args.listen, workers, move |tcp, peer| {
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        async move { serve_connection(tcp, peer, tls, shared).await }
    })
}

fn socketio(args: &EchoArgs) -> anyhow::Result<()> {
    use switchboard_socketio::server::{NamespaceBuilder, SocketIo};

    let workers = args.workers.unwrap_or_else(listen::default_workers);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    let max_payload = args.max_message;
    let addr = args.listen;
    rt.block_on(async move {
        let ns = NamespaceBuilder::new().on("echo", |socket, ev| match ev.ack {
            Some(ack) => ack.send(ev.args),
            None => {
                let _ = socket.emit("echo", ev.args);
            }
        });
        let io = SocketIo::builder()
            .max_payload(max_payload)
            .ns("/", ns)
            .build();
        let listener = tokio::net::TcpListener::from_std(listen::bind(addr)?)?;
        eprintln!("switchboard echo (Socket.IO) on http://{addr}/socket.io/");
        io.serve(listener).await?;
        Ok(())
    })
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    match tls {
        None => serve_http(tcp, shared).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_http(stream, shared).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
            }
        }
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

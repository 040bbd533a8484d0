//! `switchboard echo`: a WebSocket echo server on every path (or, with
//! `--socketio`, a Socket.IO echo server).
//!
//! A plain GET gets a short text answer (426 with `Upgrade: websocket`), a
//! bad upgrade request gets its status and reason, a good one is upgraded and
//! every message is echoed. Plain `ws://` runs on the thread-per-core
//! [`reactor`]; `wss://` (`--tls-cert`) goes through rustls and hyper
//! ([`tls`]).
//!
//! With `--socketio`, the reactor serves Socket.IO sessions whose WebSocket
//! is opened directly ([`sio`]) and hands every other request (long-polling,
//! the upgrade from it) to the Engine.IO server of `switchboard_socketio` on
//! a tokio runtime (through [`switchboard_wire::io::Replayed`]).

mod conn;
mod lend;
mod reactor;
mod sio;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_wire::handshake::HeadLimits;
use switchboard_wire::handshake::server::ServerOptions;
use switchboard_wire::{Config, DeflateConfig};

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
    /// Worker threads (one event loop and listener each); default one per core.
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
    /// Heartbeat of plain ws:// connections, in seconds: a connection
    /// silent for this long is pinged, and dropped if still silent one
    /// interval later. 0 sends no pings. With --socketio, Engine.IO's
    /// `pingInterval` (every session is pinged this often; at least 1).
    #[arg(long, default_value_t = 25)]
    ping_interval: u64,
}

pub(crate) fn run(args: EchoArgs) -> anyhow::Result<()> {
    if args.socketio {
        return socketio(&args);
    }
    let deflate =
        (!args.no_deflate).then(|| DeflateConfig::default().threshold(args.deflate_threshold));
    let options = ServerOptions::default().with_deflate(deflate);
    let config = Config::default()
        .deflate(deflate)
        .max_message_size(args.max_message)
        .max_frame_size(args.max_message.min(16 << 20));
    let workers = args.workers.unwrap_or_else(listen::default_workers);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let acceptor = switchboard_wire::io::tls::server_acceptor(cert, key)?;
        let shared = Arc::new(tls::Shared { options, config });
        eprintln!("switchboard echo on wss://{}", args.listen);
        return listen::serve(args.listen, workers, move |tcp, peer| {
            let shared = Arc::clone(&shared);
            let acceptor = acceptor.clone();
            async move { tls::serve_connection(tcp, peer, acceptor, shared).await }
        });
    }
    eprintln!("switchboard echo on ws://{}", args.listen);
    reactor::serve(
        args.listen,
        workers,
        reactor::ReactorConfig {
            settings: conn::Settings {
                options,
                config,
                head: HeadLimits::default(),
                socketio: None,
            },
            ping_interval: (args.ping_interval > 0)
                .then(|| Duration::from_secs(args.ping_interval)),
            handoff: None,
        },
    )
}

/// Engine.IO's default `pingTimeout`.
const SIO_PING_TIMEOUT: Duration = Duration::from_secs(20);

fn socketio(args: &EchoArgs) -> anyhow::Result<()> {
    use switchboard_socketio::server::{NamespaceBuilder, SocketIo};

    anyhow::ensure!(
        args.ping_interval > 0,
        "--ping-interval must be at least 1 with --socketio (Engine.IO pings every session)"
    );
    let ping_interval = Duration::from_secs(args.ping_interval);
    let workers = args.workers.unwrap_or_else(listen::default_workers);
    // The runtime serves what the reactor hands off: long-polling sessions
    // and their upgrades.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let ns = NamespaceBuilder::new().on("echo", |socket, ev| match ev.ack {
        Some(ack) => ack.send(ev.args),
        None => {
            let _ = socket.emit("echo", ev.args);
        }
    });
    let io = {
        let _runtime = rt.enter();
        SocketIo::builder()
            .max_payload(args.max_message)
            .ping_interval(ping_interval)
            .ping_timeout(SIO_PING_TIMEOUT)
            .ns("/", ns)
            .build()
    };
    let handle = rt.handle().clone();
    let handoff: reactor::Handoff = Box::new(move |tcp, read| {
        let io = io.clone();
        handle.spawn(async move {
            match switchboard_wire::io::Replayed::new(tcp, read) {
                Ok(stream) => io.serve_connection(stream).await,
                Err(e) => tracing::warn!(error = %e, "handing a connection over failed"),
            }
        });
    });
    let config = Config::default()
        .max_message_size(args.max_message)
        .max_frame_size(args.max_message.min(16 << 20));
    eprintln!(
        "switchboard echo (Socket.IO) on http://{}/socket.io/",
        args.listen
    );
    reactor::serve(
        args.listen,
        workers,
        reactor::ReactorConfig {
            settings: conn::Settings {
                // As Engine.IO's default: no permessage-deflate.
                options: ServerOptions::default().with_deflate(None),
                config,
                head: HeadLimits::default(),
                socketio: Some(sio::SioSettings::new(
                    ping_interval.as_millis() as u64,
                    SIO_PING_TIMEOUT.as_millis() as u64,
                    args.max_message,
                )),
            },
            ping_interval: Some(ping_interval),
            handoff: Some(handoff),
        },
    )
}

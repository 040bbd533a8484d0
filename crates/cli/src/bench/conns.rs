//! Opening many connections: spread over source addresses 127.0.0.x (one
//! address has about 28,000 ephemeral ports towards one server port), as a
//! raw WebSocket, a native-protocol client that joins a room, or a
//! Socket.IO client over the WebSocket transport.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, Target, WebSocket, client::handshake};
use switchboard_wire::{Config, Message};
use tokio::net::TcpSocket;

/// What a connection speaks once open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// A WebSocket that only answers pings.
    Ws,
    /// switchboard's native protocol: joins `--room` once open.
    Native,
    /// Socket.IO over the WebSocket transport: CONNECT to `/`, answers the
    /// server's pings.
    Socketio,
}

/// Where connections come from and go to.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    target: Target,
    options: ConnectOptions,
    protocol: Protocol,
    room: String,
    /// Source addresses 127.0.0.1 ..= 127.0.0.N (0: let the kernel pick).
    source_ips: u8,
}

impl Dialer {
    pub(crate) fn new(
        url: &str,
        protocol: Protocol,
        room: &str,
        source_ips: u8,
    ) -> anyhow::Result<Self> {
        let url = match protocol {
            Protocol::Socketio => socketio_ws_url(url),
            _ => url
                .replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1),
        };
        let target = Target::parse(&url).with_context(|| format!("URL {url}"))?;
        anyhow::ensure!(!target.tls, "bench connections are plain ws://");
        Ok(Self {
            target,
            options: ConnectOptions::new(Config::default()),
            protocol,
            room: room.to_owned(),
            source_ips,
        })
    }

    /// Opens connection number `i` and brings it to its protocol's ready
    /// state (joined, connected to the namespace).
    pub(crate) async fn open(&self, i: usize) -> anyhow::Result<WebSocket<MaybeTlsStream>> {
        let addr: SocketAddr =
            tokio::net::lookup_host((self.target.host.as_str(), self.target.port))
                .await?
                .next()
                .context("no address")?;
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if self.source_ips > 0 && addr.is_ipv4() {
            let last = (i % usize::from(self.source_ips)) as u8 + 1;
            socket.bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                0,
            ))?;
        }
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (mut ws, _) =
            handshake(MaybeTlsStream::Plain(tcp), &self.target, &self.options).await?;
        match self.protocol {
            Protocol::Ws => {}
            Protocol::Native => {
                let join = json!({"op": "join", "room": self.room, "id": 1}).to_string();
                ws.send(Message::text(join)).await?;
                wait_for(&mut ws, |t| t.contains("\"id\":1")).await?;
            }
            Protocol::Socketio => {
                // Engine.IO open, then the namespace CONNECT and its answer.
                wait_for(&mut ws, |t| t.starts_with('0')).await?;
                ws.send(Message::text("40")).await?;
                wait_for(&mut ws, |t| t.starts_with("40")).await?;
            }
        }
        Ok(ws)
    }

    /// Keeps a connection alive until it closes: answers Engine.IO pings
    /// (WebSocket pings are answered by the connection itself).
    pub(crate) async fn hold(&self, mut ws: WebSocket<MaybeTlsStream>) {
        while let Some(Ok(m)) = ws.recv().await {
            if self.protocol == Protocol::Socketio
                && let Message::Text(t) = &m
                && t.as_str() == "2"
                && ws.send(Message::text("3")).await.is_err()
            {
                break;
            }
        }
    }
}

/// Reads text messages until one satisfies `done` (10 s at most).
async fn wait_for(
    ws: &mut WebSocket<MaybeTlsStream>,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Text(t))) if done(t.as_str()) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::Error::from(e)),
                None => anyhow::bail!("closed by the server"),
            }
        }
    })
    .await
    .context("no answer within 10 s")?
}

/// A progress bar on stderr (hidden with `quiet`).
pub(crate) fn progress(len: u64, what: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A Socket.IO server URL (`http://host:port`) → the WebSocket URL of its
/// Engine.IO endpoint (a URL that already names `/socket.io/` keeps its
/// path and query).
pub(super) fn socketio_ws_url(url: &str) -> String {
    let url = if url.contains("/socket.io/") {
        url.to_owned()
    } else {
        format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            url.trim_end_matches('/')
        )
    };
    url.replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1)
}

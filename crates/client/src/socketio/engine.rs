//! The Engine.IO v4 client transports: WebSocket, and HTTP long-polling when
//! the WebSocket is refused (a proxy that does not pass upgrades, a server
//! with `transports: ["polling"]`).
//!
//! Over polling, one background task keeps a GET waiting and hands the
//! packets it gets over a channel; sends are POSTs. Over WebSocket, frames
//! map one to one onto packets (binary frames are binary packets).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use switchboard_engine::packet::Packet;
use switchboard_engine::payload::{decode_payload, encode_payload};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{Config, Message};
use tokio::sync::mpsc;

/// Why a transport failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("websocket: {0}")]
    WebSocket(#[from] switchboard_wire::Error),
    #[error("http: {0}")]
    Http(String),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// The `open` packet's fields the client uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Open {
    pub(crate) sid: String,
    pub(crate) ping_interval: u64,
    pub(crate) ping_timeout: u64,
}

/// Which transport carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    WebSocket,
    Polling,
}

/// An open Engine.IO session.
pub(crate) struct Session {
    pub(crate) open: Open,
    pub(crate) kind: Kind,
    io: Io,
}

enum Io {
    Ws(Box<WebSocket<MaybeTlsStream>>),
    Polling {
        http: reqwest::Client,
        url: String,
        rx: mpsc::UnboundedReceiver<Result<Packet, TransportError>>,
        poller: tokio::task::JoinHandle<()>,
    },
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Io::Polling { poller, .. } = &self.io {
            poller.abort();
        }
    }
}

/// `base` is `http(s)://host:port`, `path` the Engine.IO path
/// (`/socket.io/`).
fn endpoint(base: &str, path: &str, transport: &str) -> String {
    format!(
        "{}{}?EIO=4&transport={transport}",
        base.trim_end_matches('/'),
        path
    )
}

fn parse_open(p: Packet) -> Result<Open, TransportError> {
    match p {
        Packet::Open(json) => serde_json::from_str(&json)
            .map_err(|e| TransportError::Protocol(format!("bad open packet: {e}"))),
        other => Err(TransportError::Protocol(format!(
            "expected the open packet, got {other:?}"
        ))),
    }
}

/// Opens a session over WebSocket.
pub(crate) async fn open_websocket(base: &str, path: &str) -> Result<Session, TransportError> {
    let url = endpoint(base, path, "websocket")
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let (mut ws, _) = connect(&url, &ConnectOptions::new(Config::default())).await?;
    let first = match ws.recv().await {
        Some(Ok(Message::Text(t))) => {
            Packet::decode_text(t.as_str()).map_err(|e| TransportError::Protocol(e.to_string()))?
        }
        _ => return Err(TransportError::Protocol("no open packet".into())),
    };
    Ok(Session {
        open: parse_open(first)?,
        kind: Kind::WebSocket,
        io: Io::Ws(Box::new(ws)),
    })
}

/// Opens a session over HTTP long-polling.
pub(crate) async fn open_polling(
    http: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<Session, TransportError> {
    let url = endpoint(base, path, "polling");
    let body = get(http, &url).await?;
    let mut packets = decode(&body)?.into_iter();
    let open = parse_open(
        packets
            .next()
            .ok_or_else(|| TransportError::Protocol("empty handshake".into()))?,
    )?;
    let url = format!("{url}&sid={}", open.sid);
    let (tx, rx) = mpsc::unbounded_channel();
    for p in packets {
        let _ = tx.send(Ok(p));
    }
    let poller = tokio::spawn(poll(http.clone(), url.clone(), tx));
    Ok(Session {
        open,
        kind: Kind::Polling,
        io: Io::Polling {
            http: http.clone(),
            url,
            rx,
            poller,
        },
    })
}

fn decode(body: &str) -> Result<Vec<Packet>, TransportError> {
    decode_payload(body, 10_000).map_err(|e| TransportError::Protocol(e.to_string()))
}

async fn get(http: &reqwest::Client, url: &str) -> Result<String, TransportError> {
    let res = http
        .get(url)
        .send()
        .await
        .map_err(|e| TransportError::Http(e.without_url().to_string()))?;
    let status = res.status();
    let body = res
        .text()
        .await
        .map_err(|e| TransportError::Http(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(TransportError::Http(format!("status {status}")));
    }
    Ok(body)
}

/// Keeps one GET waiting; every packet goes to `tx`. Ends on an error or a
/// `close` packet (after passing it on).
async fn poll(
    http: reqwest::Client,
    url: String,
    tx: mpsc::UnboundedSender<Result<Packet, TransportError>>,
) {
    loop {
        let packets = match get(&http, &url).await.and_then(|b| decode(&b)) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        for p in packets {
            let close = p == Packet::Close;
            if tx.send(Ok(p)).is_err() || close {
                return;
            }
        }
    }
}

impl Session {
    /// The next packet; `None` when the transport ended.
    pub(crate) async fn recv(&mut self) -> Option<Result<Packet, TransportError>> {
        match &mut self.io {
            Io::Ws(ws) => match ws.recv().await? {
                Ok(Message::Text(t)) => Some(
                    Packet::decode_text(t.as_str())
                        .map_err(|e| TransportError::Protocol(e.to_string())),
                ),
                Ok(Message::Binary(b)) => Some(Ok(Packet::Binary(b))),
                Err(e) => Some(Err(e.into())),
            },
            Io::Polling { rx, .. } => rx.recv().await,
        }
    }

    /// Sends packets (one POST over polling).
    pub(crate) async fn send(&mut self, packets: &[Packet]) -> Result<(), TransportError> {
        match &mut self.io {
            Io::Ws(ws) => {
                for p in packets {
                    let m = match p {
                        Packet::Binary(b) => Message::Binary(b.clone()),
                        p => Message::Text(p.encode_text().into()),
                    };
                    ws.queue(m)?;
                }
                Ok(ws.flush().await?)
            }
            Io::Polling { http, url, .. } => {
                let body = encode_payload(packets);
                let res = http
                    .post(url.as_str())
                    .header("content-type", "text/plain;charset=UTF-8")
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| TransportError::Http(e.without_url().to_string()))?;
                if !res.status().is_success() {
                    return Err(TransportError::Http(format!(
                        "POST status {}",
                        res.status()
                    )));
                }
                Ok(())
            }
        }
    }

    /// Closes the session (best effort).
    pub(crate) async fn close(&mut self) {
        let _ = self.send(&[Packet::Close]).await;
        if let Io::Ws(ws) = &mut self.io {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }
    }
}

/// Binary data of a packet, for attachments.
pub(crate) fn binary(p: &Packet) -> Option<Bytes> {
    match p {
        Packet::Binary(b) => Some(b.clone()),
        _ => None,
    }
}

//! `switchboard replay FILE --listen ADDR`: a server that plays a capture
//! (docs/protocol.md, "Captures") to every client that connects, with the
//! recorded timing (`--speed X` divides the times by X), from the moment
//! the client connects.
//!
//! * raw and native captures: a WebSocket server on every path; every
//!   frame the server sent (`"dir":"in"`) is sent again, verbatim, at its
//!   time. Native: the client's text `ping` is answered `pong` live and the
//!   recorded `pong`s are not replayed. A recorded close from the server is
//!   sent as the close.
//! * socketio captures: a real Socket.IO server (`/socket.io/`, polling and
//!   WebSocket, the recorded `pingInterval`/`pingTimeout`): handshake and
//!   heartbeat are live; the events the server emitted (EVENT and
//!   BINARY_EVENT packets, attachments included) are emitted again to each
//!   socket that connects to their namespace, timed from the recorded
//!   namespace CONNECT. Acks are not replayed; a recorded DISCONNECT of the
//!   namespace disconnects the socket, a recorded close closes the
//!   connection.
//!
//! `--loop` starts the stream again after its last frame (each round lasts
//! as long as the capture's last replayed frame is from its start, at least
//! 100 ms). Without it the connection stays open after the last frame
//! (pings live) until the client leaves.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;
use switchboard_server::capture::{self, Dir, Entry, Frame};
use switchboard_socketio::server::{Args, NamespaceBuilder, Socket, SocketIo};
use switchboard_socketio::{Decoded, Limits, PacketKind};
use switchboard_wire::handshake::server::{ServerOptions, is_upgrade_request};
use switchboard_wire::io::server::upgrade;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame, Config, Message};
use tokio::time::Instant;

use crate::listen;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The capture to play (`switchboard record`, or `GET /api/v1/record/{id}`).
    file: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Play this many times faster (0.5: half as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start again after the last frame, until the client leaves.
    #[arg(long = "loop")]
    looping: bool,
}

/// Shortest round of a looping stream.
const MIN_ROUND: Duration = Duration::from_millis(100);

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a number above 0");
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let (header, entries) =
        capture::parse(&text).with_context(|| format!("reading {}", args.file.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listen::bind(args.listen)?)?;
        let addr = listener.local_addr()?;
        let serve = async {
            match header.protocol.as_str() {
                "socketio" => {
                    let io = socketio_server(&entries, &args);
                    eprintln!(
                        "switchboard replay: replaying {} on http://{addr} (Socket.IO at /socket.io/)",
                        args.file.display()
                    );
                    io.serve(listener).await.map_err(anyhow::Error::from)
                }
                protocol => {
                    let stream = Arc::new(Stream::new(&entries, protocol == "native", &args));
                    eprintln!(
                        "switchboard replay: replaying {} on ws://{addr} ({protocol}, {} frames)",
                        args.file.display(),
                        stream.frames.len()
                    );
                    websocket_server(listener, stream).await
                }
            }
        };
        tokio::select! {
            r = serve => r,
            () = listen::shutdown_signal() => Ok(()),
        }
    })
}

/// A frame to play, at its (scaled) time from the start.
#[derive(Debug, Clone)]
enum Play {
    Send(Message),
    Close(Option<u16>, String),
}

/// What a raw or native connection is played.
#[derive(Debug)]
struct Stream {
    frames: Vec<(Duration, Play)>,
    native: bool,
    looping: bool,
    /// Length of a round when looping.
    round: Duration,
}

fn scaled(t_ms: f64, speed: f64) -> Duration {
    Duration::from_secs_f64((t_ms / speed / 1000.0).max(0.0))
}

impl Stream {
    fn new(entries: &[Entry], native: bool, args: &ReplayArgs) -> Self {
        let frames: Vec<(Duration, Play)> = entries
            .iter()
            .filter(|e| e.dir == Dir::In)
            .filter_map(|e| {
                let play = match &e.frame {
                    Frame::Text(t) if native && t == "pong" => return None,
                    Frame::Text(t) => Play::Send(Message::text(t.clone())),
                    Frame::Binary(b) => Play::Send(Message::Binary(b.clone())),
                    Frame::Close { code, reason } => Play::Close(*code, reason.clone()),
                };
                Some((scaled(e.t, args.speed), play))
            })
            .collect();
        let round = frames
            .last()
            .map_or(MIN_ROUND, |(t, _)| (*t).max(MIN_ROUND));
        Self {
            frames,
            native,
            looping: args.looping,
            round,
        }
    }
}

async fn websocket_server(
    listener: tokio::net::TcpListener,
    stream: Arc<Stream>,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let stream = stream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let stream = stream.clone();
                async move { Ok::<_, Infallible>(handle(req, stream)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

fn handle(mut req: Request<Incoming>, stream: Arc<Stream>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    };
    if !is_upgrade_request(req.headers()) {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "switchboard replay: connect with a WebSocket client\n".into(),
        );
    }
    let config = Config::default()
        .max_message_size(64 << 20)
        .max_frame_size(16 << 20);
    match upgrade(&mut req, &ServerOptions::default(), config) {
        Ok((res, _, pending)) => {
            tokio::spawn(async move {
                if let Ok(ws) = pending.websocket().await {
                    play(ws, &stream).await;
                }
            });
            res.map(|()| Full::default())
        }
        Err(e) => text(e.status(), format!("{e}\n")),
    }
}

/// Plays the stream to one connection, answering the client meanwhile.
async fn play(mut ws: WebSocket<MaybeTlsStream>, stream: &Stream) {
    let start = Instant::now();
    let mut round = 0u32;
    loop {
        let base = start + stream.round * round;
        for (at, frame) in &stream.frames {
            let due = base + *at;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => break,
                    m = ws.recv() => match m {
                        Some(Ok(m)) => answer(&mut ws, &m, stream.native).await,
                        _ => return,
                    },
                }
            }
            match frame {
                Play::Send(m) => {
                    if ws.send(m.clone()).await.is_err() {
                        return;
                    }
                }
                Play::Close(code, reason) => {
                    let frame = code.map(|c| CloseFrame::new(CloseCode::from(c), reason));
                    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(frame)).await;
                    return;
                }
            }
        }
        if !stream.looping || stream.frames.is_empty() {
            break;
        }
        round += 1;
    }
    // The stream is over: the connection stays until the client leaves.
    while let Some(Ok(m)) = ws.recv().await {
        answer(&mut ws, &m, stream.native).await;
    }
}

/// The live part: a native client's text `ping` gets `pong` (WebSocket pings
/// are answered by the codec).
async fn answer(ws: &mut WebSocket<MaybeTlsStream>, m: &Message, native: bool) {
    if native && matches!(m, Message::Text(t) if t.as_str() == "ping") {
        let _ = ws.send(Message::text("pong")).await;
    }
}

/// A Socket.IO event to emit again.
#[derive(Debug, Clone)]
enum SioPlay {
    Emit(String, Args),
    Disconnect,
    Close,
}

/// The Socket.IO events of a capture by namespace, timed from the
/// namespace's CONNECT; the Engine.IO settings it recorded.
#[derive(Debug, Default)]
struct SioCapture {
    namespaces: BTreeMap<String, Vec<(f64, SioPlay)>>,
    connected: BTreeMap<String, f64>,
    open: Option<Value>,
}

fn socketio_capture(entries: &[Entry]) -> SioCapture {
    let mut out = SioCapture::default();
    let mut limits = Limits::default();
    limits.max_attachments = 1000;
    limits.max_attachment_bytes = usize::MAX;
    // A binary event waiting for its attachments.
    let mut pending: Option<(f64, switchboard_socketio::Reassembly)> = None;
    let mut events: Vec<(f64, switchboard_socketio::Packet)> = Vec::new();
    let mut closes: Vec<f64> = Vec::new();
    for e in entries.iter().filter(|e| e.dir == Dir::In) {
        match &e.frame {
            Frame::Binary(b) => {
                if let Some((t, mut r)) = pending.take() {
                    match r.push(b.clone()) {
                        Ok(Some(p)) => events.push((t, p)),
                        Ok(None) => pending = Some((t, r)),
                        Err(_) => {}
                    }
                }
            }
            Frame::Text(text) => {
                pending = None;
                if let Some(open) = text.strip_prefix('0') {
                    out.open = serde_json::from_str(open).ok();
                    continue;
                }
                if text == "1" {
                    closes.push(e.t);
                    continue;
                }
                let Some(packet) = text.strip_prefix('4') else {
                    continue;
                };
                match switchboard_socketio::packet::decode(packet, &limits) {
                    Ok(Decoded::Packet(p)) => events.push((e.t, p)),
                    Ok(Decoded::Binary(r)) => pending = Some((e.t, r)),
                    Err(_) => {}
                }
            }
            Frame::Close { .. } => closes.push(e.t),
        }
    }
    for (t, p) in events {
        let list = out.namespaces.entry(p.nsp.clone()).or_default();
        match p.kind {
            PacketKind::Connect => {
                out.connected.entry(p.nsp.clone()).or_insert(t);
            }
            PacketKind::Disconnect => list.push((t, SioPlay::Disconnect)),
            PacketKind::Event => {
                let Some(Value::Array(mut values)) = p.data else {
                    continue;
                };
                if values.is_empty() {
                    continue;
                }
                let Value::String(name) = values.remove(0) else {
                    continue;
                };
                let args = Args {
                    values,
                    binary: p.attachments,
                };
                list.push((t, SioPlay::Emit(name, args)));
            }
            PacketKind::Ack | PacketKind::ConnectError => {}
        }
    }
    out.namespaces.entry("/".to_owned()).or_default();
    for t in closes {
        for list in out.namespaces.values_mut() {
            list.push((t, SioPlay::Close));
        }
    }
    for list in out.namespaces.values_mut() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn socketio_server(entries: &[Entry], args: &ReplayArgs) -> SocketIo {
    let capture = socketio_capture(entries);
    let ms = |key: &str, default: u64| {
        Duration::from_millis(
            capture
                .open
                .as_ref()
                .and_then(|o| o[key].as_u64())
                .unwrap_or(default),
        )
    };
    let mut builder = SocketIo::builder()
        .ping_interval(ms("pingInterval", 25_000))
        .ping_timeout(ms("pingTimeout", 20_000))
        .max_payload(
            capture
                .open
                .as_ref()
                .and_then(|o| o["maxPayload"].as_u64())
                .map_or(1_000_000, |m| m as usize),
        );
    for (nsp, list) in &capture.namespaces {
        // Times from the namespace's CONNECT (the capture's start without one).
        let t0 = capture.connected.get(nsp).copied().unwrap_or(0.0);
        let events: Arc<Vec<(Duration, SioPlay)>> = Arc::new(
            list.iter()
                .map(|(t, p)| (scaled(t - t0, args.speed), p.clone()))
                .collect(),
        );
        let looping = args.looping;
        let ns = NamespaceBuilder::new().on_connect(move |socket| {
            let (socket, events) = (socket.clone(), events.clone());
            tokio::spawn(async move { play_socketio(socket, &events, looping).await });
        });
        builder = builder.ns(nsp, ns);
    }
    builder.build()
}

async fn play_socketio(socket: Socket, events: &[(Duration, SioPlay)], looping: bool) {
    let start = Instant::now();
    let round = events
        .last()
        .map_or(MIN_ROUND, |(t, _)| (*t).max(MIN_ROUND));
    let mut k = 0u32;
    loop {
        let base = start + round * k;
        for (at, play) in events {
            tokio::time::sleep_until(base + *at).await;
            if !socket.connected() {
                return;
            }
            match play {
                SioPlay::Emit(name, args) => {
                    let _ = socket.emit(name, args.clone());
                }
                SioPlay::Disconnect => {
                    socket.disconnect();
                    return;
                }
                SioPlay::Close => {
                    socket.close_connection();
                    return;
                }
            }
        }
        if !looping || events.is_empty() {
            return;
        }
        k += 1;
    }
}

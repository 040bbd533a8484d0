//! `switchboard record URL -o FILE`: captures every frame of one connection,
//! both ways, with timestamps, in the capture format (docs/protocol.md,
//! "Captures"; [`switchboard_server::capture`]).
//!
//! * `--protocol native` (default): a WebSocket to `URL` (`ws://host/ws`,
//!   `--token` in the query as `connect` sends it); after the `welcome`
//!   each `--room` is joined with a `join` request.
//! * `--protocol socketio`: the Engine.IO WebSocket transport of the
//!   Socket.IO server at `URL` (`http://host:port`); the recorder answers
//!   pings, connects to the main namespace (`--token` as `auth.token`) and
//!   joins each `--room` with the relay's `join` event, as `connect
//!   --protocol socketio` does. Engine.IO packets are recorded as they are
//!   on the WebSocket.
//! * `--protocol raw`: a plain WebSocket to `URL`; nothing is sent but the
//!   lines typed on stdin.
//!
//! Lines on stdin are sent too (and recorded): as text frames (native,
//! raw), or emitted (socketio: a JSON array `["event", args…]`, anything
//! else as `message`). End of input does not stop the recording.
//!
//! It runs until Ctrl-C / SIGTERM, `--duration`, or the server closes the
//! connection. Each line is written whole as it comes, so a capture cut
//! short is still valid NDJSON.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::{Value, json};
use switchboard_server::capture::{self, Dir, Header};
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::connect::{Protocol, open_websocket, socketio_websocket_url, with_token};

#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    /// The server: `ws://host:port/ws` (native), `http://host:port`
    /// (socketio), any WebSocket URL (raw).
    url: String,
    /// The capture file (NDJSON; replaced if it exists).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// The protocol spoken.
    #[arg(long, value_enum, default_value = "native")]
    protocol: Protocol,
    /// Rooms to join (native, socketio).
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// Ask for presence events in the rooms joined.
    #[arg(long)]
    presence: bool,
    /// A token (JWT) for the server (native, socketio).
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Stop after this long: seconds (`2.5`) or with a unit (`30s`, `5m`);
    /// default: until Ctrl-C / SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err("a duration is not negative".into()),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
}

pub(crate) fn run(args: RecordArgs) -> anyhow::Result<()> {
    if args.protocol == Protocol::Raw && (!args.rooms.is_empty() || args.token.is_some()) {
        anyhow::bail!(
            "--room and --token are for native and socketio; a raw recorder sends only what is typed on stdin"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(record(args));
    // The stdin reader may be blocked in a read: do not wait for it.
    rt.shutdown_background();
    result
}

/// The capture file: a header, then a line per frame, each written whole.
struct Out {
    file: std::fs::File,
    started: Instant,
    frames: u64,
}

impl Out {
    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn write(&mut self, line: &str) -> anyhow::Result<()> {
        self.file
            .write_all(line.as_bytes())
            .context("writing the capture")?;
        self.frames += 1;
        Ok(())
    }

    fn message(&mut self, dir: Dir, m: &Message) -> anyhow::Result<()> {
        let line = capture::message_line(self.t(), dir, m);
        self.write(&line)
    }

    fn close(&mut self, dir: Dir, code: Option<u16>, reason: &str) -> anyhow::Result<()> {
        let line = capture::close_line(self.t(), dir, code, reason);
        self.write(&line)
    }
}

/// What the recorder does on its own, per protocol.
struct Session {
    protocol: Protocol,
    rooms: Vec<String>,
    presence: bool,
    token: Option<String>,
    /// Request / ack ids of the joins sent, with their room.
    joins: Vec<(u64, String)>,
    next_id: u64,
}

impl Session {
    /// Frames to send in answer to `m` from the server.
    fn on_frame(&mut self, m: &Message) -> Vec<Message> {
        let Message::Text(t) = m else {
            return Vec::new();
        };
        let t = t.as_str();
        match self.protocol {
            Protocol::Raw => Vec::new(),
            Protocol::Native => {
                let Ok(v) = serde_json::from_str::<Value>(t) else {
                    return Vec::new();
                };
                if v["op"] == "welcome" {
                    return self.join_requests();
                }
                if let Some(id) = v["id"].as_u64() {
                    self.joined(id, &v);
                }
                Vec::new()
            }
            Protocol::Socketio => {
                if t == "2" {
                    return vec![Message::text("3")];
                }
                if t.starts_with('0') {
                    // Engine.IO open: connect to the main namespace.
                    let connect = match &self.token {
                        Some(token) => format!("40{}", json!({"token": token})),
                        None => "40".to_owned(),
                    };
                    return vec![Message::text(connect)];
                }
                if t.starts_with("40") {
                    return self.join_requests();
                }
                if let Some(rest) = t.strip_prefix("44") {
                    eprintln!("switchboard record: connect_error {rest}");
                }
                // An ack: `43<id>[answer]`.
                if let Some(rest) = t.strip_prefix("43") {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let (Ok(id), Ok(Value::Array(a))) = (
                        digits.parse::<u64>(),
                        serde_json::from_str::<Value>(&rest[digits.len()..]),
                    ) {
                        self.joined(id, a.first().unwrap_or(&Value::Null));
                    }
                }
                Vec::new()
            }
        }
    }

    fn join_requests(&mut self) -> Vec<Message> {
        let rooms = std::mem::take(&mut self.rooms);
        rooms
            .into_iter()
            .map(|room| {
                self.next_id += 1;
                let id = self.next_id;
                let m = match self.protocol {
                    Protocol::Socketio => format!(
                        "42{id}{}",
                        json!(["join", room, {"presence": self.presence}])
                    ),
                    _ => json!({"id": id, "op": "join", "room": room, "presence": self.presence})
                        .to_string(),
                };
                self.joins.push((id, room));
                Message::text(m)
            })
            .collect()
    }

    fn joined(&mut self, id: u64, answer: &Value) {
        let Some(i) = self.joins.iter().position(|(j, _)| *j == id) else {
            return;
        };
        let (_, room) = self.joins.remove(i);
        if answer["ok"] == json!(true) {
            eprintln!("switchboard record: joined {room}");
        } else {
            eprintln!("switchboard record: join {room}: {answer}");
        }
    }

    /// A line typed on stdin, as the frame to send.
    fn typed(&self, line: String) -> Message {
        match self.protocol {
            Protocol::Socketio => {
                let packet = match serde_json::from_str::<Value>(&line) {
                    Ok(a @ Value::Array(_)) if a[0].is_string() => a,
                    _ => json!(["message", line]),
                };
                Message::text(format!("42{packet}"))
            }
            _ => Message::text(line),
        }
    }
}

async fn record(args: RecordArgs) -> anyhow::Result<()> {
    let url = match (args.protocol, &args.token) {
        (Protocol::Socketio, _) => socketio_websocket_url(&args.url)?,
        (Protocol::Native, Some(token)) => with_token(&args.url, token),
        _ => args.url.clone(),
    };
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut ws = open_websocket(&url).await?;
    let started_at = SystemTime::now();
    let mut out = Out {
        file,
        started: Instant::now(),
        frames: 0,
    };
    let protocol = match args.protocol {
        Protocol::Native => "native",
        Protocol::Socketio => "socketio",
        Protocol::Raw => "raw",
    };
    let header = Header {
        protocol: protocol.to_owned(),
        url: Some(args.url.clone()),
        started_at: switchboard_server::wire::timestamp(started_at),
        rooms: args.rooms.clone(),
        target: None,
    };
    out.file
        .write_all(header.line().as_bytes())
        .context("writing the capture")?;
    eprintln!(
        "switchboard record: recording {} ({protocol}) to {}",
        args.url,
        args.output.display()
    );
    let mut session = Session {
        protocol: args.protocol,
        rooms: args.rooms.clone(),
        presence: args.presence,
        token: args.token.clone(),
        joins: Vec::new(),
        next_id: 0,
    };
    let result = pump(&mut ws, &mut out, &mut session, args.duration).await;
    eprintln!(
        "switchboard record: {} frames in {}",
        out.frames,
        args.output.display()
    );
    result
}

/// Records until the end; sends a close (recorded) when the recorder is
/// the one that stops.
async fn pump(
    ws: &mut WebSocket<MaybeTlsStream>,
    out: &mut Out,
    session: &mut Session,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let stop = crate::listen::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            m = ws.recv() => match m {
                Some(Ok(m)) => {
                    out.message(Dir::In, &m)?;
                    for answer in session.on_frame(&m) {
                        out.message(Dir::Out, &answer)?;
                        ws.send(answer).await?;
                    }
                }
                Some(Err(e)) => {
                    if let Some(f) = ws.peer_close() {
                        out.close(Dir::In, Some(f.code.0), &f.reason)?;
                    }
                    anyhow::bail!("the connection failed: {e}");
                }
                None => {
                    match ws.peer_close() {
                        Some(f) => out.close(Dir::In, Some(f.code.0), &f.reason)?,
                        None => out.close(Dir::In, None, "")?,
                    }
                    eprintln!("switchboard record: closed by the server");
                    return Ok(());
                }
            },
            line = lines.next_line(), if input_open => match line {
                Ok(Some(line)) if !line.trim().is_empty() => {
                    let m = session.typed(line);
                    out.message(Dir::Out, &m)?;
                    ws.send(m).await?;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => input_open = false,
            },
            () = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await },
                if deadline.is_some() => break,
            () = &mut stop => break,
        }
    }
    out.close(Dir::Out, Some(1000), "")?;
    let frame = CloseFrame::new(CloseCode::from(1000), "");
    let _ = tokio::time::timeout(Duration::from_secs(3), ws.close(Some(frame))).await;
    Ok(())
}

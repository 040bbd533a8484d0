//! `switchboard connect URL`: a client on the terminal or in a script.
//!
//! * `--protocol native` (default): the Rust client of `switchboard-client`
//!   with its reconnection (backoff, `--backup` URLs, rejoin with `since`).
//!   A typed line that is a JSON object is sent as a request (`{"op":…}`)
//!   and its answer printed; any other line is published to the first
//!   `--room` as event `message`. Room messages, presence and answers are
//!   JSON lines on stdout; connection states go to stderr.
//! * `--protocol socketio`: any Socket.IO server (`http://host:port`),
//!   WebSocket or long-polling. A line that is a JSON array
//!   `["event", args…]` is emitted with an ack (the ack is printed); any
//!   other line is emitted as `message`. With `--room`, the rooms are
//!   joined through `switchboard serve`'s relay (`join` events). Events
//!   received are printed as `{"event", "args"}`. Room messages come once
//!   and in order across reconnects: a session Socket.IO recovered keeps
//!   its rooms; any other (a new node, an expired session) rejoins with
//!   `since` and prints what it missed first (`{"gap": room}` when the log
//!   no longer held it).
//! * `--protocol raw`: any WebSocket server, like wscat: each line is sent
//!   as a text frame, each text frame received is printed as a line (binary
//!   frames as `{"binary":"<base64>"}`).
//!
//! `--exit-after N` exits after N messages received (room messages for
//! native, frames for raw); end of input closes the connection (after the
//! answers to what was sent, for native).

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use switchboard_client::native::{Client, ClientConfig, Event, State};
use switchboard_client::recovery::{JoinAnswer, Positioned, Recovery};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// The native JSON protocol of `switchboard serve` at `/ws`.
    Native,
    /// Socket.IO v5 (any Socket.IO server; `switchboard serve` at `/`).
    Socketio,
    /// Plain WebSocket text frames, any server.
    Raw,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The server: `ws://host:port/ws` (native) or any WebSocket URL (raw).
    url: String,
    /// The protocol spoken.
    #[arg(long, value_enum, default_value = "native")]
    protocol: Protocol,
    /// Rooms to join (native); lines that are not JSON go to the first.
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// Ask for presence events in the rooms joined.
    #[arg(long)]
    presence: bool,
    /// A token (JWT) for the server.
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Backup URLs, tried in order when the current one fails (native).
    #[arg(long = "backup")]
    backups: Vec<String>,
    /// Exit after this many messages received.
    #[arg(long)]
    exit_after: Option<u64>,
}

pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        match args.protocol {
            Protocol::Native => native(args).await,
            Protocol::Socketio => socketio(args).await,
            Protocol::Raw => raw(args).await,
        }
    });
    // The stdin reader may be blocked in a read: do not wait for it.
    rt.shutdown_background();
    result
}

fn print(v: &Value) {
    println!("{v}");
}

async fn native(args: ConnectArgs) -> anyhow::Result<()> {
    let mut urls = vec![args.url.clone()];
    urls.extend(args.backups.iter().cloned());
    let mut config = ClientConfig::new(urls);
    if let Some(token) = &args.token {
        config = config.token(token.clone());
    }
    let (client, mut events) = Client::connect(config);
    for room in &args.rooms {
        // Queued now (before any line is read), joined once connected.
        let joined = client.join(room, args.presence);
        let room = room.clone();
        tokio::spawn(async move {
            match joined.await {
                Ok(_) => eprintln!("switchboard connect: joined {room}"),
                Err(e) => eprintln!("switchboard connect: join {room}: {e}"),
            }
        });
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut sent = tokio::task::JoinSet::new();
    let mut received = 0u64;
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                None => {
                    input_open = false;
                    if args.exit_after.is_none() {
                        break;
                    }
                }
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    let request = match serde_json::from_str::<Value>(&line) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => match args.rooms.first() {
                            Some(room) => json!({"op": "publish", "room": room, "event": "message", "data": line}),
                            None => {
                                eprintln!("switchboard connect: not JSON and no --room to publish to");
                                continue;
                            }
                        },
                    };
                    let answer = client.request(request);
                    sent.spawn(async move {
                        match answer.await {
                            Ok(mut answer) => {
                                answer["ok"] = json!(true);
                                print(&answer);
                            }
                            Err(e) => print(&json!({"ok": false, "error": e.to_string()})),
                        }
                    });
                }
            },
            event = events.recv() => match event {
                None => break,
                Some(Event::State(state)) => {
                    eprintln!("switchboard connect: {}", describe(&state));
                    if matches!(state, State::Closed { .. }) {
                        break;
                    }
                }
                Some(Event::Message(m)) => {
                    print(&json!({"op": "message", "room": m.room, "event": m.event, "data": m.data,
                        "offset": m.offset, "epoch": m.epoch, "from": m.from}));
                    received += 1;
                    if args.exit_after.is_some_and(|n| received >= n) {
                        break;
                    }
                }
                Some(Event::Presence { room, user, action }) => {
                    print(&json!({"op": "presence", "room": room, "user": user, "action": action}));
                }
                Some(Event::Gap { room }) => {
                    print(&json!({"op": "gap", "room": room}));
                }
                Some(Event::Kicked { reason, reconnect }) => {
                    print(&json!({"op": "kick", "reason": reason, "reconnect": reconnect}));
                }
            },
        }
    }
    // Answers to what was sent still print.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while sent.join_next().await.is_some() {}
    })
    .await;
    client.close();
    Ok(())
}

fn describe(state: &State) -> String {
    match state {
        State::Connecting { url } => format!("connecting to {url}"),
        State::Open { url, socket, user } => {
            format!("connected to {url} as {user} (socket {socket})")
        }
        State::Reconnecting {
            attempt,
            delay,
            url,
        } => format!("reconnecting to {url} in {delay:?} (attempt {attempt})"),
        State::Closed { reason } => format!("closed: {reason}"),
    }
}

async fn socketio(args: ConnectArgs) -> anyhow::Result<()> {
    use switchboard_client::socketio::{self as sio, Args, SioClient, SioConfig};

    let mut urls = vec![args.url.clone()];
    urls.extend(args.backups.iter().cloned());
    let mut config = SioConfig::new(urls);
    if let Some(token) = &args.token {
        config = config.auth(json!({"token": token}));
    }
    let (client, mut events) = SioClient::connect(config);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut sent = tokio::task::JoinSet::new();
    let mut received = 0u64;
    // Room messages once and in order across reconnects, to this node or
    // another: a session Socket.IO did not recover rejoins with `since`.
    let mut tracker: Recovery<RoomEvent> = Recovery::default();
    let (join_tx, mut join_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<Value>)>();
    let print_args = |a: &Args| {
        let mut v = a.values.clone();
        use base64::Engine as _;
        v.extend(
            a.binary
                .iter()
                .map(|b| json!({"binary": base64::engine::general_purpose::STANDARD.encode(b)})),
        );
        Value::Array(v)
    };
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                None => {
                    input_open = false;
                    if args.exit_after.is_none() {
                        break;
                    }
                }
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    let (name, values) = match serde_json::from_str::<Value>(&line) {
                        Ok(Value::Array(mut a)) if a.first().is_some_and(Value::is_string) => {
                            let name = a.remove(0).as_str().unwrap_or_default().to_owned();
                            (name, a)
                        }
                        _ => ("message".to_owned(), vec![Value::String(line)]),
                    };
                    let answer = client.emit_with_ack(&name, Args::json(values));
                    sent.spawn(async move {
                        match answer.await {
                            Ok(a) => print(&json!({"ack": name, "args": print_args(&a)})),
                            Err(e) => print(&json!({"ack": name, "error": e.to_string()})),
                        }
                    });
                }
            },
            event = events.recv() => match event {
                None => break,
                Some(sio::Event::State(state)) => {
                    eprintln!("switchboard connect: {state:?}");
                    match state {
                        // Socket.IO restored the session and its rooms.
                        sio::State::Open { recovered: true, .. } => {}
                        sio::State::Open { .. } => {
                            for room in &args.rooms {
                                let since = tracker.joining(room, args.presence);
                                let opts = json!({"presence": args.presence, "since": since.map(|s| json!({"epoch": s.epoch, "offset": s.offset}))});
                                let joined = client.emit_with_ack("join", Args::json(vec![json!(room), opts]));
                                let (room, tx) = (room.clone(), join_tx.clone());
                                tokio::spawn(async move {
                                    let answer = match joined.await {
                                        Ok(a) => a.values.into_iter().next(),
                                        Err(e) => {
                                            eprintln!("switchboard connect: join {room}: {e}");
                                            None
                                        }
                                    };
                                    let _ = tx.send((room, answer));
                                });
                            }
                        }
                        sio::State::Closed { .. } => break,
                        _ => {
                            for room in &args.rooms {
                                tracker.interrupted(room);
                            }
                        }
                    }
                }
                Some(sio::Event::Event { name, args: a, ack }) => {
                    if let Some(id) = ack {
                        client.ack(id, Args::default());
                    }
                    let line = json!({"event": name, "args": print_args(&a)});
                    let out = match room_of(&a) {
                        Some((room, epoch, offset)) => tracker.message(&room, RoomEvent { epoch, offset, line }),
                        None => Some(RoomEvent { epoch: String::new(), offset: 0, line }),
                    };
                    if let Some(e) = out {
                        print(&e.line);
                        received += 1;
                    }
                    if args.exit_after.is_some_and(|n| received >= n) {
                        break;
                    }
                }
                Some(sio::Event::ConnectError { error }) => {
                    print(&json!({"connect_error": error}));
                }
            },
            Some((room, answer)) = join_rx.recv() => {
                let Some(answer) = answer.filter(|a| a["ok"] == json!(true)) else {
                    tracker.join_failed(&room);
                    continue;
                };
                eprintln!(
                    "switchboard connect: joined {room} at {} (recovered: {})",
                    answer["offset"], answer["recovered"]
                );
                let rejoined = tracker.joined(&room, join_answer(&room, &answer));
                if rejoined.gap {
                    print(&json!({"gap": room, "epoch": answer["epoch"], "offset": answer["offset"]}));
                }
                for e in rejoined.deliver {
                    print(&e.line);
                    received += 1;
                }
                if args.exit_after.is_some_and(|n| received >= n) {
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while sent.join_next().await.is_some() {}
    })
    .await;
    client.close();
    Ok(())
}

/// A relay room event (`[data, {room, epoch, offset, …}]`) as printed.
struct RoomEvent {
    epoch: String,
    offset: u64,
    line: Value,
}

impl Positioned for RoomEvent {
    fn epoch(&self) -> &str {
        &self.epoch
    }
    fn offset(&self) -> u64 {
        self.offset
    }
}

/// The room, epoch and offset of a relay room event.
fn room_of(a: &switchboard_client::socketio::Args) -> Option<(String, String, u64)> {
    let meta = a.values.get(1)?;
    Some((
        meta["room"].as_str()?.to_owned(),
        meta["epoch"].as_str()?.to_owned(),
        meta["offset"].as_u64()?,
    ))
}

/// A relay join answer, its missed messages printed like live ones.
fn join_answer(room: &str, answer: &Value) -> JoinAnswer<RoomEvent> {
    let epoch = answer["epoch"].as_str().unwrap_or_default().to_owned();
    let missed = answer["missed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let offset = m["offset"].as_u64()?;
            let meta = json!({"room": room, "offset": offset, "epoch": epoch, "from": m["from"], "at": m["at"]});
            Some(RoomEvent {
                epoch: epoch.clone(),
                offset,
                line: json!({"event": m["event"], "args": [m["data"], meta]}),
            })
        })
        .collect();
    JoinAnswer {
        epoch: epoch.clone(),
        offset: answer["offset"].as_u64().unwrap_or(0),
        recovered: answer["recovered"] == json!(true),
        missed,
    }
}

/// Opens a plain WebSocket to `url` (any server): what `--protocol raw`
/// connects with, and `record` for every protocol.
pub(crate) async fn open_websocket(
    url: &str,
) -> anyhow::Result<switchboard_wire::io::WebSocket<switchboard_wire::io::MaybeTlsStream>> {
    use switchboard_wire::io::{ConnectOptions, connect};

    let options = ConnectOptions::new(switchboard_wire::Config::default());
    let (ws, _) = connect(url, &options)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// `url` with `token=T` added to its query (percent-encoded): how the
/// native protocol takes a token (as the native client sends it).
pub(crate) fn with_token(url: &str, token: &str) -> String {
    let mut encoded = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}token={encoded}")
}

/// The Engine.IO WebSocket endpoint of a Socket.IO server:
/// `http://host:port` → `ws://host:port/socket.io/?EIO=4&transport=websocket`
/// (a URL with a path of its own keeps it as the Engine.IO path).
pub(crate) fn socketio_websocket_url(url: &str) -> anyhow::Result<String> {
    let target = switchboard_wire::io::Target::parse(url)?;
    let (path, query) = match target.path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.path.clone(), None),
    };
    let path = match path.as_str() {
        "" | "/" => "/socket.io/".to_owned(),
        p if p.ends_with('/') => p.to_owned(),
        p => format!("{p}/"),
    };
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let scheme = if target.tls { "wss" } else { "ws" };
    let mut out = format!(
        "{scheme}://{host}:{}{path}?EIO=4&transport=websocket",
        target.port
    );
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('&');
        out.push_str(&q);
    }
    Ok(out)
}

async fn raw(args: ConnectArgs) -> anyhow::Result<()> {
    use base64::Engine as _;
    use switchboard_wire::Message;

    let mut ws = open_websocket(&args.url).await?;
    eprintln!("switchboard connect: connected to {}", args.url);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut received = 0u64;
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                Some(line) => ws.send(Message::Text(line.into())).await?,
                None => {
                    input_open = false;
                    if args.exit_after.is_none() {
                        let _ = ws.close(None).await;
                        break;
                    }
                }
            },
            m = ws.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    println!("{}", t.as_str());
                    received += 1;
                }
                Some(Ok(Message::Binary(b))) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&b);
                    print(&json!({"binary": b64}));
                    received += 1;
                }
                Some(Err(e)) => anyhow::bail!("connection failed: {e}"),
                None => {
                    let code = ws.peer_close().map(|f| f.code.0);
                    eprintln!("switchboard connect: closed by the server (code {code:?})");
                    break;
                }
            },
        }
        if args.exit_after.is_some_and(|n| received >= n) {
            let _ = ws.close(None).await;
            break;
        }
    }
    Ok(())
}

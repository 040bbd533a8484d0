//! The Socket.IO v5 client (Engine.IO v4): the main namespace `/` of any
//! Socket.IO server (the official Node one, or `switchboard serve`).
//!
//! * WebSocket first; when it is refused, HTTP long-polling on the same URL.
//! * The heartbeat follows the server: it pings every `pingInterval`; no
//!   ping within `pingInterval + pingTimeout` and the connection is dead.
//! * Events and acknowledgements both ways, binary attachments.
//! * Reconnection with the same backoff and URL rotation as the native
//!   client. With connection state recovery on the server, the client sends
//!   its `pid` and last offset again and gets what it missed
//!   ([`State::Open`]'s `recovered`).
//! * A server-side disconnect (`socket.disconnect()` on the server) stops
//!   the client, as in the reference client; a lost transport reconnects.
//! * The token provider fills `auth.token` of every CONNECT and answers
//!   `switchboard serve`'s `refresh` event (`emit("refresh", token)`).
//! * Offline, emits wait in a bounded queue (`queue_limit`, default 1000);
//!   beyond it a new emit is dropped (an `emit_with_ack` fails with
//!   [`SioError::QueueFull`]); what is queued is kept, in order.

mod engine;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_engine::packet::Packet as EioPacket;
use switchboard_socketio::packet::{Decoded, Limits, Packet, PacketKind, Reassembly, decode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffConfig};
use crate::rotation::Rotation;
use engine::{Kind, Session};

/// Client settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct SioConfig {
    /// Server URLs (`http://host:port`), the primary first.
    pub urls: Vec<String>,
    /// The Engine.IO path. Default `/socket.io/`.
    pub path: String,
    /// Delays between attempts.
    pub backoff: BackoffConfig,
    /// Failed attempts in a row on one URL before the next. Default 2.
    pub failures_per_url: u32,
    /// The CONNECT payload (`auth`), e.g. `{"token": "…"}`.
    pub auth: Option<Value>,
    /// Time an `emit_with_ack` waits. Default 10 s.
    pub ack_timeout: Duration,
    /// Time a connection attempt may take. Default 10 s.
    pub connect_timeout: Duration,
    /// Try WebSocket first (else polling only). Default true.
    pub websocket: bool,
    /// Emits kept while offline. Default 1000.
    pub queue_limit: usize,
    /// Where `auth.token` comes from (asked before each connection and on
    /// a `refresh` event).
    pub token: Option<crate::native::TokenProvider>,
}

impl std::fmt::Debug for SioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SioConfig")
            .field("urls", &self.urls)
            .field("path", &self.path)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl SioConfig {
    /// Defaults for these URLs.
    pub fn new<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            path: "/socket.io/".into(),
            backoff: BackoffConfig::default(),
            failures_per_url: 2,
            auth: None,
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            websocket: true,
            queue_limit: 1000,
            token: None,
        }
    }

    /// A token provider (see [`SioConfig::token`]).
    pub fn token_provider(mut self, provider: crate::native::TokenProvider) -> Self {
        self.token = Some(provider);
        self
    }

    /// The CONNECT payload.
    pub fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the backoff.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }
}

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connecting to `url`.
    Connecting {
        /// The URL tried.
        url: String,
    },
    /// Connected to the namespace.
    Open {
        /// The URL.
        url: String,
        /// The socket id.
        sid: String,
        /// `websocket` or `polling`.
        transport: &'static str,
        /// Whether the server restored the previous session (and sent what
        /// was missed).
        recovered: bool,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        /// Attempts since the last connection.
        attempt: u32,
        /// The wait.
        delay: Duration,
        /// The URL it will try.
        url: String,
    },
    /// Stopped for good.
    Closed {
        /// Why.
        reason: String,
    },
}

/// Arguments of an event or an ack: JSON values (binary attachments appear
/// as `{"_placeholder":true,"num":i}`) and the attachments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args {
    /// The values.
    pub values: Vec<Value>,
    /// The binary attachments, by placeholder number.
    pub binary: Vec<Bytes>,
}

impl Args {
    /// JSON values only.
    pub fn json(values: Vec<Value>) -> Self {
        Self {
            values,
            binary: Vec::new(),
        }
    }

    /// Adds a binary argument (a placeholder in the values).
    pub fn with_binary(mut self, data: impl Into<Bytes>) -> Self {
        let num = self.binary.len();
        self.values.push(json!({"_placeholder": true, "num": num}));
        self.binary.push(data.into());
        self
    }
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The connection state changed.
    State(State),
    /// A server event; answer `ack` with [`SioClient::ack`] when it is set.
    Event {
        /// Its name.
        name: String,
        /// Its arguments.
        args: Args,
        /// The ack id the server waits on.
        ack: Option<u64>,
    },
    /// The server refused the namespace connection (CONNECT_ERROR).
    ConnectError {
        /// Its payload (`{message, data?}`).
        error: Value,
    },
}

/// Why an emit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SioError {
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// No ack in time.
    #[error("no ack in time")]
    Timeout,
    /// The connection dropped before the ack.
    #[error("disconnected before the ack")]
    Disconnected,
    /// Offline with the queue full.
    #[error("the offline queue is full")]
    QueueFull,
}

enum Command {
    Emit {
        name: String,
        args: Args,
        ack: Option<oneshot::Sender<Result<Args, SioError>>>,
    },
    Ack {
        id: u64,
        args: Args,
    },
    Close,
}

/// A handle on the client; cheap to clone.
#[derive(Clone, Debug)]
pub struct SioClient {
    tx: mpsc::UnboundedSender<Command>,
}

impl SioClient {
    /// Starts the client (within a tokio runtime).
    ///
    /// # Panics
    /// With no URL.
    pub fn connect(config: SioConfig) -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, cmds) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        // reqwest's rustls needs a process-wide provider: ring, as elsewhere.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let driver = Driver {
            rotation: Rotation::new(config.urls.clone(), config.failures_per_url),
            backoff: Backoff::new(config.backoff),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            config,
            events: events_tx,
            cmds,
            offline: Vec::new(),
            pid: None,
            offset: None,
            next_ack: 0,
        };
        tokio::spawn(driver.run());
        (Self { tx }, events)
    }

    /// Emits an event (queued while offline).
    pub fn emit(&self, name: &str, args: Args) -> Result<(), SioError> {
        self.tx
            .send(Command::Emit {
                name: name.to_owned(),
                args,
                ack: None,
            })
            .map_err(|_| SioError::Closed)
    }

    /// Emits an event and waits for the server's ack.
    pub fn emit_with_ack(
        &self,
        name: &str,
        args: Args,
    ) -> impl Future<Output = Result<Args, SioError>> + Send + 'static {
        let (ack, rx) = oneshot::channel();
        let sent = self.tx.send(Command::Emit {
            name: name.to_owned(),
            args,
            ack: Some(ack),
        });
        async move {
            sent.map_err(|_| SioError::Closed)?;
            rx.await.map_err(|_| SioError::Closed)?
        }
    }

    /// Answers a server event that asked for an ack.
    pub fn ack(&self, id: u64, args: Args) {
        let _ = self.tx.send(Command::Ack { id, args });
    }

    /// Disconnects and stops.
    pub fn close(&self) {
        let _ = self.tx.send(Command::Close);
    }
}

struct Waiting {
    reply: oneshot::Sender<Result<Args, SioError>>,
    deadline: Instant,
}

enum End {
    Stop(String),
    Retry { connected: bool },
}

struct Driver {
    config: SioConfig,
    rotation: Rotation,
    backoff: Backoff,
    http: reqwest::Client,
    events: mpsc::UnboundedSender<Event>,
    cmds: mpsc::UnboundedReceiver<Command>,
    /// Emits made while offline.
    offline: Vec<Command>,
    /// Connection state recovery: the private id and the last offset.
    pid: Option<String>,
    offset: Option<String>,
    next_ack: u64,
}

/// The Engine.IO packets carrying one Socket.IO packet.
fn frames(p: &Packet) -> Vec<EioPacket> {
    let mut out = vec![EioPacket::Message(p.encode())];
    out.extend(p.attachments.iter().cloned().map(EioPacket::Binary));
    out
}

fn args_of(values: Option<Value>, binary: Vec<Bytes>) -> Args {
    let values = match values {
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
        None => Vec::new(),
    };
    Args { values, binary }
}

impl Driver {
    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    async fn run(mut self) {
        loop {
            let url = self.rotation.current().to_owned();
            self.emit(Event::State(State::Connecting { url: url.clone() }));
            match self.session(&url).await {
                End::Stop(reason) => return self.stop(reason),
                End::Retry { connected } => {
                    if connected {
                        self.backoff.reset();
                        self.rotation.succeeded();
                    } else {
                        self.rotation.failed();
                    }
                }
            }
            let Some(delay) = self.backoff.next_delay() else {
                return self.stop("gave up reconnecting".into());
            };
            self.emit(Event::State(State::Reconnecting {
                attempt: self.backoff.attempt(),
                delay,
                url: self.rotation.current().to_owned(),
            }));
            let until = Instant::now() + delay;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    cmd = self.cmds.recv() => match cmd {
                        None | Some(Command::Close) => return self.stop("closed by the client".into()),
                        Some(cmd @ Command::Emit { .. }) => self.queue(cmd),
                        // An ack for a server that is gone: nobody waits for it.
                        Some(Command::Ack { .. }) => {}
                    },
                }
            }
        }
    }

    fn queue(&mut self, cmd: Command) {
        if self.offline.len() < self.config.queue_limit {
            self.offline.push(cmd);
        } else if let Command::Emit { ack: Some(ack), .. } = cmd {
            let _ = ack.send(Err(SioError::QueueFull));
        }
    }

    async fn token(&self) -> Option<String> {
        match &self.config.token {
            Some(provider) => provider().await,
            None => None,
        }
    }

    fn stop(mut self, reason: String) {
        for cmd in self.offline.drain(..) {
            if let Command::Emit { ack: Some(ack), .. } = cmd {
                let _ = ack.send(Err(SioError::Closed));
            }
        }
        self.emit(Event::State(State::Closed { reason }));
    }

    async fn open(&self, url: &str) -> Option<Session> {
        let path = &self.config.path;
        if self.config.websocket {
            // Refused (a proxy without upgrades, a polling-only server) or
            // unreachable: polling next, on the same URL.
            if let Ok(s) = engine::open_websocket(url, path).await {
                return Some(s);
            }
        }
        engine::open_polling(&self.http, url, path).await.ok()
    }

    async fn session(&mut self, url: &str) -> End {
        let retry = End::Retry { connected: false };
        let token = self.token().await;
        let attempt = async {
            let mut session = self.open(url).await?;
            let mut auth = self.config.auth.clone().unwrap_or_else(|| json!({}));
            if let (Some(t), Some(o)) = (&token, auth.as_object_mut()) {
                o.insert("token".into(), json!(t));
            }
            if let (Some(pid), Some(o)) = (&self.pid, auth.as_object_mut()) {
                o.insert("pid".into(), json!(pid));
                o.insert("offset".into(), json!(self.offset));
            }
            let connect = Packet {
                kind: PacketKind::Connect,
                nsp: "/".into(),
                id: None,
                data: Some(auth),
                attachments: Vec::new(),
            };
            session.send(&frames(&connect)).await.ok()?;
            // Until the CONNECT answer (pings are answered meanwhile).
            loop {
                match session.recv().await?.ok()? {
                    EioPacket::Ping(d) => session.send(&[EioPacket::Pong(d)]).await.ok()?,
                    EioPacket::Message(m) => return Some((session, m)),
                    _ => {}
                }
            }
        };
        let Ok(Some((mut session, first))) =
            tokio::time::timeout(self.config.connect_timeout, attempt).await
        else {
            return retry;
        };
        let p = match decode(&first, &Limits::default()) {
            Ok(Decoded::Packet(p)) => p,
            _ => return retry,
        };
        match p.kind {
            PacketKind::Connect => {}
            PacketKind::ConnectError => {
                self.emit(Event::ConnectError {
                    error: p.data.unwrap_or(Value::Null),
                });
                // Refused by the server's middleware: as the reference
                // client, do not retry by itself.
                return End::Stop("connection refused by the server".into());
            }
            _ => return retry,
        }
        let data = p.data.unwrap_or(Value::Null);
        let sid = data
            .get("sid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
        let recovered = pid.is_some() && pid == self.pid;
        if !recovered {
            self.offset = None;
        }
        self.pid = pid;
        self.emit(Event::State(State::Open {
            url: url.to_owned(),
            sid,
            transport: match session.kind {
                Kind::WebSocket => "websocket",
                Kind::Polling => "polling",
            },
            recovered,
        }));
        self.serve(&mut session).await
    }

    async fn serve(&mut self, session: &mut Session) -> End {
        let heartbeat =
            Duration::from_millis(session.open.ping_interval + session.open.ping_timeout);
        let mut deadline = Instant::now() + heartbeat;
        let mut waiting: HashMap<u64, Waiting> = HashMap::new();
        let mut binary: Option<Reassembly> = None;
        for cmd in std::mem::take(&mut self.offline) {
            if self.command(session, cmd, &mut waiting).await.is_err() {
                return self.lost(waiting);
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                p = session.recv() => {
                    let Some(Ok(p)) = p else {
                        return self.lost(waiting);
                    };
                    match p {
                        EioPacket::Ping(d) => {
                            deadline = Instant::now() + heartbeat;
                            if session.send(&[EioPacket::Pong(d)]).await.is_err() {
                                return self.lost(waiting);
                            }
                        }
                        EioPacket::Close => return self.lost(waiting),
                        EioPacket::Message(m) => match decode(&m, &Limits::default()) {
                            Ok(Decoded::Packet(p)) => {
                                let refresh = p.event_name() == Some("refresh");
                                if let Some(end) = self.packet(p, &mut waiting) {
                                    return end;
                                }
                                if refresh && let Some(token) = self.token().await {
                                    let cmd = Command::Emit { name: "refresh".into(), args: Args::json(vec![json!(token)]), ack: None };
                                    if self.command(session, cmd, &mut waiting).await.is_err() {
                                        return self.lost(waiting);
                                    }
                                }
                            }
                            Ok(Decoded::Binary(r)) => binary = Some(r),
                            Err(_) => return self.lost(waiting),
                        },
                        p @ EioPacket::Binary(_) => {
                            let Some(r) = binary.as_mut() else {
                                return self.lost(waiting);
                            };
                            match r.push(engine::binary(&p).unwrap_or_default()) {
                                Ok(Some(p)) => {
                                    binary = None;
                                    if let Some(end) = self.packet(p, &mut waiting) {
                                        return end;
                                    }
                                }
                                Ok(None) => {}
                                Err(_) => return self.lost(waiting),
                            }
                        }
                        _ => {}
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => {
                        let bye = Packet { kind: PacketKind::Disconnect, nsp: "/".into(), id: None, data: None, attachments: Vec::new() };
                        let _ = session.send(&frames(&bye)).await;
                        session.close().await;
                        for (_, w) in waiting {
                            let _ = w.reply.send(Err(SioError::Closed));
                        }
                        return End::Stop("closed by the client".into());
                    }
                    Some(cmd) => {
                        if self.command(session, cmd, &mut waiting).await.is_err() {
                            return self.lost(waiting);
                        }
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now > deadline {
                        // The server stopped pinging: dead.
                        return self.lost(waiting);
                    }
                    waiting.retain(|_, w| {
                        if w.deadline > now {
                            return true;
                        }
                        let (tx, _) = oneshot::channel();
                        let reply = std::mem::replace(&mut w.reply, tx);
                        let _ = reply.send(Err(SioError::Timeout));
                        false
                    });
                }
            }
        }
    }

    fn lost(&self, waiting: HashMap<u64, Waiting>) -> End {
        for (_, w) in waiting {
            let _ = w.reply.send(Err(SioError::Disconnected));
        }
        End::Retry { connected: true }
    }

    async fn command(
        &mut self,
        session: &mut Session,
        cmd: Command,
        waiting: &mut HashMap<u64, Waiting>,
    ) -> Result<(), engine::TransportError> {
        let p = match cmd {
            Command::Emit { name, args, ack } => {
                let id = ack.map(|reply| {
                    let id = self.next_ack;
                    self.next_ack += 1;
                    let deadline = Instant::now() + self.config.ack_timeout;
                    waiting.insert(id, Waiting { reply, deadline });
                    id
                });
                let mut p = Packet::event("/", &name, args.values, id);
                p.attachments = args.binary;
                p
            }
            Command::Ack { id, args } => Packet {
                kind: PacketKind::Ack,
                nsp: "/".into(),
                id: Some(id),
                data: Some(Value::Array(args.values)),
                attachments: args.binary,
            },
            Command::Close => return Ok(()),
        };
        session.send(&frames(&p)).await
    }

    /// One Socket.IO packet from the server; `Some` ends the session.
    fn packet(&mut self, p: Packet, waiting: &mut HashMap<u64, Waiting>) -> Option<End> {
        if p.nsp != "/" {
            return None;
        }
        match p.kind {
            PacketKind::Event => {
                let mut args = args_of(p.data, p.attachments);
                if args.values.is_empty() {
                    return None;
                }
                let name = match args.values.remove(0) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if self.pid.is_some()
                    && let Some(Value::String(offset)) = args.values.last()
                {
                    self.offset = Some(offset.clone());
                }
                self.emit(Event::Event {
                    name,
                    args,
                    ack: p.id,
                });
                None
            }
            PacketKind::Ack => {
                let w = waiting.remove(&p.id?)?;
                let _ = w.reply.send(Ok(args_of(p.data, p.attachments)));
                None
            }
            PacketKind::Disconnect => Some(End::Stop("disconnected by the server".into())),
            PacketKind::ConnectError => {
                self.emit(Event::ConnectError {
                    error: p.data.unwrap_or(Value::Null),
                });
                Some(End::Stop("connection refused by the server".into()))
            }
            PacketKind::Connect => None,
        }
    }
}

//! The native-protocol client (docs/protocol.md, "Native protocol") over one
//! tokio task: connect to the primary URL or a backup, keep the connection
//! alive with application pings, reconnect with backoff, rejoin rooms with
//! `since`, deliver every message once and in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_client::native::ClientError> {
//! use switchboard_client::native::{Client, ClientConfig, Event};
//! let (client, mut events) = Client::connect(ClientConfig::new([
//!     "ws://primary:8080/ws",
//!     "ws://backup:8080/ws",
//! ]));
//! client.join("lobby", true).await?;
//! client.publish("lobby", "chat", serde_json::json!({"text": "hi"})).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(m) = event {
//!         println!("{} {} {}", m.room, m.offset, m.data);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Reconnection rules: after a failure the client waits a backoff delay
//! (full jitter) and tries the next URL after `failures_per_url` failures in
//! a row on one; a kick with `reconnect: true` or a server drain (close 1001,
//! then the next URL) reconnects at once; a kick with `reconnect: false`
//! (close 4001) stops for good. The token provider is asked before every
//! connection and when the server pushes `refresh`.
//!
//! Offline, requests wait in a bounded queue (`queue_limit`, default 1000);
//! a request beyond it fails at once with [`ClientError::QueueFull`] (the
//! queue keeps what it has: nothing queued is dropped). A request sent on a
//! connection that drops before its answer fails with
//! [`ClientError::Disconnected`]: it may or may not have been applied (a
//! publish can be checked with `history`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{CloseCode, CloseFrame, Config, Message as WsMessage, Utf8Bytes};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffConfig};
use crate::recovery::{JoinAnswer, Positioned, Recovery};
use crate::rotation::Rotation;

/// Produces a token for the next connection or refresh (`None`: connect
/// without one).
pub type TokenProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Client settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The primary URL (`ws://host:port/ws`) and its backups.
    pub urls: Vec<String>,
    /// Delays between attempts.
    pub backoff: BackoffConfig,
    /// Failed attempts in a row on one URL before the next. Default 2.
    pub failures_per_url: u32,
    /// Time between application pings. Default 10 s.
    pub ping_interval: Duration,
    /// Silence after a ping that declares the connection dead. Default 10 s.
    pub ping_timeout: Duration,
    /// Time a request waits for its answer. Default 10 s.
    pub request_timeout: Duration,
    /// Time a connection attempt may take (TCP, TLS, handshake, welcome).
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// Requests kept while offline. Default 1000.
    pub queue_limit: usize,
    /// Where tokens come from.
    pub token: Option<TokenProvider>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("urls", &self.urls)
            .field("backoff", &self.backoff)
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults for these URLs (the first is the primary).
    pub fn new<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            backoff: BackoffConfig::default(),
            failures_per_url: 2,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            queue_limit: 1000,
            token: None,
        }
    }

    /// A fixed token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = Some(Arc::new(move || {
            let t = token.clone();
            Box::pin(async move { Some(t) })
        }));
        self
    }

    /// A token provider, asked before each connection and on `refresh`.
    pub fn token_provider(mut self, provider: TokenProvider) -> Self {
        self.token = Some(provider);
        self
    }

    /// Sets the backoff.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the heartbeat.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
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
    /// Connected and welcomed.
    Open {
        /// The URL connected to.
        url: String,
        /// The server's id of this connection.
        socket: String,
        /// The user the server sees.
        user: String,
    },
    /// Waiting `delay` before attempt `attempt` on `url`.
    Reconnecting {
        /// Attempts since the last connection (1 for the first retry).
        attempt: u32,
        /// The wait before it.
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

/// A room message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The room.
    pub room: String,
    /// The event name.
    pub event: String,
    /// The payload.
    pub data: Value,
    /// Its offset in the room's log.
    pub offset: u64,
    /// The log's epoch.
    pub epoch: String,
    /// The publishing user (`None`: the backend).
    pub from: Option<String>,
}

impl Positioned for Message {
    fn epoch(&self) -> &str {
        &self.epoch
    }
    fn offset(&self) -> u64 {
        self.offset
    }
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The connection state changed.
    State(State),
    /// A room message, once and in order.
    Message(Message),
    /// Someone joined or left a room joined with presence.
    Presence {
        /// The room.
        room: String,
        /// The user.
        user: String,
        /// `join` or `leave`.
        action: String,
    },
    /// Messages of `room` may have been lost while disconnected (the server
    /// no longer held them): refetch the room's state.
    Gap {
        /// The room.
        room: String,
    },
    /// The server kicked this connection.
    Kicked {
        /// The reason it gave.
        reason: Option<String>,
        /// Whether the client reconnects.
        reconnect: bool,
    },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// No answer within the request timeout.
    #[error("no answer in time")]
    Timeout,
    /// Offline with the queue full.
    #[error("the offline queue is full")]
    QueueFull,
    /// The connection dropped before the answer (the request may have
    /// been applied).
    #[error("disconnected before the answer")]
    Disconnected,
    /// The server refused it.
    #[error("{code}: {message}")]
    Refused {
        /// The error code (`forbidden`, `rate_limited`, …).
        code: String,
        /// The server's message.
        message: String,
    },
}

pub(crate) enum Command {
    Request {
        op: Value,
        reply: oneshot::Sender<Result<Value, ClientError>>,
    },
    /// A frame sent as it is while connected, dropped while offline (file
    /// chunks and acknowledgements: their senders resume after a reconnect).
    Frame(WsMessage),
    /// Routes connection changes and file-transfer traffic to a task.
    Watch(mpsc::UnboundedSender<crate::files::Signal>),
    Close,
}

/// A handle on the client; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
}

impl Client {
    /// Starts the client (within a tokio runtime). Events come on the
    /// returned receiver; the client stops when every handle is dropped or
    /// on [`Client::close`].
    ///
    /// # Panics
    /// With no URL.
    pub fn connect(config: ClientConfig) -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, cmds) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let driver = Driver {
            rotation: Rotation::new(config.urls.clone(), config.failures_per_url),
            backoff: Backoff::new(config.backoff),
            config,
            recovery: Recovery::default(),
            events: events_tx,
            cmds,
            offline: VecDeque::new(),
            next_id: 1,
            watchers: Vec::new(),
        };
        tokio::spawn(driver.run());
        (Self { tx }, events)
    }

    /// Sends one request (a JSON object with `op`) and waits for its answer
    /// (the reply without `id` and `ok`). Requests go out in the order of
    /// the calls (the call queues it; awaiting only waits for the answer).
    pub fn request(
        &self,
        op: Value,
    ) -> impl Future<Output = Result<Value, ClientError>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Command::Request { op, reply });
        async move {
            sent.map_err(|_| ClientError::Closed)?;
            rx.await.map_err(|_| ClientError::Closed)?
        }
    }

    /// Joins `room` (with presence events or not); after a reconnect it is
    /// joined again with `since`. Answers `{epoch, offset, recovered}`.
    pub fn join(
        &self,
        room: &str,
        presence: bool,
    ) -> impl Future<Output = Result<Value, ClientError>> + Send + 'static {
        self.request(json!({"op": "join", "room": room, "presence": presence}))
    }

    /// Leaves `room`.
    pub fn leave(
        &self,
        room: &str,
    ) -> impl Future<Output = Result<(), ClientError>> + Send + 'static {
        let answer = self.request(json!({"op": "leave", "room": room}));
        async move { answer.await.map(drop) }
    }

    /// Publishes to `room`; answers the message's offset.
    pub fn publish(
        &self,
        room: &str,
        event: &str,
        data: Value,
    ) -> impl Future<Output = Result<u64, ClientError>> + Send + 'static {
        let answer =
            self.request(json!({"op": "publish", "room": room, "event": event, "data": data}));
        async move {
            Ok(answer
                .await?
                .get("offset")
                .and_then(Value::as_u64)
                .unwrap_or(0))
        }
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&self) {
        let _ = self.tx.send(Command::Close);
    }
}

/// A request on the wire, waiting for its answer.
struct InFlight {
    reply: Option<oneshot::Sender<Result<Value, ClientError>>>,
    /// A join: its room (the answer feeds the recovery tracker).
    join: Option<String>,
    deadline: Instant,
}

/// How a connection ended.
enum End {
    /// Stop for good.
    Stop(String),
    /// Try again: at once or after a backoff delay; `skip` moves to the
    /// next URL first; `connected` says whether the attempt had worked.
    Retry {
        now: bool,
        skip: bool,
        connected: bool,
    },
}

struct Driver {
    config: ClientConfig,
    rotation: Rotation,
    backoff: Backoff,
    recovery: Recovery<Message>,
    events: mpsc::UnboundedSender<Event>,
    cmds: mpsc::UnboundedReceiver<Command>,
    /// Requests made while offline, in order.
    offline: VecDeque<(Value, oneshot::Sender<Result<Value, ClientError>>)>,
    next_id: u64,
    /// File transfers in progress (`Command::Watch`).
    watchers: Vec<mpsc::UnboundedSender<crate::files::Signal>>,
}

type Ws = WebSocket<MaybeTlsStream>;

fn text(s: String) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(s))
}

impl Driver {
    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Tells the file transfers; forgets those that ended.
    fn signal(&mut self, s: &crate::files::Signal) {
        self.watchers.retain(|w| w.send(s.clone()).is_ok());
    }

    async fn run(mut self) {
        loop {
            let url = self.rotation.current().to_owned();
            self.emit(Event::State(State::Connecting { url: url.clone() }));
            let end = self.session(&url).await;
            let (now, skip, connected) = match end {
                End::Stop(reason) => return self.stop(reason),
                End::Retry {
                    now,
                    skip,
                    connected,
                } => (now, skip, connected),
            };
            if connected {
                self.backoff.reset();
                self.rotation.succeeded();
            } else {
                self.rotation.failed();
            }
            if skip {
                self.rotation.skip();
            }
            let delay = if now {
                Some(Duration::ZERO)
            } else {
                self.backoff.next_delay()
            };
            let Some(delay) = delay else {
                return self.stop("gave up reconnecting".into());
            };
            self.emit(Event::State(State::Reconnecting {
                attempt: self.backoff.attempt().max(1),
                delay,
                url: self.rotation.current().to_owned(),
            }));
            if let Err(reason) = self.wait_offline(delay).await {
                return self.stop(reason);
            }
        }
    }

    fn stop(mut self, reason: String) {
        for (_, reply) in self.offline.drain(..) {
            let _ = reply.send(Err(ClientError::Closed));
        }
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            if let Command::Request { reply, .. } = cmd {
                let _ = reply.send(Err(ClientError::Closed));
            }
        }
        self.emit(Event::State(State::Closed { reason }));
    }

    /// Keeps requests while offline; `Err` when the client was closed.
    async fn wait_offline(&mut self, delay: Duration) -> Result<(), String> {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(()),
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => return Err("closed by the client".into()),
                    Some(Command::Request { op, reply }) => self.queue(op, reply),
                    Some(Command::Frame(_)) => {}
                    Some(Command::Watch(w)) => self.watchers.push(w),
                },
            }
        }
    }

    fn queue(&mut self, op: Value, reply: oneshot::Sender<Result<Value, ClientError>>) {
        if self.offline.len() >= self.config.queue_limit {
            let _ = reply.send(Err(ClientError::QueueFull));
        } else {
            self.offline.push_back((op, reply));
        }
    }

    async fn token(&self) -> Option<String> {
        match &self.config.token {
            Some(provider) => provider().await,
            None => None,
        }
    }

    /// Connects to `url`, waits for the welcome, then serves the connection
    /// until it ends.
    async fn session(&mut self, url: &str) -> End {
        let token = self.token().await;
        let full = match &token {
            Some(t) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                let t =
                    percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC);
                format!("{url}{sep}token={t}")
            }
            None => url.to_owned(),
        };
        let retry = End::Retry {
            now: false,
            skip: false,
            connected: false,
        };
        let options = ConnectOptions::new(Config::default());
        let attempt = async {
            let (mut ws, _) = connect(&full, &options).await.ok()?;
            loop {
                let WsMessage::Text(t) = ws.recv().await?.ok()? else {
                    continue;
                };
                let v: Value = serde_json::from_str(t.as_str()).ok()?;
                if v.get("op").and_then(Value::as_str) == Some("welcome") {
                    return Some((ws, v));
                }
            }
        };
        let Ok(Some((ws, welcome))) =
            tokio::time::timeout(self.config.connect_timeout, attempt).await
        else {
            return retry;
        };
        let field = |k: &str| {
            welcome
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        self.emit(Event::State(State::Open {
            url: url.to_owned(),
            socket: field("socket"),
            user: field("user"),
        }));
        self.serve(ws).await
    }

    fn send(
        &mut self,
        ws: &mut Ws,
        in_flight: &mut HashMap<u64, InFlight>,
        mut op: Value,
        reply: Option<oneshot::Sender<Result<Value, ClientError>>>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let join = match op.get("op").and_then(Value::as_str) {
            Some("join") => {
                let room = op
                    .get("room")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let presence = op.get("presence").and_then(Value::as_bool).unwrap_or(false);
                if let Some(since) = self.recovery.joining(&room, presence) {
                    op["since"] = json!({"epoch": since.epoch, "offset": since.offset});
                }
                Some(room)
            }
            Some("leave") => {
                if let Some(room) = op.get("room").and_then(Value::as_str) {
                    self.recovery.left(room);
                }
                None
            }
            _ => None,
        };
        op["id"] = json!(id);
        let _ = ws.queue(text(op.to_string()));
        in_flight.insert(
            id,
            InFlight {
                reply,
                join,
                deadline: Instant::now() + self.config.request_timeout,
            },
        );
    }

    async fn serve(&mut self, mut ws: Ws) -> End {
        let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
        // Rooms first (with `since`), then what waited offline, in order.
        for (room, presence) in self.recovery.rooms() {
            let op = json!({"op": "join", "room": room, "presence": presence});
            self.send(&mut ws, &mut in_flight, op, None);
        }
        while let Some((op, reply)) = self.offline.pop_front() {
            self.send(&mut ws, &mut in_flight, op, Some(reply));
        }
        let _ = ws.flush().await;
        self.signal(&crate::files::Signal::Online);
        let (interval, timeout) = (self.config.ping_interval, self.config.ping_timeout);
        let mut tick = tokio::time::interval(interval.min(timeout) / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut last_ping = Instant::now();
        let mut kicked: Option<bool> = None;
        let end = loop {
            tokio::select! {
                m = ws.recv() => {
                    if ws.take_activity() {
                        last_heard = Instant::now();
                    }
                    match m {
                        Some(Ok(WsMessage::Text(t))) => {
                            if let Some(k) = self.on_text(&mut ws, &mut in_flight, t.as_str()).await {
                                kicked = Some(k);
                            }
                        }
                        Some(Ok(WsMessage::Binary(b))) => {
                            if let Some(c) = crate::files::chunk::decode(&b) {
                                self.signal(&crate::files::Signal::Chunk(c));
                            }
                        }
                        Some(Err(_)) | None => break self.ended(&ws, kicked),
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => {
                        let frame = CloseFrame::new(CloseCode::from(1000), "client closed");
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                        break End::Stop("closed by the client".into());
                    }
                    Some(Command::Request { op, reply }) => {
                        self.send(&mut ws, &mut in_flight, op, Some(reply));
                    }
                    Some(Command::Frame(m)) => {
                        let _ = ws.queue(m);
                    }
                    Some(Command::Watch(w)) => {
                        let _ = w.send(crate::files::Signal::Online);
                        self.watchers.push(w);
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if ws.take_activity() {
                        last_heard = now;
                    }
                    if now.duration_since(last_heard) > interval + timeout {
                        // Dead: no close handshake with a peer that is gone.
                        break End::Retry { now: false, skip: false, connected: true };
                    }
                    if now.duration_since(last_ping) >= interval {
                        last_ping = now;
                        let _ = ws.queue(text("ping".to_owned()));
                    }
                    in_flight.retain(|_, f| {
                        if f.deadline > now {
                            return true;
                        }
                        if let Some(reply) = f.reply.take() {
                            let _ = reply.send(Err(ClientError::Timeout));
                        }
                        false
                    });
                }
            }
            if ws.flush().await.is_err() {
                break self.ended(&ws, kicked);
            }
        };
        self.signal(&crate::files::Signal::Offline);
        for (_, f) in in_flight {
            if let Some(room) = &f.join {
                self.recovery.interrupted(room);
            }
            if let Some(reply) = f.reply {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
        end
    }

    /// What the end of a connection calls for, from the close code the
    /// server sent (or a kick it pushed before).
    fn ended(&self, ws: &Ws, kicked: Option<bool>) -> End {
        let now = |skip| End::Retry {
            now: true,
            skip,
            connected: true,
        };
        // The close code decides; a kick pushed before it only matters when
        // the connection ended without one.
        match ws.peer_close().map(|f| f.code.0) {
            Some(4001) => End::Stop("kicked by the server".into()),
            Some(4401) if self.config.token.is_none() => {
                End::Stop("unauthorized (no token provider)".into())
            }
            // A token expired: at once, the provider is asked again.
            Some(4000 | 4003) => now(false),
            // A drain: at once, on the next URL.
            Some(1001) => now(self.rotation.urls().len() > 1),
            _ => match kicked {
                Some(false) => End::Stop("kicked by the server".into()),
                Some(true) => now(false),
                None => End::Retry {
                    now: false,
                    skip: false,
                    connected: true,
                },
            },
        }
    }

    /// One text frame; returns `Some(reconnect)` for a kick.
    async fn on_text(
        &mut self,
        ws: &mut Ws,
        in_flight: &mut HashMap<u64, InFlight>,
        t: &str,
    ) -> Option<bool> {
        if t == "pong" {
            return None;
        }
        let v: Value = serde_json::from_str(t).ok()?;
        match v.get("op").and_then(Value::as_str) {
            None => {
                let id = v.get("id").and_then(Value::as_u64)?;
                let f = in_flight.remove(&id)?;
                self.on_reply(f, v);
                None
            }
            Some("message") => {
                let m = message(&v)?;
                let room = m.room.clone();
                if let Some(m) = self.recovery.message(&room, m) {
                    self.emit(Event::Message(m));
                }
                None
            }
            Some("presence") => {
                let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                self.emit(Event::Presence {
                    room: s("room"),
                    user: s("user"),
                    action: s("action"),
                });
                None
            }
            Some("refresh") => {
                if let Some(token) = self.token().await {
                    let op = json!({"op": "refresh", "token": token});
                    self.send(ws, in_flight, op, None);
                }
                None
            }
            Some("file_ack" | "file_complete" | "file_error") => {
                self.signal(&crate::files::Signal::Push(v));
                None
            }
            Some("kick") => {
                let reconnect = v.get("reconnect").and_then(Value::as_bool).unwrap_or(true);
                let reason = v.get("reason").and_then(Value::as_str).map(str::to_owned);
                self.emit(Event::Kicked { reason, reconnect });
                Some(reconnect)
            }
            _ => None,
        }
    }

    fn on_reply(&mut self, f: InFlight, mut v: Value) {
        let ok = v.get("ok").and_then(Value::as_bool) == Some(true);
        if let Some(room) = &f.join {
            if ok {
                let missed = v
                    .get("missed")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| {
                                let mut m = m.clone();
                                m["room"] = json!(room);
                                m["epoch"] = v["epoch"].clone();
                                message(&m)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let answer = JoinAnswer {
                    epoch: v
                        .get("epoch")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    offset: v.get("offset").and_then(Value::as_u64).unwrap_or(0),
                    recovered: v.get("recovered").and_then(Value::as_bool) == Some(true),
                    missed,
                };
                let rejoined = self.recovery.joined(room, answer);
                if rejoined.gap {
                    self.emit(Event::Gap { room: room.clone() });
                }
                for m in rejoined.deliver {
                    self.emit(Event::Message(m));
                }
            } else {
                self.recovery.join_failed(room);
            }
        }
        let Some(reply) = f.reply else {
            return;
        };
        let result = if ok {
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
                o.remove("ok");
            }
            Ok(v)
        } else {
            let e = |k: &str| {
                v.pointer(&format!("/error/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Err(ClientError::Refused {
                code: e("code"),
                message: e("message"),
            })
        };
        let _ = reply.send(result);
    }
}

/// A `message` push (or a `missed` entry completed with room and epoch).
fn message(v: &Value) -> Option<Message> {
    Some(Message {
        room: v.get("room")?.as_str()?.to_owned(),
        event: v.get("event")?.as_str()?.to_owned(),
        data: v.get("data").cloned().unwrap_or(Value::Null),
        offset: v.get("offset")?.as_u64()?,
        epoch: v.get("epoch")?.as_str()?.to_owned(),
        from: v.get("from").and_then(Value::as_str).map(str::to_owned),
    })
}

//! The Socket.IO server: namespaces, sockets, rooms, acks, broadcasts and
//! connection state recovery over [`switchboard_engine::server`].
//!
//! ```no_run
//! use switchboard_socketio::server::{NamespaceBuilder, SocketIo};
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::builder()
//!     .ns("/", NamespaceBuilder::new()
//!         .on_connect(|socket| socket.join("lobby"))
//!         .on("chat", |socket, ev| {
//!             socket.to("lobby").emit("chat", ev.args.clone());
//!             if let Some(ack) = ev.ack { ack.send(serde_json::json!("ok")); }
//!         }))
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! io.serve(listener).await
//! # }
//! ```
//!
//! Mount it in your own hyper or axum server with [`SocketIo::handle`] for
//! requests whose path [`SocketIo::matches`] (`/socket.io/` by default).
//!
//! Handlers are plain closures run on the connection's task; they must not
//! block. Spawn a task for slow work (the [`AckSender`] and [`Socket`] can
//! move into it). A socket holds no handler table of its own: handlers are
//! registered per namespace, so an idle socket costs a few hundred bytes.

mod args;
mod broadcast;
mod conn;
mod frames;
mod namespace;
mod one_or_many;
mod recovery;
mod rooms;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use switchboard_engine::server::{Body, Cors, Engine, EngineConfig, EngineSocket, Handler};
use switchboard_engine::{CloseReason, Inbound};

pub use args::Args;
pub use broadcast::{Broadcast, PartialAcks};
pub use conn::Conn;
pub use namespace::{
    AckSender, BoxFuture, ConnectError, ConnectRequest, Event, Namespace, NamespaceBuilder,
};
pub use recovery::RecoveryConfig;
pub use socket::{AckError, DisconnectReason, Disconnected, Socket};

use crate::packet::Limits;
use namespace::NsInner;
use recovery::Recovery;

/// Socket.IO-level settings.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) recovery: Option<RecoveryConfig>,
    pub(crate) keep_headers: bool,
    pub(crate) limits: Limits,
}

type NsMatcher = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub(crate) struct Registry {
    pub(crate) config: IoConfig,
    namespaces: RwLock<HashMap<Arc<str>, Arc<NsInner>>>,
    dynamic: Vec<(NsMatcher, Arc<NamespaceBuilder>)>,
}

impl Registry {
    /// A namespace by name, creating a dynamic one on first use.
    pub(crate) fn namespace(&self, name: &str) -> Option<Arc<NsInner>> {
        if let Some(ns) = self
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Some(ns.clone());
        }
        let (_, handlers) = self.dynamic.iter().find(|(m, _)| m(name))?;
        let mut map = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        let ns = map.entry(Arc::from(name)).or_insert_with_key(|k| {
            Arc::new(NsInner::new(
                k.clone(),
                handlers.clone(),
                self.config.recovery.map(Recovery::new),
            ))
        });
        Some(ns.clone())
    }
}

/// The engine handler: Engine.IO sessions in, Socket.IO sockets out.
#[derive(Clone)]
pub struct IoHandler {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for IoHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoHandler").finish_non_exhaustive()
    }
}

impl Handler for IoHandler {
    type Data = Conn;

    fn data(&self, req: &http::request::Parts) -> Conn {
        Conn::new(req)
    }

    fn on_open(&self, socket: &Arc<EngineSocket<Conn>>) {
        socket.set_deadline(Some(Instant::now() + self.registry.config.connect_timeout));
    }

    fn on_message(&self, socket: &Arc<EngineSocket<Conn>>, message: Inbound) {
        conn::on_message(&self.registry, socket, message);
    }

    fn on_deadline(&self, socket: &Arc<EngineSocket<Conn>>) {
        // No namespace joined within connectTimeout.
        if socket.data().idle() {
            socket.close();
        }
    }

    fn on_close(&self, socket: &Arc<EngineSocket<Conn>>, reason: CloseReason) {
        conn::on_close(socket, reason);
    }

    fn on_sweep(&self) {
        // Sessions kept for recovery that expired are dropped now, not at
        // the next disconnection.
        // Under the registry's read lock: the kept-session tables are
        // locked only briefly, never while taking the registry's lock.
        let namespaces = self
            .registry
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for recovery in namespaces.values().filter_map(|ns| ns.recovery.as_ref()) {
            recovery.expire();
        }
    }
}

/// A Socket.IO server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SocketIo {
    engine: Engine<IoHandler>,
}

impl SocketIo {
    /// Starts configuring a server.
    pub fn builder() -> SocketIoBuilder {
        SocketIoBuilder::default()
    }

    /// A namespace by name (dynamic ones once a client has connected).
    pub fn of(&self, name: &str) -> Option<Namespace> {
        self.engine
            .handler()
            .registry
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .map(Namespace)
    }

    /// The Engine.IO server underneath.
    pub fn engine(&self) -> &Engine<IoHandler> {
        &self.engine
    }

    /// Whether `path` belongs to this server.
    pub fn matches(&self, path: &str) -> bool {
        self.engine.matches(path)
    }

    /// Answers a request under the server's path.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.engine.handle(req).await
    }

    /// Serves on `listener` (other paths get 404).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        switchboard_engine::server::serve(self.engine, listener).await
    }

    /// Serves one accepted connection until it closes (other paths get 404).
    pub async fn serve_connection<I>(&self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        switchboard_engine::server::serve_connection(self.engine.clone(), io).await;
    }
}

/// Builds a [`SocketIo`].
pub struct SocketIoBuilder {
    engine: EngineConfig,
    config: IoConfig,
    namespaces: Vec<(String, NamespaceBuilder)>,
    dynamic: Vec<(NsMatcher, Arc<NamespaceBuilder>)>,
}

impl std::fmt::Debug for SocketIoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoBuilder")
            .field("engine", &self.engine)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for SocketIoBuilder {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default().path("/socket.io/"),
            config: IoConfig {
                connect_timeout: Duration::from_secs(45),
                recovery: None,
                keep_headers: false,
                limits: Limits::default(),
            },
            namespaces: Vec::new(),
            dynamic: Vec::new(),
        }
    }
}

impl SocketIoBuilder {
    /// Request path (default `/socket.io/`).
    pub fn path(mut self, path: &str) -> Self {
        self.engine = self.engine.path(path);
        self
    }

    /// Engine.IO ping interval (default 25 s).
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.engine = self.engine.ping_interval(d);
        self
    }

    /// Engine.IO ping timeout (default 20 s).
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.engine = self.engine.ping_timeout(d);
        self
    }

    /// `maxHttpBufferSize` (default 1 MB); the largest binary attachments
    /// total follows it.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.engine = self.engine.max_payload(bytes);
        self.config.limits.max_attachment_bytes = bytes;
        self
    }

    /// Time a connection has to join a namespace (default 45 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// CORS for polling.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.engine = self.engine.cors(cors);
        self
    }

    /// Origins allowed to connect (others get 403).
    pub fn allowed_origins(mut self, origins: Option<Vec<String>>) -> Self {
        self.engine = self.engine.allowed_origins(origins);
        self
    }

    /// Enables or disables transports.
    pub fn transports(mut self, polling: bool, websocket: bool) -> Self {
        self.engine = self.engine.transports(polling, websocket);
        self
    }

    /// Enables connection state recovery.
    pub fn recovery(mut self, config: RecoveryConfig) -> Self {
        self.config.recovery = Some(config);
        self
    }

    /// Keeps the handshake headers for the connection's whole life (by
    /// default they are dropped once the first namespace has connected, to
    /// keep idle connections small).
    pub fn keep_headers(mut self, keep: bool) -> Self {
        self.config.keep_headers = keep;
        self
    }

    /// Most binary attachments per packet (default 10).
    pub fn max_attachments(mut self, n: usize) -> Self {
        self.config.limits.max_attachments = n;
        self
    }

    /// The full Engine.IO configuration, for settings not mirrored here.
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// Adds a namespace.
    pub fn ns(mut self, name: &str, handlers: NamespaceBuilder) -> Self {
        self.namespaces.push((name.to_owned(), handlers));
        self
    }

    /// Adds dynamic namespaces: any name `matches` accepts is created on
    /// first connection with these handlers.
    pub fn dynamic_ns(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        handlers: NamespaceBuilder,
    ) -> Self {
        self.dynamic.push((Box::new(matches), Arc::new(handlers)));
        self
    }

    /// Builds the server.
    pub fn build(self) -> SocketIo {
        let recovery = self.config.recovery;
        let namespaces = self
            .namespaces
            .into_iter()
            .map(|(name, h)| {
                let name: Arc<str> = Arc::from(name);
                let ns = NsInner::new(name.clone(), Arc::new(h), recovery.map(Recovery::new));
                (name, Arc::new(ns))
            })
            .collect();
        let registry = Arc::new(Registry {
            config: self.config,
            namespaces: RwLock::new(namespaces),
            dynamic: self.dynamic,
        });
        SocketIo {
            engine: Engine::new(IoHandler { registry }, self.engine),
        }
    }
}

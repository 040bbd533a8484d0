//! # switchboard-server: the standalone real-time server
//!
//! `switchboard serve` is a relay with no application code (DESIGN.md §3):
//! clients join rooms, publish, ask who is present and fetch history; a
//! backend publishes and kicks through the admin API. The protocols are thin
//! adapters over [`switchboard_hub::Hub`], which owns room logs (epoch +
//! offsets), membership and presence:
//!
//! * Socket.IO v5 at `/socket.io/` (`relay`), with connection state
//!   recovery backed by the same broadcasts the hub fans out;
//! * the native JSON protocol at `/ws` for a bare browser `WebSocket`
//!   (`native`), with server pings and dead-peer detection;
//! * the admin API at `/api/v1/` (`admin`), behind a bearer key;
//! * Prometheus metrics at `/metrics` (`metrics`).
//!
//! Both protocols share a `context`: who a connection is (JWT, connect
//! proxy), which rooms it may use ([`rooms`]), the [`backend`] (connect and
//! RPC proxies, webhooks) and the metrics.
//!
//! [`Server::new`] builds the state; [`Server::serve`] accepts connections.

mod admin;
mod assets;
pub mod auth;
pub mod backend;
pub mod capture;
mod context;
mod expiry;
pub mod files;
pub mod limits;
mod metrics;
mod native;
mod openapi;
mod per_ip;
mod record;
mod relay;
pub mod rooms;
pub mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use switchboard_engine::server::Cors;
use switchboard_hub::{Hub, LogLimits};
use switchboard_socketio::server::{RecoveryConfig, SocketIo};

pub use auth::Auth;
/// The native protocol's request decoder (pure; fuzzed in `fuzz/`).
pub use native::request as native_request;
pub use relay::user_room;

/// The default size from which native messages are compressed, as the `ws`
/// and Socket.IO servers default to: compressed alone (no context
/// takeover), a smaller JSON message shrinks by a few tens of bytes at most,
/// for a compression on the server and an inflation on every receiver.
pub const DEFLATE_THRESHOLD: usize = 1024;

/// Settings of [`Server`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The admin API key.
    pub api_key: String,
    /// How connections authenticate.
    pub auth: Auth,
    /// Engine.IO ping interval.
    pub ping_interval: Duration,
    /// Engine.IO ping timeout.
    pub ping_timeout: Duration,
    /// Largest message (`maxHttpBufferSize`).
    pub max_payload: usize,
    /// permessage-deflate on the native endpoint: `Some(threshold)` accepts
    /// it when a client offers it and compresses messages of at least
    /// `threshold` bytes (smaller ones go out as they are); `None` declines
    /// it. Without context takeover either way, so an idle connection holds
    /// no compression state.
    pub deflate: Option<usize>,
    /// Origins allowed to connect; `None` accepts every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// History kept per room.
    pub history: LogLimits,
    /// How long Socket.IO keeps a dropped connection's session.
    pub recovery: Duration,
    /// Rooms one connection may be in (its personal room not counted).
    pub max_rooms: usize,
    /// Requests one connection may make.
    pub rate: limits::RateConfig,
    /// Open TCP connections from one IP address (more get 429); 0: no limit.
    pub max_connections_per_ip: usize,
    /// Time a native connection has to send its `auth` op.
    pub auth_timeout: Duration,
    /// Bytes queued for a slow native client before volatile messages are
    /// dropped; 4× ends the connection (close 4008).
    pub send_queue: usize,
    /// Who may join and publish where.
    pub rooms: rooms::Permissions,
    /// The application backend (connect and RPC proxies, webhooks).
    pub backend: backend::BackendConfig,
    /// Serve HTTPS / WSS.
    pub tls: Option<Tls>,
    /// File transfers (native protocol).
    pub files: files::FilesConfig,
    /// Where captures (`POST /api/v1/record`) are written; `None`: a
    /// directory under the system's temporary directory, removed when the
    /// server is dropped.
    pub records_dir: Option<std::path::PathBuf>,
}

/// A TLS acceptor (certificate and key loaded).
#[derive(Clone)]
pub struct Tls(pub tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl ServerConfig {
    /// Defaults with `api_key`.
    pub fn new(api_key: String) -> Self {
        Self {
            api_key,
            auth: Auth::Anonymous,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 64 << 10,
            deflate: Some(DEFLATE_THRESHOLD),
            allowed_origins: None,
            history: LogLimits::default(),
            recovery: Duration::from_secs(120),
            max_rooms: 100,
            rate: limits::RateConfig::default(),
            max_connections_per_ip: 1000,
            auth_timeout: Duration::from_secs(10),
            send_queue: 1 << 20,
            rooms: rooms::Permissions::default(),
            backend: backend::BackendConfig {
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            tls: None,
            files: files::FilesConfig::default(),
            records_dir: None,
        }
    }
}

/// The server: hub, Socket.IO relay and admin API.
#[derive(Clone)]
pub struct Server {
    hub: Arc<Hub>,
    io: SocketIo,
    admin: Arc<admin::Admin>,
    native: Arc<native::Native>,
    metrics: Arc<metrics::Metrics>,
    /// Owned here: the hub holds adapters weakly.
    _sio_sink: Arc<dyn switchboard_hub::Sink>,
    _recorder_sink: Arc<dyn switchboard_hub::Sink>,
    accepted: Arc<AtomicU64>,
    per_ip: Arc<per_ip::PerIp>,
    tls: Option<Tls>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("hub", &self.hub).finish()
    }
}

impl Server {
    /// Builds the server, with room histories in memory (`config.history`).
    pub fn new(config: ServerConfig) -> Self {
        let store = Arc::new(switchboard_hub::MemoryStore::new(config.history));
        Self::with_store(config, store)
    }

    /// Builds the server with room histories in `store` (e.g. a
    /// [`switchboard_hub::DiskStore`] for `--data-dir`; its limits apply, not
    /// `config.history`).
    ///
    /// Call within a tokio runtime when a webhook URL is configured (its
    /// sender task starts here).
    pub fn with_store(config: ServerConfig, store: Arc<dyn switchboard_hub::LogStore>) -> Self {
        let hub = Arc::new(Hub::with_store(store));
        let metrics = Arc::new(metrics::Metrics::new());
        let recorder = Arc::new(record::Recorder::new(config.records_dir.clone(), &hub));
        let recorder_sink: Arc<dyn switchboard_hub::Sink> = recorder.clone();
        hub.add_sink(&recorder_sink);
        let ctx = Arc::new(context::Context {
            hub: hub.clone(),
            auth: config.auth.clone(),
            rooms: config.rooms.clone(),
            backend: backend::Backend::new(config.backend.clone()),
            metrics: metrics.clone(),
            files: Arc::new(files::Files::open(config.files.clone(), config.max_payload)),
            recorder: recorder.clone(),
            limits: context::ClientLimits {
                max_rooms: config.max_rooms,
                rate: config.rate,
                send_queue: config.send_queue,
            },
            socketio_tokens: expiry::ExpiryQueue::default(),
        });
        let cors = match &config.allowed_origins {
            None => Cors::Any,
            Some(list) => Cors::List {
                origins: list.clone(),
                credentials: true,
            },
        };
        let io = SocketIo::builder()
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            .max_payload(config.max_payload)
            .connect_timeout(Duration::from_secs(45))
            .cors(cors)
            .allowed_origins(config.allowed_origins.clone())
            .recovery(RecoveryConfig::default().max_disconnection_duration(config.recovery))
            .ns("/", relay::namespace(ctx.clone()))
            .build();
        let sink = Arc::new(relay::SioSink {
            ns: std::sync::OnceLock::new(),
            metrics: metrics.clone(),
        });
        let ns = io.of("/");
        if let Some(ns) = &ns {
            let _ = sink.ns.set(ns.clone());
        }
        let sio_sink: Arc<dyn switchboard_hub::Sink> = sink;
        hub.add_sink(&sio_sink);
        let native = Arc::new(native::Native::new(
            ctx,
            native::Heartbeat {
                interval: config.ping_interval,
                timeout: config.ping_timeout,
            },
            config.max_payload,
            config.deflate,
            config.allowed_origins.clone(),
            config.auth_timeout,
        ));
        let native_sink: Arc<dyn switchboard_hub::Sink> = native.clone();
        hub.add_sink(&native_sink);
        let admin = Arc::new(admin::Admin {
            api_key: config.api_key,
            hub: hub.clone(),
            ns: ns.unwrap_or_else(|| unreachable!("the relay namespace is registered above")),
            native: native.clone(),
            started: std::time::Instant::now(),
            metrics: metrics.clone(),
            cluster: std::sync::OnceLock::new(),
            recorder,
        });
        Self {
            hub,
            io,
            admin,
            native,
            metrics,
            _sio_sink: sio_sink,
            _recorder_sink: recorder_sink,
            accepted: Arc::default(),
            per_ip: Arc::new(per_ip::PerIp::new(config.max_connections_per_ip)),
            tls: config.tls,
        }
    }

    /// Builds a node of a cluster: room histories in `store` (Redis,
    /// shared by every node; its limits apply), fan-out, presence and the
    /// admin API's effects across the nodes (see [`switchboard_hub::Cluster`]).
    ///
    /// Starts the cluster's threads; they stop when the last clone of the
    /// server is dropped.
    pub fn clustered(
        config: ServerConfig,
        store: switchboard_hub::RedisStore,
        cluster: switchboard_hub::ClusterConfig,
    ) -> std::io::Result<Self> {
        let server = Self::with_store(config, Arc::new(store.clone()));
        let admin = Arc::downgrade(&server.admin);
        let handler: switchboard_hub::cluster::CommandHandler = Arc::new(
            move |kind: &str, body: serde_json::Value| match admin.upgrade() {
                Some(admin) => admin.answer(kind, body),
                None => serde_json::Value::Null,
            },
        );
        let cluster = switchboard_hub::Cluster::start(&server.hub, store, cluster, handler)?;
        let _ = server.admin.cluster.set(Arc::new(cluster));
        Ok(server)
    }

    /// The cluster this server is a node of, if any.
    pub fn cluster(&self) -> Option<&Arc<switchboard_hub::Cluster>> {
        self.admin.cluster.get()
    }

    /// Where captures (`POST /api/v1/record`) are written.
    pub fn records_dir(&self) -> &std::path::Path {
        self.admin.recorder.dir()
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The Socket.IO server.
    pub fn socketio(&self) -> &SocketIo {
        &self.io
    }

    /// TCP connections accepted so far (for memory trimming after bursts).
    pub fn accepted(&self) -> Arc<AtomicU64> {
        self.accepted.clone()
    }

    /// Answers one HTTP request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path();
        if self.io.matches(path) {
            return self.io.handle(req).await;
        }
        if path.starts_with("/api/v1/") {
            return self.admin.handle(req).await;
        }
        if path == "/ws" {
            return self.native.handle(req).await;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            // Ready as soon as it listens: the stores are local (memory or
            // an embedded file opened before listening). A cluster node
            // whose Redis is unreachable still serves its connections and
            // local rooms, so it stays in the load balancer: degraded.
            "/readyz" => match self.cluster() {
                Some(c) if !c.is_up() => text(
                    StatusCode::OK,
                    "degraded: redis unavailable (publishes refused, presence local)\n",
                ),
                _ => text(StatusCode::OK, "ready\n"),
            },
            "/metrics" => self.metrics_response(),
            _ => {
                assets::response(path).unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n"))
            }
        }
    }

    fn metrics_response(&self) -> Response<Full<Bytes>> {
        let mut open = metrics::Open {
            native: self.native.connection_count(),
            cluster: self.cluster().map(|c| (c.is_up(), c.peers())),
            tasks: tokio::runtime::Handle::try_current()
                .map_or(0, |h| h.metrics().num_alive_tasks()),
            detached: switchboard_wire::io::detached::watched(),
            ..Default::default()
        };
        for s in self.admin.ns.sockets() {
            match s.transport() {
                switchboard_engine::Transport::Polling => open.socketio_polling += 1,
                switchboard_engine::Transport::WebSocket => open.socketio_websocket += 1,
            }
        }
        let mut res = Response::new(Full::new(Bytes::from(self.metrics.render(open))));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        res
    }

    /// Graceful drain: every client is told to reconnect elsewhere (`kick`
    /// with reason `going_away` and `reconnect: true`; native close 1001)
    /// and its connection closed; returns once all are gone or after
    /// `deadline`. Stop accepting first (drop the [`Server::serve`] future).
    pub async fn drain(&self, deadline: Duration) {
        let kick = serde_json::json!({"reason": "going_away", "reconnect": true});
        for socket in self.admin.ns.sockets() {
            let _ = socket.emit("kick", kick.clone());
            socket.close_connection();
        }
        self.native.drain();
        let until = tokio::time::Instant::now() + deadline;
        // Engine.IO sessions leave the table once their last packets (the
        // kick, the close) are delivered, also to a polling client's next GET.
        while tokio::time::Instant::now() < until
            && (self.io.engine().session_count() > 0 || self.native.connection_count() > 0)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks token lifetimes once a second, for both protocols.
    fn start_expiry_checks(&self) {
        let (ns, native) = (self.admin.ns.clone(), Arc::downgrade(&self.native));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(native) = native.upgrade() else {
                    return;
                };
                let now = auth::unix_now();
                relay::check_expiry(native.context(), &ns, now);
                native.check_expiry(now);
            }
        });
    }

    /// Accepts connections on `listener` until it fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.start_expiry_checks();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) if is_transient(&e) => {
                    // Out of file descriptors or similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let Some(slot) = self.per_ip.take(peer.ip()) else {
                self.metrics.reject(metrics::Limit::ConnectionsPerIp);
                tokio::spawn(too_many_connections(stream, self.tls.is_some()));
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                match server.tls.clone().map(|t| t.0) {
                    None => server.http(stream, peer, slot).await,
                    Some(tls) => {
                        let accept = tls.accept(stream);
                        match tokio::time::timeout(Duration::from_secs(10), accept).await {
                            Ok(Ok(s)) => server.http(s, peer, slot).await,
                            _ => tracing::debug!(%peer, "TLS handshake failed"),
                        }
                    }
                }
            });
        }
    }

    /// Serves HTTP/1.1 on one connection: at most 100 request headers and
    /// 16 KiB of head (431 beyond), 10 s to send a head. The connection's
    /// per-address slot goes with every request, so an upgraded WebSocket
    /// keeps it (and stays counted) after this returns.
    async fn http<I>(self, stream: I, peer: SocketAddr, slot: per_ip::IpSlot)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            let server = self.clone();
            req.extensions_mut().insert(native::PeerAddr(peer));
            req.extensions_mut()
                .insert(switchboard_wire::io::server::ConnectionGuard(slot.clone()));
            async move { Ok::<_, Infallible>(server.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    }
}

/// Request headers one request may have.
const MAX_HEADERS: usize = 100;
/// Bytes of request head (request line and headers) one request may have.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// The answer to a connection over the per-IP limit: 429 on plain HTTP (TLS
/// connections are closed: no handshake is spent on them).
async fn too_many_connections(mut stream: tokio::net::TcpStream, tls: bool) {
    use tokio::io::AsyncWriteExt as _;
    if tls {
        return;
    }
    let body = r#"{"error":{"code":"too_many_connections","message":"too many connections from this address"}}"#;
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
}

/// Accept errors that concern one connection or a passing shortage of file
/// descriptors (EMFILE, ENFILE), not the listener.
fn is_transient(e: &std::io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
        || e.kind() == std::io::ErrorKind::ConnectionAborted
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

//! # switchboard-server: the standalone real-time server
//!
//! `switchboard serve` is a relay with no application code (DESIGN.md §3):
//! clients join rooms, publish, ask who is present and fetch history; a
//! backend publishes and kicks through the admin API. The protocols are thin
//! adapters over [`switchboard_hub::Hub`], which owns room logs (epoch +
//! offsets), membership and presence:
//!
//! * Socket.IO v5 at `/socket.io/` ([`relay`]), with connection state
//!   recovery backed by the same broadcasts the hub fans out;
//! * the native JSON protocol at `/ws` for a bare browser `WebSocket`
//!   (`native`), with server pings and dead-peer detection;
//! * the admin API at `/api/v1/` (`admin`), behind a bearer key.
//!
//! [`Server::new`] builds the state; [`Server::serve`] accepts connections.

mod admin;
pub mod auth;
pub mod limits;
mod native;
mod openapi;
mod relay;
pub mod wire;

use std::convert::Infallible;
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
pub use relay::user_room;

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
}

impl ServerConfig {
    /// Defaults with `api_key`.
    pub fn new(api_key: String) -> Self {
        Self {
            api_key,
            auth: Auth::Anonymous,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            allowed_origins: None,
            history: LogLimits::default(),
            recovery: Duration::from_secs(120),
            max_rooms: 100,
            rate: limits::RateConfig::default(),
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
    accepted: Arc<AtomicU64>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("hub", &self.hub).finish()
    }
}

impl Server {
    /// Builds the server.
    pub fn new(config: ServerConfig) -> Self {
        let hub = Arc::new(Hub::new(config.history));
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
            .ns(
                "/",
                relay::namespace(
                    hub.clone(),
                    config.auth.clone(),
                    relay::RelayLimits {
                        max_rooms: config.max_rooms,
                        rate: config.rate,
                    },
                ),
            )
            .build();
        let sink = Arc::new(relay::SioSink::default());
        let ns = io.of("/");
        if let Some(ns) = &ns {
            let _ = sink.ns.set(ns.clone());
        }
        hub.add_sink(sink);
        let native = Arc::new(native::Native::new(
            hub.clone(),
            config.auth.clone(),
            native::Heartbeat {
                interval: config.ping_interval,
                timeout: config.ping_timeout,
            },
            config.max_payload,
            native::Limits {
                allowed_origins: config.allowed_origins.clone(),
                max_rooms: config.max_rooms,
                rate: config.rate,
            },
        ));
        hub.add_sink(native.clone());
        let admin = Arc::new(admin::Admin {
            api_key: config.api_key,
            hub: hub.clone(),
            ns: ns.unwrap_or_else(|| unreachable!("the relay namespace is registered above")),
            native: native.clone(),
            started: std::time::Instant::now(),
        });
        Self {
            hub,
            io,
            admin,
            native,
            accepted: Arc::default(),
        }
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
            return self.native.handle(req);
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            // Ready as soon as it listens: every store is in memory so far.
            "/readyz" => text(StatusCode::OK, "ready\n"),
            "/" => text(
                StatusCode::OK,
                "switchboard: Socket.IO at /socket.io/, native WebSocket at /ws, admin API at /api/v1/\n",
            ),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
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
                relay::check_expiry(&ns, now);
                native.check_expiry(now);
            }
        });
    }

    /// Accepts connections on `listener` until it fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.start_expiry_checks();
        loop {
            let (stream, _) = match listener.accept().await {
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
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_headers(64)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    }
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
